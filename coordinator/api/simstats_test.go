package api

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mfn/mfn/node"
)

// TestSimulateRecordsStats: every successful /v1/simulate run is one
// observation of each histogram, with the run's own values; a refused
// request records nothing.
func TestSimulateRecordsStats(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	srv, _ := newTestAPI(t, seededFake(), func(c *Config) { c.Registry = reg })
	var want struct{ dbox, growth, turing, lyap float64 }
	for _, seed := range []int64{3, 11} {
		resp := request(t, srv, "POST", "/v1/simulate", keyReader, fmt.Sprintf(`{"grid_size":32,"steps":48,"seed":%d}`, seed))
		got := decodeResp[SimulateResponse](t, resp, 200)
		want.dbox += got.Features["D_box"]
		want.growth += float64(got.Metrics.GrowthEvents)
		want.turing += float64(got.Metrics.TuringActivations)
		want.lyap += got.Lyapunov
	}
	wantError(t, request(t, srv, "POST", "/v1/simulate", keyReader, `{"grid_size":2}`), 400, CodeInvalid)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sums := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			if h := m.GetHistogram(); h != nil {
				if h.GetSampleCount() != 2 && strings.HasPrefix(mf.GetName(), "mfn_coordinator_simulate_") {
					t.Errorf("%s: %d observations, want 2", mf.GetName(), h.GetSampleCount())
				}
				sums[mf.GetName()] = h.GetSampleSum()
			}
		}
	}
	for name, w := range map[string]float64{
		"mfn_coordinator_simulate_fractal_dimension":  want.dbox,
		"mfn_coordinator_simulate_growth_events":      want.growth,
		"mfn_coordinator_simulate_turing_activations": want.turing,
		"mfn_coordinator_simulate_lyapunov_exponent":  want.lyap,
	} {
		got, ok := sums[name]
		if !ok || math.Abs(got-w) > 1e-9*math.Max(1, math.Abs(w)) {
			t.Errorf("%s: sum %v (registered %v), want %v", name, got, ok, w)
		}
	}
	if want.growth <= 0 || want.lyap == 0 {
		t.Fatalf("degenerate runs: growth events %v, Lyapunov sum %v", want.growth, want.lyap)
	}
}

// TestSimStatsBucketsMatchNode: the coordinator's and the nodes'
// simulation histograms have the same buckets, so they compare.
func TestSimStatsBucketsMatchNode(t *testing.T) {
	b := node.SimBuckets
	for name, pair := range map[string][2][]float64{
		"fractal":  {simFractalBuckets, b.FractalDimension},
		"growth":   {simGrowthBuckets, b.GrowthEvents},
		"turing":   {simTuringBuckets, b.TuringActivations},
		"lyapunov": {simLyapunovBuckets, b.Lyapunov},
	} {
		if !slices.Equal(pair[0], pair[1]) {
			t.Errorf("%s buckets %v, node's %v", name, pair[0], pair[1])
		}
	}
}
