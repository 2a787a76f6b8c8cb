package aggregate

import (
	"math"
	"math/rand/v2"
	"slices"

	"github.com/mfn/mfn/aggregate/internal/vec"
)

// Hierarchical Krum on a Source, in bounded memory. The float64 rule
// (hkrum.go) materialises every cluster mean and works on whole vectors;
// here a representative is a recipe, never a vector: one input, or the
// mean of a cluster's inputs, whose coordinates [lo, hi) are computed on
// demand from the inputs' blocks, widened to float64. Every pass (the
// Gram matrices of the clusters and of the representatives, the median,
// the output) runs over fixed chunks of coordinates with the same
// kernels, chunking and order of summation as the float64 path, so:
//
//   - a streamed Source and the same updates in memory give the same bits;
//   - both give the float64 path's bits on the updates widened to float64,
//     except where a pair of vectors is so close that its distance is
//     recomputed directly (cancelTol): that sum is formed chunk by chunk
//     here and over the whole vector there, so it may differ in the last
//     bits, and a near-tie between Krum scores may then resolve otherwise.
//
// Memory: O(parts · n · chunk) float64 of blocks plus the n×n matrices
// and the d-long result, whatever d is.

// vecItem is one vector of a vecSet: Σ w[j]·(valid input of[j]), or,
// with w nil, the mean of the inputs in of (one input: that input
// itself). Pipelines build the weighted form (pipeline_source.go).
type vecItem struct {
	of []int
	w  []float64
}

// vecSet gives blocks of float64 vectors defined over a reader's valid
// inputs.
type vecSet struct {
	rd    *reader
	items []vecItem
}

// setScratch is one goroutine's buffers for vecSet.fill.
type setScratch struct {
	f32  []float32
	rows []float64
	view [][]float64
	coef []float64
	// med and medViews hold the blocks medianSet gathers.
	med      []float64
	medViews [][]float64
	// in, inViews and slot hold fillAll's widened inputs: slot[i] is
	// input i's row in in, or −1.
	in      []float64
	inViews [][]float64
	slot    []int
}

// fillAll writes coordinates [lo, hi) of item set[k] into views[k] for
// every k, widening each input the items read once (a mean recipe reads
// its inputs, which other recipes share). The values are fill's.
func (vs *vecSet) fillAll(set []int, lo, hi int, views [][]float64, sc *setScratch) error {
	singles := true
	for _, a := range set {
		if it := vs.items[a]; len(it.of) != 1 || it.w != nil {
			singles = false
			break
		}
	}
	if singles { // nothing shared: widen straight into views
		for k, a := range set {
			if err := vs.fill(a, lo, hi, views[k], sc); err != nil {
				return err
			}
		}
		return nil
	}
	w := hi - lo
	n := vs.rd.n()
	if len(sc.slot) != n {
		sc.slot = make([]int, n)
	}
	for i := range sc.slot {
		sc.slot[i] = -1
	}
	used := 0
	for _, a := range set {
		for _, i := range vs.items[a].of {
			if sc.slot[i] < 0 {
				sc.slot[i] = used
				used++
			}
		}
	}
	if cap(sc.in) < used*w {
		sc.in = make([]float64, used*w)
	}
	if cap(sc.f32) < w {
		sc.f32 = make([]float32, w)
	}
	for i, sl := range sc.slot {
		if sl < 0 {
			continue
		}
		r, err := vs.rd.row(i, lo, hi, sc.f32[:w])
		if err != nil {
			return err
		}
		row := sc.in[sl*w : (sl+1)*w]
		for c, v := range r {
			row[c] = float64(v)
		}
	}
	for k, a := range set {
		it := vs.items[a]
		if len(it.of) == 1 && it.w == nil {
			sl := sc.slot[it.of[0]]
			copy(views[k], sc.in[sl*w:(sl+1)*w])
			continue
		}
		sc.inViews, sc.coef = sc.inViews[:0], sc.coef[:0]
		for j, i := range it.of {
			sl := sc.slot[i]
			sc.inViews = append(sc.inViews, sc.in[sl*w:(sl+1)*w:(sl+1)*w])
			sc.coef = append(sc.coef, it.coef(j))
		}
		combineSplit(views[k], lo, hi, vs.rd.d, sc.inViews, sc.coef)
	}
	return nil
}

// fill writes coordinates [lo, hi) of item a into dst. A mean is formed
// as meanOf forms it: vec.Combine with coefficients 1/m over the parts
// combineRows cuts d into, so a block boundary that is a multiple of 8
// never changes which coordinates the kernel fuses.
func (vs *vecSet) fill(a, lo, hi int, dst []float64, sc *setScratch) error {
	w := hi - lo
	if cap(sc.f32) < w {
		sc.f32 = make([]float32, w)
	}
	it := vs.items[a]
	of := it.of
	if len(of) == 1 && it.w == nil {
		r, err := vs.rd.row(of[0], lo, hi, sc.f32[:w])
		if err != nil {
			return err
		}
		for k, v := range r {
			dst[k] = float64(v)
		}
		return nil
	}
	m := len(of)
	if cap(sc.rows) < m*w {
		sc.rows = make([]float64, m*w)
	}
	sc.view, sc.coef = sc.view[:0], sc.coef[:0]
	for k, i := range of {
		r, err := vs.rd.row(i, lo, hi, sc.f32[:w])
		if err != nil {
			return err
		}
		row := sc.rows[k*w : (k+1)*w : (k+1)*w]
		for c, v := range r {
			row[c] = float64(v)
		}
		sc.view = append(sc.view, row)
		sc.coef = append(sc.coef, it.coef(k))
	}
	combineSplit(dst, lo, hi, vs.rd.d, sc.view, sc.coef)
	return nil
}

// gramSet is pairwiseGram over the items of vs: the same tiles, chunks,
// parts and kernel, on blocks filled chunk by chunk. Pairs below
// cancelTol are recomputed directly, chunk by chunk.
func gramSet(vs *vecSet) ([]float64, error) {
	n, d := len(vs.items), vs.rd.d
	out := make([]float64, n*n)
	if n == 0 || d == 0 {
		return out, nil
	}
	tiles := gramTiles(n)
	chunk := chunkLen(n)
	nchunks := (d + chunk - 1) / chunk
	parts := min(maxParts, nchunks)
	tlen := len(tiles) * 12
	partial := make([]float64, parts*tlen)
	e := make(errs, parts)
	all := allIndices(n)
	parallelFor(parts, int64(tlen)*int64(d), func(p int) {
		acc := partial[p*tlen : (p+1)*tlen]
		buf := make([]float64, n*chunk)
		views := make([][]float64, n)
		var sc setScratch
		clo, chi := span(nchunks, parts, p, 1)
		var a [3][]float64
		var b [4][]float64
		for c := clo; c < chi; c++ {
			lo := c * chunk
			hi := min(d, lo+chunk)
			w := hi - lo
			for i := range views {
				views[i] = buf[i*w : (i+1)*w : (i+1)*w]
			}
			if err := vs.fillAll(all, lo, hi, views, &sc); err != nil {
				e[p] = err
				return
			}
			for t, tile := range tiles {
				for r := range a {
					a[r] = views[min(tile.r0+r, n-1)]
				}
				for q := range b {
					b[q] = views[min(tile.c0+q, n-1)]
				}
				vec.Gram3x4((*[12]float64)(acc[t*12:t*12+12]), &a, &b)
			}
		}
	})
	if err := e.first(); err != nil {
		return nil, err
	}
	gram := partial[:tlen]
	for p := 1; p < parts; p++ {
		q := partial[p*tlen : (p+1)*tlen]
		for k := range gram {
			gram[k] += q[k]
		}
	}
	redo := gramToDist(gram, tiles, n, out, make([]float64, n))
	if len(redo) == 0 {
		return out, nil
	}
	// Direct distances of the near pairs, chunk by chunk.
	rparts := min(len(redo), 4*maxParts)
	re := make(errs, rparts)
	parallelFor(rparts, int64(len(redo))*int64(d), func(p int) {
		lo, hi := span(len(redo), rparts, p, 1)
		bi := make([]float64, min(chunk, d))
		bj := make([]float64, len(bi))
		var sc setScratch
		for _, pr := range redo[lo:hi] {
			i, j := int(pr[0]), int(pr[1])
			var v float64
			for c0 := 0; c0 < d; c0 += chunk {
				c1 := min(d, c0+chunk)
				if err := vs.fill(i, c0, c1, bi[:c1-c0], &sc); err != nil {
					re[p] = err
					return
				}
				if err := vs.fill(j, c0, c1, bj[:c1-c0], &sc); err != nil {
					re[p] = err
					return
				}
				v += vec.SqDist(bi[:c1-c0], bj[:c1-c0])
			}
			out[i*n+j] = v
			out[j*n+i] = v
		}
	})
	return out, re.first()
}

// compareItems orders items a and b of vs lexicographically, block by
// block (as slices.Compare on the whole vectors would).
func compareItems(vs *vecSet, a, b int) (int, error) {
	d := vs.rd.d
	ba := make([]float64, min(sourceBlock, d))
	bb := make([]float64, len(ba))
	var sc setScratch
	for lo := 0; lo < d; lo += sourceBlock {
		hi := min(d, lo+sourceBlock)
		if err := vs.fill(a, lo, hi, ba[:hi-lo], &sc); err != nil {
			return 0, err
		}
		if err := vs.fill(b, lo, hi, bb[:hi-lo], &sc); err != nil {
			return 0, err
		}
		if c := slices.Compare(ba[:hi-lo], bb[:hi-lo]); c != 0 {
			return c, nil
		}
	}
	return 0, nil
}

// krumSet returns the Krum scores of the items of vs with k neighbours
// and the position of the lowest (ties broken lexicographically, as
// argminScore does).
func krumSet(vs *vecSet, k int) ([]float64, int, error) {
	n := len(vs.items)
	dist, err := gramSet(vs)
	if err != nil {
		return nil, 0, err
	}
	sc := krumScores(dist, n, allIndices(n), k)
	best := 0
	for a := 1; a < n; a++ {
		c := cmpFloat(sc[a], sc[best])
		if c == 0 {
			if c, err = compareItems(vs, a, best); err != nil {
				return nil, 0, err
			}
		}
		if c < 0 {
			best = a
		}
	}
	return sc, best, nil
}

// eachBlock calls fn for fixed blocks of sourceBlock coordinates of d, in
// parallel; fn receives the block's bounds and its part's scratch.
func eachBlock(d int, work int64, fn func(lo, hi int, sc *setScratch) error) error {
	nblocks := (d + sourceBlock - 1) / sourceBlock
	parts := min(4*maxParts, max(1, nblocks))
	e := make(errs, parts)
	parallelFor(parts, work, func(p int) {
		blo, bhi := span(nblocks, parts, p, 1)
		var sc setScratch
		for b := blo; b < bhi; b++ {
			lo := b * sourceBlock
			if err := fn(lo, min(d, lo+sourceBlock), &sc); err != nil {
				e[p] = err
				return
			}
		}
	})
	return e.first()
}

// AggregateSource runs hierarchical Krum on the updates of src, reading
// them block by block (see "Big rounds" in the package documentation):
// the result is the same as Aggregate's on the updates widened to
// float64, bit for bit unless two vectors are so close that their
// distance is recomputed directly (then to rounding). Non-finite inputs
// are rejected as in Aggregate; weights are ignored but checked.
func (r *HierarchicalKrum) AggregateSource(src Source, weights []float64) ([]float64, Report, error) {
	if err := r.validate(); err != nil {
		return nil, Report{Rule: r.Name()}, err
	}
	s, rd, err := screenSource(r.Name(), src, weights)
	if err != nil {
		return nil, Report{Rule: r.Name()}, err
	}
	if err := checkValuesSource(s, rd); err != nil {
		return nil, Report{Rule: r.Name()}, wrapRule(r.Name(), err)
	}
	n, d := s.n(), s.d
	frac := s.fractionBudget(r.Fraction)
	c := r.Clusters
	if c == 0 {
		c = int(math.Ceil(math.Sqrt(float64(n))))
	}
	c = min(c, n)
	rng := r.Rand
	if rng == nil {
		rng = rand.New(rand.NewPCG(0x6d666e, 0x686b72756d))
	}
	members := make([][]int, c)
	for i := 0; i < n; i++ {
		k := rng.IntN(c)
		members[k] = append(members[k], i)
	}
	scores := make([]float64, n)
	top := &vecSet{rd: rd}
	var used []int
	for _, m := range members {
		switch fs := hkrumBudget(len(m), frac); {
		case len(m) == 0:
			continue
		case len(m) == 1 || len(m) <= 2*fs+2:
			top.items = append(top.items, vecItem{of: m})
			used = append(used, m...)
		default:
			cl := &vecSet{rd: rd, items: make([]vecItem, len(m))}
			for k, i := range m {
				cl.items[k] = vecItem{of: []int{i}}
			}
			sc, b, err := krumSet(cl, len(m)-fs-2)
			if err != nil {
				return nil, Report{Rule: r.Name()}, wrapRule(r.Name(), err)
			}
			for k, i := range m {
				scores[i] = sc[k]
			}
			top.items = append(top.items, vecItem{of: []int{m[b]}})
			used = append(used, m[b])
		}
	}
	out, err := hkrumTopSet(top, d, frac)
	if err != nil {
		return nil, Report{Rule: r.Name()}, wrapRule(r.Name(), err)
	}
	rep := s.report(r.Name(), used, "not chosen within its cluster")
	rep.Scores = s.scores(scores)
	return out, rep, nil
}

// hkrumTopSet is hkrumTop over the representatives of top, block by
// block.
func hkrumTopSet(top *vecSet, d int, frac float64) ([]float64, error) {
	nr := len(top.items)
	g := hkrumBudget(nr, frac)
	out := make([]float64, d)
	switch {
	case nr == 1:
		err := eachBlock(d, int64(d)*int64(len(top.items[0].of)), func(lo, hi int, sc *setScratch) error {
			return top.fill(0, lo, hi, out[lo:hi], sc)
		})
		return out, err
	case nr <= 2*g+2:
		return out, medianSet(top, out, -1)
	}
	_, kb, err := krumSet(top, nr-g-2)
	if err != nil {
		return nil, err
	}
	return out, medianSet(top, out, kb)
}

// medianSet writes the coordinate-wise lower median of the items of vs
// into out; with kb ≥ 0 it writes 0.7·item kb + 0.3·median instead.
func medianSet(vs *vecSet, out []float64, kb int) error {
	nr, d := len(vs.items), len(out)
	return eachBlock(d, int64(nr)*int64(d)*8, func(lo, hi int, sc *setScratch) error {
		w := hi - lo
		if cap(sc.med) < nr*w {
			sc.med = make([]float64, nr*w)
		}
		views := sc.medViews[:0]
		for a := 0; a < nr; a++ {
			views = append(views, sc.med[a*w:(a+1)*w:(a+1)*w])
		}
		if err := vs.fillAll(allIndices(nr), lo, hi, views, sc); err != nil {
			return err
		}
		sc.medViews = views
		coordwise(views, out[lo:hi], lowerMedianOp)
		if kb >= 0 {
			k := views[kb]
			for j := lo; j < hi; j++ {
				out[j] = 0.7*k[j-lo] + 0.3*out[j]
			}
		}
		return nil
	})
}

var _ SourceRule = (*HierarchicalKrum)(nil)
