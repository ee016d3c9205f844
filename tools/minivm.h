/* SPDX-License-Identifier: MIT */
/*
 * minivm - a minimal KVM VM that runs a tiny checksum guest.
 *
 * Used by tests and the example VMM to make a real guest read memory that
 * the host populated. The VM has one vCPU and one built-in memslot (slot 0,
 * 1 MiB at GPA 0) holding the guest code, its page tables and the list of
 * ranges to hash. Callers add their own memory with
 * KVM_SET_USER_MEMORY_REGION on minivm_vm_fd(), using slots >= 1 and GPAs
 * >= 1 MiB. The guest switches itself to 64-bit long mode with an identity
 * map of guest-physical memory, so it can hash any GPA range below
 * minivm_gpa_limit(): 512 GiB if the vCPU has 1 GiB pages (CPUID pdpe1gb),
 * else 64 GiB (2 MiB pages), and never more than the vCPU's MAXPHYADDR.
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
#define MINIVM_CHECKSUM_PORT	0x10		/* guest reports its hashes here */

/*
 * Guest ABI, shared with guest/checksum.S; all of it lies in slot 0.
 *
 * [0, MINIVM_GUEST_ENTRY): the guest's ring-0 stack (one exception frame).
 *
 * [MINIVM_GUEST_ENTRY, MINIVM_PT_GPA): the guest image: code, GDT, IDT,
 * TSS and the static part of its page tables.
 *
 * [MINIVM_PT_GPA, + (MINIVM_PT_NR_PD - 1) pages): page directories (2 MiB
 * pages) for GiB 1 to MINIVM_PT_NR_PD - 1 of the identity map, which the
 * guest builds itself. It only writes entries that differ, so after its
 * first run it just reads them.
 *
 * [MINIVM_JOB_GPA, MINIVM_LOW_MEM_SIZE): the job the VMM writes before each
 * run: a little-endian uint64_t count, a uint64_t flags, then count pairs
 * { uint64_t gpa, len }. For each pair in order, the guest writes the hash
 * with a 32-bit OUT to MINIVM_CHECKSUM_PORT; then it executes HLT. The
 * guest hashes in ring 3, or in ring 0 if flags has MINIVM_JOB_RING0.
 */
#define MINIVM_PT_GPA		0x10000
#define MINIVM_PT_NR_PD		64		/* 64 GiB with 2 MiB pages */
#define MINIVM_JOB_GPA		0x80000
#define MINIVM_JOB_MAX_RANGES	((MINIVM_LOW_MEM_SIZE - MINIVM_JOB_GPA) / 16 - 1)
#define MINIVM_JOB_RING0	0x1		/* job flag */

#ifndef __ASSEMBLER__

#include <stddef.h>
#include <stdint.h>

struct minivm;

/* A guest-physical range [gpa, gpa + len). */
struct minivm_range {
	uint64_t gpa;
	uint64_t len;
};

/*
 * Open /dev/kvm, create a VM with its low memory and guest code, and one
 * vCPU with the CPUID KVM supports. Returns 0 and stores the VM in *ret, or
 * a negative errno (-EPROTO if the KVM API version is not 12, -EOPNOTSUPP
 * if the vCPU cannot run 64-bit code).
 */
int minivm_new(struct minivm **ret);

/* VM and /dev/kvm file descriptors (owned by the minivm; do not close). */
int minivm_vm_fd(const struct minivm *vm);
int minivm_kvm_fd(const struct minivm *vm);

/*
 * End of the guest's identity map: ranges must end at or below this GPA
 * (0 for a NULL vm).
 */
uint64_t minivm_gpa_limit(const struct minivm *vm);

/*
 * Run the guest over guest-physical [gpa, gpa + len) and store the hash it
 * computed in *ret_hash. len must be a multiple of 4, gpa + len must not
 * overflow, and the range must end at or below minivm_gpa_limit() (-EINVAL
 * otherwise); all of it must be backed by memslots. Any unexpected exit
 * (shutdown, internal error, failed entry, MMIO to unbacked memory, other
 * I/O) returns -EIO and is described by minivm_last_exit(). Can be called
 * any number of times on one VM.
 *
 * The guest normally hashes in ring 3, which runs at full speed even on
 * KVMs that emulate a guest's kernel mode (PVM). If KVM_RUN fails with
 * EFAULT because KVM cannot map some of the memory for the guest (e.g.
 * memfd_secret), the run is repeated with the guest hashing in ring 0: on
 * PVM that is emulated, which can read such memory, but at only ~2 MB/s.
 */
int minivm_run_checksum(struct minivm *vm, uint64_t gpa, uint64_t len,
			uint32_t *ret_hash);

/*
 * Like minivm_run_checksum() for n ranges at once: ret_hashes[i] is the
 * hash of ranges[i]. Every range is checked before the guest runs. The
 * guest runs once per MINIVM_JOB_MAX_RANGES ranges. n = 0 does nothing.
 * On failure the contents of ret_hashes[] are unspecified.
 */
int minivm_run_checksum_ranges(struct minivm *vm,
			       const struct minivm_range *ranges, size_t n,
			       uint32_t *ret_hashes);

/*
 * Short description of the last unexpected vCPU exit, e.g.
 * "KVM_EXIT_SHUTDOWN" or "unexpected I/O port 0x3f8"; "none" if there was
 * none. Valid until the next call on vm.
 */
const char *minivm_last_exit(const struct minivm *vm);

/* The guest's hash computed on the host: FNV-1a over little-endian dwords;
 * a trailing len % 4 bytes are ignored. */
uint32_t minivm_checksum_host(const void *buf, size_t len);

/* Destroy vm (NULL is fine). Returns NULL. */
struct minivm *minivm_free(struct minivm *vm);

#endif /* !__ASSEMBLER__ */
#endif /* GMEM_TOOLS_MINIVM_H */
