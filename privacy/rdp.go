package privacy

import (
	"fmt"
	"math"
)

// orders is the grid of Rényi orders the accountant minimises over:
// 1.1, 1.2, …, 10.9 (99 fractional-step orders) and 12, 13, …, 63 (52
// integer orders), the grid of TF-Privacy and Opacus, so that figures are
// comparable. Small orders matter for large ε, large orders for small ε.
var orders = func() []float64 {
	o := make([]float64, 0, 99+52)
	for x := 1; x < 100; x++ {
		o = append(o, 1+float64(x)/10)
	}
	for a := 12; a <= 63; a++ {
		o = append(o, float64(a))
	}
	return o
}()

// Orders returns a copy of the grid of Rényi orders used by Epsilon,
// NoiseMultiplier and Accountant: 1.1, 1.2, …, 10.9, 12, 13, …, 63.
func Orders() []float64 { return append([]float64(nil), orders...) }

// MaxSteps bounds the number of steps one call may compose (and an
// Accountant may hold): 2^40, far beyond any training job, small enough
// that steps·RDP stays exact in its integer part.
const MaxSteps = 1 << 40

// seriesTerms bounds the fractional-order series (see logAFrac). Its terms
// decay at least like i^−(α+2) for i beyond α; at α = 1.1 the slowest case
// (q = 1/2, z = 1/2) needs about 10^5 terms to reach e^−36, so 10^6 is a
// safe cap that still bounds the work of one call to tens of milliseconds.
const seriesTerms = 1_000_000

// seriesCutoff: a term below e^−36 ≈ 2.3·10^−16 is negligible against
// A_α ≥ 1 (the series alternates beyond i > α, so the error is at most the
// first omitted term).
const seriesCutoff = -36.0

// checkSampleRate validates q ∈ (0, 1].
func checkSampleRate(q float64) error {
	if !(q > 0 && q <= 1) {
		return &ParamError{Param: "sample_rate", Value: q, Want: "in (0, 1]"}
	}
	return nil
}

// checkNoise validates z > 0, finite.
func checkNoise(z float64) error {
	if !(z > 0) || math.IsInf(z, 1) {
		return &ParamError{Param: "noise_multiplier", Value: z, Want: "finite and > 0"}
	}
	return nil
}

// checkSteps validates 1 ≤ steps ≤ MaxSteps.
func checkSteps(steps int64) error {
	if steps < 1 || steps > MaxSteps {
		return &ParamError{Param: "steps", Value: float64(steps), Want: fmt.Sprintf("in [1, %d]", int64(MaxSteps))}
	}
	return nil
}

// checkDelta validates δ ∈ (0, 1).
func checkDelta(delta float64) error {
	if !(delta > 0 && delta < 1) {
		return &ParamError{Param: "delta", Value: delta, Want: "in (0, 1)"}
	}
	return nil
}

// RDP returns the Rényi differential privacy of one step of the sampled
// Gaussian mechanism at order alpha: each record (here: each node) takes
// part with probability q (Poisson sampling), the sum of the clipped
// contributions gets Gaussian noise of standard deviation z times the
// clipping norm. The value is (1/(α−1))·log A_α with
//
//	A_α = E_{x∼N(0,z²)} [ ((1−q) + q·e^{(2x−1)/(2z²)})^α ],
//
// computed exactly for integer α (a finite binomial sum) and by the
// convergent series of Mironov, Talwar and Zhang 2019, §3.3, for
// fractional α, both in log space. For q = 1 it is the plain Gaussian
// mechanism's α/(2z²).
//
// Errors: a *ParamError naming sample_rate (q ∉ (0,1]), noise_multiplier
// (z ≤ 0 or not finite) or order (α ≤ 1 or not finite); an error if the
// fractional series did not converge within its term cap.
func RDP(q, z, alpha float64) (float64, error) {
	if err := checkSampleRate(q); err != nil {
		return 0, err
	}
	if err := checkNoise(z); err != nil {
		return 0, err
	}
	if !(alpha > 1) || math.IsInf(alpha, 1) {
		return 0, &ParamError{Param: "order", Value: alpha, Want: "finite and > 1"}
	}
	return rdp(q, z, alpha)
}

// rdp is RDP without validation.
func rdp(q, z, alpha float64) (float64, error) {
	if math.IsInf(1/(2*z*z), 1) {
		return math.Inf(1), nil // z² underflows: no privacy at any order
	}
	if q == 1 {
		return alpha / (2 * z * z), nil
	}
	var la float64
	if alpha == math.Trunc(alpha) && alpha < 1<<20 {
		la = logAInt(q, z, int(alpha))
	} else {
		var err error
		la, err = logAFrac(q, z, alpha)
		if err != nil {
			return 0, err
		}
	}
	// A_α ≥ 1 by Jensen's inequality; rounding may put log A a hair below 0.
	return math.Max(la, 0) / (alpha - 1), nil
}

// logAInt is log A_α for integer α ≥ 2, from the binomial expansion of
// ((1−q) + q·L)^α with L the likelihood ratio of N(1,z²) to N(0,z²):
//
//	A_α = Σ_{k=0}^{α} C(α,k) (1−q)^{α−k} q^k e^{(k²−k)/(2z²)},
//
// because E_{N(0,z²)}[L^k] = e^{(k²−k)/(2z²)}. Every term is positive,
// so a log-sum-exp is accurate.
func logAInt(q, z float64, alpha int) float64 {
	logQ, log1Q := math.Log(q), math.Log1p(-q)
	inv := 1 / (2 * z * z)
	a := float64(alpha)
	lgA, _ := math.Lgamma(a + 1)
	terms := make([]float64, alpha+1)
	for k := 0; k <= alpha; k++ {
		kf := float64(k)
		lk, _ := math.Lgamma(kf + 1)
		lak, _ := math.Lgamma(a - kf + 1)
		terms[k] = lgA - lk - lak + kf*logQ + (a-kf)*log1Q + (kf*kf-kf)*inv
	}
	return logSumExp(terms)
}

// logAFrac is log A_α for fractional α (Mironov, Talwar and Zhang 2019,
// §3.3). Split the integral at z0 = z²·log((1−q)/q) + 1/2, where
// q·N(1,z²) = (1−q)·N(0,z²). Below z0 expand (μ/μ0)^α = ((1−q) + q·L)^α
// as a binomial series in q·L/(1−q) ≤ 1; above z0 expand μ^α in
// (1−q)μ0/(qμ1) ≤ 1. Each term integrates in closed form against a
// shifted Gaussian:
//
//	A_α = Σ_{i≥0} C(α,i) [ q^i (1−q)^{α−i} e^{(i²−i)/(2z²)} · ½erfc((i−z0)/(√2 z))
//	                     + q^{α−i} (1−q)^i e^{(j²−j)/(2z²)} · ½erfc((z0−j)/(√2 z)) ],  j = α−i.
//
// C(α,i) changes sign for i > α, so positive and negative terms are
// summed separately in log space and subtracted once at the end. The loop
// stops when both terms of an i > α fall below e^seriesCutoff.
//
// Beyond i > α the series alternates and its terms shrink only
// polynomially (like i^−(α+2)) when q is large or z is large, which can
// take 10^5–10^6 terms. So from term accelStart on, the remaining tail is
// summed in linear scale relative to the head and accelerated by repeated
// averaging of the last accelLevels+1 partial sums (the Euler
// transformation of an alternating series); it stops when two successive
// accelerated estimates agree to 10^−17 of the head.
func logAFrac(q, z, alpha float64) (float64, error) {
	return logAFracFrom(q, z, alpha, accelStart)
}

// accelStart is the term from which logAFrac accelerates the tail. With
// q ≤ 0.1 and z ≥ 3 no order needs that many terms; with smaller z or
// larger q the orders nearest 1 do, and there the accelerated sum is the
// more accurate one (see TestSeriesAcceleration).
const accelStart = 1000

// accelLevels is the number of averaging passes over the partial sums; at
// i ≥ 1000 with terms ~ i^−3 it leaves an error of the order of the 8th
// difference, ~ i^−11.
const accelLevels = 8

// logAFracFrom is logAFrac with the acceleration starting at term accel
// (seriesTerms disables it; tests compare the two).
func logAFracFrom(q, z, alpha float64, accel int) (float64, error) {
	logQ, log1Q := math.Log(q), math.Log1p(-q)
	z2 := z * z
	z0 := z2*(log1Q-logQ) + 0.5
	sq2z := math.Sqrt2 * z
	var pos, neg []float64
	head := func() (float64, error) {
		p, n := logSumExp(pos), logSumExp(neg)
		if math.IsInf(p, 1) {
			return p, nil // z so small that A_α overflows: no privacy
		}
		if !(n < p) {
			return 0, fmt.Errorf("privacy: RDP series at order %v (q=%v, z=%v) lost all precision", alpha, q, z)
		}
		return p + math.Log1p(-math.Exp(n-p)), nil
	}
	var ref, partial, prevEst float64   // tail: Σ terms / e^ref, the last estimate
	var window [accelLevels + 1]float64 // the last partial sums of the tail
	tailTerms := 0
	logC, sign := 0.0, 1.0 // log|C(α,0)| = 0, C(α,0) = 1
	for i := 0; i < seriesTerms; i++ {
		fi := float64(i)
		j := alpha - fi
		s0 := logC + fi*logQ + j*log1Q + (fi*fi-fi)/(2*z2) + logHalfErfc((fi-z0)/sq2z)
		s1 := logC + j*logQ + fi*log1Q + (j*j-j)/(2*z2) + logHalfErfc((z0-j)/sq2z)
		if math.IsNaN(s0) || math.IsNaN(s1) {
			return 0, fmt.Errorf("privacy: RDP series at order %v (q=%v, z=%v): term %d is not a number", alpha, q, z, i)
		}
		if sign > 0 && (math.IsInf(s0, 1) || math.IsInf(s1, 1)) {
			return math.Inf(1), nil // A_α overflows: no privacy at this order
		}
		done := fi > alpha && math.Max(s0, s1) < seriesCutoff
		if i < accel || fi <= alpha+1 {
			if sign > 0 {
				pos = append(pos, s0, s1)
			} else {
				neg = append(neg, s0, s1)
			}
			if done {
				return head()
			}
		} else {
			if tailTerms == 0 {
				h, err := head()
				if err != nil || math.IsInf(h, 1) {
					return h, err
				}
				ref = h
			}
			tailTerms++
			partial += sign * (math.Exp(s0-ref) + math.Exp(s1-ref))
			if done {
				return ref + math.Log1p(partial), nil
			}
			copy(window[:], window[1:])
			window[accelLevels] = partial
			if tailTerms > accelLevels {
				w := window
				for level := 1; level <= accelLevels; level++ {
					for k := 0; k+level <= accelLevels; k++ {
						w[k] = (w[k] + w[k+1]) / 2
					}
				}
				if tailTerms > accelLevels+1 && math.Abs(w[0]-prevEst) < 1e-17 {
					return ref + math.Log1p(w[0]), nil
				}
				prevEst = w[0]
			}
		}
		// C(α,i+1) = C(α,i)·(α−i)/(i+1).
		f := alpha - fi
		if f < 0 {
			sign = -sign
		}
		logC += math.Log(math.Abs(f)) - math.Log(fi+1)
	}
	return 0, fmt.Errorf("privacy: RDP series at order %v (q=%v, z=%v) did not converge in %d terms", alpha, q, z, seriesTerms)
}

// logSumExp returns log Σ e^{x_i} (−Inf for an empty slice).
func logSumExp(x []float64) float64 {
	m := math.Inf(-1)
	for _, v := range x {
		m = math.Max(m, v)
	}
	if math.IsInf(m, 0) {
		return m
	}
	var s float64
	for _, v := range x {
		s += math.Exp(v - m)
	}
	return m + math.Log(s)
}

// logHalfErfc returns log(½·erfc(x)), accurate for large positive x where
// erfc underflows: there it uses the asymptotic expansion
//
//	erfc(x) = e^{−x²}/(x√π) · (1 − 1/(2x²) + 3/(4x⁴) − 15/(8x⁶) + 105/(16x⁸) − …),
//
// whose truncation error at x ≥ 20 is below 10^−11 relative.
func logHalfErfc(x float64) float64 {
	if x < 20 {
		return math.Log(0.5 * math.Erfc(x))
	}
	u := 1 / (2 * x * x) // 1/(2x²)
	series := 1 - u + 3*u*u - 15*u*u*u + 105*u*u*u*u
	return -x*x - math.Log(x) - 0.5*math.Log(math.Pi) + math.Log(series) - math.Ln2
}

// convert turns an RDP guarantee rdp at order α into (ε, δ)-DP with the
// conversion of Balle, Barthe, Gaboardi, Hsu and Sato 2020 (Theorem 21 of
// arXiv:1905.09982):
//
//	ε = rdp + log((α−1)/α) − (log δ + log α)/(α−1).
func convert(rdp, alpha, logDelta float64) float64 {
	return rdp + math.Log((alpha-1)/alpha) - (logDelta+math.Log(alpha))/(alpha-1)
}

// convertClassic is the older conversion of Mironov 2017 (Proposition 3),
// ε = rdp − log δ/(α−1), used by Abadi et al. and TF-Privacy's early
// figures. Balle's is smaller at every α > 1 (both extra terms are
// negative); it is kept to reproduce published figures in tests.
func convertClassic(rdp, alpha, logDelta float64) float64 {
	return rdp - logDelta/(alpha-1)
}

// bestEpsilon minimises the conversion over the grid given the total RDP
// at each order. Ties go to the smaller order. The result is clamped at 0.
func bestEpsilon(rdps []float64, delta float64, conv func(rdp, alpha, logDelta float64) float64) (eps, order float64) {
	logDelta := math.Log(delta)
	eps, order = math.Inf(1), orders[0]
	for i, a := range orders {
		if e := conv(rdps[i], a, logDelta); e < eps {
			eps, order = e, a
		}
	}
	return math.Max(eps, 0), order
}

// rdpVector returns steps·RDP(q, z, α) for every order of the grid.
func rdpVector(q, z float64, steps int64) ([]float64, error) {
	out := make([]float64, len(orders))
	for i, a := range orders {
		r, err := rdp(q, z, a)
		if err != nil {
			return nil, err
		}
		out[i] = float64(steps) * r
	}
	return out, nil
}

// Epsilon returns the ε of (ε, δ)-DP after steps compositions of the
// sampled Gaussian mechanism with sample rate q and noise multiplier z,
// and the Rényi order at which the bound was found. It composes RDP over
// the steps (RDP adds up), converts each order with Balle et al. 2020 and
// returns the smallest ε over the grid Orders (never below 0). ε is +Inf
// when no order gives a finite bound (z so small that the RDP overflows).
//
// Errors: a *ParamError naming sample_rate (q ∉ (0,1]), noise_multiplier
// (z ≤ 0), steps (∉ [1, MaxSteps]) or delta (δ ∉ (0,1)).
func Epsilon(q, z float64, steps int, delta float64) (eps, order float64, err error) {
	if err := validate(q, z, int64(steps), delta); err != nil {
		return 0, 0, err
	}
	r, err := rdpVector(q, z, int64(steps))
	if err != nil {
		return 0, 0, err
	}
	eps, order = bestEpsilon(r, delta, convert)
	return eps, order, nil
}

// validate checks the four accounting parameters in the order the CLI
// documents them.
func validate(q, z float64, steps int64, delta float64) error {
	if err := checkSampleRate(q); err != nil {
		return err
	}
	if err := checkNoise(z); err != nil {
		return err
	}
	if err := checkSteps(steps); err != nil {
		return err
	}
	return checkDelta(delta)
}

// EpsilonFloor returns the smallest ε the grid of orders can certify at
// this δ, whatever the noise: the conversion's value at RDP 0, minimised
// over the orders (about 0.103 at δ = 10^−5, reached at order 63). Targets
// at or below it are unreachable. Errors: a *ParamError naming delta.
func EpsilonFloor(delta float64) (float64, error) {
	if err := checkDelta(delta); err != nil {
		return 0, err
	}
	eps, _ := bestEpsilon(make([]float64, len(orders)), delta, convert)
	return eps, nil
}

// MaxNoiseMultiplier bounds the search of NoiseMultiplier: a job that
// would need more noise than 10^4 times the clipping norm learns nothing.
const MaxNoiseMultiplier = 1e4

// NoiseTolerance is NoiseMultiplier's relative tolerance: the returned z
// satisfies Epsilon(q, z, …) ≤ target and z ≤ z*·(1 + NoiseTolerance),
// where z* is the smallest noise multiplier meeting the target on the
// grid of orders.
const NoiseTolerance = 1e-6

// NoiseMultiplier returns the smallest noise multiplier z (to within
// NoiseTolerance, erring on the side of more noise) for which Epsilon(q,
// z, steps, delta) ≤ targetEps. ε falls monotonically as z rises (every
// order's RDP does), so a bisection on z is exact up to its tolerance.
//
// The search does not go below z = 10^−3: a target so loose that even
// less noise would meet it gets a z between 10^−3 and 2·10^−3.
//
// Errors: a *ParamError naming target_epsilon (not finite or ≤ 0),
// sample_rate, steps or delta; ErrUnreachable (wrapped, with the floor)
// when targetEps ≤ EpsilonFloor(delta) or z would exceed
// MaxNoiseMultiplier.
func NoiseMultiplier(targetEps, q float64, steps int, delta float64) (float64, error) {
	if !(targetEps > 0) || math.IsInf(targetEps, 1) {
		return 0, &ParamError{Param: "target_epsilon", Value: targetEps, Want: "finite and > 0"}
	}
	if err := validate(q, 1, int64(steps), delta); err != nil {
		return 0, err
	}
	floor, _ := EpsilonFloor(delta)
	if targetEps <= floor {
		return 0, fmt.Errorf("%w: target_epsilon %v is at or below %.4g, the smallest ε the orders up to 63 can certify at delta %v", ErrUnreachable, targetEps, floor, delta)
	}
	eps := func(z float64) (float64, error) {
		r, err := rdpVector(q, z, int64(steps))
		if err != nil {
			return 0, err
		}
		e, _ := bestEpsilon(r, delta, convert)
		return e, nil
	}
	// Bracket: ε(lo) > target ≥ ε(hi).
	lo, hi := 0.0, 1.0
	for {
		e, err := eps(hi)
		if err != nil {
			return 0, err
		}
		if e <= targetEps {
			break
		}
		lo, hi = hi, 2*hi
		if hi > MaxNoiseMultiplier {
			return 0, fmt.Errorf("%w: target_epsilon %v needs noise_multiplier above %v", ErrUnreachable, targetEps, MaxNoiseMultiplier)
		}
	}
	if lo == 0 {
		// Shrink from above so the bisection never evaluates tiny z.
		for lo = hi / 2; lo > 1e-3; lo /= 2 {
			e, err := eps(lo)
			if err != nil {
				return 0, err
			}
			if e > targetEps {
				break
			}
			hi = lo
		}
	}
	for hi-lo > NoiseTolerance*lo {
		mid := lo + (hi-lo)/2
		e, err := eps(mid)
		if err != nil {
			return 0, err
		}
		if e <= targetEps {
			hi = mid
		} else {
			lo = mid
		}
	}
	return hi, nil
}
