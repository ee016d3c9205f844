/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* CRC-32C (Castagnoli) of buf, continuing from crc (0 to start): the SSE4.2 instruction where the
 * CPU has it, a table otherwise. The snapshot format's checksum (docs/snapshot.md). */
uint32_t gmem_crc32c(uint32_t crc, const void *buf, size_t len);
