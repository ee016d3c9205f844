/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gmemd: takes custody of guest memory and hands it to authorized processes. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "daemon.h"
#include "error.h"
#include "log.h"

static void usage(FILE *f) {
        fprintf(f, "usage: gmemd [--socket PATH] [--config FILE] [--bus system|user|none|ADDRESS] [-v]\n"
                   "  --socket PATH   listen here (default: $GMEMD_SOCKET, /run/gmemd/gmemd.sock as root,\n"
                   "                  $XDG_RUNTIME_DIR/gmemd/gmemd.sock otherwise)\n"
                   "  --config FILE   limits and settings (default " GMEMD_CONFIG_DEFAULT ")\n"
                   "  --bus BUS       D-Bus management API (only 'none' in this build)\n"
                   "  -v, --verbose   debug logging\n");
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
                {},
        };
        struct daemon d = { .listen_fd = -1, .pool = { .efd = -1 } };
        const char *config_path = GMEMD_CONFIG_DEFAULT, *bus = "none";
        bool config_explicit = false;
        int c, k, ret = 1;

        while ((c = getopt_long(argc, argv, "s:c:b:vh", options, NULL)) >= 0)
                switch (c) {
                case 's':
                        free(d.socket_path);
                        d.socket_path = strdup(optarg);
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
                        return 0;
                case 'V':
                        printf("gmemd %s\n", GMEM_VERSION_STRING);
                        return 0;
                default:
                        usage(stderr);
                        return 2;
                }
        if (optind < argc) {
                fprintf(stderr, "gmemd: unexpected argument '%s'\n", argv[optind]);
                return 2;
        }
        if (strcmp(bus, "none") != 0) {
                log_error("--bus %s: this build of gmemd has no D-Bus support; use --bus none", bus);
                return 2;
        }

        config_defaults(&d.config);
        k = config_load(config_path, config_explicit, &d.config);
        if (k < 0) {
                log_error("%s", gmem_last_error());
                return 1;
        }
        if (!d.socket_path && gmem_client_default_socket(&d.socket_path) < 0) {
                log_error("no socket path: %s", gmem_last_error());
                return 1;
        }

        /* a client that vanishes must not kill us with SIGPIPE */
        signal(SIGPIPE, SIG_IGN);
        d.base = event_base_new();
        if (!d.base) {
                log_error("cannot create the event loop");
                goto out;
        }
        d.ev_sigterm = evsignal_new(d.base, SIGTERM, on_signal, &d);
        d.ev_sigint = evsignal_new(d.base, SIGINT, on_signal, &d);
        if (!d.ev_sigterm || !d.ev_sigint || event_add(d.ev_sigterm, NULL) < 0 || event_add(d.ev_sigint, NULL) < 0) {
                log_error("cannot watch signals");
                goto out;
        }
        if ((k = pool_start(&d)) < 0 || (k = server_listen(&d)) < 0) {
                log_error("%s", gmem_last_error());
                goto out;
        }
        log_notice("gmemd %s listening on %s (%u workers); regions live as long as this process: "
                   "without systemd's fd store they do not survive a restart",
                   GMEM_VERSION_STRING, d.socket_path, d.config.workers);

        event_base_dispatch(d.base);
        ret = 0;
out:
        /* jobs cancelled and answered, then every client and the socket go */
        if (d.base) {
                pool_stop(&d);
                server_stop(&d);
        }
        while (d.regions)
                region_release(&d, d.regions);
        if (d.ev_sigterm)
                event_free(d.ev_sigterm);
        if (d.ev_sigint)
                event_free(d.ev_sigint);
        if (d.base)
                event_base_free(d.base);
        free(d.socket_path);
        return ret;
}
