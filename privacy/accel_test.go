package privacy

import (
	"math"
	"math/big"
	"testing"
)

// bigSeries sums the first n terms of logAFrac's series (each term as
// float64) in 200-bit arithmetic, so the sum itself loses nothing to
// rounding; beyond 3·10^5 terms the omitted tail is below 10^−16 for the
// cases tested.
func bigSeries(q, z, alpha float64, n int) float64 {
	logQ, log1Q := math.Log(q), math.Log1p(-q)
	z2 := z * z
	z0 := z2*(log1Q-logQ) + 0.5
	sq2z := math.Sqrt2 * z
	sum := new(big.Float).SetPrec(200)
	logC, sign := 0.0, 1.0
	for i := 0; i < n; i++ {
		fi := float64(i)
		j := alpha - fi
		s0 := logC + fi*logQ + j*log1Q + (fi*fi-fi)/(2*z2) + logHalfErfc((fi-z0)/sq2z)
		s1 := logC + j*logQ + fi*log1Q + (j*j-j)/(2*z2) + logHalfErfc((z0-j)/sq2z)
		t := new(big.Float).SetPrec(200).SetFloat64(math.Exp(s0))
		t.Add(t, new(big.Float).SetPrec(200).SetFloat64(math.Exp(s1)))
		if sign < 0 {
			t.Neg(t)
		}
		sum.Add(sum, t)
		if f := alpha - fi; f < 0 {
			sign = -sign
		}
		logC += math.Log(math.Abs(alpha-fi)) - math.Log(fi+1)
	}
	f, _ := sum.Float64()
	return math.Log(f)
}

// TestSeriesAcceleration: where the fractional series converges slowly
// (large q or large z), the accelerated tail agrees with an exactly
// summed 3·10^5-term series to 10^−14 (better than the plain float64 sum
// of up to 10^6 terms, whose rounding reaches ~10^−13), and with numerical
// integration of the definition.
func TestSeriesAcceleration(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ q, z, alpha float64 }{
		{0.5, 0.5, 1.1}, {0.5, 1, 1.1}, {0.5, 3, 1.5}, {0.5, 10, 1.1}, {0.3, 2, 2.5},
		{0.9, 4, 1.3}, {0.2, 1, 1.7}, {0.5, 1, 4.5},
	} {
		fast, err := logAFrac(c.q, c.z, c.alpha)
		if err != nil {
			t.Fatal(err)
		}
		exact := bigSeries(c.q, c.z, c.alpha, 300000)
		if math.Abs(fast-exact) > 1e-14 {
			t.Errorf("q=%v z=%v α=%v: accelerated %.15g, exact sum %.15g", c.q, c.z, c.alpha, fast, exact)
		}
		plain, err := logAFracFrom(c.q, c.z, c.alpha, seriesTerms)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(plain-exact) > 1e-11 {
			t.Errorf("q=%v z=%v α=%v: plain %.15g, exact sum %.15g", c.q, c.z, c.alpha, plain, exact)
		}
		if num := logANumeric(c.q, c.z, c.alpha); math.Abs(fast-num) > 1e-8*num {
			t.Errorf("q=%v z=%v α=%v: accelerated %.15g, integral %.15g", c.q, c.z, c.alpha, fast, num)
		}
	}
}
