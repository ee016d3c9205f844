/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A tiny raw client of gmemd's socket protocol (docs/protocol.md) for the daemon tests: it speaks
 * SOCK_SEQPACKET + JSON + SCM_RIGHTS itself, without libgmem's client, so a test can send exactly
 * the bytes and fds it wants (malformed ones included). Everything is static inline because the
 * Makefile links each test program with tests/gmem-test.c only.
 *
 * Failures are reported at the caller's file and line (the RC_* macros pass them down).
 */
#pragma once

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "fd-pass.h"
#include "gmem-test.h"

#define RC_TIMEOUT_MS 20000

#ifndef MIN
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#endif

#define RC_FAIL_AT(file, line, ...) _ck_assert_failed((file), (line), "raw client", __VA_ARGS__)

static inline uint64_t rc_now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

static inline void rc_sleep_ms(unsigned ms) {
        struct timespec ts = { ms / 1000, (long) (ms % 1000) * 1000000L };
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

/* ---- the daemon ------------------------------------------------------------------------------ */

/* gmem_test_daemon_start(), plus a watchdog: when this test process dies without stopping the
 * daemon (a failed assertion _exit()s), the daemon is killed instead of living on. The watchdog
 * holds a pidfd, so a recycled pid is never hit. */
static inline void rc_daemon_start(struct gmem_test_daemon *d, const char *config_json) {
        int p[2];
        pid_t w;

        gmem_test_daemon_start(d, config_json);
        ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
        w = fork();
        ck_assert_int_ge(w, 0);
        if (w == 0) {
                int pidfd = (int) syscall(SYS_pidfd_open, d->pid, 0);
                char ch;

                close(p[1]);
                while (read(p[0], &ch, 1) < 0 && errno == EINTR)
                        ;
                if (pidfd >= 0)
                        (void) syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
                _exit(0);
        }
        close(p[0]);
        /* deliberately kept open (close-on-exec) for the life of this process */
}

static inline bool rc_log_contains(const struct gmem_test_daemon *d, const char *needle) {
        FILE *f = fopen(d->log, "re");
        char line[4096];
        bool found = false;

        if (!f)
                return false;
        while (!found && fgets(line, sizeof(line), f))
                found = strstr(line, needle) != NULL;
        fclose(f);
        return found;
}

/* The daemon must still be running (not crashed) */
#define RC_ASSERT_DAEMON_RUNNING(d) do { \
                int _st; \
                pid_t _w = waitpid((d)->pid, &_st, WNOHANG); \
                ck_assert_msg(_w == 0, "gmemd died: status 0x%x (log %s)", _w > 0 ? _st : -1, (d)->log); \
        } while (0)

/* VmRSS of a process in KiB */
static inline uint64_t rc_vmrss_kib(pid_t pid) {
        char path[64], line[256];
        uint64_t kib = 0;
        FILE *f;

        snprintf(path, sizeof(path), "/proc/%d/status", (int) pid);
        f = fopen(path, "re");
        ck_assert_ptr_nonnull(f);
        while (fgets(line, sizeof(line), f))
                if (sscanf(line, "VmRSS: %" SCNu64, &kib) == 1)
                        break;
        fclose(f);
        return kib;
}

/* Whether a process runs with AddressSanitizer (its quarantine makes RSS meaningless) */
static inline bool rc_is_sanitized(pid_t pid) {
        char path[64], line[512];
        bool found = false;
        FILE *f;

        snprintf(path, sizeof(path), "/proc/%d/maps", (int) pid);
        f = fopen(path, "re");
        if (!f)
                return false;
        while (!found && fgets(line, sizeof(line), f))
                found = strstr(line, "libasan") != NULL;
        fclose(f);
        return found;
}

/* ---- sockets ---------------------------------------------------------------------------------- */

/* -errno, or a connected socket */
static inline int rc_try_connect(const char *path) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

        if (s < 0)
                return -errno;
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
        if (connect(s, (struct sockaddr *) &sa, sizeof(sa)) < 0) {
                int e = errno;
                close(s);
                return -e;
        }
        return s;
}

static inline int rc_connect_at(const char *file, int line, const char *path) {
        int s = rc_try_connect(path);
        if (s < 0)
                RC_FAIL_AT(file, line, "connect %s: %s", path, strerror(-s));
        return s;
}
#define rc_connect(path) rc_connect_at(__FILE__, __LINE__, (path))

/* 0, or -errno. Blocking (bounded by SO_SNDTIMEO when the caller set one). */
static inline int rc_send_raw(int s, const void *buf, size_t len, const int *fds, unsigned n_fds) {
        for (;;) {
                if (send_with_fds(s, buf, len, fds, n_fds, MSG_NOSIGNAL) >= 0)
                        return 0;
                if (errno != EINTR)
                        return -errno;
        }
}

#define RC_SEND(s, text, fds, n_fds) do { \
                const char *_t = (text); \
                int _k = rc_send_raw((s), _t, strlen(_t), (fds), (n_fds)); \
                ck_assert_msg(_k == 0, "send '%.80s': %s", _t, strerror(-_k)); \
        } while (0)

/* One message. 1: *ret is the parsed object (and its fds, if any, in ret_fds/ret_n_fds; more than
 * max_fds are closed and counted), 0: orderly EOF, -ETIMEDOUT, or -errno. Asserts that what the
 * daemon sent is one JSON object. */
static inline int rc_recv_at(const char *file, int line, int s, int timeout_ms, cJSON **ret, int *ret_fds,
                             unsigned max_fds, unsigned *ret_n_fds) {
        static char buf[1 << 22];
        union {
                char buf[CMSG_SPACE(sizeof(int) * 253)];
                struct cmsghdr align;
        } cbuf;
        struct iovec iov = { buf, sizeof(buf) };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf.buf, .msg_controllen = sizeof(cbuf) };
        struct pollfd pfd = { .fd = s, .events = POLLIN };
        unsigned n_fds = 0;
        ssize_t n;
        int k;

        *ret = NULL;
        if (ret_n_fds)
                *ret_n_fds = 0;
        do
                k = poll(&pfd, 1, timeout_ms);
        while (k < 0 && errno == EINTR);
        if (k < 0)
                return -errno;
        if (k == 0)
                return -ETIMEDOUT;
        do
                n = recvmsg(s, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return -errno;
        for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm))
                if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
                        unsigned kk = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                        for (unsigned i = 0; i < kk; i++) {
                                int fd;
                                memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
                                if (ret_fds && n_fds < max_fds)
                                        ret_fds[n_fds] = fd;
                                else
                                        close(fd);
                                n_fds++;
                        }
                }
        if (ret_n_fds)
                *ret_n_fds = n_fds;
        if (n == 0 && n_fds == 0)
                return 0;
        if (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC))
                RC_FAIL_AT(file, line, "a message from gmemd was truncated (flags 0x%x)", mh.msg_flags);
        *ret = cJSON_ParseWithLength(buf, (size_t) n);
        if (!cJSON_IsObject(*ret))
                RC_FAIL_AT(file, line, "gmemd sent something that is not a JSON object: '%.*s'", (int) MIN(n, 200), buf);
        return 1;
}
#define rc_recv(s, timeout_ms, ret, ret_fds, max_fds, ret_n_fds) \
        rc_recv_at(__FILE__, __LINE__, (s), (timeout_ms), (ret), (ret_fds), (max_fds), (ret_n_fds))

static inline bool rc_is_event(const cJSON *m) {
        return cJSON_GetObjectItemCaseSensitive(m, "event") != NULL;
}

#define RC_ANY_ID LONG_MIN

/* The next reply (not an event) on s; events before it are dropped (or counted into *ret_events).
 * Asserts that one arrives, that it has "ok", that its id is `id` (id < 0: null; RC_ANY_ID: any), and that it
 * came with at most one fd, which goes to *ret_fd (-1 for none; closed when ret_fd is NULL). */
static inline cJSON *rc_reply_at(const char *file, int line, int s, long id, int *ret_fd, unsigned *ret_events) {
        uint64_t deadline = rc_now_ms() + RC_TIMEOUT_MS;

        if (ret_fd)
                *ret_fd = -1;
        if (ret_events)
                *ret_events = 0;
        for (;;) {
                cJSON *m = NULL, *rid;
                int fds[4];
                unsigned n_fds = 0;
                int64_t left = (int64_t) deadline - (int64_t) rc_now_ms();
                int k = rc_recv_at(file, line, s, left > 0 ? (int) left : 0, &m, fds, 4, &n_fds);

                if (k <= 0)
                        RC_FAIL_AT(file, line, "no reply to request %ld: %s", id, k == 0 ? "gmemd closed the connection" :
                                   strerror(-k));
                if (rc_is_event(m)) {
                        if (n_fds)
                                RC_FAIL_AT(file, line, "an event came with %u fds", n_fds);
                        if (ret_events)
                                (*ret_events)++;
                        cJSON_Delete(m);
                        continue;
                }
                if (!cJSON_IsBool(cJSON_GetObjectItemCaseSensitive(m, "ok")))
                        RC_FAIL_AT(file, line, "reply without a boolean 'ok': %s", cJSON_PrintUnformatted(m));
                rid = cJSON_GetObjectItemCaseSensitive(m, "id");
                if (id == RC_ANY_ID)
                        ;
                else if (id < 0 ? !cJSON_IsNull(rid) : !(cJSON_IsNumber(rid) && rid->valuedouble == (double) id))
                        RC_FAIL_AT(file, line, "reply to request %ld carries another id: %s", id, cJSON_PrintUnformatted(m));
                if (n_fds > 1)
                        RC_FAIL_AT(file, line, "a reply came with %u fds", n_fds);
                if (n_fds == 1) {
                        if (ret_fd)
                                *ret_fd = fds[0];
                        else
                                close(fds[0]);
                }
                return m;
        }
}
#define rc_reply(s, id, ret_fd) rc_reply_at(__FILE__, __LINE__, (s), (id), (ret_fd), NULL)

static long rc_next_id = 1000;

/* Send the JSON object written by fmt with a fresh "id" added (and fds), then wait for its
 * reply. Returns the reply; *ret_fd gets the fd that came with it (-1 none). */
static inline cJSON *rc_vcall_at(const char *file, int line, int s, const int *fds, unsigned n_fds, int *ret_fd,
                                 unsigned *ret_events, const char *fmt, va_list ap) __attribute__((format(printf, 8, 0)));
static inline cJSON *rc_vcall_at(const char *file, int line, int s, const int *fds, unsigned n_fds, int *ret_fd,
                                 unsigned *ret_events, const char *fmt, va_list ap) {
        char *text = NULL, *out;
        cJSON *req;
        long id = rc_next_id++;
        int k;

        if (vasprintf(&text, fmt, ap) < 0)
                RC_FAIL_AT(file, line, "vasprintf");
        req = cJSON_Parse(text);
        if (!cJSON_IsObject(req) || text[0] != '{')
                RC_FAIL_AT(file, line, "test bug: request '%s' is not a JSON object", text);
        if (cJSON_GetObjectItemCaseSensitive(req, "id"))
                RC_FAIL_AT(file, line, "test bug: request '%s' has its own id", text);
        /* the id goes in as text: reprinting the request with cJSON would round its large numbers */
        if (asprintf(&out, "{\"id\":%ld%s%s", id, req->child ? "," : "", text + 1) < 0)
                RC_FAIL_AT(file, line, "asprintf");
        k = rc_send_raw(s, out, strlen(out), fds, n_fds);
        if (k < 0)
                RC_FAIL_AT(file, line, "send '%s': %s", out, strerror(-k));
        free(out);
        free(text);
        cJSON_Delete(req);
        return rc_reply_at(file, line, s, id, ret_fd, ret_events);
}

static inline cJSON *rc_call_at(const char *file, int line, int s, const int *fds, unsigned n_fds, int *ret_fd,
                                const char *fmt, ...) __attribute__((format(printf, 7, 8)));
static inline cJSON *rc_call_at(const char *file, int line, int s, const int *fds, unsigned n_fds, int *ret_fd,
                                const char *fmt, ...) {
        va_list ap;
        cJSON *r;

        va_start(ap, fmt);
        r = rc_vcall_at(file, line, s, fds, n_fds, ret_fd, NULL, fmt, ap);
        va_end(ap);
        return r;
}
static inline cJSON *rc_call_ev_at(const char *file, int line, int s, unsigned *ret_events, const char *fmt, ...)
        __attribute__((format(printf, 5, 6)));
static inline cJSON *rc_call_ev_at(const char *file, int line, int s, unsigned *ret_events, const char *fmt, ...) {
        va_list ap;
        cJSON *r;

        va_start(ap, fmt);
        r = rc_vcall_at(file, line, s, NULL, 0, NULL, ret_events, fmt, ap);
        va_end(ap);
        return r;
}
/* rc_call_ev(s, &n_events, fmt, ...): a request without fds; *n_events counts the events that came before its reply */
#define rc_call_ev(s, ret_events, ...) rc_call_ev_at(__FILE__, __LINE__, (s), (ret_events), __VA_ARGS__)

/* rc_call(s, fds, n_fds, ret_fd, fmt, ...): a request and its reply */
#define rc_call(s, fds, n_fds, ret_fd, ...) rc_call_at(__FILE__, __LINE__, (s), (fds), (n_fds), (ret_fd), __VA_ARGS__)

static inline const char *rc_error_code(const cJSON *reply) {
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(reply, "error");
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(e, "code");
        return cJSON_IsString(c) ? c->valuestring : NULL;
}

static inline const char *rc_error_message(const cJSON *reply) {
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(reply, "error");
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(e, "message");
        return cJSON_IsString(m) ? m->valuestring : NULL;
}

/* reply must be ok:true; consumes it unless keep */
static inline cJSON *rc_expect_ok_at(const char *file, int line, cJSON *reply, bool keep) {
        if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(reply, "ok")))
                RC_FAIL_AT(file, line, "expected ok:true, got %s", cJSON_PrintUnformatted(reply));
        if (!keep) {
                cJSON_Delete(reply);
                return NULL;
        }
        return reply;
}
#define RC_EXPECT_OK(reply) ((void) rc_expect_ok_at(__FILE__, __LINE__, (reply), false))
#define RC_EXPECT_OK_KEEP(reply) rc_expect_ok_at(__FILE__, __LINE__, (reply), true)

/* reply must be ok:false with error.code == code and a one-line, non-empty message containing
 * needle (case-insensitive; NULL: any). Consumes the reply. */
static inline void rc_expect_error_at(const char *file, int line, cJSON *reply, const char *code, const char *needle) {
        const char *c = rc_error_code(reply), *m = rc_error_message(reply);
        char *text = cJSON_PrintUnformatted(reply);

        if (!cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(reply, "ok")))
                RC_FAIL_AT(file, line, "expected ok:false (%s), got %s", code, text);
        if (!c || strcmp(c, code) != 0)
                RC_FAIL_AT(file, line, "expected error %s, got %s", code, text);
        if (!m || !m[0] || strchr(m, '\n'))
                RC_FAIL_AT(file, line, "error %s without a one-line message: %s", code, text);
        if (needle && !strcasestr(m, needle))
                RC_FAIL_AT(file, line, "error message of %s does not mention '%s': %s", code, needle, text);
        free(text);
        cJSON_Delete(reply);
}
#define RC_EXPECT_ERROR(reply, code, needle) rc_expect_error_at(__FILE__, __LINE__, (reply), (code), (needle))

static inline void rc_hello_at(const char *file, int line, int s) {
        cJSON *r = rc_call_at(file, line, s, NULL, 0, NULL, "{\"op\":\"hello\",\"version\":1,\"client\":\"raw-client\"}");
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(r, "version");

        rc_expect_ok_at(file, line, r, true);
        if (!cJSON_IsNumber(v) || v->valuedouble != 1)
                RC_FAIL_AT(file, line, "hello: version is not 1: %s", cJSON_PrintUnformatted(r));
        cJSON_Delete(r);
}
#define rc_hello(s) rc_hello_at(__FILE__, __LINE__, (s))

/* connect + hello */
static inline int rc_open_session_at(const char *file, int line, const char *path) {
        int s = rc_connect_at(file, line, path);
        rc_hello_at(file, line, s);
        return s;
}
#define rc_session(path) rc_open_session_at(__FILE__, __LINE__, (path))

/* The regions array of a `list` on s (a detached copy the caller frees). */
static inline cJSON *rc_list_at(const char *file, int line, int s) {
        cJSON *r = rc_expect_ok_at(file, line, rc_call_at(file, line, s, NULL, 0, NULL, "{\"op\":\"list\"}"), true);
        cJSON *regions = cJSON_DetachItemFromObjectCaseSensitive(r, "regions");

        if (!cJSON_IsArray(regions))
                RC_FAIL_AT(file, line, "list: no regions array");
        cJSON_Delete(r);
        return regions;
}
#define rc_list(s) rc_list_at(__FILE__, __LINE__, (s))

static inline const cJSON *rc_find_region(const cJSON *regions, const char *name) {
        const cJSON *r;
        cJSON_ArrayForEach(r, regions) {
                const cJSON *n = cJSON_GetObjectItemCaseSensitive(r, "name");
                if (cJSON_IsString(n) && strcmp(n->valuestring, name) == 0)
                        return r;
        }
        return NULL;
}

static inline double rc_num(const cJSON *o, const char *key) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
        return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

static inline const char *rc_str(const cJSON *o, const char *key) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
        return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* A fresh connection from this process serves hello + list: the daemon is alive and answering
 * others. Returns list's regions array (the caller frees it). */
static inline cJSON *rc_alive_at(const char *file, int line, const struct gmem_test_daemon *d) {
        int s = rc_open_session_at(file, line, d->socket);
        cJSON *regions = rc_list_at(file, line, s);
        close(s);
        return regions;
}
#define rc_alive(d) rc_alive_at(__FILE__, __LINE__, (d))
#define RC_ASSERT_ALIVE(d) cJSON_Delete(rc_alive(d))

/* Regions visible to root: the count, and the size of one by name (-1: absent). */
static inline int rc_region_count(const struct gmem_test_daemon *d) {
        cJSON *regions = rc_alive(d);
        int n = cJSON_GetArraySize(regions);
        cJSON_Delete(regions);
        return n;
}

static inline double rc_region_size(const struct gmem_test_daemon *d, const char *name) {
        cJSON *regions = rc_alive(d);
        const cJSON *r = rc_find_region(regions, name);
        double size = r ? rc_num(r, "size") : -1;
        cJSON_Delete(regions);
        return size;
}

/* ---- other identities ------------------------------------------------------------------------- */

static inline void rc_send_fd_or_die(int chan, int fd) {
        char byte = 'f';
        if (rc_send_raw(chan, &byte, 1, &fd, 1) < 0)
                _exit(3);
}

/* A connection to path made by a forked child running as uid/gid with the supplementary groups
 * given (it drops every privilege first, then connects and hands the socket back). gmemd reads
 * SO_PEERCRED / SO_PEERGROUPS at connect time, so the connection is that identity's for good,
 * while this (root) process drives it and makes the assertions. */
static inline int rc_connect_as_at(const char *file, int line, const char *path, uid_t uid, gid_t gid, const gid_t *groups,
                                   unsigned n_groups) {
        int sp[2], fd = -1, fds[1] = { -1 }, status;
        unsigned n_fds = 0;
        pid_t pid;
        char byte;
        struct iovec iov = { &byte, 1 };
        union {
                char buf[CMSG_SPACE(sizeof(int))];
                struct cmsghdr align;
        } cbuf;
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf.buf, .msg_controllen = sizeof(cbuf) };

        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0)
                RC_FAIL_AT(file, line, "socketpair: %s", strerror(errno));
        pid = fork();
        if (pid < 0)
                RC_FAIL_AT(file, line, "fork: %s", strerror(errno));
        if (pid == 0) {
                int s;
                close(sp[0]);
                if (setgroups(n_groups, groups) < 0 || setresgid(gid, gid, gid) < 0 || setresuid(uid, uid, uid) < 0)
                        _exit(1);
                if (geteuid() != uid || getegid() != gid)
                        _exit(2);
                s = rc_try_connect(path);
                if (s < 0)
                        _exit(4);
                rc_send_fd_or_die(sp[1], s);
                _exit(0);
        }
        close(sp[1]);
        if (recvmsg(sp[0], &mh, MSG_CMSG_CLOEXEC) == 1)
                for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm))
                        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
                                memcpy(fds, CMSG_DATA(cm), sizeof(int));
                                n_fds = 1;
                        }
        close(sp[0]);
        if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
                RC_FAIL_AT(file, line, "connecting as uid %d gid %d failed in the child: status 0x%x", (int) uid, (int) gid,
                           status);
        if (n_fds != 1)
                RC_FAIL_AT(file, line, "the child connected as uid %d but sent no socket back", (int) uid);
        fd = fds[0];
        return fd;
}
#define rc_connect_as(path, uid, gid, groups, n_groups) \
        rc_connect_as_at(__FILE__, __LINE__, (path), (uid), (gid), (groups), (n_groups))

/* connect as uid (gid = uid, no other groups) + hello */
static inline int rc_session_as_at(const char *file, int line, const char *path, uid_t uid) {
        gid_t g = (gid_t) uid;
        int s = rc_connect_as_at(file, line, path, uid, g, &g, 1);
        rc_hello_at(file, line, s);
        return s;
}
#define rc_session_as(path, uid) rc_session_as_at(__FILE__, __LINE__, (path), (uid))

/* ---- data ---------------------------------------------------------------------------------------- */

/* FNV-1a over an fd's first len bytes */
static inline uint64_t rc_hash_fd(int fd, uint64_t len) {
        static uint8_t buf[1 << 16];
        uint64_t h = 0xcbf29ce484222325ull, off = 0;

        while (off < len) {
                ssize_t n = pread(fd, buf, MIN(sizeof(buf), len - off), (off_t) off);
                ck_assert_msg(n > 0, "pread for hash: %s", n < 0 ? strerror(errno) : "short file");
                for (ssize_t i = 0; i < n; i++)
                        h = (h ^ buf[i]) * 0x100000001b3ull;
                off += (uint64_t) n;
        }
        return h;
}

static inline uint64_t rc_hash_buf(const void *p, uint64_t len) {
        const uint8_t *b = p;
        uint64_t h = 0xcbf29ce484222325ull;
        for (uint64_t i = 0; i < len; i++)
                h = (h ^ b[i]) * 0x100000001b3ull;
        return h;
}

/* dump region `name` (size bytes) over s into a temporary file and hash it */
static inline uint64_t rc_dump_hash_at(const char *file, int line, int s, const char *name, uint64_t size) {
        int out = gmem_test_temp_file();
        cJSON *r = rc_call_at(file, line, s, &out, 1, NULL, "{\"op\":\"dump\",\"name\":\"%s\"}", name);
        uint64_t h;

        rc_expect_ok_at(file, line, r, false);
        h = rc_hash_fd(out, size);
        close(out);
        return h;
}
#define rc_dump_hash(s, name, size) rc_dump_hash_at(__FILE__, __LINE__, (s), (name), (size))
