/* cmd_calibrate.c — `ferry calibrate`: measures a set of images at the analysis size
 * and prints a calibration file (calib.h) with the P5/P95 of the mean Sobel magnitude
 * and of the Laplacian variance (MoA-Off normalisation of C_edge and C_lap). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "feat/calib.h"
#include "feat/image.h"
#include "util/file.h"
#include "util/grow.h"
#include "util/num.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: ferry calibrate [options] IMAGE|DIR... > calib.ini\n"
            "\n"
            "Measures every image (JPEG, PNG, WebP; a DIR means its image files) at the\n"
            "analysis size and prints a calibration file for `ferry features --calib`:\n"
            "P5/P95 of the mean Sobel magnitude and of the Laplacian variance (linear\n"
            "interpolation between order statistics), the reference resolution of C_res\n"
            "and the c_img weights.\n"
            "\n"
            "  --analysis-size N   longer side in px the measures are taken at (default %d,\n"
            "                      0 = full resolution); use the size features will use\n"
            "  --ref WxH           reference resolution W0xH0 of C_res (default %dx%d)\n"
            "  --weights R,E,N,L   c_img weights of C_res C_edge C_ent C_lap (>= 0, sum 1;\n"
            "                      default %g,%g,%g,%g)\n"
            "  -h, --help          this text\n"
            "\n"
            "Exit status: 0, 1 when an image could not be read (it is reported and left\n"
            "out), 2 on a usage error or fewer than 2 usable images.\n",
            FEAT_IMAGE_ANALYSIS_SIZE, feat_calib_default()->ref_width,
            feat_calib_default()->ref_height, feat_calib_default()->w_res,
            feat_calib_default()->w_edge, feat_calib_default()->w_ent,
            feat_calib_default()->w_lap);
}

struct paths {
    char **v;
    int n;
    size_t cap;
};

static int paths_add(struct paths *ps, const char *dir, const char *name)
{
    char **nv = util_grow(ps->v, &ps->cap, (size_t)ps->n, sizeof *nv, 64);
    if (!nv) return -1;
    ps->v = nv;
    size_t len = (dir ? strlen(dir) + 1 : 0) + strlen(name) + 1;
    char *s = malloc(len);
    if (!s) return -1;
    if (dir) snprintf(s, len, "%s/%s", dir, name);
    else snprintf(s, len, "%s", name);
    ps->v[ps->n++] = s;
    return 0;
}

/* A directory contributes its image files in name order; anything else is taken as is. */
static int expand_arg(struct paths *ps, const char *arg)
{
    static const char *const exts[] = {".jpg", ".jpeg", ".png", ".webp", NULL};
    struct stat st;
    if (stat(arg, &st) != 0 || !S_ISDIR(st.st_mode)) return paths_add(ps, NULL, arg);
    char **files, err[600];
    int k = util_list_dir(arg, exts, &files, err, sizeof err);
    if (k < 0) return paths_add(ps, NULL, arg); /* reported when read */
    if (k == 0)
        fprintf(stderr, "ferry calibrate: %s: no .jpg .jpeg .png or .webp file in this "
                        "directory\n", arg);
    int rc = 0;
    for (int i = 0; i < k && rc == 0; i++) rc = paths_add(ps, NULL, files[i]);
    util_free_list(files, k);
    return rc;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* q-quantile of sorted v[0..n-1], linear between order statistics (numpy's default). */
static double quantile(const double *v, int n, double q)
{
    double pos = q * (n - 1);
    int i = (int)pos;
    if (i >= n - 1) return v[n - 1];
    return v[i] + (pos - i) * (v[i + 1] - v[i]);
}

int cmd_calibrate(int argc, char **argv)
{
    struct feat_calib c = *feat_calib_default();
    struct feat_image_opts o;
    struct paths ps = {0};
    double *sob = NULL, *lap = NULL;
    int status = 2, nok = 0, nbad = 0, nargs = 0, i;
    feat_image_opts_default(&o);
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            status = 0;
            goto cleanup;
        } else if (!strcmp(a, "--analysis-size") && i + 1 < argc) {
            if (util_parse_int(argv[++i], 0, FEAT_IMAGE_MAX_SIDE, &o.analysis_size) < 0) {
                fprintf(stderr, "ferry calibrate: --analysis-size: '%s' is not 0..%d\n",
                        argv[i], FEAT_IMAGE_MAX_SIDE);
                goto cleanup;
            }
        } else if (!strcmp(a, "--ref") && i + 1 < argc) {
            /* strtol, not sscanf %d: 99999999999 must be refused, not wrapped */
            const char *v = argv[++i];
            char *x, *end = NULL;
            long w = strtol(v, &x, 10), h = *x == 'x' ? strtol(x + 1, &end, 10) : 0;
            if (*x != 'x' || end == x + 1 || *end || w < 1 || h < 1 ||
                w > FEAT_IMAGE_MAX_SIDE || h > FEAT_IMAGE_MAX_SIDE) {
                fprintf(stderr, "ferry calibrate: --ref: '%s' is not WxH with sides in "
                                "1..%d\n", v, FEAT_IMAGE_MAX_SIDE);
                goto cleanup;
            }
            c.ref_width = (int)w;
            c.ref_height = (int)h;
        } else if (!strcmp(a, "--weights") && i + 1 < argc) {
            char tail;
            if (sscanf(argv[++i], "%lf,%lf,%lf,%lf%c", &c.w_res, &c.w_edge, &c.w_ent, &c.w_lap,
                       &tail) != 4) {
                fprintf(stderr, "ferry calibrate: --weights: '%s' is not R,E,N,L\n", argv[i]);
                goto cleanup;
            }
        } else if (!strcmp(a, "--analysis-size") || !strcmp(a, "--ref") ||
                   !strcmp(a, "--weights")) {
            fprintf(stderr, "ferry calibrate: %s needs a value (try --help)\n", a);
            goto cleanup;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "ferry calibrate: unknown option %s (try --help)\n", a);
            goto cleanup;
        } else if (nargs++, expand_arg(&ps, a) != 0) {
            fprintf(stderr, "ferry calibrate: out of memory\n");
            goto cleanup;
        }
    }
    if (nargs == 0) {
        usage(stderr);
        goto cleanup;
    }
    char why[200];
    if (feat_calib_check(&c, why, sizeof why) != 0) { /* --ref / --weights, before the work */
        fprintf(stderr, "ferry calibrate: %s\n", why);
        goto cleanup;
    }
    sob = malloc(sizeof *sob * (size_t)ps.n);
    lap = malloc(sizeof *lap * (size_t)ps.n);
    if (!sob || !lap) {
        fprintf(stderr, "ferry calibrate: out of memory\n");
        goto cleanup;
    }
    for (int k = 0; k < ps.n; k++) {
        uint8_t *data;
        size_t len;
        char err[256];
        struct fy_image_features f;
        if (util_read_file(ps.v[k], o.max_bytes, &data, &len, err, sizeof err) != 0) {
            fprintf(stderr, "ferry calibrate: %s\n", err);
            nbad++;
            continue;
        }
        int rc = feat_image_analyze(data, len, &o, &f, err, sizeof err);
        free(data);
        if (rc != 0) {
            fprintf(stderr, "ferry calibrate: %s: %s\n", ps.v[k], err);
            nbad++;
            continue;
        }
        sob[nok] = f.sobel_mean;
        lap[nok] = f.laplacian_var;
        nok++;
    }
    if (nok < 2) {
        fprintf(stderr, "ferry calibrate: need at least 2 readable images, have %d\n", nok);
        goto cleanup;
    }
    qsort(sob, (size_t)nok, sizeof *sob, cmp_double);
    qsort(lap, (size_t)nok, sizeof *lap, cmp_double);
    c.analysis_size = o.analysis_size;
    c.nimages = nok;
    c.sobel_p5 = quantile(sob, nok, 0.05);
    c.sobel_p95 = quantile(sob, nok, 0.95);
    c.lap_p5 = quantile(lap, nok, 0.05);
    c.lap_p95 = quantile(lap, nok, 0.95);
    if (feat_calib_check(&c, why, sizeof why) != 0) {
        fprintf(stderr, "ferry calibrate: %s\n", why);
        goto cleanup;
    }
    char comment[1024];
    int off = snprintf(comment, sizeof comment,
                       "MoA-Off image-complexity calibration, written by ferry %s calibrate.\n"
                       "Percentiles over %d images measured at analysis size %d; the\n"
                       "reference resolution and the weights are set (--ref, --weights), not\n"
                       "fitted. Command line:",
                       FY_VERSION, nok, o.analysis_size);
    off += snprintf(comment + off, sizeof comment - (size_t)off, " ferry calibrate");
    for (i = 1; i < argc && off < (int)sizeof comment - 64; i++)
        off += snprintf(comment + off, sizeof comment - (size_t)off, " %s", argv[i]);
    if (feat_calib_write(&c, comment, stdout) != 0 || fflush(stdout) != 0) {
        fprintf(stderr, "ferry calibrate: cannot write the output\n");
        goto cleanup;
    }
    status = nbad ? 1 : 0;
cleanup:
    for (int k = 0; k < ps.n; k++) free(ps.v[k]);
    free(ps.v);
    free(sob);
    free(lap);
    return status;
}
