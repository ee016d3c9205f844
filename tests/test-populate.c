/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The data path on every backend: populate from a file and a buffer, dump, prefault, residency,
 * progress and cancellation, and sources that are short or cannot be read in parallel. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gmem-test.h"
#include "gmem/gmem.h"

#define SIZE (16u << 20)

/* A region of the given backend, or NULL after a SKIP. The VM fd (guest_memfd) is closed right
 * away: the region keeps its memory usable without it. */
static struct gmem_region *new_region(enum gmem_backend b, uint64_t size) {
        struct gmem_region *r = NULL;
        int k;

        if (b == GMEM_BACKEND_GUEST_MEMFD) {
                int vm;
                if (!gmem_test_have_kvm())
                        return NULL;
                vm = gmem_test_new_vm();
                k = gmem_region_new_guest_memfd(vm, size, GMEM_GUEST_MEMFD_FLAG_MMAP | GMEM_GUEST_MEMFD_FLAG_INIT_SHARED, &r);
                close(vm);
        } else
                k = gmem_region_new_memfd(b, size, &r);
        if (k == -ENOMEM && b == GMEM_BACKEND_HUGETLB)
                return NULL;
        ck_assert_msg(k == 0, "create %s: %s", gmem_backend_to_string(b), gmem_last_error());
        return r;
}

#define NEW_REGION_OR_SKIP(r, b, size)                                                          \
        do {                                                                                    \
                if (b == GMEM_BACKEND_GUEST_MEMFD)                                              \
                        REQUIRE_SHARED_GMEM();                                                  \
                r = new_region(b, size);                                                        \
                if (!r)                                                                         \
                        SKIP_TEST("no %s region here: %s", gmem_backend_to_string(b),           \
                                  b == GMEM_BACKEND_HUGETLB ? gmem_last_error() : "/dev/kvm is not usable"); \
        } while (0)

static void *dump_all(struct gmem_region *r, uint64_t off, uint64_t len) {
        int out = gmem_test_temp_file();
        void *b;
        ck_assert_int_ge(gmem_dump_fd(r, off, len, out, 0, NULL), 0);
        b = gmem_test_read_fd(out, 0, len);
        close(out);
        return b;
}

/* populate from a file (with src and dst offsets, several threads, small chunks), then dump */
static void round_trip_via(enum gmem_backend b, unsigned path_flags) {
        struct gmem_populate_opts opts = { .threads = 3, .chunk_size = 1 << 20, .flags = path_flags };
        uint64_t dst_off = 4096 * 3 + 100, src_off = 777, len = SIZE - dst_off - 4096;
        struct gmem_region *r;
        uint8_t *data, *back, zero[4096] = { 0 };
        int src;

        NEW_REGION_OR_SKIP(r, b, SIZE);
        src = gmem_test_random_file(len + src_off, b + 1, (void **) &data);
        ck_assert_int_eq(gmem_populate_fd(r, dst_off, src, src_off, len, &opts), (int64_t) len);

        back = dump_all(r, 0, SIZE);
        ck_assert_mem_eq(back + dst_off, data + src_off, len);
        ck_assert_mem_eq(back, zero, 4096);                  /* untouched before */
        ck_assert_mem_eq(back + SIZE - 4096, zero, 4096);    /* and after */
        free(back);

        /* populate_buf over part of it, single-threaded */
        gmem_test_fill(data, 5 * 4096, 99);
        opts = (struct gmem_populate_opts) { .flags = path_flags };
        ck_assert_int_eq(gmem_populate_buf(r, 8192, data, 5 * 4096, &opts), 5 * 4096);
        back = dump_all(r, 8192, 5 * 4096);
        ck_assert_mem_eq(back, data, 5 * 4096);
        free(back);

        free(data);
        close(src);
        gmem_region_free(r);
}

static void round_trip(enum gmem_backend b) {
        struct gmem_populate_opts via_write = { .flags = GMEM_POPULATE_VIA_WRITE };
        struct gmem_region *r;
        uint8_t byte = 1;

        /* the default path, then each path explicitly where the backend has it */
        round_trip_via(b, 0);
        round_trip_via(b, GMEM_POPULATE_VIA_MAPPING);
        NEW_REGION_OR_SKIP(r, b, SIZE);
        if (b == GMEM_BACKEND_MEMFD)
                round_trip_via(b, GMEM_POPULATE_VIA_WRITE);
        else {
                /* hugetlbfs and secretmem have no write(); nor guest_memfd without the write() series */
                ck_assert_int_eq(gmem_populate_buf(r, 0, &byte, 1, &via_write), -EOPNOTSUPP);
                ck_assert_ptr_nonnull(strstr(gmem_last_error(), "write"));
        }
        gmem_region_free(r);
}

START_TEST(round_trip_memfd) { round_trip(GMEM_BACKEND_MEMFD); }
END_TEST
START_TEST(round_trip_secret) { round_trip(GMEM_BACKEND_SECRET); }
END_TEST
START_TEST(round_trip_guest_memfd) { round_trip(GMEM_BACKEND_GUEST_MEMFD); }
END_TEST
START_TEST(round_trip_hugetlb) { round_trip(GMEM_BACKEND_HUGETLB); }
END_TEST

#define MAX_PS(ps) ((ps) > 4096 ? (ps) : 4096)

static void prefault_and_residency(enum gmem_backend b) {
        struct gmem_region *r;
        uint64_t resident = 1, ps;

        NEW_REGION_OR_SKIP(r, b, SIZE);
        ps = gmem_region_page_size(r);
        ck_assert_int_eq(gmem_region_resident(r, 0, SIZE, &resident), 0);
        ck_assert_uint_eq(resident, 0);
        /* secretmem refuses MADV_POPULATE_WRITE: this exercises the touch-each-page fallback */
        ck_assert_int_eq(gmem_prefault(r, 2 * MAX_PS(ps), 4 * MAX_PS(ps), NULL), 0);
        ck_assert_int_eq(gmem_region_resident(r, 0, SIZE, &resident), 0);
        ck_assert_uint_eq(resident, 4 * MAX_PS(ps));
        ck_assert_int_eq(gmem_region_resident(r, 2 * MAX_PS(ps) + 10, 100, &resident), 0);
        ck_assert_uint_eq(resident, 100);
        /* the whole region, in parallel */
        struct gmem_populate_opts opts = { .threads = 4, .chunk_size = 2 << 20 };
        ck_assert_int_eq(gmem_prefault(r, 0, SIZE, &opts), 0);
        ck_assert_int_eq(gmem_region_resident(r, 0, SIZE, &resident), 0);
        ck_assert_uint_eq(resident, SIZE);
        if (b != GMEM_BACKEND_SECRET) {
                ck_assert_int_eq(gmem_punch_hole(r, 0, SIZE / 2), 0);
                ck_assert_int_eq(gmem_region_resident(r, 0, SIZE, &resident), 0);
                ck_assert_uint_eq(resident, SIZE / 2);
        }
        gmem_region_free(r);
}
START_TEST(prefault_memfd) { prefault_and_residency(GMEM_BACKEND_MEMFD); }
END_TEST
START_TEST(prefault_secret) { prefault_and_residency(GMEM_BACKEND_SECRET); }
END_TEST
START_TEST(prefault_guest_memfd) { prefault_and_residency(GMEM_BACKEND_GUEST_MEMFD); }
END_TEST
START_TEST(prefault_hugetlb) { prefault_and_residency(GMEM_BACKEND_HUGETLB); }
END_TEST

struct progress_log {
        unsigned calls;
        uint64_t last_done, total;
        bool monotonic;
        unsigned cancel_after;
};

static int on_progress(uint64_t done, uint64_t total, void *userdata) {
        struct progress_log *p = userdata;
        if (done < p->last_done)
                p->monotonic = false;
        p->last_done = done;
        p->total = total;
        p->calls++;
        return p->cancel_after && p->calls >= p->cancel_after;
}

START_TEST(progress_reaches_total) {
        struct progress_log log = { .monotonic = true };
        struct gmem_populate_opts opts = { .threads = 2, .chunk_size = 1 << 20, .progress = on_progress, .userdata = &log };
        struct gmem_region *r = new_region(GMEM_BACKEND_MEMFD, SIZE);
        int src = gmem_test_random_file(SIZE, 5, NULL);

        ck_assert_int_eq(gmem_populate_fd(r, 0, src, 0, SIZE, &opts), SIZE);
        ck_assert_uint_ge(log.calls, 1);
        ck_assert(log.monotonic);
        ck_assert_uint_eq(log.last_done, SIZE);
        ck_assert_uint_eq(log.total, SIZE);

        /* and single-threaded: a report after each chunk */
        log = (struct progress_log) { .monotonic = true };
        opts.threads = 1;
        ck_assert_int_eq(gmem_populate_fd(r, 0, src, 0, SIZE, &opts), SIZE);
        ck_assert_uint_eq(log.calls, SIZE >> 20);
        ck_assert_uint_eq(log.last_done, SIZE);
        close(src);
        gmem_region_free(r);
}
END_TEST

START_TEST(cancel_from_progress_and_flag) {
        struct progress_log log = { .monotonic = true, .cancel_after = 2 };
        struct gmem_populate_opts opts = { .threads = 1, .chunk_size = 1 << 20, .progress = on_progress, .userdata = &log };
        struct gmem_region *r = new_region(GMEM_BACKEND_MEMFD, SIZE);
        int src = gmem_test_random_file(SIZE, 6, NULL), cancel = 1;

        ck_assert_int_eq(gmem_populate_fd(r, 0, src, 0, SIZE, &opts), -ECANCELED);
        ck_assert_uint_eq(log.calls, 2);
        ck_assert_ptr_nonnull(strstr(gmem_last_error(), "cancel"));

        /* a flag set before the start: nothing is done */
        opts = (struct gmem_populate_opts) { .threads = 2, .cancel = &cancel };
        ck_assert_int_eq(gmem_prefault(r, 0, SIZE, &opts), -ECANCELED);
        uint64_t resident = 1;
        ck_assert_int_eq(gmem_region_resident(r, 0, SIZE, &resident), 0);
        ck_assert_uint_le(resident, 2u << 20); /* only what the first populate wrote */
        close(src);
        gmem_region_free(r);
}
END_TEST

START_TEST(short_and_unseekable_sources) {
        struct gmem_region *r = new_region(GMEM_BACKEND_MEMFD, SIZE);
        int src = gmem_test_random_file(8192, 7, NULL), p[2];

        ck_assert_int_eq(gmem_populate_fd(r, 0, src, 0, 8193, NULL), -ENODATA);
        ck_assert_int_eq(gmem_populate_fd(r, 0, src, 4096, 8192, NULL), -ENODATA);
        ck_assert_int_eq(gmem_populate_fd(r, 0, src, 8192, 1, NULL), -ENODATA);
        ck_assert_int_eq(gmem_populate_fd(r, 0, src, 4096, 4096, NULL), 4096);
        ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
        ck_assert_int_eq(gmem_populate_fd(r, 0, p[0], 0, 4096, NULL), -ESPIPE);
        ck_assert_ptr_nonnull(strstr(gmem_last_error(), "seekable"));
        ck_assert_int_eq(gmem_dump_fd(r, 0, 4096, p[1], 0, NULL), -ESPIPE);
        close(p[0]);
        close(p[1]);
        close(src);
        gmem_region_free(r);
}
END_TEST

START_TEST(source_is_another_region) {
        /* snapshot restore from memory: a memfd region is a valid populate source */
        struct gmem_region *a = new_region(GMEM_BACKEND_MEMFD, SIZE), *b = new_region(GMEM_BACKEND_SECRET, SIZE);
        uint8_t *data = malloc(SIZE), *back;

        gmem_test_fill(data, SIZE, 8);
        ck_assert_int_eq(gmem_populate_buf(a, 0, data, SIZE, NULL), SIZE);
        ck_assert_int_eq(gmem_populate_fd(b, 0, gmem_region_fd(a), 0, SIZE, NULL), SIZE);
        back = dump_all(b, 0, SIZE);
        ck_assert_mem_eq(back, data, SIZE);
        free(back);
        free(data);
        gmem_region_free(a);
        gmem_region_free(b);
}
END_TEST

START_TEST(dump_is_sparse_and_overwrites_old_content) {
        struct gmem_region *r = new_region(GMEM_BACKEND_MEMFD, SIZE);
        uint8_t page[4096], *back, zero[4096] = { 0 };
        int out = gmem_test_random_file(SIZE, 9, NULL); /* old content everywhere */
        struct stat st;

        gmem_test_fill(page, sizeof(page), 10);
        ck_assert_int_eq(gmem_populate_buf(r, 4096 * 10, page, sizeof(page), NULL), 4096);
        ck_assert_int_eq(gmem_dump_fd(r, 0, SIZE, out, 0, NULL), 4096); /* only the backed page is written */
        back = gmem_test_read_fd(out, 0, SIZE);
        ck_assert_mem_eq(back + 4096 * 10, page, 4096);
        ck_assert_mem_eq(back, zero, 4096);
        ck_assert_mem_eq(back + SIZE - 4096, zero, 4096);
        free(back);
        ck_assert_int_eq(fstat(out, &st), 0);
        ck_assert_int_eq(st.st_size, SIZE);
        ck_assert_int_le(st.st_blocks * 512, 64 * 4096); /* holes, not written zeroes */
        close(out);

        /* into a fresh file at an offset: the file gets its full length */
        out = gmem_test_temp_file();
        ck_assert_int_eq(gmem_dump_fd(r, 0, SIZE, out, 4096, NULL), 4096);
        ck_assert_int_eq(fstat(out, &st), 0);
        ck_assert_int_eq(st.st_size, SIZE + 4096);
        close(out);
        gmem_region_free(r);
}
END_TEST

START_TEST(many_threads_small_chunks) {
        /* more threads than chunks, odd chunk size, unaligned start */
        struct gmem_populate_opts opts = { .threads = 64, .chunk_size = 12345 };
        struct gmem_region *r = new_region(GMEM_BACKEND_MEMFD, 1 << 20);
        uint8_t *data, *back;
        int src = gmem_test_random_file((1 << 20) - 3, 11, (void **) &data);

        ck_assert_int_eq(gmem_populate_fd(r, 3, src, 0, (1 << 20) - 3, &opts), (1 << 20) - 3);
        back = dump_all(r, 3, (1 << 20) - 3);
        ck_assert_mem_eq(back, data, (1 << 20) - 3);
        free(back);
        free(data);
        close(src);
        gmem_region_free(r);
}
END_TEST

static void seen_by_a_fresh_holder(enum gmem_backend b) {
        /* What a restarted gmemd sees: a region populated by someone else, adopted from a dup of its
         * fd and mapped afresh. Its data and residency must show, whatever the backend (mincore on
         * hugetlb sees only this process's page tables). */
        struct gmem_region *r, *other = NULL;
        uint64_t size = 8u << 20, resident = 0;
        uint8_t *data = malloc(4u << 20), *back;

        NEW_REGION_OR_SKIP(r, b, size);
        gmem_test_fill(data, 4u << 20, 21);
        ck_assert_int_eq(gmem_populate_buf(r, 2u << 20, data, 4u << 20, NULL), 4u << 20);
        ck_assert_int_eq(gmem_region_adopt(dup(gmem_region_fd(r)), &other), 0);
        gmem_region_free(r);

        ck_assert_int_eq(gmem_region_resident(other, 0, size, &resident), 0);
        ck_assert_uint_eq(resident, 4u << 20);
        back = dump_all(other, 0, size);
        ck_assert_mem_eq(back + (2u << 20), data, 4u << 20);
        /* and zeroes around it (one comparison, not one assertion per byte: under TCG those took
         * 48 s a test) */
        {
                uint8_t *zero = calloc(1, 2u << 20);
                ck_assert_mem_eq(back, zero, 2u << 20);
                ck_assert_mem_eq(back + (6u << 20), zero, 2u << 20);
                free(zero);
        }
        free(back);
        free(data);
        gmem_region_free(other);
}

START_TEST(fresh_holder_memfd) { seen_by_a_fresh_holder(GMEM_BACKEND_MEMFD); }
END_TEST
START_TEST(fresh_holder_hugetlb) { seen_by_a_fresh_holder(GMEM_BACKEND_HUGETLB); }
END_TEST
START_TEST(fresh_holder_guest_memfd) { seen_by_a_fresh_holder(GMEM_BACKEND_GUEST_MEMFD); }
END_TEST

int main(void) {
        Suite *s = suite_create("populate");
        TCase *tc = tcase_create("data path");

        tcase_set_timeout(tc, 120);
        tcase_add_test(tc, round_trip_memfd);
        tcase_add_test(tc, round_trip_secret);
        tcase_add_test(tc, round_trip_guest_memfd);
        tcase_add_test(tc, round_trip_hugetlb);
        tcase_add_test(tc, prefault_memfd);
        tcase_add_test(tc, prefault_secret);
        tcase_add_test(tc, prefault_guest_memfd);
        tcase_add_test(tc, prefault_hugetlb);
        tcase_add_test(tc, progress_reaches_total);
        tcase_add_test(tc, cancel_from_progress_and_flag);
        tcase_add_test(tc, short_and_unseekable_sources);
        tcase_add_test(tc, source_is_another_region);
        tcase_add_test(tc, dump_is_sparse_and_overwrites_old_content);
        tcase_add_test(tc, many_threads_small_chunks);
        tcase_add_test(tc, fresh_holder_memfd);
        tcase_add_test(tc, fresh_holder_hugetlb);
        tcase_add_test(tc, fresh_holder_guest_memfd);
        suite_add_tcase(s, tc);
        return gmem_test_main(s);
}
