/* SPDX-License-Identifier: MIT */
/*
 * minivm - a minimal KVM VM that runs a tiny checksum guest.
 *
 * Used by tests and the example VMM to make a real guest read memory that
 * the host populated. The VM has one vCPU and one built-in memslot (slot 0,
 * 64 KiB at GPA 0) holding the guest code at GPA 0x1000. Callers add their
 * own memory with KVM_SET_USER_MEMORY_REGION on minivm_vm_fd(), using
 * slots >= 1 and GPAs in [1 MiB, 4 GiB) (the guest runs in 32-bit protected
 * mode without paging, so it can only reach the low 4 GiB).
 *
 * All functions returning int return 0 or a negative errno value; ret_*
 * outputs are only written on success. Nothing here prints.
 *
 * Link with the object built from guest/guest.mk ($(GUEST_BLOB)).
 */
#ifndef GMEM_TOOLS_MINIVM_H
#define GMEM_TOOLS_MINIVM_H

#include <stddef.h>
#include <stdint.h>

#define MINIVM_LOW_MEM_SIZE	0x10000u	/* slot 0: [0, 64 KiB) */
#define MINIVM_GUEST_ENTRY	0x1000u		/* guest code GPA / entry IP */
#define MINIVM_FIRST_FREE_SLOT	1u		/* callers use slots >= this */
#define MINIVM_FIRST_FREE_GPA	0x100000u	/* callers use GPAs >= this */
#define MINIVM_CHECKSUM_PORT	0x10u		/* guest reports its hash here */

struct minivm;

/*
 * Open /dev/kvm, create a VM with its low memory and guest code, and one
 * vCPU. Returns 0 and stores the VM in *ret, or a negative errno
 * (-EPROTO if the KVM API version is not 12).
 */
int minivm_new(struct minivm **ret);

/* VM and /dev/kvm file descriptors (owned by the minivm; do not close). */
int minivm_vm_fd(const struct minivm *vm);
int minivm_kvm_fd(const struct minivm *vm);

/*
 * Run the guest over guest-physical [gpa, gpa + len) and store the hash it
 * computed in *ret_hash. len must be a multiple of 4 and the range must lie
 * below 4 GiB (-EINVAL otherwise); all of it must be backed by memslots.
 * Any unexpected exit (shutdown, internal error, failed entry, MMIO to
 * unbacked memory, other I/O) returns -EIO and is described by
 * minivm_last_exit(). Can be called any number of times on one VM.
 */
int minivm_run_checksum(struct minivm *vm, uint64_t gpa, uint64_t len,
			uint32_t *ret_hash);

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

#endif /* GMEM_TOOLS_MINIVM_H */
