package aggregate

import "github.com/mfn/mfn/aggregate/internal/vec"

// colBlock is the number of coordinates transposed at a time: n·colBlock
// values (25 KiB for n = 100) stay in L1 while each column is reduced.
const colBlock = 32

// maxNetworkN is the largest n for which the coordinate-wise rules sort
// columns with a vectorised sorting network instead of quickselect. The
// network does O(n log² n) comparisons but four columns per vector
// instruction and no branches; below a few hundred inputs that beats the
// O(n) scalar selection by a factor of two to four (BenchmarkSort4x100 in
// internal/vec against BenchmarkSelectTrimmed100).
const maxNetworkN = 256

// colOp reduces columns. one reduces a single column (reordering it; tmp
// is scratch of n values). four, when not nil, is used instead on
// processors with the vector kernels: it receives four columns sorted
// ascending and interleaved (sorted[4·i+l] is rank i of column l) and
// writes their four results to dst.
type colOp struct {
	one  func(col, tmp []float64) float64
	four func(sorted []float64, n int, dst *[4]float64)
}

// coordwiseChecked is coordwise for inputs whose values may not have been
// checked yet (s.unchecked): the squared norms are accumulated during the
// transposition, and if some input turns out non-finite it is rejected and
// the pass repeated on the others. need checks the rule's requirement and
// reduce builds its reduction; both read s (its count and its effective
// f, which the rejections change), so they are called again after every
// rejection. It returns need's *RequirementError (evaluated on the final
// count) or ErrNoValidInputs.
func coordwiseChecked(s *screened, out []float64, need func() error, reduce func() colOp) error {
	if need() != nil {
		// Judge the requirement by the inputs that are really valid, and
		// the effective f that their rejections leave.
		if err := s.checkValues(); err != nil {
			return err
		}
	}
	if err := need(); err != nil {
		return err
	}
	norms := coordwise(s.x, out, reduce())
	if !s.unchecked {
		return nil
	}
	keep, err := s.keepFinite(norms)
	if err != nil || keep == nil {
		return err
	}
	if err := need(); err != nil {
		return err
	}
	coordwise(s.x, out, reduce())
	return nil
}

// coordwise sets out[c] to the reduction of column c (xs[0][c], …,
// xs[n−1][c]) for every coordinate c, with reduce.four on sorted columns
// when the vector kernels are available and n ≤ maxNetworkN, reduce.one
// otherwise. Coordinates are processed in parallel over fixed ranges, each
// transposing blocks of colBlock coordinates into a private scratch buffer;
// the output of one coordinate never depends on another's, so the result
// is independent of scheduling. It returns every input's
// squared norm, accumulated during the transposition (part by part, in
// part order), which costs one multiply-add per value and spares a
// separate pass over the inputs.
func coordwise(xs [][]float64, out []float64, reduce colOp) []float64 {
	n, d := len(xs), len(out)
	if reduce.four != nil && n <= maxNetworkN && vec.Accelerated() {
		return coordwiseNetwork(xs, out, reduce.four)
	}
	parts := min(64, max(1, d/2048))
	partial := make([]float64, parts*n)
	parallelFor(parts, int64(n)*int64(d)*8, func(p int) {
		lo, hi := span(d, parts, p, colBlock)
		scratch := make([]float64, n*colBlock+n)
		tmp := scratch[n*colBlock:]
		sq := partial[p*n : (p+1)*n]
		for c0 := lo; c0 < hi; c0 += colBlock {
			w := min(colBlock, hi-c0)
			for i, x := range xs {
				row := x[c0 : c0+w]
				var s float64
				for c, v := range row {
					scratch[c*n+i] = v
					s += v * v
				}
				sq[i] += s
			}
			for c := 0; c < w; c++ {
				out[c0+c] = reduce.one(scratch[c*n:(c+1)*n], tmp)
			}
		}
	})
	norms := partial[:n]
	for p := 1; p < parts; p++ {
		for i, v := range partial[p*n : (p+1)*n] {
			norms[i] += v
		}
	}
	return norms
}

// coordwiseNetwork is coordwise with sorted columns: blocks of colBlock
// coordinates are gathered four coordinates per row (the layout
// vec.Network.Sort4 wants), sorted, and handed to four.
func coordwiseNetwork(xs [][]float64, out []float64, four func(sorted []float64, n int, dst *[4]float64)) []float64 {
	n, d := len(xs), len(out)
	net := vec.SortingNetwork(n)
	parts := min(64, max(1, d/2048))
	partial := make([]float64, parts*n)
	const groups = colBlock / 4
	parallelFor(parts, int64(n)*int64(d)*8, func(p int) {
		lo, hi := span(d, parts, p, colBlock)
		scratch := make([]float64, groups*n*4)
		sq := partial[p*n : (p+1)*n]
		var res [4]float64
		for c0 := lo; c0 < hi; c0 += colBlock {
			w := min(colBlock, hi-c0)
			if w < colBlock {
				clear(scratch) // lanes past the last coordinate sort zeros
			}
			for i, x := range xs {
				row := x[c0 : c0+w]
				var s float64
				for c, v := range row {
					scratch[((c>>2)*n+i)*4+c&3] = v
					s += v * v
				}
				sq[i] += s
			}
			for g := 0; g*4 < w; g++ {
				buf := scratch[g*n*4 : (g+1)*n*4]
				net.Sort4(buf)
				four(buf, n, &res)
				for l := 0; l < 4 && g*4+l < w; l++ {
					out[c0+g*4+l] = res[l]
				}
			}
		}
	})
	norms := partial[:n]
	for p := 1; p < parts; p++ {
		for i, v := range partial[p*n : (p+1)*n] {
			norms[i] += v
		}
	}
	return norms
}
