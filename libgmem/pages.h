/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdint.h>

#include "region.h"

/* Allocate the pages of [off, off+len) of the mapped region with MADV_POPULATE_WRITE: 0 when
 * done, 1 when the kernel refuses GUP on this memory (secretmem, NO_DIRECT_MAP: remembered in
 * the region; the caller touches pages instead), -EACCES for pages private to the guest (the
 * kernel says EFAULT where a touch would have raised SIGBUS), another -errno otherwise. */
int region_populate_pages(struct gmem_region *r, uint8_t *addr, uint64_t off, uint64_t len);
