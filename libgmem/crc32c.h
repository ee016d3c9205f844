/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* CRC-32C (Castagnoli) of buf, continuing from crc (0 to start): the SSE4.2 instruction where the
 * CPU has it, a table otherwise. The snapshot format's checksum (docs/snapshot.md). */
uint32_t gmem_crc32c(uint32_t crc, const void *buf, size_t len);
/* Copy len bytes from src to dst and return the CRC-32C of them: one pass over the source. */
uint32_t gmem_crc32c_copy(void *dst, const void *src, size_t len);
