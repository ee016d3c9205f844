/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * memfd_secret memory is locked memory, charged to RLIMIT_MEMLOCK of the process that maps it
 * (memfd_secret(2)), and kernels differ in how they enforce that: 6.18 refuses the mmap() with
 * EAGAIN past the limit unless the caller has CAP_IPC_LOCK, which exempts it; other kernels (6.1,
 * 6.12 and 7.x, as booted in make check-kernels) let the mmap() through and kill whoever touches
 * the first page past the limit with SIGBUS. A library must never hand its caller a SIGBUS, so the
 * rule is checked before any page is touched: the memory must fit in what the limit leaves, unless
 * the caller has CAP_IPC_LOCK and this kernel is seen to honour it — seen, not assumed, by a child
 * process that lowers its own limit to one page and touches four.
 */
#include <errno.h>
#include <inttypes.h>
#include <linux/capability.h>
#include <signal.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "error.h"
#include "macro.h"
#include "region.h"

#define PROBE_PAGES 4

static pthread_once_t honoured_once = PTHREAD_ONCE_INIT;
static bool honoured;

static bool have_cap_ipc_lock(void) {
        struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
        struct __user_cap_data_struct d[2] = { 0 };

        if (syscall(SYS_capget, &h, d) < 0)
                return false;
        return d[CAP_IPC_LOCK / 32].effective & (UINT32_C(1) << (CAP_IPC_LOCK % 32));
}

/* In the child, only system calls: it may be a copy of a multithreaded process. */
__attribute__((noreturn)) static void probe_child(void) {
        struct rlimit one = { page_size(), page_size() };
        struct sigaction dfl = { .sa_handler = SIG_DFL };
        volatile uint8_t *p;
        int fd;

        (void) sigaction(SIGBUS, &dfl, NULL); /* the caller's handler must not see our fault */
        if (getrlimit(RLIMIT_MEMLOCK, &one) == 0) {
                one.rlim_cur = page_size();
                (void) setrlimit(RLIMIT_MEMLOCK, &one); /* lowering is always allowed */
        }
        fd = (int) syscall(SYS_memfd_secret, 0);
        if (fd < 0 || ftruncate(fd, (off_t) (PROBE_PAGES * page_size())) < 0)
                _exit(2);
        p = mmap(NULL, PROBE_PAGES * page_size(), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED)
                _exit(3);
        for (unsigned i = 0; i < PROBE_PAGES; i++)
                p[i * page_size()] = 1;
        _exit(0);
}

static void probe_honoured(void) {
        int status;
        pid_t pid;

        /* a raw clone: no pthread_atfork() handlers of the caller run for this probe */
        pid = (pid_t) syscall(SYS_clone, SIGCHLD, NULL, NULL, NULL, NULL);
        if (pid < 0)
                return;
        if (pid == 0)
                probe_child();
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return; /* reaped by someone else: assume the worst */
        honoured = WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

static uint64_t locked_bytes(void) {
        _cleanup_fclose_ FILE *f = fopen("/proc/self/status", "re");
        char line[256];
        uint64_t kb = 0;

        while (f && fgets(line, sizeof(line), f))
                if (sscanf(line, "VmLck: %" SCNu64 " kB", &kb) == 1)
                        break;
        return kb * KiB;
}

int region_check_memlock(const char *what, uint64_t size) {
        struct rlimit rl;
        uint64_t locked;
        bool cap;

        if (getrlimit(RLIMIT_MEMLOCK, &rl) < 0)
                return gmem_error(negative_errno(), "%s: getrlimit(RLIMIT_MEMLOCK)", what);
        if (rl.rlim_cur == RLIM_INFINITY)
                return 0;
        locked = locked_bytes();
        if (size <= rl.rlim_cur && locked <= rl.rlim_cur - size)
                return 0;
        cap = have_cap_ipc_lock();
        if (cap) {
                pthread_once(&honoured_once, probe_honoured);
                if (honoured)
                        return 0;
        }
        return gmem_error(-ENOMEM, "%s: %" PRIu64 " bytes of memfd_secret memory exceed RLIMIT_MEMLOCK "
                          "(%" PRIu64 " bytes, %" PRIu64 " of them already locked by this process): secret "
                          "memory is charged to that limit%s; raise it (ulimit -l, LimitMEMLOCK=)",
                          what, size, (uint64_t) rl.rlim_cur, locked,
                          cap ? ", and this kernel does not exempt CAP_IPC_LOCK" : "");
}
