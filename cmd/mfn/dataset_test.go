package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go"

	"github.com/mfn/mfn/sim"
)

func runDatasetCLI(t *testing.T, ctx context.Context, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var o, e bytes.Buffer
	code = run(ctx, args, strings.NewReader(""), &o, &e)
	return code, o.String(), e.String()
}

func TestDatasetExitCodes(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		{"--alpha", "0.05:0.3"},
		{"--grid-size", "2"},
		{"--samples", "-1"},
		{"--boundary", "periodic:neumann"},
	} {
		out := filepath.Join(dir, "x.csv")
		code, _, stderr := runDatasetCLI(t, context.Background(), append([]string{"dataset", "--out", out}, args...)...)
		if code != exitUsage {
			t.Errorf("%v: exit %d, want %d (stderr %q)", args, code, exitUsage, stderr)
		}
		if !strings.Contains(stderr, args[0]) {
			t.Errorf("%v: stderr %q does not name the flag", args, stderr)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("failed runs left files: %v", entries)
	}
}

// TestDatasetParquetMatchesCSV writes the same sweep as Parquet and CSV and
// reads the Parquet file back with parquet-go.
func TestDatasetParquetMatchesCSV(t *testing.T) {
	dir := t.TempDir()
	args := []string{"dataset", "--samples", "5", "--seed", "11", "--grid-size", "8:10", "--steps", "3",
		"--spike-probability", "0.5:1", "--jitter", "true,false", "--boundary", "neumann,dirichlet", "--workers", "2"}
	pq, cs := filepath.Join(dir, "d.parquet"), filepath.Join(dir, "d.csv")
	for _, out := range []string{pq, cs} {
		if code, _, stderr := runDatasetCLI(t, context.Background(), append(args, "--out", out)...); code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
	}
	rows, err := parquet.ReadFile[sim.ParquetRow](pq)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(cs)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 5 || len(recs) != 6 {
		t.Fatalf("%d parquet rows, %d csv records; want 5 and 6", len(rows), len(recs))
	}
	for i, r := range rows {
		if r.SimID != int64(i) || r.Seed != sim.SampleSeed(11, i) {
			t.Errorf("row %d: sim_id %d seed %d, want %d %d", i, r.SimID, r.Seed, i, sim.SampleSeed(11, i))
		}
		if r.GridSize < 8 || r.GridSize > 10 || r.Steps != 3 || r.SpikeProbability < 0.5 ||
			(r.Boundary != "neumann" && r.Boundary != "dirichlet") {
			t.Errorf("row %d outside the sweep: %+v", i, r)
		}
		rec := recs[i+1]
		for _, c := range []struct {
			col string
			v   float64
		}{{"alpha", r.Alpha}, {"V_mean", r.VMean}, {"V_std", r.VStd}, {"dV_max", r.DVMax}, {"lyapunov", r.Lyapunov}, {"growth_events", float64(r.GrowthEvents)}} {
			k := datasetColumnIndex(sim.DatasetColumns(), c.col)
			got, err := strconv.ParseFloat(rec[k], 64)
			if err != nil || got != c.v {
				t.Errorf("row %d %s: csv %q, parquet %v", i, c.col, rec[k], c.v)
			}
		}
	}
}

func datasetColumnIndex(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

// TestDatasetInterrupted cancels generation part-way (as Ctrl-C does through
// env.ctx): the command fails, names the interruption, and neither the
// target nor a temporary file is left; an existing file is not touched.
func TestDatasetInterrupted(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "d.csv")
	if err := os.WriteFile(out, []byte("previous\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	spec := sim.DefaultDatasetSpec()
	spec.Samples = 200
	spec.GridSize = sim.Fixed(8)
	spec.Steps = sim.Fixed(3)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rows := 0
	err := writeDataset(ctx, spec, 2, out, func() {
		if rows++; rows == 3 {
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "interrupted") {
		t.Fatalf("err = %v, want an interruption wrapping context.Canceled", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("directory holds %v, want only d.csv", entries)
	}
	if b, _ := os.ReadFile(out); string(b) != "previous\n" {
		t.Errorf("existing file changed to %q", b)
	}

	// Through the command: a context cancelled before the run exits 1.
	code, _, stderr := runDatasetCLI(t, ctx, "dataset", "--samples", "3", "--grid-size", "8", "--out", filepath.Join(dir, "e.csv"))
	if code != exitFailure || !strings.Contains(stderr, "interrupted") {
		t.Errorf("cancelled run: exit %d, stderr %q", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "e.csv")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("cancelled run left e.csv: %v", err)
	}
}
