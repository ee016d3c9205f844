/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Which pages of a region hold data: the one place that decides, for dump, snapshot, residency
 * and restore alike, from what the backend itself knows.
 *
 *  - shmem (memfd): mincore() on the mapping sees only the pages in memory; a page in swap (or
 *    zswap) is data all the same. Pages mincore() calls absent are asked of the file with
 *    SEEK_DATA, which counts swapped pages as data: exact.
 *  - guest_memfd, memfd_secret: their pages never leave memory, and mincore() looks them up in
 *    the file's page cache: exact.
 *  - hugetlb: mincore() sees only this process's page tables and SEEK_DATA sees no holes, so
 *    nothing is exact: what mincore() sees is there, and any other page may be. A caller that
 *    copies reads every page (a hole reads as zeroes without being allocated) and may leave the
 *    pages of zeroes out, which read back the same; residency counts what is seen or not zero.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "region.h"

struct region_data {
        const struct gmem_region *r;
        const uint8_t *map;     /* the region's shared mapping */
        int seek_fd;            /* shmem: a private open file description (SEEK_DATA moves its offset), else -1 */
        bool own_fd;
};

/* For one operation over r, mapped at map. Never fails: without a private description of the
 * file (no /proc), SEEK_DATA goes to the region's own fd, whose offset nobody reads. */
void region_data_begin(struct gmem_region *r, const uint8_t *map, struct region_data *ret);
void region_data_end(struct region_data *d);
/* vec[i] = 1 when the i-th 4 KiB page of [off, off+len) (both multiples of 4096) holds data, 0 for
 * a hole. 1 when that is exact; 0 when the backend cannot tell (hugetlb: the pages marked are
 * there, the others may be too: the caller looks at their content); -errno on failure. */
int region_data_map(const struct region_data *d, uint64_t off, uint64_t len, uint8_t *vec);
/* Is the page all zeroes? (What a caller that copies pages may leave out.) */
bool page_is_zero(const uint8_t *p, uint64_t len);
