/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <inttypes.h>

#include "error.h"
#include "job.h"
#include "log.h"
#include "region.h"
#include "session.h"

int session_new(struct daemon *d, const struct peer *p, const char *front, bool jobs_outlive, struct session **ret) {
        _cleanup_free_ gid_t *groups = NULL;
        struct session *s;

        if (p->n_groups) {
                groups = calloc(p->n_groups, sizeof(gid_t));
                if (!groups)
                        return gmem_error(-ENOMEM, "%u groups", p->n_groups);
                memcpy(groups, p->groups, p->n_groups * sizeof(gid_t));
        }
        s = calloc(1, sizeof(*s));
        if (!s)
                return gmem_error(-ENOMEM, "session");
        s->d = d;
        s->serial = ++d->session_serial;
        s->peer = *p;
        s->groups = TAKE_PTR(groups);
        s->peer.groups = s->groups;
        s->front = front;
        s->jobs_outlive = jobs_outlive;
        s->refs = 1;
        LIST_PREPEND(d->sessions, s);
        d->n_sessions++;
        *ret = s;
        return 0;
}

struct session *session_ref(struct session *s) {
        if (s)
                s->refs++;
        return s;
}

struct session *session_unref(struct session *s) {
        if (!s || --s->refs > 0)
                return NULL;
        if (!s->ended)
                session_end(s);
        free(s->groups);
        free(s);
        return NULL;
}

void session_end(struct session *s) {
        struct daemon *d = s->d;

        if (s->ended)
                return;
        s->ended = true;
        LIST_REMOVE(d->sessions, s);
        d->n_sessions--;
        if (!s->jobs_outlive)
                jobs_cancel_session(d, s);
        regions_session_ended(d, s);
}

/* root gets in even when every slot is taken: whoever operates gmemd can always reach it */
#define ROOT_RESERVED_SESSIONS 16

const char *session_refused(struct daemon *d, uid_t uid) {
        uint64_t mine = 0, unprivileged = 0;

        if (uid == 0)
                return d->n_sessions >= d->config.limits.max_clients + ROOT_RESERVED_SESSIONS ? "every slot is taken" : NULL;
        for (struct session *s = d->sessions; s; s = s->next) {
                mine += s->peer.uid == uid;
                unprivileged += s->peer.uid != 0;
        }
        /* root's sessions take no slot from the others */
        if (unprivileged >= d->config.limits.max_clients)
                return "max_clients connected";
        return mine >= d->config.limits.max_clients_per_uid ? "its max_clients_per_uid connected" : NULL;
}
