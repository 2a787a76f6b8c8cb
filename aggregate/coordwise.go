package aggregate

// colBlock is the number of coordinates transposed at a time: n·colBlock
// values (25 KiB for n = 100) stay in L1 while each column is reduced.
const colBlock = 32

// coordwise sets out[c] = reduce(column c) for every coordinate c, where
// column c holds xs[0][c], …, xs[n−1][c] in input order and may be
// reordered by reduce, and tmp is scratch of n values. Coordinates are processed in parallel over fixed
// ranges, each transposing blocks of colBlock coordinates into a private
// scratch buffer; the output of one coordinate never depends on another's,
// so the result is independent of scheduling.
func coordwise(xs [][]float64, out []float64, reduce func(col, tmp []float64) float64) {
	n, d := len(xs), len(out)
	parts := min(64, max(1, d/2048))
	parallelFor(parts, int64(n)*int64(d)*8, func(p int) {
		lo, hi := span(d, parts, p, colBlock)
		scratch := make([]float64, n*colBlock+n)
		tmp := scratch[n*colBlock:]
		for c0 := lo; c0 < hi; c0 += colBlock {
			w := min(colBlock, hi-c0)
			for i, x := range xs {
				row := x[c0 : c0+w]
				for c, v := range row {
					scratch[c*n+i] = v
				}
			}
			for c := 0; c < w; c++ {
				out[c0+c] = reduce(scratch[c*n:(c+1)*n], tmp)
			}
		}
	})
}
