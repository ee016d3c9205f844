/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Helpers shared by the command line tools (gmemctl, gmem-example-vmm): sizes in and out, numbers
 * (parse-size.h, which gmemd's config shares), and a progress bar for long jobs. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "parse-size.h"

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
