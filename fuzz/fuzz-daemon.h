/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What the in-process fuzz targets share: a gmemd core within small limits, and a way back to
 * a daemon much like the last input found it. */
#pragma once

#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "../gmemd/job.h"
#include "../gmemd/log.h"
#include "../gmemd/region.h"

/* A quiet core: one worker, 64 MiB, 32 regions, 4 jobs, the kernel as detected; aborts on failure. */
static inline void fuzz_daemon_start(struct daemon *d) {
        log_max_level = -1; /* quiet: the fuzzer prints what matters */
        signal(SIGPIPE, SIG_IGN);
        config_defaults(&d->config);
        d->config.workers = 1;
        d->config.limits.max_bytes_total = d->config.limits.max_bytes_per_uid = 64 * MiB;
        d->config.limits.max_regions = 32;
        d->config.limits.max_jobs = 4;
        d->base = event_base_new();
        if (!d->base || gmem_host_caps_new(GMEM_PROFILE_DETECT, &d->caps) < 0 || pool_start(d) < 0)
                abort();
}

/* Release the regions no job holds, but keep (NULL: none), so that state stays bounded. */
static inline void fuzz_release_idle(struct daemon *d, const char *keep) {
        for (struct managed *m = d->regions, *next; m; m = next) {
                next = m->next;
                if (!m->running_jobs && !(keep && strcmp(m->name, keep) == 0))
                        region_release(d, m);
        }
}
