/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Nothing lost across a restart: under systemd every region's fd sits in the service's fd store
 * (FDNAME=region-<name>) and its metadata in a file of its own under the state directory. A
 * restarted gmemd gets the fds back, parses their names, and rebuilds exactly those regions;
 * what it does not recognise it drops and removes from the store (logind's model).
 */
#pragma once

#include "job.h"
#include "region.h"

/* Whether the fd store is there (NOTIFY_SOCKET set and FileDescriptorStoreMax > 0). */
int store_start(struct daemon *d);
/* Rebuild the regions from the n fds systemd passed in (SD_LISTEN_FDS_START on, names[i] from
 * sd_listen_fds_with_names), skipping the listening socket listen_fd; drop the rest. */
int store_restore_fds(struct daemon *d, int n, char **names, int listen_fd);
/* A page server's job (JOB_SERVE, JOB_FIRECRACKER) into the fd store (FDNAME=serve-<token>-uffd,
 * -snapshot, -peer, -state: peer is what ends it, the VMM's pidfd or the VM's connection) with its
 * metadata under serve/<token>.json (and maps, Firecracker's regions); from the job's thread.
 * Forgotten when the job ends other than by gmemd stopping. */
/* The job's server ps, made: resumed from the state the job came back with (a job brought back:
 * 0 or the error; it is in the store already), else under systemd its state kept in a memfd and
 * the job put into the store (*ret_stored set; failing that is only a warning). */
int store_serve_begin(struct daemon *d, struct job *j, struct gmem_page_server *ps, int uffd, int peer_fd,
                      const struct gmem_uffd_mapping *maps, size_t n_maps, bool *ret_stored);
/* The job's end: out of the store, unless gmemd is stopping (the next one goes on from it). */
void store_serve_end(struct daemon *d, const struct job *j, bool stored);
/* STATUS= for systemctl status: regions, bytes, clients. */
void store_status(struct daemon *d);

/* A region's saved metadata, as parsed (and checked) from its file. */
struct saved_region {
        enum gmem_backend backend;
        uint64_t size, flags;
        uid_t owner;
        enum gmem_policy policy;
        enum gmem_region_state state;
        uint64_t populated_bytes, created_usec;
        uint32_t grant_uids[REGION_MAX_GRANTS], grant_gids[REGION_MAX_GRANTS];
        unsigned n_grant_uids, n_grant_gids;
        struct holder holders[REGION_MAX_HOLDERS];
        unsigned n_holders;
};
/* -EBADMSG with a message for anything that is not such metadata. */
int store_parse_metadata(const char *text, size_t n, struct saved_region *ret);
