package privacy

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"

	"pgregory.net/rapid"
)

func naiveNorm(v []float64) float64 {
	var s float64
	for _, x := range v {
		s += x * x
	}
	return math.Sqrt(s)
}

func TestL2Norm(t *testing.T) {
	t.Parallel()
	for _, v := range [][]float64{{}, {3, 4}, {1e-200, 1e-200}, {1e200, -1e200}, {0, 0, 5}} {
		got, err := L2Norm(v)
		if err != nil {
			t.Fatal(err)
		}
		var want float64
		switch {
		case len(v) == 2 && math.Abs(v[0]) == 1e200:
			want = math.Sqrt2 * 1e200
		case len(v) == 2 && v[0] == 1e-200:
			want = math.Sqrt2 * 1e-200
		default:
			want = naiveNorm(v)
		}
		if math.Abs(got-want) > 1e-15*want {
			t.Errorf("L2Norm(%v) = %v, want %v", v, got, want)
		}
	}
	var ce *CoordinateError
	if _, err := L2Norm([]float64{1, math.NaN()}); !errors.As(err, &ce) || ce.Index != 1 || !errors.Is(err, ErrNotFinite) {
		t.Errorf("NaN: %v", err)
	}
}

// TestClipL2Property: after ClipL2 the norm is at most c, the direction
// is kept, and a vector within c is untouched.
func TestClipL2Property(t *testing.T) {
	t.Parallel()
	rapid.Check(t, func(t *rapid.T) {
		v := rapid.SliceOfN(rapid.Float64Range(-1e6, 1e6), 1, 64).Draw(t, "v")
		c := rapid.Float64Range(1e-6, 1e7).Draw(t, "c")
		orig := append([]float64(nil), v...)
		norm, clipped, err := ClipL2(v, c)
		if err != nil {
			t.Fatal(err)
		}
		after, _ := L2Norm(v)
		if after > c {
			t.Fatalf("norm %v > clip %v after clipping", after, c)
		}
		if !clipped {
			for i := range v {
				if v[i] != orig[i] {
					t.Fatalf("unclipped vector changed at %d", i)
				}
			}
			if norm > c {
				t.Fatalf("norm %v > c %v but not clipped", norm, c)
			}
			return
		}
		if after < c*(1-1e-12) {
			t.Fatalf("clipped too far: %v < %v", after, c)
		}
		for i := range v {
			if want := orig[i] * c / norm; math.Abs(v[i]-want) > 1e-12*c {
				t.Fatalf("coordinate %d = %v, want %v (direction kept)", i, v[i], want)
			}
		}
	})
	var pe *ParamError
	if _, _, err := ClipL2([]float64{1}, 0); !errors.As(err, &pe) || pe.Param != "clip" {
		t.Errorf("clip 0: %v", err)
	}
}

// TestClipAndRoundSensitivity: the prepared update is on the grid and its
// norm is at most the clip, the bound the accountant relies on, even for
// vectors whose every coordinate rounds away from zero.
func TestClipAndRoundSensitivity(t *testing.T) {
	t.Parallel()
	rapid.Check(t, func(t *rapid.T) {
		d := rapid.IntRange(1, 5000).Draw(t, "d")
		clip := rapid.Float64Range(1e-3, 1e3).Draw(t, "clip")
		z := rapid.Float64Range(0.05, 10).Draw(t, "z")
		c, err := NewCentral(clip, z, 1)
		if err != nil {
			t.Fatal(err)
		}
		step := c.Step()
		v := make([]float64, d)
		scale := rapid.Float64Range(1e-3, 1e3).Draw(t, "scale")
		for i := range v {
			// Half-way points are the worst case for rounding.
			v[i] = (float64(rapid.IntRange(-1000, 1000).Draw(t, "k")) + 0.5) * step * scale
		}
		if _, _, err := c.Prepare(v); err != nil {
			var pe *ParamError
			if errors.As(err, &pe) && pe.Param == "dimension" {
				return
			}
			t.Fatal(err)
		}
		if n := naiveNorm(v); n > clip {
			t.Fatalf("prepared norm %v > clip %v", n, clip)
		}
		for i, x := range v {
			if k := x / step; k != math.Trunc(k) {
				t.Fatalf("coordinate %d off the grid", i)
			}
		}
	})
}

// TestLocalPrivatize: the output is centred on the clipped update with
// standard deviation z·C per coordinate, and the same seed repeats it.
func TestLocalPrivatize(t *testing.T) {
	t.Parallel()
	const d, clip, z = 20000, 2.0, 0.5
	l, err := NewLocal(clip, z)
	if err != nil {
		t.Fatal(err)
	}
	base := make([]float64, d)
	for i := range base {
		base[i] = 1 // norm √20000 ≈ 141, clipped to 2
	}
	v := append([]float64(nil), base...)
	norm, clipped, err := l.Privatize(v, NewSeededSource(seed(9)))
	if err != nil {
		t.Fatal(err)
	}
	if !clipped || math.Abs(norm-math.Sqrt(d)) > 1e-9 {
		t.Errorf("norm %v clipped %v", norm, clipped)
	}
	// Each clipped coordinate is 2/√20000 ≈ 0.01414 (minus the margin).
	want := clip / math.Sqrt(d)
	var sum, sumSq float64
	for _, x := range v {
		sum += x - want
		sumSq += (x - want) * (x - want)
	}
	mean, std := sum/d, math.Sqrt(sumSq/d)
	if math.Abs(mean) > 5*z*clip/math.Sqrt(d) || math.Abs(std/(z*clip)-1) > 5/math.Sqrt(2*d) {
		t.Errorf("noise mean %v std %v, want 0 and %v", mean, std, z*clip)
	}
	w := append([]float64(nil), base...)
	_, _, _ = l.Privatize(w, NewSeededSource(seed(9)))
	for i := range v {
		if v[i] != w[i] {
			t.Fatalf("coordinate %d differs with the same seed", i)
		}
	}
	if l.NoiseStd() != z*clip {
		t.Errorf("NoiseStd = %v", l.NoiseStd())
	}
	var pe *ParamError
	if _, err := NewLocal(1, 0); !errors.As(err, &pe) || pe.Param != "noise_multiplier" {
		t.Errorf("z=0: %v", err)
	}
	// z·√d far beyond the grid's margin: refused, naming the dimension.
	big, _ := NewLocal(1, 100)
	if _, _, err := big.Privatize(make([]float64, 1<<20), NewSeededSource(seed(1))); !errors.As(err, &pe) || pe.Param != "dimension" {
		t.Errorf("huge z·√d: %v", err)
	}
}

// TestCentralMean: Mean is Prepare + sum + Finish; its noise has standard
// deviation z·C/m; every member with the seed gets the same bits; the
// inputs are not modified.
func TestCentralMean(t *testing.T) {
	t.Parallel()
	const clip, z, m, d = 1.0, 1.2, 50.0, 30000
	c, err := NewCentral(clip, z, m)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	updates := make([][]float64, 40)
	for i := range updates {
		updates[i] = make([]float64, d)
		for j := range updates[i] {
			updates[i][j] = r.NormFloat64() * 0.02 // norm ≈ 3.5: clipped
		}
	}
	keep := append([]float64(nil), updates[0]...)
	s := DeriveSeed([]byte("secret"), "job", 3)
	mean, clipped, err := c.Mean(updates, NewSeededSource(s))
	if err != nil {
		t.Fatal(err)
	}
	if clipped != 40 {
		t.Errorf("clipped %d of 40", clipped)
	}
	for j := range keep {
		if updates[0][j] != keep[j] {
			t.Fatal("Mean modified its input")
		}
	}
	// Re-derive by hand, as a checking member would.
	sum := make([]float64, d)
	for _, u := range updates {
		p := append([]float64(nil), u...)
		if _, _, err := c.Prepare(p); err != nil {
			t.Fatal(err)
		}
		for j := range p {
			sum[j] += p[j]
		}
	}
	exact := append([]float64(nil), sum...)
	if err := c.Finish(sum, NewSeededSource(s)); err != nil {
		t.Fatal(err)
	}
	var ss float64
	for j := range sum {
		if sum[j] != mean[j] {
			t.Fatalf("coordinate %d: %v re-derived, %v from Mean", j, sum[j], mean[j])
		}
		n := mean[j] - exact[j]/m
		ss += n * n
	}
	std := math.Sqrt(ss / d)
	if want := z * clip / m; math.Abs(std/want-1) > 5/math.Sqrt(2*d) || c.NoiseStd() != want {
		t.Errorf("noise std on the mean %v, want %v", std, want)
	}
	var pe *ParamError
	if _, err := NewCentral(1, 1, 0.5); !errors.As(err, &pe) || pe.Param != "expected_count" {
		t.Errorf("expected 0.5: %v", err)
	}
	if _, _, err := c.Mean([][]float64{{1, 2}, {1}}, NewSeededSource(s)); err == nil {
		t.Error("ragged updates accepted")
	}
}

// TestAdaptiveClipConverges: with log-normal update norms of median 1,
// the clip moves from 0.1 to the median (target quantile 0.5).
func TestAdaptiveClipConverges(t *testing.T) {
	t.Parallel()
	const m = 100
	a := AdaptiveClip{Clip: 0.1, TargetQuantile: 0.5, LearningRate: 0.2, CountNoise: m / 20}
	r := rand.New(rand.NewPCG(3, 4))
	src := NewSeededSource(seed(11))
	for round := 0; round < 300; round++ {
		unclipped := 0
		for i := 0; i < m; i++ {
			if math.Exp(r.NormFloat64()) <= a.Clip {
				unclipped++
			}
		}
		before := a.Clip
		frac, err := a.Update(unclipped, m, m, src)
		if err != nil {
			t.Fatal(err)
		}
		if (frac > 0.5) != (a.Clip < before) {
			t.Fatalf("round %d: fraction %v moved the clip from %v to %v", round, frac, before, a.Clip)
		}
	}
	if a.Clip < 0.8 || a.Clip > 1.25 {
		t.Errorf("clip after 300 rounds = %v, want near the median 1", a.Clip)
	}
	// All unclipped with no noise to speak of: one step of exp(−η/2).
	b := AdaptiveClip{Clip: 1, TargetQuantile: 0.5, LearningRate: 0.2, CountNoise: 1e-6}
	if _, err := b.Update(10, 10, 10, src); err != nil || math.Abs(b.Clip-math.Exp(-0.1)) > 1e-6 {
		t.Errorf("all unclipped: clip %v err %v, want %v", b.Clip, err, math.Exp(-0.1))
	}
	var pe *ParamError
	for _, c := range []struct {
		a     AdaptiveClip
		param string
	}{
		{AdaptiveClip{Clip: 0, TargetQuantile: 0.5, LearningRate: 0.2, CountNoise: 1}, "clip"},
		{AdaptiveClip{Clip: 1, TargetQuantile: 1, LearningRate: 0.2, CountNoise: 1}, "target_quantile"},
		{AdaptiveClip{Clip: 1, TargetQuantile: 0.5, LearningRate: 0, CountNoise: 1}, "learning_rate"},
		{AdaptiveClip{Clip: 1, TargetQuantile: 0.5, LearningRate: 0.2, CountNoise: 9000}, "count_noise"},
	} {
		if err := c.a.Validate(); !errors.As(err, &pe) || pe.Param != c.param {
			t.Errorf("%+v: %v, want %s", c.a, err, c.param)
		}
	}
	if _, err := b.Update(5, 4, 10, src); !errors.As(err, &pe) || pe.Param != "participants" {
		t.Errorf("unclipped > participants: %v", err)
	}
}

// TestUpdateNoiseMultiplier: the split preserves 1/z² = 1/z_Δ² + 1/(2σ_b)².
func TestUpdateNoiseMultiplier(t *testing.T) {
	t.Parallel()
	for _, c := range [][2]float64{{1, 5}, {1.1, 0.6}, {0.5, 100}} {
		zd, err := UpdateNoiseMultiplier(c[0], c[1])
		if err != nil {
			t.Fatal(err)
		}
		if got := 1/(zd*zd) + 1/(4*c[1]*c[1]); math.Abs(got-1/(c[0]*c[0])) > 1e-12 || zd <= c[0] {
			t.Errorf("z=%v σb=%v: z_Δ = %v", c[0], c[1], zd)
		}
	}
	var pe *ParamError
	if _, err := UpdateNoiseMultiplier(1, 0.5); !errors.As(err, &pe) || pe.Param != "count_noise" {
		t.Errorf("2σb = z: %v", err)
	}
}
