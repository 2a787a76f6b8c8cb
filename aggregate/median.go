package aggregate

import "fmt"

// Median is the coordinate-wise median (Yin et al., "Byzantine-Robust
// Distributed Learning: Towards Optimal Statistical Rates", ICML 2018):
// each coordinate of the aggregate is the median of that coordinate over
// the inputs, the mean of the two middle values when n is even (NumPy's
// convention). Weights are ignored. F is used only to check the
// requirement f < n/2, with f the effective f (F less the inputs rejected
// as malformed; see the package documentation).
type Median struct {
	// F is the number of Byzantine inputs the caller expects (≥ 0).
	F int
}

// NewMedian returns the coordinate-wise median checked against f
// Byzantine inputs; f must be ≥ 0.
func NewMedian(f int) (*Median, error) {
	if err := checkF("median", f); err != nil {
		return nil, err
	}
	return &Median{F: f}, nil
}

// Name returns "median".
func (*Median) Name() string { return "median" }

// Aggregate returns the coordinate-wise median.
func (r *Median) Aggregate(updates [][]float64, weights []float64) ([]float64, Report, error) {
	return runScreened(r, updates, weights)
}

func (*Median) checksValuesItself() {}

func (r *Median) run(s *screened) ([]float64, Report, error) {
	need := func() error {
		if f := s.budget(r.F); 2*f >= s.n() {
			return s.requirement(r.Name(), r.F, fmt.Sprintf("f < n/2, i.e. n > %d", 2*f))
		}
		return nil
	}
	op := func() colOp { return colOp{one: medianOf, four: medianOf4} }
	out := make([]float64, s.d)
	if err := coordwiseChecked(s, out, need, op); err != nil {
		return nil, Report{Rule: r.Name()}, wrapRule(r.Name(), err)
	}
	return out, s.allUsed(r.Name()), nil
}

// TrimmedMean is the coordinate-wise trimmed mean (Yin et al. 2018): for
// each coordinate the f largest and f smallest values are dropped and the
// remaining n−2f averaged. Weights are ignored. Report.Used lists every
// input, since each contributes to some coordinates.
//
// The number of values dropped per side is the effective f: F less the
// inputs rejected as malformed, which are provably faulty and no longer
// among the values (see the package documentation).
//
// Requirement: 2f < n valid inputs.
type TrimmedMean struct {
	// F is the number of Byzantine inputs tolerated (≥ 0): with nothing
	// rejected, the number of values dropped on each side.
	F int
}

// NewTrimmedMean returns the trimmed mean dropping f values per side; f
// must be ≥ 0.
func NewTrimmedMean(f int) (*TrimmedMean, error) {
	if err := checkF("trimmed-mean", f); err != nil {
		return nil, err
	}
	return &TrimmedMean{F: f}, nil
}

// Name returns "trimmed-mean".
func (*TrimmedMean) Name() string { return "trimmed-mean" }

// Aggregate returns the coordinate-wise trimmed mean.
func (r *TrimmedMean) Aggregate(updates [][]float64, weights []float64) ([]float64, Report, error) {
	return runScreened(r, updates, weights)
}

func (*TrimmedMean) checksValuesItself() {}

func (r *TrimmedMean) run(s *screened) ([]float64, Report, error) {
	need := func() error {
		if f := s.budget(r.F); 2*f >= s.n() {
			return s.requirement(r.Name(), r.F, fmt.Sprintf("2f < n, i.e. n > %d", 2*f))
		}
		return nil
	}
	op := func() colOp {
		f := s.budget(r.F)
		return colOp{
			one:  func(col, tmp []float64) float64 { return trimmedMeanOf(col, tmp, f) },
			four: func(sorted []float64, n int, dst *[4]float64) { trimmedMean4(sorted, n, f, dst) },
		}
	}
	out := make([]float64, s.d)
	if err := coordwiseChecked(s, out, need, op); err != nil {
		return nil, Report{Rule: r.Name()}, wrapRule(r.Name(), err)
	}
	return out, s.allUsed(r.Name()), nil
}

// medianOf4 is medianOf for four sorted, interleaved columns.
func medianOf4(sorted []float64, n int, dst *[4]float64) {
	h := n / 2
	for l := range dst {
		if n%2 == 1 {
			dst[l] = sorted[4*h+l]
		} else {
			dst[l] = (sorted[4*(h-1)+l] + sorted[4*h+l]) / 2
		}
	}
}

// trimmedMean4 is trimmedMeanOf for four sorted, interleaved columns: the
// kept values are summed in ascending order.
func trimmedMean4(sorted []float64, n, f int, dst *[4]float64) {
	var s [4]float64
	for i := f; i < n-f; i++ {
		row := sorted[4*i : 4*i+4]
		s[0] += row[0]
		s[1] += row[1]
		s[2] += row[2]
		s[3] += row[3]
	}
	for l := range dst {
		dst[l] = s[l] / float64(n-2*f)
	}
}
