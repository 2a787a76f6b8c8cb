package node

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/mfn/mfn/learn"
	"github.com/mfn/mfn/sitedata"
)

// Standardisation choices of a site's file (FileData.Standardize).
const (
	// StandardizeSite scales every feature by the mean and standard
	// deviation of the site's own rows (the default).
	StandardizeSite = "site"
	// StandardizeNone leaves the inputs as read.
	StandardizeNone = "none"
	// StandardizeJob applies the job's reference statistics
	// (FileData.Mean and Std), so every site scales inputs alike.
	StandardizeJob = "job"
)

// FileData is a site's own data file: the node reads it with package
// sitedata (CSV, Parquet, .npy with a labels file, .npz, IDX pairs, or a
// folder of recorded MFN fields) instead of simulating. The rows never
// leave the node; only model updates do.
type FileData struct {
	// Path is the file (or folder of fields); empty means the node has no
	// file and uses its Task's built-in data.
	Path string
	// LabelColumn names a table's label column; empty means "label".
	LabelColumn string
	// FeatureColumns picks a table's feature columns in this order; empty
	// means every column but the label.
	FeatureColumns []string
	// Classes is the class list labels are mapped by (index = class id,
	// never order of appearance); empty means integer labels 0..K−1 with
	// K the largest label plus one.
	Classes []string
	// Labels is the labels file of .npy inputs, IDX images or a folder of
	// fields (see sitedata.Options.Labels); empty means the default.
	Labels string
	// DropInvalid drops rows with NaN, ±Inf, empty or unparsable values
	// (LoadFile reports how many) instead of refusing the file.
	DropInvalid bool
	// Standardize is StandardizeSite (empty means it), StandardizeNone or
	// StandardizeJob with Mean and Std, one per feature. A folder of MFN
	// fields used for the mfn-regime task is always scaled with the
	// task's reference statistics (ReferenceStandardizer), as simulated
	// sites are.
	Standardize string
	Mean, Std   []float64
}

// validate names the first bad field of f.
func (f FileData) validate() error {
	switch f.Standardize {
	case "", StandardizeSite, StandardizeNone:
	case StandardizeJob:
		if len(f.Mean) == 0 || len(f.Mean) != len(f.Std) {
			return fmt.Errorf("node: Config.Data.File.Standardize job needs Mean and Std of equal, non-zero length (have %d and %d)", len(f.Mean), len(f.Std))
		}
	default:
		return fmt.Errorf("node: Config.Data.File.Standardize %q must be %s, %s or %s", f.Standardize, StandardizeSite, StandardizeNone, StandardizeJob)
	}
	if len(f.Classes) == 1 {
		return fmt.Errorf("node: Config.Data.File.Classes has one class %q; a classifier needs at least 2", f.Classes[0])
	}
	return f.options(TaskMNIST).Schema.Validate()
}

// options are the sitedata options of f for a job of task (standardised
// with the task's reference statistics when the site's file is a folder
// of MFN fields for the regime task; see LoadFile).
func (f FileData) options(task string) sitedata.Options {
	opt := sitedata.Options{
		LabelColumn: f.LabelColumn, FeatureColumns: f.FeatureColumns, Labels: f.Labels, DropInvalid: f.DropInvalid,
		Schema: sitedata.Schema{Classes: f.Classes},
	}
	switch f.Standardize {
	case "", StandardizeSite:
		opt.Schema.Standardize = sitedata.StandardizeSite
	case StandardizeJob:
		opt.Schema.Standardize, opt.Schema.Mean, opt.Schema.Std = sitedata.StandardizeJob, f.Mean, f.Std
	}
	return opt
}

// LoadFile reads the site's file of d (d.File.Path must be set) through
// package sitedata and standardises it as d.File says; the result's
// Dropped counts the rows DropInvalid skipped. For the mfn-regime task
// the file must hold the task's 18 features (a folder of recorded fields
// does) and is scaled with ReferenceStandardizer.
//
// Errors: *sitedata.SchemaError naming the file, column and mismatch,
// *sitedata.RowError naming the row (without DropInvalid), and the other
// errors of sitedata.Load.
func LoadFile(ctx context.Context, d DataConfig) (*sitedata.Loaded, error) {
	f := d.File
	if f.Path == "" {
		return nil, errors.New("node: LoadFile: Config.Data.File.Path is empty")
	}
	if err := f.validate(); err != nil {
		return nil, err
	}
	opt := f.options(d.Task)
	if d.Task == TaskMFNRegime {
		std, err := ReferenceStandardizer(ctx, refGridSize, refSteps, d.Workers)
		if err != nil {
			return nil, err
		}
		opt.Schema = sitedata.Schema{Features: len(std.Mean), Classes: f.Classes, Standardize: sitedata.StandardizeJob, Mean: std.Mean, Std: std.Std}
	}
	return sitedata.Load(f.Path, opt)
}

// acceptsTask says whether a node with data d takes part in jobs of task:
// a node with built-in data only in jobs of its Task; a node with its own
// file in jobs of its Task, or of any task when Task is empty (the job's
// model shape then decides, see jobArch).
func (d DataConfig) acceptsTask(task string) error {
	if task == "" || task == d.Task || (d.File.Path != "" && d.Task == "") {
		return nil
	}
	if d.File.Path != "" {
		return fmt.Errorf("%w: job task %q, node data %s serves task %q", ErrTask, task, d.File.Path, d.Task)
	}
	return fmt.Errorf("%w: job task %q, node data %q", ErrTask, task, d.Task)
}

// jobArch returns the model of an announced job the node trains: for
// built-in data as archOf says; for a site's own file the model whose
// input and output sizes are the file's feature and class counts, taken
// from the "shape" metadata when present (input,classes is softmax;
// input,H1,...,classes an MLP with those hidden widths), otherwise
// inferred from dim as ArchFor does (softmax, one hidden layer, or
// cnn:mnist for 784 inputs). A mismatch is an error wrapping ErrTask and
// a *sitedata.SchemaError naming the file, the column and the sizes, so
// the node skips the round and submits nothing.
func (a *Agent) jobArch(md map[string]string, dim int) (learn.Arch, error) {
	if a.cfg.Data.File.Path == "" {
		return archOf(a.cfg.Data.Task, md, dim)
	}
	a.mu.Lock()
	l := a.learner
	a.mu.Unlock()
	if l == nil {
		return learn.Arch{}, fmt.Errorf("%w: local data not loaded", ErrTask)
	}
	return fileArch(a.cfg.Data.File, l.data.Dim, l.data.Classes, md, dim)
}

// maxHiddenWidth bounds an announced hidden layer, as learn.ParseArch
// bounds a spec's.
const maxHiddenWidth = 100000

// fileArch is jobArch for a file of in features and classes classes.
func fileArch(f FileData, in, classes int, md map[string]string, dim int) (learn.Arch, error) {
	var shape []int
	if s := md["shape"]; s != "" {
		var err error
		if shape, err = parseShape(s); err != nil {
			return learn.Arch{}, err
		}
		if len(shape) < 2 || len(shape) > learn.MaxHiddenLayers+2 {
			return learn.Arch{}, fmt.Errorf("%w: shape %v: want input,classes or input,H1,...,classes (at most %d hidden layers)", ErrTask, shape, learn.MaxHiddenLayers)
		}
		if err := f.mismatch(in, classes, shape[0], shape[len(shape)-1], "shape "+s); err != nil {
			return learn.Arch{}, err
		}
		arch := learn.Arch{Kind: "softmax", Dim: in, Classes: classes}
		if len(shape) > 2 {
			arch.Kind, arch.Hidden = "mlp", shape[1]
			copy(arch.Deeper[:], shape[2:len(shape)-1])
		}
		// Hidden widths come from the network: bounded as model specs
		// are, so that the parameter count cannot overflow.
		for _, h := range shape[1 : len(shape)-1] {
			if h > maxHiddenWidth {
				return learn.Arch{}, fmt.Errorf("%w: shape %v: hidden width %d above %d", ErrTask, shape, h, maxHiddenWidth)
			}
		}
		if n := arch.NumParams(); n != dim {
			return learn.Arch{}, fmt.Errorf("%w: shape %v has %d parameters, the model %d", ErrTask, shape, n, dim)
		}
		return arch, nil
	}
	soft := learn.Arch{Kind: "softmax", Dim: in, Classes: classes}
	if dim == soft.NumParams() {
		return soft, nil
	}
	if per := in + 1 + classes; dim > classes && (dim-classes)%per == 0 {
		return learn.Arch{Kind: "mlp", Dim: in, Hidden: (dim - classes) / per, Classes: classes}, nil
	}
	if cnn := (learn.Arch{Kind: "cnn", Dim: in, Classes: classes}); in == 28*28 && cnn.NumParams() == dim {
		return cnn, nil
	}
	return learn.Arch{}, fmt.Errorf("%w: %w", ErrTask, &sitedata.SchemaError{File: f.Path,
		Msg: fmt.Sprintf("the job's model has %d parameters, which fit no model of this file's %d features and %d classes (softmax would have %d)", dim, in, classes, soft.NumParams())})
}

// mismatch compares the file's feature and class counts with a job's
// model input and output sizes; the error names the file and the column.
func (f FileData) mismatch(in, classes, wantIn, wantClasses int, what string) error {
	if in != wantIn {
		col := f.surplusColumn(wantIn)
		return fmt.Errorf("%w: %w", ErrTask, &sitedata.SchemaError{File: f.Path, Column: col,
			Msg: fmt.Sprintf("%d feature columns, the job's model (%s) takes %d inputs", in, what, wantIn)})
	}
	if classes != wantClasses {
		col := f.LabelColumn
		if col == "" {
			col = sitedata.DefaultLabelColumn
		}
		list := "integer labels 0.." + fmt.Sprint(classes-1)
		if len(f.Classes) > 0 {
			list = "classes " + strings.Join(f.Classes, ",")
		}
		return fmt.Errorf("%w: %w", ErrTask, &sitedata.SchemaError{File: f.Path, Column: col,
			Msg: fmt.Sprintf("%d classes (%s), the job's model (%s) has %d outputs", classes, list, what, wantClasses)})
	}
	return nil
}

// surplusColumn names the first feature column of the file beyond the
// job's want inputs: the columns the node was told to use
// (FeatureColumns), or else the one sitedata names when it checks the
// file against want features. It reads the file again, which happens
// only when a job does not fit. Empty when the file has fewer features.
func (f FileData) surplusColumn(want int) string {
	if len(f.FeatureColumns) > want {
		return f.FeatureColumns[want]
	}
	opt := f.options("")
	opt.Schema = sitedata.Schema{Features: want, Classes: f.Classes}
	_, err := sitedata.Load(f.Path, opt)
	var se *sitedata.SchemaError
	if errors.As(err, &se) {
		return se.Column
	}
	return ""
}
