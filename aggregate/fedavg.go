package aggregate

import (
	"errors"
	"fmt"
)

// FedAvg is the weighted mean of the inputs (McMahan et al. 2017): each
// valid input i contributes weights[i]/Σweights, or 1/n when weights is nil.
// It is not robust: one Byzantine input can move it arbitrarily far. It has
// no parameters; the zero value is ready to use.
type FedAvg struct{}

// Name returns "fedavg".
func (FedAvg) Name() string { return "fedavg" }

// Aggregate returns the weighted mean. It fails with ErrBadArguments when
// the valid inputs' weights sum to zero.
func (r FedAvg) Aggregate(updates [][]float64, weights []float64) ([]float64, Report, error) {
	return runScreened(r, updates, weights)
}

func (r FedAvg) run(s *screened) ([]float64, Report, error) {
	coef := make([]float64, s.n())
	if s.w == nil {
		for i := range coef {
			coef[i] = 1 / float64(s.n())
		}
	} else {
		var total float64
		for _, w := range s.w {
			total += w
		}
		if !(total > 0) {
			return nil, Report{Rule: r.Name()}, fmt.Errorf("%w: fedavg: the valid inputs' weights sum to %v", ErrBadArguments, total)
		}
		for i, w := range s.w {
			coef[i] = w / total
		}
	}
	out := make([]float64, s.d)
	combineRows(out, s.x, coef)
	return out, s.allUsed(r.Name()), nil
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
