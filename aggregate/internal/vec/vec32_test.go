package vec

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func randVec32(r *rand.Rand, n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	return x
}

// refDot32 is the exact-enough reference for float32 inputs: compensated
// float64 summation of exact products.
func refDot32(a, b []float32) (sum, scale float64) {
	wa, wb := make([]float64, len(a)), make([]float64, len(a))
	for i := range a {
		wa[i], wb[i] = float64(a[i]), float64(b[i])
	}
	return refDot(wa, wb)
}

// withKernels runs f once with the portable kernels and once with the
// native ones (when the processor has them), restoring the setting.
func withKernels(t *testing.T, f func(native bool)) {
	t.Helper()
	was := ForcePortable(true)
	defer ForcePortable(was)
	f(false)
	ForcePortable(false)
	f(true)
}

func TestGram4x6F32MatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(31, 32))
	withKernels(t, func(native bool) {
		for trial := 0; trial < 200; trial++ {
			n := r.IntN(4 * GramF32Run)
			if trial < len(sizes) {
				n = sizes[trial]
			}
			var a [4][]float32
			var b [6][]float32
			for i := range a {
				a[i] = randVec32(r, n)
			}
			for i := range b {
				b[i] = randVec32(r, n)
			}
			b[5] = a[2] // aliasing is allowed
			var out [192]float64
			for i := 0; i < 24; i++ {
				out[i*8+3] = float64(i) // the kernel accumulates
			}
			Gram4x6F32(&out, &a, &b)
			for rr := 0; rr < 4; rr++ {
				for c := 0; c < 6; c++ {
					want, scale := refDot32(a[rr], b[c])
					want += float64(rr*6 + c)
					// float32 accumulation over ≤ 32 terms per lane
					// and run; runs summed in float64.
					tol := 4e-6*scale + 1e-12*float64(rr*6+c+1)
					if got := GramLanes((*[8]float64)(out[(rr*6+c)*8:])); math.Abs(got-want) > tol {
						t.Fatalf("native=%v n=%d entry (%d,%d): %.10g, reference %.10g", native, n, rr, c, got, want)
					}
				}
			}
		}
	})
}

func TestSort16F32(t *testing.T) {
	r := rand.New(rand.NewPCG(33, 34))
	for trial := 0; trial < 200; trial++ {
		n := 1 + r.IntN(260)
		w := SortingNetwork(n)
		buf := make([]float32, 16*n)
		for i := range buf {
			buf[i] = float32(r.NormFloat64())
			if trial%3 == 0 {
				buf[i] = float32(r.IntN(4))
			}
			if trial%5 == 0 && i%7 == 0 {
				buf[i] = float32(math.Inf(1 - 2*(i%2)))
			}
		}
		cols := make([][]float32, 16)
		for l := range cols {
			for i := 0; i < n; i++ {
				cols[l] = append(cols[l], buf[16*i+l])
			}
			slices.Sort(cols[l])
		}
		gen := slices.Clone(buf)
		w.Sort16F32(buf)
		w.Sort16F32Generic(gen)
		for l := range cols {
			for i := 0; i < n; i++ {
				if buf[16*i+l] != cols[l][i] || gen[16*i+l] != cols[l][i] {
					t.Fatalf("n=%d column %d row %d: %v / %v, want %v", n, l, i, buf[16*i+l], gen[16*i+l], cols[l][i])
				}
			}
		}
	}
}

func TestFiniteF32(t *testing.T) {
	r := rand.New(rand.NewPCG(35, 36))
	bad := []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1))}
	withKernels(t, func(native bool) {
		for trial := 0; trial < 300; trial++ {
			n := r.IntN(100)
			x := randVec32(r, n)
			x = append(x, math.MaxFloat32, -math.MaxFloat32, math.SmallestNonzeroFloat32)
			if !FiniteF32(x) {
				t.Fatalf("native=%v: finite vector of %d reported non-finite", native, len(x))
			}
			k := r.IntN(len(x))
			x[k] = bad[trial%3]
			if FiniteF32(x) {
				t.Fatalf("native=%v: %v at %d of %d not found", native, x[k], k, len(x))
			}
		}
	})
}

func TestCombineF32(t *testing.T) {
	r := rand.New(rand.NewPCG(37, 38))
	for trial := 0; trial < 150; trial++ {
		k := r.IntN(40)
		n := r.IntN(300)
		off := r.IntN(9)
		rows := make([][]float32, k)
		wide := make([][]float64, k)
		for j := range rows {
			rows[j] = randVec32(r, off+n+r.IntN(3))
			for _, v := range rows[j] {
				wide[j] = append(wide[j], float64(v))
			}
		}
		coef := randVec(r, k)
		got := make([]float64, n)
		gen := make([]float64, n)
		want := make([]float64, n)
		for i := range got {
			got[i] = math.NaN() // must be overwritten
		}
		CombineF32(got, rows, coef, off)
		CombineF32Generic(gen, rows, coef, off)
		CombineGeneric(want, wide, coef, off)
		for i := range got {
			// Both float32 paths are the same chain of fused
			// multiply-adds: bit-identical.
			if math.Float64bits(got[i]) != math.Float64bits(gen[i]) {
				t.Fatalf("k=%d n=%d off=%d: dst[%d] = %.17g, generic %.17g", k, n, off, i, got[i], gen[i])
			}
			scale := 0.0
			for j := range rows {
				scale += math.Abs(coef[j] * wide[j][off+i])
			}
			if !closeTo(got[i], want[i], scale) {
				t.Fatalf("k=%d n=%d: dst[%d] = %.17g, float64 combine %.17g", k, n, i, got[i], want[i])
			}
		}
	}
}

func TestSqDistF32Kernels(t *testing.T) {
	r := rand.New(rand.NewPCG(39, 40))
	withKernels(t, func(native bool) {
		for trial := 0; trial < 200; trial++ {
			n := r.IntN(1000)
			z, x := randVec(r, n), randVec32(r, n)
			y := randVec32(r, n)
			diff := make([]float64, n)
			for i := range diff {
				diff[i] = z[i] - float64(x[i])
			}
			want, scale := refDot(diff, diff)
			if got := SqDistMixed(z, x); !closeTo(got, want, scale) {
				t.Fatalf("native=%v SqDistMixed n=%d: %.17g want %.17g", native, n, got, want)
			}
			for i := range diff {
				diff[i] = float64(y[i]) - float64(x[i])
			}
			want, scale = refDot(diff, diff)
			if got := SqDistF32(y, x); !closeTo(got, want, scale) {
				t.Fatalf("SqDistF32 n=%d: %.17g want %.17g", n, got, want)
			}
			wx, wy := make([]float64, n), make([]float64, n)
			for i := range wx {
				wx[i], wy[i] = float64(x[i]), float64(y[i])
			}
			want, scale = refDot(wx, wy)
			if got := DotF32(x, y); !closeTo(got, want, scale) {
				t.Fatalf("DotF32 n=%d: %.17g want %.17g", n, got, want)
			}
		}
	})
}

func BenchmarkGram4x6F32(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	const n = 512
	var ga [4][]float32
	var gb [6][]float32
	for i := range ga {
		ga[i] = randVec32(r, n)
	}
	for i := range gb {
		gb[i] = randVec32(r, n)
	}
	var out [192]float64
	for b.Loop() {
		Gram4x6F32(&out, &ga, &gb)
	}
	b.ReportMetric(float64(24*n)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFMA/s")
}

func BenchmarkSort16F32x100(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 4))
	w := SortingNetwork(100)
	src := randVec32(r, 1600)
	buf := make([]float32, 1600)
	for b.Loop() {
		copy(buf, src)
		w.Sort16F32(buf)
	}
}

// TestSelectionNetwork: the pruned network leaves the requested ranks
// exactly where the full sort puts them.
func TestSelectionNetwork(t *testing.T) {
	r := rand.New(rand.NewPCG(41, 42))
	for trial := 0; trial < 200; trial++ {
		n := 1 + r.IntN(200)
		lo := r.IntN(n)
		hi := min(n-1, lo+r.IntN(3))
		w := SelectionNetwork(n, lo, hi)
		if full := SortingNetwork(n); len(w.Pairs) > len(full.Pairs) {
			t.Fatalf("n=%d: pruned network larger than the full one", n)
		}
		buf := make([]float32, 16*n)
		for i := range buf {
			buf[i] = float32(r.NormFloat64())
			if trial%4 == 0 {
				buf[i] = float32(r.IntN(3))
			}
		}
		sorted := slices.Clone(buf)
		SortingNetwork(n).Sort16F32Generic(sorted)
		w.Sort16F32(buf)
		for k := lo; k <= hi; k++ {
			for l := 0; l < 16; l++ {
				if buf[16*k+l] != sorted[16*k+l] {
					t.Fatalf("n=%d ranks %d..%d: rank %d lane %d = %v, want %v", n, lo, hi, k, l, buf[16*k+l], sorted[16*k+l])
				}
			}
		}
	}
}
