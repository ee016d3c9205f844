/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Fuzz gmemd's D-Bus front end: its method arguments and object paths. A private dbus-daemon runs
 * the project's test policy (dbus/test-bus.conf); gmemd's D-Bus module and core run in this
 * process on it, and each input becomes one method call from a second connection:
 *
 *   byte 0    which call: a Manager method, a Region method, Properties.Get/GetAll on a region or
 *             job path, a job's Cancel, Introspect (bit 7: send the arguments with a signature of
 *             the input's own choosing instead of the method's, so the handlers meet the wrong
 *             types);
 *   the rest  the arguments, each read by its type: a string as a length byte and bytes (NUL ends
 *             it, bytes above 0x7f are folded to keep it UTF-8, which sd-bus demands), t as 8
 *             bytes, u as 4, b as 1, h as one byte choosing a memfd, /dev/null or a pipe, o as a
 *             string under the job or region prefix, a{sv} as a count and entries.
 *
 * Regions and jobs are real (memfds within small limits, one worker). A region "vm1" (a 1 MiB memfd)
 * is there for every input to act on, made again when an input released it; between inputs the
 * other regions no job holds are released. No dbus-daemon here: the target says so and replays
 * nothing.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <systemd/sd-bus.h>

#include "../gmemd/dbus.h"
#include "fuzz-daemon.h"

#define MANAGER_PATH "/org/gmem/Broker1"
#define MANAGER_IFACE "org.gmem.Broker1.Manager"
#define BUS_NAME "org.gmem.Broker1"

static struct daemon d = { .pool = { .efd = -1 } };
static struct dbus_state *server;
static sd_bus *client;
static pid_t bus_pid = -1;
static char bus_dir[64];
static bool no_bus;

static const struct call {
        const char *path_kind; /* NULL: the manager; "region", "job": a path from the input */
        const char *iface, *member, *sig;
} calls[] = {
        { NULL, MANAGER_IFACE, "ListRegions", "" },
        { NULL, MANAGER_IFACE, "GetRegion", "s" },
        { NULL, MANAGER_IFACE, "CreateRegion", "sst@" },
        { NULL, MANAGER_IFACE, "RegisterRegion", "sh@" },
        { NULL, MANAGER_IFACE, "PopulateRegion", "shttt" },
        { NULL, MANAGER_IFACE, "PrefaultRegion", "stt" },
        { NULL, MANAGER_IFACE, "DumpRegion", "shttt" },
        { NULL, MANAGER_IFACE, "CancelJob", "o" },
        { NULL, MANAGER_IFACE, "PunchHole", "stt" },
        { NULL, MANAGER_IFACE, "GrantRegion", "ssu" },
        { NULL, MANAGER_IFACE, "RevokeRegion", "ssu" },
        { NULL, MANAGER_IFACE, "ReleaseRegion", "s" },
        { NULL, MANAGER_IFACE, "OpenRegion", "s" },
        { NULL, MANAGER_IFACE, "GetCapabilities", "" },
        { NULL, "org.freedesktop.DBus.Properties", "GetAll", "s" },
        { "region", "org.freedesktop.DBus.Properties", "Get", "ss" },
        { "region", "org.freedesktop.DBus.Properties", "GetAll", "s" },
        { "job", "org.freedesktop.DBus.Properties", "GetAll", "s" },
        { "job", "org.gmem.Broker1.Job", "Cancel", "" },
        { "region", "org.freedesktop.DBus.Introspectable", "Introspect", "" },
        { NULL, "org.freedesktop.DBus.ObjectManager", "GetManagedObjects", "" },
        { NULL, MANAGER_IFACE, "SnapshotRegion", "sh" },
        { NULL, MANAGER_IFACE, "RestoreRegion", "sh@" },
        { "region", "org.gmem.Broker1.Region", "Populate", "httt" },
        { "region", "org.gmem.Broker1.Region", "Prefault", "tt" },
        { "region", "org.gmem.Broker1.Region", "Dump", "httt" },
        { "region", "org.gmem.Broker1.Region", "Snapshot", "h" },
        { "region", "org.gmem.Broker1.Region", "PunchHole", "tt" },
        { "region", "org.gmem.Broker1.Region", "Grant", "su" },
        { "region", "org.gmem.Broker1.Region", "Revoke", "su" },
        { "region", "org.gmem.Broker1.Region", "Release", "" },
        { "region", "org.gmem.Broker1.Region", "Open", "" },
};

/* The input, read from the front. Past the end everything reads as 0. */
struct input {
        const uint8_t *p;
        size_t n;
};

static uint8_t take(struct input *in) {
        if (!in->n)
                return 0;
        in->n--;
        return *in->p++;
}

static uint64_t take_n(struct input *in, unsigned bytes) {
        uint64_t v = 0;
        for (unsigned i = 0; i < bytes; i++)
                v |= (uint64_t) take(in) << (8 * i);
        return v;
}

/* A string of up to 255 bytes: NUL ends it, high bytes are folded into printable ASCII. */
static void take_string(struct input *in, char buf[static 256]) {
        unsigned len = take(in), i;
        for (i = 0; i < len && in->n; i++) {
                uint8_t c = take(in);
                if (!c)
                        break;
                buf[i] = (char) (c & 0x80 ? 0x20 + (c & 0x3f) : c);
        }
        buf[i] = 0;
}

/* An object path: the prefix and the input's word, escaped as sd-bus escapes labels. */
static int take_path(struct input *in, const char *kind, char **ret) {
        char word[256];

        take_string(in, word);
        if (strcmp(kind, "job") == 0 && word[0] >= '0' && word[0] <= '9')
                return asprintf(ret, MANAGER_PATH "/job/%s", word) < 0 ? -ENOMEM : 0;
        return sd_bus_path_encode(strcmp(kind, "job") == 0 ? MANAGER_PATH "/job" : MANAGER_PATH "/region", word, ret);
}

static int take_fd(struct input *in) {
        int fds[2], fd;

        switch (take(in) % 3) {
        case 0:
                fd = memfd_create("fuzz", MFD_CLOEXEC | MFD_ALLOW_SEALING);
                if (fd >= 0 && ftruncate(fd, 64 * 1024) < 0) {
                        close(fd);
                        fd = -1;
                }
                return fd;
        case 1:
                return open("/dev/null", O_RDWR | O_CLOEXEC);
        default:
                if (pipe2(fds, O_CLOEXEC) < 0)
                        return -1;
                close(fds[1]);
                return fds[0];
        }
}

/* a{sv} of up to 7 entries, each value of the type its first byte picks */
static int append_options(sd_bus_message *m, struct input *in) {
        unsigned n = take(in) % 8;
        int k = sd_bus_message_open_container(m, 'a', "{sv}");

        for (unsigned i = 0; k >= 0 && i < n; i++) {
                static const char *const keys[] = { "prefault", "page_size", "policy", "flags", "bogus", "backend" };
                uint8_t sel = take(in);
                char s[256];
                const char *key = keys[(sel & 0x0f) % ELEMENTSOF(keys)];

                if ((k = sd_bus_message_open_container(m, 'e', "sv")) < 0 ||
                    (k = sd_bus_message_append(m, "s", key)) < 0)
                        break;
                switch ((sel >> 4) % 4) {
                case 0:
                        k = sd_bus_message_append(m, "v", "b", (int) (take(in) & 1));
                        break;
                case 1:
                        k = sd_bus_message_append(m, "v", "t", take_n(in, 8));
                        break;
                case 2:
                        take_string(in, s);
                        k = sd_bus_message_append(m, "v", "s", s);
                        break;
                default:
                        k = sd_bus_message_append(m, "v", "u", (uint32_t) take_n(in, 4));
                }
                if (k >= 0)
                        k = sd_bus_message_close_container(m);
        }
        return k < 0 ? k : sd_bus_message_close_container(m);
}

/* The arguments of sig ('@' = a{sv}), read from the input. */
static int append_args(sd_bus_message *m, const char *sig, struct input *in) {
        int k = 0;

        for (const char *t = sig; *t && k >= 0; t++) {
                char s[256];
                _cleanup_free_ char *path = NULL;
                int fd;

                switch (*t) {
                case 's':
                        take_string(in, s);
                        k = sd_bus_message_append(m, "s", s);
                        break;
                case 'o':
                        k = take_path(in, "job", &path);
                        if (k >= 0)
                                k = sd_bus_message_append(m, "o", path);
                        break;
                case 't':
                        k = sd_bus_message_append(m, "t", take_n(in, 8));
                        break;
                case 'u':
                        k = sd_bus_message_append(m, "u", (uint32_t) take_n(in, 4));
                        break;
                case 'b':
                        k = sd_bus_message_append(m, "b", (int) (take(in) & 1));
                        break;
                case 'h':
                        fd = take_fd(in);
                        k = fd < 0 ? -errno : sd_bus_message_append(m, "h", fd);
                        if (fd >= 0)
                                close(fd); /* the message keeps its own dup */
                        break;
                case '@':
                        k = append_options(m, in);
                        break;
                }
        }
        return k;
}

static bool replied;
static int on_reply(sd_bus_message *m, void *userdata _unused_, sd_bus_error *e _unused_) {
        const sd_bus_error *err = sd_bus_message_get_error(m);

        replied = true;
        if (getenv("GMEM_FUZZ_SHOW")) /* to see what gmemd answered */
                fprintf(stderr, "< %s %s\n", err ? err->name : "ok", err ? err->message : sd_bus_message_get_signature(m, true));
        return 0;
}

/* Run both ends until the call is answered (or a few hundred rounds pass: a job may be slow). */
static void pump_until_replied(void) {
        for (int i = 0; i < 2000 && !replied; i++) {
                event_base_loop(d.base, EVLOOP_NONBLOCK);
                while (sd_bus_process(client, NULL) > 0)
                        ;
                if (!replied)
                        (void) sd_bus_wait(client, 200);
        }
        event_base_loop(d.base, EVLOOP_NONBLOCK);
}

static void stop_bus(void) {
        char path[128];

        if (bus_pid > 0) {
                kill(bus_pid, SIGTERM);
                (void) waitpid(bus_pid, NULL, 0);
        }
        snprintf(path, sizeof(path), "%s/bus", bus_dir);
        (void) unlink(path);
        (void) rmdir(bus_dir);
}

/* dbus-daemon with the test policy on <bus_dir>/bus; its address in ret. */
static int start_bus(char *ret, size_t size) {
        const char *conf = getenv("GMEM_FUZZ_BUS_CONF") ?: "dbus/test-bus.conf";
        char addr[256], sock[192];
        pid_t pid;

        if (access("/usr/bin/dbus-daemon", X_OK) < 0 || access(conf, R_OK) < 0)
                return -ENOENT;
        snprintf(bus_dir, sizeof(bus_dir), "/tmp/gmem-fuzz-dbus.XXXXXX");
        if (!mkdtemp(bus_dir))
                return -errno;
        snprintf(sock, sizeof(sock), "%s/bus", bus_dir);
        snprintf(addr, sizeof(addr), "unix:path=%s", sock);
        pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0) {
                int null = open("/dev/null", O_RDWR);
                (void) prctl(PR_SET_PDEATHSIG, SIGTERM);
                dup2(null, 0);
                dup2(null, 1);
                dup2(null, 2);
                execl("/usr/bin/dbus-daemon", "dbus-daemon", "--config-file", conf, "--address", addr, "--nofork",
                      (char *) NULL);
                _exit(127);
        }
        bus_pid = pid;
        atexit(stop_bus);
        for (int i = 0; i < 500 && access(sock, F_OK) < 0; i++)
                usleep(10000);
        snprintf(ret, size, "%s", addr);
        return access(sock, F_OK) < 0 ? -ETIMEDOUT : 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc _unused_, char ***argv _unused_) {
        char addr[256];
        int k;

        if (start_bus(addr, sizeof(addr)) < 0) {
                fprintf(stderr, "fuzz-dbus: SKIP: no dbus-daemon or dbus/test-bus.conf here\n");
                no_bus = true;
                return 0;
        }
        fuzz_daemon_start(&d);
        k = dbus_start(&d, addr, &server);
        if (k < 0 || !server) {
                fprintf(stderr, "fuzz-dbus: gmemd's D-Bus side did not start: %s\n", gmem_last_error());
                abort();
        }
        if (sd_bus_new(&client) < 0 || sd_bus_set_address(client, addr) < 0 || sd_bus_set_bus_client(client, 1) < 0 ||
            sd_bus_negotiate_fds(client, 1) < 0 || sd_bus_start(client) < 0)
                abort();
        return 0;
}

/* the region every input finds */
static void ensure_fixture(void) {
        if (region_find(&d, "vm1"))
                return;
        replied = false;
        if (sd_bus_call_method_async(client, NULL, BUS_NAME, MANAGER_PATH, MANAGER_IFACE, "CreateRegion", on_reply, NULL,
                                     "ssta{sv}", "vm1", "memfd", (uint64_t) MiB, 0) < 0)
                abort();
        pump_until_replied();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct input in = { data, size };
        sd_bus_message *m = NULL;
        _cleanup_free_ char *path = NULL;
        const struct call *c;
        char sig[16];
        uint8_t sel;

        if (no_bus || size == 0)
                return 0;
        ensure_fixture();
        sel = take(&in);
        c = &calls[(sel & 0x7f) % ELEMENTSOF(calls)];
        if (c->path_kind && take_path(&in, c->path_kind, &path) < 0)
                return 0;
        if (sd_bus_message_new_method_call(client, &m, BUS_NAME, path ?: MANAGER_PATH, c->iface, c->member) < 0)
                return 0;
        if (sel & 0x80) {
                /* a signature of the input's choosing: the handler must refuse what it cannot read */
                static const char types[] = "stubho@";
                unsigned n = take(&in) % 6, i;
                for (i = 0; i < n; i++)
                        sig[i] = types[take(&in) % (sizeof(types) - 1)];
                sig[i] = 0;
        } else
                snprintf(sig, sizeof(sig), "%s", c->sig);
        if (strcmp(c->iface, "org.freedesktop.DBus.Properties") == 0 && !(sel & 0x80)) {
                /* the interface a property call names, then (Get) a property name */
                static const char *const ifaces[] = { MANAGER_IFACE, "org.gmem.Broker1.Region", "org.gmem.Broker1.Job",
                                                      "" };
                char prop[256];
                int k = sd_bus_message_append(m, "s", ifaces[take(&in) % ELEMENTSOF(ifaces)]);
                if (k >= 0 && strcmp(c->member, "Get") == 0) {
                        take_string(&in, prop);
                        k = sd_bus_message_append(m, "s", prop);
                }
                if (k < 0)
                        goto done;
        } else if (append_args(m, sig, &in) < 0)
                goto done;

        replied = false;
        if (sd_bus_call_async(client, NULL, m, on_reply, NULL, 5 * 1000 * 1000) < 0)
                goto done;
        pump_until_replied();

        fuzz_release_idle(&d, "vm1");
        event_base_loop(d.base, EVLOOP_NONBLOCK);
        while (sd_bus_process(client, NULL) > 0)
                ;
done:
        sd_bus_message_unref(m);
        return 0;
}
