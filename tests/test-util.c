#include "test.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/file.h"
#include "util/grow.h"
#include "util/heap.h"
#include "util/log.h"
#include "util/num.h"
#include "util/rng.h"

#include <errno.h>
#include <float.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

TEST(buf_appends_and_formats)
{
    struct buf b;
    buf_init(&b);
    CHECK(buf_puts(&b, "abc") == 0);
    CHECK(buf_printf(&b, "-%d-%s", 42, "x") == 0);
    CHECK_STR(b.data, "abc-42-x");
    CHECK_EQ_INT(b.len, 8);
    for (int i = 0; i < 10000; i++) CHECK(buf_putc(&b, 'z') == 0);
    CHECK_EQ_INT(b.len, 10008);
    CHECK(b.data[b.len] == '\0');
    char *s = buf_steal(&b);
    CHECK(b.data == NULL && b.len == 0);
    CHECK_EQ_INT(strlen(s), 10008);
    free(s);
    buf_fini(&b);
}

TEST(buf_reserve_refuses_overflow)
{
    struct buf b;
    buf_init(&b);
    CHECK(buf_puts(&b, "x") == 0);
    CHECK(buf_reserve(&b, (size_t)-1) == -1);
    CHECK_STR(b.data, "x");
    buf_fini(&b);
}

TEST(log_levels_parse)
{
    CHECK_EQ_INT(log_parse_level("debug"), LOG_DEBUG);
    CHECK_EQ_INT(log_parse_level("off"), LOG_OFF);
    CHECK_EQ_INT(log_parse_level("DEBUG"), LOG_DEBUG); /* FERRY_LOG=DEBUG was ignored */
    CHECK_EQ_INT(log_parse_level("Warn"), LOG_WARN);
    CHECK_EQ_INT(log_parse_level("verbose"), -1);
    CHECK_EQ_INT(log_parse_level(NULL), -1);
}

TEST(rng_is_deterministic_and_seed_sensitive)
{
    struct rng a, b, c;
    rng_seed(&a, 7);
    rng_seed(&b, 7);
    rng_seed(&c, 8);
    int same_c = 0;
    for (int i = 0; i < 1000; i++) {
        uint64_t x = rng_u64(&a), y = rng_u64(&b), z = rng_u64(&c);
        CHECK(x == y);
        same_c += x == z;
    }
    CHECK(same_c == 0);
}

TEST(rng_moments)
{
    struct rng r;
    rng_seed(&r, 12345);
    const int n = 200000;
    double su = 0, sn = 0, sn2 = 0, se = 0, sl = 0;
    for (int i = 0; i < n; i++) {
        double u = rng_uniform(&r);
        CHECK(u >= 0.0 && u < 1.0);
        su += u;
        double x = rng_normal(&r, 3.0, 2.0);
        sn += x;
        sn2 += x * x;
        se += rng_exponential(&r, 4.0);
        sl += log(rng_lognormal(&r, 1.0, 0.5));
    }
    double mean = sn / n, var = sn2 / n - mean * mean;
    /* tolerances ~5 standard errors */
    CHECK_NEAR(su / n, 0.5, 5 * 0.2887 / sqrt(n));
    CHECK_NEAR(mean, 3.0, 5 * 2.0 / sqrt(n));
    CHECK_NEAR(var, 4.0, 0.05);
    CHECK_NEAR(se / n, 0.25, 5 * 0.25 / sqrt(n));
    CHECK_NEAR(sl / n, 1.0, 5 * 0.5 / sqrt(n));
}

TEST(rng_below_is_in_range_and_covers)
{
    struct rng r;
    rng_seed(&r, 1);
    int seen[7] = {0};
    for (int i = 0; i < 7000; i++) {
        uint64_t x = rng_below(&r, 7);
        CHECK(x < 7);
        seen[x]++;
    }
    for (int i = 0; i < 7; i++) CHECK(seen[i] > 850 && seen[i] < 1150);
}

TEST(heap_pops_sorted_with_fifo_ties)
{
    struct heap h;
    heap_init(&h);
    struct rng r;
    rng_seed(&r, 3);
    for (uint64_t i = 0; i < 5000; i++) CHECK(heap_push(&h, (double)rng_below(&r, 100), i) == 0);
    struct heap_item prev = {-1, 0, 0}, it;
    size_t n = 0;
    while (heap_pop(&h, &it) == 0) {
        CHECK(it.key >= prev.key);
        if (it.key == prev.key) CHECK(it.val > prev.val); /* inserted later => popped later */
        prev = it;
        n++;
    }
    CHECK_EQ_INT(n, 5000);
    CHECK(heap_pop(&h, &it) == -1);
    CHECK(heap_peek(&h) == NULL);
    heap_fini(&h);
}

/* util_read_file: the bytes plus a NUL, the limit, and messages that name the path and the
 * problem (a directory used to give "read error"). */
TEST(read_file_contents_limit_and_errors)
{
    char path[512], dir[512], err[600];
    snprintf(path, sizeof path, "%s", test_tmp_path("three.bin"));
    snprintf(dir, sizeof dir, "%s", test_tmp_path("a-dir"));
    FILE *f = fopen(path, "wb");
    CHECK(f);
    fwrite("a\0c", 1, 3, f);
    fclose(f);
    CHECK_EQ_INT(mkdir(dir, 0700), 0);
    uint8_t *p;
    size_t n;
    CHECK_EQ_INT(util_read_file(path, 3, &p, &n, err, sizeof err), 0);
    CHECK_EQ_INT(n, 3);
    CHECK(p[0] == 'a' && p[1] == 0 && p[2] == 'c' && p[3] == 0);
    free(p);
    CHECK_EQ_INT(util_read_file(path, 2, &p, &n, err, sizeof err), -1);
    CHECK(p == NULL);
    char want[700];
    snprintf(want, sizeof want, "%s: larger than the limit of 2 bytes", path);
    CHECK_STR(err, want);
    CHECK_EQ_INT(util_read_file(dir, 0, &p, &n, err, sizeof err), -1);
    snprintf(want, sizeof want, "%s: is a directory", dir);
    CHECK_STR(err, want);
    CHECK_EQ_INT(util_read_file("/nonexistent/x", 0, &p, &n, err, sizeof err), -1);
    CHECK_STR(err, "/nonexistent/x: No such file or directory");
}

/* util_grow: the same pointer while there is room, doubling from `first`, and NULL with
 * the array and its capacity untouched when the size would overflow. */
TEST(grow_doubles_and_refuses_overflow)
{
    int *v = NULL;
    size_t cap = 0;
    for (size_t n = 0; n < 100; n++) {
        size_t before = cap;
        int *p = util_grow(v, &cap, n, sizeof *p, 4);
        CHECK(p != NULL);
        if (n < before) CHECK(p == v && cap == before); /* room: nothing happens */
        else CHECK_EQ_INT(cap, before ? 2 * before : 4);
        v = p;
        v[n] = (int)n;
    }
    CHECK_EQ_INT(cap, 128); /* 4, 8, ..., 128 */
    for (int i = 0; i < 100; i++) CHECK_EQ_INT(v[i], i);
    size_t huge = SIZE_MAX / 2 + 1;
    CHECK(util_grow(v, &huge, huge, 1, 4) == NULL); /* doubling would overflow */
    CHECK(huge == SIZE_MAX / 2 + 1);
    size_t big = SIZE_MAX / 8;
    CHECK(util_grow(v, &big, big, 16, 4) == NULL); /* bytes would overflow */
    CHECK(big == SIZE_MAX / 8);
    CHECK_EQ_INT(v[99], 99); /* still valid */
    free(v);
}

/* util_list_dir: the files with the wanted endings (any case), sorted, as dir/name;
 * hidden names, other endings and folders named like files are left out. */
TEST(list_dir_filters_and_sorts)
{
    char dir[512], p[700];
    snprintf(dir, sizeof dir, "%s", test_tmp_path("listing"));
    CHECK_EQ_INT(mkdir(dir, 0700), 0);
    static const char *const files[] = {"b.png", "a.JPG", ".hidden.png", "c.txt", "a0.jpeg"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        FILE *f = fopen(p, "w");
        CHECK(f);
        fclose(f);
    }
    snprintf(p, sizeof p, "%s/d.png", dir);
    CHECK_EQ_INT(mkdir(p, 0700), 0);
    static const char *const exts[] = {".png", ".jpg", ".jpeg", NULL};
    char **v, err[600];
    int n = util_list_dir(dir, exts, &v, err, sizeof err);
    CHECK_EQ_INT(n, 3);
    static const char *const want[] = {"a.JPG", "a0.jpeg", "b.png"};
    int ok = 1;
    for (int i = 0; i < n; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, want[i]);
        ok &= !strcmp(v[i], p);
    }
    util_free_list(v, n);
    CHECK(ok);
    static const char *const none[] = {".webp", NULL};
    CHECK_EQ_INT(util_list_dir(dir, none, &v, err, sizeof err), 0);
    CHECK(v == NULL);
    CHECK_EQ_INT(util_list_dir("/nonexistent/dir", exts, &v, err, sizeof err), -1);
    CHECK_STR(err, "/nonexistent/dir: No such file or directory");
}

TEST(parse_long_accepts_whole_decimal_integers)
{
    long n = -1;
    CHECK_EQ_INT(util_parse_long("42", 0, 100, &n), 0);
    CHECK_EQ_INT(n, 42);
    CHECK_EQ_INT(util_parse_long("-7", -10, 10, &n), 0);
    CHECK_EQ_INT(n, -7);
    CHECK_EQ_INT(util_parse_long("+7", -10, 10, &n), 0);
    CHECK_EQ_INT(n, 7);
    CHECK_EQ_INT(util_parse_long("010", 0, 100, &n), 0); /* decimal, not octal */
    CHECK_EQ_INT(n, 10);
    CHECK_EQ_INT(util_parse_long("9223372036854775807", 0, LONG_MAX, &n), 0);
    CHECK(n == LONG_MAX);
    int i = 0;
    CHECK_EQ_INT(util_parse_int("65535", 0, 65535, &i), 0);
    CHECK_EQ_INT(i, 65535);
}

TEST(parse_long_refuses_junk_space_hex_and_range)
{
    long n = 99;
    /* not a number: -EINVAL, *out untouched */
    static const char *const bad[] = {"", "4x", "x4", " 42", "42 ", "42\n", "0x10", "-",
                                      "+-1", "1.5", "1e3", "- 1"};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        if (util_parse_long(bad[k], LONG_MIN, LONG_MAX, &n) != -EINVAL)
            test_fail(__FILE__, __LINE__, "util_parse_long(\"%s\") is not -EINVAL", bad[k]);
    }
    CHECK_EQ_INT(util_parse_long(NULL, 0, 1, &n), -EINVAL);
    CHECK_EQ_INT(n, 99);
    /* a number outside [lo, hi] or outside long: -ERANGE */
    CHECK_EQ_INT(util_parse_long("101", 0, 100, &n), -ERANGE);
    CHECK_EQ_INT(util_parse_long("-1", 0, 100, &n), -ERANGE);
    CHECK_EQ_INT(util_parse_long("99999999999999999999", LONG_MIN, LONG_MAX, &n), -ERANGE);
    int i = 5;
    CHECK_EQ_INT(util_parse_int("65536", 0, 65535, &i), -ERANGE);
    CHECK_EQ_INT(util_parse_int("4294967296", INT_MIN, INT_MAX, &i), -ERANGE); /* no wrap */
    CHECK_EQ_INT(i, 5);
    CHECK_EQ_INT(n, 99);
}

TEST(parse_ull_refuses_signs)
{
    unsigned long long u = 0;
    CHECK_EQ_INT(util_parse_ull("18446744073709551615", 0, ULLONG_MAX, &u), 0);
    CHECK(u == ULLONG_MAX);
    CHECK_EQ_INT(util_parse_ull("-1", 0, ULLONG_MAX, &u), -EINVAL); /* strtoull: ULLONG_MAX */
    CHECK_EQ_INT(util_parse_ull("+1", 0, ULLONG_MAX, &u), -EINVAL);
    CHECK_EQ_INT(util_parse_ull("18446744073709551616", 0, ULLONG_MAX, &u), -ERANGE);
    CHECK_EQ_INT(util_parse_ull("7", 8, 9, &u), -ERANGE);
    CHECK(u == ULLONG_MAX);
}

TEST(parse_double_accepts_finite_decimals_only)
{
    double d = -1;
    CHECK_EQ_INT(util_parse_double("0.25", 0, 1, &d), 0);
    CHECK_NEAR(d, 0.25, 0);
    CHECK_EQ_INT(util_parse_double("2.5e-3", 0, 1, &d), 0);
    CHECK_NEAR(d, 2.5e-3, 0);
    CHECK_EQ_INT(util_parse_double(".5", 0, 1, &d), 0);
    CHECK_NEAR(d, 0.5, 0);
    CHECK_EQ_INT(util_parse_double("-1", -1, 1, &d), 0); /* bounds are inclusive */
    CHECK_NEAR(d, -1, 0);
    CHECK_EQ_INT(util_parse_double("42", 0, DBL_MAX, &d), 0);
    CHECK_NEAR(d, 42, 0);
    d = 7;
    static const char *const bad[] = {"", "4x", " 1", "1 ", ".", "1e", "nan", "NAN", "-nan",
                                      "inf", "-inf", "Infinity", "0x1p3", "-0x10", "1,5"};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        if (util_parse_double(bad[k], -DBL_MAX, DBL_MAX, &d) != -EINVAL)
            test_fail(__FILE__, __LINE__, "util_parse_double(\"%s\") is not -EINVAL", bad[k]);
    }
    CHECK_EQ_INT(util_parse_double(NULL, 0, 1, &d), -EINVAL);
    CHECK_EQ_INT(util_parse_double("1e999", -DBL_MAX, DBL_MAX, &d), -ERANGE);
    CHECK_EQ_INT(util_parse_double("-1e999", -DBL_MAX, DBL_MAX, &d), -ERANGE);
    CHECK_EQ_INT(util_parse_double("1e-400", -DBL_MAX, DBL_MAX, &d), -ERANGE);
    CHECK_EQ_INT(util_parse_double("1.0001", 0, 1, &d), -ERANGE);
    CHECK_EQ_INT(util_parse_double("-0.5", 0, 1, &d), -ERANGE);
    CHECK_NEAR(d, 7, 0);
}

TEST(seterr_formats_truncates_and_takes_no_buffer)
{
    char err[8];
    util_seterr(err, sizeof err, "%s:%d", "file.ini", 12);
    CHECK_STR(err, "file.in"); /* truncated, NUL-terminated */
    util_seterr(err, sizeof err, "n=%d", 3);
    CHECK_STR(err, "n=3");
    util_seterr(NULL, 0, "%s", "no buffer: no crash");
    err[0] = 'x';
    util_seterr(err, 0, "%s", "y");
    CHECK(err[0] == 'x');
}
