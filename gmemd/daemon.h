/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * gmemd's core: the state every module shares. One libevent loop owns it; worker threads
 * (jobs.c) touch only the job they run and the libgmem region it names.
 *
 * The core (this header, session, region, job, notify, actions) knows no front end. The socket
 * (server.c, ops.c) and D-Bus (dbus.c) front ends and the fd store (store.c) call into it; it
 * calls back only through the interfaces it defines: a job's requester (job.h) and the
 * subscribers to its events (notify.h).
 */
#pragma once

#include <event2/event.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "config.h"
#include "macro.h"
#include "gmem/gmem.h"
#include "protocol.h" /* PROTO_VERSION, PROTO_NAME_MAX, proto_name_valid() */

struct session;
struct managed;
struct job;
struct subscriber_ops;

/* Who is asking: from SO_PEERCRED/SO_PEERGROUPS on the socket, or the bus's credentials. */
struct peer {
        uid_t uid;
        gid_t gid;
        pid_t pid;
        const gid_t *groups; /* supplementary groups, as many as the caller has; owned by its session */
        unsigned n_groups;
};

#define NOTIFY_MAX_SUBSCRIBERS 8

struct subscription {
        const struct subscriber_ops *ops;
        void *userdata;
};

struct pool {
        pthread_t *threads;
        unsigned n_threads;
        pthread_mutex_t lock;
        pthread_cond_t cond;
        struct job *queue_head, *queue_tail;
        struct job *done;
        bool stop;
        int efd;                 /* eventfd: the loop learns of progress and completions */
        struct event *ev;
};

struct daemon {
        struct gmemd_config config;
        struct gmem_host_caps *caps; /* the kernel as probed at start with config.kernel_profile */
        struct warm *warm;           /* warm pools (warm.c), NULL without */
        struct event_base *base;
        struct session *sessions;
        uint64_t n_sessions, session_serial;
        struct managed *regions;
        uint64_t n_regions;
        uint64_t bytes_total;
        uint64_t charged_total;  /* the jobs' metadata (struct job's charged), counted with bytes_total */
        struct job *jobs;
        uint64_t n_jobs, job_serial;
        struct pool pool;
        struct subscription subscribers[NOTIFY_MAX_SUBSCRIBERS];
        unsigned n_subscribers;
        bool restoring;          /* rebuilding from the fd store: no limits, nothing stored again */
        bool stopping;           /* shutting down: sessions ending release nothing */
        /* the fd store (store.c) */
        bool store_enabled;
        char *state_dir;         /* region metadata lives in <state_dir>/regions */
};
