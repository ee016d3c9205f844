/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A host's caps as JSON (gmemd's "caps" reply, `gmemctl caps --json`; docs/protocol.md) and back. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "caps-internal.h"
#include "enum-count.h"
#include "errno-name.h"
#include "error.h"
#include "kvm-compat.h"
#include "protocol.h"

static const char *vm_type_name(int t) {
        static const char *const names[] = { "default", "sw_protected", "sev", "sev_es", "snp", "tdx" };
        return t < (int) ELEMENTSOF(names) ? names[t] : "unknown";
}

static cJSON *flag_json(uint64_t bit) {
        return bit ? json_u64(bit) : cJSON_CreateNull();
}

static bool has(const struct gmem_host_caps *c, enum gmem_feature f) {
        return gmem_host_caps_has(c, f) > 0;
}

/* {"usable":..., "error": "No such file or directory", "errno": "ENOENT"} parts */
static void add_error(cJSON *o, int err) {
        cJSON_AddStringToObject(o, "error", strerror(-err));
        cJSON_AddStringToObject(o, "errno", errno_to_name(err));
}

int gmem_host_caps_to_json_object(const struct gmem_host_caps *hc, void **ret_cjson) {
        _cleanup_json_ cJSON *root = NULL;
        cJSON *kvm, *g, *flags, *types, *conv, *secret, *huge, *kernel, *vm;
        const struct gmem_caps *c = hc ? &hc->v : NULL;
        enum gmem_backend backend;
        uint64_t pick_flags;
        bool any_private = false;
        const char *why;

        if (!c || !ret_cjson)
                return gmem_error(-EINVAL, "caps to JSON: NULL argument");
        root = cJSON_CreateObject();
        if (!root)
                return gmem_error(-ENOMEM, "caps to JSON");

        kvm = cJSON_AddObjectToObject(root, "kvm");
        cJSON_AddBoolToObject(kvm, "usable", c->kvm_error == 0);
        cJSON_AddNumberToObject(kvm, "api_version", c->kvm_api_version);
        if (c->kvm_error)
                add_error(kvm, c->kvm_error);
        cJSON_AddBoolToObject(kvm, "user_memory2", c->user_memory2);

        g = cJSON_AddObjectToObject(root, "guest_memfd");
        cJSON_AddBoolToObject(g, "supported", c->guest_memfd);
        json_add_u64(g, "flags_mask", c->guest_memfd_flags);
        flags = cJSON_AddObjectToObject(g, "flags");
        cJSON_AddItemToObject(flags, "mmap", flag_json(c->flag_mmap));
        cJSON_AddItemToObject(flags, "init_shared", flag_json(c->flag_init_shared));
        cJSON_AddItemToObject(flags, "no_direct_map", flag_json(c->flag_no_direct_map));
        cJSON_AddItemToObject(flags, "write", flag_json(c->flag_write));
        json_add_u64(g, "unknown_flags", c->flags_unknown);
        cJSON_AddBoolToObject(g, "write_syscall", c->gmem_write);
        json_add_u64(g, "best_flags", gmem_host_caps_best_guest_memfd_flags(hc));
        if (c->kvm_error == 0) {
                cJSON *uffd;
                cJSON_AddBoolToObject(g, "default_vm", has(hc, GMEM_FEATURE_GUEST_MEMFD_DEFAULT_VM));
                cJSON_AddBoolToObject(g, "numa_policy", has(hc, GMEM_FEATURE_GUEST_MEMFD_NUMA_POLICY));
                uffd = cJSON_AddObjectToObject(g, "userfaultfd");
                cJSON_AddBoolToObject(uffd, "missing", has(hc, GMEM_FEATURE_GUEST_MEMFD_UFFD_MISSING));
                cJSON_AddBoolToObject(uffd, "minor", has(hc, GMEM_FEATURE_GUEST_MEMFD_UFFD_MINOR));
        }

        vm = cJSON_AddObjectToObject(root, "guest_memory");
        (void) gmem_host_caps_pick_guest_memory(hc, &backend, &pick_flags, &why);
        cJSON_AddStringToObject(vm, "backend", gmem_backend_to_string(backend));
        json_add_u64(vm, "flags", pick_flags);
        cJSON_AddStringToObject(vm, "reason", why);

        types = cJSON_AddArrayToObject(root, "vm_types");
        for (int t = 0; t < GMEM_VM_TYPES_MAX; t++) {
                cJSON *o;
                if (!(c->vm_types & (UINT64_C(1) << t)))
                        continue;
                o = cJSON_CreateObject();
                cJSON_AddNumberToObject(o, "type", t);
                cJSON_AddStringToObject(o, "name", vm_type_name(t));
                json_add_u64(o, "memory_attributes", c->memory_attributes[t]);
                cJSON_AddBoolToObject(o, "private_memory", c->memory_attributes[t] & KVM_MEMORY_ATTRIBUTE_PRIVATE);
                cJSON_AddItemToArray(types, o);
                any_private |= !!(c->memory_attributes[t] & KVM_MEMORY_ATTRIBUTE_PRIVATE);
        }

        conv = cJSON_AddObjectToObject(root, "conversion");
        cJSON_AddBoolToObject(conv, "memory_attributes", any_private);
        cJSON_AddBoolToObject(conv, "in_place", has(hc, GMEM_FEATURE_INPLACE_CONVERSION));

        secret = cJSON_AddObjectToObject(root, "memfd_secret");
        cJSON_AddBoolToObject(secret, "supported", c->memfd_secret);
        if (!c->memfd_secret)
                add_error(secret, c->memfd_secret_error);
        else if (c->kvm_error == 0)
                cJSON_AddBoolToObject(secret, "memslot", has(hc, GMEM_FEATURE_SECRET_MEMSLOT));

        huge = cJSON_AddArrayToObject(root, "hugetlb");
        for (unsigned i = 0; i < c->n_hugetlb; i++) {
                cJSON *o = cJSON_CreateObject();
                json_add_u64(o, "page_size", c->hugetlb[i].page_size);
                json_add_u64(o, "total_pages", c->hugetlb[i].total_pages);
                json_add_u64(o, "free_pages", c->hugetlb[i].free_pages);
                cJSON_AddItemToArray(huge, o);
        }
        cJSON_AddStringToObject(root, "thp", c->thp);
        cJSON_AddStringToObject(root, "shmem_thp", c->shmem_thp);

        kernel = cJSON_AddObjectToObject(root, "kernel");
        cJSON_AddStringToObject(kernel, "release", c->kernel_release);
        cJSON_AddStringToObject(kernel, "profile", gmem_kernel_profile_to_string(c->profile) ?: "unknown");
        cJSON_AddStringToObject(kernel, "profile_source",
                                c->profile_source == GMEM_PROFILE_EXPLICIT ? "explicit" : "detected");
        *ret_cjson = TAKE_PTR(root);
        return 0;
}

_public_ int gmem_host_caps_to_json(const struct gmem_host_caps *hc, char **ret_json) {
        _cleanup_json_ cJSON *root = NULL;
        void *o = NULL;
        char *s;
        int k;

        if (!ret_json)
                return gmem_error(-EINVAL, "caps to JSON: NULL argument");
        if ((k = gmem_host_caps_to_json_object(hc, &o)) < 0)
                return k;
        root = o;
        s = cJSON_PrintUnformatted(root);
        if (!s)
                return gmem_error(-ENOMEM, "caps to JSON");
        *ret_json = s;
        return 0;
}

/* ---- and back: what gmem_client_host_caps() reads. Members a daemon of another version does not
 * send stay 0; members of the wrong type are a protocol error. */

static const cJSON *member(const cJSON *o, const char *key) {
        return cJSON_GetObjectItemCaseSensitive(o, key);
}

static int get_bool(const cJSON *o, const char *key, bool *ret) {
        const cJSON *v = member(o, key);
        if (!v)
                return 0;
        if (!cJSON_IsBool(v))
                return gmem_error(-EPROTO, "caps: \"%s\" is not a boolean", key);
        *ret = cJSON_IsTrue(v);
        return 0;
}

/* an integer, or null for "none" (a flag bit this kernel does not have) */
static int get_u64(const cJSON *o, const char *key, uint64_t *ret) {
        const cJSON *v = member(o, key);
        if (!v || cJSON_IsNull(v))
                return 0;
        if (proto_number_to_u64(v, ret) < 0)
                return gmem_error(-EPROTO, "caps: \"%s\" is not a non-negative integer", key);
        return 0;
}

static int get_str(const cJSON *o, const char *key, char *buf, size_t size) {
        const cJSON *v = member(o, key);
        if (!v)
                return 0;
        if (!cJSON_IsString(v))
                return gmem_error(-EPROTO, "caps: \"%s\" is not a string", key);
        snprintf(buf, size, "%s", v->valuestring);
        return 0;
}

static void get_errno(const cJSON *o, int *ret) {
        const char *name = cJSON_GetStringValue(member(o, "errno"));
        int e = errno_from_name(name);
        *ret = e ? -e : -EIO; /* a daemon that said only "error" still said it failed */
}

static int get_feature(const cJSON *o, const char *key, enum gmem_feature f, uint32_t *features) {
        bool b = false;
        int k = get_bool(o, key, &b);
        if (k == 0 && b)
                *features |= UINT32_C(1) << f;
        return k;
}

int gmem_host_caps_from_json_object(const void *object, struct gmem_host_caps *ret) {
        const cJSON *root = object, *kvm, *g, *flags, *types, *conv, *secret, *huge, *kernel, *v;
        struct gmem_host_caps h = { .remote = true };
        struct gmem_caps *c = &h.v;
        bool usable = false, supported = false;
        uint64_t u;
        char word[32] = "";
        int k = 0;

        if (!cJSON_IsObject(root))
                return gmem_error(-EPROTO, "caps: not an object");
        kvm = member(root, "kvm");
        g = member(root, "guest_memfd");
        flags = member(g, "flags");
        conv = member(root, "conversion");
        secret = member(root, "memfd_secret");
        kernel = member(root, "kernel");

        if ((k = get_bool(kvm, "usable", &usable)) < 0 || (k = get_u64(kvm, "api_version", &u)) < 0)
                return k;
        c->kvm_api_version = (int) MIN(u, (uint64_t) INT32_MAX);
        if (!usable)
                get_errno(kvm, &c->kvm_error);
        if ((k = get_bool(kvm, "user_memory2", &c->user_memory2)) < 0 ||
            (k = get_bool(g, "supported", &c->guest_memfd)) < 0 ||
            (k = get_u64(g, "flags_mask", &c->guest_memfd_flags)) < 0 ||
            (k = get_u64(flags, "mmap", &c->flag_mmap)) < 0 ||
            (k = get_u64(flags, "init_shared", &c->flag_init_shared)) < 0 ||
            (k = get_u64(flags, "no_direct_map", &c->flag_no_direct_map)) < 0 ||
            (k = get_u64(flags, "write", &c->flag_write)) < 0 ||
            (k = get_u64(g, "unknown_flags", &c->flags_unknown)) < 0 ||
            (k = get_bool(g, "write_syscall", &c->gmem_write)) < 0 ||
            (k = get_feature(g, "default_vm", GMEM_FEATURE_GUEST_MEMFD_DEFAULT_VM, &h.features)) < 0 ||
            (k = get_feature(g, "numa_policy", GMEM_FEATURE_GUEST_MEMFD_NUMA_POLICY, &h.features)) < 0 ||
            (k = get_feature(member(g, "userfaultfd"), "missing", GMEM_FEATURE_GUEST_MEMFD_UFFD_MISSING, &h.features)) < 0 ||
            (k = get_feature(member(g, "userfaultfd"), "minor", GMEM_FEATURE_GUEST_MEMFD_UFFD_MINOR, &h.features)) < 0 ||
            (k = get_feature(conv, "in_place", GMEM_FEATURE_INPLACE_CONVERSION, &h.features)) < 0 ||
            (k = get_bool(secret, "supported", &supported)) < 0 ||
            (k = get_feature(secret, "memslot", GMEM_FEATURE_SECRET_MEMSLOT, &h.features)) < 0 ||
            (k = get_str(root, "thp", c->thp, sizeof(c->thp))) < 0 ||
            (k = get_str(root, "shmem_thp", c->shmem_thp, sizeof(c->shmem_thp))) < 0 ||
            (k = get_str(kernel, "release", c->kernel_release, sizeof(c->kernel_release))) < 0 ||
            (k = get_str(kernel, "profile", word, sizeof(word))) < 0)
                return k;
        c->inplace_conversion = h.features & (UINT32_C(1) << GMEM_FEATURE_INPLACE_CONVERSION);
        c->memfd_secret = supported;
        if (!supported)
                get_errno(secret, &c->memfd_secret_error);
        if (word[0] && gmem_kernel_profile_from_string(word, &c->profile) < 0)
                return gmem_error(-EPROTO, "caps: unknown kernel profile '%s'", word);
        word[0] = 0;
        if ((k = get_str(kernel, "profile_source", word, sizeof(word))) < 0)
                return k;
        c->profile_source = strcmp(word, "explicit") == 0 ? GMEM_PROFILE_EXPLICIT : GMEM_PROFILE_DETECTED;

        types = member(root, "vm_types");
        cJSON_ArrayForEach(v, types) {
                uint64_t t = 0, attrs = 0;
                if ((k = get_u64(v, "type", &t)) < 0 || (k = get_u64(v, "memory_attributes", &attrs)) < 0)
                        return k;
                if (t >= GMEM_VM_TYPES_MAX)
                        continue; /* a type this library has no room for */
                c->vm_types |= UINT64_C(1) << t;
                c->memory_attributes[t] = attrs;
        }
        huge = member(root, "hugetlb");
        cJSON_ArrayForEach(v, huge) {
                struct gmem_hugetlb_pool *p;
                if (c->n_hugetlb >= GMEM_HUGETLB_SIZES_MAX)
                        break;
                p = &c->hugetlb[c->n_hugetlb++];
                if ((k = get_u64(v, "page_size", &p->page_size)) < 0 ||
                    (k = get_u64(v, "total_pages", &p->total_pages)) < 0 ||
                    (k = get_u64(v, "free_pages", &p->free_pages)) < 0)
                        return k;
        }
        *ret = h;
        return 0;
}
