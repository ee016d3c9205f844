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

#include "caps-internal.h"
#include "enum-count.h"
#include "error.h"
#include "kvm-compat.h"
#include "sysops.h"

static const char *const profile_names[GMEM_PROFILE_COUNT] = {
        [GMEM_PROFILE_UPSTREAM] = "upstream",
        [GMEM_PROFILE_DIRECT_MAP_REMOVAL] = "direct-map-removal",
        [GMEM_PROFILE_WRITE] = "write",
        [GMEM_PROFILE_SECRET_HIDING] = "secret-hiding",
};

/* The bits each unmerged series gives its features. */
static const struct {
        uint64_t no_direct_map, write;
} profile_bits[GMEM_PROFILE_COUNT] = {
        [GMEM_PROFILE_UPSTREAM] = { 0, 0 },
        [GMEM_PROFILE_DIRECT_MAP_REMOVAL] = { UINT64_C(1) << 2, 0 },
        [GMEM_PROFILE_WRITE] = { 0, UINT64_C(1) << 2 },
        [GMEM_PROFILE_SECRET_HIDING] = { UINT64_C(1) << 2, UINT64_C(1) << 3 },
};

_public_ const char *gmem_kernel_profile_to_string(enum gmem_kernel_profile p) {
        return (unsigned) p < GMEM_PROFILE_COUNT ? profile_names[p] : NULL;
}

_public_ int gmem_kernel_profile_from_string(const char *s, enum gmem_kernel_profile *ret_profile) {
        if (!s || !ret_profile)
                return gmem_error(-EINVAL, "kernel profile: NULL argument");
        for (unsigned i = 0; i < GMEM_PROFILE_COUNT; i++)
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

_public_ int gmem_kernel_profile_from_env(int *ret_profile) {
        enum gmem_kernel_profile p;
        const char *e;

        if (!ret_profile)
                return gmem_error(-EINVAL, "kernel profile from the environment: NULL result");
        e = getenv("GMEM_KERNEL_PROFILE");
        if (!e || !*e) {
                *ret_profile = GMEM_PROFILE_DETECT;
                return 0;
        }
        if (gmem_kernel_profile_from_string(e, &p) < 0)
                return gmem_error(-EINVAL, "GMEM_KERNEL_PROFILE='%.40s' is not a kernel profile (upstream, "
                                  "direct-map-removal, write, secret-hiding)", e);
        *ret_profile = (int) p;
        return 0;
}

static struct gmem_flag_map cached_map;
static pthread_once_t cached_map_once = PTHREAD_ONCE_INIT;

static void cached_map_init(void) {
        _cleanup_close_ int kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
        if (kvm_fd >= 0)
                flag_map_fill(kvm_fd, GMEM_PROFILE_DETECT, &cached_map);
}

const struct gmem_flag_map *gmem_flag_map_get(void) {
        pthread_once(&cached_map_once, cached_map_init);
        return &cached_map;
}

void gmem_flag_map_of(const struct gmem_host_caps *caps, struct gmem_flag_map *ret) {
        if (!caps) {
                *ret = *gmem_flag_map_get();
                return;
        }
        *ret = (struct gmem_flag_map) {
                .mask = caps->v.guest_memfd_flags,
                .flag_no_direct_map = caps->v.flag_no_direct_map,
                .flag_write = caps->v.flag_write,
                .flags_unknown = caps->v.flags_unknown,
                .gmem_write = caps->v.gmem_write,
                .profile = caps->v.profile,
                .explicit_profile = caps->v.profile_source == GMEM_PROFILE_EXPLICIT,
        };
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

_public_ int gmem_host_caps_refresh(struct gmem_host_caps *c) {
        if (!c)
                return gmem_error(-EINVAL, "caps refresh: NULL caps");
        read_sysfs_word("/sys/kernel/mm/transparent_hugepage/enabled", c->v.thp, sizeof(c->v.thp));
        read_sysfs_word("/sys/kernel/mm/transparent_hugepage/shmem_enabled", c->v.shmem_thp, sizeof(c->v.shmem_thp));
        c->v.n_hugetlb = 0;
        probe_hugetlb(&c->v);
        return 0;
}

int gmem_caps_probe_into(int profile, struct gmem_host_caps *ret) {
        _cleanup_close_ int kvm_fd = -1;
        struct gmem_flag_map m = { 0 };
        struct gmem_caps c = { 0 };
        struct utsname u;
        int fd;

        if (!ret)
                return gmem_error(-EINVAL, "caps: NULL result");
        if (profile < GMEM_PROFILE_DETECT || profile >= GMEM_PROFILE_COUNT)
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
        /* c.inplace_conversion: the 0.1 struct's alone (host-caps.c); features are asked when wanted */
        c.profile = m.profile;
        c.profile_source = m.explicit_profile ? GMEM_PROFILE_EXPLICIT : GMEM_PROFILE_DETECTED;

        *ret = (struct gmem_host_caps) { .v = c };
        return 0;
}

