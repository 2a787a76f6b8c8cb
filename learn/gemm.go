package learn

import (
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
)

// matNN sets c (m×n) = a (m×k) · b (k×n), all row-major and contiguous.
// With useFMA and m a multiple of 4 it runs the 4×8 AVX2 tile kernel,
// every column tile for all row blocks in turn so that the k×8 panel of b
// stays in L1; other shapes go to gonum's BLAS.
func matNN(m, n, k int, a, b, c []float64) {
	if !useFMA || m%4 != 0 || n < 8 || k < 1 {
		blas64.Gemm(blas.NoTrans, blas.NoTrans, 1, general(a, m, k), general(b, k, n), 0, general(c, m, n))
		return
	}
	_ = a[m*k-1]
	_ = b[k*n-1]
	_ = c[m*n-1]
	j := 0
	for ; j+8 <= n; j += 8 {
		for i := 0; i < m; i += 4 {
			gemm4x8(k, &a[i*k], k, &b[j], n, &c[i*n+j], n)
		}
	}
	for ; j < n; j++ { // the last n mod 8 columns
		for i := 0; i < m; i++ {
			var s float64
			for l := 0; l < k; l++ {
				s += a[i*k+l] * b[l*n+j]
			}
			c[i*n+j] = s
		}
	}
}

// matNT sets c (m×n) = a (m×k) · bᵀ, b being n×k: every entry a dot
// product of length k. With useFMA and k ≥ 4 it runs the AVX2 kernel (one
// row of a against four rows of b) on the first k − k mod 4 terms and
// adds the rest in Go; the last n mod 4 columns are plain dot products.
// Without useFMA it goes to gonum's BLAS.
func matNT(m, n, k int, a, b, c []float64) {
	if !useFMA || k < 4 || n < 1 {
		blas64.Gemm(blas.NoTrans, blas.Trans, 1, general(a, m, k), general(b, n, k), 0, general(c, m, n))
		return
	}
	_ = a[m*k-1]
	_ = b[n*k-1]
	_ = c[m*n-1]
	k4 := k - k%4
	n4 := n - n%4
	var out [4]float64
	for i := 0; i < m; i++ {
		ar := a[i*k : (i+1)*k]
		for j := 0; j < n4; j += 4 {
			dot1x4(k4, &ar[0], &b[j*k], k, &out)
			for q := 0; q < 4; q++ {
				s := out[q]
				br := b[(j+q)*k : (j+q+1)*k]
				for l := k4; l < k; l++ {
					s += ar[l] * br[l]
				}
				c[i*n+j+q] = s
			}
		}
		for j := n4; j < n; j++ {
			var s float64
			br := b[j*k : (j+1)*k]
			for l, v := range ar {
				s += v * br[l]
			}
			c[i*n+j] = s
		}
	}
}
