/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/vfs.h>

#include "caps-internal.h"
#include "enum-count.h"
#include "error.h"
#include "kvm-compat.h"
#include "io.h"
#include "region.h"
#include "residency.h"
#include "sysops.h"

#ifndef GUEST_MEMFD_MAGIC
#define GUEST_MEMFD_MAGIC 0x474d454d /* "GMEM": guest_memfd's own file system, from Linux 7.0 */
#endif
#ifndef ANON_INODE_FS_MAGIC
#define ANON_INODE_FS_MAGIC 0x09041934
#endif
#ifndef SECRETMEM_MAGIC
#define SECRETMEM_MAGIC 0x5345434d
#endif
#ifndef HUGETLBFS_MAGIC
#define HUGETLBFS_MAGIC 0x958458f6
#endif
#ifndef TMPFS_MAGIC
#define TMPFS_MAGIC 0x01021994
#endif
#ifndef MFD_HUGE_SHIFT
#define MFD_HUGE_SHIFT 26
#endif

/* Pages whose residency one mincore() call asks for. */
#define RESIDENT_BATCH_PAGES 65536

/* Above this a size is a typo, not a guest: 16 TiB. */
#define REGION_SIZE_MAX (UINT64_C(16) << 40)

static int region_alloc(enum gmem_backend backend, int fd, uint64_t size, uint64_t psize,
                        struct gmem_region **ret) {
        struct gmem_region *r = calloc(1, sizeof(*r));
        if (!r)
                return gmem_error(-ENOMEM, "allocate region");
        r->backend = backend;
        r->fd = fd;
        r->size = size;
        r->page_size = psize;
        r->mappable = true;
        pthread_mutex_init(&r->lock, NULL);
        *ret = r;
        return 0;
}

static int check_new_size(const char *what, uint64_t size, uint64_t psize) {
        if (size == 0)
                return gmem_error(-EINVAL, "%s: size 0", what);
        if (size > REGION_SIZE_MAX)
                return gmem_error(-EFBIG, "%s: size %" PRIu64 " above the limit of %" PRIu64, what, size,
                                  REGION_SIZE_MAX);
        if (size % psize)
                return gmem_error(-EINVAL, "%s: size %" PRIu64 " is not a multiple of the page size %" PRIu64,
                                  what, size, psize);
        return 0;
}

/* Flags the kernel does not offer: the merged ones by name (a kernel that predates them is not
 * wrong, just old: -EOPNOTSUPP), other bits as invalid (-EINVAL). */
static int check_guest_memfd_flags(const char *what, uint64_t flags, uint64_t mask) {
        static const struct {
                uint64_t bit;
                const char *name, *since;
        } merged[] = {
                { GMEM_GUEST_MEMFD_FLAG_MMAP, "MMAP", "host mappings of guest_memfd came with Linux 6.18" },
                { GMEM_GUEST_MEMFD_FLAG_INIT_SHARED, "INIT_SHARED", "shared-at-creation guest_memfd came with Linux 6.18" },
        };
        uint64_t known = GMEM_GUEST_MEMFD_FLAG_MMAP | GMEM_GUEST_MEMFD_FLAG_INIT_SHARED;

        if (flags & ~mask & ~known)
                return gmem_error(-EINVAL, "%s: flags 0x%" PRIx64 " not supported by this kernel (supported 0x%" PRIx64 ")",
                                  what, flags & ~mask & ~known, mask);
        for (size_t i = 0; i < ELEMENTSOF(merged); i++)
                if ((flags & merged[i].bit) && !(mask & merged[i].bit))
                        return gmem_error(-EOPNOTSUPP, "%s: this kernel's guest_memfd has no %s flag (0x%" PRIx64
                                          "; flags offered 0x%" PRIx64 "): %s", what, merged[i].name, merged[i].bit,
                                          mask, merged[i].since);
        if ((flags & GMEM_GUEST_MEMFD_FLAG_INIT_SHARED) && !(flags & GMEM_GUEST_MEMFD_FLAG_MMAP))
                return gmem_error(-EINVAL, "%s: INIT_SHARED needs MMAP", what);
        return 0;
}

_public_ int gmem_region_new_guest_memfd_caps(const struct gmem_host_caps *caps, int vm_fd, uint64_t size,
                                             uint64_t flags, struct gmem_region **ret) {
        struct kvm_create_guest_memfd args = { .size = size, .flags = flags };
        struct gmem_flag_map fm;
        struct gmem_region *r = NULL;
        int mask, fd, k;

        if (vm_fd < 0 || !ret)
                return gmem_error(-EINVAL, "create guest_memfd: invalid VM fd or NULL result");
        k = check_new_size("create guest_memfd", size, page_size());
        if (k < 0)
                return k;

        k = gmem_kvm_check_extension(vm_fd, KVM_CAP_GUEST_MEMFD);
        if (k < 0)
                return gmem_error(k, "KVM_CHECK_EXTENSION(KVM_CAP_GUEST_MEMFD) on fd %d", vm_fd);
        if (k == 0)
                return gmem_error(-EOPNOTSUPP, "create guest_memfd: KVM offers no guest_memfd for this VM "
                                  "(KVM_CAP_GUEST_MEMFD is 0: guest_memfd came with Linux 6.8, for VMs of the "
                                  "default type with 6.18); use a memfd region");
        mask = gmem_kvm_check_extension(vm_fd, KVM_CAP_GUEST_MEMFD_FLAGS);
        if (mask < 0)
                return gmem_error(mask, "KVM_CHECK_EXTENSION(KVM_CAP_GUEST_MEMFD_FLAGS) on fd %d", vm_fd);
        k = check_guest_memfd_flags("create guest_memfd", flags, (uint64_t) mask);
        if (k < 0)
                return k;

        fd = gmem_sys->ioctl(vm_fd, KVM_CREATE_GUEST_MEMFD, &args);
        if (fd < 0)
                return gmem_error(negative_errno(), "KVM_CREATE_GUEST_MEMFD size %" PRIu64 " flags 0x%" PRIx64
                                  " on VM fd %d", size, flags, vm_fd);
        /* KVM takes no O_CLOEXEC: guest memory must not leak into programs the VMM runs */
        if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
                k = negative_errno();
                close(fd);
                return gmem_error(k, "set FD_CLOEXEC on guest_memfd");
        }
        k = region_alloc(GMEM_BACKEND_GUEST_MEMFD, fd, size, page_size(), &r);
        if (k < 0) {
                close(fd);
                return k;
        }
        r->flags = flags;
        r->mappable = flags & GMEM_GUEST_MEMFD_FLAG_MMAP;
        gmem_flag_map_of(caps, &fm);
        r->write_syscall = fm.gmem_write && (!fm.flag_write || (flags & fm.flag_write));
        if (!(flags & GMEM_GUEST_MEMFD_FLAG_INIT_SHARED)) {
                /* everything starts private: the host must not fault it (SIGBUS) */
                k = rangeset_add(&r->private, 0, size);
                if (k < 0) {
                        gmem_region_free(r);
                        return gmem_error(k, "create guest_memfd: private range bookkeeping");
                }
        }
        if (r->mappable) {
                void *addr;
                k = gmem_region_map(r, &addr);
                if (k < 0) {
                        gmem_region_free(r);
                        return k;
                }
        }
        *ret = r;
        return 0;
}

_public_ int gmem_region_new_guest_memfd(int vm_fd, uint64_t size, uint64_t flags, struct gmem_region **ret) {
        return gmem_region_new_guest_memfd_caps(NULL, vm_fd, size, flags, ret);
}

static int hugetlb_pool(uint64_t psize, uint64_t *ret_free) {
        char path[128], buf[32];
        _cleanup_close_ int fd = -1;
        ssize_t n;

        snprintf(path, sizeof(path), "/sys/kernel/mm/hugepages/hugepages-%" PRIu64 "kB/free_hugepages", psize / KiB);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return gmem_error(-EOPNOTSUPP, "no %" PRIu64 " KiB huge pages on this kernel (%s)", psize / KiB, path);
        n = read(fd, buf, sizeof(buf) - 1);
        if (n <= 0)
                return gmem_error(-EIO, "read %s", path);
        buf[n] = 0;
        *ret_free = strtoull(buf, NULL, 10);
        return 0;
}

static int new_memfd_family(enum gmem_backend backend, uint64_t psize, uint64_t size, struct gmem_region **ret) {
        const char *what = gmem_backend_to_string(backend);
        _cleanup_close_ int fd = -1;
        struct gmem_region *r = NULL;
        int k;

        k = check_new_size(what, size, psize);
        if (k < 0)
                return k;

        switch (backend) {
        case GMEM_BACKEND_MEMFD:
                fd = memfd_create("gmem", MFD_CLOEXEC | MFD_ALLOW_SEALING);
                break;
        case GMEM_BACKEND_HUGETLB: {
                uint64_t free_pages = 0;
                k = hugetlb_pool(psize, &free_pages);
                if (k < 0)
                        return k;
                if (free_pages < size / psize)
                        return gmem_error(-ENOMEM, "hugetlb: %" PRIu64 " free %" PRIu64 " KiB pages, %" PRIu64
                                          " needed (reserve them in /sys/kernel/mm/hugepages/hugepages-%" PRIu64
                                          "kB/nr_hugepages)", free_pages, psize / KiB, size / psize, psize / KiB);
                fd = memfd_create("gmem", MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_HUGETLB |
                                  ((unsigned) __builtin_ctzll(psize) << MFD_HUGE_SHIFT));
                break;
        }
        case GMEM_BACKEND_SECRET:
                k = region_check_memlock("memfd_secret", size);
                if (k < 0)
                        return k;
                fd = syscall(SYS_memfd_secret, O_CLOEXEC);
                if (fd < 0)
                        return gmem_error(negative_errno(), "memfd_secret (boot with secretmem.enable=1 on kernels "
                                          "older than 6.5)");
                break;
        default:
                return gmem_error(-EINVAL, "new memfd region: backend %d is not of the memfd family", backend);
        }
        if (fd < 0)
                return gmem_error(negative_errno(), "memfd_create (%s)", what);
        if (ftruncate(fd, (off_t) size) < 0)
                return gmem_error(negative_errno(), "ftruncate %s to %" PRIu64, what, size);
        /* Seal the size: a holder that shrank the file would turn every other holder's access
         * beyond the new end into SIGBUS. secretmem's size is fixed after the first ftruncate. */
        if (backend != GMEM_BACKEND_SECRET && fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) < 0)
                return gmem_error(negative_errno(), "seal %s size", what);

        k = region_alloc(backend, fd, size, psize, &r);
        if (k < 0)
                return k;
        r->write_syscall = backend == GMEM_BACKEND_MEMFD;
        TAKE_FD(fd);
        *ret = r;
        return 0;
}

_public_ int gmem_region_new_memfd(enum gmem_backend backend, uint64_t size, struct gmem_region **ret) {
        if (!ret)
                return gmem_error(-EINVAL, "new memfd region: NULL result");
        if (backend == GMEM_BACKEND_GUEST_MEMFD)
                return gmem_error(-EINVAL, "new memfd region: guest_memfd needs a VM: use gmem_region_new_guest_memfd()");
        if ((unsigned) backend >= GMEM_BACKEND_COUNT)
                return gmem_error(-EINVAL, "new memfd region: invalid backend %d", backend);
        return new_memfd_family(backend, backend == GMEM_BACKEND_HUGETLB ? 2 * MiB : page_size(), size, ret);
}

_public_ int gmem_region_new_hugetlb(uint64_t psize, uint64_t size, struct gmem_region **ret) {
        if (!ret)
                return gmem_error(-EINVAL, "new hugetlb region: NULL result");
        if (psize != 2 * MiB && psize != GiB)
                return gmem_error(-EINVAL, "new hugetlb region: page size %" PRIu64 " (2M or 1G)", psize);
        return new_memfd_family(GMEM_BACKEND_HUGETLB, psize, size, ret);
}

/* The name KVM gives every guest_memfd is "[kvm-gmem]" on every kernel; how /proc shows it changed
 * when guest_memfd got inodes of its own (7.0, and the secret-hiding series): "anon_inode:[kvm-gmem]"
 * before, "/[kvm-gmem] (deleted)" after. */
static bool is_kvm_gmem_name(const char *target) {
        return streq(target, "anon_inode:[kvm-gmem]") || streq(target, "/[kvm-gmem] (deleted)") ||
               streq(target, "/[kvm-gmem]");
}

/* What kind of memory file fd is: one of ours, or -EBADFD with a message saying what it is. */
static int detect_backend(int fd, enum gmem_backend *ret_backend, uint64_t *ret_size, uint64_t *ret_psize) {
        char link[64], target[PATH_MAX];
        struct statfs sfs;
        struct stat st;
        ssize_t n;

        if (fstat(fd, &st) < 0)
                return gmem_error(negative_errno(), "adopt: fstat fd %d", fd);
        if (!S_ISREG(st.st_mode)) {
                const char *kind = S_ISFIFO(st.st_mode) ? "a pipe" : S_ISSOCK(st.st_mode) ? "a socket" :
                                   S_ISDIR(st.st_mode) ? "a directory" : S_ISCHR(st.st_mode) ? "a character device" :
                                   S_ISBLK(st.st_mode) ? "a block device" : "not a regular file";
                return gmem_error(-EBADFD, "adopt: fd %d is %s, not a guest_memfd, memfd or memfd_secret", fd, kind);
        }
        if (fstatfs(fd, &sfs) < 0)
                return gmem_error(negative_errno(), "adopt: fstatfs fd %d", fd);
        snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
        n = readlink(link, target, sizeof(target) - 1);
        if (n < 0)
                return gmem_error(negative_errno(), "adopt: readlink %s", link);
        target[n] = 0;

        *ret_psize = page_size();
        switch ((unsigned long) sfs.f_type) {
        case ANON_INODE_FS_MAGIC:
                /* an anonymous inode is any of a dozen kinds: only KVM names one [kvm-gmem] */
                if (!is_kvm_gmem_name(target))
                        break;
                _fallthrough_;
        case GUEST_MEMFD_MAGIC:
                *ret_backend = GMEM_BACKEND_GUEST_MEMFD;
                *ret_size = st.st_size;
                return 0;
        case SECRETMEM_MAGIC:
                *ret_backend = GMEM_BACKEND_SECRET;
                *ret_size = st.st_size;
                return 0;
        case HUGETLBFS_MAGIC:
                if (strncmp(target, "/memfd:", 7) != 0)
                        break;
                *ret_backend = GMEM_BACKEND_HUGETLB;
                *ret_size = st.st_size;
                *ret_psize = sfs.f_bsize;
                return 0;
        case TMPFS_MAGIC:
                if (strncmp(target, "/memfd:", 7) != 0)
                        break;
                *ret_backend = GMEM_BACKEND_MEMFD;
                *ret_size = st.st_size;
                return 0;
        }
        return gmem_error(-EBADFD, "adopt: fd %d (%s) is not a guest_memfd, memfd or memfd_secret", fd, target);
}

static int adopt(const struct gmem_host_caps *caps, int fd, bool flags_known, uint64_t flags,
                 struct gmem_region **ret) {
        struct gmem_flag_map fm;
        enum gmem_backend backend;
        uint64_t size, psize;
        struct gmem_region *r = NULL;
        int k;

        if (fd < 0 || !ret)
                return gmem_error(-EINVAL, "adopt: invalid fd or NULL result");
        gmem_flag_map_of(caps, &fm);
        k = detect_backend(fd, &backend, &size, &psize);
        if (k < 0)
                return k;
        k = fcntl(fd, F_GETFL);
        if (k < 0)
                return gmem_error(negative_errno(), "adopt: fcntl fd %d", fd);
        if ((k & O_ACCMODE) != O_RDWR)
                return gmem_error(-EBADF, "adopt: fd %d is not open for reading and writing", fd);
        if (flags_known && backend != GMEM_BACKEND_GUEST_MEMFD)
                return gmem_error(-EBADFD, "adopt: fd %d is a %s, not a guest_memfd", fd, gmem_backend_to_string(backend));
        if (flags_known && (k = check_guest_memfd_flags("adopt guest_memfd", flags, fm.mask)) < 0)
                return k;
        if (size == 0 || size % psize)
                return gmem_error(-EINVAL, "adopt: fd %d has size %" PRIu64 ", not a positive multiple of %" PRIu64,
                                  fd, size, psize);
        if (backend == GMEM_BACKEND_MEMFD || backend == GMEM_BACKEND_HUGETLB) {
                /* Seal the size where the creator allowed sealing (MFD_ALLOW_SEALING); where it did not,
                 * the creator can still shrink the file and a holder touching the lost end gets SIGBUS. */
                (void) fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW);
        }

        k = region_alloc(backend, fd, size, psize, &r);
        if (k < 0)
                return k;
        r->write_syscall = backend == GMEM_BACKEND_MEMFD;
        if (backend == GMEM_BACKEND_GUEST_MEMFD) {
                if (flags_known) {
                        r->flags = flags;
                        r->mappable = flags & GMEM_GUEST_MEMFD_FLAG_MMAP;
                        if (!(flags & GMEM_GUEST_MEMFD_FLAG_INIT_SHARED) && rangeset_add(&r->private, 0, size) < 0) {
                                r->fd = -1;
                                gmem_region_free(r);
                                return gmem_error(-ENOMEM, "adopt: private range bookkeeping");
                        }
                } else {
                        /* Mappable is what mmap says; shared-ness is left to the kernel, which refuses
                         * private pages with EFAULT on every path libgmem writes through. */
                        void *p = mmap(NULL, psize, PROT_READ, MAP_SHARED, fd, 0);
                        r->mappable = p != MAP_FAILED;
                        if (p != MAP_FAILED)
                                munmap(p, psize);
                        r->flags = r->mappable ? GMEM_GUEST_MEMFD_FLAG_MMAP : 0;
                }
                /* where write() needs a creation flag (the secret-hiding series: ENODEV without it),
                 * unknown flags mean no write(): the mapping is the way in */
                r->write_syscall = fm.gmem_write && (!fm.flag_write || (flags_known && (flags & fm.flag_write)));
        }
        *ret = r;
        return 0;
}

_public_ int gmem_region_adopt(int fd, struct gmem_region **ret) {
        return adopt(NULL, fd, false, 0, ret);
}

_public_ int gmem_region_adopt_guest_memfd(int fd, uint64_t flags, struct gmem_region **ret) {
        return adopt(NULL, fd, true, flags, ret);
}

_public_ int gmem_region_adopt_caps(const struct gmem_host_caps *caps, int fd, struct gmem_region **ret) {
        return adopt(caps, fd, false, 0, ret);
}

_public_ int gmem_region_adopt_guest_memfd_caps(const struct gmem_host_caps *caps, int fd, uint64_t flags,
                                               struct gmem_region **ret) {
        return adopt(caps, fd, true, flags, ret);
}

_public_ struct gmem_region *gmem_region_free(struct gmem_region *r) {
        if (!r)
                return NULL;
        if (r->addr)
                munmap(r->addr, r->size);
        if (r->fd >= 0)
                close(r->fd);
        rangeset_clear(&r->private);
        pthread_mutex_destroy(&r->lock);
        free(r);
        return NULL;
}

_public_ int gmem_region_fd(const struct gmem_region *r) {
        return r ? r->fd : gmem_error(-EINVAL, "region fd: NULL region");
}

_public_ uint64_t gmem_region_size(const struct gmem_region *r) {
        return r ? r->size : 0;
}

_public_ enum gmem_backend gmem_region_backend(const struct gmem_region *r) {
        return r ? r->backend : GMEM_BACKEND_INVALID;
}

_public_ uint64_t gmem_region_flags(const struct gmem_region *r) {
        return r ? r->flags : 0;
}

_public_ uint64_t gmem_region_page_size(const struct gmem_region *r) {
        return r ? r->page_size : 0;
}

_public_ int gmem_region_map(struct gmem_region *r, void **ret_addr) {
        void *p;

        if (!r || !ret_addr)
                return gmem_error(-EINVAL, "map: NULL argument");
        pthread_mutex_lock(&r->lock);
        if (!r->addr) {
                if (!r->mappable) {
                        pthread_mutex_unlock(&r->lock);
                        return gmem_error(-ENODEV, "map: this guest_memfd was created without MMAP");
                }
                if (r->backend == GMEM_BACKEND_SECRET) {
                        int k = region_check_memlock("map secret region", r->size);
                        if (k < 0) {
                                pthread_mutex_unlock(&r->lock);
                                return k;
                        }
                }
                p = mmap(NULL, r->size, PROT_READ | PROT_WRITE, MAP_SHARED, r->fd, 0);
                if (p == MAP_FAILED) {
                        int k = negative_errno();
                        pthread_mutex_unlock(&r->lock);
                        if (k == -ENOMEM && r->backend == GMEM_BACKEND_HUGETLB)
                                return gmem_error(k, "mmap hugetlb region of %" PRIu64 " bytes: not enough free huge pages",
                                                  r->size);
                        return gmem_error(k, "mmap %s region of %" PRIu64 " bytes", gmem_backend_to_string(r->backend),
                                          r->size);
                }
                /* THP for shmem only helps when the admin allows it per mapping */
                if (r->backend == GMEM_BACKEND_MEMFD && gmem_shmem_thp_advised())
                        (void) madvise(p, r->size, MADV_HUGEPAGE);
                r->addr = p;
        }
        *ret_addr = r->addr;
        pthread_mutex_unlock(&r->lock);
        return 0;
}

_public_ int gmem_region_unmap(struct gmem_region *r) {
        if (!r)
                return gmem_error(-EINVAL, "unmap: NULL region");
        pthread_mutex_lock(&r->lock);
        if (r->addr && munmap(r->addr, r->size) < 0) {
                int k = negative_errno();
                pthread_mutex_unlock(&r->lock);
                return gmem_error(k, "munmap region");
        }
        r->addr = NULL;
        pthread_mutex_unlock(&r->lock);
        return 0;
}

int region_check_range(const struct gmem_region *r, const char *what, uint64_t off, uint64_t len) {
        if (!r)
                return gmem_error(-EINVAL, "%s: NULL region", what);
        if (len == 0)
                return gmem_error(-EINVAL, "%s: length 0", what);
        if (!range_within(off, len, r->size))
                return gmem_error(-ERANGE, "%s: range %" PRIu64 "+%" PRIu64 " is beyond the region's %" PRIu64 " bytes",
                                  what, off, len, r->size);
        return 0;
}

int region_check_aligned(const struct gmem_region *r, const char *what, uint64_t off, uint64_t len) {
        int k = region_check_range(r, what, off, len);
        if (k < 0)
                return k;
        if (off % r->page_size || len % r->page_size)
                return gmem_error(-EINVAL, "%s: offset %" PRIu64 " and length %" PRIu64 " must be multiples of the "
                                  "%s page size %" PRIu64, what, off, len, gmem_backend_to_string(r->backend), r->page_size);
        return 0;
}

int region_check_shared(struct gmem_region *r, const char *what, uint64_t off, uint64_t len) {
        bool private;

        pthread_mutex_lock(&r->lock);
        private = rangeset_intersects(&r->private, off, off + len);
        pthread_mutex_unlock(&r->lock);
        if (private)
                return gmem_error(-EACCES, "%s: range %" PRIu64 "+%" PRIu64 " is private to the guest", what, off, len);
        return 0;
}

int region_map_for(struct gmem_region *r, const char *what, uint8_t **ret_addr) {
        void *addr = NULL;
        int k;

        if (!r->mappable)
                return gmem_error(-EOPNOTSUPP, "%s: this guest_memfd was created without MMAP", what);
        k = gmem_region_map(r, &addr);
        if (k < 0)
                return k;
        *ret_addr = addr;
        return 0;
}

_public_ int gmem_region_is_private(const struct gmem_region *r, uint64_t off, uint64_t len) {
        int k = region_check_range(r, "is_private", off, len);
        if (k < 0)
                return k;
        pthread_mutex_lock((pthread_mutex_t *) &r->lock);
        k = rangeset_intersects(&r->private, off, off + len);
        pthread_mutex_unlock((pthread_mutex_t *) &r->lock);
        return k;
}

/* The bytes of [off, off+len) in pages that hold data (residency.h), in batches: a vector for a
 * whole 64 GiB region would be 16 MiB. Where the backend cannot say (hugetlb), what is seen mapped
 * counts, and of the rest the pages that are not zero. */
static int count_data(struct gmem_region *r, uint8_t *addr, uint64_t off, uint64_t len, uint64_t *ret_bytes) {
        uint64_t first = align_down(off, 4096), last = align_up(off + len, 4096), bytes = 0;
        _cleanup_free_ uint8_t *vec = malloc(RESIDENT_BATCH_PAGES), *buf = NULL;
        struct region_data d;
        int k = 0;

        if (!vec)
                return gmem_error(-ENOMEM, "resident: residency vector");
        region_data_begin(r, addr, &d);
        for (uint64_t at = first; at < last && k >= 0; at += RESIDENT_BATCH_PAGES * 4096) {
                uint64_t n = MIN((last - at) / 4096, (uint64_t) RESIDENT_BATCH_PAGES);
                if ((k = region_data_map(&d, at, n * 4096, vec)) < 0)
                        break;
                if (k == 0) { /* read, 2 MiB at a time */
                        if (!buf && !(buf = malloc(2 * MiB))) {
                                k = gmem_error(-ENOMEM, "resident: buffer");
                                break;
                        }
                        for (uint64_t p = 0; p < n && k >= 0; p += 512) {
                                uint64_t m = MIN(n - p, UINT64_C(512));
                                if ((k = gmem_read_full(r->fd, buf, m * 4096, at + p * 4096, NULL)) < 0)
                                        break;
                                for (uint64_t i = 0; i < m; i++)
                                        vec[p + i] |= !page_is_zero(buf + i * 4096, 4096);
                        }
                        if (k < 0)
                                break;
                }
                for (uint64_t i = 0; i < n; i++) {
                        uint64_t page = at + i * 4096;
                        if (vec[i])
                                bytes += MIN(page + 4096, off + len) - MAX(page, off);
                }
        }
        region_data_end(&d);
        if (k < 0)
                return k;
        *ret_bytes = bytes;
        return 0;
}

_public_ int gmem_region_resident(struct gmem_region *r, uint64_t off, uint64_t len, uint64_t *ret_bytes) {
        uint8_t *addr = NULL;
        int k;

        k = region_check_range(r, "resident", off, len);
        if (k < 0)
                return k;
        if (!ret_bytes)
                return gmem_error(-EINVAL, "resident: NULL result");
        k = region_map_for(r, "resident", &addr);
        if (k < 0)
                return k;

        if ((r->backend == GMEM_BACKEND_HUGETLB || r->backend == GMEM_BACKEND_MEMFD) && off == 0 && len == r->size) {
                /* The whole file: shmem and hugetlbfs count its pages in st_blocks (shmem's swapped
                 * ones too), exactly and at once, where a walk looks at every page (0.7 s for 64 GiB
                 * here). secretmem and guest_memfd keep no count. */
                struct stat st;
                if (fstat(r->fd, &st) < 0)
                        return gmem_error(negative_errno(), "resident: fstat %s region", gmem_backend_to_string(r->backend));
                *ret_bytes = MIN((uint64_t) st.st_blocks * 512, r->size);
                return 0;
        }
        return count_data(r, addr, off, len, ret_bytes);
}
