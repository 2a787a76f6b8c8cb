package aggregate

// colBlock is the number of coordinates transposed at a time: n·colBlock
// values (25 KiB for n = 100) stay in L1 while each column is reduced.
const colBlock = 32

// coordwiseChecked is coordwise for inputs whose values may not have been
// checked yet (s.unchecked): the squared norms are accumulated during the
// transposition, and if some input turns out non-finite it is rejected and
// the pass repeated on the others. It returns a *RequirementError from
// need (evaluated on the final count) or ErrNoValidInputs.
func coordwiseChecked(s *screened, out []float64, need func(n int) error, reduce func(col, tmp []float64) float64) error {
	if err := need(s.n()); err != nil {
		// Report the requirement against the inputs that are really valid.
		if cerr := s.checkValues(); cerr != nil {
			return cerr
		}
		return need(s.n())
	}
	norms := coordwise(s.x, out, reduce)
	if !s.unchecked {
		return nil
	}
	keep, err := s.keepFinite(norms)
	if err != nil || keep == nil {
		return err
	}
	if err := need(s.n()); err != nil {
		return err
	}
	coordwise(s.x, out, reduce)
	return nil
}

// coordwise sets out[c] = reduce(column c) for every coordinate c, where
// column c holds xs[0][c], …, xs[n−1][c] in input order and may be
// reordered by reduce, and tmp is scratch of n values. Coordinates are processed in parallel over fixed
// ranges, each transposing blocks of colBlock coordinates into a private
// scratch buffer; the output of one coordinate never depends on another's,
// so the result is independent of scheduling. It returns every input's
// squared norm, accumulated during the transposition (part by part, in
// part order), which costs one multiply-add per value and spares a
// separate pass over the inputs.
func coordwise(xs [][]float64, out []float64, reduce func(col, tmp []float64) float64) []float64 {
	n, d := len(xs), len(out)
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
				out[c0+c] = reduce(scratch[c*n:(c+1)*n], tmp)
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
