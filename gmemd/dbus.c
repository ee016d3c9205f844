/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The D-Bus management API, org.gmem.Broker1 (docs/dbus.md, dbus/org.gmem.Broker1.xml), on sd-bus
 * inside gmemd's libevent loop.
 *
 * Loop integration: libevent has no "prepare" hook, so whatever sd-bus wants (the fd's events, its
 * next timeout) is re-read after every drain of sd_bus_process() and after every message sent from
 * another callback (a job's progress, a region created over the socket): rearm().
 *
 * Every method call first learns who sent it: the bus daemon's GetConnectionCredentials (uid, pid
 * and groups, all from the kernel, never from /proc), asked asynchronously so the loop never waits
 * for the bus; the reply continues the call, so calls are answered in the order they came. Then it
 * is an action (actions.c), which checks rights and input exactly as for the socket, for the
 * caller's session: one per bus peer (its unique name), ended when the peer leaves the bus
 * (sd_bus_track), so policy "connection" ties a region to the peer as it does to a socket
 * connection. ListRegions and GetRegion show what the core lets the caller see; properties,
 * introspection and signals are readable as the bus policy allows; see docs/dbus.md.
 */
#include <assert.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <systemd/sd-bus.h>

#include "actions.h"
#include "caps-internal.h"
#include "dbus-json.h"
#include "dbus-polkit.h"
#include "dbus.h"
#include "error.h"
#include "log.h"
#include "notify.h"

#define BUS_NAME "org.gmem.Broker1"
#define MANAGER_PATH "/org/gmem/Broker1"
#define MANAGER_IFACE "org.gmem.Broker1.Manager"
#define REGION_PREFIX "/org/gmem/Broker1/region"
#define REGION_IFACE "org.gmem.Broker1.Region"
#define JOB_PREFIX "/org/gmem/Broker1/job"
#define JOB_IFACE "org.gmem.Broker1.Job"
#define ERROR_PREFIX "org.gmem.Broker1.Error."
#define NO_JOB_PATH "/"
#define GMEM_GROUP "gmem"

/* messages handled per wakeup before the loop gets to the other sources */
#define PROCESS_BATCH 256

struct bus_peer;

struct dbus_state {
        struct daemon *d;
        struct bus_peer *peers;         /* the peers that called, each a session of the core */
        uint64_t n_peers;
        sd_bus *bus;
        char *bus_desc;
        struct event *ev_read, *ev_write, *ev_timer;
        struct event *ev_counts;        /* RegionCount/TotalBytes changed: emitted once the change is done */
        struct event *ev_lost;          /* the bus is gone: the peers' sessions end */
        bool read_armed, write_armed;
        bool lost;                      /* the connection is gone: the hooks do nothing any more */
        bool stopping;                  /* gmemd stops: calls are refused, the last replies go out */
        gid_t gmem_gid;                 /* group gmem, whose members need no polkit; -1: none */
        struct pending_call *pending;   /* calls waiting for the bus daemon or polkit */
        unsigned n_checks;              /* of them, waiting for polkit */
};

/* A peer on the bus, from its first call until it leaves the bus. */
struct bus_peer {
        struct bus_peer *prev, *next;
        struct dbus_state *s;
        char *name;                     /* its unique name */
        struct session *session;
        sd_bus_track *track;
};

/* Standard names where D-Bus has them (sd-bus maps them to errnos by itself); gmem's own only for
 * what no standard name says, as machined has NoSuchMachine. */
static const sd_bus_error_map gmem_bus_errors[] = {
        SD_BUS_ERROR_MAP(ERROR_PREFIX "NoSuchRegion", ENOENT),
        SD_BUS_ERROR_MAP(ERROR_PREFIX "NoSuchJob", ENOENT),
        SD_BUS_ERROR_MAP(ERROR_PREFIX "Exists", EEXIST),
        SD_BUS_ERROR_MAP(ERROR_PREFIX "QuotaExceeded", EDQUOT),
        SD_BUS_ERROR_MAP(ERROR_PREFIX "Busy", EBUSY),
        SD_BUS_ERROR_MAP(ERROR_PREFIX "ShortSource", ENODATA),
        SD_BUS_ERROR_MAP(ERROR_PREFIX "Cancelled", ECANCELED),
        SD_BUS_ERROR_MAP(ERROR_PREFIX "BadSnapshot", EBADMSG),
        SD_BUS_ERROR_MAP_END,
};

static const char *error_name(int err, bool job) {
        switch (err < 0 ? -err : err) {
        case ENOENT:
                return job ? ERROR_PREFIX "NoSuchJob" : ERROR_PREFIX "NoSuchRegion";
        case EACCES:
        case EPERM:
                return SD_BUS_ERROR_ACCESS_DENIED;
        case EEXIST:
                return ERROR_PREFIX "Exists";
        case EINVAL:
        case ERANGE:
                return SD_BUS_ERROR_INVALID_ARGS;
        case EDQUOT:
                return ERROR_PREFIX "QuotaExceeded";
        case ENOSPC:
                return SD_BUS_ERROR_LIMITS_EXCEEDED;
        case EBUSY:
                return ERROR_PREFIX "Busy";
        case EOPNOTSUPP:
                return SD_BUS_ERROR_NOT_SUPPORTED;
        case ENODATA:
                return ERROR_PREFIX "ShortSource";
        case ECANCELED:
                return ERROR_PREFIX "Cancelled";
        case EBADMSG:
        case EPROTONOSUPPORT:
                return ERROR_PREFIX "BadSnapshot";
        case ENOMEM:
                return SD_BUS_ERROR_NO_MEMORY;
        case EIO:
                return SD_BUS_ERROR_IO_ERROR;
        default:
                return SD_BUS_ERROR_FAILED;
        }
}

/* An action failed with err: its named error, with the action's message. */
static int fail(sd_bus_error *e, int err, bool job) {
        const char *msg = gmem_last_error();
        log_debug("D-Bus: %s: %s", error_name(err, job), msg);
        return sd_bus_error_set(e, error_name(err, job), msg && *msg ? msg : strerror(err < 0 ? -err : err));
}

static struct dbus_state *live(struct dbus_state *s) {
        return s && !s->lost ? s : NULL;
}

static void rearm(struct dbus_state *s);
static void emitted(struct dbus_state *s, int k, const char *what, const char *about);

/* ---------------------------------------------------------------------------------------------
 * Names and paths
 */

static int region_path(const char *name, char **ret) {
        return sd_bus_path_encode(REGION_PREFIX, name, ret);
}

static int job_path(uint64_t id, char **ret) {
        return asprintf(ret, JOB_PREFIX "/%" PRIu64, id) < 0 ? -ENOMEM : 0;
}

/* The published region a path names; only the canonical encoding of its name counts. */
static struct managed *region_of_path(struct daemon *d, const char *path) {
        _cleanup_free_ char *name = NULL, *canonical = NULL;
        struct managed *m;

        if (sd_bus_path_decode(path, REGION_PREFIX, &name) <= 0 || !proto_name_valid(name))
                return NULL;
        if (region_path(name, &canonical) < 0 || strcmp(canonical, path) != 0)
                return NULL;
        m = region_find(d, name);
        return m && !m->hidden && !m->released ? m : NULL;
}

/* The job id a path names (decimal, no leading zeros), or 0. */
static uint64_t job_id_of_path(const char *path) {
        const char *p = path;
        uint64_t id = 0;

        if (strncmp(p, JOB_PREFIX "/", strlen(JOB_PREFIX "/")) != 0)
                return 0;
        p += strlen(JOB_PREFIX "/");
        if (*p < '1' || *p > '9')
                return 0;
        for (; *p; p++) {
                if (*p < '0' || *p > '9' || id > (UINT64_MAX - 9) / 10)
                        return 0;
                id = id * 10 + (uint64_t) (*p - '0');
        }
        return id;
}

static struct job *job_of_path(struct daemon *d, const char *path) {
        uint64_t id = job_id_of_path(path);
        struct job *j = id ? job_find(d, id) : NULL;
        return j && !job_hidden(j) ? j : NULL;
}

/* ---------------------------------------------------------------------------------------------
 * The caller
 */

/* The reply to GetConnectionCredentials: who sent a call, as the bus daemon knows it from the kernel
 * (SO_PEERCRED, SO_PEERGROUPS); never from /proc, which a process could exit and leave to another
 * by the time it is read. */
static int parse_credentials(sd_bus_message *reply, const char *sender, struct peer *ret, sd_bus_error *e) {
        struct peer p = { .gid = (gid_t) -1 };
        bool have_uid = false;
        int k;

        if (sd_bus_message_is_method_error(reply, NULL)) {
                const sd_bus_error *err = sd_bus_message_get_error(reply);
                return sd_bus_error_setf(e, SD_BUS_ERROR_ACCESS_DENIED, "the credentials of %s are unknown: %s", sender,
                                         err && err->message ? err->message : "no answer");
        }
        if ((k = sd_bus_message_enter_container(reply, 'a', "{sv}")) < 0)
                goto bad;
        while ((k = sd_bus_message_enter_container(reply, 'e', "sv")) > 0) {
                const char *key, *contents;
                uint32_t u;

                if ((k = sd_bus_message_read(reply, "s", &key)) < 0 ||
                    (k = sd_bus_message_peek_type(reply, NULL, &contents)) < 0)
                        goto bad;
                if (strcmp(key, "UnixUserID") == 0 && strcmp(contents, "u") == 0) {
                        if ((k = sd_bus_message_read(reply, "v", "u", &u)) < 0)
                                goto bad;
                        p.uid = u;
                        have_uid = true;
                } else if (strcmp(key, "ProcessID") == 0 && strcmp(contents, "u") == 0) {
                        if ((k = sd_bus_message_read(reply, "v", "u", &u)) < 0)
                                goto bad;
                        p.pid = (pid_t) u;
                } else if (strcmp(key, "UnixGroupIDs") == 0 && strcmp(contents, "au") == 0) {
                        /* primary and supplementary groups: region_may() looks at both lists */
                        const uint32_t *gids;
                        size_t size;

                        if ((k = sd_bus_message_enter_container(reply, 'v', "au")) < 0 ||
                            (k = sd_bus_message_read_array(reply, 'u', (const void **) &gids, &size)) < 0 ||
                            (k = sd_bus_message_exit_container(reply)) < 0)
                                goto bad;
                        /* gid_t is uint32_t: the reply's array is the list, valid while the reply is */
                        p.groups = (const gid_t *) gids;
                        p.n_groups = (unsigned) (size / sizeof(uint32_t));
                } else if ((k = sd_bus_message_skip(reply, "v")) < 0)
                        goto bad;
                if ((k = sd_bus_message_exit_container(reply)) < 0)
                        goto bad;
        }
        if (k < 0)
                goto bad;
        if (!have_uid)
                return sd_bus_error_setf(e, SD_BUS_ERROR_ACCESS_DENIED, "the bus does not say which uid %s has", sender);
        *ret = p;
        return 0;
bad:
        return sd_bus_error_setf(e, SD_BUS_ERROR_FAILED, "the credentials of %s: unreadable reply: %s", sender, strerror(-k));
}

/* What a method acts on besides its arguments: a Region method's region (its object path), a Job's
 * id (which outlives the job). */
struct target {
        const char *region;
        uint64_t job_id;
};

/* A method call's second half: reads its arguments, acts for p, replies (or fails with e set). se
 * is the caller's session, NULL for the methods that only look (AUTH_ANYONE). */
typedef int (*call_fn)(struct dbus_state *s, sd_bus_message *msg, struct session *se, const struct peer *p,
                       const struct target *t, sd_bus_error *e);

/* Who may call a method at all, before gmemd's rules decide what it may do to which region. */
enum auth {
        AUTH_ANYONE,    /* it only looks, and sees what the core lets the caller see */
        AUTH_MANAGE,    /* root, group gmem, or polkit's POLKIT_ACTION_MANAGE */
        AUTH_OPEN,      /* the same with POLKIT_ACTION_OPEN: it hands out guest memory (open) or its
                         * contents (dump, snapshot) */
};

struct method {
        call_fn fn;
        enum auth auth;
        const char *op;         /* polkit's detail "operation", e.g. "populate" */
        bool name_first;        /* a Manager method whose first argument is the region's name */
};

/* the polkit action a caller outside group gmem needs for m */
static const char *polkit_action(const struct method *m) {
        return m->auth == AUTH_OPEN ? POLKIT_ACTION_OPEN : POLKIT_ACTION_MANAGE;
}

/* polkit checks in flight for one uid, at most: a caller cannot pile up work in gmemd faster than
 * polkitd answers (dbus-daemon bounds the calls per connection, not per uid); and in all, well
 * below what dbus-daemon lets one connection wait for (max_replies_per_connection) */
#define POLKIT_PENDING_PER_UID 16
#define POLKIT_PENDING_MAX 256

struct pending_call {
        struct pending_call *prev, *next; /* in dbus_state.pending until it is freed */
        unsigned n_ref;                   /* the slots of the calls to the bus daemon and polkitd */
        struct dbus_state *s;
        sd_bus_message *msg;    /* the method call, answered once the caller is known (and allowed) */
        sd_bus_message *creds;  /* GetConnectionCredentials' reply: peer.groups point into it */
        const struct method *m;
        struct target t;
        char *region;           /* t.region's storage */
        struct peer peer;
        bool checking;          /* polkit is asked (counted in s->n_checks) */
        bool answered;          /* refused while gmemd stopped: nothing more to do */
};

static struct pending_call *pending_call_ref(struct pending_call *c) {
        c->n_ref++;
        return c;
}

static void pending_call_unref(void *userdata) {
        struct pending_call *c = userdata;

        if (!c || --c->n_ref > 0)
                return;
        if (c->s) { /* NULL: gmemd's D-Bus state is gone already */
                LIST_REMOVE(c->s->pending, c);
                if (c->checking)
                        c->s->n_checks--;
        }
        sd_bus_message_unref(c->msg);
        sd_bus_message_unref(c->creds);
        free(c->region);
        free(c);
}

static struct bus_peer *bus_peer_free(struct bus_peer *bp) {
        if (!bp)
                return NULL;
        LIST_REMOVE(bp->s->peers, bp);
        bp->s->n_peers--;
        sd_bus_track_unref(bp->track);
        if (bp->session) {
                session_end(bp->session);
                session_unref(bp->session);
        }
        free(bp->name);
        free(bp);
        return NULL;
}

static int on_peer_gone(sd_bus_track *t _unused_, void *userdata) {
        struct bus_peer *bp = userdata;
        log_debug("D-Bus: %s left the bus", bp->name);
        bus_peer_free(bp);
        return 0;
}

/* An asynchronous call to the bus daemon about a peer's name; the slot floats, and destroy frees
 * userdata when the reply is handled (or the bus goes). On failure userdata is the caller's. */
static int ask_bus(struct dbus_state *s, const char *method, sd_bus_message_handler_t cb, void *userdata,
                   sd_bus_destroy_t destroy, const char *name) {
        sd_bus_slot *slot = NULL;
        int k = sd_bus_call_method_async(s->bus, &slot, "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                                         method, cb, userdata, "s", name);
        if (k < 0)
                return k;
        (void) sd_bus_slot_set_destroy_callback(slot, destroy);
        (void) sd_bus_slot_set_floating(slot, 1);
        sd_bus_slot_unref(slot);
        return 0;
}

struct name_check {
        struct dbus_state *s;
        char name[];
};

/* The peer may have left before its name was tracked: then no NameOwnerChanged will come. */
static int on_name_owner(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error _unused_) {
        struct name_check *c = userdata;

        if (!sd_bus_message_is_method_error(reply, NULL))
                return 0;
        for (struct bus_peer *bp = c->s->peers; bp; bp = bp->next)
                if (strcmp(bp->name, c->name) == 0) {
                        log_debug("D-Bus: %s left the bus before its first call was answered", bp->name);
                        bus_peer_free(bp);
                        break;
                }
        return 0;
}

static int check_name(struct dbus_state *s, const char *name) {
        struct name_check *c = malloc(sizeof(*c) + strlen(name) + 1);
        int k;

        if (!c)
                return -ENOMEM;
        c->s = s;
        strcpy(c->name, name);
        k = ask_bus(s, "GetNameOwner", on_name_owner, c, free, name);
        if (k < 0)
                free(c);
        return k;
}

/* The session of the peer that sent msg, made on its first call. */
static int peer_session(struct dbus_state *s, sd_bus_message *msg, const struct peer *p, struct session **ret,
                        sd_bus_error *e) {
        const char *sender = sd_bus_message_get_sender(msg), *full;
        struct bus_peer *bp;
        int k;

        for (bp = s->peers; bp; bp = bp->next)
                if (strcmp(bp->name, sender) == 0) {
                        *ret = bp->session;
                        return 0;
                }
        if ((full = session_refused(s->d, p->uid)))
                return sd_bus_error_setf(e, SD_BUS_ERROR_LIMITS_EXCEEDED, "uid %u: %s", (unsigned) p->uid, full);
        bp = calloc(1, sizeof(*bp));
        if (!bp)
                return -ENOMEM;
        bp->s = s;
        LIST_PREPEND(s->peers, bp);
        s->n_peers++;
        if (!(bp->name = strdup(sender)) || (k = session_new(s->d, p, "D-Bus", true, &bp->session)) < 0 ||
            (k = sd_bus_track_new(s->bus, &bp->track, on_peer_gone, bp)) < 0 ||
            (k = sd_bus_track_add_name(bp->track, sender)) < 0) {
                bus_peer_free(bp);
                return sd_bus_error_setf(e, SD_BUS_ERROR_NO_MEMORY, "track %s on the bus: %s", sender, strerror(ENOMEM));
        }
        /* asked after the match is in: whichever way the peer leaves, one of the two tells */
        if ((k = check_name(s, sender)) < 0) {
                bus_peer_free(bp);
                return k;
        }
        *ret = bp->session;
        return 0;
}

static void refuse(struct pending_call *c, sd_bus_error *e);

/* The caller is known, and allowed in: its session (for the methods that act), then the method. */
static void proceed(struct pending_call *c) {
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        struct session *se = NULL;
        const struct peer *p = &c->peer;
        int k = 0;

        if (c->s->stopping) { /* no new sessions, no new work: the core is going */
                sd_bus_error_set(&e, SD_BUS_ERROR_FAILED, "gmemd is stopping");
                refuse(c, &e);
                return;
        }
        c->answered = true;
        gmem_error_clear();
        if (c->m->auth != AUTH_ANYONE && (k = peer_session(c->s, c->msg, &c->peer, &se, &e)) >= 0)
                p = &se->peer;
        if (k >= 0)
                k = c->m->fn(c->s, c->msg, se, p, &c->t, &e);
        if (k < 0) {
                if (!sd_bus_error_is_set(&e))
                        sd_bus_error_set_errno(&e, k);
                (void) sd_bus_reply_method_error(c->msg, &e);
        }
}

static void refuse(struct pending_call *c, sd_bus_error *e) {
        c->answered = true;
        log_debug("D-Bus: %s %s of uid %u: %s", sd_bus_message_get_member(c->msg), c->region ?: "", (unsigned) c->peer.uid,
                  e->message);
        (void) sd_bus_reply_method_error(c->msg, e);
}

/* root (or gmemd's own uid: a user's gmemd on its session bus), or a member of group gmem. The bus
 * daemon reports the groups the caller's process has (SO_PEERGROUPS), which after a login include
 * the user's primary group; no primary gid comes with them. */
static bool privileged(const struct dbus_state *s, const struct peer *p) {
        if (p->uid == 0 || p->uid == geteuid())
                return true;
        if (s->gmem_gid == (gid_t) -1)
                return false;
        if (p->gid == s->gmem_gid)
                return true;
        for (unsigned i = 0; i < p->n_groups; i++)
                if (p->groups[i] == s->gmem_gid)
                        return true;
        return false;
}

static int on_polkit(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error _unused_) {
        struct pending_call *c = userdata;
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        _cleanup_free_ char *who = NULL;
        const char *action = polkit_action(c->m);

        if (c->answered)
                return 0;
        if (asprintf(&who, "uid %u", (unsigned) c->peer.uid) < 0)
                who = NULL;
        if (polkit_verdict(reply, who ?: "the caller", action, sd_bus_message_get_allow_interactive_authorization(c->msg) > 0,
                           &e) > 0)
                proceed(c);
        else
                refuse(c, &e);
        return 0; /* the floating slot goes now, and our reference with it */
}

/* Neither root nor in group gmem: polkit decides, with the region and the operation as details. */
static int ask_polkit(struct pending_call *c, sd_bus_error *e) {
        const char *sender = sd_bus_message_get_sender(c->msg), *name = c->t.region;
        const char *details[5] = { "operation", c->m->op, NULL, NULL, NULL };
        unsigned n = 0;
        int k;

        if (c->s->n_checks >= POLKIT_PENDING_MAX)
                return sd_bus_error_setf(e, SD_BUS_ERROR_LIMITS_EXCEEDED, "%u calls are waiting for polkit already",
                                         c->s->n_checks);
        for (struct pending_call *o = c->s->pending; o; o = o->next)
                if (o->checking && o->peer.uid == c->peer.uid && ++n >= POLKIT_PENDING_PER_UID)
                        return sd_bus_error_setf(e, SD_BUS_ERROR_LIMITS_EXCEEDED, "uid %u has %u calls waiting for polkit already",
                                                 (unsigned) c->peer.uid, n);
        if (!name && c->m->name_first) {
                /* the region is the first argument: read it, and leave the message for the method */
                if (sd_bus_message_read(c->msg, "s", &name) < 0 || sd_bus_message_rewind(c->msg, true) < 0)
                        name = NULL;
        }
        if (name) {
                details[2] = "region";
                details[3] = name;
        }
        k = polkit_check_async(c->s->bus, sender, polkit_action(c->m), details,
                               sd_bus_message_get_allow_interactive_authorization(c->msg) > 0, on_polkit,
                               pending_call_ref(c), pending_call_unref);
        if (k < 0) {
                c->n_ref--;
                return sd_bus_error_setf(e, SD_BUS_ERROR_ACCESS_DENIED, "uid %u is neither root nor in group gmem, and polkit "
                                         "cannot be asked: %s", (unsigned) c->peer.uid, strerror(-k));
        }
        c->checking = true;
        c->s->n_checks++;
        return 0;
}

static int on_credentials(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error _unused_) {
        struct pending_call *c = userdata;
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;

        if (c->answered)
                return 0;
        c->creds = sd_bus_message_ref(reply);
        if (parse_credentials(reply, sd_bus_message_get_sender(c->msg), &c->peer, &e) < 0 ||
            (c->m->auth != AUTH_ANYONE && !privileged(c->s, &c->peer) && ask_polkit(c, &e) < 0)) {
                if (!sd_bus_error_is_set(&e))
                        sd_bus_error_set_errno(&e, -ENOMEM);
                refuse(c, &e);
        } else if (!c->checking)
                proceed(c);
        return 0; /* the floating slot goes now, and its reference with it */
}

/* Answer msg with m once the bus daemon said who sent it (and polkit, if it must, said yes). */
static int call_with_caller(struct dbus_state *s, sd_bus_message *msg, const struct method *m, const struct target *t,
                            sd_bus_error *e) {
        const char *sender = sd_bus_message_get_sender(msg);
        struct pending_call *c;
        int k;

        if (!sender)
                return sd_bus_error_set(e, SD_BUS_ERROR_ACCESS_DENIED, "the caller has no bus name: its uid is unknown");
        if (s->stopping)
                return sd_bus_error_set(e, SD_BUS_ERROR_FAILED, "gmemd is stopping");
        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        *c = (struct pending_call) { .n_ref = 1, .s = s, .msg = sd_bus_message_ref(msg), .m = m, .t = *t };
        LIST_PREPEND(s->pending, c);
        if (t->region && !(c->t.region = c->region = strdup(t->region))) {
                pending_call_unref(c);
                return -ENOMEM;
        }
        k = ask_bus(s, "GetConnectionCredentials", on_credentials, c, pending_call_unref, sender);
        if (k < 0) {
                pending_call_unref(c);
                return k;
        }
        return 1;
}

/* A Region method's call: the region by the object's path (which the fallback's find callback
 * found canonical and published); gmemd's rules decide on it by name, as for the Manager's calls. */
static int call_on_region(struct dbus_state *s, sd_bus_message *msg, const struct method *m, sd_bus_error *e) {
        _cleanup_free_ char *name = NULL;

        if (sd_bus_path_decode(sd_bus_message_get_path(msg), REGION_PREFIX, &name) <= 0)
                return sd_bus_error_setf(e, SD_BUS_ERROR_UNKNOWN_OBJECT, "'%.200s' is not a region", sd_bus_message_get_path(msg));
        return call_with_caller(s, msg, m, &(const struct target) { .region = name }, e);
}

/* A Manager method: answered through fn once the caller is known and allowed. */
#define METHOD(name, fn, auth, op, name_first)                                                             \
        static int name(sd_bus_message *msg, void *userdata, sd_bus_error *e) {                           \
                static const struct method m_ = { fn, auth, op, name_first };                               \
                return call_with_caller(userdata, msg, &m_, &(const struct target) { 0 }, e);                \
        }

/* A Region method: the region is the object's; fn reads the same arguments after the name. */
#define REGION_METHOD(name, fn, auth, op)                                                                   \
        static int name(sd_bus_message *msg, void *userdata, sd_bus_error *e) {                           \
                static const struct method m_ = { fn, auth, op, false };                                    \
                return call_on_region(userdata, msg, &m_, e);                                               \
        }

/* a{sv} options: each known key with its type; anything else is refused */
struct option_spec {
        const char *key;
        char type;     /* 'b' (int), 't' (uint64_t) or 's' (const char *) */
        void *value;
        bool *seen;
};

static int read_options(sd_bus_message *msg, const struct option_spec *specs, size_t n, sd_bus_error *e) {
        uint64_t given = 0; /* which specs came already: an option given twice is refused, not guessed */
        int k;

        assert(n <= 64);

        if ((k = sd_bus_message_enter_container(msg, 'a', "{sv}")) < 0)
                return k;
        while ((k = sd_bus_message_enter_container(msg, 'e', "sv")) > 0) {
                const struct option_spec *o = NULL;
                const char *key, *contents;
                char sig[2];

                if ((k = sd_bus_message_read(msg, "s", &key)) < 0 || (k = sd_bus_message_peek_type(msg, NULL, &contents)) < 0)
                        return k;
                for (size_t i = 0; i < n; i++)
                        if (strcmp(specs[i].key, key) == 0)
                                o = &specs[i];
                if (!o)
                        return sd_bus_error_setf(e, SD_BUS_ERROR_INVALID_ARGS, "unknown option '%.40s'", key);
                if (given & (UINT64_C(1) << (o - specs)))
                        return sd_bus_error_setf(e, SD_BUS_ERROR_INVALID_ARGS, "option '%s' is given twice", key);
                given |= UINT64_C(1) << (o - specs);
                sig[0] = o->type;
                sig[1] = 0;
                if (strcmp(contents, sig) != 0)
                        return sd_bus_error_setf(e, SD_BUS_ERROR_INVALID_ARGS, "option '%s' must be of type '%s', not '%.16s'",
                                                 key, sig, contents);
                if ((k = sd_bus_message_enter_container(msg, 'v', sig)) < 0 ||
                    (k = sd_bus_message_read_basic(msg, o->type, o->value)) < 0 ||
                    (k = sd_bus_message_exit_container(msg)) < 0 || (k = sd_bus_message_exit_container(msg)) < 0)
                        return k;
                if (o->seen)
                        *o->seen = true;
        }
        if (k < 0)
                return k;
        return sd_bus_message_exit_container(msg);
}

/* The named region the caller may act on (action_lookup's rules). */
static int lookup(struct dbus_state *s, const struct peer *p, const char *name, enum access a, const char *what,
                  struct managed **ret, sd_bus_error *e) {
        int k = action_lookup(s->d, p, name, a, what, ret);
        return k < 0 ? fail(e, k, false) : 0;
}

static int reply_job(sd_bus_message *msg, struct job *j) {
        _cleanup_free_ char *path = NULL;
        int k;

        if ((k = job_path(j->id, &path)) < 0)
                return k;
        return sd_bus_reply_method_return(msg, "o", path);
}

/* ---------------------------------------------------------------------------------------------
 * The requester: a job started over the bus emits its own JobProgress and JobFinished, whatever
 * becomes of its region (the subscriber below leaves such jobs to it).
 */

struct bus_request {
        struct requester rq;
        struct dbus_state *s;
};

static void request_progress(struct requester *rq, const struct job *j, uint64_t done, uint64_t total) {
        struct dbus_state *s = live(((struct bus_request *) rq)->s);
        _cleanup_free_ char *path = NULL;

        if (!s || job_path(j->id, &path) < 0)
                return;
        emitted(s, sd_bus_emit_signal(s->bus, MANAGER_PATH, MANAGER_IFACE, "JobProgress", "ostt", path, job_subject(j), done, total),
                "JobProgress", job_subject(j));
}

static void request_finished(struct requester *rq, const struct job *j) {
        struct dbus_state *s = live(((struct bus_request *) rq)->s);
        _cleanup_free_ char *path = NULL;
        bool ok = j->result == 0;

        if (!s || job_path(j->id, &path) < 0)
                return;
        emitted(s, sd_bus_emit_signal(s->bus, MANAGER_PATH, MANAGER_IFACE, "JobFinished", "osbts", path, job_subject(j), ok,
                                      ok ? (uint64_t) j->bytes : 0, ok ? "" : j->message),
                "JobFinished", job_subject(j));
}

static void request_free(struct requester *rq) {
        free(rq);
}

static const struct requester_ops request_ops = {
        .progress = request_progress,
        .finished = request_finished,
        .free = request_free,
};

/* NULL on ENOMEM, which the action reports */
static struct requester *request_new(struct dbus_state *s) {
        struct bus_request *r = calloc(1, sizeof(*r));
        if (!r)
                return NULL;
        *r = (struct bus_request) { .rq.ops = &request_ops, .s = s };
        return &r->rq;
}

/* A dup (CLOEXEC, above stdio) of an fd that came with a message: the message keeps its own. */
static int dup_message_fd(int fd, const char *what, sd_bus_error *e) {
        int copy = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        if (copy < 0)
                return sd_bus_error_setf(e, SD_BUS_ERROR_FAILED, "%s: dup the fd: %s", what, strerror(errno));
        return copy;
}

/* ---------------------------------------------------------------------------------------------
 * org.gmem.Broker1.Manager
 */

#define CALL_ARGS struct dbus_state *s, sd_bus_message *msg, struct session *se, const struct peer *p, \
                  const struct target *t, sd_bus_error *e

/* The region a call names: a Region method's own, else its first argument. */
static int read_name(sd_bus_message *msg, const struct target *t, const char **ret) {
        if (t->region) {
                *ret = t->region;
                return 0;
        }
        return sd_bus_message_read(msg, "s", ret);
}

static int list_regions(struct dbus_state *s, sd_bus_message *msg, struct session *se _unused_, const struct peer *p,
                        const struct target *t _unused_, sd_bus_error *e) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_free_ struct managed **v = NULL;
        size_t n = 0;
        int k;

        if ((k = action_list(s->d, p, &v, &n)) < 0)
                return fail(e, k, false);

        if ((k = sd_bus_message_new_method_return(msg, &reply)) < 0 ||
            (k = sd_bus_message_open_container(reply, 'a', "(sstuso)")) < 0)
                return k;
        for (size_t i = 0; i < n; i++) {
                _cleanup_free_ char *path = NULL;
                const struct managed *m = v[i];

                if ((k = region_path(m->name, &path)) < 0 ||
                    (k = sd_bus_message_append(reply, "(sstuso)", m->name,
                                               gmem_backend_to_string(gmem_region_backend(m->region)),
                                               gmem_region_size(m->region), (uint32_t) m->owner,
                                               gmem_region_state_to_string(m->state), path)) < 0)
                        return k;
        }
        if ((k = sd_bus_message_close_container(reply)) < 0)
                return k;
        return sd_bus_message_send(reply);
}
METHOD(method_list_regions, list_regions, AUTH_ANYONE, "list", false)

static int get_region(struct dbus_state *s, sd_bus_message *msg, struct session *se _unused_, const struct peer *p,
                      const struct target *t _unused_, sd_bus_error *e) {
        _cleanup_free_ char *path = NULL;
        struct managed *m;
        const char *name;
        int k;

        if ((k = sd_bus_message_read(msg, "s", &name)) < 0 || (k = lookup(s, p, name, ACCESS_SEE, "see", &m, e)) < 0)
                return k;
        if ((k = region_path(m->name, &path)) < 0)
                return k;
        return sd_bus_reply_method_return(msg, "o", path);
}
METHOD(method_get_region, get_region, AUTH_ANYONE, "info", true)

static int create_region(struct dbus_state *s, sd_bus_message *msg, struct session *se, const struct peer *p _unused_,
                         const struct target *t _unused_, sd_bus_error *e) {
        _cleanup_free_ char *path = NULL, *jpath = NULL;
        struct create_args a = { .policy = GMEM_POLICY_KEEP };
        const char *backend, *policy = "keep";
        int prefault = 0;
        bool have_page_size = false;
        const struct option_spec opts[] = {
                { "prefault", 'b', &prefault, NULL },
                { "page_size", 't', &a.page_size, &have_page_size },
                { "policy", 's', &policy, NULL },
        };
        struct managed *m;
        struct job *j = NULL;
        int k;

        if ((k = sd_bus_message_read(msg, "sst", &a.name, &backend, &a.size)) < 0 ||
            (k = read_options(msg, opts, ELEMENTSOF(opts), e)) < 0)
                return k;
        if ((k = gmem_backend_from_string(*backend ? backend : "memfd", &a.backend)) < 0)
                return fail(e, k, false);
        /* "connection": the region goes when the caller leaves the bus */
        if ((k = gmem_policy_from_string(policy, &a.policy)) < 0)
                return fail(e, gmem_error(k, "create '%s': policy '%.40s' (keep, connection)", a.name, policy), false);
        if ((k = proto_check_page_size(a.backend, have_page_size)) < 0)
                return fail(e, gmem_error_wrap(k, "create '%s'", a.name), false);
        a.prefault = prefault;
        /* with prefault, the region is published when it is done: JobFinished says so */
        if ((k = action_create(s->d, se, &a, a.prefault ? request_new(s) : NULL, &m, &j)) < 0)
                return fail(e, k, false);
        if ((k = region_path(m->name, &path)) < 0 || (j && (k = job_path(j->id, &jpath)) < 0))
                return k;
        return sd_bus_reply_method_return(msg, "oo", path, jpath ?: NO_JOB_PATH);
}
METHOD(method_create_region, create_region, AUTH_MANAGE, "create", true)

static int register_region(CALL_ARGS) {
        _cleanup_free_ char *path = NULL;
        uint64_t flags = 0;
        bool have_flags = false;
        const char *policy = "keep";
        const struct option_spec opts[] = {
                { "flags", 't', &flags, &have_flags },
                { "policy", 's', &policy, NULL },
        };
        enum gmem_policy pol;
        const char *name;
        struct managed *m;
        int fd, k;

        (void) t;
        (void) p;
        if ((k = sd_bus_message_read(msg, "sh", &name, &fd)) < 0 || (k = read_options(msg, opts, ELEMENTSOF(opts), e)) < 0)
                return k;
        if ((k = gmem_policy_from_string(policy, &pol)) < 0)
                return fail(e, gmem_error(k, "register '%.80s': policy '%.40s' (keep, connection)", name, policy), false);
        /* the fd is borrowed: the region keeps a dup of its own */
        if ((k = action_register(s->d, se, name, fd, have_flags, flags, pol, &m)) < 0)
                return fail(e, k, false);
        if ((k = region_path(m->name, &path)) < 0)
                return k;
        return sd_bus_reply_method_return(msg, "o", path);
}
METHOD(method_register_region, register_region, AUTH_MANAGE, "register", true)

static int populate_region(CALL_ARGS) {
        uint64_t off, src_off, len;
        const char *name;
        struct managed *m;
        struct job *j;
        int fd, src, k;

        if ((k = read_name(msg, t, &name)) < 0 || (k = sd_bus_message_read(msg, "httt", &fd, &off, &src_off, &len)) < 0 ||
            (k = lookup(s, p, name, ACCESS_USE, "populate", &m, e)) < 0)
                return k;
        if ((src = dup_message_fd(fd, "populate", e)) < 0)
                return src;
        /* length 0: the rest of the source */
        k = action_populate(s->d, se, request_new(s), m, off, len != 0, len, src, src_off, &j);
        if (k < 0) {
                close(src);
                return fail(e, k, false);
        }
        return reply_job(msg, j);
}
METHOD(method_populate_region, populate_region, AUTH_MANAGE, "populate", true)
REGION_METHOD(method_region_populate, populate_region, AUTH_MANAGE, "populate")

static int prefault_region(CALL_ARGS) {
        uint64_t off, len;
        const char *name;
        struct managed *m;
        struct job *j;
        int k;

        if ((k = read_name(msg, t, &name)) < 0 || (k = sd_bus_message_read(msg, "tt", &off, &len)) < 0 ||
            (k = lookup(s, p, name, ACCESS_USE, "prefault", &m, e)) < 0)
                return k;
        if ((k = action_range(m, "prefault", off, len != 0, len, UINT64_MAX, &len)) < 0 ||
            (k = action_start_job(s->d, se, request_new(s), JOB_PREFAULT, m, off, len, 0, -1, &j)) < 0)
                return fail(e, k, false);
        return reply_job(msg, j);
}
METHOD(method_prefault_region, prefault_region, AUTH_MANAGE, "prefault", true)
REGION_METHOD(method_region_prefault, prefault_region, AUTH_MANAGE, "prefault")

static int dump_region(CALL_ARGS) {
        uint64_t off, len, dst_off;
        const char *name;
        struct managed *m;
        struct job *j;
        int fd, dst, k;

        if ((k = read_name(msg, t, &name)) < 0 || (k = sd_bus_message_read(msg, "httt", &fd, &off, &len, &dst_off)) < 0 ||
            (k = lookup(s, p, name, ACCESS_USE, "dump", &m, e)) < 0)
                return k;
        if ((k = action_range(m, "dump", off, len != 0, len, UINT64_MAX, &len)) < 0)
                return fail(e, k, false);
        if ((dst = dup_message_fd(fd, "dump", e)) < 0)
                return dst;
        k = action_start_job(s->d, se, request_new(s), JOB_DUMP, m, off, len, dst_off, dst, &j);
        if (k < 0) {
                close(dst);
                return fail(e, k, false);
        }
        return reply_job(msg, j);
}
METHOD(method_dump_region, dump_region, AUTH_OPEN, "dump", true)
REGION_METHOD(method_region_dump, dump_region, AUTH_OPEN, "dump")

static int snapshot_region(CALL_ARGS) {
        const char *name;
        struct managed *m;
        struct job *j;
        int fd, dst, k;

        if ((k = read_name(msg, t, &name)) < 0 || (k = sd_bus_message_read(msg, "h", &fd)) < 0 ||
            (k = lookup(s, p, name, ACCESS_USE, "snapshot", &m, e)) < 0)
                return k;
        if ((dst = dup_message_fd(fd, "snapshot", e)) < 0)
                return dst;
        k = action_start_job(s->d, se, request_new(s), JOB_SNAPSHOT, m, 0, gmem_region_size(m->region), 0, dst, &j);
        if (k < 0) {
                close(dst);
                return fail(e, k, false);
        }
        return reply_job(msg, j);
}
METHOD(method_snapshot_region, snapshot_region, AUTH_OPEN, "snapshot", true)
REGION_METHOD(method_region_snapshot, snapshot_region, AUTH_OPEN, "snapshot")

/* The region is published when its restore job is done: JobFinished says so. */
static int restore_region(CALL_ARGS) {
        _cleanup_free_ char *path = NULL, *jpath = NULL;
        const char *name, *backend = "", *policy = "keep";
        const struct option_spec opts[] = {
                { "backend", 's', &backend, NULL },
                { "policy", 's', &policy, NULL },
        };
        enum gmem_backend b = GMEM_BACKEND_INVALID;
        enum gmem_policy pol;
        struct managed *m;
        struct job *j = NULL;
        int fd, k;

        (void) t;
        (void) p;
        if ((k = sd_bus_message_read(msg, "sh", &name, &fd)) < 0 || (k = read_options(msg, opts, ELEMENTSOF(opts), e)) < 0)
                return k;
        if (*backend && (k = gmem_backend_from_string(backend, &b)) < 0)
                return fail(e, gmem_error_wrap(k, "restore '%s'", name), false);
        if ((k = gmem_policy_from_string(policy, &pol)) < 0)
                return fail(e, gmem_error(k, "restore '%s': policy '%.40s' (keep, connection)", name, policy), false);
        if ((k = action_restore(s->d, se, name, fd, b, pol, request_new(s), &m, &j)) < 0)
                return fail(e, k, false);
        if ((k = region_path(m->name, &path)) < 0 || (k = job_path(j->id, &jpath)) < 0)
                return k;
        return sd_bus_reply_method_return(msg, "oo", path, jpath);
}
METHOD(method_restore_region, restore_region, AUTH_MANAGE, "restore", true)

static int punch_hole(CALL_ARGS) {
        (void) se;
        uint64_t off, len;
        const char *name;
        struct managed *m;
        int k;

        if ((k = read_name(msg, t, &name)) < 0 || (k = sd_bus_message_read(msg, "tt", &off, &len)) < 0 ||
            (k = lookup(s, p, name, ACCESS_USE, "punch", &m, e)) < 0)
                return k;
        if ((k = action_range(m, "punch", off, true, len, 0, &len)) < 0 || (k = action_punch(s->d, m, off, len)) < 0)
                return fail(e, k, false);
        return sd_bus_reply_method_return(msg, NULL);
}
METHOD(method_punch_hole, punch_hole, AUTH_MANAGE, "punch", true)
REGION_METHOD(method_region_punch_hole, punch_hole, AUTH_MANAGE, "punch")

static int grant_or_revoke(struct dbus_state *s, sd_bus_message *msg, const struct peer *p, const struct target *t, bool grant,
                           sd_bus_error *e) {
        const char *name, *kind;
        struct managed *m;
        uint32_t id;
        int k;

        if ((k = read_name(msg, t, &name)) < 0 || (k = sd_bus_message_read(msg, "su", &kind, &id)) < 0)
                return k;
        if (strcmp(kind, "uid") != 0 && strcmp(kind, "gid") != 0)
                return fail(e, gmem_error(-EINVAL, "%s '%.80s': kind '%.16s' (uid, gid)", grant ? "grant" : "revoke", name, kind),
                            false);
        if ((k = lookup(s, p, name, ACCESS_ADMIN, grant ? "grant" : "revoke", &m, e)) < 0)
                return k;
        if ((k = action_grant(s->d, p, m, kind[0] == 'u', id, grant)) < 0)
                return fail(e, k, false);
        return sd_bus_reply_method_return(msg, NULL);
}

static int grant_region(CALL_ARGS) {
        (void) se;
        return grant_or_revoke(s, msg, p, t, true, e);
}
METHOD(method_grant_region, grant_region, AUTH_MANAGE, "grant", true)
REGION_METHOD(method_region_grant, grant_region, AUTH_MANAGE, "grant")

static int revoke_region(CALL_ARGS) {
        (void) se;
        return grant_or_revoke(s, msg, p, t, false, e);
}
METHOD(method_revoke_region, revoke_region, AUTH_MANAGE, "revoke", true)
REGION_METHOD(method_region_revoke, revoke_region, AUTH_MANAGE, "revoke")

static int release_region(CALL_ARGS) {
        (void) se;
        const char *name;
        struct managed *m;
        int k;

        if ((k = read_name(msg, t, &name)) < 0 || (k = lookup(s, p, name, ACCESS_ADMIN, "release", &m, e)) < 0)
                return k;
        action_release(s->d, m);
        return sd_bus_reply_method_return(msg, NULL);
}
METHOD(method_release_region, release_region, AUTH_MANAGE, "release", true)
REGION_METHOD(method_region_release, release_region, AUTH_MANAGE, "release")

static int open_region(CALL_ARGS) {
        const char *name;
        struct managed *m;
        int fd, k;

        if ((k = read_name(msg, t, &name)) < 0 || (k = lookup(s, p, name, ACCESS_USE, "open", &m, e)) < 0)
                return k;
        if ((k = action_open(s->d, se, m, &fd)) < 0)
                return fail(e, k, false);
        k = sd_bus_reply_method_return(msg, "h", fd); /* the message takes a dup of its own */
        close(fd);
        return k;
}
METHOD(method_open_region, open_region, AUTH_OPEN, "open", true)
REGION_METHOD(method_region_open, open_region, AUTH_OPEN, "open")

/* Manager.CancelJob (the job's path in the message) and Job.Cancel (t->job_id) */
static int cancel_job(CALL_ARGS) {
        uint64_t job_id = t->job_id;
        int k;

        (void) se;
        if (!job_id) {
                const char *path;

                if ((k = sd_bus_message_read(msg, "o", &path)) < 0)
                        return k;
                job_id = job_id_of_path(path);
                if (!job_id)
                        return fail(e, gmem_error(-ENOENT, "'%.200s' is not a job (" JOB_PREFIX "/<id>)", path), true);
        }
        if ((k = action_cancel(s->d, p, job_id)) < 0)
                return fail(e, k, true);
        return sd_bus_reply_method_return(msg, NULL);
}
METHOD(method_cancel_job, cancel_job, AUTH_MANAGE, "cancel", false)

/* The caps as a{sv}: the JSON of the socket's "caps" (docs/protocol.md), typed member by member. */
static int get_capabilities(struct dbus_state *s, sd_bus_message *msg, struct session *se _unused_,
                            const struct peer *p _unused_, const struct target *t _unused_, sd_bus_error *e) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_json_ cJSON *caps = NULL;
        void *o = NULL;
        int k;

        if ((k = gmem_host_caps_refresh(s->d->caps)) < 0 || (k = gmem_host_caps_to_json_object(s->d->caps, &o)) < 0)
                return fail(e, k, false);
        caps = o;
        if ((k = sd_bus_message_new_method_return(msg, &reply)) < 0 || (k = bus_append_json_object(reply, caps)) < 0)
                return k;
        return sd_bus_message_send(reply);
}
METHOD(method_get_capabilities, get_capabilities, AUTH_ANYONE, "caps", false)

static void visible_counts(struct daemon *d, uint32_t *ret_n, uint64_t *ret_bytes) {
        uint64_t bytes = 0;
        uint32_t n = 0;

        for (struct managed *m = d->regions; m; m = m->next)
                if (!m->hidden) {
                        n++;
                        bytes += gmem_region_size(m->region);
                }
        *ret_n = n;
        *ret_bytes = bytes;
}

static int manager_get(sd_bus *bus _unused_, const char *path _unused_, const char *iface _unused_, const char *property,
                       sd_bus_message *reply, void *userdata, sd_bus_error *e _unused_) {
        struct dbus_state *s = userdata;
        const struct gmemd_limits *l = &s->d->config.limits;
        uint64_t bytes;
        uint32_t n;

        visible_counts(s->d, &n, &bytes);
        if (strcmp(property, "Version") == 0)
                return sd_bus_message_append(reply, "s", GMEM_VERSION_STRING);
        if (strcmp(property, "RegionCount") == 0)
                return sd_bus_message_append(reply, "u", n);
        if (strcmp(property, "TotalBytes") == 0)
                return sd_bus_message_append(reply, "t", bytes);
        if (strcmp(property, "QuotaBytes") == 0)
                return sd_bus_message_append(reply, "t", l->max_bytes_total);
        if (strcmp(property, "UserQuotaBytes") == 0)
                return sd_bus_message_append(reply, "t", l->max_bytes_per_uid);
        if (strcmp(property, "MaxRegions") == 0)
                return sd_bus_message_append(reply, "t", l->max_regions);
        return -ENOENT;
}

static const sd_bus_vtable manager_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Version", "s", manager_get, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("RegionCount", "u", manager_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("TotalBytes", "t", manager_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("QuotaBytes", "t", manager_get, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("UserQuotaBytes", "t", manager_get, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("MaxRegions", "t", manager_get, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_METHOD_WITH_ARGS("ListRegions", SD_BUS_NO_ARGS, SD_BUS_RESULT("a(sstuso)", regions), method_list_regions,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("GetRegion", SD_BUS_ARGS("s", name), SD_BUS_RESULT("o", region), method_get_region,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("CreateRegion", SD_BUS_ARGS("s", name, "s", backend, "t", size, "a{sv}", options),
                                SD_BUS_RESULT("o", region, "o", job), method_create_region, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("RegisterRegion", SD_BUS_ARGS("s", name, "h", fd, "a{sv}", options),
                                SD_BUS_RESULT("o", region), method_register_region, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("PopulateRegion",
                                SD_BUS_ARGS("s", name, "h", source, "t", offset, "t", src_offset, "t", length),
                                SD_BUS_RESULT("o", job), method_populate_region, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("PrefaultRegion", SD_BUS_ARGS("s", name, "t", offset, "t", length),
                                SD_BUS_RESULT("o", job), method_prefault_region, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("DumpRegion",
                                SD_BUS_ARGS("s", name, "h", destination, "t", offset, "t", length, "t", dst_offset),
                                SD_BUS_RESULT("o", job), method_dump_region, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("SnapshotRegion", SD_BUS_ARGS("s", name, "h", destination), SD_BUS_RESULT("o", job),
                                method_snapshot_region, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("RestoreRegion", SD_BUS_ARGS("s", name, "h", snapshot, "a{sv}", options),
                                SD_BUS_RESULT("o", region, "o", job), method_restore_region, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("CancelJob", SD_BUS_ARGS("o", job), SD_BUS_NO_RESULT, method_cancel_job,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("PunchHole", SD_BUS_ARGS("s", name, "t", offset, "t", length), SD_BUS_NO_RESULT,
                                method_punch_hole, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("GrantRegion", SD_BUS_ARGS("s", name, "s", kind, "u", id), SD_BUS_NO_RESULT,
                                method_grant_region, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("RevokeRegion", SD_BUS_ARGS("s", name, "s", kind, "u", id), SD_BUS_NO_RESULT,
                                method_revoke_region, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ReleaseRegion", SD_BUS_ARGS("s", name), SD_BUS_NO_RESULT, method_release_region,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("OpenRegion", SD_BUS_ARGS("s", name), SD_BUS_RESULT("h", fd), method_open_region,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("GetCapabilities", SD_BUS_NO_ARGS, SD_BUS_RESULT("a{sv}", capabilities), method_get_capabilities,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_SIGNAL_WITH_ARGS("RegionAdded", SD_BUS_ARGS("s", name, "o", region), 0),
        SD_BUS_SIGNAL_WITH_ARGS("RegionRemoved", SD_BUS_ARGS("s", name, "o", region), 0),
        SD_BUS_SIGNAL_WITH_ARGS("JobProgress", SD_BUS_ARGS("o", job, "s", region, "t", done, "t", total), 0),
        SD_BUS_SIGNAL_WITH_ARGS("JobFinished", SD_BUS_ARGS("o", job, "s", region, "b", ok, "t", bytes, "s", error), 0),
        SD_BUS_VTABLE_END,
};

/* ---------------------------------------------------------------------------------------------
 * org.gmem.Broker1.Region: /org/gmem/Broker1/region/<name, escaped>
 */

static int region_get(sd_bus *bus _unused_, const char *path, const char *iface _unused_, const char *property,
                      sd_bus_message *reply, void *userdata, sd_bus_error *e _unused_) {
        struct dbus_state *s = userdata;
        struct managed *m = region_of_path(s->d, path);
        struct gmem_region *r;
        int k;

        if (!m)
                return -ENOENT;
        r = m->region;

        if (strcmp(property, "Name") == 0)
                return sd_bus_message_append(reply, "s", m->name);
        if (strcmp(property, "Backend") == 0)
                return sd_bus_message_append(reply, "s", gmem_backend_to_string(gmem_region_backend(r)));
        if (strcmp(property, "Size") == 0)
                return sd_bus_message_append(reply, "t", gmem_region_size(r));
        if (strcmp(property, "ResidentBytes") == 0) {
                /* as the core measured it, off the loop for large regions; UINT64_MAX: not yet known */
                uint64_t resident;
                if (region_resident(s->d, m, &resident) < 0)
                        resident = UINT64_MAX;
                return sd_bus_message_append(reply, "t", resident);
        }
        if (strcmp(property, "OwnerUID") == 0)
                return sd_bus_message_append(reply, "u", (uint32_t) m->owner);
        if (strcmp(property, "Flags") == 0)
                return sd_bus_message_append(reply, "t", gmem_region_flags(r));
        if (strcmp(property, "PageSize") == 0)
                return sd_bus_message_append(reply, "t", gmem_region_page_size(r));
        if (strcmp(property, "State") == 0)
                return sd_bus_message_append(reply, "s", gmem_region_state_to_string(m->state));
        if (strcmp(property, "PopulatedBytes") == 0)
                return sd_bus_message_append(reply, "t", m->populated_bytes);
        if (strcmp(property, "Policy") == 0)
                return sd_bus_message_append(reply, "s", gmem_policy_to_string(m->policy));
        if (strcmp(property, "CreatedTimestamp") == 0)
                return sd_bus_message_append(reply, "t", m->created_usec);
        if (strcmp(property, "GrantedUIDs") == 0)
                return sd_bus_message_append_array(reply, 'u', m->grant_uids, m->n_grant_uids * sizeof(uint32_t));
        if (strcmp(property, "GrantedGIDs") == 0)
                return sd_bus_message_append_array(reply, 'u', m->grant_gids, m->n_grant_gids * sizeof(uint32_t));
        if (strcmp(property, "Holders") == 0) {
                if ((k = sd_bus_message_open_container(reply, 'a', "(uusb)")) < 0)
                        return k;
                for (unsigned i = 0; i < m->n_holders; i++)
                        if ((k = sd_bus_message_append(reply, "(uusb)", (uint32_t) m->holders[i].pid,
                                                       (uint32_t) m->holders[i].uid, m->holders[i].role,
                                                       m->holders[i].session != NULL)) < 0)
                                return k;
                return sd_bus_message_close_container(reply);
        }
        return -ENOENT;
}

static const sd_bus_vtable region_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Name", "s", region_get, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Backend", "s", region_get, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Size", "t", region_get, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        /* invalidated, not sent: measuring walks every page of a guest_memfd or secret region */
        SD_BUS_PROPERTY("ResidentBytes", "t", region_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_INVALIDATION),
        SD_BUS_PROPERTY("OwnerUID", "u", region_get, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Flags", "t", region_get, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("PageSize", "t", region_get, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("State", "s", region_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("PopulatedBytes", "t", region_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Policy", "s", region_get, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("CreatedTimestamp", "t", region_get, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("GrantedUIDs", "au", region_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("GrantedGIDs", "au", region_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Holders", "a(uusb)", region_get, 0, 0),
        /* the Manager's by-name calls, on the region itself */
        SD_BUS_METHOD_WITH_ARGS("Populate", SD_BUS_ARGS("h", source, "t", offset, "t", src_offset, "t", length),
                                SD_BUS_RESULT("o", job), method_region_populate, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Prefault", SD_BUS_ARGS("t", offset, "t", length), SD_BUS_RESULT("o", job),
                                method_region_prefault, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Dump", SD_BUS_ARGS("h", destination, "t", offset, "t", length, "t", dst_offset),
                                SD_BUS_RESULT("o", job), method_region_dump, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Snapshot", SD_BUS_ARGS("h", destination), SD_BUS_RESULT("o", job), method_region_snapshot,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("PunchHole", SD_BUS_ARGS("t", offset, "t", length), SD_BUS_NO_RESULT,
                                method_region_punch_hole, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Grant", SD_BUS_ARGS("s", kind, "u", id), SD_BUS_NO_RESULT, method_region_grant,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Revoke", SD_BUS_ARGS("s", kind, "u", id), SD_BUS_NO_RESULT, method_region_revoke,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Release", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, method_region_release, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Open", SD_BUS_NO_ARGS, SD_BUS_RESULT("h", fd), method_region_open, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};

static int region_find_cb(sd_bus *bus _unused_, const char *path, const char *iface _unused_, void *userdata, void **found,
                          sd_bus_error *e _unused_) {
        struct dbus_state *s = userdata;

        if (!region_of_path(s->d, path))
                return 0;
        *found = s; /* the getters find the region by its path again */
        return 1;
}

static int region_enumerate(sd_bus *bus _unused_, const char *prefix _unused_, void *userdata, char ***ret_nodes,
                            sd_bus_error *e _unused_) {
        struct dbus_state *s = userdata;
        char **v = calloc(s->d->n_regions + 1, sizeof(char *));
        size_t n = 0;

        if (!v)
                return -ENOMEM;
        for (struct managed *m = s->d->regions; m && n < s->d->n_regions; m = m->next)
                if (!m->hidden && region_path(m->name, &v[n]) >= 0)
                        n++;
        *ret_nodes = v;
        return 0;
}

/* ---------------------------------------------------------------------------------------------
 * org.gmem.Broker1.Job: /org/gmem/Broker1/job/<id>, while the job runs or waits
 */

static int job_get(sd_bus *bus _unused_, const char *path, const char *iface _unused_, const char *property,
                   sd_bus_message *reply, void *userdata, sd_bus_error *e _unused_) {
        struct dbus_state *s = userdata;
        const struct job *j = job_of_path(s->d, path);

        if (!j)
                return -ENOENT;
        if (strcmp(property, "Id") == 0)
                return sd_bus_message_append(reply, "t", j->id);
        if (strcmp(property, "Operation") == 0)
                return sd_bus_message_append(reply, "s", job_op_name(j->op));
        if (strcmp(property, "Region") == 0)
                return sd_bus_message_append(reply, "s", job_subject(j));
        if (strcmp(property, "Offset") == 0)
                return sd_bus_message_append(reply, "t", j->off);
        if (strcmp(property, "Length") == 0)
                return sd_bus_message_append(reply, "t", j->len);
        if (strcmp(property, "Done") == 0)
                return sd_bus_message_append(reply, "t", __atomic_load_n(&j->done, __ATOMIC_RELAXED));
        if (strcmp(property, "Total") == 0)
                return sd_bus_message_append(reply, "t", __atomic_load_n(&j->total, __ATOMIC_RELAXED));
        return -ENOENT;
}

static int method_job_cancel(sd_bus_message *msg, void *userdata, sd_bus_error *e) {
        /* by id: the job may be gone when the caller is known */
        static const struct method m = { cancel_job, AUTH_MANAGE, "cancel", false };
        return call_with_caller(userdata, msg, &m, &(const struct target) { .job_id = job_id_of_path(sd_bus_message_get_path(msg)) },
                                e);
}

static const sd_bus_vtable job_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Id", "t", job_get, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Operation", "s", job_get, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Region", "s", job_get, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Offset", "t", job_get, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Length", "t", job_get, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Done", "t", job_get, 0, 0),
        SD_BUS_PROPERTY("Total", "t", job_get, 0, 0),
        SD_BUS_METHOD_WITH_ARGS("Cancel", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, method_job_cancel, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};

static int job_find_cb(sd_bus *bus _unused_, const char *path, const char *iface _unused_, void *userdata, void **found,
                       sd_bus_error *e _unused_) {
        struct dbus_state *s = userdata;

        if (!job_of_path(s->d, path))
                return 0;
        *found = s;
        return 1;
}

static int job_enumerate(sd_bus *bus _unused_, const char *prefix _unused_, void *userdata, char ***ret_nodes,
                         sd_bus_error *e _unused_) {
        struct dbus_state *s = userdata;
        char **v = calloc(s->d->n_jobs + 1, sizeof(char *));
        size_t n = 0;

        if (!v)
                return -ENOMEM;
        for (struct job *j = s->d->jobs; j && n < s->d->n_jobs; j = j->next)
                if (!job_hidden(j) && job_path(j->id, &v[n]) >= 0)
                        n++;
        *ret_nodes = v;
        return 0;
}

/* ---------------------------------------------------------------------------------------------
 * The loop: sd-bus inside libevent
 */

static void stop_events(struct dbus_state *s) {
        if (s->ev_read)
                event_del(s->ev_read);
        if (s->ev_write)
                event_del(s->ev_write);
        if (s->ev_timer)
                event_del(s->ev_timer);
        if (s->ev_counts)
                event_del(s->ev_counts);
        s->read_armed = s->write_armed = false;
}

/* The bus is gone (the bus daemon went away, or sd-bus gave up on it). The regions and the socket
 * are what matters: gmemd keeps serving them and only the D-Bus API is off until a restart. */
static void bus_lost(struct dbus_state *s, int err) {
        if (s->lost)
                return;
        s->lost = true;
        stop_events(s);
        /* every peer's connection went with the bus: their sessions end (regions with policy
         * "connection" go), as when each leaves; from the loop, not here, where a call of one of
         * them may be running (its action's change of a region is what noticed the bus gone) */
        if (s->ev_lost) {
                static const struct timeval now = { 0, 0 };
                evtimer_add(s->ev_lost, &now);
        }
        log_error("D-Bus (%s): the connection is gone (%s); the D-Bus API is off until gmemd restarts, the socket "
                  "keeps serving", s->bus_desc, strerror(err < 0 ? -err : err));
}

static void set_armed(struct event *ev, bool *armed, bool want) {
        if (want == *armed)
                return;
        if (want ? event_add(ev, NULL) == 0 : event_del(ev) == 0)
                *armed = want;
}

/* Whatever sd-bus waits for now: after every drain, and after every message sent from elsewhere. */
static void rearm(struct dbus_state *s) {
        uint64_t until;
        int events, k;

        if (!s || s->lost)
                return;
        if (sd_bus_is_open(s->bus) <= 0) {
                bus_lost(s, -ENOTCONN);
                return;
        }
        events = sd_bus_get_events(s->bus);
        if (events < 0) {
                bus_lost(s, events);
                return;
        }
        set_armed(s->ev_read, &s->read_armed, events & POLLIN);
        set_armed(s->ev_write, &s->write_armed, events & POLLOUT);

        k = sd_bus_get_timeout(s->bus, &until);
        if (k < 0) {
                bus_lost(s, k);
                return;
        }
        if (until == UINT64_MAX)
                event_del(s->ev_timer);
        else {
                uint64_t now = mono_usec(), rel = until > now ? until - now : 0;
                struct timeval tv = { .tv_sec = (time_t) (rel / 1000000), .tv_usec = (suseconds_t) (rel % 1000000) };
                evtimer_add(s->ev_timer, &tv);
        }
}

static void process(struct dbus_state *s) {
        unsigned i;

        for (i = 0; i < PROCESS_BATCH && !s->lost; i++) {
                int k = sd_bus_process(s->bus, NULL);
                if (k < 0) {
                        bus_lost(s, k);
                        return;
                }
                if (k == 0)
                        break;
        }
        rearm(s);
        if (i == PROCESS_BATCH && !s->lost) {
                /* more to do: come back once the loop has looked at everything else (what is left
                 * may sit in sd-bus's read buffer, where neither the fd nor the timeout tell of it) */
                static const struct timeval now = { 0, 0 };
                evtimer_add(s->ev_timer, &now);
        }
}

static void on_bus_event(evutil_socket_t fd _unused_, short what _unused_, void *userdata) {
        process(userdata);
}

static void on_lost(evutil_socket_t fd _unused_, short what _unused_, void *userdata) {
        struct dbus_state *s = userdata;
        while (s->peers)
                bus_peer_free(s->peers);
}

static void on_counts(evutil_socket_t fd _unused_, short what _unused_, void *userdata) {
        struct dbus_state *s = userdata;
        int k;

        if (s->lost)
                return;
        k = sd_bus_emit_properties_changed(s->bus, MANAGER_PATH, MANAGER_IFACE, "RegionCount", "TotalBytes", NULL);
        if (k < 0)
                log_debug("D-Bus: PropertiesChanged on " MANAGER_PATH ": %s", strerror(-k));
        rearm(s);
}

/* RegionCount and TotalBytes are announced once the change is complete: the hooks run before a
 * removed region leaves the table, and a burst of changes makes one signal. */
static void counts_changed(struct dbus_state *s) {
        if (!event_pending(s->ev_counts, EV_TIMEOUT, NULL)) {
                struct timeval now = { 0, 0 };
                evtimer_add(s->ev_counts, &now);
        }
}

static void emitted(struct dbus_state *s, int k, const char *what, const char *about) {
        if (k < 0)
                log_debug("D-Bus: cannot emit %s for '%s': %s", what, about, strerror(-k));
        rearm(s);
}

/* ---------------------------------------------------------------------------------------------
 * The subscriber: the core's events as signals
 */

static void on_region_added(void *userdata, struct managed *m) {
        struct dbus_state *s = live(userdata);
        _cleanup_free_ char *path = NULL;
        int k;

        if (!s || region_path(m->name, &path) < 0)
                return;
        k = sd_bus_emit_signal(s->bus, MANAGER_PATH, MANAGER_IFACE, "RegionAdded", "so", m->name, path);
        if (k >= 0)
                k = sd_bus_emit_object_added(s->bus, path);
        counts_changed(s);
        emitted(s, k, "RegionAdded", m->name);
}

static void on_region_removed(void *userdata, struct managed *m) {
        struct dbus_state *s = live(userdata);
        _cleanup_free_ char *path = NULL;
        int k;

        if (!s || region_path(m->name, &path) < 0)
                return;
        /* still in the table: InterfacesRemoved can name its interfaces */
        k = sd_bus_emit_object_removed(s->bus, path);
        if (k >= 0)
                k = sd_bus_emit_signal(s->bus, MANAGER_PATH, MANAGER_IFACE, "RegionRemoved", "so", m->name, path);
        counts_changed(s);
        emitted(s, k, "RegionRemoved", m->name);
}

static void on_region_changed(void *userdata, struct managed *m) {
        struct dbus_state *s = live(userdata);
        _cleanup_free_ char *path = NULL;

        if (!s || region_path(m->name, &path) < 0)
                return;
        /* State, PopulatedBytes and the grants with their values; ResidentBytes invalidated */
        emitted(s, sd_bus_emit_properties_changed_strv(s->bus, path, REGION_IFACE, NULL), "PropertiesChanged", m->name);
}

/* Jobs started over the bus signal through their requester. */
static bool own_job(const struct job *j) {
        return j->rq && j->rq->ops == &request_ops;
}

static void on_job_progress(void *userdata, struct job *j, uint64_t done, uint64_t total) {
        struct bus_request r = { .rq.ops = &request_ops, .s = userdata };
        if (!own_job(j))
                request_progress(&r.rq, j, done, total);
}

static void on_job_finished(void *userdata, struct job *j) {
        struct bus_request r = { .rq.ops = &request_ops, .s = userdata };
        if (!own_job(j))
                request_finished(&r.rq, j);
}

static const struct subscriber_ops subscriber_ops = {
        .region_added = on_region_added,
        .region_removed = on_region_removed,
        .region_changed = on_region_changed,
        .job_progress = on_job_progress,
        .job_finished = on_job_finished,
};

/* ---------------------------------------------------------------------------------------------
 * Start and stop
 */

/* Replies and signals still queued go out before the connection closes, for a second at most: a
 * stopped bus daemon must not hold up gmemd's exit (sd_bus_flush() would wait for ever). */
static void flush(sd_bus *bus) {
        uint64_t deadline = mono_usec() + 1000000;
        int events;

        while ((events = sd_bus_get_events(bus)) > 0 && (events & POLLOUT)) {
                uint64_t now = mono_usec();
                struct pollfd p = { .fd = sd_bus_get_fd(bus), .events = POLLOUT };

                if (now >= deadline || p.fd < 0 || poll(&p, 1, (int) ((deadline - now + 999) / 1000)) <= 0 ||
                    sd_bus_process(bus, NULL) < 0)
                        break;
        }
}

/* gmemd stops: the calls still waiting for the bus daemon or polkit are refused, and let go of
 * their messages, which hold the bus (and the bus their floating slots, and those the calls) */
static void refuse_pending(struct dbus_state *s) {
        for (struct pending_call *c = s->pending; c; c = c->next) {
                if (!c->answered && !s->lost) {
                        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
                        sd_bus_error_set(&e, SD_BUS_ERROR_FAILED, "gmemd is stopping");
                        refuse(c, &e);
                }
                c->answered = true;
                c->msg = sd_bus_message_unref(c->msg);
                c->creds = sd_bus_message_unref(c->creds);
        }
}

static void state_free(struct dbus_state *s) {
        if (!s)
                return;
        s->stopping = true;
        notify_unsubscribe(s->d, &subscriber_ops, s);
        while (s->peers)
                bus_peer_free(s->peers);
        stop_events(s);
        if (s->ev_read)
                event_free(s->ev_read);
        if (s->ev_write)
                event_free(s->ev_write);
        if (s->ev_timer)
                event_free(s->ev_timer);
        if (s->ev_counts)
                event_free(s->ev_counts);
        if (s->ev_lost)
                event_free(s->ev_lost);
        if (s->bus) {
                refuse_pending(s);
                if (!s->lost)
                        flush(s->bus);
                /* the floating slots go with the bus, and the calls with them */
                sd_bus_close_unref(s->bus);
        }
        /* calls the bus still holds (it outlived our reference): they must not touch s again */
        while (s->pending) {
                struct pending_call *c = s->pending;
                LIST_REMOVE(s->pending, c);
                c->s = NULL;
        }
        free(s->bus_desc);
        free(s);
}

/* Group gmem's gid, looked up once: its members are trusted as on the socket (which is theirs). */
static gid_t gmem_group_gid(void) {
        struct group g, *found = NULL;
        char buf[4096];

        if (getgrnam_r(GMEM_GROUP, &g, buf, sizeof(buf), &found) != 0 || !found)
                return (gid_t) -1;
        return found->gr_gid;
}

static int connect_bus(const char *bus, sd_bus **ret) {
        sd_bus *b = NULL;
        int k;

        if (strcmp(bus, "system") == 0)
                return sd_bus_open_system(ret);
        if (strcmp(bus, "user") == 0)
                return sd_bus_open_user(ret);
        if (!strchr(bus, ':'))
                return -EINVAL;
        if ((k = sd_bus_new(&b)) < 0)
                return k;
        if ((k = sd_bus_set_address(b, bus)) < 0 || (k = sd_bus_set_bus_client(b, 1)) < 0 ||
            (k = sd_bus_negotiate_fds(b, 1)) < 0 || (k = sd_bus_start(b)) < 0) {
                sd_bus_unref(b);
                return k;
        }
        *ret = b;
        return 0;
}

int dbus_start(struct daemon *d, const char *bus, struct dbus_state **ret) {
        struct dbus_state *s;
        int k, fd;

        *ret = NULL;
        if (!bus || strcmp(bus, "none") == 0)
                return 0;
        s = calloc(1, sizeof(*s));
        if (!s)
                return gmem_error(-ENOMEM, "D-Bus");
        s->d = d;
        s->gmem_gid = gmem_group_gid();
        s->bus_desc = strdup(bus);
        if (!s->bus_desc) {
                k = gmem_error(-ENOMEM, "D-Bus");
                goto fail;
        }
        k = connect_bus(bus, &s->bus);
        if (k == -EINVAL && !strchr(bus, ':')) {
                k = gmem_error(k, "--bus %s: not system, user, none or a D-Bus address (e.g. unix:path=/run/bus)", bus);
                goto fail;
        }
        if (k < 0) {
                k = gmem_error(k, "--bus %s: cannot connect to the bus", bus);
                goto fail;
        }
        (void) sd_bus_error_add_map(gmem_bus_errors);

        if ((k = sd_bus_add_object_vtable(s->bus, NULL, MANAGER_PATH, MANAGER_IFACE, manager_vtable, s)) < 0 ||
            (k = sd_bus_add_fallback_vtable(s->bus, NULL, REGION_PREFIX, REGION_IFACE, region_vtable, region_find_cb, s)) < 0 ||
            (k = sd_bus_add_node_enumerator(s->bus, NULL, REGION_PREFIX, region_enumerate, s)) < 0 ||
            (k = sd_bus_add_fallback_vtable(s->bus, NULL, JOB_PREFIX, JOB_IFACE, job_vtable, job_find_cb, s)) < 0 ||
            (k = sd_bus_add_node_enumerator(s->bus, NULL, JOB_PREFIX, job_enumerate, s)) < 0 ||
            (k = sd_bus_add_object_manager(s->bus, NULL, MANAGER_PATH)) < 0) {
                k = gmem_error(k, "--bus %s: cannot register the objects", bus);
                goto fail;
        }

        k = sd_bus_request_name(s->bus, BUS_NAME, 0);
        if (k == -EEXIST)
                k = gmem_error(k, "--bus %s: " BUS_NAME " is owned by another process on that bus (another gmemd?)", bus);
        else if (k == -EACCES || k == -EPERM)
                k = gmem_error(k, "--bus %s: the bus policy does not let uid %d own " BUS_NAME " (is org.gmem.Broker1.conf "
                               "installed in the bus's policy directory, e.g. /usr/share/dbus-1/system.d?)", bus, (int) geteuid());
        else if (k < 0)
                k = gmem_error(k, "--bus %s: cannot own " BUS_NAME, bus);
        if (k < 0)
                goto fail;

        fd = sd_bus_get_fd(s->bus);
        if (fd < 0) {
                k = gmem_error(fd, "--bus %s: the connection has no single fd to watch", bus);
                goto fail;
        }
        s->ev_read = event_new(d->base, fd, EV_READ | EV_PERSIST, on_bus_event, s);
        s->ev_write = event_new(d->base, fd, EV_WRITE | EV_PERSIST, on_bus_event, s);
        s->ev_timer = evtimer_new(d->base, on_bus_event, s);
        s->ev_counts = evtimer_new(d->base, on_counts, s);
        s->ev_lost = evtimer_new(d->base, on_lost, s);
        if (!s->ev_read || !s->ev_write || !s->ev_timer || !s->ev_counts || !s->ev_lost) {
                k = gmem_error(-ENOMEM, "D-Bus events");
                goto fail;
        }
        if ((k = notify_subscribe(d, &subscriber_ops, s)) < 0)
                goto fail;
        /* messages that came in while the name was requested are in sd-bus's queue already */
        process(s);
        if (s->lost) {
                k = gmem_error(-ENOTCONN, "--bus %s: the connection closed at once", bus);
                goto fail;
        }
        if (strchr(bus, ':'))
                log_notice("D-Bus: %s on %s", BUS_NAME, bus);
        else
                log_notice("D-Bus: %s on the %s bus", BUS_NAME, bus);
        *ret = s;
        return 0;
fail:
        state_free(s);
        return k;
}

struct dbus_state *dbus_stop(struct dbus_state *s) {
        state_free(s);
        return NULL;
}
