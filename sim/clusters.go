package sim

// clusterScratch holds the reusable buffers of component labelling.
type clusterScratch struct {
	seen  []bool
	stack []int32
	sizes []float64
}

func (cs *clusterScratch) reset(cells int) {
	if cap(cs.seen) < cells {
		cs.seen = make([]bool, cells)
		cs.stack = make([]int32, 0, 64)
	}
	cs.seen = cs.seen[:cells]
	clear(cs.seen)
	cs.sizes = cs.sizes[:0]
}

// components labels the 4-connected components (no wrap-around) of the
// cells of the n×n row-major field v strictly above threshold. It returns
// their number; their sizes, in the order of each component's first cell
// in a row-major scan, are left in cs.sizes.
func (cs *clusterScratch) components(v []float64, n int, threshold float64) int {
	cs.reset(n * n)
	seen := cs.seen
	for start, x := range v {
		if seen[start] || !(x > threshold) {
			continue
		}
		seen[start] = true
		stack := append(cs.stack[:0], int32(start))
		size := 0
		for len(stack) > 0 {
			p := int(stack[len(stack)-1])
			stack = stack[:len(stack)-1]
			size++
			r, c := p/n, p%n
			if c > 0 && !seen[p-1] && v[p-1] > threshold {
				seen[p-1] = true
				stack = append(stack, int32(p-1))
			}
			if c < n-1 && !seen[p+1] && v[p+1] > threshold {
				seen[p+1] = true
				stack = append(stack, int32(p+1))
			}
			if r > 0 && !seen[p-n] && v[p-n] > threshold {
				seen[p-n] = true
				stack = append(stack, int32(p-n))
			}
			if r < n-1 && !seen[p+n] && v[p+n] > threshold {
				seen[p+n] = true
				stack = append(stack, int32(p+n))
			}
		}
		cs.stack = stack
		cs.sizes = append(cs.sizes, float64(size))
	}
	return len(cs.sizes)
}
