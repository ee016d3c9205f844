/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <linux/capability.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <linux/kvm.h>

#include "gmem-test.h"
#include "gmem/gmem.h"

void gmem_test_skip(const char *test, const char *fmt, ...) {
        const char *log = getenv("GMEM_TEST_SKIPLOG");
        char reason[512];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(reason, sizeof(reason), fmt, ap);
        va_end(ap);
        printf("SKIP %s: %s\n", test, reason);
        fflush(stdout);
        if (log) {
                FILE *f = fopen(log, "ae");
                if (f) {
                        fprintf(f, "%s: %s\n", test, reason);
                        fclose(f);
                }
        }
}

bool gmem_test_have_kvm(void) {
        int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
        bool ok = fd >= 0 && ioctl(fd, KVM_GET_API_VERSION, 0) == KVM_API_VERSION;
        if (fd >= 0)
                close(fd);
        return ok;
}

bool gmem_test_no_shared_gmem_refused(const char *test) {
        const uint64_t flags = GMEM_GUEST_MEMFD_FLAG_MMAP | GMEM_GUEST_MEMFD_FLAG_INIT_SHARED;
        struct gmem_region *r = (void *) (uintptr_t) 0x5a5a5a5a;
        struct gmem_caps caps;
        enum gmem_backend pick;
        uint64_t pick_flags;
        const char *m;
        int vm, k;

        ck_assert_int_eq(gmem_caps_probe(&caps), 0);
        ck_assert_int_eq(gmem_caps_pick_guest_memory(&caps, &pick, &pick_flags, NULL), 0);
        if (pick == GMEM_BACKEND_GUEST_MEMFD)
                return false;
        vm = gmem_test_new_vm();
        gmem_error_clear();
        k = gmem_region_new_guest_memfd(vm, 1u << 20, flags, &r);
        m = gmem_last_error();
        close(vm);
        ck_assert_msg(k == -EOPNOTSUPP, "%s: no mappable shared guest_memfd here, yet creating one gave %d (%s)",
                      test, k, m);
        ck_assert_ptr_eq(r, (void *) (uintptr_t) 0x5a5a5a5a);
        ck_assert_msg(strstr(m, "KVM_CAP_GUEST_MEMFD") || strstr(m, "MMAP") || strstr(m, "INIT_SHARED"),
                      "%s: the refusal does not name what the kernel lacks: '%s'", test, m);
        printf("KERNEL %s: no mappable shared guest_memfd; checked the refusal instead: %s\n", test, m);
        fflush(stdout);
        return true;
}

int gmem_test_new_vm(void) {
        int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC), vm;
        ck_assert_int_ge(kvm, 0);
        vm = ioctl(kvm, KVM_CREATE_VM, 0);
        ck_assert_msg(vm >= 0, "KVM_CREATE_VM: %m");
        close(kvm);
        return vm;
}

void gmem_test_fill(void *buf, size_t len, uint64_t seed) {
        uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
        uint8_t *p = buf;

        for (size_t i = 0; i < len; i += 8) {
                x ^= x >> 12;
                x ^= x << 25;
                x ^= x >> 27;
                uint64_t v = x * 0x2545F4914F6CDD1Dull;
                memcpy(p + i, &v, len - i < 8 ? len - i : 8);
        }
}

int gmem_test_temp_file(void) {
        const char *dir = getenv("TMPDIR") ?: "/tmp";
        int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
        ck_assert_msg(fd >= 0, "O_TMPFILE in %s: %m", dir);
        return fd;
}

int gmem_test_random_file(size_t len, uint64_t seed, void **ret_data) {
        int fd = gmem_test_temp_file();
        uint8_t *data = malloc(len ? len : 1);
        size_t done = 0;

        ck_assert_ptr_nonnull(data);
        gmem_test_fill(data, len, seed);
        while (done < len) {
                ssize_t n = write(fd, data + done, len - done);
                ck_assert_msg(n > 0, "write temp file: %m");
                done += n;
        }
        if (ret_data)
                *ret_data = data;
        else
                free(data);
        return fd;
}

int gmem_test_readonly_file(size_t len, uint64_t seed) {
        char path[64];
        int rw = gmem_test_random_file(len, seed, NULL), ro;

        snprintf(path, sizeof(path), "/proc/self/fd/%d", rw);
        ro = open(path, O_RDONLY | O_CLOEXEC);
        ck_assert_msg(ro >= 0, "open %s read-only: %m", path);
        close(rw);
        return ro;
}

void *gmem_test_read_fd(int fd, uint64_t off, size_t len) {
        uint8_t *b = malloc(len ? len : 1);
        size_t got = 0;

        ck_assert_ptr_nonnull(b);
        while (got < len) {
                ssize_t n = pread(fd, b + got, len - got, off + got);
                ck_assert_msg(n > 0, "pread: %m");
                got += n;
        }
        return b;
}

/* The daemon's process as a shipped unit makes it: without CAP_SYS_RESOURCE and CAP_SYS_ADMIN
 * (the kernel then holds the fds it has in flight to its RLIMIT_NOFILE), with that limit at
 * nofile; 0: as the test runs. */
static rlim_t daemon_nofile;

static void daemon_restrict(void) {
        struct rlimit rl = { daemon_nofile, daemon_nofile };
        if (!daemon_nofile)
                return;
        (void) prctl(PR_CAPBSET_DROP, CAP_SYS_RESOURCE, 0, 0, 0);
        (void) prctl(PR_CAPBSET_DROP, CAP_SYS_ADMIN, 0, 0, 0);
        (void) setrlimit(RLIMIT_NOFILE, &rl);
}

void gmem_test_daemon_start_restricted(struct gmem_test_daemon *d, const char *config_json, unsigned nofile) {
        daemon_nofile = nofile;
        gmem_test_daemon_start(d, config_json);
        daemon_nofile = 0;
}

void gmem_test_daemon_start(struct gmem_test_daemon *d, const char *config_json) {
        const char *build = getenv("BUILD") ?: "build";
        char bin[256];
        int fd;

        snprintf(d->dir, sizeof(d->dir), "/tmp/gmem-test-XXXXXX");
        ck_assert_ptr_nonnull(mkdtemp(d->dir));
        ck_assert_int_eq(chmod(d->dir, 0755), 0);
        snprintf(d->socket, sizeof(d->socket), "%s/gmemd.sock", d->dir);
        snprintf(d->config, sizeof(d->config), "%s/gmemd.json", d->dir);
        snprintf(d->log, sizeof(d->log), "%s/gmemd.log", d->dir);
        fd = open(d->config, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        ck_assert_int_ge(fd, 0);
        if (!config_json)
                config_json = "{}";
        ck_assert_int_eq(write(fd, config_json, strlen(config_json)), (ssize_t) strlen(config_json));
        close(fd);
        snprintf(bin, sizeof(bin), "%s/bin/gmemd", build);

        d->pid = fork();
        ck_assert_int_ge(d->pid, 0);
        if (d->pid == 0) {
                int log = open(d->log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
                if (log >= 0) {
                        dup2(log, STDERR_FILENO);
                        dup2(log, STDOUT_FILENO);
                }
                daemon_restrict();
                execl(bin, bin, "--socket", d->socket, "--config", d->config, "--bus", "none", "-v", (char *) NULL);
                _exit(127);
        }
        /* up to 5 s for the socket to answer */
        for (int i = 0; i < 500; i++) {
                struct sockaddr_un sa = { .sun_family = AF_UNIX };
                int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0), status;
                snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", d->socket);
                if (connect(s, (struct sockaddr *) &sa, sizeof(sa)) == 0) {
                        close(s);
                        return;
                }
                close(s);
                ck_assert_msg(waitpid(d->pid, &status, WNOHANG) == 0, "gmemd (%s) exited at start: status 0x%x, log %s",
                              bin, status, d->log);
                nanosleep(&(struct timespec) { 0, 10 * 1000 * 1000 }, NULL);
        }
        ck_abort_msg("gmemd did not answer on %s within 5 s", d->socket);
}

void gmem_test_daemon_stop(struct gmem_test_daemon *d) {
        char cmd[128];
        int status;

        if (d->pid <= 0)
                return;
        ck_assert_int_eq(kill(d->pid, SIGTERM), 0);
        ck_assert_int_eq(waitpid(d->pid, &status, 0), d->pid);
        d->pid = 0;
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "gmemd exited with status 0x%x (log %s)", status, d->log);
        ck_assert_msg(access(d->socket, F_OK) < 0, "gmemd left its socket %s behind", d->socket);
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d->dir);
        ck_assert_int_eq(system(cmd), 0);
}

unsigned gmem_test_count_fds(pid_t pid) {
        char path[64];
        struct dirent *de;
        unsigned n = 0;
        DIR *dir;

        snprintf(path, sizeof(path), "/proc/%d/fd", (int) pid);
        dir = opendir(path);
        ck_assert_ptr_nonnull(dir);
        while ((de = readdir(dir)))
                if (de->d_name[0] != '.')
                        n++;
        closedir(dir);
        return n;
}

int gmem_test_main(Suite *s) {
        SRunner *sr = srunner_create(s);
        struct rlimit rl;
        int failed;

        /* memfd_secret regions are charged to RLIMIT_MEMLOCK (8 MiB by default) and the tests make
         * larger ones: lift the soft limit as far as allowed. The limit itself is tested on its own. */
        if (getrlimit(RLIMIT_MEMLOCK, &rl) == 0) {
                struct rlimit want = { RLIM_INFINITY, RLIM_INFINITY };
                if (setrlimit(RLIMIT_MEMLOCK, &want) < 0) {
                        rl.rlim_cur = rl.rlim_max;
                        (void) setrlimit(RLIMIT_MEMLOCK, &rl);
                }
        }

        srunner_run_all(sr, CK_ENV);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

void *gmem_test_touch(void *toucher) {
        struct gmem_test_toucher *t = toucher;
        (void) t->p[0];
        t->done = true;
        return NULL;
}
