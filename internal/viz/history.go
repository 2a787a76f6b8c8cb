package viz

import (
	"errors"
	"fmt"
	"math"
)

// ErrShape is wrapped by NewHistory's errors about the array's shape.
var ErrShape = errors.New("viz: history must be a T×N×N array (or one N×N field) with T ≥ 1, N ≥ 2")

// NonFiniteError reports a NaN or ±Inf in the input, at step T (0-based)
// and cell (Row, Col).
type NonFiniteError struct {
	Step, Row, Col int
	Value          float64
}

func (e *NonFiniteError) Error() string {
	return fmt.Sprintf("viz: non-finite potential %v at step %d, cell (%d, %d)", e.Value, e.Step, e.Row, e.Col)
}

// History is a field history: T frames of N×N potentials in volts, C order
// (frame, row, column).
type History struct {
	T, N int
	V    []float64 // len T*N*N
}

// NewHistory wraps data of the given shape: (T, N, N) or (N, N), the latter
// read as a single frame. N must be at least 2. It returns an error wrapping
// ErrShape for any other shape or a length mismatch, and a *NonFiniteError
// for the first NaN or Inf. data is not copied.
func NewHistory(data []float64, shape []int) (History, error) {
	var h History
	switch len(shape) {
	case 2:
		h.T, h.N = 1, shape[0]
		if shape[1] != shape[0] {
			return History{}, fmt.Errorf("%w: got shape %v (not square)", ErrShape, shape)
		}
	case 3:
		h.T, h.N = shape[0], shape[1]
		if shape[2] != shape[1] {
			return History{}, fmt.Errorf("%w: got shape %v (frames not square)", ErrShape, shape)
		}
	default:
		return History{}, fmt.Errorf("%w: got %d dimensions, shape %v", ErrShape, len(shape), shape)
	}
	if h.T < 1 || h.N < 2 {
		return History{}, fmt.Errorf("%w: got shape %v", ErrShape, shape)
	}
	if h.N > math.MaxInt/h.N/h.T || len(data) != h.T*h.N*h.N {
		return History{}, fmt.Errorf("%w: shape %v does not match %d values", ErrShape, shape, len(data))
	}
	for i, v := range data {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			cell := i % (h.N * h.N)
			return History{}, &NonFiniteError{Step: i / (h.N * h.N), Row: cell / h.N, Col: cell % h.N, Value: v}
		}
	}
	h.V = data
	return h, nil
}

// Frame returns frame t (0-based) as N*N row-major volts, sharing memory.
func (h History) Frame(t int) []float64 {
	n2 := h.N * h.N
	return h.V[t*n2 : (t+1)*n2]
}

// rangeMV returns the minimum and maximum potential of the whole history in
// millivolts, widened to a non-empty interval when the history is constant.
func (h History) rangeMV() (lo, hi float64) {
	lo, hi = math.Inf(1), math.Inf(-1)
	for _, v := range h.V {
		lo, hi = min(lo, v), max(hi, v)
	}
	return widen(lo*1e3, hi*1e3)
}

// widen returns [lo, hi], or [lo−0.5, hi+0.5] when lo == hi.
func widen(lo, hi float64) (float64, float64) {
	if hi-lo < 1e-9 {
		return lo - 0.5, hi + 0.5
	}
	return lo, hi
}

// gradientMagnitude returns |∇V| of an N×N frame in mV per cell, with
// numpy.gradient's differences: central inside, one-sided at the edges.
func gradientMagnitude(f []float64, n int) []float64 {
	d := func(a, b float64, span int) float64 { return (b - a) * 1e3 / float64(span) }
	out := make([]float64, n*n)
	for r := range n {
		for c := range n {
			var gx, gy float64
			switch c {
			case 0:
				gx = d(f[r*n], f[r*n+1], 1)
			case n - 1:
				gx = d(f[r*n+n-2], f[r*n+n-1], 1)
			default:
				gx = d(f[r*n+c-1], f[r*n+c+1], 2)
			}
			switch r {
			case 0:
				gy = d(f[c], f[n+c], 1)
			case n - 1:
				gy = d(f[(n-2)*n+c], f[(n-1)*n+c], 1)
			default:
				gy = d(f[(r-1)*n+c], f[(r+1)*n+c], 2)
			}
			out[r*n+c] = math.Hypot(gx, gy)
		}
	}
	return out
}

// frameStats returns the population mean and standard deviation of a frame
// in mV, and the fraction of cells above thresholdMV.
func frameStats(f []float64, thresholdMV float64) (mean, std, active float64) {
	var sum float64
	for _, v := range f {
		sum += v
		if v*1e3 > thresholdMV {
			active++
		}
	}
	mean = sum / float64(len(f))
	var ss float64
	for _, v := range f {
		ss += (v - mean) * (v - mean)
	}
	return mean * 1e3, math.Sqrt(ss/float64(len(f))) * 1e3, active / float64(len(f))
}
