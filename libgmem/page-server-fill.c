/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Putting pages into the VMM's memory, and what the userfaultfd says meanwhile.
 *
 * While a non-cooperative event (UFFD_EVENT_REMOVE: a balloon's MADV_DONTNEED; UNMAP; FORK) waits
 * unread, the kernel refuses every UFFDIO_COPY, ZEROPAGE and CONTINUE with EAGAIN, and the thread
 * that caused the event waits until it is read. EAGAIN is therefore never "done": the events are
 * read and applied (faults read with them are queued for run()), and the fill is tried again.
 *
 * Private memory that was discarded before it was served reads back as zeroes, as discarded
 * private memory does: `removed` marks it, and every fill checks it under the install lock, which
 * reading events takes exclusively. So a fill either went in before the event was read (and the
 * discard that follows the read zaps it: the next fault gets a zero page) or sees the mark.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "error.h"
#include "io.h"
#include "macro.h"
#include "page-server.h"
#include "region.h"
#include "uffd-compat.h"

#ifndef UFFD_EVENT_FORK
#define UFFD_EVENT_FORK 0x13
#endif
#ifndef UFFD_EVENT_REMAP
#define UFFD_EVENT_REMAP 0x14
#endif

int ps_events_init(struct gmem_page_server *ps) {
        pthread_rwlockattr_t a;
        uint64_t words = (ps->s->h.region_size / 4096 + 63) / 64;

        /* writer first: an event must not wait behind a stream of fills (they would all see EAGAIN) */
        pthread_rwlockattr_init(&a);
        pthread_rwlockattr_setkind_np(&a, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
        pthread_rwlock_init(&ps->install, &a);
        pthread_rwlockattr_destroy(&a);
        ps->removed = calloc(MAX(words, UINT64_C(1)), sizeof(uint64_t));
        ps->queue = calloc(PS_QUEUE_MAX, sizeof(*ps->queue));
        if (!ps->removed || !ps->queue)
                return gmem_error(-ENOMEM, "page server: the discarded pages and the fault queue");
        return 0;
}

void ps_events_done(struct gmem_page_server *ps) {
        if (ps->removed || ps->queue)
                pthread_rwlock_destroy(&ps->install);
        free(ps->removed);
        free(ps->queue);
        ps->removed = NULL;
        ps->queue = NULL;
}

static void mark_removed(struct gmem_page_server *ps, uint64_t off, uint64_t len) {
        uint64_t last = MIN(off + len, ps->s->h.region_size);
        for (uint64_t p = off / 4096; p < (last + 4095) / 4096; p++)
                ps->removed[p / 64] |= UINT64_C(1) << (p % 64);
}

static bool page_removed(const struct gmem_page_server *ps, uint64_t p) {
        return ps->removed[p / 64] & (UINT64_C(1) << (p % 64));
}

void ps_clear_removed(const struct gmem_page_server *ps, uint8_t *dst, uint64_t off, uint64_t len) {
        for (uint64_t p = off / 4096; p < (off + len + 4095) / 4096; p++)
                if (page_removed(ps, p)) {
                        uint64_t a = MAX(p * 4096, off), b = MIN(p * 4096 + 4096, off + len);
                        memset(dst + (a - off), 0, b - a);
                }
}

/* The VMM discarded [a, b) of its memory (addresses). Private memory then reads as zeroes: what
 * is not served yet is marked, to be served as zeroes; what was served faults again (run() maps a
 * zero page). A shared mapping's file keeps its pages (MADV_DONTNEED), and a hole punched in it
 * (MADV_REMOVE) is served as the file has it: nothing to mark. */
static void vmm_discarded(struct gmem_page_server *ps, uint64_t a, uint64_t b) {
        if (ps->region)
                return;
        for (size_t i = 0; i < ps->n_maps; i++) {
                const struct ps_map *m = &ps->maps[i];
                uint64_t lo = MAX(a, m->base), hi = MIN(b, m->base + m->size);
                if (lo < hi)
                        mark_removed(ps, m->offset + (align_down(lo, 4096) - m->base), align_up(hi, 4096) - align_down(lo, 4096));
        }
}

static int queue_fault(struct gmem_page_server *ps, const struct uffd_msg *msg) {
        if (ps->q_len == PS_QUEUE_MAX) {
                /* the thread stays in its fault; waking everyone makes it fault again */
                __atomic_store_n(&ps->wake_all, true, __ATOMIC_RELAXED);
                return 0;
        }
        ps->queue[(ps->q_head + ps->q_len++) % PS_QUEUE_MAX] =
                (struct ps_fault) { .address = msg->arg.pagefault.address, .flags = msg->arg.pagefault.flags };
        return 0;
}

bool ps_queue_pop(struct gmem_page_server *ps, struct ps_fault *ret) {
        bool any;

        pthread_rwlock_wrlock(&ps->install);
        any = ps->q_len > 0;
        if (any) {
                *ret = ps->queue[ps->q_head];
                ps->q_head = (ps->q_head + 1) % PS_QUEUE_MAX;
                ps->q_len--;
        }
        pthread_rwlock_unlock(&ps->install);
        return any;
}

static int apply(struct gmem_page_server *ps, const struct uffd_msg *msg) {
        switch (msg->event) {
        case UFFD_EVENT_PAGEFAULT:
                return queue_fault(ps, msg);
        case UFFD_EVENT_REMOVE:
        case UFFD_EVENT_UNMAP:
                vmm_discarded(ps, msg->arg.remove.start, msg->arg.remove.end);
                return 0;
        case UFFD_EVENT_FORK:
                /* a child's copy of the memory: not ours to serve (and its uffd must not leak) */
                close((int) msg->arg.fork.ufd);
                return 0;
        case UFFD_EVENT_REMAP:
                return gmem_error(-EOPNOTSUPP, "page server: the VMM moved memory it serves (mremap %#" PRIx64 " to %#" PRIx64 ")",
                                  (uint64_t) msg->arg.remap.from, (uint64_t) msg->arg.remap.to);
        default:
                return 0;
        }
}

/* The uffd non-blocking, whatever its owner did to the description they share with us: a read with
 * nothing there must never wait, least of all under the install lock. */
static bool uffd_nonblocking(int uffd) {
        int fl = fcntl(uffd, F_GETFL);
        return fl >= 0 && ((fl & O_NONBLOCK) || fcntl(uffd, F_SETFL, fl | O_NONBLOCK) == 0);
}

int ps_drain(struct gmem_page_server *ps, unsigned *ret_events) {
        struct uffd_msg msgs[16];
        struct pollfd p = { .fd = ps->uffd, .events = POLLIN };
        unsigned events = 0;
        int read_n = 0, k = 0;

        if (!uffd_nonblocking(ps->uffd))
                return gmem_error(negative_errno(), "page server: make the userfaultfd non-blocking");
        if (poll(&p, 1, 0) <= 0) /* nothing there (or a poll that failed: the read below would say why) */
                return 0;
        pthread_rwlock_wrlock(&ps->install);
        for (;;) {
                ssize_t n = read(ps->uffd, msgs, sizeof(msgs));
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN)
                        break;
                if (n < 0) {
                        k = gmem_error(negative_errno(), "page server: read the userfaultfd");
                        break;
                }
                /* every message of the batch applied, the first error kept: a fault queued, a fork's
                 * uffd closed, whatever comes after an event we cannot take */
                for (ssize_t i = 0; i < n / (ssize_t) sizeof(msgs[0]); i++, read_n++) {
                        int r = apply(ps, &msgs[i]);
                        events += msgs[i].event != UFFD_EVENT_PAGEFAULT;
                        if (r < 0 && k == 0)
                                k = r;
                }
                if (k < 0 || n < (ssize_t) sizeof(msgs))
                        break;
        }
        pthread_rwlock_unlock(&ps->install);
        if (ret_events)
                *ret_events = events;
        return k < 0 ? k : read_n;
}

int ps_wake_all(struct gmem_page_server *ps) {
        __atomic_store_n(&ps->wake_all, false, __ATOMIC_RELAXED);
        for (size_t i = 0; i < ps->n_maps; i++) {
                struct uffdio_range r = { .start = ps->maps[i].base, .len = ps->maps[i].size };
                if (ioctl(ps->uffd, UFFDIO_WAKE, &r) < 0 && errno != ENOENT)
                        return gmem_error(negative_errno(), "UFFDIO_WAKE %#" PRIx64 "+%" PRIu64, (uint64_t) r.start, (uint64_t) r.len);
        }
        return 0;
}

enum fill { FILL_COPY, FILL_ZERO, FILL_CONTINUE };
static const char *const fill_names[] = { "UFFDIO_COPY", "UFFDIO_ZEROPAGE", "UFFDIO_CONTINUE" };

/* The event that made a fill see EAGAIN: read it. When there is nothing to read yet (the kernel
 * raises its flag a moment before it queues the event), wait for it a little. */
static int wait_out_event(struct gmem_page_server *ps) {
        int k = ps_drain(ps, NULL);
        if (k == 0) {
                struct pollfd p = { .fd = ps->uffd, .events = POLLIN };
                (void) poll(&p, 1, 1);
        }
        return k < 0 ? k : 0;
}

#define PS_NOMEM_RETRIES 300 /* 3 s of 10 ms waits */

static int fill(struct gmem_page_server *ps, enum fill how, const struct ps_map *m, uint8_t *src, uint64_t off, uint64_t len) {
        unsigned nomem = 0;

        for (uint64_t done = 0; done < len;) {
                uint64_t at = m->base + (off + done - m->offset), rest = len - done;
                int64_t got = 0;
                int r, e, k;

                pthread_rwlock_rdlock(&ps->install);
                if (how == FILL_COPY) {
                        struct uffdio_copy c = { .dst = at, .src = (uintptr_t) (src + done), .len = rest };
                        ps_clear_removed(ps, src + done, off + done, rest);
                        r = ioctl(ps->uffd, UFFDIO_COPY, &c);
                        got = c.copy;
                } else if (how == FILL_ZERO) {
                        struct uffdio_zeropage z = { .range = { .start = at, .len = rest } };
                        r = ioctl(ps->uffd, UFFDIO_ZEROPAGE, &z);
                        got = z.zeropage;
                } else {
                        struct uffdio_continue c = { .range = { .start = at, .len = rest } };
                        r = ioctl(ps->uffd, UFFDIO_CONTINUE, &c);
                        got = c.mapped;
                }
                e = errno;
                pthread_rwlock_unlock(&ps->install);
                if (r == 0)
                        return 0;
                if (got > 0) { /* part of it went in (and its waiters were woken): on from there */
                        done += MIN((uint64_t) got, rest);
                        continue;
                }
                switch (e) {
                case EAGAIN:
                        if ((k = wait_out_event(ps)) < 0)
                                return k;
                        continue;
                case EINTR:
                        continue;
                case ENOMEM: /* a busy host's memory cgroup at its limit: reclaim catches up */
                        if (++nomem <= PS_NOMEM_RETRIES) {
                                usleep(10 * 1000);
                                continue;
                        }
                        break;
                case EEXIST: /* a page there already: past it */
                        done += MIN(ps->pgsz, rest);
                        continue;
                case ENOENT: { /* the VMM unmapped it since: nothing to fill; wake whoever waited there */
                        struct uffdio_range w = { .start = at, .len = MIN(ps->pgsz, rest) };
                        (void) ioctl(ps->uffd, UFFDIO_WAKE, &w);
                        done += w.len;
                        continue;
                }
                case EFAULT:
                        if (how == FILL_CONTINUE)
                                return -EFAULT; /* the file has no page there: the caller's to decide */
                        break;
                case ESRCH:
                        return gmem_error(-ESRCH, "page server: the VMM's memory is gone (it exited)");
                }
                return gmem_error(-e, "%s at %#" PRIx64 "+%" PRIu64, fill_names[how], at, rest);
        }
        return 0;
}

int ps_copy(struct gmem_page_server *ps, const struct ps_map *m, uint8_t *src, uint64_t off, uint64_t len) {
        return len ? fill(ps, FILL_COPY, m, src, off, len) : 0;
}

int ps_zeropage(struct gmem_page_server *ps, const struct ps_map *m, uint64_t off, uint64_t len) {
        return len ? fill(ps, FILL_ZERO, m, NULL, off, len) : 0;
}

int ps_continue(struct gmem_page_server *ps, const struct ps_map *m, uint64_t off, uint64_t len) {
        return len ? fill(ps, FILL_CONTINUE, m, NULL, off, len) : 0;
}

int ps_write_file(struct gmem_page_server *ps, uint8_t *src, uint64_t off, uint64_t len, bool via_write) {
        int k = 0;

        for (unsigned nomem = 0;; nomem++) {
                pthread_rwlock_rdlock(&ps->install);
                ps_clear_removed(ps, src, off, len);
                if (via_write)
                        k = gmem_write_full(ps->region->fd, src, len, off, "page server", NULL);
                pthread_rwlock_unlock(&ps->install);
                if (k != -ENOMEM || nomem >= PS_NOMEM_RETRIES)
                        return k;
                usleep(10 * 1000); /* a busy host's memory cgroup at its limit: reclaim catches up */
        }
}

int page_server_discard(struct gmem_page_server *ps, uint64_t off, uint64_t len, int (*punch)(void *userdata), void *userdata) {
        uint64_t first, words, *saved;
        struct timespec until;
        int k;

        if (!ps || off >= ps->s->h.region_size)
                return gmem_error(-EINVAL, "page server: discard %" PRIu64 "+%" PRIu64 " is outside the source", off, len);
        len = MIN(len, ps->s->h.region_size - off);
        first = off / 4096 / 64;
        words = ((off + len + 4095) / 4096 + 63) / 64 - first;
        if (!(saved = malloc(words * sizeof(uint64_t))))
                return gmem_error(-ENOMEM, "page server: discard");
        /* a server that does not let go (a fill of 2 MiB takes milliseconds) must not hold up the caller */
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += 200 * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
                until.tv_sec++;
                until.tv_nsec -= 1000000000L;
        }
        if ((k = pthread_rwlock_timedwrlock(&ps->install, &until)) != 0) {
                free(saved);
                return gmem_error(k == ETIMEDOUT ? -EBUSY : -k, "page server: busy, the discard of %" PRIu64 "+%" PRIu64
                                  " was not made (try again)", off, len);
        }
        memcpy(saved, ps->removed + first, words * sizeof(uint64_t));
        mark_removed(ps, off, len);
        k = punch ? punch(userdata) : 0;
        if (k < 0) /* not punched: what it had not served yet is still the snapshot's */
                memcpy(ps->removed + first, saved, words * sizeof(uint64_t));
        pthread_rwlock_unlock(&ps->install);
        free(saved);
        return k;
}
