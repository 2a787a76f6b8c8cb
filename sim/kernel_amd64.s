//go:build amd64

#include "textflag.h"

// func diffuseAVX2(dst, u, c, d *float64, n int, alpha float64)
TEXT ·diffuseAVX2(SB), NOSPLIT, $0-48
	MOVQ dst+0(FP), DI
	MOVQ u+8(FP), R10
	MOVQ c+16(FP), SI
	MOVQ d+24(FP), R11
	MOVQ n+32(FP), CX
	VBROADCASTSD alpha+40(FP), Y8
	MOVQ $0x4010000000000000, R8 // 4.0
	VMOVQ R8, X9
	VBROADCASTSD X9, Y9
	SHLQ $3, CX
	XORQ AX, AX

diffloop:
	VMOVUPD (R10)(AX*1), Y0       // u
	VADDPD  (R11)(AX*1), Y0, Y0   // u + d
	VADDPD  -8(SI)(AX*1), Y0, Y0  // + left
	VADDPD  8(SI)(AX*1), Y0, Y0   // + right
	VMOVUPD (SI)(AX*1), Y1        // c
	VMULPD  Y9, Y1, Y2            // 4c
	VSUBPD  Y2, Y0, Y0            // Laplacian
	VMULPD  Y8, Y0, Y0            // alpha · Laplacian
	VADDPD  Y1, Y0, Y0            // c + alpha · Laplacian
	VMOVUPD Y0, (DI)(AX*1)
	ADDQ    $32, AX
	CMPQ    AX, CX
	JLT     diffloop
	VZEROUPPER
	RET

// func statsAVX2(cur, prev *float64, n int, acc *[16]float64)
TEXT ·statsAVX2(SB), NOSPLIT, $0-32
	MOVQ cur+0(FP), SI
	MOVQ prev+8(FP), DI
	MOVQ n+16(FP), CX
	MOVQ acc+24(FP), DX
	MOVQ $0x408F400000000000, R8 // 1000.0
	VMOVQ R8, X8
	VBROADCASTSD X8, Y8
	MOVQ $0x7FFFFFFFFFFFFFFF, R9 // clears the sign bit
	VMOVQ R9, X9
	VBROADCASTSD X9, Y9
	VMOVUPD (DX), Y0   // Σ y²
	VMOVUPD 32(DX), Y1 // Σ δ
	VMOVUPD 64(DX), Y2 // Σ δ²
	VMOVUPD 96(DX), Y3 // max δ
	SHLQ $3, CX
	XORQ AX, AX

statloop:
	VMULPD (SI)(AX*1), Y8, Y4 // y = 1000·cur
	VMULPD (DI)(AX*1), Y8, Y5 // 1000·prev
	VMULPD Y4, Y4, Y6
	VADDPD Y6, Y0, Y0         // Σ y²
	VSUBPD Y5, Y4, Y4         // y − 1000·prev
	VANDPD Y9, Y4, Y4         // δ = |…|
	VADDPD Y4, Y1, Y1         // Σ δ
	VMULPD Y4, Y4, Y6
	VADDPD Y6, Y2, Y2         // Σ δ²
	VMAXPD Y4, Y3, Y3         // max δ
	ADDQ   $32, AX
	CMPQ   AX, CX
	JLT    statloop
	VMOVUPD Y0, (DX)
	VMOVUPD Y1, 32(DX)
	VMOVUPD Y2, 64(DX)
	VMOVUPD Y3, 96(DX)
	VZEROUPPER
	RET

// func clampAVX2(v *float64, n int, lo, hi float64) (clamped int, nan bool)
// Clamps v[0:n] (n a positive multiple of 4) to [lo, hi] in place, leaving
// NaN unchanged, and returns the number of values below lo or above hi and
// whether any value was NaN.
TEXT ·clampAVX2(SB), NOSPLIT, $0-41
	MOVQ v+0(FP), SI
	MOVQ n+8(FP), CX
	VBROADCASTSD lo+16(FP), Y8
	VBROADCASTSD hi+24(FP), Y9
	SHLQ $3, CX
	XORQ AX, AX
	XORQ R8, R8 // clamped count
	XORQ R9, R9 // NaN lanes seen

clamploop:
	VMOVUPD (SI)(AX*1), Y0
	VCMPPD  $0x11, Y8, Y0, Y1 // x < lo  (LT_OQ)
	VCMPPD  $0x1e, Y9, Y0, Y2 // x > hi  (GT_OQ)
	VCMPPD  $0x03, Y0, Y0, Y3 // x is NaN (UNORD_Q)
	VMOVMSKPD Y1, R10
	VMOVMSKPD Y2, R11
	VMOVMSKPD Y3, R12
	POPCNTQ R10, R10
	POPCNTQ R11, R11
	ADDQ    R10, R8
	ADDQ    R11, R8
	ORQ     R12, R9
	VMAXPD  Y8, Y0, Y4        // x > lo ? x : lo
	VMINPD  Y9, Y4, Y4        // … < hi ? … : hi
	VBLENDVPD Y3, Y0, Y4, Y4  // NaN lanes keep x
	VMOVUPD Y4, (SI)(AX*1)
	ADDQ    $32, AX
	CMPQ    AX, CX
	JLT     clamploop
	MOVQ    R8, clamped+32(FP)
	TESTQ   R9, R9
	SETNE   nan+40(FP)
	VZEROUPPER
	RET

// func laplacianAVX2(dst, u, c, d *float64, n int)
// dst[j] = u[j]+d[j]+c[j−1]+c[j+1]−4c[j] for j = 0 … n−1 (n a positive
// multiple of 4; c[−1] and c[n] readable).
TEXT ·laplacianAVX2(SB), NOSPLIT, $0-40
	MOVQ dst+0(FP), DI
	MOVQ u+8(FP), R10
	MOVQ c+16(FP), SI
	MOVQ d+24(FP), R11
	MOVQ n+32(FP), CX
	MOVQ $0x4010000000000000, R8 // 4.0
	VMOVQ R8, X9
	VBROADCASTSD X9, Y9
	SHLQ $3, CX
	XORQ AX, AX

laploop:
	VMOVUPD (R10)(AX*1), Y0
	VADDPD  (R11)(AX*1), Y0, Y0
	VADDPD  -8(SI)(AX*1), Y0, Y0
	VADDPD  8(SI)(AX*1), Y0, Y0
	VMULPD  (SI)(AX*1), Y9, Y2
	VSUBPD  Y2, Y0, Y0
	VMOVUPD Y0, (DI)(AX*1)
	ADDQ    $32, AX
	CMPQ    AX, CX
	JLT     laploop
	VZEROUPPER
	RET

// func turingAVX2(an, inn, vn, ac, ic, lapA, lapI *float64, n int, prm *[7]float64) (turing int, nan bool)
// prm = {D_a, D_i, r_a, r_i, θ, boost, 1}; n a positive multiple of 4.
TEXT ·turingAVX2(SB), NOSPLIT, $0-81
	MOVQ prm+64(FP), DX
	VBROADCASTSD 0(DX), Y8   // D_a
	VBROADCASTSD 8(DX), Y9   // D_i
	VBROADCASTSD 16(DX), Y10 // r_a
	VBROADCASTSD 24(DX), Y11 // r_i
	VBROADCASTSD 32(DX), Y12 // θ
	VBROADCASTSD 40(DX), Y13 // boost
	VBROADCASTSD 48(DX), Y14 // 1.0
	VXORPD Y15, Y15, Y15     // 0.0
	MOVQ an+0(FP), DI
	MOVQ inn+8(FP), R12
	MOVQ vn+16(FP), R13
	MOVQ ac+24(FP), SI
	MOVQ ic+32(FP), R10
	MOVQ lapA+40(FP), R11
	MOVQ lapI+48(FP), DX
	MOVQ n+56(FP), CX
	SHLQ $3, CX
	XORQ AX, AX
	XORQ R8, R8 // activations
	XORQ R9, R9 // NaN lanes seen

turloop:
	VMOVUPD (SI)(AX*1), Y0       // a
	VMOVUPD (R10)(AX*1), Y1      // i
	VSUBPD  Y0, Y14, Y2          // 1 − a
	VMULPD  Y2, Y0, Y2           // a(1 − a)
	VSUBPD  Y1, Y2, Y2           // a(1 − a) − i
	VMULPD  Y10, Y2, Y2          // r_a(…)
	VMULPD  (R11)(AX*1), Y8, Y3  // D_a ∇²a
	VADDPD  Y2, Y3, Y3           // D_a ∇²a + r_a(…)
	VADDPD  Y3, Y0, Y3           // a' = a + (…)
	VSUBPD  Y1, Y0, Y4           // a − i
	VMULPD  Y11, Y4, Y4          // r_i(a − i)
	VMULPD  (DX)(AX*1), Y9, Y5   // D_i ∇²i
	VADDPD  Y4, Y5, Y5           // D_i ∇²i + r_i(a − i)
	VADDPD  Y5, Y1, Y5           // i' = i + (…)
	VCMPPD  $0x1e, Y12, Y3, Y6   // a' > θ (GT_OQ)
	VMOVMSKPD Y6, BX
	POPCNTQ BX, BX
	ADDQ    BX, R8
	VMOVUPD (R13)(AX*1), Y7      // V
	VADDPD  Y13, Y7, Y4          // V + boost
	VBLENDVPD Y6, Y4, Y7, Y7     // boosted where a' > θ
	VMOVUPD Y7, (R13)(AX*1)
	VCMPPD  $0x03, Y5, Y3, Y6    // a' or i' is NaN (UNORD_Q)
	VMOVMSKPD Y6, BX
	ORQ     BX, R9
	VMAXPD  Y15, Y3, Y3          // a' > 0 ? a' : 0
	VMINPD  Y14, Y3, Y3          // … < 1 ? … : 1
	VMAXPD  Y15, Y5, Y5
	VMINPD  Y14, Y5, Y5
	VMOVUPD Y3, (DI)(AX*1)
	VMOVUPD Y5, (R12)(AX*1)
	ADDQ    $32, AX
	CMPQ    AX, CX
	JLT     turloop
	MOVQ    R8, turing+72(FP)
	TESTQ   R9, R9
	SETNE   nan+80(FP)
	VZEROUPPER
	RET
