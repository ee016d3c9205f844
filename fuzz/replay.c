/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A fuzz target without the fuzzer: runs every file named (or in a directory named) through
 * LLVMFuzzerTestOneInput once. `make check` replays the corpus in the tree this way, so every input
 * that once found a bug stays a regression test; `make fuzz` links the same target to libFuzzer.
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

static int run_file(const char *path) {
        struct stat st;
        uint8_t *buf;
        ssize_t n;
        int fd = open(path, O_RDONLY | O_CLOEXEC);

        if (fd < 0 || fstat(fd, &st) < 0 || st.st_size > (1 << 20)) {
                fprintf(stderr, "replay: cannot read '%s'\n", path);
                return -1;
        }
        buf = malloc((size_t) st.st_size + 1);
        n = buf ? read(fd, buf, (size_t) st.st_size) : -1;
        close(fd);
        if (n < 0) {
                free(buf);
                return -1;
        }
        LLVMFuzzerTestOneInput(buf, (size_t) n);
        free(buf);
        return 0;
}

int main(int argc, char **argv) {
        unsigned runs = 0;

        if (LLVMFuzzerInitialize)
                LLVMFuzzerInitialize(&argc, &argv);
        for (int i = 1; i < argc; i++) {
                DIR *dir = opendir(argv[i]);
                struct dirent *de;

                if (!dir) {
                        if (run_file(argv[i]) < 0)
                                return 1;
                        runs++;
                        continue;
                }
                while ((de = readdir(dir))) {
                        char path[4096];
                        if (de->d_name[0] == '.')
                                continue;
                        snprintf(path, sizeof(path), "%s/%s", argv[i], de->d_name);
                        if (run_file(path) < 0)
                                return 1;
                        runs++;
                }
                closedir(dir);
        }
        printf("replayed %u inputs\n", runs);
        return 0;
}
