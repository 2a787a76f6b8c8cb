package aggregate

import (
	"fmt"
	"slices"
)

// Krum selects the single input whose squared distances to its n−f−2
// nearest other inputs sum to the least (Blanchard et al., "Machine
// Learning with Adversaries: Byzantine Tolerant Gradient Descent",
// NeurIPS 2017). The aggregate is a copy of that input. Weights are
// ignored.
//
// Requirement: n > 2f+2 valid inputs, with f the effective f (F less the
// inputs rejected as malformed, which are provably faulty; see the package
// documentation). Report.Scores holds every input's Krum score. Exact ties are broken by comparing the vectors
// lexicographically, so the choice does not depend on input order.
type Krum struct {
	// F is the number of Byzantine inputs tolerated (≥ 0).
	F int
}

// NewKrum returns Krum for f Byzantine inputs; f must be ≥ 0.
func NewKrum(f int) (*Krum, error) {
	if err := checkF("krum", f); err != nil {
		return nil, err
	}
	return &Krum{F: f}, nil
}

// Name returns "krum".
func (*Krum) Name() string { return "krum" }

// Aggregate returns a copy of the input with the lowest Krum score.
func (r *Krum) Aggregate(updates [][]float64, weights []float64) ([]float64, Report, error) {
	return runScreened(r, updates, weights)
}

func (*Krum) checksValuesItself() {}

func (r *Krum) run(s *screened) ([]float64, Report, error) {
	dist, err := s.distances()
	if err != nil {
		return nil, Report{Rule: r.Name()}, fmt.Errorf("%s: %w", r.Name(), err)
	}
	if err := krumRequirement(r.Name(), s, r.F); err != nil {
		return nil, Report{Rule: r.Name()}, err
	}
	scores := krumScores(dist, s.n(), allIndices(s.n()), s.n()-s.budget(r.F)-2)
	best := argminScore(scores, s.x, allIndices(s.n()))
	rep := s.report(r.Name(), []int{best}, "not selected by krum")
	rep.Scores = s.scores(scores)
	return slices.Clone(s.x[best]), rep, nil
}

// MultiKrum averages the M inputs with the lowest Krum scores (El Mhamdi
// et al., "The Hidden Vulnerability of Distributed Learning in Byzantium",
// ICML 2018). M = 1 is Krum; M = n is the mean. Weights are ignored.
//
// Requirement: n > 2f+2 valid inputs, with f the effective f (F less the
// inputs rejected as malformed; see the package documentation), and
// 1 ≤ M ≤ n + rejected.
//
// M and rejected inputs: with M = 0 the rule averages n − f inputs, n and
// f both counted after the rejections. An explicit M is kept as set: as
// long as no more than F inputs are rejected, n − f (effective) equals the
// caller's total less F, so M keeps its relation to the number of
// presumably honest inputs. Only when the rejections leave fewer than M
// valid inputs is M lowered to n, all of them (they are then all presumed
// honest if M ≤ total − F was configured); an M above n + rejected is a
// *RequirementError, as it is without rejections.
type MultiKrum struct {
	// F is the number of Byzantine inputs tolerated (≥ 0).
	F int
	// M is how many inputs are averaged; zero means n−f (n counted after
	// rejecting malformed inputs, f the effective f).
	M int
}

// NewMultiKrum returns Multi-Krum for f Byzantine inputs averaging m
// inputs (m = 0 means n−f; see MultiKrum for how rejected inputs change
// both); f and m must be ≥ 0.
func NewMultiKrum(f, m int) (*MultiKrum, error) {
	if err := checkF("multi-krum", f); err != nil {
		return nil, err
	}
	if m < 0 {
		return nil, paramErr("multi-krum", "M", m, "≥ 0 (0 means n−f)")
	}
	return &MultiKrum{F: f, M: m}, nil
}

// Name returns "multi-krum".
func (*MultiKrum) Name() string { return "multi-krum" }

// Aggregate returns the mean of the M best-scored inputs.
func (r *MultiKrum) Aggregate(updates [][]float64, weights []float64) ([]float64, Report, error) {
	return runScreened(r, updates, weights)
}

func (*MultiKrum) checksValuesItself() {}

func (r *MultiKrum) run(s *screened) ([]float64, Report, error) {
	dist, err := s.distances()
	if err != nil {
		return nil, Report{Rule: r.Name()}, fmt.Errorf("%s: %w", r.Name(), err)
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
		m = n // the rejections took the inputs M counted on
	}
	if m < 1 || m > n {
		return nil, Report{Rule: r.Name()}, s.requirement(r.Name(), r.F, fmt.Sprintf("1 ≤ m ≤ n with m = %d", m))
	}
	scores := krumScores(dist, n, allIndices(n), n-f-2)
	order := allIndices(n)
	slices.SortStableFunc(order, func(a, b int) int { return compareScored(scores[a], scores[b], s.x[a], s.x[b]) })
	chosen := order[:m]
	slices.Sort(chosen)
	rows := make([][]float64, m)
	for k, i := range chosen {
		rows[k] = s.x[i]
	}
	out := meanOf(rows, s.d)
	rep := s.report(r.Name(), chosen, "not among the m best multi-krum scores")
	rep.Scores = s.scores(scores)
	return out, rep, nil
}

// krumRequirement checks n > 2f+2 for the valid inputs of s and the
// effective f of a rule configured with f.
func krumRequirement(name string, s *screened, f int) error {
	if fe := s.budget(f); s.n() <= 2*fe+2 {
		return s.requirement(name, f, fmt.Sprintf("n > 2f+2 = %d", 2*fe+2))
	}
	return nil
}

// krumScores returns, for each member of set, the sum of its k smallest
// squared distances to the other members (dist is n×n). The k smallest are
// summed in ascending order, so a score does not depend on input order.
func krumScores(dist []float64, n int, set []int, k int) []float64 {
	k = max(min(k, len(set)-1), 0)
	scores := make([]float64, len(set))
	// Each score is computed alone from its own row, so splitting the
	// rows across goroutines cannot change a bit.
	parts := min(len(set), 8)
	parallelFor(parts, int64(len(set))*int64(len(set))*16, func(p int) {
		lo, hi := span(len(set), parts, p, 1)
		row := make([]float64, 0, len(set))
		for a := lo; a < hi; a++ {
			i := set[a]
			row = row[:0]
			for _, j := range set {
				if j != i {
					row = append(row, dist[i*n+j])
				}
			}
			slices.Sort(row)
			var sum float64
			for _, v := range row[:k] {
				sum += v
			}
			scores[a] = sum
		}
	})
	return scores
}

func allIndices(n int) []int {
	ix := make([]int, n)
	for i := range ix {
		ix[i] = i
	}
	return ix
}

// argminScore returns the position (in set) of the lowest score. Exact
// ties, which happen whenever two inputs are each other's nearest
// neighbour and few neighbours count, are broken by comparing the vectors
// lexicographically, so the choice does not depend on input order.
func argminScore(scores []float64, xs [][]float64, set []int) int {
	best := 0
	for a := 1; a < len(scores); a++ {
		if compareScored(scores[a], scores[best], xs[set[a]], xs[set[best]]) < 0 {
			best = a
		}
	}
	return best
}

// compareScored orders by score, then lexicographically by vector.
func compareScored(sa, sb float64, xa, xb []float64) int {
	if c := cmpFloat(sa, sb); c != 0 {
		return c
	}
	return slices.Compare(xa, xb)
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
