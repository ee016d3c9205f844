/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Small helpers shared by libgmem, gmemd and the tools. Header-only; nothing here is exported. */
#pragma once

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define _public_ __attribute__((visibility("default")))
#define _cleanup_(f) __attribute__((cleanup(f)))
#define _unused_ __attribute__((unused))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _fallthrough_ __attribute__((__fallthrough__))

#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))
#define streq(a, b) (strcmp((a), (b)) == 0)
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

#define KiB (UINT64_C(1) << 10)
#define MiB (UINT64_C(1) << 20)
#define GiB (UINT64_C(1) << 30)

static inline int negative_errno(void) {
        /* errno after a failed libc call; never 0, so a failure always reads as one */
        return errno > 0 ? -errno : -EIO;
}

static inline void closep(int *fd) {
        if (*fd >= 0) {
                int saved = errno;
                close(*fd);
                errno = saved;
        }
}
#define _cleanup_close_ _cleanup_(closep)

static inline void fclosep(FILE **f) {
        if (*f)
                fclose(*f);
}
#define _cleanup_fclose_ _cleanup_(fclosep)

static inline void freep(void *p) {
        free(*(void **) p);
}
#define _cleanup_free_ _cleanup_(freep)

/* A NULL-terminated array of malloc'ed strings, and the array: freed (NULL is fine). */
static inline char **strv_free(char **v) {
        for (char **p = v; p && *p; p++)
                free(*p);
        free(v);
        return NULL;
}

/* Hand a cleanup-owned value over: the variable no longer frees it. */
#define TAKE_FD(fd) ({ int _t = (fd); (fd) = -1; _t; })
#define TAKE_PTR(p) ({ __typeof__(p) _t = (p); (p) = NULL; _t; })

static inline int is_power_of_2(uint64_t x) {
        return x && !(x & (x - 1));
}
static inline uint64_t align_down(uint64_t x, uint64_t a) { return x & ~(a - 1); }
/* a must be a power of two; the caller has checked x + a cannot overflow */
static inline uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) & ~(a - 1); }

/* [off, off+len) lies within [0, size) without overflow */
static inline int range_within(uint64_t off, uint64_t len, uint64_t size) {
        return off <= size && len <= size - off;
}

static inline uint64_t page_size(void) {
        return (uint64_t) sysconf(_SC_PAGESIZE);
}

/* The clocks, once: monotonic for intervals and deadlines, realtime for timestamps shown to users. */
static inline uint64_t mono_usec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000 + (uint64_t) ts.tv_nsec / 1000;
}
static inline uint64_t now_usec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t) ts.tv_sec * 1000000 + (uint64_t) ts.tv_nsec / 1000;
}
static inline double mono_sec(void) {
        return (double) mono_usec() / 1e6;
}
static inline int64_t mono_msec(void) {
        return (int64_t) (mono_usec() / 1000);
}

/* Doubly linked lists through an item's prev/next members (systemd's list.h, smaller). Removing
 * an item that is on no list (both NULL, not the head) does nothing. */
#define LIST_PREPEND(head, item)                                                                   \
        do {                                                                                       \
                __typeof__(item) _li = (item);                                                     \
                _li->prev = NULL;                                                                  \
                _li->next = (head);                                                                \
                if (_li->next)                                                                     \
                        _li->next->prev = _li;                                                     \
                (head) = _li;                                                                      \
        } while (0)
#define LIST_REMOVE(head, item)                                                                    \
        do {                                                                                       \
                __typeof__(item) _li = (item);                                                     \
                if (_li->prev)                                                                     \
                        _li->prev->next = _li->next;                                               \
                else if ((head) == _li)                                                            \
                        (head) = _li->next;                                                        \
                if (_li->next)                                                                     \
                        _li->next->prev = _li->prev;                                               \
                _li->prev = _li->next = NULL;                                                      \
        } while (0)
