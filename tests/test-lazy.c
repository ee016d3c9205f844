/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Lazy restore with a real userfaultfd: memory a thread touches is served from a snapshot by a
 * page server in another thread — anonymous private memory (MISSING faults, UFFDIO_COPY), a shmem
 * mapping of a fresh region (MISSING) and of a pooled, prefaulted one (MINOR faults, written
 * through the region and UFFDIO_CONTINUE) — byte for byte, holes as zeroes; prefetch makes it all
 * resident; a discard reads back as zeroes; damaged data is never served.
 */
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>
#include <linux/userfaultfd.h>

#include "gmem-cleanup.h"
#include "gmem-test.h"
#include "hugepages.h"
#include "gmem/gmem.h"

#define MiB_ (UINT64_C(1) << 20)
#define SIZE (8 * MiB_)
#define BLOCK (16 * 1024) /* what this writer cuts extents at, and a fault fetches */

struct server {
        pthread_t thread;
        struct gmem_page_server *ps;
        volatile bool stop;
        int error;
        char message[512];
};

static void *serve(void *p) {
        struct server *s = p;
        while (!s->stop) {
                int k = gmem_page_server_run(s->ps, 20);
                if (k < 0) {
                        snprintf(s->message, sizeof(s->message), "%s", gmem_last_error());
                        s->error = k;
                        break;
                }
        }
        return NULL;
}

static void server_start(struct server *s, int uffd, void *base, int snap, struct gmem_region *region) {
        *s = (struct server) { 0 };
        ck_assert_msg(gmem_page_server_new(uffd, (uintptr_t) base, snap, region, &s->ps) == 0, "%s", gmem_last_error());
        ck_assert_int_eq(pthread_create(&s->thread, NULL, serve, s), 0);
}

static void server_stop(struct server *s) {
        s->stop = true;
        pthread_join(s->thread, NULL);
}

/* Touch p from a thread: a fault that is never served fails the test with the server's error,
 * rather than hanging it. */
static void touch_served(struct server *s, const uint8_t *p, const char *what) {
        struct gmem_test_toucher t = { .p = p };
        pthread_t th;

        ck_assert_int_eq(pthread_create(&th, NULL, gmem_test_touch, &t), 0);
        for (int i = 0; i < 3000 && !t.done && !s->error; i++)
                usleep(10 * 1000);
        if (!t.done) {
                ck_abort_msg("a fault on %s was not served (%d faults seen; server: %s)", what,
                             (int) gmem_page_server_faults(s->ps), s->error ? s->message : "no error");
        }
        pthread_join(th, NULL);
}

/* The sample: data in three places of an 8 MiB memfd, holes elsewhere; its snapshot. */
static int sample_snapshot(uint8_t **ret_want) {
        _cleanup_(gmem_region_freep) struct gmem_region *r = NULL;
        uint8_t *d = calloc(1, SIZE);
        int fd = gmem_test_temp_file();

        ck_assert_int_eq(gmem_region_new_memfd(GMEM_BACKEND_MEMFD, SIZE, &r), 0);
        gmem_test_fill(d + 4096, 3 * 4096, 1);
        gmem_test_fill(d + 2 * MiB_ - 4096, 8192, 2);
        gmem_test_fill(d + 5 * MiB_, MiB_, 3);
        ck_assert_int_eq(gmem_populate_buf(r, 0, d, SIZE, NULL), SIZE);
        /* the populate backed every page: punch the zero ones out, so the snapshot has holes */
        for (uint64_t off = 0; off < SIZE; off += 4096) {
                bool zero = true;
                for (unsigned i = 0; i < 4096 && zero; i++)
                        zero = d[off + i] == 0;
                if (zero)
                        ck_assert_int_eq(gmem_punch_hole(r, off, 4096), 0);
        }
        ck_assert_int_ge(gmem_snapshot_write(r, fd, NULL), 0);
        *ret_want = d;
        return fd;
}

/* userfaultfd where this process may have one: else the test says why and skips */
static bool uffd_for(void *addr, bool minor, int *ret) {
        int k = gmem_uffd_register(addr, SIZE, minor, ret);
        if (k < 0)
                gmem_test_skip("lazy", "no userfaultfd here: %s", gmem_last_error());
        return k == 0;
}

START_TEST(anonymous_missing_faults) {
        _cleanup_free_ uint8_t *want = NULL;
        uint8_t *mem;
        struct server s;
        int snap, uffd;

        snap = sample_snapshot(&want);
        mem = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        ck_assert_ptr_ne(mem, MAP_FAILED);
        if (!uffd_for(mem, false, &uffd))
                return;
        server_start(&s, uffd, mem, snap, NULL);
        ck_assert_msg(memcmp(mem, want, SIZE) == 0, "lazily restored memory differs");
        ck_assert_uint_gt(gmem_page_server_faults(s.ps), 0);
        /* a discard (a balloon) reads back as zeroes, as discarded private memory does — never
         * the snapshot's data again (the guest may have written since); the rest is intact */
        ck_assert_int_eq(madvise(mem + 5 * MiB_, MiB_ / 2, MADV_DONTNEED), 0);
        for (uint64_t i = 0; i < MiB_ / 2; i++)
                ck_assert_msg(mem[5 * MiB_ + i] == 0, "a discarded page came back with data");
        ck_assert_msg(memcmp(mem + 5 * MiB_ + MiB_ / 2, want + 5 * MiB_ + MiB_ / 2, MiB_ / 2) == 0, "the rest changed");
        server_stop(&s);
        ck_assert_int_eq(s.error, 0);
        gmem_page_server_free(s.ps);
        close(uffd);
        munmap(mem, SIZE);
        close(snap);
}
END_TEST

/* A balloon's discard while the server fills memory: the madvise() waits until its REMOVE event
 * is read, and until then the kernel answers every fill with EAGAIN. That is never "done": the
 * server reads the event and fills again, so the discarded pages read as zeroes and every other
 * page has the snapshot's bytes (taking EAGAIN as done left pages empty, read back as zeroes). */
struct discarder {
        uint8_t *p;
        size_t len;
        int result;
};

static void *discard_thread(void *arg) {
        struct discarder *d = arg;
        d->result = madvise(d->p, d->len, MADV_DONTNEED);
        return NULL;
}

/* the event is queued: the uffd has something to read */
static void wait_for_event(int uffd) {
        struct pollfd p = { .fd = uffd, .events = POLLIN };
        ck_assert_msg(poll(&p, 1, 10000) == 1, "no event on the userfaultfd within 10 s");
}

static void discard_during_prefetch(bool shared) {
        _cleanup_(gmem_region_freep) struct gmem_region *r = NULL;
        _cleanup_free_ uint8_t *want = NULL;
        struct discarder d;
        struct server s;
        pthread_t th;
        uint8_t *mem;
        int snap, uffd;

        snap = sample_snapshot(&want);
        if (shared) {
                ck_assert_int_eq(gmem_region_new_memfd(GMEM_BACKEND_MEMFD, SIZE, &r), 0);
                mem = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, gmem_region_fd(r), 0);
        } else
                mem = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        ck_assert_ptr_ne(mem, MAP_FAILED);
        if (!uffd_for(mem, shared, &uffd))
                return;
        s = (struct server) { 0 };
        ck_assert_msg(gmem_page_server_new(uffd, (uintptr_t) mem, snap, r, &s.ps) == 0, "%s", gmem_last_error());
        d = (struct discarder) { .p = mem + 5 * MiB_ + 64 * 1024, .len = 128 * 1024 };
        ck_assert_int_eq(pthread_create(&th, NULL, discard_thread, &d), 0);
        wait_for_event(uffd);
        /* every fill meets the unread event first */
        ck_assert_msg(gmem_page_server_prefetch(s.ps, SIZE) > 0, "%s", gmem_last_error());
        ck_assert(gmem_page_server_complete(s.ps));
        /* faults from here on (there should be none but the discarded pages') */
        ck_assert_int_eq(pthread_create(&s.thread, NULL, serve, &s), 0);
        pthread_join(th, NULL);
        ck_assert_int_eq(d.result, 0);
        if (!shared) /* private memory discarded reads as zeroes; a shared mapping's file keeps its bytes */
                memset(want + 5 * MiB_ + 64 * 1024, 0, 128 * 1024);
        for (uint64_t off = 0; off < SIZE; off += 4096)
                ck_assert_msg(memcmp(mem + off, want + off, 4096) == 0, "%s memory at %" PRIu64 " differs after a discard "
                              "during the prefetch", shared ? "shared" : "private", off);
        server_stop(&s);
        ck_assert_msg(s.error == 0, "%s", s.message);
        gmem_page_server_free(s.ps);
        close(uffd);
        munmap(mem, SIZE);
        close(snap);
}

START_TEST(discard_during_prefetch_private) { discard_during_prefetch(false); }
END_TEST
START_TEST(discard_during_prefetch_shared) { discard_during_prefetch(true); }
END_TEST

/* A shmem mapping of a region: fresh (MISSING faults) or pooled and prefaulted (MINOR faults). */
static void shmem_case(bool pooled) {
        _cleanup_(gmem_region_freep) struct gmem_region *r = NULL;
        _cleanup_free_ uint8_t *want = NULL;
        struct server s;
        uint8_t *mem;
        void *own;
        int snap, uffd;

        snap = sample_snapshot(&want);
        ck_assert_int_eq(gmem_region_new_memfd(GMEM_BACKEND_MEMFD, SIZE, &r), 0);
        if (pooled)
                ck_assert_int_eq(gmem_prefault(r, 0, SIZE, NULL), 0);
        /* the VMM's mapping: a second one of the same memfd */
        mem = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, gmem_region_fd(r), 0);
        ck_assert_ptr_ne(mem, MAP_FAILED);
        if (!uffd_for(mem, true, &uffd))
                return;
        server_start(&s, uffd, mem, snap, r);
        ck_assert_msg(memcmp(mem, want, SIZE) == 0, "lazily restored shmem differs (%s)", pooled ? "minor" : "missing");
        server_stop(&s);
        ck_assert_int_eq(s.error, 0);
        ck_assert_uint_gt(gmem_page_server_faults(s.ps), 0);
        /* the region itself has it: the VMM's pages are the file's */
        ck_assert_int_eq(gmem_region_map(r, &own), 0);
        ck_assert_msg(memcmp(own, want, SIZE) == 0, "the region's own view differs");
        gmem_page_server_free(s.ps);
        close(uffd);
        munmap(mem, SIZE);
        close(snap);
}

/* hugetlb (2 MiB pages), fresh and pooled: filled a huge page at a time through the server's
 * mapping (hugetlbfs has no write()) and mapped with UFFDIO_CONTINUE; holes as written zeroes. */
START_TEST(hugetlb_faults) {
        if (free_huge_pages() < SIZE / (2 * MiB_))
                SKIP_TEST("fewer than %u free 2 MiB huge pages (reserve them in /proc/sys/vm/nr_hugepages)",
                          (unsigned) (SIZE / (2 * MiB_)));
        for (int pooled = 0; pooled < 2; pooled++) {
                _cleanup_(gmem_region_freep) struct gmem_region *r = NULL;
                _cleanup_free_ uint8_t *want = NULL;
                struct server s;
                uint8_t *mem;
                void *own;
                int snap, uffd;

                if (gmem_region_new_memfd(GMEM_BACKEND_HUGETLB, SIZE, &r) < 0)
                        SKIP_TEST("no hugetlb region of %u MiB here: %s", (unsigned) (SIZE >> 20), gmem_last_error());
                if (pooled && gmem_prefault(r, 0, SIZE, NULL) < 0)
                        SKIP_TEST("%u MiB of huge pages cannot be faulted here (free pages?): %s", (unsigned) (SIZE >> 20),
                                  gmem_last_error());
                snap = sample_snapshot(&want);
                mem = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, gmem_region_fd(r), 0);
                ck_assert_ptr_ne(mem, MAP_FAILED);
                if (!uffd_for(mem, true, &uffd))
                        return;
                server_start(&s, uffd, mem, snap, r);
                touch_served(&s, mem + 4096, pooled ? "a pooled hugetlb region" : "a fresh hugetlb region");
                touch_served(&s, mem + 3 * MiB_, pooled ? "a pooled hugetlb region's hole" : "a fresh hugetlb region's hole");
                ck_assert_msg(memcmp(mem, want, SIZE) == 0, "hugetlb served lazily differs (%s)", pooled ? "pooled" : "fresh");
                server_stop(&s);
                ck_assert_msg(s.error == 0, "page server: %s", s.message);
                ck_assert_uint_eq(gmem_page_server_faults(s.ps), SIZE / (2 * MiB_)); /* one per huge page */
                ck_assert_int_eq(gmem_region_map(r, &own), 0);
                ck_assert(memcmp(own, want, SIZE) == 0);
                gmem_page_server_free(s.ps);
                close(uffd);
                munmap(mem, SIZE);
                close(snap);
        }
}
END_TEST

START_TEST(shmem_missing_faults) {
        shmem_case(false);
}
END_TEST

/* Prefetch into a fresh shmem region through the server's own mapping: the extents are written
 * and continued, the holes get zero pages; then nothing faults. */
START_TEST(shmem_prefetch_fresh_region) {
        _cleanup_(gmem_region_freep) struct gmem_region *r = NULL;
        _cleanup_free_ uint8_t *want = NULL;
        struct gmem_page_server *ps = NULL;
        uint8_t *mem;
        int snap, uffd, k;

        snap = sample_snapshot(&want);
        ck_assert_int_eq(gmem_region_new_memfd(GMEM_BACKEND_MEMFD, SIZE, &r), 0);
        mem = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, gmem_region_fd(r), 0);
        ck_assert_ptr_ne(mem, MAP_FAILED);
        if (!uffd_for(mem, true, &uffd))
                return;
        ck_assert_int_eq(gmem_page_server_new(uffd, (uintptr_t) mem, snap, r, &ps), 0);
        while ((k = gmem_page_server_prefetch(ps, 1)) > 0)
                ;
        ck_assert_msg(k == 0, "prefetch: %s", gmem_last_error());
        ck_assert(gmem_page_server_complete(ps));
        ck_assert_uint_eq(gmem_page_server_served_bytes(ps), SIZE);
        /* every page is mapped: reading it all would hang here if one faulted */
        ck_assert(memcmp(mem, want, SIZE) == 0);
        ck_assert_uint_eq(gmem_page_server_faults(ps), 0);
        gmem_page_server_free(ps);
        close(uffd);
        munmap(mem, SIZE);
        close(snap);
}
END_TEST

START_TEST(shmem_minor_faults_pooled) {
        shmem_case(true);
}
END_TEST

START_TEST(prefetch_makes_it_resident) {
        _cleanup_free_ uint8_t *want = NULL;
        struct gmem_page_server *ps = NULL;
        uint64_t faults;
        uint8_t *mem;
        int snap, uffd, k;
        struct server s;

        snap = sample_snapshot(&want);
        mem = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        ck_assert_ptr_ne(mem, MAP_FAILED);
        if (!uffd_for(mem, false, &uffd))
                return;
        ck_assert_int_eq(gmem_page_server_new(uffd, (uintptr_t) mem, snap, NULL, &ps), 0);
        ck_assert(!gmem_page_server_complete(ps));
        while ((k = gmem_page_server_prefetch(ps, 2)) > 0)
                ;
        ck_assert_int_eq(k, 0);
        ck_assert(gmem_page_server_complete(ps));
        /* the data is there without a fault: only holes still fault (served as zeroes) */
        s = (struct server) { .ps = ps };
        ck_assert_int_eq(pthread_create(&s.thread, NULL, serve, &s), 0);
        ck_assert(memcmp(mem + 5 * MiB_, want + 5 * MiB_, MiB_) == 0);
        faults = gmem_page_server_faults(ps);
        ck_assert_uint_eq(faults, 0);
        ck_assert(memcmp(mem, want, SIZE) == 0);
        server_stop(&s);
        ck_assert_int_eq(s.error, 0);
        gmem_page_server_free(ps);
        close(uffd);
        munmap(mem, SIZE);
        close(snap);
}
END_TEST


/* Damaged data is not served: the server fails naming it, the faulting thread stays waiting. */
START_TEST(damaged_data_never_served) {
        _cleanup_free_ uint8_t *want = NULL;
        struct gmem_page_server *ps = NULL;
        struct gmem_test_toucher t;
        pthread_t th;
        uint8_t *mem, b;
        int snap, uffd, k = 0;

        snap = sample_snapshot(&want);
        ck_assert_int_eq(pread(snap, &b, 1, 4096 + 5 * MiB_ + 7), 1);
        b ^= 0x10;
        ck_assert_int_eq(pwrite(snap, &b, 1, 4096 + 5 * MiB_ + 7), 1);
        mem = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        ck_assert_ptr_ne(mem, MAP_FAILED);
        if (!uffd_for(mem, false, &uffd))
                return;
        ck_assert_int_eq(gmem_page_server_new(uffd, (uintptr_t) mem, snap, NULL, &ps), 0);
        t = (struct gmem_test_toucher) { .p = mem + 5 * MiB_ + 4096 };
        ck_assert_int_eq(pthread_create(&th, NULL, gmem_test_touch, &t), 0);
        for (int i = 0; i < 100 && k == 0; i++)
                k = gmem_page_server_run(ps, 50);
        ck_assert_int_eq(k, -EBADMSG);
        ck_assert_msg(strstr(gmem_last_error(), "does not match its checksum"), "%s", gmem_last_error());
        usleep(100 * 1000);
        ck_assert_msg(!t.done, "the faulting thread went on: it was served something");
        /* the test lets it go with a zero page of its own */
        {
                struct uffdio_zeropage z = { .range = { .start = (uintptr_t) (mem + 5 * MiB_ + 4096), .len = 4096 } };
                ck_assert_int_eq(ioctl(uffd, UFFDIO_ZEROPAGE, &z), 0);
        }
        pthread_join(th, NULL);
        ck_assert(t.done);
        gmem_page_server_free(ps);
        close(uffd);
        munmap(mem, SIZE);
        close(snap);
}
END_TEST

/* guest_memfd where the kernel lets a userfaultfd on its mapping (7.1's series; the secret-hiding
 * kernel): the VMM's shared mapping of a guest_memfd region served from a snapshot like shmem —
 * written through the region's own mapping (or write()) and UFFDIO_CONTINUE. KVM reaches a
 * guest_memfd memslot's pages through the file, not this mapping: the host's accesses (device
 * emulation, the VMM) are what this serves; the guest's own faults need KVM's userfault. */
START_TEST(guest_memfd_faults) {
        _cleanup_(gmem_region_freep) struct gmem_region *r = NULL;
        _cleanup_free_ uint8_t *want = NULL;
        struct server s;
        uint8_t *mem;
        void *own;
        int vm, snap, uffd, k;

        REQUIRE_KVM();
        if (gmem_kernel_has(GMEM_FEATURE_GUEST_MEMFD_UFFD_MINOR) != 1 || gmem_kernel_has(GMEM_FEATURE_GUEST_MEMFD_UFFD_MISSING) != 1)
                SKIP_TEST("this kernel takes no userfaultfd (MISSING and MINOR) on a guest_memfd mapping (7.1, secret hiding)");
        vm = gmem_test_new_vm();
        ck_assert_int_ge(vm, 0);
        k = gmem_region_new_guest_memfd(vm, SIZE, GMEM_GUEST_MEMFD_FLAG_MMAP | GMEM_GUEST_MEMFD_FLAG_INIT_SHARED, &r);
        ck_assert_msg(k == 0, "a shared guest_memfd where userfaultfd works on one: %s", gmem_last_error());
        snap = sample_snapshot(&want);
        mem = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, gmem_region_fd(r), 0);
        ck_assert_ptr_ne(mem, MAP_FAILED);
        k = gmem_uffd_register(mem, SIZE, true, &uffd);
        ck_assert_msg(k == 0, "userfaultfd on the guest_memfd mapping: %s", gmem_last_error());
        server_start(&s, uffd, mem, snap, r);
        touch_served(&s, mem + 5 * MiB_ + 4096, "the guest_memfd mapping");
        ck_assert_msg(memcmp(mem, want, SIZE) == 0, "guest_memfd served lazily differs (%s)", s.message);
        server_stop(&s);
        ck_assert_msg(s.error == 0, "page server: %s", s.message);
        ck_assert_uint_gt(gmem_page_server_faults(s.ps), 0);
        ck_assert_int_eq(gmem_region_map(r, &own), 0);
        ck_assert_msg(memcmp(own, want, SIZE) == 0, "the guest_memfd's own view differs");
        gmem_page_server_free(s.ps);
        close(uffd);
        munmap(mem, SIZE);
        close(snap);
        close(vm);
}
END_TEST

/* A server that dies mid-restore (its process restarted) and one made again over the same uffd:
 * the second resumes from the first's state — what was served is not written again (the guest's
 * writes since stay), and a fault the first read but never answered is answered. */
START_TEST(resume_where_it_stopped) {
        _cleanup_(gmem_region_freep) struct gmem_region *r = NULL;
        _cleanup_free_ uint8_t *want = NULL;
        struct server s;
        struct gmem_test_toucher t;
        struct uffd_msg msg;
        pthread_t th;
        uint8_t *mem;
        int snap, uffd, state, k;

        snap = sample_snapshot(&want);
        ck_assert_int_eq(gmem_region_new_memfd(GMEM_BACKEND_MEMFD, SIZE, &r), 0);
        mem = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, gmem_region_fd(r), 0);
        ck_assert_ptr_ne(mem, MAP_FAILED);
        if (!uffd_for(mem, true, &uffd))
                return;
        /* the first server: keeps its state in a memfd, serves two places, and is gone */
        server_start(&s, uffd, mem, snap, r);
        ck_assert_int_eq(gmem_page_server_keep_state(s.ps, &state), 0);
        ck_assert_uint_eq(mem[4096], want[4096]);
        ck_assert_uint_eq(mem[5 * MiB_], want[5 * MiB_]);
        server_stop(&s);
        gmem_page_server_free(s.ps);
        /* the guest writes into served memory */
        const uint8_t written = (uint8_t) (want[4096] ^ 0xff);
        mem[4096] = written;
        /* a fault read by a server that died before it answered */
        t = (struct gmem_test_toucher) { .p = mem + 3 * MiB_ };
        ck_assert_int_eq(pthread_create(&th, NULL, gmem_test_touch, &t), 0);
        for (int i = 0; i < 500; i++) {
                if (read(uffd, &msg, sizeof(msg)) == (ssize_t) sizeof(msg))
                        break;
                usleep(10 * 1000);
        }
        ck_assert_uint_eq(msg.event, UFFD_EVENT_PAGEFAULT);
        ck_assert(!t.done);

        /* the second server resumes from the state */
        server_start(&s, uffd, mem, snap, r);
        EXPECT_FAIL(gmem_page_server_resume(s.ps, snap), EINVAL, "not a page server's state");
        server_stop(&s);
        gmem_page_server_free(s.ps);
        ck_assert_int_eq(gmem_page_server_new(uffd, (uintptr_t) mem, snap, r, &s.ps), 0);
        ck_assert_msg(gmem_page_server_resume(s.ps, state) == 0, "%s", gmem_last_error());
        ck_assert(!gmem_page_server_complete(s.ps));
        ck_assert_uint_gt(gmem_page_server_served_bytes(s.ps), 0);
        while ((k = gmem_page_server_prefetch(s.ps, MiB_)) > 0)
                ;
        ck_assert_msg(k == 0, "%s", gmem_last_error());
        pthread_join(th, NULL); /* its block prefetched: the waiting thread is woken */
        ck_assert(t.done);
        ck_assert(gmem_page_server_complete(s.ps));
        ck_assert_msg(mem[4096] == written, "a served block was written again over the guest's write");
        ck_assert(memcmp(mem + 8192, want + 8192, SIZE - 8192) == 0);
        ck_assert(memcmp(mem, want, 4096) == 0);
        EXPECT_FAIL(gmem_page_server_resume(s.ps, state), EBUSY, "served already");
        gmem_page_server_free(s.ps);
        close(state);
        close(uffd);
        munmap(mem, SIZE);
        close(snap);
}
END_TEST

static bool resident(const uint8_t *p) {
        unsigned char v = 0;
        ck_assert_int_eq(mincore((void *) ((uintptr_t) p & ~(uintptr_t) 4095), 4096, &v), 0);
        return v & 1;
}

/* Hot pages first: one run's first faults, saved into the snapshot, are what the next run
 * prefetches first — before the memory in front of them. */
START_TEST(hot_pages_first) {
        _cleanup_free_ uint8_t *want = NULL;
        struct gmem_page_server *ps = NULL;
        struct server s;
        uint8_t *mem;
        int snap, uffd, other;
        int64_t k;

        snap = sample_snapshot(&want);
        mem = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        ck_assert_ptr_ne(mem, MAP_FAILED);
        if (!uffd_for(mem, false, &uffd))
                return;
        /* run 1: the guest touches three places, in this order */
        server_start(&s, uffd, mem, snap, NULL);
        ck_assert_uint_eq(mem[5 * MiB_ + 512 * 1024], want[5 * MiB_ + 512 * 1024]);
        ck_assert_uint_eq(mem[4096], want[4096]);
        ck_assert_uint_eq(mem[2 * MiB_ - 4096 + 10], want[2 * MiB_ - 4096 + 10]);
        server_stop(&s);
        ck_assert_int_eq(s.error, 0);
        {
                _cleanup_(gmem_region_freep) struct gmem_region *r = NULL;
                other = gmem_test_temp_file();
                ck_assert_int_eq(gmem_region_new_memfd(GMEM_BACKEND_MEMFD, 2 * MiB_, &r), 0);
                ck_assert_int_eq(gmem_prefault(r, 0, 65536, NULL), 0);
                ck_assert_int_ge(gmem_snapshot_write(r, other, NULL), 0);
        }
        EXPECT_FAIL(gmem_page_server_save_hot(s.ps, -1), EINVAL, "invalid snapshot fd");
        ck_assert_int_eq(gmem_page_server_save_hot(s.ps, snap), 3);
        gmem_page_server_free(s.ps);
        close(uffd);
        munmap(mem, SIZE);
        /* the snapshot is still whole: its header's checksum covers the list */
        {
                struct gmem_snapshot_info *info = NULL;
                ck_assert_msg(gmem_snapshot_open(snap, &info) == 0, "%s", gmem_last_error());
                gmem_snapshot_info_free(info);
        }

        /* run 2: three blocks' worth of prefetch brings exactly those three */
        mem = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        ck_assert_ptr_ne(mem, MAP_FAILED);
        ck_assert(uffd_for(mem, false, &uffd));
        ck_assert_int_eq(gmem_page_server_new(uffd, (uintptr_t) mem, snap, NULL, &ps), 0);
        ck_assert_int_eq(gmem_page_server_prefetch(ps, 3 * BLOCK), 3 * BLOCK);
        ck_assert(resident(mem + 5 * MiB_ + 512 * 1024) && resident(mem + 4096) && resident(mem + 2 * MiB_ - 4096));
        ck_assert_msg(!resident(mem + 5 * MiB_), "prefetch went in order, not hot blocks first");
        while ((k = gmem_page_server_prefetch(ps, MiB_)) > 0)
                ;
        ck_assert_int_eq(k, 0);
        ck_assert(gmem_page_server_complete(ps));
        ck_assert(memcmp(mem, want, SIZE) == 0);
        ck_assert_uint_eq(gmem_page_server_faults(ps), 0);
        /* refused: another snapshot */
        EXPECT_FAIL(gmem_page_server_save_hot(ps, other), EINVAL, "not the snapshot served");
        gmem_page_server_free(ps);
        close(uffd);
        munmap(mem, SIZE);
        close(other);
        close(snap);
}
END_TEST

/* Prefetch reads many blocks at once: damage in one of them is still caught, in private memory
 * and in a region's file alike, and nothing of that block is mapped. */
START_TEST(damaged_data_never_prefetched) {
        for (int shared = 0; shared < 2; shared++) {
                _cleanup_(gmem_region_freep) struct gmem_region *r = NULL;
                _cleanup_free_ uint8_t *want = NULL;
                struct gmem_page_server *ps = NULL;
                uint8_t *mem, b;
                int snap, uffd;
                int64_t k;

                snap = sample_snapshot(&want);
                ck_assert_int_eq(pread(snap, &b, 1, 4096 + 5 * MiB_ + 300000), 1);
                b ^= 0x01;
                ck_assert_int_eq(pwrite(snap, &b, 1, 4096 + 5 * MiB_ + 300000), 1);
                if (shared) {
                        ck_assert_int_eq(gmem_region_new_memfd(GMEM_BACKEND_MEMFD, SIZE, &r), 0);
                        mem = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, gmem_region_fd(r), 0);
                } else
                        mem = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
                ck_assert_ptr_ne(mem, MAP_FAILED);
                if (!uffd_for(mem, shared, &uffd))
                        return;
                ck_assert_int_eq(gmem_page_server_new(uffd, (uintptr_t) mem, snap, r, &ps), 0);
                while ((k = gmem_page_server_prefetch(ps, 4 * MiB_)) > 0)
                        ;
                ck_assert_msg(k == -EBADMSG, "prefetch of damaged data: %" PRId64 " (%s)", k, gmem_last_error());
                ck_assert_msg(strstr(gmem_last_error(), "does not match its checksum"), "%s", gmem_last_error());
                ck_assert(!gmem_page_server_complete(ps));
                ck_assert(!resident(mem + 5 * MiB_ + 300000 - 300000 % 4096));
                gmem_page_server_free(ps);
                close(uffd);
                munmap(mem, SIZE);
                close(snap);
        }
}
END_TEST

START_TEST(bad_input) {
        struct gmem_page_server *ps = SENTINEL_PTR;
        int fd = gmem_test_temp_file(), uffd = SENTINEL_U64 & 0x7fffffff;

        EXPECT_FAIL(gmem_uffd_register(NULL, SIZE, false, &uffd), EINVAL, "invalid range");
        EXPECT_FAIL(gmem_uffd_register((void *) 4096, 0, false, &uffd), EINVAL, "invalid range");
        EXPECT_FAIL(gmem_page_server_new(-1, 0, fd, NULL, &ps), EINVAL, "invalid uffd");
        EXPECT_FAIL(gmem_page_server_new(fd, 0, fd, NULL, &ps), EBADMSG, "snapshot"); /* an empty file */
        ck_assert_ptr_eq(ps, SENTINEL_PTR);
        EXPECT_FAIL(gmem_page_server_run(NULL, 0), EINVAL, "NULL");
        EXPECT_FAIL(gmem_page_server_prefetch(NULL, 1), EINVAL, "NULL");
        ck_assert(!gmem_page_server_complete(NULL));
        ck_assert_ptr_null(gmem_page_server_free(NULL));
        close(fd);
}
END_TEST

int main(void) {
        Suite *s = suite_create("lazy");
        TCase *tc = tcase_create("lazy");

        tcase_set_timeout(tc, 120);
        tcase_add_test(tc, anonymous_missing_faults);
        tcase_add_test(tc, discard_during_prefetch_private);
        tcase_add_test(tc, discard_during_prefetch_shared);
        tcase_add_test(tc, shmem_missing_faults);
        tcase_add_test(tc, hugetlb_faults);
        tcase_add_test(tc, shmem_minor_faults_pooled);
        tcase_add_test(tc, shmem_prefetch_fresh_region);
        tcase_add_test(tc, prefetch_makes_it_resident);
        tcase_add_test(tc, damaged_data_never_served);
        tcase_add_test(tc, hot_pages_first);
        tcase_add_test(tc, damaged_data_never_prefetched);
        tcase_add_test(tc, guest_memfd_faults);
        tcase_add_test(tc, resume_where_it_stopped);
        tcase_add_test(tc, bad_input);
        suite_add_tcase(s, tc);
        return gmem_test_main(s);
}
