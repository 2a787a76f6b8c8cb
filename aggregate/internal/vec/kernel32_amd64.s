//go:build amd64

#include "textflag.h"

// AVX-512 kernels for float32 inputs (see vec32.go). Registers 16–31 are
// EVEX-only; the reductions use EVEX forms (VEXTRACTF64X2 and friends).

// Reduces the 8 float64 lanes of Z28 to its low lane (X28), using Z29.
#define HSUM8(dummy) \
	VEXTRACTF64X4 $1, Z28, Y29; \
	VADDPD        Y29, Y28, Y28; \
	VEXTRACTF64X2 $1, Y28, X29; \
	VADDPD        X29, X28, X28; \
	VPERMILPD     $1, X28, X29; \
	VADDSD        X29, X28, X28

// Widens the 16 float32 lanes of Z (low half Y) to float64 and adds
// lanes l and l+8 to the eight float64 lanes at off(DI). Z is clobbered.
#define RED16(Z, Y, off) \
	VCVTPS2PD     Y, Z28; \
	VEXTRACTF32X8 $1, Z, Y; \
	VCVTPS2PD     Y, Z29; \
	VADDPD        Z29, Z28, Z28; \
	VADDPD        off(DI), Z28, Z28; \
	VMOVUPD       Z28, off(DI)

// One column c of a step: b_c's 16 values into Z28, four fused
// multiply-adds with the a rows in Z24–Z27.
#define GCOL(B, A0, A1, A2, A3) \
	VMOVUPS     (B)(SI*1), Z28; \
	VFMADD231PS Z28, Z24, A0; \
	VFMADD231PS Z28, Z25, A1; \
	VFMADD231PS Z28, Z26, A2; \
	VFMADD231PS Z28, Z27, A3

// func gram4x6F32Asm(a0, a1, a2, a3, b0, b1, b2, b3, b4, b5 *float32, n int, out *[192]float64)
// out[r*6+c][·] += the lanes of a_r·b_c over n elements, accumulated in
// float32 lanes (Z(r*6+c)) and widened pairwise into eight float64 lanes;
// n a positive multiple of 16.
TEXT ·gram4x6F32Asm(SB), NOSPLIT, $0-96
	MOVQ a0+0(FP), R8
	MOVQ a1+8(FP), R9
	MOVQ a2+16(FP), R10
	MOVQ a3+24(FP), R11
	MOVQ b0+32(FP), R12
	MOVQ b1+40(FP), R13
	MOVQ b2+48(FP), R14
	MOVQ b3+56(FP), R15
	MOVQ b4+64(FP), AX
	MOVQ b5+72(FP), BX
	MOVQ n+80(FP), CX
	SHLQ $2, CX
	MOVQ out+88(FP), DI
	XORQ SI, SI

	// Runs of at most 512 elements (2048 bytes): float32 accumulators
	// from zero, then widened into the float64 lanes.
gseg:
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3
	VPXORD Z4, Z4, Z4
	VPXORD Z5, Z5, Z5
	VPXORD Z6, Z6, Z6
	VPXORD Z7, Z7, Z7
	VPXORD Z8, Z8, Z8
	VPXORD Z9, Z9, Z9
	VPXORD Z10, Z10, Z10
	VPXORD Z11, Z11, Z11
	VPXORD Z12, Z12, Z12
	VPXORD Z13, Z13, Z13
	VPXORD Z14, Z14, Z14
	VPXORD Z15, Z15, Z15
	VPXORD Z16, Z16, Z16
	VPXORD Z17, Z17, Z17
	VPXORD Z18, Z18, Z18
	VPXORD Z19, Z19, Z19
	VPXORD Z20, Z20, Z20
	VPXORD Z21, Z21, Z21
	VPXORD Z22, Z22, Z22
	VPXORD Z23, Z23, Z23
	MOVQ SI, DX
	ADDQ $2048, DX
	CMPQ DX, CX
	CMOVQGT CX, DX

g16:
	VMOVUPS (R8)(SI*1), Z24
	VMOVUPS (R9)(SI*1), Z25
	VMOVUPS (R10)(SI*1), Z26
	VMOVUPS (R11)(SI*1), Z27
	GCOL(R12, Z0, Z6, Z12, Z18)
	GCOL(R13, Z1, Z7, Z13, Z19)
	GCOL(R14, Z2, Z8, Z14, Z20)
	GCOL(R15, Z3, Z9, Z15, Z21)
	GCOL(AX, Z4, Z10, Z16, Z22)
	GCOL(BX, Z5, Z11, Z17, Z23)
	ADDQ $64, SI
	CMPQ SI, DX
	JLT  g16

	RED16(Z0, Y0, 0)
	RED16(Z1, Y1, 64)
	RED16(Z2, Y2, 128)
	RED16(Z3, Y3, 192)
	RED16(Z4, Y4, 256)
	RED16(Z5, Y5, 320)
	RED16(Z6, Y6, 384)
	RED16(Z7, Y7, 448)
	RED16(Z8, Y8, 512)
	RED16(Z9, Y9, 576)
	RED16(Z10, Y10, 640)
	RED16(Z11, Y11, 704)
	RED16(Z12, Y12, 768)
	RED16(Z13, Y13, 832)
	RED16(Z14, Y14, 896)
	RED16(Z15, Y15, 960)
	RED16(Z16, Y16, 1024)
	RED16(Z17, Y17, 1088)
	RED16(Z18, Y18, 1152)
	RED16(Z19, Y19, 1216)
	RED16(Z20, Y20, 1280)
	RED16(Z21, Y21, 1344)
	RED16(Z22, Y22, 1408)
	RED16(Z23, Y23, 1472)
	CMPQ SI, CX
	JLT  gseg
	VZEROUPPER
	RET

// One comparator on sixteen float32 lanes: pair (i, j) holds the byte
// offsets of rows i < j; row i gets the lane-wise minimum, row j the
// maximum.
#define CMPX16(pairoff) \
	MOVL    pairoff(DX), AX; \
	MOVL    pairoff+4(DX), BX; \
	VMOVUPS (SI)(AX*1), Z0; \
	VMOVUPS (SI)(BX*1), Z1; \
	VMINPS  Z1, Z0, Z2; \
	VMAXPS  Z1, Z0, Z3; \
	VMOVUPS Z2, (SI)(AX*1); \
	VMOVUPS Z3, (SI)(BX*1)

// func sortNet16F32Asm(buf *float32, pairs *int32, npairs int)
TEXT ·sortNet16F32Asm(SB), NOSPLIT, $0-24
	MOVQ buf+0(FP), SI
	MOVQ pairs+8(FP), DX
	MOVQ npairs+16(FP), CX
	SHLQ $3, CX
	ADDQ DX, CX
	MOVQ CX, R8
	SUBQ DX, R8
	ANDQ $-16, R8
	ADDQ DX, R8
	CMPQ DX, R8
	JGE  s1

s2:
	CMPX16(0)
	CMPX16(8)
	ADDQ $16, DX
	CMPQ DX, R8
	JLT  s2

s1:
	CMPQ DX, CX
	JGE  sdone
	CMPX16(0)

sdone:
	VZEROUPPER
	RET

// func finiteF32Asm(x *float32, n int) bool
// n a positive multiple of 16. The largest exponent field seen is kept
// per lane; a value is non-finite exactly when its exponent field is all
// ones.
TEXT ·finiteF32Asm(SB), NOSPLIT, $0-17
	MOVQ x+0(FP), SI
	MOVQ n+8(FP), CX
	SHLQ $2, CX
	MOVL $0x7f800000, AX
	VPBROADCASTD AX, Z1
	VPXORD Z0, Z0, Z0
	XORQ DX, DX

f16:
	VPANDD  (SI)(DX*1), Z1, Z2
	VPMAXUD Z2, Z0, Z0
	ADDQ    $64, DX
	CMPQ    DX, CX
	JLT     f16
	VPCMPEQD Z1, Z0, K1
	KORTESTW K1, K1
	SETEQ    ret+16(FP)
	VZEROUPPER
	RET

// func combineF32Asm(dst *float64, rows **float32, coef *float64, k, off, n int)
// dst[i] = Σ_j coef[j]·float64(rows[j][off+i]) for i < n, fused
// multiply-adds in j order from zero; k ≥ 1, n a positive multiple of 8.
TEXT ·combineF32Asm(SB), NOSPLIT, $0-48
	MOVQ dst+0(FP), DI
	MOVQ rows+8(FP), SI
	MOVQ coef+16(FP), DX
	MOVQ k+24(FP), CX
	MOVQ off+32(FP), R8
	MOVQ n+40(FP), R9
	XORQ R10, R10 // output index

c64:
	MOVQ R9, R11
	SUBQ R10, R11
	CMPQ R11, $64
	JLT  c8
	VPXORQ Z0, Z0, Z0
	VPXORQ Z1, Z1, Z1
	VPXORQ Z2, Z2, Z2
	VPXORQ Z3, Z3, Z3
	VPXORQ Z4, Z4, Z4
	VPXORQ Z5, Z5, Z5
	VPXORQ Z6, Z6, Z6
	VPXORQ Z7, Z7, Z7
	MOVQ R10, R12
	ADDQ R8, R12
	SHLQ $2, R12 // byte offset in the rows
	XORQ AX, AX

c64row:
	MOVQ (SI)(AX*8), BX
	ADDQ R12, BX
	VBROADCASTSD (DX)(AX*8), Z31
	VCVTPS2PD (BX), Z16
	VCVTPS2PD 32(BX), Z17
	VCVTPS2PD 64(BX), Z18
	VCVTPS2PD 96(BX), Z19
	VFMADD231PD Z16, Z31, Z0
	VFMADD231PD Z17, Z31, Z1
	VFMADD231PD Z18, Z31, Z2
	VFMADD231PD Z19, Z31, Z3
	VCVTPS2PD 128(BX), Z20
	VCVTPS2PD 160(BX), Z21
	VCVTPS2PD 192(BX), Z22
	VCVTPS2PD 224(BX), Z23
	VFMADD231PD Z20, Z31, Z4
	VFMADD231PD Z21, Z31, Z5
	VFMADD231PD Z22, Z31, Z6
	VFMADD231PD Z23, Z31, Z7
	INCQ AX
	CMPQ AX, CX
	JLT  c64row
	VMOVUPD Z0, (DI)(R10*8)
	VMOVUPD Z1, 64(DI)(R10*8)
	VMOVUPD Z2, 128(DI)(R10*8)
	VMOVUPD Z3, 192(DI)(R10*8)
	VMOVUPD Z4, 256(DI)(R10*8)
	VMOVUPD Z5, 320(DI)(R10*8)
	VMOVUPD Z6, 384(DI)(R10*8)
	VMOVUPD Z7, 448(DI)(R10*8)
	ADDQ $64, R10
	JMP  c64

c8:
	CMPQ R10, R9
	JGE  cdone
	VPXORQ Z0, Z0, Z0
	MOVQ R10, R12
	ADDQ R8, R12
	SHLQ $2, R12
	XORQ AX, AX

c8row:
	MOVQ (SI)(AX*8), BX
	ADDQ R12, BX
	VBROADCASTSD (DX)(AX*8), Z31
	VCVTPS2PD (BX), Z16
	VFMADD231PD Z16, Z31, Z0
	INCQ AX
	CMPQ AX, CX
	JLT  c8row
	VMOVUPD Z0, (DI)(R10*8)
	ADDQ $8, R10
	JMP  c8

cdone:
	VZEROUPPER
	RET

// func sqDistMixedAsm(z *float64, x *float32, n int) float64
// Σ (z[i] − x[i])² in float64; n a positive multiple of 16.
TEXT ·sqDistMixedAsm(SB), NOSPLIT, $0-32
	MOVQ z+0(FP), SI
	MOVQ x+8(FP), DI
	MOVQ n+16(FP), CX
	VPXORQ Z0, Z0, Z0
	VPXORQ Z1, Z1, Z1
	XORQ AX, AX

q16:
	VMOVUPD   (SI)(AX*8), Z2
	VMOVUPD   64(SI)(AX*8), Z3
	VCVTPS2PD (DI)(AX*4), Z4
	VCVTPS2PD 32(DI)(AX*4), Z5
	VSUBPD    Z4, Z2, Z2
	VSUBPD    Z5, Z3, Z3
	VFMADD231PD Z2, Z2, Z0
	VFMADD231PD Z3, Z3, Z1
	ADDQ $16, AX
	CMPQ AX, CX
	JLT  q16
	VADDPD Z1, Z0, Z28
	HSUM8(0)
	VMOVSD X28, ret+24(FP)
	VZEROUPPER
	RET

// func prefetchF32(p *float32, n int)
// Prefetches the cache lines of p[0:n] into the L2 cache (PREFETCHT1);
// n a positive multiple of 16.
TEXT ·prefetchF32(SB), NOSPLIT, $0-16
	MOVQ p+0(FP), SI
	MOVQ n+8(FP), CX
	SHLQ $2, CX
	ADDQ SI, CX

pf:
	PREFETCHT1 (SI)
	ADDQ $64, SI
	CMPQ SI, CX
	JLT  pf
	RET

// Zeroes the 24 float32 accumulators of a Gram tile.
#define GZERO(dummy) \
	VPXORD Z0, Z0, Z0; \
	VPXORD Z1, Z1, Z1; \
	VPXORD Z2, Z2, Z2; \
	VPXORD Z3, Z3, Z3; \
	VPXORD Z4, Z4, Z4; \
	VPXORD Z5, Z5, Z5; \
	VPXORD Z6, Z6, Z6; \
	VPXORD Z7, Z7, Z7; \
	VPXORD Z8, Z8, Z8; \
	VPXORD Z9, Z9, Z9; \
	VPXORD Z10, Z10, Z10; \
	VPXORD Z11, Z11, Z11; \
	VPXORD Z12, Z12, Z12; \
	VPXORD Z13, Z13, Z13; \
	VPXORD Z14, Z14, Z14; \
	VPXORD Z15, Z15, Z15; \
	VPXORD Z16, Z16, Z16; \
	VPXORD Z17, Z17, Z17; \
	VPXORD Z18, Z18, Z18; \
	VPXORD Z19, Z19, Z19; \
	VPXORD Z20, Z20, Z20; \
	VPXORD Z21, Z21, Z21; \
	VPXORD Z22, Z22, Z22; \
	VPXORD Z23, Z23, Z23

// One step of a Gram tile: sixteen coordinates at offset SI.
#define GSTEP(dummy) \
	VMOVUPS (R8)(SI*1), Z24; \
	VMOVUPS (R9)(SI*1), Z25; \
	VMOVUPS (R10)(SI*1), Z26; \
	VMOVUPS (R11)(SI*1), Z27; \
	GCOL(R12, Z0, Z6, Z12, Z18); \
	GCOL(R13, Z1, Z7, Z13, Z19); \
	GCOL(R14, Z2, Z8, Z14, Z20); \
	GCOL(R15, Z3, Z9, Z15, Z21); \
	GCOL(AX, Z4, Z10, Z16, Z22); \
	GCOL(BX, Z5, Z11, Z17, Z23)

// Widens a run's 24 accumulators into the tile's lanes at DI.
#define GRED(dummy) \
	RED16(Z0, Y0, 0); \
	RED16(Z1, Y1, 64); \
	RED16(Z2, Y2, 128); \
	RED16(Z3, Y3, 192); \
	RED16(Z4, Y4, 256); \
	RED16(Z5, Y5, 320); \
	RED16(Z6, Y6, 384); \
	RED16(Z7, Y7, 448); \
	RED16(Z8, Y8, 512); \
	RED16(Z9, Y9, 576); \
	RED16(Z10, Y10, 640); \
	RED16(Z11, Y11, 704); \
	RED16(Z12, Y12, 768); \
	RED16(Z13, Y13, 832); \
	RED16(Z14, Y14, 896); \
	RED16(Z15, Y15, 960); \
	RED16(Z16, Y16, 1024); \
	RED16(Z17, Y17, 1088); \
	RED16(Z18, Y18, 1152); \
	RED16(Z19, Y19, 1216); \
	RED16(Z20, Y20, 1280); \
	RED16(Z21, Y21, 1344); \
	RED16(Z22, Y22, 1408); \
	RED16(Z23, Y23, 1472)

// One step of a triangle tile: the six column rows at offset SI into
// Z21–Z26 and the 21 products b_p·b_q, p ≤ q, into Z0–Z20 (row-major).
#define TSTEP(dummy) \
	VMOVUPS (R12)(SI*1), Z21; \
	VMOVUPS (R13)(SI*1), Z22; \
	VMOVUPS (R14)(SI*1), Z23; \
	VMOVUPS (R15)(SI*1), Z24; \
	VMOVUPS (AX)(SI*1), Z25; \
	VMOVUPS (BX)(SI*1), Z26; \
	VFMADD231PS Z21, Z21, Z0; \
	VFMADD231PS Z22, Z21, Z1; \
	VFMADD231PS Z23, Z21, Z2; \
	VFMADD231PS Z24, Z21, Z3; \
	VFMADD231PS Z25, Z21, Z4; \
	VFMADD231PS Z26, Z21, Z5; \
	VFMADD231PS Z22, Z22, Z6; \
	VFMADD231PS Z23, Z22, Z7; \
	VFMADD231PS Z24, Z22, Z8; \
	VFMADD231PS Z25, Z22, Z9; \
	VFMADD231PS Z26, Z22, Z10; \
	VFMADD231PS Z23, Z23, Z11; \
	VFMADD231PS Z24, Z23, Z12; \
	VFMADD231PS Z25, Z23, Z13; \
	VFMADD231PS Z26, Z23, Z14; \
	VFMADD231PS Z24, Z24, Z15; \
	VFMADD231PS Z25, Z24, Z16; \
	VFMADD231PS Z26, Z24, Z17; \
	VFMADD231PS Z25, Z25, Z18; \
	VFMADD231PS Z26, Z25, Z19; \
	VFMADD231PS Z26, Z26, Z20

// Widens a triangle run's 21 accumulators into the tile's lanes at DI.
#define TRED(dummy) \
	RED16(Z0, Y0, 0); \
	RED16(Z1, Y1, 64); \
	RED16(Z2, Y2, 128); \
	RED16(Z3, Y3, 192); \
	RED16(Z4, Y4, 256); \
	RED16(Z5, Y5, 320); \
	RED16(Z6, Y6, 384); \
	RED16(Z7, Y7, 448); \
	RED16(Z8, Y8, 512); \
	RED16(Z9, Y9, 576); \
	RED16(Z10, Y10, 640); \
	RED16(Z11, Y11, 704); \
	RED16(Z12, Y12, 768); \
	RED16(Z13, Y13, 832); \
	RED16(Z14, Y14, 896); \
	RED16(Z15, Y15, 960); \
	RED16(Z16, Y16, 1024); \
	RED16(Z17, Y17, 1088); \
	RED16(Z18, Y18, 1152); \
	RED16(Z19, Y19, 1216); \
	RED16(Z20, Y20, 1280)

// Loads row pointer number idx(SI) of the table at DX into R.
#define GPTR(off, R) \
	MOVLQSX off(SI), R; \
	MOVQ    (DX)(R*8), R

// func gramTilesF32Asm(rows **float32, tiles *GramTile, ntiles, n int, out *float64, pf int)
// For each of the ntiles tiles, the same as gram4x6F32Asm on the rows
// the tile names, its lanes at out + 1536·t bytes. When pf > 0, a tile
// whose Prefetch field p is not zero also prefetches (PREFETCHT1) one
// line per step of row p−1, pf bytes past what it reads. n a positive
// multiple of 16, ntiles ≥ 1. Locals: 0 rows, 8 tiles, 16 tiles left,
// 24 pf, 32 run end.
TEXT ·gramTilesF32Asm(SB), NOSPLIT, $40-48
	MOVQ rows+0(FP), AX
	MOVQ AX, 0(SP)
	MOVQ tiles+8(FP), AX
	MOVQ AX, 8(SP)
	MOVQ ntiles+16(FP), AX
	MOVQ AX, 16(SP)
	MOVQ pf+40(FP), AX
	MOVQ AX, 24(SP)
	MOVQ n+24(FP), CX
	SHLQ $2, CX
	MOVQ out+32(FP), DI

ttile:
	MOVQ 0(SP), DX
	MOVQ 8(SP), SI
	GPTR(0, R8)
	GPTR(4, R9)
	GPTR(8, R10)
	GPTR(12, R11)
	GPTR(16, R12)
	GPTR(20, R13)
	GPTR(24, R14)
	GPTR(28, R15)
	GPTR(32, AX)
	GPTR(36, BX)
	MOVL  44(SI), DX
	TESTL DX, DX
	JNZ   ttri
	MOVLQSX 40(SI), DX
	XORQ  SI, SI
	TESTQ DX, DX
	JZ    tnopf
	CMPQ  24(SP), $0
	JLE   tnopf
	// DX = the prefetched row's address + pf; the run end at 32(SP).
	DECQ DX
	SHLQ $3, DX
	ADDQ 0(SP), DX
	MOVQ (DX), DX
	ADDQ 24(SP), DX

tpseg:
	GZERO(0)
	MOVQ SI, 32(SP)
	ADDQ $2048, 32(SP)
	CMPQ CX, 32(SP)
	JGT  tp16
	MOVQ CX, 32(SP)

tp16:
	GSTEP(0)
	PREFETCHT1 (DX)(SI*1)
	ADDQ $64, SI
	CMPQ SI, 32(SP)
	JLT  tp16

	GRED(0)
	CMPQ SI, CX
	JLT  tpseg
	JMP  tnext

tnopf:
	GZERO(0)
	MOVQ SI, DX
	ADDQ $2048, DX
	CMPQ DX, CX
	CMOVQGT CX, DX

tn16:
	GSTEP(0)
	ADDQ $64, SI
	CMPQ SI, DX
	JLT  tn16

	GRED(0)
	CMPQ SI, CX
	JLT  tnopf

	JMP  tnext

	// Triangle tile: the 21 pairs p ≤ q of the six column rows.
ttri:
	XORQ SI, SI

ttseg:
	GZERO(0)
	MOVQ SI, DX
	ADDQ $2048, DX
	CMPQ DX, CX
	CMOVQGT CX, DX

tt16:
	TSTEP(0)
	ADDQ $64, SI
	CMPQ SI, DX
	JLT  tt16

	TRED(0)
	CMPQ SI, CX
	JLT  ttseg

tnext:
	ADDQ $1536, DI
	ADDQ $48, 8(SP)
	DECQ 16(SP)
	JNZ  ttile
	VZEROUPPER
	RET
