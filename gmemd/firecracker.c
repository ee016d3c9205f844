/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A Firecracker VM's page server (docs/snapshot.md, "Firecracker"), the body of a JOB_FIRECRACKER
 * on a thread of its own: wait for the VM on the listening socket the requester handed over,
 * read its handshake, then serve its userfaultfd from the source — faults first, the rest
 * prefetched in between — until the VM hangs up (it has exited: its memory is gone), the job
 * is cancelled or gmemd stops. Nothing here trusts the VM: the handshake is checked by libgmem,
 * and the memory it may ask for is the source's.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "firecracker.h"
#include "gmem-cleanup.h"
#include "log.h"
#include "macro.h"
#include "page-server.h"
#include "snapshot.h"
#include "store.h"

#define POLL_MS 200 /* how soon a cancel is seen */
#define HANDSHAKE_MS 10000

/* accept the VM's connection within the job's timeout, seeing a cancel within POLL_MS */
static int wait_for_vm(struct job *j, int *ret_conn) {
        uint64_t deadline = mono_usec() + (uint64_t) j->timeout_ms * 1000;

        for (;;) {
                struct pollfd p = { .fd = j->fd2, .events = POLLIN };
                int conn, k;
                if (__atomic_load_n(&j->cancel, __ATOMIC_RELAXED))
                        return gmem_error(-ECANCELED, "cancelled before the VM connected");
                if (mono_usec() >= deadline)
                        return gmem_error(-ETIMEDOUT, "the VM did not connect within %d ms", j->timeout_ms);
                k = poll(&p, 1, POLL_MS);
                if (k < 0 && errno != EINTR)
                        return gmem_error(negative_errno(), "poll the listening socket");
                if (k <= 0)
                        continue;
                conn = accept4(j->fd2, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
                if (conn < 0 && (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED))
                        continue;
                if (conn < 0)
                        return gmem_error(negative_errno(), "accept the VM's connection");
                *ret_conn = conn;
                return 0;
        }
}

/* Has the VM hung up? It sends nothing after its handshake; anything it does send is dropped. */
static bool vm_gone(int conn, short revents) {
        char scratch[256];
        ssize_t n;

        if (revents & (POLLHUP | POLLRDHUP | POLLERR))
                return true;
        if (!(revents & POLLIN))
                return false;
        n = recv(conn, scratch, sizeof(scratch), MSG_DONTWAIT);
        return n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR);
}

int64_t firecracker_run(struct job *j, struct gmem_populate_opts *opts) {
        _cleanup_free_ struct gmem_uffd_mapping *maps = NULL;
        struct gmem_page_server *ps = NULL;
        struct gmem_snapshot_info *info = NULL;
        struct stat st;
        _cleanup_close_ int conn = -1, uffd = -1;
        struct ucred cred = { .pid = 0 };
        socklen_t cl = sizeof(cred);
        bool stored = j->resume_fd >= 0; /* brought back: in the store already */
        uint64_t total = 0;
        size_t n = 0;
        int64_t k;

        /* the source checked whole (its extent table read here, off the loop) before the requester
         * hears that the job is up and waits for the VM */
        if (!(j->flags & GMEM_PAGE_SERVER_RAW) && (k = snapshot_open_bounded(j->fd, j->meta_extents, j->meta_size, &info)) < 0)
                return k;
        if ((j->flags & GMEM_PAGE_SERVER_RAW) && (fstat(j->fd, &st) < 0 || (uint64_t) st.st_size > j->meta_size))
                return gmem_error(-EBADMSG, "the memory file grew since it was checked (%" PRIu64 " bytes charged)", j->meta_size);
        job_started(j);
        if (j->resume_fd >= 0) { /* the VM connected to a gmemd before this one */
                conn = TAKE_FD(j->fd2);
                uffd = TAKE_FD(j->fd3);
                maps = TAKE_PTR(j->maps);
                n = j->n_maps;
        } else if ((k = wait_for_vm(j, &conn)) < 0) {
                gmem_snapshot_info_free(info);
                return k;
        }
        (void) getsockopt(conn, SOL_SOCKET, SO_PEERCRED, &cred, &cl);
        if (!maps && (k = gmem_firecracker_handshake(conn, HANDSHAKE_MS, &uffd, &maps, &n)) < 0) {
                gmem_snapshot_info_free(info);
                return gmem_error_wrap((int) k, "VM pid %d", (int) cred.pid);
        }
        k = page_server_new_opened(uffd, maps, n, j->fd, TAKE_PTR(info), j->flags, &ps);
        if (k >= 0)
                k = store_serve_begin(j->d, j, ps, uffd, conn, maps, n, &stored);
        if (k < 0) {
                k = gmem_error_wrap((int) k, "VM pid %d", (int) cred.pid);
                goto out;
        }
        for (size_t i = 0; i < n; i++)
                total += maps[i].size;
        __atomic_store_n(&j->total, total, __ATOMIC_RELAXED);
        log_info("firecracker '%s': serving VM pid %d (uid %d), %zu regions, %" PRIu64 " bytes", j->label, (int) cred.pid,
                 (int) cred.uid, n, total);
        while (!__atomic_load_n(&j->cancel, __ATOMIC_RELAXED)) {
                bool complete = gmem_page_server_complete(ps);
                struct pollfd p[2] = { { .fd = uffd, .events = POLLIN }, { .fd = conn, .events = POLLIN | POLLRDHUP } };
                int r = poll(p, 2, complete ? POLL_MS : 0);
                if (r < 0 && errno != EINTR) {
                        k = gmem_error(negative_errno(), "poll");
                        break;
                }
                if (r > 0 && vm_gone(conn, p[1].revents)) {
                        k = 0;
                        break;
                }
                k = gmem_page_server_run(ps, 0);
                if (k >= 0 && !complete && !j->no_prefetch)
                        k = gmem_page_server_prefetch(ps, 8 * MiB);
                else if (k == 0 && !complete)
                        (void) poll(p, 2, POLL_MS); /* faults only: wait for one, or the hang-up */
                if (k < 0)
                        break;
                opts->progress(gmem_page_server_served_bytes(ps), total, opts->userdata);
        }
        if (k >= 0)
                k = (int64_t) gmem_page_server_served_bytes(ps);
        else
                k = gmem_error_wrap((int) k, "VM pid %d", (int) cred.pid);
out:
        store_serve_end(j->d, j, stored);
        gmem_page_server_free(ps);
        return k;
}
