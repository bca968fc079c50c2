/* request — OpenAI chat-completions body → struct fy_request (contract in request.h,
 * user documentation in docs/request.md). */
#include "req/request.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "feat/image.h"
#include "util/b64.h"
#include "util/num.h"

#define PATH_MAX_LEN 128

void req_limits_default(struct req_limits *l)
{
    l->max_body_bytes = (size_t)32 << 20;
    l->max_depth = 64;
    l->max_messages = 1024;
    l->max_parts = 4096;
    l->max_images = FY_MAX_IMAGES;
    l->max_image_bytes = (size_t)20 << 20;
    l->max_pixels = FEAT_IMAGE_MAX_PIXELS;
    l->max_text_bytes = (size_t)4 << 20;
}

__attribute__((format(printf, 4, 5)))
static void fail(struct req_error *e, int status, const char *path, const char *fmt, ...)
{
    va_list ap;
    e->status = status;
    snprintf(e->path, sizeof e->path, "%s", path);
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
}

/* ==== UTF-8 and raw-byte checks ===================================================== */

long req_utf8_invalid_at(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        /* ASCII fast path, 8 bytes at a time (base64 image payloads are long ASCII) */
        while (n - i >= 8) {
            uint64_t w;
            memcpy(&w, p + i, 8);
            if (w & 0x8080808080808080ull) break;
            i += 8;
        }
        if (i >= n) break;
        unsigned c = p[i];
        if (c < 0x80) { i++; continue; }
        size_t len;
        unsigned cp, min;
        if ((c & 0xE0) == 0xC0) { len = 2; cp = c & 0x1F; min = 0x80; }
        else if ((c & 0xF0) == 0xE0) { len = 3; cp = c & 0x0F; min = 0x800; }
        else if ((c & 0xF8) == 0xF0) { len = 4; cp = c & 0x07; min = 0x10000; }
        else return (long)i;
        if (n - i < len) return (long)i;
        for (size_t k = 1; k < len; k++) {
            if ((p[i + k] & 0xC0) != 0x80) return (long)i;
            cp = cp << 6 | (p[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return (long)i;
        i += len;
    }
    return -1;
}

/* Deepest nesting of [ and { outside strings; stops at the first byte that goes past
 * max (returned in *at). O(n), no allocation: runs before cJSON sees the bytes. Strings
 * are skipped with memchr (base64 image payloads are megabytes of one string): the
 * closing quote is searched once per quote, backslashes between, so the scan stays
 * linear however many escapes a string holds. An unterminated string ends the scan
 * (cJSON reports it). */
static int depth_exceeds(const char *p, size_t n, int max, size_t *at)
{
    int d = 0;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (c == '"') {
            size_t j = i + 1, qpos = 0;
            int have_q = 0;
            for (;;) {
                if (!have_q || qpos < j) {
                    const char *q = j < n ? memchr(p + j, '"', n - j) : NULL;
                    if (!q) return 0;
                    qpos = (size_t)(q - p);
                    have_q = 1;
                }
                const char *bs = memchr(p + j, '\\', qpos - j);
                if (!bs) break;
                j = (size_t)(bs - p) + 2; /* the backslash and the character it escapes */
            }
            i = qpos;
        } else if (c == '[' || c == '{') {
            if (++d > max) { *at = i; return 1; }
        } else if (c == ']' || c == '}') {
            d--;
        }
    }
    return 0;
}

/* Offset of the first "\u0000" escape in the raw body, or -1. cJSON would cut the string
 * there, so the text ferry measures and forwards would silently lose its tail. An escape
 * is one when an odd number of backslashes precedes the 'u' ("\\u0000" is a backslash
 * and "u0000"). O(n) with memchr; runs before cJSON sees the bytes. */
static long nul_escape_at(const char *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        const char *bs = memchr(p + i, '\\', n - i);
        if (!bs) return -1;
        size_t j = (size_t)(bs - p), k = j;
        while (k < n && p[k] == '\\') k++;
        if ((k - j) % 2 == 1 && n - k >= 5 && !memcmp(p + k, "u0000", 5)) return (long)(k - 1);
        i = k;
    }
    return -1;
}

/* Bounded concatenation into a PATH_MAX_LEN buffer (truncates, always terminated). */
static void path_cat(char *dst, size_t *at, const char *s)
{
    while (*s && *at + 1 < PATH_MAX_LEN) dst[(*at)++] = *s++;
    dst[*at] = '\0';
}

/* dst = base + ".key" (or "key" when base is empty); dst may not alias base. */
static void path_key(char *dst, const char *base, const char *key)
{
    size_t at = 0;
    path_cat(dst, &at, base);
    if (*base) path_cat(dst, &at, ".");
    path_cat(dst, &at, key);
}

/* dst = base + "[i]" */
static void path_idx(char *dst, const char *base, int i)
{
    char num[16];
    size_t at = 0, k = sizeof num - 1;
    unsigned v = (unsigned)i;
    num[k] = '\0';
    do { num[--k] = (char)('0' + v % 10); v /= 10; } while (v && k > 0);
    path_cat(dst, &at, base);
    path_cat(dst, &at, "[");
    path_cat(dst, &at, num + k);
    path_cat(dst, &at, "]");
}

/* Every string value and key of the tree must be valid UTF-8 (the body is passed on to
 * model servers and its text is tokenised). Depth is already bounded. */
static int check_utf8_tree(const cJSON *node, const char *path, struct req_error *e)
{
    char sub[PATH_MAX_LEN];
    if (cJSON_IsString(node) && node->valuestring) {
        long at = req_utf8_invalid_at(node->valuestring, strlen(node->valuestring));
        if (at >= 0) {
            fail(e, 400, *path ? path : "body", "invalid UTF-8 at byte %ld of the string", at);
            return -1;
        }
    }
    int i = 0;
    for (const cJSON *c = node->child; c; c = c->next, i++) {
        if (cJSON_IsObject(node)) {
            const char *k = c->string ? c->string : "";
            if (req_utf8_invalid_at(k, strlen(k)) >= 0) {
                fail(e, 400, *path ? path : "body", "a key is not valid UTF-8");
                return -1;
            }
            path_key(sub, path, k);
        } else {
            path_idx(sub, path, i);
        }
        if (check_utf8_tree(c, sub, e) < 0) return -1;
    }
    return 0;
}

/* ==== typed field access ============================================================ */

/* The member `key` of obj, NULL if absent; an error if it occurs twice (a server further
 * on might read the other one). O(members). */
static int get_member(const cJSON *obj, const char *key, const char *path, cJSON **out,
                      struct req_error *e)
{
    cJSON *found = NULL;
    for (cJSON *c = obj->child; c; c = c->next) {
        if (c->string && !strcmp(c->string, key)) {
            if (found) {
                char p[PATH_MAX_LEN];
                path_key(p, path, key);
                fail(e, 400, p, "duplicate key");
                return -1;
            }
            found = c;
        }
    }
    *out = found;
    return 0;
}

/* Copies a string member into dst (NUL-terminated). Absent or null: dst unchanged. */
static int get_string(const cJSON *obj, const char *key, const char *path, char *dst,
                      size_t cap, struct req_error *e)
{
    cJSON *v;
    char p[PATH_MAX_LEN];
    if (get_member(obj, key, path, &v, e) < 0) return -1;
    if (!v || cJSON_IsNull(v)) return 0;
    path_key(p, path, key);
    if (!cJSON_IsString(v)) { fail(e, 400, p, "expected a string"); return -1; }
    size_t n = strlen(v->valuestring);
    if (n >= cap) {
        fail(e, 400, p, "string of %zu bytes is longer than %zu bytes", n, cap - 1);
        return -1;
    }
    memcpy(dst, v->valuestring, n + 1);
    return 0;
}

/* A number member within [lo, hi]. Absent or null: *dst unchanged. */
static int get_number(const cJSON *obj, const char *key, const char *path, double lo,
                      double hi, double *dst, struct req_error *e)
{
    cJSON *v;
    char p[PATH_MAX_LEN];
    if (get_member(obj, key, path, &v, e) < 0) return -1;
    if (!v || cJSON_IsNull(v)) return 0;
    path_key(p, path, key);
    if (!cJSON_IsNumber(v)) { fail(e, 400, p, "expected a number"); return -1; }
    double x = v->valuedouble;
    if (!(x >= lo && x <= hi)) {
        fail(e, 400, p, "%g is outside [%g, %g]", x, lo, hi);
        return -1;
    }
    *dst = x;
    return 0;
}

static int get_int(const cJSON *obj, const char *key, const char *path, int lo, int hi,
                   int *dst, struct req_error *e)
{
    double x = NAN;
    char p[PATH_MAX_LEN];
    if (get_number(obj, key, path, lo, hi, &x, e) < 0) return -1;
    if (isnan(x)) return 0;
    if (x != floor(x)) {
        path_key(p, path, key);
        fail(e, 400, p, "expected an integer, got %g", x);
        return -1;
    }
    *dst = (int)x;
    return 0;
}

static int get_bool(const cJSON *obj, const char *key, const char *path, int *dst,
                    struct req_error *e)
{
    cJSON *v;
    char p[PATH_MAX_LEN];
    if (get_member(obj, key, path, &v, e) < 0) return -1;
    if (!v || cJSON_IsNull(v)) return 0;
    path_key(p, path, key);
    if (!cJSON_IsBool(v)) { fail(e, 400, p, "expected true or false"); return -1; }
    *dst = cJSON_IsTrue(v) ? 1 : 0;
    return 0;
}

/* ==== preferences ==================================================================== */

static void prefs_default(struct fy_prefs *p)
{
    memset(p, 0, sizeof *p);
    p->tradeoff = -1;
    p->slo_ms = 0;
    p->min_quality = -1;
    p->privacy = FY_PRIV_ANY;
    p->max_cost_usd = -1;
}

static int parse_privacy(const char *s, enum fy_privacy *out)
{
    if (!strcasecmp(s, "edge-only") || !strcasecmp(s, "edge_only") || !strcasecmp(s, "edge")) {
        *out = FY_PRIV_EDGE_ONLY;
        return 0;
    }
    if (!strcasecmp(s, "any") || !strcasecmp(s, "none") || !*s) {
        *out = FY_PRIV_ANY;
        return 0;
    }
    return -1;
}

/* The top-level "ferry" object: {tradeoff, slo_ms, min_quality, privacy, max_cost_usd,
 * session}. Unknown keys are errors (typos must not silently do nothing). */
static int parse_ferry(const cJSON *f, struct fy_prefs *p, struct req_error *e)
{
    static const char *const known[] = {"tradeoff", "slo_ms", "min_quality", "privacy",
                                        "max_cost_usd", "session", NULL};
    if (!cJSON_IsObject(f)) { fail(e, 400, "ferry", "expected an object"); return -1; }
    for (const cJSON *c = f->child; c; c = c->next) {
        int ok = 0;
        for (int i = 0; known[i]; i++) ok |= !strcmp(c->string, known[i]);
        if (!ok) {
            char path[PATH_MAX_LEN];
            path_key(path, "ferry", c->string);
            fail(e, 400, path, "unknown preference (known: tradeoff, slo_ms, min_quality, "
                               "privacy, max_cost_usd, session)");
            return -1;
        }
    }
    if (get_number(f, "tradeoff", "ferry", 0, 1, &p->tradeoff, e) < 0) return -1;
    if (get_number(f, "slo_ms", "ferry", 0, 1e9, &p->slo_ms, e) < 0) return -1;
    if (get_number(f, "min_quality", "ferry", 0, 1, &p->min_quality, e) < 0) return -1;
    if (get_number(f, "max_cost_usd", "ferry", 0, 1e6, &p->max_cost_usd, e) < 0) return -1;
    if (get_string(f, "session", "ferry", p->session, sizeof p->session, e) < 0) return -1;
    char priv[32] = "";
    if (get_string(f, "privacy", "ferry", priv, sizeof priv, e) < 0) return -1;
    if (priv[0] && parse_privacy(priv, &p->privacy) < 0) {
        fail(e, 400, "ferry.privacy", "unknown privacy '%s' (expected \"edge-only\" or \"any\")",
             priv);
        return -1;
    }
    return 0;
}

static int header_number(const char *name, const char *value, double lo, double hi,
                         double *dst, struct req_error *e)
{
    char path[PATH_MAX_LEN], *end;
    snprintf(path, sizeof path, "header %s", name);
    errno = 0;
    double x = strtod(value, &end);
    while (*end == ' ' || *end == '\t') end++;
    if (end == value || *end || errno || !(x >= lo && x <= hi)) {
        fail(e, 400, path, "'%.64s' is not a number in [%g, %g]", value, lo, hi);
        return -1;
    }
    *dst = x;
    return 0;
}

int req_apply_header(struct fy_request *r, const char *name, const char *value,
                     struct req_error *e)
{
    if (strncasecmp(name, "x-ferry-", 8) != 0) return 1;
    const char *k = name + 8;
    struct fy_prefs *p = &r->prefs;
    char path[PATH_MAX_LEN];
    snprintf(path, sizeof path, "header %s", name);
    if (!strcasecmp(k, "tradeoff")) return header_number(name, value, 0, 1, &p->tradeoff, e);
    if (!strcasecmp(k, "slo-ms")) return header_number(name, value, 0, 1e9, &p->slo_ms, e);
    if (!strcasecmp(k, "min-quality"))
        return header_number(name, value, 0, 1, &p->min_quality, e);
    if (!strcasecmp(k, "max-cost-usd"))
        return header_number(name, value, 0, 1e6, &p->max_cost_usd, e);
    if (!strcasecmp(k, "privacy")) {
        if (parse_privacy(value, &p->privacy) < 0) {
            fail(e, 400, path, "unknown privacy '%.64s' (expected edge-only or any)", value);
            return -1;
        }
        return 0;
    }
    if (!strcasecmp(k, "session")) {
        size_t n = strlen(value);
        if (n >= sizeof p->session || req_utf8_invalid_at(value, n) >= 0) {
            fail(e, 400, path, "session id must be valid UTF-8 of at most %zu bytes",
                 sizeof p->session - 1);
            return -1;
        }
        memcpy(p->session, value, n + 1);
        return 0;
    }
    return 1;
}

/* ==== images ========================================================================= */

static const struct { const char *mime; enum fy_img_format fmt; } g_mimes[] = {
    {"image/jpeg", FY_FMT_JPEG}, {"image/jpg", FY_FMT_JPEG}, {"image/pjpeg", FY_FMT_JPEG},
    {"image/png", FY_FMT_PNG},   {"image/webp", FY_FMT_WEBP},
};

static const char *fmt_name(enum fy_img_format f)
{
    switch (f) {
    case FY_FMT_JPEG: return "JPEG";
    case FY_FMT_PNG: return "PNG";
    case FY_FMT_WEBP: return "WebP";
    default: return "unknown";
    }
}

/* data:[<media type>][;param]*;base64,<payload> (RFC 2397). Decodes the payload after
 * checking its decoded size, then reads format and size from the header only. */
static int parse_data_url(struct fy_image_ref *im, const char *url, const char *path,
                          const struct req_limits *l, struct req_error *e)
{
    const char *p = url + 5; /* after "data:" */
    const char *comma = strchr(p, ',');
    if (!comma) { fail(e, 400, path, "data URL without ','"); return -1; }
    size_t mlen = strcspn(p, ";,");
    char mime[64];
    if (mlen == 0) {
        fail(e, 415, path, "data URL without a media type (expected image/jpeg, image/png "
                           "or image/webp)");
        return -1;
    }
    snprintf(mime, sizeof mime, "%.*s", (int)(mlen < 63 ? mlen : 63), p);
    for (char *c = mime; *c; c++) *c = (char)tolower((unsigned char)*c);
    enum fy_img_format declared = FY_FMT_UNKNOWN;
    for (size_t i = 0; i < sizeof g_mimes / sizeof g_mimes[0]; i++)
        if (!strcmp(mime, g_mimes[i].mime)) declared = g_mimes[i].fmt;
    if (declared == FY_FMT_UNKNOWN) {
        fail(e, 415, path, "unsupported media type %s", mime);
        return -1;
    }
    /* parameters: the last one before ',' must be "base64" */
    bool is_b64 = comma - p >= 7 && !strncasecmp(comma - 7, ";base64", 7);
    if (!is_b64) {
        fail(e, 400, path, "data URL is not base64 (';base64' missing before ',')");
        return -1;
    }
    const char *b = comma + 1;
    size_t blen = strlen(b);
    /* the upper bound is enough unless it crosses the limit; then count exactly
     * (whitespace and padding do not decode) */
    size_t need = b64_decoded_max(blen);
    if (need > l->max_image_bytes) need = b64_decoded_len(b, blen);
    if (need > l->max_image_bytes) {
        fail(e, 413, path, "image of %zu bytes exceeds the limit of %zu bytes", need,
             l->max_image_bytes);
        return -1;
    }
    if (need == 0) { fail(e, 400, path, "empty image data"); return -1; }
    im->bytes = malloc(need);
    if (!im->bytes) { fail(e, 500, path, "out of memory"); return -1; }
    size_t got = 0;
    int rc = b64_decode(b, blen, B64_STD, im->bytes, need, &got);
    if (rc < 0) {
        if (rc == B64_EBADCHAR || rc == B64_EPAD)
            fail(e, 400, path, "%s at byte %zu of the base64 data", b64_strerror(rc), got);
        else
            fail(e, 400, path, "%s", b64_strerror(rc));
        return -1;
    }
    if (got == 0) { fail(e, 400, path, "empty image data"); return -1; }
    im->nbytes = got;
    enum fy_img_format actual = feat_image_sniff(im->bytes, got);
    if (actual == FY_FMT_UNKNOWN) {
        fail(e, 415, path, "data is not a JPEG, PNG or WebP image (declared %s)", mime);
        return -1;
    }
    if (actual != declared) {
        fail(e, 400, path, "declared %s but the data is %s", mime, fmt_name(actual));
        return -1;
    }
    char perr[160];
    int w = 0, h = 0;
    if (feat_image_probe(im->bytes, got, &im->format, &w, &h, perr, sizeof perr) < 0) {
        fail(e, 400, path, "%s", perr);
        return -1;
    }
    if (w <= 0 || h <= 0) {
        fail(e, 400, path, "image of %dx%d pixels has no pixels", w, h);
        return -1;
    }
    if ((uint64_t)w * (uint64_t)h > l->max_pixels) {
        fail(e, 413, path, "image of %dx%d pixels exceeds the limit of %llu pixels", w, h,
             (unsigned long long)l->max_pixels);
        return -1;
    }
    /* the decoder's own hard limit per side (a 1x100000 strip has few pixels) */
    if (w > FEAT_IMAGE_MAX_SIDE || h > FEAT_IMAGE_MAX_SIDE) {
        fail(e, 413, path, "image of %dx%d pixels has a side above the limit of %d px", w, h,
             FEAT_IMAGE_MAX_SIDE);
        return -1;
    }
    im->width = w;
    im->height = h;
    im->is_data = 1;
    return 0;
}

static int parse_image_part(struct fy_request *r, const cJSON *part, const char *ppath,
                            int msg, const struct req_limits *l, struct req_error *e)
{
    char path[PATH_MAX_LEN], upath[PATH_MAX_LEN];
    cJSON *iu, *url;
    if (get_member(part, "image_url", ppath, &iu, e) < 0) return -1;
    path_key(path, ppath, "image_url");
    if (!iu) { fail(e, 400, path, "missing"); return -1; }
    if (!cJSON_IsObject(iu)) { fail(e, 400, path, "expected an object {url, detail}"); return -1; }
    if (r->nimages >= l->max_images) {
        fail(e, 413, path, "more than %d images in the request", l->max_images);
        return -1;
    }
    struct fy_image_ref *im = &r->images[r->nimages];
    memset(im, 0, sizeof *im);
    im->message = msg;
    r->nimages++; /* counted now so that req_free releases im->bytes on error */

    if (get_member(iu, "url", path, &url, e) < 0) return -1;
    path_key(upath, path, "url");
    if (!url) { fail(e, 400, upath, "missing"); return -1; }
    if (!cJSON_IsString(url)) { fail(e, 400, upath, "expected a string"); return -1; }
    im->url = url->valuestring;
    im->url_node = url;

    cJSON *dv;
    char dpath[PATH_MAX_LEN];
    if (get_member(iu, "detail", path, &dv, e) < 0) return -1;
    path_key(dpath, path, "detail");
    im->detail = FY_DETAIL_AUTO;
    if (dv && !cJSON_IsNull(dv)) {
        const char *d = cJSON_IsString(dv) ? dv->valuestring : "";
        if (!strcmp(d, "auto")) im->detail = FY_DETAIL_AUTO;
        else if (!strcmp(d, "low")) im->detail = FY_DETAIL_LOW;
        else if (!strcmp(d, "high")) im->detail = FY_DETAIL_HIGH;
        else {
            fail(e, 400, dpath, "expected \"auto\", \"low\" or \"high\"");
            return -1;
        }
    }

    const char *u = im->url;
    if (!strncasecmp(u, "data:", 5)) return parse_data_url(im, u, upath, l, e);
    if (!strncasecmp(u, "https://", 8) || !strncasecmp(u, "http://", 7)) {
        im->is_data = 0;
        im->format = FY_FMT_UNKNOWN;
        return 0;
    }
    fail(e, 400, upath, "not a data: or http(s):// URL");
    return -1;
}

/* ==== messages ======================================================================= */

static int parse_role(const char *s, enum fy_msg_role *out)
{
    static const char *const names[] = {"system", "developer", "user", "assistant", "tool",
                                        "function"};
    for (int i = 0; i < 6; i++)
        if (!strcmp(s, names[i])) { *out = (enum fy_msg_role)i; return 0; }
    return -1;
}

static int text_part(struct fy_request *r, const cJSON *s, const char *path,
                     const struct req_limits *l, struct req_error *e)
{
    size_t n = strlen(s->valuestring);
    if (n > l->max_text_bytes) {
        fail(e, 413, path, "text of %zu bytes exceeds the limit of %zu bytes", n,
             l->max_text_bytes);
        return -1;
    }
    struct fy_part *p = &r->parts[r->nparts++];
    p->kind = FY_PART_TEXT;
    p->text = s->valuestring;
    p->text_len = n;
    p->image = -1;
    return 0;
}

static int parse_message(struct fy_request *r, const cJSON *m, int idx,
                         const struct req_limits *l, struct req_error *e)
{
    char mpath[PATH_MAX_LEN], path[PATH_MAX_LEN], ppath[PATH_MAX_LEN];
    path_idx(mpath, "messages", idx);
    if (!cJSON_IsObject(m)) { fail(e, 400, mpath, "expected an object"); return -1; }
    struct fy_message *msg = &r->messages[idx];
    char role[16] = "";
    cJSON *rv, *content;
    if (get_member(m, "role", mpath, &rv, e) < 0) return -1;
    path_key(path, mpath, "role");
    if (!rv) { fail(e, 400, path, "missing"); return -1; }
    if (!cJSON_IsString(rv)) { fail(e, 400, path, "expected a string"); return -1; }
    snprintf(role, sizeof role, "%s", rv->valuestring);
    if (strlen(rv->valuestring) >= sizeof role || parse_role(role, &msg->role) < 0) {
        fail(e, 400, path, "unknown role '%.32s' (expected system, developer, user, "
                           "assistant, tool or function)", rv->valuestring);
        return -1;
    }
    msg->first_part = r->nparts;
    msg->nparts = 0;
    msg->nimages = 0;

    if (get_member(m, "content", mpath, &content, e) < 0) return -1;
    path_key(path, mpath, "content");
    if (!content || cJSON_IsNull(content)) {
        if (msg->role == FY_MSG_ASSISTANT) return 0; /* e.g. tool_calls only */
        fail(e, 400, path, "missing");
        return -1;
    }
    if (cJSON_IsString(content)) {
        if (r->nparts >= l->max_parts) {
            fail(e, 413, path, "more than %d content parts in the request", l->max_parts);
            return -1;
        }
        if (text_part(r, content, path, l, e) < 0) return -1;
        msg->nparts = 1;
        return 0;
    }
    if (!cJSON_IsArray(content)) {
        fail(e, 400, path, "expected a string or an array of parts");
        return -1;
    }
    int k = 0;
    for (const cJSON *part = content->child; part; part = part->next, k++) {
        path_idx(ppath, path, k);
        if (r->nparts >= l->max_parts) {
            fail(e, 413, ppath, "more than %d content parts in the request", l->max_parts);
            return -1;
        }
        if (!cJSON_IsObject(part)) { fail(e, 400, ppath, "expected an object"); return -1; }
        cJSON *type, *txt;
        char tpath[PATH_MAX_LEN];
        if (get_member(part, "type", ppath, &type, e) < 0) return -1;
        path_key(tpath, ppath, "type");
        if (!type) { fail(e, 400, tpath, "missing"); return -1; }
        if (!cJSON_IsString(type)) { fail(e, 400, tpath, "expected a string"); return -1; }
        const char *t = type->valuestring;
        if (!strcmp(t, "text") || !strcmp(t, "refusal")) {
            if (get_member(part, t, ppath, &txt, e) < 0) return -1;
            path_key(tpath, ppath, t);
            if (!txt) { fail(e, 400, tpath, "missing"); return -1; }
            if (!cJSON_IsString(txt)) { fail(e, 400, tpath, "expected a string"); return -1; }
            if (text_part(r, txt, tpath, l, e) < 0) return -1;
        } else if (!strcmp(t, "image_url")) {
            if (parse_image_part(r, part, ppath, idx, l, e) < 0) return -1;
            struct fy_part *p = &r->parts[r->nparts++];
            p->kind = FY_PART_IMAGE;
            p->text = NULL;
            p->text_len = 0;
            p->image = r->nimages - 1;
            msg->nimages++;
        } else if (!strcmp(t, "input_audio") || !strcmp(t, "file") ||
                   !strcmp(t, "video_url") || !strcmp(t, "audio_url")) {
            fail(e, 415, tpath, "unsupported content part type '%s' (ferry routes text and "
                                "image_url parts)", t);
            return -1;
        } else {
            fail(e, 400, tpath, "unknown content part type '%.40s'", t);
            return -1;
        }
        msg->nparts++;
    }
    return 0;
}

/* Counts parts and images to size the arrays once (limits checked on the way). */
static int count_parts(const cJSON *msgs, int *nparts, struct req_error *e,
                       const struct req_limits *l)
{
    long n = 0;
    for (const cJSON *m = msgs->child; m; m = m->next) {
        const cJSON *c = cJSON_IsObject(m) ? cJSON_GetObjectItemCaseSensitive(m, "content") : NULL;
        if (cJSON_IsArray(c)) n += cJSON_GetArraySize(c);
        else n += 1;
        if (n > l->max_parts) {
            fail(e, 413, "messages", "more than %d content parts in the request", l->max_parts);
            return -1;
        }
    }
    *nparts = (int)n;
    return 0;
}

/* ==== top level ====================================================================== */

static int parse_top(struct fy_request *r, const struct req_limits *l, struct req_error *e)
{
    cJSON *root = r->json, *v;

    if (get_string(root, "model", "", r->model, sizeof r->model, e) < 0) return -1;
    if (get_bool(root, "stream", "", &r->stream, e) < 0) return -1;
    if (get_member(root, "stream_options", "", &v, e) < 0) return -1;
    if (v && !cJSON_IsNull(v)) {
        if (!cJSON_IsObject(v)) { fail(e, 400, "stream_options", "expected an object"); return -1; }
        if (get_bool(v, "include_usage", "stream_options", &r->include_usage, e) < 0) return -1;
    }
    int mt = 0, mct = 0;
    if (get_int(root, "max_tokens", "", 1, 100000000, &mt, e) < 0) return -1;
    if (get_int(root, "max_completion_tokens", "", 1, 100000000, &mct, e) < 0) return -1;
    r->max_tokens = mct ? mct : mt;
    if (get_number(root, "temperature", "", 0, 2, &r->temperature, e) < 0) return -1;
    if (get_number(root, "top_p", "", 0, 1, &r->top_p, e) < 0) return -1;
    if (get_string(root, "user", "", r->user, sizeof r->user, e) < 0) return -1;

    if (get_member(root, "stop", "", &v, e) < 0) return -1;
    if (v && !cJSON_IsNull(v)) {
        if (cJSON_IsString(v)) {
            r->nstop = 1;
        } else if (cJSON_IsArray(v)) {
            int k = 0;
            for (const cJSON *s = v->child; s; s = s->next, k++) {
                char p[PATH_MAX_LEN];
                path_idx(p, "stop", k);
                if (!cJSON_IsString(s)) { fail(e, 400, p, "expected a string"); return -1; }
                if (k >= 4) { fail(e, 400, p, "at most 4 stop sequences"); return -1; }
            }
            r->nstop = k;
        } else {
            fail(e, 400, "stop", "expected a string or an array of strings");
            return -1;
        }
    }

    /* metadata.answer / metadata.difficulty: reference answer and difficulty in [0,1]
     * used by the emulator; OpenAI metadata values are strings, so a numeric string is
     * accepted for difficulty. */
    if (get_member(root, "metadata", "", &v, e) < 0) return -1;
    if (v && !cJSON_IsNull(v)) {
        if (!cJSON_IsObject(v)) { fail(e, 400, "metadata", "expected an object"); return -1; }
        if (get_string(v, "answer", "metadata", r->answer, sizeof r->answer, e) < 0) return -1;
        cJSON *d;
        if (get_member(v, "difficulty", "metadata", &d, e) < 0) return -1;
        if (d && !cJSON_IsNull(d)) {
            double x = NAN;
            if (cJSON_IsNumber(d)) x = d->valuedouble;
            else if (cJSON_IsString(d) && util_parse_double(d->valuestring, 0, 1, &x) < 0)
                x = NAN;
            if (!(x >= 0 && x <= 1)) {
                fail(e, 400, "metadata.difficulty", "expected a number in [0, 1]");
                return -1;
            }
            r->difficulty = x;
        }
    }

    /* messages */
    cJSON *msgs;
    if (get_member(root, "messages", "", &msgs, e) < 0) return -1;
    if (!msgs) { fail(e, 400, "messages", "missing"); return -1; }
    if (!cJSON_IsArray(msgs)) { fail(e, 400, "messages", "expected an array"); return -1; }
    int nm = cJSON_GetArraySize(msgs);
    if (nm == 0) { fail(e, 400, "messages", "empty"); return -1; }
    if (nm > l->max_messages) {
        fail(e, 413, "messages", "%d messages exceed the limit of %d", nm, l->max_messages);
        return -1;
    }
    int np;
    if (count_parts(msgs, &np, e, l) < 0) return -1;
    int ni = l->max_images < FY_MAX_IMAGES ? l->max_images : FY_MAX_IMAGES;
    r->messages = calloc((size_t)nm, sizeof *r->messages);
    r->parts = calloc((size_t)np + 1, sizeof *r->parts);
    r->images = calloc((size_t)ni + 1, sizeof *r->images);
    if (!r->messages || !r->parts || !r->images) {
        fail(e, 500, "body", "out of memory");
        return -1;
    }
    struct req_limits lim = *l;
    lim.max_images = ni;
    lim.max_parts = np;
    int i = 0;
    for (const cJSON *m = msgs->child; m; m = m->next, i++) {
        if (parse_message(r, m, i, &lim, e) < 0) return -1;
        r->nmessages = i + 1;
    }

    /* ferry preferences, then removed so the pass-through body is what servers expect */
    if (get_member(root, "ferry", "", &v, e) < 0) return -1;
    if (v) {
        if (parse_ferry(v, &r->prefs, e) < 0) return -1;
        cJSON_Delete(cJSON_DetachItemViaPointer(root, v));
    }
    if (!r->prefs.session[0] && r->user[0]) memcpy(r->prefs.session, r->user, sizeof r->user);
    return 0;
}

struct fy_request *req_parse(const char *body, size_t len, const struct req_limits *l,
                             struct req_error *e)
{
    struct req_limits def;
    struct fy_request *r = NULL;
    size_t at = 0;
    if (!l) {
        req_limits_default(&def);
        l = &def;
    }
    memset(e, 0, sizeof *e);
    if (len > l->max_body_bytes) {
        fail(e, 413, "body", "%zu bytes exceed the limit of %zu bytes", len, l->max_body_bytes);
        return NULL;
    }
    if (len == 0) {
        fail(e, 400, "body", "empty");
        return NULL;
    }
    if (depth_exceeds(body, len, l->max_depth, &at)) {
        fail(e, 400, "body", "JSON nested deeper than %d levels (at byte %zu)", l->max_depth, at);
        return NULL;
    }
    long nul = nul_escape_at(body, len);
    if (nul >= 0) {
        fail(e, 400, "body", "\\u0000 (a NUL character) at byte %ld: not supported in strings",
             nul);
        return NULL;
    }
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(body, len, &end, 0);
    if (!root) {
        size_t off = end && end >= body && end <= body + len ? (size_t)(end - body) : 0;
        fail(e, 400, "body", "invalid JSON at byte %zu", off);
        return NULL;
    }
    /* trailing bytes other than whitespace are an error (cJSON stops after the value) */
    if (end) {
        for (const char *c = end; c < body + len; c++) {
            if (*c != ' ' && *c != '\t' && *c != '\r' && *c != '\n' && *c != '\0') {
                fail(e, 400, "body", "unexpected data after the JSON value at byte %zu",
                     (size_t)(c - body));
                cJSON_Delete(root);
                return NULL;
            }
        }
    }
    if (!cJSON_IsObject(root)) {
        fail(e, 400, "body", "expected a JSON object");
        cJSON_Delete(root);
        return NULL;
    }
    if (check_utf8_tree(root, "", e) < 0) {
        cJSON_Delete(root);
        return NULL;
    }
    r = calloc(1, sizeof *r);
    if (!r) {
        fail(e, 500, "body", "out of memory");
        cJSON_Delete(root);
        return NULL;
    }
    r->json = root;
    r->temperature = -1;
    r->top_p = -1;
    r->difficulty = -1;
    prefs_default(&r->prefs);
    if (parse_top(r, l, e) < 0) {
        req_free(r);
        return NULL;
    }
    return r;
}

int req_set_image_url(struct fy_request *r, int i, const char *url)
{
    if (!r || i < 0 || i >= r->nimages || !r->images[i].url_node) return -1;
    cJSON *n = r->images[i].url_node;
    /* cJSON_SetValuestring reuses the buffer when the new string fits, else reallocates */
    char *s = cJSON_SetValuestring(n, url);
    if (!s) return -1;
    r->images[i].url = s;
    return 0;
}

int req_last_user(const struct fy_request *r)
{
    for (int i = r->nmessages - 1; i >= 0; i--)
        if (r->messages[i].role == FY_MSG_USER) return i;
    return -1;
}

void req_free(struct fy_request *r)
{
    if (!r) return;
    for (int i = 0; i < r->nimages; i++) free(r->images[i].bytes);
    free(r->images);
    free(r->parts);
    free(r->messages);
    cJSON_Delete(r->json);
    free(r);
}
