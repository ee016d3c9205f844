/*
 * multiboot.S - tiny multiboot (v1) guest for QEMU's -kernel that checks
 * guest memory someone else populated (tests/check-qemu.sh: gmemd).
 *
 * QEMU loads this 32-bit ELF at 1 MiB and enters _start in flat 32-bit
 * protected mode, paging off, interrupts off, with EAX = 0x2badb002 and
 * EBX -> the multiboot information structure. The command line (-append)
 * says what to check; numbers are 0x-prefixed hex or decimal:
 *
 *	gpa=ADDR len=BYTES hash=FNV [mark=ADDR]
 *
 * The guest computes FNV-1a over [gpa, gpa + len) taken as little-endian
 * dwords, the same function as minivm_checksum_host() in tools/minivm.c:
 *
 *	h = 0x811c9dc5; for each dword d: h ^= d; h *= 0x01000193 (mod 2^32)
 *
 * writes a 32-byte marker at mark (default 0x800000) so the host can see
 * that the guest ran in the memory it handed out:
 *
 *	+0  "GMEMBOOT"	+8  result (0 match, 1 mismatch)
 *	+12 computed	+16 expected	+20 gpa	+24 len	+28 ~computed
 *
 * and exits through isa-debug-exit (-device isa-debug-exit,iobase=0xf4,
 * iosize=0x04), which makes QEMU exit with (code << 1) | 1:
 *
 *	code 0 (status 1)	the hash matches
 *	code 1 (status 3)	it does not
 *	code 2 (status 5)	bad command line or range: nothing was hashed
 *				and no marker written
 *
 * Without that device it triple-faults (QEMU -no-reboot then exits 0).
 * Progress goes to COM1 (port 0x3f8; QEMU needs no UART setup or polling):
 * a line for the request, a dot per MiB hashed, a line for the result.
 *
 * Restrictions, each reported as code 2: len a non-zero multiple of 4;
 * [gpa, gpa + len) and the marker inside upper memory (1 MiB up to the
 * end of RAM below 4 GiB, from the multiboot mem_upper field), apart from
 * each other and from this image.
 *
 * Speed: this is ring-0 32-bit code. Where KVM runs it natively (or under
 * TCG) hashing is hundreds of MB/s; PVM emulates such code at ~1 us per
 * instruction, so the loop is unrolled to two instructions per dword.
 */

#define MB_HEADER_MAGIC		0x1badb002
#define MB_HEADER_FLAGS		0x00000002	/* want mem_lower/mem_upper */
#define MB_BOOT_MAGIC		0x2badb002
#define MBI_FLAG_MEM		(1 << 0)	/* mbi->mem_upper is valid */
#define MBI_FLAG_CMDLINE	(1 << 2)	/* mbi->cmdline is valid */
#define MBI_MEM_UPPER		8		/* KiB above 1 MiB */
#define MBI_CMDLINE		16		/* physical address of a C string */

#define COM1			0x3f8
#define DEBUG_EXIT_PORT		0xf4
#define UPPER_MEM		0x100000

#define FNV32_OFFSET		0x811c9dc5
#define FNV32_PRIME		0x01000193

#define MARK_SIZE		32
#define MARK_DEFAULT		0x800000

/* bits in seen: which keys the command line gave */
#define SEEN_GPA		1
#define SEEN_LEN		2
#define SEEN_HASH		4
#define SEEN_ALL		7

	.code32
	.section .text
	.globl	_start

/* The multiboot header: 4-aligned, in the first 8 KiB of the file. */
	.balign	4
mb_header:
	.long	MB_HEADER_MAGIC
	.long	MB_HEADER_FLAGS
	.long	-(MB_HEADER_MAGIC + MB_HEADER_FLAGS)

_start:
	cli
	cld
	movl	$stack_top, %esp
	cmpl	$MB_BOOT_MAGIC, %eax
	movl	$msg_magic, %esi
	jne	bad
	movl	%ebx, %ebp			/* EBP: multiboot info, kept throughout */

	movl	$msg_hello, %esi
	call	puts

	/* end of RAM below 4 GiB: 1 MiB + mem_upper KiB */
	testl	$MBI_FLAG_MEM, (%ebp)
	movl	$msg_nomem, %esi
	jz	bad
	movl	MBI_MEM_UPPER(%ebp), %eax
	shll	$10, %eax
	addl	$UPPER_MEM, %eax
	movl	%eax, ram_end

	testl	$MBI_FLAG_CMDLINE, (%ebp)
	movl	$msg_nocmd, %esi
	jz	bad
	movl	MBI_CMDLINE(%ebp), %esi
	call	parse_cmdline			/* ESI -> reason on failure */
	jc	bad

	/* check the request */
	movl	$msg_missing, %esi
	cmpl	$SEEN_ALL, seen
	jne	bad
	movl	$msg_len, %esi
	movl	len, %ecx
	testl	%ecx, %ecx
	jz	bad
	testl	$3, %ecx
	jnz	bad
	movl	$msg_range, %esi
	movl	gpa, %eax
	call	in_upper_mem			/* [EAX, EAX + ECX) */
	jc	bad
	movl	$msg_mark, %esi
	movl	mark, %eax
	testl	$3, %eax
	jnz	bad
	movl	$MARK_SIZE, %ecx
	call	in_upper_mem
	jc	bad
	movl	gpa, %ebx			/* marker vs hashed range */
	movl	len, %edx
	call	overlaps
	jnc	bad
	movl	$__executable_start, %ebx	/* each vs this image: the linker's */
	movl	$_end, %edx			/* [__executable_start, _end) */
	subl	%ebx, %edx
	call	overlaps
	jnc	bad
	movl	$msg_range, %esi
	movl	gpa, %eax
	movl	len, %ecx
	call	overlaps
	jnc	bad

	/* "gpa=0x... len=0x... hash=0x... mark=0x..." */
	movl	$msg_gpa, %esi
	call	puts
	movl	gpa, %eax
	call	puthex
	movl	$msg_len_eq, %esi
	call	puts
	movl	len, %eax
	call	puthex
	movl	$msg_hash_eq, %esi
	call	puts
	movl	hash, %eax
	call	puthex
	movl	$msg_mark_eq, %esi
	call	puts
	movl	mark, %eax
	call	puthex
	movl	$msg_nl, %esi
	call	puts

/*
 * The hash: EDX = h, ESI = cursor, ECX = 64-byte blocks left, EDI = len.
 * One XOR with a memory operand and one IMUL per dword; a dot on COM1
 * each time the cursor reaches a MiB boundary.
 */
	movl	gpa, %esi
	movl	len, %edi
	movl	%edi, %ecx
	shrl	$6, %ecx
	movl	$FNV32_OFFSET, %edx
	jz	tail
block:
	.irp	off, 0, 4, 8, 12, 16, 20, 24, 28, 32, 36, 40, 44, 48, 52, 56, 60
	xorl	\off(%esi), %edx
	imull	$FNV32_PRIME, %edx, %edx
	.endr
	addl	$64, %esi
	testl	$0xfffff, %esi
	jnz	1f
	movb	$'.', %al
	call	putc
1:	decl	%ecx
	jnz	block
tail:
	andl	$63, %edi
	shrl	$2, %edi
	jz	hashed
2:	xorl	(%esi), %edx
	imull	$FNV32_PRIME, %edx, %edx
	addl	$4, %esi
	decl	%edi
	jnz	2b
hashed:
	/* the marker, then the verdict on COM1 and to isa-debug-exit */
	xorl	%eax, %eax
	cmpl	hash, %edx
	setne	%al
	movl	mark, %edi
	movl	$0x4d454d47, 0(%edi)		/* "GMEM" */
	movl	$0x544f4f42, 4(%edi)		/* "BOOT" */
	movl	%eax, 8(%edi)
	movl	%edx, 12(%edi)
	movl	hash, %ecx
	movl	%ecx, 16(%edi)
	movl	gpa, %ecx
	movl	%ecx, 20(%edi)
	movl	len, %ecx
	movl	%ecx, 24(%edi)
	movl	%edx, %ecx
	notl	%ecx
	movl	%ecx, 28(%edi)

	movl	%eax, %ebx			/* EBX: exit code */
	movl	$msg_computed, %esi
	call	puts
	movl	%edx, %eax
	call	puthex
	movl	$msg_match, %esi
	testl	%ebx, %ebx
	jz	3f
	movl	$msg_mismatch, %esi
3:	call	puts
	movl	%ebx, %eax
	jmp	exit

/* ESI -> reason: print it and exit with code 2. */
bad:
	pushl	%esi
	movl	$msg_bad, %esi
	call	puts
	popl	%esi
	call	puts
	movl	$msg_nl, %esi
	call	puts
	movl	$2, %eax
	/* fall through */

/* EAX: exit code. Only returns when there is no isa-debug-exit device. */
exit:
	outl	%eax, $DEBUG_EXIT_PORT
	movl	$msg_noexit, %esi
	call	puts
	lidt	null_idt			/* then any exception triple-faults */
	int3
	hlt

/*
 * parse_cmdline: ESI -> NUL-terminated command line ("PATH key=value ...":
 * QEMU puts the kernel's path first). Words that are not one of our keys
 * are skipped. CF set and ESI -> reason on a bad number.
 */
parse_cmdline:
	movb	(%esi), %al
	testb	%al, %al
	jz	9f
	cmpb	$' ', %al
	jne	1f
	incl	%esi
	jmp	parse_cmdline
1:	movl	$keys, %ebx			/* { key, variable, seen bit } */
2:	movl	(%ebx), %edi
	testl	%edi, %edi
	jz	skip_word
	pushl	%esi
3:	movb	(%edi), %al			/* does the word start with key? */
	testb	%al, %al
	jz	4f
	cmpb	(%esi), %al
	jne	5f
	incl	%esi
	incl	%edi
	jmp	3b
4:	addl	$4, %esp			/* yes: ESI is past '=' */
	call	parse_number
	jc	8f
	movl	4(%ebx), %edi
	movl	%eax, (%edi)
	movl	8(%ebx), %eax
	orl	%eax, seen
	jmp	parse_cmdline
5:	popl	%esi				/* no: the next key */
	addl	$12, %ebx
	jmp	2b
skip_word:
	movb	(%esi), %al
	testb	%al, %al
	jz	9f
	cmpb	$' ', %al
	je	parse_cmdline
	incl	%esi
	jmp	skip_word
8:	movl	$msg_number, %esi
	stc
	ret
9:	clc
	ret

/*
 * parse_number: ESI -> "0x1f", "31", ... ended by ' ' or NUL. EAX = value
 * and ESI past it; CF set when empty, not a number or above 0xffffffff.
 * Clobbers ECX, EDX.
 */
parse_number:
	xorl	%eax, %eax
	xorl	%ecx, %ecx			/* digits seen */
	cmpw	$0x7830, (%esi)			/* "0x" */
	jne	dec_digit
	addl	$2, %esi
hex_digit:
	movzbl	(%esi), %edx
	testb	%dl, %dl
	jz	number_end
	cmpb	$' ', %dl
	je	number_end
	orb	$0x20, %dl			/* lower case; digits unchanged */
	subb	$'0', %dl
	cmpb	$9, %dl
	jbe	1f
	subb	$('a' - '0' - 10), %dl
	cmpb	$10, %dl
	jb	number_bad
	cmpb	$15, %dl
	ja	number_bad
1:	testl	$0xf0000000, %eax
	jnz	number_bad
	shll	$4, %eax
	orl	%edx, %eax
	incl	%esi
	incl	%ecx
	jmp	hex_digit
dec_digit:
	movzbl	(%esi), %edx
	testb	%dl, %dl
	jz	number_end
	cmpb	$' ', %dl
	je	number_end
	subb	$'0', %dl
	cmpb	$9, %dl
	ja	number_bad
	pushl	%edx
	movl	$10, %edx
	mull	%edx				/* EDX:EAX = EAX * 10 */
	popl	%edx
	jc	number_bad
	addl	%edx, %eax
	jc	number_bad
	incl	%esi
	incl	%ecx
	jmp	dec_digit
number_end:
	testl	%ecx, %ecx
	jz	number_bad
	clc
	ret
number_bad:
	stc
	ret

/* in_upper_mem: CF clear when [EAX, EAX + ECX) lies in [1 MiB, ram_end). */
in_upper_mem:
	cmpl	$UPPER_MEM, %eax
	jb	1f
	pushl	%eax
	addl	%ecx, %eax
	jc	2f
	cmpl	ram_end, %eax
	ja	2f
	popl	%eax
	clc
	ret
2:	popl	%eax
1:	stc
	ret

/* overlaps: CF clear when [EAX, EAX + ECX) and [EBX, EBX + EDX) intersect
 * (both non-empty, neither wrapping: in_upper_mem checked them). */
overlaps:
	pushl	%edi
	leal	(%ebx, %edx), %edi		/* a < b_end && b < a_end */
	cmpl	%edi, %eax
	jae	1f
	leal	(%eax, %ecx), %edi
	cmpl	%edi, %ebx
	jae	1f
	popl	%edi
	clc
	ret
1:	popl	%edi
	stc
	ret

/* puts: ESI -> NUL-terminated string to COM1. Clobbers EAX, ESI. */
puts:
	lodsb
	testb	%al, %al
	jz	1f
	call	putc
	jmp	puts
1:	ret

/* putc: AL to COM1. */
putc:
	pushl	%edx
	movw	$COM1, %dx
	outb	%al, %dx
	popl	%edx
	ret

/* puthex: EAX as "0x%08x" on COM1. Clobbers EAX. */
puthex:
	pushl	%ecx
	pushl	%edx
	movl	%eax, %edx
	movb	$'0', %al
	call	putc
	movb	$'x', %al
	call	putc
	movl	$8, %ecx
1:	roll	$4, %edx
	movl	%edx, %eax
	andl	$15, %eax
	movb	hexdigits(%eax), %al
	call	putc
	decl	%ecx
	jnz	1b
	popl	%edx
	popl	%ecx
	ret

	.section .rodata
keys:
	.long	key_gpa, gpa, SEEN_GPA
	.long	key_len, len, SEEN_LEN
	.long	key_hash, hash, SEEN_HASH
	.long	key_mark, mark, 0
	.long	0
key_gpa:	.asciz	"gpa="
key_len:	.asciz	"len="
key_hash:	.asciz	"hash="
key_mark:	.asciz	"mark="
hexdigits:	.ascii	"0123456789abcdef"
msg_hello:	.asciz	"gmem multiboot guest\n"
msg_gpa:	.asciz	"gpa="
msg_len_eq:	.asciz	" len="
msg_hash_eq:	.asciz	" hash="
msg_mark_eq:	.asciz	" mark="
msg_nl:		.asciz	"\n"
msg_computed:	.asciz	"\ncomputed="
msg_match:	.asciz	" match\n"
msg_mismatch:	.asciz	" MISMATCH\n"
msg_bad:	.asciz	"bad request: "
msg_magic:	.asciz	"not started by a multiboot loader"
msg_nomem:	.asciz	"no memory size in the multiboot info"
msg_nocmd:	.asciz	"no command line"
msg_missing:	.asciz	"need gpa=ADDR len=BYTES hash=FNV on the command line"
msg_number:	.asciz	"a value is not a 32-bit number (0x-hex or decimal)"
msg_len:	.asciz	"len must be a non-zero multiple of 4"
msg_range:	.asciz	"[gpa, gpa+len) must lie in RAM above 1 MiB, away from this image"
msg_mark:	.asciz	"mark must be 4-aligned, in RAM above 1 MiB, away from [gpa, gpa+len) and this image"
msg_noexit:	.asciz	"no isa-debug-exit at 0xf4: triple-faulting\n"

	.balign	8
null_idt:
	.word	0
	.long	0

	.section .data
	.balign	4
gpa:	.long	0
len:	.long	0
hash:	.long	0
mark:	.long	MARK_DEFAULT
seen:	.long	0
ram_end: .long	0

	.section .bss
	.balign	16
	.space	4096
stack_top:

	/* No executable stack needed. */
	.section .note.GNU-stack, "", @progbits
