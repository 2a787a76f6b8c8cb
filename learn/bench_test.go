package learn

import "testing"

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
