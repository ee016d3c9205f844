/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The calls of LIBGMEM_0.1 whose option structs had no size field, for programs linked against
 * 0.1: their structs are copied into the sized ones and handed to the 0.2 code. New links get the
 * LIBGMEM_0.2 versions (opts.h); these are never the default. The layouts below are 0.1's, frozen.
 */
#include <stdbool.h>
#include <stdint.h>

#include "macro.h"
#include "opts.h"

struct gmem_populate_opts_0_1 {
        unsigned threads;
        uint64_t chunk_size;
        gmem_progress_fn progress;
        void *userdata;
        const int *cancel;
        unsigned flags;
};

struct gmem_create_opts_0_1 {
        uint64_t page_size;
        bool prefault;
        enum gmem_policy policy;
};

static const struct gmem_populate_opts *populate_opts(const struct gmem_populate_opts_0_1 *in,
                                                      struct gmem_populate_opts *out) {
        if (!in)
                return NULL;
        *out = (struct gmem_populate_opts) {
                .size = sizeof(*out),
                .threads = in->threads,
                .chunk_size = in->chunk_size,
                .progress = in->progress,
                .userdata = in->userdata,
                .cancel = in->cancel,
                .flags = in->flags,
        };
        return out;
}

_public_ int64_t gmem_populate_fd_0_1(struct gmem_region *r, uint64_t dst_off, int src_fd, uint64_t src_off,
                                     uint64_t len, const struct gmem_populate_opts_0_1 *opts) {
        struct gmem_populate_opts o;
        return gmem_populate_fd_0_2(r, dst_off, src_fd, src_off, len, populate_opts(opts, &o));
}

_public_ int64_t gmem_populate_buf_0_1(struct gmem_region *r, uint64_t dst_off, const void *buf, uint64_t len,
                                      const struct gmem_populate_opts_0_1 *opts) {
        struct gmem_populate_opts o;
        return gmem_populate_buf_0_2(r, dst_off, buf, len, populate_opts(opts, &o));
}

_public_ int64_t gmem_dump_fd_0_1(struct gmem_region *r, uint64_t off, uint64_t len, int dst_fd, uint64_t dst_off,
                                 const struct gmem_populate_opts_0_1 *opts) {
        struct gmem_populate_opts o;
        return gmem_dump_fd_0_2(r, off, len, dst_fd, dst_off, populate_opts(opts, &o));
}

_public_ int gmem_prefault_0_1(struct gmem_region *r, uint64_t off, uint64_t len,
                               const struct gmem_populate_opts_0_1 *opts) {
        struct gmem_populate_opts o;
        return gmem_prefault_0_2(r, off, len, populate_opts(opts, &o));
}

_public_ int gmem_client_create_0_1(struct gmem_client *c, const char *name, enum gmem_backend backend, uint64_t size,
                                    const struct gmem_create_opts_0_1 *opts) {
        struct gmem_create_opts o;

        if (!opts)
                return gmem_client_create_0_2(c, name, backend, size, NULL);
        o = (struct gmem_create_opts) {
                .size = sizeof(o),
                .page_size = opts->page_size,
                .prefault = opts->prefault,
                .policy = opts->policy,
        };
        return gmem_client_create_0_2(c, name, backend, size, &o);
}

GMEM_SYMVER(gmem_populate_fd_0_1, "gmem_populate_fd@LIBGMEM_0.1");
GMEM_SYMVER(gmem_populate_buf_0_1, "gmem_populate_buf@LIBGMEM_0.1");
GMEM_SYMVER(gmem_dump_fd_0_1, "gmem_dump_fd@LIBGMEM_0.1");
GMEM_SYMVER(gmem_prefault_0_1, "gmem_prefault@LIBGMEM_0.1");
GMEM_SYMVER(gmem_client_create_0_1, "gmem_client_create@LIBGMEM_0.1");
