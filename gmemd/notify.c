/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "error.h"
#include "job.h"
#include "notify.h"
#include "region.h"

int notify_subscribe(struct daemon *d, const struct subscriber_ops *ops, void *userdata) {
        if (d->n_subscribers >= NOTIFY_MAX_SUBSCRIBERS)
                return gmem_error(-ENOSPC, "%u subscribers (limit)", d->n_subscribers);
        d->subscribers[d->n_subscribers++] = (struct subscription) { .ops = ops, .userdata = userdata };
        return 0;
}

void notify_unsubscribe(struct daemon *d, const struct subscriber_ops *ops, void *userdata) {
        for (unsigned i = 0; i < d->n_subscribers; i++)
                if (d->subscribers[i].ops == ops && d->subscribers[i].userdata == userdata) {
                        memmove(&d->subscribers[i], &d->subscribers[i + 1], (d->n_subscribers - i - 1) * sizeof(d->subscribers[0]));
                        d->n_subscribers--;
                        return;
                }
}

static bool announced(const struct managed *m) {
        return !m->hidden && !m->released;
}

/* Each subscriber's hook, if it has one. */
#define EACH(d, hook, ...)                                                                       \
        for (unsigned _i = 0; _i < (d)->n_subscribers; _i++)                                    \
                if ((d)->subscribers[_i].ops->hook)                                              \
                        (d)->subscribers[_i].ops->hook((d)->subscribers[_i].userdata, __VA_ARGS__)

void notify_region_added(struct daemon *d, struct managed *m) {
        if (announced(m))
                EACH(d, region_added, m);
}

void notify_region_removed(struct daemon *d, struct managed *m) {
        if (announced(m))
                EACH(d, region_removed, m);
}

void notify_region_changed(struct daemon *d, struct managed *m) {
        if (announced(m))
                EACH(d, region_changed, m);
}

void notify_job_progress(struct daemon *d, struct job *j, uint64_t done, uint64_t total) {
        if (!j->m || announced(j->m))
                EACH(d, job_progress, j, done, total);
}

void notify_job_finished(struct daemon *d, struct job *j) {
        if (!j->m || announced(j->m))
                EACH(d, job_finished, j);
}
