//go:build !amd64

package learn

const useFMA = false

func gemm4x8(k int, a *float64, lda int, b *float64, ldb int, c *float64, ldc int) {
	panic("unreachable")
}

func dot1x4(k int, a *float64, b *float64, ldb int, out *[4]float64) { panic("unreachable") }
