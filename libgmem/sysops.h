/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The KVM and fallocate calls libgmem makes, behind one table so a test can stand in for what this
 * kernel cannot do (memory attributes on a VM type it lacks) and check the bookkeeping above it.
 * Production code never replaces it.
 */
#pragma once

#include <sys/types.h>

struct gmem_sysops {
        int (*ioctl)(int fd, unsigned long request, void *arg); /* -1 and errno, like libc */
        int (*fallocate)(int fd, int mode, off_t off, off_t len);
};

extern const struct gmem_sysops *gmem_sys;

/* Tests only: NULL restores the real calls. */
void gmem_sysops_set(const struct gmem_sysops *ops);

/* KVM_CHECK_EXTENSION on fd (the /dev/kvm or a VM fd); a negative errno on failure. */
int gmem_kvm_check_extension(int fd, long cap);
