package learn

import (
	"math"
	"slices"
	"testing"
)

func TestStandardize(t *testing.T) {
	// Feature 0: 1, 3 → mean 2, std 1. Feature 1 is constant → std 1, maps to 0.
	train := &Dataset{X: []float64{1, 5, 3, 5}, Y: []int{0, 1}, Dim: 2, Classes: 2}
	test := &Dataset{X: []float64{4, 7}, Y: []int{1}, Dim: 2, Classes: 2}
	s := Standardize(train, test)
	if !slices.Equal(s.Mean, []float64{2, 5}) || !slices.Equal(s.Std, []float64{1, 1}) {
		t.Fatalf("mean %v std %v", s.Mean, s.Std)
	}
	if !slices.Equal(train.X, []float64{-1, 0, 1, 0}) || !slices.Equal(test.X, []float64{2, 2}) {
		t.Fatalf("train %v test %v", train.X, test.X)
	}
	// A random set has zero mean and unit variance afterwards.
	d := blobs(500, 4, 2, testRand(9))
	Standardize(d)
	for j := 0; j < 4; j++ {
		var m, v float64
		for i := 0; i < d.Len(); i++ {
			m += d.X[i*4+j]
		}
		m /= float64(d.Len())
		for i := 0; i < d.Len(); i++ {
			e := d.X[i*4+j] - m
			v += e * e
		}
		v /= float64(d.Len())
		if math.Abs(m) > 1e-12 || math.Abs(v-1) > 1e-12 {
			t.Errorf("feature %d: mean %v variance %v", j, m, v)
		}
	}
}

func TestDatasetViews(t *testing.T) {
	d := &Dataset{X: []float64{0, 1, 10, 11, 20, 21}, Y: []int{0, 1, 2}, Dim: 2, Classes: 3}
	if err := d.Validate(); err != nil {
		t.Fatal(err)
	}
	s := d.Subset([]int{2, 0})
	if !slices.Equal(s.X, []float64{20, 21, 0, 1}) || !slices.Equal(s.Y, []int{2, 0}) {
		t.Errorf("Subset: %+v", s)
	}
	s.X[0] = -1
	if d.X[4] != 20 {
		t.Error("Subset shares memory with its source")
	}
	if h := d.Head(2); h.Len() != 2 || h.X[3] != 11 {
		t.Errorf("Head(2): %+v", h)
	}
	f := d.WithLabels(func(y int) int { return 2 - y })
	if !slices.Equal(f.Y, []int{2, 1, 0}) || !slices.Equal(d.Y, []int{0, 1, 2}) {
		t.Errorf("WithLabels: %v (source %v)", f.Y, d.Y)
	}
	if !slices.Equal(d.LabelCounts(), []int{1, 1, 1}) {
		t.Errorf("LabelCounts %v", d.LabelCounts())
	}
	for name, bad := range map[string]*Dataset{
		"label":   {X: []float64{0}, Y: []int{3}, Dim: 1, Classes: 3},
		"shape":   {X: []float64{0, 1, 2}, Y: []int{0}, Dim: 2, Classes: 2},
		"dim":     {Dim: 0, Classes: 2},
		"classes": {Dim: 1, Classes: 1},
	} {
		if bad.Validate() == nil {
			t.Errorf("%s: invalid dataset accepted", name)
		}
	}
}
