/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Sizes and numbers in and out, the one notation of gmemctl, the example VMM and gmemd.json. */
#pragma once

#include <stdint.h>

/* "4096", "0x1000", "64K", "256M", "1.5G", "2T", with an optional "B" or "iB" after the suffix
 * ("64KiB", "1GB"; powers of 1024 either way) or a bare "B" ("512B"). 0 and *ret, or -EINVAL
 * (syntax, a fraction that is not a whole number of bytes) or -ERANGE (above UINT64_MAX);
 * *ret is untouched on failure. */
int parse_size(const char *s, uint64_t *ret);

/* A decimal (or 0x hex) unsigned number without a suffix, no larger than max. Same errors. */
int parse_uint64(const char *s, uint64_t max, uint64_t *ret);
int parse_uint32(const char *s, uint32_t *ret);

/* Human size for tables: "0B", "512B", "4K", "256M", "1.5G" (one decimal where it matters). */
#define FORMAT_SIZE_MAX 24
const char *format_size(char buf[static FORMAT_SIZE_MAX], uint64_t bytes);
