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
#define SNAP_BLOCK (64 * KiB)     /* what this writer cuts extents at: a fault verifies no more */
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
};

struct snap_extent {
        uint64_t offset;         /* in the region */
        uint64_t length;
        uint32_t crc;
        uint32_t reserved;       /* 0 */
};

struct gmem_snapshot_info {
        struct snap_header h;
        struct snap_extent *extents;
};

/* The region size a snapshot's header gives (magic and header checksum checked), before anything
 * bigger is read: for gmemd to hold it to its limits first. */
int snapshot_peek_size(int fd, uint64_t *ret_size);
/* the first extent that ends after off */
uint64_t snapshot_extent_at(const struct gmem_snapshot_info *s, uint64_t off);
/* Does an extent hold byte off? */
bool snapshot_covers(const struct gmem_snapshot_info *s, uint64_t off);
/* e's data into dst, verified: -EBADMSG naming the extent when it does not match, or is cut short. */
int snapshot_read_extent(int fd, const struct gmem_snapshot_info *s, const struct snap_extent *e, uint8_t *dst,
                         const char *what);
