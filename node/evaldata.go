package node

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/mfn/mfn/learn"
	"github.com/mfn/mfn/protocol"
)

// EvalJob is what an evaluation set needs to know of a job to score its
// models: the parameter count, the model's layer shape (input to output;
// nil: inferred from the file and the parameter count, as nodes do) and
// the job's data schema (coordinator.DataSchema's fields; zero: the
// file's own class list and per-site standardisation).
type EvalJob struct {
	Shape       []int
	Features    int
	Classes     []string
	Standardize string // "", "none", "site" or "job"
	Mean, Std   []float64
}

// maxEvalVariants bounds the loaded variants of an evaluation file (one
// per distinct class list and standardisation among the jobs scored).
const maxEvalVariants = 8

// EvalData scores global models on a labelled file held by the
// coordinators (mfn coordinator --eval-data): the same formats and
// options as a node's own file (FileData). The file is loaded once per
// class list and standardisation the jobs declare (at most
// maxEvalVariants at a time), and never changes while the process runs.
// Safe for concurrent use.
type EvalData struct {
	file FileData

	mu       sync.Mutex
	variants map[string]*learn.Dataset
	order    []string // load order, for eviction
}

// NewEvalData checks f and returns its evaluation set. The file is read
// when the first job is scored.
func NewEvalData(f FileData) (*EvalData, error) {
	if f.Path == "" {
		return nil, fmt.Errorf("node: NewEvalData: no file")
	}
	if err := f.validate(); err != nil {
		return nil, err
	}
	return &EvalData{file: f, variants: map[string]*learn.Dataset{}}, nil
}

// Path is the evaluation file.
func (e *EvalData) Path() string { return e.file.Path }

// dataset returns the file loaded for job's class list and scaling.
func (e *EvalData) dataset(ctx context.Context, job EvalJob) (*learn.Dataset, error) {
	f := e.file
	if len(job.Classes) > 0 {
		f.Classes = job.Classes
	}
	switch job.Standardize {
	case "":
	case StandardizeJob:
		f.Standardize, f.Mean, f.Std = StandardizeJob, job.Mean, job.Std
	case StandardizeSite, StandardizeNone:
		f.Standardize = job.Standardize
	default:
		return nil, fmt.Errorf("%w: standardize %q", ErrTask, job.Standardize)
	}
	key := strings.Join(f.Classes, "\x00") + "\x01" + f.Standardize + "\x01" + protocol.StatsHash(f.Mean, f.Std)
	e.mu.Lock()
	defer e.mu.Unlock()
	if d, ok := e.variants[key]; ok {
		return d, nil
	}
	l, err := LoadFile(ctx, DataConfig{File: f})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrTask, err)
	}
	if len(e.order) >= maxEvalVariants {
		delete(e.variants, e.order[0])
		e.order = e.order[1:]
	}
	e.variants[key] = l.Data
	e.order = append(e.order, key)
	return l.Data, nil
}

// Evaluate scores model, a job's flat parameters, on the file: accuracy
// and mean cross-entropy. When the file does not fit the job (feature or
// class count, a label outside the job's class list, a model no model of
// the file has) the error wraps ErrTask and names the file, and the
// column when there is one.
func (e *EvalData) Evaluate(ctx context.Context, job EvalJob, model []float64) (Evaluation, error) {
	d, err := e.dataset(ctx, job)
	if err != nil {
		return Evaluation{}, err
	}
	f := e.file
	if job.Features > 0 && d.Dim != job.Features {
		return Evaluation{}, f.mismatch(d.Dim, d.Classes, job.Features, d.Classes, "schema features "+strconv.Itoa(job.Features))
	}
	md := map[string]string{}
	if len(job.Shape) > 0 {
		parts := make([]string, len(job.Shape))
		for i, v := range job.Shape {
			parts[i] = strconv.Itoa(v)
		}
		md["shape"] = strings.Join(parts, ",")
	}
	arch, err := fileArch(f, d.Dim, d.Classes, md, len(model))
	if err != nil {
		return Evaluation{}, err
	}
	m, err := learn.NewModel(arch, newRand(0, 0))
	if err != nil {
		return Evaluation{}, fmt.Errorf("%w: %v", ErrTask, err)
	}
	copy(m.Params(), model)
	return Evaluate(m, d)
}
