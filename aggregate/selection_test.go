package aggregate

import (
	"math"
	"slices"
	"testing"
)

func TestSelectKAgainstSort(t *testing.T) {
	r := seeded(31)
	for trial := 0; trial < 2000; trial++ {
		n := 1 + r.IntN(120)
		a := make([]float64, n)
		for i := range a {
			switch trial % 3 {
			case 0:
				a[i] = r.NormFloat64()
			case 1:
				a[i] = float64(r.IntN(4)) // many ties
			default:
				a[i] = 0 // all equal
			}
		}
		sorted := slices.Clone(a)
		slices.Sort(sorted)
		k := r.IntN(n)
		b := slices.Clone(a)
		selectK(b, k, make([]float64, n))
		if b[k] != sorted[k] {
			t.Fatalf("n=%d k=%d: selectK gives %v, sorted %v", n, k, b[k], sorted[k])
		}
		for i := range b {
			if (i < k && b[i] > b[k]) || (i > k && b[i] < b[k]) {
				t.Fatalf("n=%d k=%d: not partitioned at %d", n, k, i)
			}
		}
		c := slices.Clone(b)
		slices.Sort(c)
		if !slices.Equal(c, sorted) {
			t.Fatal("selectK lost or duplicated values")
		}
	}
}

func TestTrimmedMeanAgainstSort(t *testing.T) {
	r := seeded(34)
	for trial := 0; trial < 3000; trial++ {
		n := 1 + r.IntN(120)
		f := r.IntN((n + 1) / 2)
		a := make([]float64, n)
		for i := range a {
			switch trial % 3 {
			case 0:
				a[i] = r.NormFloat64()
			case 1:
				a[i] = float64(r.IntN(3))
			}
		}
		sorted := slices.Clone(a)
		slices.Sort(sorted)
		var want float64
		for _, v := range sorted[f : n-f] {
			want += v
		}
		want /= float64(n - 2*f)
		got := trimmedMeanOf(a, nil, f)
		if math.Abs(got-want) > 1e-12 {
			t.Fatalf("n=%d f=%d: %v, want %v", n, f, got, want)
		}
	}
}

func BenchmarkSelectMedian100(b *testing.B) {
	r := seeded(32)
	cols := make([][]float64, 1024)
	for i := range cols {
		cols[i] = make([]float64, 100)
		for k := range cols[i] {
			cols[i][k] = r.NormFloat64()
		}
	}
	work := make([]float64, 100)
	tmp := make([]float64, 100)
	start := cpuTime()
	i := 0
	for b.Loop() {
		copy(work, cols[i%len(cols)])
		medianOf(work, tmp)
		i++
	}
	reportCPU(b, start)
}

func BenchmarkSelectTrimmed100(b *testing.B) {
	r := seeded(33)
	cols := make([][]float64, 1024)
	for i := range cols {
		cols[i] = make([]float64, 100)
		for k := range cols[i] {
			cols[i][k] = r.NormFloat64()
		}
	}
	work := make([]float64, 100)
	tmp := make([]float64, 100)
	start := cpuTime()
	i := 0
	for b.Loop() {
		copy(work, cols[i%len(cols)])
		trimmedMeanOf(work, tmp, 20)
		i++
	}
	reportCPU(b, start)
}

// BenchmarkSelectTrimmedTies times columns with only three distinct values
// (and all-zero ones), which must stay about as fast as distinct values.
func BenchmarkSelectTrimmedTies(b *testing.B) {
	r := seeded(35)
	cols := make([][]float64, 1024)
	for i := range cols {
		cols[i] = make([]float64, 100)
		if i%2 == 0 {
			for k := range cols[i] {
				cols[i][k] = float64(r.IntN(3))
			}
		}
	}
	work := make([]float64, 100)
	tmp := make([]float64, 100)
	start := cpuTime()
	i := 0
	for b.Loop() {
		copy(work, cols[i%len(cols)])
		trimmedMeanOf(work, tmp, 20)
		i++
	}
	reportCPU(b, start)
}
