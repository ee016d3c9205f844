/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <inttypes.h>
#include <stdio.h>

#include "error.h"
#include "json-util.h"

int json_get_u64(const cJSON *o, const char *key, bool required, uint64_t def, uint64_t *ret) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

        if (!v || cJSON_IsNull(v)) {
                if (required)
                        return gmem_error(-EINVAL, "missing member '%s'", key);
                *ret = def;
                return 0;
        }
        if (proto_number_to_u64(v, ret) < 0)
                return gmem_error(-EINVAL, "member '%s' must be a non-negative integer below 2^53", key);
        return 0;
}

int json_get_str(const cJSON *o, const char *key, bool required, const char *def, const char **ret) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

        if (!v || cJSON_IsNull(v)) {
                if (required)
                        return gmem_error(-EINVAL, "missing member '%s'", key);
                *ret = def;
                return 0;
        }
        if (!cJSON_IsString(v))
                return gmem_error(-EINVAL, "member '%s' must be a string", key);
        *ret = v->valuestring;
        return 0;
}

int json_get_bool(const cJSON *o, const char *key, bool def, bool *ret) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

        if (!v || cJSON_IsNull(v)) {
                *ret = def;
                return 0;
        }
        if (!cJSON_IsBool(v))
                return gmem_error(-EINVAL, "member '%s' must be true or false", key);
        *ret = cJSON_IsTrue(v);
        return 0;
}
