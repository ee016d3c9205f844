/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The regions gmemd holds: the table, who may see and do what, who holds them, their state. */
#pragma once

#include <cjson/cJSON.h>

#include "daemon.h"

#define REGION_MAX_GRANTS 64
#define REGION_MAX_HOLDERS 32

struct holder {
        pid_t pid;
        uid_t uid;
        const char *role;          /* "created", "registered", "opened" */
        struct session *session;   /* NULL once it ended (or for a holder restored from the store) */
};

struct managed {
        struct managed *prev, *next;
        char name[PROTO_NAME_MAX + 1];
        struct gmem_region *region;
        uid_t owner;
        uid_t grant_uids[REGION_MAX_GRANTS];
        unsigned n_grant_uids;
        gid_t grant_gids[REGION_MAX_GRANTS];
        unsigned n_grant_gids;
        enum gmem_policy policy;
        struct session *creator;   /* for GMEM_POLICY_CONNECTION; NULL once it ended */
        struct holder holders[REGION_MAX_HOLDERS];
        unsigned n_holders;
        enum gmem_region_state state;
        uint64_t populated_bytes;
        uint64_t created_usec;
        unsigned running_jobs;
        /* resident bytes, measured off the loop (jobs.c): what list, info and ResidentBytes show */
        uint64_t resident_bytes;
        uint64_t resident_usec;    /* when measured (mono_usec()); 0: never */
        bool resident_known;
        bool resident_pending;     /* a measurement is queued */
        bool hidden;               /* being created with prefault: not visible yet */
        bool released;             /* out of the table; freed when the last job lets go */
        bool stored;               /* its fd is in systemd's fd store */
        unsigned refs;             /* the table, and every job on it */
};

enum access { ACCESS_SEE, ACCESS_USE, ACCESS_ADMIN };

struct managed *region_find(struct daemon *d, const char *name); /* hidden ones too */
/* May uid hold bytes more (a region's, or a job's metadata)? Against the daemon's max_bytes_total
 * and, for any uid but root, its max_bytes_per_uid — what its regions and its jobs hold counted
 * together. -ENOSPC or -EDQUOT naming what. */
int quota_admit(struct daemon *d, uid_t uid, uint64_t bytes, const char *what);
/* May uid add a region named name of size bytes (the name free, max_regions, its share, its
 * bytes)? Asked before anything is spent on it (a pooled region taken, say). */
int region_admit(struct daemon *d, const char *name, uint64_t size, uid_t uid);
/* owner: who creates or registers it; s: their session (NULL while restoring). */
int region_add(struct daemon *d, const char *name, struct gmem_region *r, const struct peer *owner, struct session *s,
               enum gmem_policy policy, const char *role, bool hidden, struct managed **ret);
void region_publish(struct daemon *d, struct managed *m);
void region_release(struct daemon *d, struct managed *m);
void regions_free_all(struct daemon *d);
void region_unref(struct daemon *d, struct managed *m);
/* The one rule for who may do what; ACCESS_SEE is what list, info, watch and the D-Bus lookups
 * show: the regions one may use, and none that is hidden or released. */
bool region_may(const struct peer *p, const struct managed *m, enum access a);
/* The regions p may see, sorted by name (malloc'ed array; *ret_n of them). */
int regions_visible(struct daemon *d, const struct peer *p, struct managed ***ret, size_t *ret_n);
void region_add_holder(struct managed *m, const struct peer *p, struct session *s, const char *role);
void regions_session_ended(struct daemon *d, struct session *s);
/* bytes of the regions uid owns, and (ret_count, may be NULL) how many */
uint64_t region_bytes_of_uid(struct daemon *d, uid_t uid, uint64_t *ret_count);
void region_set_state(struct daemon *d, struct managed *m, enum gmem_region_state s);
/* region states and their names: enum gmem_region_state, gmem_region_state_to_string() (gmem.h) */

enum region_json {
        REGION_JSON_REPLY,    /* a reply: no residency */
        REGION_JSON_MEASURED, /* list and info: with resident_bytes */
        REGION_JSON_SAVED,    /* the fd store's metadata: what a restart needs, nothing of the moment */
};
/* The region as JSON: the one description the socket and the fd store share. */
cJSON *region_to_json(struct daemon *d, struct managed *m, enum region_json what);
/* Resident bytes as last measured (-EAGAIN: not yet), and a new measurement queued on a worker
 * when the last is older than RESIDENT_MAX_AGE_USEC: the loop never walks a region's pages. */
int region_resident(struct daemon *d, struct managed *m, uint64_t *ret);
/* m's pages changed (a job ended, a hole was punched): measure again. */
void region_resident_changed(struct daemon *d, struct managed *m);
