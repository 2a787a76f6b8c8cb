package node

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mfn/mfn/coordinator"
	"github.com/mfn/mfn/learn"
	"github.com/mfn/mfn/protocol"
	"github.com/mfn/mfn/sitedata"
)

func TestParseSchemaStats(t *testing.T) {
	t.Parallel()
	mean, std := []float64{0, -1.5, 3}, []float64{1, 0.25, 7}
	if protocol.StatsHash(nil, nil) != "" {
		t.Fatal("no statistics must hash to nothing")
	}
	d := &coordinator.DataSchema{Features: 3, Classes: []string{"a b", "c,d", "e&f"}, Standardize: "job", Mean: mean, Std: std}
	js, err := parseSchema(d.Encode())
	if err != nil {
		t.Fatal(err)
	}
	if js.features != 3 || !slices.Equal(js.classes, d.Classes) || js.standardize != "job" || js.stats != protocol.StatsHash(mean, std) {
		t.Fatalf("parsed %+v from %q", js, d.Encode())
	}
	if _, err := parseSchema("features=-3"); !errors.Is(err, ErrTask) {
		t.Fatalf("bad features: %v", err)
	}
}

// TestFileNodeAdoptsJobClasses: a node whose file has no class list of its
// own maps its labels by the job's (in the job's order, not the file's)
// and takes part.
func TestFileNodeAdoptsJobClasses(t *testing.T) {
	mc := newMemCluster(t, 1)
	dir := t.TempDir()
	path := writeBlobs(t, dir, 90, 4, 5, 0)
	id := newNodeIdentity(t, 310)
	mc.enroll(id)
	cfg := mc.nodeConfig(t, id, filepath.Join(dir, "state"), 3)
	cfg.Data = DataConfig{Task: "blobs", Seed: 3, File: FileData{Path: path}} // labels are names: no list, no integers
	var evs events
	cfg.OnEvent = evs.add
	a, stop := runAgent(t, cfg)
	job := fileJob("adopt", []int{4, 3}, 1)
	classes := []string{"blue", "green", "red"}
	job.Schema = &coordinator.DataSchema{Features: 4, Classes: classes, Standardize: "site"}
	mc.createJob(job)
	recs := waitRecords(t, a, "adopt", 1)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 {
		t.Fatalf("records %+v", recs)
	}
	a.mu.Lock()
	got, l := a.cfg.Data.File.Classes, a.learner
	a.mu.Unlock()
	if !slices.Equal(got, classes) || l.data.Classes != 3 {
		t.Fatalf("node maps by %v (%d classes), want the job's %v", got, l.data.Classes, classes)
	}
	// writeBlobs centres class c on feature c: "red" (file class 0) is
	// class 2 under the job's list, so its rows peak on feature 0.
	for i, y := range l.data.Y {
		if y == 2 && l.data.X[i*4] < l.data.X[i*4+2] {
			t.Fatalf("row %d of class red does not peak on feature 0: labels not mapped by the job's list", i)
		}
	}
}

// TestFileNodeRefusesSchema: a job whose schema the site's data does not
// meet is refused with an error naming the file, the column and the
// mismatch, and nothing is submitted.
func TestFileNodeRefusesSchema(t *testing.T) {
	for _, tc := range []struct {
		name     string
		features int
		schema   coordinator.DataSchema
		column   string
		msg      string
	}{
		{"features", 5, coordinator.DataSchema{Features: 4}, "x4", "5 feature columns, the job's schema declares 4 features"},
		{"classes", 4, coordinator.DataSchema{Classes: []string{"blue", "green", "red"}}, "label",
			"labels are mapped by the class list red,green,blue, the job's is blue,green,red"},
		{"standardize", 4, coordinator.DataSchema{Features: 4, Standardize: "job", Mean: []float64{0, 0, 0, 0}, Std: []float64{1, 1, 1, 1}}, "",
			"the job standardises with reference statistics"},
		{"standardize site", 4, coordinator.DataSchema{Standardize: "none"}, "", `the job standardises "none", this node "site"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mc := newMemCluster(t, 1)
			dir := t.TempDir()
			path := writeBlobs(t, dir, 60, tc.features, 2, 0)
			id := newNodeIdentity(t, 311)
			mc.enroll(id)
			cfg := mc.nodeConfig(t, id, filepath.Join(dir, "state"), 4)
			cfg.Data = DataConfig{File: FileData{Path: path, Classes: blobClasses}}
			var evs events
			cfg.OnEvent = evs.add
			_, stop := runAgent(t, cfg)
			job := fileJob("j", []int{4, 3}, 1)
			job.Schema = &tc.schema
			mc.createJob(job)
			eventually(t, 30*time.Second, "the round to be refused", func() bool { return evs.count(EventSkipped, "") > 0 })
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			evs.mu.Lock()
			var err error
			for _, ev := range evs.evs {
				if ev.Kind == EventSkipped {
					err = ev.Err
				}
			}
			evs.mu.Unlock()
			var se *sitedata.SchemaError
			if !errors.Is(err, ErrTask) || !errors.As(err, &se) {
				t.Fatalf("skip error %v: want ErrTask and a *sitedata.SchemaError", err)
			}
			if se.File != path || se.Column != tc.column || !strings.HasPrefix(se.Msg, tc.msg) {
				t.Errorf("schema error %+v: want file %s, column %q, msg starting %q", se, path, tc.column, tc.msg)
			}
			if n := mc.totalSubmits(id.PublicKey()); n != 0 {
				t.Errorf("%d submissions after a refused job, want 0", n)
			}
		})
	}
}

// FuzzParseSchema: announced schemas come from the network (a leader, but
// through a hostile network the node pins keys against; still parsed as
// untrusted): no input panics, errors wrap ErrTask, and what parses is
// within range.
func FuzzParseSchema(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string) {
		js, err := parseSchema(s)
		if err != nil {
			if !errors.Is(err, ErrTask) {
				t.Fatalf("error without ErrTask: %v", err)
			}
			return
		}
		if js.features < 0 {
			t.Fatalf("features %d", js.features)
		}
	})
}

func TestBuiltinSchema(t *testing.T) {
	t.Parallel()
	d := &learn.Dataset{Dim: 18, Classes: 4, X: make([]float64, 18), Y: []int{0}}
	a := &Agent{cfg: Config{Data: DataConfig{Task: TaskMFNRegime}}, learner: NewLearner(d, TrainConfig{}, 1)}
	ctx := context.Background()
	for schema, ok := range map[string]bool{
		"":                                true,
		"features=18":                     true,
		"class=a&class=b&class=c&class=d": true,
		"features=17":                     false,
		"class=a&class=b":                 false,
	} {
		err := a.checkSchema(ctx, map[string]string{"schema": schema})
		if (err == nil) != ok || (err != nil && !errors.Is(err, ErrTask)) {
			t.Errorf("schema %q: err = %v, want ok=%v", schema, err, ok)
		}
	}
}
