/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <systemd/sd-journal.h>

#include "log.h"

int log_max_level = LOG_INFO;

static enum { TARGET_PREFIXED, TARGET_TERMINAL, TARGET_JOURNAL } target = TARGET_PREFIXED;

/* systemd's rule: stderr is the journal's stream when $JOURNAL_STREAM names its device and inode
 * (a stderr redirected elsewhere by the service no longer matches). */
static int stderr_is_journal(void) {
        const char *e = getenv("JOURNAL_STREAM");
        unsigned long long dev, ino;
        struct stat st;

        if (!e || sscanf(e, "%llu:%llu", &dev, &ino) != 2 || fstat(STDERR_FILENO, &st) < 0)
                return 0;
        return (unsigned long long) st.st_dev == dev && (unsigned long long) st.st_ino == ino;
}

void log_open(void) {
        if (stderr_is_journal())
                target = TARGET_JOURNAL;
        else if (isatty(STDERR_FILENO))
                target = TARGET_TERMINAL;
        else
                target = TARGET_PREFIXED;
}

static void emit(int level, const struct log_about *a, const char *fmt, va_list ap) _printf_(3, 0);
static void emit(int level, const struct log_about *a, const char *fmt, va_list ap) {
        char line[1024];

        if (level > log_max_level)
                return;
        vsnprintf(line, sizeof(line), fmt, ap);
        /* a client's strings quoted in a message must not forge log lines (or journal fields) */
        for (char *p = line; *p; p++)
                if ((unsigned char) *p < 0x20 || *p == 0x7f)
                        *p = '?';
        if (target == TARGET_JOURNAL) {
                char f[6][320];
                struct iovec iov[8];
                int n = 0;

#define FIELD(...) do { \
                int l_ = snprintf(f[n], sizeof(f[n]), __VA_ARGS__); \
                iov[n] = (struct iovec) { f[n], (size_t) (l_ < (int) sizeof(f[n]) ? l_ : (int) sizeof(f[n]) - 1) }; \
                n++; \
        } while (0)
                FIELD("PRIORITY=%d", level);
                FIELD("SYSLOG_IDENTIFIER=gmemd");
                if (a && a->region)
                        FIELD("REGION=%s", a->region);
                if (a && a->uid >= 0)
                        FIELD("CLIENT_UID=%lld", a->uid);
                if (a && a->op)
                        FIELD("OP=%s", a->op);
                if (a && a->err > 0)
                        FIELD("ERRNO=%d", a->err);
#undef FIELD
                {
                        char msg[sizeof(line) + 8];
                        int l = snprintf(msg, sizeof(msg), "MESSAGE=%s", line);
                        iov[n++] = (struct iovec) { msg, (size_t) l };
                        if (sd_journal_sendv(iov, n) >= 0)
                                return;
                }
                /* the journal is gone: the stream still reaches it, or whoever has it now */
        }
        if (target == TARGET_TERMINAL)
                fprintf(stderr, "%s\n", line); /* one write per line: threads do not interleave */
        else
                fprintf(stderr, "<%d>%s\n", level, line);
}

void log_msg(int level, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        emit(level, NULL, fmt, ap);
        va_end(ap);
}

void log_about(int level, const struct log_about *about, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        emit(level, about, fmt, ap);
        va_end(ap);
}
