package aggregate

import (
	"math"

	"github.com/mfn/mfn/aggregate/internal/vec"
)

// GeometricMedian approximates the weighted geometric median
// argmin_z Σ w_i‖z − x_i‖ with the smoothed Weiszfeld iteration of
// Pillutla, Kakade and Harchaoui ("Robust Aggregation for Federated
// Learning", IEEE TSP 2022):
//
//	z₀ = Σ αᵢ xᵢ,  αᵢ = wᵢ/Σw
//	βᵢ = αᵢ / max(ν, ‖z_t − xᵢ‖),  z_{t+1} = Σ βᵢ xᵢ / Σ βᵢ
//
// stopping after MaxIter iterations or when ‖z_{t+1} − z_t‖ ≤ Tol·‖z_{t+1}‖.
// Weights are used (nil means equal; weights summing to zero, or to +Inf
// after bucketing, count as equal). Report.Scores holds each input's
// distance to the aggregate. There is no requirement on n.
//
// Each iteration is one pass over the inputs: the update of a chunk of
// coordinates and the partial distances of every input to the new point
// are computed while that chunk is in cache.
type GeometricMedian struct {
	// Nu is the smoothing ν > 0 that bounds the weights 1/‖z − xᵢ‖; zero
	// means 1e-6 (RFA's choice; ByzFL uses 0.1, which for small updates
	// makes every weight equal and the rule a plain mean).
	Nu float64
	// MaxIter is the maximum number of Weiszfeld iterations; zero means 8.
	MaxIter int
	// Tol is the relative change at which iteration stops; zero means 1e-6.
	Tol float64
}

// NewGeometricMedian returns the rule with the given smoothing, iteration
// limit and tolerance (zero values select the defaults); none may be
// negative or NaN.
func NewGeometricMedian(nu float64, maxIter int, tol float64) (*GeometricMedian, error) {
	r := &GeometricMedian{Nu: nu, MaxIter: maxIter, Tol: tol}
	return r, r.validate()
}

func (r *GeometricMedian) validate() error {
	switch {
	case !(r.Nu >= 0) || math.IsInf(r.Nu, 0):
		return paramErr(r.Name(), "Nu", r.Nu, "finite and ≥ 0 (0 means 1e-6)")
	case r.MaxIter < 0:
		return paramErr(r.Name(), "MaxIter", r.MaxIter, "≥ 0 (0 means 8)")
	case !(r.Tol >= 0):
		return paramErr(r.Name(), "Tol", r.Tol, "≥ 0 (0 means 1e-6)")
	}
	return nil
}

// Name returns "geometric-median".
func (*GeometricMedian) Name() string { return "geometric-median" }

// Aggregate returns the approximate geometric median.
func (r *GeometricMedian) Aggregate(updates [][]float64, weights []float64) ([]float64, Report, error) {
	return runScreened(r, updates, weights)
}

func (r *GeometricMedian) run(s *screened) ([]float64, Report, error) {
	if err := r.validate(); err != nil {
		return nil, Report{Rule: r.Name()}, err
	}
	nu, iters, tol := r.Nu, r.MaxIter, r.Tol
	if nu == 0 {
		nu = 1e-6
	}
	if iters == 0 {
		iters = 8
	}
	if tol == 0 {
		tol = 1e-6
	}
	n := s.n()
	alpha := make([]float64, n)
	if s.w == nil || !normalizeWeights(alpha, s.w) {
		for i := range alpha {
			alpha[i] = 1 / float64(n)
		}
	}
	z, prev := make([]float64, s.d), make([]float64, s.d)
	sqd, _, _ := combinePass(z, s.x, alpha, nil)
	beta := make([]float64, n)
	for t := 0; t < iters; t++ {
		var sum float64
		for i := range beta {
			beta[i] = alpha[i] / max(nu, math.Sqrt(sqd[i]))
			sum += beta[i]
		}
		for i := range beta {
			beta[i] /= sum
		}
		z, prev = prev, z
		var change, norm float64
		sqd, change, norm = combinePass(z, s.x, beta, prev)
		if math.Sqrt(change) <= tol*math.Sqrt(norm) {
			break
		}
	}
	rep := s.allUsed(r.Name())
	for i := range sqd {
		sqd[i] = math.Sqrt(sqd[i])
	}
	rep.Scores = s.scores(sqd)
	return z, rep, nil
}

// combinePass sets z = Σ coef_i·x_i and returns ‖z − x_i‖² for every i,
// and, when prev is not nil, ‖z − prev‖² and ‖z‖². It reads each input
// once: coordinates are processed in cache-sized chunks, each chunk's
// distances accumulated while it is resident. The chunks form fixed parts
// whose partial sums are added in part order, so results do not depend on
// GOMAXPROCS.
func combinePass(z []float64, xs [][]float64, coef []float64, prev []float64) (sqd []float64, change, norm float64) {
	n, d := len(xs), len(z)
	chunk := chunkLen(n)
	nchunks := (d + chunk - 1) / chunk
	parts := min(2*maxParts, max(nchunks, 1))
	stride := n + 2
	partial := make([]float64, parts*stride)
	parallelFor(parts, int64(n)*int64(d)*2, func(p int) {
		acc := partial[p*stride : (p+1)*stride]
		clo, chi := span(nchunks, parts, p, 1)
		for c := clo; c < chi; c++ {
			lo := c * chunk
			hi := min(d, lo+chunk)
			zc := z[lo:hi]
			vec.Combine(zc, xs, coef, lo)
			for i, x := range xs {
				acc[i] += vec.SqDist(zc, x[lo:hi])
			}
			if prev != nil {
				acc[n] += vec.SqDist(zc, prev[lo:hi])
				acc[n+1] += vec.Dot(zc, zc)
			}
		}
	})
	sqd = make([]float64, n)
	for p := 0; p < parts; p++ {
		acc := partial[p*stride : (p+1)*stride]
		for i := range sqd {
			sqd[i] += acc[i]
		}
		change += acc[n]
		norm += acc[n+1]
	}
	return sqd, change, norm
}
