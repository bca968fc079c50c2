/* trace — JSONL trace writer and bounded reader (trace.h). The writer formats by hand
 * (it runs inside the simulator's hot loop); the reader uses cJSON on lines bounded by
 * TRACE_MAX_LINE. */
#include "pred/trace.h"

#include <cJSON.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util/err.h"
#include "util/grow.h"

static const char *const g_task_names[FY_TASK__N] = {
    "chat", "caption", "count", "ocr", "yesno", "mcq", "reason",
};
static const char *const g_img_names[] = {"keep", "downscale", "drop", "split"};
static const char *const g_fmt_names[] = {"unknown", "jpeg", "png", "webp"};

const char *trace_task_name(enum fy_task t)
{
    return (t >= 0 && t < FY_TASK__N) ? g_task_names[t] : "chat";
}

int trace_task_parse(const char *s, enum fy_task *t)
{
    for (int i = 0; i < FY_TASK__N; i++)
        if (!strcmp(s, g_task_names[i])) {
            *t = (enum fy_task)i;
            return 0;
        }
    return -1;
}

const char *trace_img_action_name(int a)
{
    return (a >= 0 && a <= FY_IMG_SPLIT) ? g_img_names[a] : "keep";
}

double trace_split_key(const struct trace_record *r)
{
    const char *s = r->session[0] ? r->session : r->id;
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    h ^= h >> 29; /* FNV's low bits mix poorly for short keys */
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 32;
    return (double)(h >> 11) / 9007199254740992.0;
}

/* ==== writer ======================================================================= */

/* The line is built in a stack buffer, flushed with fwrite when it runs low, numbers
 * formatted by hand (trace__fmt_g). Cost: a few µs a record instead of 35–50 µs with
 * stdio and printf (docs/benchmarks.md "Trace writing"). */
#define WB_SIZE 8192
#define WB_ROOM 1024   /* every single put below writes at most this many bytes */

struct wb {
    FILE *fp;
    char *p;
    int err;
    char buf[WB_SIZE];
};

static void wb_flush(struct wb *w)
{
    size_t n = (size_t)(w->p - w->buf);
    if (n && fwrite(w->buf, 1, n, w->fp) != n) w->err = 1;
    w->p = w->buf;
}

static inline void wb_room(struct wb *w)
{
    if (w->p + WB_ROOM > w->buf + WB_SIZE) wb_flush(w);
}

static inline void wb_mem(struct wb *w, const char *s, size_t n)
{
    wb_room(w);
    memcpy(w->p, s, n);
    w->p += n;
}

#define wb_lit(w, s) wb_mem((w), (s), sizeof(s) - 1)

static inline void wb_putc(struct wb *w, char c)
{
    wb_room(w);
    *w->p++ = c;
}

/* Unsigned decimal of v into out (no NUL); returns the length. */
static int fmt_u64(char *out, unsigned long long v)
{
    char t[24];
    int n = 0;
    do {
        t[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (int i = 0; i < n; i++) out[i] = t[n - 1 - i];
    return n;
}

static void wb_int(struct wb *w, long long v)
{
    wb_room(w);
    if (v < 0) {
        *w->p++ = '-';
        w->p += fmt_u64(w->p, 0ull - (unsigned long long)v);
    } else {
        w->p += fmt_u64(w->p, (unsigned long long)v);
    }
}

/* 10^k, k = 0..27: exact in x87 extended precision (5^27 < 2^64). */
static const long double g_p10[28] = {
    1e0L,  1e1L,  1e2L,  1e3L,  1e4L,  1e5L,  1e6L,  1e7L,  1e8L,  1e9L,
    1e10L, 1e11L, 1e12L, 1e13L, 1e14L, 1e15L, 1e16L, 1e17L, 1e18L, 1e19L,
    1e20L, 1e21L, 1e22L, 1e23L, 1e24L, 1e25L, 1e26L, 1e27L,
};

static long double p10(int k) { return k >= 0 && k < 28 ? g_p10[k] : powl(10.0L, k); }

int trace__fmt_g(char *out, double v, int prec)
{
    char *o = out;
    if (!isfinite(v)) {
        memcpy(o, "null", 4);
        return 4;
    }
    if (prec < 1) prec = 1;
    if (prec > 17) prec = 17;
    if (signbit(v)) {
        *o++ = '-';
        v = -v;
    }
    if (v == 0) {
        *o++ = '0';
        return (int)(o - out);
    }
    /* integers below 10^prec: printed as such by %g; exact by hand */
    if (v < 1e15 && v == (double)(long long)v && v < (double)p10(prec)) {
        o += fmt_u64(o, (unsigned long long)v);
        return (int)(o - out);
    }
    /* N = round(v · 10^(prec−1−e)) with prec digits; e = decimal exponent of v */
    int e = (int)floor(log10(v));
    unsigned long long lo = (unsigned long long)p10(prec - 1), hi = lo * 10, n = 0;
    for (int tries = 0; tries < 3; tries++) {
        int sh = prec - 1 - e;
        long double x = sh >= 0 ? (long double)v * p10(sh) : (long double)v / p10(-sh);
        long double r = rintl(x); /* round half to even (default mode), as printf on exact ties */
        n = (unsigned long long)r;
        if (n >= hi) {
            if (r == (long double)hi && x < (long double)hi) { /* 9.99..95 rounds up */
                n = lo;
                e++;
                break;
            }
            e++;
        } else if (n < lo) {
            e--;
        } else {
            break;
        }
    }
    char dg[20];
    int nd = fmt_u64(dg, n);
    while (nd > 1 && dg[nd - 1] == '0') nd--; /* %g drops trailing zeros */
    if (e < -4 || e >= prec) {
        *o++ = dg[0];
        if (nd > 1) {
            *o++ = '.';
            memcpy(o, dg + 1, (size_t)nd - 1);
            o += nd - 1;
        }
        *o++ = 'e';
        *o++ = e < 0 ? '-' : '+';
        int ae = e < 0 ? -e : e;
        if (ae < 10) *o++ = '0';
        o += fmt_u64(o, (unsigned long long)ae);
    } else if (e >= 0) {
        for (int i = 0; i <= e; i++) *o++ = i < nd ? dg[i] : '0';
        if (nd > e + 1) {
            *o++ = '.';
            memcpy(o, dg + e + 1, (size_t)(nd - e - 1));
            o += nd - e - 1;
        }
    } else {
        *o++ = '0';
        *o++ = '.';
        for (int i = 0; i < -e - 1; i++) *o++ = '0';
        memcpy(o, dg, (size_t)nd);
        o += nd;
    }
    return (int)(o - out);
}

static void put_str(struct wb *w, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    wb_putc(w, '"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (w->p + 8 > w->buf + WB_SIZE) wb_flush(w);
        if (*p == '"' || *p == '\\') {
            *w->p++ = '\\';
            *w->p++ = (char)*p;
        } else if (*p < 0x20) {
            memcpy(w->p, "\\u00", 4);
            w->p[4] = hex[*p >> 4];
            w->p[5] = hex[*p & 15];
            w->p += 6;
        } else {
            *w->p++ = (char)*p;
        }
    }
    wb_putc(w, '"');
}

/* ,"k":v (no comma when first). JSON has no NaN/Inf: they are written as null and read
 * back as -1 (unknown). Nine significant digits, the very string printf's %.9g gives
 * (tests/test-pred.c). */
static void put_kv(struct wb *w, const char *k, double v, int comma)
{
    wb_room(w);
    if (comma) *w->p++ = ',';
    *w->p++ = '"';
    size_t n = strlen(k);
    memcpy(w->p, k, n);
    w->p += n;
    *w->p++ = '"';
    *w->p++ = ':';
    w->p += trace__fmt_g(w->p, v, 9);
}

static void write_features(struct wb *w, const struct fy_features *f)
{
    wb_lit(w, "\"features\":{");
    put_kv(w, "turn", f->turn, 0);
    put_kv(w, "text_tokens", f->text_tokens, 1);
    put_kv(w, "last_text_tokens", f->last_text_tokens, 1);
    put_kv(w, "sentences", f->sentences, 1);
    put_kv(w, "c_L", f->c_L, 1);
    put_kv(w, "c_ner", f->c_ner, 1);
    put_kv(w, "c_text", f->c_text, 1);
    wb_lit(w, ",\"task\":");
    put_str(w, trace_task_name(f->task));
    put_kv(w, "history_tokens", f->history_tokens, 1);
    put_kv(w, "history_images", f->history_images, 1);
    put_kv(w, "max_out_tokens", f->max_out_tokens, 1);
    wb_lit(w, ",\"images\":[");
    for (int i = 0; i < f->nimages && i < FY_MAX_IMAGES; i++) {
        const struct fy_image_features *im = &f->img[i];
        if (i) wb_putc(w, ',');
        wb_lit(w, "{\"format\":");
        put_str(w, g_fmt_names[(im->format >= 0 && im->format <= FY_FMT_WEBP) ? im->format : 0]);
        put_kv(w, "w", im->width, 1);
        put_kv(w, "h", im->height, 1);
        put_kv(w, "bytes", (double)im->bytes, 1);
        put_kv(w, "sobel_mean", im->sobel_mean, 1);
        put_kv(w, "entropy", im->entropy, 1);
        put_kv(w, "laplacian_var", im->laplacian_var, 1);
        put_kv(w, "c_res", im->c_res, 1);
        put_kv(w, "c_edge", im->c_edge, 1);
        put_kv(w, "c_ent", im->c_ent, 1);
        put_kv(w, "c_lap", im->c_lap, 1);
        put_kv(w, "c_img", im->c_img, 1);
        wb_lit(w, ",\"tokens\":[");
        for (int k = 0; k < FY_VT__N; k++) {
            if (k) wb_putc(w, ',');
            wb_int(w, im->tokens[k]);
        }
        wb_lit(w, "]}");
    }
    wb_lit(w, "],\"ngram\":[");
    int first = 1;
    for (int k = 0; k < FY_HASH_DIM; k++) {
        if (f->ngram[k] == 0.0f) continue;
        wb_room(w);
        if (!first) *w->p++ = ',';
        *w->p++ = '[';
        w->p += fmt_u64(w->p, (unsigned long long)k);
        *w->p++ = ',';
        w->p += trace__fmt_g(w->p, (double)f->ngram[k], 6);
        *w->p++ = ']';
        first = 0;
    }
    wb_lit(w, "]}");
}

static void put_bool(struct wb *w, const char *kcolon, size_t klen, int v)
{
    wb_mem(w, kcolon, klen);
    if (v) wb_lit(w, "true");
    else wb_lit(w, "false");
}

static void write_outcome(struct wb *w, const struct trace_outcome *t)
{
    const struct fy_outcome *o = &t->o;
    wb_lit(w, "{\"node\":");
    put_str(w, t->node);
    wb_lit(w, ",\"role\":");
    put_str(w, t->role == FY_ROLE_CLOUD ? "cloud" : "edge");
    wb_lit(w, ",\"model\":");
    put_str(w, t->model);
    wb_lit(w, ",\"link\":{");
    put_kv(w, "up_mbps", t->link.up_mbps, 0);
    put_kv(w, "down_mbps", t->link.down_mbps, 1);
    put_kv(w, "rtt_ms", t->link.rtt_ms, 1);
    put_kv(w, "jitter_ms", t->link.jitter_ms, 1);
    wb_lit(w, "},\"state\":{");
    put_kv(w, "running", t->state.running, 0);
    put_kv(w, "queued", t->state.queued, 1);
    put_kv(w, "queued_tokens", t->state.queued_tokens, 1);
    put_kv(w, "ewma_ttft_ms", t->state.ewma_ttft_ms, 1);
    put_kv(w, "ewma_tpot_ms", t->state.ewma_tpot_ms, 1);
    wb_lit(w, "},\"plan\":{");
    put_kv(w, "aux_node", o->plan.aux_node, 0);
    put_kv(w, "downscale_px", o->plan.downscale_px, 1);
    wb_lit(w, ",\"img\":[");
    /* one action per image of the request; the caller's nimages is not known here, so
     * trailing KEEP entries are trimmed */
    int last = -1;
    for (int i = 0; i < FY_MAX_IMAGES; i++)
        if (o->plan.img[i] != FY_IMG_KEEP) last = i;
    for (int i = 0; i <= last; i++) {
        if (i) wb_putc(w, ',');
        put_str(w, trace_img_action_name(o->plan.img[i]));
    }
    wb_putc(w, ']');
    if (o->plan.escalate_below > 0) {
        put_kv(w, "escalate_node", o->plan.escalate_node, 1);
        put_kv(w, "escalate_below", o->plan.escalate_below, 1);
    }
    wb_putc(w, '}');
    put_kv(w, "bytes_up", t->bytes_up, 1);
    put_kv(w, "image_tokens", t->image_tokens, 1);
    put_bool(w, ",\"chosen\":", 10, t->chosen);
    put_kv(w, "quality", o->quality, 1);
    put_kv(w, "ttft_ms", o->ttft_ms, 1);
    put_kv(w, "e2e_ms", o->e2e_ms, 1);
    put_kv(w, "t_up_ms", o->t_up_ms, 1);
    put_kv(w, "t_queue_ms", o->t_queue_ms, 1);
    put_kv(w, "t_vision_ms", o->t_vision_ms, 1);
    put_kv(w, "t_prefill_ms", o->t_prefill_ms, 1);
    put_kv(w, "t_decode_ms", o->t_decode_ms, 1);
    put_kv(w, "t_down_ms", o->t_down_ms, 1);
    put_kv(w, "in_tokens", o->in_tokens, 1);
    put_kv(w, "out_tokens", o->out_tokens, 1);
    put_kv(w, "cost_usd", o->cost_usd, 1);
    if (t->stage > 0) {
        put_kv(w, "stage", t->stage, 1);
        put_kv(w, "confidence", o->confidence, 1);
        put_bool(w, ",\"escalated\":", 13, o->escalated);
        put_kv(w, "first_quality", o->first_quality, 1);
    }
    put_bool(w, ",\"failed\":", 10, o->failed);
    wb_putc(w, '}');
}

int trace_write(FILE *fp, const struct trace_record *r)
{
    struct wb w;
    w.fp = fp;
    w.p = w.buf;
    w.err = 0;
    wb_lit(&w, "{\"v\":");
    wb_int(&w, TRACE_VERSION);
    wb_lit(&w, ",\"id\":");
    put_str(&w, r->id);
    wb_lit(&w, ",\"dataset\":");
    put_str(&w, r->dataset);
    wb_lit(&w, ",\"session\":");
    put_str(&w, r->session);
    put_kv(&w, "t_ms", r->t_ms, 1);
    wb_putc(&w, ',');
    write_features(&w, &r->f);
    wb_lit(&w, ",\"outcomes\":[");
    for (int i = 0; i < r->nout && i < FY_MAX_NODES; i++) {
        if (i) wb_putc(&w, ',');
        write_outcome(&w, &r->out[i]);
    }
    wb_lit(&w, "]}\n");
    wb_flush(&w);
    return w.err || ferror(fp) ? -1 : 0;
}

/* ==== reference writer (the former one: stdio + printf %.9g; bench and tests) ======== */

static void ref_put_str(FILE *fp, const char *s)
{
    fputc('"', fp);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') fprintf(fp, "\\%c", *p);
        else if (*p < 0x20) fprintf(fp, "\\u%04x", *p);
        else fputc(*p, fp);
    }
    fputc('"', fp);
}

/* JSON has no NaN/Inf: they are written as null and read back as -1 (unknown). */
static void ref_put_num(FILE *fp, double v)
{
    if (!isfinite(v)) fputs("null", fp);
    else fprintf(fp, "%.9g", v);
}

static void ref_put_kv(FILE *fp, const char *k, double v, int comma)
{
    fprintf(fp, "%s\"%s\":", comma ? "," : "", k);
    ref_put_num(fp, v);
}

static void ref_write_features(FILE *fp, const struct fy_features *f)
{
    fputs("\"features\":{", fp);
    ref_put_kv(fp, "turn", f->turn, 0);
    ref_put_kv(fp, "text_tokens", f->text_tokens, 1);
    ref_put_kv(fp, "last_text_tokens", f->last_text_tokens, 1);
    ref_put_kv(fp, "sentences", f->sentences, 1);
    ref_put_kv(fp, "c_L", f->c_L, 1);
    ref_put_kv(fp, "c_ner", f->c_ner, 1);
    ref_put_kv(fp, "c_text", f->c_text, 1);
    fputs(",\"task\":", fp);
    ref_put_str(fp, trace_task_name(f->task));
    ref_put_kv(fp, "history_tokens", f->history_tokens, 1);
    ref_put_kv(fp, "history_images", f->history_images, 1);
    ref_put_kv(fp, "max_out_tokens", f->max_out_tokens, 1);
    fputs(",\"images\":[", fp);
    for (int i = 0; i < f->nimages && i < FY_MAX_IMAGES; i++) {
        const struct fy_image_features *im = &f->img[i];
        fprintf(fp, "%s{\"format\":", i ? "," : "");
        ref_put_str(fp, g_fmt_names[(im->format >= 0 && im->format <= FY_FMT_WEBP) ? im->format : 0]);
        ref_put_kv(fp, "w", im->width, 1);
        ref_put_kv(fp, "h", im->height, 1);
        ref_put_kv(fp, "bytes", (double)im->bytes, 1);
        ref_put_kv(fp, "sobel_mean", im->sobel_mean, 1);
        ref_put_kv(fp, "entropy", im->entropy, 1);
        ref_put_kv(fp, "laplacian_var", im->laplacian_var, 1);
        ref_put_kv(fp, "c_res", im->c_res, 1);
        ref_put_kv(fp, "c_edge", im->c_edge, 1);
        ref_put_kv(fp, "c_ent", im->c_ent, 1);
        ref_put_kv(fp, "c_lap", im->c_lap, 1);
        ref_put_kv(fp, "c_img", im->c_img, 1);
        fputs(",\"tokens\":[", fp);
        for (int k = 0; k < FY_VT__N; k++) fprintf(fp, "%s%d", k ? "," : "", im->tokens[k]);
        fputs("]}", fp);
    }
    fputs("],\"ngram\":[", fp);
    int first = 1;
    for (int k = 0; k < FY_HASH_DIM; k++) {
        if (f->ngram[k] == 0.0f) continue;
        fprintf(fp, "%s[%d,%.6g]", first ? "" : ",", k, (double)f->ngram[k]);
        first = 0;
    }
    fputs("]}", fp);
}

static void ref_write_outcome(FILE *fp, const struct trace_outcome *t)
{
    const struct fy_outcome *o = &t->o;
    fputs("{\"node\":", fp);
    ref_put_str(fp, t->node);
    fputs(",\"role\":", fp);
    ref_put_str(fp, t->role == FY_ROLE_CLOUD ? "cloud" : "edge");
    fputs(",\"model\":", fp);
    ref_put_str(fp, t->model);
    fputs(",\"link\":{", fp);
    ref_put_kv(fp, "up_mbps", t->link.up_mbps, 0);
    ref_put_kv(fp, "down_mbps", t->link.down_mbps, 1);
    ref_put_kv(fp, "rtt_ms", t->link.rtt_ms, 1);
    ref_put_kv(fp, "jitter_ms", t->link.jitter_ms, 1);
    fputs("},\"state\":{", fp);
    ref_put_kv(fp, "running", t->state.running, 0);
    ref_put_kv(fp, "queued", t->state.queued, 1);
    ref_put_kv(fp, "queued_tokens", t->state.queued_tokens, 1);
    ref_put_kv(fp, "ewma_ttft_ms", t->state.ewma_ttft_ms, 1);
    ref_put_kv(fp, "ewma_tpot_ms", t->state.ewma_tpot_ms, 1);
    fputs("},\"plan\":{", fp);
    ref_put_kv(fp, "aux_node", o->plan.aux_node, 0);
    ref_put_kv(fp, "downscale_px", o->plan.downscale_px, 1);
    fputs(",\"img\":[", fp);
    /* one action per image of the request; the caller's nimages is not known here, so
     * trailing KEEP entries are trimmed */
    int last = -1;
    for (int i = 0; i < FY_MAX_IMAGES; i++)
        if (o->plan.img[i] != FY_IMG_KEEP) last = i;
    for (int i = 0; i <= last; i++) {
        if (i) fputc(',', fp);
        ref_put_str(fp, trace_img_action_name(o->plan.img[i]));
    }
    fputc(']', fp);
    if (o->plan.escalate_below > 0) {
        ref_put_kv(fp, "escalate_node", o->plan.escalate_node, 1);
        ref_put_kv(fp, "escalate_below", o->plan.escalate_below, 1);
    }
    fputc('}', fp);
    ref_put_kv(fp, "bytes_up", t->bytes_up, 1);
    ref_put_kv(fp, "image_tokens", t->image_tokens, 1);
    fprintf(fp, ",\"chosen\":%s", t->chosen ? "true" : "false");
    ref_put_kv(fp, "quality", o->quality, 1);
    ref_put_kv(fp, "ttft_ms", o->ttft_ms, 1);
    ref_put_kv(fp, "e2e_ms", o->e2e_ms, 1);
    ref_put_kv(fp, "t_up_ms", o->t_up_ms, 1);
    ref_put_kv(fp, "t_queue_ms", o->t_queue_ms, 1);
    ref_put_kv(fp, "t_vision_ms", o->t_vision_ms, 1);
    ref_put_kv(fp, "t_prefill_ms", o->t_prefill_ms, 1);
    ref_put_kv(fp, "t_decode_ms", o->t_decode_ms, 1);
    ref_put_kv(fp, "t_down_ms", o->t_down_ms, 1);
    ref_put_kv(fp, "in_tokens", o->in_tokens, 1);
    ref_put_kv(fp, "out_tokens", o->out_tokens, 1);
    ref_put_kv(fp, "cost_usd", o->cost_usd, 1);
    if (t->stage > 0) {
        ref_put_kv(fp, "stage", t->stage, 1);
        ref_put_kv(fp, "confidence", o->confidence, 1);
        fprintf(fp, ",\"escalated\":%s", o->escalated ? "true" : "false");
        ref_put_kv(fp, "first_quality", o->first_quality, 1);
    }
    fprintf(fp, ",\"failed\":%s}", o->failed ? "true" : "false");
}

int trace__write_printf(FILE *fp, const struct trace_record *r)
{
    fprintf(fp, "{\"v\":%d,\"id\":", TRACE_VERSION);
    ref_put_str(fp, r->id);
    fputs(",\"dataset\":", fp);
    ref_put_str(fp, r->dataset);
    fputs(",\"session\":", fp);
    ref_put_str(fp, r->session);
    ref_put_kv(fp, "t_ms", r->t_ms, 1);
    fputc(',', fp);
    ref_write_features(fp, &r->f);
    fputs(",\"outcomes\":[", fp);
    for (int i = 0; i < r->nout && i < FY_MAX_NODES; i++) {
        if (i) fputc(',', fp);
        ref_write_outcome(fp, &r->out[i]);
    }
    fputs("]}\n", fp);
    return ferror(fp) ? -1 : 0;
}

/* ==== reader ======================================================================= */

/* Number at key k of object o; def when missing or null; -1 and an error when not a
 * number. */
static int get_num(const cJSON *o, const char *k, double def, double *v, const char *where,
                   char *err, size_t errlen)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!it || cJSON_IsNull(it)) {
        *v = def;
        return 0;
    }
    if (!cJSON_IsNumber(it) || !isfinite(it->valuedouble)) {
        util_seterr(err, errlen, "%s.%s: not a number", where, k);
        return -1;
    }
    *v = it->valuedouble;
    return 0;
}

static int get_int(const cJSON *o, const char *k, int def, int lo, int hi, int *v,
                   const char *where, char *err, size_t errlen)
{
    double d;
    if (get_num(o, k, def, &d, where, err, errlen) < 0) return -1;
    if (d < lo || d > hi) {
        util_seterr(err, errlen, "%s.%s: %g out of range [%d, %d]", where, k, d, lo, hi);
        return -1;
    }
    *v = (int)d;
    return 0;
}

static int get_str(const cJSON *o, const char *k, char *dst, size_t cap, const char *where,
                   char *err, size_t errlen)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, k);
    dst[0] = 0;
    if (!it || cJSON_IsNull(it)) return 0;
    if (!cJSON_IsString(it)) {
        util_seterr(err, errlen, "%s.%s: not a string", where, k);
        return -1;
    }
    if (strlen(it->valuestring) >= cap) {
        util_seterr(err, errlen, "%s.%s: longer than %zu bytes", where, k, cap - 1);
        return -1;
    }
    strcpy(dst, it->valuestring);
    return 0;
}

static int get_bool(const cJSON *o, const char *k, int *v)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, k);
    *v = it ? cJSON_IsTrue(it) || (cJSON_IsNumber(it) && it->valuedouble != 0) : 0;
    return 0;
}

#define NUM(obj, key, dst, def, where)                                                 \
    do {                                                                               \
        double v_;                                                                     \
        if (get_num(obj, key, def, &v_, where, err, errlen) < 0) return -1;            \
        dst = v_;                                                                      \
    } while (0)
#define INT(obj, key, dst, def, lo, hi, where)                                         \
    do {                                                                               \
        int v_;                                                                        \
        if (get_int(obj, key, def, lo, hi, &v_, where, err, errlen) < 0) return -1;    \
        dst = v_;                                                                      \
    } while (0)

static int parse_image(const cJSON *o, struct fy_image_features *im, const char *where,
                       char *err, size_t errlen)
{
    char fmt[16];
    if (!cJSON_IsObject(o)) {
        util_seterr(err, errlen, "%s: not an object", where);
        return -1;
    }
    if (get_str(o, "format", fmt, sizeof fmt, where, err, errlen) < 0) return -1;
    im->format = FY_FMT_UNKNOWN;
    for (int i = 1; i <= FY_FMT_WEBP; i++)
        if (!strcmp(fmt, g_fmt_names[i])) im->format = (enum fy_img_format)i;
    INT(o, "w", im->width, 0, 0, 1 << 20, where);
    INT(o, "h", im->height, 0, 0, 1 << 20, where);
    double b;
    NUM(o, "bytes", b, 0, where);
    if (b < 0 || b > 1e12) {
        util_seterr(err, errlen, "%s.bytes: %g out of range", where, b);
        return -1;
    }
    im->bytes = (size_t)b;
    NUM(o, "sobel_mean", im->sobel_mean, 0, where);
    NUM(o, "entropy", im->entropy, 0, where);
    NUM(o, "laplacian_var", im->laplacian_var, 0, where);
    NUM(o, "c_res", im->c_res, 0, where);
    NUM(o, "c_edge", im->c_edge, 0, where);
    NUM(o, "c_ent", im->c_ent, 0, where);
    NUM(o, "c_lap", im->c_lap, 0, where);
    NUM(o, "c_img", im->c_img, 0, where);
    const cJSON *tk = cJSON_GetObjectItemCaseSensitive(o, "tokens");
    if (tk) {
        if (!cJSON_IsArray(tk)) {
            util_seterr(err, errlen, "%s.tokens: not an array", where);
            return -1;
        }
        int k = 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, tk)
        {
            if (k >= FY_VT__N) break;
            if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble > 1e7) {
                util_seterr(err, errlen, "%s.tokens[%d]: not a token count", where, k);
                return -1;
            }
            im->tokens[k++] = (int)e->valuedouble;
        }
    }
    return 0;
}

static int parse_features(const cJSON *o, struct fy_features *f, char *err, size_t errlen)
{
    const char *w = "features";
    char task[32];
    if (!cJSON_IsObject(o)) {
        util_seterr(err, errlen, "features: missing or not an object");
        return -1;
    }
    INT(o, "turn", f->turn, 0, 0, 1 << 20, w);
    INT(o, "text_tokens", f->text_tokens, 0, 0, 1 << 28, w);
    INT(o, "last_text_tokens", f->last_text_tokens, 0, 0, 1 << 28, w);
    INT(o, "sentences", f->sentences, 0, 0, 1 << 28, w);
    NUM(o, "c_L", f->c_L, 0, w);
    NUM(o, "c_ner", f->c_ner, 0, w);
    NUM(o, "c_text", f->c_text, 0, w);
    if (get_str(o, "task", task, sizeof task, w, err, errlen) < 0) return -1;
    f->task = FY_TASK_CHAT;
    if (task[0] && trace_task_parse(task, &f->task) < 0) {
        util_seterr(err, errlen, "features.task: unknown task \"%s\"", task);
        return -1;
    }
    INT(o, "history_tokens", f->history_tokens, 0, 0, 1 << 28, w);
    INT(o, "history_images", f->history_images, 0, 0, 1 << 20, w);
    INT(o, "max_out_tokens", f->max_out_tokens, 0, 0, 1 << 28, w);
    const cJSON *imgs = cJSON_GetObjectItemCaseSensitive(o, "images");
    if (imgs) {
        if (!cJSON_IsArray(imgs)) {
            util_seterr(err, errlen, "features.images: not an array");
            return -1;
        }
        const cJSON *e;
        cJSON_ArrayForEach(e, imgs)
        {
            if (f->nimages >= FY_MAX_IMAGES) {
                util_seterr(err, errlen, "features.images: more than %d images", FY_MAX_IMAGES);
                return -1;
            }
            char where[48];
            snprintf(where, sizeof where, "features.images[%d]", f->nimages);
            if (parse_image(e, &f->img[f->nimages], where, err, errlen) < 0) return -1;
            f->nimages++;
        }
    }
    const cJSON *ng = cJSON_GetObjectItemCaseSensitive(o, "ngram");
    if (ng) {
        if (!cJSON_IsArray(ng)) {
            util_seterr(err, errlen, "features.ngram: not an array");
            return -1;
        }
        int k = 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, ng)
        {
            const cJSON *a = cJSON_GetArrayItem(e, 0), *b = cJSON_GetArrayItem(e, 1);
            if (!cJSON_IsArray(e) || !cJSON_IsNumber(a) || !cJSON_IsNumber(b) ||
                a->valuedouble < 0 || a->valuedouble >= FY_HASH_DIM ||
                !(fabs(b->valuedouble) <= FLT_MAX)) { /* stored as float: must stay finite */
                util_seterr(err, errlen, "features.ngram[%d]: not an [index < %d, value] pair", k,
                            FY_HASH_DIM);
                return -1;
            }
            f->ngram[(int)a->valuedouble] = (float)b->valuedouble;
            k++;
        }
    }
    return 0;
}

static int parse_outcome(const cJSON *o, struct trace_outcome *t, const char *w, char *err,
                         size_t errlen)
{
    char role[16];
    if (!cJSON_IsObject(o)) {
        util_seterr(err, errlen, "%s: not an object", w);
        return -1;
    }
    if (get_str(o, "node", t->node, sizeof t->node, w, err, errlen) < 0) return -1;
    if (!t->node[0]) {
        util_seterr(err, errlen, "%s.node: missing", w);
        return -1;
    }
    if (get_str(o, "role", role, sizeof role, w, err, errlen) < 0) return -1;
    if (role[0] && strcmp(role, "edge") != 0 && strcmp(role, "cloud") != 0) {
        util_seterr(err, errlen, "%s.role: \"%s\": expected edge or cloud", w, role);
        return -1;
    }
    t->role = !strcmp(role, "cloud") ? FY_ROLE_CLOUD : FY_ROLE_EDGE;   /* absent: edge */
    if (get_str(o, "model", t->model, sizeof t->model, w, err, errlen) < 0) return -1;
    const cJSON *l = cJSON_GetObjectItemCaseSensitive(o, "link");
    if (l) {
        NUM(l, "up_mbps", t->link.up_mbps, 0, w);
        NUM(l, "down_mbps", t->link.down_mbps, 0, w);
        NUM(l, "rtt_ms", t->link.rtt_ms, 0, w);
        NUM(l, "jitter_ms", t->link.jitter_ms, 0, w);
    }
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(o, "state");
    t->state.healthy = 1;
    if (s) {
        INT(s, "running", t->state.running, 0, 0, 1 << 24, w);
        INT(s, "queued", t->state.queued, 0, 0, 1 << 24, w);
        NUM(s, "queued_tokens", t->state.queued_tokens, 0, w);
        NUM(s, "ewma_ttft_ms", t->state.ewma_ttft_ms, 0, w);
        NUM(s, "ewma_tpot_ms", t->state.ewma_tpot_ms, 0, w);
    }
    struct fy_outcome *oc = &t->o;
    oc->plan.aux_node = -1;
    oc->plan.escalate_node = -1;
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(o, "plan");
    if (p) {
        INT(p, "aux_node", oc->plan.aux_node, -1, -1, FY_MAX_NODES - 1, w);
        INT(p, "downscale_px", oc->plan.downscale_px, 0, 0, 1 << 20, w);
        INT(p, "escalate_node", oc->plan.escalate_node, -1, -1, FY_MAX_NODES - 1, w);
        NUM(p, "escalate_below", oc->plan.escalate_below, 0, w);
        if (!(oc->plan.escalate_below >= 0 && oc->plan.escalate_below <= 1)) {
            util_seterr(err, errlen, "%s.plan.escalate_below: %g not in [0,1]", w,
                        oc->plan.escalate_below);
            return -1;
        }
        if (oc->plan.escalate_below > 0 && oc->plan.escalate_node < 0) {
            util_seterr(err, errlen, "%s.plan.escalate_node: missing for a cascade plan", w);
            return -1;
        }
        const cJSON *img = cJSON_GetObjectItemCaseSensitive(p, "img");
        if (img && cJSON_IsArray(img)) {
            int i = 0;
            const cJSON *e;
            cJSON_ArrayForEach(e, img)
            {
                if (i >= FY_MAX_IMAGES) break;
                int a = -1;
                for (int k = 0; k <= FY_IMG_SPLIT && cJSON_IsString(e); k++)
                    if (!strcmp(e->valuestring, g_img_names[k])) a = k;
                if (a < 0) {
                    util_seterr(err, errlen, "%s.plan.img[%d]: not keep/downscale/drop/split",
                                w, i);
                    return -1;
                }
                oc->plan.img[i++] = (uint8_t)a;
            }
        }
    }
    NUM(o, "bytes_up", t->bytes_up, 0, w);
    INT(o, "image_tokens", t->image_tokens, 0, 0, 1 << 28, w);
    get_bool(o, "chosen", &t->chosen);
    NUM(o, "quality", oc->quality, -1, w);
    NUM(o, "ttft_ms", oc->ttft_ms, -1, w);
    NUM(o, "e2e_ms", oc->e2e_ms, -1, w);
    NUM(o, "t_up_ms", oc->t_up_ms, 0, w);
    NUM(o, "t_queue_ms", oc->t_queue_ms, 0, w);
    NUM(o, "t_vision_ms", oc->t_vision_ms, 0, w);
    NUM(o, "t_prefill_ms", oc->t_prefill_ms, 0, w);
    NUM(o, "t_decode_ms", oc->t_decode_ms, 0, w);
    NUM(o, "t_down_ms", oc->t_down_ms, 0, w);
    INT(o, "in_tokens", oc->in_tokens, 0, 0, 1 << 28, w);
    INT(o, "out_tokens", oc->out_tokens, 0, 0, 1 << 28, w);
    NUM(o, "cost_usd", oc->cost_usd, 0, w);
    get_bool(o, "failed", &oc->failed);
    INT(o, "stage", t->stage, 0, 0, 2, w);
    NUM(o, "confidence", oc->confidence, -1, w);
    NUM(o, "first_quality", oc->first_quality, -1, w);
    get_bool(o, "escalated", &oc->escalated);
    if (oc->confidence > 1 || (oc->confidence < 0 && oc->confidence != -1)) {
        util_seterr(err, errlen, "%s.confidence: %g not in [0,1] (or -1 = unknown)",
                    w, oc->confidence);
        return -1;
    }
    if (oc->quality > 1 || (oc->quality < 0 && oc->quality != -1)) {
        if (oc->quality < 0) oc->quality = -1;
        else {
            util_seterr(err, errlen, "%s.quality: %g not in [0,1]", w, oc->quality);
            return -1;
        }
    }
    return 0;
}

int trace_parse_line(const char *line, size_t len, struct trace_record *r, char *err,
                     size_t errlen)
{
    memset(r, 0, sizeof *r);
    cJSON *root = cJSON_ParseWithLength(line, len);
    int rc = -1;
    if (!root || !cJSON_IsObject(root)) {
        util_seterr(err, errlen, "not a JSON object");
        goto cleanup;
    }
    double v;
    if (get_num(root, "v", 1, &v, "record", err, errlen) < 0) goto cleanup;
    if (v < 1 || v > TRACE_VERSION) {
        util_seterr(err, errlen, "trace version %g not supported (this ferry reads 1..%d)", v,
                    TRACE_VERSION);
        goto cleanup;
    }
    if (get_str(root, "id", r->id, sizeof r->id, "record", err, errlen) < 0) goto cleanup;
    if (get_str(root, "dataset", r->dataset, sizeof r->dataset, "record", err, errlen) < 0)
        goto cleanup;
    if (get_str(root, "session", r->session, sizeof r->session, "record", err, errlen) < 0)
        goto cleanup;
    if (get_num(root, "t_ms", 0, &r->t_ms, "record", err, errlen) < 0) goto cleanup;
    if (parse_features(cJSON_GetObjectItemCaseSensitive(root, "features"), &r->f, err,
                       errlen) < 0)
        goto cleanup;
    const cJSON *outs = cJSON_GetObjectItemCaseSensitive(root, "outcomes");
    if (!cJSON_IsArray(outs)) {
        util_seterr(err, errlen, "outcomes: missing or not an array");
        goto cleanup;
    }
    const cJSON *e;
    cJSON_ArrayForEach(e, outs)
    {
        if (r->nout >= FY_MAX_NODES) {
            util_seterr(err, errlen, "outcomes: more than %d entries", FY_MAX_NODES);
            goto cleanup;
        }
        char w[32];
        snprintf(w, sizeof w, "outcomes[%d]", r->nout);
        if (parse_outcome(e, &r->out[r->nout], w, err, errlen) < 0) goto cleanup;
        r->nout++;
    }
    rc = 0;
cleanup:
    cJSON_Delete(root);
    return rc;
}

int trace_read_file(const char *path, size_t max_records, struct trace_record **out,
                    size_t *n, char *err, size_t errlen)
{
    FILE *fp = fopen(path, "rb");
    char *line = NULL;
    struct trace_record *recs = NULL;
    size_t nrec = 0, cap = 0, lineno = 0;
    int rc = -1;
    if (!max_records || max_records > TRACE_MAX_RECORDS) max_records = TRACE_MAX_RECORDS;
    *out = NULL;
    *n = 0;
    if (!fp) {
        util_seterr(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    struct stat sb;
    if (fstat(fileno(fp), &sb) == 0 && S_ISDIR(sb.st_mode)) {
        util_seterr(err, errlen, "%s: is a directory", path);
        goto cleanup;
    }
    line = malloc(TRACE_MAX_LINE + 2);
    if (!line) {
        util_seterr(err, errlen, "%s: out of memory", path);
        goto cleanup;
    }
    while (fgets(line, TRACE_MAX_LINE + 2, fp)) {
        lineno++;
        size_t len = strlen(line);
        if (len > TRACE_MAX_LINE) {
            util_seterr(err, errlen, "%s:%zu: line longer than %u bytes", path, lineno,
                        TRACE_MAX_LINE);
            goto cleanup;
        }
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
        size_t k = 0;
        while (k < len && (line[k] == ' ' || line[k] == '\t')) k++;
        if (k == len) continue;
        if (nrec >= max_records) {
            util_seterr(err, errlen, "%s:%zu: more than %zu records", path, lineno, max_records);
            goto cleanup;
        }
        struct trace_record *t = util_grow(recs, &cap, nrec, sizeof *recs, 64);
        if (!t) {
            util_seterr(err, errlen, "%s:%zu: out of memory", path, lineno);
            goto cleanup;
        }
        recs = t;
        char e2[200];
        if (trace_parse_line(line, len, &recs[nrec], e2, sizeof e2) < 0) {
            util_seterr(err, errlen, "%s:%zu: %s", path, lineno, e2);
            goto cleanup;
        }
        nrec++;
    }
    if (ferror(fp)) {
        util_seterr(err, errlen, "%s: read error", path);
        goto cleanup;
    }
    *out = recs;
    *n = nrec;
    recs = NULL;
    rc = 0;
cleanup:
    free(recs);
    free(line);
    fclose(fp);
    return rc;
}
