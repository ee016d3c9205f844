/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* _cleanup_ for the public objects, for the tools and tests in this tree:
 *     _cleanup_(gmem_host_caps_freep) struct gmem_host_caps *c = NULL; */
#pragma once

#include "gmem/gmem.h"
#include "macro.h"

#define GMEM_DEFINE_CLEANUP(type, func)              \
        static inline void func##p(type **p) {       \
                if (*p)                              \
                        *p = func(*p);               \
        }

GMEM_DEFINE_CLEANUP(struct gmem_region, gmem_region_free)
GMEM_DEFINE_CLEANUP(struct gmem_client, gmem_client_free)
GMEM_DEFINE_CLEANUP(struct gmem_host_caps, gmem_host_caps_free)
GMEM_DEFINE_CLEANUP(struct gmem_region_info, gmem_region_info_free)
GMEM_DEFINE_CLEANUP(struct gmem_region_list, gmem_region_list_free)
