package sim

import (
	"math"
	"math/rand/v2"
	"testing"
)

// withoutAVX2 runs f with the Go loops in place of the AVX2 kernels.
func withoutAVX2(f func()) {
	saved := useAVX2
	useAVX2 = false
	defer func() { useAVX2 = saved }()
	f()
}

// TestAVX2KernelsBitIdentical compares the AVX2 kernels with the Go loops
// on random rows of every length from 2 to 40 (all remainders mod 4).
func TestAVX2KernelsBitIdentical(t *testing.T) {
	if !useAVX2 {
		t.Skip("no AVX2 on this CPU")
	}
	rng := rand.New(rand.NewPCG(8, 9))
	row := func(n int) []float64 {
		r := make([]float64, n)
		for i := range r {
			r[i] = -0.07 + 0.03*rng.NormFloat64()
		}
		return r
	}
	for n := 2; n <= 40; n++ {
		u, c, d, prev := row(n), row(n), row(n), row(n)
		for _, b := range []Boundary{Periodic, Neumann, Dirichlet} {
			fast, slow := make([]float64, n), make([]float64, n)
			diffuseRow(fast, u, c, d, 0.18, b)
			withoutAVX2(func() { diffuseRow(slow, u, c, d, 0.18, b) })
			for j := range fast {
				if math.Float64bits(fast[j]) != math.Float64bits(slow[j]) {
					t.Fatalf("n=%d %v: diffuse cell %d: AVX2 %v, Go %v", n, b, j, fast[j], slow[j])
				}
			}
		}
		var e1, s1, q1, m1, e2, s2, q2, m2 float64
		e1, s1, q1, m1 = rowStats(c, prev)
		withoutAVX2(func() { e2, s2, q2, m2 = rowStats(c, prev) })
		for i, p := range [][2]float64{{e1, e2}, {s1, s2}, {q1, q2}, {m1, m2}} {
			if math.Float64bits(p[0]) != math.Float64bits(p[1]) {
				t.Fatalf("n=%d: rowStats result %d: AVX2 %v, Go %v", n, i, p[0], p[1])
			}
		}
	}
	for n := 1; n <= 23; n++ {
		v := make([]float64, n)
		for i := range v {
			v[i] = -0.03 + 0.05*rng.NormFloat64()
		}
		if n > 6 {
			v[5] = math.NaN()
			v[n-1] = math.Inf(1)
		}
		fast := append([]float64(nil), v...)
		slow := append([]float64(nil), v...)
		c1, nan1 := clampRow(fast)
		var c2 int
		var nan2 bool
		withoutAVX2(func() { c2, nan2 = clampRow(slow) })
		if c1 != c2 || nan1 != nan2 || nan1 != (n > 6) {
			t.Fatalf("n=%d: clampRow AVX2 (%d, %v), Go (%d, %v)", n, c1, nan1, c2, nan2)
		}
		for j := range fast {
			if math.Float64bits(fast[j]) != math.Float64bits(slow[j]) {
				t.Fatalf("n=%d: clamp cell %d: AVX2 %v, Go %v", n, j, fast[j], slow[j])
			}
		}
	}
	cfg0 := DefaultConfig()
	for n := 1; n <= 23; n++ {
		mk := func(scale, off float64) []float64 {
			r := make([]float64, n)
			for i := range r {
				r[i] = off + scale*rng.Float64()
			}
			return r
		}
		ac, ic := mk(1, 0), mk(0.5, 0)
		lapA, lapI := mk(2, -1), mk(2, -1)
		v := mk(0.1, -0.1)
		ac[0], lapA[0] = 0.95, 0 // a' > θ here
		if n > 3 {
			ac[3] = math.NaN()
		}
		an1, in1, v1 := make([]float64, n), make([]float64, n), append([]float64(nil), v...)
		an2, in2, v2 := make([]float64, n), make([]float64, n), append([]float64(nil), v...)
		t1, nan1 := turingRow(an1, in1, v1, ac, ic, lapA, lapI, &cfg0)
		var t2 int
		var nan2 bool
		withoutAVX2(func() { t2, nan2 = turingRow(an2, in2, v2, ac, ic, lapA, lapI, &cfg0) })
		if t1 != t2 || nan1 != nan2 || nan1 != (n > 3) || t1 == 0 {
			t.Fatalf("n=%d: turingRow AVX2 (%d, %v), Go (%d, %v)", n, t1, nan1, t2, nan2)
		}
		for j := range an1 {
			if math.Float64bits(an1[j]) != math.Float64bits(an2[j]) || math.Float64bits(in1[j]) != math.Float64bits(in2[j]) || math.Float64bits(v1[j]) != math.Float64bits(v2[j]) {
				t.Fatalf("n=%d cell %d: AVX2 (%v %v %v), Go (%v %v %v)", n, j, an1[j], in1[j], v1[j], an2[j], in2[j], v2[j])
			}
		}
	}
	// A whole run, with the Turing step live, jitter and Neumann edges.
	cfg := liveTuringConfig(21, 15)
	cfg.QuantumJitter, cfg.Boundary, cfg.Seed = true, Neumann, 4
	fast := runSeeded(t, cfg, 1)
	var slow *Result
	withoutAVX2(func() { slow = runSeeded(t, cfg, 1) })
	sameResult(t, "AVX2 vs Go", fast, slow)
}
