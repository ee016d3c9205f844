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
#define GMEM_VERSION_MINOR 2
#define GMEM_VERSION_STRING "0.2"

/* The version of the library running, which may be newer than the header built against
 * (GMEM_VERSION_STRING): "MAJOR.MINOR". */
const char *gmem_version(void);

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
        /* more may follow: a switch over backends needs a default */
        GMEM_BACKEND_INVALID = -1, /* what gmem_region_backend(NULL) returns */
};

const char *gmem_backend_to_string(enum gmem_backend b); /* NULL for an invalid value */
int gmem_backend_from_string(const char *s, enum gmem_backend *ret_backend);

/* guest_memfd creation flags merged upstream. Bits the kernel reuses differently between unmerged
 * series (NO_DIRECT_MAP, write()) are never hard-coded: take them from struct gmem_caps. */
#define GMEM_GUEST_MEMFD_FLAG_MMAP        0x1ULL /* plain constants: bindgen and other */
#define GMEM_GUEST_MEMFD_FLAG_INIT_SHARED 0x2ULL /* binding generators see them */

/* ---------------------------------------------------------------------------------------------
 * Capability probe
 */
enum gmem_kernel_profile {
        GMEM_PROFILE_UPSTREAM,           /* only merged guest_memfd features */
        GMEM_PROFILE_DIRECT_MAP_REMOVAL, /* NO_DIRECT_MAP = 1 << 2 */
        GMEM_PROFILE_WRITE,              /* write() populates guest_memfd, flag 1 << 2 */
        GMEM_PROFILE_SECRET_HIDING,      /* Firecracker's kernel: NO_DIRECT_MAP 1 << 2, write() 1 << 3 */
};
/* In place of a profile: find what the flag bits do by behaviour on a scratch VM. */
#define GMEM_PROFILE_DETECT (-1)

const char *gmem_kernel_profile_to_string(enum gmem_kernel_profile p);
int gmem_kernel_profile_from_string(const char *s, enum gmem_kernel_profile *ret_profile);

enum gmem_profile_source {
        GMEM_PROFILE_DETECTED, /* found by behaviour on a scratch VM */
        GMEM_PROFILE_EXPLICIT, /* named by the caller */
};

/* $GMEM_KERNEL_PROFILE, for callers who want the environment to choose (gmemctl does; the library
 * never reads it behind the caller's back): its profile, GMEM_PROFILE_DETECT when unset or empty,
 * -EINVAL when it names no profile. */
int gmem_kernel_profile_from_env(int *ret_profile);

/* What a kernel can do beyond its capability numbers, each found once per process by doing it on
 * scratch objects (a tiny VM, a page of memory). */
enum gmem_feature {
        GMEM_FEATURE_GUEST_MEMFD_DEFAULT_VM,  /* guest_memfd on a VM of the default type (6.18+; 6.12 has none) */
        GMEM_FEATURE_SECRET_MEMSLOT,          /* KVM runs a guest from memfd_secret memory */
        GMEM_FEATURE_GUEST_MEMFD_NUMA_POLICY, /* mbind() on a guest_memfd mapping sets the file's policy */
        GMEM_FEATURE_GUEST_MEMFD_UFFD_MISSING, /* userfaultfd MISSING mode on a guest_memfd mapping */
        GMEM_FEATURE_GUEST_MEMFD_UFFD_MINOR,  /* userfaultfd MINOR mode on a guest_memfd mapping */
        GMEM_FEATURE_INPLACE_CONVERSION,      /* a guest_memfd page converts between shared and private in place */
        /* more may follow */
};
/* 1 when this kernel has it, 0 when not (or when it cannot be tried: no /dev/kvm), -EINVAL for an
 * unknown feature. */
int gmem_kernel_has(enum gmem_feature f);
const char *gmem_feature_to_string(enum gmem_feature f); /* NULL for an invalid value */

/* The guest_memfd features whose flag bit a kernel decides (the unmerged ones differ by series). */
enum gmem_flag {
        GMEM_FLAG_MMAP,
        GMEM_FLAG_INIT_SHARED,
        GMEM_FLAG_NO_DIRECT_MAP, /* guest memory leaves the host's direct map */
        GMEM_FLAG_WRITE,         /* write() populates the guest_memfd */
        /* more may follow */
};

/* What a host's kernel offers: an opaque object that grows with the kernels, read through getters.
 * gmem_host_caps_new() probes this host; gmem_client_host_caps() gives gmemd's. The getters accept
 * NULL (and answer 0, false or NULL). */
struct gmem_host_caps;

/* Probe this kernel. profile: a gmem_kernel_profile saying which bit means what on an unmerged
 * series, or GMEM_PROFILE_DETECT to find out by behaviour. */
int gmem_host_caps_new(int profile, struct gmem_host_caps **ret_caps);
struct gmem_host_caps *gmem_host_caps_free(struct gmem_host_caps *c);
/* Read again what changes while the system runs (huge page pools, THP modes), cheaply; the rest
 * (KVM, flag bits, features) stays as probed. */
int gmem_host_caps_refresh(struct gmem_host_caps *c);

int gmem_host_caps_kvm_error(const struct gmem_host_caps *c);      /* 0 when /dev/kvm is usable, else -errno */
int gmem_host_caps_kvm_api_version(const struct gmem_host_caps *c);
bool gmem_host_caps_guest_memfd(const struct gmem_host_caps *c);   /* KVM_CAP_GUEST_MEMFD */
bool gmem_host_caps_user_memory2(const struct gmem_host_caps *c);  /* KVM_CAP_USER_MEMORY2 */
uint64_t gmem_host_caps_guest_memfd_flags(const struct gmem_host_caps *c); /* KVM_CAP_GUEST_MEMFD_FLAGS */
/* The bit that means f on this kernel; 0 when it has no such flag (or f is unknown). */
uint64_t gmem_host_caps_flag(const struct gmem_host_caps *c, enum gmem_flag f);
uint64_t gmem_host_caps_unknown_flags(const struct gmem_host_caps *c); /* bits nobody could identify */
bool gmem_host_caps_guest_memfd_write(const struct gmem_host_caps *c); /* write() populates guest_memfd */
uint64_t gmem_host_caps_vm_types(const struct gmem_host_caps *c);  /* bit n: KVM VM type n can be created */
uint64_t gmem_host_caps_memory_attributes(const struct gmem_host_caps *c, unsigned vm_type);
/* 1, 0, or -EINVAL for an unknown feature: what gmem_kernel_has() found on that host. */
int gmem_host_caps_has(const struct gmem_host_caps *c, enum gmem_feature f);
int gmem_host_caps_memfd_secret_error(const struct gmem_host_caps *c); /* 0 when memfd_secret works */
unsigned gmem_host_caps_hugetlb_count(const struct gmem_host_caps *c);
/* Huge page pool i (smallest page size first); -ERANGE past the last. Any ret_* may be NULL. */
int gmem_host_caps_hugetlb(const struct gmem_host_caps *c, unsigned i, uint64_t *ret_page_size,
                           uint64_t *ret_total_pages, uint64_t *ret_free_pages);
const char *gmem_host_caps_thp(const struct gmem_host_caps *c);       /* e.g. "madvise" */
const char *gmem_host_caps_shmem_thp(const struct gmem_host_caps *c); /* e.g. "never" */
const char *gmem_host_caps_kernel_release(const struct gmem_host_caps *c);
enum gmem_kernel_profile gmem_host_caps_profile(const struct gmem_host_caps *c);
enum gmem_profile_source gmem_host_caps_profile_source(const struct gmem_host_caps *c);
/* The best guest_memfd flags this kernel offers: MMAP | INIT_SHARED | NO_DIRECT_MAP where present. */
uint64_t gmem_host_caps_best_guest_memfd_flags(const struct gmem_host_caps *c);
/* What a VM of the default type should run on: GMEM_BACKEND_GUEST_MEMFD with *ret_flags = the best
 * flags, plus WRITE where write() populates guest_memfd, when the kernel can create, map, share and
 * bind a guest_memfd for such a VM; otherwise GMEM_BACKEND_MEMFD with *ret_flags = 0. *ret_reason
 * (may be NULL) gets a static sentence saying why: what the kernel lacks, or whether guest memory
 * leaves the direct map. */
int gmem_host_caps_pick_guest_memory(const struct gmem_host_caps *c, enum gmem_backend *ret_backend,
                                     uint64_t *ret_flags, const char **ret_reason);
/* A JSON object describing the caps (malloc'ed string, free() it): what `gmemctl caps --json`
 * prints and gmemd's "caps" reply carries. */
int gmem_host_caps_to_json(const struct gmem_host_caps *c, char **ret_json);

/* ---- The 0.1 capability struct: kept so that programs written for 0.1 build and run unchanged.
 * Its layout is frozen and it never learns anything new: use struct gmem_host_caps. */
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

/* Probe this kernel, with $GMEM_KERNEL_PROFILE (as in 0.1) as an explicit profile. */
int gmem_caps_probe(struct gmem_caps *ret_caps);
/* The same with an explicit profile, or GMEM_PROFILE_DETECT. */
int gmem_caps_probe_profile(int profile, struct gmem_caps *ret_caps);
/* As gmem_host_caps_best_guest_memfd_flags(), gmem_host_caps_pick_guest_memory(), gmem_host_caps_to_json(). */
uint64_t gmem_caps_best_guest_memfd_flags(const struct gmem_caps *caps);
int gmem_caps_pick_guest_memory(const struct gmem_caps *caps, enum gmem_backend *ret_backend, uint64_t *ret_flags,
                                const char **ret_reason);
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
/* The three above read a kernel's flag bits (which one means write(), say) as this process detected
 * them by behaviour. These take them from caps instead: from gmem_host_caps_new() with an explicit
 * profile, say, where detection cannot tell. caps NULL: as the plain call. */
int gmem_region_new_guest_memfd_caps(const struct gmem_host_caps *caps, int vm_fd, uint64_t size, uint64_t flags,
                                     struct gmem_region **ret);
int gmem_region_adopt_caps(const struct gmem_host_caps *caps, int fd, struct gmem_region **ret);
int gmem_region_adopt_guest_memfd_caps(const struct gmem_host_caps *caps, int fd, uint64_t flags,
                                       struct gmem_region **ret);
struct gmem_region *gmem_region_free(struct gmem_region *r);

int gmem_region_fd(const struct gmem_region *r);
uint64_t gmem_region_size(const struct gmem_region *r);
enum gmem_backend gmem_region_backend(const struct gmem_region *r);
uint64_t gmem_region_flags(const struct gmem_region *r);     /* guest_memfd flags (0 otherwise) */
uint64_t gmem_region_page_size(const struct gmem_region *r); /* alignment unit for punch/prefault */

/* Map the whole region shared and read-write (once; later calls return the same address). */
int gmem_region_map(struct gmem_region *r, void **ret_addr);
int gmem_region_unmap(struct gmem_region *r);

/* Bytes of [off, off+len) that hold data: in memory, or (memfd) in swap. The whole region of a memfd
 * or hugetlb region is answered from the file's block count (cheap); otherwise each page is looked
 * at (mincore, and SEEK_DATA for a memfd's pages not in memory). Part of a hugetlb region, where
 * nothing says which pages are there, is read: its pages of zeroes are not counted. */
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

/* Option structs start with their size, so that they can grow: set .size = sizeof(the struct)
 * (GMEM_POPULATE_OPTS_INIT does). A size of 0 means the struct of 0.2; a larger size than this
 * library knows is accepted when the bytes it does not know are zero (-E2BIG otherwise). Programs
 * built for 0.1, whose structs have no size, keep working: they are bound to the 0.1 symbols. */
struct gmem_populate_opts {
        size_t size;              /* sizeof(struct gmem_populate_opts) */
        unsigned threads;         /* 0: min(cores, 16), and at most one per 64 MiB */
        uint64_t chunk_size;      /* 0: 4 MiB; work is handed out chunk by chunk */
        gmem_progress_fn progress;
        void *userdata;
        const int *cancel;        /* optional: becomes non-zero to cancel (read atomically) */
        unsigned flags;           /* GMEM_POPULATE_* */
};
#define GMEM_POPULATE_OPTS_INIT { .size = sizeof(struct gmem_populate_opts) }

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
/* Snapshots (docs/snapshot.md): a sparse file of the region's backed pages, holes where it has
 * none, with its size, backend, flags, page size and a CRC-32C per extent (cut at 16 KiB; none crosses
 * 2 MiB). gmem_snapshot_write() writes one to a regular file (emptied first) in parallel and
 * returns the bytes of data in it; gmem_snapshot_restore() copies a snapshot's extents into a
 * region of the same size (any backend; holes stay unbacked) and returns the bytes copied. A
 * truncated, altered or foreign file is refused with -EBADMSG (-EPROTONOSUPPORT for a newer
 * format) and a message saying which: the header and the extent table before anything is
 * copied, each extent's data as it lands (a restore that fails there has written part of the
 * region: discard it). */
int64_t gmem_snapshot_write(struct gmem_region *r, int fd, const struct gmem_populate_opts *opts);
int64_t gmem_snapshot_restore(struct gmem_region *r, int fd, const struct gmem_populate_opts *opts);
/* What a snapshot holds, its header and extent table checked. */
struct gmem_snapshot_info;
int gmem_snapshot_open(int fd, struct gmem_snapshot_info **ret_info);
struct gmem_snapshot_info *gmem_snapshot_info_free(struct gmem_snapshot_info *s);
uint64_t gmem_snapshot_info_size(const struct gmem_snapshot_info *s);
enum gmem_backend gmem_snapshot_info_backend(const struct gmem_snapshot_info *s);
uint64_t gmem_snapshot_info_flags(const struct gmem_snapshot_info *s);
uint64_t gmem_snapshot_info_page_size(const struct gmem_snapshot_info *s);
uint64_t gmem_snapshot_info_data_bytes(const struct gmem_snapshot_info *s);
uint64_t gmem_snapshot_info_extent_count(const struct gmem_snapshot_info *s);

/* Lazy restore: a userfaultfd page server over a snapshot (docs/snapshot.md). The VMM maps its
 * guest memory and registers the mapping with a userfaultfd of its own (it belongs to the VMM's
 * mm): gmem_uffd_register() — MISSING faults, plus MINOR with minor (a shmem or hugetlb mapping
 * whose pages may be there already). The server, made with the uffd, the address of the
 * memory's first byte and the snapshot, fills memory a 16 KiB block at a time, the faulting one
 * first: MISSING faults with UFFDIO_COPY of the verified extents (UFFDIO_ZEROPAGE in holes),
 * MINOR faults by writing region (the same memory's file, mapped by the server) and
 * UFFDIO_CONTINUE. Discards (UFFD_EVENT_REMOVE) are honoured. Data that does not match its
 * checksum is never served: the call fails with -EBADMSG and the faulting thread stays in its
 * fault — report it; never a silent zero page. One thread at a time per server. */
int gmem_uffd_register(void *addr, uint64_t len, bool minor, int *ret_uffd);
struct gmem_page_server;
/* uffd and snapshot_fd stay the caller's; region may be NULL (no MINOR faults then). */
int gmem_page_server_new(int uffd, uint64_t base, int snapshot_fd, struct gmem_region *region,
                         struct gmem_page_server **ret);
struct gmem_page_server *gmem_page_server_free(struct gmem_page_server *ps);
int gmem_page_server_fd(const struct gmem_page_server *ps); /* to poll */
/* Serve the pending events (timeout_ms < 0: wait for one; 0: only what is there): how many. */
int gmem_page_server_run(struct gmem_page_server *ps, int timeout_ms);
/* Fill up to max_bytes of memory nobody faulted yet: the bytes filled (0 once all are there). */
int64_t gmem_page_server_prefetch(struct gmem_page_server *ps, uint64_t max_bytes);
bool gmem_page_server_complete(const struct gmem_page_server *ps); /* every window served */
uint64_t gmem_page_server_faults(const struct gmem_page_server *ps);
uint64_t gmem_page_server_served_bytes(const struct gmem_page_server *ps); /* of the windows installed */
/* A page server that outlives its process: gmem_page_server_keep_state() moves the server's
 * record of what it served into a memfd (a new fd of it is returned; keep it with the uffd and
 * the snapshot, in systemd's fd store) and keeps it there from then on; a new server made over
 * the same uffd, mappings and snapshot takes it with gmem_page_server_resume() before it serves
 * and goes on from there: what was served is not served again, and a block written into the
 * region's file but not yet mapped is only mapped, never written over what the guest wrote. A
 * fault the old server had read but not answered is answered when its block is prefetched. */
int gmem_page_server_keep_state(struct gmem_page_server *ps, int *ret_fd);
int gmem_page_server_resume(struct gmem_page_server *ps, int state_fd);
/* Hot pages first: write where this run's faults first touched memory, in order, after the hot
 * list the snapshot had (1000 blocks in all), into the header of snapshot_fd — the snapshot
 * served, open for writing — and the next server of that snapshot prefetches those blocks first.
 * The blocks on the list, or -errno (-EOPNOTSUPP for a raw memory file, -EINVAL for another
 * snapshot). */
int gmem_page_server_save_hot(struct gmem_page_server *ps, int snapshot_fd);

/* A page server for memory the VMM maps in pieces: mapping i's [base, base+size) holds the
 * source's [offset, offset+size), in pages of page_size bytes (4096 or 2 MiB, the same for all;
 * 0 means 4096). The source is a gmem snapshot, or with GMEM_PAGE_SERVER_RAW a raw memory file
 * (byte i of guest memory at offset i, as Firecracker writes it; it has no checksums, its holes
 * are served as zero pages). Private memory (MISSING faults, UFFDIO_COPY); a page the VMM
 * discards (UFFD_EVENT_REMOVE: a balloon) reads back as zeroes, as discarded private memory does. */
struct gmem_uffd_mapping {
        uint64_t base;       /* the VMM's address */
        uint64_t size;       /* bytes */
        uint64_t offset;     /* in the source */
        uint64_t page_size;  /* bytes; 0: 4096 */
};
#define GMEM_UFFD_MAPPINGS_MAX 64
#define GMEM_PAGE_SERVER_RAW 0x1ULL
int gmem_page_server_new_mapped(int uffd, const struct gmem_uffd_mapping *maps, size_t n_maps, int source_fd,
                                uint64_t flags, struct gmem_page_server **ret);
/* Firecracker's page-fault handler handshake (its docs/snapshotting/handling-page-faults-on-
 * snapshot-resume.md), read from conn, a stream socket Firecracker connected to: one message, a
 * JSON array of {base_host_virt_addr, size, offset, page_size} (older versions: page_size_kib,
 * or no page size) with the userfaultfd as SCM_RIGHTS. timeout_ms < 0 waits as long as it takes.
 * The uffd (close it) and the mappings (free() them) are the caller's. -EBADMSG for a handshake
 * that is not one (not JSON, no uffd or more fds, a field missing or out of range), -ETIMEDOUT,
 * -ECONNRESET when the peer hung up first. */
int gmem_firecracker_handshake(int conn_fd, int timeout_ms, int *ret_uffd, struct gmem_uffd_mapping **ret_maps,
                               size_t *ret_n_maps);

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
/* A slot whose private half is a guest_memfd region and whose shared half is another region's
 * mapping (memfd, hugetlb), both at offset off: how a VM type with private memory runs where the
 * guest_memfd cannot be shared in place. Convert such a slot's ranges with gmem_convert() on both
 * regions: each discards its own stale copy. */
int gmem_kvm_bind_pair(int vm_fd, uint32_t slot, uint64_t gpa, struct gmem_region *private_mem,
                       struct gmem_region *shared_mem, uint64_t off, uint64_t len);

/* ---------------------------------------------------------------------------------------------
 * Client of gmemd, the broker daemon (protocol: docs/protocol.md). Calls are synchronous; a job's
 * progress goes to the callback set with gmem_client_set_progress(). Errors the daemon reports
 * come back as the negative errno it named, with its message in gmem_last_error().
 */
struct gmem_client;

enum gmem_policy {
        GMEM_POLICY_KEEP,       /* held until released (default) */
        GMEM_POLICY_CONNECTION, /* released when the creating/registering connection closes */
};
/* "keep", "connection" (NULL for an invalid value); -EINVAL for an unknown name */
const char *gmem_policy_to_string(enum gmem_policy p);
int gmem_policy_from_string(const char *s, enum gmem_policy *ret_policy);

struct gmem_create_opts {
        size_t size;            /* sizeof(struct gmem_create_opts); see struct gmem_populate_opts */
        uint64_t page_size;     /* hugetlb: 2 MiB (default) or 1 GiB */
        bool prefault;          /* allocate before the reply (a job: progress, cancellable) */
        enum gmem_policy policy;
};
#define GMEM_CREATE_OPTS_INIT { .size = sizeof(struct gmem_create_opts) }

/* socket_path NULL: $GMEMD_SOCKET, else the system gmemd's /run/gmemd/gmemd.sock, for every
 * user (root and members of group gmem may connect). Says hello (negotiates the version). */
int gmem_client_connect(const char *socket_path, struct gmem_client **ret);
struct gmem_client *gmem_client_free(struct gmem_client *c);
/* The path gmem_client_connect(NULL) uses (malloc'ed). */
int gmem_client_default_socket(char **ret_path);
/* The socket of a user's own gmemd (one run without privileges): $XDG_RUNTIME_DIR/gmemd/gmemd.sock
 * (malloc'ed); -ENXIO when $XDG_RUNTIME_DIR is unset. */
int gmem_client_user_socket(char **ret_path);
/* What the caller calls fd, e.g. the path it opened: each request that passes fd tells gmemd, whose
 * messages back to this client then say 'NAME' where they would say "fd N" (gmemd's own number,
 * which means nothing here): "restore 'vm1': snapshot 'vm1.snap': truncated ...". name NULL forgets
 * fd's name; forget it (or name the fd anew) before the number is reused. At most 16 fds are named
 * (-ENOSPC beyond); a name is 1 to 255 bytes without control characters (-EINVAL). */
int gmem_client_name_fd(struct gmem_client *c, int fd, const char *name);
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
/* A length of GMEM_LENGTH_TO_END is the protocol's "length absent": to the end of the region from
 * the offset (populate: the rest of the source file, refused where it does not fit). The daemon
 * decides what that is; the client passes it through. */
#define GMEM_LENGTH_TO_END 0xffffffffffffffffULL
int gmem_client_populate_fd(struct gmem_client *c, const char *name, uint64_t dst_off, int src_fd,
                            uint64_t src_off, uint64_t len);
int gmem_client_prefault(struct gmem_client *c, const char *name, uint64_t off, uint64_t len);
/* Bytes written (holes not counted), or -errno. */
int64_t gmem_client_dump_fd(struct gmem_client *c, const char *name, uint64_t off, uint64_t len, int dst_fd,
                            uint64_t dst_off);
int gmem_client_punch(struct gmem_client *c, const char *name, uint64_t off, uint64_t len);
/* gmemd writes the region as a snapshot (gmem_snapshot_write()) to the caller's dst_fd, a regular
 * file open for writing; the bytes of data in it, or -errno. */
int64_t gmem_client_snapshot_fd(struct gmem_client *c, const char *name, int dst_fd);
enum {
        GMEM_RESTORE_BACKEND = 1u << 0, /* restore into .backend, not the snapshot's own */
};
struct gmem_restore_opts {
        size_t size;               /* sizeof(struct gmem_restore_opts) */
        unsigned flags;            /* GMEM_RESTORE_* */
        enum gmem_backend backend; /* with GMEM_RESTORE_BACKEND: memfd, hugetlb or secret */
        enum gmem_policy policy;
};
#define GMEM_RESTORE_OPTS_INIT { .size = sizeof(struct gmem_restore_opts) }
/* gmemd makes region `name` from the snapshot in the caller's src_fd: of the snapshot's size and
 * backend (a guest_memfd's restores into memfd: gmemd cannot create guest_memfd; restore one in
 * the VMM with gmem_snapshot_restore()), filled as a job (progress, cancellable) and seen by
 * others only once it is complete. A damaged snapshot is refused (-EBADMSG) and leaves no region. */
int gmem_client_restore_fd(struct gmem_client *c, const char *name, int src_fd, const struct gmem_restore_opts *opts);
/* Lazy restore by gmemd: it serves the caller's uffd (from gmem_uffd_register() on the caller's
 * mapping of region `name`'s memory at address) from the snapshot in snapshot_fd, on a thread of
 * its own, faults first and the rest prefetched, until this client disconnects (or, after gmemd
 * restarted under systemd, until the caller's process exits). GMEM_SERVE_SHARED: the caller
 * maps the region's own file (it opened it from gmemd), which is filled through gmemd's mapping
 * of it; without it, private memory of the caller's. GMEM_SERVE_NO_PREFETCH: faults only, nothing
 * in the background. Returns at once with *ret_job (may be NULL); the end comes as a "finished"
 * event (gmem_client_next_event()) — with an error (the snapshot's data damaged, say) the
 * faulting threads stay waiting, never given zeroes, as long as the caller keeps its uffd open. */
enum {
        GMEM_SERVE_SHARED = 1u << 0,
        GMEM_SERVE_NO_PREFETCH = 1u << 1,
};
int gmem_client_serve_uffd(struct gmem_client *c, const char *name, int uffd, uint64_t address, int snapshot_fd,
                           unsigned flags, uint64_t *ret_job);
/* A page server in gmemd for a Firecracker VM: gmemd waits (timeout_ms; 0: a minute) on
 * listen_fd, a listening unix stream socket (the path Firecracker's snapshot load is given as its
 * Uffd backend), takes the VM's handshake and serves its memory from source_fd — a gmem snapshot,
 * or with GMEM_PAGE_SERVER_RAW Firecracker's memory file — until the VM hangs up, even after the
 * caller has gone (and across restarts of gmemd under systemd); GMEM_SERVE_NO_PREFETCH: faults
 * only. The job's end is a "finished" event. Both fds stay the caller's. */
int gmem_client_serve_firecracker(struct gmem_client *c, const char *vm, int listen_fd, int source_fd,
                                  uint64_t flags, int timeout_ms, uint64_t *ret_job);
int gmem_client_grant_uid(struct gmem_client *c, const char *name, uint32_t uid);
int gmem_client_grant_gid(struct gmem_client *c, const char *name, uint32_t gid);
int gmem_client_revoke_uid(struct gmem_client *c, const char *name, uint32_t uid);
int gmem_client_revoke_gid(struct gmem_client *c, const char *name, uint32_t gid);
int gmem_client_release(struct gmem_client *c, const char *name);
int gmem_client_cancel(struct gmem_client *c, uint64_t job);

/* What gmemd says about a region (docs/protocol.md, "Region objects"), read through getters that
 * accept NULL. */
struct gmem_region_info;
enum gmem_region_state {
        GMEM_REGION_EMPTY,      /* never populated */
        GMEM_REGION_POPULATING, /* a populate job runs */
        GMEM_REGION_POPULATED,  /* the last populate completed */
        GMEM_REGION_FAILED,     /* the last populate failed or was cancelled */
        /* more may follow */
};
const char *gmem_region_state_to_string(enum gmem_region_state s); /* NULL for an invalid value */
int gmem_region_state_from_string(const char *s, enum gmem_region_state *ret_state);

int gmem_client_region_info(struct gmem_client *c, const char *name, struct gmem_region_info **ret_info);
struct gmem_region_info *gmem_region_info_free(struct gmem_region_info *i);
const char *gmem_region_info_name(const struct gmem_region_info *i);
enum gmem_backend gmem_region_info_backend(const struct gmem_region_info *i);
uint64_t gmem_region_info_size(const struct gmem_region_info *i);
uint64_t gmem_region_info_flags(const struct gmem_region_info *i);
uint64_t gmem_region_info_page_size(const struct gmem_region_info *i);
uint32_t gmem_region_info_owner_uid(const struct gmem_region_info *i);
enum gmem_policy gmem_region_info_policy(const struct gmem_region_info *i);
enum gmem_region_state gmem_region_info_state(const struct gmem_region_info *i);
uint64_t gmem_region_info_populated_bytes(const struct gmem_region_info *i);
/* -ENODATA while gmemd has not measured it yet (large guest_memfd and secret regions). */
int gmem_region_info_resident_bytes(const struct gmem_region_info *i, uint64_t *ret_bytes);
uint64_t gmem_region_info_created_usec(const struct gmem_region_info *i); /* CLOCK_REALTIME, microseconds */
/* Grants: the n-th uid or gid (-ERANGE past the last). */
unsigned gmem_region_info_grant_uid_count(const struct gmem_region_info *i);
int gmem_region_info_grant_uid(const struct gmem_region_info *i, unsigned n, uint32_t *ret_uid);
unsigned gmem_region_info_grant_gid_count(const struct gmem_region_info *i);
int gmem_region_info_grant_gid(const struct gmem_region_info *i, unsigned n, uint32_t *ret_gid);
/* Holders: the processes holding the region's fd through gmemd. *ret_role is "created",
 * "registered" or "opened", valid as long as i. Any ret_* may be NULL. */
unsigned gmem_region_info_holder_count(const struct gmem_region_info *i);
int gmem_region_info_holder(const struct gmem_region_info *i, unsigned n, int32_t *ret_pid, uint32_t *ret_uid,
                            const char **ret_role, bool *ret_connected);
/* Jobs running on the region: id, operation ("populate", "prefault", "dump"), bytes done and total. */
unsigned gmem_region_info_job_count(const struct gmem_region_info *i);
int gmem_region_info_job(const struct gmem_region_info *i, unsigned n, uint64_t *ret_job, const char **ret_op,
                         uint64_t *ret_done, uint64_t *ret_total);

/* The regions this client may see, sorted by name. */
struct gmem_region_list;
int gmem_client_region_list(struct gmem_client *c, struct gmem_region_list **ret_list);
struct gmem_region_list *gmem_region_list_free(struct gmem_region_list *l);
unsigned gmem_region_list_count(const struct gmem_region_list *l);
/* The n-th region, owned by the list; NULL past the last. */
const struct gmem_region_info *gmem_region_list_get(const struct gmem_region_list *l, unsigned n);

/* gmemd's host: what its kernel offers and the profile it runs with. */
int gmem_client_host_caps(struct gmem_client *c, struct gmem_host_caps **ret_caps);

/* The same as JSON text, as the daemon sent it (malloc'ed): an array of region objects, one
 * region object, the caps object. */
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
