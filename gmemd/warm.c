/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "error.h"
#include "log.h"
#include "protocol.h"
#include "warm.h"

struct warm_slot {
        const struct warm_pool_config *cfg;
        struct gmem_region *ready[WARM_POOL_COUNT_MAX];
        unsigned n_ready;
};

struct warm {
        pthread_t thread;
        pthread_mutex_t lock;
        pthread_cond_t cond;
        bool stop;
        struct warm_slot slots[WARM_POOLS_MAX];
        unsigned n_slots;
        uint64_t handed_out, refilled, failures;
};

static struct gmem_region *make_one(const struct warm_pool_config *c) {
        struct gmem_region *r = NULL;
        int k = c->backend == GMEM_BACKEND_HUGETLB ? gmem_region_new_hugetlb(2 * MiB, c->size, &r)
                                                   : gmem_region_new_memfd(c->backend, c->size, &r);
        if (k >= 0 && c->prefault && gmem_prefault(r, 0, c->size, NULL) < 0)
                r = gmem_region_free(r);
        return r;
}

/* the refiller: one region at a time for the emptiest pool, until told to stop */
static void *refill(void *userdata) {
        struct warm *w = userdata;

        pthread_mutex_lock(&w->lock);
        while (!w->stop) {
                struct warm_slot *s = NULL;
                struct gmem_region *r;
                for (unsigned i = 0; i < w->n_slots; i++)
                        if (w->slots[i].n_ready < w->slots[i].cfg->count &&
                            (!s || w->slots[i].n_ready < s->n_ready))
                                s = &w->slots[i];
                if (!s) {
                        pthread_cond_wait(&w->cond, &w->lock);
                        continue;
                }
                pthread_mutex_unlock(&w->lock);
                r = make_one(s->cfg); /* the slow part, off the loop and unlocked */
                pthread_mutex_lock(&w->lock);
                if (!r) {
                        struct timespec t;
                        /* out of memory or huge pages for now: try again in a while, not in a spin */
                        w->failures++;
                        clock_gettime(CLOCK_REALTIME, &t);
                        t.tv_sec += 1;
                        pthread_cond_timedwait(&w->cond, &w->lock, &t);
                        continue;
                }
                if (w->stop || s->n_ready >= s->cfg->count)
                        gmem_region_free(r);
                else {
                        s->ready[s->n_ready++] = r;
                        w->refilled++;
                        log_debug("warm pool %u refilled: %u of %u ready", (unsigned) (s - w->slots), s->n_ready,
                                  s->cfg->count);
                }
        }
        pthread_mutex_unlock(&w->lock);
        return NULL;
}

int warm_start(struct daemon *d) {
        struct warm *w;
        int k;

        if (d->config.n_pools == 0)
                return 0;
        w = calloc(1, sizeof(*w));
        if (!w)
                return gmem_error(-ENOMEM, "warm pools");
        pthread_mutex_init(&w->lock, NULL);
        pthread_cond_init(&w->cond, NULL);
        for (unsigned i = 0; i < d->config.n_pools; i++)
                w->slots[w->n_slots++].cfg = &d->config.pools[i];
        k = pthread_create(&w->thread, NULL, refill, w);
        if (k != 0) {
                free(w);
                return gmem_error(-k, "warm pools: thread");
        }
        d->warm = w;
        for (unsigned i = 0; i < w->n_slots; i++)
                log_info("warm pool %u: %u %s region%s of %" PRIu64 " bytes%s", i, w->slots[i].cfg->count,
                         gmem_backend_to_string(w->slots[i].cfg->backend), w->slots[i].cfg->count == 1 ? "" : "s",
                         w->slots[i].cfg->size, w->slots[i].cfg->prefault ? ", prefaulted" : "");
        return 0;
}

void warm_stop(struct daemon *d) {
        struct warm *w = d->warm;

        if (!w)
                return;
        pthread_mutex_lock(&w->lock);
        w->stop = true;
        pthread_cond_broadcast(&w->cond);
        pthread_mutex_unlock(&w->lock);
        pthread_join(w->thread, NULL);
        for (unsigned i = 0; i < w->n_slots; i++)
                for (unsigned j = 0; j < w->slots[i].n_ready; j++)
                        gmem_region_free(w->slots[i].ready[j]);
        pthread_mutex_destroy(&w->lock);
        pthread_cond_destroy(&w->cond);
        free(w);
        d->warm = NULL;
}

struct gmem_region *warm_take(struct daemon *d, enum gmem_backend backend, uint64_t size, uint64_t page_size,
                              bool prefault) {
        struct warm *w = d->warm;
        struct gmem_region *r = NULL;

        if (!w || (backend == GMEM_BACKEND_HUGETLB && page_size != 2 * MiB))
                return NULL;
        pthread_mutex_lock(&w->lock);
        for (unsigned i = 0; i < w->n_slots && !r; i++) {
                struct warm_slot *s = &w->slots[i];
                if (s->cfg->backend == backend && s->cfg->size == size && (s->cfg->prefault || !prefault) && s->n_ready) {
                        r = s->ready[--s->n_ready];
                        w->handed_out++;
                }
        }
        if (r)
                pthread_cond_signal(&w->cond); /* refill behind it */
        pthread_mutex_unlock(&w->lock);
        return r;
}

cJSON *warm_to_json(struct daemon *d) {
        struct warm *w = d->warm;
        cJSON *o = cJSON_CreateObject(), *a;

        if (!o)
                return NULL;
        a = cJSON_AddArrayToObject(o, "pools");
        if (!w)
                return o;
        pthread_mutex_lock(&w->lock);
        for (unsigned i = 0; i < w->n_slots; i++) {
                const struct warm_slot *s = &w->slots[i];
                cJSON *p = cJSON_CreateObject();
                cJSON_AddStringToObject(p, "backend", gmem_backend_to_string(s->cfg->backend));
                json_add_u64(p, "size", s->cfg->size);
                json_add_u64(p, "count", s->cfg->count);
                cJSON_AddBoolToObject(p, "prefault", s->cfg->prefault);
                json_add_u64(p, "ready", s->n_ready);
                cJSON_AddItemToArray(a, p);
        }
        json_add_u64(o, "handed_out", w->handed_out);
        json_add_u64(o, "refilled", w->refilled);
        json_add_u64(o, "failures", w->failures);
        pthread_mutex_unlock(&w->lock);
        return o;
}
