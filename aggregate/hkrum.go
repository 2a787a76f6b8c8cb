package aggregate

import (
	"math"
	"math/rand/v2"
)

// HierarchicalKrum is the aggregation of the original MyceliumFractalNet
// implementation (its HierarchicalKrumAggregator), reproduced step by step:
//
//  1. Each valid input is assigned to one of C = min(Clusters, n) clusters
//     uniformly at random (Rand.IntN(C) in input order); clusters may be
//     empty.
//  2. Each non-empty cluster of size s yields one representative, with a
//     per-cluster budget f_s = min(⌈s·Fraction⌉, max(0, ⌊(s−3)/2⌋)): the
//     input itself when s = 1, the mean of the cluster when s ≤ 2f_s+2,
//     otherwise the Krum choice with f_s (n−f−2 nearest neighbours).
//  3. With R representatives and g = f_R computed the same way: R = 1 gives
//     that representative; R ≤ 2g+2 gives their coordinate-wise lower
//     median (torch.median's convention: the value of rank ⌊(R−1)/2⌋);
//     otherwise 0.7·Krum(representatives, g) + 0.3·lower median.
//
// Rejected inputs: Fraction·(n + r) inputs are assumed Byzantine among
// the n valid and the r rejected as malformed; the rejected ones, provably
// faulty, consume that count (see the package documentation), so the
// budgets above use the effective fraction max(0, Fraction·(n+r) − r)/n
// of the valid inputs, which is Fraction when nothing was rejected.
//
// The reference samples a fraction of clients when n > 1000; this
// implementation always uses every input. Weights are ignored. Because the
// clustering is random, the result depends on input order and on Rand.
// Report.Used lists the inputs that reached a representative (Krum's
// choice, or every member of an averaged cluster); Report.Scores holds each
// input's Krum score within its cluster (zero where no Krum ran). A
// *rand.Rand is not safe for concurrent use, so neither is a
// HierarchicalKrum with Rand set.
type HierarchicalKrum struct {
	// Clusters is the number of clusters; zero means ⌈√n⌉ (the reference's
	// default of 100 would make every cluster a singleton at the
	// federation sizes used here).
	Clusters int
	// Fraction is the assumed Byzantine fraction, in [0, 0.5).
	Fraction float64
	// Rand draws the cluster assignment; nil means a fresh generator with a
	// fixed seed on every call, so the assignment is the same each call.
	Rand *rand.Rand
}

// NewHierarchicalKrum returns the rule; clusters must be ≥ 0 and fraction
// in [0, 0.5).
func NewHierarchicalKrum(clusters int, fraction float64, rng *rand.Rand) (*HierarchicalKrum, error) {
	r := &HierarchicalKrum{Clusters: clusters, Fraction: fraction, Rand: rng}
	return r, r.validate()
}

func (r *HierarchicalKrum) validate() error {
	if r.Clusters < 0 {
		return paramErr(r.Name(), "Clusters", r.Clusters, "≥ 0 (0 means ⌈√n⌉)")
	}
	if !(r.Fraction >= 0 && r.Fraction < 0.5) {
		return paramErr(r.Name(), "Fraction", r.Fraction, "in [0, 0.5)")
	}
	return nil
}

// Name returns "hierarchical-krum".
func (*HierarchicalKrum) Name() string { return "hierarchical-krum" }

// Aggregate returns the hierarchical Krum aggregate.
func (r *HierarchicalKrum) Aggregate(updates [][]float64, weights []float64) ([]float64, Report, error) {
	return runScreened(r, updates, weights)
}

// hkrumBudget is the reference's _estimate_byzantine_count for Byzantine
// fraction frac.
func hkrumBudget(size int, frac float64) int {
	if size <= 0 {
		return 0
	}
	est := int(math.Ceil(float64(size) * frac))
	return min(est, max(0, (size-3)/2))
}

func (r *HierarchicalKrum) run(s *screened) ([]float64, Report, error) {
	if err := r.validate(); err != nil {
		return nil, Report{Rule: r.Name()}, err
	}
	n := s.n()
	frac := s.fractionBudget(r.Fraction)
	c := r.Clusters
	if c == 0 {
		c = int(math.Ceil(math.Sqrt(float64(n))))
	}
	c = min(c, n)
	rng := r.Rand
	if rng == nil {
		rng = rand.New(rand.NewPCG(0x6d666e, 0x686b72756d))
	}
	members := make([][]int, c)
	for i := 0; i < n; i++ {
		k := rng.IntN(c)
		members[k] = append(members[k], i)
	}
	scores := make([]float64, n)
	var reps [][]float64
	var repSources [][]int
	for _, m := range members {
		switch fs := hkrumBudget(len(m), frac); {
		case len(m) == 0:
			continue
		case len(m) == 1:
			reps = append(reps, s.x[m[0]])
			repSources = append(repSources, m)
		case len(m) <= 2*fs+2:
			rows := make([][]float64, len(m))
			for k, i := range m {
				rows[k] = s.x[i]
			}
			reps = append(reps, meanOf(rows, s.d))
			repSources = append(repSources, m)
		default:
			rows := make([][]float64, len(m))
			for k, i := range m {
				rows[k] = s.x[i]
			}
			sc := krumScores(pairwiseSqDist(rows), len(m), allIndices(len(m)), len(m)-fs-2)
			for k, i := range m {
				scores[i] = sc[k]
			}
			b := argminScore(sc, rows, allIndices(len(m)))
			reps = append(reps, s.x[m[b]])
			repSources = append(repSources, []int{m[b]})
		}
	}
	var used []int
	for _, src := range repSources {
		used = append(used, src...)
	}
	out := hkrumTop(reps, s.d, frac)
	rep := s.report(r.Name(), used, "not chosen within its cluster")
	rep.Scores = s.scores(scores)
	return out, rep, nil
}

// hkrumTop is level 2: the combination of the cluster representatives, with
// Byzantine fraction frac.
func hkrumTop(reps [][]float64, d int, frac float64) []float64 {
	nr := len(reps)
	g := hkrumBudget(nr, frac)
	switch {
	case nr == 1:
		return append([]float64(nil), reps[0]...)
	case nr <= 2*g+2:
		out := make([]float64, d)
		coordwise(reps, out, lowerMedianOp)
		return out
	}
	sc := krumScores(pairwiseSqDist(reps), nr, allIndices(nr), nr-g-2)
	k := reps[argminScore(sc, reps, allIndices(nr))]
	out := make([]float64, d)
	coordwise(reps, out, lowerMedianOp)
	for j := range out {
		out[j] = 0.7*k[j] + 0.3*out[j]
	}
	return out
}

// lowerMedianOp reduces columns to their lower median.
var lowerMedianOp = colOp{
	one: lowerMedianOf,
	four: func(sorted []float64, n int, dst *[4]float64) {
		k := (n - 1) / 2
		copy(dst[:], sorted[4*k:4*k+4])
	},
}
