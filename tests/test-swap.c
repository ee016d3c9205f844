/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Guest memory in swap is guest memory: a memfd region written under a memory cgroup too small to
 * hold it (its pages pushed out to a zram swap device of the test's own, tests/pressure.c) must be
 * dumped, snapshotted, measured and restored byte for byte. mincore() calls a swapped page absent;
 * taken for a hole, it would come back as zeroes (12,372 of 16,384 pages lost, before the one
 * residency function asked the file). SKIP where no swap device or memory cgroup can be made
 * (not root, no zram, no memory controller).
 */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gmem-test.h"
#include "gmem/gmem.h"
#include "pressure.h"

#define SIZE (64u << 20)
#define LIMIT (32u << 20)
#define PAGES (SIZE / 4096)

static struct gmem_pressure pressure;
static char why[256];
static int pressure_state; /* 0 not tried, 1 on, -1 not here */

static void pressure_setup(void) {
        pressure_state = gmem_pressure_begin(&pressure, LIMIT, 512u << 20, why, sizeof(why)) == 0 ? 1 : -1;
}

static void pressure_teardown(void) {
        gmem_pressure_end(&pressure);
}

/* Page i's content: nothing (a hole) every 5th page, zeroes written every 7th, else a pattern that
 * names the page (compressible: zram keeps it small). */
static bool page_is_hole(uint64_t i) {
        return i % 5 == 3;
}

static void page_fill(uint8_t *p, uint64_t i) {
        if (i % 7 == 0) {
                memset(p, 0, 4096);
                return;
        }
        for (unsigned w = 0; w < 4096 / 8; w++)
                ((uint64_t *) p)[w] = (i << 20) ^ (w % 4) ^ 0x5a5a000000000000ull;
}

static void check_page(const uint8_t *got, uint64_t i, const char *what) {
        uint8_t want[4096];
        if (page_is_hole(i))
                memset(want, 0, sizeof(want));
        else
                page_fill(want, i);
        ck_assert_msg(memcmp(got, want, 4096) == 0, "%s: page %" PRIu64 " (%s) differs", what, i,
                      page_is_hole(i) ? "a hole" : i % 7 == 0 ? "zeroes written" : "data");
}

static void check_file(int fd, uint64_t base, const char *what) {
        uint8_t *buf = malloc(1 << 20);
        ck_assert_ptr_nonnull(buf);
        for (uint64_t off = 0; off < SIZE; off += 1 << 20) {
                ck_assert_int_eq(pread(fd, buf, 1 << 20, (off_t) (base + off)), 1 << 20);
                for (uint64_t p = 0; p < (1 << 20) / 4096; p++)
                        check_page(buf + p * 4096, off / 4096 + p, what);
        }
        free(buf);
}

/* A region of SIZE written under the cgroup, most of it in swap by the end. */
static struct gmem_region *swapped_region(uint64_t *ret_data_pages) {
        struct gmem_region *r = NULL;
        unsigned char *vec = malloc(PAGES);
        uint64_t data = 0, in_memory = 0;
        uint8_t *p;

        ck_assert_int_eq(gmem_pressure_enter(&pressure, 0), 0);
        ck_assert_int_eq(gmem_region_new_memfd(GMEM_BACKEND_MEMFD, SIZE, &r), 0);
        ck_assert_int_eq(gmem_region_map(r, (void **) &p), 0);
        for (uint64_t i = 0; i < PAGES; i++)
                if (!page_is_hole(i)) {
                        page_fill(p + i * 4096, i);
                        data++;
                }
        /* the pages stay the cgroup's; the files the test writes next are not */
        ck_assert_int_eq(gmem_pressure_leave(&pressure, 0), 0);
        ck_assert_int_eq(mincore(p, SIZE, vec), 0);
        for (uint64_t i = 0; i < PAGES; i++)
                in_memory += vec[i] & 1;
        free(vec);
        printf("KERNEL swap: %" PRIu64 " of %" PRIu64 " data pages in memory, %" PRId64 " bytes in swap\n", in_memory, data,
               gmem_pressure_swapped(&pressure));
        fflush(stdout);
        ck_assert_msg(in_memory < data - data / 4, "the kernel kept %" PRIu64 " of %" PRIu64 " pages in memory under a %u MiB limit: "
                      "the test would prove nothing", in_memory, data, LIMIT >> 20);
        *ret_data_pages = data;
        return r;
}

#define REQUIRE_PRESSURE() do { if (pressure_state != 1) SKIP_TEST("%s", why); } while (0)

START_TEST(dump_keeps_swapped_pages) {
        struct gmem_region *r;
        uint64_t data;
        int fd = gmem_test_temp_file();

        REQUIRE_PRESSURE();
        r = swapped_region(&data);
        ck_assert_int_eq(gmem_dump_fd(r, 0, SIZE, fd, 0, NULL), (int64_t) data * 4096);
        check_file(fd, 0, "dump");
        close(fd);
        gmem_region_free(r);
}
END_TEST

START_TEST(snapshot_keeps_swapped_pages) {
        struct gmem_region *r, *back = NULL;
        uint64_t data, resident = 0;
        int fd = gmem_test_temp_file(), rfd;

        REQUIRE_PRESSURE();
        r = swapped_region(&data);
        ck_assert_int_eq(gmem_snapshot_write(r, fd, NULL), (int64_t) data * 4096);
        ck_assert_int_eq(gmem_region_new_memfd(GMEM_BACKEND_MEMFD, SIZE, &back), 0);
        ck_assert_int_eq(gmem_snapshot_restore(back, fd, NULL), (int64_t) data * 4096);
        rfd = gmem_region_fd(back);
        check_file(rfd, 0, "restored from the snapshot");
        /* residency counts what is in swap: the whole file, and a part walked page by page */
        ck_assert_int_eq(gmem_region_resident(r, 0, SIZE, &resident), 0);
        ck_assert_uint_eq(resident, data * 4096);
        ck_assert_int_eq(gmem_region_resident(r, 4096, SIZE - 8192, &resident), 0);
        ck_assert_uint_eq(resident, (data - !page_is_hole(0) - !page_is_hole(PAGES - 1)) * 4096);
        close(fd);
        gmem_region_free(back);
        gmem_region_free(r);
}
END_TEST

int main(void) {
        Suite *s = suite_create("swap");
        TCase *tc = tcase_create("swap");

        tcase_add_unchecked_fixture(tc, pressure_setup, pressure_teardown);
        tcase_set_timeout(tc, 300);
        tcase_add_test(tc, dump_keeps_swapped_pages);
        tcase_add_test(tc, snapshot_keeps_swapped_pages);
        suite_add_tcase(s, tc);
        return gmem_test_main(s);
}
