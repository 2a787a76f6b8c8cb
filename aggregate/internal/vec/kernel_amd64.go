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
	return was
}

//go:noescape
func sortNet4Asm(buf *float64, pairs *int32, npairs int)
