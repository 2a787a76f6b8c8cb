package privacy

import (
	"testing"
)

// BenchmarkEpsilon: one Epsilon call over the 151 orders.
func BenchmarkEpsilon(b *testing.B) {
	for _, c := range []struct {
		name string
		q, z float64
	}{
		{"mnist_q0.0043_z1.1", mnistQ, 1.1},
		{"fl_q0.05_z1.0", 0.05, 1},
		{"slow_q0.5_z0.5", 0.5, 0.5},
		{"highz_q0.5_z100", 0.5, 100},
	} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				if _, _, err := Epsilon(c.q, c.z, mnistSteps, 1e-5); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkNoiseMultiplier: the bisection behind `mfn privacy noise`.
func BenchmarkNoiseMultiplier(b *testing.B) {
	for b.Loop() {
		if _, err := NoiseMultiplier(8, 0.04, 2250, 1e-5); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGaussianAddTo: exact noise for a 10,000-coordinate update,
// reported per coordinate, from the seeded ChaCha8 stream and from
// crypto/rand.
func BenchmarkGaussianAddTo(b *testing.B) {
	const d = 10000
	g, err := NewGaussian(1.1)
	if err != nil {
		b.Fatal(err)
	}
	for _, s := range []struct {
		name string
		src  Source
	}{{"chacha8", NewSeededSource(seed(1))}, {"crypto", NewCryptoSource()}} {
		b.Run(s.name, func(b *testing.B) {
			v := make([]float64, d)
			for b.Loop() {
				if err := g.AddTo(v, s.src); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/d, "ns/coord")
		})
	}
}

// BenchmarkLocalPrivatize: clip, round and noise one 10,000-coordinate update.
func BenchmarkLocalPrivatize(b *testing.B) {
	const d = 10000
	l, err := NewLocal(1, 1.1)
	if err != nil {
		b.Fatal(err)
	}
	src := NewSeededSource(seed(2))
	v := make([]float64, d)
	for b.Loop() {
		for i := range v {
			v[i] = float64(i%7) - 3
		}
		if _, _, err := l.Privatize(v, src); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/d, "ns/coord")
}

// BenchmarkAccountantEpsilon: an accountant read at q = 0.05 (the RDP
// vector comes from the cache after the first read).
func BenchmarkAccountantEpsilon(b *testing.B) {
	var a Accountant
	if err := a.Compose(0.05, 1, 1000); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, _, err := a.Epsilon(1e-5); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSample: one round's sample of 1,000 enrolled nodes at
// q = 0.05 (the leader and every member's Apply compute it once per
// round).
func BenchmarkSample(b *testing.B) {
	ids := nodeIDs(1000)
	seed := SampleSeed(seqSecret(), "job", 1, [32]byte{})
	for b.Loop() {
		if len(Sample(seed, ids, 0.05)) == 0 {
			b.Fatal("empty sample")
		}
	}
}
