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

int read_small_file(int fd, size_t max, const char *what, char **ret_text, size_t *ret_n) {
        _cleanup_free_ char *text = malloc(max + 1);
        size_t n = 0;

        if (!text)
                return gmem_error(-ENOMEM, "read %s", what);
        /* one read may return less than there is: read until the end, or one byte past max */
        while (n <= max) {
                ssize_t k = read(fd, text + n, max + 1 - n);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return gmem_error(negative_errno(), "read %s", what);
                if (k == 0)
                        break;
                n += (size_t) k;
        }
        if (n > max)
                return gmem_error(-EFBIG, "%s is larger than %zu bytes", what, max);
        text[n] = 0;
        *ret_text = TAKE_PTR(text);
        *ret_n = n;
        return 0;
}
