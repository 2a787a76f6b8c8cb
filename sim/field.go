package sim

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
)

// Physical constants of the field model (MFN_MODEL.md §2), in volts.
const (
	restMean      = -0.070 // mean of the initial potential
	restStd       = 0.005  // std of the initial potential
	spikeMean     = 0.020  // mean amplitude of a growth event
	spikeStd      = 0.005  // std of a growth event's amplitude
	turingBoost   = 0.005  // depolarisation of a cell whose activator exceeds θ
	vClampLow     = -0.095 // lower ion clamp
	vClampHigh    = 0.040  // upper ion clamp
	morphogenInit = 0.1    // a, i start uniform in [0, morphogenInit)
)

// parallelMinGrid is the smallest grid whose rows are shared between two
// goroutines. Below it a step takes a few microseconds and the hand-off
// costs more than it saves.
const parallelMinGrid = 128

// Second PCG seed words of a run's main random stream (initial V, growth
// events) and of its activator/inhibitor stream.
const (
	streamConst          = 0x6d666e2d73696d31 // "mfn-sim1"
	morphogenStreamConst = 0x6d666e2d74757231 // "mfn-tur1"
)

// ErrUnstable is wrapped by UnstableError: the simulation produced NaN or
// ±Inf, which valid configurations do not do.
var ErrUnstable = errors.New("simulation unstable")

// UnstableError reports the first step (1-based) after which a field held
// a NaN or ±Inf, and where.
type UnstableError struct {
	Step     int    // 1-based step number
	Field    string // "V", or "activator or inhibitor"
	Row, Col int    // the first non-finite cell of V in row-major order; −1 if not in V
}

func (e *UnstableError) Error() string {
	if e.Row < 0 {
		return fmt.Sprintf("%v: non-finite %s at step %d", ErrUnstable, e.Field, e.Step)
	}
	return fmt.Sprintf("%v: non-finite %s at step %d, row %d, column %d", ErrUnstable, e.Field, e.Step, e.Row, e.Col)
}

// Unwrap returns ErrUnstable and ErrNonFinite.
func (e *UnstableError) Unwrap() []error { return []error{ErrUnstable, ErrNonFinite} }

// MaxHistoryValues bounds Steps·N² when Simulate keeps the history
// (2 GiB of float64); longer histories return ErrHistoryTooLarge.
const MaxHistoryValues = 1 << 28

// ErrHistoryTooLarge is returned when a requested history would exceed
// MaxHistoryValues values.
var ErrHistoryTooLarge = errors.New("simulation history too large")

// Metrics counts the events of one run.
type Metrics struct {
	GrowthEvents      int // steps in which a spike was added
	TuringActivations int // cell-steps in which the activator exceeded θ
	ClampedCells      int // cell-steps in which V was clamped to [−95, 40] mV
}

// Result is the outcome of Simulate.
type Result struct {
	N, Steps int
	Field    []float64 // final V, N*N row-major, volts
	History  []float64 // Steps*N*N when requested (V after each step; the initial state is not included), else nil
	Metrics  Metrics
	Lyapunov float64  // history-based Lyapunov estimate; equals HistoryLyapunov(History, Steps, N)
	Features Features // the 18 features of the run; equal to ExtractFeatures(History, Steps, N)
}

// Simulate runs the field simulation of MFN_MODEL.md §2 for cfg and
// returns the final field, the metrics, the Lyapunov estimate and the 18
// features, all computed while stepping so the history is kept only if
// withHistory is true. The same cfg (including Seed) gives a bit-identical
// Result on every machine and for any GOMAXPROCS.
//
// Errors: a *ConfigError (wrapping ErrInvalidConfig) if cfg is invalid;
// ErrHistoryTooLarge (wrapped) if withHistory and Steps·N² exceeds
// MaxHistoryValues; an *UnstableError (wrapping ErrUnstable and ErrNonFinite) naming the step
// at which a NaN or ±Inf appeared.
func Simulate(cfg Config, withHistory bool) (*Result, error) {
	return SimulateContext(context.Background(), cfg, withHistory)
}

// SimulateContext is Simulate with cancellation: it checks ctx before
// every step and returns ctx.Err() if it is done.
func SimulateContext(ctx context.Context, cfg Config, withHistory bool) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cells := cfg.GridSize * cfg.GridSize; withHistory && cfg.Steps > MaxHistoryValues/cells {
		return nil, fmt.Errorf("%w: %d steps of %d×%d is more than %d values", ErrHistoryTooLarge, cfg.Steps, cfg.GridSize, cfg.GridSize, MaxHistoryValues)
	}
	workers := 1
	if cfg.GridSize >= parallelMinGrid && runtime.GOMAXPROCS(0) >= 2 {
		workers = 2
	}
	return run(ctx, cfg, withHistory, workers, false)
}

// run is SimulateContext with an explicit number of row workers (1 or 2)
// and the Turing shortcut optionally disabled.
func run(ctx context.Context, cfg Config, withHistory bool, workers int, forceTuring bool) (*Result, error) {
	return newSimulation(cfg, workers, forceTuring).execute(ctx, withHistory)
}

// execute runs all steps of a freshly initialised simulation.
func (s *simulation) execute(ctx context.Context, withHistory bool) (*Result, error) {
	cfg := s.cfg
	workers := len(s.workers)
	res := &Result{N: s.n, Steps: cfg.Steps}
	cells := s.n * s.n
	if withHistory {
		res.History = make([]float64, cfg.Steps*cells)
	}

	var reqs chan struct{}
	var done chan struct{}
	if workers > 1 {
		reqs, done = make(chan struct{}), make(chan struct{})
		defer close(reqs)
		go func() {
			w := s.workers[1]
			for range reqs {
				for r := s.n / 2; r < s.n; r++ {
					w.row(s, r)
				}
				done <- struct{}{}
			}
		}()
	}

	for step := 1; step <= cfg.Steps; step++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		s.step = step
		s.growth()
		if workers > 1 {
			reqs <- struct{}{}
			for r := 0; r < s.n/2; r++ {
				s.workers[0].row(s, r)
			}
			<-done
		} else {
			for r := range s.n {
				s.workers[0].row(s, r)
			}
		}
		if err := s.finishStep(); err != nil {
			return nil, err
		}
		if withHistory {
			copy(res.History[(step-1)*cells:], s.v)
		}
	}
	res.Field = s.v
	res.Metrics = s.metrics
	res.Lyapunov = s.temporal.result(&res.Features)
	var sc staticScratch
	staticFeatures(s.v, s.n, &res.Features, &sc)
	return res, nil
}

// simulation is the state of one run. Fields are double-buffered: a step
// reads v, a, in and writes vNext, aNext, inNext, then the buffers swap.
type simulation struct {
	cfg Config
	n   int

	// turingLive is false when turingCanFire proved that the Turing
	// update cannot affect the result.
	turingLive bool
	rng        *rand.Rand // main stream: initial state and growth events
	seed       uint64     // key of the per-row jitter streams

	v, a, in             []float64
	vNext, aNext, inNext []float64
	zero                 []float64 // a row of zeros: Dirichlet's outside

	step      int
	spikeRow  int       // row of this step's growth event, or −1
	spikeCol  int       //
	spikeOld  float64   // V at the spiked cell before the event
	spikePrev []float64 // that row as it was before the event

	rows     []rowResult
	workers  []*rowWorker
	scratch  []float64 // 2·cells for the exact stability std, allocated when first needed
	metrics  Metrics
	temporal temporal
}

// rowResult is what a worker reports for one row of one step.
type rowResult struct {
	frameStat
	turing, clamped int
	nonFinite       bool // the row produced a NaN
}

// rowWorker holds one goroutine's scratch rows and its jitter stream.
type rowWorker struct {
	lapA, lapI []float64
	pcg        *rand.PCG
	rng        *rand.Rand
}

// newSimulation draws the initial state. forceTuring disables the Turing
// shortcut (see turingCanFire); tests use it to show the shortcut exact.
func newSimulation(cfg Config, workers int, forceTuring bool) *simulation {
	n := cfg.GridSize
	cells := n * n
	s := &simulation{
		cfg:       cfg,
		n:         n,
		rng:       rand.New(rand.NewPCG(uint64(cfg.Seed), streamConst)),
		seed:      splitmixFinal(uint64(cfg.Seed) ^ 0x243f6a8885a308d3),
		v:         make([]float64, cells),
		vNext:     make([]float64, cells),
		zero:      make([]float64, n),
		spikeRow:  -1,
		spikePrev: make([]float64, n),
		rows:      make([]rowResult, n),
		temporal:  newTemporal(cells),
	}
	for range workers {
		pcg := rand.NewPCG(0, 0)
		s.workers = append(s.workers, &rowWorker{
			lapA: make([]float64, n), lapI: make([]float64, n),
			pcg: pcg, rng: rand.New(pcg),
		})
	}
	for k := range s.v {
		s.v[k] = restMean + float64(restStd*s.rng.NormFloat64())
	}
	// The activator and inhibitor have their own stream, so whether they
	// are drawn does not shift the growth events. Every initial activator
	// is below morphogenInit, so if that bound already rules out crossing
	// θ, they are not even drawn.
	if cfg.TuringEnabled && (forceTuring || turingCanFire(morphogenInit, cfg)) {
		s.turingLive = true
		mrng := rand.New(rand.NewPCG(uint64(cfg.Seed), morphogenStreamConst))
		s.a, s.aNext = make([]float64, cells), make([]float64, cells)
		s.in, s.inNext = make([]float64, cells), make([]float64, cells)
		for k := range s.a {
			s.a[k] = morphogenInit * mrng.Float64()
		}
		for k := range s.in {
			s.in[k] = morphogenInit * mrng.Float64()
		}
	}
	return s
}

// growth applies step 1: with probability spike_probability one uniformly
// chosen cell receives Normal(20 mV, 5 mV).
func (s *simulation) growth() {
	s.spikeRow = -1
	if !(s.rng.Float64() < s.cfg.SpikeProbability) {
		return
	}
	n := s.n
	i, j := s.rng.IntN(n), s.rng.IntN(n)
	k := i*n + j
	s.spikeRow, s.spikeCol, s.spikeOld = i, j, s.v[k]
	copy(s.spikePrev, s.v[i*n:(i+1)*n])
	s.v[k] += spikeMean + float64(spikeStd*s.rng.NormFloat64())
	s.metrics.GrowthEvents++
}

// finishStep folds the row results in row order, checks stability, feeds
// the feature accumulator and swaps the buffers.
func (s *simulation) finishStep() error {
	var st frameStat
	nonFinite := false
	for r := range s.rows {
		rr := &s.rows[r]
		st.energy += rr.energy
		st.sumD += rr.sumD
		st.sumD2 += rr.sumD2
		st.maxD = max(st.maxD, rr.maxD)
		s.metrics.TuringActivations += rr.turing
		s.metrics.ClampedCells += rr.clamped
		nonFinite = nonFinite || rr.nonFinite
	}
	if nonFinite {
		return s.locateNonFinite()
	}
	if s.spikeRow >= 0 {
		// v becomes exactly the previous frame again.
		s.v[s.spikeRow*s.n+s.spikeCol] = s.spikeOld
	}
	prev, cur := s.v, s.vNext
	s.temporal.addFrame(st, func() float64 {
		if s.scratch == nil {
			s.scratch = make([]float64, 2*len(cur))
		}
		return exactDiffStd(cur, prev, s.scratch)
	})
	s.v, s.vNext = s.vNext, s.v
	s.a, s.aNext = s.aNext, s.a
	s.in, s.inNext = s.inNext, s.in
	return nil
}

func (s *simulation) locateNonFinite() error {
	for k, x := range s.vNext {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return &UnstableError{Step: s.step, Field: "V", Row: k / s.n, Col: k % s.n}
		}
	}
	// NaN in V stays in place, so this was the activator or inhibitor,
	// whose clamp replaces NaN by 0: report the step without a cell.
	return &UnstableError{Step: s.step, Field: "activator or inhibitor", Row: -1, Col: -1}
}

// neighbours returns the rows above and below row r of the field f under
// the boundary rule.
func (s *simulation) neighbours(f []float64, r int) (up, down []float64) {
	n := s.n
	ru, rd := r-1, r+1
	switch s.cfg.Boundary {
	case Periodic:
		if ru < 0 {
			ru = n - 1
		}
		if rd == n {
			rd = 0
		}
	case Neumann:
		ru, rd = max(ru, 0), min(rd, n-1)
	default: // Dirichlet
		if ru < 0 {
			up = s.zero
		}
		if rd == n {
			down = s.zero
		}
	}
	if up == nil {
		up = f[ru*n : (ru+1)*n]
	}
	if down == nil {
		down = f[rd*n : (rd+1)*n]
	}
	return up, down
}

// laplacianRow writes the 5-point Laplacian of row c (between rows u and d)
// into dst, summing up + down + left + right − 4·centre as the reference
// does. len(c) ≥ 2.
func laplacianRow(dst, u, c, d []float64, b Boundary) {
	n := len(c)
	dst, u, d = dst[:n], u[:n], d[:n]
	left0, rightN := horizontalEdges(c, b)
	dst[0] = u[0] + d[0] + left0 + c[1] - float64(4.0*c[0])
	j := 1
	if useAVX2 && n >= 6 {
		k := (n - 2) / 4 * 4
		laplacianAVX2(&dst[1], &u[1], &c[1], &d[1], k)
		j += k
	}
	for ; j < n-1; j++ {
		dst[j] = u[j] + d[j] + c[j-1] + c[j+1] - float64(4.0*c[j])
	}
	dst[n-1] = u[n-1] + d[n-1] + c[n-2] + rightN - float64(4.0*c[n-1])
}

// horizontalEdges returns the outside neighbours of the first and the last
// cell of row c under boundary rule b.
func horizontalEdges(c []float64, b Boundary) (left0, rightN float64) {
	n := len(c)
	switch b {
	case Periodic:
		return c[n-1], c[0]
	case Neumann:
		return c[0], c[n-1]
	}
	return 0, 0
}

// diffuseRow writes row c + alpha·∇²c (c between rows u and d) into dst,
// forming the Laplacian as up + down + left + right − 4·centre like the
// reference. len(c) ≥ 2.
func diffuseRow(dst, u, c, d []float64, alpha float64, b Boundary) {
	n := len(c)
	dst, u, d = dst[:n], u[:n], d[:n]
	left0, rightN := horizontalEdges(c, b)
	dst[0] = c[0] + float64(alpha*(u[0]+d[0]+left0+c[1]-float64(4.0*c[0])))
	j := 1
	if useAVX2 && n >= 6 {
		// Cells 1 … 4k in blocks of four, same operations and order.
		k := (n - 2) / 4 * 4
		diffuseAVX2(&dst[1], &u[1], &c[1], &d[1], k, alpha)
		j += k
	}
	for ; j < n-1; j++ {
		dst[j] = c[j] + float64(alpha*(u[j]+d[j]+c[j-1]+c[j+1]-float64(4.0*c[j])))
	}
	dst[n-1] = c[n-1] + float64(alpha*(u[n-1]+d[n-1]+c[n-2]+rightN-float64(4.0*c[n-1])))
}

// row computes row r of the next state: diffusion, Turing step, jitter and
// clamp, and the row's share of the step's statistics.
func (w *rowWorker) row(s *simulation, r int) {
	cfg := &s.cfg
	n := s.n
	lo, hi := r*n, (r+1)*n
	rr := &s.rows[r]
	*rr = rowResult{}

	c := s.v[lo:hi]
	u, d := s.neighbours(s.v, r)
	vn := s.vNext[lo:hi]
	diffuseRow(vn, u, c, d, cfg.Alpha, cfg.Boundary)

	if s.turingLive {
		ac, ic := s.a[lo:hi], s.in[lo:hi]
		au, ad := s.neighbours(s.a, r)
		iu, id := s.neighbours(s.in, r)
		lapA, lapI := w.lapA[:n], w.lapI[:n]
		laplacianRow(lapA, au, ac, ad, cfg.Boundary)
		laplacianRow(lapI, iu, ic, id, cfg.Boundary)
		rr.turing, rr.nonFinite = turingRow(s.aNext[lo:hi], s.inNext[lo:hi], vn, ac, ic, lapA, lapI, cfg)
	}

	if cfg.QuantumJitter {
		w.pcg.Seed(s.rowStreamSeed(r))
		sigma := math.Sqrt(cfg.JitterVar)
		for j := range vn {
			vn[j] += float64(sigma * w.rng.NormFloat64())
		}
	}

	clamped, nonFinite := clampRow(vn)
	rr.clamped = clamped
	rr.nonFinite = rr.nonFinite || nonFinite

	if s.step == 1 {
		rr.energy = rowEnergy(vn)
		return
	}
	prev := c
	if r == s.spikeRow {
		prev = s.spikePrev
	}
	rr.energy, rr.sumD, rr.sumD2, rr.maxD = rowStats(vn, prev)
}

// turingRow applies the pointwise Turing update to one row: from a, i and
// their Laplacians it writes a' and i' clamped to [0, 1] into an and inn,
// adds turingBoost to V where a' > θ, and returns the number of such cells
// and whether a' or i' was NaN.
func turingRow(an, inn, vn, ac, ic, lapA, lapI []float64, cfg *Config) (turing int, nonFinite bool) {
	n := len(an)
	inn, vn, ac, ic, lapA, lapI = inn[:n], vn[:n], ac[:n], ic[:n], lapA[:n], lapI[:n]
	da, di, ra, ri, theta := cfg.Da, cfg.Di, cfg.Ra, cfg.Ri, cfg.TuringThreshold
	j := 0
	if useAVX2 && n >= 4 {
		j = n / 4 * 4
		prm := [7]float64{da, di, ra, ri, theta, turingBoost, 1}
		turing, nonFinite = turingAVX2(&an[0], &inn[0], &vn[0], &ac[0], &ic[0], &lapA[0], &lapI[0], j, &prm)
	}
	for ; j < n; j++ {
		a, i := ac[j], ic[j]
		na := a + (float64(da*lapA[j]) + float64(ra*(float64(a*(1-a))-i)))
		ni := i + (float64(di*lapI[j]) + float64(ri*(a-i)))
		if na > theta {
			vn[j] += turingBoost
			turing++
		}
		if na != na || ni != ni {
			nonFinite = true
		}
		// Clamp to [0, 1] as max(min(·)) does: NaN and −0 become +0.
		if !(na > 0) {
			na = 0
		} else if na > 1 {
			na = 1
		}
		if !(ni > 0) {
			ni = 0
		} else if ni > 1 {
			ni = 1
		}
		an[j], inn[j] = na, ni
	}
	return turing, nonFinite
}

// clampRow clamps V to [vClampLow, vClampHigh] in place and returns the
// number of clamped cells and whether a NaN was seen (NaN is left in place
// so that the error can locate it; ±Inf is clamped like any other value).
func clampRow(vn []float64) (clamped int, nonFinite bool) {
	j := 0
	if useAVX2 && len(vn) >= 4 {
		j = len(vn) / 4 * 4
		clamped, nonFinite = clampAVX2(&vn[0], j, vClampLow, vClampHigh)
	}
	for ; j < len(vn); j++ {
		x := vn[j]
		// The negated test sends NaN down the rare branch.
		if !(x >= vClampLow) {
			if !(x < vClampLow) {
				nonFinite = true
				continue
			}
			vn[j] = vClampLow
			clamped++
		} else if x > vClampHigh {
			vn[j] = vClampHigh
			clamped++
		}
	}
	return clamped, nonFinite
}

// turingCanFire reports whether, starting from activator values at most
// maxA, any cell's updated activator can exceed θ within cfg.Steps steps. If not, the
// Turing update cannot change V, the metrics or the features (a and i are
// not part of the Result), and Simulate skips it with bit-identical output.
//
// The bound: write a + D_a·∇²a = (1−4D_a)·a + D_a·Σ neighbours, a convex
// combination because D_a < 1/4 (outside cells are copies of inside cells
// or 0), so it is at most M = max a. The reaction adds
// r_a·(a(1−a) − i) ≤ r_a·g(M) with g(M) = M(1−M) for M ≤ ½ and ¼ above,
// because a ∈ [0, M] and i ≥ 0. So max a grows by at most r_a·g(M) per
// step; 1e-12 per step covers rounding (each update's error is below 1e-15).
func turingCanFire(maxA float64, cfg Config) bool {
	m := maxA
	for range cfg.Steps {
		g := 0.25
		if m <= 0.5 {
			g = m * (1 - m)
		}
		m += cfg.Ra*g + 1e-12
		if m > cfg.TuringThreshold {
			return true
		}
	}
	return false
}

// rowStreamSeed derives the seed of the jitter stream of row r in the
// current step from the run's seed, so jitter does not depend on which
// goroutine computes the row.
func (s *simulation) rowStreamSeed(r int) (uint64, uint64) {
	k := splitmixFinal(s.seed ^ splitmixFinal(uint64(s.step)))
	return k, splitmixFinal(k ^ splitmixFinal(uint64(r)+0x9e3779b97f4a7c15))
}

// splitmixFinal is the SplitMix64 finaliser (Steele, Lea, Flood 2014): a bijection
// of uint64 whose outputs for nearby inputs look independent.
func splitmixFinal(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
