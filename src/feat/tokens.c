/* tokens.c — visual-token estimates (tokens.h; docs/features.md "Visual tokens"). */
#include "feat/tokens.h"

#include <math.h>

/* Python's round(): halves go to the even neighbour (the Qwen2-VL resize rule is
 * written in Python, so round(2.5) == 2 there). */
static double round_half_even(double v)
{
    double r = nearbyint(v); /* default rounding mode is to-nearest-even */
    return r;
}

int feat_qwen2vl_resize(int width, int height, int *out_w, int *out_h)
{
    if (width <= 0 || height <= 0) return -1;
    const double f = FEAT_QWEN2VL_PATCH;
    double hh = height, ww = width;
    double h_bar = fmax(f, round_half_even(hh / f) * f);
    double w_bar = fmax(f, round_half_even(ww / f) * f);
    if (h_bar * w_bar > FEAT_QWEN2VL_MAX_PIXELS) {
        double beta = sqrt(hh * ww / FEAT_QWEN2VL_MAX_PIXELS);
        h_bar = fmax(f, floor(hh / beta / f) * f);
        w_bar = fmax(f, floor(ww / beta / f) * f);
    } else if (h_bar * w_bar < FEAT_QWEN2VL_MIN_PIXELS) {
        double beta = sqrt(FEAT_QWEN2VL_MIN_PIXELS / (hh * ww));
        h_bar = ceil(hh * beta / f) * f;
        w_bar = ceil(ww * beta / f) * f;
    }
    *out_w = (int)w_bar;
    *out_h = (int)h_bar;
    return 0;
}

int feat_visual_tokens(enum fy_vt_family fam, int width, int height)
{
    if (width <= 0 || height <= 0) return -1;
    switch (fam) {
    case FY_VT_QWEN2VL: {
        int rw, rh;
        if (feat_qwen2vl_resize(width, height, &rw, &rh) != 0) return -1;
        return (rw / FEAT_QWEN2VL_PATCH) * (rh / FEAT_QWEN2VL_PATCH);
    }
    case FY_VT_LLAVA:
        return FEAT_LLAVA15_TOKENS;
    case FY_VT_GENERIC: {
        double w = width, h = height, longer = fmax(w, h);
        if (longer > FEAT_GENERIC_MAX_SIDE) {
            double s = FEAT_GENERIC_MAX_SIDE / longer;
            w = fmax(1.0, round(w * s));
            h = fmax(1.0, round(h * s));
        }
        return (int)(ceil(w / FEAT_GENERIC_PATCH) * ceil(h / FEAT_GENERIC_PATCH));
    }
    default:
        return -1;
    }
}

const char *feat_vt_family_name(enum fy_vt_family fam)
{
    switch (fam) {
    case FY_VT_QWEN2VL: return "qwen2vl";
    case FY_VT_LLAVA: return "llava";
    case FY_VT_GENERIC: return "generic";
    default: return NULL;
    }
}
