//go:build !amd64

package sim

const useAVX2 = false

func diffuseAVX2(dst, u, c, d *float64, n int, alpha float64) { panic("unreachable") }

func statsAVX2(cur, prev *float64, n int, acc *[16]float64) { panic("unreachable") }

func clampAVX2(v *float64, n int, lo, hi float64) (int, bool) { panic("unreachable") }

func laplacianAVX2(dst, u, c, d *float64, n int) { panic("unreachable") }

func turingAVX2(an, inn, vn, ac, ic, lapA, lapI *float64, n int, prm *[7]float64) (int, bool) {
	panic("unreachable")
}
