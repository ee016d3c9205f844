/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <inttypes.h>
#include <sys/mman.h>

#include "error.h"
#include "pages.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

int region_populate_pages(struct gmem_region *r, uint8_t *addr, uint64_t off, uint64_t len) {
        uint64_t ps = page_size(), start = align_down(off, ps), end = align_up(off + len, ps);

        if (__atomic_load_n(&r->gup_refused, __ATOMIC_RELAXED))
                return 1;
        for (;;) {
                if (madvise(addr + start, end - start, MADV_POPULATE_WRITE) == 0)
                        return 0;
                switch (errno) {
                case EINTR:
                        continue;
                case EINVAL:
                        __atomic_store_n(&r->gup_refused, 1, __ATOMIC_RELAXED);
                        return 1;
                case EFAULT:
                        return gmem_error(-EACCES, "MADV_POPULATE_WRITE %" PRIu64 "+%" PRIu64
                                          ": the range is private to the guest (or beyond the file)", start, end - start);
                default:
                        return gmem_error(negative_errno(), "MADV_POPULATE_WRITE %" PRIu64 "+%" PRIu64, start, end - start);
                }
        }
}
