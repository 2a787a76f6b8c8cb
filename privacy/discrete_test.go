package privacy

import (
	"math"
	"testing"
)

// discreteLogAB returns log A_α = log Σ_x Q(x)·(M(x)/Q(x))^α and
// log B_α = log Σ_x M(x)·(Q(x)/M(x))^α for the one-dimensional discrete
// Gaussian Q = N_ℤ(0, s²) and the mixture M = (1−q)·Q + q·N_ℤ(mu, s²),
// by direct summation in log space.
func discreteLogAB(q, s float64, mu int, alpha float64) (logA, logB float64) {
	lim := int(60*s) + mu + 10
	var lz []float64
	for x := -lim; x <= lim; x++ {
		lz = append(lz, -float64(x*x)/(2*s*s))
	}
	logZ := logSumExp(lz)
	var as, bs []float64
	for x := -lim; x <= lim; x++ {
		lq := -float64(x*x)/(2*s*s) - logZ
		lp := -float64((x-mu)*(x-mu))/(2*s*s) - logZ
		a, b := math.Log1p(-q)+lq, math.Log(q)+lp
		m := math.Max(a, b)
		lm := m + math.Log(math.Exp(a-m)+math.Exp(b-m))
		as = append(as, lq+alpha*(lm-lq))
		bs = append(bs, lm+alpha*(lq-lm))
	}
	return logSumExp(as), logSumExp(bs)
}

// TestDiscreteSubsampledRDP backs DESIGN.md's argument about the
// discrete Gaussian: with an integer shift the likelihood ratio has the
// continuous form, so at integer orders A_α is exactly the continuous
// one (with z = s/mu); at fractional orders, and in the reverse direction
// B_α, the discrete values stay at or below the continuous A_α the
// accountant uses, in every case tried.
func TestDiscreteSubsampledRDP(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		q, s float64
		mu   int
	}{{0.1, 3, 2}, {0.05, 10, 9}, {0.3, 1.5, 1}, {0.01, 40, 37}, {0.5, 2, 2}} {
		z := c.s / float64(c.mu)
		for _, alpha := range []float64{2, 3, 8, 1.5, 2.5, 4.7, 10.9} {
			logA, logB := discreteLogAB(c.q, c.s, c.mu, alpha)
			r, err := rdp(c.q, z, alpha)
			if err != nil {
				t.Fatal(err)
			}
			cont := r * (alpha - 1)
			if alpha == math.Trunc(alpha) {
				if math.Abs(logA-cont) > 1e-9*math.Max(cont, 1e-9) {
					t.Errorf("q=%v s=%v μ=%d α=%v: discrete log A = %.12g, continuous %.12g (should be equal)", c.q, c.s, c.mu, alpha, logA, cont)
				}
			} else if logA > cont*(1+1e-9)+1e-15 {
				t.Errorf("q=%v s=%v μ=%d α=%v: discrete log A = %.12g above continuous %.12g", c.q, c.s, c.mu, alpha, logA, cont)
			}
			if logB > cont*(1+1e-9)+1e-15 {
				t.Errorf("q=%v s=%v μ=%d α=%v: discrete log B = %.12g above continuous log A %.12g", c.q, c.s, c.mu, alpha, logB, cont)
			}
		}
	}
}
