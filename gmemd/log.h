/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gmemd's log: where it goes is found once at start (log_open()):
 *  - the journal (stderr is the stream systemd connected, $JOURNAL_STREAM): native entries with
 *    PRIORITY= and, where the caller knows them, REGION=, CLIENT_UID=, OP=, ERRNO= fields;
 *  - a terminal: plain lines;
 *  - anything else (a file, a pipe, a supervisor that is not systemd): lines with syslog
 *    priority prefixes ("<3>"), which syslog-aware collectors file correctly. */
#pragma once

#include <sys/types.h>
#include <syslog.h>

#include "macro.h"

extern int log_max_level;

/* Picks the target from stderr and the environment; safe to call again (tests). */
void log_open(void);

/* What a message is about, as journal fields; NULL / -1 / 0 leave a field out. */
struct log_about {
        const char *region;
        long long uid;  /* CLIENT_UID=, -1: none */
        const char *op;
        int err;        /* ERRNO= (positive), 0: none */
};

void log_msg(int level, const char *fmt, ...) _printf_(2, 3);
void log_about(int level, const struct log_about *about, const char *fmt, ...) _printf_(3, 4);

#define log_error(...) log_msg(LOG_ERR, __VA_ARGS__)
#define log_warning(...) log_msg(LOG_WARNING, __VA_ARGS__)
#define log_notice(...) log_msg(LOG_NOTICE, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) do { if (log_max_level >= LOG_DEBUG) log_msg(LOG_DEBUG, __VA_ARGS__); } while (0)

/* log_region(LOG_INFO, "create", name, uid, "region '%s' ...", ...) */
#define log_region(level, op_, region_, uid_, ...) \
        log_about(level, &(const struct log_about) { .region = (region_), .uid = (long long) (uid_), .op = (op_) }, __VA_ARGS__)
