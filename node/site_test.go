package node

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mfn/mfn/coordinator"
	"github.com/mfn/mfn/learn"
	"github.com/mfn/mfn/sitedata"
)

var blobClasses = []string{"red", "green", "blue"}

// writeBlobs writes n rows of three well separated Gaussian blobs in
// features dimensions (class c centred at 4 on feature c mod features) as
// a CSV with columns x0..x{features-1} and a "label" column holding class
// names; bad, when positive, puts NaN into that data row (1-based).
func writeBlobs(t testing.TB, dir string, n, features int, seed uint64, bad int) string {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 7))
	var b strings.Builder
	for j := range features {
		fmt.Fprintf(&b, "x%d,", j)
	}
	b.WriteString("label\n")
	for i := range n {
		c := i % 3
		for j := range features {
			v := rng.NormFloat64() * 0.5
			if j == c%features {
				v += 4
			}
			if i+1 == bad && j == 1 {
				b.WriteString("NaN,")
				continue
			}
			fmt.Fprintf(&b, "%g,", v)
		}
		b.WriteString(blobClasses[c] + "\n")
	}
	path := filepath.Join(dir, "site.csv")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func fileJob(id string, shape []int, rounds int) coordinator.JobSpec {
	arch := learn.Arch{Kind: "softmax", Dim: shape[0], Classes: shape[len(shape)-1]}
	if len(shape) > 2 {
		arch.Kind, arch.Hidden = "mlp", shape[1]
		copy(arch.Deeper[:], shape[2:len(shape)-1])
	}
	j := regimeJob(id, rounds, 1, 1)
	j.Task, j.Dim, j.Shape = "blobs", arch.NumParams(), shape
	return j
}

// TestFileNodeTrainsAndSubmits: a node whose own CSV matches the job's
// model trains on it and submits every round; the global model it built
// classifies the file's rows.
func TestFileNodeTrainsAndSubmits(t *testing.T) {
	mc := newMemCluster(t, 1)
	dir := t.TempDir()
	path := writeBlobs(t, dir, 150, 4, 1, 0)
	id := newNodeIdentity(t, 300)
	mc.enroll(id)
	cfg := mc.nodeConfig(t, id, filepath.Join(dir, "state"), 3)
	cfg.Data = DataConfig{Task: "blobs", Seed: 3, File: FileData{Path: path, Classes: blobClasses}}
	var evs events
	cfg.OnEvent = evs.add
	a, stop := runAgent(t, cfg)
	const rounds = 3
	mc.createJob(fileJob("blobs", []int{4, 3}, rounds))
	recs := waitRecords(t, a, "blobs", rounds)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	l := mc.members[mc.leader()]
	// The last acknowledgement may come before its round closes.
	eventually(t, 30*time.Second, "the job to complete", func() bool {
		j, err := l.GetJob("blobs")
		return err == nil && j.State == coordinator.JobCompleted
	})
	for _, r := range recs {
		round, err := l.GetRound("blobs", r.Round)
		if err != nil {
			t.Fatal(err)
		}
		if len(round.Updates) != 1 || round.Updates[0].Node != a.NodeID() || !round.Updates[0].Used {
			t.Fatalf("round %d: updates %+v, want this node's, used", r.Round, round.Updates)
		}
		// 150 rows, 20 % held out: the statement carries 120 samples.
		if round.Updates[0].Samples != 120 {
			t.Errorf("round %d: %d samples, want 120", r.Round, round.Updates[0].Samples)
		}
	}
	m, err := l.LatestModel("blobs")
	if err != nil {
		t.Fatal(err)
	}
	loaded, err := LoadFile(context.Background(), cfg.Data)
	if err != nil {
		t.Fatal(err)
	}
	model, err := learn.NewModel(learn.Arch{Kind: "softmax", Dim: 4, Classes: 3}, newRand(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	copy(model.Params(), m.Params)
	acc, err := learn.Accuracy(model, loaded.Data)
	if err != nil {
		t.Fatal(err)
	}
	if acc < 0.95 {
		t.Errorf("global model accuracy on the site's rows %.3f, want ≥ 0.95 (separable blobs)", acc)
	}
	if n := evs.count(EventSkipped, ""); n != 0 {
		t.Errorf("%d rounds skipped", n)
	}
}

// TestFileNodeRefusesMismatch: a job whose model does not fit the site's
// file (too many feature columns, another class count) is refused with an
// error naming the file, the column and the sizes, and nothing is
// submitted.
func TestFileNodeRefusesMismatch(t *testing.T) {
	for _, tc := range []struct {
		name     string
		features int
		shape    []int
		column   string
		msg      string
	}{
		{"features", 5, []int{4, 3}, "x4", "5 feature columns, the job's model (shape 4,3) takes 4 inputs"},
		{"classes", 4, []int{4, 8, 2}, "label", "3 classes (classes red,green,blue), the job's model (shape 4,8,2) has 2 outputs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mc := newMemCluster(t, 1)
			dir := t.TempDir()
			path := writeBlobs(t, dir, 60, tc.features, 2, 0)
			id := newNodeIdentity(t, 301)
			mc.enroll(id)
			cfg := mc.nodeConfig(t, id, filepath.Join(dir, "state"), 4)
			cfg.Data = DataConfig{File: FileData{Path: path, Classes: blobClasses}} // any task
			var evs events
			cfg.OnEvent = evs.add
			_, stop := runAgent(t, cfg)
			mc.createJob(fileJob("j", tc.shape, 1))
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
			if se.File != path || se.Column != tc.column || se.Msg != tc.msg {
				t.Errorf("schema error %+v: want file %s, column %q, msg %q", se, path, tc.column, tc.msg)
			}
			if n := mc.totalSubmits(id.PublicKey()); n != 0 {
				t.Errorf("%d submissions after a refused job, want 0", n)
			}
		})
	}
}

// TestFileInvalidRow: a NaN in the site's file stops the node before it
// connects, with the row and column; with DropInvalid the row is dropped
// and counted.
func TestFileInvalidRow(t *testing.T) {
	dir := t.TempDir()
	path := writeBlobs(t, dir, 30, 4, 3, 7)
	d := DataConfig{File: FileData{Path: path, Classes: blobClasses}}
	_, err := LoadFile(context.Background(), d)
	var re *sitedata.RowError
	if !errors.As(err, &re) || re.Row != 7 || re.Line != 8 || re.Column != "x1" || re.File != path {
		t.Fatalf("LoadFile error %v (%+v): want a RowError at row 7 (line 8), column x1 of %s", err, re, path)
	}
	// The agent refuses to run on it.
	cfg := DefaultConfig()
	cfg.Identity, cfg.Cluster, cfg.StateDir, cfg.Data = newNodeIdentity(t, 302), testCluster(t, 1), t.TempDir(), d
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Run(context.Background()); !errors.Is(err, sitedata.ErrInvalidRow) {
		t.Fatalf("Run on a file with a NaN row: %v, want ErrInvalidRow", err)
	}
	d.File.DropInvalid = true
	l, err := LoadFile(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	if l.Dropped != 1 || l.Data.Len() != 29 || l.Data.Dim != 4 || l.Data.Classes != 3 {
		t.Fatalf("DropInvalid: dropped %d, %d rows of %d features, %d classes; want 1, 29, 4, 3", l.Dropped, l.Data.Len(), l.Data.Dim, l.Data.Classes)
	}
	// The local split is seeded: same seed, same held-out rows.
	d.Seed = 9
	tr1, ho1, err := LocalData(context.Background(), d, t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, ho2, err := LocalData(context.Background(), d, t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if tr1.Len()+ho1.Len() != 29 || ho1.Len() != 6 || !slicesEqual(ho1.X, ho2.X) {
		t.Fatalf("split: train %d + held out %d (want 23 + 6), same seed same rows %v", tr1.Len(), ho1.Len(), slicesEqual(ho1.X, ho2.X))
	}
}

func slicesEqual(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestFileArch(t *testing.T) {
	f := FileData{Path: "s.csv"}
	deep := learn.Arch{Kind: "mlp", Dim: 4, Hidden: 8, Classes: 3}
	deep.Deeper[0] = 6
	for _, tc := range []struct {
		md   map[string]string
		dim  int
		want learn.Arch
	}{
		{map[string]string{"shape": "4,3"}, 15, learn.Arch{Kind: "softmax", Dim: 4, Classes: 3}},
		{map[string]string{"shape": "4,8,6,3"}, deep.NumParams(), deep},
		{nil, 15, learn.Arch{Kind: "softmax", Dim: 4, Classes: 3}},
		{nil, 8*8 + 3, learn.Arch{Kind: "mlp", Dim: 4, Hidden: 8, Classes: 3}},
	} {
		got, err := fileArch(f, 4, 3, tc.md, tc.dim)
		if err != nil || got != tc.want {
			t.Errorf("fileArch(%v, %d) = %+v, %v; want %+v", tc.md, tc.dim, got, err, tc.want)
		}
	}
	for _, tc := range []struct {
		md  map[string]string
		dim int
	}{
		{map[string]string{"shape": "4,3"}, 16},   // parameter count differs
		{map[string]string{"shape": "5,3"}, 18},   // inputs
		{map[string]string{"shape": "4,8,2"}, 58}, // classes
		{map[string]string{"shape": "4,x,3"}, 15}, // malformed
		{nil, 16}, // fits nothing
	} {
		if got, err := fileArch(f, 4, 3, tc.md, tc.dim); !errors.Is(err, ErrTask) {
			t.Errorf("fileArch(%v, %d) = %+v, %v; want ErrTask", tc.md, tc.dim, got, err)
		}
	}
}

// FuzzFileArch: announcement metadata comes from the network; fileArch
// never panics on it, and what it accepts has the announced parameter count.
func FuzzFileArch(f *testing.F) {
	for _, s := range []string{"4,3", "4,8,6,3", "4,x,3", "", "4,99999999999,3", "4," + strings.Repeat("100000,", 9) + "3", "0,3"} {
		f.Add(s, 15)
	}
	f.Fuzz(func(t *testing.T, shape string, dim int) {
		md := map[string]string{"shape": shape}
		arch, err := fileArch(FileData{Path: "s.csv"}, 4, 3, md, dim)
		if err == nil && (arch.NumParams() != dim || arch.Dim != 4 || arch.Classes != 3) {
			t.Fatalf("shape %q dim %d: accepted %+v with %d parameters", shape, dim, arch, arch.NumParams())
		}
	})
}
