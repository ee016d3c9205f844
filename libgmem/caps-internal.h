/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The capability probe's pieces:
 *  - caps.c:      probing this host (capability numbers, flag bits by behaviour or by profile, sysfs);
 *  - caps-json.c: a host's caps to JSON and back (gmemd's "caps" reply, gmemctl caps --json);
 *  - host-caps.c: the getters of struct gmem_host_caps, the choice of guest memory, and the 0.1
 *                 struct gmem_caps calls on top of them.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "gmem/gmem.h"

/* Which guest_memfd flag bit means what on a kernel: from a probe (by behaviour or a profile)
 * or from caps, and used by the regions made with it. */
struct gmem_flag_map {
        uint64_t mask;
        uint64_t flag_no_direct_map;
        uint64_t flag_write;
        uint64_t flags_unknown;
        bool gmem_write;
        int profile;
        bool explicit_profile;
};

struct gmem_host_caps {
        struct gmem_caps v;  /* the figures; internal storage here, so its fixed sizes can change */
        /* Another host's (gmemd's) features, as it said them: bit f, it has gmem_feature f. This
         * host's are asked of gmem_kernel_has() when wanted, so that a probe costs no feature
         * tests (mbind(), userfaultfd(), scratch VMs) nobody asked for. */
        bool remote;
        uint32_t features;
};

/* This process's map, detected by behaviour once (never from the environment). */
const struct gmem_flag_map *gmem_flag_map_get(void);
/* caps' map, or this process's for NULL. */
void gmem_flag_map_of(const struct gmem_host_caps *caps, struct gmem_flag_map *ret);
bool gmem_shmem_thp_advised(void);

/* Probe into *ret (profile: a gmem_kernel_profile or GMEM_PROFILE_DETECT). */
int gmem_caps_probe_into(int profile, struct gmem_host_caps *ret);
/* A 0.1 struct as host caps: the features are this process's (the struct has only one of them). */
void gmem_host_caps_from_v01(const struct gmem_caps *c, struct gmem_host_caps *ret);
/* gmemd's caps object (as gmem_host_caps_to_json() writes it) back into caps. */
/* The caps as gmem_host_caps_to_json() prints them, as a cJSON object (cJSON_Delete() it);
 * integers are cJSON_Raw digits, exact to 64 bits. */
int gmem_host_caps_to_json_object(const struct gmem_host_caps *hc, void **ret_cjson);
int gmem_host_caps_from_json_object(const void *cjson_object, struct gmem_host_caps *ret);
