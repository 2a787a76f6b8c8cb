package sim

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"
)

// goldenDir returns ../shared/golden relative to the repository root, or
// skips the test if it is absent.
func goldenDir(t testing.TB) string {
	t.Helper()
	dir := filepath.Join("..", "..", "shared", "golden")
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("golden data not available at %s: %v", dir, err)
	}
	return dir
}

type goldenCase struct {
	Name     string             `json:"name"`
	Shape    []int              `json:"shape"`
	History  string             `json:"history_f64le_b64"`
	Features map[string]float64 `json:"features"`
}

// decode returns the case's history and its (T, N).
func (c *goldenCase) decode(t testing.TB) ([]float64, int, int) {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(c.History)
	if err != nil {
		t.Fatalf("%s: base64: %v", c.Name, err)
	}
	var steps, n int
	switch len(c.Shape) {
	case 2:
		steps, n = 1, c.Shape[0]
	case 3:
		steps, n = c.Shape[0], c.Shape[1]
	default:
		t.Fatalf("%s: shape %v", c.Name, c.Shape)
	}
	if len(raw) != 8*steps*n*n {
		t.Fatalf("%s: %d bytes for shape %v", c.Name, len(raw), c.Shape)
	}
	h := make([]float64, steps*n*n)
	for i := range h {
		h[i] = math.Float64frombits(binary.LittleEndian.Uint64(raw[8*i:]))
	}
	return h, steps, n
}

func loadGoldenCases(t testing.TB) []goldenCase {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(goldenDir(t), "features", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cases []goldenCase
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
		cases = append(cases, c)
	}
	if len(cases) == 0 {
		t.Fatal("no golden feature cases found")
	}
	return cases
}

// integerFeature reports whether feature i is integer-valued and must
// match exactly.
func integerFeature(i int) bool {
	switch i {
	case FTStable, FClustersLow, FClustersMed, FClustersHigh, FMaxClusterSize:
		return true
	}
	return false
}

// closeTo reports whether got is within relative error tol of want
// (absolute tol when |want| < 1).
func closeTo(got, want, tol float64) bool {
	return math.Abs(got-want) <= tol*math.Max(1, math.Abs(want))
}

func TestGoldenFeatures(t *testing.T) {
	t.Parallel()
	for _, c := range loadGoldenCases(t) {
		t.Run(c.Name, func(t *testing.T) {
			h, steps, n := c.decode(t)
			got, err := ExtractFeatures(h, steps, n)
			if err != nil {
				t.Fatal(err)
			}
			if len(c.Features) != NumFeatures {
				t.Fatalf("golden case has %d features", len(c.Features))
			}
			for i, name := range FeatureNames {
				want, ok := c.Features[name]
				if !ok {
					t.Fatalf("golden case lacks %s", name)
				}
				if integerFeature(i) {
					if got[i] != want {
						t.Errorf("%s = %v, want exactly %v", name, got[i], want)
					}
					continue
				}
				if !closeTo(got[i], want, 1e-9) {
					t.Errorf("%s = %.17g, want %.17g (rel err %.3g)", name, got[i], want, math.Abs(got[i]-want)/math.Max(1, math.Abs(want)))
				}
			}
		})
	}
}

func TestGoldenNernst(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(filepath.Join(goldenDir(t), "features", "nernst.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cases []struct {
		Ion  string  `json:"ion"`
		Z    int     `json:"z"`
		COut float64 `json:"c_out"`
		CIn  float64 `json:"c_in"`
		T    float64 `json:"T"`
		E    float64 `json:"E_volts"`
	}
	if err := json.Unmarshal(b, &cases); err != nil {
		t.Fatal(err)
	}
	if len(cases) < 4 {
		t.Fatalf("only %d nernst cases", len(cases))
	}
	for _, c := range cases {
		got, err := Nernst(c.Z, c.COut, c.CIn, c.T)
		if err != nil {
			t.Fatalf("%s: %v", c.Ion, err)
		}
		if math.Abs(got-c.E) > 1e-9*math.Abs(c.E) {
			t.Errorf("%s: E = %.17g V, want %.17g", c.Ion, got, c.E)
		}
	}
}

// TestBoxTableMatchesGolden checks the embedded box-size table against the
// shared reference copy.
func TestBoxTableMatchesGolden(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(filepath.Join(goldenDir(t), "box_sizes.json"))
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != string(boxSizesJSON) {
		t.Fatal("sim/box_sizes.json differs from golden/box_sizes.json")
	}
	for _, tc := range []struct {
		n    int
		want []int
	}{
		{64, []int{2, 4, 7, 16, 32}},
		{1024, []int{2, 4, 7, 16, 32}},
		{32, []int{2, 3, 5, 9, 16}},
		{24, []int{2, 3, 4, 7, 12}},
		{4, []int{2}},
		{2, []int{2}},
	} {
		got, err := BoxSizes(tc.n, DefaultMinBox, DefaultNumScales)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(tc.want) {
			t.Errorf("n=%d: sizes %v, want %v", tc.n, got, tc.want)
			continue
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("n=%d: sizes %v, want %v", tc.n, got, tc.want)
				break
			}
		}
	}
}
