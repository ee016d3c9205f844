/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The operations: each made from random numbers, read against the state when it runs (so that a
 * sequence with some of its operations taken out still runs: what an operation names is picked
 * from what is there), done to gmemd and to the model alike. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "torture.h"
#include "../hugepages.h"

static const char *const names[OP_TYPES] = {
        [OP_CREATE] = "create",   [OP_WRITE] = "write",     [OP_POPULATE] = "populate", [OP_PUNCH] = "punch",
        [OP_PREFAULT] = "prefault", [OP_DUMP] = "dump",     [OP_SNAPSHOT] = "snapshot", [OP_RESTORE] = "restore",
        [OP_LAZY] = "lazy",       [OP_GRANT] = "grant",     [OP_RELEASE] = "release",   [OP_RESTART] = "restart",
        [OP_DAMAGE] = "damage",   [OP_REFUSED] = "refused",   [OP_PAGEOUT] = "pageout",   [OP_CONVERT] = "convert",
};

/* how often each comes up, of 100 */
static const unsigned weights[OP_TYPES] = {
        [OP_CREATE] = 12, [OP_WRITE] = 16, [OP_POPULATE] = 9, [OP_PUNCH] = 7, [OP_PREFAULT] = 4, [OP_DUMP] = 6,
        [OP_SNAPSHOT] = 9, [OP_RESTORE] = 8, [OP_LAZY] = 10, [OP_GRANT] = 3, [OP_RELEASE] = 5, [OP_RESTART] = 3,
        [OP_DAMAGE] = 4, [OP_REFUSED] = 6, [OP_PAGEOUT] = 8, [OP_CONVERT] = 3,
};

const char *op_name(enum op_type type) {
        return (unsigned) type < OP_TYPES ? names[type] : "?";
}

void op_generate(uint64_t *rng, struct op *ret) {
        unsigned total = 0, x;
        for (unsigned i = 0; i < OP_TYPES; i++)
                total += weights[i];
        x = (unsigned) (rng_next(rng) % total);
        for (ret->type = 0; x >= weights[ret->type]; ret->type++)
                x -= weights[ret->type];
        ret->a = rng_next(rng);
        ret->b = rng_next(rng);
        ret->c = rng_next(rng);
        ret->d = rng_next(rng);
}

void op_describe(const struct op *op, char *buf, size_t n) {
        snprintf(buf, n, "%s(%016" PRIx64 ",%016" PRIx64 ",%016" PRIx64 ",%016" PRIx64 ")", op_name(op->type), op->a, op->b,
                 op->c, op->d);
}

/* ---- picking */

static struct mregion *pick_region(struct torture *t, uint64_t x) {
        unsigned n = 0, i;
        for (i = 0; i < T_REGIONS_MAX; i++)
                n += t->regions[i].live;
        if (!n)
                return NULL;
        x %= n;
        for (i = 0; i < T_REGIONS_MAX; i++)
                if (t->regions[i].live && x-- == 0)
                        return &t->regions[i];
        return NULL;
}

static struct mregion *free_region(struct torture *t) {
        for (unsigned i = 0; i < T_REGIONS_MAX; i++)
                if (!t->regions[i].live)
                        return &t->regions[i];
        return NULL;
}

static struct msnap *pick_snap(struct torture *t, uint64_t x, bool intact) {
        unsigned n = 0, i;
        for (i = 0; i < T_SNAPS_MAX; i++)
                n += t->snaps[i].live && (!intact || !t->snaps[i].damaged);
        if (!n)
                return NULL;
        x %= n;
        for (i = 0; i < T_SNAPS_MAX; i++)
                if (t->snaps[i].live && (!intact || !t->snaps[i].damaged) && x-- == 0)
                        return &t->snaps[i];
        return NULL;
}

/* secret memory never leaves memory: whoever first touches it is charged for good, so the
 * harness (which reads it back under its memory cgroup's limit) keeps little of it */
#define SECRET_LIVE_MAX 2
static unsigned live_of(const struct torture *t, enum gmem_backend b) {
        unsigned n = 0;
        for (unsigned i = 0; i < T_REGIONS_MAX; i++)
                n += t->regions[i].live && t->regions[i].backend == b;
        return n;
}

/* ---- regions in the model */

static void region_forget(struct mregion *r) {
        if (r->map && !r->own)
                munmap(r->map, r->size);
        if (r->own)
                gmem_region_free(r->own); /* unmaps and closes */
        else if (r->fd >= 0)
                close(r->fd);
        free(r->tags);
        *r = (struct mregion) { .fd = -1 };
}

/* the region gmemd made as name: ours to read (its fd from `open`, mapped), tags as given (taken) */
static int region_adopt(struct torture *t, struct mregion *r, const char *name, uint64_t *tags) {
        struct gmem_region *g = NULL;
        void *map;

        if (gmem_client_open(t->c, name, &g) < 0) {
                free(tags);
                return fail(t, "open '%s': %s", name, gmem_last_error());
        }
        if (gmem_region_map(g, &map) < 0) {
                free(tags);
                gmem_region_free(g);
                return fail(t, "map '%s': %s", name, gmem_last_error());
        }
        *r = (struct mregion) { .live = true, .backend = gmem_region_backend(g), .size = gmem_region_size(g),
                                .unit = gmem_region_page_size(g), .tags = tags, .fd = gmem_region_fd(g), .map = map, .own = g };
        if (r->unit < T_PAGE)
                r->unit = T_PAGE;
        snprintf(r->name, sizeof(r->name), "%s", name);
        if ((unsigned) r->backend < GMEM_BACKEND_COUNT)
                t->regions_of[r->backend]++;
        return 0;
}

static int op_create(struct torture *t, const struct op *op) {
        struct mregion *r = free_region(t);
        struct gmem_create_opts o = GMEM_CREATE_OPTS_INIT;
        enum gmem_backend b = GMEM_BACKEND_MEMFD;
        uint64_t size = (1 + op->b % 12) << 20;
        char name[40];
        unsigned x = (unsigned) (op->a % 10);
        int k;

        if (!r)
                return 0;
        if (x == 7 && (t->backends & (1u << GMEM_BACKEND_SECRET)) && live_of(t, GMEM_BACKEND_SECRET) < SECRET_LIVE_MAX)
                b = GMEM_BACKEND_SECRET, size = (1 + op->b % 2) << 20;
        else if (x == 8 && (t->backends & (1u << GMEM_BACKEND_HUGETLB)) && free_huge_pages() >= 8)
                b = GMEM_BACKEND_HUGETLB, size = (1 + op->b % 2) * (2 << 20);
        else if (x == 9 && t->vm_fd >= 0)
                b = GMEM_BACKEND_GUEST_MEMFD;
        o.prefault = op->c % 4 == 0;
        snprintf(name, sizeof(name), "r%" PRIu64, ++t->serial);
        if (b == GMEM_BACKEND_GUEST_MEMFD) {
                struct gmem_region *g = NULL;
                void *map;
                if ((k = gmem_region_new_guest_memfd(t->vm_fd, size, t->gmem_flags, &g)) < 0)
                        return fail(t, "create a guest_memfd of %" PRIu64 " bytes: %s", size, gmem_last_error());
                if ((k = gmem_client_register(t->c, name, g)) < 0 || (k = gmem_region_map(g, &map)) < 0) {
                        gmem_region_free(g);
                        return fail(t, "register guest_memfd '%s': %s", name, gmem_last_error());
                }
                *r = (struct mregion) { .live = true, .backend = b, .size = size, .unit = T_PAGE,
                                        .tags = calloc(size / T_PAGE, sizeof(uint64_t)), .fd = gmem_region_fd(g), .map = map,
                                        .own = g };
                snprintf(r->name, sizeof(r->name), "%s", name);
                t->regions_of[b]++;
                return 0;
        }
        if ((k = gmem_client_create(t->c, name, b, size, &o)) < 0) {
                /* huge pages and memlock are the host's to run out of; memory is not */
                if (b != GMEM_BACKEND_MEMFD && (k == -ENOMEM || k == -EAGAIN))
                        return 0;
                return fail(t, "create '%s' (%s, %" PRIu64 " bytes%s): %s", name, gmem_backend_to_string(b), size,
                            o.prefault ? ", prefault" : "", gmem_last_error());
        }
        return region_adopt(t, r, name, calloc(size / T_PAGE, sizeof(uint64_t)));
}

/* a range of whole units of r: [*off, *off + *len) */
static void unit_range(const struct mregion *r, uint64_t x, uint64_t y, unsigned max_units, uint64_t *off, uint64_t *len) {
        uint64_t units = r->size / r->unit, first = x % units, n = 1 + y % max_units;
        *off = first * r->unit;
        *len = (first + n > units ? units - first : n) * r->unit;
}

static int op_write(struct torture *t, const struct op *op) {
        struct mregion *r = pick_region(t, op->a);
        uint64_t pages, first, n;

        if (!r)
                return 0;
        pages = r->size / T_PAGE;
        first = op->b % pages;
        n = 1 + op->c % 64;
        if (op->d % 4 == 0) /* now and then all of it: the guest's memory grows past what it may keep in RAM */
                first = 0, n = pages;
        if (first + n > pages)
                n = pages - first;
        for (uint64_t p = first; p < first + n; p++) {
                uint64_t tag = op->d % 5 == 0 ? 0 : tag_new(t); /* some pages written with zeroes */
                page_content(tag, r->map + p * T_PAGE);
                r->tags[p] = tag;
        }
        return 0;
}

/* a file holding the content of tags[0, n) from offset file_off */
static int source_file(struct torture *t, const uint64_t *tags, uint64_t n, uint64_t file_off) {
        uint8_t page[T_PAGE];
        int fd = temp_file(t);

        for (uint64_t p = 0; p < n; p++) {
                page_content(tags[p], page);
                if (pwrite(fd, page, T_PAGE, (off_t) (file_off + p * T_PAGE)) != T_PAGE) {
                        fprintf(stderr, "gmem-torture: write a source file: %m\n");
                        exit(2);
                }
        }
        return fd;
}

static int op_populate(struct torture *t, const struct op *op) {
        struct mregion *r = pick_region(t, op->a);
        uint64_t off, len, src_off = (op->d % 4) * T_PAGE, *tags;
        int fd, k;

        if (!r)
                return 0;
        unit_range(r, op->b, op->c, 64 * T_PAGE / r->unit ? 64 * T_PAGE / r->unit : 1, &off, &len);
        tags = calloc(len / T_PAGE, sizeof(uint64_t));
        for (uint64_t p = 0; p < len / T_PAGE; p++)
                tags[p] = (op->c >> 8) % 7 == 0 ? 0 : tag_new(t);
        fd = source_file(t, tags, len / T_PAGE, src_off);
        k = gmem_client_populate_fd(t->c, r->name, off, fd, src_off, len);
        close(fd);
        if (k < 0) {
                free(tags);
                return fail(t, "populate '%s' %" PRIu64 "+%" PRIu64 ": %s", r->name, off, len, gmem_last_error());
        }
        memcpy(r->tags + off / T_PAGE, tags, len / T_PAGE * sizeof(uint64_t));
        free(tags);
        return 0;
}

static int op_punch(struct torture *t, const struct op *op) {
        struct mregion *r = pick_region(t, op->a);
        uint64_t off, len;
        int k;

        if (!r)
                return 0;
        unit_range(r, op->b, op->c, 8, &off, &len);
        k = gmem_client_punch(t->c, r->name, off, len);
        if (r->backend == GMEM_BACKEND_SECRET) { /* no fallocate(): refused, nothing changes */
                if (k != -EOPNOTSUPP)
                        return fail(t, "punch of memfd_secret '%s' gave %d, not EOPNOTSUPP", r->name, k);
                t->refusals++;
                return 0;
        }
        if (k < 0)
                return fail(t, "punch '%s' %" PRIu64 "+%" PRIu64 ": %s", r->name, off, len, gmem_last_error());
        memset(r->tags + off / T_PAGE, 0, len / T_PAGE * sizeof(uint64_t));
        t->discards++;
        return 0;
}

static int op_prefault(struct torture *t, const struct op *op) {
        struct mregion *r = pick_region(t, op->a);
        uint64_t off, len;

        if (!r)
                return 0;
        unit_range(r, op->b, op->c, 16, &off, &len);
        if (gmem_client_prefault(t->c, r->name, off, len) < 0)
                return fail(t, "prefault '%s' %" PRIu64 "+%" PRIu64 ": %s", r->name, off, len, gmem_last_error());
        return 0;
}

static int op_dump(struct torture *t, const struct op *op) {
        struct mregion *r = pick_region(t, op->a);
        uint64_t off, len, dst_off = (op->d % 3) * T_PAGE;
        int fd, k;

        if (!r)
                return 0;
        off = (op->b % (r->size / T_PAGE)) * T_PAGE;
        len = op->c % 3 == 0 ? r->size - off : T_PAGE * (1 + op->c % ((r->size - off) / T_PAGE));
        fd = temp_file(t);
        if (op->d % 2 == 0) { /* an old file: nothing of it may show through the holes */
                uint8_t junk[T_PAGE];
                memset(junk, 0xa5, sizeof(junk));
                for (uint64_t p = 0; p < (dst_off + len) / T_PAGE; p++)
                        (void) !pwrite(fd, junk, T_PAGE, (off_t) (p * T_PAGE));
        }
        if (gmem_client_dump_fd(t->c, r->name, off, len, fd, dst_off) < 0) {
                close(fd);
                return fail(t, "dump '%s' %" PRIu64 "+%" PRIu64 ": %s", r->name, off, len, gmem_last_error());
        }
        k = check_file(t, fd, dst_off, r->tags, off, len, "a dump");
        close(fd);
        return k;
}

static void snap_forget(struct msnap *s) {
        if (s->fd >= 0)
                close(s->fd);
        free(s->tags);
        *s = (struct msnap) { .fd = -1 };
}

static uint64_t data_offset(enum gmem_backend b) {
        return b == GMEM_BACKEND_HUGETLB ? 2 << 20 : T_PAGE;
}

static int op_snapshot(struct torture *t, const struct op *op) {
        struct mregion *r = pick_region(t, op->a);
        struct msnap *s = NULL;
        int64_t n;

        if (!r)
                return 0;
        for (unsigned i = 0; i < T_SNAPS_MAX && !s; i++)
                if (!t->snaps[i].live)
                        s = &t->snaps[i];
        if (!s) { /* the oldest makes room */
                s = &t->snaps[op->b % T_SNAPS_MAX];
                snap_forget(s);
        }
        *s = (struct msnap) { .live = true, .fd = temp_file(t), .size = r->size, .backend = r->backend };
        if ((n = gmem_client_snapshot_fd(t->c, r->name, s->fd)) < 0)
                return fail(t, "snapshot '%s': %s", r->name, gmem_last_error());
        s->tags = malloc(r->size / T_PAGE * sizeof(uint64_t));
        memcpy(s->tags, r->tags, r->size / T_PAGE * sizeof(uint64_t));
        /* the file's data is the region: holes where it had none, zeroes read there */
        return check_file(t, s->fd, data_offset(r->backend), s->tags, 0, s->size, "the snapshot file's data");
}

/* restore s into a new region as name: 0 with the region in the model, 1 refused as it must be */
static int restore_into(struct torture *t, struct gmem_client *c, const struct msnap *s, const char *name) {
        struct mregion *r = free_region(t);
        uint64_t *tags;
        int k;

        if (!r || (s->backend == GMEM_BACKEND_SECRET && live_of(t, GMEM_BACKEND_SECRET) >= SECRET_LIVE_MAX))
                return 1;
        k = gmem_client_restore_fd(c, name, s->fd, NULL);
        if (k < 0) {
                /* huge pages and memlock (memfd_secret) are the host's to run out of */
                if (s->damaged || (s->backend != GMEM_BACKEND_MEMFD && s->backend != GMEM_BACKEND_GUEST_MEMFD &&
                                   (k == -ENOMEM || k == -EAGAIN))) {
                        t->refusals++;
                        return 1;
                }
                return fail(t, "restore '%s' from an intact snapshot: %s", name, gmem_last_error());
        }
        if (s->must_fail)
                return fail(t, "restore '%s' from a snapshot damaged where it has data succeeded", name);
        tags = malloc(s->size / T_PAGE * sizeof(uint64_t));
        memcpy(tags, s->tags, s->size / T_PAGE * sizeof(uint64_t));
        return region_adopt(t, r, name, tags);
}

static int op_restore(struct torture *t, const struct op *op) {
        struct msnap *s = pick_snap(t, op->a, op->b % 3 != 0);
        char name[40];

        if (!s)
                return 0;
        snprintf(name, sizeof(name), "r%" PRIu64, ++t->serial);
        return restore_into(t, t->c, s, name) < 0 ? -1 : 0;
}

/* Damage a snapshot: cut short, a bit flipped in its header, in its table, or in a page the model
 * knows holds data — every one of them must be refused. With op->d odd, while gmemd restores it:
 * then the restore either fails or gives exactly the snapshot (it read all before the damage). */
struct racer {
        struct torture *t;
        const struct msnap *s;
        char name[40];
        int result;
};

static void *restore_racer(void *arg) {
        struct racer *x = arg;
        struct gmem_client *c = NULL;

        if (gmem_client_connect(x->t->socket, &c) < 0) {
                x->result = fail(x->t, "connect for a racing restore: %s", gmem_last_error());
                return NULL;
        }
        x->result = gmem_client_restore_fd(c, x->name, x->s->fd, NULL);
        gmem_client_free(c);
        return NULL;
}

static void damage(struct msnap *s, const struct op *op) {
        struct stat st;
        uint64_t data_pages = 0;
        uint8_t b;
        off_t at;

        (void) fstat(s->fd, &st);
        for (uint64_t p = 0; p < s->size / T_PAGE; p++)
                data_pages += s->tags[p] != 0;
        switch (op->b % (data_pages ? 4 : 3)) {
        case 0:
                (void) !ftruncate(s->fd, (off_t) (op->c % (uint64_t) st.st_size));
                s->damaged = s->must_fail = true;
                return;
        case 1:
                at = (off_t) (op->c % 96);
                break;
        case 2: { /* the extent table (a snapshot with none: its header instead) */
                uint64_t n_extents = 0;
                if (pread(s->fd, &n_extents, 8, 64) == 8 && n_extents > 0)
                        at = st.st_size - 1 - (off_t) (op->c % 24);
                else
                        at = (off_t) (op->c % 96);
                break;
        }
        default: {
                uint64_t nth = op->c % data_pages, p = 0;
                for (;; p++)
                        if (s->tags[p] && nth-- == 0)
                                break;
                at = (off_t) (data_offset(s->backend) + p * T_PAGE + op->d % T_PAGE);
        }
        }
        if (pread(s->fd, &b, 1, at) == 1) {
                b ^= (uint8_t) (1u << (op->d % 8));
                (void) !pwrite(s->fd, &b, 1, at);
        }
        s->damaged = true;
        s->must_fail = true;
}

static int op_damage(struct torture *t, const struct op *op) {
        struct msnap *s = pick_snap(t, op->a, true);
        struct racer x = { .t = t };
        struct mregion *r;
        pthread_t th;

        if (!s)
                return 0;
        if (!(op->d & 1) || !(r = free_region(t)) ||
            (s->backend == GMEM_BACKEND_SECRET && live_of(t, GMEM_BACKEND_SECRET) >= SECRET_LIVE_MAX)) {
                damage(s, op);
                return 0;
        }
        /* while a restore reads it */
        x.s = s;
        snprintf(x.name, sizeof(x.name), "r%" PRIu64, ++t->serial);
        pthread_create(&th, NULL, restore_racer, &x);
        usleep((useconds_t) (op->c % 3000));
        damage(s, op);
        pthread_join(th, NULL);
        if (x.result == -1 && t->failure[0])
                return -1;
        if (x.result < 0) {
                t->refusals++;
                return 0; /* refused: nothing may have changed, check_all() says */
        }
        {
                uint64_t *tags = malloc(s->size / T_PAGE * sizeof(uint64_t));
                memcpy(tags, s->tags, s->size / T_PAGE * sizeof(uint64_t));
                return region_adopt(t, r, x.name, tags); /* restored before the damage: exactly the snapshot */
        }
}

/* Another uid may read a region once granted, and not after. */
static int op_grant(struct torture *t, const struct op *op) {
        struct mregion *r = pick_region(t, op->a);
        uid_t uid = t->other_uid;
        int status;
        pid_t pid;

        if (!r || !uid || r->backend == GMEM_BACKEND_GUEST_MEMFD)
                return 0;
        if (gmem_client_grant_uid(t->c, r->name, uid) < 0)
                return fail(t, "grant '%s' to uid %u: %s", r->name, (unsigned) uid, gmem_last_error());
        fflush(stdout);
        pid = fork();
        if (pid == 0) {
                struct gmem_client *c = NULL;
                struct gmem_region *g = NULL;
                void *map;
                gid_t gid = (gid_t) uid, groups[2] = { gid, t->other_gid };
                if (setgroups(t->other_gid ? 2 : 1, groups) < 0 || setresgid(gid, gid, gid) < 0 || setresuid(uid, uid, uid) < 0)
                        _exit(10);
                if (gmem_client_connect(t->socket, &c) < 0 || gmem_client_open(c, r->name, &g) < 0 || gmem_region_map(g, &map) < 0) {
                        fprintf(stderr, "gmem-torture: uid %u: %s\n", (unsigned) uid, gmem_last_error());
                        _exit(11);
                }
                if (check_bytes(t, r->tags, map, 0, r->size, "the granted uid's view") < 0) {
                        fprintf(stderr, "gmem-torture: %s\n", t->failure);
                        _exit(12);
                }
                gmem_region_free(g);
                gmem_client_free(c);
                _exit(0);
        }
        if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
                return fail(t, "uid %u granted '%s' could not read it as the model has it (status 0x%x)", (unsigned) uid,
                            r->name, pid > 0 ? status : -1);
        if (gmem_client_revoke_uid(t->c, r->name, uid) < 0)
                return fail(t, "revoke '%s' from uid %u: %s", r->name, (unsigned) uid, gmem_last_error());
        return 0;
}

static int op_release(struct torture *t, const struct op *op) {
        struct mregion *r = pick_region(t, op->a);

        if (!r)
                return 0;
        if (gmem_client_release(t->c, r->name) < 0)
                return fail(t, "release '%s': %s", r->name, gmem_last_error());
        region_forget(r);
        return 0;
}

int reconnect(struct torture *t) {
        for (int i = 0; i < 300; i++) {
                t->c = gmem_client_free(t->c);
                if (gmem_client_connect(t->socket, &t->c) == 0)
                        return 0;
                usleep(50 * 1000);
        }
        return fail(t, "gmemd did not answer on %s within 15 s: %s", t->socket, gmem_last_error());
}

static int op_restart(struct torture *t, const struct op *op) {
        (void) op;
        if (!t->restart_cmd)
                return 0;
        if (system(t->restart_cmd) != 0)
                return fail(t, "'%s' failed", t->restart_cmd);
        t->restarts++;
        t->restarted = true;
        return reconnect(t);
}

/* Requests that must be refused, and change nothing. */
static int op_refused(struct torture *t, const struct op *op) {
        struct mregion *r = pick_region(t, op->a);
        const char *what;
        int k, fd = -1;

        if (!r)
                return 0;
        switch (op->b % 6) {
        case 0:
                what = "a create of a name that exists";
                k = gmem_client_create(t->c, r->name, GMEM_BACKEND_MEMFD, 1 << 20, NULL);
                break;
        case 1:
                what = "a populate past the end";
                fd = temp_file(t);
                (void) !ftruncate(fd, 2 * T_PAGE);
                k = gmem_client_populate_fd(t->c, r->name, r->size - T_PAGE, fd, 0, 2 * T_PAGE);
                break;
        case 2:
                what = "a punch not aligned";
                k = gmem_client_punch(t->c, r->name, r->unit / 2, r->unit);
                break;
        case 3:
                what = "a dump past the end";
                fd = temp_file(t);
                k = (int) gmem_client_dump_fd(t->c, r->name, r->size, T_PAGE, fd, 0);
                break;
        case 4: {
                char name[40];
                what = "a restore of a file that is no snapshot";
                fd = temp_file(t);
                for (int i = 0; i < 4; i++) {
                        uint8_t page[T_PAGE];
                        page_content(op->c + (uint64_t) i, page);
                        (void) !pwrite(fd, page, T_PAGE, i * T_PAGE);
                }
                snprintf(name, sizeof(name), "r%" PRIu64, ++t->serial);
                k = gmem_client_restore_fd(t->c, name, fd, NULL);
                break;
        }
        default:
                what = "a prefault past the end";
                k = gmem_client_prefault(t->c, r->name, r->size, r->unit);
                break;
        }
        if (fd >= 0)
                close(fd);
        if (k >= 0)
                return fail(t, "%s on '%s' was not refused", what, r->name);
        t->refusals++;
        return 0;
}

/* Pages of a memfd region pushed out to swap: those only our mapping maps (MADV_PAGEOUT leaves
 * pages mapped elsewhere alone); nothing where there is no swap. What a busy host does to guest
 * memory at any time — and then gmemd dumps or snapshots it at once (our checks read every page
 * back in after each step): swapped pages are data, never holes. */
static int op_pageout(struct torture *t, const struct op *op) {
        struct mregion *r = pick_region(t, op->a);
        unsigned char *vec;
        uint64_t pages, before = 0, after = 0;

        if (!r || r->backend != GMEM_BACKEND_MEMFD)
                return 0;
        pages = r->size / T_PAGE;
        vec = malloc(pages);
        if (mincore(r->map, r->size, vec) == 0)
                for (uint64_t p = 0; p < pages; p++)
                        before += vec[p] & 1;
        if (madvise(r->map, r->size, MADV_PAGEOUT) < 0 && errno != EINVAL) {
                free(vec);
                return fail(t, "madvise(MADV_PAGEOUT) '%s': %m", r->name);
        }
        if (mincore(r->map, r->size, vec) == 0)
                for (uint64_t p = 0; p < pages; p++)
                        after += vec[p] & 1;
        free(vec);
        if (before > after)
                t->swapped_out += before - after;
        return op->b % 2 ? op_snapshot(t, op) : op_dump(t, op);
}

/* A range of a region as the shared half of a VM with private memory: made private, then shared
 * again (QEMU's semantics: each way the stale copy is discarded), so it reads as zeroes after.
 * Where no VM type has private memory the kernel refuses, and nothing changes. */
static int op_convert(struct torture *t, const struct op *op) {
        struct mregion *r = pick_region(t, op->a);
        uint64_t off, len, gpa;
        int k;

        if (!r || r->backend == GMEM_BACKEND_GUEST_MEMFD || r->backend == GMEM_BACKEND_SECRET)
                return 0;
        unit_range(r, op->b, op->c, 8, &off, &len);
        gpa = (uint64_t) (r - t->regions) << 32; /* each slot's own guest-physical range */
        if (t->conv_vm_fd < 0) {
                if (t->plain_vm_fd < 0)
                        return 0;
                k = gmem_convert(r->own, t->plain_vm_fd, gpa + off, off, len, true);
                if (k != -EOPNOTSUPP)
                        return fail(t, "convert '%s' to private on a VM without private memory gave %d, not EOPNOTSUPP",
                                    r->name, k);
                t->refusals++;
                return 0;
        }
        if ((k = gmem_convert(r->own, t->conv_vm_fd, gpa + off, off, len, true)) < 0)
                return fail(t, "convert '%s' %" PRIu64 "+%" PRIu64 " to private: %s", r->name, off, len, gmem_last_error());
        memset(r->tags + off / T_PAGE, 0, len / T_PAGE * sizeof(uint64_t)); /* the shared copy is discarded */
        if ((k = gmem_convert(r->own, t->conv_vm_fd, gpa + off, off, len, false)) < 0)
                return fail(t, "convert '%s' %" PRIu64 "+%" PRIu64 " back to shared: %s", r->name, off, len, gmem_last_error());
        t->discards++;
        return 0;
}

int op_run(struct torture *t, const struct op *op) {
        int (*const run[OP_TYPES])(struct torture *, const struct op *) = {
                [OP_CREATE] = op_create,   [OP_WRITE] = op_write,     [OP_POPULATE] = op_populate, [OP_PUNCH] = op_punch,
                [OP_PREFAULT] = op_prefault, [OP_DUMP] = op_dump,     [OP_SNAPSHOT] = op_snapshot, [OP_RESTORE] = op_restore,
                [OP_LAZY] = op_lazy,       [OP_GRANT] = op_grant,     [OP_RELEASE] = op_release,   [OP_RESTART] = op_restart,
                [OP_DAMAGE] = op_damage,   [OP_REFUSED] = op_refused,   [OP_PAGEOUT] = op_pageout,
                [OP_CONVERT] = op_convert,
        };
        t->failure[0] = 0;
        t->ops++;
        return run[op->type](t, op);
}

int state_reset(struct torture *t) {
        struct gmem_region_list *l = NULL;

        /* what gmemd holds that the model does not (after a failure): released too */
        if (gmem_client_region_list(t->c, &l) < 0 && (reconnect(t) < 0 || gmem_client_region_list(t->c, &l) < 0))
                return fail(t, "list at the end: %s", gmem_last_error());
        for (unsigned i = 0; i < gmem_region_list_count(l); i++) {
                const char *name = gmem_region_info_name(gmem_region_list_get(l, i));
                bool known = false;
                for (unsigned j = 0; j < T_REGIONS_MAX && !known; j++)
                        known = t->regions[j].live && strcmp(t->regions[j].name, name) == 0;
                if (!known)
                        (void) gmem_client_release(t->c, name);
        }
        gmem_region_list_free(l);
        for (unsigned i = 0; i < T_REGIONS_MAX; i++)
                if (t->regions[i].live) {
                        if (gmem_client_release(t->c, t->regions[i].name) < 0 && reconnect(t) == 0 &&
                            gmem_client_release(t->c, t->regions[i].name) < 0)
                                return fail(t, "release '%s' at the end: %s", t->regions[i].name, gmem_last_error());
                        region_forget(&t->regions[i]);
                }
        for (unsigned i = 0; i < T_SNAPS_MAX; i++)
                if (t->snaps[i].live)
                        snap_forget(&t->snaps[i]);
        t->restarted = false;
        return 0;
}
