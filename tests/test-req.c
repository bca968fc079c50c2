/* test-req — base64 (vs OpenSSL's EVP_DecodeBlock/EVP_EncodeBlock as an oracle) and the
 * chat-completions request parser: every error path with its status, path and message,
 * the limits (a data URL whose header claims 100000x100000 is refused before any pixel
 * allocation), pass-through of unknown fields, the "ferry" object and X-Ferry-* headers. */
#include <cjson/cJSON.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <turbojpeg.h>

#include "feat/image.h"
#include "req/request.h"
#include "test.h"
#include "util/b64.h"
#include "util/buf.h"
#include "util/file.h"
#include "util/rng.h"

/* ==== helpers ======================================================================== */

static uint8_t *shared_image(const char *name, size_t *n)
{
    char path[512], err[700];
    snprintf(path, sizeof path, "%s/images/%s", test_shared_dir(), name);
    uint8_t *p;
    if (util_read_file(path, 0, &p, n, err, sizeof err) < 0) {
        fprintf(stderr, "  %s\n", err);
        return NULL;
    }
    return p;
}

/* "data:<mime>;base64,<b64 of bytes>" (malloc'd) */
static char *data_url(const char *mime, const uint8_t *p, size_t n)
{
    size_t head = strlen(mime) + 13;
    char *s = malloc(head + b64_encoded_len(n, 1) + 1);
    int k = sprintf(s, "data:%s;base64,", mime);
    b64_encode(p, n, B64_STD, 1, s + k);
    return s;
}

/* A request with one user message: text + one image_url part with the given url. */
static char *image_request(const char *url)
{
    struct buf b;
    buf_init(&b);
    buf_printf(&b, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":["
                   "{\"type\":\"text\",\"text\":\"What is this?\"},"
                   "{\"type\":\"image_url\",\"image_url\":{\"url\":\"%s\"}}]}]}", url);
    return buf_steal(&b);
}

static struct fy_request *parse(const char *s, struct req_error *e)
{
    return req_parse(s, strlen(s), NULL, e);
}

/* Parses s, expects an error with this status, exact path and a message containing msg. */
#define EXPECT_ERR(s, st, p, m)                                                          \
    do {                                                                               \
        struct req_error e_;                                                           \
        struct fy_request *r_ = parse((s), &e_);                                       \
        if (r_) { req_free(r_); CHECK(!"parse should have failed"); }                  \
        CHECK_EQ_INT(e_.status, (st));                                                 \
        CHECK_STR(e_.path, (p));                                                       \
        if (!strstr(e_.msg, (m))) CHECK_STR(e_.msg, (m));                              \
    } while (0)

static const char *g_jpeg = "tiny-thumb-chelsea.jpg";
static const char *g_png = "tiny-palette-10x10.png";
static const char *g_webp = "flat-gray-256.webp";

/* ==== base64 ========================================================================= */

TEST(b64_roundtrip_vs_openssl_encoder)
{
    struct rng rg;
    rng_seed(&rg, 42);
    uint8_t in[300], out[300];
    char ours[420], theirs[420];
    for (int t = 0; t < 2000; t++) {
        size_t n = rng_u64(&rg) % sizeof in;
        for (size_t i = 0; i < n; i++) in[i] = (uint8_t)rng_u64(&rg);
        size_t lo = b64_encode(in, n, B64_STD, 1, ours);
        int lt = EVP_EncodeBlock((unsigned char *)theirs, in, (int)n);
        CHECK_EQ_INT(lo, lt);
        CHECK_STR(ours, theirs);
        size_t got = 0;
        CHECK_EQ_INT(b64_decode(theirs, (size_t)lt, B64_STD, out, sizeof out, &got), 0);
        CHECK_EQ_INT(got, n);
        CHECK(memcmp(in, out, n) == 0);
        CHECK_EQ_INT(b64_decoded_len(theirs, (size_t)lt), n);
        CHECK(b64_decoded_max((size_t)lt) >= n);
    }
}

/* Random strings over the alphabet (with random padding) decoded by both; OpenSSL keeps
 * the zero bytes of padding in its count, so ours must be its output minus the pads. */
TEST(b64_decode_vs_evp_decodeblock)
{
    static const char alpha[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    struct rng rg;
    rng_seed(&rg, 7);
    char s[256];
    uint8_t ours[256], theirs[256];
    for (int t = 0; t < 5000; t++) {
        size_t groups = 1 + rng_u64(&rg) % 40, n = groups * 4;
        for (size_t i = 0; i < n; i++) s[i] = alpha[rng_u64(&rg) % 64];
        int pads = (int)(rng_u64(&rg) % 3);
        for (int k = 0; k < pads; k++) s[n - 1 - k] = '=';
        s[n] = 0;
        int lt = EVP_DecodeBlock(theirs, (const unsigned char *)s, (int)n);
        size_t got = 0;
        int rc = b64_decode(s, n, B64_STD, ours, sizeof ours, &got);
        CHECK(lt >= 0);
        CHECK_EQ_INT(rc, 0);
        CHECK_EQ_INT(got, (size_t)lt - (size_t)pads);
        CHECK(memcmp(ours, theirs, got) == 0);
        /* one invalid byte anywhere: both refuse */
        size_t at = rng_u64(&rg) % (n - (size_t)pads);
        char saved = s[at];
        s[at] = "!*.~\x80\x01"[rng_u64(&rg) % 6];
        CHECK(EVP_DecodeBlock(theirs, (const unsigned char *)s, (int)n) < 0);
        CHECK_EQ_INT(b64_decode(s, n, B64_STD, ours, sizeof ours, &got), B64_EBADCHAR);
        CHECK_EQ_INT(got, at);
        s[at] = saved;
    }
}

TEST(b64_rules)
{
    uint8_t out[64];
    size_t n = 0;
    /* unpadded, padded, whitespace anywhere */
    CHECK_EQ_INT(b64_decode("TWFu", 4, B64_STD, out, sizeof out, &n), 0);
    CHECK_EQ_INT(n, 3);
    CHECK(!memcmp(out, "Man", 3));
    CHECK_EQ_INT(b64_decode("TWE", 3, B64_STD, out, sizeof out, &n), 0);
    CHECK_EQ_INT(n, 2);
    CHECK_EQ_INT(b64_decode("TWE=", 4, B64_STD, out, sizeof out, &n), 0);
    CHECK_EQ_INT(n, 2);
    CHECK_EQ_INT(b64_decode("TQ==\r\n", 6, B64_STD, out, sizeof out, &n), 0);
    CHECK_EQ_INT(n, 1);
    CHECK_EQ_INT(b64_decode(" T W\nF u\t", 9, B64_STD, out, sizeof out, &n), 0);
    CHECK_EQ_INT(n, 3);
    CHECK_EQ_INT(b64_decode("", 0, B64_STD, out, sizeof out, &n), 0);
    CHECK_EQ_INT(n, 0);
    /* padding errors */
    CHECK_EQ_INT(b64_decode("TWE==", 5, B64_STD, out, sizeof out, &n), B64_EPAD);
    CHECK_EQ_INT(b64_decode("TQ=", 3, B64_STD, out, sizeof out, &n), B64_EPAD);
    CHECK_EQ_INT(b64_decode("TQ==TWFu", 8, B64_STD, out, sizeof out, &n), B64_EPAD);
    CHECK_EQ_INT(n, 4);
    CHECK_EQ_INT(b64_decode("=", 1, B64_STD, out, sizeof out, &n), B64_EPAD);
    CHECK_EQ_INT(b64_decode("TWFuT", 5, B64_STD, out, sizeof out, &n), B64_ETRUNC);
    /* alphabets: 0xfb 0xff -> "+/8" standard, "-_8" URL; each refuses the other's */
    static const uint8_t hi[2] = {0xfb, 0xff};
    char enc[8];
    CHECK_EQ_INT(b64_encode(hi, 2, B64_STD, 0, enc), 3);
    CHECK_STR(enc, "+/8");
    CHECK_EQ_INT(b64_encode(hi, 2, B64_URL, 1, enc), 4);
    CHECK_STR(enc, "-_8=");
    CHECK_EQ_INT(b64_decode("-_8", 3, B64_URL, out, sizeof out, &n), 0);
    CHECK(n == 2 && out[0] == 0xfb && out[1] == 0xff);
    CHECK_EQ_INT(b64_decode("-_8", 3, B64_STD, out, sizeof out, &n), B64_EBADCHAR);
    CHECK_EQ_INT(b64_decode("+/8", 3, B64_URL, out, sizeof out, &n), B64_EBADCHAR);
    /* output room is respected */
    CHECK_EQ_INT(b64_decode("TWFu", 4, B64_STD, out, 2, &n), B64_ESPACE);
    CHECK_EQ_INT(b64_decode("TWE", 3, B64_STD, out, 1, &n), B64_ESPACE);
    CHECK_EQ_INT(b64_encoded_len(4, 0), 6);
    CHECK_EQ_INT(b64_encoded_len(4, 1), 8);
}

/* ==== request: the happy paths ======================================================= */

TEST(req_minimal_and_fields)
{
    struct req_error e;
    const char *s =
        "{\"model\":\"qwen2-vl-2b\",\"stream\":true,\"stream_options\":{\"include_usage\":true},"
        "\"max_tokens\":50,\"max_completion_tokens\":64,\"temperature\":0.2,\"top_p\":0.9,"
        "\"stop\":[\"\\n\\n\",\"END\"],\"user\":\"alice\","
        "\"messages\":[{\"role\":\"system\",\"content\":\"Be brief.\"},"
        "{\"role\":\"user\",\"content\":\"Hi \\u00e9\"}]}";
    struct fy_request *r = parse(s, &e);
    if (!r) fprintf(stderr, "  %s: %s\n", e.path, e.msg);
    CHECK(r);
    CHECK_STR(r->model, "qwen2-vl-2b");
    CHECK_EQ_INT(r->stream, 1);
    CHECK_EQ_INT(r->include_usage, 1);
    CHECK_EQ_INT(r->max_tokens, 64); /* max_completion_tokens wins */
    CHECK_NEAR(r->temperature, 0.2, 1e-12);
    CHECK_NEAR(r->top_p, 0.9, 1e-12);
    CHECK_EQ_INT(r->nstop, 2);
    CHECK_STR(r->user, "alice");
    CHECK_STR(r->prefs.session, "alice"); /* session defaults to user */
    CHECK_EQ_INT(r->nmessages, 2);
    CHECK_EQ_INT(r->messages[0].role, FY_MSG_SYSTEM);
    CHECK_EQ_INT(r->messages[1].role, FY_MSG_USER);
    CHECK_EQ_INT(req_last_user(r), 1);
    const struct fy_part *p = &r->parts[r->messages[1].first_part];
    CHECK_EQ_INT(p->kind, FY_PART_TEXT);
    CHECK_STR(p->text, "Hi \xc3\xa9");
    CHECK_EQ_INT(p->text_len, 5);
    CHECK(r->prefs.tradeoff < 0 && r->prefs.min_quality < 0 && r->prefs.max_cost_usd < 0);
    CHECK(r->difficulty < 0);
    req_free(r);

    /* unset optional fields */
    r = parse("{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", &e);
    CHECK(r);
    CHECK_STR(r->model, "");
    CHECK(r->temperature < 0 && r->top_p < 0 && r->max_tokens == 0 && !r->stream);
    CHECK_STR(r->prefs.session, "");
    req_free(r);
}

TEST(req_dialogue_parts_and_null_assistant)
{
    struct req_error e;
    const char *s =
        "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},"
        "{\"type\":\"image_url\",\"image_url\":{\"url\":\"https://x.test/a.jpg\",\"detail\":\"low\"}}]},"
        "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[]},"
        "{\"role\":\"tool\",\"content\":\"42\",\"tool_call_id\":\"t1\"},"
        "{\"role\":\"assistant\",\"content\":[{\"type\":\"refusal\",\"refusal\":\"no\"}]},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"image_url\",\"image_url\":{\"url\":\"http://x.test/b.png\"}},"
        "{\"type\":\"text\",\"text\":\"and b?\"}]}]}";
    struct fy_request *r = parse(s, &e);
    if (!r) fprintf(stderr, "  %s: %s\n", e.path, e.msg);
    CHECK(r);
    CHECK_EQ_INT(r->nmessages, 5);
    CHECK_EQ_INT(r->nimages, 2);
    CHECK_EQ_INT(r->messages[1].nparts, 0);
    CHECK_EQ_INT(r->messages[3].nparts, 1);
    CHECK_STR(r->parts[r->messages[3].first_part].text, "no");
    CHECK_EQ_INT(r->images[0].is_data, 0);
    CHECK_STR(r->images[0].url, "https://x.test/a.jpg");
    CHECK_EQ_INT(r->images[0].detail, FY_DETAIL_LOW);
    CHECK_EQ_INT(r->images[0].message, 0);
    CHECK_EQ_INT(r->images[1].message, 4);
    CHECK_EQ_INT(r->messages[4].nimages, 1);
    const struct fy_part *p = &r->parts[r->messages[4].first_part];
    CHECK_EQ_INT(p->kind, FY_PART_IMAGE);
    CHECK_EQ_INT(p->image, 1);
    CHECK_EQ_INT(req_last_user(r), 4);
    req_free(r);
}

/* A real JPEG as a data URL: size from the header agrees with libturbojpeg's own reader. */
TEST(req_data_url_images)
{
    const char *files[3] = {g_jpeg, g_png, g_webp};
    const char *mimes[3] = {"image/jpeg", "image/png", "image/webp"};
    enum fy_img_format fmts[3] = {FY_FMT_JPEG, FY_FMT_PNG, FY_FMT_WEBP};
    for (int i = 0; i < 3; i++) {
        size_t n;
        uint8_t *img = shared_image(files[i], &n);
        CHECK(img);
        char *url = data_url(mimes[i], img, n);
        char *body = image_request(url);
        struct req_error e;
        struct fy_request *r = parse(body, &e);
        if (!r) fprintf(stderr, "  %s: %s: %s\n", files[i], e.path, e.msg);
        CHECK(r);
        CHECK_EQ_INT(r->nimages, 1);
        CHECK_EQ_INT(r->images[0].is_data, 1);
        CHECK_EQ_INT(r->images[0].format, fmts[i]);
        CHECK_EQ_INT(r->images[0].nbytes, n);
        CHECK(memcmp(r->images[0].bytes, img, n) == 0);
        CHECK(r->images[0].width > 0 && r->images[0].height > 0);
        if (fmts[i] == FY_FMT_JPEG) {
            tjhandle tj = tjInitDecompress();
            int w = 0, h = 0, ss = 0, cs = 0;
            CHECK_EQ_INT(tjDecompressHeader3(tj, img, (unsigned long)n, &w, &h, &ss, &cs), 0);
            tjDestroy(tj);
            CHECK_EQ_INT(r->images[0].width, w);
            CHECK_EQ_INT(r->images[0].height, h);
        }
        if (fmts[i] == FY_FMT_PNG) { /* IHDR: width, height big-endian at 16 and 20 */
            CHECK_EQ_INT(r->images[0].width, (img[16] << 24 | img[17] << 16 | img[18] << 8 | img[19]));
            CHECK_EQ_INT(r->images[0].height, (img[20] << 24 | img[21] << 16 | img[22] << 8 | img[23]));
        }
        req_free(r);
        free(body);
        free(url);
        free(img);
    }
}

TEST(req_passthrough_unknown_fields_and_ferry_removed)
{
    struct req_error e;
    const char *s =
        "{\"model\":\"m\",\"seed\":7,\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\","
        "\"parameters\":{\"type\":\"object\",\"properties\":{}}}}],"
        "\"response_format\":{\"type\":\"json_object\"},\"logit_bias\":{\"50256\":-100},"
        "\"ferry\":{\"tradeoff\":0.25,\"slo_ms\":1500,\"min_quality\":0.7,\"privacy\":\"edge-only\","
        "\"max_cost_usd\":0.002,\"session\":\"dlg-9\"},\"user\":\"bob\","
        "\"messages\":[{\"role\":\"user\",\"content\":\"x\",\"name\":\"bob\"}]}";
    struct fy_request *r = parse(s, &e);
    CHECK(r);
    CHECK_NEAR(r->prefs.tradeoff, 0.25, 1e-12);
    CHECK_NEAR(r->prefs.slo_ms, 1500, 1e-9);
    CHECK_NEAR(r->prefs.min_quality, 0.7, 1e-12);
    CHECK_EQ_INT(r->prefs.privacy, FY_PRIV_EDGE_ONLY);
    CHECK_NEAR(r->prefs.max_cost_usd, 0.002, 1e-12);
    CHECK_STR(r->prefs.session, "dlg-9"); /* explicit session beats user */
    /* serialise what the gateway would forward and compare the unknown fields */
    char *out = cJSON_PrintUnformatted(r->json);
    cJSON *fwd = cJSON_Parse(out), *orig = cJSON_Parse(s);
    CHECK(fwd && orig);
    CHECK(!cJSON_GetObjectItemCaseSensitive(fwd, "ferry"));
    static const char *keep[] = {"seed", "tools", "response_format", "logit_bias", "user",
                                 "model", "messages"};
    for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++) {
        cJSON *a = cJSON_GetObjectItemCaseSensitive(orig, keep[i]);
        cJSON *b = cJSON_GetObjectItemCaseSensitive(fwd, keep[i]);
        if (!cJSON_Compare(a, b, 1)) CHECK_STR(keep[i], "(field changed)");
    }
    cJSON_Delete(fwd);
    cJSON_Delete(orig);
    free(out);
    req_free(r);
}

TEST(req_headers)
{
    struct req_error e;
    struct fy_request *r = parse("{\"user\":\"u1\",\"ferry\":{\"tradeoff\":0.9},"
                                 "\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", &e);
    CHECK(r);
    CHECK_EQ_INT(req_apply_header(r, "X-Ferry-Tradeoff", "0.1", &e), 0);
    CHECK_NEAR(r->prefs.tradeoff, 0.1, 1e-12); /* header overrides body */
    CHECK_EQ_INT(req_apply_header(r, "x-ferry-slo-ms", " 800", &e), 0);
    CHECK_NEAR(r->prefs.slo_ms, 800, 1e-9);
    CHECK_EQ_INT(req_apply_header(r, "X-FERRY-MIN-QUALITY", "0.5", &e), 0);
    CHECK_NEAR(r->prefs.min_quality, 0.5, 1e-12);
    CHECK_EQ_INT(req_apply_header(r, "X-Ferry-Max-Cost-Usd", "0.01", &e), 0);
    CHECK_NEAR(r->prefs.max_cost_usd, 0.01, 1e-12);
    CHECK_EQ_INT(req_apply_header(r, "X-Ferry-Privacy", "edge-only", &e), 0);
    CHECK_EQ_INT(r->prefs.privacy, FY_PRIV_EDGE_ONLY);
    CHECK_STR(r->prefs.session, "u1");
    CHECK_EQ_INT(req_apply_header(r, "X-Ferry-Session", "s-2", &e), 0);
    CHECK_STR(r->prefs.session, "s-2");
    /* not ours: ignored */
    CHECK_EQ_INT(req_apply_header(r, "Content-Type", "application/json", &e), 1);
    CHECK_EQ_INT(req_apply_header(r, "X-Ferry-Policy", "qlmio", &e), 1);
    /* bad values */
    CHECK_EQ_INT(req_apply_header(r, "X-Ferry-Tradeoff", "1.5", &e), -1);
    CHECK_EQ_INT(e.status, 400);
    CHECK_STR(e.path, "header X-Ferry-Tradeoff");
    CHECK(strstr(e.msg, "'1.5' is not a number in [0, 1]"));
    CHECK_EQ_INT(req_apply_header(r, "X-Ferry-Slo-Ms", "fast", &e), -1);
    CHECK_EQ_INT(req_apply_header(r, "X-Ferry-Slo-Ms", "12ms", &e), -1);
    CHECK_EQ_INT(req_apply_header(r, "X-Ferry-Privacy", "cloud-please", &e), -1);
    CHECK(strstr(e.msg, "unknown privacy 'cloud-please'"));
    CHECK_EQ_INT(req_apply_header(r, "X-Ferry-Session", "\xff\xfe", &e), -1);
    CHECK_NEAR(r->prefs.tradeoff, 0.1, 1e-12); /* unchanged by the failed ones */
    req_free(r);
}

TEST(req_metadata)
{
    struct req_error e;
    struct fy_request *r = parse("{\"metadata\":{\"answer\":\"B\",\"difficulty\":\"0.35\",\"x\":\"y\"},"
                                 "\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", &e);
    CHECK(r);
    CHECK_STR(r->answer, "B");
    CHECK_NEAR(r->difficulty, 0.35, 1e-12);
    req_free(r);
    r = parse("{\"metadata\":{\"difficulty\":0.8},\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", &e);
    CHECK(r);
    CHECK_NEAR(r->difficulty, 0.8, 1e-12);
    CHECK_STR(r->answer, "");
    req_free(r);
    EXPECT_ERR("{\"metadata\":{\"difficulty\":\"hard\"},\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
               400, "metadata.difficulty", "expected a number in [0, 1]");
    EXPECT_ERR("{\"metadata\":[1],\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
               400, "metadata", "expected an object");
}

TEST(req_set_image_url_rewrites_passthrough)
{
    struct req_error e;
    char *body = image_request("https://x.test/big.jpg");
    struct fy_request *r = parse(body, &e);
    CHECK(r);
    CHECK_EQ_INT(req_set_image_url(r, 0, "data:image/jpeg;base64,AAAA-a-longer-url-than-before"), 0);
    CHECK_STR(r->images[0].url, "data:image/jpeg;base64,AAAA-a-longer-url-than-before");
    char *out = cJSON_PrintUnformatted(r->json);
    CHECK(strstr(out, "\"url\":\"data:image/jpeg;base64,AAAA-a-longer-url-than-before\""));
    CHECK(!strstr(out, "big.jpg"));
    free(out);
    CHECK_EQ_INT(req_set_image_url(r, 1, "x"), -1);
    req_free(r);
    free(body);
}

/* ==== request: errors ================================================================ */

#define ONE_MSG(content) "{\"messages\":[{\"role\":\"user\",\"content\":" content "}]}"

TEST(req_errors_body)
{
    struct req_error e;
    struct req_limits l;
    req_limits_default(&l);
    l.max_body_bytes = 10;
    const char *s = ONE_MSG("\"x\"");
    CHECK(!req_parse(s, strlen(s), &l, &e));
    CHECK_EQ_INT(e.status, 413);
    CHECK_STR(e.path, "body");
    CHECK(strstr(e.msg, "exceed the limit of 10 bytes"));
    EXPECT_ERR("", 400, "body", "empty");
    EXPECT_ERR("{\"messages\":[", 400, "body", "invalid JSON at byte");
    EXPECT_ERR("{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]} x", 400, "body",
               "unexpected data after the JSON value at byte 45");
    EXPECT_ERR("[1,2]", 400, "body", "expected a JSON object");
    EXPECT_ERR("{\"a\":1}", 400, "messages", "missing");
    EXPECT_ERR("{\"messages\":{}}", 400, "messages", "expected an array");
    EXPECT_ERR("{\"messages\":[]}", 400, "messages", "empty");
    EXPECT_ERR("{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"messages\":[]}", 400,
               "messages", "duplicate key");
}

/* The depth is bounded on the raw bytes before cJSON parses: 100000 nested arrays (which
 * would recurse in a naive parser) are refused with the byte where the limit is crossed;
 * brackets inside strings do not count. */
TEST(req_errors_depth)
{
    size_t n = 200000;
    char *s = malloc(n + 1);
    memset(s, '[', n / 2);
    memset(s + n / 2, ']', n / 2);
    s[n] = 0;
    struct req_error e;
    CHECK(!req_parse(s, n, NULL, &e));
    CHECK_EQ_INT(e.status, 400);
    CHECK_STR(e.path, "body");
    CHECK(strstr(e.msg, "JSON nested deeper than 64 levels (at byte 64)"));
    free(s);
    struct req_limits l;
    req_limits_default(&l);
    l.max_depth = 3;
    const char *ok = "{\"messages\":[{\"role\":\"user\",\"content\":\"[[[[{{{{\"}]}";
    struct fy_request *r = req_parse(ok, strlen(ok), &l, &e);
    CHECK(r);
    req_free(r);
    /* escaped quotes and backslashes inside strings do not end them early */
    const char *esc = "{\"messages\":[{\"role\":\"user\",\"content\":\"a \\\"[[[[{{\\\" b \\\\\"}]}";
    r = req_parse(esc, strlen(esc), &l, &e);
    if (!r) fprintf(stderr, "  %s: %s\n", e.path, e.msg);
    CHECK(r);
    CHECK_STR(r->parts[0].text, "a \"[[[[{{\" b \\");
    req_free(r);
    const char *open_str = "{\"messages\":[{\"role\":\"user\",\"content\":\"[[[[[[";
    CHECK(!req_parse(open_str, strlen(open_str), &l, &e));
    CHECK(strstr(e.msg, "invalid JSON"));
    const char *deep = "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"x\"}]}]}";
    CHECK(!req_parse(deep, strlen(deep), &l, &e));
    CHECK(strstr(e.msg, "deeper than 3 levels"));
}

TEST(req_errors_utf8)
{
    EXPECT_ERR(ONE_MSG("\"ok \xc3\x28 bad\""), 400, "messages[0].content",
               "invalid UTF-8 at byte 3 of the string");
    EXPECT_ERR(ONE_MSG("[{\"type\":\"text\",\"text\":\"\xed\xa0\x80\"}]"), 400,
               "messages[0].content[0].text", "invalid UTF-8 at byte 0");
    EXPECT_ERR(ONE_MSG("[{\"type\":\"text\",\"text\":\"\xc0\xaf\"}]"), 400,
               "messages[0].content[0].text", "invalid UTF-8"); /* overlong '/' */
    EXPECT_ERR("{\"model\":\"\xf4\x90\x80\x80\",\"messages\":[]}", 400, "model", "invalid UTF-8");
    CHECK_EQ_INT(req_utf8_invalid_at("a\xe2\x82\xac\xf0\x9f\x98\x80", 8), -1);
    CHECK_EQ_INT(req_utf8_invalid_at("ab\xe2\x82", 4), 2);
    /* around the 8-byte ASCII fast path */
    CHECK_EQ_INT(req_utf8_invalid_at("abcdefgh\xff", 9), 8);
    CHECK_EQ_INT(req_utf8_invalid_at("abcdefghijklmno\x80xyz", 19), 15);
    CHECK_EQ_INT(req_utf8_invalid_at("abcdefg\xc3\xa9" "abcdefgh", 17), -1);
    CHECK_EQ_INT(req_utf8_invalid_at("abcdefghijklmnop", 16), -1);
}

/* "\u0000" decodes to a NUL that would cut the C string (the text measured and the body
 * forwarded would silently lose "b"): refused. An escaped backslash before "u0000" is
 * text, and other \u escapes are fine. */
TEST(req_errors_nul_escape)
{
    EXPECT_ERR(ONE_MSG("\"a\\u0000b\""), 400, "body",
               "\\u0000 (a NUL character) at byte 40: not supported in strings");
    EXPECT_ERR(ONE_MSG("\"a\\\\\\u0000b\""), 400, "body", "at byte 42");
    static const char *const fine[] = {ONE_MSG("\"a\\\\u0000b\""), ONE_MSG("\"a\\u0001\\u00e9\""),
                                       ONE_MSG("\"\\\\\"")};
    for (size_t i = 0; i < sizeof fine / sizeof fine[0]; i++) {
        struct req_error e;
        struct fy_request *r = parse(fine[i], &e);
        if (!r) test_fail(__FILE__, __LINE__, "%s: %s: %s", fine[i], e.path, e.msg);
        CHECK(r);
        req_free(r);
    }
    struct req_error e;
    struct fy_request *r = parse(ONE_MSG("\"a\\\\u0000b\""), &e);
    CHECK(r);
    CHECK_EQ_INT(r->parts[0].text_len, 8); /* a \ u 0 0 0 0 b */
    req_free(r);
}

TEST(req_errors_fields)
{
    EXPECT_ERR("{\"model\":3,\"messages\":[]}", 400, "model", "expected a string");
    EXPECT_ERR("{\"stream\":\"yes\",\"messages\":[]}", 400, "stream", "expected true or false");
    EXPECT_ERR("{\"stream_options\":1,\"messages\":[]}", 400, "stream_options", "expected an object");
    EXPECT_ERR("{\"stream_options\":{\"include_usage\":1},\"messages\":[]}", 400,
               "stream_options.include_usage", "expected true or false");
    EXPECT_ERR("{\"max_tokens\":1.5,\"messages\":[]}", 400, "max_tokens", "expected an integer");
    EXPECT_ERR("{\"max_tokens\":0,\"messages\":[]}", 400, "max_tokens", "0 is outside [1, 1e+08]");
    EXPECT_ERR("{\"max_completion_tokens\":\"9\",\"messages\":[]}", 400, "max_completion_tokens",
               "expected a number");
    EXPECT_ERR("{\"temperature\":3,\"messages\":[]}", 400, "temperature", "3 is outside [0, 2]");
    EXPECT_ERR("{\"top_p\":-0.1,\"messages\":[]}", 400, "top_p", "outside [0, 1]");
    EXPECT_ERR("{\"stop\":[\"a\",\"b\",\"c\",\"d\",\"e\"],\"messages\":[]}", 400, "stop[4]",
               "at most 4 stop sequences");
    EXPECT_ERR("{\"stop\":[\"a\",1],\"messages\":[]}", 400, "stop[1]", "expected a string");
    EXPECT_ERR("{\"stop\":5,\"messages\":[]}", 400, "stop", "expected a string or an array");
    EXPECT_ERR("{\"user\":\"" "0123456789012345678901234567890123456789012345678901234567890123"
               "0123456789012345678901234567890123456789012345678901234567890123\","
               "\"messages\":[]}", 400, "user", "string of 128 bytes is longer than 127 bytes");
}

TEST(req_errors_messages)
{
    EXPECT_ERR("{\"messages\":[1]}", 400, "messages[0]", "expected an object");
    EXPECT_ERR("{\"messages\":[{\"content\":\"x\"}]}", 400, "messages[0].role", "missing");
    EXPECT_ERR("{\"messages\":[{\"role\":7,\"content\":\"x\"}]}", 400, "messages[0].role",
               "expected a string");
    EXPECT_ERR("{\"messages\":[{\"role\":\"robot\",\"content\":\"x\"}]}", 400, "messages[0].role",
               "unknown role 'robot'");
    EXPECT_ERR("{\"messages\":[{\"role\":\"user\"}]}", 400, "messages[0].content", "missing");
    EXPECT_ERR(ONE_MSG("null"), 400, "messages[0].content", "missing");
    EXPECT_ERR(ONE_MSG("5"), 400, "messages[0].content", "expected a string or an array of parts");
    EXPECT_ERR(ONE_MSG("[\"x\"]"), 400, "messages[0].content[0]", "expected an object");
    EXPECT_ERR(ONE_MSG("[{\"text\":\"x\"}]"), 400, "messages[0].content[0].type", "missing");
    EXPECT_ERR(ONE_MSG("[{\"type\":1}]"), 400, "messages[0].content[0].type", "expected a string");
    EXPECT_ERR(ONE_MSG("[{\"type\":\"text\",\"text\":\"a\"},{\"type\":\"txet\"}]"), 400,
               "messages[0].content[1].type", "unknown content part type 'txet'");
    EXPECT_ERR(ONE_MSG("[{\"type\":\"input_audio\",\"input_audio\":{}}]"), 415,
               "messages[0].content[0].type", "unsupported content part type 'input_audio'");
    EXPECT_ERR(ONE_MSG("[{\"type\":\"text\"}]"), 400, "messages[0].content[0].text", "missing");
    EXPECT_ERR(ONE_MSG("[{\"type\":\"text\",\"text\":[]}]"), 400, "messages[0].content[0].text",
               "expected a string");
    EXPECT_ERR(ONE_MSG("[{\"type\":\"image_url\"}]"), 400, "messages[0].content[0].image_url",
               "missing");
    EXPECT_ERR(ONE_MSG("[{\"type\":\"image_url\",\"image_url\":\"https://x/a.png\"}]"), 400,
               "messages[0].content[0].image_url", "expected an object {url, detail}");
    EXPECT_ERR(ONE_MSG("[{\"type\":\"image_url\",\"image_url\":{}}]"), 400,
               "messages[0].content[0].image_url.url", "missing");
    EXPECT_ERR(ONE_MSG("[{\"type\":\"image_url\",\"image_url\":{\"url\":1}}]"), 400,
               "messages[0].content[0].image_url.url", "expected a string");
    EXPECT_ERR(ONE_MSG("[{\"type\":\"image_url\",\"image_url\":{\"url\":\"ftp://x/a.png\"}}]"), 400,
               "messages[0].content[0].image_url.url", "not a data: or http(s):// URL");
    EXPECT_ERR(ONE_MSG("[{\"type\":\"image_url\",\"image_url\":{\"url\":\"https://x\",\"detail\":\"max\"}}]"),
               400, "messages[0].content[0].image_url.detail", "expected \"auto\", \"low\" or \"high\"");
    EXPECT_ERR("{\"messages\":[{\"role\":\"user\",\"role\":\"system\",\"content\":\"x\"}]}", 400,
               "messages[0].role", "duplicate key");
}

TEST(req_errors_ferry_object)
{
    EXPECT_ERR("{\"ferry\":[],\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", 400, "ferry",
               "expected an object");
    EXPECT_ERR("{\"ferry\":{\"tradeof\":1},\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", 400,
               "ferry.tradeof", "unknown preference");
    EXPECT_ERR("{\"ferry\":{\"tradeoff\":2},\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", 400,
               "ferry.tradeoff", "2 is outside [0, 1]");
    EXPECT_ERR("{\"ferry\":{\"slo_ms\":\"1s\"},\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", 400,
               "ferry.slo_ms", "expected a number");
    EXPECT_ERR("{\"ferry\":{\"privacy\":\"secret\"},\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
               400, "ferry.privacy", "unknown privacy 'secret'");
    EXPECT_ERR("{\"ferry\":{\"max_cost_usd\":-1},\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
               400, "ferry.max_cost_usd", "outside");
}

static void expect_image_err(const char *url, int status, const char *msg)
{
    char *body = image_request(url);
    struct req_error e;
    struct fy_request *r = parse(body, &e);
    free(body);
    if (r) { req_free(r); test_fail(__FILE__, __LINE__, "accepted %.60s", url); return; }
    if (e.status != status || strcmp(e.path, "messages[0].content[1].image_url.url") ||
        !strstr(e.msg, msg))
        test_fail(__FILE__, __LINE__, "%.40s: got %d %s: %s; want %d %s", url, e.status,
                  e.path, e.msg, status, msg);
}

TEST(req_errors_data_urls)
{
    size_t n;
    uint8_t *jpg = shared_image(g_jpeg, &n);
    CHECK(jpg);
    char *gif = data_url("image/gif", jpg, n);
    expect_image_err(gif, 415, "unsupported media type image/gif");
    free(gif);
    char *liar = data_url("image/png", jpg, n);
    expect_image_err(liar, 400, "declared image/png but the data is JPEG");
    free(liar);
    static const uint8_t text[] = "hello, this is not an image at all";
    char *notimg = data_url("image/webp", text, sizeof text - 1);
    expect_image_err(notimg, 415, "data is not a JPEG, PNG or WebP image (declared image/webp)");
    free(notimg);
    /* truncated JPEG: magic ok, header cut -> the header reader's own message */
    char *cut = data_url("image/jpeg", jpg, 40);
    expect_image_err(cut, 400, "jpeg: truncated");
    free(cut);
    expect_image_err("data:image/png,rawbytes", 400, "data URL is not base64");
    expect_image_err("data:image/png;base64", 400, "data URL without ','");
    expect_image_err("data:;base64,AAAA", 415, "data URL without a media type");
    expect_image_err("data:image/jpeg;base64,", 400, "empty image data");
    expect_image_err("data:image/jpeg;base64,  \\n ", 400, "empty image data");
    expect_image_err("data:image/jpeg;base64,/9j/4AAQ$$$$", 400,
                     "invalid base64 character at byte 8 of the base64 data");
    expect_image_err("data:image/jpeg;base64,/9j/4A==AAAA", 400, "misplaced base64 padding");
    free(jpg);
}

/* Patches the IHDR of a real PNG to 100000x100000 (with a valid CRC) and the SOF of a
 * real JPEG to 60000x60000: both are refused from the header with 413, before any pixel
 * buffer exists (under ASan a 10-gigapixel allocation would abort the test). */
static uint32_t crc32_png(const uint8_t *p, size_t n)
{
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
    }
    return c ^ 0xffffffffu;
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}

/* The shared palette PNG with its IHDR patched to w x h (valid CRC), as a data: URL. */
static char *png_url_of_size(uint32_t w, uint32_t h)
{
    size_t n;
    uint8_t *png = shared_image(g_png, &n);
    if (!png) return NULL;
    put_be32(png + 16, w);
    put_be32(png + 20, h);
    put_be32(png + 29, crc32_png(png + 12, 17)); /* CRC over "IHDR" + 13 data bytes */
    char *url = data_url("image/png", png, n);
    free(png);
    return url;
}

TEST(req_limits_pixels_bomb)
{
    size_t n;
    char *url = png_url_of_size(100000, 100000);
    CHECK(url);
    expect_image_err(url, 413, "image of 100000x100000 pixels exceeds the limit of 40000000 pixels");
    free(url);

    uint8_t *jpg = shared_image(g_jpeg, &n);
    CHECK(jpg);
    int patched = 0;
    for (size_t i = 2; i + 9 < n;) { /* walk the markers to SOF0/SOF2 */
        if (jpg[i] != 0xff) break;
        uint8_t m = jpg[i + 1];
        size_t len = (size_t)jpg[i + 2] << 8 | jpg[i + 3];
        if (m == 0xc0 || m == 0xc1 || m == 0xc2) {
            jpg[i + 5] = 0xea; jpg[i + 6] = 0x60; /* height 60000 */
            jpg[i + 7] = 0xea; jpg[i + 8] = 0x60; /* width 60000 */
            patched = 1;
            break;
        }
        i += 2 + len;
    }
    CHECK(patched);
    url = data_url("image/jpeg", jpg, n);
    expect_image_err(url, 413, "image of 60000x60000 pixels exceeds the limit");
    free(url);
    free(jpg);
}

/* A strip of 1x100000 has few pixels but a side no decoder path takes: refused by the
 * parser with 413 and the JSON path, not later by the feature code without one. */
TEST(req_limits_side_of_a_thin_strip)
{
    char *url = png_url_of_size(1, 100000);
    CHECK(url);
    expect_image_err(url, 413, "image of 1x100000 pixels has a side above the limit of 65500 px");
    free(url);
}

TEST(req_limits_counts_and_bytes)
{
    struct req_limits l;
    struct req_error e;
    req_limits_default(&l);
    l.max_messages = 2;
    const char *three = "{\"messages\":[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"assistant\","
                        "\"content\":\"b\"},{\"role\":\"user\",\"content\":\"c\"}]}";
    CHECK(!req_parse(three, strlen(three), &l, &e));
    CHECK_EQ_INT(e.status, 413);
    CHECK_STR(e.path, "messages");
    CHECK(strstr(e.msg, "3 messages exceed the limit of 2"));

    req_limits_default(&l);
    l.max_parts = 2;
    const char *parts = ONE_MSG("[{\"type\":\"text\",\"text\":\"a\"},{\"type\":\"text\",\"text\":\"b\"},"
                                "{\"type\":\"text\",\"text\":\"c\"}]");
    CHECK(!req_parse(parts, strlen(parts), &l, &e));
    CHECK_EQ_INT(e.status, 413);
    CHECK(strstr(e.msg, "more than 2 content parts"));

    req_limits_default(&l);
    l.max_images = 1;
    const char *imgs = ONE_MSG("[{\"type\":\"image_url\",\"image_url\":{\"url\":\"https://a/1.png\"}},"
                               "{\"type\":\"image_url\",\"image_url\":{\"url\":\"https://a/2.png\"}}]");
    CHECK(!req_parse(imgs, strlen(imgs), &l, &e));
    CHECK_EQ_INT(e.status, 413);
    CHECK_STR(e.path, "messages[0].content[1].image_url");
    CHECK(strstr(e.msg, "more than 1 images"));

    req_limits_default(&l);
    l.max_text_bytes = 3;
    const char *txt = ONE_MSG("\"abcd\"");
    CHECK(!req_parse(txt, strlen(txt), &l, &e));
    CHECK_EQ_INT(e.status, 413);
    CHECK_STR(e.path, "messages[0].content");

    size_t n;
    uint8_t *jpg = shared_image(g_jpeg, &n);
    CHECK(jpg);
    char *url = data_url("image/jpeg", jpg, n);
    char *body = image_request(url);
    req_limits_default(&l);
    l.max_image_bytes = n - 1;
    CHECK(!req_parse(body, strlen(body), &l, &e));
    CHECK_EQ_INT(e.status, 413);
    CHECK_STR(e.path, "messages[0].content[1].image_url.url");
    char want[96];
    snprintf(want, sizeof want, "image of %zu bytes exceeds the limit of %zu bytes", n, n - 1);
    CHECK_STR(e.msg, want);
    l.max_image_bytes = n;
    struct fy_request *r = req_parse(body, strlen(body), &l, &e);
    CHECK(r);
    req_free(r);
    free(body);
    free(url);
    free(jpg);
}

/* The defaults themselves apply (not only limits set by a test): 1025 messages. */
TEST(req_default_limits_apply)
{
    struct req_limits l;
    req_limits_default(&l);
    CHECK_EQ_INT(l.max_messages, 1024);
    struct buf b;
    buf_init(&b);
    buf_puts(&b, "{\"messages\":[");
    for (int i = 0; i <= l.max_messages; i++)
        buf_printf(&b, "%s{\"role\":\"user\",\"content\":\"m%d\"}", i ? "," : "", i);
    buf_puts(&b, "]}");
    struct req_error e;
    CHECK(!req_parse(b.data, b.len, NULL, &e));
    CHECK_EQ_INT(e.status, 413);
    CHECK_STR(e.msg, "1025 messages exceed the limit of 1024");
    /* one fewer is fine */
    char *cut = strstr(b.data, ",{\"role\":\"user\",\"content\":\"m1024\"}");
    CHECK(cut);
    memcpy(cut, "]}", 3);
    struct fy_request *r = req_parse(b.data, strlen(b.data), NULL, &e);
    CHECK(r);
    CHECK_EQ_INT(r->nmessages, 1024);
    req_free(r);
    buf_fini(&b);
}
