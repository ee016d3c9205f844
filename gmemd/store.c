/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "error.h"
#include "json-util.h"
#include "log.h"
#include "actions.h"
#include "notify.h"
#include "region.h"
#include "store.h"

#define FDNAME_PREFIX "region-"
#define SERVE_PREFIX "serve-"
#define METADATA_MAX_BYTES (64 * 1024)
#define SERVES_MAX 256 /* page servers brought back at a start; more is not ours */

/* the fds of a page server's job in the store, by FDNAME suffix */
enum { SERVE_UFFD, SERVE_SNAPSHOT, SERVE_PEER, SERVE_STATE, SERVE_FDS };
static const char *const serve_kinds[SERVE_FDS] = { "uffd", "snapshot", "peer", "state" };

static int state_dir_default(char **ret) {
        const char *rd = getenv("RUNTIME_DIRECTORY"), *xdg = getenv("XDG_RUNTIME_DIR");
        char buf[4096];

        if (rd && *rd)
                snprintf(buf, sizeof(buf), "%.*s", (int) strcspn(rd, ":"), rd); /* the first, if several */
        else if (geteuid() == 0)
                snprintf(buf, sizeof(buf), "/run/gmemd");
        else if (xdg && *xdg)
                snprintf(buf, sizeof(buf), "%s/gmemd", xdg);
        else
                return gmem_error(-ENXIO, "no state directory: set RUNTIME_DIRECTORY or XDG_RUNTIME_DIR");
        *ret = strdup(buf);
        return *ret ? 0 : gmem_error(-ENOMEM, "state directory");
}

static int metadata_path(struct daemon *d, const char *name, char *buf, size_t size) {
        int n = snprintf(buf, size, "%s/regions/%s.json", d->state_dir, name);
        return n > 0 && (size_t) n < size ? 0 : -ENAMETOOLONG;
}

static const struct subscriber_ops store_ops;

int store_start(struct daemon *d) {
        char dir[4096];
        int k;

        k = notify_subscribe(d, &store_ops, d); /* STATUS= is kept up to date either way */
        if (k < 0)
                return k;
        if (!getenv("NOTIFY_SOCKET")) {
                log_notice("not started by systemd (no NOTIFY_SOCKET): regions live only as long as this gmemd "
                           "process and do not survive a restart");
                return 0;
        }
        k = state_dir_default(&d->state_dir);
        if (k < 0)
                return k;
        snprintf(dir, sizeof(dir), "%s/regions", d->state_dir);
        if ((mkdir(d->state_dir, 0755) < 0 && errno != EEXIST) || (mkdir(dir, 0700) < 0 && errno != EEXIST))
                return gmem_error(negative_errno(), "create state directory '%s'", dir);
        snprintf(dir, sizeof(dir), "%s/serve", d->state_dir);
        if (mkdir(dir, 0700) < 0 && errno != EEXIST)
                return gmem_error(negative_errno(), "create state directory '%s'", dir);
        d->store_enabled = true;
        log_info("regions and page servers are kept in systemd's fd store, their metadata in %s", d->state_dir);
        return 0;
}


static void fdstore_remove(const char *fdname) {
        char msg[300]; /* an FDNAME is at most 255 characters */
        snprintf(msg, sizeof(msg), "FDSTOREREMOVE=1\nFDNAME=%s", fdname);
        (void) sd_notify(0, msg);
}

/* Written to a temporary file and renamed over the old one: a crash leaves the old or the new. */
static int write_metadata(struct daemon *d, const struct managed *m) {
        char path[4200];
        cJSON *o = region_to_json(d, (struct managed *) m, REGION_JSON_SAVED);
        int k;

        if (!o)
                return -ENOMEM;
        k = metadata_path(d, m->name, path, sizeof(path)) < 0 ? -ENAMETOOLONG : json_write_file(o, true, path);
        cJSON_Delete(o);
        return k;
}

static void region_saved(struct daemon *d, struct managed *m) {
        char msg[128];
        int fd, k;

        if (!d->store_enabled || m->hidden || m->released)
                return;
        k = write_metadata(d, m);
        if (k < 0)
                log_warning("region '%s': cannot save its metadata: %s; it will not survive a restart", m->name, strerror(-k));
        if (m->stored || d->restoring) {
                m->stored = true;
                return;
        }
        fd = gmem_region_fd(m->region);
        snprintf(msg, sizeof(msg), "FDSTORE=1\nFDNAME=" FDNAME_PREFIX "%s", m->name);
        k = sd_pid_notify_with_fds(0, 0, msg, &fd, 1);
        if (k <= 0)
                log_warning("region '%s': cannot put its fd into systemd's fd store: %s", m->name,
                            k < 0 ? strerror(-k) : "no NOTIFY_SOCKET");
        else
                m->stored = true;
}

static void region_removed(struct daemon *d, struct managed *m) {
        char path[4200], fdname[128];

        if (!d->store_enabled)
                return;
        snprintf(fdname, sizeof(fdname), FDNAME_PREFIX "%s", m->name);
        fdstore_remove(fdname);
        m->stored = false;
        if (metadata_path(d, m->name, path, sizeof(path)) == 0 && unlink(path) < 0 && errno != ENOENT)
                log_warning("region '%s': remove metadata '%s': %m", m->name, path);
}

static void on_region_added(void *userdata, struct managed *m) {
        region_saved(userdata, m);
        store_status(userdata);
}

static void on_region_removed(void *userdata, struct managed *m) {
        region_removed(userdata, m);
        store_status(userdata);
}

static void on_region_changed(void *userdata, struct managed *m) {
        region_saved(userdata, m);
}

static const struct subscriber_ops store_ops = {
        .region_added = on_region_added,
        .region_removed = on_region_removed,
        .region_changed = on_region_changed,
};

static int read_metadata_file(const char *path, char **ret_text, size_t *ret_n) {
        char what[4300];
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);

        if (fd < 0)
                return gmem_error(negative_errno(), "open '%s'", path);
        snprintf(what, sizeof(what), "'%s'", path);
        return read_small_file(fd, METADATA_MAX_BYTES, what, ret_text, ret_n);
}

static int read_metadata(struct daemon *d, const char *name, char **ret_text, size_t *ret_n) {
        char path[4200];

        if (metadata_path(d, name, path, sizeof(path)) < 0)
                return gmem_error(-ENAMETOOLONG, "metadata of region '%s': path too long", name);
        return read_metadata_file(path, ret_text, ret_n);
}

/* ---- page servers (JOB_SERVE) */

static int serve_metadata_path(struct daemon *d, const char *token, char *buf, size_t size) {
        int n = snprintf(buf, size, "%s/serve/%s.json", d->state_dir, token);
        return n > 0 && (size_t) n < size ? 0 : -ENAMETOOLONG;
}

static void serve_fdstore_remove(const char *token) {
        char name[64];
        for (unsigned i = 0; i < SERVE_FDS; i++) {
                snprintf(name, sizeof(name), SERVE_PREFIX "%s-%s", token, serve_kinds[i]);
                fdstore_remove(name);
        }
}

/* What a job is to be brought back as: a serve of a region, or a Firecracker VM's server. */
static cJSON *serve_metadata(const struct job *j, const struct gmem_uffd_mapping *maps, size_t n_maps) {
        cJSON *o = cJSON_CreateObject(), *arr;
        bool ok = o && cJSON_AddStringToObject(o, "op", job_op_name(j->op)) && json_add_u64(o, "uid", j->uid);

        if (ok && j->op == JOB_SERVE)
                ok = cJSON_AddStringToObject(o, "region", j->m->name) && json_add_u64(o, "address", j->off) &&
                     cJSON_AddBoolToObject(o, "shared", j->shared);
        ok = ok && cJSON_AddBoolToObject(o, "prefetch", !j->no_prefetch);
        if (ok && j->op != JOB_SERVE) {
                ok = cJSON_AddStringToObject(o, "vm", j->label) &&
                     cJSON_AddBoolToObject(o, "raw", j->flags & GMEM_PAGE_SERVER_RAW) &&
                     (arr = cJSON_AddArrayToObject(o, "mappings"));
                for (size_t i = 0; ok && i < n_maps; i++) {
                        cJSON *e = cJSON_CreateObject();
                        ok = e && cJSON_AddItemToArray(arr, e) && json_add_u64(e, "base", maps[i].base) &&
                             json_add_u64(e, "size", maps[i].size) && json_add_u64(e, "offset", maps[i].offset) &&
                             json_add_u64(e, "page_size", maps[i].page_size);
                }
        }
        if (!ok) {
                cJSON_Delete(o);
                return NULL;
        }
        return o;
}

static void store_serve_forget(struct daemon *d, const struct job *j);

static int store_serve_save(struct daemon *d, struct job *j, int uffd, int peer_fd, int state_fd,
                            const struct gmem_uffd_mapping *maps, size_t n_maps) {
        const int fds[SERVE_FDS] = { uffd, j->fd, peer_fd, state_fd };
        char path[4200], msg[128];
        uint8_t rnd[8];
        cJSON *o;
        int k;

        if (!d->store_enabled)
                return 0;
        if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd))
                return gmem_error(-EIO, "page server job %" PRIu64 ": getrandom", j->id);
        for (unsigned i = 0; i < sizeof(rnd); i++)
                snprintf(j->token + 2 * i, 3, "%02x", rnd[i]);
        /* the metadata first: fds without it are dropped at the next start */
        if (serve_metadata_path(d, j->token, path, sizeof(path)) < 0)
                return gmem_error(-ENAMETOOLONG, "page server metadata path");
        o = serve_metadata(j, maps, n_maps);
        if (!o)
                return gmem_error(-ENOMEM, "page server job %" PRIu64 ": metadata", j->id);
        k = json_write_file(o, false, path);
        cJSON_Delete(o);
        if (k < 0) {
                k = gmem_error(k, "page server job %" PRIu64 ": write '%s'", j->id, path);
                log_warning("%s: it will not survive a restart", gmem_last_error());
                return k;
        }
        for (unsigned i = 0; i < SERVE_FDS; i++) {
                if (fds[i] < 0)
                        continue;
                snprintf(msg, sizeof(msg), "FDSTORE=1\nFDNAME=" SERVE_PREFIX "%s-%s", j->token, serve_kinds[i]);
                k = sd_pid_notify_with_fds(0, 0, msg, &fds[i], 1);
                if (k <= 0) {
                        log_warning("page server job %" PRIu64 ": cannot put its %s into systemd's fd store: %s; it will "
                                    "not survive a restart", j->id, serve_kinds[i], k < 0 ? strerror(-k) : "no NOTIFY_SOCKET");
                        store_serve_forget(d, j);
                        return -EIO;
                }
        }
        /* systemd reads the store's messages when it gets to them: until it has, a gmemd killed now
         * would leave a server that does not come back. Its requester hears the server is up
         * only once systemd has them all (on the server's own thread: the loop never waits). */
        if ((k = sd_notify_barrier(0, 5 * 1000000ULL)) < 0)
                log_warning("page server job %" PRIu64 ": systemd did not confirm its fd store: %s", j->id, strerror(-k));
        log_info("page server job %" PRIu64 " ('%s'): in the fd store as " SERVE_PREFIX "%s-*", j->id, job_subject(j), j->token);
        return 0;
}

int store_serve_begin(struct daemon *d, struct job *j, struct gmem_page_server *ps, int uffd, int peer_fd,
                      const struct gmem_uffd_mapping *maps, size_t n_maps, bool *ret_stored) {
        int state = -1;

        if (j->resume_fd >= 0)
                return gmem_page_server_resume(ps, j->resume_fd);
        if (!d->store_enabled)
                return 0;
        if (gmem_page_server_keep_state(ps, &state) < 0)
                log_warning("page server job %" PRIu64 ": %s; it will not survive a restart", j->id, gmem_last_error());
        else if (store_serve_save(d, j, uffd, peer_fd, state, maps, n_maps) >= 0)
                *ret_stored = true;
        if (state >= 0)
                close(state);
        return 0;
}

void store_serve_end(struct daemon *d, const struct job *j, bool stored) {
        if (stored && !__atomic_load_n(&d->stopping, __ATOMIC_RELAXED))
                store_serve_forget(d, j);
}

static void store_serve_forget(struct daemon *d, const struct job *j) {
        char path[4200];

        if (!d->store_enabled || !j->token[0])
                return;
        serve_fdstore_remove(j->token);
        if (serve_metadata_path(d, j->token, path, sizeof(path)) == 0 && unlink(path) < 0 && errno != ENOENT)
                log_warning("page server job %" PRIu64 ": remove '%s': %m", j->id, path);
}

struct saved_serve {
        char token[17];
        int fds[SERVE_FDS];
};

static bool token_valid(const char *t, size_t len) {
        if (len != 16)
                return false;
        for (size_t i = 0; i < len; i++)
                if (!((t[i] >= '0' && t[i] <= '9') || (t[i] >= 'a' && t[i] <= 'f')))
                        return false;
        return true;
}

/* "serve-<token>-<kind>": the entry's slot and kind, or false for a name that is none */
static bool serve_entry(struct saved_serve *v, unsigned *n, const char *fdname, int fd) {
        const char *t = fdname + strlen(SERVE_PREFIX), *dash = strchr(t, '-');
        unsigned kind = SERVE_FDS, i;

        if (!dash || !token_valid(t, (size_t) (dash - t)))
                return false;
        for (unsigned k = 0; k < SERVE_FDS; k++)
                if (strcmp(dash + 1, serve_kinds[k]) == 0)
                        kind = k;
        if (kind == SERVE_FDS)
                return false;
        for (i = 0; i < *n && strncmp(v[i].token, t, 16) != 0; i++)
                ;
        if (i == *n) {
                if (*n >= SERVES_MAX)
                        return false;
                memcpy(v[i].token, t, 16);
                v[i].token[16] = 0;
                for (unsigned k = 0; k < SERVE_FDS; k++)
                        v[i].fds[k] = -1;
                (*n)++;
        }
        if (v[i].fds[kind] >= 0)
                return false; /* twice */
        v[i].fds[kind] = fd;
        return true;
}

/* Firecracker's regions as saved: 1 to GMEM_UFFD_MAPPINGS_MAX of them (checked again by the
 * page server). */
static int parse_mappings(const cJSON *arr, struct gmem_uffd_mapping **ret, size_t *ret_n) {
        _cleanup_free_ struct gmem_uffd_mapping *v = NULL;
        const cJSON *e;
        size_t n = 0;
        int size = cJSON_GetArraySize(arr);

        if (!cJSON_IsArray(arr) || size < 1 || size > GMEM_UFFD_MAPPINGS_MAX || !(v = calloc((size_t) size, sizeof(*v))))
                return -EBADMSG;
        cJSON_ArrayForEach(e, arr) {
                if (json_get_u64(e, "base", true, 0, &v[n].base) < 0 || json_get_u64(e, "size", true, 0, &v[n].size) < 0 ||
                    json_get_u64(e, "offset", true, 0, &v[n].offset) < 0 ||
                    json_get_u64(e, "page_size", true, 0, &v[n].page_size) < 0)
                        return -EBADMSG;
                n++;
        }
        *ret = TAKE_PTR(v);
        *ret_n = n;
        return 0;
}

/* One page server back: its metadata, its region (a serve) or its mappings (Firecracker), a
 * job resuming from its state. */
static int serve_restore_one(struct daemon *d, struct saved_serve *sv) {
        _cleanup_(cJSON_Deletep) cJSON *meta = NULL;
        _cleanup_free_ char *text = NULL;
        _cleanup_free_ struct gmem_uffd_mapping *maps = NULL;
        char path[4200];
        const char *op = NULL, *name = NULL;
        uint64_t base = 0, uid = 0;
        bool shared = false, prefetch = true, raw = false;
        struct managed *m;
        size_t n = 0, n_maps = 0;
        int k;

        if (sv->fds[SERVE_UFFD] < 0 || sv->fds[SERVE_SNAPSHOT] < 0 || sv->fds[SERVE_STATE] < 0)
                return gmem_error(-ENOENT, "page server %s: not all of its fds came back", sv->token);
        if (serve_metadata_path(d, sv->token, path, sizeof(path)) < 0)
                return gmem_error(-ENAMETOOLONG, "page server %s: metadata path too long", sv->token);
        if ((k = read_metadata_file(path, &text, &n)) < 0)
                return gmem_error_wrap(k, "page server %s: its metadata", sv->token);
        meta = cJSON_ParseWithLength(text, n);
        if (!cJSON_IsObject(meta) || json_get_str(meta, "op", true, NULL, &op) < 0 ||
            json_get_u64(meta, "uid", true, 0, &uid) < 0 || uid >= UINT32_MAX)
                return gmem_error(-EBADMSG, "page server %s: metadata '%s' is not one", sv->token, path);
        if (strcmp(op, "firecracker") == 0) {
                if (sv->fds[SERVE_PEER] < 0 || json_get_str(meta, "vm", true, NULL, &name) < 0 || !proto_name_valid(name) ||
                    json_get_bool(meta, "raw", false, &raw) < 0 || json_get_bool(meta, "prefetch", true, &prefetch) < 0 ||
                    parse_mappings(cJSON_GetObjectItemCaseSensitive(meta, "mappings"), &maps, &n_maps) < 0)
                        return gmem_error(-EBADMSG, "page server %s: metadata '%s' is not a Firecracker VM's", sv->token, path);
                k = action_firecracker_resume(d, name, sv->fds[SERVE_UFFD], sv->fds[SERVE_SNAPSHOT], sv->fds[SERVE_PEER],
                                              sv->fds[SERVE_STATE], TAKE_PTR(maps), n_maps, raw, prefetch, (uid_t) uid,
                                              sv->token);
        } else {
                if (strcmp(op, "serve") != 0 || json_get_str(meta, "region", true, NULL, &name) < 0 ||
                    json_get_u64(meta, "address", true, 0, &base) < 0 || json_get_bool(meta, "shared", true, &shared) < 0 ||
                    json_get_bool(meta, "prefetch", true, &prefetch) < 0)
                        return gmem_error(-EBADMSG, "page server %s: metadata '%s' is not one", sv->token, path);
                if (!(m = region_find(d, name)))
                        return gmem_error(-ENOENT, "page server %s: its region '%s' did not come back", sv->token, name);
                k = action_serve_resume(d, m, sv->fds[SERVE_UFFD], sv->fds[SERVE_SNAPSHOT], sv->fds[SERVE_STATE],
                                        sv->fds[SERVE_PEER], base, shared, prefetch, (uid_t) uid, sv->token);
        }
        for (unsigned i = 0; i < SERVE_FDS; i++)
                sv->fds[i] = -1; /* the job's now, or closed */
        if (k < 0)
                return k;
        log_notice("page server for %s '%s' resumed from the fd store (%s)", strcmp(op, "firecracker") == 0 ? "VM" : "region",
                   name, sv->token);
        return 0;
}

static void serves_restore(struct daemon *d, struct saved_serve *v, unsigned n) {
        char dir[4200];
        DIR *dd;
        struct dirent *de;

        for (unsigned i = 0; i < n; i++) {
                if (serve_restore_one(d, &v[i]) >= 0)
                        continue;
                log_warning("dropping page server %s from the fd store: %s", v[i].token, gmem_last_error());
                for (unsigned k = 0; k < SERVE_FDS; k++)
                        if (v[i].fds[k] >= 0)
                                close(v[i].fds[k]);
                serve_fdstore_remove(v[i].token);
                {
                        char path[4200];
                        if (serve_metadata_path(d, v[i].token, path, sizeof(path)) == 0)
                                (void) unlink(path);
                }
        }
        /* metadata whose fds did not come back: that page server is gone */
        snprintf(dir, sizeof(dir), "%s/serve", d->state_dir);
        dd = opendir(dir);
        while (dd && (de = readdir(dd))) {
                size_t len = strlen(de->d_name);
                bool known = false;
                if (de->d_name[0] == '.')
                        continue;
                for (unsigned i = 0; i < n && !known; i++)
                        known = len == 21 && strncmp(de->d_name, v[i].token, 16) == 0 && v[i].fds[SERVE_UFFD] < 0;
                if (!known)
                        (void) unlinkat(dirfd(dd), de->d_name, 0);
        }
        if (dd)
                closedir(dd);
}

static const char *holder_role(const char *s) {
        /* the role strings are static: map back to them */
        static const char *const roles[] = { "created", "registered", "opened" };
        for (size_t i = 0; i < ELEMENTSOF(roles); i++)
                if (s && strcmp(s, roles[i]) == 0)
                        return roles[i];
        return "opened";
}

static int parse_ids(const cJSON *arr, const char *what, uint32_t *ids, unsigned *n) {
        const cJSON *item;

        if (arr && !cJSON_IsArray(arr))
                return gmem_error(-EBADMSG, "%s: not an array", what);
        cJSON_ArrayForEach(item, arr) {
                uint64_t v;
                if (proto_number_to_u64(item, &v) < 0 || v >= UINT32_MAX)
                        return gmem_error(-EBADMSG, "%s: not a uid/gid", what);
                if (*n >= REGION_MAX_GRANTS)
                        return gmem_error(-EBADMSG, "%s: more than %d", what, REGION_MAX_GRANTS);
                ids[(*n)++] = (uint32_t) v;
        }
        return 0;
}

int store_parse_metadata(const char *text, size_t n, struct saved_region *ret) {
        _cleanup_(cJSON_Deletep) cJSON *meta = cJSON_ParseWithLength(text, n);
        struct saved_region sr = { .policy = GMEM_POLICY_KEEP };
        const char *backend_name = NULL, *policy = "keep", *state = "empty";
        const cJSON *grants, *holders, *item;
        uint64_t owner = 0;
        int k;

        if (!cJSON_IsObject(meta))
                return gmem_error(-EBADMSG, "not a JSON object");
        if ((k = json_get_str(meta, "backend", true, NULL, &backend_name)) < 0 ||
            (k = json_get_u64(meta, "size", true, 0, &sr.size)) < 0 || (k = json_get_u64(meta, "flags", false, 0, &sr.flags)) < 0 ||
            (k = json_get_u64(meta, "owner_uid", true, 0, &owner)) < 0 ||
            (k = json_get_str(meta, "policy", false, "keep", &policy)) < 0 ||
            (k = json_get_str(meta, "state", false, "empty", &state)) < 0 ||
            (k = json_get_u64(meta, "populated_bytes", false, 0, &sr.populated_bytes)) < 0 ||
            (k = json_get_u64(meta, "created_usec", false, 0, &sr.created_usec)) < 0 ||
            (k = gmem_backend_from_string(backend_name, &sr.backend)) < 0)
                return gmem_error_wrap(-EBADMSG, "%s", gmem_last_error());
        if (owner >= UINT32_MAX)
                return gmem_error(-EBADMSG, "owner_uid %" PRIu64 " is out of range", owner);
        sr.owner = (uid_t) owner;
        if (gmem_policy_from_string(policy, &sr.policy) < 0)
                sr.policy = GMEM_POLICY_KEEP; /* metadata from an older gmemd: kept, as it always was */
        if (gmem_region_state_from_string(state, &sr.state) < 0)
                sr.state = GMEM_REGION_EMPTY;
        if (sr.state == GMEM_REGION_POPULATING) /* the job died with the old daemon */
                sr.state = sr.populated_bytes ? GMEM_REGION_POPULATED : GMEM_REGION_EMPTY;
        grants = cJSON_GetObjectItemCaseSensitive(meta, "grants");
        if ((k = parse_ids(cJSON_GetObjectItemCaseSensitive(grants, "uids"), "grants.uids", sr.grant_uids, &sr.n_grant_uids)) < 0 ||
            (k = parse_ids(cJSON_GetObjectItemCaseSensitive(grants, "gids"), "grants.gids", sr.grant_gids, &sr.n_grant_gids)) < 0)
                return k;
        /* the holders as they were: all of them gone with the old daemon's connections */
        holders = cJSON_GetObjectItemCaseSensitive(meta, "holders");
        if (!cJSON_IsArray(holders))
                holders = NULL;
        cJSON_ArrayForEach(item, holders) {
                uint64_t pid = 0, uid = 0;
                const char *role = NULL;
                if (sr.n_holders >= REGION_MAX_HOLDERS || json_get_u64(item, "pid", false, 0, &pid) < 0 ||
                    json_get_u64(item, "uid", false, 0, &uid) < 0 || json_get_str(item, "role", false, NULL, &role) < 0 ||
                    pid > INT32_MAX || uid >= UINT32_MAX)
                        continue;
                sr.holders[sr.n_holders++] = (struct holder) { .pid = (pid_t) pid, .uid = (uid_t) uid, .role = holder_role(role) };
        }
        *ret = sr;
        return 0;
}

/* Rebuild one region from its fd and metadata; the fd is ours either way. */
static int restore_one(struct daemon *d, const char *name, int fd) {
        _cleanup_close_ int fd_owned = fd;
        _cleanup_free_ char *text = NULL;
        struct gmem_region *r = NULL;
        struct peer owner_peer = {};
        struct saved_region sr;
        struct managed *m = NULL;
        size_t n = 0;
        int k;

        if ((k = read_metadata(d, name, &text, &n)) < 0)
                return k;
        if ((k = store_parse_metadata(text, n, &sr)) < 0)
                return gmem_error_wrap(k, "metadata of region '%s'", name);
        k = sr.backend == GMEM_BACKEND_GUEST_MEMFD ? gmem_region_adopt_guest_memfd_caps(d->caps, fd, sr.flags, &r)
                                                    : gmem_region_adopt_caps(d->caps, fd, &r);
        if (k < 0)
                return gmem_error_wrap(k, "region '%s' from the fd store", name);
        TAKE_FD(fd_owned); /* the region's now */
        if (gmem_region_backend(r) != sr.backend || gmem_region_size(r) != sr.size) {
                k = gmem_error(-EINVAL, "region '%s': the stored fd is a %s of %" PRIu64 " bytes, the metadata says %s of %"
                               PRIu64, name, gmem_backend_to_string(gmem_region_backend(r)), gmem_region_size(r),
                               gmem_backend_to_string(sr.backend), sr.size);
                gmem_region_free(r);
                return k;
        }
        owner_peer.uid = sr.owner;
        k = region_add(d, name, r, &owner_peer, NULL, sr.policy, "registered", false, &m);
        if (k < 0) {
                gmem_region_free(r);
                return k;
        }
        memcpy(m->grant_uids, sr.grant_uids, sizeof(m->grant_uids));
        m->n_grant_uids = sr.n_grant_uids;
        memcpy(m->grant_gids, sr.grant_gids, sizeof(m->grant_gids));
        m->n_grant_gids = sr.n_grant_gids;
        if (sr.n_holders) {
                memcpy(m->holders, sr.holders, sizeof(m->holders));
                m->n_holders = sr.n_holders;
        }
        m->creator = NULL;
        m->populated_bytes = sr.populated_bytes;
        m->created_usec = sr.created_usec ?: m->created_usec;
        m->state = sr.state;
        m->stored = true;
        (void) write_metadata(d, m);
        log_info("region '%s' restored from the fd store: %s, %" PRIu64 " bytes, owner uid %u, %u+%u grants",
                 name, gmem_backend_to_string(sr.backend), sr.size, (unsigned) sr.owner, m->n_grant_uids, m->n_grant_gids);
        return 0;
}

int store_restore_fds(struct daemon *d, int n, char **names, int listen_fd) {
        _cleanup_free_ struct saved_serve *serves = calloc(SERVES_MAX, sizeof(*serves));
        unsigned n_serves = 0;
        char dir[4200];
        unsigned restored = 0;
        DIR *dd;
        struct dirent *de;

        if (!serves)
                return gmem_error(-ENOMEM, "fd store");
        d->restoring = true;
        for (int i = 0; i < n; i++) {
                int fd = SD_LISTEN_FDS_START + i;
                const char *fdname = names ? names[i] : NULL;

                if (fd == listen_fd)
                        continue;
                /* a page server's fds: gathered, brought back once the regions are */
                if (fdname && d->store_enabled && strncmp(fdname, SERVE_PREFIX, strlen(SERVE_PREFIX)) == 0 &&
                    serve_entry(serves, &n_serves, fdname, fd))
                        continue;
                if (!fdname || strncmp(fdname, FDNAME_PREFIX, strlen(FDNAME_PREFIX)) != 0 ||
                    !proto_name_valid(fdname + strlen(FDNAME_PREFIX)) || !d->store_enabled) {
                        /* not ours, or no store to keep it in: drop it, as logind does */
                        log_warning("dropping an unrecognised fd '%s' passed in by systemd", fdname ?: "(unnamed)");
                        close(fd);
                        if (fdname)
                                fdstore_remove(fdname);
                        continue;
                }
                if (restore_one(d, fdname + strlen(FDNAME_PREFIX), fd) < 0) {
                        log_warning("dropping fd store entry '%s': %s", fdname, gmem_last_error());
                        fdstore_remove(fdname);
                } else
                        restored++;
        }
        d->restoring = false;

        /* metadata whose fd did not come back describes memory that is gone */
        if (d->store_enabled) {
                snprintf(dir, sizeof(dir), "%s/regions", d->state_dir);
                dd = opendir(dir);
                while (dd && (de = readdir(dd))) {
                        size_t len = strlen(de->d_name);
                        char name[PROTO_NAME_MAX + 1];
                        if (len <= 5 || strcmp(de->d_name + len - 5, ".json") != 0 || len - 5 > PROTO_NAME_MAX)
                                continue;
                        snprintf(name, sizeof(name), "%.*s", (int) (len - 5), de->d_name);
                        if (!region_find(d, name)) {
                                log_warning("region '%s': metadata without memory (its fd was not passed back); removing it",
                                            name);
                                (void) unlinkat(dirfd(dd), de->d_name, 0);
                        }
                }
                if (dd)
                        closedir(dd);
        }
        if (restored)
                log_notice("restored %u region%s from systemd's fd store", restored, restored == 1 ? "" : "s");
        if (d->store_enabled)
                serves_restore(d, serves, n_serves);
        return 0;
}


void store_status(struct daemon *d) {
        char msg[160];
        if (!getenv("NOTIFY_SOCKET"))
                return;
        snprintf(msg, sizeof(msg), "STATUS=%" PRIu64 " region%s, %" PRIu64 " MiB held, %" PRIu64 " client%s", d->n_regions,
                 d->n_regions == 1 ? "" : "s", d->bytes_total >> 20, d->n_sessions, d->n_sessions == 1 ? "" : "s");
        (void) sd_notify(0, msg);
}
