/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Snapshots: a region written to a sparse file and restored into another region (the same or
 * another backend) byte for byte, holes staying holes; and every kind of damaged file refused
 * with a message that says what is wrong, never restored silently.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sys/mman.h>

#include "crc32c.h"
#include "gmem-cleanup.h"
#include "snapshot.h"
#include "gmem-test.h"
#include "gmem/gmem.h"

#define MiB_ (UINT64_C(1) << 20)
#define SIZE (8 * MiB_)

/* A memfd region with data in three places (one across a 2 MiB boundary) and holes elsewhere;
 * *ret_data gets the expected content of all of it. */
static struct gmem_region *sample_region(uint8_t **ret_data) {
        struct gmem_region *r = NULL;
        uint8_t *d = calloc(1, SIZE);
        static const struct {
                uint64_t off, len;
        } parts[] = { { 0, 4096 }, { 2 * MiB_ - 8192, 3 * 4096 }, { 5 * MiB_, MiB_ } };

        ck_assert_ptr_nonnull(d);
        ck_assert_int_eq(gmem_region_new_memfd(GMEM_BACKEND_MEMFD, SIZE, &r), 0);
        for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
                gmem_test_fill(d + parts[i].off, parts[i].len, 100 + i);
                ck_assert_int_eq(gmem_populate_buf(r, parts[i].off, d + parts[i].off, parts[i].len, NULL),
                                 (int64_t) parts[i].len);
        }
        *ret_data = d;
        return r;
}

static int snapshot_of(struct gmem_region *r, uint64_t *ret_data_bytes) {
        int fd = gmem_test_temp_file();
        int64_t n;

        ck_assert_int_ge(fd, 0);
        n = gmem_snapshot_write(r, fd, NULL);
        ck_assert_msg(n >= 0, "snapshot: %s", gmem_last_error());
        *ret_data_bytes = (uint64_t) n;
        return fd;
}

static void expect_content(struct gmem_region *r, const uint8_t *want) {
        void *addr;
        ck_assert_int_eq(gmem_region_map(r, &addr), 0);
        ck_assert_msg(memcmp(addr, want, SIZE) == 0, "restored content differs");
}

START_TEST(round_trip_memfd) {
        _cleanup_(gmem_region_freep) struct gmem_region *r = NULL, *back = NULL;
        _cleanup_free_ uint8_t *want = NULL;
        struct gmem_snapshot_info *s = NULL;
        uint64_t data, resident;
        struct stat st;
        int fd;

        r = sample_region(&want);
        fd = snapshot_of(r, &data);
        ck_assert_uint_eq(data, 4096 + 3 * 4096 + MiB_);
        ck_assert_int_eq(fstat(fd, &st), 0);
        ck_assert_msg((uint64_t) st.st_blocks * 512 < data + 256 * 1024, "the snapshot is not sparse: %lld blocks for %"
                      PRIu64 " bytes of data", (long long) st.st_blocks, data);

        ck_assert_int_eq(gmem_snapshot_open(fd, &s), 0);
        ck_assert_uint_eq(gmem_snapshot_info_size(s), SIZE);
        ck_assert_int_eq(gmem_snapshot_info_backend(s), GMEM_BACKEND_MEMFD);
        ck_assert_uint_eq(gmem_snapshot_info_page_size(s), 4096);
        ck_assert_uint_eq(gmem_snapshot_info_flags(s), 0);
        ck_assert_uint_eq(gmem_snapshot_info_data_bytes(s), data);
        /* runs are cut at 16 KiB: 1 + 2 (the run across 2 MiB) + 64 (the 1 MiB one) extents */
        ck_assert_uint_eq(gmem_snapshot_info_extent_count(s), 67);
        s = gmem_snapshot_info_free(s);

        ck_assert_int_eq(gmem_region_new_memfd(GMEM_BACKEND_MEMFD, SIZE, &back), 0);
        ck_assert_int_eq(gmem_snapshot_restore(back, fd, NULL), (int64_t) data);
        /* the holes stayed holes (before anything reads them: a read of a shmem hole allocates) */
        ck_assert_int_eq(gmem_region_resident(back, 0, SIZE, &resident), 0);
        ck_assert_uint_le(resident, data + 2 * MiB_); /* THP may round up */
        ck_assert_uint_lt(resident, SIZE);
        expect_content(back, want);
        close(fd);
}
END_TEST

/* A snapshot restores into another backend of the same size. */
START_TEST(restore_into_other_backends) {
        _cleanup_(gmem_region_freep) struct gmem_region *r = NULL, *secret = NULL, *gmem = NULL;
        _cleanup_free_ uint8_t *want = NULL;
        uint64_t data;
        int fd, vm;

        r = sample_region(&want);
        fd = snapshot_of(r, &data);
        if (gmem_region_new_memfd(GMEM_BACKEND_SECRET, SIZE, &secret) == 0) {
                ck_assert_int_eq(gmem_snapshot_restore(secret, fd, NULL), (int64_t) data);
                expect_content(secret, want);
        } else
                fprintf(stderr, "KERNEL restore_into_other_backends: no memfd_secret here (%s)\n", gmem_last_error());
        if (gmem_test_have_kvm() && (vm = gmem_test_new_vm()) >= 0) {
                if (gmem_region_new_guest_memfd(vm, SIZE, GMEM_GUEST_MEMFD_FLAG_MMAP | GMEM_GUEST_MEMFD_FLAG_INIT_SHARED,
                                                &gmem) == 0) {
                        ck_assert_int_eq(gmem_snapshot_restore(gmem, fd, NULL), (int64_t) data);
                        expect_content(gmem, want);
                        /* and a snapshot of the guest_memfd says so */
                        int fd2 = snapshot_of(gmem, &data);
                        struct gmem_snapshot_info *s = NULL;
                        ck_assert_int_eq(gmem_snapshot_open(fd2, &s), 0);
                        ck_assert_int_eq(gmem_snapshot_info_backend(s), GMEM_BACKEND_GUEST_MEMFD);
                        ck_assert_uint_eq(gmem_snapshot_info_flags(s), gmem_region_flags(gmem));
                        gmem_snapshot_info_free(s);
                        close(fd2);
                } else
                        fprintf(stderr, "KERNEL restore_into_other_backends: no shared guest_memfd here (%s)\n",
                                gmem_last_error());
                close(vm);
        }
        close(fd);
}
END_TEST

static void flip(int fd, off_t at) {
        uint8_t b;
        ck_assert_int_eq(pread(fd, &b, 1, at), 1);
        b ^= 0x40;
        ck_assert_int_eq(pwrite(fd, &b, 1, at), 1);
}

/* A copy of the snapshot in src, for one damage. */
static int copy_of(int src) {
        int fd = gmem_test_temp_file();
        struct stat st;
        off_t off = 0;

        ck_assert_int_eq(fstat(src, &st), 0);
        ck_assert_int_eq(ftruncate(fd, st.st_size), 0);
        while (off < st.st_size) {
                uint8_t buf[65536];
                off_t data = lseek(src, off, SEEK_DATA), hole;
                if (data < 0)
                        break;
                hole = lseek(src, data, SEEK_HOLE);
                for (off = data; off < hole;) {
                        ssize_t n = pread(src, buf, (size_t) MIN((off_t) sizeof(buf), hole - off), off);
                        ck_assert_int_gt(n, 0);
                        ck_assert_int_eq(pwrite(fd, buf, (size_t) n, off), n);
                        off += n;
                }
        }
        return fd;
}

/* Each way a restore lands: through write() into a fresh memfd, through the mapping (populated
 * window by window, read straight into it), and into memory faulted already (a pooled region:
 * copied and checked in one pass with streamed stores); each gives the content, each refuses a
 * damaged extent. */
START_TEST(each_restore_path) {
        _cleanup_(gmem_region_freep) struct gmem_region *r = NULL;
        _cleanup_free_ uint8_t *want = NULL;
        struct gmem_populate_opts via_mapping = GMEM_POPULATE_OPTS_INIT;
        uint64_t data;
        int fd, bad;

        via_mapping.flags = GMEM_POPULATE_VIA_MAPPING;
        r = sample_region(&want);
        fd = snapshot_of(r, &data);
        bad = copy_of(fd);
        flip(bad, 4096 + 5 * MiB_ + 3 * 16384 + 77);
        for (int path = 0; path < 3; path++) {
                _cleanup_(gmem_region_freep) struct gmem_region *back = NULL, *back2 = NULL;
                const struct gmem_populate_opts *o = path == 1 ? &via_mapping : NULL;

                ck_assert_int_eq(gmem_region_new_memfd(GMEM_BACKEND_MEMFD, SIZE, &back), 0);
                ck_assert_int_eq(gmem_region_new_memfd(GMEM_BACKEND_MEMFD, SIZE, &back2), 0);
                if (path == 2) {
                        ck_assert_int_eq(gmem_prefault(back, 0, SIZE, NULL), 0);
                        ck_assert_int_eq(gmem_prefault(back2, 0, SIZE, NULL), 0);
                }
                ck_assert_msg(gmem_snapshot_restore(back, fd, o) == (int64_t) data, "path %d: %s", path,
                              gmem_last_error());
                expect_content(back, want);
                EXPECT_FAIL(gmem_snapshot_restore(back2, bad, o), EBADMSG, "does not match its checksum");
        }
        close(bad);
        close(fd);
}
END_TEST

START_TEST(empty_region_and_old_file_content) {
        _cleanup_(gmem_region_freep) struct gmem_region *r = NULL, *back = NULL;
        _cleanup_free_ uint8_t *junk = malloc(SIZE + 2 * MiB_);
        struct gmem_snapshot_info *s = NULL;
        int fd = gmem_test_temp_file();
        void *addr;

        /* a file full of other bytes: none of them may show through the snapshot's holes */
        ck_assert_ptr_nonnull(junk);
        memset(junk, 0xee, SIZE + 2 * MiB_);
        ck_assert_int_eq(pwrite(fd, junk, SIZE + 2 * MiB_, 0), (ssize_t) (SIZE + 2 * MiB_));
        ck_assert_int_eq(gmem_region_new_memfd(GMEM_BACKEND_MEMFD, SIZE, &r), 0);
        ck_assert_int_eq(gmem_snapshot_write(r, fd, NULL), 0);
        ck_assert_int_eq(gmem_snapshot_open(fd, &s), 0);
        ck_assert_uint_eq(gmem_snapshot_info_extent_count(s), 0);
        ck_assert_uint_eq(gmem_snapshot_info_data_bytes(s), 0);
        s = gmem_snapshot_info_free(s);
        ck_assert_int_eq(gmem_region_new_memfd(GMEM_BACKEND_MEMFD, SIZE, &back), 0);
        ck_assert_int_eq(gmem_snapshot_restore(back, fd, NULL), 0);
        ck_assert_int_eq(gmem_region_map(back, &addr), 0);
        for (uint64_t i = 0; i < SIZE; i += 4096)
                ck_assert_int_eq(((uint8_t *) addr)[i], 0);
        close(fd);
}
END_TEST

START_TEST(damaged_snapshots_refused) {
        _cleanup_(gmem_region_freep) struct gmem_region *r = NULL, *back = NULL, *small = NULL;
        _cleanup_free_ uint8_t *want = NULL;
        struct gmem_snapshot_info *s = SENTINEL_PTR;
        uint64_t data;
        struct stat st;
        int fd, bad;

        r = sample_region(&want);
        fd = snapshot_of(r, &data);
        ck_assert_int_eq(fstat(fd, &st), 0);
        ck_assert_int_eq(gmem_region_new_memfd(GMEM_BACKEND_MEMFD, SIZE, &back), 0);

        bad = copy_of(fd); /* the copy is good */
        ck_assert_int_eq(gmem_snapshot_restore(back, bad, NULL), (int64_t) data);
        close(bad);

        bad = copy_of(fd); /* a byte of data: found as it lands */
        flip(bad, 4096 + 5 * MiB_ + 12345);
        ck_assert_int_eq(gmem_snapshot_open(bad, &s), 0); /* the header and table are fine */
        s = gmem_snapshot_info_free(s);
        s = SENTINEL_PTR;
        EXPECT_FAIL(gmem_snapshot_restore(back, bad, NULL), EBADMSG, "does not match its checksum");
        close(bad);

        bad = copy_of(fd); /* the header */
        flip(bad, 20);
        EXPECT_FAIL(gmem_snapshot_open(bad, &s), EBADMSG, "header's checksum");
        EXPECT_FAIL(gmem_snapshot_restore(back, bad, NULL), EBADMSG, "header's checksum");
        close(bad);

        bad = copy_of(fd); /* the extent table, at the end */
        flip(bad, st.st_size - 10);
        EXPECT_FAIL(gmem_snapshot_open(bad, &s), EBADMSG, "extent table's checksum");
        close(bad);

        bad = copy_of(fd); /* cut short by a byte */
        ck_assert_int_eq(ftruncate(bad, st.st_size - 1), 0);
        EXPECT_FAIL(gmem_snapshot_open(bad, &s), EBADMSG, "truncated");
        EXPECT_FAIL(gmem_snapshot_restore(back, bad, NULL), EBADMSG, "truncated");
        ck_assert_int_eq(ftruncate(bad, 100), 0);
        EXPECT_FAIL(gmem_snapshot_open(bad, &s), EBADMSG, "shorter than a snapshot header");
        close(bad);

        bad = gmem_test_random_file(64 * 1024, 5, NULL); /* not a snapshot at all */
        EXPECT_FAIL(gmem_snapshot_open(bad, &s), EBADMSG, "not a gmem snapshot");
        close(bad);
        ck_assert_ptr_eq(s, SENTINEL_PTR);

        /* a region of another size */
        ck_assert_int_eq(gmem_region_new_memfd(GMEM_BACKEND_MEMFD, SIZE / 2, &small), 0);
        EXPECT_FAIL(gmem_snapshot_restore(small, fd, NULL), EINVAL, "the snapshot is of");
        close(fd);
}
END_TEST

/* A snapshot written by hand: header and table sealed with their checksums, as an attacker (or a
 * bug elsewhere) would, so that only the validator stands between them and a restore. */
static int forged(const struct snap_extent *e, unsigned n, uint64_t data_bytes) {
        uint8_t block[SNAP_HEADER_SIZE] = { 0 };
        struct snap_header h = { .magic = SNAP_MAGIC, .version = SNAP_VERSION, .region_size = SIZE, .page_size = 4096,
                                 .backend = GMEM_BACKEND_MEMFD, .data_offset = 4096, .table_offset = 4096 + SIZE,
                                 .n_extents = n, .data_bytes = data_bytes };
        int fd = gmem_test_temp_file();

        h.file_size = h.table_offset + n * sizeof(*e);
        h.table_crc = gmem_crc32c(0, e, n * sizeof(*e));
        memcpy(block, &h, sizeof(h));
        h.header_crc = gmem_crc32c(0, block, sizeof(block));
        memcpy(block, &h, sizeof(h));
        ck_assert_int_eq(ftruncate(fd, (off_t) h.file_size), 0);
        ck_assert_int_eq(pwrite(fd, block, sizeof(block), 0), (ssize_t) sizeof(block));
        ck_assert_int_eq(pwrite(fd, e, n * sizeof(*e), (off_t) h.table_offset), (ssize_t) (n * sizeof(*e)));
        return fd;
}

/* Extents past the region, out of order or overlapping — also where an unsigned sum wraps at 2^64
 * and would reset an ordering check — are refused by every reader (EBADMSG, docs/snapshot.md). */
START_TEST(forged_extent_tables_refused) {
        _cleanup_(gmem_region_freep) struct gmem_region *r = NULL;
        struct gmem_snapshot_info *info = SENTINEL_PTR;
        struct gmem_page_server *ps = SENTINEL_PTR;
        const uint64_t top = UINT64_MAX - 4095; /* the last page of the address space: + 4096 wraps to 0 */
        static const struct {
                struct snap_extent e[2];
                unsigned n;
                uint64_t data;
                const char *why;
        } cases[] = {
                { { { SIZE, 4096, 0, 0 } }, 1, 4096, "past the region" },
                { { { SIZE + 4096, 4096, 0, 0 } }, 1, 4096, "past the region" },
                { { { top, 4096, 0, 0 }, { 0, 4096, 0, 0 } }, 2, 8192, "past the region" },
                { { { 8192, 4096, 0, 0 }, { 4096, 4096, 0, 0 } }, 2, 8192, "out of order" },
                { { { 0, 8192, 0, 0 }, { 4096, 4096, 0, 0 } }, 2, 12288, "out of order" },
                { { { SIZE - 4096, 8192, 0, 0 } }, 1, 8192, "past the region" },
                { { { 0, 4096, 0, 7 } }, 1, 4096, "reserved" },
                { { { 2 * MiB_ - 4096, 8192, 0, 0 } }, 1, 8192, "2 MiB boundary" },
                { { { 0, 4096, 0, 0 } }, 1, 8192, "do not add up" },
        };
        int uffd = memfd_create("not-a-uffd", MFD_CLOEXEC);

        ck_assert_int_eq(gmem_region_new_memfd(GMEM_BACKEND_MEMFD, SIZE, &r), 0);
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                int fd = forged(cases[i].e, cases[i].n, cases[i].data);
                EXPECT_FAIL(gmem_snapshot_open(fd, &info), EBADMSG, cases[i].why);
                EXPECT_FAIL(gmem_snapshot_restore(r, fd, NULL), EBADMSG, cases[i].why);
                EXPECT_FAIL(gmem_page_server_new(uffd, 1ull << 40, fd, NULL, &ps), EBADMSG, cases[i].why);
                close(fd);
        }
        ck_assert_ptr_eq(info, SENTINEL_PTR);
        ck_assert_ptr_eq(ps, SENTINEL_PTR);
        /* and a header whose sizes would wrap */
        {
                struct snap_extent none[1] = { { 0 } };
                int fd = forged(none, 0, UINT64_MAX);
                EXPECT_FAIL(gmem_snapshot_open(fd, &info), EBADMSG, "more data than the region");
                close(fd);
        }
        close(uffd);
}
END_TEST

START_TEST(bad_input) {
        _cleanup_(gmem_region_freep) struct gmem_region *r = NULL;
        struct gmem_snapshot_info *s = SENTINEL_PTR;
        int fd = gmem_test_temp_file(), ro, app, pipefd[2];
        char path[64];

        ck_assert_int_eq(gmem_region_new_memfd(GMEM_BACKEND_MEMFD, SIZE, &r), 0);
        EXPECT_FAIL(gmem_snapshot_write(NULL, fd, NULL), EINVAL, "NULL region");
        EXPECT_FAIL(gmem_snapshot_write(r, -1, NULL), EBADF, "not a regular file");
        EXPECT_FAIL(gmem_snapshot_restore(NULL, fd, NULL), EINVAL, "NULL region");
        EXPECT_FAIL(gmem_snapshot_open(-1, &s), EINVAL, "invalid fd");
        EXPECT_FAIL(gmem_snapshot_open(fd, NULL), EINVAL, "NULL result");
        ck_assert_int_eq(pipe(pipefd), 0);
        EXPECT_FAIL(gmem_snapshot_write(r, pipefd[1], NULL), EINVAL, "not a regular file");
        EXPECT_FAIL(gmem_snapshot_open(pipefd[0], &s), EINVAL, "not a regular file");
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        ro = open(path, O_RDONLY | O_CLOEXEC);
        app = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
        ck_assert_int_ge(ro, 0);
        ck_assert_int_ge(app, 0);
        EXPECT_FAIL(gmem_snapshot_write(r, ro, NULL), EBADF, "open for writing");
        EXPECT_FAIL(gmem_snapshot_write(r, app, NULL), EBADF, "O_APPEND");
        EXPECT_FAIL(gmem_snapshot_write(r, fd, &(struct gmem_populate_opts) { .flags = 1u << 9 }), EINVAL, "flags");
        ck_assert_ptr_eq(s, SENTINEL_PTR);
        ck_assert_ptr_null(gmem_snapshot_info_free(NULL));
        ck_assert_uint_eq(gmem_snapshot_info_size(NULL), 0);
        ck_assert_int_eq(gmem_snapshot_info_backend(NULL), GMEM_BACKEND_INVALID);
        close(ro);
        close(app);
        close(pipefd[0]);
        close(pipefd[1]);
        close(fd);
}
END_TEST

START_TEST(hugetlb_round_trip) {
        _cleanup_(gmem_region_freep) struct gmem_region *r = NULL, *back = NULL;
        _cleanup_free_ uint8_t *d = calloc(1, 4 * MiB_);
        uint64_t data;
        void *addr;
        int fd;

        if (gmem_region_new_hugetlb(2 * MiB_, 4 * MiB_, &r) < 0)
                SKIP_TEST("no hugetlb region here: %s", gmem_last_error());
        if (gmem_region_new_hugetlb(2 * MiB_, 4 * MiB_, &back) < 0)
                SKIP_TEST("no second hugetlb region here: %s", gmem_last_error());
        gmem_test_fill(d + 3 * MiB_, 8192, 9);
        ck_assert_int_eq(gmem_populate_buf(r, 3 * MiB_, d + 3 * MiB_, 8192, NULL), 8192);
        fd = snapshot_of(r, &data);
        ck_assert_uint_eq(data, 8192); /* hugetlb: the pages that are not zero */
        ck_assert_int_eq(gmem_snapshot_restore(back, fd, NULL), 8192);
        ck_assert_int_eq(gmem_region_map(back, &addr), 0);
        ck_assert(memcmp(addr, d, 4 * MiB_) == 0);
        close(fd);
}
END_TEST

int main(void) {
        Suite *s = suite_create("snapshot");
        TCase *tc = tcase_create("snapshot");

        tcase_set_timeout(tc, 120);
        tcase_add_test(tc, round_trip_memfd);
        tcase_add_test(tc, restore_into_other_backends);
        tcase_add_test(tc, each_restore_path);
        tcase_add_test(tc, empty_region_and_old_file_content);
        tcase_add_test(tc, damaged_snapshots_refused);
        tcase_add_test(tc, forged_extent_tables_refused);
        tcase_add_test(tc, bad_input);
        tcase_add_test(tc, hugetlb_round_trip);
        suite_add_tcase(s, tc);
        return gmem_test_main(s);
}
