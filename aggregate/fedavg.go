package aggregate

import (
	"errors"
	"fmt"
	"math"
	"slices"
)

// FedAvg is the weighted mean of the inputs (McMahan et al. 2017): each
// valid input i contributes weights[i]/Σweights, or 1/n when weights is nil.
// It is not robust: one Byzantine input can move it arbitrarily far. It has
// no parameters; the zero value is ready to use.
type FedAvg struct{}

// Name returns "fedavg".
func (FedAvg) Name() string { return "fedavg" }

// Aggregate returns the weighted mean. It fails with ErrBadArguments when
// the valid inputs' weights sum to zero (or, after bucketing, to +Inf).
func (r FedAvg) Aggregate(updates [][]float64, weights []float64) ([]float64, Report, error) {
	return runScreened(r, updates, weights)
}

func (r FedAvg) run(s *screened) ([]float64, Report, error) {
	coef := make([]float64, s.n())
	if s.w == nil {
		for i := range coef {
			coef[i] = 1 / float64(s.n())
		}
	} else if !normalizeWeights(coef, s.w) {
		return nil, Report{Rule: r.Name()}, fmt.Errorf("%w: fedavg: the valid inputs' weights do not sum to a positive finite number", ErrBadArguments)
	}
	out := make([]float64, s.d)
	combineRows(out, s.x, coef)
	return out, s.allUsed(r.Name()), nil
}

// normalizeWeights sets coef[i] = w[i]/Σw for non-negative weights and
// reports whether that was possible: false when the sum is zero or a
// weight is infinite (bucketing sums weights and may overflow). A sum that
// overflows float64 while each weight is finite is taken after scaling the
// weights by the largest, so the coefficients stay the right ratios
// instead of collapsing to zero.
func normalizeWeights(coef, w []float64) bool {
	var total float64
	for _, v := range w {
		total += v
	}
	scale := 1.0
	if math.IsInf(total, 1) {
		scale = 1 / slices.Max(w)
		total = 0
		for _, v := range w {
			total += v * scale
		}
	}
	if !(total > 0) || math.IsInf(total, 0) || math.IsNaN(total) {
		return false
	}
	for i, v := range w {
		coef[i] = v * scale / total
	}
	return true
}

// screenedRule is implemented by every rule of this package: run
// aggregates inputs that have already been screened, so a Pipeline screens
// only once.
type screenedRule interface {
	Rule
	run(s *screened) ([]float64, Report, error)
}

// selfCheckingRule marks rules that check the values of their inputs
// (NaN, Inf, overflow) as a by-product of their own first pass — the Gram
// diagonal of the distance engine, the squared norms accumulated by the
// coordinate-wise transposition — so runScreened skips the separate pass
// (screenShape) and the rule completes the check (screened.distances,
// coordwiseChecked).
type selfCheckingRule interface {
	checksValuesItself()
}

// wrapRule prefixes errors that do not already name the rule.
func wrapRule(name string, err error) error {
	var re *RequirementError
	if errors.As(err, &re) {
		return err
	}
	return fmt.Errorf("%s: %w", name, err)
}

func runScreened(r screenedRule, updates [][]float64, weights []float64) ([]float64, Report, error) {
	check := screen
	if _, ok := r.(selfCheckingRule); ok {
		check = screenShape
	}
	s, err := check(updates, weights)
	if err != nil {
		return nil, Report{Rule: r.Name()}, fmt.Errorf("%s: %w", r.Name(), err)
	}
	return r.run(s)
}
