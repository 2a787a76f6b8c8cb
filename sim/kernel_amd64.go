package sim

import "golang.org/x/sys/cpu"

// useAVX2 selects the AVX2 kernels. They perform the same IEEE operations
// in the same order as the Go loops they replace (four interleaved lanes,
// no fused multiply-add), so results are bit-identical either way.
var useAVX2 = cpu.X86.HasAVX2

// diffuseAVX2 computes dst[j] = c[j] + alpha·(u[j]+d[j]+c[j−1]+c[j+1]−4c[j])
// for j = 0 … n−1, where n is a positive multiple of 4 and c[−1], c[n] must
// be readable.
//
//go:noescape
func diffuseAVX2(dst, u, c, d *float64, n int, alpha float64)

// statsAVX2 accumulates, over n cells (a positive multiple of 4) in four
// lanes (lane k takes cells j ≡ k mod 4), y = 1000·cur and
// δ = |y − 1000·prev| into acc: acc[0:4] += y², acc[4:8] += δ,
// acc[8:12] += δ², acc[12:16] = max(acc[12:16], δ).
//
//go:noescape
func statsAVX2(cur, prev *float64, n int, acc *[16]float64)

// clampAVX2 clamps v[0:n] (n a positive multiple of 4) to [lo, hi] in
// place, leaving NaN unchanged, and returns how many values were below lo
// or above hi and whether any was NaN.
//
//go:noescape
func clampAVX2(v *float64, n int, lo, hi float64) (clamped int, nan bool)

// laplacianAVX2 writes dst[j] = u[j]+d[j]+c[j−1]+c[j+1]−4c[j] for
// j = 0 … n−1 (n a positive multiple of 4; c[−1] and c[n] readable).
//
//go:noescape
func laplacianAVX2(dst, u, c, d *float64, n int)

// turingAVX2 is the pointwise Turing update of turingRow over n cells (a
// positive multiple of 4); prm = {D_a, D_i, r_a, r_i, θ, boost, 1}.
//
//go:noescape
func turingAVX2(an, inn, vn, ac, ic, lapA, lapI *float64, n int, prm *[7]float64) (turing int, nan bool)
