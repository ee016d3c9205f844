/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Numbers and sizes as people write them, for the command line tools and gmemd's config alike:
 * one notation everywhere. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "parse-size.h"

/* Digits of s in base 10 or 16 into *ret; *ret_end points after them. */
static int parse_digits(const char *s, unsigned base, uint64_t *ret, const char **ret_end) {
        uint64_t v = 0;
        const char *p = s;

        for (;; p++) {
                unsigned d;
                if (*p >= '0' && *p <= '9')
                        d = *p - '0';
                else if (base == 16 && isxdigit((unsigned char) *p))
                        d = (tolower((unsigned char) *p) - 'a') + 10;
                else
                        break;
                if (v > (UINT64_MAX - d) / base)
                        return -ERANGE;
                v = v * base + d;
        }
        if (p == s)
                return -EINVAL;
        *ret = v;
        *ret_end = p;
        return 0;
}

int parse_uint64(const char *s, uint64_t max, uint64_t *ret) {
        const char *end;
        uint64_t v;
        int k;

        if (!s || !ret)
                return -EINVAL;
        if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
                k = parse_digits(s + 2, 16, &v, &end);
        else
                k = parse_digits(s, 10, &v, &end);
        if (k < 0)
                return k;
        if (*end)
                return -EINVAL;
        if (v > max)
                return -ERANGE;
        *ret = v;
        return 0;
}

int parse_uint32(const char *s, uint32_t *ret) {
        uint64_t v;
        int k = parse_uint64(s, UINT32_MAX, &v);
        if (k < 0)
                return k;
        *ret = (uint32_t) v;
        return 0;
}

static int suffix_shift(char c) {
        switch (c) {
        case 'k': case 'K': return 10;
        case 'm': case 'M': return 20;
        case 'g': case 'G': return 30;
        case 't': case 'T': return 40;
        case 'p': case 'P': return 50;
        case 'e': case 'E': return 60;
        default: return -1;
        }
}

int parse_size(const char *s, uint64_t *ret) {
        uint64_t whole, frac = 0, frac_div = 1, v;
        const char *p;
        int shift = 0, k;

        if (!s || !ret)
                return -EINVAL;
        if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
                return parse_uint64(s, UINT64_MAX, ret); /* hex takes no suffix */

        k = parse_digits(s, 10, &whole, &p);
        if (k < 0)
                return k;
        if (*p == '.') {
                const char *q = ++p;
                /* at most 9 digits after the point: frac << 60 fits in 128 bits */
                for (; *p >= '0' && *p <= '9'; p++) {
                        if (p - q >= 9)
                                return -EINVAL;
                        frac = frac * 10 + (*p - '0');
                        frac_div *= 10;
                }
                if (p == q)
                        return -EINVAL;
        }
        if (*p && (k = suffix_shift(*p)) >= 0) {
                shift = k;
                p++;
                if (p[0] == 'i' && p[1] == 'B')
                        p += 2;
                else if (p[0] == 'B')
                        p++;
        } else if (p[0] == 'B')
                p++;
        if (*p)
                return -EINVAL;

        if (shift > 0 && whole > (UINT64_MAX >> shift))
                return -ERANGE;
        v = whole << shift;
        if (frac) {
                /* frac / frac_div of a unit must be a whole number of bytes */
                unsigned __int128 part = (unsigned __int128) frac << shift;
                if (part % frac_div)
                        return -EINVAL;
                part /= frac_div;
                if (part > UINT64_MAX - v)
                        return -ERANGE;
                v += (uint64_t) part;
        }
        *ret = v;
        return 0;
}

const char *format_size(char buf[static FORMAT_SIZE_MAX], uint64_t bytes) {
        static const char units[] = "KMGTPE";
        unsigned i;

        if (bytes < 1024) {
                snprintf(buf, FORMAT_SIZE_MAX, "%" PRIu64 "B", bytes);
                return buf;
        }
        /* the largest unit that leaves at least 1 */
        for (i = 0; i + 1 < sizeof(units) - 1 && bytes >= (UINT64_C(1) << (10 * (i + 2))); i++)
                ;
        uint64_t unit = UINT64_C(1) << (10 * (i + 1));
        if (bytes % unit == 0) {
                snprintf(buf, FORMAT_SIZE_MAX, "%" PRIu64 "%c", bytes / unit, units[i]);
                return buf;
        }
        /* tenths, rounded; 1023.96K reads better as 1M */
        uint64_t tenths = (bytes / unit) * 10 + ((bytes % unit) * 10 + unit / 2) / unit;
        if (tenths >= 10240 && i + 1 < sizeof(units) - 1) {
                i++;
                tenths = 10;
        }
        if (tenths % 10 == 0 || tenths >= 1000)
                snprintf(buf, FORMAT_SIZE_MAX, "%" PRIu64 "%c", (tenths + 5) / 10, units[i]);
        else
                snprintf(buf, FORMAT_SIZE_MAX, "%" PRIu64 ".%" PRIu64 "%c", tenths / 10, tenths % 10, units[i]);
        return buf;
}
