/* test-emu — `ferry emulate` over real sockets on 127.0.0.1 (port 0): OpenAI JSON and
 * SSE, usage counts, answers from the quality model, the service model's concurrency,
 * each fault mode, metrics, bad requests and client disconnects. */
#include "test.h"
#include "gwtest.h"

#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "emu/answers.h"
#include "emu/collect.h"
#include "emu/dataset.h"
#include "emu/faults.h"
#include "emu/load.h"
#include "emu/logprobs.h"
#include "emu/score.h"
#include "pred/mgqp.h"
#include "pred/trace.h"
#include "emu/server.h"
#include "feat/text.h"
#include "feat/image.h"
#include "feat/tokens.h"
#include "sim/quality.h"
#include "util/b64.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/file.h"
#include "util/rng.h"

/* ==== fixture: a server on its own event loop thread ================================== */

/* An in-process emulator (gwtest.h gwt_emu: emu_server on its own event loop thread,
 * port from the kernel) and its base URL. */
struct fx {
    struct gwt_emu e;
    char url[128];
};

static void opts_fast(struct emu_opts *o)
{
    emu_opts_default(o);
    snprintf(o->prof.model, sizeof o->prof.model, "test-model");
    o->time_scale = 0;
}

static int fx_start(struct fx *f, const struct emu_opts *o)
{
    memset(f, 0, sizeof *f);
    if (gwt_emu_start(&f->e, o)) return -1;
    snprintf(f->url, sizeof f->url, "http://127.0.0.1:%d", f->e.port);
    return 0;
}

static void fx_stop(struct fx *f) { gwt_emu_stop(&f->e); }

/* An edge and a cloud emulator (the collect tests' pair): 0, or -1 with neither left
 * running. */
static int fx_start_pair(struct fx *fe, const struct emu_opts *oe, struct fx *fc,
                         const struct emu_opts *oc)
{
    if (fx_start(fe, oe) < 0) return -1;
    if (fx_start(fc, oc) == 0) return 0;
    fx_stop(fe);
    return -1;
}

/* ==== client ========================================================================== */

struct resp {
    long status;
    CURLcode cc;
    struct buf body;
    int writes;           /* write callbacks (reads that delivered bytes) */
    double t_start, t_first, t_end; /* wall ms */
    double max_gap;       /* largest gap between two writes, ms */
    double t_last;
    int abort_after;      /* > 0: abort the transfer after this many writes */
    char hdr[2048];       /* response header lines, truncated to fit */
    size_t hdr_len;
};

static size_t on_header(char *p, size_t sz, size_t n, void *arg)
{
    struct resp *r = arg;
    size_t len = sz * n, room = sizeof r->hdr - 1 - r->hdr_len;
    size_t k = len < room ? len : room;
    memcpy(r->hdr + r->hdr_len, p, k);
    r->hdr_len += k;
    r->hdr[r->hdr_len] = 0;
    return len;
}

/* The numeric value of response header NAME (case-insensitive), or NAN when absent. */
static double hdr_num(const struct resp *r, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = r->hdr; *p;) {
        if (!strncasecmp(p, name, n) && p[n] == ':') {
            char *end;
            double v = strtod(p + n + 1, &end);
            return end != p + n + 1 ? v : NAN;
        }
        const char *nl = strchr(p, '\n');
        if (!nl) break;
        p = nl + 1;
    }
    return NAN;
}

static size_t on_write(char *p, size_t sz, size_t n, void *arg)
{
    struct resp *r = arg;
    double now = clock_now_ms();
    if (!r->writes) r->t_first = now;
    else if (now - r->t_last > r->max_gap) r->max_gap = now - r->t_last;
    r->t_last = now;
    r->writes++;
    buf_append(&r->body, p, sz * n);
    if (r->abort_after > 0 && r->writes >= r->abort_after) return 0;
    return sz * n;
}

static void http(const char *url, const char *body, struct resp *r)
{
    CURL *c = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    buf_init(&r->body);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 30000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    if (body) {
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    }
    r->t_start = clock_now_ms();
    r->cc = curl_easy_perform(c);
    r->t_end = clock_now_ms();
    r->status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
}

static void chat(const struct fx *f, const char *body, struct resp *r)
{
    char url[160];
    snprintf(url, sizeof url, "%s/v1/chat/completions", f->url);
    memset(r, 0, sizeof *r);
    http(url, body, r);
}

static void get(const struct fx *f, const char *path, struct resp *r)
{
    char url[200];
    snprintf(url, sizeof url, "%s%s", f->url, path);
    memset(r, 0, sizeof *r);
    http(url, NULL, r);
}

/* Splits an SSE body into its "data: " payloads (in place); returns the count. */
static int sse_events(char *body, char **ev, int max)
{
    int n = 0;
    char *p = body;
    while (p && *p && n < max) {
        char *end = strstr(p, "\n\n");
        if (end) *end = 0;
        if (!strncmp(p, "data: ", 6)) ev[n++] = p + 6;
        p = end ? end + 2 : NULL;
    }
    return n;
}

/* Metric value of the first line starting with prefix, or -1. */
static double metric(const char *text, const char *prefix)
{
    const char *p = text;
    size_t n = strlen(prefix);
    while (p && *p) {
        if (!strncmp(p, prefix, n)) {
            const char *sp = strrchr(p, ' ');
            const char *nl = strchr(p, '\n');
            while (sp && nl && sp > nl) sp = NULL;
            if (!sp) {
                /* find the last space before the newline */
                for (const char *q = nl ? nl : p + strlen(p); q > p; q--)
                    if (*q == ' ') { sp = q; break; }
            }
            return sp ? atof(sp + 1) : -1;
        }
        p = strchr(p, '\n');
        if (p) p++;
    }
    return -1;
}

/* "data:image/png;base64,..." of a PNG of the shared image folder (malloc'd), or NULL. */
static char *shared_png_url(const char *name)
{
    char path[512], err[700];
    snprintf(path, sizeof path, "%s/images/%s", test_shared_dir(), name);
    uint8_t *raw;
    size_t n;
    if (util_read_file(path, 0, &raw, &n, err, sizeof err) < 0) {
        fprintf(stderr, "  %s\n", err);
        return NULL;
    }
    static const char head[] = "data:image/png;base64,";
    char *url = malloc(sizeof head + b64_encoded_len(n, 1));
    if (url) {
        memcpy(url, head, sizeof head - 1);
        url[sizeof head - 1 + b64_encode(raw, n, B64_STD, 1, url + sizeof head - 1)] = '\0';
    }
    free(raw);
    return url;
}

/* ==== unit: tokenizer, answers, faults ================================================= */

TEST(emu_tokens_cut_on_utf8_boundaries)
{
    CHECK_EQ_INT(emu_tokens("", 0), 0);
    CHECK_EQ_INT(emu_tokens("abcd", 4), 1);
    CHECK_EQ_INT(emu_tokens("abcde", 5), 2);
    /* "héllo": é is 2 bytes; "hél" = 4 bytes is one token, "lo" the second */
    CHECK_EQ_INT(emu_tokens("h\xc3\xa9llo", 6), 2);
    /* a 4-byte emoji after 3 ASCII bytes extends the first token to the sequence end */
    CHECK_EQ_INT((int)emu_token_len("abc\xf0\x9f\x98\x80z", 8), 7);
}

TEST(emu_answer_lengths_and_kinds)
{
    struct rng r;
    rng_seed(&r, 7);
    struct emu_answer a;
    struct emu_answer_in in = {.answer = NULL, .out_tokens = 37};
    CHECK(emu_answer_make(&in, &r, &a) == 0);
    CHECK_EQ_INT(a.tokens, 37);
    CHECK_EQ_INT(emu_tokens(a.text, strlen(a.text)), 37);
    CHECK_STR(a.finish, "stop");
    emu_answer_fini(&a);
    in.max_tokens = 10;
    CHECK(emu_answer_make(&in, &r, &a) == 0);
    CHECK_EQ_INT(a.tokens, 10);
    CHECK_STR(a.finish, "length");
    emu_answer_fini(&a);
    /* wrong answers keep the kind of the reference */
    struct emu_answer_in w = {.answer = "C", .p_correct = 0};
    CHECK(emu_answer_make(&w, &r, &a) == 0);
    CHECK_EQ_INT(a.correct, 0);
    CHECK(strlen(a.text) == 1 && a.text[0] >= 'A' && a.text[0] <= 'D' && a.text[0] != 'C');
    emu_answer_fini(&a);
    w.answer = "yes";
    CHECK(emu_answer_make(&w, &r, &a) == 0);
    CHECK_STR(a.text, "no");
    emu_answer_fini(&a);
    w.answer = "12";
    CHECK(emu_answer_make(&w, &r, &a) == 0);
    CHECK(strcmp(a.text, "12") != 0 && atoi(a.text) > 12);
    emu_answer_fini(&a);
    w.p_correct = 1;
    CHECK(emu_answer_make(&w, &r, &a) == 0);
    CHECK_STR(a.text, "12");
    CHECK_EQ_INT(a.correct, 1);
    emu_answer_fini(&a);
}

TEST(emu_fault_options_parse_and_reject)
{
    struct emu_faults fs;
    char err[128];
    emu_faults_init(&fs);
    CHECK(emu_fault_parse(EMU_FAULT_STALL_MID, "250@0.5", &fs, err, sizeof err) == 0);
    CHECK_NEAR(fs.f[EMU_FAULT_STALL_MID].ms, 250, 0);
    CHECK_NEAR(fs.f[EMU_FAULT_STALL_MID].rate, 0.5, 0);
    CHECK(emu_fault_parse(EMU_FAULT_STALL_FIRST, "100", &fs, err, sizeof err) == 0);
    CHECK_NEAR(fs.f[EMU_FAULT_STALL_FIRST].rate, 1, 0);
    CHECK(emu_fault_parse(EMU_FAULT_ERROR, "1.5", &fs, err, sizeof err) < 0);
    CHECK(strstr(err, "--fault-error") != NULL);
    CHECK(emu_fault_parse(EMU_FAULT_STALL_MID, "x@1", &fs, err, sizeof err) < 0);
    CHECK(emu_fault_kind_from_name("disconnect-mid") == EMU_FAULT_DISCONNECT_MID);
    CHECK(emu_fault_kind_from_name("nope") < 0);
}

/* ==== HTTP ============================================================================= */

TEST(emu_nonstreaming_is_openai_json_with_usage)
{
    struct emu_opts o;
    opts_fast(&o);
    struct fx f;
    CHECK(fx_start(&f, &o) == 0);
    struct resp r;
    chat(&f, "{\"model\":\"x\",\"messages\":[{\"role\":\"user\",\"content\":\"Describe "
             "the weather today.\"}],\"metadata\":{\"out_tokens\":25}}", &r);
    fx_stop(&f);
    CHECK_EQ_INT(r.cc, CURLE_OK);
    CHECK_EQ_INT(r.status, 200);
    cJSON *j = cJSON_Parse(r.body.data);
    buf_fini(&r.body);
    CHECK(j);
    CHECK_STR(cJSON_GetObjectItem(j, "object")->valuestring, "chat.completion");
    CHECK_STR(cJSON_GetObjectItem(j, "model")->valuestring, "test-model");
    cJSON *ch = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "choices"), 0);
    cJSON *msg = cJSON_GetObjectItem(ch, "message");
    CHECK_STR(cJSON_GetObjectItem(msg, "role")->valuestring, "assistant");
    const char *content = cJSON_GetObjectItem(msg, "content")->valuestring;
    CHECK_STR(cJSON_GetObjectItem(ch, "finish_reason")->valuestring, "stop");
    cJSON *u = cJSON_GetObjectItem(j, "usage");
    int pt = cJSON_GetObjectItem(u, "prompt_tokens")->valueint;
    int ct = cJSON_GetObjectItem(u, "completion_tokens")->valueint;
    CHECK_EQ_INT(ct, 25);
    CHECK_EQ_INT(emu_tokens(content, strlen(content)), 25);
    /* 4 template tokens + ferry's token estimate of the text */
    CHECK_EQ_INT(pt, 4 + feat_text_tokens("Describe the weather today.", 27));
    CHECK(pt >= 4 + 4 && pt <= 4 + 8);
    CHECK_EQ_INT(cJSON_GetObjectItem(u, "total_tokens")->valueint, pt + ct);
    cJSON_Delete(j);
}

TEST(emu_streaming_is_sse_with_usage_chunk)
{
    struct emu_opts o;
    opts_fast(&o);
    struct fx f;
    CHECK(fx_start(&f, &o) == 0);
    struct resp r;
    chat(&f, "{\"model\":\"x\",\"stream\":true,\"stream_options\":{\"include_usage\":true},"
             "\"max_tokens\":12,\"messages\":[{\"role\":\"user\",\"content\":\"Tell a long "
             "story\"}],\"metadata\":{\"out_tokens\":30}}", &r);
    fx_stop(&f);
    CHECK_EQ_INT(r.cc, CURLE_OK);
    CHECK_EQ_INT(r.status, 200);
    char *ev[256];
    int n = sse_events(r.body.data, ev, 256);
    CHECK(n >= 4);
    CHECK_STR(ev[n - 1], "[DONE]");
    int content_chunks = 0, usage_seen = 0;
    struct buf text;
    buf_init(&text);
    const char *finish = NULL;
    for (int i = 0; i < n - 1; i++) {
        cJSON *j = cJSON_Parse(ev[i]);
        CHECK(j);
        CHECK_STR(cJSON_GetObjectItem(j, "object")->valuestring, "chat.completion.chunk");
        cJSON *chs = cJSON_GetObjectItem(j, "choices");
        cJSON *u = cJSON_GetObjectItem(j, "usage");
        if (cJSON_GetArraySize(chs) == 0) {
            CHECK(cJSON_IsObject(u));
            CHECK_EQ_INT(cJSON_GetObjectItem(u, "completion_tokens")->valueint, 12);
            usage_seen++;
        } else {
            CHECK(cJSON_IsNull(u)); /* include_usage: null on every other chunk */
            cJSON *ch = cJSON_GetArrayItem(chs, 0);
            cJSON *d = cJSON_GetObjectItem(ch, "delta");
            cJSON *c = cJSON_GetObjectItem(d, "content");
            if (i == 0) CHECK_STR(cJSON_GetObjectItem(d, "role")->valuestring, "assistant");
            if (cJSON_IsString(c) && c->valuestring[0]) {
                content_chunks++;
                buf_puts(&text, c->valuestring);
            }
            cJSON *fr = cJSON_GetObjectItem(ch, "finish_reason");
            if (cJSON_IsString(fr)) finish = fr->valuestring[0] == 'l' ? "length" : "stop";
        }
        cJSON_Delete(j);
    }
    CHECK_EQ_INT(usage_seen, 1);
    CHECK_EQ_INT(content_chunks, 12); /* max_tokens cut the 30 modelled tokens */
    CHECK_EQ_INT(emu_tokens(text.data, text.len), 12);
    CHECK_STR(finish, "length");
    buf_fini(&text);
    buf_fini(&r.body);
}

/* ==== logprobs and confidence (docs/emulator.md "Logprobs and confidence") ============ */

/* Checks one OpenAI logprobs "content" array: every item's token, its bytes and a
 * descending top_logprobs list of ntop entries holding the token. Appends the tokens to
 * text and adds the logprobs to *sum. Returns the item count, or -1 when malformed. */
static int lp_items(const cJSON *content, int ntop, struct buf *text, double *sum)
{
    if (!cJSON_IsArray(content)) return -1;
    int n = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, content) {
        const cJSON *tok = cJSON_GetObjectItem(it, "token");
        const cJSON *lp = cJSON_GetObjectItem(it, "logprob");
        const cJSON *bytes = cJSON_GetObjectItem(it, "bytes");
        const cJSON *top = cJSON_GetObjectItem(it, "top_logprobs");
        if (!cJSON_IsString(tok) || !cJSON_IsNumber(lp) || lp->valuedouble > 0) return -1;
        size_t tl = strlen(tok->valuestring);
        if (cJSON_GetArraySize(bytes) != (int)tl) return -1;
        for (size_t i = 0; i < tl; i++)
            if (cJSON_GetArrayItem(bytes, (int)i)->valueint != (unsigned char)tok->valuestring[i])
                return -1;
        if (!cJSON_IsArray(top) || cJSON_GetArraySize(top) != ntop) return -1;
        double prev = 1, psum = 0;
        int own = 0;
        const cJSON *t;
        cJSON_ArrayForEach(t, top) {
            double v = cJSON_GetObjectItem(t, "logprob")->valuedouble;
            if (v > prev) return -1;          /* descending */
            prev = v;
            psum += exp(v);
            own += !strcmp(cJSON_GetObjectItem(t, "token")->valuestring, tok->valuestring) &&
                   v == lp->valuedouble;
        }
        if (psum > 1 + 1e-9 || (ntop > 0 && own != 1)) return -1;
        buf_puts(text, tok->valuestring);
        *sum += lp->valuedouble;
        n++;
    }
    return n;
}

/* exp(mean logprob) of a non-streamed answer, its content in *content (malloc'd); -1 when
 * the logprobs are missing or malformed. */
static double lp_confidence(const char *body, int ntop, char **content)
{
    cJSON *j = cJSON_Parse(body);
    cJSON *ch = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "choices"), 0);
    cJSON *lps = cJSON_GetObjectItem(ch, "logprobs");
    const char *c = cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(ch, "message"),
                                                             "content"));
    struct buf text;
    buf_init(&text);
    double sum = 0, conf = -1;
    int n = lp_items(cJSON_GetObjectItem(lps, "content"), ntop, &text, &sum);
    if (c && n > 0 && !strcmp(text.data, c)) conf = exp(sum / n);
    if (content) *content = c ? strdup(c) : NULL;
    buf_fini(&text);
    cJSON_Delete(j);
    return conf;
}

TEST(emu_logprobs_mean_is_the_modelled_confidence)
{
    struct emu_opts o;
    opts_fast(&o);
    o.capability = 1;
    o.confidence_noise = 0;   /* z drops out: the confidence is a function of P and the outcome */
    struct fx f;
    CHECK(fx_start(&f, &o) == 0);
    struct sim_quality q;
    sim_quality_default(&q);
    q.confidence_noise = 0;
    double p = emu_p_correct(1, 0.6);
    int right = 0, wrong = 0;
    for (int i = 0; i < 16; i++) {
        char body[512];
        snprintf(body, sizeof body,
                 "{\"model\":\"x\",\"logprobs\":true,\"top_logprobs\":3,\"messages\":[{\"role\":"
                 "\"user\",\"content\":\"Question %d: which letter?\"}],\"metadata\":{\"answer\":"
                 "\"Berlin is the capital\",\"difficulty\":0.6}}", i);
        struct resp r;
        chat(&f, body, &r);
        CHECK_EQ_INT(r.status, 200);
        char *content = NULL;
        double conf = lp_confidence(r.body.data, 3, &content);
        buf_fini(&r.body);
        CHECK(content);
        int correct = !strcmp(content, "Berlin is the capital");
        free(content);
        right += correct;
        wrong += !correct;
        CHECK_NEAR(conf, sim_quality_confidence(&q, p, correct, 0), 1e-9);
    }
    CHECK(right > 0 && wrong > 0);   /* both branches of the model were exercised */
    /* without ground truth: the model's prior P (a neutral item), right or wrong latently */
    struct resp r;
    chat(&f, "{\"model\":\"x\",\"logprobs\":true,\"messages\":[{\"role\":\"user\",\"content\":"
             "\"Say something\"}],\"metadata\":{\"out_tokens\":40}}", &r);
    CHECK_EQ_INT(r.status, 200);
    double conf = lp_confidence(r.body.data, 0, NULL);
    buf_fini(&r.body);
    double p0 = emu_p_correct(1, -1);
    CHECK(fabs(conf - sim_quality_confidence(&q, p0, 1, 0)) < 1e-9 ||
          fabs(conf - sim_quality_confidence(&q, p0, 0, 0)) < 1e-9);
    /* no logprobs asked: none given */
    chat(&f, "{\"model\":\"x\",\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]}", &r);
    cJSON *j = cJSON_Parse(r.body.data);
    buf_fini(&r.body);
    CHECK(cJSON_IsNull(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "choices"), 0),
                                           "logprobs")));
    cJSON_Delete(j);
    fx_stop(&f);
}

TEST(emu_logprobs_stream_one_item_per_chunk)
{
    struct emu_opts o;
    opts_fast(&o);
    struct fx f;
    CHECK(fx_start(&f, &o) == 0);
    struct resp r;
    chat(&f, "{\"model\":\"x\",\"stream\":true,\"logprobs\":true,\"top_logprobs\":5,"
             "\"messages\":[{\"role\":\"user\",\"content\":\"Tell a story\"}],"
             "\"metadata\":{\"out_tokens\":20}}", &r);
    fx_stop(&f);
    CHECK_EQ_INT(r.status, 200);
    char *ev[256];
    int n = sse_events(r.body.data, ev, 256);
    CHECK(n >= 4);
    CHECK_STR(ev[n - 1], "[DONE]");
    struct buf text, lptext;
    buf_init(&text);
    buf_init(&lptext);
    double sum = 0;
    int items = 0, nulls = 0;
    for (int i = 0; i < n - 1; i++) {
        cJSON *j = cJSON_Parse(ev[i]);
        cJSON *ch = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "choices"), 0);
        const char *c = cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(ch, "delta"),
                                                                 "content"));
        cJSON *lps = cJSON_GetObjectItem(ch, "logprobs");
        if (c && c[0]) {
            buf_puts(&text, c);
            struct buf one;
            buf_init(&one);
            int k = lp_items(cJSON_GetObjectItem(lps, "content"), 5, &one, &sum);
            int same = one.data && !strcmp(one.data, c);
            buf_fini(&one);
            cJSON_Delete(j);
            CHECK_EQ_INT(k, 1);   /* the chunk's own token */
            CHECK(same);
            items++;
        } else {
            nulls += cJSON_IsNull(lps);
            cJSON_Delete(j);
        }
    }
    CHECK_EQ_INT(items, 20);
    CHECK_EQ_INT(nulls, 2);       /* the role chunk and the finish chunk */
    double conf = exp(sum / items);
    CHECK(conf > 0 && conf < 1);
    buf_fini(&text);
    buf_fini(&lptext);
    buf_fini(&r.body);
}

TEST(emu_logprobs_confidence_separates_right_from_wrong)
{
    /* default confidence model (sep 1, noise 1): over many ground-truth items at one
     * difficulty, right answers must be more confident on average than wrong ones */
    struct emu_opts o;
    opts_fast(&o);
    o.capability = 0;         /* P = 0.5 at difficulty 0.5: as many right as wrong */
    struct fx f;
    CHECK(fx_start(&f, &o) == 0);
    double s1 = 0, s0 = 0;
    int n1 = 0, n0 = 0;
    for (int i = 0; i < 200; i++) {
        char body[512];
        snprintf(body, sizeof body,
                 "{\"model\":\"x\",\"logprobs\":true,\"messages\":[{\"role\":\"user\",\"content\":"
                 "\"Item %d\"}],\"metadata\":{\"answer\":\"C\",\"difficulty\":0.5}}", i);
        struct resp r;
        chat(&f, body, &r);
        char *content = NULL;
        double conf = lp_confidence(r.body.data, 0, &content);
        buf_fini(&r.body);
        CHECK(conf > 0 && content);
        if (!strcmp(content, "C")) { s1 += conf; n1++; }
        else { s0 += conf; n0++; }
        free(content);
    }
    fx_stop(&f);
    CHECK(n1 > 50 && n0 > 50);
    /* sep = 1 logit at P = 0.5: the means differ by about 0.2 in expectation */
    CHECK(s1 / n1 > s0 / n0 + 0.08);
}

/* Right answers of two nodes over the same n items (a stronger node A, a weaker B):
 * *b_right_a_wrong counts items B got right and A wrong (impossible with a shared u). */
static int item_pairs(const struct fx *a, const struct fx *b, int n, int *b_right_a_wrong,
                      int *a_right, int *b_right)
{
    *b_right_a_wrong = *a_right = *b_right = 0;
    for (int i = 0; i < n; i++) {
        char ba[512], bb[512];
        /* A is asked with logprobs, B without: the same item in other bodies */
        snprintf(ba, sizeof ba, "{\"model\":\"a\",\"logprobs\":true,\"messages\":[{\"role\":\"user\","
                 "\"content\":\"Item %d?\"}],\"metadata\":{\"answer\":\"B\",\"difficulty\":0.5}}", i);
        snprintf(bb, sizeof bb, "{\"model\":\"b\",\"messages\":[{\"role\":\"user\","
                 "\"content\":\"Item %d?\"}],\"metadata\":{\"answer\":\"B\",\"difficulty\":0.5}}", i);
        struct resp ra, rb;
        chat(a, ba, &ra);
        chat(b, bb, &rb);
        if (ra.status != 200 || rb.status != 200) return -1;
        int ok_a = strstr(ra.body.data, "\"content\":\"B\"") != NULL;
        int ok_b = strstr(rb.body.data, "\"content\":\"B\"") != NULL;
        buf_fini(&ra.body);
        buf_fini(&rb.body);
        *a_right += ok_a;
        *b_right += ok_b;
        *b_right_a_wrong += ok_b && !ok_a;
    }
    return 0;
}

TEST(emu_nodes_share_one_draw_per_item)
{
    /* as in the simulator: one u per question, so the stronger node is right whenever
     * the weaker one is, whatever their --seed; a different --item-seed breaks that */
    struct emu_opts oa, ob;
    opts_fast(&oa);
    opts_fast(&ob);
    oa.capability = 2;     /* P = 0.88 at difficulty 0.5 */
    ob.capability = 0;     /* P = 0.5 */
    oa.seed = 11;
    ob.seed = 12;
    struct fx a, b;
    CHECK(fx_start(&a, &oa) == 0);
    CHECK(fx_start(&b, &ob) == 0);
    int viol = 0, ra = 0, rb = 0;
    int rc = item_pairs(&a, &b, 200, &viol, &ra, &rb);
    fx_stop(&b);
    ob.item_seed = 5;
    CHECK(fx_start(&b, &ob) == 0);
    int viol2 = 0, ra2 = 0, rb2 = 0;
    int rc2 = item_pairs(&a, &b, 200, &viol2, &ra2, &rb2);
    fx_stop(&a);
    fx_stop(&b);
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_INT(rc2, 0);
    CHECK_EQ_INT(viol, 0);
    CHECK(ra > rb && rb > 60 && rb < 140);  /* both really draw: neither all right nor wrong */
    CHECK(viol2 > 0);                       /* independent draws: B sometimes beats A */
}

TEST(emu_logprobs_fields_are_checked)
{
    struct emu_opts o;
    opts_fast(&o);
    struct fx f;
    CHECK(fx_start(&f, &o) == 0);
    const char *bad[][2] = {
        {"\"logprobs\":true,\"top_logprobs\":21", "top_logprobs"},
        {"\"logprobs\":true,\"top_logprobs\":-1", "top_logprobs"},
        {"\"logprobs\":true,\"top_logprobs\":2.5", "top_logprobs"},
        {"\"top_logprobs\":2", "top_logprobs"},
        {"\"logprobs\":\"yes\"", "logprobs"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char body[256];
        snprintf(body, sizeof body, "{\"model\":\"x\",%s,\"messages\":[{\"role\":\"user\","
                 "\"content\":\"Hi\"}]}", bad[i][0]);
        struct resp r;
        chat(&f, body, &r);
        cJSON *j = cJSON_Parse(r.body.data);
        buf_fini(&r.body);
        const char *param = cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "error"),
                                                                     "param"));
        int ok = r.status == 400 && param && !strcmp(param, bad[i][1]);
        cJSON_Delete(j);
        if (!ok) fprintf(stderr, "case %s: HTTP %ld\n", bad[i][0], r.status);
        CHECK(ok);
    }
    fx_stop(&f);
}

TEST(emu_models_health_slots)
{
    struct emu_opts o;
    opts_fast(&o);
    struct fx f;
    CHECK(fx_start(&f, &o) == 0);
    struct resp m, h, s;
    get(&f, "/v1/models", &m);
    get(&f, "/health", &h);
    get(&f, "/slots", &s);
    fx_stop(&f);
    CHECK_EQ_INT(m.status, 200);
    cJSON *j = cJSON_Parse(m.body.data);
    CHECK(j);
    CHECK_STR(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "data"), 0), "id")
                  ->valuestring, "test-model");
    cJSON_Delete(j);
    CHECK_EQ_INT(h.status, 200);
    CHECK(strstr(h.body.data, "ok") != NULL);
    j = cJSON_Parse(s.body.data);
    CHECK(cJSON_IsArray(j));
    CHECK_EQ_INT(cJSON_GetArraySize(j), o.prof.max_seqs);
    cJSON_Delete(j);
    buf_fini(&m.body);
    buf_fini(&h.body);
    buf_fini(&s.body);
}

TEST(emu_answers_follow_capability)
{
    struct emu_opts o;
    opts_fast(&o);
    const char *body = "{\"model\":\"x\",\"messages\":[{\"role\":\"user\",\"content\":\"Which "
                       "option? A) cat B) dog C) owl D) fox\"}],\"metadata\":{\"answer\":\"B\","
                       "\"difficulty\":0.5}}";
    int right[2] = {0, 0};
    for (int k = 0; k < 2; k++) {
        o.capability = k ? 40 : -40; /* P(correct) ~ 1 and ~ 0 */
        struct fx f;
        CHECK(fx_start(&f, &o) == 0);
        for (int i = 0; i < 10; i++) {
            struct resp r;
            chat(&f, body, &r);
            cJSON *j = cJSON_Parse(r.body.data);
            buf_fini(&r.body);
            CHECK(j);
            cJSON *c = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetArrayItem(
                cJSON_GetObjectItem(j, "choices"), 0), "message"), "content");
            CHECK(cJSON_IsString(c));
            right[k] += !strcmp(c->valuestring, "B");
            cJSON_Delete(j);
        }
        fx_stop(&f);
    }
    CHECK_EQ_INT(right[0], 0);
    CHECK_EQ_INT(right[1], 10);
    /* difficulty maps to logits: 0 always right, 1 always wrong, 0.5 neutral */
    CHECK_NEAR(emu_p_correct(1.0, 0), 1, 0);
    CHECK_NEAR(emu_p_correct(5.0, 1), 0, 0);
    CHECK_NEAR(emu_p_correct(1.0, 0.5), 1 / (1 + exp(-1.0)), 1e-12);
    CHECK(emu_p_correct(1.0, 0.2) > emu_p_correct(1.0, 0.8));
    CHECK(emu_p_correct(2.0, 0.5) > emu_p_correct(1.0, 0.5));
}

/* Correct answers out of n distinct requests (text varied so each draws anew). */
static int count_right(const struct fx *f, const char *image_part, const char *meta, int n)
{
    int right = 0;
    for (int i = 0; i < n; i++) {
        char body[2048];
        snprintf(body, sizeof body,
                 "{\"model\":\"x\",\"messages\":[{\"role\":\"user\",\"content\":[%s"
                 "{\"type\":\"text\",\"text\":\"What is shown? (%d)\"}]}],"
                 "\"metadata\":{\"answer\":\"owl\",\"difficulty\":0.5%s}}",
                 image_part, i, meta);
        struct resp r;
        chat(f, body, &r);
        right += r.status == 200 && strstr(r.body.data, "\"content\":\"owl\"") != NULL;
        buf_fini(&r.body);
    }
    return right;
}

TEST(emu_dropped_images_lower_the_odds)
{
    struct emu_opts o;
    opts_fast(&o);
    o.capability = 3; /* keep: sigmoid(3) = 0.95; drop: sigmoid(3 - 3) = 0.5 */
    struct fx f;
    CHECK(fx_start(&f, &o) == 0);
    /* a real 16x16 PNG from the shared corpus, inline */
    char *url = shared_png_url("tiny-icon-keyboard-16.png");
    CHECK(url);
    char part[2048];
    snprintf(part, sizeof part, "{\"type\":\"image_url\",\"image_url\":{\"url\":\"%s\"}},", url);
    free(url);
    int keep = count_right(&f, part, ",\"images\":1", 40);
    int drop = count_right(&f, "", ",\"images\":1", 40);
    int text = count_right(&f, "", "", 40); /* no image expected: no penalty */
    fx_stop(&f);
    if (!(keep > drop + 6 && text > drop + 6))
        fprintf(stderr, "  right answers: keep %d, drop %d, text-only %d of 40\n", keep, drop, text);
    CHECK(keep > drop + 6);
    CHECK(text > drop + 6);
}

struct par { const struct fx *f; const char *body; struct resp r; };

static void *par_main(void *arg)
{
    struct par *p = arg;
    chat(p->f, p->body, &p->r);
    return NULL;
}

/* Running sequences in the emulator's batch, from /slots. */
static int slots_busy(const struct fx *f)
{
    struct resp r;
    get(f, "/slots", &r);
    int n = 0;
    const char *p = r.body.data;
    while (p && (p = strstr(p, "\"is_processing\":true"))) {
        n++;
        p++;
    }
    buf_fini(&r.body);
    return n;
}

/* The modelled times of a reply (X-Emu-Modelled-* headers, modelled ms). */
struct mtimes { double submit, ttft, e2e, batch; };

static int mtimes_of(const struct resp *r, struct mtimes *m)
{
    m->submit = hdr_num(r, "X-Emu-Modelled-Submit-Ms");
    m->ttft = hdr_num(r, "X-Emu-Modelled-TTFT-Ms");
    m->e2e = hdr_num(r, "X-Emu-Modelled-E2E-Ms");
    m->batch = hdr_num(r, "X-Emu-Modelled-Batch");
    if (r->status == 200 && isfinite(m->submit) && isfinite(m->ttft) && isfinite(m->e2e) &&
        isfinite(m->batch))
        return 0;
    fprintf(stderr, "  reply %ld without X-Emu-Modelled-* headers:\n%s\n", r->status, r->hdr);
    return -1;
}

/* Concurrency is asserted on the service model's own times, which the emulator reports
 * per reply (X-Emu-Modelled-*), not on wall-clock latencies (house rule: no timing
 * asserts in tests; wall-clock fidelity is bench/bench-emu.c's job).
 *
 * Closed form (docs/simulator.md "Service model"): one request alone takes
 * W + (n - 1) * tpot(1), with W its prefill and n its output tokens; six decoding
 * together take (n - 1) * tpot(6), tpot(d) = (1000 / decode_tps) (1 + slope (d - 1)).
 * Six HTTP requests never reach the model at the same instant, so a blocker B is sent
 * first: its long prefill (vision encoding of one image) holds the device while the six
 * are admitted, and its single output token ends at T. From T the six prefill one after
 * another (W each, ~1e-4 ms here) and then decode together: each ends at
 * T + (n - 1) * tpot(6) to within ~11 W, whatever their wall-clock arrival order. */
TEST(emu_concurrency_slows_requests_as_modelled)
{
    struct emu_opts o;
    opts_fast(&o);
    o.prof.decode_tps = 100;      /* tpot(1) = 10 ms */
    o.prof.prefill_tps = 1e7;     /* W of "hi" ~ 5 tokens: 5e-4 ms */
    o.prof.tpot_slope = 0.5;      /* tpot(6) = 10 * (1 + 0.5 * 5) = 35 ms */
    o.prof.max_seqs = 8;          /* B and the six all fit in the batch */
    int itok = feat_visual_tokens(o.prof.vt_family, 16, 16);
    CHECK(itok > 0);
    o.prof.vision_ms_per_token = 4000.0 / itok; /* B's prefill: ~4 modelled s */
    o.time_scale = 0.25;          /* ~1 s of wall time for the six to arrive */
    struct fx f;
    CHECK(fx_start(&f, &o) == 0);
    const char *body = "{\"model\":\"x\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],"
                       "\"metadata\":{\"out_tokens\":40}}";
    const double tpot1 = 10, tpot6 = 35, n = 40;

    struct resp alone;
    struct mtimes ma;
    chat(&f, body, &alone);
    buf_fini(&alone.body);
    CHECK(mtimes_of(&alone, &ma) == 0);
    CHECK_NEAR(ma.batch, 1, 0);
    CHECK(ma.ttft > 0 && ma.ttft < 0.01); /* W: prefill only, nothing else in the model */
    CHECK_NEAR(ma.e2e - ma.ttft, (n - 1) * tpot1, 1e-6);

    char *url = shared_png_url("tiny-icon-keyboard-16.png");
    CHECK(url);
    size_t blen = strlen(url) + 512;
    char *bbody = malloc(blen);
    CHECK(bbody);
    snprintf(bbody, blen,
             "{\"model\":\"x\",\"messages\":[{\"role\":\"user\",\"content\":["
             "{\"type\":\"image_url\",\"image_url\":{\"url\":\"%s\"}},"
             "{\"type\":\"text\",\"text\":\"block\"}]}],\"metadata\":{\"out_tokens\":1}}",
             url);
    free(url);
    struct par pb = {.f = &f, .body = bbody};
    pthread_t tb;
    CHECK(pthread_create(&tb, NULL, par_main, &pb) == 0);
    /* wait until B is in the batch (a deadline, not a timing assertion) */
    double t0 = clock_now_ms();
    while (slots_busy(&f) < 1 && clock_now_ms() - t0 < 10000) usleep(2000);

    struct par p[6];
    pthread_t th[6];
    for (int i = 0; i < 6; i++) {
        p[i].f = &f;
        p[i].body = body;
        CHECK(pthread_create(&th[i], NULL, par_main, &p[i]) == 0);
    }
    for (int i = 0; i < 6; i++) pthread_join(th[i], NULL);
    pthread_join(tb, NULL);
    fx_stop(&f);
    free(bbody);
    buf_fini(&pb.r.body);
    struct mtimes mb, m[6];
    CHECK(mtimes_of(&pb.r, &mb) == 0);
    CHECK_NEAR(mb.e2e, mb.ttft, 1e-9); /* one output token: first = last */
    CHECK(mb.ttft >= 4000 - 1e-6);
    double t_b = mb.submit + mb.e2e; /* T: B done, the six's prefills begin */
    int ok = 1;
    for (int i = 0; i < 6; i++) {
        buf_fini(&p[i].r.body);
        ok &= mtimes_of(&p[i].r, &m[i]) == 0;
    }
    CHECK(ok);
    for (int i = 0; i < 6; i++) {
        if (!(m[i].submit > mb.submit && m[i].submit < t_b)) {
            fprintf(stderr, "  request %d reached the model at %.3f modelled ms, outside B's "
                    "prefill [%.3f, %.3f]: the machine stalled > 1 s; the premise fails\n",
                    i, m[i].submit, mb.submit, t_b);
            CHECK(m[i].submit > mb.submit && m[i].submit < t_b);
        }
        /* they really overlapped: B and all six were in the batch at once */
        CHECK_NEAR(m[i].batch, 7, 0);
        double own = m[i].submit + m[i].e2e - t_b; /* the six's service after T */
        if (fabs(own - (n - 1) * tpot6) > 0.01) {
            fprintf(stderr, "  request %d: %.6f modelled ms after B, closed form %.6f\n", i,
                    own, (n - 1) * tpot6);
            CHECK_NEAR(own, (n - 1) * tpot6, 0.01);
        }
        /* the ratio the batching slope implies: 1 + 0.5 * (6 - 1) = 3.5 */
        CHECK_NEAR(own / (ma.e2e - ma.ttft), 1 + o.prof.tpot_slope * 5, 1e-4);
    }
}

TEST(emu_streams_at_the_modelled_pace)
{
    struct emu_opts o;
    opts_fast(&o);
    o.prof.decode_tps = 100;      /* 10 modelled ms per token */
    o.time_scale = 1;
    struct fx f;
    CHECK(fx_start(&f, &o) == 0);
    struct resp r;
    chat(&f, "{\"model\":\"x\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":"
             "\"hi\"}],\"metadata\":{\"out_tokens\":30}}", &r);
    fx_stop(&f);
    CHECK_EQ_INT(r.status, 200);
    /* 300 modelled ms of decoding at scale 1, flushed every 5 ms: the body cannot
     * arrive in one piece. (How closely the pace follows the model is measured, not
     * asserted, by bench/bench-emu.sh: wall-clock timings are no test's business.) */
    CHECK(r.writes >= 5);
    char *ev[64];
    CHECK(strstr(r.body.data, "data: [DONE]") != NULL);
    CHECK_EQ_INT(sse_events(r.body.data, ev, 64), 1 + 30 + 1 + 1); /* role, tokens, finish, DONE */
    buf_fini(&r.body);
}

TEST(emu_metrics_ttft_is_the_engines_first_token)
{
    struct emu_opts o;
    opts_fast(&o);
    o.prof.decode_tps = 100; /* 30 tokens: ~300 ms of decoding after a ~0 ms prefill */
    o.prof.prefill_tps = 1e5;
    o.time_scale = 1;
    struct fx f;
    CHECK(fx_start(&f, &o) == 0);
    struct resp r, m;
    chat(&f, "{\"model\":\"x\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],"
             "\"metadata\":{\"out_tokens\":30}}", &r);
    get(&f, "/metrics", &m);
    fx_stop(&f);
    CHECK_EQ_INT(r.status, 200);
    double ttft = metric(m.body.data, "vllm:time_to_first_token_seconds_sum{");
    double e2e = metric(m.body.data, "vllm:e2e_request_latency_seconds_sum{");
    /* the model's own times: a ~0.05 ms prefill, then 29 tokens at 10 ms */
    double mt = hdr_num(&r, "X-Emu-Modelled-TTFT-Ms"), me = hdr_num(&r, "X-Emu-Modelled-E2E-Ms");
    CHECK(mt > 0 && mt < 1);
    CHECK_NEAR(me - mt, 290, 1e-6);
    /* non-streamed, yet TTFT is when the model made its first token, not the reply: the
     * reply cannot leave before the model's last token, so the wall-clock histograms
     * keep at least the modelled decode time (x time scale 1) between TTFT and e2e.
     * An invariant of the server, not a timing bound: a loaded machine only widens it;
     * a TTFT taken at the reply would make it 0. */
    CHECK_NEAR(metric(m.body.data, "vllm:time_to_first_token_seconds_count{"), 1, 0);
    CHECK(ttft >= 0);
    CHECK(e2e - ttft >= (me - mt) / 1000 - 1e-6);
    buf_fini(&r.body);
    buf_fini(&m.body);
}

TEST(emu_fault_error_gives_500_error_object)
{
    struct emu_opts o;
    opts_fast(&o);
    o.faults.f[EMU_FAULT_ERROR].rate = 1;
    struct fx f;
    CHECK(fx_start(&f, &o) == 0);
    struct resp r;
    chat(&f, "{\"model\":\"x\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", &r);
    fx_stop(&f);
    CHECK_EQ_INT(r.status, 500);
    cJSON *j = cJSON_Parse(r.body.data);
    CHECK(j);
    cJSON *e = cJSON_GetObjectItem(j, "error");
    CHECK(cJSON_IsString(cJSON_GetObjectItem(e, "message")));
    CHECK(cJSON_IsString(cJSON_GetObjectItem(e, "type")));
    cJSON_Delete(j);
    buf_fini(&r.body);
}

TEST(emu_fault_refuse_resets_before_any_byte)
{
    struct emu_opts o;
    opts_fast(&o);
    o.faults.f[EMU_FAULT_REFUSE].rate = 1;
    struct fx f;
    CHECK(fx_start(&f, &o) == 0);
    struct resp r;
    chat(&f, "{\"model\":\"x\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", &r);
    struct resp h;
    get(&f, "/health", &h); /* the server itself stays up */
    fx_stop(&f);
    CHECK(r.cc != CURLE_OK);
    CHECK_EQ_INT(r.status, 0);
    CHECK_EQ_INT(r.body.len, 0);
    CHECK_EQ_INT(h.status, 200);
    buf_fini(&r.body);
    buf_fini(&h.body);
}

/* The stalls are counted and the replies stay whole; how long they last (wall-clock
 * ms by design) is measured, not asserted, by bench/bench-emu.sh ("fault stalls"). */
TEST(emu_fault_stalls_delay_first_and_middle)
{
    struct emu_opts o;
    opts_fast(&o);
    o.faults.f[EMU_FAULT_STALL_FIRST] = (struct emu_fault){.rate = 1, .ms = 300};
    struct fx f;
    CHECK(fx_start(&f, &o) == 0);
    struct resp r, m;
    chat(&f, "{\"model\":\"x\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],"
             "\"metadata\":{\"out_tokens\":4}}", &r);
    get(&f, "/metrics", &m);
    fx_stop(&f);
    CHECK_EQ_INT(r.status, 200);
    CHECK(strstr(r.body.data, "\"completion_tokens\":4") != NULL);
    CHECK_NEAR(metric(m.body.data, "ferry_emu_faults_injected_total{fault=\"stall-first\"}"), 1, 0);
    CHECK_NEAR(metric(m.body.data, "ferry_emu_faults_injected_total{fault=\"stall-mid\"}"), 0, 0);
    /* held before the model: its modelled service is untouched by the stall */
    CHECK_NEAR(hdr_num(&r, "X-Emu-Modelled-Batch"), 1, 0);
    buf_fini(&r.body);
    buf_fini(&m.body);

    opts_fast(&o);
    o.faults.f[EMU_FAULT_STALL_MID] = (struct emu_fault){.rate = 1, .ms = 300};
    CHECK(fx_start(&f, &o) == 0);
    chat(&f, "{\"model\":\"x\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":"
             "\"hi\"}],\"metadata\":{\"out_tokens\":20}}", &r);
    get(&f, "/metrics", &m);
    fx_stop(&f);
    CHECK_EQ_INT(r.status, 200);
    CHECK(strstr(r.body.data, "data: [DONE]") != NULL);
    /* paused after half of the tokens, then resumed: two pieces at least */
    CHECK(r.writes >= 2);
    CHECK_NEAR(metric(m.body.data, "ferry_emu_faults_injected_total{fault=\"stall-mid\"}"), 1, 0);
    CHECK_NEAR(metric(m.body.data, "ferry_emu_faults_injected_total{fault=\"stall-first\"}"), 0, 0);
    char *ev[64];
    CHECK_EQ_INT(sse_events(r.body.data, ev, 64), 1 + 20 + 1 + 1); /* nothing lost */
    buf_fini(&r.body);
    buf_fini(&m.body);
}

TEST(emu_fault_disconnect_mid_stream)
{
    struct emu_opts o;
    opts_fast(&o);
    o.faults.f[EMU_FAULT_DISCONNECT_MID].rate = 1;
    struct fx f;
    CHECK(fx_start(&f, &o) == 0);
    struct resp r;
    chat(&f, "{\"model\":\"x\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":"
             "\"hi\"}],\"metadata\":{\"out_tokens\":20}}", &r);
    struct resp m;
    get(&f, "/metrics", &m);
    fx_stop(&f);
    CHECK_EQ_INT(r.status, 200);
    CHECK(r.cc != CURLE_OK); /* the chunked body never ended */
    CHECK(r.body.len > 0);
    CHECK(strstr(r.body.data, "\"content\"") != NULL);
    CHECK(strstr(r.body.data, "[DONE]") == NULL);
    CHECK_NEAR(metric(m.body.data, "ferry_emu_faults_injected_total{fault=\"disconnect-mid\"}"),
               1, 0);
    buf_fini(&r.body);
    buf_fini(&m.body);
}

TEST(emu_fault_slow_start_is_503_loading)
{
    struct emu_opts o;
    opts_fast(&o);
    o.faults.f[EMU_FAULT_SLOW_START] = (struct emu_fault){.rate = 1, .ms = 60000};
    struct fx f;
    CHECK(fx_start(&f, &o) == 0);
    struct resp h, r;
    get(&f, "/health", &h);
    chat(&f, "{\"model\":\"x\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", &r);
    fx_stop(&f);
    CHECK_EQ_INT(h.status, 503);
    CHECK_EQ_INT(r.status, 503);
    CHECK(strstr(r.body.data, "Loading model") != NULL);
    buf_fini(&h.body);
    buf_fini(&r.body);
}

TEST(emu_fault_down_refuses_then_comes_back)
{
    struct emu_opts o;
    opts_fast(&o);
    o.faults.f[EMU_FAULT_DOWN] = (struct emu_fault){.rate = 1, .ms = 800, .ms2 = 400};
    struct fx f;
    CHECK(fx_start(&f, &o) == 0);
    struct resp up, r;
    get(&f, "/health", &up); /* at once: within the first 800 ms the port accepts */
    buf_fini(&up.body);
    /* bounded polls: first a refused connection, then an accepted one again */
    int refused = 0, back = 0;
    double t0 = clock_now_ms();
    while (!refused && clock_now_ms() - t0 < 5000) {
        get(&f, "/health", &r);
        buf_fini(&r.body);
        refused = r.cc == CURLE_COULDNT_CONNECT; /* ECONNREFUSED, not a reset */
        if (!refused) usleep(10000);
    }
    t0 = clock_now_ms();
    while (refused && !back && clock_now_ms() - t0 < 5000) {
        get(&f, "/health", &r);
        buf_fini(&r.body);
        back = r.status == 200;
        if (!back) usleep(10000);
    }
    fx_stop(&f);
    CHECK_EQ_INT(up.status, 200);
    CHECK(refused);
    CHECK(back);
}

TEST(emu_bad_requests_get_400_error_object)
{
    struct emu_opts o;
    opts_fast(&o);
    struct fx f;
    CHECK(fx_start(&f, &o) == 0);
    const char *bad[] = {
        "{not json",
        "{\"model\":\"x\"}",
        "{\"model\":\"x\",\"messages\":\"hello\"}",
        ("{\"model\":\"x\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\","
         "\"image_url\":{\"url\":\"data:image/png;base64,@@@@\"}}]}]}"),
        "{\"model\":\"x\",\"max_tokens\":-3,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct resp r;
        chat(&f, bad[i], &r);
        if (r.status != 400) fprintf(stderr, "  body %zu: status %ld\n", i, r.status);
        CHECK_EQ_INT(r.status, 400);
        cJSON *j = cJSON_Parse(r.body.data);
        CHECK(j);
        cJSON *e = cJSON_GetObjectItem(j, "error");
        CHECK(cJSON_IsString(cJSON_GetObjectItem(e, "message")));
        CHECK(strlen(cJSON_GetObjectItem(e, "message")->valuestring) > 3);
        CHECK(cJSON_IsString(cJSON_GetObjectItem(e, "type")));
        CHECK(cJSON_GetObjectItem(e, "param") != NULL);
        CHECK(cJSON_GetObjectItem(e, "code") != NULL);
        cJSON_Delete(j);
        buf_fini(&r.body);
    }
    struct resp r;
    get(&f, "/v1/nothing", &r);
    CHECK_EQ_INT(r.status, 404);
    buf_fini(&r.body);
    fx_stop(&f);
}

TEST(emu_metrics_have_vllm_names_and_count)
{
    struct emu_opts o;
    opts_fast(&o);
    struct fx f;
    CHECK(fx_start(&f, &o) == 0);
    struct resp r, m;
    chat(&f, "{\"model\":\"x\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],"
             "\"metadata\":{\"out_tokens\":9}}", &r);
    buf_fini(&r.body);
    chat(&f, "{\"model\":\"x\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],"
             "\"metadata\":{\"out_tokens\":5}}", &r);
    buf_fini(&r.body);
    get(&f, "/metrics", &m);
    fx_stop(&f);
    CHECK_EQ_INT(m.status, 200);
    const char *names[] = {
        "vllm:num_requests_running{", "vllm:num_requests_waiting{",
        "vllm:time_to_first_token_seconds_bucket{", "vllm:e2e_request_latency_seconds_count{",
        "vllm:time_per_output_token_seconds_sum{", "vllm:prompt_tokens_total{",
        "vllm:generation_tokens_total{",
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (!strstr(m.body.data, names[i])) fprintf(stderr, "  missing %s\n", names[i]);
        CHECK(strstr(m.body.data, names[i]) != NULL);
    }
    CHECK_NEAR(metric(m.body.data, "vllm:generation_tokens_total{"), 14, 0);
    CHECK_NEAR(metric(m.body.data, "vllm:e2e_request_latency_seconds_count{"), 2, 0);
    CHECK_NEAR(metric(m.body.data, "vllm:num_requests_running{"), 0, 0);
    /* promtool lints the format; vLLM's ':' names are its only complaint */
    const char *path = test_tmp_path("emu-metrics.txt");
    CHECK(test_write_file(path, m.body.data) == 0);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "promtool check metrics < %s 2>&1 | grep -v "
             "\"should not contain ':'\"", path);
    FILE *pp = popen(cmd, "r");
    CHECK(pp);
    char line[512];
    int other = 0;
    while (fgets(line, sizeof line, pp)) {
        fprintf(stderr, "  promtool: %s", line);
        other++;
    }
    pclose(pp);
    CHECK_EQ_INT(other, 0);
    buf_fini(&m.body);
}

TEST(emu_client_disconnect_frees_the_slot)
{
    struct emu_opts o;
    opts_fast(&o);
    o.prof.decode_tps = 20;   /* 2000 tokens would take 100 s */
    o.time_scale = 1;
    struct fx f;
    CHECK(fx_start(&f, &o) == 0);
    struct resp r;
    memset(&r, 0, sizeof r);
    r.abort_after = 2;
    char url[160];
    snprintf(url, sizeof url, "%s/v1/chat/completions", f.url);
    http(url, "{\"model\":\"x\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":"
              "\"hi\"}],\"metadata\":{\"out_tokens\":2000}}", &r);
    CHECK(r.cc == CURLE_WRITE_ERROR);
    buf_fini(&r.body);
    /* the server notices on its next write; poll (bounded) until the slot is free */
    double running = -1, aborted = -1;
    for (int i = 0; i < 100; i++) {
        struct resp m;
        get(&f, "/metrics", &m);
        running = metric(m.body.data, "vllm:num_requests_running{");
        aborted = metric(m.body.data, "ferry_emu_requests_aborted_total");
        buf_fini(&m.body);
        if (running == 0 && aborted == 1) break;
        usleep(20000);
    }
    fx_stop(&f);
    CHECK_NEAR(running, 0, 0);
    CHECK_NEAR(aborted, 1, 0);
}

/* ==== scoring and `ferry bench collect` ================================================ */

TEST(emu_score_kinds)
{
    const char *vqa[] = {"two", "2", "2", "2 dogs", "two"};
    /* normalised "2" matches "two", "2", "2", "two": 4 of 5 -> min(1, 4/3) */
    CHECK_NEAR(emu_score(EMU_SCORE_VQA, "Two.", vqa, 5, NULL, 0), 1, 0);
    const char *vqa2[] = {"red", "dark red", "red", "maroon"};
    CHECK_NEAR(emu_score(EMU_SCORE_VQA, "maroon", vqa2, 4, NULL, 0), 1.0 / 3, 1e-12);
    CHECK_NEAR(emu_score(EMU_SCORE_VQA, "the red", vqa2, 4, NULL, 0), 2.0 / 3, 1e-12);
    CHECK_NEAR(emu_score(EMU_SCORE_VQA, "blue", vqa2, 4, NULL, 0), 0, 0);
    const char *mc[] = {"B"};
    const char *choices[] = {"A. cat", "B. dog", "C. owl"};
    CHECK_NEAR(emu_score(EMU_SCORE_MCQ, "(B)", mc, 1, choices, 3), 1, 0);
    CHECK_NEAR(emu_score(EMU_SCORE_MCQ, "The answer is B.", mc, 1, choices, 3), 1, 0);
    CHECK_NEAR(emu_score(EMU_SCORE_MCQ, "dog", mc, 1, choices, 3), 1, 0);
    CHECK_NEAR(emu_score(EMU_SCORE_MCQ, "A cat, surely", mc, 1, choices, 3), 0, 0);
    CHECK_NEAR(emu_score(EMU_SCORE_MCQ, "C", mc, 1, choices, 3), 0, 0);
    CHECK_NEAR(emu_score(EMU_SCORE_MCQ, "no idea", mc, 1, choices, 3), 0, 0);
    const char *ex[] = {"yes"};
    CHECK_NEAR(emu_score(EMU_SCORE_EXACT, "Yes!", ex, 1, NULL, 0), 1, 0);
    CHECK_NEAR(emu_score(EMU_SCORE_EXACT, "yes it is", ex, 1, NULL, 0), 0, 0);
    const char *ct[] = {"rocket"};
    CHECK_NEAR(emu_score(EMU_SCORE_CONTAINS, "A rocket on its launch pad.", ct, 1, NULL, 0), 1, 0);
    CHECK_NEAR(emu_score(EMU_SCORE_CONTAINS, "Rocketry club", ct, 1, NULL, 0), 0, 0);
    char n[64];
    emu_score_normalize("The  Three  apples, an 3.5-inch don't!", n, sizeof n);
    CHECK_STR(n, "3 apples 3.5 inch don't");
}

/* Writes a gateway config with two emulated nodes. */
static const char *write_config(int edge_port, int cloud_port)
{
    static char path[512];
    snprintf(path, sizeof path, "%s", test_tmp_path("collect.ini"));
    FILE *fp = fopen(path, "w");
    if (!fp) return NULL;
    fprintf(fp, "[node edge]\nrole = edge\nurl = http://127.0.0.1:%d\nmodel = edge-model\n"
                "usd_per_mtok_in = 0\nusd_per_mtok_out = 0\n\n"
                "[node cloud]\nrole = cloud\nurl = http://127.0.0.1:%d/\nmodel = cloud-model\n"
                "usd_per_mtok_in = 2\nusd_per_mtok_out = 8\n",
            edge_port, cloud_port);
    fclose(fp);
    return path;
}

TEST(emu_collect_scores_measures_and_resumes)
{
    struct emu_opts oe, oc;
    opts_fast(&oe);
    opts_fast(&oc);
    oe.capability = 40;   /* the edge node always answers right ... */
    oc.capability = -40;  /* ... the cloud node never: the scores must show it */
    struct fx fe, fc;
    CHECK(fx_start_pair(&fe, &oe, &fc, &oc) == 0);
    const char *cfg = write_config(fe.e.port, fc.e.port);
    char out[512];
    snprintf(out, sizeof out, "%s", test_tmp_path("trace.jsonl"));
    struct emu_collect_opts o;
    emu_collect_opts_default(&o);
    o.dataset = "data/collect/mini.jsonl";
    o.config = cfg;
    o.out = out;
    o.base = test_shared_dir();
    o.concurrency = 3;
    o.limit = 5;
    struct emu_collect_stats st1, st2, st3;
    char err[512] = "";
    int rc1 = emu_collect_run(&o, &st1, err, sizeof err);
    o.limit = 0;
    int rc2 = emu_collect_run(&o, &st2, err, sizeof err);
    int rc3 = emu_collect_run(&o, &st3, err, sizeof err);
    fx_stop(&fe);
    fx_stop(&fc);
    if (rc1 || rc2 || rc3) fprintf(stderr, "  collect: %s\n", err);
    CHECK(rc1 == 0 && rc2 == 0 && rc3 == 0);
    CHECK_EQ_INT(st1.items, 24);
    CHECK_EQ_INT(st1.done, 5);
    CHECK_EQ_INT(st1.runs, 10);
    CHECK_EQ_INT(st2.skipped, 5);  /* resumed */
    CHECK_EQ_INT(st2.done, 19);
    CHECK_EQ_INT(st2.failed, 0);
    CHECK_EQ_INT(st3.skipped, 24); /* nothing left */
    CHECK_EQ_INT(st3.runs, 0);
    struct trace_record *recs = NULL;
    size_t n = 0;
    CHECK(trace_read_file(out, 0, &recs, &n, err, sizeof err) == 0);
    int ok = n == 24;
    double edge_q = 0, cloud_q = 0;
    int cat_seen = 0, costs_ok = 1, times_ok = 1;
    for (size_t i = 0; ok && i < n; i++) {
        const struct trace_record *r = &recs[i];
        ok &= r->nout == 2 && !strcmp(r->out[0].node, "edge") && !strcmp(r->out[1].node, "cloud");
        ok &= !r->out[0].o.failed && !r->out[1].o.failed;
        edge_q += r->out[0].o.quality;
        cloud_q += r->out[1].o.quality;
        for (int k = 0; k < 2; k++) {
            const struct fy_outcome *oc2 = &r->out[k].o;
            times_ok &= oc2->ttft_ms > 0 && oc2->ttft_ms <= oc2->e2e_ms && oc2->out_tokens > 0 &&
                        oc2->in_tokens > 0;
        }
        costs_ok &= r->out[0].o.cost_usd == 0 && r->out[1].o.cost_usd > 0;
        if (!strcmp(r->id, "mini-01")) {
            cat_seen = 1;
            ok &= r->f.nimages == 1 && r->f.img[0].width == 451 && r->f.img[0].height == 300;
            ok &= r->out[0].role == FY_ROLE_EDGE && r->out[1].role == FY_ROLE_CLOUD;
            ok &= !strcmp(r->out[1].model, "cloud-model");
        }
    }
    free(recs);
    CHECK(ok);
    CHECK(cat_seen);
    CHECK(times_ok);
    CHECK(costs_ok);
    CHECK_NEAR(edge_q, 24, 1e-9);
    CHECK_NEAR(cloud_q, 0, 1e-9);
}

TEST(emu_collect_reports_bad_dataset_lines)
{
    char ds[512], never[512]; /* test_tmp_path returns a static buffer */
    snprintf(ds, sizeof ds, "%s", test_tmp_path("bad.jsonl"));
    snprintf(never, sizeof never, "%s", test_tmp_path("never.jsonl"));
    CHECK(test_write_file(ds, "{\"id\":\"a\",\"question\":\"q\",\"answers\":[\"x\"]}\n"
                              "{\"id\":\"b\",\"question\":\"q\"}\n") == 0);
    const char *cfg = write_config(1, 2);
    struct emu_collect_opts o;
    emu_collect_opts_default(&o);
    o.dataset = ds;
    o.config = cfg;
    o.out = never;
    struct emu_collect_stats st;
    char err[512] = "";
    CHECK(emu_collect_run(&o, &st, err, sizeof err) < 0);
    if (!strstr(err, "bad.jsonl:2")) fprintf(stderr, "  err: %s\n", err);
    CHECK(strstr(err, "bad.jsonl:2") != NULL);
    CHECK(strstr(err, "answers") != NULL);
    CHECK(test_write_file(ds, "{\"id\":\"a\",\"question\":\"q\",\"answers\":[\"x\"],"
                              "\"images\":[\"nope.png\"]}\n") == 0);
    CHECK(emu_collect_run(&o, &st, err, sizeof err) < 0);
    CHECK(strstr(err, "nope.png: not found") != NULL);
}

/* collect needs the keys of the nodes it runs only: with --nodes leaving out a cloud node
 * whose api_key_env is unset it goes on (here to the dataset's bad line), and names the
 * variable when that node is selected (it refused the config whatever --nodes said). */
TEST(emu_collect_needs_only_the_keys_of_its_nodes)
{
    char ds[512], cfg[512];
    snprintf(ds, sizeof ds, "%s", test_tmp_path("bad2.jsonl"));
    snprintf(cfg, sizeof cfg, "%s", test_tmp_path("keyed.ini"));
    CHECK(test_write_file(ds, "{\"id\":\"b\",\"question\":\"q\"}\n") == 0);
    CHECK(test_write_file(cfg, "[node edge]\nrole = edge\nurl = http://127.0.0.1:9\nmodel = m\n"
                               "[node cloud]\nrole = cloud\nurl = https://api.example.com\n"
                               "model = m\napi_key_env = FERRY_TEST_KEY_THAT_IS_NOT_SET\n") == 0);
    struct emu_collect_opts o;
    emu_collect_opts_default(&o);
    o.dataset = ds;
    o.config = cfg;
    struct emu_collect_stats st;
    char err[512] = "";
    o.nodes = "edge";
    CHECK(emu_collect_run(&o, &st, err, sizeof err) < 0);
    if (!strstr(err, "bad2.jsonl:1")) fprintf(stderr, "  err: %s\n", err);
    CHECK(strstr(err, "bad2.jsonl:1") != NULL);
    o.nodes = "edge,cloud";
    CHECK(emu_collect_run(&o, &st, err, sizeof err) < 0);
    CHECK(strstr(err, "node 'cloud': api_key_env: environment variable "
                      "'FERRY_TEST_KEY_THAT_IS_NOT_SET' is not set") != NULL);
    o.nodes = NULL;
    CHECK(emu_collect_run(&o, &st, err, sizeof err) < 0);
    CHECK(strstr(err, "FERRY_TEST_KEY_THAT_IS_NOT_SET") != NULL);
    o.nodes = "edge,edge";
    CHECK(emu_collect_run(&o, &st, err, sizeof err) < 0);
    CHECK(strstr(err, "--nodes: node 'edge' given twice") != NULL);
}

/* --plans keep,downscale,drop: every record holds each (node, plan) once — downscale
 * only for the item with an image larger than 448 px, drop only for items with images —
 * with the plan, the bytes and the visual tokens actually sent (the emulator's usage
 * counts the images it received); a second run skips every item; `ferry train` learns
 * the shared MGQP weights of downscaling and dropping from the trace. */
TEST(emu_collect_runs_each_plan_on_each_node)
{
    char ds[512], out[512], model[512], cmd[2048];
    snprintf(ds, sizeof ds, "%s", test_tmp_path("plans.jsonl"));
    snprintf(out, sizeof out, "%s", test_tmp_path("plans-trace.jsonl"));
    snprintf(model, sizeof model, "%s", test_tmp_path("plans.fy"));
    /* ladybird: 1000+ px JPEG; robin-small: <= 448 px; and a text-only item */
    CHECK(test_write_file(ds,
        "{\"id\":\"big\",\"question\":\"What insect is shown?\",\"answers\":[\"ladybug\"],"
        "\"images\":[\"images/photo-ladybird.jpg\"],\"difficulty\":0.3,\"max_tokens\":8}\n"
        "{\"id\":\"small\",\"question\":\"What animal is this?\",\"answers\":[\"bird\"],"
        "\"images\":[\"images/photo-robin-small.png\"],\"difficulty\":0.3,\"max_tokens\":8}\n"
        "{\"id\":\"text\",\"question\":\"What is 2 + 2?\",\"answers\":[\"4\"],"
        "\"difficulty\":0.3,\"max_tokens\":8}\n") == 0);
    struct emu_opts oe, oc;
    opts_fast(&oe);
    opts_fast(&oc);
    struct fx fe, fc;
    CHECK(fx_start_pair(&fe, &oe, &fc, &oc) == 0);
    const char *cfg = write_config(fe.e.port, fc.e.port);
    struct emu_collect_opts o;
    emu_collect_opts_default(&o);
    o.dataset = ds;
    o.config = cfg;
    o.out = out;
    o.base = test_shared_dir();
    o.concurrency = 3;
    char err[512] = "";
    CHECK(emu_collect_parse_plans("keep,downscale,drop", &o.plans, err, sizeof err) == 0);
    struct emu_collect_stats st1, st2;
    int rc1 = emu_collect_run(&o, &st1, err, sizeof err);
    int rc2 = emu_collect_run(&o, &st2, err, sizeof err);
    /* the same file with keep only is accepted; a downscale size it lacks is refused */
    char err3[512] = "";
    struct emu_collect_stats st3;
    o.downscale_px = 300;
    int rc3 = emu_collect_run(&o, &st3, err3, sizeof err3);
    fx_stop(&fe);
    fx_stop(&fc);
    if (rc1 || rc2) fprintf(stderr, "  collect: %s\n", err);
    CHECK(rc1 == 0 && rc2 == 0);
    CHECK_EQ_INT(st1.done, 3);
    CHECK_EQ_INT(st1.failed, 0);
    CHECK_EQ_INT(st1.runs, 2 * (3 + 2 + 1));
    CHECK_EQ_INT(st1.plan_runs[0], 6);
    CHECK_EQ_INT(st1.plan_runs[1], 2);
    CHECK_EQ_INT(st1.plan_runs[2], 4);
    CHECK_EQ_INT(st2.skipped, 3); /* resumed: every item complete */
    CHECK_EQ_INT(st2.runs, 0);
    CHECK(rc3 < 0);
    if (!strstr(err3, "item big has no downscale outcome")) fprintf(stderr, "  err: %s\n", err3);
    CHECK(strstr(err3, "item big has no downscale outcome") != NULL);

    struct trace_record *recs = NULL;
    size_t n = 0;
    CHECK(trace_read_file(out, 0, &recs, &n, err, sizeof err) == 0);
    int seen = 0, ok = 1;
/* a failed expectation on record r, node name: printed, the test fails at CHECK(ok) */
#define EXPECT(c)                                                                      \
    do {                                                                               \
        if (!(c)) {                                                                    \
            fprintf(stderr, "  %s on %s: %s\n", r->id, name, #c);                     \
            ok = 0;                                                                    \
        }                                                                              \
    } while (0)
    for (size_t i = 0; i < n; i++) {
        const struct trace_record *r = &recs[i];
        int want = !strcmp(r->id, "big") ? 3 : !strcmp(r->id, "small") ? 2 : 1;
        seen |= !strcmp(r->id, "big") ? 1 : !strcmp(r->id, "small") ? 2 : 4;
        if (r->nout != 2 * want) {
            fprintf(stderr, "  %s: %d outcomes, want %d\n", r->id, r->nout, 2 * want);
            ok = 0;
            continue;
        }
        for (int node = 0; node < 2; node++) {
            const char *name = node ? "cloud" : "edge";
            int count[3] = {0, 0, 0};
            const struct trace_outcome *keep = NULL, *down = NULL, *drop = NULL;
            for (int k = 0; k < r->nout; k++) {
                const struct trace_outcome *t = &r->out[k];
                if (strcmp(t->node, name)) continue;
                EXPECT(!t->o.failed && !t->chosen);
                int a = r->f.nimages ? t->o.plan.img[0] : FY_IMG_KEEP;
                if (a == FY_IMG_KEEP) keep = t;
                else if (a == FY_IMG_DOWNSCALE) down = t;
                else if (a == FY_IMG_DROP) drop = t;
                if (a <= FY_IMG_DROP) count[a]++;
            }
            EXPECT(count[0] == 1 && count[1] == (want == 3) && count[2] == (want >= 2));
            EXPECT(keep != NULL);
            if (!keep) continue;
            EXPECT(keep->image_tokens == (r->f.nimages ? r->f.img[0].tokens[FY_VT_QWEN2VL] : 0));
            if (down) {
                EXPECT(down->o.plan.downscale_px == 448);
                EXPECT(down->bytes_up < keep->bytes_up);
                EXPECT(down->image_tokens > 0 && down->image_tokens < keep->image_tokens);
                /* the node received the smaller image: fewer prompt tokens */
                EXPECT(down->o.in_tokens < keep->o.in_tokens);
            }
            if (drop) {
                EXPECT(drop->image_tokens == 0 && drop->o.plan.downscale_px == 0);
                EXPECT(drop->bytes_up < keep->bytes_up);
                EXPECT(drop->o.in_tokens == keep->o.in_tokens - keep->image_tokens);
            }
        }
    }
#undef EXPECT
    free(recs);
    CHECK_EQ_INT((long)n, 3);
    CHECK_EQ_INT(seen, 7);
    CHECK(ok);

    /* ferry train on the trace: every outcome counted; the shared MGQP weights of
     * downscaling and dropping left their priors (-0.5 and -1, pred/mgqp.c) */
    snprintf(cmd, sizeof cmd, "'%s' train '%s' --holdout 0 -o '%s' 2>&1", test_ferry_bin(), out,
             model);
    FILE *pp = popen(cmd, "r");
    CHECK(pp);
    char line[512], trained[512] = "";
    while (fgets(line, sizeof line, pp))
        if (!trained[0]) snprintf(trained, sizeof trained, "%s", line);
    int prc = pclose(pp);
    if (prc != 0) fprintf(stderr, "  train: %s", trained);
    CHECK_EQ_INT(prc, 0);
    CHECK(strstr(trained, "trained on 3 records (12 outcomes") != NULL);
    FILE *mf = fopen(model, "r");
    CHECK(mf);
    double mu[MGQP_DIM];
    int got = 0, in_shared = 0;
    char *mline = NULL;
    size_t mcap = 0;
    while (!got && getline(&mline, &mcap, mf) > 0) {
        if (!strncmp(mline, "shared ", 7)) in_shared = 1;
        else if (in_shared && !strncmp(mline, "mu ", 3)) {
            char *p = mline + 3, *end;
            for (got = 0; got < MGQP_DIM; got++, p = end) {
                mu[got] = strtod(p, &end);
                if (end == p) break;
            }
        }
    }
    free(mline);
    fclose(mf);
    CHECK_EQ_INT(got, MGQP_DIM);
    if (fabs(mu[MGQP_DOWN] + 0.5) < 1e-6 || fabs(mu[MGQP_DROP] + 1.0) < 1e-6)
        fprintf(stderr, "  shared mu: down %g drop %g\n", mu[MGQP_DOWN], mu[MGQP_DROP]);
    CHECK(fabs(mu[MGQP_DOWN] + 0.5) > 1e-6);
    CHECK(fabs(mu[MGQP_DROP] + 1.0) > 1e-6);
}

/* make demo's training set (data/collect/demo-train.jsonl) shares no image with what
 * `ferry bench load` sends (data/collect/mini.jsonl, its default dataset, and the
 * dialogue views of src/emu/load.c g_views), and has enough large images for ferry's
 * min_obs downscale evidence (scripts/demo.sh "ferry trained"). */
TEST(emu_demo_training_set_is_disjoint_from_the_load)
{
    static const char *const views[] = {"photo-coffee.webp", "photo-cups-progressive.jpg",
                                        "photo-camera-gray.png"};
    struct emu_item *tr = NULL, *mini = NULL;
    int ntr = 0, nmini = 0;
    char err[512] = "";
    int rc1 = emu_dataset_load("data/collect/demo-train.jsonl", test_shared_dir(), &tr, &ntr, err,
                               sizeof err);
    int rc2 = emu_dataset_load("data/collect/mini.jsonl", test_shared_dir(), &mini, &nmini, err,
                               sizeof err);
    if (rc1 || rc2) fprintf(stderr, "  %s\n", err);
    int shared = 0, large = 0;
    for (int i = 0; !rc1 && !rc2 && i < ntr; i++)
        for (int k = 0; k < tr[i].nimages; k++) {
            const char *img = tr[i].images[k];
            const char *base = strrchr(img, '/') ? strrchr(img, '/') + 1 : img;
            for (int j = 0; j < nmini; j++)
                for (int m = 0; m < mini[j].nimages; m++)
                    if (!strcmp(strrchr(mini[j].images[m], '/') ? strrchr(mini[j].images[m], '/') + 1
                                                                 : mini[j].images[m], base)) {
                        fprintf(stderr, "  %s and %s share %s\n", tr[i].id, mini[j].id, base);
                        shared++;
                    }
            for (size_t v = 0; v < sizeof views / sizeof views[0]; v++)
                if (!strcmp(views[v], base)) {
                    fprintf(stderr, "  %s uses the load's dialogue view %s\n", tr[i].id, base);
                    shared++;
                }
            uint8_t *data = NULL;
            size_t n = 0;
            enum fy_img_format fmt;
            int w = 0, h = 0;
            char e[256];
            if (util_read_file(img, 64u << 20, &data, &n, e, sizeof e) == 0 &&
                feat_image_probe(data, n, &fmt, &w, &h, e, sizeof e) == 0 && (w > 448 || h > 448))
                large++;
            free(data);
        }
    emu_dataset_free(tr, ntr);
    emu_dataset_free(mini, nmini);
    CHECK(rc1 == 0 && rc2 == 0);
    CHECK_EQ_INT(shared, 0);
    CHECK_EQ_INT(ntr, 46);
    CHECK_EQ_INT(large, 43);
}

TEST(emu_collect_cli_refuses_unknown_plans)
{
    CHECK_CLI("bench collect x.jsonl -c y.ini --plans keep,fast", 2, "--plans",
              "unknown plan 'fast'");
    CHECK_CLI("bench collect x.jsonl -c y.ini --plans downscale,drop", 2,
              "--plans: keep is required");
    CHECK_CLI("bench collect x.jsonl -c y.ini --plans keep,drop,drop", 2, "'drop' given twice");
    CHECK_CLI("bench collect x.jsonl -c y.ini --plans keep,", 2, "unknown plan ''");
    CHECK_CLI("bench collect x.jsonl -c y.ini --downscale-px 10", 2, "--downscale-px '10'");
}

/* A server that answers every request with one fixed chat completion and keeps the
 * request headers it saw (one connection at a time, `Connection: close`). */
struct capture {
    int lfd, port;
    pthread_t th;
    struct buf heads;           /* every request's header block, in arrival order */
    int stop;
};

static void *capture_main(void *arg)
{
    struct capture *c = arg;
    static const char body[] = "{\"object\":\"chat.completion\",\"choices\":[{\"index\":0,"
                               "\"message\":{\"role\":\"assistant\",\"content\":\"4\"},"
                               "\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":5,"
                               "\"completion_tokens\":1,\"total_tokens\":6}}";
    while (!c->stop) {
        int fd = accept(c->lfd, NULL, NULL);
        if (fd < 0) break;
        char req[1 << 16];
        size_t n = 0;
        char *end = NULL;
        while (n < sizeof req - 1 && !end) { /* the header block */
            ssize_t k = read(fd, req + n, sizeof req - 1 - n);
            if (k <= 0) break;
            n += (size_t)k;
            req[n] = 0;
            end = strstr(req, "\r\n\r\n");
        }
        if (end) {
            buf_append(&c->heads, req, (size_t)(end - req) + 4);
            const char *cl = strstr(req, "\r\nContent-Length:"); /* as curl spells it */
            size_t want = cl ? strtoul(cl + 17, NULL, 10) : 0, have = n - (size_t)(end + 4 - req);
            while (have < want) { /* drain the body */
                ssize_t k = read(fd, req, sizeof req);
                if (k <= 0) break;
                have += (size_t)k;
            }
            char resp[1024];
            int m = snprintf(resp, sizeof resp, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                             sizeof body - 1, body);
            if (write(fd, resp, (size_t)m) < 0) {}
        }
        close(fd);
    }
    return NULL;
}

static int capture_start(struct capture *c)
{
    memset(c, 0, sizeof *c);
    buf_init(&c->heads);
    c->lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    if (c->lfd < 0 || bind(c->lfd, (struct sockaddr *)&a, sizeof a) < 0 || listen(c->lfd, 16) < 0 ||
        getsockname(c->lfd, (struct sockaddr *)&a, &al) < 0)
        return -1;
    c->port = ntohs(a.sin_port);
    return pthread_create(&c->th, NULL, capture_main, c) == 0 ? 0 : -1;
}

static void capture_stop(struct capture *c)
{
    c->stop = 1;
    shutdown(c->lfd, SHUT_RDWR); /* wakes accept() */
    pthread_join(c->th, NULL);
    close(c->lfd);
}

TEST(emu_collect_and_load_send_their_headers)
{
    struct capture cap;
    CHECK(capture_start(&cap) == 0);
    /* collect: one text item to one node with an API key */
    char ds[512], cfg[512], err[512] = "";
    snprintf(ds, sizeof ds, "%s", test_tmp_path("one.jsonl"));
    snprintf(cfg, sizeof cfg, "%s", test_tmp_path("keyed.ini"));
    CHECK(test_write_file(ds, "{\"id\":\"q1\",\"question\":\"2+2?\","
                              "\"answers\":[\"4\"]}\n") == 0);
    FILE *fp = fopen(cfg, "w");
    CHECK(fp);
    fprintf(fp, "[node cloud]\nrole = cloud\nurl = http://127.0.0.1:%d\nmodel = m\n"
                "api_key_env = FERRY_TEST_EMU_KEY\n", cap.port);
    fclose(fp);
    setenv("FERRY_TEST_EMU_KEY", "sk-test-123", 1);
    struct emu_collect_opts o;
    emu_collect_opts_default(&o);
    o.dataset = ds;
    o.config = cfg;
    o.out = test_tmp_path("one-trace.jsonl");
    remove(o.out);
    o.concurrency = 1;
    o.progress = 0;
    struct emu_collect_stats st;
    int rc = emu_collect_run(&o, &st, err, sizeof err);
    if (rc) fprintf(stderr, "  collect: %s\n", err);
    /* load: dialogues carry their session id (seed 3: 20 requests include some) */
    struct emu_load_opts lo;
    emu_load_opts_default(&lo);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", cap.port);
    lo.url = url;
    lo.base = test_shared_dir();
    lo.requests = 20;
    lo.concurrency = 1;
    lo.seed = 3;
    lo.feedback = 0;
    struct emu_load_summary sum;
    int rc2 = emu_load_run(&lo, &sum, err, sizeof err);
    if (rc2) fprintf(stderr, "  load: %s\n", err);
    capture_stop(&cap);
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_INT(st.runs, 1);
    CHECK_EQ_INT(st.failed, 0);
    CHECK_EQ_INT(rc2, 0);
    CHECK_EQ_INT(sum.ok, 20);
    const char *h = cap.heads.data ? cap.heads.data : "";
    CHECK(strstr(h, "\r\nAuthorization: Bearer sk-test-123\r\n") != NULL);
    CHECK(strstr(h, "\r\nAccept: text/event-stream\r\n") != NULL);
    CHECK(strstr(h, "\r\nContent-Type: application/json\r\n") != NULL);
    CHECK(strstr(h, "\r\nX-Ferry-Session: ") != NULL);
    int posts = 0;
    for (const char *p = h; (p = strstr(p, "POST /v1/chat/completions HTTP/1.1\r\n")); p++) posts++;
    CHECK_EQ_INT(posts, 21);
    buf_fini(&cap.heads);
}

TEST(emu_collect_and_load_say_why_requests_failed)
{
    /* a port nobody listens on: bound by the kernel's choice, then closed */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    CHECK(fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
          getsockname(fd, (struct sockaddr *)&a, &al) == 0);
    close(fd);
    char url[64], err[512] = "";
    snprintf(url, sizeof url, "http://127.0.0.1:%d", ntohs(a.sin_port));
    struct emu_load_opts lo;
    emu_load_opts_default(&lo);
    lo.url = url;
    lo.base = test_shared_dir();
    lo.requests = 3;
    lo.feedback = 0;
    struct emu_load_summary sum;
    CHECK_EQ_INT(emu_load_run(&lo, &sum, err, sizeof err), 0);
    CHECK_EQ_INT(sum.ok, 0);
    CHECK(strstr(sum.first_error, "connect") != NULL);
    char cfg[512];
    snprintf(cfg, sizeof cfg, "%s", test_tmp_path("dead.ini"));
    FILE *fp = fopen(cfg, "w");
    CHECK(fp);
    fprintf(fp, "[node gone]\nurl = %s\n", url);
    fclose(fp);
    struct emu_collect_opts o;
    emu_collect_opts_default(&o);
    o.dataset = "data/collect/mini.jsonl";
    o.base = test_shared_dir();
    o.config = cfg;
    o.out = test_tmp_path("dead-trace.jsonl");
    o.limit = 1;
    o.progress = 0;
    struct emu_collect_stats st;
    CHECK_EQ_INT(emu_collect_run(&o, &st, err, sizeof err), 0);
    CHECK_EQ_INT(st.failed, 1);
    CHECK(strstr(st.first_error, "node gone: ") == st.first_error);
    CHECK(strstr(st.first_error, "connect") != NULL);
}

/* ==== the command line: ferry emulate --profile FILE ================================== */

TEST(emu_cli_profile_link_and_port_file)
{
    const char *bin = test_ferry_bin();
    CHECK(access(bin, X_OK) == 0);
    char ini[512], portf[512];
    snprintf(ini, sizeof ini, "%s", test_tmp_path("node.ini"));
    snprintf(portf, sizeof portf, "%s", test_tmp_path("emu.port"));
    FILE *fp = fopen(ini, "w");
    CHECK(fp);
    /* a slow 2 Mbit/s link: the 240 kB image needs about 1 s of modelled upload */
    fputs("[device gpu]\nmem_bw_gbs = 900\ntflops = 70\nmem_gb = 24\n"
          "[model tiny-vl]\nparams_b = 2\nvision_params_b = 0.6\nbytes_per_param = 2\n"
          "patches_per_token = 4\nvt_family = qwen2vl\ncontext_limit = 32768\ncap = 1\n"
          "[link slow]\nkind = const\nup_mbps = 2\ndown_mbps = 2\nrtt_ms = 20\n"
          "[node test-edge]\ndevice = gpu\nmodel = tiny-vl\nrole = edge\nlink = slow\n"
          "max_seqs = 4\ntpot_slope = 0.05\n", fp);
    fclose(fp);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        gwt_child_init();
        int null = open("/dev/null", O_WRONLY);
        if (null >= 0) dup2(null, 1);
        execl(bin, bin, "emulate", "--profile", ini, "--port-file", portf, "--time-scale",
              "0.2", (char *)NULL);
        _exit(127);
    }
    int port = 0;
    for (int i = 0; i < 200 && !port; i++) {
        FILE *pf = fopen(portf, "r");
        if (pf) {
            if (fscanf(pf, "%d", &port) != 1) port = 0;
            fclose(pf);
        }
        if (!port) usleep(20000);
    }
    struct fx f; /* only the URL is used */
    memset(&f, 0, sizeof f);
    snprintf(f.url, sizeof f.url, "http://127.0.0.1:%d", port);
    struct resp m, r;
    memset(&m, 0, sizeof m);
    memset(&r, 0, sizeof r);
    buf_init(&m.body);
    buf_init(&r.body);
    char *body = NULL;
    size_t body_len = 0;
    if (port) {
        get(&f, "/v1/models", &m);
        /* the cat photo inline */
        char *url = shared_png_url("photo-cat-chelsea.png");
        struct buf b;
        buf_init(&b);
        buf_printf(&b, "{\"model\":\"x\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":"
                       "\"image_url\",\"image_url\":{\"url\":\"%s\"}},{\"type\":\"text\",\"text\":"
                       "\"What is this?\"}]}],\"metadata\":{\"out_tokens\":4}}", url ? url : "");
        free(url);
        body = buf_steal(&b);
        body_len = body ? strlen(body) : 0;
        chat(&f, body, &r);
    }
    kill(pid, SIGTERM);
    int st = 0;
    waitpid(pid, &st, 0);
    free(body);
    CHECK(port > 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0); /* SIGTERM: clean exit */
    CHECK_EQ_INT(m.status, 200);
    CHECK(strstr(m.body.data, "\"id\":\"tiny-vl\"") != NULL);
    CHECK_EQ_INT(r.status, 200);
    cJSON *j = cJSON_Parse(r.body.data);
    CHECK(j);
    int pt = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "usage"), "prompt_tokens")->valueint;
    cJSON_Delete(j);
    /* 451x300 -> Qwen2-VL smart resize 448x308 -> 16 x 11 = 176 visual tokens */
    CHECK(pt >= 176 + 4);
    /* the link model's upload of this body (DESIGN.md T_up = RTT/2 + bytes / bandwidth):
     * 20 ms / 2 + bytes * 8 bits / 2000 bits per ms; ~240 kB -> ~0.96 modelled s */
    double up = hdr_num(&r, "X-Emu-Modelled-Upload-Ms");
    CHECK(body_len > 200000);
    CHECK_NEAR(up, 10 + (double)body_len * 8 / 2000, 1e-3);
    /* the model saw it no earlier than the upload ended */
    double sub = hdr_num(&r, "X-Emu-Modelled-Submit-Ms");
    CHECK(sub >= up - 1e-3);
    buf_fini(&m.body);
    buf_fini(&r.body);
}

TEST(emu_cli_tells_an_unknown_option_from_a_missing_value)
{
    CHECK_CLI("emulate --bogus", 2, "unknown option --bogus");
    CHECK_CLI("emulate --fault-nope 1", 2, "unknown option --fault-nope");
    CHECK_CLI("emulate --fault-error-rate 1", 2,
              "unknown option --fault-error-rate"); /* no aliases */
    CHECK_CLI("emulate edge-3090", 2,
              "unexpected argument 'edge-3090' (a profile goes with --profile");
    CHECK_CLI("emulate --fault-error", 2, "--fault-error needs a value");
    CHECK_CLI("emulate --profile edge-3090 --confidence-noise -1", 2,
              "--confidence-noise '-1': expected a number in [0, 100]");
    CHECK_CLI("emulate --profile edge-3090 --item-seed -3", 2,
              "--item-seed '-3': expected an integer >= 0");
    CHECK_CLI("emulate --profile edge-3090 --confidence-sep x", 2,
              "--confidence-sep 'x': expected a number in [0, 100]");
    /* bounded: 1e300 was taken (a timer of 1e297 s overflowed time_t) */
    CHECK_CLI("emulate --profile edge-3090 --time-scale 1e300", 2,
              "--time-scale '1e300': expected a number in [0, 1000]");
    CHECK_CLI("emulate --profile edge-3090 --confidence-sep 1e300", 2,
              "--confidence-sep '1e300': expected a number in [0, 100]");
    /* a link the server cannot build is named at its profile line (it said "link l: ..."
     * with no file, from the server's start) */
    char prof[600], args[800];
    snprintf(prof, sizeof prof, "%s", test_tmp_path("markov-link.ini"));
    CHECK(test_write_file(prof, "[device d]\nmem_bw_gbs = 100\ntflops = 10\n[model m]\n"
                                "params_b = 1\n[link l]\nkind = markov\nup_mbps = 10\n"
                                "[node n]\ndevice = d\nmodel = m\nlink = l\n") == 0);
    snprintf(args, sizeof args, "emulate --profile '%s'", prof);
    CHECK_CLI(args, 1, "markov-link.ini:7: link l: kind = markov needs up_mbps, bad_mbps");
    CHECK_CLI("bench load --url http://127.0.0.1:9 --bogus", 2, "unknown option --bogus");
    CHECK_CLI("bench load --url", 2, "--url needs a value");
    CHECK_CLI("bench load --url http://127.0.0.1:9 --seed ''", 2,
              "--seed '': expected a non-negative integer");
    CHECK_CLI("bench load --url http://127.0.0.1:9 --concurrency 0", 2,
              "--concurrency '0': expected an integer in [1, 1024]");
}

/* ==== ferry bench load ================================================================= */

TEST(emu_load_runs_the_mixed_workload_reproducibly)
{
    struct emu_opts o;
    opts_fast(&o);
    o.capability = 1.5;
    struct fx f;
    CHECK(fx_start(&f, &o) == 0);
    struct emu_load_opts lo;
    emu_load_opts_default(&lo);
    lo.url = f.url;
    lo.base = test_shared_dir();
    lo.requests = 40;
    lo.concurrency = 3;
    lo.seed = 5;
    lo.feedback = 0; /* the emulator has no /v1/feedback */
    struct emu_load_summary a, b;
    char err[512] = "";
    int rc1 = emu_load_run(&lo, &a, err, sizeof err);
    int rc2 = emu_load_run(&lo, &b, err, sizeof err);
    lo.seed = 6;
    struct emu_load_summary c;
    int rc3 = emu_load_run(&lo, &c, err, sizeof err);
    fx_stop(&f);
    if (rc1 || rc2 || rc3) fprintf(stderr, "  load: %s\n", err);
    CHECK(rc1 == 0 && rc2 == 0 && rc3 == 0);
    CHECK_EQ_INT(a.n, 40);
    CHECK_EQ_INT(a.ok, 40);
    /* capability 1.5 at mixed difficulties: neither all right nor all wrong */
    CHECK(a.completed > 10 && a.completed < 40);
    /* same seed, same requests, same answers */
    CHECK_EQ_INT(b.completed, a.completed);
    CHECK_NEAR(b.quality_sum, a.quality_sum, 1e-9);
    CHECK(a.p50_ms <= a.p95_ms && a.p95_ms <= a.p99_ms);
    CHECK_EQ_INT(a.nnodes, 1); /* no X-Ferry-Node header: one unnamed node */
    CHECK_EQ_INT(c.n, 40);
    FILE *mem = tmpfile();
    CHECK(mem);
    emu_load_print(mem, NULL, NULL);
    emu_load_print(mem, "direct", &a);
    rewind(mem);
    char line[512];
    CHECK(fgets(line, sizeof line, mem) && strstr(line, "compl%"));
    CHECK(fgets(line, sizeof line, mem) && !strncmp(line, "direct", 6));
    fclose(mem);
}

/* ==== command-line errors (findings of the error review) ============================ */

TEST(cli_bench_load_refuses_a_malformed_url_and_bad_counts_up_front)
{
    char msg[512];
    /* used to send the whole workload to "nope" and fail it request by request (exit 1) */
    CHECK_CLI("bench load --url nope", 2, "--url 'nope'", "http://HOST[:PORT]");
    CHECK_CLI("bench load --url http://127.0.0.1:99999", 2, "--url 'http://127.0.0.1:99999'");
    CHECK_EQ_INT(test_ferry_cli("bench load --url http://", msg, sizeof msg), 2);
    /* (int)strtol wrapped 4294967297 to 1 */
    CHECK_CLI("bench load --url http://127.0.0.1:9 --requests 4294967297", 2,
              "--requests '4294967297'");
    CHECK_CLI("bench load --url http://127.0.0.1:9 --seed -1", 2, "--seed '-1'");
}

TEST(load_row_without_any_answer_prints_dashes_not_nan)
{
    struct emu_load_summary z;
    memset(&z, 0, sizeof z);
    z.n = 49;
    z.p50_ms = z.p95_ms = z.p99_ms = z.ttft_p50_ms = NAN;   /* what the run leaves */
    FILE *mem = tmpfile();
    CHECK(mem);
    emu_load_print(mem, "down", &z);
    rewind(mem);
    char line[512] = "";
    CHECK(fgets(line, sizeof line, mem) != NULL);
    fclose(mem);
    CHECK(strstr(line, "nan") == NULL);
    CHECK(strstr(line, "      -       -") != NULL);
    CHECK(!strncmp(line, "down", 4) && strstr(line, " 49 ") != NULL);
}

TEST(cli_emulate_profile_path_that_is_missing_or_a_directory_says_so)
{
    char args[600];
    /* was "profile '/nonexistent.ini': no node named '/nonexistent.ini' in data/profiles" */
    CHECK_CLI("emulate --profile /nonexistent-ferry.ini", 1,
              "/nonexistent-ferry.ini: No such file or directory");
    const char *dir = test_tmp_path("profiles-dir");
    CHECK_EQ_INT(mkdir(dir, 0700), 0);
    snprintf(args, sizeof args, "emulate --profile '%s'", dir);
    CHECK_CLI(args, 1, "is a directory");
    CHECK_CLI("emulate --profile edge-nope", 1, "no node named 'edge-nope'"); /* still a name */
}

TEST(cli_emulate_listen_names_the_port_range)
{
    CHECK_CLI("emulate --profile edge-3090 --listen 127.0.0.1:99999", 2,
              "--listen '127.0.0.1:99999'", "0..65535");
    CHECK_CLI("emulate --profile edge-3090 --listen 127.0.0.1:80x", 2,
              "--listen '127.0.0.1:80x'");
}
