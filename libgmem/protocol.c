/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "error.h"
#include "macro.h"
#include "protocol.h"

/* ---- enum names on the wire, one table each and one lookup for all */
static const char *const backend_names[GMEM_BACKEND_COUNT] = {
        [GMEM_BACKEND_MEMFD] = "memfd",
        [GMEM_BACKEND_HUGETLB] = "hugetlb",
        [GMEM_BACKEND_SECRET] = "secret",
        [GMEM_BACKEND_GUEST_MEMFD] = "guest_memfd",
};
static const char *const policy_names[GMEM_POLICY_COUNT] = {
        [GMEM_POLICY_KEEP] = "keep",
        [GMEM_POLICY_CONNECTION] = "connection",
};
static const char *const state_names[GMEM_REGION_STATE_COUNT] = {
        [GMEM_REGION_EMPTY] = "empty",
        [GMEM_REGION_POPULATING] = "populating",
        [GMEM_REGION_POPULATED] = "populated",
        [GMEM_REGION_FAILED] = "failed",
};

static const char *name_of(const char *const *names, unsigned n, int v) {
        return v >= 0 && (unsigned) v < n ? names[v] : NULL;
}

/* The index of s in names, or -EINVAL with "unknown KIND 'S' (name, name, ...)". */
static int index_of(const char *const *names, unsigned n, const char *kind, const char *s) {
        char list[128] = "";
        size_t used = 0;

        if (!s)
                return gmem_error(-EINVAL, "%s name: NULL argument", kind);
        for (unsigned i = 0; i < n; i++)
                if (strcmp(s, names[i]) == 0)
                        return (int) i;
        for (unsigned i = 0; i < n && used < sizeof(list); i++)
                used += (size_t) snprintf(list + used, sizeof(list) - used, "%s%s", i ? ", " : "", names[i]);
        return gmem_error(-EINVAL, "unknown %s '%.40s' (%s)", kind, s, list);
}

#define ENUM_STRING_FUNCS(type, prefix, names, kind)                                                      \
        _public_ const char *prefix##_to_string(enum type v) {                                             \
                return name_of(names, ELEMENTSOF(names), (int) v);                                         \
        }                                                                                                  \
        _public_ int prefix##_from_string(const char *s, enum type *ret) {                                 \
                int i;                                                                                     \
                if (!ret)                                                                                  \
                        return gmem_error(-EINVAL, "%s name: NULL result", kind);                          \
                i = index_of(names, ELEMENTSOF(names), kind, s);                                           \
                if (i < 0)                                                                                 \
                        return i;                                                                          \
                *ret = (enum type) i;                                                                      \
                return 0;                                                                                  \
        }

static const struct proto_op_info op_table[PROTO_OP_COUNT] = {
        [PROTO_OP_HELLO] = { "hello", 0, false, false },
        [PROTO_OP_CAPS] = { "caps", 0, false, false },
        [PROTO_OP_CREATE] = { "create", 0, true, false },
        [PROTO_OP_REGISTER] = { "register", 1, true, false },
        [PROTO_OP_OPEN] = { "open", 0, true, false },
        [PROTO_OP_LIST] = { "list", 0, false, false },
        [PROTO_OP_INFO] = { "info", 0, true, false },
        [PROTO_OP_POPULATE] = { "populate", 1, true, true },
        [PROTO_OP_PREFAULT] = { "prefault", 0, true, true },
        [PROTO_OP_DUMP] = { "dump", 1, true, true },
        [PROTO_OP_PUNCH] = { "punch", 0, true, false },
        [PROTO_OP_GRANT] = { "grant", 0, true, false },
        [PROTO_OP_REVOKE] = { "revoke", 0, true, false },
        [PROTO_OP_RELEASE] = { "release", 0, true, false },
        [PROTO_OP_CANCEL] = { "cancel", 0, false, false },
        [PROTO_OP_WATCH] = { "watch", 0, false, false },
        [PROTO_OP_SNAPSHOT] = { "snapshot", 1, true, true },
        [PROTO_OP_RESTORE] = { "restore", 1, true, true },
        [PROTO_OP_SERVE] = { "serve", 2, true, true },
        [PROTO_OP_FIRECRACKER] = { "firecracker", 2, false, true },
};

const struct proto_op_info *proto_op_info(enum proto_op op) {
        return (unsigned) op < PROTO_OP_COUNT ? &op_table[op] : NULL;
}

int proto_op_from_string(const char *s, enum proto_op *ret) {
        for (unsigned i = 0; s && i < PROTO_OP_COUNT; i++)
                if (strcmp(s, op_table[i].name) == 0) {
                        *ret = (enum proto_op) i;
                        return 0;
                }
        return gmem_error(-EOPNOTSUPP, "unknown op '%.40s'", s ? s : "(null)");
}

ENUM_STRING_FUNCS(gmem_backend, gmem_backend, backend_names, "backend")
ENUM_STRING_FUNCS(gmem_policy, gmem_policy, policy_names, "policy")
ENUM_STRING_FUNCS(gmem_region_state, gmem_region_state, state_names, "region state")

int proto_check_fd_name(const char *name) {
        size_t n = name ? strlen(name) : 0;

        if (n == 0 || n > PROTO_FD_NAME_MAX)
                return gmem_error(-EINVAL, "a name is 1 to %d bytes, not %zu", PROTO_FD_NAME_MAX, n);
        for (const unsigned char *p = (const unsigned char *) name; *p; p++)
                if (*p < 0x20 || *p == 0x7f)
                        return gmem_error(-EINVAL, "a name must not contain control characters");
        return 0;
}

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

int proto_check_page_size(enum gmem_backend backend, bool have_page_size) {
        if (have_page_size && backend != GMEM_BACKEND_HUGETLB)
                return gmem_error(-EINVAL, "page_size is only for hugetlb regions");
        return 0;
}
