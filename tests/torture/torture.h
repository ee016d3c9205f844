/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * gmem-torture: model-based, randomised, reproducible by seed. A reference model of every byte of
 * every region (a tag per 4 KiB page: its content is made from the tag) is held beside a real
 * gmemd; random sequences of operations run against both, and after every step every byte the
 * model knows is compared, a page at a time. A failure prints the seed and a shrunk sequence that
 * reproduces it. See tests/torture.sh for the host it runs on (memory pressure, systemd).
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "gmem/gmem.h"
#include "enum-count.h"
#include "macro.h"

#define T_REGIONS_MAX 8
#define T_SNAPS_MAX 6
#define T_PAGE 4096u

/* One region as the model has it. */
struct mregion {
        bool live;
        char name[40];
        enum gmem_backend backend;
        uint64_t size;
        uint64_t unit;           /* what a punch or prefault must be aligned to */
        uint64_t *tags;          /* per 4 KiB page: 0 reads as zeroes, else page_content(tag) */
        int fd;                  /* ours, from `open` (or the guest_memfd we made) */
        uint8_t *map;            /* our shared mapping of it */
        struct gmem_region *own; /* a guest_memfd we made and registered */
};

/* A snapshot file and what it must restore to. */
struct msnap {
        bool live;
        int fd;
        uint64_t size;
        enum gmem_backend backend;
        uint64_t *tags;
        bool damaged;            /* altered since: a restore must fail, or give exactly tags */
        bool must_fail;          /* damaged where the model knows data is: a restore must fail */
};

enum op_type {
        OP_CREATE,
        OP_WRITE,       /* we write pages through our mapping, as a guest would */
        OP_POPULATE,    /* gmemd fills a range from a file */
        OP_PUNCH,
        OP_PREFAULT,
        OP_DUMP,
        OP_SNAPSHOT,
        OP_RESTORE,     /* eager, by gmemd, into a new region */
        OP_LAZY,        /* a lazy restore: our memory served by gmemd while we touch and discard it */
        OP_GRANT,       /* another uid opens it and reads it */
        OP_RELEASE,
        OP_RESTART,     /* gmemd SIGKILLed; systemd brings it back from its fd store */
        OP_DAMAGE,      /* a snapshot file truncated or altered, maybe while gmemd reads it */
        OP_REFUSED,     /* a request that must be refused and change nothing */
        OP_PAGEOUT,     /* the kernel pushes pages of a region out to swap (MADV_PAGEOUT), as a busy host would */
        OP_CONVERT,     /* a range made private and shared again, where a VM type has private memory */
        OP_TYPES,
};

struct op {
        enum op_type type;
        uint64_t a, b, c, d; /* random; read against the state when the op runs */
};

struct torture;
typedef int (*restart_fn)(struct torture *t);

struct torture {
        /* the environment */
        const char *socket;
        const char *restart_cmd;   /* NULL: no restarts here (and why: restart_why) */
        const char *restart_why;
        const char *pid_cmd;       /* how to find gmemd's pid (under systemd), or NULL */
        pid_t gmemd_pid;           /* ours when we started it */
        const char *dir;           /* temporary files */
        unsigned backends;         /* 1 << enum gmem_backend, what this kernel has */
        uid_t other_uid;           /* for grants (root only), 0: none */
        gid_t other_gid;           /* a group it is in besides its own (gmem: to reach the socket), 0: none */
        int vm_fd;                 /* for guest_memfd regions, -1 */
        int conv_vm_fd;            /* a VM with private memory (sw_protected) for conversions, -1 */
        int plain_vm_fd;           /* else a default VM, on which a conversion must be refused; -1 */
        uint64_t gmem_flags;
        bool verbose;
        /* the state */
        struct gmem_client *c;
        struct mregion regions[T_REGIONS_MAX];
        struct msnap snaps[T_SNAPS_MAX];
        uint64_t serial, tag_serial;
        bool restarted;            /* this sequence restarted gmemd */
        /* what was checked */
        uint64_t ops, sequences, pages_checked, bytes_checked, restarts, lazy_faults, refusals, discards, swapped_out;
        uint64_t regions_of[GMEM_BACKEND_COUNT]; /* regions made, by backend */
        /* the failure */
        char failure[1024];
};

/* ---- model.c */
uint64_t rng_next(uint64_t *s);
void page_content(uint64_t tag, uint8_t *dst);
/* a fresh tag for new content */
uint64_t tag_new(struct torture *t);
/* compare len bytes at buf (region offset off) with the model's tags: -1 and t->failure on a
 * difference, naming what */
int check_bytes(struct torture *t, const uint64_t *tags, const uint8_t *buf, uint64_t off, uint64_t len, const char *what);
/* every live region's every byte, and gmemd's list of them */
int check_all(struct torture *t, const char *after);
/* the bytes of a file (a dump) against tags */
int check_file(struct torture *t, int fd, uint64_t file_off, const uint64_t *tags, uint64_t off, uint64_t len, const char *what);
int fail(struct torture *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* a temporary file (unlinked) in t->dir */
int temp_file(struct torture *t);

/* ---- ops.c */
void op_generate(uint64_t *rng, struct op *ret);
int op_run(struct torture *t, const struct op *op);
const char *op_name(enum op_type type);
void op_describe(const struct op *op, char *buf, size_t n);
/* everything released: back to an empty daemon */
int state_reset(struct torture *t);
int reconnect(struct torture *t);

/* ---- lazy.c */
int op_lazy(struct torture *t, const struct op *op);
