/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>

#include "error.h"
#include "job.h"

struct job_state {
        const struct gmem_job *job;
        uint64_t chunk;
        uint64_t next;       /* next offset to hand out */
        uint64_t done;       /* bytes finished */
        uint64_t count;      /* summed chunk counts */
        int error;           /* first error */
        char message[512];   /* and its reason, from the worker's thread */
        bool stop;
        pthread_mutex_t lock;
        pthread_cond_t cond;
};

static bool cancel_requested(const struct gmem_job *job) {
        return job->opts->cancel && __atomic_load_n(job->opts->cancel, __ATOMIC_RELAXED);
}

/* Take the next chunk; false when there is none or the job stops. */
static bool take_chunk(struct job_state *s, uint64_t *ret_off, uint64_t *ret_len) {
        bool ok = false;

        pthread_mutex_lock(&s->lock);
        if (!s->stop && s->next < s->job->total) {
                *ret_off = s->next;
                *ret_len = MIN(s->chunk, s->job->total - s->next);
                s->next += *ret_len;
                ok = true;
        }
        pthread_mutex_unlock(&s->lock);
        return ok;
}

static void finish_chunk(struct job_state *s, uint64_t len, uint64_t count, int r) {
        pthread_mutex_lock(&s->lock);
        if (r < 0) {
                if (s->error == 0) {
                        s->error = r;
                        snprintf(s->message, sizeof(s->message), "%s", gmem_last_error());
                }
                s->stop = true;
        } else {
                s->done += len;
                s->count += count;
        }
        pthread_cond_broadcast(&s->cond);
        pthread_mutex_unlock(&s->lock);
}

static void *worker(void *arg) {
        struct job_state *s = arg;
        uint64_t off, len;

        while (!cancel_requested(s->job) && take_chunk(s, &off, &len)) {
                uint64_t count = 0;
                int r = s->job->fn(s->job->ctx, off, len, &count);
                finish_chunk(s, len, count, r);
        }
        return NULL;
}

static unsigned pick_threads(const struct gmem_job *job, uint64_t chunk) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        uint64_t chunks = (job->total + chunk - 1) / chunk;
        uint64_t n;

        if (job->opts->threads)
                n = job->opts->threads;
        else {
                /* QEMU's rule: no more threads than cores (and 16), nor than 64 MiB pieces */
                n = MIN((uint64_t) (cores > 0 ? cores : 1), (uint64_t) GMEM_JOB_THREADS_MAX);
                n = MIN(n, MAX(UINT64_C(1), job->total / GMEM_JOB_BYTES_PER_THREAD));
        }
        n = MIN(n, (uint64_t) 256); /* a caller's typo must not fork-bomb the process */
        return (unsigned) MAX(UINT64_C(1), MIN(n, chunks));
}

static void report(const struct gmem_job *job, struct job_state *s, uint64_t done) {
        if (job->opts->progress && job->opts->progress(done, job->total, job->opts->userdata)) {
                pthread_mutex_lock(&s->lock);
                s->stop = true;
                if (s->error == 0)
                        s->error = -ECANCELED;
                pthread_mutex_unlock(&s->lock);
        }
}

int gmem_job_run(const struct gmem_job *job, uint64_t *ret_count) {
        struct job_state s = { .job = job };
        pthread_t threads[256];
        unsigned n, started = 0;
        uint64_t align = job->align ? job->align : 1;
        uint64_t reported = UINT64_MAX;

        s.chunk = job->opts->chunk_size ? job->opts->chunk_size : GMEM_JOB_CHUNK_DEFAULT;
        s.chunk = MAX(align, s.chunk - s.chunk % align);
        n = pick_threads(job, s.chunk);
        pthread_mutex_init(&s.lock, NULL);
        pthread_cond_init(&s.cond, NULL);

        if (n > 1)
                for (; started < n; started++)
                        if (pthread_create(&threads[started], NULL, worker, &s) != 0)
                                break;

        if (started == 0) {
                /* one thread (or none could start): work here, reporting after each chunk */
                uint64_t off, len;
                while (!cancel_requested(job) && take_chunk(&s, &off, &len)) {
                        uint64_t count = 0;
                        int r = job->fn(job->ctx, off, len, &count);
                        finish_chunk(&s, len, count, r);
                        report(job, &s, s.done);
                }
        } else {
                pthread_mutex_lock(&s.lock);
                while (s.done < job->total && !s.stop) {
                        struct timespec ts;
                        uint64_t done = s.done;
                        if (done != reported) {
                                reported = done;
                                pthread_mutex_unlock(&s.lock);
                                report(job, &s, done);
                                pthread_mutex_lock(&s.lock);
                                continue;
                        }
                        if (cancel_requested(job)) {
                                s.stop = true;
                                break;
                        }
                        /* wake on every finished chunk, and now and then to look at the cancel flag */
                        clock_gettime(CLOCK_REALTIME, &ts);
                        ts.tv_nsec += 50 * 1000 * 1000;
                        if (ts.tv_nsec >= 1000000000) {
                                ts.tv_sec++;
                                ts.tv_nsec -= 1000000000;
                        }
                        pthread_cond_timedwait(&s.cond, &s.lock, &ts);
                }
                pthread_mutex_unlock(&s.lock);
                for (unsigned i = 0; i < started; i++)
                        pthread_join(threads[i], NULL);
                if (s.error == 0 && s.done == job->total && reported != s.done)
                        report(job, &s, s.done);
        }

        pthread_cond_destroy(&s.cond);
        pthread_mutex_destroy(&s.lock);

        if (s.error == 0 && (cancel_requested(job) || s.done < job->total))
                s.error = -ECANCELED;
        if (s.error == -ECANCELED && !s.message[0])
                return gmem_error(-ECANCELED, "cancelled after %" PRIu64 " of %" PRIu64 " bytes", s.done, job->total);
        if (s.error < 0)
                return gmem_error_set_message(s.error, s.message);
        if (ret_count)
                *ret_count = s.count;
        return 0;
}
