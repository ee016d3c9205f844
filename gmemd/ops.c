/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The protocol's operations (docs/protocol.md). Each checks its input and the caller's rights
 * before it changes anything; a failure is answered with the errno's name and a message. */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "daemon.h"
#include "error.h"
#include "json-util.h"
#include "log.h"

struct op_ctx {
        struct daemon *d;
        struct conn *c;
        const cJSON *req;
        const cJSON *id;
        int *fds;          /* an op takes an fd by setting its slot to -1 */
        unsigned n_fds;
};

static int take_fd(struct op_ctx *x, unsigned i) {
        int fd = x->fds[i];
        x->fds[i] = -1;
        return fd;
}

static void reply_region(struct op_ctx *x, const struct managed *m, int fd) {
        cJSON *members = cJSON_CreateObject();
        cJSON_AddItemToObject(members, "region", region_to_json(x->d, m));
        conn_reply_ok(x->c, x->id, members, fd);
}

/* The named, visible region the caller may act on; EACCES when it exists but is not theirs. */
static int lookup(struct op_ctx *x, enum access a, const char *what, struct managed **ret) {
        const char *name;
        struct managed *m;
        int k = json_get_str(x->req, "name", true, NULL, &name);

        if (k < 0)
                return k;
        if (!region_name_valid(name))
                return gmem_error(-EINVAL, "region name '%.80s' must match [A-Za-z0-9._-]{1,64}", name);
        m = region_find(x->d, name);
        if (!m || m->hidden)
                return gmem_error(-ENOENT, "no region '%s'", name);
        if (!region_may(x->c, m, a))
                return gmem_error(-EACCES, "region '%s': uid %d may not %s it (owner uid %d)", name, x->c->cred.uid, what,
                                  m->owner);
        *ret = m;
        return 0;
}

static int parse_policy(const cJSON *req, enum gmem_policy *ret) {
        const char *p;
        int k = json_get_str(req, "policy", false, "keep", &p);
        if (k < 0)
                return k;
        if (strcmp(p, "keep") == 0)
                *ret = GMEM_POLICY_KEEP;
        else if (strcmp(p, "connection") == 0)
                *ret = GMEM_POLICY_CONNECTION;
        else
                return gmem_error(-EINVAL, "policy '%.40s' (keep, connection)", p);
        return 0;
}

static int op_hello(struct op_ctx *x) {
        uint64_t version;
        cJSON *r, *limits;
        int k = json_get_u64(x->req, "version", false, GMEMD_PROTOCOL_VERSION, &version);

        if (k < 0)
                return k;
        if (version < 1)
                return gmem_error(-EPROTONOSUPPORT, "protocol version %" PRIu64 " (this gmemd speaks 1)", version);
        x->c->hello = true;
        r = cJSON_CreateObject();
        json_add_u64(r, "version", MIN(version, (uint64_t) GMEMD_PROTOCOL_VERSION));
        cJSON_AddStringToObject(r, "server", "gmemd " GMEM_VERSION_STRING);
        json_add_u64(r, "uid", x->c->cred.uid);
        limits = cJSON_AddObjectToObject(r, "limits");
        json_add_u64(limits, "max_message_bytes", x->d->config.limits.max_message_bytes);
        json_add_u64(limits, "max_fds_per_message", x->d->config.limits.max_fds_per_message);
        conn_reply_ok(x->c, x->id, r, -1);
        return 0;
}

static int op_caps(struct op_ctx *x) {
        _cleanup_free_ char *json = NULL;
        struct gmem_caps caps;
        cJSON *r;
        int k = gmem_caps_probe(&caps);

        if (k < 0 || (k = gmem_caps_to_json(&caps, &json)) < 0)
                return k;
        r = cJSON_CreateObject();
        cJSON_AddItemToObject(r, "caps", cJSON_Parse(json));
        conn_reply_ok(x->c, x->id, r, -1);
        return 0;
}

static int op_create(struct op_ctx *x) {
        const char *name, *backend_name;
        enum gmem_backend backend;
        enum gmem_policy policy;
        struct gmem_region *r = NULL;
        uint64_t size, page;
        struct managed *m;
        bool prefault;
        int k;

        if ((k = json_get_str(x->req, "name", true, NULL, &name)) < 0 ||
            (k = json_get_u64(x->req, "size", true, 0, &size)) < 0 ||
            (k = json_get_str(x->req, "backend", false, "memfd", &backend_name)) < 0 ||
            (k = json_get_u64(x->req, "page_size", false, 2 * MiB, &page)) < 0 ||
            (k = json_get_bool(x->req, "prefault", false, &prefault)) < 0 ||
            (k = parse_policy(x->req, &policy)) < 0 ||
            (k = gmem_backend_from_string(backend_name, &backend)) < 0)
                return k;
        if (backend != GMEM_BACKEND_HUGETLB && cJSON_GetObjectItemCaseSensitive(x->req, "page_size"))
                return gmem_error(-EINVAL, "create '%s': page_size is only for hugetlb regions", name);
        if (backend == GMEM_BACKEND_GUEST_MEMFD)
                return gmem_error(-EINVAL, "create '%s': a guest_memfd can only be made by its VM's creator: create it "
                                  "in the VMM and register it", name);
        if (!region_name_valid(name))
                return gmem_error(-EINVAL, "region name '%.80s' must match [A-Za-z0-9._-]{1,64}", name);
        if (region_find(x->d, name))
                return gmem_error(-EEXIST, "region '%s' already exists", name);
        if (size > x->d->config.limits.max_bytes_total)
                return gmem_error(-ENOSPC, "create '%s': %" PRIu64 " bytes exceed the daemon's limit", name, size);

        k = backend == GMEM_BACKEND_HUGETLB ? gmem_region_new_hugetlb(page, size, &r) : gmem_region_new_memfd(backend, size, &r);
        if (k < 0)
                return k;
        k = region_add(x->d, name, r, x->c, policy, "created", prefault, &m);
        if (k < 0) {
                gmem_region_free(r);
                return k;
        }
        if (prefault) {
                struct job *j = job_new(x->d, JOB_PREFAULT, m, x->c, x->id);
                if (!j) {
                        region_release(x->d, m);
                        return gmem_error(-ENOMEM, "create '%s': prefault job", name);
                }
                j->len = size;
                j->publish_on_success = true;
                k = job_submit(x->d, j);
                if (k < 0) {
                        job_discard(x->d, j);
                        region_release(x->d, m);
                        return k;
                }
                return 0; /* answered when the memory is in */
        }
        reply_region(x, m, -1);
        return 0;
}

static int op_register(struct op_ctx *x) {
        const char *name;
        enum gmem_policy policy;
        struct gmem_region *r = NULL;
        const cJSON *flags_item = cJSON_GetObjectItemCaseSensitive(x->req, "flags");
        struct managed *m;
        uint64_t flags;
        int k, fd;

        if ((k = json_get_str(x->req, "name", true, NULL, &name)) < 0 ||
            (k = json_get_u64(x->req, "flags", false, 0, &flags)) < 0 ||
            (k = parse_policy(x->req, &policy)) < 0)
                return k;
        if (!region_name_valid(name))
                return gmem_error(-EINVAL, "region name '%.80s' must match [A-Za-z0-9._-]{1,64}", name);
        if (region_find(x->d, name))
                return gmem_error(-EEXIST, "region '%s' already exists", name);

        fd = x->fds[0];
        k = flags_item && !cJSON_IsNull(flags_item) ? gmem_region_adopt_guest_memfd(fd, flags, &r) : gmem_region_adopt(fd, &r);
        if (k == -EBADFD && flags_item && !cJSON_IsNull(flags_item)) {
                /* 'flags' only describe a guest_memfd: anything else is adopted for what it is */
                gmem_error_clear();
                k = gmem_region_adopt(fd, &r);
                if (k >= 0 && gmem_region_backend(r) != GMEM_BACKEND_GUEST_MEMFD && flags != 0) {
                        take_fd(x, 0);
                        gmem_region_free(r);
                        return gmem_error(-EINVAL, "register '%s': flags 0x%" PRIx64 " given for a non-guest_memfd", name, flags);
                }
        }
        if (k < 0)
                return gmem_error_wrap(k, "register '%s'", name);
        take_fd(x, 0); /* the region owns it now */
        if (gmem_region_backend(r) == GMEM_BACKEND_MEMFD || gmem_region_backend(r) == GMEM_BACKEND_HUGETLB) {
                /* An unsealed memfd could grow past the byte limits it was counted against, or shrink
                 * under the daemon and every holder: its size must be sealed (adopt tried). */
                int seals = fcntl(gmem_region_fd(r), F_GET_SEALS);
                if (seals < 0 || (seals & (F_SEAL_SHRINK | F_SEAL_GROW)) != (F_SEAL_SHRINK | F_SEAL_GROW)) {
                        gmem_region_free(r);
                        return gmem_error(-EPERM, "register '%s': the memfd's size cannot be sealed; create it with "
                                          "MFD_ALLOW_SEALING", name);
                }
        }
        k = region_add(x->d, name, r, x->c, policy, "registered", false, &m);
        if (k < 0) {
                gmem_region_free(r);
                return k;
        }
        reply_region(x, m, -1);
        return 0;
}

static int op_open(struct op_ctx *x) {
        struct managed *m;
        int fd, k = lookup(x, ACCESS_USE, "open", &m);

        if (k < 0)
                return k;
        fd = fcntl(gmem_region_fd(m->region), F_DUPFD_CLOEXEC, 3);
        if (fd < 0)
                return gmem_error(negative_errno(), "open '%s': dup", m->name);
        region_add_holder(m, x->c, "opened");
        log_debug("region '%s' opened by pid %d uid %d", m->name, x->c->cred.pid, x->c->cred.uid);
        reply_region(x, m, fd);
        return 0;
}

static int op_list(struct op_ctx *x) {
        cJSON *r = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(r, "regions");

        for (struct managed *m = x->d->regions; m; m = m->next)
                if (!m->hidden && region_may(x->c, m, ACCESS_USE))
                        cJSON_AddItemToArray(arr, region_to_json(x->d, m));
        conn_reply_ok(x->c, x->id, r, -1);
        return 0;
}

static int op_info(struct op_ctx *x) {
        struct managed *m;
        int k = lookup(x, ACCESS_USE, "see", &m);
        if (k < 0)
                return k;
        reply_region(x, m, -1);
        return 0;
}

/* offset/length of the request within the region: length defaults to the rest */
static int request_range(struct op_ctx *x, const struct managed *m, const char *what, uint64_t def_len,
                         uint64_t *ret_off, uint64_t *ret_len) {
        uint64_t size = gmem_region_size(m->region), off, len;
        int k;

        if ((k = json_get_u64(x->req, "offset", false, 0, &off)) < 0)
                return k;
        if (off > size)
                return gmem_error(-ERANGE, "%s '%s': offset %" PRIu64 " is beyond the region's %" PRIu64 " bytes", what,
                                  m->name, off, size);
        if ((k = json_get_u64(x->req, "length", false, MIN(def_len, size - off), &len)) < 0)
                return k;
        if (len == 0)
                return gmem_error(-EINVAL, "%s '%s': length 0", what, m->name);
        if (len > size - off)
                return gmem_error(-ERANGE, "%s '%s': range %" PRIu64 "+%" PRIu64 " is beyond the region's %" PRIu64 " bytes",
                                  what, m->name, off, len, size);
        *ret_off = off;
        *ret_len = len;
        return 0;
}

static int start_job(struct op_ctx *x, enum job_op op, struct managed *m, uint64_t off, uint64_t len, uint64_t fd_off,
                     int fd_slot) {
        struct job *j = job_new(x->d, op, m, x->c, x->id);
        int k;

        if (!j)
                return gmem_error(-ENOMEM, "%s '%s': job", job_op_name(op), m->name);
        j->off = off;
        j->len = len;
        j->fd_off = fd_off;
        if (fd_slot >= 0)
                j->fd = take_fd(x, (unsigned) fd_slot);
        k = job_submit(x->d, j);
        if (k < 0) {
                job_discard(x->d, j);
                return gmem_error_wrap(k, "%s '%s'", job_op_name(op), m->name);
        }
        return 0;
}

static int op_populate(struct op_ctx *x) {
        uint64_t off, len, src_off, def_len = UINT64_MAX;
        struct managed *m;
        struct stat st;
        int k;

        if ((k = lookup(x, ACCESS_USE, "populate", &m)) < 0 ||
            (k = json_get_u64(x->req, "src_offset", false, 0, &src_off)) < 0)
                return k;
        if (fstat(x->fds[0], &st) < 0)
                return gmem_error(negative_errno(), "populate '%s': fstat source", m->name);
        if (S_ISREG(st.st_mode))
                def_len = (uint64_t) st.st_size > src_off ? (uint64_t) st.st_size - src_off : 0;
        else if (!cJSON_GetObjectItemCaseSensitive(x->req, "length"))
                return gmem_error(-EINVAL, "populate '%s': a source that is not a regular file needs a length", m->name);
        if (def_len == 0 && !cJSON_GetObjectItemCaseSensitive(x->req, "length"))
                return gmem_error(-ENODATA, "populate '%s': the source has no data at offset %" PRIu64, m->name, src_off);
        if ((k = request_range(x, m, "populate", def_len, &off, &len)) < 0)
                return k;
        return start_job(x, JOB_POPULATE, m, off, len, src_off, 0);
}

static int op_prefault(struct op_ctx *x) {
        uint64_t off, len;
        struct managed *m;
        int k;

        if ((k = lookup(x, ACCESS_USE, "prefault", &m)) < 0 ||
            (k = request_range(x, m, "prefault", UINT64_MAX, &off, &len)) < 0)
                return k;
        return start_job(x, JOB_PREFAULT, m, off, len, 0, -1);
}

static int op_dump(struct op_ctx *x) {
        uint64_t off, len, dst_off;
        struct managed *m;
        int k;

        if ((k = lookup(x, ACCESS_USE, "dump", &m)) < 0 ||
            (k = json_get_u64(x->req, "dst_offset", false, 0, &dst_off)) < 0 ||
            (k = request_range(x, m, "dump", UINT64_MAX, &off, &len)) < 0)
                return k;
        return start_job(x, JOB_DUMP, m, off, len, dst_off, 0);
}

static int op_punch(struct op_ctx *x) {
        uint64_t off, len;
        struct managed *m;
        int k;

        if ((k = lookup(x, ACCESS_USE, "punch", &m)) < 0)
                return k;
        if (!cJSON_GetObjectItemCaseSensitive(x->req, "offset") || !cJSON_GetObjectItemCaseSensitive(x->req, "length"))
                return gmem_error(-EINVAL, "punch '%s': offset and length are required", m->name);
        if ((k = request_range(x, m, "punch", 0, &off, &len)) < 0)
                return k;
        k = gmem_punch_hole(m->region, off, len);
        if (k < 0)
                return gmem_error_wrap(k, "punch '%s'", m->name);
        conn_reply_ok(x->c, x->id, NULL, -1);
        return 0;
}

static int grant_or_revoke(struct op_ctx *x, bool grant) {
        const cJSON *uid_item = cJSON_GetObjectItemCaseSensitive(x->req, "uid"),
                    *gid_item = cJSON_GetObjectItemCaseSensitive(x->req, "gid");
        uint32_t *list;
        unsigned *n;
        struct managed *m;
        uint64_t id;
        int k;

        if ((k = lookup(x, ACCESS_ADMIN, grant ? "grant" : "revoke", &m)) < 0)
                return k;
        if (!!uid_item == !!gid_item)
                return gmem_error(-EINVAL, "%s '%s': give exactly one of uid and gid", grant ? "grant" : "revoke", m->name);
        if ((k = json_get_u64(x->req, uid_item ? "uid" : "gid", true, 0, &id)) < 0)
                return k;
        if (id >= UINT32_MAX)
                return gmem_error(-EINVAL, "%s '%s': %s %" PRIu64 " is out of range", grant ? "grant" : "revoke", m->name,
                                  uid_item ? "uid" : "gid", id);
        list = uid_item ? (uint32_t *) m->grant_uids : (uint32_t *) m->grant_gids;
        n = uid_item ? &m->n_grant_uids : &m->n_grant_gids;
        for (unsigned i = 0; i < *n; i++)
                if (list[i] == id) {
                        if (!grant) {
                                memmove(&list[i], &list[i + 1], (*n - i - 1) * sizeof(*list));
                                (*n)--;
                        }
                        goto done;
                }
        if (grant) {
                if (*n >= REGION_MAX_GRANTS)
                        return gmem_error(-ENOSPC, "grant '%s': %u %ss granted already (limit)", m->name, *n,
                                          uid_item ? "uid" : "gid");
                list[(*n)++] = (uint32_t) id;
        }
done:
        log_info("region '%s': %s %s %" PRIu64 " (by uid %d)", m->name, grant ? "granted to" : "revoked from",
                 uid_item ? "uid" : "gid", id, x->c->cred.uid);
        reply_region(x, m, -1);
        return 0;
}

static int op_grant(struct op_ctx *x) {
        return grant_or_revoke(x, true);
}

static int op_revoke(struct op_ctx *x) {
        return grant_or_revoke(x, false);
}

static int op_release(struct op_ctx *x) {
        struct managed *m;
        int k = lookup(x, ACCESS_ADMIN, "release", &m);
        if (k < 0)
                return k;
        region_release(x->d, m);
        conn_reply_ok(x->c, x->id, NULL, -1);
        return 0;
}

static int op_cancel(struct op_ctx *x) {
        struct job *j;
        uint64_t id;
        int k = json_get_u64(x->req, "job", true, 0, &id);

        if (k < 0)
                return k;
        j = job_find(x->d, id);
        if (!j)
                return gmem_error(-ENOENT, "no job %" PRIu64, id);
        if (!region_may(x->c, j->m, ACCESS_USE))
                return gmem_error(-EACCES, "job %" PRIu64 " (region '%s'): uid %d may not cancel it", id, j->m->name,
                                  x->c->cred.uid);
        __atomic_store_n(&j->cancel, 1, __ATOMIC_RELAXED);
        conn_reply_ok(x->c, x->id, NULL, -1);
        return 0;
}

static int op_watch(struct op_ctx *x) {
        x->c->watching = true;
        conn_reply_ok(x->c, x->id, NULL, -1);
        return 0;
}

static const struct {
        const char *name;
        int (*fn)(struct op_ctx *x);
        unsigned fds;
} ops[] = {
        { "hello", op_hello, 0 },       { "caps", op_caps, 0 },         { "create", op_create, 0 },
        { "register", op_register, 1 }, { "open", op_open, 0 },         { "list", op_list, 0 },
        { "info", op_info, 0 },         { "populate", op_populate, 1 }, { "prefault", op_prefault, 0 },
        { "dump", op_dump, 1 },         { "punch", op_punch, 0 },       { "grant", op_grant, 0 },
        { "revoke", op_revoke, 0 },     { "release", op_release, 0 },   { "cancel", op_cancel, 0 },
        { "watch", op_watch, 0 },
};

void dispatch(struct conn *c, cJSON *req, int *fds, unsigned n_fds) {
        struct op_ctx x = { .d = c->d, .c = c, .req = req, .fds = fds, .n_fds = n_fds };
        const cJSON *op_item = cJSON_GetObjectItemCaseSensitive(req, "op");
        const char *op = cJSON_IsString(op_item) ? op_item->valuestring : NULL;
        int k = 0;

        x.id = cJSON_GetObjectItemCaseSensitive(req, "id");
        gmem_error_clear();
        if (!op)
                k = gmem_error(-EINVAL, "a request needs a string member 'op'");
        else if (!cJSON_IsNumber(x.id) || x.id->valuedouble != (double) (int64_t) x.id->valuedouble ||
                 x.id->valuedouble < -9007199254740992.0 || x.id->valuedouble > 9007199254740992.0)
                k = gmem_error(-EINVAL, "a request needs an integer member 'id'");
        else if (!c->hello && strcmp(op, "hello") != 0)
                k = gmem_error(-EPROTO, "the first request must be 'hello', not '%.40s'", op);
        else {
                size_t i;
                for (i = 0; i < ELEMENTSOF(ops); i++)
                        if (strcmp(op, ops[i].name) == 0)
                                break;
                if (i == ELEMENTSOF(ops))
                        k = gmem_error(-EOPNOTSUPP, "unknown op '%.40s'", op);
                else if (n_fds != ops[i].fds)
                        k = gmem_error(-EINVAL, "op '%s' takes %u file descriptor%s, got %u", op, ops[i].fds,
                                       ops[i].fds == 1 ? "" : "s", n_fds);
                else
                        k = ops[i].fn(&x);
        }
        if (k < 0) {
                /* echo only an id that is one: anything else is answered with "id":null */
                if (!cJSON_IsNumber(x.id) || x.id->valuedouble != (double) (int64_t) x.id->valuedouble)
                        x.id = NULL;
                log_debug("client %" PRIu64 " (pid %d): %s", c->serial, c->cred.pid, gmem_last_error());
                conn_reply_error(c, x.id, k, gmem_last_error());
        }
        for (unsigned i = 0; i < n_fds; i++)
                if (fds[i] >= 0)
                        close(fds[i]);
}
