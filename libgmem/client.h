/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The client side of the gmemd protocol (docs/protocol.md), in three pieces:
 *  - client-socket.c: the socket path, connecting, one datagram (+ fds) out and in;
 *  - client-call.c:   one request and its reply, with progress, cancellation and events in between;
 *  - client-events.c: the queue of events that arrived while a call waited, and next_event;
 * and client.c, the public operations on top. A client is used by one thread at a time.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "gmem/gmem.h"
#include "macro.h"
#include "protocol.h"

/* what we read in one go; longer replies (a long list) are sized by peeking first */
#define CLIENT_BUFFER_SIZE (64 * 1024)
/* a reply longer than this is not from a sane daemon */
#define CLIENT_MESSAGE_MAX (16 * 1024 * 1024)
/* fds we accept on one message; the protocol sends at most one, extras are closed */
#define CLIENT_FDS_MAX 16
/* events kept for gmem_client_next_event() while nobody takes them; the oldest go first */
#define CLIENT_EVENTS_MAX 1024
/* fds named with gmem_client_name_fd() */
#define CLIENT_FD_NAMES_MAX 16

struct gmem_client {
        int fd;
        uint64_t next_id;
        unsigned version;              /* negotiated in hello */
        gmem_progress_fn progress;
        void *userdata;
        char *buf;                     /* receive buffer */
        size_t buf_size;
        char *events[CLIENT_EVENTS_MAX]; /* ring of event texts */
        size_t events_head, n_events;
        uint64_t events_dropped;
        struct {
                int fd;
                char *name;
        } fd_names[CLIENT_FD_NAMES_MAX];
        size_t n_fd_names;
};

/* One received message: its text, parsed, and the fds that came with it. */
struct gmem_client_msg {
        char *text;
        cJSON *json;
        int fds[CLIENT_FDS_MAX];
        size_t n_fds;
};

void gmem_client_msg_done(struct gmem_client_msg *m); /* closes the fds, frees the rest */
/* The name gmem_client_name_fd() gave fd, or NULL. */
const char *gmem_client_fd_name(const struct gmem_client *c, int fd);
/* Take the first fd (the others are closed when the message is done), or -1. */
int gmem_client_msg_take_fd(struct gmem_client_msg *m);

/* client-socket.c */
int gmem_client_socket_connect(const char *path, int *ret_fd);
/* Send text (+ fd when fd >= 0); what names the call for messages. */
int gmem_client_send(struct gmem_client *c, const char *what, const char *text, const int *fds, size_t n_fds);
/* Wait up to timeout_ms (< 0: for ever) for the next message: 0 and *ret, -ETIME on timeout,
 * -EINTR when a signal came (left to the caller: it may want to cancel), else a transport error. */
int gmem_client_recv(struct gmem_client *c, const char *what, int timeout_ms, struct gmem_client_msg *ret);

/* client-call.c */
/* Send req (adds "id"), wait for its reply. Progress events for it go to c->progress; other events
 * are queued. On {"ok":true} *ret_reply gets the reply (cJSON_Delete() it) and, when ret_fd is
 * given, *ret_fd the fd that came with it (required). On {"ok":false} the daemon's errno and
 * message. send_fd (>= 0) travels with the request; it stays the caller's. */
int gmem_client_call(struct gmem_client *c, const char *what, cJSON *req, int send_fd, cJSON **ret_reply, int *ret_fd);
/* The same with n_fds fds (at most FD_PASS_MAX) travelling with the request. */
int gmem_client_call_fds(struct gmem_client *c, const char *what, cJSON *req, const int *send_fds, size_t n_fds,
                         cJSON **ret_reply, int *ret_fd);
/* The integer member name of obj: 0, -ENOENT when absent, -EPROTO when not a non-negative integer. */
int gmem_json_get_u64(const cJSON *obj, const char *name, uint64_t *ret);

/* client-events.c */
void gmem_client_events_push(struct gmem_client *c, const char *text);
char *gmem_client_events_pop(struct gmem_client *c);
void gmem_client_events_clear(struct gmem_client *c);


/* region-info.c: gmemd's region objects as struct gmem_region_info, one or a list */
int gmem_region_info_parse(const cJSON *o, const char *what, struct gmem_region_info **ret);
int gmem_region_list_parse(const cJSON *a, struct gmem_region_list **ret);
