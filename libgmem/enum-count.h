/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* How many values each public enum has in this build: for tables and range checks inside the tree.
 * Not in gmem.h: a count there would change with every new value and be compiled into callers. */
#pragma once

#include "gmem/gmem.h"

#define GMEM_BACKEND_COUNT (GMEM_BACKEND_GUEST_MEMFD + 1)
#define GMEM_PROFILE_COUNT (GMEM_PROFILE_SECRET_HIDING + 1)
#define GMEM_FEATURE_COUNT (GMEM_FEATURE_INPLACE_CONVERSION + 1)
#define GMEM_FLAG_COUNT (GMEM_FLAG_WRITE + 1)
#define GMEM_POLICY_COUNT (GMEM_POLICY_CONNECTION + 1)
#define GMEM_REGION_STATE_COUNT (GMEM_REGION_FAILED + 1)
