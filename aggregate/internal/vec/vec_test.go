package vec

import (
	"math"
	"math/rand/v2"
	"testing"
)

func randVec(r *rand.Rand, n int) []float64 {
	x := make([]float64, n)
	for i := range x {
		x[i] = r.NormFloat64()
	}
	return x
}

// close reports whether got is within a relative tolerance of want, scaled
// by scale (the sum of magnitudes that entered the computation).
func closeTo(got, want, scale float64) bool {
	return math.Abs(got-want) <= 1e-13*scale+1e-300
}

var sizes = []int{0, 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 33, 47, 48, 49, 63, 64, 65, 100, 127, 383, 384, 385, 1000, 1023}

// refDot is an exactly-rounded-enough reference: compensated summation.
func refDot(a, b []float64) (sum, scale float64) {
	var s, c float64
	for i := range a {
		p := a[i] * b[i]
		scale += math.Abs(p)
		y := p - c
		t := s + y
		c = (t - s) - y
		s = t
	}
	return s, scale
}

func TestDotAndSqDistMatchReference(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, n := range sizes {
		a, b := randVec(r, n), randVec(r, n)
		want, scale := refDot(a, b)
		for name, f := range map[string]func(a, b []float64) float64{"Dot": Dot, "DotGeneric": DotGeneric} {
			if got := f(a, b); !closeTo(got, want, scale) {
				t.Errorf("%s n=%d: got %.17g want %.17g", name, n, got, want)
			}
		}
		diff := make([]float64, n)
		for i := range diff {
			diff[i] = a[i] - b[i]
		}
		want, scale = refDot(diff, diff)
		for name, f := range map[string]func(a, b []float64) float64{"SqDist": SqDist, "SqDistGeneric": SqDistGeneric} {
			if got := f(a, b); !closeTo(got, want, scale) {
				t.Errorf("%s n=%d: got %.17g want %.17g", name, n, got, want)
			}
		}
	}
}

func TestAsmMatchesGeneric(t *testing.T) {
	if !HasAVX2FMA {
		t.Skip("no AVX2+FMA on this machine: only the portable kernels run")
	}
	r := rand.New(rand.NewPCG(3, 4))
	for trial := 0; trial < 200; trial++ {
		n := 4 + r.IntN(700)
		if trial < len(sizes) {
			n = sizes[trial] + 4
		}
		n4 := n &^ 3
		a, b := randVec(r, n), randVec(r, n)
		want, scale := refDot(a[:n4], b[:n4])
		if got := dotAsm(&a[0], &b[0], n4); !closeTo(got, want, scale) || !closeTo(got, DotGeneric(a[:n4], b[:n4]), scale) {
			t.Fatalf("dotAsm n=%d: %.17g vs reference %.17g", n4, got, want)
		}
		diff := make([]float64, n4)
		for i := range diff {
			diff[i] = a[i] - b[i]
		}
		want, scale = refDot(diff, diff)
		if got := sqDistAsm(&a[0], &b[0], n4); !closeTo(got, want, scale) {
			t.Fatalf("sqDistAsm n=%d: %.17g vs %.17g", n4, got, want)
		}
	}
}

func TestCombineMatchesGeneric(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for trial := 0; trial < 150; trial++ {
		k := r.IntN(90)
		n := r.IntN(500)
		off := r.IntN(9)
		if trial < len(sizes) {
			n = sizes[trial]
		}
		rows := make([][]float64, k)
		coef := make([]float64, k)
		for j := range rows {
			rows[j] = randVec(r, off+n+r.IntN(3))
			coef[j] = r.NormFloat64()
		}
		got := make([]float64, n)
		want := make([]float64, n)
		for i := range got {
			got[i] = math.NaN() // must be overwritten
		}
		Combine(got, rows, coef, off)
		CombineGeneric(want, rows, coef, off)
		for i := range got {
			scale := 0.0
			for j := range rows {
				scale += math.Abs(coef[j] * rows[j][off+i])
			}
			if !closeTo(got[i], want[i], scale) {
				t.Fatalf("k=%d n=%d off=%d: dst[%d] = %.17g, generic %.17g", k, n, off, i, got[i], want[i])
			}
		}
	}
}

func TestCombine4MatchesGeneric(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	for trial := 0; trial < 150; trial++ {
		k := r.IntN(40)
		n := r.IntN(300)
		off := r.IntN(9)
		if trial < len(sizes) {
			n = sizes[trial]
		}
		rows := make([][]float64, k)
		for j := range rows {
			rows[j] = randVec(r, off+n+r.IntN(3))
		}
		coef := randVec(r, 4*k)
		var got, want [4][]float64
		for q := range got {
			got[q] = make([]float64, n)
			want[q] = make([]float64, n)
			for i := range got[q] {
				got[q][i] = math.NaN()
			}
		}
		Combine4(&got, rows, coef, off)
		Combine4Generic(&want, rows, coef, off)
		for q := range got {
			for i := range got[q] {
				scale := 0.0
				for j := range rows {
					scale += math.Abs(coef[q*k+j] * rows[j][off+i])
				}
				if !closeTo(got[q][i], want[q][i], scale) {
					t.Fatalf("k=%d n=%d off=%d: dst[%d][%d] = %.17g, generic %.17g", k, n, off, q, i, got[q][i], want[q][i])
				}
			}
		}
	}
}

func TestGram3x4MatchesGeneric(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for trial := 0; trial < 150; trial++ {
		n := r.IntN(600)
		if trial < len(sizes) {
			n = sizes[trial]
		}
		var a [3][]float64
		var b [4][]float64
		for i := range a {
			a[i] = randVec(r, n)
		}
		for i := range b {
			b[i] = randVec(r, n)
		}
		b[3] = a[1] // aliasing is allowed
		var got, gen [12]float64
		for i := range got {
			got[i] = float64(i) // Gram3x4 accumulates
			gen[i] = float64(i)
		}
		Gram3x4(&got, &a, &b)
		Gram3x4Generic(&gen, &a, &b)
		for rr := 0; rr < 3; rr++ {
			for c := 0; c < 4; c++ {
				want, scale := refDot(a[rr], b[c])
				want += float64(rr*4 + c)
				k := rr*4 + c
				if !closeTo(got[k], want, scale+16) || !closeTo(gen[k], want, scale+16) {
					t.Fatalf("n=%d entry (%d,%d): asm-or-dispatch %.17g generic %.17g reference %.17g", n, rr, c, got[k], gen[k], want)
				}
			}
		}
	}
}

func TestKernelsDoNotAllocate(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	a, b := randVec(r, 101), randVec(r, 101)
	rows := [][]float64{a, b}
	coef := []float64{1, 2}
	dst := make([]float64, 97)
	var out [12]float64
	ga := [3][]float64{a, a, b}
	gb := [4][]float64{a, b, a, b}
	allocs := testing.AllocsPerRun(10, func() {
		Dot(a, b)
		SqDist(a, b)
		Combine(dst, rows, coef, 3)
		Gram3x4(&out, &ga, &gb)
	})
	if allocs != 0 {
		t.Fatalf("kernels allocated %v times per run", allocs)
	}
}

func BenchmarkGram3x4(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	const n = 480
	var ga [3][]float64
	var gb [4][]float64
	for i := range ga {
		ga[i] = randVec(r, n)
	}
	for i := range gb {
		gb[i] = randVec(r, n)
	}
	var out [12]float64
	b.SetBytes(7 * n * 8)
	for b.Loop() {
		Gram3x4(&out, &ga, &gb)
	}
}

func BenchmarkCombine4(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	const n, k = 480, 100
	rows := make([][]float64, k)
	for j := range rows {
		rows[j] = randVec(r, n)
	}
	coef := randVec(r, 4*k)
	var dst [4][]float64
	for q := range dst {
		dst[q] = make([]float64, n)
	}
	b.SetBytes(k * n * 8)
	for b.Loop() {
		Combine4(&dst, rows, coef, 0)
	}
	// 4·n·k multiply-adds per call.
	b.ReportMetric(float64(4*n*k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFMA/s")
}
