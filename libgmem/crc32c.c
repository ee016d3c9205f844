/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <pthread.h>
#include <string.h>

#include "crc32c.h"

static uint32_t table[256];
static pthread_once_t table_once = PTHREAD_ONCE_INIT;

static void table_init(void) {
        for (uint32_t i = 0; i < 256; i++) {
                uint32_t c = i;
                for (int k = 0; k < 8; k++)
                        c = c & 1 ? (c >> 1) ^ 0x82f63b78u : c >> 1;
                table[i] = c;
        }
}

static uint32_t crc_table(uint32_t c, const uint8_t *p, size_t len) {
        pthread_once(&table_once, table_init);
        while (len--)
                c = table[(c ^ *p++) & 0xff] ^ (c >> 8);
        return c;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t crc_sse42(uint32_t c, const uint8_t *p, size_t len) {
        uint64_t c64 = c;

        while (len && ((uintptr_t) p & 7)) {
                c64 = __builtin_ia32_crc32qi((uint32_t) c64, *p++);
                len--;
        }
        for (; len >= 8; len -= 8, p += 8) {
                uint64_t v;
                memcpy(&v, p, 8);
                c64 = __builtin_ia32_crc32di(c64, v);
        }
        while (len--)
                c64 = __builtin_ia32_crc32qi((uint32_t) c64, *p++);
        return (uint32_t) c64;
}
#endif

uint32_t gmem_crc32c(uint32_t crc, const void *buf, size_t len) {
        uint32_t c = ~crc;
#if defined(__x86_64__)
        if (__builtin_cpu_supports("sse4.2"))
                return ~crc_sse42(c, buf, len);
#endif
        return ~crc_table(c, buf, len);
}
