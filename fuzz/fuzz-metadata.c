/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Fuzz the fd store's metadata parser: what a restarted gmemd reads back from its state directory. */
#include <stdint.h>

#include "../gmemd/store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct saved_region sr;

        if (store_parse_metadata((const char *) data, size, &sr) == 0) {
                /* what it accepted is within the limits the region table has */
                if (sr.n_grant_uids > REGION_MAX_GRANTS || sr.n_grant_gids > REGION_MAX_GRANTS ||
                    sr.n_holders > REGION_MAX_HOLDERS || !gmem_backend_to_string(sr.backend) ||
                    !gmem_region_state_to_string(sr.state))
                        __builtin_trap();
        }
        return 0;
}
