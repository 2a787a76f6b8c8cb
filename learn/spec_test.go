package learn

import (
	"errors"
	"math"
	"testing"
)

func TestParseArchRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		spec    string
		canon   string
		nparams int
	}{
		{"softmax", "softmax", 10*784 + 10},
		{"mlp", "mlp:64", 784*64 + 64 + 64*10 + 10},
		{"mlp:128", "mlp:128", 784*128 + 128 + 128*10 + 10},
		{"mlp:128,64", "mlp:128,64", 784*128 + 128 + 128*64 + 64 + 64*10 + 10},
		{" mlp:32, 16 ,8", "mlp:32,16,8", 784*32 + 32 + 32*16 + 16 + 16*8 + 8 + 8*10 + 10},
		{"cnn:mnist", "cnn:mnist", 8*25 + 8 + 16*200 + 16 + 10*256 + 10},
	} {
		a, err := ParseArch(tc.spec, 784, 10)
		if err != nil {
			t.Fatalf("%q: %v", tc.spec, err)
		}
		if a.Spec() != tc.canon || a.NumParams() != tc.nparams {
			t.Errorf("%q: spec %q params %d, want %q %d", tc.spec, a.Spec(), a.NumParams(), tc.canon, tc.nparams)
		}
		b, err := ParseArch(a.Spec(), 784, 10)
		if err != nil || b != a {
			t.Errorf("%q: round trip %+v != %+v (%v)", tc.spec, b, a, err)
		}
		m, err := NewModel(a, testRand(1))
		if err != nil || len(m.Params()) != tc.nparams {
			t.Errorf("%q: NewModel: %v", tc.spec, err)
		}
	}
	// The one-hidden-layer MLP keeps the Arch it always had.
	if a, _ := ParseArch("mlp:16", 18, 4); a != (Arch{Kind: "mlp", Dim: 18, Hidden: 16, Classes: 4}) {
		t.Errorf("mlp:16 = %+v", a)
	}
	for _, bad := range []string{"", "softmax:1", "mlp:", "mlp:0", "mlp:1,x", "mlp:1,2,3,4,5,6,7,8,9", "cnn", "cnn:cifar", "rnn"} {
		if _, err := ParseArch(bad, 784, 10); !errors.Is(err, ErrArch) {
			t.Errorf("%q accepted: %v", bad, err)
		}
	}
	if _, err := ParseArch("cnn:mnist", 18, 4); !errors.Is(err, ErrArch) {
		t.Errorf("cnn on 18 inputs: %v", err)
	}
}

// gradCheck compares m's analytic gradient at a random point with central
// differences on the parameters idx.
func gradCheck(t *testing.T, m Model, b Batch, idx []int, tol float64) {
	t.Helper()
	p := m.Params()
	grad := make([]float64, len(p))
	m.Grad(b, grad)
	scratch := make([]float64, len(p))
	const h = 1e-5
	bad := 0
	for _, i := range idx {
		orig := p[i]
		p[i] = orig + h
		lp := m.Grad(b, scratch)
		p[i] = orig - h
		lm := m.Grad(b, scratch)
		p[i] = orig
		num := (lp - lm) / (2 * h)
		if diff := math.Abs(num - grad[i]); diff > tol*(1+math.Abs(num)) {
			bad++
			if bad < 10 {
				t.Errorf("param %d: analytic %.9g, numeric %.9g", i, grad[i], num)
			}
		}
	}
}

func TestDeepMLPAndCNNGradients(t *testing.T) {
	t.Run("mlp:6,5,4", func(t *testing.T) {
		t.Parallel()
		a, _ := ParseArch("mlp:6,5,4", 4, 3)
		rng := testRand(3)
		m, _ := NewModel(a, rng)
		for i := range m.Params() {
			m.Params()[i] = 0.5 * rng.NormFloat64()
		}
		d := blobs(7, 4, 3, rng)
		gradCheck(t, m, Batch{X: d.X, Y: d.Y}, seq(0, a.NumParams()), 1e-6)
	})
	t.Run("cnn:mnist", func(t *testing.T) {
		t.Parallel()
		a, _ := ParseArch("cnn:mnist", 784, 3)
		rng := testRand(4)
		m, _ := NewModel(a, rng)
		x := make([]float64, 2*784)
		for i := range x {
			x[i] = rng.NormFloat64()
		}
		for i, p := range m.Params() {
			m.Params()[i] = p + 0.05*rng.NormFloat64() // non-zero biases too
		}
		// Every bias and a random sample of weights from each block.
		var idx []int
		n := a.NumParams()
		for i := 0; i < n; i++ {
			inBias := (i >= 200 && i < 208) || (i >= 3408 && i < 3424) || i >= n-3
			if inBias || rng.IntN(20) == 0 {
				idx = append(idx, i)
			}
		}
		gradCheck(t, m, Batch{X: x, Y: []int{2, 0}}, idx, 1e-5)
	})
}

func TestCNNLearnsAndPredictsConsistently(t *testing.T) {
	// Two classes of 28×28 images: a bright vertical or horizontal bar
	// at a random position, plus noise.
	rng := testRand(5)
	n := 160
	d := &Dataset{X: make([]float64, n*784), Y: make([]int, n), Dim: 784, Classes: 2}
	for i := 0; i < n; i++ {
		k := i % 2
		d.Y[i] = k
		pos := 4 + rng.IntN(20)
		for y := 0; y < 28; y++ {
			for x := 0; x < 28; x++ {
				v := 0.1 * rng.NormFloat64()
				if (k == 0 && x == pos) || (k == 1 && y == pos) {
					v += 1
				}
				d.X[i*784+y*28+x] = v
			}
		}
	}
	train, test := d.Subset(seq(0, 120)), d.Subset(seq(120, 160))
	a, _ := ParseArch("cnn:mnist", 784, 2)
	m, _ := NewModel(a, rng)
	if _, err := TrainLocal(m, train, LocalConfig{Epochs: 4, Batch: 16}, &SGD{LR: 0.05, Momentum: 0.9}, rng); err != nil {
		t.Fatal(err)
	}
	acc, _ := Accuracy(m, test)
	if acc < 0.95 {
		t.Errorf("accuracy %v on bars", acc)
	}
	// A clone predicts the same, batch by batch or all at once.
	c := m.Clone()
	all := make([]int, test.Len())
	c.Predict(test.X, all)
	one := make([]int, 1)
	for i := range all {
		m.Predict(test.X[i*784:(i+1)*784], one)
		if one[0] != all[i] {
			t.Fatalf("row %d: %d alone, %d in a batch", i, one[0], all[i])
		}
	}
}

func TestFedProxPullsTowardsStart(t *testing.T) {
	rng := testRand(6)
	d := blobs(200, 6, 3, rng)
	a := Arch{Kind: "mlp", Dim: 6, Hidden: 8, Classes: 3}
	norm := func(mu float64) float64 {
		m, _ := NewModel(a, testRand(7))
		delta, err := TrainLocal(m, d, LocalConfig{Epochs: 3, Batch: 10, Prox: mu}, &SGD{LR: 0.05}, testRand(8))
		if err != nil {
			t.Fatal(err)
		}
		var s float64
		for _, v := range delta {
			s += v * v
		}
		return math.Sqrt(s)
	}
	n0, n1, n10 := norm(0), norm(1), norm(10)
	if !(n10 < n1 && n1 < n0) {
		t.Errorf("update norms μ=0 %.4g, μ=1 %.4g, μ=10 %.4g: want decreasing", n0, n1, n10)
	}
	if norm(-1) != n0 {
		t.Error("negative μ changed training")
	}
}

// TestCNNSplitBatchGradient: the two-goroutine path of CNN.Grad gives the
// whole batch's gradient (it is only reordered sums).
func TestCNNSplitBatchGradient(t *testing.T) {
	rng := testRand(9)
	a, _ := ParseArch("cnn:mnist", 784, 10)
	m, _ := NewModel(a, rng)
	rows := 13
	b := Batch{X: make([]float64, rows*784), Y: make([]int, rows)}
	for i := range b.X {
		b.X[i] = rng.NormFloat64()
	}
	for i := range b.Y {
		b.Y[i] = rng.IntN(10)
	}
	split := make([]float64, a.NumParams())
	whole := make([]float64, a.NumParams())
	ls := m.Grad(b, split)
	lw := m.(*CNN).grad(b, rows, whole)
	if math.Abs(ls-lw) > 1e-12*math.Abs(lw) {
		t.Errorf("loss %v split, %v whole", ls, lw)
	}
	for i := range whole {
		if math.Abs(split[i]-whole[i]) > 1e-12*(1+math.Abs(whole[i])) {
			t.Fatalf("param %d: %v split, %v whole", i, split[i], whole[i])
		}
	}
	again := make([]float64, a.NumParams())
	m.Grad(b, again)
	for i := range again {
		if again[i] != split[i] {
			t.Fatal("Grad is not deterministic")
		}
	}
}
