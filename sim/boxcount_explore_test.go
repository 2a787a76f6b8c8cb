package sim

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestBoxCountsKnown(t *testing.T) {
	// 6×6 mask with active cells at (0,0) and (5,5).
	n := 6
	mask := make([]bool, n*n)
	mask[0], mask[35] = true, true
	got := BoxCounts(mask, n, []int{1, 2, 4, 6, 7, 0})
	// Edge 4 tiles only the top-left 4×4, which holds (0,0) alone; edges 7
	// and 0 cover nothing.
	want := []int{2, 2, 1, 1, 0, 0}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("BoxCounts = %v, want %v", got, want)
		}
	}
}

// TestBoxCountsAgreeWithDimension: fitting the non-zero counts gives the
// dimension BoxDimension reports, bit for bit.
func TestBoxCountsAgreeWithDimension(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := range 50 {
		n := 8 + rng.IntN(60)
		mask := make([]bool, n*n)
		p := rng.Float64()
		for i := range mask {
			mask[i] = rng.Float64() < p*p
		}
		sizes, _ := BoxSizes(n, DefaultMinBox, DefaultNumScales)
		counts := BoxCounts(mask, n, sizes)
		var xs, ys []float64
		for i, c := range counts {
			if c > 0 {
				xs = append(xs, math.Log(1.0/float64(sizes[i])))
				ys = append(ys, math.Log(float64(c)))
			}
		}
		wantD, wantR2 := BoxDimension(mask, n, sizes)
		if len(xs) < 2 {
			if wantD != 0 || wantR2 != 0 {
				t.Fatalf("trial %d: fewer than 2 points but D %v", trial, wantD)
			}
			continue
		}
		d, r2 := fitLine(xs, ys)
		if d != wantD || r2 != wantR2 {
			t.Fatalf("trial %d: counts %v fit to %v/%v, BoxDimension %v/%v", trial, counts, d, r2, wantD, wantR2)
		}
	}
}
