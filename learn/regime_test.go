package learn

import (
	"context"
	"slices"
	"testing"
)

func TestMFNRegimeTaskIsLearnable(t *testing.T) {
	ctx := context.Background()
	train, test, err := MFNRegimeTask(ctx, RegimeTaskConfig{}, 28, testRand(21))
	if err != nil {
		t.Fatal(err)
	}
	if train.Len() != 4*21 || test.Len() != 4*7 || train.Dim != 18 || train.Classes != 4 {
		t.Fatalf("train %d, test %d, dim %d, classes %d", train.Len(), test.Len(), train.Dim, train.Classes)
	}
	if err := train.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, a := range []Arch{{Kind: "softmax", Dim: 18, Classes: 4}, {Kind: "mlp", Dim: 18, Hidden: 16, Classes: 4}} {
		rng := testRand(22)
		m, _ := NewModel(a, rng)
		if _, err := TrainLocal(m, train, LocalConfig{Epochs: 30, Batch: 16}, &SGD{LR: 0.05, Momentum: 0.9}, rng); err != nil {
			t.Fatal(err)
		}
		acc, _ := Accuracy(m, test)
		if acc < 0.9 {
			t.Errorf("%s: test accuracy %.3f on the regime task, want ≥ 0.9", a.Kind, acc)
		}
		t.Logf("%s: test accuracy %.3f", a.Kind, acc)
	}
	// Determinism: the same rng state gives the same data, for any Workers.
	again, _, err := MFNRegimeTask(ctx, RegimeTaskConfig{Workers: 1}, 28, testRand(21))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(train.X, again.X) || !slices.Equal(train.Y, again.Y) {
		t.Error("same seed, different regime data")
	}
}

func TestMFNSiteDataFollowsProportions(t *testing.T) {
	d, err := MFNSiteData(context.Background(), RegimeTaskConfig{GridSize: 16, Steps: 8}, []float64{0, 3, 0, 1}, 200, testRand(5))
	if err != nil {
		t.Fatal(err)
	}
	c := d.LabelCounts()
	if c[0] != 0 || c[2] != 0 || c[1] < 125 || c[1] > 175 || c[1]+c[3] != 200 {
		t.Errorf("label counts %v for proportions 0:3:0:1", c)
	}
	if _, err := MFNSiteData(context.Background(), RegimeTaskConfig{}, []float64{0, 0, 0, 0}, 5, testRand(5)); err == nil {
		t.Error("all-zero proportions accepted")
	}
}
