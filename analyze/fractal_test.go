package analyze

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/mfn/mfn/sim"
)

// carpet returns the n×n Sierpinski carpet mask (n a power of 3): a cell is
// empty when, at some base-3 digit position, both its row and column digits
// are 1.
func carpet(n int) []bool {
	m := make([]bool, n*n)
	for r := range n {
		for c := range n {
			on := true
			for a, b := r, c; a > 0 || b > 0; a, b = a/3, b/3 {
				if a%3 == 1 && b%3 == 1 {
					on = false
					break
				}
			}
			m[r*n+c] = on
		}
	}
	return m
}

func TestBoxCountKnownFractals(t *testing.T) {
	t.Parallel()
	const n = 81
	full := make([]bool, n*n)
	for i := range full {
		full[i] = true
	}
	line := make([]bool, n*n)
	for c := range n {
		line[40*n+c] = true
	}
	diag := make([]bool, n*n)
	for i := range n {
		diag[i*n+i] = true
	}
	point := make([]bool, n*n)
	point[5*n+7] = true
	sizes := []int{1, 3, 9, 27}
	cases := []struct {
		name   string
		mask   []bool
		want   float64
		counts []int
	}{
		{"filled square", full, 2, []int{6561, 729, 81, 9}},
		{"horizontal line", line, 1, []int{81, 27, 9, 3}},
		{"diagonal", diag, 1, []int{81, 27, 9, 3}},
		{"Sierpinski carpet", carpet(n), math.Log(8) / math.Log(3), []int{4096, 512, 64, 8}},
		{"single point", point, 0, []int{1, 1, 1, 1}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fit, err := BoxCount(tc.mask, n, sizes)
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(fit.D-tc.want) > 1e-12 {
				t.Errorf("D = %.15f, want %.15f", fit.D, tc.want)
			}
			for i, s := range fit.Scales {
				if s.Size != sizes[i] || s.Count != tc.counts[i] || s.Boxes != (n/sizes[i])*(n/sizes[i]) || !s.Used {
					t.Errorf("scale %d = %+v, want size %d count %d", i, s, sizes[i], tc.counts[i])
				}
			}
			if tc.want > 0 && math.Abs(fit.R2-1) > 1e-12 {
				t.Errorf("R² = %v, want 1 for an exact power law", fit.R2)
			}
			if tc.want == 0 && (fit.R2 != 0 || fit.Intercept != 0) {
				t.Errorf("constant counts: R² %v intercept %v, want 0, 0", fit.R2, fit.Intercept)
			}
			// The fitted line passes through the points of an exact power law.
			if tc.want > 0 {
				for _, s := range fit.Scales {
					pred := fit.D*math.Log(1/float64(s.Size)) + fit.Intercept
					if math.Abs(pred-math.Log(float64(s.Count))) > 1e-9 {
						t.Errorf("size %d: fit gives ln count %v, want %v", s.Size, pred, math.Log(float64(s.Count)))
					}
				}
			}
		})
	}
}

func TestBoxCountEmptyAndOversized(t *testing.T) {
	t.Parallel()
	fit, err := BoxCount(make([]bool, 16), 4, []int{1, 2, 8})
	if err != nil {
		t.Fatal(err)
	}
	if fit.D != 0 || fit.R2 != 0 || fit.ActiveFraction != 0 {
		t.Errorf("empty mask: %+v", fit)
	}
	if s := fit.Scales[2]; s.Boxes != 0 || s.Count != 0 || s.Used {
		t.Errorf("edge 8 on a 4×4 grid: %+v, want nothing counted", s)
	}
}

func TestFractalConfigValidate(t *testing.T) {
	t.Parallel()
	bad := []FractalConfig{
		{ThresholdMV: math.NaN()},
		{ThresholdMV: math.Inf(-1)},
		{Sizes: []int{0, 2}},
		{Sizes: []int{4, 2}},
		{Sizes: []int{2, 2}},
		{Sizes: make([]int, MaxScales+1)},
	}
	for _, c := range bad {
		if err := c.Validate(); !errors.Is(err, ErrFractalConfig) {
			t.Errorf("%+v: error %v, want ErrFractalConfig", c, err)
		}
	}
	if err := DefaultFractalConfig().Validate(); err != nil {
		t.Error(err)
	}
	if _, err := FieldFit([]float64{0, math.NaN(), 0, 0}, 2, DefaultFractalConfig()); !errors.Is(err, ErrField) {
		t.Errorf("NaN field: %v, want ErrField", err)
	}
	if _, err := FieldFit(make([]float64, 5), 2, DefaultFractalConfig()); !errors.Is(err, ErrField) {
		t.Errorf("short field: %v, want ErrField", err)
	}
	if _, err := ThresholdSweep(make([]float64, 4), 2, make([]float64, MaxSweep+1), nil); !errors.Is(err, ErrFractalConfig) {
		t.Errorf("long sweep: %v, want ErrFractalConfig", err)
	}
}

type goldenCase struct {
	Name     string             `json:"name"`
	Shape    []int              `json:"shape"`
	History  string             `json:"history_f64le_b64"`
	Features map[string]float64 `json:"features"`
}

// goldenCases loads /work/shared/golden/features (../../shared/golden from
// the package), skipping the test if it is absent.
func goldenCases(t *testing.T) []goldenCase {
	t.Helper()
	dir := filepath.Join("..", "..", "shared", "golden", "features")
	paths, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	if len(paths) == 0 {
		t.Skipf("golden data not available at %s", dir)
	}
	var out []goldenCase
	for _, p := range paths {
		if filepath.Base(p) == "nernst.json" {
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var c goldenCase
		if err := json.Unmarshal(b, &c); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		out = append(out, c)
	}
	return out
}

func (c goldenCase) decode(t *testing.T) (h []float64, steps, n int) {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(c.History)
	if err != nil {
		t.Fatal(err)
	}
	h = make([]float64, len(raw)/8)
	for i := range h {
		h[i] = math.Float64frombits(binary.LittleEndian.Uint64(raw[8*i:]))
	}
	if len(c.Shape) == 2 {
		return h, 1, c.Shape[0]
	}
	return h, c.Shape[0], c.Shape[1]
}

// TestFractalMatchesFeatureGolden: at the default threshold and sizes the
// analysis reports exactly the D_box and D_r2 of the reference features
// and of sim's extractor, for every golden case.
func TestFractalMatchesFeatureGolden(t *testing.T) {
	t.Parallel()
	nonzero := 0
	for _, c := range goldenCases(t) {
		h, steps, n := c.decode(t)
		rep, err := Fractal(context.Background(), h, c.Shape, steps, n, DefaultFractalConfig(), DefaultSweepMV())
		if err != nil {
			t.Fatalf("%s: %v", c.Name, err)
		}
		f, err := sim.ExtractFeatures(h, steps, n)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Fit.D != f[sim.FDBox] || rep.Fit.R2 != f[sim.FDR2] {
			t.Errorf("%s: D %v R² %v, sim's features %v %v", c.Name, rep.Fit.D, rep.Fit.R2, f[sim.FDBox], f[sim.FDR2])
		}
		if !near(rep.Fit.D, c.Features["D_box"]) || !near(rep.Fit.R2, c.Features["D_r2"]) {
			t.Errorf("%s: D %v R² %v, reference %v %v", c.Name, rep.Fit.D, rep.Fit.R2, c.Features["D_box"], c.Features["D_r2"])
		}
		if rep.Fit.ActiveFraction != f[sim.FFActive] {
			t.Errorf("%s: active fraction %v, f_active %v", c.Name, rep.Fit.ActiveFraction, f[sim.FFActive])
		}
		if !rep.IsDefault {
			t.Errorf("%s: default parameters not flagged", c.Name)
		}
		// The sweep point at −60 mV is the same fit.
		i := slices.IndexFunc(rep.Sweep, func(p SweepPoint) bool { return p.ThresholdMV == -60 })
		if i < 0 || rep.Sweep[i].D != rep.Fit.D {
			t.Errorf("%s: sweep at −60 mV missing or different", c.Name)
		}
		// The active fraction cannot grow with the threshold.
		for k := 1; k < len(rep.Sweep); k++ {
			if rep.Sweep[k].ActiveFraction > rep.Sweep[k-1].ActiveFraction {
				t.Errorf("%s: active fraction rises from %v to %v mV", c.Name, rep.Sweep[k-1].ThresholdMV, rep.Sweep[k].ThresholdMV)
			}
		}
		// Over time: each frame's D is the feature of that frame alone.
		if steps > 1 {
			if len(rep.OverTime) != steps {
				t.Fatalf("%s: %d time points for %d steps", c.Name, len(rep.OverTime), steps)
			}
			for _, k := range []int{0, steps / 2, steps - 1} {
				fk, _ := sim.ExtractFeatures(h[k*n*n:(k+1)*n*n], 1, n)
				if p := rep.OverTime[k]; p.Step != k+1 || p.D != fk[sim.FDBox] || p.R2 != fk[sim.FDR2] {
					t.Errorf("%s: frame %d: %+v, features D %v R² %v", c.Name, k, p, fk[sim.FDBox], fk[sim.FDR2])
				}
			}
		}
		if rep.Fit.D != 0 {
			nonzero++
		}
		// Sizes equal to the reference table give the same fit as nil.
		sizes, _ := sim.BoxSizes(n, 2, 5)
		explicit, err := FieldFit(h[(steps-1)*n*n:], n, FractalConfig{ThresholdMV: -60, Sizes: sizes})
		if err != nil || explicit.D != rep.Fit.D {
			t.Errorf("%s: explicit sizes %v: D %v (%v), want %v", c.Name, sizes, explicit.D, err, rep.Fit.D)
		}
	}
	if nonzero == 0 {
		t.Error("every golden case has D = 0; the comparison has no teeth")
	}
}

// TestBoxSizesGolden: nil sizes are the reference table's for the grid.
func TestBoxSizesGolden(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(filepath.Join("..", "..", "shared", "golden", "box_sizes.json"))
	if err != nil {
		t.Skip(err)
	}
	var doc struct {
		Sizes map[string][]int `json:"sizes_by_max_box"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	// max box = min(32, N/2) for N ≥ 4.
	for _, n := range []int{8, 14, 20, 32, 64, 128} {
		want := doc.Sizes[itoa(min(32, n/2))]
		fit, err := BoxCount(make([]bool, n*n), n, nil)
		if err != nil {
			t.Fatal(err)
		}
		var got []int
		for _, s := range fit.Scales {
			got = append(got, s.Size)
		}
		if !slices.Equal(got, want) {
			t.Errorf("N=%d: sizes %v, reference %v", n, got, want)
		}
	}
}

func itoa(v int) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func near(a, b float64) bool {
	return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b))
}

func TestOverTimeCancelled(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := OverTime(ctx, make([]float64, 3*16), 3, 4, DefaultFractalConfig()); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}
