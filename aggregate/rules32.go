package aggregate

import (
	"fmt"
	"math"
	"slices"
)

// AggregateSource methods: the float32, block-by-block versions of the
// rules' Aggregate (see SourceRule).

// AggregateSource returns the weighted mean of the updates of src.
func (r FedAvg) AggregateSource(src Source, weights []float64) ([]float64, Report, error) {
	s, rd, err := screenSource(r.Name(), src, weights)
	if err != nil {
		return nil, Report{Rule: r.Name()}, err
	}
	// A non-finite input makes the mean non-finite where it is; check the
	// values only then, sparing a pass in the common case.
	for {
		coef := make([]float64, s.n())
		if s.w == nil {
			for i := range coef {
				coef[i] = 1 / float64(s.n())
			}
		} else if !normalizeWeights(coef, s.w) {
			return nil, Report{Rule: r.Name()}, fmt.Errorf("%w: fedavg: the valid inputs' weights do not sum to a positive finite number", ErrBadArguments)
		}
		out := make([]float64, s.d)
		if err := combineSource(out, rd, allIndices(s.n()), coef); err != nil {
			return nil, Report{Rule: r.Name()}, wrapRule(r.Name(), err)
		}
		if !s.unchecked || finiteF64(out) {
			return out, s.allUsed(r.Name()), nil
		}
		if err := checkValuesSource(s, rd); err != nil {
			return nil, Report{Rule: r.Name()}, wrapRule(r.Name(), err)
		}
	}
}

// finiteF64 reports whether every value of x is finite. The mean of
// finite float32 values weighted by coefficients summing to one cannot
// overflow float64, so a non-finite mean reveals a non-finite input.
func finiteF64(x []float64) bool {
	var acc float64
	for _, v := range x {
		acc += v - v // NaN for NaN and ±Inf, zero otherwise
	}
	return acc == 0
}

// AggregateSource returns the update of src with the lowest Krum score,
// widened to float64.
func (r *Krum) AggregateSource(src Source, weights []float64) ([]float64, Report, error) {
	s, rd, err := screenSource(r.Name(), src, weights)
	if err != nil {
		return nil, Report{Rule: r.Name()}, err
	}
	dist, err := distancesSource(s, rd)
	if err != nil {
		return nil, Report{Rule: r.Name()}, wrapRule(r.Name(), err)
	}
	if err := krumRequirement(r.Name(), s, r.F); err != nil {
		return nil, Report{Rule: r.Name()}, err
	}
	n := s.n()
	scores := krumScores(dist, n, allIndices(n), n-s.budget(r.F)-2)
	best := 0
	for a := 1; a < n; a++ {
		c, err := compareScoredSource(rd, scores, a, best)
		if err != nil {
			return nil, Report{Rule: r.Name()}, wrapRule(r.Name(), err)
		}
		if c < 0 {
			best = a
		}
	}
	out, err := rd.widenRow(best)
	if err != nil {
		return nil, Report{Rule: r.Name()}, wrapRule(r.Name(), err)
	}
	rep := s.report(r.Name(), []int{best}, "not selected by krum")
	rep.Scores = s.scores(scores)
	return out, rep, nil
}

// compareScoredSource is compareScored for valid inputs a and b of rd.
func compareScoredSource(rd *reader, scores []float64, a, b int) (int, error) {
	if c := cmpFloat(scores[a], scores[b]); c != 0 {
		return c, nil
	}
	return rd.compareRows(a, b)
}

// AggregateSource returns the mean of the M best-scored updates of src.
func (r *MultiKrum) AggregateSource(src Source, weights []float64) ([]float64, Report, error) {
	s, rd, err := screenSource(r.Name(), src, weights)
	if err != nil {
		return nil, Report{Rule: r.Name()}, err
	}
	dist, err := distancesSource(s, rd)
	if err != nil {
		return nil, Report{Rule: r.Name()}, wrapRule(r.Name(), err)
	}
	n, f := s.n(), s.budget(r.F)
	if err := krumRequirement(r.Name(), s, r.F); err != nil {
		return nil, Report{Rule: r.Name()}, err
	}
	m := r.M
	switch {
	case m == 0:
		m = n - f
	case m > n && m <= n+s.faulty():
		m = n
	}
	if m < 1 || m > n {
		return nil, Report{Rule: r.Name()}, s.requirement(r.Name(), r.F, fmt.Sprintf("1 ≤ m ≤ n with m = %d", m))
	}
	scores := krumScores(dist, n, allIndices(n), n-f-2)
	order := allIndices(n)
	var cmpErr error
	slices.SortStableFunc(order, func(a, b int) int {
		c, err := compareScoredSource(rd, scores, a, b)
		if err != nil && cmpErr == nil {
			cmpErr = err
		}
		return c
	})
	if cmpErr != nil {
		return nil, Report{Rule: r.Name()}, wrapRule(r.Name(), cmpErr)
	}
	chosen := order[:m]
	slices.Sort(chosen)
	coef := make([]float64, m)
	for k := range coef {
		coef[k] = 1 / float64(m)
	}
	out := make([]float64, s.d)
	if err := combineSource(out, rd, chosen, coef); err != nil {
		return nil, Report{Rule: r.Name()}, wrapRule(r.Name(), err)
	}
	rep := s.report(r.Name(), chosen, "not among the m best multi-krum scores")
	rep.Scores = s.scores(scores)
	return out, rep, nil
}

// AggregateSource returns the coordinate-wise median of the updates of
// src.
func (r *Median) AggregateSource(src Source, weights []float64) ([]float64, Report, error) {
	s, rd, err := screenSource(r.Name(), src, weights)
	if err != nil {
		return nil, Report{Rule: r.Name()}, err
	}
	need := func() error {
		if f := s.budget(r.F); 2*f >= s.n() {
			return s.requirement(r.Name(), r.F, fmt.Sprintf("f < n/2, i.e. n > %d", 2*f))
		}
		return nil
	}
	op := func() colOpF32 { return colOpF32{sixteen: medianOf16, ranks: medianRanks, one: medianOf} }
	out := make([]float64, s.d)
	if err := coordwiseCheckedSource(s, rd, out, need, op); err != nil {
		return nil, Report{Rule: r.Name()}, wrapRule(r.Name(), err)
	}
	return out, s.allUsed(r.Name()), nil
}

// AggregateSource returns the coordinate-wise trimmed mean of the updates
// of src.
func (r *TrimmedMean) AggregateSource(src Source, weights []float64) ([]float64, Report, error) {
	s, rd, err := screenSource(r.Name(), src, weights)
	if err != nil {
		return nil, Report{Rule: r.Name()}, err
	}
	need := func() error {
		if f := s.budget(r.F); 2*f >= s.n() {
			return s.requirement(r.Name(), r.F, fmt.Sprintf("2f < n, i.e. n > %d", 2*f))
		}
		return nil
	}
	op := func() colOpF32 {
		f := s.budget(r.F)
		return colOpF32{
			sixteen: func(sorted []float32, n int, dst *[16]float64) { trimmedMean16(sorted, n, f, dst) },
			one:     func(col, tmp []float64) float64 { return trimmedMeanOf(col, tmp, f) },
		}
	}
	out := make([]float64, s.d)
	if err := coordwiseCheckedSource(s, rd, out, need, op); err != nil {
		return nil, Report{Rule: r.Name()}, wrapRule(r.Name(), err)
	}
	return out, s.allUsed(r.Name()), nil
}

// AggregateSource returns the approximate geometric median of the updates
// of src.
func (r *GeometricMedian) AggregateSource(src Source, weights []float64) ([]float64, Report, error) {
	if err := r.validate(); err != nil {
		return nil, Report{Rule: r.Name()}, err
	}
	s, rd, err := screenSource(r.Name(), src, weights)
	if err != nil {
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
	var sqd []float64
	var alpha []float64
	z := make([]float64, s.d)
	ps := make(passScratch, 2*maxParts)
	for {
		n := s.n()
		alpha = make([]float64, n)
		if s.w == nil || !normalizeWeights(alpha, s.w) {
			for i := range alpha {
				alpha[i] = 1 / float64(n)
			}
		}
		if sqd, _, _, err = combinePassSource(z, rd, alpha, nil, ps); err != nil {
			return nil, Report{Rule: r.Name()}, wrapRule(r.Name(), err)
		}
		// The first pass is the mean: non-finite exactly when an input is.
		if !s.unchecked || finiteF64(sqd) {
			break
		}
		if err := checkValuesSource(s, rd); err != nil {
			return nil, Report{Rule: r.Name()}, wrapRule(r.Name(), err)
		}
	}
	s.unchecked = false
	n := s.n()
	prev := make([]float64, s.d)
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
		if sqd, change, norm, err = combinePassSource(z, rd, beta, prev, ps); err != nil {
			return nil, Report{Rule: r.Name()}, wrapRule(r.Name(), err)
		}
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

// AggregateSource runs the clipping iterations from the reference on the
// updates of src and makes the result the next reference.
func (r *CenteredClipping) AggregateSource(src Source, weights []float64) ([]float64, Report, error) {
	if err := r.validate(); err != nil {
		return nil, Report{Rule: r.Name()}, err
	}
	s, rd, err := screenSource(r.Name(), src, weights)
	if err != nil {
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
	ps := make(passScratch, 2*maxParts)
	next := make([]float64, s.d)
	var sqd []float64
	for {
		// The distances to the reference: a pass with all coefficients
		// zero and the reference as the extra row (z = v).
		if sqd, _, _, err = combinePassExtra(next, rd, make([]float64, s.n()), v, 1, nil, ps); err != nil {
			return nil, Report{Rule: r.Name()}, wrapRule(r.Name(), err)
		}
		if finiteF64(sqd) {
			break
		}
		if err := checkValuesSource(s, rd); err != nil {
			return nil, Report{Rule: r.Name()}, wrapRule(r.Name(), err)
		}
	}
	s.unchecked = false
	n := s.n()
	first := make([]float64, n)
	for i := range first {
		first[i] = math.Sqrt(sqd[i])
	}
	coef := make([]float64, n)
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
		if sqd, _, _, err = combinePassExtra(next, rd, coef, v, 1-kept, nil, ps); err != nil {
			return nil, Report{Rule: r.Name()}, wrapRule(r.Name(), err)
		}
		v, next = next, v
	}
	r.SetReference(v)
	rep := s.allUsed(r.Name())
	rep.Scores = s.scores(first)
	return v, rep, nil
}

// AggregateSource returns the Bulyan aggregate of the updates of src.
func (r *Bulyan) AggregateSource(src Source, weights []float64) ([]float64, Report, error) {
	s, rd, err := screenSource(r.Name(), src, weights)
	if err != nil {
		return nil, Report{Rule: r.Name()}, err
	}
	dist, err := distancesSource(s, rd)
	if err != nil {
		return nil, Report{Rule: r.Name()}, wrapRule(r.Name(), err)
	}
	n, f := s.n(), s.budget(r.F)
	if n < 4*f+3 {
		return nil, Report{Rule: r.Name()}, s.requirement(r.Name(), r.F, fmt.Sprintf("n ≥ 4f+3 = %d", 4*f+3))
	}
	theta := n - 2*f
	remaining := allIndices(n)
	selected := make([]int, 0, theta)
	var first []float64
	for len(selected) < theta {
		sc := krumScores(dist, n, remaining, max(len(remaining)-f-2, 1))
		if first == nil {
			first = sc
		}
		b := 0
		for a := 1; a < len(remaining); a++ {
			c := cmpFloat(sc[a], sc[b])
			if c == 0 {
				if c, err = rd.compareRows(remaining[a], remaining[b]); err != nil {
					return nil, Report{Rule: r.Name()}, wrapRule(r.Name(), err)
				}
			}
			if c < 0 {
				b = a
			}
		}
		selected = append(selected, remaining[b])
		remaining = slices.Delete(remaining, b, b+1)
	}
	slices.Sort(selected)
	sub := &reader{src: rd.src, mem: rd.mem, d: rd.d}
	for _, a := range selected {
		sub.ids = append(sub.ids, rd.ids[a])
	}
	beta := theta - 2*f
	out := make([]float64, s.d)
	if _, err := coordwiseSource(sub, out, colOpF32{
		sixteen: func(sorted []float32, n int, dst *[16]float64) {
			var col [maxNetworkN]float64
			for l := range dst {
				for i := 0; i < n; i++ {
					col[i] = float64(sorted[16*i+l])
				}
				dst[l] = closestToMedianMeanSorted(col[:n], beta)
			}
		},
		one: func(col, _ []float64) float64 { return closestToMedianMean(col, beta) },
	}); err != nil {
		return nil, Report{Rule: r.Name()}, wrapRule(r.Name(), err)
	}
	rep := s.report(r.Name(), selected, "not selected by bulyan's iterated krum")
	rep.Scores = s.scores(first)
	return out, rep, nil
}

var (
	_ SourceRule = (*Bulyan)(nil)
	_ SourceRule = (*CenteredClipping)(nil)
	_ SourceRule = FedAvg{}
	_ SourceRule = (*Krum)(nil)
	_ SourceRule = (*MultiKrum)(nil)
	_ SourceRule = (*Median)(nil)
	_ SourceRule = (*TrimmedMean)(nil)
	_ SourceRule = (*GeometricMedian)(nil)
)
