/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Helpers shared by the command line tools (gmemctl, gmem-example-vmm): sizes in and out, numbers,
 * and a progress bar for long jobs. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
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

/* A progress bar on stderr, drawn only when stderr is a terminal, at most ~10 times a second:
 *   populate ram0 [##########          ]  51%  812.4 MiB/s  ETA 0:03
 * and erased by progress_bar_done(). */
struct progress_bar {
        bool enabled;
        bool drawn;
        char label[64];
        double start;      /* seconds, CLOCK_MONOTONIC */
        double last_draw;
};

void progress_bar_init(struct progress_bar *p, const char *label);
void progress_bar_update(struct progress_bar *p, uint64_t done, uint64_t total);
void progress_bar_done(struct progress_bar *p);
