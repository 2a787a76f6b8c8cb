package vec

import "math"

// Float32 kernels. Updates travel as float32; these kernels read them
// without widening the whole vector first. Products of two float32 values
// are exact in float64, so every kernel here except Gram4x6F32 computes in
// float64 on widened values and matches the float64 kernels' accuracy.
// Gram4x6F32 multiplies and accumulates in float32 over each call, for
// twice the arithmetic throughput, and sums the lanes in float64; callers
// keep each call short (see Gram4x6F32) to bound the error.

// GramF32Run is the length of the runs over which Gram4x6F32 accumulates
// in float32: each of the 16 lanes adds GramF32Run/16 = 32 products, so
// the relative error of a run is at most about 32·2⁻²⁴ ≈ 2·10⁻⁶ of
// Σ|aᵢbᵢ| (typically √32·2⁻²⁴ ≈ 3·10⁻⁷); runs are summed in float64.
const GramF32Run = 512

// Gram4x6F32 adds the dot product of a[r] and b[c], for r < 4 and c < 6,
// to the eight float64 lanes out[(r*6+c)*8 : (r*6+c)*8+8]: the lanes hold partial sums
// whose total is the dot product, so that a caller summing many calls
// reduces the lanes once at the end (GramLanes) instead of once per call.
// All ten slices must have the same length; Gram4x6F32 panics otherwise.
// Rows may alias each other. Products are added in float32 over runs of
// GramF32Run coordinates and the runs in float64.
func Gram4x6F32(out *[192]float64, a *[4][]float32, b *[6][]float32) {
	n := len(a[0])
	for r := range a {
		_ = a[r][:n]
	}
	for c := range b {
		_ = b[c][:n]
	}
	if useAVX512 && n >= 16 {
		n16 := n &^ 15
		gram4x6F32Asm(&a[0][0], &a[1][0], &a[2][0], &a[3][0],
			&b[0][0], &b[1][0], &b[2][0], &b[3][0], &b[4][0], &b[5][0], n16, out)
		if n16 < n {
			gram4x6F32Range(out, a, b, n16, n)
		}
		return
	}
	Gram4x6F32Generic(out, a, b)
}

// Gram4x6F32Generic is the portable implementation of Gram4x6F32; it
// accumulates in float64 (exact products), so it is the more accurate of
// the two.
func Gram4x6F32Generic(out *[192]float64, a *[4][]float32, b *[6][]float32) {
	gram4x6F32Range(out, a, b, 0, len(a[0]))
}

func gram4x6F32Range(out *[192]float64, a *[4][]float32, b *[6][]float32, lo, hi int) {
	for r := 0; r < 4; r++ {
		x := a[r][lo:hi]
		for c := 0; c < 6; c++ {
			out[(r*6+c)*8] += DotF32(x, b[c][lo:hi])
		}
	}
}

// GramLanes returns the total of the eight lanes of a Gram4x6F32 entry,
// added in a fixed order.
func GramLanes(l *[8]float64) float64 {
	return ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]))
}

// DotF32 returns Σ a[i]·b[i] in float64 (each product exact). It panics
// if len(b) < len(a).
func DotF32(a, b []float32) float64 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float64
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += float64(a[i]) * float64(b[i])
		s1 += float64(a[i+1]) * float64(b[i+1])
		s2 += float64(a[i+2]) * float64(b[i+2])
		s3 += float64(a[i+3]) * float64(b[i+3])
	}
	for ; i < len(a); i++ {
		s0 += float64(a[i]) * float64(b[i])
	}
	return (s0 + s1) + (s2 + s3)
}

// SqDistF32 returns Σ (a[i]−b[i])² in float64: each difference of two
// float32 values is exact in float64. It panics if len(b) < len(a).
func SqDistF32(a, b []float32) float64 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float64
	i := 0
	for ; i+4 <= len(a); i += 4 {
		t0 := float64(a[i]) - float64(b[i])
		t1 := float64(a[i+1]) - float64(b[i+1])
		t2 := float64(a[i+2]) - float64(b[i+2])
		t3 := float64(a[i+3]) - float64(b[i+3])
		s0 += t0 * t0
		s1 += t1 * t1
		s2 += t2 * t2
		s3 += t3 * t3
	}
	for ; i < len(a); i++ {
		t := float64(a[i]) - float64(b[i])
		s0 += t * t
	}
	return (s0 + s1) + (s2 + s3)
}

// SqDistMixed returns Σ (z[i]−x[i])² for a float64 z and a float32 x, in
// float64. It panics if len(x) < len(z).
func SqDistMixed(z []float64, x []float32) float64 {
	x = x[:len(z)]
	if useAVX512 && len(z) >= 16 {
		n16 := len(z) &^ 15
		s := sqDistMixedAsm(&z[0], &x[0], n16)
		for i := n16; i < len(z); i++ {
			t := z[i] - float64(x[i])
			s += t * t
		}
		return s
	}
	return SqDistMixedGeneric(z, x)
}

// SqDistMixedGeneric is the portable implementation of SqDistMixed.
func SqDistMixedGeneric(z []float64, x []float32) float64 {
	x = x[:len(z)]
	var s0, s1, s2, s3 float64
	i := 0
	for ; i+4 <= len(z); i += 4 {
		t0 := z[i] - float64(x[i])
		t1 := z[i+1] - float64(x[i+1])
		t2 := z[i+2] - float64(x[i+2])
		t3 := z[i+3] - float64(x[i+3])
		s0 += t0 * t0
		s1 += t1 * t1
		s2 += t2 * t2
		s3 += t3 * t3
	}
	for ; i < len(z); i++ {
		t := z[i] - float64(x[i])
		s0 += t * t
	}
	return (s0 + s1) + (s2 + s3)
}

// CombineF32 sets dst[k] = Σ_j coef[j]·rows[j][off+k] (float64 arithmetic
// on the widened float32 values) for every k < len(dst), summing over j in
// increasing order. Each rows[j] must hold at least off+len(dst) elements
// and len(coef) must equal len(rows); CombineF32 panics otherwise.
func CombineF32(dst []float64, rows [][]float32, coef []float64, off int) {
	n := len(dst)
	if len(coef) != len(rows) {
		panic("vec: CombineF32: len(coef) != len(rows)")
	}
	for _, r := range rows {
		_ = r[off : off+n]
	}
	if n == 0 {
		return
	}
	if len(rows) == 0 {
		clear(dst)
		return
	}
	if useAVX512 && n >= 8 {
		var buf [256]*float32
		var ptrs []*float32
		if len(rows) <= len(buf) {
			ptrs = buf[:len(rows)]
		} else {
			ptrs = make([]*float32, len(rows))
		}
		for j, r := range rows {
			ptrs[j] = &r[0]
		}
		n8 := n &^ 7
		combineF32Asm(&dst[0], &ptrs[0], &coef[0], len(rows), off, n8)
		if n8 < n {
			combineF32Range(dst, rows, coef, off, n8, n)
		}
		return
	}
	CombineF32Generic(dst, rows, coef, off)
}

// CombineF32Generic is the portable implementation of CombineF32.
func CombineF32Generic(dst []float64, rows [][]float32, coef []float64, off int) {
	combineF32Range(dst, rows, coef, off, 0, len(dst))
}

func combineF32Range(dst []float64, rows [][]float32, coef []float64, off, lo, hi int) {
	d := dst[lo:hi]
	clear(d)
	for j, r := range rows {
		c := coef[j]
		x := r[off+lo : off+hi]
		for k := range d {
			d[k] = math.FMA(c, float64(x[k]), d[k])
		}
	}
}

// FiniteF32 reports whether every value of x is finite (no NaN, no ±Inf).
func FiniteF32(x []float32) bool {
	if useAVX512 && len(x) >= 16 {
		n16 := len(x) &^ 15
		if !finiteF32Asm(&x[0], n16) {
			return false
		}
		return FiniteF32Generic(x[n16:])
	}
	return FiniteF32Generic(x)
}

// FiniteF32Generic is the portable implementation of FiniteF32.
func FiniteF32Generic(x []float32) bool {
	var m uint32
	for _, v := range x {
		m = max(m, math.Float32bits(v)&0x7f800000)
	}
	return m != 0x7f800000
}

// Sort16F32 sorts sixteen interleaved float32 columns in place: buf holds N
// rows of sixteen values, buf[16·i+l] being row i of column l. Afterwards
// each column is in ascending order. It panics if len(buf) < 16·N. Values
// must not be NaN.
func (w *Network) Sort16F32(buf []float32) {
	_ = buf[:16*w.N]
	if len(w.Pairs) == 0 {
		return
	}
	if useAVX512 {
		sortNet16F32Asm(&buf[0], &w.offs64[0], len(w.Pairs))
		return
	}
	w.Sort16F32Generic(buf)
}

// Sort16F32Generic is the portable implementation of Sort16F32.
func (w *Network) Sort16F32Generic(buf []float32) {
	for _, pr := range w.Pairs {
		a := buf[16*pr[0] : 16*pr[0]+16]
		b := buf[16*pr[1] : 16*pr[1]+16]
		for l := 0; l < 16; l++ {
			if b[l] < a[l] {
				a[l], b[l] = b[l], a[l]
			}
		}
	}
}

// AcceleratedF32 reports whether the float32 vector kernels (AVX-512) are
// in use.
func AcceleratedF32() bool { return useAVX512 }

// PrefetchF32 asks the processor to bring x into its caches ahead of use
// (a hint: nothing is read into Go values, nothing can fault). It does
// nothing where no prefetch instruction is available.
func PrefetchF32(x []float32) {
	if n := len(x) &^ 15; hasPrefetch && n > 0 {
		prefetchF32(&x[0], n)
	}
}

// GramTile names the rows of one Gram4x6F32 call in GramTilesF32: A[r]
// and B[c] index the rows slice. Prefetch, when not zero, is 1 + the index
// of a row whose next block the tile asks the processor to fetch (see
// GramTilesF32); triangle tiles ignore it.
//
// When Tri is not zero the tile is a triangle tile: A is not read, and
// the 21 dot products of B[p] and B[q], p ≤ q, go to entries 0 … 20 in
// row-major order ((0,0), (0,1), … (0,5), (1,1), … (5,5)), each with the
// lanes and bits Gram4x6F32 gives the pair; entries 21 … 23 are left
// alone. It costs 21 multiply-adds per coordinate where the diagonal
// block of a column block takes 36 or more in 4×6 tiles.
type GramTile struct {
	A        [4]int32
	B        [6]int32
	Prefetch int32
	Tri      int32
}

// TriPair returns the pair (p, q) of triangle-tile entry e < 21.
func TriPair(e int) (p, q int) {
	for p = 0; e >= 6-p; p++ {
		e -= 6 - p
	}
	return p, p + e
}

// GramTiles is a checked list of tiles for GramTilesF32.
type GramTiles struct {
	tiles []GramTile
	rows  int // the number of rows the tiles need
}

// NewGramTiles checks and wraps a tile list; it panics on a negative
// index.
func NewGramTiles(tiles []GramTile) *GramTiles {
	g := &GramTiles{tiles: tiles}
	for t := range tiles {
		for _, i := range tiles[t].A {
			g.need(i, i+1)
		}
		for _, i := range tiles[t].B {
			g.need(i, i+1)
		}
		g.need(tiles[t].Prefetch, tiles[t].Prefetch)
	}
	return g
}

// need records that a tile field v requires k rows.
func (g *GramTiles) need(v, k int32) {
	if v < 0 {
		panic("vec: NewGramTiles: negative row index")
	}
	g.rows = max(g.rows, int(k))
}

// Len returns the number of tiles.
func (g *GramTiles) Len() int { return len(g.tiles) }

// Tile returns tile t.
func (g *GramTiles) Tile(t int) GramTile { return g.tiles[t] }

// GramTilesF32 is Gram4x6F32 for each tile in turn: tile t adds the dot
// products of rows[A[r]] and rows[B[c]] to out[192·t : 192·t+192] (the
// same lanes, the same float32 runs, hence the same bits as separate
// Gram4x6F32 calls). All rows must have the same length and every index
// must be in range; GramTilesF32 panics otherwise.
//
// When prefetch > 0 (a byte distance), each tile with Prefetch = p+1 also
// asks the processor to bring into its caches, a line per step, the
// memory prefetch bytes past row p, over the rows' length: a hint for
// rows laid out in longer arrays whose next block is read next.
// Prefetching never reads into Go values and cannot fault.
func GramTilesF32(out []float64, rows [][]float32, g *GramTiles, prefetch int) {
	tiles := g.tiles
	if len(tiles) == 0 {
		return
	}
	_ = out[:192*len(tiles)]
	_ = rows[:g.rows]
	n := len(rows[0])
	for _, r := range rows {
		if len(r) != n {
			panic("vec: GramTilesF32: rows of different lengths")
		}
	}
	if !useAVX512 || n < 16 {
		for t := range tiles {
			tileRange((*[192]float64)(out[192*t:]), rows, &tiles[t], 0, n)
		}
		return
	}
	var buf [256]*float32
	var ptrs []*float32
	if len(rows) <= len(buf) {
		ptrs = buf[:len(rows)]
	} else {
		ptrs = make([]*float32, len(rows))
	}
	for i, r := range rows {
		ptrs[i] = &r[0]
	}
	n16 := n &^ 15
	gramTilesF32Asm(&ptrs[0], &tiles[0], len(tiles), n16, &out[0], max(prefetch, 0))
	if n16 < n {
		for t := range tiles {
			tileRange((*[192]float64)(out[192*t:]), rows, &tiles[t], n16, n)
		}
	}
}

// tileRange adds coordinates [lo, hi) of tile t as the portable kernel
// does (lane 0 of each entry, float64 products).
func tileRange(out *[192]float64, rows [][]float32, t *GramTile, lo, hi int) {
	if t.Tri == 0 {
		a, b := tileRows(rows, t)
		gram4x6F32Range(out, &a, &b, lo, hi)
		return
	}
	for e := 0; e < 21; e++ {
		p, q := TriPair(e)
		out[e*8] += DotF32(rows[t.B[p]][lo:hi], rows[t.B[q]][lo:hi])
	}
}

func tileRows(rows [][]float32, t *GramTile) (a [4][]float32, b [6][]float32) {
	for r, i := range t.A {
		a[r] = rows[i]
	}
	for c, i := range t.B {
		b[c] = rows[i]
	}
	return a, b
}
