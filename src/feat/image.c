/* image.c — sniffing, header probing, decoding to luma or RGB at a target size, the
 * feature pipeline and the JPEG re-encoder (image.h). Decoders are the Debian libraries
 * (libturbojpeg, libpng, libwebp); resizing is ferry's own exact integer area average. */
#include "feat/image.h"

#include <errno.h>
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <turbojpeg.h>
#include <webp/decode.h>

#include "feat/imgfeat.h"
#include "feat/tokens.h"

/* ==== limits, sniffing, probing ===================================================== */

void feat_image_opts_default(struct feat_image_opts *o)
{
    o->analysis_size = FEAT_IMAGE_ANALYSIS_SIZE;
    o->calib = NULL;
    o->max_bytes = FEAT_IMAGE_MAX_BYTES;
    o->max_pixels = FEAT_IMAGE_MAX_PIXELS;
}

static const uint8_t PNG_MAGIC[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

enum fy_img_format feat_image_sniff(const uint8_t *p, size_t n)
{
    if (n >= 3 && p[0] == 0xff && p[1] == 0xd8 && p[2] == 0xff) return FY_FMT_JPEG;
    if (n >= 8 && !memcmp(p, PNG_MAGIC, 8)) return FY_FMT_PNG;
    if (n >= 12 && !memcmp(p, "RIFF", 4) && !memcmp(p + 8, "WEBP", 4)) return FY_FMT_WEBP;
    return FY_FMT_UNKNOWN;
}

const char *feat_image_format_name(enum fy_img_format f)
{
    switch (f) {
    case FY_FMT_JPEG: return "jpeg";
    case FY_FMT_PNG: return "png";
    case FY_FMT_WEBP: return "webp";
    default: return "unknown";
    }
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Walks the JPEG markers up to the first frame header (SOFn); bounded by n. */
static int probe_jpeg(const uint8_t *p, size_t n, int *w, int *h, char *err, size_t errlen)
{
    size_t i = 2; /* after SOI */
    for (;;) {
        while (i < n && p[i] != 0xff) i++; /* tolerate garbage between segments */
        while (i < n && p[i] == 0xff) i++; /* fill bytes */
        if (i >= n) {
            snprintf(err, errlen, "jpeg: truncated header (no frame header before byte %zu)", n);
            return -1;
        }
        uint8_t m = p[i++];
        if (m == 0xd9 || m == 0xda) {
            snprintf(err, errlen, "jpeg: no frame header (SOF) before %s at byte %zu",
                     m == 0xd9 ? "end of image" : "scan data", i - 2);
            return -1;
        }
        if (m == 0x01 || (m >= 0xd0 && m <= 0xd8)) continue; /* no length field */
        if (i + 2 > n) {
            snprintf(err, errlen, "jpeg: truncated marker segment at byte %zu", i - 2);
            return -1;
        }
        size_t len = (size_t)p[i] << 8 | p[i + 1];
        if (len < 2) {
            snprintf(err, errlen, "jpeg: bad segment length %zu at byte %zu", len, i);
            return -1;
        }
        int sof = m >= 0xc0 && m <= 0xcf && m != 0xc4 && m != 0xc8 && m != 0xcc;
        if (sof) {
            if (len < 8 || i + 7 > n) {
                snprintf(err, errlen, "jpeg: truncated frame header at byte %zu", i - 2);
                return -1;
            }
            *h = p[i + 3] << 8 | p[i + 4];
            *w = p[i + 5] << 8 | p[i + 6];
            if (*w == 0 || *h == 0) {
                snprintf(err, errlen, "jpeg: frame header gives a %dx%d image", *w, *h);
                return -1;
            }
            return 0;
        }
        i += len;
    }
}

static int probe_png(const uint8_t *p, size_t n, int *w, int *h, char *err, size_t errlen)
{
    if (n < 33) {
        snprintf(err, errlen, "png: truncated header (%zu bytes, IHDR needs 33)", n);
        return -1;
    }
    if (be32(p + 8) != 13 || memcmp(p + 12, "IHDR", 4)) {
        snprintf(err, errlen, "png: first chunk is not a 13-byte IHDR");
        return -1;
    }
    uint32_t pw = be32(p + 16), ph = be32(p + 20);
    int depth = p[24], ct = p[25];
    int ok_depth = 0;
    switch (ct) {
    case 0: ok_depth = depth == 1 || depth == 2 || depth == 4 || depth == 8 || depth == 16; break;
    case 3: ok_depth = depth == 1 || depth == 2 || depth == 4 || depth == 8; break;
    case 2: case 4: case 6: ok_depth = depth == 8 || depth == 16; break;
    default: break;
    }
    if (!ok_depth) {
        snprintf(err, errlen, "png: invalid colour type %d with bit depth %d", ct, depth);
        return -1;
    }
    if (pw == 0 || ph == 0 || pw > 0x7fffffffu || ph > 0x7fffffffu) {
        snprintf(err, errlen, "png: invalid size %ux%u in IHDR", pw, ph);
        return -1;
    }
    *w = (int)pw;
    *h = (int)ph;
    return 0;
}

int feat_image_probe(const uint8_t *p, size_t n, enum fy_img_format *fmt, int *w, int *h,
                     char *err, size_t errlen)
{
    *fmt = FY_FMT_UNKNOWN;
    *w = *h = 0;
    if (n == 0) {
        snprintf(err, errlen, "image: empty (0 bytes)");
        return -1;
    }
    enum fy_img_format f = feat_image_sniff(p, n);
    int rc = -1;
    switch (f) {
    case FY_FMT_JPEG: rc = probe_jpeg(p, n, w, h, err, errlen); break;
    case FY_FMT_PNG: rc = probe_png(p, n, w, h, err, errlen); break;
    case FY_FMT_WEBP:
        if (WebPGetInfo(p, n, w, h) && *w > 0 && *h > 0) rc = 0;
        else snprintf(err, errlen, "webp: invalid or truncated header");
        break;
    default: {
        char hex[40] = "";
        for (size_t i = 0; i < n && i < 8; i++)
            snprintf(hex + 3 * i, sizeof hex - 3 * i, "%02x ", p[i]);
        if (hex[0]) hex[strlen(hex) - 1] = 0;
        snprintf(err, errlen, "image: unknown format (not JPEG, PNG or WebP; starts %s)", hex);
        return -1;
    }
    }
    if (rc != 0) {
        *w = *h = 0;
        return -1;
    }
    *fmt = f;
    return 0;
}

static int check_limits(size_t n, int w, int h, size_t max_bytes, uint64_t max_pixels,
                        char *err, size_t errlen)
{
    uint64_t px = (uint64_t)w * (uint64_t)h;
    if (max_bytes && n > max_bytes) {
        snprintf(err, errlen, "image: %zu bytes exceeds the limit of %zu bytes", n, max_bytes);
        return -1;
    }
    if (max_pixels && px > max_pixels) {
        snprintf(err, errlen, "image: %dx%d (%llu pixels) exceeds the pixel limit of %llu", w, h,
                 (unsigned long long)px, (unsigned long long)max_pixels);
        return -1;
    }
    if (w > FEAT_IMAGE_MAX_SIDE || h > FEAT_IMAGE_MAX_SIDE) {
        snprintf(err, errlen, "image: %dx%d has a side above the limit of %d px", w, h,
                 FEAT_IMAGE_MAX_SIDE);
        return -1;
    }
    return 0;
}

/* Size after fitting the longer side into max_side (never enlarging); max_side 0 = keep. */
static void fit_size(int w, int h, int max_side, int *tw, int *th)
{
    int longer = w > h ? w : h;
    if (max_side <= 0 || longer <= max_side) {
        *tw = w;
        *th = h;
        return;
    }
    /* rounded, in integers: t = (s * max_side + longer/2) / longer, at least 1 */
    *tw = (int)(((int64_t)w * max_side + longer / 2) / longer);
    *th = (int)(((int64_t)h * max_side + longer / 2) / longer);
    if (*tw < 1) *tw = 1;
    if (*th < 1) *th = 1;
}

/* ==== exact integer area averaging, fed row by row =================================== */

/* Output pixel (k) covers input [k·iw/ow, (k+1)·iw/ow). In units of 1/ow input pixels
 * every boundary is an integer, so each input column x gives weight ow to output
 * column x·ow/iw, split in two integer parts when it straddles a boundary. The same
 * holds for rows; an output value is Σ wx·wy·v / (iw·ih), rounded half up. */
struct area {
    int iw, ih, ow, oh, nch;
    int identity;          /* same size: rows are copied */
    int in_row, cur;       /* next input row; output row held in acc0 */
    int *xk;               /* per input column: first output column */
    uint32_t *xw;          /* per input column: weight to xk (rest to xk+1) */
    uint32_t *hrow;        /* horizontal sums of one input row, ow*nch */
    uint64_t *acc0, *acc1; /* vertical sums of output rows cur and cur+1 */
    uint8_t *out;          /* ow*oh*nch, owned by the caller */
};

static void area_fini(struct area *a)
{
    free(a->xk);
    free(a->xw);
    free(a->hrow);
    free(a->acc0);
    free(a->acc1);
    memset(a, 0, sizeof *a);
}

static int area_init(struct area *a, int iw, int ih, int ow, int oh, int nch, uint8_t *out)
{
    memset(a, 0, sizeof *a);
    a->iw = iw, a->ih = ih, a->ow = ow, a->oh = oh, a->nch = nch, a->out = out;
    a->identity = iw == ow && ih == oh;
    if (a->identity) return 0;
    a->xk = malloc(sizeof *a->xk * (size_t)iw);
    a->xw = malloc(sizeof *a->xw * (size_t)iw);
    a->hrow = malloc(sizeof *a->hrow * (size_t)ow * nch);
    a->acc0 = calloc((size_t)ow * nch, sizeof *a->acc0);
    a->acc1 = calloc((size_t)ow * nch, sizeof *a->acc1);
    if (!a->xk || !a->xw || !a->hrow || !a->acc0 || !a->acc1) {
        area_fini(a);
        return -1;
    }
    for (int x = 0; x < iw; x++) {
        int64_t start = (int64_t)x * ow;
        int k = (int)(start / iw);
        int64_t bound = (int64_t)(k + 1) * iw;
        a->xk[x] = k;
        a->xw[x] = start + ow <= bound ? (uint32_t)ow : (uint32_t)(bound - start);
    }
    return 0;
}

static void area_emit(struct area *a)
{
    size_t n = (size_t)a->ow * a->nch;
    uint64_t den = (uint64_t)a->iw * (uint64_t)a->ih;
    uint8_t *dst = a->out + (size_t)a->cur * n;
    for (size_t i = 0; i < n; i++) {
        uint64_t v = (a->acc0[i] + den / 2) / den;
        dst[i] = (uint8_t)(v > 255 ? 255 : v);
    }
    uint64_t *t = a->acc0;
    a->acc0 = a->acc1;
    a->acc1 = t;
    memset(a->acc1, 0, n * sizeof *a->acc1);
    a->cur++;
}

/* Takes the next input row (iw*nch bytes). */
static void area_push(struct area *a, const uint8_t *row)
{
    const int nch = a->nch, ow = a->ow;
    if (a->identity) {
        memcpy(a->out + (size_t)a->in_row++ * a->iw * nch, row, (size_t)a->iw * nch);
        return;
    }
    uint32_t *hr = a->hrow;
    memset(hr, 0, sizeof *hr * (size_t)ow * nch);
    for (int x = 0; x < a->iw; x++) {
        int k = a->xk[x];
        uint32_t w0 = a->xw[x], w1 = (uint32_t)ow - w0;
        const uint8_t *s = row + (size_t)x * nch;
        uint32_t *d = hr + (size_t)k * nch;
        for (int c = 0; c < nch; c++) d[c] += w0 * s[c];
        if (w1)
            for (int c = 0; c < nch; c++) d[nch + c] += w1 * s[c];
    }
    int64_t start = (int64_t)a->in_row * a->oh;
    int k = (int)(start / a->ih);
    int64_t bound = (int64_t)(k + 1) * a->ih;
    uint64_t w0 = start + a->oh <= bound ? (uint64_t)a->oh : (uint64_t)(bound - start);
    uint64_t w1 = (uint64_t)a->oh - w0;
    while (a->cur < k) area_emit(a);
    size_t n = (size_t)ow * nch;
    for (size_t i = 0; i < n; i++) a->acc0[i] += w0 * hr[i];
    if (w1)
        for (size_t i = 0; i < n; i++) a->acc1[i] += w1 * hr[i];
    a->in_row++;
}

static void area_finish(struct area *a)
{
    if (a->identity) return;
    while (a->cur < a->oh) area_emit(a);
}

/* ==== decoders: bytes -> nch-channel rows (1 = luma, 3 = RGB) at ow×oh ============= */

struct decode_job {
    const uint8_t *p;
    size_t n;
    int w, h;     /* encoded size (probed) */
    int ow, oh;   /* wanted size */
    int nch;      /* 1 luma, 3 RGB (alpha composited over white) */
    uint8_t *out; /* ow*oh*nch, allocated by decode() */
    char *err;
    size_t errlen;
};

/* ---- JPEG (libturbojpeg) ---- */

/* Scaled (DCT-domain) decoding stops at this multiple of the wanted size; the area
 * average does the rest. The reduced IDCT is a sharper low-pass than an area average,
 * so going all the way down changes the high-frequency measures (docs/features.md). */
#ifndef FEAT_JPEG_SCALE_MARGIN
#define FEAT_JPEG_SCALE_MARGIN 2
#endif

/* Luma of one RGB pixel with OpenCV 4.6's cvtColor RGB2GRAY arithmetic (BT.601 weights
 * 0.299/0.587/0.114 in 15-bit fixed point, 9798 + 19235 + 3735 = 32768, half up). */
static inline uint8_t luma15(unsigned r, unsigned g, unsigned b)
{
    return (uint8_t)((9798u * r + 19235u * g + 3735u * b + 16384u) >> 15);
}

/* CMYK/YCCK JPEGs (print workflows) arrive as inverted CMYK as Adobe writes it (255 = no
 * ink): R = C·K/255 etc., then luma. A plain conversion without colour management, as
 * OpenCV does; not checked against OpenCV (no CMYK image in the corpus). Rewrites
 * w*h 4-byte pixels in place as w*h nch-byte pixels. */
static void cmyk_rows(uint8_t *px, int w, int h, int nch)
{
    size_t n = (size_t)w * h;
    for (size_t i = 0; i < n; i++) {
        const uint8_t *s = px + 4 * i;
        unsigned k = s[3];
        unsigned r = (s[0] * k + 127) / 255, g = (s[1] * k + 127) / 255, b = (s[2] * k + 127) / 255;
        if (nch == 1) {
            px[i] = luma15(r, g, b);
        } else {
            px[3 * i] = (uint8_t)r, px[3 * i + 1] = (uint8_t)g, px[3 * i + 2] = (uint8_t)b;
        }
    }
}

static int decode_jpeg(struct decode_job *j)
{
    int rc = -1, sw = j->w, sh = j->h;
    uint8_t *full = NULL;
    struct area a = {0};
    tjhandle tj = tjInitDecompress();
    if (!tj) {
        snprintf(j->err, j->errlen, "jpeg: cannot create a decoder");
        return -1;
    }
    /* Scaled decoding: the smallest DCT scaling (1/8 .. 1) whose output still covers the
     * wanted size, so the area average works on at most about twice the target. */
    if (j->ow < j->w || j->oh < j->h) {
        int nsf = 0;
        tjscalingfactor *sf = tjGetScalingFactors(&nsf);
        for (int i = 0; sf && i < nsf; i++) {
            if (sf[i].num > sf[i].denom) continue;
            int tw = TJSCALED(j->w, sf[i]), th = TJSCALED(j->h, sf[i]);
            if (tw >= FEAT_JPEG_SCALE_MARGIN * j->ow && th >= FEAT_JPEG_SCALE_MARGIN * j->oh &&
                (int64_t)tw * th < (int64_t)sw * sh) {
                sw = tw;
                sh = th;
            }
        }
    }
    int hw, hh, subsamp, cs;
    if (tjDecompressHeader3(tj, j->p, (unsigned long)j->n, &hw, &hh, &subsamp, &cs) != 0) {
        snprintf(j->err, j->errlen, "jpeg: %s", tjGetErrorStr2(tj));
        goto cleanup;
    }
    if (hw != j->w || hh != j->h) { /* e.g. a second frame header with another size */
        snprintf(j->err, j->errlen, "jpeg: inconsistent frame headers (%dx%d, then %dx%d)", j->w,
                 j->h, hw, hh);
        goto cleanup;
    }
    int cmyk = cs == TJCS_CMYK || cs == TJCS_YCCK;
    int direct = sw == j->ow && sh == j->oh && !cmyk;
    int fch = cmyk ? 4 : j->nch;
    j->out = malloc((size_t)j->ow * j->oh * j->nch);
    if (!direct) full = malloc((size_t)sw * sh * fch);
    if (!j->out || (!direct && !full)) {
        snprintf(j->err, j->errlen, "jpeg: out of memory for %dx%d pixels", sw, sh);
        goto cleanup;
    }
    int pf = cmyk ? TJPF_CMYK : j->nch == 1 ? TJPF_GRAY : TJPF_RGB;
    if (tjDecompress2(tj, j->p, (unsigned long)j->n, direct ? j->out : full, sw, sw * fch, sh, pf,
                      TJFLAG_LIMITSCANS) != 0) {
        const char *msg = tjGetErrorStr2(tj);
        if (tjGetErrorCode(tj) == TJERR_FATAL) {
            snprintf(j->err, j->errlen, "jpeg: %s", msg);
            goto cleanup;
        }
        /* libjpeg fills the rest of a truncated image with gray and calls it a warning;
         * for features that would be silently wrong, so it is an error here. Two
         * warnings say so: "Premature end of JPEG file" (the file ends) and "Corrupt
         * JPEG data: premature end of data segment" (a marker comes before the frame
         * header's rows are complete, e.g. a header that claims more rows than the scan
         * holds). Only the first warning is reported by turbojpeg. */
        if (strstr(msg, "Premature end") || strstr(msg, "premature end")) {
            snprintf(j->err, j->errlen, "jpeg: truncated data (%s)", msg);
            goto cleanup;
        }
        /* "N extraneous bytes before marker": a few bytes of padding are common and
         * harmless; when the decoder skipped most of the file, the scan was not decoded
         * as written (e.g. a frame header with the wrong coding process) and the pixels
         * are noise. */
        unsigned long skipped = 0;
        if (sscanf(msg, "Corrupt JPEG data: %lu extraneous bytes", &skipped) == 1 &&
            skipped > j->n / 2) {
            snprintf(j->err, j->errlen, "jpeg: corrupt data (the decoder skipped %lu of %zu "
                     "bytes: %s)", skipped, j->n, msg);
            goto cleanup;
        }
        /* other warnings (e.g. a few extraneous bytes before a marker) keep the image */
    }
    if (cmyk) cmyk_rows(full, sw, sh, j->nch); /* in place, to nch channels */
    if (!direct) {
        if (area_init(&a, sw, sh, j->ow, j->oh, j->nch, j->out) != 0) {
            snprintf(j->err, j->errlen, "jpeg: out of memory");
            goto cleanup;
        }
        for (int y = 0; y < sh; y++) area_push(&a, full + (size_t)y * sw * j->nch);
        area_finish(&a);
    }
    rc = 0;
cleanup:
    area_fini(&a);
    free(full);
    if (rc != 0) {
        free(j->out);
        j->out = NULL;
    }
    tjDestroy(tj);
    return rc;
}

/* ---- PNG (libpng) ---- */

#define PNG_CHUNK_MALLOC_MAX (8u << 20) /* bounds iCCP/zTXt/... decompression */

struct png_io {
    const uint8_t *p;
    size_t n, pos;
    jmp_buf jb;
    char msg[160];
    /* buffers freed after a longjmp, so they live here, not in locals */
    uint8_t *row, *full;
    struct area a;
};

static void png_err_fn(png_structp png, png_const_charp msg)
{
    struct png_io *io = png_get_error_ptr(png);
    snprintf(io->msg, sizeof io->msg, "%s", msg);
    longjmp(io->jb, 1);
}

static void png_warn_fn(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg; /* warnings (e.g. a bad ancillary chunk) do not change the pixels */
}

static void png_read_fn(png_structp png, png_bytep dst, size_t len)
{
    struct png_io *io = png_get_io_ptr(png);
    if (len > io->n - io->pos) png_error(png, "truncated data (read past the end)");
    memcpy(dst, io->p + io->pos, len);
    io->pos += len;
}

/* Composites RGBA over white into RGB, in place (dst may alias src). */
static void rgba_over_white(const uint8_t *src, uint8_t *dst, int w)
{
    for (int x = 0; x < w; x++) {
        unsigned al = src[4 * x + 3];
        for (int c = 0; c < 3; c++)
            dst[3 * x + c] = (uint8_t)((src[4 * x + c] * al + 255u * (255u - al) + 127u) / 255u);
    }
}

/* Everything libpng may longjmp out of; returns 0 or -1 with io->msg set. No local
 * of this function is used after a longjmp. */
static int png_body(png_structp png, png_infop info, struct png_io *io, struct decode_job *j)
{
    if (setjmp(io->jb)) return -1;
    png_set_read_fn(png, io, png_read_fn);
    png_set_user_limits(png, FEAT_IMAGE_MAX_SIDE, FEAT_IMAGE_MAX_SIDE);
    png_set_chunk_malloc_max(png, PNG_CHUNK_MALLOC_MAX);
    png_read_info(png, info);
    int ct = png_get_color_type(png, info), depth = png_get_bit_depth(png, info);
    if ((int)png_get_image_width(png, info) != j->w || (int)png_get_image_height(png, info) != j->h)
        png_error(png, "IHDR changed between probe and decode");
    /* The transforms OpenCV's imread(IMREAD_GRAYSCALE) asks libpng for, so the luma is
     * the same: 16 -> 8 bits by the high byte, alpha dropped, palette expanded, then
     * 0.299 R + 0.587 G + 0.114 B in libpng's 15-bit fixed point. */
    if (depth == 16) png_set_strip_16(png);
    if (j->nch == 1) png_set_strip_alpha(png);
    if (ct == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (!(ct & PNG_COLOR_MASK_COLOR) && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (j->nch == 1) {
        png_set_rgb_to_gray(png, 1, 0.299, 0.587);
    } else {
        png_set_gray_to_rgb(png);
        png_set_tRNS_to_alpha(png);
        png_set_add_alpha(png, 0xff, PNG_FILLER_AFTER);
    }
    int passes = png_set_interlace_handling(png);
    png_read_update_info(png, info);
    int inch = j->nch == 1 ? 1 : 4;
    size_t rowbytes = png_get_rowbytes(png, info);
    if (rowbytes != (size_t)j->w * inch || png_get_channels(png, info) != inch)
        png_error(png, "unexpected row layout after transforms");
    j->out = malloc((size_t)j->ow * j->oh * j->nch);
    if (!j->out) png_error(png, "out of memory");
    if (area_init(&io->a, j->w, j->h, j->ow, j->oh, j->nch, j->out) != 0)
        png_error(png, "out of memory");
    if (passes > 1) {
        /* Interlaced: every pass touches the whole image, so it is decoded in full. */
        io->full = malloc(rowbytes * (size_t)j->h);
        if (!io->full) png_error(png, "out of memory");
        for (int pass = 0; pass < passes; pass++)
            for (int y = 0; y < j->h; y++) png_read_row(png, io->full + rowbytes * y, NULL);
        for (int y = 0; y < j->h; y++) {
            uint8_t *r = io->full + rowbytes * y;
            if (inch == 4) rgba_over_white(r, r, j->w);
            area_push(&io->a, r);
        }
    } else {
        io->row = malloc(rowbytes);
        if (!io->row) png_error(png, "out of memory");
        for (int y = 0; y < j->h; y++) {
            png_read_row(png, io->row, NULL);
            if (inch == 4) rgba_over_white(io->row, io->row, j->w);
            area_push(&io->a, io->row);
        }
    }
    area_finish(&io->a);
    return 0;
}

static int decode_png(struct decode_job *j)
{
    png_structp png = NULL;
    png_infop info = NULL;
    struct png_io *io = calloc(1, sizeof *io);
    int rc = -1;
    if (!io) {
        snprintf(j->err, j->errlen, "png: out of memory");
        return -1;
    }
    io->p = j->p;
    io->n = j->n;
    png = png_create_read_struct(PNG_LIBPNG_VER_STRING, io, png_err_fn, png_warn_fn);
    if (png) info = png_create_info_struct(png);
    if (!png || !info) {
        snprintf(j->err, j->errlen, "png: cannot create a decoder");
        goto cleanup;
    }
    rc = png_body(png, info, io, j);
    if (rc != 0) snprintf(j->err, j->errlen, "png: %s", io->msg);
cleanup:
    if (png) png_destroy_read_struct(&png, info ? &info : NULL, NULL);
    area_fini(&io->a);
    free(io->row);
    free(io->full);
    free(io);
    if (rc != 0) {
        free(j->out);
        j->out = NULL;
    }
    return rc;
}

/* ---- WebP (libwebp) ---- */

static const char *webp_status(VP8StatusCode s)
{
    switch (s) {
    case VP8_STATUS_OUT_OF_MEMORY: return "out of memory";
    case VP8_STATUS_INVALID_PARAM: return "invalid parameter";
    case VP8_STATUS_BITSTREAM_ERROR: return "corrupt bitstream";
    case VP8_STATUS_UNSUPPORTED_FEATURE: return "unsupported feature";
    case VP8_STATUS_SUSPENDED: return "suspended";
    case VP8_STATUS_USER_ABORT: return "aborted";
    case VP8_STATUS_NOT_ENOUGH_DATA: return "truncated data";
    default: return "error";
    }
}

static int decode_webp(struct decode_job *j)
{
    WebPDecoderConfig cfg;
    uint8_t *rgb = NULL;
    int rc = -1;
    if (!WebPInitDecoderConfig(&cfg)) {
        snprintf(j->err, j->errlen, "webp: library version mismatch");
        return -1;
    }
    VP8StatusCode st = WebPGetFeatures(j->p, j->n, &cfg.input);
    if (st != VP8_STATUS_OK) {
        snprintf(j->err, j->errlen, "webp: %s", webp_status(st));
        return -1;
    }
    if (cfg.input.width != j->w || cfg.input.height != j->h) {
        snprintf(j->err, j->errlen, "webp: inconsistent headers (%dx%d, then %dx%d)", j->w, j->h,
                 cfg.input.width, cfg.input.height);
        return -1;
    }
    if (cfg.input.has_animation) {
        snprintf(j->err, j->errlen, "webp: animated WebP is not supported");
        return -1;
    }
    /* libwebp's own rescaler (area averaging when shrinking) goes straight to the
     * wanted size; luma is computed after, on RGB, as OpenCV does. */
    int alpha = cfg.input.has_alpha && j->nch == 3;
    int inch = alpha ? 4 : 3;
    size_t stride = (size_t)j->ow * inch;
    rgb = malloc(stride * j->oh);
    if (!rgb) {
        snprintf(j->err, j->errlen, "webp: out of memory for %dx%d pixels", j->ow, j->oh);
        goto cleanup;
    }
    if (j->ow != j->w || j->oh != j->h) {
        cfg.options.use_scaling = 1;
        cfg.options.scaled_width = j->ow;
        cfg.options.scaled_height = j->oh;
    }
    cfg.output.colorspace = alpha ? MODE_RGBA : MODE_RGB;
    cfg.output.is_external_memory = 1;
    cfg.output.u.RGBA.rgba = rgb;
    cfg.output.u.RGBA.stride = (int)stride;
    cfg.output.u.RGBA.size = stride * j->oh;
    st = WebPDecode(j->p, j->n, &cfg);
    if (st != VP8_STATUS_OK) {
        snprintf(j->err, j->errlen, "webp: %s", webp_status(st));
        goto cleanup;
    }
    size_t npx = (size_t)j->ow * j->oh;
    j->out = malloc(npx * j->nch);
    if (!j->out) {
        snprintf(j->err, j->errlen, "webp: out of memory");
        goto cleanup;
    }
    if (j->nch == 1) {
        for (size_t i = 0; i < npx; i++) {
            const uint8_t *s = rgb + 3 * i;
            j->out[i] = luma15(s[0], s[1], s[2]);
        }
    } else if (alpha) {
        for (int y = 0; y < j->oh; y++)
            rgba_over_white(rgb + stride * y, j->out + (size_t)y * j->ow * 3, j->ow);
    } else {
        memcpy(j->out, rgb, npx * 3);
    }
    rc = 0;
cleanup:
    WebPFreeDecBuffer(&cfg.output);
    free(rgb);
    return rc;
}

/* Probes, checks limits, decodes to nch channels with the longer side <= max_side. */
static int decode(const uint8_t *p, size_t n, size_t max_bytes, uint64_t max_pixels,
                  int max_side, int nch, enum fy_img_format *fmt, int *w, int *h,
                  uint8_t **out, int *ow, int *oh, char *err, size_t errlen)
{
    struct decode_job j = {.p = p, .n = n, .nch = nch, .err = err, .errlen = errlen};
    *out = NULL;
    if (feat_image_probe(p, n, fmt, &j.w, &j.h, err, errlen) != 0) return -1;
    if (check_limits(n, j.w, j.h, max_bytes, max_pixels, err, errlen) != 0) return -1;
    fit_size(j.w, j.h, max_side, &j.ow, &j.oh);
    int rc = *fmt == FY_FMT_JPEG  ? decode_jpeg(&j)
             : *fmt == FY_FMT_PNG ? decode_png(&j)
                                  : decode_webp(&j);
    if (rc != 0) return -1;
    *w = j.w, *h = j.h, *ow = j.ow, *oh = j.oh;
    *out = j.out;
    return 0;
}

/* ==== public pipeline ================================================================ */

int feat_image_gray(const uint8_t *p, size_t n, const struct feat_image_opts *o,
                    uint8_t **gray, int *w, int *h, char *err, size_t errlen)
{
    struct feat_image_opts d;
    if (!o) feat_image_opts_default(&d), o = &d;
    enum fy_img_format fmt;
    int ew, eh;
    return decode(p, n, o->max_bytes, o->max_pixels, o->analysis_size, 1, &fmt, &ew, &eh, gray,
                  w, h, err, errlen);
}

int feat_image_analyze(const uint8_t *p, size_t n, const struct feat_image_opts *o,
                       struct fy_image_features *out, char *err, size_t errlen)
{
    struct feat_image_opts d;
    struct feat_measures m;
    uint8_t *gray = NULL;
    int w, h, aw, ah;
    enum fy_img_format fmt;
    memset(out, 0, sizeof *out);
    if (!o) feat_image_opts_default(&d), o = &d;
    if (o->analysis_size < 0) {
        snprintf(err, errlen, "image: analysis size %d is negative", o->analysis_size);
        return -1;
    }
    if (decode(p, n, o->max_bytes, o->max_pixels, o->analysis_size, 1, &fmt, &w, &h, &gray, &aw,
               &ah, err, errlen) != 0)
        return -1;
    feat_measures_compute(gray, aw, ah, (size_t)aw, &m);
    free(gray);
    out->format = fmt;
    out->width = w;
    out->height = h;
    out->bytes = n;
    feat_scores(o->calib ? o->calib : feat_calib_default(), w, h, &m, out);
    for (int f = 0; f < FY_VT__N; f++) out->tokens[f] = feat_visual_tokens(f, w, h);
    return 0;
}

int feat_image_downscale_jpeg(const uint8_t *p, size_t n, int max_side, int quality,
                              uint8_t **out, size_t *out_len, char *err, size_t errlen)
{
    uint8_t *rgb = NULL, *jpg = NULL;
    int w, h, ow, oh, rc = -1;
    enum fy_img_format fmt;
    tjhandle tj = NULL;
    *out = NULL;
    *out_len = 0;
    if (max_side < 1 || quality < 1 || quality > 100) {
        snprintf(err, errlen, "downscale: need max_side >= 1 and quality 1..100 (got %d, %d)",
                 max_side, quality);
        return -1;
    }
    if (decode(p, n, FEAT_IMAGE_MAX_BYTES, FEAT_IMAGE_MAX_PIXELS, max_side, 3, &fmt, &w, &h, &rgb,
               &ow, &oh, err, errlen) != 0)
        return -1;
    unsigned long cap = tjBufSize(ow, oh, TJSAMP_420), len = cap;
    tj = tjInitCompress();
    jpg = cap ? malloc(cap) : NULL;
    if (!tj || !jpg) {
        snprintf(err, errlen, "downscale: cannot create a JPEG encoder");
        goto cleanup;
    }
    if (tjCompress2(tj, rgb, ow, 0, oh, TJPF_RGB, &jpg, &len, TJSAMP_420, quality,
                    TJFLAG_NOREALLOC) != 0) {
        snprintf(err, errlen, "downscale: jpeg encoder: %s", tjGetErrorStr2(tj));
        goto cleanup;
    }
    uint8_t *shrunk = realloc(jpg, len);
    *out = shrunk ? shrunk : jpg;
    *out_len = len;
    jpg = NULL;
    rc = 0;
cleanup:
    if (tj) tjDestroy(tj);
    free(jpg);
    free(rgb);
    return rc;
}
