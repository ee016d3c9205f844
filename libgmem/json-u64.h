/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Integers go out as their digits: cJSON prints a double with 15 significant digits whenever that
 * reads back within two ulps, so 9007199254740991 would leave as 9.00719925474099e+15 — another
 * offset. Used by the client's requests and the daemon's replies alike. */
#pragma once

#include <stdint.h>

#include <cjson/cJSON.h>

cJSON *json_u64(uint64_t v);
cJSON *json_add_u64(cJSON *o, const char *key, uint64_t v);
