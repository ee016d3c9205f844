/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Placeholder until the sd-bus implementation lands: only --bus none is accepted. */
#include <string.h>

#include "dbus.h"
#include "error.h"

int dbus_start(struct daemon *d _unused_, const char *bus) {
        if (strcmp(bus, "none") == 0)
                return 0;
        return gmem_error(-EOPNOTSUPP, "--bus %s: this build of gmemd has no D-Bus support; use --bus none", bus);
}

void dbus_stop(struct daemon *d _unused_) {}
void dbus_region_added(struct daemon *d _unused_, struct managed *m _unused_) {}
void dbus_region_removed(struct daemon *d _unused_, struct managed *m _unused_) {}
void dbus_region_changed(struct daemon *d _unused_, struct managed *m _unused_) {}
void dbus_job_progress(struct daemon *d _unused_, struct job *j _unused_, uint64_t done _unused_, uint64_t total _unused_) {}
void dbus_job_finished(struct daemon *d _unused_, struct job *j _unused_) {}
