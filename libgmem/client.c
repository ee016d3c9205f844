/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gmem_client_*: the operations of the gmemd protocol (docs/protocol.md), one call each. */
#include <assert.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "caps-internal.h"
#include "client.h"
#include "error.h"
#include "opts.h"
#include "protocol.h"


/* "op 'name'" for messages; the name has been checked, so it prints as it is. */
struct what {
        char s[PROTO_NAME_MAX + 48];
};

static const char *what_of(struct what *w, const char *op, const char *name) {
        if (name)
                snprintf(w->s, sizeof(w->s), "%s '%s'", op, name);
        else
                snprintf(w->s, sizeof(w->s), "%s", op);
        return w->s;
}

/* The client and the region name every named operation takes. */
static int check_named(const struct gmem_client *c, const char *op, const char *name) {
        if (!c)
                return gmem_error(-EINVAL, "%s: NULL client", op);
        if (!name)
                return gmem_error(-EINVAL, "%s: NULL region name", op);
        if (!proto_name_valid(name)) {
                char shown[PROTO_NAME_MAX + 4];
                size_t i;
                /* one printable line, whatever the caller passed */
                for (i = 0; name[i] && i < PROTO_NAME_MAX; i++)
                        shown[i] = name[i] >= 0x20 && name[i] < 0x7f ? name[i] : '?';
                strcpy(shown + i, name[i] ? "..." : "");
                return gmem_error(-EINVAL, "%s: invalid region name '%s' (1 to %d of A-Z a-z 0-9 . _ -)", op, shown,
                                  PROTO_NAME_MAX);
        }
        return 0;
}

/* An integer the protocol carries exactly. */
static int check_u64(const char *what, const char *field, uint64_t v) {
        if (v > PROTO_INT_MAX)
                return gmem_error(-ERANGE, "%s: %s %" PRIu64 " is above what the protocol carries (2^53 - 1)", what, field,
                                  v);
        return 0;
}

static int check_range(const char *what, uint64_t off, uint64_t len) {
        int k;

        if (len == GMEM_LENGTH_TO_END) /* "to the end": the daemon knows where that is */
                return check_u64(what, "offset", off);
        if (len == 0)
                return gmem_error(-EINVAL, "%s: length 0", what);
        if (off > UINT64_MAX - len)
                return gmem_error(-ERANGE, "%s: range %" PRIu64 "+%" PRIu64 " overflows", what, off, len);
        if ((k = check_u64(what, "offset", off)) < 0 || (k = check_u64(what, "length", len)) < 0)
                return k;
        return 0;
}

/* An fd to pass: open, and as described. */
static int check_fd(const char *what, const char *role, int fd) {
        if (fd < 0)
                return gmem_error(-EINVAL, "%s: invalid %s fd %d", what, role, fd);
        if (fcntl(fd, F_GETFD) < 0)
                return gmem_error(negative_errno(), "%s: %s fd %d", what, role, fd);
        return 0;
}

static int oom(const char *what) {
        return gmem_error(-ENOMEM, "%s: build the request", what);
}

/* {"op":op} plus "name" for the ops that name a region; NULL on allocation failure. */
static cJSON *request(enum proto_op op, const char *name) {
        const struct proto_op_info *info = proto_op_info(op);
        cJSON *req = cJSON_CreateObject();

        assert(info && !!name == info->named);
        if (!req || !cJSON_AddStringToObject(req, "op", info->name) ||
            (name && !cJSON_AddStringToObject(req, "name", name))) {
                cJSON_Delete(req);
                return NULL;
        }
        return req;
}

static bool add_u64(cJSON *req, const char *key, uint64_t v) {
        return json_add_u64(req, key, v) != NULL;
}

/* GMEM_LENGTH_TO_END travels as no "length" at all: the protocol's "to the end" */
static bool add_length(cJSON *req, uint64_t len) {
        return len == GMEM_LENGTH_TO_END || add_u64(req, "length", len);
}

/* Put "what: <the message recorded so far>" in front of a failure from a call below us. */
static int prefix_error(int err, const char *what) {
        char m[512];
        snprintf(m, sizeof(m), "%s: %s", what, gmem_last_error());
        return gmem_error_set_message(err, m);
}

/* ---------------------------------------------------------------------------------------------
 * Session
 */

_public_ int gmem_client_connect(const char *socket_path, struct gmem_client **ret) {
        _cleanup_free_ char *dflt = NULL, *what = NULL;
        _cleanup_json_ cJSON *req = NULL, *reply = NULL;
        struct gmem_client *c;
        char client_name[128];
        uint64_t version;
        int fd, k;

        if (!ret)
                return gmem_error(-EINVAL, "connect: NULL result");
        if (!socket_path) {
                k = gmem_client_default_socket(&dflt);
                if (k < 0)
                        return prefix_error(k, "connect");
                socket_path = dflt;
        }
        k = gmem_client_socket_connect(socket_path, &fd);
        if (k < 0)
                return k;

        c = calloc(1, sizeof(*c));
        if (c)
                c->buf = malloc(CLIENT_BUFFER_SIZE);
        if (!c || !c->buf) {
                free(c);
                close(fd);
                return gmem_error(-ENOMEM, "connect: allocate the client");
        }
        c->fd = fd;
        c->buf_size = CLIENT_BUFFER_SIZE;

        if (asprintf(&what, "hello to gmemd at '%s'", socket_path) < 0)
                what = NULL;
        snprintf(client_name, sizeof(client_name), "%s (libgmem %s)", program_invocation_short_name, GMEM_VERSION_STRING);
        req = request(PROTO_OP_HELLO, NULL);
        if (!what || !req || !add_u64(req, "version", PROTO_VERSION) ||
            !cJSON_AddStringToObject(req, "client", client_name)) {
                gmem_client_free(c);
                return oom("connect");
        }
        k = gmem_client_call(c, what, req, -1, &reply, NULL);
        if (k < 0) {
                gmem_client_free(c);
                return k;
        }
        if (gmem_json_get_u64(reply, "version", &version) < 0) {
                gmem_client_free(c);
                return gmem_error(-EPROTO, "%s: gmemd's reply names no protocol version", what);
        }
        if (version < 1 || version > PROTO_VERSION) {
                gmem_client_free(c);
                return gmem_error(-EPROTONOSUPPORT, "%s: gmemd chose protocol version %" PRIu64 ", this client speaks 1 to %d",
                                  what, version, PROTO_VERSION);
        }
        c->version = (unsigned) version;
        *ret = c;
        return 0;
}

_public_ struct gmem_client *gmem_client_free(struct gmem_client *c) {
        if (!c)
                return NULL;
        if (c->fd >= 0)
                close(c->fd);
        gmem_client_events_clear(c);
        for (size_t i = 0; i < c->n_fd_names; i++)
                free(c->fd_names[i].name);
        free(c->buf);
        free(c);
        return NULL;
}

_public_ int gmem_client_name_fd(struct gmem_client *c, int fd, const char *name) {
        size_t i;
        char *copy;
        int k;

        if (!c || fd < 0)
                return gmem_error(-EINVAL, "name fd: %s", !c ? "NULL client" : "invalid fd");
        for (i = 0; i < c->n_fd_names && c->fd_names[i].fd != fd; i++)
                ;
        if (!name) {
                if (i < c->n_fd_names) {
                        free(c->fd_names[i].name);
                        c->fd_names[i] = c->fd_names[--c->n_fd_names];
                }
                return 0;
        }
        if ((k = proto_check_fd_name(name)) < 0)
                return gmem_error_wrap(k, "name fd %d", fd);
        if (i == c->n_fd_names && i == CLIENT_FD_NAMES_MAX)
                return gmem_error(-ENOSPC, "name fd %d: %d fds are named already", fd, CLIENT_FD_NAMES_MAX);
        if (!(copy = strdup(name)))
                return gmem_error(-ENOMEM, "name fd %d", fd);
        if (i == c->n_fd_names)
                c->fd_names[c->n_fd_names++].fd = fd;
        else
                free(c->fd_names[i].name);
        c->fd_names[i].name = copy;
        return 0;
}

/* The name the caller gave fd, or NULL. */
const char *gmem_client_fd_name(const struct gmem_client *c, int fd) {
        for (size_t i = 0; i < c->n_fd_names; i++)
                if (c->fd_names[i].fd == fd)
                        return c->fd_names[i].name;
        return NULL;
}

_public_ void gmem_client_set_progress(struct gmem_client *c, gmem_progress_fn fn, void *userdata) {
        if (!c)
                return;
        c->progress = fn;
        c->userdata = userdata;
}

/* ---------------------------------------------------------------------------------------------
 * Regions in and out
 */

_public_ int gmem_client_register_policy(struct gmem_client *c, const char *name, struct gmem_region *r,
                                         enum gmem_policy policy) {
        _cleanup_json_ cJSON *req = NULL;
        struct what w;
        const char *what;
        int k;

        if ((k = check_named(c, "register", name)) < 0)
                return k;
        what = what_of(&w, "register", name);
        if (!r)
                return gmem_error(-EINVAL, "%s: NULL region", what);
        if ((unsigned) policy >= GMEM_POLICY_COUNT)
                return gmem_error(-EINVAL, "%s: invalid policy %d", what, (int) policy);
        if ((k = check_fd(what, "region", gmem_region_fd(r))) < 0)
                return k;

        req = request(PROTO_OP_REGISTER, name);
        if (!req || !cJSON_AddStringToObject(req, "policy", gmem_policy_to_string(policy)) ||
            (gmem_region_backend(r) == GMEM_BACKEND_GUEST_MEMFD && !add_u64(req, "flags", gmem_region_flags(r))))
                return oom(what);
        return gmem_client_call(c, what, req, gmem_region_fd(r), NULL, NULL);
}

_public_ int gmem_client_register(struct gmem_client *c, const char *name, struct gmem_region *r) {
        return gmem_client_register_policy(c, name, r, GMEM_POLICY_KEEP);
}

_public_ int gmem_client_create_0_2(struct gmem_client *c, const char *name, enum gmem_backend backend, uint64_t size,
                                    const struct gmem_create_opts *opts_in) {
        _cleanup_json_ cJSON *req = NULL;
        struct gmem_create_opts o, *opts = &o; /* all zero is the defaults: policy keep */
        struct what w;
        const char *what;
        int k;

        if ((k = check_named(c, "create", name)) < 0)
                return k;
        what = what_of(&w, "create", name);
        if ((k = gmem_opts_copy(opts_in, sizeof(o), sizeof(o), what, &o)) < 0)
                return k;
        if (backend != GMEM_BACKEND_MEMFD && backend != GMEM_BACKEND_HUGETLB && backend != GMEM_BACKEND_SECRET)
                return gmem_error(-EINVAL, "%s: gmemd creates memfd, hugetlb or secret regions, not %s%s", what,
                                  gmem_backend_to_string(backend) ?: "an invalid backend",
                                  backend == GMEM_BACKEND_GUEST_MEMFD ? " (create it on the VM fd and register it)" : "");
        if (size == 0)
                return gmem_error(-EINVAL, "%s: size 0", what);
        if ((k = check_u64(what, "size", size)) < 0)
                return k;
        if ((unsigned) opts->policy >= GMEM_POLICY_COUNT)
                return gmem_error(-EINVAL, "%s: invalid policy %d", what, (int) opts->policy);
        if (opts->page_size && backend != GMEM_BACKEND_HUGETLB)
                return gmem_error(-EINVAL, "%s: a page size applies to hugetlb regions only", what);
        if ((k = check_u64(what, "page size", opts->page_size)) < 0)
                return k;

        req = request(PROTO_OP_CREATE, name);
        if (!req || !add_u64(req, "size", size) ||
            !cJSON_AddStringToObject(req, "backend", gmem_backend_to_string(backend)) ||
            (opts->page_size && !add_u64(req, "page_size", opts->page_size)) ||
            !cJSON_AddBoolToObject(req, "prefault", opts->prefault) ||
            !cJSON_AddStringToObject(req, "policy", gmem_policy_to_string(opts->policy)))
                return oom(what);
        return gmem_client_call(c, what, req, -1, NULL, NULL);
}

GMEM_SYMVER(gmem_client_create_0_2, "gmem_client_create@@LIBGMEM_0.2");

_public_ int gmem_client_open(struct gmem_client *c, const char *name, struct gmem_region **ret) {
        _cleanup_json_ cJSON *req = NULL, *reply = NULL;
        _cleanup_close_ int fd = -1;
        struct gmem_region *r = NULL;
        const cJSON *region;
        const char *backend, *what;
        struct what w;
        uint64_t flags;
        int k;

        if ((k = check_named(c, "open", name)) < 0)
                return k;
        what = what_of(&w, "open", name);
        if (!ret)
                return gmem_error(-EINVAL, "%s: NULL result", what);

        req = request(PROTO_OP_OPEN, name);
        if (!req)
                return oom(what);
        k = gmem_client_call(c, what, req, -1, &reply, &fd);
        if (k < 0)
                return k;

        region = cJSON_GetObjectItemCaseSensitive(reply, "region");
        backend = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(region, "backend"));
        if (backend && strcmp(backend, "guest_memfd") == 0 && gmem_json_get_u64(region, "flags", &flags) == 0)
                k = gmem_region_adopt_guest_memfd(fd, flags, &r);
        else
                k = gmem_region_adopt(fd, &r);
        if (k < 0)
                return prefix_error(k, what);
        TAKE_FD(fd); /* the region has it */
        *ret = r;
        return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Jobs and data
 */

_public_ int gmem_client_populate_fd(struct gmem_client *c, const char *name, uint64_t dst_off, int src_fd,
                                     uint64_t src_off, uint64_t len) {
        _cleanup_json_ cJSON *req = NULL;
        struct what w;
        const char *what;
        int k;

        if ((k = check_named(c, "populate", name)) < 0)
                return k;
        what = what_of(&w, "populate", name);
        if ((k = check_fd(what, "source", src_fd)) < 0 || (k = check_range(what, dst_off, len)) < 0)
                return k;
        if (len != GMEM_LENGTH_TO_END && src_off > UINT64_MAX - len)
                return gmem_error(-ERANGE, "%s: source range %" PRIu64 "+%" PRIu64 " overflows", what, src_off, len);
        if ((k = check_u64(what, "source offset", src_off)) < 0)
                return k;

        req = request(PROTO_OP_POPULATE, name);
        if (!req || !add_u64(req, "offset", dst_off) || !add_u64(req, "src_offset", src_off) ||
            !add_length(req, len))
                return oom(what);
        return gmem_client_call(c, what, req, src_fd, NULL, NULL);
}

/* An op on [off, off+len) of a region that answers nothing but ok: prefault, punch. */
static int range_op(struct gmem_client *c, enum proto_op o, const char *name, uint64_t off, uint64_t len) {
        _cleanup_json_ cJSON *req = NULL;
        const char *op = proto_op_info(o)->name, *what;
        struct what w;
        int k;

        if ((k = check_named(c, op, name)) < 0)
                return k;
        what = what_of(&w, op, name);
        if ((k = check_range(what, off, len)) < 0)
                return k;

        req = request(o, name);
        if (!req || !add_u64(req, "offset", off) || !add_length(req, len))
                return oom(what);
        return gmem_client_call(c, what, req, -1, NULL, NULL);
}

_public_ int gmem_client_prefault(struct gmem_client *c, const char *name, uint64_t off, uint64_t len) {
        return range_op(c, PROTO_OP_PREFAULT, name, off, len);
}

_public_ int64_t gmem_client_dump_fd(struct gmem_client *c, const char *name, uint64_t off, uint64_t len, int dst_fd,
                                     uint64_t dst_off) {
        _cleanup_json_ cJSON *req = NULL, *reply = NULL;
        struct what w;
        const char *what;
        uint64_t bytes;
        int k;

        if ((k = check_named(c, "dump", name)) < 0)
                return k;
        what = what_of(&w, "dump", name);
        if ((k = check_fd(what, "destination", dst_fd)) < 0 || (k = check_range(what, off, len)) < 0)
                return k;
        if (len != GMEM_LENGTH_TO_END && dst_off > UINT64_MAX - len)
                return gmem_error(-ERANGE, "%s: destination range %" PRIu64 "+%" PRIu64 " overflows", what, dst_off, len);
        if ((k = check_u64(what, "destination offset", dst_off)) < 0)
                return k;

        req = request(PROTO_OP_DUMP, name);
        if (!req || !add_u64(req, "offset", off) || !add_length(req, len) || !add_u64(req, "dst_offset", dst_off))
                return oom(what);
        k = gmem_client_call(c, what, req, dst_fd, &reply, NULL);
        if (k < 0)
                return k;
        if (gmem_json_get_u64(reply, "bytes", &bytes) < 0)
                return gmem_error(-EPROTO, "%s: gmemd's reply has no byte count", what);
        return (int64_t) bytes;
}

_public_ int gmem_client_punch(struct gmem_client *c, const char *name, uint64_t off, uint64_t len) {
        return range_op(c, PROTO_OP_PUNCH, name, off, len);
}

_public_ int64_t gmem_client_snapshot_fd(struct gmem_client *c, const char *name, int dst_fd) {
        _cleanup_json_ cJSON *req = NULL, *reply = NULL;
        struct what w;
        const char *what;
        uint64_t bytes;
        int k;

        if ((k = check_named(c, "snapshot", name)) < 0)
                return k;
        what = what_of(&w, "snapshot", name);
        if ((k = check_fd(what, "destination", dst_fd)) < 0)
                return k;
        req = request(PROTO_OP_SNAPSHOT, name);
        if (!req)
                return oom(what);
        k = gmem_client_call(c, what, req, dst_fd, &reply, NULL);
        if (k < 0)
                return k;
        if (gmem_json_get_u64(reply, "bytes", &bytes) < 0)
                return gmem_error(-EPROTO, "%s: gmemd's reply has no byte count", what);
        return (int64_t) bytes;
}

_public_ int gmem_client_restore_fd(struct gmem_client *c, const char *name, int src_fd,
                                   const struct gmem_restore_opts *opts_in) {
        _cleanup_json_ cJSON *req = NULL;
        struct gmem_restore_opts o;
        struct what w;
        const char *what;
        int k;

        if ((k = check_named(c, "restore", name)) < 0)
                return k;
        what = what_of(&w, "restore", name);
        if ((k = gmem_opts_copy(opts_in, sizeof(o), sizeof(o), what, &o)) < 0 ||
            (k = check_fd(what, "source", src_fd)) < 0)
                return k;
        if (o.flags & ~(unsigned) GMEM_RESTORE_BACKEND)
                return gmem_error(-EINVAL, "%s: unknown flags 0x%x", what, o.flags);
        if ((o.flags & GMEM_RESTORE_BACKEND) && !gmem_backend_to_string(o.backend))
                return gmem_error(-EINVAL, "%s: invalid backend %d", what, (int) o.backend);
        if (!gmem_policy_to_string(o.policy))
                return gmem_error(-EINVAL, "%s: invalid policy %d", what, (int) o.policy);
        req = request(PROTO_OP_RESTORE, name);
        if (!req || !cJSON_AddStringToObject(req, "policy", gmem_policy_to_string(o.policy)) ||
            ((o.flags & GMEM_RESTORE_BACKEND) && !cJSON_AddStringToObject(req, "backend", gmem_backend_to_string(o.backend))))
                return oom(what);
        return gmem_client_call(c, what, req, src_fd, NULL, NULL);
}

/* A request with two fds answered at once with the job it started (serve, firecracker). */
static int call_for_job(struct gmem_client *c, const char *what, cJSON *req, const int fds[2], uint64_t *ret_job) {
        _cleanup_json_ cJSON *reply = NULL;
        uint64_t job;
        int k;

        k = gmem_client_call_fds(c, what, req, fds, 2, &reply, NULL);
        if (k < 0)
                return k;
        if (gmem_json_get_u64(reply, "job", &job) < 0)
                return gmem_error(-EPROTO, "%s: gmemd's reply has no job", what);
        if (ret_job)
                *ret_job = job;
        return 0;
}

_public_ int gmem_client_serve_uffd(struct gmem_client *c, const char *name, int uffd, uint64_t address, int snapshot_fd,
                                   unsigned flags, uint64_t *ret_job) {
        _cleanup_json_ cJSON *req = NULL;
        const int fds[2] = { uffd, snapshot_fd };
        struct what w;
        const char *what;
        int k;

        if ((k = check_named(c, "serve", name)) < 0)
                return k;
        what = what_of(&w, "serve", name);
        if ((k = check_fd(what, "userfaultfd", uffd)) < 0 || (k = check_fd(what, "snapshot", snapshot_fd)) < 0 ||
            (k = check_u64(what, "address", address)) < 0)
                return k;
        if (flags & ~(unsigned) (GMEM_SERVE_SHARED | GMEM_SERVE_NO_PREFETCH))
                return gmem_error(-EINVAL, "%s: unknown flags %#x", what, flags);
        req = request(PROTO_OP_SERVE, name);
        if (!req || !add_u64(req, "address", address) || !cJSON_AddBoolToObject(req, "shared", flags & GMEM_SERVE_SHARED) ||
            ((flags & GMEM_SERVE_NO_PREFETCH) && !cJSON_AddBoolToObject(req, "prefetch", false)))
                return oom(what);
        return call_for_job(c, what, req, fds, ret_job);
}

_public_ int gmem_client_serve_firecracker(struct gmem_client *c, const char *vm, int listen_fd, int source_fd,
                                          uint64_t flags, int timeout_ms, uint64_t *ret_job) {
        _cleanup_json_ cJSON *req = NULL;
        const int fds[2] = { listen_fd, source_fd };
        struct what w;
        const char *what;
        int k;

        what = what_of(&w, "firecracker", vm);
        if (!c || !vm)
                return gmem_error(-EINVAL, "%s: NULL client or VM name", what);
        if (flags & ~(uint64_t) (GMEM_PAGE_SERVER_RAW | GMEM_SERVE_NO_PREFETCH))
                return gmem_error(-EINVAL, "%s: unknown flags %#" PRIx64, what,
                                  (uint64_t) (flags & ~(uint64_t) (GMEM_PAGE_SERVER_RAW | GMEM_SERVE_NO_PREFETCH)));
        if ((k = check_fd(what, "listening socket", listen_fd)) < 0 || (k = check_fd(what, "source", source_fd)) < 0)
                return k;
        req = request(PROTO_OP_FIRECRACKER, NULL);
        if (!req || !cJSON_AddStringToObject(req, "vm", vm) ||
            !cJSON_AddStringToObject(req, "format", flags & GMEM_PAGE_SERVER_RAW ? "raw" : "gmem") ||
            (timeout_ms > 0 && !add_u64(req, "timeout_ms", (uint64_t) timeout_ms)) ||
            ((flags & GMEM_SERVE_NO_PREFETCH) && !cJSON_AddBoolToObject(req, "prefetch", false)))
                return oom(what);
        return call_for_job(c, what, req, fds, ret_job);
}

_public_ int gmem_client_cancel(struct gmem_client *c, uint64_t job) {
        _cleanup_json_ cJSON *req = NULL;
        char what[48];
        int k;

        snprintf(what, sizeof(what), "cancel job %" PRIu64, job);
        if (!c)
                return gmem_error(-EINVAL, "%s: NULL client", what);
        if ((k = check_u64(what, "job", job)) < 0)
                return k;
        req = request(PROTO_OP_CANCEL, NULL);
        if (!req || !add_u64(req, "job", job))
                return oom(what);
        return gmem_client_call(c, what, req, -1, NULL, NULL);
}

/* ---------------------------------------------------------------------------------------------
 * Access and lifetime
 */

static int access_change(struct gmem_client *c, enum proto_op o, const char *name, const char *key, uint32_t id) {
        _cleanup_json_ cJSON *req = NULL;
        const char *op = proto_op_info(o)->name, *what;
        struct what w;
        int k;

        if ((k = check_named(c, op, name)) < 0)
                return k;
        what = what_of(&w, op, name);
        if (id == UINT32_MAX)
                return gmem_error(-EINVAL, "%s: invalid %s %" PRIu32, what, key, id);

        req = request(o, name);
        if (!req || !add_u64(req, key, id))
                return oom(what);
        return gmem_client_call(c, what, req, -1, NULL, NULL);
}

_public_ int gmem_client_grant_uid(struct gmem_client *c, const char *name, uint32_t uid) {
        return access_change(c, PROTO_OP_GRANT, name, "uid", uid);
}

_public_ int gmem_client_grant_gid(struct gmem_client *c, const char *name, uint32_t gid) {
        return access_change(c, PROTO_OP_GRANT, name, "gid", gid);
}

_public_ int gmem_client_revoke_uid(struct gmem_client *c, const char *name, uint32_t uid) {
        return access_change(c, PROTO_OP_REVOKE, name, "uid", uid);
}

_public_ int gmem_client_revoke_gid(struct gmem_client *c, const char *name, uint32_t gid) {
        return access_change(c, PROTO_OP_REVOKE, name, "gid", gid);
}

_public_ int gmem_client_release(struct gmem_client *c, const char *name) {
        _cleanup_json_ cJSON *req = NULL;
        struct what w;
        const char *what;
        int k;

        if ((k = check_named(c, "release", name)) < 0)
                return k;
        what = what_of(&w, "release", name);
        req = request(PROTO_OP_RELEASE, name);
        if (!req)
                return oom(what);
        return gmem_client_call(c, what, req, -1, NULL, NULL);
}

/* ---------------------------------------------------------------------------------------------
 * Questions
 */

/* cJSON prints integers above INT_MAX with "%1.15g" (1.79524834220211e+15): turn every integral
 * number into raw text of its digits first, so sizes and timestamps come out as the daemon sent them. */
static int integers_verbatim(cJSON *j) {
        cJSON *v, *next;

        for (v = j ? j->child : NULL; v; v = next) {
                next = v->next;
                if (cJSON_IsNumber(v) && v->valuedouble >= -1e18 && v->valuedouble <= 1e18 &&
                    v->valuedouble == (double) (int64_t) v->valuedouble) {
                        char digits[32];
                        cJSON *raw;
                        snprintf(digits, sizeof(digits), "%" PRId64, (int64_t) v->valuedouble);
                        raw = cJSON_CreateRaw(digits);
                        if (!raw)
                                return -ENOMEM;
                        /* the member keeps its key: hand it over, or the replaced item takes it along */
                        raw->string = v->string;
                        raw->type |= v->type & cJSON_StringIsConst;
                        v->string = NULL;
                        cJSON_ReplaceItemViaPointer(j, v, raw);
                } else if (cJSON_IsObject(v) || cJSON_IsArray(v)) {
                        int k = integers_verbatim(v);
                        if (k < 0)
                                return k;
                }
        }
        return 0;
}

/* The queries, as JSON or as C values: the op (list, info, caps), its reply's member and its type. */
static const struct query {
        enum proto_op op;
        const char *key;
        bool array;
} query_list = { PROTO_OP_LIST, "regions", true }, query_info = { PROTO_OP_INFO, "region", false },
  query_caps = { PROTO_OP_CAPS, "caps", false };

/* Ask q (of region name, for info; what names the call), and hand back the reply (*ret_reply, to delete)
 * and its member, of the right type. */
static int ask(struct gmem_client *c, const struct query *q, const char *name, const char *what, cJSON **ret_reply,
               const cJSON **ret_member) {
        _cleanup_json_ cJSON *req = request(q->op, name), *reply = NULL;
        const cJSON *v;
        int k;

        if (!req)
                return oom(what);
        k = gmem_client_call(c, what, req, -1, &reply, NULL);
        if (k < 0)
                return k;
        v = cJSON_GetObjectItemCaseSensitive(reply, q->key);
        if (q->array ? !cJSON_IsArray(v) : !cJSON_IsObject(v))
                return gmem_error(-EPROTO, "%s: gmemd's reply has no \"%s\" %s", what, q->key, q->array ? "array" : "object");
        *ret_member = v;
        *ret_reply = TAKE_PTR(reply);
        return 0;
}

/* Ask q, and hand back its member as JSON text. */
static int query(struct gmem_client *c, const struct query *q, const char *name, const char *what, char **ret_json) {
        _cleanup_json_ cJSON *reply = NULL;
        const cJSON *v;
        char *s;
        int k = ask(c, q, name, what, &reply, &v);

        if (k < 0)
                return k;
        s = integers_verbatim((cJSON *) v) < 0 ? NULL : cJSON_PrintUnformatted(v);
        if (!s)
                return gmem_error(-ENOMEM, "%s: print the reply", what);
        *ret_json = s;
        return 0;
}

/* info's checks: the client, the name, a result to fill; *ret_what names the call */
static int check_info(struct gmem_client *c, const char *name, const void *ret, struct what *w, const char **ret_what) {
        int k = check_named(c, "info", name);

        if (k < 0)
                return k;
        *ret_what = what_of(w, "info", name);
        return ret ? 0 : gmem_error(-EINVAL, "%s: NULL result", *ret_what);
}

_public_ int gmem_client_region_list(struct gmem_client *c, struct gmem_region_list **ret_list) {
        _cleanup_json_ cJSON *reply = NULL;
        const cJSON *a;
        int k;

        if (!c || !ret_list)
                return gmem_error(-EINVAL, "list: NULL argument");
        if ((k = ask(c, &query_list, NULL, "list", &reply, &a)) < 0)
                return k;
        return gmem_region_list_parse(a, ret_list);
}

_public_ int gmem_client_region_info(struct gmem_client *c, const char *name, struct gmem_region_info **ret_info) {
        _cleanup_json_ cJSON *reply = NULL;
        const cJSON *o;
        struct what w;
        const char *what;
        int k;

        if ((k = check_info(c, name, ret_info, &w, &what)) < 0 || (k = ask(c, &query_info, name, what, &reply, &o)) < 0)
                return k;
        return gmem_region_info_parse(o, what, ret_info);
}

_public_ int gmem_client_host_caps(struct gmem_client *c, struct gmem_host_caps **ret_caps) {
        _cleanup_json_ cJSON *reply = NULL;
        _cleanup_free_ struct gmem_host_caps *h = NULL;
        const cJSON *o;
        int k;

        if (!c || !ret_caps)
                return gmem_error(-EINVAL, "caps: NULL argument");
        if ((k = ask(c, &query_caps, NULL, "caps", &reply, &o)) < 0)
                return k;
        h = calloc(1, sizeof(*h));
        if (!h)
                return gmem_error(-ENOMEM, "caps");
        if ((k = gmem_host_caps_from_json_object(o, h)) < 0)
                return k;
        *ret_caps = TAKE_PTR(h);
        return 0;
}

_public_ int gmem_client_list(struct gmem_client *c, char **ret_json) {
        if (!c || !ret_json)
                return gmem_error(-EINVAL, "list: NULL argument");
        return query(c, &query_list, NULL, "list", ret_json);
}

_public_ int gmem_client_info(struct gmem_client *c, const char *name, char **ret_json) {
        struct what w;
        const char *what;
        int k = check_info(c, name, ret_json, &w, &what);

        return k < 0 ? k : query(c, &query_info, name, what, ret_json);
}

_public_ int gmem_client_caps(struct gmem_client *c, char **ret_json) {
        if (!c || !ret_json)
                return gmem_error(-EINVAL, "caps: NULL argument");
        return query(c, &query_caps, NULL, "caps", ret_json);
}

_public_ int gmem_client_watch(struct gmem_client *c) {
        _cleanup_json_ cJSON *req = NULL;

        if (!c)
                return gmem_error(-EINVAL, "watch: NULL client");
        req = request(PROTO_OP_WATCH, NULL);
        if (!req)
                return oom("watch");
        return gmem_client_call(c, "watch", req, -1, NULL, NULL);
}
