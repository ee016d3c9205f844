/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The snapshot format (docs/snapshot.md), for the code that reads it: snapshot.c, page-server.c. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "gmem/gmem.h"
#include "macro.h"

#define SNAP_MAGIC "GMEMSNAP"
#define SNAP_VERSION 1
#define SNAP_HEADER_SIZE 4096
#define SNAP_WINDOW (2 * MiB)     /* the unit of parallel work (and the most an extent may span) */
#define SNAP_BLOCK (16 * KiB)     /* what this writer cuts extents at: a fault verifies no more */
#define SNAP_EXTENTS_MAX (UINT64_C(1) << 28) /* a 2 TiB region of alternating pages: more is not ours */

struct snap_header {
        char magic[8];
        uint32_t version;
        uint32_t header_crc;     /* CRC-32C of the 4096 header bytes with this field 0 */
        uint64_t region_size;
        uint64_t page_size;
        uint64_t flags;          /* guest_memfd flags of the region snapshotted */
        uint32_t backend;        /* enum gmem_backend */
        uint32_t table_crc;      /* CRC-32C of the extent table */
        uint64_t data_offset;
        uint64_t table_offset;
        uint64_t n_extents;
        uint64_t data_bytes;     /* sum of the extents' lengths */
        uint64_t file_size;      /* table_offset + n_extents * sizeof(struct snap_extent) */
        /* The hot list: where one lazy restore's faults first touched memory, in that order, as
         * offsets >> hot_shift; replayed as the next restore's prefetch order. 0: none. */
        uint32_t hot_count;
        uint32_t hot_shift;
};
#define SNAP_HOT_OFFSET 96
#define SNAP_HOT_MAX ((SNAP_HEADER_SIZE - SNAP_HOT_OFFSET) / 4)

struct snap_extent {
        uint64_t offset;         /* in the region */
        uint64_t length;
        uint32_t crc;
        uint32_t reserved;       /* 0 */
};

struct gmem_snapshot_info {
        struct snap_header h;
        struct snap_extent *extents;
        bool raw;                /* a raw memory file (byte i of memory at offset i): no checksums */
        uint32_t hot[SNAP_HOT_MAX]; /* h.hot_count of them */
};

/* A snapshot's header, every field checked (magic, version, checksum, sizes that add up without
 * wrapping, the file long enough), before anything bigger is read: 4 KiB, so gmemd can hold what it
 * describes to the caller's limits first. -EBADMSG saying what is wrong. */
int snapshot_read_header(int fd, struct snap_header *ret);
/* gmem_snapshot_open() of a snapshot whose header was checked before (and what it describes
 * charged): -EBADMSG if it has more extents than max_extents now, or (size not 0) another size. */
int snapshot_open_bounded(int fd, uint64_t max_extents, uint64_t size, struct gmem_snapshot_info **ret_info);
/* The extent table against its header: each extent aligned, inside the region, after the one
 * before it, within one 2 MiB window; their sum the header's data_bytes. -EBADMSG and *ret_why. */
int snapshot_check_extents(const struct snap_header *h, const struct snap_extent *v, uint64_t n, const char **ret_why);
/* What the extent table of h takes in memory, read (bytes). */
static inline uint64_t snapshot_table_bytes(const struct snap_header *h) {
        return h->n_extents * sizeof(struct snap_extent);
}
/* A raw memory file (a Firecracker snapshot's memory file) read as a snapshot: its data ranges
 * within the n ranges [lo, hi) (sorted, disjoint), cut at lo + k * unit, as unchecked extents. */
int snapshot_open_raw(int fd, const uint64_t (*ranges)[2], size_t n, uint64_t unit, struct gmem_snapshot_info **ret_info);
/* Write the hot list (offsets >> shift, n at most SNAP_HOT_MAX) into the header of the snapshot
 * on fd (open for writing), its checksum sealed again; the rest of the file is left as it is.
 * expect (may be NULL): -EINVAL unless fd's snapshot has its size and extent table. */
int snapshot_set_hot(int fd, const uint32_t *hot, uint32_t n, uint32_t shift, const struct snap_header *expect);
/* the first extent that ends after off */
uint64_t snapshot_extent_at(const struct gmem_snapshot_info *s, uint64_t off);
/* Does an extent hold byte off? */
bool snapshot_covers(const struct gmem_snapshot_info *s, uint64_t off);
/* -EBADMSG: e's data does not match its checksum; a snapshot that ends inside its data. */
int snapshot_bad_extent(const struct snap_extent *e);
int snapshot_truncated(void);
/* e's data into dst, verified: -EBADMSG naming the extent when it does not match, or is cut short. */
int snapshot_read_extent(int fd, const struct gmem_snapshot_info *s, const struct snap_extent *e, uint8_t *dst,
                         const char *what);
