/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* errno <-> its name ("EINVAL"): how errors travel in the gmemd protocol. */
#pragma once

#include <errno.h>
#include <string.h>

/* "EINVAL" for -EINVAL or EINVAL; "EIO" for anything unnamed. */
static inline const char *errno_to_name(int err) {
        const char *n = strerrorname_np(err < 0 ? -err : err);
        return n ?: "EIO";
}

/* The positive errno with that name, or 0 when none has it. */
static inline int errno_from_name(const char *name) {
        if (!name)
                return 0;
        for (int e = 1; e < 4096; e++) {
                const char *n = strerrorname_np(e);
                if (n && strcmp(n, name) == 0)
                        return e;
        }
        return 0;
}
