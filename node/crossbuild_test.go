package node

import (
	"os"
	"os/exec"
	"testing"
)

// TestBuildsOn32Bit compiles the package for 32-bit targets, where int is
// 32 bits wide: an untyped constant above math.MaxInt32 used as an int (as
// the reference data seed once was) compiles on amd64 and fails there.
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
