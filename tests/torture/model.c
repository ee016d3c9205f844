/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The model: what every page of every region must read, and the checks against it. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "torture.h"

uint64_t rng_next(uint64_t *s) {
        /* splitmix64: every seed, even 0, gives a good stream */
        uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
}

void page_content(uint64_t tag, uint8_t *dst) {
        uint64_t s = tag;
        if (!tag) {
                memset(dst, 0, T_PAGE);
                return;
        }
        for (unsigned i = 0; i < T_PAGE / 8; i++) {
                uint64_t v = rng_next(&s);
                memcpy(dst + i * 8, &v, 8);
        }
        dst[0] |= 1; /* never all zeroes: a page with a tag is data */
}

uint64_t tag_new(struct torture *t) {
        return ++t->tag_serial * 0x100000001b3ull + 1;
}

int fail(struct torture *t, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(t->failure, sizeof(t->failure), fmt, ap);
        va_end(ap);
        return -1;
}

int temp_file(struct torture *t) {
        int fd = open(t->dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
        if (fd < 0) {
                fprintf(stderr, "gmem-torture: O_TMPFILE in %s: %m\n", t->dir);
                exit(2);
        }
        return fd;
}

int check_bytes(struct torture *t, const uint64_t *tags, const uint8_t *buf, uint64_t off, uint64_t len, const char *what) {
        uint8_t want[T_PAGE];

        for (uint64_t p = off / T_PAGE; p * T_PAGE < off + len; p++) {
                uint64_t a = p * T_PAGE > off ? p * T_PAGE : off, b = (p + 1) * T_PAGE < off + len ? (p + 1) * T_PAGE : off + len;
                page_content(tags[p], want);
                if (memcmp(buf + (a - off), want + (a - p * T_PAGE), b - a) != 0) {
                        size_t i = 0;
                        while (buf[(a - off) + i] == want[(a - p * T_PAGE) + i])
                                i++;
                        return fail(t, "%s: page %" PRIu64 " (offset %" PRIu64 ") differs from the model at byte %zu: "
                                    "read %02x, want %02x (%s page)", what, p, p * T_PAGE, (size_t) (a - p * T_PAGE) + i,
                                    buf[(a - off) + i], want[(a - p * T_PAGE) + i], tags[p] ? "a data" : "a zero");
                }
                t->pages_checked++;
        }
        t->bytes_checked += len;
        return 0;
}

int check_file(struct torture *t, int fd, uint64_t file_off, const uint64_t *tags, uint64_t off, uint64_t len, const char *what) {
        uint8_t *buf = malloc(1 << 20);
        int k = 0;

        for (uint64_t done = 0; done < len && k == 0;) {
                uint64_t n = len - done < (1 << 20) ? len - done : (1 << 20);
                ssize_t got = pread(fd, buf, n, (off_t) (file_off + done));
                if (got != (ssize_t) n) {
                        k = fail(t, "%s: read %" PRIu64 " bytes at %" PRIu64 ": %s", what, n, file_off + done,
                                 got < 0 ? strerror(errno) : "short");
                        break;
                }
                k = check_bytes(t, tags, buf, off + done, n, what);
                done += n;
        }
        free(buf);
        return k;
}

/* One region, every byte: through read() where it has one (a hole read that way is not
 * allocated), else through our mapping. */
static int check_region(struct torture *t, struct mregion *r, const char *after) {
        char what[160];

        snprintf(what, sizeof(what), "region '%s' (%s) after %s", r->name, gmem_backend_to_string(r->backend), after);
        if (r->backend == GMEM_BACKEND_MEMFD || r->backend == GMEM_BACKEND_HUGETLB)
                return check_file(t, r->fd, 0, r->tags, 0, r->size, what);
        return check_bytes(t, r->tags, r->map, 0, r->size, what);
}

int check_all(struct torture *t, const char *after) {
        struct gmem_region_list *l = NULL;
        unsigned live = 0, listed;
        int k;

        for (unsigned i = 0; i < T_REGIONS_MAX; i++)
                if (t->regions[i].live) {
                        live++;
                        if (check_region(t, &t->regions[i], after) < 0)
                                return -1;
                }
        if ((k = gmem_client_region_list(t->c, &l)) < 0)
                return fail(t, "list after %s: %s", after, gmem_last_error());
        listed = gmem_region_list_count(l);
        for (unsigned i = 0; i < listed; i++) {
                const struct gmem_region_info *info = gmem_region_list_get(l, i);
                bool known = false;
                for (unsigned j = 0; j < T_REGIONS_MAX && !known; j++)
                        known = t->regions[j].live && strcmp(t->regions[j].name, gmem_region_info_name(info)) == 0 &&
                                t->regions[j].size == gmem_region_info_size(info);
                if (!known) {
                        fail(t, "after %s gmemd lists region '%s' (%" PRIu64 " bytes), which the model does not have", after,
                             gmem_region_info_name(info), gmem_region_info_size(info));
                        gmem_region_list_free(l);
                        return -1;
                }
        }
        gmem_region_list_free(l);
        if (listed != live)
                return fail(t, "after %s gmemd lists %u regions, the model has %u", after, listed, live);
        return 0;
}
