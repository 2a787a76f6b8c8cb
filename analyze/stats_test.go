package analyze

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"testing"
)

func TestDescribe(t *testing.T) {
	t.Parallel()
	s := Describe("x", []float64{4, 1, 3, 2})
	// Sample std of 1..4 is sqrt(5/3).
	if s.Count != 4 || s.Mean != 2.5 || math.Abs(s.Std-math.Sqrt(5.0/3)) > 1e-12 || s.Min != 1 || s.Max != 4 || s.Constant {
		t.Errorf("1..4: %+v", s)
	}
	if s.Median != 2 && s.Median != 2.5 && s.Median != 3 {
		t.Errorf("median %v outside [2, 3]", s.Median)
	}
	c := Describe("c", []float64{7, 7, 7})
	if !c.Constant || c.Std != 0 || c.Mean != 7 {
		t.Errorf("constant: %+v", c)
	}
}

func TestCorrelationConstructed(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	const n = 20000
	a, b, c, neg, k := make([]float64, n), make([]float64, n), make([]float64, n), make([]float64, n), make([]float64, n)
	for i := range n {
		a[i] = rng.NormFloat64()
		e := rng.NormFloat64()
		// b = 0.6 a + 0.8 e has unit variance and correlation 0.6 with a.
		b[i] = 0.6*a[i] + 0.8*e
		c[i] = rng.NormFloat64()
		neg[i] = -3*a[i] + 5
		k[i] = 2
	}
	m, err := Correlation([][]float64{a, b, c, neg, k})
	if err != nil {
		t.Fatal(err)
	}
	tol := 4 / math.Sqrt(n) // a few standard errors
	checks := []struct {
		i, j int
		want float64
	}{{0, 1, 0.6}, {0, 2, 0}, {1, 2, 0}, {0, 3, -1}, {1, 3, -0.6}, {0, 0, 1}}
	for _, ch := range checks {
		if got := m[ch.i][ch.j]; math.Abs(got-ch.want) > tol || m[ch.j][ch.i] != got {
			t.Errorf("corr[%d][%d] = %v (sym %v), want %v ± %v", ch.i, ch.j, got, m[ch.j][ch.i], ch.want, tol)
		}
	}
	if math.Abs(m[0][3]+1) > 1e-12 {
		t.Errorf("exact linear relation: %v, want -1", m[0][3])
	}
	for j := range 5 {
		if !math.IsNaN(m[4][j]) || !math.IsNaN(m[j][4]) {
			t.Errorf("constant column: corr[4][%d] = %v, want NaN", j, m[4][j])
		}
	}
	if _, err := Correlation([][]float64{{1}}); !errors.Is(err, ErrTooFew) {
		t.Errorf("one row: %v", err)
	}
}

func TestPCAKnownVariance(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(3, 4))
	const n = 40000
	// Independent N(0, 9) and N(0, 1) rotated by 30°: the components are
	// the rotated axes and their variances 9 and 1.
	th := math.Pi / 6
	x, y := make([]float64, n), make([]float64, n)
	for i := range n {
		u, v := 3*rng.NormFloat64(), rng.NormFloat64()
		x[i] = math.Cos(th)*u - math.Sin(th)*v + 10
		y[i] = math.Sin(th)*u + math.Cos(th)*v - 4
	}
	r, err := PCA([]string{"x", "y"}, [][]float64{x, y}, false)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(r.Variance[0]-9) > 0.25 || math.Abs(r.Variance[1]-1) > 0.03 {
		t.Errorf("variances %v, want [9 1]", r.Variance)
	}
	if math.Abs(r.Explained[0]-0.9) > 0.01 || math.Abs(r.Explained[0]+r.Explained[1]-1) > 1e-12 {
		t.Errorf("explained %v, want [0.9 0.1]", r.Explained)
	}
	v := r.Components[0]
	if math.Abs(v[0]-math.Cos(th)) > 0.01 || math.Abs(v[1]-math.Sin(th)) > 0.01 {
		t.Errorf("first component %v, want [cos 30° sin 30°]", v)
	}
	// Scores: variance of the first score column is the first variance.
	s := make([]float64, n)
	for i := range n {
		s[i] = r.Scores[i][0]
	}
	if d := Describe("s", s); math.Abs(d.Std*d.Std-r.Variance[0]) > 1e-6*r.Variance[0] || math.Abs(d.Mean) > 1e-9 {
		t.Errorf("score variance %v mean %v, want %v and 0", d.Std*d.Std, d.Mean, r.Variance[0])
	}
}

func TestPCAStandardized(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(5, 6))
	const n = 5000
	a, b, c, k := make([]float64, n), make([]float64, n), make([]float64, n), make([]float64, n)
	for i := range n {
		a[i] = rng.NormFloat64()
		b[i] = 100 * a[i] // perfectly correlated, other units
		c[i] = rng.NormFloat64() * 0.001
		k[i] = 1
	}
	r, err := PCA([]string{"a", "b", "c", "k"}, [][]float64{a, b, c, k}, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Excluded) != 1 || r.Excluded[0] != "k" || len(r.Columns) != 3 {
		t.Fatalf("columns %v excluded %v", r.Columns, r.Excluded)
	}
	// Correlation matrix [[1 1 0] [1 1 0] [0 0 1]] (up to sampling): eigenvalues 2, 1, 0.
	want := []float64{2, 1, 0}
	for i, w := range want {
		if math.Abs(r.Variance[i]-w) > 0.05 {
			t.Errorf("variance %d = %v, want %v", i, r.Variance[i], w)
		}
	}
	if _, err := PCA([]string{"k"}, [][]float64{k}, true); !errors.Is(err, ErrTooFew) {
		t.Errorf("only constant: %v", err)
	}
}

func TestFloatJSON(t *testing.T) {
	t.Parallel()
	b, err := json.Marshal([]Float{1.5, Float(math.NaN()), -2})
	if err != nil || string(b) != "[1.5,null,-2]" {
		t.Fatalf("%s %v", b, err)
	}
	var back []Float
	if err := json.Unmarshal(b, &back); err != nil || back[0] != 1.5 || !math.IsNaN(float64(back[1])) || back[2] != -2 {
		t.Errorf("%v %v", back, err)
	}
}

// TestPermutationImportanceRanks: the label depends on x0 only, so
// shuffling x0 costs accuracy and shuffling the noise columns does not.
func TestPermutationImportanceRanks(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(7, 8))
	const n = 1200
	x0, x1, x2 := make([]float64, n), make([]float64, n), make([]float64, n)
	y := make([]int, n)
	for i := range n {
		x0[i], x1[i], x2[i] = rng.NormFloat64(), rng.NormFloat64()*50, rng.NormFloat64()
		if x0[i]+0.1*rng.NormFloat64() > 0 {
			y[i] = 1
		}
	}
	for _, model := range []string{"softmax", "mlp"} {
		t.Run(model, func(t *testing.T) {
			t.Parallel()
			cfg := ImportanceConfig{Model: model, Epochs: 30, Seed: 9, Hidden: 8}
			r, err := PermutationImportance(context.Background(), []string{"noise1", "signal", "noise2"},
				[][]float64{x1, x0, x2}, y, []string{"neg", "pos"}, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if r.Baseline < 0.9 {
				t.Errorf("test accuracy %v, want > 0.9", r.Baseline)
			}
			if r.Features[0].Feature != "signal" || r.Features[0].Drop < 0.3 {
				t.Errorf("ranking %+v: want signal first with a drop > 0.3", r.Features)
			}
			for _, f := range r.Features[1:] {
				if math.Abs(f.Drop) > 0.05 {
					t.Errorf("noise %s drop %v, want ≈ 0", f.Feature, f.Drop)
				}
			}
			if r.TrainRows+r.TestRows != n || r.TestRows != 360 {
				t.Errorf("split %d + %d", r.TrainRows, r.TestRows)
			}
			again, _ := PermutationImportance(context.Background(), []string{"noise1", "signal", "noise2"},
				[][]float64{x1, x0, x2}, y, []string{"neg", "pos"}, cfg)
			if again.Baseline != r.Baseline || again.Features[0] != r.Features[0] {
				t.Errorf("same seed, different result: %+v vs %+v", again.Features[0], r.Features[0])
			}
		})
	}
}

func TestImportanceConfigValidate(t *testing.T) {
	t.Parallel()
	bad := []ImportanceConfig{{Model: "forest"}, {Hidden: -1}, {Epochs: 10001}, {LR: -1}, {Repeats: 101},
		{TestFraction: 1}, {Bins: 1}, {LR: math.NaN()}}
	for _, c := range bad {
		if err := c.Validate(); !errors.Is(err, ErrImportanceConfig) {
			t.Errorf("%+v: %v", c, err)
		}
	}
	if err := (ImportanceConfig{}).Validate(); err != nil {
		t.Error(err)
	}
	_, err := PermutationImportance(context.Background(), []string{"a"}, [][]float64{{1, 2}}, []int{0, 1}, []string{"a", "b"}, ImportanceConfig{})
	if !errors.Is(err, ErrTooFew) {
		t.Errorf("two rows: %v", err)
	}
}

func TestLabels(t *testing.T) {
	t.Parallel()
	cat := &Column{Name: "b", Kind: Category, Values: []float64{0, 2, 2, 0}, Levels: []string{"p", "q", "r"}}
	y, cl, err := Labels(cat, 3)
	if err != nil || len(cl) != 2 || cl[0] != "p" || cl[1] != "r" || y[1] != 1 || y[3] != 0 {
		t.Errorf("category: %v %v %v", y, cl, err)
	}
	few := &Column{Name: "g", Values: []float64{8, 16, 8, 12}}
	y, cl, err = Labels(few, 3)
	if err != nil || len(cl) != 3 || y[0] != 0 || y[1] != 2 || y[3] != 1 {
		t.Errorf("few values: %v %v %v", y, cl, err)
	}
	cont := &Column{Name: "x"}
	for i := range 90 {
		cont.Values = append(cont.Values, float64((i*37)%90))
	}
	y, cl, err = Labels(cont, 3)
	if err != nil || len(cl) != 3 {
		t.Fatalf("continuous: %v %v", cl, err)
	}
	counts := make([]int, 3)
	for i, v := range cont.Values {
		counts[y[i]]++
		if want := int(v) / 30; y[i] != want {
			t.Errorf("value %v in class %d, want %d", v, y[i], want)
		}
	}
	if counts[0] != 30 || counts[1] != 30 || counts[2] != 30 {
		t.Errorf("quantile classes %v, want 30 each", counts)
	}
	one := &Column{Name: "k", Kind: Bool, Values: []float64{1, 1}, Levels: []string{"false", "true"}}
	if _, _, err := Labels(one, 3); !errors.Is(err, ErrTooFew) {
		t.Errorf("one class: %v", err)
	}
}
