//go:build !amd64

package vec

// HasAVX2FMA reports whether the assembly kernels are in use; they exist
// only on amd64.
var HasAVX2FMA = false

const useAsm = false

func dotAsm(a, b *float64, n int) float64 { panic("unreachable") }

func sqDistAsm(a, b *float64, n int) float64 { panic("unreachable") }

func combineAsm(dst *float64, rows **float64, coef *float64, k, off, n int) { panic("unreachable") }

func gram3x4Asm(a0, a1, a2, b0, b1, b2, b3 *float64, n int, out *[12]float64) {
	panic("unreachable")
}

func combine4Asm(dst *[4]*float64, rows **float64, coef *float64, k, off, n int) {
	panic("unreachable")
}

// ForcePortable exists for symmetry with amd64: the portable kernels are
// the only ones here. It returns true.
func ForcePortable(bool) bool { return true }

func sortNet4Asm(buf *float64, pairs *int32, npairs int) { panic("unreachable") }
