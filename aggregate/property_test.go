package aggregate

import (
	"math"
	"slices"
	"testing"

	"pgregory.net/rapid"
)

// byzSetup draws n inputs of length d of which the first n−f are honest
// values in [−10, 10] and the last f arbitrary (possibly huge).
func byzSetup(t *rapid.T, minN func(f int) int) (x [][]float64, f, d int) {
	f = rapid.IntRange(0, 4).Draw(t, "f")
	n := rapid.IntRange(minN(f), minN(f)+6).Draw(t, "n")
	d = rapid.IntRange(1, 9).Draw(t, "d")
	honest := rapid.Float64Range(-10, 10)
	byz := rapid.Float64Range(-1e9, 1e9)
	x = make([][]float64, n)
	for i := range x {
		x[i] = make([]float64, d)
		g := honest
		if i >= n-f {
			g = byz
		}
		for k := range x[i] {
			x[i][k] = g.Draw(t, "v")
		}
	}
	return x, f, d
}

// honestRange returns the coordinate-wise min and max of the honest inputs.
func honestRange(x [][]float64, f int) (lo, hi []float64) {
	h := x[:len(x)-f]
	lo, hi = slices.Clone(h[0]), slices.Clone(h[0])
	for _, v := range h {
		for k := range v {
			lo[k] = math.Min(lo[k], v[k])
			hi[k] = math.Max(hi[k], v[k])
		}
	}
	return lo, hi
}

func TestPropertyCoordinateWiseWithinHonestRange(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		x, f, d := byzSetup(t, func(f int) int { return 2*f + 1 })
		lo, hi := honestRange(x, f)
		for _, r := range []Rule{must(NewMedian(f)), must(NewTrimmedMean(f))} {
			out, _, err := r.Aggregate(x, nil)
			if err != nil {
				t.Fatalf("%s: %v", r.Name(), err)
			}
			for k := 0; k < d; k++ {
				if out[k] < lo[k]-1e-12 || out[k] > hi[k]+1e-12 {
					t.Fatalf("%s coordinate %d = %v outside honest [%v, %v]", r.Name(), k, out[k], lo[k], hi[k])
				}
			}
		}
	})
}

func TestPropertyKrumReturnsAnInput(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		x, f, _ := byzSetup(t, func(f int) int { return 2*f + 3 })
		out, rep, err := must(NewKrum(f)).Aggregate(x, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Used) != 1 || !slices.Equal(out, x[rep.Used[0]]) {
			t.Fatalf("krum output is not input %v", rep.Used)
		}
		// Its score is the minimum, computed here from scratch.
		n := len(x)
		best := math.Inf(1)
		for i := range x {
			var ds []float64
			for j := range x {
				if j != i {
					ds = append(ds, naiveSqDist(x[i], x[j]))
				}
			}
			slices.Sort(ds)
			var s float64
			for _, v := range ds[:n-f-2] {
				s += v
			}
			best = math.Min(best, s)
		}
		if got := rep.Scores[rep.Used[0]]; math.Abs(got-best) > 1e-9*math.Max(1, best) {
			t.Fatalf("chosen score %v, minimum %v", got, best)
		}
	})
}

func TestPropertyMeansStayInBoundingBox(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		x, f, d := byzSetup(t, func(f int) int { return 4*f + 3 })
		lo, hi := honestRange(x, 0) // all inputs
		for _, r := range []Rule{must(NewMultiKrum(f, 0)), must(NewBulyan(f)), must(NewGeometricMedian(0, 0, 0)), FedAvg{}} {
			out, _, err := r.Aggregate(x, nil)
			if err != nil {
				t.Fatalf("%s: %v", r.Name(), err)
			}
			for k := 0; k < d; k++ {
				tol := 1e-9 * math.Max(math.Abs(lo[k]), math.Abs(hi[k]))
				if out[k] < lo[k]-tol || out[k] > hi[k]+tol {
					t.Fatalf("%s coordinate %d = %v outside [%v, %v]", r.Name(), k, out[k], lo[k], hi[k])
				}
			}
		}
	})
}

func TestPropertyDistanceEngine(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(1, 20).Draw(t, "n")
		d := rapid.IntRange(1, 700).Draw(t, "d")
		scale := rapid.Float64Range(1e-3, 1e3).Draw(t, "scale")
		r := seeded(rapid.Uint64().Draw(t, "seed"))
		x := gaussians(r, n, d)
		for _, v := range x {
			for k := range v {
				v[k] *= scale
			}
		}
		got := pairwiseSqDist(x)
		for i := 0; i < n; i++ {
			for j := 0; j < n; j++ {
				want := naiveSqDist(x[i], x[j])
				if math.Abs(got[i*n+j]-want) > 1e-10*want {
					t.Fatalf("n=%d d=%d (%d,%d): %v want %v", n, d, i, j, got[i*n+j], want)
				}
			}
		}
	})
}
