/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Regions on every backend, against the real kernel: creation and getters, mapping, size sealing,
 * adoption (backend detection and refusal), residency, and the guest_memfd behaviours of the
 * kernel's own selftest (tools/testing/selftests/kvm/guest_memfd_test.c) as seen through libgmem.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/capability.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "gmem-test.h"
#include "gmem/gmem.h"
#include "kvm-compat.h"  /* KVM_CREATE_GUEST_MEMFD for fds made behind the library's back */

#define PS 4096u
#define SIZE (64u * PS)
#define SHARED_FLAGS (GMEM_GUEST_MEMFD_FLAG_MMAP | GMEM_GUEST_MEMFD_FLAG_INIT_SHARED)


static bool fd_is_open(int fd) {
        return fcntl(fd, F_GETFD) >= 0;
}

static struct gmem_caps caps;
static bool caps_done;

static const struct gmem_caps *get_caps(void) {
        if (!caps_done) {
                ck_assert_int_eq(gmem_caps_probe(&caps), 0);
                caps_done = true;
        }
        return &caps;
}

#define REQUIRE_GUEST_MEMFD() REQUIRE_SHARED_GMEM()

/* A guest_memfd made directly with the ioctl, as another VMM would hand it over. */
static int raw_guest_memfd(int vm, uint64_t size, uint64_t flags) {
        struct kvm_create_guest_memfd args = { .size = size, .flags = flags };
        int fd = ioctl(vm, KVM_CREATE_GUEST_MEMFD, &args);
        ck_assert_msg(fd >= 0, "KVM_CREATE_GUEST_MEMFD size %" PRIu64 " flags 0x%" PRIx64 ": %m", size, flags);
        return fd;
}

static void *dump_region(struct gmem_region *r, uint64_t off, uint64_t len, int64_t *ret_written) {
        int out = gmem_test_temp_file();
        int64_t n = gmem_dump_fd(r, off, len, out, 0, NULL);
        void *b;

        ck_assert_msg(n >= 0, "dump: %s", gmem_last_error());
        b = gmem_test_read_fd(out, 0, len);
        close(out);
        if (ret_written)
                *ret_written = n;
        return b;
}

static uint64_t resident(struct gmem_region *r, uint64_t off, uint64_t len) {
        uint64_t bytes = 0;
        ck_assert_msg(gmem_region_resident(r, off, len, &bytes) == 0, "resident: %s", gmem_last_error());
        return bytes;
}

/* Map twice (same address), write through it, unmap, map again (the data is still there). */
static void check_mapping(struct gmem_region *r) {
        void *a = NULL, *b = NULL;
        uint8_t pattern[PS];

        ck_assert_int_eq(gmem_region_map(r, &a), 0);
        ck_assert_ptr_nonnull(a);
        ck_assert_int_eq(gmem_region_map(r, &b), 0);
        ck_assert_ptr_eq(a, b);
        gmem_test_fill(pattern, sizeof(pattern), gmem_region_backend(r));
        memcpy((uint8_t *) a + gmem_region_size(r) - PS, pattern, PS);
        ck_assert_int_eq(gmem_region_unmap(r), 0);
        ck_assert_int_eq(gmem_region_map(r, &b), 0);
        ck_assert_ptr_nonnull(b);
        ck_assert_mem_eq((uint8_t *) b + gmem_region_size(r) - PS, pattern, PS);
        ck_assert_int_eq(gmem_region_map(r, &a), 0);
        ck_assert_ptr_eq(a, b);
}

/* ---------------------------------------------------------------------------------------------
 * Creation and getters
 */

START_TEST(memfd_region) {
        struct gmem_region *r = SENTINEL_PTR;
        struct stat st;
        int fd, seals;

        ck_assert_int_eq(gmem_region_new_memfd(GMEM_BACKEND_MEMFD, SIZE, &r), 0);
        ck_assert_ptr_ne(r, SENTINEL_PTR);
        fd = gmem_region_fd(r);
        ck_assert_int_ge(fd, 0);
        ck_assert_uint_eq(gmem_region_size(r), SIZE);
        ck_assert_int_eq(gmem_region_backend(r), GMEM_BACKEND_MEMFD);
        ck_assert_uint_eq(gmem_region_page_size(r), PS);
        ck_assert_uint_eq(gmem_region_flags(r), 0);
        ck_assert_int_eq(gmem_region_is_private(r, 0, SIZE), 0);
        ck_assert_int_eq(fstat(fd, &st), 0);
        ck_assert_int_eq(st.st_size, SIZE);
        ck_assert(fcntl(fd, F_GETFD) & FD_CLOEXEC);

        /* the size is sealed: neither shrinking nor growing */
        seals = fcntl(fd, F_GET_SEALS);
        ck_assert_int_eq(seals & (F_SEAL_SHRINK | F_SEAL_GROW), F_SEAL_SHRINK | F_SEAL_GROW);
        ck_assert_int_eq(ftruncate(fd, SIZE / 2), -1);
        ck_assert_int_eq(errno, EPERM);
        ck_assert_int_eq(ftruncate(fd, SIZE * 2), -1);
        ck_assert_int_eq(errno, EPERM);
        ck_assert_int_eq(fallocate(fd, 0, SIZE, PS), -1); /* growing by fallocate neither */
        ck_assert_int_eq(errno, EPERM);
        ck_assert_int_eq(fstat(fd, &st), 0);
        ck_assert_int_eq(st.st_size, SIZE);

        check_mapping(r);
        ck_assert_ptr_null(gmem_region_free(r));
        ck_assert(!fd_is_open(fd));
}
END_TEST

START_TEST(secret_region) {
        struct gmem_region *r = NULL;
        char link[64], target[128];
        ssize_t n;
        int fd;

        if (gmem_region_new_memfd(GMEM_BACKEND_SECRET, SIZE, &r) < 0)
                SKIP_TEST("memfd_secret unavailable: %s", gmem_last_error());
        fd = gmem_region_fd(r);
        ck_assert_uint_eq(gmem_region_size(r), SIZE);
        ck_assert_int_eq(gmem_region_backend(r), GMEM_BACKEND_SECRET);
        ck_assert_uint_eq(gmem_region_page_size(r), PS);
        ck_assert_uint_eq(gmem_region_flags(r), 0);
        snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
        n = readlink(link, target, sizeof(target) - 1);
        ck_assert_int_gt(n, 0);
        target[n] = 0;
        ck_assert_msg(strncmp(target, "/secretmem", 10) == 0, "fd %d is %s", fd, target);
        /* secretmem's size is fixed by the first ftruncate */
        ck_assert_int_eq(ftruncate(fd, SIZE * 2), -1);
        check_mapping(r);
        gmem_region_free(r);
}
END_TEST

START_TEST(guest_memfd_regions) {
        struct { uint64_t flags; bool private; } cases[] = {
                { SHARED_FLAGS, false },
                { GMEM_GUEST_MEMFD_FLAG_MMAP, true },
                { 0, true },
        };

        REQUIRE_GUEST_MEMFD();
        for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                struct gmem_region *r = NULL;
                void *addr = SENTINEL_PTR;
                int vm, fd;

                if ((cases[i].flags & GMEM_GUEST_MEMFD_FLAG_INIT_SHARED) && !get_caps()->flag_init_shared)
                        continue;
                vm = gmem_test_new_vm();
                ck_assert_msg(gmem_region_new_guest_memfd(vm, SIZE, cases[i].flags, &r) == 0, "flags 0x%" PRIx64
                              ": %s", cases[i].flags, gmem_last_error());
                fd = gmem_region_fd(r);
                ck_assert_int_ge(fd, 0);
                ck_assert_uint_eq(gmem_region_size(r), SIZE);
                ck_assert_int_eq(gmem_region_backend(r), GMEM_BACKEND_GUEST_MEMFD);
                ck_assert_uint_eq(gmem_region_page_size(r), PS);
                ck_assert_uint_eq(gmem_region_flags(r), cases[i].flags);
                ck_assert_int_eq(gmem_region_is_private(r, 0, SIZE), cases[i].private);
                ck_assert_int_eq(gmem_region_is_private(r, SIZE - 1, 1), cases[i].private);
                if (cases[i].flags & GMEM_GUEST_MEMFD_FLAG_MMAP) {
                        /* "the region maps itself when the flags allow" */
                        ck_assert_int_eq(gmem_region_map(r, &addr), 0);
                        ck_assert_ptr_nonnull(addr);
                        if (!cases[i].private)
                                check_mapping(r);
                } else {
                        EXPECT_FAIL(gmem_region_map(r, &addr), ENODEV, "without MMAP");
                        ck_assert_ptr_eq(addr, SENTINEL_PTR);
                }
                /* the memory outlives the VM fd */
                close(vm);
                ck_assert_uint_eq(gmem_region_size(r), SIZE);
                gmem_region_free(r);
                ck_assert(!fd_is_open(fd));
        }
}
END_TEST

START_TEST(guest_memfd_fd_cloexec) {
        /* Every fd libgmem creates should be close-on-exec, as the memfd and memfd_secret ones are
         * (MFD_CLOEXEC, O_CLOEXEC): otherwise guest memory leaks into every program the VMM runs. */
        struct gmem_region *r = NULL;
        int vm, cloexec;

        REQUIRE_GUEST_MEMFD();
        vm = gmem_test_new_vm();
        ck_assert_int_eq(gmem_region_new_guest_memfd(vm, SIZE, GMEM_GUEST_MEMFD_FLAG_MMAP, &r), 0);
        cloexec = fcntl(gmem_region_fd(r), F_GETFD) & FD_CLOEXEC;
        gmem_region_free(r);
        close(vm);
        ck_assert(cloexec);
}
END_TEST

static uint64_t hugetlb_free_pages(uint64_t psize) {
        char path[128], buf[32] = { 0 };
        int fd;
        ssize_t n;

        snprintf(path, sizeof(path), "/sys/kernel/mm/hugepages/hugepages-%" PRIu64 "kB/free_hugepages", psize >> 10);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return UINT64_MAX;
        n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        ck_assert_int_gt(n, 0);
        return strtoull(buf, NULL, 10);
}

START_TEST(hugetlb_not_enough_pages) {
        /* Asking for one page more than is free: -ENOMEM, naming the knob to turn. */
        static const uint64_t sizes[] = { 2u << 20, 1u << 30 };

        for (unsigned i = 0; i < 2; i++) {
                struct gmem_region *r = SENTINEL_PTR;
                uint64_t psize = sizes[i], free_pages = hugetlb_free_pages(psize);
                char knob[96];

                if (free_pages == UINT64_MAX) {
                        EXPECT_FAIL(gmem_region_new_hugetlb(psize, psize, &r), EOPNOTSUPP, "huge pages");
                        continue;
                }
                if (psize == (1u << 30) && free_pages > 4)
                        continue; /* would need too much memory to exhaust */
                snprintf(knob, sizeof(knob), "hugepages-%" PRIu64 "kB/nr_hugepages", psize >> 10);
                EXPECT_FAIL(gmem_region_new_hugetlb(psize, (free_pages + 1) * psize, &r), ENOMEM, knob);
                ck_assert_ptr_eq(r, SENTINEL_PTR);
                if (psize == 2u << 20) {
                        EXPECT_FAIL(gmem_region_new_memfd(GMEM_BACKEND_HUGETLB, (free_pages + 1) * psize, &r), ENOMEM,
                                    "nr_hugepages");
                        ck_assert_ptr_eq(r, SENTINEL_PTR);
                }
        }
}
END_TEST

START_TEST(hugetlb_region) {
        const uint64_t hp = 2u << 20;
        struct gmem_region *r = NULL;
        uint8_t *data, *back;
        int64_t written;
        int k;

        if (hugetlb_free_pages(hp) < 2)
                SKIP_TEST("fewer than 2 free 2 MiB huge pages (reserve them in /proc/sys/vm/nr_hugepages)");
        k = gmem_region_new_memfd(GMEM_BACKEND_HUGETLB, 2 * hp, &r);
        ck_assert_msg(k == 0, "%s", gmem_last_error());
        ck_assert_int_eq(gmem_region_backend(r), GMEM_BACKEND_HUGETLB);
        ck_assert_uint_eq(gmem_region_page_size(r), hp);
        ck_assert_uint_eq(gmem_region_size(r), 2 * hp);
        ck_assert_uint_eq(gmem_region_flags(r), 0);
        ck_assert_int_eq(ftruncate(gmem_region_fd(r), hp), -1); /* sealed */
        ck_assert_int_eq(errno, EPERM);
        check_mapping(r);

        data = malloc(2 * hp);
        gmem_test_fill(data, 2 * hp, 11);
        ck_assert_int_eq(gmem_populate_buf(r, 0, data, 2 * hp, NULL), 2 * hp);
        /* punch and prefault work in huge pages only */
        EXPECT_FAIL(gmem_punch_hole(r, 0, PS), EINVAL, "hugetlb page size 2097152");
        EXPECT_FAIL(gmem_punch_hole(r, PS, hp), EINVAL, "hugetlb page size 2097152");
        EXPECT_FAIL(gmem_prefault(r, 0, PS, NULL), EINVAL, "hugetlb page size 2097152");
        ck_assert_int_eq(gmem_punch_hole(r, hp, hp), 0);
        memset(data + hp, 0, hp);
        back = dump_region(r, 0, 2 * hp, &written);
        ck_assert_int_eq(written, hp);
        ck_assert_mem_eq(back, data, 2 * hp);
        free(back);
        free(data);
        gmem_region_free(r);
}
END_TEST

/* ---------------------------------------------------------------------------------------------
 * Adoption
 */

START_TEST(adopt_memfd) {
        struct gmem_region *r = SENTINEL_PTR;
        uint8_t *data, *back;
        int fd = memfd_create("adopt", MFD_CLOEXEC | MFD_ALLOW_SEALING), plain;

        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(ftruncate(fd, SIZE), 0);
        ck_assert_int_eq(gmem_region_adopt(fd, &r), 0);
        ck_assert_int_eq(gmem_region_fd(r), fd);
        ck_assert_int_eq(gmem_region_backend(r), GMEM_BACKEND_MEMFD);
        ck_assert_uint_eq(gmem_region_size(r), SIZE);
        ck_assert_uint_eq(gmem_region_page_size(r), PS);
        ck_assert_int_eq(gmem_region_is_private(r, 0, SIZE), 0);
        /* adopting sealed the size where the creator allowed sealing */
        ck_assert_int_eq(fcntl(fd, F_GET_SEALS) & (F_SEAL_SHRINK | F_SEAL_GROW), F_SEAL_SHRINK | F_SEAL_GROW);
        ck_assert_int_eq(ftruncate(fd, PS), -1);
        ck_assert_int_eq(errno, EPERM);
        /* and it works as a region */
        int src = gmem_test_random_file(SIZE, 21, (void **) &data);
        ck_assert_int_eq(gmem_populate_fd(r, 0, src, 0, SIZE, NULL), SIZE);
        back = dump_region(r, 0, SIZE, NULL);
        ck_assert_mem_eq(back, data, SIZE);
        free(back);
        free(data);
        close(src);
        gmem_region_free(r);
        ck_assert(!fd_is_open(fd)); /* owned by the region */

        /* a memfd that does not allow sealing is still adopted */
        plain = memfd_create("adopt-plain", MFD_CLOEXEC);
        ck_assert_int_ge(plain, 0);
        ck_assert_int_eq(ftruncate(plain, SIZE), 0);
        ck_assert_int_eq(gmem_region_adopt(plain, &r), 0);
        ck_assert_int_eq(gmem_region_backend(r), GMEM_BACKEND_MEMFD);
        check_mapping(r);
        gmem_region_free(r);
}
END_TEST

START_TEST(adopt_secret) {
        struct gmem_region *r = SENTINEL_PTR;
        int fd = syscall(SYS_memfd_secret, O_CLOEXEC);

        if (fd < 0)
                SKIP_TEST("memfd_secret: %m");
        ck_assert_int_eq(ftruncate(fd, SIZE), 0);
        ck_assert_int_eq(gmem_region_adopt(fd, &r), 0);
        ck_assert_int_eq(gmem_region_fd(r), fd);
        ck_assert_int_eq(gmem_region_backend(r), GMEM_BACKEND_SECRET);
        ck_assert_uint_eq(gmem_region_size(r), SIZE);
        ck_assert_uint_eq(gmem_region_page_size(r), PS);
        check_mapping(r);
        gmem_region_free(r);
        ck_assert(!fd_is_open(fd));
}
END_TEST

START_TEST(adopt_hugetlb_memfd) {
        /* ftruncate of a hugetlbfs memfd reserves nothing: detection works without free pages */
        struct gmem_region *r = SENTINEL_PTR;
        int fd = memfd_create("adopt-huge", MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_HUGETLB | (21u << 26) /* 2 MiB */);

        if (fd < 0)
                SKIP_TEST("no 2 MiB hugetlbfs memfd here: %m");
        ck_assert_int_eq(ftruncate(fd, 4u << 20), 0);
        ck_assert_int_eq(gmem_region_adopt(fd, &r), 0);
        ck_assert_int_eq(gmem_region_backend(r), GMEM_BACKEND_HUGETLB);
        ck_assert_uint_eq(gmem_region_page_size(r), 2u << 20);
        ck_assert_uint_eq(gmem_region_size(r), 4u << 20);
        EXPECT_FAIL(gmem_punch_hole(r, 0, PS), EINVAL, "hugetlb page size");
        gmem_region_free(r);
}
END_TEST

START_TEST(adopt_guest_memfd_detects_mmap) {
        struct gmem_region *r = SENTINEL_PTR;
        void *addr = SENTINEL_PTR;
        uint8_t buf[PS], *back;
        int vm, fd;

        REQUIRE_GUEST_MEMFD();
        vm = gmem_test_new_vm();

        /* mappable and shared: usable for the data path */
        if (get_caps()->flag_init_shared) {
                fd = raw_guest_memfd(vm, SIZE, SHARED_FLAGS);
                ck_assert_int_eq(gmem_region_adopt(fd, &r), 0);
                ck_assert_int_eq(gmem_region_fd(r), fd);
                ck_assert_int_eq(gmem_region_backend(r), GMEM_BACKEND_GUEST_MEMFD);
                ck_assert_uint_eq(gmem_region_size(r), SIZE);
                ck_assert_uint_eq(gmem_region_flags(r), GMEM_GUEST_MEMFD_FLAG_MMAP); /* what adopt can tell */
                ck_assert_int_eq(gmem_region_is_private(r, 0, SIZE), 0);
                gmem_test_fill(buf, sizeof(buf), 5);
                ck_assert_int_eq(gmem_populate_buf(r, PS, buf, PS, NULL), PS);
                back = dump_region(r, PS, PS, NULL);
                ck_assert_mem_eq(back, buf, PS);
                free(back);
                check_mapping(r);
                gmem_region_free(r);
                ck_assert(!fd_is_open(fd));
        }

        /* without MMAP: adopted, but it does not map */
        fd = raw_guest_memfd(vm, SIZE, 0);
        r = SENTINEL_PTR;
        ck_assert_int_eq(gmem_region_adopt(fd, &r), 0);
        ck_assert_int_eq(gmem_region_backend(r), GMEM_BACKEND_GUEST_MEMFD);
        ck_assert_uint_eq(gmem_region_flags(r), 0);
        EXPECT_FAIL(gmem_region_map(r, &addr), ENODEV, "without MMAP");
        ck_assert_ptr_eq(addr, SENTINEL_PTR);
        EXPECT_FAIL(gmem_populate_buf(r, 0, buf, PS, NULL), EOPNOTSUPP, "without MMAP");
        ck_assert_int_eq(gmem_punch_hole(r, 0, PS), 0);
        gmem_region_free(r);
        ck_assert(!fd_is_open(fd));
        close(vm);
}
END_TEST

START_TEST(adopt_guest_memfd_with_flags) {
        struct gmem_region *r = NULL;
        void *addr = SENTINEL_PTR;
        uint8_t buf[PS] = { 7 };
        int vm, fd;

        REQUIRE_GUEST_MEMFD();
        vm = gmem_test_new_vm();
        /* flags without INIT_SHARED: everything private, and the data path refuses it up front */
        fd = raw_guest_memfd(vm, SIZE, GMEM_GUEST_MEMFD_FLAG_MMAP);
        ck_assert_int_eq(gmem_region_adopt_guest_memfd(fd, GMEM_GUEST_MEMFD_FLAG_MMAP, &r), 0);
        ck_assert_int_eq(gmem_region_backend(r), GMEM_BACKEND_GUEST_MEMFD);
        ck_assert_uint_eq(gmem_region_flags(r), GMEM_GUEST_MEMFD_FLAG_MMAP);
        ck_assert_int_eq(gmem_region_is_private(r, 0, SIZE), 1);
        ck_assert_int_eq(gmem_region_is_private(r, SIZE - PS, PS), 1);
        EXPECT_FAIL(gmem_populate_buf(r, 0, buf, PS, NULL), EACCES, "private to the guest");
        EXPECT_FAIL(gmem_prefault(r, 0, PS, NULL), EACCES, "private");
        gmem_region_free(r);

        if (get_caps()->flag_init_shared) {
                fd = raw_guest_memfd(vm, SIZE, SHARED_FLAGS);
                ck_assert_int_eq(gmem_region_adopt_guest_memfd(fd, SHARED_FLAGS, &r), 0);
                ck_assert_uint_eq(gmem_region_flags(r), SHARED_FLAGS);
                ck_assert_int_eq(gmem_region_is_private(r, 0, SIZE), 0);
                ck_assert_int_eq(gmem_populate_buf(r, 0, buf, PS, NULL), PS);
                gmem_region_free(r);
        }

        /* without MMAP, with the flags said: no mapping, all private */
        fd = raw_guest_memfd(vm, SIZE, 0);
        ck_assert_int_eq(gmem_region_adopt_guest_memfd(fd, 0, &r), 0);
        ck_assert_int_eq(gmem_region_is_private(r, 0, PS), 1);
        EXPECT_FAIL(gmem_region_map(r, &addr), ENODEV, "without MMAP");
        ck_assert_ptr_eq(addr, SENTINEL_PTR);
        gmem_region_free(r);
        close(vm);
}
END_TEST

/* Each refusal: -EBADFD, a message saying what the fd is, the fd still open and working. */
static void expect_refused(int fd, const char *what) {
        struct gmem_region *r = SENTINEL_PTR;

        EXPECT_FAIL(gmem_region_adopt(fd, &r), EBADFD, what);
        ck_assert_ptr_eq(r, SENTINEL_PTR);
        ck_assert_msg(fd_is_open(fd), "adopt closed fd %d (%s) on failure", fd, what);
        EXPECT_FAIL(gmem_region_adopt_guest_memfd(fd, SHARED_FLAGS, &r), EBADFD, what);
        ck_assert_ptr_eq(r, SENTINEL_PTR);
        ck_assert(fd_is_open(fd));
}

START_TEST(adopt_refuses_read_only_memfd) {
        /* a holder that cannot write the memory is no use to gmem, and must be refused up front */
        struct gmem_region *r = NULL, *sentinel = (struct gmem_region *) 0x1;
        int mfd = memfd_create("ro", MFD_CLOEXEC), ro;
        char path[64];

        ck_assert_int_ge(mfd, 0);
        ck_assert_int_eq(ftruncate(mfd, 1 << 20), 0);
        snprintf(path, sizeof(path), "/proc/self/fd/%d", mfd);
        ro = open(path, O_RDONLY | O_CLOEXEC);
        ck_assert_int_ge(ro, 0);
        r = sentinel;
        ck_assert_int_eq(gmem_region_adopt(ro, &r), -EBADF);
        ck_assert_ptr_eq(r, sentinel);
        ck_assert_ptr_nonnull(strstr(gmem_last_error(), "reading and writing"));
        ck_assert(fd_is_open(ro));
        close(ro);
        close(mfd);
}
END_TEST

START_TEST(adopt_refuses_other_files) {
        int p[2], sv[2], fd, dn, dir, efd;
        char c = 'x';
        struct stat st;

        ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
        expect_refused(p[0], "a pipe");
        expect_refused(p[1], "a pipe");
        ck_assert_int_eq(write(p[1], &c, 1), 1); /* the pipe still works */
        c = 0;
        ck_assert_int_eq(read(p[0], &c, 1), 1);
        ck_assert_int_eq(c, 'x');
        close(p[0]);
        close(p[1]);

        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        expect_refused(sv[0], "a socket");
        ck_assert_int_eq(send(sv[0], "y", 1, 0), 1);
        ck_assert_int_eq(recv(sv[1], &c, 1, 0), 1);
        ck_assert_int_eq(c, 'y');
        close(sv[0]);
        close(sv[1]);

        /* a regular file, even one with the right size */
        fd = gmem_test_temp_file();
        ck_assert_int_eq(ftruncate(fd, SIZE), 0);
        expect_refused(fd, "is not a guest_memfd, memfd or memfd_secret");
        ck_assert_int_eq(fstat(fd, &st), 0);
        ck_assert_int_eq(st.st_size, SIZE);
        ck_assert_int_eq(pwrite(fd, "z", 1, 0), 1);
        close(fd);

        /* a regular file on tmpfs, which is what memfds live on */
        fd = open("/dev/shm", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
        if (fd >= 0) {
                ck_assert_int_eq(ftruncate(fd, SIZE), 0);
                expect_refused(fd, "/dev/shm");
                close(fd);
        }

        dn = open("/dev/null", O_RDWR | O_CLOEXEC);
        ck_assert_int_ge(dn, 0);
        expect_refused(dn, "a character device");
        close(dn);

        dir = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        ck_assert_int_ge(dir, 0);
        expect_refused(dir, "a directory");
        close(dir);

        /* anonymous inodes that are not guest_memfd */
        efd = eventfd(0, EFD_CLOEXEC);
        ck_assert_int_ge(efd, 0);
        expect_refused(efd, "not a regular file");
        close(efd);
        if (gmem_test_have_kvm()) {
                int vm = gmem_test_new_vm();
                expect_refused(vm, "not a guest_memfd");
                close(vm);
        }
}
END_TEST

/* ---------------------------------------------------------------------------------------------
 * The kernel selftest's guest_memfd checks, through libgmem
 */

START_TEST(gmem_invalid_flags_refused) {
        uint64_t mask;
        struct gmem_region *r = NULL;
        int vm;

        REQUIRE_GUEST_MEMFD();
        mask = get_caps()->guest_memfd_flags;
        ck_assert_uint_ne(mask & GMEM_GUEST_MEMFD_FLAG_MMAP, 0);
        vm = gmem_test_new_vm();
        for (unsigned bit = 0; bit < 64; bit++) {
                uint64_t flag = UINT64_C(1) << bit;
                if (mask & flag)
                        continue;
                r = SENTINEL_PTR;
                EXPECT_FAIL(gmem_region_new_guest_memfd(vm, SIZE, flag, &r), EINVAL, "not supported by this kernel");
                EXPECT_FAIL(gmem_region_new_guest_memfd(vm, SIZE, GMEM_GUEST_MEMFD_FLAG_MMAP | flag, &r), EINVAL,
                            "not supported");
                ck_assert_ptr_eq(r, SENTINEL_PTR);
        }
        /* every valid combination works; INIT_SHARED alone is refused by libgmem (nothing could
         * write such memory) although the kernel accepts it */
        for (uint64_t flags = 0; flags <= mask; flags++) {
                if (flags & ~mask)
                        continue;
                if ((flags & GMEM_GUEST_MEMFD_FLAG_INIT_SHARED) && !(flags & GMEM_GUEST_MEMFD_FLAG_MMAP)) {
                        EXPECT_FAIL(gmem_region_new_guest_memfd(vm, SIZE, flags, &r), EINVAL, "INIT_SHARED needs MMAP");
                        continue;
                }
                ck_assert_msg(gmem_region_new_guest_memfd(vm, SIZE, flags, &r) == 0, "flags 0x%" PRIx64 ": %s", flags,
                              gmem_last_error());
                ck_assert_uint_eq(gmem_region_flags(r), flags);
                gmem_region_free(r);
        }
        close(vm);
}
END_TEST

START_TEST(gmem_invalid_sizes_refused) {
        struct gmem_region *r = SENTINEL_PTR;
        int vm;

        REQUIRE_GUEST_MEMFD();
        vm = gmem_test_new_vm();
        EXPECT_FAIL(gmem_region_new_guest_memfd(vm, 0, GMEM_GUEST_MEMFD_FLAG_MMAP, &r), EINVAL, "size 0");
        static const uint64_t sizes[] = { 1, PS / 2, PS - 1, PS + 1, 2 * PS - 1, 2 * PS + 1, 3 * PS + 7, SIZE - 1 };
        for (unsigned i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
                EXPECT_FAIL(gmem_region_new_guest_memfd(vm, sizes[i], GMEM_GUEST_MEMFD_FLAG_MMAP, &r), EINVAL,
                            "not a multiple of the page size");
        ck_assert_ptr_eq(r, SENTINEL_PTR);
        /* one page is fine */
        ck_assert_int_eq(gmem_region_new_guest_memfd(vm, PS, GMEM_GUEST_MEMFD_FLAG_MMAP, &r), 0);
        gmem_region_free(r);
        close(vm);
}
END_TEST

START_TEST(gmem_fd_file_operations) {
        /* What the kernel allows on the fd libgmem hands out: only MAP_SHARED, no read/write/resize. */
        struct gmem_region *r = NULL;
        uint8_t buf[PS] = { 0 };
        int vm, fd;
        void *p;

        REQUIRE_GUEST_MEMFD();
        if (!get_caps()->flag_init_shared)
                SKIP_TEST("no INIT_SHARED on this kernel");
        vm = gmem_test_new_vm();
        ck_assert_int_eq(gmem_region_new_guest_memfd(vm, SIZE, SHARED_FLAGS, &r), 0);
        fd = gmem_region_fd(r);

        p = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
        ck_assert_msg(p == MAP_FAILED && errno == EINVAL, "MAP_PRIVATE of a guest_memfd: %p %m", p);
        p = mmap(NULL, SIZE, PROT_READ, MAP_SHARED, fd, 0);
        ck_assert_msg(p != MAP_FAILED, "MAP_SHARED of a shared guest_memfd: %m");
        munmap(p, SIZE);

        if (!get_caps()->gmem_write) {
                ck_assert_int_eq(pread(fd, buf, sizeof(buf), 0), -1);
                ck_assert_int_eq(errno, ESPIPE);
                ck_assert_int_eq(pwrite(fd, buf, sizeof(buf), 0), -1);
                ck_assert_int_eq(errno, ESPIPE);
        }
        ck_assert_int_eq(ftruncate(fd, SIZE * 2), -1);
        ck_assert_int_eq(errno, EINVAL);
        /* fallocate needs KEEP_SIZE */
        ck_assert_int_eq(fallocate(fd, FALLOC_FL_PUNCH_HOLE, 0, PS), -1);
        ck_assert_uint_eq(gmem_region_size(r), SIZE);
        gmem_region_free(r);
        close(vm);
}
END_TEST

static struct gmem_region *populated_shared_gmem(int vm, uint8_t **ret_data) {
        struct gmem_region *r = NULL;
        uint8_t *data = malloc(SIZE);

        ck_assert_ptr_nonnull(data);
        gmem_test_fill(data, SIZE, 31);
        ck_assert_int_eq(gmem_region_new_guest_memfd(vm, SIZE, SHARED_FLAGS, &r), 0);
        ck_assert_int_eq(gmem_populate_buf(r, 0, data, SIZE, NULL), SIZE);
        *ret_data = data;
        return r;
}

static void expect_content(struct gmem_region *r, const uint8_t *data) {
        int64_t written;
        uint8_t *back = dump_region(r, 0, SIZE, &written);

        for (uint64_t p = 0; p < SIZE; p += PS)
                ck_assert_msg(memcmp(back + p, data + p, PS) == 0, "page %" PRIu64 " differs", p / PS);
        free(back);
}

START_TEST(gmem_punch_one_page) {
        static const uint8_t zero[PS];
        struct gmem_region *r;
        uint8_t *data, *back;
        int64_t written;
        uint64_t at = 5 * PS;
        int vm;

        REQUIRE_GUEST_MEMFD();
        if (!get_caps()->flag_init_shared)
                SKIP_TEST("no INIT_SHARED on this kernel");
        vm = gmem_test_new_vm();
        r = populated_shared_gmem(vm, &data);
        ck_assert_uint_eq(resident(r, 0, SIZE), SIZE);

        ck_assert_int_eq(gmem_punch_hole(r, at, PS), 0);
        back = dump_region(r, 0, SIZE, &written);
        /* exactly that page is zero, and it is a hole: not counted by dump, not resident */
        ck_assert_mem_eq(back + at, zero, PS);
        ck_assert_mem_eq(back, data, at);
        ck_assert_mem_eq(back + at + PS, data + at + PS, SIZE - at - PS);
        ck_assert_int_eq(written, SIZE - PS);
        ck_assert_uint_eq(resident(r, 0, SIZE), SIZE - PS);
        ck_assert_uint_eq(resident(r, at, PS), 0);
        free(back);

        /* the first and the last page */
        ck_assert_int_eq(gmem_punch_hole(r, 0, PS), 0);
        ck_assert_int_eq(gmem_punch_hole(r, SIZE - PS, PS), 0);
        memset(data, 0, PS);
        memset(data + at, 0, PS);
        memset(data + SIZE - PS, 0, PS);
        expect_content(r, data);
        ck_assert_uint_eq(resident(r, 0, SIZE), SIZE - 3 * PS);
        free(data);
        gmem_region_free(r);
        close(vm);
}
END_TEST

START_TEST(gmem_punch_refusals_change_nothing) {
        struct gmem_region *r;
        uint8_t *data;
        int vm, dupfd;

        REQUIRE_GUEST_MEMFD();
        if (!get_caps()->flag_init_shared)
                SKIP_TEST("no INIT_SHARED on this kernel");
        vm = gmem_test_new_vm();
        r = populated_shared_gmem(vm, &data);
        EXPECT_FAIL(gmem_punch_hole(r, PS / 2, PS), EINVAL, "must be multiples");
        EXPECT_FAIL(gmem_punch_hole(r, PS, PS + 1), EINVAL, "must be multiples");
        EXPECT_FAIL(gmem_punch_hole(r, 1, 1), EINVAL, "must be multiples");
        /* past the end: refused although the kernel would accept it silently */
        EXPECT_FAIL(gmem_punch_hole(r, SIZE, PS), ERANGE, "beyond the region");
        EXPECT_FAIL(gmem_punch_hole(r, SIZE - PS, 2 * PS), ERANGE, "beyond the region");
        expect_content(r, data);
        ck_assert_uint_eq(resident(r, 0, SIZE), SIZE);

        /* the kernel's own view of that punch past the end, on a dup: accepted (or refused), but
         * either way it must not touch the memory that is there */
        dupfd = dup(gmem_region_fd(r));
        (void) fallocate(dupfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, SIZE, PS);
        close(dupfd);
        expect_content(r, data);
        free(data);
        gmem_region_free(r);
        close(vm);
}
END_TEST

START_TEST(gmem_access_beyond_size) {
        struct gmem_region *r;
        uint8_t *data, buf[2 * PS] = { 1 };
        int vm, src, out;

        REQUIRE_GUEST_MEMFD();
        if (!get_caps()->flag_init_shared)
                SKIP_TEST("no INIT_SHARED on this kernel");
        vm = gmem_test_new_vm();
        r = populated_shared_gmem(vm, &data);
        src = gmem_test_random_file(4 * PS, 2, NULL);
        out = gmem_test_temp_file();
        /* a touch past the end of the file would be SIGBUS: the library refuses before */
        EXPECT_FAIL(gmem_populate_buf(r, SIZE - PS, buf, 2 * PS, NULL), ERANGE, "beyond the region");
        EXPECT_FAIL(gmem_populate_buf(r, SIZE, buf, 1, NULL), ERANGE, "beyond the region");
        EXPECT_FAIL(gmem_populate_fd(r, SIZE - PS, src, 0, 2 * PS, NULL), ERANGE, "beyond the region");
        EXPECT_FAIL(gmem_dump_fd(r, SIZE - PS, 2 * PS, out, 0, NULL), ERANGE, "beyond the region");
        EXPECT_FAIL(gmem_dump_fd(r, SIZE + PS, PS, out, 0, NULL), ERANGE, "beyond the region");
        EXPECT_FAIL(gmem_prefault(r, SIZE - PS, 2 * PS, NULL), ERANGE, "beyond the region");
        /* right up to the end is fine */
        ck_assert_int_eq(gmem_populate_buf(r, SIZE - 100, data + SIZE - 100, 100, NULL), 100);
        ck_assert_int_eq(gmem_dump_fd(r, SIZE - 100, 100, out, 0, NULL), 100);
        expect_content(r, data);
        close(src);
        close(out);
        free(data);
        gmem_region_free(r);
        close(vm);
}
END_TEST

/* Private memory (no INIT_SHARED): the data path must refuse without ever faulting it (SIGBUS). */
static void expect_private_refused(struct gmem_region *r, const char *needle) {
        uint8_t buf[2 * PS] = { 3 };
        struct gmem_populate_opts one_thread = { .threads = 1 }, many = { .threads = 4, .chunk_size = PS };
        int src = gmem_test_random_file(4 * PS, 4, NULL);

        EXPECT_FAIL(gmem_populate_buf(r, 0, buf, sizeof(buf), NULL), EACCES, needle);
        EXPECT_FAIL(gmem_populate_buf(r, PS + 1, buf, 10, &one_thread), EACCES, needle);
        EXPECT_FAIL(gmem_populate_buf(r, 0, buf, sizeof(buf), &many), EACCES, needle);
        EXPECT_FAIL(gmem_populate_fd(r, 0, src, 0, 4 * PS, NULL), EACCES, needle);
        EXPECT_FAIL(gmem_populate_fd(r, SIZE - 4 * PS, src, 0, 4 * PS, &many), EACCES, needle);
        EXPECT_FAIL(gmem_prefault(r, 0, 4 * PS, NULL), EACCES, needle);
        EXPECT_FAIL(gmem_prefault(r, 0, SIZE, &many), EACCES, needle);
        close(src);
        /* nothing was allocated by any of that */
        ck_assert_uint_eq(resident(r, 0, SIZE), 0);
}

START_TEST(gmem_private_populate_refused) {
        struct gmem_region *r = NULL;
        int vm, out, fd;
        int64_t written;
        uint8_t *back;
        static const uint8_t zero[SIZE];

        REQUIRE_GUEST_MEMFD();
        vm = gmem_test_new_vm();
        /* created by the library: it knows the memory is private */
        ck_assert_int_eq(gmem_region_new_guest_memfd(vm, SIZE, GMEM_GUEST_MEMFD_FLAG_MMAP, &r), 0);
        ck_assert_int_eq(gmem_region_is_private(r, 0, SIZE), 1);
        expect_private_refused(r, "private to the guest");
        out = gmem_test_temp_file();
        EXPECT_FAIL(gmem_dump_fd(r, 0, SIZE, out, 0, NULL), EACCES, "private");
        close(out);
        gmem_region_free(r);

        /* adopted without flags: the library does not know; the kernel refuses (EFAULT, not SIGBUS) */
        fd = raw_guest_memfd(vm, SIZE, GMEM_GUEST_MEMFD_FLAG_MMAP);
        ck_assert_int_eq(gmem_region_adopt(fd, &r), 0);
        ck_assert_int_eq(gmem_region_is_private(r, 0, SIZE), 0);
        expect_private_refused(r, "private to the guest");
        /* dumping private memory reads nothing of it: all holes */
        back = dump_region(r, 0, SIZE, &written);
        ck_assert_int_eq(written, 0);
        ck_assert_mem_eq(back, zero, SIZE);
        free(back);
        gmem_region_free(r);
        close(vm);
}
END_TEST

/* Residency: 0 for a fresh region, then exactly what was prefaulted. */
static void residency_on(struct gmem_region *r) {
        uint64_t ps = gmem_region_page_size(r), size = gmem_region_size(r);

        ck_assert_uint_eq(resident(r, 0, size), 0);
        ck_assert_int_eq(gmem_prefault(r, 4 * ps, 3 * ps, NULL), 0);
        ck_assert_uint_eq(resident(r, 0, size), 3 * ps);
        ck_assert_uint_eq(resident(r, 4 * ps, 3 * ps), 3 * ps);
        ck_assert_uint_eq(resident(r, 0, 4 * ps), 0);
        ck_assert_uint_eq(resident(r, 7 * ps, size - 7 * ps), 0);
        ck_assert_uint_eq(resident(r, 4 * ps + 10, 20), 20);  /* partial pages count partially */
        ck_assert_uint_eq(resident(r, 3 * ps, 2 * ps), ps);
        /* prefaulting again what is there changes nothing; more grows exactly by that */
        ck_assert_int_eq(gmem_prefault(r, 4 * ps, ps, NULL), 0);
        ck_assert_uint_eq(resident(r, 0, size), 3 * ps);
        ck_assert_int_eq(gmem_prefault(r, size - 2 * ps, 2 * ps, NULL), 0);
        ck_assert_uint_eq(resident(r, 0, size), 5 * ps);
        /* prefault zero-fills */
        {
                int64_t written;
                uint8_t *back = dump_region(r, 4 * ps, 3 * ps, &written), *zero = calloc(1, 3 * ps);
                /* hugetlb cannot tell a backed page of zeroes from a hole: it dumps zeroes as holes */
                ck_assert_int_eq(written, gmem_region_backend(r) == GMEM_BACKEND_HUGETLB ? 0 : 3 * ps);
                ck_assert_msg(memcmp(back, zero, 3 * ps) == 0, "prefaulted memory is not zero");
                free(zero);
                free(back);
        }
        if (gmem_region_backend(r) != GMEM_BACKEND_SECRET) {
                ck_assert_int_eq(gmem_punch_hole(r, 4 * ps, ps), 0);
                ck_assert_uint_eq(resident(r, 0, size), 4 * ps);
        }
}

START_TEST(residency_across_mincore_batches) {
        /* residency is asked for in batches of 65536 pages (256 MiB of 4 KiB pages): pages on both
         * sides of a batch boundary, and a query starting inside the second batch, must all count */
        const uint64_t size = 320u << 20, edge = 256u << 20, ps = 4096;
        struct gmem_region *r = NULL;

        ck_assert_int_eq(gmem_region_new_memfd(GMEM_BACKEND_MEMFD, size, &r), 0);
        ck_assert_int_eq(gmem_prefault(r, edge - ps, 2 * ps, NULL), 0);
        ck_assert_int_eq(gmem_prefault(r, size - ps, ps, NULL), 0);
        ck_assert_uint_eq(resident(r, 0, size), 3 * ps);
        ck_assert_uint_eq(resident(r, edge, size - edge), 2 * ps);
        ck_assert_uint_eq(resident(r, edge - 10, 20), 20);
        gmem_region_free(r);
}
END_TEST

START_TEST(residency_memfd) {
        struct gmem_region *r = NULL;

        ck_assert_int_eq(gmem_region_new_memfd(GMEM_BACKEND_MEMFD, SIZE, &r), 0);
        residency_on(r);
        gmem_region_free(r);
}
END_TEST

START_TEST(residency_secret) {
        struct gmem_region *r = NULL;

        if (gmem_region_new_memfd(GMEM_BACKEND_SECRET, SIZE, &r) < 0)
                SKIP_TEST("memfd_secret unavailable: %s", gmem_last_error());
        residency_on(r);
        gmem_region_free(r);
}
END_TEST

START_TEST(residency_guest_memfd) {
        struct gmem_region *r = NULL;
        int vm;

        REQUIRE_GUEST_MEMFD();
        if (!get_caps()->flag_init_shared)
                SKIP_TEST("no INIT_SHARED on this kernel");
        vm = gmem_test_new_vm();
        ck_assert_int_eq(gmem_region_new_guest_memfd(vm, SIZE, SHARED_FLAGS, &r), 0);
        residency_on(r);
        gmem_region_free(r);
        close(vm);
}
END_TEST

START_TEST(residency_hugetlb) {
        struct gmem_region *r = NULL;
        const uint64_t hp = 2u << 20;

        if (hugetlb_free_pages(hp) < 10)
                SKIP_TEST("fewer than 10 free 2 MiB huge pages");
        ck_assert_int_eq(gmem_region_new_hugetlb(hp, 10 * hp, &r), 0);
        residency_on(r);
        gmem_region_free(r);
}
END_TEST

START_TEST(secret_punch_unsupported) {
        struct gmem_region *r = NULL;
        uint8_t *data, *back;
        int fd, k;

        /* the kernel first: secretmem has no fallocate */
        fd = syscall(SYS_memfd_secret, O_CLOEXEC);
        if (fd < 0)
                SKIP_TEST("memfd_secret: %m");
        ck_assert_int_eq(ftruncate(fd, SIZE), 0);
        k = fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, PS);
        ck_assert_msg(k < 0 && errno == EOPNOTSUPP, "this kernel punches holes in memfd_secret (fallocate: %d %m): "
                      "libgmem's -EOPNOTSUPP for secret regions is wrong here", k);
        close(fd);

        ck_assert_int_eq(gmem_region_new_memfd(GMEM_BACKEND_SECRET, SIZE, &r), 0);
        data = malloc(SIZE);
        ck_assert_ptr_nonnull(data);
        gmem_test_fill(data, SIZE, 8);
        ck_assert_int_eq(gmem_populate_buf(r, 0, data, SIZE, NULL), SIZE);
        EXPECT_FAIL(gmem_punch_hole(r, 0, PS), EOPNOTSUPP, "memfd_secret");
        EXPECT_FAIL(gmem_punch_hole(r, PS, SIZE - PS), EOPNOTSUPP, "memfd_secret");
        back = dump_region(r, 0, SIZE, NULL);
        ck_assert_mem_eq(back, data, SIZE);
        ck_assert_uint_eq(resident(r, 0, SIZE), SIZE);
        free(back);
        free(data);
        gmem_region_free(r);
}
END_TEST

/* memfd_secret past RLIMIT_MEMLOCK: a clear -ENOMEM naming the limit, before any page is touched,
 * never the SIGBUS some kernels (6.1, 6.12, 7.x) raise in whoever faults past it. */
/* Raise or drop CAP_IPC_LOCK in the effective set (it stays permitted); false when we never had it. */
static bool set_cap_ipc_lock(bool on) {
        struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
        struct __user_cap_data_struct d[2] = { 0 };
        const uint32_t bit = UINT32_C(1) << (CAP_IPC_LOCK % 32);

        ck_assert_int_eq(syscall(SYS_capget, &h, d), 0);
        if (!(d[CAP_IPC_LOCK / 32].permitted & bit))
                return false;
        if (on)
                d[CAP_IPC_LOCK / 32].effective |= bit;
        else
                d[CAP_IPC_LOCK / 32].effective &= ~bit;
        ck_assert_int_eq(syscall(SYS_capset, &h, d), 0);
        return true;
}

START_TEST(secret_memlock_limit) {
        /* memfd_secret memory counts against RLIMIT_MEMLOCK; past it some kernels refuse the mmap,
         * others SIGBUS the first touch. libgmem must refuse first, with a message, on every kernel
         * (Check runs each test in its own process: a SIGBUS here fails the test, it does not end
         * the suite). Without CAP_IPC_LOCK the limit holds everywhere; with it, the kernel decides,
         * and either the memory works to its last byte or libgmem refuses. */
        struct rlimit saved, low;
        struct gmem_region *r = SENTINEL_PTR, *small = NULL, *big = NULL, *adopted = NULL;
        void *addr = SENTINEL_PTR;
        uint8_t page[4096], *data, *back;
        bool had_cap;
        int fd, k;

        ck_assert_int_eq(getrlimit(RLIMIT_MEMLOCK, &saved), 0);
        fd = syscall(SYS_memfd_secret, O_CLOEXEC);
        ck_assert_msg(fd >= 0, "memfd_secret: %m (boot 6.1 with secretmem.enable=1)");
        close(fd);
        had_cap = set_cap_ipc_lock(false);

        /* made while the limit allows it, then mapped after it was lowered */
        ck_assert_int_eq(gmem_region_new_memfd(GMEM_BACKEND_SECRET, 4u << 20, &big), 0);
        low = (struct rlimit) { 1u << 20, saved.rlim_max };
        ck_assert_int_eq(setrlimit(RLIMIT_MEMLOCK, &low), 0);

        EXPECT_FAIL(gmem_region_new_memfd(GMEM_BACKEND_SECRET, 4u << 20, &r), ENOMEM, "RLIMIT_MEMLOCK");
        ck_assert_ptr_eq(r, SENTINEL_PTR);
        EXPECT_FAIL(gmem_region_map(big, &addr), ENOMEM, "RLIMIT_MEMLOCK");
        ck_assert_ptr_eq(addr, SENTINEL_PTR);
        gmem_test_fill(page, sizeof(page), 3);
        EXPECT_FAIL(gmem_populate_buf(big, 0, page, sizeof(page), NULL), ENOMEM, "RLIMIT_MEMLOCK");
        EXPECT_FAIL(gmem_prefault(big, 0, 4u << 20, NULL), ENOMEM, "RLIMIT_MEMLOCK");
        /* a second holder of the same memory is held to its own limit */
        ck_assert_int_eq(gmem_region_adopt(dup(gmem_region_fd(big)), &adopted), 0);
        EXPECT_FAIL(gmem_prefault(adopted, 0, 4u << 20, NULL), ENOMEM, "RLIMIT_MEMLOCK");

        /* what fits still works, to the last page */
        ck_assert_int_eq(gmem_region_new_memfd(GMEM_BACKEND_SECRET, 512u << 10, &small), 0);
        ck_assert_int_eq(gmem_prefault(small, 0, 512u << 10, NULL), 0);
        ck_assert_int_eq(gmem_populate_buf(small, (512u << 10) - sizeof(page), page, sizeof(page), NULL),
                         (int64_t) sizeof(page));
        gmem_region_free(adopted);
        gmem_region_free(small);

        /* with CAP_IPC_LOCK, past the same limit: works to the last byte, or is refused */
        if (had_cap) {
                set_cap_ipc_lock(true);
                r = NULL;
                gmem_error_clear();
                k = gmem_region_new_memfd(GMEM_BACKEND_SECRET, 4u << 20, &r);
                if (k == 0) {
                        data = malloc(4u << 20);
                        gmem_test_fill(data, 4u << 20, 5);
                        ck_assert_int_eq(gmem_populate_buf(r, 0, data, 4u << 20, NULL), 4u << 20);
                        fd = gmem_test_temp_file();
                        ck_assert_int_eq(gmem_dump_fd(r, 0, 4u << 20, fd, 0, NULL), 4u << 20);
                        back = gmem_test_read_fd(fd, 0, 4u << 20);
                        ck_assert_mem_eq(back, data, 4u << 20);
                        free(back);
                        free(data);
                        close(fd);
                        gmem_region_free(r);
                        printf("KERNEL %s: CAP_IPC_LOCK exempts memfd_secret from RLIMIT_MEMLOCK here: "
                               "4 MiB past a 1 MiB limit populated and read back\n", __func__);
                } else {
                        ck_assert_int_eq(k, -ENOMEM);
                        ck_assert_ptr_null(r);
                        ck_assert_msg(strstr(gmem_last_error(), "does not exempt CAP_IPC_LOCK"), "%s", gmem_last_error());
                        printf("KERNEL %s: this kernel holds CAP_IPC_LOCK to RLIMIT_MEMLOCK for memfd_secret: "
                               "refused first: %s\n", __func__, gmem_last_error());
                }
                fflush(stdout);
        }

        ck_assert_int_eq(setrlimit(RLIMIT_MEMLOCK, &saved), 0);
        ck_assert_int_eq(gmem_prefault(big, 0, 4u << 20, NULL), 0);
        gmem_region_free(big);
}
END_TEST

int main(void) {
        Suite *s = suite_create("region");
        TCase *create = tcase_create("create"), *adopt = tcase_create("adopt"), *gmem = tcase_create("guest_memfd");
        TCase *res = tcase_create("residency");

        tcase_add_test(create, memfd_region);
        tcase_add_test(create, secret_region);
        tcase_add_test(create, secret_memlock_limit);
        tcase_add_test(create, guest_memfd_regions);
        tcase_add_test(create, guest_memfd_fd_cloexec);
        tcase_add_test(create, hugetlb_not_enough_pages);
        tcase_add_test(create, hugetlb_region);
        suite_add_tcase(s, create);

        tcase_add_test(adopt, adopt_memfd);
        tcase_add_test(adopt, adopt_secret);
        tcase_add_test(adopt, adopt_hugetlb_memfd);
        tcase_add_test(adopt, adopt_guest_memfd_detects_mmap);
        tcase_add_test(adopt, adopt_guest_memfd_with_flags);
        tcase_add_test(adopt, adopt_refuses_other_files);
        tcase_add_test(adopt, adopt_refuses_read_only_memfd);
        suite_add_tcase(s, adopt);

        tcase_add_test(gmem, gmem_invalid_flags_refused);
        tcase_add_test(gmem, gmem_invalid_sizes_refused);
        tcase_add_test(gmem, gmem_fd_file_operations);
        tcase_add_test(gmem, gmem_punch_one_page);
        tcase_add_test(gmem, gmem_punch_refusals_change_nothing);
        tcase_add_test(gmem, gmem_access_beyond_size);
        tcase_add_test(gmem, gmem_private_populate_refused);
        suite_add_tcase(s, gmem);

        tcase_add_test(res, residency_memfd);
        tcase_add_test(res, residency_secret);
        tcase_add_test(res, residency_guest_memfd);
        tcase_add_test(res, residency_hugetlb);
        tcase_add_test(res, residency_across_mincore_batches);
        tcase_add_test(res, secret_punch_unsupported);
        suite_add_tcase(s, res);
        return gmem_test_main(s);
}
