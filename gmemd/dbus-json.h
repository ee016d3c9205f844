/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A JSON object as a D-Bus a{sv}, typed by its values (docs/dbus.md, GetCapabilities). */
#pragma once

#include <cjson/cJSON.h>
#include <systemd/sd-bus.h>

/* Appends object as a{sv}: an object is a{sv}, an array of objects aa{sv} (of strings as, of
 * integers at, of anything else av), true/false b, an integer t (x when negative, exact to 64
 * bits from cJSON_Raw digits), another number d, a string s; a member that is null is left out. */
int bus_append_json_object(sd_bus_message *m, const cJSON *object);
