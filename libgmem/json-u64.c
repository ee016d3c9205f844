/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <inttypes.h>
#include <stdio.h>

#include "json-u64.h"

cJSON *json_u64(uint64_t v) {
        char digits[24];
        snprintf(digits, sizeof(digits), "%" PRIu64, v);
        return cJSON_CreateRaw(digits);
}

cJSON *json_add_u64(cJSON *o, const char *key, uint64_t v) {
        cJSON *n = json_u64(v);
        if (n && !cJSON_AddItemToObject(o, key, n)) {
                cJSON_Delete(n);
                return NULL;
        }
        return n;
}
