/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdarg.h>
#include <stdio.h>

#include "log.h"

int log_max_level = LOG_INFO;

void log_msg(int level, const char *fmt, ...) {
        char line[1024];
        va_list ap;

        if (level > log_max_level)
                return;
        va_start(ap, fmt);
        vsnprintf(line, sizeof(line), fmt, ap);
        va_end(ap);
        /* a client's strings quoted in a message must not forge log lines */
        for (char *p = line; *p; p++)
                if ((unsigned char) *p < 0x20 || *p == 0x7f)
                        *p = '?';
        /* one write per line, so lines from threads do not interleave */
        fprintf(stderr, "<%d>%s\n", level, line);
}
