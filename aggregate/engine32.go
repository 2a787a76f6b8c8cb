package aggregate

import (
	"fmt"
	"math"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/mfn/mfn/aggregate/internal/vec"
)

// The float32 engines: the same blocking and fixed partitions as the
// float64 engines (distance.go, coordwise.go, geomedian.go), reading
// blocks through a reader so that updates held in memory and updates
// streamed from a Source give the same bits.

// screenSource starts an AggregateSource call: the shape must not be
// negative, weights must be nil or one per update; a negative, NaN or infinite weight rejects its update. The
// values are checked later, by the engines (s.unchecked).
func screenSource(name string, src Source, weights []float64) (*screened, *reader, error) {
	if n, d := src.Shape(); n < 0 || d < 0 {
		return nil, nil, fmt.Errorf("%s: %w: source shape %d×%d", name, ErrBadArguments, n, d)
	}
	rd := newReader(src)
	n := rd.n()
	if weights != nil && len(weights) != n {
		return nil, nil, fmt.Errorf("%s: %w: %d weights for %d updates", name, ErrBadArguments, len(weights), n)
	}
	s := &screened{total: n, d: rd.d, unchecked: true}
	var ids []int
	for i := 0; i < n; i++ {
		if weights != nil && (weights[i] < 0 || math.IsNaN(weights[i]) || math.IsInf(weights[i], 0)) {
			s.rejected = append(s.rejected, Rejection{Index: i, Reason: fmt.Sprintf("invalid weight %v", weights[i])})
			continue
		}
		ids = append(ids, i)
		if weights != nil {
			s.w = append(s.w, weights[i])
		}
	}
	s.orig, rd.ids = ids, ids
	if len(ids) == 0 {
		if n == 0 {
			return nil, nil, fmt.Errorf("%s: %w: no updates given", name, ErrNoValidInputs)
		}
		return nil, nil, fmt.Errorf("%s: %w: all %d updates rejected (first: %s)", name, ErrNoValidInputs, n, s.rejected[0].Reason)
	}
	return s, rd, nil
}

// rejectSource drops the valid inputs a with bad[a] set, with the reason
// why(a), from s and rd (which share their index list), and completes the
// value check. It fails with ErrNoValidInputs when none is left.
func rejectSource(s *screened, rd *reader, bad []bool, why func(a int) string) error {
	s.unchecked = false
	var ids []int
	var w []float64
	for a, i := range s.orig {
		if bad[a] {
			s.rejected = append(s.rejected, Rejection{Index: i, Reason: why(a)})
			continue
		}
		ids = append(ids, i)
		if s.w != nil {
			w = append(w, s.w[a])
		}
	}
	sortRejections(s.rejected)
	s.orig, rd.ids, s.w = ids, ids, w
	if len(ids) == 0 {
		return fmt.Errorf("%w: all %d updates rejected (first: %s)", ErrNoValidInputs, s.total, s.rejected[0].Reason)
	}
	return nil
}

// nonFiniteReasonF32 names the first NaN or ±Inf of valid input a.
func nonFiniteReasonF32(rd *reader, a int) string {
	scratch := make([]float32, min(sourceBlock, rd.d))
	for lo := 0; lo < rd.d; lo += sourceBlock {
		hi := min(rd.d, lo+sourceBlock)
		r, err := rd.row(a, lo, hi, scratch)
		if err != nil {
			return "unreadable: " + err.Error()
		}
		for k, v := range r {
			switch f := float64(v); {
			case math.IsNaN(f):
				return fmt.Sprintf("NaN at coordinate %d", lo+k)
			case math.IsInf(f, 0):
				return fmt.Sprintf("%v at coordinate %d", f, lo+k)
			}
		}
	}
	return "not finite"
}

// finiteRows returns, for every valid input, whether all its values are
// finite, reading each input once block by block.
func finiteRows(rd *reader) ([]bool, error) {
	n := rd.n()
	ok := make([]bool, n)
	e := make(errs, n)
	parallelFor(n, int64(n)*int64(rd.d), func(a int) {
		scratch := make([]float32, min(sourceBlock, rd.d))
		ok[a] = true
		for lo := 0; lo < rd.d && ok[a]; lo += sourceBlock {
			r, err := rd.row(a, lo, min(rd.d, lo+sourceBlock), scratch)
			if err != nil {
				e[a] = err
				return
			}
			ok[a] = vec.FiniteF32(r)
		}
	})
	return ok, e.first()
}

// checkValuesSource runs the value check now if it is still pending.
func checkValuesSource(s *screened, rd *reader) error {
	if !s.unchecked {
		return nil
	}
	ok, err := finiteRows(rd)
	if err != nil {
		return err
	}
	bad := make([]bool, len(ok))
	for a, v := range ok {
		bad[a] = !v
	}
	return rejectSource(s, rd, bad, func(a int) string { return nonFiniteReasonF32(rd, a) })
}

// cancelTolF32 is cancelTol for the float32 Gram kernel, whose entries
// carry a relative error of up to ~2·10⁻⁶ (typically ~3·10⁻⁷) of
// ‖a‖²+‖b‖²: a pair closer than 10⁻³·(‖a‖²+‖b‖²) is recomputed exactly in
// float64, so every kept distance is within ~10⁻³ (typically ~3·10⁻⁴)
// relative of the exact one.
const cancelTolF32 = 1e-3

// chunkLenF32 is the number of coordinates per Gram chunk for n float32
// vectors: n·chunk·4 bytes ≈ chunkBytes, a multiple of vec.GramF32Run
// (so that the kernel's float32 runs start at the same coordinates
// whatever the blocking) between 512 and 8192.
func chunkLenF32(n int) int {
	c := (chunkBytes / 4) / max(n, 1)
	c -= c % vec.GramF32Run
	return min(max(c, vec.GramF32Run), 8192)
}

// gramPartsF32 is the number of fixed coordinate ranges (parts) over which
// the float32 Gram engine sums independently; parts are then added in part
// order, so the result does not depend on how many goroutines ran them.
const gramPartsF32 = 8

// gramPlanF32 is the fixed list of 4-row × 6-column kernel tiles covering
// every pair i ≤ j of n inputs, and, for each tile entry, the index i·n+j
// of the pair it provides (−1 when an earlier tile already provides it, or
// when it is padding).
type gramPlanF32 struct {
	tiles *vec.GramTiles
	own   [][24]int32
}

var gramPlans sync.Map // n → *gramPlanF32

// gramPlanForF32 returns the (cached) plan for n ≥ 1 inputs.
func gramPlanForF32(n int) *gramPlanF32 {
	if p, ok := gramPlans.Load(n); ok {
		return p.(*gramPlanF32)
	}
	p, _ := gramPlans.LoadOrStore(n, newGramPlanF32(n))
	return p.(*gramPlanF32)
}

// newGramPlanF32 tiles the upper triangle column block by column block:
// the six column vectors of a block stay in L1 while the row vectors
// above the block stream past, four per tile, and a triangle tile
// (vec.GramTile.Tri: 21 products per coordinate) covers the block's own
// pairs. Above a block starting at c0 ≡ 2 (mod 4), the last two rows go
// in a tile of their own (half of it padding). When n = 6q + r with
// 1 ≤ r ≤ 4 and q ≥ 1, the last r columns are instead taken as the rows
// of q tiles over the first 6q inputs (the transpose), plus a triangle
// tile for their own pairs, so no tile multiplies padding columns
// against every row above.
func newGramPlanF32(n int) *gramPlanF32 {
	p := &gramPlanF32{}
	var tiles []vec.GramTile
	seen := make([]bool, n*n)
	clamp := func(v int) int32 { return int32(min(v, n-1)) }
	own := func(i, j int32) int32 {
		if i > j {
			i, j = j, i
		}
		k := int(i)*n + int(j)
		if seen[k] {
			return -1
		}
		seen[k] = true
		return int32(k)
	}
	add := func(a [4]int32, b [6]int32) {
		var o [24]int32
		for r := range a {
			for c := range b {
				o[r*6+c] = own(a[r], b[c])
			}
		}
		tiles = append(tiles, vec.GramTile{A: a, B: b})
		p.own = append(p.own, o)
	}
	tri := func(b [6]int32) {
		var o [24]int32
		for e := range o {
			o[e] = -1
		}
		for e := 0; e < 21; e++ {
			i, j := vec.TriPair(e)
			o[e] = own(b[i], b[j])
		}
		tiles = append(tiles, vec.GramTile{A: [4]int32{b[0], b[0], b[0], b[0]}, B: b, Tri: 1})
		p.own = append(p.own, o)
	}
	q, rem := n/6, n%6
	transposed := q >= 1 && rem >= 1 && rem <= 4
	last := n
	if transposed {
		last = 6 * q
	}
	for c0 := 0; c0 < last; c0 += 6 {
		var b [6]int32
		for c := range b {
			b[c] = clamp(c0 + c)
		}
		top := c0 &^ 3
		for r0 := 0; r0 < top; r0 += 4 {
			add([4]int32{int32(r0), int32(r0 + 1), int32(r0 + 2), int32(r0 + 3)}, b)
		}
		if top < c0 {
			add([4]int32{int32(top), int32(top + 1), int32(top + 1), int32(top + 1)}, b)
		}
		tri(b)
	}
	if transposed {
		var a [4]int32
		for r := range a {
			a[r] = clamp(last + r)
		}
		for c0 := 0; c0 < last; c0 += 6 {
			var b [6]int32
			for c := range b {
				b[c] = int32(c0 + c)
			}
			add(a, b)
		}
		var b [6]int32
		for c := range b {
			b[c] = clamp(last + c)
		}
		tri(b)
	}
	// The 4×6 tiles prefetch the rows in order, spread over the pass, one
	// line per kernel step: the k-th of K such tiles prefetches row
	// ⌊k·n/K⌋ when that row is new.
	var full []int
	for t := range tiles {
		if tiles[t].Tri == 0 {
			full = append(full, t)
		}
	}
	prev := -1
	for k, t := range full {
		if r := k * n / len(full); r != prev {
			tiles[t].Prefetch = int32(r + 1)
			prev = r
		}
	}
	p.tiles = vec.NewGramTiles(tiles)
	return p
}

// f64Pool and f32Pool keep the engines' large scratch buffers from one
// call to the next.
var f64Pool, f32Pool sync.Pool

func getF64(n int) []float64 {
	if b, ok := f64Pool.Get().(*[]float64); ok && cap(*b) >= n {
		return (*b)[:n]
	}
	return make([]float64, n)
}

func putF64(b []float64) { f64Pool.Put(&b) }

func getF32(n int) []float32 {
	if b, ok := f32Pool.Get().(*[]float32); ok && cap(*b) >= n {
		return (*b)[:n]
	}
	return make([]float32, n)
}

func putF32(b []float32) { f32Pool.Put(&b) }

// pairwiseGramF32 returns the squared distances (n×n, row-major) and the
// squared norms of the valid inputs of rd. The Gram entries come from
// vec.Gram4x6F32 over fixed chunks, each part's lanes folded (GramLanes)
// and the parts added in part order; pairs closer than cancelTolF32
// relative to their norms, and every pair of an input whose float32
// squared norm is not finite, are recomputed exactly (vec.SqDistF32,
// chunk by chunk in the same order). A vector with NaN or ±Inf has a NaN
// or infinite norm.
//
// Each part reads its coordinate range of all n inputs once, a chunk of
// chunkLenF32(n) coordinates at a time (n·chunk·4 bytes, in L2), and runs
// every tile of the plan over the chunk; while it does, it prefetches the
// next chunk of inputs held in memory, spread over the tiles, so that the
// next chunk's rows arrive from DRAM while the kernel computes. Each
// goroutine keeps one lane buffer (192 float64 per tile) for all the parts
// it runs.
func pairwiseGramF32(rd *reader) (out, diag []float64, err error) {
	n, d := rd.n(), rd.d
	out = make([]float64, n*n)
	diag = make([]float64, n)
	if n == 0 || d == 0 {
		return out, diag, nil
	}
	plan := gramPlanForF32(n)
	nt := plan.tiles.Len()
	chunk := chunkLenF32(n)
	nchunks := (d + chunk - 1) / chunk
	parts := min(gramPartsF32, nchunks)
	tlen := nt * 192
	sums := getF64(parts * nt * 24)
	defer putF64(sums)
	e := make(errs, parts)
	runPart := func(p int, acc []float64, scratch []float32, views [][]float32) {
		clear(acc)
		clo, chi := span(nchunks, parts, p, 1)
		for c := clo; c < chi; c++ {
			lo := c * chunk
			hi := min(d, lo+chunk)
			var err error
			if views, err = rd.rows(lo, hi, scratch, views); err != nil {
				e[p] = err
				return
			}
			// Rows in memory: the tiles prefetch the next chunk of
			// every row, row after row, while this one is computed.
			pf := 0
			if rd.mem != nil && c+1 < chi {
				pf = 4 * chunk
			}
			vec.GramTilesF32(acc, views, plan.tiles, pf)
		}
		dst := sums[p*nt*24 : (p+1)*nt*24]
		for k := range dst {
			dst[k] = vec.GramLanes((*[8]float64)(acc[k*8 : k*8+8]))
		}
	}
	worker := func(next *atomic.Int64) {
		acc := getF64(tlen)
		defer putF64(acc)
		var scratch []float32
		if rd.needsScratch() {
			scratch = getF32(n * chunk)
			defer putF32(scratch)
		}
		views := make([][]float32, 0, n)
		for {
			p := int(next.Add(1) - 1)
			if p >= parts {
				return
			}
			runPart(p, acc, scratch, views)
		}
	}
	workers := min(runtime.GOMAXPROCS(0), parts)
	if int64(tlen)*int64(d)/2 < minParallelWork {
		workers = 1
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 1; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			worker(&next)
		}()
	}
	worker(&next)
	wg.Wait()
	if err := e.first(); err != nil {
		return nil, nil, err
	}
	for t := range nt {
		for k, dst := range plan.own[t] {
			if dst < 0 {
				continue
			}
			var g float64
			for p := range parts {
				g += sums[(p*nt+t)*24+k]
			}
			out[dst] = g
		}
	}
	for i := range diag {
		diag[i] = out[i*n+i]
	}
	// A float32 accumulation may overflow for finite values above ~1e19:
	// such an input's pairs are recomputed exactly, and its norm too.
	exact := make([]bool, n)
	var exactRows []int
	for i, v := range diag {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			exact[i] = true
			exactRows = append(exactRows, i)
		}
	}
	if len(exactRows) > 0 {
		ok, err := finiteRowsOf(rd, exactRows)
		if err != nil {
			return nil, nil, err
		}
		for k, i := range exactRows {
			if !ok[k] {
				exact[i] = false // truly non-finite: leave NaN/Inf for the caller
				diag[i] = math.Inf(1)
			}
		}
	}
	var redo [][2]int32
	for i := 0; i < n; i++ {
		out[i*n+i] = 0
		for j := i + 1; j < n; j++ {
			s := diag[i] + diag[j]
			v := s - 2*out[i*n+j]
			if exact[i] || exact[j] || v < cancelTolF32*s {
				redo = append(redo, [2]int32{int32(i), int32(j)})
			}
			v = max(v, 0)
			out[i*n+j] = v
			out[j*n+i] = v
		}
	}
	if len(redo) > 0 {
		vals, err := sqDistPairsF32(rd, redo, chunk, parts)
		if err != nil {
			return nil, nil, err
		}
		for k, pr := range redo {
			i, j := int(pr[0]), int(pr[1])
			out[i*n+j] = vals[k]
			out[j*n+i] = vals[k]
		}
		for _, i := range exactRows {
			if exact[i] {
				if diag[i], err = sqNormF32(rd, i); err != nil {
					return nil, nil, err
				}
			}
		}
	}
	return out, diag, nil
}

// finiteRowsOf is finiteRows restricted to the valid inputs in which.
func finiteRowsOf(rd *reader, which []int) ([]bool, error) {
	sub := &reader{src: rd.src, mem: rd.mem, d: rd.d}
	for _, a := range which {
		sub.ids = append(sub.ids, rd.ids[a])
	}
	return finiteRows(sub)
}

// sqNormF32 returns ‖x_a‖² in float64, exact products, chunk by chunk.
func sqNormF32(rd *reader, a int) (float64, error) {
	scratch := make([]float32, min(sourceBlock, rd.d))
	var s float64
	for lo := 0; lo < rd.d; lo += sourceBlock {
		r, err := rd.row(a, lo, min(rd.d, lo+sourceBlock), scratch)
		if err != nil {
			return 0, err
		}
		s += vec.DotF32(r, r)
	}
	return s, nil
}

// sqDistPairsF32 computes ‖x_i − x_j‖² exactly (float64) for each pair,
// over the same fixed chunks and parts as the Gram pass.
func sqDistPairsF32(rd *reader, pairs [][2]int32, chunk, parts int) ([]float64, error) {
	d := rd.d
	nchunks := (d + chunk - 1) / chunk
	np := len(pairs)
	partial := make([]float64, parts*np)
	e := make(errs, parts)
	parallelFor(parts, int64(np)*int64(d), func(p int) {
		acc := partial[p*np : (p+1)*np]
		sa := make([]float32, chunk)
		sb := make([]float32, chunk)
		clo, chi := span(nchunks, parts, p, 1)
		for c := clo; c < chi; c++ {
			lo := c * chunk
			hi := min(d, lo+chunk)
			for k, pr := range pairs {
				a, err := rd.row(int(pr[0]), lo, hi, sa)
				if err != nil {
					e[p] = err
					return
				}
				b, err := rd.row(int(pr[1]), lo, hi, sb)
				if err != nil {
					e[p] = err
					return
				}
				acc[k] += vec.SqDistF32(a, b)
			}
		}
	})
	if err := e.first(); err != nil {
		return nil, err
	}
	vals := partial[:np]
	for p := 1; p < parts; p++ {
		for k, v := range partial[p*np : (p+1)*np] {
			vals[k] += v
		}
	}
	return vals, nil
}

// distancesSource is (*screened).distances for a Source: the pairwise
// squared distances of the valid inputs, rejecting (and dropping from the
// matrix) the inputs holding NaN or ±Inf.
func distancesSource(s *screened, rd *reader) ([]float64, error) {
	dist, diag, err := pairwiseGramF32(rd)
	if err != nil {
		return nil, err
	}
	n := len(diag)
	bad := make([]bool, n)
	found := false
	for a, v := range diag {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			bad[a], found = true, true
		}
	}
	reasons := make([]string, n)
	for a := range bad {
		if bad[a] {
			reasons[a] = nonFiniteReasonF32(rd, a)
		}
	}
	keep := make([]int, 0, n)
	for a := range bad {
		if !bad[a] {
			keep = append(keep, a)
		}
	}
	if err := rejectSource(s, rd, bad, func(a int) string { return reasons[a] }); err != nil || !found {
		return dist, err
	}
	m := len(keep)
	sub := make([]float64, m*m)
	for a, i := range keep {
		for b, j := range keep {
			sub[a*m+b] = dist[i*n+j]
		}
	}
	return sub, nil
}

// combineSource sets dst = Σ_k coef[k]·x_{set[k]} over the valid inputs
// in set, in parallel over the same fixed coordinate ranges as combineRows,
// reading sourceBlock coordinates at a time. Each coordinate is the same
// chain of fused multiply-adds whatever the blocking (vec.CombineF32).
func combineSource(dst []float64, rd *reader, set []int, coef []float64) error {
	d := len(dst)
	parts := min(16, max(1, d/8192))
	e := make(errs, parts)
	sub := &reader{src: rd.src, mem: rd.mem, d: rd.d}
	for _, a := range set {
		sub.ids = append(sub.ids, rd.ids[a])
	}
	parallelFor(parts, int64(d)*int64(len(set)), func(p int) {
		lo, hi := span(d, parts, p, 8)
		var scratch []float32
		if sub.needsScratch() {
			scratch = make([]float32, len(set)*sourceBlock)
		}
		views := make([][]float32, 0, len(set))
		for b0 := lo; b0 < hi; b0 += sourceBlock {
			b1 := min(hi, b0+sourceBlock)
			var err error
			if views, err = sub.rows(b0, b1, scratch, views); err != nil {
				e[p] = err
				return
			}
			sub.prefetch(b1, min(hi, b1+sourceBlock))
			vec.CombineF32(dst[b0:b1], views, coef, 0)
		}
	})
	return e.first()
}

// passScratch keeps combinePassSource's per-part read buffers from one
// iteration to the next.
type passScratch [][]float32

// get returns part p's buffer of at least size values.
func (ps passScratch) get(p, size int) []float32 {
	if cap(ps[p]) < size {
		ps[p] = make([]float32, size)
	}
	return ps[p][:size]
}

// combinePassSource is combinePass for a Source: z = Σ coef_i·x_i and
// every ‖z − x_i‖² (and, with prev, ‖z − prev‖² and ‖z‖²), chunk by chunk
// over fixed parts summed in part order. ps (2·maxParts buffers) is
// reused across calls.
func combinePassSource(z []float64, rd *reader, coef []float64, prev []float64, ps passScratch) (sqd []float64, change, norm float64, err error) {
	return combinePassExtra(z, rd, coef, nil, 0, prev, ps)
}

// combinePassExtra is combinePassSource with one more float64 row: z =
// Σ coef_i·x_i + extraCoef·extra (the extra term fused last, as when it is
// the last row of a float64 combination). extra may be nil.
func combinePassExtra(z []float64, rd *reader, coef []float64, extra []float64, extraCoef float64, prev []float64, ps passScratch) (sqd []float64, change, norm float64, err error) {
	n, d := rd.n(), len(z)
	chunk := chunkLen(n)
	nchunks := (d + chunk - 1) / chunk
	parts := min(2*maxParts, max(nchunks, 1))
	stride := n + 2
	partial := make([]float64, parts*stride)
	e := make(errs, parts)
	parallelFor(parts, int64(n)*int64(d)*2, func(p int) {
		acc := partial[p*stride : (p+1)*stride]
		var scratch []float32
		if rd.needsScratch() {
			scratch = ps.get(p, n*chunk)
		}
		views := make([][]float32, 0, n)
		clo, chi := span(nchunks, parts, p, 1)
		for c := clo; c < chi; c++ {
			lo := c * chunk
			hi := min(d, lo+chunk)
			var err error
			if views, err = rd.rows(lo, hi, scratch, views); err != nil {
				e[p] = err
				return
			}
			if c+1 < chi {
				rd.prefetch(hi, min(d, hi+chunk))
			}
			zc := z[lo:hi]
			vec.CombineF32(zc, views, coef, 0)
			if extra != nil {
				for k, v := range extra[lo:hi] {
					zc[k] = math.FMA(extraCoef, v, zc[k])
				}
			}
			for i, x := range views {
				acc[i] += vec.SqDistMixed(zc, x)
			}
			if prev != nil {
				acc[n] += vec.SqDist(zc, prev[lo:hi])
				acc[n+1] += vec.Dot(zc, zc)
			}
		}
	})
	if err := e.first(); err != nil {
		return nil, 0, 0, err
	}
	sqd = make([]float64, n)
	for p := 0; p < parts; p++ {
		acc := partial[p*stride : (p+1)*stride]
		for i := range sqd {
			sqd[i] += acc[i]
		}
		change += acc[n]
		norm += acc[n+1]
	}
	return sqd, change, norm, nil
}

// colOpF32 reduces float32 columns: sixteen receives sixteen columns
// sorted ascending and interleaved (sorted[16·i+l] is rank i of column l)
// and writes their results; one reduces a single widened column
// (reordering it; tmp is scratch), for inputs too many for the network.
type colOpF32 struct {
	sixteen func(sorted []float32, n int, dst *[16]float64)
	// ranks, when not nil, returns the only ranks sixteen reads (lo … hi):
	// the network is then pruned to them (vec.SelectionNetwork).
	ranks func(n int) (lo, hi int)
	one   func(col, tmp []float64) float64
}

// coordwiseSource sets out[c] to the reduction of column c of the valid
// inputs, over the same fixed parts as coordwise, reading sourceBlock
// coordinates of every input at a time. It reports which inputs hold a
// NaN or ±Inf (their columns' results are then meaningless and the caller
// repeats the pass without them).
func coordwiseSource(rd *reader, out []float64, op colOpF32) (bad []bool, err error) {
	n, d := rd.n(), len(out)
	useNet := n <= maxNetworkN && (vec.AcceleratedF32() || op.one == nil)
	var net *vec.Network
	if useNet {
		net = vec.SortingNetwork(n)
		if op.ranks != nil {
			net = vec.SelectionNetwork(rankRange(op.ranks, n))
		}
	}
	// Eight parts of contiguous blocks (each column's result depends
	// on that column only, so the partition changes no bit): within a
	// part, each row's next block is prefetched while this one is
	// reduced.
	parts := min(8, max(1, d/2048))
	badParts := make([]bool, parts*n)
	e := make(errs, parts)
	parallelFor(parts, int64(n)*int64(d)*8, func(p int) {
		lo, hi := span(d, parts, p, 16)
		var scratch []float32
		if rd.needsScratch() {
			scratch = make([]float32, n*sourceBlock)
		}
		views := make([][]float32, 0, n)
		buf := make([]float32, 16*n)
		col := make([]float64, 2*n)
		var res [16]float64
		flags := badParts[p*n : (p+1)*n]
		for b0 := lo; b0 < hi; b0 += sourceBlock {
			b1 := min(hi, b0+sourceBlock)
			var err error
			if views, err = rd.rows(b0, b1, scratch, views); err != nil {
				e[p] = err
				return
			}
			rd.prefetch(b1, min(hi, b1+sourceBlock))
			for i, r := range views {
				if !vec.FiniteF32(r) {
					flags[i] = true
				}
			}
			w := b1 - b0
			if !useNet {
				for c := 0; c < w; c++ {
					for i, r := range views {
						col[i] = float64(r[c])
					}
					out[b0+c] = op.one(col[:n], col[n:])
				}
				continue
			}
			for g := 0; g < w; g += 16 {
				gw := min(16, w-g)
				if gw < 16 {
					clear(buf) // lanes past the last coordinate sort zeros
				}
				if gw == 16 {
					for i, r := range views {
						*(*[16]float32)(buf[16*i:]) = *(*[16]float32)(r[g:])
					}
				} else {
					for i, r := range views {
						copy(buf[16*i:16*i+gw], r[g:g+gw])
					}
				}
				net.Sort16F32(buf)
				op.sixteen(buf, n, &res)
				copy(out[b0+g:b0+g+gw], res[:gw])
			}
		}
	})
	if err := e.first(); err != nil {
		return nil, err
	}
	bad = make([]bool, n)
	for p := 0; p < parts; p++ {
		for i, v := range badParts[p*n : (p+1)*n] {
			bad[i] = bad[i] || v
		}
	}
	return bad, nil
}

// coordwiseCheckedSource is coordwiseChecked for a Source: need checks the
// rule's requirement and reduce builds its reduction, both reading s,
// which rejections change.
func coordwiseCheckedSource(s *screened, rd *reader, out []float64, need func() error, reduce func() colOpF32) error {
	if need() != nil {
		if err := checkValuesSource(s, rd); err != nil {
			return err
		}
	}
	for {
		if err := need(); err != nil {
			return err
		}
		bad, err := coordwiseSource(rd, out, reduce())
		if err != nil {
			return err
		}
		found := false
		for _, b := range bad {
			found = found || b
		}
		if !found {
			s.unchecked = false
			return nil
		}
		reasons := make([]string, len(bad))
		for a := range bad {
			if bad[a] {
				reasons[a] = nonFiniteReasonF32(rd, a)
			}
		}
		if err := rejectSource(s, rd, bad, func(a int) string { return reasons[a] }); err != nil {
			return err
		}
	}
}

func rankRange(ranks func(int) (int, int), n int) (int, int, int) {
	lo, hi := ranks(n)
	return n, lo, hi
}

// medianRanks are the ranks medianOf16 reads.
func medianRanks(n int) (lo, hi int) {
	if n%2 == 1 {
		return n / 2, n / 2
	}
	return n/2 - 1, n / 2
}

// medianOf16 is medianOf4 for sixteen sorted float32 columns, in float64
// (the same arithmetic as on the widened values).
func medianOf16(sorted []float32, n int, dst *[16]float64) {
	h := n / 2
	for l := range dst {
		if n%2 == 1 {
			dst[l] = float64(sorted[16*h+l])
		} else {
			dst[l] = (float64(sorted[16*(h-1)+l]) + float64(sorted[16*h+l])) / 2
		}
	}
}

// trimmedMean16 is trimmedMean4 for sixteen sorted float32 columns: the
// kept values are summed in ascending order, in float64.
func trimmedMean16(sorted []float32, n, f int, dst *[16]float64) {
	var s [16]float64
	for i := f; i < n-f; i++ {
		row := sorted[16*i : 16*i+16]
		for l := range s {
			s[l] += float64(row[l])
		}
	}
	for l := range dst {
		dst[l] = s[l] / float64(n-2*f)
	}
}

// prefetch asks the processor to fetch coordinates [lo, hi) of every
// valid input held in memory, row after row (sequential streams, which
// the memory system serves at full speed), so that a pass that then reads
// them across all rows at once finds them in cache. It does nothing for a
// Source that is not in memory or an empty range.
func (rd *reader) prefetch(lo, hi int) {
	if rd.mem == nil || lo >= hi {
		return
	}
	for _, i := range rd.ids {
		vec.PrefetchF32(rd.mem[i][lo:hi])
	}
}
