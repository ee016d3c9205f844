/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>

#include "dbus.h"
#include "json-util.h"
#include "notify.h"
#include "store.h"

static const char *const state_names[_REGION_STATE_MAX] = {
        [REGION_EMPTY] = "empty",
        [REGION_POPULATING] = "populating",
        [REGION_POPULATED] = "populated",
        [REGION_FAILED] = "failed",
};

const char *region_state_to_string(enum region_state s) {
        return (unsigned) s < _REGION_STATE_MAX ? state_names[s] : "unknown";
}

/* To every socket client that watches and may see the region; consumes ev. */
static void to_watchers(struct daemon *d, const struct managed *m, cJSON *ev) {
        _cleanup_free_ char *text = ev ? cJSON_PrintUnformatted(ev) : NULL;

        cJSON_Delete(ev);
        if (!text)
                return;
        /* conn_send never closes a connection under us: a broken one is closed from the loop later */
        for (struct conn *c = d->conns; c; c = c->next)
                if (c->watching && region_may(&c->peer, m, ACCESS_USE))
                        conn_send(c, strdup(text), -1);
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
        cJSON_AddStringToObject(ev, "region", j->m->name);
        return ev;
}

/* Hidden regions (being created) and released ones announce nothing: they are not, or no
 * longer, there for anyone. */
static bool announced(const struct managed *m) {
        return !m->hidden && !m->released;
}

void notify_region_added(struct daemon *d, struct managed *m) {
        if (!announced(m))
                return;
        to_watchers(d, m, region_event("region-added", m));
        dbus_region_added(d, m);
        store_region_saved(d, m);
        store_status(d);
}

void notify_region_removed(struct daemon *d, struct managed *m) {
        if (!announced(m))
                return;
        to_watchers(d, m, region_event("region-removed", m));
        dbus_region_removed(d, m);
        store_region_removed(d, m);
        store_status(d);
}

void notify_region_changed(struct daemon *d, struct managed *m) {
        cJSON *ev;

        if (!announced(m))
                return;
        ev = region_event("region-changed", m);
        cJSON_AddStringToObject(ev, "state", region_state_to_string(m->state));
        to_watchers(d, m, ev);
        dbus_region_changed(d, m);
        store_region_saved(d, m);
}

void notify_job_progress(struct daemon *d, struct job *j, uint64_t done, uint64_t total) {
        cJSON *ev;

        if (!announced(j->m)) {
                /* a D-Bus requester hears of its own job whatever became of the region, as a socket
                 * requester does on its request's stream (jobs.c) */
                if (j->dbus_data)
                        dbus_job_progress(d, j, done, total);
                return;
        }
        ev = job_event("job-progress", j);
        json_add_u64(ev, "done", done);
        json_add_u64(ev, "total", total);
        to_watchers(d, j->m, ev);
        dbus_job_progress(d, j, done, total);
}

void notify_job_finished(struct daemon *d, struct job *j) {
        cJSON *ev;

        if (!announced(j->m)) {
                if (j->dbus_data)
                        dbus_job_finished(d, j);
                return;
        }
        ev = job_event("job-finished", j);
        cJSON_AddBoolToObject(ev, "ok", j->result == 0);
        if (j->result == 0)
                json_add_u64(ev, "bytes", (uint64_t) j->bytes);
        else
                cJSON_AddStringToObject(ev, "error", j->message);
        to_watchers(d, j->m, ev);
        dbus_job_finished(d, j);
}
