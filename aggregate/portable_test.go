package aggregate

import (
	"math"
	"slices"
	"testing"

	"github.com/mfn/mfn/aggregate/internal/vec"
)

// TestPortableKernelsAgree runs the distance engine and every rule with the
// portable kernels and with the assembly ones (where the processor has
// them) and compares the results. Not parallel: it switches the kernels
// process-wide.
func TestPortableKernelsAgree(t *testing.T) {
	x := gaussians(seeded(61), 23, 2*chunkLen(23)+13)
	type result struct {
		dist []float64
		outs map[string][]float64
	}
	run := func() result {
		res := result{dist: pairwiseSqDist(x), outs: map[string][]float64{}}
		for _, name := range append(RuleNames, "nnm+trimmed-mean", "nnm+bucketing+krum") {
			r, err := ParsePipeline(name, Params{F: 4, Seed: 1})
			if err != nil {
				t.Fatal(err)
			}
			out, _, err := r.Aggregate(x, nil)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			res.outs[name] = out
		}
		return res
	}
	was := vec.ForcePortable(true)
	portable := run()
	vec.ForcePortable(false)
	native := run()
	vec.ForcePortable(was)
	for i, v := range portable.dist {
		if math.Abs(v-native.dist[i]) > 1e-12*math.Abs(v) {
			t.Fatalf("distance %d: portable %v, native %v", i, v, native.dist[i])
		}
	}
	for name, p := range portable.outs {
		if d := maxAbsDiff(p, native.outs[name]); d > 1e-12 {
			t.Errorf("%s: portable and native kernels differ by %g", name, d)
		}
	}
}

// TestPortableKernelsAgreeF32 runs every SourceRule on float32 inputs with
// the portable kernels (which also switches the coordinate-wise rules from
// the sorting network to quickselect) and with the vector ones, and
// compares: the same inputs used, aggregates within rounding (the
// portable Gram accumulates in float64, the vector one in float32 runs).
// Not parallel: it switches the kernels process-wide.
func TestPortableKernelsAgreeF32(t *testing.T) {
	r := seeded(62)
	const n, d = 23, 3000
	x := make([][]float32, n)
	for i := range x {
		x[i] = make([]float32, d)
		for k := range x[i] {
			x[i][k] = float32(r.NormFloat64() + float64(i%3))
		}
	}
	x[5][17] = float32(math.NaN())
	run := func() map[string]result {
		res := map[string]result{}
		for _, rule := range sourceRules(4) {
			var out result
			out.out, out.rep, out.err = fresh(rule).AggregateSource(Float32Rows(x), nil)
			if out.err != nil {
				t.Fatalf("%s: %v", rule.Name(), out.err)
			}
			res[rule.Name()] = out
		}
		return res
	}
	was := vec.ForcePortable(true)
	portable := run()
	vec.ForcePortable(false)
	native := run()
	vec.ForcePortable(was)
	for name, p := range portable {
		q := native[name]
		if !slices.Equal(p.rep.Used, q.rep.Used) || !slices.Equal(p.rep.Rejected, q.rep.Rejected) {
			t.Errorf("%s: portable report %v, native %v", name, p, q)
			continue
		}
		if name == "median" && !sameBits(p.out, q.out) {
			t.Errorf("median: quickselect and sorting network differ by %g", maxAbsDiff(p.out, q.out))
		}
		if diff := maxAbsDiff(p.out, q.out); diff > 1e-9 {
			t.Errorf("%s: portable and native differ by %g", name, diff)
		}
		for i, s := range p.rep.Scores {
			if w := q.rep.Scores[i]; math.Abs(s-w) > 1e-5*math.Abs(w)+1e-12 {
				t.Errorf("%s score %d: portable %v, native %v", name, i, s, w)
			}
		}
	}
}
