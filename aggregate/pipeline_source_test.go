package aggregate

import (
	"math"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// pipelineSpecs are the pipelines the Source tests run: every supported
// pre-step and rule, in several orders, and one that falls back to the
// float64 copy (geometric median).
var pipelineSpecs = []string{
	"bucketing+median", "bucketing+trimmed-mean", "bucketing+fedavg", "bucketing+krum", "bucketing+multi-krum",
	"nnm+krum", "nnm+trimmed-mean", "nnm+fedavg", "nnm+multi-krum",
	"static-clipping+median", "static-clipping+krum",
	"nnm+static-clipping+trimmed-mean", "static-clipping+bucketing+multi-krum", "nnm+bucketing+krum",
	"nnm+geometric-median",
}

func newPipeline(t testing.TB, spec string, f int) Rule {
	t.Helper()
	r, err := ParsePipeline(spec, Params{F: f, ClipNorm: 40, Seed: 5})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestPipelineSourceMatchesFloat64: streamed, in memory and on one core
// the same bits; against Aggregate on the widened updates the same error,
// rejections, inputs used and scores (to rounding), values to rounding,
// and the float64 path's bits when bucketing comes first.
func TestPipelineSourceMatchesFloat64(t *testing.T) {
	procs := runtime.GOMAXPROCS(0)
	defer runtime.GOMAXPROCS(procs)
	r := seeded(11)
	for _, n := range []int{9, 24} {
		for _, d := range []int{1, 513, 8193, 20000} {
			const f = 2
			x := make([][]float32, n)
			for i := range x {
				x[i] = make([]float32, d)
				for k := range x[i] {
					v := r.NormFloat64()
					if i >= n-f {
						v = 30*v + 100
					}
					x[i][k] = float32(v)
				}
			}
			copy(x[2], x[1])
			x[n/2][d/2] = float32(math.NaN())
			wide := widen(x)
			ramp := make([]float64, n)
			for i := range ramp {
				ramp[i] = 1 + float64(i)
			}
			bad := slices.Clone(ramp)
			bad[3] = -1
			for wi, spec := range pipelineSpecs {
				w := [][]float64{nil, ramp, bad}[wi%3]
				want, wrep, werr := newPipeline(t, spec, f).Aggregate(wide, w)
				sr := newPipeline(t, spec, f).(SourceRule)
				runtime.GOMAXPROCS(max(2, procs))
				got, grep, gerr := sr.AggregateSource(newStreamed(x), w)
				mem, mrep, merr := AggregateFloat32(newPipeline(t, spec, f), x, w)
				runtime.GOMAXPROCS(1)
				one, orep, oerr := newPipeline(t, spec, f).(SourceRule).AggregateSource(Float32Rows(x), w)
				g := result{got, grep, gerr}
				if !sameResult(g, result{mem, mrep, merr}) || !sameResult(g, result{one, orep, oerr}) {
					t.Fatalf("%s n=%d d=%d: streamed %v, in memory %v, one core %v", spec, n, d, g, result{mem, mrep, merr}, result{one, orep, oerr})
				}
				if (gerr == nil) != (werr == nil) || (gerr != nil && gerr.Error() != werr.Error()) {
					t.Fatalf("%s n=%d d=%d: error %v, float64 path %v", spec, n, d, gerr, werr)
				}
				if gerr != nil {
					continue
				}
				if !slices.Equal(grep.Rejected, wrep.Rejected) || !slices.Equal(grep.Used, wrep.Used) {
					t.Fatalf("%s n=%d d=%d: used %v rejected %v, float64 path used %v rejected %v", spec, n, d, grep.Used, grep.Rejected, wrep.Used, wrep.Rejected)
				}
				for i, s := range grep.Scores {
					if w := wrep.Scores[i]; math.Abs(s-w) > 1e-9*math.Abs(w)+1e-12 {
						t.Fatalf("%s n=%d d=%d: score %d %v, float64 path %v", spec, n, d, i, s, w)
					}
				}
				scale := 1.0
				for _, v := range want {
					scale = max(scale, math.Abs(v))
				}
				if diff := maxAbsDiff(got, want); diff > 1e-9*scale {
					t.Fatalf("%s n=%d d=%d: differs from the float64 path by %g", spec, n, d, diff)
				}
				if strings.HasPrefix(spec, "bucketing+") && !sameBits(got, want) {
					t.Fatalf("%s n=%d d=%d: not bit-identical to the float64 path (max diff %g)", spec, n, d, maxAbsDiff(got, want))
				}
			}
		}
	}
}

// TestPipelineSourceMemoryIsBounded: what a streamed pipeline allocates
// grows with d by at most two float64 d-vectors (the result and a
// rule's d-long scratch), whereas storing the pre-steps' outputs would
// add n float64 per coordinate (12 here) and a float64 copy of the inputs
// as much: the working set beyond the result is a few blocks per part,
// whatever d is. Allocations at d = 100,000 and 400,000 are compared.
func TestPipelineSourceMemoryIsBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates 19 MB of inputs")
	}
	const n, d1, d2 = 12, 100_000, 400_000
	alloc := func(spec string, d int) uint64 {
		x := bigInputs(n, d)
		rule := newPipeline(t, spec, 1).(SourceRule)
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		if _, _, err := rule.AggregateSource(copySource{x}, nil); err != nil {
			t.Fatalf("%s: %v", spec, err)
		}
		runtime.ReadMemStats(&after)
		return after.TotalAlloc - before.TotalAlloc
	}
	for _, spec := range pipelineSpecs {
		if strings.Contains(spec, "geometric") {
			continue // falls back to the float64 copy
		}
		a1, a2 := alloc(spec, d1), alloc(spec, d2)
		if grow, limit := int64(a2)-int64(a1), int64(2*(d2-d1)*8); grow > limit {
			t.Errorf("%s allocated %d bytes at d=%d and %d at d=%d: grows by %d, more than %d", spec, a1, d1, a2, d2, grow, limit)
		}
		if a2 > uint64(d2*8+32<<20) {
			t.Errorf("%s allocated %d bytes at d=%d, more than the result and 32 MiB", spec, a2, d2)
		}
	}
}
