/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The custody model end to end, with a real daemon and a real guest: a VMM process creates its
 * VM and its guest memory — a guest_memfd, or a memfd on kernels without one to use (what
 * gmem_caps_pick_guest_memory() says) — registers it with gmemd, gmemd populates it from an image, the VMM's guest
 * checksums it; then the VMM exits and gmemd still holds the memory, with the same content.
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gmem-test.h"
#include "gmem/gmem.h"
#include "minivm.h"

#define DATA_SIZE (4u << 20)

/* What a VMM runs its guest on here, as gmem-example-vmm picks it. */
static enum gmem_backend guest_backend(uint64_t *ret_flags) {
        struct gmem_caps caps;
        enum gmem_backend b;
        const char *why;

        ck_assert_int_eq(gmem_caps_probe(&caps), 0);
        ck_assert_int_eq(gmem_caps_pick_guest_memory(&caps, &b, ret_flags, &why), 0);
        if (b != GMEM_BACKEND_GUEST_MEMFD)
                printf("KERNEL guest memory on %s: %s\n", gmem_backend_to_string(b), why);
        return b;
}

static int new_guest_memory(int vm_fd, uint64_t size, struct gmem_region **ret) {
        uint64_t flags;
        enum gmem_backend b = guest_backend(&flags);

        if (b == GMEM_BACKEND_GUEST_MEMFD)
                return gmem_region_new_guest_memfd(vm_fd, size, flags, ret);
        return gmem_region_new_memfd(b, size, ret);
}

/* The VMM: exits 0 when its guest saw exactly the image. */
static int vmm(const char *socket, const char *name, int image, uint32_t want) {
        struct gmem_client *c = NULL;
        struct gmem_region *r = NULL;
        struct minivm *vm = NULL;
        uint32_t hash = 0;

        if (minivm_new(&vm) < 0)
                return 10;
        if (new_guest_memory(minivm_vm_fd(vm), DATA_SIZE, &r) < 0)
                return 11;
        if (gmem_client_connect(socket, &c) < 0 || gmem_client_register(c, name, r) < 0)
                return 12;
        if (gmem_client_populate_fd(c, name, 0, image, 0, DATA_SIZE) < 0)
                return 13;
        if (gmem_kvm_bind(minivm_vm_fd(vm), MINIVM_FIRST_FREE_SLOT, MINIVM_FIRST_FREE_GPA, r, 0, DATA_SIZE) < 0)
                return 14;
        if (minivm_run_checksum(vm, MINIVM_FIRST_FREE_GPA, DATA_SIZE, &hash) < 0)
                return 15;
        /* exit without releasing anything: the daemon keeps the memory */
        return hash == want ? 0 : 16;
}

START_TEST(registered_guest_memfd_outlives_its_vmm) {
        struct gmem_test_daemon d;
        struct gmem_client *c = NULL;
        char *json = NULL;
        uint8_t *data, *back;
        cJSON *info, *holders;
        int image, out, status;
        pid_t pid;

        REQUIRE_KVM();
        gmem_test_daemon_start(&d, NULL);
        image = gmem_test_random_file(DATA_SIZE, 77, (void **) &data);

        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0)
                _exit(vmm(d.socket, "vm0", image, minivm_checksum_host(data, DATA_SIZE)));
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "VMM failed: status 0x%x", status);

        /* the VMM is gone: gmemd still lists the region, its holder disconnected */
        ck_assert_int_eq(gmem_client_connect(d.socket, &c), 0);
        ck_assert_int_eq(gmem_client_info(c, "vm0", &json), 0);
        info = cJSON_Parse(json);
        ck_assert_ptr_nonnull(info);
        ck_assert_str_eq(cJSON_GetObjectItem(info, "backend")->valuestring, gmem_backend_to_string(guest_backend(&(uint64_t){ 0 })));
        ck_assert_str_eq(cJSON_GetObjectItem(info, "state")->valuestring, "populated");
        ck_assert_uint_eq((uint64_t) cJSON_GetObjectItem(info, "populated_bytes")->valuedouble, DATA_SIZE);
        holders = cJSON_GetObjectItem(info, "holders");
        ck_assert_int_eq(cJSON_GetArraySize(holders), 1);
        ck_assert_int_eq((int) cJSON_GetObjectItem(cJSON_GetArrayItem(holders, 0), "pid")->valuedouble, pid);
        ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(cJSON_GetArrayItem(holders, 0), "connected")));
        cJSON_Delete(info);
        free(json);

        /* and dumps exactly what the VMM's guest saw */
        out = gmem_test_temp_file();
        ck_assert_int_eq(gmem_client_dump_fd(c, "vm0", 0, DATA_SIZE, out, 0), DATA_SIZE);
        back = gmem_test_read_fd(out, 0, DATA_SIZE);
        ck_assert_mem_eq(back, data, DATA_SIZE);
        free(back);
        close(out);

        ck_assert_int_eq(gmem_client_release(c, "vm0"), 0);
        ck_assert_int_eq(gmem_client_info(c, "vm0", &json), -ENOENT);
        gmem_client_free(c);
        free(data);
        close(image);
        gmem_test_daemon_stop(&d);
}
END_TEST

START_TEST(connection_policy_releases_with_the_vmm) {
        struct gmem_test_daemon d;
        struct gmem_client *c = NULL, *vmm_client = NULL;
        struct gmem_region *r = NULL;
        char *json = NULL;
        int vm;

        REQUIRE_KVM();
        gmem_test_daemon_start(&d, NULL);
        vm = gmem_test_new_vm();
        ck_assert_int_eq(new_guest_memory(vm, 1 << 20, &r), 0);
        ck_assert_int_eq(gmem_client_connect(d.socket, &vmm_client), 0);
        ck_assert_int_eq(gmem_client_register_policy(vmm_client, "scratch", r, GMEM_POLICY_CONNECTION), 0);
        ck_assert_int_eq(gmem_client_connect(d.socket, &c), 0);
        ck_assert_int_eq(gmem_client_info(c, "scratch", &json), 0);
        free(json);
        gmem_client_free(vmm_client);
        /* the daemon notices the closed connection on its next loop turn */
        for (int i = 0; i < 100 && gmem_client_info(c, "scratch", &json) == 0; i++) {
                free(json);
                usleep(10000);
        }
        ck_assert_int_eq(gmem_client_info(c, "scratch", &json), -ENOENT);
        gmem_client_free(c);
        gmem_region_free(r);
        close(vm);
        gmem_test_daemon_stop(&d);
}
END_TEST

/* A guest_memfd larger than the loop may walk: its resident bytes come from a worker, and list and
 * info show the figure once it is in, following what populate and punch did. */
static int64_t resident_of(struct gmem_client *c, const char *name) {
        char *json = NULL;
        cJSON *o, *v;
        int64_t bytes = -1;

        ck_assert_int_eq(gmem_client_info(c, name, &json), 0);
        o = cJSON_Parse(json);
        free(json);
        ck_assert_ptr_nonnull(o);
        v = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(o, "region") ?: o, "resident_bytes");
        ck_assert_msg(v && (cJSON_IsNull(v) || cJSON_IsNumber(v)), "resident_bytes is neither a number nor null");
        if (cJSON_IsNumber(v))
                bytes = (int64_t) v->valuedouble;
        cJSON_Delete(o);
        return bytes;
}

static void wait_resident(struct gmem_client *c, const char *name, int64_t want) {
        int64_t got = -1;
        for (int i = 0; i < 500 && (got = resident_of(c, name)) != want; i++)
                usleep(10000);
        ck_assert_int_eq(got, want);
}

START_TEST(large_region_residency_measured_off_the_loop) {
        struct gmem_test_daemon d;
        struct gmem_client *c = NULL;
        struct gmem_region *r = NULL;
        uint64_t flags;
        int vm, image;

        REQUIRE_KVM();
        if (guest_backend(&flags) != GMEM_BACKEND_GUEST_MEMFD) {
                printf("SKIP: no guest_memfd to use on this kernel: memfd residency is counted, never walked\n");
                return;
        }
        gmem_test_daemon_start(&d, NULL);
        vm = gmem_test_new_vm();
        ck_assert_int_eq(gmem_region_new_guest_memfd(vm, 256u << 20, flags, &r), 0);
        ck_assert_int_eq(gmem_client_connect(d.socket, &c), 0);
        ck_assert_int_eq(gmem_client_register(c, "big", r), 0);
        wait_resident(c, "big", 0);
        image = gmem_test_random_file(DATA_SIZE, 7, NULL);
        ck_assert_int_eq(gmem_client_populate_fd(c, "big", 64u << 20, image, 0, DATA_SIZE), 0);
        wait_resident(c, "big", DATA_SIZE);
        ck_assert_int_eq(gmem_client_punch(c, "big", 64u << 20, DATA_SIZE / 2), 0);
        wait_resident(c, "big", DATA_SIZE / 2);
        close(image);
        gmem_client_free(c);
        gmem_region_free(r);
        close(vm);
        gmem_test_daemon_stop(&d);
}
END_TEST

int main(void) {
        Suite *s = suite_create("daemon-vmm");
        TCase *tc = tcase_create("custody");

        tcase_set_timeout(tc, 120);
        tcase_add_test(tc, registered_guest_memfd_outlives_its_vmm);
        tcase_add_test(tc, connection_policy_releases_with_the_vmm);
        tcase_add_test(tc, large_region_residency_measured_off_the_loop);
        suite_add_tcase(s, tc);
        return gmem_test_main(s);
}
