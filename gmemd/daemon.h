/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * gmemd's state. One libevent loop owns everything here; worker threads (jobs.c) touch only the
 * job they run and the libgmem region it names, and hand results back through an eventfd.
 */
#pragma once

#include <event2/event.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <cjson/cJSON.h>

#include "config.h"
#include "macro.h"
#include "gmem/gmem.h"
#include "protocol.h" /* PROTO_VERSION, PROTO_NAME_MAX, proto_name_valid() */

#define REGION_MAX_GRANTS 64
#define REGION_MAX_HOLDERS 32

struct outmsg {
        struct outmsg *next;
        char *text;
        size_t len;
        int fd; /* sent with the message, then closed; -1 for none */
};

/* Who is asking: from SO_PEERCRED/SO_PEERGROUPS on the socket, or the bus's credentials. The
 * supplementary groups, as many as the caller has (up to the kernel's NGROUPS_MAX), belong to
 * whoever made the peer: the connection (freed with it), or the bus reply a D-Bus call is answered
 * in. */
struct peer {
        uid_t uid;
        gid_t gid;
        pid_t pid;
        const gid_t *groups;
        unsigned n_groups;
};

struct conn {
        struct daemon *d;
        struct conn *prev, *next;
        int fd;
        uint64_t serial;
        struct peer peer;
        gid_t *groups;           /* peer.groups, owned here */
        struct event *ev_read, *ev_write;
        struct event *ev_close;  /* closes a broken connection from the loop, never from a send */
        struct outmsg *out_head, *out_tail;
        uint64_t n_out, n_out_bytes, n_out_fds; /* what waits in the queue */
        struct event *ev_hello;  /* closes a connection that never says hello */
        bool hello, watching, closed;
        bool broken;             /* nothing more is sent; closed on the next loop turn */
        unsigned refs; /* the connection list, and every job it started */
};

enum region_state {
        REGION_EMPTY,
        REGION_POPULATING,
        REGION_POPULATED,
        REGION_FAILED,
        _REGION_STATE_MAX,
};

struct holder {
        pid_t pid;
        uid_t uid;
        const char *role;   /* "created", "registered", "opened" */
        struct conn *conn;  /* NULL once that connection closed, or for a D-Bus caller */
};

struct managed {
        struct managed *prev, *next;
        char name[PROTO_NAME_MAX + 1];
        struct gmem_region *region;
        uid_t owner;
        uid_t grant_uids[REGION_MAX_GRANTS];
        unsigned n_grant_uids;
        gid_t grant_gids[REGION_MAX_GRANTS];
        unsigned n_grant_gids;
        enum gmem_policy policy;
        struct conn *creator;   /* for GMEM_POLICY_CONNECTION; NULL once gone */
        struct holder holders[REGION_MAX_HOLDERS];
        unsigned n_holders;
        enum region_state state;
        uint64_t populated_bytes;
        uint64_t created_usec;
        unsigned running_jobs;
        bool hidden;            /* being created with prefault: not visible yet */
        bool released;          /* out of the table; freed when the last job lets go */
        bool stored;            /* its fd is in systemd's fd store */
        unsigned refs;          /* the table, and every job on it */
};

enum job_op {
        JOB_POPULATE,
        JOB_PREFAULT,
        JOB_DUMP,
        _JOB_OP_MAX,
};

struct job {
        struct daemon *d;
        struct job *prev, *next;     /* all live jobs (loop only) */
        struct job *qnext;           /* pool queue / completion list (under the pool lock) */
        uint64_t id;
        enum job_op op;
        struct managed *m;
        struct conn *conn;           /* NULL once the client went away */
        uid_t uid;                   /* who asked: held to max_jobs_per_uid */
        cJSON *req_id;               /* the request's id, echoed in the reply */
        uint64_t off, len, fd_off;
        int fd;                      /* source (populate) or destination (dump) */
        bool publish_on_success;     /* create --prefault: reveal the region when done */
        void *dbus_data;             /* the D-Bus side's, for a job started over the bus */
        /* shared with the worker */
        int cancel;
        uint64_t done, total;
        int progress_pending;
        uint64_t last_signal_usec;
        int result;
        int64_t bytes;
        char message[512];
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
        struct event_base *base;
        char *socket_path;
        int listen_fd;
        bool listen_fd_owned;    /* we bound it (and unlink it at exit) */
        struct event *ev_listen, *ev_sigterm, *ev_sigint;
        struct event *ev_accept_pause; /* out of fds: accept() waits a moment instead of spinning */
        struct conn *conns;
        uint64_t n_conns, conn_serial;
        struct managed *regions;
        uint64_t n_regions;
        struct job *jobs;
        uint64_t n_jobs, job_serial;
        struct pool pool;
        uint64_t bytes_total;
        /* systemd: the fd store (store.c) and the watchdog */
        bool store_enabled;
        bool restoring;          /* rebuilding from the fd store: nothing to store again */
        bool stopping;           /* shutting down: closing connections releases nothing */
        char *state_dir;         /* region metadata lives in <state_dir>/regions */
        struct event *ev_watchdog;
        uint64_t watchdog_usec;
        void *dbus;              /* dbus.c's state */
};

/* server.c */
int server_listen(struct daemon *d);
/* Serve on a listening socket handed over by systemd (socket activation). */
int server_adopt_listen_fd(struct daemon *d, int fd);
void server_stop(struct daemon *d);
void conn_unref(struct conn *c);
/* Queue a message (takes text; fd is sent then closed, -1 for none). */
void conn_send(struct conn *c, char *text, int fd);
void conn_send_json(struct conn *c, cJSON *msg, int fd); /* consumes msg */
void conn_reply_error(struct conn *c, const cJSON *req_id, int err, const char *message);
void conn_reply_ok(struct conn *c, const cJSON *req_id, cJSON *members, int fd); /* consumes members */

/* regions.c */
struct managed *region_find(struct daemon *d, const char *name); /* hidden ones too */
/* owner: who creates or registers it; c: their socket connection, NULL over D-Bus. */
int region_add(struct daemon *d, const char *name, struct gmem_region *r, const struct peer *owner, struct conn *c,
               enum gmem_policy policy, const char *role, bool hidden, struct managed **ret);
void region_publish(struct daemon *d, struct managed *m);
void region_release(struct daemon *d, struct managed *m);
void regions_free_all(struct daemon *d);
void region_unref(struct daemon *d, struct managed *m);
enum access { ACCESS_USE, ACCESS_ADMIN };
bool region_may(const struct peer *p, const struct managed *m, enum access a);
void region_add_holder(struct managed *m, const struct peer *p, struct conn *c, const char *role);
void region_conn_closed(struct daemon *d, struct conn *c);
/* measure: include resident_bytes, which may walk every page (list and info ask for it). */
cJSON *region_to_json(struct daemon *d, const struct managed *m, bool measure);
/* bytes of the regions uid owns, and (ret_count, may be NULL) how many */
uint64_t region_bytes_of_uid(struct daemon *d, uid_t uid, uint64_t *ret_count);
void region_set_state(struct daemon *d, struct managed *m, enum region_state s);
const char *region_state_to_string(enum region_state s);

/* jobs.c */
int pool_start(struct daemon *d);
void pool_stop(struct daemon *d);
int job_submit(struct daemon *d, struct job *j);
struct job *job_new(struct daemon *d, enum job_op op, struct managed *m, struct conn *c, const cJSON *req_id);
struct job *job_find(struct daemon *d, uint64_t id);
void jobs_cancel_conn(struct daemon *d, struct conn *c);
void jobs_cancel_region(struct daemon *d, struct managed *m);
void jobs_cancel_all(struct daemon *d);
void job_discard(struct daemon *d, struct job *j);
const char *job_op_name(enum job_op op);

/* ops.c */
void dispatch(struct conn *c, cJSON *req, int *fds, unsigned n_fds);

uint64_t now_usec(void);
