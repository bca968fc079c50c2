/* fuzz-image.c — libFuzzer target for the image path: sniff, probe, decode (JPEG, PNG,
 * WebP, chosen by the magic bytes) at the default analysis size and at full
 * resolution, and the downscale + JPEG re-encode. Seeded with ../shared/images by
 * scripts/fuzz-run.sh. Pixel limit lowered so one input stays fast. */
#include <stdint.h>
#include <stdlib.h>

#include "feat/image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct feat_image_opts o;
    struct fy_image_features f;
    enum fy_img_format fmt;
    int w, h;
    char err[256];
    feat_image_opts_default(&o);
    o.max_pixels = 4u << 20;
    (void)feat_image_sniff(data, size);
    if (feat_image_probe(data, size, &fmt, &w, &h, err, sizeof err) != 0) return 0;
    (void)feat_image_analyze(data, size, &o, &f, err, sizeof err);
    o.analysis_size = 0;
    o.max_pixels = 1u << 20;
    (void)feat_image_analyze(data, size, &o, &f, err, sizeof err);
    if ((uint64_t)w * (uint64_t)h <= (1u << 20)) {
        uint8_t *out = NULL;
        size_t n = 0;
        if (feat_image_downscale_jpeg(data, size, 64, 75, &out, &n, err, sizeof err) == 0)
            free(out);
    }
    return 0;
}
