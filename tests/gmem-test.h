/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Shared helpers for the Check test programs. */
#pragma once

#include <check.h>
#include <errno.h>
#include <string.h>

#include "error.h" /* gmem_error_clear(): every check sees the message of its own call */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Check has no "skipped": a test that cannot run here says why, is logged for the runner
 * (tests/run-tests.sh counts it as skipped, not passed) and returns. */
void gmem_test_skip(const char *test, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define SKIP_TEST(...) do { gmem_test_skip(__func__, __VA_ARGS__); return; } while (0)
/* Skip unless /dev/kvm is usable: on a machine that has it, these tests must run. */
#define REQUIRE_KVM() do { if (!gmem_test_have_kvm()) SKIP_TEST("/dev/kvm is not usable here"); } while (0)

/* Values a refused call must leave in its ret_* outputs. */
#define SENTINEL_PTR ((void *) (uintptr_t) 0x5a5a5a5a)
#define SENTINEL_U64 UINT64_C(0xa5a5a5a5a5a5a5a5)

/* Run expr: it must fail with exactly -err and leave a message that mentions needle. */
#define EXPECT_FAIL(expr, err, needle) do { \
                gmem_error_clear(); \
                long long _k = (long long) (expr); \
                const char *_m = gmem_last_error(); \
                ck_assert_msg(_k == -(long long) (err), "%s returned %lld (%s), expected -%s (%s); message: '%s'", \
                              #expr, _k, _k < 0 ? strerror((int) -_k) : "success", #err, strerror(err), _m); \
                ck_assert_msg(_m[0] && strstr(_m, (needle)), "%s: message '%s' does not mention '%s'", #expr, _m, \
                              (needle)); \
        } while (0)

bool gmem_test_have_kvm(void);

/* For tests of guest_memfd. A kernel without a mappable, shared guest_memfd on the default VM type
 * (6.1 has no guest_memfd, 6.12 none for default VMs, neither can map one) is not a reason to skip:
 * there the test checks what libgmem promises instead — gmem_region_new_guest_memfd() refuses with
 * -EOPNOTSUPP and a message naming what the kernel lacks, leaving its result alone — says so, and
 * ends. Returns true in that case; false when the kernel has what the test needs. */
bool gmem_test_no_shared_gmem_refused(const char *test);
#define REQUIRE_SHARED_GMEM() do { \
                REQUIRE_KVM(); \
                if (gmem_test_no_shared_gmem_refused(__func__)) \
                        return; \
        } while (0)
/* A fresh VM fd (default type). */
int gmem_test_new_vm(void);
/* Deterministic pseudo-random bytes. */
void gmem_test_fill(void *buf, size_t len, uint64_t seed);
/* An unlinked temporary file holding len pseudo-random bytes; *ret_data (if given) gets a
 * malloc'ed copy of them. */
int gmem_test_random_file(size_t len, uint64_t seed, void **ret_data);
/* The same, as an fd open only for reading. */
int gmem_test_readonly_file(size_t len, uint64_t seed);
/* A thread that reads one byte, then says so: the faulting thread of the userfaultfd tests. */
struct gmem_test_toucher {
        const volatile uint8_t *p;
        volatile bool done;
};
void *gmem_test_touch(void *toucher);
/* An unlinked empty temporary file. */
int gmem_test_temp_file(void);
/* Read a whole fd range into a fresh buffer. */
void *gmem_test_read_fd(int fd, uint64_t off, size_t len);

/* A real gmemd on a socket in a fresh temporary directory, for one test. */
struct gmem_test_daemon {
        pid_t pid;
        char dir[64];
        char socket[100]; /* fits sun_path */
        char config[128];
        char log[128];
};
/* config_json: the daemon's config file content, or NULL for defaults. The socket directory is
 * world-accessible so clients running under other uids can connect. Waits until it answers. */
void gmem_test_daemon_start(struct gmem_test_daemon *d, const char *config_json);
/* The same, gmemd run as the shipped unit runs it: without CAP_SYS_RESOURCE and CAP_SYS_ADMIN,
 * its RLIMIT_NOFILE at nofile. */
void gmem_test_daemon_start_restricted(struct gmem_test_daemon *d, const char *config_json, unsigned nofile);
/* SIGTERM, wait, and check it exited cleanly (status 0); removes the directory. */
void gmem_test_daemon_stop(struct gmem_test_daemon *d);
/* Open fds of a process, from /proc/PID/fd. */
unsigned gmem_test_count_fds(pid_t pid);

/* Run one suite the usual way; returns the process exit status. */
int gmem_test_main(Suite *s);
