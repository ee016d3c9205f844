/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libgmem — guest memory for KVM hosts, done once for every VMM.
 *
 * Conventions (see README and libgmem(3)):
 *  - every function returns 0 (or a non-negative count) on success and a negative errno on failure;
 *  - output parameters are named ret_* and are left untouched on failure;
 *  - the library never prints: after a failure, gmem_last_error() gives a one-line reason that names
 *    the failing call and the object, valid in the calling thread until its next libgmem call;
 *  - destructors accept NULL and return NULL.
 *
 * Guest memory is only ever written through a user mapping (or the guest_memfd write() syscall
 * where the kernel has it), never through the kernel's direct map, so everything here also works
 * for memory removed from the direct map (memfd_secret, NO_DIRECT_MAP guest_memfd).
 */
#ifndef GMEM_GMEM_H
#define GMEM_GMEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define GMEM_VERSION_MAJOR 0
#define GMEM_VERSION_MINOR 1
#define GMEM_VERSION_STRING "0.1"

/* The reason for the last failure in this thread ("" when none). */
const char *gmem_last_error(void);

/* ---------------------------------------------------------------------------------------------
 * Backends
 */
enum gmem_backend {
        GMEM_BACKEND_MEMFD,       /* shmem memfd; THP advised where the kernel allows it */
        GMEM_BACKEND_HUGETLB,     /* hugetlbfs memfd (2 MiB or 1 GiB pages) */
        GMEM_BACKEND_SECRET,      /* memfd_secret: not in the kernel's direct map */
        GMEM_BACKEND_GUEST_MEMFD, /* KVM guest_memfd, created on the VMM's own VM fd */
        _GMEM_BACKEND_MAX,
};

const char *gmem_backend_to_string(enum gmem_backend b); /* NULL for an invalid value */
int gmem_backend_from_string(const char *s, enum gmem_backend *ret_backend);

/* guest_memfd creation flags merged upstream. Bits the kernel reuses differently between unmerged
 * series (NO_DIRECT_MAP, write()) are never hard-coded: take them from struct gmem_caps. */
#define GMEM_GUEST_MEMFD_FLAG_MMAP        (UINT64_C(1) << 0)
#define GMEM_GUEST_MEMFD_FLAG_INIT_SHARED (UINT64_C(1) << 1)

/* ---------------------------------------------------------------------------------------------
 * Capability probe
 */
enum gmem_kernel_profile {
        GMEM_PROFILE_UPSTREAM,           /* only merged guest_memfd features */
        GMEM_PROFILE_DIRECT_MAP_REMOVAL, /* NO_DIRECT_MAP = 1 << 2 */
        GMEM_PROFILE_WRITE,              /* write() populates guest_memfd, flag 1 << 2 */
        GMEM_PROFILE_SECRET_HIDING,      /* Firecracker's kernel: NO_DIRECT_MAP 1 << 2, write() 1 << 3 */
        _GMEM_PROFILE_MAX,
};

const char *gmem_kernel_profile_to_string(enum gmem_kernel_profile p);
int gmem_kernel_profile_from_string(const char *s, enum gmem_kernel_profile *ret_profile);

enum gmem_profile_source {
        GMEM_PROFILE_DETECTED, /* found by behaviour on a scratch VM */
        GMEM_PROFILE_EXPLICIT, /* set by the caller or $GMEM_KERNEL_PROFILE */
};

#define GMEM_VM_TYPES_MAX 8
#define GMEM_HUGETLB_SIZES_MAX 4

struct gmem_hugetlb_pool {
        uint64_t page_size;
        uint64_t total_pages;
        uint64_t free_pages;
};

struct gmem_caps {
        int kvm_error;                    /* 0 when /dev/kvm is usable, else a negative errno */
        int kvm_api_version;
        bool guest_memfd;                 /* KVM_CAP_GUEST_MEMFD */
        bool user_memory2;                /* KVM_CAP_USER_MEMORY2 */
        uint64_t guest_memfd_flags;       /* mask from KVM_CAP_GUEST_MEMFD_FLAGS */
        uint64_t flag_mmap;               /* the bit for each feature on this kernel, 0 = absent */
        uint64_t flag_init_shared;
        uint64_t flag_no_direct_map;
        uint64_t flag_write;
        uint64_t flags_unknown;           /* bits in the mask nobody could identify */
        bool gmem_write;                  /* write()/pwrite() populate a guest_memfd */
        uint64_t vm_types;                /* bit n: KVM VM type n can be created */
        uint64_t memory_attributes[GMEM_VM_TYPES_MAX]; /* KVM_CAP_MEMORY_ATTRIBUTES per VM type */
        bool inplace_conversion;          /* shared<->private conversion on the guest_memfd itself */
        bool memfd_secret;
        int memfd_secret_error;           /* why not, as a negative errno */
        unsigned n_hugetlb;
        struct gmem_hugetlb_pool hugetlb[GMEM_HUGETLB_SIZES_MAX];
        char thp[16];                     /* /sys/kernel/mm/transparent_hugepage/enabled, e.g. "madvise" */
        char shmem_thp[16];               /* .../shmem_enabled, e.g. "never" */
        enum gmem_kernel_profile profile;
        enum gmem_profile_source profile_source;
        char kernel_release[65];
};

/* Probe this kernel. Honours $GMEM_KERNEL_PROFILE (a profile name) as an explicit profile. */
int gmem_caps_probe(struct gmem_caps *ret_caps);
/* The same with an explicit profile; pass -1 to detect by behaviour. */
int gmem_caps_probe_profile(int profile, struct gmem_caps *ret_caps);
/* The best guest_memfd flags this kernel offers: MMAP | INIT_SHARED | NO_DIRECT_MAP where present. */
uint64_t gmem_caps_best_guest_memfd_flags(const struct gmem_caps *caps);
/* A JSON object describing caps (malloc'ed string, free() it). */
int gmem_caps_to_json(const struct gmem_caps *caps, char **ret_json);

/* ---------------------------------------------------------------------------------------------
 * Regions: one handle over every backend
 */
struct gmem_region;

/* flags are KVM guest_memfd flags; the region maps itself when the flags allow. */
int gmem_region_new_guest_memfd(int vm_fd, uint64_t size, uint64_t flags, struct gmem_region **ret);
/* GMEM_BACKEND_HUGETLB uses the default huge page size (2 MiB); see gmem_region_new_hugetlb(). */
int gmem_region_new_memfd(enum gmem_backend backend, uint64_t size, struct gmem_region **ret);
int gmem_region_new_hugetlb(uint64_t page_size, uint64_t size, struct gmem_region **ret);
/* Takes ownership of fd on success (on failure the caller still owns it); detects the backend.
 * A guest_memfd's creation flags cannot be read back: adopt assumes MMAP when the fd maps and
 * leaves shared/private to the kernel; use gmem_region_adopt_guest_memfd() when they are known. */
int gmem_region_adopt(int fd, struct gmem_region **ret);
int gmem_region_adopt_guest_memfd(int fd, uint64_t flags, struct gmem_region **ret);
struct gmem_region *gmem_region_free(struct gmem_region *r);

int gmem_region_fd(const struct gmem_region *r);
uint64_t gmem_region_size(const struct gmem_region *r);
enum gmem_backend gmem_region_backend(const struct gmem_region *r);
uint64_t gmem_region_flags(const struct gmem_region *r);     /* guest_memfd flags (0 otherwise) */
uint64_t gmem_region_page_size(const struct gmem_region *r); /* alignment unit for punch/prefault */

/* Map the whole region shared and read-write (once; later calls return the same address). */
int gmem_region_map(struct gmem_region *r, void **ret_addr);
int gmem_region_unmap(struct gmem_region *r);

/* Bytes of [off, off+len) actually backed by memory. The whole region of a memfd or hugetlb region
 * is answered from the file's block count (cheap); otherwise mincore on the mapping, which walks
 * every page. For part of a hugetlb region, only pages this process has faulted in are seen. */
int gmem_region_resident(struct gmem_region *r, uint64_t off, uint64_t len, uint64_t *ret_bytes);

/* ---------------------------------------------------------------------------------------------
 * Data path
 */

/* Called from the calling thread while a job runs; return non-zero to cancel. */
typedef int (*gmem_progress_fn)(uint64_t done, uint64_t total, void *userdata);

enum {
        GMEM_POPULATE_VIA_MAPPING = 1u << 0, /* never use the guest_memfd write() syscall */
        GMEM_POPULATE_VIA_WRITE   = 1u << 1, /* only the write() syscall (-EOPNOTSUPP without it) */
};

struct gmem_populate_opts {
        unsigned threads;         /* 0: min(cores, 16), and at most one per 64 MiB */
        uint64_t chunk_size;      /* 0: 4 MiB; work is handed out chunk by chunk */
        gmem_progress_fn progress;
        void *userdata;
        const int *cancel;        /* optional: becomes non-zero to cancel (read atomically) */
        unsigned flags;           /* GMEM_POPULATE_* */
};

/* Copy len bytes from src_fd at src_off into the region at dst_off; returns len or -errno.
 * -ENODATA: the source is shorter; -EACCES: the range is private to the guest;
 * -ECANCELED: cancelled (part of the range may have been written). */
int64_t gmem_populate_fd(struct gmem_region *r, uint64_t dst_off, int src_fd, uint64_t src_off,
                         uint64_t len, const struct gmem_populate_opts *opts);
int64_t gmem_populate_buf(struct gmem_region *r, uint64_t dst_off, const void *buf, uint64_t len,
                          const struct gmem_populate_opts *opts);
/* Copy len bytes of the region at off to dst_fd at dst_off, skipping (leaving holes for) pages
 * that are not backed; returns the number of bytes written (holes not counted). hugetlb has no
 * per-page record of what is backed: there, pages of zeroes are left as holes. Reads guest memory:
 * only for explicit dumps. */
int64_t gmem_dump_fd(struct gmem_region *r, uint64_t off, uint64_t len, int dst_fd, uint64_t dst_off,
                     const struct gmem_populate_opts *opts);
/* Allocate (zero-fill) [off, off+len): MADV_POPULATE_WRITE in parallel, touching pages where the
 * kernel refuses it. off and len must be page aligned. */
int gmem_prefault(struct gmem_region *r, uint64_t off, uint64_t len, const struct gmem_populate_opts *opts);
/* Discard [off, off+len) (page aligned); the range reads back as zeroes. */
int gmem_punch_hole(struct gmem_region *r, uint64_t off, uint64_t len);

/* Convert [off, off+len) of the region, mapped at guest-physical gpa in vm_fd, to private or
 * shared: KVM_SET_MEMORY_ATTRIBUTES plus discarding the stale copy (QEMU's semantics), or the
 * in-place conversion on the guest_memfd where the kernel has it. -EOPNOTSUPP when neither. */
int gmem_convert(struct gmem_region *r, int vm_fd, uint64_t gpa, uint64_t off, uint64_t len, bool to_private);
/* Whether any page of [off, off+len) is currently private (as far as this region knows). */
int gmem_region_is_private(const struct gmem_region *r, uint64_t off, uint64_t len);

/* Bind [off, off+len) of the region as KVM memslot `slot` at gpa: KVM_SET_USER_MEMORY_REGION2 with
 * KVM_MEM_GUEST_MEMFD for guest_memfd (userspace_addr set to the mapping when it is shared), a plain
 * user memory slot over the mapping for the memfd family. len 0 deletes the slot. */
int gmem_kvm_bind(int vm_fd, uint32_t slot, uint64_t gpa, struct gmem_region *r, uint64_t off, uint64_t len);

/* ---------------------------------------------------------------------------------------------
 * Client of gmemd, the broker daemon (protocol: docs/protocol.md). Calls are synchronous; a job's
 * progress goes to the callback set with gmem_client_set_progress(). Errors the daemon reports
 * come back as the negative errno it named, with its message in gmem_last_error().
 */
struct gmem_client;

enum gmem_policy {
        GMEM_POLICY_KEEP,       /* held until released (default) */
        GMEM_POLICY_CONNECTION, /* released when the creating/registering connection closes */
        _GMEM_POLICY_MAX,
};

struct gmem_create_opts {
        uint64_t page_size;     /* hugetlb: 2 MiB (default) or 1 GiB */
        bool prefault;          /* allocate before the reply (a job: progress, cancellable) */
        enum gmem_policy policy;
};

/* socket_path NULL: $GMEMD_SOCKET, else /run/gmemd/gmemd.sock for root and
 * $XDG_RUNTIME_DIR/gmemd/gmemd.sock for others. Says hello (negotiates the version). */
int gmem_client_connect(const char *socket_path, struct gmem_client **ret);
struct gmem_client *gmem_client_free(struct gmem_client *c);
/* The path gmem_client_connect(NULL) uses (malloc'ed). */
int gmem_client_default_socket(char **ret_path);
/* Called from the calling thread for each progress event of a job this client waits for;
 * returning non-zero cancels the job (the call then fails with -ECANCELED). */
void gmem_client_set_progress(struct gmem_client *c, gmem_progress_fn fn, void *userdata);

int gmem_client_register(struct gmem_client *c, const char *name, struct gmem_region *r);
int gmem_client_register_policy(struct gmem_client *c, const char *name, struct gmem_region *r,
                                enum gmem_policy policy);
int gmem_client_create(struct gmem_client *c, const char *name, enum gmem_backend backend, uint64_t size,
                       const struct gmem_create_opts *opts);
/* A region of its own over the fd the daemon hands out. */
int gmem_client_open(struct gmem_client *c, const char *name, struct gmem_region **ret);
int gmem_client_populate_fd(struct gmem_client *c, const char *name, uint64_t dst_off, int src_fd,
                            uint64_t src_off, uint64_t len);
int gmem_client_prefault(struct gmem_client *c, const char *name, uint64_t off, uint64_t len);
/* Bytes written (holes not counted), or -errno. */
int64_t gmem_client_dump_fd(struct gmem_client *c, const char *name, uint64_t off, uint64_t len, int dst_fd,
                            uint64_t dst_off);
int gmem_client_punch(struct gmem_client *c, const char *name, uint64_t off, uint64_t len);
int gmem_client_grant_uid(struct gmem_client *c, const char *name, uint32_t uid);
int gmem_client_grant_gid(struct gmem_client *c, const char *name, uint32_t gid);
int gmem_client_revoke_uid(struct gmem_client *c, const char *name, uint32_t uid);
int gmem_client_revoke_gid(struct gmem_client *c, const char *name, uint32_t gid);
int gmem_client_release(struct gmem_client *c, const char *name);
int gmem_client_cancel(struct gmem_client *c, uint64_t job);
/* JSON text as the daemon sent it (malloc'ed): an array of region objects, one region object,
 * the caps object. */
int gmem_client_list(struct gmem_client *c, char **ret_json);
int gmem_client_info(struct gmem_client *c, const char *name, char **ret_json);
int gmem_client_caps(struct gmem_client *c, char **ret_json);
/* Subscribe to events; then take them one by one (timeout_ms < 0: wait; -ETIME on timeout). */
int gmem_client_watch(struct gmem_client *c);
int gmem_client_next_event(struct gmem_client *c, int timeout_ms, char **ret_json);

#ifdef __cplusplus
}
#endif

#endif
