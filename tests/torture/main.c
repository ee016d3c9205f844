/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * gmem-torture [--seed N] [--seconds S] [--length L] [--socket PATH] [--restart-cmd CMD]
 *              [--pid-cmd CMD] [--dir DIR] [--other-uid UID] [--sequence K --keep I,J,...]
 *
 * Runs random sequences of L operations (torture.h) against gmemd for S seconds, sequence k made
 * from seed N + k, checking every byte after every step and gmemd's fds, threads and RSS after
 * every sequence. Without --socket it starts a gmemd of its own ($BUILD/bin/gmemd). A failure
 * prints the seed and a shrunk sequence, and the command line that runs just that; exit 1.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <linux/kvm.h>

#include "torture.h"

#define SHRINK_RUNS_MAX 80
#define SHRINK_SECONDS_MAX 180 /* a failure that hangs a fault costs 30 s a run */
#define RSS_SLACK_KIB (48 * 1024)
/* No operation takes this long, even in check-kernels' emulated VMs (a fault gives up after 30 s):
 * gmemd stopped answering, or systemd never started it. Without this the run would hang until its
 * caller's timeout, saying nothing. */
#ifndef STALL_SECONDS
#define STALL_SECONDS 300
#endif

/* What to say when an operation stalls, formatted before it starts (the handler only writes). */
static char stall_sequence[96], stall_msg[320];
static size_t stall_len;

static void on_stall(int sig) {
        (void) sig;
        (void) !write(STDOUT_FILENO, stall_msg, stall_len);
        _exit(1);
}

static void stall_arm(const char *what) {
        int n = snprintf(stall_msg, sizeof(stall_msg), "FAIL: %s, %s: no progress in %d s (gmemd does not answer, or is not running)\n",
                         stall_sequence, what, STALL_SECONDS);
        stall_len = n < 0 ? 0 : MIN((size_t) n, sizeof(stall_msg) - 1);
        fflush(stdout);
        alarm(STALL_SECONDS);
}

static double now_s(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

/* ---- gmemd: ours, or the one under systemd */

static char own_dir[64];

static void start_gmemd(struct torture *t) {
        static char sock[128];
        const char *build = getenv("BUILD") ?: "build";
        char bin[256], cfg[128];
        FILE *f;

        snprintf(own_dir, sizeof(own_dir), "/tmp/gmem-torture-XXXXXX");
        if (!mkdtemp(own_dir) || chmod(own_dir, 0755) < 0) {
                fprintf(stderr, "gmem-torture: a directory for gmemd: %m\n");
                exit(2);
        }
        snprintf(sock, sizeof(sock), "%s/gmemd.sock", own_dir);
        snprintf(cfg, sizeof(cfg), "%s/gmemd.json", own_dir);
        snprintf(bin, sizeof(bin), "%s/bin/gmemd", build);
        f = fopen(cfg, "we");
        fprintf(f, "{\"limits\":{\"max_regions\":64,\"max_page_servers\":16}}\n");
        fclose(f);
        t->gmemd_pid = fork();
        if (t->gmemd_pid == 0) {
                char log[128];
                int fd;
                snprintf(log, sizeof(log), "%s/gmemd.log", own_dir);
                if ((fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) >= 0) {
                        dup2(fd, 1);
                        dup2(fd, 2);
                }
                execl(bin, bin, "--socket", sock, "--config", cfg, "--bus", "none", (char *) NULL);
                _exit(127);
        }
        t->socket = sock;
}

static void stop_gmemd(struct torture *t) {
        char cmd[128];
        if (t->gmemd_pid > 0) {
                kill(t->gmemd_pid, SIGTERM);
                waitpid(t->gmemd_pid, NULL, 0);
        }
        if (own_dir[0]) {
                snprintf(cmd, sizeof(cmd), "rm -rf %s", own_dir);
                (void) !system(cmd);
        }
}

static pid_t gmemd_pid(struct torture *t) {
        char line[64] = "";
        FILE *p;

        if (!t->pid_cmd)
                return t->gmemd_pid;
        if (!(p = popen(t->pid_cmd, "r")))
                return 0;
        if (!fgets(line, sizeof(line), p))
                line[0] = 0;
        pclose(p);
        return (pid_t) atoi(line);
}

/* ---- what gmemd holds: fds, threads, RSS */

struct usage {
        unsigned fds, threads;
        uint64_t rss_kib;
};

static int usage_of(pid_t pid, struct usage *u) {
        char path[64], line[256];
        FILE *f;
        int n = 0;

        *u = (struct usage) { 0 };
        snprintf(path, sizeof(path), "/proc/%d/fd", (int) pid);
        {
                char cmd[96];
                snprintf(cmd, sizeof(cmd), "ls %s 2>/dev/null | wc -l", path);
                if (!(f = popen(cmd, "r")))
                        return -1;
                if (fscanf(f, "%d", &n) != 1)
                        n = -1;
                pclose(f);
        }
        u->fds = (unsigned) n;
        snprintf(path, sizeof(path), "/proc/%d/status", (int) pid);
        if (!(f = fopen(path, "re")))
                return -1;
        while (fgets(line, sizeof(line), f)) {
                (void) sscanf(line, "Threads: %u", &u->threads);
                (void) sscanf(line, "VmRSS: %" SCNu64, &u->rss_kib);
        }
        fclose(f);
        return n < 0 ? -1 : 0;
}

static struct usage baseline;
static bool have_baseline;

/* back where it was: fds and threads exactly (once settled), RSS within slack */
static int check_usage(struct torture *t) {
        struct usage u = { 0 };
        pid_t pid = gmemd_pid(t);

        if (pid <= 0 || usage_of(pid, &u) < 0)
                return 0; /* not ours to see */
        if (!have_baseline) {
                baseline = u;
                have_baseline = true;
                return 0;
        }
        for (int i = 0; i < 60 && (u.fds > baseline.fds || u.threads > baseline.threads); i++) {
                usleep(50 * 1000);
                (void) usage_of(pid, &u);
        }
        if (u.fds > baseline.fds) {
                char cmd[96];
                snprintf(cmd, sizeof(cmd), "ls -l /proc/%d/fd >&2", (int) pid);
                (void) !system(cmd);
                return fail(t, "gmemd holds %u fds after the sequence, %u before", u.fds, baseline.fds);
        }
        if (u.threads > baseline.threads)
                return fail(t, "gmemd runs %u threads after the sequence, %u before", u.threads, baseline.threads);
        if (u.rss_kib > baseline.rss_kib + RSS_SLACK_KIB)
                return fail(t, "gmemd's RSS is %" PRIu64 " KiB after the sequence, %" PRIu64 " before", u.rss_kib,
                            baseline.rss_kib);
        return 0;
}

/* ---- sequences */

static struct op *sequence(uint64_t seed, unsigned length) {
        struct op *ops = calloc(length, sizeof(*ops));
        uint64_t rng = seed;
        for (unsigned i = 0; i < length; i++)
                op_generate(&rng, &ops[i]);
        return ops;
}

/* Run ops[i] for each i kept (keep NULL: all); -1 with t->failure and *ret_at the op that failed. */
static int run(struct torture *t, const struct op *ops, unsigned n, const bool *keep, unsigned *ret_at) {
        char what[96], stall[128];
        int k = 0;

        stall_arm("the reset before the first operation");
        if (state_reset(t) < 0 || check_usage(t) < 0) {
                *ret_at = 0;
                return -1;
        }
        for (unsigned i = 0; i < n && k == 0; i++) {
                if (keep && !keep[i])
                        continue;
                *ret_at = i;
                op_describe(&ops[i], what, sizeof(what));
                if (t->verbose)
                        fprintf(stderr, "  %u %s\n", i, what);
                snprintf(stall, sizeof(stall), "operation %u %s", i, what);
                stall_arm(stall);
                if ((k = op_run(t, &ops[i])) == 0) {
                        snprintf(what, sizeof(what), "%s (op %u)", op_name(ops[i].type), i);
                        k = check_all(t, what);
                }
        }
        if (k == 0) {
                *ret_at = n;
                stall_arm("the reset after the last operation");
                if ((k = state_reset(t)) == 0)
                        k = check_usage(t);
        }
        alarm(0);
        return k;
}

/* Take away as many operations as still leave it failing the same way — at an operation of the
 * same kind, or at the end (ddmin); the kept ones in keep. */
static unsigned shrink(struct torture *t, const struct op *ops, unsigned n, bool *keep, unsigned failed_at) {
        unsigned kept = n, granularity = 2, runs = 0, at;
        int kind = failed_at < n ? (int) ops[failed_at].type : -1;
        char saved[sizeof(t->failure)];

        double deadline = now_s() + SHRINK_SECONDS_MAX;

        snprintf(saved, sizeof(saved), "%s", t->failure);
        while (kept >= 2 && runs < SHRINK_RUNS_MAX && now_s() < deadline) {
                unsigned chunk = (kept + granularity - 1) / granularity;
                bool reduced = false;
                for (unsigned start = 0; start < kept && !reduced && runs < SHRINK_RUNS_MAX && now_s() < deadline; start += chunk) {
                        bool *try = malloc(n);
                        unsigned idx = 0;
                        memcpy(try, keep, n);
                        for (unsigned i = 0; i < n; i++)
                                if (keep[i]) {
                                        if (idx >= start && idx < start + chunk)
                                                try[i] = false;
                                        idx++;
                                }
                        for (int attempt = 0; attempt < 2 && !reduced; attempt++) { /* timing may hide it once */
                                runs++;
                                if (run(t, ops, n, try, &at) < 0 && (at < n ? (int) ops[at].type : -1) == kind) {
                                        memcpy(keep, try, n);
                                        kept -= MIN(chunk, kept - start);
                                        snprintf(saved, sizeof(saved), "%s", t->failure);
                                        reduced = true;
                                }
                        }
                        free(try);
                }
                if (reduced)
                        granularity = granularity > 2 ? granularity - 1 : 2;
                else if (granularity >= kept)
                        break;
                else
                        granularity = MIN(kept, granularity * 2);
        }
        snprintf(t->failure, sizeof(t->failure), "%s", saved);
        return kept;
}

/* ---- the host */

static void probe(struct torture *t) {
        struct gmem_caps caps;
        enum gmem_backend b;
        uint64_t flags;

        t->backends = 1u << GMEM_BACKEND_MEMFD | 1u << GMEM_BACKEND_HUGETLB;
        t->vm_fd = t->conv_vm_fd = t->plain_vm_fd = -1;
        if (gmem_caps_probe(&caps) < 0)
                return;
        /* a VM type with private memory (sw_protected, on the secret-hiding kernel): conversions */
        if (caps.kvm_error == 0 && (caps.vm_types & (1u << 1)) && (caps.memory_attributes[1] & (1u << 3))) {
                int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
                t->conv_vm_fd = kvm < 0 ? -1 : ioctl(kvm, KVM_CREATE_VM, 1 /* KVM_X86_SW_PROTECTED_VM */);
                if (kvm >= 0)
                        close(kvm);
        }
        if (t->conv_vm_fd < 0 && caps.kvm_error == 0) {
                int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
                t->plain_vm_fd = kvm < 0 ? -1 : ioctl(kvm, KVM_CREATE_VM, 0);
                if (kvm >= 0)
                        close(kvm);
        }
        if (caps.memfd_secret)
                t->backends |= 1u << GMEM_BACKEND_SECRET;
        if (caps.kvm_error == 0 && gmem_caps_pick_guest_memory(&caps, &b, &flags, NULL) == 0 && b == GMEM_BACKEND_GUEST_MEMFD) {
                int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
                t->vm_fd = kvm < 0 ? -1 : ioctl(kvm, KVM_CREATE_VM, 0);
                if (kvm >= 0)
                        close(kvm);
                t->gmem_flags = flags;
                if (t->vm_fd >= 0)
                        t->backends |= 1u << GMEM_BACKEND_GUEST_MEMFD;
        }
}

static void usage(void) {
        fprintf(stderr, "usage: gmem-torture [--seed N] [--seconds S] [--length L] [--socket PATH] [--restart-cmd CMD]\n"
                        "                    [--pid-cmd CMD] [--dir DIR] [--other-uid UID] [--other-gid GID] [--sequence K --keep I,J,...] [-v]\n");
        exit(2);
}

int main(int argc, char **argv) {
        static const struct option longopts[] = {
                { "seed", required_argument, NULL, 's' },     { "seconds", required_argument, NULL, 'S' },
                { "length", required_argument, NULL, 'l' },   { "socket", required_argument, NULL, 'k' },
                { "restart-cmd", required_argument, NULL, 'r' }, { "no-restart", required_argument, NULL, 'R' },
                { "pid-cmd", required_argument, NULL, 'p' },  { "dir", required_argument, NULL, 'd' },
                { "other-uid", required_argument, NULL, 'u' }, { "sequence", required_argument, NULL, 'q' },
                { "keep", required_argument, NULL, 'K' },     { "verbose", no_argument, NULL, 'v' },
                { "other-gid", required_argument, NULL, 'g' },
                {},
        };
        struct torture t = { .dir = "/tmp", .restart_why = "not under systemd: no fd store for gmemd to come back from" };
        uint64_t seed = (uint64_t) time(NULL) ^ ((uint64_t) getpid() << 32);
        unsigned length = 40, only = UINT32_MAX;
        double seconds = 60, t0;
        const char *keep_list = NULL;
        int c;

        while ((c = getopt_long(argc, argv, "v", longopts, NULL)) >= 0)
                switch (c) {
                case 's': seed = strtoull(optarg, NULL, 0); break;
                case 'S': seconds = atof(optarg); break;
                case 'l': length = (unsigned) atoi(optarg); break;
                case 'k': t.socket = optarg; break;
                case 'r': t.restart_cmd = optarg; break;
                case 'R': t.restart_why = optarg; break;
                case 'p': t.pid_cmd = optarg; break;
                case 'd': t.dir = optarg; break;
                case 'u': t.other_uid = (uid_t) atoi(optarg); break;
                case 'g': t.other_gid = (gid_t) atoi(optarg); break;
                case 'q': only = (unsigned) atoi(optarg); break;
                case 'K': keep_list = optarg; break;
                case 'v': t.verbose = true; break;
                default: usage();
                }
        if (length == 0 || length > 100000)
                usage();
        if (!t.other_uid && geteuid() == 0)
                t.other_uid = 65534;
        signal(SIGALRM, on_stall);
        probe(&t);
        if (!t.socket)
                start_gmemd(&t);
        snprintf(stall_sequence, sizeof(stall_sequence), "before the first sequence");
        stall_arm("connecting to gmemd");
        if (reconnect(&t) < 0) {
                fprintf(stderr, "gmem-torture: %s\n", t.failure);
                stop_gmemd(&t);
                return 2;
        }
        printf("gmem-torture: seed %" PRIu64 ", %u operations a sequence, %.0f s; backends:%s%s%s%s; conversions: %s; "
               "restarts: %s\n", seed, length, seconds, " memfd", t.backends & (1u << GMEM_BACKEND_SECRET) ? " secret" : "",
               " hugetlb (when pages are free)", t.backends & (1u << GMEM_BACKEND_GUEST_MEMFD) ? " guest_memfd" : "",
               t.conv_vm_fd >= 0 ? "on a sw_protected VM" : "none here (no VM type with private memory): each must be refused",
               t.restart_cmd ? t.restart_cmd : t.restart_why);
        alarm(0);
        fflush(stdout);

        t0 = now_s();
        for (uint64_t k = only == UINT32_MAX ? 0 : only; only == UINT32_MAX ? now_s() - t0 < seconds : k == only; k++) {
                struct op *ops = sequence(seed + k, length);
                bool *keep = NULL;
                unsigned at = 0;
                snprintf(stall_sequence, sizeof(stall_sequence), "seed %" PRIu64 " sequence %" PRIu64 " (seed %" PRIu64 ")", seed,
                         k, seed + k);
                if (keep_list) { /* a shrunk sequence, as a failure printed it */
                        char *list = strdup(keep_list), *save = NULL;
                        keep = calloc(length, 1);
                        for (char *w = strtok_r(list, ",", &save); w; w = strtok_r(NULL, ",", &save))
                                if ((unsigned) atoi(w) < length)
                                        keep[atoi(w)] = true;
                        free(list);
                }
                if (run(&t, ops, length, keep, &at) < 0) {
                        char what[96], first[sizeof(t.failure)];
                        unsigned kept, n = at + 1 < length ? at + 1 : length;
                        bool *shrunk = calloc(n, 1);
                        snprintf(first, sizeof(first), "%s", t.failure);
                        op_describe(&ops[at < length ? at : length - 1], what, sizeof(what));
                        printf("FAIL: seed %" PRIu64 " sequence %" PRIu64 " (seed %" PRIu64 "), operation %u %s:\n  %s\n", seed,
                               k, seed + k, at, at < length ? what : "(at the end)", first);
                        for (unsigned i = 0; i < n; i++)
                                shrunk[i] = !keep || keep[i];
                        fflush(stdout);
                        kept = shrink(&t, ops, n, shrunk, at < length ? at : n);
                        printf("shrunk to %u operation%s (%s):\n", kept, kept == 1 ? "" : "s", t.failure);
                        for (unsigned i = 0; i < n; i++)
                                if (shrunk[i]) {
                                        op_describe(&ops[i], what, sizeof(what));
                                        printf("  %u %s\n", i, what);
                                }
                        printf("reproduce: gmem-torture --seed %" PRIu64 " --length %u --sequence %" PRIu64 " --keep ", seed, length, k);
                        for (unsigned i = 0, first_kept = 1; i < n; i++)
                                if (shrunk[i]) {
                                        printf("%s%u", first_kept ? "" : ",", i);
                                        first_kept = 0;
                                }
                        printf(" (with the same --socket/--restart-cmd)\n");
                        (void) state_reset(&t);
                        gmem_client_free(t.c);
                        stop_gmemd(&t);
                        return 1;
                }
                t.sequences++;
                free(ops);
                free(keep);
        }
        printf("gmem-torture: ok: seed %" PRIu64 ", %" PRIu64 " sequences, %" PRIu64 " operations in %.0f s; %" PRIu64
               " pages (%" PRIu64 " MiB) compared with the model; %" PRIu64 " lazy restores, %" PRIu64 " discards, %" PRIu64
               " refusals, %" PRIu64 " restarts of gmemd; %" PRIu64 " pages pushed out to swap\n", seed, t.sequences, t.ops,
               now_s() - t0, t.pages_checked, t.bytes_checked >> 20, t.lazy_faults, t.discards, t.refusals, t.restarts,
               t.swapped_out);
        printf("gmem-torture: regions made:");
        for (unsigned b = 0; b < GMEM_BACKEND_COUNT; b++)
                printf(" %s %" PRIu64, gmem_backend_to_string((enum gmem_backend) b), t.regions_of[b]);
        printf("\n");
        gmem_client_free(t.c);
        stop_gmemd(&t);
        return 0;
}
