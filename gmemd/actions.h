/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What gmemd does, whoever asks: the socket protocol (ops.c) and D-Bus (dbus.c) parse their
 * requests and call these for the caller's session. Each checks the caller's rights and its input
 * before it changes anything; on failure it returns -errno with the reason in gmem_last_error().
 * A requester passed in is taken, whatever happens.
 */
#pragma once

#include "job.h"
#include "region.h"
#include "session.h"

/* The named, visible region the caller may act on; -ENOENT or -EACCES otherwise. */
int action_lookup(struct daemon *d, const struct peer *p, const char *name, enum access a, const char *what,
                  struct managed **ret);
/* The regions p may see, sorted by name (regions_visible()). */
int action_list(struct daemon *d, const struct peer *p, struct managed ***ret, size_t *ret_n);

struct create_args {
        const char *name;
        enum gmem_backend backend;
        uint64_t size;
        uint64_t page_size;     /* hugetlb only; 0 = 2 MiB */
        enum gmem_policy policy;
        bool prefault;          /* the region stays hidden until the prefault job is done */
        bool restore;           /* fill it from the snapshot in restore_fd (a job; hidden until done) */
        int restore_fd;
        uint64_t charge;        /* restore: the bytes its extent table takes, held by the job */
};
/* With prefault, *ret_job is the job that publishes the region when it is done (rq hears of
 * it); otherwise NULL. */
int action_create(struct daemon *d, struct session *s, const struct create_args *a, struct requester *rq,
                  struct managed **ret, struct job **ret_job);
/* A region made from the snapshot in fd (borrowed: the job gets a dup): of the snapshot's size,
 * with backend INVALID meaning the snapshot's own (memfd for a guest_memfd's, which gmemd cannot
 * create); hidden until the restore job that rq hears of (*ret_job) is done. */
int action_restore(struct daemon *d, struct session *s, const char *name, int fd, enum gmem_backend backend,
                   enum gmem_policy policy, struct requester *rq, struct managed **ret, struct job **ret_job);
/* Serve the VMM's userfaultfd (registered on its mapping of the memory at base) from the snapshot,
 * on a thread of its own until s ends (docs/snapshot.md): a JOB_SERVE whose requester hears of
 * its end. shared: the VMM maps m's file (MINOR faults are filled through it). uffd and
 * snapshot_fd are borrowed (dup'ed). */
int action_serve(struct daemon *d, struct session *s, struct requester *rq, struct managed *m, int uffd,
                 int snapshot_fd, uint64_t base, bool shared, bool prefetch, struct job **ret);
/* A page server job brought back from the fd store (store.c): resumes from state_fd; ends when
 * the VMM (pidfd, may be -1) exits, the region goes or gmemd stops — it has no session. All fds
 * are taken, on failure too. */
int action_serve_resume(struct daemon *d, struct managed *m, int uffd, int snapshot_fd, int state_fd, int pidfd,
                        uint64_t base, bool shared, bool prefetch, uid_t uid, const char *token);
/* A Firecracker VM's page server brought back from the fd store: conn is the VM's connection
 * (its hang-up ends the job), maps its regions (taken). All fds are taken, on failure too. */
int action_firecracker_resume(struct daemon *d, const char *vm, int uffd, int source_fd, int conn, int state_fd,
                              struct gmem_uffd_mapping *maps, size_t n_maps, bool raw, bool prefetch, uid_t uid,
                              const char *token);
/* A page server for a Firecracker VM (docs/snapshot.md): a JOB_FIRECRACKER on no region that
 * waits on listen_fd (a listening unix stream socket) for the VM's handshake and serves it from
 * source_fd (a gmem snapshot, or with raw a memory file) until the VM hangs up — not the
 * requester: it outlives s. Both fds are borrowed (dup'ed). */
#define FIRECRACKER_TIMEOUT_DEFAULT_MS 60000
#define FIRECRACKER_TIMEOUT_MAX_MS (3600 * 1000)
int action_firecracker(struct daemon *d, struct session *s, struct requester *rq, const char *vm, int listen_fd,
                       int source_fd, bool raw, bool prefetch, int timeout_ms, struct job **ret);
/* fd is borrowed: the region gets a dup of it, and the caller closes its own either way.
 * flags_known: flags are the guest_memfd's creation flags. */
int action_register(struct daemon *d, struct session *s, const char *name, int fd,
                    bool flags_known, uint64_t flags, enum gmem_policy policy, struct managed **ret);
/* A new fd (CLOEXEC) for the caller, who becomes a holder. */
int action_open(struct daemon *d, struct session *s, struct managed *m, int *ret_fd);
/* off/len within the region; have_len false: the rest from off (capped at def_len). */
int action_range(const struct managed *m, const char *what, uint64_t off, bool have_len, uint64_t len,
                 uint64_t def_len, uint64_t *ret_len);
/* Start populate/prefault/dump; takes fd (source or destination, -1 for prefault) on success. */
int action_start_job(struct daemon *d, struct session *s, struct requester *rq, enum job_op op, struct managed *m,
                     uint64_t off, uint64_t len, uint64_t fd_off, int fd, struct job **ret);
/* Populate [off, off+len) from src_fd at src_off; without a length, the rest of a regular-file
 * source (clipped to the region). Takes src_fd on success. */
int action_populate(struct daemon *d, struct session *s, struct requester *rq, struct managed *m, uint64_t off,
                    bool have_len, uint64_t len, int src_fd, uint64_t src_off, struct job **ret);
int action_punch(struct daemon *d, struct managed *m, uint64_t off, uint64_t len);
/* release: the region leaves the table (admin rights were checked by the lookup) */
void action_release(struct daemon *d, struct managed *m);
int action_grant(struct daemon *d, const struct peer *p, struct managed *m, bool is_uid, uint64_t id, bool grant);
int action_cancel(struct daemon *d, const struct peer *p, uint64_t job);
/* The host's caps as JSON (malloc'ed): as probed at start, with the huge page pools read again. */
int action_caps(struct daemon *d, char **ret_json);
