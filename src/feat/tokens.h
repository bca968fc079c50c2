/* tokens.h — visual-token estimates per model family (enum fy_vt_family, ferry.h).
 *   FY_VT_QWEN2VL: Qwen2-VL "smart resize": each side rounded to a multiple of 28 px,
 *                  total pixels kept within [4·28·28, 16384·28·28]; one token per
 *                  28×28 patch (14×14 ViT patches merged 2×2).
 *   FY_VT_LLAVA:   LLaVA-1.5 (CLIP ViT-L/14 at 336 px): always (336/14)^2 = 576.
 *   FY_VT_GENERIC: ferry's own rule for unknown encoders: shrink so the longer side is
 *                  at most 1024 px, then one token per started 32×32 patch (<= 1024).
 * Sources and derivations: docs/features.md "Visual tokens". */
#ifndef FEAT_TOKENS_H
#define FEAT_TOKENS_H
#include "ferry.h"

#define FEAT_QWEN2VL_PATCH      28
#define FEAT_QWEN2VL_MIN_PIXELS (4 * 28 * 28)
#define FEAT_QWEN2VL_MAX_PIXELS (16384 * 28 * 28)
#define FEAT_LLAVA15_TOKENS     576
#define FEAT_GENERIC_PATCH      32
#define FEAT_GENERIC_MAX_SIDE   1024

/* Qwen2-VL smart resize of a width×height image: the resized sides (multiples of 28).
 * Returns 0, or -1 when width or height is not positive. */
int feat_qwen2vl_resize(int width, int height, int *out_w, int *out_h);
/* Visual tokens for one image of width×height pixels; -1 for non-positive sizes or an
 * unknown family. */
int feat_visual_tokens(enum fy_vt_family fam, int width, int height);
/* Short name of a family ("qwen2vl", "llava", "generic"), or NULL. */
const char *feat_vt_family_name(enum fy_vt_family fam);

#endif
