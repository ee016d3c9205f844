/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The ABI that can grow (LIBGMEM_0.2): the opaque host caps against the frozen 0.1 struct on this
 * kernel, the kernel profile as an explicit argument (the environment read only where a caller
 * asks), option structs with a size, and the enum names. Old programs against the 0.1 symbols:
 * tests/check-abi.sh.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "enum-count.h"
#include "gmem-cleanup.h"
#include "gmem-test.h"
#include "gmem/gmem.h"

#define PS 4096

/* Every getter says what the 0.1 struct of the same probe says. */
START_TEST(host_caps_agree_with_0_1) {
        _cleanup_(gmem_host_caps_freep) struct gmem_host_caps *h = NULL;
        _cleanup_free_ char *j1 = NULL, *j2 = NULL;
        struct gmem_caps c;
        enum gmem_backend b1, b2;
        uint64_t f1, f2;
        const char *w1, *w2;

        ck_assert_int_eq(gmem_host_caps_new(GMEM_PROFILE_DETECT, &h), 0);
        ck_assert_int_eq(gmem_caps_probe_profile(GMEM_PROFILE_DETECT, &c), 0);

        ck_assert_int_eq(gmem_host_caps_kvm_error(h), c.kvm_error);
        ck_assert_int_eq(gmem_host_caps_kvm_api_version(h), c.kvm_api_version);
        ck_assert_int_eq(gmem_host_caps_guest_memfd(h), c.guest_memfd);
        ck_assert_int_eq(gmem_host_caps_user_memory2(h), c.user_memory2);
        ck_assert_uint_eq(gmem_host_caps_guest_memfd_flags(h), c.guest_memfd_flags);
        ck_assert_uint_eq(gmem_host_caps_flag(h, GMEM_FLAG_MMAP), c.flag_mmap);
        ck_assert_uint_eq(gmem_host_caps_flag(h, GMEM_FLAG_INIT_SHARED), c.flag_init_shared);
        ck_assert_uint_eq(gmem_host_caps_flag(h, GMEM_FLAG_NO_DIRECT_MAP), c.flag_no_direct_map);
        ck_assert_uint_eq(gmem_host_caps_flag(h, GMEM_FLAG_WRITE), c.flag_write);
        ck_assert_uint_eq(gmem_host_caps_flag(h, (enum gmem_flag) GMEM_FLAG_COUNT), 0);
        ck_assert_uint_eq(gmem_host_caps_unknown_flags(h), c.flags_unknown);
        ck_assert_int_eq(gmem_host_caps_guest_memfd_write(h), c.gmem_write);
        ck_assert_uint_eq(gmem_host_caps_vm_types(h), c.vm_types);
        for (unsigned t = 0; t < GMEM_VM_TYPES_MAX; t++)
                ck_assert_uint_eq(gmem_host_caps_memory_attributes(h, t), c.memory_attributes[t]);
        ck_assert_uint_eq(gmem_host_caps_memory_attributes(h, 1000), 0);
        ck_assert_int_eq(gmem_host_caps_has(h, GMEM_FEATURE_INPLACE_CONVERSION), c.inplace_conversion);
        for (int f = 0; f < GMEM_FEATURE_COUNT; f++)
                ck_assert_int_eq(gmem_host_caps_has(h, f), c.kvm_error ? 0 : gmem_kernel_has(f));
        EXPECT_FAIL(gmem_host_caps_has(h, GMEM_FEATURE_COUNT), EINVAL, "feature");
        ck_assert_int_eq(gmem_host_caps_memfd_secret_error(h), c.memfd_secret_error);
        ck_assert_int_eq(gmem_host_caps_memfd_secret_error(h) == 0, c.memfd_secret);
        ck_assert_uint_eq(gmem_host_caps_hugetlb_count(h), c.n_hugetlb);
        for (unsigned i = 0; i < c.n_hugetlb; i++) {
                uint64_t ps = 0, total = 0;
                ck_assert_int_eq(gmem_host_caps_hugetlb(h, i, &ps, &total, NULL), 0);
                ck_assert_uint_eq(ps, c.hugetlb[i].page_size);
                ck_assert_uint_eq(total, c.hugetlb[i].total_pages);
        }
        EXPECT_FAIL(gmem_host_caps_hugetlb(h, c.n_hugetlb, NULL, NULL, NULL), ERANGE, "no huge page pool");
        ck_assert_str_eq(gmem_host_caps_thp(h), c.thp);
        ck_assert_str_eq(gmem_host_caps_shmem_thp(h), c.shmem_thp);
        ck_assert_str_eq(gmem_host_caps_kernel_release(h), c.kernel_release);
        ck_assert_int_eq(gmem_host_caps_profile(h), c.profile);
        ck_assert_int_eq(gmem_host_caps_profile_source(h), GMEM_PROFILE_DETECTED);
        ck_assert_uint_eq(gmem_host_caps_best_guest_memfd_flags(h), gmem_caps_best_guest_memfd_flags(&c));

        ck_assert_int_eq(gmem_host_caps_pick_guest_memory(h, &b1, &f1, &w1), 0);
        ck_assert_int_eq(gmem_caps_pick_guest_memory(&c, &b2, &f2, &w2), 0);
        ck_assert_int_eq(b1, b2);
        ck_assert_uint_eq(f1, f2);
        ck_assert_str_eq(w1, w2);
        /* one JSON for both (the huge page figures are read at probe time; nobody reserves here) */
        ck_assert_int_eq(gmem_host_caps_to_json(h, &j1), 0);
        ck_assert_int_eq(gmem_caps_to_json(&c, &j2), 0);
        ck_assert_str_eq(j1, j2);
        ck_assert_int_eq(gmem_host_caps_refresh(h), 0);
        ck_assert_uint_eq(gmem_host_caps_hugetlb_count(h), c.n_hugetlb);
}
END_TEST

START_TEST(host_caps_null_and_bad_input) {
        struct gmem_host_caps *h = SENTINEL_PTR;
        char *json = SENTINEL_PTR;
        enum gmem_backend b;
        uint64_t flags;

        EXPECT_FAIL(gmem_host_caps_new(GMEM_PROFILE_DETECT, NULL), EINVAL, "NULL");
        EXPECT_FAIL(gmem_host_caps_new(-2, &h), EINVAL, "invalid kernel profile -2");
        EXPECT_FAIL(gmem_host_caps_new(GMEM_PROFILE_COUNT, &h), EINVAL, "invalid kernel profile");
        ck_assert_ptr_eq(h, SENTINEL_PTR);
        ck_assert_ptr_null(gmem_host_caps_free(NULL));
        EXPECT_FAIL(gmem_host_caps_refresh(NULL), EINVAL, "NULL");
        EXPECT_FAIL(gmem_host_caps_to_json(NULL, &json), EINVAL, "NULL");
        ck_assert_ptr_eq(json, SENTINEL_PTR);
        EXPECT_FAIL(gmem_host_caps_pick_guest_memory(NULL, &b, &flags, NULL), EINVAL, "NULL");
        EXPECT_FAIL(gmem_host_caps_hugetlb(NULL, 0, NULL, NULL, NULL), EINVAL, "NULL");
        /* getters of NULL: nothing, never a crash */
        ck_assert_int_eq(gmem_host_caps_kvm_error(NULL), -EINVAL);
        ck_assert(!gmem_host_caps_guest_memfd(NULL));
        ck_assert_uint_eq(gmem_host_caps_flag(NULL, GMEM_FLAG_MMAP), 0);
        ck_assert_uint_eq(gmem_host_caps_best_guest_memfd_flags(NULL), 0);
        ck_assert_uint_eq(gmem_host_caps_hugetlb_count(NULL), 0);
        ck_assert_int_eq(gmem_host_caps_has(NULL, GMEM_FEATURE_SECRET_MEMSLOT), 0);
        ck_assert_ptr_null(gmem_host_caps_kernel_release(NULL));
        ck_assert_ptr_null(gmem_host_caps_thp(NULL));
}
END_TEST

/* The profile is what the caller passes; the environment counts only where the caller asks. */
START_TEST(kernel_profile_explicit_not_from_environment) {
        _cleanup_(gmem_host_caps_freep) struct gmem_host_caps *detected = NULL, *named = NULL;
        struct gmem_caps c;
        int p = 1234;

        ck_assert_int_eq(setenv("GMEM_KERNEL_PROFILE", "write", 1), 0);
        ck_assert_int_eq(gmem_host_caps_new(GMEM_PROFILE_DETECT, &detected), 0);
        ck_assert_int_eq(gmem_host_caps_profile_source(detected), GMEM_PROFILE_DETECTED);
        ck_assert_int_eq(gmem_kernel_profile_from_env(&p), 0);
        ck_assert_int_eq(p, GMEM_PROFILE_WRITE);
        /* 0.1's probe read the environment, and keeps doing so */
        ck_assert_int_eq(gmem_caps_probe(&c), 0);
        ck_assert_int_eq(c.profile, GMEM_PROFILE_WRITE);
        ck_assert_int_eq(c.profile_source, GMEM_PROFILE_EXPLICIT);

        ck_assert_int_eq(setenv("GMEM_KERNEL_PROFILE", "no-such-series", 1), 0);
        p = 1234;
        EXPECT_FAIL(gmem_kernel_profile_from_env(&p), EINVAL, "no-such-series");
        ck_assert_int_eq(p, 1234);
        EXPECT_FAIL(gmem_caps_probe(&c), EINVAL, "GMEM_KERNEL_PROFILE");
        ck_assert_int_eq(unsetenv("GMEM_KERNEL_PROFILE"), 0);
        ck_assert_int_eq(gmem_kernel_profile_from_env(&p), 0);
        ck_assert_int_eq(p, GMEM_PROFILE_DETECT);
        EXPECT_FAIL(gmem_kernel_profile_from_env(NULL), EINVAL, "NULL");

        ck_assert_int_eq(gmem_host_caps_new(GMEM_PROFILE_SECRET_HIDING, &named), 0);
        ck_assert_int_eq(gmem_host_caps_profile(named), GMEM_PROFILE_SECRET_HIDING);
        ck_assert_int_eq(gmem_host_caps_profile_source(named), GMEM_PROFILE_EXPLICIT);
        /* a profile names bits; the kernel's mask says whether they are there */
        ck_assert_uint_eq(gmem_host_caps_flag(named, GMEM_FLAG_NO_DIRECT_MAP) & ~gmem_host_caps_guest_memfd_flags(named), 0);
}
END_TEST

/* Regions made with caps read their flag bits from those caps; NULL caps is the plain call. */
START_TEST(regions_with_caps) {
        _cleanup_(gmem_host_caps_freep) struct gmem_host_caps *h = NULL;
        _cleanup_(gmem_region_freep) struct gmem_region *g = NULL, *m = NULL, *a = NULL;
        int vm, fd;

        REQUIRE_SHARED_GMEM();
        ck_assert_int_eq(gmem_host_caps_new(GMEM_PROFILE_DETECT, &h), 0);
        vm = gmem_test_new_vm();
        ck_assert_int_ge(vm, 0);
        ck_assert_int_eq(gmem_region_new_guest_memfd_caps(h, vm, 4 * PS, gmem_host_caps_best_guest_memfd_flags(h), &g),
                         0);
        ck_assert_uint_eq(gmem_region_flags(g), gmem_host_caps_best_guest_memfd_flags(h));
        fd = dup(gmem_region_fd(g));
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(gmem_region_adopt_guest_memfd_caps(h, fd, gmem_region_flags(g), &a), 0);
        ck_assert_int_eq(gmem_region_backend(a), GMEM_BACKEND_GUEST_MEMFD);
        ck_assert_int_eq(gmem_region_new_memfd(GMEM_BACKEND_MEMFD, 4 * PS, &m), 0);
        fd = dup(gmem_region_fd(m));
        a = gmem_region_free(a);
        ck_assert_int_eq(gmem_region_adopt_caps(NULL, fd, &a), 0);
        ck_assert_int_eq(gmem_region_backend(a), GMEM_BACKEND_MEMFD);
        EXPECT_FAIL(gmem_region_new_guest_memfd_caps(h, -1, 4 * PS, 0, &g), EINVAL, "invalid VM fd");
        close(vm);
}
END_TEST

static int progress_seen(uint64_t done, uint64_t total, void *userdata) {
        (void) done;
        (void) total;
        (*(int *) userdata)++;
        return 0;
}

/* A struct of another size: smaller than any version refused, larger accepted while the bytes this
 * library does not know are zero, size 0 the 0.2 struct. */
START_TEST(option_struct_sizes) {
        _cleanup_(gmem_region_freep) struct gmem_region *r = NULL;
        struct {
                struct gmem_populate_opts o;
                uint64_t future[2];
        } big = { { .size = sizeof(big), .threads = 2 } };
        struct gmem_populate_opts small = { .size = sizeof(size_t) }, zero = { .threads = 1 };
        struct gmem_populate_opts sized = GMEM_POPULATE_OPTS_INIT;
        char buf[2 * PS];
        int calls = 0;

        memset(buf, 0x3c, sizeof(buf));
        ck_assert_int_eq(gmem_region_new_memfd(GMEM_BACKEND_MEMFD, 4 * PS, &r), 0);
        ck_assert_uint_eq(sized.size, sizeof(struct gmem_populate_opts));
        sized.progress = progress_seen;
        sized.userdata = &calls;
        ck_assert_int_eq(gmem_populate_buf(r, 0, buf, sizeof(buf), &sized), (int64_t) sizeof(buf));
        ck_assert_int_gt(calls, 0);
        ck_assert_int_eq(gmem_populate_buf(r, 0, buf, sizeof(buf), &zero), (int64_t) sizeof(buf));
        ck_assert_int_eq(gmem_populate_buf(r, 0, buf, sizeof(buf), &big.o), (int64_t) sizeof(buf));
        ck_assert_int_eq(gmem_prefault(r, 0, 4 * PS, &big.o), 0);
        EXPECT_FAIL(gmem_populate_buf(r, 0, buf, sizeof(buf), &small), EINVAL, "smaller than any version");
        EXPECT_FAIL(gmem_prefault(r, 0, PS, &small), EINVAL, "smaller than any version");
        big.future[1] = 1;
        EXPECT_FAIL(gmem_populate_buf(r, 0, buf, sizeof(buf), &big.o), E2BIG, "does not have");
        EXPECT_FAIL(gmem_dump_fd(r, 0, PS, 1, 0, &big.o), E2BIG, "does not have");
        big.o.size = 1 << 20;
        EXPECT_FAIL(gmem_populate_buf(r, 0, buf, sizeof(buf), &big.o), E2BIG, "not a size");
        struct gmem_create_opts co = GMEM_CREATE_OPTS_INIT;
        ck_assert_uint_eq(co.size, sizeof(co));
        ck_assert_int_eq(co.policy, GMEM_POLICY_KEEP);
}
END_TEST

START_TEST(region_state_strings) {
        enum gmem_region_state s = (enum gmem_region_state) 0x5a;

        ck_assert_str_eq(gmem_region_state_to_string(GMEM_REGION_EMPTY), "empty");
        ck_assert_str_eq(gmem_region_state_to_string(GMEM_REGION_FAILED), "failed");
        ck_assert_ptr_null(gmem_region_state_to_string(GMEM_REGION_STATE_COUNT));
        ck_assert_ptr_null(gmem_region_state_to_string((enum gmem_region_state) -1));
        EXPECT_FAIL(gmem_region_state_from_string("Populated", &s), EINVAL, "empty, populating, populated, failed");
        EXPECT_FAIL(gmem_region_state_from_string(NULL, &s), EINVAL, "NULL");
        EXPECT_FAIL(gmem_region_state_from_string("empty", NULL), EINVAL, "NULL");
        ck_assert_int_eq(s, 0x5a);
        ck_assert_int_eq(gmem_region_state_from_string("populating", &s), 0);
        ck_assert_int_eq(s, GMEM_REGION_POPULATING);
        ck_assert_int_eq(gmem_region_backend(NULL), GMEM_BACKEND_INVALID);
        ck_assert_ptr_null(gmem_backend_to_string(GMEM_BACKEND_INVALID));
}
END_TEST

int main(void) {
        Suite *s = suite_create("abi");
        TCase *tc = tcase_create("abi");

        tcase_set_timeout(tc, 120);
        tcase_add_test(tc, host_caps_agree_with_0_1);
        tcase_add_test(tc, host_caps_null_and_bad_input);
        tcase_add_test(tc, kernel_profile_explicit_not_from_environment);
        tcase_add_test(tc, regions_with_caps);
        tcase_add_test(tc, option_struct_sizes);
        tcase_add_test(tc, region_state_strings);
        suite_add_tcase(s, tc);
        return gmem_test_main(s);
}
