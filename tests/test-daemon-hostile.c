/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Malformed and hostile requests against a real gmemd, spoken raw (tests/raw-client.h). For each:
 *  - the exact error code (errno name) and a one-line message that names what was wrong,
 *  - the daemon still serves hello + list to ANOTHER connection,
 *  - nothing changed: the reference region is there with its size and content (dump + hash), no
 *    region appeared, and the daemon holds no fd it was sent with a refused request.
 * Then the limits of docs/protocol.md, one by one, each with a config that makes it small, and
 * clients that vanish at awkward moments.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gmem-test.h"
#include "raw-client.h"

#define REF_SIZE (64 * 1024)

struct env {
        struct gmem_test_daemon d;
        int s;              /* a root session, hello done */
        uint64_t ref_hash;  /* content of region "ref" */
        int n_regions;      /* how many regions must exist */
};

static void env_start(struct env *e, const char *config) {
        void *data = NULL;
        int src;

        memset(e, 0, sizeof(*e));
        rc_daemon_start(&e->d, config);
        e->s = rc_session(e->d.socket);
        RC_EXPECT_OK(rc_call(e->s, NULL, 0, NULL, "{\"op\":\"create\",\"name\":\"ref\",\"size\":%d}", REF_SIZE));
        src = gmem_test_random_file(REF_SIZE, 1, &data);
        RC_EXPECT_OK(rc_call(e->s, &src, 1, NULL, "{\"op\":\"populate\",\"name\":\"ref\"}"));
        close(src);
        e->ref_hash = rc_hash_buf(data, REF_SIZE);
        free(data);
        e->n_regions = 1;
}

/* The daemon runs, answers another connection, and nothing changed. */
static void env_check_at(const char *file, int line, struct env *e) {
        int s, n;
        cJSON *regions;
        const cJSON *ref;
        uint64_t h;

        RC_ASSERT_DAEMON_RUNNING(&e->d);
        s = rc_open_session_at(file, line, e->d.socket);
        regions = rc_list_at(file, line, s);
        n = cJSON_GetArraySize(regions);
        if (n != e->n_regions)
                RC_FAIL_AT(file, line, "%d regions exist, expected %d: %s", n, e->n_regions, cJSON_PrintUnformatted(regions));
        ref = rc_find_region(regions, "ref");
        if (!ref || rc_num(ref, "size") != REF_SIZE)
                RC_FAIL_AT(file, line, "region 'ref' is gone or resized: %s", cJSON_PrintUnformatted(regions));
        cJSON_Delete(regions);
        h = rc_dump_hash_at(file, line, s, "ref", REF_SIZE);
        if (h != e->ref_hash)
                RC_FAIL_AT(file, line, "region 'ref' changed content");
        close(s);
}
#define ENV_CHECK(e) env_check_at(__FILE__, __LINE__, (e))

static void env_stop(struct env *e) {
        close(e->s);
        gmem_test_daemon_stop(&e->d);
}

/* A round trip on s: everything s sent before has been handled (and its fds closed). */
static void settle(int s) {
        cJSON_Delete(rc_list(s));
}

/* Raw bytes (+fds) on s must be answered with error `code` (reply id `id`, -1: null). */
#define EXPECT_RAW(s, text, fds, n_fds, id, code, needle) do { \
                RC_SEND((s), (text), (fds), (n_fds)); \
                RC_EXPECT_ERROR(rc_reply((s), (id), NULL), (code), (needle)); \
        } while (0)

/* A well-formed request (fresh id) must be answered with error `code`. */
#define EXPECT_ERR(s, fds, n_fds, code, needle, ...) \
        RC_EXPECT_ERROR(rc_call((s), (fds), (n_fds), NULL, __VA_ARGS__), (code), (needle))

static int memfd_of(size_t size, unsigned flags) {
        int fd = memfd_create("hostile", MFD_CLOEXEC | flags);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(ftruncate(fd, (off_t) size), 0);
        return fd;
}

/* ---- framing ------------------------------------------------------------------------------------ */

START_TEST(not_json_at_all) {
        struct env e;

        env_start(&e, NULL);
        EXPECT_RAW(e.s, "hello world", NULL, 0, -1, "EINVAL", "JSON");
        ENV_CHECK(&e);
        EXPECT_RAW(e.s, "\xff\xfe\x00garbage", NULL, 0, -1, "EINVAL", "JSON");
        ENV_CHECK(&e);
        env_stop(&e);
}
END_TEST

START_TEST(json_that_is_not_an_object) {
        static const char *const texts[] = { "[1,2,3]", "42", "\"hello\"", "true", "null", "[{\"op\":\"list\",\"id\":1}]" };
        struct env e;

        env_start(&e, NULL);
        for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
                EXPECT_RAW(e.s, texts[i], NULL, 0, -1, "EINVAL", "object");
                ENV_CHECK(&e);
        }
        env_stop(&e);
}
END_TEST

START_TEST(missing_or_mistyped_op) {
        struct env e;

        env_start(&e, NULL);
        EXPECT_RAW(e.s, "{}", NULL, 0, -1, "EINVAL", "op");
        ENV_CHECK(&e);
        EXPECT_RAW(e.s, "{\"id\":11}", NULL, 0, 11, "EINVAL", "op");
        ENV_CHECK(&e);
        EXPECT_RAW(e.s, "{\"op\":1,\"id\":12}", NULL, 0, 12, "EINVAL", "op");
        ENV_CHECK(&e);
        EXPECT_RAW(e.s, "{\"op\":null,\"id\":13}", NULL, 0, 13, "EINVAL", "op");
        ENV_CHECK(&e);
        EXPECT_RAW(e.s, "{\"op\":[\"list\"],\"id\":14}", NULL, 0, 14, "EINVAL", "op");
        ENV_CHECK(&e);
        /* the id must be an integer: anything else is refused, and answered with "id":null */
        EXPECT_RAW(e.s, "{\"op\":\"list\"}", NULL, 0, -1, "EINVAL", "id");
        ENV_CHECK(&e);
        EXPECT_RAW(e.s, "{\"op\":\"list\",\"id\":\"17\"}", NULL, 0, -1, "EINVAL", "id");
        EXPECT_RAW(e.s, "{\"op\":\"list\",\"id\":1.5}", NULL, 0, -1, "EINVAL", "id");
        EXPECT_RAW(e.s, "{\"op\":\"list\",\"id\":{\"x\":[1]}}", NULL, 0, -1, "EINVAL", "id");
        EXPECT_RAW(e.s, "{\"op\":\"release\",\"id\":null,\"name\":\"ref\"}", NULL, 0, -1, "EINVAL", "id");
        ENV_CHECK(&e);
        EXPECT_RAW(e.s, "{\"op\":\"frobnicate\",\"id\":15}", NULL, 0, 15, "EOPNOTSUPP", "frobnicate");
        ENV_CHECK(&e);
        EXPECT_RAW(e.s, "{\"op\":\"LIST\",\"id\":16}", NULL, 0, 16, "EOPNOTSUPP", "LIST");
        ENV_CHECK(&e);
        /* a known member of the wrong type is EINVAL; unknown members are ignored */
        EXPECT_ERR(e.s, NULL, 0, "EINVAL", "name", "{\"op\":\"info\",\"name\":5}");
        ENV_CHECK(&e);
        RC_EXPECT_OK(rc_call(e.s, NULL, 0, NULL, "{\"op\":\"list\",\"whatever\":{\"a\":[1,2,{}]}}"));
        env_stop(&e);
}
END_TEST

START_TEST(truncated_message) {
        struct env e;

        env_start(&e, NULL);
        EXPECT_RAW(e.s, "{\"op\":\"hel", NULL, 0, -1, "EINVAL", "JSON");
        ENV_CHECK(&e);
        EXPECT_RAW(e.s, "{\"op\":\"list\",\"id\":1", NULL, 0, -1, "EINVAL", "JSON");
        ENV_CHECK(&e);
        env_stop(&e);
}
END_TEST

START_TEST(deeply_nested_json) {
        struct env e;
        size_t n = 100000;
        char *deep = malloc(n + 1);

        ck_assert_ptr_nonnull(deep);
        env_start(&e, NULL);
        /* 100000 '[': larger than max_message_bytes (65536) */
        memset(deep, '[', n);
        deep[n] = 0;
        RC_SEND(e.s, deep, NULL, 0);
        RC_EXPECT_ERROR(rc_reply(e.s, -1, NULL), "EMSGSIZE", "65536");
        ENV_CHECK(&e);
        /* 60000 '[' fits: the parser must refuse the depth without recursing to death */
        deep[60000] = 0;
        EXPECT_RAW(e.s, deep, NULL, 0, -1, "EINVAL", "JSON");
        ENV_CHECK(&e);
        /* nested objects inside a valid request */
        {
                size_t depth = 10000, k = 0; /* 60 KB: under the 64 KiB limit */
                char *obj = malloc(depth * 6 + 64);
                k += (size_t) sprintf(obj, "{\"op\":\"list\",\"id\":3,\"x\":");
                for (size_t i = 0; i < depth; i++)
                        k += (size_t) sprintf(obj + k, "{\"a\":");
                obj[k++] = '1';
                for (size_t i = 0; i < depth + 1; i++)
                        obj[k++] = '}';
                obj[k] = 0;
                EXPECT_RAW(e.s, obj, NULL, 0, -1, "EINVAL", "JSON");
                free(obj);
        }
        ENV_CHECK(&e);
        free(deep);
        env_stop(&e);
}
END_TEST

START_TEST(trailing_garbage_after_the_object) {
        /* docs/protocol.md: one message = one JSON object. A second value or junk after it is not one:
         * it must be refused, not half-executed. */
        struct env e;

        env_start(&e, NULL);
        RC_SEND(e.s, "{\"op\":\"list\",\"id\":21} {\"op\":\"release\",\"name\":\"ref\"}", NULL, 0);
        RC_EXPECT_ERROR(rc_reply(e.s, RC_ANY_ID, NULL), "EINVAL", "JSON");
        ENV_CHECK(&e);
        RC_SEND(e.s, "{\"op\":\"create\",\"id\":22,\"name\":\"junk\",\"size\":4096}garbage", NULL, 0);
        RC_EXPECT_ERROR(rc_reply(e.s, RC_ANY_ID, NULL), "EINVAL", "JSON");
        ENV_CHECK(&e);
        env_stop(&e);
}
END_TEST

START_TEST(error_messages_are_one_line) {
        /* "message: one line for a human" -- also when the client put line breaks in what is quoted back,
         * and the daemon's log gets no line the client wrote */
        struct env e;
        int s;

        env_start(&e, NULL);
        EXPECT_ERR(e.s, NULL, 0, "EINVAL", "name", "{\"op\":\"create\",\"name\":\"x\\n<0>FAKE-LOG-LINE\",\"size\":4096}");
        ENV_CHECK(&e);
        EXPECT_ERR(e.s, NULL, 0, "EINVAL", "name", "{\"op\":\"info\",\"name\":\"x\\r\\n<0>FAKE-LOG-LINE\"}");
        ENV_CHECK(&e);
        EXPECT_ERR(e.s, NULL, 0, "EOPNOTSUPP", "op", "{\"op\":\"x\\n<0>FAKE-LOG-LINE\"}");
        ENV_CHECK(&e);
        s = rc_connect(e.d.socket);
        EXPECT_ERR(s, NULL, 0, "EPROTO", "hello", "{\"op\":\"x\\n<0>FAKE-LOG-LINE\"}");
        close(s);
        ENV_CHECK(&e);
        {
                FILE *f = fopen(e.d.log, "re");
                char line[4096];
                ck_assert_ptr_nonnull(f);
                while (fgets(line, sizeof(line), f))
                        ck_assert_msg(strncmp(line, "<0>FAKE", 7) != 0, "a client forged a log line: %s", line);
                fclose(f);
        }
        env_stop(&e);
}
END_TEST

START_TEST(name_with_an_embedded_nul) {
        /* "a\u0000b" is not [A-Za-z0-9._-]{1,64}: it must not become region "a" */
        struct env e;

        env_start(&e, NULL);
        EXPECT_RAW(e.s, "{\"op\":\"create\",\"id\":31,\"name\":\"a\\u0000b\",\"size\":4096}", NULL, 0, 31, "EINVAL", "name");
        ENV_CHECK(&e);
        EXPECT_RAW(e.s, "{\"op\":\"info\",\"id\":32,\"name\":\"ref\\u0000xyz\"}", NULL, 0, 32, "EINVAL", "name");
        ENV_CHECK(&e);
        env_stop(&e);
}
END_TEST

START_TEST(raw_control_bytes_in_strings) {
        /* JSON wants control bytes in strings escaped; cJSON takes them raw, and a raw NUL ends the
         * C string early: "ref\0xyz" must not become region "ref" */
        static const char raw_nul[] = "{\"op\":\"info\",\"id\":34,\"name\":\"ref\0xyz\"}";
        struct env e;
        int k;

        env_start(&e, NULL);
        EXPECT_RAW(e.s, "{\"op\":\"info\",\"id\":33,\"name\":\"ref\x01\"}", NULL, 0, 33, "EINVAL", "control byte");
        ENV_CHECK(&e);
        k = rc_send_raw(e.s, raw_nul, sizeof(raw_nul) - 1, NULL, 0);
        ck_assert_int_eq(k, 0);
        RC_EXPECT_ERROR(rc_reply(e.s, 34, NULL), "EINVAL", "control byte");
        ENV_CHECK(&e);
        /* escaped, they are fine where a string may hold them (and still no name) */
        EXPECT_RAW(e.s, "{\"op\":\"info\",\"id\":35,\"name\":\"ref\\t\"}", NULL, 0, 35, "EINVAL", "name");
        ENV_CHECK(&e);
        env_stop(&e);
}
END_TEST

START_TEST(ids_out_of_range) {
        /* an id is an integer of magnitude at most 2^53 - 1, checked before any conversion (a double
         * like 1e300 cast to an integer is undefined behaviour), and echoed digit for digit */
        struct env e;
        cJSON *r;

        env_start(&e, NULL);
        EXPECT_RAW(e.s, "{\"op\":\"list\",\"id\":1e300}", NULL, 0, -1, "EINVAL", "'id'");
        EXPECT_RAW(e.s, "{\"op\":\"list\",\"id\":-1e300}", NULL, 0, -1, "EINVAL", "'id'");
        EXPECT_RAW(e.s, "{\"op\":\"list\",\"id\":9007199254740992}", NULL, 0, -1, "EINVAL", "'id'");
        EXPECT_RAW(e.s, "{\"op\":\"list\",\"id\":1.5}", NULL, 0, -1, "EINVAL", "'id'");
        ENV_CHECK(&e);
        RC_SEND(e.s, "{\"op\":\"list\",\"id\":-9007199254740991}", NULL, 0);
        r = rc_reply(e.s, RC_ANY_ID, NULL);
        ck_assert(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "ok")));
        ck_assert(cJSON_GetObjectItemCaseSensitive(r, "id")->valuedouble == -9007199254740991.0);
        cJSON_Delete(r);
        ENV_CHECK(&e);
        env_stop(&e);
}
END_TEST

START_TEST(empty_datagram) {
        /* A zero-length SEQPACKET message reads like EOF: the daemon may close the connection, but it
         * must survive and keep serving others. */
        struct env e;
        int s;

        env_start(&e, NULL);
        s = rc_session(e.d.socket);
        RC_SEND(s, "", NULL, 0);
        ENV_CHECK(&e);
        close(s);
        ENV_CHECK(&e);
        env_stop(&e);
}
END_TEST

START_TEST(message_larger_than_the_limit) {
        struct env e;
        char *big = malloc(8192);
        int fds[2], pipefd[2];
        unsigned before;

        env_start(&e, "{\"limits\":{\"max_message_bytes\":4096}}");
        /* a valid request, padded to 5000 bytes */
        snprintf(big, 8192, "{\"op\":\"list\",\"id\":41,\"pad\":\"%4960d\"}", 0);
        ck_assert_uint_gt(strlen(big), 4096);
        EXPECT_RAW(e.s, big, NULL, 0, -1, "EMSGSIZE", "4096");
        ENV_CHECK(&e);

        /* the same with two fds attached: both closed by the daemon */
        ck_assert_int_eq(pipe2(pipefd, O_CLOEXEC), 0);
        fds[0] = pipefd[0];
        fds[1] = memfd_of(4096, 0);
        settle(e.s);
        before = gmem_test_count_fds(e.d.pid);
        EXPECT_RAW(e.s, big, fds, 2, -1, "EMSGSIZE", "4096");
        settle(e.s);
        ck_assert_uint_eq(gmem_test_count_fds(e.d.pid), before);
        ENV_CHECK(&e);

        /* exactly at the limit is fine */
        snprintf(big, 8192, "{\"op\":\"list\",\"id\":42,\"pad\":\"%*d\"}", 4096 - 30, 0);
        ck_assert_uint_eq(strlen(big), 4096);
        RC_SEND(e.s, big, NULL, 0);
        RC_EXPECT_OK(rc_reply(e.s, 42, NULL));

        close(pipefd[0]);
        close(pipefd[1]);
        close(fds[1]);
        free(big);
        env_stop(&e);
}
END_TEST

START_TEST(more_fds_than_the_limit) {
        struct env e;
        int fds[3];
        unsigned before;

        env_start(&e, "{\"limits\":{\"max_fds_per_message\":2}}");
        for (int i = 0; i < 3; i++)
                fds[i] = memfd_of(4096, 0);
        settle(e.s);
        before = gmem_test_count_fds(e.d.pid);
        EXPECT_RAW(e.s, "{\"op\":\"register\",\"id\":51,\"name\":\"three\"}", fds, 3, 51, "EINVAL", "file descriptors");
        settle(e.s);
        ck_assert_uint_eq(gmem_test_count_fds(e.d.pid), before);
        ENV_CHECK(&e);
        for (int i = 0; i < 3; i++)
                close(fds[i]);
        env_stop(&e);
}
END_TEST

START_TEST(fds_with_requests_that_take_none) {
        struct env e;
        int fds[2];
        unsigned before;

        env_start(&e, NULL);
        fds[0] = memfd_of(4096, 0);
        fds[1] = gmem_test_temp_file();
        settle(e.s);
        before = gmem_test_count_fds(e.d.pid);

        EXPECT_RAW(e.s, "{\"op\":\"list\",\"id\":61}", fds, 1, 61, "EINVAL", "file descriptor");
        ENV_CHECK(&e);
        EXPECT_RAW(e.s, "{\"op\":\"info\",\"id\":62,\"name\":\"ref\"}", fds, 2, 62, "EINVAL", "file descriptor");
        ENV_CHECK(&e);
        /* not JSON, with fds */
        EXPECT_RAW(e.s, "nope", fds, 2, -1, "EINVAL", "JSON");
        ENV_CHECK(&e);
        /* an empty message with an fd */
        RC_SEND(e.s, "", fds, 1);
        RC_EXPECT_ERROR(rc_reply(e.s, -1, NULL), "EINVAL", NULL);
        ENV_CHECK(&e);
        settle(e.s);
        ck_assert_uint_eq(gmem_test_count_fds(e.d.pid), before);
        close(fds[0]);
        close(fds[1]);
        env_stop(&e);
}
END_TEST

/* ---- session ------------------------------------------------------------------------------------- */

START_TEST(requests_before_hello) {
        static const char *const reqs[] = {
                "{\"op\":\"list\",\"id\":71}",
                "{\"op\":\"caps\",\"id\":71}",
                "{\"op\":\"info\",\"id\":71,\"name\":\"ref\"}",
                "{\"op\":\"create\",\"id\":71,\"name\":\"early\",\"size\":4096}",
                "{\"op\":\"release\",\"id\":71,\"name\":\"ref\"}",
                "{\"op\":\"punch\",\"id\":71,\"name\":\"ref\",\"offset\":0,\"length\":4096}",
                "{\"op\":\"grant\",\"id\":71,\"name\":\"ref\",\"uid\":1000}",
                "{\"op\":\"watch\",\"id\":71}",
                "{\"op\":\"nonsense\",\"id\":71}",
        };
        struct env e;
        unsigned before;
        int s, fd;

        env_start(&e, NULL);
        s = rc_connect(e.d.socket);
        for (size_t i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++) {
                EXPECT_RAW(s, reqs[i], NULL, 0, 71, "EPROTO", "hello");
                ENV_CHECK(&e);
        }
        /* with an fd: refused, and the fd is not kept */
        fd = memfd_of(4096, 0);
        settle(e.s);
        before = gmem_test_count_fds(e.d.pid);
        EXPECT_RAW(s, "{\"op\":\"register\",\"id\":72,\"name\":\"early\"}", &fd, 1, 72, "EPROTO", "hello");
        EXPECT_RAW(s, "{\"op\":\"populate\",\"id\":73,\"name\":\"ref\"}", &fd, 1, 73, "EPROTO", "hello");
        EXPECT_RAW(s, "{\"op\":\"open\",\"id\":74,\"name\":\"ref\"}", NULL, 0, 74, "EPROTO", "hello");
        RC_SEND(s, "{\"op\":\"hello\",\"id\":75,\"version\":1}", NULL, 0);
        RC_EXPECT_OK(rc_reply(s, 75, NULL));
        settle(s);
        ck_assert_uint_eq(gmem_test_count_fds(e.d.pid), before + 0);
        ENV_CHECK(&e);
        close(fd);
        close(s);
        env_stop(&e);
}
END_TEST

START_TEST(hello_versions) {
        struct env e;
        cJSON *r;
        int s;

        env_start(&e, NULL);
        s = rc_connect(e.d.socket);
        EXPECT_RAW(s, "{\"op\":\"hello\",\"id\":81,\"version\":0}", NULL, 0, 81, "EPROTONOSUPPORT", "version 0");
        ENV_CHECK(&e);
        /* a refused hello is no hello */
        EXPECT_RAW(s, "{\"op\":\"list\",\"id\":82}", NULL, 0, 82, "EPROTO", "hello");
        EXPECT_RAW(s, "{\"op\":\"hello\",\"id\":83,\"version\":\"1\"}", NULL, 0, 83, "EINVAL", "version");
        ENV_CHECK(&e);
        EXPECT_RAW(s, "{\"op\":\"hello\",\"id\":84,\"version\":-1}", NULL, 0, 84, "EINVAL", "version");
        EXPECT_RAW(s, "{\"op\":\"hello\",\"id\":85,\"version\":1.5}", NULL, 0, 85, "EINVAL", "version");
        EXPECT_RAW(s, "{\"op\":\"hello\",\"id\":86,\"version\":1e300}", NULL, 0, 86, "EINVAL", "version");
        EXPECT_RAW(s, "{\"op\":\"list\",\"id\":87}", NULL, 0, 87, "EPROTO", "hello");
        ENV_CHECK(&e);
        /* a newer client gets the version both speak */
        RC_SEND(s, "{\"op\":\"hello\",\"id\":88,\"version\":7,\"client\":\"future\"}", NULL, 0);
        r = RC_EXPECT_OK_KEEP(rc_reply(s, 88, NULL));
        ck_assert(rc_num(r, "version") == 1);
        ck_assert_int_eq((int) rc_num(r, "uid"), 0);
        cJSON_Delete(r);
        cJSON_Delete(rc_list(s));
        close(s);
        env_stop(&e);
}
END_TEST

/* ---- create -------------------------------------------------------------------------------------- */

START_TEST(create_bad_names) {
        struct env e;
        char name65[66], name64[65];

        env_start(&e, NULL);
        EXPECT_ERR(e.s, NULL, 0, "EINVAL", "name", "{\"op\":\"create\",\"size\":4096}");
        ENV_CHECK(&e);
        memset(name65, 'n', 65);
        name65[65] = 0;
        EXPECT_ERR(e.s, NULL, 0, "EINVAL", "name", "{\"op\":\"create\",\"name\":\"%s\",\"size\":4096}", name65);
        ENV_CHECK(&e);
        EXPECT_ERR(e.s, NULL, 0, "EINVAL", "name", "{\"op\":\"create\",\"name\":\"a/b\",\"size\":4096}");
        ENV_CHECK(&e);
        EXPECT_ERR(e.s, NULL, 0, "EINVAL", "name", "{\"op\":\"create\",\"name\":\"/etc/passwd\",\"size\":4096}");
        ENV_CHECK(&e);
        EXPECT_ERR(e.s, NULL, 0, "EINVAL", "name", "{\"op\":\"create\",\"name\":\"\",\"size\":4096}");
        ENV_CHECK(&e);
        EXPECT_ERR(e.s, NULL, 0, "EINVAL", "name", "{\"op\":\"create\",\"name\":\"a b\",\"size\":4096}");
        ENV_CHECK(&e);
        EXPECT_ERR(e.s, NULL, 0, "EINVAL", "name", "{\"op\":\"create\",\"name\":\"caf\\u00e9\",\"size\":4096}");
        ENV_CHECK(&e);
        EXPECT_ERR(e.s, NULL, 0, "EINVAL", "name", "{\"op\":\"create\",\"name\":42,\"size\":4096}");
        ENV_CHECK(&e);

        /* the rule is [A-Za-z0-9._-]{1,64}: dots alone are fine, and so are 64 characters */
        memset(name64, 'n', 64);
        name64[64] = 0;
        {
                const char *ok[] = { ".", "..", "...", "-", "_", "A.b-c_9", name64 };
                for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
                        cJSON *r = RC_EXPECT_OK_KEEP(rc_call(e.s, NULL, 0, NULL,
                                                             "{\"op\":\"create\",\"name\":\"%s\",\"size\":4096}", ok[i]));
                        const cJSON *reg = cJSON_GetObjectItemCaseSensitive(r, "region");
                        ck_assert_str_eq(rc_str(reg, "name"), ok[i]);
                        cJSON_Delete(r);
                        e.n_regions++;
                        ENV_CHECK(&e);
                        RC_EXPECT_OK(rc_call(e.s, NULL, 0, NULL, "{\"op\":\"release\",\"name\":\"%s\"}", ok[i]));
                        e.n_regions--;
                }
        }
        ENV_CHECK(&e);
        env_stop(&e);
}
END_TEST

START_TEST(create_bad_sizes) {
        struct env e;

        env_start(&e, NULL);
        EXPECT_ERR(e.s, NULL, 0, "EINVAL", "size", "{\"op\":\"create\",\"name\":\"x\"}");
        ENV_CHECK(&e);
        EXPECT_ERR(e.s, NULL, 0, "EINVAL", "size 0", "{\"op\":\"create\",\"name\":\"x\",\"size\":0}");
        ENV_CHECK(&e);
        EXPECT_ERR(e.s, NULL, 0, "EINVAL", "page size", "{\"op\":\"create\",\"name\":\"x\",\"size\":4097}");
        ENV_CHECK(&e);
        EXPECT_ERR(e.s, NULL, 0, "EINVAL", "page size", "{\"op\":\"create\",\"name\":\"x\",\"size\":1}");
        ENV_CHECK(&e);
        EXPECT_ERR(e.s, NULL, 0, "EINVAL", "size", "{\"op\":\"create\",\"name\":\"x\",\"size\":-4096}");
        ENV_CHECK(&e);
        EXPECT_ERR(e.s, NULL, 0, "EINVAL", "size", "{\"op\":\"create\",\"name\":\"x\",\"size\":1e300}");
        ENV_CHECK(&e);
        EXPECT_ERR(e.s, NULL, 0, "EINVAL", "size", "{\"op\":\"create\",\"name\":\"x\",\"size\":4096.5}");
        ENV_CHECK(&e);
        EXPECT_ERR(e.s, NULL, 0, "EINVAL", "size", "{\"op\":\"create\",\"name\":\"x\",\"size\":\"4096\"}");
        ENV_CHECK(&e);
        EXPECT_ERR(e.s, NULL, 0, "EINVAL", "size", "{\"op\":\"create\",\"name\":\"x\",\"size\":[4096]}");
        ENV_CHECK(&e);
        EXPECT_ERR(e.s, NULL, 0, "EINVAL", "size", "{\"op\":\"create\",\"name\":\"x\",\"size\":true}");
        ENV_CHECK(&e);
        /* 2^52 bytes: a valid number, far beyond this machine's RAM (the default total limit) */
        EXPECT_ERR(e.s, NULL, 0, "ENOSPC", "limit", "{\"op\":\"create\",\"name\":\"x\",\"size\":4503599627370496}");
        ENV_CHECK(&e);
        env_stop(&e);
}
END_TEST

START_TEST(create_bad_backends_and_options) {
        struct env e;

        env_start(&e, NULL);
        EXPECT_ERR(e.s, NULL, 0, "EINVAL", "floppy", "{\"op\":\"create\",\"name\":\"x\",\"size\":4096,\"backend\":\"floppy\"}");
        ENV_CHECK(&e);
        EXPECT_ERR(e.s, NULL, 0, "EINVAL", "backend", "{\"op\":\"create\",\"name\":\"x\",\"size\":4096,\"backend\":3}");
        ENV_CHECK(&e);
        EXPECT_ERR(e.s, NULL, 0, "EINVAL", "guest_memfd",
                   "{\"op\":\"create\",\"name\":\"x\",\"size\":4096,\"backend\":\"guest_memfd\"}");
        ENV_CHECK(&e);
        EXPECT_ERR(e.s, NULL, 0, "EINVAL", "page size",
                   "{\"op\":\"create\",\"name\":\"x\",\"size\":2097152,\"backend\":\"hugetlb\",\"page_size\":12345}");
        ENV_CHECK(&e);
        EXPECT_ERR(e.s, NULL, 0, "EINVAL", "policy", "{\"op\":\"create\",\"name\":\"x\",\"size\":4096,\"policy\":\"forever\"}");
        ENV_CHECK(&e);
        EXPECT_ERR(e.s, NULL, 0, "EINVAL", "prefault", "{\"op\":\"create\",\"name\":\"x\",\"size\":4096,\"prefault\":\"yes\"}");
        ENV_CHECK(&e);
        EXPECT_ERR(e.s, NULL, 0, "EEXIST", "ref", "{\"op\":\"create\",\"name\":\"ref\",\"size\":4096}");
        ENV_CHECK(&e);
        EXPECT_ERR(e.s, NULL, 0, "EEXIST", "ref", "{\"op\":\"create\",\"name\":\"ref\",\"size\":%d}", REF_SIZE);
        ENV_CHECK(&e);
        env_stop(&e);
}
END_TEST

/* ---- register ------------------------------------------------------------------------------------ */

START_TEST(register_wrong_number_of_fds) {
        struct env e;
        int fds[2];
        unsigned before;

        env_start(&e, NULL);
        fds[0] = memfd_of(4096, MFD_ALLOW_SEALING);
        fds[1] = memfd_of(4096, MFD_ALLOW_SEALING);
        settle(e.s);
        before = gmem_test_count_fds(e.d.pid);
        EXPECT_ERR(e.s, NULL, 0, "EINVAL", "file descriptor", "{\"op\":\"register\",\"name\":\"reg\"}");
        ENV_CHECK(&e);
        EXPECT_ERR(e.s, fds, 2, "EINVAL", "got 2", "{\"op\":\"register\",\"name\":\"reg\"}");
        ENV_CHECK(&e);
        settle(e.s);
        ck_assert_uint_eq(gmem_test_count_fds(e.d.pid), before);
        close(fds[0]);
        close(fds[1]);
        env_stop(&e);
}
END_TEST

START_TEST(register_fds_that_are_not_memory) {
        struct env e;
        int p[2], sp[2], file, devnull, dir;
        unsigned before;

        env_start(&e, NULL);
        ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
        file = gmem_test_temp_file();
        ck_assert_int_eq(ftruncate(file, 4096), 0);
        devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
        ck_assert_int_ge(devnull, 0);
        dir = open("/tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        ck_assert_int_ge(dir, 0);
        settle(e.s);
        before = gmem_test_count_fds(e.d.pid);

        EXPECT_ERR(e.s, &p[1], 1, "EBADFD", "pipe", "{\"op\":\"register\",\"name\":\"reg\"}");
        ENV_CHECK(&e);
        EXPECT_ERR(e.s, &sp[0], 1, "EBADFD", "socket", "{\"op\":\"register\",\"name\":\"reg\"}");
        ENV_CHECK(&e);
        EXPECT_ERR(e.s, &e.s, 1, "EBADFD", "socket", "{\"op\":\"register\",\"name\":\"reg\"}");
        ENV_CHECK(&e);
        EXPECT_ERR(e.s, &file, 1, "EBADFD", "not a guest_memfd", "{\"op\":\"register\",\"name\":\"reg\"}");
        ENV_CHECK(&e);
        EXPECT_ERR(e.s, &devnull, 1, "EBADFD", "character device", "{\"op\":\"register\",\"name\":\"reg\"}");
        ENV_CHECK(&e);
        EXPECT_ERR(e.s, &dir, 1, "EBADFD", "directory", "{\"op\":\"register\",\"name\":\"reg\"}");
        ENV_CHECK(&e);
        /* 'flags' describe a guest_memfd: they do not make a pipe one */
        EXPECT_ERR(e.s, &p[0], 1, "EBADFD", "pipe", "{\"op\":\"register\",\"name\":\"reg\",\"flags\":3}");
        ENV_CHECK(&e);
        settle(e.s);
        ck_assert_uint_eq(gmem_test_count_fds(e.d.pid), before);

        close(p[0]);
        close(p[1]);
        close(sp[0]);
        close(sp[1]);
        close(file);
        close(devnull);
        close(dir);
        env_stop(&e);
}
END_TEST

START_TEST(register_bad_memfds) {
        struct env e;
        int rw, ro, empty, odd;
        char path[64];
        unsigned before;

        env_start(&e, NULL);
        rw = memfd_of(8192, MFD_ALLOW_SEALING);
        snprintf(path, sizeof(path), "/proc/self/fd/%d", rw);
        ro = open(path, O_RDONLY | O_CLOEXEC);
        ck_assert_int_ge(ro, 0);
        empty = memfd_of(0, MFD_ALLOW_SEALING);
        odd = memfd_of(100, MFD_ALLOW_SEALING);
        settle(e.s);
        before = gmem_test_count_fds(e.d.pid);

        EXPECT_ERR(e.s, &ro, 1, "EBADF", "reading and writing", "{\"op\":\"register\",\"name\":\"reg\"}");
        ENV_CHECK(&e);
        EXPECT_ERR(e.s, &empty, 1, "EINVAL", "size 0", "{\"op\":\"register\",\"name\":\"reg\"}");
        ENV_CHECK(&e);
        EXPECT_ERR(e.s, &odd, 1, "EINVAL", "size 100", "{\"op\":\"register\",\"name\":\"reg\"}");
        ENV_CHECK(&e);
        EXPECT_ERR(e.s, &rw, 1, "EINVAL", "flags", "{\"op\":\"register\",\"name\":\"reg\",\"flags\":3}");
        ENV_CHECK(&e);
        EXPECT_ERR(e.s, &rw, 1, "EINVAL", "flags", "{\"op\":\"register\",\"name\":\"reg\",\"flags\":\"3\"}");
        ENV_CHECK(&e);
        EXPECT_ERR(e.s, &rw, 1, "EEXIST", "ref", "{\"op\":\"register\",\"name\":\"ref\"}");
        ENV_CHECK(&e);
        EXPECT_ERR(e.s, &rw, 1, "EINVAL", "name", "{\"op\":\"register\",\"name\":\"../x\"}");
        ENV_CHECK(&e);
        EXPECT_ERR(e.s, &rw, 1, "EINVAL", "policy", "{\"op\":\"register\",\"name\":\"reg\",\"policy\":1}");
        ENV_CHECK(&e);
        settle(e.s);
        ck_assert_uint_eq(gmem_test_count_fds(e.d.pid), before);

        /* the fd itself is fine: registering it works, and the daemon keeps exactly one fd for it */
        RC_EXPECT_OK(rc_call(e.s, &rw, 1, NULL, "{\"op\":\"register\",\"name\":\"reg\"}"));
        e.n_regions++;
        settle(e.s);
        ck_assert_uint_eq(gmem_test_count_fds(e.d.pid), before + 1);
        ENV_CHECK(&e);
        /* its size is sealed now: the owner cannot shrink it under the daemon */
        ck_assert_int_lt(ftruncate(rw, 0), 0);
        close(rw);
        close(ro);
        close(empty);
        close(odd);
        env_stop(&e);
}
END_TEST

START_TEST(register_then_shrink_underneath) {
        /* A memfd made without MFD_ALLOW_SEALING cannot be sealed: its creator could shrink it under
         * the daemon (SIGBUS for every holder) or grow it past the byte limits it was counted
         * against. gmemd refuses it at register, and nothing is registered. */
        struct env e;
        int fd;

        env_start(&e, NULL);
        fd = memfd_of(1 << 20, 0);
        EXPECT_RAW(e.s, "{\"op\":\"register\",\"id\":1003,\"name\":\"shrinky\"}", &fd, 1, 1003, "EPERM", "sealed");
        ENV_CHECK(&e);
        /* the caller's fd is untouched and still its own */
        ck_assert_int_eq(ftruncate(fd, 0), 0);
        close(fd);
        env_stop(&e);
}
END_TEST

/* ---- populate, dump, punch ------------------------------------------------------------------------ */

START_TEST(populate_bad_requests) {
        struct env e;
        int src, small, p[2];
        unsigned before;

        env_start(&e, NULL);
        src = gmem_test_random_file(REF_SIZE, 3, NULL);
        small = gmem_test_random_file(8192, 4, NULL);
        ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
        settle(e.s);
        before = gmem_test_count_fds(e.d.pid);

        EXPECT_ERR(e.s, NULL, 0, "EINVAL", "file descriptor", "{\"op\":\"populate\",\"name\":\"ref\"}");
        ENV_CHECK(&e);
        EXPECT_ERR(e.s, &src, 1, "ENOENT", "nothere", "{\"op\":\"populate\",\"name\":\"nothere\"}");
        ENV_CHECK(&e);
        EXPECT_ERR(e.s, &src, 1, "EINVAL", "name", "{\"op\":\"populate\"}");
        ENV_CHECK(&e);
        /* offset past the end */
        EXPECT_ERR(e.s, &src, 1, "ERANGE", "beyond", "{\"op\":\"populate\",\"name\":\"ref\",\"offset\":%d}", REF_SIZE + 4096);
        ENV_CHECK(&e);
        EXPECT_ERR(e.s, &src, 1, "ERANGE", "beyond",
                   "{\"op\":\"populate\",\"name\":\"ref\",\"offset\":9007199254740991,\"length\":4096}");
        ENV_CHECK(&e);
        /* length past the end */
        EXPECT_ERR(e.s, &src, 1, "ERANGE", "beyond",
                   "{\"op\":\"populate\",\"name\":\"ref\",\"offset\":4096,\"length\":%d}", REF_SIZE);
        ENV_CHECK(&e);
        EXPECT_ERR(e.s, &src, 1, "ERANGE", "beyond",
                   "{\"op\":\"populate\",\"name\":\"ref\",\"offset\":4096,\"length\":9007199254740991}");
        ENV_CHECK(&e);
        EXPECT_ERR(e.s, &src, 1, "EINVAL", "length 0", "{\"op\":\"populate\",\"name\":\"ref\",\"length\":0}");
        ENV_CHECK(&e);
        EXPECT_ERR(e.s, &src, 1, "EINVAL", "offset", "{\"op\":\"populate\",\"name\":\"ref\",\"offset\":-1}");
        ENV_CHECK(&e);
        /* src_offset past the source's end: with the default length, and with an explicit one */
        EXPECT_ERR(e.s, &small, 1, "ENODATA", "source", "{\"op\":\"populate\",\"name\":\"ref\",\"src_offset\":16384}");
        ENV_CHECK(&e);
        EXPECT_ERR(e.s, &small, 1, "ENODATA", "source",
                   "{\"op\":\"populate\",\"name\":\"ref\",\"src_offset\":16384,\"length\":4096}");
        ENV_CHECK(&e);
        /* a source shorter than the length asked */
        EXPECT_ERR(e.s, &small, 1, "ENODATA", "source", "{\"op\":\"populate\",\"name\":\"ref\",\"length\":%d}", REF_SIZE);
        ENV_CHECK(&e);
        EXPECT_ERR(e.s, &small, 1, "EINVAL", "src_offset", "{\"op\":\"populate\",\"name\":\"ref\",\"src_offset\":\"0\"}");
        ENV_CHECK(&e);
        /* a pipe as the source: without a length there is nothing to go by; with one, it cannot be
         * read at an offset */
        EXPECT_ERR(e.s, &p[0], 1, "EINVAL", "length", "{\"op\":\"populate\",\"name\":\"ref\"}");
        ENV_CHECK(&e);
        EXPECT_ERR(e.s, &p[0], 1, "ESPIPE", "seekable", "{\"op\":\"populate\",\"name\":\"ref\",\"length\":4096}");
        ENV_CHECK(&e);
        /* a socket as the source */
        EXPECT_ERR(e.s, &e.s, 1, "ESPIPE", "seekable", "{\"op\":\"populate\",\"name\":\"ref\",\"length\":4096}");
        ENV_CHECK(&e);
        /* a write-only source */
        {
                char path[64];
                int wo;
                snprintf(path, sizeof(path), "/proc/self/fd/%d", src);
                wo = open(path, O_WRONLY | O_CLOEXEC);
                ck_assert_int_ge(wo, 0);
                EXPECT_ERR(e.s, &wo, 1, "EBADF", "source", "{\"op\":\"populate\",\"name\":\"ref\",\"length\":4096}");
                ENV_CHECK(&e);
                close(wo);
        }
        settle(e.s);
        ck_assert_uint_eq(gmem_test_count_fds(e.d.pid), before);
        close(src);
        close(small);
        close(p[0]);
        close(p[1]);
        env_stop(&e);
}
END_TEST

/* "fd_name": the client's name for its fd, in the messages back to it; anything else refused */
START_TEST(fd_name_bad_requests) {
        struct env e;
        int small;
        char longname[300];

        env_start(&e, NULL);
        small = gmem_test_readonly_file(8192, 4); /* a dump into it fails in its job */
        settle(e.s);
        EXPECT_ERR(e.s, &small, 1, "EINVAL", "'fd_name' must be a string",
                   "{\"op\":\"populate\",\"name\":\"ref\",\"fd_name\":7}");
        ENV_CHECK(&e);
        EXPECT_ERR(e.s, NULL, 0, "EINVAL", "has none", "{\"op\":\"info\",\"name\":\"ref\",\"fd_name\":\"x\"}");
        ENV_CHECK(&e);
        EXPECT_ERR(e.s, &small, 1, "EINVAL", "1 to 255 bytes", "{\"op\":\"populate\",\"name\":\"ref\",\"fd_name\":\"\"}");
        ENV_CHECK(&e);
        memset(longname, 'a', 256);
        longname[256] = 0;
        EXPECT_ERR(e.s, &small, 1, "EINVAL", "1 to 255 bytes", "{\"op\":\"populate\",\"name\":\"ref\",\"fd_name\":\"%s\"}",
                   longname);
        ENV_CHECK(&e);
        /* a message is one line: no control characters, escaped or not */
        EXPECT_ERR(e.s, &small, 1, "EINVAL", "control characters",
                   "{\"op\":\"populate\",\"name\":\"ref\",\"fd_name\":\"a\\nb\"}");
        ENV_CHECK(&e);
        /* the name in the message of a job that failed (a dump into a file open only for reading) */
        EXPECT_ERR(e.s, &small, 1, "EBADF", "dump: pwrite 'out.raw' at 0",
                   "{\"op\":\"dump\",\"name\":\"ref\",\"length\":4096,\"fd_name\":\"out.raw\"}");
        ENV_CHECK(&e);
        /* and in a refusal before any job */
        EXPECT_ERR(e.s, &small, 1, "EBADMSG", "snapshot 'not.snap': not a gmem snapshot",
                   "{\"op\":\"restore\",\"name\":\"r9\",\"fd_name\":\"not.snap\"}");
        ENV_CHECK(&e);
        close(small);
        env_stop(&e);
}
END_TEST

START_TEST(dump_bad_requests) {
        struct env e;
        int p[2], ro, out;
        char path[64];
        unsigned before;

        env_start(&e, NULL);
        ck_assert_int_eq(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
        out = gmem_test_temp_file();
        snprintf(path, sizeof(path), "/proc/self/fd/%d", out);
        ro = open(path, O_RDONLY | O_CLOEXEC);
        ck_assert_int_ge(ro, 0);
        settle(e.s);
        before = gmem_test_count_fds(e.d.pid);

        EXPECT_ERR(e.s, NULL, 0, "EINVAL", "file descriptor", "{\"op\":\"dump\",\"name\":\"ref\"}");
        ENV_CHECK(&e);
        EXPECT_ERR(e.s, &p[1], 1, "ESPIPE", "seekable", "{\"op\":\"dump\",\"name\":\"ref\"}");
        ENV_CHECK(&e);
        EXPECT_ERR(e.s, &e.s, 1, "ESPIPE", "seekable", "{\"op\":\"dump\",\"name\":\"ref\"}");
        ENV_CHECK(&e);
        EXPECT_ERR(e.s, &out, 1, "ERANGE", "beyond", "{\"op\":\"dump\",\"name\":\"ref\",\"offset\":%d,\"length\":8192}",
                   REF_SIZE - 4096);
        ENV_CHECK(&e);
        EXPECT_ERR(e.s, &out, 1, "EINVAL", "dst_offset", "{\"op\":\"dump\",\"name\":\"ref\",\"dst_offset\":-4096}");
        ENV_CHECK(&e);
        /* 2^53 - 1: the largest offset the protocol carries. Most file systems refuse a file that
         * large (ext4, xfs: EFBIG), tmpfs and ramfs take it (an initramfs /tmp): the daemon must
         * do what the destination's file system does, seen here by trying it on our own fd. */
        {
                const off_t last = (off_t) 9007199254740991 + REF_SIZE - 1;
                bool takes_it = pwrite(out, "", 1, last) == 1;

                ck_assert_msg(takes_it || errno == EFBIG || errno == EINVAL, "pwrite at 2^53: %m");
                ck_assert_int_eq(ftruncate(out, 0), 0);
                if (takes_it) {
                        cJSON *r = rc_call(e.s, &out, 1, NULL,
                                           "{\"op\":\"dump\",\"name\":\"ref\",\"dst_offset\":9007199254740991}");
                        ck_assert_msg(cJSON_IsTrue(cJSON_GetObjectItem(r, "ok")), "dump at 2^53 - 1 on a file system "
                                      "that takes it: %s", cJSON_PrintUnformatted(r));
                        cJSON_Delete(r);
                        ck_assert_int_eq(lseek(out, 0, SEEK_END), last + 1);
                        ck_assert_int_eq(ftruncate(out, 0), 0);
                } else
                        EXPECT_ERR(e.s, &out, 1, "EFBIG", "destination",
                                   "{\"op\":\"dump\",\"name\":\"ref\",\"dst_offset\":9007199254740991}");
        }
        ENV_CHECK(&e);
        /* a destination open O_APPEND: pwrite() would put the data at its end, not where asked */
        {
                int app;
                snprintf(path, sizeof(path), "/proc/self/fd/%d", out);
                app = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
                ck_assert_int_ge(app, 0);
                EXPECT_ERR(e.s, &app, 1, "EINVAL", "O_APPEND", "{\"op\":\"dump\",\"name\":\"ref\",\"dst_offset\":4096}");
                close(app);
                ck_assert_int_eq(lseek(out, 0, SEEK_END), 0);
        }
        ENV_CHECK(&e);
        /* a destination open read-only: the file cannot be written (nor extended) */
        {
                cJSON *r = rc_call(e.s, &ro, 1, NULL, "{\"op\":\"dump\",\"name\":\"ref\"}");
                const char *code = rc_error_code(r);
                ck_assert_msg(code && (strcmp(code, "EBADF") == 0 || strcmp(code, "EINVAL") == 0),
                              "dump to a read-only fd: %s", cJSON_PrintUnformatted(r));
                cJSON_Delete(r);
        }
        ENV_CHECK(&e);
        ck_assert_int_eq(lseek(out, 0, SEEK_END), 0); /* nothing was written through the read-only fd */
        settle(e.s);
        ck_assert_uint_eq(gmem_test_count_fds(e.d.pid), before);
        close(p[0]);
        close(p[1]);
        close(ro);
        close(out);
        env_stop(&e);
}
END_TEST

START_TEST(punch_bad_requests) {
        struct env e;

        env_start(&e, NULL);
        EXPECT_ERR(e.s, NULL, 0, "EINVAL", "multiples", "{\"op\":\"punch\",\"name\":\"ref\",\"offset\":100,\"length\":4096}");
        ENV_CHECK(&e);
        EXPECT_ERR(e.s, NULL, 0, "EINVAL", "multiples", "{\"op\":\"punch\",\"name\":\"ref\",\"offset\":4096,\"length\":100}");
        ENV_CHECK(&e);
        EXPECT_ERR(e.s, NULL, 0, "EINVAL", "offset", "{\"op\":\"punch\",\"name\":\"ref\",\"length\":4096}");
        ENV_CHECK(&e);
        EXPECT_ERR(e.s, NULL, 0, "EINVAL", "length", "{\"op\":\"punch\",\"name\":\"ref\",\"offset\":0}");
        ENV_CHECK(&e);
        EXPECT_ERR(e.s, NULL, 0, "EINVAL", "length 0", "{\"op\":\"punch\",\"name\":\"ref\",\"offset\":0,\"length\":0}");
        ENV_CHECK(&e);
        EXPECT_ERR(e.s, NULL, 0, "ERANGE", "beyond", "{\"op\":\"punch\",\"name\":\"ref\",\"offset\":%d,\"length\":8192}",
                   REF_SIZE - 4096);
        ENV_CHECK(&e);
        EXPECT_ERR(e.s, NULL, 0, "ERANGE", "beyond", "{\"op\":\"punch\",\"name\":\"ref\",\"offset\":%d,\"length\":4096}",
                   REF_SIZE + 4096);
        ENV_CHECK(&e);
        EXPECT_ERR(e.s, NULL, 0, "EINVAL", "offset", "{\"op\":\"punch\",\"name\":\"ref\",\"offset\":\"0\",\"length\":4096}");
        ENV_CHECK(&e);
        EXPECT_ERR(e.s, NULL, 0, "ENOENT", "ghost", "{\"op\":\"punch\",\"name\":\"ghost\",\"offset\":0,\"length\":4096}");
        ENV_CHECK(&e);
        env_stop(&e);
}
END_TEST

START_TEST(grant_and_cancel_bad_requests) {
        struct env e;
        cJSON *r;
        const cJSON *g;

        env_start(&e, NULL);
        EXPECT_ERR(e.s, NULL, 0, "EINVAL", "exactly one", "{\"op\":\"grant\",\"name\":\"ref\",\"uid\":1000,\"gid\":1000}");
        ENV_CHECK(&e);
        EXPECT_ERR(e.s, NULL, 0, "EINVAL", "exactly one", "{\"op\":\"grant\",\"name\":\"ref\"}");
        ENV_CHECK(&e);
        EXPECT_ERR(e.s, NULL, 0, "EINVAL", "uid", "{\"op\":\"grant\",\"name\":\"ref\",\"uid\":-1}");
        ENV_CHECK(&e);
        EXPECT_ERR(e.s, NULL, 0, "EINVAL", "uid", "{\"op\":\"grant\",\"name\":\"ref\",\"uid\":4294967295}");
        ENV_CHECK(&e);
        EXPECT_ERR(e.s, NULL, 0, "EINVAL", "uid", "{\"op\":\"grant\",\"name\":\"ref\",\"uid\":\"1000\"}");
        ENV_CHECK(&e);
        EXPECT_ERR(e.s, NULL, 0, "EINVAL", "gid", "{\"op\":\"grant\",\"name\":\"ref\",\"gid\":1.5}");
        ENV_CHECK(&e);
        EXPECT_ERR(e.s, NULL, 0, "EINVAL", "exactly one", "{\"op\":\"revoke\",\"name\":\"ref\",\"uid\":1,\"gid\":1}");
        ENV_CHECK(&e);
        EXPECT_ERR(e.s, NULL, 0, "ENOENT", "ghost", "{\"op\":\"grant\",\"name\":\"ghost\",\"uid\":1000}");
        ENV_CHECK(&e);
        /* no grant was recorded by any of those */
        r = RC_EXPECT_OK_KEEP(rc_call(e.s, NULL, 0, NULL, "{\"op\":\"info\",\"name\":\"ref\"}"));
        g = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(r, "region"), "grants");
        ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(g, "uids")), 0);
        ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(g, "gids")), 0);
        cJSON_Delete(r);

        EXPECT_ERR(e.s, NULL, 0, "ENOENT", "job 987654", "{\"op\":\"cancel\",\"job\":987654}");
        ENV_CHECK(&e);
        EXPECT_ERR(e.s, NULL, 0, "EINVAL", "job", "{\"op\":\"cancel\"}");
        ENV_CHECK(&e);
        EXPECT_ERR(e.s, NULL, 0, "EINVAL", "job", "{\"op\":\"cancel\",\"job\":-1}");
        ENV_CHECK(&e);
        EXPECT_ERR(e.s, NULL, 0, "EINVAL", "job", "{\"op\":\"cancel\",\"job\":\"1\"}");
        ENV_CHECK(&e);
        /* open/info/release of unknown regions */
        EXPECT_ERR(e.s, NULL, 0, "ENOENT", "ghost", "{\"op\":\"open\",\"name\":\"ghost\"}");
        EXPECT_ERR(e.s, NULL, 0, "ENOENT", "ghost", "{\"op\":\"release\",\"name\":\"ghost\"}");
        EXPECT_ERR(e.s, NULL, 0, "EINVAL", "name", "{\"op\":\"release\",\"name\":\"../../ref\"}");
        ENV_CHECK(&e);
        env_stop(&e);
}
END_TEST

/* ---- limits -------------------------------------------------------------------------------------- */

/* Eight regions with long names: list replies of a few KiB each fill a socket's buffer in a
 * reasonable number. */
static void add_padding_regions(struct env *e) {
        char name[80];

        for (int i = 0; i < 8; i++) {
                snprintf(name, sizeof(name), "padding-region-%02d-%046d", i, 0);
                RC_EXPECT_OK(rc_call(e->s, NULL, 0, NULL, "{\"op\":\"create\",\"name\":\"%s\",\"size\":4096}", name));
                e->n_regions++;
        }
}

START_TEST(client_that_never_reads) {
        /* Requests sent without a reply read: once the client's socket is full, the daemon stops
         * reading its requests (they wait in the client's own socket buffer) and serves the others.
         * Nothing is dropped: when the client reads at last, every request is answered, in order. */
        struct env e;
        struct timeval tv = { 1, 0 };
        char req[64];
        int s, sent = 0, k;
        unsigned before;
        cJSON *m;

        env_start(&e, "{\"limits\":{\"max_queued_messages\":64}}");
        add_padding_regions(&e);
        settle(e.s);
        before = gmem_test_count_fds(e.d.pid);
        s = rc_session(e.d.socket);
        ck_assert_int_eq(setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)), 0);
        for (int i = 0; i < 20000; i++) {
                snprintf(req, sizeof(req), "{\"op\":\"list\",\"id\":%d}", i);
                k = rc_send_raw(s, req, strlen(req), NULL, 0);
                if (k < 0) {
                        /* the daemon stopped reading: the send timed out, the connection stands */
                        ck_assert_msg(k == -EAGAIN, "send %d: %s", i, strerror(-k));
                        break;
                }
                sent++;
        }
        ck_assert_msg(sent < 20000, "20000 requests went in: the daemon kept reading a client that does not read");
        /* meanwhile everyone else is served, and the stalled client costs the daemon no fds */
        ENV_CHECK(&e);
        ck_assert_uint_le(gmem_test_count_fds(e.d.pid), before + 2);
        ck_assert(!rc_log_contains(&e.d, "does not read its socket"));
        for (int i = 0; i < sent; i++) {
                const cJSON *id;
                ck_assert_int_eq(rc_recv(s, 10000, &m, NULL, 0, NULL), 1);
                id = cJSON_GetObjectItemCaseSensitive(m, "id");
                ck_assert_msg(cJSON_IsNumber(id) && id->valuedouble == i, "reply %d has id %s", i, cJSON_PrintUnformatted(m));
                cJSON_Delete(m);
        }
        printf("client_that_never_reads: %d requests sent before the daemon stopped reading; all answered in order\n", sent);
        close(s);
        ENV_CHECK(&e);
        env_stop(&e);
}
END_TEST

/* A connection held to the client limits: as uid 65534 when we are root (root has slots of its
 * own), else as ourselves. */
static int limited_connect(const char *path, uid_t uid) {
        gid_t g = (gid_t) uid;
        return geteuid() == 0 ? rc_connect_as(path, uid, g, &g, 1) : rc_connect(path);
}

static int limited_session(const char *path, uid_t uid) {
        int s = limited_connect(path, uid);
        rc_hello(s);
        return s;
}

/* The next connection as uid is answered EUSERS and closed. */
static void expect_refused(const char *path, uid_t uid) {
        int extra = limited_connect(path, uid);
        cJSON *m = NULL;

        ck_assert_int_eq(rc_recv(extra, RC_TIMEOUT_MS, &m, NULL, 0, NULL), 1);
        ck_assert_msg(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(m, "id")), "EUSERS reply id: %s",
                      cJSON_PrintUnformatted(m));
        RC_EXPECT_ERROR(m, "EUSERS", "clients");
        ck_assert_int_eq(rc_recv(extra, RC_TIMEOUT_MS, &m, NULL, 0, NULL), 0);
        close(extra);
}

START_TEST(too_many_clients) {
        struct gmem_test_daemon d;
        int s[4], root = -1, k;

        rc_daemon_start(&d, "{\"limits\":{\"max_clients\":4,\"max_clients_per_uid\":4}}");
        for (int i = 0; i < 4; i++)
                s[i] = limited_session(d.socket, 65534);
        /* the fifth is answered EUSERS and closed */
        expect_refused(d.socket, 65534);
        RC_ASSERT_DAEMON_RUNNING(&d);
        /* ... but root still gets in: whoever operates gmemd can always reach it */
        if (geteuid() == 0) {
                root = rc_session(d.socket);
                cJSON_Delete(rc_list(root));
        }
        /* the four keep working */
        for (int i = 0; i < 4; i++)
                cJSON_Delete(rc_list(s[i]));
        RC_EXPECT_OK(rc_call(s[0], NULL, 0, NULL, "{\"op\":\"create\",\"name\":\"c\",\"size\":4096}"));
        /* one leaves: a new client fits again (once the daemon saw the close) */
        close(s[3]);
        {
                uint64_t deadline = rc_now_ms() + 5000;
                for (;;) {
                        int t = limited_connect(d.socket, 65534);
                        cJSON *r = NULL;
                        /* the daemon may already have refused and closed it: then the send fails */
                        (void) rc_send_raw(t, "{\"op\":\"hello\",\"id\":1,\"version\":1}", 33, NULL, 0);
                        k = rc_recv(t, RC_TIMEOUT_MS, &r, NULL, 0, NULL);
                        if (k == 1 && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "ok"))) {
                                cJSON_Delete(r);
                                s[3] = t;
                                break;
                        }
                        /* refused: the EUSERS reply, or a reset when our hello met the closed socket */
                        if (k == 1)
                                RC_EXPECT_ERROR(r, "EUSERS", "clients");
                        else
                                ck_assert_msg(k == -ECONNRESET || k == 0, "reconnecting: %s", strerror(-k));
                        close(t);
                        ck_assert_msg(rc_now_ms() < deadline, "no room for a client after one left");
                        rc_sleep_ms(20);
                }
        }
        cJSON *regions = rc_list(s[3]);
        ck_assert_ptr_nonnull(rc_find_region(regions, "c"));
        cJSON_Delete(regions);
        for (int i = 0; i < 4; i++)
                close(s[i]);
        if (root >= 0)
                close(root);
        gmem_test_daemon_stop(&d);
}
END_TEST

static unsigned log_count(const struct gmem_test_daemon *d, const char *needle) {
        FILE *f = fopen(d->log, "re");
        char line[4096];
        unsigned n = 0;

        while (f && fgets(line, sizeof(line), f))
                n += strstr(line, needle) != NULL;
        if (f)
                fclose(f);
        return n;
}

START_TEST(accept_out_of_fds_does_not_spin) {
        /* gmemd out of fds: a pending connection keeps the listening socket readable, and accepting
         * again at once would spin on EMFILE. It pauses instead, and serves again once fds free up. */
        struct env e;
        struct rlimit saved, low;
        int waiting[4];
        unsigned fds, pauses;

        env_start(&e, NULL);
        ck_assert_int_eq(prlimit(e.d.pid, RLIMIT_NOFILE, NULL, &saved), 0);
        fds = gmem_test_count_fds(e.d.pid);
        low = (struct rlimit) { fds, saved.rlim_max };
        ck_assert_int_eq(prlimit(e.d.pid, RLIMIT_NOFILE, &low, NULL), 0);
        for (unsigned i = 0; i < ELEMENTSOF(waiting); i++)
                waiting[i] = rc_connect(e.d.socket); /* queued in the backlog: accept() says EMFILE */
        rc_sleep_ms(1000);
        pauses = log_count(&e.d, "not accepting for");
        /* a spin would log thousands; a pause every 100 ms is about ten */
        ck_assert_msg(pauses >= 1 && pauses <= 40, "%u accept pauses in a second", pauses);
        RC_ASSERT_DAEMON_RUNNING(&e.d);
        ck_assert_int_eq(prlimit(e.d.pid, RLIMIT_NOFILE, &saved, NULL), 0);
        /* fds are back: the waiting clients are served */
        for (unsigned i = 0; i < ELEMENTSOF(waiting); i++) {
                rc_hello(waiting[i]);
                cJSON_Delete(rc_list(waiting[i]));
                close(waiting[i]);
        }
        ENV_CHECK(&e);
        env_stop(&e);
}
END_TEST

START_TEST(one_uid_cannot_take_every_client_slot) {
        struct gmem_test_daemon d;
        int s[2], other;

        if (geteuid() != 0)
                SKIP_TEST("two uids need root to connect as");
        rc_daemon_start(&d, "{\"limits\":{\"max_clients\":8,\"max_clients_per_uid\":2}}");
        s[0] = limited_session(d.socket, 65534);
        s[1] = limited_session(d.socket, 65534);
        expect_refused(d.socket, 65534);
        /* another uid still has room */
        other = limited_session(d.socket, 65533);
        cJSON_Delete(rc_list(other));
        cJSON_Delete(rc_list(s[0]));
        close(other);
        close(s[0]);
        close(s[1]);
        gmem_test_daemon_stop(&d);
}
END_TEST

START_TEST(client_that_never_says_hello) {
        /* a connection that says nothing holds a slot for hello_timeout_ms, not forever */
        struct gmem_test_daemon d;
        int s, t;
        cJSON *m = NULL;

        rc_daemon_start(&d, "{\"limits\":{\"hello_timeout_ms\":300}}");
        s = rc_connect(d.socket);
        t = rc_session(d.socket); /* one that did say hello stays */
        ck_assert_int_eq(rc_recv(s, RC_TIMEOUT_MS, &m, NULL, 0, NULL), 0);
        close(s);
        ck_assert(rc_log_contains(&d, "said no hello"));
        rc_sleep_ms(400);
        cJSON_Delete(rc_list(t));
        close(t);
        gmem_test_daemon_stop(&d);
}
END_TEST

START_TEST(queued_bytes_and_fds_are_bounded) {
        /* A client that never reads: replies to open each hold a dup of the region's fd until they
         * are sent. Backpressure keeps what waits in the daemon to a reply or two, however many
         * requests the client pushes; and the fd bound still holds where events pile up (the deaf
         * watcher tests). */
        struct env e;
        struct timeval tv = { 1, 0 };
        char req[96];
        int s, k = 0, sent = 0;
        unsigned before;

        env_start(&e, "{\"limits\":{\"max_queued_fds\":8,\"max_queued_messages\":1048576,"
                      "\"max_queued_bytes\":1073741824}}");
        add_padding_regions(&e);
        settle(e.s);
        before = gmem_test_count_fds(e.d.pid);
        s = rc_session(e.d.socket);
        ck_assert_int_eq(setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)), 0);
        for (int i = 0; i < 4000 && k >= 0; i++) {
                /* opens first: each reply carries an fd */
                if (i < 1000)
                        snprintf(req, sizeof(req), "{\"op\":\"open\",\"id\":%d,\"name\":\"ref\"}", i);
                else
                        snprintf(req, sizeof(req), "{\"op\":\"list\",\"id\":%d}", i);
                k = rc_send_raw(s, req, strlen(req), NULL, 0);
                sent += k >= 0;
        }
        settle(e.s);
        ck_assert_uint_le(gmem_test_count_fds(e.d.pid), before + 2);
        ENV_CHECK(&e);
        close(s);
        settle(e.s);
        ck_assert_uint_le(gmem_test_count_fds(e.d.pid), before + 1);
        printf("queued_bytes_and_fds_are_bounded: %d requests in before the daemon stopped reading\n", sent);
        env_stop(&e);
}
END_TEST

START_TEST(too_many_regions) {
        struct env e;
        int fd;
        unsigned before;

        env_start(&e, "{\"limits\":{\"max_regions\":2}}");
        RC_EXPECT_OK(rc_call(e.s, NULL, 0, NULL, "{\"op\":\"create\",\"name\":\"two\",\"size\":4096}"));
        e.n_regions++;
        ENV_CHECK(&e);
        EXPECT_ERR(e.s, NULL, 0, "ENOSPC", "limit", "{\"op\":\"create\",\"name\":\"three\",\"size\":4096}");
        ENV_CHECK(&e);
        fd = memfd_of(4096, MFD_ALLOW_SEALING);
        settle(e.s);
        before = gmem_test_count_fds(e.d.pid);
        EXPECT_ERR(e.s, &fd, 1, "ENOSPC", "limit", "{\"op\":\"register\",\"name\":\"three\"}");
        settle(e.s);
        ck_assert_uint_eq(gmem_test_count_fds(e.d.pid), before);
        ENV_CHECK(&e);
        /* room again after a release */
        RC_EXPECT_OK(rc_call(e.s, NULL, 0, NULL, "{\"op\":\"release\",\"name\":\"two\"}"));
        RC_EXPECT_OK(rc_call(e.s, &fd, 1, NULL, "{\"op\":\"register\",\"name\":\"three\"}"));
        ENV_CHECK(&e);
        close(fd);
        env_stop(&e);
}
END_TEST

START_TEST(too_many_bytes_total) {
        struct env e;

        env_start(&e, "{\"limits\":{\"max_bytes_total\":1048576}}");
        EXPECT_ERR(e.s, NULL, 0, "ENOSPC", "limit", "{\"op\":\"create\",\"name\":\"big\",\"size\":1048576}");
        ENV_CHECK(&e);
        RC_EXPECT_OK(rc_call(e.s, NULL, 0, NULL, "{\"op\":\"create\",\"name\":\"rest\",\"size\":%d}", 1048576 - REF_SIZE));
        e.n_regions++;
        EXPECT_ERR(e.s, NULL, 0, "ENOSPC", "limit", "{\"op\":\"create\",\"name\":\"more\",\"size\":4096}");
        ENV_CHECK(&e);
        env_stop(&e);
}
END_TEST

START_TEST(too_many_bytes_for_one_uid) {
        struct env e;
        int s, fd;
        cJSON *r;

        if (geteuid() != 0)
                SKIP_TEST("needs root to connect as another uid");
        env_start(&e, "{\"limits\":{\"max_bytes_per_uid\":1048576}}");
        s = rc_session_as(e.d.socket, 65534);
        r = RC_EXPECT_OK_KEEP(rc_call(s, NULL, 0, NULL, "{\"op\":\"create\",\"name\":\"u1\",\"size\":786432}"));
        ck_assert_int_eq((int) rc_num(cJSON_GetObjectItemCaseSensitive(r, "region"), "owner_uid"), 65534);
        cJSON_Delete(r);
        e.n_regions++;
        EXPECT_ERR(s, NULL, 0, "EDQUOT", "65534", "{\"op\":\"create\",\"name\":\"u2\",\"size\":524288}");
        ENV_CHECK(&e);
        EXPECT_ERR(s, NULL, 0, "EDQUOT", "limit", "{\"op\":\"create\",\"name\":\"u2\",\"size\":2097152}");
        ENV_CHECK(&e);
        fd = memfd_of(524288, MFD_ALLOW_SEALING);
        EXPECT_ERR(s, &fd, 1, "EDQUOT", "limit", "{\"op\":\"register\",\"name\":\"u2\"}");
        ENV_CHECK(&e);
        /* exactly up to the limit is fine */
        RC_EXPECT_OK(rc_call(s, NULL, 0, NULL, "{\"op\":\"create\",\"name\":\"u2\",\"size\":262144}"));
        e.n_regions++;
        EXPECT_ERR(s, NULL, 0, "EDQUOT", "limit", "{\"op\":\"create\",\"name\":\"u3\",\"size\":4096}");
        ENV_CHECK(&e);
        /* releasing gives the bytes back */
        RC_EXPECT_OK(rc_call(s, NULL, 0, NULL, "{\"op\":\"release\",\"name\":\"u1\"}"));
        e.n_regions--;
        RC_EXPECT_OK(rc_call(s, &fd, 1, NULL, "{\"op\":\"register\",\"name\":\"u3\"}"));
        e.n_regions++;
        ENV_CHECK(&e);
        close(fd);
        close(s);
        env_stop(&e);
}
END_TEST

START_TEST(quota_not_bypassed_by_growing_a_registered_memfd) {
        /* max_bytes_per_uid counts a registered memfd at its size when registered. A memfd made
         * without MFD_ALLOW_SEALING cannot be size-sealed by the daemon: its creator can grow it
         * afterwards, fill it, and leave -- and the daemon holds all of it, past the uid's limit.
         * Either such an fd is refused for a uid under a byte limit, or it must not grow. */
        struct env e;
        int s, fd;
        cJSON *r;

        if (geteuid() != 0)
                SKIP_TEST("needs root to connect as another uid");
        env_start(&e, "{\"limits\":{\"max_bytes_per_uid\":1048576}}");
        s = rc_session_as(e.d.socket, 65534);
        fd = memfd_of(4096, 0); /* no MFD_ALLOW_SEALING */
        r = rc_call(s, &fd, 1, NULL, "{\"op\":\"register\",\"name\":\"growing\"}");
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "ok"))) {
                int k = ftruncate(fd, 64 << 20);
                ck_assert_msg(k < 0, "a registered memfd grew from 4 KiB to 64 MiB under a uid limited to 1 MiB: "
                              "the daemon now holds it all");
        } else
                ck_assert_str_ne(rc_error_code(r), "EDQUOT"); /* refused for what it is, not for its size */
        cJSON_Delete(r);
        close(fd);
        close(s);
        env_stop(&e);
}
END_TEST

/* A connection held to the client limits: as uid 65534 when we are root (root has slots of its
 * own), else as ourselves. */
static int limited_session(const char *path, uid_t uid);

START_TEST(too_many_jobs) {
        /* max_jobs 1: while a long populate runs, any other job of an unprivileged uid is EBUSY
         * (root has a reserve of its own); afterwards there is room */
        const uint64_t big = 256u << 20;
        struct env e;
        int src, src2, u, u2;
        cJSON *r;
        const char *code;

        env_start(&e, "{\"limits\":{\"max_jobs\":1,\"max_jobs_per_uid\":1}}");
        RC_EXPECT_OK(rc_call(e.s, NULL, 0, NULL, "{\"op\":\"create\",\"name\":\"big\",\"size\":%" PRIu64 "}", big));
        e.n_regions++;
        RC_EXPECT_OK(rc_call(e.s, NULL, 0, NULL, "{\"op\":\"grant\",\"name\":\"big\",\"uid\":65534}"));
        RC_EXPECT_OK(rc_call(e.s, NULL, 0, NULL, "{\"op\":\"grant\",\"name\":\"ref\",\"uid\":65534}"));
        RC_EXPECT_OK(rc_call(e.s, NULL, 0, NULL, "{\"op\":\"grant\",\"name\":\"big\",\"uid\":65533}"));
        u = limited_session(e.d.socket, 65534);
        src = gmem_test_temp_file();
        ck_assert_int_eq(ftruncate(src, (off_t) big), 0); /* sparse: quick to make, not to copy */
        src2 = gmem_test_random_file(4096, 5, NULL);
        /* both requests in one burst: the second is read while the first is running or queued */
        RC_SEND(u, "{\"op\":\"populate\",\"id\":501,\"name\":\"big\"}", &src, 1);
        RC_SEND(u, "{\"op\":\"populate\",\"id\":502,\"name\":\"ref\",\"length\":4096}", &src2, 1);
        RC_SEND(u, "{\"op\":\"prefault\",\"id\":503,\"name\":\"ref\"}", NULL, 0);
        RC_EXPECT_ERROR(rc_reply(u, 502, NULL), "EBUSY", "jobs");
        RC_EXPECT_ERROR(rc_reply(u, 503, NULL), "EBUSY", "jobs");
        /* another uid is refused too (max_jobs is all of theirs together) */
        if (geteuid() == 0) {
                u2 = limited_session(e.d.socket, 65533);
                EXPECT_ERR(u2, NULL, 0, "EBUSY", "max_jobs", "{\"op\":\"prefault\",\"name\":\"big\"}");
                close(u2);
                /* and root is not: whoever operates gmemd keeps a reserve */
                RC_EXPECT_OK(rc_call(e.s, NULL, 0, NULL, "{\"op\":\"prefault\",\"name\":\"ref\"}"));
        }
        r = rc_reply(u, 501, NULL);
        code = rc_error_code(r);
        ck_assert_msg(code == NULL, "the long populate failed: %s", cJSON_PrintUnformatted(r));
        ck_assert(rc_num(r, "bytes") == (double) big);
        cJSON_Delete(r);
        ENV_CHECK(&e); /* its dump is a job: there is room again */
        close(u);
        close(src);
        close(src2);
        env_stop(&e);
}
END_TEST

START_TEST(one_uid_cannot_take_every_region_or_job_slot) {
        /* per-uid shares of max_regions and max_jobs: uid 65534 at its share is refused, another uid
         * (and root) still gets regions and jobs */
        const uint64_t big = 256u << 20;
        struct gmem_test_daemon d;
        int a, b, src, src2;
        cJSON *r;

        if (geteuid() != 0)
                SKIP_TEST("two uids need root to connect as");
        rc_daemon_start(&d, "{\"limits\":{\"max_regions\":16,\"max_regions_per_uid\":2,\"max_jobs\":8,"
                            "\"max_jobs_per_uid\":1}}");
        a = limited_session(d.socket, 65534);
        b = limited_session(d.socket, 65533);
        RC_EXPECT_OK(rc_call(a, NULL, 0, NULL, "{\"op\":\"create\",\"name\":\"a-big\",\"size\":%" PRIu64 "}", big));
        RC_EXPECT_OK(rc_call(a, NULL, 0, NULL, "{\"op\":\"create\",\"name\":\"a-small\",\"size\":4096}"));
        EXPECT_ERR(a, NULL, 0, "EDQUOT", "max_regions_per_uid", "{\"op\":\"create\",\"name\":\"a-3\",\"size\":4096}");
        RC_EXPECT_OK(rc_call(b, NULL, 0, NULL, "{\"op\":\"create\",\"name\":\"b-small\",\"size\":4096}"));

        src = gmem_test_temp_file();
        ck_assert_int_eq(ftruncate(src, (off_t) big), 0); /* sparse: quick to make, not to copy */
        src2 = gmem_test_random_file(4096, 5, NULL);
        /* in one burst: the second job of uid 65534 comes while its first runs */
        RC_SEND(a, "{\"op\":\"populate\",\"id\":601,\"name\":\"a-big\"}", &src, 1);
        RC_SEND(a, "{\"op\":\"prefault\",\"id\":602,\"name\":\"a-small\"}", NULL, 0);
        RC_SEND(b, "{\"op\":\"populate\",\"id\":603,\"name\":\"b-small\"}", &src2, 1);
        RC_EXPECT_ERROR(rc_reply(a, 602, NULL), "EBUSY", "max_jobs_per_uid");
        r = rc_reply(b, 603, NULL);
        ck_assert_msg(rc_error_code(r) == NULL, "uid 65533's job was refused: %s", cJSON_PrintUnformatted(r));
        cJSON_Delete(r);
        r = rc_reply(a, 601, NULL);
        ck_assert_msg(rc_error_code(r) == NULL, "the long populate failed: %s", cJSON_PrintUnformatted(r));
        cJSON_Delete(r);
        close(src);
        close(src2);
        close(a);
        close(b);
        gmem_test_daemon_stop(&d);
}
END_TEST

/* ---- clients that go away --------------------------------------------------------------------------- */

START_TEST(connect_and_close_at_once) {
        struct env e;
        unsigned before;

        env_start(&e, NULL);
        settle(e.s);
        before = gmem_test_count_fds(e.d.pid);
        for (int i = 0; i < 100; i++) {
                int s = rc_connect(e.d.socket);
                if (i % 2)
                        shutdown(s, SHUT_RDWR);
                close(s);
        }
        /* and some that vanish with a request in flight */
        for (int i = 0; i < 50; i++) {
                int s = rc_connect(e.d.socket);
                RC_SEND(s, "{\"op\":\"hello\",\"id\":1,\"version\":1}", NULL, 0);
                RC_SEND(s, "{\"op\":\"list\",\"id\":2}", NULL, 0);
                close(s);
        }
        ENV_CHECK(&e);
        {
                uint64_t deadline = rc_now_ms() + 5000;
                while (gmem_test_count_fds(e.d.pid) != before && rc_now_ms() < deadline)
                        rc_sleep_ms(20);
        }
        ck_assert_uint_eq(gmem_test_count_fds(e.d.pid), before);
        env_stop(&e);
}
END_TEST

START_TEST(client_vanishes_mid_populate) {
        const uint64_t big = 256u << 20;
        struct env e;
        int src, p[2], status;
        pid_t pid;
        char ch = 0;
        cJSON *r;
        const cJSON *reg;

        env_start(&e, NULL);
        RC_EXPECT_OK(rc_call(e.s, NULL, 0, NULL, "{\"op\":\"create\",\"name\":\"big\",\"size\":%" PRIu64 "}", big));
        e.n_regions++;
        src = gmem_test_temp_file();
        ck_assert_int_eq(ftruncate(src, (off_t) big), 0);
        ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);

        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                /* a client process: start the populate, say so at the first progress event, then wait to die */
                (void) prctl(PR_SET_PDEATHSIG, SIGKILL);
                int s = rc_try_connect(e.d.socket);
                char buf[4096];
                const char *hello = "{\"op\":\"hello\",\"id\":1,\"version\":1}";
                const char *pop = "{\"op\":\"populate\",\"id\":2,\"name\":\"big\"}";
                if (s < 0 || send(s, hello, strlen(hello), 0) < 0 || recv(s, buf, sizeof(buf), 0) <= 0)
                        _exit(1);
                if (rc_send_raw(s, pop, strlen(pop), &src, 1) < 0)
                        _exit(2);
                for (;;) {
                        ssize_t n = recv(s, buf, sizeof(buf) - 1, 0);
                        if (n <= 0)
                                _exit(3);
                        buf[n] = 0;
                        if (strstr(buf, "\"event\":\"progress\"")) {
                                (void) !write(p[1], strstr(buf, "\"done\"") ? "p" : "?", 1);
                                break;
                        }
                        if (strstr(buf, "\"ok\""))
                                _exit(4);
                }
                pause();
                _exit(0);
        }
        close(p[1]);
        ck_assert_int_eq(read(p[0], &ch, 1), 1);
        ck_assert_int_eq(kill(pid, SIGKILL), 0);
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert(WIFSIGNALED(status));
        close(p[0]);

        /* the daemon noticed, cancelled the job, and serves everyone */
        ENV_CHECK(&e);
        {
                uint64_t deadline = rc_now_ms() + 15000;
                for (;;) {
                        r = RC_EXPECT_OK_KEEP(rc_call(e.s, NULL, 0, NULL, "{\"op\":\"info\",\"name\":\"big\"}"));
                        reg = cJSON_GetObjectItemCaseSensitive(r, "region");
                        if (cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(reg, "jobs")) == 0)
                                break;
                        cJSON_Delete(r);
                        ck_assert_msg(rc_now_ms() < deadline, "the dead client's job is still running after 15 s");
                        rc_sleep_ms(50);
                }
        }
        /* the region stays (policy keep), with its size, and is not stuck "populating" */
        ck_assert(rc_num(reg, "size") == (double) big);
        ck_assert_str_ne(rc_str(reg, "state"), "populating");
        cJSON_Delete(r);
        /* it was killed mid-job (the first progress event comes with the first chunk) */
        ck_assert_msg(rc_log_contains(&e.d, "populate 'big': cancelled after"), "the populate was not cancelled");
        {
                char needle[64];
                snprintf(needle, sizeof(needle), "(pid %d) disconnected", (int) pid);
                ck_assert_msg(rc_log_contains(&e.d, needle), "the log does not say '%s'", needle);
        }
        /* and it is usable: populate + dump a page */
        {
                void *data = NULL;
                int small = gmem_test_random_file(8192, 6, &data), out = gmem_test_temp_file();
                uint8_t *back;
                RC_EXPECT_OK(rc_call(e.s, &small, 1, NULL, "{\"op\":\"populate\",\"name\":\"big\",\"offset\":1048576}"));
                RC_EXPECT_OK(rc_call(e.s, &out, 1, NULL,
                                     "{\"op\":\"dump\",\"name\":\"big\",\"offset\":1048576,\"length\":8192}"));
                back = gmem_test_read_fd(out, 0, 8192);
                ck_assert_mem_eq(back, data, 8192);
                free(back);
                free(data);
                close(small);
                close(out);
        }
        ENV_CHECK(&e);
        close(src);
        env_stop(&e);
}
END_TEST

/* A watcher that shut down its reading side: the daemon is not woken by that, but its next send to
 * the watcher fails (EPIPE) and it drops the watcher right there, in the middle of whatever it was
 * doing -- here, releasing regions. Dropping the watcher releases the watcher's own
 * connection-policy regions, under the loop that walks the region list. */
START_TEST(watcher_goes_deaf_while_regions_are_released) {
        struct env e;
        int a, w;

        env_start(&e, NULL);
        a = rc_session(e.d.socket);
        w = rc_session(e.d.socket);
        /* interleaved, so the walk over a's regions always has one of w's next */
        for (int i = 0; i < 4; i++) {
                RC_EXPECT_OK(rc_call(a, NULL, 0, NULL, "{\"op\":\"create\",\"name\":\"a%d\",\"size\":4096,\"policy\":\"connection\"}", i));
                RC_EXPECT_OK(rc_call(w, NULL, 0, NULL, "{\"op\":\"create\",\"name\":\"w%d\",\"size\":4096,\"policy\":\"connection\"}", i));
        }
        RC_EXPECT_OK(rc_call(w, NULL, 0, NULL, "{\"op\":\"watch\"}"));
        ck_assert_int_eq(shutdown(w, SHUT_RD), 0);
        close(a); /* releasing a's regions sends region-removed to w, which fails */
        rc_sleep_ms(200);
        RC_ASSERT_DAEMON_RUNNING(&e.d);
        /* both connections are gone, and with them all their connection-policy regions */
        {
                uint64_t deadline = rc_now_ms() + 5000;
                while (rc_region_count(&e.d) != 1 && rc_now_ms() < deadline)
                        rc_sleep_ms(20);
        }
        ENV_CHECK(&e);
        close(w);
        env_stop(&e);
}
END_TEST

/* The simplest form: one client, watching, deaf, creates a connection-policy region. The
 * region-added event to itself fails, which drops the client, which releases the region it is
 * creating -- before the create is answered with that region's description. */
START_TEST(deaf_watcher_creates_a_connection_region) {
        struct env e;
        int c;

        env_start(&e, NULL);
        c = rc_session(e.d.socket);
        RC_EXPECT_OK(rc_call(c, NULL, 0, NULL, "{\"op\":\"watch\"}"));
        ck_assert_int_eq(shutdown(c, SHUT_RD), 0);
        RC_SEND(c, "{\"op\":\"create\",\"id\":2,\"name\":\"x\",\"size\":4096,\"policy\":\"connection\"}", NULL, 0);
        rc_sleep_ms(200);
        RC_ASSERT_DAEMON_RUNNING(&e.d);
        ENV_CHECK(&e); /* and "x" went with its connection */
        close(c);
        env_stop(&e);
}
END_TEST

/* Two deaf watchers: sending to the first drops it, which releases its connection-policy region,
 * whose region-removed event drops the second -- while the outer broadcast still walks the
 * connection list towards it. (Without AddressSanitizer this use-after-free may go unnoticed.) */
START_TEST(two_deaf_watchers) {
        struct env e;
        int a, w1, w2;

        env_start(&e, NULL);
        a = rc_session(e.d.socket);
        w1 = rc_session(e.d.socket);
        w2 = rc_session(e.d.socket);
        RC_EXPECT_OK(rc_call(a, NULL, 0, NULL, "{\"op\":\"create\",\"name\":\"a\",\"size\":4096}"));
        RC_EXPECT_OK(rc_call(w2, NULL, 0, NULL, "{\"op\":\"create\",\"name\":\"w2\",\"size\":4096,\"policy\":\"connection\"}"));
        RC_EXPECT_OK(rc_call(w1, NULL, 0, NULL, "{\"op\":\"watch\"}"));
        RC_EXPECT_OK(rc_call(w2, NULL, 0, NULL, "{\"op\":\"watch\"}"));
        ck_assert_int_eq(shutdown(w1, SHUT_RD), 0);
        ck_assert_int_eq(shutdown(w2, SHUT_RD), 0);
        RC_EXPECT_OK(rc_call(a, NULL, 0, NULL, "{\"op\":\"release\",\"name\":\"a\"}"));
        RC_ASSERT_DAEMON_RUNNING(&e.d);
        ENV_CHECK(&e);
        close(a);
        close(w1);
        close(w2);
        env_stop(&e);
}
END_TEST

int main(void) {
        Suite *s = suite_create("daemon-hostile");
        TCase *framing = tcase_create("framing"), *session = tcase_create("session"), *ops = tcase_create("ops"),
              *limits = tcase_create("limits"), *gone = tcase_create("gone");

        tcase_add_test(framing, not_json_at_all);
        tcase_add_test(framing, json_that_is_not_an_object);
        tcase_add_test(framing, missing_or_mistyped_op);
        tcase_add_test(framing, truncated_message);
        tcase_add_test(framing, deeply_nested_json);
        tcase_add_test(framing, trailing_garbage_after_the_object);
        tcase_add_test(framing, name_with_an_embedded_nul);
        tcase_add_test(framing, raw_control_bytes_in_strings);
        tcase_add_test(framing, ids_out_of_range);
        tcase_add_test(framing, error_messages_are_one_line);
        tcase_add_test(framing, empty_datagram);
        tcase_add_test(framing, message_larger_than_the_limit);
        tcase_add_test(framing, more_fds_than_the_limit);
        tcase_add_test(framing, fds_with_requests_that_take_none);
        tcase_add_test(session, requests_before_hello);
        tcase_add_test(session, hello_versions);
        tcase_add_test(ops, create_bad_names);
        tcase_add_test(ops, create_bad_sizes);
        tcase_add_test(ops, create_bad_backends_and_options);
        tcase_add_test(ops, register_wrong_number_of_fds);
        tcase_add_test(ops, register_fds_that_are_not_memory);
        tcase_add_test(ops, register_bad_memfds);
        tcase_add_test(ops, register_then_shrink_underneath);
        tcase_add_test(ops, populate_bad_requests);
        tcase_add_test(ops, fd_name_bad_requests);
        tcase_add_test(ops, dump_bad_requests);
        tcase_add_test(ops, punch_bad_requests);
        tcase_add_test(ops, grant_and_cancel_bad_requests);
        tcase_add_test(limits, client_that_never_reads);
        tcase_add_test(limits, too_many_clients);
        tcase_add_test(limits, accept_out_of_fds_does_not_spin);
        tcase_add_test(limits, one_uid_cannot_take_every_client_slot);
        tcase_add_test(limits, client_that_never_says_hello);
        tcase_add_test(limits, queued_bytes_and_fds_are_bounded);
        tcase_add_test(limits, too_many_regions);
        tcase_add_test(limits, too_many_bytes_total);
        tcase_add_test(limits, too_many_bytes_for_one_uid);
        tcase_add_test(limits, too_many_jobs);
        tcase_add_test(limits, one_uid_cannot_take_every_region_or_job_slot);
        tcase_add_test(limits, quota_not_bypassed_by_growing_a_registered_memfd);
        tcase_add_test(gone, connect_and_close_at_once);
        tcase_add_test(gone, client_vanishes_mid_populate);
        tcase_add_test(gone, watcher_goes_deaf_while_regions_are_released);
        tcase_add_test(gone, deaf_watcher_creates_a_connection_region);
        tcase_add_test(gone, two_deaf_watchers);
        tcase_set_timeout(framing, 60);
        tcase_set_timeout(session, 60);
        tcase_set_timeout(ops, 60);
        tcase_set_timeout(limits, 60);
        tcase_set_timeout(gone, 60);
        suite_add_tcase(s, framing);
        suite_add_tcase(s, session);
        suite_add_tcase(s, ops);
        suite_add_tcase(s, limits);
        suite_add_tcase(s, gone);
        return gmem_test_main(s);
}
