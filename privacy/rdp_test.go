package privacy

import (
	"errors"
	"math"
	"testing"

	"pgregory.net/rapid"
)

// mnistQ, mnistSteps: DP-SGD on MNIST with batches of 256 out of 60,000
// for 60 epochs; steps = ⌈60·60000/256⌉ = 14063, as TF-Privacy's
// compute_dp_sgd_privacy counts them.
const (
	mnistQ     = 256.0 / 60000
	mnistSteps = 14063
)

// TestPublishedRDP checks the RDP of the sampled Gaussian mechanism
// against the known-answer values in TF-Privacy's rdp_accountant_test
// (compute_rdp(q, noise, steps, orders), quoted to the digits given there).
func TestPublishedRDP(t *testing.T) {
	t.Parallel()
	cases := []struct {
		q, z  float64
		steps float64
		alpha float64
		want  float64
		tol   float64
	}{
		{0.1, 2, 10, 5, 0.07737, 5e-6},
		{0.01, 2.5, 50, 1.5, 0.00065, 1e-5},
		{0.01, 2.5, 50, 2.5, 0.001085, 1e-5},
		{0.01, 2.5, 50, 5, 0.00218075, 1e-5},
		{0.01, 2.5, 50, 50, 0.023846, 1e-5},
		{0.01, 2.5, 50, 100, 167.416307, 1e-5},
		{1, 10, 1, 20, 0.1, 1e-15}, // q = 1: α/(2z²)
	}
	for _, c := range cases {
		r, err := RDP(c.q, c.z, c.alpha)
		if err != nil {
			t.Fatalf("RDP(%v, %v, %v): %v", c.q, c.z, c.alpha, err)
		}
		if got := c.steps * r; math.Abs(got-c.want) > c.tol {
			t.Errorf("steps·RDP(q=%v, z=%v, α=%v) = %.8g, want %.8g ± %g", c.q, c.z, c.alpha, got, c.want, c.tol)
		}
	}
}

// TestPublishedEpsilon checks whole (ε, δ) figures published by others.
func TestPublishedEpsilon(t *testing.T) {
	t.Parallel()
	// Opacus accountants_test: RDPAccountant, q = 0.04, z = 1.5,
	// steps = int(90/0.04) = 2250, δ = 1e-5 → ε = 7.32911117143, with the
	// same grid of orders and the same (Balle et al.) conversion.
	eps, _, err := Epsilon(0.04, 1.5, 2250, 1e-5)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(eps-7.32911117143) > 1e-7 {
		t.Errorf("Opacus case: ε = %.11f, want 7.32911117143", eps)
	}

	// DP-SGD on MNIST. TF-Privacy's compute_dp_sgd_privacy reports ε = 2.92
	// for z = 1.12 with the classic conversion ε = rdp − log δ/(α−1).
	r, err := rdpVector(mnistQ, 1.12, mnistSteps)
	if err != nil {
		t.Fatal(err)
	}
	if classic, _ := bestEpsilon(r, 1e-5, convertClassic); math.Abs(classic-2.92) > 0.005 {
		t.Errorf("MNIST z=1.12 classic conversion: ε = %.4f, want 2.92 (TF-Privacy)", classic)
	}
	// z = 1.1 (Abadi et al.'s setting): classic ≈ 3.01; Balle et al. is
	// strictly lower at every order, here by about 0.41.
	r, _ = rdpVector(mnistQ, 1.1, mnistSteps)
	classic, classicOrder := bestEpsilon(r, 1e-5, convertClassic)
	balle, balleOrder, err := Epsilon(mnistQ, 1.1, mnistSteps, 1e-5)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(classic-3.008) > 0.001 || math.Abs(balle-2.597) > 0.001 {
		t.Errorf("MNIST z=1.1: classic ε = %.4f (order %v), Balle ε = %.4f (order %v); want 3.008 and 2.597", classic, classicOrder, balle, balleOrder)
	}
	// The difference is the two extra terms of Balle's conversion at the
	// classic optimum or better: log(α/(α−1)) + log α/(α−1) at α = 8.8.
	if gap := classic - balle; gap < math.Log(8.8/7.8)+math.Log(8.8)/7.8-1e-9 {
		t.Errorf("Balle conversion gains only %.4f over classic, less than its own terms at the classic order", gap)
	}
}

// TestPlainGaussian: for q = 1 the accountant is the closed form
// ε = min_α T·α/(2z²) + log((α−1)/α) − (log δ + log α)/(α−1).
func TestPlainGaussian(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		z     float64
		steps int
		delta float64
	}{{1, 1, 1e-5}, {0.8, 10, 1e-6}, {5, 1000, 1e-5}, {20, 3, 0.01}} {
		want, wantOrder := math.Inf(1), 0.0
		for x := 1; x < 100; x++ {
			a := 1 + float64(x)/10
			if e := float64(c.steps)*a/(2*c.z*c.z) + math.Log((a-1)/a) - (math.Log(c.delta)+math.Log(a))/(a-1); e < want {
				want, wantOrder = e, a
			}
		}
		for a := 12.0; a <= 63; a++ {
			if e := float64(c.steps)*a/(2*c.z*c.z) + math.Log((a-1)/a) - (math.Log(c.delta)+math.Log(a))/(a-1); e < want {
				want, wantOrder = e, a
			}
		}
		want = math.Max(want, 0)
		eps, order, err := Epsilon(1, c.z, c.steps, c.delta)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(eps-want) > 1e-12*math.Max(1, want) || order != wantOrder {
			t.Errorf("q=1 z=%v T=%d δ=%v: got ε=%v order %v, want %v order %v", c.z, c.steps, c.delta, eps, order, want, wantOrder)
		}
	}
}

// logANumeric computes log A_α = log ∫ N(x;0,z²)·((1−q) + q·e^{(2x−1)/(2z²)})^α dx
// straight from the definition of the Rényi divergence between the
// mixture (1−q)N(0,z²) + qN(1,z²) and N(0,z²), by the trapezoid rule in
// log space on [−40z−1, α+40z+1] with step z/400 (the integrand is a
// smooth, Gaussian-tailed function, for which the rule converges fast).
func logANumeric(q, z, alpha float64) float64 {
	lo, hi := -40*z-1, alpha+40*z+1
	h := z / 400
	n := int((hi-lo)/h) + 1
	logs := make([]float64, 0, n+1)
	for i := 0; i <= n; i++ {
		x := lo + float64(i)*h
		u := (2*x - 1) / (2 * z * z)
		a, b := math.Log1p(-q), math.Log(q)+u
		m := math.Max(a, b)
		mix := m + math.Log(math.Exp(a-m)+math.Exp(b-m))
		lg := -x*x/(2*z*z) - math.Log(z*math.Sqrt(2*math.Pi)) + alpha*mix
		if i == 0 || i == n {
			lg += math.Log(0.5)
		}
		logs = append(logs, lg)
	}
	return logSumExp(logs) + math.Log(h)
}

// TestRDPMatchesIntegral compares the closed-form and series values of
// log A_α with direct numerical integration of the definition, at integer
// and fractional orders.
func TestRDPMatchesIntegral(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ q, z, alpha float64 }{
		{0.01, 1, 2}, {0.01, 1, 1.5}, {0.1, 0.8, 3}, {0.1, 0.8, 3.7}, {0.3, 2, 1.1},
		{0.05, 1.1, 8.3}, {0.5, 1, 10.9}, {0.02, 4, 32}, {0.2, 0.7, 12}, {0.9, 1.5, 2.4},
	} {
		r, err := RDP(c.q, c.z, c.alpha)
		if err != nil {
			t.Fatal(err)
		}
		want := logANumeric(c.q, c.z, c.alpha) / (c.alpha - 1)
		if math.Abs(r-want) > 1e-8*math.Max(want, 1e-6) {
			t.Errorf("RDP(q=%v, z=%v, α=%v) = %.12g, integral gives %.12g", c.q, c.z, c.alpha, r, want)
		}
	}
}

// TestSeriesAgreesWithBinomial: at an integer order the fractional series
// terminates (C(α,i) = 0 for i > α) and must equal the finite sum.
func TestSeriesAgreesWithBinomial(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		q, z  float64
		alpha int
	}{{0.01, 1, 2}, {0.1, 0.8, 5}, {0.5, 2, 20}, {0.004, 1.1, 12}} {
		series, err := logAFrac(c.q, c.z, float64(c.alpha))
		if err != nil {
			t.Fatal(err)
		}
		exact := logAInt(c.q, c.z, c.alpha)
		if math.Abs(series-exact) > 1e-9*math.Max(exact, 1e-9) {
			t.Errorf("q=%v z=%v α=%d: series %.15g, binomial sum %.15g", c.q, c.z, c.alpha, series, exact)
		}
	}
}

// TestEpsilonMonotone: ε falls as z rises and rises with q and with T.
func TestEpsilonMonotone(t *testing.T) {
	t.Parallel()
	rapid.Check(t, func(t *rapid.T) {
		q := rapid.Float64Range(1e-4, 1).Draw(t, "q")
		z := rapid.Float64Range(0.4, 20).Draw(t, "z")
		steps := rapid.IntRange(1, 100000).Draw(t, "steps")
		delta := rapid.Float64Range(1e-10, 0.1).Draw(t, "delta")
		grow := rapid.Float64Range(1.001, 3).Draw(t, "grow")
		e0, _, err := Epsilon(q, z, steps, delta)
		if err != nil {
			t.Fatal(err)
		}
		slack := 1e-9 * math.Max(1, e0)
		if e, _, _ := Epsilon(q, z*grow, steps, delta); e > e0+slack {
			t.Fatalf("ε rose from %v to %v when z rose from %v to %v", e0, e, z, z*grow)
		}
		if e, _, _ := Epsilon(math.Min(1, q*grow), z, steps, delta); e < e0-slack {
			t.Fatalf("ε fell from %v to %v when q rose from %v to %v", e0, e, q, math.Min(1, q*grow))
		}
		if e, _, _ := Epsilon(q, z, steps+int(float64(steps)*(grow-1))+1, delta); e < e0-slack {
			t.Fatalf("ε fell from %v to %v when steps rose from %d", e0, e, steps)
		}
		if e, _, _ := Epsilon(q, z, steps, delta/grow); e < e0-slack {
			t.Fatalf("ε fell from %v to %v when δ fell from %v", e0, e, delta)
		}
	})
}

// TestBadInput: every invalid parameter is a *ParamError naming it.
func TestBadInput(t *testing.T) {
	t.Parallel()
	nan := math.NaN()
	cases := []struct {
		name  string
		param string
		err   error
	}{
		{"q=0", "sample_rate", epsErr(0, 1, 10, 1e-5)},
		{"q>1", "sample_rate", epsErr(1.5, 1, 10, 1e-5)},
		{"q=NaN", "sample_rate", epsErr(nan, 1, 10, 1e-5)},
		{"z=0", "noise_multiplier", epsErr(0.1, 0, 10, 1e-5)},
		{"z<0", "noise_multiplier", epsErr(0.1, -1, 10, 1e-5)},
		{"z=Inf", "noise_multiplier", epsErr(0.1, math.Inf(1), 10, 1e-5)},
		{"steps=0", "steps", epsErr(0.1, 1, 0, 1e-5)},
		{"delta=0", "delta", epsErr(0.1, 1, 10, 0)},
		{"delta=1", "delta", epsErr(0.1, 1, 10, 1)},
		{"delta=NaN", "delta", epsErr(0.1, 1, 10, nan)},
		{"target=0", "target_epsilon", noiseErr(0, 0.1, 10, 1e-5)},
		{"target=Inf", "target_epsilon", noiseErr(math.Inf(1), 0.1, 10, 1e-5)},
		{"noise q", "sample_rate", noiseErr(1, 0, 10, 1e-5)},
		{"noise steps", "steps", noiseErr(1, 0.1, -3, 1e-5)},
		{"order", "order", func() error { _, err := RDP(0.1, 1, 1); return err }()},
	}
	for _, c := range cases {
		var pe *ParamError
		if !errors.As(c.err, &pe) || pe.Param != c.param || !errors.Is(c.err, ErrInvalidParameter) {
			t.Errorf("%s: error %v, want a *ParamError for %s", c.name, c.err, c.param)
		}
	}
}

func epsErr(q, z float64, steps int, delta float64) error {
	_, _, err := Epsilon(q, z, steps, delta)
	return err
}

func noiseErr(target, q float64, steps int, delta float64) error {
	_, err := NoiseMultiplier(target, q, steps, delta)
	return err
}

// TestNoiseMultiplier: the solved z meets the target, and z shrunk by
// twice the tolerance does not.
func TestNoiseMultiplier(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		target, q float64
		steps     int
		delta     float64
	}{{8, 0.04, 2250, 1e-5}, {3, mnistQ, mnistSteps, 1e-5}, {1, 0.05, 100, 1e-5}, {0.5, 1, 1, 1e-6}, {50, 0.5, 10, 1e-5}} {
		z, err := NoiseMultiplier(c.target, c.q, c.steps, c.delta)
		if err != nil {
			t.Fatalf("%+v: %v", c, err)
		}
		e, _, _ := Epsilon(c.q, z, c.steps, c.delta)
		below, _, _ := Epsilon(c.q, z*(1-2*NoiseTolerance), c.steps, c.delta)
		if e > c.target || below <= c.target {
			t.Errorf("%+v: z = %v gives ε = %v; z·(1−2tol) gives %v: not the smallest z within tolerance", c, z, e, below)
		}
	}
}

// TestNoiseUnreachable: a target at or below the floor is refused.
func TestNoiseUnreachable(t *testing.T) {
	t.Parallel()
	floor, err := EpsilonFloor(1e-5)
	if err != nil {
		t.Fatal(err)
	}
	// The floor is the conversion at RDP 0, reached at the largest order:
	// log(62/63) − (log 1e-5 + log 63)/62.
	if want := math.Log(62.0/63) - (math.Log(1e-5)+math.Log(63))/62; math.Abs(floor-want) > 1e-12 {
		t.Errorf("floor = %v, want %v", floor, want)
	}
	if _, err := NoiseMultiplier(floor, 0.01, 100, 1e-5); !errors.Is(err, ErrUnreachable) {
		t.Errorf("target at the floor: err = %v, want ErrUnreachable", err)
	}
	if z, err := NoiseMultiplier(floor*1.5, 0.01, 100, 1e-5); err != nil || z <= 0 {
		t.Errorf("target 1.5× the floor: z=%v err=%v", z, err)
	}
}

// TestNoPrivacy: a noise multiplier so small that the RDP overflows gives
// ε = +Inf, not NaN or an error.
func TestNoPrivacy(t *testing.T) {
	t.Parallel()
	for _, q := range []float64{1e-3, 0.5, 1} {
		eps, _, err := Epsilon(q, 1e-300, 10, 1e-5)
		if err != nil || !math.IsInf(eps, 1) {
			t.Errorf("q=%v z=1e-300: ε=%v err=%v, want +Inf", q, eps, err)
		}
	}
}
