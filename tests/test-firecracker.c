/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Firecracker's page-fault handler handshake, with a real userfaultfd. No Firecracker binary can
 * run here: this test plays Firecracker's part as its docs (docs/snapshotting/handling-page-
 * faults-on-snapshot-resume.md) and its source (GuestRegionUffdMapping) describe it — two
 * anonymous private mappings of guest memory (the split at the MMIO gap), one uffd registered on
 * both, a connect to the handler's unix socket and one message: the JSON array of regions and the
 * uffd as SCM_RIGHTS. The handler is libgmem's (gmem_firecracker_handshake() and a page server
 * over the mappings) on a thread. Memory is checked byte for byte, from a raw memory file (what
 * Firecracker writes) and from a gmem snapshot; a balloon's discard reads back as zeroes; hostile
 * handshakes are refused naming what is wrong.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>
#include <linux/userfaultfd.h>

#include "fd-pass.h"
#include "gmem-cleanup.h"
#include "gmem-test.h"
#include "gmem/gmem.h"

#define MiB_ (UINT64_C(1) << 20)
#define LOW (4 * MiB_)  /* region 0: below the gap */
#define HIGH (2 * MiB_) /* region 1: above it */
#define TOTAL (LOW + HIGH)

/* The guest's memory image: data in both regions, holes between. */
static uint8_t *image(void) {
        uint8_t *d = calloc(1, TOTAL);
        gmem_test_fill(d + 8192, 5 * 4096, 11);
        gmem_test_fill(d + MiB_, MiB_ + 4096, 12);
        gmem_test_fill(d + LOW - 4096, 8192, 13); /* across the regions' boundary in the file */
        gmem_test_fill(d + LOW + MiB_ + 65536, 3 * 65536, 14);
        return d;
}

/* Firecracker's memory file: the image as a sparse file (zero pages left out). */
static int raw_file(const uint8_t *d) {
        int fd = gmem_test_temp_file();
        for (uint64_t off = 0; off < TOTAL; off += 4096) {
                bool zero = true;
                for (unsigned i = 0; i < 4096 && zero; i++)
                        zero = d[off + i] == 0;
                if (!zero)
                        ck_assert_int_eq(pwrite(fd, d + off, 4096, (off_t) off), 4096);
        }
        ck_assert_int_eq(ftruncate(fd, TOTAL), 0);
        return fd;
}

/* The same image as a gmem snapshot. */
static int gmem_snapshot(const uint8_t *d) {
        _cleanup_(gmem_region_freep) struct gmem_region *r = NULL;
        int fd = gmem_test_temp_file();

        ck_assert_int_eq(gmem_region_new_memfd(GMEM_BACKEND_MEMFD, TOTAL, &r), 0);
        ck_assert_int_eq(gmem_populate_buf(r, 0, d, TOTAL, NULL), TOTAL);
        ck_assert_int_ge(gmem_snapshot_write(r, fd, NULL), 0);
        return fd;
}

/* "Firecracker": its guest memory, one uffd on both regions. */
struct vm {
        uint8_t *low, *high;
        int uffd;
};

static bool vm_new(struct vm *vm) {
        struct uffdio_register reg = { .mode = UFFDIO_REGISTER_MODE_MISSING };
        int k;

        vm->low = mmap(NULL, LOW, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        vm->high = mmap(NULL, HIGH, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        ck_assert(vm->low != MAP_FAILED && vm->high != MAP_FAILED);
        k = gmem_uffd_register(vm->low, LOW, false, &vm->uffd);
        if (k < 0) {
                gmem_test_skip("firecracker", "no userfaultfd here: %s", gmem_last_error());
                return false;
        }
        reg.range.start = (uintptr_t) vm->high;
        reg.range.len = HIGH;
        ck_assert_int_eq(ioctl(vm->uffd, UFFDIO_REGISTER, &reg), 0);
        return true;
}

static void vm_free(struct vm *vm) {
        munmap(vm->low, LOW);
        munmap(vm->high, HIGH);
        close(vm->uffd);
}

/* The handshake as Firecracker sends it; style: 0 today's (page_size and the deprecated
 * page_size_kib, both in bytes), 1 the first with a page size (page_size_kib in KiB), 2 the
 * oldest (none). */
static int handshake_json(const struct vm *vm, int style, char *buf, size_t size) {
        unsigned long low = (uintptr_t) vm->low, high = (uintptr_t) vm->high;

        switch (style) {
        case 0:
                return snprintf(buf, size,
                                "[{\"base_host_virt_addr\":%lu,\"size\":%lu,\"offset\":0,\"page_size\":4096,\"page_size_kib\":4096},"
                                "{\"base_host_virt_addr\":%lu,\"size\":%lu,\"offset\":%lu,\"page_size\":4096,\"page_size_kib\":4096}]",
                                low, (unsigned long) LOW, high, (unsigned long) HIGH, (unsigned long) LOW);
        case 1:
                return snprintf(buf, size,
                                "[{\"base_host_virt_addr\":%lu,\"size\":%lu,\"offset\":0,\"page_size_kib\":4},"
                                "{\"base_host_virt_addr\":%lu,\"size\":%lu,\"offset\":%lu,\"page_size_kib\":4}]",
                                low, (unsigned long) LOW, high, (unsigned long) HIGH, (unsigned long) LOW);
        default:
                return snprintf(buf, size,
                                "[{\"base_host_virt_addr\":%lu,\"size\":%lu,\"offset\":0},"
                                "{\"base_host_virt_addr\":%lu,\"size\":%lu,\"offset\":%lu}]",
                                low, (unsigned long) LOW, high, (unsigned long) HIGH, (unsigned long) LOW);
        }
}

/* The handler: accept on the listening socket, the handshake, then serve until told to stop. */
struct handler {
        pthread_t thread;
        int listen_fd, source;
        uint64_t flags;
        volatile bool stop;
        int error;
        uint64_t faults;
        char message[512];
};

static void *handler_run(void *p) {
        struct handler *h = p;
        struct gmem_uffd_mapping *maps = NULL;
        struct gmem_page_server *ps = NULL;
        size_t n = 0;
        int conn, uffd = -1, k;

        conn = accept4(h->listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (conn < 0) {
                h->error = -errno;
                return NULL;
        }
        k = gmem_firecracker_handshake(conn, 5000, &uffd, &maps, &n);
        if (k == 0)
                k = gmem_page_server_new_mapped(uffd, maps, n, h->source, h->flags, &ps);
        while (k >= 0 && !h->stop)
                k = gmem_page_server_run(ps, 20);
        if (k < 0)
                snprintf(h->message, sizeof(h->message), "%s", gmem_last_error());
        h->error = k < 0 ? k : 0;
        h->faults = gmem_page_server_faults(ps);
        gmem_page_server_free(ps);
        free(maps);
        if (uffd >= 0)
                close(uffd);
        close(conn);
        return NULL;
}

/* A unix socket at a path, as the handler listens for Firecracker; returns the listening fd. */
static int listen_at(struct sockaddr_un *sa) {
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        char dir[] = "/tmp/gmem-fc-XXXXXX";

        ck_assert_ptr_nonnull(mkdtemp(dir));
        *sa = (struct sockaddr_un) { .sun_family = AF_UNIX };
        snprintf(sa->sun_path, sizeof(sa->sun_path), "%s/uffd.sock", dir);
        ck_assert_int_eq(bind(fd, (struct sockaddr *) sa, sizeof(*sa)), 0);
        ck_assert_int_eq(listen(fd, 1), 0);
        return fd;
}

static void unlisten(int fd, const struct sockaddr_un *sa) {
        char dir[sizeof(sa->sun_path)];
        close(fd);
        unlink(sa->sun_path);
        snprintf(dir, sizeof(dir), "%s", sa->sun_path);
        *strrchr(dir, '/') = 0;
        rmdir(dir);
}

/* Firecracker's side of a restore: connect, send, touch. */
static void restore_case(bool raw, int style) {
        _cleanup_free_ uint8_t *want = image();
        struct sockaddr_un sa;
        struct handler h = { 0 };
        struct vm vm;
        char json[1024];
        int conn, len;

        if (!vm_new(&vm))
                return;
        h.source = raw ? raw_file(want) : gmem_snapshot(want);
        h.flags = raw ? GMEM_PAGE_SERVER_RAW : 0;
        h.listen_fd = listen_at(&sa);
        ck_assert_int_eq(pthread_create(&h.thread, NULL, handler_run, &h), 0);

        conn = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ck_assert_int_eq(connect(conn, (struct sockaddr *) &sa, sizeof(sa)), 0);
        len = handshake_json(&vm, style, json, sizeof(json));
        ck_assert_int_eq(send_with_fds(conn, json, (size_t) len, &vm.uffd, 1, 0), len);

        /* the guest runs: every byte of both regions as the image has it */
        ck_assert_msg(memcmp(vm.high, want + LOW, HIGH) == 0, "region 1 differs (%s)", h.message);
        ck_assert_msg(memcmp(vm.low, want, LOW) == 0, "region 0 differs (%s)", h.message);
        /* a balloon takes pages back (MADV_DONTNEED; Firecracker's handler docs: they must read
         * as zeroes after): served ones, and ones never touched — both zero, the rest intact */
        ck_assert_int_eq(madvise(vm.low + MiB_, 65536, MADV_DONTNEED), 0);
        for (uint64_t i = 0; i < 65536; i++)
                ck_assert_msg(vm.low[MiB_ + i] == 0, "a discarded page came back with data at %lu", (unsigned long) i);
        ck_assert(memcmp(vm.low + MiB_ + 65536, want + MiB_ + 65536, MiB_) == 0);
        h.stop = true;
        pthread_join(h.thread, NULL);
        ck_assert_msg(h.error == 0, "handler: %s", h.message);
        ck_assert_uint_gt(h.faults, 0);
        close(conn);
        unlisten(h.listen_fd, &sa);
        close(h.source);
        vm_free(&vm);
}

START_TEST(raw_memory_file) {
        restore_case(true, 0);
}
END_TEST

START_TEST(gmem_snapshot_source) {
        restore_case(false, 0);
}
END_TEST

START_TEST(older_handshakes) {
        restore_case(true, 1);
        restore_case(true, 2);
}
END_TEST

/* A page server run on a thread until stopped. */
struct loop {
        pthread_t thread;
        struct gmem_page_server *ps;
        volatile bool stop;
        int error;
};

static void *loop_run(void *p) {
        struct loop *l = p;
        while (!l->stop && l->error == 0) {
                int k = gmem_page_server_run(l->ps, 20);
                if (k < 0)
                        l->error = k;
        }
        return NULL;
}


/* A discard before the first touch: the page is served as zeroes, never from the file. */
START_TEST(discard_before_touch) {
        _cleanup_free_ uint8_t *want = image();
        struct gmem_uffd_mapping maps[2];
        struct loop l = { 0 };
        struct vm vm;
        int src;

        if (!vm_new(&vm))
                return;
        src = raw_file(want);
        maps[0] = (struct gmem_uffd_mapping) { .base = (uintptr_t) vm.low, .size = LOW, .offset = 0 };
        maps[1] = (struct gmem_uffd_mapping) { .base = (uintptr_t) vm.high, .size = HIGH, .offset = LOW, .page_size = 4096 };
        ck_assert_int_eq(gmem_page_server_new_mapped(vm.uffd, maps, 2, src, GMEM_PAGE_SERVER_RAW, &l.ps), 0);
        /* the REMOVE event waits for its reader: the server runs from here */
        ck_assert_int_eq(pthread_create(&l.thread, NULL, loop_run, &l), 0);
        ck_assert_int_eq(madvise(vm.high + MiB_ + 65536, 65536, MADV_DONTNEED), 0);
        for (uint64_t i = 0; i < 65536; i++)
                ck_assert_msg(vm.high[MiB_ + 65536 + i] == 0, "a page discarded before its first touch has data");
        ck_assert(memcmp(vm.high + MiB_ + 2 * 65536, want + LOW + MiB_ + 2 * 65536, 65536) == 0);
        ck_assert(memcmp(vm.low, want, LOW) == 0);
        l.stop = true;
        pthread_join(l.thread, NULL);
        ck_assert_int_eq(l.error, 0);
        gmem_page_server_free(l.ps);
        close(src);
        vm_free(&vm);
}
END_TEST

/* Firecracker with hugepages: a 2 MiB hugetlb mapping (MAP_PRIVATE), filled a huge page at a
 * time (hugetlb has no UFFDIO_ZEROPAGE: holes are copied zeroes). */
START_TEST(huge_pages) {
        _cleanup_free_ uint8_t *want = image();
        struct gmem_uffd_mapping m;
        struct uffdio_api api = { .api = UFFD_API };
        struct uffdio_register reg = { .mode = UFFDIO_REGISTER_MODE_MISSING };
        struct loop l = { 0 };
        uint8_t *mem;
        int src, uffd;

        mem = mmap(NULL, LOW, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
        if (mem == MAP_FAILED)
                SKIP_TEST("no 2 MiB huge pages to map (none reserved in /proc/sys/vm/nr_hugepages): %m");
        uffd = (int) syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
        if (uffd < 0) {
                munmap(mem, LOW);
                SKIP_TEST("no userfaultfd here: %m");
        }
        ck_assert_int_eq(ioctl(uffd, UFFDIO_API, &api), 0);
        reg.range = (struct uffdio_range) { .start = (uintptr_t) mem, .len = LOW };
        ck_assert_int_eq(ioctl(uffd, UFFDIO_REGISTER, &reg), 0);
        src = raw_file(want);
        m = (struct gmem_uffd_mapping) { .base = (uintptr_t) mem, .size = LOW, .offset = 0, .page_size = 2 * MiB_ };
        ck_assert_msg(gmem_page_server_new_mapped(uffd, &m, 1, src, GMEM_PAGE_SERVER_RAW, &l.ps) == 0, "%s", gmem_last_error());
        ck_assert_int_eq(pthread_create(&l.thread, NULL, loop_run, &l), 0);
        ck_assert_msg(memcmp(mem, want, LOW) == 0, "huge pages served differ");
        l.stop = true;
        pthread_join(l.thread, NULL);
        ck_assert_int_eq(l.error, 0);
        ck_assert_uint_eq(gmem_page_server_faults(l.ps), 2); /* one per huge page */
        gmem_page_server_free(l.ps);
        close(src);
        close(uffd);
        munmap(mem, LOW);
}
END_TEST

/* One handshake into a socketpair, read by the handler's call: its error and message. */
static int try_handshake(const char *json, const int *fds, size_t n_fds, bool hang_up, char *msg, size_t msg_size) {
        struct gmem_uffd_mapping *maps = NULL;
        size_t n = 0;
        int sv[2], uffd = -1, k;

        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        if (json)
                ck_assert_int_ge(send_with_fds(sv[0], json, strlen(json), fds, n_fds, 0), 0);
        if (hang_up)
                close(sv[0]);
        k = gmem_firecracker_handshake(sv[1], 200, &uffd, &maps, &n);
        snprintf(msg, msg_size, "%s", k < 0 ? gmem_last_error() : "");
        if (k == 0) {
                close(uffd);
                free(maps);
        } else
                ck_assert_ptr_null(maps);
        if (!hang_up)
                close(sv[0]);
        close(sv[1]);
        return k;
}

#define EXPECT_HANDSHAKE(json, fds, n, hang, err, needle) do { \
                char m_[512]; \
                const char *j_ = (json); \
                int k_ = try_handshake(j_, fds, n, hang, m_, sizeof(m_)); \
                ck_assert_msg(k_ == -(err), "%.200s: got %d (%s), want -%s", j_ ? j_ : "(nothing)", k_, m_, #err); \
                ck_assert_msg(strstr(m_, needle), "%.200s: message '%s' lacks '%s'", j_ ? j_ : "(nothing)", m_, needle); \
        } while (0)

START_TEST(hostile_handshakes) {
        const char *ok = "[{\"base_host_virt_addr\":4096,\"size\":4096,\"offset\":0,\"page_size\":4096}]";
        struct vm vm;
        int pipefd[2], two[2];
        unsigned open_before;
        char many[8192];
        size_t at;

        if (!vm_new(&vm))
                return;
        ck_assert_int_eq(pipe2(pipefd, O_CLOEXEC), 0);
        open_before = gmem_test_count_fds(getpid());
        two[0] = vm.uffd;
        two[1] = pipefd[0];
        EXPECT_HANDSHAKE("{\"base_host_virt_addr\":1}", &vm.uffd, 1, false, EBADMSG, "not a JSON array");
        EXPECT_HANDSHAKE("[1,2,,]", &vm.uffd, 1, false, EBADMSG, "not JSON");
        EXPECT_HANDSHAKE("[]", &vm.uffd, 1, false, EBADMSG, "0 memory regions");
        EXPECT_HANDSHAKE("[{\"size\":4096,\"offset\":0}]", &vm.uffd, 1, false, EBADMSG, "no base_host_virt_addr");
        EXPECT_HANDSHAKE("[{\"base_host_virt_addr\":-4096,\"size\":4096,\"offset\":0}]", &vm.uffd, 1, false, EBADMSG,
                         "base_host_virt_addr is not an integer");
        EXPECT_HANDSHAKE("[{\"base_host_virt_addr\":4096,\"size\":1e300,\"offset\":0}]", &vm.uffd, 1, false, EBADMSG,
                         "size is not an integer");
        EXPECT_HANDSHAKE("[{\"base_host_virt_addr\":4096,\"size\":\"4096\",\"offset\":0}]", &vm.uffd, 1, false, EBADMSG,
                         "size is not an integer");
        EXPECT_HANDSHAKE("[7]", &vm.uffd, 1, false, EBADMSG, "not an object");
        /* found by the fuzzer: a page size of 0 (KiB) was taken */
        EXPECT_HANDSHAKE("[{\"base_host_virt_addr\":4096,\"size\":4096,\"offset\":0,\"page_size_kib\":0}]", &vm.uffd, 1, false,
                         EBADMSG, "a page size of 0 bytes");
        EXPECT_HANDSHAKE("[{\"base_host_virt_addr\":4096,\"size\":4096,\"offset\":0,\"page_size\":12288}]", &vm.uffd, 1, false,
                         EBADMSG, "a page size of 12288 bytes");
        EXPECT_HANDSHAKE(ok, NULL, 0, false, EBADMSG, "0 file descriptors");
        EXPECT_HANDSHAKE(ok, two, 2, false, EBADMSG, "2 file descriptors");
        EXPECT_HANDSHAKE(ok, &pipefd[0], 1, false, EBADMSG, "not a userfaultfd");
        EXPECT_HANDSHAKE(NULL, NULL, 0, true, ECONNRESET, "hung up before");
        EXPECT_HANDSHAKE("[{\"base_host_virt_addr\":4096,", &vm.uffd, 1, true, ECONNRESET, "in the middle");
        EXPECT_HANDSHAKE(NULL, NULL, 0, false, ETIMEDOUT, "within 200 ms");
        at = (size_t) snprintf(many, sizeof(many), "[");
        for (int i = 0; i < GMEM_UFFD_MAPPINGS_MAX + 1; i++)
                at += (size_t) snprintf(many + at, sizeof(many) - at, "%s{\"base_host_virt_addr\":%d,\"size\":4096,\"offset\":%d}",
                                        i ? "," : "", (i + 1) * 4096, i * 4096);
        snprintf(many + at, sizeof(many) - at, "]");
        EXPECT_HANDSHAKE(many, &vm.uffd, 1, false, EBADMSG, "65 memory regions");
        /* every fd that came with a refused handshake was closed */
        ck_assert_uint_eq(gmem_test_count_fds(getpid()), open_before);
        close(pipefd[0]);
        close(pipefd[1]);
        vm_free(&vm);
}
END_TEST

/* Mappings a handshake may carry that no server may take. */
START_TEST(bad_mappings) {
        _cleanup_free_ uint8_t *want = image();
        struct gmem_page_server *ps = SENTINEL_PTR;
        struct gmem_uffd_mapping m[2];
        struct vm vm;
        int raw, snap;

        if (!vm_new(&vm))
                return;
        raw = raw_file(want);
        snap = gmem_snapshot(want);
#define MAP(i, b, s, o, p) m[i] = (struct gmem_uffd_mapping) { .base = (b), .size = (s), .offset = (o), .page_size = (p) }
        MAP(0, (uintptr_t) vm.low + 1, 4096, 0, 0);
        EXPECT_FAIL(gmem_page_server_new_mapped(vm.uffd, m, 1, raw, GMEM_PAGE_SERVER_RAW, &ps), EINVAL, "not aligned");
        MAP(0, (uintptr_t) vm.low, 0, 0, 0);
        EXPECT_FAIL(gmem_page_server_new_mapped(vm.uffd, m, 1, raw, GMEM_PAGE_SERVER_RAW, &ps), EINVAL, "empty");
        MAP(0, (uintptr_t) vm.low, LOW, 0, 8192);
        EXPECT_FAIL(gmem_page_server_new_mapped(vm.uffd, m, 1, raw, GMEM_PAGE_SERVER_RAW, &ps), EINVAL, "page size 8192");
        MAP(0, UINT64_MAX - 4095, 8192, 0, 0);
        EXPECT_FAIL(gmem_page_server_new_mapped(vm.uffd, m, 1, raw, GMEM_PAGE_SERVER_RAW, &ps), EINVAL, "wraps");
        MAP(0, (uintptr_t) vm.low, LOW, 0, 0);
        MAP(1, (uintptr_t) vm.low + 4096, 4096, LOW, 0);
        EXPECT_FAIL(gmem_page_server_new_mapped(vm.uffd, m, 2, raw, GMEM_PAGE_SERVER_RAW, &ps), EINVAL, "overlap");
        MAP(1, (uintptr_t) vm.high, HIGH, LOW - 4096, 0);
        EXPECT_FAIL(gmem_page_server_new_mapped(vm.uffd, m, 2, raw, GMEM_PAGE_SERVER_RAW, &ps), EINVAL, "two mappings hold");
        MAP(1, (uintptr_t) vm.high, HIGH, LOW + 4096, 0);
        EXPECT_FAIL(gmem_page_server_new_mapped(vm.uffd, m, 2, raw, GMEM_PAGE_SERVER_RAW, &ps), EINVAL, "beyond the");
        MAP(1, (uintptr_t) vm.high, HIGH, LOW, 2 * MiB_);
        EXPECT_FAIL(gmem_page_server_new_mapped(vm.uffd, m, 2, raw, GMEM_PAGE_SERVER_RAW, &ps), EINVAL, "mapping 0 of");
        MAP(1, (uintptr_t) vm.high, HIGH - 8192, LOW + 4096, 0);
        EXPECT_FAIL(gmem_page_server_new_mapped(vm.uffd, m, 2, snap, 0, &ps), EINVAL, "must be a multiple");
        EXPECT_FAIL(gmem_page_server_new_mapped(vm.uffd, m, 1, raw, 0x2, &ps), EINVAL, "unknown flags");
        EXPECT_FAIL(gmem_page_server_new_mapped(vm.uffd, m, 0, raw, 0, &ps), EINVAL, "mappings");
        EXPECT_FAIL(gmem_page_server_new_mapped(vm.uffd, m, 65, raw, 0, &ps), E2BIG, "65 mappings");
        /* a raw file is not a gmem snapshot, and a short one is refused */
        MAP(0, (uintptr_t) vm.low, LOW, 0, 0);
        EXPECT_FAIL(gmem_page_server_new_mapped(vm.uffd, m, 1, raw, 0, &ps), EBADMSG, "not a gmem snapshot");
        ck_assert_int_eq(ftruncate(raw, TOTAL - 100), 0);
        EXPECT_FAIL(gmem_page_server_new_mapped(vm.uffd, m, 1, raw, GMEM_PAGE_SERVER_RAW, &ps), EINVAL, "not a whole number of pages");
        ck_assert_ptr_eq(ps, SENTINEL_PTR);
#undef MAP
        close(raw);
        close(snap);
        vm_free(&vm);
}
END_TEST

/* A memory file cut short while it is served: the fault is not answered with zeroes; the
 * faulting thread stays in its fault until the test lets it go with a zero page of its own. */
START_TEST(truncated_while_served) {
        _cleanup_free_ uint8_t *want = image();
        struct gmem_page_server *ps = NULL;
        struct gmem_uffd_mapping m;
        struct gmem_test_toucher t;
        pthread_t th;
        struct vm vm;
        int raw, k = 0;

        if (!vm_new(&vm))
                return;
        raw = raw_file(want);
        m = (struct gmem_uffd_mapping) { .base = (uintptr_t) vm.low, .size = LOW, .offset = 0 };
        ck_assert_int_eq(gmem_page_server_new_mapped(vm.uffd, &m, 1, raw, GMEM_PAGE_SERVER_RAW, &ps), 0);
        ck_assert_int_eq(ftruncate(raw, 4096), 0);
        t = (struct gmem_test_toucher) { .p = vm.low + MiB_ };
        ck_assert_int_eq(pthread_create(&th, NULL, gmem_test_touch, &t), 0);
        for (int i = 0; i < 100 && k == 0; i++)
                k = gmem_page_server_run(ps, 50);
        ck_assert_int_eq(k, -EBADMSG);
        ck_assert_msg(strstr(gmem_last_error(), "truncated"), "%s", gmem_last_error());
        usleep(50 * 1000);
        ck_assert_msg(!t.done, "the faulting thread went on: it was served something");
        {
                struct uffdio_zeropage z = { .range = { .start = (uintptr_t) (vm.low + MiB_), .len = 4096 } };
                ck_assert_int_eq(ioctl(vm.uffd, UFFDIO_ZEROPAGE, &z), 0);
        }
        pthread_join(th, NULL);
        gmem_page_server_free(ps);
        close(raw);
        vm_free(&vm);
}
END_TEST

int main(void) {
        Suite *s = suite_create("firecracker");
        TCase *tc = tcase_create("firecracker");

        tcase_set_timeout(tc, 120);
        tcase_add_test(tc, raw_memory_file);
        tcase_add_test(tc, gmem_snapshot_source);
        tcase_add_test(tc, older_handshakes);
        tcase_add_test(tc, discard_before_touch);
        tcase_add_test(tc, huge_pages);
        tcase_add_test(tc, hostile_handshakes);
        tcase_add_test(tc, bad_mappings);
        tcase_add_test(tc, truncated_while_served);
        suite_add_tcase(s, tc);
        return gmem_test_main(s);
}
