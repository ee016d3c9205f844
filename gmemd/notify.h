/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Everything that happens to a region or job is announced here, once, and goes to every place
 * that needs it: socket watchers (JSON events), D-Bus (signals, PropertiesChanged) and the fd store
 * (the region's saved state). */
#pragma once

#include "daemon.h"

void notify_region_added(struct daemon *d, struct managed *m);
void notify_region_removed(struct daemon *d, struct managed *m);
/* state, grants or holders changed */
void notify_region_changed(struct daemon *d, struct managed *m);
void notify_job_progress(struct daemon *d, struct job *j, uint64_t done, uint64_t total);
void notify_job_finished(struct daemon *d, struct job *j);
