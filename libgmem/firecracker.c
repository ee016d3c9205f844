/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Firecracker's page-fault handler handshake, read (docs/snapshot.md, "Firecracker"): after a
 * snapshot load with a Uffd memory backend, Firecracker connects to the handler's unix stream
 * socket and sends one message — a JSON array with one object per guest memory region,
 * {base_host_virt_addr, size, offset, page_size}, and its userfaultfd as SCM_RIGHTS — and
 * nothing after it. Older versions named the page size page_size_kib (in KiB; later ones in bytes
 * under that name) or sent none (4 KiB pages). Everything in it is checked here: the message
 * comes from another process.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "error.h"
#include "gmem-cleanup.h"
#include "macro.h"
#include "protocol.h"
#include "uffd-compat.h"

#define HANDSHAKE_MAX (64 * 1024) /* 64 regions' worth, many times over */
#define HANDSHAKE_FDS_SEEN 8      /* room to see (and close) fds beyond the one expected */

static void close_all(int *fds, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (fds[i] >= 0)
                        close(fds[i]);
}

static int get_u64(const cJSON *o, const char *name, size_t i, bool required, uint64_t *ret) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

        if (!v) {
                if (required)
                        return gmem_error(-EBADMSG, "Firecracker handshake: region %zu has no %s", i, name);
                return -ENOENT;
        }
        if (proto_number_to_u64(v, ret) < 0)
                return gmem_error(-EBADMSG, "Firecracker handshake: region %zu: %s is not an integer from 0 to 2^53-1", i,
                                  name);
        return 0;
}

static int parse(const char *text, size_t len, struct gmem_uffd_mapping **ret_maps, size_t *ret_n) {
        _cleanup_json_ cJSON *root = cJSON_ParseWithLength(text, len);
        _cleanup_free_ struct gmem_uffd_mapping *maps = NULL;
        const cJSON *o;
        size_t n, i = 0;
        int k;

        if (!root)
                return gmem_error(-EBADMSG, "Firecracker handshake: not JSON");
        if (!cJSON_IsArray(root))
                return gmem_error(-EBADMSG, "Firecracker handshake: not a JSON array of memory regions");
        n = (size_t) cJSON_GetArraySize(root);
        if (n == 0 || n > GMEM_UFFD_MAPPINGS_MAX)
                return gmem_error(-EBADMSG, "Firecracker handshake: %zu memory regions (1 to %d served)", n,
                                  GMEM_UFFD_MAPPINGS_MAX);
        if (!(maps = calloc(n, sizeof(*maps))))
                return gmem_error(-ENOMEM, "Firecracker handshake");
        cJSON_ArrayForEach(o, root) {
                struct gmem_uffd_mapping *m = &maps[i];
                uint64_t kib;
                if (!cJSON_IsObject(o))
                        return gmem_error(-EBADMSG, "Firecracker handshake: region %zu is not an object", i);
                if ((k = get_u64(o, "base_host_virt_addr", i, true, &m->base)) < 0 ||
                    (k = get_u64(o, "size", i, true, &m->size)) < 0 || (k = get_u64(o, "offset", i, true, &m->offset)) < 0)
                        return k;
                if ((k = get_u64(o, "page_size", i, false, &m->page_size)) == -ENOENT) {
                        /* page_size_kib: KiB in the versions that introduced it, bytes later */
                        k = get_u64(o, "page_size_kib", i, false, &kib);
                        if (k == -ENOENT)
                                m->page_size = 4096, k = 0;
                        else if (k == 0)
                                m->page_size = kib < 4096 ? kib * 1024 : kib;
                }
                if (k < 0)
                        return k;
                if (m->page_size < 4096 || (m->page_size & (m->page_size - 1)))
                        return gmem_error(-EBADMSG, "Firecracker handshake: region %zu: a page size of %" PRIu64 " bytes", i,
                                          m->page_size);
                i++;
        }
        *ret_maps = TAKE_PTR(maps);
        *ret_n = n;
        return 0;
}

_public_ int gmem_firecracker_handshake(int conn_fd, int timeout_ms, int *ret_uffd, struct gmem_uffd_mapping **ret_maps,
                                        size_t *ret_n_maps) {
        _cleanup_free_ char *buf = NULL;
        int fds[HANDSHAKE_FDS_SEEN];
        size_t len = 0, n_fds = 0;
        uint64_t deadline = timeout_ms >= 0 ? mono_usec() + (uint64_t) timeout_ms * 1000 : 0;
        int k;

        if (conn_fd < 0 || !ret_uffd || !ret_maps || !ret_n_maps)
                return gmem_error(-EINVAL, "Firecracker handshake: invalid fd or NULL result");
        if (!(buf = malloc(HANDSHAKE_MAX)))
                return gmem_error(-ENOMEM, "Firecracker handshake");
        for (;;) {
                union {
                        struct cmsghdr align;
                        char buf[CMSG_SPACE(sizeof(int) * HANDSHAKE_FDS_SEEN)];
                } control;
                struct iovec iov = { .iov_base = buf + len, .iov_len = HANDSHAKE_MAX - len };
                struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
                                     .msg_controllen = sizeof(control.buf) };
                struct pollfd p = { .fd = conn_fd, .events = POLLIN };
                const char *end = NULL;
                ssize_t got;
                int wait = -1;

                if (timeout_ms >= 0) {
                        uint64_t now = mono_usec();
                        wait = now >= deadline ? 0 : (int) ((deadline - now + 999) / 1000);
                }
                k = poll(&p, 1, wait);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0) {
                        k = gmem_error(negative_errno(), "Firecracker handshake: poll");
                        goto fail;
                }
                if (k == 0) {
                        k = gmem_error(-ETIMEDOUT, "Firecracker handshake: nothing complete within %d ms", timeout_ms);
                        goto fail;
                }
                got = recvmsg(conn_fd, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
                if (got < 0 && (errno == EAGAIN || errno == EINTR))
                        continue;
                if (got < 0) {
                        k = gmem_error(negative_errno(), "Firecracker handshake: recvmsg");
                        goto fail;
                }
                for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
                        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
                                continue;
                        for (size_t i = 0; i < (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++) {
                                int fd;
                                memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
                                if (n_fds < HANDSHAKE_FDS_SEEN)
                                        fds[n_fds++] = fd;
                                else
                                        close(fd);
                        }
                }
                if (mh.msg_flags & MSG_CTRUNC) {
                        k = gmem_error(-EBADMSG, "Firecracker handshake: more file descriptors than one userfaultfd");
                        goto fail;
                }
                if (got == 0) {
                        k = gmem_error(-ECONNRESET, "Firecracker handshake: the VMM hung up %s",
                                       len ? "in the middle of it" : "before it");
                        goto fail;
                }
                len += (size_t) got;
                /* complete when it parses */
                {
                        _cleanup_json_ cJSON *probe = cJSON_ParseWithLengthOpts(buf, len, &end, false);
                        if (probe)
                                break;
                }
                if (len == HANDSHAKE_MAX) {
                        k = gmem_error(-EBADMSG, "Firecracker handshake: more than %d bytes", HANDSHAKE_MAX);
                        goto fail;
                }
                /* cJSON puts where it failed in end (its last byte when it ran out of input):
                 * before that, more bytes would not help */
                if (end && end >= buf && end < buf + len - 1) {
                        k = gmem_error(-EBADMSG, "Firecracker handshake: not JSON (at byte %zu)", (size_t) (end - buf));
                        goto fail;
                }
        }
        if (n_fds != 1) {
                k = gmem_error(-EBADMSG, "Firecracker handshake: %zu file descriptors with it (one userfaultfd expected)", n_fds);
                goto fail;
        }
        if (!fd_is_userfaultfd(fds[0])) {
                k = gmem_error(-EBADMSG, "Firecracker handshake: the fd sent is not a userfaultfd");
                goto fail;
        }
        if ((k = parse(buf, len, ret_maps, ret_n_maps)) < 0)
                goto fail;
        *ret_uffd = fds[0];
        return 0;
fail:
        close_all(fds, n_fds);
        return k;
}
