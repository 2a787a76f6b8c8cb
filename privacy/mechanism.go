package privacy

import (
	"errors"
	"fmt"
	"math"
)

// ErrNotFinite is wrapped by the *CoordinateError for a NaN or ±Inf
// coordinate of an update.
var ErrNotFinite = errors.New("privacy: coordinate is not finite")

// checkClip validates a clipping norm: finite and > 0.
func checkClip(c float64) error {
	if !(c > 0) || math.IsInf(c, 1) {
		return &ParamError{Param: "clip", Value: c, Want: "finite and > 0"}
	}
	return nil
}

// L2Norm returns the Euclidean norm of v without overflow or underflow
// for finite inputs (scaled sum of squares). Errors: a *CoordinateError
// wrapping ErrNotFinite for the first NaN or ±Inf coordinate.
func L2Norm(v []float64) (float64, error) {
	scale, ssq := 0.0, 1.0
	for i, x := range v {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return 0, &CoordinateError{Index: i, Value: x, Err: ErrNotFinite}
		}
		if x == 0 {
			continue
		}
		a := math.Abs(x)
		if scale < a {
			ssq = 1 + ssq*(scale/a)*(scale/a)
			scale = a
		} else {
			ssq += (a / scale) * (a / scale)
		}
	}
	return scale * math.Sqrt(ssq), nil
}

// ClipL2 scales v in place so that its L2 norm is at most c, and returns
// the norm before clipping and whether it scaled. After it returns,
// L2Norm(v) ≤ c holds as computed (the factor is shrunk by a few units in
// the last place if rounding would leave the norm a hair above c). A
// vector already within c is left untouched.
//
// Errors: a *ParamError naming clip; a *CoordinateError (ErrNotFinite)
// for a NaN or ±Inf coordinate. On error v is unchanged.
func ClipL2(v []float64, c float64) (norm float64, clipped bool, err error) {
	if err := checkClip(c); err != nil {
		return 0, false, err
	}
	norm, err = L2Norm(v)
	if err != nil {
		return 0, false, err
	}
	if norm <= c {
		return norm, false, nil
	}
	orig := append([]float64(nil), v...)
	f := c / norm
	for range 64 {
		for i, x := range orig {
			v[i] = x * f
		}
		if n, _ := L2Norm(v); n <= c {
			return norm, true, nil
		}
		f *= 1 - 0x1p-50
	}
	// Unreachable for finite inputs: each pass shrinks the norm by 2^−50
	// relative, far more than the rounding of one pass.
	return 0, false, fmt.Errorf("privacy: clipping a vector of norm %v to %v did not converge", norm, c)
}

// roundingMargin is how much rounding each of d coordinates to a grid of
// the given step can lengthen a vector: at most step·√d/2, plus a relative
// 10^−9 and an absolute 10^−12·clip for the rounding of the computation
// itself. Clipping to clip − margin before rounding keeps the rounded
// vector's norm at most clip.
func roundingMargin(step float64, d int, clip float64) float64 {
	return step*math.Sqrt(float64(d))/2*(1+1e-9) + clip*1e-12
}

// clipAndRound clips v to clip − margin and rounds it to g's grid, so that
// its norm is at most clip and every coordinate is a multiple of g.Step().
func clipAndRound(v []float64, clip float64, g *Gaussian) (norm float64, clipped bool, err error) {
	margin := roundingMargin(g.Step(), len(v), clip)
	if margin > clip/2 {
		return 0, false, &ParamError{Param: "dimension", Value: float64(len(v)),
			Want: fmt.Sprintf("small enough that rounding to the noise grid (step %v) costs at most half the clip %v; lower the noise multiplier or the dimension", g.Step(), clip)}
	}
	norm, clipped, err = ClipL2(v, clip-margin)
	if err != nil {
		return 0, false, err
	}
	if err := g.Round(v); err != nil {
		return 0, false, err
	}
	return norm, clipped, nil
}

// Local is the local mode of DP-FedAvg: each node clips its own update to
// norm Clip and adds Gaussian noise of standard deviation z·Clip before
// sealing it, so nobody, the coordinators included, sees the raw update.
// The noise comes from a Source the node alone holds (CryptoSource).
type Local struct {
	clip, z float64
	g       *Gaussian
}

// NewLocal returns the local mechanism for clipping norm clip and noise
// multiplier z. Errors: a *ParamError naming clip or noise_multiplier, or
// sigma if z·clip is outside the sampler's range.
func NewLocal(clip, z float64) (*Local, error) {
	if err := checkClip(clip); err != nil {
		return nil, err
	}
	if err := checkNoise(z); err != nil {
		return nil, err
	}
	g, err := NewGaussian(z * clip)
	if err != nil {
		return nil, err
	}
	return &Local{clip: clip, z: z, g: g}, nil
}

// NoiseStd returns the noise's standard deviation, z·clip.
func (l *Local) NoiseStd() float64 { return l.z * l.clip }

// Privatize clips update in place to norm at most Clip, rounds it to the
// noise grid and adds the discrete Gaussian noise on that grid (see
// Gaussian.AddTo). The clip applied is Clip minus the grid's rounding
// margin (step·√d/2, at most z·√d/32768 of Clip: 0.31 % at z = 1 and
// d = 10,000),
// so that the rounded update's norm is at most Clip: the sensitivity the
// accountant assumes. It returns the update's norm before clipping and
// whether it was clipped: facts about the node's own data, for the node
// only.
//
// Errors: a *CoordinateError for a non-finite coordinate (ErrNotFinite)
// or one the grid cannot hold (ErrOutOfRange); a *ParamError naming
// dimension when the rounding margin would exceed half the clip. On error
// the update may have been clipped but has no noise: discard it.
func (l *Local) Privatize(update []float64, src Source) (norm float64, clipped bool, err error) {
	norm, clipped, err = clipAndRound(update, l.clip, l.g)
	if err != nil {
		return 0, false, err
	}
	if err := l.g.AddTo(update, src); err != nil {
		return 0, false, err
	}
	return norm, clipped, nil
}

// Central is the central mode of DP-FedAvg: the leader clips every update
// to norm Clip, sums them, adds Gaussian noise of standard deviation
// z·Clip to the sum and divides by the expected number of participants m
// (a public constant, not the actual count, which is private under
// sampling). The mean thus carries noise of standard deviation z·Clip/m.
// The noise comes from a seeded Source (NewSeededSource with DeriveSeed)
// so that every member can re-derive it; see DESIGN.md, "Central noise
// that members can check".
//
// Sensitivity: removing or adding one node changes the sum by one
// prepared update, of norm at most Clip. That holds for the sum of
// updates each transformed on its own with public inputs only (clipping,
// centring on the public previous model). It does not hold for rules that
// compare updates with one another (Krum, median, trimmed mean, NNM,
// Bulyan): one node can move their output by more than Clip/m. Their
// outputs are not covered by this mechanism; see DESIGN.md, "Robust
// rules and DP".
type Central struct {
	clip, z, expected float64
	g                 *Gaussian
}

// NewCentral returns the central mechanism. Errors: a *ParamError naming
// clip, noise_multiplier, expected_count (finite and ≥ 1) or sigma.
func NewCentral(clip, z, expectedCount float64) (*Central, error) {
	if err := checkClip(clip); err != nil {
		return nil, err
	}
	if err := checkNoise(z); err != nil {
		return nil, err
	}
	if !(expectedCount >= 1) || math.IsInf(expectedCount, 1) {
		return nil, &ParamError{Param: "expected_count", Value: expectedCount, Want: "finite and ≥ 1"}
	}
	g, err := NewGaussian(z * clip)
	if err != nil {
		return nil, err
	}
	return &Central{clip: clip, z: z, expected: expectedCount, g: g}, nil
}

// NoiseStd returns the standard deviation of the noise on the mean,
// z·Clip/expected count.
func (c *Central) NoiseStd() float64 { return c.z * c.clip / c.expected }

// Step returns the grid step of the sum (the mean's is Step/expected).
func (c *Central) Step() float64 { return c.g.Step() }

// Prepare clips one update in place to norm at most Clip and rounds it to
// the sum's noise grid (as Local.Privatize does, without noise). Sums of
// prepared updates are exact. It returns the norm before clipping and
// whether it clipped. Errors: as Local.Privatize.
func (c *Central) Prepare(update []float64) (norm float64, clipped bool, err error) {
	return clipAndRound(update, c.clip, c.g)
}

// Finish turns the sum of prepared updates into the private mean, in
// place: it adds the discrete Gaussian noise of standard deviation
// z·Clip on the sum's grid, then divides by the expected count (a
// post-processing step; its rounding does not affect privacy). The
// result depends on src's words only: the same seed gives the same bits
// on every member. Errors: a *CoordinateError if a coordinate of sum is
// not finite or beyond 2^52 grid steps; then sum is unchanged.
func (c *Central) Finish(sum []float64, src Source) error {
	if err := c.g.AddTo(sum, src); err != nil {
		return err
	}
	for i := range sum {
		sum[i] /= c.expected
	}
	return nil
}

// Mean prepares copies of updates, sums them and finishes the sum: the
// DP-FedAvg aggregate with a fixed denominator. It returns the private
// mean and how many updates were clipped. The updates themselves are not
// modified. Errors: from Prepare (naming the update's index) or Finish;
// a mismatch of lengths names the update.
func (c *Central) Mean(updates [][]float64, src Source) (mean []float64, clipped int, err error) {
	if len(updates) == 0 {
		return nil, 0, fmt.Errorf("privacy: no updates")
	}
	d := len(updates[0])
	sum := make([]float64, d)
	buf := make([]float64, d)
	for i, u := range updates {
		if len(u) != d {
			return nil, 0, fmt.Errorf("privacy: update %d has length %d, want %d", i, len(u), d)
		}
		copy(buf, u)
		_, cl, err := c.Prepare(buf)
		if err != nil {
			return nil, 0, fmt.Errorf("privacy: update %d: %w", i, err)
		}
		if cl {
			clipped++
		}
		for j, x := range buf {
			sum[j] += x
		}
	}
	if err := c.Finish(sum, src); err != nil {
		return nil, 0, err
	}
	return sum, clipped, nil
}
