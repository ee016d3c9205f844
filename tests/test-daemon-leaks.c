/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * gmemd must not leak: its open-fd count (/proc/PID/fd) comes back to its baseline, and its RSS
 * stays near it, after many register/open/release cycles, connects and disconnects, clients
 * SIGKILLed in the middle of a populate, jobs that fail, and a client that floods it with opens
 * and never reads the fds sent back.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gmem-test.h"
#include "raw-client.h"

/* A round trip on s: everything s sent before has been handled. */
static void settle(int s) {
        cJSON_Delete(rc_list(s));
}

/* The daemon's fd count must come back to `want` within timeout_ms (closing a connection, ending
 * a job: the daemon sees those asynchronously). */
#define EXPECT_FDS(d, want, timeout_ms) do { \
                uint64_t _deadline = rc_now_ms() + (timeout_ms); \
                unsigned _n; \
                while ((_n = gmem_test_count_fds((d)->pid)) != (want) && rc_now_ms() < _deadline) \
                        rc_sleep_ms(20); \
                ck_assert_msg(_n == (want), "gmemd has %u fds open, %u expected", _n, (unsigned) (want)); \
        } while (0)

START_TEST(register_open_release_cycles) {
        struct gmem_test_daemon d;
        unsigned base;
        uint64_t rss0, rss1;
        int s;

        rc_daemon_start(&d, NULL);
        s = rc_session(d.socket);
        settle(s);
        base = gmem_test_count_fds(d.pid);
        rss0 = rc_vmrss_kib(d.pid);
        for (int i = 0; i < 1000; i++) {
                int mfd = memfd_create("cycle", MFD_CLOEXEC | MFD_ALLOW_SEALING), fd = -1;
                char page[64];

                ck_assert_int_ge(mfd, 0);
                ck_assert_int_eq(ftruncate(mfd, 65536), 0);
                snprintf(page, sizeof(page), "cycle %d", i);
                ck_assert_int_eq(pwrite(mfd, page, sizeof(page), 4096), (ssize_t) sizeof(page));
                RC_EXPECT_OK(rc_call(s, &mfd, 1, NULL, "{\"op\":\"register\",\"name\":\"cycle\"}"));
                close(mfd);
                RC_EXPECT_OK(rc_call(s, NULL, 0, &fd, "{\"op\":\"open\",\"name\":\"cycle\"}"));
                ck_assert_int_ge(fd, 0);
                if (i % 100 == 0) {
                        char back[64];
                        ck_assert_int_eq(pread(fd, back, sizeof(back), 4096), (ssize_t) sizeof(back));
                        ck_assert_mem_eq(back, page, sizeof(page));
                }
                close(fd);
                RC_EXPECT_OK(rc_call(s, NULL, 0, NULL, "{\"op\":\"release\",\"name\":\"cycle\"}"));
        }
        settle(s);
        ck_assert_uint_eq(gmem_test_count_fds(d.pid), base);
        rss1 = rc_vmrss_kib(d.pid);
        printf("register/open/release x1000: fds %u -> %u, VmRSS %" PRIu64 " -> %" PRIu64 " KiB\n", base,
               gmem_test_count_fds(d.pid), rss0, rss1);
        if (rc_is_sanitized(d.pid))
                printf("register/open/release x1000: gmemd runs under AddressSanitizer, its RSS is not checked\n");
        else
                ck_assert_msg(rss1 <= rss0 + 20 * 1024, "VmRSS grew from %" PRIu64 " to %" PRIu64 " KiB over 1000 cycles", rss0,
                              rss1);
        close(s);
        gmem_test_daemon_stop(&d);
}
END_TEST

START_TEST(connect_disconnect_cycles) {
        struct gmem_test_daemon d;
        unsigned base;
        int s;

        rc_daemon_start(&d, NULL);
        s = rc_session(d.socket);
        RC_EXPECT_OK(rc_call(s, NULL, 0, NULL, "{\"op\":\"create\",\"name\":\"r\",\"size\":65536}"));
        settle(s);
        base = gmem_test_count_fds(d.pid);
        for (int i = 0; i < 200; i++) {
                int c = rc_connect(d.socket), fd = -1;
                switch (i % 4) {
                case 0: /* nothing at all */
                        break;
                case 1:
                        rc_hello(c);
                        cJSON_Delete(rc_list(c));
                        break;
                case 2: /* opens the region, then goes without a word */
                        rc_hello(c);
                        RC_EXPECT_OK(rc_call(c, NULL, 0, &fd, "{\"op\":\"open\",\"name\":\"r\"}"));
                        close(fd);
                        break;
                case 3: /* a watcher, with requests in flight */
                        rc_hello(c);
                        RC_EXPECT_OK(rc_call(c, NULL, 0, NULL, "{\"op\":\"watch\"}"));
                        RC_SEND(c, "{\"op\":\"open\",\"id\":9,\"name\":\"r\"}", NULL, 0);
                        RC_SEND(c, "{\"op\":\"list\",\"id\":10}", NULL, 0);
                        break;
                }
                close(c);
        }
        settle(s);
        EXPECT_FDS(&d, base, 5000);
        close(s);
        gmem_test_daemon_stop(&d);
}
END_TEST

/* A child that connects, creates `name` (policy keep or connection), starts populating it from src
 * and writes one byte to `tell` at the first progress event; then it waits to be killed. */
static pid_t populating_child(const char *sock, const char *name, bool keep, int src, uint64_t size, int tell) {
        pid_t pid = fork();

        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                char buf[8192], req[256];
                (void) prctl(PR_SET_PDEATHSIG, SIGKILL);
                int s = rc_try_connect(sock);
                const char *hello = "{\"op\":\"hello\",\"id\":1,\"version\":1}";

                if (s < 0 || send(s, hello, strlen(hello), 0) < 0 || recv(s, buf, sizeof(buf), 0) <= 0)
                        _exit(1);
                snprintf(req, sizeof(req), "{\"op\":\"create\",\"id\":2,\"name\":\"%s\",\"size\":%" PRIu64 ",\"policy\":\"%s\"}", name,
                         size, keep ? "keep" : "connection");
                if (send(s, req, strlen(req), 0) < 0 || recv(s, buf, sizeof(buf), 0) <= 0 || !strstr(buf, "\"ok\":true"))
                        _exit(2);
                snprintf(req, sizeof(req), "{\"op\":\"populate\",\"id\":3,\"name\":\"%s\"}", name);
                if (rc_send_raw(s, req, strlen(req), &src, 1) < 0)
                        _exit(3);
                for (;;) {
                        ssize_t n = recv(s, buf, sizeof(buf) - 1, 0);
                        if (n <= 0)
                                _exit(4);
                        buf[n] = 0;
                        if (strstr(buf, "\"event\":\"progress\""))
                                break;
                        if (strstr(buf, "\"ok\""))
                                _exit(5);
                }
                (void) !write(tell, "p", 1);
                for (;;)
                        pause();
        }
        return pid;
}

START_TEST(clients_killed_mid_populate) {
        const uint64_t size = 64u << 20;
        struct gmem_test_daemon d;
        unsigned base, cancelled = 0;
        int s, src;

        rc_daemon_start(&d, NULL);
        s = rc_session(d.socket);
        settle(s);
        base = gmem_test_count_fds(d.pid);
        src = gmem_test_random_file(size, 20, NULL);

        /* 20 clients, 5 at a time (max_jobs is 16): each killed at its first progress event */
        for (int batch = 0; batch < 4; batch++) {
                pid_t pids[5];
                int p[5][2];

                for (int i = 0; i < 5; i++) {
                        char name[32];
                        int n = batch * 5 + i;
                        snprintf(name, sizeof(name), "leak%02d", n);
                        ck_assert_int_eq(pipe2(p[i], O_CLOEXEC), 0);
                        pids[i] = populating_child(d.socket, name, n % 2 == 0, src, size, p[i][1]);
                        close(p[i][1]);
                }
                /* kill each the moment it reports */
                for (int left = 5; left > 0;) {
                        struct pollfd pfd[5];
                        for (int i = 0; i < 5; i++)
                                pfd[i] = (struct pollfd) { .fd = pids[i] > 0 ? p[i][0] : -1, .events = POLLIN };
                        ck_assert_msg(poll(pfd, 5, RC_TIMEOUT_MS) > 0, "%d clients did not see their populate start", left);
                        for (int i = 0; i < 5; i++) {
                                char ch;
                                int status;
                                if (pids[i] <= 0 || !pfd[i].revents)
                                        continue;
                                ck_assert_msg(read(p[i][0], &ch, 1) == 1, "client %d died before its populate started", i);
                                ck_assert_int_eq(kill(pids[i], SIGKILL), 0);
                                ck_assert_int_eq(waitpid(pids[i], &status, 0), pids[i]);
                                ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "client %d exited with 0x%x",
                                              i, status);
                                close(p[i][0]);
                                pids[i] = 0;
                                left--;
                        }
                }
        }

        /* the kept regions stay; their jobs end (cancelled); connection-policy ones are gone */
        {
                uint64_t deadline = rc_now_ms() + 10000;
                for (;;) {
                        cJSON *regions = rc_list(s);
                        const cJSON *r;
                        int n = 0, busy = 0;
                        cJSON_ArrayForEach(r, regions) {
                                n++;
                                busy += cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(r, "jobs"));
                                ck_assert_str_ne(rc_str(r, "state"), "failed");
                        }
                        cJSON_Delete(regions);
                        if (!busy && n == 10)
                                break;
                        ck_assert_msg(rc_now_ms() < deadline, "after 10 s: %d regions (10 expected), %d jobs running", n,
                                      busy);
                        rc_sleep_ms(50);
                }
        }
        /* the 10 kept regions hold one fd each; the released ones, and every source fd, none */
        EXPECT_FDS(&d, base + 10, 10000);
        for (int n = 0; n < 20; n += 2)
                RC_EXPECT_OK(rc_call(s, NULL, 0, NULL, "{\"op\":\"release\",\"name\":\"leak%02d\"}", n));
        settle(s);
        EXPECT_FDS(&d, base, 10000);
        {
                FILE *f = fopen(d.log, "re");
                char line[4096];
                ck_assert_ptr_nonnull(f);
                while (fgets(line, sizeof(line), f))
                        if (strstr(line, "cancelled"))
                                cancelled++;
                fclose(f);
        }
        printf("clients_killed_mid_populate: %u of 20 populates were cancelled\n", cancelled);
        ck_assert_uint_ge(cancelled, 1);
        close(src);
        close(s);
        gmem_test_daemon_stop(&d);
}
END_TEST

START_TEST(failed_jobs_close_their_fds) {
        struct gmem_test_daemon d;
        unsigned base;
        int s, p[2], small, out;

        rc_daemon_start(&d, NULL);
        s = rc_session(d.socket);
        RC_EXPECT_OK(rc_call(s, NULL, 0, NULL, "{\"op\":\"create\",\"name\":\"r\",\"size\":65536}"));
        ck_assert_int_eq(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
        small = gmem_test_random_file(8192, 21, NULL);
        out = gmem_test_temp_file();
        settle(s);
        base = gmem_test_count_fds(d.pid);
        for (int i = 0; i < 100; i++) {
                RC_EXPECT_ERROR(rc_call(s, &p[0], 1, NULL, "{\"op\":\"populate\",\"name\":\"r\",\"length\":4096}"), "ESPIPE",
                                NULL);
                RC_EXPECT_ERROR(rc_call(s, &small, 1, NULL, "{\"op\":\"populate\",\"name\":\"r\",\"length\":65536}"), "ENODATA",
                                NULL);
                RC_EXPECT_ERROR(rc_call(s, &p[1], 1, NULL, "{\"op\":\"dump\",\"name\":\"r\"}"), "ESPIPE", NULL);
                RC_EXPECT_ERROR(rc_call(s, &small, 1, NULL, "{\"op\":\"populate\",\"name\":\"nope\"}"), "ENOENT", NULL);
                RC_EXPECT_OK(rc_call(s, &small, 1, NULL, "{\"op\":\"populate\",\"name\":\"r\"}"));
                RC_EXPECT_OK(rc_call(s, &out, 1, NULL, "{\"op\":\"dump\",\"name\":\"r\"}"));
        }
        settle(s);
        ck_assert_uint_eq(gmem_test_count_fds(d.pid), base);
        close(p[0]);
        close(p[1]);
        close(small);
        close(out);
        close(s);
        gmem_test_daemon_stop(&d);
}
END_TEST

START_TEST(released_under_running_jobs) {
        /* release while populates, a prefault and a dump run on the region: they are cancelled and
         * answered, and the region's fd and every job's fd go once they end */
        const uint64_t size = 64u << 20;
        struct gmem_test_daemon d;
        unsigned base;
        int s, src, out;

        rc_daemon_start(&d, NULL);
        s = rc_session(d.socket);
        src = gmem_test_temp_file();
        ck_assert_int_eq(ftruncate(src, (off_t) size), 0);
        out = gmem_test_temp_file();
        settle(s);
        base = gmem_test_count_fds(d.pid);
        for (int i = 0; i < 10; i++) {
                cJSON *r;
                RC_EXPECT_OK(rc_call(s, NULL, 0, NULL, "{\"op\":\"create\",\"name\":\"busy\",\"size\":%" PRIu64 "}", size));
                RC_SEND(s, "{\"op\":\"populate\",\"id\":1,\"name\":\"busy\"}", &src, 1);
                RC_SEND(s, "{\"op\":\"prefault\",\"id\":2,\"name\":\"busy\"}", NULL, 0);
                RC_SEND(s, "{\"op\":\"dump\",\"id\":3,\"name\":\"busy\"}", &out, 1);
                RC_SEND(s, "{\"op\":\"release\",\"id\":4,\"name\":\"busy\"}", NULL, 0);
                /* the release is answered first or after the jobs; each job either finished or was cancelled */
                for (int n = 0; n < 4; n++) {
                        r = rc_reply(s, RC_ANY_ID, NULL);
                        if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "ok")))
                                RC_EXPECT_ERROR(r, "ECANCELED", "cancel");
                        else
                                cJSON_Delete(r);
                }
                /* the name is free again at once */
                RC_EXPECT_ERROR(rc_call(s, NULL, 0, NULL, "{\"op\":\"info\",\"name\":\"busy\"}"), "ENOENT", "busy");
        }
        settle(s);
        EXPECT_FDS(&d, base, 10000);
        close(src);
        close(out);
        close(s);
        gmem_test_daemon_stop(&d);
}
END_TEST

START_TEST(open_flood_without_reading) {
        /* A client asks for the region's fd thousands of times and never reads: once its socket is
         * full the daemon stops reading its requests (backpressure), so at most a reply or two
         * (each with a dup of the fd) wait in the daemon; when the client goes, they are closed. */
        struct gmem_test_daemon d;
        struct timeval tv = { 1, 0 };
        unsigned base, peak = 0;
        int s, c, sent = 0;

        rc_daemon_start(&d, "{\"limits\":{\"max_queued_messages\":64}}");
        s = rc_session(d.socket);
        RC_EXPECT_OK(rc_call(s, NULL, 0, NULL, "{\"op\":\"create\",\"name\":\"r\",\"size\":65536}"));
        /* fat replies: 64 uid and 64 gid grants make every region description ~1.5 KB */
        for (int i = 0; i < 64; i++) {
                RC_EXPECT_OK(rc_call(s, NULL, 0, NULL, "{\"op\":\"grant\",\"name\":\"r\",\"uid\":%ld}", 4000000000L + i));
                RC_EXPECT_OK(rc_call(s, NULL, 0, NULL, "{\"op\":\"grant\",\"name\":\"r\",\"gid\":%ld}", 4000000000L + i));
        }
        RC_EXPECT_ERROR(rc_call(s, NULL, 0, NULL, "{\"op\":\"grant\",\"name\":\"r\",\"uid\":7}"), "ENOSPC", "limit");
        settle(s);
        base = gmem_test_count_fds(d.pid);

        c = rc_session(d.socket);
        ck_assert_int_eq(setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)), 0);
        for (int i = 0; i < 10000; i++) {
                char req[64];
                int k;
                snprintf(req, sizeof(req), "{\"op\":\"open\",\"id\":%d,\"name\":\"r\"}", i);
                k = rc_send_raw(c, req, strlen(req), NULL, 0);
                if (k < 0) {
                        ck_assert_msg(k == -EAGAIN, "send: %s", strerror(-k)); /* the daemon stopped reading */
                        break;
                }
                sent++;
                if (i % 256 == 0) {
                        unsigned n = gmem_test_count_fds(d.pid);
                        peak = n > peak ? n : peak;
                }
        }
        printf("open_flood_without_reading: %d opens sent before the daemon stopped reading, daemon fds %u (peak seen %u)\n",
               sent, base, peak);
        ck_assert_msg(sent < 10000, "the daemon kept reading a client that does not read");
        ck_assert_uint_le(peak, base + 3); /* its connection, and a reply or two waiting */
        ck_assert(!rc_log_contains(&d, "does not read its socket"));
        close(c);
        /* the fds that sat in its queue are closed; those in flight die with its socket */
        EXPECT_FDS(&d, base, 5000);
        RC_EXPECT_OK(rc_call(s, NULL, 0, NULL, "{\"op\":\"release\",\"name\":\"r\"}"));
        settle(s);
        EXPECT_FDS(&d, base - 1, 5000);
        close(s);
        gmem_test_daemon_stop(&d);
}
END_TEST

int main(void) {
        Suite *s = suite_create("daemon-leaks");
        TCase *tc = tcase_create("leaks");

        tcase_add_test(tc, register_open_release_cycles);
        tcase_add_test(tc, connect_disconnect_cycles);
        tcase_add_test(tc, clients_killed_mid_populate);
        tcase_add_test(tc, failed_jobs_close_their_fds);
        tcase_add_test(tc, released_under_running_jobs);
        tcase_add_test(tc, open_flood_without_reading);
        tcase_set_timeout(tc, 60);
        suite_add_tcase(s, tc);
        return gmem_test_main(s);
}
