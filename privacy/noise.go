package privacy

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"math"
	"math/bits"
	mrand "math/rand/v2"
)

// Source is a stream of independent, uniformly distributed 64-bit words.
// The samplers use nothing else, and only integer arithmetic on it, so the
// noise is a deterministic function of the stream.
//
// Two implementations matter: CryptoSource (the operating system's
// generator, for noise nobody must be able to re-derive: local mode) and
// the ChaCha8 generator of math/rand/v2 seeded with NewSeededSource (a
// cryptographically strong stream that anyone holding the seed can
// re-derive: central mode, where the cluster members check each other's
// noise).
type Source interface {
	Uint64() uint64
}

// CryptoSource draws from crypto/rand through a buffer. Create it with
// NewCryptoSource; it is not safe for concurrent use.
type CryptoSource struct {
	buf [512]byte
	off int
}

// NewCryptoSource returns a Source reading crypto/rand.
func NewCryptoSource() *CryptoSource { return &CryptoSource{off: 512} }

// Uint64 returns the next 8 bytes of crypto/rand, little-endian.
// crypto/rand.Read never fails on supported platforms (it crashes the
// program irrecoverably instead), so neither does this.
func (c *CryptoSource) Uint64() uint64 {
	if c.off == len(c.buf) {
		_, _ = rand.Read(c.buf[:])
		c.off = 0
	}
	v := binary.LittleEndian.Uint64(c.buf[c.off:])
	c.off += 8
	return v
}

// NewSeededSource returns a ChaCha8 stream (math/rand/v2, the generator
// specified at c2sp.org/chacha8rand) keyed by seed: the same seed always
// gives the same words, on every platform and Go release, and without the
// seed the words are unpredictable.
func NewSeededSource(seed [32]byte) Source { return mrand.NewChaCha8(seed) }

// seedDomain separates central-noise seeds from every other use of the
// same secret.
const seedDomain = "mfn/privacy/central-noise/v1"

// DeriveSeed derives the noise seed of one round from a secret shared by
// the cluster members: HMAC-SHA-256 keyed by secret over the domain
// "mfn/privacy/central-noise/v1", a zero byte, the job id, a zero byte and
// the round number (8 bytes, big-endian). Distinct (job, round) pairs get
// independent seeds; revealing one round's seed reveals nothing about the
// others or the secret.
func DeriveSeed(secret []byte, job string, round uint64) [32]byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(seedDomain))
	m.Write([]byte{0})
	m.Write([]byte(job))
	m.Write([]byte{0})
	var r [8]byte
	binary.BigEndian.PutUint64(r[:], round)
	m.Write(r[:])
	var out [32]byte
	copy(out[:], m.Sum(nil))
	return out
}

// uniform returns a uniform integer in [0, n), n ≥ 1, by masking and
// rejection (fewer than 2 words on average, exactly uniform). n = 1
// consumes no word.
func uniform(src Source, n uint64) uint64 {
	if n == 1 {
		return 0
	}
	if n&(n-1) == 0 {
		return src.Uint64() & (n - 1)
	}
	mask := uint64(1)<<bits.Len64(n-1) - 1
	for {
		if x := src.Uint64() & mask; x < n {
			return x
		}
	}
}

// bernoulliExpFrac returns true with probability exactly exp(−num/den),
// for 0 ≤ num ≤ den, den ≥ 1 (Canonne, Kamath and Steinke 2020,
// Algorithm 1): count K = 1, 2, … while Bernoulli(γ/K) succeeds and
// return whether the final K is odd; P = Σ_k (−γ)^k/k! = e^−γ. Bernoulli(γ/K)
// is drawn as Bernoulli(num/den) and Bernoulli(1/K), independent, so no
// product can overflow.
func bernoulliExpFrac(src Source, num, den uint64) bool {
	k := uint64(1)
	for uniform(src, den) < num && uniform(src, k) == 0 {
		k++
	}
	return k%2 == 1
}

// bernoulliExp returns true with probability exactly exp(−(whole +
// num/den)): whole independent Bernoulli(e^−1) draws and one
// Bernoulli(e^−num/den) must all succeed. It stops at the first failure,
// so a large whole costs little on average.
func bernoulliExp(src Source, whole, num, den uint64) bool {
	for i := uint64(0); i < whole; i++ {
		if !bernoulliExpFrac(src, 1, 1) {
			return false
		}
	}
	return bernoulliExpFrac(src, num, den)
}

// maxGeometric caps the geometric part of the discrete Laplace sample so
// that |Y|·t stays below 2^63. Reaching it needs 2^31 consecutive
// Bernoulli(e^−1) successes, probability e^(−2^31): it never happens,
// and if it did the sample would be redrawn.
const maxGeometric = 1 << 31

// discreteLaplace returns Y with P(Y = y) ∝ exp(−|y|/t) (Canonne, Kamath
// and Steinke 2020, Algorithm 2 with s = 1), for 1 ≤ t < 2^16.
func discreteLaplace(src Source, t uint64) int64 {
	for {
		u := uniform(src, t)
		if !bernoulliExpFrac(src, u, t) {
			continue
		}
		v := uint64(0)
		for bernoulliExpFrac(src, 1, 1) {
			v++
			if v > maxGeometric {
				break
			}
		}
		if v > maxGeometric {
			continue
		}
		x := u + t*v
		neg := uniform(src, 2) == 1
		if neg && x == 0 {
			continue
		}
		if neg {
			return -int64(x)
		}
		return int64(x)
	}
}

// discreteGaussian returns Y with P(Y = y) ∝ exp(−y²/(2·s2)) exactly
// (Canonne, Kamath and Steinke 2020, Algorithm 3): draw Y from the
// discrete Laplace with scale t = ⌊√s2⌋ + 1 and accept with probability
// exp(−(|Y| − s2/t)²/(2·s2)) = exp(−(|Y|·t − s2)²/(2·s2·t²)). The
// exponent is a ratio of integers: the numerator is formed in 128 bits
// and divided by the denominator 2·s2·t² < 2^63 (s2 ≤ 2^30 + 1 and
// t ≤ 2^15 + 1 by construction in NewGaussian). An exponent of 2^64 or more (only for
// |Y| beyond 2^16 standard deviations) is rejected outright, a deviation
// from the exact acceptance probability of at most e^(−2^64).
func discreteGaussian(src Source, s2, t uint64) int64 {
	den := 2 * s2 * t * t
	for {
		y := discreteLaplace(src, t)
		ay := uint64(y)
		if y < 0 {
			ay = uint64(-y)
		}
		at := ay * t
		var d uint64
		if at >= s2 {
			d = at - s2
		} else {
			d = s2 - at
		}
		hi, lo := bits.Mul64(d, d)
		if hi >= den {
			continue
		}
		whole, rem := bits.Div64(hi, lo, den)
		if bernoulliExp(src, whole, rem, den) {
			return y
		}
	}
}

// gridBits sets the noise grid: the step is the power of two with
// σ/step in [2^(gridBits−1), 2^gridBits), i.e. between σ/32768 and
// σ/16384. 15 is the largest value for which 2·s2·t² fits in 64 bits.
const gridBits = 15

// Gaussian samples Gaussian noise of standard deviation σ on the grid
// step·ℤ, exactly: the value is step·Y with Y drawn from the discrete
// Gaussian of variance parameter s2 = ⌈(σ/step)²⌉ + 1 by Canonne, Kamath
// and Steinke's rejection sampler, using integer arithmetic only. See
// DESIGN.md, "Floating point", for why this matters and what it costs
// (the standard deviation is at most σ·(1 + 2^−28)).
type Gaussian struct {
	sigma float64
	step  float64
	s2    uint64
	t     uint64
}

// NewGaussian returns a sampler for standard deviation sigma.
// Errors: a *ParamError naming sigma unless 2^−900 ≤ sigma ≤ 2^900 (the
// range in which the grid step and 2^53 grid steps are normal floats).
func NewGaussian(sigma float64) (*Gaussian, error) {
	if !(sigma >= 0x1p-900 && sigma <= 0x1p900) {
		return nil, &ParamError{Param: "sigma", Value: sigma, Want: "in [2^-900, 2^900]"}
	}
	_, exp := math.Frexp(sigma) // sigma = frac·2^exp, frac ∈ [0.5, 1)
	step := math.Ldexp(1, exp-gridBits)
	x := sigma / step // exact: division by a power of two
	// x² < 2^30 has up to 106 significant bits; rounding the float product
	// can lose at most one unit in its last place (2^−22 here), so
	// ⌈fl(x²)⌉ + 1 is at least the true x².
	s2 := uint64(math.Ceil(x*x)) + 1
	r := uint64(math.Sqrt(float64(s2)))
	for r*r > s2 {
		r--
	}
	for (r+1)*(r+1) <= s2 {
		r++
	}
	return &Gaussian{sigma: sigma, step: step, s2: s2, t: r + 1}, nil
}

// Sigma returns the standard deviation asked for.
func (g *Gaussian) Sigma() float64 { return g.sigma }

// Step returns the grid step, a power of two between σ/32768 and σ/16384.
func (g *Gaussian) Step() float64 { return g.step }

// Std returns the standard deviation parameter actually sampled,
// step·√s2, in [σ, σ·(1 + 2^−28)].
func (g *Gaussian) Std() float64 { return g.step * math.Sqrt(float64(g.s2)) }

// SampleInt returns one draw in units of Step.
func (g *Gaussian) SampleInt(src Source) int64 { return discreteGaussian(src, g.s2, g.t) }

// Sample returns one draw, Step·SampleInt (exact in float64).
func (g *Gaussian) Sample(src Source) float64 { return g.step * float64(g.SampleInt(src)) }

// maxGridUnits bounds |v|/Step for values the sampler rounds or adds
// noise to, so that the rounded value plus noise (below 2^48 steps in
// absolute value) stays an integer under 2^53, exactly representable.
const maxGridUnits = 1 << 52

// Round rounds every coordinate of v in place to the nearest multiple of
// Step (ties to even), exactly. Errors: a *CoordinateError (ErrOutOfRange)
// for the first coordinate that is not finite or exceeds 2^52 steps;
// then v is unchanged.
func (g *Gaussian) Round(v []float64) error {
	if err := g.checkRange(v); err != nil {
		return err
	}
	for i, x := range v {
		v[i] = math.RoundToEven(x/g.step) * g.step
	}
	return nil
}

// AddTo rounds every coordinate of v to the grid and adds an independent
// draw, in place: v[i] = Step·(round(v[i]/Step) + Y_i). The result is
// exactly the discrete Gaussian on the grid centred at the rounded value,
// so its distribution depends on v only through the rounded vector.
// Errors: as Round; on error v is unchanged and no randomness is used.
func (g *Gaussian) AddTo(v []float64, src Source) error {
	if err := g.checkRange(v); err != nil {
		return err
	}
	for i, x := range v {
		v[i] = (math.RoundToEven(x/g.step) + float64(g.SampleInt(src))) * g.step
	}
	return nil
}

func (g *Gaussian) checkRange(v []float64) error {
	for i, x := range v {
		if !(math.Abs(x/g.step) <= maxGridUnits) {
			return &CoordinateError{Index: i, Value: x, Err: ErrOutOfRange}
		}
	}
	return nil
}
