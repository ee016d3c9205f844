/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * gmem-example-vmm: the smallest useful VMM on libgmem, and the reference for VMM authors.
 *
 *   1. probe the kernel and pick the best guest_memfd flags it offers;
 *   2. create a VM and a guest_memfd region on it (the VMM must: only the VM's creator can);
 *   3. populate the guest image into it: in-process through libgmem, or — with --gmemd — by
 *      registering the region with gmemd (which keeps its own dup: the memory outlives this
 *      process) and asking the daemon to populate it from the image fd we pass;
 *   4. bind it as a memslot and run a guest that checksums its memory and reports over port I/O;
 *   5. compare with the checksum of the image computed on the host.
 */
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
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

#define GUEST_GPA MINIVM_FIRST_FREE_GPA
#define GUEST_SLOT MINIVM_FIRST_FREE_SLOT

static double now(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return ts.tv_sec + ts.tv_nsec / 1e9;
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

static void usage(FILE *f) {
        fprintf(f, "usage: gmem-example-vmm [--memory SIZE] [--image FILE] [--threads N] [--verify SIZE]\n"
                   "                        [--gmemd [SOCKET]] [--name NAME]\n"
                   "  --memory SIZE  guest memory (K/M/G suffixes; default 256M)\n"
                   "  --gmemd        register the memory with gmemd and let it populate the image\n"
                   "                 (socket: the argument, $GMEMD_SOCKET, or the default path)\n"
                   "  --name NAME    the region's name at gmemd (default vm-PID)\n"
                   "  --image FILE   guest image to load (default: a generated one of the memory's size)\n"
                   "  --threads N    populate threads (default: libgmem's choice)\n"
                   "  --verify SIZE  how much the guest checksums (default: the whole image)\n");
}

int main(int argc, char **argv) {
        static const struct option options[] = {
                { "memory", required_argument, NULL, 'm' },
                { "image", required_argument, NULL, 'i' },
                { "threads", required_argument, NULL, 't' },
                { "verify", required_argument, NULL, 'v' },
                { "gmemd", optional_argument, NULL, 'g' },
                { "name", required_argument, NULL, 'n' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        uint64_t mem = 256 * MiB, image_size, verify = 0;
        struct gmem_populate_opts opts = { 0 };
        const char *image_path = NULL, *gmemd_socket = NULL, *name = NULL;
        bool use_gmemd = false;
        struct gmem_client *client = NULL;
        char default_name[32];
        struct gmem_region *region = NULL;
        struct minivm *vm = NULL;
        struct gmem_caps caps;
        _cleanup_close_ int image = -1;
        uint32_t guest_hash, host_hash;
        double t0, t_pop, t_guest;
        void *image_map;
        uint64_t flags;
        int c, k, ret = 1;

        while ((c = getopt_long(argc, argv, "m:i:t:v:h", options, NULL)) >= 0)
                switch (c) {
                case 'm':
                case 'v':
                        if (parse_size(optarg, c == 'm' ? &mem : &verify) < 0 || (c == 'm' && mem == 0)) {
                                fprintf(stderr, "gmem-example-vmm: invalid size '%s'\n", optarg);
                                return 2;
                        }
                        break;
                case 'i':
                        image_path = optarg;
                        break;
                case 'g':
                        use_gmemd = true;
                        gmemd_socket = optarg;
                        break;
                case 'n':
                        name = optarg;
                        break;
                case 't':
                        opts.threads = (unsigned) strtoul(optarg, NULL, 10);
                        break;
                case 'h':
                        usage(stdout);
                        return 0;
                default:
                        usage(stderr);
                        return 2;
                }

        k = gmem_caps_probe(&caps);
        if (k < 0 || caps.kvm_error || !caps.guest_memfd) {
                fprintf(stderr, "gmem-example-vmm: this host cannot run guests on guest_memfd (%s)\n",
                        k < 0 ? gmem_last_error() : caps.kvm_error ? strerror(-caps.kvm_error) : "no KVM_CAP_GUEST_MEMFD");
                return 1;
        }
        flags = gmem_caps_best_guest_memfd_flags(&caps);
        mem = align_up(mem, 2 * MiB);

        if (image_path) {
                struct stat st;
                image = open(image_path, O_RDONLY | O_CLOEXEC);
                if (image < 0 || fstat(image, &st) < 0) {
                        fprintf(stderr, "gmem-example-vmm: open '%s': %m\n", image_path);
                        return 1;
                }
                image_size = (uint64_t) st.st_size;
                if (image_size == 0 || image_size > mem) {
                        fprintf(stderr, "gmem-example-vmm: image '%s' has %" PRIu64 " bytes; guest memory is %" PRIu64 "\n",
                                image_path, image_size, mem);
                        return 1;
                }
        } else {
                image_size = mem;
                image = generate_image(image_size);
                if (image < 0) {
                        fprintf(stderr, "gmem-example-vmm: generate a guest image: %s\n", strerror(-image));
                        return 1;
                }
        }
        verify = align_down(verify ? MIN(verify, image_size) : image_size, 4);

        k = minivm_new(&vm);
        if (k < 0) {
                fprintf(stderr, "gmem-example-vmm: create the VM: %s\n", strerror(-k));
                return 1;
        }
        k = gmem_region_new_guest_memfd(minivm_vm_fd(vm), mem, flags, &region);
        if (k < 0) {
                fprintf(stderr, "gmem-example-vmm: %s\n", gmem_last_error());
                goto out;
        }
        printf("guest memory    %" PRIu64 " MiB guest_memfd, flags 0x%" PRIx64 " (kernel profile %s)\n", mem / MiB, flags,
               gmem_kernel_profile_to_string(caps.profile));

        if (use_gmemd) {
                if (!name) {
                        snprintf(default_name, sizeof(default_name), "vm-%d", (int) getpid());
                        name = default_name;
                }
                k = gmem_client_connect(gmemd_socket, &client);
                if (k >= 0)
                        k = gmem_client_register(client, name, region);
                if (k < 0) {
                        fprintf(stderr, "gmem-example-vmm: gmemd: %s\n", gmem_last_error());
                        goto out;
                }
                printf("registered      as '%s' with gmemd: it now holds the memory too\n", name);
        }

        t0 = now();
        if (client)
                k = gmem_client_populate_fd(client, name, 0, image, 0, image_size);
        else
                k = (int) MIN(gmem_populate_fd(region, 0, image, 0, image_size, &opts), 0);
        t_pop = now() - t0;
        if (k < 0) {
                fprintf(stderr, "gmem-example-vmm: populate: %s\n", gmem_last_error());
                goto out;
        }
        printf("populated       %" PRIu64 " MiB in %.3f s: %.2f GiB/s%s\n", image_size / MiB, t_pop,
               (double) image_size / GiB / t_pop, client ? " (by gmemd)" : "");

        k = gmem_kvm_bind(minivm_vm_fd(vm), GUEST_SLOT, GUEST_GPA, region, 0, mem);
        if (k < 0) {
                fprintf(stderr, "gmem-example-vmm: %s\n", gmem_last_error());
                goto out;
        }

        t0 = now();
        k = minivm_run_checksum(vm, GUEST_GPA, verify, &guest_hash);
        t_guest = now() - t0;
        if (k < 0) {
                fprintf(stderr, "gmem-example-vmm: guest: %s (%s)\n", strerror(-k), minivm_last_exit(vm));
                goto out;
        }
        image_map = mmap(NULL, verify, PROT_READ, MAP_SHARED, image, 0);
        if (image_map == MAP_FAILED) {
                fprintf(stderr, "gmem-example-vmm: mmap image: %m\n");
                goto out;
        }
        host_hash = minivm_checksum_host(image_map, verify);
        munmap(image_map, verify);

        printf("guest checksum  %" PRIu64 " MiB at 0x%x in %.3f s: guest 0x%08x, host 0x%08x: %s\n", verify / MiB, GUEST_GPA,
               t_guest, guest_hash, host_hash, guest_hash == host_hash ? "match" : "MISMATCH");
        ret = guest_hash == host_hash ? 0 : 1;
out:
        gmem_client_free(client);
        gmem_region_free(region);
        minivm_free(vm);
        return ret;
}
