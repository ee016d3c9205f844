/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "gmem/gmem.h"
#include "macro.h"

/* Record why a call failed (for gmem_last_error()) and return err, a negative errno:
 *     return gmem_error(-EINVAL, "populate: range %" PRIu64 "+%" PRIu64 " past the end", off, len); */
int gmem_error(int err, const char *fmt, ...) _printf_(2, 3);
/* Put context in front of the message the failing call recorded: "register 'vm1': <message>". */
int gmem_error_wrap(int err, const char *fmt, ...) _printf_(2, 3);
/* Move a message recorded in another thread into this one. */
int gmem_error_set_message(int err, const char *msg);
void gmem_error_clear(void);
