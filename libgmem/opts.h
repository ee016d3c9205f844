/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Option structs that grow (gmem.h: struct gmem_populate_opts, struct gmem_create_opts): each
 * starts with its size, and the library reads what the caller's size covers. The 0.1 structs had
 * no size; their calls live on under the LIBGMEM_0.1 version (compat-0.1.c).
 */
#pragma once

#include <stddef.h>

#include "gmem/gmem.h"

/* Bind impl to the exported name@node ("@@" for the default a new link gets, "@" for an old
 * version kept for programs linked against it). */
#define GMEM_SYMVER(impl, versioned) __asm__(".symver " #impl "," versioned)

/* Copy the caller's struct in (whose first member is its size_t size) into *out of known bytes:
 * size 0 means baseline (the struct as of LIBGMEM_0.2), a size below baseline is refused, and bytes
 * beyond known must be zero (-E2BIG: the caller asked for something this library cannot do).
 * in NULL: all defaults. out->size ends as known. */
int gmem_opts_copy(const void *in, size_t known, size_t baseline, const char *what, void *out);

/* struct gmem_populate_opts in, checked (flags), with the defaults for NULL. */
int gmem_opts_get(const struct gmem_populate_opts *in, const char *what, struct gmem_populate_opts *ret);

/* the 0.2 implementations behind the names in gmem.h */
int64_t gmem_populate_fd_0_2(struct gmem_region *r, uint64_t dst_off, int src_fd, uint64_t src_off, uint64_t len,
                             const struct gmem_populate_opts *opts);
int64_t gmem_populate_buf_0_2(struct gmem_region *r, uint64_t dst_off, const void *buf, uint64_t len,
                              const struct gmem_populate_opts *opts);
int64_t gmem_dump_fd_0_2(struct gmem_region *r, uint64_t off, uint64_t len, int dst_fd, uint64_t dst_off,
                         const struct gmem_populate_opts *opts);
int gmem_prefault_0_2(struct gmem_region *r, uint64_t off, uint64_t len, const struct gmem_populate_opts *opts);
int gmem_client_create_0_2(struct gmem_client *c, const char *name, enum gmem_backend backend, uint64_t size,
                           const struct gmem_create_opts *opts);
