/* SPDX-License-Identifier: MIT */
/*
 * minivm - a minimal KVM VM that runs a tiny checksum guest.
 *
 * Used by tests and the example VMM to make a real guest read memory that
 * the host populated. The VM has one or more vCPUs (up to MINIVM_MAX_VCPUS)
 * and one built-in memslot (slot 0, 1 MiB at GPA 0) holding the guest code,
 * its page tables and each vCPU's job: the list of ranges to hash. Callers
 * add their own memory with KVM_SET_USER_MEMORY_REGION(2) on
 * minivm_vm_fd(), using slots >= 1 and GPAs >= 1 MiB. The guest switches
 * itself to 64-bit long mode with an identity map of guest-physical memory,
 * so it can hash any GPA range below minivm_gpa_limit(): 512 GiB if the
 * vCPU has 1 GiB pages (CPUID pdpe1gb), else 64 GiB (2 MiB pages), and
 * never more than the vCPU's MAXPHYADDR.
 *
 * The guest reports on a serial port (the transmit register of a 16550 at
 * MINIVM_SERIAL_PORT), one text line per range and one at the end:
 *
 *	vcpu 0 range 0 gpa=0x100000 len=0x1000000 hash=0x5e1fc0b3
 *	vcpu 0 done
 *
 * Each vCPU runs on its own and may be run from its own thread:
 * minivm_run() runs one vCPU over its ranges and keeps what the guest wrote
 * to the port (minivm_serial_output()); minivm_parse_report_line() reads
 * it back. minivm_run_checksum_ranges() does all of that on vCPU 0 and
 * returns the hashes.
 *
 * All functions returning int return 0 or a negative errno value; ret_*
 * outputs are only written on success. Nothing here prints.
 *
 * Link with the object built from guest/guest.mk ($(GUEST_BLOB)).
 *
 * This header is also included by guest/checksum.S (with __ASSEMBLER__
 * defined) for the guest ABI constants below.
 */
#ifndef GMEM_TOOLS_MINIVM_H
#define GMEM_TOOLS_MINIVM_H

#define MINIVM_LOW_MEM_SIZE	0x100000	/* slot 0: [0, 1 MiB) */
#define MINIVM_GUEST_ENTRY	0x1000		/* guest code GPA / entry IP */
#define MINIVM_FIRST_FREE_SLOT	1		/* callers use slots >= this */
#define MINIVM_FIRST_FREE_GPA	0x100000	/* callers use GPAs >= this */
#define MINIVM_SERIAL_PORT	0x3f8		/* COM1: the guest's report */
#define MINIVM_MAX_VCPUS	16

/*
 * Guest ABI, shared with guest/checksum.S; all of it lies in slot 0.
 *
 * Entry: real mode at 0:MINIVM_GUEST_ENTRY with RBP = the vCPU's index;
 * no other input in registers.
 *
 * [MINIVM_GUEST_ENTRY, MINIVM_PT_GPA): the guest image: code, GDT (one
 * TSS per vCPU), IDT, TSSs and the static part of its page tables.
 *
 * [MINIVM_PT_GPA, + (MINIVM_PT_NR_PD - 1) pages): page directories (2 MiB
 * pages) for GiB 1 to MINIVM_PT_NR_PD - 1 of the identity map, which the
 * guest builds itself. It only writes entries that differ, so after its
 * first run it just reads them.
 *
 * [MINIVM_VCPU_AREA_GPA, MINIVM_LOW_MEM_SIZE): one area of
 * MINIVM_VCPU_AREA_SIZE bytes per vCPU, in index order, each holding:
 *  - at MINIVM_JOB_*: the job the VMM writes before each run, little
 *    endian: uint64_t count, flags, first_id, reserved, then count pairs
 *    { uint64_t gpa, len }. The guest hashes each range in order and
 *    prints a report line for it, numbered from first_id, then "done",
 *    then executes HLT. It hashes in ring 3, or in ring 0 if flags has
 *    MINIVM_JOB_RING0.
 *  - the vCPU's stacks: ring 3 below MINIVM_USER_STACK_TOP, ring 0 (one
 *    exception frame) below MINIVM_KERNEL_STACK_TOP.
 */
#define MINIVM_PT_GPA		0x10000
#define MINIVM_PT_NR_PD		64		/* 64 GiB with 2 MiB pages */
#define MINIVM_VCPU_AREA_GPA	0x80000
#define MINIVM_VCPU_AREA_SIZE	0x8000
#define MINIVM_JOB_COUNT	0		/* offsets in a vCPU's area */
#define MINIVM_JOB_FLAGS	8
#define MINIVM_JOB_FIRST_ID	16
#define MINIVM_JOB_RANGES	32
#define MINIVM_JOB_END		0x7000
#define MINIVM_USER_STACK_TOP	0x7c00
#define MINIVM_KERNEL_STACK_TOP	0x8000
#define MINIVM_JOB_MAX_RANGES	((MINIVM_JOB_END - MINIVM_JOB_RANGES) / 16)
#define MINIVM_JOB_RING0	0x1		/* job flag */
/*
 * Job flag: before hashing a range, the guest writes every dword of it,
 * the one at GPA a getting (uint32_t)a ^ MINIVM_STAMP_XOR: memory the host
 * cannot write (private to the guest) gets content the host can predict.
 */
#define MINIVM_JOB_STAMP	0x2
#define MINIVM_STAMP_XOR	0x5354414d

#ifndef __ASSEMBLER__

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#if MINIVM_VCPU_AREA_GPA + MINIVM_MAX_VCPUS * MINIVM_VCPU_AREA_SIZE > \
	MINIVM_LOW_MEM_SIZE
#error "the vCPU areas do not fit in slot 0"
#endif

struct minivm;

/* A guest-physical range [gpa, gpa + len). */
struct minivm_range {
	uint64_t gpa;
	uint64_t len;
};

/*
 * Open /dev/kvm, create a VM with its low memory and guest code, and
 * nr_vcpus vCPUs (1 to MINIVM_MAX_VCPUS, else -EINVAL) with the CPUID KVM
 * supports. Returns 0 and stores the VM in *ret, or a negative errno
 * (-EPROTO if the KVM API version is not 12, -EOPNOTSUPP if the vCPU cannot
 * run 64-bit code).
 */
int minivm_new_vcpus(unsigned int nr_vcpus, struct minivm **ret);

/*
 * minivm_new_vcpus() on a VM of the given KVM type (KVM_CREATE_VM's
 * argument: 0 default, 1 KVM_X86_SW_PROTECTED_VM, ...).
 */
int minivm_new_type(unsigned long vm_type, unsigned int nr_vcpus,
		    struct minivm **ret);

/* minivm_new_vcpus() with one vCPU. */
int minivm_new(struct minivm **ret);

/* VM and /dev/kvm file descriptors (owned by the minivm; do not close). */
int minivm_vm_fd(const struct minivm *vm);
int minivm_kvm_fd(const struct minivm *vm);

/* Number of vCPUs (0 for a NULL vm). */
unsigned int minivm_nr_vcpus(const struct minivm *vm);

/*
 * End of the guest's identity map: ranges must end at or below this GPA
 * (0 for a NULL vm).
 */
uint64_t minivm_gpa_limit(const struct minivm *vm);

/*
 * Run vCPU `vcpu` until the guest halts: it hashes ranges[0..n) in order
 * and reports on the serial port, numbering the ranges from first_id (see
 * above). Each len must be a multiple of 4, each range must end at or
 * below minivm_gpa_limit() (-EINVAL otherwise) and be backed by memslots,
 * and n must be at most MINIVM_JOB_MAX_RANGES (-E2BIG). n = 0 runs the
 * guest too (it reports "done"). Any unexpected exit (shutdown, internal
 * error, failed entry, MMIO to unbacked memory, other I/O) returns -EIO
 * and is described by minivm_last_exit(). A run only checks how the guest
 * got to its HLT, not what it reported: read minivm_serial_output().
 *
 * Different vCPUs of one VM may run at the same time, each from its own
 * thread; one vCPU must not be used by two threads at once.
 *
 * The guest normally hashes in ring 3, which runs at full speed even on
 * KVMs that emulate a guest's kernel mode (PVM). If KVM_RUN fails with
 * EFAULT because KVM cannot map some of the memory for the guest (e.g.
 * memfd_secret), the run is repeated with the guest hashing in ring 0: on
 * PVM that is emulated, which can read such memory, but at only ~2 MB/s.
 */
int minivm_run(struct minivm *vm, unsigned int vcpu,
	       const struct minivm_range *ranges, size_t n, uint64_t first_id);

/*
 * Everything the guest wrote to the serial port during the last
 * minivm_run() of vcpu, NUL-terminated ("" if none). Valid until the next
 * run of that vCPU.
 */
const char *minivm_serial_output(const struct minivm *vm, unsigned int vcpu);

/*
 * One line of the guest's report: "vcpu V range ID gpa=0xGPA len=0xLEN
 * hash=0xHASH" (V and ID in decimal, the others in lower-case hex), or
 * "vcpu V done".
 */
struct minivm_report_line {
	unsigned int vcpu;
	bool done;		/* a "done" line: nothing below is set */
	uint64_t id;
	uint64_t gpa;
	uint64_t len;
	uint32_t hash;
};

/*
 * Parse the report line at s, which ends at a '\n' or the terminating NUL.
 * Returns the number of characters it took up, '\n' included, or -EBADMSG
 * if it is not exactly one of the two forms above (-ENODATA at the end of
 * the string).
 */
int minivm_parse_report_line(const char *s, struct minivm_report_line *ret);

/*
 * Run the guest on vCPU 0 over ranges[0..n) (any n: the guest runs once
 * per MINIVM_JOB_MAX_RANGES ranges) and store the hash of ranges[i] in
 * ret_hashes[i]. Every range is checked before the guest runs; errors are
 * those of minivm_run(), plus -EIO if the report is not one line per range
 * as asked and "done". n = 0 does nothing. On failure the contents of
 * ret_hashes[] are unspecified.
 */
int minivm_run_checksum_ranges(struct minivm *vm,
			       const struct minivm_range *ranges, size_t n,
			       uint32_t *ret_hashes);

/* minivm_run_checksum_ranges() for the one range [gpa, gpa + len). */
int minivm_run_checksum(struct minivm *vm, uint64_t gpa, uint64_t len,
			uint32_t *ret_hash);

/*
 * minivm_run_checksum() with MINIVM_JOB_STAMP: the guest stamps the range
 * (a write from the guest), then hashes it. minivm_stamp_host() fills buf
 * with what the range then holds, so the hash can be checked on the host.
 */
int minivm_run_stamp(struct minivm *vm, uint64_t gpa, uint64_t len,
		     uint32_t *ret_hash);
void minivm_stamp_host(void *buf, uint64_t gpa, size_t len);

/*
 * Short description of why the last run of vcpu failed, e.g.
 * "KVM_EXIT_SHUTDOWN" or "unexpected I/O port 0x60 (in, size 1)"; "none"
 * if it did not. Valid until the next run of that vCPU.
 */
const char *minivm_last_exit(const struct minivm *vm, unsigned int vcpu);

/* The guest's hash computed on the host: FNV-1a over little-endian dwords;
 * a trailing len % 4 bytes are ignored. */
uint32_t minivm_checksum_host(const void *buf, size_t len);

/* Destroy vm (NULL is fine). Returns NULL. */
struct minivm *minivm_free(struct minivm *vm);

#endif /* !__ASSEMBLER__ */
#endif /* GMEM_TOOLS_MINIVM_H */
