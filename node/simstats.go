package node

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mfn/mfn/sim"
)

// Statistics of the runs a node simulates for its local data, exported as
// histograms (one observation per run):
//
//	mfn_node_sim_fractal_dimension     the run's box-counting dimension D_box (feature "D_box")
//	mfn_node_sim_growth_events         steps in which a spike was added (sim.Metrics.GrowthEvents)
//	mfn_node_sim_turing_activations    cell-steps in which the activator exceeded θ (sim.Metrics.TuringActivations)
//	mfn_node_sim_lyapunov_exponent     the field-history Lyapunov estimate (sim.Result.Lyapunov)
//
// Only the site's own runs are observed, not the reference runs every
// site simulates to standardise features, and only when the node
// simulates: a node that finds its data in its cache observes nothing.
// The bucket bounds are SimBuckets, shared with the coordinator's
// /v1/simulate statistics so that both histograms compare bucket by bucket.

// SimBuckets are the histogram bucket upper bounds of the simulation
// statistics.
var SimBuckets = struct {
	FractalDimension, GrowthEvents, TuringActivations, Lyapunov []float64
}{
	// D_box of a pattern in the plane lies in [0, 2].
	FractalDimension: prometheus.LinearBuckets(0.1, 0.1, 20),
	// At most one growth event per step: 1 to 32,768 steps.
	GrowthEvents: prometheus.ExponentialBuckets(1, 2, 16),
	// Cell-steps: up to grid² × steps, 1 to 4¹³ ≈ 6.7·10⁷.
	TuringActivations: prometheus.ExponentialBuckets(1, 4, 14),
	// The mean of ln‖ΔV‖ (volts) over steps whose norm exceeds 1e-10:
	// from ln(1e-10) ≈ −23 upwards.
	Lyapunov: prometheus.LinearBuckets(-24, 2, 15),
}

// simStats holds the histograms of the simulated runs.
type simStats struct {
	dbox, growth, turing, lyapunov prometheus.Histogram
}

func newSimStats() *simStats {
	h := func(name, help string, buckets []float64) prometheus.Histogram {
		return prometheus.NewHistogram(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets})
	}
	return &simStats{
		dbox: h("mfn_node_sim_fractal_dimension",
			"Box-counting fractal dimension D_box of each field run this node simulated for its local data.", SimBuckets.FractalDimension),
		growth: h("mfn_node_sim_growth_events",
			"Growth events (steps with a spike added) of each run this node simulated.", SimBuckets.GrowthEvents),
		turing: h("mfn_node_sim_turing_activations",
			"Turing activations (cell-steps with the activator above threshold) of each run this node simulated.", SimBuckets.TuringActivations),
		lyapunov: h("mfn_node_sim_lyapunov_exponent",
			"Field-history Lyapunov estimate of each run this node simulated.", SimBuckets.Lyapunov),
	}
}

func (s *simStats) collectors() []prometheus.Collector {
	return []prometheus.Collector{s.dbox, s.growth, s.turing, s.lyapunov}
}

// observe records one run. It is safe for concurrent use.
func (s *simStats) observe(res *sim.Result) {
	s.dbox.Observe(res.Features[sim.FDBox])
	s.growth.Observe(float64(res.Metrics.GrowthEvents))
	s.turing.Observe(float64(res.Metrics.TuringActivations))
	s.lyapunov.Observe(res.Lyapunov)
}

// simObserverKey keys the run observer in a context.
type simObserverKey struct{}

// WithSimObserver returns a context under which SimulateSite calls observe
// with each of the site's runs (from several goroutines at once), in the
// manner of net/http/httptrace: observation travels with the call, so
// SimulateSite's callers that do not observe are unchanged.
func WithSimObserver(ctx context.Context, observe func(res *sim.Result)) context.Context {
	return context.WithValue(ctx, simObserverKey{}, observe)
}

// simObserver returns the observer of ctx, or nil.
func simObserver(ctx context.Context) func(res *sim.Result) {
	f, _ := ctx.Value(simObserverKey{}).(func(res *sim.Result))
	return f
}
