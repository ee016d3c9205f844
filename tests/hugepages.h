/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Free 2 MiB huge pages on this host, for tests that make hugetlb regions only when the pool has
 * room (0 where the kernel has none or cannot say). Included by path by the tests and the torture
 * harness, which link different helpers. */
#pragma once

#include <stdio.h>

static inline unsigned free_huge_pages(void) {
        unsigned n = 0;
        FILE *f = fopen("/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages", "re");
        if (f) {
                if (fscanf(f, "%u", &n) != 1)
                        n = 0;
                fclose(f);
        }
        return n;
}
