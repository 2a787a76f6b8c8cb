package privacy

import (
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"math"
	"testing"
)

func seed(b byte) [32]byte {
	var s [32]byte
	s[0] = b
	return s
}

// chiSquare returns Pearson's statistic and the degrees of freedom of
// observed counts against probabilities p (summing to 1 over the bins),
// merging bins with expected count below 20 into their neighbour.
func chiSquare(counts map[int64]int, lo, hi int64, p func(int64) float64, n int) (chi2 float64, df int) {
	var exp, obs float64
	bins := 0
	flush := func() {
		chi2 += (obs - exp) * (obs - exp) / exp
		bins++
		exp, obs = 0, 0
	}
	// Tails below lo and above hi are folded into the end bins.
	var below, above int
	var pBelow, pAbove float64
	for y, c := range counts {
		if y < lo {
			below += c
		}
		if y > hi {
			above += c
		}
	}
	for y := lo - 200; y < lo; y++ {
		pBelow += p(y)
	}
	for y := hi + 1; y <= hi+200; y++ {
		pAbove += p(y)
	}
	exp, obs = pBelow*float64(n), float64(below)
	for y := lo; y <= hi; y++ {
		exp += p(y) * float64(n)
		obs += float64(counts[y])
		if exp >= 20 {
			flush()
		}
	}
	exp += pAbove * float64(n)
	obs += float64(above)
	if exp > 0 {
		flush()
	}
	return chi2, bins - 1
}

// chiLimit is a rejection threshold far in the upper tail of χ²(df)
// (about 5.5 standard deviations): a correct sampler with a fixed seed
// passes, a wrong distribution with 2·10^5 draws does not.
func chiLimit(df int) float64 { return float64(df) + 5.5*math.Sqrt(2*float64(df)) }

// TestDiscreteGaussianPMF: small variances, where the discrete Gaussian
// differs visibly from a rounded continuous one, against the exact pmf.
func TestDiscreteGaussianPMF(t *testing.T) {
	t.Parallel()
	for _, s2 := range []uint64{1, 2, 9, 50} {
		t0 := uint64(math.Floor(math.Sqrt(float64(s2)))) + 1
		src := NewSeededSource(seed(byte(s2)))
		const n = 200000
		counts := map[int64]int{}
		var sum, sumSq float64
		for i := 0; i < n; i++ {
			y := discreteGaussian(src, s2, t0)
			counts[y]++
			sum += float64(y)
			sumSq += float64(y) * float64(y)
		}
		var z, v float64
		for y := int64(-300); y <= 300; y++ {
			w := math.Exp(-float64(y*y) / (2 * float64(s2)))
			z += w
			v += w * float64(y*y)
		}
		v /= z
		p := func(y int64) float64 { return math.Exp(-float64(y*y)/(2*float64(s2))) / z }
		lim := int64(4 * math.Sqrt(float64(s2)))
		chi2, df := chiSquare(counts, -lim, lim, p, n)
		if chi2 > chiLimit(df) {
			t.Errorf("s2=%d: χ² = %.1f with %d df, limit %.1f", s2, chi2, df, chiLimit(df))
		}
		mean, variance := sum/n, sumSq/n-(sum/n)*(sum/n)
		if math.Abs(mean) > 5*math.Sqrt(v/n) || math.Abs(variance-v) > 5*v*math.Sqrt(2.0/n) {
			t.Errorf("s2=%d: mean %v variance %v, want 0 and %v", s2, mean, variance, v)
		}
	}
}

// TestDiscreteLaplacePMF: P(Y = y) ∝ exp(−|y|/t).
func TestDiscreteLaplacePMF(t *testing.T) {
	t.Parallel()
	for _, tt := range []uint64{1, 3, 10} {
		src := NewSeededSource(seed(100 + byte(tt)))
		const n = 200000
		counts := map[int64]int{}
		for i := 0; i < n; i++ {
			counts[discreteLaplace(src, tt)]++
		}
		r := math.Exp(-1 / float64(tt))
		z := (1 + r) / (1 - r)
		p := func(y int64) float64 { return math.Pow(r, math.Abs(float64(y))) / z }
		lim := int64(6 * tt)
		chi2, df := chiSquare(counts, -lim, lim, p, n)
		if chi2 > chiLimit(df) {
			t.Errorf("t=%d: χ² = %.1f with %d df, limit %.1f", tt, chi2, df, chiLimit(df))
		}
	}
}

// TestBernoulliExp: the exact Bernoulli(exp(−γ)) sampler's frequency.
func TestBernoulliExp(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ whole, num, den uint64 }{{0, 0, 1}, {0, 3, 10}, {0, 1, 1}, {2, 1, 2}, {0, 7, 7}} {
		src := NewSeededSource(seed(200 + byte(c.num)))
		const n = 200000
		hits := 0
		for i := 0; i < n; i++ {
			if bernoulliExp(src, c.whole, c.num, c.den) {
				hits++
			}
		}
		p := math.Exp(-(float64(c.whole) + float64(c.num)/float64(c.den)))
		if got := float64(hits) / n; math.Abs(got-p) > 5*math.Sqrt(p*(1-p)/n)+1e-12 {
			t.Errorf("exp(−(%d+%d/%d)) = %.5f, frequency %.5f", c.whole, c.num, c.den, p, got)
		}
	}
}

// TestUniform: exactly uniform on [0, n), including non-powers of two.
func TestUniform(t *testing.T) {
	t.Parallel()
	src := NewSeededSource(seed(7))
	for _, n := range []uint64{1, 2, 3, 6, 7, 1000} {
		counts := map[int64]int{}
		const draws = 120000
		for i := 0; i < draws; i++ {
			x := uniform(src, n)
			if x >= n {
				t.Fatalf("uniform(%d) = %d", n, x)
			}
			counts[int64(x)]++
		}
		if n == 1 {
			continue
		}
		chi2, df := chiSquare(counts, 0, int64(n)-1, func(y int64) float64 {
			if y < 0 || y >= int64(n) {
				return 0
			}
			return 1 / float64(n)
		}, draws)
		if chi2 > chiLimit(df) {
			t.Errorf("uniform(%d): χ² = %.1f with %d df", n, chi2, df)
		}
	}
}

// TestGaussianGrid: the grid and the sampled variance are as documented.
func TestGaussianGrid(t *testing.T) {
	t.Parallel()
	for _, sigma := range []float64{1e-6, 0.3, 1, 1.1, 3.999, 1e6, 0x1p-900, 0x1p900} {
		g, err := NewGaussian(sigma)
		if err != nil {
			t.Fatal(err)
		}
		frac, _ := math.Frexp(g.Step())
		ratio := sigma / g.Step()
		if frac != 0.5 || ratio < 1<<14 || ratio >= 1<<15 {
			t.Errorf("σ=%v: step %v is not a power of two with σ/step in [2^14, 2^15) (%v)", sigma, g.Step(), ratio)
		}
		if float64(g.s2) < ratio*ratio || g.Std() < sigma || g.Std() > sigma*(1+0x1p-28) {
			t.Errorf("σ=%v: s2 = %d, (σ/step)² = %v, std %v", sigma, g.s2, ratio*ratio, g.Std())
		}
		if g.t*g.t <= g.s2 || (g.t-1)*(g.t-1) > g.s2 {
			t.Errorf("σ=%v: t = %d is not ⌊√%d⌋+1", sigma, g.t, g.s2)
		}
	}
	for _, bad := range []float64{0, -1, math.NaN(), math.Inf(1), 0x1p-901, 0x1p901} {
		var pe *ParamError
		if _, err := NewGaussian(bad); !errors.As(err, &pe) || pe.Param != "sigma" {
			t.Errorf("NewGaussian(%v): %v", bad, err)
		}
	}
}

// TestGaussianMoments: mean, variance and tails of the continuous-scale
// noise, with fixed seeds.
func TestGaussianMoments(t *testing.T) {
	t.Parallel()
	for i, sigma := range []float64{1.7, 0.01, 250} {
		g, _ := NewGaussian(sigma)
		src := NewSeededSource(seed(byte(50 + i)))
		const n = 200000
		var sum, sumSq float64
		var over2, over3 int
		for j := 0; j < n; j++ {
			x := g.Sample(src)
			sum += x
			sumSq += x * x
			if math.Abs(x) > 2*sigma {
				over2++
			}
			if math.Abs(x) > 3*sigma {
				over3++
			}
		}
		mean, variance := sum/n, sumSq/n-(sum/n)*(sum/n)
		if math.Abs(mean) > 5*sigma/math.Sqrt(n) {
			t.Errorf("σ=%v: mean %v", sigma, mean)
		}
		if math.Abs(variance/(sigma*sigma)-1) > 5*math.Sqrt(2.0/n) {
			t.Errorf("σ=%v: variance/σ² = %v", sigma, variance/(sigma*sigma))
		}
		for _, c := range []struct {
			k    float64
			hits int
		}{{2, over2}, {3, over3}} {
			p := math.Erfc(c.k / math.Sqrt2)
			if got := float64(c.hits) / n; math.Abs(got-p) > 5*math.Sqrt(p*(1-p)/n) {
				t.Errorf("σ=%v: P(|x| > %vσ) = %v, want %v", sigma, c.k, got, p)
			}
		}
	}
}

// TestAddToDeterministic: same seed, same noisy vector; another seed, a
// different one; every output is on the grid.
func TestAddToDeterministic(t *testing.T) {
	t.Parallel()
	g, _ := NewGaussian(0.5)
	base := []float64{0, 1, -2.5, 1e-9, 3.14159}
	run := func(s [32]byte) []float64 {
		v := append([]float64(nil), base...)
		if err := g.AddTo(v, NewSeededSource(s)); err != nil {
			t.Fatal(err)
		}
		return v
	}
	a, b, c := run(seed(1)), run(seed(1)), run(seed(2))
	same := true
	for i := range a {
		if a[i] != b[i] {
			t.Errorf("coordinate %d: %v vs %v with the same seed", i, a[i], b[i])
		}
		if a[i] != c[i] {
			same = false
		}
		if k := a[i] / g.Step(); k != math.Trunc(k) {
			t.Errorf("coordinate %d = %v is not a multiple of the step %v", i, a[i], g.Step())
		}
		if math.Abs(a[i]-base[i]) > 8*0.5 {
			t.Errorf("coordinate %d moved by %v, over 8σ", i, a[i]-base[i])
		}
	}
	if same {
		t.Error("two seeds gave the same noise")
	}
	// The crypto source also lands on the grid.
	v := append([]float64(nil), base...)
	if err := g.AddTo(v, NewCryptoSource()); err != nil {
		t.Fatal(err)
	}
	for i := range v {
		if k := v[i] / g.Step(); k != math.Trunc(k) {
			t.Errorf("crypto: coordinate %d off the grid", i)
		}
	}
}

// TestAddToOutOfRange: a value beyond 2^52 steps, or not finite, is
// refused and the vector left alone.
func TestAddToOutOfRange(t *testing.T) {
	t.Parallel()
	g, _ := NewGaussian(1)
	for _, bad := range []float64{math.NaN(), math.Inf(-1), 0x1p53 * g.Step()} {
		v := []float64{1, 2, bad, 4}
		err := g.AddTo(v, NewSeededSource(seed(3)))
		var ce *CoordinateError
		if !errors.As(err, &ce) || ce.Index != 2 || !errors.Is(err, ErrOutOfRange) {
			t.Errorf("%v: err = %v", bad, err)
		}
		if v[0] != 1 || v[1] != 2 || v[3] != 4 {
			t.Errorf("%v: vector changed on error: %v", bad, v)
		}
		if err := g.Round(v); !errors.Is(err, ErrOutOfRange) {
			t.Errorf("Round(%v): err = %v", bad, err)
		}
	}
}

// TestDeriveSeed: the documented construction, and distinct rounds and
// jobs give distinct seeds.
func TestDeriveSeed(t *testing.T) {
	t.Parallel()
	secret := []byte("cluster secret")
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("mfn/privacy/central-noise/v1\x00job-7\x00\x00\x00\x00\x00\x00\x00\x01\x02"))
	var want [32]byte
	copy(want[:], m.Sum(nil))
	if got := DeriveSeed(secret, "job-7", 0x102); got != want {
		t.Errorf("DeriveSeed = %x, want %x", got, want)
	}
	seen := map[[32]byte]bool{}
	for _, job := range []string{"a", "b", "a\x00"} {
		for r := uint64(0); r < 3; r++ {
			s := DeriveSeed(secret, job, r)
			if seen[s] {
				t.Errorf("seed repeated for job %q round %d", job, r)
			}
			seen[s] = true
		}
	}
}
