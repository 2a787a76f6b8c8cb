package learn

import (
	"math"
	"testing"
)

func TestTrainLocalDeltaAndDeterminism(t *testing.T) {
	a := Arch{Kind: "mlp", Dim: 3, Hidden: 5, Classes: 2}
	data := blobs(50, 3, 2, testRand(3))
	run := func() (Model, []float64, []float64) {
		m, _ := NewModel(a, testRand(4))
		start := append([]float64(nil), m.Params()...)
		d, err := TrainLocal(m, data, LocalConfig{Steps: 7, Batch: 8}, &SGD{LR: 0.1, Momentum: 0.5}, testRand(5))
		if err != nil {
			t.Fatal(err)
		}
		return m, start, d
	}
	m1, start, d1 := run()
	_, _, d2 := run()
	for i := range d1 {
		if d1[i] != d2[i] {
			t.Fatalf("same seeds, different delta at %d: %v vs %v", i, d1[i], d2[i])
		}
		if got := start[i] + d1[i]; math.Abs(got-m1.Params()[i]) > 1e-12 {
			t.Fatalf("delta %d: start+delta=%v, params=%v", i, got, m1.Params()[i])
		}
	}
}

func TestSGDStep(t *testing.T) {
	// Worked by hand: θ=1, g=2, wd=0.5 → g'=2.5; v=0.9·0+2.5=2.5; θ=1−0.1·2.5=0.75.
	// Second step with g=2: g'=2+0.375=2.375; v=0.9·2.5+2.375=4.625; θ=0.75−0.4625=0.2875.
	o := &SGD{LR: 0.1, Momentum: 0.9, WeightDecay: 0.5}
	p := []float64{1}
	o.Step(p, []float64{2})
	if math.Abs(p[0]-0.75) > 1e-15 {
		t.Fatalf("after step 1 θ=%v, want 0.75", p[0])
	}
	o.Step(p, []float64{2})
	if math.Abs(p[0]-0.2875) > 1e-15 {
		t.Fatalf("after step 2 θ=%v, want 0.2875", p[0])
	}
}

func TestTrainLocalErrors(t *testing.T) {
	m, _ := NewModel(Arch{Kind: "softmax", Dim: 2, Classes: 2}, testRand(1))
	if _, err := TrainLocal(m, &Dataset{Dim: 2, Classes: 2}, LocalConfig{Epochs: 1}, &SGD{LR: 1}, testRand(1)); err != ErrNoData {
		t.Errorf("empty data: err=%v, want ErrNoData", err)
	}
	d := &Dataset{X: []float64{1e308, 1e308, -1e308, -1e308}, Y: []int{0, 1}, Dim: 2, Classes: 2}
	if _, err := TrainLocal(m, d, LocalConfig{Steps: 20}, &SGD{LR: 1e300}, testRand(1)); err != ErrDiverged {
		t.Errorf("huge lr: err=%v, want ErrDiverged", err)
	}
}
