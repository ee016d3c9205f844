/*
 * checksum-blob.S - embed the flat checksum guest image in a host object.
 *
 * checksum.bin is found through the assembler include path; guest.mk passes
 * -Wa,-I$(BUILD)/guest when assembling this file.
 */

	.section .rodata
	.balign	16
	.globl	minivm_guest_checksum_start
	.type	minivm_guest_checksum_start, @object
minivm_guest_checksum_start:
	.incbin	"checksum.bin"
	.size	minivm_guest_checksum_start, . - minivm_guest_checksum_start

	.globl	minivm_guest_checksum_end
	.type	minivm_guest_checksum_end, @object
minivm_guest_checksum_end:
	.size	minivm_guest_checksum_end, 0

	/* No executable stack needed. */
	.section .note.GNU-stack, "", @progbits
