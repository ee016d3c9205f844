/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Snapshots of a region (docs/snapshot.md): one sparse file.
 *
 *   [0, 4096)                      the header (struct snap_header, little-endian)
 *   [data_offset, +region size)    region byte i at data_offset + i; holes where the region had
 *                                  no backed pages, so the file is as sparse as the region
 *   [table_offset, +n * 24)        the extents: offset, length, CRC-32C of each backed run
 *
 * data_offset is the region's page size (at least 4096), so the data can be mapped page for page
 * (the lazy restore's page server maps it). No extent crosses a 2 MiB boundary: each is short
 * enough to verify before a fault is served from it. The header and the table carry their own
 * CRC, and the header the file's full size, so a truncated or altered snapshot is refused, never
 * restored silently: the header and the table before any copy, each extent as it is copied.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crc32c.h"
#include "enum-count.h"
#include "error.h"
#include "io.h"
#include "job.h"
#include "opts.h"
#include "pages.h"
#include "region.h"
#include "residency.h"
#include "snapshot.h"

/* ---- writing */

struct window {
        struct snap_extent *e;
        unsigned n, cap;
};

struct write_ctx {
        struct gmem_region *r;
        uint8_t *map;
        struct region_data data;
        int fd;
        uint64_t data_offset;
        struct window *windows;
};

static int add_extent(struct window *w, uint64_t off, uint64_t len, uint32_t crc) {
        if (w->n == w->cap) {
                unsigned cap = w->cap ? w->cap * 2 : 8;
                struct snap_extent *e = realloc(w->e, cap * sizeof(*e));
                if (!e)
                        return gmem_error(-ENOMEM, "snapshot: extent table");
                w->e = e;
                w->cap = cap;
        }
        w->e[w->n++] = (struct snap_extent) { .offset = off, .length = len, .crc = crc };
        return 0;
}

/* One backed run [a, b) from src: its data into the file, its extents (cut at SNAP_BLOCK, so that
 * a page server verifies at most that much for a fault) into the window. */
static int put_run(struct write_ctx *c, struct window *w, const uint8_t *src, uint64_t a, uint64_t b) {
        int k = gmem_write_full(c->fd, src, b - a, c->data_offset + a, "snapshot", NULL);

        for (uint64_t x = a; k >= 0 && x < b;) {
                uint64_t y = MIN(b, align_down(x, SNAP_BLOCK) + SNAP_BLOCK);
                k = add_extent(w, x, y - x, gmem_crc32c(0, src + (x - a), y - x));
                x = y;
        }
        return k;
}

/* One 2 MiB window: the pages that hold data (residency.h: swapped ones too), each run written.
 * Where the backend cannot say (hugetlb), the pages are read and the zero ones left out. */
static int write_window(void *userdata, uint64_t off, uint64_t len, uint64_t *ret_count) {
        struct write_ctx *c = userdata;
        struct window *w = &c->windows[off / SNAP_WINDOW];
        uint64_t n = len / 4096, written = 0;
        _cleanup_free_ uint8_t *buf = NULL;
        uint8_t vec[SNAP_WINDOW / 4096];
        int k;

        if ((k = region_data_map(&c->data, off, len, vec)) < 0)
                return gmem_error_wrap(k, "snapshot");
        if (k == 0) {
                if (!(buf = malloc(len)))
                        return gmem_error(-ENOMEM, "snapshot: buffer");
                if ((k = gmem_read_full(c->r->fd, buf, len, off, NULL)) < 0)
                        return k;
                for (uint64_t i = 0; i < n; i++)
                        vec[i] = !page_is_zero(buf + i * 4096, 4096);
        }
        for (uint64_t i = 0; i < n;) {
                uint64_t j = i;
                bool backed = vec[i];
                while (j < n && (bool) vec[j] == backed)
                        j++;
                if (backed) {
                        uint64_t a = off + i * 4096, b = off + j * 4096;
                        k = put_run(c, w, buf ? buf + i * 4096 : c->map + a, a, b);
                        if (k < 0)
                                return k;
                        written += b - a;
                }
                i = j;
        }
        *ret_count = written;
        return 0;
}

/* The header block: h, its hot list (h->hot_count entries of hot), zeroes, and its checksum. */
static void header_seal(struct snap_header *h, const uint32_t *hot, uint8_t block[static SNAP_HEADER_SIZE]) {
        memset(block, 0, SNAP_HEADER_SIZE);
        if (h->hot_count)
                memcpy(block + SNAP_HOT_OFFSET, hot, h->hot_count * sizeof(uint32_t));
        h->header_crc = 0;
        memcpy(block, h, sizeof(*h));
        h->header_crc = gmem_crc32c(0, block, SNAP_HEADER_SIZE);
        memcpy(block, h, sizeof(*h));
}

_public_ int64_t gmem_snapshot_write(struct gmem_region *r, int fd, const struct gmem_populate_opts *opts_in) {
        struct gmem_populate_opts o;
        struct write_ctx c = { .r = r, .fd = fd };
        struct gmem_job job = { .fn = write_window, .ctx = &c, .opts = &o, .align = SNAP_WINDOW };
        struct snap_header h = { .version = SNAP_VERSION };
        _cleanup_free_ struct snap_extent *table = NULL;
        uint8_t block[SNAP_HEADER_SIZE];
        uint64_t n_windows, n = 0, data = 0;
        struct stat st;
        int k, fl;

        if ((k = gmem_opts_get(opts_in, "snapshot", &o)) < 0)
                return k;
        if (!r)
                return gmem_error(-EINVAL, "snapshot: NULL region");
        if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
                return gmem_error(fd < 0 ? -EBADF : -EINVAL, "snapshot: destination fd %d is not a regular file", fd);
        fl = fcntl(fd, F_GETFL);
        if (fl < 0 || (fl & O_ACCMODE) == O_RDONLY || (fl & O_APPEND))
                return gmem_error(-EBADF, "snapshot: destination fd %d must be open for writing, not O_APPEND", fd);
        if ((k = region_check_shared(r, "snapshot", 0, r->size)) < 0)
                return k;
        if (r->backend != GMEM_BACKEND_HUGETLB && (k = region_map_for(r, "snapshot", &c.map)) < 0)
                return k;

        memcpy(h.magic, SNAP_MAGIC, 8);
        h.region_size = r->size;
        h.page_size = r->page_size;
        h.flags = r->flags;
        h.backend = (uint32_t) r->backend;
        h.data_offset = MAX((uint64_t) SNAP_HEADER_SIZE, r->page_size);
        h.table_offset = h.data_offset + r->size;
        n_windows = (r->size + SNAP_WINDOW - 1) / SNAP_WINDOW;
        c.data_offset = h.data_offset;
        c.windows = calloc(n_windows, sizeof(*c.windows));
        if (!c.windows)
                return gmem_error(-ENOMEM, "snapshot: %" PRIu64 " windows", n_windows);
        region_data_begin(r, c.map, &c.data);

        /* start from an empty file: nothing of an older one may show through the holes */
        if (ftruncate(fd, 0) < 0 || ftruncate(fd, (off_t) h.table_offset) < 0) {
                k = gmem_error(negative_errno(), "snapshot: size the destination to %" PRIu64 " bytes", h.table_offset);
                goto out;
        }
        job.total = r->size;
        o.chunk_size = SNAP_WINDOW;
        k = gmem_job_run(&job, &data);
        if (k < 0)
                goto out;

        for (uint64_t i = 0; i < n_windows; i++)
                n += c.windows[i].n;
        table = calloc(n ? n : 1, sizeof(*table));
        if (!table) {
                k = gmem_error(-ENOMEM, "snapshot: extent table of %" PRIu64, n);
                goto out;
        }
        n = 0;
        for (uint64_t i = 0; i < n_windows; i++)
                if (c.windows[i].n) { /* an empty window has no array at all */
                        memcpy(table + n, c.windows[i].e, c.windows[i].n * sizeof(*table));
                        n += c.windows[i].n;
                }
        h.n_extents = n;
        h.data_bytes = data;
        h.file_size = h.table_offset + n * sizeof(*table);
        h.table_crc = gmem_crc32c(0, table, n * sizeof(*table));
        if ((k = gmem_write_full(fd, (const uint8_t *) table, n * sizeof(*table), h.table_offset, "snapshot", NULL)) < 0)
                goto out;
        /* the header last: a snapshot cut short while it was written has none and is refused */
        header_seal(&h, NULL, block);
        if ((k = gmem_write_full(fd, block, sizeof(block), 0, "snapshot", NULL)) < 0)
                goto out;
        if (fdatasync(fd) < 0 && errno != EINVAL) {
                k = gmem_error(negative_errno(), "snapshot: fdatasync");
                goto out;
        }
        k = 0;
out:
        region_data_end(&c.data);
        for (uint64_t i = 0; i < n_windows; i++)
                free(c.windows[i].e);
        free(c.windows);
        return k < 0 ? k : (int64_t) data;
}

/* ---- reading: one validator for every reader (the library's, the page server's, gmemd's) */

static int bad(int fd, const char *why) {
        return gmem_error(-EBADMSG, "snapshot fd %d: %s", fd, why);
}

/* The header block of fd: magic, version and checksum (the block as read into ret_block). */
static int header_block(int fd, struct snap_header *ret, uint8_t ret_block[static SNAP_HEADER_SIZE]) {
        struct snap_header h;
        uint32_t crc;
        int k;

        if ((k = gmem_read_full(fd, ret_block, SNAP_HEADER_SIZE, 0, NULL)) < 0)
                return k == -ENODATA ? bad(fd, "shorter than a snapshot header (truncated, or not a gmem snapshot)") : k;
        memcpy(&h, ret_block, sizeof(h));
        if (memcmp(h.magic, SNAP_MAGIC, 8) != 0)
                return bad(fd, "not a gmem snapshot (no GMEMSNAP magic; an unfinished snapshot has none)");
        if (h.version != SNAP_VERSION)
                return gmem_error(-EPROTONOSUPPORT, "snapshot fd %d: format version %" PRIu32 " (this library reads %d)",
                                  fd, h.version, SNAP_VERSION);
        crc = h.header_crc;
        memset(ret_block + offsetof(struct snap_header, header_crc), 0, sizeof(uint32_t));
        if (gmem_crc32c(0, ret_block, SNAP_HEADER_SIZE) != crc)
                return bad(fd, "the header's checksum does not match (altered)");
        *ret = h;
        return 0;
}

/* Do the header's fields describe one consistent file? Every sum checked, none can wrap. */
static const char *header_inconsistent(const struct snap_header *h) {
        uint64_t end, table, size;

        if (h->backend >= GMEM_BACKEND_COUNT)
                return "its backend is unknown";
        if (h->page_size < 4096 || (h->page_size & (h->page_size - 1)) || h->page_size > (UINT64_C(1) << 30))
                return "its page size is not a power of two from 4096 to 1 GiB";
        if (h->region_size == 0 || h->region_size % h->page_size)
                return "its region size is not a whole number of pages";
        if (h->data_offset < SNAP_HEADER_SIZE || h->data_offset % 4096)
                return "its data does not start on a page after the header";
        if (h->n_extents > SNAP_EXTENTS_MAX || h->n_extents > h->region_size / 4096)
                return "it counts more extents than the region has pages";
        if (h->data_bytes > h->region_size)
                return "it counts more data than the region holds";
        if (__builtin_add_overflow(h->data_offset, h->region_size, &end) || h->table_offset != end)
                return "its extent table is not where its data ends";
        if (__builtin_mul_overflow(h->n_extents, (uint64_t) sizeof(struct snap_extent), &table) ||
            __builtin_add_overflow(h->table_offset, table, &size) || h->file_size != size || size > INT64_MAX)
                return "its file size does not add up";
        if (h->hot_count > SNAP_HOT_MAX || (h->hot_count && (h->hot_shift < 12 || h->hot_shift > 30)))
                return "the hot list is longer than its room, or its unit is not one";
        return NULL;
}

/* The header of fd, checked; its block as read (for the hot list) into block. */
static int read_header(int fd, struct snap_header *ret, uint8_t block[static SNAP_HEADER_SIZE]) {
        struct snap_header h;
        const char *why;
        struct stat st;
        int k;

        if (fd < 0 || fstat(fd, &st) < 0)
                return gmem_error(fd < 0 ? -EBADF : negative_errno(), "snapshot: fstat fd %d", fd);
        if (!S_ISREG(st.st_mode))
                return gmem_error(-EINVAL, "snapshot fd %d is not a regular file", fd);
        if ((k = header_block(fd, &h, block)) < 0)
                return k;
        if ((why = header_inconsistent(&h)))
                return gmem_error(-EBADMSG, "snapshot fd %d: the header describes no consistent snapshot: %s", fd, why);
        if ((uint64_t) st.st_size < h.file_size)
                return gmem_error(-EBADMSG, "snapshot fd %d: truncated: %" PRIu64 " of %" PRIu64 " bytes", fd,
                                  (uint64_t) st.st_size, h.file_size);
        *ret = h;
        return 0;
}

int snapshot_read_header(int fd, struct snap_header *ret) {
        uint8_t block[SNAP_HEADER_SIZE];
        return read_header(fd, ret, block);
}

int snapshot_check_extents(const struct snap_header *h, const struct snap_extent *v, uint64_t n, const char **ret_why) {
        uint64_t next = 0, sum = 0;

        for (uint64_t i = 0; i < n; i++) {
                const struct snap_extent *e = &v[i];
                const char *why = NULL;
                if (e->length == 0 || e->offset % 4096 || e->length % 4096 || e->reserved)
                        why = "an extent is empty, not page-aligned, or has its reserved field set";
                else if (e->offset >= h->region_size || e->length > h->region_size - e->offset)
                        why = "an extent reaches past the region";
                else if (e->offset < next)
                        why = "the extents are out of order or overlap";
                else if (e->offset / SNAP_WINDOW != (e->offset + e->length - 1) / SNAP_WINDOW)
                        why = "an extent crosses a 2 MiB boundary";
                if (why) {
                        *ret_why = why;
                        return -EBADMSG;
                }
                next = e->offset + e->length; /* at most region_size: no wrap */
                sum += e->length;             /* the extents are disjoint and inside: at most region_size */
        }
        if (sum != h->data_bytes) {
                *ret_why = "the extents do not add up to the data the header counts";
                return -EBADMSG;
        }
        return 0;
}

int snapshot_open_bounded(int fd, uint64_t max_extents, uint64_t size, struct gmem_snapshot_info **ret_info) {
        _cleanup_free_ struct gmem_snapshot_info *s = NULL;
        uint8_t block[SNAP_HEADER_SIZE];
        const char *why = NULL;
        struct snap_header *h;
        int k;

        if (fd < 0 || !ret_info)
                return gmem_error(-EINVAL, "snapshot: invalid fd or NULL result");
        s = calloc(1, sizeof(*s));
        if (!s)
                return gmem_error(-ENOMEM, "snapshot");
        h = &s->h;
        if ((k = read_header(fd, h, block)) < 0)
                return k;
        if (h->n_extents > max_extents || (size && h->region_size != size))
                return bad(fd, "it changed since its header was checked (a larger table, or another size)");
        memcpy(s->hot, block + SNAP_HOT_OFFSET, h->hot_count * sizeof(uint32_t));
        for (uint32_t i = 0; i < h->hot_count; i++)
                if (((uint64_t) s->hot[i] << h->hot_shift) >= h->region_size)
                        return bad(fd, "the hot list points outside the region");
        s->extents = calloc(h->n_extents ? h->n_extents : 1, sizeof(*s->extents));
        if (!s->extents)
                return gmem_error(-ENOMEM, "snapshot: %" PRIu64 " extents", h->n_extents);
        if ((k = gmem_read_full(fd, (uint8_t *) s->extents, h->n_extents * sizeof(*s->extents), h->table_offset, NULL)) < 0)
                k = k == -ENODATA ? snapshot_truncated() : k;
        else if (gmem_crc32c(0, s->extents, h->n_extents * sizeof(*s->extents)) != h->table_crc)
                k = bad(fd, "the extent table's checksum does not match (altered)");
        else if (snapshot_check_extents(h, s->extents, h->n_extents, &why) < 0)
                k = bad(fd, why);
        if (k < 0) {
                free(s->extents);
                return k;
        }
        *ret_info = TAKE_PTR(s);
        return 0;
}

_public_ int gmem_snapshot_open(int fd, struct gmem_snapshot_info **ret_info) {
        return snapshot_open_bounded(fd, UINT64_MAX, 0, ret_info);
}

int snapshot_set_hot(int fd, const uint32_t *hot, uint32_t n, uint32_t shift, const struct snap_header *expect) {
        uint8_t block[SNAP_HEADER_SIZE];
        struct snap_header h;
        int k;

        if (n > SNAP_HOT_MAX || (n && (shift < 12 || shift > 30)))
                return gmem_error(-EINVAL, "snapshot: a hot list of %" PRIu32 " entries in units of 2^%" PRIu32, n, shift);
        if ((k = header_block(fd, &h, block)) < 0)
                return gmem_error_wrap(k, "no hot list written");
        if (header_inconsistent(&h))
                return bad(fd, "its header describes no consistent snapshot: no hot list written");
        if (expect && (h.region_size != expect->region_size || h.table_crc != expect->table_crc || h.n_extents != expect->n_extents))
                return gmem_error(-EINVAL, "snapshot fd %d is not the snapshot served: no hot list written", fd);
        for (uint32_t i = 0; i < n; i++)
                if (((uint64_t) hot[i] << shift) >= h.region_size)
                        return gmem_error(-EINVAL, "snapshot: hot entry %" PRIu32 " is outside the region", i);
        h.hot_count = n;
        h.hot_shift = n ? shift : 0;
        header_seal(&h, hot, block);
        return gmem_write_full(fd, block, sizeof(block), 0, "snapshot header", NULL);
}

static int raw_add(struct gmem_snapshot_info *s, uint64_t *cap, uint64_t off, uint64_t len) {
        if (s->h.n_extents == *cap) {
                uint64_t n = *cap ? *cap * 2 : 64;
                struct snap_extent *e;
                if (n > SNAP_EXTENTS_MAX || !(e = reallocarray(s->extents, n, sizeof(*e))))
                        return gmem_error(-ENOMEM, "memory file: %" PRIu64 " extents", n);
                s->extents = e;
                *cap = n;
        }
        s->extents[s->h.n_extents++] = (struct snap_extent) { .offset = off, .length = len };
        s->h.data_bytes += len;
        return 0;
}

int snapshot_open_raw(int fd, const uint64_t (*ranges)[2], size_t n, uint64_t unit, struct gmem_snapshot_info **ret_info) {
        _cleanup_free_ struct gmem_snapshot_info *s = NULL;
        uint64_t cap = 0;
        struct stat st;
        int k = 0;

        if (fstat(fd, &st) < 0)
                return gmem_error(negative_errno(), "memory file: fstat fd %d", fd);
        if (!S_ISREG(st.st_mode))
                return gmem_error(-EINVAL, "memory file fd %d is not a regular file", fd);
        if (st.st_size == 0 || st.st_size % 4096)
                return gmem_error(-EINVAL, "memory file fd %d: %" PRIu64 " bytes, not a whole number of pages", fd,
                                  (uint64_t) st.st_size);
        if (!(s = calloc(1, sizeof(*s))))
                return gmem_error(-ENOMEM, "memory file");
        s->raw = true;
        s->h.region_size = (uint64_t) st.st_size;
        s->h.page_size = 4096;
        s->h.backend = GMEM_BACKEND_MEMFD;
        for (size_t i = 0; i < n && k == 0; i++) {
                uint64_t lo = ranges[i][0], hi = MIN(ranges[i][1], s->h.region_size), pos = lo;
                while (pos < hi && k == 0) {
                        off_t data = lseek(fd, (off_t) pos, SEEK_DATA), hole;
                        uint64_t a, b;
                        if (data < 0 && errno == ENXIO)
                                break; /* only a hole from here */
                        if (data < 0) { /* a file system without SEEK_DATA: all of it is data */
                                data = (off_t) pos;
                                hole = (off_t) hi;
                        } else if ((hole = lseek(fd, data, SEEK_HOLE)) < 0)
                                hole = (off_t) hi;
                        a = align_down((uint64_t) data, 4096);
                        b = MIN(align_up((uint64_t) hole, 4096), hi);
                        if (a >= hi)
                                break;
                        /* cut where the server's units end: no extent spans two */
                        for (uint64_t x = MAX(a, pos); x < b && k == 0;) {
                                uint64_t cut = MIN(b, lo + ((x - lo) / unit + 1) * unit);
                                k = raw_add(s, &cap, x, cut - x);
                                x = cut;
                        }
                        pos = b;
                }
        }
        if (k < 0) {
                free(s->extents);
                return k;
        }
        if (!s->extents && !(s->extents = calloc(1, sizeof(*s->extents))))
                return gmem_error(-ENOMEM, "memory file");
        *ret_info = TAKE_PTR(s);
        return 0;
}

_public_ struct gmem_snapshot_info *gmem_snapshot_info_free(struct gmem_snapshot_info *s) {
        if (s) {
                free(s->extents);
                free(s);
        }
        return NULL;
}

_public_ uint64_t gmem_snapshot_info_size(const struct gmem_snapshot_info *s) {
        return s ? s->h.region_size : 0;
}

_public_ enum gmem_backend gmem_snapshot_info_backend(const struct gmem_snapshot_info *s) {
        return s ? (enum gmem_backend) s->h.backend : GMEM_BACKEND_INVALID;
}

_public_ uint64_t gmem_snapshot_info_flags(const struct gmem_snapshot_info *s) {
        return s ? s->h.flags : 0;
}

_public_ uint64_t gmem_snapshot_info_page_size(const struct gmem_snapshot_info *s) {
        return s ? s->h.page_size : 0;
}

_public_ uint64_t gmem_snapshot_info_data_bytes(const struct gmem_snapshot_info *s) {
        return s ? s->h.data_bytes : 0;
}

_public_ uint64_t gmem_snapshot_info_extent_count(const struct gmem_snapshot_info *s) {
        return s ? s->h.n_extents : 0;
}

/* ---- restoring */

struct restore_ctx {
        struct gmem_region *r;
        uint8_t *map;
        struct region_data data;
        bool fresh;             /* the region's file had no pages when the restore began */
        int fd;
        const struct gmem_snapshot_info *s;
        /* write() into the region (a memfd, a guest_memfd with write()): its pages are filled
         * without being zeroed first, from a window-sized bounce buffer per thread that stays in
         * the cache for the checksum. Otherwise pread() straight into the mapping. */
        bool via_write;
};

/* the calling thread's bounce buffer of SNAP_WINDOW bytes, freed when the thread ends */
static pthread_key_t bounce_key;
static pthread_once_t bounce_once = PTHREAD_ONCE_INIT;

static void bounce_key_init(void) {
        (void) pthread_key_create(&bounce_key, free);
}

static uint8_t *bounce_buffer(void) {
        uint8_t *b;

        pthread_once(&bounce_once, bounce_key_init);
        b = pthread_getspecific(bounce_key);
        if (!b && (b = malloc(SNAP_WINDOW)) && pthread_setspecific(bounce_key, b) != 0) {
                free(b);
                b = NULL;
        }
        return b;
}

uint64_t snapshot_extent_at(const struct gmem_snapshot_info *s, uint64_t off) {
        uint64_t lo = 0, hi = s->h.n_extents;
        while (lo < hi) {
                uint64_t mid = lo + (hi - lo) / 2;
                if (s->extents[mid].offset + s->extents[mid].length <= off)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return lo;
}

bool snapshot_covers(const struct gmem_snapshot_info *s, uint64_t off) {
        uint64_t i = snapshot_extent_at(s, off);
        return i < s->h.n_extents && s->extents[i].offset <= off;
}

int snapshot_read_extent(int fd, const struct gmem_snapshot_info *s, const struct snap_extent *e, uint8_t *dst,
                         const char *what) {
        int k = gmem_read_full(fd, dst, e->length, s->h.data_offset + e->offset, what);

        if (k == -ENODATA)
                return snapshot_truncated();
        if (k < 0)
                return k;
        if (!s->raw && gmem_crc32c(0, dst, e->length) != e->crc)
                return snapshot_bad_extent(e);
        return 0;
}

int snapshot_bad_extent(const struct snap_extent *e) {
        return gmem_error(-EBADMSG, "snapshot: the data at %" PRIu64 "+%" PRIu64 " does not match its checksum (altered or damaged)",
                          e->offset, e->length);
}

int snapshot_truncated(void) {
        return gmem_error(-EBADMSG, "snapshot: it ends inside its data (truncated)");
}

/* [x, y) of the region, which the snapshot has no data for, reads as zeroes: punched where the
 * backend can, else zeroed through the mapping. */
static int clear_range(struct restore_ctx *c, uint64_t x, uint64_t y) {
        if (c->r->backend != GMEM_BACKEND_SECRET && x % c->r->page_size == 0 && y % c->r->page_size == 0 &&
            fallocate(c->r->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t) x, (off_t) (y - x)) == 0)
                return 0;
        memset(c->map + x, 0, y - x);
        return 0;
}

/* The pages of the window the snapshot has no data for must read as zeroes after the restore,
 * whatever the region held before (a region used already). Exact backends: the pages that hold
 * data (vec) are cleared. hugetlb, where nothing says: nothing to do in a file with no pages at
 * all (c->fresh), else the uncovered bytes are read (a hole reads as zeroes without being
 * allocated) and cleared where they are not zero. */
static int clear_holes(struct restore_ctx *c, uint64_t off, uint64_t len, const uint8_t *vec, bool exact, uint8_t *buf) {
        const struct gmem_snapshot_info *s = c->s;
        uint64_t next = off, i = snapshot_extent_at(s, off);
        int k;

        if (!exact && c->fresh)
                return 0;
        while (next < off + len) {
                /* the next uncovered run [x, y) */
                uint64_t x = next, y;
                if (i < s->h.n_extents && s->extents[i].offset <= x) {
                        next = s->extents[i].offset + s->extents[i].length;
                        i++;
                        continue;
                }
                y = i < s->h.n_extents ? MIN(s->extents[i].offset, off + len) : off + len;
                next = y;
                if (exact) {
                        for (uint64_t p = x; p < y;) { /* runs of pages that hold data */
                                uint64_t q;
                                if (!vec[(p - off) / 4096]) {
                                        p += 4096;
                                        continue;
                                }
                                for (q = p; q < y && vec[(q - off) / 4096]; q += 4096)
                                        ;
                                if ((k = clear_range(c, p, q)) < 0)
                                        return k;
                                p = q;
                        }
                        continue;
                }
                if (!buf)
                        return gmem_error(-ENOMEM, "restore: buffer");
                if ((k = gmem_read_full(c->r->fd, buf, y - x, x, NULL)) < 0)
                        return k;
                if (!page_is_zero(buf, y - x) && (k = clear_range(c, x, y)) < 0)
                        return k;
        }
        return 0;
}

#define RESTORE_RUN (256 * KiB) /* read at once: fewer calls, and still warm in the cache for the pass after */

/* Extents [i, j) of s are back to back and fit RESTORE_RUN: how far from i that goes. */
static uint64_t run_end(const struct gmem_snapshot_info *s, uint64_t i, uint64_t limit) {
        uint64_t j = i + 1, len = s->extents[i].length;
        while (j < s->h.n_extents && s->extents[j].offset < limit &&
               s->extents[j].offset == s->extents[j - 1].offset + s->extents[j - 1].length &&
               len + s->extents[j].length <= RESTORE_RUN) {
                len += s->extents[j].length;
                j++;
        }
        return j;
}

/* The extents of one window into the region, each verified. Back-to-back extents are read at
 * once (up to RESTORE_RUN): into a region not yet backed that has write(), into the thread's
 * bounce buffer, checked, and written into the file (no zeroing of pages first); into memory
 * that is there already (a pooled region), into the bounce buffer and then copied and checked in
 * one pass, the copy's stores streamed past the cache (that memory is cold: a plain copy would
 * first read every line of it); otherwise the window is populated and read straight into the
 * mapping, checked where it landed while it is still in the cache. */
static int restore_window(void *userdata, uint64_t off, uint64_t len, uint64_t *ret_count) {
        struct restore_ctx *c = userdata;
        const struct gmem_snapshot_info *s = c->s;
        uint8_t vec[SNAP_WINDOW / 4096];
        bool backed = false, via_write;
        uint8_t *b = bounce_buffer();
        uint64_t done = 0;
        int k, exact;

        /* memory there already (a pooled region): a copy into it beats the write path */
        if ((exact = region_data_map(&c->data, off, len, vec)) < 0)
                return gmem_error_wrap(exact, "restore");
        backed = exact && memchr(vec, 0, len / 4096) == NULL;
        via_write = c->via_write && !backed;
        if ((k = clear_holes(c, off, len, vec, exact, b)) < 0)
                return k;

        for (uint64_t i = snapshot_extent_at(s, off), j; i < s->h.n_extents && s->extents[i].offset < off + len; i = j) {
                const struct snap_extent *e = &s->extents[i];
                uint8_t *to;
                uint64_t run;

                if (!b) { /* no bounce buffer: straight into the mapping, one extent at a time */
                        j = i + 1;
                        if ((k = region_populate_pages(c->r, c->map, e->offset, e->length)) < 0 ||
                            (k = snapshot_read_extent(c->fd, s, e, c->map + e->offset, "restore")) < 0)
                                return k;
                        done += e->length;
                        continue;
                }
                j = run_end(s, i, off + len);
                run = s->extents[j - 1].offset + s->extents[j - 1].length - e->offset;
                if (!via_write && !backed && (k = region_populate_pages(c->r, c->map, e->offset, run)) < 0)
                        return k;
                /* memory populated just now is in the cache: read straight into it, check it there */
                to = via_write || backed ? b : c->map + e->offset;
                if ((k = gmem_read_full(c->fd, to, run, s->h.data_offset + e->offset, NULL)) < 0)
                        return k == -ENODATA ? snapshot_truncated() : k;
                for (uint64_t x = i; x < j; x++) {
                        const struct snap_extent *f = &s->extents[x];
                        const uint8_t *from = to + (f->offset - e->offset);
                        uint32_t crc = to == b && !via_write ? gmem_crc32c_copy(c->map + f->offset, from, f->length)
                                                             : gmem_crc32c(0, from, f->length);
                        if (crc != f->crc)
                                return snapshot_bad_extent(f);
                }
                if (via_write && (k = gmem_write_full(c->r->fd, b, run, e->offset, "restore", NULL)) < 0)
                        return k;
                done += run;
        }
        *ret_count = done;
        return 0;
}

static void info_freep(struct gmem_snapshot_info **s) {
        gmem_snapshot_info_free(*s);
}

_public_ int64_t gmem_snapshot_restore(struct gmem_region *r, int fd, const struct gmem_populate_opts *opts_in) {
        _cleanup_(info_freep) struct gmem_snapshot_info *s = NULL;
        struct gmem_populate_opts o;
        struct restore_ctx c = { .r = r, .fd = fd };
        struct gmem_job job = { .fn = restore_window, .ctx = &c, .opts = &o, .align = SNAP_WINDOW };
        uint64_t done = 0;
        struct stat st;
        int k;

        if ((k = gmem_opts_get(opts_in, "restore", &o)) < 0)
                return k;
        if (!r)
                return gmem_error(-EINVAL, "restore: NULL region");
        if ((k = gmem_snapshot_open(fd, &s)) < 0)
                return k;
        if (s->h.region_size != r->size)
                return gmem_error(-EINVAL, "restore: the snapshot is of %" PRIu64 " bytes, the region %" PRIu64,
                                  s->h.region_size, r->size);
        if ((k = region_check_shared(r, "restore", 0, r->size)) < 0 || (k = region_map_for(r, "restore", &c.map)) < 0)
                return k;
        c.s = s;
        c.fresh = fstat(r->fd, &st) == 0 && st.st_blocks == 0;
        c.via_write = r->write_syscall && !(o.flags & GMEM_POPULATE_VIA_MAPPING);
        job.total = r->size;
        o.chunk_size = SNAP_WINDOW;
        region_data_begin(r, c.map, &c.data);
        k = gmem_job_run(&job, &done);
        region_data_end(&c.data);
        return k < 0 ? k : (int64_t) done;
}
