/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A Firecracker VM's page server: the body of a JOB_FIRECRACKER (firecracker.c). */
#pragma once

#include "job.h"

/* Wait for the VM on j->fd2, take its handshake, serve it from j->fd until it hangs up or j is
 * cancelled: the bytes served, or a negative errno with the message recorded. */
int64_t firecracker_run(struct job *j, struct gmem_populate_opts *opts);
