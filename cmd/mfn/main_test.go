package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
)

// TestMain lets testscript run this binary as "mfn" inside scripts.
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"mfn": func() {
			// The same signal handling as main, so scripts can test graceful
			// shutdown with `kill -INT` / `kill -TERM`.
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
			stop()
			os.Exit(code)
		},
	})
}

// TestScripts runs every testdata/script/*.txt file against the real CLI.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir: "testdata/script",
		Setup: func(e *testscript.Env) error {
			e.Setenv("SHARED", sharedDir())
			return nil
		},
	})
}

// sharedDir is the absolute path of ../shared from the repository root.
func sharedDir() string {
	wd, _ := os.Getwd()
	return wd + "/../../../shared"
}
