package aggregate

import (
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
)

// Honest updates used by the attack tests: mean (2, 1, 0), unbiased std
// (√(10/3), √(2/3)·… computed below by hand).
var honest4 = [][]float64{
	{1, 0, 0},
	{2, 2, 0},
	{3, 1, 0},
	{2, 1, 0},
}

// Hand-computed statistics of honest4.
var (
	mean4 = []float64{2, 1, 0}
	// Σ(x−mean)² per coordinate: (1+0+1+0)=2, (1+1+0+0)=2, 0; divided by 3.
	std4 = []float64{math.Sqrt(2.0 / 3), math.Sqrt(2.0 / 3), 0}
)

func craft(t *testing.T, a Attack, in AttackInput) [][]float64 {
	t.Helper()
	out, err := a.Craft(in)
	if err != nil {
		t.Fatalf("%s: %v", a.Name(), err)
	}
	if len(out) != in.F {
		t.Fatalf("%s: %d vectors, want %d", a.Name(), len(out), in.F)
	}
	return out
}

func near(t *testing.T, what string, got, want []float64, tol float64) {
	t.Helper()
	if d := maxAbsDiff(got, want); d > tol {
		t.Fatalf("%s = %v, want %v (off by %g)", what, got, want, d)
	}
}

func TestSignFlipAndIPM(t *testing.T) {
	in := AttackInput{Honest: honest4, F: 2}
	for _, v := range craft(t, SignFlip{}, in) {
		near(t, "sign flip", v, []float64{-2, -1, 0}, 1e-15)
	}
	for _, eps := range []float64{0.1, 0.5} {
		a := must(NewAttack("ipm", AttackParams{Eps: eps}))
		for _, v := range craft(t, a, in) {
			near(t, "ipm", v, []float64{-2 * eps, -eps, 0}, 1e-15)
		}
	}
	a := must(NewAttack("ipm-byzfl", AttackParams{}))
	if a.Name() != "ipm-byzfl" {
		t.Fatalf("name %q", a.Name())
	}
	near(t, "ipm τ=2", craft(t, a, in)[0], []float64{-4, -2, 0}, 1e-15)
}

func TestGaussianMoments(t *testing.T) {
	a := must(NewAttack("gaussian", AttackParams{Sigma: 200}))
	if _, err := a.Craft(AttackInput{Honest: honest4, F: 1}); !errors.Is(err, ErrNeedRand) {
		t.Fatalf("without Rand: %v", err)
	}
	in := AttackInput{Honest: [][]float64{make([]float64, 20000)}, F: 3, Rand: seeded(41)}
	out := craft(t, a, in)
	var sum, sq float64
	for _, v := range out {
		for _, x := range v {
			sum += x
			sq += x * x
		}
	}
	cnt := float64(3 * 20000)
	mean, sd := sum/cnt, math.Sqrt(sq/cnt)
	// Standard errors: 200/√60000 ≈ 0.82 for the mean, ≈ 0.58 for the sd.
	if math.Abs(mean) > 4 || math.Abs(sd-200) > 3 {
		t.Fatalf("mean %g sd %g, want ≈ 0 and ≈ 200", mean, sd)
	}
	if slices.Equal(out[0], out[1]) {
		t.Fatal("Byzantine Gaussian vectors should be independent draws")
	}
	again := craft(t, a, AttackInput{Honest: in.Honest, F: 3, Rand: seeded(41)})
	if !slices.Equal(out[2], again[2]) {
		t.Fatal("same seed, different vectors")
	}
}

func TestLabelFlip(t *testing.T) {
	a := must(NewAttack("label-flip", AttackParams{}))
	if _, err := a.Craft(AttackInput{Honest: honest4, F: 1}); !errors.Is(err, ErrDataLevel) {
		t.Fatalf("got %v, want ErrDataLevel", err)
	}
	for y, want := range []int{9, 8, 7, 6, 5, 4, 3, 2, 1, 0} {
		if got := FlipLabel(y, 10); got != want {
			t.Errorf("FlipLabel(%d, 10) = %d, want %d", y, got, want)
		}
	}
}

func TestALIE(t *testing.T) {
	// n = 4 honest + 2 = 6, s = ⌊6/2+1⌋ − 2 = 2, z = Φ⁻¹(4/6).
	z := math.Sqrt2 * math.Erfinv(2*(4.0/6)-1)
	got, err := ALIE{}.ZFor(4, 2)
	if err != nil || math.Abs(got-z) > 1e-12 {
		t.Fatalf("z = %v (%v), want %v", got, err, z)
	}
	out := craft(t, ALIE{}, AttackInput{Honest: honest4, F: 2})
	want := []float64{2 - z*std4[0], 1 - z*std4[1], 0}
	near(t, "alie", out[0], want, 1e-12)
	near(t, "alie copy", out[1], out[0], 0)
	// A Byzantine majority makes s ≤ 0 and z infinite.
	if _, err := (ALIE{}).Craft(AttackInput{Honest: honest4, F: 5}); !errors.Is(err, ErrInvalidParam) {
		t.Fatalf("f = 5 of 9: got %v, want ErrInvalidParam", err)
	}
}

func TestMimic(t *testing.T) {
	fixed := must(NewAttack("mimic-fixed", AttackParams{MimicIndex: 2}))
	near(t, "mimic-fixed", craft(t, fixed, AttackInput{Honest: honest4, F: 2})[1], honest4[2], 0)
	if _, err := fixed.Craft(AttackInput{Honest: honest4[:2], F: 1}); !errors.Is(err, ErrInvalidParam) {
		t.Fatalf("index out of range: %v", err)
	}
	// The top principal direction of these updates is the first axis; the
	// client farthest along it (|3 − 0.75| = 2.25) is index 2.
	hs := [][]float64{{1, 0}, {-1, 0}, {3, 0}, {0, 0.1}}
	m := must(NewAttack("mimic", AttackParams{}))
	for round := 0; round < 3; round++ {
		near(t, "mimic", craft(t, m, AttackInput{Honest: hs, F: 2})[0], hs[2], 0)
	}
	// The running direction persists: after many rounds along the second
	// axis it moves there and picks the client farthest along it.
	hs2 := [][]float64{{0.1, 5}, {0, -1}, {0, 0}, {0.2, 1}}
	var last []float64
	for round := 0; round < 50; round++ {
		last = craft(t, m, AttackInput{Honest: hs2, F: 1})[0]
	}
	near(t, "mimic after drift", last, hs2[0], 0)
}

func TestConstantAttacks(t *testing.T) {
	for _, name := range []string{"inf", "nan"} {
		a := must(NewAttack(name, AttackParams{}))
		out := craft(t, a, AttackInput{Honest: honest4, F: 2})
		for _, v := range out {
			for _, x := range v {
				if name == "inf" && !math.IsInf(x, 1) || name == "nan" && !math.IsNaN(x) {
					t.Fatalf("%s attack produced %v", name, x)
				}
			}
		}
		// Every rule rejects them and reports it.
		all := append(slices.Clone(honest4), out...)
		all = append(all, []float64{2, 1, 0}, []float64{1.5, 1, 0}, []float64{2.5, 1, 0})
		for _, rule := range []Rule{FedAvg{}, must(NewKrum(2)), must(NewTrimmedMean(2))} {
			agg, rep, err := rule.Aggregate(all, nil)
			if err != nil {
				t.Fatalf("%s vs %s: %v", rule.Name(), name, err)
			}
			for _, x := range agg {
				if math.IsNaN(x) || math.IsInf(x, 0) {
					t.Fatalf("%s let %s through", rule.Name(), name)
				}
			}
			for _, at := range []int{4, 5} {
				i := slices.IndexFunc(rep.Rejected, func(r Rejection) bool { return r.Index == at })
				if i < 0 || !strings.Contains(rep.Rejected[i].Reason, map[string]string{"inf": "Inf", "nan": "NaN"}[name]) {
					t.Fatalf("%s: input %d not rejected for %s: %v", rule.Name(), at, name, rep.Rejected)
				}
			}
		}
	}
}

// bruteGamma finds the largest feasible γ on a fine grid, independently of
// largestGamma's doubling and bisection.
func bruteGamma(ok func(m []float64) bool) float64 {
	best := 0.0
	for g := 0.0; g < 20; g += 1e-4 {
		if ok(axpby(mean4, -g, std4)) {
			best = g
		}
	}
	return best
}

func TestMinMaxAndMinSum(t *testing.T) {
	sq := func(a, b []float64) float64 { return naiveSqDist(a, b) }
	maxPair, maxSum := 0.0, 0.0
	for _, x := range honest4 {
		var s float64
		for _, y := range honest4 {
			maxPair = max(maxPair, sq(x, y))
			s += sq(x, y)
		}
		maxSum = max(maxSum, s)
	}
	gMax := bruteGamma(func(m []float64) bool {
		for _, x := range honest4 {
			if sq(m, x) > maxPair {
				return false
			}
		}
		return true
	})
	gSum := bruteGamma(func(m []float64) bool {
		var s float64
		for _, x := range honest4 {
			s += sq(m, x)
		}
		return s <= maxSum
	})
	in := AttackInput{Honest: honest4, F: 1}
	near(t, "min-max", craft(t, MinMax{}, in)[0], axpby(mean4, -gMax, std4), 2e-4)
	near(t, "min-sum", craft(t, MinSum{}, in)[0], axpby(mean4, -gSum, std4), 2e-4)
	if gMax <= 0 || gSum <= 0 {
		t.Fatalf("degenerate test: γ = %v, %v", gMax, gSum)
	}
}

func TestOptAttacksSearchTheScale(t *testing.T) {
	in := AttackInput{Honest: honest4, F: 2}
	if _, err := (OptALIE{MaxZ: 10}).Craft(in); !errors.Is(err, ErrNeedRule) {
		t.Fatalf("without a rule: %v", err)
	}
	// Against the mean, the damage F/(h+F)·z·‖std‖ grows with z: the
	// search must end at the top of its range.
	in.Rule = FedAvg{}
	near(t, "opt-alie vs fedavg", craft(t, OptALIE{MaxZ: 10}, in)[0], axpby(mean4, -10, std4), 1e-9)
	near(t, "opt-ipm vs fedavg", craft(t, OptIPM{MaxEps: 10}, in)[0], []float64{-20, -10, 0}, 1e-9)

	// Against the median, compare with an independent fine scan.
	hs := gaussians(seeded(43), 7, 5)
	med := must(NewMedian(3))
	in = AttackInput{Honest: hs, F: 3, Rule: med}
	mean, std := meanStd(hs)
	scan := 0.0
	for z := 0.0; z <= 10; z += 0.01 {
		v, err := damage(med, hs, mean, axpby(mean, -z, std), 3)
		if err != nil {
			t.Fatal(err)
		}
		scan = max(scan, v)
	}
	got := craft(t, OptALIE{MaxZ: 10}, in)[0]
	v, err := damage(med, hs, mean, got, 3)
	if err != nil {
		t.Fatal(err)
	}
	if v < 0.99*scan {
		t.Fatalf("opt-alie damage %g, a fine scan finds %g", v, scan)
	}
}

func TestOptAttackLeavesRuleStateAlone(t *testing.T) {
	cc := must(NewCenteredClipping(1, 1))
	cc.SetReference([]float64{0.5, 0.5, 0})
	in := AttackInput{Honest: honest4, F: 2, Rule: cc}
	craft(t, OptIPM{MaxEps: 4}, in)
	if ref := cc.Reference(); !slices.Equal(ref, []float64{0.5, 0.5, 0}) {
		t.Fatalf("the attack's probing changed the rule's reference to %v", ref)
	}
}

func TestAttackRegistry(t *testing.T) {
	for _, name := range AttackNames {
		a, err := NewAttack(name, AttackParams{})
		if err != nil {
			t.Fatalf("NewAttack(%q): %v", name, err)
		}
		if a.Name() != name {
			t.Errorf("NewAttack(%q).Name() = %q", name, a.Name())
		}
	}
	if _, err := NewAttack("nope", AttackParams{}); !errors.Is(err, ErrUnknownName) {
		t.Fatal(err)
	}
	if _, err := NewAttack("gaussian", AttackParams{Sigma: -1}); !errors.Is(err, ErrInvalidParam) {
		t.Fatal(err)
	}
}
