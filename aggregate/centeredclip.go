package aggregate

import (
	"fmt"
	"math"
	"slices"
	"sync"

	"github.com/mfn/mfn/aggregate/internal/vec"
)

// CenteredClipping (Karimireddy, He and Jaggi, "Learning from History for
// Byzantine Robust Optimization", ICML 2021) starts from a reference point
// v₀ — the previous round's aggregate — and iterates L times
//
//	v_{l+1} = v_l + (1/n) Σᵢ (xᵢ − v_l)·min(1, τ/‖xᵢ − v_l‖)
//
// so that no input moves the result by more than τ/n. Weights are ignored.
// Report.Scores holds each input's distance to the reference v₀.
//
// State: the reference is kept in the value. It starts as the zero vector
// (or what SetReference gave) and every successful Aggregate replaces it
// with the aggregate it returns, so one CenteredClipping value used round
// after round follows the reference algorithm. A coordinator that
// persists its state stores Reference() with the round and calls
// SetReference after a restart. A reference of the wrong length is an
// error (ErrBadArguments); methods are safe for concurrent use, but
// concurrent Aggregate calls see each other's references.
type CenteredClipping struct {
	// Tau is the clipping radius τ > 0; zero means 100 (ByzFL's default).
	Tau float64
	// Iters is the number L of clipping iterations; zero means 1.
	Iters int

	mu  sync.Mutex
	ref []float64
}

// NewCenteredClipping returns the rule with radius tau and iters
// iterations (zero values select the defaults); tau must be finite and
// ≥ 0, iters ≥ 0.
func NewCenteredClipping(tau float64, iters int) (*CenteredClipping, error) {
	r := &CenteredClipping{Tau: tau, Iters: iters}
	return r, r.validate()
}

func (r *CenteredClipping) validate() error {
	if !(r.Tau >= 0) || math.IsInf(r.Tau, 0) {
		return paramErr(r.Name(), "Tau", r.Tau, "finite and ≥ 0 (0 means 100)")
	}
	if r.Iters < 0 {
		return paramErr(r.Name(), "Iters", r.Iters, "≥ 0 (0 means 1)")
	}
	return nil
}

// SetReference sets the starting point of the next Aggregate (copied); nil
// resets it to the zero vector.
func (r *CenteredClipping) SetReference(v []float64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ref = slices.Clone(v)
}

// Reference returns a copy of the current reference (nil when it is the
// zero vector because nothing was aggregated or set yet).
func (r *CenteredClipping) Reference() []float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.ref)
}

// Name returns "centered-clipping".
func (*CenteredClipping) Name() string { return "centered-clipping" }

// Aggregate runs the clipping iterations from the reference and makes the
// result the next reference.
func (r *CenteredClipping) Aggregate(updates [][]float64, weights []float64) ([]float64, Report, error) {
	return runScreened(r, updates, weights)
}

func (r *CenteredClipping) run(s *screened) ([]float64, Report, error) {
	if err := r.validate(); err != nil {
		return nil, Report{Rule: r.Name()}, err
	}
	tau, iters := r.Tau, r.Iters
	if tau == 0 {
		tau = 100
	}
	if iters == 0 {
		iters = 1
	}
	v := r.Reference()
	if v == nil {
		v = make([]float64, s.d)
	}
	if len(v) != s.d {
		return nil, Report{Rule: r.Name()}, fmt.Errorf("%w: centered-clipping: reference has length %d, inputs %d", ErrBadArguments, len(v), s.d)
	}
	n := s.n()
	sqd := make([]float64, n)
	parallelFor(n, int64(n)*int64(s.d), func(i int) { sqd[i] = vec.SqDist(s.x[i], v) })
	first := make([]float64, n)
	for i := range first {
		first[i] = math.Sqrt(sqd[i])
	}
	rows := append(slices.Clip(s.x), v)
	coef := make([]float64, n+1)
	next := make([]float64, s.d)
	for l := 0; l < iters; l++ {
		var kept float64
		for i := 0; i < n; i++ {
			c := 1.0
			if dist := math.Sqrt(sqd[i]); dist > tau {
				c = tau / dist
			}
			coef[i] = c / float64(n)
			kept += coef[i]
		}
		coef[n] = 1 - kept
		rows[n] = v
		sqd, _, _ = combinePass(next, rows, coef, nil)
		v, next = next, v
	}
	r.SetReference(v)
	rep := s.allUsed(r.Name())
	rep.Scores = s.scores(first)
	return v, rep, nil
}
