package node

import (
	"bytes"
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mfn/mfn/aggregate"
	"github.com/mfn/mfn/crypto"
	"github.com/mfn/mfn/learn"
)

func testCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	c := &Cluster{Origin: "mfn.test/unit"}
	for i := range n {
		id, err := crypto.GenerateIdentity(crypto.RoleCoordinator, seedReader(uint64(900+i)))
		if err != nil {
			t.Fatal(err)
		}
		c.Members = append(c.Members, Member{ID: string(rune('a' + i)), QUICAddr: "127.0.0.1:" + string(rune('1'+i)) + "443",
			PublicKey: id.PublicKey(), Recipient: id.Recipient()})
	}
	return c
}

func TestClusterFileRoundTrip(t *testing.T) {
	c := testCluster(t, 3)
	got, err := ParseCluster(bytes.NewReader(c.Format()))
	if err != nil {
		t.Fatal(err)
	}
	if got.Origin != c.Origin || len(got.Members) != 3 {
		t.Fatalf("got %+v", got)
	}
	for i, m := range got.Members {
		w := c.Members[i]
		if m.ID != w.ID || m.QUICAddr != w.QUICAddr || !m.PublicKey.Equal(w.PublicKey) || m.Recipient.String() != w.Recipient.String() {
			t.Errorf("member %d: got %+v, want %+v", i, m, w)
		}
	}
	if !slices.Equal(got.Addrs(), c.Addrs()) || len(got.PinnedKeys()) != 3 || len(got.Recipients()) != 3 {
		t.Error("accessors disagree with the members")
	}
}

func TestClusterFileErrors(t *testing.T) {
	c := testCluster(t, 2)
	lines := strings.Split(strings.TrimSpace(string(c.Format())), "\n")
	member := lines[2] // "coordinator a 127.0.0.1:1443 mfn-ed25519:… age1…"
	f := strings.Fields(member)
	for _, tc := range []struct {
		name, text, want string
	}{
		{"empty", "# nothing\n", "no coordinator listed"},
		{"unknown directive", "peer a b c d\n", `line 1: unknown directive "peer"`},
		{"short line", "coordinator a 127.0.0.1:1\n", "got 3 fields"},
		{"bad key", strings.Replace(member, f[3], "mfn-ed25519:AAAA", 1) + "\n", "line 1: public key"},
		{"bad recipient", strings.Replace(member, f[4], "age1nope", 1) + "\n", "line 1: age recipient"},
		{"bad address", strings.Replace(member, f[2], "localhost", 1) + "\n", "is not host:port"},
		{"duplicate id", member + "\n" + strings.Replace(lines[3], "coordinator b", "coordinator a", 1) + "\n", "id a listed twice"},
		{"duplicate key", member + "\n" + strings.Replace(member, "coordinator a "+f[2], "coordinator z 127.0.0.1:9", 1) + "\n", "public key listed twice"},
		{"two origins", "origin x\norigin y\n" + member + "\n", "line 2: origin given twice"},
		{"origin arity", "origin x y\n" + member + "\n", `line 1: want "origin NAME"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseCluster(strings.NewReader(tc.text))
			if !errors.Is(err, ErrClusterFile) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want ErrClusterFile containing %q", err, tc.want)
			}
		})
	}
	// Comments and blank lines are ignored; origin is optional.
	got, err := ParseCluster(strings.NewReader("\n# c\n" + member + " # trailing comment\n"))
	if err != nil || got.Origin != "" || len(got.Members) != 1 {
		t.Fatalf("got %+v, %v", got, err)
	}
}

func FuzzParseCluster(f *testing.F) {
	c := testCluster(f, 2)
	f.Add(c.Format())
	f.Add([]byte("origin x\ncoordinator a 1.2.3.4:5 mfn-ed25519:AAAA age1x\n"))
	f.Add([]byte("#\n\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseCluster(bytes.NewReader(b))
		if err != nil {
			if !errors.Is(err, ErrClusterFile) {
				t.Fatalf("error %v does not wrap ErrClusterFile", err)
			}
			return
		}
		again, err := ParseCluster(bytes.NewReader(c.Format()))
		if err != nil || !bytes.Equal(again.Format(), c.Format()) {
			t.Fatalf("a parsed cluster does not round-trip: %v", err)
		}
	})
}

func TestArchFor(t *testing.T) {
	for _, tc := range []struct {
		task string
		dim  int
		want learn.Arch
		err  bool
	}{
		{TaskMFNRegime, 76, learn.Arch{Kind: "softmax", Dim: 18, Classes: 4}, false},
		{TaskMFNRegime, 23*16 + 4, learn.Arch{Kind: "mlp", Dim: 18, Hidden: 16, Classes: 4}, false},
		{TaskMFNRegime, 77, learn.Arch{}, true},
		{TaskMNIST, 7850, learn.Arch{Kind: "softmax", Dim: 784, Classes: 10}, false},
		{TaskMNIST, 795*64 + 10, learn.Arch{Kind: "mlp", Dim: 784, Hidden: 64, Classes: 10}, false},
		{"cifar", 76, learn.Arch{}, true},
	} {
		got, err := ArchFor(tc.task, tc.dim)
		if tc.err {
			if !errors.Is(err, ErrTask) {
				t.Errorf("ArchFor(%s, %d) = %v, %v; want ErrTask", tc.task, tc.dim, got, err)
			}
			continue
		}
		if err != nil || got != tc.want || got.NumParams() != tc.dim {
			t.Errorf("ArchFor(%s, %d) = %+v, %v; want %+v", tc.task, tc.dim, got, err, tc.want)
		}
	}
}

// The announced shape decides the model; inference from the parameter
// count is only the fallback when no shape is announced.
func TestArchOfShape(t *testing.T) {
	mlp32 := learn.Arch{Kind: "mlp", Dim: 18, Hidden: 32, Classes: 4}
	for _, tc := range []struct {
		md   map[string]string
		dim  int
		want learn.Arch
		err  bool
	}{
		{map[string]string{"shape": "18,32,4"}, 23*32 + 4, mlp32, false},
		{map[string]string{"shape": " 18, 4"}, 76, learn.Arch{Kind: "softmax", Dim: 18, Classes: 4}, false},
		{nil, 23*32 + 4, mlp32, false}, // fallback: inferred
		{map[string]string{"shape": ""}, 76, learn.Arch{Kind: "softmax", Dim: 18, Classes: 4}, false},
		// Inference would accept these dims; the announced shape refuses.
		{map[string]string{"shape": "18,16,4"}, 23*32 + 4, learn.Arch{}, true},   // parameter count differs
		{map[string]string{"shape": "784,32,10"}, 23*32 + 4, learn.Arch{}, true}, // another task's shape
		{map[string]string{"shape": "18,8,8,4"}, 76, learn.Arch{}, true},         // two hidden layers
		{map[string]string{"shape": "18,x,4"}, 76, learn.Arch{}, true},
		{map[string]string{"shape": "18,0,4"}, 76, learn.Arch{}, true},
		{map[string]string{"shape": strings.Repeat("1,", 40) + "1"}, 76, learn.Arch{}, true},
	} {
		got, err := archOf(TaskMFNRegime, tc.md, tc.dim)
		if tc.err {
			if !errors.Is(err, ErrTask) {
				t.Errorf("archOf(%v, %d) = %+v, %v; want ErrTask", tc.md, tc.dim, got, err)
			}
			continue
		}
		if err != nil || got != tc.want || got.NumParams() != tc.dim {
			t.Errorf("archOf(%v, %d) = %+v, %v; want %+v", tc.md, tc.dim, got, err, tc.want)
		}
	}
}

func smallSite(t testing.TB, seed uint64) *learn.Dataset {
	t.Helper()
	d, err := SimulateSite(context.Background(), DataConfig{Task: TaskMFNRegime, Samples: 24, GridSize: 16, Steps: 8, Seed: seed}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestSimulateSite: same seed, same data whatever the worker count; the
// mix is followed; progress ends at the total.
func TestSimulateSite(t *testing.T) {
	cfg := DataConfig{Task: TaskMFNRegime, Samples: 40, Proportions: []float64{0, 1, 0, 3}, GridSize: 16, Steps: 8, Seed: 3, Workers: 1}
	var last, total int
	a, err := SimulateSite(context.Background(), cfg, func(d, n int) { last, total = d, n })
	if err != nil {
		t.Fatal(err)
	}
	if last != total || total != 40+refPerRegime*NumRegimes {
		t.Errorf("progress ended at %d of %d", last, total)
	}
	cfg.Workers = 3
	b, err := SimulateSite(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(a.X, b.X) || !slices.Equal(a.Y, b.Y) {
		t.Fatal("same seed, different data with another worker count")
	}
	counts := a.LabelCounts()
	if counts[0] != 0 || counts[2] != 0 || counts[3] <= counts[1] {
		t.Errorf("label counts %v do not follow the mix 0:1:0:3", counts)
	}
	for _, v := range a.X {
		if math.IsNaN(v) || math.IsInf(v, 0) || math.Abs(v) > 1e3 {
			t.Fatalf("feature %v out of a standardised range", v)
		}
	}
	cfg.Seed = 4
	c, _ := SimulateSite(context.Background(), cfg, nil)
	if slices.Equal(a.X, c.X) {
		t.Error("another seed gave the same data")
	}
}

// TestDataCache: the cache round-trips, and a corrupt, foreign or
// truncated file is refused (then regenerated by loadData).
func TestDataCache(t *testing.T) {
	d := smallSite(t, 1)
	cfg := DataConfig{Task: TaskMFNRegime, Samples: 24, GridSize: 16, Steps: 8, Seed: 1}
	key := cacheKey(cfg)
	enc := encodeCache(key, d)
	got, err := decodeCache(enc, key)
	if err != nil || !slices.Equal(got.X, d.X) || !slices.Equal(got.Y, d.Y) || got.Dim != d.Dim || got.Classes != d.Classes {
		t.Fatalf("round trip: %v", err)
	}
	other := cfg
	other.Seed = 2
	flipped := slices.Clone(enc)
	flipped[cacheHeader+3] ^= 1
	for name, tc := range map[string]struct {
		b   []byte
		key [32]byte
	}{
		"flipped bit":   {flipped, key},
		"other config":  {enc, cacheKey(other)},
		"truncated":     {enc[:len(enc)-40], key},
		"empty":         {nil, key},
		"other version": {func() []byte { b := slices.Clone(enc[:len(enc)-32]); b[4] = 9; return append(b, make([]byte, 32)...) }(), key},
	} {
		if _, err := decodeCache(tc.b, tc.key); !errors.Is(err, ErrDataCache) {
			t.Errorf("%s: got %v, want ErrDataCache", name, err)
		}
	}
	// loadData: first simulates and writes, then reads back; a damaged
	// file is replaced.
	dir := t.TempDir()
	a, cached, err := loadData(context.Background(), cfg, dir, nil)
	if err != nil || cached {
		t.Fatalf("first load: cached %v, %v", cached, err)
	}
	b, cached, err := loadData(context.Background(), cfg, dir, nil)
	if err != nil || !cached || !slices.Equal(a.X, b.X) {
		t.Fatalf("second load: cached %v, %v", cached, err)
	}
	path := filepath.Join(dir, cacheFile)
	raw, _ := os.ReadFile(path)
	raw[len(raw)/2] ^= 0xff
	os.WriteFile(path, raw, 0o600)
	c, cached, err := loadData(context.Background(), cfg, dir, nil)
	if err != nil || cached || !slices.Equal(a.X, c.X) {
		t.Fatalf("damaged cache: cached %v, %v", cached, err)
	}
}

func FuzzDecodeCache(f *testing.F) {
	d := &learn.Dataset{X: []float64{1, 2, 3, 4}, Y: []int{0, 1}, Dim: 2, Classes: 2}
	var key [32]byte
	f.Add(encodeCache(key, d))
	f.Add([]byte(cacheMagic))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := decodeCache(b, key)
		if err != nil {
			if !errors.Is(err, ErrDataCache) {
				t.Fatalf("error %v does not wrap ErrDataCache", err)
			}
			return
		}
		if !bytes.Equal(encodeCache(key, got), b) {
			t.Fatal("accepted bytes are not the canonical encoding")
		}
	})
}

func TestSplitHoldOut(t *testing.T) {
	d := smallSite(t, 1)
	train, hold := splitHoldOut(d, 0.25, 9)
	if train.Len()+hold.Len() != d.Len() || hold.Len() != 6 {
		t.Fatalf("split %d + %d of %d", train.Len(), hold.Len(), d.Len())
	}
	if tr, h := splitHoldOut(d, -1, 9); tr != d || h != nil {
		t.Fatal("negative fraction must keep everything for training")
	}
	again, _ := splitHoldOut(d, 0.25, 9)
	if !slices.Equal(train.X, again.X) {
		t.Fatal("same seed, another split")
	}
}

// TestLearnerDeterminism: the same node trains the same update from the
// same base model; client momentum makes round 2 depend on round 1.
func TestLearnerDeterminism(t *testing.T) {
	d := smallSite(t, 2)
	arch := learn.Arch{Kind: "softmax", Dim: 18, Classes: 4}
	base := make([]float64, arch.NumParams())
	cfg := TrainConfig{Epochs: 2, Batch: 8, LR: 0.05, Momentum: 0.9}
	a, b := NewLearner(d, cfg, 5), NewLearner(d, cfg, 5)
	da, _, err := a.Update("j", 1, arch, base)
	if err != nil {
		t.Fatal(err)
	}
	db, _, _ := b.Update("j", 1, arch, base)
	if !slices.Equal(da, db) {
		t.Fatal("same seed and base, different updates")
	}
	dc, _, _ := NewLearner(d, cfg, 6).Update("j", 1, arch, base)
	if slices.Equal(da, dc) {
		t.Fatal("another seed, same update")
	}
	a2, _, _ := a.Update("j", 2, arch, base)
	fresh, _, _ := NewLearner(d, cfg, 5).Update("j", 2, arch, base)
	if slices.Equal(a2, fresh) {
		t.Fatal("round 2 ignores the momentum carried from round 1")
	}
	if _, _, err := a.Update("j", 3, learn.Arch{Kind: "softmax", Dim: 784, Classes: 10}, make([]float64, 7850)); !errors.Is(err, ErrTask) {
		t.Fatalf("wrong arch: %v", err)
	}
}

// TestCraft: ALIE moves against the simulated honest mean by z standard
// deviations; label flip trains towards wrong labels; every attack of the
// registry that needs no rule crafts a vector of the right length.
func TestCraft(t *testing.T) {
	d := smallSite(t, 3)
	arch := learn.Arch{Kind: "softmax", Dim: 18, Classes: 4}
	base := make([]float64, arch.NumParams())
	cfg := TrainConfig{Epochs: 1, Batch: 8, LR: 0.05}
	rule, err := aggregate.New("trimmed-mean", aggregate.Params{F: 1})
	if err != nil {
		t.Fatal(err)
	}
	l := NewLearner(d, cfg, 7)
	honest, _, _ := NewLearner(d, cfg, 7).Update("j", 1, arch, base)
	for _, name := range aggregate.AttackNames {
		v, err := l.Craft(name, "j", 1, arch, base, 4, 1, 10, rule)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if len(v) != len(base) {
			t.Errorf("%s: %d values, want %d", name, len(v), len(base))
		}
		if name == "sign-flip" {
			// −mean of the simulated honest updates: opposite to an honest one.
			dot := 0.0
			for i := range v {
				dot += v[i] * honest[i]
			}
			if dot >= 0 {
				t.Errorf("sign-flip update has dot %v ≥ 0 with an honest update", dot)
			}
		}
	}
	again, _ := NewLearner(d, cfg, 7).Craft("alie", "j", 1, arch, base, 4, 1, 10, rule)
	first, _ := l.Craft("alie", "j", 1, arch, base, 4, 1, 10, rule)
	if !slices.Equal(again, first) {
		t.Error("ALIE is not deterministic for a seed")
	}
}

func TestBackoff(t *testing.T) {
	a := &Agent{cfg: Config{BackoffMin: 100 * time.Millisecond, BackoffMax: 2 * time.Second}}
	rng := newRand(1, 2)
	for n := 1; n <= 20; n++ {
		want := min(100*time.Millisecond<<min(n-1, 10), 2*time.Second)
		for range 50 {
			d := a.backoff(n, rng)
			if d < want/2 || d > want {
				t.Fatalf("attempt %d: backoff %v outside [%v, %v]", n, d, want/2, want)
			}
		}
	}
}

// TestStateRecords: records survive a reopen; a damaged record is an
// error, never silently dropped (dropping it could mean submitting twice).
func TestStateRecords(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenState(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.savePending(&pending{Job: "j/1", Round: 3, BaseHash: "ab", Sealed: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	r := Record{Job: "j/1", Round: 3, LogIndex: 9, LeafIndex: 4, UpdateHash: "cd", AckedAt: time.Unix(5, 0).UTC()}
	if err := s.RecordAck(r); err != nil {
		t.Fatal(err)
	}
	if p, err := s.loadPending("j/1", 3); err != nil || p != nil {
		t.Fatalf("pending kept after the record: %v %v", p, err)
	}
	s2, err := OpenState(dir)
	if err != nil {
		t.Fatal(err)
	}
	got, ok := s2.Acked("j/1", 3)
	if !ok || got != r {
		t.Fatalf("reopened: %+v %v, want %+v", got, ok, r)
	}
	if _, ok := s2.Acked("j/1", 4); ok {
		t.Fatal("unrecorded round reported as acknowledged")
	}
	path := filepath.Join(dir, "acks", jobDir("j/1"), roundFile(3))
	os.WriteFile(path, []byte("{"), 0o600)
	if _, err := OpenState(dir); !errors.Is(err, ErrStateFile) {
		t.Fatalf("damaged record: %v, want ErrStateFile", err)
	}
}

func TestConfigValidate(t *testing.T) {
	ok := func() Config {
		c := DefaultConfig()
		c.IdentityDir, c.StateDir, c.Cluster = "k", "s", testCluster(t, 1)
		return c
	}
	base := ok()
	if err := base.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		edit func(*Config)
		want string
	}{
		{func(c *Config) { c.IdentityDir = "" }, "IdentityDir"},
		{func(c *Config) { c.Cluster = nil }, "Cluster is nil"},
		{func(c *Config) { c.StateDir = "" }, "StateDir"},
		{func(c *Config) { c.Byzantine = "shouting" }, `Byzantine "shouting"`},
		{func(c *Config) { c.Data.Samples = 1 }, "Data.Samples 1"},
		{func(c *Config) { c.Data.Proportions = []float64{1, 2} }, "Proportions has 2 values"},
		{func(c *Config) { c.Data.Proportions = []float64{0, 0, 0, 0} }, "must not all be zero"},
		{func(c *Config) { c.Data.Task = "cifar" }, `Task "cifar"`},
		{func(c *Config) { c.Data.Task, c.Data.Partitions = TaskMNIST, 0 }, "Partition 0"},
		{func(c *Config) { c.Train.LR = 0 }, "Train.LR"},
		{func(c *Config) { c.Train.Momentum = 1 }, "Train.Momentum"},
		{func(c *Config) { c.BackoffMin, c.BackoffMax = time.Second, time.Millisecond }, "BackoffMin"},
		{func(c *Config) { c.Cluster = &Cluster{} }, "no coordinator listed"},
	} {
		c := ok()
		tc.edit(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate() = %v, want an error containing %q", err, tc.want)
		}
	}
}

// TestMNISTPartition: a node's MNIST data is its part of an IID split,
// capped at Samples; parts of different nodes are disjoint.
func TestMNISTPartition(t *testing.T) {
	if testing.Short() {
		t.Skip("reads MNIST")
	}
	dir, err := learn.MNISTDir(context.Background())
	if err != nil {
		t.Skipf("MNIST not available: %v", err)
	}
	cfg := DataConfig{Task: TaskMNIST, Samples: 50, Partitions: 4, Seed: 1, MNISTDir: dir}
	a, err := loadMNIST(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Partition = 1
	b, err := loadMNIST(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if a.Len() != 50 || a.Dim != 784 || a.Classes != 10 {
		t.Fatalf("partition: %d samples of dim %d, %d classes", a.Len(), a.Dim, a.Classes)
	}
	for i := range a.Len() {
		if slices.Equal(a.X[i*784:(i+1)*784], b.X[i*784:(i+1)*784]) {
			t.Fatalf("partitions 0 and 1 share sample %d", i)
		}
	}
}
