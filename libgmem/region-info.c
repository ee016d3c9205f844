/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What gmemd says about regions (its "region" objects, docs/protocol.md), as C values: the client's
 * typed list and info. Values this library does not know (a backend, policy or state a newer
 * gmemd names) read as -1; a member of the wrong type is a protocol error. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "error.h"
#include "protocol.h"

struct info_holder {
        int32_t pid;
        uint32_t uid;
        char role[16];
        bool connected;
};

struct info_job {
        uint64_t id, done, total;
        char op[16];
};

struct gmem_region_info {
        char name[PROTO_NAME_MAX + 1];
        enum gmem_backend backend;
        enum gmem_policy policy;
        enum gmem_region_state state;
        uint64_t size, flags, page_size, populated_bytes, resident_bytes, created_usec;
        bool resident_known;
        uint32_t owner_uid;
        uint32_t *uids, *gids;
        unsigned n_uids, n_gids;
        struct info_holder *holders;
        unsigned n_holders;
        struct info_job *jobs;
        unsigned n_jobs;
};

struct gmem_region_list {
        struct gmem_region_info *items;
        unsigned n;
};

static void info_done(struct gmem_region_info *i) {
        free(i->uids);
        free(i->gids);
        free(i->holders);
        free(i->jobs);
}

_public_ struct gmem_region_info *gmem_region_info_free(struct gmem_region_info *i) {
        if (i) {
                info_done(i);
                free(i);
        }
        return NULL;
}

_public_ struct gmem_region_list *gmem_region_list_free(struct gmem_region_list *l) {
        if (l) {
                for (unsigned n = 0; n < l->n; n++)
                        info_done(&l->items[n]);
                free(l->items);
                free(l);
        }
        return NULL;
}

static int bad(const char *what, const char *key) {
        return gmem_error(-EPROTO, "%s: gmemd's region object has no valid \"%s\"", what, key);
}

static int get_u64(const cJSON *o, const char *key, const char *what, uint64_t *ret) {
        return gmem_json_get_u64(o, key, ret) < 0 ? bad(what, key) : 0;
}

static int get_u32(const cJSON *o, const char *key, const char *what, uint32_t *ret) {
        uint64_t v;
        if (gmem_json_get_u64(o, key, &v) < 0 || v > UINT32_MAX)
                return bad(what, key);
        *ret = (uint32_t) v;
        return 0;
}

static const char *get_str(const cJSON *o, const char *key) {
        return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, key));
}

/* an array of 32-bit ids */
static int get_ids(const cJSON *a, const char *what, uint32_t **ret, unsigned *ret_n) {
        unsigned n = (unsigned) cJSON_GetArraySize(a), i = 0;
        const cJSON *v;
        uint32_t *ids;

        if (!cJSON_IsArray(a))
                return bad(what, "grants");
        if (n == 0)
                return 0;
        ids = calloc(n, sizeof(*ids));
        if (!ids)
                return gmem_error(-ENOMEM, "%s: grants", what);
        cJSON_ArrayForEach(v, a) {
                uint64_t id;
                if (proto_number_to_u64(v, &id) < 0 || id > UINT32_MAX) {
                        free(ids);
                        return bad(what, "grants");
                }
                ids[i++] = (uint32_t) id;
        }
        *ret = ids;
        *ret_n = i;
        return 0;
}

static int parse(const cJSON *o, const char *what, struct gmem_region_info *ret) {
        struct gmem_region_info i = { .backend = GMEM_BACKEND_INVALID };
        const cJSON *grants, *holders, *jobs, *v, *res;
        const char *s;
        unsigned n;
        int k;

        if (!cJSON_IsObject(o))
                return gmem_error(-EPROTO, "%s: a region is not an object", what);
        s = get_str(o, "name");
        if (!s || !proto_name_valid(s))
                return bad(what, "name");
        snprintf(i.name, sizeof(i.name), "%s", s);
        if (!(s = get_str(o, "backend")))
                return bad(what, "backend");
        if (gmem_backend_from_string(s, &i.backend) < 0)
                i.backend = GMEM_BACKEND_INVALID;
        if (!(s = get_str(o, "policy")))
                return bad(what, "policy");
        if (gmem_policy_from_string(s, &i.policy) < 0)
                i.policy = (enum gmem_policy) -1;
        if (!(s = get_str(o, "state")))
                return bad(what, "state");
        if (gmem_region_state_from_string(s, &i.state) < 0)
                i.state = (enum gmem_region_state) -1;
        gmem_error_clear(); /* an unknown name is not this call's failure */
        if ((k = get_u64(o, "size", what, &i.size)) < 0 || (k = get_u64(o, "flags", what, &i.flags)) < 0 ||
            (k = get_u64(o, "page_size", what, &i.page_size)) < 0 ||
            (k = get_u32(o, "owner_uid", what, &i.owner_uid)) < 0 ||
            (k = get_u64(o, "populated_bytes", what, &i.populated_bytes)) < 0 ||
            (k = get_u64(o, "created_usec", what, &i.created_usec)) < 0)
                return k;
        res = cJSON_GetObjectItemCaseSensitive(o, "resident_bytes");
        if (res && !cJSON_IsNull(res)) {
                if (proto_number_to_u64(res, &i.resident_bytes) < 0)
                        return bad(what, "resident_bytes");
                i.resident_known = true;
        }

        grants = cJSON_GetObjectItemCaseSensitive(o, "grants");
        if ((k = get_ids(cJSON_GetObjectItemCaseSensitive(grants, "uids"), what, &i.uids, &i.n_uids)) < 0)
                goto fail;
        if ((k = get_ids(cJSON_GetObjectItemCaseSensitive(grants, "gids"), what, &i.gids, &i.n_gids)) < 0)
                goto fail;

        holders = cJSON_GetObjectItemCaseSensitive(o, "holders");
        n = (unsigned) cJSON_GetArraySize(holders);
        if (!cJSON_IsArray(holders)) {
                k = bad(what, "holders");
                goto fail;
        }
        if (n && !(i.holders = calloc(n, sizeof(*i.holders)))) {
                k = gmem_error(-ENOMEM, "%s: holders", what);
                goto fail;
        }
        cJSON_ArrayForEach(v, holders) {
                struct info_holder *h = &i.holders[i.n_holders];
                uint32_t pid = 0;
                if ((k = get_u32(v, "pid", what, &pid)) < 0 || (k = get_u32(v, "uid", what, &h->uid)) < 0)
                        goto fail;
                h->pid = (int32_t) pid;
                snprintf(h->role, sizeof(h->role), "%s", get_str(v, "role") ?: "");
                h->connected = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(v, "connected"));
                i.n_holders++;
        }

        jobs = cJSON_GetObjectItemCaseSensitive(o, "jobs");
        n = (unsigned) cJSON_GetArraySize(jobs);
        if (jobs && !cJSON_IsArray(jobs)) {
                k = bad(what, "jobs");
                goto fail;
        }
        if (n && !(i.jobs = calloc(n, sizeof(*i.jobs)))) {
                k = gmem_error(-ENOMEM, "%s: jobs", what);
                goto fail;
        }
        cJSON_ArrayForEach(v, jobs) {
                struct info_job *j = &i.jobs[i.n_jobs];
                if ((k = get_u64(v, "job", what, &j->id)) < 0 || (k = get_u64(v, "done", what, &j->done)) < 0 ||
                    (k = get_u64(v, "total", what, &j->total)) < 0)
                        goto fail;
                snprintf(j->op, sizeof(j->op), "%s", get_str(v, "op") ?: "");
                i.n_jobs++;
        }
        *ret = i;
        return 0;
fail:
        info_done(&i);
        return k;
}

int gmem_region_info_parse(const cJSON *o, const char *what, struct gmem_region_info **ret) {
        _cleanup_free_ struct gmem_region_info *i = calloc(1, sizeof(*i));
        int k;

        if (!i)
                return gmem_error(-ENOMEM, "%s", what);
        if ((k = parse(o, what, i)) < 0)
                return k;
        *ret = TAKE_PTR(i);
        return 0;
}

int gmem_region_list_parse(const cJSON *a, struct gmem_region_list **ret) {
        struct gmem_region_list *l;
        const cJSON *v;
        unsigned n;
        int k;

        if (!cJSON_IsArray(a))
                return gmem_error(-EPROTO, "list: gmemd's reply has no \"regions\" array");
        n = (unsigned) cJSON_GetArraySize(a);
        l = calloc(1, sizeof(*l));
        if (!l || (n && !(l->items = calloc(n, sizeof(*l->items))))) {
                free(l);
                return gmem_error(-ENOMEM, "list");
        }
        cJSON_ArrayForEach(v, a) {
                if ((k = parse(v, "list", &l->items[l->n])) < 0) {
                        gmem_region_list_free(l);
                        return k;
                }
                l->n++;
        }
        *ret = l;
        return 0;
}

_public_ unsigned gmem_region_list_count(const struct gmem_region_list *l) {
        return l ? l->n : 0;
}

_public_ const struct gmem_region_info *gmem_region_list_get(const struct gmem_region_list *l, unsigned n) {
        return l && n < l->n ? &l->items[n] : NULL;
}

_public_ const char *gmem_region_info_name(const struct gmem_region_info *i) {
        return i ? i->name : NULL;
}

_public_ enum gmem_backend gmem_region_info_backend(const struct gmem_region_info *i) {
        return i ? i->backend : GMEM_BACKEND_INVALID;
}

_public_ uint64_t gmem_region_info_size(const struct gmem_region_info *i) {
        return i ? i->size : 0;
}

_public_ uint64_t gmem_region_info_flags(const struct gmem_region_info *i) {
        return i ? i->flags : 0;
}

_public_ uint64_t gmem_region_info_page_size(const struct gmem_region_info *i) {
        return i ? i->page_size : 0;
}

_public_ uint32_t gmem_region_info_owner_uid(const struct gmem_region_info *i) {
        return i ? i->owner_uid : UINT32_MAX;
}

_public_ enum gmem_policy gmem_region_info_policy(const struct gmem_region_info *i) {
        return i ? i->policy : (enum gmem_policy) -1;
}

_public_ enum gmem_region_state gmem_region_info_state(const struct gmem_region_info *i) {
        return i ? i->state : (enum gmem_region_state) -1;
}

_public_ uint64_t gmem_region_info_populated_bytes(const struct gmem_region_info *i) {
        return i ? i->populated_bytes : 0;
}

_public_ int gmem_region_info_resident_bytes(const struct gmem_region_info *i, uint64_t *ret_bytes) {
        if (!i || !ret_bytes)
                return gmem_error(-EINVAL, "resident bytes: NULL argument");
        if (!i->resident_known)
                return gmem_error(-ENODATA, "resident bytes of '%s': not measured yet", i->name);
        *ret_bytes = i->resident_bytes;
        return 0;
}

_public_ uint64_t gmem_region_info_created_usec(const struct gmem_region_info *i) {
        return i ? i->created_usec : 0;
}

static int nth_id(const uint32_t *ids, unsigned n_ids, unsigned n, const char *kind, uint32_t *ret) {
        if (!ret)
                return gmem_error(-EINVAL, "%s grant: NULL result", kind);
        if (n >= n_ids)
                return gmem_error(-ERANGE, "%s grant %u: there are %u", kind, n, n_ids);
        *ret = ids[n];
        return 0;
}

_public_ unsigned gmem_region_info_grant_uid_count(const struct gmem_region_info *i) {
        return i ? i->n_uids : 0;
}

_public_ int gmem_region_info_grant_uid(const struct gmem_region_info *i, unsigned n, uint32_t *ret_uid) {
        return nth_id(i ? i->uids : NULL, i ? i->n_uids : 0, n, "uid", ret_uid);
}

_public_ unsigned gmem_region_info_grant_gid_count(const struct gmem_region_info *i) {
        return i ? i->n_gids : 0;
}

_public_ int gmem_region_info_grant_gid(const struct gmem_region_info *i, unsigned n, uint32_t *ret_gid) {
        return nth_id(i ? i->gids : NULL, i ? i->n_gids : 0, n, "gid", ret_gid);
}

_public_ unsigned gmem_region_info_holder_count(const struct gmem_region_info *i) {
        return i ? i->n_holders : 0;
}

_public_ int gmem_region_info_holder(const struct gmem_region_info *i, unsigned n, int32_t *ret_pid, uint32_t *ret_uid,
                                    const char **ret_role, bool *ret_connected) {
        const struct info_holder *h;

        if (!i || n >= i->n_holders)
                return gmem_error(-ERANGE, "holder %u: there are %u", n, i ? i->n_holders : 0);
        h = &i->holders[n];
        if (ret_pid)
                *ret_pid = h->pid;
        if (ret_uid)
                *ret_uid = h->uid;
        if (ret_role)
                *ret_role = h->role;
        if (ret_connected)
                *ret_connected = h->connected;
        return 0;
}

_public_ unsigned gmem_region_info_job_count(const struct gmem_region_info *i) {
        return i ? i->n_jobs : 0;
}

_public_ int gmem_region_info_job(const struct gmem_region_info *i, unsigned n, uint64_t *ret_job, const char **ret_op,
                                 uint64_t *ret_done, uint64_t *ret_total) {
        const struct info_job *j;

        if (!i || n >= i->n_jobs)
                return gmem_error(-ERANGE, "job %u: there are %u", n, i ? i->n_jobs : 0);
        j = &i->jobs[n];
        if (ret_job)
                *ret_job = j->id;
        if (ret_op)
                *ret_op = j->op;
        if (ret_done)
                *ret_done = j->done;
        if (ret_total)
                *ret_total = j->total;
        return 0;
}
