/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The D-Bus front end (org.gmem.Broker1), on sd-bus inside gmemd's libevent loop. */
#pragma once

#include "daemon.h"

struct dbus_state;

/* bus: "system", "user", "none" or a D-Bus address. "none": nothing, and *ret = NULL. */
int dbus_start(struct daemon *d, const char *bus, struct dbus_state **ret);
/* NULL-safe. Call after the pool stopped: the jobs' last signals go out first. */
struct dbus_state *dbus_stop(struct dbus_state *s);
