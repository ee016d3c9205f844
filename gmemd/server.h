/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The socket front end: listening, connections, framing (one JSON object per SEQPACKET message,
 * fds as SCM_RIGHTS) and per-connection output queues (server.c); the protocol's operations, its
 * job requester and its watchers (ops.c). Each connection is a session of the core.
 */
#pragma once

#include <cjson/cJSON.h>

#include "daemon.h"

struct outmsg {
        struct outmsg *next;
        char *text;
        size_t len;
        int fd; /* sent with the message, then closed; -1 for none */
        bool raised; /* the send buffer was raised for it once */
};

struct server;

struct conn {
        struct server *srv;
        struct daemon *d;
        struct conn *prev, *next;
        int fd;
        uint64_t serial;
        struct session *session; /* who is on the other end, for the core */
        const struct peer *peer; /* &session->peer */
        struct event *ev_read, *ev_write;
        struct event *ev_close;  /* closes a broken connection from the loop, never from a send */
        struct outmsg *out_head, *out_tail;
        uint64_t n_out, n_out_bytes, n_out_fds; /* what waits in the queue */
        struct event *ev_hello;  /* closes a connection that never says hello */
        struct event *ev_retry;  /* a message held back (fds in flight), or a raised buffer to lower */
        uint64_t fds_sent;       /* fds sent since the kernel's queue was last seen empty */
        int sndbuf;              /* the kernel's default send buffer (as getsockopt says it) */
        bool sndbuf_raised;
        bool hello, watching, closed;
        bool broken;             /* nothing more is sent; closed on the next loop turn */
        bool read_paused;        /* replies wait for the client to read: no new requests until they are out */
        unsigned refs;           /* the connection list, and every request of it still running */
};

/* A closed connection whose peer still has fds of ours unread: they count against the kernel's limit
 * until it reads them or closes, so its socket is kept (off the loop) and they are still counted. */
struct lingering {
        int fd;
        uid_t uid;
        uint64_t fds;
};

struct server {
        struct daemon *d;
        char *socket_path;
        int listen_fd;
        bool listen_fd_owned;    /* we bound it (and unlink it at exit) */
        struct event *ev_listen;
        struct event *ev_accept_pause; /* out of fds: accept() waits a moment instead of spinning */
        struct conn *conns;
        uint64_t n_conns, conn_serial;
        struct lingering *lingering;
        size_t n_lingering, cap_lingering;
        struct event *ev_lingering;       /* re-checks them until their peers have read or gone */
        uint64_t inflight_checked_usec;   /* when SIOCOUTQ was last asked of every connection */
};

/* Listen on path (bound here), or serve on fd, a listening socket handed over by systemd. */
int server_listen(struct daemon *d, const char *path, struct server **ret);
int server_adopt_listen_fd(struct daemon *d, int fd, struct server **ret);
/* Closes every connection (releasing nothing: the daemon stops) and the socket. NULL-safe. */
struct server *server_free(struct server *srv);

struct conn *conn_ref(struct conn *c);
void conn_unref(struct conn *c);
/* Queue a message (takes text; fd is sent then closed, -1 for none). */
void conn_send(struct conn *c, char *text, int fd);
void conn_send_json(struct conn *c, cJSON *msg, int fd); /* consumes msg */
/* An event a later one makes stale (progress): sent only if nothing waits in the queue and the
 * socket takes it at once, else dropped. A client that does not read loses these, never its
 * connection (nor the page server it asked for). Takes text. */
void conn_send_droppable(struct conn *c, char *text);
void conn_reply_error(struct conn *c, const cJSON *req_id, int err, const char *message);
void conn_reply_ok(struct conn *c, const cJSON *req_id, cJSON *members, int fd); /* consumes members */

/* ops.c */
void dispatch(struct conn *c, cJSON *req, int *fds, unsigned n_fds);
/* the socket's watchers hear the core's events */
int ops_watch_start(struct server *srv);
void ops_watch_stop(struct server *srv);
