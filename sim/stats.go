package sim

import "math"

// pairwiseBlock is NumPy's PW_BLOCKSIZE: below it a block is summed with
// eight interleaved accumulators, above it the array is split in two.
const pairwiseBlock = 128

// pairwiseSum returns the sum of x in the exact order NumPy's pairwise
// summation (numpy/_core/src/umath/loops_utils.h.src) uses for a contiguous
// float64 array, so that means and moments agree with the reference to the
// last bit whenever the element values agree.
func pairwiseSum(x []float64) float64 {
	n := len(x)
	switch {
	case n < 8:
		res := 0.0
		for _, v := range x {
			res += v
		}
		return res
	case n <= pairwiseBlock:
		r0, r1, r2, r3 := x[0], x[1], x[2], x[3]
		r4, r5, r6, r7 := x[4], x[5], x[6], x[7]
		i := 8
		for ; i < n-n%8; i += 8 {
			b := x[i : i+8 : i+8]
			r0 += b[0]
			r1 += b[1]
			r2 += b[2]
			r3 += b[3]
			r4 += b[4]
			r5 += b[5]
			r6 += b[6]
			r7 += b[7]
		}
		res := ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
		for ; i < n; i++ {
			res += x[i]
		}
		return res
	default:
		n2 := n / 2
		n2 -= n2 % 8
		return pairwiseSum(x[:n2]) + pairwiseSum(x[n2:])
	}
}

// mean is np.mean: the pairwise sum divided by the count.
func mean(x []float64) float64 { return pairwiseSum(x) / float64(len(x)) }

// populationStd is np.std with ddof = 0: mean first, then the mean of the
// squared deviations (computed into scratch, which must be len(x) long),
// then the square root.
func populationStd(x, scratch []float64) float64 {
	m := mean(x)
	for i, v := range x {
		d := v - m
		scratch[i] = d * d
	}
	return math.Sqrt(pairwiseSum(scratch[:len(x)]) / float64(len(x)))
}

// cube returns x³ rounded as a correctly rounded pow(x, 3) would be in all
// but the rarest cases: x² is kept as an exact double-double and the final
// product is compensated with FMA. The reference computes x**3 with libm
// pow, and plain x*x*x can be one unit in the last place away.
func cube(x float64) float64 {
	hi := x * x
	lo := math.FMA(x, x, -hi)
	p := hi * x
	e := math.FMA(hi, x, -p) + float64(lo*x)
	return p + e
}

// fourth returns x⁴ with the same care as cube.
func fourth(x float64) float64 {
	hi := x * x
	lo := math.FMA(x, x, -hi)
	p := hi * hi
	e := math.FMA(hi, hi, -p) + float64(2*hi*lo)
	return p + e
}
