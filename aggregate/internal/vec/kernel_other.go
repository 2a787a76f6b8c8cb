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

const useAVX512 = false

// HasAVX512 reports whether the float32 kernels can use AVX-512; never
// outside amd64.
var HasAVX512 = false

func gram4x6F32Asm(a0, a1, a2, a3, b0, b1, b2, b3, b4, b5 *float32, n int, out *[192]float64) {
	panic("unreachable")
}

func sortNet16F32Asm(buf *float32, pairs *int32, npairs int) { panic("unreachable") }

func finiteF32Asm(x *float32, n int) bool { panic("unreachable") }

func combineF32Asm(dst *float64, rows **float32, coef *float64, k, off, n int) {
	panic("unreachable")
}

func sqDistMixedAsm(z *float64, x *float32, n int) float64 { panic("unreachable") }

func prefetchF32(p *float32, n int) { panic("unreachable") }

const hasPrefetch = false

func gramTilesF32Asm(rows **float32, tiles *GramTile, ntiles, n int, out *float64, pf int) {
	panic("unreachable")
}
