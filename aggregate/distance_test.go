package aggregate

import (
	"math"
	"runtime"
	"slices"
	"testing"
)

func naiveSqDist(a, b []float64) float64 {
	var s float64
	for k := range a {
		t := a[k] - b[k]
		s += t * t
	}
	return s
}

func TestPairwiseSqDistMatchesNaive(t *testing.T) {
	r := seeded(21)
	for _, tc := range []struct{ n, d int }{
		{1, 5}, {2, 1}, {3, 3}, {4, 7}, {5, 17}, {7, 64}, {12, 33}, {13, 37}, {16, 100},
		{23, 1031}, {40, 9}, {9, 3*chunkLen(9) + 5}, {31, 2*chunkLen(31) + 1},
	} {
		x := gaussians(r, tc.n, tc.d)
		// Shift everything far from the origin: cancellation in the Gram
		// form must be caught and repaired.
		if tc.n%2 == 1 {
			for _, v := range x {
				for k := range v {
					v[k] = 1e3 + 1e-3*v[k]
				}
			}
		}
		got := pairwiseSqDist(x)
		for i := 0; i < tc.n; i++ {
			for j := 0; j < tc.n; j++ {
				want := naiveSqDist(x[i], x[j])
				g := got[i*tc.n+j]
				if math.Abs(g-want) > 1e-9*want+1e-300 {
					t.Fatalf("n=%d d=%d: dist(%d,%d) = %.17g, want %.17g", tc.n, tc.d, i, j, g, want)
				}
			}
		}
	}
}

func TestPairwiseSqDistExactDuplicates(t *testing.T) {
	r := seeded(22)
	x := gaussians(r, 6, 301)
	x[3] = x[1]
	x[5] = slices.Clone(x[1])
	got := pairwiseSqDist(x)
	for _, p := range [][2]int{{1, 3}, {1, 5}, {3, 5}, {3, 1}} {
		if v := got[p[0]*6+p[1]]; v != 0 {
			t.Errorf("duplicates %v at distance %g, want exactly 0", p, v)
		}
	}
}

func TestPairwiseSqDistIndependentOfGOMAXPROCS(t *testing.T) {
	r := seeded(23)
	x := gaussians(r, 11, 5*chunkLen(11)+3)
	prev := runtime.GOMAXPROCS(1)
	one := pairwiseSqDist(x)
	runtime.GOMAXPROCS(4)
	four := pairwiseSqDist(x)
	runtime.GOMAXPROCS(prev)
	if !slices.Equal(one, four) {
		t.Fatal("distances differ between GOMAXPROCS 1 and 4")
	}
}

func TestGramTilesCoverUpperTriangleOnce(t *testing.T) {
	for n := 1; n < 30; n++ {
		count := make([]int, n*n)
		for _, tile := range gramTiles(n) {
			for r := 0; r < 3; r++ {
				for q := 0; q < 4; q++ {
					i, j := tile.r0+r, tile.c0+q
					if i < n && j < n && j >= i {
						count[i*n+j]++
					}
				}
			}
		}
		for i := 0; i < n; i++ {
			for j := i; j < n; j++ {
				if count[i*n+j] != 1 {
					t.Fatalf("n=%d: (%d,%d) covered %d times", n, i, j, count[i*n+j])
				}
			}
		}
	}
}
