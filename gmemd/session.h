/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A session is one party gmemd serves, for as long as it is there: a socket connection, or a
 * D-Bus peer (its unique bus name). The front end that met it owns it and ends it; the core
 * records it as a region's creator and holder and as the session behind a job. When it ends, the
 * regions it created with policy "connection" are released, its holds are marked gone, and its
 * jobs are cancelled unless the front end said they outlive it (D-Bus jobs are bus objects of their
 * own, as systemd's are).
 */
#pragma once

#include "daemon.h"

struct session {
        struct daemon *d;
        struct session *prev, *next;
        uint64_t serial;
        struct peer peer;        /* peer.groups points at groups */
        gid_t *groups;
        const char *front;       /* "socket", "D-Bus": for the log */
        bool jobs_outlive;
        bool ended;
        unsigned refs;           /* the front end's, and every job's */
};

/* Copies p (and its groups). */
int session_new(struct daemon *d, const struct peer *p, const char *front, bool jobs_outlive, struct session **ret);
struct session *session_ref(struct session *s);
struct session *session_unref(struct session *s);
/* The party is gone: its regions follow their policy, its jobs are cancelled (see above). */
void session_end(struct session *s);
/* Why a new session of uid may not have a slot, or NULL: max_clients taken by unprivileged
 * sessions (socket connections and bus peers alike; root's come out of a reserve of their own),
 * or uid's share of them (max_clients_per_uid). */
const char *session_refused(struct daemon *d, uid_t uid);
