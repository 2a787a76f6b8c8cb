package learn

import (
	"fmt"
	"math"
)

// Dataset is a labelled sample set held in memory: X is row-major
// Len()×Dim, Y[i] ∈ [0, Classes) the label of row i.
type Dataset struct {
	X       []float64
	Y       []int
	Dim     int
	Classes int
}

// Len returns the number of samples.
func (d *Dataset) Len() int { return len(d.Y) }

// Validate checks the shapes and label range; the error names the first
// inconsistency.
func (d *Dataset) Validate() error {
	switch {
	case d.Dim < 1:
		return fmt.Errorf("learn: dataset Dim %d < 1", d.Dim)
	case d.Classes < 2:
		return fmt.Errorf("learn: dataset Classes %d < 2", d.Classes)
	case len(d.X) != len(d.Y)*d.Dim:
		return fmt.Errorf("learn: dataset len(X)=%d, want %d rows × Dim %d", len(d.X), len(d.Y), d.Dim)
	}
	for i, y := range d.Y {
		if y < 0 || y >= d.Classes {
			return fmt.Errorf("learn: dataset label %d of row %d out of [0,%d)", y, i, d.Classes)
		}
	}
	return nil
}

// Subset returns a new dataset holding copies of the rows idx, in that
// order.
func (d *Dataset) Subset(idx []int) *Dataset {
	s := &Dataset{X: make([]float64, len(idx)*d.Dim), Y: make([]int, len(idx)), Dim: d.Dim, Classes: d.Classes}
	for k, i := range idx {
		copy(s.X[k*d.Dim:(k+1)*d.Dim], d.X[i*d.Dim:(i+1)*d.Dim])
		s.Y[k] = d.Y[i]
	}
	return s
}

// Head returns a dataset sharing the first n rows of d (all of d when n is
// not smaller than Len).
func (d *Dataset) Head(n int) *Dataset {
	if n >= d.Len() || n < 0 {
		return d
	}
	return &Dataset{X: d.X[:n*d.Dim], Y: d.Y[:n], Dim: d.Dim, Classes: d.Classes}
}

// WithLabels returns a dataset sharing d's inputs with the labels mapped
// through f (used for label-flipping clients).
func (d *Dataset) WithLabels(f func(y int) int) *Dataset {
	y := make([]int, len(d.Y))
	for i, v := range d.Y {
		y[i] = f(v)
	}
	return &Dataset{X: d.X, Y: y, Dim: d.Dim, Classes: d.Classes}
}

// Standardizer maps each input feature to zero mean and unit variance using
// statistics of a reference (training) split.
type Standardizer struct {
	Mean, Std []float64
}

// FitStandardizer computes per-feature mean and standard deviation of d.
// A feature with standard deviation below 1e-8 (constant pixels at MNIST's
// border) gets Std 1, so it maps to zero instead of dividing by zero.
func FitStandardizer(d *Dataset) Standardizer {
	s := Standardizer{Mean: make([]float64, d.Dim), Std: make([]float64, d.Dim)}
	n := d.Len()
	if n == 0 {
		for j := range s.Std {
			s.Std[j] = 1
		}
		return s
	}
	for i := 0; i < n; i++ {
		for j, v := range d.X[i*d.Dim : (i+1)*d.Dim] {
			s.Mean[j] += v
		}
	}
	for j := range s.Mean {
		s.Mean[j] /= float64(n)
	}
	for i := 0; i < n; i++ {
		for j, v := range d.X[i*d.Dim : (i+1)*d.Dim] {
			e := v - s.Mean[j]
			s.Std[j] += e * e
		}
	}
	for j := range s.Std {
		sd := math.Sqrt(s.Std[j] / float64(n))
		if sd < 1e-8 {
			sd = 1
		}
		s.Std[j] = sd
	}
	return s
}

// Apply standardises d's inputs in place. It panics if d.Dim differs from
// the fitted dimension (a programming error).
func (s Standardizer) Apply(d *Dataset) {
	if d.Dim != len(s.Mean) {
		panic(fmt.Sprintf("learn: Standardizer for dim %d applied to dim %d", len(s.Mean), d.Dim))
	}
	for i := 0; i < d.Len(); i++ {
		row := d.X[i*d.Dim : (i+1)*d.Dim]
		for j := range row {
			row[j] = (row[j] - s.Mean[j]) / s.Std[j]
		}
	}
}

// Standardize fits a Standardizer on train and applies it to train and to
// every other split given.
func Standardize(train *Dataset, others ...*Dataset) Standardizer {
	s := FitStandardizer(train)
	s.Apply(train)
	for _, o := range others {
		s.Apply(o)
	}
	return s
}

// LabelCounts returns how many samples of each class d holds.
func (d *Dataset) LabelCounts() []int {
	c := make([]int, d.Classes)
	for _, y := range d.Y {
		c[y]++
	}
	return c
}
