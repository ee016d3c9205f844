/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "error.h"
#include "job.h"
#include "opts.h"
#include "pages.h"
#include "region.h"

struct prefault_ctx {
        struct gmem_region *r;
        uint8_t *map;
        uint64_t off;
};

static int prefault_chunk(void *userdata, uint64_t off, uint64_t len, uint64_t *ret_count) {
        struct prefault_ctx *c = userdata;
        uint64_t start = c->off + off;
        int k = region_populate_pages(c->r, c->map, start, len);

        if (k == 1) {
                /* The kernel refuses GUP here (secretmem, NO_DIRECT_MAP): touch each page, as QEMU
                 * does. Safe: the caller checked no page of the range is private. */
                for (uint64_t p = start; p < start + len; p += c->r->page_size) {
                        volatile uint8_t *b = c->map + p;
                        *b = *b;
                }
                k = 0;
        }
        if (k >= 0)
                *ret_count = len;
        return k;
}

_public_ int gmem_prefault_0_2(struct gmem_region *r, uint64_t off, uint64_t len,
                              const struct gmem_populate_opts *opts_in) {
        struct prefault_ctx c = { .r = r, .off = off };
        struct gmem_populate_opts o;
        struct gmem_job job = { .total = len, .fn = prefault_chunk, .ctx = &c, .opts = &o };
        int k;

        if ((k = gmem_opts_get(opts_in, "prefault", &o)) < 0 ||
            (k = region_check_aligned(r, "prefault", off, len)) < 0 ||
            (k = region_check_shared(r, "prefault", off, len)) < 0 ||
            (k = region_map_for(r, "prefault", &c.map)) < 0)
                return k;
        job.align = r->page_size;
        return gmem_job_run(&job, NULL);
}

GMEM_SYMVER(gmem_prefault_0_2, "gmem_prefault@@LIBGMEM_0.2");
