package vec

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestGramTilesF32MatchesGram4x6F32: the tile list gives the bits of one
// Gram4x6F32 call per tile, with and without prefetching, for lengths
// that are and are not multiples of 16 or of GramF32Run.
func TestGramTilesF32MatchesGram4x6F32(t *testing.T) {
	withKernels(t, func(native bool) { testGramTiles(t, native) })
}

func testGramTiles(t *testing.T, native bool) {
	r := rand.New(rand.NewPCG(5, 6))
	for trial := 0; trial < 60; trial++ {
		nrows := 1 + r.IntN(20)
		n := r.IntN(3 * GramF32Run)
		if trial%3 == 0 {
			n = 16 * (1 + r.IntN(100))
		}
		back := randVec32(r, 2*nrows*n+32)
		rows := make([][]float32, nrows)
		for i := range rows {
			rows[i] = back[2*i*n : 2*i*n+n]
		}
		tiles := make([]GramTile, 1+r.IntN(12))
		for k := range tiles {
			for q := range tiles[k].A {
				tiles[k].A[q] = int32(r.IntN(nrows))
			}
			for q := range tiles[k].B {
				tiles[k].B[q] = int32(r.IntN(nrows))
			}
			tiles[k].Prefetch = int32(r.IntN(nrows + 1))
		}
		want := make([]float64, 192*len(tiles))
		for k := range want {
			want[k] = r.NormFloat64()
		}
		got := append([]float64(nil), want...)
		got2 := append([]float64(nil), want...)
		for k := range tiles {
			if r.IntN(3) == 0 {
				tiles[k].Tri = 1
			}
		}
		for k := range tiles {
			if tiles[k].Tri == 0 {
				a, b := tileRows(rows, &tiles[k])
				Gram4x6F32((*[192]float64)(want[192*k:]), &a, &b)
				continue
			}
			// Entry e of a triangle tile: the lanes of Gram4x6F32's
			// entry (0, 0) for the pair (B[p], B[q]).
			for e := 0; e < 21; e++ {
				p, q := TriPair(e)
				var one [192]float64
				copy(one[:8], want[192*k+8*e:])
				a := [4][]float32{rows[tiles[k].B[p]], rows[0], rows[0], rows[0]}
				b := [6][]float32{rows[tiles[k].B[q]], rows[0], rows[0], rows[0], rows[0], rows[0]}
				Gram4x6F32(&one, &a, &b)
				copy(want[192*k+8*e:], one[:8])
			}
		}
		GramTilesF32(got, rows, NewGramTiles(tiles), 0)
		GramTilesF32(got2, rows, NewGramTiles(tiles), 4*n)
		for k := range want {
			if math.Float64bits(got[k]) != math.Float64bits(want[k]) || math.Float64bits(got2[k]) != math.Float64bits(want[k]) {
				t.Fatalf("native=%v trial %d (n=%d): lane %d: %v, %v (prefetching), want %v", native, trial, n, k, got[k], got2[k], want[k])
			}
		}
	}
}

func TestGramTilesF32Panics(t *testing.T) {
	rows := [][]float32{make([]float32, 32), make([]float32, 32)}
	for name, f := range map[string]func(){
		"index":    func() { GramTilesF32(make([]float64, 192), rows, NewGramTiles([]GramTile{{A: [4]int32{2}}}), 0) },
		"prefetch": func() { GramTilesF32(make([]float64, 192), rows, NewGramTiles([]GramTile{{Prefetch: 3}}), 0) },
		"negative": func() { NewGramTiles([]GramTile{{B: [6]int32{-1}}}) },
		"lengths": func() {
			GramTilesF32(make([]float64, 192), [][]float32{rows[0], rows[1][:16]}, NewGramTiles([]GramTile{{}}), 0)
		},
		"out": func() { GramTilesF32(make([]float64, 191), rows, NewGramTiles([]GramTile{{}}), 0) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			f()
		}()
	}
}

func BenchmarkGramTilesF32(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	const n = 512
	rows := make([][]float32, 100)
	for i := range rows {
		rows[i] = randVec32(r, n)
	}
	var tiles []GramTile
	for t := 0; t < 25; t++ {
		tiles = append(tiles, GramTile{A: [4]int32{int32(4 * t), int32(4*t + 1), int32(4*t + 2), int32(4*t + 3)}, B: [6]int32{0, 1, 2, 3, 4, 5}})
	}
	out := make([]float64, 192*len(tiles))
	g := NewGramTiles(tiles)
	for b.Loop() {
		GramTilesF32(out, rows, g, 0)
	}
	b.ReportMetric(float64(24*n*len(tiles))*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFMA/s")
}

func TestTriPair(t *testing.T) {
	e := 0
	for p := 0; p < 6; p++ {
		for q := p; q < 6; q++ {
			if gp, gq := TriPair(e); gp != p || gq != q {
				t.Fatalf("TriPair(%d) = (%d, %d), want (%d, %d)", e, gp, gq, p, q)
			}
			e++
		}
	}
}
