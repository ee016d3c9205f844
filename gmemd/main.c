/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gmemd: takes custody of guest memory and hands it to authorized processes. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <systemd/sd-daemon.h>

#include "dbus.h"
#include "error.h"
#include "job.h"
#include "log.h"
#include "region.h"
#include "server.h"
#include "store.h"
#include "warm.h"

static void usage(FILE *f) {
        fprintf(f, "usage: gmemd [--socket PATH] [--config FILE] [--bus system|user|none|ADDRESS] [-v] [--version]\n"
                   "       gmemd --check-config [FILE]\n"
                   "  --socket PATH   listen here (default: $GMEMD_SOCKET, /run/gmemd/gmemd.sock as root,\n"
                   "                  $XDG_RUNTIME_DIR/gmemd/gmemd.sock otherwise)\n"
                   "  --config FILE   limits and settings (default " GMEMD_CONFIG_DEFAULT "), then FILE.d/*.json\n"
                   "  --check-config  read the configuration (FILE or --config's), print what it sets, exit\n"
                   "  --bus BUS       D-Bus management API: system, user, none (default) or an address\n"
                   "  -v, --verbose   debug logging\n"
                   "  -h, --help      this text; --version: the version\n");
}

static void on_watchdog(evutil_socket_t fd _unused_, short what _unused_, void *userdata _unused_) {
        (void) sd_notify(0, "WATCHDOG=1");
}

/* The listening socket systemd passed in (named by the socket unit's FileDescriptorName=gmemd),
 * or -1. */
static int find_listen_fd(int n, char **names) {
        for (int i = 0; i < n; i++) {
                int fd = SD_LISTEN_FDS_START + i;
                if ((names && names[i] && strcmp(names[i], "gmemd") == 0) ||
                    sd_is_socket(fd, AF_UNIX, SOCK_SEQPACKET, 1) > 0)
                        return fd;
        }
        return -1;
}

/* Where the configuration in force is kept for the gmemd after this one: its runtime directory
 * (/run/gmemd under the unit), which outlives restarts; NULL without one. */
static char *saved_config_path(void) {
        const char *rt = getenv("RUNTIME_DIRECTORY");
        char *p = NULL;

        if (!rt || rt[0] != '/' || asprintf(&p, "%.*s/config.json", (int) strcspn(rt, ":"), rt) < 0)
                return NULL;
        return p;
}

static void config_keep(const struct gmemd_config *c) {
        _cleanup_free_ char *path = saved_config_path();
        if (path && config_save(c, path) < 0)
                log_warning("%s", gmem_last_error());
}

/* The config files fail (an edit, an upgrade that checks more): a gmemd that holds guest memory
 * in its fd store must not exit over it — systemd would give up restarting it and empty the store,
 * releasing every guest's memory. It runs with the configuration its predecessor ran with, and
 * says so. true when it may go on. */
static bool config_fallback(struct gmemd_config *c) {
        _cleanup_free_ char *path = saved_config_path();
        char why[1024];
        int n = sd_listen_fds(0), held = 0;

        /* what the store holds besides the listening socket */
        for (int i = 0; i < n; i++)
                if (sd_is_socket(SD_LISTEN_FDS_START + i, AF_UNIX, SOCK_SEQPACKET, 1) <= 0)
                        held++;
        snprintf(why, sizeof(why), "%s", gmem_last_error());
        if (!path || held == 0) { /* nothing held: the error stops us */
                log_error("%s", why);
                return false;
        }
        config_defaults(c);
        if (config_load(path, true, c, NULL) < 0) {
                log_error("%s (and the configuration of the gmemd before this one cannot be read: %s)", why, gmem_last_error());
                return false;
        }
        log_error("%s: running with the configuration of the gmemd before this one (%s), as regions are held in the fd "
                  "store; fix the file and restart gmemd", why, path);
        return true;
}

static void on_signal(evutil_socket_t sig, short what _unused_, void *userdata) {
        struct daemon *d = userdata;
        log_notice("%s: shutting down", strsignal((int) sig));
        event_base_loopbreak(d->base);
}

int main(int argc, char **argv) {
        static const struct option options[] = {
                { "socket", required_argument, NULL, 's' },
                { "config", required_argument, NULL, 'c' },
                { "bus", required_argument, NULL, 'b' },
                { "verbose", no_argument, NULL, 'v' },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, 'V' },
                { "check-config", no_argument, NULL, 'C' },
                {},
        };
        struct daemon d = { .pool = { .efd = -1 } };
        struct event *ev_sigterm = NULL, *ev_sigint = NULL, *ev_watchdog = NULL;
        uint64_t watchdog_usec = 0;
        struct server *srv = NULL;
        struct dbus_state *dbus = NULL;
        char *socket_path = NULL;
        const char *config_path = GMEMD_CONFIG_DEFAULT, *bus = "none";
        bool config_explicit = false, check_config = false;
        char **fd_names = NULL;
        int c, k, n_fds, listen_fd, ret = 1;

        log_open(); /* the journal, a terminal, or prefixed lines */
        while ((c = getopt_long(argc, argv, "s:c:b:vh", options, NULL)) >= 0)
                switch (c) {
                case 's':
                        free(socket_path);
                        socket_path = strdup(optarg);
                        break;
                case 'c':
                        config_path = optarg;
                        config_explicit = true;
                        break;
                case 'b':
                        bus = optarg;
                        break;
                case 'v':
                        log_max_level = LOG_DEBUG;
                        break;
                case 'h':
                        usage(stdout);
                        ret = 0;
                        goto out;
                case 'V':
                        printf("gmemd %s\n", GMEM_VERSION_STRING);
                        ret = 0;
                        goto out;
                case 'C':
                        check_config = true;
                        break;
                default:
                        usage(stderr);
                        ret = 2;
                        goto out;
                }
        if (check_config && optind + 1 == argc) { /* --check-config FILE */
                config_path = argv[optind++];
                config_explicit = true;
        }
        if (optind < argc) {
                fprintf(stderr, "gmemd: unexpected argument '%s'\n", argv[optind]);
                ret = 2;
                goto out;
        }

        config_defaults(&d.config);
        if (check_config) {
                ret = config_check(config_path, config_explicit, &d.config);
                goto out;
        }
        k = config_load(config_path, config_explicit, &d.config, NULL);
        if (k < 0 && !config_fallback(&d.config))
                goto out;
        if (k >= 0)
                config_keep(&d.config);
        /* The kernel as this daemon runs it: the profile the config names, else the one
         * $GMEM_KERNEL_PROFILE names, else what the probe finds; regions it adopts read their
         * flag bits from it. */
        if (!d.config.kernel_profile_set && gmem_kernel_profile_from_env(&d.config.kernel_profile) < 0) {
                log_error("%s", gmem_last_error());
                goto out;
        }
        k = gmem_host_caps_new(d.config.kernel_profile, &d.caps);
        if (k < 0) {
                log_error("probe the kernel: %s", gmem_last_error());
                goto out;
        }
        /* root serves the system socket; anyone else runs a user's own gmemd */
        if (!socket_path && (geteuid() == 0 || secure_getenv("GMEMD_SOCKET") ? gmem_client_default_socket(&socket_path)
                                                                               : gmem_client_user_socket(&socket_path)) < 0) {
                log_error("no socket path: %s", gmem_last_error());
                goto out;
        }

        /* a client that vanishes must not kill us with SIGPIPE */
        signal(SIGPIPE, SIG_IGN);
        d.base = event_base_new();
        if (!d.base) {
                log_error("cannot create the event loop");
                goto out;
        }
        ev_sigterm = evsignal_new(d.base, SIGTERM, on_signal, &d);
        ev_sigint = evsignal_new(d.base, SIGINT, on_signal, &d);
        if (!ev_sigterm || !ev_sigint || event_add(ev_sigterm, NULL) < 0 || event_add(ev_sigint, NULL) < 0) {
                log_error("cannot watch signals");
                goto out;
        }
        n_fds = sd_listen_fds_with_names(1, &fd_names);
        if (n_fds < 0) {
                log_error("fds passed by systemd: %s", strerror(-n_fds));
                goto out;
        }
        listen_fd = find_listen_fd(n_fds, fd_names);
        if ((k = pool_start(&d)) < 0 ||
            (k = listen_fd >= 0 ? server_adopt_listen_fd(&d, listen_fd, &srv) : server_listen(&d, socket_path, &srv)) < 0 ||
            (k = store_start(&d)) < 0 || (k = store_restore_fds(&d, n_fds, fd_names, listen_fd)) < 0 ||
            (k = dbus_start(&d, bus, &dbus)) < 0 || (k = warm_start(&d)) < 0) {
                log_error("%s", gmem_last_error());
                goto out;
        }
        if (sd_watchdog_enabled(1, &watchdog_usec) > 0) {
                struct timeval tv = { .tv_sec = (time_t) (watchdog_usec / 2 / 1000000),
                                      .tv_usec = (suseconds_t) (watchdog_usec / 2 % 1000000) };
                ev_watchdog = event_new(d.base, -1, EV_PERSIST, on_watchdog, &d);
                if (!ev_watchdog || event_add(ev_watchdog, &tv) < 0) {
                        log_error("cannot start the watchdog timer");
                        goto out;
                }
        }
        log_notice("gmemd %s %s %s (%u workers)", GMEM_VERSION_STRING,
                   listen_fd >= 0 ? "serving the socket systemd passed in:" : "listening on", srv->socket_path ?: "?",
                   d.config.workers);
        (void) sd_notify(0, "READY=1");
        store_status(&d);

        event_base_dispatch(d.base);
        ret = 0;
out:
        if (d.base)
                (void) sd_notify(0, "STOPPING=1");
        /* Jobs cancelled and answered (on the socket and the bus), then the bus and every client
         * go: ending their sessions now releases nothing, as the daemon is what stops. */
        d.stopping = true;
        if (d.base)
                pool_stop(&d);
        warm_stop(&d);
        dbus = dbus_stop(dbus);
        srv = server_free(srv);
        /* not released: under systemd the next gmemd finds them in the fd store */
        regions_free_all(&d);
        d.caps = gmem_host_caps_free(d.caps);
        if (ev_watchdog)
                event_free(ev_watchdog);
        strv_free(fd_names);
        free(d.state_dir);
        if (ev_sigterm)
                event_free(ev_sigterm);
        if (ev_sigint)
                event_free(ev_sigint);
        if (d.base)
                event_base_free(d.base);
        free(socket_path);
        return ret;
}
