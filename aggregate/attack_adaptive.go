package aggregate

import (
	"fmt"
	"math"

	"github.com/mfn/mfn/aggregate/internal/vec"
)

// Prober is implemented by rules with state that an adaptive attack must
// not disturb while it tries candidate vectors (centered clipping's
// reference, a random stream): Probe returns an independent rule that
// behaves like the original would on its next call, as far as the state
// can be copied. Randomised steps are probed with a fixed-seed generator,
// since an attacker does not know the server's future random draws.
type Prober interface {
	Probe() Rule
}

// Probe returns a copy with the same parameters and reference.
func (r *CenteredClipping) Probe() Rule {
	c := &CenteredClipping{Tau: r.Tau, Iters: r.Iters}
	c.ref = r.Reference()
	return c
}

// Probe returns a copy drawing from a fixed-seed generator.
func (r *HierarchicalKrum) Probe() Rule {
	return &HierarchicalKrum{Clusters: r.Clusters, Fraction: r.Fraction}
}

// Probe returns a pipeline of probes of its steps and rule.
func (p *Pipeline) Probe() Rule {
	q := &Pipeline{Rule: probe(p.Rule)}
	for _, s := range p.Pre {
		if b, ok := s.(*Bucketing); ok {
			s = &Bucketing{S: b.S}
		}
		q.Pre = append(q.Pre, s)
	}
	return q
}

func probe(r Rule) Rule {
	if p, ok := r.(Prober); ok {
		return p.Probe()
	}
	return r
}

// lineSearch maximises obj over [0, hi]: a grid of lineGrid+1 points, then
// golden-section refinement in the bracket around the best grid point. obj
// need not be unimodal; the grid guards against the worst local maxima.
func lineSearch(hi float64, obj func(s float64) (float64, error)) (float64, error) {
	const lineGrid = 16
	const goldenIters = 24
	best, bestVal := 0.0, math.Inf(-1)
	for g := 0; g <= lineGrid; g++ {
		s := hi * float64(g) / lineGrid
		v, err := obj(s)
		if err != nil {
			return 0, err
		}
		if v > bestVal {
			best, bestVal = s, v
		}
	}
	lo, up := max(0, best-hi/lineGrid), min(hi, best+hi/lineGrid)
	phi := (math.Sqrt(5) - 1) / 2
	a, b := up-phi*(up-lo), lo+phi*(up-lo)
	fa, err := obj(a)
	if err != nil {
		return 0, err
	}
	fb, err := obj(b)
	if err != nil {
		return 0, err
	}
	for it := 0; it < goldenIters; it++ {
		if fa >= fb {
			up, b, fb = b, a, fa
			a = up - phi*(up-lo)
			if fa, err = obj(a); err != nil {
				return 0, err
			}
		} else {
			lo, a, fa = a, b, fb
			b = lo + phi*(up-lo)
			if fb, err = obj(b); err != nil {
				return 0, err
			}
		}
		for _, c := range [][2]float64{{a, fa}, {b, fb}} {
			if c[1] > bestVal {
				best, bestVal = c[0], c[1]
			}
		}
	}
	return best, nil
}

// damage returns ‖rule(honest ∪ f copies of v) − mean(honest)‖.
func damage(rule Rule, honest [][]float64, mean, v []float64, f int) (float64, error) {
	all := make([][]float64, 0, len(honest)+f)
	all = append(all, honest...)
	for i := 0; i < f; i++ {
		all = append(all, v)
	}
	agg, _, err := probe(rule).Aggregate(all, nil)
	if err != nil {
		return 0, err
	}
	return math.Sqrt(vec.SqDist(agg, mean)), nil
}

// OptALIE is ALIE with its scale chosen against the rule (Allouah et al.
// 2023, ByzFL's "Optimal ALIE"): mean − z·std with z in [0, MaxZ]
// maximising ‖rule(honest ∪ attack) − mean(honest)‖, found by lineSearch.
// It needs AttackInput.Rule (ErrNeedRule).
type OptALIE struct {
	// MaxZ is the upper end of the search (> 0).
	MaxZ float64
}

// Name returns "opt-alie".
func (OptALIE) Name() string { return "opt-alie" }

// Craft returns F copies of the most damaging ALIE vector found.
func (a OptALIE) Craft(in AttackInput) ([][]float64, error) {
	if _, err := checkHonest(a.Name(), in); err != nil {
		return nil, err
	}
	if in.Rule == nil {
		return nil, fmt.Errorf("%w: %s", ErrNeedRule, a.Name())
	}
	mean, std := meanStd(in.Honest)
	z, err := lineSearch(a.MaxZ, func(z float64) (float64, error) {
		return damage(in.Rule, in.Honest, mean, axpby(mean, -z, std), in.F)
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", a.Name(), err)
	}
	return copies(axpby(mean, -z, std), in.F), nil
}

// OptIPM is IPM with ε in [0, MaxEps] chosen like OptALIE's z.
type OptIPM struct {
	// MaxEps is the upper end of the search (> 0).
	MaxEps float64
}

// Name returns "opt-ipm".
func (OptIPM) Name() string { return "opt-ipm" }

// Craft returns F copies of the most damaging −ε·mean found.
func (a OptIPM) Craft(in AttackInput) ([][]float64, error) {
	d, err := checkHonest(a.Name(), in)
	if err != nil {
		return nil, err
	}
	if in.Rule == nil {
		return nil, fmt.Errorf("%w: %s", ErrNeedRule, a.Name())
	}
	mean := meanOf(in.Honest, d)
	zero := make([]float64, d)
	eps, err := lineSearch(a.MaxEps, func(e float64) (float64, error) {
		return damage(in.Rule, in.Honest, mean, axpby(zero, -e, mean), in.F)
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", a.Name(), err)
	}
	return copies(axpby(zero, -eps, mean), in.F), nil
}

// minMaxSum holds the quantities both Shejwalkar–Houmansadr attacks need:
// for m(γ) = mean − γ·std, ‖m(γ) − xᵢ‖² = aᵢ + 2γ·bᵢ + γ²·c with
// aᵢ = ‖mean − xᵢ‖², bᵢ = −⟨mean − xᵢ, std⟩, c = ‖std‖².
type minMaxSum struct {
	mean, std []float64
	a, b      []float64
	c         float64
	dist      []float64 // honest pairwise squared distances
}

func newMinMaxSum(honest [][]float64) *minMaxSum {
	mean, std := meanStd(honest)
	h := len(honest)
	s := &minMaxSum{mean: mean, std: std, a: make([]float64, h), b: make([]float64, h), c: vec.Dot(std, std)}
	for i, x := range honest {
		diff := axpby(mean, -1, x)
		s.a[i] = vec.Dot(diff, diff)
		s.b[i] = -vec.Dot(diff, std)
	}
	s.dist = pairwiseSqDist(honest)
	return s
}

func (s *minMaxSum) sq(i int, g float64) float64 { return s.a[i] + 2*g*s.b[i] + g*g*s.c }

// largestGamma returns the largest γ ≥ 0 with ok(γ), by doubling then
// bisection to relative precision 1e-9. The feasible set is an interval
// containing 0 because ok compares a convex function of γ with a constant
// that the mean (γ = 0) satisfies.
func largestGamma(ok func(g float64) bool) float64 {
	if !ok(0) {
		return 0
	}
	lo, hi := 0.0, 1.0
	for ok(hi) {
		lo, hi = hi, 2*hi
		if hi > 1e12 {
			return lo
		}
	}
	for it := 0; it < 200 && hi-lo > 1e-9*hi; it++ {
		mid := (lo + hi) / 2
		if ok(mid) {
			lo = mid
		} else {
			hi = mid
		}
	}
	return lo
}

// MinMax (Shejwalkar and Houmansadr, NDSS 2021) sends mean − γ·std with
// the largest γ such that the malicious vector's largest squared distance
// to an honest update is at most the largest squared distance between two
// honest updates. It needs at least two honest updates to have a spread;
// with identical honest updates it sends their mean.
type MinMax struct{}

// Name returns "min-max".
func (MinMax) Name() string { return "min-max" }

// Craft returns F copies of the min-max vector.
func (a MinMax) Craft(in AttackInput) ([][]float64, error) {
	if _, err := checkHonest(a.Name(), in); err != nil {
		return nil, err
	}
	s := newMinMaxSum(in.Honest)
	h := len(in.Honest)
	bound := 0.0
	for _, v := range s.dist {
		bound = max(bound, v)
	}
	g := largestGamma(func(g float64) bool {
		for i := 0; i < h; i++ {
			if s.sq(i, g) > bound {
				return false
			}
		}
		return true
	})
	return copies(axpby(s.mean, -g, s.std), in.F), nil
}

// MinSum (Shejwalkar and Houmansadr 2021) sends mean − γ·std with the
// largest γ such that the malicious vector's sum of squared distances to
// the honest updates is at most the largest such sum of an honest update.
type MinSum struct{}

// Name returns "min-sum".
func (MinSum) Name() string { return "min-sum" }

// Craft returns F copies of the min-sum vector.
func (a MinSum) Craft(in AttackInput) ([][]float64, error) {
	if _, err := checkHonest(a.Name(), in); err != nil {
		return nil, err
	}
	s := newMinMaxSum(in.Honest)
	h := len(in.Honest)
	bound := 0.0
	for i := 0; i < h; i++ {
		var sum float64
		for j := 0; j < h; j++ {
			sum += s.dist[i*h+j]
		}
		bound = max(bound, sum)
	}
	g := largestGamma(func(g float64) bool {
		var sum float64
		for i := 0; i < h; i++ {
			sum += s.sq(i, g)
		}
		return sum <= bound
	})
	return copies(axpby(s.mean, -g, s.std), in.F), nil
}
