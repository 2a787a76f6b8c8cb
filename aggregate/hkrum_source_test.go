package aggregate

import (
	"errors"
	"math"
	"runtime"
	"strings"
	"testing"
)

// TestHierarchicalKrumSourceMatchesFloat64 checks the streamed
// hierarchical Krum against the float64 path on widened updates, bit for
// bit, over cluster counts that exercise every branch (singletons,
// averaged clusters, Krum within clusters; a median or Krum+median top),
// lengths crossing the chunk bounds, a NaN input and duplicates.
func TestHierarchicalKrumSourceMatchesFloat64(t *testing.T) {
	procs := runtime.GOMAXPROCS(0)
	defer runtime.GOMAXPROCS(procs)
	r := seeded(7)
	for _, n := range []int{1, 3, 12, 40, 100} {
		for _, d := range []int{1, 513, 8193, 20000} {
			x := make([][]float32, n)
			for i := range x {
				x[i] = make([]float32, d)
				for k := range x[i] {
					v := r.NormFloat64()
					if i >= n-n/5 {
						v = 50*v + 200 // Byzantine-like
					}
					x[i][k] = float32(v)
				}
			}
			if n > 3 {
				copy(x[2], x[1])
				x[n/2][d/2] = float32(math.NaN())
			}
			wide := widen(x)
			for _, c := range []int{0, 1, 2, n} {
				for _, frac := range []float64{0, 0.2, 0.45} {
					rule := must(NewHierarchicalKrum(c, frac, nil))
					want, wrep, werr := rule.Aggregate(wide, nil)
					runtime.GOMAXPROCS(max(2, procs))
					got, grep, gerr := rule.AggregateSource(newStreamed(x), nil)
					mem, mrep, merr := AggregateFloat32(rule, x, nil)
					runtime.GOMAXPROCS(1)
					one, orep, oerr := rule.AggregateSource(Float32Rows(x), nil)
					w := result{want, wrep, werr}
					for name, g := range map[string]result{"streamed": {got, grep, gerr}, "in memory": {mem, mrep, merr}, "one core": {one, orep, oerr}} {
						if !sameResult(g, w) {
							t.Fatalf("n=%d d=%d clusters=%d fraction=%v: %s %v, float64 path %v (max diff %g)", n, d, c, frac, name, g, w, maxAbsDiff(g.out, want))
						}
					}
				}
			}
		}
	}
}

// TestHierarchicalKrumSourceBlocks: blocks read from the Source never
// exceed the engines' bound, and a failing read names the update.
func TestHierarchicalKrumSourceBlocks(t *testing.T) {
	r := seeded(3)
	x := make([][]float32, 30)
	for i := range x {
		x[i] = make([]float32, 30000)
		for k := range x[i] {
			x[i][k] = float32(r.NormFloat64())
		}
	}
	rule := must(NewHierarchicalKrum(3, 0.2, nil))
	src := newStreamed(x)
	if _, _, err := rule.AggregateSource(src, nil); err != nil {
		t.Fatal(err)
	}
	if l, most := int(src.longest.Load()), max(sourceBlock, chunkLen(1)); l > most {
		t.Fatalf("read a block of %d coordinates, more than %d", l, most)
	}
	src = newStreamed(x)
	src.failRow, src.failFrom = 17, 20000
	_, _, err := rule.AggregateSource(src, nil)
	if err == nil || !errors.Is(err, errDisk) || !strings.Contains(err.Error(), "update 17") {
		t.Fatalf("error %v, want one wrapping %v and naming update 17", err, errDisk)
	}
}
