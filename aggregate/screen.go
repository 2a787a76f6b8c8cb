package aggregate

import (
	"fmt"
	"math"

	"github.com/mfn/mfn/aggregate/internal/vec"
)

// Screen checks updates before aggregation and returns the positions of
// the valid ones (ascending) and a rejection for each other one. A vector
// is rejected when its length differs from dim, when it holds NaN or ±Inf,
// or when its squared norm overflows float64 (such a vector would turn
// every distance to it into Inf). When weights is not nil, a negative, NaN
// or infinite weight rejects its vector too. dim ≤ 0 means the most common
// length among updates (ties go to the length seen first), which is the
// honest length whenever a majority is honest; callers that know the model
// size should pass it.
//
// Every Rule in this package screens its input this way before running, so
// calling Screen is only needed by code that works on vectors directly
// (pre-steps used on their own, attacks, tests).
func Screen(updates [][]float64, weights []float64, dim int) (valid []int, rejected []Rejection) {
	s := screenVectors(updates, weights, dim, true)
	return s.orig, s.rejected
}

// screened is the valid part of an Aggregate call's input.
type screened struct {
	x        [][]float64 // valid vectors, in input order
	w        []float64   // their weights; nil when the caller passed nil
	orig     []int       // position of x[i] in the caller's slice
	rejected []Rejection
	total    int // number of inputs given
	d        int
	// upstream counts the inputs rejected before x was formed: a
	// Pipeline's screening, when x holds the output of its pre-steps.
	upstream int
	// unchecked: the values (NaN, Inf, overflow) have not been checked
	// yet; the rule checks them through distances.
	unchecked bool
}

// screen validates the arguments of Aggregate: weights must be nil or as
// long as updates, and at least one vector must survive.
func screen(updates [][]float64, weights []float64) (*screened, error) {
	return screenArgs(updates, weights, true)
}

// screenShape is screen without the pass over the values: for rules that
// compute every pairwise distance anyway, whose squared norms reveal the
// non-finite vectors (see (*screened).distances).
func screenShape(updates [][]float64, weights []float64) (*screened, error) {
	return screenArgs(updates, weights, false)
}

func screenArgs(updates [][]float64, weights []float64, values bool) (*screened, error) {
	if weights != nil && len(weights) != len(updates) {
		return nil, fmt.Errorf("%w: %d weights for %d updates", ErrBadArguments, len(weights), len(updates))
	}
	s := screenVectors(updates, weights, 0, values)
	if len(s.x) == 0 {
		if len(updates) == 0 {
			return nil, fmt.Errorf("%w: no updates given", ErrNoValidInputs)
		}
		return nil, fmt.Errorf("%w: all %d updates rejected (first: %s)", ErrNoValidInputs, len(updates), s.rejected[0].Reason)
	}
	return s, nil
}

func modeLength(updates [][]float64) int {
	counts := make(map[int]int, 2)
	best, bestCount := 0, 0
	for _, u := range updates {
		counts[len(u)]++
		if c := counts[len(u)]; c > bestCount {
			best, bestCount = len(u), c
		}
	}
	return best
}

func screenVectors(updates [][]float64, weights []float64, dim int, values bool) *screened {
	s := &screened{total: len(updates), unchecked: !values}
	if dim <= 0 {
		dim = modeLength(updates)
	}
	s.d = dim
	norms := make([]float64, len(updates))
	if values {
		parallelFor(len(updates), int64(len(updates))*int64(dim), func(i int) {
			if len(updates[i]) == dim {
				norms[i] = vec.Dot(updates[i], updates[i])
			}
		})
	}
	for i, u := range updates {
		var reason string
		switch {
		case len(u) != dim:
			reason = fmt.Sprintf("length %d, want %d", len(u), dim)
		case weights != nil && (weights[i] < 0 || math.IsNaN(weights[i]) || math.IsInf(weights[i], 0)):
			reason = fmt.Sprintf("invalid weight %v", weights[i])
		case math.IsNaN(norms[i]) || math.IsInf(norms[i], 0):
			reason = nonFiniteReason(u)
		}
		if reason != "" {
			s.rejected = append(s.rejected, Rejection{Index: i, Reason: reason})
			continue
		}
		s.x = append(s.x, u)
		s.orig = append(s.orig, i)
		if weights != nil {
			s.w = append(s.w, weights[i])
		}
	}
	return s
}

func nonFiniteReason(u []float64) string {
	for k, v := range u {
		if math.IsNaN(v) {
			return fmt.Sprintf("NaN at coordinate %d", k)
		}
		if math.IsInf(v, 0) {
			return fmt.Sprintf("%v at coordinate %d", v, k)
		}
	}
	return "squared norm overflows float64"
}

// distances returns the pairwise squared distances of the valid inputs.
// When the values were not checked yet, inputs with a non-finite squared
// norm are rejected now: s is updated to the survivors (ErrNoValidInputs
// if none is left) and the matrix restricted to them.
func (s *screened) distances() ([]float64, error) {
	dist, diag := pairwiseGram(s.x)
	if !s.unchecked {
		return dist, nil
	}
	keep, err := s.keepFinite(diag)
	if err != nil || keep == nil {
		return dist, err
	}
	n, m := len(diag), len(keep)
	sub := make([]float64, m*m)
	for a, i := range keep {
		for b, j := range keep {
			sub[a*m+b] = dist[i*n+j]
		}
	}
	return sub, nil
}

// keepFinite completes a deferred value check given every input's squared
// norm: inputs whose norm is not finite are rejected and s shrinks to the
// others. It returns the kept positions (in the old s), or nil when all
// were kept.
func (s *screened) keepFinite(sqNorm []float64) ([]int, error) {
	s.unchecked = false
	var keep []int
	for i, v := range sqNorm {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			s.rejected = append(s.rejected, Rejection{Index: s.orig[i], Reason: nonFiniteReason(s.x[i])})
			continue
		}
		keep = append(keep, i)
	}
	if len(keep) == len(sqNorm) {
		return nil, nil
	}
	sortRejections(s.rejected)
	if len(keep) == 0 {
		return nil, fmt.Errorf("%w: all %d updates rejected (first: %s)", ErrNoValidInputs, s.total, s.rejected[0].Reason)
	}
	x := make([][]float64, len(keep))
	orig := make([]int, len(keep))
	var w []float64
	if s.w != nil {
		w = make([]float64, len(keep))
	}
	for a, i := range keep {
		x[a], orig[a] = s.x[i], s.orig[i]
		if w != nil {
			w[a] = s.w[i]
		}
	}
	s.x, s.orig, s.w = x, orig, w
	return keep, nil
}

// checkValues runs the value check now if it was deferred.
func (s *screened) checkValues() error {
	if !s.unchecked {
		return nil
	}
	norms := make([]float64, s.n())
	parallelFor(s.n(), int64(s.n())*int64(s.d), func(i int) { norms[i] = vec.Dot(s.x[i], s.x[i]) })
	_, err := s.keepFinite(norms)
	return err
}

// n is the number of valid inputs. A Source's inputs are not in x (which
// is nil) but read through a reader; orig lists them.
func (s *screened) n() int {
	if s.x == nil {
		return len(s.orig)
	}
	return len(s.x)
}

// faulty is the number of inputs rejected as malformed so far, including
// those a deferred value check has found. Each is provably faulty, so it
// counts against the Byzantine budget (see the package documentation,
// "Rejected inputs and the Byzantine budget").
func (s *screened) faulty() int { return s.upstream + len(s.rejected) }

// budget returns the effective f for a rule configured with f: the
// Byzantine inputs that may still hide among the valid ones,
// max(0, f − faulty). It must be read after the value check is complete
// (after distances or coordwiseChecked), since that check may reject more.
func (s *screened) budget(f int) int { return max(0, f-s.faulty()) }

// fractionBudget is budget for a rule configured with a Byzantine
// fraction instead of a count: frac·(n + faulty) inputs are assumed
// Byzantine among the n valid and the faulty ones, the faulty ones consume
// that count, and the rest is returned as a fraction of the n valid
// inputs. With nothing rejected it is frac itself.
func (s *screened) fractionBudget(frac float64) float64 {
	r := s.faulty()
	if r == 0 {
		return frac
	}
	n := float64(s.n())
	return max(0, frac*(n+float64(r))-float64(r)) / n
}

// requirement returns the *RequirementError of rule configured with f
// whose requirement need (stated with the effective f) the valid inputs
// do not meet.
func (s *screened) requirement(rule string, f int, need string) *RequirementError {
	return &RequirementError{Rule: rule, N: s.n(), F: f, FEff: s.budget(f), Rejected: s.faulty(), Need: need}
}

// report starts a Report for rule name: inputs in used (positions in s.x)
// are listed as used, every other valid input as rejected with notUsed.
func (s *screened) report(name string, used []int, notUsed string) Report {
	r := Report{Rule: name}
	inUse := make([]bool, s.n())
	for _, j := range used {
		inUse[j] = true
	}
	r.Rejected = append(r.Rejected, s.rejected...)
	for j, ok := range inUse {
		if ok {
			r.Used = append(r.Used, s.orig[j])
		} else {
			r.Rejected = append(r.Rejected, Rejection{Index: s.orig[j], Reason: notUsed})
		}
	}
	sortRejections(r.Rejected)
	return r
}

// scores expands per-valid-input scores to the caller's indexing (zero for
// rejected inputs).
func (s *screened) scores(sc []float64) []float64 {
	if sc == nil {
		return nil
	}
	out := make([]float64, s.total)
	for j, v := range sc {
		out[s.orig[j]] = v
	}
	return out
}

// allUsed reports every valid input as used.
func (s *screened) allUsed(name string) Report {
	used := make([]int, s.n())
	for i := range used {
		used[i] = i
	}
	return s.report(name, used, "")
}
