/* test.h — ferry's small in-tree test runner.
 *   TEST(name) { CHECK(x); CHECK_EQ_INT(a, b); CHECK_NEAR(a, b, tol); CHECK_STR(a, b); }
 * Tests register themselves (constructor attribute); testmain.c runs them in file order,
 * or those whose name contains argv[1]. A failed check prints file:line and both values
 * and ends the test. The binary's last line is "N passed, N failed". */
#ifndef FERRY_TEST_H
#define FERRY_TEST_H
#include <math.h>
#include <stdio.h>
#include <string.h>

typedef void (*test_fn)(void);
void test_register(const char *name, test_fn fn);
void test_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Directory of the shared corpus (../shared relative to the repo, or $FERRY_SHARED). */
const char *test_shared_dir(void);
/* The ferry binary the CLI tests run: $FERRY_BIN, else build/ferry. */
const char *test_ferry_bin(void);
/* Runs `test_ferry_bin() ARGS` with stdout discarded and a 120 s limit (then exit 124);
 * the first line of its stderr goes to msg. Returns its exit status, or -1 if it could
 * not run. */
int test_ferry_cli(const char *args, char *msg, size_t msglen);
/* Runs test_ferry_cli(args) and checks that it exits with `status` and that the first
 * line of its stderr contains every string of the NULL-terminated list after `status`.
 * 0, or -1 after test_fail(file, line) naming the command, what it printed and what was
 * missing. Called through CHECK_CLI. */
int test_cli_check(const char *file, int line, const char *args, int status, ...);
/* Writes text to path (created or truncated). 0, or -1 when it could not be opened or
 * fully written. */
int test_write_file(const char *path, const char *text);
/* Path of a file in a fresh per-test temp directory (removed at exit). */
const char *test_tmp_path(const char *name);

#define TEST(name)                                                                     \
    static void name(void);                                                            \
    __attribute__((constructor)) static void test_reg_##name(void)                    \
    {                                                                                  \
        test_register(#name, name);                                                    \
    }                                                                                  \
    static void name(void)

#define CHECK(c)                                                                       \
    do {                                                                               \
        if (!(c)) { test_fail(__FILE__, __LINE__, "CHECK(%s)", #c); return; }          \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                             \
    do {                                                                               \
        long long va_ = (long long)(a), vb_ = (long long)(b);                          \
        if (va_ != vb_) {                                                              \
            test_fail(__FILE__, __LINE__, "%s == %s: %lld != %lld", #a, #b, va_, vb_); \
            return;                                                                    \
        }                                                                              \
    } while (0)

#define CHECK_NEAR(a, b, tol)                                                          \
    do {                                                                               \
        double va_ = (double)(a), vb_ = (double)(b), vt_ = (double)(tol);              \
        if (!(fabs(va_ - vb_) <= vt_)) {                                               \
            test_fail(__FILE__, __LINE__, "%s ~ %s: %.9g vs %.9g (tol %g)", #a, #b,     \
                      va_, vb_, vt_);                                                  \
            return;                                                                    \
        }                                                                              \
    } while (0)

#define CHECK_STR(a, b)                                                                \
    do {                                                                               \
        const char *sa_ = (a), *sb_ = (b);                                             \
        if (!sa_ || !sb_ || strcmp(sa_, sb_) != 0) {                                   \
            test_fail(__FILE__, __LINE__, "%s == %s: \"%s\" != \"%s\"", #a, #b,         \
                      sa_ ? sa_ : "(null)", sb_ ? sb_ : "(null)");                     \
            return;                                                                    \
        }                                                                              \
    } while (0)

/* CHECK_CLI(args, status, needle...): `ferry ARGS` exits with status and the first line
 * of its stderr contains each needle (test_cli_check). */
#define CHECK_CLI(args, status, ...)                                                   \
    do {                                                                               \
        if (test_cli_check(__FILE__, __LINE__, (args), (status), __VA_ARGS__,          \
                           (const char *)NULL) != 0)                                   \
            return;                                                                    \
    } while (0)

#endif
