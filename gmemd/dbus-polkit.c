/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * polkit for bus callers that are neither root nor in group gmem: org.freedesktop.PolicyKit1's
 * CheckAuthorization, asked asynchronously so gmemd's loop never waits for polkitd (which may be
 * waiting for an authentication agent, i.e. for a person). The subject is the caller's unique bus
 * name ("system-bus-name"): polkitd asks the bus daemon who that is, as gmemd does, so nothing the
 * caller sends can claim another identity. Details give rules the region and the operation
 * (action.lookup("region"), action.lookup("operation")).
 */
#include <errno.h>
#include <string.h>

#include "dbus-polkit.h"
#include "macro.h"

/* CheckAuthorization's flags */
#define POLKIT_ALLOW_USER_INTERACTION 1u

int polkit_check_async(sd_bus *bus, const char *sender, const char *action, const char *const *details, bool interactive,
                       sd_bus_message_handler_t cb, void *userdata, sd_bus_destroy_t destroy) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        sd_bus_slot *slot = NULL;
        int k;

        if ((k = sd_bus_message_new_method_call(bus, &m, "org.freedesktop.PolicyKit1", "/org/freedesktop/PolicyKit1/Authority",
                                                "org.freedesktop.PolicyKit1.Authority", "CheckAuthorization")) < 0 ||
            (k = sd_bus_message_append(m, "(sa{sv})s", "system-bus-name", 1, "name", "s", sender, action)) < 0 ||
            (k = sd_bus_message_open_container(m, 'a', "{ss}")) < 0)
                return k;
        for (size_t i = 0; details && details[i] && details[i + 1]; i += 2)
                if ((k = sd_bus_message_append(m, "{ss}", details[i], details[i + 1])) < 0)
                        return k;
        if ((k = sd_bus_message_close_container(m)) < 0 ||
            (k = sd_bus_message_append(m, "us", interactive ? POLKIT_ALLOW_USER_INTERACTION : 0u, "")) < 0)
                return k;
        /* polkit may wait for an agent, i.e. for a person: the bus's default 25 s is too short for that */
        if ((k = sd_bus_call_async(bus, &slot, m, cb, userdata, interactive ? UINT64_C(300) * 1000000 : 0)) < 0)
                return k;
        (void) sd_bus_slot_set_destroy_callback(slot, destroy);
        (void) sd_bus_slot_set_floating(slot, 1);
        sd_bus_slot_unref(slot);
        return 0;
}

int polkit_verdict(sd_bus_message *reply, const char *who, const char *action, bool interactive, sd_bus_error *e) {
        int authorized = 0, challenge = 0, k;

        if (sd_bus_message_is_method_error(reply, NULL)) {
                const sd_bus_error *err = sd_bus_message_get_error(reply);
                sd_bus_error_setf(e, SD_BUS_ERROR_ACCESS_DENIED, "%s is neither root nor in group gmem, and polkit cannot be asked "
                                  "about %s: %s", who, action, err && err->message ? err->message : "no answer");
                return 0;
        }
        if ((k = sd_bus_message_enter_container(reply, 'r', "bba{ss}")) < 0 ||
            (k = sd_bus_message_read(reply, "bb", &authorized, &challenge)) < 0) {
                sd_bus_error_setf(e, SD_BUS_ERROR_ACCESS_DENIED, "%s: polkit's answer about %s is unreadable: %s", who, action,
                                  strerror(-k));
                return 0;
        }
        if (authorized)
                return 1;
        if (challenge && interactive)
                sd_bus_error_setf(e, SD_BUS_ERROR_ACCESS_DENIED, "%s is neither root nor in group gmem, and did not "
                                  "authenticate for %s (is an authentication agent running?)", who, action);
        else if (challenge)
                sd_bus_error_setf(e, SD_BUS_ERROR_INTERACTIVE_AUTHORIZATION_REQUIRED,
                                  "%s is neither root nor in group gmem: polkit wants it to authenticate for %s, and the call "
                                  "did not allow interactive authorization", who, action);
        else
                sd_bus_error_setf(e, SD_BUS_ERROR_ACCESS_DENIED, "%s is neither root nor in group gmem, and polkit does not "
                                  "authorize it for %s", who, action);
        return 0;
}
