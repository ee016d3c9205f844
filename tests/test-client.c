/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libgmem's gmemd client (gmem_client_*), in two halves:
 *  - against the real daemon ($BUILD/bin/gmemd, started per test on a socket in a fresh directory):
 *    round trips with checksums on every memfd backend and on a VMM's own guest_memfd, open,
 *    progress and cancellation, list/info contents, grants (checked from another uid), release,
 *    the daemon's errors as errnos with its messages, and watch events;
 *  - against a scripted fake server in this file, for what a well-behaved daemon never does on
 *    demand: refusals before anything is sent, events and stray fds between a request and its reply,
 *    replies larger than the receive buffer, reordered cancel replies, unknown error codes,
 *    a wrong protocol version, a connection dropped mid-call.
 */
#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <linux/userfaultfd.h>

#include <cjson/cJSON.h>

#include "crc32c.h"
#include "fd-pass.h"
#include "gmem-test.h"
#include "gmem/gmem.h"

#define MiB_ (1024u * 1024u)

/* ---------------------------------------------------------------------------------------------
 * Small helpers
 */

static uint64_t fnv1a(const void *p, size_t n) {
        const uint8_t *b = p;
        uint64_t h = 0xcbf29ce484222325ull;
        for (size_t i = 0; i < n; i++) {
                h ^= b[i];
                h *= 0x100000001b3ull;
        }
        return h;
}

static bool all_zero(const uint8_t *p, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (p[i])
                        return false;
        return true;
}

static cJSON *parse(const char *s) {
        cJSON *j = cJSON_Parse(s);
        ck_assert_msg(j, "not JSON: %s", s);
        return j;
}

static uint64_t jnum(const cJSON *o, const char *k) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
        ck_assert_msg(cJSON_IsNumber(v), "member '%s' is not a number", k);
        ck_assert(v->valuedouble >= 0);
        return (uint64_t) v->valuedouble;
}

static const char *jstr(const cJSON *o, const char *k) {
        const char *s = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, k));
        ck_assert_msg(s, "member '%s' is not a string", k);
        return s;
}

static bool jarray_has(const cJSON *a, uint64_t v) {
        const cJSON *e;
        cJSON_ArrayForEach(e, a)
                if (cJSON_IsNumber(e) && (uint64_t) e->valuedouble == v)
                        return true;
        return false;
}


#define OK(expr) do { \
                long long _k = (long long) (expr); \
                ck_assert_msg(_k >= 0, "%s failed: %lld (%s): %s", #expr, _k, strerror((int) -_k), gmem_last_error()); \
        } while (0)

/* ---------------------------------------------------------------------------------------------
 * The real daemon, one per test
 */

static char daemon_dir[64];
static char daemon_sock[128];
static pid_t daemon_pid = -1;
static char daemon_missing[2 * PATH_MAX + 64]; /* why it could not start, for SKIP */

static void daemon_stop(void) {
        if (daemon_pid > 0) {
                kill(daemon_pid, SIGTERM);
                for (int i = 0; i < 500; i++) {
                        if (waitpid(daemon_pid, NULL, WNOHANG) == daemon_pid) {
                                daemon_pid = -1;
                                break;
                        }
                        usleep(10000);
                }
                if (daemon_pid > 0) {
                        kill(daemon_pid, SIGKILL);
                        waitpid(daemon_pid, NULL, 0);
                        daemon_pid = -1;
                }
        }
        if (daemon_dir[0]) {
                unlink(daemon_sock);
                rmdir(daemon_dir);
                daemon_dir[0] = 0;
        }
}

static void daemon_start(void) {
        const char *build = getenv("BUILD") ?: "build";
        char bin[PATH_MAX];
        pid_t parent = getpid();

        daemon_missing[0] = 0;
        snprintf(bin, sizeof(bin), "%s/bin/gmemd", build);
        if (access(bin, X_OK) < 0) {
                snprintf(daemon_missing, sizeof(daemon_missing), "%s is not built (make %s)", bin, bin);
                return;
        }
        snprintf(daemon_dir, sizeof(daemon_dir), "/tmp/gmem-test-client.XXXXXX");
        ck_assert_ptr_nonnull(mkdtemp(daemon_dir));
        chmod(daemon_dir, 0755); /* other uids (the grant test) reach the socket */
        snprintf(daemon_sock, sizeof(daemon_sock), "%s/gmemd.sock", daemon_dir);
        atexit(daemon_stop); /* a failed assertion ends this process without the teardown */

        daemon_pid = fork();
        ck_assert_int_ge(daemon_pid, 0);
        if (daemon_pid == 0) {
                /* gone with the test process, however it ends */
                prctl(PR_SET_PDEATHSIG, SIGTERM);
                if (getppid() != parent)
                        _exit(1);
                execl(bin, bin, "--socket", daemon_sock, "--bus", "none", (char *) NULL);
                fprintf(stderr, "exec %s: %m\n", bin);
                _exit(127);
        }

        /* ready when it answers hello */
        for (int i = 0; i < 250; i++) {
                struct gmem_client *c = NULL;
                int status;
                if (access(daemon_sock, F_OK) == 0 && gmem_client_connect(daemon_sock, &c) == 0) {
                        gmem_client_free(c);
                        return;
                }
                if (waitpid(daemon_pid, &status, WNOHANG) == daemon_pid) {
                        daemon_pid = -1;
                        ck_abort_msg("gmemd exited before it answered (status 0x%x)", status);
                }
                usleep(20000);
        }
        ck_abort_msg("gmemd did not answer on %s within 5 s: %s", daemon_sock, gmem_last_error());
}

#define REQUIRE_DAEMON() do { if (daemon_missing[0]) SKIP_TEST("%s", daemon_missing); } while (0)

static struct gmem_client *connect_daemon(void) {
        struct gmem_client *c = NULL;
        OK(gmem_client_connect(daemon_sock, &c));
        ck_assert_ptr_nonnull(c);
        return c;
}

/* ---------------------------------------------------------------------------------------------
 * Round trips: populate from a file through the daemon, dump back through the daemon, compare
 */

/* The region must read back as: zeroes, then src[src_off..src_off+len), then zeroes. */
static void check_dump(struct gmem_client *c, const char *name, uint64_t size, uint64_t dst_off, const uint8_t *src,
                       uint64_t len) {
        int out = gmem_test_temp_file();
        struct stat st;
        uint8_t *got;
        int64_t n;

        n = gmem_client_dump_fd(c, name, 0, size, out, 0);
        ck_assert_msg(n >= 0, "dump %s: %s", name, gmem_last_error());
        ck_assert_msg((uint64_t) n >= len && (uint64_t) n <= size, "dump %s wrote %" PRId64 " bytes (populated %" PRIu64
                      ", size %" PRIu64 ")", name, n, len, size);
        ck_assert_int_eq(fstat(out, &st), 0);
        ck_assert_msg((uint64_t) st.st_size == size, "dump file has %jd bytes, not %" PRIu64, (intmax_t) st.st_size, size);

        got = gmem_test_read_fd(out, 0, size);
        ck_assert_msg(all_zero(got, dst_off), "bytes before the populated range are not zero");
        ck_assert_msg(fnv1a(got + dst_off, len) == fnv1a(src, len) && memcmp(got + dst_off, src, len) == 0,
                      "populated range of %s differs after the round trip", name);
        ck_assert_msg(all_zero(got + dst_off + len, size - dst_off - len), "bytes after the populated range are not zero");
        free(got);
        close(out);
}

static void roundtrip(enum gmem_backend backend, uint64_t size, uint64_t seed) {
        struct gmem_client *c = connect_daemon();
        const char *name = gmem_backend_to_string(backend);
        uint64_t dst_off = 2 * 4096, src_off = 777, len = size / 2 + 12345;
        uint8_t *data = NULL;
        int src, k;

        k = gmem_client_create(c, name, backend, size, NULL);
        if (k == -ENOMEM && backend == GMEM_BACKEND_HUGETLB) {
                gmem_client_free(c);
                SKIP_TEST("no free 2 MiB huge pages for a %" PRIu64 " byte region: %s", size, gmem_last_error());
        }
        ck_assert_msg(k == 0, "create %s: %s", name, gmem_last_error());
        src = gmem_test_random_file(src_off + len, seed, (void **) &data);
        OK(gmem_client_populate_fd(c, name, dst_off, src, src_off, len));
        check_dump(c, name, size, dst_off, data + src_off, len);

        /* the daemon kept what it says */
        char *s = NULL;
        OK(gmem_client_info(c, name, &s));
        cJSON *r = parse(s);
        ck_assert_str_eq(jstr(r, "backend"), name);
        ck_assert_uint_eq(jnum(r, "size"), size);
        ck_assert_str_eq(jstr(r, "state"), "populated");
        ck_assert_uint_ge(jnum(r, "populated_bytes"), len);
        cJSON_Delete(r);
        free(s);

        OK(gmem_client_release(c, name));
        close(src);
        free(data);
        gmem_client_free(c);
}

START_TEST(test_roundtrip_memfd) {
        REQUIRE_DAEMON();
        roundtrip(GMEM_BACKEND_MEMFD, 8 * MiB_, 1);
}
END_TEST

START_TEST(test_roundtrip_secret) {
        REQUIRE_DAEMON();
        roundtrip(GMEM_BACKEND_SECRET, 4 * MiB_, 2);
}
END_TEST

START_TEST(test_roundtrip_hugetlb) {
        REQUIRE_DAEMON();
        roundtrip(GMEM_BACKEND_HUGETLB, 4 * MiB_, 3);
}
END_TEST

/* A VMM: its own VM and guest_memfd, custody handed to gmemd, which populates it and dumps it. */
START_TEST(test_vmm_flow) {
        const uint64_t flags = GMEM_GUEST_MEMFD_FLAG_MMAP | GMEM_GUEST_MEMFD_FLAG_INIT_SHARED;
        const uint64_t size = 16 * MiB_, len = 8 * MiB_ + 4096;
        struct gmem_region *r = NULL, *opened = NULL;
        struct gmem_client *c;
        uint8_t *data = NULL, *mine, *theirs;
        char *s = NULL;
        cJSON *j;
        int vm, src;

        REQUIRE_DAEMON();
        REQUIRE_SHARED_GMEM();

        vm = gmem_test_new_vm();
        OK(gmem_region_new_guest_memfd(vm, size, flags, &r));
        c = connect_daemon();
        OK(gmem_client_register(c, "vm1", r));

        OK(gmem_client_info(c, "vm1", &s));
        j = parse(s);
        ck_assert_str_eq(jstr(j, "backend"), "guest_memfd");
        ck_assert_uint_eq(jnum(j, "flags"), flags);
        ck_assert_uint_eq(jnum(j, "size"), size);
        ck_assert_uint_eq(jnum(j, "owner_uid"), geteuid());
        cJSON_Delete(j);
        free(s);

        src = gmem_test_random_file(len, 4, (void **) &data);
        OK(gmem_client_populate_fd(c, "vm1", 0, src, 0, len));
        check_dump(c, "vm1", size, 0, data, len);

        /* the VMM's own mapping sees what the daemon wrote: the same memory */
        OK(gmem_region_map(r, (void **) &mine));
        ck_assert_msg(memcmp(mine, data, len) == 0, "the VMM's mapping does not show the populated data");

        /* and whoever opens it gets a guest_memfd region with the flags the VMM used */
        OK(gmem_client_open(c, "vm1", &opened));
        ck_assert_int_eq(gmem_region_backend(opened), GMEM_BACKEND_GUEST_MEMFD);
        ck_assert_uint_eq(gmem_region_flags(opened), flags);
        ck_assert_uint_eq(gmem_region_size(opened), size);
        OK(gmem_region_map(opened, (void **) &theirs));
        ck_assert(memcmp(theirs, data, len) == 0);

        /* the VMM exits (its VM fd and region go); the daemon's dup keeps the memory */
        gmem_region_free(r);
        close(vm);
        check_dump(c, "vm1", size, 0, data, len);

        OK(gmem_client_release(c, "vm1"));
        gmem_region_free(opened);
        close(src);
        free(data);
        gmem_client_free(c);
}
END_TEST

START_TEST(test_open) {
        const uint64_t size = 4 * MiB_, len = 3 * MiB_;
        struct gmem_region *r = (struct gmem_region *) SENTINEL_PTR;
        struct gmem_client *c;
        uint8_t *data = NULL, *p;
        unsigned fds;
        int src, out;

        REQUIRE_DAEMON();
        c = connect_daemon();
        OK(gmem_client_create(c, "ram0", GMEM_BACKEND_MEMFD, size, NULL));
        src = gmem_test_random_file(len, 5, (void **) &data);
        OK(gmem_client_populate_fd(c, "ram0", 0, src, 0, len));

        fds = gmem_test_count_fds(getpid());
        EXPECT_FAIL(gmem_client_open(c, "nope", &r), ENOENT, "nope");
        ck_assert_ptr_eq(r, SENTINEL_PTR);
        ck_assert_uint_eq(gmem_test_count_fds(getpid()), fds);

        OK(gmem_client_open(c, "ram0", &r));
        ck_assert_uint_eq(gmem_test_count_fds(getpid()), fds + 1);
        ck_assert_int_eq(gmem_region_backend(r), GMEM_BACKEND_MEMFD);
        ck_assert_uint_eq(gmem_region_size(r), size);
        ck_assert_int_ne(fcntl(gmem_region_fd(r), F_GETFD) & FD_CLOEXEC, 0);
        OK(gmem_region_map(r, (void **) &p));
        ck_assert_msg(memcmp(p, data, len) == 0 && all_zero(p + len, size - len), "the opened fd shows other data");

        /* shared both ways: a write through the opened mapping is what the daemon dumps */
        memset(p + len, 0xab, 4096);
        out = gmem_test_temp_file();
        ck_assert_int_eq(gmem_client_dump_fd(c, "ram0", len, 4096, out, 0), 4096);
        uint8_t *b = gmem_test_read_fd(out, 0, 4096);
        for (int i = 0; i < 4096; i++)
                ck_assert_int_eq(b[i], 0xab);
        free(b);

        close(out);
        gmem_region_free(r);
        ck_assert_uint_eq(gmem_test_count_fds(getpid()), fds);
        close(src);
        free(data);
        gmem_client_free(c);
}
END_TEST

/* ---------------------------------------------------------------------------------------------
 * Progress and cancellation
 */

struct progress_log {
        unsigned calls;
        bool monotonic;
        uint64_t done, total;
        unsigned cancel_after; /* return non-zero on this call (0: never) */
};

static int on_progress(uint64_t done, uint64_t total, void *userdata) {
        struct progress_log *l = userdata;
        if (l->calls && done < l->done)
                l->monotonic = false;
        l->calls++;
        l->done = done;
        l->total = total;
        return l->cancel_after && l->calls >= l->cancel_after;
}

START_TEST(test_progress) {
        const uint64_t size = 64 * MiB_;
        struct progress_log log = { .monotonic = true };
        struct gmem_client *c;
        int src;

        REQUIRE_DAEMON();
        c = connect_daemon();
        OK(gmem_client_create(c, "ram0", GMEM_BACKEND_MEMFD, size, NULL));
        src = gmem_test_random_file(size, 6, NULL);
        gmem_client_set_progress(c, on_progress, &log);
        OK(gmem_client_populate_fd(c, "ram0", 0, src, 0, size));
        ck_assert_uint_ge(log.calls, 1);
        ck_assert_msg(log.monotonic, "done went backwards");
        ck_assert_uint_eq(log.total, size);
        ck_assert_uint_eq(log.done, size);

        /* prefault and a prefaulting create report too */
        log = (struct progress_log) { .monotonic = true };
        OK(gmem_client_create(c, "ram1", GMEM_BACKEND_MEMFD, size, &(struct gmem_create_opts) { .prefault = true }));
        ck_assert_uint_ge(log.calls, 1);
        ck_assert_uint_eq(log.total, size);
        ck_assert_uint_eq(log.done, size);

        /* no callback: no calls */
        gmem_client_set_progress(c, NULL, NULL);
        log.calls = 0;
        OK(gmem_client_prefault(c, "ram0", 0, size));
        ck_assert_uint_eq(log.calls, 0);

        close(src);
        gmem_client_free(c);
}
END_TEST

START_TEST(test_cancel) {
        const uint64_t size = 256 * MiB_;
        struct progress_log log = { .monotonic = true, .cancel_after = 1 };
        struct gmem_client *c;
        char *s = NULL;
        cJSON *r;
        int src;

        REQUIRE_DAEMON();
        c = connect_daemon();
        OK(gmem_client_create(c, "big", GMEM_BACKEND_MEMFD, size, NULL));
        src = gmem_test_random_file(size, 7, NULL);
        gmem_client_set_progress(c, on_progress, &log);
        EXPECT_FAIL(gmem_client_populate_fd(c, "big", 0, src, 0, size), ECANCELED, "");
        ck_assert_uint_eq(log.calls, 1); /* never asked again once it said stop */
        ck_assert_uint_lt(log.done, size);

        /* the connection goes on: the cancel's own reply was taken, nothing is left over */
        gmem_client_set_progress(c, NULL, NULL);
        OK(gmem_client_info(c, "big", &s));
        r = parse(s);
        ck_assert_str_ne(jstr(r, "state"), "populating");
        ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(r, "jobs")), 0);
        cJSON_Delete(r);
        free(s);

        /* cancelling a prefaulting create: the region is not created */
        log = (struct progress_log) { .monotonic = true, .cancel_after = 1 };
        gmem_client_set_progress(c, on_progress, &log);
        EXPECT_FAIL(gmem_client_create(c, "big2", GMEM_BACKEND_MEMFD, size, &(struct gmem_create_opts) { .prefault = true }),
                    ECANCELED, "");
        gmem_client_set_progress(c, NULL, NULL);
        EXPECT_FAIL(gmem_client_info(c, "big2", &s), ENOENT, "big2");

        /* a job that does not exist */
        gmem_error_clear();
        int k = gmem_client_cancel(c, 999999);
        ck_assert_msg(k < 0 && gmem_last_error()[0], "cancel of an unknown job: %d '%s'", k, gmem_last_error());

        close(src);
        gmem_client_free(c);
}
END_TEST

/* ---------------------------------------------------------------------------------------------
 * Questions, access, lifetime, errors, events
 */

static const cJSON *find_region(const cJSON *list, const char *name) {
        const cJSON *r;
        cJSON_ArrayForEach(r, list)
                if (strcmp(jstr(r, "name"), name) == 0)
                        return r;
        return NULL;
}

START_TEST(test_list_info) {
        struct gmem_client *c;
        char *s = (char *) SENTINEL_PTR;
        const cJSON *a, *b, *h;
        cJSON *list, *info;
        int src;

        REQUIRE_DAEMON();
        c = connect_daemon();
        OK(gmem_client_list(c, &s));
        list = parse(s);
        ck_assert(cJSON_IsArray(list));
        ck_assert_int_eq(cJSON_GetArraySize(list), 0);
        cJSON_Delete(list);
        free(s);

        OK(gmem_client_create(c, "a", GMEM_BACKEND_MEMFD, 1 * MiB_, NULL));
        OK(gmem_client_create(c, "b.x_y-z", GMEM_BACKEND_SECRET, 2 * MiB_,
                              &(struct gmem_create_opts) { .policy = GMEM_POLICY_CONNECTION }));
        src = gmem_test_random_file(64 * 1024, 8, NULL);
        OK(gmem_client_populate_fd(c, "a", 0, src, 0, 64 * 1024));

        OK(gmem_client_list(c, &s));
        list = parse(s);
        free(s);
        ck_assert_int_eq(cJSON_GetArraySize(list), 2);
        a = find_region(list, "a");
        b = find_region(list, "b.x_y-z");
        ck_assert_ptr_nonnull(a);
        ck_assert_ptr_nonnull(b);
        ck_assert_str_eq(jstr(a, "backend"), "memfd");
        ck_assert_uint_eq(jnum(a, "size"), 1 * MiB_);
        ck_assert_uint_eq(jnum(a, "flags"), 0);
        ck_assert_uint_eq(jnum(a, "page_size"), 4096);
        ck_assert_uint_eq(jnum(a, "owner_uid"), geteuid());
        ck_assert_str_eq(jstr(a, "policy"), "keep");
        ck_assert_str_eq(jstr(a, "state"), "populated");
        ck_assert_uint_eq(jnum(a, "populated_bytes"), 64 * 1024);
        ck_assert_uint_ge(jnum(a, "resident_bytes"), 64 * 1024);
        ck_assert_uint_gt(jnum(a, "created_usec"), UINT64_C(1600000000) * 1000000);
        ck_assert(cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(a, "grants"), "uids")));
        ck_assert(cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(a, "grants"), "gids")));
        ck_assert(cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(a, "jobs")));
        h = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(a, "holders"), 0);
        ck_assert_ptr_nonnull(h);
        ck_assert_uint_eq(jnum(h, "pid"), (uint64_t) getpid());
        ck_assert_uint_eq(jnum(h, "uid"), geteuid());
        ck_assert(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(h, "connected")));
        ck_assert_str_eq(jstr(b, "backend"), "secret");
        ck_assert_str_eq(jstr(b, "policy"), "connection");
        ck_assert_str_eq(jstr(b, "state"), "empty");

        OK(gmem_client_info(c, "a", &s));
        info = parse(s);
        free(s);
        ck_assert(cJSON_IsObject(info));
        ck_assert_str_eq(jstr(info, "name"), "a");
        ck_assert_uint_eq(jnum(info, "size"), jnum(a, "size"));
        ck_assert_uint_eq(jnum(info, "created_usec"), jnum(a, "created_usec"));
        cJSON_Delete(info);
        cJSON_Delete(list);

        OK(gmem_client_caps(c, &s));
        info = parse(s);
        ck_assert(cJSON_IsObject(info));
        cJSON_Delete(info);
        free(s);

        /* policy connection: gone with the connection that made it */
        gmem_client_free(c);
        c = connect_daemon();
        for (int i = 0; i < 100; i++) {
                gmem_error_clear();
                if (gmem_client_info(c, "b.x_y-z", &s) == -ENOENT)
                        break;
                free(s);
                s = NULL;
                usleep(10000);
        }
        EXPECT_FAIL(gmem_client_info(c, "b.x_y-z", &s), ENOENT, "b.x_y-z");
        OK(gmem_client_info(c, "a", &s));
        free(s);
        close(src);
        gmem_client_free(c);
}
END_TEST

/* The same answers as C values: every field of the typed list and info is the JSON's, and the
 * daemon's caps read back as host caps write the same JSON again. */
START_TEST(test_typed_results) {
        struct gmem_client *c;
        struct gmem_region_list *l = NULL;
        struct gmem_region_info *i = NULL;
        struct gmem_host_caps *hc = NULL;
        const struct gmem_region_info *a, *b;
        char *s = NULL, *again = NULL;
        cJSON *list, *ja, *caps, *caps2;
        uint64_t v, job, done, total;
        uint32_t uid;
        int32_t pid;
        const char *role, *op;
        bool connected;
        int src;

        REQUIRE_DAEMON();
        c = connect_daemon();
        OK(gmem_client_region_list(c, &l));
        ck_assert_uint_eq(gmem_region_list_count(l), 0);
        ck_assert_ptr_null(gmem_region_list_get(l, 0));
        l = gmem_region_list_free(l);

        OK(gmem_client_create(c, "ta", GMEM_BACKEND_MEMFD, 1 * MiB_, &(struct gmem_create_opts) GMEM_CREATE_OPTS_INIT));
        OK(gmem_client_create(c, "tb", GMEM_BACKEND_SECRET, 2 * MiB_,
                              &(struct gmem_create_opts) { .size = sizeof(struct gmem_create_opts),
                                                           .policy = GMEM_POLICY_CONNECTION }));
        OK(gmem_client_grant_uid(c, "ta", 4242));
        OK(gmem_client_grant_gid(c, "ta", 4343));
        src = gmem_test_random_file(64 * 1024, 9, NULL);
        OK(gmem_client_populate_fd(c, "ta", 0, src, 0, 64 * 1024));

        OK(gmem_client_list(c, &s));
        list = parse(s);
        free(s);
        ja = (cJSON *) find_region(list, "ta");
        ck_assert_ptr_nonnull(ja);
        OK(gmem_client_region_list(c, &l));
        ck_assert_uint_eq(gmem_region_list_count(l), 2);
        a = gmem_region_list_get(l, 0); /* sorted by name */
        b = gmem_region_list_get(l, 1);
        ck_assert_str_eq(gmem_region_info_name(a), "ta");
        ck_assert_str_eq(gmem_region_info_name(b), "tb");
        ck_assert_int_eq(gmem_region_info_backend(a), GMEM_BACKEND_MEMFD);
        ck_assert_int_eq(gmem_region_info_backend(b), GMEM_BACKEND_SECRET);
        ck_assert_uint_eq(gmem_region_info_size(a), jnum(ja, "size"));
        ck_assert_uint_eq(gmem_region_info_flags(a), 0);
        ck_assert_uint_eq(gmem_region_info_page_size(a), 4096);
        ck_assert_uint_eq(gmem_region_info_owner_uid(a), geteuid());
        ck_assert_int_eq(gmem_region_info_policy(a), GMEM_POLICY_KEEP);
        ck_assert_int_eq(gmem_region_info_policy(b), GMEM_POLICY_CONNECTION);
        ck_assert_int_eq(gmem_region_info_state(a), GMEM_REGION_POPULATED);
        ck_assert_int_eq(gmem_region_info_state(b), GMEM_REGION_EMPTY);
        ck_assert_uint_eq(gmem_region_info_populated_bytes(a), 64 * 1024);
        OK(gmem_region_info_resident_bytes(a, &v));
        ck_assert_uint_eq(v, jnum(ja, "resident_bytes"));
        ck_assert_uint_eq(gmem_region_info_created_usec(a), jnum(ja, "created_usec"));
        ck_assert_uint_eq(gmem_region_info_grant_uid_count(a), 1);
        OK(gmem_region_info_grant_uid(a, 0, &uid));
        ck_assert_uint_eq(uid, 4242);
        EXPECT_FAIL(gmem_region_info_grant_uid(a, 1, &uid), ERANGE, "there are 1");
        ck_assert_uint_eq(gmem_region_info_grant_gid_count(a), 1);
        OK(gmem_region_info_grant_gid(a, 0, &uid));
        ck_assert_uint_eq(uid, 4343);
        ck_assert_uint_eq(gmem_region_info_holder_count(a), 1);
        OK(gmem_region_info_holder(a, 0, &pid, &uid, &role, &connected));
        ck_assert_int_eq(pid, getpid());
        ck_assert_uint_eq(uid, geteuid());
        ck_assert_str_eq(role, "created");
        ck_assert(connected);
        EXPECT_FAIL(gmem_region_info_holder(a, 1, NULL, NULL, NULL, NULL), ERANGE, "holder 1");
        ck_assert_uint_eq(gmem_region_info_job_count(a), 0);
        EXPECT_FAIL(gmem_region_info_job(a, 0, &job, &op, &done, &total), ERANGE, "job 0");
        l = gmem_region_list_free(l);
        cJSON_Delete(list);

        OK(gmem_client_region_info(c, "ta", &i));
        ck_assert_str_eq(gmem_region_info_name(i), "ta");
        ck_assert_uint_eq(gmem_region_info_size(i), 1 * MiB_);
        i = gmem_region_info_free(i);
        i = SENTINEL_PTR;
        EXPECT_FAIL(gmem_client_region_info(c, "missing", &i), ENOENT, "missing");
        EXPECT_FAIL(gmem_client_region_info(c, "../x", &i), EINVAL, "invalid region name");
        ck_assert_ptr_eq(i, SENTINEL_PTR);
        /* NULL in, nothing out */
        ck_assert_ptr_null(gmem_region_info_name(NULL));
        ck_assert_int_eq(gmem_region_info_backend(NULL), GMEM_BACKEND_INVALID);
        ck_assert_uint_eq(gmem_region_list_count(NULL), 0);
        EXPECT_FAIL(gmem_region_info_resident_bytes(NULL, &v), EINVAL, "NULL");

        OK(gmem_client_caps(c, &s));
        caps = parse(s);
        free(s);
        OK(gmem_client_host_caps(c, &hc));
        OK(gmem_host_caps_to_json(hc, &again));
        caps2 = parse(again);
        free(again);
        ck_assert_msg(cJSON_Compare(caps, caps2, true), "the daemon's caps do not read back as the same caps");
        ck_assert_int_eq(gmem_host_caps_kvm_error(hc), gmem_test_have_kvm() ? 0 : gmem_host_caps_kvm_error(hc));
        cJSON_Delete(caps);
        cJSON_Delete(caps2);
        gmem_host_caps_free(hc);

        OK(gmem_client_release(c, "ta"));
        close(src);
        gmem_client_free(c);
}
END_TEST

/* A snapshot through gmemd, restored by gmemd under another name (and into another backend):
 * the same bytes; a damaged snapshot is refused and leaves no region. */
START_TEST(test_snapshot_restore) {
        struct gmem_client *c;
        struct gmem_region *a = NULL, *b = NULL;
        struct gmem_region_info *i = NULL;
        struct gmem_restore_opts ro = GMEM_RESTORE_OPTS_INIT;
        void *pa, *pb;
        int src, snap;
        int64_t n;
        uint8_t byte;

        REQUIRE_DAEMON();
        c = connect_daemon();
        OK(gmem_client_create(c, "snap-a", GMEM_BACKEND_MEMFD, 4 * MiB_, NULL));
        src = gmem_test_random_file(256 * 1024, 11, NULL);
        OK(gmem_client_populate_fd(c, "snap-a", 2 * MiB_, src, 0, 256 * 1024));
        snap = gmem_test_temp_file();
        n = gmem_client_snapshot_fd(c, "snap-a", snap);
        ck_assert_msg(n == 256 * 1024, "snapshot: %lld (%s)", (long long) n, gmem_last_error());

        OK(gmem_client_restore_fd(c, "snap-b", snap, NULL));
        OK(gmem_client_region_info(c, "snap-b", &i));
        ck_assert_uint_eq(gmem_region_info_size(i), 4 * MiB_);
        ck_assert_int_eq(gmem_region_info_backend(i), GMEM_BACKEND_MEMFD);
        ck_assert_int_eq(gmem_region_info_state(i), GMEM_REGION_POPULATED);
        ck_assert_uint_eq(gmem_region_info_populated_bytes(i), 256 * 1024);
        i = gmem_region_info_free(i);
        OK(gmem_client_open(c, "snap-a", &a));
        OK(gmem_client_open(c, "snap-b", &b));
        OK(gmem_region_map(a, &pa));
        OK(gmem_region_map(b, &pb));
        ck_assert_msg(memcmp(pa, pb, 4 * MiB_) == 0, "the restored region differs");
        a = gmem_region_free(a);
        b = gmem_region_free(b);

        /* another backend, asked for */
        ro.flags = GMEM_RESTORE_BACKEND;
        ro.backend = GMEM_BACKEND_SECRET;
        if (gmem_client_restore_fd(c, "snap-s", snap, &ro) == 0) {
                OK(gmem_client_region_info(c, "snap-s", &i));
                ck_assert_int_eq(gmem_region_info_backend(i), GMEM_BACKEND_SECRET);
                i = gmem_region_info_free(i);
                OK(gmem_client_release(c, "snap-s"));
        } else
                fprintf(stderr, "KERNEL test_snapshot_restore: no secret region in gmemd here: %s\n", gmem_last_error());

        EXPECT_FAIL(gmem_client_restore_fd(c, "snap-b", snap, NULL), EEXIST, "snap-b");
        /* one byte of data altered: refused when it is copied, and no region is left */
        ck_assert_int_eq(pread(snap, &byte, 1, 4096 + 2 * MiB_ + 100), 1);
        byte ^= 1;
        ck_assert_int_eq(pwrite(snap, &byte, 1, 4096 + 2 * MiB_ + 100), 1);
        EXPECT_FAIL(gmem_client_restore_fd(c, "snap-c", snap, NULL), EBADMSG, "checksum");
        EXPECT_FAIL(gmem_client_region_info(c, "snap-c", &i), ENOENT, "snap-c");
        /* not a snapshot at all: refused before anything is made */
        EXPECT_FAIL(gmem_client_restore_fd(c, "snap-c", src, NULL), EBADMSG, "not a gmem snapshot");
        EXPECT_FAIL(gmem_client_snapshot_fd(c, "nope", snap), ENOENT, "nope");
        ro.flags = 1u << 5;
        EXPECT_FAIL(gmem_client_restore_fd(c, "snap-c", snap, &ro), EINVAL, "unknown flags");
        close(snap);
        close(src);
        OK(gmem_client_release(c, "snap-a"));
        OK(gmem_client_release(c, "snap-b"));
        gmem_client_free(c);
}
END_TEST

/* gmemd as the page server: the test maps memory, registers a userfaultfd on it and hands it to
 * gmemd with a snapshot; touching the memory is served by gmemd, across processes — a shmem
 * mapping of a region's file and private anonymous memory. Cancelling ends it with an event. */
static void lazy_case(struct gmem_client *c, int snap, const uint8_t *want, bool shared) {
        struct gmem_region *r = NULL;
        char *ev = NULL;
        uint64_t job = 0;
        uint8_t *mem;
        int uffd, k;
        bool finished = false;

        OK(gmem_client_create(c, "lazy-b", GMEM_BACKEND_MEMFD, 4 * MiB_, NULL));
        if (shared) {
                OK(gmem_client_open(c, "lazy-b", &r));
                mem = mmap(NULL, 4 * MiB_, PROT_READ | PROT_WRITE, MAP_SHARED, gmem_region_fd(r), 0);
        } else
                mem = mmap(NULL, 4 * MiB_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        ck_assert_ptr_ne(mem, MAP_FAILED);
        k = gmem_uffd_register(mem, 4 * MiB_, shared, &uffd);
        if (k < 0) {
                fprintf(stderr, "SKIP test_serve_lazy: no userfaultfd here: %s\n", gmem_last_error());
                munmap(mem, 4 * MiB_);
                gmem_region_free(r);
                OK(gmem_client_release(c, "lazy-b"));
                return;
        }
        OK(gmem_client_serve_uffd(c, "lazy-b", uffd, (uintptr_t) mem, snap, shared ? GMEM_SERVE_SHARED : 0, &job));
        ck_assert_uint_gt(job, 0);
        ck_assert_msg(memcmp(mem, want, 4 * MiB_) == 0, "memory served by gmemd differs (%s)", shared ? "shared" : "private");
        OK(gmem_client_cancel(c, job));
        for (int i = 0; i < 200 && !finished; i++) {
                if (gmem_client_next_event(c, 50, &ev) == 0) {
                        finished = strstr(ev, "\"finished\"") && strstr(ev, "\"op\":\"serve\"");
                        if (finished)
                                ck_assert_msg(strstr(ev, "\"ok\":true"), "serve ended with %s", ev);
                        free(ev);
                        ev = NULL;
                }
        }
        ck_assert_msg(finished, "no finished event for the page server");
        close(uffd);
        munmap(mem, 4 * MiB_);
        gmem_region_free(r);
        OK(gmem_client_release(c, "lazy-b"));
}

START_TEST(test_serve_lazy) {
        struct gmem_client *c;
        struct gmem_region *a = NULL;
        uint8_t *want;
        void *pa;
        int src, snap;

        REQUIRE_DAEMON();
        c = connect_daemon();
        OK(gmem_client_create(c, "lazy-a", GMEM_BACKEND_MEMFD, 4 * MiB_, NULL));
        src = gmem_test_random_file(512 * 1024, 12, NULL);
        OK(gmem_client_populate_fd(c, "lazy-a", 1 * MiB_ + 8192, src, 0, 512 * 1024));
        snap = gmem_test_temp_file();
        ck_assert_int_ge(gmem_client_snapshot_fd(c, "lazy-a", snap), 0);
        OK(gmem_client_open(c, "lazy-a", &a));
        OK(gmem_region_map(a, &pa));
        want = pa;
        lazy_case(c, snap, want, true);
        lazy_case(c, snap, want, false);
        /* refused at once: an fd that is no userfaultfd, a snapshot of another size, a file that is
         * none, a header that claims more memory than the daemon may hold */
        OK(gmem_client_create(c, "lazy-small", GMEM_BACKEND_MEMFD, 2 * MiB_, NULL));
        EXPECT_FAIL(gmem_client_serve_uffd(c, "lazy-small", snap, 0x100000, snap, false, NULL), EBADF, "not a userfaultfd");
        {
                void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
                int uffd;
                ck_assert_ptr_ne(p, MAP_FAILED);
                if (gmem_uffd_register(p, 4096, false, &uffd) == 0) {
                        EXPECT_FAIL(gmem_client_serve_uffd(c, "lazy-small", uffd, (uintptr_t) p, snap, false, NULL), EINVAL,
                                    "the snapshot has");
                        EXPECT_FAIL(gmem_client_serve_uffd(c, "lazy-a", uffd, (uintptr_t) p, src, false, NULL), EBADMSG,
                                    "not a gmem snapshot");
                        close(uffd);
                }
                munmap(p, 4096);
        }
        {
                /* a consistent header of an 8 TiB region with no data, on a sparse file of its size */
                uint8_t h[4096];
                uint64_t huge = UINT64_C(1) << 43, zero = 0, table = 4096 + huge;
                uint32_t crc = 0;
                int big = gmem_test_temp_file();
                ck_assert_int_eq(pread(snap, h, sizeof(h), 0), (ssize_t) sizeof(h));
                memcpy(h + 16, &huge, 8);       /* region_size */
                memcpy(h + 44, &crc, 4);        /* table_crc: of no extents */
                memcpy(h + 56, &table, 8);      /* table_offset */
                memcpy(h + 64, &zero, 8);       /* n_extents */
                memcpy(h + 72, &zero, 8);       /* data_bytes */
                memcpy(h + 80, &table, 8);      /* file_size */
                memcpy(h + 88, &zero, 8);       /* no hot list */
                memcpy(h + 12, &crc, 4);        /* header_crc, over the header with it 0 */
                crc = gmem_crc32c(0, h, sizeof(h));
                memcpy(h + 12, &crc, 4);
                ck_assert_int_eq(pwrite(big, h, sizeof(h), 0), (ssize_t) sizeof(h));
                ck_assert_int_eq(ftruncate(big, (off_t) table), 0);
                EXPECT_FAIL(gmem_client_restore_fd(c, "lazy-huge", big, NULL), ENOSPC, "beyond the daemon's limit");
                close(big);
        }
        gmem_region_free(a);
        close(snap);
        close(src);
        OK(gmem_client_release(c, "lazy-small"));
        OK(gmem_client_release(c, "lazy-a"));
        gmem_client_free(c);
}
END_TEST

/* A watcher's events until one matches all of needles (NULL-terminated), within ~10 s. */
static bool event_seen(struct gmem_client *w, const char *const *needles, char *got, size_t got_size) {
        for (int i = 0; i < 200; i++) {
                char *ev = NULL;
                bool all = true;
                if (gmem_client_next_event(w, 50, &ev) < 0)
                        continue;
                for (const char *const *n = needles; *n && all; n++)
                        all = strstr(ev, *n) != NULL;
                if (all)
                        snprintf(got, got_size, "%s", ev);
                free(ev);
                if (all)
                        return true;
        }
        return false;
}

/* Firecracker mode against a real gmemd. No Firecracker binary can run here: the test plays
 * Firecracker's part of its documented handshake (docs/snapshotting/handling-page-faults-on-
 * snapshot-resume.md) — two anonymous regions, one uffd, one message on the socket. The page
 * server outlives the gmemctl-like client that set it up and ends when the VM hangs up. */
START_TEST(test_firecracker) {
        static const char *const done_ok[] = { "\"job-finished\"", "\"vm\":\"fc-vm\"", "\"ok\":true", NULL };
        static const char *const timed_out[] = { "\"finished\"", "\"op\":\"firecracker\"", "ETIMEDOUT", NULL };
        struct gmem_client *c, *w;
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        struct uffdio_register reg = { .mode = UFFDIO_REGISTER_MODE_MISSING };
        char dir[] = "/tmp/gmem-fc-test-XXXXXX", json[512], got[1024];
        uint8_t *data, *low, *high;
        uint64_t job = 0;
        int src, l, conn, uffd, len, notsock;

        REQUIRE_DAEMON();
        w = connect_daemon();
        OK(gmem_client_watch(w));
        c = connect_daemon();
        /* Firecracker's memory file: 4 MiB of data, then 2 MiB of hole (the second region) */
        src = gmem_test_random_file(4 * MiB_, 31, (void **) &data);
        ck_assert_int_eq(ftruncate(src, 6 * MiB_), 0);
        ck_assert_ptr_nonnull(mkdtemp(dir));
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/uffd.sock", dir);
        l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ck_assert_int_eq(bind(l, (struct sockaddr *) &sa, sizeof(sa)), 0);
        ck_assert_int_eq(listen(l, 1), 0);

        /* refused at once, naming what is wrong */
        notsock = gmem_test_temp_file();
        EXPECT_FAIL(gmem_client_serve_firecracker(c, "fc-vm", notsock, src, GMEM_PAGE_SERVER_RAW, 0, NULL), EINVAL,
                    "not a listening unix stream socket");
        EXPECT_FAIL(gmem_client_serve_firecracker(c, "fc-vm", l, src, 0, 0, NULL), EBADMSG, "not a gmem snapshot");
        EXPECT_FAIL(gmem_client_serve_firecracker(c, "../fc", l, src, GMEM_PAGE_SERVER_RAW, 0, NULL), EINVAL, "not a valid VM name");
        EXPECT_FAIL(gmem_client_serve_firecracker(c, "fc-vm", l, notsock, GMEM_PAGE_SERVER_RAW, 0, NULL), EINVAL,
                    "not a whole number of pages");
        close(notsock);

        OK(gmem_client_serve_firecracker(c, "fc-vm", l, src, GMEM_PAGE_SERVER_RAW, 10000, &job));
        ck_assert_uint_gt(job, 0);
        close(l);
        gmem_client_free(c); /* the requester goes; the VM's page server stays */

        low = mmap(NULL, 4 * MiB_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        high = mmap(NULL, 2 * MiB_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        ck_assert(low != MAP_FAILED && high != MAP_FAILED);
        if (gmem_uffd_register(low, 4 * MiB_, false, &uffd) < 0) {
                fprintf(stderr, "SKIP test_firecracker: no userfaultfd here: %s\n", gmem_last_error());
                goto out;
        }
        reg.range = (struct uffdio_range) { .start = (uintptr_t) high, .len = 2 * MiB_ };
        ck_assert_int_eq(ioctl(uffd, UFFDIO_REGISTER, &reg), 0);
        conn = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ck_assert_int_eq(connect(conn, (struct sockaddr *) &sa, sizeof(sa)), 0);
        len = snprintf(json, sizeof(json),
                       "[{\"base_host_virt_addr\":%lu,\"size\":%u,\"offset\":0,\"page_size\":4096,\"page_size_kib\":4096},"
                       "{\"base_host_virt_addr\":%lu,\"size\":%u,\"offset\":%u,\"page_size\":4096,\"page_size_kib\":4096}]",
                       (unsigned long) (uintptr_t) low, 4 * MiB_, (unsigned long) (uintptr_t) high, 2 * MiB_, 4 * MiB_);
        ck_assert_int_eq(send_with_fds(conn, json, (size_t) len, &uffd, 1, 0), len);
        ck_assert_msg(memcmp(low, data, 4 * MiB_) == 0, "region 0 as gmemd served it differs from the memory file");
        for (unsigned i = 0; i < 2 * MiB_; i += 4096)
                ck_assert_msg(high[i] == 0 && high[i + 4095] == 0, "region 1 (a hole of the file) is not zero");
        close(conn); /* the VM exits: its page server ends, well */
        ck_assert_msg(event_seen(w, done_ok, got, sizeof(got)), "no job-finished event for the VM's page server");
        close(uffd);

        /* nobody connects: the job ends with ETIMEDOUT, told to its requester */
        c = connect_daemon();
        unlink(sa.sun_path);
        l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ck_assert_int_eq(bind(l, (struct sockaddr *) &sa, sizeof(sa)), 0);
        ck_assert_int_eq(listen(l, 1), 0);
        OK(gmem_client_serve_firecracker(c, "fc-late", l, src, GMEM_PAGE_SERVER_RAW, 300, &job));
        ck_assert_msg(event_seen(c, timed_out, got, sizeof(got)), "no ETIMEDOUT for a VM that never connected");
        close(l);
        gmem_client_free(c);
out:
        munmap(low, 4 * MiB_);
        munmap(high, 2 * MiB_);
        unlink(sa.sun_path);
        rmdir(dir);
        free(data);
        close(src);
        gmem_client_free(w);
}
END_TEST

/* In a child as uid/gid 65534: info on name gives 0 or -errno, reported as the exit status. */
/* info on the region as uid/gid 65534 with n_groups supplementary groups 70000, 70001, ... */
static int info_as_nobody_in(const char *name, unsigned n_groups) {
        pid_t pid = fork();
        int status;

        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                struct gmem_client *c = NULL;
                gid_t groups[512];
                char *s = NULL;
                int k;
                for (unsigned i = 0; i < n_groups && i < ELEMENTSOF(groups); i++)
                        groups[i] = 70000 + i;
                if (setgroups(MIN(n_groups, ELEMENTSOF(groups)), groups) < 0 || setgid(65534) < 0 || setuid(65534) < 0)
                        _exit(200);
                k = gmem_client_connect(daemon_sock, &c);
                if (k < 0)
                        _exit(201);
                k = gmem_client_info(c, name, &s);
                _exit(k < 0 ? -k : 0);
        }
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert(WIFEXITED(status));
        ck_assert_msg(WEXITSTATUS(status) < 200, "the child as nobody could not %s",
                      WEXITSTATUS(status) == 200 ? "change uid" : "connect");
        return -WEXITSTATUS(status);
}

static int info_as_nobody(const char *name) {
        return info_as_nobody_in(name, 0);
}

START_TEST(test_grant_revoke) {
        struct gmem_client *c;
        const cJSON *g;
        char *s = NULL;
        cJSON *r;

        REQUIRE_DAEMON();
        c = connect_daemon();
        OK(gmem_client_create(c, "g", GMEM_BACKEND_MEMFD, 1 * MiB_, NULL));
        OK(gmem_client_grant_uid(c, "g", 1234));
        OK(gmem_client_grant_gid(c, "g", 4321));
        OK(gmem_client_info(c, "g", &s));
        r = parse(s);
        free(s);
        g = cJSON_GetObjectItemCaseSensitive(r, "grants");
        ck_assert(jarray_has(cJSON_GetObjectItemCaseSensitive(g, "uids"), 1234));
        ck_assert(jarray_has(cJSON_GetObjectItemCaseSensitive(g, "gids"), 4321));
        cJSON_Delete(r);

        OK(gmem_client_revoke_uid(c, "g", 1234));
        OK(gmem_client_revoke_gid(c, "g", 4321));
        OK(gmem_client_info(c, "g", &s));
        r = parse(s);
        free(s);
        g = cJSON_GetObjectItemCaseSensitive(r, "grants");
        ck_assert(!jarray_has(cJSON_GetObjectItemCaseSensitive(g, "uids"), 1234));
        ck_assert(!jarray_has(cJSON_GetObjectItemCaseSensitive(g, "gids"), 4321));
        cJSON_Delete(r);

        /* what a grant is for: another uid may use the region only while it holds one */
        if (geteuid() == 0) {
                ck_assert_int_eq(info_as_nobody("g"), -EACCES);
                OK(gmem_client_grant_uid(c, "g", 65534));
                ck_assert_int_eq(info_as_nobody("g"), 0);
                OK(gmem_client_revoke_uid(c, "g", 65534));
                ck_assert_int_eq(info_as_nobody("g"), -EACCES);
                OK(gmem_client_grant_gid(c, "g", 65534));
                ck_assert_int_eq(info_as_nobody("g"), 0);
                OK(gmem_client_revoke_gid(c, "g", 65534));
                /* a grant to a supplementary group counts however many groups the caller is in:
                 * here the 300th of 300 (the kernel's list does not fit a small buffer) */
                OK(gmem_client_grant_gid(c, "g", 70000 + 299));
                ck_assert_int_eq(info_as_nobody_in("g", 299), -EACCES);
                ck_assert_int_eq(info_as_nobody_in("g", 300), 0);
        }
        gmem_client_free(c);
        if (geteuid() != 0)
                SKIP_TEST("grants checked from another uid need root (the grant bookkeeping itself passed)");
}
END_TEST

START_TEST(test_release) {
        struct gmem_client *c;
        char *s = (char *) SENTINEL_PTR;

        REQUIRE_DAEMON();
        c = connect_daemon();
        OK(gmem_client_create(c, "r", GMEM_BACKEND_MEMFD, 1 * MiB_, NULL));
        OK(gmem_client_release(c, "r"));
        EXPECT_FAIL(gmem_client_info(c, "r", &s), ENOENT, "'r'");
        ck_assert_ptr_eq(s, SENTINEL_PTR);
        EXPECT_FAIL(gmem_client_release(c, "r"), ENOENT, "'r'");
        /* the name is free again */
        OK(gmem_client_create(c, "r", GMEM_BACKEND_MEMFD, 2 * MiB_, NULL));
        gmem_client_free(c);
}
END_TEST

START_TEST(test_offsets_near_2_53) {
        /* Offsets travel as JSON numbers, exact below 2^53: the client must send the digits, not a
         * double printed to 15 places (2^53 - 1 would arrive as 2^53 - 2). A memfd takes a file that
         * large, so the dump lands exactly where it was asked to. */
        const uint64_t at = (UINT64_C(1) << 53) - 1, len = 64 * 1024;
        struct gmem_client *c;
        uint8_t *data = malloc(len), *back = malloc(len);
        struct stat st;
        int src, dst;

        REQUIRE_DAEMON();
        c = connect_daemon();
        OK(gmem_client_create(c, "far", GMEM_BACKEND_MEMFD, len, NULL));
        src = gmem_test_random_file(len, 53, NULL);
        ck_assert_int_eq(pread(src, data, len, 0), (ssize_t) len);
        OK(gmem_client_populate_fd(c, "far", 0, src, 0, len));
        dst = memfd_create("far", MFD_CLOEXEC);
        ck_assert_int_ge(dst, 0);
        ck_assert_int_eq(gmem_client_dump_fd(c, "far", 0, len, dst, at), (int64_t) len);
        ck_assert_int_eq(fstat(dst, &st), 0);
        ck_assert_uint_eq((uint64_t) st.st_size, at + len);
        ck_assert_int_eq(pread(dst, back, len, (off_t) at), (ssize_t) len);
        ck_assert_mem_eq(back, data, len);
        OK(gmem_client_release(c, "far"));
        gmem_client_free(c);
        close(src);
        close(dst);
        free(data);
        free(back);
}
END_TEST

START_TEST(test_length_to_the_end) {
        /* GMEM_LENGTH_TO_END is passed through as "length absent": gmemd decides where the end is */
        const uint64_t size = 256 * 1024, off = 64 * 1024;
        struct gmem_client *c;
        int src, dst;

        REQUIRE_DAEMON();
        c = connect_daemon();
        OK(gmem_client_create(c, "end", GMEM_BACKEND_MEMFD, size, NULL));
        src = gmem_test_random_file(size - off, 7, NULL);
        OK(gmem_client_populate_fd(c, "end", off, src, 0, GMEM_LENGTH_TO_END)); /* all of the source */
        OK(gmem_client_prefault(c, "end", 0, GMEM_LENGTH_TO_END));
        dst = memfd_create("end", MFD_CLOEXEC);
        ck_assert_int_ge(dst, 0);
        ck_assert_int_eq(gmem_client_dump_fd(c, "end", off, GMEM_LENGTH_TO_END, dst, 0), (int64_t) (size - off));
        {
                void *a = gmem_test_read_fd(src, 0, size - off), *b = gmem_test_read_fd(dst, 0, size - off);
                ck_assert_mem_eq(a, b, size - off);
                free(a);
                free(b);
        }
        EXPECT_FAIL(gmem_client_prefault(c, "end", size + 4096, GMEM_LENGTH_TO_END), ERANGE, "beyond");
        OK(gmem_client_release(c, "end"));
        gmem_client_free(c);
        close(src);
        close(dst);
}
END_TEST

START_TEST(test_errors) {
        struct gmem_client *c, *c2 = (struct gmem_client *) SENTINEL_PTR;
        char *s = (char *) SENTINEL_PTR, path[128];
        int src;

        REQUIRE_DAEMON();
        c = connect_daemon();

        /* the daemon's errno and its own words */
        EXPECT_FAIL(gmem_client_info(c, "missing", &s), ENOENT, "missing");
        ck_assert_ptr_eq(s, SENTINEL_PTR);
        ck_assert_msg(strstr(gmem_last_error(), strerror(ENOENT)), "'%s' does not end with the errno's words",
                      gmem_last_error());

        OK(gmem_client_create(c, "e", GMEM_BACKEND_MEMFD, 1 * MiB_, NULL));
        EXPECT_FAIL(gmem_client_create(c, "e", GMEM_BACKEND_MEMFD, 1 * MiB_, NULL), EEXIST, "'e'");
        src = gmem_test_random_file(8192, 9, NULL);
        EXPECT_FAIL(gmem_client_populate_fd(c, "e", 0, src, 0, 16384), ENODATA, "");
        EXPECT_FAIL(gmem_client_populate_fd(c, "e", 1 * MiB_ - 4096, src, 0, 8192), ERANGE, "");
        EXPECT_FAIL(gmem_client_punch(c, "e", 1, 4096), EINVAL, "");

        /* a pipe is no memory */
        int p[2];
        struct gmem_region *r = NULL;
        ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
        /* register through a region is impossible for a pipe (adopt refuses); the daemon's own refusal is
         * reached with a memfd region whose fd was swapped for the pipe's */
        OK(gmem_region_new_memfd(GMEM_BACKEND_MEMFD, 1 * MiB_, &r));
        int saved = dup(gmem_region_fd(r));
        ck_assert_int_ge(dup3(p[0], gmem_region_fd(r), O_CLOEXEC), 0);
        EXPECT_FAIL(gmem_client_register(c, "pipe", r), EBADFD, "");
        ck_assert_int_ge(dup3(saved, gmem_region_fd(r), O_CLOEXEC), 0);
        close(saved);
        OK(gmem_client_register(c, "mine", r));
        gmem_region_free(r);
        close(p[0]);
        close(p[1]);

        /* no daemon there */
        snprintf(path, sizeof(path), "%s/none.sock", daemon_dir);
        EXPECT_FAIL(gmem_client_connect(path, &c2), ENOENT, "connect to gmemd");
        ck_assert_ptr_eq(c2, SENTINEL_PTR);

        close(src);
        gmem_client_free(c);
}
END_TEST

/* gmem_client_name_fd(): gmemd's messages name the caller's file, not gmemd's fd number */
START_TEST(test_fd_names) {
        struct gmem_client *c;
        char longname[300];
        int src;

        REQUIRE_DAEMON();
        c = connect_daemon();
        src = gmem_test_readonly_file(8192, 9); /* a dump into it fails in its job */
        EXPECT_FAIL(gmem_client_name_fd(NULL, src, "x"), EINVAL, "NULL");
        EXPECT_FAIL(gmem_client_name_fd(c, -1, "x"), EINVAL, "invalid fd");
        EXPECT_FAIL(gmem_client_name_fd(c, src, ""), EINVAL, "1 to 255 bytes");
        EXPECT_FAIL(gmem_client_name_fd(c, src, "a\tb"), EINVAL, "control character");
        memset(longname, 'n', 256);
        longname[256] = 0;
        EXPECT_FAIL(gmem_client_name_fd(c, src, longname), EINVAL, "1 to 255 bytes");
        /* 16 names at most; naming one anew or forgetting one makes no new entry */
        for (int fd = 1000; fd < 1016; fd++)
                OK(gmem_client_name_fd(c, fd, "other"));
        EXPECT_FAIL(gmem_client_name_fd(c, src, "guest.img"), ENOSPC, "16 fds");
        OK(gmem_client_name_fd(c, 1000, "again"));
        OK(gmem_client_name_fd(c, 1000, NULL));
        OK(gmem_client_name_fd(c, 1000, NULL)); /* forgetting a name never given is no error */
        OK(gmem_client_name_fd(c, src, "guest.img"));

        OK(gmem_client_create(c, "named", GMEM_BACKEND_MEMFD, 1 * MiB_, NULL));
        /* a job's failure (a dump into a file open only for reading) and a refusal at once (no snapshot) */
        EXPECT_FAIL(gmem_client_dump_fd(c, "named", 0, 4096, src, 0), EBADF, "pwrite 'guest.img' at 0");
        ck_assert_msg(!strstr(gmem_last_error(), "fd "), "gmemd's fd number in '%s'", gmem_last_error());
        EXPECT_FAIL(gmem_client_restore_fd(c, "named2", src, NULL), EBADMSG, "snapshot 'guest.img'");
        /* forgotten: gmemd's own words again */
        OK(gmem_client_name_fd(c, src, NULL));
        EXPECT_FAIL(gmem_client_dump_fd(c, "named", 0, 4096, src, 0), EBADF, "pwrite fd ");
        OK(gmem_client_release(c, "named"));
        close(src);
        gmem_client_free(c);
}
END_TEST

/* Take events until one is `event` for `region`, skipping others; false on timeout. */
static bool wait_event(struct gmem_client *c, const char *event, const char *region) {
        for (;;) {
                char *s = NULL;
                int k = gmem_client_next_event(c, 3000, &s);
                if (k == -ETIME)
                        return false;
                ck_assert_msg(k == 0, "next_event: %s", gmem_last_error());
                cJSON *e = parse(s);
                bool hit = strcmp(jstr(e, "event"), event) == 0 &&
                           strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(e, "region")) ?: "", region) == 0;
                cJSON_Delete(e);
                free(s);
                if (hit)
                        return true;
        }
}

START_TEST(test_watch) {
        struct gmem_client *w, *c;
        char *s = (char *) SENTINEL_PTR;
        int src;

        REQUIRE_DAEMON();
        w = connect_daemon();
        c = connect_daemon();
        EXPECT_FAIL(gmem_client_next_event(w, 50, &s), ETIME, "");
        ck_assert_ptr_eq(s, SENTINEL_PTR);
        OK(gmem_client_watch(w));

        OK(gmem_client_create(c, "w1", GMEM_BACKEND_MEMFD, 4 * MiB_, NULL));
        src = gmem_test_random_file(4 * MiB_, 10, NULL);
        OK(gmem_client_populate_fd(c, "w1", 0, src, 0, 4 * MiB_));
        OK(gmem_client_release(c, "w1"));

        /* a call on the watching connection meanwhile: the events are kept for next_event */
        OK(gmem_client_list(w, &s));
        free(s);
        ck_assert_msg(wait_event(w, "region-added", "w1"), "no region-added event for w1");
        ck_assert_msg(wait_event(w, "job-finished", "w1"), "no job-finished event for w1");
        ck_assert_msg(wait_event(w, "region-removed", "w1"), "no region-removed event for w1");
        EXPECT_FAIL(gmem_client_next_event(w, 100, &s), ETIME, "");

        close(src);
        gmem_client_free(c);
        gmem_client_free(w);
}
END_TEST

/* ---------------------------------------------------------------------------------------------
 * A scripted fake server: the client's side of what the real daemon rarely or never does
 */

#define FAKE_CHECK(cond) do { \
                if (!(cond)) { \
                        fprintf(stderr, "fake server: %s:%d: %s\n", __FILE__, __LINE__, #cond); \
                        _exit(3); \
                } \
        } while (0)

static char fake_dir[64], fake_sock[sizeof(((struct sockaddr_un *) 0)->sun_path)];

/* One message from the client; *ret_fd gets an fd that came with it (or -1). */
static cJSON *fake_recv(int conn, int *ret_fd) {
        union {
                struct cmsghdr h;
                char buf[CMSG_SPACE(sizeof(int) * 4)];
        } control;
        static char buf[70000];
        struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) - 1 };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
                             .msg_controllen = sizeof(control.buf) };
        ssize_t n = recvmsg(conn, &mh, MSG_CMSG_CLOEXEC);
        int fd = -1;

        if (n == 0)
                return NULL;
        FAKE_CHECK(n > 0);
        for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm))
                if (cm->cmsg_type == SCM_RIGHTS)
                        memcpy(&fd, CMSG_DATA(cm), sizeof(int));
        buf[n] = 0;
        if (ret_fd)
                *ret_fd = fd;
        else if (fd >= 0)
                close(fd);
        cJSON *j = cJSON_Parse(buf);
        FAKE_CHECK(j);
        return j;
}

static void fake_send(int conn, int fd, const char *fmt, ...) _printf_(3, 4);
static void fake_send(int conn, int fd, const char *fmt, ...) {
        char *text;
        va_list ap;

        va_start(ap, fmt);
        FAKE_CHECK(vasprintf(&text, fmt, ap) >= 0);
        va_end(ap);
        FAKE_CHECK(send_with_fds(conn, text, strlen(text), &fd, fd >= 0 ? 1 : 0, MSG_NOSIGNAL) == (ssize_t) strlen(text));
        free(text);
}

static uint64_t fake_id(const cJSON *m) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(m, "id");
        FAKE_CHECK(cJSON_IsNumber(id));
        return (uint64_t) id->valuedouble;
}

static const char *fake_op(const cJSON *m) {
        const char *op = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(m, "op"));
        FAKE_CHECK(op);
        return op;
}

/* Expect a request for op; returns it (cJSON_Delete() it). */
static cJSON *fake_expect(int conn, const char *op, int *ret_fd) {
        cJSON *m = fake_recv(conn, ret_fd);
        FAKE_CHECK(m);
        if (strcmp(fake_op(m), op) != 0) {
                /* tell the client what went wrong: its call fails with this message */
                fake_send(conn, -1, "{\"id\":%" PRIu64 ",\"ok\":false,\"error\":{\"code\":\"EBADMSG\","
                          "\"message\":\"fake server: expected op %s, got %s\"}}", fake_id(m), op, fake_op(m));
                _exit(4);
        }
        return m;
}

static void fake_hello(int conn) {
        cJSON *m = fake_expect(conn, "hello", NULL);
        FAKE_CHECK(jnum(m, "version") == 1);
        FAKE_CHECK(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(m, "client")));
        fake_send(conn, -1, "{\"id\":%" PRIu64 ",\"ok\":true,\"version\":1,\"server\":\"fake\"}", fake_id(m));
        cJSON_Delete(m);
}

/* Listen, fork the script, return its pid; the client connects to fake_sock. */
static pid_t fake_start(void (*script)(int conn)) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int l;
        pid_t pid;

        snprintf(fake_dir, sizeof(fake_dir), "/tmp/gmem-test-fake.XXXXXX");
        ck_assert_ptr_nonnull(mkdtemp(fake_dir));
        snprintf(fake_sock, sizeof(fake_sock), "%s/fake.sock", fake_dir);
        memcpy(sa.sun_path, fake_sock, sizeof(fake_sock));
        l = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        ck_assert_int_ge(l, 0);
        ck_assert_int_eq(bind(l, (struct sockaddr *) &sa, sizeof(sa)), 0);
        ck_assert_int_eq(listen(l, 4), 0);
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                int conn;
                alarm(60);
                conn = accept4(l, NULL, NULL, SOCK_CLOEXEC);
                FAKE_CHECK(conn >= 0);
                script(conn);
                _exit(0);
        }
        close(l);
        return pid;
}

static void fake_finish(pid_t pid) {
        int status;
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        unlink(fake_sock);
        rmdir(fake_dir);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "fake server failed (status 0x%x)", status);
}

/* Every refusal happens before a byte is sent: after hello, the first request the server sees is
 * the list that follows them all. */
static void script_nothing_before_list(int conn) {
        fake_hello(conn);
        cJSON *m = fake_expect(conn, "list", NULL);
        fake_send(conn, -1, "{\"id\":%" PRIu64 ",\"ok\":true,\"regions\":[]}", fake_id(m));
        cJSON_Delete(m);
        FAKE_CHECK(fake_recv(conn, NULL) == NULL); /* then the client hangs up */
}

START_TEST(test_bad_arguments) {
        struct gmem_client *c = (struct gmem_client *) SENTINEL_PTR;
        struct gmem_region *r = (struct gmem_region *) SENTINEL_PTR, *mem = NULL;
        char *s = (char *) SENTINEL_PTR, long_name[80], long_path[200];
        unsigned fds;
        pid_t pid;
        int fd;

        /* connect */
        EXPECT_FAIL(gmem_client_connect("/nonexistent/gmemd.sock", NULL), EINVAL, "connect");
        memset(long_path, 'x', sizeof(long_path) - 1);
        long_path[0] = '/';
        long_path[sizeof(long_path) - 1] = 0;
        EXPECT_FAIL(gmem_client_connect(long_path, &c), ENAMETOOLONG, "socket path");
        EXPECT_FAIL(gmem_client_connect("", &c), EINVAL, "socket path");
        ck_assert_ptr_eq(c, SENTINEL_PTR);

        /* the default path */
        setenv("GMEMD_SOCKET", "/somewhere/else.sock", 1);
        OK(gmem_client_default_socket(&s));
        ck_assert_str_eq(s, "/somewhere/else.sock");
        free(s);
        unsetenv("GMEMD_SOCKET");
        /* the system gmemd for every user (group gmem may connect), XDG_RUNTIME_DIR or not */
        setenv("XDG_RUNTIME_DIR", "/run/user/4242", 1);
        OK(gmem_client_default_socket(&s));
        ck_assert_str_eq(s, "/run/gmemd/gmemd.sock");
        free(s);
        /* a user's own gmemd only when asked for */
        OK(gmem_client_user_socket(&s));
        ck_assert_str_eq(s, "/run/user/4242/gmemd/gmemd.sock");
        free(s);
        setenv("XDG_RUNTIME_DIR", "relative", 1);
        s = (char *) SENTINEL_PTR;
        EXPECT_FAIL(gmem_client_user_socket(&s), EINVAL, "not an absolute path");
        unsetenv("XDG_RUNTIME_DIR");
        EXPECT_FAIL(gmem_client_user_socket(&s), ENXIO, "XDG_RUNTIME_DIR");
        EXPECT_FAIL(gmem_client_user_socket(NULL), EINVAL, "NULL");
        ck_assert_ptr_eq(s, SENTINEL_PTR);
        OK(gmem_client_default_socket(&s));
        ck_assert_str_eq(s, "/run/gmemd/gmemd.sock");
        free(s);
        s = (char *) SENTINEL_PTR;

        /* NULL client */
        EXPECT_FAIL(gmem_client_info(NULL, "x", &s), EINVAL, "NULL client");
        EXPECT_FAIL(gmem_client_list(NULL, &s), EINVAL, "list");
        EXPECT_FAIL(gmem_client_release(NULL, "x"), EINVAL, "NULL client");
        EXPECT_FAIL(gmem_client_next_event(NULL, 0, &s), EINVAL, "NULL");
        ck_assert_ptr_null(gmem_client_free(NULL));
        gmem_client_set_progress(NULL, NULL, NULL);

        pid = fake_start(script_nothing_before_list);
        OK(gmem_client_connect(fake_sock, &c));
        fds = gmem_test_count_fds(getpid());
        OK(gmem_region_new_memfd(GMEM_BACKEND_MEMFD, 1 * MiB_, &mem));
        fd = gmem_test_temp_file();

        memset(long_name, 'n', sizeof(long_name) - 1);
        long_name[sizeof(long_name) - 1] = 0;
        EXPECT_FAIL(gmem_client_info(c, NULL, &s), EINVAL, "NULL region name");
        EXPECT_FAIL(gmem_client_info(c, "", &s), EINVAL, "invalid region name");
        EXPECT_FAIL(gmem_client_info(c, "a b", &s), EINVAL, "invalid region name 'a b'");
        EXPECT_FAIL(gmem_client_info(c, "a/b", &s), EINVAL, "invalid region name");
        EXPECT_FAIL(gmem_client_info(c, "line\nbreak", &s), EINVAL, "line?break");
        EXPECT_FAIL(gmem_client_info(c, long_name, &s), EINVAL, "invalid region name");
        long_name[64] = 0; /* 64 is fine: refused below for another reason, proving the name passed */
        EXPECT_FAIL(gmem_client_info(c, long_name, NULL), EINVAL, "NULL result");
        EXPECT_FAIL(gmem_client_list(c, NULL), EINVAL, "list");
        EXPECT_FAIL(gmem_client_caps(c, NULL), EINVAL, "caps");
        EXPECT_FAIL(gmem_client_open(c, "x", NULL), EINVAL, "open 'x'");
        EXPECT_FAIL(gmem_client_create(c, "x", GMEM_BACKEND_MEMFD, 0, NULL), EINVAL, "size 0");
        EXPECT_FAIL(gmem_client_create(c, "x", GMEM_BACKEND_GUEST_MEMFD, 1 * MiB_, NULL), EINVAL, "register it");
        EXPECT_FAIL(gmem_client_create(c, "x", (enum gmem_backend) 42, 1 * MiB_, NULL), EINVAL, "invalid backend");
        EXPECT_FAIL(gmem_client_create(c, "x", GMEM_BACKEND_MEMFD, 1 * MiB_,
                                       &(struct gmem_create_opts) { .page_size = 2 * MiB_ }), EINVAL, "hugetlb");
        EXPECT_FAIL(gmem_client_create(c, "x", GMEM_BACKEND_MEMFD, 1 * MiB_,
                                       &(struct gmem_create_opts) { .policy = (enum gmem_policy) 9 }), EINVAL, "policy");
        EXPECT_FAIL(gmem_client_create(c, "x", GMEM_BACKEND_MEMFD, UINT64_C(1) << 60, NULL), ERANGE, "size");
        EXPECT_FAIL(gmem_client_register(c, "x", NULL), EINVAL, "NULL region");
        EXPECT_FAIL(gmem_client_register_policy(c, "x", mem, (enum gmem_policy) 7), EINVAL, "policy");
        EXPECT_FAIL(gmem_client_populate_fd(c, "x", 0, -1, 0, 4096), EINVAL, "source fd");
        EXPECT_FAIL(gmem_client_populate_fd(c, "x", 0, 9999, 0, 4096), EBADF, "source fd 9999");
        EXPECT_FAIL(gmem_client_populate_fd(c, "x", 0, fd, 0, 0), EINVAL, "length 0");
        EXPECT_FAIL(gmem_client_populate_fd(c, "x", UINT64_MAX, fd, 0, 2), ERANGE, "overflows");
        EXPECT_FAIL(gmem_client_populate_fd(c, "x", 0, fd, UINT64_MAX, 2), ERANGE, "overflows");
        EXPECT_FAIL(gmem_client_prefault(c, "x", 0, 0), EINVAL, "length 0");
        EXPECT_FAIL(gmem_client_punch(c, "x", 0, 0), EINVAL, "length 0");
        EXPECT_FAIL(gmem_client_dump_fd(c, "x", 0, 4096, -1, 0), EINVAL, "destination fd");
        EXPECT_FAIL(gmem_client_dump_fd(c, "x", 0, 0, fd, 0), EINVAL, "length 0");
        EXPECT_FAIL(gmem_client_grant_uid(c, "x", UINT32_MAX), EINVAL, "uid");
        EXPECT_FAIL(gmem_client_revoke_gid(c, "x", UINT32_MAX), EINVAL, "gid");
        EXPECT_FAIL(gmem_client_cancel(c, UINT64_MAX), ERANGE, "job");
        EXPECT_FAIL(gmem_client_next_event(c, 0, NULL), EINVAL, "NULL");
        ck_assert_ptr_eq(s, SENTINEL_PTR);
        ck_assert_ptr_eq(r, SENTINEL_PTR);
        ck_assert_uint_eq(gmem_test_count_fds(getpid()), fds + 2); /* the memfd and the temp file, nothing else */

        /* the fake server's first request after hello must be this one */
        OK(gmem_client_list(c, &s));
        ck_assert_str_eq(s, "[]");
        free(s);
        gmem_client_free(c);
        gmem_region_free(mem);
        close(fd);
        fake_finish(pid);
}
END_TEST

/* Between a request and its reply: an event before hello's reply, a progress event for another call,
 * a stray reply and an event each carrying an fd, then a reply bigger than 64 KiB. Then error
 * replies with an unknown code, without a message and without an id, and a hang-up mid-call. */
static void script_transport(int conn) {
        int memfd = memfd_create("stray", MFD_CLOEXEC);
        cJSON *m;
        char *pad;

        FAKE_CHECK(memfd >= 0);
        m = fake_expect(conn, "hello", NULL);
        fake_send(conn, -1, "{\"event\":\"region-added\",\"region\":\"early\"}");
        fake_send(conn, -1, "{\"id\":%" PRIu64 ",\"ok\":true,\"version\":1}", fake_id(m));
        cJSON_Delete(m);

        m = fake_expect(conn, "info", NULL);
        FAKE_CHECK(strcmp(jstr(m, "name"), "x") == 0);
        fake_send(conn, -1, "{\"event\":\"progress\",\"id\":%" PRIu64 ",\"job\":1,\"done\":1,\"total\":2}", fake_id(m) + 100);
        fake_send(conn, memfd, "{\"id\":%" PRIu64 ",\"ok\":true}", fake_id(m) + 1000);
        fake_send(conn, memfd, "{\"event\":\"region-changed\",\"region\":\"x\",\"state\":\"populating\"}");
        pad = malloc(100001);
        FAKE_CHECK(pad);
        memset(pad, 'p', 100000);
        pad[100000] = 0;
        fake_send(conn, -1, "{\"id\":%" PRIu64 ",\"ok\":true,\"region\":{\"name\":\"x\",\"size\":%" PRIu64 ",\"pad\":\"%s\"}}",
                  fake_id(m), UINT64_C(1795248342202110), pad);
        free(pad);
        cJSON_Delete(m);

        m = fake_expect(conn, "list", NULL);
        fake_send(conn, -1, "{\"id\":%" PRIu64 ",\"ok\":false,\"error\":{\"code\":\"EWHATEVER\",\"message\":\"strange things\"}}",
                  fake_id(m));
        cJSON_Delete(m);

        m = fake_expect(conn, "caps", NULL);
        fake_send(conn, -1, "{\"id\":%" PRIu64 ",\"ok\":false,\"error\":{\"code\":\"EACCES\"}}", fake_id(m));
        cJSON_Delete(m);

        /* open answered without its fd */
        m = fake_expect(conn, "open", NULL);
        fake_send(conn, -1, "{\"id\":%" PRIu64 ",\"ok\":true,\"region\":{\"backend\":\"memfd\"}}", fake_id(m));
        cJSON_Delete(m);

        /* a refusal of a message whose id the server could not read */
        m = fake_expect(conn, "punch", NULL);
        fake_send(conn, -1, "{\"id\":null,\"ok\":false,\"error\":{\"code\":\"EMSGSIZE\",\"message\":\"message larger "
                  "than 65536 bytes\"}}");
        cJSON_Delete(m);

        m = fake_expect(conn, "release", NULL);
        cJSON_Delete(m);
        close(conn); /* gone mid-call */
        close(memfd);
}

START_TEST(test_transport) {
        struct gmem_client *c = NULL;
        struct gmem_region *r = (struct gmem_region *) SENTINEL_PTR;
        char *s = NULL;
        unsigned fds = gmem_test_count_fds(getpid());
        cJSON *j;
        pid_t pid;

        pid = fake_start(script_transport);
        OK(gmem_client_connect(fake_sock, &c));
        OK(gmem_client_info(c, "x", &s));
        ck_assert_uint_gt(strlen(s), 100000);
        /* integers come out as integers, not 1.79524834220211e+15 */
        ck_assert_msg(strstr(s, "\"size\":1795248342202110"), "reprinted reply: %.80s", s);
        j = parse(s);
        ck_assert_str_eq(jstr(j, "name"), "x");
        cJSON_Delete(j);
        free(s);
        ck_assert_uint_eq(gmem_test_count_fds(getpid()), fds + 1); /* the socket; both stray fds closed */

        /* the events that arrived meanwhile, in order; the foreign progress event is not one */
        OK(gmem_client_next_event(c, 0, &s));
        j = parse(s);
        ck_assert_str_eq(jstr(j, "event"), "region-added");
        ck_assert_str_eq(jstr(j, "region"), "early");
        cJSON_Delete(j);
        free(s);
        OK(gmem_client_next_event(c, 0, &s));
        j = parse(s);
        ck_assert_str_eq(jstr(j, "event"), "region-changed");
        cJSON_Delete(j);
        free(s);
        s = (char *) SENTINEL_PTR;

        EXPECT_FAIL(gmem_client_list(c, &s), EIO, "strange things");
        EXPECT_FAIL(gmem_client_caps(c, &s), EACCES, "caps");
        EXPECT_FAIL(gmem_client_open(c, "x", &r), EPROTO, "file descriptor");
        ck_assert_ptr_eq(r, SENTINEL_PTR);
        EXPECT_FAIL(gmem_client_punch(c, "x", 0, 4096), EMSGSIZE, "message larger than 65536 bytes");
        EXPECT_FAIL(gmem_client_release(c, "x"), ECONNRESET, "gmemd closed the connection");
        EXPECT_FAIL(gmem_client_release(c, "x"), ECONNRESET, "");
        ck_assert_ptr_eq(s, SENTINEL_PTR);
        EXPECT_FAIL(gmem_client_next_event(c, 10, &s), ECONNRESET, "gmemd closed the connection");
        gmem_client_free(c);
        ck_assert_uint_eq(gmem_test_count_fds(getpid()), fds);
        fake_finish(pid);
}
END_TEST

/* Progress asks to cancel: the cancel request names the job; the job's ECANCELED reply comes
 * before the cancel's own reply, which the client still takes before returning. */
static void script_cancel(int conn) {
        cJSON *m, *cancel;
        uint64_t id;
        int fd = -1;

        fake_hello(conn);
        m = fake_expect(conn, "populate", &fd);
        FAKE_CHECK(fd >= 0);
        close(fd);
        FAKE_CHECK(jnum(m, "offset") == 4096 && jnum(m, "src_offset") == 8192 && jnum(m, "length") == 65536);
        id = fake_id(m);
        cJSON_Delete(m);
        fake_send(conn, -1, "{\"event\":\"progress\",\"id\":%" PRIu64 ",\"job\":77,\"done\":10,\"total\":65536}", id);
        fake_send(conn, -1, "{\"event\":\"progress\",\"id\":%" PRIu64 ",\"job\":77,\"done\":20,\"total\":65536}", id);
        cancel = fake_expect(conn, "cancel", NULL);
        FAKE_CHECK(jnum(cancel, "job") == 77);
        FAKE_CHECK(fake_id(cancel) != id);
        fake_send(conn, -1, "{\"id\":%" PRIu64 ",\"ok\":false,\"error\":{\"code\":\"ECANCELED\",\"message\":\"job 77 cancelled\"}}",
                  id);
        fake_send(conn, -1, "{\"event\":\"progress\",\"id\":%" PRIu64 ",\"job\":77,\"done\":30,\"total\":65536}", id);
        fake_send(conn, -1, "{\"id\":%" PRIu64 ",\"ok\":true}", fake_id(cancel));
        cJSON_Delete(cancel);

        /* the next call sees only its own reply */
        m = fake_expect(conn, "dump", &fd);
        FAKE_CHECK(fd >= 0);
        close(fd);
        fake_send(conn, -1, "{\"id\":%" PRIu64 ",\"ok\":true,\"job\":78,\"bytes\":4096}", fake_id(m));
        cJSON_Delete(m);
        FAKE_CHECK(fake_recv(conn, NULL) == NULL);
}

START_TEST(test_cancel_protocol) {
        struct progress_log log = { .monotonic = true, .cancel_after = 2 };
        struct gmem_client *c = NULL;
        int fd = gmem_test_temp_file();
        pid_t pid;

        pid = fake_start(script_cancel);
        OK(gmem_client_connect(fake_sock, &c));
        gmem_client_set_progress(c, on_progress, &log);
        EXPECT_FAIL(gmem_client_populate_fd(c, "x", 4096, fd, 8192, 65536), ECANCELED, "job 77 cancelled");
        ck_assert_uint_eq(log.calls, 2);
        ck_assert_uint_eq(log.done, 20);
        ck_assert_uint_eq(log.total, 65536);
        ck_assert_int_eq(gmem_client_dump_fd(c, "x", 0, 4096, fd, 0), 4096);
        ck_assert_uint_eq(log.calls, 2);
        gmem_client_free(c);
        close(fd);
        fake_finish(pid);
}
END_TEST

static void script_version(int conn) {
        cJSON *m = fake_expect(conn, "hello", NULL);
        fake_send(conn, -1, "{\"id\":%" PRIu64 ",\"ok\":true,\"version\":2}", fake_id(m));
        cJSON_Delete(m);
        FAKE_CHECK(fake_recv(conn, NULL) == NULL);
}

static void script_hello_refused(int conn) {
        cJSON *m = fake_expect(conn, "hello", NULL);
        fake_send(conn, -1, "{\"id\":%" PRIu64 ",\"ok\":false,\"error\":{\"code\":\"EUSERS\",\"message\":\"too many clients: "
                  "Too many users\"}}", fake_id(m));
        cJSON_Delete(m);
        FAKE_CHECK(fake_recv(conn, NULL) == NULL);
}

START_TEST(test_hello) {
        struct gmem_client *c = (struct gmem_client *) SENTINEL_PTR;
        unsigned fds = gmem_test_count_fds(getpid());
        pid_t pid;

        pid = fake_start(script_version);
        EXPECT_FAIL(gmem_client_connect(fake_sock, &c), EPROTONOSUPPORT, "version 2");
        ck_assert_ptr_eq(c, SENTINEL_PTR);
        fake_finish(pid);

        pid = fake_start(script_hello_refused);
        EXPECT_FAIL(gmem_client_connect(fake_sock, &c), EUSERS, "too many clients: Too many users");
        ck_assert_msg(!strstr(gmem_last_error(), "Too many users: Too many users"), "errno words twice: %s",
                      gmem_last_error());
        ck_assert_ptr_eq(c, SENTINEL_PTR);
        fake_finish(pid);
        ck_assert_uint_eq(gmem_test_count_fds(getpid()), fds);
}
END_TEST

static Suite *client_suite(void) {
        Suite *s = suite_create("client");
        TCase *real = tcase_create("gmemd");
        TCase *fake = tcase_create("fake");

        tcase_add_checked_fixture(real, daemon_start, daemon_stop);
        tcase_set_timeout(real, 120);
        tcase_add_test(real, test_roundtrip_memfd);
        tcase_add_test(real, test_roundtrip_secret);
        tcase_add_test(real, test_roundtrip_hugetlb);
        tcase_add_test(real, test_vmm_flow);
        tcase_add_test(real, test_open);
        tcase_add_test(real, test_offsets_near_2_53);
        tcase_add_test(real, test_progress);
        tcase_add_test(real, test_cancel);
        tcase_add_test(real, test_list_info);
        tcase_add_test(real, test_typed_results);
        tcase_add_test(real, test_snapshot_restore);
        tcase_add_test(real, test_serve_lazy);
        tcase_add_test(real, test_firecracker);
        tcase_add_test(real, test_grant_revoke);
        tcase_add_test(real, test_release);
        tcase_add_test(real, test_length_to_the_end);
        tcase_add_test(real, test_errors);
        tcase_add_test(real, test_fd_names);
        tcase_add_test(real, test_watch);
        suite_add_tcase(s, real);

        tcase_add_test(fake, test_bad_arguments);
        tcase_add_test(fake, test_transport);
        tcase_add_test(fake, test_cancel_protocol);
        tcase_add_test(fake, test_hello);
        suite_add_tcase(s, fake);
        return s;
}

int main(void) {
        return gmem_test_main(client_suite());
}
