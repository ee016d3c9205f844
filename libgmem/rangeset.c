/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "rangeset.h"

/* Both updates rebuild the array: conversions are rare and the set stays small, so clarity wins
 * over in-place surgery. The new array is built first, so a failed allocation changes nothing. */

int rangeset_add(struct rangeset *s, uint64_t start, uint64_t end) {
        struct range *n;
        size_t i, k = 0;
        bool placed = false;

        if (start >= end)
                return start == end ? 0 : -EINVAL;

        n = malloc((s->n + 1) * sizeof(*n));
        if (!n)
                return -ENOMEM;

        for (i = 0; i < s->n; i++) {
                struct range c = s->ranges[i];

                if (c.end < start)              /* wholly before, not touching */
                        n[k++] = c;
                else if (c.start > end) {       /* wholly after, not touching */
                        if (!placed) {
                                n[k++] = (struct range) { start, end };
                                placed = true;
                        }
                        n[k++] = c;
                } else {                        /* overlaps or touches: absorb */
                        start = c.start < start ? c.start : start;
                        end = c.end > end ? c.end : end;
                }
        }
        if (!placed)
                n[k++] = (struct range) { start, end };

        free(s->ranges);
        s->ranges = n;
        s->n = k;
        return 0;
}

int rangeset_remove(struct rangeset *s, uint64_t start, uint64_t end) {
        struct range *n;
        size_t i, k = 0;

        if (start >= end)
                return start == end ? 0 : -EINVAL;
        if (!rangeset_intersects(s, start, end))
                return 0;

        n = malloc((s->n + 1) * sizeof(*n)); /* removing from the middle splits one range in two */
        if (!n)
                return -ENOMEM;

        for (i = 0; i < s->n; i++) {
                struct range c = s->ranges[i];

                if (c.end <= start || c.start >= end) {
                        n[k++] = c;
                        continue;
                }
                if (c.start < start)
                        n[k++] = (struct range) { c.start, start };
                if (c.end > end)
                        n[k++] = (struct range) { end, c.end };
        }

        free(s->ranges);
        s->ranges = k ? n : NULL;
        if (!k)
                free(n);
        s->n = k;
        return 0;
}

bool rangeset_intersects(const struct rangeset *s, uint64_t start, uint64_t end) {
        size_t lo = 0, hi = s->n;

        if (start >= end)
                return false;
        /* first range whose end is past start */
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (s->ranges[mid].end <= start)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return lo < s->n && s->ranges[lo].start < end;
}

uint64_t rangeset_bytes(const struct rangeset *s) {
        uint64_t sum = 0;
        for (size_t i = 0; i < s->n; i++)
                sum += s->ranges[i].end - s->ranges[i].start;
        return sum;
}

void rangeset_clear(struct rangeset *s) {
        free(s->ranges);
        s->ranges = NULL;
        s->n = 0;
}

int rangeset_copy(const struct rangeset *s, struct rangeset *ret) {
        struct range *n = NULL;

        if (s->n) {
                n = malloc(s->n * sizeof(*n));
                if (!n)
                        return -ENOMEM;
                memcpy(n, s->ranges, s->n * sizeof(*n));
        }
        *ret = (struct rangeset) { n, s->n };
        return 0;
}
