/* imgfeat.c — Sobel, histogram entropy and Laplacian variance of a luma image, and the
 * MoA-Off scores (imgfeat.h). One pass over the rows; each row reads its two
 * neighbours, with reflect-101 borders, so no padded copy is made. */
#include "feat/imgfeat.h"

#include <math.h>

/* OpenCV borderInterpolate(BORDER_REFLECT_101) for i in [-1, n]. */
static inline int refl101(int i, int n)
{
    if (n == 1) return 0;
    if (i < 0) return -i;
    if (i >= n) return 2 * n - 2 - i;
    return i;
}

/* One output pixel at column x from rows a (above), b (this), c (below) and the
 * reflected neighbour columns xl, xr. Adds |∇| to *mag and the Laplacian to *s1, *s2. */
static inline void pixel(const uint8_t *a, const uint8_t *b, const uint8_t *c, int xl,
                         int x, int xr, double *mag, int64_t *s1, int64_t *s2)
{
    int gx = (a[xr] - a[xl]) + 2 * (b[xr] - b[xl]) + (c[xr] - c[xl]);
    int gy = (c[xl] + 2 * c[x] + c[xr]) - (a[xl] + 2 * a[x] + a[xr]);
    int lap = a[x] + c[x] + b[xl] + b[xr] - 4 * b[x];
    *mag += sqrt((double)(gx * gx + gy * gy));
    *s1 += lap;
    *s2 += (int64_t)lap * lap;
}

void feat_measures_compute(const uint8_t *gray, int w, int h, size_t stride,
                           struct feat_measures *m)
{
    uint64_t hist[256] = {0};
    double mag_sum = 0.0;
    int64_t lap_sum = 0, lap_sq = 0;

    for (int y = 0; y < h; y++) {
        const uint8_t *a = gray + (size_t)refl101(y - 1, h) * stride;
        const uint8_t *b = gray + (size_t)y * stride;
        const uint8_t *c = gray + (size_t)refl101(y + 1, h) * stride;
        double row_mag = 0.0;
        int64_t row_s1 = 0, row_s2 = 0;
        for (int x = 0; x < w; x++) hist[b[x]]++;
        pixel(a, b, c, refl101(-1, w), 0, refl101(1, w), &row_mag, &row_s1, &row_s2);
        for (int x = 1; x < w - 1; x++) {
            /* interior: the same arithmetic as pixel(), written out so it vectorises */
            int gx = (a[x + 1] - a[x - 1]) + 2 * (b[x + 1] - b[x - 1]) + (c[x + 1] - c[x - 1]);
            int gy = (c[x - 1] + 2 * c[x] + c[x + 1]) - (a[x - 1] + 2 * a[x] + a[x + 1]);
            int lap = a[x] + c[x] + b[x - 1] + b[x + 1] - 4 * b[x];
            row_mag += sqrt((double)(gx * gx + gy * gy));
            row_s1 += lap;
            row_s2 += (int64_t)lap * lap;
        }
        if (w > 1)
            pixel(a, b, c, w - 2, w - 1, refl101(w, w), &row_mag, &row_s1, &row_s2);
        mag_sum += row_mag;
        lap_sum += row_s1;
        lap_sq += row_s2;
    }

    double n = (double)w * (double)h;
    m->sobel_mean = mag_sum / n;
    double mean = (double)lap_sum / n;
    double var = (double)lap_sq / n - mean * mean;
    m->laplacian_var = var > 0.0 ? var : 0.0;
    double ent = 0.0;
    for (int i = 0; i < 256; i++) {
        if (!hist[i]) continue;
        double p = (double)hist[i] / n;
        ent -= p * log(p);
    }
    m->entropy = ent > 0.0 ? ent : 0.0;
}

static double clip01(double v)
{
    return v < 0.0 ? 0.0 : v > 1.0 ? 1.0 : v;
}

void feat_scores(const struct feat_calib *c, int width, int height,
                 const struct feat_measures *m, struct fy_image_features *out)
{
    double hw = (double)width * (double)height;
    double ref = (double)c->ref_width * (double)c->ref_height;
    out->sobel_mean = m->sobel_mean;
    out->entropy = m->entropy;
    out->laplacian_var = m->laplacian_var;
    /* MoA-Off image complexity terms (DESIGN.md "MoA-Off") */
    out->c_res = ref > 0.0 ? fmin(1.0, hw / ref) : 1.0;
    out->c_edge = clip01((m->sobel_mean - c->sobel_p5) / (c->sobel_p95 - c->sobel_p5 + FEAT_SCORE_EPS));
    out->c_ent = clip01(m->entropy / log(256.0));
    out->c_lap = clip01((m->laplacian_var - c->lap_p5) / (c->lap_p95 - c->lap_p5 + FEAT_SCORE_EPS));
    out->c_img = c->w_res * out->c_res + c->w_edge * out->c_edge + c->w_ent * out->c_ent +
                 c->w_lap * out->c_lap;
}
