/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Long work on guest memory (populate, prefault, dump) on a bounded pool of worker threads.
 *
 * A job reports to its requester: an interface the front end that started it implements (the
 * socket answers on the request's stream; D-Bus emits its job signals). The core never looks
 * inside a requester; it calls progress() now and then, finished() once, and free() when the job
 * is gone. Everyone else hears of jobs through the subscribers (notify.h).
 */
#pragma once

#include "daemon.h"
#include "protocol.h"

enum job_op {
        JOB_POPULATE,
        JOB_PREFAULT,
        JOB_DUMP,
        JOB_SNAPSHOT,    /* the region into a snapshot file (fd) */
        JOB_RESTORE,     /* a snapshot file (fd) into the region */
        JOB_SERVE,       /* a page server (uffd in fd2, snapshot in fd) on a thread of its own, until cancelled */
        JOB_FIRECRACKER, /* a page server for a Firecracker VM (listening socket in fd2, source in fd), on no region */
        JOB_MEASURE,     /* the core's own: a region's resident bytes, off the loop; no requester */
        JOB_OP_COUNT,
};

struct requester;
struct requester_ops {
        /* A page server job is up (its source read and checked): what was asked is running. Optional. */
        void (*started)(struct requester *rq, const struct job *j);
        void (*progress)(struct requester *rq, const struct job *j, uint64_t done, uint64_t total);
        /* The job is over: j->result, j->bytes, j->message. For a create with prefault the region
         * is published (result 0) or released by now. */
        void (*finished)(struct requester *rq, const struct job *j);
        void (*free)(struct requester *rq);
};
struct requester {
        const struct requester_ops *ops;
};

struct job {
        struct daemon *d;
        struct job *prev, *next;     /* all live jobs (loop only) */
        struct job *qnext;           /* pool queue / completion list (under the pool lock) */
        uint64_t id;
        enum job_op op;
        struct managed *m;           /* NULL for JOB_FIRECRACKER: the memory is the VM's own */
        char label[PROTO_NAME_MAX + 1]; /* JOB_FIRECRACKER: the VM's name, shown where a region's would be */
        struct session *session;     /* who asked (a ref); its end cancels the job unless it outlives it */
        bool outlives_session;       /* JOB_FIRECRACKER: the VM's hang-up ends it, not the requester's */
        struct requester *rq;        /* owned; NULL for the core's own jobs */
        uid_t uid;                   /* who asked: held to max_jobs_per_uid (max_page_servers_per_uid) */
        uint64_t charged;            /* bytes of metadata it holds (an extent table, a page server's state),
                                      * counted against its uid's max_bytes_per_uid like a region's */
        bool counted;                /* submitted: its slot and charge are the daemon's count */
        /* What was charged for (serve, firecracker): the snapshot's extents and the source's size as
         * its header said when the job was admitted; a source that grew since is refused. */
        uint64_t meta_extents, meta_size;
        /* JOB_SERVE, shared: punches of the region made while its page server was not up yet,
         * marked in the server once it is (under ps_lock) */
        struct { uint64_t off, len; } pending_discards[16];
        unsigned n_pending_discards;
        uint64_t off, len, fd_off;
        int fd;                      /* source (populate) or destination (dump) */
        int fd2;                     /* JOB_SERVE: the VMM's userfaultfd; JOB_FIRECRACKER: the listening socket */
        uint64_t flags;              /* JOB_FIRECRACKER: gmem_page_server_new_mapped() flags */
        /* JOB_SERVE across restarts (store.c): the VMM's pidfd (its exit ends the job), the page
         * server's state to resume from (a restored job), and the job's name in the fd store. */
        int pidfd;
        int resume_fd;
        char token[17];
        /* JOB_FIRECRACKER brought back: fd2 is the VM's connection, fd3 its uffd, maps its regions */
        int fd3;
        struct gmem_uffd_mapping *maps;
        size_t n_maps;
        int timeout_ms;              /* JOB_FIRECRACKER: how long to wait for the VM to connect */
        bool shared;                 /* JOB_SERVE: the VMM maps the region's file (MINOR faults possible) */
        /* JOB_SERVE: its page server while it runs, for a punch of the region to reach (under ps_lock) */
        pthread_mutex_t ps_lock;
        struct gmem_page_server *ps;
        bool no_prefetch;            /* JOB_SERVE: faults only */
        bool own_thread;             /* JOB_SERVE: runs on thread, joined when it finishes */
        bool joined;
        pthread_t thread;
        bool publish_on_success;     /* create --prefault: reveal the region when done */
        /* shared with the worker */
        int cancel;
        uint64_t done, total;
        int progress_pending;
        int started_pending;         /* job_started() was called: the loop tells the requester */
        bool started;
        uint64_t last_signal_usec;
        uint64_t signaled_done, signaled_total; /* the worker's last signal (progress only when it changed) */
        uint64_t sent_done, sent_total;         /* the loop's last event */
        int result;
        int64_t bytes;
        char message[512];
};

int pool_start(struct daemon *d);
void pool_stop(struct daemon *d);
/* The metadata uid's jobs hold (their charged bytes). */
uint64_t jobs_charged_of_uid(struct daemon *d, uid_t uid);
/* Is op a page server (it waits on a VMM, not on work: a slot class of its own)? */
bool job_op_is_server(enum job_op op);
/* Worker or page server thread: what was asked runs now (the requester's started() is called). */
void job_started(struct job *j);
/* A job of op on m for session s; rq (taken, may be NULL) hears of it. */
struct job *job_new(struct daemon *d, enum job_op op, struct managed *m, struct session *s, struct requester *rq);
/* On failure the caller still owns j and frees it with job_discard(). */
int job_submit(struct daemon *d, struct job *j);
void job_discard(struct daemon *d, struct job *j);
struct job *job_find(struct daemon *d, uint64_t id);
/* Queue a measurement of m's resident bytes (region_resident()); nothing if one is queued. */
void job_measure(struct daemon *d, struct managed *m);
/* Punch [off, off+len) of m with punch(userdata), so that a page server filling m's file never puts
 * back what is punched: under its lock (what it had not served yet is served as zeroes from then
 * on; a failed punch takes that back), or marked for it when it is up. punch's result, or -EBUSY
 * with nothing changed when the server does not let go. */
int jobs_region_punch(struct daemon *d, struct managed *m, uint64_t off, uint64_t len, int (*punch)(void *), void *userdata);
void jobs_cancel_session(struct daemon *d, struct session *s);
void jobs_cancel_region(struct daemon *d, struct managed *m);
void jobs_cancel_all(struct daemon *d);
const char *job_op_name(enum job_op op);
/* What the job is on: its region's name, or the Firecracker VM's. */
const char *job_subject(const struct job *j);
/* Is the job gone for everyone but its requester (its region released)? */
bool job_hidden(const struct job *j);
