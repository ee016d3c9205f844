/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <pthread.h>
#include <stdbool.h>

#include "gmem/gmem.h"
#include "rangeset.h"

struct gmem_region {
        enum gmem_backend backend;
        int fd;
        uint64_t size;
        uint64_t flags;          /* guest_memfd creation flags, when known */
        uint64_t page_size;      /* 4 KiB, or the hugetlb page size */
        bool mappable;           /* mmap can succeed (guest_memfd needs MMAP) */
        /* pwrite() on the fd fills the region: a shmem memfd (in the direct map anyway, and its
         * write path allocates pages without faulting or zeroing them), or a guest_memfd on a
         * kernel with the write() series. Never hugetlbfs or secretmem, which have no write(). */
        bool write_syscall;
        void *addr;              /* the shared mapping, NULL until gmem_region_map() */
        /* Learnt on first use and shared by worker threads: the kernel refused GUP
         * (MADV_POPULATE_WRITE gives EINVAL) on this memory: secretmem, NO_DIRECT_MAP. */
        int gup_refused;
        /* Ranges private to the guest: the host must not touch them. Guarded by lock. */
        struct rangeset private;
        pthread_mutex_t lock;
};

/* Common argument checks, each recording a message naming `what`. */
int region_check_range(const struct gmem_region *r, const char *what, uint64_t off, uint64_t len);
int region_check_aligned(const struct gmem_region *r, const char *what, uint64_t off, uint64_t len);
/* -EACCES when any part of [off, off+len) is private to the guest */
int region_check_shared(struct gmem_region *r, const char *what, uint64_t off, uint64_t len);
/* -ENOMEM with a message naming RLIMIT_MEMLOCK when size bytes of memfd_secret would not fit */
int region_check_memlock(const char *what, uint64_t size);
/* Map for the data path, with a message saying why it cannot be mapped. */
int region_map_for(struct gmem_region *r, const char *what, uint8_t **ret_addr);
