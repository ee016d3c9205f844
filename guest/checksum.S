/*
 * checksum.S - tiny x86 guest that hashes a range of guest-physical memory.
 *
 * Loaded at GPA 0x1000 and entered in 16-bit real mode with CS=0, IP=0x1000
 * and interrupts disabled. The VMM passes the range in registers:
 *
 *	ESI = guest-physical start address
 *	ECX = length in bytes (a multiple of 4; 0 is allowed)
 *
 * The guest switches to 32-bit flat protected mode (no paging), computes
 * FNV-1a over the range taken as little-endian 32-bit words:
 *
 *	h = 0x811c9dc5; for each dword d: h ^= d; h *= 0x01000193 (mod 2^32)
 *
 * writes h with a 32-bit OUT to I/O port 0x10 and halts. ESI and ECX are
 * not touched before they are used. The guest writes no memory (see the
 * GDT below), so hashing its own image gives the same result as the host.
 */

	.text
	.code16
	.globl	_start
_start:
	cli
	xorw	%ax, %ax
	movw	%ax, %ds		/* gdt_desc is addressed via DS:disp16 */
	lgdtl	gdt_desc		/* 32-bit operand: full 32-bit GDT base */

	movl	%cr0, %eax
	orl	$1, %eax		/* CR0.PE */
	movl	%eax, %cr0
	ljmpl	$0x08, $pm32		/* reload CS from the GDT -> 32-bit code */

	.code32
pm32:
	movw	$0x10, %ax		/* flat 4 GiB data segment */
	movw	%ax, %ds
	movw	%ax, %es
	movw	%ax, %ss

	movl	$0x811c9dc5, %eax	/* FNV-1a offset basis */
	movl	%ecx, %edx		/* EDX = tail bytes (len % 16) */
	andl	$12, %edx
	shrl	$4, %ecx		/* ECX = 16-byte blocks */
	jz	2f

	/*
	 * Unrolled 4x: on hosts where KVM emulates non-64-bit guest code
	 * (e.g. PVM) each instruction costs the same, so fewer is faster.
	 */
1:	xorl	(%esi), %eax
	imull	$0x01000193, %eax, %eax	/* FNV prime; low 32 bits only */
	xorl	4(%esi), %eax
	imull	$0x01000193, %eax, %eax
	xorl	8(%esi), %eax
	imull	$0x01000193, %eax, %eax
	xorl	12(%esi), %eax
	imull	$0x01000193, %eax, %eax
	addl	$16, %esi
	decl	%ecx
	jnz	1b

2:	testl	%edx, %edx		/* 0-3 remaining dwords */
	jz	done
3:	xorl	(%esi), %eax
	imull	$0x01000193, %eax, %eax
	addl	$4, %esi
	subl	$4, %edx
	jnz	3b

done:
	movw	$0x10, %dx
	outl	%eax, %dx		/* report the hash to the VMM */
	hlt
	jmp	done			/* not reached: the VMM stops at HLT */

	/*
	 * Flat GDT: null, code 0x08, data 0x10 (base 0, limit 4 GiB, 4K gran.).
	 * The "accessed" type bit is preset so the CPU never writes to it:
	 * the guest leaves all of memory, including its own image, unchanged.
	 */
	.balign	8
gdt:
	.quad	0x0000000000000000
	.quad	0x00cf9b000000ffff	/* 0x08: code, exec/read, accessed, 32-bit */
	.quad	0x00cf93000000ffff	/* 0x10: data, read/write, accessed, 32-bit */
gdt_end:

gdt_desc:
	.word	gdt_end - gdt - 1	/* limit */
	.long	gdt			/* linear base (we run at CS base 0) */
