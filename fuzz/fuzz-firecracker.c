/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Fuzz what a Firecracker VM sends gmemd: its page-fault handler handshake
 * (gmem_firecracker_handshake()) and the page server made from what it accepted
 * (gmem_page_server_new_mapped() over a raw memory file). The input's first byte says how many
 * fds go with the rest (0 to 3: a userfaultfd of this process where it may have one, then a
 * pipe); the rest is the message, sent on a unix stream socket whose other end then hangs up.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "fd-pass.h"
#include "gmem/gmem.h"

static int uffd = -1, pipe_fds[2] = { -1, -1 }, memory_file = -1;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv) {
        (void) argc;
        (void) argv;
        /* the VM's uffd: a real one where this process may have one (else the handshake stops
         * at "not a userfaultfd", which is fuzzed too) */
        uffd = (int) syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
        if (uffd < 0)
                uffd = (int) syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | 1 /* UFFD_USER_MODE_ONLY */);
        if (pipe2(pipe_fds, O_CLOEXEC) < 0)
                abort();
        if (uffd < 0)
                uffd = pipe_fds[0];
        /* Firecracker's memory file: 8 MiB, sparse */
        memory_file = memfd_create("fuzz-firecracker-memory", MFD_CLOEXEC);
        if (memory_file < 0 || ftruncate(memory_file, 8 << 20) < 0 || pwrite(memory_file, "x", 1, 4096) != 1)
                abort();
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        const int fds[3] = { uffd, pipe_fds[0], pipe_fds[1] };
        struct gmem_uffd_mapping *maps = NULL;
        struct gmem_page_server *ps = NULL;
        size_t n_fds, n = 0;
        int sv[2], got = -1;

        if (size < 1)
                return 0;
        n_fds = data[0] % 4;
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
                abort();
        if (size > 1 || n_fds)
                (void) send_with_fds(sv[0], data + 1, size - 1 ? size - 1 : 0, fds, n_fds, MSG_DONTWAIT);
        close(sv[0]); /* nothing after it: EOF, not a wait */
        if (gmem_firecracker_handshake(sv[1], 0, &got, &maps, &n) == 0) {
                /* what it accepted: one uffd, 1 to 64 regions, each with a page size */
                if (got < 0 || n < 1 || n > GMEM_UFFD_MAPPINGS_MAX)
                        __builtin_trap();
                for (size_t i = 0; i < n; i++)
                        if (maps[i].page_size == 0)
                                __builtin_trap();
                if (gmem_page_server_new_mapped(got, maps, n, memory_file, GMEM_PAGE_SERVER_RAW, &ps) == 0) {
                        /* prefetch nothing: the mappings are not ours to fill */
                        if (!ps)
                                __builtin_trap();
                        gmem_page_server_free(ps);
                }
                free(maps);
                close(got);
        } else if (maps || got >= 0)
                __builtin_trap(); /* nothing handed out on failure */
        close(sv[1]);
        return 0;
}
