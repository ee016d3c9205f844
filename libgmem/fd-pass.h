/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Sending one datagram with file descriptors attached (SCM_RIGHTS): the client, the daemon, the
 * benchmark and the tests all do it, so it is written once. Header-only, nothing exported. */
#pragma once

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>

#define FD_PASS_MAX 253 /* SCM_MAX_FD: the kernel's limit per message */

/* sendmsg() of [buf, buf+len) with fds[0..n_fds) (n_fds may be 0; at most FD_PASS_MAX). Returns
 * what sendmsg() returns: the bytes sent, or -1 with errno set. */
static inline ssize_t send_with_fds(int sock, const void *buf, size_t len, const int *fds, size_t n_fds, int flags) {
        union {
                struct cmsghdr align;
                char buf[CMSG_SPACE(sizeof(int) * FD_PASS_MAX)];
        } control;
        struct iovec iov = { .iov_base = (void *) buf, .iov_len = len };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

        if (n_fds > FD_PASS_MAX) {
                errno = EINVAL;
                return -1;
        }
        if (n_fds > 0) {
                struct cmsghdr *cm;
                memset(&control, 0, sizeof(control));
                mh.msg_control = control.buf;
                mh.msg_controllen = CMSG_SPACE(sizeof(int) * n_fds);
                cm = CMSG_FIRSTHDR(&mh);
                cm->cmsg_level = SOL_SOCKET;
                cm->cmsg_type = SCM_RIGHTS;
                cm->cmsg_len = CMSG_LEN(sizeof(int) * n_fds);
                memcpy(CMSG_DATA(cm), fds, sizeof(int) * n_fds);
        }
        return sendmsg(sock, &mh, flags);
}
