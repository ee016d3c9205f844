/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Memory pressure for tests (pressure.h): a zram swap device and a memory cgroup. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/swap.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pressure.h"

static __attribute__((format(printf, 2, 3))) int write_file(const char *path, const char *fmt, ...) {
        char buf[128];
        va_list ap;
        int fd, n;

        va_start(ap, fmt);
        n = vsnprintf(buf, sizeof(buf), fmt, ap);
        va_end(ap);
        fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        if (write(fd, buf, (size_t) n) != n) {
                int k = -errno;
                close(fd);
                return k ? k : -EIO;
        }
        close(fd);
        return 0;
}

static int read_file(const char *path, char *buf, size_t len) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        ssize_t n;

        if (fd < 0)
                return -errno;
        n = read(fd, buf, len - 1);
        close(fd);
        if (n < 0)
                return -errno;
        buf[n] = 0;
        return 0;
}

static __attribute__((format(printf, 4, 5))) int fail(char *reason, size_t n, int k, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(reason, n, fmt, ap);
        va_end(ap);
        return k < 0 ? k : -EOPNOTSUPP;
}

/* A zram device of our own (hot_add), made a swap device: the swap header written here (no
 * mkswap needed), then swapon. */
static int zram_swap(struct gmem_pressure *p, uint64_t size, char *reason, size_t n) {
        char path[128], num[32];
        uint8_t page[4096] = { 0 };
        uint32_t info[3] = { 1, (uint32_t) (size / 4096 - 1), 0 }; /* version, last page, bad pages */
        int k, fd;

        if (access("/proc/swaps", F_OK) < 0)
                return fail(reason, n, -ENOSYS, "this kernel has no swap (CONFIG_SWAP off: no /proc/swaps)");
        if (access("/sys/class/zram-control/hot_add", R_OK) < 0) {
                /* the module may be there unloaded */
                if (system("modprobe zram num_devices=0 >/dev/null 2>&1") != 0 ||
                    access("/sys/class/zram-control/hot_add", R_OK) < 0)
                        return fail(reason, n, -ENOENT, "no zram on this kernel (/sys/class/zram-control): no swap device to make");
        }
        if ((k = read_file("/sys/class/zram-control/hot_add", num, sizeof(num))) < 0)
                return fail(reason, n, k, "zram hot_add: %s", strerror(-k));
        p->zram = atoi(num);
        snprintf(path, sizeof(path), "/sys/block/zram%d/disksize", p->zram);
        if ((k = write_file(path, "%" PRIu64, size)) < 0)
                return fail(reason, n, k, "%s: %s", path, strerror(-k));
        snprintf(p->swapdev, sizeof(p->swapdev), "/dev/zram%d", p->zram);
        for (int i = 0; i < 100 && access(p->swapdev, F_OK) < 0; i++)
                usleep(10000);
        memcpy(page + 1024, info, sizeof(info));
        memcpy(page + 4096 - 10, "SWAPSPACE2", 10);
        fd = open(p->swapdev, O_WRONLY | O_CLOEXEC);
        if (fd < 0 || pwrite(fd, page, sizeof(page), 0) != (ssize_t) sizeof(page)) {
                k = -errno;
                if (fd >= 0)
                        close(fd);
                p->swapdev[0] = 0;
                return fail(reason, n, k, "write a swap header on %s: %s", p->swapdev, strerror(-k));
        }
        fsync(fd);
        close(fd);
        if (swapon(p->swapdev, 0) < 0) {
                k = -errno;
                p->swapdev[0] = 0;
                return fail(reason, n, k, "swapon %s: %s", p->swapdev, strerror(-k));
        }
        return 0;
}

/* A memory cgroup of our own: v1's memory controller where it is mounted, else a cgroup2 that
 * has the memory controller. */
static int memcg(struct gmem_pressure *p, uint64_t limit, char *reason, size_t n) {
        char path[300], buf[512];
        int k;

        if (access("/sys/fs/cgroup/memory/memory.limit_in_bytes", F_OK) == 0) {
                snprintf(p->parent, sizeof(p->parent), "/sys/fs/cgroup/memory");
                snprintf(p->cgroup, sizeof(p->cgroup), "/sys/fs/cgroup/memory/gmem-pressure-%d", (int) getpid());
                if (mkdir(p->cgroup, 0755) < 0)
                        return fail(reason, n, -errno, "mkdir %s: %m", p->cgroup);
                snprintf(path, sizeof(path), "%s/memory.limit_in_bytes", p->cgroup);
                if ((k = write_file(path, "%" PRIu64, limit)) < 0)
                        return fail(reason, n, k, "%s: %s", path, strerror(-k));
                snprintf(path, sizeof(path), "%s/memory.swappiness", p->cgroup);
                (void) write_file(path, "100");
                return 0;
        }
        if (read_file("/sys/fs/cgroup/cgroup.controllers", buf, sizeof(buf)) < 0 || !strstr(buf, "memory"))
                return fail(reason, n, -ENOENT, "no memory cgroup controller (neither cgroup v1's nor a cgroup2 with it at /sys/fs/cgroup)");
        p->v2 = true;
        snprintf(p->parent, sizeof(p->parent), "/sys/fs/cgroup");
        (void) write_file("/sys/fs/cgroup/cgroup.subtree_control", "+memory");
        snprintf(p->cgroup, sizeof(p->cgroup), "/sys/fs/cgroup/gmem-pressure-%d", (int) getpid());
        if (mkdir(p->cgroup, 0755) < 0)
                return fail(reason, n, -errno, "mkdir %s: %m", p->cgroup);
        snprintf(path, sizeof(path), "%s/memory.max", p->cgroup);
        if ((k = write_file(path, "%" PRIu64, limit)) < 0)
                return fail(reason, n, k, "%s: %s", path, strerror(-k));
        return 0;
}

int gmem_pressure_begin(struct gmem_pressure *p, uint64_t limit, uint64_t swap, char *reason, size_t n) {
        int k;

        *p = (struct gmem_pressure) { .zram = -1 };
        if (geteuid() != 0)
                return fail(reason, n, -EPERM, "not root: no swap device or memory cgroup can be made");
        p->active = true;
        if ((k = zram_swap(p, swap, reason, n)) < 0 || (k = memcg(p, limit, reason, n)) < 0) {
                gmem_pressure_end(p);
                return k;
        }
        return 0;
}

int gmem_pressure_enter(const struct gmem_pressure *p, pid_t pid) {
        char path[300];

        snprintf(path, sizeof(path), "%s/cgroup.procs", p->cgroup);
        return write_file(path, "%d", (int) (pid ? pid : getpid()));
}

int gmem_pressure_leave(const struct gmem_pressure *p, pid_t pid) {
        char path[300];

        snprintf(path, sizeof(path), "%s/cgroup.procs", p->parent);
        return write_file(path, "%d", (int) (pid ? pid : getpid()));
}

int64_t gmem_pressure_swapped(const struct gmem_pressure *p) {
        char path[300], buf[4096], *s;

        if (p->v2) {
                snprintf(path, sizeof(path), "%s/memory.swap.current", p->cgroup);
                return read_file(path, buf, sizeof(buf)) < 0 ? -1 : (int64_t) strtoull(buf, NULL, 10);
        }
        snprintf(path, sizeof(path), "%s/memory.stat", p->cgroup);
        if (read_file(path, buf, sizeof(buf)) < 0 || !(s = strstr(buf, "\nswap ")))
                return -1;
        return (int64_t) strtoull(s + 6, NULL, 10);
}

/* every member back to the parent, then the cgroup removed */
static void memcg_remove(struct gmem_pressure *p) {
        char path[300], parent_procs[300], buf[8192];

        snprintf(path, sizeof(path), "%s/cgroup.procs", p->cgroup);
        snprintf(parent_procs, sizeof(parent_procs), "%s/cgroup.procs", p->parent);
        for (int tries = 0; tries < 50; tries++) {
                char *line, *save = NULL;
                if (read_file(path, buf, sizeof(buf)) < 0 || !buf[0])
                        break;
                for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
                        (void) write_file(parent_procs, "%s", line);
                usleep(10000);
        }
        for (int tries = 0; tries < 100 && rmdir(p->cgroup) < 0 && errno == EBUSY; tries++)
                usleep(20000);
}

void gmem_pressure_end(struct gmem_pressure *p) {
        char path[300];

        if (!p->active)
                return;
        /* the limit lifted first: swapoff brings the cgroup's pages back, and they must fit */
        if (p->cgroup[0]) {
                snprintf(path, sizeof(path), p->v2 ? "%s/memory.max" : "%s/memory.limit_in_bytes", p->cgroup);
                (void) write_file(path, p->v2 ? "max" : "-1");
        }
        if (p->swapdev[0] && swapoff(p->swapdev) < 0)
                fprintf(stderr, "pressure: swapoff %s: %m\n", p->swapdev);
        if (p->cgroup[0])
                memcg_remove(p);
        if (p->zram >= 0) {
                snprintf(path, sizeof(path), "/sys/block/zram%d/reset", p->zram);
                (void) write_file(path, "1");
                (void) write_file("/sys/class/zram-control/hot_remove", "%d", p->zram);
        }
        *p = (struct gmem_pressure) { .zram = -1 };
}
