// SPDX-License-Identifier: MIT
/*
 * minivm - a minimal KVM VM that runs a tiny checksum guest.
 *
 * The guest (guest/checksum.S) is a flat binary embedded in the host object
 * built by guest/guest.mk. It sits at GPA 0x1000 in a 1 MiB memslot at
 * GPA 0 and every vCPU starts it in real mode, with its index in RBP. It
 * switches to 64-bit long mode with an identity map of guest-physical
 * memory, drops to ring 3 (KVMs such as PVM run only guest user code
 * natively), hashes each range of the job we wrote in the vCPU's area,
 * writes a report line for each to the serial port and finally halts in
 * ring 0. There is no in-kernel irqchip, so HLT exits to userspace
 * (KVM_EXIT_HLT), and every vCPU is runnable from the start.
 *
 * The vCPUs get the CPUID that KVM supports, so the guest sees long mode
 * and, where KVM offers it, 1 GiB pages; the end of the guest's identity
 * map follows from the same CPUID (see compute_gpa_limit()).
 *
 * A vCPU's state (its fd, kvm_run, serial output, last exit) and its area
 * in slot 0 are touched only by runs of that vCPU, so different vCPUs can
 * run in different threads.
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
#define SERIAL_MAX	(1u << 20)	/* more output than any job makes */

#define FNV32_OFFSET	0x811c9dc5u
#define FNV32_PRIME	0x01000193u

/* Provided by guest/checksum-blob.S ($(GUEST_BLOB)). */
extern const unsigned char minivm_guest_checksum_start[];
extern const unsigned char minivm_guest_checksum_end[];

struct minivm_vcpu {
	unsigned int index;
	int fd;
	struct kvm_run *run;		/* mmap of the vCPU fd */
	struct kvm_sregs reset_sregs;	/* real-mode entry state */
	bool io_pending;		/* last exit was I/O or MMIO not yet
					 * completed by a KVM_RUN */
	char *serial;			/* what the guest wrote to the port */
	size_t serial_len;
	size_t serial_size;
	char last_exit[96];
};

struct minivm {
	int kvm_fd;
	int vm_fd;
	size_t run_size;		/* of each vCPU's kvm_run mapping */
	void *low_mem;			/* slot 0: [0, MINIVM_LOW_MEM_SIZE) */
	uint64_t gpa_limit;		/* end of the guest's identity map */
	unsigned int nr_vcpus;
	struct minivm_vcpu vcpus[MINIVM_MAX_VCPUS];
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
	unsigned int i;

	if (!vm)
		return NULL;
	for (i = 0; i < MINIVM_MAX_VCPUS; i++) {
		struct minivm_vcpu *v = &vm->vcpus[i];

		if (v->run)
			munmap(v->run, vm->run_size);
		if (v->fd >= 0)
			close(v->fd);
		free(v->serial);
	}
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

/* vCPU v->index, its kvm_run page and the real-mode state for every run. */
static int setup_vcpu(struct minivm *vm, struct minivm_vcpu *v)
{
	struct kvm_sregs *s = &v->reset_sregs;
	void *run;
	int r;

	/* KVM creates vCPU (and VM) fds with O_CLOEXEC. */
	r = xioctl(vm->vm_fd, KVM_CREATE_VCPU, v->index);
	if (r < 0)
		return r;
	v->fd = r;

	run = mmap(NULL, vm->run_size, PROT_READ | PROT_WRITE, MAP_SHARED,
		   v->fd, 0);
	if (run == MAP_FAILED)
		return -errno;
	v->run = run;

	/*
	 * Start from the architectural reset state (real mode, CR0 = ET|CD|NW,
	 * real-mode segment attributes) and only move CS from the reset vector
	 * (F000:FFF0, base 0xffff0000) to 0000:xxxx. The whole saved state is
	 * reloaded before every run, which also undoes the guest's switch to
	 * protected mode (CR0.PE, GDTR and the cached 32-bit descriptors).
	 */
	r = xioctl_ptr(v->fd, KVM_GET_SREGS, s);
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

/* Give every vCPU everything KVM supports (long mode, maybe 1 GiB pages). */
static int setup_cpuid(struct minivm *vm)
{
	const struct kvm_cpuid_entry2 *ext;
	struct kvm_cpuid2 *cpuid;
	unsigned int i;
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

	for (i = 0; i < vm->nr_vcpus && r >= 0; i++)
		r = xioctl_ptr(vm->vcpus[i].fd, KVM_SET_CPUID2, cpuid);
out:
	free(cpuid);
	return r;
}

int minivm_new_vcpus(unsigned int nr_vcpus, struct minivm **ret)
{
	return minivm_new_type(0, nr_vcpus, ret);
}

int minivm_new_type(unsigned long vm_type, unsigned int nr_vcpus,
		    struct minivm **ret)
{
	struct minivm *vm;
	unsigned int i;
	int r;

	if (!ret || nr_vcpus == 0 || nr_vcpus > MINIVM_MAX_VCPUS)
		return -EINVAL;

	vm = calloc(1, sizeof(*vm));
	if (!vm)
		return -ENOMEM;
	vm->kvm_fd = vm->vm_fd = -1;
	for (i = 0; i < MINIVM_MAX_VCPUS; i++) {
		vm->vcpus[i].index = i;
		vm->vcpus[i].fd = -1;
		snprintf(vm->vcpus[i].last_exit,
			 sizeof(vm->vcpus[i].last_exit), "none");
	}

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

	r = xioctl(vm->kvm_fd, KVM_CREATE_VM, vm_type);
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

	r = xioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (r < 0)
		goto fail;
	if ((size_t)r < sizeof(struct kvm_run)) {
		r = -EPROTO;
		goto fail;
	}
	vm->run_size = (size_t)r;

	for (i = 0; i < nr_vcpus; i++) {
		r = setup_vcpu(vm, &vm->vcpus[i]);
		if (r < 0)
			goto fail;
		vm->nr_vcpus++;
	}

	r = setup_cpuid(vm);
	if (r < 0)
		goto fail;

	*ret = vm;
	return 0;

fail:
	minivm_free(vm);
	return r;
}

int minivm_new(struct minivm **ret)
{
	return minivm_new_vcpus(1, ret);
}

int minivm_vm_fd(const struct minivm *vm)
{
	return vm ? vm->vm_fd : -EINVAL;
}

int minivm_kvm_fd(const struct minivm *vm)
{
	return vm ? vm->kvm_fd : -EINVAL;
}

unsigned int minivm_nr_vcpus(const struct minivm *vm)
{
	return vm ? vm->nr_vcpus : 0;
}

uint64_t minivm_gpa_limit(const struct minivm *vm)
{
	return vm ? vm->gpa_limit : 0;
}

const char *minivm_last_exit(const struct minivm *vm, unsigned int vcpu)
{
	if (!vm || vcpu >= vm->nr_vcpus)
		return "no such vCPU";
	return vm->vcpus[vcpu].last_exit;
}

const char *minivm_serial_output(const struct minivm *vm, unsigned int vcpu)
{
	if (!vm || vcpu >= vm->nr_vcpus || !vm->vcpus[vcpu].serial)
		return "";
	return vm->vcpus[vcpu].serial;
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
static int vcpu_run(struct minivm_vcpu *v)
{
	int r;

	do {
		r = xioctl(v->fd, KVM_RUN, 0);
	} while (r == -EINTR);
	return r;
}

/*
 * An I/O or MMIO exit is only completed by the next KVM_RUN. If we gave up
 * on such an exit, let KVM finish it now without entering the guest
 * (immediate_exit makes KVM_RUN return -EINTR right away), so that it cannot
 * act on the register state we are about to load.
 */
static int complete_pending_io(struct minivm_vcpu *v)
{
	int r;

	if (!v->io_pending)
		return 0;
	v->run->immediate_exit = 1;
	r = xioctl(v->fd, KVM_RUN, 0);
	v->run->immediate_exit = 0;
	if (r < 0 && r != -EINTR)
		return r;
	v->io_pending = false;
	return 0;
}

/* Back to the real-mode entry state; RBP tells the guest which vCPU. */
static int vcpu_reset(struct minivm_vcpu *v)
{
	struct kvm_regs regs;
	int r;

	r = xioctl_ptr(v->fd, KVM_SET_SREGS, &v->reset_sregs);
	if (r < 0)
		return r;

	memset(&regs, 0, sizeof(regs));
	regs.rflags = 0x2;		/* reserved bit 1; IF = 0 */
	regs.rip = MINIVM_GUEST_ENTRY;
	regs.rbp = v->index;
	return xioctl_ptr(v->fd, KVM_SET_REGS, &regs);
}

/* The job the guest reads in the vCPU's area (see minivm.h). */
static void write_job(struct minivm *vm, const struct minivm_vcpu *v,
		      const struct minivm_range *ranges, size_t n,
		      uint64_t flags, uint64_t first_id)
{
	unsigned char *job = (unsigned char *)vm->low_mem +
		MINIVM_VCPU_AREA_GPA + v->index * MINIVM_VCPU_AREA_SIZE;
	uint64_t head[4] = { htole64(n), htole64(flags), htole64(first_id), 0 };
	uint64_t pair[2];
	size_t i;

	memcpy(job + MINIVM_JOB_COUNT, head, sizeof(head));
	for (i = 0; i < n; i++) {
		pair[0] = htole64(ranges[i].gpa);
		pair[1] = htole64(ranges[i].len);
		memcpy(job + MINIVM_JOB_RANGES + 16 * i, pair, sizeof(pair));
	}
}

/* Append what an OUT to the serial port wrote (-EMSGSIZE: too much). */
static int serial_append(struct minivm_vcpu *v, const void *data, size_t len)
{
	size_t need = v->serial_len + len + 1;
	char *p;

	if (need > SERIAL_MAX)
		return -EMSGSIZE;
	if (need > v->serial_size) {
		size_t size = v->serial_size ? v->serial_size : 4096;

		while (size < need)
			size *= 2;
		p = realloc(v->serial, size);
		if (!p)
			return -ENOMEM;
		v->serial = p;
		v->serial_size = size;
	}
	memcpy(v->serial + v->serial_len, data, len);
	v->serial_len += len;
	v->serial[v->serial_len] = '\0';
	return 0;
}

static void serial_reset(struct minivm_vcpu *v)
{
	v->serial_len = 0;
	if (v->serial)
		v->serial[0] = '\0';
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

/* Record an unexpected exit in v->last_exit. */
static void describe_exit(struct minivm_vcpu *v)
{
	const struct kvm_run *run = v->run;
	char *buf = v->last_exit;
	size_t n = sizeof(v->last_exit);
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
 * One guest run over a checked job: collect the bytes written to the
 * serial port until the guest halts.
 */
static int run_job(struct minivm *vm, struct minivm_vcpu *v,
		   const struct minivm_range *ranges, size_t n,
		   uint64_t flags, uint64_t first_id)
{
	struct kvm_run *run = v->run;
	int r;

	serial_reset(v);
	r = complete_pending_io(v);
	if (r < 0)
		return r;
	write_job(vm, v, ranges, n, flags, first_id);
	r = vcpu_reset(v);
	if (r < 0)
		return r;

	for (;;) {
		r = vcpu_run(v);
		if (r < 0) {
			snprintf(v->last_exit, sizeof(v->last_exit),
				 "KVM_RUN failed: %s", strerror(-r));
			return r;
		}

		switch (run->exit_reason) {
		case KVM_EXIT_IO:
			v->io_pending = true;
			/* the transmit register: bytes, maybe a string OUT */
			if (run->io.port != MINIVM_SERIAL_PORT ||
			    run->io.direction != KVM_EXIT_IO_OUT ||
			    run->io.size != 1)
				break;
			r = serial_append(v, (const char *)run +
					  run->io.data_offset, run->io.count);
			if (r < 0) {
				snprintf(v->last_exit, sizeof(v->last_exit),
					 "serial output: %s", strerror(-r));
				return r == -EMSGSIZE ? -EIO : r;
			}
			v->io_pending = false;	/* next KVM_RUN completes it */
			continue;
		case KVM_EXIT_MMIO:
			v->io_pending = true;
			break;
		case KVM_EXIT_HLT:
			return 0;
		default:
			break;
		}

		describe_exit(v);
		return -EIO;
	}
}

/* Whole dwords, each range inside the guest's identity map. */
static bool ranges_valid(const struct minivm *vm,
			 const struct minivm_range *ranges, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		uint64_t gpa = ranges[i].gpa, len = ranges[i].len;

		if (len % 4 != 0 || len > vm->gpa_limit ||
		    gpa > vm->gpa_limit - len)
			return false;
	}
	return true;
}

static int run_ranges(struct minivm *vm, unsigned int vcpu,
		      const struct minivm_range *ranges, size_t n,
		      uint64_t first_id, uint64_t flags)
{
	struct minivm_vcpu *v;
	int r;

	if (!vm || vcpu >= vm->nr_vcpus || (n > 0 && !ranges))
		return -EINVAL;
	if (n > MINIVM_JOB_MAX_RANGES)
		return -E2BIG;
	if (!ranges_valid(vm, ranges, n))
		return -EINVAL;

	v = &vm->vcpus[vcpu];
	snprintf(v->last_exit, sizeof(v->last_exit), "none");
	r = run_job(vm, v, ranges, n, flags, first_id);
	/*
	 * KVM could not map some memory for the guest (e.g. memfd_secret);
	 * see if it can emulate ring-0 reads of it.
	 */
	if (r == -EFAULT) {
		snprintf(v->last_exit, sizeof(v->last_exit), "none");
		r = run_job(vm, v, ranges, n, flags | MINIVM_JOB_RING0,
			    first_id);
	}
	return r;
}

int minivm_run(struct minivm *vm, unsigned int vcpu,
	       const struct minivm_range *ranges, size_t n, uint64_t first_id)
{
	return run_ranges(vm, vcpu, ranges, n, first_id, 0);
}

/* Expect the literal prefix at *s and move past it. */
static bool skip_literal(const char **s, const char *prefix)
{
	size_t n = strlen(prefix);

	if (strncmp(*s, prefix, n) != 0)
		return false;
	*s += n;
	return true;
}

/* 1-20 digits in base 10 or 16 (lower case) without overflow. */
static bool parse_number(const char **s, unsigned int base, uint64_t *ret)
{
	const char *p = *s;
	uint64_t v = 0;
	unsigned int d;

	for (; *p; p++) {
		if (*p >= '0' && *p <= '9')
			d = (unsigned int)(*p - '0');
		else if (base == 16 && *p >= 'a' && *p <= 'f')
			d = (unsigned int)(*p - 'a' + 10);
		else
			break;
		if (v > (UINT64_MAX - d) / base)
			return false;
		v = v * base + d;
	}
	if (p == *s)
		return false;
	*s = p;
	*ret = v;
	return true;
}

int minivm_parse_report_line(const char *s, struct minivm_report_line *ret)
{
	struct minivm_report_line line = { 0 };
	const char *p = s;
	uint64_t vcpu, hash = 0;

	if (!s || !ret)
		return -EINVAL;
	if (!*s)
		return -ENODATA;
	if (!skip_literal(&p, "vcpu ") || !parse_number(&p, 10, &vcpu) ||
	    vcpu >= MINIVM_MAX_VCPUS)
		return -EBADMSG;
	line.vcpu = (unsigned int)vcpu;
	if (skip_literal(&p, " done")) {
		line.done = true;
	} else if (!skip_literal(&p, " range ") ||
		   !parse_number(&p, 10, &line.id) ||
		   !skip_literal(&p, " gpa=0x") ||
		   !parse_number(&p, 16, &line.gpa) ||
		   !skip_literal(&p, " len=0x") ||
		   !parse_number(&p, 16, &line.len) ||
		   !skip_literal(&p, " hash=0x") ||
		   !parse_number(&p, 16, &hash) || hash > UINT32_MAX) {
		return -EBADMSG;
	}
	line.hash = (uint32_t)hash;
	if (*p == '\n')
		p++;
	else if (*p)
		return -EBADMSG;
	*ret = line;
	return (int)(p - s);
}

/*
 * The hashes from the report of a run of v: one line per range in order,
 * numbered from first_id, then "done", then nothing.
 */
static int report_hashes(struct minivm_vcpu *v,
			 const struct minivm_range *ranges, size_t n,
			 uint64_t first_id, uint32_t *ret_hashes)
{
	const char *p = v->serial ? v->serial : "";
	struct minivm_report_line line;
	size_t i;
	int k;

	for (i = 0; i <= n; i++) {
		k = minivm_parse_report_line(p, &line);
		if (k < 0 || line.vcpu != v->index || line.done != (i == n) ||
		    (i < n && (line.id != first_id + i ||
			       line.gpa != ranges[i].gpa ||
			       line.len != ranges[i].len)))
			goto bad;
		if (i < n)
			ret_hashes[i] = line.hash;
		p += k;
	}
	if (!*p)
		return 0;
bad:
	snprintf(v->last_exit, sizeof(v->last_exit),
		 "unexpected report line %zu: \"%.*s\"", i + 1,
		 (int)strcspn(p, "\n") < 40 ? (int)strcspn(p, "\n") : 40, p);
	return -EIO;
}

static int checksum_ranges(struct minivm *vm,
			   const struct minivm_range *ranges, size_t n,
			   uint64_t flags, uint32_t *ret_hashes)
{
	size_t i, chunk;
	int r;

	if (!vm || (n > 0 && (!ranges || !ret_hashes)))
		return -EINVAL;
	if (!ranges_valid(vm, ranges, n))
		return -EINVAL;

	for (i = 0; i < n; i += chunk) {
		chunk = n - i;
		if (chunk > MINIVM_JOB_MAX_RANGES)
			chunk = MINIVM_JOB_MAX_RANGES;
		r = run_ranges(vm, 0, ranges + i, chunk, i, flags);
		if (r < 0)
			return r;
		r = report_hashes(&vm->vcpus[0], ranges + i, chunk, i,
				  ret_hashes + i);
		if (r < 0)
			return r;
	}
	return 0;
}

int minivm_run_checksum_ranges(struct minivm *vm,
			       const struct minivm_range *ranges, size_t n,
			       uint32_t *ret_hashes)
{
	return checksum_ranges(vm, ranges, n, 0, ret_hashes);
}

static int checksum_one(struct minivm *vm, uint64_t gpa, uint64_t len,
			uint64_t flags, uint32_t *ret_hash)
{
	struct minivm_range range = { .gpa = gpa, .len = len };
	uint32_t hash;
	int r;

	if (!ret_hash)
		return -EINVAL;
	r = checksum_ranges(vm, &range, 1, flags, &hash);
	if (r < 0)
		return r;
	*ret_hash = hash;
	return 0;
}

int minivm_run_checksum(struct minivm *vm, uint64_t gpa, uint64_t len,
			uint32_t *ret_hash)
{
	return checksum_one(vm, gpa, len, 0, ret_hash);
}

int minivm_run_stamp(struct minivm *vm, uint64_t gpa, uint64_t len,
		     uint32_t *ret_hash)
{
	return checksum_one(vm, gpa, len, MINIVM_JOB_STAMP, ret_hash);
}

void minivm_stamp_host(void *buf, uint64_t gpa, size_t len)
{
	unsigned char *p = buf;
	size_t i;

	for (i = 0; i + 4 <= len; i += 4) {
		uint32_t d = htole32((uint32_t)(gpa + i) ^ MINIVM_STAMP_XOR);
		memcpy(p + i, &d, 4);
	}
}
