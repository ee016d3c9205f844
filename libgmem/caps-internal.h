/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>

/* Which guest_memfd flag bit means what on the running kernel, found once per process
 * (by behaviour, or from $GMEM_KERNEL_PROFILE) and used by every region. */
struct gmem_flag_map {
        uint64_t mask;
        uint64_t flag_no_direct_map;
        uint64_t flag_write;
        uint64_t flags_unknown;
        bool gmem_write;
        int profile;
        bool explicit_profile;
};

const struct gmem_flag_map *gmem_flag_map_get(void);
bool gmem_shmem_thp_advised(void);
