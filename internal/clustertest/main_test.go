package clustertest_test

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/mfn/mfn/internal/clustertest"
)

var (
	binDir    string
	buildOnce sync.Once
	binPath   string
	buildErr  error
	buildTime time.Duration
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "clustertest-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// binaryEnv names an environment variable that, when set, gives a
// prebuilt mfn binary to use instead of building one (e.g. a binary with
// uprobes attached for profiling).
const binaryEnv = "MFN_CLUSTERTEST_BINARY"

// mfnBinary builds the mfn command once per test binary run (on first
// use, so `go test -run NoSuchTest` builds nothing), or returns the
// binary named by $MFN_CLUSTERTEST_BINARY.
func mfnBinary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv(binaryEnv); p != "" {
		return p
	}
	buildOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		start := time.Now()
		root, err := clustertest.ModuleRoot(ctx)
		if err != nil {
			buildErr = err
			return
		}
		binPath, buildErr = clustertest.BuildMFN(ctx, root, binDir)
		buildTime = time.Since(start)
		t.Logf("built %s in %v", binPath, buildTime.Round(time.Millisecond))
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// processTest skips process-level tests under -short and builds the
// binary.
func processTest(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("process-level cluster test: starts three mfn coordinator processes (skipped with -short)")
	}
	return mfnBinary(t)
}
