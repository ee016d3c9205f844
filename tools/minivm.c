// SPDX-License-Identifier: MIT
/*
 * minivm - a minimal KVM VM that runs a tiny checksum guest.
 *
 * The guest (guest/checksum.S) is a flat binary embedded in the host object
 * built by guest/guest.mk. It sits at GPA 0x1000 in a 1 MiB memslot at
 * GPA 0 and starts in real mode. It switches to 64-bit long mode with an
 * identity map of guest-physical memory, drops to ring 3 (KVMs such as PVM
 * run only guest user code natively), hashes each range of the job we wrote
 * at MINIVM_JOB_GPA, writes each hash to port 0x10 and finally halts in
 * ring 0. There is no in-kernel irqchip, so HLT exits to userspace
 * (KVM_EXIT_HLT).
 *
 * The vCPU gets the CPUID that KVM supports, so the guest sees long mode
 * and, where KVM offers it, 1 GiB pages; the end of the guest's identity
 * map follows from the same CPUID (see compute_gpa_limit()).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "minivm.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <linux/kvm.h>

#define KVM_DEV_PATH	"/dev/kvm"
#define KVM_API_VERSION_EXPECTED 12
#define MINIVM_TSS_ADDR	0xfffbd000ul	/* 3 pages, the usual spot below 4 GiB */
#define CPUID_MAX_ENTRIES 256		/* KVM's own limit is 256 */
#define CPUID_EXT_FEATURES 0x80000001u
#define CPUID_EXT_ADDRSIZE 0x80000008u
#define CPUID_EDX_PDPE1GB (1u << 26)
#define CPUID_EDX_LM	(1u << 29)
#define GPA_LIMIT_1G	(512ull << 30)	/* 1 GiB pages: one full PDPT */
#define GPA_LIMIT_2M	((uint64_t)MINIVM_PT_NR_PD << 30)	/* 2 MiB pages */

#define FNV32_OFFSET	0x811c9dc5u
#define FNV32_PRIME	0x01000193u

/* Provided by guest/checksum-blob.S ($(GUEST_BLOB)). */
extern const unsigned char minivm_guest_checksum_start[];
extern const unsigned char minivm_guest_checksum_end[];

struct minivm {
	int kvm_fd;
	int vm_fd;
	int vcpu_fd;
	struct kvm_run *run;		/* mmap of the vCPU fd */
	size_t run_size;
	void *low_mem;			/* slot 0: [0, MINIVM_LOW_MEM_SIZE) */
	struct kvm_sregs reset_sregs;	/* real-mode entry state */
	uint64_t gpa_limit;		/* end of the guest's identity map */
	bool io_pending;		/* last exit was I/O or MMIO not yet
					 * completed by a KVM_RUN */
	char last_exit[96];
};

/* ioctl() that returns a result >= 0 or a negative errno. */
static int xioctl(int fd, unsigned long req, unsigned long arg)
{
	int r = ioctl(fd, req, arg);

	return r < 0 ? -errno : r;
}

static int xioctl_ptr(int fd, unsigned long req, void *arg)
{
	return xioctl(fd, req, (unsigned long)arg);
}

struct minivm *minivm_free(struct minivm *vm)
{
	if (!vm)
		return NULL;
	if (vm->run)
		munmap(vm->run, vm->run_size);
	if (vm->vcpu_fd >= 0)
		close(vm->vcpu_fd);
	if (vm->vm_fd >= 0)
		close(vm->vm_fd);
	if (vm->kvm_fd >= 0)
		close(vm->kvm_fd);
	if (vm->low_mem)
		munmap(vm->low_mem, MINIVM_LOW_MEM_SIZE);
	free(vm);
	return NULL;
}

/* Slot 0: anonymous low memory with the guest code copied to its entry. */
static int setup_low_mem(struct minivm *vm)
{
	size_t code_size = (size_t)(minivm_guest_checksum_end -
				    minivm_guest_checksum_start);
	struct kvm_userspace_memory_region region;
	void *mem;

	/* The image must end before the page tables the guest builds. */
	if (code_size == 0 || code_size > MINIVM_PT_GPA - MINIVM_GUEST_ENTRY)
		return -E2BIG;

	mem = mmap(NULL, MINIVM_LOW_MEM_SIZE, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (mem == MAP_FAILED)
		return -errno;
	vm->low_mem = mem;
	memcpy((unsigned char *)mem + MINIVM_GUEST_ENTRY,
	       minivm_guest_checksum_start, code_size);

	memset(&region, 0, sizeof(region));
	region.slot = 0;
	region.guest_phys_addr = 0;
	region.memory_size = MINIVM_LOW_MEM_SIZE;
	region.userspace_addr = (uintptr_t)mem;
	return xioctl_ptr(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &region);
}

/* vCPU 0, its kvm_run page and the real-mode state used for every run. */
static int setup_vcpu(struct minivm *vm)
{
	struct kvm_sregs *s = &vm->reset_sregs;
	void *run;
	int r;

	r = xioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (r < 0)
		return r;
	if ((size_t)r < sizeof(struct kvm_run))
		return -EPROTO;
	vm->run_size = (size_t)r;

	/* KVM creates vCPU (and VM) fds with O_CLOEXEC. */
	r = xioctl(vm->vm_fd, KVM_CREATE_VCPU, 0);
	if (r < 0)
		return r;
	vm->vcpu_fd = r;

	run = mmap(NULL, vm->run_size, PROT_READ | PROT_WRITE, MAP_SHARED,
		   vm->vcpu_fd, 0);
	if (run == MAP_FAILED)
		return -errno;
	vm->run = run;

	/*
	 * Start from the architectural reset state (real mode, CR0 = ET|CD|NW,
	 * real-mode segment attributes) and only move CS from the reset vector
	 * (F000:FFF0, base 0xffff0000) to 0000:xxxx. The whole saved state is
	 * reloaded before every run, which also undoes the guest's switch to
	 * protected mode (CR0.PE, GDTR and the cached 32-bit descriptors).
	 */
	r = xioctl_ptr(vm->vcpu_fd, KVM_GET_SREGS, s);
	if (r < 0)
		return r;
	s->cs.selector = 0;
	s->cs.base = 0;
	return 0;
}

static const struct kvm_cpuid_entry2 *
find_cpuid(const struct kvm_cpuid2 *cpuid, uint32_t function)
{
	uint32_t i;

	for (i = 0; i < cpuid->nent; i++)
		if (cpuid->entries[i].function == function &&
		    cpuid->entries[i].index == 0)
			return &cpuid->entries[i];
	return NULL;
}

/*
 * The guest maps 512 GiB with 1 GiB pages if CPUID says it may, else
 * MINIVM_PT_NR_PD GiB with 2 MiB pages; nothing at or above MAXPHYADDR is
 * addressable either way.
 */
static uint64_t compute_gpa_limit(const struct kvm_cpuid2 *cpuid)
{
	const struct kvm_cpuid_entry2 *ext = find_cpuid(cpuid,
							CPUID_EXT_FEATURES);
	const struct kvm_cpuid_entry2 *size = find_cpuid(cpuid,
							 CPUID_EXT_ADDRSIZE);
	unsigned int maxphyaddr = size ? (size->eax & 0xff) : 36;
	uint64_t limit;

	limit = ext && (ext->edx & CPUID_EDX_PDPE1GB) ? GPA_LIMIT_1G
						       : GPA_LIMIT_2M;
	if (maxphyaddr < 64 && limit > 1ull << maxphyaddr)
		limit = 1ull << maxphyaddr;
	return limit;
}

/* Give the vCPU everything KVM supports (long mode, maybe 1 GiB pages). */
static int setup_cpuid(struct minivm *vm)
{
	const struct kvm_cpuid_entry2 *ext;
	struct kvm_cpuid2 *cpuid;
	int r;

	cpuid = calloc(1, sizeof(*cpuid) +
		       CPUID_MAX_ENTRIES * sizeof(cpuid->entries[0]));
	if (!cpuid)
		return -ENOMEM;
	cpuid->nent = CPUID_MAX_ENTRIES;
	r = xioctl_ptr(vm->kvm_fd, KVM_GET_SUPPORTED_CPUID, cpuid);
	if (r < 0)
		goto out;

	ext = find_cpuid(cpuid, CPUID_EXT_FEATURES);
	if (!ext || !(ext->edx & CPUID_EDX_LM)) {
		r = -EOPNOTSUPP;
		goto out;
	}
	vm->gpa_limit = compute_gpa_limit(cpuid);

	r = xioctl_ptr(vm->vcpu_fd, KVM_SET_CPUID2, cpuid);
out:
	free(cpuid);
	return r;
}

int minivm_new(struct minivm **ret)
{
	struct minivm *vm;
	int r;

	if (!ret)
		return -EINVAL;

	vm = calloc(1, sizeof(*vm));
	if (!vm)
		return -ENOMEM;
	vm->kvm_fd = vm->vm_fd = vm->vcpu_fd = -1;
	snprintf(vm->last_exit, sizeof(vm->last_exit), "none");

	vm->kvm_fd = open(KVM_DEV_PATH, O_RDWR | O_CLOEXEC);
	if (vm->kvm_fd < 0) {
		r = -errno;
		goto fail;
	}

	r = xioctl(vm->kvm_fd, KVM_GET_API_VERSION, 0);
	if (r < 0)
		goto fail;
	if (r != KVM_API_VERSION_EXPECTED) {
		r = -EPROTO;
		goto fail;
	}

	r = xioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
	if (r < 0)
		goto fail;
	vm->vm_fd = r;

	/* Needed on Intel before the first KVM_RUN; harmless on AMD. */
	r = xioctl(vm->vm_fd, KVM_SET_TSS_ADDR, MINIVM_TSS_ADDR);
	if (r < 0)
		goto fail;

	r = setup_low_mem(vm);
	if (r < 0)
		goto fail;

	r = setup_vcpu(vm);
	if (r < 0)
		goto fail;

	r = setup_cpuid(vm);
	if (r < 0)
		goto fail;

	*ret = vm;
	return 0;

fail:
	minivm_free(vm);
	return r;
}

int minivm_vm_fd(const struct minivm *vm)
{
	return vm ? vm->vm_fd : -EINVAL;
}

int minivm_kvm_fd(const struct minivm *vm)
{
	return vm ? vm->kvm_fd : -EINVAL;
}

uint64_t minivm_gpa_limit(const struct minivm *vm)
{
	return vm ? vm->gpa_limit : 0;
}

const char *minivm_last_exit(const struct minivm *vm)
{
	return vm ? vm->last_exit : "no VM";
}

uint32_t minivm_checksum_host(const void *buf, size_t len)
{
	const unsigned char *p = buf;
	uint32_t h = FNV32_OFFSET;
	uint32_t d;
	size_t i;

	for (i = 0; i + 4 <= len; i += 4) {
		memcpy(&d, p + i, sizeof(d));
		h ^= le32toh(d);
		h *= FNV32_PRIME;
	}
	return h;
}

/* KVM_RUN, retried when a signal interrupts it. */
static int vcpu_run(struct minivm *vm)
{
	int r;

	do {
		r = xioctl(vm->vcpu_fd, KVM_RUN, 0);
	} while (r == -EINTR);
	return r;
}

/*
 * An I/O or MMIO exit is only completed by the next KVM_RUN. If we gave up
 * on such an exit, let KVM finish it now without entering the guest
 * (immediate_exit makes KVM_RUN return -EINTR right away), so that it cannot
 * act on the register state we are about to load.
 */
static int complete_pending_io(struct minivm *vm)
{
	int r;

	if (!vm->io_pending)
		return 0;
	vm->run->immediate_exit = 1;
	r = xioctl(vm->vcpu_fd, KVM_RUN, 0);
	vm->run->immediate_exit = 0;
	if (r < 0 && r != -EINTR)
		return r;
	vm->io_pending = false;
	return 0;
}

/* Back to the real-mode entry state; the guest takes no register input. */
static int vcpu_reset(struct minivm *vm)
{
	struct kvm_regs regs;
	int r;

	r = xioctl_ptr(vm->vcpu_fd, KVM_SET_SREGS, &vm->reset_sregs);
	if (r < 0)
		return r;

	memset(&regs, 0, sizeof(regs));
	regs.rflags = 0x2;		/* reserved bit 1; IF = 0 */
	regs.rip = MINIVM_GUEST_ENTRY;
	return xioctl_ptr(vm->vcpu_fd, KVM_SET_REGS, &regs);
}

/* The job the guest reads at MINIVM_JOB_GPA (see minivm.h). */
static void write_job(struct minivm *vm, const struct minivm_range *ranges,
		      size_t n, uint64_t flags)
{
	unsigned char *job = (unsigned char *)vm->low_mem + MINIVM_JOB_GPA;
	uint64_t v[2];
	size_t i;

	v[0] = htole64(n);
	v[1] = htole64(flags);
	memcpy(job, v, sizeof(v));
	for (i = 0; i < n; i++) {
		v[0] = htole64(ranges[i].gpa);
		v[1] = htole64(ranges[i].len);
		memcpy(job + 16 * (i + 1), v, sizeof(v));
	}
}

static const char *exit_name(uint32_t reason)
{
	switch (reason) {
	case KVM_EXIT_UNKNOWN:		return "KVM_EXIT_UNKNOWN";
	case KVM_EXIT_EXCEPTION:	return "KVM_EXIT_EXCEPTION";
	case KVM_EXIT_IO:		return "KVM_EXIT_IO";
	case KVM_EXIT_DEBUG:		return "KVM_EXIT_DEBUG";
	case KVM_EXIT_HLT:		return "KVM_EXIT_HLT";
	case KVM_EXIT_MMIO:		return "KVM_EXIT_MMIO";
	case KVM_EXIT_SHUTDOWN:		return "KVM_EXIT_SHUTDOWN";
	case KVM_EXIT_FAIL_ENTRY:	return "KVM_EXIT_FAIL_ENTRY";
	case KVM_EXIT_INTR:		return "KVM_EXIT_INTR";
	case KVM_EXIT_INTERNAL_ERROR:	return "KVM_EXIT_INTERNAL_ERROR";
	case KVM_EXIT_SYSTEM_EVENT:	return "KVM_EXIT_SYSTEM_EVENT";
	default:			return NULL;
	}
}

/* Record an unexpected exit in vm->last_exit. */
static void describe_exit(struct minivm *vm)
{
	const struct kvm_run *run = vm->run;
	char *buf = vm->last_exit;
	size_t n = sizeof(vm->last_exit);
	const char *name;

	switch (run->exit_reason) {
	case KVM_EXIT_IO:
		snprintf(buf, n, "unexpected I/O port 0x%x (%s, size %u)",
			 run->io.port,
			 run->io.direction == KVM_EXIT_IO_OUT ? "out" : "in",
			 run->io.size);
		break;
	case KVM_EXIT_MMIO:
		snprintf(buf, n, "unexpected MMIO %s at GPA 0x%llx (len %u)",
			 run->mmio.is_write ? "write" : "read",
			 (unsigned long long)run->mmio.phys_addr,
			 run->mmio.len);
		break;
	case KVM_EXIT_HLT:
		snprintf(buf, n, "KVM_EXIT_HLT before all checksums");
		break;
	case KVM_EXIT_FAIL_ENTRY:
		snprintf(buf, n, "KVM_EXIT_FAIL_ENTRY (reason 0x%llx)",
			 (unsigned long long)
			 run->fail_entry.hardware_entry_failure_reason);
		break;
	case KVM_EXIT_INTERNAL_ERROR:
		snprintf(buf, n, "KVM_EXIT_INTERNAL_ERROR (suberror %u)",
			 run->internal.suberror);
		break;
	default:
		name = exit_name(run->exit_reason);
		if (name)
			snprintf(buf, n, "%s", name);
		else
			snprintf(buf, n, "KVM exit reason %u",
				 run->exit_reason);
		break;
	}
}

/*
 * One guest run over n <= MINIVM_JOB_MAX_RANGES checked ranges: expect n
 * 32-bit OUTs to the checksum port, then HLT.
 */
static int run_job(struct minivm *vm, const struct minivm_range *ranges,
		   size_t n, uint64_t flags, uint32_t *ret_hashes)
{
	struct kvm_run *run = vm->run;
	size_t done = 0;
	uint32_t hash;
	int r;

	r = complete_pending_io(vm);
	if (r < 0)
		return r;
	write_job(vm, ranges, n, flags);
	r = vcpu_reset(vm);
	if (r < 0)
		return r;

	for (;;) {
		r = vcpu_run(vm);
		if (r < 0) {
			snprintf(vm->last_exit, sizeof(vm->last_exit),
				 "KVM_RUN failed: %s", strerror(-r));
			return r;
		}

		switch (run->exit_reason) {
		case KVM_EXIT_IO:
			if (done < n &&
			    run->io.port == MINIVM_CHECKSUM_PORT &&
			    run->io.direction == KVM_EXIT_IO_OUT &&
			    run->io.size == 4 && run->io.count == 1) {
				memcpy(&hash, (const unsigned char *)run +
				       run->io.data_offset, sizeof(hash));
				ret_hashes[done++] = hash;
				continue;	/* next KVM_RUN completes it */
			}
			vm->io_pending = true;
			break;
		case KVM_EXIT_MMIO:
			vm->io_pending = true;
			break;
		case KVM_EXIT_HLT:
			if (done < n)
				break;
			return 0;
		default:
			break;
		}

		describe_exit(vm);
		return -EIO;
	}
}

int minivm_run_checksum_ranges(struct minivm *vm,
			       const struct minivm_range *ranges, size_t n,
			       uint32_t *ret_hashes)
{
	size_t i, chunk;
	int r;

	if (!vm || (n > 0 && (!ranges || !ret_hashes)))
		return -EINVAL;
	for (i = 0; i < n; i++) {
		uint64_t gpa = ranges[i].gpa, len = ranges[i].len;

		if (len % 4 != 0 || len > vm->gpa_limit ||
		    gpa > vm->gpa_limit - len)
			return -EINVAL;
	}

	snprintf(vm->last_exit, sizeof(vm->last_exit), "none");
	for (i = 0; i < n; i += chunk) {
		chunk = n - i;
		if (chunk > MINIVM_JOB_MAX_RANGES)
			chunk = MINIVM_JOB_MAX_RANGES;
		r = run_job(vm, ranges + i, chunk, 0, ret_hashes + i);
		/*
		 * KVM could not map some memory for the guest (e.g.
		 * memfd_secret); see if it can emulate ring-0 reads of it.
		 */
		if (r == -EFAULT) {
			snprintf(vm->last_exit, sizeof(vm->last_exit), "none");
			r = run_job(vm, ranges + i, chunk, MINIVM_JOB_RING0,
				    ret_hashes + i);
		}
		if (r < 0)
			return r;
	}
	return 0;
}

int minivm_run_checksum(struct minivm *vm, uint64_t gpa, uint64_t len,
			uint32_t *ret_hash)
{
	struct minivm_range range = { .gpa = gpa, .len = len };
	uint32_t hash;
	int r;

	if (!ret_hash)
		return -EINVAL;
	r = minivm_run_checksum_ranges(vm, &range, 1, &hash);
	if (r < 0)
		return r;
	*ret_hash = hash;
	return 0;
}
