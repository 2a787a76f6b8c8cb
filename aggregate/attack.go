package aggregate

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"

	"github.com/mfn/mfn/aggregate/internal/vec"
	"gonum.org/v1/gonum/stat/distuv"
)

// AttackParams configures attacks built by name. A zero field selects the
// documented default.
type AttackParams struct {
	// Sigma is the Gaussian attack's standard deviation; zero means 1.
	Sigma float64
	// Eps is IPM's ε; zero means 0.5 for "ipm" and 2 for "ipm-byzfl".
	Eps float64
	// Z overrides ALIE's z; zero means z = Φ⁻¹((n−s)/n).
	Z float64
	// MimicIndex is the honest client "mimic-fixed" copies.
	MimicIndex int
	// MaxScale is the upper end of the Opt-ALIE / Opt-IPM line search over
	// [0, MaxScale]; zero means 10.
	MaxScale float64
	// Classes is the number of labels for label flip; zero means 10.
	Classes int
}

// AttackNames lists the names NewAttack accepts.
var AttackNames = []string{
	"sign-flip", "gaussian", "label-flip", "alie", "ipm", "ipm-byzfl",
	"mimic", "mimic-fixed", "opt-alie", "opt-ipm", "min-max", "min-sum", "inf", "nan",
}

// NewAttack builds the attack called name. It fails with ErrUnknownName for
// a name not in AttackNames and a *ParamError for a parameter out of range.
func NewAttack(name string, p AttackParams) (Attack, error) {
	if p.Sigma < 0 || p.Eps < 0 || p.MaxScale < 0 || p.Classes < 0 || p.MimicIndex < 0 {
		return nil, paramErr(name, "AttackParams", p, "non-negative fields")
	}
	def := func(v, d float64) float64 {
		if v == 0 {
			return d
		}
		return v
	}
	switch name {
	case "sign-flip":
		return SignFlip{}, nil
	case "gaussian":
		return Gaussian{Sigma: def(p.Sigma, 1)}, nil
	case "label-flip":
		c := p.Classes
		if c == 0 {
			c = 10
		}
		return LabelFlip{Classes: c}, nil
	case "alie":
		return ALIE{Z: p.Z}, nil
	case "ipm":
		return IPM{Eps: def(p.Eps, 0.5)}, nil
	case "ipm-byzfl":
		return IPM{Eps: def(p.Eps, 2), Label: "ipm-byzfl"}, nil
	case "mimic":
		return &Mimic{Index: -1}, nil
	case "mimic-fixed":
		return &Mimic{Index: p.MimicIndex}, nil
	case "opt-alie":
		return OptALIE{MaxZ: def(p.MaxScale, 10)}, nil
	case "opt-ipm":
		return OptIPM{MaxEps: def(p.MaxScale, 10)}, nil
	case "min-max":
		return MinMax{}, nil
	case "min-sum":
		return MinSum{}, nil
	case "inf":
		return Constant{Value: math.Inf(1)}, nil
	case "nan":
		return Constant{Value: math.NaN()}, nil
	}
	return nil, fmt.Errorf("%w: attack %q (known: %s)", ErrUnknownName, name, strings.Join(AttackNames, ", "))
}

// checkHonest validates the common part of an AttackInput and returns d.
func checkHonest(name string, in AttackInput) (int, error) {
	if in.F < 0 {
		return 0, paramErr(name, "F", in.F, "≥ 0")
	}
	if len(in.Honest) == 0 {
		return 0, fmt.Errorf("%w: %s: no honest updates to craft from", ErrBadArguments, name)
	}
	d := len(in.Honest[0])
	for i, h := range in.Honest {
		if len(h) != d {
			return 0, fmt.Errorf("%w: %s: honest update %d has length %d, want %d", ErrBadArguments, name, i, len(h), d)
		}
	}
	return d, nil
}

// copies returns f independent copies of v.
func copies(v []float64, f int) [][]float64 {
	out := make([][]float64, f)
	for i := range out {
		out[i] = slices.Clone(v)
	}
	return out
}

// meanStd returns the coordinate-wise mean and unbiased standard deviation
// (zero when there is a single honest update).
func meanStd(xs [][]float64) (mean, std []float64) {
	d := len(xs[0])
	mean = meanOf(xs, d)
	std = make([]float64, d)
	if len(xs) < 2 {
		return mean, std
	}
	for _, x := range xs {
		for k, v := range x {
			t := v - mean[k]
			std[k] += t * t
		}
	}
	for k := range std {
		std[k] = math.Sqrt(std[k] / float64(len(xs)-1))
	}
	return mean, std
}

// axpby returns a + s·b.
func axpby(a []float64, s float64, b []float64) []float64 {
	out := make([]float64, len(a))
	for k := range out {
		out[k] = a[k] + s*b[k]
	}
	return out
}

// SignFlip sends −mean(honest) (Allen-Zhu et al. 2021): the reverse of the
// honest direction.
type SignFlip struct{}

// Name returns "sign-flip".
func (SignFlip) Name() string { return "sign-flip" }

// Craft returns F copies of −mean(honest).
func (a SignFlip) Craft(in AttackInput) ([][]float64, error) {
	d, err := checkHonest(a.Name(), in)
	if err != nil {
		return nil, err
	}
	m := meanOf(in.Honest, d)
	for k := range m {
		m[k] = -m[k]
	}
	return copies(m, in.F), nil
}

// Gaussian sends vectors whose coordinates are independent N(0, σ²) draws
// from AttackInput.Rand (ErrNeedRand without it).
type Gaussian struct {
	// Sigma is the standard deviation σ ≥ 0.
	Sigma float64
}

// Name returns "gaussian".
func (Gaussian) Name() string { return "gaussian" }

// Craft returns F independent Gaussian vectors.
func (a Gaussian) Craft(in AttackInput) ([][]float64, error) {
	d, err := checkHonest(a.Name(), in)
	if err != nil {
		return nil, err
	}
	if in.Rand == nil {
		return nil, fmt.Errorf("%w: gaussian", ErrNeedRand)
	}
	out := make([][]float64, in.F)
	for i := range out {
		out[i] = make([]float64, d)
		for k := range out[i] {
			out[i][k] = a.Sigma * in.Rand.NormFloat64()
		}
	}
	return out, nil
}

// LabelFlip marks the label-flipping attack: Byzantine clients train
// honestly on labels y → Classes−1−y (FlipLabel). It acts on data, so the
// training harness carries it out; Craft always fails with ErrDataLevel.
type LabelFlip struct {
	// Classes is the number of labels.
	Classes int
}

// Name returns "label-flip".
func (LabelFlip) Name() string { return "label-flip" }

// Craft returns ErrDataLevel: train on FlipLabel-ed labels instead.
func (LabelFlip) Craft(AttackInput) ([][]float64, error) {
	return nil, fmt.Errorf("%w: label-flip: train the Byzantine clients on labels mapped by FlipLabel", ErrDataLevel)
}

// FlipLabel returns classes−1−y, the label a label-flipping client trains
// on in place of y.
func FlipLabel(y, classes int) int { return classes - 1 - y }

// ALIE is "A Little Is Enough" (Baruch, Baruch and Goldberg, NeurIPS
// 2019): every Byzantine client sends mean − z·std (coordinate-wise, std
// unbiased) with z = Φ⁻¹((n−s)/n), s = ⌊n/2+1⌋ − f, n = honest + f. It
// fails with ErrInvalidParam when s ≤ 0 (a Byzantine majority), where z is
// infinite.
type ALIE struct {
	// Z overrides the computed z when non-zero.
	Z float64
}

// Name returns "alie".
func (ALIE) Name() string { return "alie" }

// ZFor returns ALIE's z for honest honest clients and f Byzantine ones.
func (a ALIE) ZFor(honest, f int) (float64, error) {
	if a.Z != 0 {
		return a.Z, nil
	}
	n := honest + f
	s := n/2 + 1 - f
	if s <= 0 {
		return 0, paramErr(a.Name(), "F", f, fmt.Sprintf("< ⌊n/2+1⌋ = %d so that s > 0", n/2+1))
	}
	return distuv.UnitNormal.Quantile(float64(n-s) / float64(n)), nil
}

// Craft returns F copies of mean − z·std.
func (a ALIE) Craft(in AttackInput) ([][]float64, error) {
	if _, err := checkHonest(a.Name(), in); err != nil {
		return nil, err
	}
	z, err := a.ZFor(len(in.Honest), in.F)
	if err != nil {
		return nil, err
	}
	mean, std := meanStd(in.Honest)
	return copies(axpby(mean, -z, std), in.F), nil
}

// IPM is the inner-product manipulation attack (Xie, Koyejo and Gupta,
// UAI 2020): every Byzantine client sends −ε·mean(honest). ByzFL's form,
// mean·(−τ) with τ = 2, is the same with ε = 2 ("ipm-byzfl").
type IPM struct {
	// Eps is ε ≥ 0.
	Eps float64
	// Label replaces the name "ipm" when set.
	Label string
}

// Name returns "ipm" or Label.
func (a IPM) Name() string {
	if a.Label != "" {
		return a.Label
	}
	return "ipm"
}

// Craft returns F copies of −ε·mean.
func (a IPM) Craft(in AttackInput) ([][]float64, error) {
	d, err := checkHonest(a.Name(), in)
	if err != nil {
		return nil, err
	}
	m := meanOf(in.Honest, d)
	for k := range m {
		m[k] *= -a.Eps
	}
	return copies(m, in.F), nil
}

// Mimic makes every Byzantine client copy one honest client (Karimireddy,
// He and Jaggi, ICLR 2022), which over-represents that client's data and
// hurts under heterogeneity. With Index ≥ 0 it copies that honest client.
// With Index < 0 it is adaptive: it keeps a running estimate z of the top
// principal direction of the centred honest updates, updated once per
// Craft by one power-iteration step averaged with the past
// (z ← normalise(t·z + normalise(C·z)), C the round's covariance, z first
// set to the centred update of largest norm), and copies the honest client
// maximising |⟨xᵢ − mean, z⟩|. The state lives in the value: use one Mimic
// across the rounds of a run. Safe for concurrent use.
type Mimic struct {
	// Index is the honest client copied, or negative for the adaptive
	// choice.
	Index int

	mu     sync.Mutex
	dir    []float64
	rounds int
}

// Name returns "mimic" or "mimic-fixed".
func (a *Mimic) Name() string {
	if a.Index >= 0 {
		return "mimic-fixed"
	}
	return "mimic"
}

// Craft returns F copies of the chosen honest update.
func (a *Mimic) Craft(in AttackInput) ([][]float64, error) {
	d, err := checkHonest(a.Name(), in)
	if err != nil {
		return nil, err
	}
	if a.Index >= 0 {
		if a.Index >= len(in.Honest) {
			return nil, paramErr(a.Name(), "MimicIndex", a.Index, fmt.Sprintf("< %d honest clients", len(in.Honest)))
		}
		return copies(in.Honest[a.Index], in.F), nil
	}
	return copies(in.Honest[a.choose(in.Honest, d)], in.F), nil
}

// choose updates the running direction and returns the honest client to copy.
func (a *Mimic) choose(xs [][]float64, d int) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	mean := meanOf(xs, d)
	ys := make([][]float64, len(xs))
	for i, x := range xs {
		ys[i] = axpby(x, -1, mean)
	}
	if len(a.dir) != d {
		a.dir, a.rounds = nil, 0
		best := 0
		for i, y := range ys {
			if vec.Dot(y, y) > vec.Dot(ys[best], ys[best]) {
				best = i
			}
		}
		a.dir = normalised(slices.Clone(ys[best]))
	}
	cz := make([]float64, d)
	for _, y := range ys {
		p := vec.Dot(y, a.dir)
		for k := range cz {
			cz[k] += p * y[k]
		}
	}
	cz = normalised(cz)
	t := float64(a.rounds)
	for k := range a.dir {
		a.dir[k] = t*a.dir[k] + cz[k]
	}
	a.dir = normalised(a.dir)
	a.rounds++
	best, bestProj := 0, -1.0
	for i, y := range ys {
		if p := math.Abs(vec.Dot(y, a.dir)); p > bestProj {
			best, bestProj = i, p
		}
	}
	return best
}

func normalised(v []float64) []float64 {
	norm := math.Sqrt(vec.Dot(v, v))
	if norm > 0 {
		for k := range v {
			v[k] /= norm
		}
	}
	return v
}

// Constant sends vectors whose every coordinate is Value: +Inf or NaN to
// check that rules reject them.
type Constant struct {
	// Value fills every coordinate.
	Value float64
}

// Name returns "inf", "nan", or "constant".
func (a Constant) Name() string {
	switch {
	case math.IsNaN(a.Value):
		return "nan"
	case math.IsInf(a.Value, 0):
		return "inf"
	}
	return "constant"
}

// Craft returns F vectors filled with Value.
func (a Constant) Craft(in AttackInput) ([][]float64, error) {
	d, err := checkHonest(a.Name(), in)
	if err != nil {
		return nil, err
	}
	v := make([]float64, d)
	for k := range v {
		v[k] = a.Value
	}
	return copies(v, in.F), nil
}
