/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * gmem-example-vmm: a small VMM on libgmem, and the reference for VMM authors.
 *
 *   1. probe the kernel and pick what guest memory runs on (gmem_host_caps_pick_guest_memory()): a
 *      guest_memfd with the best flags it offers (NO_DIRECT_MAP where it has it: then the host kernel
 *      cannot touch guest memory through its direct map), or a memfd on kernels that cannot map a
 *      shared guest_memfd for a default VM (6.1 has no guest_memfd, 6.12 none for such VMs) — saying
 *      why in one line;
 *   2. create a VM with --vcpus vCPUs and --regions regions on it (the VMM must: only the VM's
 *      creator can make a guest_memfd for it);
 *   3. populate each region with its slice of the guest image: in-process through libgmem or, with
 *      --gmemd, by registering the regions with gmemd as NAME-0, NAME-1, ... (the daemon keeps its
 *      own dup: the memory outlives this process) and asking the daemon to populate them from the
 *      image fd we pass;
 *   4. bind each region as a memslot: the first at 1 MiB, the others from 4 GiB up, each on a
 *      2 GiB boundary, so the guest reads memory below and above 4 GiB;
 *   5. run the vCPUs, one thread each: vCPU v hashes the v-th share of every region (in ring 3) and
 *      reports one line per range on its serial port, COM1;
 *   6. check every line of the report against the image, hashed on the host: exit 1 on any
 *      mismatch, missing range or malformed line;
 *   7. with --hold, stay alive a while: kill it then, and gmemd still holds its memory.
 *
 * The guest is guest/checksum.S, run by tools/minivm.c (a VM with just enough to run it).
 */
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>

#include "cli-util.h"
#include "gmem/gmem.h"
#include "macro.h"
#include "minivm.h"

#define MAX_REGIONS 32
#define REGION_ALIGN (2 * MiB)
#define LOW_GPA_END (3 * GiB)    /* region 0 ends below the 32-bit MMIO hole (KVM's TSS is there) */
#define HIGH_GPA_START (4 * GiB) /* regions 1.. start here ... */
#define HIGH_GPA_ALIGN (2 * GiB) /* ... each on such a boundary */
#define MAX_HOLD (24 * 3600)
#define REPORT_WIDTH 62          /* guest lines are padded to this before the host's verdict */

/* One region of the guest's memory: a guest_memfd, or a memfd where the kernel has none to use. */
struct region {
        char name[64]; /* at gmemd */
        struct gmem_region *mem;
        uint64_t size;
        uint32_t slot;
        uint64_t gpa;
        uint64_t image_off; /* its slice of the image: [image_off, image_off + image_len) */
        uint64_t image_len;
};

/* One range a vCPU hashes; its index in vmm.checks is the range id the guest reports. */
struct check {
        unsigned vcpu;
        unsigned region;
        struct minivm_range range;
        uint32_t host_hash;
        bool reported;
};

/* One vCPU thread: runs its vCPU over its ranges, which are numbered from first_id. */
struct vcpu_thread {
        pthread_t thread;
        struct minivm *vm;
        unsigned index;
        const struct minivm_range *ranges;
        size_t n;
        uint64_t first_id;
        int result;
};

struct vmm {
        /* options */
        uint64_t memory;
        unsigned n_regions;
        unsigned n_vcpus;
        const char *image_path;
        bool use_gmemd;
        const char *gmemd_socket;
        const char *name;
        uint64_t hold;
        bool corrupt;
        const char *snapshot_to;   /* --snapshot FILE: after populating, region i to FILE (.i for i > 0) */
        const char *restore_from;  /* --restore FILE: instead of populating */
        bool lazy;                 /* --lazy: restore through a userfaultfd page server */
        bool no_prefetch;          /* --no-prefetch: with --lazy --gmemd, gmemd serves faults only */
        const char *wait_file;     /* --wait-file PATH: before the guest runs, wait for PATH to exist */

        struct gmem_host_caps *caps; /* the kernel, as probed once (its profile from the environment) */
        enum gmem_backend backend; /* what guest memory runs on here */
        uint64_t flags;            /* its guest_memfd flags */
        struct minivm *vm;
        struct gmem_client *client; /* with --gmemd */
        int image;
        const uint8_t *image_map;
        uint64_t image_size;
        struct region regions[MAX_REGIONS];
        /* --lazy: one page server per region, run by one thread while the guest runs */
        int uffds[MAX_REGIONS], snaps[MAX_REGIONS];
        struct gmem_page_server *servers[MAX_REGIONS];
        pthread_t server_thread;
        bool server_running, restore_reported;
        volatile bool servers_stop;
        volatile int servers_error;
        double restore_start, resident_at;
        struct check *checks;
        struct minivm_range *ranges; /* checks[i].range, for minivm_run() */
        size_t n_checks;
        uint64_t checked_bytes;
        struct vcpu_thread threads[MINIVM_MAX_VCPUS];
};

/* "MMAP | INIT_SHARED": the names of guest_memfd flags, as this kernel numbers them. */
static const char *flag_names(const struct gmem_host_caps *caps, uint64_t flags, char *buf, size_t size) {
        const struct {
                uint64_t bit;
                const char *name;
        } known[] = {
                { gmem_host_caps_flag(caps, GMEM_FLAG_MMAP), "MMAP" },
                { gmem_host_caps_flag(caps, GMEM_FLAG_INIT_SHARED), "INIT_SHARED" },
                { gmem_host_caps_flag(caps, GMEM_FLAG_NO_DIRECT_MAP), "NO_DIRECT_MAP" },
                { gmem_host_caps_flag(caps, GMEM_FLAG_WRITE), "WRITE" },
        };
        size_t len = 0;

        buf[0] = '\0';
        for (size_t i = 0; i < ELEMENTSOF(known); i++)
                if (known[i].bit && (flags & known[i].bit)) {
                        len += (size_t) snprintf(buf + len, size - MIN(len, size), "%s%s", len ? " | " : "",
                                                 known[i].name);
                        flags &= ~known[i].bit;
                }
        if (flags)
                snprintf(buf + len, size - MIN(len, size), "%s0x%" PRIx64, len ? " | " : "", flags);
        return buf;
}

/* A guest image: pseudo-random bytes in an unlinked temporary file. */
static int generate_image(uint64_t size) {
        const char *dir = getenv("TMPDIR") ?: "/var/tmp";
        _cleanup_close_ int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
        uint64_t x = 0x9E3779B97F4A7C15ull, buf[8192];

        if (fd < 0)
                return negative_errno();
        for (uint64_t off = 0; off < size; off += sizeof(buf)) {
                size_t n = MIN(sizeof(buf), size - off);
                for (size_t i = 0; i < ELEMENTSOF(buf); i++) {
                        x ^= x >> 12, x ^= x << 25, x ^= x >> 27;
                        buf[i] = x * 0x2545F4914F6CDD1Dull;
                }
                if (pwrite(fd, buf, n, (off_t) off) != (ssize_t) n)
                        return errno ? negative_errno() : -EIO;
        }
        return TAKE_FD(fd);
}

/*
 * Sizes and GPAs: the memory split evenly in 2 MiB units (the first regions take one more unit when
 * it does not divide), region 0 at 1 MiB, the others from 4 GiB up on 2 GiB boundaries.
 */
static int layout_regions(struct vmm *m) {
        uint64_t units = align_up(m->memory, REGION_ALIGN) / REGION_ALIGN;

        if (units < m->n_regions) {
                fprintf(stderr, "gmem-example-vmm: %" PRIu64 " MiB is too little for %u regions of 2 MiB or more\n",
                        units * REGION_ALIGN / MiB, m->n_regions);
                return -EINVAL;
        }
        for (unsigned i = 0; i < m->n_regions; i++) {
                struct region *r = &m->regions[i];
                const struct region *prev = i > 0 ? &m->regions[i - 1] : NULL;

                snprintf(r->name, sizeof(r->name), "%s-%u", m->name, i);
                r->size = (units / m->n_regions + (i < units % m->n_regions)) * REGION_ALIGN;
                r->slot = MINIVM_FIRST_FREE_SLOT + i;
                r->gpa = !prev ? MINIVM_FIRST_FREE_GPA
                               : MAX(HIGH_GPA_START, align_up(prev->gpa + prev->size, HIGH_GPA_ALIGN));
        }
        if (m->regions[0].gpa + m->regions[0].size > LOW_GPA_END) {
                fprintf(stderr, "gmem-example-vmm: regions of %" PRIu64 " MiB do not fit below 3 GiB: use more --regions\n",
                        m->regions[0].size / MiB);
                return -EINVAL;
        }
        return 0;
}

/* The image (given or generated) and each region's slice of it. */
static int open_image(struct vmm *m) {
        uint64_t memory = 0, off = 0;
        void *p;

        for (unsigned i = 0; i < m->n_regions; i++)
                memory += m->regions[i].size;
        if (m->image_path) {
                struct stat st;

                m->image = open(m->image_path, O_RDONLY | O_CLOEXEC);
                if (m->image < 0 || fstat(m->image, &st) < 0) {
                        fprintf(stderr, "gmem-example-vmm: open '%s': %m\n", m->image_path);
                        return -errno;
                }
                m->image_size = (uint64_t) st.st_size;
                if (m->image_size < 4 || m->image_size > memory) {
                        fprintf(stderr, "gmem-example-vmm: image '%s' has %" PRIu64 " bytes; it must have 4 to %" PRIu64
                                " (the guest memory)\n", m->image_path, m->image_size, memory);
                        return -EINVAL;
                }
        } else {
                m->image_size = memory;
                m->image = generate_image(memory);
                if (m->image < 0) {
                        fprintf(stderr, "gmem-example-vmm: generate a guest image: %s\n", strerror(-m->image));
                        return m->image;
                }
        }
        /* the host's side of the check reads it */
        p = mmap(NULL, m->image_size, PROT_READ, MAP_SHARED, m->image, 0);
        if (p == MAP_FAILED) {
                fprintf(stderr, "gmem-example-vmm: mmap the image: %m\n");
                return -errno;
        }
        m->image_map = p;
        for (unsigned i = 0; i < m->n_regions; i++) {
                m->regions[i].image_off = off;
                m->regions[i].image_len = MIN(m->regions[i].size, m->image_size - off);
                off += m->regions[i].image_len;
        }
        return 0;
}

/* 2. Create each region on our VM and, with --gmemd, hand it to gmemd under its name. */
static int create_regions(struct vmm *m) {
        int k;

        if (m->use_gmemd) {
                k = gmem_client_connect(m->gmemd_socket, &m->client);
                if (k < 0) {
                        fprintf(stderr, "gmem-example-vmm: gmemd: %s\n", gmem_last_error());
                        return k;
                }
                /* gmemd's messages about the image then name it, not gmemd's fd number */
                if (m->image >= 0)
                        (void) gmem_client_name_fd(m->client, m->image, m->image_path);
        }
        for (unsigned i = 0; i < m->n_regions; i++) {
                struct region *r = &m->regions[i];

                if (r->gpa + r->size > minivm_gpa_limit(m->vm)) {
                        fprintf(stderr, "gmem-example-vmm: %s would end at GPA 0x%" PRIx64 ", past the guest's identity map"
                                " (0x%" PRIx64 "): use less memory or fewer regions\n",
                                r->name, r->gpa + r->size, minivm_gpa_limit(m->vm));
                        return -ERANGE;
                }
                if (m->backend == GMEM_BACKEND_GUEST_MEMFD)
                        k = gmem_region_new_guest_memfd_caps(m->caps, minivm_vm_fd(m->vm), r->size, m->flags, &r->mem);
                else
                        k = gmem_region_new_memfd(m->backend, r->size, &r->mem);
                if (k < 0) {
                        fprintf(stderr, "gmem-example-vmm: %s\n", gmem_last_error());
                        return k;
                }
                if (m->client) {
                        /* gmemd takes custody of a dup: from now on the memory outlives us */
                        k = gmem_client_register(m->client, r->name, r->mem);
                        if (k < 0) {
                                fprintf(stderr, "gmem-example-vmm: gmemd: %s\n", gmem_last_error());
                                return k;
                        }
                }
                printf("region %-9s %4" PRIu64 " MiB at GPA 0x%09" PRIx64 ", slot %u, image 0x%" PRIx64 "+0x%" PRIx64 "%s\n",
                       r->name, r->size / MiB, r->gpa, r->slot, r->image_off, r->image_len,
                       m->client ? ", registered with gmemd" : "");
        }
        return 0;
}

/* 3. Each region gets its slice of the image. */
static int populate_regions(struct vmm *m) {
        double t = mono_sec();
        int k;

        for (unsigned i = 0; i < m->n_regions; i++) {
                struct region *r = &m->regions[i];

                if (r->image_len == 0)
                        continue;
                if (m->client) /* the daemon copies, in parallel, from the fd we pass */
                        k = gmem_client_populate_fd(m->client, r->name, 0, m->image, r->image_off, r->image_len);
                else /* parallel pread() straight into the user mapping */
                        k = (int) MIN(gmem_populate_fd(r->mem, 0, m->image, r->image_off, r->image_len, NULL), 0);
                if (k < 0) {
                        fprintf(stderr, "gmem-example-vmm: populate %s: %s\n", r->name, gmem_last_error());
                        return k;
                }
        }
        t = mono_sec() - t;
        printf("populated       %" PRIu64 " MiB in %.3f s: %.2f GiB/s%s\n", m->image_size / MiB, t,
               (double) m->image_size / GiB / t, m->client ? " (by gmemd)" : "");
        return 0;
}

/* The snapshot file of region i: FILE, FILE.1, FILE.2, ... */
static void snapshot_path(const char *file, unsigned i, char *buf, size_t size) {
        if (i == 0)
                snprintf(buf, size, "%s", file);
        else
                snprintf(buf, size, "%s.%u", file, i);
}

/* --snapshot: each region to its file, sparse, with a checksum per extent */
static int snapshot_regions(struct vmm *m) {
        double t = mono_sec();
        uint64_t data = 0;

        for (unsigned i = 0; i < m->n_regions; i++) {
                char path[PATH_MAX];
                int fd;
                int64_t n;
                snapshot_path(m->snapshot_to, i, path, sizeof(path));
                fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
                if (fd < 0) {
                        fprintf(stderr, "gmem-example-vmm: open '%s': %m\n", path);
                        return -errno;
                }
                n = gmem_snapshot_write(m->regions[i].mem, fd, NULL);
                close(fd);
                if (n < 0) {
                        fprintf(stderr, "gmem-example-vmm: snapshot to '%s': %s\n", path, gmem_last_error());
                        return (int) n;
                }
                data += (uint64_t) n;
        }
        printf("snapshot        %u region%s to %s%s: %" PRIu64 " MiB of data in %.3f s\n", m->n_regions,
               m->n_regions > 1 ? "s" : "", m->snapshot_to, m->n_regions > 1 ? "(.N)" : "", data / MiB, mono_sec() - t);
        return 0;
}

/* --lazy: serve every region's faults, and between them prefetch the rest, until told to stop */
static void *serve_regions(void *arg) {
        struct vmm *m = arg;

        while (!m->servers_stop) {
                struct pollfd p[MAX_REGIONS];
                bool all = true;
                for (unsigned i = 0; i < m->n_regions; i++) {
                        p[i] = (struct pollfd) { .fd = m->uffds[i], .events = POLLIN };
                        all &= gmem_page_server_complete(m->servers[i]);
                }
                (void) poll(p, m->n_regions, all ? 20 : 0);
                for (unsigned i = 0; i < m->n_regions; i++) {
                        int64_t k = gmem_page_server_run(m->servers[i], 0);
                        if (k >= 0 && !gmem_page_server_complete(m->servers[i]))
                                k = gmem_page_server_prefetch(m->servers[i], 8 * MiB);
                        if (k < 0) {
                                /* the guest's faults stay unserved — never zeroes — so the VM cannot go on:
                                 * a VMM stops it; this one exits */
                                fprintf(stderr, "gmem-example-vmm: page server of %s: %s; stopping the VM\n",
                                        m->regions[i].name, gmem_last_error());
                                m->servers_error = (int) k;
                                _exit(1);
                        }
                }
                if (!all && !m->resident_at) {
                        bool now = true;
                        for (unsigned i = 0; i < m->n_regions; i++)
                                now &= gmem_page_server_complete(m->servers[i]);
                        if (now)
                                m->resident_at = mono_sec();
                }
        }
        return NULL;
}

/* --restore: each region from its snapshot — now (eager), or as the guest touches it (lazy) */
static int restore_regions(struct vmm *m) {
        m->restore_start = mono_sec();
        for (unsigned i = 0; i < m->n_regions; i++) {
                char path[PATH_MAX];
                void *addr;
                int k;

                snapshot_path(m->restore_from, i, path, sizeof(path));
                /* lazy: writable where it may be, for the hot list this run leaves in it */
                m->snaps[i] = m->lazy ? open(path, O_RDWR | O_CLOEXEC) : -1;
                if (m->snaps[i] < 0)
                        m->snaps[i] = open(path, O_RDONLY | O_CLOEXEC);
                if (m->snaps[i] < 0) {
                        fprintf(stderr, "gmem-example-vmm: open '%s': %m\n", path);
                        return -errno;
                }
                if (!m->lazy) {
                        int64_t n = gmem_snapshot_restore(m->regions[i].mem, m->snaps[i], NULL);
                        if (n < 0) {
                                fprintf(stderr, "gmem-example-vmm: restore %s from '%s': %s\n", m->regions[i].name, path,
                                        gmem_last_error());
                                return (int) n;
                        }
                        continue;
                }
                /* the guest's memory is the region's mapping (its memslot's userspace_addr): faults on
                 * it, KVM's among them, go to the page server — gmemd's, which writes the file it
                 * holds too and maps its pages into ours (a restart of gmemd leaves our faults
                 * waiting for the next one), or our own */
                if (m->client) {
                        uint64_t job = 0;
                        if ((k = gmem_region_map(m->regions[i].mem, &addr)) < 0 ||
                            (k = gmem_uffd_register(addr, m->regions[i].size, true, &m->uffds[i])) < 0 ||
                            (k = gmem_client_serve_uffd(m->client, m->regions[i].name, m->uffds[i], (uintptr_t) addr, m->snaps[i],
                                                        GMEM_SERVE_SHARED | (m->no_prefetch ? GMEM_SERVE_NO_PREFETCH : 0),
                                                        &job)) < 0) {
                                fprintf(stderr, "gmem-example-vmm: lazy restore %s from '%s' by gmemd: %s\n",
                                        m->regions[i].name, path, gmem_last_error());
                                return k;
                        }
                        printf("restore         %s served by gmemd (job %" PRIu64 "%s)\n", m->regions[i].name, job,
                               m->no_prefetch ? ", faults only" : "");
                        continue;
                }
                if ((k = gmem_region_map(m->regions[i].mem, &addr)) < 0 ||
                    (k = gmem_uffd_register(addr, m->regions[i].size, false, &m->uffds[i])) < 0 ||
                    (k = gmem_page_server_new(m->uffds[i], (uintptr_t) addr, m->snaps[i], NULL, &m->servers[i])) < 0) {
                        fprintf(stderr, "gmem-example-vmm: lazy restore %s from '%s': %s\n", m->regions[i].name, path,
                                gmem_last_error());
                        return k;
                }
        }
        if (m->lazy && !m->client) {
                if (pthread_create(&m->server_thread, NULL, serve_regions, m) != 0) {
                        fprintf(stderr, "gmem-example-vmm: page server thread: %m\n");
                        return -errno;
                }
                m->server_running = true;
        }
        if (!m->lazy)
                m->resident_at = mono_sec();
        printf("restore         %s from %s%s: the guest may start after %.3f ms\n", m->lazy ? "lazy" : "eager",
               m->restore_from, m->n_regions > 1 ? "(.N)" : "", (mono_sec() - m->restore_start) * 1e3);
        return 0;
}

/* wait is false on the way out after a failure: stop the page server at once */
static void restore_done(struct vmm *m, bool wait) {
        if (m->server_running) {
                /* the guest ran; the rest comes in the background: wait for it, for the figure */
                for (int i = 0; wait && i < 30000 && !m->resident_at && !m->servers_error; i++)
                        usleep(1000);
                m->servers_stop = true;
                pthread_join(m->server_thread, NULL);
                m->server_running = false;
        }
        if (m->resident_at && !m->restore_reported) {
                unsigned hot = 0;
                uint64_t faults = 0;
                for (unsigned i = 0; i < m->n_regions; i++)
                        faults += gmem_page_server_faults(m->servers[i]);
                if (m->lazy)
                        printf("restore         fully resident after %.3f ms, %" PRIu64 " faults served\n",
                               (m->resident_at - m->restore_start) * 1e3, faults);
                else
                        printf("restore         fully resident after %.3f ms\n", (m->resident_at - m->restore_start) * 1e3);
                m->restore_reported = true;
                /* where this guest faulted first: the next lazy restore prefetches it first */
                for (unsigned i = 0; wait && i < m->n_regions; i++) {
                        int k = m->servers[i] && (fcntl(m->snaps[i], F_GETFL) & O_ACCMODE) == O_RDWR ?
                                gmem_page_server_save_hot(m->servers[i], m->snaps[i]) : -EBADF;
                        if (k > 0)
                                hot += (unsigned) k;
                }
                if (hot)
                        printf("restore         hot list: %u blocks in the snapshot, prefetched first next time\n", hot);
        }
        for (unsigned i = 0; i < m->n_regions; i++) {
                m->servers[i] = gmem_page_server_free(m->servers[i]);
                if (m->uffds[i] >= 0)
                        close(m->uffds[i]);
                if (m->snaps[i] >= 0)
                        close(m->snaps[i]);
                m->uffds[i] = m->snaps[i] = -1;
        }
}

/* --corrupt: one byte of the last populated region differs from the image from now on. */
static int corrupt_memory(struct vmm *m) {
        unsigned i = m->n_regions;
        uint64_t off;
        uint8_t *p;
        int k;

        while (i > 0 && m->regions[i - 1].image_len < 4)
                i--;
        if (i-- == 0) {
                fprintf(stderr, "gmem-example-vmm: --corrupt: the image is too small to check\n");
                return -EINVAL;
        }
        off = align_down(m->regions[i].image_len / 2, 4);
        k = gmem_region_map(m->regions[i].mem, (void **) &p);
        if (k < 0) {
                fprintf(stderr, "gmem-example-vmm: %s\n", gmem_last_error());
                return k;
        }
        p[off] ^= 0xff;
        printf("corrupted       the byte at GPA 0x%" PRIx64 " (%s+0x%" PRIx64 "), as --corrupt asks\n", m->regions[i].gpa + off,
               m->regions[i].name, off);
        return 0;
}

/*
 * 5. What each vCPU hashes: vCPU v the v-th share of every region's image bytes, in page-aligned
 * shares. Range ids go vCPU by vCPU, so each vCPU's ranges are consecutive in checks[] and
 * ranges[]. The host hashes the image for each.
 */
static int plan_checks(struct vmm *m) {
        m->checks = calloc((size_t) m->n_regions * m->n_vcpus, sizeof(*m->checks));
        m->ranges = calloc((size_t) m->n_regions * m->n_vcpus, sizeof(*m->ranges));
        if (!m->checks || !m->ranges) {
                fprintf(stderr, "gmem-example-vmm: out of memory\n");
                return -ENOMEM;
        }
        for (unsigned v = 0; v < m->n_vcpus; v++) {
                struct vcpu_thread *t = &m->threads[v];

                *t = (struct vcpu_thread) {
                        .vm = m->vm, .index = v, .ranges = m->ranges + m->n_checks, .first_id = m->n_checks,
                };
                for (unsigned i = 0; i < m->n_regions; i++) {
                        const struct region *r = &m->regions[i];
                        uint64_t len = align_down(r->image_len, 4); /* the guest hashes dwords */
                        uint64_t share = align_up((len + m->n_vcpus - 1) / m->n_vcpus, page_size());
                        uint64_t off = MIN(v * share, len);
                        struct check *c = &m->checks[m->n_checks];

                        if (off == len)
                                continue;
                        c->vcpu = v;
                        c->region = i;
                        c->range = (struct minivm_range) { .gpa = r->gpa + off, .len = MIN(share, len - off) };
                        c->host_hash = minivm_checksum_host(m->image_map + r->image_off + off, c->range.len);
                        m->ranges[m->n_checks++] = c->range;
                        m->checked_bytes += c->range.len;
                        t->n++;
                }
        }
        return 0;
}

static void *vcpu_main(void *arg) {
        struct vcpu_thread *t = arg;

        t->result = minivm_run(t->vm, t->index, t->ranges, t->n, t->first_id);
        return NULL;
}

/* Run every vCPU on its own thread until its guest halts. */
static int run_vcpus(struct vmm *m) {
        unsigned started;
        double t = mono_sec();
        int k = 0;

        for (started = 0; started < m->n_vcpus; started++) {
                k = -pthread_create(&m->threads[started].thread, NULL, vcpu_main, &m->threads[started]);
                if (k < 0) {
                        fprintf(stderr, "gmem-example-vmm: start a vCPU thread: %s\n", strerror(-k));
                        break;
                }
        }
        for (unsigned v = 0; v < started; v++)
                pthread_join(m->threads[v].thread, NULL);
        t = mono_sec() - t;
        if (k < 0)
                return k;
        for (unsigned v = 0; v < m->n_vcpus; v++)
                if (m->threads[v].result < 0) {
                        fprintf(stderr, "gmem-example-vmm: vcpu %u: %s (%s)\n", v, strerror(-m->threads[v].result),
                                minivm_last_exit(m->vm, v));
                        return m->threads[v].result;
                }
        printf("guest           %u vCPU%s hashed %" PRIu64 " MiB in %zu ranges in %.3f s: %.2f GiB/s;"
               " its report on serial port 0x%x:\n",
               m->n_vcpus, m->n_vcpus > 1 ? "s" : "", m->checked_bytes / MiB, m->n_checks, t,
               (double) m->checked_bytes / GiB / t, MINIVM_SERIAL_PORT);
        return 0;
}

/*
 * 6. Print vCPU v's serial output, each line with the host's verdict, and tick off the ranges it
 * reports. Returns the number of bad lines: mismatches and anything malformed.
 */
static unsigned check_report(struct vmm *m, unsigned v) {
        const char *p = minivm_serial_output(m->vm, v);
        unsigned bad = 0;
        bool done = false;

        while (*p) {
                struct minivm_report_line line;
                int len = (int) strcspn(p, "\n");
                int k = minivm_parse_report_line(p, &line);
                struct check *c = k >= 0 && !line.done && line.id < m->n_checks ? &m->checks[line.id] : NULL;
                char verdict[64] = "";

                if (k < 0)
                        snprintf(verdict, sizeof(verdict), "MALFORMED: not a report line");
                else if (done || line.vcpu != v)
                        snprintf(verdict, sizeof(verdict), "MALFORMED: %s", done ? "after done" : "from another vCPU");
                else if (line.done)
                        done = true;
                else if (!c || c->vcpu != v || c->reported || c->range.gpa != line.gpa || c->range.len != line.len)
                        snprintf(verdict, sizeof(verdict), "MALFORMED: not a range this vCPU was given");
                else if (c->reported = true, line.hash == c->host_hash)
                        snprintf(verdict, sizeof(verdict), "host: match");
                else
                        snprintf(verdict, sizeof(verdict), "MISMATCH: host 0x%08" PRIx32, c->host_hash);
                if (strncmp(verdict, "MALFORMED", 9) == 0 || strncmp(verdict, "MISMATCH", 8) == 0)
                        bad++;
                if (*verdict)
                        printf("  %-*.*s %s\n", REPORT_WIDTH, len, p, verdict);
                else
                        printf("  %.*s\n", len, p);
                p += len + (p[len] == '\n');
        }
        if (!done) {
                printf("  %-*s MALFORMED: vcpu %u did not say done\n", REPORT_WIDTH, "", v);
                bad++;
        }
        return bad;
}

/* The verdict over all vCPUs' reports: 0 when the guest saw exactly the image. */
static int check_reports(struct vmm *m) {
        unsigned bad = 0;

        for (unsigned v = 0; v < m->n_vcpus; v++)
                bad += check_report(m, v);
        for (size_t i = 0; i < m->n_checks; i++)
                if (!m->checks[i].reported) {
                        printf("  %-*s MISSING: range %zu (vcpu %u, %s)\n", REPORT_WIDTH, "", i, m->checks[i].vcpu,
                               m->regions[m->checks[i].region].name);
                        bad++;
                }
        if (bad) {
                printf("MISMATCH        %u bad line%s in the guest's report: it did not see the image\n", bad,
                       bad > 1 ? "s" : "");
                return -EBADMSG;
        }
        printf("verified        %zu of %zu ranges match the image: %" PRIu64 " MiB in %u region%s\n", m->n_checks,
               m->n_checks, m->checked_bytes / MiB, m->n_regions, m->n_regions > 1 ? "s" : "");
        return 0;
}

/* 7. The lifetime story: stay alive with the VM and its memory, to be killed. */
static void hold(const struct vmm *m) {
        struct timespec left = { .tv_sec = (time_t) m->hold };

        printf("holding         for %" PRIu64 " s (pid %d): kill me, and `gmemctl info %s` %s\n", m->hold, (int) getpid(),
               m->regions[0].name, m->client ? "still shows the region, held by gmemd" : "shows nothing: no --gmemd");
        while (nanosleep(&left, &left) < 0 && errno == EINTR)
                ;
}

/* --wait-file: this process reads a byte of each region first (served now, by whoever serves),
 * then waits for the file; the guest touches the rest after. */
static int wait_for_file(struct vmm *m) {
        unsigned sum = 0;

        for (unsigned i = 0; i < m->n_regions; i++) {
                void *addr;
                if (gmem_region_map(m->regions[i].mem, &addr) == 0)
                        sum += ((volatile uint8_t *) addr)[m->regions[i].size / 2];
        }
        printf("waiting         for %s (pid %d; memory touched: %u)\n", m->wait_file, (int) getpid(), sum & 0xff);
        for (int i = 0; i < 30000; i++) {
                if (access(m->wait_file, F_OK) == 0)
                        return 0;
                usleep(10 * 1000);
        }
        fprintf(stderr, "gmem-example-vmm: %s did not appear within 5 minutes\n", m->wait_file);
        return -ETIMEDOUT;
}

static void usage(FILE *f) {
        fprintf(f,
                "usage: gmem-example-vmm [--memory SIZE] [--regions N] [--vcpus N] [--image FILE]\n"
                "                        [--gmemd[=SOCKET]] [--name NAME] [--hold SECONDS] [--corrupt]\n"
                "                        [--snapshot FILE] [--restore FILE [--lazy [--no-prefetch]]]\n"
                "                        [--wait-file PATH]\n"
                "Run a guest on guest_memfd regions (memfd where the kernel has no guest_memfd to use)\n"
                "populated with an image, and check what it sees.\n"
                "  --memory SIZE     guest memory in all, split evenly among the regions in 2 MiB units\n"
                "                    (K/M/G suffixes; default 256M)\n"
                "  --regions N       memory regions (default 3, at most %u): the first at 1 MiB,\n"
                "                    the others from 4 GiB up, each on a 2 GiB boundary\n"
                "  --vcpus N         vCPUs, one thread each (default 1, at most %u); each hashes its\n"
                "                    share of every region and reports on its serial port\n"
                "  --image FILE      guest image, at most the memory's size, split across the regions in\n"
                "                    order (default: a generated one of the memory's size)\n"
                "  --gmemd[=SOCKET]  register the regions with gmemd as NAME-0, NAME-1, ... and let it\n"
                "                    populate them (socket: SOCKET, $GMEMD_SOCKET or the default path);\n"
                "                    without it, libgmem populates them in this process\n"
                "  --name NAME       the regions' names at gmemd: NAME-0, NAME-1, ... (default vm-PID)\n"
                "  --hold SECONDS    after the check, keep running this long: kill the VMM then, and\n"
                "                    `gmemctl info NAME-0` shows the region still held by gmemd\n"
                "  --corrupt         self-test: flip a byte of guest memory after populating it, so the\n"
                "                    check must fail (a MISMATCH line, exit status 1)\n"
                "  --snapshot FILE   after populating, write each region to a snapshot: FILE, FILE.1, ...\n"
                "  --restore FILE    instead of populating, restore each region from FILE, FILE.1, ...\n"
                "  --lazy            with --restore: start the guest at once and serve its memory from\n"
                "                    the snapshot as it faults (userfaultfd; memfd regions), prefetching\n"
                "                    the rest; prints the time to the guest's start and to fully resident;\n"
                "                    with --gmemd, gmemd is the page server\n"
                "  --no-prefetch     with --lazy --gmemd: gmemd serves the faults only\n"
                "  --wait-file PATH  before the guest runs (its memory touched once by this process),\n"
                "                    wait up to 5 minutes for PATH to exist (a test restarts gmemd then)\n"
                "Exit status: 0 when the guest saw exactly the image, 1 otherwise, 2 for bad usage.\n",
                MAX_REGIONS, MINIVM_MAX_VCPUS);
}

/* 0 to run, 1 to exit 0 (--help), or -EINVAL after a message. */
static int parse_args(struct vmm *m, int argc, char **argv) {
        static const struct option options[] = {
                { "memory", required_argument, NULL, 'm' },
                { "regions", required_argument, NULL, 'r' },
                { "vcpus", required_argument, NULL, 'c' },
                { "image", required_argument, NULL, 'i' },
                { "gmemd", optional_argument, NULL, 'g' },
                { "name", required_argument, NULL, 'n' },
                { "hold", required_argument, NULL, 'H' },
                { "corrupt", no_argument, NULL, 'C' },
                { "snapshot", required_argument, NULL, 'S' },
                { "restore", required_argument, NULL, 'R' },
                { "lazy", no_argument, NULL, 'L' },
                { "no-prefetch", no_argument, NULL, 'P' },
                { "wait-file", required_argument, NULL, 'W' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        static char default_name[32];
        uint64_t v;
        int c;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case 'm':
                        if (parse_size(optarg, &m->memory) < 0 || m->memory == 0 || m->memory > 1024 * GiB) {
                                fprintf(stderr, "gmem-example-vmm: invalid size '%s'\n", optarg);
                                return -EINVAL;
                        }
                        break;
                case 'r':
                case 'c':
                        if (parse_uint64(optarg, c == 'r' ? MAX_REGIONS : MINIVM_MAX_VCPUS, &v) < 0 || v == 0) {
                                fprintf(stderr, "gmem-example-vmm: --%s takes 1 to %u, not '%s'\n",
                                        c == 'r' ? "regions" : "vcpus", c == 'r' ? MAX_REGIONS : MINIVM_MAX_VCPUS, optarg);
                                return -EINVAL;
                        }
                        *(c == 'r' ? &m->n_regions : &m->n_vcpus) = (unsigned) v;
                        break;
                case 'H':
                        if (parse_uint64(optarg, MAX_HOLD, &m->hold) < 0) {
                                fprintf(stderr, "gmem-example-vmm: --hold takes 0 to %u seconds, not '%s'\n", MAX_HOLD, optarg);
                                return -EINVAL;
                        }
                        break;
                case 'i':
                        m->image_path = optarg;
                        break;
                case 'g':
                        m->use_gmemd = true;
                        m->gmemd_socket = optarg;
                        break;
                case 'n':
                        m->name = optarg;
                        break;
                case 'C':
                        m->corrupt = true;
                        break;
                case 'S':
                        m->snapshot_to = optarg;
                        break;
                case 'R':
                        m->restore_from = optarg;
                        break;
                case 'L':
                        m->lazy = true;
                        break;
                case 'P':
                        m->no_prefetch = true;
                        break;
                case 'W':
                        m->wait_file = optarg;
                        break;
                case 'h':
                        usage(stdout);
                        return 1;
                default:
                        usage(stderr);
                        return -EINVAL;
                }
        if (optind < argc) {
                fprintf(stderr, "gmem-example-vmm: unexpected argument '%s'\n", argv[optind]);
                return -EINVAL;
        }
        if (m->lazy && !m->restore_from) {
                fprintf(stderr, "gmem-example-vmm: --lazy goes with --restore FILE\n");
                return -EINVAL;
        }
        if (m->restore_from && m->corrupt) {
                fprintf(stderr, "gmem-example-vmm: --corrupt checks a populate, not a --restore\n");
                return -EINVAL;
        }
        if (m->no_prefetch && !(m->lazy && m->use_gmemd)) {
                fprintf(stderr, "gmem-example-vmm: --no-prefetch goes with --restore FILE --lazy --gmemd\n");
                return -EINVAL;
        }
        if (!m->name) {
                snprintf(default_name, sizeof(default_name), "vm-%d", (int) getpid());
                m->name = default_name;
        }
        return 0;
}

int main(int argc, char **argv) {
        struct vmm m = { .memory = 256 * MiB, .n_regions = 3, .n_vcpus = 1, .image = -1 };

        for (unsigned i = 0; i < MAX_REGIONS; i++)
                m.uffds[i] = m.snaps[i] = -1;
        char names[128];
        const char *why;
        int k, profile, ret = 1;

        setvbuf(stdout, NULL, _IOLBF, 0); /* whoever watches our output sees each line at once */
        k = parse_args(&m, argc, argv);
        if (k != 0)
                return k > 0 ? 0 : 2;
        if (layout_regions(&m) < 0)
                return 2;

        /* 1. What this kernel offers */
        if ((k = gmem_kernel_profile_from_env(&profile)) < 0 || (k = gmem_host_caps_new(profile, &m.caps)) < 0 ||
            gmem_host_caps_kvm_error(m.caps)) {
                fprintf(stderr, "gmem-example-vmm: this host cannot run guests (%s)\n",
                        k < 0 ? gmem_last_error() : strerror(-gmem_host_caps_kvm_error(m.caps)));
                m.caps = gmem_host_caps_free(m.caps);
                return 1;
        }
        if (gmem_host_caps_pick_guest_memory(m.caps, &m.backend, &m.flags, &why) < 0) {
                fprintf(stderr, "gmem-example-vmm: %s\n", gmem_last_error());
                m.caps = gmem_host_caps_free(m.caps);
                return 1;
        }
        if (m.lazy && m.backend == GMEM_BACKEND_GUEST_MEMFD) {
                /* A guest_memfd memslot's pages reach the guest through the file, not through the
                 * VMM's mapping, so a userfaultfd on the mapping would not see the guest's faults
                 * even where the kernel lets one be registered there (7.1, secret hiding). */
                printf("lazy restore    guest memory on memfd: a guest's faults on guest_memfd do not reach a "
                       "userfaultfd on the VMM's mapping\n");
                m.backend = GMEM_BACKEND_MEMFD;
                m.flags = 0;
        } else if (m.backend == GMEM_BACKEND_GUEST_MEMFD) /* MMAP | INIT_SHARED | NO_DIRECT_MAP, where present */
                printf("guest_memfd     flags 0x%" PRIx64 " = %s: the best this kernel offers; %s\n", m.flags,
                       flag_names(m.caps, m.flags, names, sizeof(names)), why);
        else
                printf("memfd           guest memory on memfd, not guest_memfd: %s\n", why);

        if (open_image(&m) < 0)
                goto out;

        /* 2. The VM and its memory */
        k = minivm_new_vcpus(m.n_vcpus, &m.vm);
        if (k < 0) {
                fprintf(stderr, "gmem-example-vmm: create the VM: %s\n", strerror(-k));
                goto out;
        }
        printf("vm              %u vCPU%s, %u %s region%s; image %s, %" PRIu64 " MiB\n", m.n_vcpus,
               m.n_vcpus > 1 ? "s" : "", m.n_regions, gmem_backend_to_string(m.backend), m.n_regions > 1 ? "s" : "", m.image_path ?: "generated",
               m.image_size / MiB);
        if (create_regions(&m) < 0)
                goto out;

        /* 3. Their content: the image, or a snapshot of it */
        if (m.restore_from ? restore_regions(&m) < 0 : populate_regions(&m) < 0)
                goto out;
        if (m.corrupt && corrupt_memory(&m) < 0)
                goto out;
        if (m.snapshot_to && snapshot_regions(&m) < 0)
                goto out;

        /* 4. The memslots */
        for (unsigned i = 0; i < m.n_regions; i++) {
                const struct region *r = &m.regions[i];

                k = gmem_kvm_bind(minivm_vm_fd(m.vm), r->slot, r->gpa, r->mem, 0, r->size);
                if (k < 0) {
                        fprintf(stderr, "gmem-example-vmm: %s\n", gmem_last_error());
                        goto out;
                }
        }

        if (m.wait_file && wait_for_file(&m) < 0)
                goto out;

        /* 5. The guest, and 6. what it reports */
        if (plan_checks(&m) < 0 || run_vcpus(&m) < 0)
                goto out;
        ret = check_reports(&m) < 0 ? 1 : 0;
        restore_done(&m, true);
        if (m.servers_error)
                ret = 1;

        /* 7. The lifetime story */
        if (m.hold > 0)
                hold(&m);
out:
        restore_done(&m, false);
        free(m.checks);
        free(m.ranges);
        gmem_client_free(m.client);
        for (unsigned i = 0; i < m.n_regions; i++)
                gmem_region_free(m.regions[i].mem);
        minivm_free(m.vm);
        if (m.image_map)
                munmap((void *) m.image_map, m.image_size);
        if (m.image >= 0)
                close(m.image);
        gmem_host_caps_free(m.caps);
        return ret;
}
