/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A set of byte ranges [start, end): which parts of a region are private to the guest. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct range {
        uint64_t start, end;
};

struct rangeset {
        struct range *ranges; /* sorted, disjoint, never adjacent */
        size_t n;
};

int rangeset_add(struct rangeset *s, uint64_t start, uint64_t end);
int rangeset_remove(struct rangeset *s, uint64_t start, uint64_t end);
bool rangeset_intersects(const struct rangeset *s, uint64_t start, uint64_t end);
uint64_t rangeset_bytes(const struct rangeset *s);
void rangeset_clear(struct rangeset *s);
/* A deep copy into *ret (which must be empty). */
int rangeset_copy(const struct rangeset *s, struct rangeset *ret);
