/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Run one operation over a byte range in chunks on worker threads: the one engine behind
 * populate, dump and prefault. Workers take the next chunk as they finish one, so a slow chunk
 * (fresh memory, a cold source file) does not hold the others up; the calling thread reports
 * progress and watches for cancellation.
 */
#pragma once

#include <stdint.h>

#include "gmem/gmem.h"

/* Work on [off, off+len) of the job's range (offsets relative to its start); 0 or -errno
 * (with gmem_error() called). *ret_count is what the job sums up (bytes written, say). */
typedef int (*gmem_chunk_fn)(void *ctx, uint64_t off, uint64_t len, uint64_t *ret_count);

struct gmem_job {
        uint64_t total;        /* bytes in the range */
        uint64_t align;        /* chunk boundaries fall on multiples of this */
        gmem_chunk_fn fn;
        void *ctx;
        const struct gmem_populate_opts *opts; /* checked, never NULL (opts.h) */
};

#define GMEM_JOB_CHUNK_DEFAULT (4 * MiB)
#define GMEM_JOB_THREADS_MAX 16
#define GMEM_JOB_BYTES_PER_THREAD (64 * MiB)

/* 0 and the summed counts, or the first error (its message carried over to this thread);
 * -ECANCELED when cancelled. */
int gmem_job_run(const struct gmem_job *job, uint64_t *ret_count);
