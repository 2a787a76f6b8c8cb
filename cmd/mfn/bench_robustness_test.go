package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestBenchRobustnessInterruptKeepsFinishedCells cancels a run after its
// first finished cell (as Ctrl-C does through the root context) and checks
// that the results file holds only whole lines and that a rerun resumes
// from them.
func TestBenchRobustnessInterruptKeepsFinishedCells(t *testing.T) {
	results := filepath.Join(t.TempDir(), "r.jsonl")
	args := []string{"bench", "robustness", "--dataset", "mfn", "--mfn-per-regime", "20",
		"--heterogeneity", "iid", "--honest", "3", "--f", "0", "--rules", "fedavg,median,trimmed-mean,fedavg+fedavg",
		"--rounds", "400", "--local-steps", "5", "--seeds", "1", "--results", results}
	// "fedavg+fedavg" is not a valid pipeline: validation must reject it
	// before any cell runs.
	var stderr bytes.Buffer
	if code := run(context.Background(), args, nil, &bytes.Buffer{}, &stderr); code != exitUsage {
		t.Fatalf("invalid pipeline: exit %d, stderr %q", code, stderr.String())
	}
	args[13] = "fedavg,median,trimmed-mean"

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	var out bytes.Buffer
	stderr.Reset()
	go func() { done <- run(ctx, args, nil, &out, &stderr) }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		b, _ := os.ReadFile(results)
		if bytes.Count(b, []byte("\n")) >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no cell finished within 60 s")
		}
		select {
		case code := <-done:
			t.Fatalf("run ended before the interrupt: exit %d, stderr %q", code, stderr.String())
		default:
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	var code int
	select {
	case code = <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("run did not stop within 60 s of cancellation")
	}
	if code != exitFailure || !strings.Contains(stderr.String(), "interrupted after") {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
	b, _ := os.ReadFile(results)
	lines := bytes.Count(b, []byte("\n"))
	if lines < 1 || lines >= 3 || !bytes.HasSuffix(b, []byte("\n")) {
		t.Fatalf("results after interrupt: %d lines: %q", lines, b)
	}
	if !strings.Contains(out.String(), "fedavg") {
		t.Errorf("table of finished cells missing: %q", out.String())
	}

	// A rerun recognises the finished cells (it is cancelled at once, so
	// it runs none).
	stderr.Reset()
	ctx2, cancel2 := context.WithCancel(context.Background())
	cancel2()
	run(ctx2, args, nil, &bytes.Buffer{}, &stderr)
	if want := "3 cells, " + string('0'+rune(lines)) + " already in"; !strings.Contains(stderr.String(), want) {
		t.Errorf("rerun stderr %q, want %q", stderr.String(), want)
	}
}
