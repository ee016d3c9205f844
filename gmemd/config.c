/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <fcntl.h>
#include <inttypes.h>
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
                },
                .workers = (unsigned) MAX(2, MIN(cores, 8)),
                .socket_mode = 0666,
        };
}

/* "limits" member `key` into *field, within [lo, hi]; 0 means RAM when ram_default */
static int limit(const cJSON *limits, const char *key, uint64_t lo, uint64_t hi, int ram_default, uint64_t *field) {
        uint64_t v;
        int k = json_get_u64(limits, key, false, *field, &v);
        if (k < 0)
                return gmem_error(k, "config: limits.%s", key);
        if (ram_default && v == 0)
                v = ram_bytes();
        if (v < lo || v > hi)
                return gmem_error(-ERANGE, "config: limits.%s = %" PRIu64 " outside [%" PRIu64 ", %" PRIu64 "]", key, v, lo, hi);
        *field = v;
        return 0;
}

/* "pools": [{"backend": "memfd", "size": 1073741824, "count": 2, "prefault": true}, ...] */
static int parse_pools(const cJSON *pools, const char *path, struct gmemd_config *c) {
        const cJSON *p;
        uint64_t total = 0;
        int k;

        if (!pools)
                return 0;
        if (!cJSON_IsArray(pools))
                return gmem_error(-EINVAL, "config '%s': 'pools' must be an array", path);
        if (cJSON_GetArraySize(pools) > WARM_POOLS_MAX)
                return gmem_error(-E2BIG, "config '%s': more than %d pools", path, WARM_POOLS_MAX);
        cJSON_ArrayForEach(p, pools) {
                struct warm_pool_config *w = &c->pools[c->n_pools];
                const char *backend;
                uint64_t count;
                if (!cJSON_IsObject(p))
                        return gmem_error(-EINVAL, "config '%s': each pool must be an object", path);
                if ((k = json_get_str(p, "backend", false, "memfd", &backend)) < 0 ||
                    (k = json_get_u64(p, "size", true, 0, &w->size)) < 0 ||
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
                if (__builtin_mul_overflow(w->size, count, &count) || __builtin_add_overflow(total, count, &total))
                        return gmem_error(-ERANGE, "config '%s': the pools' sizes overflow", path);
                c->n_pools++;
        }
        /* pooled memory is held before anyone asks for it: it must fit in what the daemon may hold */
        if (total > c->limits.max_bytes_total)
                return gmem_error(-ERANGE, "config '%s': the pools hold %" PRIu64 " bytes, above max_bytes_total",
                                  path, total);
        return 0;
}

int config_load(const char *path, int explicit, struct gmemd_config *ret) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        _cleanup_free_ char *text = NULL;
        struct gmemd_config c = *ret;
        const cJSON *limits;
        const char *mode_str, *profile;
        uint64_t workers;
        char what[256];
        cJSON *root;
        size_t n;
        int k = 0;

        if (fd < 0) {
                if (errno == ENOENT && !explicit)
                        return 0;
                return gmem_error(negative_errno(), "open config '%s'", path);
        }
        snprintf(what, sizeof(what), "config '%.200s'", path);
        if ((k = read_small_file(fd, CONFIG_MAX_BYTES, what, &text, &n)) < 0)
                return k;

        root = cJSON_Parse(text);
        if (!cJSON_IsObject(root)) {
                cJSON_Delete(root);
                return gmem_error(-EINVAL, "config '%s' is not a JSON object", path);
        }
        limits = cJSON_GetObjectItemCaseSensitive(root, "limits");
        if (limits && !cJSON_IsObject(limits))
                k = gmem_error(-EINVAL, "config '%s': 'limits' must be an object", path);
        if (k >= 0 && limits) {
                const struct {
                        const char *key;
                        uint64_t lo, hi;
                        int ram_default;
                        uint64_t *field;
                } table[] = {
                        { "max_message_bytes", 1024, 16 << 20, 0, &c.limits.max_message_bytes },
                        { "max_fds_per_message", 1, 253, 0, &c.limits.max_fds_per_message },
                        { "max_clients", 1, 65536, 0, &c.limits.max_clients },
                        { "max_regions", 1, 1 << 20, 0, &c.limits.max_regions },
                        { "max_bytes_per_uid", 0, UINT64_MAX, 1, &c.limits.max_bytes_per_uid },
                        { "max_bytes_total", 0, UINT64_MAX, 1, &c.limits.max_bytes_total },
                        { "max_jobs", 1, 4096, 0, &c.limits.max_jobs },
                        { "max_queued_messages", 16, 1 << 20, 0, &c.limits.max_queued_messages },
                        { "max_queued_bytes", 64 << 10, 1 << 30, 0, &c.limits.max_queued_bytes },
                        { "max_queued_fds", 1, 4096, 0, &c.limits.max_queued_fds },
                        { "max_clients_per_uid", 1, 65536, 0, &c.limits.max_clients_per_uid },
                        { "max_regions_per_uid", 1, 1 << 20, 0, &c.limits.max_regions_per_uid },
                        { "max_jobs_per_uid", 1, 4096, 0, &c.limits.max_jobs_per_uid },
                        { "hello_timeout_ms", 100, 600000, 0, &c.limits.hello_timeout_ms },
                };
                for (size_t i = 0; i < ELEMENTSOF(table) && k >= 0; i++)
                        k = limit(limits, table[i].key, table[i].lo, table[i].hi, table[i].ram_default, table[i].field);
        }
        if (k >= 0 && (k = json_get_u64(root, "workers", false, c.workers, &workers)) >= 0) {
                if (workers < 1 || workers > 256)
                        k = gmem_error(-ERANGE, "config '%s': workers = %" PRIu64 " outside [1, 256]", path, workers);
                else
                        c.workers = (unsigned) workers;
        }
        if (k >= 0 && (k = json_get_str(root, "kernel_profile", false, NULL, &profile)) >= 0 && profile) {
                enum gmem_kernel_profile p;
                if (gmem_kernel_profile_from_string(profile, &p) < 0)
                        k = gmem_error(-EINVAL, "config '%s': kernel_profile '%.40s' (upstream, direct-map-removal, write, "
                                       "secret-hiding)", path, profile);
                else {
                        c.kernel_profile = (int) p;
                        c.kernel_profile_set = true;
                }
        }
        if (k >= 0 && (k = json_get_str(root, "socket_mode", false, NULL, &mode_str)) >= 0 && mode_str) {
                char *end;
                unsigned long m = strtoul(mode_str, &end, 8);
                if (*end || end == mode_str || m > 0777)
                        k = gmem_error(-EINVAL, "config '%s': socket_mode '%s' is not an octal mode", path, mode_str);
                else
                        c.socket_mode = (mode_t) m;
        }
        if (k >= 0)
                k = parse_pools(cJSON_GetObjectItemCaseSensitive(root, "pools"), path, &c);
        cJSON_Delete(root);
        if (k < 0)
                return k;
        *ret = c;
        return 0;
}
