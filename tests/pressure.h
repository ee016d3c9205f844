/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Memory pressure, for tests that must see guest memory in swap: a zram swap device of the test's
 * own and a memory cgroup whose limit pushes its members' pages out to it. Root only; whatever is
 * made is undone by gmem_pressure_end() (the cgroup's limit lifted first, so that swapoff can
 * bring its pages back). Both cgroup hierarchies work: v1's memory controller (with swap
 * accounting) or a cgroup2 with the memory controller.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct gmem_pressure {
        bool active;
        bool v2;
        int zram;               /* the zram device's number we added, -1 for none */
        char swapdev[32];       /* /dev/zramN, swapped on */
        char cgroup[256];       /* our memory cgroup's directory */
        char parent[256];       /* where its members go back to */
};

/* Set up (limit: the cgroup's memory limit, swap: the zram device's size): 0, or -errno with the
 * reason in reason[] (the caller skips with it). */
int gmem_pressure_begin(struct gmem_pressure *p, uint64_t limit, uint64_t swap, char *reason, size_t reason_len);
/* Put pid (0: the caller) into the cgroup: its new pages count against the limit. */
int gmem_pressure_enter(const struct gmem_pressure *p, pid_t pid);
/* Take pid (0: the caller) out again: the pages it charged stay the cgroup's (in v1; in v2 they
 * do too), and what it touches from now on is not held to the limit — a test that writes guest
 * memory under pressure, then reads it back into files of its own, is not killed for its page
 * cache. */
int gmem_pressure_leave(const struct gmem_pressure *p, pid_t pid);
/* Bytes of the test's memory in swap now (the cgroup's own count), or -1. */
int64_t gmem_pressure_swapped(const struct gmem_pressure *p);
void gmem_pressure_end(struct gmem_pressure *p);
