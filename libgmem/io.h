/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdint.h>

/* pread() exactly len bytes at off into dst: -ENODATA when the file ends first; with what, a
 * fault on dst (a page private to the guest) is -EACCES naming it. */
int gmem_read_full(int fd, uint8_t *dst, uint64_t len, uint64_t off, const char *what);
/* pwrite() exactly len bytes at off; *ret_put (if given) gets how many went in before a failure. */
int gmem_write_full(int fd, const uint8_t *src, uint64_t len, uint64_t off, const char *what, uint64_t *ret_put);
