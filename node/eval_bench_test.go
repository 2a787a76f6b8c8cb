package node

import (
	"testing"

	"github.com/mfn/mfn/learn"
)

// benchData is n random rows of dim features in classes classes.
func benchData(n, dim, classes int) *learn.Dataset {
	rng := newRand(42, 0)
	d := &learn.Dataset{Dim: dim, Classes: classes, X: make([]float64, n*dim), Y: make([]int, n)}
	for i := range d.X {
		d.X[i] = rng.NormFloat64()
	}
	for i := range d.Y {
		d.Y[i] = rng.IntN(classes)
	}
	return d
}

// The cost of the signed round metrics next to the training they
// describe: measure (train loss over the training split, accuracy over
// the held-out split) against one local epoch, on 2,000 MNIST-shaped rows
// with an MLP of 128 hidden units (docs/BENCHMARKS.md).
func BenchmarkRoundMetrics(b *testing.B) {
	arch := learn.Arch{Kind: "mlp", Dim: 784, Hidden: 128, Classes: 10}
	train, hold := benchData(2000, 784, 10), benchData(500, 784, 10)
	b.Run("train-epoch", func(b *testing.B) {
		for b.Loop() {
			m, _ := learn.NewModel(arch, newRand(1, 0))
			opt := &learn.SGD{LR: 0.01}
			if _, err := learn.TrainLocal(m, train, learn.LocalConfig{Epochs: 1, Batch: 32}, opt, newRand(2, 0)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("measure", func(b *testing.B) {
		m, _ := learn.NewModel(arch, newRand(1, 0))
		for b.Loop() {
			if _, ok := measure(m, train, hold); !ok {
				b.Fatal("not measured")
			}
		}
	})
}
