package clustertest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// ModuleRoot returns the directory of the go.mod that holds the package
// the caller runs in (as `go env GOMOD` reports it from the working
// directory). It fails outside a module.
func ModuleRoot(ctx context.Context) (string, error) {
	goBin, err := goCommand()
	if err != nil {
		return "", err
	}
	out, err := exec.CommandContext(ctx, goBin, "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("clustertest: go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("clustertest: not inside a Go module")
	}
	return filepath.Dir(mod), nil
}

// BuildMFN compiles the mfn command (./cmd/mfn of the module at root)
// into dir and returns the binary's path. The binary is built without the
// race detector whatever the test binary uses: the processes are the
// system under test, not the code being race-checked (the coordinator
// package's in-process tests do that), and a race build would triple the
// compile time and slow every member down. A build failure returns the
// compiler's output in the error.
func BuildMFN(ctx context.Context, root, dir string) (string, error) {
	goBin, err := goCommand()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "mfn")
	cmd := exec.CommandContext(ctx, goBin, "build", "-o", bin, "./cmd/mfn")
	cmd.Dir = root
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("clustertest: go build ./cmd/mfn: %w\n%s", err, out.Bytes())
	}
	return bin, nil
}

// goCommand finds the go tool on PATH (go test puts its own toolchain's
// bin directory first on the PATH of the tests it runs).
func goCommand() (string, error) {
	p, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("clustertest: no go command on PATH: %w", err)
	}
	return p, nil
}
