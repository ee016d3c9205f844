/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <linux/kvm.h>

#include "gmem-test.h"

void gmem_test_skip(const char *test, const char *fmt, ...) {
        const char *log = getenv("GMEM_TEST_SKIPLOG");
        char reason[512];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(reason, sizeof(reason), fmt, ap);
        va_end(ap);
        printf("SKIP %s: %s\n", test, reason);
        fflush(stdout);
        if (log) {
                FILE *f = fopen(log, "ae");
                if (f) {
                        fprintf(f, "%s: %s\n", test, reason);
                        fclose(f);
                }
        }
}

bool gmem_test_have_kvm(void) {
        int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
        bool ok = fd >= 0 && ioctl(fd, KVM_GET_API_VERSION, 0) == KVM_API_VERSION;
        if (fd >= 0)
                close(fd);
        return ok;
}

int gmem_test_new_vm(void) {
        int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC), vm;
        ck_assert_int_ge(kvm, 0);
        vm = ioctl(kvm, KVM_CREATE_VM, 0);
        ck_assert_msg(vm >= 0, "KVM_CREATE_VM: %m");
        close(kvm);
        return vm;
}

void gmem_test_fill(void *buf, size_t len, uint64_t seed) {
        uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
        uint8_t *p = buf;

        for (size_t i = 0; i < len; i += 8) {
                x ^= x >> 12;
                x ^= x << 25;
                x ^= x >> 27;
                uint64_t v = x * 0x2545F4914F6CDD1Dull;
                memcpy(p + i, &v, len - i < 8 ? len - i : 8);
        }
}

int gmem_test_temp_file(void) {
        const char *dir = getenv("TMPDIR") ?: "/tmp";
        int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
        ck_assert_msg(fd >= 0, "O_TMPFILE in %s: %m", dir);
        return fd;
}

int gmem_test_random_file(size_t len, uint64_t seed, void **ret_data) {
        int fd = gmem_test_temp_file();
        uint8_t *data = malloc(len ? len : 1);
        size_t done = 0;

        ck_assert_ptr_nonnull(data);
        gmem_test_fill(data, len, seed);
        while (done < len) {
                ssize_t n = write(fd, data + done, len - done);
                ck_assert_msg(n > 0, "write temp file: %m");
                done += n;
        }
        if (ret_data)
                *ret_data = data;
        else
                free(data);
        return fd;
}

void *gmem_test_read_fd(int fd, uint64_t off, size_t len) {
        uint8_t *b = malloc(len ? len : 1);
        size_t got = 0;

        ck_assert_ptr_nonnull(b);
        while (got < len) {
                ssize_t n = pread(fd, b + got, len - got, off + got);
                ck_assert_msg(n > 0, "pread: %m");
                got += n;
        }
        return b;
}

int gmem_test_main(Suite *s) {
        SRunner *sr = srunner_create(s);
        int failed;

        srunner_run_all(sr, CK_ENV);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
