/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Unit tests for CRC-32C (libgmem/crc32c.h), the checksum of every snapshot extent: against the
 * standard check value and a bit-at-a-time reference, over the lengths and alignments where the
 * fast paths change (one stream, three interleaved streams, the copying variant that streams
 * its stores when the destination is 16-byte aligned), and with the copy byte for byte.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crc32c.h"
#include "gmem-test.h"

/* the definition: one bit at a time, reflected polynomial 0x82f63b78 */
static uint32_t reference(const uint8_t *p, size_t len) {
        uint32_t c = ~0u;

        while (len--) {
                c ^= *p++;
                for (int k = 0; k < 8; k++)
                        c = c & 1 ? (c >> 1) ^ 0x82f63b78u : c >> 1;
        }
        return ~c;
}

static uint8_t *random_buffer(size_t len, uint64_t seed) {
        uint8_t *p = malloc(len);

        ck_assert_ptr_nonnull(p);
        for (size_t i = 0; i < len; i++) {
                seed = seed * 6364136223846793005ull + 1442695040888963407ull;
                p[i] = (uint8_t) (seed >> 56);
        }
        return p;
}

START_TEST(check_value) {
        /* the CRC-32C check value (RFC 3720, B.4; every CRC catalogue) */
        ck_assert_uint_eq(gmem_crc32c(0, "123456789", 9), 0xe3069283u);
        ck_assert_uint_eq(gmem_crc32c(0, "", 0), 0);
        /* 32 bytes of zeroes and of 0xff: RFC 3720's test patterns */
        uint8_t z[32] = { 0 }, f[32];
        memset(f, 0xff, sizeof(f));
        ck_assert_uint_eq(gmem_crc32c(0, z, sizeof(z)), 0x8a9136aau);
        ck_assert_uint_eq(gmem_crc32c(0, f, sizeof(f)), 0x62a8ab43u);
}
END_TEST

/* lengths on both sides of each path's threshold (three streams from 3 * 4096 bytes, the
 * streaming copy from 3 * 4096 in 48-byte steps), odd tails, a snapshot's 16 KiB block */
static const size_t lengths[] = { 1,     7,     8,     9,     4095,  12287, 12288, 12289, 12295,
                                  12336, 16384, 16385, 16401, 65536, 65583, 262144, 262147 };

START_TEST(against_reference) {
        uint8_t *src = random_buffer(262144 + 64, 1);

        for (size_t i = 0; i < sizeof(lengths) / sizeof(lengths[0]); i++)
                for (size_t a = 0; a < 17; a += 5) { /* the source at several alignments */
                        size_t len = lengths[i];
                        ck_assert_msg(gmem_crc32c(0, src + a, len) == reference(src + a, len),
                                      "crc of %zu bytes at +%zu", len, a);
                }
        free(src);
}
END_TEST

START_TEST(copy_checks_and_copies) {
        uint8_t *src = random_buffer(262144 + 64, 2);
        uint8_t *dst = aligned_alloc(64, 262144 + 128);

        ck_assert_ptr_nonnull(dst);
        for (size_t i = 0; i < sizeof(lengths) / sizeof(lengths[0]); i++)
                for (size_t da = 0; da < 33; da += 8) { /* 16-aligned (streamed) and not */
                        size_t len = lengths[i], sa = (da * 3) % 17;
                        memset(dst, 0x5a, 262144 + 128);
                        ck_assert_msg(gmem_crc32c_copy(dst + da, src + sa, len) == reference(src + sa, len),
                                      "copying crc of %zu bytes to +%zu", len, da);
                        ck_assert_msg(memcmp(dst + da, src + sa, len) == 0, "copy of %zu bytes to +%zu", len, da);
                        /* not a byte either side */
                        for (size_t k = 0; k < da; k++)
                                ck_assert_uint_eq(dst[k], 0x5a);
                        ck_assert_uint_eq(dst[da + len], 0x5a);
                }
        free(dst);
        free(src);
}
END_TEST

START_TEST(continues_across_pieces) {
        uint8_t *src = random_buffer(100000, 3);
        uint32_t whole = reference(src, 100000);

        /* crc(A then B) from crc(A) and B: how a file's checksum is built piece by piece */
        for (size_t cut = 0; cut <= 100000; cut += 12345) {
                uint32_t c = gmem_crc32c(0, src, cut);
                ck_assert_msg(gmem_crc32c(c, src + cut, 100000 - cut) == whole, "cut at %zu", cut);
        }
        free(src);
}
END_TEST

int main(void) {
        Suite *s = suite_create("crc32c");
        TCase *tc = tcase_create("unit");

        tcase_add_test(tc, check_value);
        tcase_add_test(tc, against_reference);
        tcase_add_test(tc, copy_checks_and_copies);
        tcase_add_test(tc, continues_across_pieces);
        suite_add_tcase(s, tc);
        return gmem_test_main(s);
}
