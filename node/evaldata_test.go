package node

import (
	"context"
	"errors"
	"math"
	"testing"

	"github.com/mfn/mfn/learn"
	"github.com/mfn/mfn/sitedata"
)

// TestEvalData scores models on a labelled file: the numbers match a
// direct evaluation, the job's class list and scaling are applied, and a
// file that does not fit the job is an ErrTask naming file and column.
func TestEvalData(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := writeBlobs(t, dir, 90, 4, 11, 0)
	ed, err := NewEvalData(FileData{Path: path, Classes: blobClasses})
	if err != nil {
		t.Fatal(err)
	}
	// A model that weighs feature c for class c classifies the blobs.
	arch := learn.Arch{Kind: "softmax", Dim: 4, Classes: 3}
	m, _ := learn.NewModel(arch, newRand(0, 0))
	p := m.Params()
	clear(p)
	// Softmax parameters: Classes×Dim weights row-major, then biases.
	for c := range 3 {
		p[c*4+c] = 2
	}
	ctx := context.Background()
	got, err := ed.Evaluate(ctx, EvalJob{Shape: []int{4, 3}}, p)
	if err != nil {
		t.Fatal(err)
	}
	loaded, err := LoadFile(ctx, DataConfig{File: FileData{Path: path, Classes: blobClasses}})
	if err != nil {
		t.Fatal(err)
	}
	want, err := Evaluate(m, loaded.Data)
	if err != nil {
		t.Fatal(err)
	}
	if got != want || got.Accuracy < 0.9 {
		t.Fatalf("EvalData %+v, direct %+v (want equal, accuracy ≥ 0.9)", got, want)
	}
	// The job's class list reorders the classes: the same model is then
	// wrong on red and blue.
	perm, err := ed.Evaluate(ctx, EvalJob{Shape: []int{4, 3}, Classes: []string{"blue", "green", "red"}}, p)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(perm.Accuracy-got.Accuracy/3) > 0.1 {
		t.Fatalf("with the job's class order accuracy %v, want about a third of %v", perm.Accuracy, got.Accuracy)
	}
	// Job standardisation: reference statistics change the inputs.
	job := EvalJob{Shape: []int{4, 3}, Standardize: StandardizeJob, Mean: []float64{4, 4, 4, 4}, Std: []float64{1, 1, 1, 1}}
	if shifted, err := ed.Evaluate(ctx, job, p); err != nil || shifted.Loss == got.Loss {
		t.Fatalf("job standardisation: %+v, %v", shifted, err)
	}
	for name, tc := range map[string]struct {
		job    EvalJob
		dim    int
		column string
	}{
		"features":   {EvalJob{Shape: []int{5, 3}}, 18, ""},
		"schema":     {EvalJob{Features: 3}, 15, "x3"},
		"classes":    {EvalJob{Classes: []string{"red", "green"}}, 10, "label"},
		"parameters": {EvalJob{}, 7, ""},
	} {
		_, err := ed.Evaluate(ctx, tc.job, make([]float64, tc.dim))
		var se *sitedata.SchemaError
		if !errors.Is(err, ErrTask) || !errors.As(err, &se) || se.File != path || se.Column != tc.column {
			t.Errorf("%s: err = %v, want ErrTask and a *sitedata.SchemaError for %s column %q", name, err, path, tc.column)
		}
	}
	if _, err := NewEvalData(FileData{}); err == nil {
		t.Fatal("no file accepted")
	}
}

// TestEvalDataBoundsVariants: jobs with ever new class lists make the
// evaluation set load new variants, never more than maxEvalVariants.
func TestEvalDataBoundsVariants(t *testing.T) {
	t.Parallel()
	path := writeBlobs(t, t.TempDir(), 30, 4, 12, 0)
	ed, err := NewEvalData(FileData{Path: path, Classes: blobClasses})
	if err != nil {
		t.Fatal(err)
	}
	perms := [][]string{{"red", "green", "blue"}, {"red", "blue", "green"}, {"green", "red", "blue"}, {"green", "blue", "red"}, {"blue", "red", "green"}, {"blue", "green", "red"}}
	for i := range 3 * maxEvalVariants {
		job := EvalJob{Shape: []int{4, 3}, Classes: perms[i%len(perms)], Standardize: []string{"site", "none"}[i/len(perms)%2]}
		if i >= 2*len(perms) {
			job.Standardize, job.Mean, job.Std = StandardizeJob, []float64{float64(i), 0, 0, 0}, []float64{1, 1, 1, 1}
		}
		if _, err := ed.Evaluate(context.Background(), job, make([]float64, 15)); err != nil {
			t.Fatal(err)
		}
		ed.mu.Lock()
		n, m := len(ed.variants), len(ed.order)
		ed.mu.Unlock()
		if n > maxEvalVariants || n != m {
			t.Fatalf("after %d jobs: %d variants loaded (%d in order), limit %d", i+1, n, m, maxEvalVariants)
		}
	}
}
