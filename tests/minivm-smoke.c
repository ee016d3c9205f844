// SPDX-License-Identifier: MIT
/*
 * minivm-smoke - check that a real KVM guest sees host-written memory.
 *
 * Maps two regions of 8 MiB (or argv[1] MiB) of anonymous memory: slot 1 at
 * GPA 1 MiB and slot 2 at GPA 4 GiB, so that the guest has to use 64-bit
 * addresses. Fills them with pseudo-random bytes and compares the guest's
 * checksums with the host's: each region alone (printing the throughput),
 * then several ranges in one run (minivm_run_checksum_ranges()), then each
 * region on its own vCPU, both running at once on two threads (minivm_run()
 * and the serial report read back with minivm_parse_report_line()), then
 * again after changing one page in each region. Exits 0 only if all match.
 *
 * Build: gcc -std=gnu11 -pthread -Itools tests/minivm-smoke.c tools/minivm.c \
 *            $(GUEST_BLOB)   (see guest/guest.mk)
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <linux/kvm.h>

#include "minivm.h"

#define MEM_SIZE_MIB	8ul		/* default */
#define MEM_MAX_MIB	4095ul		/* region 0 must end below 4 GiB */
#define PAGE		4096ul
#define NR_REGIONS	2

struct region {
	unsigned int slot;
	uint64_t gpa;
	unsigned char *mem;
};

static struct region regions[NR_REGIONS] = {
	{ .slot = 1, .gpa = 0x100000ull },	/* 1 MiB */
	{ .slot = 2, .gpa = 0x100000000ull },	/* 4 GiB */
};
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

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Run the guest over each whole region and compare with the host hash. */
static int check_regions(struct minivm *vm, const char *what)
{
	int failed = 0;
	int i, r;

	for (i = 0; i < NR_REGIONS; i++) {
		const struct region *reg = &regions[i];
		uint32_t guest, host;
		double t;

		t = now();
		r = minivm_run_checksum(vm, reg->gpa, mem_size, &guest);
		t = now() - t;
		if (r < 0) {
			fprintf(stderr, "%s @0x%" PRIx64 ": minivm_run_checksum: "
				"%s (%s)\n", what, reg->gpa, strerror(-r),
				minivm_last_exit(vm, 0));
			failed = 1;
			continue;
		}
		host = minivm_checksum_host(reg->mem, mem_size);
		printf("%-9s @0x%09" PRIx64 " guest 0x%08" PRIx32
		       " host 0x%08" PRIx32 "  %s  (%.1f MB/s)\n", what,
		       reg->gpa, guest, host, guest == host ? "OK" : "MISMATCH",
		       mem_size / t / 1e6);
		if (guest != host)
			failed = 1;
	}
	return failed;
}

/*
 * Several ranges in one run: both regions, an empty range, and ranges at
 * odd dword offsets crossing a page boundary in each region.
 */
static int check_ranges(struct minivm *vm, const char *what)
{
	struct minivm_range ranges[2 * NR_REGIONS + 1];
	const unsigned char *bufs[2 * NR_REGIONS + 1];
	uint32_t hashes[2 * NR_REGIONS + 1];
	size_t n = 0, i, off, len;
	int failed = 0;
	int r;

	off = mem_size / 2 - PAGE + 12;
	len = PAGE + 36;
	for (i = 0; i < NR_REGIONS; i++) {
		ranges[n] = (struct minivm_range){ regions[i].gpa, mem_size };
		bufs[n++] = regions[i].mem;
		ranges[n] = (struct minivm_range){ regions[i].gpa + off, len };
		bufs[n++] = regions[i].mem + off;
	}
	ranges[n] = (struct minivm_range){ regions[1].gpa, 0 };
	bufs[n++] = regions[1].mem;

	r = minivm_run_checksum_ranges(vm, ranges, n, hashes);
	if (r < 0) {
		fprintf(stderr, "%s: minivm_run_checksum_ranges: %s (%s)\n",
			what, strerror(-r), minivm_last_exit(vm, 0));
		return 1;
	}
	for (i = 0; i < n; i++) {
		uint32_t host = minivm_checksum_host(bufs[i], ranges[i].len);

		if (hashes[i] != host) {
			fprintf(stderr, "%s: range %zu [0x%" PRIx64 ", +0x%"
				PRIx64 "): guest 0x%08" PRIx32 " host 0x%08"
				PRIx32 "\n", what, i, ranges[i].gpa,
				ranges[i].len, hashes[i], host);
			failed = 1;
		}
	}
	printf("%-9s %zu ranges in one run  %s\n", what, n,
	       failed ? "MISMATCH" : "OK");
	return failed;
}

struct vcpu_job {
	struct minivm *vm;
	unsigned int vcpu;
	struct minivm_range range;
	int result;
};

static void *run_vcpu(void *arg)
{
	struct vcpu_job *job = arg;

	job->result = minivm_run(job->vm, job->vcpu, &job->range, 1,
				 job->vcpu);
	return NULL;
}

/*
 * Each region on its own vCPU, both at once: vCPU i reports exactly
 * "vcpu i range i ..." with the region's hash, then "vcpu i done".
 */
static int check_parallel(struct minivm *vm, const char *what)
{
	struct vcpu_job jobs[NR_REGIONS];
	pthread_t threads[NR_REGIONS];
	struct minivm_report_line line;
	const char *out;
	int failed = 0;
	int i, k;

	for (i = 0; i < NR_REGIONS; i++) {
		jobs[i] = (struct vcpu_job){ vm, (unsigned int)i,
					     { regions[i].gpa, mem_size }, 0 };
		if (pthread_create(&threads[i], NULL, run_vcpu, &jobs[i])) {
			fprintf(stderr, "%s: pthread_create failed\n", what);
			return 1;
		}
	}
	for (i = 0; i < NR_REGIONS; i++)
		pthread_join(threads[i], NULL);

	for (i = 0; i < NR_REGIONS; i++) {
		uint32_t host = minivm_checksum_host(regions[i].mem, mem_size);

		if (jobs[i].result < 0) {
			fprintf(stderr, "%s: vcpu %d: minivm_run: %s (%s)\n",
				what, i, strerror(-jobs[i].result),
				minivm_last_exit(vm, (unsigned int)i));
			failed = 1;
			continue;
		}
		out = minivm_serial_output(vm, (unsigned int)i);
		k = minivm_parse_report_line(out, &line);
		if (k < 0 || line.done || line.vcpu != (unsigned int)i ||
		    line.id != (uint64_t)i || line.gpa != regions[i].gpa ||
		    line.len != mem_size || line.hash != host) {
			fprintf(stderr, "%s: vcpu %d reported \"%s\", host "
				"hash 0x%08" PRIx32 "\n", what, i, out, host);
			failed = 1;
			continue;
		}
		out += k;
		k = minivm_parse_report_line(out, &line);
		if (k < 0 || !line.done || line.vcpu != (unsigned int)i ||
		    out[k] != '\0') {
			fprintf(stderr, "%s: vcpu %d did not end with done: "
				"\"%s\"\n", what, i, out);
			failed = 1;
		}
	}
	printf("%-9s %d vCPUs at once        %s\n", what, NR_REGIONS,
	       failed ? "MISMATCH" : "OK");
	return failed;
}

int main(int argc, char **argv)
{
	struct kvm_userspace_memory_region region;
	struct minivm *vm = NULL;
	unsigned long mib = MEM_SIZE_MIB;
	uint32_t before[NR_REGIONS];
	char *end;
	int failed = 0;
	int i, r;

	if (argc == 2) {
		mib = strtoul(argv[1], &end, 10);
		if (*end)
			mib = 0;
	}
	if (argc > 2 || mib == 0 || mib > MEM_MAX_MIB) {
		fprintf(stderr, "usage: %s [size in MiB, 1-%lu]\n", argv[0],
			MEM_MAX_MIB);
		return 2;
	}
	mem_size = mib << 20;

	r = minivm_new_vcpus(NR_REGIONS, &vm);
	if (r < 0) {
		fprintf(stderr, "minivm_new_vcpus: %s\n", strerror(-r));
		return 1;
	}
	printf("guest identity map ends at 0x%" PRIx64 "\n",
	       minivm_gpa_limit(vm));

	for (i = 0; i < NR_REGIONS; i++) {
		struct region *reg = &regions[i];
		void *mem;

		mem = mmap(NULL, mem_size, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (mem == MAP_FAILED) {
			fprintf(stderr, "mmap: %s\n", strerror(errno));
			failed = 1;
			goto out;
		}
		reg->mem = mem;
		fill_random(reg->mem, mem_size);

		memset(&region, 0, sizeof(region));
		region.slot = reg->slot;
		region.guest_phys_addr = reg->gpa;
		region.memory_size = mem_size;
		region.userspace_addr = (uintptr_t)reg->mem;
		if (ioctl(minivm_vm_fd(vm), KVM_SET_USER_MEMORY_REGION,
			  &region) < 0) {
			fprintf(stderr, "KVM_SET_USER_MEMORY_REGION: %s\n",
				strerror(errno));
			failed = 1;
			goto out;
		}
		printf("slot %u: %lu MiB at GPA 0x%" PRIx64 "\n", reg->slot,
		       mib, reg->gpa);
	}

	failed |= check_regions(vm, "initial");
	failed |= check_regions(vm, "again");
	failed |= check_ranges(vm, "initial");
	failed |= check_parallel(vm, "initial");

	/* The guest must see host writes made after its previous run. */
	for (i = 0; i < NR_REGIONS; i++) {
		before[i] = minivm_checksum_host(regions[i].mem, mem_size);
		fill_random(regions[i].mem + mem_size / 2, PAGE);
		if (minivm_checksum_host(regions[i].mem, mem_size) ==
		    before[i]) {
			fprintf(stderr, "modified page did not change the "
				"hash\n");
			failed = 1;
		}
	}
	failed |= check_regions(vm, "modified");
	failed |= check_ranges(vm, "modified");
	failed |= check_parallel(vm, "modified");

out:
	vm = minivm_free(vm);
	for (i = 0; i < NR_REGIONS; i++)
		if (regions[i].mem)
			munmap(regions[i].mem, mem_size);

	printf("%s\n", failed ? "FAIL" : "PASS");
	return failed;
}
