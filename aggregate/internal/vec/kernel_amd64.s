//go:build amd64

#include "textflag.h"

// Horizontal sum of the four lanes of Y into the low lane of X (X is Y's
// low half), using X15 as scratch.
#define HSUM(Y, X) \
	VEXTRACTF128 $1, Y, X15; \
	VADDPD X15, X, X; \
	VPERMILPD $1, X, X15; \
	VADDSD X15, X, X

// func dotAsm(a, b *float64, n int) float64
// n is a positive multiple of 4.
TEXT ·dotAsm(SB), NOSPLIT, $0-32
	MOVQ a+0(FP), SI
	MOVQ b+8(FP), DI
	MOVQ n+16(FP), CX
	SHLQ $3, CX
	VXORPD Y0, Y0, Y0
	VXORPD Y1, Y1, Y1
	VXORPD Y2, Y2, Y2
	VXORPD Y3, Y3, Y3
	XORQ AX, AX
	MOVQ CX, DX
	ANDQ $-128, DX
	JZ   dot4

dot16:
	VMOVUPD (SI)(AX*1), Y4
	VMOVUPD 32(SI)(AX*1), Y5
	VMOVUPD 64(SI)(AX*1), Y6
	VMOVUPD 96(SI)(AX*1), Y7
	VFMADD231PD (DI)(AX*1), Y4, Y0
	VFMADD231PD 32(DI)(AX*1), Y5, Y1
	VFMADD231PD 64(DI)(AX*1), Y6, Y2
	VFMADD231PD 96(DI)(AX*1), Y7, Y3
	ADDQ $128, AX
	CMPQ AX, DX
	JLT  dot16

dot4:
	CMPQ AX, CX
	JGE  dotdone
	VMOVUPD (SI)(AX*1), Y4
	VFMADD231PD (DI)(AX*1), Y4, Y0
	ADDQ $32, AX
	JMP  dot4

dotdone:
	VADDPD Y1, Y0, Y0
	VADDPD Y3, Y2, Y2
	VADDPD Y2, Y0, Y0
	HSUM(Y0, X0)
	VMOVSD X0, ret+24(FP)
	VZEROUPPER
	RET

// func sqDistAsm(a, b *float64, n int) float64
// n is a positive multiple of 4.
TEXT ·sqDistAsm(SB), NOSPLIT, $0-32
	MOVQ a+0(FP), SI
	MOVQ b+8(FP), DI
	MOVQ n+16(FP), CX
	SHLQ $3, CX
	VXORPD Y0, Y0, Y0
	VXORPD Y1, Y1, Y1
	VXORPD Y2, Y2, Y2
	VXORPD Y3, Y3, Y3
	XORQ AX, AX
	MOVQ CX, DX
	ANDQ $-128, DX
	JZ   sq4

sq16:
	VMOVUPD (SI)(AX*1), Y4
	VMOVUPD 32(SI)(AX*1), Y5
	VMOVUPD 64(SI)(AX*1), Y6
	VMOVUPD 96(SI)(AX*1), Y7
	VSUBPD (DI)(AX*1), Y4, Y4
	VSUBPD 32(DI)(AX*1), Y5, Y5
	VSUBPD 64(DI)(AX*1), Y6, Y6
	VSUBPD 96(DI)(AX*1), Y7, Y7
	VFMADD231PD Y4, Y4, Y0
	VFMADD231PD Y5, Y5, Y1
	VFMADD231PD Y6, Y6, Y2
	VFMADD231PD Y7, Y7, Y3
	ADDQ $128, AX
	CMPQ AX, DX
	JLT  sq16

sq4:
	CMPQ AX, CX
	JGE  sqdone
	VMOVUPD (SI)(AX*1), Y4
	VSUBPD (DI)(AX*1), Y4, Y4
	VFMADD231PD Y4, Y4, Y0
	ADDQ $32, AX
	JMP  sq4

sqdone:
	VADDPD Y1, Y0, Y0
	VADDPD Y3, Y2, Y2
	VADDPD Y2, Y0, Y0
	HSUM(Y0, X0)
	VMOVSD X0, ret+24(FP)
	VZEROUPPER
	RET

// func combineAsm(dst *float64, rows **float64, coef *float64, k, off, n int)
// dst[i] = Σ_j coef[j]·rows[j][off+i] for i < n; k ≥ 1; n a positive
// multiple of 4. Blocks of 48 outputs are held in Y0–Y11 while the k rows
// stream through, so each output is stored once.
TEXT ·combineAsm(SB), NOSPLIT, $0-48
	MOVQ dst+0(FP), DI
	MOVQ rows+8(FP), SI
	MOVQ coef+16(FP), DX
	MOVQ k+24(FP), CX
	MOVQ off+32(FP), R8
	SHLQ $3, R8
	MOVQ n+40(FP), R9
	SHLQ $3, R9
	XORQ R10, R10 // byte position in dst

cb48:
	MOVQ R9, R11
	SUBQ R10, R11
	CMPQ R11, $384
	JLT  cb4
	VXORPD Y0, Y0, Y0
	VXORPD Y1, Y1, Y1
	VXORPD Y2, Y2, Y2
	VXORPD Y3, Y3, Y3
	VXORPD Y4, Y4, Y4
	VXORPD Y5, Y5, Y5
	VXORPD Y6, Y6, Y6
	VXORPD Y7, Y7, Y7
	VXORPD Y8, Y8, Y8
	VXORPD Y9, Y9, Y9
	VXORPD Y10, Y10, Y10
	VXORPD Y11, Y11, Y11
	XORQ AX, AX

cb48row:
	MOVQ (SI)(AX*8), BX
	ADDQ R8, BX
	ADDQ R10, BX
	VBROADCASTSD (DX)(AX*8), Y12
	VFMADD231PD (BX), Y12, Y0
	VFMADD231PD 32(BX), Y12, Y1
	VFMADD231PD 64(BX), Y12, Y2
	VFMADD231PD 96(BX), Y12, Y3
	VFMADD231PD 128(BX), Y12, Y4
	VFMADD231PD 160(BX), Y12, Y5
	VFMADD231PD 192(BX), Y12, Y6
	VFMADD231PD 224(BX), Y12, Y7
	VFMADD231PD 256(BX), Y12, Y8
	VFMADD231PD 288(BX), Y12, Y9
	VFMADD231PD 320(BX), Y12, Y10
	VFMADD231PD 352(BX), Y12, Y11
	INCQ AX
	CMPQ AX, CX
	JLT  cb48row
	VMOVUPD Y0, (DI)(R10*1)
	VMOVUPD Y1, 32(DI)(R10*1)
	VMOVUPD Y2, 64(DI)(R10*1)
	VMOVUPD Y3, 96(DI)(R10*1)
	VMOVUPD Y4, 128(DI)(R10*1)
	VMOVUPD Y5, 160(DI)(R10*1)
	VMOVUPD Y6, 192(DI)(R10*1)
	VMOVUPD Y7, 224(DI)(R10*1)
	VMOVUPD Y8, 256(DI)(R10*1)
	VMOVUPD Y9, 288(DI)(R10*1)
	VMOVUPD Y10, 320(DI)(R10*1)
	VMOVUPD Y11, 352(DI)(R10*1)
	ADDQ $384, R10
	JMP  cb48

cb4:
	CMPQ R10, R9
	JGE  cbdone
	VXORPD Y0, Y0, Y0
	XORQ AX, AX

cb4row:
	MOVQ (SI)(AX*8), BX
	ADDQ R8, BX
	ADDQ R10, BX
	VBROADCASTSD (DX)(AX*8), Y12
	VFMADD231PD (BX), Y12, Y0
	INCQ AX
	CMPQ AX, CX
	JLT  cb4row
	VMOVUPD Y0, (DI)(R10*1)
	ADDQ $32, R10
	JMP  cb4

cbdone:
	VZEROUPPER
	RET

// Adds the lane sum of Y (low half X) to the float64 at off(DI).
#define STORESUM(Y, X, off) \
	HSUM(Y, X); \
	VADDSD off(DI), X, X; \
	VMOVSD X, off(DI)

// One step of 4 elements at byte offset disp: three a-rows in Y12–Y14,
// each b-row in turn through Y15, twelve fused multiply-adds into Y0–Y11
// (accumulator r*4+c holds a[r]·b[c]).
#define GSTEP(disp) \
	VMOVUPD disp(R8)(SI*1), Y12; \
	VMOVUPD disp(R9)(SI*1), Y13; \
	VMOVUPD disp(R10)(SI*1), Y14; \
	VMOVUPD disp(R11)(SI*1), Y15; \
	VFMADD231PD Y15, Y12, Y0; \
	VFMADD231PD Y15, Y13, Y4; \
	VFMADD231PD Y15, Y14, Y8; \
	VMOVUPD disp(R12)(SI*1), Y15; \
	VFMADD231PD Y15, Y12, Y1; \
	VFMADD231PD Y15, Y13, Y5; \
	VFMADD231PD Y15, Y14, Y9; \
	VMOVUPD disp(R13)(SI*1), Y15; \
	VFMADD231PD Y15, Y12, Y2; \
	VFMADD231PD Y15, Y13, Y6; \
	VFMADD231PD Y15, Y14, Y10; \
	VMOVUPD disp(BX)(SI*1), Y15; \
	VFMADD231PD Y15, Y12, Y3; \
	VFMADD231PD Y15, Y13, Y7; \
	VFMADD231PD Y15, Y14, Y11

// func gram3x4Asm(a0, a1, a2, b0, b1, b2, b3 *float64, n int, out *[12]float64)
// out[r*4+c] += a_r·b_c over n elements; n a positive multiple of 4.
TEXT ·gram3x4Asm(SB), NOSPLIT, $0-72
	MOVQ a0+0(FP), R8
	MOVQ a1+8(FP), R9
	MOVQ a2+16(FP), R10
	MOVQ b0+24(FP), R11
	MOVQ b1+32(FP), R12
	MOVQ b2+40(FP), R13
	MOVQ b3+48(FP), BX
	MOVQ n+56(FP), CX
	MOVQ out+64(FP), DI
	SHLQ $3, CX
	VXORPD Y0, Y0, Y0
	VXORPD Y1, Y1, Y1
	VXORPD Y2, Y2, Y2
	VXORPD Y3, Y3, Y3
	VXORPD Y4, Y4, Y4
	VXORPD Y5, Y5, Y5
	VXORPD Y6, Y6, Y6
	VXORPD Y7, Y7, Y7
	VXORPD Y8, Y8, Y8
	VXORPD Y9, Y9, Y9
	VXORPD Y10, Y10, Y10
	VXORPD Y11, Y11, Y11
	XORQ SI, SI
	MOVQ CX, DX
	ANDQ $-64, DX
	JZ   g4

g8:
	GSTEP(0)
	GSTEP(32)
	ADDQ $64, SI
	CMPQ SI, DX
	JLT  g8

g4:
	CMPQ SI, CX
	JGE  gdone
	GSTEP(0)
	ADDQ $32, SI

gdone:
	STORESUM(Y0, X0, 0)
	STORESUM(Y1, X1, 8)
	STORESUM(Y2, X2, 16)
	STORESUM(Y3, X3, 24)
	STORESUM(Y4, X4, 32)
	STORESUM(Y5, X5, 40)
	STORESUM(Y6, X6, 48)
	STORESUM(Y7, X7, 56)
	STORESUM(Y8, X8, 64)
	STORESUM(Y9, X9, 72)
	STORESUM(Y10, X10, 80)
	STORESUM(Y11, X11, 88)
	VZEROUPPER
	RET

// One row j of the 4-output kernel over 12 elements: x = rows[j][pos:pos+12]
// in Y12–Y14, each output's coefficient broadcast through Y15.
#define C4ROW12 \
	MOVQ (SI)(AX*8), BX; \
	ADDQ R8, BX; \
	VMOVUPD (BX), Y12; \
	VMOVUPD 32(BX), Y13; \
	VMOVUPD 64(BX), Y14; \
	VBROADCASTSD (DX)(AX*8), Y15; \
	VFMADD231PD Y12, Y15, Y0; \
	VFMADD231PD Y13, Y15, Y1; \
	VFMADD231PD Y14, Y15, Y2; \
	VBROADCASTSD (R11)(AX*8), Y15; \
	VFMADD231PD Y12, Y15, Y3; \
	VFMADD231PD Y13, Y15, Y4; \
	VFMADD231PD Y14, Y15, Y5; \
	VBROADCASTSD (R12)(AX*8), Y15; \
	VFMADD231PD Y12, Y15, Y6; \
	VFMADD231PD Y13, Y15, Y7; \
	VFMADD231PD Y14, Y15, Y8; \
	VBROADCASTSD (R13)(AX*8), Y15; \
	VFMADD231PD Y12, Y15, Y9; \
	VFMADD231PD Y13, Y15, Y10; \
	VFMADD231PD Y14, Y15, Y11

// func combine4Asm(dst *[4]*float64, rows **float64, coef *float64, k, off, n int)
// dst[r][i] = Σ_j coef[r*k+j]·rows[j][off+i] for r < 4, i < n; k ≥ 1; n a
// positive multiple of 4. A register tile of 4 outputs × 12 elements is
// kept in Y0–Y11 while the k rows stream through: each loaded row segment
// feeds four outputs, so the rows are read a quarter as often as by
// combineAsm.
TEXT ·combine4Asm(SB), NOSPLIT, $0-48
	MOVQ dst+0(FP), DI
	MOVQ rows+8(FP), SI
	MOVQ coef+16(FP), DX
	MOVQ k+24(FP), CX
	MOVQ off+32(FP), R9
	SHLQ $3, R9           // byte offset of element off
	MOVQ n+40(FP), R10
	SHLQ $3, R10          // bytes to produce
	LEAQ (DX)(CX*8), R11  // coefficient rows 1..3
	LEAQ (R11)(CX*8), R12
	LEAQ (R12)(CX*8), R13
	XORQ R14, R14         // byte position within the outputs

c4b12:
	MOVQ R10, R8
	SUBQ R14, R8
	CMPQ R8, $96
	JLT  c4b4
	VXORPD Y0, Y0, Y0
	VXORPD Y1, Y1, Y1
	VXORPD Y2, Y2, Y2
	VXORPD Y3, Y3, Y3
	VXORPD Y4, Y4, Y4
	VXORPD Y5, Y5, Y5
	VXORPD Y6, Y6, Y6
	VXORPD Y7, Y7, Y7
	VXORPD Y8, Y8, Y8
	VXORPD Y9, Y9, Y9
	VXORPD Y10, Y10, Y10
	VXORPD Y11, Y11, Y11
	LEAQ (R9)(R14*1), R8  // byte offset of this block in every row
	XORQ AX, AX

c4row12:
	C4ROW12
	INCQ AX
	CMPQ AX, CX
	JLT  c4row12
	MOVQ 0(DI), BX
	VMOVUPD Y0, (BX)(R14*1)
	VMOVUPD Y1, 32(BX)(R14*1)
	VMOVUPD Y2, 64(BX)(R14*1)
	MOVQ 8(DI), BX
	VMOVUPD Y3, (BX)(R14*1)
	VMOVUPD Y4, 32(BX)(R14*1)
	VMOVUPD Y5, 64(BX)(R14*1)
	MOVQ 16(DI), BX
	VMOVUPD Y6, (BX)(R14*1)
	VMOVUPD Y7, 32(BX)(R14*1)
	VMOVUPD Y8, 64(BX)(R14*1)
	MOVQ 24(DI), BX
	VMOVUPD Y9, (BX)(R14*1)
	VMOVUPD Y10, 32(BX)(R14*1)
	VMOVUPD Y11, 64(BX)(R14*1)
	ADDQ $96, R14
	JMP  c4b12

c4b4:
	CMPQ R14, R10
	JGE  c4done
	VXORPD Y0, Y0, Y0
	VXORPD Y3, Y3, Y3
	VXORPD Y6, Y6, Y6
	VXORPD Y9, Y9, Y9
	LEAQ (R9)(R14*1), R8
	XORQ AX, AX

c4row4:
	MOVQ (SI)(AX*8), BX
	ADDQ R8, BX
	VMOVUPD (BX), Y12
	VBROADCASTSD (DX)(AX*8), Y15
	VFMADD231PD Y12, Y15, Y0
	VBROADCASTSD (R11)(AX*8), Y15
	VFMADD231PD Y12, Y15, Y3
	VBROADCASTSD (R12)(AX*8), Y15
	VFMADD231PD Y12, Y15, Y6
	VBROADCASTSD (R13)(AX*8), Y15
	VFMADD231PD Y12, Y15, Y9
	INCQ AX
	CMPQ AX, CX
	JLT  c4row4
	MOVQ 0(DI), BX
	VMOVUPD Y0, (BX)(R14*1)
	MOVQ 8(DI), BX
	VMOVUPD Y3, (BX)(R14*1)
	MOVQ 16(DI), BX
	VMOVUPD Y6, (BX)(R14*1)
	MOVQ 24(DI), BX
	VMOVUPD Y9, (BX)(R14*1)
	ADDQ $32, R14
	JMP  c4b4

c4done:
	VZEROUPPER
	RET

// One comparator of the network on four lanes: pair (i, j) holds the byte
// offsets of rows i < j; row i gets the lane-wise minimum, row j the
// maximum.
#define CMPX(pairoff) \
	MOVL    pairoff(DX), AX; \
	MOVL    pairoff+4(DX), BX; \
	VMOVUPD (SI)(AX*1), Y0; \
	VMOVUPD (SI)(BX*1), Y1; \
	VMINPD  Y1, Y0, Y2; \
	VMAXPD  Y1, Y0, Y3; \
	VMOVUPD Y2, (SI)(AX*1); \
	VMOVUPD Y3, (SI)(BX*1)

// func sortNet4Asm(buf *float64, pairs *int32, npairs int)
// Applies a comparator network to four interleaved columns: buf holds rows
// of four float64 (one lane per column) and pairs npairs (i·32, j·32)
// byte-offset pairs, applied in order. No NaN allowed.
TEXT ·sortNet4Asm(SB), NOSPLIT, $0-24
	MOVQ buf+0(FP), SI
	MOVQ pairs+8(FP), DX
	MOVQ npairs+16(FP), CX
	SHLQ $3, CX
	ADDQ DX, CX           // end of the pair list
	MOVQ CX, R8
	SUBQ DX, R8
	ANDQ $-16, R8
	ADDQ DX, R8           // end of the part done two pairs at a time
	CMPQ DX, R8
	JGE  sn1

sn2:
	CMPX(0)
	CMPX(8)
	ADDQ $16, DX
	CMPQ DX, R8
	JLT  sn2

sn1:
	CMPQ DX, CX
	JGE  sndone
	CMPX(0)

sndone:
	VZEROUPPER
	RET
