package aggregate

import "fmt"

// Median is the coordinate-wise median (Yin et al., "Byzantine-Robust
// Distributed Learning: Towards Optimal Statistical Rates", ICML 2018):
// each coordinate of the aggregate is the median of that coordinate over
// the inputs, the mean of the two middle values when n is even (NumPy's
// convention). Weights are ignored. F is used only to check the
// requirement f < n/2.
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
	need := func(n int) error {
		if 2*r.F >= n {
			return &RequirementError{Rule: r.Name(), N: n, F: r.F, Need: fmt.Sprintf("f < n/2, i.e. n > %d", 2*r.F)}
		}
		return nil
	}
	out := make([]float64, s.d)
	if err := coordwiseChecked(s, out, need, colOp{one: medianOf, four: medianOf4}); err != nil {
		return nil, Report{Rule: r.Name()}, wrapRule(r.Name(), err)
	}
	return out, s.allUsed(r.Name()), nil
}

// TrimmedMean is the coordinate-wise trimmed mean (Yin et al. 2018): for
// each coordinate the f largest and f smallest values are dropped and the
// remaining n−2f averaged. Weights are ignored. Report.Used lists every
// input, since each contributes to some coordinates.
//
// Requirement: 2f < n valid inputs.
type TrimmedMean struct {
	// F is the number of values dropped on each side (≥ 0).
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
	need := func(n int) error {
		if 2*r.F >= n {
			return &RequirementError{Rule: r.Name(), N: n, F: r.F, Need: fmt.Sprintf("2f < n, i.e. n > %d", 2*r.F)}
		}
		return nil
	}
	out := make([]float64, s.d)
	f := r.F
	op := colOp{
		one:  func(col, tmp []float64) float64 { return trimmedMeanOf(col, tmp, f) },
		four: func(sorted []float64, n int, dst *[4]float64) { trimmedMean4(sorted, n, f, dst) },
	}
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
