/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gmemctl: the operator's command line for gmem. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "gmem/gmem.h"
#include "kvm-compat.h"
#include "macro.h"

static struct {
        const char *socket;
        bool json;
} arg;

static int fail(int err, const char *what) {
        const char *why = gmem_last_error();
        fprintf(stderr, "gmemctl: %s: %s\n", what, *why ? why : strerror(-err));
        return 1;
}

static const char *yes_no(bool b) {
        return b ? "yes" : "no";
}

static void print_flag(const char *name, uint64_t bit, const char *meaning) {
        if (bit)
                printf("  %-15s 0x%-6" PRIx64 " %s\n", name, bit, meaning);
        else
                printf("  %-15s %-8s %s\n", name, "-", "not on this kernel");
}

static int cmd_caps(int argc, char **argv) {
        static const char *const vm_type_names[] = { "default", "sw_protected", "sev", "sev_es", "snp", "tdx" };
        struct gmem_caps c;
        int k;

        if (argc > 1) {
                fprintf(stderr, "gmemctl: caps: unexpected argument '%s'\n", argv[1]);
                return 2;
        }
        k = gmem_caps_probe(&c);
        if (k < 0)
                return fail(k, "caps");
        if (arg.json) {
                _cleanup_free_ char *s = NULL;
                k = gmem_caps_to_json(&c, &s);
                if (k < 0)
                        return fail(k, "caps");
                printf("%s\n", s);
                return 0;
        }

        printf("kernel          %s (profile %s, %s)\n", c.kernel_release, gmem_kernel_profile_to_string(c.profile),
               c.profile_source == GMEM_PROFILE_EXPLICIT ? "set explicitly" : "detected by behaviour");
        if (c.kvm_error)
                printf("/dev/kvm        unusable: %s\n", strerror(-c.kvm_error));
        else
                printf("/dev/kvm        usable, API version %d\n", c.kvm_api_version);
        printf("guest_memfd     %s, flags 0x%" PRIx64 "%s\n", yes_no(c.guest_memfd), c.guest_memfd_flags,
               c.flags_unknown ? " (some bits unidentified)" : "");
        print_flag("MMAP", c.flag_mmap, "host can mmap the guest_memfd");
        print_flag("INIT_SHARED", c.flag_init_shared, "pages start shared with the host");
        print_flag("NO_DIRECT_MAP", c.flag_no_direct_map, "pages leave the kernel's direct map");
        print_flag("WRITE", c.flag_write, "write() populates the guest_memfd");
        printf("  write()         %s\n", yes_no(c.gmem_write));
        printf("user memory2    %s\n", yes_no(c.user_memory2));
        printf("VM types       ");
        for (int t = 0; t < GMEM_VM_TYPES_MAX; t++)
                if (c.vm_types & (UINT64_C(1) << t))
                        printf(" %s (memory attributes 0x%" PRIx64 ")",
                               t < (int) ELEMENTSOF(vm_type_names) ? vm_type_names[t] : "unknown", c.memory_attributes[t]);
        printf("\n");
        bool private = false;
        for (int t = 0; t < GMEM_VM_TYPES_MAX; t++)
                private |= !!(c.memory_attributes[t] & KVM_MEMORY_ATTRIBUTE_PRIVATE);
        printf("conversion      memory attributes %s, in place %s\n", yes_no(private), yes_no(c.inplace_conversion));
        printf("memfd_secret    %s%s%s\n", yes_no(c.memfd_secret), c.memfd_secret ? "" : ": ",
               c.memfd_secret ? "" : strerror(-c.memfd_secret_error));
        printf("hugetlb        ");
        if (!c.n_hugetlb)
                printf(" none");
        for (unsigned i = 0; i < c.n_hugetlb; i++)
                printf(" %" PRIu64 "K: %" PRIu64 "/%" PRIu64 " free", c.hugetlb[i].page_size / 1024,
                       c.hugetlb[i].free_pages, c.hugetlb[i].total_pages);
        printf("\n");
        printf("THP             %s (shmem %s)\n", c.thp, c.shmem_thp);
        return 0;
}

static const struct {
        const char *name;
        int (*fn)(int argc, char **argv);
        const char *help;
} commands[] = {
        { "caps", cmd_caps, "what this kernel offers for guest memory" },
};

static void usage(FILE *f) {
        fprintf(f, "usage: gmemctl [--socket PATH] [--json] COMMAND [ARGS...]\n\ncommands:\n");
        for (size_t i = 0; i < ELEMENTSOF(commands); i++)
                fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].help);
}

int main(int argc, char **argv) {
        static const struct option options[] = {
                { "socket", required_argument, NULL, 's' },
                { "json", no_argument, NULL, 'j' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        int c;

        while ((c = getopt_long(argc, argv, "+hj", options, NULL)) >= 0)
                switch (c) {
                case 's':
                        arg.socket = optarg;
                        break;
                case 'j':
                        arg.json = true;
                        break;
                case 'h':
                        usage(stdout);
                        return 0;
                default:
                        usage(stderr);
                        return 2;
                }
        if (optind >= argc) {
                usage(stderr);
                return 2;
        }
        for (size_t i = 0; i < ELEMENTSOF(commands); i++)
                if (strcmp(argv[optind], commands[i].name) == 0)
                        return commands[i].fn(argc - optind, argv + optind);
        fprintf(stderr, "gmemctl: unknown command '%s' (see gmemctl --help)\n", argv[optind]);
        return 2;
}
