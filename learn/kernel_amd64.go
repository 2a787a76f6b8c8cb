//go:build amd64

package learn

import "golang.org/x/sys/cpu"

// useFMA selects the AVX2/FMA matrix kernels of the CNN (kernel_amd64.s).
// With them, products are fused multiply-adds summed in a different order
// than gonum's BLAS, so results differ from the fallback in the last bits;
// on one machine they are deterministic.
var useFMA = cpu.X86.HasAVX2 && cpu.X86.HasFMA

// gemm4x8 sets the 4×8 tile C = A·B over k, strides in elements.
//
//go:noescape
func gemm4x8(k int, a *float64, lda int, b *float64, ldb int, c *float64, ldc int)

// dot1x4 sets out[j] = a·B[j] for four rows of B, k a positive multiple
// of 4.
//
//go:noescape
func dot1x4(k int, a *float64, b *float64, ldb int, out *[4]float64)
