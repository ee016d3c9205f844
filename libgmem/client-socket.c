/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The client's socket: where it is, connecting, and one datagram (with its fds) out and in. */
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>

#include "client.h"
#include "error.h"
#include "fd-pass.h"

#define ROOT_SOCKET "/run/gmemd/gmemd.sock"
#define USER_SOCKET "gmemd/gmemd.sock"

_public_ int gmem_client_default_socket(char **ret_path) {
        const char *env;
        char *p;

        if (!ret_path)
                return gmem_error(-EINVAL, "default socket: NULL result");
        env = secure_getenv("GMEMD_SOCKET");
        /* the system gmemd for everyone: a user's own gmemd only when asked for (user_socket) */
        if (!(p = strdup(env && *env ? env : ROOT_SOCKET)))
                return gmem_error(-ENOMEM, "default socket: allocate path");
        *ret_path = p;
        return 0;
}

_public_ int gmem_client_user_socket(char **ret_path) {
        const char *rt;
        char *p;

        if (!ret_path)
                return gmem_error(-EINVAL, "user socket: NULL result");
        rt = secure_getenv("XDG_RUNTIME_DIR");
        if (!rt || !*rt)
                return gmem_error(-ENXIO, "user socket: $XDG_RUNTIME_DIR is not set (set $GMEMD_SOCKET or give the socket path)");
        if (rt[0] != '/')
                return gmem_error(-EINVAL, "user socket: $XDG_RUNTIME_DIR '%s' is not an absolute path", rt);
        if (asprintf(&p, "%s/%s", rt, USER_SOCKET) < 0)
                return gmem_error(-ENOMEM, "user socket: allocate path");
        *ret_path = p;
        return 0;
}

int gmem_client_socket_connect(const char *path, int *ret_fd) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        socklen_t salen;
        size_t l = strlen(path);
        _cleanup_close_ int fd = -1;

        if (l == 0)
                return gmem_error(-EINVAL, "connect: empty socket path");
        if (l >= sizeof(sa.sun_path))
                return gmem_error(-ENAMETOOLONG, "connect: socket path '%s' is %zu bytes, longer than the %zu a unix "
                                  "socket address holds", path, l, sizeof(sa.sun_path) - 1);
        memcpy(sa.sun_path, path, l);
        salen = offsetof(struct sockaddr_un, sun_path) + l + 1;
        if (path[0] == '@') {
                /* abstract namespace, as systemd spells it */
                sa.sun_path[0] = 0;
                salen = offsetof(struct sockaddr_un, sun_path) + l;
        }

        fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return gmem_error(negative_errno(), "connect: socket(AF_UNIX, SOCK_SEQPACKET)");
        for (;;) {
                if (connect(fd, (struct sockaddr *) &sa, salen) == 0)
                        break;
                if (errno == EINTR)
                        continue; /* the connection goes on in the background; wait for it */
                if (errno == EINPROGRESS || errno == EALREADY || errno == EISCONN) {
                        struct pollfd p = { .fd = fd, .events = POLLOUT };
                        int err = 0;
                        socklen_t el = sizeof(err);
                        if (poll(&p, 1, -1) < 0 && errno != EINTR)
                                return gmem_error(negative_errno(), "connect to gmemd at '%s': poll", path);
                        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0)
                                return gmem_error(negative_errno(), "connect to gmemd at '%s'", path);
                        if (err)
                                return gmem_error(-err, "connect to gmemd at '%s'", path);
                        break;
                }
                return gmem_error(negative_errno(), "connect to gmemd at '%s'", path);
        }
        *ret_fd = TAKE_FD(fd);
        return 0;
}

static int transport_error(int err, const char *what) {
        if (err == -EPIPE || err == -ECONNRESET || err == -ENOTCONN)
                return gmem_error(-ECONNRESET, "%s: gmemd closed the connection", what);
        return gmem_error(err, "%s: talking to gmemd", what);
}

int gmem_client_send(struct gmem_client *c, const char *what, const char *text, const int *fds, size_t n_fds) {
        size_t len = strlen(text);

        if (c->fd < 0)
                return gmem_error(-ENOTCONN, "%s: the connection to gmemd is closed", what);
        for (;;) {
                ssize_t n = send_with_fds(c->fd, text, len, (int *) fds, n_fds, MSG_NOSIGNAL);
                if (n >= 0) {
                        if ((size_t) n != len)
                                return gmem_error(-EIO, "%s: short send to gmemd (%zd of %zu bytes)", what, n, len);
                        return 0;
                }
                if (errno == EINTR)
                        continue;
                if (errno == EMSGSIZE)
                        return gmem_error(-EMSGSIZE, "%s: request of %zu bytes is too long for the socket", what, len);
                return transport_error(negative_errno(), what);
        }
}

/* Milliseconds left until deadline (mono_msec()), at least 0. */
static int ms_left(int64_t deadline) {
        int64_t now = mono_msec();
        return now >= deadline ? 0 : (int) MIN(deadline - now, (int64_t) INT32_MAX);
}

int gmem_client_recv(struct gmem_client *c, const char *what, int timeout_ms, struct gmem_client_msg *ret) {
        union {
                struct cmsghdr h;
                char buf[CMSG_SPACE(sizeof(int) * CLIENT_FDS_MAX)];
        } control;
        struct gmem_client_msg m = { .n_fds = 0 };
        struct msghdr mh;
        struct iovec iov;
        ssize_t len, n;

        if (c->fd < 0)
                return gmem_error(-ENOTCONN, "%s: the connection to gmemd is closed", what);

        if (timeout_ms >= 0) {
                int64_t deadline = mono_msec() + timeout_ms;
                for (;;) {
                        struct pollfd p = { .fd = c->fd, .events = POLLIN };
                        int k = poll(&p, 1, ms_left(deadline));
                        if (k > 0)
                                break;
                        if (k == 0)
                                return gmem_error(-ETIME, "%s: nothing from gmemd within %d ms", what, timeout_ms);
                        if (errno == EINTR)
                                return -EINTR;
                        return gmem_error(negative_errno(), "%s: poll on the gmemd socket", what);
                }
        }

        /* How long is the next datagram? MSG_TRUNC makes a peek report its full length. */
        len = recv(c->fd, NULL, 0, MSG_PEEK | MSG_TRUNC);
        if (len < 0 && errno == ECONNRESET) /* gmemd closed while a request of ours was unread: an answer */
                len = recv(c->fd, NULL, 0, MSG_PEEK | MSG_TRUNC); /* it queued before (a refusal) is read first */
        if (len < 0) {
                if (errno == EINTR)
                        return -EINTR;
                return transport_error(negative_errno(), what);
        }
        if (len == 0)
                return gmem_error(-ECONNRESET, "%s: gmemd closed the connection", what);
        if ((size_t) len >= c->buf_size) {
                size_t want = MAX((size_t) len + 1, (size_t) CLIENT_BUFFER_SIZE);
                char *b;
                if (len > CLIENT_MESSAGE_MAX) {
                        /* drop it (and any fds with it: no control buffer) */
                        (void) recv(c->fd, NULL, 0, MSG_TRUNC);
                        return gmem_error(-EMSGSIZE, "%s: gmemd sent a message of %zd bytes, more than %d", what, len,
                                          CLIENT_MESSAGE_MAX);
                }
                b = realloc(c->buf, want);
                if (!b)
                        return gmem_error(-ENOMEM, "%s: receive buffer of %zu bytes", what, want);
                c->buf = b;
                c->buf_size = want;
        }

        iov = (struct iovec) { .iov_base = c->buf, .iov_len = c->buf_size - 1 };
        mh = (struct msghdr) {
                .msg_iov = &iov,
                .msg_iovlen = 1,
                .msg_control = control.buf,
                .msg_controllen = sizeof(control.buf),
        };
        do
                n = recvmsg(c->fd, &mh, MSG_CMSG_CLOEXEC);
        while (n < 0 && errno == EINTR); /* the peek said it is there: no blocking here */
        if (n < 0)
                return transport_error(negative_errno(), what);

        for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
                if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
                        continue;
                size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                for (size_t i = 0; i < k; i++) {
                        int fd;
                        memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
                        if (m.n_fds < CLIENT_FDS_MAX)
                                m.fds[m.n_fds++] = fd;
                        else
                                close(fd);
                }
        }
        if (n == 0) {
                gmem_client_msg_done(&m);
                return gmem_error(-ECONNRESET, "%s: gmemd closed the connection", what);
        }
        if (mh.msg_flags & MSG_TRUNC) {
                gmem_client_msg_done(&m);
                return gmem_error(-EMSGSIZE, "%s: a message from gmemd was cut short at %zu bytes", what, iov.iov_len);
        }
        c->buf[n] = 0;
        if (strlen(c->buf) != (size_t) n) {
                gmem_client_msg_done(&m);
                return gmem_error(-EPROTO, "%s: gmemd sent a message with a NUL byte inside", what);
        }
        m.json = cJSON_ParseWithLength(c->buf, n);
        if (!m.json || !cJSON_IsObject(m.json)) {
                gmem_client_msg_done(&m);
                return gmem_error(-EPROTO, "%s: gmemd sent a message that is not a JSON object", what);
        }
        m.text = strndup(c->buf, n);
        if (!m.text) {
                gmem_client_msg_done(&m);
                return gmem_error(-ENOMEM, "%s: copy a message", what);
        }
        *ret = m;
        return 0;
}
