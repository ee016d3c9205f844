/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <fcntl.h>
#include <sys/ioctl.h>

#include "kvm-compat.h"
#include "macro.h"
#include "sysops.h"

static int real_ioctl(int fd, unsigned long request, void *arg) {
        return ioctl(fd, request, arg);
}

static int real_fallocate(int fd, int mode, off_t off, off_t len) {
        return fallocate(fd, mode, off, len);
}

static const struct gmem_sysops real_sysops = {
        .ioctl = real_ioctl,
        .fallocate = real_fallocate,
};

const struct gmem_sysops *gmem_sys = &real_sysops;

void gmem_sysops_set(const struct gmem_sysops *ops) {
        gmem_sys = ops ?: &real_sysops;
}

int gmem_kvm_check_extension(int fd, long cap) {
        int r = gmem_sys->ioctl(fd, KVM_CHECK_EXTENSION, (void *) cap);
        return r < 0 ? negative_errno() : r;
}
