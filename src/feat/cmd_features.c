/* cmd_features.c — `ferry features`: complexity features of image files and of
 * chat-completions request JSON files (the same code the gateway runs per request). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "feat/calib.h"
#include "feat/features.h"
#include "feat/image.h"
#include "feat/text.h"
#include "feat/tokens.h"
#include "req/request.h"
#include "util/file.h"
#include "util/num.h"

/* Inputs larger than this are refused; reading stops there (a request body limit of
 * 32 MiB and an image limit of FEAT_IMAGE_MAX_BYTES, whichever is larger). */
#define INPUT_MAX ((size_t)64 << 20)

static void usage(FILE *out)
{
    fprintf(out,
            "usage: ferry features [--json|--table] [--analysis-size N] [--calib FILE] INPUT...\n"
            "\n"
            "Prints the complexity features ferry routes on, for each INPUT:\n"
            "  an image file (JPEG, PNG, WebP): size, mean Sobel magnitude, gray entropy,\n"
            "    Laplacian variance, the MoA-Off scores C_res C_edge C_ent C_lap c_img and\n"
            "    the estimated visual tokens (Qwen2-VL, LLaVA-1.5, generic);\n"
            "  a request JSON file (OpenAI chat completions): estimated text tokens,\n"
            "    sentences, C_L C_ner c_text, task guess, dialogue turn and history, and\n"
            "    the image features of each data: URL image;\n"
            "  a directory: its *.jpg *.jpeg *.png *.webp *.json files, sorted by name;\n"
            "  '-': standard input (image or JSON, recognised by its first bytes).\n"
            "Formulas and units: docs/features.md.\n"
            "\n"
            "  --table             aligned columns, one row per image or request (default)\n"
            "  --json              one JSON object per image or request per line\n"
            "  --analysis-size N   longer side in px the image measures are taken at\n"
            "                      (default %d, 0 = full resolution)\n"
            "  --calib FILE        calibration file from `ferry calibrate` (default: the\n"
            "                      shipped one, data/calib/default.ini)\n"
            "  -h, --help          this text\n"
            "\n"
            "A bad input gets one line on stderr (file: problem); the other inputs are\n"
            "still processed.\n"
            "Exit status: 0, 1 when some input failed, 2 on a usage error.\n",
            FEAT_IMAGE_ANALYSIS_SIZE);
}

/* ==== input ========================================================================== */

/* ==== output ========================================================================= */

struct out {
    int json;
    int table_header_done;
};

/* Adds the image feature fields to o; returns o. */
static cJSON *image_json(cJSON *o, const struct fy_image_features *f)
{
    cJSON_AddStringToObject(o, "format", feat_image_format_name(f->format));
    cJSON_AddNumberToObject(o, "width", f->width);
    cJSON_AddNumberToObject(o, "height", f->height);
    cJSON_AddNumberToObject(o, "bytes", (double)f->bytes);
    cJSON_AddNumberToObject(o, "sobel_mean", f->sobel_mean);
    cJSON_AddNumberToObject(o, "entropy", f->entropy);
    cJSON_AddNumberToObject(o, "laplacian_var", f->laplacian_var);
    cJSON_AddNumberToObject(o, "c_res", f->c_res);
    cJSON_AddNumberToObject(o, "c_edge", f->c_edge);
    cJSON_AddNumberToObject(o, "c_ent", f->c_ent);
    cJSON_AddNumberToObject(o, "c_lap", f->c_lap);
    cJSON_AddNumberToObject(o, "c_img", f->c_img);
    cJSON_AddNumberToObject(o, "image_tokens", f->tokens[FY_VT_QWEN2VL]);
    cJSON *t = cJSON_AddObjectToObject(o, "tokens");
    for (int k = 0; k < FY_VT__N; k++)
        cJSON_AddNumberToObject(t, feat_vt_family_name((enum fy_vt_family)k), f->tokens[k]);
    return o;
}

static void print_json(cJSON *o)
{
    char *s = cJSON_PrintUnformatted(o);
    if (s) {
        puts(s);
        free(s);
    }
    cJSON_Delete(o);
}

static void table_header(struct out *o)
{
    if (o->table_header_done) return;
    o->table_header_done = 1;
    printf("%-34s %-4s %11s %7s %6s %9s %5s %5s %5s %5s %5s %6s %5s %6s %-7s\n", "input", "fmt",
           "size", "sobel", "entropy", "lap_var", "c_res", "c_edg", "c_ent", "c_lap", "c_img",
           "vtok", "ttok", "c_text", "task");
}

/* The table shows base names, cut from the left when still wider than the column. */
static const char *fit(const char *s, size_t w)
{
    const char *slash = strrchr(s, '/');
    if (slash && slash[1]) s = slash + 1;
    size_t n = strlen(s);
    if (n <= w) return s;
    s += n - w;
    while ((*s & 0xC0) == 0x80) s++; /* not inside a UTF-8 character */
    return s;
}

static void image_row(const char *name, const struct fy_image_features *f)
{
    char size[24];
    snprintf(size, sizeof size, "%dx%d", f->width, f->height);
    if (f->format == FY_FMT_UNKNOWN) {
        printf("%-34s %-4s %11s %7s %6s %9s %5s %5s %5s %5s %5s %6s\n", fit(name, 34), "url",
               "-", "-", "-", "-", "-", "-", "-", "-", "-", "-");
        return;
    }
    printf("%-34s %-4s %11s %7.2f %6.3f %9.1f %5.3f %5.3f %5.3f %5.3f %5.3f %6d\n",
           fit(name, 34), feat_image_format_name(f->format), size, f->sobel_mean, f->entropy,
           f->laplacian_var, f->c_res, f->c_edge, f->c_ent, f->c_lap, f->c_img,
           f->tokens[FY_VT_QWEN2VL]);
}

/* ==== one input ====================================================================== */

static int do_image(struct out *o, const char *name, const uint8_t *p, size_t n,
                    const struct feat_image_opts *io)
{
    struct fy_image_features f;
    char err[256];
    if (feat_image_analyze(p, n, io, &f, err, sizeof err) < 0) {
        fprintf(stderr, "ferry features: %s: %s\n", name, err);
        return -1;
    }
    if (o->json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "file", name);
        cJSON_AddStringToObject(j, "kind", "image");
        print_json(image_json(j, &f));
    } else {
        table_header(o);
        image_row(name, &f);
    }
    return 0;
}

static int do_request(struct out *o, const char *name, const char *p, size_t n,
                      const struct feat_image_opts *io)
{
    struct req_error e;
    struct fy_request *r = req_parse(p, n, NULL, &e);
    if (!r) {
        fprintf(stderr, "ferry features: %s: %s: %s (HTTP %d)\n", name, e.path, e.msg, e.status);
        return -1;
    }
    static struct fy_features f; /* 2 KB of n-grams + 16 images: not on the stack */
    char err[256];
    if (feat_request(r, io, &f, err, sizeof err) < 0) {
        fprintf(stderr, "ferry features: %s: %s\n", name, err);
        req_free(r);
        return -1;
    }
    int vtok = 0;
    for (int i = 0; i < f.nimages; i++) vtok += f.img[i].tokens[FY_VT_QWEN2VL];
    if (o->json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "file", name);
        cJSON_AddStringToObject(j, "kind", "request");
        cJSON_AddStringToObject(j, "model", r->model);
        cJSON_AddNumberToObject(j, "messages", r->nmessages);
        cJSON_AddNumberToObject(j, "text_tokens", f.text_tokens);
        cJSON_AddNumberToObject(j, "last_text_tokens", f.last_text_tokens);
        cJSON_AddNumberToObject(j, "sentences", f.sentences);
        cJSON_AddNumberToObject(j, "c_L", f.c_L);
        cJSON_AddNumberToObject(j, "c_ner", f.c_ner);
        cJSON_AddNumberToObject(j, "c_text", f.c_text);
        cJSON_AddStringToObject(j, "task", feat_task_name(f.task));
        cJSON_AddNumberToObject(j, "turn", f.turn);
        cJSON_AddNumberToObject(j, "history_tokens", f.history_tokens);
        cJSON_AddNumberToObject(j, "history_images", f.history_images);
        cJSON_AddNumberToObject(j, "max_out_tokens", f.max_out_tokens);
        cJSON_AddNumberToObject(j, "image_tokens", vtok);
        cJSON *imgs = cJSON_AddArrayToObject(j, "images");
        for (int i = 0; i < f.nimages; i++) {
            cJSON *im = image_json(cJSON_CreateObject(), &f.img[i]);
            if (!r->images[i].is_data) cJSON_AddStringToObject(im, "url", r->images[i].url);
            cJSON_AddItemToArray(imgs, im);
        }
        print_json(j);
    } else {
        table_header(o);
        char size[24];
        snprintf(size, sizeof size, "%d msg", r->nmessages);
        printf("%-34s %-4s %11s %7s %6s %9s %5s %5s %5s %5s %5s %6d %5d %6.3f %-7s\n",
               fit(name, 34), "req", size, "", "", "", "", "", "", "", "", vtok, f.text_tokens,
               f.c_text, feat_task_name(f.task));
        for (int i = 0; i < f.nimages; i++) {
            char sub[64];
            snprintf(sub, sizeof sub, "  image %d", i);
            image_row(sub, &f.img[i]);
        }
    }
    req_free(r);
    return 0;
}

static int do_input(struct out *o, const char *path, const struct feat_image_opts *io)
{
    uint8_t *raw = NULL;
    char err[4400]; /* "PATH: problem" */
    size_t n = 0;
    if (util_read_file(path, INPUT_MAX, &raw, &n, err, sizeof err) < 0) {
        fprintf(stderr, "ferry features: %s\n", err);
        return -1;
    }
    char *data = (char *)raw;
    int rc;
    const char *q = data;
    while (q < data + n && (*q == ' ' || *q == '\t' || *q == '\r' || *q == '\n')) q++;
    /* a UTF-8 byte order mark (some editors write one) is not part of the request */
    size_t bom = n >= 3 && !memcmp(data, "\xef\xbb\xbf", 3) ? 3 : 0;
    if (bom) {
        q = data + bom;
        while (q < data + n && (*q == ' ' || *q == '\t' || *q == '\r' || *q == '\n')) q++;
    }
    if (n == 0) {
        fprintf(stderr, "ferry features: %s: empty file\n", path);
        rc = -1;
    } else if (feat_image_sniff((const uint8_t *)data, n) != FY_FMT_UNKNOWN) {
        rc = do_image(o, path, (const uint8_t *)data, n, io);
    } else if (q < data + n && (*q == '{' || *q == '[')) { /* '[': the parser says why not */
        rc = do_request(o, path, data + bom, n - bom, io);
    } else {
        fprintf(stderr, "ferry features: %s: neither a JPEG, PNG or WebP image nor a JSON "
                        "request\n", path);
        rc = -1;
    }
    free(data);
    return rc;
}

static int do_path(struct out *o, const char *path, const struct feat_image_opts *io)
{
    static const char *const exts[] = {".jpg", ".jpeg", ".png", ".webp", ".json", NULL};
    struct stat st;
    if (strcmp(path, "-") && stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        char **files, err[600];
        int k = util_list_dir(path, exts, &files, err, sizeof err);
        if (k < 0) {
            fprintf(stderr, "ferry features: %s\n", err);
            return -1;
        }
        if (k == 0) {
            fprintf(stderr, "ferry features: %s: no .jpg .jpeg .png .webp or .json file in this "
                            "directory\n", path);
            return -1;
        }
        int bad = 0;
        for (int i = 0; i < k; i++)
            if (do_input(o, files[i], io) < 0) bad = 1;
        util_free_list(files, k);
        return bad ? -1 : 0;
    }
    return do_input(o, path, io);
}

int cmd_features(int argc, char **argv)
{
    struct out o = {0};
    struct feat_image_opts io;
    struct feat_calib calib;
    feat_image_opts_default(&io);
    /* options may come before or after the inputs; after "--" everything is an input */
    char **inputs = calloc((size_t)argc, sizeof *inputs);
    int ninputs = 0, rest = 0, rc = 2;
    if (!inputs) {
        fprintf(stderr, "ferry features: out of memory\n");
        return 1;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (rest || a[0] != '-' || !a[1]) { /* "-" is standard input */
            inputs[ninputs++] = argv[i];
        } else if (!strcmp(a, "--")) {
            rest = 1;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            rc = 0;
            goto out;
        } else if (!strcmp(a, "--json")) {
            o.json = 1;
        } else if (!strcmp(a, "--table")) {
            o.json = 0;
        } else if ((!strcmp(a, "--analysis-size") || !strcmp(a, "--calib")) && !v) {
            fprintf(stderr, "ferry features: %s needs a value (try --help)\n", a);
            goto out;
        } else if (!strcmp(a, "--analysis-size")) {
            if (util_parse_int(argv[++i], 0, FEAT_IMAGE_MAX_SIDE, &io.analysis_size) < 0) {
                fprintf(stderr, "ferry features: --analysis-size: '%s' is not a size in px "
                                "(0..%d)\n", v, FEAT_IMAGE_MAX_SIDE);
                goto out;
            }
        } else if (!strcmp(a, "--calib")) {
            char err[256];
            if (feat_calib_load(argv[++i], &calib, err, sizeof err) < 0) {
                fprintf(stderr, "ferry features: --calib: %s\n", err);
                goto out;
            }
            io.calib = &calib;
        } else {
            fprintf(stderr, "ferry features: unknown option %s (try --help)\n", a);
            goto out;
        }
    }
    if (!ninputs) {
        usage(stderr);
        goto out;
    }
    rc = 0;
    for (int i = 0; i < ninputs; i++) {
        if (do_path(&o, inputs[i], &io) < 0) rc = 1;
        fflush(stdout);
    }
out:
    free(inputs);
    return rc;
}
