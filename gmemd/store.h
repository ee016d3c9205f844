/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Nothing lost across a restart: under systemd every region's fd sits in the service's fd store
 * (FDNAME=region-<name>) and its metadata in a file of its own under the state directory. A
 * restarted gmemd gets the fds back, parses their names, and rebuilds exactly those regions;
 * what it does not recognise it drops and removes from the store (logind's model).
 */
#pragma once

#include "daemon.h"

/* Whether the fd store is there (NOTIFY_SOCKET set and FileDescriptorStoreMax > 0). */
int store_start(struct daemon *d);
/* Rebuild the regions from the n fds systemd passed in (SD_LISTEN_FDS_START on, names[i] from
 * sd_listen_fds_with_names), skipping the listening socket; drop the rest. */
int store_restore_fds(struct daemon *d, int n, char **names);
int store_restore(struct daemon *d);
/* STATUS= for systemctl status: regions, bytes, clients. */
void store_status(struct daemon *d);
void store_region_saved(struct daemon *d, struct managed *m);
void store_region_removed(struct daemon *d, struct managed *m);
