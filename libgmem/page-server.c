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

#include "error.h"
#include "io.h"
#include "job.h"
#include "macro.h"
#include "page-server.h"
#include "region.h"
#include "uffd-compat.h"
#include "snapshot.h"

/* The head of a server's state memfd: which server's it is. Then a byte per unit (UNIT_*), then
 * (from the second layout on) the discarded pages, a bit per 4 KiB page of the source. */
struct ps_state {
        char magic[8];
        uint64_t n_units, unit, source_size;
};
#define PS_STATE_MAGIC "GMEMPSS2"
#define PS_STATE_MAGIC_V1 "GMEMPSS1" /* no discarded pages: a gmemd before they were kept */

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
                if (ps->state_map && ps->removed_in_state)
                        ps->removed = NULL; /* went with the state's mapping */
                ps_events_done(ps);
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
                if (!ps->s && (k = gmem_snapshot_open(ps->snap_fd, &ps->s)) < 0)
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
        if ((k = ps_events_init(ps)) < 0)
                return k;
        ps->buf = malloc(ps->unit);
        ps->done = calloc(ps->n_units, 1);
        ps->hot_units = calloc(ps->s->h.hot_count + 1, sizeof(uint64_t));
        if (!ps->buf || !ps->done || !ps->hot_units)
                return gmem_error(-ENOMEM, "page server: %" PRIu64 " blocks", ps->n_units);
        /* the snapshot's hot list, as this server's units: what a mapping serves of it, each unit
         * once (a list in smaller units, or a forged one, names some twice: two prefetch threads
         * would fill the same unit at once) */
        for (uint32_t i = 0; i < ps->s->h.hot_count; i++) {
                uint64_t off = (uint64_t) ps->s->hot[i] << ps->s->h.hot_shift;
                for (size_t j = 0; j < ps->n_maps; j++) {
                        const struct ps_map *m = &ps->maps[j];
                        if (off >= m->offset && off - m->offset < m->size) {
                                uint64_t w = m->first_unit + (off - m->offset) / ps->unit;
                                bool seen = false;
                                for (uint32_t x = 0; x < ps->n_hot_units && !seen; x++)
                                        seen = ps->hot_units[x] == w;
                                if (!seen)
                                        ps->hot_units[ps->n_hot_units++] = w;
                                break;
                        }
                }
        }
        return 0;
}

int page_server_new_opened(int uffd, const struct gmem_uffd_mapping *maps, size_t n_maps, int source_fd,
                           struct gmem_snapshot_info *info, uint64_t flags, struct gmem_page_server **ret) {
        struct gmem_page_server *ps;
        int k;

        if (uffd < 0 || source_fd < 0 || !maps || n_maps == 0 || !ret)
                k = gmem_error(-EINVAL, "page server: invalid uffd, source fd, mappings or NULL result");
        else if (n_maps > GMEM_UFFD_MAPPINGS_MAX)
                k = gmem_error(-E2BIG, "page server: %zu mappings (at most %d)", n_maps, GMEM_UFFD_MAPPINGS_MAX);
        else if (flags & ~GMEM_PAGE_SERVER_RAW)
                k = gmem_error(-EINVAL, "page server: unknown flags %#" PRIx64, (uint64_t) (flags & ~GMEM_PAGE_SERVER_RAW));
        else if (info && (flags & GMEM_PAGE_SERVER_RAW))
                k = gmem_error(-EINVAL, "page server: a raw memory file is not opened as a snapshot");
        else if (!(ps = calloc(1, sizeof(*ps))))
                k = gmem_error(-ENOMEM, "page server");
        else
                k = 0;
        if (k < 0) {
                gmem_snapshot_info_free(info);
                return k;
        }
        ps->uffd = uffd;
        ps->snap_fd = source_fd;
        ps->state_fd = -1;
        ps->s = info;
        if ((k = take_mappings(ps, maps, n_maps)) < 0 || (k = open_source(ps, flags & GMEM_PAGE_SERVER_RAW)) < 0) {
                gmem_page_server_free(ps);
                return k;
        }
        *ret = ps;
        return 0;
}

_public_ int gmem_page_server_new_mapped(int uffd, const struct gmem_uffd_mapping *maps, size_t n_maps, int source_fd,
                                         uint64_t flags, struct gmem_page_server **ret) {
        return page_server_new_opened(uffd, maps, n_maps, source_fd, NULL, flags, ret);
}

int page_server_new_region(int uffd, uint64_t base, int snapshot_fd, struct gmem_snapshot_info *info,
                           struct gmem_region *region, struct gmem_page_server **ret) {
        struct gmem_uffd_mapping m = { .base = base, .page_size = region ? region->page_size : 4096 };
        struct gmem_page_server *ps;
        struct snap_header h;
        int k;

        if (uffd < 0 || snapshot_fd < 0 || !ret || base % page_size()) {
                gmem_snapshot_info_free(info);
                return gmem_error(-EINVAL, "page server: invalid uffd, snapshot fd, base or NULL result");
        }
        /* the whole snapshot at base: its size from the header, checked again when it is opened */
        if (info)
                h = info->h;
        else if ((k = snapshot_read_header(snapshot_fd, &h)) < 0)
                return k;
        m.size = h.region_size;
        if (region && gmem_region_size(region) != h.region_size) {
                gmem_snapshot_info_free(info);
                return gmem_error(-EINVAL, "page server: the region has %" PRIu64 " bytes, the snapshot %" PRIu64,
                                  gmem_region_size(region), h.region_size);
        }
        if ((k = page_server_new_opened(uffd, &m, 1, snapshot_fd, info, 0, &ps)) < 0)
                return k;
        if (gmem_snapshot_info_size(ps->s) != h.region_size) {
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

_public_ int gmem_page_server_new(int uffd, uint64_t base, int snapshot_fd, struct gmem_region *region,
                                  struct gmem_page_server **ret) {
        return page_server_new_region(uffd, base, snapshot_fd, NULL, region, ret);
}

/* The state memfd: the header, a byte per unit, then (aligned) a bit per 4 KiB page discarded. */
static size_t state_len(const struct gmem_page_server *ps, bool v1) {
        size_t len = sizeof(struct ps_state) + ps->n_units;
        return v1 ? len : align_up(len, 8) + (ps->s->h.region_size / 4096 + 63) / 64 * 8;
}

/* The state memfd's mapping as the server's state: what it served, and what was discarded. A state
 * a gmemd before this one left in the first layout has no discarded pages: resumed all the same. */
static int map_state(struct gmem_page_server *ps, int fd, bool fresh) {
        struct ps_state want = { .magic = PS_STATE_MAGIC, .n_units = ps->n_units, .unit = ps->unit,
                                 .source_size = ps->s->h.region_size };
        size_t len = state_len(ps, false), bits = len - align_up(sizeof(want) + ps->n_units, 8);
        bool v1 = false;
        struct stat st;
        uint8_t *p;

        if (!fresh) {
                if (fstat(fd, &st) < 0 || ((uint64_t) st.st_size != len && (uint64_t) st.st_size != state_len(ps, true)))
                        return gmem_error(-EINVAL, "page server: the state fd is not a page server's state of %" PRIu64 " blocks",
                                          ps->n_units);
                v1 = (uint64_t) st.st_size != len;
                if (v1) {
                        len = state_len(ps, true);
                        memcpy(want.magic, PS_STATE_MAGIC_V1, sizeof(want.magic));
                }
        }
        p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED)
                return gmem_error(negative_errno(), "page server: map its state");
        if (fresh) {
                memcpy(p, &want, sizeof(want));
                memcpy(p + sizeof(want), ps->done, ps->n_units);
                memcpy(p + (len - bits), ps->removed, bits);
        } else if (memcmp(p, &want, sizeof(want)) != 0) {
                munmap(p, len);
                return gmem_error(-EINVAL, "page server: the state is another server's (other blocks, or another source)");
        }
        pthread_rwlock_wrlock(&ps->install);
        if (ps->state_map)
                munmap(ps->state_map, ps->state_len);
        else
                free(ps->done);
        ps->state_map = p;
        ps->state_len = len;
        ps->done = p + sizeof(want);
        if (!v1) {
                if (!ps->removed_in_state)
                        free(ps->removed);
                ps->removed = (uint64_t *) (p + (len - bits));
                ps->removed_in_state = true;
        }
        pthread_rwlock_unlock(&ps->install);
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
                if (ftruncate(fd, (off_t) state_len(ps, false)) < 0)
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
        /* Faults the server before this one read and did not answer wait for nobody now, whatever
         * the state of their block (a page of a block done, discarded since, say): every waiter is
         * woken, and each whose page is still missing faults again, to this server. */
        ps->wake_all = true;
        return 0;
}

_public_ int gmem_page_server_fd(const struct gmem_page_server *ps) {
        return ps ? ps->uffd : gmem_error(-EINVAL, "page server: NULL");
}

_public_ int gmem_page_server_run(struct gmem_page_server *ps, int timeout_ms) {
        struct ps_fault f;
        unsigned events;
        int served = 0, k;

        if (!ps)
                return gmem_error(-EINVAL, "page server: NULL");
        for (;;) {
                /* the faults read so far (some while a fill waited out an event), oldest first */
                while (ps_queue_pop(ps, &f)) {
                        if ((k = ps_handle_fault(ps, &f)) < 0)
                                return k;
                        served++;
                }
                if (__atomic_load_n(&ps->wake_all, __ATOMIC_RELAXED) && (k = ps_wake_all(ps)) < 0)
                        return k;
                if ((k = ps_drain(ps, &events)) < 0)
                        return k;
                if (k > 0) {
                        served += (int) events; /* the faults count when handled */
                        continue;
                }
                if (served || timeout_ms == 0)
                        return served;
                {
                        struct pollfd p = { .fd = ps->uffd, .events = POLLIN };
                        k = poll(&p, 1, timeout_ms);
                        if (k < 0 && errno != EINTR)
                                return gmem_error(negative_errno(), "page server: poll");
                        if (k == 0)
                                return served;
                        timeout_ms = 0; /* after the first wakeup, only what is there */
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
                        const struct ps_map *m = ps_unit_map(ps, w);
                        /* the unserved units after it, in its mapping and this chunk */
                        while (n < run_max && x + (n + 1) * ps->unit <= off + len && w + n < m->first_unit + m->n_units &&
                               ps->done[w + n] == UNIT_NONE)
                                n++;
                        if (n > 1 && (k = ps_serve_run(ps, w, n, buf)) <= 0) {
                                if (k < 0)
                                        return k;
                                filled += n * ps->unit;
                                x += n * ps->unit;
                                continue;
                        }
                        n = 1; /* one unit, or a run that needs the extent-by-extent way */
                }
                if ((k = ps_serve_unit(ps, w, UINT64_MAX, buf)) < 0)
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
