package aggregate

import (
	"fmt"
	"math"
	"runtime"
	"testing"

	"github.com/mfn/mfn/aggregate/internal/vec"
)

// gramPlanProducts is the number of multiply-adds per coordinate a plan
// costs: 24 per 4×6 tile, 21 per triangle tile.
func gramPlanProducts(p *gramPlanF32) int {
	s := 0
	for i := 0; i < p.tiles.Len(); i++ {
		if p.tiles.Tile(i).Tri != 0 {
			s += 21
		} else {
			s += 24
		}
	}
	return s
}

// BenchmarkGramF32 times the float32 distance engine alone (pairwiseGramF32)
// and reports useful multiply-adds (n(n+1)/2·d) per CPU-second and per
// wall-second.
func BenchmarkGramF32(b *testing.B) {
	for _, sz := range []benchSize{{100, 100000}, {50, 1000000}, {100, 10000}} {
		b.Run(fmt.Sprintf("n=%d,d=%d", sz.n, sz.d), func(b *testing.B) {
			x := Float32Rows(benchInputs32(sz.n, sz.d))
			b.ReportAllocs()
			b.SetBytes(int64(sz.n) * int64(sz.d) * 4)
			start := cpuTime()
			for b.Loop() {
				if _, _, err := pairwiseGramF32(newReader(x)); err != nil {
					b.Fatal(err)
				}
			}
			cpu := float64(cpuTime() - start)
			fma := float64(sz.n*(sz.n+1)/2) * float64(sz.d) * float64(b.N)
			b.ReportMetric(cpu/float64(b.N)/1e6, "cpu-ms/op")
			b.ReportMetric(fma/cpu, "GFMA/cpu-s")
			b.ReportMetric(fma/b.Elapsed().Seconds()/1e9, "GFMA/s")
		})
	}
}

// TestGramPlanF32CoversEachPairOnce: for every n, each pair i ≤ j is
// provided by exactly one tile entry, and every index is in range.
func TestGramPlanF32CoversEachPairOnce(t *testing.T) {
	for n := 1; n <= 130; n++ {
		p := newGramPlanF32(n)
		count := make([]int, n*n)
		for ti := range p.own {
			tile := p.tiles.Tile(ti)
			for _, v := range tile.A {
				if v < 0 || int(v) >= n {
					t.Fatalf("n=%d tile %d: row %d out of range", n, ti, v)
				}
			}
			for _, v := range tile.B {
				if v < 0 || int(v) >= n {
					t.Fatalf("n=%d tile %d: column %d out of range", n, ti, v)
				}
			}
			for k, dst := range p.own[ti] {
				if dst < 0 {
					continue
				}
				i, j := int(tile.A[k/6]), int(tile.B[k%6])
				if tile.Tri != 0 {
					if k >= 21 {
						t.Fatalf("n=%d tile %d: triangle entry %d owns %d", n, ti, k, dst)
					}
					p, q := vec.TriPair(k)
					i, j = int(tile.B[p]), int(tile.B[q])
				}
				if i > j {
					i, j = j, i
				}
				if int(dst) != i*n+j {
					t.Fatalf("n=%d tile %d entry %d: owns %d, computes (%d,%d)", n, ti, k, dst, i, j)
				}
				count[dst]++
			}
		}
		for i := 0; i < n; i++ {
			for j := i; j < n; j++ {
				if count[i*n+j] != 1 {
					t.Fatalf("n=%d: pair (%d,%d) provided %d times", n, i, j, count[i*n+j])
				}
			}
		}
		if products := gramPlanProducts(p); n == 100 && products > 5160 {
			t.Fatalf("n=100: %d products per coordinate, want ≤ 5,160", products)
		}
	}
}

// TestPairwiseGramF32Deterministic: the same bits for any GOMAXPROCS, in
// memory and streamed, and within the documented tolerance of the exact
// float64 distances.
func TestPairwiseGramF32Deterministic(t *testing.T) {
	for _, sz := range []benchSize{{100, 20000}, {37, 9000}, {5, 700}} {
		x := benchInputs32(sz.n, sz.d)
		var ref []float64
		for _, procs := range []int{1, 2, 3, 8} {
			old := runtime.GOMAXPROCS(procs)
			mem, _, err := pairwiseGramF32(newReader(Float32Rows(x)))
			if err != nil {
				t.Fatal(err)
			}
			str, _, err := pairwiseGramF32(newReader(copySource{x}))
			runtime.GOMAXPROCS(old)
			if err != nil {
				t.Fatal(err)
			}
			if ref == nil {
				ref = mem
			}
			for k := range ref {
				if math.Float64bits(mem[k]) != math.Float64bits(ref[k]) || math.Float64bits(str[k]) != math.Float64bits(ref[k]) {
					t.Fatalf("n=%d d=%d GOMAXPROCS=%d: entry %d: %v (memory) %v (streamed), want %v", sz.n, sz.d, procs, k, mem[k], str[k], ref[k])
				}
			}
		}
		for i := 0; i < sz.n; i++ {
			for j := 0; j < sz.n; j++ {
				var exact float64
				for k := range x[i] {
					v := float64(x[i][k]) - float64(x[j][k])
					exact += v * v
				}
				if got := ref[i*sz.n+j]; math.Abs(got-exact) > 1e-4*exact {
					t.Fatalf("n=%d d=%d: dist(%d,%d) = %v, exact %v", sz.n, sz.d, i, j, got, exact)
				}
			}
		}
	}
}
