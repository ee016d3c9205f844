/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "error.h"
#include "macro.h"
#include "opts.h"

int gmem_opts_copy(const void *in, size_t known, size_t baseline, const char *what, void *out) {
        const uint8_t *p = in;
        size_t size;

        memset(out, 0, known);
        *(size_t *) out = known;
        if (!in)
                return 0;
        size = *(const size_t *) in;
        if (size == 0)
                size = baseline;
        if (size < baseline)
                return gmem_error(-EINVAL, "%s: options of %zu bytes: smaller than any version of the struct "
                                  "(%zu; set .size = sizeof the struct)", what, size, baseline);
        if (size > 4096) /* as openat2(): a struct is never a page */
                return gmem_error(-E2BIG, "%s: options of %zu bytes: not a size", what, size);
        for (size_t i = known; i < size; i++)
                if (p[i])
                        return gmem_error(-E2BIG, "%s: options set a field this library (%s) does not have "
                                          "(byte %zu of %zu)", what, GMEM_VERSION_STRING, i, size);
        memcpy(out, in, MIN(size, known));
        *(size_t *) out = known;
        return 0;
}

int gmem_opts_get(const struct gmem_populate_opts *in, const char *what, struct gmem_populate_opts *ret) {
        int k = gmem_opts_copy(in, sizeof(*ret), sizeof(*ret), what, ret);

        if (k < 0)
                return k;
        if (ret->flags & ~(unsigned) (GMEM_POPULATE_VIA_MAPPING | GMEM_POPULATE_VIA_WRITE))
                return gmem_error(-EINVAL, "%s: unknown flags 0x%x", what, ret->flags);
        if ((ret->flags & GMEM_POPULATE_VIA_MAPPING) && (ret->flags & GMEM_POPULATE_VIA_WRITE))
                return gmem_error(-EINVAL, "%s: VIA_MAPPING and VIA_WRITE together", what);
        return 0;
}
