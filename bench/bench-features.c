/* bench-features.c — time of ferry's image features per image.
 *   bench-features [-r REPS] [-s ANALYSIS_SIZE]... IMAGE...
 *   bench-features -g SIDE REPS IMAGE   the gateway case: IMAGE re-encoded by
 *       feat_image_downscale_jpeg to a JPEG (q90) whose longer side is SIDE, then
 *       REPS analyses at the default size; prints "gateway <w>x<h> <bytes> <p50> <p99>
 *       <max>" in ms of wall time (the latency a request sees)
 * For every image (read into memory first, so disk is not timed) and every analysis
 * size given (default 512 and 0 = full resolution), runs feat_image_analyze REPS times
 * (default 7), timing the thread's CPU time, and prints one line per (image, size):
 *   ferry <size> <file> <width> <height> <min ms> <median ms of the reps>
 * bench/bench-features.sh puts these beside OpenCV's times for the same files. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <time.h>

#include "feat/image.h"
#include "util/clock.h"
#include "util/file.h"

/* CPU time of this thread, ms: on a shared machine it leaves out the time the thread
 * waits for a core, which wall time would add at random. */
static double thread_cpu_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int gateway_case(int side, int reps, const char *path)
{
    uint8_t *p = NULL, *jpg = NULL;
    size_t n, m;
    char err[256];
    double *t = malloc(sizeof *t * (size_t)reps);
    int rc = 1;
    struct fy_image_features f;
    if (!t || util_read_file(path, 0, &p, &n, err, sizeof err) != 0 ||
        feat_image_downscale_jpeg(p, n, side, 90, &jpg, &m, err, sizeof err) != 0) {
        fprintf(stderr, "bench-features: %s: %s\n", path, t ? err : "out of memory");
        goto cleanup;
    }
    for (int r = 0; r < reps; r++) {
        double t0 = clock_now_ms();
        if (feat_image_analyze(jpg, m, NULL, &f, err, sizeof err) != 0) {
            fprintf(stderr, "bench-features: %s\n", err);
            goto cleanup;
        }
        t[r] = clock_now_ms() - t0;
    }
    qsort(t, (size_t)reps, sizeof *t, cmp_double);
    printf("gateway %dx%d %zu %.4f %.4f %.4f\n", f.width, f.height, m, t[reps / 2],
           t[(int)(0.99 * (reps - 1) + 0.5)], t[reps - 1]);
    rc = 0;
cleanup:
    free(t);
    free(p);
    free(jpg);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc == 5 && !strcmp(argv[1], "-g") && atoi(argv[2]) > 0 && atoi(argv[3]) > 0)
        return gateway_case(atoi(argv[2]), atoi(argv[3]), argv[4]);
    int reps = 7, sizes[8], nsizes = 0, first = 1;
    for (; first < argc; first++) {
        if (!strcmp(argv[first], "-r") && first + 1 < argc) reps = atoi(argv[++first]);
        else if (!strcmp(argv[first], "-s") && first + 1 < argc && nsizes < 8)
            sizes[nsizes++] = atoi(argv[++first]);
        else break;
    }
    if (!nsizes) sizes[nsizes++] = 512, sizes[nsizes++] = 0;
    if (reps < 1 || first >= argc) {
        fprintf(stderr, "usage: bench-features [-r REPS] [-s SIZE]... IMAGE...\n");
        return 2;
    }
    double *t = malloc(sizeof *t * (size_t)reps);
    if (!t) return 1;
    int status = 0;
    for (int i = first; i < argc; i++) {
        uint8_t *p;
        size_t n;
        char err[256];
        if (util_read_file(argv[i], 0, &p, &n, err, sizeof err) != 0) {
            fprintf(stderr, "bench-features: %s\n", err);
            status = 1;
            continue;
        }
        const char *base = strrchr(argv[i], '/');
        base = base ? base + 1 : argv[i];
        for (int s = 0; s < nsizes; s++) {
            struct feat_image_opts o;
            struct fy_image_features f;
            feat_image_opts_default(&o);
            o.analysis_size = sizes[s];
            int ok = 1;
            for (int r = 0; r < reps && ok; r++) {
                double t0 = thread_cpu_ms();
                ok = feat_image_analyze(p, n, &o, &f, err, sizeof err) == 0;
                t[r] = thread_cpu_ms() - t0;
            }
            if (!ok) {
                fprintf(stderr, "bench-features: %s: %s\n", argv[i], err);
                status = 1;
                break;
            }
            qsort(t, (size_t)reps, sizeof *t, cmp_double);
            printf("ferry %d %s %d %d %.4f %.4f\n", sizes[s], base, f.width, f.height, t[0],
                   t[reps / 2]);
        }
        free(p);
    }
    free(t);
    return status;
}
