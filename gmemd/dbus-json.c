/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * JSON as typed D-Bus values: what gmemd describes in JSON on its socket (the host's caps) it gives
 * on the bus as an a{sv} a client reads member by member with its own types, never JSON in a string.
 * One description, two encodings: the JSON stays the source, so the two cannot drift apart.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dbus-json.h"

/* deeper than any description of ours: the limit only keeps the recursion bounded */
#define JSON_DEPTH_MAX 16

/* An integer, exactly: the digits json_u64() left raw, or a number cJSON holds as a double. */
static bool json_integer(const cJSON *v, bool *ret_negative, uint64_t *ret_u, int64_t *ret_i) {
        if (cJSON_IsRaw(v)) {
                const char *p = v->valuestring;
                char *end;
                if (!p || *p < '0' || *p > '9')
                        return false;
                errno = 0;
                *ret_u = strtoull(p, &end, 10);
                *ret_negative = false;
                return errno == 0 && *end == 0;
        }
        /* within ±2^53 (beyond, a double is no exact integer; NaN fails both comparisons) */
        if (!cJSON_IsNumber(v) || !(v->valuedouble >= -9007199254740992.0 && v->valuedouble <= 9007199254740992.0) ||
            (double) (int64_t) v->valuedouble != v->valuedouble)
                return false;
        *ret_negative = v->valuedouble < 0;
        if (*ret_negative)
                *ret_i = (int64_t) v->valuedouble;
        else
                *ret_u = (uint64_t) v->valuedouble;
        return true;
}

/* The D-Bus type of v (one complete type, at most 8 characters), or NULL: left out (null). */
static const char *json_type(const cJSON *v, unsigned depth) {
        bool neg;
        uint64_t u;
        int64_t i;

        if (cJSON_IsBool(v))
                return "b";
        if (cJSON_IsString(v))
                return "s";
        if (cJSON_IsObject(v))
                return "a{sv}";
        if (json_integer(v, &neg, &u, &i))
                return neg ? "x" : "t";
        if (cJSON_IsNumber(v))
                return "d";
        if (cJSON_IsArray(v)) {
                const char *t = NULL;
                const cJSON *e;
                if (depth > JSON_DEPTH_MAX)
                        return "av"; /* append_value() refuses it */
                cJSON_ArrayForEach(e, v) {
                        const char *et = json_type(e, depth + 1);
                        if (!et || (t && strcmp(t, et) != 0) || (strcmp(et, "a{sv}") != 0 && strcmp(et, "s") != 0 &&
                                                                  strcmp(et, "t") != 0))
                                return "av";
                        t = et;
                }
                if (!t || strcmp(t, "a{sv}") == 0)
                        return "aa{sv}"; /* an empty array is of objects: our arrays are lists of things */
                return strcmp(t, "s") == 0 ? "as" : "at";
        }
        return NULL;
}

static int append_value(sd_bus_message *m, const cJSON *v, const char *type, unsigned depth);

static int append_object(sd_bus_message *m, const cJSON *o, unsigned depth) {
        const cJSON *v;
        int k;

        if (depth > JSON_DEPTH_MAX)
                return -ELOOP;
        if ((k = sd_bus_message_open_container(m, 'a', "{sv}")) < 0)
                return k;
        cJSON_ArrayForEach(v, o) {
                const char *type = json_type(v, depth);
                if (!type)
                        continue;
                if ((k = sd_bus_message_open_container(m, 'e', "sv")) < 0 ||
                    (k = sd_bus_message_append(m, "s", v->string ?: "")) < 0 ||
                    (k = sd_bus_message_open_container(m, 'v', type)) < 0 || (k = append_value(m, v, type, depth)) < 0 ||
                    (k = sd_bus_message_close_container(m)) < 0 || (k = sd_bus_message_close_container(m)) < 0)
                        return k;
        }
        return sd_bus_message_close_container(m);
}

static int append_value(sd_bus_message *m, const cJSON *v, const char *type, unsigned depth) {
        bool neg;
        uint64_t u = 0;
        int64_t i = 0;
        int k;

        if (depth > JSON_DEPTH_MAX)
                return -ELOOP;
        switch (type[0]) {
        case 'b':
                return sd_bus_message_append(m, "b", cJSON_IsTrue(v));
        case 's':
                return sd_bus_message_append(m, "s", v->valuestring);
        case 't':
        case 'x':
                (void) json_integer(v, &neg, &u, &i);
                return type[0] == 't' ? sd_bus_message_append(m, "t", u) : sd_bus_message_append(m, "x", i);
        case 'd':
                return sd_bus_message_append(m, "d", v->valuedouble);
        case 'v': {
                const char *t = json_type(v, depth) ?: "s"; /* a null among other things: "" */
                if ((k = sd_bus_message_open_container(m, 'v', t)) < 0 || (k = append_value(m, v, t, depth + 1)) < 0)
                        return k;
                return sd_bus_message_close_container(m);
        }
        case 'a': {
                const cJSON *e;
                if (strcmp(type, "a{sv}") == 0)
                        return append_object(m, v, depth + 1);
                if ((k = sd_bus_message_open_container(m, 'a', type + 1)) < 0)
                        return k;
                cJSON_ArrayForEach(e, v)
                        if ((k = append_value(m, e, type + 1, depth + 1)) < 0)
                                return k;
                return sd_bus_message_close_container(m);
        }
        }
        return -EINVAL;
}

int bus_append_json_object(sd_bus_message *m, const cJSON *object) {
        if (!m || !cJSON_IsObject(object))
                return -EINVAL;
        return append_object(m, object, 0);
}
