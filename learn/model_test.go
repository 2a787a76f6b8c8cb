package learn

import (
	"math"
	"math/rand/v2"
	"testing"
)

func testRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0x5eed)) }

// blobs returns a linearly separable problem: class k is a Gaussian blob of
// standard deviation 0.3 around a random centre at distance ~3.
func blobs(n, dim, classes int, rng *rand.Rand) *Dataset {
	centres := make([]float64, classes*dim)
	for i := range centres {
		centres[i] = 3 * rng.NormFloat64()
	}
	d := &Dataset{X: make([]float64, n*dim), Y: make([]int, n), Dim: dim, Classes: classes}
	for i := 0; i < n; i++ {
		k := i % classes
		d.Y[i] = k
		for j := 0; j < dim; j++ {
			d.X[i*dim+j] = centres[k*dim+j] + 0.3*rng.NormFloat64()
		}
	}
	return d
}

func TestGradientMatchesFiniteDifferences(t *testing.T) {
	for _, a := range []Arch{
		{Kind: "softmax", Dim: 5, Classes: 3},
		{Kind: "mlp", Dim: 4, Hidden: 6, Classes: 3},
	} {
		t.Run(a.Kind, func(t *testing.T) {
			t.Parallel()
			rng := testRand(1)
			m, err := NewModel(a, rng)
			if err != nil {
				t.Fatal(err)
			}
			p := m.Params()
			if len(p) != a.NumParams() {
				t.Fatalf("len(Params)=%d, NumParams=%d", len(p), a.NumParams())
			}
			for i := range p { // random point, away from the all-zero start
				p[i] = 0.5 * rng.NormFloat64()
			}
			d := blobs(7, a.Dim, a.Classes, rng)
			b := Batch{X: d.X, Y: d.Y}
			grad := make([]float64, len(p))
			m.Grad(b, grad)
			scratch := make([]float64, len(p))
			const h = 1e-5
			for i := range p {
				orig := p[i]
				p[i] = orig + h
				lp := m.Grad(b, scratch)
				p[i] = orig - h
				lm := m.Grad(b, scratch)
				p[i] = orig
				num := (lp - lm) / (2 * h)
				if diff := math.Abs(num - grad[i]); diff > 1e-6*(1+math.Abs(num)) {
					t.Errorf("param %d: analytic %.9g, numeric %.9g", i, grad[i], num)
				}
			}
		})
	}
}

func TestTrainingSeparableReachesHighAccuracy(t *testing.T) {
	for _, a := range []Arch{
		{Kind: "softmax", Dim: 8, Classes: 4},
		{Kind: "mlp", Dim: 8, Hidden: 16, Classes: 4},
	} {
		t.Run(a.Kind, func(t *testing.T) {
			t.Parallel()
			rng := testRand(2)
			data := blobs(400, a.Dim, a.Classes, rng)
			train, test := data.Subset(seq(0, 300)), data.Subset(seq(300, 400))
			m, _ := NewModel(a, rng)
			before, _ := Accuracy(m, test)
			opt := &SGD{LR: 0.05, Momentum: 0.9, WeightDecay: 1e-4}
			delta, err := TrainLocal(m, train, LocalConfig{Epochs: 5, Batch: 16}, opt, rng)
			if err != nil {
				t.Fatal(err)
			}
			acc, _ := Accuracy(m, test)
			if acc < 0.97 {
				t.Errorf("accuracy %.3f after training (%.3f before), want ≥ 0.97", acc, before)
			}
			var norm float64
			for _, v := range delta {
				norm += v * v
			}
			if norm == 0 {
				t.Error("zero update delta")
			}
		})
	}
}

func TestArchValidate(t *testing.T) {
	for _, a := range []Arch{
		{Kind: "cnn", Dim: 3, Classes: 2},
		{Kind: "softmax", Dim: 0, Classes: 2},
		{Kind: "mlp", Dim: 3, Classes: 1},
		{Kind: "mlp", Dim: 3, Classes: 2, Hidden: -1},
	} {
		if _, err := NewModel(a, testRand(1)); err == nil {
			t.Errorf("%+v: no error", a)
		}
	}
	if n := (Arch{Kind: "mlp", Dim: 784, Classes: 10}).NumParams(); n != 784*64+64+64*10+10 {
		t.Errorf("MLP 784-64-10 has %d params", n)
	}
	if n := (Arch{Kind: "softmax", Dim: 784, Classes: 10}).NumParams(); n != 7850 {
		t.Errorf("softmax 784→10 has %d params, want 7850", n)
	}
}

func seq(lo, hi int) []int {
	s := make([]int, hi-lo)
	for i := range s {
		s[i] = lo + i
	}
	return s
}
