package sim

// BoxCounts returns, for each edge s of sizes, the number of occupied boxes
// that BoxDimension counts for that edge: with k = n/s, the boxes of the
// k×k tiling of the top-left k·s × k·s square that hold at least one true
// cell of the n×n row-major mask. An edge s ≤ 0 or s > n covers nothing
// and counts 0. It exposes the points of the log–log fit so that tools can
// show them; BoxDimension(mask, n, sizes) is the fit of the non-zero ones.
// It panics if len(mask) ≠ n·n (a programming error, as in BoxDimension).
func BoxCounts(mask []bool, n int, sizes []int) []int {
	if len(mask) != n*n {
		panic("sim: BoxCounts mask does not hold n·n cells")
	}
	out := make([]int, len(sizes))
	for i, s := range sizes {
		if s <= 0 || n/s == 0 {
			continue
		}
		out[i] = countBoxes(mask, n, s, n/s)
	}
	return out
}
