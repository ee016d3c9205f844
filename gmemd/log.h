/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Logging to stderr with syslog priority prefixes ("<3>"), which journald files correctly. */
#pragma once

#include <syslog.h>

#include "macro.h"

extern int log_max_level;

void log_msg(int level, const char *fmt, ...) _printf_(2, 3);

#define log_error(...) log_msg(LOG_ERR, __VA_ARGS__)
#define log_warning(...) log_msg(LOG_WARNING, __VA_ARGS__)
#define log_notice(...) log_msg(LOG_NOTICE, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) do { if (log_max_level >= LOG_DEBUG) log_msg(LOG_DEBUG, __VA_ARGS__); } while (0)
