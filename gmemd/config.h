/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "gmem/gmem.h"

#define GMEMD_CONFIG_DEFAULT "/etc/gmemd/gmemd.json"

/* Everything a client controls has a limit here. */
struct gmemd_limits {
        uint64_t max_message_bytes;
        uint64_t max_fds_per_message;
        uint64_t max_clients;
        uint64_t max_regions;
        uint64_t max_bytes_per_uid;   /* 0 in the file: the machine's RAM */
        uint64_t max_bytes_total;     /* likewise */
        uint64_t max_jobs;            /* running and queued, all clients together */
        uint64_t max_queued_messages; /* replies and events waiting for one slow client */
        uint64_t max_queued_bytes;    /* ... their bytes */
        uint64_t max_queued_fds;      /* ... and the fds they carry (each a dup held open) */
        uint64_t max_clients_per_uid; /* one uid's share of max_clients; root is not held to it */
        uint64_t max_regions_per_uid; /* ... of max_regions */
        uint64_t max_jobs_per_uid;    /* ... of max_jobs */
        uint64_t hello_timeout_ms;    /* a connection that has not said hello by then is closed */
        /* Page servers (serve, firecracker) wait on a VMM, not on work: a class of their own, so
         * that they never hold the job slots work needs (root has a reserve beyond both). */
        uint64_t max_page_servers;
        uint64_t max_page_servers_per_uid;
};

#define WARM_POOLS_MAX 8
#define WARM_POOL_COUNT_MAX 64

/* A warm pool (gmemd.json(5) "pools"): count regions of one kind kept ready. */
struct warm_pool_config {
        enum gmem_backend backend; /* memfd, hugetlb (2 MiB pages) or secret */
        uint64_t size;
        unsigned count;
        bool prefault;             /* ready means allocated too */
};

struct gmemd_config {
        struct gmemd_limits limits;
        uint64_t limits_set;     /* which of them a file named (bit i: limit_table[i]); the others' shares follow their totals */
        struct warm_pool_config pools[WARM_POOLS_MAX];
        unsigned n_pools;
        unsigned workers;
        mode_t socket_mode;
        int kernel_profile;      /* a gmem_kernel_profile, or GMEM_PROFILE_DETECT: find out by behaviour */
        bool kernel_profile_set; /* the file named one (else $GMEM_KERNEL_PROFILE may) */
};

void config_defaults(struct gmemd_config *c);
/* Load path, then its drop-ins (path.d/NAME.json in the order of their names), each over what came
 * before: only the keys a file names change (a file that names "pools" replaces them). A missing
 * path is fine only when it is the default (explicit = false). Unknown keys, values of the wrong
 * type or out of range, and JSON errors (with line and column) fail naming the file. *ret_files
 * (may be NULL): the files read, a NULL-terminated strv. -errno; *c untouched on failure. */
int config_load(const char *path, int explicit, struct gmemd_config *c, char ***ret_files);
/* The configuration in force, as a file config_load() reads back (written where a later gmemd
 * finds it: it keeps it when its own files fail and it holds guest memory already). */
int config_save(const struct gmemd_config *c, const char *path);
/* gmemd --check-config: config_load(), then what it sets (and the files read) as JSON on stdout
 * and 0, or one line on stderr and 1. */
int config_check(const char *path, int explicit, struct gmemd_config *c);
