/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * gmemd's authorization (docs/protocol.md, "Authorization") against a real daemon. The region's
 * owner is uid 1000 and the stranger uid 1001 — neither root, so "root may do anything" masks
 * nothing. Their connections are made by forked children that drop every privilege
 * (setgroups/setresgid/setresuid) before connecting; gmemd takes SO_PEERCRED/SO_PEERGROUPS at
 * connect time, so the connection is that identity's for good while this process drives it.
 *
 * After every refusal: EACCES with a message, and nothing changed — the region is listed for its
 * owner with the same size and grants, and its content (dumped by the owner) hashes the same.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gmem-test.h"
#include "raw-client.h"

#define OWNER 1000
#define STRANGER 1001
#define GROUPIE 1002      /* gets access through a supplementary group */
#define PRIMARY 1003      /* gets access through its primary group */
#define SHARED_GID 5000
#define SIZE (256 * 1024)

struct auth {
        struct gmem_test_daemon d;
        int owner;          /* uid 1000's session */
        int root;           /* a root session */
        uint8_t *expect;    /* what region "vm1" holds */
};

/* Other identities take root to make. */
#define REQUIRE_ROOT() do { if (geteuid() != 0) SKIP_TEST("needs root to connect as other uids"); } while (0)

static void auth_start(struct auth *a) {
        void *data = NULL;
        int src;

        memset(a, 0, sizeof(*a));
        rc_daemon_start(&a->d, NULL);
        a->root = rc_session(a->d.socket);
        a->owner = rc_session_as(a->d.socket, OWNER);
        RC_EXPECT_OK(rc_call(a->owner, NULL, 0, NULL, "{\"op\":\"create\",\"name\":\"vm1\",\"size\":%d}", SIZE));
        src = gmem_test_random_file(SIZE, 10, &data);
        RC_EXPECT_OK(rc_call(a->owner, &src, 1, NULL, "{\"op\":\"populate\",\"name\":\"vm1\"}"));
        close(src);
        a->expect = data;
}

static void auth_stop(struct auth *a) {
        close(a->owner);
        close(a->root);
        free(a->expect);
        gmem_test_daemon_stop(&a->d);
}

/* The region's description as its owner sees it (info). */
static cJSON *owner_info(struct auth *a) {
        cJSON *r = RC_EXPECT_OK_KEEP(rc_call(a->owner, NULL, 0, NULL, "{\"op\":\"info\",\"name\":\"vm1\"}"));
        cJSON *reg = cJSON_DetachItemFromObjectCaseSensitive(r, "region");
        cJSON_Delete(r);
        ck_assert_ptr_nonnull(reg);
        return reg;
}

static int n_grants(const cJSON *reg, const char *kind) {
        return cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(reg, "grants"), kind));
}

static bool granted(const cJSON *reg, const char *kind, int id) {
        const cJSON *v;
        cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(reg, "grants"), kind))
                if (cJSON_IsNumber(v) && v->valuedouble == id)
                        return true;
        return false;
}

/* Nothing changed: listed for the owner, same size, the grants given, same content. */
static void unchanged_at(const char *file, int line, struct auth *a, int n_uid_grants, int n_gid_grants) {
        cJSON *regions = rc_list_at(file, line, a->owner), *reg;
        const cJSON *listed = rc_find_region(regions, "vm1");
        uint64_t h;

        if (!listed)
                RC_FAIL_AT(file, line, "region vm1 is no longer listed for its owner");
        cJSON_Delete(regions);
        reg = owner_info(a);
        if (rc_num(reg, "size") != SIZE || rc_num(reg, "owner_uid") != OWNER)
                RC_FAIL_AT(file, line, "vm1 changed size or owner: %s", cJSON_PrintUnformatted(reg));
        if (n_grants(reg, "uids") != n_uid_grants || n_grants(reg, "gids") != n_gid_grants)
                RC_FAIL_AT(file, line, "vm1's grants changed: %s", cJSON_PrintUnformatted(reg));
        cJSON_Delete(reg);
        h = rc_dump_hash_at(file, line, a->owner, "vm1", SIZE);
        if (h != rc_hash_buf(a->expect, SIZE))
                RC_FAIL_AT(file, line, "vm1's content changed");
}
#define UNCHANGED(a, nu, ng) unchanged_at(__FILE__, __LINE__, (a), (nu), (ng))

#define DENIED(s, fds, n_fds, ...) RC_EXPECT_ERROR(rc_call((s), (fds), (n_fds), NULL, __VA_ARGS__), "EACCES", "may not")

/* Every operation on vm1 from s is refused, and nothing changes. `admin_only`: only grant, revoke
 * and release (s may use the region). */
static void all_refused(struct auth *a, int s, int uid, bool admin_only, int nu, int ng) {
        int src = gmem_test_random_file(SIZE, 99, NULL), out = gmem_test_temp_file(), fd = -1;
        struct stat st;
        char uid_s[16];

        snprintf(uid_s, sizeof(uid_s), "%d", uid);
        if (!admin_only) {
                cJSON *r = rc_call(s, NULL, 0, &fd, "{\"op\":\"open\",\"name\":\"vm1\"}");
                ck_assert_msg(fd < 0, "a refused open came with an fd");
                RC_EXPECT_ERROR(r, "EACCES", uid_s); /* the message says who */
                UNCHANGED(a, nu, ng);
                DENIED(s, NULL, 0, "{\"op\":\"info\",\"name\":\"vm1\"}");
                UNCHANGED(a, nu, ng);
                DENIED(s, &src, 1, "{\"op\":\"populate\",\"name\":\"vm1\"}");
                UNCHANGED(a, nu, ng);
                DENIED(s, &src, 1, "{\"op\":\"populate\",\"name\":\"vm1\",\"offset\":4096,\"length\":4096}");
                UNCHANGED(a, nu, ng);
                DENIED(s, NULL, 0, "{\"op\":\"prefault\",\"name\":\"vm1\"}");
                UNCHANGED(a, nu, ng);
                DENIED(s, NULL, 0, "{\"op\":\"punch\",\"name\":\"vm1\",\"offset\":0,\"length\":%d}", SIZE);
                UNCHANGED(a, nu, ng);
                DENIED(s, &out, 1, "{\"op\":\"dump\",\"name\":\"vm1\"}");
                ck_assert_int_eq(fstat(out, &st), 0);
                ck_assert_msg(st.st_size == 0 && st.st_blocks == 0, "a refused dump wrote %lld bytes", (long long) st.st_size);
                UNCHANGED(a, nu, ng);
        }
        DENIED(s, NULL, 0, "{\"op\":\"grant\",\"name\":\"vm1\",\"uid\":%d}", uid);
        UNCHANGED(a, nu, ng);
        DENIED(s, NULL, 0, "{\"op\":\"grant\",\"name\":\"vm1\",\"gid\":%d}", uid);
        UNCHANGED(a, nu, ng);
        DENIED(s, NULL, 0, "{\"op\":\"grant\",\"name\":\"vm1\",\"uid\":4242}");
        UNCHANGED(a, nu, ng);
        DENIED(s, NULL, 0, "{\"op\":\"revoke\",\"name\":\"vm1\",\"uid\":%d}", uid);
        UNCHANGED(a, nu, ng);
        DENIED(s, NULL, 0, "{\"op\":\"revoke\",\"name\":\"vm1\",\"gid\":%d}", SHARED_GID);
        UNCHANGED(a, nu, ng);
        DENIED(s, NULL, 0, "{\"op\":\"release\",\"name\":\"vm1\"}");
        UNCHANGED(a, nu, ng);
        close(src);
        close(out);
}

START_TEST(stranger_is_refused_everything) {
        struct auth a;
        int s;
        cJSON *r;

        REQUIRE_ROOT();
        auth_start(&a);
        s = rc_session_as(a.d.socket, STRANGER);
        all_refused(&a, s, STRANGER, false, 0, 0);
        /* nothing in a message claims another identity */
        r = RC_EXPECT_OK_KEEP(rc_call(s, NULL, 0, NULL, "{\"op\":\"hello\",\"version\":1,\"uid\":%d,\"gid\":0}", OWNER));
        ck_assert_int_eq((int) rc_num(r, "uid"), STRANGER);
        cJSON_Delete(r);
        DENIED(s, NULL, 0, "{\"op\":\"release\",\"name\":\"vm1\",\"uid\":%d}", OWNER);
        UNCHANGED(&a, 0, 0);
        /* the region exists: the name cannot be taken over either */
        RC_EXPECT_ERROR(rc_call(s, NULL, 0, NULL, "{\"op\":\"create\",\"name\":\"vm1\",\"size\":4096}"), "EEXIST", "vm1");
        UNCHANGED(&a, 0, 0);
        close(s);
        auth_stop(&a);
}
END_TEST

START_TEST(stranger_does_not_see_it) {
        struct auth a;
        int s, src;
        cJSON *regions;
        unsigned events = 0;

        REQUIRE_ROOT();
        auth_start(&a);
        s = rc_session_as(a.d.socket, STRANGER);
        regions = rc_list(s);
        ck_assert_int_eq(cJSON_GetArraySize(regions), 0);
        cJSON_Delete(regions);
        regions = rc_list(a.root);
        ck_assert_ptr_nonnull(rc_find_region(regions, "vm1"));
        cJSON_Delete(regions);

        /* a watcher gets no event about it... */
        RC_EXPECT_OK(rc_call(s, NULL, 0, NULL, "{\"op\":\"watch\"}"));
        src = gmem_test_random_file(SIZE, 11, NULL);
        RC_EXPECT_OK(rc_call(a.owner, &src, 1, NULL, "{\"op\":\"populate\",\"name\":\"vm1\"}"));
        RC_EXPECT_OK(rc_call(a.owner, NULL, 0, NULL, "{\"op\":\"create\",\"name\":\"vm2\",\"size\":4096}"));
        RC_EXPECT_OK(rc_call(a.owner, NULL, 0, NULL, "{\"op\":\"release\",\"name\":\"vm2\"}"));
        /* (events are queued before later replies: a round trip collects every one sent so far) */
        regions = RC_EXPECT_OK_KEEP(rc_call_ev(s, &events, "{\"op\":\"list\"}"));
        ck_assert_int_eq(events, 0);
        ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(regions, "regions")), 0);
        cJSON_Delete(regions);

        /* ...while it does get events about its own regions (the watch works) */
        RC_EXPECT_OK(rc_call_ev(s, &events, "{\"op\":\"create\",\"name\":\"mine\",\"size\":4096}"));
        ck_assert_int_eq(events, 1); /* region-added */
        RC_EXPECT_OK(rc_call(a.owner, NULL, 0, NULL, "{\"op\":\"punch\",\"name\":\"vm1\",\"offset\":0,\"length\":4096}"));
        memset(a.expect, 0, 4096);
        RC_EXPECT_OK(rc_call_ev(s, &events, "{\"op\":\"list\"}"));
        ck_assert_int_eq(events, 0);

        /* and the owner does not see the stranger's region */
        regions = rc_list(a.owner);
        ck_assert_int_eq(cJSON_GetArraySize(regions), 1);
        ck_assert_ptr_null(rc_find_region(regions, "mine"));
        cJSON_Delete(regions);
        close(src);
        close(s);
        auth_stop(&a);
}
END_TEST

START_TEST(uid_grant_allows_use_not_admin) {
        struct auth a;
        int s, fd = -1, src, out;
        cJSON *r, *reg, *regions;
        uint8_t page[4096];
        struct stat st;

        REQUIRE_ROOT();
        auth_start(&a);
        s = rc_session_as(a.d.socket, STRANGER);
        r = RC_EXPECT_OK_KEEP(rc_call(a.owner, NULL, 0, NULL, "{\"op\":\"grant\",\"name\":\"vm1\",\"uid\":%d}", STRANGER));
        ck_assert(granted(cJSON_GetObjectItemCaseSensitive(r, "region"), "uids", STRANGER));
        cJSON_Delete(r);
        UNCHANGED(&a, 1, 0);

        /* list shows it now; open hands out the memory itself */
        regions = rc_list(s);
        ck_assert_ptr_nonnull(rc_find_region(regions, "vm1"));
        cJSON_Delete(regions);
        RC_EXPECT_OK(rc_call(s, NULL, 0, &fd, "{\"op\":\"open\",\"name\":\"vm1\"}"));
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(fstat(fd, &st), 0);
        ck_assert_int_eq(st.st_size, SIZE);
        {
                uint8_t *back = gmem_test_read_fd(fd, 0, SIZE);
                ck_assert_mem_eq(back, a.expect, SIZE);
                free(back);
        }
        close(fd);
        RC_EXPECT_OK(rc_call(s, NULL, 0, NULL, "{\"op\":\"info\",\"name\":\"vm1\"}"));
        /* populate one page, punch another: the owner sees both */
        gmem_test_fill(page, sizeof(page), 12);
        src = gmem_test_temp_file();
        ck_assert_int_eq(write(src, page, sizeof(page)), (ssize_t) sizeof(page));
        RC_EXPECT_OK(rc_call(s, &src, 1, NULL, "{\"op\":\"populate\",\"name\":\"vm1\",\"offset\":8192}"));
        memcpy(a.expect + 8192, page, sizeof(page));
        RC_EXPECT_OK(rc_call(s, NULL, 0, NULL, "{\"op\":\"punch\",\"name\":\"vm1\",\"offset\":16384,\"length\":4096}"));
        memset(a.expect + 16384, 0, 4096);
        RC_EXPECT_OK(rc_call(s, NULL, 0, NULL, "{\"op\":\"prefault\",\"name\":\"vm1\",\"offset\":16384,\"length\":4096}"));
        UNCHANGED(&a, 1, 0);
        out = gmem_test_temp_file();
        RC_EXPECT_OK(rc_call(s, &out, 1, NULL, "{\"op\":\"dump\",\"name\":\"vm1\"}"));
        ck_assert_uint_eq(rc_hash_fd(out, SIZE), rc_hash_buf(a.expect, SIZE));
        close(out);
        /* the opener shows up as a holder */
        reg = owner_info(&a);
        {
                bool found = false;
                const cJSON *h;
                cJSON_ArrayForEach(h, cJSON_GetObjectItemCaseSensitive(reg, "holders"))
                        if (rc_num(h, "uid") == STRANGER && strcmp(rc_str(h, "role"), "opened") == 0)
                                found = true;
                ck_assert_msg(found, "the grantee that opened vm1 is not a holder: %s", cJSON_PrintUnformatted(reg));
        }
        cJSON_Delete(reg);

        /* but a grantee may not grant, revoke or release */
        all_refused(&a, s, STRANGER, true, 1, 0);
        close(src);
        close(s);
        auth_stop(&a);
}
END_TEST

START_TEST(gid_grants) {
        struct auth a;
        gid_t with[2] = { GROUPIE, SHARED_GID }, without[1] = { GROUPIE }, primary[1] = { SHARED_GID };
        int sg, sn, sp, fd = -1;
        cJSON *r;

        REQUIRE_ROOT();
        auth_start(&a);
        sg = rc_connect_as(a.d.socket, GROUPIE, GROUPIE, with, 2);
        rc_hello(sg);
        sn = rc_connect_as(a.d.socket, GROUPIE, GROUPIE, without, 1);
        rc_hello(sn);
        sp = rc_connect_as(a.d.socket, PRIMARY, SHARED_GID, primary, 1);
        rc_hello(sp);

        DENIED(sg, NULL, 0, "{\"op\":\"open\",\"name\":\"vm1\"}");
        DENIED(sp, NULL, 0, "{\"op\":\"info\",\"name\":\"vm1\"}");
        r = RC_EXPECT_OK_KEEP(rc_call(a.owner, NULL, 0, NULL, "{\"op\":\"grant\",\"name\":\"vm1\",\"gid\":%d}", SHARED_GID));
        ck_assert(granted(cJSON_GetObjectItemCaseSensitive(r, "region"), "gids", SHARED_GID));
        cJSON_Delete(r);
        UNCHANGED(&a, 0, 1);

        /* a supplementary group member may use it */
        RC_EXPECT_OK(rc_call(sg, NULL, 0, &fd, "{\"op\":\"open\",\"name\":\"vm1\"}"));
        ck_assert_int_ge(fd, 0);
        close(fd);
        RC_EXPECT_OK(rc_call(sg, NULL, 0, NULL, "{\"op\":\"info\",\"name\":\"vm1\"}"));
        RC_EXPECT_OK(rc_call(sg, NULL, 0, NULL, "{\"op\":\"punch\",\"name\":\"vm1\",\"offset\":0,\"length\":4096}"));
        memset(a.expect, 0, 4096);
        UNCHANGED(&a, 0, 1);
        /* and so may one whose primary group it is */
        RC_EXPECT_OK(rc_call(sp, NULL, 0, NULL, "{\"op\":\"info\",\"name\":\"vm1\"}"));
        {
                cJSON *l = rc_list(sp);
                ck_assert_int_eq(cJSON_GetArraySize(l), 1);
                cJSON_Delete(l);
        }
        /* the same uid without the group may not */
        DENIED(sn, NULL, 0, "{\"op\":\"open\",\"name\":\"vm1\"}");
        DENIED(sn, NULL, 0, "{\"op\":\"info\",\"name\":\"vm1\"}");
        UNCHANGED(&a, 0, 1);
        /* a group grant is use, not administration */
        all_refused(&a, sg, GROUPIE, true, 0, 1);

        /* revoking the gid takes it away again, on the connections already open */
        r = RC_EXPECT_OK_KEEP(rc_call(a.owner, NULL, 0, NULL, "{\"op\":\"revoke\",\"name\":\"vm1\",\"gid\":%d}", SHARED_GID));
        ck_assert(!granted(cJSON_GetObjectItemCaseSensitive(r, "region"), "gids", SHARED_GID));
        cJSON_Delete(r);
        all_refused(&a, sg, GROUPIE, false, 0, 0);
        DENIED(sp, NULL, 0, "{\"op\":\"info\",\"name\":\"vm1\"}");
        close(sg);
        close(sn);
        close(sp);
        auth_stop(&a);
}
END_TEST

START_TEST(revoke_takes_it_away) {
        struct auth a;
        int s, fd = -1;
        cJSON *regions;

        REQUIRE_ROOT();
        auth_start(&a);
        s = rc_session_as(a.d.socket, STRANGER);
        RC_EXPECT_OK(rc_call(a.owner, NULL, 0, NULL, "{\"op\":\"grant\",\"name\":\"vm1\",\"uid\":%d}", STRANGER));
        /* granting twice records it once */
        RC_EXPECT_OK(rc_call(a.owner, NULL, 0, NULL, "{\"op\":\"grant\",\"name\":\"vm1\",\"uid\":%d}", STRANGER));
        UNCHANGED(&a, 1, 0);
        RC_EXPECT_OK(rc_call(s, NULL, 0, &fd, "{\"op\":\"open\",\"name\":\"vm1\"}"));
        ck_assert_int_ge(fd, 0);
        close(fd);
        RC_EXPECT_OK(rc_call(a.owner, NULL, 0, NULL, "{\"op\":\"revoke\",\"name\":\"vm1\",\"uid\":%d}", STRANGER));
        UNCHANGED(&a, 0, 0);
        all_refused(&a, s, STRANGER, false, 0, 0);
        regions = rc_list(s);
        ck_assert_int_eq(cJSON_GetArraySize(regions), 0);
        cJSON_Delete(regions);
        /* revoking what was not granted changes nothing and is not an error */
        RC_EXPECT_OK(rc_call(a.owner, NULL, 0, NULL, "{\"op\":\"revoke\",\"name\":\"vm1\",\"uid\":%d}", STRANGER));
        UNCHANGED(&a, 0, 0);
        close(s);
        auth_stop(&a);
}
END_TEST

START_TEST(root_may_do_anything) {
        struct auth a;
        int fd = -1, src, out;
        cJSON *r, *regions;
        uint8_t page[4096];

        REQUIRE_ROOT();
        auth_start(&a);
        RC_EXPECT_OK(rc_call(a.root, NULL, 0, NULL, "{\"op\":\"info\",\"name\":\"vm1\"}"));
        RC_EXPECT_OK(rc_call(a.root, NULL, 0, &fd, "{\"op\":\"open\",\"name\":\"vm1\"}"));
        ck_assert_int_ge(fd, 0);
        close(fd);
        gmem_test_fill(page, sizeof(page), 13);
        src = gmem_test_temp_file();
        ck_assert_int_eq(write(src, page, sizeof(page)), (ssize_t) sizeof(page));
        RC_EXPECT_OK(rc_call(a.root, &src, 1, NULL, "{\"op\":\"populate\",\"name\":\"vm1\",\"offset\":4096}"));
        memcpy(a.expect + 4096, page, sizeof(page));
        RC_EXPECT_OK(rc_call(a.root, NULL, 0, NULL, "{\"op\":\"punch\",\"name\":\"vm1\",\"offset\":0,\"length\":4096}"));
        memset(a.expect, 0, 4096);
        RC_EXPECT_OK(rc_call(a.root, NULL, 0, NULL, "{\"op\":\"prefault\",\"name\":\"vm1\"}"));
        out = gmem_test_temp_file();
        RC_EXPECT_OK(rc_call(a.root, &out, 1, NULL, "{\"op\":\"dump\",\"name\":\"vm1\"}"));
        ck_assert_uint_eq(rc_hash_fd(out, SIZE), rc_hash_buf(a.expect, SIZE));
        UNCHANGED(&a, 0, 0);
        RC_EXPECT_OK(rc_call(a.root, NULL, 0, NULL, "{\"op\":\"grant\",\"name\":\"vm1\",\"uid\":%d}", STRANGER));
        RC_EXPECT_OK(rc_call(a.root, NULL, 0, NULL, "{\"op\":\"grant\",\"name\":\"vm1\",\"gid\":%d}", SHARED_GID));
        UNCHANGED(&a, 1, 1);
        RC_EXPECT_OK(rc_call(a.root, NULL, 0, NULL, "{\"op\":\"revoke\",\"name\":\"vm1\",\"uid\":%d}", STRANGER));
        UNCHANGED(&a, 0, 1);
        r = RC_EXPECT_OK_KEEP(rc_call(a.root, NULL, 0, NULL, "{\"op\":\"info\",\"name\":\"vm1\"}"));
        ck_assert_int_eq((int) rc_num(cJSON_GetObjectItemCaseSensitive(r, "region"), "owner_uid"), OWNER);
        cJSON_Delete(r);
        RC_EXPECT_OK(rc_call(a.root, NULL, 0, NULL, "{\"op\":\"release\",\"name\":\"vm1\"}"));
        regions = rc_list(a.owner);
        ck_assert_int_eq(cJSON_GetArraySize(regions), 0);
        cJSON_Delete(regions);
        RC_EXPECT_ERROR(rc_call(a.owner, NULL, 0, NULL, "{\"op\":\"info\",\"name\":\"vm1\"}"), "ENOENT", "vm1");
        close(src);
        close(out);
        auth_stop(&a);
}
END_TEST

/* Start a populate of `name` from src on s and return its job id (from the first progress event). */
static long start_job(int s, const char *name, int src, long *ret_req_id) {
        long id = rc_next_id++;
        char req[128];
        uint64_t deadline = rc_now_ms() + RC_TIMEOUT_MS;

        snprintf(req, sizeof(req), "{\"op\":\"populate\",\"id\":%ld,\"name\":\"%s\"}", id, name);
        RC_SEND(s, req, &src, 1);
        *ret_req_id = id;
        for (;;) {
                cJSON *m = NULL;
                int k = rc_recv(s, 5000, &m, NULL, 0, NULL);
                ck_assert_int_eq(k, 1);
                ck_assert_msg(rc_is_event(m), "the populate ended before its first progress event: %s",
                              cJSON_PrintUnformatted(m));
                if (strcmp(rc_str(m, "event"), "progress") == 0) {
                        long job = (long) rc_num(m, "job");
                        ck_assert_msg(rc_num(m, "done") < rc_num(m, "total"), "first progress is the last: %s",
                                      cJSON_PrintUnformatted(m));
                        cJSON_Delete(m);
                        return job;
                }
                cJSON_Delete(m);
                ck_assert(rc_now_ms() < deadline);
        }
}

START_TEST(cancel_someone_elses_job) {
        const uint64_t big = 256u << 20;
        struct auth a;
        int s, src;
        long job, req;
        cJSON *r;

        REQUIRE_ROOT();
        auth_start(&a);
        s = rc_session_as(a.d.socket, STRANGER);
        RC_EXPECT_OK(rc_call(a.owner, NULL, 0, NULL, "{\"op\":\"create\",\"name\":\"long\",\"size\":%" PRIu64 "}", big));
        src = gmem_test_temp_file();
        ck_assert_int_eq(ftruncate(src, (off_t) big), 0);

        /* refused: the job goes on to the end */
        job = start_job(a.owner, "long", src, &req);
        RC_EXPECT_ERROR(rc_call(s, NULL, 0, NULL, "{\"op\":\"cancel\",\"job\":%ld}", job), "EACCES", "may not cancel");
        r = rc_reply(a.owner, req, NULL);
        ck_assert_msg(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "ok")), "the owner's populate did not complete: %s",
                      cJSON_PrintUnformatted(r));
        ck_assert(rc_num(r, "bytes") == (double) big);
        cJSON_Delete(r);

        /* root may cancel it: the owner's request is answered ECANCELED */
        RC_EXPECT_OK(rc_call(a.owner, NULL, 0, NULL, "{\"op\":\"punch\",\"name\":\"long\",\"offset\":0,\"length\":%" PRIu64 "}",
                             big));
        job = start_job(a.owner, "long", src, &req);
        RC_EXPECT_OK(rc_call(a.root, NULL, 0, NULL, "{\"op\":\"cancel\",\"job\":%ld}", job));
        RC_EXPECT_ERROR(rc_reply(a.owner, req, NULL), "ECANCELED", "cancel");

        /* a grantee may cancel (whoever may populate a region may cancel its jobs) */
        RC_EXPECT_OK(rc_call(a.owner, NULL, 0, NULL, "{\"op\":\"grant\",\"name\":\"long\",\"uid\":%d}", STRANGER));
        RC_EXPECT_OK(rc_call(a.owner, NULL, 0, NULL, "{\"op\":\"punch\",\"name\":\"long\",\"offset\":0,\"length\":%" PRIu64 "}",
                             big));
        job = start_job(a.owner, "long", src, &req);
        RC_EXPECT_OK(rc_call(s, NULL, 0, NULL, "{\"op\":\"cancel\",\"job\":%ld}", job));
        RC_EXPECT_ERROR(rc_reply(a.owner, req, NULL), "ECANCELED", "cancel");
        UNCHANGED(&a, 0, 0);
        close(src);
        close(s);
        auth_stop(&a);
}
END_TEST

int main(void) {
        Suite *s = suite_create("daemon-auth");
        TCase *tc = tcase_create("auth");

        tcase_add_test(tc, stranger_is_refused_everything);
        tcase_add_test(tc, stranger_does_not_see_it);
        tcase_add_test(tc, uid_grant_allows_use_not_admin);
        tcase_add_test(tc, gid_grants);
        tcase_add_test(tc, revoke_takes_it_away);
        tcase_add_test(tc, root_may_do_anything);
        tcase_add_test(tc, cancel_someone_elses_job);
        tcase_set_timeout(tc, 60);
        suite_add_tcase(s, tc);
        return gmem_test_main(s);
}
