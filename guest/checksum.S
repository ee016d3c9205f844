/*
 * checksum.S - tiny x86 guest that hashes ranges of guest-physical memory
 * and reports the hashes on a serial port.
 *
 * Loaded at GPA 0x1000 (MINIVM_GUEST_ENTRY) and entered in 16-bit real mode
 * with CS=0, IP=0x1000, interrupts disabled and RBP = the vCPU's index;
 * every vCPU of the VM runs this same code. Each reads the job the VMM left
 * in its own area (MINIVM_VCPU_AREA_GPA + index * MINIVM_VCPU_AREA_SIZE:
 * uint64_t count, flags, first_id, reserved, then count x { uint64_t gpa,
 * len }) and, for each range in order, computes FNV-1a over it taken as
 * little-endian dwords:
 *
 *	h = 0x811c9dc5; for each dword d: h ^= d; h *= 0x01000193 (mod 2^32)
 *
 * and writes one line to the serial port (MINIVM_SERIAL_PORT: the
 * transmit register of a 16550; the guest never polls the line status):
 *
 *	vcpu 1 range 4 gpa=0x100000000 len=0xb00000 hash=0x1b2c3d4e
 *
 * numbering ranges from first_id. Then it writes "vcpu 1 done" and halts.
 * len must be a multiple of 4 (0 is allowed); the VMM checks that the
 * ranges lie inside the identity map.
 *
 * How it gets there:
 *
 * 1. Ring 0 (real mode, then 64-bit): pick page tables by CPUID, enable
 *    PAE, EFER.LME and paging at once, far-jump to 64-bit code, load the
 *    IDT and this vCPU's TSS, and IRETQ to ring 3.
 * 2. Ring 3 (64-bit): complete the identity map, hash the ranges, print
 *    the report with OUTs (each TSS's I/O bitmap allows the serial port and
 *    nothing else), and execute HLT at user_done. HLT is privileged, so
 *    this raises #GP.
 * 3. Ring 0: the #GP handler halts if the fault came from user_done;
 *    anything else ends in a triple fault (KVM_EXIT_SHUTDOWN).
 *
 * With MINIVM_JOB_STAMP in the job flags, the guest first writes every
 * dword of each range it then hashes: the one at GPA a gets
 * a ^ MINIVM_STAMP_XOR (content the host can predict, in memory it cannot
 * write, such as memory private to the guest).
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
 *			write-protects guest page tables). vCPUs running at
 *			once may both write an entry, always the same value.
 *
 * Memory the guest writes: those page directories; its TSS descriptor's
 * busy bit (cleared before LTR, set by LTR); its own stacks; and, with
 * MINIVM_JOB_STAMP, the ranges it is given.
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
 * __USER_CS (0x33) and __USER_DS (0x2b). vCPU i loads the TSS at
 * TSS_SEL + 16 * i.
 */
#define KERNEL_CS	0x10
#define USER_DS		0x2b
#define USER_CS		0x33
#define TSS_SEL		0x40

/*
 * A TSS: 104 bytes, then the I/O permission bitmap up to the serial port's
 * byte and the extra byte the CPU may read; 1 = denied.
 */
#define IOMAP_BYTES	(MINIVM_SERIAL_PORT / 8 + 2)
#define TSS_SIZE	(104 + IOMAP_BYTES)
#define TSS_STRIDE	((TSS_SIZE + 7) & ~7)

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
	movl	%ebp, %eax		/* EBP: this vCPU's index */
	shll	$4, %eax		/* 16-byte TSS descriptors */
	movb	$0x89, tss_desc + 5(%rax) /* available TSS: LTR marks it busy */
	addl	$TSS_SEL, %eax
	ltr	%ax			/* RSP0 for the #GP from ring 3 */
	imull	$MINIVM_VCPU_AREA_SIZE, %ebp, %ebx
	addl	$MINIVM_VCPU_AREA_GPA, %ebx /* RBX = this vCPU's area */
	leaq	MINIVM_USER_STACK_TOP(%rbx), %rax
	testb	$MINIVM_JOB_RING0, MINIVM_JOB_FLAGS(%rbx)
	jnz	1f
	leaq	MINIVM_KERNEL_STACK_TOP(%rbx), %rsp
	pushq	$USER_DS		/* IRETQ frame into ring 3 */
	pushq	%rax			/* RSP */
	pushq	$RFLAGS_USER
	pushq	$USER_CS
	pushq	$user			/* RIP */
	iretq
1:	movq	%rax, %rsp		/* stay in ring 0 */
	jmp	user

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

/* print: write the NUL-terminated string at label to the serial port. */
.macro	print label
	movl	$\label, %esi
	call	puts
.endm

/* printnum: write reg in base (10 or 16), with at least digits digits. */
.macro	printnum reg, base, digits
	movq	\reg, %rax
	movl	$\base, %ecx
	movl	$\digits, %r8d
	call	putnum
.endm

	/*
	 * Ring 3 from here on (ring 0 with MINIVM_JOB_RING0). RBX: this
	 * vCPU's area, RBP: its index.
	 */
user:
	/*
	 * Page directories for GiB 1 and up (unused with 1 GiB pages). They
	 * are not mapped yet when first written: nothing has walked through
	 * their (already present) PDPT entries.
	 */
	fill	MINIVM_PT_GPA, ((1<<30)+PTE_LEAF), 0x200000, ((MINIVM_PT_NR_PD-1)*512)

	movq	MINIVM_JOB_COUNT(%rbx), %r12	/* R12 = ranges left */
	movq	MINIVM_JOB_FIRST_ID(%rbx), %r14	/* R14 = this range's id */
	leaq	MINIVM_JOB_RANGES(%rbx), %r13	/* R13 = next { gpa, len } */
	testq	%r12, %r12
	jz	report_done

next_range:
	testb	$MINIVM_JOB_STAMP, MINIVM_JOB_FLAGS(%rbx)
	jz	6f
	movq	(%r13), %rdi		/* stamp: dword at a = a ^ STAMP_XOR */
	movq	8(%r13), %rcx
	shrq	$2, %rcx
	jz	6f
5:	movl	%edi, %eax
	xorl	$MINIVM_STAMP_XOR, %eax
	movl	%eax, (%rdi)
	addq	$4, %rdi
	decq	%rcx
	jnz	5b
6:	movq	(%r13), %rsi		/* RSI = gpa */
	movq	8(%r13), %rcx		/* RCX = len */
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

3:	movl	%eax, %r15d		/* R15 = hash */
	print	s_vcpu
	printnum %rbp, 10, 1
	print	s_range
	printnum %r14, 10, 1
	print	s_gpa
	printnum (%r13), 16, 1
	print	s_len
	printnum 8(%r13), 16, 1
	print	s_hash
	printnum %r15, 16, 8
	print	s_newline
	addq	$16, %r13
	incq	%r14
	decq	%r12
	jnz	next_range

report_done:
	print	s_vcpu
	printnum %rbp, 10, 1
	print	s_done
user_done:
	hlt				/* #GP -> gp_handler; in ring 0: halt */

/*
 * The serial port takes a byte per OUT, and each OUT is an exit to the VMM:
 * ~30 us under PVM (a string OUT exits once per byte too), so a report
 * line costs ~2 ms. That is little next to the hashing.
 */

/* puts: write the NUL-terminated string at RSI. Clobbers RAX, RDX, RSI. */
puts:
	movw	$MINIVM_SERIAL_PORT, %dx
1:	lodsb
	testb	%al, %al
	jz	2f
	outb	%al, %dx
	jmp	1b
2:	ret

/*
 * putnum: write RAX in base RCX, with at least R8 digits. The digits are
 * built below the stack pointer (nothing else uses this stack), last
 * first. Clobbers RAX, RDX, RDI, R8.
 */
putnum:
	movq	%rsp, %rdi
1:	xorl	%edx, %edx
	divq	%rcx			/* RAX = RAX / base, RDX = digit */
	movzbl	digits(%rdx), %edx
	decq	%rdi
	movb	%dl, (%rdi)
	decq	%r8
	testq	%rax, %rax
	jnz	1b
	testq	%r8, %r8
	jg	1b
	movw	$MINIVM_SERIAL_PORT, %dx
2:	movb	(%rdi), %al
	outb	%al, %dx
	incq	%rdi
	cmpq	%rsp, %rdi
	jb	2b
	ret

digits:		.ascii	"0123456789abcdef"
s_vcpu:		.asciz	"vcpu "
s_range:	.asciz	" range "
s_gpa:		.asciz	" gpa=0x"
s_len:		.asciz	" len=0x"
s_hash:		.asciz	" hash=0x"
s_newline:	.asciz	"\n"
s_done:		.asciz	" done\n"

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
tss_desc:				/* 0x40 + 16 * i: vCPU i's TSS */
	.set	i, 0
	.rept	MINIVM_MAX_VCPUS
	.word	TSS_SIZE - 1		/* limit */
	.word	tss + i * TSS_STRIDE	/* base 15:0 (the image is below 64K) */
	.byte	0			/* base 23:16 */
	.byte	0x89			/* present, DPL 0, available TSS */
	.byte	0			/* limit 19:16, flags */
	.byte	0			/* base 31:24 */
	.long	0			/* base 63:32 */
	.long	0
	.set	i, i + 1
	.endr
gdt_end:

gdt_desc:
	.word	gdt_end - gdt - 1	/* limit */
	.long	gdt			/* linear base (we run at CS base 0) */

	.balign	8
tss:
	.set	i, 0
	.rept	MINIVM_MAX_VCPUS
	.long	0
	/* RSP0: the top of vCPU i's ring-0 stack */
	.quad	MINIVM_VCPU_AREA_GPA + i * MINIVM_VCPU_AREA_SIZE + MINIVM_KERNEL_STACK_TOP
	.fill	11, 8, 0		/* RSP1, RSP2, reserved, IST1-7, reserved */
	.word	0
	.word	104			/* I/O permission bitmap offset */
	/* the byte of ports 0x3f8-0x3ff allows only the first */
	.fill	MINIVM_SERIAL_PORT / 8, 1, 0xff
	.byte	0xff & ~(1 << (MINIVM_SERIAL_PORT % 8))
	.byte	0xff			/* the CPU reads 2 bytes */
	.fill	TSS_STRIDE - TSS_SIZE, 1, 0
	.set	i, i + 1
	.endr

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
