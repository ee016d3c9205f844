/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A userfaultfd page server over a snapshot: the lazy restore (docs/snapshot.md, "Lazy restore").
 *
 * The VMM maps guest memory and registers the mapping with a userfaultfd of its own (the uffd
 * belongs to its mm): gmem_uffd_register(). Whoever serves it — the VMM itself, or gmemd once the
 * VMM hands it the uffd — reads the fault events and fills memory from the snapshot a 64 KiB
 * block at a time (2 MiB for snapshots whose extents are longer), the faulting one first:
 *
 *  - MISSING faults (anonymous private memory, and a shmem mapping whose page is not there yet):
 *    the block's extents are read into a buffer, each verified against its CRC, and installed
 *    with UFFDIO_COPY; a fault in a hole of the snapshot gets UFFDIO_ZEROPAGE;
 *  - MINOR faults (a shmem memfd or hugetlb region whose pages are there already, e.g. pooled and
 *    prefaulted): the block is written through the server's own mapping of the region and the
 *    VMM's pages are mapped with UFFDIO_CONTINUE — no kernel copy into the page.
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
#include <sys/syscall.h>
#include <unistd.h>

#include "error.h"
#include "io.h"
#include "job.h"
#include "macro.h"
#include "region.h"
#include "uffd-compat.h"
#include "snapshot.h"


struct gmem_page_server {
        int uffd;
        uint64_t base;                 /* the VMM's address of region offset 0 */
        int snap_fd;                   /* borrowed */
        struct gmem_snapshot_info *s;
        struct gmem_region *region;    /* for MINOR faults; borrowed, may be NULL */
        uint8_t *map;                  /* the region's mapping (MINOR) */
        uint8_t *buf;                  /* one unit */
        uint8_t *done;                 /* per unit: served */
        uint64_t unit;                 /* what a fault fetches: SNAP_BLOCK, or SNAP_WINDOW for extents longer */
        uint64_t n_units, n_done, next_prefetch;
        uint64_t faults;
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
        api.features = UFFD_FEATURE_MISSING_SHMEM | UFFD_FEATURE_EVENT_REMOVE | (minor ? UFFD_FEATURE_MINOR_SHMEM : 0);
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
                free(ps->buf);
                free(ps->done);
                free(ps);
        }
        return NULL;
}

_public_ int gmem_page_server_new(int uffd, uint64_t base, int snapshot_fd, struct gmem_region *region,
                                  struct gmem_page_server **ret) {
        _cleanup_free_ struct gmem_page_server *ps = NULL;
        int k;

        if (uffd < 0 || snapshot_fd < 0 || !ret || base % page_size())
                return gmem_error(-EINVAL, "page server: invalid uffd, snapshot fd, base or NULL result");
        ps = calloc(1, sizeof(*ps));
        if (!ps)
                return gmem_error(-ENOMEM, "page server");
        *ps = (struct gmem_page_server) { .uffd = uffd, .base = base, .snap_fd = snapshot_fd, .region = region };
        if ((k = gmem_snapshot_open(snapshot_fd, &ps->s)) < 0)
                return k;
        if (region) {
                if (gmem_region_size(region) != gmem_snapshot_info_size(ps->s)) {
                        k = gmem_error(-EINVAL, "page server: the region has %" PRIu64 " bytes, the snapshot %" PRIu64,
                                       gmem_region_size(region), gmem_snapshot_info_size(ps->s));
                        goto fail;
                }
                if ((k = region_map_for(region, "page server", &ps->map)) < 0)
                        goto fail;
        }
        /* a fault fetches a 64 KiB block where no extent spans two (this writer's), else 2 MiB */
        ps->unit = SNAP_BLOCK;
        for (uint64_t i = 0; i < ps->s->h.n_extents; i++) {
                const struct snap_extent *e = &ps->s->extents[i];
                if (e->offset / SNAP_BLOCK != (e->offset + e->length - 1) / SNAP_BLOCK) {
                        ps->unit = SNAP_WINDOW;
                        break;
                }
        }
        ps->n_units = (gmem_snapshot_info_size(ps->s) + ps->unit - 1) / ps->unit;
        ps->buf = malloc(ps->unit);
        ps->done = calloc(ps->n_units, 1);
        if (!ps->buf || !ps->done) {
                k = gmem_error(-ENOMEM, "page server: %" PRIu64 " blocks", ps->n_units);
                goto fail;
        }
        *ret = TAKE_PTR(ps);
        return 0;
fail:
        gmem_snapshot_info_free(ps->s);
        free(ps->buf);
        free(ps->done);
        return k;
}

_public_ int gmem_page_server_fd(const struct gmem_page_server *ps) {
        return ps ? ps->uffd : gmem_error(-EINVAL, "page server: NULL");
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

static int copy_range(struct gmem_page_server *ps, const uint8_t *src, uint64_t off, uint64_t len) {
        for (uint64_t done = 0; done < len;) {
                struct uffdio_copy c = { .dst = ps->base + off + done, .src = (uintptr_t) (src + done), .len = len - done };
                if (ioctl(ps->uffd, UFFDIO_COPY, &c) == 0) {
                        done = len;
                        continue;
                }
                if (errno == EAGAIN || errno == EINTR || errno == EEXIST) {
                        /* partly done (c.copy bytes), or a page there already: go on page by page */
                        uint64_t step = c.copy > 0 ? (uint64_t) c.copy : page_size();
                        done += MIN(step, len - done);
                        continue;
                }
                return gmem_error(negative_errno(), "UFFDIO_COPY at %#" PRIx64 "+%" PRIu64, ps->base + off + done,
                                  len - done);
        }
        return 0;
}

/* Map [off, off+len) of the VMM's memory: UFFDIO_CONTINUE of the region's pages (MINOR), or zero
 * pages (MISSING: a hole of the snapshot). */
static int map_range(struct gmem_page_server *ps, uint64_t off, uint64_t len, bool minor) {
        for (uint64_t done = 0; done < len;) {
                uint64_t at = ps->base + off + done;
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
                        done += MIN(got > 0 ? (uint64_t) got : page_size(), len - done);
                        continue;
                }
                return gmem_error(negative_errno(), "%s at %#" PRIx64 "+%" PRIu64, minor ? "UFFDIO_CONTINUE" : "UFFDIO_ZEROPAGE",
                                  at, len - done);
        }
        return 0;
}

/* A hole [a, b) under MINOR: zero pages where the file has none, else its (zero) pages mapped. */
static int zero_or_continue(struct gmem_page_server *ps, uint64_t a, uint64_t b) {
        for (uint64_t off = a; off < b; off += page_size()) {
                struct uffdio_zeropage z = { .range = { .start = ps->base + off, .len = page_size() } };
                if (ioctl(ps->uffd, UFFDIO_ZEROPAGE, &z) == 0)
                        continue;
                if (errno == EEXIST) { /* the file has the page: map it */
                        int k = map_range(ps, off, page_size(), true);
                        if (k < 0)
                                return k;
                        continue;
                }
                if (errno == EAGAIN || errno == EINTR) {
                        off -= page_size();
                        continue;
                }
                return gmem_error(negative_errno(), "UFFDIO_ZEROPAGE at %#" PRIx64, ps->base + off);
        }
        return 0;
}

/* MINOR: the unit's pages mapped. Pooled memory has them all (holes as zero pages): one
 * UFFDIO_CONTINUE. A fresh region has only the extents just written: those are continued, and the
 * holes get zero pages (UFFDIO_ZEROPAGE works on shmem too). */
static int continue_unit(struct gmem_page_server *ps, uint64_t start, uint64_t end) {
        struct uffdio_continue c = { .range = { .start = ps->base + start, .len = end - start } };
        uint64_t next = start;
        int k;

        if (ioctl(ps->uffd, UFFDIO_CONTINUE, &c) == 0)
                return 0;
        if (errno != EFAULT && errno != EEXIST && errno != EAGAIN)
                return gmem_error(negative_errno(), "UFFDIO_CONTINUE at %#" PRIx64, (uint64_t) c.range.start);
        for (uint64_t i = snapshot_extent_at(ps->s, start); i < ps->s->h.n_extents && ps->s->extents[i].offset < end; i++) {
                const struct snap_extent *e = &ps->s->extents[i];
                if ((k = zero_or_continue(ps, next, e->offset)) < 0 || (k = map_range(ps, e->offset, e->length, true)) < 0)
                        return k;
                next = e->offset + e->length;
        }
        return zero_or_continue(ps, next, end);
}

/* Serve unit w whole: its extents read and verified, then installed (COPY; or written through
 * the region and mapped with CONTINUE), and its holes mapped too, so that it faults once. */
static int serve_unit(struct gmem_page_server *ps, uint64_t w, bool minor, uint64_t fault, uint8_t *buf) {
        const struct snap_header *h = &ps->s->h;
        uint64_t start = w * ps->unit, end = MIN(start + ps->unit, h->region_size), next = start;
        int k;

        if (ps->done[w])
                return 0;
        minor = minor && ps->map;
        for (uint64_t i = snapshot_extent_at(ps->s, start); i < h->n_extents && ps->s->extents[i].offset < end; i++) {
                const struct snap_extent *e = &ps->s->extents[i];
                /* MINOR: into the file, through write() where it has one (its pages are then
                 * not zeroed first), else through the server's mapping */
                bool via_write = minor && buf && ps->region->write_syscall;
                uint8_t *dst = minor && !via_write ? ps->map + e->offset : buf + (e->offset - start);

                if ((k = snapshot_read_extent(ps->snap_fd, ps->s, e, dst, NULL)) < 0)
                        return k;
                if (via_write && (k = gmem_write_full(ps->region->fd, dst, e->length, e->offset, "page server", NULL)) < 0)
                        return k;
                if (!minor) {
                        /* the faulting page first: its thread goes on while the rest goes in */
                        if (fault >= e->offset && fault < e->offset + e->length &&
                            (k = copy_range(ps, dst + (fault - e->offset), fault, page_size())) < 0)
                                return k;
                        if ((k = map_range(ps, next, e->offset - next, false)) < 0 ||
                            (k = copy_range(ps, dst, e->offset, e->length)) < 0)
                                return k;
                        next = e->offset + e->length;
                } else if (fault >= e->offset && fault < e->offset + e->length &&
                           (k = map_range(ps, fault, page_size(), true)) < 0)
                        return k;
        }
        if (minor)
                k = continue_unit(ps, start, end);
        else
                k = map_range(ps, next, end - next, false);
        if (k < 0)
                return k;
        ps->done[w] = 1;
        __atomic_add_fetch(&ps->n_done, 1, __ATOMIC_RELAXED);
        return 0;
}

static int handle(struct gmem_page_server *ps, const struct uffd_msg *m) {
        uint64_t addr, off, w;
        bool minor;

        if (m->event == UFFD_EVENT_REMOVE || m->event == UFFD_EVENT_UNMAP) {
                /* discarded (balloon, punch): those blocks are served afresh if touched again */
                uint64_t a = m->arg.remove.start, b = m->arg.remove.end;
                for (uint64_t x = align_down(a, ps->unit); x < b && x >= ps->base; x += ps->unit) {
                        w = (x - ps->base) / ps->unit;
                        if (w < ps->n_units && ps->done[w]) {
                                ps->done[w] = 0;
                                ps->n_done--;
                        }
                }
                return 0;
        }
        if (m->event != UFFD_EVENT_PAGEFAULT)
                return 0;
        addr = m->arg.pagefault.address & ~(uint64_t) (page_size() - 1);
        if (addr < ps->base || addr - ps->base >= ps->s->h.region_size)
                return gmem_error(-EFAULT, "page server: a fault at %#" PRIx64 " outside the memory it serves", addr);
        off = addr - ps->base;
        w = off / ps->unit;
        minor = m->arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_MINOR;
        ps->faults++;
        if (!ps->done[w])
                return serve_unit(ps, w, minor, off, ps->buf); /* the unit is there now, and its waiters woken */
        /* a fault queued before its block was served: that serving woke it; make sure */
        {
                struct uffdio_range r = { .start = addr, .len = page_size() };
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

/* prefetch, on the job engine's threads: units [first + off / unit, ...) */
struct prefetch_ctx {
        struct gmem_page_server *ps;
        uint64_t first;
};

static int prefetch_chunk(void *userdata, uint64_t off, uint64_t len, uint64_t *ret_count) {
        struct prefetch_ctx *c = userdata;
        struct gmem_page_server *ps = c->ps;
        _cleanup_free_ uint8_t *buf = malloc(ps->unit);
        uint64_t filled = 0;
        int k;

        if (!buf)
                return gmem_error(-ENOMEM, "page server: buffer");
        for (uint64_t x = off; x < off + len; x += ps->unit) {
                uint64_t w = c->first + x / ps->unit;
                if (w >= ps->n_units || ps->done[w])
                        continue;
                /* MINOR where the server maps the region (its pages written and continued), else COPY */
                if ((k = serve_unit(ps, w, ps->map != NULL, UINT64_MAX, buf)) < 0)
                        return k;
                filled += ps->unit;
        }
        *ret_count = filled;
        return 0;
}

_public_ int64_t gmem_page_server_prefetch(struct gmem_page_server *ps, uint64_t max_bytes) {
        struct gmem_populate_opts o = GMEM_POPULATE_OPTS_INIT;
        struct prefetch_ctx c = { .ps = ps };
        struct gmem_job job = { .fn = prefetch_chunk, .ctx = &c, .opts = &o };
        uint64_t units, filled = 0;
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        int k;

        if (!ps)
                return gmem_error(-EINVAL, "page server: NULL");
        while (ps->next_prefetch < ps->n_units && ps->done[ps->next_prefetch])
                ps->next_prefetch++;
        if (ps->next_prefetch >= ps->n_units || max_bytes == 0)
                return 0;
        units = MIN(ps->n_units - ps->next_prefetch, MAX(UINT64_C(1), max_bytes / ps->unit));
        c.first = ps->next_prefetch;
        job.total = units * ps->unit;
        job.align = ps->unit;
        o.chunk_size = MAX(ps->unit, job.total / 16);
        o.threads = (unsigned) MIN(MAX(cores, 1L), 8L); /* all of them: this is the bulk of a restore */
        k = gmem_job_run(&job, &filled);
        if (k < 0)
                return k;
        ps->next_prefetch += units;
        return (int64_t) filled;
}

_public_ bool gmem_page_server_complete(const struct gmem_page_server *ps) {
        return ps && ps->n_done == ps->n_units;
}

_public_ uint64_t gmem_page_server_served_bytes(const struct gmem_page_server *ps) {
        return ps ? MIN(ps->n_done * ps->unit, ps->s->h.region_size) : 0;
}

_public_ uint64_t gmem_page_server_faults(const struct gmem_page_server *ps) {
        return ps ? ps->faults : 0;
}
