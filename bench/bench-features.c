/* bench-features.c — time of ferry's image features per image.
 *   bench-features [-r REPS] [-s ANALYSIS_SIZE]... IMAGE...
 * For every image (read into memory first, so disk is not timed) and every analysis
 * size given (default 512 and 0 = full resolution), runs feat_image_analyze REPS times
 * (default 7) and prints one line per (image, size):
 *   ferry <size> <file> <width> <height> <median ms> <p95 ms of the reps>
 * bench/bench-features.sh puts these beside OpenCV's times for the same files. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "feat/image.h"
#include "util/clock.h"

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
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
        if (feat_read_file(argv[i], 0, &p, &n, err, sizeof err) != 0) {
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
                double t0 = clock_now_ms();
                ok = feat_image_analyze(p, n, &o, &f, err, sizeof err) == 0;
                t[r] = clock_now_ms() - t0;
            }
            if (!ok) {
                fprintf(stderr, "bench-features: %s: %s\n", argv[i], err);
                status = 1;
                break;
            }
            qsort(t, (size_t)reps, sizeof *t, cmp_double);
            printf("ferry %d %s %d %d %.4f %.4f\n", sizes[s], base, f.width, f.height,
                   t[reps / 2], t[(int)(0.95 * (reps - 1) + 0.5)]);
        }
        free(p);
    }
    free(t);
    return status;
}
