/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli-util.h"
#include "macro.h"
#include "parse-size.h"


static double now(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return ts.tv_sec + ts.tv_nsec / 1e9;
}

void progress_bar_init(struct progress_bar *p, const char *label) {
        *p = (struct progress_bar) {
                .enabled = isatty(STDERR_FILENO) == 1,
                .start = now(),
        };
        snprintf(p->label, sizeof(p->label), "%s", label ?: "");
}

void progress_bar_update(struct progress_bar *p, uint64_t done, uint64_t total) {
        enum { WIDTH = 24 };
        char bar[WIDTH + 1], eta[32] = "", d[FORMAT_SIZE_MAX], tot[FORMAT_SIZE_MAX], r[FORMAT_SIZE_MAX];
        double t, elapsed, rate, frac;
        unsigned fill;

        if (!p->enabled || total == 0)
                return;
        t = now();
        if (p->drawn && t - p->last_draw < 0.1 && done < total)
                return;
        p->last_draw = t;

        if (done > total)
                done = total;
        frac = (double) done / (double) total;
        fill = (unsigned) (frac * WIDTH);
        memset(bar, '#', fill);
        memset(bar + fill, ' ', WIDTH - fill);
        bar[WIDTH] = 0;

        elapsed = t - p->start;
        rate = elapsed > 0 ? done / elapsed : 0;
        if (rate > 0 && done < total) {
                unsigned long s = (unsigned long) ((total - done) / rate + 0.5);
                if (s >= 3600)
                        snprintf(eta, sizeof(eta), "  ETA %lu:%02lu:%02lu", s / 3600, s / 60 % 60, s % 60);
                else
                        snprintf(eta, sizeof(eta), "  ETA %lu:%02lu", s / 60, s % 60);
        }
        /* sizes as the tables write them (format_size(): "300M", "1.5G"), the one notation */
        fprintf(stderr, "\r\033[K%s [%s] %3u%%  %s/%s  %s/s%s", p->label, bar, (unsigned) (frac * 100),
                format_size(d, done), format_size(tot, total), format_size(r, (uint64_t) rate), eta);
        fflush(stderr);
        p->drawn = true;
}

void progress_bar_done(struct progress_bar *p) {
        if (p->enabled && p->drawn) {
                fputs("\r\033[K", stderr);
                fflush(stderr);
        }
        p->drawn = false;
}
