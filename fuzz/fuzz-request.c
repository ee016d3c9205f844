/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Fuzz gmemd's socket front end and the core behind it: each input is one datagram sent on a real
 * connection to a real server in this process (framing, the JSON decoder, the string and integer
 * checks, dispatch, every op and the actions under it). Regions and jobs are real: memfds within
 * small limits, prefault jobs on one worker. Between inputs the regions no job holds are released,
 * so state stays bounded and an input finds a daemon much like the last one did.
 */
#include <signal.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "../gmemd/server.h"
#include "fuzz-daemon.h"

static struct daemon d = { .pool = { .efd = -1 } };
static struct server *srv;
static int client = -1;

static void pump(void) {
        for (int i = 0; i < 4; i++)
                event_base_loop(d.base, EVLOOP_NONBLOCK);
}

/* Replies and events are read and dropped, with any fd they carry (open gives one). */
static void drain(void) {
        char buf[65536], cbuf[CMSG_SPACE(sizeof(int) * 8)];

        for (;;) {
                struct iovec iov = { buf, sizeof(buf) };
                struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
                ssize_t n = recvmsg(client, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);

                if (n <= 0)
                        return;
                if (getenv("GMEM_FUZZ_SHOW")) /* to see what the daemon answered */
                        fprintf(stderr, "< %.*s\n", (int) MIN(n, 300), buf);
                for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm))
                        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS)
                                for (size_t i = 0; i < (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++) {
                                        int fd;
                                        memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
                                        close(fd);
                                }
        }
}

static void reconnect(void) {
        static const char hello[] = "{\"op\":\"hello\",\"id\":1,\"version\":1}";
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        size_t n = strlen(srv->socket_path);

        if (client >= 0)
                close(client);
        pump(); /* the server sees the old one go */
        client = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        memcpy(sa.sun_path, srv->socket_path, n);
        sa.sun_path[0] = 0; /* abstract */
        if (client < 0 || connect(client, (struct sockaddr *) &sa, (socklen_t) (offsetof(struct sockaddr_un, sun_path) + n)) < 0)
                abort();
        pump();
        (void) send(client, hello, sizeof(hello) - 1, MSG_NOSIGNAL);
        pump();
        drain();
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc _unused_, char ***argv _unused_) {
        char path[64];

        fuzz_daemon_start(&d);
        snprintf(path, sizeof(path), "@gmem-fuzz-%d", (int) getpid());
        if (server_listen(&d, path, &srv) < 0)
                abort();
        reconnect();
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size == 0) /* an empty datagram reads as the peer's shutdown */
                return 0;
        if (!srv->conns)
                reconnect();
        (void) send(client, data, size, MSG_NOSIGNAL | MSG_DONTWAIT);
        pump();
        drain();
        fuzz_release_idle(&d, NULL);
        pump();
        drain();
        return 0;
}
