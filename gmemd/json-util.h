/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Typed access to request members: a missing member takes its default, a wrong type is -EINVAL
 * with a message naming the member. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "protocol.h" /* json_u64(), json_add_u64(): exact integers out */

/* Non-negative integers exactly representable in a JSON number (below 2^53). */
int json_get_u64(const cJSON *o, const char *key, bool required, uint64_t def, uint64_t *ret);
int json_get_str(const cJSON *o, const char *key, bool required, const char *def, const char **ret);
int json_get_bool(const cJSON *o, const char *key, bool def, bool *ret);

/* The whole of a small file from fd (at most max bytes; -EFBIG beyond), NUL-terminated. what names
 * it in the error message ("config '/etc/gmemd/gmemd.json'"). */
int read_small_file(int fd, size_t max, const char *what, char **ret_text, size_t *ret_n);

/* o written to path (mode 0600) through path.tmp renamed over it: a crash leaves the old file or the
 * new one, never half of one. -errno (-ENOMEM when o cannot be printed), nothing left behind. */
int json_write_file(const cJSON *o, bool formatted, const char *path);

/* A member name written twice in one object of text (valid JSON): 1 with the name (printable, cut
 * to key_size) and its second line, 0 when there is none, -E2BIG for objects nested 64 deep (none of
 * ours is), -ENOMEM. Names are compared decoded, by a 64-bit hash of their first 256 bytes and their
 * length: two different names that collide are taken for one (the request is refused, never misread). */
int json_find_duplicate_key(const char *text, size_t len, char *ret_key, size_t key_size, unsigned *ret_line);
