package node

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/mfn/mfn/protocol"
	"github.com/mfn/mfn/sitedata"
)

// jobSchema is a job's data schema as its announcements carry it (the
// "schema" metadata written by coordinator.DataSchema.Encode): the reference
// statistics themselves stay at the coordinators, only their hash travels.
type jobSchema struct {
	features    int
	classes     []string
	standardize string
	stats       string // protocol.StatsHash of the reference mean and std
}

// parseSchema reads the "schema" metadata. Errors wrap ErrTask.
func parseSchema(s string) (jobSchema, error) {
	v, err := url.ParseQuery(s)
	if err != nil {
		return jobSchema{}, fmt.Errorf("%w: schema metadata: %v", ErrTask, err)
	}
	var js jobSchema
	if f := v.Get("features"); f != "" {
		if js.features, err = strconv.Atoi(f); err != nil || js.features < 1 {
			return jobSchema{}, fmt.Errorf("%w: schema metadata: features %.20q", ErrTask, f)
		}
	}
	js.classes = v["class"]
	js.standardize, js.stats = v.Get("standardize"), v.Get("stats")
	return js, nil
}

// checkSchema checks the node's data against the schema an announcement
// carries, before the node trains: feature count, class list and
// standardisation. A node with its own file and no class list of its own
// adopts the job's class list: it reloads the file with labels mapped by
// it (once; a later job with another list is refused). A mismatch is an
// error wrapping ErrTask and, for a file, a *sitedata.SchemaError naming
// the file, the column and the mismatch; the node then skips the round
// and submits nothing.
func (a *Agent) checkSchema(ctx context.Context, md map[string]string) error {
	raw := md["schema"]
	if raw == "" {
		return nil
	}
	js, err := parseSchema(raw)
	if err != nil {
		return err
	}
	f := a.cfg.Data.File
	if f.Path == "" {
		return a.checkBuiltinSchema(js)
	}
	if len(js.classes) > 0 {
		if err := a.adoptClasses(ctx, js.classes); err != nil {
			return err
		}
	}
	a.mu.Lock()
	l, f := a.learner, a.cfg.Data.File
	a.mu.Unlock()
	if l == nil {
		return fmt.Errorf("%w: local data not loaded", ErrTask)
	}
	label := f.LabelColumn
	if label == "" {
		label = sitedata.DefaultLabelColumn
	}
	mismatch := func(col, format string, args ...any) error {
		return fmt.Errorf("%w: %w", ErrTask, &sitedata.SchemaError{File: f.Path, Column: col, Msg: fmt.Sprintf(format, args...)})
	}
	if js.features > 0 && l.data.Dim != js.features {
		return mismatch(f.surplusColumn(js.features), "%d feature columns, the job's schema declares %d features", l.data.Dim, js.features)
	}
	if len(js.classes) > 0 && !slices.Equal(f.Classes, js.classes) {
		return mismatch(label, "labels are mapped by the class list %s, the job's is %s", strings.Join(f.Classes, ","), strings.Join(js.classes, ","))
	}
	mode := f.Standardize
	if mode == "" {
		mode = StandardizeSite
	}
	switch js.standardize {
	case "":
	case StandardizeJob:
		if mode != StandardizeJob {
			return mismatch("", "the job standardises with reference statistics (sha256 %.16s…); this node scales by %q (give it the job's statistics: mfn node --standardize job --stats FILE)", js.stats, mode)
		}
		if h := protocol.StatsHash(f.Mean, f.Std); h != js.stats {
			return mismatch("", "the node's reference statistics (sha256 %.16s…) differ from the job's (sha256 %.16s…)", h, js.stats)
		}
	default:
		if mode != js.standardize {
			return mismatch("", "the job standardises %q, this node %q (mfn node --standardize)", js.standardize, mode)
		}
	}
	return nil
}

// checkBuiltinSchema checks a node of a built-in task (simulated regimes,
// MNIST): feature and class counts only, as their labels are integers and
// their scaling is the task's.
func (a *Agent) checkBuiltinSchema(js jobSchema) error {
	a.mu.Lock()
	l := a.learner
	a.mu.Unlock()
	if l == nil {
		return fmt.Errorf("%w: local data not loaded", ErrTask)
	}
	if js.features > 0 && l.data.Dim != js.features {
		return fmt.Errorf("%w: task %s has %d features, the job's schema declares %d", ErrTask, a.cfg.Data.Task, l.data.Dim, js.features)
	}
	if len(js.classes) > 0 && l.data.Classes != len(js.classes) {
		return fmt.Errorf("%w: task %s has %d classes, the job's schema lists %d", ErrTask, a.cfg.Data.Task, l.data.Classes, len(js.classes))
	}
	return nil
}

// NeedsClasses reports whether err, the failure to load d's file, is a
// label that is not an integer while d has no class list (--classes):
// such a node waits for a job whose schema lists the classes (it loads
// the file then, adoptClasses) and skips jobs without one.
func NeedsClasses(d DataConfig, err error) bool {
	f := d.File
	label := f.LabelColumn
	if label == "" {
		label = sitedata.DefaultLabelColumn
	}
	var re *sitedata.RowError
	return f.Path != "" && len(f.Classes) == 0 && !f.DropInvalid && errors.As(err, &re) && re.Column == label
}

// awaitClasses is NeedsClasses for the agent's data, logging the wait.
func (a *Agent) awaitClasses(err error) bool {
	if !NeedsClasses(a.cfg.Data, err) {
		return false
	}
	a.log.Warn("the site's labels need a class list: waiting for a job whose schema lists the classes (or give the node --classes)", "err", err)
	return true
}

// adoptClasses makes a node whose file has no class list of its own map
// labels by the job's: it reloads the file with classes and splits it
// again (same seed, so the same rows are held out). Nothing changes when
// the node already uses classes; a node that adopted another list, or was
// given one (--classes), keeps it (checkSchema then refuses the job).
func (a *Agent) adoptClasses(ctx context.Context, classes []string) error {
	a.mu.Lock()
	f := a.cfg.Data.File
	a.mu.Unlock()
	if len(f.Classes) > 0 {
		return nil
	}
	d := a.cfg.Data
	d.File.Classes = slices.Clone(classes)
	l, err := LoadFile(ctx, d)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrTask, err)
	}
	train, held := splitHoldOut(l.Data, d.HoldOut, d.Seed)
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.cfg.Data.File.Classes) > 0 { // adopted meanwhile
		return nil
	}
	a.cfg.Data.File.Classes = d.File.Classes
	a.learner = NewLearner(train, a.cfg.Train, a.cfg.Seed)
	a.hold = held
	a.momentum = nil
	a.log.Info("local data mapped by the job's class list", "classes", strings.Join(classes, ","), "train", train.Len(), "held_out", holdLen(held))
	return nil
}
