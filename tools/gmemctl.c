/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gmemctl: the operator's command line for gmem. */
#include <ctype.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <inttypes.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <linux/fs.h>

#include <cjson/cJSON.h>

#include "cli-util.h"
#include "gmem/gmem.h"
#include "gmem-cleanup.h"
#include "kvm-compat.h"
#include "macro.h"
#include "protocol.h"

#define EXIT_USAGE 2
#define EXIT_CANCELLED 130

static struct {
        const char *socket;
        bool json;
        bool user;      /* --user: a user's own gmemd, not the system's */
        bool no_legend; /* --no-legend: tables without their header line */
} arg;

static volatile sig_atomic_t interrupted;

/* ---------------------------------------------------------------------------------------------
 * Messages: exactly one line on stderr for every failure
 */

/* "gmemctl: <command> <name>: <reason>", the reason from libgmem without a repeat of
 * "<command> '<name>': " it may start with; returns 1 (the exit status). */
static int fail(int err, const char *cmd, const char *name) {
        const char *why = gmem_last_error();
        char prefix[128];
        size_t l;

        if (!*why)
                why = strerror(-err);
        if (name) {
                snprintf(prefix, sizeof(prefix), "%s '%s': ", cmd, name);
                l = strlen(prefix);
                if (strncmp(why, prefix, l) == 0)
                        why += l;
        }
        fprintf(stderr, "gmemctl: %s%s%s: ", cmd, name ? " " : "", name ?: "");
        /* one line, whatever the daemon said */
        for (const char *p = why; *p; p++)
                fputc(*p == '\n' || *p == '\r' ? ' ' : *p, stderr);
        fputc('\n', stderr);
        return 1;
}

static int failf(const char *cmd, const char *name, const char *fmt, ...) _printf_(3, 4);
static int failf(const char *cmd, const char *name, const char *fmt, ...) {
        va_list ap;

        fprintf(stderr, "gmemctl: %s%s%s: ", cmd, name ? " " : "", name ?: "");
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
        return 1;
}

static int usage_error(const char *cmd, const char *fmt, ...) _printf_(2, 3);
static int usage_error(const char *cmd, const char *fmt, ...) {
        va_list ap;

        fprintf(stderr, "gmemctl: %s: ", cmd);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fprintf(stderr, " (see gmemctl --help)\n");
        return EXIT_USAGE;
}

/* ---------------------------------------------------------------------------------------------
 * Options every command takes, and argument parsing
 */

enum {
        OPT_SOCKET = 0x100,
        OPT_JSON,
        OPT_SIZE,
        OPT_BACKEND,
        OPT_PAGE_SIZE,
        OPT_PREFAULT,
        OPT_POLICY,
        OPT_FROM,
        OPT_CLIP,
        OPT_TO,
        OPT_OFFSET,
        OPT_SRC_OFFSET,
        OPT_LENGTH,
        OPT_UID,
        OPT_GID,
        OPT_LISTEN,
        OPT_RAW,
        OPT_TIMEOUT,
        OPT_NO_PREFETCH,
};

#define COMMON_OPTIONS \
        { "socket", required_argument, NULL, OPT_SOCKET }, \
        { "json", no_argument, NULL, OPT_JSON }

/* The global options, wherever they come; 1 when c was one of them. */
static int common_option(int c) {
        switch (c) {
        case OPT_SOCKET:
                arg.socket = optarg;
                return 1;
        case OPT_JSON:
                arg.json = true;
                return 1;
        }
        return 0;
}

static int size_option(const char *cmd, const char *opt, const char *s, uint64_t *ret) {
        int k = parse_size(s, ret);
        if (k == -ERANGE)
                return usage_error(cmd, "size '%s' for %s is too large", s, opt);
        if (k < 0)
                return usage_error(cmd, "invalid size '%s' for %s (a number with an optional K, M, G or T suffix)", s, opt);
        return 0;
}

/* getopt_long over a command's arguments; argv[0] is the command. Reports unknown options. */
static int next_option(const char *cmd, int argc, char **argv, const struct option *opts, int *ret) {
        int c = getopt_long(argc, argv, "", opts, NULL);
        if (c == '?') {
                /* opterr is off: this is the one line about it */
                fprintf(stderr, "gmemctl: %s: invalid option or missing value: '%s' (see gmemctl --help)\n", cmd,
                        argv[optind - 1]);
                return -EXIT_USAGE;
        }
        *ret = c;
        return c >= 0;
}

/* Exactly n positional arguments left. */
static int positional(const char *cmd, int argc, char **argv, int n, const char *what) {
        if (argc - optind < n)
                return usage_error(cmd, "missing %s", what);
        if (argc - optind > n)
                return usage_error(cmd, "unexpected argument '%s'", argv[optind + n]);
        return 0;
}

static void reset_getopt(void) {
        optind = 0;
        opterr = 0;
}

/* ---------------------------------------------------------------------------------------------
 * Talking to gmemd
 */

static int connect_client(const char *cmd, const char *name, struct gmem_client **ret) {
        _cleanup_free_ char *user = NULL;
        int k;

        if (!arg.socket && arg.user && (k = gmem_client_user_socket(&user)) < 0)
                return fail(k, cmd, name);
        if ((k = gmem_client_connect(arg.socket ?: user, ret)) < 0)
                return fail(k, cmd, name);
        return 0;
}

#define _cleanup_client_ _cleanup_(gmem_client_freep)

static int region_size(struct gmem_client *c, const char *cmd, const char *name, uint64_t *ret) {
        _cleanup_(gmem_region_info_freep) struct gmem_region_info *i = NULL;
        int k = gmem_client_region_info(c, name, &i);
        if (k < 0)
                return fail(k, cmd, name);
        *ret = gmem_region_info_size(i);
        if (*ret == 0)
                return failf(cmd, name, "gmemd reports no size for the region");
        return 0;
}

static const char *name_or(const char *s, const char *dflt) {
        return s ?: dflt;
}

/* ---------------------------------------------------------------------------------------------
 * Jobs: a progress bar on a terminal, Ctrl-C cancels
 */

static void on_sigint(int sig) {
        (void) sig;
        interrupted = 1;
}

static int job_progress(uint64_t done, uint64_t total, void *userdata) {
        progress_bar_update(userdata, done, total);
        return interrupted;
}

static void job_begin(struct gmem_client *c, struct progress_bar *bar, const char *cmd, const char *name) {
        /* No SA_RESTART: a blocked receive returns, and the library asks job_progress() at once.
         * The first Ctrl-C cancels; a second one (SA_RESETHAND) ends gmemctl there and then. */
        struct sigaction sa = { .sa_handler = on_sigint, .sa_flags = SA_RESETHAND }, old;
        char label[96];

        sigemptyset(&sa.sa_mask);
        /* started with SIGINT ignored (nohup, a shell's background job): it stays ignored */
        if (sigaction(SIGINT, NULL, &old) == 0 && old.sa_handler != SIG_IGN)
                sigaction(SIGINT, &sa, NULL);
        snprintf(label, sizeof(label), "%s %s", cmd, name);
        progress_bar_init(bar, label);
        gmem_client_set_progress(c, job_progress, bar);
}

/* Tidy up after a job and turn its result into an exit status. */
static int job_end(struct gmem_client *c, struct progress_bar *bar, int64_t k, const char *cmd, const char *name) {
        progress_bar_done(bar);
        gmem_client_set_progress(c, NULL, NULL);
        if (k == -ECANCELED && interrupted) {
                failf(cmd, name, "cancelled");
                return EXIT_CANCELLED;
        }
        if (k < 0)
                return fail((int) k, cmd, name);
        return 0;
}

/* ---------------------------------------------------------------------------------------------
 * caps: what this kernel offers (probed here, not asked of gmemd)
 */

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
        static const struct option options[] = { COMMON_OPTIONS, {} };
        _cleanup_(gmem_host_caps_freep) struct gmem_host_caps *c = NULL;
        bool private = false;
        int k, o, profile, kvm_error, secret_error;
        unsigned n_huge;

        while ((k = next_option("caps", argc, argv, options, &o)) > 0)
                common_option(o);
        if (k < 0)
                return -k;
        if ((k = positional("caps", argc, argv, 0, "")))
                return k;

        /* the operator may name the kernel's profile in the environment */
        if ((k = gmem_kernel_profile_from_env(&profile)) < 0 || (k = gmem_host_caps_new(profile, &c)) < 0)
                return fail(k, "caps", NULL);
        if (arg.json) {
                _cleanup_free_ char *s = NULL;
                k = gmem_host_caps_to_json(c, &s);
                if (k < 0)
                        return fail(k, "caps", NULL);
                printf("%s\n", s);
                return 0;
        }

        kvm_error = gmem_host_caps_kvm_error(c);
        printf("kernel          %s (profile %s, %s)\n", gmem_host_caps_kernel_release(c),
               gmem_kernel_profile_to_string(gmem_host_caps_profile(c)),
               gmem_host_caps_profile_source(c) == GMEM_PROFILE_EXPLICIT ? "set explicitly" : "detected by behaviour");
        if (kvm_error)
                printf("/dev/kvm        unusable: %s\n", strerror(-kvm_error));
        else
                printf("/dev/kvm        usable, API version %d\n", gmem_host_caps_kvm_api_version(c));
        printf("guest_memfd     %s, flags 0x%" PRIx64 "%s\n", yes_no(gmem_host_caps_guest_memfd(c)),
               gmem_host_caps_guest_memfd_flags(c), gmem_host_caps_unknown_flags(c) ? " (some bits unidentified)" : "");
        print_flag("MMAP", gmem_host_caps_flag(c, GMEM_FLAG_MMAP), "host can mmap the guest_memfd");
        print_flag("INIT_SHARED", gmem_host_caps_flag(c, GMEM_FLAG_INIT_SHARED), "pages start shared with the host");
        print_flag("NO_DIRECT_MAP", gmem_host_caps_flag(c, GMEM_FLAG_NO_DIRECT_MAP), "pages leave the kernel's direct map");
        print_flag("WRITE", gmem_host_caps_flag(c, GMEM_FLAG_WRITE), "write() populates the guest_memfd");
        printf("  write()         %s\n", yes_no(gmem_host_caps_guest_memfd_write(c)));
        if (!kvm_error && gmem_host_caps_guest_memfd(c)) {
                printf("  default VMs     %s\n", gmem_host_caps_has(c, GMEM_FEATURE_GUEST_MEMFD_DEFAULT_VM) > 0 ? "yes" :
                       "no (KVM offers guest_memfd only to other VM types)");
                printf("  NUMA policy     %s\n", yes_no(gmem_host_caps_has(c, GMEM_FEATURE_GUEST_MEMFD_NUMA_POLICY) > 0));
                printf("  userfaultfd     missing %s, minor %s\n",
                       yes_no(gmem_host_caps_has(c, GMEM_FEATURE_GUEST_MEMFD_UFFD_MISSING) > 0),
                       yes_no(gmem_host_caps_has(c, GMEM_FEATURE_GUEST_MEMFD_UFFD_MINOR) > 0));
        }
        printf("user memory2    %s\n", yes_no(gmem_host_caps_user_memory2(c)));
        printf("VM types       ");
        for (unsigned t = 0; t < 64; t++) {
                uint64_t attrs = gmem_host_caps_memory_attributes(c, t);
                if (!(gmem_host_caps_vm_types(c) & (UINT64_C(1) << t)))
                        continue;
                printf(" %s (memory attributes 0x%" PRIx64 ")",
                       t < ELEMENTSOF(vm_type_names) ? vm_type_names[t] : "unknown", attrs);
                private |= !!(attrs & KVM_MEMORY_ATTRIBUTE_PRIVATE);
        }
        printf("\n");
        printf("conversion      memory attributes %s, in place %s\n", yes_no(private),
               yes_no(gmem_host_caps_has(c, GMEM_FEATURE_INPLACE_CONVERSION) > 0));
        secret_error = gmem_host_caps_memfd_secret_error(c);
        printf("memfd_secret    %s%s%s", yes_no(!secret_error), secret_error ? ": " : "",
               secret_error ? strerror(-secret_error) : "");
        if (!secret_error && !kvm_error)
                printf(", as guest RAM %s", gmem_host_caps_has(c, GMEM_FEATURE_SECRET_MEMSLOT) > 0 ? "yes" :
                       "no (KVM cannot run a guest from it here)");
        printf("\n");
        printf("hugetlb        ");
        n_huge = gmem_host_caps_hugetlb_count(c);
        if (!n_huge)
                printf(" none");
        for (unsigned i = 0; i < n_huge; i++) {
                uint64_t ps = 0, total = 0, free_pages = 0;
                (void) gmem_host_caps_hugetlb(c, i, &ps, &total, &free_pages);
                printf(" %" PRIu64 "K: %" PRIu64 "/%" PRIu64 " free", ps / 1024, free_pages, total);
        }
        printf("\n");
        printf("THP             %s (shmem %s)\n", gmem_host_caps_thp(c), gmem_host_caps_shmem_thp(c));
        if (!kvm_error) {
                enum gmem_backend backend;
                uint64_t flags;
                const char *why;
                if (gmem_host_caps_pick_guest_memory(c, &backend, &flags, &why) == 0)
                        printf("guest memory    %s, flags 0x%" PRIx64 ": %s\n", gmem_backend_to_string(backend), flags, why);
        }
        return 0;
}

/* ---------------------------------------------------------------------------------------------
 * create, list, info
 */

/* --json after a change: the region as gmemd now describes it */
/* --json for a command that changes something: one object on one line, built with cJSON so
 * that names and paths are escaped. Takes o. */
static int print_json(cJSON *o, const char *cmd, const char *name) {
        _cleanup_free_ char *s = o ? cJSON_PrintUnformatted(o) : NULL;

        cJSON_Delete(o);
        if (!s)
                return failf(cmd, name, "out of memory");
        printf("%s\n", s);
        return 0;
}

/* {"region": NAME, "offset": OFF, "bytes": N[, KEY: STR]}; bytes GMEM_LENGTH_TO_END: left out
 * (gmemd went to the end, wherever that was) */
static int print_range_json(const char *cmd, const char *name, uint64_t off, uint64_t bytes, const char *key, const char *str) {
        cJSON *o = cJSON_CreateObject();

        if (o) {
                cJSON_AddStringToObject(o, "region", name);
                cJSON_AddNumberToObject(o, "offset", (double) off);
                if (bytes != GMEM_LENGTH_TO_END)
                        cJSON_AddNumberToObject(o, "bytes", (double) bytes);
                if (key)
                        cJSON_AddStringToObject(o, key, str);
        }
        return print_json(o, cmd, name);
}

static int print_info_json(struct gmem_client *c, const char *cmd, const char *name) {
        _cleanup_free_ char *s = NULL;
        int k = gmem_client_info(c, name, &s);
        if (k < 0)
                return fail(k, cmd, name);
        printf("%s\n", s);
        return 0;
}

static int cmd_create(int argc, char **argv) {
        static const struct option options[] = {
                COMMON_OPTIONS,
                { "size", required_argument, NULL, OPT_SIZE },
                { "backend", required_argument, NULL, OPT_BACKEND },
                { "page-size", required_argument, NULL, OPT_PAGE_SIZE },
                { "prefault", no_argument, NULL, OPT_PREFAULT },
                { "policy", required_argument, NULL, OPT_POLICY },
                {},
        };
        _cleanup_client_ struct gmem_client *c = NULL;
        struct gmem_create_opts opts = { .size = sizeof(opts), .policy = GMEM_POLICY_KEEP };
        enum gmem_backend backend = GMEM_BACKEND_MEMFD;
        struct progress_bar bar;
        uint64_t size = 0;
        bool have_size = false;
        const char *name;
        int k, o;

        while ((k = next_option("create", argc, argv, options, &o)) > 0)
                switch (o) {
                case OPT_SIZE:
                        if ((k = size_option("create", "--size", optarg, &size)))
                                return k;
                        have_size = true;
                        break;
                case OPT_BACKEND:
                        if (strcmp(optarg, "memfd") == 0)
                                backend = GMEM_BACKEND_MEMFD;
                        else if (strcmp(optarg, "hugetlb") == 0)
                                backend = GMEM_BACKEND_HUGETLB;
                        else if (strcmp(optarg, "secret") == 0)
                                backend = GMEM_BACKEND_SECRET;
                        else
                                return usage_error("create", "unknown backend '%s' (memfd, hugetlb, secret)", optarg);
                        break;
                case OPT_PAGE_SIZE:
                        if ((k = size_option("create", "--page-size", optarg, &opts.page_size)))
                                return k;
                        break;
                case OPT_PREFAULT:
                        opts.prefault = true;
                        break;
                case OPT_POLICY:
                        if (gmem_policy_from_string(optarg, &opts.policy) < 0)
                                return usage_error("create", "unknown policy '%s' (keep, connection)", optarg);
                        break;
                default:
                        common_option(o);
                }
        if (k < 0)
                return -k;
        if ((k = positional("create", argc, argv, 1, "region name")))
                return k;
        name = argv[optind];
        if (!have_size)
                return usage_error("create", "--size is required");
        if (size == 0)
                return usage_error("create", "--size must not be 0");
        if (opts.page_size && backend != GMEM_BACKEND_HUGETLB)
                return usage_error("create", "--page-size applies to --backend hugetlb only");

        if ((k = connect_client("create", name, &c)))
                return k;
        job_begin(c, &bar, "create", name);
        k = gmem_client_create(c, name, backend, size, &opts);
        if ((k = job_end(c, &bar, k, "create", name)))
                return k;
        return arg.json ? print_info_json(c, "create", name) : 0;
}

static const char *user_name(uint64_t uid, char buf[static 24]) {
        struct passwd pw, *res = NULL;
        char tmp[1024];

        if (getpwuid_r((uid_t) uid, &pw, tmp, sizeof(tmp), &res) == 0 && res) {
                snprintf(buf, 24, "%s", res->pw_name);
                return buf;
        }
        snprintf(buf, 24, "%" PRIu64, uid);
        return buf;
}

static const char *group_name(uint64_t gid, char buf[static 24]) {
        struct group gr, *res = NULL;
        char tmp[1024];

        if (getgrgid_r((gid_t) gid, &gr, tmp, sizeof(tmp), &res) == 0 && res) {
                snprintf(buf, 24, "%s", res->gr_name);
                return buf;
        }
        snprintf(buf, 24, "%" PRIu64, gid);
        return buf;
}

/* "4242,4300(gone)" */
static void format_holders(const struct gmem_region_info *r, char *buf, size_t l) {
        size_t n = 0;

        buf[0] = 0;
        for (unsigned h = 0; h < gmem_region_info_holder_count(r); h++) {
                int32_t pid = 0;
                bool connected = false;
                int w;
                (void) gmem_region_info_holder(r, h, &pid, NULL, NULL, &connected);
                w = snprintf(buf + n, l - n, "%s%" PRId32 "%s", n ? "," : "", pid, connected ? "" : "(gone)");
                if (w < 0 || (size_t) w >= l - n)
                        break;
                n += w;
        }
        if (!buf[0])
                snprintf(buf, l, "-");
}

static const char *format_resident(char b[static FORMAT_SIZE_MAX], const struct gmem_region_info *r) {
        uint64_t v;
        return gmem_region_info_resident_bytes(r, &v) < 0 ? "-" : format_size(b, v);
}

static int cmd_list(int argc, char **argv) {
        static const struct option options[] = { COMMON_OPTIONS, {} };
        enum { NAME, BACKEND, SIZE, RESIDENT, OWNER, STATE, HOLDERS, _COLS };
        static const char *const headers[_COLS] = { "NAME", "BACKEND", "SIZE", "RESIDENT", "OWNER", "STATE", "HOLDERS" };
        _cleanup_client_ struct gmem_client *c = NULL;
        _cleanup_(gmem_region_list_freep) struct gmem_region_list *l = NULL;
        size_t width[_COLS];
        char (*cells)[_COLS][128] = NULL;
        unsigned n;
        int k, o;

        while ((k = next_option("list", argc, argv, options, &o)) > 0)
                common_option(o);
        if (k < 0)
                return -k;
        if ((k = positional("list", argc, argv, 0, "")))
                return k;
        if ((k = connect_client("list", NULL, &c)))
                return k;
        if (arg.json) {
                _cleanup_free_ char *s = NULL;
                cJSON *obj, *regions;
                k = gmem_client_list(c, &s);
                if (k < 0)
                        return fail(k, "list", NULL);
                /* an object, as every command prints one: {"regions": [...]} */
                if (!(regions = cJSON_Parse(s)) || !(obj = cJSON_CreateObject())) {
                        cJSON_Delete(regions);
                        return failf("list", NULL, "gmemd's list is not JSON");
                }
                cJSON_AddItemToObject(obj, "regions", regions);
                return print_json(obj, "list", NULL);
        }
        k = gmem_client_region_list(c, &l);
        if (k < 0)
                return fail(k, "list", NULL);

        n = gmem_region_list_count(l);
        cells = calloc(n ? n : 1, sizeof(*cells));
        if (!cells)
                return failf("list", NULL, "out of memory");
        for (int col = 0; col < _COLS; col++)
                width[col] = strlen(headers[col]);
        for (unsigned i = 0; i < n; i++) {
                const struct gmem_region_info *r = gmem_region_list_get(l, i);
                char b[FORMAT_SIZE_MAX], u[24];
                snprintf(cells[i][NAME], 128, "%s", gmem_region_info_name(r));
                snprintf(cells[i][BACKEND], 128, "%s", name_or(gmem_backend_to_string(gmem_region_info_backend(r)), "?"));
                snprintf(cells[i][SIZE], 128, "%s", format_size(b, gmem_region_info_size(r)));
                snprintf(cells[i][RESIDENT], 128, "%s", format_resident(b, r));
                snprintf(cells[i][OWNER], 128, "%s", user_name(gmem_region_info_owner_uid(r), u));
                snprintf(cells[i][STATE], 128, "%s", name_or(gmem_region_state_to_string(gmem_region_info_state(r)), "?"));
                format_holders(r, cells[i][HOLDERS], 128);
                for (int col = 0; col < _COLS; col++)
                        width[col] = MAX(width[col], strlen(cells[i][col]));
        }

        /* names and words left-aligned, sizes right-aligned, the last column unpadded */
        for (int col = 0; col < _COLS && !arg.no_legend; col++)
                printf(col == SIZE || col == RESIDENT ? "%*s%s" : "%-*s%s", col == HOLDERS ? 0 : (int) width[col],
                       headers[col], col == HOLDERS ? "\n" : "  ");
        for (unsigned i = 0; i < n; i++)
                for (int col = 0; col < _COLS; col++)
                        printf(col == SIZE || col == RESIDENT ? "%*s%s" : "%-*s%s", col == HOLDERS ? 0 : (int) width[col],
                               cells[i][col], col == HOLDERS ? "\n" : "  ");
        free(cells);
        return 0;
}

static void print_ids(const char *label, const struct gmem_region_info *r, bool groups) {
        unsigned n = groups ? gmem_region_info_grant_gid_count(r) : gmem_region_info_grant_uid_count(r);

        printf("%-16s", label);
        for (unsigned i = 0; i < n; i++) {
                uint32_t id = 0;
                char b[24];
                (void) (groups ? gmem_region_info_grant_gid(r, i, &id) : gmem_region_info_grant_uid(r, i, &id));
                printf("%s%s", i ? ", " : "", groups ? group_name(id, b) : user_name(id, b));
        }
        printf("%s\n", n ? "" : "-");
}

static int cmd_info(int argc, char **argv) {
        static const struct option options[] = { COMMON_OPTIONS, {} };
        _cleanup_client_ struct gmem_client *c = NULL;
        _cleanup_(gmem_region_info_freep) struct gmem_region_info *r = NULL;
        char b[FORMAT_SIZE_MAX], u[24];
        const char *name;
        unsigned n;
        uint64_t v;
        int k, o;

        while ((k = next_option("info", argc, argv, options, &o)) > 0)
                common_option(o);
        if (k < 0)
                return -k;
        if ((k = positional("info", argc, argv, 1, "region name")))
                return k;
        name = argv[optind];
        if ((k = connect_client("info", name, &c)))
                return k;
        if (arg.json) {
                _cleanup_free_ char *s = NULL;
                k = gmem_client_info(c, name, &s);
                if (k < 0)
                        return fail(k, "info", name);
                printf("%s\n", s);
                return 0;
        }
        k = gmem_client_region_info(c, name, &r);
        if (k < 0)
                return fail(k, "info", name);

        printf("%-16s%s\n", "name:", gmem_region_info_name(r));
        printf("%-16s%s\n", "backend:", name_or(gmem_backend_to_string(gmem_region_info_backend(r)), "?"));
        v = gmem_region_info_size(r);
        printf("%-16s%s (%" PRIu64 " bytes)\n", "size:", format_size(b, v), v);
        if (gmem_region_info_backend(r) == GMEM_BACKEND_GUEST_MEMFD)
                printf("%-16s0x%" PRIx64 "\n", "flags:", gmem_region_info_flags(r));
        printf("%-16s%s\n", "page size:", format_size(b, gmem_region_info_page_size(r)));
        printf("%-16s%s (uid %" PRIu32 ")\n", "owner:", user_name(gmem_region_info_owner_uid(r), u),
               gmem_region_info_owner_uid(r));
        print_ids("granted users:", r, false);
        print_ids("granted groups:", r, true);
        printf("%-16s%s\n", "policy:", name_or(gmem_policy_to_string(gmem_region_info_policy(r)), "?"));
        printf("%-16s%s\n", "state:", name_or(gmem_region_state_to_string(gmem_region_info_state(r)), "?"));
        v = gmem_region_info_populated_bytes(r);
        printf("%-16s%s (%" PRIu64 " bytes)\n", "populated:", format_size(b, v), v);
        if (gmem_region_info_resident_bytes(r, &v) == 0)
                printf("%-16s%s (%" PRIu64 " bytes)\n", "resident:", format_size(b, v), v);
        else
                printf("%-16s%s\n", "resident:", "- (not measured yet)");
        v = gmem_region_info_created_usec(r);
        if (v) {
                time_t t = (time_t) (v / 1000000);
                struct tm tm;
                char when[64];
                if (localtime_r(&t, &tm) && strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S %Z", &tm))
                        printf("%-16s%s\n", "created:", when);
        }
        n = gmem_region_info_holder_count(r);
        printf(n ? "%s\n" : "%-16s-\n", "holders:");
        for (unsigned i = 0; i < n; i++) {
                int32_t pid = 0;
                uint32_t uid = 0;
                const char *role = NULL;
                bool connected = false;
                (void) gmem_region_info_holder(r, i, &pid, &uid, &role, &connected);
                printf("  pid %" PRId32 " uid %s, %s%s\n", pid, user_name(uid, u), name_or(role, "?"),
                       connected ? "" : ", disconnected");
        }
        n = gmem_region_info_job_count(r);
        printf(n ? "%s\n" : "%-16s-\n", "jobs:");
        for (unsigned i = 0; i < n; i++) {
                uint64_t job = 0, done = 0, total = 0;
                const char *op = NULL;
                char b2[FORMAT_SIZE_MAX];
                (void) gmem_region_info_job(r, i, &job, &op, &done, &total);
                printf("  job %" PRIu64 " %s %s/%s\n", job, name_or(op, "?"), format_size(b, done), format_size(b2, total));
        }
        return 0;
}

/* ---------------------------------------------------------------------------------------------
 * populate, prefault, dump, punch
 */

/* Bytes in a regular file or a block device; -ENOTSUP for anything whose size we cannot know. */
static int fd_size(int fd, uint64_t *ret) {
        struct stat st;

        if (fstat(fd, &st) < 0)
                return -errno;
        if (S_ISREG(st.st_mode)) {
                *ret = (uint64_t) st.st_size;
                return 0;
        }
        if (S_ISBLK(st.st_mode)) {
                uint64_t sz;
                if (ioctl(fd, BLKGETSIZE64, &sz) < 0)
                        return -errno;
                *ret = sz;
                return 0;
        }
        return -ENOTSUP;
}

static int cmd_populate(int argc, char **argv) {
        static const struct option options[] = {
                COMMON_OPTIONS,
                { "from", required_argument, NULL, OPT_FROM },
                { "offset", required_argument, NULL, OPT_OFFSET },
                { "src-offset", required_argument, NULL, OPT_SRC_OFFSET },
                { "length", required_argument, NULL, OPT_LENGTH },
                { "clip", no_argument, NULL, OPT_CLIP },
                {},
        };
        _cleanup_client_ struct gmem_client *c = NULL;
        _cleanup_close_ int src = -1;
        struct progress_bar bar;
        uint64_t off = 0, src_off = 0, len = 0, rsize, fsize = 0;
        bool have_len = false, clip = false;
        const char *name, *from = NULL;
        int64_t n;
        int k, o;

        while ((k = next_option("populate", argc, argv, options, &o)) > 0)
                switch (o) {
                case OPT_FROM:
                        from = optarg;
                        break;
                case OPT_OFFSET:
                        if ((k = size_option("populate", "--offset", optarg, &off)))
                                return k;
                        break;
                case OPT_SRC_OFFSET:
                        if ((k = size_option("populate", "--src-offset", optarg, &src_off)))
                                return k;
                        break;
                case OPT_LENGTH:
                        if ((k = size_option("populate", "--length", optarg, &len)))
                                return k;
                        have_len = true;
                        break;
                case OPT_CLIP:
                        clip = true;
                        break;
                default:
                        common_option(o);
                }
        if (k < 0)
                return -k;
        if ((k = positional("populate", argc, argv, 1, "region name")))
                return k;
        name = argv[optind];
        if (!from)
                return usage_error("populate", "--from FILE is required");
        if (have_len && len == 0)
                return usage_error("populate", "--length must not be 0");

        /* opened here, with the caller's own rights; gmemd only ever sees the fd */
        src = open(from, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (src < 0)
                return failf("populate", name, "open '%s': %s", from, strerror(errno));
        if (!have_len) {
                k = fd_size(src, &fsize);
                if (k == -ENOTSUP)
                        return usage_error("populate", "'%s' is neither a file nor a block device: give --length", from);
                if (k < 0)
                        return failf("populate", name, "stat '%s': %s", from, strerror(-k));
                if (src_off >= fsize)
                        return failf("populate", name, "'%s' has no data after offset %" PRIu64 " (it has %" PRIu64 " bytes)",
                                     from, src_off, fsize);
                len = fsize - src_off;
        }

        if ((k = connect_client("populate", name, &c)))
                return k;
        if (!have_len) {
                if ((k = region_size(c, "populate", name, &rsize)))
                        return k;
                if (off >= rsize)
                        return failf("populate", name, "offset %" PRIu64 " is beyond the region's %" PRIu64 " bytes", off,
                                     rsize);
                if (len > rsize - off && !clip)
                        return failf("populate", name, "'%s' has %" PRIu64 " bytes from offset %" PRIu64 ", the region room "
                                     "for %" PRIu64 " from %" PRIu64 ": nothing copied (--clip copies what fits, --length "
                                     "says how much)", from, len, src_off, rsize - off, off);
                if (len > rsize - off) {
                        fprintf(stderr, "gmemctl: populate '%s': --clip: %" PRIu64 " bytes of '%s' left out\n", name,
                                len - (rsize - off), from);
                        len = rsize - off;
                }
        }
        /* gmemd's messages then say 'FILE', not its own fd number (a name it refuses: the number) */
        (void) gmem_client_name_fd(c, src, from);
        job_begin(c, &bar, "populate", name);
        n = gmem_client_populate_fd(c, name, off, src, src_off, len);
        if ((k = job_end(c, &bar, n, "populate", name)))
                return k;
        return arg.json ? print_range_json("populate", name, off, len, "from", from) : 0;
}

static int cmd_prefault(int argc, char **argv) {
        static const struct option options[] = {
                COMMON_OPTIONS,
                { "offset", required_argument, NULL, OPT_OFFSET },
                { "length", required_argument, NULL, OPT_LENGTH },
                {},
        };
        _cleanup_client_ struct gmem_client *c = NULL;
        struct progress_bar bar;
        uint64_t off = 0, len = 0;
        bool have_len = false;
        const char *name;
        int64_t n;
        int k, o;

        while ((k = next_option("prefault", argc, argv, options, &o)) > 0)
                switch (o) {
                case OPT_OFFSET:
                        if ((k = size_option("prefault", "--offset", optarg, &off)))
                                return k;
                        break;
                case OPT_LENGTH:
                        if ((k = size_option("prefault", "--length", optarg, &len)))
                                return k;
                        have_len = true;
                        break;
                default:
                        common_option(o);
                }
        if (k < 0)
                return -k;
        if ((k = positional("prefault", argc, argv, 1, "region name")))
                return k;
        name = argv[optind];
        if (have_len && len == 0)
                return usage_error("prefault", "--length must not be 0");

        if ((k = connect_client("prefault", name, &c)))
                return k;
        if (!have_len)
                len = GMEM_LENGTH_TO_END; /* gmemd knows where the region ends */
        job_begin(c, &bar, "prefault", name);
        n = gmem_client_prefault(c, name, off, len);
        if ((k = job_end(c, &bar, n, "prefault", name)))
                return k;
        return arg.json ? print_range_json("prefault", name, off, len, NULL, NULL) : 0;
}

static int cmd_dump(int argc, char **argv) {
        static const struct option options[] = {
                COMMON_OPTIONS,
                { "to", required_argument, NULL, OPT_TO },
                { "offset", required_argument, NULL, OPT_OFFSET },
                { "length", required_argument, NULL, OPT_LENGTH },
                {},
        };
        _cleanup_client_ struct gmem_client *c = NULL;
        _cleanup_close_ int dst = -1;
        struct progress_bar bar;
        uint64_t off = 0, len = 0, rsize;
        bool have_len = false;
        const char *name, *to = NULL;
        struct stat st;
        int64_t n;
        int k, o;

        while ((k = next_option("dump", argc, argv, options, &o)) > 0)
                switch (o) {
                case OPT_TO:
                        to = optarg;
                        break;
                case OPT_OFFSET:
                        if ((k = size_option("dump", "--offset", optarg, &off)))
                                return k;
                        break;
                case OPT_LENGTH:
                        if ((k = size_option("dump", "--length", optarg, &len)))
                                return k;
                        have_len = true;
                        break;
                default:
                        common_option(o);
                }
        if (k < 0)
                return -k;
        if ((k = positional("dump", argc, argv, 1, "region name")))
                return k;
        name = argv[optind];
        if (!to)
                return usage_error("dump", "--to FILE is required");
        if (have_len && len == 0)
                return usage_error("dump", "--length must not be 0");

        if ((k = connect_client("dump", name, &c)))
                return k;
        if (!have_len) {
                if ((k = region_size(c, "dump", name, &rsize)))
                        return k;
                if (off >= rsize)
                        return failf("dump", name, "offset %" PRIu64 " is beyond the region's %" PRIu64 " bytes", off, rsize);
                len = rsize - off;
        }

        /* a block device is written in place; anything else becomes a fresh file only we can read */
        if (stat(to, &st) == 0 && S_ISBLK(st.st_mode))
                dst = open(to, O_WRONLY | O_CLOEXEC | O_NOCTTY);
        else
                dst = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOCTTY, 0600);
        if (dst < 0)
                return failf("dump", name, "open '%s': %s", to, strerror(errno));

        (void) gmem_client_name_fd(c, dst, to);
        job_begin(c, &bar, "dump", name);
        n = gmem_client_dump_fd(c, name, off, len, dst, 0);
        if ((k = job_end(c, &bar, n, "dump", name)))
                return k;
        /* holes at the end leave a regular file short: give it the full length */
        if (fstat(dst, &st) == 0 && S_ISREG(st.st_mode) && (uint64_t) st.st_size < len && ftruncate(dst, (off_t) len) < 0)
                return failf("dump", name, "extend '%s' to %" PRIu64 " bytes: %s", to, len, strerror(errno));
        return arg.json ? print_range_json("dump", name, off, (uint64_t) n, "file", to) : 0;
}

static int cmd_snapshot(int argc, char **argv) {
        static const struct option options[] = {
                COMMON_OPTIONS,
                { "to", required_argument, NULL, OPT_TO },
                {},
        };
        _cleanup_client_ struct gmem_client *c = NULL;
        _cleanup_close_ int dst = -1;
        struct progress_bar bar;
        const char *name, *to = NULL;
        int64_t n;
        int k, o;

        while ((k = next_option("snapshot", argc, argv, options, &o)) > 0)
                switch (o) {
                case OPT_TO:
                        to = optarg;
                        break;
                default:
                        common_option(o);
                }
        if (k < 0)
                return -k;
        if ((k = positional("snapshot", argc, argv, 1, "region name")))
                return k;
        name = argv[optind];
        if (!to)
                return usage_error("snapshot", "--to FILE is required");
        if ((k = connect_client("snapshot", name, &c)))
                return k;
        /* a fresh file only we can read: guest memory is in it */
        dst = open(to, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOCTTY, 0600);
        if (dst < 0)
                return failf("snapshot", name, "open '%s': %s", to, strerror(errno));
        (void) gmem_client_name_fd(c, dst, to);
        job_begin(c, &bar, "snapshot", name);
        n = gmem_client_snapshot_fd(c, name, dst);
        if ((k = job_end(c, &bar, n, "snapshot", name))) {
                (void) unlink(to); /* no half snapshot left behind to be mistaken for one */
                return k;
        }
        return arg.json ? print_range_json("snapshot", name, 0, (uint64_t) n, "file", to) : 0;
}

static int cmd_restore(int argc, char **argv) {
        static const struct option options[] = {
                COMMON_OPTIONS,
                { "from", required_argument, NULL, OPT_FROM },
                { "backend", required_argument, NULL, OPT_BACKEND },
                { "policy", required_argument, NULL, OPT_POLICY },
                {},
        };
        _cleanup_client_ struct gmem_client *c = NULL;
        _cleanup_close_ int src = -1;
        struct gmem_restore_opts opts = GMEM_RESTORE_OPTS_INIT;
        struct progress_bar bar;
        const char *name, *from = NULL;
        int k, o;

        while ((k = next_option("restore", argc, argv, options, &o)) > 0)
                switch (o) {
                case OPT_FROM:
                        from = optarg;
                        break;
                case OPT_BACKEND:
                        if (gmem_backend_from_string(optarg, &opts.backend) < 0 || opts.backend == GMEM_BACKEND_GUEST_MEMFD)
                                return usage_error("restore", "unknown backend '%s' (memfd, hugetlb, secret)", optarg);
                        opts.flags |= GMEM_RESTORE_BACKEND;
                        break;
                case OPT_POLICY:
                        if (gmem_policy_from_string(optarg, &opts.policy) < 0)
                                return usage_error("restore", "unknown policy '%s' (keep, connection)", optarg);
                        break;
                default:
                        common_option(o);
                }
        if (k < 0)
                return -k;
        if ((k = positional("restore", argc, argv, 1, "region name")))
                return k;
        name = argv[optind];
        if (!from)
                return usage_error("restore", "--from FILE is required");
        src = open(from, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (src < 0)
                return failf("restore", name, "open '%s': %s", from, strerror(errno));
        if ((k = connect_client("restore", name, &c)))
                return k;
        (void) gmem_client_name_fd(c, src, from);
        job_begin(c, &bar, "restore", name);
        k = gmem_client_restore_fd(c, name, src, &opts);
        if ((k = job_end(c, &bar, k, "restore", name)))
                return k;
        return arg.json ? print_info_json(c, "restore", name) : 0;
}

/* A page server in gmemd for a Firecracker VM: the socket Firecracker is told about is made here,
 * by the operator (so its path and permissions are theirs), and handed to gmemd with the source. */
static int cmd_firecracker(int argc, char **argv) {
        static const struct option options[] = {
                COMMON_OPTIONS,
                { "listen", required_argument, NULL, OPT_LISTEN },
                { "from", required_argument, NULL, OPT_FROM },
                { "raw", no_argument, NULL, OPT_RAW },
                { "timeout", required_argument, NULL, OPT_TIMEOUT },
                { "no-prefetch", no_argument, NULL, OPT_NO_PREFETCH },
                {},
        };
        _cleanup_client_ struct gmem_client *c = NULL;
        _cleanup_close_ int src = -1, l = -1;
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        const char *vm, *path = NULL, *from = NULL;
        uint64_t timeout = 60, job = 0, flags = 0;
        int k, o;

        while ((k = next_option("firecracker", argc, argv, options, &o)) > 0)
                switch (o) {
                case OPT_LISTEN:
                        path = optarg;
                        break;
                case OPT_FROM:
                        from = optarg;
                        break;
                case OPT_RAW:
                        flags |= GMEM_PAGE_SERVER_RAW;
                        break;
                case OPT_NO_PREFETCH:
                        flags |= GMEM_SERVE_NO_PREFETCH;
                        break;
                case OPT_TIMEOUT:
                        if (parse_uint64(optarg, 3600, &timeout) < 0 || timeout == 0)
                                return usage_error("firecracker", "--timeout takes seconds, 1 to 3600: '%s'", optarg);
                        break;
                default:
                        common_option(o);
                }
        if (k < 0)
                return -k;
        if ((k = positional("firecracker", argc, argv, 1, "VM name")))
                return k;
        vm = argv[optind];
        if (!path || !from)
                return usage_error("firecracker", "--listen PATH and --from FILE are required");
        if (strlen(path) >= sizeof(sa.sun_path))
                return failf("firecracker", vm, "socket path '%s' is longer than %zu bytes", path, sizeof(sa.sun_path) - 1);
        src = open(from, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (src < 0)
                return failf("firecracker", vm, "open '%s': %s", from, strerror(errno));
        if ((k = connect_client("firecracker", vm, &c)))
                return k;
        memcpy(sa.sun_path, path, strlen(path) + 1);
        l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (l < 0 || bind(l, (struct sockaddr *) &sa, sizeof(sa)) < 0)
                return failf("firecracker", vm, "bind '%s': %s", path, strerror(errno));
        if (listen(l, 1) < 0 || (k = gmem_client_serve_firecracker(c, vm, l, src, flags,
                                                                  (int) timeout * 1000, &job)) < 0) {
                int err = k < 0 ? k : -errno;
                (void) unlink(path); /* ours, made above */
                if (k == 0)
                        return failf("firecracker", vm, "listen '%s': %s", path, strerror(-err));
                return fail(err, "firecracker", vm);
        }
        if (arg.json) {
                cJSON *j = cJSON_CreateObject();
                if (j) {
                        cJSON_AddNumberToObject(j, "job", (double) job);
                        cJSON_AddStringToObject(j, "vm", vm);
                        cJSON_AddStringToObject(j, "listen", path);
                }
                return print_json(j, "firecracker", vm);
        } else
                printf("job %" PRIu64 ": gmemd serves VM '%s' from '%s' once it connects to '%s'\n", job, vm, from, path);
        return 0;
}

static int cmd_punch(int argc, char **argv) {
        static const struct option options[] = {
                COMMON_OPTIONS,
                { "offset", required_argument, NULL, OPT_OFFSET },
                { "length", required_argument, NULL, OPT_LENGTH },
                {},
        };
        _cleanup_client_ struct gmem_client *c = NULL;
        uint64_t off = 0, len = 0;
        bool have_off = false, have_len = false;
        const char *name;
        int k, o;

        while ((k = next_option("punch", argc, argv, options, &o)) > 0)
                switch (o) {
                case OPT_OFFSET:
                        if ((k = size_option("punch", "--offset", optarg, &off)))
                                return k;
                        have_off = true;
                        break;
                case OPT_LENGTH:
                        if ((k = size_option("punch", "--length", optarg, &len)))
                                return k;
                        have_len = true;
                        break;
                default:
                        common_option(o);
                }
        if (k < 0)
                return -k;
        if ((k = positional("punch", argc, argv, 1, "region name")))
                return k;
        name = argv[optind];
        if (!have_off || !have_len)
                return usage_error("punch", "--offset and --length are required");
        if (len == 0)
                return usage_error("punch", "--length must not be 0");

        if ((k = connect_client("punch", name, &c)))
                return k;
        k = gmem_client_punch(c, name, off, len);
        if (k < 0)
                return fail(k, "punch", name);
        return arg.json ? print_range_json("punch", name, off, len, NULL, NULL) : 0;
}

/* ---------------------------------------------------------------------------------------------
 * grant, revoke, release, cancel
 */

static int parse_user(const char *s, uint32_t *ret) {
        struct passwd pw, *res = NULL;
        char tmp[1024];

        if (parse_uint32(s, ret) == 0)
                return *ret == UINT32_MAX ? -EINVAL : 0;
        if (getpwnam_r(s, &pw, tmp, sizeof(tmp), &res) != 0 || !res)
                return -ENOENT;
        *ret = res->pw_uid;
        return 0;
}

static int parse_group(const char *s, uint32_t *ret) {
        struct group gr, *res = NULL;
        char tmp[1024];

        if (parse_uint32(s, ret) == 0)
                return *ret == UINT32_MAX ? -EINVAL : 0;
        if (getgrnam_r(s, &gr, tmp, sizeof(tmp), &res) != 0 || !res)
                return -ENOENT;
        *ret = res->gr_gid;
        return 0;
}

static int access_command(int argc, char **argv, const char *cmd, bool grant) {
        static const struct option options[] = {
                COMMON_OPTIONS,
                { "uid", required_argument, NULL, OPT_UID },
                { "gid", required_argument, NULL, OPT_GID },
                {},
        };
        _cleanup_client_ struct gmem_client *c = NULL;
        bool have_uid = false, have_gid = false;
        uint32_t uid = 0, gid = 0;
        const char *name;
        int k, o;

        while ((k = next_option(cmd, argc, argv, options, &o)) > 0)
                switch (o) {
                case OPT_UID:
                        if (parse_user(optarg, &uid) < 0)
                                return usage_error(cmd, "no user '%s'", optarg);
                        have_uid = true;
                        break;
                case OPT_GID:
                        if (parse_group(optarg, &gid) < 0)
                                return usage_error(cmd, "no group '%s'", optarg);
                        have_gid = true;
                        break;
                default:
                        common_option(o);
                }
        if (k < 0)
                return -k;
        if ((k = positional(cmd, argc, argv, 1, "region name")))
                return k;
        name = argv[optind];
        if (have_uid == have_gid)
                return usage_error(cmd, "give exactly one of --uid and --gid");

        if ((k = connect_client(cmd, name, &c)))
                return k;
        if (grant)
                k = have_uid ? gmem_client_grant_uid(c, name, uid) : gmem_client_grant_gid(c, name, gid);
        else
                k = have_uid ? gmem_client_revoke_uid(c, name, uid) : gmem_client_revoke_gid(c, name, gid);
        if (k < 0)
                return fail(k, cmd, name);
        return arg.json ? print_info_json(c, cmd, name) : 0;
}

static int cmd_grant(int argc, char **argv) {
        return access_command(argc, argv, "grant", true);
}

static int cmd_revoke(int argc, char **argv) {
        return access_command(argc, argv, "revoke", false);
}

static int cmd_release(int argc, char **argv) {
        static const struct option options[] = { COMMON_OPTIONS, {} };
        _cleanup_client_ struct gmem_client *c = NULL;
        const char *name;
        int k, o;

        while ((k = next_option("release", argc, argv, options, &o)) > 0)
                common_option(o);
        if (k < 0)
                return -k;
        if ((k = positional("release", argc, argv, 1, "region name")))
                return k;
        name = argv[optind];
        if ((k = connect_client("release", name, &c)))
                return k;
        k = gmem_client_release(c, name);
        if (k < 0)
                return fail(k, "release", name);
        if (arg.json) {
                cJSON *j = cJSON_CreateObject();
                if (j) {
                        cJSON_AddStringToObject(j, "region", name);
                        cJSON_AddBoolToObject(j, "released", true);
                }
                return print_json(j, "release", name);
        }
        return 0;
}

static int cmd_cancel(int argc, char **argv) {
        static const struct option options[] = { COMMON_OPTIONS, {} };
        _cleanup_client_ struct gmem_client *c = NULL;
        uint64_t job;
        int k, o;

        while ((k = next_option("cancel", argc, argv, options, &o)) > 0)
                common_option(o);
        if (k < 0)
                return -k;
        if ((k = positional("cancel", argc, argv, 1, "job number")))
                return k;
        if (parse_uint64(argv[optind], UINT64_MAX, &job) < 0)
                return usage_error("cancel", "invalid job number '%s'", argv[optind]);
        if ((k = connect_client("cancel", argv[optind], &c)))
                return k;
        k = gmem_client_cancel(c, job);
        if (k < 0)
                return fail(k, "cancel", argv[optind]);
        if (arg.json) {
                cJSON *j = cJSON_CreateObject();
                if (j) {
                        cJSON_AddNumberToObject(j, "job", (double) job);
                        cJSON_AddBoolToObject(j, "cancelled", true);
                }
                return print_json(j, "cancel", argv[optind]);
        }
        return 0;
}

/* ---------------------------------------------------------------------------------------------
 * watch, exec
 */

static int cmd_watch(int argc, char **argv) {
        static const struct option options[] = { COMMON_OPTIONS, {} };
        _cleanup_client_ struct gmem_client *c = NULL;
        int k, o;

        while ((k = next_option("watch", argc, argv, options, &o)) > 0)
                common_option(o);
        if (k < 0)
                return -k;
        if ((k = positional("watch", argc, argv, 0, "")))
                return k;
        if ((k = connect_client("watch", NULL, &c)))
                return k;
        k = gmem_client_watch(c);
        if (k < 0)
                return fail(k, "watch", NULL);
        /* one JSON object per line until Ctrl-C (the default action ends us) or gmemd goes away */
        for (;;) {
                _cleanup_free_ char *ev = NULL;
                k = gmem_client_next_event(c, -1, &ev);
                if (k < 0)
                        return fail(k, "watch", NULL);
                printf("%s\n", ev);
                fflush(stdout);
        }
}

struct exec_region {
        const char *name;        /* NULL ends the array */
        struct gmem_region *region;
        int fd;
};

/* Only on the way out without exec(): the regions' fds go with them. */
static void exec_regions_freep(struct exec_region **p) {
        for (struct exec_region *r = *p; r && r->name; r++)
                gmem_region_free(r->region);
        free(*p);
}

static void strv_freep(char ***p) {
        *p = strv_free(*p);
}

/* GMEM_FD_<NAME>: upper case, anything outside [A-Z0-9_] as '_' */
static void env_name(const char *name, char *buf, size_t l) {
        size_t n = snprintf(buf, l, "GMEM_FD_");
        for (const char *p = name; *p && n + 1 < l; p++) {
                char ch = (char) toupper((unsigned char) *p);
                buf[n++] = (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_' ? ch : '_';
        }
        buf[n] = 0;
}

/* arg with every {fd:NAME} replaced by that region's fd number; NULL and *ret_bad (the unknown
 * name's start) when a NAME was not opened. */
static char *substitute_fds(const char *a, const struct exec_region *regions, size_t n, const char **ret_bad) {
        size_t cap = strlen(a) + 1, len = 0;
        char *out = malloc(cap);

        if (!out)
                return NULL;
        for (const char *p = a; *p;) {
                const char *end;
                if (strncmp(p, "{fd:", 4) == 0 && (end = strchr(p + 4, '}'))) {
                        size_t nl = end - (p + 4);
                        bool found = false;
                        for (size_t i = 0; i < n; i++)
                                if (strlen(regions[i].name) == nl && strncmp(regions[i].name, p + 4, nl) == 0) {
                                        char num[16];
                                        int w = snprintf(num, sizeof(num), "%d", regions[i].fd);
                                        /* "{fd:X}" is at least 6 bytes and a number at most 10: grow when needed */
                                        if (len + w + 1 + strlen(end + 1) >= cap) {
                                                char *o2;
                                                cap = len + w + strlen(end + 1) + 1;
                                                o2 = realloc(out, cap);
                                                if (!o2) {
                                                        free(out);
                                                        return NULL;
                                                }
                                                out = o2;
                                        }
                                        memcpy(out + len, num, w);
                                        len += w;
                                        found = true;
                                        break;
                                }
                        if (!found) {
                                free(out);
                                *ret_bad = p;
                                return NULL;
                        }
                        p = end + 1;
                        continue;
                }
                if (len + 2 > cap) {
                        char *o2 = realloc(out, cap *= 2);
                        if (!o2) {
                                free(out);
                                return NULL;
                        }
                        out = o2;
                }
                out[len++] = *p++;
        }
        out[len] = 0;
        return out;
}

/* memfd_secret and guest_memfd cannot be reopened through /proc/self/fd (ENXIO): a program told
 * to open that path (QEMU's mem-path=) will fail, and the reason is worth a line up front. */
static void warn_reopen(const char *a, const struct exec_region *regions, size_t n) {
        for (size_t i = 0; i < n; i++) {
                enum gmem_backend b = gmem_region_backend(regions[i].region);
                char fdref[96], proc[128], dev[128];

                if (b != GMEM_BACKEND_SECRET && b != GMEM_BACKEND_GUEST_MEMFD)
                        continue;
                snprintf(fdref, sizeof(fdref), "{fd:%s}", regions[i].name);
                snprintf(proc, sizeof(proc), "/proc/self/fd/%s", fdref);
                snprintf(dev, sizeof(dev), "/dev/fd/%s", fdref);
                if (strstr(a, proc) || strstr(a, dev))
                        fprintf(stderr, "gmemctl: exec %s: warning: a %s region cannot be reopened through /proc/self/fd/%d "
                                "(the kernel answers ENXIO), so QEMU's mem-path= cannot use it; give the fd to a VMM "
                                "that mmaps it (see docs/qemu.md)\n", regions[i].name,
                                b == GMEM_BACKEND_SECRET ? "secret (memfd_secret)" : "guest_memfd", regions[i].fd);
        }
}

static int cmd_exec(int argc, char **argv) {
        _cleanup_client_ struct gmem_client *c = NULL;
        _cleanup_(exec_regions_freep) struct exec_region *regions = NULL;
        _cleanup_(strv_freep) char **cmdv = NULL;
        size_t n = 0;
        int sep = -1, k;

        /* gmemctl [global options] exec NAME... -- CMD ARGS... */
        for (int i = 1; i < argc; i++)
                if (strcmp(argv[i], "--") == 0) {
                        sep = i;
                        break;
                }
        if (sep < 0)
                return usage_error("exec", "missing '--' before the command");
        if (sep + 1 >= argc)
                return usage_error("exec", "no command after '--'");

        regions = calloc(sep, sizeof(*regions));
        if (!regions)
                return failf("exec", NULL, "out of memory");
        for (int i = 1; i < sep; i++) {
                bool dup = false;
                if (strcmp(argv[i], "--json") == 0) {
                        arg.json = true;
                        continue;
                }
                if (strncmp(argv[i], "--socket=", 9) == 0) {
                        arg.socket = argv[i] + 9;
                        continue;
                }
                if (strcmp(argv[i], "--socket") == 0 && i + 1 < sep) {
                        arg.socket = argv[++i];
                        continue;
                }
                if (argv[i][0] == '-')
                        return usage_error("exec", "unexpected option '%s' (options go before the command name)", argv[i]);
                for (size_t j = 0; j < n; j++)
                        dup |= strcmp(regions[j].name, argv[i]) == 0;
                if (!dup)
                        regions[n++] = (struct exec_region) { .name = argv[i], .fd = -1 };
        }

        if (n == 0)
                return usage_error("exec", "no region named before '--'");
        if ((k = connect_client("exec", regions[0].name, &c)))
                return k;
        for (size_t i = 0; i < n; i++) {
                char env[96], num[16];
                int fd, flags;

                k = gmem_client_open(c, regions[i].name, &regions[i].region);
                if (k < 0)
                        return fail(k, "exec", regions[i].name);
                /* its fd stays open across exec() for the program */
                fd = gmem_region_fd(regions[i].region);
                flags = fcntl(fd, F_GETFD);
                if (flags < 0 || fcntl(fd, F_SETFD, flags & ~FD_CLOEXEC) < 0)
                        return failf("exec", regions[i].name, "clear FD_CLOEXEC on fd %d: %s", fd, strerror(errno));
                regions[i].fd = fd;
                env_name(regions[i].name, env, sizeof(env));
                snprintf(num, sizeof(num), "%d", fd);
                if (setenv(env, num, 1) < 0)
                        return failf("exec", regions[i].name, "setenv %s: %s", env, strerror(errno));
        }

        cmdv = calloc(argc - sep, sizeof(char *));
        if (!cmdv)
                return failf("exec", NULL, "out of memory");
        for (int i = sep + 1; i < argc; i++) {
                const char *bad = NULL;
                warn_reopen(argv[i], regions, n);
                cmdv[i - sep - 1] = substitute_fds(argv[i], regions, n, &bad);
                if (!cmdv[i - sep - 1]) {
                        if (bad)
                                return usage_error("exec", "'%.*s' names no region given before '--'",
                                                   (int) (strchr(bad, '}') - bad + 1), bad);
                        return failf("exec", NULL, "out of memory");
                }
        }
        gmem_client_free(TAKE_PTR(c));
        fflush(NULL);
        execvp(cmdv[0], cmdv);
        fprintf(stderr, "gmemctl: exec %s: %s\n", cmdv[0], strerror(errno));
        return 127; /* the shell's "command not found" */
}

/* ---------------------------------------------------------------------------------------------
 */

static const struct command {
        const char *name;
        int (*fn)(int argc, char **argv);
        const char *args;
        const char *help;
} commands[] = {
        { "caps", cmd_caps, "", "what this kernel offers for guest memory" },
        { "create", cmd_create, "NAME --size SIZE [--backend memfd|hugetlb|secret] [--page-size SIZE] [--prefault] "
                                "[--policy keep|connection]", "create a region in gmemd" },
        { "list", cmd_list, "", "the regions you may see" },
        { "info", cmd_info, "NAME", "one region in detail" },
        { "populate", cmd_populate, "NAME --from FILE [--offset N] [--src-offset N] [--length N] [--clip]",
          "copy a file into a region" },
        { "prefault", cmd_prefault, "NAME [--offset N --length N]", "allocate a region's memory now" },
        { "dump", cmd_dump, "NAME --to FILE [--offset N] [--length N]", "write a region to a file" },
        { "snapshot", cmd_snapshot, "NAME --to FILE", "write a region to a sparse snapshot file" },
        { "restore", cmd_restore, "NAME --from FILE [--backend memfd|hugetlb|secret] [--policy keep|connection]",
          "create a region from a snapshot" },
        { "firecracker", cmd_firecracker, "VM --listen PATH --from FILE [--raw] [--no-prefetch] [--timeout SECONDS]",
          "serve a Firecracker VM's snapshot restore (its Uffd backend socket)" },
        { "punch", cmd_punch, "NAME --offset N --length N", "discard a range (it reads back as zeroes)" },
        { "grant", cmd_grant, "NAME --uid UID|--gid GID", "let a user or group open and use a region" },
        { "revoke", cmd_revoke, "NAME --uid UID|--gid GID", "take a grant back" },
        { "release", cmd_release, "NAME", "drop a region from gmemd" },
        { "cancel", cmd_cancel, "JOB", "cancel a running job" },
        { "watch", cmd_watch, "", "print events as JSON lines until interrupted" },
        { "exec", cmd_exec, "NAME... -- CMD [ARGS...]",
          "run CMD with the regions' fds ({fd:NAME} in ARGS, $GMEM_FD_NAME)" },
};

static void usage(FILE *f) {
        fprintf(f, "usage: gmemctl [--socket PATH | --user] [--json | --no-legend] COMMAND [ARGS...]\n"
                   "       gmemctl help [COMMAND] | COMMAND --help | --version\n\n"
                   "The system gmemd (/run/gmemd/gmemd.sock, for root and group gmem) unless --socket,\n"
                   "$GMEMD_SOCKET or --user ($XDG_RUNTIME_DIR/gmemd/gmemd.sock) say otherwise.\n"
                   "Sizes and offsets take K, M, G and T suffixes (powers of 1024). --json, --user and\n"
                   "--socket may come anywhere on the line (before a -- that ends the options).\n\ncommands:\n");
        for (size_t i = 0; i < ELEMENTSOF(commands); i++)
                if (*commands[i].args)
                        fprintf(f, "  %-9s %s\n%14s%s\n", commands[i].name, commands[i].args, "", commands[i].help);
                else
                        fprintf(f, "  %s\n%14s%s\n", commands[i].name, "", commands[i].help);
}

static const struct command *find_command(const char *name) {
        for (size_t i = 0; i < ELEMENTSOF(commands); i++)
                if (strcmp(name, commands[i].name) == 0)
                        return &commands[i];
        return NULL;
}

/* One command's synopsis, as `gmemctl help COMMAND` and `gmemctl COMMAND --help` print it. */
static void command_usage(const struct command *cmd) {
        printf("usage: gmemctl [--socket PATH] [--json] %s%s%s\n\n%s\n(man gmemctl for every option)\n", cmd->name,
               *cmd->args ? " " : "", cmd->args, cmd->help);
}

static int cmd_help(int argc, char **argv) {
        const struct command *cmd;

        if (argc < 2) {
                usage(stdout);
                return 0;
        }
        if (argc > 2 || !(cmd = find_command(argv[1]))) {
                fprintf(stderr, "gmemctl: help: %s '%s' (see gmemctl --help)\n", argc > 2 ? "one command at a time, not" : "unknown command",
                        argv[argc > 2 ? 2 : 1]);
                return EXIT_USAGE;
        }
        command_usage(cmd);
        return 0;
}

/* -j/--json, --user, -h/--help and --version wherever they come before a "--" (a command's own options
 * come after its name; these are the line's): taken out of argv. *ret_help: a -h or --help. */
static void take_global_flags(int *argc, char **argv, bool *ret_help, bool *ret_version) {
        int out = 1;

        for (int i = 1; i < *argc; i++) {
                const char *a = argv[i];
                if (strcmp(a, "--") == 0) { /* the rest is not ours (exec's CMD) */
                        while (i < *argc)
                                argv[out++] = argv[i++];
                        break;
                }
                if (strcmp(a, "-j") == 0 || strcmp(a, "--json") == 0)
                        arg.json = true;
                else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0)
                        *ret_help = true;
                else if (strcmp(a, "--version") == 0 || strcmp(a, "-V") == 0)
                        *ret_version = true;
                else if (strcmp(a, "--user") == 0)
                        arg.user = true;
                else if (strcmp(a, "--no-legend") == 0)
                        arg.no_legend = true;
                else
                        argv[out++] = argv[i];
        }
        argv[out] = NULL;
        *argc = out;
}

int main(int argc, char **argv) {
        static const struct option options[] = {
                COMMON_OPTIONS,
                {},
        };
        const struct command *cmd;
        bool help = false, version = false;
        int c;

        take_global_flags(&argc, argv, &help, &version);
        if (version) {
                printf("gmemctl %s (libgmem %s)\n", GMEM_VERSION_STRING, gmem_version());
                return 0;
        }
        opterr = 0;
        while ((c = getopt_long(argc, argv, "+", options, NULL)) >= 0)
                if (!common_option(c)) {
                        fprintf(stderr, "gmemctl: invalid option '%s' (see gmemctl --help)\n", argv[optind - 1]);
                        return EXIT_USAGE;
                }
        if (optind >= argc) {
                if (help) {
                        usage(stdout);
                        return 0;
                }
                fprintf(stderr, "gmemctl: no command given (see gmemctl --help)\n");
                return EXIT_USAGE;
        }
        if (strcmp(argv[optind], "help") == 0)
                return cmd_help(argc - optind, argv + optind);
        if (!(cmd = find_command(argv[optind]))) {
                fprintf(stderr, "gmemctl: unknown command '%s' (see gmemctl --help)\n", argv[optind]);
                return EXIT_USAGE;
        }
        if (help) {
                command_usage(cmd);
                return 0;
        }
        argc -= optind;
        argv += optind;
        reset_getopt(); /* (optind is the command's from here) */
        return cmd->fn(argc, argv);
}
