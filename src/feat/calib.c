/* calib.c — MoA-Off calibration files (calib.h). Parsed with inih; every key is
 * required, unknown sections and keys are errors, each error names file and line. */
#include "feat/calib.h"

#include <float.h>
#include <ini.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util/file.h"
#include "util/num.h"

/* Equal to data/calib/default.ini, which `ferry calibrate --analysis-size 512
 * ../shared/images/` wrote (test-feat-image checks that the two agree). */
static const struct feat_calib g_default = {
    .ref_width = 1024, .ref_height = 1024,
    .analysis_size = 512, .nimages = 39,
    .sobel_p5 = 6.5253211924135535, .sobel_p95 = 154.12946483839045,
    .lap_p5 = 22.306382434596738, .lap_p95 = 6281.5065736850656,
    .w_res = 0.25, .w_edge = 0.25, .w_ent = 0.25, .w_lap = 0.25,
};

const struct feat_calib *feat_calib_default(void)
{
    return &g_default;
}

/* ---- parsing ---------------------------------------------------------------------- */

enum { K_REF_W, K_REF_H, K_AN, K_NIMG, K_S5, K_S95, K_L5, K_L95, K_WR, K_WE, K_WN, K_WL, K__N };

static const struct {
    const char *section, *name;
    int is_int;
} g_keys[K__N] = {
    [K_REF_W] = {"reference", "width", 1},      [K_REF_H] = {"reference", "height", 1},
    [K_AN] = {"calibration", "analysis_size", 1}, [K_NIMG] = {"calibration", "images", 1},
    [K_S5] = {"sobel_mean", "p5", 0},           [K_S95] = {"sobel_mean", "p95", 0},
    [K_L5] = {"laplacian_var", "p5", 0},        [K_L95] = {"laplacian_var", "p95", 0},
    [K_WR] = {"weights", "res", 0},             [K_WE] = {"weights", "edge", 0},
    [K_WN] = {"weights", "ent", 0},             [K_WL] = {"weights", "lap", 0},
};

struct parse_ctx {
    double v[K__N];
    int seen[K__N];
    int line;          /* lines handed to inih so far = the line being handled */
    char msg[200];     /* first problem found by the handler */
    int msg_line;      /* its line */
    const char *text;  /* remaining input (string reader) */
    int too_long;      /* > 0: line `line` was longer than this many characters */
};

static int handler(void *user, const char *section, const char *name, const char *value)
{
    struct parse_ctx *x = user;
    if (x->msg[0]) return 0;
    x->msg_line = x->line;
    for (int k = 0; k < K__N; k++) {
        if (strcmp(section, g_keys[k].section) || strcmp(name, g_keys[k].name)) continue;
        double v;
        if (util_parse_double(value, -DBL_MAX, DBL_MAX, &v) < 0) {
            snprintf(x->msg, sizeof x->msg, "[%s] %s: '%s' is not a number", section, name,
                     value);
            return 0;
        }
        if (g_keys[k].is_int && (v != floor(v) || v < 0 || v > 1e9)) {
            snprintf(x->msg, sizeof x->msg, "[%s] %s: '%s' is not a non-negative integer",
                     section, name, value);
            return 0;
        }
        if (x->seen[k]) {
            snprintf(x->msg, sizeof x->msg, "[%s] %s: given twice", section, name);
            return 0;
        }
        x->v[k] = v;
        x->seen[k] = 1;
        return 1;
    }
    snprintf(x->msg, sizeof x->msg, "unknown key '%s' in section [%s]", name, section);
    return 0;
}

/* fgets-like line reader over a NUL-terminated string, for ini_parse_stream. It counts
 * lines so a handler error can be matched with the line inih reports as the first
 * error (a syntax error on an earlier line wins). */
static char *reader(char *buf, int size, void *stream)
{
    struct parse_ctx *x = stream;
    const char *s = x->text;
    if (!*s) return NULL;
    const char *nl = strchr(s, '\n');
    size_t len = nl ? (size_t)(nl - s) + 1 : strlen(s);
    x->line++;
    if (len > (size_t)size - 1) {
        /* a comment of any length is skipped whole (ferry calibrate writes its command
         * line as one); any other line would be cut in two */
        const char *p = s + strspn(s, " \t");
        if (*p != ';' && *p != '#') {
            x->too_long = size > 2 ? size - 2 : 1;
            return NULL;
        }
        len = 1;
        buf[0] = ';';
    } else {
        memcpy(buf, s, len);
    }
    buf[len] = 0;
    x->text = nl ? nl + 1 : s + strlen(s);
    return buf;
}

int feat_calib_check(const struct feat_calib *c, char *err, size_t errlen)
{
    double ws = c->w_res + c->w_edge + c->w_ent + c->w_lap;
    if (c->ref_width <= 0 || c->ref_height <= 0)
        snprintf(err, errlen, "[reference] width and height must be positive");
    else if (!(c->sobel_p5 >= 0 && c->sobel_p95 >= c->sobel_p5))
        snprintf(err, errlen, "[sobel_mean] needs 0 <= p5 <= p95 (got %g, %g)", c->sobel_p5,
                 c->sobel_p95);
    else if (!(c->lap_p5 >= 0 && c->lap_p95 >= c->lap_p5))
        snprintf(err, errlen, "[laplacian_var] needs 0 <= p5 <= p95 (got %g, %g)", c->lap_p5,
                 c->lap_p95);
    else if (!(c->w_res >= 0 && c->w_edge >= 0 && c->w_ent >= 0 && c->w_lap >= 0))
        snprintf(err, errlen, "[weights] must be non-negative numbers");  /* NaN too */
    else if (!(fabs(ws - 1.0) <= 1e-6))
        snprintf(err, errlen, "[weights] must sum to 1 (they sum to %.9g)", ws);
    else
        return 0;
    return -1;
}

int feat_calib_parse(const char *text, const char *name, struct feat_calib *c, char *err,
                     size_t errlen)
{
    struct parse_ctx x;
    memset(&x, 0, sizeof x);
    x.text = text;
    int rc = ini_parse_stream(reader, &x, handler, &x);
    if (x.too_long) {
        snprintf(err, errlen, "%s:%d: line longer than %d characters", name, x.line,
                 x.too_long);
        return -1;
    }
    if (rc == -2) {
        snprintf(err, errlen, "%s: out of memory", name);
        return -1;
    }
    if (rc > 0) {
        snprintf(err, errlen, "%s:%d: %s", name, rc,
                 x.msg[0] && x.msg_line == rc ? x.msg : "syntax error");
        return -1;
    }
    for (int k = 0; k < K__N; k++)
        if (!x.seen[k]) {
            snprintf(err, errlen, "%s: missing key '%s' in section [%s]", name,
                     g_keys[k].name, g_keys[k].section);
            return -1;
        }
    struct feat_calib t = {
        .ref_width = (int)x.v[K_REF_W], .ref_height = (int)x.v[K_REF_H],
        .analysis_size = (int)x.v[K_AN], .nimages = (int)x.v[K_NIMG],
        .sobel_p5 = x.v[K_S5], .sobel_p95 = x.v[K_S95],
        .lap_p5 = x.v[K_L5], .lap_p95 = x.v[K_L95],
        .w_res = x.v[K_WR], .w_edge = x.v[K_WE], .w_ent = x.v[K_WN], .w_lap = x.v[K_WL],
    };
    char why[200];
    if (feat_calib_check(&t, why, sizeof why) != 0) {
        snprintf(err, errlen, "%s: %s", name, why);
        return -1;
    }
    *c = t;
    return 0;
}

#define CALIB_MAX_FILE (64 * 1024)

int feat_calib_load(const char *path, struct feat_calib *c, char *err, size_t errlen)
{
    uint8_t *text;
    size_t n;
    if (util_read_file(path, CALIB_MAX_FILE, &text, &n, err, errlen) < 0) return -1;
    int rc = -1;
    if (memchr(text, 0, n))
        snprintf(err, errlen, "%s: contains a NUL byte, not a calibration file", path);
    else
        rc = feat_calib_parse((const char *)text, path, c, err, errlen);
    free(text);
    return rc;
}

int feat_calib_write(const struct feat_calib *c, const char *comment, FILE *out)
{
    if (comment) {
        const char *s = comment;
        while (*s) {
            const char *nl = strchr(s, '\n');
            int len = nl ? (int)(nl - s) : (int)strlen(s);
            fprintf(out, "; %.*s\n", len, s);
            s += len + (nl ? 1 : 0);
        }
        fputc('\n', out);
    }
    fprintf(out,
            "[calibration]\n"
            "analysis_size = %d   ; longer side (px) the measures were taken at, 0 = full res\n"
            "images = %d\n\n"
            "[reference]         ; H0 x W0 of C_res = min(1, HW / (H0 W0))\n"
            "width = %d\n"
            "height = %d\n\n"
            "[sobel_mean]        ; P5 / P95 of the mean 3x3 Sobel magnitude, gray levels\n"
            "p5 = %.17g\n"
            "p95 = %.17g\n\n"
            "[laplacian_var]     ; P5 / P95 of the 4-neighbour Laplacian variance, gray levels^2\n"
            "p5 = %.17g\n"
            "p95 = %.17g\n\n"
            "[weights]           ; c_img = res C_res + edge C_edge + ent C_ent + lap C_lap\n"
            "res = %.17g\n"
            "edge = %.17g\n"
            "ent = %.17g\n"
            "lap = %.17g\n",
            c->analysis_size, c->nimages, c->ref_width, c->ref_height, c->sobel_p5,
            c->sobel_p95, c->lap_p5, c->lap_p95, c->w_res, c->w_edge, c->w_ent, c->w_lap);
    return ferror(out) ? -1 : 0;
}
