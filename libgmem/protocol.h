/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The wire protocol's rules, in one place for the client, gmemd and gmemctl (docs/protocol.md):
 * its version, what a region name may be, which integers a message carries, and the names of
 * enums on the wire.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "gmem/gmem.h"
#include "enum-count.h"
#include "macro.h"

static inline void cJSON_Deletep(cJSON **j) {
        cJSON_Delete(*j);
}
#define _cleanup_json_ _cleanup_(cJSON_Deletep)

#define PROTO_VERSION 1
/* a region name: 1 to PROTO_NAME_MAX of A-Z a-z 0-9 . _ - */
#define PROTO_NAME_MAX 64
/* Integers travel as JSON numbers, which readers (cJSON among them) hold as doubles: exact below
 * 2^53. Every integer in a message is at most this, in both directions. */
#define PROTO_INT_MAX ((UINT64_C(1) << 53) - 1)

bool proto_name_valid(const char *name);

/* A client's name for the fd it passes (the request member "fd_name", gmem_client_name_fd()): 1
 * to PROTO_FD_NAME_MAX bytes without control characters, since it goes into one-line messages.
 * 0, or -EINVAL saying what is wrong. */
#define PROTO_FD_NAME_MAX 255
int proto_check_fd_name(const char *name);

/* page_size is a hugetlb region's alone: -EINVAL (with the reason in gmem_last_error()) when
 * it is given for another backend. */
int proto_check_page_size(enum gmem_backend backend, bool have_page_size);

/* A JSON number as a u64, checked before it is converted: 0, -EINVAL when it is not a
 * non-negative integer, -ERANGE when it is above PROTO_INT_MAX. */
int proto_number_to_u64(const cJSON *v, uint64_t *ret);

/* A request id: an integer of magnitude at most PROTO_INT_MAX (checked before any conversion). */
bool proto_id_valid(const cJSON *id);
/* The id for a reply, as its digits (a copy of a valid id; JSON null for anything else). */
cJSON *proto_id_copy(const cJSON *id);

/* JSON forbids raw control bytes inside strings, and a raw NUL (or an escaped \u0000) would end a
 * C string early — "vm1\u0000../x" acting on "vm1". NULL when text is clean, else why not. */
const char *proto_check_strings(const char *text, size_t len);

/* Integers go out as their digits: cJSON prints a double with 15 significant digits whenever that
 * reads back within two ulps, so 9007199254740991 would leave as 9.00719925474099e+15 — another
 * offset. Used by the client's requests and the daemon's replies alike. */
cJSON *json_u64(uint64_t v);
cJSON *json_add_u64(cJSON *o, const char *key, uint64_t v);

/* The operations (docs/protocol.md): one table for the client that sends them and the daemon that
 * dispatches them. */
enum proto_op {
        PROTO_OP_HELLO,
        PROTO_OP_CAPS,
        PROTO_OP_CREATE,
        PROTO_OP_REGISTER,
        PROTO_OP_OPEN,
        PROTO_OP_LIST,
        PROTO_OP_INFO,
        PROTO_OP_POPULATE,
        PROTO_OP_PREFAULT,
        PROTO_OP_DUMP,
        PROTO_OP_PUNCH,
        PROTO_OP_GRANT,
        PROTO_OP_REVOKE,
        PROTO_OP_RELEASE,
        PROTO_OP_CANCEL,
        PROTO_OP_WATCH,
        PROTO_OP_SNAPSHOT,
        PROTO_OP_RESTORE,
        PROTO_OP_SERVE,
        PROTO_OP_FIRECRACKER,
        PROTO_OP_COUNT,
};

struct proto_op_info {
        const char *name;  /* "op" on the wire */
        unsigned fds;      /* file descriptors the request carries */
        bool named;        /* the request names a region ("name") */
        bool job;          /* runs as a job: progress events, cancel */
};

/* NULL for an op out of range */
const struct proto_op_info *proto_op_info(enum proto_op op);
/* The op named s: 0, or -EOPNOTSUPP (with the reason) for a name no op has. */
int proto_op_from_string(const char *s, enum proto_op *ret);

/* enum names on the wire: gmem_backend_to_string(), gmem_policy_to_string() and their inverses
 * (public: gmem/gmem.h) */
