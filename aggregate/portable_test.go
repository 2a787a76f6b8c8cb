package aggregate

import (
	"math"
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
