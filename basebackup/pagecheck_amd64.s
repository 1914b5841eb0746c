#include "textflag.h"

DATA fnvprime<>+0(SB)/4, $16777619
GLOBL fnvprime<>(SB), RODATA|NOPTR, $4

// func checksumRowsAVX2(sums *[32]uint32, data *byte, rows int)
//
// For each row of 32 words w[j]: tmp = sums[j] ^ w[j];
// sums[j] = tmp*16777619 ^ tmp>>17, eight lanes per register.
TEXT ·checksumRowsAVX2(SB), NOSPLIT, $0-24
	MOVQ sums+0(FP), AX
	MOVQ data+8(FP), SI
	MOVQ rows+16(FP), CX
	VMOVDQU 0(AX), Y0
	VMOVDQU 32(AX), Y1
	VMOVDQU 64(AX), Y2
	VMOVDQU 96(AX), Y3
	VPBROADCASTD fnvprime<>(SB), Y15
	TESTQ CX, CX
	JZ done

loop:
	VPXOR 0(SI), Y0, Y4
	VPXOR 32(SI), Y1, Y5
	VPXOR 64(SI), Y2, Y6
	VPXOR 96(SI), Y3, Y7
	VPMULLD Y15, Y4, Y0
	VPMULLD Y15, Y5, Y1
	VPMULLD Y15, Y6, Y2
	VPMULLD Y15, Y7, Y3
	VPSRLD $17, Y4, Y4
	VPSRLD $17, Y5, Y5
	VPSRLD $17, Y6, Y6
	VPSRLD $17, Y7, Y7
	VPXOR Y4, Y0, Y0
	VPXOR Y5, Y1, Y1
	VPXOR Y6, Y2, Y2
	VPXOR Y7, Y3, Y3
	ADDQ $128, SI
	DECQ CX
	JNZ loop

done:
	VMOVDQU Y0, 0(AX)
	VMOVDQU Y1, 32(AX)
	VMOVDQU Y2, 64(AX)
	VMOVDQU Y3, 96(AX)
	VZEROUPPER
	RET
