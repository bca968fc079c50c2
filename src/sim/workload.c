/* workload — request mixes, the image pool and request drawing (workload.h). */
#include "sim/workload.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "feat/calib.h"
#include "feat/tokens.h"
#include "pred/trace.h"
#include "util/grow.h"
#include "util/num.h"
#include "util/num.h"
#include "util/rng.h"

/* Text-complexity stand-ins (MoA-Off c_text = beta_L C_L + beta_ner C_ner; the feat
 * area computes the real ones from text, the simulator draws them): */
#define SIM_TEXT_L0 256.0    /* C_L = min(1, tokens / L0) */
#define SIM_BETA_L 0.5

void sim_workload_init(struct sim_workload *w)
{
    memset(w, 0, sizeof *w);
    w->feature_noise = 0.5;
    w->turns_min = w->turns_max = 1;
    w->think_s = 10;
    snprintf(w->pool_path, sizeof w->pool_path, "images.csv");
}

void sim_workload_fini(struct sim_workload *w)
{
    free(w->pool);
    for (int i = 0; i < SIM_MAX_CLASSES; i++) free(w->cand[i]);
    memset(w, 0, sizeof *w);
}

/* ==== parsing ====================================================================== */

int sim__num(const char *key, const char *v, double lo, double hi, double *out, char *err,
             size_t errlen)
{
    if (util_parse_double(v, lo, hi, out) < 0) {
        snprintf(err, errlen, "%s = %s: expected a number in [%g, %g]", key, v, lo, hi);
        return -1;
    }
    return 0;
}

int sim__int(const char *key, const char *v, double lo, double hi, double *out, char *err,
             size_t errlen)
{
    if (sim__num(key, v, lo, hi, out, err, errlen) < 0) return -1;
    if (*out != floor(*out)) {
        snprintf(err, errlen, "%s = %s: expected an integer", key, v);
        return -1;
    }
    return 0;
}

static int inum(const char *key, const char *v, int lo, int hi, int *out, char *err, size_t errlen)
{
    double d;
    if (sim__int(key, v, lo, hi, &d, err, errlen) < 0) return -1;
    *out = (int)d;
    return 0;
}

static struct sim_class *class_get(struct sim_workload *w, const char *name, int line, char *err,
                                   size_t errlen)
{
    for (int i = 0; i < w->nclasses; i++)
        if (!strcmp(w->cls[i].name, name)) return &w->cls[i];
    if (w->nclasses == SIM_MAX_CLASSES) {
        snprintf(err, errlen, "[class %s]: more than %d classes", name, SIM_MAX_CLASSES);
        return NULL;
    }
    if (!*name || strlen(name) >= sizeof w->cls[0].name) {
        snprintf(err, errlen, "[class %s]: name must have 1..%zu characters", name,
                 sizeof w->cls[0].name - 1);
        return NULL;
    }
    struct sim_class *c = &w->cls[w->nclasses++];
    memset(c, 0, sizeof *c);
    snprintf(c->name, sizeof c->name, "%s", name);
    c->task = FY_TASK_CHAT;
    snprintf(c->skill, sizeof c->skill, "%s", name);
    c->weight = 1;
    c->diff_sd = 1.5;
    c->prompt_tokens = 16;
    c->prompt_sigma = 0.3;
    c->out_tokens = 8;
    c->out_sigma = 0.3;
    c->out_max = 1024;
    c->p_image = 1;
    c->images_min = c->images_max = 1;
    c->image_need = 1;
    c->visual_share = 0.5;
    c->line = line;
    return c;
}

static void origin_set(struct sim_origin *o, const char *file, int line, const char *key,
                       const char *v)
{
    snprintf(o->file, sizeof o->file, "%s", file ? file : "");
    o->line = line;
    snprintf(o->key, sizeof o->key, "%s", key);
    snprintf(o->value, sizeof o->value, "%s", v);
}

/* "FILE:LINE: " or "--set SECTION.KEY=VALUE: " (section dotted: "class.yesno"). */
static void origin_prefix(char *out, size_t cap, const struct sim_origin *o, const char *section)
{
    if (o->line > 0) snprintf(out, cap, "%s:%d: ", o->file, o->line);
    else if (o->file[0]) snprintf(out, cap, "%s %s.%s=%s: ", o->file, section, o->key, o->value);
    else out[0] = '\0';
}

static int feed_class(struct sim_class *c, const char *file, int line, const char *key,
                      const char *v, char *err, size_t errlen)
{
    if (!strncmp(key, "images", 6)) origin_set(&c->at_images, file, line, key, v);
    if (!strcmp(key, "task")) {
        if (trace_task_parse(v, &c->task) < 0) {
            snprintf(err, errlen, "task = %s: expected chat, caption, count, ocr, yesno, mcq "
                     "or reason", v);
            return -1;
        }
        return 0;
    }
    if (!strcmp(key, "skill") || !strcmp(key, "image_prefix")) {
        char *dst = key[0] == 's' ? c->skill : c->image_prefix;
        size_t cap = key[0] == 's' ? sizeof c->skill : sizeof c->image_prefix;
        if (strlen(v) >= cap || (key[0] == 's' && !*v)) {
            snprintf(err, errlen, "%s = %s: expected 1..%zu characters", key, v, cap - 1);
            return -1;
        }
        snprintf(dst, cap, "%s", v);
        return 0;
    }
    if (!strcmp(key, "weight")) return sim__num(key, v, 0, 1e9, &c->weight, err, errlen);
    if (!strcmp(key, "difficulty_mean")) return sim__num(key, v, -50, 50, &c->diff_mean, err, errlen);
    if (!strcmp(key, "difficulty_sd")) return sim__num(key, v, 0, 50, &c->diff_sd, err, errlen);
    if (!strcmp(key, "prompt_tokens")) return sim__num(key, v, 1, 1e6, &c->prompt_tokens, err, errlen);
    if (!strcmp(key, "prompt_sigma")) return sim__num(key, v, 0, 5, &c->prompt_sigma, err, errlen);
    if (!strcmp(key, "out_tokens")) return sim__num(key, v, 1, 1e6, &c->out_tokens, err, errlen);
    if (!strcmp(key, "out_sigma")) return sim__num(key, v, 0, 5, &c->out_sigma, err, errlen);
    if (!strcmp(key, "out_max")) return inum(key, v, 1, 1000000, &c->out_max, err, errlen);
    if (!strcmp(key, "p_image")) return sim__num(key, v, 0, 1, &c->p_image, err, errlen);
    if (!strcmp(key, "images_min")) return inum(key, v, 0, FY_MAX_IMAGES, &c->images_min, err, errlen);
    if (!strcmp(key, "images_max")) return inum(key, v, 0, FY_MAX_IMAGES, &c->images_max, err, errlen);
    if (!strcmp(key, "images")) {
        if (inum(key, v, 0, FY_MAX_IMAGES, &c->images_min, err, errlen) < 0) return -1;
        c->images_max = c->images_min;
        return 0;
    }
    if (!strcmp(key, "image_max_side"))
        return inum(key, v, 0, 1000000, &c->image_max_side, err, errlen);
    if (!strcmp(key, "image_need")) return sim__num(key, v, 0, 1, &c->image_need, err, errlen);
    if (!strcmp(key, "visual_share")) return sim__num(key, v, 0, 1, &c->visual_share, err, errlen);
    if (!strcmp(key, "description")) return 0;
    snprintf(err, errlen, "[class %s]: unknown key '%s' (task, skill, weight, difficulty_mean, "
             "difficulty_sd, prompt_tokens, prompt_sigma, out_tokens, out_sigma, out_max, "
             "p_image, images, images_min, images_max, image_need, visual_share, image_prefix, "
             "image_max_side)",
             c->name, key);
    return -1;
}

int sim_workload_feed(struct sim_workload *w, const char *file, const char *section,
                      const char *key, const char *v, int line, char *err, size_t errlen)
{
    if (!strcmp(section, "workload")) {
        if (!strncmp(key, "turns_", 6)) origin_set(&w->at_turns, file, line, key, v);
        if (!strcmp(key, "name")) {
            if (!*v || strlen(v) >= sizeof w->name) {
                snprintf(err, errlen, "name: expected 1..%zu characters", sizeof w->name - 1);
                return -1;
            }
            snprintf(w->name, sizeof w->name, "%s", v);
            return 1;
        }
        if (!strcmp(key, "feature_noise"))
            return sim__num(key, v, 0, 100, &w->feature_noise, err, errlen) < 0 ? -1 : 1;
        if (!strcmp(key, "turns_min"))
            return inum(key, v, 1, 1000, &w->turns_min, err, errlen) < 0 ? -1 : 1;
        if (!strcmp(key, "turns_max"))
            return inum(key, v, 1, 1000, &w->turns_max, err, errlen) < 0 ? -1 : 1;
        if (!strcmp(key, "think_s")) return sim__num(key, v, 0, 1e6, &w->think_s, err, errlen) < 0 ? -1 : 1;
        if (!strcmp(key, "views"))
            return inum(key, v, 0, SIM_MAX_VIEWS, &w->views, err, errlen) < 0 ? -1 : 1;
        if (!strcmp(key, "image_pool")) {
            if (!*v || strlen(v) >= sizeof w->pool_path) {
                snprintf(err, errlen, "image_pool: expected a path");
                return -1;
            }
            snprintf(w->pool_path, sizeof w->pool_path, "%s", v);
            return 1;
        }
        if (!strcmp(key, "description")) return 1;
        snprintf(err, errlen, "[workload]: unknown key '%s' (name, feature_noise, turns_min, "
                 "turns_max, think_s, views, image_pool, description)", key);
        return -1;
    }
    if (!strncmp(section, "class ", 6)) {
        const char *name = section + 6;
        while (*name == ' ') name++;
        struct sim_class *c = class_get(w, name, line, err, errlen);
        if (!c) return -1;
        return feed_class(c, file, line, key, v, err, errlen) < 0 ? -1 : 1;
    }
    return 0;
}

/* ==== image pool =================================================================== */

static int cmp_cimg(const void *a, const void *b)
{
    const struct sim_image *x = a, *y = b;
    if (x->f.c_img != y->f.c_img) return x->f.c_img < y->f.c_img ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* The columns of an image-pool row (`ferry sim --image-pool` writes them) and the
 * range of each number: sizes and token counts whole, the c_* scores in [0, 1]. */
#define POOL_NCOLS 16
static const struct { const char *name; double lo, hi; int whole; } g_pool_cols[POOL_NCOLS] = {
    {"name", 0, 0, 0},          {"format", 0, 0, 0},        {"width", 1, 1e6, 1},
    {"height", 1, 1e6, 1},      {"bytes", 1, 1e12, 1},      {"sobel_mean", 0, 1e6, 0},
    {"entropy", 0, 64, 0},      {"laplacian_var", 0, 1e12, 0}, {"c_res", 0, 1, 0},
    {"c_edge", 0, 1, 0},        {"c_ent", 0, 1, 0},         {"c_lap", 0, 1, 0},
    {"c_img", 0, 1, 0},         {"tok_qwen2vl", 0, 1e7, 1}, {"tok_llava", 0, 1e7, 1},
    {"tok_generic", 0, 1e7, 1},
};

/* One row "name,format,width,...,tok_generic" into name, fmt and v[2..15] (v[0], v[1]
 * unused). 0, or -1 with "column 'X' = 'v': expected ..." in err. */
static int pool_row(char *line, char *name, size_t ncap, char *fmt, size_t fcap, double *v,
                    char *err, size_t errlen)
{
    line[strcspn(line, "\r\n")] = '\0';
    char *p = line;
    for (int c = 0; c < POOL_NCOLS; c++) {
        char *end = strchr(p, ',');
        if ((end != NULL) != (c < POOL_NCOLS - 1)) {
            snprintf(err, errlen, "expected %d comma-separated columns (name,format,width,"
                     "height,bytes,sobel_mean,entropy,laplacian_var,c_res,c_edge,c_ent,c_lap,"
                     "c_img,tok_qwen2vl,tok_llava,tok_generic)", POOL_NCOLS);
            return -1;
        }
        if (end) *end = '\0';
        if (c < 2) {
            size_t cap = c == 0 ? ncap : fcap;
            if (!*p || strlen(p) >= cap) {
                snprintf(err, errlen, "column '%s': expected 1..%zu characters",
                         g_pool_cols[c].name, cap - 1);
                return -1;
            }
            snprintf(c == 0 ? name : fmt, cap, "%s", p);
        } else if (util_parse_double(p, g_pool_cols[c].lo, g_pool_cols[c].hi, &v[c]) < 0 ||
                   (g_pool_cols[c].whole && v[c] != floor(v[c]))) {
            snprintf(err, errlen, "column '%s' = '%.40s': expected %s in [%g, %g]",
                     g_pool_cols[c].name, p, g_pool_cols[c].whole ? "an integer" : "a number",
                     g_pool_cols[c].lo, g_pool_cols[c].hi);
            return -1;
        }
        if (end) p = end + 1;
    }
    return 0;
}

int sim_pool_load(const char *path, struct sim_image **out, int *n, char *err, size_t errlen)
{
    FILE *fp = fopen(path, "r");
    if (!fp) {
        snprintf(err, errlen, "image pool %s: %s", path, strerror(errno));
        return -1;
    }
    struct sim_image *pool = NULL;
    int np = 0, lineno = 0, rc = 0;
    size_t cap = 0;
    char line[1024];
    while (fgets(line, sizeof line, fp)) {
        lineno++;
        if (!strchr(line, '\n') && !feof(fp)) {
            snprintf(err, errlen, "%s:%d: line too long", path, lineno);
            rc = -1;
            break;
        }
        if (line[0] == '#' || line[0] == '\n' || !strncmp(line, "name,", 5)) continue;
        if (np == SIM_POOL_MAX) {
            snprintf(err, errlen, "%s:%d: more than %d images", path, lineno, SIM_POOL_MAX);
            rc = -1;
            break;
        }
        struct sim_image *p = util_grow(pool, &cap, (size_t)np, sizeof *p, 64);
        if (!p) {
            snprintf(err, errlen, "%s: out of memory", path);
            rc = -1;
            break;
        }
        pool = p;
        struct sim_image *im = &pool[np];
        memset(im, 0, sizeof *im);
        char fmt[16];
        double v[POOL_NCOLS];
        if (pool_row(line, im->name, sizeof im->name, fmt, sizeof fmt, v, err, errlen) < 0) {
            char why[300];
            snprintf(why, sizeof why, "%s", err);
            snprintf(err, errlen, "%s:%d: %s", path, lineno, why);
            rc = -1;
            break;
        }
        int w = (int)v[2], h = (int)v[3], t0 = (int)v[13], t1 = (int)v[14], t2 = (int)v[15];
        long bytes = (long)v[4];
        double sob = v[5], ent = v[6], lap = v[7], cr = v[8], ce = v[9], cn = v[10], cl = v[11],
               ci = v[12];
        im->f.format = !strcmp(fmt, "jpeg") ? FY_FMT_JPEG : !strcmp(fmt, "png") ? FY_FMT_PNG
                       : !strcmp(fmt, "webp") ? FY_FMT_WEBP : FY_FMT_UNKNOWN;
        im->f.width = w;
        im->f.height = h;
        im->f.bytes = (size_t)bytes;
        im->f.sobel_mean = sob;
        im->f.entropy = ent;
        im->f.laplacian_var = lap;
        im->f.c_res = cr;
        im->f.c_edge = ce;
        im->f.c_ent = cn;
        im->f.c_lap = cl;
        im->f.c_img = ci;
        im->f.tokens[FY_VT_QWEN2VL] = t0;
        im->f.tokens[FY_VT_LLAVA] = t1;
        im->f.tokens[FY_VT_GENERIC] = t2;
        np++;
    }
    fclose(fp);
    if (rc == 0 && np == 0) {
        snprintf(err, errlen, "%s: no images", path);
        rc = -1;
    }
    if (rc < 0) {
        free(pool);
        return -1;
    }
    qsort(pool, (size_t)np, sizeof *pool, cmp_cimg);
    *out = pool;
    *n = np;
    return 0;
}

int sim_workload_finish(struct sim_workload *w, const char *dir, char *err, size_t errlen)
{
    if (w->nclasses == 0) {
        snprintf(err, errlen, "workload %s: no [class NAME] sections", w->name);
        return -1;
    }
    double tw = 0;
    for (int i = 0; i < w->nclasses; i++) {
        struct sim_class *c = &w->cls[i];
        if (c->images_max < c->images_min) {
            char at[400], sec[48];
            snprintf(sec, sizeof sec, "class.%s", c->name);
            origin_prefix(at, sizeof at, &c->at_images, sec);
            snprintf(err, errlen, "%sworkload %s: [class %s] images_max = %d is below "
                     "images_min = %d", at, w->name, c->name, c->images_max, c->images_min);
            return -1;
        }
        tw += c->weight;
    }
    if (!(tw > 0)) {
        snprintf(err, errlen, "workload %s: class weights sum to 0", w->name);
        return -1;
    }
    if (w->turns_max < w->turns_min) {
        char at[400];
        origin_prefix(at, sizeof at, &w->at_turns, "workload");
        snprintf(err, errlen, "%sworkload %s: turns_max = %d is below turns_min = %d", at,
                 w->name, w->turns_max, w->turns_min);
        return -1;
    }
    char path[1024];
    if (w->pool_path[0] == '/' || !dir) snprintf(path, sizeof path, "%s", w->pool_path);
    else snprintf(path, sizeof path, "%s/%s", dir, w->pool_path);
    free(w->pool);
    w->pool = NULL;
    if (sim_pool_load(path, &w->pool, &w->npool, err, errlen) < 0) return -1;
    for (int i = 0; i < w->nclasses; i++) {
        const struct sim_class *c = &w->cls[i];
        free(w->cand[i]);
        w->cand[i] = malloc((size_t)w->npool * sizeof(int));
        if (!w->cand[i]) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        w->ncand[i] = 0;
        size_t pl = strlen(c->image_prefix);
        for (int k = 0; k < w->npool; k++)
            if (!pl || !strncmp(w->pool[k].name, c->image_prefix, pl)) w->cand[i][w->ncand[i]++] = k;
        if (w->ncand[i] == 0 && c->images_max > 0 && c->p_image > 0) {
            snprintf(err, errlen, "workload %s: [class %s] image_prefix '%s' matches no image "
                     "of %s", w->name, c->name, c->image_prefix, path);
            return -1;
        }
    }
    return 0;
}

/* ==== drawing ====================================================================== */

static double phi(double x) { return 0.5 * erfc(-x / sqrt(2.0)); }

static uint32_t fnv1a(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

static int lognormal_tokens(struct rng *r, double median, double sigma, int lo, int hi)
{
    double x = median * exp(sigma * rng_normal(r, 0, 1));
    long t = lround(x);
    if (t < lo) t = lo;
    if (t > hi) t = hi;
    return (int)t;
}

/* The image as a client that resizes to max_side would send it (workload.h). */
static void limit_side(struct fy_image_features *im, int max_side)
{
    int side = im->width > im->height ? im->width : im->height;
    if (side <= max_side) return;
    double s = (double)max_side / side;
    im->width = (int)(im->width * s + 0.5);
    im->height = (int)(im->height * s + 0.5);
    if (im->width < 1) im->width = 1;
    if (im->height < 1) im->height = 1;
    im->bytes = (size_t)((double)im->bytes * s * s + 0.5);
    for (int f = 0; f < FY_VT__N; f++) {
        int t = feat_visual_tokens((enum fy_vt_family)f, im->width, im->height);
        if (t >= 0) im->tokens[f] = t;
    }
    const struct feat_calib *cb = feat_calib_default();
    double ref = (double)cb->ref_width * cb->ref_height;
    im->c_res = ref > 0 ? fmin(1.0, (double)im->width * im->height / ref) : im->c_res;
    im->c_img = cb->w_res * im->c_res + cb->w_edge * im->c_edge + cb->w_ent * im->c_ent +
                cb->w_lap * im->c_lap;
}

void sim_dialogue_start(const struct sim_workload *w, struct rng *r, struct sim_dialogue *d)
{
    memset(d, 0, sizeof *d);
    d->turns = w->turns_min + (int)rng_below(r, (uint64_t)(w->turns_max - w->turns_min + 1));
    d->nviews = w->views < w->npool ? w->views : w->npool;
    for (int i = 0; i < d->nviews; i++) d->view_idx[i] = (int)rng_below(r, (uint64_t)w->npool);
}

void sim_dialogue_next(struct sim_dialogue *d, const struct sim_latent *lat, int nimages)
{
    d->turn++;
    d->history_tokens += lat->prompt_tokens + lat->out_tokens;
    d->history_images += nimages;
}

void sim_workload_draw(const struct sim_workload *w, struct rng *r, struct sim_dialogue *d,
                       struct sim_latent *lat, struct fy_features *f)
{
    /* class by weight */
    double tw = 0;
    for (int i = 0; i < w->nclasses; i++) tw += w->cls[i].weight;
    double u = rng_uniform(r) * tw;
    int ci = w->nclasses - 1;
    for (int i = 0; i < w->nclasses; i++) {
        if (u < w->cls[i].weight) { ci = i; break; }
        u -= w->cls[i].weight;
    }
    const struct sim_class *c = &w->cls[ci];
    lat->cls = ci;
    double z = rng_normal(r, 0, 1);
    lat->difficulty = c->diff_mean + c->diff_sd * z;
    lat->u = rng_uniform(r);
    lat->prompt_tokens = lognormal_tokens(r, c->prompt_tokens, c->prompt_sigma, 1, 1000000);
    lat->out_tokens = lognormal_tokens(r, c->out_tokens, c->out_sigma, 1, c->out_max);

    /* observable features: noisy functions of z (workload.h) */
    double sn = w->feature_noise, norm = sqrt(1.0 + sn * sn);
    int nimg = 0;
    if (c->images_max > 0 && rng_uniform(r) < c->p_image) {
        nimg = c->images_min + (int)rng_below(r, (uint64_t)(c->images_max - c->images_min + 1));
        if (nimg > FY_MAX_IMAGES) nimg = FY_MAX_IMAGES;
    }
    f->nimages = 0;
    if (d && d->nviews > 0) {
        if (nimg > d->nviews) nimg = d->nviews;
        int order[SIM_MAX_VIEWS];
        for (int i = 0; i < d->nviews; i++) order[i] = i;
        for (int i = d->nviews - 1; i > 0; i--) { /* Fisher-Yates */
            int j = (int)rng_below(r, (uint64_t)(i + 1)), t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
        for (int i = 0; i < nimg; i++) lat->pool_idx[i] = d->view_idx[order[i]];
    } else if (nimg > 0 && w->ncand[ci] > 0) {
        for (int i = 0; i < nimg; i++) {
            double q = phi((z + sn * rng_normal(r, 0, 1)) / norm);
            int k = (int)(q * w->ncand[ci]);
            if (k >= w->ncand[ci]) k = w->ncand[ci] - 1;
            lat->pool_idx[i] = w->cand[ci][k];
        }
    } else {
        nimg = 0;
    }
    for (int i = 0; i < nimg; i++) {
        f->img[i] = w->pool[lat->pool_idx[i]].f;
        if (c->image_max_side > 0) limit_side(&f->img[i], c->image_max_side);
    }
    f->nimages = nimg;

    double zt = (z + sn * rng_normal(r, 0, 1)) / norm;
    int hist = d ? d->history_tokens : 0;
    f->last_text_tokens = lat->prompt_tokens;
    f->text_tokens = lat->prompt_tokens + hist;
    f->history_tokens = hist;
    f->history_images = d ? d->history_images : 0;
    f->turn = d ? d->turn : 0;
    f->sentences = 1 + lat->prompt_tokens / 20;
    f->c_L = fmin(1.0, lat->prompt_tokens / SIM_TEXT_L0);
    f->c_ner = phi(zt);
    f->c_text = SIM_BETA_L * f->c_L + (1 - SIM_BETA_L) * f->c_ner;
    f->task = c->task;
    f->max_out_tokens = c->out_max;

    /* hashed "words": the class, its task, and a coarse noisy difficulty cue */
    memset(f->ngram, 0, sizeof f->ngram);
    char word[64];
    snprintf(word, sizeof word, "class:%s", c->name);
    f->ngram[fnv1a(word) % FY_HASH_DIM] += 1.0f;
    snprintf(word, sizeof word, "task:%s", trace_task_name(c->task));
    f->ngram[fnv1a(word) % FY_HASH_DIM] += 1.0f;
    int bucket = zt < -0.84 ? 0 : zt < -0.25 ? 1 : zt < 0.25 ? 2 : zt < 0.84 ? 3 : 4;
    snprintf(word, sizeof word, "cue:%d", bucket);
    f->ngram[fnv1a(word) % FY_HASH_DIM] += 1.0f;
    double n2 = 0;
    for (int i = 0; i < FY_HASH_DIM; i++) n2 += (double)f->ngram[i] * f->ngram[i];
    float inv = (float)(1.0 / sqrt(n2));
    for (int i = 0; i < FY_HASH_DIM; i++) f->ngram[i] *= inv;
}
