/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <fcntl.h>
#include <inttypes.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "actions.h"
#include "protocol.h"
#include "page-server.h"
#include "snapshot.h"
#include "uffd-compat.h"
#include "error.h"
#include "log.h"
#include "notify.h"
#include "warm.h"

int action_lookup(struct daemon *d, const struct peer *p, const char *name, enum access a, const char *what,
                  struct managed **ret) {
        struct managed *m;

        if (!proto_name_valid(name))
                return gmem_error(-EINVAL, "region name '%.80s' must match [A-Za-z0-9._-]{1,64}", name ?: "");
        m = region_find(d, name);
        if (!m || m->hidden)
                return gmem_error(-ENOENT, "no region '%s'", name);
        if (!region_may(p, m, a))
                return gmem_error(-EACCES, "region '%s': uid %d may not %s it (owner uid %d)", name, p->uid, what, m->owner);
        *ret = m;
        return 0;
}

int action_list(struct daemon *d, const struct peer *p, struct managed ***ret, size_t *ret_n) {
        return regions_visible(d, p, ret, ret_n);
}

void action_release(struct daemon *d, struct managed *m) {
        region_release(d, m);
}

static int start_job(struct daemon *d, struct session *s, struct requester *rq, enum job_op op, struct managed *m, uint64_t off,
                     uint64_t len, uint64_t fd_off, int fd, uint64_t charge, struct job **ret);
static int firecracker_charge(int source_fd, bool raw, const char *vm, struct job *j);

/* What a page server over a snapshot of size bytes in n_extents holds: charged to j, and the
 * bounds it opens the snapshot with (it may not have grown since). */
static void serve_hold(struct job *j, uint64_t size, uint64_t n_extents) {
        j->meta_size = size;
        j->meta_extents = n_extents;
        j->charged = page_server_meta_bytes(size, n_extents);
}

/* Are a and b the same open file (one struct file: dups, or passed over a socket)? systemd's fd
 * store keeps one entry of each: a second one stored is dropped, and would not come back. */
static bool same_file(int a, int b) {
        pid_t pid = getpid();
        return syscall(SYS_kcmp, pid, pid, 0 /* KCMP_FILE */, a, b) == 0;
}

/* An open file description of our own for fd (a regular file), read-only: never the same file as
 * the caller's, which may be stored already for another job; a dup where it cannot be reopened.
 * Only for an fd the caller can read through itself: /proc/self/fd reopens with gmemd's rights,
 * and an O_PATH or write-only fd must not become a way to read what its owner may not. -errno. */
static int reopen_readonly(int fd) {
        char path[64], byte;
        int fl = fcntl(fd, F_GETFL), r;

        if (fl < 0)
                return negative_errno();
        if ((fl & O_PATH) || (fl & O_ACCMODE) == O_WRONLY || pread(fd, &byte, 1, 0) < 0) {
                errno = EBADF;
                return -EBADF;
        }
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        r = open(path, O_RDONLY | O_CLOEXEC);
        if (r < 0)
                r = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        return r < 0 ? negative_errno() : r;
}

static int check_new_name(struct daemon *d, const char *name) {
        if (!proto_name_valid(name))
                return gmem_error(-EINVAL, "region name '%.80s' must match [A-Za-z0-9._-]{1,64}", name ?: "");
        if (region_find(d, name))
                return gmem_error(-EEXIST, "region '%s' already exists", name);
        return 0;
}

static int create(struct daemon *d, struct session *s, const struct create_args *a, struct requester **rq,
                  struct managed **ret, struct job **ret_job) {
        const struct peer *p = &s->peer;
        struct gmem_region *r = NULL;
        struct managed *m;
        struct job *j = NULL;
        int k;

        if ((k = check_new_name(d, a->name)) < 0)
                return k;
        if (a->backend == GMEM_BACKEND_GUEST_MEMFD)
                return gmem_error(-EINVAL, "create '%s': a guest_memfd can only be made by its VM's creator: create it "
                                  "in the VMM and register it", a->name);
        if (gmem_backend_to_string(a->backend) == NULL)
                return gmem_error(-EINVAL, "create '%s': invalid backend", a->name);
        if ((k = proto_check_page_size(a->backend, a->page_size != 0)) < 0)
                return gmem_error_wrap(k, "create '%s'", a->name);
        /* every limit before anything is spent: a refusal must not cost a pooled region */
        if ((k = region_admit(d, a->name, a->size, p->uid)) < 0)
                return k;
        if (a->restore && (k = quota_admit(d, p->uid, a->size + a->charge, "restore")) < 0)
                return gmem_error_wrap(k, "restore '%s'", a->name);

        /* a pooled region when one fits: ready at once (allocated too, for a prefaulted pool) */
        r = warm_take(d, a->backend, a->size, a->page_size ?: 2 * MiB, a->prefault);
        if (r && a->prefault && !a->restore) {
                k = region_add(d, a->name, r, p, s, a->policy, "created", false, &m);
                if (k < 0) {
                        gmem_region_free(r);
                        return k;
                }
                log_region(LOG_INFO, "create", a->name, p->uid, "region '%s': handed a prefaulted region from a warm pool", a->name);
                *ret = m;
                if (ret_job)
                        *ret_job = NULL;
                return 0;
        }
        k = r ? 0 : a->backend == GMEM_BACKEND_HUGETLB ? gmem_region_new_hugetlb(a->page_size ?: 2 * MiB, a->size, &r)
                                                       : gmem_region_new_memfd(a->backend, a->size, &r);
        if (k < 0)
                return gmem_error_wrap(k, "create '%s'", a->name);
        k = region_add(d, a->name, r, p, s, a->policy, "created", a->prefault || a->restore, &m);
        if (k < 0) {
                gmem_region_free(r);
                return k;
        }
        if (a->restore) {
                int fd = fcntl(a->restore_fd, F_DUPFD_CLOEXEC, 3);
                if (fd < 0) {
                        k = gmem_error(negative_errno(), "restore '%s': dup", a->name);
                        region_release(d, m);
                        return k;
                }
                k = start_job(d, s, TAKE_PTR(*rq), JOB_RESTORE, m, 0, a->size, 0, fd, a->charge, &j);
                if (k < 0) {
                        close(fd);
                        region_release(d, m);
                        return k;
                }
                j->publish_on_success = true;
        } else if (a->prefault) {
                k = action_start_job(d, s, TAKE_PTR(*rq), JOB_PREFAULT, m, 0, a->size, 0, -1, &j);
                if (k < 0) {
                        region_release(d, m);
                        return k;
                }
                j->publish_on_success = true;
        }
        *ret = m;
        if (ret_job)
                *ret_job = j;
        return 0;
}

int action_create(struct daemon *d, struct session *s, const struct create_args *a, struct requester *rq,
                  struct managed **ret, struct job **ret_job) {
        int k = create(d, s, a, &rq, ret, ret_job);
        if (rq) /* not taken by a job */
                rq->ops->free(rq);
        return k;
}

int action_restore(struct daemon *d, struct session *s, const char *name, int fd, enum gmem_backend backend,
                   enum gmem_policy policy, struct requester *rq, struct managed **ret, struct job **ret_job) {
        struct create_args a = { .name = name, .policy = policy, .restore = true, .restore_fd = fd };
        struct snap_header h;
        int k;

        /* Only the header here (4 KiB, its fields checked): the extent table it describes is read
         * by the restore job on a worker, its size charged to the caller first. */
        if ((k = snapshot_read_header(fd, &h)) >= 0 && h.region_size > d->config.limits.max_bytes_total)
                k = gmem_error(-ENOSPC, "the snapshot is of %" PRIu64 " bytes, beyond the daemon's limit", h.region_size);
        if (k < 0) {
                if (rq)
                        rq->ops->free(rq);
                return gmem_error_wrap(k, "restore '%s'", name);
        }
        a.size = h.region_size;
        a.charge = snapshot_table_bytes(&h);
        a.backend = backend != GMEM_BACKEND_INVALID ? backend : (enum gmem_backend) h.backend;
        if (backend == GMEM_BACKEND_INVALID && a.backend == GMEM_BACKEND_GUEST_MEMFD)
                a.backend = GMEM_BACKEND_MEMFD;
        if (a.backend == GMEM_BACKEND_HUGETLB)
                a.page_size = h.backend == GMEM_BACKEND_HUGETLB ? h.page_size : 2 * MiB;
        return action_create(d, s, &a, rq, ret, ret_job);
}

/* A JOB_SERVE of m's memory at base, for s (NULL: one brought back from the fd store) */
static struct job *serve_job_new(struct daemon *d, struct managed *m, struct session *s, struct requester *rq, uint64_t base,
                                 bool shared, bool prefetch, uid_t uid) {
        struct job *j = job_new(d, JOB_SERVE, m, s, rq);

        if (!j)
                return NULL;
        j->uid = uid;
        j->off = base;
        j->len = gmem_region_size(m->region);
        j->shared = shared;
        j->no_prefetch = !prefetch;
        return j;
}

int action_serve(struct daemon *d, struct session *s, struct requester *rq, struct managed *m, int uffd,
                 int snapshot_fd, uint64_t base, bool shared, bool prefetch, struct job **ret) {
        _cleanup_close_ int u = -1, f = -1;
        uint64_t size = gmem_region_size(m->region);
        struct snap_header h;
        struct job *j;
        int k = 0;

        /* Only the header here: the page server reads the extent table on its own thread, its
         * size and the server's state charged to the caller first. */
        if (!fd_is_userfaultfd(uffd))
                k = gmem_error(-EBADF, "serve '%s': the fd passed is not a userfaultfd", m->name);
        else if ((k = snapshot_read_header(snapshot_fd, &h)) < 0)
                k = gmem_error_wrap(k, "serve '%s'", m->name);
        else if (h.region_size != size)
                k = gmem_error(-EINVAL, "serve '%s': the snapshot has %" PRIu64 " bytes, the region %" PRIu64, m->name, h.region_size,
                               size);
        else if (base % 4096 || base > PROTO_INT_MAX - size)
                k = gmem_error(-EINVAL, "serve '%s': address %#" PRIx64 " is not page aligned or out of range", m->name, base);
        else if ((k = quota_admit(d, s->peer.uid, page_server_meta_bytes(size, h.n_extents), "serve")) < 0)
                k = gmem_error_wrap(k, "serve '%s'", m->name);
        else
                for (struct job *o = d->jobs; o && k == 0; o = o->next) {
                        if (o->op == JOB_SERVE && o->fd2 >= 0 && same_file(o->fd2, uffd))
                                k = gmem_error(-EBUSY, "serve '%s': that userfaultfd is served already (job %" PRIu64 ")", m->name,
                                               o->id);
                        else if (shared && o->op == JOB_SERVE && o->m == m && o->shared)
                                k = gmem_error(-EBUSY, "serve '%s': a page server fills its file already (job %" PRIu64 ")",
                                               m->name, o->id);
                }
        if (k == 0 && (f = reopen_readonly(snapshot_fd)) < 0)
                k = gmem_error(f, "serve '%s': the snapshot's fd is not open for reading", m->name);
        else if (k == 0 && (u = fcntl(uffd, F_DUPFD_CLOEXEC, 3)) < 0)
                k = gmem_error(negative_errno(), "serve '%s': dup", m->name);
        if (k < 0) {
                if (rq)
                        rq->ops->free(rq);
                return k;
        }
        j = serve_job_new(d, m, s, rq, base, shared, prefetch, s->peer.uid);
        if (!j)
                return gmem_error(-ENOMEM, "serve '%s': job", m->name);
        serve_hold(j, size, h.n_extents);
        /* the VMM's process: after a restart of gmemd, its exit is what ends the job */
        j->pidfd = s->peer.pid > 0 ? (int) syscall(SYS_pidfd_open, s->peer.pid, 0) : -1;
        if (j->pidfd >= 0)
                (void) fcntl(j->pidfd, F_SETFD, FD_CLOEXEC);
        j->fd = TAKE_FD(f);
        j->fd2 = TAKE_FD(u);
        k = job_submit(d, j);
        if (k < 0) {
                job_discard(d, j); /* closes the dups */
                return gmem_error_wrap(k, "serve '%s'", m->name);
        }
        if (ret)
                *ret = j;
        return 0;
}

int action_serve_resume(struct daemon *d, struct managed *m, int uffd, int snapshot_fd, int state_fd, int pidfd,
                        uint64_t base, bool shared, bool prefetch, uid_t uid, const char *token) {
        struct snap_header h;
        struct job *j;
        int k;

        if (!fd_is_userfaultfd(uffd) || base % 4096 || base > PROTO_INT_MAX - gmem_region_size(m->region)) {
                k = gmem_error(-EBADF, "resume serving '%s': not a userfaultfd, or a bad address", m->name);
                goto fail;
        }
        if ((k = snapshot_read_header(snapshot_fd, &h)) < 0) {
                k = gmem_error_wrap(k, "resume serving '%s'", m->name);
                goto fail;
        }
        j = serve_job_new(d, m, NULL, NULL, base, shared, prefetch, uid);
        if (!j) {
                k = gmem_error(-ENOMEM, "resume serving '%s': job", m->name);
                goto fail;
        }
        /* held as before the restart, counted as before */
        serve_hold(j, h.region_size, h.n_extents);
        j->fd = snapshot_fd;
        j->fd2 = uffd;
        j->pidfd = pidfd;
        j->resume_fd = state_fd;
        snprintf(j->token, sizeof(j->token), "%s", token);
        if ((k = job_submit(d, j)) < 0) {
                job_discard(d, j); /* closes them */
                return gmem_error_wrap(k, "resume serving '%s'", m->name);
        }
        return 0;
fail:
        close(uffd);
        close(snapshot_fd);
        close(state_fd);
        if (pidfd >= 0)
                close(pidfd);
        return k;
}

int action_firecracker_resume(struct daemon *d, const char *vm, int uffd, int source_fd, int conn, int state_fd,
                              struct gmem_uffd_mapping *maps, size_t n_maps, bool raw, bool prefetch, uid_t uid,
                              const char *token) {
        struct job *j;
        int k;

        if (!fd_is_userfaultfd(uffd)) {
                k = gmem_error(-EBADF, "resume serving VM '%s': not a userfaultfd", vm);
                goto fail;
        }
        j = job_new(d, JOB_FIRECRACKER, NULL, NULL, NULL);
        if (!j) {
                k = gmem_error(-ENOMEM, "resume serving VM '%s': job", vm);
                goto fail;
        }
        if ((k = firecracker_charge(source_fd, raw, vm, j)) < 0) { /* held as before the restart, counted as before */
                job_discard(d, j);
                goto fail;
        }
        snprintf(j->label, sizeof(j->label), "%s", vm);
        snprintf(j->token, sizeof(j->token), "%s", token);
        j->uid = uid;
        j->outlives_session = true;
        j->flags = raw ? GMEM_PAGE_SERVER_RAW : 0;
        j->no_prefetch = !prefetch;
        j->fd = source_fd;
        j->fd2 = conn;
        j->fd3 = uffd;
        j->resume_fd = state_fd;
        j->maps = maps;
        j->n_maps = n_maps;
        if ((k = job_submit(d, j)) < 0) {
                job_discard(d, j);
                return gmem_error_wrap(k, "resume serving VM '%s'", vm);
        }
        return 0;
fail:
        close(uffd);
        close(source_fd);
        close(conn);
        close(state_fd);
        free(maps);
        return k;
}

static int check_listening(int fd) {
        int domain = 0, type = 0, listening = 0;
        socklen_t l = sizeof(int);

        if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &l) < 0 || (l = sizeof(int), getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &l)) < 0 ||
            (l = sizeof(int), getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &l)) < 0 || domain != AF_UNIX ||
            type != SOCK_STREAM || !listening)
                return -EINVAL;
        return 0;
}

/* What a Firecracker VM's page server over source_fd holds, from its header (a raw file: as if
 * every extent were a page, its table grown by doubling), into j's charge and bounds; -errno. */
static int firecracker_charge(int source_fd, bool raw, const char *vm, struct job *j) {
        struct snap_header h;
        struct stat st;
        int k;

        if (raw) {
                if (fstat(source_fd, &st) < 0 || !S_ISREG(st.st_mode))
                        return gmem_error(-EINVAL, "firecracker '%s': the second fd passed is not a regular file", vm);
                if (st.st_size == 0 || st.st_size % 4096)
                        return gmem_error(-EINVAL, "firecracker '%s': the memory file has %" PRIu64 " bytes, not a whole number of pages",
                                          vm, (uint64_t) st.st_size);
                serve_hold(j, (uint64_t) st.st_size, 2 * (uint64_t) st.st_size / 4096);
                return 0;
        }
        if ((k = snapshot_read_header(source_fd, &h)) < 0)
                return gmem_error_wrap(k, "firecracker '%s'", vm);
        serve_hold(j, h.region_size, h.n_extents);
        return 0;
}

int action_firecracker(struct daemon *d, struct session *s, struct requester *rq, const char *vm, int listen_fd,
                       int source_fd, bool raw, bool prefetch, int timeout_ms, struct job **ret) {
        _cleanup_close_ int l = -1, f = -1;
        struct job *j = job_new(d, JOB_FIRECRACKER, NULL, s, rq);
        int k = 0;

        if (!j)
                return gmem_error(-ENOMEM, "firecracker '%s': job", vm); /* rq freed */
        if (!proto_name_valid(vm))
                k = gmem_error(-EINVAL, "firecracker: '%s' is not a valid VM name", vm);
        else if (timeout_ms < 1 || timeout_ms > FIRECRACKER_TIMEOUT_MAX_MS)
                k = gmem_error(-EINVAL, "firecracker '%s': timeout %d ms (1 to %d)", vm, timeout_ms, FIRECRACKER_TIMEOUT_MAX_MS);
        else if (check_listening(listen_fd) < 0)
                k = gmem_error(-EINVAL, "firecracker '%s': the first fd passed is not a listening unix stream socket", vm);
        else if ((k = firecracker_charge(source_fd, raw, vm, j)) < 0)
                ;
        else if ((k = quota_admit(d, s->peer.uid, j->charged, "firecracker")) < 0)
                k = gmem_error_wrap(k, "firecracker '%s'", vm);
        else if ((f = reopen_readonly(source_fd)) < 0)
                k = gmem_error(f, "firecracker '%s': the second fd passed is not open for reading", vm);
        else if ((l = fcntl(listen_fd, F_DUPFD_CLOEXEC, 3)) < 0)
                k = gmem_error(negative_errno(), "firecracker '%s': dup", vm);
        if (k < 0) {
                job_discard(d, j); /* its requester with it */
                return k;
        }
        snprintf(j->label, sizeof(j->label), "%s", vm);
        j->uid = s->peer.uid;
        j->outlives_session = true;
        j->flags = raw ? GMEM_PAGE_SERVER_RAW : 0;
        j->no_prefetch = !prefetch;
        j->timeout_ms = timeout_ms;
        j->fd = TAKE_FD(f);
        j->fd2 = TAKE_FD(l);
        if ((k = job_submit(d, j)) < 0) {
                job_discard(d, j); /* closes the dups */
                return gmem_error_wrap(k, "firecracker '%s'", vm);
        }
        log_region(LOG_INFO, "firecracker", NULL, j->uid, "firecracker '%s': job %" PRIu64 " for uid %d waits for the VM", vm, j->id, (int) j->uid);
        if (ret)
                *ret = j;
        return 0;
}

int action_register(struct daemon *d, struct session *s, const char *name, int fd,
                    bool flags_known, uint64_t flags, enum gmem_policy policy, struct managed **ret) {
        struct gmem_region *r = NULL;
        _cleanup_close_ int dup_fd = -1;
        struct managed *m;
        int k;

        if ((k = check_new_name(d, name)) < 0)
                return k;
        for (struct managed *o = d->regions; o; o = o->next)
                if (!o->released && same_file(gmem_region_fd(o->region), fd))
                        return gmem_error(-EEXIST, "register '%s': that memory is region '%s' already", name, o->name);
        dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        if (dup_fd < 0)
                return gmem_error(negative_errno(), "register '%s': dup", name);
        k = flags_known ? gmem_region_adopt_guest_memfd_caps(d->caps, dup_fd, flags, &r) : gmem_region_adopt_caps(d->caps, dup_fd, &r);
        if (k == -EBADFD && flags_known) {
                /* flags only describe a guest_memfd: anything else is adopted for what it is */
                k = gmem_region_adopt_caps(d->caps, dup_fd, &r);
                if (k >= 0) {
                        TAKE_FD(dup_fd);
                        if (flags != 0) {
                                gmem_region_free(r);
                                return gmem_error(-EINVAL, "register '%s': flags 0x%" PRIx64 " given for a non-guest_memfd",
                                                  name, flags);
                        }
                }
        } else if (k >= 0)
                TAKE_FD(dup_fd); /* the region owns the dup now */
        if (k < 0)
                return gmem_error_wrap(k, "register '%s'", name);
        if (gmem_region_backend(r) == GMEM_BACKEND_MEMFD || gmem_region_backend(r) == GMEM_BACKEND_HUGETLB) {
                /* An unsealed memfd could grow past the byte limits it was counted against, or shrink
                 * under the daemon and every holder: its size must be sealed (adopt tried). */
                int seals = fcntl(fd, F_GET_SEALS);
                if (seals < 0 || (seals & (F_SEAL_SHRINK | F_SEAL_GROW)) != (F_SEAL_SHRINK | F_SEAL_GROW)) {
                        gmem_region_free(r);
                        return gmem_error(-EPERM, "register '%s': the memfd's size cannot be sealed; create it with "
                                          "MFD_ALLOW_SEALING", name);
                }
        }
        k = region_add(d, name, r, &s->peer, s, policy, "registered", false, &m);
        if (k < 0) {
                gmem_region_free(r);
                return k;
        }
        *ret = m;
        return 0;
}

int action_open(struct daemon *d _unused_, struct session *s, struct managed *m, int *ret_fd) {
        int fd = fcntl(gmem_region_fd(m->region), F_DUPFD_CLOEXEC, 3);

        if (fd < 0)
                return gmem_error(negative_errno(), "open '%s': dup", m->name);
        region_add_holder(m, &s->peer, s, "opened");
        log_debug("region '%s' opened by pid %d uid %d (%s)", m->name, s->peer.pid, s->peer.uid, s->front);
        *ret_fd = fd;
        return 0;
}

int action_range(const struct managed *m, const char *what, uint64_t off, bool have_len, uint64_t len, uint64_t def_len,
                 uint64_t *ret_len) {
        uint64_t size = gmem_region_size(m->region);

        if (off > size)
                return gmem_error(-ERANGE, "%s '%s': offset %" PRIu64 " is beyond the region's %" PRIu64 " bytes", what,
                                  m->name, off, size);
        if (!have_len)
                len = MIN(def_len, size - off);
        if (len == 0)
                return gmem_error(-EINVAL, "%s '%s': length 0", what, m->name);
        if (len > size - off)
                return gmem_error(-ERANGE, "%s '%s': range %" PRIu64 "+%" PRIu64 " is beyond the region's %" PRIu64 " bytes",
                                  what, m->name, off, len, size);
        *ret_len = len;
        return 0;
}

static int start_job(struct daemon *d, struct session *s, struct requester *rq, enum job_op op, struct managed *m, uint64_t off,
                     uint64_t len, uint64_t fd_off, int fd, uint64_t charge, struct job **ret) {
        struct job *j = job_new(d, op, m, s, rq);
        int k;

        if (!j)
                return gmem_error(-ENOMEM, "%s '%s': job", job_op_name(op), m->name);
        j->uid = s->peer.uid;
        j->off = off;
        j->len = len;
        j->fd_off = fd_off;
        j->charged = charge;
        j->fd = fd; /* before the job is queued: a worker may start it at once */
        k = job_submit(d, j);
        if (k < 0) {
                j->fd = -1; /* on failure the caller still owns it */
                job_discard(d, j);
                return gmem_error_wrap(k, "%s '%s'", job_op_name(op), m->name);
        }
        if (ret)
                *ret = j;
        return 0;
}

int action_start_job(struct daemon *d, struct session *s, struct requester *rq, enum job_op op, struct managed *m,
                     uint64_t off, uint64_t len, uint64_t fd_off, int fd, struct job **ret) {
        return start_job(d, s, rq, op, m, off, len, fd_off, fd, 0, ret);
}

static int populate_len(struct managed *m, uint64_t off, bool have_len, uint64_t len, int src_fd, uint64_t src_off,
                        uint64_t *ret_len) {
        uint64_t def_len = UINT64_MAX;
        struct stat st;

        if (fstat(src_fd, &st) < 0)
                return gmem_error(negative_errno(), "populate '%s': fstat source", m->name);
        if (S_ISREG(st.st_mode))
                def_len = (uint64_t) st.st_size > src_off ? (uint64_t) st.st_size - src_off : 0;
        else if (!have_len)
                return gmem_error(-EINVAL, "populate '%s': a source that is not a regular file needs a length", m->name);
        if (def_len == 0 && !have_len)
                return gmem_error(-ENODATA, "populate '%s': the source has no data at offset %" PRIu64, m->name, src_off);
        return action_range(m, "populate", off, have_len, len, def_len, ret_len);
}

int action_populate(struct daemon *d, struct session *s, struct requester *rq, struct managed *m, uint64_t off,
                    bool have_len, uint64_t len, int src_fd, uint64_t src_off, struct job **ret) {
        int k = populate_len(m, off, have_len, len, src_fd, src_off, &len);
        if (k < 0) {
                if (rq)
                        rq->ops->free(rq);
                return k;
        }
        return action_start_job(d, s, rq, JOB_POPULATE, m, off, len, src_off, src_fd, ret);
}

struct punch_args {
        struct managed *m;
        uint64_t off, len;
};

static int punch_now(void *userdata) {
        const struct punch_args *a = userdata;
        return gmem_punch_hole(a->m->region, a->off, a->len);
}

int action_punch(struct daemon *d, struct managed *m, uint64_t off, uint64_t len) {
        struct punch_args a = { m, off, len };
        /* a page server filling the region must not put back what is punched: done with it */
        int k = jobs_region_punch(d, m, off, len, punch_now, &a);

        if (k < 0)
                return gmem_error_wrap(k, "punch '%s'", m->name);
        region_resident_changed(d, m);
        return 0;
}

int action_grant(struct daemon *d, const struct peer *p, struct managed *m, bool is_uid, uint64_t id, bool grant) {
        const char *what = grant ? "grant" : "revoke";
        uint32_t *list = is_uid ? (uint32_t *) m->grant_uids : (uint32_t *) m->grant_gids;
        unsigned *n = is_uid ? &m->n_grant_uids : &m->n_grant_gids;

        if (id >= UINT32_MAX)
                return gmem_error(-EINVAL, "%s '%s': %s %" PRIu64 " is out of range", what, m->name, is_uid ? "uid" : "gid", id);
        for (unsigned i = 0; i < *n; i++)
                if (list[i] == id) {
                        if (!grant) {
                                memmove(&list[i], &list[i + 1], (*n - i - 1) * sizeof(*list));
                                (*n)--;
                        }
                        goto done;
                }
        if (grant) {
                if (*n >= REGION_MAX_GRANTS)
                        return gmem_error(-ENOSPC, "grant '%s': %u %ss granted already (limit)", m->name, *n,
                                          is_uid ? "uid" : "gid");
                list[(*n)++] = (uint32_t) id;
        }
done:
        log_region(LOG_INFO, grant ? "grant" : "revoke", m->name, p->uid, "region '%s': %s %s %" PRIu64 " (by uid %d)", m->name, grant ? "granted to" : "revoked from",
                 is_uid ? "uid" : "gid", id, p->uid);
        notify_region_changed(d, m);
        return 0;
}

int action_cancel(struct daemon *d, const struct peer *p, uint64_t id) {
        struct job *j = job_find(d, id);

        if (!j)
                return gmem_error(-ENOENT, "no job %" PRIu64, id);
        if (j->m ? !region_may(p, j->m, ACCESS_USE) : p->uid != 0 && p->uid != j->uid)
                return gmem_error(-EACCES, "job %" PRIu64 " (%s '%s'): uid %d may not cancel it", id, j->m ? "region" : "VM",
                                  job_subject(j), p->uid);
        __atomic_store_n(&j->cancel, 1, __ATOMIC_RELAXED);
        return 0;
}

int action_caps(struct daemon *d, char **ret_json) {
        int k = gmem_host_caps_refresh(d->caps);
        return k < 0 ? k : gmem_host_caps_to_json(d->caps, ret_json);
}
