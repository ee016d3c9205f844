/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* userfaultfd names newer than the oldest headers we build with (Debian 12's are 6.1's), and
 * whether an fd is a userfaultfd. */
#pragma once

#include <linux/userfaultfd.h>

#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif
#ifndef UFFDIO_REGISTER_MODE_MINOR
#define UFFDIO_REGISTER_MODE_MINOR ((__u64) 1 << 2)
#endif

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Is fd a userfaultfd (and nothing else: its events are what a page server acts on)? */
static inline bool fd_is_userfaultfd(int fd) {
        char link[64], target[64];
        ssize_t n;

        snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
        n = readlink(link, target, sizeof(target) - 1);
        if (n < 0)
                return false;
        target[n] = 0;
        return strcmp(target, "anon_inode:[userfaultfd]") == 0;
}
