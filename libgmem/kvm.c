/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Memslots. A slot's memory has up to two halves: a guest_memfd, which holds what is private to
 * the guest (and, where it maps and is shared, the shared copy too), and a user mapping, where the
 * guest's shared accesses go. gmem_kvm_bind() takes both from one region; gmem_kvm_bind_pair()
 * takes a guest_memfd for the private half and another region for the shared one, the way VMMs
 * run VM types with private memory on kernels without in-place conversion.
 */
#include <inttypes.h>
#include <sys/ioctl.h>

#include "error.h"
#include "kvm-compat.h"
#include "region.h"
#include "sysops.h"

static int check_half(struct gmem_region *r, const char *what, uint64_t off, uint64_t len) {
        if (!r)
                return gmem_error(-EINVAL, "%s: NULL region", what);
        return len > 0 ? region_check_range(r, what, off, len) : 0;
}

/* gmem: the guest_memfd half or NULL; shared: the region whose mapping is the shared half, or NULL */
static int bind(int vm_fd, uint32_t slot, uint64_t gpa, struct gmem_region *gmem, struct gmem_region *shared,
                uint64_t off, uint64_t len, const char *what) {
        struct kvm_userspace_memory_region2 m = {
                .slot = slot,
                .guest_phys_addr = gpa,
                .memory_size = len,
        };
        const struct gmem_region *named = gmem ?: shared;
        uint64_t ps = page_size();
        uint8_t *map = NULL;
        int k, v2;

        if (vm_fd < 0)
                return gmem_error(-EBADF, "%s: invalid VM fd %d", what, vm_fd);
        if (off % ps || len % ps || gpa % ps || gpa > UINT64_MAX - len)
                return gmem_error(-EINVAL, "%s: offset %" PRIu64 ", length %" PRIu64 " and gpa 0x%" PRIx64
                                  " must be page aligned", what, off, len, gpa);

        v2 = gmem_kvm_check_extension(vm_fd, KVM_CAP_USER_MEMORY2);
        if (v2 < 0)
                return gmem_error(v2, "%s: KVM_CHECK_EXTENSION(KVM_CAP_USER_MEMORY2) on VM fd %d", what, vm_fd);
        if (gmem && v2 == 0)
                return gmem_error(-EOPNOTSUPP, "%s: this kernel has no KVM_SET_USER_MEMORY_REGION2 "
                                  "(KVM_CAP_USER_MEMORY2, Linux 6.8), which guest_memfd memslots need", what);
        if (shared && shared->backend == GMEM_BACKEND_SECRET && len > 0 &&
            gmem_kernel_has(GMEM_FEATURE_SECRET_MEMSLOT) == 0)
                return gmem_error(-EOPNOTSUPP, "%s: KVM on this kernel cannot run a guest from memfd_secret memory "
                                  "(a probe's KVM_RUN failed: secretmem pages cannot be pinned); use guest_memfd "
                                  "(with NO_DIRECT_MAP where the kernel has it) for memory outside the direct map",
                                  what);

        if (gmem) {
                m.flags = KVM_MEM_GUEST_MEMFD;
                m.guest_memfd = (uint32_t) gmem->fd;
                m.guest_memfd_offset = off;
        }
        if (shared && len > 0) {
                k = region_map_for(shared, what, &map);
                if (k < 0)
                        return k;
                m.userspace_addr = (uint64_t) (uintptr_t) (map + off);
        }

        if (v2 == 0) {
                /* kernels before 6.8 know only the first version, enough for memory without guest_memfd */
                struct kvm_userspace_memory_region m1 = {
                        .slot = slot,
                        .guest_phys_addr = gpa,
                        .memory_size = len,
                        .userspace_addr = m.userspace_addr,
                };
                if (gmem_sys->ioctl(vm_fd, KVM_SET_USER_MEMORY_REGION, &m1) == 0)
                        return 0;
                return gmem_error(negative_errno(), "KVM_SET_USER_MEMORY_REGION slot %" PRIu32 " gpa 0x%" PRIx64
                                  " size 0x%" PRIx64 " (%s offset 0x%" PRIx64 ") on VM fd %d", slot, gpa, len,
                                  gmem_backend_to_string(named->backend), off, vm_fd);
        }
        if (gmem_sys->ioctl(vm_fd, KVM_SET_USER_MEMORY_REGION2, &m) == 0)
                return 0;
        k = negative_errno();
        return gmem_error(k, "KVM_SET_USER_MEMORY_REGION2 slot %" PRIu32 " gpa 0x%" PRIx64 " size 0x%" PRIx64
                          " (%s%s offset 0x%" PRIx64 ") on VM fd %d", slot, gpa, len,
                          gmem_backend_to_string(named->backend), gmem && shared && gmem != shared ? " + shared region" : "",
                          off, vm_fd);
}

_public_ int gmem_kvm_bind(int vm_fd, uint32_t slot, uint64_t gpa, struct gmem_region *r, uint64_t off, uint64_t len) {
        int k = check_half(r, "bind", off, len);
        if (k < 0)
                return k;
        if (r->backend == GMEM_BACKEND_GUEST_MEMFD)
                /* the shared view, where there is one: the guest's shared accesses go there */
                return bind(vm_fd, slot, gpa, r, r->mappable ? r : NULL, off, len, "bind");
        return bind(vm_fd, slot, gpa, NULL, r, off, len, "bind");
}

_public_ int gmem_kvm_bind_pair(int vm_fd, uint32_t slot, uint64_t gpa, struct gmem_region *private_mem,
                                struct gmem_region *shared_mem, uint64_t off, uint64_t len) {
        int k;

        if ((k = check_half(private_mem, "bind pair", off, len)) < 0 ||
            (k = check_half(shared_mem, "bind pair", off, len)) < 0)
                return k;
        if (private_mem->backend != GMEM_BACKEND_GUEST_MEMFD)
                return gmem_error(-EINVAL, "bind pair: the private half must be a guest_memfd region, not %s",
                                  gmem_backend_to_string(private_mem->backend));
        if (shared_mem->backend == GMEM_BACKEND_GUEST_MEMFD)
                return gmem_error(-EINVAL, "bind pair: the shared half must be a memfd, hugetlb or memfd_secret "
                                  "region (a mappable shared guest_memfd is bound on its own, with gmem_kvm_bind)");
        return bind(vm_fd, slot, gpa, private_mem, shared_mem, off, len, "bind pair");
}
