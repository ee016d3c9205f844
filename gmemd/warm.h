/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Warm pools (gmemd.json(5) "pools"): regions of a configured backend and size kept ready —
 * allocated too, for prefaulted pools — so that a create or a restore that fits is handed one at
 * once. A thread of its own refills them in the background. Pooled memory counts against the
 * daemon's limits from the start (the config is refused when the pools exceed max_bytes_total)
 * and against a uid's quota once handed out.
 */
#pragma once

#include "daemon.h"

int warm_start(struct daemon *d);
/* NULL-safe; frees what is still pooled. */
void warm_stop(struct daemon *d);
/* A ready region of backend and size (hugetlb: of page_size pages), prefaulted when prefault is
 * asked; NULL when no pool has one. The pool refills behind it. */
struct gmem_region *warm_take(struct daemon *d, enum gmem_backend backend, uint64_t size, uint64_t page_size,
                              bool prefault);
/* {"pools":[{"backend","size","count","prefault","ready"}], "handed_out", "refilled"} for status. */
cJSON *warm_to_json(struct daemon *d);
