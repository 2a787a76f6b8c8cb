package node

import (
	"context"
	"math"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mfn/mfn/sim"
)

// histogram returns the count and sum of a registered histogram.
func histogram(t *testing.T, reg *prometheus.Registry, name string) (uint64, float64) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 && mf.GetMetric()[0].Histogram != nil {
			h := mf.GetMetric()[0].Histogram
			return h.GetSampleCount(), h.GetSampleSum()
		}
	}
	t.Fatalf("histogram %s not registered", name)
	return 0, 0
}

// TestSimStatsMatchSimulatedData: after a site simulates its data, the
// node's histograms hold one observation per site run (none for the
// reference runs), and their D_box sum is the D_box of the dataset's rows
// (undoing the standardisation and the signed log).
func TestSimStatsMatchSimulatedData(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := newMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var runs []*sim.Result
	observe := func(res *sim.Result) {
		m.sim.observe(res)
		mu.Lock()
		runs = append(runs, res)
		mu.Unlock()
	}
	cfg := DataConfig{Task: TaskMFNRegime, Samples: 20, GridSize: 16, Steps: 8, Seed: 5, Workers: 2}
	d, err := SimulateSite(WithSimObserver(context.Background(), observe), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != cfg.Samples {
		t.Fatalf("observed %d runs, want the site's %d", len(runs), cfg.Samples)
	}
	std, err := ReferenceStandardizer(context.Background(), 16, 8, 2)
	if err != nil {
		t.Fatal(err)
	}
	var wantDBox, wantGrowth, wantTuring, wantLyap float64
	for i := range d.Len() {
		x := d.X[i*d.Dim+sim.FDBox]*std.Std[sim.FDBox] + std.Mean[sim.FDBox]
		wantDBox += math.Expm1(x) // D_box ≥ 0: signedLog is ln(1+x)
	}
	for _, r := range runs {
		wantGrowth += float64(r.Metrics.GrowthEvents)
		wantTuring += float64(r.Metrics.TuringActivations)
		wantLyap += r.Lyapunov
	}
	for _, c := range []struct {
		name string
		want float64
	}{
		{"mfn_node_sim_fractal_dimension", wantDBox},
		{"mfn_node_sim_growth_events", wantGrowth},
		{"mfn_node_sim_turing_activations", wantTuring},
		{"mfn_node_sim_lyapunov_exponent", wantLyap},
	} {
		n, sum := histogram(t, reg, c.name)
		if n != uint64(cfg.Samples) || math.Abs(sum-c.want) > 1e-9*math.Max(1, math.Abs(c.want)) {
			t.Errorf("%s: %d observations summing to %v, want %d summing to %v", c.name, n, sum, cfg.Samples, c.want)
		}
	}
	if wantDBox <= 0 || wantGrowth <= 0 {
		t.Fatalf("degenerate runs: D_box sum %v, growth events %v", wantDBox, wantGrowth)
	}
}

// TestSimulateSiteWithoutObserver: no observer, no observation (and the
// same data).
func TestSimulateSiteWithoutObserver(t *testing.T) {
	if simObserver(context.Background()) != nil {
		t.Fatal("observer in a bare context")
	}
	cfg := DataConfig{Task: TaskMFNRegime, Samples: 4, GridSize: 16, Steps: 8, Seed: 9}
	a, err := SimulateSite(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int64
	b, err := SimulateSite(WithSimObserver(context.Background(), func(*sim.Result) { n.Add(1) }), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n.Load() != 4 {
		t.Fatalf("%d observations, want 4", n.Load())
	}
	for i := range a.X {
		if a.X[i] != b.X[i] {
			t.Fatalf("observing changed the data at %d", i)
		}
	}
}

// TestAgentExportsSimStats: an agent that simulates its data exports one
// observation per site run; one that finds the data cached exports none.
func TestAgentExportsSimStats(t *testing.T) {
	mc := newMemCluster(t, 1)
	id := newNodeIdentity(t, 3)
	dir := t.TempDir()
	for _, want := range []uint64{uint64(testData(3).Samples), 0} { // simulated, then from the cache
		cfg := mc.nodeConfig(t, id, dir, 3)
		reg := prometheus.NewRegistry()
		cfg.Registry = reg
		a, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := a.PrepareData(context.Background()); err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"mfn_node_sim_fractal_dimension", "mfn_node_sim_growth_events",
			"mfn_node_sim_turing_activations", "mfn_node_sim_lyapunov_exponent"} {
			if n, _ := histogram(t, reg, name); n != want {
				t.Fatalf("%s: %d observations, want %d", name, n, want)
			}
		}
	}
}
