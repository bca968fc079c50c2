/* imgfeat.c — Sobel, histogram entropy and Laplacian variance of a luma image, and the
 * MoA-Off scores (imgfeat.h). One pass over the rows; each row reads its two
 * neighbours, with reflect-101 borders, so no padded copy is made. */
#include "feat/imgfeat.h"

#include <math.h>
#include <string.h>

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

#if defined(__SSE2__)
#include <emmintrin.h>
#define LOAD8(p) _mm_unpacklo_epi8(_mm_loadl_epi64((const __m128i *)(const void *)(p)), zero)

static void flush32(__m128i *acc, int64_t *total)
{
    int32_t lane[4];
    _mm_storeu_si128((__m128i *)(void *)lane, *acc);
    *total += (int64_t)lane[0] + lane[1] + lane[2] + lane[3];
    *acc = _mm_setzero_si128();
}

/* Interior columns x = 1 .. in blocks of 8 (SSE2, exact integer arithmetic: Sobel and
 * Laplacian in 16-bit lanes, |g|^2 = gx^2 + gy^2 by madd in 32-bit lanes, sqrt in
 * double). Returns the first column not done. */
static int row_sse2(const uint8_t *a, const uint8_t *b, const uint8_t *c, int w,
                    double *mag, int64_t *s1, int64_t *s2)
{
    const __m128i zero = _mm_setzero_si128(), one = _mm_set1_epi16(1);
    __m128d msum = _mm_setzero_pd();
    __m128i l1 = zero, l2 = zero;
    int x = 1, it = 0;
    for (; x + 8 <= w - 1; x += 8) {
        __m128i al = LOAD8(a + x - 1), am = LOAD8(a + x), ar = LOAD8(a + x + 1);
        __m128i bl = LOAD8(b + x - 1), bm = LOAD8(b + x), br = LOAD8(b + x + 1);
        __m128i cl = LOAD8(c + x - 1), cm = LOAD8(c + x), cr = LOAD8(c + x + 1);
        __m128i gx = _mm_add_epi16(_mm_add_epi16(_mm_sub_epi16(ar, al), _mm_sub_epi16(cr, cl)),
                                   _mm_slli_epi16(_mm_sub_epi16(br, bl), 1));
        __m128i gy = _mm_sub_epi16(_mm_add_epi16(_mm_add_epi16(cl, cr), _mm_slli_epi16(cm, 1)),
                                   _mm_add_epi16(_mm_add_epi16(al, ar), _mm_slli_epi16(am, 1)));
        __m128i lap = _mm_sub_epi16(_mm_add_epi16(_mm_add_epi16(am, cm), _mm_add_epi16(bl, br)),
                                    _mm_slli_epi16(bm, 2));
        __m128i lo = _mm_unpacklo_epi16(gx, gy), hi = _mm_unpackhi_epi16(gx, gy);
        __m128i m2lo = _mm_madd_epi16(lo, lo), m2hi = _mm_madd_epi16(hi, hi);
        msum = _mm_add_pd(msum, _mm_sqrt_pd(_mm_cvtepi32_pd(m2lo)));
        msum = _mm_add_pd(msum, _mm_sqrt_pd(_mm_cvtepi32_pd(_mm_unpackhi_epi64(m2lo, m2lo))));
        msum = _mm_add_pd(msum, _mm_sqrt_pd(_mm_cvtepi32_pd(m2hi)));
        msum = _mm_add_pd(msum, _mm_sqrt_pd(_mm_cvtepi32_pd(_mm_unpackhi_epi64(m2hi, m2hi))));
        l1 = _mm_add_epi32(l1, _mm_madd_epi16(lap, one));
        l2 = _mm_add_epi32(l2, _mm_madd_epi16(lap, lap)); /* <= 2·1020^2 per lane and block */
        if (++it == 512) { /* 512 blocks keep the 32-bit lanes below 2^31 */
            flush32(&l1, s1);
            flush32(&l2, s2);
            it = 0;
        }
    }
    flush32(&l1, s1);
    flush32(&l2, s2);
    double lane[2];
    _mm_storeu_pd(lane, msum);
    *mag += lane[0] + lane[1];
    return x;
}
#endif

void feat_measures_compute(const uint8_t *gray, int w, int h, size_t stride,
                           struct feat_measures *m)
{
    uint64_t hist[4][256];
    double mag_sum = 0.0;
    int64_t lap_sum = 0, lap_sq = 0;
    memset(hist, 0, sizeof hist);

    for (int y = 0; y < h; y++) {
        const uint8_t *a = gray + (size_t)refl101(y - 1, h) * stride;
        const uint8_t *b = gray + (size_t)y * stride;
        const uint8_t *c = gray + (size_t)refl101(y + 1, h) * stride;
        double row_mag = 0.0;
        int64_t row_s1 = 0, row_s2 = 0;
        /* four interleaved histograms: consecutive equal pixels do not wait on each other */
        int x = 0;
        for (; x + 4 <= w; x += 4) {
            hist[0][b[x]]++;
            hist[1][b[x + 1]]++;
            hist[2][b[x + 2]]++;
            hist[3][b[x + 3]]++;
        }
        for (; x < w; x++) hist[0][b[x]]++;
        pixel(a, b, c, refl101(-1, w), 0, refl101(1, w), &row_mag, &row_s1, &row_s2);
        x = 1;
#if defined(__SSE2__)
        x = row_sse2(a, b, c, w, &row_mag, &row_s1, &row_s2);
#endif
        for (; x < w - 1; x++) pixel(a, b, c, x - 1, x, x + 1, &row_mag, &row_s1, &row_s2);
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
        uint64_t cnt = hist[0][i] + hist[1][i] + hist[2][i] + hist[3][i];
        if (!cnt) continue;
        double p = (double)cnt / n;
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
