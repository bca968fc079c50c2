/* file — whole-file reading (file.h). */
#include "util/file.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int util_read_file(const char *path, size_t max_bytes, uint8_t **out, size_t *len, char *err,
                   size_t errlen)
{
    int is_stdin = !strcmp(path, "-");
    FILE *f = is_stdin ? stdin : fopen(path, "rb");
    uint8_t *b = NULL;
    size_t n = 0, cap = 0;
    int rc = -1;
    struct stat st;
    *out = NULL;
    *len = 0;
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    /* fopen succeeds on a directory and the first read fails with EISDIR: say so */
    if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "%s: is a directory", path);
        goto cleanup;
    }
    for (;;) {
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 65536;
            uint8_t *nb = realloc(b, ncap + 1);
            if (!nb) {
                snprintf(err, errlen, "%s: out of memory", path);
                goto cleanup;
            }
            b = nb;
            cap = ncap;
        }
        errno = 0;
        size_t got = fread(b + n, 1, cap - n, f);
        n += got;
        if (max_bytes && n > max_bytes) {
            snprintf(err, errlen, "%s: larger than the limit of %zu bytes", path, max_bytes);
            goto cleanup;
        }
        if (got == 0) break;
    }
    if (ferror(f)) {
        snprintf(err, errlen, "%s: read error: %s", path, errno ? strerror(errno) : "unknown");
        goto cleanup;
    }
    b[n] = 0;
    *out = b;
    *len = n;
    b = NULL;
    rc = 0;
cleanup:
    free(b);
    if (!is_stdin) fclose(f);
    return rc;
}
