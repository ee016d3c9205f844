/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Filling and reading guest memory. Writes go either through the region's user mapping (pread()
 * from the source straight into it: one copy, and no kernel direct-map access, so it works for
 * memory that is not in the direct map) or through write() on the region's fd where that is a
 * populate path of its own: the guest_memfd write() series, and shmem memfds, whose write path
 * allocates pages without faulting them in and zeroing them first.
 *
 * Which is faster depends on the source (measured here, 512 MiB into a memfd): from a buffer already
 * in memory, write() wins (2.2 vs 1.0 GiB/s for a memcpy); from a file, pread() into the mapping wins
 * (1.5 vs 1.2 GiB/s), because write() has to read the source through a mapping of its own and
 * pays its page faults. So populate_buf prefers write() and populate_fd the mapping; each falls back
 * to the other when the region has only one. A guest_memfd with the write() series prefers write()
 * from either source: measured in make check-kernels on the secret-hiding kernel (NO_DIRECT_MAP |
 * WRITE, 64 MiB, fresh memory), write() filled it 1.9x faster than the mapping from a file and 2.9x
 * from a buffer — through the mapping every page faults on its own and leaves the direct map on
 * its own, since the kernel refuses to pin it. A file fed to write() is mapped read-only: still one
 * copy, and a source truncated underneath fails the kernel's copy with EFAULT, never a SIGBUS here.
 *
 * The secret-hiding series' write() on a NO_DIRECT_MAP guest_memfd only fills pages that do not
 * exist yet: a page already there (populated before, or touched through the mapping) gives
 * EEXIST, and so does a page whose copy faulted on the source (the kernel allocated it, then gave
 * up). So the source range is faulted in before each write(), and where write() meets a page
 * that exists, the rest of the chunk goes through the mapping.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <string.h>
#include <sys/stat.h>

#include "error.h"
#include "io.h"
#include "job.h"
#include "opts.h"
#include "pages.h"
#include "region.h"
#include "residency.h"

struct copy_ctx {
        struct gmem_region *r;
        uint8_t *map;           /* the region's mapping, NULL when writing with write() */
        uint64_t off;           /* region offset of the job's start */
        int fd;                 /* source (populate) or destination (dump) */
        uint64_t fd_off;
        const uint8_t *buf;     /* source bytes for write(): the caller's buffer or the mapped source */
        const struct region_data *data; /* dump: which pages hold data */
};

int gmem_read_full(int fd, uint8_t *dst, uint64_t len, uint64_t off, const char *what) {
        uint64_t got = 0;

        while (got < len) {
                ssize_t n = pread(fd, dst + got, MIN(len - got, (uint64_t) 1 << 30), (off_t) (off + got));
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EFAULT && what)
                        return gmem_error(-EACCES, "%s: pread into region offset: the page is private to the guest", what);
                if (n < 0)
                        return gmem_error(negative_errno(), "pread source fd %d at %" PRIu64, fd, off + got);
                if (n == 0)
                        return gmem_error(-ENODATA, "source fd %d ends before byte %" PRIu64, fd, off + len);
                got += n;
        }
        return 0;
}

int gmem_write_full(int fd, const uint8_t *src, uint64_t len, uint64_t off, const char *what, uint64_t *ret_put) {
        uint64_t put = 0;
        int k = 0;

        while (put < len) {
                ssize_t n = pwrite(fd, src + put, MIN(len - put, (uint64_t) 1 << 30), (off_t) (off + put));
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EFAULT)
                        k = gmem_error(-EFAULT, "%s: pwrite fd %d at %" PRIu64 ": the source shrank or the "
                                       "memory is private to the guest", what, fd, off + put);
                else if (n < 0)
                        k = gmem_error(negative_errno(), "%s: pwrite fd %d at %" PRIu64, what, fd, off + put);
                else if (n == 0)
                        k = gmem_error(-EIO, "%s: pwrite fd %d at %" PRIu64 " wrote nothing", what, fd, off + put);
                if (k < 0)
                        break;
                put += n;
        }
        if (ret_put)
                *ret_put = put;
        return k;
}

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif

/* Fill [dst, dst+len) of the region from src with write(): the source faulted in first, and what
 * write() finds already there (EEXIST: a NO_DIRECT_MAP guest_memfd) copied through the mapping. */
static int write_region(struct gmem_region *r, const uint8_t *src, uint64_t dst, uint64_t len, const char *what) {
        uint64_t ps = page_size(), put = 0;
        uintptr_t a = align_down((uintptr_t) src, ps);
        uint8_t *map;
        int k;

        if (r->backend == GMEM_BACKEND_GUEST_MEMFD)
                (void) madvise((void *) a, align_up((uintptr_t) src + len, ps) - a, MADV_POPULATE_READ);
        k = gmem_write_full(r->fd, src, len, dst, what, &put);
        if (k != -EEXIST || r->backend != GMEM_BACKEND_GUEST_MEMFD || !r->mappable)
                return k;
        gmem_error_clear();
        k = region_map_for(r, what, &map);
        if (k < 0)
                return k;
        k = region_populate_pages(r, map, dst + put, len - put);
        if (k < 0)
                return k;
        memcpy(map + dst + put, src + put, len - put);
        return 0;
}

static int populate_fd_chunk(void *userdata, uint64_t off, uint64_t len, uint64_t *ret_count) {
        struct copy_ctx *c = userdata;
        uint64_t dst = c->off + off;
        int k;

        if (c->map) {
                k = region_populate_pages(c->r, c->map, dst, len);
                if (k < 0)
                        return k;
                k = gmem_read_full(c->fd, c->map + dst, len, c->fd_off + off, "populate");
        } else if (c->buf)
                k = write_region(c->r, c->buf + off, dst, len, "populate");
        else {
                /* a source that cannot be mapped: bounce through a buffer */
                _cleanup_free_ uint8_t *b = malloc(len);
                if (!b)
                        return gmem_error(-ENOMEM, "populate: bounce buffer of %" PRIu64 " bytes", len);
                k = gmem_read_full(c->fd, b, len, c->fd_off + off, NULL);
                if (k >= 0)
                        k = write_region(c->r, b, dst, len, "populate");
        }
        if (k >= 0)
                *ret_count = len;
        return k;
}

static int populate_buf_chunk(void *userdata, uint64_t off, uint64_t len, uint64_t *ret_count) {
        struct copy_ctx *c = userdata;
        uint64_t dst = c->off + off;
        int k;

        if (!c->map)
                k = write_region(c->r, c->buf + off, dst, len, "populate");
        else {
                k = region_populate_pages(c->r, c->map, dst, len);
                if (k >= 0)
                        memcpy(c->map + dst, c->buf + off, len);
        }
        if (k >= 0)
                *ret_count = len;
        return k;
}

/* Pick the write path the options and the region allow: the mapping, or NULL for write(). */
static int choose_path(struct gmem_region *r, const struct gmem_populate_opts *opts, bool prefer_write,
                       uint8_t **ret_map) {
        unsigned flags = opts->flags;
        int k = 0;

        if (k < 0)
                return k;
        if (flags & GMEM_POPULATE_VIA_WRITE) {
                if (!r->write_syscall)
                        return gmem_error(-EOPNOTSUPP, "populate: this %s has no write() syscall path",
                                          gmem_backend_to_string(r->backend));
                *ret_map = NULL;
                return 0;
        }
        if (r->write_syscall && !(flags & GMEM_POPULATE_VIA_MAPPING) &&
            (prefer_write || r->backend == GMEM_BACKEND_GUEST_MEMFD || !r->mappable)) {
                *ret_map = NULL;
                return 0;
        }
        return region_map_for(r, "populate", ret_map);
}

static int check_source(int fd, uint64_t off, uint64_t len) {
        struct stat st;

        if (fd < 0)
                return gmem_error(-EBADF, "populate: invalid source fd %d", fd);
        if (fstat(fd, &st) < 0)
                return gmem_error(negative_errno(), "populate: fstat source fd %d", fd);
        if (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode) || S_ISCHR(st.st_mode) || S_ISDIR(st.st_mode))
                return gmem_error(-ESPIPE, "populate: source fd %d is not a seekable file", fd);
        if (off > INT64_MAX || len > INT64_MAX - off)
                return gmem_error(-EOVERFLOW, "populate: source range %" PRIu64 "+%" PRIu64 " overflows", off, len);
        if (S_ISREG(st.st_mode) && (uint64_t) st.st_size < off + len)
                return gmem_error(-ENODATA, "populate: source has %" PRIu64 " bytes, %" PRIu64 "+%" PRIu64 " asked",
                                  (uint64_t) st.st_size, off, len);
        return 0;
}

_public_ int64_t gmem_populate_fd_0_2(struct gmem_region *r, uint64_t dst_off, int src_fd, uint64_t src_off,
                                     uint64_t len, const struct gmem_populate_opts *opts_in) {
        struct copy_ctx c = { .r = r, .off = dst_off, .fd = src_fd, .fd_off = src_off };
        struct gmem_populate_opts o, *opts = &o;
        struct gmem_job job = { .total = len, .fn = populate_fd_chunk, .ctx = &c, .opts = opts };
        void *src_map = NULL;
        uint64_t src_map_len = 0;
        int k;

        if ((k = gmem_opts_get(opts_in, "populate", &o)) < 0 ||
            (k = region_check_range(r, "populate", dst_off, len)) < 0 ||
            (k = check_source(src_fd, src_off, len)) < 0 ||
            (k = region_check_shared(r, "populate", dst_off, len)) < 0 ||
            (k = choose_path(r, opts, false, &c.map)) < 0)
                return k;
        if (!c.map) {
                /* write() path: map the source read-only (falls back to a bounce buffer) */
                uint64_t start = align_down(src_off, page_size());
                void *p = mmap(NULL, src_off + len - start, PROT_READ, MAP_SHARED, src_fd, (off_t) start);
                if (p != MAP_FAILED) {
                        src_map = p;
                        src_map_len = src_off + len - start;
                        c.buf = (const uint8_t *) p + (src_off - start);
                }
        }
        k = gmem_job_run(&job, NULL);
        if (src_map)
                munmap(src_map, src_map_len);
        return k < 0 ? k : (int64_t) len;
}

_public_ int64_t gmem_populate_buf_0_2(struct gmem_region *r, uint64_t dst_off, const void *buf, uint64_t len,
                                      const struct gmem_populate_opts *opts_in) {
        struct copy_ctx c = { .r = r, .off = dst_off, .buf = buf };
        struct gmem_populate_opts o, *opts = &o;
        struct gmem_job job = { .total = len, .fn = populate_buf_chunk, .ctx = &c, .opts = opts };
        int k;

        if ((k = gmem_opts_get(opts_in, "populate", &o)) < 0 ||
            (k = region_check_range(r, "populate", dst_off, len)) < 0)
                return k;
        if (!buf)
                return gmem_error(-EINVAL, "populate: NULL buffer");
        if ((k = region_check_shared(r, "populate", dst_off, len)) < 0 ||
            (k = choose_path(r, opts, true, &c.map)) < 0)
                return k;
        k = gmem_job_run(&job, NULL);
        return k < 0 ? k : (int64_t) len;
}

/* [a, b) of dst (region offsets) reads as zeroes: a hole, and nothing of dst's old content shows
 * through; written zeroes where dst cannot punch. */
static int dump_hole(struct copy_ctx *c, uint64_t a, uint64_t b) {
        static const uint8_t zero[64 * 1024];
        int k = 0;

        if (fallocate(c->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t) (c->fd_off + (a - c->off)), (off_t) (b - a)) == 0)
                return 0;
        for (uint64_t p = a; p < b && k >= 0; p += MIN(b - p, sizeof(zero)))
                k = gmem_write_full(c->fd, zero, MIN(b - p, sizeof(zero)), c->fd_off + (p - c->off), "dump", NULL);
        return k;
}

/* Dump one chunk: the pages that hold data (residency.h: swapped ones too) are written, runs of the
 * others become holes in dst. Where the backend cannot say (hugetlb) the pages are read through the
 * fd (a hole reads as zeroes without being allocated) and the zero ones left out. */
static int dump_chunk(void *userdata, uint64_t off, uint64_t len, uint64_t *ret_count) {
        struct copy_ctx *c = userdata;
        uint64_t start = c->off + off, end = start + len;
        uint64_t first = align_down(start, 4096), npages = (align_up(end, 4096) - first) / 4096;
        _cleanup_free_ uint8_t *vec = malloc(npages), *buf = NULL;
        uint64_t written = 0, i = 0;
        int k;

        if (!vec)
                return gmem_error(-ENOMEM, "dump: residency vector");
        if ((k = region_data_map(c->data, first, npages * 4096, vec)) < 0)
                return gmem_error_wrap(k, "dump");
        if (k == 0) {
                if (!(buf = malloc(npages * 4096)))
                        return gmem_error(-ENOMEM, "dump: buffer of %" PRIu64 " bytes", npages * 4096);
                if ((k = gmem_read_full(c->r->fd, buf, npages * 4096, first, NULL)) < 0)
                        return k;
                for (uint64_t p = 0; p < npages; p++)
                        vec[p] = !page_is_zero(buf + p * 4096, 4096);
        }
        while (i < npages) {
                bool backed = vec[i];
                uint64_t j = i, a, b;

                while (j < npages && (bool) vec[j] == backed)
                        j++;
                a = MAX(first + i * 4096, start);
                b = MIN(first + j * 4096, end);
                if (backed) {
                        k = gmem_write_full(c->fd, buf ? buf + (a - first) : c->map + a, b - a, c->fd_off + (a - c->off), "dump", NULL);
                        written += b - a;
                } else
                        k = dump_hole(c, a, b);
                if (k < 0)
                        return k;
                i = j;
        }
        *ret_count = written;
        return 0;
}

_public_ int64_t gmem_dump_fd_0_2(struct gmem_region *r, uint64_t off, uint64_t len, int dst_fd, uint64_t dst_off,
                                 const struct gmem_populate_opts *opts_in) {
        struct copy_ctx c = { .r = r, .off = off, .fd = dst_fd, .fd_off = dst_off };
        struct gmem_populate_opts o;
        struct gmem_job job = { .total = len, .fn = dump_chunk, .ctx = &c, .opts = &o, .align = page_size() };
        struct region_data data;
        uint64_t written = 0;
        struct stat st;
        int k, fl;

        if ((k = gmem_opts_get(opts_in, "dump", &o)) < 0 ||
            (k = region_check_range(r, "dump", off, len)) < 0)
                return k;
        if (dst_fd < 0)
                return gmem_error(-EBADF, "dump: invalid destination fd %d", dst_fd);
        if (fstat(dst_fd, &st) < 0)
                return gmem_error(negative_errno(), "dump: fstat destination fd %d", dst_fd);
        if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
                return gmem_error(-ESPIPE, "dump: destination fd %d is not a seekable file", dst_fd);
        fl = fcntl(dst_fd, F_GETFL);
        if (fl < 0)
                return gmem_error(negative_errno(), "dump: fcntl(F_GETFL) destination fd %d", dst_fd);
        if (fl & O_APPEND) /* pwrite() on it writes at the end, whatever offset it is given */
                return gmem_error(-EINVAL, "dump: destination fd %d is open O_APPEND: the data would land at the "
                                  "file's end, not at offset %" PRIu64, dst_fd, dst_off);
        if (dst_off > INT64_MAX || len > INT64_MAX - dst_off)
                return gmem_error(-EOVERFLOW, "dump: destination range %" PRIu64 "+%" PRIu64 " overflows", dst_off, len);
        if ((k = region_check_shared(r, "dump", off, len)) < 0 ||
            (k = region_map_for(r, "dump", &c.map)) < 0)
                return k;
        /* the file gets its full length even when the region ends in a hole */
        if (S_ISREG(st.st_mode) && (uint64_t) st.st_size < dst_off + len && ftruncate(dst_fd, (off_t) (dst_off + len)) < 0)
                return gmem_error(negative_errno(), "dump: extend destination to %" PRIu64 " bytes", dst_off + len);
        region_data_begin(r, c.map, &data);
        c.data = &data;
        k = gmem_job_run(&job, &written);
        region_data_end(&data);
        return k < 0 ? k : (int64_t) written;
}

GMEM_SYMVER(gmem_populate_fd_0_2, "gmem_populate_fd@@LIBGMEM_0.2");
GMEM_SYMVER(gmem_populate_buf_0_2, "gmem_populate_buf@@LIBGMEM_0.2");
GMEM_SYMVER(gmem_dump_fd_0_2, "gmem_dump_fd@@LIBGMEM_0.2");
