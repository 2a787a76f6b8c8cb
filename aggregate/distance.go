package aggregate

import (
	"github.com/mfn/mfn/aggregate/internal/vec"
)

// The pairwise-distance engine shared by Krum, Multi-Krum, Bulyan,
// hierarchical Krum and NNM.
//
// It forms the Gram matrix G = X·Xᵀ and derives
// ‖a−b‖² = ‖a‖² + ‖b‖² − 2a·b, clamped at zero with a zero diagonal, as
// ROBUSTNESS_BENCH.md prescribes. A dot product costs one fused
// multiply-add per coordinate where the direct form costs a subtraction
// and a multiply-add, so the Gram form does about half the arithmetic.
// Its weakness is cancellation when two vectors are nearly equal relative
// to their norms; every pair whose distance falls below cancelTol times
// ‖a‖²+‖b‖² is therefore recomputed directly, which makes duplicates
// (mimic attacks, identical honest updates) exactly zero apart.
//
// Blocking: the coordinates are cut into chunks short enough that the chunk
// of every vector (n·chunk·8 bytes ≈ chunkBytes) stays in the per-core L2
// cache while all 3×4 tiles of the upper triangle are computed from it by
// vec.Gram3x4, which keeps twelve accumulators in registers. Each vector is
// therefore read from memory once per pass instead of once per pair.
//
// Parallelism and determinism: the chunks are split into a fixed number of
// contiguous parts that depends only on n and d, each part accumulates its
// own copy of the tiles in chunk order, and the copies are summed in part
// order. Results are therefore bit-identical whatever GOMAXPROCS is.

const (
	// chunkBytes is the target size of one chunk of all n vectors: a Zen 4
	// or recent Intel core has 1–2 MiB of L2, and the chunk should leave
	// room for the tiles and the next chunk being prefetched.
	chunkBytes = 384 << 10
	// maxParts bounds the number of independent partial sums over the
	// coordinates: enough to balance two to eight cores.
	maxParts = 8
	// cancelTol: a Gram-derived squared distance below
	// cancelTol·(‖a‖²+‖b‖²) is recomputed directly. The Gram error is of
	// order 1e-14·(‖a‖²+‖b‖²), so the relative error of any kept distance is
	// below ~1e-10.
	cancelTol = 1e-4
)

// chunkLen is the number of coordinates per chunk for n vectors: a
// multiple of 8 between 64 and 8192.
func chunkLen(n int) int {
	c := (chunkBytes / 8) / max(n, 1)
	c &^= 7
	return min(max(c, 64), 8192)
}

type gramTile struct{ r0, c0 int }

// gramTiles lists the 3-row × 4-column tiles that cover every (i, j) with
// j ≥ i, in row-major order so that a tile row's three vectors stay in L1
// while the columns stream past.
func gramTiles(n int) []gramTile {
	var tiles []gramTile
	for r0 := 0; r0 < n; r0 += 3 {
		c := 0
		if r0 > 0 {
			c = (r0 / 4) * 4 // first column block reaching the diagonal
		}
		for c0 := c; c0 < n; c0 += 4 {
			if c0+3 >= r0 {
				tiles = append(tiles, gramTile{r0, c0})
			}
		}
	}
	return tiles
}

// pairwiseSqDist returns the n×n matrix (row-major) of squared Euclidean
// distances between the vectors xs, which must all have the same length.
func pairwiseSqDist(xs [][]float64) []float64 {
	dist, _ := pairwiseGram(xs)
	return dist
}

// pairwiseGram returns the squared distances and the squared norms ‖xᵢ‖².
// A vector holding NaN or ±Inf (or whose squared norm overflows) has a
// non-finite norm and NaN or Inf distances; the distances among the other
// vectors are unaffected, since every entry is computed on its own.
func pairwiseGram(xs [][]float64) (out, diag []float64) {
	n := len(xs)
	out = make([]float64, n*n)
	diag = make([]float64, n)
	if n == 0 || len(xs[0]) == 0 {
		return out, diag
	}
	d := len(xs[0])
	tiles := gramTiles(n)
	chunk := chunkLen(n)
	nchunks := (d + chunk - 1) / chunk
	parts := min(maxParts, nchunks)
	tlen := len(tiles) * 12
	partial := make([]float64, parts*tlen)
	work := int64(tlen) * int64(d)
	parallelFor(parts, work, func(p int) {
		acc := partial[p*tlen : (p+1)*tlen]
		clo, chi := span(nchunks, parts, p, 1)
		var a [3][]float64
		var b [4][]float64
		for c := clo; c < chi; c++ {
			lo := c * chunk
			hi := min(d, lo+chunk)
			for t, tile := range tiles {
				for r := range a {
					a[r] = xs[min(tile.r0+r, n-1)][lo:hi]
				}
				for q := range b {
					b[q] = xs[min(tile.c0+q, n-1)][lo:hi]
				}
				vec.Gram3x4((*[12]float64)(acc[t*12:t*12+12]), &a, &b)
			}
		}
	})
	gram := partial[:tlen]
	for p := 1; p < parts; p++ {
		q := partial[p*tlen : (p+1)*tlen]
		for k := range gram {
			gram[k] += q[k]
		}
	}
	redo := gramToDist(gram, tiles, n, out, diag)
	if len(redo) > 0 {
		rparts := min(len(redo), 4*maxParts)
		parallelFor(rparts, int64(len(redo))*int64(d), func(p int) {
			lo, hi := span(len(redo), rparts, p, 1)
			for _, pr := range redo[lo:hi] {
				i, j := int(pr[0]), int(pr[1])
				v := vec.SqDist(xs[i], xs[j])
				out[i*n+j] = v
				out[j*n+i] = v
			}
		})
	}
	return out, diag
}

// gramToDist turns the summed 3×4 tiles of a Gram matrix into squared
// distances in out (n×n) and the squared norms in diag, and returns the
// pairs (i < j) whose distance fell below cancelTol of their norms, to be
// recomputed directly.
func gramToDist(gram []float64, tiles []gramTile, n int, out, diag []float64) [][2]int32 {
	for t, tile := range tiles {
		for r := 0; r < 3; r++ {
			i := tile.r0 + r
			if i >= n {
				break
			}
			for q := 0; q < 4; q++ {
				j := tile.c0 + q
				if j < n && j >= i {
					out[i*n+j] = gram[t*12+r*4+q]
				}
			}
		}
	}
	for i := range diag {
		diag[i] = out[i*n+i]
	}
	var redo [][2]int32
	for i := 0; i < n; i++ {
		out[i*n+i] = 0
		for j := i + 1; j < n; j++ {
			s := diag[i] + diag[j]
			v := s - 2*out[i*n+j]
			if v < cancelTol*s {
				redo = append(redo, [2]int32{int32(i), int32(j)})
			}
			v = max(v, 0)
			out[i*n+j] = v
			out[j*n+i] = v
		}
	}
	return redo
}

// combineRows sets dst = Σ_j coef[j]·rows[j] coordinate-wise, in parallel
// over fixed coordinate ranges.
func combineRows(dst []float64, rows [][]float64, coef []float64) {
	d := len(dst)
	parts := min(16, max(1, d/8192))
	parallelFor(parts, int64(d)*int64(len(rows)), func(p int) {
		lo, hi := span(d, parts, p, 8)
		vec.Combine(dst[lo:hi], rows, coef, lo)
	})
}

// meanOf returns the unweighted mean of rows (all of length d).
func meanOf(rows [][]float64, d int) []float64 {
	out := make([]float64, d)
	coef := make([]float64, len(rows))
	for j := range coef {
		coef[j] = 1 / float64(len(rows))
	}
	combineRows(out, rows, coef)
	return out
}
