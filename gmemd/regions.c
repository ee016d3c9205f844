/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The regions gmemd holds: the table, who may do what, who holds them, and their events. */
#include <inttypes.h>
#include <pthread.h>
#include <string.h>

#include "error.h"
#include "job.h"
#include "json-util.h"
#include "log.h"
#include "notify.h"
#include "region.h"
#include "session.h"

/* Below this a guest_memfd or secret region is measured on the loop (mincore, about 11 us a MiB
 * here); above it a worker measures, and list and info show the last figure. */
#define RESIDENT_SYNC_BYTES (32 * MiB)
#define RESIDENT_MAX_AGE_USEC 1000000

struct managed *region_find(struct daemon *d, const char *name) {
        for (struct managed *m = d->regions; m; m = m->next)
                if (strcmp(m->name, name) == 0)
                        return m;
        return NULL;
}

uint64_t region_bytes_of_uid(struct daemon *d, uid_t uid, uint64_t *ret_count) {
        uint64_t sum = 0, n = 0;
        for (struct managed *m = d->regions; m; m = m->next)
                if (m->owner == uid) {
                        sum += gmem_region_size(m->region);
                        n++;
                }
        if (ret_count)
                *ret_count = n;
        return sum;
}

bool region_may(const struct peer *c, const struct managed *m, enum access a) {
        if (a == ACCESS_SEE && (m->hidden || m->released))
                return false;
        if (c->uid == 0 || c->uid == m->owner)
                return true;
        if (a == ACCESS_ADMIN)
                return false;
        for (unsigned i = 0; i < m->n_grant_uids; i++)
                if (m->grant_uids[i] == c->uid)
                        return true;
        for (unsigned i = 0; i < m->n_grant_gids; i++) {
                if (m->grant_gids[i] == c->gid)
                        return true;
                for (unsigned g = 0; g < c->n_groups; g++)
                        if (m->grant_gids[i] == c->groups[g])
                                return true;
        }
        return false;
}

static int cmp_region_names(const void *a, const void *b) {
        return strcmp((*(struct managed *const *) a)->name, (*(struct managed *const *) b)->name);
}

int regions_visible(struct daemon *d, const struct peer *p, struct managed ***ret, size_t *ret_n) {
        struct managed **v = calloc(d->n_regions + 1, sizeof(*v));
        size_t n = 0;

        if (!v)
                return gmem_error(-ENOMEM, "%" PRIu64 " regions", d->n_regions);
        for (struct managed *m = d->regions; m && n < d->n_regions; m = m->next)
                if (region_may(p, m, ACCESS_SEE))
                        v[n++] = m;
        qsort(v, n, sizeof(*v), cmp_region_names);
        *ret = v;
        *ret_n = n;
        return 0;
}

void region_add_holder(struct managed *m, const struct peer *p, struct session *s, const char *role) {
        struct holder h = { .pid = p->pid, .uid = p->uid, .role = role, .session = s };

        for (unsigned i = 0; i < m->n_holders; i++)
                if (m->holders[i].pid == p->pid && m->holders[i].session == s && strcmp(m->holders[i].role, role) == 0)
                        return;
        if (m->n_holders == REGION_MAX_HOLDERS) {
                /* full: forget the oldest holder that is gone, else the oldest that only opened */
                unsigned victim = REGION_MAX_HOLDERS;
                for (unsigned i = 0; i < m->n_holders && victim == REGION_MAX_HOLDERS; i++)
                        if (!m->holders[i].session && strcmp(m->holders[i].role, "opened") == 0)
                                victim = i;
                for (unsigned i = 0; i < m->n_holders && victim == REGION_MAX_HOLDERS; i++)
                        if (strcmp(m->holders[i].role, "opened") == 0)
                                victim = i;
                if (victim == REGION_MAX_HOLDERS)
                        return;
                memmove(&m->holders[victim], &m->holders[victim + 1], (m->n_holders - victim - 1) * sizeof(h));
                m->n_holders--;
        }
        m->holders[m->n_holders++] = h;
}

/* The bytes uid holds against max_bytes_per_uid: its regions and its jobs' metadata. */
static uint64_t bytes_of_uid(struct daemon *d, uid_t uid, uint64_t *ret_regions) {
        return region_bytes_of_uid(d, uid, ret_regions) + jobs_charged_of_uid(d, uid);
}

int quota_admit(struct daemon *d, uid_t uid, uint64_t bytes, const char *what) {
        const struct gmemd_limits *l = &d->config.limits;
        uint64_t held = d->bytes_total + d->charged_total, used;

        if (d->restoring)
                return 0; /* what the daemon held before its restart is held again, whatever the limits are now */
        if (bytes > l->max_bytes_total || held > l->max_bytes_total - bytes)
                return gmem_error(-ENOSPC, "%s: %" PRIu64 " more bytes would exceed the daemon's limit of %" PRIu64, what, bytes,
                                  l->max_bytes_total);
        if (uid == 0)
                return 0;
        used = bytes_of_uid(d, uid, NULL);
        if (bytes > l->max_bytes_per_uid || used > l->max_bytes_per_uid - bytes)
                return gmem_error(-EDQUOT, "%s: uid %d holds %" PRIu64 " bytes; %" PRIu64 " more would exceed its limit of %" PRIu64,
                                  what, (int) uid, used, bytes, l->max_bytes_per_uid);
        return 0;
}

int region_admit(struct daemon *d, const char *name, uint64_t size, uid_t uid) {
        const struct gmemd_limits *l = &d->config.limits;
        char what[96];
        uint64_t mine = 0;

        if (!proto_name_valid(name))
                return gmem_error(-EINVAL, "region name '%.80s' must match [A-Za-z0-9._-]{1,64}", name);
        if (region_find(d, name))
                return gmem_error(-EEXIST, "region '%s' already exists", name);
        if (d->restoring)
                return 0;
        if (d->n_regions >= l->max_regions)
                return gmem_error(-ENOSPC, "region '%s': the daemon holds %" PRIu64 " regions (limit)", name, d->n_regions);
        if (uid != 0 && (region_bytes_of_uid(d, uid, &mine), mine >= l->max_regions_per_uid))
                return gmem_error(-EDQUOT, "region '%s': uid %d holds %" PRIu64 " regions (max_regions_per_uid)", name, (int) uid,
                                  mine);
        snprintf(what, sizeof(what), "region '%s'", name);
        return quota_admit(d, uid, size, what);
}

int region_add(struct daemon *d, const char *name, struct gmem_region *r, const struct peer *owner, struct session *c,
               enum gmem_policy policy, const char *role, bool hidden, struct managed **ret) {
        uint64_t size = gmem_region_size(r);
        struct managed *m;
        int k;

        if ((k = region_admit(d, name, size, owner->uid)) < 0)
                return k;
        m = calloc(1, sizeof(*m));
        if (!m)
                return gmem_error(-ENOMEM, "region '%s'", name);
        snprintf(m->name, sizeof(m->name), "%s", name);
        m->region = r;
        m->owner = owner->uid;
        m->policy = policy;
        m->creator = c;
        m->created_usec = now_usec();
        m->hidden = hidden;
        m->refs = 1;
        region_add_holder(m, owner, c, role);
        LIST_PREPEND(d->regions, m);
        d->n_regions++;
        d->bytes_total += size;
        if (!d->restoring) /* store.c says what it restored */
                log_region(LOG_INFO, strcmp(role, "registered") == 0 ? "register" : "create", name, owner->uid, "region '%s': %s, %" PRIu64 " bytes, %s by pid %d uid %d", name,
                         gmem_backend_to_string(gmem_region_backend(r)), size, role, owner->pid, owner->uid);
        notify_region_added(d, m);
        region_resident_changed(d, m); /* measured before anyone asks */
        *ret = m;
        return 0;
}

void region_publish(struct daemon *d, struct managed *m) {
        if (!m->hidden)
                return;
        m->hidden = false;
        notify_region_added(d, m);
}

static void *free_region_thread(void *r) {
        gmem_region_free(r);
        return NULL;
}

/* Freeing a large region (unmapping it and the last close of its file, which gives its pages
 * back) takes the kernel a while — 80 ms for 256 MiB here: never on the loop. */
static void region_free_later(struct gmem_region *r) {
        pthread_attr_t a;
        pthread_t t;

        if (gmem_region_size(r) < 16 * MiB || pthread_attr_init(&a) != 0) {
                gmem_region_free(r);
                return;
        }
        (void) pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&t, &a, free_region_thread, r) != 0)
                gmem_region_free(r);
        pthread_attr_destroy(&a);
}

void region_unref(struct daemon *d, struct managed *m) {
        if (!m || --m->refs > 0)
                return;
        if (d && !d->stopping)
                region_free_later(m->region);
        else
                gmem_region_free(m->region); /* at exit: the process's end frees it anyway */
        free(m);
}

void region_release(struct daemon *d, struct managed *m) {
        if (m->released)
                return;
        jobs_cancel_region(d, m);
        notify_region_removed(d, m);
        /* from here on the region is gone for everyone: its late job events are not sent */
        m->released = true;
        LIST_REMOVE(d->regions, m);
        d->n_regions--;
        d->bytes_total -= gmem_region_size(m->region);
        log_region(LOG_INFO, "release", m->name, m->owner, "region '%s' released", m->name);
        region_unref(d, m);
}

void regions_session_ended(struct daemon *d, struct session *c) {
        for (struct managed *m = d->regions, *next; m; m = next) {
                next = m->next;
                for (unsigned i = 0; i < m->n_holders; i++)
                        if (m->holders[i].session == c)
                                m->holders[i].session = NULL;
                if (m->creator == c) {
                        m->creator = NULL;
                        if (m->policy == GMEM_POLICY_CONNECTION && !d->stopping)
                                region_release(d, m);
                        else
                                log_info("region '%s': pid %d (%s), which %s it, is gone; the region stays", m->name,
                                         c->peer.pid, c->front, m->holders[0].role);
                }
        }
}

void region_set_state(struct daemon *d, struct managed *m, enum gmem_region_state s) {
        if (m->state == s)
                return;
        m->state = s;
        notify_region_changed(d, m);
}

/* Whether measuring m takes a walk too long for the loop. */
static bool resident_is_slow(const struct managed *m) {
        enum gmem_backend b = gmem_region_backend(m->region);
        return b != GMEM_BACKEND_MEMFD && b != GMEM_BACKEND_HUGETLB && gmem_region_size(m->region) > RESIDENT_SYNC_BYTES;
}

void region_resident_changed(struct daemon *d, struct managed *m) {
        if (!resident_is_slow(m) || m->released)
                return;
        m->resident_usec = 0;
        job_measure(d, m);
}

int region_resident(struct daemon *d, struct managed *m, uint64_t *ret) {
        uint64_t now = mono_usec();
        int k;

        if (!resident_is_slow(m)) {
                /* memfd and hugetlb count their pages (st_blocks); small ones are a short walk */
                k = gmem_region_resident(m->region, 0, gmem_region_size(m->region), ret);
                if (k >= 0) {
                        m->resident_bytes = *ret;
                        m->resident_known = true;
                        m->resident_usec = now;
                }
                return k;
        }
        if (!m->resident_known || now - m->resident_usec > RESIDENT_MAX_AGE_USEC)
                job_measure(d, m);
        if (!m->resident_known)
                return -EAGAIN;
        *ret = m->resident_bytes;
        return 0;
}

cJSON *region_to_json(struct daemon *d, struct managed *m, enum region_json what) {
        const struct gmem_region *r = m->region;
        cJSON *o = cJSON_CreateObject(), *grants, *uids, *gids, *holders, *jobs;
        uint64_t resident = 0;

        cJSON_AddStringToObject(o, "name", m->name);
        cJSON_AddStringToObject(o, "backend", gmem_backend_to_string(gmem_region_backend(r)));
        json_add_u64(o, "size", gmem_region_size(r));
        json_add_u64(o, "flags", gmem_region_flags(r));
        json_add_u64(o, "page_size", gmem_region_page_size(r));
        json_add_u64(o, "owner_uid", m->owner);
        grants = cJSON_AddObjectToObject(o, "grants");
        uids = cJSON_AddArrayToObject(grants, "uids");
        for (unsigned i = 0; i < m->n_grant_uids; i++)
                cJSON_AddItemToArray(uids, json_u64(m->grant_uids[i]));
        gids = cJSON_AddArrayToObject(grants, "gids");
        for (unsigned i = 0; i < m->n_grant_gids; i++)
                cJSON_AddItemToArray(gids, json_u64(m->grant_gids[i]));
        cJSON_AddStringToObject(o, "policy", gmem_policy_to_string(m->policy));
        cJSON_AddStringToObject(o, "state", gmem_region_state_to_string(m->state));
        json_add_u64(o, "populated_bytes", m->populated_bytes);
        /* only list and info measure it: the other replies leave it out */
        if (what == REGION_JSON_MEASURED) {
                if (region_resident(d, m, &resident) < 0)
                        cJSON_AddNullToObject(o, "resident_bytes");
                else
                        json_add_u64(o, "resident_bytes", resident);
        }
        json_add_u64(o, "created_usec", m->created_usec);
        holders = cJSON_AddArrayToObject(o, "holders");
        for (unsigned i = 0; i < m->n_holders; i++) {
                cJSON *h = cJSON_CreateObject();
                json_add_u64(h, "pid", (uint64_t) m->holders[i].pid);
                json_add_u64(h, "uid", m->holders[i].uid);
                cJSON_AddStringToObject(h, "role", m->holders[i].role);
                if (what != REGION_JSON_SAVED)
                        cJSON_AddBoolToObject(h, "connected", m->holders[i].session != NULL);
                cJSON_AddItemToArray(holders, h);
        }
        if (what == REGION_JSON_SAVED)
                return o;
        jobs = cJSON_AddArrayToObject(o, "jobs");
        for (struct job *j = d->jobs; j; j = j->next)
                if (j->m == m) {
                        cJSON *jo = cJSON_CreateObject();
                        json_add_u64(jo, "job", j->id);
                        cJSON_AddStringToObject(jo, "op", job_op_name(j->op));
                        json_add_u64(jo, "done", __atomic_load_n(&j->done, __ATOMIC_RELAXED));
                        json_add_u64(jo, "total", j->len);
                        cJSON_AddItemToArray(jobs, jo);
                }
        return o;
}

/* At exit: the regions go with the process, but they are not "removed" — under systemd their fds
 * stay in the fd store for the next gmemd, so nothing is announced or taken out of the store. */
void regions_free_all(struct daemon *d) {
        while (d->regions) {
                struct managed *m = d->regions;
                d->regions = m->next;
                m->released = true;
                m->prev = m->next = NULL;
                d->n_regions--;
                d->bytes_total -= gmem_region_size(m->region);
                region_unref(d, m);
        }
}
