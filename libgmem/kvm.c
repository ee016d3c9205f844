/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <inttypes.h>
#include <sys/ioctl.h>

#include "error.h"
#include "kvm-compat.h"
#include "region.h"
#include "sysops.h"

_public_ int gmem_kvm_bind(int vm_fd, uint32_t slot, uint64_t gpa, struct gmem_region *r, uint64_t off, uint64_t len) {
        struct kvm_userspace_memory_region2 m = {
                .slot = slot,
                .guest_phys_addr = gpa,
                .memory_size = len,
        };
        uint64_t ps = page_size();
        uint8_t *map = NULL;
        int k;

        if (vm_fd < 0)
                return gmem_error(-EBADF, "bind: invalid VM fd %d", vm_fd);
        if (!r)
                return gmem_error(-EINVAL, "bind: NULL region");
        if (len > 0 && (k = region_check_range(r, "bind", off, len)) < 0)
                return k;
        if (off % ps || len % ps || gpa % ps || gpa > UINT64_MAX - len)
                return gmem_error(-EINVAL, "bind: offset %" PRIu64 ", length %" PRIu64 " and gpa 0x%" PRIx64
                                  " must be page aligned", off, len, gpa);

        if (r->backend == GMEM_BACKEND_GUEST_MEMFD) {
                m.flags = KVM_MEM_GUEST_MEMFD;
                m.guest_memfd = (uint32_t) r->fd;
                m.guest_memfd_offset = off;
                /* the shared view, where there is one: the guest's shared accesses go there */
                if (r->mappable && len > 0) {
                        k = region_map_for(r, "bind", &map);
                        if (k < 0)
                                return k;
                        m.userspace_addr = (uint64_t) (uintptr_t) (map + off);
                }
        } else if (len > 0) {
                k = region_map_for(r, "bind", &map);
                if (k < 0)
                        return k;
                m.userspace_addr = (uint64_t) (uintptr_t) (map + off);
        }

        if (gmem_sys->ioctl(vm_fd, KVM_SET_USER_MEMORY_REGION2, &m) == 0)
                return 0;
        k = negative_errno();
        if (k == -EINVAL && r->backend != GMEM_BACKEND_GUEST_MEMFD) {
                /* kernels before KVM_CAP_USER_MEMORY2 (6.8) know only the first version */
                struct kvm_userspace_memory_region m1 = {
                        .slot = slot,
                        .guest_phys_addr = gpa,
                        .memory_size = len,
                        .userspace_addr = m.userspace_addr,
                };
                if (gmem_kvm_check_extension(vm_fd, KVM_CAP_USER_MEMORY2) <= 0) {
                        if (gmem_sys->ioctl(vm_fd, KVM_SET_USER_MEMORY_REGION, &m1) == 0)
                                return 0;
                        k = negative_errno();
                }
        }
        return gmem_error(k, "KVM_SET_USER_MEMORY_REGION2 slot %" PRIu32 " gpa 0x%" PRIx64 " size 0x%" PRIx64
                          " (%s offset 0x%" PRIx64 ") on VM fd %d", slot, gpa, len,
                          gmem_backend_to_string(r->backend), off, vm_fd);
}
