/* file — whole-file reading (file.h). */
#include "util/file.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "util/grow.h"

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

static int ends_with_one_of(const char *name, const char *const *exts)
{
    size_t n = strlen(name);
    for (int i = 0; exts[i]; i++) {
        size_t k = strlen(exts[i]);
        if (n > k && !strcasecmp(name + n - k, exts[i])) return 1;
    }
    return 0;
}

static int cmp_path(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void util_free_list(char **v, int n)
{
    for (int i = 0; i < n; i++) free(v[i]);
    free(v);
}

int util_list_dir(const char *dir, const char *const *exts, char ***paths, char *err,
                  size_t errlen)
{
    char **v = NULL;
    size_t n = 0, cap = 0;
    *paths = NULL;
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(err, errlen, "%s: %s", dir, strerror(errno));
        return -1;
    }
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || !ends_with_one_of(e->d_name, exts)) continue;
        size_t len = strlen(dir) + strlen(e->d_name) + 2;
        char *p = malloc(len), **nv = util_grow(v, &cap, n, sizeof *nv, 16);
        if (!p || !nv) {
            free(p);
            if (nv) v = nv;
            snprintf(err, errlen, "%s: out of memory", dir);
            goto fail;
        }
        v = nv;
        snprintf(p, len, "%s/%s", dir, e->d_name);
        struct stat st;
        if (stat(p, &st) == 0 && S_ISDIR(st.st_mode)) { /* "photos.jpg/" is no image */
            free(p);
            continue;
        }
        v[n++] = p;
    }
    closedir(d);
    /* same folder prefix, so the order is the order of the names */
    if (n > 1) qsort(v, n, sizeof *v, cmp_path);
    *paths = v;
    return (int)n;
fail:
    closedir(d);
    util_free_list(v, (int)n);
    return -1;
}
