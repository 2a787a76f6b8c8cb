package vec

// Dot returns Σ a[i]·b[i] over i < len(a). It panics if len(b) < len(a).
func Dot(a, b []float64) float64 {
	n := len(a)
	b = b[:n]
	if useAsm && n >= 4 {
		n4 := n &^ 3
		s := dotAsm(&a[0], &b[0], n4)
		for i := n4; i < n; i++ {
			s += a[i] * b[i]
		}
		return s
	}
	return DotGeneric(a, b)
}

// SqDist returns Σ (a[i]−b[i])² over i < len(a). It panics if
// len(b) < len(a).
func SqDist(a, b []float64) float64 {
	n := len(a)
	b = b[:n]
	if useAsm && n >= 4 {
		n4 := n &^ 3
		s := sqDistAsm(&a[0], &b[0], n4)
		for i := n4; i < n; i++ {
			t := a[i] - b[i]
			s += t * t
		}
		return s
	}
	return SqDistGeneric(a, b)
}

// Combine sets dst[k] = Σ_j coef[j]·rows[j][off+k] for every k < len(dst),
// summing over j in increasing order. Each rows[j] must hold at least
// off+len(dst) elements and len(coef) must equal len(rows); Combine panics
// otherwise. dst must not overlap any row.
func Combine(dst []float64, rows [][]float64, coef []float64, off int) {
	n := len(dst)
	if len(coef) != len(rows) {
		panic("vec: Combine: len(coef) != len(rows)")
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
	if useAsm && n >= 4 {
		var buf [256]*float64
		var ptrs []*float64
		if len(rows) <= len(buf) {
			ptrs = buf[:len(rows)]
		} else {
			ptrs = make([]*float64, len(rows))
		}
		for j, r := range rows {
			ptrs[j] = &r[0]
		}
		n4 := n &^ 3
		combineAsm(&dst[0], &ptrs[0], &coef[0], len(rows), off, n4)
		if n4 < n {
			combineGenericRange(dst, rows, coef, off, n4, n)
		}
		return
	}
	CombineGeneric(dst, rows, coef, off)
}

// Combine4 computes four combinations of the same rows at once:
// dst[r][k] = Σ_j coef[r*len(rows)+j]·rows[j][off+k] for r < 4 and
// k < len(dst[0]). The four dst slices must have equal lengths and must not
// overlap any row; each row must hold off+len(dst[0]) elements; coef holds
// 4·len(rows) values, one row of coefficients per output. Loading each row
// segment once for four outputs makes it about four times lighter on the
// cache than four Combine calls when the rows are reused (nearest-neighbour
// mixing).
func Combine4(dst *[4][]float64, rows [][]float64, coef []float64, off int) {
	n := len(dst[0])
	k := len(rows)
	_ = coef[:4*k]
	for r := range dst {
		_ = dst[r][:n]
	}
	for _, row := range rows {
		_ = row[off : off+n]
	}
	if n == 0 {
		return
	}
	if k == 0 {
		for r := range dst {
			clear(dst[r][:n])
		}
		return
	}
	if useAsm && n >= 4 {
		var buf [256]*float64
		var ptrs []*float64
		if k <= len(buf) {
			ptrs = buf[:k]
		} else {
			ptrs = make([]*float64, k)
		}
		for j, row := range rows {
			ptrs[j] = &row[0]
		}
		var dp [4]*float64
		for r := range dst {
			dp[r] = &dst[r][0]
		}
		n4 := n &^ 3
		combine4Asm(&dp, &ptrs[0], &coef[0], k, off, n4)
		if n4 < n {
			for r := range dst {
				combineGenericRange(dst[r], rows, coef[r*k:(r+1)*k], off, n4, n)
			}
		}
		return
	}
	Combine4Generic(dst, rows, coef, off)
}

// Combine4Generic is the portable implementation of Combine4.
func Combine4Generic(dst *[4][]float64, rows [][]float64, coef []float64, off int) {
	k := len(rows)
	for r := range dst {
		CombineGeneric(dst[r][:len(dst[0])], rows, coef[r*k:(r+1)*k], off)
	}
}

// Gram3x4 adds to out[r*4+c] the dot product of a[r] and b[c] for r < 3,
// c < 4. All seven slices must have the same length; Gram3x4 panics
// otherwise. Rows may alias each other (callers pad partial tiles by
// repeating a row).
func Gram3x4(out *[12]float64, a *[3][]float64, b *[4][]float64) {
	n := len(a[0])
	a1, a2 := a[1][:n], a[2][:n]
	b0, b1, b2, b3 := b[0][:n], b[1][:n], b[2][:n], b[3][:n]
	if useAsm && n >= 4 {
		n4 := n &^ 3
		gram3x4Asm(&a[0][0], &a1[0], &a2[0], &b0[0], &b1[0], &b2[0], &b3[0], n4, out)
		if n4 < n {
			gram3x4GenericRange(out, a, b, n4, n)
		}
		return
	}
	Gram3x4Generic(out, a, b)
}

// DotGeneric is the portable implementation of Dot.
func DotGeneric(a, b []float64) float64 {
	n := len(a)
	b = b[:n]
	var s0, s1, s2, s3 float64
	i := 0
	for ; i+4 <= n; i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for ; i < n; i++ {
		s0 += a[i] * b[i]
	}
	return (s0 + s1) + (s2 + s3)
}

// SqDistGeneric is the portable implementation of SqDist.
func SqDistGeneric(a, b []float64) float64 {
	n := len(a)
	b = b[:n]
	var s0, s1, s2, s3 float64
	i := 0
	for ; i+4 <= n; i += 4 {
		t0 := a[i] - b[i]
		t1 := a[i+1] - b[i+1]
		t2 := a[i+2] - b[i+2]
		t3 := a[i+3] - b[i+3]
		s0 += t0 * t0
		s1 += t1 * t1
		s2 += t2 * t2
		s3 += t3 * t3
	}
	for ; i < n; i++ {
		t := a[i] - b[i]
		s0 += t * t
	}
	return (s0 + s1) + (s2 + s3)
}

// CombineGeneric is the portable implementation of Combine.
func CombineGeneric(dst []float64, rows [][]float64, coef []float64, off int) {
	combineGenericRange(dst, rows, coef, off, 0, len(dst))
}

func combineGenericRange(dst []float64, rows [][]float64, coef []float64, off, lo, hi int) {
	d := dst[lo:hi]
	clear(d)
	for j, r := range rows {
		c := coef[j]
		x := r[off+lo : off+hi]
		for k := range d {
			d[k] += c * x[k]
		}
	}
}

// Gram3x4Generic is the portable implementation of Gram3x4.
func Gram3x4Generic(out *[12]float64, a *[3][]float64, b *[4][]float64) {
	gram3x4GenericRange(out, a, b, 0, len(a[0]))
}

func gram3x4GenericRange(out *[12]float64, a *[3][]float64, b *[4][]float64, lo, hi int) {
	for r := 0; r < 3; r++ {
		x := a[r][lo:hi]
		for c := 0; c < 4; c++ {
			y := b[c][lo:hi]
			out[r*4+c] += DotGeneric(x, y)
		}
	}
}

// Accelerated reports whether the assembly kernels are in use, for callers
// that choose between algorithms (a sorting network pays off only with
// vector min/max).
func Accelerated() bool { return useAsm }
