package vec

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestNetworkSortsZeroOne checks every 0–1 input for n ≤ 14: by the 0–1
// principle a comparator network that sorts all of them sorts everything.
func TestNetworkSortsZeroOne(t *testing.T) {
	for n := 1; n <= 14; n++ {
		w := SortingNetwork(n)
		for bits := 0; bits < 1<<n; bits++ {
			buf := make([]float64, 4*n)
			for i := 0; i < n; i++ {
				buf[4*i] = float64(bits >> i & 1)
			}
			w.Sort4Generic(buf)
			for i := 1; i < n; i++ {
				if buf[4*i] < buf[4*(i-1)] {
					t.Fatalf("n=%d input %b not sorted", n, bits)
				}
			}
		}
	}
}

func TestNetworkSortsRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 22))
	for trial := 0; trial < 300; trial++ {
		n := 1 + r.IntN(260)
		w := SortingNetwork(n)
		buf := make([]float64, 4*n)
		for i := range buf {
			buf[i] = r.NormFloat64()
			if trial%3 == 0 {
				buf[i] = float64(r.IntN(4))
			}
			if trial%5 == 0 && i%7 == 0 {
				buf[i] = math.Inf(1 - 2*(i%2))
			}
		}
		cols := make([][]float64, 4)
		for l := range cols {
			for i := 0; i < n; i++ {
				cols[l] = append(cols[l], buf[4*i+l])
			}
			slices.Sort(cols[l])
		}
		gen := slices.Clone(buf)
		w.Sort4(buf)
		w.Sort4Generic(gen)
		for l := range cols {
			for i := 0; i < n; i++ {
				if buf[4*i+l] != cols[l][i] || gen[4*i+l] != cols[l][i] {
					t.Fatalf("n=%d column %d row %d: %v / %v, want %v", n, l, i, buf[4*i+l], gen[4*i+l], cols[l][i])
				}
			}
		}
	}
}

func BenchmarkSort4x100(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 4))
	w := SortingNetwork(100)
	src := randVec(r, 400)
	buf := make([]float64, 400)
	for b.Loop() {
		copy(buf, src)
		w.Sort4(buf)
	}
	b.ReportMetric(float64(len(w.Pairs)), "comparators")
}

func BenchmarkSort4x50(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 5))
	w := SortingNetwork(50)
	src := randVec(r, 200)
	buf := make([]float64, 200)
	for b.Loop() {
		copy(buf, src)
		w.Sort4(buf)
	}
	b.ReportMetric(float64(len(w.Pairs)), "comparators")
}
