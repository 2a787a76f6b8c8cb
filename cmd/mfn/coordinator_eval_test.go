package main

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mfn/mfn/coordinator"
)

// fixedEvaluator is a fallback that always scores 0.5.
type fixedEvaluator struct{ calls int }

func (f *fixedEvaluator) Evaluate(string, []float64) (float64, bool, error) {
	f.calls++
	return 0.5, true, nil
}

func TestFileEvaluator(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "eval.csv")
	csv := "x0,x1,label\n2,0,a\n0,2,b\n3,0,a\n0,1,b\n"
	if err := os.WriteFile(path, []byte(csv), 0o600); err != nil {
		t.Fatal(err)
	}
	flags := evalDataFlags{path: path, labelColumn: "label"}
	if err := flags.check(); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	fb := &fixedEvaluator{}
	ev, err := flags.evaluator(context.Background(), fb, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	je := ev.(coordinator.JobEvaluator)
	// Softmax 2×2: weight (class c, feature c) = 1 classifies every row.
	spec := coordinator.JobSpec{ID: "fits", Shape: []int{2, 2}, Schema: &coordinator.DataSchema{Classes: []string{"a", "b"}}}
	acc, loss, ok, err := je.EvaluateJob(spec, []float64{1, 0, 0, 1, 0, 0})
	if err != nil || !ok || acc != 1 || !(loss > 0 && loss < 0.7) {
		t.Fatalf("fitting job: acc %v loss %v ok %v err %v", acc, loss, ok, err)
	}
	// A job the file does not fit: logged once, scored by the fallback
	// without a loss.
	other := coordinator.JobSpec{ID: "wide", Task: "t", Shape: []int{3, 2}}
	for range 3 {
		acc, loss, ok, err := je.EvaluateJob(other, make([]float64, 8))
		if err != nil || !ok || acc != 0.5 || loss >= 0 {
			t.Fatalf("misfit job: acc %v loss %v ok %v err %v", acc, loss, ok, err)
		}
	}
	if n := strings.Count(logs.String(), "does not fit the job"); n != 1 || !strings.Contains(logs.String(), "job=wide") || !strings.Contains(logs.String(), path) {
		t.Fatalf("%d mismatch log lines:\n%s", n, logs.String())
	}
	if fb.calls != 3 {
		t.Fatalf("fallback called %d times", fb.calls)
	}
	// Without a fallback nothing is recorded.
	ev2, _ := flags.evaluator(context.Background(), nil, slog.New(slog.DiscardHandler))
	if _, _, ok, err := ev2.(coordinator.JobEvaluator).EvaluateJob(other, make([]float64, 8)); ok || err != nil {
		t.Fatalf("misfit without fallback: ok %v err %v", ok, err)
	}
	bad := evalDataFlags{path: filepath.Join(dir, "missing.csv")}
	if err := bad.check(); err == nil || !strings.Contains(err.Error(), "--eval-data") {
		t.Fatalf("missing file: %v", err)
	}
}
