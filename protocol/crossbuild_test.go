package protocol

import (
	"os"
	"os/exec"
	"testing"
)

// TestBuildsOn32Bit compiles the package for 32-bit targets, where int is
// 32 bits wide: an untyped constant above math.MaxInt32 passed as an int
// (as math.MaxUint32 once was) compiles on amd64 and fails there.
func TestBuildsOn32Bit(t *testing.T) {
	if testing.Short() {
		t.Skip("cross-compiles; skipped with -short")
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go command: %v", err)
	}
	for _, target := range []struct{ arch, arm string }{{"386", ""}, {"arm", "7"}} {
		t.Run(target.arch, func(t *testing.T) {
			cmd := exec.Command(gobin, "build", "-o", os.DevNull, ".")
			cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH="+target.arch, "CGO_ENABLED=0")
			if target.arm != "" {
				cmd.Env = append(cmd.Env, "GOARM="+target.arm)
			}
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("GOARCH=%s go build: %v\n%s", target.arch, err, out)
			}
		})
	}
}

// TestMaxBlobFitsInt checks the bulk field limit on this platform: it is
// an int, never above what the uint32 length prefix can carry.
func TestMaxBlobFitsInt(t *testing.T) {
	var limit int = maxBlob
	if uint64(limit) > 1<<32-1 {
		t.Fatalf("maxBlob %d exceeds the uint32 length prefix", limit)
	}
	if limit < 1<<31-1 {
		t.Fatalf("maxBlob %d is below math.MaxInt32", limit)
	}
}
