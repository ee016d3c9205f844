/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "error.h"
#include "macro.h"
#include "protocol.h"

static const char *const policy_names[_GMEM_POLICY_MAX] = {
        [GMEM_POLICY_KEEP] = "keep",
        [GMEM_POLICY_CONNECTION] = "connection",
};

bool proto_name_valid(const char *name) {
        size_t n = name ? strnlen(name, PROTO_NAME_MAX + 1) : 0;

        if (n < 1 || n > PROTO_NAME_MAX)
                return false;
        for (size_t i = 0; i < n; i++) {
                char ch = name[i];
                if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                      ch == '.' || ch == '_' || ch == '-'))
                        return false;
        }
        return true;
}

int proto_number_to_u64(const cJSON *v, uint64_t *ret) {
        double d;

        if (!cJSON_IsNumber(v))
                return -EINVAL;
        d = v->valuedouble;
        /* the range first: converting a double outside uint64_t's is undefined */
        if (!(d >= 0))
                return -EINVAL;
        if (d > (double) PROTO_INT_MAX)
                return -ERANGE;
        if (d != (double) (uint64_t) d)
                return -EINVAL;
        *ret = (uint64_t) d;
        return 0;
}

bool proto_id_valid(const cJSON *id) {
        double d;

        if (!cJSON_IsNumber(id))
                return false;
        d = id->valuedouble;
        return d >= -(double) PROTO_INT_MAX && d <= (double) PROTO_INT_MAX && d == (double) (int64_t) d;
}

cJSON *proto_id_copy(const cJSON *id) {
        char digits[24];

        if (!proto_id_valid(id))
                return cJSON_CreateNull();
        snprintf(digits, sizeof(digits), "%" PRId64, (int64_t) id->valuedouble);
        return cJSON_CreateRaw(digits);
}

const char *proto_check_strings(const char *text, size_t len) {
        bool in_string = false;

        for (size_t i = 0; i < len; i++) {
                unsigned char ch = (unsigned char) text[i];
                if (!in_string) {
                        in_string = ch == '"';
                        continue;
                }
                if (ch < 0x20)
                        return "a string contains a raw control byte (JSON wants them escaped, and a name none)";
                if (ch == '"')
                        in_string = false;
                else if (ch == '\\' && i + 1 < len) {
                        if (text[i + 1] == 'u' && i + 5 < len && memcmp(text + i + 2, "0000", 4) == 0)
                                return "a string in the request contains NUL (\\u0000): names and values must not";
                        i++; /* the escaped character, a quote or backslash included */
                }
        }
        return NULL;
}

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

_public_ const char *gmem_policy_to_string(enum gmem_policy p) {
        return (unsigned) p < _GMEM_POLICY_MAX ? policy_names[p] : NULL;
}

_public_ int gmem_policy_from_string(const char *s, enum gmem_policy *ret_policy) {
        for (unsigned i = 0; s && ret_policy && i < _GMEM_POLICY_MAX; i++)
                if (strcmp(s, policy_names[i]) == 0) {
                        *ret_policy = (enum gmem_policy) i;
                        return 0;
                }
        return gmem_error(-EINVAL, "unknown policy '%.40s' (keep, connection)", s ? s : "(null)");
}

int proto_check_page_size(enum gmem_backend backend, bool have_page_size) {
        if (have_page_size && backend != GMEM_BACKEND_HUGETLB)
                return gmem_error(-EINVAL, "page_size is only for hugetlb regions");
        return 0;
}
