package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strconv"
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
			// Scripts that start coordinators take their ports from
			// $P1 … $P12: free on 127.0.0.1 for TCP and UDP when the
			// script starts, so that scripts running at the same time (or
			// other programs) never share one.
			ports, err := freePorts(scriptPorts)
			if err != nil {
				return err
			}
			for i, p := range ports {
				e.Setenv(fmt.Sprintf("P%d", i+1), strconv.Itoa(p))
			}
			return nil
		},
	})
}

// sharedDir is the absolute path of ../shared from the repository root.
func sharedDir() string {
	wd, _ := os.Getwd()
	return wd + "/../../../shared"
}

// scriptPorts is how many ports each script gets ($P1 … $P12).
const scriptPorts = 12

// freePorts returns n distinct ports on 127.0.0.1 that are free for both
// TCP and UDP (coordinators listen on TCP for Raft and HTTP, on UDP for
// QUIC). Every socket stays open until all n are found, so no port is
// returned twice.
func freePorts(n int) ([]int, error) {
	var (
		ports   []int
		holders []interface{ Close() error }
	)
	defer func() {
		for _, h := range holders {
			h.Close()
		}
	}()
	for tries := 0; len(ports) < n; tries++ {
		if tries > 20*n {
			return nil, fmt.Errorf("no %d free ports on 127.0.0.1 after %d tries", n, tries)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		holders = append(holders, ln)
		port := ln.Addr().(*net.TCPAddr).Port
		pc, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue // taken for UDP: keep the TCP socket held and try another
		}
		holders = append(holders, pc)
		ports = append(ports, port)
	}
	return ports, nil
}
