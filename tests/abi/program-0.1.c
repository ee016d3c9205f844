/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A program written and linked for libgmem 0.1: built against 0.1's header (tests/abi/0.1), its
 * references bound to the LIBGMEM_0.1 versions as a link against the 0.1 library bound them. It
 * must run unchanged on this library: option structs without a size, the caps struct by value.
 * Exit 0 when every call did what 0.1 promised; else the number of the failed check.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <gmem/gmem.h>

__asm__(".symver gmem_populate_buf,gmem_populate_buf@LIBGMEM_0.1");
__asm__(".symver gmem_populate_fd,gmem_populate_fd@LIBGMEM_0.1");
__asm__(".symver gmem_dump_fd,gmem_dump_fd@LIBGMEM_0.1");
__asm__(".symver gmem_prefault,gmem_prefault@LIBGMEM_0.1");
__asm__(".symver gmem_client_create,gmem_client_create@LIBGMEM_0.1");
__asm__(".symver gmem_caps_probe,gmem_caps_probe@LIBGMEM_0.1");

#define SIZE (1024 * 1024)

static int calls;
static int progress(uint64_t done, uint64_t total, void *userdata) {
        if (userdata != &calls || done > total || total != SIZE)
                return 1; /* the fields landed in the wrong places: cancel */
        calls++;
        return 0;
}

int main(void) {
        static unsigned char buf[SIZE], back[SIZE];
        struct gmem_populate_opts opts = { .threads = 2, .chunk_size = 64 * 1024, .progress = progress,
                                           .userdata = &calls };
        struct gmem_populate_opts bad = { .flags = 1u << 7 };
        struct gmem_region *r = NULL;
        struct gmem_caps caps;
        FILE *f;
        int fd;

        for (size_t i = 0; i < SIZE; i++)
                buf[i] = (unsigned char) (i * 7 + 3);
        if (gmem_caps_probe(&caps) < 0 || !caps.kernel_release[0])
                return 1;
        if (gmem_region_new_memfd(GMEM_BACKEND_MEMFD, SIZE, &r) < 0)
                return 2;
        if (gmem_populate_buf(r, 0, buf, SIZE, &opts) != SIZE || calls == 0)
                return 3;
        /* its flags field, at 0.1's offset, is read as flags */
        if (gmem_populate_buf(r, 0, buf, SIZE, &bad) != -22 || !strstr(gmem_last_error(), "unknown flags"))
                return 4;
        if (gmem_prefault(r, 0, SIZE, &opts) < 0)
                return 5;
        f = tmpfile();
        if (!f)
                return 6;
        fd = fileno(f);
        calls = 0;
        if (gmem_dump_fd(r, 0, SIZE, fd, 0, &opts) != SIZE || calls == 0)
                return 7;
        if (pread(fd, back, SIZE, 0) != SIZE || memcmp(buf, back, SIZE) != 0)
                return 8;
        if (gmem_populate_fd(r, 0, fd, 0, SIZE, &opts) != SIZE)
                return 9;
        /* create's 0.1 options: refused before any daemon is asked, by what 0.1 checked */
        if (gmem_client_create(NULL, "x", GMEM_BACKEND_MEMFD, SIZE, &(struct gmem_create_opts) { .prefault = 1 }) !=
            -22)
                return 10;
        gmem_region_free(r);
        fclose(f);
        printf("0.1 program ok\n");
        return 0;
}
