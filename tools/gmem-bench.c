/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * gmem-bench: libgmem against the baselines it must beat, measured in the same run and reported
 * as ratios (this machine is shared and noisy; absolute numbers only give the scale).
 *
 *   populate  gmem_populate_fd (parallel pread into the mapping)
 *             vs the seed's path: one thread memcpy from the mapped image through the mapping
 *   fd-write  (where the region has a write() path: memfd, guest_memfd with WRITE)
 *   buf-write gmem_populate_fd / gmem_populate_buf forced through write()
 *             vs the same forced through the mapping: which path libgmem should prefer
 *             for each source, on this kernel (guest_memfd gets the best flags plus WRITE)
 *   prefault  gmem_prefault
 *             vs QEMU's prealloc: min(cores, 16) threads, capped at one per 64 MiB, equal
 *             contiguous parts, one MADV_POPULATE_WRITE each (touching pages on EINVAL)
 *   handoff   (with --socket: a running gmemd) gmem_client_open() of a region, per fd
 *             vs the floor: a raw SCM_RIGHTS ping-pong between two processes
 *   latency   (--latency, with --socket) the p50/p99 of a trivial request (info on one region)
 *             while one client misbehaves in each way a local user could, against the idle
 *             figure: a reader that never reads, opens whose fds are never read, a flood of
 *             connect/close, connections that never say hello, a stream of malformed messages,
 *             creates and releases up to its quota, info on a large secret region (a residency
 *             walk), and a populate keeping the workers busy;
 *             and, as a control, a process that only spins: on a small machine the abuser's
 *             CPU alone costs that much
 *
 * Every trial uses a fresh region; trials alternate between candidate and baseline after one
 * discarded warm-up of each, and the median of each is reported.
 */
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "gmem/gmem.h"
#include "fd-pass.h"
#include "kvm-compat.h"
#include "macro.h"
#include "snapshot.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

static struct {
        uint64_t size;
        unsigned trials;
        enum gmem_backend backend;
        bool json;
        const char *socket;
        bool latency;
        const char *only; /* --only: the rows to run, comma-separated */
} arg = { .size = 256 * MiB, .trials = 5, .backend = GMEM_BACKEND_MEMFD };

static int kvm_vm = -1;

/* Is row NAME among those --only asked for (all without it)? */
static bool wanted(const char *name) {
        size_t n = strlen(name);

        if (!arg.only)
                return true;
        for (const char *p = arg.only; *p; p += strcspn(p, ","), p += *p == ',')
                if (strncmp(p, name, n) == 0 && (p[n] == ',' || p[n] == 0))
                        return true;
        return false;
}
static uint64_t gmem_flags = GMEM_GUEST_MEMFD_FLAG_MMAP | GMEM_GUEST_MEMFD_FLAG_INIT_SHARED;

static int cmp_double(const void *a, const void *b) {
        double x = *(const double *) a, y = *(const double *) b;
        return x < y ? -1 : x > y;
}

static double median(double *v, unsigned n) {
        qsort(v, n, sizeof(*v), cmp_double);
        return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static struct gmem_region *fresh_region(void) {
        struct gmem_region *r = NULL;
        int k;

        if (arg.backend == GMEM_BACKEND_GUEST_MEMFD)
                k = gmem_region_new_guest_memfd(kvm_vm, arg.size, gmem_flags, &r);
        else
                k = gmem_region_new_memfd(arg.backend, arg.size, &r);
        if (k < 0) {
                fprintf(stderr, "gmem-bench: %s\n", gmem_last_error());
                exit(1);
        }
        return r;
}

static void *map_region(struct gmem_region *r) {
        void *p;
        if (gmem_region_map(r, &p) < 0) {
                fprintf(stderr, "gmem-bench: %s\n", gmem_last_error());
                exit(1);
        }
        return p;
}

/* ---- populate ---- */

static int image_fd = -1;
static const void *image_map;

static double populate_gmem(void) {
        struct gmem_region *r = fresh_region();
        double t = mono_sec();
        if (gmem_populate_fd(r, 0, image_fd, 0, arg.size, NULL) < 0) {
                fprintf(stderr, "gmem-bench: populate: %s\n", gmem_last_error());
                exit(1);
        }
        t = mono_sec() - t;
        gmem_region_free(r);
        return t;
}

static double populate_path(bool from_buf, unsigned path) {
        struct gmem_populate_opts opts = { .size = sizeof(opts), .flags = path };
        struct gmem_region *r = fresh_region();
        double t = mono_sec();
        int64_t n = from_buf ? gmem_populate_buf(r, 0, image_map, arg.size, &opts)
                             : gmem_populate_fd(r, 0, image_fd, 0, arg.size, &opts);
        if (n < 0) {
                fprintf(stderr, "gmem-bench: populate: %s\n", gmem_last_error());
                exit(1);
        }
        t = mono_sec() - t;
        gmem_region_free(r);
        return t;
}
static double fd_via_write(void) { return populate_path(false, GMEM_POPULATE_VIA_WRITE); }
static double fd_via_mapping(void) { return populate_path(false, GMEM_POPULATE_VIA_MAPPING); }
static double buf_via_write(void) { return populate_path(true, GMEM_POPULATE_VIA_WRITE); }
static double buf_via_mapping(void) { return populate_path(true, GMEM_POPULATE_VIA_MAPPING); }

/* Whether the backend's regions have a write() populate path here. */
static bool has_write_path(void) {
        struct gmem_populate_opts opts = { .size = sizeof(opts), .flags = GMEM_POPULATE_VIA_WRITE };
        struct gmem_region *r = fresh_region();
        bool ok = gmem_populate_buf(r, 0, image_map, 4096, &opts) == 4096;
        gmem_region_free(r);
        return ok;
}

/* one memcpy of src into region r (which it frees): its time */
static double memcpy_into(struct gmem_region *r, const void *src) {
        void *dst = map_region(r);
        double t = mono_sec();
        memcpy(dst, src, arg.size);
        t = mono_sec() - t;
        gmem_region_free(r);
        return t;
}

static double populate_memcpy(void) {
        return memcpy_into(fresh_region(), image_map);
}

/* ---- restore from a snapshot ---- */

static int snap_fd = -1;      /* a snapshot of the image, in page cache (a memfd) */
static const uint8_t *snap_data; /* its data, mapped */

static struct gmem_region *faulted_region(void) {
        struct gmem_region *r = fresh_region();
        if (gmem_prefault(r, 0, arg.size, NULL) < 0) {
                fprintf(stderr, "gmem-bench: prefault: %s\n", gmem_last_error());
                exit(1);
        }
        return r;
}

static double restore_into(struct gmem_region *r) {
        double t = mono_sec();
        if (gmem_snapshot_restore(r, snap_fd, NULL) < 0) {
                fprintf(stderr, "gmem-bench: restore: %s\n", gmem_last_error());
                exit(1);
        }
        t = mono_sec() - t;
        gmem_region_free(r);
        return t;
}

static double restore_gmem(void) { return restore_into(fresh_region()); }
static double restore_pooled(void) { return restore_into(faulted_region()); }

/* what `dd if=SNAPSHOT of=/proc/self/fd/REGION bs=1M skip=... ` does: read a block, write it */
static double restore_dd(void) {
        struct gmem_region *r = fresh_region();
        static uint8_t buf[1 << 20];
        double t = mono_sec();
        for (uint64_t off = 0; off < arg.size; off += sizeof(buf))
                if (pread(snap_fd, buf, sizeof(buf), (off_t) (4096 + off)) != (ssize_t) sizeof(buf) ||
                    pwrite(gmem_region_fd(r), buf, sizeof(buf), (off_t) off) != (ssize_t) sizeof(buf)) {
                        fprintf(stderr, "gmem-bench: dd: %m\n");
                        exit(1);
                }
        t = mono_sec() - t;
        gmem_region_free(r);
        return t;
}

/* the floor: one memcpy of the data into memory that is already there */
static double restore_floor(void) {
        return memcpy_into(faulted_region(), snap_data);
}

/* ---- lazy restore: a page server over the same snapshot ---- */

/* userfaultfd where this process may have one (else the lazy rows are left out, said on stderr) */
static bool uffd_usable(void) {
        static int usable = -1;
        if (usable < 0) {
                void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
                int fd;
                usable = p != MAP_FAILED && gmem_uffd_register(p, 4096, false, &fd) == 0;
                if (usable)
                        close(fd);
                else
                        fprintf(stderr, "gmem-bench: no lazy restore rows: %s\n", gmem_last_error());
                if (p != MAP_FAILED)
                        munmap(p, 4096);
        }
        return usable;
}

struct lazy {
        struct gmem_region *r;     /* a fresh memfd region (NULL: private memory) */
        bool private_memory;       /* anonymous private memory, as Firecracker's */
        uint8_t *mem;              /* the VMM's mapping of it, registered with uffd */
        int uffd;
        pthread_t thread;          /* running lazy_serve() */
        struct gmem_page_server *ps;
        volatile bool stop;
        bool prefetch;
        double complete_at;  /* when every window was in (prefetch) */
};

static void *lazy_serve(void *p) {
        struct lazy *l = p;
        while (!l->stop) {
                bool complete = gmem_page_server_complete(l->ps);
                /* wait for faults unless there is prefetching to do (never spin: the faulting
                 * thread would then be woken across cores, every time) */
                if (gmem_page_server_run(l->ps, complete || !l->prefetch ? 5 : 0) < 0 ||
                    (l->prefetch && !complete && gmem_page_server_prefetch(l->ps, 8 * MiB) < 0)) {
                        fprintf(stderr, "gmem-bench: page server: %s\n", gmem_last_error());
                        exit(1);
                }
                if (l->prefetch && !complete && gmem_page_server_complete(l->ps))
                        l->complete_at = mono_sec();
        }
        return NULL;
}

/* A fresh memfd region mapped as a VMM would map it, its mapping registered with a userfaultfd
 * and served from the snapshot: the time to the first byte (first_only), or to all of it. */
/* the server started at *ret_t0 (after the setup, as a VMM would have it done before it restores) */
static void lazy_start(struct lazy *l, double *ret_t0) {
        int k;

        if (l->private_memory)
                k = (l->mem = mmap(NULL, arg.size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)) == MAP_FAILED ||
                    gmem_uffd_register(l->mem, arg.size, false, &l->uffd) < 0 ||
                    gmem_page_server_new(l->uffd, (uintptr_t) l->mem, snap_fd, NULL, &l->ps) < 0;
        else
                k = gmem_region_new_memfd(GMEM_BACKEND_MEMFD, arg.size, &l->r) < 0 ||
                    (l->mem = mmap(NULL, arg.size, PROT_READ | PROT_WRITE, MAP_SHARED, gmem_region_fd(l->r), 0)) == MAP_FAILED ||
                    gmem_uffd_register(l->mem, arg.size, true, &l->uffd) < 0 ||
                    gmem_page_server_new(l->uffd, (uintptr_t) l->mem, snap_fd, l->r, &l->ps) < 0;
        if (k) {
                fprintf(stderr, "gmem-bench: lazy restore: %s\n", gmem_last_error());
                exit(1);
        }
        *ret_t0 = mono_sec();
        pthread_create(&l->thread, NULL, lazy_serve, l);
}

static void lazy_end(struct lazy *l) {
        l->stop = true;
        pthread_join(l->thread, NULL);
        gmem_page_server_free(l->ps);
        close(l->uffd);
        munmap(l->mem, arg.size);
        gmem_region_free(l->r);
}

static double lazy_restore(bool first_only) {
        struct lazy l = { .prefetch = !first_only };
        double t0, t;

        lazy_start(&l, &t0);
        if (first_only) {
                (void) *(volatile uint8_t *) l.mem;
                t = mono_sec() - t0;
        } else {
                while (!l.complete_at)
                        usleep(50);
                t = l.complete_at - t0;
        }
        lazy_end(&l);
        return t;
}

static double lazy_first(void) { return lazy_restore(true); }
static double lazy_full(void) { return lazy_restore(false); }

/* Fault service: the faulting thread's wait, one touch per 2 MiB window in turn. */
struct bare {
        uint64_t len;              /* what each fault gets: a page, or a block as ours serves */
        struct gmem_region *r;     /* the shared kind's memfd (NULL: private memory) */
        uint8_t *mem;
        int uffd;
        pthread_t thread;
        volatile bool stop;
};

/* the floor: read the event, UFFDIO_COPY len bytes of a buffer there, nothing else */
static void *bare_serve(void *p) {
        struct bare *b = p;
        static uint8_t block[SNAP_BLOCK] __attribute__((aligned(4096)));
        while (!b->stop) {
                struct uffd_msg m;
                struct pollfd pfd = { .fd = b->uffd, .events = POLLIN };
                if (poll(&pfd, 1, 5) <= 0 || read(b->uffd, &m, sizeof(m)) != sizeof(m) || m.event != UFFD_EVENT_PAGEFAULT)
                        continue;
                struct uffdio_copy c = { .dst = m.arg.pagefault.address & ~(b->len - 1), .src = (uintptr_t) block, .len = b->len };
                (void) ioctl(b->uffd, UFFDIO_COPY, &c);
        }
        return NULL;
}

static void bare_start(struct bare *b, bool private_memory, uint64_t len) {
        *b = (struct bare) { .len = len };
        if (private_memory)
                b->mem = mmap(NULL, arg.size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        else if (gmem_region_new_memfd(GMEM_BACKEND_MEMFD, arg.size, &b->r) == 0)
                b->mem = mmap(NULL, arg.size, PROT_READ | PROT_WRITE, MAP_SHARED, gmem_region_fd(b->r), 0);
        else
                b->mem = MAP_FAILED;
        if (b->mem == MAP_FAILED || gmem_uffd_register(b->mem, arg.size, false, &b->uffd) < 0) {
                fprintf(stderr, "gmem-bench: fault latency floor: %s\n", gmem_last_error());
                exit(1);
        }
        pthread_create(&b->thread, NULL, bare_serve, b);
}

static void bare_end(struct bare *b) {
        b->stop = true;
        pthread_join(b->thread, NULL);
        close(b->uffd);
        munmap(b->mem, arg.size);
        gmem_region_free(b->r);
}

static void percentiles(double *us, unsigned n, double *ret_p50, double *ret_p99) {
        qsort(us, n, sizeof(*us), cmp_double);
        *ret_p50 = us[n / 2];
        *ret_p99 = us[n * 99 / 100];
}

/* the wait of each of touches [from, to), one per 2 MiB window, in microseconds */
static void touch_windows(const uint8_t *mem, unsigned from, unsigned to, double *ret_us) {
        for (unsigned i = from; i < to; i++) {
                double t0 = mono_sec();
                (void) *(const volatile uint8_t *) (mem + (uint64_t) i * 2 * MiB);
                ret_us[i] = (mono_sec() - t0) * 1e6;
        }
}

static void pin(pthread_t t, int cpu) {
        cpu_set_t set;
        CPU_ZERO(&set);
        if (cpu >= 0)
                CPU_SET(cpu, &set);
        else
                for (long c = 0; c < sysconf(_SC_NPROCESSORS_ONLN) && c < CPU_SETSIZE; c++)
                        CPU_SET(c, &set);
        (void) pthread_setaffinity_np(t, sizeof(set), &set);
}

/* Fault service for one kind of memory — private (anonymous, UFFDIO_COPY) or a region's shared
 * mapping (the file filled, UFFDIO_CONTINUE) — against the floor for that memory: bare loops
 * that read the event and UFFDIO_COPY into the same kind of mapping, nothing else: one page (the
 * least a fault can get), and one block of what ours serves per fault (a snapshot's 16 KiB).
 * Touched in turns of 16, one per 2 MiB window, so that all see the same machine. */
static void fault_latency_of(bool private_memory, bool more) {
        unsigned n = (unsigned) MIN(arg.size / (2 * MiB), (uint64_t) 4096);
        double *us[3], p50[3], p99[3];
        struct lazy l = { .private_memory = private_memory };
        struct bare page, block;
        const char *kind = private_memory ? "private" : "shared";
        double t0;

        for (int i = 0; i < 3; i++)
                if (!(us[i] = calloc(n, sizeof(double)))) {
                        fprintf(stderr, "gmem-bench: fault latency: out of memory\n");
                        exit(1);
                }
        lazy_start(&l, &t0); /* no prefetch: every touch is a fault */
        bare_start(&page, private_memory, 4096);
        bare_start(&block, private_memory, SNAP_BLOCK);
        /* The servers and the faulting thread on one CPU: on this small VM a wakeup across CPUs
         * (a halted vCPU) costs some 50 us and comes at random — to one server's faults or
         * another's, run by run — which would be measured instead of the service itself. */
        {
                int cpu = MAX(sched_getcpu(), 0);
                pin(pthread_self(), cpu);
                pin(l.thread, cpu);
                pin(page.thread, cpu);
                pin(block.thread, cpu);
        }
        for (unsigned i = 0; i < n; i += 16) {
                touch_windows(l.mem, i, MIN(i + 16, n), us[0]);
                touch_windows(page.mem, i, MIN(i + 16, n), us[1]);
                touch_windows(block.mem, i, MIN(i + 16, n), us[2]);
        }
        pin(pthread_self(), -1);
        lazy_end(&l);
        bare_end(&page);
        bare_end(&block);

        for (int i = 0; i < 3; i++) {
                percentiles(us[i], n, &p50[i], &p99[i]);
                free(us[i]);
        }
        if (arg.json)
                printf("  {\"op\":\"fault-%s\",\"baseline\":\"bare UFFDIO_COPY of one page\",\"faults\":%u,"
                       "\"p50_us\":%.1f,\"p99_us\":%.1f,\"baseline_p50_us\":%.1f,\"baseline_p99_us\":%.1f,"
                       "\"block_baseline_p50_us\":%.1f,\"block_baseline_p99_us\":%.1f,\"block_bytes\":%u}%s\n",
                       kind, n, p50[0], p99[0], p50[1], p99[1], p50[2], p99[2], (unsigned) SNAP_BLOCK, more ? "," : "");
        else
                printf("fault-%-7s p50 %6.1f us p99 %6.1f us (a %u KiB block each)   bare UFFDIO_COPY of a page: "
                       "p50 %6.1f us p99 %6.1f us   p50 x%.2f the floor; of %u KiB: p50 %6.1f us p99 %6.1f us   x%.2f\n",
                       kind, p50[0], p99[0], (unsigned) (SNAP_BLOCK / 1024), p50[1], p99[1], p50[0] / p50[1],
                       (unsigned) (SNAP_BLOCK / 1024), p50[2], p99[2], p50[0] / p50[2]);
}

/* more: other rows follow (the JSON array's commas) */
static void fault_latency(bool more) {
        fault_latency_of(true, true);
        fault_latency_of(false, more);
}

/* ---- prefault ---- */

struct qemu_part {
        uint8_t *addr;
        uint64_t len;
};

static void *qemu_prealloc_thread(void *p) {
        struct qemu_part *part = p;
        if (madvise(part->addr, part->len, MADV_POPULATE_WRITE) < 0 && errno == EINVAL)
                for (uint64_t o = 0; o < part->len; o += 4096) {
                        volatile uint8_t *b = part->addr + o;
                        *b = *b;
                }
        return NULL;
}

static double prefault_qemu(void) {
        struct gmem_region *r = fresh_region();
        uint8_t *addr = map_region(r);
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        unsigned n = (unsigned) MIN((uint64_t) MIN(cores, 16), MAX(UINT64_C(1), arg.size / (64 * MiB)));
        uint64_t ps = gmem_region_page_size(r), per = align_up(arg.size / n, ps);
        struct qemu_part parts[16];
        pthread_t threads[16];
        double t = mono_sec();

        for (unsigned i = 0; i < n; i++) {
                uint64_t off = MIN(i * per, arg.size);
                parts[i] = (struct qemu_part) { addr + off, MIN(per, arg.size - off) };
                pthread_create(&threads[i], NULL, qemu_prealloc_thread, &parts[i]);
        }
        for (unsigned i = 0; i < n; i++)
                pthread_join(threads[i], NULL);
        t = mono_sec() - t;
        gmem_region_free(r);
        return t;
}

static double prefault_gmem(void) {
        struct gmem_region *r = fresh_region();
        double t;

        map_region(r);
        t = mono_sec();
        if (gmem_prefault(r, 0, arg.size, NULL) < 0) {
                fprintf(stderr, "gmem-bench: prefault: %s\n", gmem_last_error());
                exit(1);
        }
        t = mono_sec() - t;
        gmem_region_free(r);
        return t;
}

/* ---- fd handoff ---- */

#define HANDOFF_ROUNDS 2000

static int send_fd(int s, int fd) {
        return send_with_fds(s, "", 1, &fd, 1, 0) == 1 ? 0 : -1;
}

static int recv_fd(int s) {
        char c, cbuf[CMSG_SPACE(sizeof(int))];
        struct iovec iov = { &c, 1 };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
        int fd = -1;

        if (recvmsg(s, &mh, MSG_CMSG_CLOEXEC) != 1 || !CMSG_FIRSTHDR(&mh))
                return -1;
        memcpy(&fd, CMSG_DATA(CMSG_FIRSTHDR(&mh)), sizeof(int));
        return fd;
}

/* Seconds per fd: the asking process sends a request, the other answers with an fd (which is
 * what a client of gmemd does, without the daemon's work in between). */
static double handoff_raw(void) {
        int sp[2], memfd = memfd_create("bench", MFD_CLOEXEC);
        double t;
        pid_t pid;

        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0 || memfd < 0)
                exit(1);
        pid = fork();
        if (pid == 0) {
                close(sp[0]);
                for (int i = 0; i < HANDOFF_ROUNDS; i++) {
                        char c;
                        if (read(sp[1], &c, 1) != 1 || send_fd(sp[1], memfd) < 0)
                                _exit(1);
                }
                _exit(0);
        }
        close(sp[1]);
        t = mono_sec();
        for (int i = 0; i < HANDOFF_ROUNDS; i++) {
                int fd;
                if (write(sp[0], "?", 1) != 1 || (fd = recv_fd(sp[0])) < 0)
                        exit(1);
                close(fd);
        }
        t = (mono_sec() - t) / HANDOFF_ROUNDS;
        close(sp[0]);
        close(memfd);
        waitpid(pid, NULL, 0);
        return t;
}

static struct gmem_client *bench_client;

/* ---- warm pool: the daemon's pool of arg.size memfds, prefaulted (scripts/bench.sh configures it) ---- */

static double create_prefaulted(uint64_t size) {
        struct gmem_create_opts o = { .size = sizeof(o), .prefault = true };
        double t = mono_sec();
        if (gmem_client_create(bench_client, "gmem-bench-pool", GMEM_BACKEND_MEMFD, size, &o) < 0) {
                fprintf(stderr, "gmem-bench: create: %s\n", gmem_last_error());
                exit(1);
        }
        t = mono_sec() - t;
        (void) gmem_client_release(bench_client, "gmem-bench-pool");
        return t;
}

/* handed out of the pool, then time for the pool to refill before the next trial */
static double pool_handout(void) {
        double t = create_prefaulted(arg.size);
        usleep((useconds_t) MIN(5000000.0, 2e6 * (double) arg.size / GiB + 200000));
        return t;
}

/* the same size and more, so that no pool fits: create, then prefault on a worker */
static double cold_create(void) {
        return create_prefaulted(arg.size + 4096);
}

static double handoff_gmemd(void) {
        double t = mono_sec();
        for (int i = 0; i < HANDOFF_ROUNDS; i++) {
                struct gmem_region *r = NULL;
                if (gmem_client_open(bench_client, "gmem-bench", &r) < 0) {
                        fprintf(stderr, "gmem-bench: open: %s\n", gmem_last_error());
                        exit(1);
                }
                gmem_region_free(r);
        }
        return (mono_sec() - t) / HANDOFF_ROUNDS;
}

/* ---- loop latency under abuse ---- */

#define LATENCY_SAMPLES 2000

/* An abuser: a child process doing one bad thing against the daemon until it is killed. */
enum abuse {
        ABUSE_NONE,
        ABUSE_CPU_HOG,
        ABUSE_NEVER_READS,
        ABUSE_FD_HOARD,
        ABUSE_CONNECT_FLOOD,
        ABUSE_NO_HELLO,
        ABUSE_GARBAGE,
        ABUSE_REGION_CHURN,
        ABUSE_RESIDENCY,
        ABUSE_BUSY_WORKERS,
};
static const char *const abuse_names[] = {
        [ABUSE_NONE] = "idle",
        [ABUSE_CPU_HOG] = "control: a process spinning, no gmemd",
        [ABUSE_NEVER_READS] = "a client that never reads",
        [ABUSE_FD_HOARD] = "opens whose fds are never read",
        [ABUSE_REGION_CHURN] = "creates and releases to its quota",
        [ABUSE_RESIDENCY] = "info on a large secret region",
        [ABUSE_CONNECT_FLOOD] = "a flood of connect/close",
        [ABUSE_NO_HELLO] = "connections that never say hello",
        [ABUSE_GARBAGE] = "a stream of malformed messages",
        [ABUSE_BUSY_WORKERS] = "populates keeping the workers busy",
};

static int raw_connect(void) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", arg.socket);
        if (s >= 0 && connect(s, (struct sockaddr *) &sa, sizeof(sa)) < 0) {
                close(s);
                return -1;
        }
        return s;
}

__attribute__((noreturn)) static void abuser(enum abuse a) {
        static const char hello[] = "{\"op\":\"hello\",\"id\":1,\"version\":1}";
        static const char garbage[] = "{\"op\":\"list\",\"id\":1e300,\"name\":\"x\\u0000y\"}";
        char req[64];
        int s = -1, held[64], n_held = 0;

        switch (a) {
        case ABUSE_CPU_HOG: /* what any busy process costs on this machine: the floor for the rest */
                for (volatile unsigned long n = 0;; n++)
                        ;
        case ABUSE_NEVER_READS: /* sends lists, reads nothing: its queue fills, then it is dropped */
                for (unsigned i = 0;; i++) {
                        if (s < 0 && (s = raw_connect()) >= 0)
                                (void) send(s, hello, sizeof(hello) - 1, MSG_NOSIGNAL);
                        snprintf(req, sizeof(req), "{\"op\":\"list\",\"id\":%u}", i + 2);
                        if (s >= 0 && send(s, req, strlen(req), MSG_NOSIGNAL) < 0) {
                                close(s);
                                s = -1;
                        }
                }
        case ABUSE_FD_HOARD: /* each reply carries an fd: the queue's fd bound is what holds */
                for (unsigned i = 0;; i++) {
                        if (s < 0 && (s = raw_connect()) >= 0)
                                (void) send(s, hello, sizeof(hello) - 1, MSG_NOSIGNAL);
                        snprintf(req, sizeof(req), "{\"op\":\"open\",\"id\":%u,\"name\":\"gmem-bench-big\"}", i + 2);
                        if (s >= 0 && send(s, req, strlen(req), MSG_NOSIGNAL) < 0) {
                                close(s);
                                s = -1;
                        }
                }
        case ABUSE_REGION_CHURN: { /* as many regions as its share allows, again and again */
                struct gmem_client *c = NULL;
                char name[32];
                if (gmem_client_connect(arg.socket, &c) < 0)
                        _exit(1);
                for (unsigned i = 0;; i++) {
                        snprintf(name, sizeof(name), "churn-%u", i % 64);
                        if (gmem_client_create(c, name, GMEM_BACKEND_MEMFD, 2 * MiB, NULL) < 0)
                                (void) gmem_client_release(c, name);
                }
        }
        case ABUSE_RESIDENCY: { /* a region whose residency takes a page walk: asked for again and again */
                struct gmem_client *c = NULL;
                char *json;
                if (gmem_client_connect(arg.socket, &c) < 0)
                        _exit(1);
                (void) gmem_client_create(c, "gmem-bench-secret", GMEM_BACKEND_SECRET, 64 * MiB,
                                          &(struct gmem_create_opts) { .size = sizeof(struct gmem_create_opts),
                                                                       .prefault = true });
                for (;;)
                        if (gmem_client_info(c, "gmem-bench-secret", &json) == 0)
                                free(json);
        }
        case ABUSE_CONNECT_FLOOD:
                for (;;) {
                        s = raw_connect();
                        if (s >= 0)
                                close(s);
                }
        case ABUSE_NO_HELLO: /* holds as many silent connections as it is let */
                for (;;) {
                        if (n_held == (int) ELEMENTSOF(held)) {
                                close(held[0]);
                                memmove(held, held + 1, sizeof(int) * (size_t) --n_held);
                        }
                        if ((s = raw_connect()) >= 0)
                                held[n_held++] = s;
                        usleep(1000);
                }
        case ABUSE_GARBAGE:
                for (;;) {
                        if (s < 0)
                                s = raw_connect();
                        if (s >= 0 && send(s, garbage, sizeof(garbage) - 1, MSG_NOSIGNAL) < 0) {
                                close(s);
                                s = -1;
                        }
                        if (s >= 0) { /* read what comes back, so only the garbage is the load */
                                char buf[4096];
                                while (recv(s, buf, sizeof(buf), MSG_DONTWAIT) > 0)
                                        ;
                        }
                }
        case ABUSE_BUSY_WORKERS: {
                struct gmem_client *c = NULL;
                if (gmem_client_connect(arg.socket, &c) < 0)
                        _exit(1);
                for (;;)
                        (void) gmem_client_populate_fd(c, "gmem-bench-big", 0, image_fd, 0, arg.size);
        }
        case ABUSE_NONE:
                break;
        }
        for (;;)
                pause();
}

static int cmp_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
        return x < y ? -1 : x > y;
}

/* p50 and p99 in microseconds of a trivial request (info on one region), under abuse a. */
static void latency_under(enum abuse a, double *ret_p50, double *ret_p99) {
        static uint64_t ns[LATENCY_SAMPLES];
        struct gmem_client *c = NULL;
        pid_t pid = -1;

        if (a != ABUSE_NONE) {
                pid = fork();
                if (pid == 0)
                        abuser(a);
                usleep(200 * 1000); /* let it get going */
        }
        if (gmem_client_connect(arg.socket, &c) < 0) {
                fprintf(stderr, "gmem-bench: latency: connect under '%s': %s\n", abuse_names[a], gmem_last_error());
                exit(1);
        }
        for (unsigned i = 0; i < LATENCY_SAMPLES / 10; i++) { /* warm-up, not counted */
                char *json = NULL;
                if (gmem_client_info(c, "gmem-bench-big", &json) == 0)
                        free(json);
        }
        for (unsigned i = 0; i < LATENCY_SAMPLES; i++) {
                char *json = NULL;
                struct timespec t0, t1;
                clock_gettime(CLOCK_MONOTONIC, &t0);
                /* info on one region: the same small answer whatever else the daemon holds */
                if (gmem_client_info(c, "gmem-bench-big", &json) < 0) {
                        fprintf(stderr, "gmem-bench: latency: info under '%s': %s\n", abuse_names[a], gmem_last_error());
                        exit(1);
                }
                clock_gettime(CLOCK_MONOTONIC, &t1);
                free(json);
                ns[i] = (uint64_t) ((t1.tv_sec - t0.tv_sec) * 1000000000LL + (t1.tv_nsec - t0.tv_nsec));
        }
        gmem_client_free(c);
        if (pid > 0) {
                kill(pid, SIGKILL);
                waitpid(pid, NULL, 0);
        }
        if (a == ABUSE_RESIDENCY || a == ABUSE_REGION_CHURN) { /* what the abuser left behind */
                struct gmem_client *r = NULL;
                if (gmem_client_connect(arg.socket, &r) == 0) {
                        char name[32];
                        (void) gmem_client_release(r, "gmem-bench-secret");
                        for (unsigned i = 0; i < 64; i++) {
                                snprintf(name, sizeof(name), "churn-%u", i);
                                (void) gmem_client_release(r, name);
                        }
                }
                gmem_client_free(r);
        }
        qsort(ns, LATENCY_SAMPLES, sizeof(ns[0]), cmp_u64);
        *ret_p50 = (double) ns[LATENCY_SAMPLES / 2] / 1000;
        *ret_p99 = (double) ns[LATENCY_SAMPLES * 99 / 100] / 1000;
}

static int latency_report(void) {
        struct gmem_client *c = NULL;
        double idle50, idle99;

        if (gmem_client_connect(arg.socket, &c) < 0 ||
            gmem_client_create(c, "gmem-bench-big", GMEM_BACKEND_MEMFD, arg.size, NULL) < 0) {
                fprintf(stderr, "gmem-bench: gmemd at %s: %s\n", arg.socket, gmem_last_error());
                return 1;
        }
        latency_under(ABUSE_NONE, &idle50, &idle99);
        if (!arg.json)
                printf("%-36s p50 %8.1f us   p99 %8.1f us\n", abuse_names[ABUSE_NONE], idle50, idle99);
        else
                printf("[\n  {\"op\":\"latency\",\"abuse\":\"idle\",\"p50_us\":%.1f,\"p99_us\":%.1f}", idle50, idle99);
        for (enum abuse a = ABUSE_CPU_HOG; a <= ABUSE_BUSY_WORKERS; a++) {
                double p50, p99;
                latency_under(a, &p50, &p99);
                if (arg.json)
                        printf(",\n  {\"op\":\"latency\",\"abuse\":\"%s\",\"p50_us\":%.1f,\"p99_us\":%.1f,\"p99_vs_idle\":%.2f}",
                               abuse_names[a], p50, p99, p99 / idle99);
                else
                        printf("%-36s p50 %8.1f us   p99 %8.1f us   p99 x%.2f idle\n", abuse_names[a], p50, p99, p99 / idle99);
        }
        if (arg.json)
                printf("\n]\n");
        (void) gmem_client_release(c, "gmem-bench-big");
        gmem_client_free(c);
        return 0;
}

struct result {
        const char *name, *baseline;
        double candidate_s, baseline_s;
};

static struct result compare(const char *name, double (*candidate)(void), const char *bname, double (*baseline)(void)) {
        double c[64], b[64];

        candidate(), baseline(); /* warm-up: the first touch of host memory is far slower */
        for (unsigned i = 0; i < arg.trials; i++) {
                /* alternate the order so drift on a shared machine hits both alike */
                if (i % 2) {
                        b[i] = baseline();
                        c[i] = candidate();
                } else {
                        c[i] = candidate();
                        b[i] = baseline();
                }
        }
        return (struct result) { name, bname, median(c, arg.trials), median(b, arg.trials) };
}

static void print(const struct result *r, bool last) {
        double gib = (double) arg.size / GiB;

        if (strcmp(r->name, "pool") == 0) {
                if (arg.json)
                        printf("  {\"op\":\"pool\",\"baseline\":\"%s\",\"ms\":%.3f,\"baseline_ms\":%.3f,"
                               "\"faster\":%.0f}%s\n", r->baseline, r->candidate_s * 1e3, r->baseline_s * 1e3,
                               r->baseline_s / r->candidate_s, last ? "" : ",");
                else
                        printf("%-9s %7.3f ms, prefaulted   %-22s %7.1f ms   faster x%.0f\n", r->name, r->candidate_s * 1e3,
                               r->baseline, r->baseline_s * 1e3, r->baseline_s / r->candidate_s);
                return;
        }
        if (strcmp(r->name, "lazy-first") == 0) {
                if (arg.json)
                        printf("  {\"op\":\"lazy-first\",\"baseline\":\"%s\",\"ms_to_first_byte\":%.3f,"
                               "\"baseline_ms\":%.3f,\"sooner\":%.1f}%s\n", r->baseline, r->candidate_s * 1e3,
                               r->baseline_s * 1e3, r->baseline_s / r->candidate_s, last ? "" : ",");
                else
                        printf("%-9s %7.3f ms to the first byte   %-16s %7.1f ms   sooner x%.0f\n", r->name,
                               r->candidate_s * 1e3, r->baseline, r->baseline_s * 1e3, r->baseline_s / r->candidate_s);
                return;
        }
        if (strcmp(r->name, "handoff") == 0) {
                if (arg.json)
                        printf("  {\"op\":\"handoff\",\"baseline\":\"%s\",\"usec_per_fd\":%.2f,"
                               "\"baseline_usec_per_fd\":%.2f,\"speedup\":%.3f}%s\n", r->baseline, r->candidate_s * 1e6,
                               r->baseline_s * 1e6, r->baseline_s / r->candidate_s, last ? "" : ",");
                else
                        printf("%-9s %7.1f us/fd     %-28s %7.1f us/fd     gmemd costs x%.2f the floor\n", r->name,
                               r->candidate_s * 1e6, r->baseline, r->baseline_s * 1e6, r->candidate_s / r->baseline_s);
                return;
        }
        if (arg.json)
                printf("  {\"op\":\"%s\",\"baseline\":\"%s\",\"bytes\":%" PRIu64 ",\"seconds\":%.4f,\"baseline_seconds\":%.4f,"
                       "\"gib_per_s\":%.3f,\"baseline_gib_per_s\":%.3f,\"speedup\":%.3f}%s\n",
                       r->name, r->baseline, arg.size, r->candidate_s, r->baseline_s, gib / r->candidate_s,
                       gib / r->baseline_s, r->baseline_s / r->candidate_s, last ? "" : ",");
        else
                printf("%-9s %7.2f GiB/s   %-28s %7.2f GiB/s   speedup x%.2f\n", r->name, gib / r->candidate_s,
                       r->baseline, gib / r->baseline_s, r->baseline_s / r->candidate_s);
}

/* The whole run for a backend this kernel lacks: one SKIP row with the reason, exit 0. */
static int skip_backend(const char *why) {
        const char *name = gmem_backend_to_string(arg.backend);
        if (arg.json) {
                printf("[\n  {\"backend\": \"%s\", \"skipped\": true, \"reason\": \"", name);
                for (const char *p = why; *p; p++) /* JSON-escaped */
                        printf(*p == '"' || *p == '\\' ? "\\%c" : (unsigned char) *p < 0x20 ? "?" : "%c", *p);
                printf("\"}\n]\n");
        } else
                printf("gmem-bench: %s: SKIP: %s\n", name, why);
        return 0;
}

int main(int argc, char **argv) {
        static const struct option options[] = {
                { "size", required_argument, NULL, 's' },
                { "trials", required_argument, NULL, 't' },
                { "backend", required_argument, NULL, 'b' },
                { "json", no_argument, NULL, 'j' },
                { "socket", required_argument, NULL, 'S' },
                { "latency", no_argument, NULL, 'L' },
                { "only", required_argument, NULL, 'O' },
                {},
        };
        struct result res[12];
        unsigned n_res = 0;
        int c;

        while ((c = getopt_long(argc, argv, "s:t:b:j", options, NULL)) >= 0)
                switch (c) {
                case 's':
                        arg.size = strtoull(optarg, NULL, 0) * MiB;
                        break;
                case 't':
                        arg.trials = (unsigned) MAX(1, MIN(63, atoi(optarg)));
                        break;
                case 'b':
                        if (gmem_backend_from_string(optarg, &arg.backend) < 0) {
                                fprintf(stderr, "gmem-bench: %s\n", gmem_last_error());
                                return 2;
                        }
                        break;
                case 'j':
                        arg.json = true;
                        break;
                case 'S':
                        arg.socket = optarg;
                        break;
                case 'L':
                        arg.latency = true;
                        break;
                case 'O':
                        arg.only = optarg;
                        break;
                default:
                        fprintf(stderr, "usage: gmem-bench [--size MiB] [--trials N] [--backend memfd|secret|guest_memfd|hugetlb] [--json]\n"
                                        "                  [--socket GMEMD_SOCKET [--latency]] [--only ROW,...]\n");
                        return 2;
                }
        if (arg.size == 0 || arg.size % (2 * MiB)) {
                fprintf(stderr, "gmem-bench: --size must be a positive even number of MiB\n");
                return 2;
        }
        if (arg.backend == GMEM_BACKEND_GUEST_MEMFD) {
                int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
                kvm_vm = kvm < 0 ? -1 : ioctl(kvm, KVM_CREATE_VM, 0);
                if (kvm_vm < 0) {
                        char why[128];
                        snprintf(why, sizeof(why), "no VM to make a guest_memfd for (%s: %m)", kvm < 0 ? "/dev/kvm" : "KVM_CREATE_VM");
                        return skip_backend(why);
                }
                struct gmem_host_caps *caps = NULL;
                if (gmem_host_caps_new(GMEM_PROFILE_DETECT, &caps) == 0) /* NO_DIRECT_MAP where present, and write() */
                        gmem_flags = gmem_host_caps_best_guest_memfd_flags(caps) |
                                     (gmem_host_caps_guest_memfd_write(caps) ? gmem_host_caps_flag(caps, GMEM_FLAG_WRITE) : 0);
                gmem_host_caps_free(caps);
        }

        /* a backend this kernel lacks is a row that says so, not a failure of the whole run */
        {
                struct gmem_region *probe = NULL;
                int k = arg.backend == GMEM_BACKEND_GUEST_MEMFD ? gmem_region_new_guest_memfd(kvm_vm, 2 * MiB, gmem_flags, &probe)
                                                                : gmem_region_new_memfd(arg.backend, 2 * MiB, &probe);
                if (k == -EOPNOTSUPP || k == -ENOSYS || k == -EPERM || k == -ENODEV || k == -ENOTTY ||
                    (k == -ENOMEM && arg.backend == GMEM_BACKEND_HUGETLB)) /* no huge pages reserved */
                        return skip_backend(gmem_last_error());
                gmem_region_free(probe);
        }

        /* the image lives in a memfd: the source is warm page cache, as a cached kernel image would be */
        {
                struct gmem_region *img = NULL;
                uint8_t *p;
                if (gmem_region_new_memfd(GMEM_BACKEND_MEMFD, arg.size, &img) < 0) {
                        fprintf(stderr, "gmem-bench: %s\n", gmem_last_error());
                        return 1;
                }
                p = map_region(img);
                for (uint64_t i = 0; i < arg.size; i += 8)
                        *(uint64_t *) (p + i) = i * 0x9E3779B97F4A7C15ull;
                image_fd = dup(gmem_region_fd(img));
                image_map = mmap(NULL, arg.size, PROT_READ, MAP_SHARED, image_fd, 0);
                /* and its snapshot, in page cache too (every page backed: the whole image) */
                snap_fd = memfd_create("gmem-bench-snapshot", MFD_CLOEXEC);
                if (snap_fd < 0 || gmem_snapshot_write(img, snap_fd, NULL) < 0) {
                        fprintf(stderr, "gmem-bench: snapshot: %s\n", gmem_last_error());
                        return 1;
                }
                snap_data = mmap(NULL, arg.size, PROT_READ, MAP_SHARED | MAP_POPULATE, snap_fd, 4096);
                gmem_region_free(img);
        }

        if (arg.latency) {
                if (!arg.socket) {
                        fprintf(stderr, "gmem-bench: --latency needs --socket\n");
                        return 2;
                }
                return latency_report();
        }
        if (!arg.json) {
                char what[64];
                if (arg.backend == GMEM_BACKEND_GUEST_MEMFD)
                        snprintf(what, sizeof(what), "guest_memfd flags 0x%" PRIx64, gmem_flags);
                else
                        snprintf(what, sizeof(what), "%s", gmem_backend_to_string(arg.backend));
                printf("gmem-bench: %s, %" PRIu64 " MiB, %u trials (medians), %ld cores\n", what, arg.size / MiB,
                       arg.trials, sysconf(_SC_NPROCESSORS_ONLN));
        }
        if (wanted("populate"))
                res[n_res++] = compare("populate", populate_gmem, "1-thread memcpy via mapping", populate_memcpy);
        if (wanted("prefault"))
                res[n_res++] = compare("prefault", prefault_gmem, "QEMU prealloc threads", prefault_qemu);
        if (has_write_path() && wanted("restore")) /* dd needs the region's fd to take write() */
                res[n_res++] = compare("restore", restore_gmem, "dd bs=1M through the region's fd", restore_dd);
        if (wanted("restore-faulted"))
                res[n_res++] = compare("restore-faulted", restore_pooled, "memcpy into faulted memory (floor)", restore_floor);
        if (arg.backend == GMEM_BACKEND_MEMFD && uffd_usable()) { /* the lazy rows restore into memfd */
                if (wanted("lazy-first"))
                        res[n_res++] = compare("lazy-first", lazy_first, "eager restore", restore_gmem);
                if (wanted("lazy-full"))
                        res[n_res++] = compare("lazy-full", lazy_full, "eager restore", restore_gmem);
        }
        if (has_write_path()) {
                if (wanted("fd-write"))
                        res[n_res++] = compare("fd-write", fd_via_write, "populate_fd via the mapping", fd_via_mapping);
                if (wanted("buf-write"))
                        res[n_res++] = compare("buf-write", buf_via_write, "populate_buf via the mapping", buf_via_mapping);
        }
        if (arg.socket && (wanted("handoff") || wanted("pool"))) {
                if (gmem_client_connect(arg.socket, &bench_client) < 0 ||
                    gmem_client_create(bench_client, "gmem-bench", GMEM_BACKEND_MEMFD, 2 * MiB, NULL) < 0) {
                        fprintf(stderr, "gmem-bench: gmemd at %s: %s\n", arg.socket, gmem_last_error());
                        return 1;
                }
                if (wanted("handoff"))
                        res[n_res++] = compare("handoff", handoff_gmemd, "raw SCM_RIGHTS ping-pong", handoff_raw);
                if (getenv("GMEM_BENCH_POOL") && wanted("pool")) /* the daemon has a pool of arg.size (scripts/bench.sh) */
                        res[n_res++] = compare("pool", pool_handout, "cold create + prefault", cold_create);
                (void) gmem_client_release(bench_client, "gmem-bench");
                gmem_client_free(bench_client);
        }
        if (arg.json)
                printf("[\n");
        if (arg.backend == GMEM_BACKEND_MEMFD && uffd_usable() && wanted("fault"))
                fault_latency(n_res > 0);
        for (unsigned i = 0; i < n_res; i++)
                print(&res[i], i + 1 == n_res);
        if (arg.json)
                printf("]\n");
        return 0;
}
