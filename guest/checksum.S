/*
 * checksum.S - tiny x86 guest that hashes ranges of guest-physical memory.
 *
 * Loaded at GPA 0x1000 (MINIVM_GUEST_ENTRY) and entered in 16-bit real mode
 * with CS=0, IP=0x1000 and interrupts disabled. It takes no input in
 * registers: it reads the job the VMM left at MINIVM_JOB_GPA (uint64_t
 * count, uint64_t flags, count x { uint64_t gpa, len }) and, for each
 * range in order, computes FNV-1a over it taken as little-endian dwords:
 *
 *	h = 0x811c9dc5; for each dword d: h ^= d; h *= 0x01000193 (mod 2^32)
 *
 * and writes h with a 32-bit OUT to port MINIVM_CHECKSUM_PORT. Then it
 * halts. len must be a multiple of 4 (0 is allowed); the VMM checks that
 * the ranges lie inside the identity map.
 *
 * How it gets there:
 *
 * 1. Ring 0 (real mode, then 64-bit): pick page tables by CPUID, enable
 *    PAE, EFER.LME and paging at once, far-jump to 64-bit code, load IDT
 *    and TSS, and IRETQ to ring 3.
 * 2. Ring 3 (64-bit): complete the identity map, hash the ranges, OUT each
 *    hash (the TSS I/O bitmap allows ports 0x10-0x13 and nothing else),
 *    and execute HLT at user_done. HLT is privileged, so this raises #GP.
 * 3. Ring 0: the #GP handler halts if the fault came from user_done;
 *    anything else ends in a triple fault (KVM_EXIT_SHUTDOWN).
 *
 * With MINIVM_JOB_RING0 in the job flags, step 2 runs in ring 0 instead
 * (no IRETQ; HLT then simply halts). That is the VMM's fallback for memory
 * that KVM can read for its instruction emulator but cannot map for the
 * guest (e.g. memfd_secret on PVM, where ring 0 is emulated).
 *
 * Why ring 3: some KVMs run only a guest's user mode natively. PVM (the
 * "kvm_pvm" module) emulates all guest supervisor code, as well as real and
 * protected mode, instruction by instruction (~1 us each), and runs 64-bit
 * user code at full speed. So the guest keeps ring 0 to a couple of dozen
 * instructions per run. (PVM also drops a virtual IOPL once user code has
 * run natively, hence the I/O bitmap rather than IOPL=3.)
 *
 * Identity map (all entries user, writable, with Accessed/Dirty preset so
 * the CPU never writes to them):
 *
 *	CPUID pdpe1gb:	pml4_1g -> pdpt_1g: 512 x 1 GiB pages, [0, 512 GiB)
 *	otherwise:	pml4_2m -> pdpt_2m -> MINIVM_PT_NR_PD page directories
 *			of 2 MiB pages, [0, 64 GiB). The first (pd0) is part
 *			of this image; ring 3 builds the others at
 *			MINIVM_PT_GPA, writing only entries that differ, so
 *			later runs only read them (that matters where KVM
 *			write-protects guest page tables).
 *
 * Memory the guest writes: those page directories; the TSS descriptor's
 * busy bit (cleared before LTR, set by LTR); and the 48-byte #GP frame
 * just below MINIVM_GUEST_ENTRY (the ring-0 stack).
 */
#include "minivm.h"

#define CR0_PE		0x00000001
#define CR0_ET		0x00000010
#define CR0_PG		0x80000000
#define CR4_PAE		0x00000020
#define MSR_EFER	0xc0000080
#define EFER_LME	0x00000100
#define RFLAGS_USER	0x0002			/* reserved bit 1; IF=0, IOPL=0 */
#define CPUID_PDPE1GB	26			/* CPUID 0x80000001 EDX bit */

/* Page table entry bits: P, RW, US, A (+ D, PS for leaves). */
#define PTE_TABLE	0x027
#define PTE_LEAF	0x0e7

/*
 * Selectors as in Linux: PVM requires user code to run with the host's
 * __USER_CS (0x33) and __USER_DS (0x2b).
 */
#define KERNEL_CS	0x10
#define USER_DS		0x2b
#define USER_CS		0x33
#define TSS_SEL		0x40

#define RING0_STACK	MINIVM_GUEST_ENTRY	/* grows down into page 0 */

#define FNV_OFFSET	0x811c9dc5
#define FNV_PRIME	0x01000193

	.text
	.code16
	.globl	_start
_start:
	cli
	xorw	%ax, %ax
	movw	%ax, %ds		/* gdt_desc is addressed via DS:disp16 */
	lgdtl	gdt_desc		/* 32-bit operand: full 32-bit GDT base */

	movl	$0x80000001, %eax
	cpuid
	movl	$pml4_2m, %eax
	btl	$CPUID_PDPE1GB, %edx
	jnc	1f
	movl	$pml4_1g, %eax
1:	movl	%eax, %cr3
	movl	$CR4_PAE, %eax
	movl	%eax, %cr4
	movl	$MSR_EFER, %ecx
	movl	$EFER_LME, %eax		/* EFER is 0 after the VMM's reset */
	xorl	%edx, %edx
	wrmsr
	/* Paging and protection at once; also clears CR0.CD/NW. */
	movl	$(CR0_PG | CR0_ET | CR0_PE), %eax
	movl	%eax, %cr0
	ljmpl	$KERNEL_CS, $lm64	/* -> 64-bit code segment */

	.code64
lm64:
	lidt	idt_desc
	movb	$0x89, tss_desc + 5	/* available TSS: LTR marks it busy */
	movw	$TSS_SEL, %ax
	ltr	%ax			/* RSP0 for the #GP from ring 3 */
	testb	$MINIVM_JOB_RING0, MINIVM_JOB_GPA + 8
	jnz	user			/* stay in ring 0 */
	movl	$iret_frame, %esp
	iretq				/* -> user, ring 3 */

/* #GP from ring 3: error code, RIP, CS, RFLAGS, RSP, SS on the stack. */
gp_handler:
	cmpq	$user_done, 8(%rsp)
	jne	1f
	hlt				/* the VMM stops here */
1:	ud2				/* no gate for #UD: triple fault */

/*
 * fill: for i in [0, count): if (dst[i] != value + i * step) write it.
 * Done at once if the last entry is right: only this code writes there,
 * in ascending order. Clobbers RAX, RCX, RDI.
 */
.macro	fill dst, value, step, count
	movabsq	$(\value + (\count - 1) * \step), %rax
	cmpq	%rax, \dst + (\count - 1) * 8
	je	.Ldone\@
	movl	$\dst, %edi
	movabsq	$\value, %rax
	movl	$\count, %ecx
.Lfill\@:
	cmpq	%rax, (%rdi)
	je	.Lsame\@
	movq	%rax, (%rdi)
.Lsame\@:
	addq	$8, %rdi
	addq	$\step, %rax
	decl	%ecx
	jnz	.Lfill\@
.Ldone\@:
.endm

	/* Ring 3 from here on (ring 0 with MINIVM_JOB_RING0). */
user:
	/*
	 * Page directories for GiB 1 and up (unused with 1 GiB pages). They
	 * are not mapped yet when first written: nothing has walked through
	 * their (already present) PDPT entries.
	 */
	fill	MINIVM_PT_GPA, ((1<<30)+PTE_LEAF), 0x200000, ((MINIVM_PT_NR_PD-1)*512)

	movl	$MINIVM_JOB_GPA, %ebx
	movq	(%rbx), %r8		/* R8 = ranges left */
	addq	$16, %rbx		/* RBX = next { gpa, len } */
	testq	%r8, %r8
	jz	user_done

next_range:
	movq	(%rbx), %rsi		/* RSI = gpa */
	movq	8(%rbx), %rcx		/* RCX = len */
	movl	$FNV_OFFSET, %eax
	movq	%rcx, %rdx
	andl	$28, %edx		/* RDX = tail bytes (len % 32) */
	shrq	$5, %rcx		/* RCX = 32-byte blocks */
	jz	2f

	/*
	 * FNV-1a is a serial chain (XOR, then a 3-cycle multiply per dword);
	 * the loads do not depend on it and run ahead. Unrolled 8x.
	 */
	.balign	16
1:	xorl	(%rsi), %eax
	imull	$FNV_PRIME, %eax, %eax	/* low 32 bits only */
	xorl	4(%rsi), %eax
	imull	$FNV_PRIME, %eax, %eax
	xorl	8(%rsi), %eax
	imull	$FNV_PRIME, %eax, %eax
	xorl	12(%rsi), %eax
	imull	$FNV_PRIME, %eax, %eax
	xorl	16(%rsi), %eax
	imull	$FNV_PRIME, %eax, %eax
	xorl	20(%rsi), %eax
	imull	$FNV_PRIME, %eax, %eax
	xorl	24(%rsi), %eax
	imull	$FNV_PRIME, %eax, %eax
	xorl	28(%rsi), %eax
	imull	$FNV_PRIME, %eax, %eax
	addq	$32, %rsi
	decq	%rcx
	jnz	1b

2:	testl	%edx, %edx		/* 0-7 remaining dwords */
	jz	3f
4:	xorl	(%rsi), %eax
	imull	$FNV_PRIME, %eax, %eax
	addq	$4, %rsi
	subl	$4, %edx
	jnz	4b

3:	movw	$MINIVM_CHECKSUM_PORT, %dx
	outl	%eax, %dx		/* report this range's hash */
	addq	$16, %rbx
	decq	%r8
	jnz	next_range

user_done:
	hlt				/* #GP -> gp_handler; in ring 0: halt */

	/*
	 * GDT. The "accessed" type bits are preset so the CPU never writes
	 * to the code and data descriptors.
	 */
	.balign	8
gdt:
	.quad	0
	.quad	0
	.quad	0x00af9b000000ffff	/* 0x10: kernel code, 64-bit */
	.quad	0x00cf93000000ffff	/* 0x18: kernel data */
	.quad	0x00cffb000000ffff	/* 0x23: user code, 32-bit (unused) */
	.quad	0x00cff3000000ffff	/* 0x2b: user data */
	.quad	0x00affb000000ffff	/* 0x33: user code, 64-bit */
	.quad	0
tss_desc:				/* 0x40: 64-bit TSS (16 bytes) */
	.word	tss_end - tss - 1	/* limit */
	.word	tss			/* base 15:0 (the image is below 64K) */
	.byte	0			/* base 23:16 */
	.byte	0x89			/* present, DPL 0, available TSS */
	.byte	0			/* limit 19:16, flags */
	.byte	0			/* base 31:24 */
	.long	0			/* base 63:32 */
	.long	0
gdt_end:

gdt_desc:
	.word	gdt_end - gdt - 1	/* limit */
	.long	gdt			/* linear base (we run at CS base 0) */

	.balign	8
tss:
	.long	0
	.quad	RING0_STACK		/* RSP0 */
	.fill	11, 8, 0		/* RSP1, RSP2, reserved, IST1-7, reserved */
	.word	0
	.word	iomap - tss		/* I/O permission bitmap offset */
	/* 1 = denied. A 32-bit OUT to port 0x10 needs ports 0x10-0x13. */
iomap:
	.byte	0xff, 0xff		/* ports 0x00-0x0f */
	.byte	0xf0			/* ports 0x10-0x17: 0x10-0x13 allowed */
	.byte	0xff			/* ports 0x18-0x1f; the CPU reads 2 bytes */
tss_end:

	/* IDT: only #GP (13), a 64-bit interrupt gate to gp_handler. */
	.balign	16
idt:
	.fill	13 * 16, 1, 0
	.word	gp_handler		/* offset 15:0 */
	.word	KERNEL_CS
	.byte	0			/* IST */
	.byte	0x8e			/* present, DPL 0, interrupt gate */
	.word	0			/* offset 31:16 */
	.long	0			/* offset 63:32 */
	.long	0
idt_end:

idt_desc:
	.word	idt_end - idt - 1
	.quad	idt

	/* IRETQ frame into ring 3: RIP, CS, RFLAGS, RSP (unused), SS. */
	.balign	8
iret_frame:
	.quad	user, USER_CS, RFLAGS_USER, 0, USER_DS

	/*
	 * Page tables. Pad with zeroes (not-present entries), not the
	 * default NOPs.
	 */
	.balign	4096, 0
pml4_2m:
	.quad	pdpt_2m + PTE_TABLE
	.balign	4096, 0
pdpt_2m:
	.quad	pd0 + PTE_TABLE
	.set	i, 1
	.rept	MINIVM_PT_NR_PD - 1
	.quad	MINIVM_PT_GPA + (i - 1) * 0x1000 + PTE_TABLE
	.set	i, i + 1
	.endr
	.balign	4096, 0
pd0:
	.set	i, 0
	.rept	512
	.quad	(i << 21) + PTE_LEAF
	.set	i, i + 1
	.endr

	.balign	4096, 0
pml4_1g:
	.quad	pdpt_1g + PTE_TABLE
	.balign	4096, 0
pdpt_1g:
	.set	i, 0
	.rept	512
	.quad	(i << 30) + PTE_LEAF
	.set	i, i + 1
	.endr

	/* No executable stack needed. */
	.section .note.GNU-stack, "", @progbits
