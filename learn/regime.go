package learn

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"

	"github.com/mfn/mfn/sim"
)

// Regime is one class of the MFN regime task: a family of simulation
// parameters. Apply draws one member of the family with rng and writes it
// into cfg (which starts as the task's base configuration).
type Regime struct {
	Name  string
	Apply func(cfg *sim.Config, rng *rand.Rand)
}

func uniform(rng *rand.Rand, lo, hi float64) float64 { return lo + (hi-lo)*rng.Float64() }

// MFNRegimes are the four classes of the MFN regime task. Each jitters its
// parameters within a range so that the classes are families, not points.
// They are told apart by the 18 features: jitter and frequent spikes move
// the potential statistics and create clusters, mild jitter without the
// Turing step raises the mean potential change by an order of magnitude,
// and the Neumann boundary changes the energy trend and the spread:
//
//	0 quiet           defaults (Turing on, periodic, no jitter), alpha U[0.16,0.20], spike U[0.20,0.30]
//	1 noisy-spiking   spike U[0.70,0.90], jitter σ² U[0.003,0.007] V²
//	2 mild-jitter     Turing off, jitter σ² U[1,4]·10⁻⁶ V² (σ of 1–2 mV)
//	3 neumann-spiking Neumann boundary, spike U[0.70,0.90], no jitter
var MFNRegimes = []Regime{
	{"quiet", func(c *sim.Config, r *rand.Rand) {
		c.Alpha = uniform(r, 0.16, 0.20)
		c.SpikeProbability = uniform(r, 0.20, 0.30)
	}},
	{"noisy-spiking", func(c *sim.Config, r *rand.Rand) {
		c.SpikeProbability = uniform(r, 0.70, 0.90)
		c.QuantumJitter = true
		c.JitterVar = uniform(r, 0.003, 0.007)
	}},
	{"mild-jitter", func(c *sim.Config, r *rand.Rand) {
		c.TuringEnabled = false
		c.QuantumJitter = true
		c.JitterVar = uniform(r, 1e-6, 4e-6)
	}},
	{"neumann-spiking", func(c *sim.Config, r *rand.Rand) {
		c.Boundary = sim.Neumann
		c.SpikeProbability = uniform(r, 0.70, 0.90)
	}},
}

// RegimeTaskConfig sets the simulation size of the MFN regime task.
type RegimeTaskConfig struct {
	// GridSize is the simulated grid's side; zero means 32.
	GridSize int
	// Steps is the number of simulation steps; zero means 48.
	Steps int
	// TestFraction is the share of each regime held out for testing; zero
	// means 0.25.
	TestFraction float64
	// Workers bounds concurrent simulations; zero means GOMAXPROCS. The
	// result does not depend on it.
	Workers int
	// Observe, if set, is called with each run's result by
	// SimulateRegimes (from its worker goroutines, so it must be safe for
	// concurrent use), e.g. to export the simulations' statistics.
	Observe func(res *sim.Result)
}

func (c RegimeTaskConfig) withDefaults() RegimeTaskConfig {
	if c.GridSize == 0 {
		c.GridSize = 32
	}
	if c.Steps == 0 {
		c.Steps = 48
	}
	if c.TestFraction == 0 {
		c.TestFraction = 0.25
	}
	if c.Workers == 0 {
		c.Workers = runtime.GOMAXPROCS(0)
	}
	return c
}

// MFNRegimeTask simulates n runs of every regime in MFNRegimes (labels are
// regime indices) and returns standardised training and test splits (the
// statistics come from the training split; TestFraction of each regime is
// held out). Each run's parameters and simulation seed are drawn from rng
// before any simulation starts, so the data depend only on rng's state.
// Nothing is cached. Errors: a simulation's error (an invalid
// configuration, instability) wrapped with the regime and run index, or
// ctx.Err().
func MFNRegimeTask(ctx context.Context, cfg RegimeTaskConfig, n int, rng *rand.Rand) (train, test *Dataset, err error) {
	cfg = cfg.withDefaults()
	if n < 2 || cfg.TestFraction <= 0 || cfg.TestFraction >= 1 || cfg.Workers < 0 {
		return nil, nil, fmt.Errorf("learn: MFNRegimeTask: n %d < 2 or TestFraction %v outside (0,1)", n, cfg.TestFraction)
	}
	labels := make([]int, 0, n*len(MFNRegimes))
	for r := range MFNRegimes {
		for i := 0; i < n; i++ {
			labels = append(labels, r)
		}
	}
	all, err := SimulateRegimes(ctx, cfg, labels, rng)
	if err != nil {
		return nil, nil, err
	}
	nTest := max(1, int(float64(n)*cfg.TestFraction+0.5))
	var trIdx, teIdx []int
	for r := range MFNRegimes {
		for i := 0; i < n; i++ {
			if i < n-nTest {
				trIdx = append(trIdx, r*n+i)
			} else {
				teIdx = append(teIdx, r*n+i)
			}
		}
	}
	train, test = all.Subset(trIdx), all.Subset(teIdx)
	Standardize(train, test)
	return train, test, nil
}

// MFNSiteData simulates n runs for one site whose regimes follow the given
// proportions (one per regime, non-negative, not all zero): the label of
// each run is drawn from proportions, then simulated as in SimulateRegimes.
// The inputs are compressed features as in SimulateRegimes; standardise them with a Standardizer shared
// by all sites.
func MFNSiteData(ctx context.Context, cfg RegimeTaskConfig, proportions []float64, n int, rng *rand.Rand) (*Dataset, error) {
	if len(proportions) != len(MFNRegimes) {
		return nil, fmt.Errorf("learn: MFNSiteData: %d proportions for %d regimes", len(proportions), len(MFNRegimes))
	}
	var total float64
	for i, p := range proportions {
		if !(p >= 0) {
			return nil, fmt.Errorf("learn: MFNSiteData: proportion %d is %v", i, p)
		}
		total += p
	}
	if !(total > 0) || n < 1 {
		return nil, fmt.Errorf("learn: MFNSiteData: proportions sum to %v, n = %d", total, n)
	}
	labels := make([]int, n)
	for i := range labels {
		u := rng.Float64() * total
		k := 0
		for k < len(proportions)-1 && u >= proportions[k] {
			u -= proportions[k]
			k++
		}
		labels[i] = k
	}
	return SimulateRegimes(ctx, cfg.withDefaults(), labels, rng)
}

// SimulateRegimes runs one simulation per label (a regime index) and
// returns one row per run: the 18 features, each mapped through
// sign(x)·ln(1+|x|). The features span orders of magnitude across regimes
// (the mean potential change is ~0.1 mV in quiet fields and ~50 mV in
// spiking ones), so without the compression standardisation would squeeze
// the quiet regimes' differences into a hundredth of a standard deviation. Parameters and seeds are drawn from rng
// in label order before the simulations run in parallel.
func SimulateRegimes(ctx context.Context, cfg RegimeTaskConfig, labels []int, rng *rand.Rand) (*Dataset, error) {
	cfg = cfg.withDefaults()
	cfgs := make([]sim.Config, len(labels))
	for i, l := range labels {
		if l < 0 || l >= len(MFNRegimes) {
			return nil, fmt.Errorf("learn: SimulateRegimes: label %d out of [0,%d)", l, len(MFNRegimes))
		}
		c := sim.DefaultConfig()
		c.GridSize, c.Steps = cfg.GridSize, cfg.Steps
		MFNRegimes[l].Apply(&c, rng)
		c.Seed = rng.Int64()
		cfgs[i] = c
	}
	d := &Dataset{X: make([]float64, len(labels)*sim.NumFeatures), Y: append([]int(nil), labels...),
		Dim: sim.NumFeatures, Classes: len(MFNRegimes)}
	errs := make([]error, len(labels))
	perr := Parallel(ctx, min(cfg.Workers, max(len(labels), 1)), len(labels), func(_, k int) {
		res, err := sim.SimulateContext(ctx, cfgs[k], false)
		if err != nil {
			errs[k] = fmt.Errorf("learn: regime %s run %d: %w", MFNRegimes[labels[k]].Name, k, err)
			return
		}
		if cfg.Observe != nil {
			cfg.Observe(res)
		}
		row := d.X[k*sim.NumFeatures : (k+1)*sim.NumFeatures]
		for j, v := range res.Features {
			row[j] = signedLog(v)
		}
	})
	if perr != nil {
		return nil, perr
	}
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return d, nil
}

// signedLog is sign(x)·ln(1+|x|): monotone, identity-like near zero,
// logarithmic for large magnitudes.
func signedLog(x float64) float64 {
	if x < 0 {
		return -math.Log1p(-x)
	}
	return math.Log1p(x)
}
