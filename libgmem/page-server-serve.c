/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What the page server puts where: a unit (the block a fault fetches) or a run of units (what a
 * prefetch fills at once), read from the source and verified, then installed into the VMM's
 * memory (page-server-fill.c does the installing):
 *
 *  - private memory (anonymous, MISSING faults): the extents copied with UFFDIO_COPY, the faulting
 *    page first; a hole of the snapshot gets UFFDIO_ZEROPAGE;
 *  - a region's shared mapping (a memfd, hugetlb or guest_memfd the server has the file of; MISSING
 *    or MINOR faults): written into the file — write() where it has one, else the server's own
 *    mapping — and the VMM's pages mapped with UFFDIO_CONTINUE: no kernel copy into the page, and
 *    a resumed server never writes over what the guest wrote (keep_state).
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <sys/ioctl.h>

#include "crc32c.h"
#include "error.h"
#include "io.h"
#include "macro.h"
#include "page-server.h"
#include "region.h"

const struct ps_map *ps_unit_map(const struct gmem_page_server *ps, uint64_t w) {
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

/* [a, b) of the region reads as zeroes (a hole of the snapshot, a page punched since): zero
 * pages where the file has none, else its (zero) pages mapped. A file that takes no zero page —
 * hugetlb, guest_memfd (UFFDIO_ZEROPAGE is EINVAL there) — gets the zeroes written through the
 * server's mapping, and they are mapped with UFFDIO_CONTINUE. */
static int zero_or_continue(struct gmem_page_server *ps, const struct ps_map *m, uint64_t a, uint64_t b) {
        if (ps->pgsz > 4096 || __atomic_load_n(&ps->no_zeropage, __ATOMIC_RELAXED)) {
                /* only where the file has no page (UFFDIO_CONTINUE says EFAULT): a page it has
                 * is mapped as it is, never overwritten (the guest may have written it) */
                for (uint64_t off = a; off < b; off += ps->pgsz) {
                        int k = ps_continue(ps, m, off, ps->pgsz);
                        if (k == -EFAULT) {
                                memset(ps->map + off, 0, ps->pgsz);
                                k = ps_continue(ps, m, off, ps->pgsz);
                        }
                        if (k < 0)
                                return k == -EFAULT ? gmem_error(k, "UFFDIO_CONTINUE at %#" PRIx64 ": the page left the file",
                                                                 m->base + (off - m->offset)) : k;
                }
                return 0;
        }
        for (uint64_t off = a; off < b; off += 4096) {
                struct uffdio_zeropage z = { .range = { .start = m->base + (off - m->offset), .len = 4096 } };
                int k;
                if (ioctl(ps->uffd, UFFDIO_ZEROPAGE, &z) == 0)
                        continue;
                if (errno == EINVAL) { /* no zero pages in this file: written zeroes from here on */
                        __atomic_store_n(&ps->no_zeropage, true, __ATOMIC_RELAXED);
                        return zero_or_continue(ps, m, off, b);
                }
                if (errno == EEXIST) { /* the file has the page: map it */
                        if ((k = ps_continue(ps, m, off, 4096)) == -EFAULT) /* gone again meanwhile */
                                k = ps_zeropage(ps, m, off, 4096);
                } else /* the rest (EAGAIN: an event to read first) as every fill does */
                        k = ps_zeropage(ps, m, off, 4096);
                if (k < 0)
                        return k;
        }
        return 0;
}

/* MINOR: the unit's pages mapped. Pooled memory has them all (holes as zero pages): one
 * UFFDIO_CONTINUE. A fresh region has only the extents just written (and the file may have lost
 * some since, punched): each page is continued where the file has it, given zeroes where not. */
static int continue_unit(struct gmem_page_server *ps, const struct ps_map *m, uint64_t start, uint64_t end) {
        int k;

        if (ps->pgsz > 4096) /* huge pages: each mapped as the file has it (the fault's already), else zeroes */
                return zero_or_continue(ps, m, start, end);
        if ((k = ps_continue(ps, m, start, end - start)) != -EFAULT)
                return k;
        for (uint64_t off = start; off < end; off += 4096) {
                if ((k = ps_continue(ps, m, off, 4096)) == -EFAULT)
                        k = zero_or_continue(ps, m, off, off + 4096);
                if (k < 0) /* never a unit done with a page nobody mapped: its waiter would sleep for good */
                        return k;
        }
        return 0;
}

/* Units [w, w+n), claimed by this thread, are done: counted once each. */
static void unit_done(struct gmem_page_server *ps, uint64_t w, uint64_t n) {
        for (uint64_t u = 0; u < n; u++)
                __atomic_store_n(&ps->done[w + u], (uint8_t) UNIT_DONE, __ATOMIC_RELEASE);
        __atomic_add_fetch(&ps->n_done, n, __ATOMIC_RELAXED);
}

/* Unit w is this thread's to fill (NONE, now BUSY)? A unit another thread fills is left to it:
 * its install wakes whoever waits there. */
static bool unit_claim(struct gmem_page_server *ps, uint64_t w) {
        uint8_t expect = UNIT_NONE;
        return __atomic_compare_exchange_n(&ps->done[w], &expect, (uint8_t) UNIT_BUSY, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}

static void unit_release(struct gmem_page_server *ps, uint64_t w, uint64_t n) {
        for (uint64_t u = 0; u < n; u++)
                __atomic_store_n(&ps->done[w + u], (uint8_t) UNIT_NONE, __ATOMIC_RELEASE);
}

int ps_serve_unit(struct gmem_page_server *ps, uint64_t w, uint64_t fault, uint8_t *buf) {
        const struct ps_map *m = ps_unit_map(ps, w);
        uint64_t start = m->offset + (w - m->first_unit) * ps->unit, end = MIN(start + ps->unit, m->offset + m->size);
        uint64_t next = start;
        bool huge = ps->pgsz > 4096;
        /* With the region's file at hand, every fault is filled through it and continued: the
         * file gets the page, and UFFDIO_CONTINUE maps it and wakes the waiters whatever their
         * fault (a MISSING fault of a page not yet in the file too) — no kernel copy into the
         * page, and nothing asked of the file's UFFDIO_COPY (a guest_memfd's). */
        bool minor = ps->map != NULL, via_write = minor && ps->region->write_syscall;
        uint8_t state = __atomic_load_n(&ps->done[w], __ATOMIC_ACQUIRE);
        int k;

        if (state == UNIT_DONE || state == UNIT_BUSY)
                return 0;
        if (state == UNIT_WRITTEN) /* a server before this one wrote it: only mapping is left */
                goto map;
        if (!unit_claim(ps, w))
                return 0;
        if (huge && !minor) /* one huge page: assembled whole, holes as zeroes, copied at once */
                memset(buf, 0, end - start);
        for (uint64_t i = snapshot_extent_at(ps->s, start); i < ps->s->h.n_extents && ps->s->extents[i].offset < end; i++) {
                const struct snap_extent *e = &ps->s->extents[i];
                uint64_t len = MIN(e->offset + e->length, end) - e->offset; /* what of it this mapping holds */
                /* MINOR: into the file, through write() where it has one (its pages are then
                 * not zeroed first), else through the server's mapping */
                uint8_t *dst = minor && !via_write ? ps->map + e->offset : buf + (e->offset - start);

                if ((k = snapshot_read_extent(ps->snap_fd, ps->s, e, dst, NULL)) < 0) {
                        if (minor && !via_write) /* read into the region's file itself: nothing unchecked stays there */
                                memset(dst, 0, e->length);
                        goto fail;
                }
                if (minor) {
                        if ((k = ps_write_file(ps, dst, e->offset, e->length, via_write)) < 0)
                                goto fail;
                        continue;
                }
                if (huge)
                        continue;
                /* the faulting page first: its thread goes on while the rest goes in */
                if (fault >= e->offset && fault < e->offset + len && (k = ps_copy(ps, m, dst + (fault - e->offset), fault, 4096)) < 0)
                        goto fail;
                if ((k = ps_zeropage(ps, m, next, e->offset - next)) < 0 || (k = ps_copy(ps, m, dst, e->offset, len)) < 0)
                        goto fail;
                next = e->offset + len;
        }
        if (minor) {
                /* the whole unit is in the file before any of it is mapped: a server resuming
                 * after this one only maps it, never writes over what the guest wrote since */
                __atomic_store_n(&ps->done[w], (uint8_t) UNIT_WRITTEN, __ATOMIC_RELEASE);
        map:
                if (fault >= start && fault < end && (k = ps_continue(ps, m, align_down(fault, ps->pgsz), ps->pgsz)) < 0 &&
                    k != -EFAULT)
                        return k;
                k = continue_unit(ps, m, start, end);
                if (k < 0)
                        return k; /* WRITTEN: the next one maps it */
                if (__atomic_exchange_n(&ps->done[w], (uint8_t) UNIT_DONE, __ATOMIC_ACQ_REL) != UNIT_DONE)
                        __atomic_add_fetch(&ps->n_done, 1, __ATOMIC_RELAXED);
                return 0;
        }
        k = huge ? ps_copy(ps, m, buf, start, end - start) : ps_zeropage(ps, m, next, end - next);
        if (k < 0)
                goto fail;
        unit_done(ps, w, 1);
        return 0;
fail:
        unit_release(ps, w, 1);
        return k;
}

int ps_serve_run(struct gmem_page_server *ps, uint64_t w, uint64_t n, uint8_t *buf) {
        const struct ps_map *m = ps_unit_map(ps, w);
        uint64_t start = m->offset + (w - m->first_unit) * ps->unit, end = MIN(start + n * ps->unit, m->offset + m->size);
        uint64_t next = start, i0 = snapshot_extent_at(ps->s, start);
        bool region = ps->map != NULL, via_write = region && ps->region->write_syscall;
        uint8_t *dst = region && !via_write ? ps->map + start : buf;
        uint64_t claimed = 0;
        int k;

        for (; claimed < n && unit_claim(ps, w + claimed); claimed++)
                ;
        if (claimed < n) { /* another thread has one of them: unit by unit instead */
                unit_release(ps, w, claimed);
                return 1;
        }
        if ((k = gmem_read_full(ps->snap_fd, dst, end - start, ps->s->h.data_offset + start, NULL)) < 0) {
                k = k == -ENODATA ? snapshot_truncated() : k;
                goto fail;
        }
        for (uint64_t i = i0; i < ps->s->h.n_extents && ps->s->extents[i].offset < end; i++) {
                const struct snap_extent *e = &ps->s->extents[i];
                if (e->offset + e->length > end) { /* cut by the mapping's end: verified whole, one by one */
                        k = 1;
                        goto fail;
                }
                memset(dst + (next - start), 0, e->offset - next); /* a hole reads as zeroes, whatever the file has */
                if (!ps->s->raw && gmem_crc32c(0, dst + (e->offset - start), e->length) != e->crc) {
                        k = snapshot_bad_extent(e);
                        goto fail;
                }
                next = e->offset + e->length;
        }
        memset(dst + (next - start), 0, end - next);
        if (region) {
                if ((k = ps_write_file(ps, dst, start, end - start, via_write)) < 0)
                        goto fail;
                for (uint64_t u = 0; u < n; u++)
                        __atomic_store_n(&ps->done[w + u], (uint8_t) UNIT_WRITTEN, __ATOMIC_RELEASE);
                if ((k = continue_unit(ps, m, start, end)) < 0)
                        return k; /* WRITTEN: mapped by whoever comes next */
        } else {
                next = start;
                for (uint64_t i = i0; i < ps->s->h.n_extents && ps->s->extents[i].offset < end; i++) {
                        const struct snap_extent *e = &ps->s->extents[i];
                        if ((k = ps_zeropage(ps, m, next, e->offset - next)) < 0 ||
                            (k = ps_copy(ps, m, buf + (e->offset - start), e->offset, e->length)) < 0)
                                goto fail;
                        next = e->offset + e->length;
                }
                if ((k = ps_zeropage(ps, m, next, end - next)) < 0)
                        goto fail;
        }
        unit_done(ps, w, n);
        return 0;
fail:
        if (region && !via_write && k != 1) /* read into the region's file itself: nothing unchecked stays there */
                memset(dst, 0, end - start);
        unit_release(ps, w, n);
        return k;
}

int ps_handle_fault(struct gmem_page_server *ps, const struct ps_fault *f) {
        const struct ps_map *m;
        uint64_t addr = align_down(f->address, ps->pgsz), off, w;
        struct uffdio_range r = { .start = addr, .len = ps->pgsz };
        int k;

        if (!(m = addr_map(ps, addr)))
                return gmem_error(-EFAULT, "page server: a fault at %#" PRIx64 " outside the memory it serves", addr);
        off = m->offset + (addr - m->base);
        w = m->first_unit + (addr - m->base) / ps->unit;
        ps->faults++;
        if (__atomic_load_n(&ps->done[w], __ATOMIC_ACQUIRE) != UNIT_DONE) {
                uint64_t start = m->offset + (w - m->first_unit) * ps->unit;
                if (ps->n_hot_rec < SNAP_HOT_MAX && (start >> ps->unit_shift) <= UINT32_MAX)
                        ps->hot_rec[ps->n_hot_rec++] = (uint32_t) (start >> ps->unit_shift);
                return ps_serve_unit(ps, w, off, ps->buf); /* the unit is there now, and its waiters woken */
        }
        /* Served already: a fault queued before its unit was served (that woke it), or a page
         * discarded since. Map what belongs there — the file's page (MINOR), else a zero page —
         * past pages there already, and wake the thread. */
        k = ps->map && (f->flags & UFFD_PAGEFAULT_FLAG_MINOR) ? ps_continue(ps, m, off, ps->pgsz) : -EFAULT;
        if (k == -EFAULT && ps->map) /* not in the file (punched): zeroes */
                k = zero_or_continue(ps, m, off, off + ps->pgsz);
        else if (k == -EFAULT && ps->pgsz > 4096) {
                memset(ps->buf, 0, ps->pgsz);
                k = ps_copy(ps, m, ps->buf, off, ps->pgsz);
        } else if (k == -EFAULT)
                k = ps_zeropage(ps, m, off, ps->pgsz);
        if (k < 0)
                return k;
        if (ioctl(ps->uffd, UFFDIO_WAKE, &r) < 0 && errno != ENOENT)
                return gmem_error(negative_errno(), "UFFDIO_WAKE at %#" PRIx64, addr);
        return 0;
}
