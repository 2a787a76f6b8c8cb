package learn

import (
	"context"
	"testing"
)

// BenchmarkTrainLocal times one client's round on MNIST-shaped data
// (784 inputs, 10 classes): 30 minibatch steps of 32, the --quick setting
// of mfn bench robustness.
func BenchmarkTrainLocal(b *testing.B) {
	data := blobs(2000, 784, 10, testRand(1))
	for _, a := range []Arch{
		{Kind: "softmax", Dim: 784, Classes: 10},
		{Kind: "mlp", Dim: 784, Hidden: 64, Classes: 10},
	} {
		b.Run(a.Kind, func(b *testing.B) {
			m, _ := NewModel(a, testRand(2))
			opt := &SGD{LR: 0.01, Momentum: 0.9, WeightDecay: 1e-4}
			rng := testRand(3)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := TrainLocal(m, data, LocalConfig{Steps: 30, Batch: 32}, opt, rng); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// mnist10k loads the first 10,000 MNIST training images, standardised, or
// skips b when the GoMNIST module is not in the module cache.
func mnist10k(b *testing.B) *Dataset {
	dir, err := LocateMNIST(context.Background(), MNISTOptions{NoFetch: true})
	if err != nil {
		b.Skip(err)
	}
	train, _, err := LoadImages(dir, 10000, 1)
	if err != nil {
		b.Skip(err)
	}
	Standardize(train)
	return train
}

// BenchmarkEpochMNIST10k times one local epoch (313 minibatches of 32,
// SGD with momentum 0.9 and weight decay 1e-4) on 10,000 MNIST images:
// the issue-11 comparison with PyTorch (docs/BENCHMARKS.md). It also
// reports the process CPU seconds per epoch.
func BenchmarkEpochMNIST10k(b *testing.B) {
	data := mnist10k(b)
	for _, spec := range []string{"mlp:128", "cnn:mnist"} {
		b.Run(spec, func(b *testing.B) {
			a, err := ParseArch(spec, 784, 10)
			if err != nil {
				b.Fatal(err)
			}
			m, _ := NewModel(a, testRand(2))
			opt := &SGD{LR: 0.01, Momentum: 0.9, WeightDecay: 1e-4}
			rng := testRand(3)
			b.ReportAllocs()
			cpu0 := processCPUNanos()
			for b.Loop() {
				if _, err := TrainLocal(m, data, LocalConfig{Epochs: 1, Batch: 32}, opt, rng); err != nil {
					b.Fatal(err)
				}
			}
			// CPU seconds per epoch (both threads): on a machine shared
			// with other jobs wall time measures the queue, this the work.
			if cpu0 >= 0 {
				b.ReportMetric(float64(processCPUNanos()-cpu0)/1e9/float64(b.N), "cpu-s/op")
			}
		})
	}
}
