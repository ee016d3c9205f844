/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Real guests on libgmem regions: a VM whose memory is populated by a *different* process through
 * libgmem, bound as a memslot, and checksummed by a tiny guest program running on a real vCPU.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gmem-test.h"
#include "gmem/gmem.h"
#include "minivm.h"

/* The guest is slow on emulating KVMs (PVM): a few MiB keeps the test quick anywhere. */
#define DATA_SIZE (4u << 20)
#define DATA_GPA 0x100000u
#define DATA_SLOT 1

/* In a child process: adopt a dup of the region's fd and populate it from the file. */
static void populate_in_child(int region_fd, int src_fd, uint64_t len) {
        pid_t pid = fork();
        int status;

        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                struct gmem_region *r = NULL;
                int fd = dup(region_fd);
                if (fd < 0 || gmem_region_adopt(fd, &r) < 0)
                        _exit(10);
                if (gmem_populate_fd(r, 0, src_fd, 0, len, NULL) != (int64_t) len)
                        _exit(11);
                gmem_region_free(r);
                _exit(0);
        }
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "populating child failed: status 0x%x", status);
}

static uint32_t guest_checksum(struct minivm *vm, uint64_t len) {
        uint32_t hash = 0;
        int k = minivm_run_checksum(vm, DATA_GPA, len, &hash);
        ck_assert_msg(k == 0, "guest run: %s (%s)", strerror(-k), minivm_last_exit(vm, 0));
        return hash;
}

static void run_guest_on(struct gmem_region *r, struct minivm *vm, bool child_populates) {
        uint8_t *data;
        int src = gmem_test_random_file(DATA_SIZE, 42, (void **) &data);
        uint64_t ps = gmem_region_page_size(r);
        int k;

        if (child_populates)
                populate_in_child(gmem_region_fd(r), src, DATA_SIZE);
        else
                ck_assert_int_eq(gmem_populate_fd(r, 0, src, 0, DATA_SIZE, NULL), DATA_SIZE);

        k = gmem_kvm_bind(minivm_vm_fd(vm), DATA_SLOT, DATA_GPA, r, 0, gmem_region_size(r));
        ck_assert_msg(k == 0, "bind: %s", gmem_last_error());
        ck_assert_uint_eq(guest_checksum(vm, DATA_SIZE), minivm_checksum_host(data, DATA_SIZE));

        /* discard one page in the middle: the guest must now see zeroes there, and only there */
        if (gmem_region_backend(r) != GMEM_BACKEND_SECRET) {
                uint64_t at = DATA_SIZE / 2;
                ck_assert_int_eq(gmem_punch_hole(r, at, ps), 0);
                memset(data + at, 0, ps);
                ck_assert_uint_eq(guest_checksum(vm, DATA_SIZE), minivm_checksum_host(data, DATA_SIZE));
        }
        free(data);
        close(src);
}

START_TEST(guest_memfd_populated_by_another_process) {
        struct gmem_region *r = NULL;
        struct minivm *vm = NULL;
        int k;

        REQUIRE_SHARED_GMEM();
        ck_assert_int_eq(minivm_new(&vm), 0);
        k = gmem_region_new_guest_memfd(minivm_vm_fd(vm), DATA_SIZE,
                                        GMEM_GUEST_MEMFD_FLAG_MMAP | GMEM_GUEST_MEMFD_FLAG_INIT_SHARED, &r);
        ck_assert_msg(k == 0, "create guest_memfd: %s", gmem_last_error());
        run_guest_on(r, vm, true);
        gmem_region_free(r);
        minivm_free(vm);
}
END_TEST

START_TEST(guest_memfd_outlives_vm_fd_in_another_process) {
        /* The custody model's premise: a holder's dup keeps guest memory alive and usable. */
        struct gmem_region *r = NULL, *held = NULL;
        struct minivm *vm = NULL;
        uint8_t buf[4096], *back;
        int fd;

        REQUIRE_SHARED_GMEM();
        ck_assert_int_eq(minivm_new(&vm), 0);
        ck_assert_int_eq(gmem_region_new_guest_memfd(minivm_vm_fd(vm), 1 << 20,
                                                     GMEM_GUEST_MEMFD_FLAG_MMAP | GMEM_GUEST_MEMFD_FLAG_INIT_SHARED, &r), 0);
        fd = dup(gmem_region_fd(r));
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(gmem_region_adopt(fd, &held), 0);
        ck_assert_int_eq(gmem_region_backend(held), GMEM_BACKEND_GUEST_MEMFD);
        gmem_region_free(r);
        minivm_free(vm);

        gmem_test_fill(buf, sizeof(buf), 7);
        ck_assert_int_eq(gmem_populate_buf(held, 4096, buf, sizeof(buf), NULL), sizeof(buf));
        int out = gmem_test_temp_file();
        ck_assert_int_ge(gmem_dump_fd(held, 4096, sizeof(buf), out, 0, NULL), sizeof(buf));
        back = gmem_test_read_fd(out, 0, sizeof(buf));
        ck_assert_mem_eq(back, buf, sizeof(buf));
        free(back);
        close(out);
        gmem_region_free(held);
}
END_TEST

static void memfd_family_guest(enum gmem_backend b) {
        struct gmem_region *r = NULL;
        struct minivm *vm = NULL;
        int k;

        ck_assert_int_eq(minivm_new(&vm), 0);
        k = gmem_region_new_memfd(b, DATA_SIZE, &r);
        if (b == GMEM_BACKEND_HUGETLB && k == -ENOMEM)
                SKIP_TEST("%s", gmem_last_error());
        if (b == GMEM_BACKEND_SECRET && (k == -ENOSYS || k == -EPERM))
                SKIP_TEST("memfd_secret unavailable: %s", gmem_last_error());
        ck_assert_msg(k == 0, "create %s: %s", gmem_backend_to_string(b), gmem_last_error());
        if (b == GMEM_BACKEND_SECRET && gmem_kernel_has(GMEM_FEATURE_SECRET_MEMSLOT) == 0) {
                /* Upstream KVM cannot pin secretmem pages (KVM_RUN: EFAULT): the bind says so, up front */
                uint8_t page[4096];
                gmem_test_fill(page, sizeof(page), 5);
                ck_assert_int_eq(gmem_populate_buf(r, 0, page, sizeof(page), NULL), (int64_t) sizeof(page));
                EXPECT_FAIL(gmem_kvm_bind(minivm_vm_fd(vm), DATA_SLOT, DATA_GPA, r, 0, gmem_region_size(r)),
                            EOPNOTSUPP, "memfd_secret");
                /* nothing was bound: the slot is still free for memory KVM can use */
                gmem_region_free(r);
                ck_assert_int_eq(gmem_region_new_memfd(GMEM_BACKEND_MEMFD, DATA_SIZE, &r), 0);
                printf("KERNEL %s: KVM cannot run guests from memfd_secret here; the bind refused it, a memfd "
                       "guest ran instead\n", __func__);
        }
        run_guest_on(r, vm, true);
        gmem_region_free(r);
        minivm_free(vm);
}

START_TEST(memfd_guest) {
        REQUIRE_KVM();
        memfd_family_guest(GMEM_BACKEND_MEMFD);
}
END_TEST

START_TEST(secret_guest) {
        /* memfd_secret is this machine's stand-in for memory outside the direct map */
        REQUIRE_KVM();
        memfd_family_guest(GMEM_BACKEND_SECRET);
}
END_TEST

START_TEST(hugetlb_guest) {
        REQUIRE_KVM();
        memfd_family_guest(GMEM_BACKEND_HUGETLB);
}
END_TEST

START_TEST(report_lines_parse) {
        /* the guest's serial report, as minivm_parse_report_line() reads it back */
        const char *report = "vcpu 1 range 4 gpa=0x100000000 len=0xb00000 hash=0x0badf00d\nvcpu 1 done\n";
        static const char *const malformed[] = {
                "vcpu 0 range 1 gpa=0x10 len=0x4 hash=0x100000000\n", /* hash wider than 32 bits */
                "vcpu 0 range 1 gpa=0x1F len=0x4 hash=0x1\n",         /* upper-case hex */
                "vcpu 0 range 1 gpa=0x len=0x4 hash=0x1\n",           /* no digits */
                "vcpu 0 range 99999999999999999999 gpa=0x0 len=0x4 hash=0x1\n", /* overflow */
                "vcpu 0 range 1 gpa=0x10 len=0x4\n",                  /* cut short */
                "vcpu 0 done \n",                                     /* trailing blank */
                "vcpu 16 done\n",                                     /* no such vCPU */
                "VCPU 0 done\n",
                "\n",
        };
        struct minivm_report_line line;
        int k;

        k = minivm_parse_report_line(report, &line);
        ck_assert_int_eq(k, strchr(report, '\n') - report + 1);
        ck_assert(!line.done);
        ck_assert_uint_eq(line.vcpu, 1);
        ck_assert_uint_eq(line.id, 4);
        ck_assert_uint_eq(line.gpa, 0x100000000);
        ck_assert_uint_eq(line.len, 0xb00000);
        ck_assert_uint_eq(line.hash, 0x0badf00d);
        report += k;
        ck_assert_int_eq(minivm_parse_report_line(report, &line), (int) strlen(report));
        ck_assert(line.done);
        ck_assert_uint_eq(line.vcpu, 1);
        ck_assert_int_eq(minivm_parse_report_line(report + strlen(report), &line), -ENODATA);
        ck_assert_int_eq(minivm_parse_report_line("vcpu 0 done", &line), 11); /* the last line may lack its \n */
        for (size_t i = 0; i < sizeof(malformed) / sizeof(malformed[0]); i++)
                ck_assert_msg(minivm_parse_report_line(malformed[i], &line) == -EBADMSG, "accepted: %s", malformed[i]);
}
END_TEST

int main(void) {
        Suite *s = suite_create("guest");
        TCase *tc = tcase_create("kvm");

        tcase_set_timeout(tc, 300);
        tcase_add_test(tc, guest_memfd_populated_by_another_process);
        tcase_add_test(tc, guest_memfd_outlives_vm_fd_in_another_process);
        tcase_add_test(tc, memfd_guest);
        tcase_add_test(tc, secret_guest);
        tcase_add_test(tc, hugetlb_guest);
        suite_add_tcase(s, tc);
        tc = tcase_create("report");
        tcase_add_test(tc, report_lines_parse);
        suite_add_tcase(s, tc);
        return gmem_test_main(s);
}
