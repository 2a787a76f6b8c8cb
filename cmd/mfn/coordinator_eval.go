package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"

	"github.com/spf13/pflag"

	"github.com/mfn/mfn/coordinator"
	"github.com/mfn/mfn/node"
)

// evalDataFlags are the coordinator's --eval-data flags: a labelled file
// (the formats of mfn node --data) on which every new global model of a
// job it fits is scored.
type evalDataFlags struct {
	path, labelColumn string
	featureColumns    []string
	classes           []string
}

func (f *evalDataFlags) register(fl *pflag.FlagSet) {
	fl.StringVar(&f.path, "eval-data", "", "labelled file scoring each job's new models (accuracy and loss), in mfn node --data's formats; jobs whose model or schema it does not fit are logged once and not scored")
	fl.StringVar(&f.labelColumn, "eval-label-column", "label", "label column of an --eval-data table")
	fl.StringSliceVar(&f.featureColumns, "eval-feature-columns", nil, "feature columns of an --eval-data table, in order (default: every column but the label)")
	fl.StringSliceVar(&f.classes, "eval-classes", nil, "class list of --eval-data for jobs without a schema class list (default: integer labels 0..K-1)")
}

// check names a bad --eval-data flag (usage error), nil when they are fine.
func (f *evalDataFlags) check() error {
	if f.path == "" {
		return nil
	}
	if _, err := os.Stat(f.path); err != nil {
		return usagef("--eval-data %s: %v", f.path, err)
	}
	if _, err := node.NewEvalData(f.file()); err != nil {
		return usagef("--eval-data %s: %v", f.path, err)
	}
	return nil
}

func (f *evalDataFlags) file() node.FileData {
	return node.FileData{Path: f.path, LabelColumn: f.labelColumn, FeatureColumns: f.featureColumns, Classes: f.classes}
}

// evaluator returns the --eval-data evaluator in front of fallback (the
// regime task's), fallback alone without --eval-data, or a usage error.
func (f *evalDataFlags) evaluator(ctx context.Context, fallback coordinator.Evaluator, logger *slog.Logger) (coordinator.Evaluator, error) {
	if f.path == "" {
		return fallback, nil
	}
	ed, err := node.NewEvalData(f.file())
	if err != nil {
		return nil, usagef("--eval-data %s: %v", f.path, err)
	}
	return &fileEvaluator{ctx: ctx, data: ed, fallback: fallback, log: logger, reported: map[string]bool{}}, nil
}

// fileEvaluator scores models on --eval-data (a coordinator.JobEvaluator):
// a job it does not fit is logged once, naming the mismatch, and then
// scored by the fallback evaluator if any (the regime task's), else not
// at all.
type fileEvaluator struct {
	ctx      context.Context
	data     *node.EvalData
	fallback coordinator.Evaluator
	log      *slog.Logger

	mu       sync.Mutex
	reported map[string]bool // jobs whose mismatch was logged (bounded)
}

// maxReported bounds the jobs whose mismatch is remembered.
const maxReported = 1000

// Evaluate implements coordinator.Evaluator; the coordinator calls
// EvaluateJob instead.
func (e *fileEvaluator) Evaluate(task string, model []float64) (float64, bool, error) {
	if e.fallback == nil {
		return 0, false, nil
	}
	return e.fallback.Evaluate(task, model)
}

// EvaluateJob implements coordinator.JobEvaluator.
func (e *fileEvaluator) EvaluateJob(spec coordinator.JobSpec, model []float64) (float64, float64, bool, error) {
	job := node.EvalJob{Shape: spec.Shape}
	if s := spec.Schema; s != nil {
		job.Features, job.Classes, job.Standardize, job.Mean, job.Std = s.NumFeatures(), s.Classes, s.Standardize, s.Mean, s.Std
	}
	ev, err := e.data.Evaluate(e.ctx, job, model)
	if err == nil {
		return ev.Accuracy, ev.Loss, true, nil
	}
	if !errors.Is(err, node.ErrTask) {
		return 0, 0, false, fmt.Errorf("--eval-data %s: %w", e.data.Path(), err)
	}
	e.mu.Lock()
	first := !e.reported[spec.ID]
	if first && len(e.reported) < maxReported {
		e.reported[spec.ID] = true
	}
	e.mu.Unlock()
	if first {
		e.log.Warn("--eval-data does not fit the job: its models are not scored on it", "job", spec.ID, "file", e.data.Path(), "err", err)
	}
	if e.fallback == nil {
		return 0, 0, false, nil
	}
	acc, ok, err := e.fallback.Evaluate(spec.Task, model)
	return acc, -1, ok, err // no loss from the fallback: -1 is not recorded
}
