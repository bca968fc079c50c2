/* test-feat-image.c — image features (src/feat/image.c, imgfeat.c, calib.c, tokens.c).
 * The agreement test compares ferry at full resolution with OpenCV 4.6
 * (data/oracle/opencv_features.csv, written by scripts/opencv_features.py). ferry's luma
 * is meant to be bit-identical to cv2.imread(IMREAD_GRAYSCALE) (same libjpeg-turbo,
 * libpng transforms, OpenCV's fixed-point RGB->gray for WebP), and the Sobel and
 * Laplacian sums are exact integers, so the only differences left are the order of
 * floating-point additions (numpy sums pairwise, ferry row by row): ~1e-14 relative.
 * The tolerance, 1e-9 relative, is five orders above that and far below any change a
 * wrong border, kernel or luma weight would cause (those move values by > 1e-4). */
#include <dirent.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <turbojpeg.h>
#include <unistd.h>
#include <webp/encode.h>

#include "feat/calib.h"
#include "feat/image.h"
#include "feat/imgfeat.h"
#include "feat/tokens.h"
#include "test.h"
#include "util/file.h"

/* ---- helpers ---------------------------------------------------------------------- */

static uint8_t *load_shared(const char *name, size_t *n)
{
    char path[1024], err[256];
    uint8_t *p;
    snprintf(path, sizeof path, "%s/images/%s", test_shared_dir(), name);
    if (util_read_file(path, 0, &p, n, err, sizeof err) != 0) {
        fprintf(stderr, "  %s\n", err);
        return NULL;
    }
    return p;
}

/* Path of the repository's data folder (tests run from the repo root). */
static const char *repo_file(const char *rel)
{
    static char path[1024];
    snprintf(path, sizeof path, "%s", rel);
    return path;
}

static double rel_diff(double a, double b)
{
    double d = fabs(a - b), s = fmax(fabs(a), fabs(b));
    return s > 0 ? d / s : d;
}

/* Encodes w×h pixels of `ch` channels (1 gray, 3 RGB, 4 RGBA) as PNG in memory. */
static uint8_t *make_png(const uint8_t *px, int w, int h, int ch, size_t *n)
{
    png_image im;
    memset(&im, 0, sizeof im);
    im.version = PNG_IMAGE_VERSION;
    im.width = (png_uint_32)w;
    im.height = (png_uint_32)h;
    im.format = ch == 1 ? PNG_FORMAT_GRAY : ch == 3 ? PNG_FORMAT_RGB : PNG_FORMAT_RGBA;
    png_alloc_size_t size = 0;
    if (!png_image_write_to_memory(&im, NULL, &size, 0, px, 0, NULL)) return NULL;
    uint8_t *out = malloc(size);
    if (!out || !png_image_write_to_memory(&im, out, &size, 0, px, 0, NULL)) {
        free(out);
        return NULL;
    }
    *n = size;
    return out;
}

static uint8_t *make_jpeg(const uint8_t *rgb, int w, int h, size_t *n)
{
    tjhandle tj = tjInitCompress();
    unsigned char *buf = NULL;
    unsigned long len = 0;
    uint8_t *out = NULL;
    if (tj && tjCompress2(tj, rgb, w, 0, h, TJPF_RGB, &buf, &len, TJSAMP_420, 90, 0) == 0) {
        out = malloc(len);
        if (out) memcpy(out, buf, len), *n = len;
    }
    tjFree(buf);
    if (tj) tjDestroy(tj);
    return out;
}

static uint8_t *make_webp(const uint8_t *rgb, int w, int h, size_t *n)
{
    uint8_t *buf = NULL;
    size_t len = WebPEncodeLosslessRGB(rgb, w, h, w * 3, &buf);
    uint8_t *out = len ? malloc(len) : NULL;
    if (out) memcpy(out, buf, len), *n = len;
    WebPFree(buf);
    return out;
}

static int analyze(const uint8_t *p, size_t n, int analysis, struct fy_image_features *f,
                   char *err, size_t errlen)
{
    struct feat_image_opts o;
    feat_image_opts_default(&o);
    o.analysis_size = analysis;
    return feat_image_analyze(p, n, &o, f, err, errlen);
}

/* ---- agreement with OpenCV -------------------------------------------------------- */

TEST(opencv_oracle_agreement_full_resolution)
{
    FILE *f = fopen(repo_file("data/oracle/opencv_features.csv"), "r");
    CHECK(f != NULL);
    char line[512];
    int rows = 0;
    double worst_s = 0, worst_e = 0, worst_l = 0;
    CHECK(fgets(line, sizeof line, f) != NULL); /* header */
    CHECK(!strncmp(line, "file,width,height,sobel_mean,entropy,laplacian_var", 50));
    while (fgets(line, sizeof line, f)) {
        char name[256];
        int w, h;
        double s, e, l;
        if (sscanf(line, "%255[^,],%d,%d,%lf,%lf,%lf", name, &w, &h, &s, &e, &l) != 6) {
            test_fail(__FILE__, __LINE__, "bad oracle line: %s", line);
            break;
        }
        size_t n;
        uint8_t *p = load_shared(name, &n);
        if (!p) {
            test_fail(__FILE__, __LINE__, "cannot read shared image %s", name);
            break;
        }
        struct fy_image_features x;
        char err[256];
        int rc = analyze(p, n, 0, &x, err, sizeof err);
        free(p);
        if (rc != 0) {
            test_fail(__FILE__, __LINE__, "%s: %s", name, err);
            break;
        }
        if (x.width != w || x.height != h || rel_diff(x.sobel_mean, s) > 1e-9 ||
            fabs(x.entropy - e) > 1e-9 || rel_diff(x.laplacian_var, l) > 1e-9) {
            test_fail(__FILE__, __LINE__,
                      "%s: ferry %dx%d sobel %.12g entropy %.12g lapvar %.12g; OpenCV %dx%d "
                      "%.12g %.12g %.12g", name, x.width, x.height, x.sobel_mean, x.entropy,
                      x.laplacian_var, w, h, s, e, l);
            break;
        }
        worst_s = fmax(worst_s, rel_diff(x.sobel_mean, s));
        worst_e = fmax(worst_e, fabs(x.entropy - e));
        worst_l = fmax(worst_l, rel_diff(x.laplacian_var, l));
        rows++;
    }
    fclose(f);
    if (getenv("TEST_VERBOSE"))
        fprintf(stderr, "  %d images; worst: sobel rel %.3g, entropy abs %.3g, lapvar rel %.3g\n",
                rows, worst_s, worst_e, worst_l);
    /* every image of the shared corpus is in the oracle */
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/images", test_shared_dir());
    DIR *d = opendir(dir);
    CHECK(d != NULL);
    int files = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        const char *dot = strrchr(de->d_name, '.');
        if (dot && (!strcmp(dot, ".jpg") || !strcmp(dot, ".png") || !strcmp(dot, ".webp")))
            files++;
    }
    closedir(d);
    CHECK_EQ_INT(rows, files);
    CHECK(rows >= 39);
}

/* At the default analysis size ferry's pipeline (scaled decoding, area average) is
 * compared with OpenCV's full decode + resize(INTER_AREA) to the same size
 * (data/oracle/opencv_features_512.csv). Tolerances per format, relative for Sobel and
 * Laplacian variance, absolute (nats) for entropy, each about 3x the worst difference
 * measured on the 39 images (docs/features.md):
 *   PNG   same luma, same area average; ferry's weights are exact integers, OpenCV's
 *         floats, so a few pixels differ by one level (worst 6e-4 / 1.8e-3 / 4.4e-4)
 *   WebP  libwebp's own rescaler works on RGB before luma (6e-3 / 5.6e-2 / 3.4e-2)
 *   JPEG  DCT-scaled decoding down to 2x the size, then area (3.0e-2 / 7.6e-2 / 2.1e-1:
 *         the reduced IDCT is a sharper low-pass than a box, which lowers the
 *         high-frequency Laplacian variance most) */
TEST(opencv_oracle_agreement_at_analysis_size_512)
{
    FILE *f = fopen(repo_file("data/oracle/opencv_features_512.csv"), "r");
    CHECK(f != NULL);
    char line[512];
    int rows = 0;
    if (!fgets(line, sizeof line, f)) line[0] = 0;
    while (fgets(line, sizeof line, f)) {
        char name[256];
        int w, h;
        double s, e, l;
        if (sscanf(line, "%255[^,],%d,%d,%lf,%lf,%lf", name, &w, &h, &s, &e, &l) != 6) continue;
        const char *dot = strrchr(name, '.');
        double ts = 0.1, te = 0.25, tl = 0.6; /* JPEG */
        if (!strcmp(dot, ".png")) ts = 2e-3, te = 5e-3, tl = 2e-3;
        else if (!strcmp(dot, ".webp")) ts = 2e-2, te = 0.17, tl = 0.1;
        size_t n;
        uint8_t *p = load_shared(name, &n);
        struct fy_image_features x;
        char err[256];
        int rc = p ? analyze(p, n, 512, &x, err, sizeof err) : -1;
        free(p);
        if (rc != 0 || rel_diff(x.sobel_mean, s) > ts || fabs(x.entropy - e) > te ||
            rel_diff(x.laplacian_var, l) > tl) {
            test_fail(__FILE__, __LINE__,
                      "%s at 512: ferry sobel %.6g entropy %.6g lapvar %.6g; OpenCV INTER_AREA "
                      "%.6g %.6g %.6g", name, x.sobel_mean, x.entropy, x.laplacian_var, s, e, l);
            fclose(f);
            return;
        }
        rows++;
    }
    fclose(f);
    CHECK(rows >= 39);
}

TEST(probe_matches_oracle_sizes_for_every_image)
{
    FILE *f = fopen(repo_file("data/oracle/opencv_features.csv"), "r");
    CHECK(f != NULL);
    char line[512];
    int checked = 0;
    if (!fgets(line, sizeof line, f)) line[0] = 0;
    while (fgets(line, sizeof line, f)) {
        char name[256];
        int w, h, pw, ph;
        if (sscanf(line, "%255[^,],%d,%d", name, &w, &h) != 3) continue;
        size_t n;
        uint8_t *p = load_shared(name, &n);
        enum fy_img_format fmt;
        char err[256];
        int rc = p ? feat_image_probe(p, n, &fmt, &pw, &ph, err, sizeof err) : -1;
        const char *dot = strrchr(name, '.');
        enum fy_img_format want = !strcmp(dot, ".jpg") ? FY_FMT_JPEG
                                  : !strcmp(dot, ".png") ? FY_FMT_PNG : FY_FMT_WEBP;
        free(p);
        if (rc != 0 || pw != w || ph != h || fmt != want) {
            test_fail(__FILE__, __LINE__, "%s: probe rc %d %dx%d fmt %d, want %dx%d fmt %d",
                      name, rc, pw, ph, fmt, w, h, want);
            fclose(f);
            return;
        }
        checked++;
    }
    fclose(f);
    CHECK(checked >= 39);
}

/* ---- measures on images whose answer is known by hand ----------------------------- */

TEST(measures_flat_image_are_zero)
{
    uint8_t g[64 * 48];
    memset(g, 77, sizeof g);
    struct feat_measures m;
    feat_measures_compute(g, 64, 48, 64, &m);
    CHECK_NEAR(m.sobel_mean, 0, 0);
    CHECK_NEAR(m.entropy, 0, 0);
    CHECK_NEAR(m.laplacian_var, 0, 0);
}

TEST(measures_vertical_step_by_hand)
{
    /* 8 wide, 4 high: columns 0..3 = 0, 4..7 = 100. Sobel gx is 4·100 = 400 at columns
     * 3 and 4 (the kernel spans the step), 0 elsewhere, gy = 0 everywhere (reflect-101
     * rows are equal): mean = 2·400/8 = 100. Laplacian: +100 at column 3, -100 at
     * column 4, 0 elsewhere: mean 0, variance 2·100²/8 = 2500. Histogram 50/50: ln 2. */
    uint8_t g[8 * 4];
    for (int y = 0; y < 4; y++)
        for (int x = 0; x < 8; x++) g[y * 8 + x] = x < 4 ? 0 : 100;
    struct feat_measures m;
    feat_measures_compute(g, 8, 4, 8, &m);
    CHECK_NEAR(m.sobel_mean, 100.0, 1e-12);
    CHECK_NEAR(m.laplacian_var, 2500.0, 1e-9);
    CHECK_NEAR(m.entropy, log(2.0), 1e-12);
}

TEST(measures_reflect101_border_single_pixel_edge)
{
    /* 1×3 column [0, 0, 90], rows 5 bytes apart. Reflect-101 in a 1-wide image reads
     * the pixel itself left and right, so gx = 0 and gy = 4·(below - above): row 0
     * (above = reflected row 1) 0, row 1 4·90 = 360, row 2 (below = reflected row 1) 0;
     * mean 120. */
    uint8_t g[3 * 5] = {0};
    g[2 * 5] = 90;
    struct feat_measures m;
    feat_measures_compute(g, 1, 3, 5, &m);
    CHECK_NEAR(m.sobel_mean, 120.0, 1e-12);
    /* Laplacian = above + below - 2·pixel (left and right are the pixel itself):
     * row 0: 0 + 0 - 0 = 0; row 1: 0 + 90 - 0 = 90; row 2: 0 + 0 - 180 = -180 */
    double mean = (0 + 90 - 180) / 3.0;
    double var = ((0 - mean) * (0 - mean) + (90 - mean) * (90 - mean) +
                  (-180 - mean) * (-180 - mean)) / 3.0;
    CHECK_NEAR(m.laplacian_var, var, 1e-9);
}

/* ---- area averaging and analysis size --------------------------------------------- */

TEST(area_average_exact_for_fractional_ratio)
{
    /* 3×3 → analysis size 2: each output pixel covers 1.5×1.5 input pixels. With
     * columns 0, 90, 180 (rows equal): out = (0·1 + 90·0.5)/1.5 = 30 and
     * (90·0.5 + 180·1)/1.5 = 150. */
    uint8_t px[9] = {0, 90, 180, 0, 90, 180, 0, 90, 180};
    size_t n;
    uint8_t *png = make_png(px, 3, 3, 1, &n);
    CHECK(png != NULL);
    struct feat_image_opts o;
    feat_image_opts_default(&o);
    o.analysis_size = 2;
    uint8_t *g = NULL;
    int w, h;
    char err[256];
    int rc = feat_image_gray(png, n, &o, &g, &w, &h, err, sizeof err);
    free(png);
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_INT(w, 2);
    CHECK_EQ_INT(h, 2);
    CHECK_EQ_INT(g[0], 30);
    CHECK_EQ_INT(g[1], 150);
    CHECK_EQ_INT(g[2], 30);
    CHECK_EQ_INT(g[3], 150);
    free(g);
}

TEST(analysis_size_bounds_longer_side_and_never_enlarges)
{
    static const struct { const char *name; int w, h; } cases[] = {
        {"photo-boats-evening.jpg", 512, 320},   /* 2560x1600, scaled JPEG decode */
        {"large-wood-4096.webp", 512, 512},      /* libwebp rescaler */
        {"doc-debian-reference-p30.png", 362, 512}, /* 1241x1754: 1241·512/1754 = 362.2 */
        {"photo-cat-chelsea.png", 451, 300},     /* smaller: kept */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n;
        uint8_t *p = load_shared(cases[i].name, &n), *g = NULL;
        CHECK(p != NULL);
        int w, h;
        char err[256];
        int rc = feat_image_gray(p, n, NULL, &g, &w, &h, err, sizeof err);
        free(p);
        free(g);
        CHECK_EQ_INT(rc, 0);
        CHECK_EQ_INT(w, cases[i].w);
        CHECK_EQ_INT(h, cases[i].h);
    }
}

TEST(analysis_at_default_size_fills_every_field)
{
    size_t n;
    uint8_t *p = load_shared("photo-forest-path.jpg", &n);
    CHECK(p != NULL);
    struct fy_image_features f;
    char err[256];
    int rc = feat_image_analyze(p, n, NULL, &f, err, sizeof err);
    free(p);
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_INT(f.format, FY_FMT_JPEG);
    CHECK_EQ_INT(f.width, 2560);
    CHECK_EQ_INT(f.height, 1600);
    CHECK_EQ_INT(f.bytes, n);
    CHECK(f.sobel_mean > 0 && f.entropy > 0 && f.laplacian_var > 0);
    const struct feat_calib *c = feat_calib_default();
    CHECK_NEAR(f.c_res, 1.0, 0); /* 4.1 Mpx > 1024·1024 */
    CHECK_NEAR(f.c_ent, f.entropy / log(256.0), 1e-12);
    CHECK(f.c_edge > 0 && f.c_edge < 1 && f.c_lap > 0 && f.c_lap < 1);
    CHECK_NEAR(f.c_img, c->w_res * f.c_res + c->w_edge * f.c_edge + c->w_ent * f.c_ent +
                            c->w_lap * f.c_lap, 1e-12);
    CHECK_EQ_INT(f.tokens[FY_VT_QWEN2VL], feat_visual_tokens(FY_VT_QWEN2VL, 2560, 1600));
    CHECK_EQ_INT(f.tokens[FY_VT_LLAVA], 576);
    CHECK_EQ_INT(f.tokens[FY_VT_GENERIC], 32 * 20);
}

TEST(scores_follow_moa_off_formulas)
{
    struct feat_calib c = {.ref_width = 100, .ref_height = 100, .sobel_p5 = 10,
                           .sobel_p95 = 50, .lap_p5 = 100, .lap_p95 = 1100, .w_res = 0.1,
                           .w_edge = 0.2, .w_ent = 0.3, .w_lap = 0.4};
    struct feat_measures m = {.sobel_mean = 30, .entropy = log(16.0), .laplacian_var = 2000};
    struct fy_image_features f;
    memset(&f, 0, sizeof f);
    feat_scores(&c, 50, 40, &m, &f);
    CHECK_NEAR(f.c_res, 0.2, 1e-12);
    CHECK_NEAR(f.c_edge, 0.5, 1e-9);
    CHECK_NEAR(f.c_ent, 0.5, 1e-12); /* ln 16 / ln 256 */
    CHECK_NEAR(f.c_lap, 1.0, 0);     /* clipped */
    CHECK_NEAR(f.c_img, 0.1 * 0.2 + 0.2 * 0.5 + 0.3 * 0.5 + 0.4 * 1.0, 1e-9);
    m.sobel_mean = 5; /* below P5: clipped to 0 */
    feat_scores(&c, 500, 400, &m, &f);
    CHECK_NEAR(f.c_edge, 0.0, 0);
    CHECK_NEAR(f.c_res, 1.0, 0);
}

/* ---- robustness: every bad input gets its own clear error ------------------------- */

static int expect_error(const uint8_t *p, size_t n, const char *want, const char *what)
{
    struct fy_image_features f;
    char err[256] = "";
    int rc = analyze(p, n, 512, &f, err, sizeof err);
    if (rc == 0) {
        test_fail(__FILE__, __LINE__, "%s: accepted, expected an error with '%s'", what, want);
        return -1;
    }
    if (!strstr(err, want)) {
        test_fail(__FILE__, __LINE__, "%s: error '%s' does not mention '%s'", what, err, want);
        return -1;
    }
    if (f.width != 0 || f.sobel_mean != 0) {
        test_fail(__FILE__, __LINE__, "%s: output not cleared on error", what);
        return -1;
    }
    return 0;
}

TEST(zero_bytes_and_wrong_magic)
{
    static const uint8_t gif[] = "GIF89a\x01\x00\x01\x00";
    if (expect_error((const uint8_t *)"", 0, "empty", "zero bytes")) return;
    if (expect_error(gif, sizeof gif - 1, "unknown format", "GIF")) return;
    if (expect_error((const uint8_t *)"\xff\xd8", 2, "unknown format", "2-byte JPEG SOI")) return;
    enum fy_img_format fmt;
    int w, h;
    char err[128];
    CHECK(feat_image_probe(gif, sizeof gif - 1, &fmt, &w, &h, err, sizeof err) != 0);
    CHECK(strstr(err, "47 49 46 38") != NULL); /* names the first bytes */
    CHECK_EQ_INT(feat_image_sniff(gif, sizeof gif - 1), FY_FMT_UNKNOWN);
}

TEST(truncated_images_per_format)
{
    static const struct { const char *name, *want_header, *want_data; } cases[] = {
        {"photo-rocket.jpg", "jpeg: truncated", "jpeg: truncated data"},
        {"photo-cat-chelsea.png", "png: truncated header", "png: "},
        {"photo-coffee.webp", "webp: invalid or truncated header", "webp: truncated data"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n;
        uint8_t *p = load_shared(cases[i].name, &n);
        CHECK(p != NULL);
        char what[128];
        snprintf(what, sizeof what, "%s cut to 20 bytes", cases[i].name);
        int bad = expect_error(p, 20, cases[i].want_header, what);
        snprintf(what, sizeof what, "%s cut to 60%%", cases[i].name);
        if (!bad) bad = expect_error(p, n * 6 / 10, cases[i].want_data, what);
        free(p);
        if (bad) return;
    }
}

TEST(corrupt_headers_per_format)
{
    size_t n;
    uint8_t *p = load_shared("tiny-thumb-chelsea.jpg", &n);
    CHECK(p != NULL);
    /* JPEG: zero the image height in the SOF0 segment */
    size_t i;
    for (i = 2; i + 9 < n && !(p[i] == 0xff && p[i + 1] == 0xc0); i++) {}
    CHECK(i + 9 < n);
    p[i + 5] = p[i + 6] = 0;
    int bad = expect_error(p, n, "jpeg: frame header gives a 64x0 image", "JPEG height 0");
    free(p);
    if (bad) return;

    p = load_shared("tiny-palette-10x10.png", &n);
    CHECK(p != NULL);
    p[24] = 3; /* bit depth 3 */
    bad = expect_error(p, n, "png: invalid colour type 3 with bit depth 3", "PNG depth 3");
    p[24] = 8;
    p[40] ^= 0x55; /* inside IDAT or PLTE: the CRC no longer matches */
    if (!bad) bad = expect_error(p, n, "png: ", "PNG flipped byte");
    free(p);
    if (bad) return;

    p = load_shared("photo-storm.webp", &n);
    CHECK(p != NULL);
    memset(p + n / 3, 0xa5, 64); /* garbage in the VP8 partitions */
    memset(p + 20, 0, 10);       /* and in the VP8 frame header */
    bad = expect_error(p, n, "webp: ", "WebP garbage");
    free(p);
}

/* Offset of the first baseline frame header (FF C0) of a JPEG, or 0. */
static size_t jpeg_sof0(const uint8_t *p, size_t n)
{
    for (size_t i = 2; i + 9 < n; i++)
        if (p[i] == 0xff && p[i + 1] == 0xc0) return i;
    return 0;
}

/* A frame header that lies: more rows than the scan holds. libjpeg fills the missing
 * rows with gray and only warns ("Corrupt JPEG data: premature end of data segment");
 * the features of such an image would be those of a flat gray picture. */
TEST(jpeg_header_claiming_more_rows_than_the_scan_holds_is_truncated)
{
    static const char *const names[] = {"tiny-thumb-chelsea.jpg", "photo-rocket.jpg"};
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        size_t n;
        uint8_t *p = load_shared(names[k], &n);
        CHECK(p != NULL);
        size_t i = jpeg_sof0(p, n);
        CHECK(i > 0);
        int h = p[i + 5] << 8 | p[i + 6];
        p[i + 5] = (uint8_t)((4 * h) >> 8), p[i + 6] = (uint8_t)(4 * h); /* 4x the rows */
        int bad = expect_error(p, n, "jpeg: truncated data (Corrupt JPEG data: premature end",
                               names[k]);
        free(p);
        if (bad) return;
    }
}

/* A frame header naming another coding process (SOF9, arithmetic) over a Huffman scan:
 * the decoder reads a few KB, skips the rest as "extraneous bytes" and warns only. */
TEST(jpeg_scan_decoded_with_the_wrong_process_is_corrupt)
{
    size_t n;
    uint8_t *p = load_shared("photo-rocket.jpg", &n);
    CHECK(p != NULL);
    size_t i = jpeg_sof0(p, n);
    CHECK(i > 0);
    p[i + 1] = 0xc9;
    expect_error(p, n, "jpeg: corrupt data (the decoder skipped", "SOF0 -> SOF9");
    free(p);
}

/* Animated WebP (a VP8X canvas with ANIM and two ANMF frames around a real VP8
 * bitstream) gets its own clear error, not a decoder status. */
static void le24(uint8_t *p, unsigned v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
}

static void le32(uint8_t *p, unsigned v)
{
    le24(p, v);
    p[3] = (uint8_t)(v >> 24);
}

TEST(animated_webp_is_refused_clearly)
{
    size_t n;
    uint8_t *p = load_shared("photo-coffee.webp", &n); /* RIFF WEBP "VP8 " 600x400 */
    CHECK(p != NULL);
    CHECK(n > 20 && !memcmp(p + 12, "VP8 ", 4));
    size_t vp8 = n - 12; /* the VP8 chunk with its header (even size) */
    size_t anmf = 16 + vp8, total = 4 + 18 + 14 + 2 * (8 + anmf);
    uint8_t *w = calloc(1, 8 + total);
    CHECK(w != NULL);
    uint8_t *q = w;
    memcpy(q, "RIFF", 4), le32(q + 4, (unsigned)total), memcpy(q + 8, "WEBP", 4), q += 12;
    memcpy(q, "VP8X", 4), le32(q + 4, 10), q[8] = 0x02; /* animation flag */
    le24(q + 12, 599), le24(q + 15, 399), q += 18;
    memcpy(q, "ANIM", 4), le32(q + 4, 6), q += 14; /* background 0, loop count 0 */
    for (int k = 0; k < 2; k++) {
        memcpy(q, "ANMF", 4), le32(q + 4, (unsigned)anmf);
        le24(q + 8 + 6, 599), le24(q + 8 + 9, 399), le24(q + 8 + 12, 100); /* 100 ms */
        memcpy(q + 8 + 16, p + 12, vp8);
        q += 8 + anmf;
    }
    free(p);
    expect_error(w, 8 + total, "webp: animated WebP is not supported", "two-frame WebP");
    free(w);
}

TEST(bombs_refused_before_decoding)
{
    /* PNG header claiming 100000 x 100000 with no data behind it */
    uint8_t png[33] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13, 'I', 'H', 'D', 'R',
                       0, 1, 0x86, 0xa0, 0, 1, 0x86, 0xa0, 8, 2, 0, 0, 0};
    if (expect_error(png, sizeof png,
                     "100000x100000 (10000000000 pixels) exceeds the pixel limit of 40000000",
                     "PNG 100000x100000"))
        return;
    png[17] = 0, png[18] = 0x27, png[19] = 0x10; /* 10000 x 100000 -> 10000 x 10000 */
    png[21] = 0, png[22] = 0x27, png[23] = 0x10;
    if (expect_error(png, sizeof png, "10000x10000 (100000000 pixels) exceeds the pixel limit",
                     "PNG 10000x10000"))
        return;
    /* JPEG SOF0 claiming 60000 x 60000 */
    uint8_t jpg[] = {0xff, 0xd8, 0xff, 0xc0, 0, 11, 8, 0xea, 0x60, 0xea, 0x60, 1, 1, 0x11, 0,
                     0xff, 0xd9};
    if (expect_error(jpg, sizeof jpg, "exceeds the pixel limit", "JPEG 60000x60000")) return;
    /* WebP VP8X canvas of 16384 x 16384 */
    uint8_t webp[30] = {'R', 'I', 'F', 'F', 22, 0, 0, 0, 'W', 'E', 'B', 'P', 'V', 'P', '8', 'X',
                        10, 0, 0, 0, 0, 0, 0, 0, 0xff, 0x3f, 0, 0xff, 0x3f, 0};
    if (expect_error(webp, sizeof webp, "exceeds the pixel limit", "WebP 16384x16384")) return;
    /* the caller's own limits apply too */
    size_t n;
    uint8_t *p = load_shared("photo-cat-chelsea.png", &n);
    CHECK(p != NULL);
    struct feat_image_opts o;
    feat_image_opts_default(&o);
    o.max_pixels = 451 * 300 - 1;
    struct fy_image_features f;
    char err[256];
    CHECK(feat_image_analyze(p, n, &o, &f, err, sizeof err) != 0);
    CHECK(strstr(err, "pixel limit of 135299") != NULL);
    o.max_pixels = 0;
    o.max_bytes = n - 1;
    CHECK(feat_image_analyze(p, n, &o, &f, err, sizeof err) != 0);
    CHECK(strstr(err, "bytes exceeds the limit") != NULL);
    free(p);
    /* without a pixel limit the per-side limit still holds */
    o.max_bytes = 0;
    static const uint8_t wh[8] = {0, 1, 0x11, 0x70, 0, 0, 0, 10}; /* 70000 wide, 10 high */
    memcpy(png + 16, wh, sizeof wh);
    CHECK(feat_image_analyze(png, sizeof png, &o, &f, err, sizeof err) != 0);
    CHECK_STR(err, "image: 70000x10 has a side above the limit of 65500 px");
}

TEST(cmyk_jpeg_is_converted)
{
    /* inverted CMYK as Adobe writes it: C=M=Y=255 is no ink; K=255 white, K=0 black */
    enum { W = 32, H = 16 };
    uint8_t cmyk[W * H * 4];
    for (int i = 0; i < W * H; i++) {
        uint8_t *q = cmyk + 4 * i;
        q[0] = q[1] = q[2] = 255;
        q[3] = (i % W) < W / 2 ? 255 : 0;
    }
    tjhandle tj = tjInitCompress();
    unsigned char *jpg = NULL;
    unsigned long len = 0;
    CHECK(tj != NULL);
    int rc = tjCompress2(tj, cmyk, W, 0, H, TJPF_CMYK, &jpg, &len, TJSAMP_444, 95, 0);
    tjDestroy(tj);
    CHECK_EQ_INT(rc, 0);
    struct feat_image_opts o;
    feat_image_opts_default(&o);
    o.analysis_size = 0;
    uint8_t *g = NULL;
    int w, h;
    char err[256];
    rc = feat_image_gray(jpg, len, &o, &g, &w, &h, err, sizeof err);
    uint8_t *rgbj = NULL;
    size_t m = 0;
    int rc2 = feat_image_downscale_jpeg(jpg, len, 16, 90, &rgbj, &m, err, sizeof err);
    tjFree(jpg);
    free(rgbj);
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_INT(rc2, 0);
    CHECK_EQ_INT(w, W);
    double left = 0, right = 0;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            if (x < W / 2) left += g[y * W + x];
            else right += g[y * W + x];
        }
    free(g);
    CHECK(left / (W * H / 2) > 240);
    CHECK(right / (W * H / 2) < 15);
}

/* ---- formats written here round-trip through the decoders ------------------------- */

TEST(synthetic_formats_decode_to_the_same_luma)
{
    /* a 40×30 RGB gradient as lossless WebP and PNG must give the same measures; the
     * PNG and WebP luma weights differ only in fixed-point rounding (<= 1 level) */
    enum { W = 40, H = 30 };
    uint8_t rgb[W * H * 3];
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            uint8_t *q = rgb + 3 * (y * W + x);
            q[0] = (uint8_t)(6 * x), q[1] = (uint8_t)(8 * y), q[2] = (uint8_t)(3 * (x + y));
        }
    size_t npng = 0, nwebp = 0, njpg = 0;
    uint8_t *png = make_png(rgb, W, H, 3, &npng), *webp = make_webp(rgb, W, H, &nwebp);
    uint8_t *jpg = make_jpeg(rgb, W, H, &njpg);
    CHECK(png && webp && jpg);
    struct fy_image_features a, b, c;
    char err[256];
    int ra = analyze(png, npng, 0, &a, err, sizeof err);
    int rb = analyze(webp, nwebp, 0, &b, err, sizeof err);
    int rc = analyze(jpg, njpg, 0, &c, err, sizeof err);
    free(png), free(webp), free(jpg);
    CHECK_EQ_INT(ra, 0);
    CHECK_EQ_INT(rb, 0);
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_INT(a.format, FY_FMT_PNG);
    CHECK_EQ_INT(b.format, FY_FMT_WEBP);
    CHECK_EQ_INT(c.format, FY_FMT_JPEG);
    CHECK_EQ_INT(b.width, W);
    CHECK_NEAR(a.sobel_mean, b.sobel_mean, 0.05 * a.sobel_mean);
    CHECK_NEAR(a.sobel_mean, c.sobel_mean, 0.10 * a.sobel_mean); /* JPEG q90 is lossy */
}

/* PNG writer with the full libpng API (interlacing and 16-bit samples, which the
 * simplified API cannot write). rows: h rows of w samples of `depth` bits, gray. */
struct membuf {
    uint8_t *p;
    size_t n, cap;
};

static void mem_write(png_structp png, png_bytep d, size_t len)
{
    struct membuf *m = png_get_io_ptr(png);
    if (m->n + len > m->cap) {
        size_t cap = (m->n + len) * 2;
        uint8_t *q = realloc(m->p, cap);
        if (!q) png_error(png, "out of memory");
        m->p = q, m->cap = cap;
    }
    memcpy(m->p + m->n, d, len);
    m->n += len;
}

static void mem_flush(png_structp png)
{
    (void)png;
}

static uint8_t *write_gray_png(const uint8_t *px, int w, int h, int depth, int interlace,
                               size_t *n)
{
    struct membuf m = {0};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info || setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        free(m.p);
        return NULL;
    }
    png_set_write_fn(png, &m, mem_write, mem_flush);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, depth, PNG_COLOR_TYPE_GRAY,
                 interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    int passes = png_set_interlace_handling(png);
    size_t rb = (size_t)w * (size_t)(depth / 8);
    for (int pass = 0; pass < passes; pass++)
        for (int y = 0; y < h; y++) png_write_row(png, (png_const_bytep)(px + rb * (size_t)y));
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    *n = m.n;
    return m.p;
}

TEST(png_interlaced_and_16bit_gray_decode_like_plain)
{
    enum { W = 61, H = 47 };
    uint8_t g8[W * H], g16[W * H * 2];
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            uint8_t v = (uint8_t)((x * x + 7 * y * y + 13 * x * y) % 251);
            g8[y * W + x] = v;
            /* big-endian 16-bit sample whose high byte is v */
            g16[2 * (y * W + x)] = v;
            g16[2 * (y * W + x) + 1] = 200;
        }
    size_t n0 = 0, n1 = 0, n2 = 0;
    uint8_t *plain = write_gray_png(g8, W, H, 8, 0, &n0);
    uint8_t *inter = write_gray_png(g8, W, H, 8, 1, &n1);
    uint8_t *deep = write_gray_png(g16, W, H, 16, 1, &n2);
    CHECK(plain && inter && deep);
    CHECK(inter[28] == 1); /* IHDR interlace method: Adam7 */
    CHECK(deep[24] == 16);
    struct feat_image_opts o;
    feat_image_opts_default(&o);
    o.analysis_size = 0;
    uint8_t *a = NULL, *b = NULL, *c = NULL;
    int w, h;
    char err[256];
    int ra = feat_image_gray(plain, n0, &o, &a, &w, &h, err, sizeof err);
    int rb = feat_image_gray(inter, n1, &o, &b, &w, &h, err, sizeof err);
    int rc = feat_image_gray(deep, n2, &o, &c, &w, &h, err, sizeof err);
    int same_a = ra == 0 && !memcmp(a, g8, sizeof g8);
    int same_b = rb == 0 && !memcmp(b, g8, sizeof g8);
    int same_c = rc == 0 && !memcmp(c, g8, sizeof g8);
    /* the interlaced image also goes through the area average */
    o.analysis_size = 30;
    uint8_t *d = NULL, *e = NULL;
    int dw, dh;
    int rd = feat_image_gray(plain, n0, &o, &d, &dw, &dh, err, sizeof err);
    int re = feat_image_gray(inter, n1, &o, &e, &w, &h, err, sizeof err);
    int same_de = rd == 0 && re == 0 && dw == 30 && dh == 23 && !memcmp(d, e, (size_t)dw * dh);
    free(plain), free(inter), free(deep), free(a), free(b), free(c), free(d), free(e);
    CHECK(same_a);
    CHECK(same_b);
    CHECK(same_c);
    CHECK(same_de);
}

/* ---- downscale + re-encode for the gateway --------------------------------------- */

TEST(downscale_jpeg_round_trip_each_format)
{
    static const struct { const char *name; int w, h; } cases[] = {
        {"photo-boats-evening.jpg", 256, 160},
        {"screenshot-wireshark.png", 256, 185}, /* 741·256/1024 = 185.25 */
        {"photo-storm.webp", 256, 171},         /* 1280·256/1920 = 170.7 */
        {"tiny-thumb-chelsea.jpg", 64, 43},     /* smaller than 256: kept */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n, m;
        uint8_t *p = load_shared(cases[i].name, &n), *out = NULL;
        CHECK(p != NULL);
        char err[256];
        int rc = feat_image_downscale_jpeg(p, n, 256, 85, &out, &m, err, sizeof err);
        if (rc != 0) {
            free(p);
            test_fail(__FILE__, __LINE__, "%s: %s", cases[i].name, err);
            return;
        }
        enum fy_img_format fmt;
        int w, h;
        CHECK_EQ_INT(feat_image_probe(out, m, &fmt, &w, &h, err, sizeof err), 0);
        CHECK_EQ_INT(fmt, FY_FMT_JPEG);
        CHECK_EQ_INT(w, cases[i].w);
        CHECK_EQ_INT(h, cases[i].h);
        /* the re-encoded image looks like the original at that size: mean luma within
         * 2 levels (JPEG at q85 keeps the DC of every block closely) */
        struct feat_image_opts o;
        feat_image_opts_default(&o);
        o.analysis_size = 256;
        uint8_t *g1 = NULL, *g2 = NULL;
        int w1, h1, w2, h2;
        CHECK_EQ_INT(feat_image_gray(p, n, &o, &g1, &w1, &h1, err, sizeof err), 0);
        CHECK_EQ_INT(feat_image_gray(out, m, &o, &g2, &w2, &h2, err, sizeof err), 0);
        double s1 = 0, s2 = 0;
        for (int k = 0; k < w1 * h1; k++) s1 += g1[k];
        for (int k = 0; k < w2 * h2; k++) s2 += g2[k];
        free(g1), free(g2), free(p), free(out);
        CHECK_EQ_INT(w1 * h1, w2 * h2);
        CHECK_NEAR(s1 / (w1 * h1), s2 / (w2 * h2), 2.0);
    }
}

TEST(downscale_jpeg_composites_transparency_over_white)
{
    enum { W = 32, H = 32 };
    uint8_t rgba[W * H * 4];
    memset(rgba, 0, sizeof rgba); /* black, fully transparent */
    size_t n, m;
    uint8_t *png = make_png(rgba, W, H, 4, &n), *out = NULL;
    CHECK(png != NULL);
    char err[256];
    int rc = feat_image_downscale_jpeg(png, n, 16, 90, &out, &m, err, sizeof err);
    free(png);
    CHECK_EQ_INT(rc, 0);
    uint8_t *g = NULL;
    int w, h;
    struct feat_image_opts o;
    feat_image_opts_default(&o);
    o.analysis_size = 0;
    rc = feat_image_gray(out, m, &o, &g, &w, &h, err, sizeof err);
    free(out);
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_INT(w, 16);
    int lo = 255;
    for (int k = 0; k < w * h; k++) lo = g[k] < lo ? g[k] : lo;
    free(g);
    CHECK(lo >= 250);
}

TEST(downscale_jpeg_rejects_bad_arguments_and_input)
{
    uint8_t *out = (uint8_t *)1;
    size_t m = 7;
    char err[256];
    CHECK(feat_image_downscale_jpeg((const uint8_t *)"x", 1, 0, 80, &out, &m, err, sizeof err) != 0);
    CHECK(strstr(err, "max_side") != NULL);
    CHECK(out == NULL && m == 0);
    CHECK(feat_image_downscale_jpeg((const uint8_t *)"GIF89a", 6, 64, 80, &out, &m, err,
                                    sizeof err) != 0);
    CHECK(strstr(err, "unknown format") != NULL);
}

/* ---- visual tokens ---------------------------------------------------------------- */

TEST(tokens_qwen2vl_smart_resize)
{
    int w, h;
    CHECK_EQ_INT(feat_visual_tokens(FY_VT_QWEN2VL, 224, 224), 64);     /* 8×8 patches */
    CHECK_EQ_INT(feat_qwen2vl_resize(1000, 1000, &w, &h), 0);        /* 35.7 → 36 */
    CHECK_EQ_INT(w, 1008);
    CHECK_EQ_INT(feat_visual_tokens(FY_VT_QWEN2VL, 1000, 1000), 36 * 36);
    /* Python rounds halves to even: 70/28 = 2.5 → 2, so 70×70 → 56×56 = 4 tokens */
    CHECK_EQ_INT(feat_qwen2vl_resize(70, 70, &w, &h), 0);
    CHECK_EQ_INT(w, 56);
    CHECK_EQ_INT(feat_visual_tokens(FY_VT_QWEN2VL, 70, 70), 4);
    /* below min_pixels: scaled up to at least 4·28·28 */
    CHECK_EQ_INT(feat_visual_tokens(FY_VT_QWEN2VL, 10, 10), 4);
    /* above max_pixels: scaled down, never more than 16384 tokens */
    int t = feat_visual_tokens(FY_VT_QWEN2VL, 8000, 8000);
    CHECK(t <= 16384 && t > 16000);
    CHECK_EQ_INT(feat_qwen2vl_resize(5120, 2880, &w, &h), 0);
    CHECK_EQ_INT(w % 28, 0);
    CHECK_EQ_INT(h % 28, 0);
    CHECK(w * h <= FEAT_QWEN2VL_MAX_PIXELS);
    CHECK_EQ_INT(feat_visual_tokens(FY_VT_QWEN2VL, 0, 10), -1);
}

TEST(tokens_llava_and_generic)
{
    CHECK_EQ_INT(feat_visual_tokens(FY_VT_LLAVA, 16, 16), 576);
    CHECK_EQ_INT(feat_visual_tokens(FY_VT_LLAVA, 4000, 3000), 576);
    CHECK_EQ_INT(feat_visual_tokens(FY_VT_GENERIC, 1024, 768), 32 * 24);
    CHECK_EQ_INT(feat_visual_tokens(FY_VT_GENERIC, 2048, 1536), 32 * 24); /* shrunk to 1024 */
    CHECK_EQ_INT(feat_visual_tokens(FY_VT_GENERIC, 33, 33), 4);           /* started patches */
    CHECK_EQ_INT(feat_visual_tokens(FY_VT_GENERIC, 100000, 1), 32);
    CHECK_EQ_INT(feat_visual_tokens(FY_VT__N, 10, 10), -1);
    CHECK_STR(feat_vt_family_name(FY_VT_QWEN2VL), "qwen2vl");
}

/* ---- calibration ------------------------------------------------------------------ */

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

TEST(default_calibration_file_equals_compiled_in_and_shared_images)
{
    struct feat_calib c;
    char err[256];
    CHECK_EQ_INT(feat_calib_load(repo_file("data/calib/default.ini"), &c, err, sizeof err), 0);
    const struct feat_calib *d = feat_calib_default();
    CHECK_EQ_INT(c.ref_width, d->ref_width);
    CHECK_EQ_INT(c.ref_height, d->ref_height);
    CHECK_EQ_INT(c.analysis_size, d->analysis_size);
    CHECK_EQ_INT(c.nimages, d->nimages);
    CHECK_NEAR(c.sobel_p5, d->sobel_p5, 0);
    CHECK_NEAR(c.sobel_p95, d->sobel_p95, 0);
    CHECK_NEAR(c.lap_p5, d->lap_p5, 0);
    CHECK_NEAR(c.lap_p95, d->lap_p95, 0);
    CHECK_NEAR(c.w_res + c.w_edge + c.w_ent + c.w_lap, 1.0, 1e-12);
    /* and the percentiles are those of ../shared/images at the default analysis size */
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/images", test_shared_dir());
    DIR *dd = opendir(dir);
    CHECK(dd != NULL);
    double s[256], l[256];
    int k = 0;
    struct dirent *de;
    while ((de = readdir(dd)) && k < 256) {
        const char *dot = strrchr(de->d_name, '.');
        if (!dot || (strcmp(dot, ".jpg") && strcmp(dot, ".png") && strcmp(dot, ".webp"))) continue;
        size_t n;
        uint8_t *p = load_shared(de->d_name, &n);
        struct fy_image_features f;
        if (!p || feat_image_analyze(p, n, NULL, &f, err, sizeof err) != 0) {
            free(p);
            closedir(dd);
            test_fail(__FILE__, __LINE__, "%s: cannot analyse", de->d_name);
            return;
        }
        free(p);
        s[k] = f.sobel_mean, l[k] = f.laplacian_var, k++;
    }
    closedir(dd);
    CHECK_EQ_INT(k, d->nimages);
    qsort(s, (size_t)k, sizeof *s, cmp_d);
    qsort(l, (size_t)k, sizeof *l, cmp_d);
    double pos = 0.95 * (k - 1);
    int i = (int)pos;
    CHECK_NEAR(s[i] + (pos - i) * (s[i + 1] - s[i]), d->sobel_p95, 1e-9 * d->sobel_p95);
    CHECK_NEAR(l[i] + (pos - i) * (l[i + 1] - l[i]), d->lap_p95, 1e-9 * d->lap_p95);
}

static const char *GOOD_INI =
    "[calibration]\nanalysis_size = 512\nimages = 3\n"
    "[reference]\nwidth = 640\nheight = 480\n"
    "[sobel_mean]\np5 = 1.5\np95 = 99\n"
    "[laplacian_var]\np5 = 10\np95 = 5000\n"
    "[weights]\nres = 0.1\nedge = 0.2\nent = 0.3\nlap = 0.4\n";

TEST(calibration_parse_good_and_line_numbered_errors)
{
    struct feat_calib c;
    char err[256];
    CHECK_EQ_INT(feat_calib_parse(GOOD_INI, "t.ini", &c, err, sizeof err), 0);
    CHECK_EQ_INT(c.ref_width, 640);
    CHECK_NEAR(c.lap_p95, 5000, 0);
    CHECK_NEAR(c.w_lap, 0.4, 0);

    char bad[1024];
    struct feat_calib keep = c;
    /* line 8 holds "p5 = 1.5" */
    snprintf(bad, sizeof bad, "%s", GOOD_INI);
    char *q = strstr(bad, "p5 = 1.5");
    memcpy(q, "p5 = 1,5", 8);
    CHECK(feat_calib_parse(bad, "t.ini", &c, err, sizeof err) != 0);
    CHECK_STR(err, "t.ini:8: [sobel_mean] p5: '1,5' is not a number");
    CHECK(memcmp(&c, &keep, sizeof c) == 0); /* untouched */

    snprintf(bad, sizeof bad, "%s[weights]\nfoo = 1\n", GOOD_INI);
    CHECK(feat_calib_parse(bad, "t.ini", &c, err, sizeof err) != 0);
    CHECK_STR(err, "t.ini:19: unknown key 'foo' in section [weights]");

    /* ferry calibrate writes its command line as one comment: with a long path it was cut
     * in two and the file it wrote was "t.ini:5: syntax error". Any other long line is
     * refused whole, not cut. */
    static char big[4096];
    char path[600];
    memset(path, 'd', sizeof path - 1);
    path[sizeof path - 1] = '\0';
    snprintf(big, sizeof big, "; Command line: ferry calibrate /%s\n%s", path, GOOD_INI);
    CHECK_EQ_INT(feat_calib_parse(big, "t.ini", &c, err, sizeof err), 0);
    CHECK_NEAR(c.lap_p95, 5000, 0);
    snprintf(big, sizeof big, "%s[weights]\nres = 0.1%s\n", GOOD_INI, path);
    CHECK(feat_calib_parse(big, "t.ini", &c, err, sizeof err) != 0);
    CHECK(strstr(err, "t.ini:19: line longer than ") != NULL);

    snprintf(bad, sizeof bad, "%s", GOOD_INI);
    q = strstr(bad, "lap = 0.4");
    memcpy(q, "lap = 0.5", 9);
    CHECK(feat_calib_parse(bad, "t.ini", &c, err, sizeof err) != 0);
    CHECK(strstr(err, "must sum to 1 (they sum to 1.1)") != NULL);

    snprintf(bad, sizeof bad, "%s", GOOD_INI);
    q = strstr(bad, "images = 3");
    memcpy(q, "imagez = 3", 10);
    CHECK(feat_calib_parse(bad, "t.ini", &c, err, sizeof err) != 0);
    CHECK_STR(err, "t.ini:3: unknown key 'imagez' in section [calibration]");

    CHECK(feat_calib_parse("[reference]\nwidth = 1\nheight = 1\n", "t.ini", &c, err,
                           sizeof err) != 0);
    CHECK_STR(err, "t.ini: missing key 'analysis_size' in section [calibration]");

    CHECK(feat_calib_parse("[reference\nwidth = 1\n", "t.ini", &c, err, sizeof err) != 0);
    CHECK_STR(err, "t.ini:1: syntax error");

    snprintf(bad, sizeof bad, "%s", GOOD_INI);
    q = strstr(bad, "p95 = 99");
    memcpy(q, "p95 = 01", 8); /* p95 1 < p5 1.5 */
    CHECK(feat_calib_parse(bad, "t.ini", &c, err, sizeof err) != 0);
    CHECK(strstr(err, "[sobel_mean] needs 0 <= p5 <= p95") != NULL);
}

TEST(calibration_load_file_errors)
{
    struct feat_calib c;
    char err[256];
    CHECK(feat_calib_load("/nonexistent/calib.ini", &c, err, sizeof err) != 0);
    CHECK_STR(err, "/nonexistent/calib.ini: No such file or directory");
    const char *path = test_tmp_path("calib.ini");
    CHECK(test_write_file(path, GOOD_INI) == 0);
    CHECK_EQ_INT(feat_calib_load(path, &c, err, sizeof err), 0);
    CHECK_EQ_INT(c.ref_height, 480);
    /* write → load round trip */
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    CHECK_EQ_INT(feat_calib_write(feat_calib_default(), "line one\nline two", f), 0);
    fclose(f);
    CHECK_EQ_INT(feat_calib_load(path, &c, err, sizeof err), 0);
    CHECK_NEAR(c.sobel_p95, feat_calib_default()->sobel_p95, 0);
    CHECK_NEAR(c.lap_p5, feat_calib_default()->lap_p5, 0);
}

TEST(custom_calibration_changes_scores)
{
    size_t n;
    uint8_t *p = load_shared("photo-coffee.webp", &n);
    CHECK(p != NULL);
    struct feat_calib c = *feat_calib_default();
    c.ref_width = c.ref_height = 100; /* any image above 100x100 saturates C_res */
    c.sobel_p95 = c.sobel_p5 + 1e-3;  /* saturates C_edge */
    struct feat_image_opts o;
    feat_image_opts_default(&o);
    o.calib = &c;
    struct fy_image_features a, b;
    char err[256];
    CHECK_EQ_INT(feat_image_analyze(p, n, NULL, &a, err, sizeof err), 0);
    CHECK_EQ_INT(feat_image_analyze(p, n, &o, &b, err, sizeof err), 0);
    free(p);
    CHECK(a.c_res < 1.0);
    CHECK_NEAR(b.c_res, 1.0, 0);
    CHECK_NEAR(b.c_edge, 1.0, 0);
    CHECK_NEAR(a.sobel_mean, b.sobel_mean, 0);
}

/* ---- ferry calibrate (the real binary) -------------------------------------------- */

/* Runs a shell command line; returns its exit status, or -1 if it did not exit. */
static int run_cmd(const char *cmd)
{
    int rc = system(cmd);
    return rc != -1 && WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static char *slurp(const char *path)
{
    uint8_t *p;
    size_t n;
    char err[256];
    return util_read_file(path, 0, &p, &n, err, sizeof err) == 0 ? (char *)p : NULL;
}

TEST(cli_calibrate_reproduces_default_and_reports_errors)
{
    const char *bin = test_ferry_bin();
    if (access(bin, X_OK) != 0) {
        test_fail(__FILE__, __LINE__, "%s is not built (set FERRY_BIN)", bin);
        return;
    }
    char out[512], errp[512], cmd[3072];
    snprintf(out, sizeof out, "%s", test_tmp_path("cal.ini"));
    snprintf(errp, sizeof errp, "%s", test_tmp_path("cal.err"));
    snprintf(cmd, sizeof cmd, "'%s' calibrate '%s/images' >'%s' 2>'%s'", bin, test_shared_dir(),
             out, errp);
    CHECK_EQ_INT(run_cmd(cmd), 0);
    char *text = slurp(out), err[256];
    CHECK(text != NULL);
    struct feat_calib c;
    int rc = feat_calib_parse(text, out, &c, err, sizeof err);
    int says = strstr(text, "written by ferry") != NULL;
    free(text);
    CHECK_EQ_INT(rc, 0);
    CHECK(says);
    const struct feat_calib *d = feat_calib_default();
    CHECK_EQ_INT(c.nimages, d->nimages);
    CHECK_EQ_INT(c.analysis_size, 512);
    CHECK_NEAR(c.sobel_p5, d->sobel_p5, 1e-9 * d->sobel_p5);
    CHECK_NEAR(c.lap_p95, d->lap_p95, 1e-9 * d->lap_p95);

    /* one unreadable input: reported, left out, exit status 1, output still written */
    snprintf(cmd, sizeof cmd,
             "'%s' calibrate --ref 640x480 --weights 0.1,0.2,0.3,0.4 '%s/images/photo-rocket.jpg' "
             "'%s/images/photo-coffee.webp' /nonexistent/a.png >'%s' 2>'%s'",
             bin, test_shared_dir(), test_shared_dir(), out, errp);
    CHECK_EQ_INT(run_cmd(cmd), 1);
    text = slurp(errp);
    CHECK(text != NULL);
    int named = strstr(text, "/nonexistent/a.png: No such file or directory") != NULL;
    free(text);
    CHECK(named);
    text = slurp(out);
    CHECK(text != NULL);
    rc = feat_calib_parse(text, out, &c, err, sizeof err);
    free(text);
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_INT(c.nimages, 2);
    CHECK_EQ_INT(c.ref_width, 640);
    CHECK_NEAR(c.w_lap, 0.4, 0);

    /* usage errors: exit status 2 */
    snprintf(cmd, sizeof cmd, "'%s' calibrate --analysis-size -3 x.png >/dev/null 2>'%s'", bin,
             errp);
    CHECK_EQ_INT(run_cmd(cmd), 2);
    snprintf(cmd, sizeof cmd, "'%s' calibrate --weights 0.5,0.5,0.5,0.5 '%s/images' >/dev/null 2>'%s'",
             bin, test_shared_dir(), errp);
    CHECK_EQ_INT(run_cmd(cmd), 2);
    text = slurp(errp);
    CHECK(text != NULL);
    named = strstr(text, "must sum to 1") != NULL;
    free(text);
    CHECK(named);
    snprintf(cmd, sizeof cmd, "'%s' calibrate >/dev/null 2>'%s'", bin, errp);
    CHECK_EQ_INT(run_cmd(cmd), 2);
    /* values that used to pass: a NaN weight (the file written was refused by --calib)
     * and a width that sscanf wrapped to 1215752191 */
    snprintf(cmd, sizeof cmd, "'%s' calibrate --weights nan,0,0,1 '%s/images' >/dev/null 2>'%s'",
             bin, test_shared_dir(), errp);
    CHECK_EQ_INT(run_cmd(cmd), 2);
    text = slurp(errp);
    CHECK(text != NULL);
    named = strstr(text, "[weights] must be non-negative numbers") != NULL;
    free(text);
    CHECK(named);
    snprintf(cmd, sizeof cmd, "'%s' calibrate --ref 99999999999x1 '%s/images' >/dev/null 2>'%s'",
             bin, test_shared_dir(), errp);
    CHECK_EQ_INT(run_cmd(cmd), 2);
    text = slurp(errp);
    CHECK(text != NULL);
    named = strstr(text, "--ref: '99999999999x1' is not WxH with sides in 1..65500") != NULL;
    free(text);
    CHECK(named);

    /* a directory without images is named (it used to print only the usage text) */
    char dir[512];
    snprintf(dir, sizeof dir, "%s", test_tmp_path("no-images"));
    CHECK_EQ_INT(mkdir(dir, 0700), 0);
    snprintf(cmd, sizeof cmd, "'%s' calibrate '%s' >/dev/null 2>'%s'", bin, dir, errp);
    CHECK_EQ_INT(run_cmd(cmd), 2);
    text = slurp(errp);
    CHECK(text != NULL);
    named = strstr(text, "no-images: no .jpg .jpeg .png or .webp file in this directory\n"
                         "ferry calibrate: need at least 2 readable images, have 0\n") != NULL;
    free(text);
    CHECK(named);
}
