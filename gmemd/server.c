/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The socket: listening, connections, framing (one JSON object per SEQPACKET message, fds as
 * SCM_RIGHTS) and per-connection output queues. */
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>

#include "error.h"
#include "errno-name.h"
#include "fd-pass.h"
#include "json-util.h"
#include "log.h"
#include "server.h"
#include "session.h"

/* Work one source gets before the loop turns to the others: a client that floods the socket with
 * requests (or connections) delays everyone else by at most this many. Small: the loop's own cost
 * per turn (one epoll_wait) is far below one request's. */
#define READS_PER_WAKEUP 4
#define ACCEPTS_PER_WAKEUP 4

static int mkdir_parents(const char *path, mode_t mode) {
        _cleanup_free_ char *p = strdup(path);
        char *dir;

        if (!p)
                return -ENOMEM;
        dir = dirname(p);
        for (char *s = dir + 1; *s; s++)
                if (*s == '/') {
                        *s = 0;
                        if (mkdir(dir, mode) < 0 && errno != EEXIST)
                                return negative_errno();
                        *s = '/';
                }
        if (mkdir(dir, mode) < 0 && errno != EEXIST)
                return negative_errno();
        return 0;
}

/* "@name" is the abstract namespace, as for the client: no file, nothing to create or remove. */
static bool is_abstract(const char *path) {
        return path[0] == '@';
}

static int sockaddr_for(const char *path, struct sockaddr_un *sa, socklen_t *ret_len) {
        size_t n = strlen(path);

        *sa = (struct sockaddr_un) { .sun_family = AF_UNIX };
        if (n >= sizeof(sa->sun_path))
                return gmem_error(-ENAMETOOLONG, "socket path '%s' is longer than %zu bytes", path, sizeof(sa->sun_path) - 1);
        memcpy(sa->sun_path, path, n);
        if (is_abstract(path))
                sa->sun_path[0] = 0;
        *ret_len = (socklen_t) (offsetof(struct sockaddr_un, sun_path) + n + (is_abstract(path) ? 0 : 1));
        return 0;
}

/* A socket file left by a dead daemon is replaced; one a live daemon answers on is not. */
static int check_existing(const char *path, const struct sockaddr_un *sa, socklen_t sa_len) {
        _cleanup_close_ int probe = -1;
        struct stat st;

        if (is_abstract(path))
                return 0; /* bind() itself refuses a name in use */
        if (lstat(path, &st) < 0)
                return errno == ENOENT ? 0 : gmem_error(negative_errno(), "stat '%s'", path);
        if (!S_ISSOCK(st.st_mode))
                return gmem_error(-EEXIST, "'%s' exists and is not a socket", path);
        probe = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        if (probe < 0)
                return gmem_error(negative_errno(), "socket");
        if (connect(probe, (const struct sockaddr *) sa, sa_len) == 0)
                return gmem_error(-EADDRINUSE, "another gmemd is listening on '%s'", path);
        if (errno != ECONNREFUSED)
                return gmem_error(negative_errno(), "probe '%s'", path);
        log_notice("replacing stale socket '%s'", path);
        if (unlink(path) < 0)
                return gmem_error(negative_errno(), "unlink stale socket '%s'", path);
        return 0;
}

static void conn_close(struct conn *c);

static void on_close(evutil_socket_t fd _unused_, short what _unused_, void *userdata) {
        conn_close(userdata);
}

static void outmsg_free(struct outmsg *m);

/* Whatever was waiting to be sent is dropped, with the fds it carried. */
static void conn_drop_queue(struct conn *c) {
        while (c->out_head) {
                struct outmsg *m = c->out_head;
                c->out_head = m->next;
                outmsg_free(m);
        }
        c->out_tail = NULL;
        c->n_out = c->n_out_bytes = c->n_out_fds = 0;
}

/* A send failed or the client stopped reading. Closing here could free regions and connections
 * under the caller (a broadcast loop, a reply being built), so stop sending and let the loop close
 * it on its next turn. */
static void conn_fail(struct conn *c) {
        if (c->broken || c->closed)
                return;
        c->broken = true;
        event_del(c->ev_read);
        event_del(c->ev_write);
        event_del(c->ev_retry);
        conn_drop_queue(c);
        event_active(c->ev_close, 0, 0);
}

static void on_read(evutil_socket_t fd, short what, void *userdata);
static void on_write(evutil_socket_t fd, short what, void *userdata);
static void on_retry(evutil_socket_t fd, short what, void *userdata);

/* The peer's supplementary groups, however many: the kernel says how much room it needs. */
static int peer_groups(int fd, gid_t **ret_groups, unsigned *ret_n) {
        socklen_t len = 64 * sizeof(gid_t);

        for (unsigned tries = 0; tries < 4; tries++) {
                _cleanup_free_ gid_t *g = malloc(MAX(len, (socklen_t) sizeof(gid_t)));
                if (!g)
                        return gmem_error(-ENOMEM, "SO_PEERGROUPS: %u bytes", (unsigned) len);
                if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, g, &len) == 0) {
                        *ret_n = (unsigned) (len / sizeof(gid_t));
                        *ret_groups = TAKE_PTR(g);
                        return 0;
                }
                if (errno == ENOPROTOOPT) { /* a kernel before 4.13: the primary group only */
                        *ret_n = 0;
                        *ret_groups = NULL;
                        return 0;
                }
                if (errno != ERANGE)
                        return gmem_error(negative_errno(), "getsockopt(SO_PEERGROUPS)");
                /* len now holds what the list needs */
        }
        return gmem_error(-ERANGE, "getsockopt(SO_PEERGROUPS): the group list keeps growing");
}

#define ACCEPT_PAUSE_MS 100

static void on_accept_pause_end(evutil_socket_t fd _unused_, short what _unused_, void *userdata) {
        struct server *srv = userdata;
        (void) event_add(srv->ev_listen, NULL);
}

static void on_hello_timeout(evutil_socket_t fd _unused_, short what _unused_, void *userdata) {
        struct conn *c = userdata;

        if (c->hello || c->closed)
                return;
        log_warning("client %" PRIu64 " (pid %d uid %u) said no hello within %" PRIu64 " ms, disconnecting", c->serial,
                    c->peer->pid, (unsigned) c->peer->uid, c->d->config.limits.hello_timeout_ms);
        conn_fail(c);
}

static void conn_free(struct conn *c) {
        if (c->ev_hello)
                event_free(c->ev_hello);
        if (c->ev_retry)
                event_free(c->ev_retry);
        if (c->ev_read)
                event_free(c->ev_read);
        if (c->ev_write)
                event_free(c->ev_write);
        if (c->ev_close)
                event_free(c->ev_close);
        if (c->session) {
                session_end(c->session);
                session_unref(c->session);
        }
        free(c);
}

/* A connection for fd (taken) from a peer with cred; NULL if the daemon could not make one. */
static struct conn *conn_new(struct server *srv, int fd, const struct ucred *cred) {
        struct daemon *d = srv->d;
        const struct timeval hello_timeout = { (time_t) (d->config.limits.hello_timeout_ms / 1000),
                                               (suseconds_t) (d->config.limits.hello_timeout_ms % 1000) * 1000 };
        struct peer p = { .uid = cred->uid, .gid = cred->gid, .pid = cred->pid };
        _cleanup_free_ gid_t *groups = NULL;
        int sndbuf = 0;
        struct conn *c;

        if (peer_groups(fd, &groups, &p.n_groups) < 0) {
                log_warning("SO_PEERGROUPS: %s", gmem_last_error());
                close(fd);
                return NULL;
        }
        p.groups = groups;
        c = calloc(1, sizeof(*c));
        if (!c) {
                close(fd);
                return NULL;
        }
        *c = (struct conn) { .srv = srv, .d = d, .fd = fd, .refs = 1, .serial = ++srv->conn_serial };
        if (session_new(d, &p, "socket", false, &c->session) < 0) {
                close(fd);
                conn_free(c);
                return NULL;
        }
        c->peer = &c->session->peer;
        /* the kernel's default send buffer: what a connection may queue in the kernel is what any
         * process's may; one larger reply raises it for itself (flush) */
        if (getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, &(socklen_t) { sizeof(sndbuf) }) < 0)
                sndbuf = 0;
        c->sndbuf = sndbuf;
        c->ev_read = event_new(d->base, fd, EV_READ | EV_PERSIST, on_read, c);
        c->ev_write = event_new(d->base, fd, EV_WRITE, on_write, c);
        c->ev_close = event_new(d->base, -1, 0, on_close, c);
        c->ev_hello = evtimer_new(d->base, on_hello_timeout, c);
        c->ev_retry = evtimer_new(d->base, on_retry, c);
        if (!c->ev_read || !c->ev_write || !c->ev_close || !c->ev_hello || !c->ev_retry || event_add(c->ev_read, NULL) < 0 ||
            evtimer_add(c->ev_hello, &hello_timeout) < 0) {
                close(fd);
                conn_free(c);
                return NULL;
        }
        return c;
}

static void on_accept(evutil_socket_t lfd, short what _unused_, void *userdata) {
        struct server *srv = userdata;

        for (int i = 0; i < ACCEPTS_PER_WAKEUP; i++) {
                struct ucred cred;
                socklen_t len = sizeof(cred);
                const char *full;
                struct conn *c;
                int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

                if (fd < 0) {
                        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                                /* the connection stays in the backlog and the socket stays readable:
                                 * accepting again at once would spin; wait for fds to come back */
                                log_warning("accept: %m: not accepting for %d ms", ACCEPT_PAUSE_MS);
                                struct timeval pause = { 0, ACCEPT_PAUSE_MS * 1000 };
                                event_del(srv->ev_listen);
                                evtimer_add(srv->ev_accept_pause, &pause);
                        } else if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                                log_warning("accept: %m");
                        return;
                }
                if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
                        log_warning("SO_PEERCRED: %m");
                        close(fd);
                        continue;
                }
                if ((full = session_refused(srv->d, cred.uid))) {
                        static const char busy[] = "{\"id\":null,\"ok\":false,\"error\":{\"code\":\"EUSERS\","
                                                   "\"message\":\"too many clients connected\"}}";
                        char drain[256];
                        (void) send(fd, busy, sizeof(busy) - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
                        /* what the client sent before reading the answer (its hello) is taken first:
                         * a close with unread data would reset the connection, and the client's next
                         * read would say so instead of giving it the answer */
                        (void) shutdown(fd, SHUT_WR);
                        for (int n = 0; n < 8 && recv(fd, drain, sizeof(drain), MSG_DONTWAIT | MSG_TRUNC) > 0; n++)
                                ;
                        close(fd);
                        log_warning("refused a client of uid %u: %s", (unsigned) cred.uid, full);
                        continue;
                }
                c = conn_new(srv, fd, &cred);
                if (!c)
                        continue;
                LIST_PREPEND(srv->conns, c);
                srv->n_conns++;
                log_debug("client %" PRIu64 " connected: pid %d uid %d", c->serial, c->peer->pid, c->peer->uid);
        }
}

static void close_fds(int *fds, unsigned n) {
        for (unsigned i = 0; i < n; i++)
                if (fds[i] >= 0)
                        close(fds[i]);
}

/* One JSON object and nothing else, or NULL and why. (Control bytes and NUL escapes in strings
 * are refused after parsing, so the reply can carry the request's id.) */
static cJSON *parse_request(const char *buf, size_t n, const char **ret_err) {
        const char *end = NULL;
        cJSON *req;

        req = cJSON_ParseWithLengthOpts(buf, n, &end, false);
        if (!cJSON_IsObject(req)) {
                cJSON_Delete(req);
                *ret_err = "not a JSON object";
                return NULL;
        }
        for (; end && end < buf + n; end++)
                if (*end != ' ' && *end != '\t' && *end != '\n' && *end != '\r' && *end != 0) {
                        cJSON_Delete(req);
                        *ret_err = "trailing data after the JSON object";
                        return NULL;
                }
        return req;
}

/* {"name":"a","name":"b"}: which one did the client mean? Neither is guessed. NULL, or why not. */
static const char *duplicate_member(const char *buf, size_t n) {
        static char err[128];
        char key[64];
        unsigned line;
        int k = json_find_duplicate_key(buf, n, key, sizeof(key), &line);

        if (k == 0)
                return NULL;
        if (k == -E2BIG)
                return "a request nested more than 64 levels deep";
        if (k < 0)
                return "out of memory reading the request";
        snprintf(err, sizeof(err), "a member is given twice in one object: '%s'", key);
        return err;
}

static void read_one(struct conn *c, char *buf, size_t bufsize, bool *ret_again) {
        struct daemon *d = c->d;
        unsigned max_fds = (unsigned) d->config.limits.max_fds_per_message;
        char cbuf[CMSG_SPACE(sizeof(int) * 253)];
        struct iovec iov = { buf, bufsize };
        struct msghdr mh = {
                .msg_iov = &iov,
                .msg_iovlen = 1,
                .msg_control = cbuf,
                .msg_controllen = CMSG_SPACE(sizeof(int) * max_fds),
        };
        int fds[253];
        unsigned n_fds = 0;
        const char *err = NULL;
        ssize_t n;
        cJSON *req;

        *ret_again = false;
        n = recvmsg(c->fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        if (n < 0) {
                if (errno == EAGAIN || errno == EINTR)
                        return;
                log_debug("client %" PRIu64 ": recvmsg: %m", c->serial);
                conn_close(c);
                return;
        }
        if (n == 0 && !(mh.msg_flags & MSG_TRUNC) && mh.msg_controllen == 0) {
                conn_close(c); /* orderly shutdown (SEQPACKET has no empty messages from our clients) */
                return;
        }
        *ret_again = true;

        for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm))
                if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
                        unsigned k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                        for (unsigned i = 0; i < k && n_fds < ELEMENTSOF(fds); i++)
                                memcpy(&fds[n_fds++], CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
                }
        if (mh.msg_flags & MSG_TRUNC) {
                char msg[128];
                close_fds(fds, n_fds);
                snprintf(msg, sizeof(msg), "message larger than %" PRIu64 " bytes", d->config.limits.max_message_bytes);
                conn_reply_error(c, NULL, -EMSGSIZE, msg);
                return;
        }
        req = parse_request(buf, (size_t) n, &err);
        if (!req) {
                close_fds(fds, n_fds);
                conn_reply_error(c, NULL, -EINVAL, err);
                return;
        }
        if ((err = proto_check_strings(buf, (size_t) n)) || (err = duplicate_member(buf, (size_t) n))) {
                close_fds(fds, n_fds);
                conn_reply_error(c, cJSON_GetObjectItemCaseSensitive(req, "id"), -EINVAL, err);
        } else if ((mh.msg_flags & MSG_CTRUNC) || n_fds > max_fds) {
                /* the kernel closed the fds that did not fit; close the ones that did */
                char msg[128];
                close_fds(fds, n_fds);
                snprintf(msg, sizeof(msg), "more than %u file descriptors in one message", max_fds);
                conn_reply_error(c, cJSON_GetObjectItemCaseSensitive(req, "id"), -EINVAL, msg);
        } else
                dispatch(c, req, fds, n_fds);
        cJSON_Delete(req);
}

static void on_read(evutil_socket_t fd _unused_, short what _unused_, void *userdata) {
        struct conn *c = userdata;
        size_t bufsize = c->d->config.limits.max_message_bytes;
        _cleanup_free_ char *buf = malloc(bufsize);
        bool again = true;

        if (!buf)
                return;
        conn_ref(c);
        /* a bounded number per wakeup: one busy client does not starve the others */
        for (int i = 0; i < READS_PER_WAKEUP && again && !c->closed && !c->broken; i++) {
                if (c->out_head) {
                        /* Backpressure: a client that does not read its replies gets no more read
                         * from it until they are out. It then costs the daemon one reply's worth
                         * (its requests wait in its own socket buffer), and nothing is lost. */
                        event_del(c->ev_read);
                        c->read_paused = true;
                        break;
                }
                read_one(c, buf, bufsize, &again);
        }
        conn_unref(c);
}

/* 0 sent, -EAGAIN to retry later, other -errno: the connection is broken */
static int send_one(struct conn *c, const struct outmsg *m) {
        for (;;) {
                if (send_with_fds(c->fd, m->text, m->len, &m->fd, m->fd >= 0 ? 1 : 0, MSG_DONTWAIT | MSG_NOSIGNAL) >= 0)
                        return 0;
                if (errno == EINTR)
                        continue;
                return negative_errno();
        }
}

static void outmsg_free(struct outmsg *m) {
        if (m->fd >= 0)
                close(m->fd);
        free(m->text);
        free(m);
}

/* ---- what the kernel holds for a connection
 *
 * Every fd gmemd sends stays "in flight" until its receiver takes it, and the kernel holds all
 * fds in flight that processes of gmemd's user (root: all of root's processes) sent to at most
 * gmemd's RLIMIT_NOFILE, unless gmemd has CAP_SYS_RESOURCE — the shipped unit does not. A client
 * that asks for fd after fd and never reads would use that up for everyone. So gmemd counts what
 * it sent each connection since its queue was last seen empty (SIOCOUTQ 0: everything read),
 * holds a uid to its share of a budget far below the limit, all unprivileged uids to half of it,
 * and keeps the rest for root; a message over budget waits in the daemon's queue (the client's
 * further requests wait unread behind it) and is tried again shortly. */

#define RETRY_MS 20         /* a message held back */
#define RECHECK_MS 200      /* only counts to forget, or a buffer to lower */

static void fd_budget(uint64_t *ret_total, uint64_t *ret_per_uid) {
        static uint64_t total;
        if (!total) {
                struct rlimit rl;
                uint64_t lim = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY ? rl.rlim_cur : 65536;
                total = MAX(UINT64_C(16), MIN(lim, UINT64_C(1) << 20) / 4);
        }
        *ret_total = total;
        *ret_per_uid = MAX(UINT64_C(4), MIN(total / 8, UINT64_C(256)));
}

static bool queue_empty(int fd) {
        int queued = 0;
        return ioctl(fd, SIOCOUTQ, &queued) == 0 && queued == 0;
}

/* fds sent c that may still be in flight: none once its queue in the kernel is empty */
static uint64_t fds_in_flight(struct conn *c) {
        if (c->fds_sent && queue_empty(c->fd))
                c->fds_sent = 0;
        return c->fds_sent;
}

/* Every connection's count brought up to date (one SIOCOUTQ each), at most every few ms: a loop
 * that retries held messages asks this often, and must not cost a system call per pair. */
static void inflight_refresh(struct server *srv) {
        uint64_t now = mono_usec();

        if (now - srv->inflight_checked_usec < 5000)
                return;
        srv->inflight_checked_usec = now;
        for (struct conn *o = srv->conns; o; o = o->next)
                if (!o->closed)
                        (void) fds_in_flight(o);
}

static bool may_send_fd(struct conn *c) {
        uint64_t total, per_uid, all = 0, unprivileged = 0, mine = 0;

        fd_budget(&total, &per_uid);
        inflight_refresh(c->srv);
        for (struct conn *o = c->srv->conns; o; o = o->next) {
                uint64_t n = o->closed ? 0 : o->fds_sent;
                all += n;
                unprivileged += o->peer->uid != 0 ? n : 0;
                mine += o->peer->uid == c->peer->uid ? n : 0;
        }
        for (size_t i = 0; i < c->srv->n_lingering; i++) {
                const struct lingering *l = &c->srv->lingering[i];
                all += l->fds;
                unprivileged += l->uid != 0 ? l->fds : 0;
                mine += l->uid == c->peer->uid ? l->fds : 0;
        }
        if (c->peer->uid == 0)
                return all < total;
        return mine < per_uid && unprivileged < total / 2;
}

/* the lingering sockets whose peers have read (or closed): gone */
static void on_lingering(evutil_socket_t fd _unused_, short what _unused_, void *userdata) {
        struct server *srv = userdata;
        const struct timeval t = { 0, 200 * 1000 };

        for (size_t i = 0; i < srv->n_lingering;)
                if (queue_empty(srv->lingering[i].fd)) {
                        close(srv->lingering[i].fd);
                        srv->lingering[i] = srv->lingering[--srv->n_lingering];
                } else
                        i++;
        if (srv->n_lingering)
                evtimer_add(srv->ev_lingering, &t);
}

/* c is closing: its socket kept while fds we sent it are unread (see struct lingering); true if so */
static bool linger(struct conn *c) {
        struct server *srv = c->srv;
        const struct timeval t = { 0, 200 * 1000 };

        if (!c->fds_sent || queue_empty(c->fd) || !srv->ev_lingering)
                return false;
        if (srv->n_lingering == srv->cap_lingering) {
                size_t cap = srv->cap_lingering ? 2 * srv->cap_lingering : 16;
                struct lingering *v = reallocarray(srv->lingering, cap, sizeof(*v));
                if (!v)
                        return false;
                srv->lingering = v;
                srv->cap_lingering = cap;
        }
        srv->lingering[srv->n_lingering++] = (struct lingering) { .fd = c->fd, .uid = c->peer->uid, .fds = c->fds_sent };
        if (!evtimer_pending(srv->ev_lingering, NULL))
                evtimer_add(srv->ev_lingering, &t);
        return true;
}

/* The send buffer back to the kernel's default once what a larger reply needed is read. */
static void sndbuf_lower(struct conn *c) {
        int half = c->sndbuf / 2;
        if (c->sndbuf_raised && half > 0 && queue_empty(c->fd)) {
                (void) setsockopt(c->fd, SOL_SOCKET, SO_SNDBUF, &half, sizeof(half));
                c->sndbuf_raised = false;
        }
}

/* A reply larger than the send buffer: the buffer raised for it (the kernel doubles what it is
 * given); without CAP_NET_ADMIN, only up to net.core.wmem_max. */
static bool sndbuf_raise(struct conn *c, size_t len) {
        int want = (int) MIN(len + 65536, (size_t) INT32_MAX / 2);
        if (setsockopt(c->fd, SOL_SOCKET, SO_SNDBUFFORCE, &want, sizeof(want)) < 0 &&
            setsockopt(c->fd, SOL_SOCKET, SO_SNDBUF, &want, sizeof(want)) < 0)
                return false;
        c->sndbuf_raised = true;
        return true;
}

static void retry_later(struct conn *c, int ms) {
        const struct timeval t = { 0, ms * 1000 };
        if (!evtimer_pending(c->ev_retry, NULL))
                evtimer_add(c->ev_retry, &t);
}

static void flush(struct conn *c) {
        while (c->out_head) {
                struct outmsg *m = c->out_head;
                int k;

                if (m->fd >= 0 && !may_send_fd(c)) {
                        retry_later(c, RETRY_MS);
                        return;
                }
                k = send_one(c, m);
                if (k == -EMSGSIZE && !m->raised) {
                        m->raised = true;
                        if (sndbuf_raise(c, m->len))
                                continue;
                }
                if (k == -EAGAIN) {
                        event_add(c->ev_write, NULL);
                        return;
                }
                if (k == -ETOOMANYREFS) { /* the kernel's limit on fds in flight, shared with all of root */
                        retry_later(c, RETRY_MS);
                        return;
                }
                if (k == -EMSGSIZE) {
                        /* a reply too large for a datagram: say so instead of dropping it silently */
                        log_warning("client %" PRIu64 ": a %zu-byte message exceeds the socket's limit", c->serial, m->len);
                        c->n_out_bytes -= m->len;
                        free(m->text);
                        m->text = strdup("{\"id\":null,\"ok\":false,\"error\":{\"code\":\"EMSGSIZE\","
                                         "\"message\":\"reply too large for one message\"}}");
                        m->len = m->text ? strlen(m->text) : 0;
                        c->n_out_bytes += m->len;
                        if (m->text)
                                continue;
                }
                if (k < 0 && k != -EMSGSIZE) {
                        log_debug("client %" PRIu64 ": send: %s", c->serial, strerror(-k));
                        conn_fail(c);
                        return;
                }
                c->fds_sent += m->fd >= 0;
                c->out_head = m->next;
                if (!c->out_head)
                        c->out_tail = NULL;
                c->n_out--;
                c->n_out_bytes -= m->len;
                c->n_out_fds -= m->fd >= 0;
                outmsg_free(m);
        }
        sndbuf_lower(c);
        if (c->sndbuf_raised || c->fds_sent)
                retry_later(c, RECHECK_MS); /* to lower the buffer, and forget the fds, once they are read */
        if (c->read_paused && !c->closed && !c->broken) {
                /* all out: its waiting requests are read again */
                c->read_paused = false;
                if (event_add(c->ev_read, NULL) == 0)
                        event_active(c->ev_read, EV_READ, 0);
        }
}

static void on_retry(evutil_socket_t fd _unused_, short what _unused_, void *userdata) {
        struct conn *c = conn_ref(userdata);
        if (!c->closed && !c->broken) {
                if (c->out_head)
                        flush(c);
                else {
                        sndbuf_lower(c);
                        if (fds_in_flight(c) || c->sndbuf_raised)
                                retry_later(c, RECHECK_MS);
                }
        }
        conn_unref(c);
}

static void on_write(evutil_socket_t fd _unused_, short what _unused_, void *userdata) {
        struct conn *c = conn_ref(userdata);
        flush(c);
        conn_unref(c);
}

void conn_send(struct conn *c, char *text, int fd) {
        struct outmsg *m;

        if (!text || c->closed || c->broken) {
                free(text);
                if (fd >= 0)
                        close(fd);
                return;
        }
        m = calloc(1, sizeof(*m));
        if (!m) {
                free(text);
                if (fd >= 0)
                        close(fd);
                return;
        }
        *m = (struct outmsg) { .text = text, .len = strlen(text), .fd = fd };
        if (c->out_tail)
                c->out_tail->next = m;
        else
                c->out_head = m;
        c->out_tail = m;
        c->n_out_bytes += m->len;
        c->n_out_fds += fd >= 0;
        if (++c->n_out > c->d->config.limits.max_queued_messages || c->n_out_bytes > c->d->config.limits.max_queued_bytes ||
            c->n_out_fds > c->d->config.limits.max_queued_fds) {
                /* bounded by count, bytes and fds alike: a reader that never reads costs the daemon
                 * no more than this, and no fd it could run out of */
                log_warning("client %" PRIu64 " (pid %d) does not read its socket: %" PRIu64 " messages, %" PRIu64
                            " bytes and %" PRIu64 " fds waiting, disconnecting", c->serial, c->peer->pid, c->n_out,
                            c->n_out_bytes, c->n_out_fds);
                conn_fail(c);
                return;
        }
        if (c->out_head == m)
                flush(c);
}

void conn_send_droppable(struct conn *c, char *text) {
        struct outmsg m;
        int k;

        if (!text || c->closed || c->broken || c->out_head) { /* behind what waits: dropped */
                free(text);
                return;
        }
        m = (struct outmsg) { .text = text, .len = strlen(text), .fd = -1 };
        k = send_one(c, &m);
        free(text);
        if (k < 0 && k != -EAGAIN && k != -ENOBUFS && k != -EMSGSIZE) {
                log_debug("client %" PRIu64 ": send: %s", c->serial, strerror(-k));
                conn_fail(c);
        }
}

void conn_send_json(struct conn *c, cJSON *msg, int fd) {
        char *text = msg ? cJSON_PrintUnformatted(msg) : NULL;
        cJSON_Delete(msg);
        conn_send(c, text, fd);
}

static cJSON *reply_base(const cJSON *req_id, bool ok) {
        cJSON *r = cJSON_CreateObject();
        if (!r)
                return NULL;
        cJSON_AddItemToObject(r, "id", proto_id_copy(req_id));
        cJSON_AddBoolToObject(r, "ok", ok);
        return r;
}

void conn_reply_error(struct conn *c, const cJSON *req_id, int err, const char *message) {
        cJSON *r = reply_base(req_id, false), *e;
        char line[512];

        if (!r)
                return;
        /* one line, whatever a client put into the names it quoted back */
        snprintf(line, sizeof(line), "%s", message && *message ? message : strerror(err < 0 ? -err : err));
        for (char *p = line; *p; p++)
                if ((unsigned char) *p < 0x20 || *p == 0x7f)
                        *p = '?';
        e = cJSON_AddObjectToObject(r, "error");
        cJSON_AddStringToObject(e, "code", errno_to_name(err));
        cJSON_AddStringToObject(e, "message", line);
        conn_send_json(c, r, -1);
}

void conn_reply_ok(struct conn *c, const cJSON *req_id, cJSON *members, int fd) {
        cJSON *r = reply_base(req_id, true);

        if (!r) {
                cJSON_Delete(members);
                if (fd >= 0)
                        close(fd);
                return;
        }
        if (members) {
                cJSON *item = members->child;
                while (item) {
                        cJSON *next = item->next;
                        cJSON_AddItemToObject(r, item->string, cJSON_DetachItemViaPointer(members, item));
                        item = next;
                }
                cJSON_Delete(members);
        }
        conn_send_json(c, r, fd);
}

static void conn_close(struct conn *c) {
        struct server *srv = c->srv;

        if (c->closed)
                return;
        c->closed = true;
        log_debug("client %" PRIu64 " (pid %d) disconnected", c->serial, c->peer->pid);
        event_del(c->ev_read);
        event_del(c->ev_write);
        event_del(c->ev_close);
        event_del(c->ev_hello);
        event_del(c->ev_retry);
        if (!linger(c))
                close(c->fd);
        c->fd = -1;
        conn_drop_queue(c);
        LIST_REMOVE(srv->conns, c);
        srv->n_conns--;
        /* a client that vanishes mid-job: its jobs are cancelled, and its regions follow their policy */
        session_end(c->session);
        conn_unref(c);
}

struct conn *conn_ref(struct conn *c) {
        c->refs++;
        return c;
}

void conn_unref(struct conn *c) {
        if (!c || --c->refs > 0)
                return;
        conn_free(c);
}

/* Accepting on fd, and the pause it takes when the daemon is out of fds. */
static int listen_events(struct server *srv, int fd) {
        struct daemon *d = srv->d;

        srv->ev_listen = event_new(d->base, fd, EV_READ | EV_PERSIST, on_accept, srv);
        srv->ev_accept_pause = evtimer_new(d->base, on_accept_pause_end, srv);
        srv->ev_lingering = evtimer_new(d->base, on_lingering, srv);
        if (!srv->ev_listen || !srv->ev_accept_pause || !srv->ev_lingering || event_add(srv->ev_listen, NULL) < 0)
                return gmem_error(-ENOMEM, "listen event");
        return ops_watch_start(srv);
}

static struct server *server_new(struct daemon *d, const char *path) {
        struct server *srv = calloc(1, sizeof(*srv));

        if (!srv)
                return NULL;
        srv->d = d;
        srv->listen_fd = -1;
        if (path && !(srv->socket_path = strdup(path))) {
                free(srv);
                return NULL;
        }
        return srv;
}

static int do_listen(struct server *srv) {
        const char *path = srv->socket_path;
        bool abstract = is_abstract(path);
        struct sockaddr_un sa;
        socklen_t sa_len = 0;
        _cleanup_close_ int fd = -1;
        int k;

        k = sockaddr_for(path, &sa, &sa_len);
        if (k < 0)
                return k;
        if (!abstract && (k = mkdir_parents(path, 0755)) < 0)
                return gmem_error(k, "create the directory of '%s'", path);
        k = check_existing(path, &sa, sa_len);
        if (k < 0)
                return k;
        fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return gmem_error(negative_errno(), "socket");
        if (bind(fd, (struct sockaddr *) &sa, sa_len) < 0)
                return gmem_error(negative_errno(), errno == EADDRINUSE ? "bind '%s': another gmemd may be listening there" :
                                  "bind '%s'", path);
        srv->listen_fd_owned = !abstract;
        if (!abstract && chmod(path, srv->d->config.socket_mode) < 0)
                return gmem_error(negative_errno(), "chmod '%s'", path);
        if (listen(fd, 128) < 0)
                return gmem_error(negative_errno(), "listen '%s'", path);
        srv->listen_fd = TAKE_FD(fd);
        return listen_events(srv, srv->listen_fd);
}

int server_listen(struct daemon *d, const char *path, struct server **ret) {
        struct server *srv = server_new(d, path);
        int k;

        if (!srv)
                return gmem_error(-ENOMEM, "socket server");
        k = do_listen(srv);
        if (k < 0) {
                server_free(srv);
                return k;
        }
        *ret = srv;
        return 0;
}

static int adopt(struct server *srv, int fd) {
        struct sockaddr_un sa = {};
        socklen_t len = sizeof(int);
        int type = 0, listening = 0;

        if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0 || type != SOCK_SEQPACKET)
                return gmem_error(-EINVAL, "the socket passed in (fd %d) is not SOCK_SEQPACKET: ListenSequentialPacket= is needed",
                                  fd);
        len = sizeof(int);
        if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) < 0 || !listening)
                return gmem_error(-EINVAL, "the socket passed in (fd %d) is not listening", fd);
        if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0 || fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
                return gmem_error(negative_errno(), "fcntl passed socket");
        len = sizeof(sa);
        if (getsockname(fd, (struct sockaddr *) &sa, &len) == 0 && sa.sun_path[0]) {
                free(srv->socket_path);
                srv->socket_path = strndup(sa.sun_path, sizeof(sa.sun_path));
        }
        srv->listen_fd_owned = false; /* systemd's: it stays bound across our restarts */
        srv->listen_fd = fd;
        return listen_events(srv, fd);
}

int server_adopt_listen_fd(struct daemon *d, int fd, struct server **ret) {
        struct server *srv = server_new(d, NULL);
        int k;

        if (!srv)
                return gmem_error(-ENOMEM, "socket server");
        k = adopt(srv, fd);
        if (k < 0) {
                srv->listen_fd = -1; /* still systemd's */
                server_free(srv);
                return k;
        }
        *ret = srv;
        return 0;
}

struct server *server_free(struct server *srv) {
        if (!srv)
                return NULL;
        /* connections closing now is the daemon stopping, not their clients leaving: it must not
         * release their regions (under systemd they wait in the fd store for the next gmemd) */
        srv->d->stopping = true;
        ops_watch_stop(srv);
        if (srv->ev_listen)
                event_free(srv->ev_listen);
        if (srv->ev_accept_pause)
                event_free(srv->ev_accept_pause);
        if (srv->listen_fd >= 0)
                close(srv->listen_fd);
        if (srv->listen_fd_owned && srv->socket_path)
                unlink(srv->socket_path);
        while (srv->conns)
                conn_close(srv->conns);
        if (srv->ev_lingering)
                event_free(srv->ev_lingering);
        for (size_t i = 0; i < srv->n_lingering; i++)
                close(srv->lingering[i].fd);
        free(srv->lingering);
        free(srv->socket_path);
        free(srv);
        return NULL;
}
