/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Shared <-> private conversion.
 *
 * (a) On the real kernel. A default x86 VM has no KVM_CAP_MEMORY_ATTRIBUTES, so gmem_convert()
 *     must refuse cleanly and change nothing. Where KVM has a software-protected VM type with a
 *     PRIVATE attribute (the secret-hiding kernel), conversions are real: a guest_memfd holds the
 *     private half of a slot and a memfd the shared half, and a real guest reads (and writes) the
 *     slot through shared -> private -> shared -> private, seeing each time the copy it should —
 *     never a stale one the conversion had to discard.
 *
 * (b) The bookkeeping above the kernel. Because this kernel has no memory attributes, these tests
 *     use a MOCK ioctl layer (gmem_sysops_set(), libgmem/sysops.h): KVM_CHECK_EXTENSION(
 *     KVM_CAP_MEMORY_ATTRIBUTES) answers KVM_MEMORY_ATTRIBUTE_PRIVATE and KVM_SET_MEMORY_ATTRIBUTES
 *     is recorded (and can be made to fail); every other ioctl goes to the real kernel, and every
 *     fallocate() is recorded and then really done. Test names start with "mock_". Memory that the
 *     mock "made private" is still shared in the kernel, so the tests can look at it directly to
 *     prove the library did not touch it.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "gmem-test.h"
#include "gmem/gmem.h"
#include "kvm-compat.h"
#include "minivm.h"
#include "region.h"      /* struct gmem_region: the private range set, to check it exactly */
#include "sysops.h"

#define PS 4096u
#define NPAGES 16u
#define SIZE (NPAGES * PS)
#define GPA 0x100000u
#define SHARED_FLAGS (GMEM_GUEST_MEMFD_FLAG_MMAP | GMEM_GUEST_MEMFD_FLAG_INIT_SHARED)


#define MAX_CALLS 64

/* What the mock was asked, and how it answers. */
static struct {
        uint64_t attributes_cap;        /* its answer to KVM_CHECK_EXTENSION(KVM_CAP_MEMORY_ATTRIBUTES) */
        int set_errno;                  /* non-zero: KVM_SET_MEMORY_ATTRIBUTES fails with it */
        int punch_errno;                /* non-zero: fallocate fails with it */
        unsigned n_check, n_set, n_punch;
        struct kvm_memory_attributes set[MAX_CALLS];
        struct { int fd, mode; off_t off, len; } punch[MAX_CALLS];
} mock;

static int mock_ioctl(int fd, unsigned long request, void *arg) {
        if (request == KVM_CHECK_EXTENSION && (long) (uintptr_t) arg == KVM_CAP_MEMORY_ATTRIBUTES) {
                mock.n_check++;
                return (int) mock.attributes_cap;
        }
        if (request == KVM_SET_MEMORY_ATTRIBUTES) {
                ck_assert_uint_lt(mock.n_set, MAX_CALLS);
                mock.set[mock.n_set++] = *(struct kvm_memory_attributes *) arg;
                if (mock.set_errno) {
                        errno = mock.set_errno;
                        return -1;
                }
                return 0;
        }
        return ioctl(fd, request, arg);
}

static int mock_fallocate(int fd, int mode, off_t off, off_t len) {
        ck_assert_uint_lt(mock.n_punch, MAX_CALLS);
        mock.punch[mock.n_punch].fd = fd;
        mock.punch[mock.n_punch].mode = mode;
        mock.punch[mock.n_punch].off = off;
        mock.punch[mock.n_punch].len = len;
        mock.n_punch++;
        if (mock.punch_errno) {
                errno = mock.punch_errno;
                return -1;
        }
        return fallocate(fd, mode, off, len);
}

static const struct gmem_sysops mock_ops = { .ioctl = mock_ioctl, .fallocate = mock_fallocate };

static void mock_install(void) {
        memset(&mock, 0, sizeof(mock));
        mock.attributes_cap = KVM_MEMORY_ATTRIBUTE_PRIVATE;
        gmem_sysops_set(&mock_ops);
}

static void mock_remove(void) {
        gmem_sysops_set(NULL);
}

static void expect_set(unsigned i, uint64_t gpa, uint64_t size, bool private) {
        ck_assert_uint_lt(i, mock.n_set);
        ck_assert_uint_eq(mock.set[i].address, gpa);
        ck_assert_uint_eq(mock.set[i].size, size);
        ck_assert_uint_eq(mock.set[i].attributes, private ? KVM_MEMORY_ATTRIBUTE_PRIVATE : 0);
        ck_assert_uint_eq(mock.set[i].flags, 0);
}

static void expect_punch(unsigned i, int fd, uint64_t off, uint64_t len) {
        ck_assert_uint_lt(i, mock.n_punch);
        ck_assert_int_eq(mock.punch[i].fd, fd);
        ck_assert_int_eq(mock.punch[i].mode, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE);
        ck_assert_int_eq(mock.punch[i].off, (off_t) off);
        ck_assert_int_eq(mock.punch[i].len, (off_t) len);
}

/* The region's private set is exactly these page ranges (start, end in pages), and
 * gmem_region_is_private() agrees page by page. */
static void expect_private_pages(struct gmem_region *r, size_t n, const unsigned *pairs) {
        bool page_private[NPAGES] = { false };

        ck_assert_uint_eq(r->private.n, n);
        for (size_t i = 0; i < n; i++) {
                ck_assert_uint_eq(r->private.ranges[i].start, (uint64_t) pairs[2 * i] * PS);
                ck_assert_uint_eq(r->private.ranges[i].end, (uint64_t) pairs[2 * i + 1] * PS);
                for (unsigned p = pairs[2 * i]; p < pairs[2 * i + 1]; p++)
                        page_private[p] = true;
        }
        for (unsigned p = 0; p < NPAGES; p++) {
                ck_assert_msg(gmem_region_is_private(r, (uint64_t) p * PS, PS) == page_private[p],
                              "page %u should be %s", p, page_private[p] ? "private" : "shared");
                /* any byte of the page answers the same */
                ck_assert_int_eq(gmem_region_is_private(r, (uint64_t) p * PS + PS - 1, 1), page_private[p]);
        }
}
#define EXPECT_PRIVATE(r, ...) do { \
                const unsigned _p[] = { __VA_ARGS__ }; \
                expect_private_pages((r), sizeof(_p) / sizeof(_p[0]) / 2, _p); \
        } while (0)
#define EXPECT_ALL_SHARED(r) do { \
                expect_private_pages((r), 0, NULL); \
                ck_assert_int_eq(gmem_region_is_private((r), 0, SIZE), 0); \
        } while (0)

static uint8_t *mapping(struct gmem_region *r) {
        void *a = NULL;
        ck_assert_int_eq(gmem_region_map(r, &a), 0);
        return a;
}

static uint64_t resident(struct gmem_region *r, uint64_t off, uint64_t len) {
        uint64_t b = 0;
        ck_assert_int_eq(gmem_region_resident(r, off, len, &b), 0);
        return b;
}

/* A shared guest_memfd (on a real VM) filled with data, or a memfd when vm is -1. */
static struct gmem_region *new_region(int vm, uint8_t **ret_data) {
        struct gmem_region *r = NULL;
        uint8_t *data = malloc(SIZE);

        ck_assert_ptr_nonnull(data);
        gmem_test_fill(data, SIZE, 4321);
        if (vm >= 0)
                ck_assert_msg(gmem_region_new_guest_memfd(vm, SIZE, SHARED_FLAGS, &r) == 0, "%s", gmem_last_error());
        else
                ck_assert_int_eq(gmem_region_new_memfd(GMEM_BACKEND_MEMFD, SIZE, &r), 0);
        ck_assert_int_eq(gmem_populate_buf(r, 0, data, SIZE, NULL), SIZE);
        *ret_data = data;
        return r;
}

#define REQUIRE_SHARED_GUEST_MEMFD() REQUIRE_SHARED_GMEM()

/* ---------------------------------------------------------------------------------------------
 * (a) the real kernel
 */

START_TEST(real_kernel_convert_unsupported) {
        struct gmem_caps c;
        struct gmem_region *r, *m;
        enum gmem_backend pick;
        uint64_t pick_flags;
        uint8_t *data, *mdata;
        int vm;

        REQUIRE_KVM();
        ck_assert_int_eq(gmem_caps_probe(&c), 0);
        if (c.memory_attributes[KVM_X86_DEFAULT_VM] & KVM_MEMORY_ATTRIBUTE_PRIVATE)
                SKIP_TEST("this kernel has KVM_CAP_MEMORY_ATTRIBUTES on the default VM type");
        ck_assert_int_eq(gmem_caps_pick_guest_memory(&c, &pick, &pick_flags, NULL), 0);
        vm = gmem_test_new_vm();
        /* a shared guest_memfd where the kernel has one for a default VM, else memfd like m */
        r = new_region(pick == GMEM_BACKEND_GUEST_MEMFD ? vm : -1, &data);
        m = new_region(-1, &mdata);
        /* bound as the VM's memory, as a VMM would have it */
        ck_assert_msg(gmem_kvm_bind(vm, 0, GPA, r, 0, SIZE) == 0, "%s", gmem_last_error());
        ck_assert_msg(gmem_kvm_bind(vm, 1, GPA + SIZE, m, 0, SIZE) == 0, "%s", gmem_last_error());

        EXPECT_FAIL(gmem_convert(r, vm, GPA, 0, SIZE, true), EOPNOTSUPP, "KVM_CAP_MEMORY_ATTRIBUTES");
        EXPECT_FAIL(gmem_convert(r, vm, GPA + 4 * PS, 4 * PS, PS, true), EOPNOTSUPP, "KVM_CAP_MEMORY_ATTRIBUTES");
        EXPECT_FAIL(gmem_convert(r, vm, GPA, 0, SIZE, false), EOPNOTSUPP, "KVM_CAP_MEMORY_ATTRIBUTES");
        EXPECT_FAIL(gmem_convert(m, vm, GPA + SIZE, 0, SIZE, true), EOPNOTSUPP, "KVM_CAP_MEMORY_ATTRIBUTES");

        /* nothing changed: no private range, data intact (no discard happened), still usable */
        EXPECT_ALL_SHARED(r);
        EXPECT_ALL_SHARED(m);
        ck_assert_mem_eq(mapping(r), data, SIZE);
        ck_assert_mem_eq(mapping(m), mdata, SIZE);
        ck_assert_uint_eq(resident(r, 0, SIZE), SIZE);
        ck_assert_int_eq(gmem_populate_buf(r, 0, mdata, PS, NULL), PS);
        ck_assert_mem_eq(mapping(r), mdata, PS);

        gmem_region_free(r);
        gmem_region_free(m);
        close(vm);
        free(data);
        free(mdata);
}
END_TEST

#define CONV_GPA 0x100000u
#define CONV_SLOT 1
#define CONV_SIZE (64 * PS)

static uint32_t guest_reads(struct minivm *vm) {
        uint32_t h = 0;
        int k = minivm_run_checksum(vm, CONV_GPA, CONV_SIZE, &h);
        ck_assert_msg(k == 0, "guest run: %s (%s)", strerror(-k), minivm_last_exit(vm, 0));
        return h;
}

/* Both halves of the slot, as a VMM converts them: each region discards its own stale copy. */
static void convert_slot(struct minivm *vm, struct gmem_region *priv, struct gmem_region *shared, bool to_private) {
        ck_assert_msg(gmem_convert(priv, minivm_vm_fd(vm), CONV_GPA, 0, CONV_SIZE, to_private) == 0, "%s",
                      gmem_last_error());
        ck_assert_msg(gmem_convert(shared, minivm_vm_fd(vm), CONV_GPA, 0, CONV_SIZE, to_private) == 0, "%s",
                      gmem_last_error());
        ck_assert_int_eq(gmem_region_is_private(priv, 0, CONV_SIZE), to_private);
        ck_assert_int_eq(gmem_region_is_private(shared, 0, CONV_SIZE), to_private);
}

/* What the shared half holds, read through a fresh holder of its fd (which knows nothing private). */
static void expect_shared_half(struct gmem_region *shared, const uint8_t *want, uint64_t want_resident) {
        struct gmem_region *view = NULL;
        uint8_t *back;
        int out = gmem_test_temp_file();

        ck_assert_int_eq(gmem_region_adopt(dup(gmem_region_fd(shared)), &view), 0);
        /* a dump writes what is backed and leaves holes for the rest */
        ck_assert_int_eq(gmem_dump_fd(view, 0, CONV_SIZE, out, 0, NULL), (int64_t) want_resident);
        back = gmem_test_read_fd(out, 0, CONV_SIZE);
        ck_assert_mem_eq(back, want, CONV_SIZE);
        ck_assert_uint_eq(resident(view, 0, CONV_SIZE), want_resident);
        free(back);
        close(out);
        gmem_region_free(view);
}

START_TEST(real_conversion_seen_by_guest) {
        struct gmem_region *priv = NULL, *shared = NULL, *r = NULL;
        uint8_t *a = malloc(CONV_SIZE), *b = malloc(CONV_SIZE), *stamp = malloc(CONV_SIZE), *zero = calloc(1, CONV_SIZE);
        struct minivm *vm = NULL;
        struct gmem_caps c;
        uint32_t h = 0;
        int k;

        REQUIRE_KVM();
        ck_assert_int_eq(gmem_caps_probe(&c), 0);
        gmem_test_fill(a, CONV_SIZE, 1);
        gmem_test_fill(b, CONV_SIZE, 2);
        minivm_stamp_host(stamp, CONV_GPA, CONV_SIZE);
        if (!(c.vm_types & (1u << KVM_X86_SW_PROTECTED_VM)) ||
            !(c.memory_attributes[KVM_X86_SW_PROTECTED_VM] & KVM_MEMORY_ATTRIBUTE_PRIVATE)) {
                /* no VM type here has private memory: a guest's memory cannot convert, and trying
                 * leaves it as it was, the guest still reading it */
                ck_assert_int_eq(minivm_new(&vm), 0);
                ck_assert_int_eq(gmem_region_new_memfd(GMEM_BACKEND_MEMFD, CONV_SIZE, &r), 0);
                ck_assert_int_eq(gmem_populate_buf(r, 0, a, CONV_SIZE, NULL), CONV_SIZE);
                ck_assert_msg(gmem_kvm_bind(minivm_vm_fd(vm), CONV_SLOT, CONV_GPA, r, 0, CONV_SIZE) == 0, "%s",
                              gmem_last_error());
                EXPECT_FAIL(gmem_convert(r, minivm_vm_fd(vm), CONV_GPA, 0, CONV_SIZE, true), EOPNOTSUPP,
                            "KVM_CAP_MEMORY_ATTRIBUTES");
                ck_assert_int_eq(gmem_region_is_private(r, 0, CONV_SIZE), 0);
                ck_assert_uint_eq(guest_reads(vm), minivm_checksum_host(a, CONV_SIZE));
                printf("KERNEL %s: no VM type with private memory (sw_protected absent); conversion refused, "
                       "the guest still reads its memory\n", __func__);
                fflush(stdout);
                goto out;
        }

        ck_assert_int_eq(minivm_new_type(KVM_X86_SW_PROTECTED_VM, 1, &vm), 0);
        /* the private half: a guest_memfd (sw_protected refuses INIT_SHARED: it starts private and
         * the host never maps it); the shared half: a memfd the host fills */
        ck_assert_msg(gmem_region_new_guest_memfd(minivm_vm_fd(vm), CONV_SIZE, 0, &priv) == 0, "%s", gmem_last_error());
        ck_assert_int_eq(gmem_region_new_memfd(GMEM_BACKEND_MEMFD, CONV_SIZE, &shared), 0);
        ck_assert_int_eq(gmem_populate_buf(shared, 0, a, CONV_SIZE, NULL), CONV_SIZE);
        ck_assert_msg(gmem_kvm_bind_pair(minivm_vm_fd(vm), CONV_SLOT, CONV_GPA, priv, shared, 0, CONV_SIZE) == 0,
                      "%s", gmem_last_error());

        /* 1. shared: the guest reads what the host wrote */
        ck_assert_uint_eq(guest_reads(vm), minivm_checksum_host(a, CONV_SIZE));

        /* 2. private: the shared copy is discarded (gone from the memfd, not just hidden), the host's
         * data path refuses the range, and the guest reads its private copy: fresh zeroes */
        convert_slot(vm, priv, shared, true);
        expect_shared_half(shared, zero, 0);
        EXPECT_FAIL(gmem_populate_buf(shared, 0, b, PS, NULL), EACCES, "private");
        ck_assert_uint_eq(guest_reads(vm), minivm_checksum_host(zero, CONV_SIZE));
        /* the guest writes its private memory; none of it reaches the shared half */
        k = minivm_run_stamp(vm, CONV_GPA, CONV_SIZE, &h);
        ck_assert_msg(k == 0, "guest stamp: %s (%s)", strerror(-k), minivm_last_exit(vm, 0));
        ck_assert_uint_eq(h, minivm_checksum_host(stamp, CONV_SIZE));
        ck_assert_uint_eq(guest_reads(vm), minivm_checksum_host(stamp, CONV_SIZE));
        expect_shared_half(shared, zero, 0);

        /* 3. shared again: the private copy (the stamp) is discarded; the guest reads the shared
         * half, zeroes since step 2, then what the host writes now */
        convert_slot(vm, priv, shared, false);
        ck_assert_uint_eq(guest_reads(vm), minivm_checksum_host(zero, CONV_SIZE));
        ck_assert_int_eq(gmem_populate_buf(shared, 0, b, CONV_SIZE, NULL), CONV_SIZE);
        ck_assert_uint_eq(guest_reads(vm), minivm_checksum_host(b, CONV_SIZE));

        /* 4. private once more: had step 3 kept the stamp, the guest would read it now */
        convert_slot(vm, priv, shared, true);
        ck_assert_uint_eq(guest_reads(vm), minivm_checksum_host(zero, CONV_SIZE));
        expect_shared_half(shared, zero, 0);
        printf("KERNEL %s: real conversions on a sw_protected VM, shared -> private -> shared -> private, each "
               "seen by the guest\n", __func__);
        fflush(stdout);
out:
        gmem_region_free(r);
        gmem_region_free(priv);
        gmem_region_free(shared);
        minivm_free(vm);
        free(a);
        free(b);
        free(stamp);
        free(zero);
}
END_TEST

/* ---------------------------------------------------------------------------------------------
 * (b) the bookkeeping, on a mock of KVM_SET_MEMORY_ATTRIBUTES
 */

START_TEST(mock_gmem_to_private) {
        struct gmem_region *r = NULL;
        uint8_t *data, *map, buf[2 * PS];
        int vm, src, out;

        REQUIRE_SHARED_GUEST_MEMFD();
        vm = gmem_test_new_vm();
        mock_install();
        /* pages 4..11 are never written: they must stay unallocated through everything below */
        data = malloc(SIZE);
        gmem_test_fill(data, SIZE, 99);
        ck_assert_int_eq(gmem_region_new_guest_memfd(vm, SIZE, SHARED_FLAGS, &r), 0);
        ck_assert_int_eq(gmem_populate_buf(r, 0, data, 4 * PS, NULL), 4 * PS);
        ck_assert_int_eq(gmem_populate_buf(r, 12 * PS, data + 12 * PS, 4 * PS, NULL), 4 * PS);
        ck_assert_uint_eq(resident(r, 0, SIZE), 8 * PS);

        /* gpa is the guest address of off (as for gmem_kvm_bind) */
        ck_assert_int_eq(gmem_convert(r, vm, GPA + 4 * PS, 4 * PS, 8 * PS, true), 0);
        ck_assert_uint_eq(mock.n_check, 1);
        ck_assert_uint_eq(mock.n_set, 1);
        expect_set(0, GPA + 4 * PS, 8 * PS, true);
        ck_assert_uint_eq(mock.n_punch, 0); /* the guest_memfd holds the private copy: no discard */
        EXPECT_PRIVATE(r, 4, 12);
        ck_assert_int_eq(gmem_region_is_private(r, 3 * PS, 2 * PS), 1);  /* straddling the edges */
        ck_assert_int_eq(gmem_region_is_private(r, 11 * PS, 2 * PS), 1);
        ck_assert_int_eq(gmem_region_is_private(r, 0, 4 * PS), 0);       /* half-open */
        ck_assert_int_eq(gmem_region_is_private(r, 12 * PS, 4 * PS), 0);

        /* the data path refuses every part of it, even one byte, and touches nothing */
        memset(buf, 0xee, sizeof(buf));
        src = gmem_test_random_file(2 * PS, 5, NULL);
        out = gmem_test_temp_file();
        EXPECT_FAIL(gmem_populate_buf(r, 4 * PS, buf, PS, NULL), EACCES, "private to the guest");
        EXPECT_FAIL(gmem_populate_buf(r, 3 * PS, buf, 2 * PS, NULL), EACCES, "private");  /* page 3 is shared */
        EXPECT_FAIL(gmem_populate_buf(r, 12 * PS - 1, buf, 1, NULL), EACCES, "private");
        EXPECT_FAIL(gmem_populate_fd(r, 11 * PS, src, 0, 2 * PS, NULL), EACCES, "private");
        EXPECT_FAIL(gmem_prefault(r, 4 * PS, 8 * PS, NULL), EACCES, "private");
        EXPECT_FAIL(gmem_prefault(r, 0, SIZE, NULL), EACCES, "private");
        EXPECT_FAIL(gmem_dump_fd(r, 0, SIZE, out, 0, NULL), EACCES, "private");
        EXPECT_FAIL(gmem_dump_fd(r, 8 * PS, PS, out, 0, NULL), EACCES, "private");
        ck_assert_uint_eq(resident(r, 4 * PS, 8 * PS), 0);
        ck_assert_uint_eq(resident(r, 0, SIZE), 8 * PS);
        map = mapping(r);  /* still shared in the kernel (mock): safe to look */
        ck_assert_mem_eq(map, data, 4 * PS);
        ck_assert_mem_eq(map + 12 * PS, data + 12 * PS, 4 * PS);
        ck_assert_uint_eq(mock.n_punch, 0);

        /* the shared rest still works */
        ck_assert_int_eq(gmem_populate_fd(r, 0, src, 0, 2 * PS, NULL), 2 * PS);
        ck_assert_int_eq(gmem_dump_fd(r, 12 * PS, 4 * PS, out, 0, NULL), 4 * PS);
        ck_assert_int_eq(gmem_prefault(r, 12 * PS, 4 * PS, NULL), 0);

        close(src);
        close(out);
        free(data);
        gmem_region_free(r);
        close(vm);
        mock_remove();
}
END_TEST

START_TEST(mock_gmem_to_shared_punches) {
        static const uint8_t zero[8 * PS];
        struct gmem_region *r;
        uint8_t *data, *map;
        int vm;

        REQUIRE_SHARED_GUEST_MEMFD();
        vm = gmem_test_new_vm();
        mock_install();
        r = new_region(vm, &data);
        ck_assert_int_eq(gmem_convert(r, vm, GPA, 4 * PS, 8 * PS, true), 0);
        EXPECT_PRIVATE(r, 4, 12);
        ck_assert_uint_eq(mock.n_punch, 0);

        ck_assert_int_eq(gmem_convert(r, vm, GPA, 4 * PS, 8 * PS, false), 0);
        ck_assert_uint_eq(mock.n_set, 2);
        expect_set(1, GPA, 8 * PS, false);
        /* the stale private copy, in the guest_memfd, is discarded */
        ck_assert_uint_eq(mock.n_punch, 1);
        expect_punch(0, gmem_region_fd(r), 4 * PS, 8 * PS);
        EXPECT_ALL_SHARED(r);
        ck_assert_uint_eq(resident(r, 0, SIZE), 8 * PS);   /* (before reading faults the holes in) */
        ck_assert_uint_eq(resident(r, 4 * PS, 8 * PS), 0);
        map = mapping(r);
        ck_assert_mem_eq(map + 4 * PS, zero, 8 * PS);
        ck_assert_mem_eq(map, data, 4 * PS);
        ck_assert_mem_eq(map + 12 * PS, data + 12 * PS, 4 * PS);
        /* and it is writable again */
        ck_assert_int_eq(gmem_populate_buf(r, 4 * PS, data + 4 * PS, 8 * PS, NULL), 8 * PS);
        ck_assert_mem_eq(map, data, SIZE);

        free(data);
        gmem_region_free(r);
        close(vm);
        mock_remove();
}
END_TEST

START_TEST(mock_private_gmem_to_shared) {
        /* a guest_memfd created private (no INIT_SHARED): sharing part of it makes that part usable */
        struct gmem_region *r = NULL;
        uint8_t buf[2 * PS];
        int vm;

        REQUIRE_SHARED_GUEST_MEMFD();
        vm = gmem_test_new_vm();
        mock_install();
        ck_assert_int_eq(gmem_region_new_guest_memfd(vm, SIZE, GMEM_GUEST_MEMFD_FLAG_MMAP, &r), 0);
        EXPECT_PRIVATE(r, 0, NPAGES);
        ck_assert_int_eq(gmem_convert(r, vm, GPA, 2 * PS, 2 * PS, false), 0);
        expect_set(0, GPA, 2 * PS, false);
        expect_punch(0, gmem_region_fd(r), 2 * PS, 2 * PS);
        EXPECT_PRIVATE(r, 0, 2, 4, NPAGES);
        gmem_test_fill(buf, sizeof(buf), 1);
        EXPECT_FAIL(gmem_populate_buf(r, PS, buf, 2 * PS, NULL), EACCES, "private");
        /* the kernel's view of this guest_memfd is still all-private (mock), so only check the
         * bookkeeping lets the range through to the kernel, which then says EFAULT -> -EACCES */
        EXPECT_FAIL(gmem_populate_buf(r, 2 * PS, buf, 2 * PS, NULL), EACCES, "MADV_POPULATE_WRITE");
        gmem_region_free(r);
        close(vm);
        mock_remove();
}
END_TEST

START_TEST(mock_memfd_to_private_punches) {
        static const uint8_t zero[4 * PS];
        struct gmem_region *r;
        uint8_t *data, *map;
        int vm = open("/dev/null", O_RDWR | O_CLOEXEC); /* the mock answers every ioctl convert makes */

        ck_assert_int_ge(vm, 0);
        mock_install();
        r = new_region(-1, &data);
        map = mapping(r);

        ck_assert_int_eq(gmem_convert(r, vm, GPA + 2 * PS, 2 * PS, 4 * PS, true), 0);
        ck_assert_uint_eq(mock.n_set, 1);
        expect_set(0, GPA + 2 * PS, 4 * PS, true);
        /* the memfd is the shared half: its now stale copy is discarded */
        ck_assert_uint_eq(mock.n_punch, 1);
        expect_punch(0, gmem_region_fd(r), 2 * PS, 4 * PS);
        EXPECT_PRIVATE(r, 2, 6);
        EXPECT_FAIL(gmem_populate_buf(r, 2 * PS, data, PS, NULL), EACCES, "private");
        EXPECT_FAIL(gmem_prefault(r, 0, SIZE, NULL), EACCES, "private");
        /* discarded, and nothing above allocated it again (checked before reading faults it in) */
        ck_assert_uint_eq(resident(r, 2 * PS, 4 * PS), 0);
        ck_assert_uint_eq(resident(r, 0, SIZE), SIZE - 4 * PS);
        ck_assert_mem_eq(map + 2 * PS, zero, 4 * PS);
        ck_assert_mem_eq(map, data, 2 * PS);
        ck_assert_mem_eq(map + 6 * PS, data + 6 * PS, SIZE - 6 * PS);

        /* back to shared: nothing to discard in the memfd (the private copy lives elsewhere) */
        ck_assert_int_eq(gmem_convert(r, vm, GPA + 2 * PS, 2 * PS, 4 * PS, false), 0);
        ck_assert_uint_eq(mock.n_set, 2);
        expect_set(1, GPA + 2 * PS, 4 * PS, false);
        ck_assert_uint_eq(mock.n_punch, 1);
        EXPECT_ALL_SHARED(r);
        ck_assert_int_eq(gmem_populate_buf(r, 2 * PS, data + 2 * PS, 4 * PS, NULL), 4 * PS);
        ck_assert_mem_eq(map, data, SIZE);

        free(data);
        gmem_region_free(r);
        close(vm);
        mock_remove();
}
END_TEST

START_TEST(mock_partial_conversions_split) {
        struct gmem_region *r;
        uint8_t *data;
        int vm, fd;

        REQUIRE_SHARED_GUEST_MEMFD();
        vm = gmem_test_new_vm();
        mock_install();
        r = new_region(vm, &data);
        fd = gmem_region_fd(r);

        ck_assert_int_eq(gmem_convert(r, vm, GPA, 0, SIZE, true), 0);
        EXPECT_PRIVATE(r, 0, 16);
        ck_assert_int_eq(gmem_convert(r, vm, GPA + 4 * PS, 4 * PS, 4 * PS, false), 0);   /* split in two */
        EXPECT_PRIVATE(r, 0, 4, 8, 16);
        expect_punch(0, fd, 4 * PS, 4 * PS);
        ck_assert_int_eq(gmem_convert(r, vm, GPA + 10 * PS, 10 * PS, 2 * PS, false), 0); /* and in three */
        EXPECT_PRIVATE(r, 0, 4, 8, 10, 12, 16);
        expect_punch(1, fd, 10 * PS, 2 * PS);
        ck_assert_int_eq(gmem_convert(r, vm, GPA, 0, PS, false), 0);                      /* trim the start */
        EXPECT_PRIVATE(r, 1, 4, 8, 10, 12, 16);
        ck_assert_int_eq(gmem_convert(r, vm, GPA + 15 * PS, 15 * PS, PS, false), 0);      /* trim the end */
        EXPECT_PRIVATE(r, 1, 4, 8, 10, 12, 15);
        ck_assert_int_eq(gmem_convert(r, vm, GPA + 6 * PS, 6 * PS, 4 * PS, false), 0);    /* shared over a gap */
        EXPECT_PRIVATE(r, 1, 4, 12, 15);
        ck_assert_int_eq(gmem_convert(r, vm, GPA + 4 * PS, 4 * PS, PS, true), 0);         /* adjacent: merges */
        EXPECT_PRIVATE(r, 1, 5, 12, 15);
        ck_assert_int_eq(gmem_convert(r, vm, GPA + 2 * PS, 2 * PS, 12 * PS, true), 0);    /* bridges, absorbs */
        EXPECT_PRIVATE(r, 1, 15);
        ck_assert_int_eq(gmem_convert(r, vm, GPA + 2 * PS, 2 * PS, 2 * PS, true), 0);     /* already private */
        EXPECT_PRIVATE(r, 1, 15);
        ck_assert_int_eq(gmem_convert(r, vm, GPA, 0, SIZE, false), 0);                    /* everything */
        EXPECT_ALL_SHARED(r);
        expect_punch(mock.n_punch - 1, fd, 0, SIZE);
        /* every call reached KVM once, with its own range; punches only on the way to shared */
        ck_assert_uint_eq(mock.n_set, 10);
        expect_set(2, GPA + 10 * PS, 2 * PS, false);
        expect_set(7, GPA + 2 * PS, 12 * PS, true);
        ck_assert_uint_eq(mock.n_punch, 6);

        free(data);
        gmem_region_free(r);
        close(vm);
        mock_remove();
}
END_TEST

START_TEST(mock_set_attributes_failure_rolls_back) {
        struct gmem_region *g = NULL, *m;
        uint8_t *gdata, *mdata;
        int vm;

        REQUIRE_SHARED_GUEST_MEMFD();
        vm = gmem_test_new_vm();
        mock_install();
        g = new_region(vm, &gdata);
        m = new_region(-1, &mdata);
        mock.set_errno = EFAULT;

        /* to private, from all shared: nothing recorded, nothing discarded, the error explained */
        EXPECT_FAIL(gmem_convert(g, vm, GPA, 4 * PS, 4 * PS, true), EFAULT, "KVM_SET_MEMORY_ATTRIBUTES");
        ck_assert_ptr_nonnull(strstr(gmem_last_error(), "private"));
        ck_assert_ptr_nonnull(strstr(gmem_last_error(), strerror(EFAULT)));
        EXPECT_ALL_SHARED(g);
        EXPECT_FAIL(gmem_convert(m, vm, GPA, 4 * PS, 4 * PS, true), EFAULT, "KVM_SET_MEMORY_ATTRIBUTES");
        EXPECT_ALL_SHARED(m);
        ck_assert_uint_eq(mock.n_set, 2);
        ck_assert_uint_eq(mock.n_punch, 0);
        ck_assert_mem_eq(mapping(m), mdata, SIZE);  /* the memfd copy was not discarded */
        ck_assert_mem_eq(mapping(g), gdata, SIZE);
        /* the data path still works there */
        ck_assert_int_eq(gmem_populate_buf(g, 4 * PS, gdata + 4 * PS, PS, NULL), PS);

        /* to shared: the private range stays, nothing is discarded */
        mock.set_errno = 0;
        ck_assert_int_eq(gmem_convert(g, vm, GPA, 0, 8 * PS, true), 0);
        EXPECT_PRIVATE(g, 0, 8);
        mock.set_errno = EINVAL;
        EXPECT_FAIL(gmem_convert(g, vm, GPA, 2 * PS, 4 * PS, false), EINVAL, "KVM_SET_MEMORY_ATTRIBUTES");
        ck_assert_ptr_nonnull(strstr(gmem_last_error(), "shared"));
        EXPECT_PRIVATE(g, 0, 8);
        ck_assert_uint_eq(mock.n_punch, 0);
        ck_assert_mem_eq(mapping(g), gdata, SIZE);

        mock.set_errno = 0;
        free(gdata);
        free(mdata);
        gmem_region_free(g);
        gmem_region_free(m);
        close(vm);
        mock_remove();
}
END_TEST

START_TEST(mock_failed_to_private_keeps_earlier_private) {
        /* A failed to_private over a range that is partly private already: the part that was
         * private before the call must still be private after it (KVM still has it private). */
        struct gmem_region *g;
        uint8_t *gdata;
        int vm, k, before, after;

        REQUIRE_SHARED_GUEST_MEMFD();
        vm = gmem_test_new_vm();
        mock_install();
        g = new_region(vm, &gdata);
        ck_assert_int_eq(gmem_convert(g, vm, GPA, 0, 8 * PS, true), 0);
        EXPECT_PRIVATE(g, 0, 8);
        before = gmem_region_is_private(g, 4 * PS, 4 * PS);
        mock.set_errno = EFAULT;
        k = gmem_convert(g, vm, GPA + 4 * PS, 4 * PS, 8 * PS, true);
        mock.set_errno = 0;
        ck_assert_int_eq(k, -EFAULT);
        ck_assert_uint_eq(mock.n_punch, 0);
        after = gmem_region_is_private(g, 4 * PS, 4 * PS);
        ck_assert_int_eq(before, 1);
        ck_assert_int_eq(gmem_region_is_private(g, 0, 4 * PS), 1);
        ck_assert_int_eq(gmem_region_is_private(g, 8 * PS, 4 * PS), 0);
        free(gdata);
        gmem_region_free(g);
        close(vm);
        mock_remove();
        ck_assert_int_eq(after, 1);
}
END_TEST

START_TEST(mock_no_private_attribute) {
        struct gmem_region *r;
        uint8_t *data;
        int vm = open("/dev/null", O_RDWR | O_CLOEXEC);

        mock_install();
        r = new_region(-1, &data);
        mock.attributes_cap = 0;
        EXPECT_FAIL(gmem_convert(r, vm, GPA, 0, PS, true), EOPNOTSUPP, "KVM_CAP_MEMORY_ATTRIBUTES");
        ck_assert_ptr_nonnull(strstr(gmem_last_error(), "mask 0x0"));
        mock.attributes_cap = 1u << 0; /* some attribute, but not PRIVATE */
        EXPECT_FAIL(gmem_convert(r, vm, GPA, 0, PS, false), EOPNOTSUPP, "mask 0x1");
        ck_assert_uint_eq(mock.n_check, 2);
        ck_assert_uint_eq(mock.n_set, 0);
        ck_assert_uint_eq(mock.n_punch, 0);
        EXPECT_ALL_SHARED(r);
        ck_assert_mem_eq(mapping(r), data, SIZE);
        free(data);
        gmem_region_free(r);
        close(vm);
        mock_remove();
}
END_TEST

START_TEST(mock_discard_failure_reported) {
        struct gmem_region *r;
        uint8_t *data;
        int vm = open("/dev/null", O_RDWR | O_CLOEXEC);

        mock_install();
        r = new_region(-1, &data);
        mock.punch_errno = EIO;
        EXPECT_FAIL(gmem_convert(r, vm, GPA, 0, 2 * PS, true), EIO, "discard the stale shared copy");
        /* KVM was told "private": the host must keep its hands off, whatever the discard did */
        ck_assert_uint_eq(mock.n_set, 1);
        expect_punch(0, gmem_region_fd(r), 0, 2 * PS);
        ck_assert_int_eq(gmem_region_is_private(r, 0, 2 * PS), 1);
        EXPECT_FAIL(gmem_populate_buf(r, 0, data, PS, NULL), EACCES, "private");
        free(data);
        gmem_region_free(r);
        close(vm);
        mock_remove();
}
END_TEST

START_TEST(mock_secret_refused) {
        struct gmem_region *r = NULL;
        uint8_t *data = malloc(SIZE);
        int vm = open("/dev/null", O_RDWR | O_CLOEXEC);

        mock_install();
        if (gmem_region_new_memfd(GMEM_BACKEND_SECRET, SIZE, &r) < 0) {
                mock_remove();
                free(data);
                close(vm);
                SKIP_TEST("memfd_secret unavailable: %s", gmem_last_error());
        }
        gmem_test_fill(data, SIZE, 6);
        ck_assert_int_eq(gmem_populate_buf(r, 0, data, SIZE, NULL), SIZE);
        EXPECT_FAIL(gmem_convert(r, vm, GPA, 0, SIZE, true), EOPNOTSUPP, "memfd_secret");
        EXPECT_FAIL(gmem_convert(r, vm, GPA, 0, PS, false), EOPNOTSUPP, "memfd_secret");
        /* refused before KVM is asked anything */
        ck_assert_uint_eq(mock.n_check, 0);
        ck_assert_uint_eq(mock.n_set, 0);
        ck_assert_uint_eq(mock.n_punch, 0);
        ck_assert_int_eq(gmem_region_is_private(r, 0, SIZE), 0);
        ck_assert_mem_eq(mapping(r), data, SIZE);
        free(data);
        gmem_region_free(r);
        close(vm);
        mock_remove();
}
END_TEST

static void restore_sysops(void) {
        /* also after a failed test (CK_FORK=no), the next one starts on the real calls */
        gmem_sysops_set(NULL);
}

int main(void) {
        Suite *s = suite_create("convert");
        TCase *real = tcase_create("real"), *mocked = tcase_create("mock");

        tcase_add_test(real, real_kernel_convert_unsupported);
        tcase_add_test(real, real_conversion_seen_by_guest);
        suite_add_tcase(s, real);

        tcase_add_checked_fixture(mocked, NULL, restore_sysops);
        tcase_add_test(mocked, mock_gmem_to_private);
        tcase_add_test(mocked, mock_gmem_to_shared_punches);
        tcase_add_test(mocked, mock_private_gmem_to_shared);
        tcase_add_test(mocked, mock_memfd_to_private_punches);
        tcase_add_test(mocked, mock_partial_conversions_split);
        tcase_add_test(mocked, mock_set_attributes_failure_rolls_back);
        tcase_add_test(mocked, mock_failed_to_private_keeps_earlier_private);
        tcase_add_test(mocked, mock_no_private_attribute);
        tcase_add_test(mocked, mock_discard_failure_reported);
        tcase_add_test(mocked, mock_secret_refused);
        suite_add_tcase(s, mocked);
        return gmem_test_main(s);
}
