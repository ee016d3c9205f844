/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A lazy restore, with us as the VMM: our memory (private, or a region's file mapped shared) is
 * registered with a userfaultfd that gmemd serves from a snapshot, while two threads read, write
 * and discard its pages (a balloon's MADV_DONTNEED) — each thread its own pages, so the model of
 * each page is exact — and gmemd may be SIGKILLed and brought back in the middle. Every read is
 * checked against the model: the snapshot's bytes, ours where we wrote, zeroes where private
 * memory was discarded (a shared mapping's file keeps its bytes).
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "torture.h"

#define LAZY_THREADS 2
#define LAZY_WAIT_S 30

struct toucher {
        struct torture *t;       /* read only here */
        unsigned index;
        uint8_t *mem;
        uint64_t pages;
        uint64_t *expect;        /* shared, but each thread writes only its own pages */
        bool shared;
        uint64_t rng, actions, discards;
        char failure[512];
        volatile bool done;
};

static void *touch_thread(void *arg) {
        struct toucher *x = arg;
        uint8_t want[T_PAGE];

        for (uint64_t i = 0; i < x->actions && !x->failure[0]; i++) {
                uint64_t r = rng_next(&x->rng), p = (r >> 8) % x->pages;
                uint8_t *page;
                p -= p % LAZY_THREADS;
                p += x->index;
                if (p >= x->pages)
                        continue;
                page = x->mem + p * T_PAGE;
                switch (r % 20) {
                case 0 ... 11: /* read: what the model says, served if it was not there */
                        page_content(x->expect[p], want);
                        if (memcmp(page, want, T_PAGE) != 0)
                                snprintf(x->failure, sizeof(x->failure), "lazily restored %s memory: page %" PRIu64
                                         " differs from the model (%s page)", x->shared ? "shared" : "private", p,
                                         x->expect[p] ? "a data" : "a zero");
                        break;
                case 12 ... 16: { /* the guest writes it */
                        uint64_t tag = (r >> 40) | 1;
                        page_content(tag, page);
                        x->expect[p] = tag;
                        break;
                }
                default: /* a balloon takes it back */
                        if (madvise(page, T_PAGE, MADV_DONTNEED) < 0)
                                snprintf(x->failure, sizeof(x->failure), "madvise(MADV_DONTNEED) page %" PRIu64 ": %m", p);
                        else if (!x->shared)
                                x->expect[p] = 0;
                        x->discards++;
                }
        }
        /* then every page of its own: each fault served */
        for (uint64_t p = x->index; p < x->pages && !x->failure[0]; p += LAZY_THREADS) {
                page_content(x->expect[p], want);
                if (memcmp(x->mem + p * T_PAGE, want, T_PAGE) != 0)
                        snprintf(x->failure, sizeof(x->failure), "lazily restored %s memory: page %" PRIu64
                                 " differs from the model at the end (%s page)", x->shared ? "shared" : "private", p,
                                 x->expect[p] ? "a data" : "a zero");
        }
        x->done = true;
        return NULL;
}

/* wait for the touchers, up to LAZY_WAIT_S: false if one is stuck in a fault nobody serves */
static bool touchers_join(pthread_t *th, struct toucher *x) {
        struct timespec deadline;
        bool ok = true;

        clock_gettime(CLOCK_REALTIME, &deadline);
        deadline.tv_sec += LAZY_WAIT_S;
        for (unsigned i = 0; i < LAZY_THREADS; i++)
                if (pthread_timedjoin_np(th[i], NULL, &deadline) != 0)
                        ok = false;
        (void) x;
        return ok;
}

int op_lazy(struct torture *t, const struct op *op) {
        const struct msnap *s = NULL;
        struct mregion *r = NULL;
        struct toucher x[LAZY_THREADS];
        pthread_t th[LAZY_THREADS];
        struct gmem_client *c2 = NULL;
        struct gmem_create_opts o = GMEM_CREATE_OPTS_INIT;
        bool shared = op->b % 2, restart = t->restart_cmd && op->c % 4 == 0;
        unsigned flags = (shared ? GMEM_SERVE_SHARED : 0) | (op->c % 3 == 1 ? GMEM_SERVE_NO_PREFETCH : 0);
        uint64_t *expect, pages;
        char name[40];
        uint8_t *mem;
        int uffd = -1, k = 0;

        for (unsigned i = 0, n = 0; i < T_SNAPS_MAX; i++) /* an intact snapshot */
                if (t->snaps[i].live && !t->snaps[i].damaged && n++ == op->a % T_SNAPS_MAX)
                        s = &t->snaps[i];
        for (unsigned i = 0; i < T_SNAPS_MAX && !s; i++)
                if (t->snaps[i].live && !t->snaps[i].damaged)
                        s = &t->snaps[i];
        for (unsigned i = 0; i < T_REGIONS_MAX && !r; i++)
                if (!t->regions[i].live)
                        r = &t->regions[i];
        if (!s || !r)
                return 0;
        pages = s->size / T_PAGE;
        snprintf(name, sizeof(name), "r%" PRIu64, ++t->serial);
        /* the region: the memory itself when shared (pooled: prefaulted, MINOR faults), else the name served */
        o.prefault = shared && op->d % 2;
        if (gmem_client_create(t->c, name, GMEM_BACKEND_MEMFD, s->size, &o) < 0)
                return fail(t, "lazy: create '%s': %s", name, gmem_last_error());
        if (shared) { /* a mapping of the region's file of our own, the VMM's */
                struct gmem_region *g = NULL;
                if (gmem_client_open(t->c, name, &g) < 0)
                        return fail(t, "lazy: open '%s': %s", name, gmem_last_error());
                mem = mmap(NULL, s->size, PROT_READ | PROT_WRITE, MAP_SHARED, gmem_region_fd(g), 0);
                gmem_region_free(g);
        } else
                mem = mmap(NULL, s->size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (mem == MAP_FAILED)
                return fail(t, "lazy: mmap %" PRIu64 " bytes: %m", s->size);
        if (gmem_uffd_register(mem, s->size, shared, &uffd) < 0) {
                /* no userfaultfd here: nothing lazy to try */
                munmap(mem, s->size);
                return gmem_client_release(t->c, name) < 0 ? fail(t, "lazy: release '%s': %s", name, gmem_last_error()) : 0;
        }
        if (gmem_client_connect(t->socket, &c2) < 0 || gmem_client_serve_uffd(c2, name, uffd, (uintptr_t) mem, s->fd, flags, NULL) < 0) {
                k = fail(t, "lazy: serve '%s' (%s%s): %s", name, shared ? "shared" : "private",
                         flags & GMEM_SERVE_NO_PREFETCH ? ", faults only" : "", gmem_last_error());
                goto out;
        }
        expect = malloc(pages * sizeof(uint64_t));
        memcpy(expect, s->tags, pages * sizeof(uint64_t));
        for (unsigned i = 0; i < LAZY_THREADS; i++) {
                x[i] = (struct toucher) { .t = t, .index = i, .mem = mem, .pages = pages, .expect = expect, .shared = shared,
                                          .rng = op->d + i, .actions = 64 + op->d % 192 };
                pthread_create(&th[i], NULL, touch_thread, &x[i]);
        }
        if (restart) { /* in the middle: the faults wait, the next gmemd serves them from where it was */
                usleep((useconds_t) (op->a % 20000));
                if (system(t->restart_cmd) != 0)
                        k = fail(t, "'%s' failed", t->restart_cmd);
                t->restarts++;
                t->restarted = true;
                if (k == 0)
                        k = reconnect(t);
        }
        if (!touchers_join(th, x)) {
                k = fail(t, "lazy (%s%s%s): a fault was not served within %d s", shared ? "shared" : "private",
                         flags & GMEM_SERVE_NO_PREFETCH ? ", faults only" : "", restart ? ", gmemd restarted" : "", LAZY_WAIT_S);
                /* let the threads go: the job ends with its region, and then our uffd's waiters */
                (void) gmem_client_release(t->c, name);
                close(uffd);
                uffd = -1;
                for (unsigned i = 0; i < LAZY_THREADS; i++)
                        pthread_join(th[i], NULL);
        }
        for (unsigned i = 0; i < LAZY_THREADS && k == 0; i++) {
                if (x[i].failure[0])
                        k = fail(t, "%s%s", x[i].failure, restart ? " (gmemd was restarted meanwhile)" : "");
                t->discards += x[i].discards;
        }
        if (k == 0) { /* counted: the touchers compared every page */
                t->pages_checked += pages;
                t->bytes_checked += s->size;
        }
        t->lazy_faults++;
        if (k == 0 && shared) { /* the region holds what was served and written: the model's from now on */
                struct gmem_region *g = NULL;
                void *map;
                if (gmem_client_open(t->c, name, &g) < 0 || gmem_region_map(g, &map) < 0)
                        k = fail(t, "lazy: open '%s' again: %s", name, gmem_last_error());
                else {
                        *r = (struct mregion) { .live = true, .backend = GMEM_BACKEND_MEMFD, .size = s->size, .unit = T_PAGE,
                                                .tags = expect, .fd = gmem_region_fd(g), .map = map, .own = g };
                        snprintf(r->name, sizeof(r->name), "%s", name);
                        expect = NULL;
                }
        }
        free(expect);
out:
        gmem_client_free(c2); /* the job ends with its connection (or, resumed after a restart, with its region) */
        if (uffd >= 0)
                close(uffd);
        munmap(mem, s->size);
        if (!(k == 0 && shared) && gmem_client_release(t->c, name) < 0 && k == 0)
                k = fail(t, "lazy: release '%s': %s", name, gmem_last_error());
        return k;
}
