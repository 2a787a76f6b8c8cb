package learn

import (
	"math"
	"testing"
)

func naiveNN(m, n, k int, a, b []float64) []float64 {
	c := make([]float64, m*n)
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s float64
			for l := 0; l < k; l++ {
				s += a[i*k+l] * b[l*n+j]
			}
			c[i*n+j] = s
		}
	}
	return c
}

func TestMatKernelsMatchNaive(t *testing.T) {
	rng := testRand(12)
	randv := func(n int) []float64 {
		v := make([]float64, n)
		for i := range v {
			v[i] = rng.NormFloat64()
		}
		return v
	}
	for _, s := range [][3]int{{8, 576, 25}, {16, 64, 200}, {4, 8, 1}, {4, 13, 3}, {3, 9, 5}, {12, 24, 7}, {200, 64, 16}} {
		m, n, k := s[0], s[1], s[2]
		a, b := randv(m*k), randv(k*n)
		want := naiveNN(m, n, k, a, b)
		got := make([]float64, m*n)
		for i := range got {
			got[i] = math.NaN() // every entry must be written
		}
		matNN(m, n, k, a, b, got)
		for i := range want {
			if math.Abs(got[i]-want[i]) > 1e-12*(1+math.Abs(want[i]))*float64(k) {
				t.Fatalf("matNN %v: entry %d = %v, want %v", s, i, got[i], want[i])
			}
		}
		// matNT with b stored transposed (n×k) must agree too.
		bt := make([]float64, n*k)
		for l := 0; l < k; l++ {
			for j := 0; j < n; j++ {
				bt[j*k+l] = b[l*n+j]
			}
		}
		for i := range got {
			got[i] = math.NaN()
		}
		matNT(m, n, k, a, bt, got)
		for i := range want {
			if math.Abs(got[i]-want[i]) > 1e-12*(1+math.Abs(want[i]))*float64(k) {
				t.Fatalf("matNT %v: entry %d = %v, want %v", s, i, got[i], want[i])
			}
		}
	}
}
