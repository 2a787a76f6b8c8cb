package api

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mfn/mfn/sim"
)

// simStats records the statistics of the runs POST /v1/simulate computed
// (one observation per successful run), with the same bucket bounds as a
// node's mfn_node_sim_* histograms (node.SimBuckets) so that the two
// compare bucket by bucket:
//
//	mfn_coordinator_simulate_fractal_dimension   D_box (feature "D_box")
//	mfn_coordinator_simulate_growth_events       sim.Metrics.GrowthEvents
//	mfn_coordinator_simulate_turing_activations  sim.Metrics.TuringActivations
//	mfn_coordinator_simulate_lyapunov_exponent   sim.Result.Lyapunov
type simStats struct {
	dbox, growth, turing, lyapunov prometheus.Histogram
}

// Bucket bounds, equal to node.SimBuckets (TestSimStatsBucketsMatchNode).
var (
	simFractalBuckets  = prometheus.LinearBuckets(0.1, 0.1, 20)
	simGrowthBuckets   = prometheus.ExponentialBuckets(1, 2, 16)
	simTuringBuckets   = prometheus.ExponentialBuckets(1, 4, 14)
	simLyapunovBuckets = prometheus.LinearBuckets(-24, 2, 15)
)

// newSimStats builds the histograms and registers them on reg (if not
// nil); it fails if they are registered there already.
func newSimStats(reg prometheus.Registerer) (*simStats, error) {
	h := func(name, help string, buckets []float64) prometheus.Histogram {
		return prometheus.NewHistogram(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets})
	}
	s := &simStats{
		dbox: h("mfn_coordinator_simulate_fractal_dimension",
			"Box-counting fractal dimension D_box of each run computed by POST /v1/simulate.", simFractalBuckets),
		growth: h("mfn_coordinator_simulate_growth_events",
			"Growth events (steps with a spike added) of each run computed by POST /v1/simulate.", simGrowthBuckets),
		turing: h("mfn_coordinator_simulate_turing_activations",
			"Turing activations (cell-steps with the activator above threshold) of each run computed by POST /v1/simulate.", simTuringBuckets),
		lyapunov: h("mfn_coordinator_simulate_lyapunov_exponent",
			"Field-history Lyapunov estimate of each run computed by POST /v1/simulate.", simLyapunovBuckets),
	}
	if reg == nil {
		return s, nil
	}
	for _, c := range []prometheus.Collector{s.dbox, s.growth, s.turing, s.lyapunov} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// observe records one run; a nil s records nothing.
func (s *simStats) observe(res *sim.Result) {
	if s == nil {
		return
	}
	s.dbox.Observe(res.Features[sim.FDBox])
	s.growth.Observe(float64(res.Metrics.GrowthEvents))
	s.turing.Observe(float64(res.Metrics.TuringActivations))
	s.lyapunov.Observe(res.Lyapunov)
}
