/* image.h — image bytes (JPEG, PNG, WebP) to complexity features, and the downscale +
 * re-encode the gateway applies to images it sends smaller (FY_IMG_DOWNSCALE).
 * Untrusted input: the header is probed and checked against max_bytes/max_pixels before
 * any pixel buffer is allocated. Luma ("gray") is defined as OpenCV's IMREAD_GRAYSCALE
 * produces it, so features agree with scripts/opencv_features.py:
 *   JPEG  the decoder's own gray output (libjpeg-turbo: the Y component of YCbCr)
 *   PNG   libpng's rgb_to_gray(0.299, 0.587): (9797 R + 19234 G + 3737 B) >> 15 for
 *         8-bit files without colour-space chunks; through linear light (libpng's gamma
 *         tables) when the file has gAMA/sRGB/iCCP; 16-bit files converted at 16 bits,
 *         then the high byte kept; alpha ignored, palette expanded — the libpng calls
 *         OpenCV makes
 *   WebP  decoded to RGB, then (9798 R + 19235 G + 3735 B + 16384) >> 15 (BT.601 in
 *         the 15-bit fixed point of OpenCV 4.6's cvtColor RGB2GRAY)
 *   CMYK/YCCK JPEG: inverted (Adobe) CMYK to RGB as R = C·K/255 ..., then as WebP
 * Thread-safe: no global state. */
#ifndef FEAT_IMAGE_H
#define FEAT_IMAGE_H
#include <stddef.h>
#include <stdint.h>

#include "ferry.h"
#include "feat/calib.h"

#define FEAT_IMAGE_ANALYSIS_SIZE  512                 /* default longer side, px */
#define FEAT_IMAGE_MAX_BYTES      ((size_t)32 << 20)  /* default encoded-size limit */
#define FEAT_IMAGE_MAX_PIXELS     ((uint64_t)40000000) /* default width*height limit */
#define FEAT_IMAGE_MAX_SIDE       65500               /* hard limit per side, px */

struct feat_image_opts {
    int analysis_size;             /* longer side in px, default 512, 0 = full res */
    const struct feat_calib *calib; /* NULL = shipped default */
    size_t max_bytes;              /* encoded bytes; 0 = no limit */
    uint64_t max_pixels;           /* width*height; 0 = no limit */
};

void feat_image_opts_default(struct feat_image_opts *o);

/* Format from the magic bytes only (FY_FMT_UNKNOWN when none matches). */
enum fy_img_format feat_image_sniff(const uint8_t *p, size_t n);
const char *feat_image_format_name(enum fy_img_format f); /* "jpeg" "png" "webp" "unknown" */

/* Header only, no pixel allocation: format and size. Returns 0, or -1 with a message
 * naming the format and the problem in err. Does not apply limits (see analyze). */
int feat_image_probe(const uint8_t *p, size_t n, enum fy_img_format *fmt, int *w, int *h,
                     char *err, size_t errlen);

/* Decodes to luma at the analysis size (longer side <= o->analysis_size by area
 * averaging; scaled JPEG/WebP decoding when much larger) and fills every field of
 * *out, tokens[] included. o may be NULL (defaults). Returns 0, or -1 with err set
 * ("png: ...", "jpeg: truncated data", "image: 100000x100000 exceeds the pixel
 * limit ..."); *out is zeroed on error. */
int feat_image_analyze(const uint8_t *p, size_t n, const struct feat_image_opts *o,
                       struct fy_image_features *out, char *err, size_t errlen);

/* Decodes any supported format, area-resizes so the longer side <= max_side (never
 * enlarges), re-encodes as JPEG at quality (1..100, 4:2:0). Transparent PNG/WebP
 * pixels are composited over white. *out is malloc'd (caller frees). Applies the
 * default byte and pixel limits. Returns 0 or -1 with err set. */
int feat_image_downscale_jpeg(const uint8_t *p, size_t n, int max_side, int quality,
                              uint8_t **out, size_t *out_len, char *err, size_t errlen);

/* Luma at the analysis size, for tools and tests: *gray is malloc'd w*h bytes.
 * analysis_size 0 = full resolution. Limits as in o (NULL = defaults). */
int feat_image_gray(const uint8_t *p, size_t n, const struct feat_image_opts *o,
                    uint8_t **gray, int *w, int *h, char *err, size_t errlen);

#endif
