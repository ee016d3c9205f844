/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* struct gmem_host_caps: getters, the choice of guest memory, and the 0.1 struct gmem_caps calls
 * (the frozen struct is converted and handed to the same code). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "caps-internal.h"
#include "enum-count.h"
#include "error.h"
#include "kvm-compat.h"
#include "macro.h"

_public_ int gmem_host_caps_new(int profile, struct gmem_host_caps **ret_caps) {
        _cleanup_free_ struct gmem_host_caps *c = NULL;
        int k;

        if (!ret_caps)
                return gmem_error(-EINVAL, "caps: NULL result");
        c = calloc(1, sizeof(*c));
        if (!c)
                return gmem_error(-ENOMEM, "caps: allocate");
        k = gmem_caps_probe_into(profile, c);
        if (k < 0)
                return k;
        *ret_caps = TAKE_PTR(c);
        return 0;
}

_public_ struct gmem_host_caps *gmem_host_caps_free(struct gmem_host_caps *c) {
        free(c);
        return NULL;
}

_public_ int gmem_host_caps_kvm_error(const struct gmem_host_caps *c) {
        return c ? c->v.kvm_error : -EINVAL;
}

_public_ int gmem_host_caps_kvm_api_version(const struct gmem_host_caps *c) {
        return c ? c->v.kvm_api_version : 0;
}

_public_ bool gmem_host_caps_guest_memfd(const struct gmem_host_caps *c) {
        return c && c->v.guest_memfd;
}

_public_ bool gmem_host_caps_user_memory2(const struct gmem_host_caps *c) {
        return c && c->v.user_memory2;
}

_public_ uint64_t gmem_host_caps_guest_memfd_flags(const struct gmem_host_caps *c) {
        return c ? c->v.guest_memfd_flags : 0;
}

_public_ uint64_t gmem_host_caps_flag(const struct gmem_host_caps *c, enum gmem_flag f) {
        if (!c)
                return 0;
        switch (f) {
        case GMEM_FLAG_MMAP:
                return c->v.flag_mmap;
        case GMEM_FLAG_INIT_SHARED:
                return c->v.flag_init_shared;
        case GMEM_FLAG_NO_DIRECT_MAP:
                return c->v.flag_no_direct_map;
        case GMEM_FLAG_WRITE:
                return c->v.flag_write;
        }
        return 0;
}

_public_ uint64_t gmem_host_caps_unknown_flags(const struct gmem_host_caps *c) {
        return c ? c->v.flags_unknown : 0;
}

_public_ bool gmem_host_caps_guest_memfd_write(const struct gmem_host_caps *c) {
        return c && c->v.gmem_write;
}

_public_ uint64_t gmem_host_caps_vm_types(const struct gmem_host_caps *c) {
        return c ? c->v.vm_types : 0;
}

_public_ uint64_t gmem_host_caps_memory_attributes(const struct gmem_host_caps *c, unsigned vm_type) {
        return c && vm_type < GMEM_VM_TYPES_MAX ? c->v.memory_attributes[vm_type] : 0;
}

_public_ int gmem_host_caps_has(const struct gmem_host_caps *c, enum gmem_feature f) {
        if ((unsigned) f >= GMEM_FEATURE_COUNT)
                return gmem_error(-EINVAL, "caps: invalid feature %d", (int) f);
        if (!c || c->v.kvm_error)
                return 0;
        if (c->remote)
                return c->features & (UINT32_C(1) << f) ? 1 : 0;
        return gmem_kernel_has(f) > 0;
}

_public_ int gmem_host_caps_memfd_secret_error(const struct gmem_host_caps *c) {
        return c ? c->v.memfd_secret_error : -EINVAL;
}

_public_ unsigned gmem_host_caps_hugetlb_count(const struct gmem_host_caps *c) {
        return c ? c->v.n_hugetlb : 0;
}

_public_ int gmem_host_caps_hugetlb(const struct gmem_host_caps *c, unsigned i, uint64_t *ret_page_size,
                                   uint64_t *ret_total_pages, uint64_t *ret_free_pages) {
        if (!c)
                return gmem_error(-EINVAL, "caps: NULL caps");
        if (i >= c->v.n_hugetlb)
                return gmem_error(-ERANGE, "caps: no huge page pool %u (there are %u)", i, c->v.n_hugetlb);
        if (ret_page_size)
                *ret_page_size = c->v.hugetlb[i].page_size;
        if (ret_total_pages)
                *ret_total_pages = c->v.hugetlb[i].total_pages;
        if (ret_free_pages)
                *ret_free_pages = c->v.hugetlb[i].free_pages;
        return 0;
}

_public_ const char *gmem_host_caps_thp(const struct gmem_host_caps *c) {
        return c ? c->v.thp : NULL;
}

_public_ const char *gmem_host_caps_shmem_thp(const struct gmem_host_caps *c) {
        return c ? c->v.shmem_thp : NULL;
}

_public_ const char *gmem_host_caps_kernel_release(const struct gmem_host_caps *c) {
        return c ? c->v.kernel_release : NULL;
}

_public_ enum gmem_kernel_profile gmem_host_caps_profile(const struct gmem_host_caps *c) {
        return c ? c->v.profile : GMEM_PROFILE_UPSTREAM;
}

_public_ enum gmem_profile_source gmem_host_caps_profile_source(const struct gmem_host_caps *c) {
        return c ? c->v.profile_source : GMEM_PROFILE_DETECTED;
}

_public_ uint64_t gmem_host_caps_best_guest_memfd_flags(const struct gmem_host_caps *c) {
        if (!c || !c->v.guest_memfd || !c->v.flag_mmap)
                return 0;
        return c->v.flag_mmap | c->v.flag_init_shared | c->v.flag_no_direct_map;
}

_public_ int gmem_host_caps_pick_guest_memory(const struct gmem_host_caps *hc, enum gmem_backend *ret_backend,
                                             uint64_t *ret_flags, const char **ret_reason) {
        const struct gmem_caps *caps = hc ? &hc->v : NULL;
        const char *why = NULL;
        uint64_t flags = gmem_host_caps_best_guest_memfd_flags(hc);

        if (!caps || !ret_backend || !ret_flags)
                return gmem_error(-EINVAL, "pick guest memory: NULL argument");
        if (caps->kvm_error)
                why = "/dev/kvm is not usable here";
        else if (!caps->guest_memfd)
                why = "this kernel has no guest_memfd (KVM_CAP_GUEST_MEMFD is 0)";
        else if (gmem_host_caps_has(hc, GMEM_FEATURE_GUEST_MEMFD_DEFAULT_VM) <= 0)
                why = "this kernel offers guest_memfd only to confidential VM types, not to a default VM";
        else if (!caps->user_memory2)
                why = "this kernel cannot bind a guest_memfd as a memslot (no KVM_CAP_USER_MEMORY2)";
        else if (!caps->flag_mmap)
                why = "this kernel cannot map a guest_memfd into host userspace (no GUEST_MEMFD_FLAG_MMAP)";
        else if (!caps->flag_init_shared)
                why = "this kernel cannot create a guest_memfd shared with the host (no GUEST_MEMFD_FLAG_INIT_SHARED)";
        if (why) {
                *ret_backend = GMEM_BACKEND_MEMFD;
                *ret_flags = 0;
        } else {
                /* and WRITE where write() populates: faster than the mapping (populate.c) */
                bool write = caps->gmem_write && caps->flag_write;
                *ret_backend = GMEM_BACKEND_GUEST_MEMFD;
                *ret_flags = flags | (write ? caps->flag_write : 0);
                if (caps->flag_no_direct_map)
                        why = write ? "guest memory leaves the host's direct map (NO_DIRECT_MAP), and write() fills it "
                                      "faster than the mapping (WRITE)"
                                    : "guest memory leaves the host's direct map (NO_DIRECT_MAP)";
                else
                        why = write ? "this kernel has no NO_DIRECT_MAP: the host's direct map still covers guest memory; "
                                      "write() fills it (WRITE)"
                                    : "this kernel has no NO_DIRECT_MAP: the host's direct map still covers guest memory";
        }
        if (ret_reason)
                *ret_reason = why;
        return 0;
}

/* ---- the 0.1 calls */

void gmem_host_caps_from_v01(const struct gmem_caps *c, struct gmem_host_caps *ret) {
        /* this host's: the struct's one feature, the others from gmem_kernel_has() as in 0.1 */
        *ret = (struct gmem_host_caps) { .v = *c, .remote = true };
        for (int f = 0; c->kvm_error == 0 && f < GMEM_FEATURE_COUNT; f++)
                if (f == GMEM_FEATURE_INPLACE_CONVERSION ? c->inplace_conversion : gmem_kernel_has(f) > 0)
                        ret->features |= UINT32_C(1) << f;
}

_public_ int gmem_caps_probe_profile(int profile, struct gmem_caps *ret_caps) {
        struct gmem_host_caps c;
        int k;

        if (!ret_caps)
                return gmem_error(-EINVAL, "caps: NULL result");
        k = gmem_caps_probe_into(profile, &c);
        if (k < 0)
                return k;
        c.v.inplace_conversion = gmem_host_caps_has(&c, GMEM_FEATURE_INPLACE_CONVERSION) > 0;
        *ret_caps = c.v;
        return 0;
}

_public_ int gmem_caps_probe(struct gmem_caps *ret_caps) {
        int profile, k;

        /* 0.1 read the environment here, and programs written for it expect that */
        k = gmem_kernel_profile_from_env(&profile);
        if (k < 0)
                return k;
        return gmem_caps_probe_profile(profile, ret_caps);
}

_public_ uint64_t gmem_caps_best_guest_memfd_flags(const struct gmem_caps *caps) {
        struct gmem_host_caps c;

        if (!caps)
                return 0;
        c = (struct gmem_host_caps) { .v = *caps }; /* the flags need no features */
        return gmem_host_caps_best_guest_memfd_flags(&c);
}

_public_ int gmem_caps_pick_guest_memory(const struct gmem_caps *caps, enum gmem_backend *ret_backend,
                                        uint64_t *ret_flags, const char **ret_reason) {
        struct gmem_host_caps c;

        if (!caps)
                return gmem_error(-EINVAL, "pick guest memory: NULL argument");
        gmem_host_caps_from_v01(caps, &c);
        return gmem_host_caps_pick_guest_memory(&c, ret_backend, ret_flags, ret_reason);
}

_public_ int gmem_caps_to_json(const struct gmem_caps *caps, char **ret_json) {
        struct gmem_host_caps c;

        if (!caps)
                return gmem_error(-EINVAL, "caps to JSON: NULL argument");
        gmem_host_caps_from_v01(caps, &c);
        return gmem_host_caps_to_json(&c, ret_json);
}
