//go:build amd64

#include "textflag.h"

// func gemm4x8(k int, a *float64, lda int, b *float64, ldb int, c *float64, ldc int)
//
// C[r][0:8] = Σ_l A[r][l]·B[l][0:8] for r = 0..3 (C overwritten), with
// row strides lda, ldb, ldc in elements. Eight YMM accumulators hold the
// 4×8 tile for the whole k loop: per l, two loads of B, four broadcasts
// of A and eight fused multiply-adds.
TEXT ·gemm4x8(SB), NOSPLIT, $0-56
	MOVQ k+0(FP), CX
	MOVQ a+8(FP), SI
	MOVQ lda+16(FP), R8
	SHLQ $3, R8
	MOVQ b+24(FP), DI
	MOVQ ldb+32(FP), R9
	SHLQ $3, R9
	MOVQ c+40(FP), DX
	MOVQ ldc+48(FP), R10
	SHLQ $3, R10
	LEAQ (SI)(R8*1), R11
	LEAQ (SI)(R8*2), R12
	LEAQ (R11)(R8*2), R13
	VXORPD Y0, Y0, Y0
	VXORPD Y1, Y1, Y1
	VXORPD Y2, Y2, Y2
	VXORPD Y3, Y3, Y3
	VXORPD Y4, Y4, Y4
	VXORPD Y5, Y5, Y5
	VXORPD Y6, Y6, Y6
	VXORPD Y7, Y7, Y7
	TESTQ CX, CX
	JZ    store

loop:
	VMOVUPD      (DI), Y8
	VMOVUPD      32(DI), Y9
	VBROADCASTSD (SI), Y10
	VFMADD231PD  Y8, Y10, Y0
	VFMADD231PD  Y9, Y10, Y1
	VBROADCASTSD (R11), Y11
	VFMADD231PD  Y8, Y11, Y2
	VFMADD231PD  Y9, Y11, Y3
	VBROADCASTSD (R12), Y12
	VFMADD231PD  Y8, Y12, Y4
	VFMADD231PD  Y9, Y12, Y5
	VBROADCASTSD (R13), Y13
	VFMADD231PD  Y8, Y13, Y6
	VFMADD231PD  Y9, Y13, Y7
	ADDQ         $8, SI
	ADDQ         $8, R11
	ADDQ         $8, R12
	ADDQ         $8, R13
	ADDQ         R9, DI
	DECQ         CX
	JNZ          loop

store:
	VMOVUPD Y0, (DX)
	VMOVUPD Y1, 32(DX)
	ADDQ    R10, DX
	VMOVUPD Y2, (DX)
	VMOVUPD Y3, 32(DX)
	ADDQ    R10, DX
	VMOVUPD Y4, (DX)
	VMOVUPD Y5, 32(DX)
	ADDQ    R10, DX
	VMOVUPD Y6, (DX)
	VMOVUPD Y7, 32(DX)
	VZEROUPPER
	RET

// func dot1x4(k int, a *float64, b *float64, ldb int, out *[4]float64)
//
// out[j] = Σ_i a[i]·B[j][i] for j = 0..3, k a positive multiple of 4, B's
// rows ldb elements apart: one load of a feeds four fused multiply-adds.
TEXT ·dot1x4(SB), NOSPLIT, $0-40
	MOVQ k+0(FP), CX
	MOVQ a+8(FP), SI
	MOVQ b+16(FP), DI
	MOVQ ldb+24(FP), R8
	SHLQ $3, R8
	MOVQ out+32(FP), DX
	LEAQ (DI)(R8*1), R11
	LEAQ (DI)(R8*2), R12
	LEAQ (R11)(R8*2), R13
	VXORPD Y0, Y0, Y0
	VXORPD Y1, Y1, Y1
	VXORPD Y2, Y2, Y2
	VXORPD Y3, Y3, Y3
	XORQ   AX, AX
	SHLQ   $3, CX

dotloop:
	VMOVUPD     (SI)(AX*1), Y8
	VFMADD231PD (DI)(AX*1), Y8, Y0
	VFMADD231PD (R11)(AX*1), Y8, Y1
	VFMADD231PD (R12)(AX*1), Y8, Y2
	VFMADD231PD (R13)(AX*1), Y8, Y3
	ADDQ        $32, AX
	CMPQ        AX, CX
	JLT         dotloop

	// Horizontal sums of Y0..Y3 into out[0..3].
	VHADDPD      Y1, Y0, Y0 // (a0+a1, b0+b1, a2+a3, b2+b3)
	VHADDPD      Y3, Y2, Y2 // (c0+c1, d0+d1, c2+c3, d2+d3)
	VPERM2F128   $0x20, Y2, Y0, Y4 // low halves: (a01, b01, c01, d01)
	VPERM2F128   $0x31, Y2, Y0, Y5 // high halves: (a23, b23, c23, d23)
	VADDPD       Y5, Y4, Y4
	VMOVUPD      Y4, (DX)
	VZEROUPPER
	RET
