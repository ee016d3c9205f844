/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A userfaultfd page server over a snapshot: the lazy restore (docs/snapshot.md, "Lazy restore").
 *
 * The VMM maps guest memory and registers the mapping with a userfaultfd of its own (the uffd
 * belongs to its mm): gmem_uffd_register(). Whoever serves it — the VMM itself, or gmemd once the
 * VMM hands it the uffd — reads the fault events and fills memory from the snapshot a 16 KiB
 * block at a time (larger for snapshots cut larger), the faulting one first:
 *
 *  - private memory (anonymous, MISSING faults): the block's extents are read into a buffer, each
 *    verified against its CRC, and installed with UFFDIO_COPY, the faulting page first; a hole
 *    of the snapshot gets UFFDIO_ZEROPAGE;
 *  - a region's shared mapping (a memfd, hugetlb or guest_memfd the server has the file of; MISSING
 *    or MINOR faults): the block is written into the file — write() where it has one, else the
 *    server's own mapping — and the VMM's pages are mapped with UFFDIO_CONTINUE: no kernel copy
 *    into the page, and a resumed server never writes over what the guest wrote (keep_state).
 *
 * gmem_page_server_prefetch() fills blocks nobody faulted yet, so that memory becomes fully
 * resident in the background. A block whose data does not match its checksum is never served:
 * the call fails with -EBADMSG naming it and the faulting thread stays in its fault (never a
 * silent zero page); the caller reports the error to the VMM.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "crc32c.h"
#include "error.h"
#include "io.h"
#include "job.h"
#include "macro.h"
#include "region.h"
#include "uffd-compat.h"
#include "snapshot.h"


/* One mapping of the VMM's: [base, base+size) holds the source's [offset, offset+size). Its
 * units are the source's [offset + k*unit, ...), numbered from first_unit. */
struct ps_map {
        uint64_t base, size, offset;
        uint64_t first_unit, n_units;
};

enum { UNIT_NONE, UNIT_WRITTEN, UNIT_DONE };

/* The head of a server's state memfd: which server's it is. */
struct ps_state {
        char magic[8];
        uint64_t n_units, unit, source_size;
};
#define PS_STATE_MAGIC "GMEMPSS1"

struct gmem_page_server {
        int uffd;
        int snap_fd;                   /* borrowed */
        struct gmem_snapshot_info *s;  /* a gmem snapshot, or a raw memory file (s->raw) */
        struct ps_map *maps;           /* sorted by offset */
        size_t n_maps;
        struct gmem_region *region;    /* for MINOR faults; borrowed, may be NULL */
        uint8_t *map;                  /* the region's mapping (MINOR) */
        uint8_t *buf;                  /* one unit */
        /* Per unit: UNIT_NONE, UNIT_WRITTEN (its data is in the region's file, not all mapped
         * yet) or UNIT_DONE. On the heap, or in a memfd (gmem_page_server_keep_state()) that a
         * server made again over the same uffd resumes from. */
        uint8_t *done;
        uint8_t *state_map;            /* the memfd's mapping (header, then done), or NULL */
        size_t state_len;
        int state_fd;
        /* Private memory (no region): per 4 KiB page of the source, discarded by the VMM
         * (UFFD_EVENT_REMOVE: a balloon, MADV_DONTNEED) before it was served. Discarded private
         * memory reads back as zeroes, so that is what such a page is served as. */
        uint64_t *removed;
        uint64_t unit;                 /* what a fault fetches: SNAP_BLOCK, more for extents longer (to 2 MiB), or a huge page */
        uint64_t pgsz;                 /* the memory's page size: 4 KiB, or a hugetlb page (no UFFDIO_ZEROPAGE there) */
        bool no_zeropage;              /* the region's file refused UFFDIO_ZEROPAGE (guest_memfd) */
        uint64_t n_units, n_done, next_prefetch;
        uint64_t faults;
        unsigned unit_shift;           /* log2(unit) */
        /* This run's first faults, in order: unit starts in the source >> unit_shift (the hot
         * list gmem_page_server_save_hot() writes). */
        uint32_t hot_rec[SNAP_HOT_MAX];
        uint32_t n_hot_rec;
        /* The snapshot's hot list as units, prefetched first. */
        uint64_t *hot_units;
        uint32_t n_hot_units, hot_next;
};

_public_ int gmem_uffd_register(void *addr, uint64_t len, bool minor, int *ret_uffd) {
        struct uffdio_api api = { .api = UFFD_API };
        struct uffdio_register reg = { .range = { .start = (uintptr_t) addr, .len = len } };
        int fd;

        if (!addr || len == 0 || len % page_size() || (uintptr_t) addr % page_size() || !ret_uffd)
                return gmem_error(-EINVAL, "userfaultfd: invalid range or NULL result");
        /* all faults (KVM's among them) need the privilege; user-mode faults only do not */
        fd = (int) syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
        if (fd < 0 && (errno == EPERM || errno == EACCES))
                fd = (int) syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
        if (fd < 0)
                return gmem_error(negative_errno(), "userfaultfd()");
        /* shmem and hugetlbfs alike (a memfd, a hugetlb memfd) */
        api.features = UFFD_FEATURE_MISSING_SHMEM | UFFD_FEATURE_MISSING_HUGETLBFS | UFFD_FEATURE_EVENT_REMOVE |
                       (minor ? UFFD_FEATURE_MINOR_SHMEM | UFFD_FEATURE_MINOR_HUGETLBFS : 0);
        if (ioctl(fd, UFFDIO_API, &api) < 0) {
                api = (struct uffdio_api) { .api = UFFD_API }; /* anonymous memory needs no feature */
                if (minor || ioctl(fd, UFFDIO_API, &api) < 0) {
                        int k = gmem_error(negative_errno(), "UFFDIO_API%s", minor ? " with MINOR_SHMEM" : "");
                        close(fd);
                        return k;
                }
        }
        reg.mode = UFFDIO_REGISTER_MODE_MISSING | (minor ? UFFDIO_REGISTER_MODE_MINOR : 0);
        if (ioctl(fd, UFFDIO_REGISTER, &reg) < 0) {
                int k = gmem_error(negative_errno(), "UFFDIO_REGISTER %p+%" PRIu64 " (%s)", addr, len,
                                   minor ? "missing and minor" : "missing");
                close(fd);
                return k;
        }
        *ret_uffd = fd;
        return 0;
}

_public_ struct gmem_page_server *gmem_page_server_free(struct gmem_page_server *ps) {
        if (ps) {
                gmem_snapshot_info_free(ps->s);
                free(ps->maps);
                free(ps->buf);
                if (ps->state_map)
                        munmap(ps->state_map, ps->state_len);
                else
                        free(ps->done);
                if (ps->state_fd >= 0)
                        close(ps->state_fd);
                free(ps->removed);
                free(ps->hot_units);
                free(ps);
        }
        return NULL;
}

static int by_offset(const void *a, const void *b) {
        const struct ps_map *x = a, *y = b;
        return x->offset < y->offset ? -1 : x->offset > y->offset;
}

static int by_base(const void *a, const void *b) {
        const struct ps_map *x = a, *y = b;
        return x->base < y->base ? -1 : x->base > y->base;
}

/* The VMM's mappings, checked: aligned to their page size (one, 4 KiB or 2 MiB), disjoint in
 * the VMM's memory and in the source; sorted by offset into ps->maps. */
static int take_mappings(struct gmem_page_server *ps, const struct gmem_uffd_mapping *maps, size_t n) {
        _cleanup_free_ struct ps_map *v = NULL;
        uint64_t pgsz = maps[0].page_size ? maps[0].page_size : 4096;

        if (pgsz != 4096 && pgsz != 2 * MiB)
                return gmem_error(-EINVAL, "page server: page size %" PRIu64 " (served are 4 KiB and 2 MiB pages)", pgsz);
        if (!(v = calloc(n, sizeof(*v))))
                return gmem_error(-ENOMEM, "page server: %zu mappings", n);
        for (size_t i = 0; i < n; i++) {
                const struct gmem_uffd_mapping *m = &maps[i];
                uint64_t end;
                if ((m->page_size ? m->page_size : 4096) != pgsz)
                        return gmem_error(-EINVAL, "page server: mapping %zu has pages of %" PRIu64 " bytes, mapping 0 of %" PRIu64,
                                          i, m->page_size, pgsz);
                if (m->size == 0 || m->base % pgsz || m->size % pgsz || m->offset % pgsz ||
                    __builtin_add_overflow(m->base, m->size, &end) || __builtin_add_overflow(m->offset, m->size, &end))
                        return gmem_error(-EINVAL, "page server: mapping %zu (%#" PRIx64 "+%" PRIu64 " at offset %" PRIu64
                                          ") is empty, not aligned to its %" PRIu64 "-byte pages, or wraps", i, m->base, m->size,
                                          m->offset, pgsz);
                v[i] = (struct ps_map) { .base = m->base, .size = m->size, .offset = m->offset };
        }
        qsort(v, n, sizeof(*v), by_base);
        for (size_t i = 1; i < n; i++)
                if (v[i - 1].base + v[i - 1].size > v[i].base)
                        return gmem_error(-EINVAL, "page server: mappings at %#" PRIx64 " and %#" PRIx64 " overlap",
                                          v[i - 1].base, v[i].base);
        qsort(v, n, sizeof(*v), by_offset);
        for (size_t i = 1; i < n; i++)
                if (v[i - 1].offset + v[i - 1].size > v[i].offset)
                        return gmem_error(-EINVAL, "page server: two mappings hold the source's offset %" PRIu64, v[i].offset);
        ps->pgsz = pgsz;
        ps->maps = TAKE_PTR(v);
        ps->n_maps = n;
        return 0;
}

/* The source (a gmem snapshot, or a raw memory file), the unit, and the mappings' units. */
static int open_source(struct gmem_page_server *ps, bool raw) {
        int k;

        ps->unit = MAX((uint64_t) SNAP_BLOCK, ps->pgsz); /* raw: the extents are cut to it */
        if (raw) {
                _cleanup_free_ uint64_t (*ranges)[2] = calloc(ps->n_maps, sizeof(*ranges));
                if (!ranges)
                        return gmem_error(-ENOMEM, "page server");
                for (size_t i = 0; i < ps->n_maps; i++) {
                        ranges[i][0] = ps->maps[i].offset;
                        ranges[i][1] = ps->maps[i].offset + ps->maps[i].size;
                }
                if ((k = snapshot_open_raw(ps->snap_fd, (const uint64_t (*)[2]) ranges, ps->n_maps, ps->unit, &ps->s)) < 0)
                        return k;
        } else {
                if ((k = gmem_snapshot_open(ps->snap_fd, &ps->s)) < 0)
                        return k;
                /* a fault fetches the smallest block no extent spans two of: this writer's cut,
                 * a larger one for snapshots cut larger, at most a 2 MiB window */
                for (uint64_t i = 0; i < ps->s->h.n_extents && ps->unit < SNAP_WINDOW; i++) {
                        const struct snap_extent *e = &ps->s->extents[i];
                        while (e->offset / ps->unit != (e->offset + e->length - 1) / ps->unit)
                                ps->unit *= 2;
                }
        }
        for (size_t i = 0; i < ps->n_maps; i++) {
                struct ps_map *m = &ps->maps[i];
                if (!range_within(m->offset, m->size, ps->s->h.region_size))
                        return gmem_error(-EINVAL, "page server: mapping %#" PRIx64 "+%" PRIu64 " at offset %" PRIu64
                                          " is beyond the %" PRIu64 " bytes of the %s", m->base, m->size, m->offset,
                                          ps->s->h.region_size, raw ? "memory file" : "snapshot");
                if (!raw && m->offset % ps->unit)
                        return gmem_error(-EINVAL, "page server: mapping %#" PRIx64 " at offset %" PRIu64
                                          " of a gmem snapshot: the offset must be a multiple of %" PRIu64, m->base,
                                          m->offset, ps->unit);
                m->first_unit = ps->n_units;
                m->n_units = (m->size + ps->unit - 1) / ps->unit;
                ps->n_units += m->n_units;
        }
        ps->unit_shift = (unsigned) __builtin_ctzll(ps->unit);
        ps->buf = malloc(ps->unit);
        ps->done = calloc(ps->n_units, 1);
        ps->hot_units = calloc(ps->s->h.hot_count + 1, sizeof(uint64_t));
        if (!ps->buf || !ps->done || !ps->hot_units)
                return gmem_error(-ENOMEM, "page server: %" PRIu64 " blocks", ps->n_units);
        /* the snapshot's hot list, as this server's units: what a mapping serves of it */
        for (uint32_t i = 0; i < ps->s->h.hot_count; i++) {
                uint64_t off = (uint64_t) ps->s->hot[i] << ps->s->h.hot_shift;
                for (size_t j = 0; j < ps->n_maps; j++) {
                        const struct ps_map *m = &ps->maps[j];
                        if (off >= m->offset && off - m->offset < m->size) {
                                ps->hot_units[ps->n_hot_units++] = m->first_unit + (off - m->offset) / ps->unit;
                                break;
                        }
                }
        }
        return 0;
}

_public_ int gmem_page_server_new_mapped(int uffd, const struct gmem_uffd_mapping *maps, size_t n_maps, int source_fd,
                                         uint64_t flags, struct gmem_page_server **ret) {
        struct gmem_page_server *ps;
        int k;

        if (uffd < 0 || source_fd < 0 || !maps || n_maps == 0 || !ret)
                return gmem_error(-EINVAL, "page server: invalid uffd, source fd, mappings or NULL result");
        if (n_maps > GMEM_UFFD_MAPPINGS_MAX)
                return gmem_error(-E2BIG, "page server: %zu mappings (at most %d)", n_maps, GMEM_UFFD_MAPPINGS_MAX);
        if (flags & ~GMEM_PAGE_SERVER_RAW)
                return gmem_error(-EINVAL, "page server: unknown flags %#" PRIx64, (uint64_t) (flags & ~GMEM_PAGE_SERVER_RAW));
        if (!(ps = calloc(1, sizeof(*ps))))
                return gmem_error(-ENOMEM, "page server");
        ps->uffd = uffd;
        ps->snap_fd = source_fd;
        ps->state_fd = -1;
        if ((k = take_mappings(ps, maps, n_maps)) < 0 || (k = open_source(ps, flags & GMEM_PAGE_SERVER_RAW)) < 0) {
                gmem_page_server_free(ps);
                return k;
        }
        *ret = ps;
        return 0;
}

_public_ int gmem_page_server_new(int uffd, uint64_t base, int snapshot_fd, struct gmem_region *region,
                                  struct gmem_page_server **ret) {
        struct gmem_uffd_mapping m = { .base = base, .page_size = region ? region->page_size : 4096 };
        struct gmem_page_server *ps;
        uint64_t size;
        int k;

        if (uffd < 0 || snapshot_fd < 0 || !ret || base % page_size())
                return gmem_error(-EINVAL, "page server: invalid uffd, snapshot fd, base or NULL result");
        /* the whole snapshot at base: its size from the header, checked again when it is opened */
        if ((k = snapshot_peek_size(snapshot_fd, &size)) < 0)
                return k;
        m.size = size;
        if (region && gmem_region_size(region) != size)
                return gmem_error(-EINVAL, "page server: the region has %" PRIu64 " bytes, the snapshot %" PRIu64,
                                  gmem_region_size(region), size);
        if ((k = gmem_page_server_new_mapped(uffd, &m, 1, snapshot_fd, 0, &ps)) < 0)
                return k;
        if (gmem_snapshot_info_size(ps->s) != size) {
                gmem_page_server_free(ps);
                return gmem_error(-EBADMSG, "page server: the snapshot changed while it was opened");
        }
        if (region) {
                ps->region = region;
                if ((k = region_map_for(region, "page server", &ps->map)) < 0) {
                        gmem_page_server_free(ps);
                        return k;
                }
        }
        *ret = ps;
        return 0;
}

/* The state memfd's mapping as the server's per-unit state. */
static int map_state(struct gmem_page_server *ps, int fd, bool fresh) {
        size_t len = sizeof(struct ps_state) + ps->n_units;
        struct ps_state want = { .magic = PS_STATE_MAGIC, .n_units = ps->n_units, .unit = ps->unit,
                                 .source_size = ps->s->h.region_size };
        struct stat st;
        uint8_t *p;

        if (!fresh && (fstat(fd, &st) < 0 || (uint64_t) st.st_size != len))
                return gmem_error(-EINVAL, "page server: the state fd is not a page server's state of %" PRIu64 " blocks",
                                  ps->n_units);
        p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED)
                return gmem_error(negative_errno(), "page server: map its state");
        if (fresh) {
                memcpy(p, &want, sizeof(want));
                memcpy(p + sizeof(want), ps->done, ps->n_units);
        } else if (memcmp(p, &want, sizeof(want)) != 0) {
                munmap(p, len);
                return gmem_error(-EINVAL, "page server: the state is another server's (other blocks, or another source)");
        }
        if (ps->state_map)
                munmap(ps->state_map, ps->state_len);
        else
                free(ps->done);
        ps->state_map = p;
        ps->state_len = len;
        ps->done = p + sizeof(want);
        return 0;
}

_public_ int gmem_page_server_keep_state(struct gmem_page_server *ps, int *ret_fd) {
        _cleanup_close_ int fd = -1;
        int k, r;

        if (!ps || !ret_fd)
                return gmem_error(-EINVAL, "page server: NULL");
        if (ps->state_fd < 0) {
                fd = memfd_create("gmem-page-server-state", MFD_CLOEXEC);
                if (fd < 0)
                        return gmem_error(negative_errno(), "page server: memfd_create for its state");
                if (ftruncate(fd, (off_t) (sizeof(struct ps_state) + ps->n_units)) < 0)
                        return gmem_error(negative_errno(), "page server: size its state");
                if ((k = map_state(ps, fd, true)) < 0)
                        return k;
                ps->state_fd = TAKE_FD(fd);
        }
        r = fcntl(ps->state_fd, F_DUPFD_CLOEXEC, 3);
        if (r < 0)
                return gmem_error(negative_errno(), "page server: dup its state fd");
        *ret_fd = r;
        return 0;
}

_public_ int gmem_page_server_resume(struct gmem_page_server *ps, int state_fd) {
        uint64_t done = 0;
        int k;

        if (!ps || state_fd < 0)
                return gmem_error(-EINVAL, "page server: NULL or invalid state fd");
        if (ps->n_done || ps->faults || ps->state_fd >= 0)
                return gmem_error(-EBUSY, "page server: it has served already; resume a new one");
        if ((k = map_state(ps, state_fd, false)) < 0)
                return k;
        if ((ps->state_fd = fcntl(state_fd, F_DUPFD_CLOEXEC, 3)) < 0)
                return gmem_error(negative_errno(), "page server: dup its state fd");
        for (uint64_t w = 0; w < ps->n_units; w++) {
                if (ps->done[w] > UNIT_DONE || (ps->done[w] == UNIT_WRITTEN && !ps->map))
                        ps->done[w] = UNIT_NONE; /* nothing this server could have left */
                done += ps->done[w] == UNIT_DONE;
        }
        ps->n_done = done;
        return 0;
}

_public_ int gmem_page_server_fd(const struct gmem_page_server *ps) {
        return ps ? ps->uffd : gmem_error(-EINVAL, "page server: NULL");
}

static const struct ps_map *unit_map(const struct gmem_page_server *ps, uint64_t w) {
        size_t lo = 0, hi = ps->n_maps;
        while (hi - lo > 1) {
                size_t mid = lo + (hi - lo) / 2;
                if (ps->maps[mid].first_unit <= w)
                        lo = mid;
                else
                        hi = mid;
        }
        return &ps->maps[lo];
}

static const struct ps_map *addr_map(const struct gmem_page_server *ps, uint64_t addr) {
        for (size_t i = 0; i < ps->n_maps; i++)
                if (addr >= ps->maps[i].base && addr - ps->maps[i].base < ps->maps[i].size)
                        return &ps->maps[i];
        return NULL;
}

/* the VMM's address of the source's byte off, in m */
static inline uint64_t vaddr(const struct ps_map *m, uint64_t off) {
        return m->base + (off - m->offset);
}

/* ioctl until done: EAGAIN (the mm is changing) retried, EEXIST (a racing fault won) is fine */
static int uffd_call(int uffd, unsigned long req, void *arg, const char *what, uint64_t at) {
        for (;;) {
                if (ioctl(uffd, req, arg) == 0 || errno == EEXIST)
                        return 0;
                if (errno == EAGAIN || errno == EINTR)
                        continue;
                return gmem_error(negative_errno(), "%s at %#" PRIx64, what, at);
        }
}

static int copy_range(struct gmem_page_server *ps, const struct ps_map *m, const uint8_t *src, uint64_t off, uint64_t len) {
        for (uint64_t done = 0; done < len;) {
                struct uffdio_copy c = { .dst = vaddr(m, off + done), .src = (uintptr_t) (src + done), .len = len - done };
                if (ioctl(ps->uffd, UFFDIO_COPY, &c) == 0) {
                        done = len;
                        continue;
                }
                if (errno == EAGAIN || errno == EINTR || errno == EEXIST) {
                        /* partly done (c.copy bytes), or a page there already: go on page by page */
                        uint64_t step = c.copy > 0 ? (uint64_t) c.copy : ps->pgsz;
                        done += MIN(step, len - done);
                        continue;
                }
                return gmem_error(negative_errno(), "UFFDIO_COPY at %#" PRIx64 "+%" PRIu64, vaddr(m, off + done), len - done);
        }
        return 0;
}

/* Map [off, off+len) of the VMM's memory: UFFDIO_CONTINUE of the region's pages (MINOR), or zero
 * pages (MISSING: a hole of the snapshot, or a discarded page). */
static int map_range(struct gmem_page_server *ps, const struct ps_map *m, uint64_t off, uint64_t len, bool minor) {
        for (uint64_t done = 0; done < len;) {
                uint64_t at = vaddr(m, off + done);
                int64_t got;
                int r;
                if (minor) {
                        struct uffdio_continue c = { .range = { .start = at, .len = len - done } };
                        r = ioctl(ps->uffd, UFFDIO_CONTINUE, &c);
                        got = c.mapped;
                } else {
                        struct uffdio_zeropage z = { .range = { .start = at, .len = len - done } };
                        r = ioctl(ps->uffd, UFFDIO_ZEROPAGE, &z);
                        got = z.zeropage;
                }
                if (r == 0)
                        return 0;
                if (errno == EAGAIN || errno == EINTR || errno == EEXIST) {
                        /* partly done, or a page there already (a racing fault): past it, page by page */
                        done += MIN(got > 0 ? (uint64_t) got : ps->pgsz, len - done);
                        continue;
                }
                return gmem_error(negative_errno(), "%s at %#" PRIx64 "+%" PRIu64, minor ? "UFFDIO_CONTINUE" : "UFFDIO_ZEROPAGE",
                                  at, len - done);
        }
        return 0;
}

/* [a, b) of the region reads as zeroes (a hole of the snapshot, a page punched since): zero
 * pages where the file has none, else its (zero) pages mapped. A file that takes no zero page —
 * hugetlb, guest_memfd (UFFDIO_ZEROPAGE is EINVAL there) — gets the zeroes written through the
 * server's mapping, and they are mapped with UFFDIO_CONTINUE. */
static int zero_or_continue(struct gmem_page_server *ps, const struct ps_map *m, uint64_t a, uint64_t b) {
        if (ps->pgsz > 4096 || __atomic_load_n(&ps->no_zeropage, __ATOMIC_RELAXED)) {
                /* only where the file has no page (UFFDIO_CONTINUE says EFAULT): a page it has
                 * is mapped as it is, never overwritten (the guest may have written it) */
                for (uint64_t off = a; off < b; off += ps->pgsz) {
                        struct uffdio_continue c = { .range = { .start = vaddr(m, off), .len = ps->pgsz } };
                        int k;
                        if (ioctl(ps->uffd, UFFDIO_CONTINUE, &c) == 0 || errno == EEXIST)
                                continue;
                        if (errno == EAGAIN || errno == EINTR) {
                                off -= ps->pgsz;
                                continue;
                        }
                        if (errno != EFAULT)
                                return gmem_error(negative_errno(), "UFFDIO_CONTINUE at %#" PRIx64, vaddr(m, off));
                        memset(ps->map + off, 0, ps->pgsz);
                        if ((k = map_range(ps, m, off, ps->pgsz, true)) < 0)
                                return k;
                }
                return 0;
        }
        for (uint64_t off = a; off < b; off += 4096) {
                struct uffdio_zeropage z = { .range = { .start = vaddr(m, off), .len = 4096 } };
                if (ioctl(ps->uffd, UFFDIO_ZEROPAGE, &z) == 0)
                        continue;
                if (errno == EEXIST) { /* the file has the page: map it */
                        int k = map_range(ps, m, off, 4096, true);
                        if (k < 0)
                                return k;
                        continue;
                }
                if (errno == EAGAIN || errno == EINTR) {
                        off -= 4096;
                        continue;
                }
                if (errno == EINVAL) { /* no zero pages in this file: written zeroes from here on */
                        __atomic_store_n(&ps->no_zeropage, true, __ATOMIC_RELAXED);
                        return zero_or_continue(ps, m, off, b);
                }
                return gmem_error(negative_errno(), "UFFDIO_ZEROPAGE at %#" PRIx64, vaddr(m, off));
        }
        return 0;
}

/* MINOR: the unit's pages mapped. Pooled memory has them all (holes as zero pages): one
 * UFFDIO_CONTINUE. A fresh region has only the extents just written: those are continued, and the
 * holes get zero pages (UFFDIO_ZEROPAGE works on shmem too). */
static int continue_unit(struct gmem_page_server *ps, const struct ps_map *m, uint64_t start, uint64_t end) {
        struct uffdio_continue c = { .range = { .start = vaddr(m, start), .len = end - start } };
        uint64_t next = start;
        int k;

        if (ps->pgsz > 4096) /* huge pages: each mapped as the file has it (the fault's already), else zeroes */
                return zero_or_continue(ps, m, start, end);
        if (ioctl(ps->uffd, UFFDIO_CONTINUE, &c) == 0)
                return 0;
        if (errno != EFAULT && errno != EEXIST && errno != EAGAIN)
                return gmem_error(negative_errno(), "UFFDIO_CONTINUE at %#" PRIx64, (uint64_t) c.range.start);
        for (uint64_t i = snapshot_extent_at(ps->s, start); i < ps->s->h.n_extents && ps->s->extents[i].offset < end; i++) {
                const struct snap_extent *e = &ps->s->extents[i];
                if ((k = zero_or_continue(ps, m, next, e->offset)) < 0 || (k = map_range(ps, m, e->offset, e->length, true)) < 0)
                        return k;
                next = e->offset + e->length;
        }
        return zero_or_continue(ps, m, next, end);
}

/* Private memory: the pages of [off, off+len) the VMM discarded before they were served, zeroed
 * in dst (which holds that range). */
static void clear_removed(const struct gmem_page_server *ps, uint8_t *dst, uint64_t off, uint64_t len) {
        if (!ps->removed)
                return;
        for (uint64_t p = off / 4096; p < (off + len) / 4096; p++)
                if (ps->removed[p / 64] & (UINT64_C(1) << (p % 64)))
                        memset(dst + (p * 4096 - off), 0, 4096);
}

/* Serve unit w whole: its extents read and verified, then installed (COPY; or written through
 * the region and mapped with CONTINUE), and its holes mapped too, so that it faults once. */
static int serve_unit(struct gmem_page_server *ps, uint64_t w, uint64_t fault, uint8_t *buf) {
        const struct ps_map *m = unit_map(ps, w);
        uint64_t start = m->offset + (w - m->first_unit) * ps->unit, end = MIN(start + ps->unit, m->offset + m->size);
        uint64_t next = start;
        bool huge = ps->pgsz > 4096;
        /* With the region's file at hand, every fault is filled through it and continued: the
         * file gets the page, and UFFDIO_CONTINUE maps it and wakes the waiters whatever their
         * fault (a MISSING fault of a page not yet in the file too) — no kernel copy into the
         * page, and nothing asked of the file's UFFDIO_COPY (a guest_memfd's). */
        bool minor = ps->map != NULL;
        int k;

        if (ps->done[w] == UNIT_DONE)
                return 0;
        if (ps->done[w] == UNIT_WRITTEN) /* a server before this one wrote it: only mapping is left */
                goto map;
        if (huge && !minor) /* one huge page: assembled whole, holes as zeroes, copied at once */
                memset(buf, 0, end - start);
        for (uint64_t i = snapshot_extent_at(ps->s, start); i < ps->s->h.n_extents && ps->s->extents[i].offset < end; i++) {
                const struct snap_extent *e = &ps->s->extents[i];
                uint64_t len = MIN(e->offset + e->length, end) - e->offset; /* what of it this mapping holds */
                /* MINOR: into the file, through write() where it has one (its pages are then
                 * not zeroed first), else through the server's mapping */
                bool via_write = minor && buf && ps->region->write_syscall;
                uint8_t *dst = minor && !via_write ? ps->map + e->offset : buf + (e->offset - start);

                if ((k = snapshot_read_extent(ps->snap_fd, ps->s, e, dst, NULL)) < 0)
                        return k;
                if (via_write && (k = gmem_write_full(ps->region->fd, dst, e->length, e->offset, "page server", NULL)) < 0)
                        return k;
                if (minor)
                        continue;
                clear_removed(ps, dst, e->offset, len);
                if (huge)
                        continue;
                /* the faulting page first: its thread goes on while the rest goes in */
                if (fault >= e->offset && fault < e->offset + len &&
                    (k = copy_range(ps, m, dst + (fault - e->offset), fault, 4096)) < 0)
                        return k;
                if ((k = map_range(ps, m, next, e->offset - next, false)) < 0 || (k = copy_range(ps, m, dst, e->offset, len)) < 0)
                        return k;
                next = e->offset + len;
        }
        if (minor) {
                /* the whole unit is in the file before any of it is mapped: a server resuming
                 * after this one only maps it, never writes over what the guest wrote since */
                ps->done[w] = UNIT_WRITTEN;
        map:
                if (fault >= start && fault < end && (k = map_range(ps, m, align_down(fault, ps->pgsz), ps->pgsz, true)) < 0 &&
                    k != -EFAULT)
                        return k;
                k = continue_unit(ps, m, start, end);
        } else if (huge)
                k = copy_range(ps, m, buf, start, end - start);
        else
                k = map_range(ps, m, next, end - next, false);
        if (k < 0)
                return k;
        ps->done[w] = UNIT_DONE;
        __atomic_add_fetch(&ps->n_done, 1, __ATOMIC_RELAXED);
        return 0;
}

/* The VMM discarded [a, b) of its memory. Private memory then reads as zeroes: pages not yet
 * served are marked, to be served as zeroes; served ones fault again (handle() maps a zero page).
 * A shared mapping's file keeps what it had (MADV_DONTNEED) or was punched (a MISSING fault then
 * gets a zero page): nothing to mark. */
static int discard(struct gmem_page_server *ps, uint64_t a, uint64_t b) {
        if (ps->region)
                return 0;
        for (size_t i = 0; i < ps->n_maps; i++) {
                const struct ps_map *m = &ps->maps[i];
                uint64_t lo = MAX(a, m->base), hi = MIN(b, m->base + m->size);
                if (lo >= hi)
                        continue;
                if (!ps->removed && !(ps->removed = calloc((ps->s->h.region_size / 4096 + 63) / 64, sizeof(uint64_t))))
                        return gmem_error(-ENOMEM, "page server: the discarded pages");
                for (uint64_t p = (m->offset + (align_down(lo, 4096) - m->base)) / 4096; p < (m->offset + (hi - m->base) + 4095) / 4096; p++)
                        ps->removed[p / 64] |= UINT64_C(1) << (p % 64);
        }
        return 0;
}

static int handle(struct gmem_page_server *ps, const struct uffd_msg *msg) {
        const struct ps_map *m;
        uint64_t addr, off, w;
        bool minor;
        int k;

        if (msg->event == UFFD_EVENT_REMOVE || msg->event == UFFD_EVENT_UNMAP)
                return discard(ps, msg->arg.remove.start, msg->arg.remove.end);
        if (msg->event != UFFD_EVENT_PAGEFAULT)
                return 0;
        addr = align_down(msg->arg.pagefault.address, ps->pgsz);
        if (!(m = addr_map(ps, addr)))
                return gmem_error(-EFAULT, "page server: a fault at %#" PRIx64 " outside the memory it serves", addr);
        off = m->offset + (addr - m->base);
        w = m->first_unit + (addr - m->base) / ps->unit;
        minor = msg->arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_MINOR;
        ps->faults++;
        if (ps->done[w] != UNIT_DONE) {
                uint64_t start = m->offset + (w - m->first_unit) * ps->unit;
                if (ps->n_hot_rec < SNAP_HOT_MAX && (start >> ps->unit_shift) <= UINT32_MAX)
                        ps->hot_rec[ps->n_hot_rec++] = (uint32_t) (start >> ps->unit_shift);
                return serve_unit(ps, w, off, ps->buf); /* the unit is there now, and its waiters woken */
        }
        /* Served already: a fault queued before its unit was served (that woke it), or a page
         * discarded since. Map what belongs there — the file's page (MINOR), else a zero page —
         * past pages there already, and wake the thread. */
        if (minor && ps->map)
                k = map_range(ps, m, off, ps->pgsz, true);
        else if (ps->map) /* the file lost the page (punched): zeroes */
                k = zero_or_continue(ps, m, off, off + ps->pgsz);
        else if (ps->pgsz > 4096) {
                memset(ps->buf, 0, ps->pgsz);
                k = copy_range(ps, m, ps->buf, off, ps->pgsz);
        } else
                k = map_range(ps, m, off, ps->pgsz, false);
        if (k < 0)
                return k;
        {
                struct uffdio_range r = { .start = addr, .len = ps->pgsz };
                return uffd_call(ps->uffd, UFFDIO_WAKE, &r, "UFFDIO_WAKE", addr);
        }
}

_public_ int gmem_page_server_run(struct gmem_page_server *ps, int timeout_ms) {
        struct uffd_msg msgs[16];
        int served = 0, k;

        if (!ps)
                return gmem_error(-EINVAL, "page server: NULL");
        for (;;) {
                ssize_t n = read(ps->uffd, msgs, sizeof(msgs));
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN) {
                        struct pollfd p = { .fd = ps->uffd, .events = POLLIN };
                        if (served || timeout_ms == 0)
                                return served;
                        k = poll(&p, 1, timeout_ms);
                        if (k < 0 && errno != EINTR)
                                return gmem_error(negative_errno(), "page server: poll");
                        if (k == 0)
                                return served;
                        timeout_ms = 0; /* after the first wakeup, only what is there */
                        continue;
                }
                if (n < 0)
                        return gmem_error(negative_errno(), "page server: read the userfaultfd");
                for (ssize_t i = 0; i < n / (ssize_t) sizeof(msgs[0]); i++) {
                        if ((k = handle(ps, &msgs[i])) < 0)
                                return k;
                        served++;
                }
        }
}

/* prefetch, on the job engine's threads: units list[off / unit] (the hot list), or
 * first + off / unit */
struct prefetch_ctx {
        struct gmem_page_server *ps;
        const uint64_t *list;
        uint64_t first;
};

#define RUN_BYTES SNAP_WINDOW /* what a prefetch serves at once */

/* Prefetch n units from w on — of one mapping, none served or written — at once: one read of
 * the snapshot's bytes for them all, each extent verified where it landed and the holes zeroed;
 * then, into the region's file, one write() (holes written as zeroes: they would get zero pages
 * anyway) and one UFFDIO_CONTINUE; into private memory, the extents copied and the holes given
 * zero pages. A unit is what a fault fetches; this is fewer calls for the same bytes. */
static int serve_run(struct gmem_page_server *ps, uint64_t w, uint64_t n, uint8_t *buf) {
        const struct ps_map *m = unit_map(ps, w);
        uint64_t start = m->offset + (w - m->first_unit) * ps->unit, end = MIN(start + n * ps->unit, m->offset + m->size);
        uint64_t next = start, i0 = snapshot_extent_at(ps->s, start);
        bool region = ps->map != NULL, via_write = region && ps->region->write_syscall;
        uint8_t *dst = region && !via_write ? ps->map + start : buf;
        int k;

        if ((k = gmem_read_full(ps->snap_fd, dst, end - start, ps->s->h.data_offset + start, NULL)) < 0)
                return k == -ENODATA ? snapshot_truncated() : k;
        for (uint64_t i = i0; i < ps->s->h.n_extents && ps->s->extents[i].offset < end; i++) {
                const struct snap_extent *e = &ps->s->extents[i];
                uint64_t len = MIN(e->offset + e->length, end) - e->offset;
                if (e->offset + e->length > end) /* cut by the mapping's end: verified whole, one by one */
                        return 1;
                memset(dst + (next - start), 0, e->offset - next); /* a hole reads as zeroes, whatever the file has */
                if (!ps->s->raw && gmem_crc32c(0, dst + (e->offset - start), e->length) != e->crc)
                        return snapshot_bad_extent(e);
                next = e->offset + len;
        }
        memset(dst + (next - start), 0, end - next);
        if (region) {
                if (via_write && (k = gmem_write_full(ps->region->fd, buf, end - start, start, "page server", NULL)) < 0)
                        return k;
                for (uint64_t u = 0; u < n; u++)
                        ps->done[w + u] = UNIT_WRITTEN;
                if ((k = map_range(ps, m, start, end - start, true)) < 0)
                        return k;
        } else {
                next = start;
                clear_removed(ps, buf, start, end - start);
                for (uint64_t i = i0; i < ps->s->h.n_extents && ps->s->extents[i].offset < end; i++) {
                        const struct snap_extent *e = &ps->s->extents[i];
                        if ((k = map_range(ps, m, next, e->offset - next, false)) < 0 ||
                            (k = copy_range(ps, m, buf + (e->offset - start), e->offset, e->length)) < 0)
                                return k;
                        next = e->offset + e->length;
                }
                if ((k = map_range(ps, m, next, end - next, false)) < 0)
                        return k;
        }
        for (uint64_t u = 0; u < n; u++)
                ps->done[w + u] = UNIT_DONE;
        __atomic_add_fetch(&ps->n_done, n, __ATOMIC_RELAXED);
        return 0;
}

static int prefetch_chunk(void *userdata, uint64_t off, uint64_t len, uint64_t *ret_count) {
        struct prefetch_ctx *c = userdata;
        struct gmem_page_server *ps = c->ps;
        bool runs = !c->list && ps->pgsz == 4096 && !__atomic_load_n(&ps->no_zeropage, __ATOMIC_RELAXED);
        uint64_t run_max = runs ? MAX(UINT64_C(1), RUN_BYTES / ps->unit) : 1;
        _cleanup_free_ uint8_t *buf = malloc(ps->unit * run_max);
        uint64_t filled = 0;
        int k;

        if (!buf)
                return gmem_error(-ENOMEM, "page server: buffer");
        for (uint64_t x = off; x < off + len;) {
                uint64_t w = c->list ? c->list[x / ps->unit] : c->first + x / ps->unit, n = 1;
                if (w >= ps->n_units || ps->done[w] == UNIT_DONE) {
                        x += ps->unit;
                        continue;
                }
                if (runs && ps->done[w] == UNIT_NONE) {
                        const struct ps_map *m = unit_map(ps, w);
                        /* the unserved units after it, in its mapping and this chunk */
                        while (n < run_max && x + (n + 1) * ps->unit <= off + len && w + n < m->first_unit + m->n_units &&
                               ps->done[w + n] == UNIT_NONE)
                                n++;
                        if (n > 1 && (k = serve_run(ps, w, n, buf)) <= 0) {
                                if (k < 0)
                                        return k;
                                filled += n * ps->unit;
                                x += n * ps->unit;
                                continue;
                        }
                        n = 1; /* one unit, or a run that needs the extent-by-extent way */
                }
                if ((k = serve_unit(ps, w, UINT64_MAX, buf)) < 0)
                        return k;
                filled += ps->unit;
                x += ps->unit;
        }
        *ret_count = filled;
        return 0;
}

/* units [0, n) of c in parallel: the bytes filled */
static int64_t prefetch_batch(struct gmem_page_server *ps, struct prefetch_ctx *c, uint64_t n) {
        struct gmem_populate_opts o = GMEM_POPULATE_OPTS_INIT;
        struct gmem_job job = { .fn = prefetch_chunk, .ctx = c, .opts = &o };
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        uint64_t filled = 0;
        int k;

        job.total = n * ps->unit;
        job.align = ps->unit;
        o.chunk_size = MAX(ps->unit, job.total / 16);
        o.threads = (unsigned) MIN(MAX(cores, 1L), 8L); /* all of them: this is the bulk of a restore */
        k = gmem_job_run(&job, &filled);
        return k < 0 ? k : (int64_t) filled;
}

_public_ int64_t gmem_page_server_prefetch(struct gmem_page_server *ps, uint64_t max_bytes) {
        uint64_t batch;
        int64_t filled = 0;

        if (!ps)
                return gmem_error(-EINVAL, "page server: NULL");
        if (max_bytes == 0)
                return 0;
        batch = MAX(UINT64_C(1), max_bytes / ps->unit);
        /* the hot list first (a batch that finds it all served already goes on), then in order */
        while (filled == 0 && ps->hot_next < ps->n_hot_units) {
                struct prefetch_ctx c = { .ps = ps, .list = ps->hot_units + ps->hot_next };
                uint64_t n = MIN(batch, (uint64_t) (ps->n_hot_units - ps->hot_next));
                if ((filled = prefetch_batch(ps, &c, n)) < 0)
                        return filled;
                ps->hot_next += (uint32_t) n;
        }
        if (filled > 0)
                return filled;
        while (ps->next_prefetch < ps->n_units && ps->done[ps->next_prefetch] == UNIT_DONE)
                ps->next_prefetch++;
        if (ps->next_prefetch >= ps->n_units)
                return 0;
        {
                struct prefetch_ctx c = { .ps = ps, .first = ps->next_prefetch };
                uint64_t n = MIN(ps->n_units - ps->next_prefetch, batch);
                if ((filled = prefetch_batch(ps, &c, n)) < 0)
                        return filled;
                ps->next_prefetch += n;
        }
        return filled;
}

/* The snapshot's hot list, then this run's first faults that are not on it: a run that was
 * prefetched hot-first faults only on what the list lacked, and that is added, not a list of it. */
_public_ int gmem_page_server_save_hot(struct gmem_page_server *ps, int snapshot_fd) {
        uint32_t list[SNAP_HOT_MAX], n = 0;
        int k;

        if (!ps || snapshot_fd < 0)
                return gmem_error(-EINVAL, "page server: NULL or invalid snapshot fd");
        if (ps->s->raw)
                return gmem_error(-EOPNOTSUPP, "page server: a raw memory file has no room for a hot list");
        for (uint32_t i = 0; i < ps->s->h.hot_count; i++) {
                uint64_t unit = ((uint64_t) ps->s->hot[i] << ps->s->h.hot_shift) >> ps->unit_shift;
                list[n++] = (uint32_t) unit;
        }
        for (uint32_t i = 0; i < ps->n_hot_rec && n < SNAP_HOT_MAX; i++) {
                bool known = false;
                for (uint32_t j = 0; j < n && !known; j++)
                        known = list[j] == ps->hot_rec[i];
                if (!known)
                        list[n++] = ps->hot_rec[i];
        }
        if ((k = snapshot_set_hot(snapshot_fd, list, n, ps->unit_shift, &ps->s->h)) < 0)
                return k;
        return (int) n;
}

_public_ bool gmem_page_server_complete(const struct gmem_page_server *ps) {
        return ps && ps->n_done == ps->n_units;
}

_public_ uint64_t gmem_page_server_served_bytes(const struct gmem_page_server *ps) {
        uint64_t total = 0;

        if (!ps)
                return 0;
        for (size_t i = 0; i < ps->n_maps; i++)
                total += ps->maps[i].size;
        return MIN(ps->n_done * ps->unit, total);
}

_public_ uint64_t gmem_page_server_faults(const struct gmem_page_server *ps) {
        return ps ? ps->faults : 0;
}
