/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Shared <-> private conversion, with QEMU's semantics: set the range's memory attributes on the
 * VM, then discard the copy that just became stale — the guest_memfd (private) copy when a range
 * turns shared, the shared copy when it turns private — and remember which ranges are private so
 * the data path never faults them.
 *
 * A VM type with private memory on a kernel without in-place conversion (the secret-hiding
 * kernel's sw_protected VMs) keeps the two copies in two regions bound as one slot
 * (gmem_kvm_bind_pair()): the VMM converts both, and each discards its own stale copy. In-place
 * conversion on the guest_memfd itself has no merged uapi yet; gmem_kernel_has() probes for it.
 */
#include <fcntl.h>
#include <inttypes.h>

#include "error.h"
#include "kvm-compat.h"
#include "region.h"
#include "sysops.h"

_public_ int gmem_convert(struct gmem_region *r, int vm_fd, uint64_t gpa, uint64_t off, uint64_t len, bool to_private) {
        struct kvm_memory_attributes attrs = {
                .address = gpa,
                .size = len,
                .attributes = to_private ? KVM_MEMORY_ATTRIBUTE_PRIVATE : 0,
        };
        struct rangeset before = {};
        bool discard;
        int k, supported;

        k = region_check_aligned(r, "convert", off, len);
        if (k < 0)
                return k;
        if (vm_fd < 0)
                return gmem_error(-EBADF, "convert: invalid VM fd %d", vm_fd);
        if (gpa % page_size() || gpa > UINT64_MAX - len)
                return gmem_error(-EINVAL, "convert: guest-physical address 0x%" PRIx64 " is unaligned or overflows", gpa);
        if (r->backend == GMEM_BACKEND_SECRET)
                return gmem_error(-EOPNOTSUPP, "convert: a memfd_secret region cannot be the shared half of a "
                                  "conversion (its memory cannot be discarded)");

        supported = gmem_kvm_check_extension(vm_fd, KVM_CAP_MEMORY_ATTRIBUTES);
        if (supported < 0)
                return gmem_error(supported, "convert: KVM_CHECK_EXTENSION(KVM_CAP_MEMORY_ATTRIBUTES) on VM fd %d", vm_fd);
        if (!(supported & KVM_MEMORY_ATTRIBUTE_PRIVATE))
                return gmem_error(-EOPNOTSUPP, "convert: KVM_CAP_MEMORY_ATTRIBUTES has no PRIVATE attribute on this "
                                  "kernel/VM type (mask 0x%x) and in-place guest_memfd conversion is not available",
                                  supported);

        /* Mark the range private before KVM does, so no populate can slip into it in between; keep
         * the previous set to put back exactly as it was if KVM refuses. */
        if (to_private) {
                pthread_mutex_lock(&r->lock);
                k = rangeset_copy(&r->private, &before);
                if (k >= 0)
                        k = rangeset_add(&r->private, off, off + len);
                pthread_mutex_unlock(&r->lock);
                if (k < 0) {
                        rangeset_clear(&before);
                        return gmem_error(k, "convert: private range bookkeeping");
                }
        }

        if (gmem_sys->ioctl(vm_fd, KVM_SET_MEMORY_ATTRIBUTES, &attrs) < 0) {
                k = negative_errno();
                if (to_private) {
                        pthread_mutex_lock(&r->lock);
                        rangeset_clear(&r->private);
                        r->private = before;
                        pthread_mutex_unlock(&r->lock);
                }
                return gmem_error(k, "KVM_SET_MEMORY_ATTRIBUTES gpa 0x%" PRIx64 "+0x%" PRIx64 " to %s", gpa, len,
                                  to_private ? "private" : "shared");
        }
        rangeset_clear(&before);

        if (!to_private) {
                pthread_mutex_lock(&r->lock);
                k = rangeset_remove(&r->private, off, off + len);
                pthread_mutex_unlock(&r->lock);
                if (k < 0)
                        return gmem_error(k, "convert: private range bookkeeping");
        }

        /* the guest_memfd holds the private copy; every other backend the shared one */
        discard = (r->backend == GMEM_BACKEND_GUEST_MEMFD) != to_private;
        if (discard && gmem_sys->fallocate(r->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t) off, (off_t) len) < 0)
                return gmem_error(negative_errno(), "convert: discard the stale %s copy at %" PRIu64 "+%" PRIu64,
                                  to_private ? "shared" : "private", off, len);
        return 0;
}
