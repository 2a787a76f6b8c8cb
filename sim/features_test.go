package sim

import (
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// maskOf builds an n×n mask from a predicate.
func maskOf(n int, active func(r, c int) bool) []bool {
	m := make([]bool, n*n)
	for r := range n {
		for c := range n {
			m[r*n+c] = active(r, c)
		}
	}
	return m
}

// TestBoxDimensionKnownValues checks the estimator on sets whose
// box-counting dimension is known. With box edges that divide the grid
// (powers of 2 for 64, of 3 for 81) the counts are exact powers and the
// fitted slope equals the dimension up to rounding (1e-12). With the
// reference's default sizes [2, 4, 7, 16, 32] the 7-cell boxes leave a
// margin uncovered and the estimate is only approximate; the tolerances
// there are what that bias allows (computed, not tuned: see the values
// in the comments).
func TestBoxDimensionKnownValues(t *testing.T) {
	t.Parallel()
	pow2 := []int{2, 4, 8, 16, 32}
	square := maskOf(64, func(r, c int) bool { return true })
	line := maskOf(64, func(r, c int) bool { return r == 10 })
	// Sierpinski triangle: cell (r, c) is in the set iff C(r, c) is odd,
	// i.e. r & c == c (Lucas' theorem); at edge 2^k there are 3^(6−k) boxes.
	triangle := maskOf(64, func(r, c int) bool { return c <= r && r&c == c })
	// Sierpinski carpet of level 4 on 81×81: a cell is removed iff some
	// base-3 digit pair of (r, c) is (1, 1); at edge 3^k there are 8^(4−k) boxes.
	carpet := maskOf(81, func(r, c int) bool {
		for ; r > 0 || c > 0; r, c = r/3, c/3 {
			if r%3 == 1 && c%3 == 1 {
				return false
			}
		}
		return true
	})
	for _, tc := range []struct {
		name  string
		mask  []bool
		n     int
		sizes []int
		want  float64
		tol   float64
	}{
		{"filled square", square, 64, pow2, 2, 1e-12},
		{"line", line, 64, pow2, 1, 1e-12},
		{"Sierpinski triangle", triangle, 64, pow2, math.Log(3) / math.Log(2), 1e-12},
		{"Sierpinski carpet", carpet, 81, []int{3, 9, 27}, math.Log(8) / math.Log(3), 1e-12},
		// Default sizes: square → 2.0037 (7-cell boxes cover 63 of 64
		// rows), line → 0.9984; both within 0.01.
		{"filled square, default sizes", square, 64, nil, 2, 0.01},
		{"line, default sizes", line, 64, nil, 1, 0.01},
	} {
		sizes := tc.sizes
		if sizes == nil {
			var err error
			if sizes, err = BoxSizes(tc.n, DefaultMinBox, DefaultNumScales); err != nil {
				t.Fatal(err)
			}
		}
		d, r2 := BoxDimension(tc.mask, tc.n, sizes)
		if math.Abs(d-tc.want) > tc.tol {
			t.Errorf("%s: D = %.15g, want %.15g ± %g", tc.name, d, tc.want, tc.tol)
		}
		if tc.tol < 1e-9 && math.Abs(r2-1) > 1e-12 {
			t.Errorf("%s: R² = %v, want 1 for exact power-law counts", tc.name, r2)
		}
	}
	if d, r2 := BoxDimension(make([]bool, 64*64), 64, pow2); d != 0 || r2 != 0 {
		t.Errorf("empty mask: D = %v, R² = %v, want 0, 0", d, r2)
	}
	// A single cell: count 1 at every size, SS_tot = 0 → slope 0, R² 0.
	one := make([]bool, 64*64)
	one[0] = true
	if d, r2 := BoxDimension(one, 64, pow2); d != 0 || r2 != 0 {
		t.Errorf("single cell: D = %v, R² = %v, want 0, 0", d, r2)
	}
}

func TestBoxSizesNonDefault(t *testing.T) {
	t.Parallel()
	got, err := BoxSizes(256, 1, 9)
	if err != nil {
		t.Fatal(err)
	}
	want := []int{1, 2, 4, 8, 16, 32, 64, 128, 256}[:len(got)]
	// max = min(1·2^8, 128) = 128: sizes 1·128^(k/8), rounded down.
	if len(got) < 7 || got[0] != 1 || got[len(got)-1] != 128 {
		t.Errorf("BoxSizes(256, 1, 9) = %v (want from 1 to 128, about %v)", got, want)
	}
	if _, err := BoxSizes(64, 0, 5); err == nil {
		t.Error("min box 0 accepted")
	}
	if _, err := BoxSizes(64, 2, 1); err == nil {
		t.Error("one scale accepted")
	}
}

// TestTStable builds histories with a known stabilisation step.
func TestTStable(t *testing.T) {
	t.Parallel()
	const n = 8
	rng := rand.New(rand.NewPCG(1, 2))
	build := func(steps, settleAt int) []float64 {
		h := make([]float64, steps*n*n)
		for f := range steps {
			for k := range n * n {
				if f < settleAt {
					h[f*n*n+k] = -0.07 + 0.005*rng.NormFloat64()
				} else {
					h[f*n*n+k] = h[(settleAt-1)*n*n+k]
				}
			}
		}
		return h
	}
	for _, tc := range []struct{ steps, settleAt, want int }{
		// Frames from settleAt on equal frame settleAt−1, so d_t = 0 for
		// t ≥ settleAt−1; the tenth such t is settleAt+8 → T_stable =
		// settleAt+8−10+2 = settleAt.
		{30, 5, 5},
		{30, 1, 1},
		{30, 20, 20},
		{30, 21, 30}, // only 9 quiet differences: never stable → T
		{10, 1, 10},  // T ≤ 10: T_stable = T
		{11, 1, 1},
		{1, 1, 0}, // a single frame
	} {
		f, err := ExtractFeatures(build(tc.steps, tc.settleAt), tc.steps, n)
		if err != nil {
			t.Fatal(err)
		}
		if f[FTStable] != float64(tc.want) {
			t.Errorf("T=%d settled from frame %d: T_stable = %v, want %d", tc.steps, tc.settleAt, f[FTStable], tc.want)
		}
	}
}

// TestStaticFeaturesHandmade checks the statistics and clusters of a
// small field computed by hand.
func TestStaticFeaturesHandmade(t *testing.T) {
	t.Parallel()
	const lo, med, hi, rest = -0.055, -0.045, -0.030, -0.070
	// 4×4 field, row-major:
	//   hi  hi   .  lo
	//   .   .    .  lo
	//   med .    .  .
	//   .   .   lo  lo
	field := []float64{
		hi, hi, rest, lo,
		rest, rest, rest, lo,
		med, rest, rest, rest,
		rest, rest, lo, lo,
	}
	f, err := ExtractFeatures(field, 1, 4)
	if err != nil {
		t.Fatal(err)
	}
	// Components above −60 mV: {hi,hi}, {lo,lo} (column 3 top), {med},
	// {lo,lo} (bottom right) → 4 components of sizes 2, 2, 1, 2.
	want := map[int]float64{
		FClustersLow: 4, FClustersMed: 2, FClustersHigh: 1,
		FMaxClusterSize: 2, FFActive: 7.0 / 16,
		FVMin: -70, FVMax: -30,
		FDVMean: 0, FDVMax: 0, FTStable: 0, FETrend: 0,
	}
	for i, w := range want {
		if math.Abs(f[i]-w) > 1e-12 {
			t.Errorf("%s = %v, want %v", FeatureNames[i], f[i], w)
		}
	}
	// sizes 2,2,1,2: mean 1.75, population std sqrt(3·0.0625+0.5625)/2.
	if w := math.Sqrt((3*0.0625 + 0.5625) / 4); math.Abs(f[FClusterSizeStd]-w) > 1e-15 {
		t.Errorf("cluster_size_std = %v, want %v", f[FClusterSizeStd], w)
	}
	// Population moments of the millivolt values.
	var mv []float64
	for _, v := range field {
		mv = append(mv, v*1000)
	}
	m, m2, m3, m4 := 0.0, 0.0, 0.0, 0.0
	for _, x := range mv {
		m += x / 16
	}
	for _, x := range mv {
		d := x - m
		m2 += d * d / 16
		m3 += d * d * d / 16
		m4 += d * d * d * d / 16
	}
	sd := math.Sqrt(m2)
	for i, w := range map[int]float64{FVMean: m, FVStd: sd, FVSkew: m3 / (sd * sd * sd), FVKurt: m4/(m2*m2) - 3} {
		if math.Abs(f[i]-w) > 1e-12*math.Max(1, math.Abs(w)) {
			t.Errorf("%s = %v, want %v", FeatureNames[i], f[i], w)
		}
	}
}

func TestExtractFeaturesErrors(t *testing.T) {
	t.Parallel()
	h := make([]float64, 2*4*4)
	for k := range h {
		h[k] = -0.07
	}
	if _, err := ExtractFeatures(h[:31], 2, 4); !errors.Is(err, ErrShape) {
		t.Errorf("short history: %v, want ErrShape", err)
	}
	if _, err := ExtractFeatures(h, 0, 4); !errors.Is(err, ErrShape) {
		t.Errorf("zero steps: %v, want ErrShape", err)
	}
	for _, bad := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		h2 := append([]float64(nil), h...)
		h2[16+4+3] = bad
		_, err := ExtractFeatures(h2, 2, 4)
		var nf *NonFiniteError
		if !errors.As(err, &nf) || !errors.Is(err, ErrNonFinite) {
			t.Fatalf("%v in input: got %v, want *NonFiniteError", bad, err)
		}
		if nf.Frame != 1 || nf.Row != 1 || nf.Col != 3 {
			t.Errorf("%v located at %+v, want frame 1 row 1 column 3", bad, nf)
		}
		if !math.IsNaN(HistoryLyapunov(h2, 2, 4)) {
			t.Errorf("HistoryLyapunov accepted %v", bad)
		}
	}
	h3 := append([]float64(nil), h...)
	h3[5] = 1e200
	if _, err := ExtractFeatures(h3, 2, 4); !errors.Is(err, ErrNonFinite) {
		t.Errorf("overflowing values: %v, want ErrNonFinite", err)
	}
}

func TestHistoryLyapunovKnown(t *testing.T) {
	t.Parallel()
	// Each step changes every one of 4 cells by 0.001 V: ‖ΔV‖₂ = 0.002.
	h := []float64{0, 0, 0, 0, 0.001, 0.001, 0.001, 0.001, 0.002, 0.002, 0.002, 0.002}
	if got, want := HistoryLyapunov(h, 3, 2), math.Log(0.002); math.Abs(got-want) > 1e-12 {
		t.Errorf("HistoryLyapunov = %v, want %v", got, want)
	}
	// A constant history has no step above 1e-10: 0.
	if got := HistoryLyapunov(make([]float64, 12), 3, 2); got != 0 {
		t.Errorf("constant history: %v, want 0", got)
	}
}

func TestFeaturesJSON(t *testing.T) {
	t.Parallel()
	var f Features
	for i := range f {
		f[i] = float64(i) + 0.5
	}
	b, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	last := -1
	for _, name := range FeatureNames {
		i := strings.Index(s, `"`+name+`":`)
		if i < 0 || i < last {
			t.Fatalf("key %s missing or out of order in %s", name, s)
		}
		last = i
	}
	var back Features
	if err := json.Unmarshal(b, &back); err != nil || back != f {
		t.Fatalf("round trip: %v, %v", back, err)
	}
	var m map[string]float64
	if err := json.Unmarshal(b, &m); err != nil || len(m) != NumFeatures || m["V_std"] != f[FVStd] {
		t.Fatalf("as map: %v %v", m, err)
	}
	if fm := f.Map(); len(fm) != NumFeatures || fm["D_box"] != 0.5 {
		t.Errorf("Map() = %v", fm)
	}
	if err := json.Unmarshal([]byte(`{"D_box":1}`), &back); err == nil {
		t.Error("object with missing keys accepted")
	}
}

// TestExtractFeaturesOverflowIsError checks that a finite field whose
// values are so large that a feature overflows (here the third and fourth
// moments in mV) is rejected with ErrNonFinite instead of returning NaN
// features that no caller can print or store.
func TestExtractFeaturesOverflowIsError(t *testing.T) {
	const n = 4
	field := make([]float64, n*n)
	for i := range field {
		switch i % 3 {
		case 0:
			field[i] = 1e80
		case 1:
			field[i] = -1e80
		}
	}
	f, err := ExtractFeatures(field, 1, n)
	if !errors.Is(err, ErrNonFinite) {
		t.Fatalf("ExtractFeatures(±1e80 V) = %v, %v; want an error wrapping ErrNonFinite", f, err)
	}
}
