/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Long work on guest memory (populate, prefault, dump) runs here, on a bounded pool of worker
 * threads, so the event loop never blocks on it. A worker touches only its job and the libgmem
 * region it names; progress and completion reach the loop through an eventfd.
 */
#include <inttypes.h>
#include <poll.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>

#include "error.h"
#include "firecracker.h"
#include "job.h"
#include "log.h"
#include "notify.h"
#include "page-server.h"
#include "region.h"
#include "session.h"
#include "store.h"

#define PROGRESS_INTERVAL_USEC 100000

static const char *const op_names[JOB_OP_COUNT] = {
        [JOB_POPULATE] = "populate",
        [JOB_PREFAULT] = "prefault",
        [JOB_DUMP] = "dump",
        [JOB_SNAPSHOT] = "snapshot",
        [JOB_RESTORE] = "restore",
        [JOB_SERVE] = "serve",
        [JOB_FIRECRACKER] = "firecracker",
        [JOB_MEASURE] = "measure",
};

const char *job_op_name(enum job_op op) {
        return (unsigned) op < JOB_OP_COUNT ? op_names[op] : "unknown";
}

static void wake_loop(struct pool *p) {
        uint64_t one = 1;
        (void) !write(p->efd, &one, sizeof(one));
}

bool job_op_is_server(enum job_op op) {
        return op == JOB_SERVE || op == JOB_FIRECRACKER;
}

/* worker thread: at most one signal per interval, and only when something changed (a page server
 * calls this every turn of its loop, done or not: nothing is said once nothing changes) */
static int on_progress(uint64_t done, uint64_t total, void *userdata) {
        struct job *j = userdata;
        uint64_t now = mono_usec();

        __atomic_store_n(&j->done, done, __ATOMIC_RELAXED);
        __atomic_store_n(&j->total, total, __ATOMIC_RELAXED);
        if (done == j->signaled_done && total == j->signaled_total)
                return 0;
        if (now - j->last_signal_usec >= PROGRESS_INTERVAL_USEC || done == total) {
                j->last_signal_usec = now;
                j->signaled_done = done;
                j->signaled_total = total;
                __atomic_store_n(&j->progress_pending, 1, __ATOMIC_RELEASE);
                wake_loop(&j->d->pool);
        }
        return 0;
}

uint64_t jobs_charged_of_uid(struct daemon *d, uid_t uid) {
        uint64_t sum = 0;
        for (const struct job *j = d->jobs; j; j = j->next)
                if (j->uid == uid && j->counted)
                        sum += j->charged;
        return sum;
}

void job_started(struct job *j) {
        __atomic_store_n(&j->started_pending, 1, __ATOMIC_RELEASE);
        wake_loop(&j->d->pool);
}

/* Has the VMM exited (its pidfd readable)? */
static bool vmm_gone(int pidfd) {
        struct pollfd p = { .fd = pidfd, .events = POLLIN };
        return pidfd >= 0 && poll(&p, 1, 0) > 0;
}

/* A page server until the job is cancelled (the VMM's session ended, the VMM exited, or gmemd
 * stops): the faults first, the rest prefetched in between; an error (damaged data, the VMM's
 * memory gone) ends it. Under systemd the uffd, the snapshot, the VMM's pidfd and the server's
 * state sit in the fd store while it runs: a gmemd that stops or dies mid-restore leaves the
 * VMM's threads waiting in their faults, and the next one resumes serving (store.c). */
static int64_t serve_run(struct job *j, struct gmem_populate_opts *opts) {
        struct gmem_page_server *ps = NULL;
        bool stored = j->resume_fd >= 0; /* a job brought back is in the store already */
        int64_t k;

        struct gmem_snapshot_info *info = NULL;

        /* the table read here, no larger than what was charged when the job was admitted */
        k = snapshot_open_bounded(j->fd, j->meta_extents, j->len, &info);
        if (k >= 0)
                k = page_server_new_region(j->fd2, j->off, j->fd, TAKE_PTR(info), j->shared ? j->m->region : NULL, &ps);
        if (k >= 0)
                k = store_serve_begin(j->d, j, ps, j->fd2, j->pidfd, NULL, 0, &stored);
        if (k >= 0) {
                pthread_mutex_lock(&j->ps_lock);
                /* punches of the region while the server was not up: served as zeroes */
                for (unsigned i = 0; i < j->n_pending_discards; i++)
                        (void) page_server_discard(ps, j->pending_discards[i].off, j->pending_discards[i].len, NULL, NULL);
                j->n_pending_discards = 0;
                j->ps = ps;
                pthread_mutex_unlock(&j->ps_lock);
                job_started(j); /* its snapshot read and checked: the requester hears it runs */
        }
        while (k >= 0 && !__atomic_load_n(&j->cancel, __ATOMIC_RELAXED) && !vmm_gone(j->pidfd)) {
                bool complete = gmem_page_server_complete(ps);
                k = gmem_page_server_run(ps, complete ? 200 : 0);
                if (k >= 0 && !complete && !j->no_prefetch)
                        k = gmem_page_server_prefetch(ps, 8 * MiB);
                else if (k == 0 && !complete)
                        k = gmem_page_server_run(ps, 200); /* faults only: wait for one */
                if (k < 0)
                        break;
                opts->progress(gmem_page_server_served_bytes(ps), j->len, opts->userdata);
        }
        if (k >= 0)
                k = (int64_t) gmem_page_server_served_bytes(ps);
        store_serve_end(j->d, j, stored);
        pthread_mutex_lock(&j->ps_lock);
        j->ps = NULL;
        pthread_mutex_unlock(&j->ps_lock);
        gmem_page_server_free(ps);
        return k;
}

const char *job_subject(const struct job *j) {
        return j->m ? j->m->name : j->label;
}

bool job_hidden(const struct job *j) {
        return j->m && j->m->released;
}

/* worker thread */
static void job_run(struct job *j) {
        struct gmem_populate_opts opts = {
                .size = sizeof(opts), .progress = on_progress, .userdata = j, .cancel = &j->cancel,
        };
        struct gmem_region *r = j->m ? j->m->region : NULL;
        int64_t k;

        if (__atomic_load_n(&j->cancel, __ATOMIC_RELAXED)) {
                j->result = -ECANCELED;
                snprintf(j->message, sizeof(j->message), "job %" PRIu64 " cancelled before it started", j->id);
                return;
        }
        switch (j->op) {
        case JOB_POPULATE:
                k = gmem_populate_fd(r, j->off, j->fd, j->fd_off, j->len, &opts);
                break;
        case JOB_PREFAULT:
                k = gmem_prefault(r, j->off, j->len, &opts);
                break;
        case JOB_DUMP:
                k = gmem_dump_fd(r, j->off, j->len, j->fd, j->fd_off, &opts);
                break;
        case JOB_SNAPSHOT:
                k = gmem_snapshot_write(r, j->fd, &opts);
                break;
        case JOB_RESTORE:
                k = gmem_snapshot_restore(r, j->fd, &opts);
                break;
        case JOB_SERVE:
                k = serve_run(j, &opts);
                break;
        case JOB_FIRECRACKER:
                k = firecracker_run(j, &opts);
                break;
        case JOB_MEASURE: {
                uint64_t bytes = 0;
                k = gmem_region_resident(r, 0, gmem_region_size(r), &bytes);
                if (k >= 0)
                        k = (int64_t) bytes;
                break;
        }
        default:
                k = gmem_error(-EINVAL, "unknown job");
        }
        if (k < 0) {
                j->result = (int) k;
                snprintf(j->message, sizeof(j->message), "%s '%s': %s", op_names[j->op], job_subject(j), gmem_last_error());
        } else
                j->bytes = j->op == JOB_PREFAULT ? (int64_t) j->len : k;
}

/* worker thread: j is finished, for the loop to answer */
static void job_done(struct pool *p, struct job *j) {
        pthread_mutex_lock(&p->lock);
        j->qnext = p->done;
        p->done = j;
        pthread_mutex_unlock(&p->lock);
        wake_loop(p);
}

static void *worker(void *userdata) {
        struct pool *p = userdata;

        for (;;) {
                struct job *j;

                pthread_mutex_lock(&p->lock);
                while (!p->queue_head && !p->stop)
                        pthread_cond_wait(&p->cond, &p->lock);
                j = p->queue_head;
                if (!j) {
                        pthread_mutex_unlock(&p->lock);
                        return NULL;
                }
                p->queue_head = j->qnext;
                if (!p->queue_head)
                        p->queue_tail = NULL;
                pthread_mutex_unlock(&p->lock);

                job_run(j);
                job_done(p, j);
        }
}

/* A job on a thread of its own (JOB_SERVE): it runs until cancelled, so it must not hold a worker. */
static void *job_thread(void *userdata) {
        struct job *j = userdata;
        struct pool *p = &j->d->pool;

        job_run(j);
        job_done(p, j);
        return NULL;
}

static void send_progress(struct daemon *d, struct job *j) {
        uint64_t done = __atomic_load_n(&j->done, __ATOMIC_RELAXED), total = __atomic_load_n(&j->total, __ATOMIC_RELAXED);

        if (done == j->sent_done && total == j->sent_total)
                return;
        j->sent_done = done;
        j->sent_total = total;
        if (j->rq && j->rq->ops->progress)
                j->rq->ops->progress(j->rq, j, done, total);
        notify_job_progress(d, j, done, total);
}

static void job_free(struct daemon *d, struct job *j) {
        LIST_REMOVE(d->jobs, j);
        if (j->counted)
                d->charged_total -= j->charged;
        if (j->own_thread && !j->joined)
                pthread_join(j->thread, NULL); /* it has put itself on the done list: it is ending */
        if (j->fd >= 0)
                close(j->fd);
        if (j->fd2 >= 0)
                close(j->fd2);
        if (j->pidfd >= 0)
                close(j->pidfd);
        if (j->resume_fd >= 0)
                close(j->resume_fd);
        if (j->fd3 >= 0)
                close(j->fd3);
        free(j->maps);
        if (j->rq)
                j->rq->ops->free(j->rq);
        session_unref(j->session);
        region_unref(d, j->m);
        pthread_mutex_destroy(&j->ps_lock);
        free(j);
}

/* The core's own measurement is in: nobody to answer, nothing to announce. */
static void measure_finish(struct daemon *d, struct job *j) {
        struct managed *m = j->m;

        m->resident_pending = false;
        if (j->result == 0) {
                m->resident_bytes = (uint64_t) j->bytes;
                m->resident_known = true;
                m->resident_usec = mono_usec();
        }
        job_free(d, j);
}

/* A job on no region (a Firecracker VM's page server): announced, answered, gone. */
static void vm_job_finish(struct daemon *d, struct job *j) {
        LIST_REMOVE(d->jobs, j);
        d->n_jobs--;
        notify_job_finished(d, j);
        if (j->rq && j->rq->ops->finished)
                j->rq->ops->finished(j->rq, j);
        log_info("job %" PRIu64 " (%s '%s') finished: %s", j->id, op_names[j->op], j->label, j->result ? j->message : "ok");
        job_free(d, j);
}

static void job_finish(struct daemon *d, struct job *j) {
        struct managed *m = j->m;
        uint64_t size;

        if (j->op == JOB_MEASURE) {
                measure_finish(d, j);
                return;
        }
        if (!m) {
                vm_job_finish(d, j);
                return;
        }
        size = gmem_region_size(m->region);
        /* off the list first: replies and region descriptions below no longer show it */
        LIST_REMOVE(d->jobs, j);
        d->n_jobs--;
        m->running_jobs--;
        if (j->fd >= 0) {
                close(j->fd);
                j->fd = -1;
        }
        if (j->result == 0 && (j->op == JOB_POPULATE || j->op == JOB_RESTORE))
                m->populated_bytes = MIN(size, m->populated_bytes + (uint64_t) j->bytes);
        if (j->result == 0 && j->op == JOB_RESTORE)
                region_set_state(d, m, GMEM_REGION_POPULATED);
        if (j->op == JOB_POPULATE && !m->released) {
                bool populating = false;
                /* another populate of this region still live (finished ones leave the list as they are answered) */
                for (struct job *o = d->jobs; o; o = o->next)
                        if (o->m == m && o->op == JOB_POPULATE)
                                populating = true;
                if (j->result < 0 && j->result != -ECANCELED)
                        region_set_state(d, m, GMEM_REGION_FAILED);
                else if (!populating)
                        region_set_state(d, m, m->populated_bytes ? GMEM_REGION_POPULATED : GMEM_REGION_EMPTY);
        }

        if (j->op != JOB_DUMP && j->op != JOB_SNAPSHOT)
                region_resident_changed(d, m);
        if (j->publish_on_success && j->result == 0 && m->released) {
                j->result = -ECANCELED;
                snprintf(j->message, sizeof(j->message), "%s '%s': released before its %s was done",
                         j->op == JOB_RESTORE ? "restore" : "create", m->name, op_names[j->op]);
        }
        /* before a prefaulted region is published: the job was not there for anyone but its requester */
        notify_job_finished(d, j);
        if (j->publish_on_success) {
                if (j->result == 0 && !m->released)
                        region_publish(d, m);
                else if (!m->released)
                        region_release(d, m);
        }
        if (j->rq && j->rq->ops->finished)
                j->rq->ops->finished(j->rq, j);
        log_debug("job %" PRIu64 " (%s '%s') finished: %s", j->id, op_names[j->op], m->name,
                  j->result ? j->message : "ok");
        job_free(d, j);
}

static void on_pool_event(evutil_socket_t fd, short what _unused_, void *userdata) {
        struct daemon *d = userdata;
        struct pool *p = &d->pool;
        struct job *done, *next;
        uint64_t v;

        (void) !read(fd, &v, sizeof(v));
        for (struct job *j = d->jobs; j; j = j->next) {
                if (__atomic_exchange_n(&j->started_pending, 0, __ATOMIC_ACQUIRE) && !j->started) {
                        j->started = true;
                        if (j->rq && j->rq->ops->started)
                                j->rq->ops->started(j->rq, j);
                }
                if (__atomic_exchange_n(&j->progress_pending, 0, __ATOMIC_ACQUIRE))
                        send_progress(d, j);
        }

        pthread_mutex_lock(&p->lock);
        done = p->done;
        p->done = NULL;
        pthread_mutex_unlock(&p->lock);
        for (; done; done = next) {
                next = done->qnext;
                job_finish(d, done);
        }
}

int pool_start(struct daemon *d) {
        struct pool *p = &d->pool;

        pthread_mutex_init(&p->lock, NULL);
        pthread_cond_init(&p->cond, NULL);
        p->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (p->efd < 0)
                return gmem_error(negative_errno(), "eventfd");
        p->ev = event_new(d->base, p->efd, EV_READ | EV_PERSIST, on_pool_event, d);
        if (!p->ev || event_add(p->ev, NULL) < 0)
                return gmem_error(-ENOMEM, "pool event");
        p->threads = calloc(d->config.workers, sizeof(pthread_t));
        if (!p->threads)
                return gmem_error(-ENOMEM, "worker threads");
        for (; p->n_threads < d->config.workers; p->n_threads++) {
                int k = pthread_create(&p->threads[p->n_threads], NULL, worker, p);
                if (k != 0)
                        return gmem_error(-k, "start worker thread %u", p->n_threads);
        }
        return 0;
}

void pool_stop(struct daemon *d) {
        struct pool *p = &d->pool;

        jobs_cancel_all(d);
        pthread_mutex_lock(&p->lock);
        p->stop = true;
        pthread_cond_broadcast(&p->cond);
        pthread_mutex_unlock(&p->lock);
        for (unsigned i = 0; i < p->n_threads; i++)
                pthread_join(p->threads[i], NULL);
        /* the page servers see the cancel within one poll */
        for (struct job *j = d->jobs; j; j = j->next)
                if (j->own_thread && !j->joined) {
                        pthread_join(j->thread, NULL);
                        j->joined = true;
                }
        free(p->threads);
        p->threads = NULL;
        p->n_threads = 0;
        /* every job is now on the done list: answer and free them */
        if (p->ev)
                on_pool_event(p->efd, 0, d);
        if (p->ev)
                event_free(p->ev);
        p->ev = NULL;
        if (p->efd >= 0)
                close(p->efd);
        p->efd = -1;
}

struct job *job_new(struct daemon *d, enum job_op op, struct managed *m, struct session *s, struct requester *rq) {
        struct job *j = calloc(1, sizeof(*j));

        if (!j) {
                if (rq)
                        rq->ops->free(rq);
                return NULL;
        }
        j->d = d;
        j->op = op;
        j->sent_done = j->sent_total = j->signaled_done = j->signaled_total = UINT64_MAX;
        pthread_mutex_init(&j->ps_lock, NULL);
        j->fd = -1;
        j->fd2 = -1;
        j->pidfd = -1;
        j->resume_fd = -1;
        j->fd3 = -1;
        j->m = m;
        if (m)
                m->refs++;
        j->session = session_ref(s);
        j->rq = rq;
        return j;
}

static void pool_queue(struct pool *p, struct job *j) {
        pthread_mutex_lock(&p->lock);
        if (p->queue_tail)
                p->queue_tail->qnext = j;
        else
                p->queue_head = j;
        p->queue_tail = j;
        pthread_cond_signal(&p->cond);
        pthread_mutex_unlock(&p->lock);
}

void job_measure(struct daemon *d, struct managed *m) {
        struct job *j;

        if (m->resident_pending || m->released || !d->pool.n_threads)
                return;
        j = job_new(d, JOB_MEASURE, m, NULL, NULL);
        if (!j)
                return;
        /* not on the job list: nobody sees it, nobody's limit counts it, and there is one per region */
        m->resident_pending = true;
        pool_queue(&d->pool, j);
}

/* root's work and page servers beyond what all other uids together may hold: whoever operates
 * gmemd can always act, however busy its users keep it */
#define ROOT_RESERVED_JOBS 4

/* May j have a slot of its class? Unprivileged uids share max_jobs (max_page_servers), each at
 * most its share; root is held only to the total plus its reserve. */
static int job_admit(struct daemon *d, const struct job *j) {
        bool server = job_op_is_server(j->op);
        const char *what = server ? "page servers" : "jobs";
        uint64_t max = server ? d->config.limits.max_page_servers : d->config.limits.max_jobs;
        uint64_t per_uid = server ? d->config.limits.max_page_servers_per_uid : d->config.limits.max_jobs_per_uid;
        uint64_t all = 0, unprivileged = 0, mine = 0;

        if (d->restoring) /* what ran before a restart runs again, whatever the limits are now */
                return 0;

        for (const struct job *o = d->jobs; o; o = o->next)
                if (job_op_is_server(o->op) == server) {
                        all++;
                        unprivileged += o->uid != 0;
                        mine += o->uid == j->uid;
                }
        if (j->uid == 0)
                return all >= max + ROOT_RESERVED_JOBS ?
                       gmem_error(-EBUSY, "%" PRIu64 " %s run or wait: every slot is taken, root's reserve too", all, what) : 0;
        if (unprivileged >= max)
                return gmem_error(-EBUSY, "%" PRIu64 " %s run or wait (limits.%s)", unprivileged, what,
                                  server ? "max_page_servers" : "max_jobs");
        if (mine >= per_uid)
                return gmem_error(-EBUSY, "uid %u has %" PRIu64 " %s running or waiting (limits.%s)", (unsigned) j->uid, mine,
                                  what, server ? "max_page_servers_per_uid" : "max_jobs_per_uid");
        return 0;
}

/* On failure the caller still owns j and frees it with job_discard(). */
int job_submit(struct daemon *d, struct job *j) {
        struct pool *p = &d->pool;
        int k;

        if ((k = job_admit(d, j)) < 0)
                return k;
        j->id = ++d->job_serial;
        j->total = j->len;
        LIST_PREPEND(d->jobs, j);
        d->n_jobs++;
        d->charged_total += j->charged;
        j->counted = true;
        if (j->m)
                j->m->running_jobs++;
        if (j->op == JOB_POPULATE)
                region_set_state(d, j->m, GMEM_REGION_POPULATING);
        if (j->op == JOB_SERVE || j->op == JOB_FIRECRACKER) {
                k = pthread_create(&j->thread, NULL, job_thread, j);
                if (k != 0) {
                        LIST_REMOVE(d->jobs, j);
                        d->n_jobs--;
                        d->charged_total -= j->charged;
                        j->counted = false;
                        if (j->m)
                                j->m->running_jobs--;
                        return gmem_error(-k, "page server thread");
                }
                j->own_thread = true;
                return 0;
        }
        pool_queue(p, j);
        log_debug("job %" PRIu64 ": %s '%s' %" PRIu64 "+%" PRIu64, j->id, op_names[j->op], job_subject(j), j->off, j->len);
        return 0;
}

void job_discard(struct daemon *d, struct job *j) {
        if (j)
                job_free(d, j);
}

struct job *job_find(struct daemon *d, uint64_t id) {
        for (struct job *j = d->jobs; j; j = j->next)
                if (j->id == id)
                        return j;
        return NULL;
}

int jobs_region_punch(struct daemon *d, struct managed *m, uint64_t off, uint64_t len, int (*punch)(void *), void *userdata) {
        struct job *j;
        int k;

        /* at most one page server fills a region's file (action_serve) */
        for (j = d->jobs; j; j = j->next)
                if (j->m == m && j->op == JOB_SERVE && j->shared)
                        break;
        if (!j)
                return punch(userdata);
        pthread_mutex_lock(&j->ps_lock);
        if (j->ps) /* marked and punched under the server's lock: no fill slips in between */
                k = page_server_discard(j->ps, off, len, punch, userdata);
        else if (j->n_pending_discards == ELEMENTSOF(j->pending_discards))
                k = gmem_error(-EBUSY, "the page server of '%s' is starting: try the punch again", m->name);
        else if ((k = punch(userdata)) >= 0) /* the server marks it when it is up, before it serves */
                j->pending_discards[j->n_pending_discards++] = (typeof(j->pending_discards[0])) { off, len };
        pthread_mutex_unlock(&j->ps_lock);
        return k;
}

void jobs_cancel_session(struct daemon *d, struct session *s) {
        for (struct job *j = d->jobs; j; j = j->next)
                if (j->session == s && !j->outlives_session)
                        __atomic_store_n(&j->cancel, 1, __ATOMIC_RELAXED);
}

void jobs_cancel_region(struct daemon *d, struct managed *m) {
        for (struct job *j = d->jobs; j; j = j->next)
                if (j->m == m)
                        __atomic_store_n(&j->cancel, 1, __ATOMIC_RELAXED);
}

void jobs_cancel_all(struct daemon *d) {
        for (struct job *j = d->jobs; j; j = j->next)
                __atomic_store_n(&j->cancel, 1, __ATOMIC_RELAXED);
}
