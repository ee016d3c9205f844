/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* One request to gmemd and its reply; progress, cancellation and unrelated events in between. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "client.h"
#include "errno-name.h"
#include "protocol.h"
#include "error.h"

void gmem_client_msg_done(struct gmem_client_msg *m) {
        for (size_t i = 0; i < m->n_fds; i++)
                if (m->fds[i] >= 0)
                        close(m->fds[i]);
        m->n_fds = 0;
        cJSON_Delete(m->json);
        m->json = NULL;
        free(m->text);
        m->text = NULL;
}

int gmem_client_msg_take_fd(struct gmem_client_msg *m) {
        for (size_t i = 0; i < m->n_fds; i++)
                if (m->fds[i] >= 0)
                        return TAKE_FD(m->fds[i]);
        return -1;
}

int gmem_json_get_u64(const cJSON *obj, const char *name, uint64_t *ret) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);

        if (!v)
                return -ENOENT;
        return proto_number_to_u64(v, ret) < 0 ? -EPROTO : 0;
}

/* {"ok":false,"error":{"code":"EACCES","message":"…"}} → -EACCES and the daemon's words. */
static int reply_error(const char *what, const cJSON *reply) {
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(reply, "error");
        const char *code = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "code"));
        const char *msg = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "message"));
        int err = errno_from_name(code);
        const char *words;
        size_t ml, wl;

        if (err == 0)
                err = EIO;
        if (!msg || !*msg)
                return gmem_error(-err, "%s: gmemd refused the request (%s)", what, code ?: "no error code");
        /* the daemon's own message, ending with the errno's words once, like every libgmem message */
        words = strerror(err);
        ml = strlen(msg);
        wl = strlen(words);
        if (ml >= wl && strcmp(msg + ml - wl, words) == 0)
                return gmem_error_set_message(-err, msg);
        return gmem_error(-err, "%s", msg);
}

struct call_state {
        uint64_t id;
        uint64_t cancel_id;     /* our cancel request, 0 when none was sent */
        bool cancel_answered;
        bool job_known;
        uint64_t job, done, total;
};

static int ask_progress(struct gmem_client *c, const char *what, struct call_state *s) {
        _cleanup_free_ char *text = NULL;
        cJSON *req;
        int k;

        if (!c->progress || s->cancel_id || !s->job_known)
                return 0;
        if (c->progress(s->done, s->total, c->userdata) == 0)
                return 0;

        s->cancel_id = ++c->next_id;
        req = cJSON_CreateObject();
        if (!req || !cJSON_AddStringToObject(req, "op", proto_op_info(PROTO_OP_CANCEL)->name) ||
            !json_add_u64(req, "id", s->cancel_id) ||
            !json_add_u64(req, "job", s->job) || !(text = cJSON_PrintUnformatted(req))) {
                cJSON_Delete(req);
                return gmem_error(-ENOMEM, "%s: build the cancel request", what);
        }
        cJSON_Delete(req);
        k = gmem_client_send(c, what, text, NULL, 0);
        return k < 0 ? k : 0;
}

/* A progress event for our request: remember the job and ask the callback. */
static int handle_progress(struct gmem_client *c, const char *what, struct call_state *s, const cJSON *ev) {
        uint64_t job, done, total;

        if (gmem_json_get_u64(ev, "job", &job) < 0 || gmem_json_get_u64(ev, "done", &done) < 0 ||
            gmem_json_get_u64(ev, "total", &total) < 0)
                return 0; /* malformed: nothing to report */
        s->job_known = true;
        s->job = job;
        s->done = done;
        s->total = total;
        return ask_progress(c, what, s);
}

int gmem_client_call(struct gmem_client *c, const char *what, cJSON *req, int send_fd, cJSON **ret_reply, int *ret_fd) {
        return gmem_client_call_fds(c, what, req, &send_fd, send_fd >= 0 ? 1 : 0, ret_reply, ret_fd);
}

int gmem_client_call_fds(struct gmem_client *c, const char *what, cJSON *req, const int *send_fds, size_t n_fds,
                         cJSON **ret_reply, int *ret_fd) {
        _cleanup_free_ char *text = NULL;
        struct call_state s = {};
        struct gmem_client_msg reply = {};
        int k;

        if (c->fd < 0)
                return gmem_error(-ENOTCONN, "%s: the connection to gmemd is closed", what);
        s.id = ++c->next_id;
        cJSON_DeleteItemFromObjectCaseSensitive(req, "id");
        cJSON_DeleteItemFromObjectCaseSensitive(req, "fd_name");
        /* the caller's name for the fd it passes, for gmemd's messages about it (a gmemd that
         * does not know the member ignores it, as every member it does not know) */
        if (n_fds && gmem_client_fd_name(c, send_fds[0]) &&
            !cJSON_AddStringToObject(req, "fd_name", gmem_client_fd_name(c, send_fds[0])))
                return gmem_error(-ENOMEM, "%s: build the request", what);
        if (!json_add_u64(req, "id", s.id) || !(text = cJSON_PrintUnformatted(req)))
                return gmem_error(-ENOMEM, "%s: build the request", what);
        k = gmem_client_send(c, what, text, send_fds, n_fds);
        if (k == -ECONNRESET) {
                /* gmemd closed the connection: maybe after answering (a refusal: too many clients);
                 * that answer is the reply */
                char lost[256];
                snprintf(lost, sizeof(lost), "%s", gmem_last_error());
                if (gmem_client_recv(c, what, 0, &reply) == 0 && cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(reply.json, "ok")))
                        goto answered;
                gmem_client_msg_done(&reply);
                return gmem_error_set_message(k, lost);
        }
        if (k < 0)
                return k;

        while (!reply.json || (s.cancel_id && !s.cancel_answered)) {
                struct gmem_client_msg m = {};
                const cJSON *ev, *ok;
                uint64_t id;

                k = gmem_client_recv(c, what, -1, &m);
                if (k == -EINTR) {
                        /* a signal: let the callback decide now rather than at the next event */
                        k = ask_progress(c, what, &s);
                        if (k < 0)
                                goto fail;
                        continue;
                }
                if (k < 0)
                        goto fail;

                /* an event names itself; it may carry "ok" of its own (job-finished does) */
                ev = cJSON_GetObjectItemCaseSensitive(m.json, "event");
                ok = cJSON_GetObjectItemCaseSensitive(m.json, "ok");
                if (cJSON_IsString(ev)) {
                        if (strcmp(ev->valuestring, "progress") == 0) {
                                if (gmem_json_get_u64(m.json, "id", &id) == 0 && id == s.id && !reply.json)
                                        k = handle_progress(c, what, &s, m.json);
                                /* else: a late event of an earlier call; nobody asked for it */
                        } else
                                gmem_client_events_push(c, m.text);
                        gmem_client_msg_done(&m); /* an event carries no fds: close any */
                        if (k < 0)
                                goto fail;
                        continue;
                }
                if (cJSON_IsBool(ok) && gmem_json_get_u64(m.json, "id", &id) == 0) {
                        if (id == s.id && !reply.json) {
                                reply = m;
                                continue;
                        }
                        if (s.cancel_id && id == s.cancel_id)
                                s.cancel_answered = true; /* whatever it says: the job's reply tells */
                } else if (cJSON_IsFalse(ok) && cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(m.json, "id")) &&
                           !reply.json && !s.cancel_id) {
                        /* a refusal of a message the daemon could not read an id from (too long, too
                         * many fds): with one request in flight, it is ours */
                        reply = m;
                        continue;
                }
                /* a reply to nothing we wait for, or neither reply nor event: drop it and its fds */
                gmem_client_msg_done(&m);
        }

answered:
        if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(reply.json, "ok"))) {
                k = reply_error(what, reply.json);
                goto fail;
        }
        if (ret_fd) {
                int fd = gmem_client_msg_take_fd(&reply);
                if (fd < 0) {
                        k = gmem_error(-EPROTO, "%s: gmemd answered without the file descriptor", what);
                        goto fail;
                }
                *ret_fd = fd;
        }
        if (ret_reply)
                *ret_reply = TAKE_PTR(reply.json);
        gmem_client_msg_done(&reply);
        return 0;

fail:
        gmem_client_msg_done(&reply);
        return k;
}
