#include "test.h"

#include <stdarg.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_TESTS 1024

static struct { const char *name; test_fn fn; } g_tests[MAX_TESTS];
static int g_ntests, g_failed_now;
static char g_tmpdir[256];

void test_register(const char *name, test_fn fn)
{
    if (g_ntests < MAX_TESTS) {
        g_tests[g_ntests].name = name;
        g_tests[g_ntests].fn = fn;
        g_ntests++;
    }
}

void test_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "  FAIL %s:%d: ", file, line);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    g_failed_now = 1;
}

const char *test_shared_dir(void)
{
    const char *s = getenv("FERRY_SHARED");
    return s && *s ? s : "../shared";
}

const char *test_tmp_path(const char *name)
{
    static char path[512];
    if (!g_tmpdir[0]) {
        snprintf(g_tmpdir, sizeof g_tmpdir, "/tmp/ferry-test-XXXXXX");
        if (!mkdtemp(g_tmpdir)) { perror("mkdtemp"); exit(2); }
    }
    snprintf(path, sizeof path, "%s/%s", g_tmpdir, name);
    return path;
}

const char *test_ferry_bin(void)
{
    const char *bin = getenv("FERRY_BIN");
    return bin && *bin ? bin : "build/ferry";
}

int test_ferry_cli(const char *args, char *msg, size_t msglen)
{
    char cmd[4096];
    /* a command that should fail but serves instead must not hang the suite: killed
     * after 120 s (exit 124, reported as a wrong status) */
    if ((size_t)snprintf(cmd, sizeof cmd, "timeout -k 5 120 %s %s 2>&1 >/dev/null",
                         test_ferry_bin(), args) >= sizeof cmd)
        return -1;
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    msg[0] = '\0';
    if (!fgets(msg, (int)msglen, p)) msg[0] = '\0';
    char rest[256];
    while (fgets(rest, sizeof rest, p)) {}
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int test_cli_check(const char *file, int line, const char *args, int status, ...)
{
    char msg[512];
    int rc = test_ferry_cli(args, msg, sizeof msg);
    msg[strcspn(msg, "\n")] = '\0';
    if (rc != status) {
        test_fail(file, line, "ferry %s: exit %d, want %d (stderr: \"%s\")", args, rc, status,
                  msg);
        return -1;
    }
    va_list ap;
    va_start(ap, status);
    const char *needle;
    while ((needle = va_arg(ap, const char *)) != NULL) {
        if (!strstr(msg, needle)) {
            test_fail(file, line, "ferry %s: stderr \"%s\" lacks \"%s\"", args, msg, needle);
            va_end(ap);
            return -1;
        }
    }
    va_end(ap);
    return 0;
}

int test_write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    size_t len = strlen(text);
    int ok = fwrite(text, 1, len, f) == len;
    if (fclose(f) != 0) ok = 0;
    return ok ? 0 : -1;
}

static void rm_tmpdir(void)
{
    if (g_tmpdir[0]) {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmpdir);
        if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_tmpdir);
    }
}

int main(int argc, char **argv)
{
    int passed = 0, failed = 0;
    atexit(rm_tmpdir);
    for (int i = 0; i < g_ntests; i++) {
        if (argc > 1 && !strstr(g_tests[i].name, argv[1])) continue;
        g_failed_now = 0;
        g_tests[i].fn();
        if (g_failed_now) {
            failed++;
            fprintf(stderr, "not ok %s\n", g_tests[i].name);
        } else {
            passed++;
            if (getenv("TEST_VERBOSE")) fprintf(stderr, "ok %s\n", g_tests[i].name);
        }
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
