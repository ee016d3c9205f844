// SPDX-License-Identifier: MIT
/*
 * minivm-smoke - check that a real KVM guest sees host-written memory.
 *
 * Maps 8 MiB (or argv[1] MiB) of anonymous memory as slot 1 at GPA 1 MiB,
 * fills it with pseudo-random bytes, and compares the guest's checksum with
 * the host's; then changes one page and compares again. Exits 0 only if
 * both match.
 *
 * Note: where KVM emulates the guest's 32-bit code instead of running it on
 * hardware (e.g. PVM hosts), the guest hashes only ~2 MB/s.
 *
 * Build: gcc -std=gnu11 -Itools tests/minivm-smoke.c tools/minivm.c \
 *            $(GUEST_BLOB)   (see guest/guest.mk)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <linux/kvm.h>

#include "minivm.h"

#define MEM_SLOT	1
#define MEM_GPA		0x100000ull
#define MEM_SIZE_MIB	8ul		/* default; max 3071 (GPA < 4 GiB) */
#define PAGE		4096ul

static size_t mem_size;

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

/* xorshift64*: deterministic pseudo-random bytes are good enough here. */
static uint64_t rng_next(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dull;
}

static void fill_random(void *buf, size_t len)
{
	unsigned char *p = buf;
	uint64_t v;
	size_t i;

	for (i = 0; i + sizeof(v) <= len; i += sizeof(v)) {
		v = rng_next();
		memcpy(p + i, &v, sizeof(v));
	}
}

/* Run the guest over the slot and compare with the host hash. */
static int check(struct minivm *vm, const void *mem, const char *what,
		 uint32_t *ret_hash)
{
	uint32_t guest, host;
	int r;

	r = minivm_run_checksum(vm, MEM_GPA, mem_size, &guest);
	if (r < 0) {
		fprintf(stderr, "%s: minivm_run_checksum: %s (%s)\n", what,
			strerror(-r), minivm_last_exit(vm));
		return -1;
	}
	host = minivm_checksum_host(mem, mem_size);
	printf("%-10s guest 0x%08" PRIx32 " host 0x%08" PRIx32 "  %s\n",
	       what, guest, host, guest == host ? "OK" : "MISMATCH");
	if (guest != host)
		return -1;
	*ret_hash = host;
	return 0;
}

int main(int argc, char **argv)
{
	struct kvm_userspace_memory_region region;
	struct minivm *vm = NULL;
	unsigned long mib = MEM_SIZE_MIB;
	unsigned char *mem;
	char *end;
	uint32_t before = 0, after = 0;
	int failed = 0;
	int r;

	if (argc == 2) {
		mib = strtoul(argv[1], &end, 10);
		if (*end)
			mib = 0;
	}
	if (argc > 2 || mib == 0 || mib > 3071) {
		fprintf(stderr, "usage: %s [size in MiB, 1-3071]\n", argv[0]);
		return 2;
	}
	mem_size = mib << 20;

	r = minivm_new(&vm);
	if (r < 0) {
		fprintf(stderr, "minivm_new: %s\n", strerror(-r));
		return 1;
	}

	mem = mmap(NULL, mem_size, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED) {
		fprintf(stderr, "mmap: %s\n", strerror(errno));
		minivm_free(vm);
		return 1;
	}
	fill_random(mem, mem_size);

	memset(&region, 0, sizeof(region));
	region.slot = MEM_SLOT;
	region.guest_phys_addr = MEM_GPA;
	region.memory_size = mem_size;
	region.userspace_addr = (uintptr_t)mem;
	if (ioctl(minivm_vm_fd(vm), KVM_SET_USER_MEMORY_REGION, &region) < 0) {
		fprintf(stderr, "KVM_SET_USER_MEMORY_REGION: %s\n",
			strerror(errno));
		minivm_free(vm);
		munmap(mem, mem_size);
		return 1;
	}
	printf("slot %d: %lu MiB at GPA 0x%llx\n", MEM_SLOT, mib, MEM_GPA);

	if (check(vm, mem, "initial", &before) < 0)
		failed = 1;

	/* The guest must see a host write made after its previous run. */
	fill_random(mem + mem_size / 2 + PAGE, PAGE);
	if (check(vm, mem, "modified", &after) < 0)
		failed = 1;
	else if (after == before) {
		fprintf(stderr, "modified page did not change the hash\n");
		failed = 1;
	}

	vm = minivm_free(vm);
	munmap(mem, mem_size);

	printf("%s\n", failed ? "FAIL" : "PASS");
	return failed;
}
