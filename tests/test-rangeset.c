/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Unit tests for the range set behind a region's private-range bookkeeping (libgmem/rangeset.h):
 * half-open byte ranges [start, end), kept sorted, disjoint and never adjacent.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "gmem-test.h"
#include "rangeset.h"

/* The invariant every operation must keep: sorted, non-empty, disjoint and not touching. */
static void check_invariant(const struct rangeset *s) {
        if (s->n > 0)
                ck_assert_ptr_nonnull(s->ranges);
        for (size_t i = 0; i < s->n; i++) {
                ck_assert_msg(s->ranges[i].start < s->ranges[i].end, "range %zu is empty or inverted: [%" PRIu64
                              ", %" PRIu64 ")", i, s->ranges[i].start, s->ranges[i].end);
                if (i > 0)
                        ck_assert_msg(s->ranges[i - 1].end < s->ranges[i].start,
                                      "ranges %zu and %zu overlap or touch: [%" PRIu64 ", %" PRIu64 ") [%" PRIu64
                                      ", %" PRIu64 ")", i - 1, i, s->ranges[i - 1].start, s->ranges[i - 1].end,
                                      s->ranges[i].start, s->ranges[i].end);
        }
}

/* Assert the set is exactly the given list of (start, end) pairs. */
static void expect_ranges(const struct rangeset *s, size_t n, const uint64_t *pairs) {
        check_invariant(s);
        ck_assert_uint_eq(s->n, n);
        for (size_t i = 0; i < n; i++) {
                ck_assert_uint_eq(s->ranges[i].start, pairs[2 * i]);
                ck_assert_uint_eq(s->ranges[i].end, pairs[2 * i + 1]);
        }
}
#define EXPECT(s, ...) do { \
                const uint64_t _p[] = { __VA_ARGS__ }; \
                expect_ranges((s), sizeof(_p) / sizeof(_p[0]) / 2, _p); \
        } while (0)
#define EXPECT_EMPTY(s) do { check_invariant(s); ck_assert_uint_eq((s)->n, 0); } while (0)

START_TEST(add_single_and_disjoint) {
        struct rangeset s = { 0 };

        ck_assert_int_eq(rangeset_add(&s, 10, 20), 0);
        EXPECT(&s, 10, 20);
        ck_assert_int_eq(rangeset_add(&s, 40, 50), 0);
        EXPECT(&s, 10, 20, 40, 50);
        /* inserted before everything, and between */
        ck_assert_int_eq(rangeset_add(&s, 0, 5), 0);
        ck_assert_int_eq(rangeset_add(&s, 25, 30), 0);
        EXPECT(&s, 0, 5, 10, 20, 25, 30, 40, 50);
        ck_assert_uint_eq(rangeset_bytes(&s), 5 + 10 + 5 + 10);
        rangeset_clear(&s);
        EXPECT_EMPTY(&s);
        ck_assert_ptr_null(s.ranges);
}
END_TEST

START_TEST(add_merges_overlapping) {
        struct rangeset s = { 0 };

        ck_assert_int_eq(rangeset_add(&s, 10, 20), 0);
        ck_assert_int_eq(rangeset_add(&s, 15, 25), 0);          /* overlaps the end */
        EXPECT(&s, 10, 25);
        ck_assert_int_eq(rangeset_add(&s, 5, 12), 0);           /* overlaps the start */
        EXPECT(&s, 5, 25);
        ck_assert_int_eq(rangeset_add(&s, 7, 9), 0);            /* wholly inside: no change */
        EXPECT(&s, 5, 25);
        ck_assert_int_eq(rangeset_add(&s, 5, 25), 0);           /* identical */
        EXPECT(&s, 5, 25);
        ck_assert_int_eq(rangeset_add(&s, 40, 50), 0);
        ck_assert_int_eq(rangeset_add(&s, 60, 70), 0);
        ck_assert_int_eq(rangeset_add(&s, 80, 90), 0);
        EXPECT(&s, 5, 25, 40, 50, 60, 70, 80, 90);
        ck_assert_int_eq(rangeset_add(&s, 45, 85), 0);          /* swallows one, bridges three */
        EXPECT(&s, 5, 25, 40, 90);
        ck_assert_int_eq(rangeset_add(&s, 0, 100), 0);          /* covers everything */
        EXPECT(&s, 0, 100);
        ck_assert_uint_eq(rangeset_bytes(&s), 100);
        rangeset_clear(&s);
}
END_TEST

START_TEST(add_merges_adjacent) {
        struct rangeset s = { 0 };

        ck_assert_int_eq(rangeset_add(&s, 10, 20), 0);
        ck_assert_int_eq(rangeset_add(&s, 20, 30), 0);          /* touches the end */
        EXPECT(&s, 10, 30);
        ck_assert_int_eq(rangeset_add(&s, 0, 10), 0);           /* touches the start */
        EXPECT(&s, 0, 30);
        ck_assert_int_eq(rangeset_add(&s, 40, 50), 0);
        EXPECT(&s, 0, 30, 40, 50);
        ck_assert_int_eq(rangeset_add(&s, 30, 40), 0);          /* fills the gap exactly */
        EXPECT(&s, 0, 50);
        ck_assert_int_eq(rangeset_add(&s, 51, 60), 0);          /* one byte apart: stays separate */
        EXPECT(&s, 0, 50, 51, 60);
        ck_assert_uint_eq(rangeset_bytes(&s), 59);
        rangeset_clear(&s);
}
END_TEST

START_TEST(remove_splits_and_trims) {
        struct rangeset s = { 0 };

        ck_assert_int_eq(rangeset_add(&s, 0, 100), 0);
        ck_assert_int_eq(rangeset_remove(&s, 40, 60), 0);       /* from the middle: splits */
        EXPECT(&s, 0, 40, 60, 100);
        ck_assert_int_eq(rangeset_remove(&s, 0, 10), 0);        /* trims the start */
        EXPECT(&s, 10, 40, 60, 100);
        ck_assert_int_eq(rangeset_remove(&s, 90, 100), 0);      /* trims the end */
        EXPECT(&s, 10, 40, 60, 90);
        ck_assert_int_eq(rangeset_remove(&s, 30, 70), 0);       /* across a gap: trims both */
        EXPECT(&s, 10, 30, 70, 90);
        ck_assert_int_eq(rangeset_remove(&s, 30, 70), 0);       /* exactly the gap: no change */
        EXPECT(&s, 10, 30, 70, 90);
        ck_assert_int_eq(rangeset_remove(&s, 200, 300), 0);     /* nothing there */
        EXPECT(&s, 10, 30, 70, 90);
        ck_assert_int_eq(rangeset_remove(&s, 70, 90), 0);       /* exactly one range */
        EXPECT(&s, 10, 30);
        ck_assert_uint_eq(rangeset_bytes(&s), 20);
        rangeset_clear(&s);
}
END_TEST

START_TEST(remove_everything) {
        struct rangeset s = { 0 };

        /* removing from an empty set is a no-op */
        ck_assert_int_eq(rangeset_remove(&s, 0, UINT64_MAX), 0);
        EXPECT_EMPTY(&s);

        ck_assert_int_eq(rangeset_add(&s, 10, 20), 0);
        ck_assert_int_eq(rangeset_add(&s, 30, 40), 0);
        ck_assert_int_eq(rangeset_add(&s, 50, 60), 0);
        ck_assert_int_eq(rangeset_remove(&s, 5, 65), 0);
        EXPECT_EMPTY(&s);
        ck_assert_ptr_null(s.ranges);
        ck_assert_uint_eq(rangeset_bytes(&s), 0);
        ck_assert(!rangeset_intersects(&s, 0, UINT64_MAX));

        /* and one range removed exactly */
        ck_assert_int_eq(rangeset_add(&s, 10, 20), 0);
        ck_assert_int_eq(rangeset_remove(&s, 10, 20), 0);
        EXPECT_EMPTY(&s);
        ck_assert_ptr_null(s.ranges);

        /* the set is reusable after being emptied */
        ck_assert_int_eq(rangeset_add(&s, 1, 2), 0);
        EXPECT(&s, 1, 2);
        rangeset_clear(&s);
        rangeset_clear(&s); /* twice is fine */
        EXPECT_EMPTY(&s);
}
END_TEST

START_TEST(intersects_half_open) {
        struct rangeset s = { 0 };

        ck_assert(!rangeset_intersects(&s, 0, 1));
        ck_assert_int_eq(rangeset_add(&s, 10, 20), 0);
        ck_assert_int_eq(rangeset_add(&s, 30, 40), 0);

        ck_assert(!rangeset_intersects(&s, 0, 10));   /* ends where a range starts */
        ck_assert(rangeset_intersects(&s, 0, 11));
        ck_assert(rangeset_intersects(&s, 19, 20));   /* last byte */
        ck_assert(!rangeset_intersects(&s, 20, 30));  /* exactly the gap */
        ck_assert(rangeset_intersects(&s, 20, 31));
        ck_assert(rangeset_intersects(&s, 19, 31));
        ck_assert(rangeset_intersects(&s, 15, 16));   /* inside */
        ck_assert(rangeset_intersects(&s, 0, 100));   /* covering both */
        ck_assert(!rangeset_intersects(&s, 40, 41));  /* just after the end */
        ck_assert(rangeset_intersects(&s, 39, 40));
        ck_assert(!rangeset_intersects(&s, 41, UINT64_MAX));
        /* empty and inverted queries never intersect */
        ck_assert(!rangeset_intersects(&s, 15, 15));
        ck_assert(!rangeset_intersects(&s, 16, 15));
        rangeset_clear(&s);
}
END_TEST

START_TEST(empty_and_invalid_ranges) {
        struct rangeset s = { 0 };

        /* empty ranges are accepted and change nothing */
        ck_assert_int_eq(rangeset_add(&s, 5, 5), 0);
        EXPECT_EMPTY(&s);
        ck_assert_ptr_null(s.ranges);
        ck_assert_int_eq(rangeset_add(&s, 10, 20), 0);
        ck_assert_int_eq(rangeset_add(&s, 25, 25), 0);
        ck_assert_int_eq(rangeset_remove(&s, 15, 15), 0);
        EXPECT(&s, 10, 20);

        /* start > end is refused and changes nothing */
        ck_assert_int_eq(rangeset_add(&s, 30, 29), -EINVAL);
        ck_assert_int_eq(rangeset_add(&s, UINT64_MAX, 0), -EINVAL);
        ck_assert_int_eq(rangeset_remove(&s, 20, 10), -EINVAL);
        ck_assert_int_eq(rangeset_remove(&s, 15, 0), -EINVAL);
        EXPECT(&s, 10, 20);

        /* the extremes of the uint64_t space */
        ck_assert_int_eq(rangeset_add(&s, UINT64_MAX - 1, UINT64_MAX), 0);
        ck_assert_int_eq(rangeset_add(&s, 0, 1), 0);
        EXPECT(&s, 0, 1, 10, 20, UINT64_MAX - 1, UINT64_MAX);
        ck_assert(rangeset_intersects(&s, UINT64_MAX - 1, UINT64_MAX));
        ck_assert_int_eq(rangeset_remove(&s, 0, UINT64_MAX), 0);
        EXPECT_EMPTY(&s);
        rangeset_clear(&s);
}
END_TEST

/* Randomized: the set against a bitmap model of NPAGES units. */
#define NPAGES 256

static uint64_t rng_state;
static uint64_t rng(void) {
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        return rng_state;
}

static void compare_with_model(const struct rangeset *s, const bool *model, unsigned step) {
        uint64_t bytes = 0;
        size_t runs = 0;

        check_invariant(s);
        /* the set, expanded, is the bitmap */
        for (unsigned p = 0; p < NPAGES; p++) {
                bool in = false;
                for (size_t i = 0; i < s->n; i++)
                        if (s->ranges[i].start <= p && p < s->ranges[i].end)
                                in = true;
                ck_assert_msg(in == model[p], "step %u: unit %u is %s in the set but %s in the model", step, p,
                              in ? "present" : "absent", model[p] ? "present" : "absent");
                bytes += model[p];
                if (model[p] && (p == 0 || !model[p - 1]))
                        runs++;
        }
        /* maximal runs of the bitmap are exactly the ranges (merged, never adjacent) */
        ck_assert_uint_eq(s->n, runs);
        ck_assert_uint_eq(rangeset_bytes(s), bytes);
        for (size_t i = 0; i < s->n; i++)
                ck_assert_uint_le(s->ranges[i].end, NPAGES);
}

START_TEST(random_against_bitmap) {
        struct rangeset s = { 0 };
        bool model[NPAGES] = { false };

        rng_state = 0x9E3779B97F4A7C15ull + (uint64_t) _i;
        for (unsigned step = 0; step < 4000; step++) {
                uint64_t a = rng() % (NPAGES + 1), b = rng() % (NPAGES + 1);
                uint64_t start = a < b ? a : b, end = a < b ? b : a;
                unsigned op = rng() % 8;

                if (op < 4) {
                        ck_assert_int_eq(rangeset_add(&s, start, end), 0);
                        for (uint64_t p = start; p < end; p++)
                                model[p] = true;
                } else if (op < 7) {
                        ck_assert_int_eq(rangeset_remove(&s, start, end), 0);
                        for (uint64_t p = start; p < end; p++)
                                model[p] = false;
                } else {
                        /* a query: intersects() agrees with the model */
                        bool any = false;
                        for (uint64_t p = start; p < end; p++)
                                any |= model[p];
                        ck_assert_msg(rangeset_intersects(&s, start, end) == any,
                                      "step %u: intersects(%" PRIu64 ", %" PRIu64 ") should be %d", step, start, end, any);
                }
                /* every step checks the intersects() answer for one single unit too */
                {
                        uint64_t p = rng() % NPAGES;
                        ck_assert(rangeset_intersects(&s, p, p + 1) == model[p]);
                }
                if (step % 16 == 0 || step == 3999)
                        compare_with_model(&s, model, step);
        }
        rangeset_clear(&s);
}
END_TEST

int main(void) {
        Suite *s = suite_create("rangeset");
        TCase *tc = tcase_create("unit");

        tcase_add_test(tc, add_single_and_disjoint);
        tcase_add_test(tc, add_merges_overlapping);
        tcase_add_test(tc, add_merges_adjacent);
        tcase_add_test(tc, remove_splits_and_trims);
        tcase_add_test(tc, remove_everything);
        tcase_add_test(tc, intersects_half_open);
        tcase_add_test(tc, empty_and_invalid_ranges);
        tcase_add_loop_test(tc, random_against_bitmap, 0, 4);
        suite_add_tcase(s, tc);
        return gmem_test_main(s);
}
