/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Guest memory out of the host's direct map, for real: what gmem exists for. On a kernel with
 * GUEST_MEMFD_FLAG_NO_DIRECT_MAP (the secret-hiding series) a VMM's guest_memfd with the best
 * flags the kernel offers is registered with a real gmemd, which populates it (another process
 * filling it through its own user mapping), and a real guest reads exactly the image; then dump
 * (through gmemd and in-process), punch (the guest sees zeroes there), prefault (by touch: the
 * kernel refuses to pin such pages) and the write() populate path, each checked by the guest or
 * byte for byte.
 *
 * On a kernel without NO_DIRECT_MAP there is nothing to remove from the direct map: the tests
 * check that libgmem says so (the capability, the pick, the refusal of the bit) and end.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "gmem-test.h"
#include "gmem/gmem.h"
#include "minivm.h"

#define SIZE (4u << 20)
#define GPA 0x100000u
#define SLOT 1
#define PS 4096u

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

/* The kernel's NO_DIRECT_MAP bit and the flags a VMM gets; false (after checking the kernel says
 * it has none, consistently) where there is no such flag. */
static bool no_direct_map_flags(const char *test, uint64_t *ret_flags, struct gmem_caps *ret_caps) {
        enum gmem_backend pick;
        const char *why;
        uint64_t flags;
        int vm, k;

        ck_assert_int_eq(gmem_caps_probe(ret_caps), 0);
        ck_assert_int_eq(gmem_caps_pick_guest_memory(ret_caps, &pick, &flags, &why), 0);
        if (ret_caps->flag_no_direct_map) {
                ck_assert_int_eq(pick, GMEM_BACKEND_GUEST_MEMFD);
                /* the best flags, and WRITE where the kernel has write() */
                ck_assert_uint_eq(flags & ~ret_caps->flag_write, gmem_caps_best_guest_memfd_flags(ret_caps));
                ck_assert_uint_eq(flags & ret_caps->flag_write, ret_caps->gmem_write ? ret_caps->flag_write : 0);
                ck_assert(flags & ret_caps->flag_no_direct_map);
                ck_assert_msg(strstr(why, "NO_DIRECT_MAP") && !strstr(why, "no NO_DIRECT_MAP"), "%s", why);
                *ret_flags = flags;
                return true;
        }
        ck_assert_msg(pick == GMEM_BACKEND_MEMFD || strstr(why, "no NO_DIRECT_MAP"), "%s", why);
        /* and the secret-hiding series' bit, asked for anyway, is refused (unless this kernel's
         * mask has that bit for something else: the write() series numbers WRITE so) */
        gmem_error_clear();
        if (!(ret_caps->guest_memfd_flags & (UINT64_C(1) << 2))) {
                struct gmem_region *r = SENTINEL_PTR;
                vm = gmem_test_new_vm();
                k = gmem_region_new_guest_memfd(vm, SIZE, GMEM_GUEST_MEMFD_FLAG_MMAP | GMEM_GUEST_MEMFD_FLAG_INIT_SHARED |
                                                                  (UINT64_C(1) << 2), &r);
                close(vm);
                ck_assert_msg(k == -EINVAL || k == -EOPNOTSUPP, "the NO_DIRECT_MAP bit on a kernel without it gave %d (%s)",
                              k, gmem_last_error());
                ck_assert_ptr_eq(r, SENTINEL_PTR);
        }
        printf("KERNEL %s: no NO_DIRECT_MAP here (%s); the bit is refused: %s\n", test, why, gmem_last_error());
        fflush(stdout);
        return false;
}

static uint32_t guest_reads(struct minivm *vm, uint64_t gpa, uint64_t len) {
        uint32_t h = 0;
        int k = minivm_run_checksum(vm, gpa, len, &h);
        ck_assert_msg(k == 0, "guest run: %s (%s)", strerror(-k), minivm_last_exit(vm, 0));
        return h;
}

/* The region holds want; a dump writes its backed pages (resident bytes) and leaves holes. */
static void expect_dump(struct gmem_region *r, const uint8_t *want) {
        int out = gmem_test_temp_file();
        uint64_t resident = 0;
        uint8_t *back;

        ck_assert_int_eq(gmem_region_resident(r, 0, SIZE, &resident), 0);
        ck_assert_int_eq(gmem_dump_fd(r, 0, SIZE, out, 0, NULL), (int64_t) resident);
        back = gmem_test_read_fd(out, 0, SIZE);
        ck_assert_mem_eq(back, want, SIZE);
        free(back);
        close(out);
}

START_TEST(no_direct_map_guest_populated_by_gmemd) {
        struct gmem_test_daemon d;
        struct gmem_client *c = NULL;
        struct gmem_region *r = NULL;
        struct minivm *vm = NULL;
        struct gmem_caps caps;
        uint64_t flags, resident = 0;
        uint8_t *data, *back;
        void *addr = NULL;
        int image, out;

        REQUIRE_KVM();
        if (!no_direct_map_flags(__func__, &flags, &caps))
                return;

        /* the VMM: its VM and its guest memory, out of the direct map */
        ck_assert_int_eq(minivm_new(&vm), 0);
        ck_assert_msg(gmem_region_new_guest_memfd(minivm_vm_fd(vm), SIZE, flags, &r) == 0, "%s", gmem_last_error());
        ck_assert_uint_eq(gmem_region_flags(r), flags);
        /* what NO_DIRECT_MAP does, seen from here: the kernel will not pin its pages (GUP), which
         * MADV_POPULATE_WRITE needs; the user mapping is the only way in */
        ck_assert_int_eq(gmem_region_map(r, &addr), 0);
        ck_assert_msg(madvise(addr, PS, MADV_POPULATE_WRITE) < 0, "MADV_POPULATE_WRITE pinned a NO_DIRECT_MAP page");

        /* gmemd takes custody and fills it from an image, through its own mapping */
        gmem_test_daemon_start(&d, NULL);
        ck_assert_int_eq(gmem_client_connect(d.socket, &c), 0);
        ck_assert_msg(gmem_client_register(c, "nodm", r) == 0, "%s", gmem_last_error());
        image = gmem_test_random_file(SIZE, 99, (void **) &data);
        ck_assert_msg(gmem_client_populate_fd(c, "nodm", 0, image, 0, SIZE) == 0, "%s", gmem_last_error());

        /* the guest reads exactly the image */
        ck_assert_msg(gmem_kvm_bind(minivm_vm_fd(vm), SLOT, GPA, r, 0, SIZE) == 0, "%s", gmem_last_error());
        ck_assert_uint_eq(guest_reads(vm, GPA, SIZE), minivm_checksum_host(data, SIZE));

        /* dump, by gmemd and in-process */
        out = gmem_test_temp_file();
        ck_assert_int_eq(gmem_client_dump_fd(c, "nodm", 0, SIZE, out, 0), SIZE);
        back = gmem_test_read_fd(out, 0, SIZE);
        ck_assert_mem_eq(back, data, SIZE);
        free(back);
        close(out);
        expect_dump(r, data);

        /* punch a page through gmemd and a MiB here: the guest sees zeroes there, and only there */
        ck_assert_int_eq(gmem_client_punch(c, "nodm", SIZE / 2, PS), 0);
        memset(data + SIZE / 2, 0, PS);
        ck_assert_int_eq(gmem_punch_hole(r, 0, 1u << 20), 0);
        memset(data, 0, 1u << 20);
        ck_assert_int_eq(gmem_region_resident(r, 0, SIZE, &resident), 0);
        ck_assert_uint_eq(resident, SIZE - (1u << 20) - PS);
        expect_dump(r, data);
        ck_assert_uint_eq(guest_reads(vm, GPA, SIZE), minivm_checksum_host(data, SIZE));

        /* prefault brings back every page punched again (by touch, GUP being refused), content
         * unchanged */
        ck_assert_int_eq(gmem_punch_hole(r, 0, 1u << 20), 0);
        ck_assert_int_eq(gmem_region_resident(r, 0, SIZE, &resident), 0);
        ck_assert_uint_le(resident, SIZE - (1u << 20));
        ck_assert_msg(gmem_prefault(r, 0, SIZE, NULL) == 0, "%s", gmem_last_error());
        ck_assert_int_eq(gmem_region_resident(r, 0, SIZE, &resident), 0);
        ck_assert_uint_eq(resident, SIZE);
        expect_dump(r, data);
        ck_assert_uint_eq(guest_reads(vm, GPA, SIZE), minivm_checksum_host(data, SIZE));

        ck_assert_int_eq(gmem_client_release(c, "nodm"), 0);
        gmem_client_free(c);
        gmem_test_daemon_stop(&d);
        gmem_region_free(r);
        minivm_free(vm);
        close(image);
        free(data);
}
END_TEST

START_TEST(no_direct_map_write_path) {
        /* The write() series' populate path on memory out of the direct map: half the region
         * through write(), half through the mapping; the guest and a dump see both halves. */
        const struct gmem_populate_opts via_write = { .flags = GMEM_POPULATE_VIA_WRITE },
                                        via_map = { .flags = GMEM_POPULATE_VIA_MAPPING };
        struct gmem_region *r = NULL;
        struct minivm *vm = NULL;
        struct gmem_caps caps;
        uint64_t flags;
        uint8_t *data;
        int src;

        REQUIRE_KVM();
        if (!no_direct_map_flags(__func__, &flags, &caps))
                return;
        ck_assert_int_eq(minivm_new(&vm), 0);
        if (!caps.gmem_write || !caps.flag_write) {
                /* no write() here: asking for it is refused, the mapping still works */
                ck_assert_int_eq(gmem_region_new_guest_memfd(minivm_vm_fd(vm), SIZE, flags, &r), 0);
                gmem_test_fill((data = malloc(PS)), PS, 1);
                EXPECT_FAIL(gmem_populate_buf(r, 0, data, PS, &via_write), EOPNOTSUPP, "write()");
                ck_assert_int_eq(gmem_populate_buf(r, 0, data, PS, &via_map), PS);
                printf("KERNEL %s: NO_DIRECT_MAP without a guest_memfd write() path here\n", __func__);
                goto out;
        }
        ck_assert_msg(gmem_region_new_guest_memfd(minivm_vm_fd(vm), SIZE, flags, &r) == 0, "%s", gmem_last_error());
        src = gmem_test_random_file(SIZE, 7, (void **) &data);
        ck_assert_int_eq(gmem_populate_fd(r, 0, src, 0, SIZE / 2, &via_write), SIZE / 2);
        ck_assert_int_eq(gmem_populate_buf(r, SIZE / 2, data + SIZE / 2, SIZE / 4, &via_write), SIZE / 4);
        ck_assert_int_eq(gmem_populate_fd(r, 3 * (SIZE / 4), src, 3 * (SIZE / 4), SIZE / 4, &via_map), SIZE / 4);
        expect_dump(r, data);
        ck_assert_msg(gmem_kvm_bind(minivm_vm_fd(vm), SLOT, GPA, r, 0, SIZE) == 0, "%s", gmem_last_error());
        ck_assert_uint_eq(guest_reads(vm, GPA, SIZE), minivm_checksum_host(data, SIZE));
        /* and the default path, whichever libgmem prefers for each source, gives the same */
        gmem_test_fill(data, SIZE / 2, 8);
        ck_assert_int_eq(gmem_populate_buf(r, 0, data, SIZE / 2, NULL), SIZE / 2);
        ck_assert_int_eq(gmem_populate_fd(r, SIZE / 2, src, SIZE / 2, SIZE / 2, NULL), SIZE / 2);
        expect_dump(r, data);
        ck_assert_uint_eq(guest_reads(vm, GPA, SIZE), minivm_checksum_host(data, SIZE));
        close(src);
out:
        free(data);
        gmem_region_free(r);
        minivm_free(vm);
}
END_TEST

int main(void) {
        Suite *s = suite_create("no-direct-map");
        TCase *tc = tcase_create("guest");

        tcase_set_timeout(tc, 300);
        tcase_add_test(tc, no_direct_map_guest_populated_by_gmemd);
        tcase_add_test(tc, no_direct_map_write_path);
        suite_add_tcase(s, tc);
        return gmem_test_main(s);
}
