/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Events that arrive while nobody asks for them (a call waiting for its reply), kept in a bounded
 * ring for gmem_client_next_event(): a watcher that falls behind loses the oldest, never memory. */
#include <string.h>
#include <time.h>

#include "client.h"
#include "error.h"

void gmem_client_events_push(struct gmem_client *c, const char *text) {
        char *copy = strdup(text);

        if (!copy) {
                c->events_dropped++;
                return;
        }
        if (c->n_events == CLIENT_EVENTS_MAX) {
                free(c->events[c->events_head]);
                c->events_head = (c->events_head + 1) % CLIENT_EVENTS_MAX;
                c->n_events--;
                c->events_dropped++;
        }
        c->events[(c->events_head + c->n_events) % CLIENT_EVENTS_MAX] = copy;
        c->n_events++;
}

char *gmem_client_events_pop(struct gmem_client *c) {
        char *e;

        if (c->n_events == 0)
                return NULL;
        e = c->events[c->events_head];
        c->events[c->events_head] = NULL;
        c->events_head = (c->events_head + 1) % CLIENT_EVENTS_MAX;
        c->n_events--;
        return e;
}

void gmem_client_events_clear(struct gmem_client *c) {
        char *e;
        while ((e = gmem_client_events_pop(c)))
                free(e);
}

_public_ int gmem_client_next_event(struct gmem_client *c, int timeout_ms, char **ret_json) {
        int64_t deadline = timeout_ms >= 0 ? mono_msec() + timeout_ms : 0;
        char *e;

        if (!c || !ret_json)
                return gmem_error(-EINVAL, "next event: NULL argument");
        e = gmem_client_events_pop(c);
        if (e) {
                *ret_json = e;
                return 0;
        }
        for (;;) {
                struct gmem_client_msg m = {};
                const cJSON *ev;
                int left = -1, k;

                if (timeout_ms >= 0)
                        left = (int) MAX(deadline - mono_msec(), (int64_t) 0);
                k = gmem_client_recv(c, "next event", left, &m);
                if (k == -EINTR)
                        continue;
                if (k == -ETIME)
                        return gmem_error(-ETIME, "next event: none within %d ms", timeout_ms);
                if (k < 0)
                        return k;
                ev = cJSON_GetObjectItemCaseSensitive(m.json, "event");
                /* progress belongs to a call that is over; replies here answer nothing we wait for */
                if (cJSON_IsString(ev) && strcmp(ev->valuestring, "progress") != 0) {
                        *ret_json = TAKE_PTR(m.text);
                        gmem_client_msg_done(&m);
                        return 0;
                }
                gmem_client_msg_done(&m);
        }
}
