/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <stdio.h>

#include "gmem/gmem.h"

#include "config.h"
#include "error.h"
#include "json-util.h"
#include "parse-size.h"

#define CONFIG_MAX_BYTES (1u << 20)

static uint64_t ram_bytes(void) {
        long pages = sysconf(_SC_PHYS_PAGES);
        return pages > 0 ? (uint64_t) pages * page_size() : UINT64_MAX;
}

void config_defaults(struct gmemd_config *c) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);

        *c = (struct gmemd_config) {
                .kernel_profile = GMEM_PROFILE_DETECT,
                .limits = {
                        .max_message_bytes = 65536,
                        .max_fds_per_message = 4,
                        .max_clients = 256,
                        .max_regions = 1024,
                        .max_bytes_per_uid = ram_bytes(),
                        .max_bytes_total = ram_bytes(),
                        .max_jobs = 16,
                        .max_queued_messages = 1024,
                        .max_queued_bytes = 8 << 20,
                        .max_queued_fds = 64,
                        .max_clients_per_uid = 64,
                        .max_regions_per_uid = 256,
                        .max_jobs_per_uid = 8,
                        .hello_timeout_ms = 10000,
                        .max_page_servers = 64,
                        .max_page_servers_per_uid = 16,
                },
                .workers = (unsigned) MAX(2, MIN(cores, 8)),
                .socket_mode = 0666,
        };
}

/* Every member of object o must be one of names (NULL-terminated): a typo is an error naming it,
 * not a setting silently left at its default. */
static int known_keys(const cJSON *o, const char *const *names, const char *file, const char *where) {
        const cJSON *m;

        cJSON_ArrayForEach(m, o) {
                bool ok = false;
                for (const char *const *n = names; *n && !ok; n++)
                        ok = strcmp(m->string, *n) == 0;
                if (!ok)
                        return gmem_error(-EINVAL, "config '%s': unknown key '%s%.64s'%s", file, where, m->string,
                                          *where ? "" : " (limits, workers, kernel_profile, socket_mode, pools)");
        }
        return 0;
}

/* A size: a number of bytes, or a string in gmemctl's notation ("64K", "1.5G", "4096"). */
static int get_size(const cJSON *o, const char *key, uint64_t def, uint64_t *ret) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
        uint64_t x;

        if (!cJSON_IsString(v))
                return json_get_u64(o, key, false, def, ret);
        if (parse_size(v->valuestring, &x) < 0)
                return gmem_error(-EINVAL, "member '%s': '%.40s' is not a size (4096, 64K, 256M, 1.5G, ...)", key,
                                  v->valuestring);
        *ret = x;
        return 0;
}

/* gmemd.json(5)'s "limits": each key, its range, whether 0 means RAM and whether it is a size */
struct limit_spec {
        const char *key;
        uint64_t lo, hi;
        bool ram_default, size;
        size_t field; /* offsetof(struct gmemd_limits, ...) */
};

static const struct limit_spec limit_table[] = {
#define L(key, lo, hi, ram, size) { #key, lo, hi, ram, size, offsetof(struct gmemd_limits, key) }
        L(max_message_bytes, 1024, 16 << 20, false, true),
        L(max_fds_per_message, 1, 253, false, false),
        L(max_clients, 1, 65536, false, false),
        L(max_regions, 1, 1 << 20, false, false),
        L(max_bytes_per_uid, 0, UINT64_MAX, true, true),
        L(max_bytes_total, 0, UINT64_MAX, true, true),
        L(max_jobs, 1, 4096, false, false),
        L(max_queued_messages, 16, 1 << 20, false, false),
        L(max_queued_bytes, 64 << 10, 1 << 30, false, true),
        L(max_queued_fds, 1, 4096, false, false),
        L(max_clients_per_uid, 1, 65536, false, false),
        L(max_regions_per_uid, 1, 1 << 20, false, false),
        L(max_jobs_per_uid, 1, 4096, false, false),
        L(hello_timeout_ms, 100, 600000, false, false),
        L(max_page_servers, 1, 4096, false, false),
        L(max_page_servers_per_uid, 1, 4096, false, false),
#undef L
};

/* A uid's share of a total: what it is when the files do not say (a fraction of the total, so that
 * lowering a total lowers the shares with it), and never above the total it shares. */
static const struct {
        size_t share, total; /* offsetof(struct gmemd_limits, ...) */
        const char *share_key, *total_key;
        unsigned divisor;
} share_table[] = {
#define S(share, total, div) { offsetof(struct gmemd_limits, share), offsetof(struct gmemd_limits, total), #share, #total, div }
        S(max_clients_per_uid, max_clients, 4),
        S(max_regions_per_uid, max_regions, 4),
        S(max_bytes_per_uid, max_bytes_total, 1),
        S(max_jobs_per_uid, max_jobs, 2),
        S(max_page_servers_per_uid, max_page_servers, 4),
#undef S
};

static size_t limit_index(size_t field) {
        for (size_t i = 0; i < ELEMENTSOF(limit_table); i++)
                if (limit_table[i].field == field)
                        return i;
        return 0;
}

static int apply_shares(struct gmemd_config *c) {
        for (size_t i = 0; i < ELEMENTSOF(share_table); i++) {
                uint64_t *share = (uint64_t *) ((char *) &c->limits + share_table[i].share);
                uint64_t total = *(const uint64_t *) ((const char *) &c->limits + share_table[i].total);
                if (!(c->limits_set & (UINT64_C(1) << limit_index(share_table[i].share))))
                        *share = MAX(UINT64_C(1), total / share_table[i].divisor);
                else if (*share > total)
                        return gmem_error(-ERANGE, "config: limits.%s = %" PRIu64 " is above limits.%s = %" PRIu64
                                          " (a uid's share cannot exceed the total it shares)", share_table[i].share_key,
                                          *share, share_table[i].total_key, total);
        }
        return 0;
}

/* "limits" member l->key into its field of *limits, within [lo, hi]; 0 means RAM when ram_default */
static int limit(const cJSON *o, const char *file, const struct limit_spec *l, struct gmemd_limits *limits) {
        uint64_t *field = (uint64_t *) ((char *) limits + l->field), v;
        int k = l->size ? get_size(o, l->key, *field, &v) : json_get_u64(o, l->key, false, *field, &v);
        if (k < 0)
                return gmem_error_wrap(k, "config '%s': limits.%s", file, l->key);
        if (l->ram_default && v == 0)
                v = ram_bytes();
        if (v < l->lo || v > l->hi)
                return gmem_error(-ERANGE, "config '%s': limits.%s = %" PRIu64 " outside [%" PRIu64 ", %" PRIu64 "]", file,
                                  l->key, v, l->lo, l->hi);
        *field = v;
        return 0;
}

/* "pools": [{"backend": "memfd", "size": "1G", "count": 2, "prefault": true}, ...]: a file that
 * names pools replaces those of the files before it. */
static int parse_pools(const cJSON *pools, const char *path, struct gmemd_config *c) {
        static const char *const pool_keys[] = { "backend", "size", "count", "prefault", NULL };
        const cJSON *p;
        int k;

        if (!pools)
                return 0;
        if (!cJSON_IsArray(pools))
                return gmem_error(-EINVAL, "config '%s': 'pools' must be an array", path);
        if (cJSON_GetArraySize(pools) > WARM_POOLS_MAX)
                return gmem_error(-E2BIG, "config '%s': more than %d pools", path, WARM_POOLS_MAX);
        c->n_pools = 0;
        cJSON_ArrayForEach(p, pools) {
                struct warm_pool_config *w = &c->pools[c->n_pools];
                const char *backend;
                char where[32];
                uint64_t count;
                if (!cJSON_IsObject(p))
                        return gmem_error(-EINVAL, "config '%s': each pool must be an object", path);
                snprintf(where, sizeof(where), "pools[%u].", c->n_pools);
                if ((k = known_keys(p, pool_keys, path, where)) < 0)
                        return k;
                if (!cJSON_GetObjectItemCaseSensitive(p, "size"))
                        return gmem_error(-EINVAL, "config '%s': pool %u: missing member 'size'", path, c->n_pools);
                if ((k = json_get_str(p, "backend", false, "memfd", &backend)) < 0 || (k = get_size(p, "size", 0, &w->size)) < 0 ||
                    (k = json_get_u64(p, "count", true, 0, &count)) < 0 || (k = json_get_bool(p, "prefault", true, &w->prefault)) < 0)
                        return gmem_error_wrap(k, "config '%s': pool %u", path, c->n_pools);
                if (gmem_backend_from_string(backend, &w->backend) < 0 || w->backend == GMEM_BACKEND_GUEST_MEMFD)
                        return gmem_error(-EINVAL, "config '%s': pool %u: backend '%.40s' (memfd, hugetlb, secret)", path,
                                          c->n_pools, backend);
                if (w->size == 0 || w->size % (w->backend == GMEM_BACKEND_HUGETLB ? 2 * MiB : 4096) || count < 1 ||
                    count > WARM_POOL_COUNT_MAX)
                        return gmem_error(-ERANGE, "config '%s': pool %u: size must be a positive multiple of the page "
                                          "size, count 1 to %d", path, c->n_pools, WARM_POOL_COUNT_MAX);
                w->count = (unsigned) count;
                c->n_pools++;
        }
        return 0;
}

/* Where in text the parser stopped: "line L, column C" (both from 1). */
static void position(const char *text, const char *at, unsigned *ret_line, unsigned *ret_col) {
        unsigned line = 1, col = 1;

        for (const char *p = text; p < at && *p; p++)
                if (*p == '\n') {
                        line++;
                        col = 1;
                } else
                        col++;
        *ret_line = line;
        *ret_col = col;
}


/* One file over *c (only the keys it names change): 1 when it was read, 0 when it is missing
 * (fine unless must_exist). */
static int config_apply_file(const char *path, bool must_exist, struct gmemd_config *c) {
        static const char *const top_keys[] = { "limits", "workers", "kernel_profile", "socket_mode", "pools", NULL };
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        _cleanup_free_ char *text = NULL;
        struct gmemd_config n = *c;
        const cJSON *limits;
        const char *mode_str, *profile, *end = NULL;
        uint64_t workers;
        char what[256];
        cJSON *root;
        size_t len;
        int k = 0;

        if (fd < 0) {
                if (errno == ENOENT && !must_exist)
                        return 0;
                return gmem_error(negative_errno(), "open config '%s'", path);
        }
        snprintf(what, sizeof(what), "config '%.200s'", path);
        if ((k = read_small_file(fd, CONFIG_MAX_BYTES, what, &text, &len)) < 0)
                return k;
        if (strlen(text) != len)
                return gmem_error(-EINVAL, "config '%s': a NUL byte at offset %zu", path, strlen(text));

        root = cJSON_ParseWithOpts(text, &end, true);
        if (!root) {
                unsigned line, col;
                position(text, end ? end : text + len, &line, &col);
                return gmem_error(-EINVAL, "config '%s': line %u, column %u: not valid JSON here", path, line, col);
        }
        if (!cJSON_IsObject(root)) {
                cJSON_Delete(root);
                return gmem_error(-EINVAL, "config '%s' is not a JSON object", path);
        }
        {
                char key[80];
                unsigned line = 0;
                k = json_find_duplicate_key(text, len, key, sizeof(key), &line);
                if (k != 0) {
                        cJSON_Delete(root);
                        return k == -E2BIG ? gmem_error(-EINVAL, "config '%s': objects nested more than 64 levels deep", path) :
                               k < 0 ? gmem_error(k, "config '%s': look for keys given twice", path) :
                                       gmem_error(-EINVAL, "config '%s': line %u: key '%s' is given a second time in one object "
                                                  "(say it once)", path, line, key);
                }
        }
        k = known_keys(root, top_keys, path, "");
        limits = cJSON_GetObjectItemCaseSensitive(root, "limits");
        if (k >= 0 && limits && !cJSON_IsObject(limits))
                k = gmem_error(-EINVAL, "config '%s': 'limits' must be an object", path);
        if (k >= 0 && limits) {
                const char *names[ELEMENTSOF(limit_table) + 1];
                for (size_t i = 0; i < ELEMENTSOF(limit_table); i++)
                        names[i] = limit_table[i].key;
                names[ELEMENTSOF(limit_table)] = NULL;
                k = known_keys(limits, names, path, "limits.");
                for (size_t i = 0; i < ELEMENTSOF(limit_table) && k >= 0; i++) {
                        k = limit(limits, path, &limit_table[i], &n.limits);
                        if (cJSON_GetObjectItemCaseSensitive(limits, limit_table[i].key))
                                n.limits_set |= UINT64_C(1) << i;
                }
        }
        if (k >= 0 && (k = json_get_u64(root, "workers", false, n.workers, &workers)) >= 0) {
                if (workers < 1 || workers > 256)
                        k = gmem_error(-ERANGE, "config '%s': workers = %" PRIu64 " outside [1, 256]", path, workers);
                else
                        n.workers = (unsigned) workers;
        } else if (k < 0 && !strstr(gmem_last_error(), path))
                k = gmem_error_wrap(k, "config '%s'", path);
        if (k >= 0 && (k = json_get_str(root, "kernel_profile", false, NULL, &profile)) >= 0 && profile) {
                enum gmem_kernel_profile p;
                if (gmem_kernel_profile_from_string(profile, &p) < 0)
                        k = gmem_error(-EINVAL, "config '%s': kernel_profile '%.40s' (upstream, direct-map-removal, write, "
                                       "secret-hiding)", path, profile);
                else {
                        n.kernel_profile = (int) p;
                        n.kernel_profile_set = true;
                }
        }
        if (k >= 0 && (k = json_get_str(root, "socket_mode", false, NULL, &mode_str)) >= 0 && mode_str) {
                char *e;
                unsigned long m = strtoul(mode_str, &e, 8);
                if (*e || e == mode_str || m > 0777)
                        k = gmem_error(-EINVAL, "config '%s': socket_mode '%s' is not an octal mode", path, mode_str);
                else
                        n.socket_mode = (mode_t) m;
        }
        if (k >= 0)
                k = parse_pools(cJSON_GetObjectItemCaseSensitive(root, "pools"), path, &n);
        cJSON_Delete(root);
        if (k < 0)
                return k;
        *c = n;
        return 1;
}

static int by_name(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

#define CONFIG_DROPINS_MAX 128

int config_load(const char *path, int explicit, struct gmemd_config *ret, char ***ret_files) {
        struct gmemd_config c = *ret;
        char dir[PATH_MAX], *names[CONFIG_DROPINS_MAX], **files = NULL;
        unsigned n = 0, n_files = 0;
        uint64_t total = 0;
        struct dirent *de;
        DIR *dp;
        int k = 0, main_read;

        if ((main_read = config_apply_file(path, explicit, &c)) < 0)
                return main_read;
        files = calloc(CONFIG_DROPINS_MAX + 2, sizeof(char *));
        if (!files)
                return gmem_error(-ENOMEM, "config: the list of files");
        if (main_read)
                files[n_files++] = strdup(path);
        /* drop-ins: PATH.d/NAME.json, in the order of their names, each over what came before */
        if ((size_t) snprintf(dir, sizeof(dir), "%s.d", path) >= sizeof(dir)) {
                strv_free(files);
                return gmem_error(-ENAMETOOLONG, "config '%s': the drop-in directory's name is too long", path);
        }
        dp = opendir(dir);
        if (!dp && errno != ENOENT) {
                k = gmem_error(negative_errno(), "config: open drop-in directory '%s'", dir);
                strv_free(files);
                return k;
        }
        while (dp && (de = readdir(dp))) {
                size_t l = strlen(de->d_name);
                if (de->d_name[0] == '.' || l < 6 || strcmp(de->d_name + l - 5, ".json") != 0)
                        continue;
                if (n == CONFIG_DROPINS_MAX) {
                        k = gmem_error(-E2BIG, "config: more than %d drop-ins in '%s'", CONFIG_DROPINS_MAX, dir);
                        break;
                }
                if (!(names[n] = strdup(de->d_name))) {
                        k = gmem_error(-ENOMEM, "config: drop-in names");
                        break;
                }
                n++;
        }
        if (dp)
                closedir(dp);
        qsort(names, n, sizeof(names[0]), by_name);
        for (unsigned i = 0; i < n; i++) {
                char file[PATH_MAX];
                if (k >= 0 && (size_t) snprintf(file, sizeof(file), "%s/%s", dir, names[i]) >= sizeof(file))
                        k = gmem_error(-ENAMETOOLONG, "config: drop-in '%s/%s': name too long", dir, names[i]);
                if (k >= 0 && (k = config_apply_file(file, true, &c)) >= 0)
                        files[n_files++] = strdup(file);
                free(names[i]);
        }
        if (k < 0) {
                strv_free(files);
                return k;
        }
        if ((k = apply_shares(&c)) < 0) {
                strv_free(files);
                return k;
        }
        /* pooled memory is held before anyone asks for it: it must fit in what the daemon may hold */
        for (unsigned i = 0; i < c.n_pools; i++) {
                uint64_t b;
                if (__builtin_mul_overflow(c.pools[i].size, (uint64_t) c.pools[i].count, &b) ||
                    __builtin_add_overflow(total, b, &total)) {
                        strv_free(files);
                        return gmem_error(-ERANGE, "config: the pools' sizes overflow");
                }
        }
        if (total > c.limits.max_bytes_total) {
                strv_free(files);
                return gmem_error(-ERANGE, "config: the pools hold %" PRIu64 " bytes, above limits.max_bytes_total (%" PRIu64 ")",
                                  total, c.limits.max_bytes_total);
        }
        *ret = c;
        if (ret_files)
                *ret_files = files;
        else
                strv_free(files);
        return 0;
}

/* c as a gmemd.json of its own: every limit, setting and pool, as config_load() reads them. */
static cJSON *config_to_json(const struct gmemd_config *c) {
        cJSON *o = cJSON_CreateObject(), *l, *pools;
        char mode[8];

        if (!o)
                return NULL;
        l = cJSON_AddObjectToObject(o, "limits");
        for (size_t i = 0; i < ELEMENTSOF(limit_table); i++)
                json_add_u64(l, limit_table[i].key, *(const uint64_t *) ((const char *) &c->limits + limit_table[i].field));
        cJSON_AddNumberToObject(o, "workers", c->workers);
        if (c->kernel_profile_set)
                cJSON_AddStringToObject(o, "kernel_profile", gmem_kernel_profile_to_string(c->kernel_profile));
        snprintf(mode, sizeof(mode), "%04o", (unsigned) c->socket_mode);
        cJSON_AddStringToObject(o, "socket_mode", mode);
        pools = cJSON_AddArrayToObject(o, "pools");
        for (unsigned i = 0; i < c->n_pools; i++) {
                cJSON *p = cJSON_CreateObject();
                cJSON_AddStringToObject(p, "backend", gmem_backend_to_string(c->pools[i].backend));
                json_add_u64(p, "size", c->pools[i].size);
                cJSON_AddNumberToObject(p, "count", c->pools[i].count);
                cJSON_AddBoolToObject(p, "prefault", c->pools[i].prefault);
                cJSON_AddItemToArray(pools, p);
        }
        return o;
}

int config_save(const struct gmemd_config *c, const char *path) {
        cJSON *o = config_to_json(c);
        int k = o ? json_write_file(o, true, path) : -ENOMEM;

        cJSON_Delete(o);
        return k < 0 ? gmem_error(k, "config: save '%s'", path) : 0;
}

int config_check(const char *path, int explicit, struct gmemd_config *c) {
        char **files = NULL, *text;
        cJSON *o, *f;
        int k = config_load(path, explicit, c, &files);

        if (k < 0) {
                fprintf(stderr, "gmemd: %s\n", gmem_last_error());
                return 1;
        }
        /* what the daemon would run with: every setting, each file read */
        o = config_to_json(c);
        f = cJSON_CreateArray();
        for (char **p = files; p && *p; p++)
                cJSON_AddItemToArray(f, cJSON_CreateString(*p));
        files = strv_free(files);
        cJSON_AddItemToObject(o, "files", f);
        if (!c->kernel_profile_set)
                cJSON_AddStringToObject(o, "kernel_profile", "detect");
        text = cJSON_Print(o);
        cJSON_Delete(o);
        if (!text) {
                fprintf(stderr, "gmemd: --check-config: out of memory\n");
                return 1;
        }
        printf("%s\n", text);
        free(text);
        return 0;
}
