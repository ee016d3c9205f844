/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The page server's insides, shared by its files: page-server.c (making one, its state, what it
 * serves), page-server-fill.c (putting pages into the VMM's memory, and the userfaultfd's events).
 */
#pragma once

#include <linux/userfaultfd.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "gmem/gmem.h"
#include "snapshot.h"

/* One mapping of the VMM's: [base, base+size) holds the source's [offset, offset+size). Its
 * units are the source's [offset + k*unit, ...), numbered from first_unit. */
struct ps_map {
        uint64_t base, size, offset;
        uint64_t first_unit, n_units;
};

/* UNIT_BUSY: one thread is filling it (a state memfd that says so after a crash means NONE) */
enum { UNIT_NONE, UNIT_WRITTEN, UNIT_DONE, UNIT_BUSY };

/* A fault read from the uffd but not handled yet (read while an install waited out an event). */
struct ps_fault {
        uint64_t address;
        uint64_t flags;
};
#define PS_QUEUE_MAX 4096

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
        /* Events (page-server-fill.c). While one waits unread, the kernel refuses every fill with
         * EAGAIN: it is read and applied, then the fill is tried again — never taken as done.
         * Fills (the check of `removed`, a write into the region's file, the ioctl) hold `install`
         * shared; reading events holds it exclusive, so no fill works from a stale `removed`. */
        pthread_rwlock_t install;
        /* Per 4 KiB page of the source: discarded before it was served (private memory:
         * UFFD_EVENT_REMOVE, a balloon's MADV_DONTNEED; any memory: page_server_discard()).
         * Discarded memory reads back as zeroes, so that is what such a page is served as. */
        uint64_t *removed;
        bool removed_in_state;         /* removed lies in the state memfd's mapping */
        /* Faults read while an install waited out an event, for run() to handle. */
        struct ps_fault *queue;
        size_t q_head, q_len;
        bool wake_all;                 /* the queue overflowed: wake every waiter, they fault again (atomic) */
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

/* ---- page-server-fill.c */

int ps_events_init(struct gmem_page_server *ps);
void ps_events_done(struct gmem_page_server *ps);
/* Read what the uffd holds, never waiting: events applied, faults queued. The number of messages
 * read (0: none there) and, in *ret_events (may be NULL), how many were events; or -errno. */
int ps_drain(struct gmem_page_server *ps, unsigned *ret_events);
/* The oldest queued fault into *ret; false when there is none. */
bool ps_queue_pop(struct gmem_page_server *ps, struct ps_fault *ret);
/* The queue overflowed at some point: every thread waiting on the VMM's memory is woken (those
 * whose page is still missing fault again). */
int ps_wake_all(struct gmem_page_server *ps);

/* Fills of [off, off+len) of the source, in m (offsets in the source). Each retries until done:
 * EAGAIN (an event waits: the mm is changing) reads the events first; EEXIST (a page there
 * already: a racing fault) goes past that page; memory the VMM has unmapped since (ENOENT) is
 * skipped, its waiters woken. */
/* src's bytes (the pages discarded meanwhile as zeroes, src changed to match) */
int ps_copy(struct gmem_page_server *ps, const struct ps_map *m, uint8_t *src, uint64_t off, uint64_t len);
/* zero pages */
int ps_zeropage(struct gmem_page_server *ps, const struct ps_map *m, uint64_t off, uint64_t len);
/* the region's file's pages (MINOR): -EFAULT, with no message, where the file has none */
int ps_continue(struct gmem_page_server *ps, const struct ps_map *m, uint64_t off, uint64_t len);
/* [off, off+len) of the region's file from src (via write() or the mapping), the discarded pages as
 * zeroes; dst_in_map: src is the mapping itself (read there already): only the discarded pages are
 * cleared. Under the install lock, so that no discard slips in between the check and the write. */
int ps_write_file(struct gmem_page_server *ps, uint8_t *src, uint64_t off, uint64_t len, bool via_write);
/* zero the discarded pages of [off, off+len) in dst (which holds that range) */
void ps_clear_removed(const struct gmem_page_server *ps, uint8_t *dst, uint64_t off, uint64_t len);

/* ---- page-server-serve.c */

const struct ps_map *ps_unit_map(const struct gmem_page_server *ps, uint64_t w);
/* Unit w whole: its extents read and verified, then installed (COPY; or written through the
 * region and mapped with CONTINUE), its holes mapped too, so that it faults once. fault: the
 * source offset of the faulting page (its thread goes on first), or UINT64_MAX. */
int ps_serve_unit(struct gmem_page_server *ps, uint64_t w, uint64_t fault, uint8_t *buf);
/* n units from w on — of one mapping, none served or written — at once (a prefetch): one read of
 * the snapshot's bytes for them all, each extent verified where it landed and the holes zeroed;
 * then, into the region's file, one write() (holes written as zeroes: they would get zero pages
 * anyway) and one UFFDIO_CONTINUE; into private memory, the extents copied and the holes given
 * zero pages. 1: an extent is cut by the mapping's end, serve them one by one instead. */
int ps_serve_run(struct gmem_page_server *ps, uint64_t w, uint64_t n, uint8_t *buf);
/* One fault read from the uffd. */
int ps_handle_fault(struct gmem_page_server *ps, const struct ps_fault *f);

/* ---- for gmemd */

/* gmem_page_server_new_mapped() over a snapshot opened (and checked) already: info is taken,
 * whatever happens (NULL: open source_fd as that function does). */
int page_server_new_opened(int uffd, const struct gmem_uffd_mapping *maps, size_t n_maps, int source_fd,
                           struct gmem_snapshot_info *info, uint64_t flags, struct gmem_page_server **ret);
/* gmem_page_server_new() likewise. */
int page_server_new_region(int uffd, uint64_t base, int snapshot_fd, struct gmem_snapshot_info *info,
                           struct gmem_region *region, struct gmem_page_server **ret);

/* What a page server over a source of size bytes with n_extents extents holds in memory, at most:
 * the extent table, its state (a byte per unit, a bit per page discarded), the fault queue and its
 * buffers (its own and a prefetch's threads'). For gmemd to charge before it is made. */
static inline uint64_t page_server_meta_bytes(uint64_t size, uint64_t n_extents) {
        return n_extents * sizeof(struct snap_extent) + size / SNAP_BLOCK + (size / 4096 + 63) / 64 * 8 +
               PS_QUEUE_MAX * sizeof(struct ps_fault) + 10 * SNAP_WINDOW;
}

/* [off, off+len) of the source is discarded from the region served (a hole punched): under the
 * server's lock — no fill slips in between — it is marked (what is not served yet is served as
 * zeroes from now on), then punch(userdata) punches it (NULL: it was punched already); when that
 * fails, the marks are taken back. -EBUSY, nothing changed, when the server does not let go of
 * its lock within 200 ms. */
int page_server_discard(struct gmem_page_server *ps, uint64_t off, uint64_t len, int (*punch)(void *userdata), void *userdata);
