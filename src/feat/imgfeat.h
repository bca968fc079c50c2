/* imgfeat.h — the measures behind MoA-Off's image complexity, on an 8-bit luma image,
 * and the MoA-Off scores from them (DESIGN.md; docs/features.md "Image features").
 * Borders are reflect-101 (OpenCV's BORDER_REFLECT_101: ... 2 1 | 0 1 2 ... n-1 | n-2 ...). */
#ifndef FEAT_IMGFEAT_H
#define FEAT_IMGFEAT_H
#include <stddef.h>
#include <stdint.h>

#include "ferry.h"
#include "feat/calib.h"

struct feat_measures {
    double sobel_mean;     /* mean over pixels of sqrt(gx^2 + gy^2), 3x3 Sobel, gray levels */
    double entropy;        /* -sum p_i ln p_i over the 256-bin histogram, nats, in [0, ln 256] */
    double laplacian_var;  /* population variance of the 4-neighbour Laplacian, gray levels^2 */
};

/* Computes the three measures of a w×h luma image with rows `stride` bytes apart.
 * O(w·h), no allocation. Sobel and Laplacian sums are exact integers; only the square
 * root and the final divisions are floating point. w, h >= 1. */
void feat_measures_compute(const uint8_t *gray, int w, int h, size_t stride,
                           struct feat_measures *m);

/* MoA-Off scores into out->c_res .. c_img from the measures and the encoded size
 * (width×height as encoded, not the analysis size):
 *   C_res  = min(1, HW / (H0 W0))
 *   C_edge = clip((sobel_mean - P5) / (P95 - P5 + eps), 0, 1)
 *   C_ent  = H / ln 256
 *   C_lap  = clip((Var(lap) - P5) / (P95 - P5 + eps), 0, 1)
 *   c_img  = w_res C_res + w_edge C_edge + w_ent C_ent + w_lap C_lap
 * Also copies the measures into out. */
#define FEAT_SCORE_EPS 1e-9
void feat_scores(const struct feat_calib *c, int width, int height,
                 const struct feat_measures *m, struct fy_image_features *out);

#endif
