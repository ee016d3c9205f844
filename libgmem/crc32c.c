/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * CRC-32C. With SSE4.2 the crc32 instruction does 8 bytes at a time, but each depends on the last
 * (3 cycles): one stream runs at a third of what the CPU can. So a buffer is cut in three, the
 * three streams run interleaved, and their CRCs are combined (as zlib's crc32_combine does: the
 * first CRC times x^(8 * length of the rest) mod P, xor the rest's). gmem_crc32c_copy() does the
 * same while it copies, so a restore reads its source once.
 */
#include <pthread.h>
#include <stdbool.h>
#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "crc32c.h"

#define POLY 0x82f63b78u /* CRC-32C, reflected */

static uint32_t table[256];
static uint32_t x2n[32]; /* x^(2^n) mod P */
static pthread_once_t init_once = PTHREAD_ONCE_INIT;

/* a * b mod P, reflected (bit 31 is x^0) */
static uint32_t multmodp(uint32_t a, uint32_t b) {
        uint32_t m = UINT32_C(1) << 31, p = 0;

        for (;;) {
                if (a & m) {
                        p ^= b;
                        if ((a & (m - 1)) == 0)
                                break;
                }
                m >>= 1;
                b = b & 1 ? (b >> 1) ^ POLY : b >> 1;
        }
        return p;
}

static void init(void) {
        uint32_t p = UINT32_C(1) << 30; /* x^1 */

        for (uint32_t i = 0; i < 256; i++) {
                uint32_t c = i;
                for (int k = 0; k < 8; k++)
                        c = c & 1 ? (c >> 1) ^ POLY : c >> 1;
                table[i] = c;
        }
        x2n[0] = p;
        for (int n = 1; n < 32; n++)
                x2n[n] = p = multmodp(p, p);
}

/* x^(8 * len) mod P */
static uint32_t x8nmodp(uint64_t len) {
        uint32_t p = UINT32_C(1) << 31; /* x^0 */
        unsigned k = 3;

        while (len) {
                if (len & 1)
                        p = multmodp(x2n[k & 31], p);
                len >>= 1;
                k++;
        }
        return p;
}

/* x8nmodp() of the lengths last asked for on this thread: a restore checks extent after extent of
 * one size, and working the power out each time costs a fifth of checking 16 KiB. */
static uint32_t x8nmodp_cached(uint64_t len) {
        static _Thread_local struct {
                uint64_t len;
                uint32_t p;
        } cache[2];
        static _Thread_local unsigned next;

        for (unsigned i = 0; i < 2; i++)
                if (cache[i].len == len && len)
                        return cache[i].p;
        cache[next] = (typeof(cache[0])) { len, x8nmodp(len) };
        next ^= 1;
        return cache[next ^ 1].p;
}

/* the CRC of A followed by B, from crc(A), crc(B) and B's length */
static uint32_t combine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b) {
        return multmodp(x8nmodp_cached(len_b), crc_a) ^ crc_b;
}

static uint32_t raw_table(uint32_t c, const uint8_t *p, size_t len) {
        while (len--)
                c = table[(c ^ *p++) & 0xff] ^ (c >> 8);
        return c;
}

#if defined(__x86_64__)
/* One stream, copying when dst is given; c is the raw register. */
__attribute__((target("sse4.2"))) static uint32_t raw_sse42(uint32_t c, uint8_t *dst, const uint8_t *p, size_t len) {
        uint64_t c64 = c;

        for (; len >= 8; len -= 8, p += 8) {
                uint64_t v;
                memcpy(&v, p, 8);
                if (dst) {
                        memcpy(dst, &v, 8);
                        dst += 8;
                }
                c64 = __builtin_ia32_crc32di(c64, v);
        }
        for (; len; len--, p++) {
                if (dst)
                        *dst++ = *p;
                c64 = __builtin_ia32_crc32qi((uint32_t) c64, *p);
        }
        return (uint32_t) c64;
}

/* Three streams interleaved over [0, n), [n, 2n), [2n, 3n) (n a multiple of 8); the final CRCs
 * of the three parts. */
__attribute__((target("sse4.2"))) static void three_sse42(const uint8_t *p, size_t n, uint32_t ret[3]) {
        uint64_t a = ~0u, b = ~0u, c = ~0u;

        for (size_t i = 0; i < n; i += 8) {
                uint64_t x, y, z;
                memcpy(&x, p + i, 8);
                memcpy(&y, p + n + i, 8);
                memcpy(&z, p + 2 * n + i, 8);
                a = __builtin_ia32_crc32di(a, x);
                b = __builtin_ia32_crc32di(b, y);
                c = __builtin_ia32_crc32di(c, z);
        }
        ret[0] = ~(uint32_t) a;
        ret[1] = ~(uint32_t) b;
        ret[2] = ~(uint32_t) c;
}

/* The same copying to dst (16-byte aligned; n a multiple of 16) with non-temporal stores: the
 * destination is guest memory, not read back soon, and a streamed line is not first read for
 * ownership (glibc's memcpy does the same beyond the cache's size). */
__attribute__((target("sse4.2"))) static void three_sse42_copy(uint8_t *dst, const uint8_t *p, size_t n, uint32_t ret[3]) {
        uint64_t a = ~0u, b = ~0u, c = ~0u;

        for (size_t i = 0; i < n; i += 16) {
                uint64_t x[2], y[2], z[2];
                _mm_stream_si128((__m128i *) (dst + i), _mm_loadu_si128((const __m128i *) (p + i)));
                _mm_stream_si128((__m128i *) (dst + n + i), _mm_loadu_si128((const __m128i *) (p + n + i)));
                _mm_stream_si128((__m128i *) (dst + 2 * n + i), _mm_loadu_si128((const __m128i *) (p + 2 * n + i)));
                memcpy(x, p + i, 16);
                memcpy(y, p + n + i, 16);
                memcpy(z, p + 2 * n + i, 16);
                a = __builtin_ia32_crc32di(a, x[0]);
                b = __builtin_ia32_crc32di(b, y[0]);
                c = __builtin_ia32_crc32di(c, z[0]);
                a = __builtin_ia32_crc32di(a, x[1]);
                b = __builtin_ia32_crc32di(b, y[1]);
                c = __builtin_ia32_crc32di(c, z[1]);
        }
        _mm_sfence(); /* the streamed stores ordered before whatever follows */
        ret[0] = ~(uint32_t) a;
        ret[1] = ~(uint32_t) b;
        ret[2] = ~(uint32_t) c;
}
#endif

/* The final CRC-32C of [p, p+len), copied to dst (when not NULL) on the way. */
static uint32_t crc_of(uint8_t *dst, const uint8_t *p, size_t len) {
#if defined(__x86_64__)
        if (__builtin_cpu_supports("sse4.2")) {
                bool stream = dst && ((uintptr_t) dst & 15) == 0;
                size_t n = stream ? len / 48 * 16 : len / 24 * 8; /* each stream's share */
                if (n >= 4096) {
                        uint32_t part[3], tail;
                        if (stream)
                                three_sse42_copy(dst, p, n, part);
                        else {
                                if (dst)
                                        memcpy(dst, p, 3 * n);
                                three_sse42(p, n, part);
                        }
                        tail = ~raw_sse42(~0u, dst ? dst + 3 * n : NULL, p + 3 * n, len - 3 * n);
                        return combine(combine(combine(part[0], part[1], n), part[2], n), tail, len - 3 * n);
                }
                return ~raw_sse42(~0u, dst, p, len);
        }
#endif
        if (dst)
                memcpy(dst, p, len);
        return ~raw_table(~0u, p, len);
}

uint32_t gmem_crc32c(uint32_t crc, const void *buf, size_t len) {
        uint32_t c;

        pthread_once(&init_once, init);
        c = crc_of(NULL, buf, len);
        return crc ? combine(crc, c, len) : c;
}

uint32_t gmem_crc32c_copy(void *dst, const void *src, size_t len) {
        pthread_once(&init_once, init);
        return crc_of(dst, src, len);
}
