/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* userfaultfd names newer than the oldest headers we build with (Debian 12's are 6.1's). */
#pragma once

#include <linux/userfaultfd.h>

#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif
#ifndef UFFDIO_REGISTER_MODE_MINOR
#define UFFDIO_REGISTER_MODE_MINOR ((__u64) 1 << 2)
#endif
