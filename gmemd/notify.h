/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Everything that happens to a region or a job is announced here, once, to every subscriber: the
 * socket's watchers, D-Bus (signals, PropertiesChanged), the fd store (the region's saved state).
 * The core does not know who they are. Hidden regions (being created) and released ones announce
 * nothing; a job's own requester hears of it through job.h whatever became of its region.
 */
#pragma once

#include "daemon.h"

struct subscriber_ops {
        void (*region_added)(void *userdata, struct managed *m);
        void (*region_removed)(void *userdata, struct managed *m); /* still in the table */
        void (*region_changed)(void *userdata, struct managed *m); /* state, grants or holders */
        void (*job_progress)(void *userdata, struct job *j, uint64_t done, uint64_t total);
        void (*job_finished)(void *userdata, struct job *j);
};

/* Any member of ops may be NULL. -ENOSPC past NOTIFY_MAX_SUBSCRIBERS. */
int notify_subscribe(struct daemon *d, const struct subscriber_ops *ops, void *userdata);
void notify_unsubscribe(struct daemon *d, const struct subscriber_ops *ops, void *userdata);

void notify_region_added(struct daemon *d, struct managed *m);
void notify_region_removed(struct daemon *d, struct managed *m);
void notify_region_changed(struct daemon *d, struct managed *m);
void notify_job_progress(struct daemon *d, struct job *j, uint64_t done, uint64_t total);
void notify_job_finished(struct daemon *d, struct job *j);
