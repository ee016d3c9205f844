/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Asking polkit whether a bus peer may do an action (polkit/org.gmem.Broker1.policy). */
#pragma once

#include <stdbool.h>

#include <systemd/sd-bus.h>

#define POLKIT_ACTION_MANAGE "org.gmem.broker1.manage-regions"
#define POLKIT_ACTION_OPEN "org.gmem.broker1.open-region"

/* CheckAuthorization for the peer sender, asynchronously on bus; details: key, value, ..., NULL.
 * interactive: the caller allowed interactive authorization (polkit may ask an agent). cb gets
 * polkit's reply (or the bus's error); the slot floats and destroy(userdata) runs when it is done.
 * On failure userdata is the caller's. */
int polkit_check_async(sd_bus *bus, const char *sender, const char *action, const char *const *details, bool interactive,
                       sd_bus_message_handler_t cb, void *userdata, sd_bus_destroy_t destroy);

/* polkit's verdict in reply: 1 authorized; 0 not, with e set to AccessDenied or, when polkit would
 * have asked for a password and the call (interactive false) did not allow asking,
 * InteractiveAuthorizationRequired; who and action name the caller and the action in the message. */
int polkit_verdict(sd_bus_message *reply, const char *who, const char *action, bool interactive, sd_bus_error *e);
