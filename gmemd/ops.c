/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The protocol's operations (docs/protocol.md): each parses its request and calls the core's
 * action for the connection's session, which checks rights and input before it changes anything;
 * a failure is answered with the errno's name and a message. Also the socket's job requester (a
 * job answers on its request's stream) and its watchers (the core's events as JSON). */
#include <ctype.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "actions.h"
#include "errno-name.h"
#include "error.h"
#include "json-util.h"
#include "log.h"
#include "notify.h"
#include "server.h"
#include "warm.h"

/* ---------------------------------------------------------------------------------------------
 * The caller's name for the fd it passed: "fd 11" in a message is gmemd's own number, which means
 * nothing to the client; a request's "fd_name" (the file's path, say, as the user gave it) takes its
 * place in the messages that go back to that client (its replies and its job's end; watchers and
 * the bus hear the plain message: the name is the client's business).
 */

struct fd_name {
        int fd;                         /* gmemd's number of the request's first fd; -1: no name */
        char name[PROTO_FD_NAME_MAX + 1];
};

static int fd_name_parse(const cJSON *req, const int *fds, unsigned n_fds, struct fd_name *ret) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(req, "fd_name");
        int k;

        ret->fd = -1;
        if (!v)
                return 0;
        if (!cJSON_IsString(v))
                return gmem_error(-EINVAL, "'fd_name' must be a string");
        if (!n_fds)
                return gmem_error(-EINVAL, "'fd_name' names the request's file descriptor, and it has none");
        if ((k = proto_check_fd_name(v->valuestring)) < 0)
                return gmem_error_wrap(k, "'fd_name'");
        ret->fd = fds[0];
        strcpy(ret->name, v->valuestring); /* checked: it fits */
        return 0;
}

/* msg with every "fd N" (N the named fd, a whole number) as 'NAME'; NULL: msg as it is (no name,
 * or no memory) */
static char *fd_name_apply(const struct fd_name *f, const char *msg) {
        char token[32], *out, *o;
        size_t tn, n = 0;
        const char *p;

        if (!f || f->fd < 0 || !msg)
                return NULL;
        tn = (size_t) snprintf(token, sizeof(token), "fd %d", f->fd);
        for (p = msg; (p = strstr(p, token)); p += tn)
                n++;
        if (!n || !(out = malloc(strlen(msg) + n * (strlen(f->name) + 2) + 1)))
                return NULL;
        for (o = out, p = msg; *p;) {
                bool whole = strncmp(p, token, tn) == 0 && (p == msg || !isalnum((unsigned char) p[-1])) &&
                             !isdigit((unsigned char) p[tn]);
                if (whole) {
                        o += sprintf(o, "'%s'", f->name);
                        p += tn;
                } else
                        *o++ = *p++;
        }
        *o = 0;
        return out;
}

static void reply_error_named(struct conn *c, const cJSON *id, int err, const char *msg, const struct fd_name *f) {
        _cleanup_free_ char *named = fd_name_apply(f, msg);
        conn_reply_error(c, id, err, named ?: msg);
}

/* ---------------------------------------------------------------------------------------------
 * The requester: a job started on the socket answers its request when it is done, and reports
 * progress on the same stream while it runs.
 */

struct sock_request {
        struct requester rq;
        struct conn *c;
        cJSON *id;
        bool on_start;   /* a page server: answered when it is up (started()), its end an event */
        bool answered;
        struct fd_name fd_name;
};

/* "region": NAME, or "vm": NAME for a Firecracker VM's page server */
static void job_add_subject(cJSON *ev, const struct job *j) {
        cJSON_AddStringToObject(ev, j->m ? "region" : "vm", job_subject(j));
}

static void request_started(struct requester *rq, const struct job *j) {
        struct sock_request *r = (struct sock_request *) rq;
        cJSON *members;

        if (r->c->closed || !r->on_start || r->answered)
                return;
        members = cJSON_CreateObject();
        json_add_u64(members, "job", j->id);
        conn_reply_ok(r->c, r->id, members, -1);
        r->answered = true;
}

static void request_progress(struct requester *rq, const struct job *j, uint64_t done, uint64_t total) {
        struct sock_request *r = (struct sock_request *) rq;
        cJSON *ev;

        if (r->c->closed)
                return;
        ev = cJSON_CreateObject();
        cJSON_AddStringToObject(ev, "event", "progress");
        cJSON_AddItemToObject(ev, "id", proto_id_copy(r->id));
        json_add_u64(ev, "job", j->id);
        cJSON_AddStringToObject(ev, "op", job_op_name(j->op));
        job_add_subject(ev, j);
        json_add_u64(ev, "done", done);
        json_add_u64(ev, "total", total);
        conn_send_droppable(r->c, cJSON_PrintUnformatted(ev));
        cJSON_Delete(ev);
}

static void request_finished(struct requester *rq, const struct job *j) {
        struct sock_request *r = (struct sock_request *) rq;
        cJSON *members;

        if (r->c->closed)
                return;
        if (r->answered) {
                cJSON *ev = cJSON_CreateObject();
                cJSON_AddStringToObject(ev, "event", "finished");
                cJSON_AddItemToObject(ev, "id", proto_id_copy(r->id));
                json_add_u64(ev, "job", j->id);
                cJSON_AddStringToObject(ev, "op", job_op_name(j->op));
                job_add_subject(ev, j);
                cJSON_AddBoolToObject(ev, "ok", j->result == 0);
                if (j->result < 0) {
                        _cleanup_free_ char *named = fd_name_apply(&r->fd_name, j->message);
                        cJSON *e = cJSON_AddObjectToObject(ev, "error");
                        cJSON_AddStringToObject(e, "code", errno_to_name(j->result));
                        cJSON_AddStringToObject(e, "message", named ?: j->message);
                } else
                        json_add_u64(ev, "bytes", (uint64_t) j->bytes);
                conn_send_json(r->c, ev, -1);
                return;
        }
        if (j->result < 0) {
                reply_error_named(r->c, r->id, j->result, j->message, &r->fd_name);
                return;
        }
        members = cJSON_CreateObject();
        if (j->publish_on_success) /* create --prefault: the region, now there for everyone */
                cJSON_AddItemToObject(members, "region", region_to_json(j->d, j->m, REGION_JSON_REPLY));
        else {
                json_add_u64(members, "job", j->id);
                if (j->op != JOB_PREFAULT)
                        json_add_u64(members, "bytes", (uint64_t) j->bytes);
        }
        conn_reply_ok(r->c, r->id, members, -1);
}

static void request_free(struct requester *rq) {
        struct sock_request *r = (struct sock_request *) rq;
        cJSON_Delete(r->id);
        conn_unref(r->c);
        free(r);
}

static const struct requester_ops request_ops = {
        .started = request_started,
        .progress = request_progress,
        .finished = request_finished,
        .free = request_free,
};

static struct requester *request_new(struct conn *c, const cJSON *id, const struct fd_name *f) {
        struct sock_request *r = calloc(1, sizeof(*r));

        if (!r)
                return NULL;
        r->rq.ops = &request_ops;
        r->fd_name = *f;
        r->id = id ? cJSON_Duplicate(id, true) : cJSON_CreateNull(); /* as it came: replies copy it exactly */
        r->c = conn_ref(c);
        return &r->rq;
}

/* ---------------------------------------------------------------------------------------------
 * Watchers: a connection that asked to watch hears of every region it may see.
 */

/* To every watcher that may see the region (m NULL: a job on no region, for root and the uid
 * whose job it is); consumes ev. */
static void to_watchers(struct server *srv, const struct managed *m, uid_t owner, cJSON *ev, bool droppable) {
        _cleanup_free_ char *text = ev ? cJSON_PrintUnformatted(ev) : NULL;

        cJSON_Delete(ev);
        if (!text)
                return;
        /* conn_send never closes a connection under us: a broken one is closed from the loop later */
        for (struct conn *c = srv->conns; c; c = c->next)
                if (c->watching && (m ? region_may(c->peer, m, ACCESS_USE) : c->peer->uid == 0 || c->peer->uid == owner)) {
                        if (droppable)
                                conn_send_droppable(c, strdup(text));
                        else
                                conn_send(c, strdup(text), -1);
                }
}

static cJSON *region_event(const char *event, const struct managed *m) {
        cJSON *ev = cJSON_CreateObject();
        cJSON_AddStringToObject(ev, "event", event);
        cJSON_AddStringToObject(ev, "region", m->name);
        return ev;
}

static cJSON *job_event(const char *event, const struct job *j) {
        cJSON *ev = cJSON_CreateObject();
        cJSON_AddStringToObject(ev, "event", event);
        json_add_u64(ev, "job", j->id);
        cJSON_AddStringToObject(ev, "op", job_op_name(j->op));
        job_add_subject(ev, j);
        return ev;
}

static void watch_region_added(void *userdata, struct managed *m) {
        to_watchers(userdata, m, 0, region_event("region-added", m), false);
}

static void watch_region_removed(void *userdata, struct managed *m) {
        to_watchers(userdata, m, 0, region_event("region-removed", m), false);
}

static void watch_region_changed(void *userdata, struct managed *m) {
        cJSON *ev = region_event("region-changed", m);
        cJSON_AddStringToObject(ev, "state", gmem_region_state_to_string(m->state));
        to_watchers(userdata, m, 0, ev, false);
}

static void watch_job_progress(void *userdata, struct job *j, uint64_t done, uint64_t total) {
        cJSON *ev = job_event("job-progress", j);
        json_add_u64(ev, "done", done);
        json_add_u64(ev, "total", total);
        to_watchers(userdata, j->m, j->uid, ev, true);
}

static void watch_job_finished(void *userdata, struct job *j) {
        cJSON *ev = job_event("job-finished", j);
        cJSON_AddBoolToObject(ev, "ok", j->result == 0);
        if (j->result == 0)
                json_add_u64(ev, "bytes", (uint64_t) j->bytes);
        else
                cJSON_AddStringToObject(ev, "error", j->message);
        to_watchers(userdata, j->m, j->uid, ev, false);
}

static const struct subscriber_ops watch_ops = {
        .region_added = watch_region_added,
        .region_removed = watch_region_removed,
        .region_changed = watch_region_changed,
        .job_progress = watch_job_progress,
        .job_finished = watch_job_finished,
};

int ops_watch_start(struct server *srv) {
        return notify_subscribe(srv->d, &watch_ops, srv);
}

void ops_watch_stop(struct server *srv) {
        notify_unsubscribe(srv->d, &watch_ops, srv);
}

/* ---------------------------------------------------------------------------------------------
 * The operations
 */

struct op_ctx {
        struct daemon *d;
        struct conn *c;
        struct session *s;
        const struct peer *p;
        const cJSON *req;
        const cJSON *id;
        int *fds;          /* an op takes an fd by setting its slot to -1 */
        unsigned n_fds;
        struct fd_name fd_name;
};

static int take_fd(struct op_ctx *x, unsigned i) {
        int fd = x->fds[i];
        x->fds[i] = -1;
        return fd;
}

static void reply_region(struct op_ctx *x, struct managed *m, int fd, enum region_json what) {
        cJSON *members = cJSON_CreateObject();
        cJSON_AddItemToObject(members, "region", region_to_json(x->d, m, what));
        conn_reply_ok(x->c, x->id, members, fd);
}

static int lookup(struct op_ctx *x, enum access a, const char *what, struct managed **ret) {
        const char *name;
        int k = json_get_str(x->req, "name", true, NULL, &name);
        return k < 0 ? k : action_lookup(x->d, x->p, name, a, what, ret);
}

static int parse_policy(const cJSON *req, enum gmem_policy *ret) {
        const char *p;
        int k = json_get_str(req, "policy", false, "keep", &p);
        if (k < 0)
                return k;
        return gmem_policy_from_string(p, ret);
}

static int op_hello(struct op_ctx *x) {
        uint64_t version;
        cJSON *r, *limits;
        int k = json_get_u64(x->req, "version", false, PROTO_VERSION, &version);

        if (k < 0)
                return k;
        if (version < 1)
                return gmem_error(-EPROTONOSUPPORT, "protocol version %" PRIu64 " (this gmemd speaks 1)", version);
        x->c->hello = true;
        r = cJSON_CreateObject();
        json_add_u64(r, "version", MIN(version, (uint64_t) PROTO_VERSION));
        cJSON_AddStringToObject(r, "server", "gmemd " GMEM_VERSION_STRING);
        json_add_u64(r, "uid", x->p->uid);
        limits = cJSON_AddObjectToObject(r, "limits");
        json_add_u64(limits, "max_message_bytes", x->d->config.limits.max_message_bytes);
        json_add_u64(limits, "max_fds_per_message", x->d->config.limits.max_fds_per_message);
        conn_reply_ok(x->c, x->id, r, -1);
        return 0;
}

static int op_caps(struct op_ctx *x) {
        _cleanup_free_ char *json = NULL;
        cJSON *r;
        int k = action_caps(x->d, &json);

        if (k < 0)
                return k;
        r = cJSON_CreateObject();
        cJSON_AddItemToObject(r, "caps", cJSON_Parse(json));
        cJSON_AddItemToObject(r, "warm", warm_to_json(x->d)); /* the warm pools, as they stand */
        conn_reply_ok(x->c, x->id, r, -1);
        return 0;
}

static int op_create(struct op_ctx *x) {
        struct requester *rq = NULL;
        struct create_args a = {};
        const char *backend_name;
        struct managed *m;
        struct job *j;
        int k;

        if ((k = json_get_str(x->req, "name", true, NULL, &a.name)) < 0 ||
            (k = json_get_u64(x->req, "size", true, 0, &a.size)) < 0 ||
            (k = json_get_str(x->req, "backend", false, "memfd", &backend_name)) < 0 ||
            (k = json_get_u64(x->req, "page_size", false, 0, &a.page_size)) < 0 ||
            (k = json_get_bool(x->req, "prefault", false, &a.prefault)) < 0 ||
            (k = parse_policy(x->req, &a.policy)) < 0 ||
            (k = gmem_backend_from_string(backend_name, &a.backend)) < 0)
                return k;
        if ((k = proto_check_page_size(a.backend, cJSON_GetObjectItemCaseSensitive(x->req, "page_size") != NULL)) < 0)
                return gmem_error_wrap(k, "create '%s'", a.name);
        if (a.prefault && !(rq = request_new(x->c, x->id, &x->fd_name)))
                return gmem_error(-ENOMEM, "create '%s': request", a.name);
        k = action_create(x->d, x->s, &a, rq, &m, &j);
        if (k < 0)
                return k;
        if (!j) /* with prefault, the job answers when the memory is in */
                reply_region(x, m, -1, REGION_JSON_REPLY);
        return 0;
}

static int op_register(struct op_ctx *x) {
        const cJSON *flags_item = cJSON_GetObjectItemCaseSensitive(x->req, "flags");
        enum gmem_policy policy;
        struct managed *m;
        const char *name;
        uint64_t flags;
        int k;

        if ((k = json_get_str(x->req, "name", true, NULL, &name)) < 0 ||
            (k = json_get_u64(x->req, "flags", false, 0, &flags)) < 0 ||
            (k = parse_policy(x->req, &policy)) < 0)
                return k;
        /* the fd is borrowed: the region keeps a dup, and dispatch() closes ours */
        k = action_register(x->d, x->s, name, x->fds[0], flags_item && !cJSON_IsNull(flags_item), flags, policy, &m);
        if (k < 0)
                return k;
        reply_region(x, m, -1, REGION_JSON_REPLY);
        return 0;
}

static int op_open(struct op_ctx *x) {
        struct managed *m;
        int fd, k;

        if ((k = lookup(x, ACCESS_USE, "open", &m)) < 0 || (k = action_open(x->d, x->s, m, &fd)) < 0)
                return k;
        reply_region(x, m, fd, REGION_JSON_REPLY);
        return 0;
}

static int op_list(struct op_ctx *x) {
        _cleanup_free_ struct managed **v = NULL;
        cJSON *r, *arr;
        size_t n;
        int k = action_list(x->d, x->p, &v, &n);

        if (k < 0)
                return k;
        r = cJSON_CreateObject();
        arr = cJSON_AddArrayToObject(r, "regions");
        for (size_t i = 0; i < n; i++)
                cJSON_AddItemToArray(arr, region_to_json(x->d, v[i], REGION_JSON_MEASURED));
        conn_reply_ok(x->c, x->id, r, -1);
        return 0;
}

static int op_info(struct op_ctx *x) {
        struct managed *m;
        int k = lookup(x, ACCESS_SEE, "see", &m);
        if (k < 0)
                return k;
        reply_region(x, m, -1, REGION_JSON_MEASURED);
        return 0;
}

/* offset/length of the request within the region: length defaults to the rest */
static int request_range(struct op_ctx *x, const struct managed *m, const char *what, uint64_t def_len,
                         uint64_t *ret_off, uint64_t *ret_len) {
        uint64_t off, len;
        int k;

        if ((k = json_get_u64(x->req, "offset", false, 0, &off)) < 0 ||
            (k = json_get_u64(x->req, "length", false, 0, &len)) < 0 ||
            (k = action_range(m, what, off, cJSON_GetObjectItemCaseSensitive(x->req, "length") != NULL, len, def_len,
                              ret_len)) < 0)
                return k;
        *ret_off = off;
        return 0;
}

/* a job on the request's fd (slot 0) or none (-1), answered when it is done */
static int start_job(struct op_ctx *x, enum job_op op, struct managed *m, uint64_t off, uint64_t len, uint64_t fd_off,
                     int fd_slot) {
        struct requester *rq = request_new(x->c, x->id, &x->fd_name);
        int k;

        if (!rq)
                return gmem_error(-ENOMEM, "%s '%s': request", job_op_name(op), m->name);
        k = action_start_job(x->d, x->s, rq, op, m, off, len, fd_off, fd_slot >= 0 ? x->fds[fd_slot] : -1, NULL);
        if (k >= 0 && fd_slot >= 0)
                take_fd(x, (unsigned) fd_slot);
        return k;
}

static int op_populate(struct op_ctx *x) {
        uint64_t off, len, src_off;
        struct requester *rq;
        struct managed *m;
        int k;

        if ((k = lookup(x, ACCESS_USE, "populate", &m)) < 0 ||
            (k = json_get_u64(x->req, "offset", false, 0, &off)) < 0 ||
            (k = json_get_u64(x->req, "length", false, 0, &len)) < 0 ||
            (k = json_get_u64(x->req, "src_offset", false, 0, &src_off)) < 0)
                return k;
        if (!(rq = request_new(x->c, x->id, &x->fd_name)))
                return gmem_error(-ENOMEM, "populate '%s': request", m->name);
        if ((k = action_populate(x->d, x->s, rq, m, off, cJSON_GetObjectItemCaseSensitive(x->req, "length") != NULL, len,
                                 x->fds[0], src_off, NULL)) < 0)
                return k;
        take_fd(x, 0);
        return 0;
}

static int op_prefault(struct op_ctx *x) {
        uint64_t off, len;
        struct managed *m;
        int k;

        if ((k = lookup(x, ACCESS_USE, "prefault", &m)) < 0 ||
            (k = request_range(x, m, "prefault", UINT64_MAX, &off, &len)) < 0)
                return k;
        return start_job(x, JOB_PREFAULT, m, off, len, 0, -1);
}

static int op_dump(struct op_ctx *x) {
        uint64_t off, len, dst_off;
        struct managed *m;
        int k;

        if ((k = lookup(x, ACCESS_USE, "dump", &m)) < 0 ||
            (k = json_get_u64(x->req, "dst_offset", false, 0, &dst_off)) < 0 ||
            (k = request_range(x, m, "dump", UINT64_MAX, &off, &len)) < 0)
                return k;
        return start_job(x, JOB_DUMP, m, off, len, dst_off, 0);
}

static int op_snapshot(struct op_ctx *x) {
        struct managed *m;
        int k;

        if ((k = lookup(x, ACCESS_USE, "snapshot", &m)) < 0)
                return k;
        return start_job(x, JOB_SNAPSHOT, m, 0, gmem_region_size(m->region), 0, 0);
}

/* A region made from a snapshot: answered by the restore job, with the region, when it is in. */
static int op_restore(struct op_ctx *x) {
        enum gmem_backend backend = GMEM_BACKEND_INVALID;
        const char *name, *backend_name;
        enum gmem_policy policy;
        struct requester *rq;
        struct managed *m;
        struct job *j;
        int k;

        if ((k = json_get_str(x->req, "name", true, NULL, &name)) < 0 ||
            (k = json_get_str(x->req, "backend", false, NULL, &backend_name)) < 0 ||
            (k = parse_policy(x->req, &policy)) < 0)
                return k;
        if (backend_name && (k = gmem_backend_from_string(backend_name, &backend)) < 0)
                return gmem_error_wrap(k, "restore '%s'", name);
        if (!(rq = request_new(x->c, x->id, &x->fd_name)))
                return gmem_error(-ENOMEM, "restore '%s': request", name);
        return action_restore(x->d, x->s, name, x->fds[0], backend, policy, rq, &m, &j);
}

/* A page server for a Firecracker VM (fds: a listening socket, the source): answered with the job
 * once its source is read and checked (on the job's thread), before the VM connects; its end (the
 * VM hung up, or an error) comes as a "finished" event while the caller is connected, and to
 * watchers. */
static int op_firecracker(struct op_ctx *x) {
        const char *vm = NULL, *format = NULL;
        uint64_t timeout = FIRECRACKER_TIMEOUT_DEFAULT_MS;
        struct requester *rq;
        bool raw = false, prefetch = true;
        struct job *j;
        int k;

        if ((k = json_get_str(x->req, "vm", true, NULL, &vm)) < 0 || (k = json_get_str(x->req, "format", false, NULL, &format)) < 0 ||
            (k = json_get_u64(x->req, "timeout_ms", false, FIRECRACKER_TIMEOUT_DEFAULT_MS, &timeout)) < 0 ||
            (k = json_get_bool(x->req, "prefetch", true, &prefetch)) < 0)
                return k;
        if (format && strcmp(format, "raw") == 0)
                raw = true;
        else if (format && strcmp(format, "gmem") != 0)
                return gmem_error(-EINVAL, "firecracker '%s': format '%s' (gmem or raw)", vm, format);
        if (timeout > FIRECRACKER_TIMEOUT_MAX_MS)
                return gmem_error(-EINVAL, "firecracker '%s': timeout %" PRIu64 " ms (1 to %d)", vm, timeout,
                                  FIRECRACKER_TIMEOUT_MAX_MS);
        if (!(rq = request_new(x->c, x->id, &x->fd_name)))
                return gmem_error(-ENOMEM, "firecracker '%s': request", vm);
        ((struct sock_request *) rq)->on_start = true;
        return action_firecracker(x->d, x->s, rq, vm, x->fds[0], x->fds[1], raw, prefetch, (int) timeout, &j);
}

/* A page server for the caller's userfaultfd (fds: the uffd, the snapshot): answered with the job
 * once the server is up (the snapshot's extent table read and checked on its thread); its end
 * comes as a "finished" event. */
static int op_serve(struct op_ctx *x) {
        struct sock_request *r;
        struct requester *rq;
        struct managed *m;
        uint64_t base;
        bool shared, prefetch = true;
        struct job *j;
        int k;

        if ((k = lookup(x, ACCESS_USE, "serve", &m)) < 0 || (k = json_get_u64(x->req, "address", true, 0, &base)) < 0 ||
            (k = json_get_bool(x->req, "shared", true, &shared)) < 0 ||
            (k = json_get_bool(x->req, "prefetch", true, &prefetch)) < 0)
                return k;
        if (!(rq = request_new(x->c, x->id, &x->fd_name)))
                return gmem_error(-ENOMEM, "serve '%s': request", m->name);
        r = (struct sock_request *) rq;
        r->on_start = true;
        return action_serve(x->d, x->s, rq, m, x->fds[0], x->fds[1], base, shared, prefetch, &j);
}

static int op_punch(struct op_ctx *x) {
        uint64_t off, len;
        struct managed *m;
        int k;

        if ((k = lookup(x, ACCESS_USE, "punch", &m)) < 0)
                return k;
        if (!cJSON_GetObjectItemCaseSensitive(x->req, "offset") || !cJSON_GetObjectItemCaseSensitive(x->req, "length"))
                return gmem_error(-EINVAL, "punch '%s': offset and length are required", m->name);
        if ((k = request_range(x, m, "punch", 0, &off, &len)) < 0 || (k = action_punch(x->d, m, off, len)) < 0)
                return k;
        conn_reply_ok(x->c, x->id, NULL, -1);
        return 0;
}

static int grant_or_revoke(struct op_ctx *x, bool grant) {
        const cJSON *uid_item = cJSON_GetObjectItemCaseSensitive(x->req, "uid"),
                    *gid_item = cJSON_GetObjectItemCaseSensitive(x->req, "gid");
        struct managed *m;
        uint64_t id;
        int k;

        if ((k = lookup(x, ACCESS_ADMIN, grant ? "grant" : "revoke", &m)) < 0)
                return k;
        if (!!uid_item == !!gid_item)
                return gmem_error(-EINVAL, "%s '%s': give exactly one of uid and gid", grant ? "grant" : "revoke", m->name);
        if ((k = json_get_u64(x->req, uid_item ? "uid" : "gid", true, 0, &id)) < 0 ||
            (k = action_grant(x->d, x->p, m, uid_item != NULL, id, grant)) < 0)
                return k;
        reply_region(x, m, -1, REGION_JSON_REPLY);
        return 0;
}

static int op_grant(struct op_ctx *x) {
        return grant_or_revoke(x, true);
}

static int op_revoke(struct op_ctx *x) {
        return grant_or_revoke(x, false);
}

static int op_release(struct op_ctx *x) {
        struct managed *m;
        int k = lookup(x, ACCESS_ADMIN, "release", &m);
        if (k < 0)
                return k;
        action_release(x->d, m);
        conn_reply_ok(x->c, x->id, NULL, -1);
        return 0;
}

static int op_cancel(struct op_ctx *x) {
        uint64_t id;
        int k;

        if ((k = json_get_u64(x->req, "job", true, 0, &id)) < 0 || (k = action_cancel(x->d, x->p, id)) < 0)
                return k;
        conn_reply_ok(x->c, x->id, NULL, -1);
        return 0;
}

static int op_watch(struct op_ctx *x) {
        x->c->watching = true;
        conn_reply_ok(x->c, x->id, NULL, -1);
        return 0;
}

/* what each op of the protocol's table (libgmem/protocol.h) does here */
static int (*const ops[PROTO_OP_COUNT])(struct op_ctx *x) = {
        [PROTO_OP_HELLO] = op_hello,       [PROTO_OP_CAPS] = op_caps,         [PROTO_OP_CREATE] = op_create,
        [PROTO_OP_REGISTER] = op_register, [PROTO_OP_OPEN] = op_open,         [PROTO_OP_LIST] = op_list,
        [PROTO_OP_INFO] = op_info,         [PROTO_OP_POPULATE] = op_populate, [PROTO_OP_PREFAULT] = op_prefault,
        [PROTO_OP_DUMP] = op_dump,         [PROTO_OP_PUNCH] = op_punch,       [PROTO_OP_GRANT] = op_grant,
        [PROTO_OP_REVOKE] = op_revoke,     [PROTO_OP_RELEASE] = op_release,   [PROTO_OP_CANCEL] = op_cancel,
        [PROTO_OP_WATCH] = op_watch,       [PROTO_OP_SNAPSHOT] = op_snapshot, [PROTO_OP_RESTORE] = op_restore,
        [PROTO_OP_SERVE] = op_serve,
        [PROTO_OP_FIRECRACKER] = op_firecracker,
};

void dispatch(struct conn *c, cJSON *req, int *fds, unsigned n_fds) {
        struct op_ctx x = { .d = c->d, .c = c, .s = c->session, .p = c->peer, .req = req, .fds = fds, .n_fds = n_fds };
        const cJSON *op_item = cJSON_GetObjectItemCaseSensitive(req, "op");
        const char *op = cJSON_IsString(op_item) ? op_item->valuestring : NULL;
        int k = 0;

        x.id = cJSON_GetObjectItemCaseSensitive(req, "id");
        x.fd_name.fd = -1;
        gmem_error_clear();
        if (!op)
                k = gmem_error(-EINVAL, "a request needs a string member 'op'");
        else if (!proto_id_valid(x.id))
                k = gmem_error(-EINVAL, "a request needs an integer member 'id' (at most 2^53 - 1 either way)");
        else if (!c->hello && strcmp(op, "hello") != 0)
                k = gmem_error(-EPROTO, "the first request must be 'hello', not '%.40s'", op);
        else {
                enum proto_op o;
                const struct proto_op_info *info;
                if ((k = proto_op_from_string(op, &o)) >= 0) {
                        info = proto_op_info(o);
                        if (n_fds != info->fds)
                                k = gmem_error(-EINVAL, "op '%s' takes %u file descriptor%s, got %u", op, info->fds,
                                               info->fds == 1 ? "" : "s", n_fds);
                        else if ((k = fd_name_parse(req, fds, n_fds, &x.fd_name)) >= 0)
                                k = ops[o](&x);
                }
        }
        if (k < 0) {
                /* echo only an id that is one: anything else is answered with "id":null */
                if (!proto_id_valid(x.id))
                        x.id = NULL;
                if (log_max_level >= LOG_DEBUG) {
                        const cJSON *name = cJSON_GetObjectItemCaseSensitive(req, "name");
                        log_about(LOG_DEBUG, &(const struct log_about) {
                                  .region = cJSON_IsString(name) ? name->valuestring : NULL, .uid = (long long) c->peer->uid,
                                  .op = op && strlen(op) <= 40 ? op : NULL, .err = -k },
                                  "client %" PRIu64 " (pid %d): %s", c->serial, c->peer->pid, gmem_last_error());
                }
                reply_error_named(c, x.id, k, gmem_last_error(), &x.fd_name);
        }
        for (unsigned i = 0; i < n_fds; i++)
                if (fds[i] >= 0)
                        close(fds[i]);
}
