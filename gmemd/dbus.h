/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The D-Bus management API (org.gmem.Broker1), on sd-bus inside gmemd's libevent loop. */
#pragma once

#include "daemon.h"

/* bus: "system", "user", "none" or a D-Bus address. "none" does nothing. */
int dbus_start(struct daemon *d, const char *bus);
void dbus_stop(struct daemon *d);

void dbus_region_added(struct daemon *d, struct managed *m);
void dbus_region_removed(struct daemon *d, struct managed *m);
void dbus_region_changed(struct daemon *d, struct managed *m);
void dbus_job_progress(struct daemon *d, struct job *j, uint64_t done, uint64_t total);
void dbus_job_finished(struct daemon *d, struct job *j);
