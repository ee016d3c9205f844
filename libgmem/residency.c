/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Which pages of a region hold data (residency.h says why each backend is asked as it is). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "error.h"
#include "macro.h"
#include "residency.h"

void region_data_begin(struct gmem_region *r, const uint8_t *map, struct region_data *ret) {
        *ret = (struct region_data) { .r = r, .map = map, .seek_fd = -1 };
        if (r->backend != GMEM_BACKEND_MEMFD)
                return;
        /* The region's fd shares its file offset with every holder it was handed to (they are
         * dups): lseek() on a description of our own. */
        char path[64];
        snprintf(path, sizeof(path), "/proc/self/fd/%d", r->fd);
        ret->seek_fd = open(path, O_RDONLY | O_CLOEXEC);
        ret->own_fd = ret->seek_fd >= 0;
        if (ret->seek_fd < 0)
                ret->seek_fd = r->fd;
}

void region_data_end(struct region_data *d) {
        if (d->own_fd)
                close(d->seek_fd);
        d->seek_fd = -1;
        d->own_fd = false;
}

bool page_is_zero(const uint8_t *p, uint64_t len) {
        return len == 0 || (p[0] == 0 && memcmp(p, p + 1, len - 1) == 0);
}

/* shmem: the pages of [off, off+len) that mincore() found absent (vec 0), asked of the file. One
 * SEEK_DATA per run of absent pages, and per page in swap: it stops at the next entry of the
 * file, so the whole costs no more than the range it covers. */
static int shmem_absent_pages(const struct region_data *d, uint64_t off, uint64_t n, uint8_t *vec) {
        for (uint64_t i = 0; i < n;) {
                off_t at, data;
                if (vec[i] & 1) {
                        i++;
                        continue;
                }
                at = (off_t) (off + i * 4096);
                data = lseek(d->seek_fd, at, SEEK_DATA);
                if (data < 0 && errno == ENXIO) /* only holes from here to the file's end */
                        return 0;
                if (data < 0) { /* a file that cannot say: copy the pages */
                        for (; i < n; i++)
                                vec[i] = 1;
                        return 0;
                }
                if (data == at) { /* data, not in memory: in swap */
                        vec[i++] = 1;
                        continue;
                }
                /* a hole up to data; mincore() has said where the next resident page is */
                i = MAX(i + 1, ((uint64_t) data - off) / 4096);
        }
        return 0;
}

int region_data_map(const struct region_data *d, uint64_t off, uint64_t len, uint8_t *vec) {
        uint64_t n = len / 4096;

        if (!d->map) { /* hugetlb, not mapped: nothing known */
                memset(vec, 0, n);
                return 0;
        }
        if (mincore((void *) (d->map + off), len, vec) < 0)
                return gmem_error(negative_errno(), "mincore %" PRIu64 "+%" PRIu64, off, len);
        for (uint64_t i = 0; i < n; i++)
                vec[i] &= 1;
        if (d->r->backend == GMEM_BACKEND_HUGETLB) /* what this process has mapped: there, and maybe more */
                return 0;
        if (d->r->backend == GMEM_BACKEND_MEMFD)
                return shmem_absent_pages(d, off, n, vec) < 0 ? -EIO : 1;
        return 1;
}
