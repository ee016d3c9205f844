/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

/* ---- duplicate keys: cJSON keeps the first of two members of one name, and a reader would never
 * know the second was there. A scan of the text (valid JSON: cJSON parsed it) that finds them. */

#define DUP_DEPTH_MAX 64

struct key_set {
        uint64_t *slots; /* hash | 1: used */
        size_t cap, n;
};

static uint64_t fnv1a(const char *s, size_t n) {
        uint64_t h = 1469598103934665603ull;
        for (size_t i = 0; i < n; i++)
                h = (h ^ (uint8_t) s[i]) * 1099511628211ull;
        return h | 1;
}

/* true when h was there already; -ENOMEM as false with *oom set */
static bool key_set_add(struct key_set *k, uint64_t h, bool *oom) {
        if (2 * (k->n + 1) > k->cap) {
                size_t cap = k->cap ? 2 * k->cap : 16;
                uint64_t *s = calloc(cap, sizeof(*s));
                if (!s) {
                        *oom = true;
                        return false;
                }
                for (size_t i = 0; i < k->cap; i++)
                        if (k->slots[i])
                                for (size_t j = k->slots[i] % cap;; j = (j + 1) % cap)
                                        if (!s[j]) {
                                                s[j] = k->slots[i];
                                                break;
                                        }
                free(k->slots);
                k->slots = s;
                k->cap = cap;
        }
        for (size_t j = h % k->cap;; j = (j + 1) % k->cap) {
                if (k->slots[j] == h)
                        return true;
                if (!k->slots[j]) {
                        k->slots[j] = h;
                        k->n++;
                        return false;
                }
        }
}

/* The string token at p (after its opening quote) decoded, into out (at most n bytes kept: keys
 * longer than that are told apart by their first n bytes and their length); returns the end. */
static const char *decode_string(const char *p, const char *end, char *out, size_t n, size_t *ret_len) {
        size_t len = 0;
        while (p < end && *p != '"') {
                char c = *p++;
                if (c == '\\' && p < end) {
                        c = *p++;
                        switch (c) {
                        case 'b': c = '\b'; break;
                        case 'f': c = '\f'; break;
                        case 'n': c = '\n'; break;
                        case 'r': c = '\r'; break;
                        case 't': c = '\t'; break;
                        case 'u': { /* a code unit, as UTF-8: "\u0061" is "a", as cJSON reads it */
                                unsigned v = 0;
                                char u[3];
                                int m;
                                for (int i = 0; i < 4 && p < end; i++, p++)
                                        v = v * 16 + (unsigned) (isdigit((unsigned char) *p) ? *p - '0' : (*p | 0x20) - 'a' + 10);
                                m = v < 0x80 ? 1 : v < 0x800 ? 2 : 3;
                                u[0] = (char) (m == 1 ? v : m == 2 ? 0xc0 | v >> 6 : 0xe0 | v >> 12);
                                u[1] = (char) (m == 2 ? 0x80 | (v & 0x3f) : 0x80 | ((v >> 6) & 0x3f));
                                u[2] = (char) (0x80 | (v & 0x3f));
                                for (int i = 0; i < m; i++, len++)
                                        if (len < n)
                                                out[len] = u[i];
                                continue;
                        }
                        default: break; /* \" \\ \/ */
                        }
                }
                if (len < n)
                        out[len] = c;
                len++;
        }
        *ret_len = len;
        return p < end ? p + 1 : p;
}

int json_find_duplicate_key(const char *text, size_t len, char *ret_key, size_t key_size, unsigned *ret_line) {
        struct key_set sets[DUP_DEPTH_MAX] = {};
        bool is_object[DUP_DEPTH_MAX] = {}, expect_key[DUP_DEPTH_MAX] = {}, oom = false;
        const char *p = text, *end = text + len;
        unsigned line = 1, depth = 0;
        int k = 0;

        while (p < end && k == 0) {
                char c = *p++;
                if (c == '\n')
                        line++;
                else if (c == '{' || c == '[') {
                        if (++depth >= DUP_DEPTH_MAX) { /* deeper than any file or request of ours: not looked at, refused */
                                k = -E2BIG;
                                break;
                        }
                        is_object[depth] = c == '{';
                        expect_key[depth] = c == '{';
                        sets[depth].n = 0;
                        if (sets[depth].slots)
                                memset(sets[depth].slots, 0, sets[depth].cap * sizeof(uint64_t));
                } else if (c == '}' || c == ']') {
                        if (depth > 0)
                                depth--;
                } else if (c == ',')
                        expect_key[depth] = is_object[depth];
                else if (c == '"') {
                        char key[256];
                        size_t n;
                        bool is_key = depth > 0 && is_object[depth] && expect_key[depth];
                        p = decode_string(p, end, key, sizeof(key), &n);
                        if (!is_key)
                                continue;
                        expect_key[depth] = false;
                        if (key_set_add(&sets[depth], fnv1a(key, MIN(n, sizeof(key))) ^ ((uint64_t) n << 1), &oom)) {
                                snprintf(ret_key, key_size, "%.*s", (int) MIN(n, sizeof(key)), key);
                                *ret_line = line;
                                k = 1;
                        } else if (oom)
                                k = -ENOMEM;
                }
        }
        for (unsigned i = 0; i < DUP_DEPTH_MAX; i++)
                free(sets[i].slots);
        return k;
}

int json_write_file(const cJSON *o, bool formatted, const char *path) {
        _cleanup_free_ char *text = formatted ? cJSON_Print(o) : cJSON_PrintUnformatted(o), *tmp = NULL;
        _cleanup_close_ int fd = -1;
        size_t len;

        if (!text || asprintf(&tmp, "%s.tmp", path) < 0)
                return -ENOMEM;
        len = strlen(text);
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0)
                return negative_errno();
        if (write(fd, text, len) != (ssize_t) len || rename(tmp, path) < 0) {
                int k = errno ? negative_errno() : -EIO;
                (void) unlink(tmp);
                return k;
        }
        return 0;
}
