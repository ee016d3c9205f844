/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What a kernel can do beyond its capability numbers, each found by doing it once on scratch
 * objects (never from a bit number: unmerged series reuse them, and out-of-tree capability numbers
 * collide with upstream ones). Every answer is cached for the process.
 *
 *  - KVM runs a guest from memfd_secret memory: a one-page memslot with HLT in it, one KVM_RUN.
 *    Upstream kernels refuse (KVM_RUN gives EFAULT: secretmem pages cannot be pinned); some
 *    paravirtual KVMs accept.
 *  - guest_memfd on a VM of the default type (6.12 offers guest_memfd only to other types).
 *  - NUMA memory policy on guest_memfd (6.19): mbind() on one mapping is the file's policy, seen
 *    through a second mapping of the same file (without it, a policy stays with its mapping).
 *  - userfaultfd on a guest_memfd mapping (7.1, and the secret-hiding series): UFFDIO_REGISTER.
 *  - in-place conversion: a guest_memfd created private becomes faultable by the host when KVM
 *    marks its range shared, on a VM type with private memory.
 */
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>

#include "caps-internal.h"
#include "enum-count.h"
#include "error.h"
#include "kvm-compat.h"
#include "region.h"
#include "uffd-compat.h"
#include "sysops.h"

#ifndef MPOL_PREFERRED
#define MPOL_DEFAULT 0
#define MPOL_PREFERRED 1
#endif
#ifndef MPOL_F_ADDR
#define MPOL_F_ADDR (1 << 1)
#endif

static int feature_state[GMEM_FEATURE_COUNT];
static pthread_once_t feature_once = PTHREAD_ONCE_INIT;

static int new_vm(int kvm_fd, unsigned long type) {
        return gmem_sys->ioctl(kvm_fd, KVM_CREATE_VM, (void *) type);
}

static int new_gmem(int vm_fd, uint64_t size, uint64_t flags) {
        struct kvm_create_guest_memfd args = { .size = size, .flags = flags };
        return gmem_sys->ioctl(vm_fd, KVM_CREATE_GUEST_MEMFD, &args);
}

/* One vCPU in real mode at gpa 0 of a one-page memfd_secret memslot holding HLT. */
static bool probe_secret_memslot(int kvm_fd) {
        _cleanup_close_ int vm = -1, vcpu = -1, secret = -1;
        struct kvm_userspace_memory_region slot = { .slot = 0, .memory_size = page_size() };
        struct kvm_sregs sregs;
        struct kvm_regs regs = { .rip = 0, .rflags = 2 };
        struct kvm_run *run;
        uint8_t *mem;
        int run_size, k;
        bool ok = false;

        /* the page counts against RLIMIT_MEMLOCK like any: never the one that SIGBUSes the caller */
        if (region_check_memlock("probe", page_size()) < 0) {
                gmem_error_clear();
                return false;
        }
        secret = syscall(SYS_memfd_secret, O_CLOEXEC);
        if (secret < 0 || ftruncate(secret, (off_t) page_size()) < 0)
                return false;
        vm = new_vm(kvm_fd, KVM_X86_DEFAULT_VM);
        run_size = gmem_sys->ioctl(kvm_fd, KVM_GET_VCPU_MMAP_SIZE, NULL);
        if (vm < 0 || run_size <= 0)
                return false;
        mem = mmap(NULL, page_size(), PROT_READ | PROT_WRITE, MAP_SHARED, secret, 0);
        if (mem == MAP_FAILED)
                return false;
        mem[0] = 0xf4; /* hlt */
        slot.userspace_addr = (uint64_t) (uintptr_t) mem;
        vcpu = -1;
        if (gmem_sys->ioctl(vm, KVM_SET_USER_MEMORY_REGION, &slot) < 0)
                goto out;
        vcpu = gmem_sys->ioctl(vm, KVM_CREATE_VCPU, (void *) 0L);
        if (vcpu < 0 || gmem_sys->ioctl(vcpu, KVM_GET_SREGS, &sregs) < 0)
                goto out;
        sregs.cs.base = 0;
        sregs.cs.selector = 0;
        if (gmem_sys->ioctl(vcpu, KVM_SET_SREGS, &sregs) < 0 || gmem_sys->ioctl(vcpu, KVM_SET_REGS, &regs) < 0)
                goto out;
        run = mmap(NULL, (size_t) run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
        if (run == MAP_FAILED)
                goto out;
        do
                k = gmem_sys->ioctl(vcpu, KVM_RUN, NULL);
        while (k < 0 && errno == EINTR);
        ok = k == 0 && run->exit_reason == KVM_EXIT_HLT;
        munmap(run, (size_t) run_size);
out:
        munmap(mem, page_size());
        return ok;
}

/* A mappable, shared guest_memfd of two pages on a default VM, or -1. */
static int shared_gmem(int kvm_fd, int *ret_vm) {
        const struct gmem_flag_map *m = gmem_flag_map_get();
        uint64_t flags = GMEM_GUEST_MEMFD_FLAG_MMAP | GMEM_GUEST_MEMFD_FLAG_INIT_SHARED;
        int vm, fd;

        if ((m->mask & flags) != flags)
                return -1;
        vm = new_vm(kvm_fd, KVM_X86_DEFAULT_VM);
        if (vm < 0)
                return -1;
        fd = new_gmem(vm, 2 * page_size(), flags);
        if (fd < 0) {
                close(vm);
                return -1;
        }
        *ret_vm = vm;
        return fd;
}

static bool probe_numa_policy(int kvm_fd) {
        _cleanup_close_ int vm = -1, fd = shared_gmem(kvm_fd, &vm);
        unsigned long node0 = 1;
        uint8_t *a, *b;
        int mode = -1;
        bool ok = false;

        if (fd < 0)
                return false;
        a = mmap(NULL, page_size(), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        b = mmap(NULL, page_size(), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (a != MAP_FAILED && b != MAP_FAILED &&
            syscall(SYS_mbind, a, page_size(), MPOL_PREFERRED, &node0, 2, 0) == 0 &&
            syscall(SYS_get_mempolicy, &mode, NULL, 0, b, MPOL_F_ADDR) == 0)
                ok = mode == MPOL_PREFERRED;
        if (a != MAP_FAILED)
                munmap(a, page_size());
        if (b != MAP_FAILED)
                munmap(b, page_size());
        return ok;
}

/* The userfaultfd register modes a guest_memfd mapping accepts (MISSING, MINOR), 0 for none. */
static uint64_t probe_userfaultfd(int kvm_fd) {
        _cleanup_close_ int vm = -1, fd = shared_gmem(kvm_fd, &vm);
        static const uint64_t modes[] = { UFFDIO_REGISTER_MODE_MISSING, UFFDIO_REGISTER_MODE_MINOR };
        uint64_t ok = 0;
        uint8_t *a;

        if (fd < 0)
                return 0;
        a = mmap(NULL, page_size(), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (a == MAP_FAILED)
                return 0;
        for (size_t i = 0; i < ELEMENTSOF(modes); i++) {
                /* user-mode faults only: allowed to every user, and all a page server needs */
                _cleanup_close_ int uffd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
                struct uffdio_api api = { .api = UFFD_API,
                                          .features = modes[i] == UFFDIO_REGISTER_MODE_MINOR ? UFFD_FEATURE_MINOR_SHMEM : 0 };
                struct uffdio_register reg = { .range = { (uint64_t) (uintptr_t) a, page_size() }, .mode = modes[i] };

                if (uffd < 0 || ioctl(uffd, UFFDIO_API, &api) < 0)
                        continue;
                if (ioctl(uffd, UFFDIO_REGISTER, &reg) == 0)
                        ok |= modes[i];
        }
        munmap(a, page_size());
        return ok;
}

/* Does the host's mapping follow KVM's shared/private attributes on the same guest_memfd? */
static bool probe_inplace_conversion(int kvm_fd) {
        const struct gmem_flag_map *m = gmem_flag_map_get();
        _cleanup_close_ int vm = -1, fd = -1;
        struct kvm_userspace_memory_region2 slot = { .slot = 0, .flags = KVM_MEM_GUEST_MEMFD,
                                                     .memory_size = page_size() };
        struct kvm_memory_attributes shared = { .address = 0, .size = page_size(), .attributes = 0 };
        int pipefd[2];
        uint8_t *a;
        bool ok = false;

        if (!(m->mask & GMEM_GUEST_MEMFD_FLAG_MMAP))
                return false;
        for (unsigned long type = KVM_X86_DEFAULT_VM; type <= KVM_X86_SW_PROTECTED_VM && fd < 0; type++) {
                int attrs;
                if (vm >= 0)
                        close(vm);
                vm = new_vm(kvm_fd, type);
                if (vm < 0)
                        continue;
                attrs = gmem_kvm_check_extension(vm, KVM_CAP_MEMORY_ATTRIBUTES);
                if (attrs > 0 && (attrs & KVM_MEMORY_ATTRIBUTE_PRIVATE))
                        fd = new_gmem(vm, page_size(), GMEM_GUEST_MEMFD_FLAG_MMAP);
        }
        if (fd < 0)
                return false;
        a = mmap(NULL, page_size(), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (a == MAP_FAILED)
                return false;
        slot.guest_memfd = (uint32_t) fd;
        slot.userspace_addr = (uint64_t) (uintptr_t) a;
        if (pipe2(pipefd, O_CLOEXEC | O_NONBLOCK) == 0) {
                /* write() from the mapping faults the page for us: EFAULT, never SIGBUS, if it cannot */
                if (gmem_sys->ioctl(vm, KVM_SET_USER_MEMORY_REGION2, &slot) == 0 &&
                    gmem_sys->ioctl(vm, KVM_SET_MEMORY_ATTRIBUTES, &shared) == 0)
                        ok = write(pipefd[1], a, 1) == 1;
                close(pipefd[0]);
                close(pipefd[1]);
        }
        munmap(a, page_size());
        return ok;
}

static void features_init(void) {
        _cleanup_close_ int kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
        _cleanup_close_ int vm = -1;

        if (kvm_fd < 0)
                return;
        vm = new_vm(kvm_fd, KVM_X86_DEFAULT_VM);
        feature_state[GMEM_FEATURE_GUEST_MEMFD_DEFAULT_VM] = vm >= 0 && gmem_kvm_check_extension(vm, KVM_CAP_GUEST_MEMFD) > 0;
        feature_state[GMEM_FEATURE_SECRET_MEMSLOT] = probe_secret_memslot(kvm_fd);
        feature_state[GMEM_FEATURE_GUEST_MEMFD_NUMA_POLICY] = probe_numa_policy(kvm_fd);
        {
                uint64_t modes = probe_userfaultfd(kvm_fd);
                feature_state[GMEM_FEATURE_GUEST_MEMFD_UFFD_MISSING] = !!(modes & UFFDIO_REGISTER_MODE_MISSING);
                feature_state[GMEM_FEATURE_GUEST_MEMFD_UFFD_MINOR] = !!(modes & UFFDIO_REGISTER_MODE_MINOR);
        }
        feature_state[GMEM_FEATURE_INPLACE_CONVERSION] = probe_inplace_conversion(kvm_fd);
}

_public_ int gmem_kernel_has(enum gmem_feature f) {
        if ((unsigned) f >= GMEM_FEATURE_COUNT)
                return gmem_error(-EINVAL, "kernel feature: invalid feature %d", (int) f);
        pthread_once(&feature_once, features_init);
        return feature_state[f];
}

static const char *const feature_names[GMEM_FEATURE_COUNT] = {
        [GMEM_FEATURE_GUEST_MEMFD_DEFAULT_VM] = "guest_memfd_default_vm",
        [GMEM_FEATURE_SECRET_MEMSLOT] = "secret_memslot",
        [GMEM_FEATURE_GUEST_MEMFD_NUMA_POLICY] = "guest_memfd_numa_policy",
        [GMEM_FEATURE_GUEST_MEMFD_UFFD_MISSING] = "guest_memfd_userfaultfd_missing",
        [GMEM_FEATURE_GUEST_MEMFD_UFFD_MINOR] = "guest_memfd_userfaultfd_minor",
        [GMEM_FEATURE_INPLACE_CONVERSION] = "inplace_conversion",
};

_public_ const char *gmem_feature_to_string(enum gmem_feature f) {
        return (unsigned) f < GMEM_FEATURE_COUNT ? feature_names[f] : NULL;
}
