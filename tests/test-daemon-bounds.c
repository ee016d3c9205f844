/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What one client may cost everyone else, against a real gmemd — each case a way a busy or hostile
 * local user took something from the others before:
 *  - a client refused for max_clients reads EUSERS (not a reset connection);
 *  - a uid's shares follow the totals they share; a share above its total, or a key given twice in
 *    gmemd.json or in a request, is refused naming it;
 *  - a create or restore refused by a quota leaves the warm pool as it was;
 *  - page servers that wait on a VMM never take the slots work needs, and root keeps a reserve;
 *  - a page server whose VMM never reads its socket hears nothing once nothing changes, and keeps
 *    serving;
 *  - fds gmemd has in flight are bounded per uid, far below the kernel's limit (the shipped unit's
 *    gmemd has no CAP_SYS_RESOURCE): root's `open` still gets its fd;
 *  - a connection's send buffer is the kernel's default, as any process's is (it was 8 MiB: one
 *    uid's 64 connections pinned 516 MiB of kernel memory);
 *  - a snapshot's extent table is charged to its caller before it is read, and read off the loop.
 */
#include <dirent.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>

#include "crc32c.h"
#include "raw-client.h"
#include "snapshot.h"
#include "gmem/gmem.h"

#define UID_A 1234
#define UID_B 1235
#define UID_C 1236

static cJSON *rc_caps_warm(int s) {
        cJSON *r = RC_EXPECT_OK_KEEP(rc_call(s, NULL, 0, NULL, "{\"op\":\"caps\"}"));
        cJSON *warm = cJSON_DetachItemFromObjectCaseSensitive(r, "warm");
        cJSON_Delete(r);
        return warm;
}

/* ---- EUSERS ---------------------------------------------------------------------------------- */

START_TEST(refused_client_reads_eusers) {
        struct gmem_test_daemon d;
        int a, b;

        rc_daemon_start(&d, "{\"limits\":{\"max_clients\":2,\"max_clients_per_uid\":2}}");
        a = rc_session_as(d.socket, UID_A);
        b = rc_session_as(d.socket, UID_A);
        /* again and again: the answer must beat the close whatever the timing */
        for (int i = 0; i < 40; i++) {
                char why[512] = "";
                int p[2], status;
                pid_t pid;
                ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
                pid = fork();
                ck_assert_int_ge(pid, 0);
                if (pid == 0) {
                        struct gmem_client *c = NULL;
                        int k;
                        if (setresgid(UID_A, UID_A, UID_A) < 0 || setresuid(UID_A, UID_A, UID_A) < 0)
                                _exit(3);
                        k = gmem_client_connect(d.socket, &c);
                        if (k == -EUSERS && strstr(gmem_last_error(), "too many clients"))
                                _exit(0);
                        dprintf(p[1], "%d (%s)", k, gmem_last_error());
                        _exit(1);
                }
                close(p[1]);
                (void) !read(p[0], why, sizeof(why) - 1);
                close(p[0]);
                ck_assert_int_eq(waitpid(pid, &status, 0), pid);
                ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "try %d: the refused client did not read EUSERS: %s",
                              i, why);
        }
        close(a);
        close(b);
        RC_ASSERT_ALIVE(&d);
        gmem_test_daemon_stop(&d);
}
END_TEST

/* ---- shares, duplicate keys ---------------------------------------------------------------- */

static int check_config(const char *json, char *out, size_t n) {
        char path[] = "/tmp/gmem-bounds-config-XXXXXX", cmd[512];
        int fd = mkstemp(path), status;
        FILE *p;
        size_t got;

        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(write(fd, json, strlen(json)), (ssize_t) strlen(json));
        close(fd);
        snprintf(cmd, sizeof(cmd), "%s/bin/gmemd --check-config %s 2>&1", getenv("BUILD") ?: "build", path);
        p = popen(cmd, "r");
        ck_assert_ptr_nonnull(p);
        got = fread(out, 1, n - 1, p);
        out[got] = 0;
        status = pclose(p);
        unlink(path);
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

START_TEST(shares_follow_their_totals) {
        struct gmem_test_daemon d;
        char out[8192];
        int a, b;

        /* lowered without its share: the share follows (a quarter), one uid cannot take them all */
        ck_assert_int_eq(check_config("{\"limits\":{\"max_regions\":8,\"max_jobs\":6}}", out, sizeof(out)), 0);
        ck_assert_msg(strstr(out, "\"max_regions_per_uid\":\t2,") && strstr(out, "\"max_jobs_per_uid\":\t3,"), "%s", out);
        /* a share above its total is a mistake, said so */
        ck_assert_int_eq(check_config("{\"limits\":{\"max_regions\":8,\"max_regions_per_uid\":9}}", out, sizeof(out)), 1);
        ck_assert_msg(strstr(out, "max_regions_per_uid") && strstr(out, "max_regions = 8"), "%s", out);
        /* a key given twice: refused with its name and line, not the first taken silently */
        ck_assert_int_eq(check_config("{\"limits\": {\n  \"max_jobs\": 4,\n  \"max_jobs\": 8\n}}", out, sizeof(out)), 1);
        ck_assert_msg(strstr(out, "line 3") && strstr(out, "'max_jobs'") && strstr(out, "second time"), "%s", out);
        ck_assert_int_eq(check_config("{\"pools\":[{\"size\":\"4M\",\"count\":1,\"prefault\":false},"
                                      "{\"size\":\"4M\",\"count\":1,\"prefault\":false}]}", out, sizeof(out)), 0);

        rc_daemon_start(&d, "{\"limits\":{\"max_regions\":8}}");
        a = rc_session_as(d.socket, UID_A);
        b = rc_session_as(d.socket, UID_B);
        RC_EXPECT_OK(rc_call(a, NULL, 0, NULL, "{\"op\":\"create\",\"name\":\"a0\",\"size\":65536}"));
        RC_EXPECT_OK(rc_call(a, NULL, 0, NULL, "{\"op\":\"create\",\"name\":\"a1\",\"size\":65536}"));
        RC_EXPECT_ERROR(rc_call(a, NULL, 0, NULL, "{\"op\":\"create\",\"name\":\"a2\",\"size\":65536}"), "EDQUOT",
                        "max_regions_per_uid");
        RC_EXPECT_OK(rc_call(b, NULL, 0, NULL, "{\"op\":\"create\",\"name\":\"b0\",\"size\":65536}"));
        /* a request that names a member twice: which one was meant is not guessed */
        RC_EXPECT_ERROR(rc_call(a, NULL, 0, NULL, "{\"op\":\"release\",\"name\":\"a0\",\"name\":\"b0\"}"), "EINVAL",
                        "given twice");
        ck_assert_int_eq(rc_region_count(&d), 3);
        close(a);
        close(b);
        gmem_test_daemon_stop(&d);
}
END_TEST

/* ---- pools ------------------------------------------------------------------------------------ */

START_TEST(refusal_keeps_the_pool) {
        struct gmem_test_daemon d;
        cJSON *warm = NULL;
        int root, a, snap;
        struct gmem_region *r = NULL;

        rc_daemon_start(&d, "{\"limits\":{\"max_bytes_per_uid\":\"2M\",\"max_bytes_total\":\"1G\"},"
                            "\"pools\":[{\"backend\":\"memfd\",\"size\":\"4M\",\"count\":1,\"prefault\":true}]}");
        root = rc_session(d.socket);
        for (int i = 0; i < 500; i++) { /* the pool filled */
                warm = rc_caps_warm(root);
                if (rc_num(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(warm, "pools"), 0), "ready") == 1)
                        break;
                cJSON_Delete(warm);
                warm = NULL;
                rc_sleep_ms(20);
        }
        ck_assert_msg(warm, "the warm pool never filled");
        cJSON_Delete(warm);
        a = rc_session_as(d.socket, UID_A);
        RC_EXPECT_ERROR(rc_call(a, NULL, 0, NULL, "{\"op\":\"create\",\"name\":\"big\",\"size\":4194304,\"prefault\":true}"),
                        "EDQUOT", "limit");
        /* a restore of that size, refused the same way */
        ck_assert_int_eq(gmem_region_new_memfd(GMEM_BACKEND_MEMFD, 4 << 20, &r), 0);
        snap = gmem_test_temp_file();
        ck_assert_int_ge(gmem_snapshot_write(r, snap, NULL), 0);
        RC_EXPECT_ERROR(rc_call(a, &snap, 1, NULL, "{\"op\":\"restore\",\"name\":\"big2\"}"), "EDQUOT", "limit");
        warm = rc_caps_warm(root);
        ck_assert_msg(rc_num(warm, "handed_out") == 0 &&
                      rc_num(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(warm, "pools"), 0), "ready") == 1,
                      "a refused request took the pooled region: %s", cJSON_PrintUnformatted(warm));
        cJSON_Delete(warm);
        /* and the pool serves who may have it */
        RC_EXPECT_OK(rc_call(root, NULL, 0, NULL, "{\"op\":\"create\",\"name\":\"ok\",\"size\":4194304,\"prefault\":true}"));
        warm = rc_caps_warm(root);
        ck_assert_int_eq(rc_num(warm, "handed_out"), 1);
        cJSON_Delete(warm);
        gmem_region_free(r);
        close(snap);
        close(a);
        close(root);
        gmem_test_daemon_stop(&d);
}
END_TEST

/* ---- slots ------------------------------------------------------------------------------------ */

static int listening_socket(const struct gmem_test_daemon *d, const char *name) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/%s", d->dir, name);
        ck_assert_int_eq(bind(l, (struct sockaddr *) &sa, sizeof(sa)), 0);
        ck_assert_int_eq(listen(l, 1), 0);
        return l;
}

/* a small snapshot of data */
static int small_snapshot(uint64_t size) {
        struct gmem_region *r = NULL;
        uint8_t *buf = malloc(size);
        int fd = gmem_test_temp_file();

        gmem_test_fill(buf, size, 7);
        ck_assert_int_eq(gmem_region_new_memfd(GMEM_BACKEND_MEMFD, size, &r), 0);
        ck_assert_int_eq(gmem_populate_buf(r, 0, buf, size, NULL), (int64_t) size);
        ck_assert_int_ge(gmem_snapshot_write(r, fd, NULL), 0);
        gmem_region_free(r);
        free(buf);
        return fd;
}

static cJSON *start_firecracker(int s, const struct gmem_test_daemon *d, const char *vm, int snap) {
        int fds[2] = { listening_socket(d, vm), snap };
        cJSON *r = rc_call(s, fds, 2, NULL, "{\"op\":\"firecracker\",\"vm\":\"%s\",\"timeout_ms\":600000}", vm);
        close(fds[0]);
        return r;
}

START_TEST(page_servers_leave_root_its_slots) {
        struct gmem_test_daemon d;
        int a, b, c, root, snap = small_snapshot(1 << 20), src = gmem_test_random_file(1 << 20, 3, NULL);

        rc_daemon_start(&d, "{\"limits\":{\"max_page_servers\":2,\"max_page_servers_per_uid\":1,\"max_jobs\":2,"
                            "\"max_jobs_per_uid\":1}}");
        a = rc_session_as(d.socket, UID_A);
        b = rc_session_as(d.socket, UID_B);
        c = rc_session_as(d.socket, UID_C);
        root = rc_session(d.socket);
        /* two uids' Firecracker VMs that never come: every unprivileged page server slot */
        RC_EXPECT_OK(start_firecracker(a, &d, "vm-a", snap));
        RC_EXPECT_ERROR(start_firecracker(a, &d, "vm-a2", snap), "EBUSY", "max_page_servers_per_uid");
        RC_EXPECT_OK(start_firecracker(b, &d, "vm-b", snap));
        RC_EXPECT_ERROR(start_firecracker(c, &d, "vm-c", snap), "EBUSY", "max_page_servers");
        /* work still has its slots: theirs, another uid's, and root's */
        RC_EXPECT_OK(rc_call(c, NULL, 0, NULL, "{\"op\":\"create\",\"name\":\"c\",\"size\":1048576}"));
        RC_EXPECT_OK(rc_call(c, &src, 1, NULL, "{\"op\":\"populate\",\"name\":\"c\"}"));
        RC_EXPECT_OK(rc_call(root, NULL, 0, NULL, "{\"op\":\"create\",\"name\":\"r\",\"size\":1048576}"));
        RC_EXPECT_OK(rc_call(root, &src, 1, NULL, "{\"op\":\"populate\",\"name\":\"r\"}"));
        /* and root has a reserve of page servers beyond what the others hold */
        RC_EXPECT_OK(start_firecracker(root, &d, "vm-root", snap));
        close(a);
        close(b);
        close(c);
        close(root);
        close(snap);
        close(src);
        gmem_test_daemon_stop(&d);
}
END_TEST

/* ---- a quiet page server ---------------------------------------------------------------------- */

START_TEST(quiet_page_server_keeps_its_vmm) {
        struct gmem_test_daemon d;
        const uint64_t size = 2 << 20;
        int s, snap = small_snapshot(size), uffd, fds[2], progress = 0, k;
        uint8_t *mem, *want;
        cJSON *r;

        mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        ck_assert_ptr_ne(mem, MAP_FAILED);
        if ((k = gmem_uffd_register(mem, size, false, &uffd)) < 0)
                SKIP_TEST("no userfaultfd here: %s", gmem_last_error());
        rc_daemon_start(&d, "{\"limits\":{\"max_queued_messages\":16}}");
        s = rc_session(d.socket);
        RC_EXPECT_OK(rc_call(s, NULL, 0, NULL, "{\"op\":\"create\",\"name\":\"lazy\",\"size\":%" PRIu64 "}", size));
        fds[0] = uffd;
        fds[1] = snap;
        r = RC_EXPECT_OK_KEEP(rc_call(s, fds, 2, NULL, "{\"op\":\"serve\",\"name\":\"lazy\",\"address\":%" PRIu64 ","
                                      "\"shared\":false,\"prefetch\":true}", (uint64_t) (uintptr_t) mem));
        cJSON_Delete(r);
        /* the VMM reads nothing for a while: a server that repeats itself fills its queue and is
         * disconnected with it, and the VMM's next fault hangs */
        rc_sleep_ms(4000);
        want = gmem_test_read_fd(snap, 4096, size);
        ck_assert_msg(memcmp(mem, want, size) == 0, "lazily restored memory differs");
        free(want);
        RC_SEND(s, "{\"op\":\"list\",\"id\":77}", NULL, 0);
        for (;;) {
                cJSON *m = NULL;
                ck_assert_msg(rc_recv(s, 10000, &m, NULL, 0, NULL) == 1, "the connection went while its VMM did not read");
                if (rc_is_event(m)) {
                        progress += strcmp(rc_str(m, "event") ?: "", "progress") == 0;
                        ck_assert_msg(strcmp(rc_str(m, "event") ?: "", "finished") != 0, "the page server ended: %s",
                                      cJSON_PrintUnformatted(m));
                        cJSON_Delete(m);
                        continue;
                }
                ck_assert_int_eq(rc_num(m, "id"), 77);
                cJSON_Delete(m);
                break;
        }
        ck_assert_msg(progress <= 8, "%d progress events for a page server that was done after a moment", progress);
        RC_ASSERT_DAEMON_RUNNING(&d);
        close(s);
        close(uffd);
        close(snap);
        munmap(mem, size);
        gmem_test_daemon_stop(&d);
}
END_TEST

/* ---- fds in flight ---------------------------------------------------------------------------- */

START_TEST(fds_in_flight_leave_root_room) {
        struct gmem_test_daemon d;
        int root, a, sent = 0;

        /* as the shipped unit runs it: no CAP_SYS_RESOURCE, the kernel holds gmemd's fds in flight
         * to its RLIMIT_NOFILE (low here, so that a flood would reach it quickly) */
        gmem_test_daemon_start_restricted(&d, NULL, 256);
        root = rc_session(d.socket);
        RC_EXPECT_OK(rc_call(root, NULL, 0, NULL, "{\"op\":\"create\",\"name\":\"r\",\"size\":65536}"));
        RC_EXPECT_OK(rc_call(root, NULL, 0, NULL, "{\"op\":\"grant\",\"name\":\"r\",\"uid\":%d}", UID_A));
        a = rc_session_as(d.socket, UID_A);
        ck_assert_int_eq(fcntl(a, F_SETFL, O_NONBLOCK), 0);
        /* uid A asks for the region's fd again and again, and reads nothing */
        for (int i = 0; i < 4000; i++) {
                char req[96];
                int n = snprintf(req, sizeof(req), "{\"op\":\"open\",\"name\":\"r\",\"id\":%d}", 1000 + i);
                if (send(a, req, (size_t) n, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
                        break;
                sent++;
        }
        rc_sleep_ms(1000);
        /* root still gets its fds, and the flooding uid is still connected (it only waits) */
        for (int i = 0; i < 40; i++) {
                int fd = -1;
                cJSON *r = rc_call(root, NULL, 0, &fd, "{\"op\":\"open\",\"name\":\"r\"}");
                RC_EXPECT_OK(r);
                ck_assert_int_ge(fd, 0);
                close(fd);
        }
        ck_assert_int_gt(sent, 100);
        RC_ASSERT_DAEMON_RUNNING(&d);
        close(a);
        close(root);
        gmem_test_daemon_stop(&d);
}
END_TEST

/* ---- send buffers ------------------------------------------------------------------------------ */

/* The largest send buffer among gmemd's connections from uid, and how many there are: each of
 * gmemd's sockets looked at through a copy of its fd (pidfd_getfd; root). */
static int peer_sndbufs(pid_t pid, uid_t uid, int *ret_max, unsigned *ret_n) {
        char dir[64];
        struct dirent *e;
        DIR *dp;
        int pidfd = (int) syscall(SYS_pidfd_open, pid, 0), max = 0;
        unsigned n = 0;

        if (pidfd < 0)
                return -errno;
        snprintf(dir, sizeof(dir), "/proc/%d/fd", (int) pid);
        dp = opendir(dir);
        ck_assert_ptr_nonnull(dp);
        while ((e = readdir(dp))) {
                struct ucred cred;
                int fd, listening = 0, sndbuf = 0;
                if (e->d_name[0] == '.')
                        continue;
                fd = (int) syscall(SYS_pidfd_getfd, pidfd, atoi(e->d_name), 0);
                if (fd < 0)
                        continue; /* closed since, or not ours to copy */
                if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &(socklen_t) { sizeof(int) }) == 0 && !listening &&
                    getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &(socklen_t) { sizeof(cred) }) == 0 && cred.uid == uid &&
                    getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, &(socklen_t) { sizeof(int) }) == 0) {
                        max = MAX(max, sndbuf);
                        n++;
                }
                close(fd);
        }
        closedir(dp);
        close(pidfd);
        *ret_max = max;
        *ret_n = n;
        return 0;
}

START_TEST(connections_keep_the_default_send_buffer) {
        struct gmem_test_daemon d;
        int s[16], max = 0, wmem_default = 0;
        unsigned n = 0;
        FILE *f;

        if (geteuid() != 0)
                SKIP_TEST("looking at gmemd's sockets (pidfd_getfd) needs root");
        f = fopen("/proc/sys/net/core/wmem_default", "re");
        ck_assert_ptr_nonnull(f);
        ck_assert_int_eq(fscanf(f, "%d", &wmem_default), 1);
        fclose(f);
        rc_daemon_start(&d, NULL);
        /* one uid's connections, each with a request answered (a reply sent on it) */
        for (unsigned i = 0; i < (sizeof(s) / sizeof(s[0])); i++) {
                s[i] = rc_session_as(d.socket, UID_A);
                RC_EXPECT_OK(rc_call(s[i], NULL, 0, NULL, "{\"op\":\"list\"}"));
        }
        if (peer_sndbufs(d.pid, UID_A, &max, &n) < 0) {
                for (unsigned i = 0; i < (sizeof(s) / sizeof(s[0])); i++)
                        close(s[i]);
                gmem_test_daemon_stop(&d);
                SKIP_TEST("pidfd_getfd: %s (Linux 5.6+)", strerror(errno));
        }
        ck_assert_uint_eq(n, (sizeof(s) / sizeof(s[0])));
        /* the kernel stores what it is given; the default is what any socket starts with */
        ck_assert_msg(max <= wmem_default, "a connection's send buffer is %d bytes, the kernel's default %d", max,
                      wmem_default);
        for (unsigned i = 0; i < (sizeof(s) / sizeof(s[0])); i++)
                close(s[i]);
        RC_ASSERT_ALIVE(&d);
        gmem_test_daemon_stop(&d);
}
END_TEST

/* ---- extent tables ----------------------------------------------------------------------------- */

/* A snapshot whose header is sound and describes a sparse region of size bytes with n extents; the
 * table is a hole (zeroes: its checksum does not match, which only reading it finds out). */
static int forged_big(uint64_t size, uint64_t n) {
        uint8_t block[SNAP_HEADER_SIZE] = { 0 };
        struct snap_header h = { .magic = SNAP_MAGIC, .version = SNAP_VERSION, .region_size = size, .page_size = 4096,
                                 .backend = GMEM_BACKEND_MEMFD, .data_offset = 4096, .table_offset = 4096 + size,
                                 .n_extents = n, .data_bytes = n * 4096, .table_crc = 0x12345678 };
        int fd = gmem_test_temp_file();

        h.file_size = h.table_offset + n * sizeof(struct snap_extent);
        memcpy(block, &h, sizeof(h));
        h.header_crc = gmem_crc32c(0, block, sizeof(block));
        memcpy(block, &h, sizeof(h));
        ck_assert_int_eq(ftruncate(fd, (off_t) h.file_size), 0);
        ck_assert_int_eq(pwrite(fd, block, sizeof(block), 0), (ssize_t) sizeof(block));
        return fd;
}

START_TEST(extent_tables_charged_and_off_the_loop) {
        struct gmem_test_daemon d;
        const uint64_t size = UINT64_C(32) << 30, n = UINT64_C(1) << 23; /* a 192 MiB table */
        int big = forged_big(size, n), a, root, other;
        bool other_first = false;
        cJSON *m;

        rc_daemon_start(&d, "{\"limits\":{\"max_bytes_per_uid\":\"64M\",\"max_bytes_total\":\"64G\"}}");
        a = rc_session_as(d.socket, UID_A);
        /* its table alone is more than the caller may hold: refused before a byte of it is read */
        RC_EXPECT_ERROR(start_firecracker(a, &d, "vm-big", big), "EDQUOT", "limit");
        /* root may hold it; while its table is read (and found damaged), the others are served */
        root = rc_session(d.socket);
        other = rc_session(d.socket);
        {
                int fds[2] = { listening_socket(&d, "vm-root"), big };
                RC_SEND(root, "{\"op\":\"firecracker\",\"vm\":\"vm-root\",\"id\":5}", fds, 2);
                close(fds[0]);
        }
        rc_sleep_ms(30);
        RC_SEND(other, "{\"op\":\"list\",\"id\":6}", NULL, 0);
        /* whichever answer comes first: on the loop, the list would wait for the whole table */
        {
                struct pollfd p[2] = { { .fd = root, .events = POLLIN }, { .fd = other, .events = POLLIN } };
                ck_assert_int_gt(poll(p, 2, 30000), 0);
                other_first = (p[1].revents & POLLIN) && !(p[0].revents & POLLIN);
        }
        RC_EXPECT_OK(rc_reply(other, 6, NULL));
        m = rc_reply(root, 5, NULL);
        RC_EXPECT_ERROR(m, "EBADMSG", "checksum");
        ck_assert_msg(other_first, "a client was answered only after another's extent table was read");
        close(a);
        close(root);
        close(other);
        close(big);
        gmem_test_daemon_stop(&d);
}
END_TEST

/* gmemd reopens a source file of its own (the fd store keeps one entry per open file): never for
 * an fd its owner could not read through — an O_PATH fd of a root-only file would otherwise be read
 * with gmemd's rights and served into the caller's memory. */
START_TEST(unreadable_sources_refused) {
        struct gmem_test_daemon d;
        char path[] = "/tmp/gmem-bounds-secret-XXXXXX";
        int a, fd, opath, wronly, fds[2];
        uint8_t page[4096];
        cJSON *r;

        if (geteuid() != 0)
                SKIP_TEST("a root-only file and another uid need root");
        fd = mkstemp(path);
        memset(page, 0x5a, sizeof(page));
        ck_assert_int_eq(write(fd, page, sizeof(page)), (ssize_t) sizeof(page));
        ck_assert_int_eq(fchmod(fd, 0600), 0);
        close(fd);
        rc_daemon_start(&d, NULL);
        /* what uid A can get of a root-only file: an O_PATH fd (no read permission needed) */
        opath = open(path, O_PATH | O_CLOEXEC);
        wronly = open(path, O_WRONLY | O_CLOEXEC);
        ck_assert_int_ge(opath, 0);
        a = rc_session_as(d.socket, UID_A);
        fds[0] = listening_socket(&d, "vm-steal");
        fds[1] = opath;
        r = rc_call(a, fds, 2, NULL, "{\"op\":\"firecracker\",\"vm\":\"vm-steal\",\"format\":\"raw\",\"timeout_ms\":5000}");
        RC_EXPECT_ERROR(r, "EBADF", "not open for reading");
        fds[1] = wronly;
        r = rc_call(a, fds, 2, NULL, "{\"op\":\"firecracker\",\"vm\":\"vm-steal2\",\"format\":\"raw\",\"timeout_ms\":5000}");
        RC_EXPECT_ERROR(r, "EBADF", "not open for reading");
        close(fds[0]);
        RC_ASSERT_ALIVE(&d);
        close(a);
        close(opath);
        close(wronly);
        unlink(path);
        gmem_test_daemon_stop(&d);
}
END_TEST

int main(void) {
        Suite *s = suite_create("daemon-bounds");
        TCase *tc = tcase_create("bounds");

        tcase_set_timeout(tc, 120);
        tcase_add_test(tc, refused_client_reads_eusers);
        tcase_add_test(tc, shares_follow_their_totals);
        tcase_add_test(tc, refusal_keeps_the_pool);
        tcase_add_test(tc, page_servers_leave_root_its_slots);
        tcase_add_test(tc, quiet_page_server_keeps_its_vmm);
        tcase_add_test(tc, fds_in_flight_leave_root_room);
        tcase_add_test(tc, connections_keep_the_default_send_buffer);
        tcase_add_test(tc, extent_tables_charged_and_off_the_loop);
        tcase_add_test(tc, unreadable_sources_refused);
        suite_add_tcase(s, tc);
        return gmem_test_main(s);
}
