/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Fuzz every reader of a snapshot's header and extent table: gmemd's (snapshot_read_header(), on
 * its loop), the library's (gmem_snapshot_open()), the page server's (gmem_page_server_new_mapped())
 * and a restore of what they accept into a small region. The input is the header's first 128 bytes
 * (its fields and the start of the hot list), then the extent table; the checksums are made right
 * unless the flag byte at 127 says otherwise, so that the fuzzer gets past them to what they guard.
 * The file is sparse: data is zeroes, so a restore fails its checks or gives zeroes. Anything a
 * reader accepts is checked again here, independently: every extent aligned, inside the region,
 * after the one before, within its 2 MiB window, their sum the header's.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "crc32c.h"
#include "error.h"
#include "snapshot.h"
#include "gmem/gmem.h"

#define PREFIX 128
#define FILE_MAX (UINT64_C(1) << 32) /* a sparse file larger than this is not worth making */

static void check_header(const struct snap_header *h) {
        if (h->page_size < 4096 || (h->page_size & (h->page_size - 1)) || h->region_size % h->page_size ||
            h->table_offset != h->data_offset + h->region_size || h->data_bytes > h->region_size ||
            h->file_size != h->table_offset + h->n_extents * sizeof(struct snap_extent))
                __builtin_trap();
}

static void check_table(const struct snap_header *h, const struct snap_extent *e, uint64_t n) {
        uint64_t next = 0, sum = 0;
        check_header(h);
        for (uint64_t i = 0; i < n; i++) {
                if (e[i].length == 0 || e[i].offset % 4096 || e[i].length % 4096 || e[i].offset < next ||
                    e[i].offset >= h->region_size || e[i].length > h->region_size - e[i].offset ||
                    e[i].offset / (2u << 20) != (e[i].offset + e[i].length - 1) / (2u << 20))
                        __builtin_trap();
                next = e[i].offset + e[i].length;
                sum += e[i].length;
        }
        if (sum != h->data_bytes)
                __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        uint8_t block[SNAP_HEADER_SIZE] = { 0 };
        struct gmem_snapshot_info *info = NULL;
        struct gmem_page_server *ps = NULL;
        struct snap_header h;
        const uint8_t *table = data + PREFIX;
        size_t table_len = size > PREFIX ? size - PREFIX : 0;
        bool keep_crcs;
        int fd, uffd;

        if (size < PREFIX)
                return 0;
        memcpy(block, data, PREFIX);
        keep_crcs = data[PREFIX - 1] & 1;
        block[PREFIX - 1] = 0;
        memcpy(&h, block, sizeof(h));
        if (!keep_crcs) {
                h.table_crc = gmem_crc32c(0, table, table_len);
                h.header_crc = 0;
                memcpy(block, &h, sizeof(h));
                h.header_crc = gmem_crc32c(0, block, sizeof(block));
                memcpy(block, &h, sizeof(h));
        }
        /* the file: the header, the table where the header puts it (if that is a file we can make) */
        fd = memfd_create("fuzz-snapshot", MFD_CLOEXEC);
        if (fd < 0)
                return 0;
        if (pwrite(fd, block, sizeof(block), 0) != (ssize_t) sizeof(block) ||
            (h.table_offset < FILE_MAX - table_len && table_len &&
             pwrite(fd, table, table_len, (off_t) h.table_offset) != (ssize_t) table_len) ||
            (h.file_size > sizeof(block) && h.file_size < FILE_MAX && ftruncate(fd, (off_t) h.file_size) < 0)) {
                close(fd);
                return 0;
        }

        /* gmemd's reader: the header alone */
        if (snapshot_read_header(fd, &h) == 0)
                check_header(&h);
        /* the library's: header and table */
        if (gmem_snapshot_open(fd, &info) == 0) {
                check_table(&info->h, info->extents, info->h.n_extents);
                /* a restore of it: into a region of its size, when that is small */
                if (info->h.region_size <= (64u << 20) && info->h.backend != GMEM_BACKEND_HUGETLB) {
                        struct gmem_region *r = NULL;
                        if (gmem_region_new_memfd(GMEM_BACKEND_MEMFD, info->h.region_size, &r) == 0) {
                                (void) gmem_snapshot_restore(r, fd, NULL);
                                gmem_region_free(r);
                        }
                }
                gmem_snapshot_info_free(info);
        }
        /* the page server's: made over it (not run: this is no userfaultfd) */
        uffd = eventfd(0, EFD_CLOEXEC);
        if (uffd >= 0) {
                struct gmem_uffd_mapping m = { .base = UINT64_C(1) << 40, .size = h.region_size, .offset = 0 };
                if (h.region_size && h.region_size <= (UINT64_C(1) << 40) &&
                    gmem_page_server_new_mapped(uffd, &m, 1, fd, 0, &ps) == 0)
                        gmem_page_server_free(ps);
                close(uffd);
        }
        close(fd);
        gmem_error_clear();
        return 0;
}
