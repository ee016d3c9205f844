/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "gmem/gmem.h"
#include "error.h"

/* One message per thread: libgmem calls are often made from several threads at once. */
static __thread char last_error[512];

int gmem_error(int err, const char *fmt, ...) {
        va_list ap;
        int n;

        va_start(ap, fmt);
        n = vsnprintf(last_error, sizeof(last_error), fmt, ap);
        va_end(ap);
        /* end every message with the errno's own words, once */
        if (n >= 0 && (size_t) n < sizeof(last_error) && err < 0)
                snprintf(last_error + n, sizeof(last_error) - n, ": %s", strerror(-err));
        return err;
}

int gmem_error_wrap(int err, const char *fmt, ...) {
        char inner[sizeof(last_error)], prefix[256];
        va_list ap;

        snprintf(inner, sizeof(inner), "%s", last_error);
        va_start(ap, fmt);
        vsnprintf(prefix, sizeof(prefix), fmt, ap);
        va_end(ap);
        const char *rest = inner[0] ? inner : strerror(err < 0 ? -err : err);
        size_t plen = strlen(prefix); /* under half the buffer, so the room below is positive */
        size_t rlen = MIN(strlen(rest), sizeof(last_error) - 1 - plen - 2);

        memcpy(last_error, prefix, plen);
        memcpy(last_error + plen, ": ", 2);
        memcpy(last_error + plen + 2, rest, rlen);
        last_error[plen + 2 + rlen] = 0;
        return err;
}

int gmem_error_set_message(int err, const char *msg) {
        snprintf(last_error, sizeof(last_error), "%s", msg ?: "");
        return err;
}

void gmem_error_clear(void) {
        last_error[0] = 0;
}

_public_ const char *gmem_version(void) {
        return GMEM_VERSION_STRING;
}

_public_ const char *gmem_last_error(void) {
        return last_error;
}
