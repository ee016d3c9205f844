/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <fcntl.h>
#include <inttypes.h>

#include "error.h"
#include "region.h"
#include "sysops.h"

_public_ int gmem_punch_hole(struct gmem_region *r, uint64_t off, uint64_t len) {
        int k;

        /* checked up front: the kernel silently accepts a punch past the end of a guest_memfd */
        k = region_check_aligned(r, "punch", off, len);
        if (k < 0)
                return k;
        if (r->backend == GMEM_BACKEND_SECRET)
                return gmem_error(-EOPNOTSUPP, "punch: memfd_secret has no fallocate(); its memory is freed "
                                  "only when the region is released");
        if (gmem_sys->fallocate(r->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t) off, (off_t) len) < 0)
                return gmem_error(negative_errno(), "fallocate(PUNCH_HOLE) %s region %" PRIu64 "+%" PRIu64,
                                  gmem_backend_to_string(r->backend), off, len);
        return 0;
}
