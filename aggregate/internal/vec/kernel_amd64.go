package vec

import "golang.org/x/sys/cpu"

// HasAVX2FMA reports whether the assembly kernels are in use.
var HasAVX2FMA = cpu.X86.HasAVX2 && cpu.X86.HasFMA

var useAsm = HasAVX2FMA

// The assembly kernels require n to be a multiple of 4 and n ≥ 4.

//go:noescape
func dotAsm(a, b *float64, n int) float64

//go:noescape
func sqDistAsm(a, b *float64, n int) float64

//go:noescape
func combineAsm(dst *float64, rows **float64, coef *float64, k, off, n int)

//go:noescape
func gram3x4Asm(a0, a1, a2, b0, b1, b2, b3 *float64, n int, out *[12]float64)

//go:noescape
func combine4Asm(dst *[4]*float64, rows **float64, coef *float64, k, off, n int)

// ForcePortable makes every kernel use its portable implementation (on =
// true) or the assembly one again when the processor has it (on = false),
// and returns whether the portable code was forced before. It exists for
// tests that compare the two paths end to end; it must not be called
// while kernels run.
func ForcePortable(on bool) (was bool) {
	was = !useAsm
	useAsm = !on && HasAVX2FMA
	useAVX512 = !on && hasAVX512
	return was
}

//go:noescape
func sortNet4Asm(buf *float64, pairs *int32, npairs int)

// useAVX512 selects the float32 kernels of kernel32_amd64.s: AVX-512 F
// and DQ (VEXTRACTF32X8, VEXTRACTF64X2), with the OS saving the ZMM state
// (x/sys/cpu checks XCR0).
var useAVX512 = hasAVX512

var hasAVX512 = cpu.X86.HasAVX512F && cpu.X86.HasAVX512DQ && cpu.X86.HasAVX512VL

// HasAVX512 reports whether the float32 kernels can use AVX-512.
var HasAVX512 = hasAVX512

//go:noescape
func gram4x6F32Asm(a0, a1, a2, a3, b0, b1, b2, b3, b4, b5 *float32, n int, out *[192]float64)

//go:noescape
func sortNet16F32Asm(buf *float32, pairs *int32, npairs int)

//go:noescape
func finiteF32Asm(x *float32, n int) bool

//go:noescape
func combineF32Asm(dst *float64, rows **float32, coef *float64, k, off, n int)

//go:noescape
func sqDistMixedAsm(z *float64, x *float32, n int) float64

//go:noescape
func prefetchF32(p *float32, n int)

const hasPrefetch = true

//go:noescape
func gramTilesF32Asm(rows **float32, tiles *GramTile, ntiles, n int, out *float64, pf int)
