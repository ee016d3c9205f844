/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/utsname.h>

#include <cjson/cJSON.h>

#include "caps-internal.h"
#include "error.h"
#include "kvm-compat.h"
#include "sysops.h"

static const char *const profile_names[_GMEM_PROFILE_MAX] = {
        [GMEM_PROFILE_UPSTREAM] = "upstream",
        [GMEM_PROFILE_DIRECT_MAP_REMOVAL] = "direct-map-removal",
        [GMEM_PROFILE_WRITE] = "write",
        [GMEM_PROFILE_SECRET_HIDING] = "secret-hiding",
};

/* The bits each unmerged series gives its features. */
static const struct {
        uint64_t no_direct_map, write;
} profile_bits[_GMEM_PROFILE_MAX] = {
        [GMEM_PROFILE_UPSTREAM] = { 0, 0 },
        [GMEM_PROFILE_DIRECT_MAP_REMOVAL] = { UINT64_C(1) << 2, 0 },
        [GMEM_PROFILE_WRITE] = { 0, UINT64_C(1) << 2 },
        [GMEM_PROFILE_SECRET_HIDING] = { UINT64_C(1) << 2, UINT64_C(1) << 3 },
};

_public_ const char *gmem_kernel_profile_to_string(enum gmem_kernel_profile p) {
        return (unsigned) p < _GMEM_PROFILE_MAX ? profile_names[p] : NULL;
}

_public_ int gmem_kernel_profile_from_string(const char *s, enum gmem_kernel_profile *ret_profile) {
        if (!s || !ret_profile)
                return gmem_error(-EINVAL, "kernel profile: NULL argument");
        for (unsigned i = 0; i < _GMEM_PROFILE_MAX; i++)
                if (strcmp(s, profile_names[i]) == 0) {
                        *ret_profile = i;
                        return 0;
                }
        return gmem_error(-EINVAL, "unknown kernel profile '%s' (upstream, direct-map-removal, write, secret-hiding)", s);
}

static int create_gmem(int vm_fd, uint64_t size, uint64_t flags) {
        struct kvm_create_guest_memfd args = { .size = size, .flags = flags };
        return gmem_sys->ioctl(vm_fd, KVM_CREATE_GUEST_MEMFD, &args);
}

/* Does pwrite() of one page work on a guest_memfd created with these flags? */
static bool gmem_pwrite_works(int vm_fd, uint64_t flags) {
        uint64_t ps = page_size();
        _cleanup_close_ int fd = create_gmem(vm_fd, 2 * ps, flags);
        _cleanup_free_ void *page = calloc(1, ps);

        return fd >= 0 && page && pwrite(fd, page, ps, 0) == (ssize_t) ps;
}

/* Does the kernel refuse GUP (MADV_POPULATE_WRITE: EINVAL) on such a guest_memfd, as it does
 * for memory outside the direct map? */
static bool gmem_gup_refused(int vm_fd, uint64_t flags) {
        uint64_t ps = page_size();
        _cleanup_close_ int fd = create_gmem(vm_fd, 2 * ps, flags);
        bool refused;
        void *p;

        if (fd < 0)
                return false;
        p = mmap(NULL, 2 * ps, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED)
                return false;
        refused = madvise(p, ps, MADV_POPULATE_WRITE) < 0 && errno == EINVAL;
        munmap(p, 2 * ps);
        return refused;
}

/* Identify the bits of the flag mask that are not merged upstream, by what they do. */
static void detect_flags(int kvm_fd, struct gmem_flag_map *m) {
        uint64_t base = m->mask & (GMEM_GUEST_MEMFD_FLAG_MMAP | GMEM_GUEST_MEMFD_FLAG_INIT_SHARED);
        uint64_t rest = m->mask & ~base;
        _cleanup_close_ int vm_fd = -1;

        if (base != (GMEM_GUEST_MEMFD_FLAG_MMAP | GMEM_GUEST_MEMFD_FLAG_INIT_SHARED))
                base &= GMEM_GUEST_MEMFD_FLAG_MMAP;
        vm_fd = gmem_sys->ioctl(kvm_fd, KVM_CREATE_VM, (void *) (long) KVM_X86_DEFAULT_VM);
        if (vm_fd < 0) {
                m->flags_unknown = rest;
                return;
        }
        m->gmem_write = gmem_pwrite_works(vm_fd, base);
        while (rest) {
                uint64_t bit = rest & -rest;
                rest &= ~bit;
                if (!m->gmem_write && gmem_pwrite_works(vm_fd, base | bit)) {
                        m->flag_write = bit;
                        m->gmem_write = true;
                } else if (!m->flag_no_direct_map && (base & GMEM_GUEST_MEMFD_FLAG_MMAP) &&
                           gmem_gup_refused(vm_fd, base | bit))
                        m->flag_no_direct_map = bit;
                else
                        m->flags_unknown |= bit;
        }
        if (m->flag_no_direct_map && m->flag_write == UINT64_C(1) << 3)
                m->profile = GMEM_PROFILE_SECRET_HIDING;
        else if (m->flag_no_direct_map)
                m->profile = GMEM_PROFILE_DIRECT_MAP_REMOVAL;
        else if (m->flag_write)
                m->profile = GMEM_PROFILE_WRITE;
        else
                m->profile = GMEM_PROFILE_UPSTREAM;
}

static void apply_profile(int profile, struct gmem_flag_map *m) {
        m->profile = profile;
        m->explicit_profile = true;
        /* a profile names bits; the kernel's mask says whether they are really there */
        m->flag_no_direct_map = profile_bits[profile].no_direct_map & m->mask;
        m->flag_write = profile_bits[profile].write & m->mask;
        m->gmem_write = m->flag_write != 0;
        m->flags_unknown = m->mask & ~(GMEM_GUEST_MEMFD_FLAG_MMAP | GMEM_GUEST_MEMFD_FLAG_INIT_SHARED |
                                       m->flag_no_direct_map | m->flag_write);
}

static void flag_map_fill(int kvm_fd, int profile, struct gmem_flag_map *m) {
        int mask = gmem_kvm_check_extension(kvm_fd, KVM_CAP_GUEST_MEMFD_FLAGS);

        *m = (struct gmem_flag_map) { .mask = mask > 0 ? (uint64_t) mask : 0, .profile = GMEM_PROFILE_UPSTREAM };
        if (profile >= 0)
                apply_profile(profile, m);
        else
                detect_flags(kvm_fd, m);
}

static int env_profile(void) {
        enum gmem_kernel_profile p;
        const char *e = getenv("GMEM_KERNEL_PROFILE");
        return e && *e && gmem_kernel_profile_from_string(e, &p) >= 0 ? (int) p : -1;
}

static struct gmem_flag_map cached_map;
static pthread_once_t cached_map_once = PTHREAD_ONCE_INIT;

static void cached_map_init(void) {
        _cleanup_close_ int kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
        if (kvm_fd >= 0)
                flag_map_fill(kvm_fd, env_profile(), &cached_map);
}

const struct gmem_flag_map *gmem_flag_map_get(void) {
        pthread_once(&cached_map_once, cached_map_init);
        return &cached_map;
}

static void read_sysfs_word(const char *path, char *buf, size_t size) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        char line[256], *b, *e;
        ssize_t n;

        snprintf(buf, size, "unknown");
        if (fd < 0)
                return;
        n = read(fd, line, sizeof(line) - 1);
        if (n <= 0)
                return;
        line[n] = 0;
        /* "always [madvise] never": the bracketed word is the one in force */
        b = strchr(line, '[');
        e = b ? strchr(b, ']') : NULL;
        if (b && e) {
                *e = 0;
                b++;
        } else {
                line[strcspn(line, "\n")] = 0;
                b = line;
        }
        n = (ssize_t) MIN(strlen(b), size - 1);
        memcpy(buf, b, n);
        buf[n] = 0;
}

bool gmem_shmem_thp_advised(void) {
        char mode[16];
        read_sysfs_word("/sys/kernel/mm/transparent_hugepage/shmem_enabled", mode, sizeof(mode));
        return strcmp(mode, "advise") == 0 || strcmp(mode, "always") == 0 || strcmp(mode, "within_size") == 0;
}

static uint64_t read_sysfs_u64(const char *dir, const char *name) {
        char path[512], buf[32];
        _cleanup_close_ int fd = -1;
        ssize_t n;

        snprintf(path, sizeof(path), "%s/%s", dir, name);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return 0;
        n = read(fd, buf, sizeof(buf) - 1);
        if (n <= 0)
                return 0;
        buf[n] = 0;
        return strtoull(buf, NULL, 10);
}

static void probe_hugetlb(struct gmem_caps *c) {
        const char *base = "/sys/kernel/mm/hugepages";
        DIR *d = opendir(base);
        struct dirent *de;

        if (!d)
                return;
        while ((de = readdir(d)) && c->n_hugetlb < GMEM_HUGETLB_SIZES_MAX) {
                char dir[512];
                uint64_t kb;
                if (sscanf(de->d_name, "hugepages-%" SCNu64 "kB", &kb) != 1)
                        continue;
                snprintf(dir, sizeof(dir), "%s/%s", base, de->d_name);
                c->hugetlb[c->n_hugetlb++] = (struct gmem_hugetlb_pool) {
                        .page_size = kb * KiB,
                        .total_pages = read_sysfs_u64(dir, "nr_hugepages"),
                        .free_pages = read_sysfs_u64(dir, "free_hugepages"),
                };
        }
        closedir(d);
        /* smallest page size first, whatever order readdir gave */
        for (unsigned i = 1; i < c->n_hugetlb; i++)
                for (unsigned j = i; j > 0 && c->hugetlb[j - 1].page_size > c->hugetlb[j].page_size; j--) {
                        struct gmem_hugetlb_pool t = c->hugetlb[j];
                        c->hugetlb[j] = c->hugetlb[j - 1];
                        c->hugetlb[j - 1] = t;
                }
}

static void probe_vm_types(int kvm_fd, struct gmem_caps *c) {
        int types = gmem_kvm_check_extension(kvm_fd, KVM_CAP_VM_TYPES);

        /* without KVM_CAP_VM_TYPES only the default type exists */
        c->vm_types = types > 0 ? (uint64_t) types : 1;
        for (int t = 0; t < GMEM_VM_TYPES_MAX; t++) {
                _cleanup_close_ int vm_fd = -1;
                int attrs;
                if (!(c->vm_types & (UINT64_C(1) << t)))
                        continue;
                vm_fd = gmem_sys->ioctl(kvm_fd, KVM_CREATE_VM, (void *) (long) t);
                if (vm_fd < 0) {
                        c->vm_types &= ~(UINT64_C(1) << t);
                        continue;
                }
                attrs = gmem_kvm_check_extension(vm_fd, KVM_CAP_MEMORY_ATTRIBUTES);
                c->memory_attributes[t] = attrs > 0 ? (uint64_t) attrs : 0;
        }
}

_public_ int gmem_caps_probe_profile(int profile, struct gmem_caps *ret_caps) {
        _cleanup_close_ int kvm_fd = -1;
        struct gmem_flag_map m = { 0 };
        struct gmem_caps c = { 0 };
        struct utsname u;
        int fd;

        if (!ret_caps)
                return gmem_error(-EINVAL, "caps: NULL result");
        if (profile < -1 || profile >= _GMEM_PROFILE_MAX)
                return gmem_error(-EINVAL, "caps: invalid kernel profile %d", profile);

        if (uname(&u) == 0)
                snprintf(c.kernel_release, sizeof(c.kernel_release), "%s", u.release);
        read_sysfs_word("/sys/kernel/mm/transparent_hugepage/enabled", c.thp, sizeof(c.thp));
        read_sysfs_word("/sys/kernel/mm/transparent_hugepage/shmem_enabled", c.shmem_thp, sizeof(c.shmem_thp));
        probe_hugetlb(&c);

        fd = syscall(SYS_memfd_secret, O_CLOEXEC);
        c.memfd_secret = fd >= 0;
        c.memfd_secret_error = fd >= 0 ? 0 : negative_errno();
        if (fd >= 0)
                close(fd);

        kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
        if (kvm_fd < 0)
                c.kvm_error = negative_errno();
        else {
                c.kvm_api_version = gmem_sys->ioctl(kvm_fd, KVM_GET_API_VERSION, NULL);
                if (c.kvm_api_version != KVM_API_VERSION)
                        c.kvm_error = -ENOTSUP;
        }
        if (c.kvm_error == 0) {
                c.guest_memfd = gmem_kvm_check_extension(kvm_fd, KVM_CAP_GUEST_MEMFD) > 0;
                c.user_memory2 = gmem_kvm_check_extension(kvm_fd, KVM_CAP_USER_MEMORY2) > 0;
                probe_vm_types(kvm_fd, &c);
                if (c.guest_memfd)
                        flag_map_fill(kvm_fd, profile, &m);
                else if (profile >= 0)
                        apply_profile(profile, &m);
        }

        c.guest_memfd_flags = m.mask;
        c.flag_mmap = m.mask & GMEM_GUEST_MEMFD_FLAG_MMAP;
        c.flag_init_shared = m.mask & GMEM_GUEST_MEMFD_FLAG_INIT_SHARED;
        c.flag_no_direct_map = m.flag_no_direct_map;
        c.flag_write = m.flag_write;
        c.flags_unknown = m.flags_unknown;
        c.gmem_write = m.gmem_write;
        /* found by behaviour (features.c), never from a profile or a capability number */
        c.inplace_conversion = c.kvm_error == 0 && gmem_kernel_has(GMEM_FEATURE_INPLACE_CONVERSION) > 0;
        c.profile = m.profile;
        c.profile_source = m.explicit_profile ? GMEM_PROFILE_EXPLICIT : GMEM_PROFILE_DETECTED;

        *ret_caps = c;
        return 0;
}

_public_ int gmem_caps_probe(struct gmem_caps *ret_caps) {
        const char *e = getenv("GMEM_KERNEL_PROFILE");
        enum gmem_kernel_profile p;

        if (e && *e && gmem_kernel_profile_from_string(e, &p) < 0)
                return gmem_error(-EINVAL, "GMEM_KERNEL_PROFILE='%s' is not a kernel profile (upstream, "
                                  "direct-map-removal, write, secret-hiding)", e);
        return gmem_caps_probe_profile(env_profile(), ret_caps);
}

_public_ uint64_t gmem_caps_best_guest_memfd_flags(const struct gmem_caps *caps) {
        if (!caps || !caps->guest_memfd)
                return 0;
        return caps->flag_mmap | (caps->flag_mmap ? caps->flag_init_shared : 0) |
               (caps->flag_mmap ? caps->flag_no_direct_map : 0);
}

_public_ int gmem_caps_pick_guest_memory(const struct gmem_caps *caps, enum gmem_backend *ret_backend,
                                        uint64_t *ret_flags, const char **ret_reason) {
        const char *why = NULL;
        uint64_t flags = gmem_caps_best_guest_memfd_flags(caps);

        if (!caps || !ret_backend || !ret_flags)
                return gmem_error(-EINVAL, "pick guest memory: NULL argument");
        if (caps->kvm_error)
                why = "/dev/kvm is not usable here";
        else if (!caps->guest_memfd)
                why = "this kernel has no guest_memfd (KVM_CAP_GUEST_MEMFD is 0)";
        else if (gmem_kernel_has(GMEM_FEATURE_GUEST_MEMFD_DEFAULT_VM) <= 0)
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

static const char *vm_type_name(int t) {
        static const char *const names[] = { "default", "sw_protected", "sev", "sev_es", "snp", "tdx" };
        return t < (int) ELEMENTSOF(names) ? names[t] : "unknown";
}

static cJSON *flag_json(uint64_t bit) {
        return bit ? cJSON_CreateNumber((double) bit) : cJSON_CreateNull();
}

_public_ int gmem_caps_to_json(const struct gmem_caps *c, char **ret_json) {
        cJSON *root, *kvm, *g, *flags, *types, *conv, *secret, *huge, *kernel;
        char *s;
        bool any_private = false;

        if (!c || !ret_json)
                return gmem_error(-EINVAL, "caps to JSON: NULL argument");
        root = cJSON_CreateObject();
        if (!root)
                return gmem_error(-ENOMEM, "caps to JSON");

        kvm = cJSON_AddObjectToObject(root, "kvm");
        cJSON_AddBoolToObject(kvm, "usable", c->kvm_error == 0);
        cJSON_AddNumberToObject(kvm, "api_version", c->kvm_api_version);
        if (c->kvm_error)
                cJSON_AddStringToObject(kvm, "error", strerror(-c->kvm_error));
        cJSON_AddBoolToObject(kvm, "user_memory2", c->user_memory2);

        g = cJSON_AddObjectToObject(root, "guest_memfd");
        cJSON_AddBoolToObject(g, "supported", c->guest_memfd);
        cJSON_AddNumberToObject(g, "flags_mask", (double) c->guest_memfd_flags);
        flags = cJSON_AddObjectToObject(g, "flags");
        cJSON_AddItemToObject(flags, "mmap", flag_json(c->flag_mmap));
        cJSON_AddItemToObject(flags, "init_shared", flag_json(c->flag_init_shared));
        cJSON_AddItemToObject(flags, "no_direct_map", flag_json(c->flag_no_direct_map));
        cJSON_AddItemToObject(flags, "write", flag_json(c->flag_write));
        cJSON_AddNumberToObject(g, "unknown_flags", (double) c->flags_unknown);
        cJSON_AddBoolToObject(g, "write_syscall", c->gmem_write);
        cJSON_AddNumberToObject(g, "best_flags", (double) gmem_caps_best_guest_memfd_flags(c));
        if (c->kvm_error == 0) {
                cJSON *uffd;
                cJSON_AddBoolToObject(g, "default_vm", gmem_kernel_has(GMEM_FEATURE_GUEST_MEMFD_DEFAULT_VM) > 0);
                cJSON_AddBoolToObject(g, "numa_policy", gmem_kernel_has(GMEM_FEATURE_GUEST_MEMFD_NUMA_POLICY) > 0);
                uffd = cJSON_AddObjectToObject(g, "userfaultfd");
                cJSON_AddBoolToObject(uffd, "missing", gmem_kernel_has(GMEM_FEATURE_GUEST_MEMFD_UFFD_MISSING) > 0);
                cJSON_AddBoolToObject(uffd, "minor", gmem_kernel_has(GMEM_FEATURE_GUEST_MEMFD_UFFD_MINOR) > 0);
        }

        {
                enum gmem_backend backend;
                uint64_t pick_flags;
                const char *why;
                cJSON *vm = cJSON_AddObjectToObject(root, "guest_memory");
                (void) gmem_caps_pick_guest_memory(c, &backend, &pick_flags, &why);
                cJSON_AddStringToObject(vm, "backend", gmem_backend_to_string(backend));
                cJSON_AddNumberToObject(vm, "flags", (double) pick_flags);
                cJSON_AddStringToObject(vm, "reason", why);
        }

        types = cJSON_AddArrayToObject(root, "vm_types");
        for (int t = 0; t < GMEM_VM_TYPES_MAX; t++) {
                cJSON *o;
                if (!(c->vm_types & (UINT64_C(1) << t)))
                        continue;
                o = cJSON_CreateObject();
                cJSON_AddNumberToObject(o, "type", t);
                cJSON_AddStringToObject(o, "name", vm_type_name(t));
                cJSON_AddNumberToObject(o, "memory_attributes", (double) c->memory_attributes[t]);
                cJSON_AddBoolToObject(o, "private_memory", c->memory_attributes[t] & KVM_MEMORY_ATTRIBUTE_PRIVATE);
                cJSON_AddItemToArray(types, o);
                any_private |= !!(c->memory_attributes[t] & KVM_MEMORY_ATTRIBUTE_PRIVATE);
        }

        conv = cJSON_AddObjectToObject(root, "conversion");
        cJSON_AddBoolToObject(conv, "memory_attributes", any_private);
        cJSON_AddBoolToObject(conv, "in_place", c->inplace_conversion);

        secret = cJSON_AddObjectToObject(root, "memfd_secret");
        cJSON_AddBoolToObject(secret, "supported", c->memfd_secret);
        if (!c->memfd_secret)
                cJSON_AddStringToObject(secret, "error", strerror(-c->memfd_secret_error));
        else if (c->kvm_error == 0)
                cJSON_AddBoolToObject(secret, "memslot", gmem_kernel_has(GMEM_FEATURE_SECRET_MEMSLOT) > 0);

        huge = cJSON_AddArrayToObject(root, "hugetlb");
        for (unsigned i = 0; i < c->n_hugetlb; i++) {
                cJSON *o = cJSON_CreateObject();
                cJSON_AddNumberToObject(o, "page_size", (double) c->hugetlb[i].page_size);
                cJSON_AddNumberToObject(o, "total_pages", (double) c->hugetlb[i].total_pages);
                cJSON_AddNumberToObject(o, "free_pages", (double) c->hugetlb[i].free_pages);
                cJSON_AddItemToArray(huge, o);
        }
        cJSON_AddStringToObject(root, "thp", c->thp);
        cJSON_AddStringToObject(root, "shmem_thp", c->shmem_thp);

        kernel = cJSON_AddObjectToObject(root, "kernel");
        cJSON_AddStringToObject(kernel, "release", c->kernel_release);
        cJSON_AddStringToObject(kernel, "profile", gmem_kernel_profile_to_string(c->profile) ?: "unknown");
        cJSON_AddStringToObject(kernel, "profile_source",
                                c->profile_source == GMEM_PROFILE_EXPLICIT ? "explicit" : "detected");

        s = cJSON_PrintUnformatted(root);
        cJSON_Delete(root);
        if (!s)
                return gmem_error(-ENOMEM, "caps to JSON");
        *ret_json = s;
        return 0;
}
