/* gw/server — the gateway's HTTP front, the request pipeline and the relay (server.h).
 *
 * One chat request (struct gw_req) moves through:
 *   parse     req_parse (inline for small bodies, on a worker for large ones)
 *   features  feat_request (on a worker when the request has images)
 *   decide    pinned node or the policy, on the loop (microseconds)
 *   prepare   DOWNSCALE on a worker; SPLIT: a describe request to the aux node
 *   upstream  curl transfer; bytes are relayed to the client as they arrive
 *   finish    outcome -> policy.observe, pred_observe, node EWMAs, metrics, trace
 * Failover happens only while nothing was sent to the client (see on_up_end). */
#define _GNU_SOURCE /* memmem */
#include "gw/server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <event2/event.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "gw/cascade.h"
#include "gw/hclient.h"
#include "gw/http.h"
#include "gw/metrics.h"
#include "gw/nodes.h"
#include "gw/route.h"
#include "gw/shadow.h"
#include "gw/store.h"
#include "gw/upstream.h"
#include "gw/workers.h"
#include "policy/policy.h"
#include "pred/pred.h"
#include "pred/trace.h"
#include "req/request.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/rng.h"

#define INLINE_PARSE_MAX  (64 * 1024)   /* bodies up to this are parsed on the loop */
#define SSE_LINE_MAX      (64 * 1024)   /* longer SSE lines are not inspected (still relayed) */
#define COPY_MAX          (4u << 20)    /* a split plan's description answer, at most */
#define TAIL_MAX          (64 * 1024)   /* of a relayed non-streamed answer, the end is kept */
#define TAIL_KEEP         (16 * 1024)   /*   (usage comes last) for the usage counts */
#define HELD_MAX          4096          /* error body of a failed attempt, for the message */
#define RECENT_N          1024          /* finished requests remembered for feedback */
#define STORE_FLUSH_MS    200
#define EASY_POOL         64            /* idle curl easy handles kept for reuse */
#define REQ_POOL          64            /* idle request objects kept for reuse */
#define PENDING_FB        64            /* feedback that arrived before its trace row was stored */
#define FEEDBACK_MAX      4096          /* bytes of a POST /v1/feedback body */

struct gw_req;

/* The label a remembered request has: none yet, a shadow label (gw/shadow.h: a noisy
 * one, which user feedback replaces), or user feedback (ground truth, final). */
enum { LABEL_NONE = 0, LABEL_SHADOW, LABEL_USER };

struct recent {
    char id[48];
    int node;                    /* answering node */
    struct fy_plan plan;
    struct fy_features f;
    int labelled;                /* LABEL_* */
    /* while labelled == LABEL_SHADOW: the label's factor in the node's MGQP posterior
     * (malloc'd; NULL when the bank has no such node or memory ran out) and its
     * |prediction − label| counted in the node's quality_mae (< 0: not counted) */
    struct pred_site shadow_site;  /* a shadow label's factor in MGQP (pred_unlabel) */
    double shadow_err;
};

struct gw_server {
    struct gw_config cfg;
    struct event_base *base;
    struct gw_http *http;        /* client side (gw/http.h) */
    struct gw_hc *hc;            /* backend side for plain http:// nodes (gw/hclient.h) */
    struct gw_hc_target *hct[FY_MAX_NODES];  /* per node; NULL = libcurl (https, ...) */
    struct buf hh[FY_MAX_NODES][2];          /* its request header lines: [1] streaming */
    int port;
    struct gw_up *up;
    struct gw_pool *pool;
    struct gw_nodes nodes;
    struct gw_metrics m;
    struct gw_store *store;
    const struct fy_policy *pol;
    void *pol_state;
    struct pred *pred;
    struct gw_shadow *shadow;    /* [shadow] sampling (gw/shadow.h); NULL = off */
    struct rng rng;
    struct req_limits lim;
    uint64_t seq;
    char id_prefix[16];
    double t0_ms;
    int open;                    /* gw_req alive */
    struct gw_req *reqs;         /* every gw_req alive (for shutdown) */
    int draining, closing;
    double drain_deadline_ms;
    struct event *tick;          /* store flush, state save, drain check */
    double last_save_ms;
    struct recent *recent;
    int recent_next;
    /* request headers per node, built once: [0] plain, [1] streaming (Accept: SSE) */
    struct curl_slist *hdrs[FY_MAX_NODES][2];
    CURL *easy_pool[EASY_POOL];  /* finished easy handles, reset, for the next request */
    int neasy;
    struct gw_req *req_pool;     /* freed gw_req objects (singly linked through next) */
    struct { char id[48]; double q; } pending_fb[PENDING_FB];
    int pending_next;
    int nreq_pool;
};

struct trace_job {               /* one trace row: formatted on a worker, stored on the loop */
    struct gw_server *s;
    struct trace_record rec;
    char policy[FY_NAME_MAX], node[FY_NAME_MAX];
    char *line;
    size_t len;
};

struct aux_xfer {                /* the describe request of a SPLIT plan */
    struct gw_xfer x;
    struct gw_req *q;
    char *body;
    struct buf resp;
};

struct gw_req {
    struct gw_xfer x;            /* main upstream transfer (first member), libcurl */
    struct gw_hc_xfer *hx;       /* or the gw/hclient transfer (plain http:// nodes) */
    struct gw_server *s;
    struct gw_req *prev, *next;  /* s->reqs */
    struct gw_hconn *conn;       /* NULL once the client is gone or the reply ended */
    struct gw_hreq *hreq;        /* its parsed request (headers): valid while conn */
    char id[48];
    char *body;
    size_t body_len;
    struct fy_request *fr;
    struct req_error rerr;
    int parse_failed, feat_failed, prep_failed;
    char ferr[256];
    struct fy_features f;
    int has_features;
    int pinned;                  /* node index or GW_PIN_AUTO */
    struct fy_plan plan;
    struct fy_estimate est;
    int has_est;
    struct fy_node *snap;        /* nodes as at dispatch (for learning) */
    double t_arrive, t_parsed, t_dispatch, t_first_byte, t_first_token, t_end;
    double decision_s;
    int node, attempts;
    uint8_t excluded[FY_MAX_NODES];
    char *out_body;
    size_t out_len;
    long status;
    char ctype[128];
    int started, paused, client_gone, upstream_live, pending_work, replied;
    struct aux_xfer *aux;
    struct gw_casc *casc;        /* a cascade plan underway (gw/cascade.h), or NULL */
    struct gw_shadow_req *shadow;/* sampled for a reference answer (gw/shadow.h), or NULL */
    struct buf held, copy, line;
    int out_chunks, usage_in, usage_out;
    struct event *timer;
    int timed_out;
    int qt_node;                 /* node whose tokens_ahead holds this request's share, or -1 */
    double qt_prompt, qt_out;    /* that share: prompt not yet prefilled, output not yet sent */
    char plan_str[256];
    /* a non-streamed answer is buffered (up to max_client_buffer) and sent with its
     * headers in one write; a longer one is relayed as a chunked stream */
    struct buf resp;
    int buffering, reply_status;
    char rh[1024];               /* response headers (lines), built at the first byte */
    size_t rhl;
};

static void finish(struct gw_req *q);
static void dispatch(struct gw_req *q);
static void start_upstream(struct gw_req *q);
static void casc_view(const struct gw_req *q, struct fy_outcome *po);
static void casc_trace(const struct gw_req *q, struct trace_record *tr);

/* ---- small HTTP helpers --------------------------------------------------------- */

/* Response header lines ("Name: value\r\n") in a fixed buffer; a line that does not fit
 * is dropped (the values are the gateway's own: names, numbers, ids). */
struct hdrs {
    char b[1024];
    size_t n;
};

static void hadd(struct hdrs *h, const char *k, const char *v)
{
    size_t room = sizeof h->b - h->n;
    int r = snprintf(h->b + h->n, room, "%s: %s\r\n", k, v);
    if (r > 0 && (size_t)r < room) h->n += (size_t)r;
    else h->b[h->n] = 0;
}

static void send_json(struct gw_hconn *c, int status, const char *extra, const char *json)
{
    struct hdrs h = {.n = 0};
    hadd(&h, "Content-Type", "application/json");
    if (extra) {
        size_t el = strlen(extra);
        if (el < sizeof h.b - h.n) {
            memcpy(h.b + h.n, extra, el);
            h.n += el;
        }
    }
    gw_http_reply(c, status, h.b, h.n, json, strlen(json));
}

static const char *err_type(int status)
{
    switch (status) {
    case 401: return "authentication_error";
    case 404: return "not_found_error";
    case 413: case 400: case 415: case 405: case 501: return "invalid_request_error";
    case 503: return "service_unavailable";
    default: return status >= 500 ? "upstream_error" : "invalid_request_error";
    }
}

/* A copy of msg made valid UTF-8, each byte that starts no valid sequence as '?'
 * (malloc'd; NULL when out of memory). Messages quote client and backend bytes — an
 * X-Ferry-* header value, a backend's error body cut at 300 bytes — and cJSON copies
 * strings as they are: one 0xff made the whole error object invalid JSON text. */
static char *utf8_clean(const char *msg)
{
    char *m = strdup(msg);
    if (!m) return NULL;
    size_t n = strlen(m), off = 0;
    long bad;
    while (off < n && (bad = req_utf8_invalid_at(m + off, n - off)) >= 0) {
        m[off + (size_t)bad] = '?';
        off += (size_t)bad + 1;
    }
    return m;
}

/* An OpenAI-style error object: {"error":{"message","type","param","code"}}. extra: more
 * header lines or NULL. */
static void send_error(struct gw_server *s, struct gw_hconn *c, int status, const char *extra,
                       const char *param, const char *code, const char *msg)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *e = cJSON_AddObjectToObject(root, "error");
    char *clean = utf8_clean(msg);
    cJSON_AddStringToObject(e, "message", clean ? clean : "(message lost: out of memory)");
    free(clean);
    cJSON_AddStringToObject(e, "type", err_type(status));
    if (param && *param) cJSON_AddStringToObject(e, "param", param);
    else cJSON_AddNullToObject(e, "param");
    if (code) cJSON_AddStringToObject(e, "code", code);
    else cJSON_AddNullToObject(e, "code");
    char *txt = cJSON_PrintUnformatted(root);
    send_json(c, status, extra, txt ? txt : "{}");
    free(txt);
    cJSON_Delete(root);
    if (s && status < 500) gw_metrics_client_error(&s->m, status);
}

/* Requests the HTTP layer refused itself (malformed, too large) count as client errors. */
static void on_http_reject(void *arg, int status)
{
    struct gw_server *s = arg;
    if (status < 500) gw_metrics_client_error(&s->m, status);
}

/* Constant-time comparison of the Bearer key with the configured ones. */
static int authorized(struct gw_server *s, const struct gw_hreq *r)
{
    if (s->cfg.nclient_keys == 0) return 1;
    const char *h = gw_http_header(r, "Authorization");
    if (!h || strncasecmp(h, "Bearer ", 7)) return 0;
    const char *k = h + 7;
    size_t kl = strlen(k);
    int ok = 0;
    for (int i = 0; i < s->cfg.nclient_keys; i++) {
        const char *c = s->cfg.client_keys[i];
        size_t cl = strlen(c);
        unsigned char d = (unsigned char)(cl != kl);
        for (size_t j = 0; j < cl; j++) d |= (unsigned char)(c[j] ^ (j < kl ? k[j] : 0));
        ok |= d == 0;
    }
    return ok;
}

static double ms_since(const struct gw_server *s) { return clock_now_ms() - s->t0_ms; }

/* Easy handles are reused: curl_easy_init allocates several kB each time, and the
 * allocator churn showed up as the largest user-space cost per proxied request. */
static CURL *easy_get(struct gw_server *s)
{
    return s->neasy ? s->easy_pool[--s->neasy] : curl_easy_init();
}

static void easy_put(struct gw_server *s, CURL *e)
{
    if (!e) return;
    if (s->neasy < EASY_POOL && !s->closing) {
        curl_easy_reset(e);
        s->easy_pool[s->neasy++] = e;
    } else {
        curl_easy_cleanup(e);
    }
}

/* ---- work ahead in a node (fy_node_state.queued_tokens) ---------------------------- */

static void qt_take(struct gw_req *q, double prompt, double out)
{
    if (q->qt_node < 0) return;
    prompt = prompt < q->qt_prompt ? prompt : q->qt_prompt;
    out = out < q->qt_out ? out : q->qt_out;
    q->qt_prompt -= prompt;
    q->qt_out -= out;
    q->s->nodes.rt[q->qt_node].tokens_ahead -= prompt + out;
}

static void qt_release(struct gw_req *q)
{
    qt_take(q, q->qt_prompt, q->qt_out);
    q->qt_node = -1;
}

/* q is dispatched to q->node (a plain request, or either stage of a cascade): its prompt
 * (text + image tokens under q->plan) and expected output tokens (the estimate, else
 * max_tokens, else 256) count as work ahead there until qt_take / qt_release give them
 * back. Only with features (the token counts need them). */
static void qt_charge(struct gw_req *q)
{
    struct gw_server *s = q->s;
    qt_release(q);
    if (!q->has_features) return;
    double prompt = q->f.text_tokens, b = 0;
    for (int i = 0; i < q->f.nimages; i++)
        prompt += pred_image_tokens(&q->f, i, &s->nodes.node[q->node], &q->plan, &b);
    double out = q->has_est && q->est.out_tokens > 0 ? q->est.out_tokens
                 : q->fr->max_tokens > 0 ? q->fr->max_tokens : 256;
    q->qt_node = q->node;
    q->qt_prompt = prompt;
    q->qt_out = out;
    s->nodes.rt[q->node].tokens_ahead += prompt + out;
}

/* ---- request object ------------------------------------------------------------- */

static void aux_free(struct gw_server *s, struct aux_xfer *a)
{
    if (!a) return;
    if (a->x.easy) {
        gw_up_remove(s->up, &a->x);
        easy_put(s, a->x.easy);
    }
    free(a->body);
    buf_fini(&a->resp);
    free(a);
}

static void drop_upstream(struct gw_req *q)
{
    if (q->upstream_live) q->s->nodes.rt[q->node].inflight--;
    if (q->x.easy) {
        if (q->upstream_live) gw_up_remove(q->s->up, &q->x);
        easy_put(q->s, q->x.easy);
        q->x.easy = NULL;
    }
    if (q->hx) {
        gw_hc_cancel(q->hx);
        q->hx = NULL;
    }
    q->upstream_live = 0;
    qt_release(q);
    if (q->timer) evtimer_del(q->timer);
}

static void req_free_obj(struct gw_req *q)
{
    struct gw_server *s = q->s;
    drop_upstream(q);
    aux_free(s, q->aux);
    gw_casc_free(q->casc);
    q->casc = NULL;
    gw_shadow_req_free(q->shadow);
    q->shadow = NULL;
    if (q->timer) event_free(q->timer);
    req_free(q->fr);
    free(q->body);
    free(q->out_body);
    free(q->snap);
    buf_fini(&q->held);
    buf_fini(&q->copy);
    buf_fini(&q->line);
    buf_fini(&q->resp);
    if (q->prev) q->prev->next = q->next;
    else s->reqs = q->next;
    if (q->next) q->next->prev = q->prev;
    s->open--;
    if (s->nreq_pool < REQ_POOL && !s->closing) {
        q->next = s->req_pool;
        s->req_pool = q;
        s->nreq_pool++;
    } else {
        free(q);
    }
}

/* Frees q once nothing refers to it any more (no worker job, no transfer). */
static void maybe_free(struct gw_req *q)
{
    if (q->replied && !q->pending_work && !q->upstream_live && !q->aux) req_free_obj(q);
}

/* The client went away (gw/http closes the connection after this call). */
static void on_client_gone(void *arg)
{
    struct gw_req *q = arg;
    q->client_gone = 1;
    q->conn = NULL;
    q->hreq = NULL;
    log_debug("gw", "%s: client disconnected", q->id);
    if (q->casc && q->casc->live) {      /* a cascade's stage 1: cancel it */
        gw_casc_cancel(q->casc);
        q->s->nodes.rt[q->node].inflight--;
        qt_release(q);
        finish(q);
        return;
    }
    if (q->upstream_live) {
        /* cancel the backend transfer: its work is wasted from here on */
        drop_upstream(q);
        q->t_end = ms_since(q->s);
        finish(q);
        return;
    }
    if (q->aux) {
        aux_free(q->s, q->aux);
        q->aux = NULL;
    }
    if (!q->pending_work && !q->replied) finish(q);
}

/* Ends the client side with an error (nothing relayed yet). */
static void reply_error(struct gw_req *q, int status, const char *param, const char *code,
                        const char *msg)
{
    if (q->conn) {
        char extra[96];
        snprintf(extra, sizeof extra, "X-Ferry-Request-Id: %s\r\n", q->id);
        send_error(q->s, q->conn, status, extra, param, code, msg);
        q->conn = NULL;
        q->hreq = NULL;
    }
    q->replied = 1;
}

/* The "param" of an invalid_image error: the image's JSON path, which feature extraction
 * and downscaling put before the first ": " of their message
 * ("messages[0].content[1].image_url.url: jpeg: truncated data"); else "messages". */
static const char *image_param(const char *ferr, char *out, size_t cap)
{
    const char *colon = strstr(ferr, ": ");
    size_t n = colon ? (size_t)(colon - ferr) : 0;
    if (strncmp(ferr, "messages[", 9) || n == 0 || n >= cap) return "messages";
    memcpy(out, ferr, n);
    out[n] = 0;
    return out;
}

/* ---- observation of the relayed bytes ------------------------------------------- */

/* Integer after "key": in json[0..len), or -1. */
static long json_int_after(const char *json, size_t len, const char *key)
{
    size_t kl = strlen(key);
    const char *p = memmem(json, len, key, kl);
    if (!p) return -1;
    p += kl;
    const char *end = json + len;
    while (p < end && (*p == ' ' || *p == ':' || *p == '"')) p++;
    long v = 0;
    int digits = 0;
    while (p < end && *p >= '0' && *p <= '9' && digits < 12) {
        v = v * 10 + (*p++ - '0');
        digits++;
    }
    return digits ? v : -1;
}

/* The usage counts of an answer or of a stream's usage chunk. A key scan, not a JSON
 * parse: the answer itself was already relayed, only these two numbers are needed. */
static void parse_usage(struct gw_req *q, const char *json, size_t len)
{
    const char *u = memmem(json, len, "\"usage\"", 7);
    if (!u) return;
    size_t rest = len - (size_t)(u - json);
    long pt = json_int_after(u, rest, "\"prompt_tokens\"");
    long ct = json_int_after(u, rest, "\"completion_tokens\"");
    if (pt >= 0) q->usage_in = (int)pt;
    if (ct >= 0) q->usage_out = (int)ct;
}

/* One SSE line (without the newline). Tokens are counted as content-carrying events;
 * a usage object, when the client asked for one, overrides the count. */
static void sse_line(struct gw_req *q, const char *l, size_t n)
{
    if (n < 5 || memcmp(l, "data:", 5)) return;
    l += 5;
    n -= 5;
    while (n && *l == ' ') { l++; n--; }
    if (n == 6 && !memcmp(l, "[DONE]", 6)) return;
    /* cheap test before any JSON parsing: a non-empty "content" string */
    const char *c = memmem(l, n, "\"content\":\"", 11);
    if (c && (size_t)(c - l) + 11 < n && c[11] != '"') {
        q->out_chunks++;
        if (q->t_first_token <= 0) {
            q->t_first_token = ms_since(q->s);
            qt_take(q, q->qt_prompt, 0);    /* prefill done */
        }
        qt_take(q, 0, 1);
    }
    if (memmem(l, n, "\"completion_tokens\"", 19)) parse_usage(q, l, n);
}

static void observe_bytes(struct gw_req *q, const char *p, size_t n)
{
    if (q->shadow) gw_shadow_bytes(q->shadow, p, n);
    if (!q->fr || !q->fr->stream) {
        /* keep only the end of the answer: "usage" follows "choices" */
        if (n >= TAIL_KEEP) {
            buf_reset(&q->copy);
            buf_append(&q->copy, p + n - TAIL_KEEP, TAIL_KEEP);
            return;
        }
        buf_append(&q->copy, p, n);
        if (q->copy.len > TAIL_MAX) {
            memmove(q->copy.data, q->copy.data + q->copy.len - TAIL_KEEP, TAIL_KEEP);
            q->copy.len = TAIL_KEEP;
            q->copy.data[q->copy.len] = 0;
        }
        return;
    }
    const char *end = p + n;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t k = nl ? (size_t)(nl - p) : (size_t)(end - p);
        if (q->line.len + k <= SSE_LINE_MAX) buf_append(&q->line, p, k);
        else q->line.len = SSE_LINE_MAX + 1;   /* too long: skip this line */
        if (!nl) break;
        if (q->line.len <= SSE_LINE_MAX) {
            size_t ll = q->line.len;
            if (ll && q->line.data[ll - 1] == '\r') ll--;
            sse_line(q, q->line.data ? q->line.data : "", ll);
        }
        buf_reset(&q->line);
        p = nl + 1;
    }
}

/* ---- relay ---------------------------------------------------------------------- */

static size_t client_backlog(struct gw_req *q)
{
    return q->conn ? gw_http_backlog(q->conn) : 0;
}

static void arm_timer(struct gw_req *q, int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(q->timer, &tv);
}

/* The first byte of the answer: its status and headers are fixed from here on. A
 * streamed answer starts at once; a non-streamed one is buffered (see gw_req.resp). */
static void start_reply(struct gw_req *q)
{
    struct gw_server *s = q->s;
    q->started = 1;
    q->t_first_byte = ms_since(s);
    if (!q->conn) return;
    char v[64];
    struct hdrs h = {.n = 0};
    hadd(&h, "Content-Type", q->ctype[0] ? q->ctype : "application/json");
    if (q->fr && q->fr->stream) hadd(&h, "Cache-Control", "no-cache");
    hadd(&h, "X-Ferry-Request-Id", q->id);
    hadd(&h, "X-Ferry-Node", s->nodes.node[q->node].name);
    hadd(&h, "X-Ferry-Policy", q->pinned >= 0 ? "pinned" : s->cfg.policy);
    hadd(&h, "X-Ferry-Plan", q->plan_str);
    if (q->has_est) {
        snprintf(v, sizeof v, "%.1f", q->est.e2e_ms);
        hadd(&h, "X-Ferry-Predicted-Latency-Ms", v);
        snprintf(v, sizeof v, "%.4f", q->est.q_mean);
        hadd(&h, "X-Ferry-Predicted-Quality", v);
    }
    if (q->casc) {                       /* the cascade's verdict (gw/cascade.h) */
        hadd(&h, "X-Ferry-Cascade", gw_casc_result_name(q->casc->result));
        if (q->casc->confidence >= 0) {
            snprintf(v, sizeof v, "%.3f", q->casc->confidence);
            hadd(&h, "X-Ferry-Confidence", v);
        }
    }
    memcpy(q->rh, h.b, h.n);
    q->rhl = h.n;
    q->reply_status = (int)q->status;
    if (q->fr && q->fr->stream) {
        /* tokens leave as they come (the listener's TCP_NODELAY is inherited) */
        gw_http_stream_start(q->conn, q->reply_status, q->rh, q->rhl);
    } else {
        q->buffering = 1;
        buf_reset(&q->resp);
    }
}

/* A buffered answer outgrew max_client_buffer: relay it as a stream from here on. */
static void unbuffer(struct gw_req *q)
{
    q->buffering = 0;
    if (!q->conn) return;
    gw_http_stream_start(q->conn, q->reply_status, q->rh, q->rhl);
    if (q->resp.len) gw_http_stream_write(q->conn, q->resp.data, q->resp.len);
    buf_fini(&q->resp);
}

/* The client's socket drained: resume a paused upstream. */
static void on_client_drained(void *arg)
{
    struct gw_req *q = arg;
    log_debug("gw", "%s: client drained (paused %d, backlog %zu)", q->id, q->paused, client_backlog(q));
    if (q->paused && q->upstream_live && client_backlog(q) <= q->s->cfg.max_client_buffer / 2) {
        q->paused = 0;
        if (q->hx) {
            gw_hc_resume(q->hx);
        } else {
            curl_easy_pause(q->x.easy, CURLPAUSE_CONT);
            gw_up_kick(q->s->up);
        }
    }
}

static size_t on_up_header(char *p, size_t sz, size_t nm, void *arg)
{
    struct gw_req *q = arg;
    size_t n = sz * nm;
    if (n > 13 && !strncasecmp(p, "content-type:", 13)) {
        const char *v = p + 13;
        size_t k = n - 13;
        while (k && (*v == ' ' || *v == '\t')) { v++; k--; }
        while (k && (v[k - 1] == '\r' || v[k - 1] == '\n' || v[k - 1] == ' ')) k--;
        if (k >= sizeof q->ctype) k = sizeof q->ctype - 1;
        memcpy(q->ctype, v, k);
        q->ctype[k] = 0;
    }
    return n;
}

static int retryable_status(long st) { return st >= 500 || st == 429; }

static size_t on_up_write(char *p, size_t sz, size_t nm, void *arg)
{
    struct gw_req *q = arg;
    size_t n = sz * nm;
    if (q->client_gone) return 0;                    /* aborts the transfer */
    if (!q->status && q->x.easy) curl_easy_getinfo(q->x.easy, CURLINFO_RESPONSE_CODE, &q->status);
    if (!q->started) {
        if (retryable_status(q->status)) {           /* keep it: we may fail over */
            if (q->held.len + n <= HELD_MAX) buf_append(&q->held, p, n);
            return n;
        }
        start_reply(q);
    }
    if (q->buffering) {
        if (q->resp.len + n <= q->s->cfg.max_client_buffer) {
            if (q->conn) buf_append(&q->resp, p, n);
            observe_bytes(q, p, n);
            arm_timer(q, q->s->cfg.idle_ms);
            return n;
        }
        unbuffer(q);
    }
    if (client_backlog(q) > q->s->cfg.max_client_buffer) {
        if (!q->paused) log_debug("gw", "%s: client backlog %zu: pausing the upstream", q->id, client_backlog(q));
        q->paused = 1;                               /* curl keeps these bytes for later */
        return CURL_WRITEFUNC_PAUSE;
    }
    if (q->conn) gw_http_stream_write(q->conn, p, n);
    observe_bytes(q, p, n);
    arm_timer(q, q->s->cfg.idle_ms);
    return n;
}

/* ---- outcome -------------------------------------------------------------------- */

static void remember(struct gw_server *s, struct gw_req *q)
{
    if (!q->has_features) return;
    struct recent *r = &s->recent[s->recent_next];
    s->recent_next = (s->recent_next + 1) % RECENT_N;
    pred_site_free(&r->shadow_site);
    r->shadow_err = -1;
    r->labelled = LABEL_NONE;
    snprintf(r->id, sizeof r->id, "%s", q->id);
    r->node = q->node;
    r->plan = q->plan;
    r->plan.node = q->node;
    r->f = q->f;
}

static void work_trace(void *arg)
{
    struct trace_job *j = arg;
    j->line = gw_store_format(&j->rec, &j->len);
}

static void done_trace(void *arg)
{
    struct trace_job *j = arg;
    struct gw_server *s = j->s;
    if (!j->line || gw_store_put_line(s->store, j->rec.id, j->policy, j->node, j->line, j->len))
        log_warn("gw", "%s: trace: cannot store the record", j->rec.id);
    for (int i = 0; i < PENDING_FB; i++)   /* feedback that was faster than this row */
        if (s->pending_fb[i].id[0] && !strcmp(s->pending_fb[i].id, j->rec.id)) {
            gw_store_set_quality(s->store, j->rec.id, s->pending_fb[i].q);
            s->pending_fb[i].id[0] = 0;
        }
    free(j->line);
    free(j);
}

static void record(struct gw_req *q, int failed)
{
    struct gw_server *s = q->s;
    if (!q->snap || q->node < 0 || q->t_dispatch <= 0) return;
    const struct fy_node *nd = &q->snap[q->node];
    struct fy_outcome o;
    memset(&o, 0, sizeof o);
    o.plan = q->plan;
    o.plan.node = q->node;
    o.quality = -1;
    o.confidence = -1;
    o.first_quality = -1;
    o.failed = failed;
    double first = q->t_first_token > 0 ? q->t_first_token : q->t_first_byte;
    o.ttft_ms = first > 0 ? first - q->t_dispatch : 0;
    o.e2e_ms = q->t_end - q->t_dispatch;
    if (!q->fr || !q->fr->stream) {
        if (q->copy.len) parse_usage(q, q->copy.data, q->copy.len);
        o.ttft_ms = o.e2e_ms;   /* non-streamed: the whole answer arrives at once */
    }
    o.out_tokens = q->usage_out > 0 ? q->usage_out : q->out_chunks;
    o.in_tokens = q->usage_in;
    o.cost_usd = (o.in_tokens * nd->prof.usd_per_mtok_in +
                  o.out_tokens * nd->prof.usd_per_mtok_out) / 1e6;
    if (!failed) {
        double tpot = o.out_tokens > 1 && q->t_first_token > 0
                          ? (q->t_end - q->t_first_token) / (o.out_tokens - 1) : 0;
        gw_nodes_observe(&s->nodes, q->node, q->fr && q->fr->stream ? o.ttft_ms : 0, tpot);
    }
    if (q->has_features) {
        struct pol_ctx c = {
            .f = &q->f, .prefs = &q->fr->prefs, .nodes = q->snap, .nnodes = s->nodes.n,
            .pred = s->pred, .now_ms = ms_since(s), .rng = &s->rng,
            .session = q->fr->prefs.session,
        };
        struct fy_outcome po = o;        /* a cascade is learned from as a whole */
        if (q->casc) casc_view(q, &po);
        if (q->pinned < 0 && s->pol->observe) s->pol->observe(s->pol_state, &c, &po);
        if (s->pred && !failed) pred_observe(s->pred, &q->f, q->snap, &o);
    }
    if (!failed && q->has_est && q->est.e2e_ms > 0) {
        gw_metrics_latency(&s->m, q->node, q->est.e2e_ms / 1e3, o.e2e_ms / 1e3);
        struct gw_node_rt *rt = &s->nodes.rt[q->node];
        rt->lat_abs_err_sum += fabs(q->est.e2e_ms - o.e2e_ms);
        rt->lat_err_n++;
    }
    if (!failed) remember(s, q);
    if (q->shadow && !failed && !q->client_gone) {   /* gw/shadow: ask the reference now */
        gw_shadow_submit(s->shadow, q->shadow, q->id, q->node, o.in_tokens, o.out_tokens);
        q->shadow = NULL;
    }
    if (s->store && q->has_features) {
        struct trace_job *j = calloc(1, sizeof *j);
        if (j) {
            struct trace_record *tr = &j->rec;
            j->s = s;
            snprintf(j->policy, sizeof j->policy, "%s", q->pinned >= 0 ? "pinned" : s->cfg.policy);
            snprintf(j->node, sizeof j->node, "%s", nd->name);
            snprintf(tr->id, sizeof tr->id, "%s", q->id);
            snprintf(tr->dataset, sizeof tr->dataset, "gateway");
            snprintf(tr->session, sizeof tr->session, "%s", q->fr->prefs.session);
            tr->t_ms = q->t_arrive;
            tr->f = q->f;
            tr->nout = 1;
            struct trace_outcome *to = &tr->out[0];
            snprintf(to->node, sizeof to->node, "%s", nd->name);
            to->role = nd->role;
            snprintf(to->model, sizeof to->model, "%s", nd->prof.model);
            to->link = nd->link;
            to->state = nd->st;
            int itok = 0;
            for (int i = 0; i < q->f.nimages; i++) {
                double b = 0;
                itok += pred_image_tokens(&q->f, i, nd, &o.plan, &b);
            }
            to->bytes_up = (double)q->out_len;
            to->image_tokens = itok;
            to->chosen = 1;
            to->o = o;
            if (q->casc) casc_trace(q, tr);
            if (gw_pool_submit(s->pool, work_trace, done_trace, j)) {
                work_trace(j);      /* pool stopping: do it here */
                done_trace(j);
            }
        }
    }
}

/* The request is over on our side: count it, learn, and release what is done. */
static void finish(struct gw_req *q)
{
    struct gw_server *s = q->s;
    if (q->t_end <= 0) q->t_end = ms_since(s);
    if (q->node >= 0 && q->t_dispatch > 0) {
        int out = q->client_gone ? GW_OUT_CLIENT_GONE
                  : (q->status >= 200 && q->status < 300 && !q->timed_out && !q->prep_failed)
                      ? GW_OUT_OK : GW_OUT_UPSTREAM_ERROR;
        s->m.requests[q->node][q->pinned >= 0 ? 0 : 1][out]++;
        record(q, out == GW_OUT_UPSTREAM_ERROR || (out == GW_OUT_CLIENT_GONE && !q->started));
    }
    q->replied = 1;
    maybe_free(q);
}

/* ---- upstream end, failover ------------------------------------------------------ */

/* Another node for a request whose attempt failed before its first byte. 0 when a new
 * attempt started. */
static int failover(struct gw_req *q)
{
    struct gw_server *s = q->s;
    if (q->pinned >= 0 || q->attempts > s->cfg.max_retries || q->client_gone) return -1;
    q->excluded[q->node] = 1;
    gw_nodes_refresh(&s->nodes);
    struct pol_ctx c = {
        .f = &q->f, .prefs = &q->fr->prefs, .nodes = s->nodes.node, .nnodes = s->nodes.n,
        .pred = s->pred, .now_ms = ms_since(s), .rng = &s->rng, .session = q->fr->prefs.session,
    };
    struct fy_plan p;
    struct fy_estimate e;
    if (gw_route_decide(s->pol, s->pol_state, &c, q->excluded, &p, &e)) return -1;
    log_info("gw", "%s: failover %s -> %s", q->id, s->nodes.node[q->node].name,
             s->nodes.node[p.node].name);
    s->m.failovers++;
    /* the images were already prepared for the first plan; only the node changes */
    q->plan.node = p.node;
    q->node = p.node;
    q->has_est = 0;
    if (s->pred && pred_estimate(s->pred, &q->f, s->nodes.node, p.node, &q->plan, &q->est) == 0)
        q->has_est = 1;
    gw_route_plan_str(&q->plan, q->f.nimages, s->nodes.node, q->plan_str, sizeof q->plan_str);
    q->status = 0;
    q->ctype[0] = 0;
    buf_reset(&q->held);
    q->timed_out = 0;
    free(q->out_body);
    q->out_body = gw_route_body(q->fr, s->cfg.nodes[q->node].model, &q->out_len);
    if (!q->out_body) return -1;
    start_upstream(q);
    return 0;
}

static void on_up_end(struct gw_req *q, CURLcode rc)
{
    struct gw_server *s = q->s;
    int node = q->node;
    if (!q->status && q->x.easy) curl_easy_getinfo(q->x.easy, CURLINFO_RESPONSE_CODE, &q->status);
    log_debug("gw", "%s: upstream ended: curl %d, HTTP %ld, started %d", q->id, (int)rc, q->status, q->started);
    drop_upstream(q);
    q->t_end = ms_since(s);
    if (q->client_gone) {
        finish(q);
        return;
    }
    if (!q->started) {
        int kind = -1;
        if (q->timed_out || rc == CURLE_OPERATION_TIMEDOUT) kind = GW_UPERR_TIMEOUT;
        else if (rc != CURLE_OK) kind = GW_UPERR_CONNECT;
        else if (retryable_status(q->status)) kind = GW_UPERR_5XX;
        if (kind >= 0) {
            s->m.uperr[node][kind]++;
            if (q->status != 429) gw_nodes_fail(&s->nodes, node);
            record(q, 1);
            if (failover(q) == 0) return;
            char msg[512], why[160];
            if (kind == GW_UPERR_TIMEOUT)
                snprintf(why, sizeof why, "timed out");
            else if (kind == GW_UPERR_CONNECT)   /* gw/hclient's EPROTO arrives as this */
                snprintf(why, sizeof why, "failed: %s", rc == CURLE_WEIRD_SERVER_REPLY
                         ? "malformed HTTP response" : curl_easy_strerror(rc));
            else
                snprintf(why, sizeof why, "answered HTTP %ld", q->status);
            snprintf(msg, sizeof msg, "upstream node '%s' %s%s%.*s (after %d attempt%s)",
                     s->nodes.node[node].name, why, q->held.len ? ": " : "",
                     (int)(q->held.len > 300 ? 300 : q->held.len),
                     q->held.data ? q->held.data : "", q->attempts, q->attempts > 1 ? "s" : "");
            int st = kind == GW_UPERR_TIMEOUT ? 504 : 502;
            q->status = st;
            reply_error(q, st, NULL, "upstream_unavailable", msg);
            s->m.requests[node][q->pinned >= 0 ? 0 : 1][GW_OUT_UPSTREAM_ERROR]++;
            q->t_dispatch = 0;   /* recorded above */
            finish(q);
            return;
        }
        start_reply(q);          /* an empty answer: relay status and headers */
    }
    if (rc != CURLE_OK || q->timed_out) {
        /* after the first byte there is no going back: say so in the stream */
        s->m.uperr[node][GW_UPERR_MIDSTREAM]++;
        q->status = 502;
        if (q->conn && q->buffering) {
            /* a JSON answer still held whole: nothing reached the client yet, so it
             * gets an error object with a status instead of a bare close */
            char msg[512];
            snprintf(msg, sizeof msg, "upstream node '%s' failed in the middle of its answer "
                     "(after %zu bytes): %s", s->nodes.node[node].name, q->resp.len,
                     q->timed_out ? "stalled" : curl_easy_strerror(rc));
            q->status = q->timed_out ? 504 : 502;
            reply_error(q, (int)q->status, NULL, "upstream_failed", msg);
            q->hreq = NULL;
            finish(q);
            return;
        }
        if (q->conn && q->fr && q->fr->stream) {
            char msg[256], ev[640];
            snprintf(msg, sizeof msg, "upstream node '%s' failed mid-stream: %s",
                     s->nodes.node[node].name,
                     q->timed_out ? "stalled" : curl_easy_strerror(rc));
            /* cJSON escapes: a node name is the operator's free text */
            cJSON *root = cJSON_CreateObject(), *e = cJSON_AddObjectToObject(root, "error");
            cJSON_AddStringToObject(e, "message", msg);
            cJSON_AddStringToObject(e, "type", "upstream_error");
            cJSON_AddNullToObject(e, "param");
            cJSON_AddStringToObject(e, "code", "upstream_failed");
            char *js = cJSON_PrintUnformatted(root);
            cJSON_Delete(root);
            snprintf(ev, sizeof ev, "data: %s\n\n", js ? js : "{\"error\":{}}");
            free(js);
            if (q->buffering) unbuffer(q);
            gw_http_stream_write(q->conn, ev, strlen(ev));
        }
        if (q->conn && !(q->fr && q->fr->stream)) {
            /* a cut JSON answer must not look complete: close instead of ending it */
            gw_http_abort(q->conn);
            q->conn = NULL;
        }
    } else {
        gw_nodes_ok(&s->nodes, node);
    }
    if (q->conn) {
        if (q->buffering)
            gw_http_reply(q->conn, q->reply_status, q->rh, q->rhl, q->resp.data, q->resp.len);
        else
            gw_http_stream_end(q->conn);
        q->conn = NULL;
    }
    q->hreq = NULL;
    finish(q);
}

static void on_up_done(struct gw_xfer *x, CURLcode rc) { on_up_end((struct gw_req *)x, rc); }

/* First-byte or idle timeout. */
static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    struct gw_req *q = arg;
    if (!q->upstream_live) return;
    if (q->paused) {                 /* a slow client, not a slow backend */
        arm_timer(q, q->s->cfg.idle_ms);
        return;
    }
    q->timed_out = 1;
    on_up_end(q, CURLE_OPERATION_TIMEDOUT);
}

/* ---- gw/hclient transfers (plain http:// nodes): the same relay as curl's callbacks -- */

static void hc_head(void *arg, int status, const char *ctype)
{
    struct gw_req *q = arg;
    q->status = status;
    snprintf(q->ctype, sizeof q->ctype, "%s", ctype);
}

static size_t hc_data(void *arg, const char *p, size_t n)
{
    size_t r = on_up_write((char *)p, 1, n, arg);
    return r == CURL_WRITEFUNC_PAUSE ? GW_HC_PAUSE : r;
}

/* gw_hc errors as the curl codes on_up_end classifies (and names in messages) */
static void hc_end(void *arg, int err)
{
    static const CURLcode map[] = {
        [GW_HC_OK] = CURLE_OK, [GW_HC_ECONNECT] = CURLE_COULDNT_CONNECT,
        [GW_HC_ESEND] = CURLE_SEND_ERROR, [GW_HC_ERECV] = CURLE_RECV_ERROR,
        [GW_HC_EPROTO] = CURLE_WEIRD_SERVER_REPLY, [GW_HC_ETIMEOUT] = CURLE_OPERATION_TIMEDOUT,
        [GW_HC_EABORT] = CURLE_WRITE_ERROR,
    };
    struct gw_req *q = arg;
    q->hx = NULL;                        /* gone: drop_upstream must not cancel it */
    on_up_end(q, err >= 0 && err <= GW_HC_EABORT ? map[err] : CURLE_RECV_ERROR);
}

static const struct gw_hc_cb hc_cbs = {hc_head, hc_data, hc_end};

/* The libcurl easy handle of q's transfer (https:// and other non-plain nodes). */
static int curl_setup(struct gw_req *q)
{
    struct gw_server *s = q->s;
    const struct gw_node_cfg *nc = &s->cfg.nodes[q->node];
    q->x.easy = easy_get(s);
    if (!q->x.easy) return -1;
    char url[GW_URL_MAX + 32];
    snprintf(url, sizeof url, "%s/v1/chat/completions", nc->url);
    CURL *e = q->x.easy;
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, q->out_body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)q->out_len);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_up_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, q);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_up_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, q);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PROXY, "");   /* no *_proxy environment lookups per request */
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)s->cfg.connect_ms);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)s->cfg.total_ms);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, s->hdrs[q->node][q->fr->stream ? 1 : 0]);
    return 0;
}

static void start_upstream(struct gw_req *q)
{
    struct gw_server *s = q->s;
    q->attempts++;
    q->x.done = on_up_done;
    struct gw_hc_target *plain = s->hct[q->node];
    if (!plain && curl_setup(q)) goto fail;
    gw_nodes_refresh(&s->nodes);
    free(q->snap);
    q->snap = malloc((size_t)s->nodes.n * sizeof *q->snap);
    if (q->snap) memcpy(q->snap, s->nodes.node, (size_t)s->nodes.n * sizeof *q->snap);
    q->t_dispatch = ms_since(s);
    q->t_first_byte = q->t_first_token = 0;
    if (plain) {
        const struct buf *h = &s->hh[q->node][q->fr->stream ? 1 : 0];
        q->hx = gw_hc_post(s->hc, plain, "/v1/chat/completions", h->data, h->len, q->out_body,
                           q->out_len, s->cfg.connect_ms, s->cfg.total_ms, &hc_cbs, q);
        if (!q->hx) goto fail;
    } else if (gw_up_add(s->up, &q->x)) {
        goto fail;
    }
    q->upstream_live = 1;
    s->nodes.rt[q->node].inflight++;
    qt_charge(q);
    arm_timer(q, s->cfg.first_byte_ms);
    return;
fail:
    easy_put(s, q->x.easy);
    q->x.easy = NULL;
    reply_error(q, 500, NULL, NULL, "gateway: cannot start the upstream transfer");
    finish(q);
}

/* ---- split: the describe request ------------------------------------------------ */

static size_t aux_write(char *p, size_t sz, size_t nm, void *arg)
{
    struct aux_xfer *a = arg;
    size_t n = sz * nm;
    if (a->resp.len + n > COPY_MAX) return 0;
    buf_append(&a->resp, p, n);
    return n;
}

static void aux_done(struct gw_xfer *x, CURLcode rc)
{
    struct aux_xfer *a = (struct aux_xfer *)x;
    struct gw_req *q = a->q;
    struct gw_server *s = q->s;
    long st = 0;
    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &st);
    char *desc = NULL;
    if (rc == CURLE_OK && st == 200 && a->resp.len)
        desc = gw_route_answer_text(a->resp.data, a->resp.len);
    if (!desc) {
        int aux = q->plan.aux_node;
        s->m.uperr[aux][rc != CURLE_OK ? GW_UPERR_CONNECT : GW_UPERR_5XX]++;
        log_warn("gw", "%s: split: node '%s' gave no description (curl %d, HTTP %ld); "
                 "the answering node gets the text alone", q->id, s->nodes.node[aux].name,
                 (int)rc, st);
    }
    q->aux = NULL;
    aux_free(s, a);
    if (q->client_gone) {
        free(desc);
        finish(q);
        return;
    }
    gw_route_apply_text(q->fr, &q->plan, desc);
    free(desc);
    dispatch(q);
}

static int start_aux(struct gw_req *q)
{
    struct gw_server *s = q->s;
    const struct gw_node_cfg *nc = &s->cfg.nodes[q->plan.aux_node];
    struct aux_xfer *a = calloc(1, sizeof *a);
    if (!a) return -1;
    a->q = q;
    a->x.done = aux_done;
    size_t len = 0;
    a->body = gw_route_split_body(q->fr, &q->plan, nc->model, s->cfg.split_max_tokens, &len);
    a->x.easy = easy_get(s);
    if (!a->body || !a->x.easy) goto fail;
    char url[GW_URL_MAX + 32];
    snprintf(url, sizeof url, "%s/v1/chat/completions", nc->url);
    CURL *e = a->x.easy;
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, a->body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, aux_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, a);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)s->cfg.connect_ms);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)s->cfg.first_byte_ms);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, s->hdrs[q->plan.aux_node][0]);
    if (gw_up_add(s->up, &a->x)) goto fail;
    q->aux = a;
    return 0;
fail:
    aux_free(s, a);
    return -1;
}

/* ---- cascades (gw/cascade.h): stage 1, verdict, then delivery or escalation ------ */

static void casc_done(struct gw_casc *c, void *arg);

/* q's plan is a cascade: its state, and X-Ferry-Plan naming it. */
static void casc_plan(struct gw_req *q)
{
    q->casc = gw_casc_new(&q->plan);
    if (!q->casc) {                      /* out of memory: answer on plan.node alone */
        q->plan.escalate_below = 0;
        q->plan.escalate_node = -1;
        return;
    }
    char rest[sizeof q->plan_str];
    memcpy(rest, q->plan_str, sizeof rest);
    gw_casc_plan_str(&q->plan, q->s->nodes.node, rest, q->plan_str, sizeof q->plan_str);
}

/* Stage 1: the request to plan.node, non-streaming, with logprobs. */
static void casc_start(struct gw_req *q)
{
    struct gw_server *s = q->s;
    struct gw_casc *c = q->casc;
    const struct gw_node_cfg *nc = &s->cfg.nodes[q->node];
    char url[GW_URL_MAX + 32];
    snprintf(url, sizeof url, "%s/v1/chat/completions", nc->url);
    gw_nodes_refresh(&s->nodes);
    free(c->snap);
    c->snap = malloc((size_t)s->nodes.n * sizeof *c->snap);
    size_t len = 0;
    char *body = c->snap ? gw_casc_stage1_body(q->fr, nc->model, &len) : NULL;
    if (c->snap) memcpy(c->snap, s->nodes.node, (size_t)s->nodes.n * sizeof *c->snap);
    c->t_dispatch = ms_since(s);
    /* the answer arrives whole: first_byte_ms bounds all of it */
    if (gw_casc_start(c, s->up, url, s->hdrs[q->node][0], body, len, s->cfg.connect_ms,
                      s->cfg.first_byte_ms, casc_done, q)) {
        reply_error(q, 500, NULL, NULL, "gateway: cannot start the cascade's first stage");
        finish(q);
        return;
    }
    s->nodes.rt[q->node].inflight++;
    qt_charge(q);                        /* given back in casc_done / on_client_gone */
}

/* An accepted stage-1 answer goes to the client (JSON, or SSE when it streams). */
static void casc_deliver(struct gw_req *q)
{
    struct gw_server *s = q->s;
    struct gw_casc *c = q->casc;
    int stream = q->fr->stream;
    int keep = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(q->fr->json, "logprobs"));
    size_t len = 0;
    char *body = gw_casc_client_body(c->resp.data, c->resp.len, keep, stream,
                                     q->fr->include_usage, &len);
    q->t_dispatch = c->t_dispatch;       /* recorded as one run on plan.node */
    free(q->snap);
    q->snap = c->snap;
    c->snap = NULL;
    pol_plan_keep(&q->plan, q->node);
    if (!body) {
        reply_error(q, 500, NULL, NULL, "gateway: out of memory");
        q->t_dispatch = 0;
        finish(q);
        return;
    }
    q->status = 200;
    snprintf(q->ctype, sizeof q->ctype, "%s", stream ? "text/event-stream" : "application/json");
    start_reply(q);
    q->t_first_token = q->t_first_byte;
    if (q->conn) {
        if (q->buffering)
            gw_http_reply(q->conn, q->reply_status, q->rh, q->rhl, body, len);
        else {
            gw_http_stream_write(q->conn, body, len);
            gw_http_stream_end(q->conn);
        }
        q->conn = NULL;
        q->hreq = NULL;
    }
    free(body);
    q->t_end = ms_since(s);
    finish(q);
}

static void casc_done(struct gw_casc *c, void *arg)
{
    struct gw_req *q = arg;
    struct gw_server *s = q->s;
    int node = q->node;
    c->t_end = ms_since(s);
    s->nodes.rt[node].inflight--;
    qt_release(q);
    s->m.cascade[node][c->result]++;
    /* stage 1's own outcome: a plain run on plan.node */
    struct fy_outcome *o1 = &c->o1;
    memset(o1, 0, sizeof *o1);
    pol_plan_keep(&o1->plan, node);
    o1->plan.escalate_node = -1;
    o1->quality = o1->first_quality = -1;
    o1->confidence = c->confidence;
    o1->escalated = c->result == GW_CASC_ESCALATED;
    o1->failed = !c->answered;
    o1->ttft_ms = o1->e2e_ms = c->t_end - c->t_dispatch;
    if (c->answered) {
        gw_nodes_ok(&s->nodes, node);
        parse_usage(q, c->resp.data, c->resp.len);
        o1->in_tokens = q->usage_in;
        o1->out_tokens = q->usage_out;
        const struct fy_node_profile *pf = &s->nodes.node[node].prof;
        o1->cost_usd = (o1->in_tokens * pf->usd_per_mtok_in +
                        o1->out_tokens * pf->usd_per_mtok_out) / 1e6;
    } else {
        int kind = c->rc == CURLE_OPERATION_TIMEDOUT ? GW_UPERR_TIMEOUT
                   : c->rc != CURLE_OK ? GW_UPERR_CONNECT : GW_UPERR_5XX;
        s->m.uperr[node][kind]++;
        if (c->rc != CURLE_OK || c->status >= 500) gw_nodes_fail(&s->nodes, node);
        log_info("gw", "%s: cascade: stage 1 on '%s' gave no answer (curl %d, HTTP %ld): "
                 "escalating", q->id, s->nodes.node[node].name, (int)c->rc, c->status);
    }
    if (c->result != GW_CASC_ESCALATED) {
        casc_deliver(q);
        return;
    }
    /* escalate: stage 1 is learned from as a run of its own, then stage 2 is a plain
     * request to escalate_node, relayed (and failed over) as any other */
    if (c->answered && s->pred && q->has_features && c->snap)
        pred_observe(s->pred, &q->f, c->snap, o1);
    c->escalating = 1;
    q->usage_in = q->usage_out = 0;
    q->node = c->plan.escalate_node;
    pol_plan_keep(&q->plan, q->node);
    dispatch(q);
}

/* What the policy learns from a cascade: its plan, the verdict, and when escalated the
 * client's view (stage 1 + stage 2 latency from stage 1's dispatch, both costs). */
static void casc_view(const struct gw_req *q, struct fy_outcome *po)
{
    const struct gw_casc *c = q->casc;
    po->plan = c->plan;
    po->confidence = c->confidence;
    po->escalated = c->escalating;
    if (!c->escalating) return;
    double pre = q->t_dispatch - c->t_dispatch;
    po->ttft_ms += pre;
    po->e2e_ms += pre;
    po->cost_usd += c->o1.cost_usd;
    po->in_tokens += c->o1.in_tokens;
}

/* Trace outcomes of a cascade (pred/trace.h "stage"): 1 = the first answer, with 2 =
 * the escalated one after it when there was one; each with its own stage's times. */
static void casc_trace(const struct gw_req *q, struct trace_record *tr)
{
    const struct gw_casc *c = q->casc;
    struct trace_outcome *to = &tr->out[0];
    to->o.plan = c->plan;
    to->o.confidence = c->confidence;
    to->stage = 1;
    if (!c->escalating || !c->snap) return;
    tr->out[1] = *to;
    tr->out[1].stage = 2;
    tr->out[1].o.escalated = 1;
    tr->nout = 2;
    const struct fy_node *n1 = &c->snap[c->plan.node];
    memset(to, 0, sizeof *to);
    snprintf(to->node, sizeof to->node, "%s", n1->name);
    to->role = n1->role;
    snprintf(to->model, sizeof to->model, "%s", n1->prof.model);
    to->link = n1->link;
    to->state = n1->st;
    to->bytes_up = c->body ? (double)strlen(c->body) : 0;
    to->image_tokens = tr->out[1].image_tokens;
    to->chosen = 1;
    to->stage = 1;
    to->o = c->o1;
    to->o.plan = c->plan;
}

/* ---- pipeline ------------------------------------------------------------------- */

static void dispatch(struct gw_req *q)
{
    struct gw_server *s = q->s;
    if (q->client_gone) {
        finish(q);
        return;
    }
    if (q->casc && !q->casc->escalating) {
        casc_start(q);
        return;
    }
    q->out_body = gw_route_body(q->fr, s->cfg.nodes[q->node].model, &q->out_len);
    if (!q->out_body) {
        reply_error(q, 500, NULL, NULL, "gateway: out of memory");
        finish(q);
        return;
    }
    start_upstream(q);
}

static void work_downscale(void *arg)
{
    struct gw_req *q = arg;
    if (gw_route_downscale(q->fr, &q->plan, q->s->cfg.downscale_quality, q->ferr,
                           sizeof q->ferr))
        q->prep_failed = 1;
}

static void done_downscale(void *arg)
{
    struct gw_req *q = arg;
    q->pending_work = 0;
    if (q->client_gone || q->s->closing) {
        finish(q);
        return;
    }
    if (q->prep_failed) {
        /* a decoder problem the probe did not see: the client's image is bad */
        char param[128];
        reply_error(q, 400, image_param(q->ferr, param, sizeof param), "invalid_image", q->ferr);
        finish(q);
        return;
    }
    if (gw_route_plan_has(&q->plan, q->f.nimages, FY_IMG_SPLIT)) {
        if (start_aux(q) == 0) return;
        gw_route_apply_text(q->fr, &q->plan, NULL);
    } else if (gw_route_plan_has(&q->plan, q->f.nimages, FY_IMG_DROP)) {
        gw_route_apply_text(q->fr, &q->plan, NULL);
    }
    dispatch(q);
}

static void decide(struct gw_req *q)
{
    struct gw_server *s = q->s;
    double t0 = clock_now_ms();
    gw_nodes_refresh(&s->nodes);
    q->pinned = gw_route_pin(&s->cfg, q->fr->model);
    if (q->pinned == GW_PIN_UNKNOWN) {
        char msg[256];
        snprintf(msg, sizeof msg, "The model '%.120s' does not exist: use 'ferry', 'auto' or "
                 "a node name listed by GET /v1/models", q->fr->model);
        reply_error(q, 404, "model", "model_not_found", msg);
        finish(q);
        return;
    }
    memset(&q->est, 0, sizeof q->est);
    q->has_est = 0;
    if (q->pinned >= 0 && q->fr->prefs.privacy == FY_PRIV_EDGE_ONLY &&
        s->nodes.node[q->pinned].role != FY_ROLE_EDGE) {
        char msg[256];
        snprintf(msg, sizeof msg, "privacy edge-only: node '%s' is a cloud node",
                 s->nodes.node[q->pinned].name);
        reply_error(q, 400, "ferry.privacy", "privacy_violation", msg);
        finish(q);
        return;
    }
    if (q->pinned >= 0) {
        pol_plan_keep(&q->plan, q->pinned);
        if (s->pred && pred_estimate(s->pred, &q->f, s->nodes.node, q->pinned, &q->plan,
                                     &q->est) == 0)
            q->has_est = 1;
    } else {
        struct pol_ctx c = {
            .f = &q->f, .prefs = &q->fr->prefs, .nodes = s->nodes.node, .nnodes = s->nodes.n,
            .pred = s->pred, .now_ms = ms_since(s), .rng = &s->rng,
            .session = q->fr->prefs.session,
        };
        /* nodes at their max_inflight are not offered to the policy (when any other is) */
        uint8_t ex[FY_MAX_NODES];
        int left = 0;
        for (int i = 0; i < s->nodes.n; i++) {
            int cap = s->cfg.nodes[i].max_inflight;
            ex[i] = q->excluded[i] || (cap > 0 && s->nodes.rt[i].inflight >= cap);
            left += !ex[i];
        }
        if (gw_route_decide(s->pol, s->pol_state, &c, left ? ex : q->excluded, &q->plan,
                            &q->est)) {
            reply_error(q, 503, NULL, "no_node", "no node can take this request");
            finish(q);
            return;
        }
        q->has_est = q->est.e2e_ms > 0 || q->est.q_mean > 0;
        if (!q->has_est && s->pred &&
            pred_estimate(s->pred, &q->f, s->nodes.node, q->plan.node, &q->plan, &q->est) == 0)
            q->has_est = 1;
    }
    gw_route_cap_images(q->fr, &q->plan, s->cfg.max_image_side);
    q->node = q->plan.node;
    q->decision_s += (clock_now_ms() - t0) / 1e3;
    gw_metrics_decision(&s->m, q->decision_s);
    gw_route_plan_str(&q->plan, q->f.nimages, s->nodes.node, q->plan_str, sizeof q->plan_str);
    if (gw_casc_is(&q->plan) && !q->casc) casc_plan(q);
    if (q->pinned < 0 && !q->casc)       /* gw/shadow: sampled before any image changes */
        q->shadow = gw_shadow_pick(s->shadow, s->pred, q->fr, q->node);
    int n = q->f.nimages;
    if (gw_route_plan_has(&q->plan, n, FY_IMG_DOWNSCALE)) {
        q->pending_work = 1;
        if (gw_pool_submit(s->pool, work_downscale, done_downscale, q) == 0) return;
        q->pending_work = 0;
        reply_error(q, 503, NULL, NULL, "gateway: worker pool unavailable");
        finish(q);
        return;
    }
    done_downscale(q);
}

/* Parse (and features when cheap or when on a worker). */
static void work_parse(void *arg)
{
    struct gw_req *q = arg;
    double t0 = clock_now_ms();
    if (!q->fr) {
        q->fr = req_parse(q->body, q->body_len, &q->s->lim, &q->rerr);
        if (!q->fr) {
            q->parse_failed = 1;
            return;
        }
    }
    if (gw_route_features(q->fr, &q->f, q->ferr, sizeof q->ferr)) q->feat_failed = 1;
    else q->has_features = 1;
    q->decision_s += (clock_now_ms() - t0) / 1e3;
}

static void done_parse(void *arg)
{
    struct gw_req *q = arg;
    struct gw_server *s = q->s;
    q->pending_work = 0;
    if (q->client_gone || s->closing) {
        finish(q);
        return;
    }
    if (q->parse_failed) {
        reply_error(q, q->rerr.status ? q->rerr.status : 400, q->rerr.path, NULL, q->rerr.msg);
        finish(q);
        return;
    }
    if (q->feat_failed) {
        char param[128];
        reply_error(q, 400, image_param(q->ferr, param, sizeof param), "invalid_image", q->ferr);
        finish(q);
        return;
    }
    /* X-Ferry-* preference headers override the body's "ferry" object */
    for (int i = 0; q->hreq && i < q->hreq->nhdr; i++) {
        const struct gw_hhdr *kv = &q->hreq->hdr[i];
        if (strncasecmp(kv->name, "X-Ferry-", 8)) continue;
        struct req_error e;
        if (req_apply_header(q->fr, kv->name, kv->value, &e) < 0) {
            reply_error(q, e.status ? e.status : 400, e.path, NULL, e.msg);
            finish(q);
            return;
        }
    }
    free(q->body);       /* the JSON tree holds everything from here on */
    q->body = NULL;
    q->t_parsed = ms_since(s);
    decide(q);
}

static void on_chat(struct gw_server *s, struct gw_hconn *c, struct gw_hreq *r)
{
    if (s->draining) {
        send_error(s, c, 503, NULL, NULL, "shutting_down", "the gateway is shutting down");
        return;
    }
    size_t len = r->body_len;
    if (len == 0) {
        send_error(s, c, 400, NULL, "body", NULL, "request body is empty: POST the chat "
                   "request as a JSON object (Content-Length or chunked)");
        return;
    }
    if (len > s->lim.max_body_bytes) {
        char msg[128];
        snprintf(msg, sizeof msg, "body of %zu bytes exceeds the limit of %zu bytes", len,
                 s->lim.max_body_bytes);
        send_error(s, c, 413, NULL, "body", NULL, msg);
        return;
    }
    struct gw_req *q = s->req_pool;
    if (q) {
        s->req_pool = q->next;
        s->nreq_pool--;
        memset(q, 0, sizeof *q);
    } else {
        q = calloc(1, sizeof *q);
    }
    if (!q) {
        send_error(s, c, 503, NULL, NULL, NULL, "gateway: out of memory");
        return;
    }
    s->open++;
    q->s = s;
    q->next = s->reqs;
    if (s->reqs) s->reqs->prev = q;
    s->reqs = q;
    q->conn = c;
    q->hreq = r;
    q->node = -1;
    q->qt_node = -1;
    q->pinned = GW_PIN_AUTO;
    q->t_arrive = ms_since(s);
    snprintf(q->id, sizeof q->id, "%s-%llu", s->id_prefix, (unsigned long long)++s->seq);
    buf_init(&q->held);
    buf_init(&q->copy);
    buf_init(&q->line);
    buf_init(&q->resp);
    q->timer = evtimer_new(s->base, on_timer, q);
    q->body = gw_http_take_body(c, &q->body_len);
    if (!q->timer || !q->body) {
        reply_error(q, 503, NULL, NULL, "gateway: out of memory");
        finish(q);
        return;
    }
    gw_http_watch(c, on_client_gone, on_client_drained, q);
    if (len > INLINE_PARSE_MAX) {
        q->pending_work = 1;
        if (gw_pool_submit(s->pool, work_parse, done_parse, q) == 0) return;
        q->pending_work = 0;
    }
    /* small body: parse here; images still go to a worker for decoding */
    double t0 = clock_now_ms();
    q->fr = req_parse(q->body, q->body_len, &s->lim, &q->rerr);
    q->decision_s += (clock_now_ms() - t0) / 1e3;
    if (!q->fr) {
        q->parse_failed = 1;
        done_parse(q);
        return;
    }
    if (q->fr->nimages > 0) {
        q->pending_work = 1;
        if (gw_pool_submit(s->pool, work_parse, done_parse, q) == 0) return;
        q->pending_work = 0;
    }
    work_parse(q);
    done_parse(q);
}

/* ---- other endpoints ------------------------------------------------------------ */

static void on_models(struct gw_server *s, struct gw_hconn *c)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "object", "list");
    cJSON *data = cJSON_AddArrayToObject(root, "data");
    const char *virt[2] = {"ferry", "auto"};
    for (int i = 0; i < 2 + s->nodes.n; i++) {
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "id", i < 2 ? virt[i] : s->cfg.nodes[i - 2].name);
        cJSON_AddStringToObject(m, "object", "model");
        cJSON_AddNumberToObject(m, "created", 0);
        cJSON_AddStringToObject(m, "owned_by", "ferry");
        if (i >= 2) {
            cJSON_AddStringToObject(m, "backend_model", s->cfg.nodes[i - 2].model);
            cJSON_AddStringToObject(m, "role", gw_role_name(s->cfg.nodes[i - 2].role));
        }
        cJSON_AddItemToArray(data, m);
    }
    char *txt = cJSON_PrintUnformatted(root);
    send_json(c, 200, NULL, txt ? txt : "{}");
    free(txt);
    cJSON_Delete(root);
}

static void on_health(struct gw_server *s, struct gw_hconn *c)
{
    int up = 0;
    for (int i = 0; i < s->nodes.n; i++) up += s->nodes.rt[i].healthy;
    char txt[160];
    snprintf(txt, sizeof txt, "{\"status\":\"%s\",\"nodes_up\":%d,\"nodes\":%d%s}",
             up ? "ok" : "down", up, s->nodes.n, s->draining ? ",\"draining\":true" : "");
    send_json(c, up && !s->draining ? 200 : 503, NULL, txt);
}

static void on_metrics(struct gw_server *s, struct gw_hconn *c)
{
    struct gw_metrics_node mn[FY_MAX_NODES];
    for (int i = 0; i < s->nodes.n; i++) {
        const struct gw_node_rt *r = &s->nodes.rt[i];
        mn[i] = (struct gw_metrics_node){
            .name = s->nodes.node[i].name, .inflight = r->inflight, .healthy = r->healthy,
            .ewma_ttft_s = r->ewma_ttft_ms / 1e3, .ewma_tpot_s = r->ewma_tpot_ms / 1e3,
            .backend_running = r->backend_running, .backend_waiting = r->backend_waiting,
        };
    }
    struct buf b;
    buf_init(&b);
    gw_metrics_render(&s->m, mn, &b);
    gw_share_render(s->nodes.share, &b);   /* ferry_share_*, when [share] is on */
    gw_shadow_render(s->shadow, &b);       /* ferry_shadow_total, when [shadow] is on */
    gw_http_render(s->http, &b);           /* ferry_http_connections, ferry_http_rejected_total */
    static const char ct[] = "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n";
    gw_http_reply(c, 200, ct, sizeof ct - 1, b.data ? b.data : "", b.len);
    buf_fini(&b);
}

static void on_nodes(struct gw_server *s, struct gw_hconn *c)
{
    gw_nodes_refresh(&s->nodes);
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "policy", s->cfg.policy);
    cJSON *arr = cJSON_AddArrayToObject(root, "nodes");
    for (int i = 0; i < s->nodes.n; i++) {
        const struct fy_node *n = &s->nodes.node[i];
        const struct gw_node_rt *r = &s->nodes.rt[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", n->name);
        cJSON_AddStringToObject(o, "role", gw_role_name(n->role));
        cJSON_AddStringToObject(o, "model", s->cfg.nodes[i].model);
        cJSON_AddStringToObject(o, "url", s->cfg.nodes[i].url);
        cJSON_AddBoolToObject(o, "healthy", r->healthy);
        cJSON_AddNumberToObject(o, "inflight", r->inflight);
        cJSON_AddNumberToObject(o, "running", n->st.running);
        cJSON_AddNumberToObject(o, "queued", n->st.queued);
        cJSON_AddNumberToObject(o, "queued_tokens", n->st.queued_tokens);
        cJSON_AddNumberToObject(o, "backend_running", r->backend_running);
        cJSON_AddNumberToObject(o, "backend_waiting", r->backend_waiting);
        const char *mk[] = {"auto", "vllm", "llamacpp", "none"};
        cJSON_AddStringToObject(o, "metrics", mk[r->metrics]);
        cJSON_AddNumberToObject(o, "ewma_ttft_ms", r->ewma_ttft_ms);
        cJSON_AddNumberToObject(o, "ewma_tpot_ms", r->ewma_tpot_ms);
        cJSON_AddNumberToObject(o, "taken_out", (double)r->taken_out);
        cJSON_AddNumberToObject(o, "latency_mae_ms",
                                r->lat_err_n ? r->lat_abs_err_sum / r->lat_err_n : 0);
        cJSON_AddNumberToObject(o, "latency_observations", (double)r->lat_err_n);
        cJSON_AddNumberToObject(o, "quality_mae", r->q_err_n ? r->q_abs_err_sum / r->q_err_n : 0);
        cJSON_AddNumberToObject(o, "feedback_observations", (double)r->q_err_n);
        if (s->pred) {
            int bi = pred_find(s->pred, n->name);
            double mae = 0, mape = 0, brier = 0;
            long k = 0;
            if (bi >= 0) pred_error_stats(s->pred, bi, &mae, &mape, &brier, &k);
            cJSON *pe = cJSON_AddObjectToObject(o, "predictor");
            cJSON_AddNumberToObject(pe, "milp_mae_ms", mae);
            cJSON_AddNumberToObject(pe, "milp_mape", mape);
            cJSON_AddNumberToObject(pe, "observations", (double)k);
            if (bi >= 0)
                cJSON_AddNumberToObject(pe, "mgqp_updates",
                                        (double)s->pred->node[pred_quality_owner(s->pred, bi)].mgqp.n);
        }
        cJSON_AddItemToArray(arr, o);
    }
    char *txt = cJSON_PrintUnformatted(root);
    send_json(c, 200, NULL, txt ? txt : "{}");
    free(txt);
    cJSON_Delete(root);
}

/* A score for a trace row still being formatted on a worker: applied when it is stored
 * (done_trace). A later score for the same id replaces the earlier one. */
static void pending_quality(struct gw_server *s, const char *id, double q)
{
    for (int i = 0; i < PENDING_FB; i++)
        if (s->pending_fb[i].id[0] && !strcmp(s->pending_fb[i].id, id)) {
            s->pending_fb[i].q = q;
            return;
        }
    snprintf(s->pending_fb[s->pending_next].id, sizeof s->pending_fb[0].id, "%s", id);
    s->pending_fb[s->pending_next].q = q;
    s->pending_next = (s->pending_next + 1) % PENDING_FB;
}

/* A label (kind LABEL_USER or LABEL_SHADOW) for a recent request: MGQP of the answering
 * node learns, its quality_mae counts it, its trace row gets the score. At most one label
 * counts per request, and user feedback is ground truth while a shadow label is a noisy
 * one (agreement with the reference): user feedback replaces a shadow label given
 * before it — the label's factor is divided out of MGQP (pred_unlabel), its error out of
 * quality_mae, and the trace row's quality is overwritten — and a shadow label for a
 * request with user feedback is dropped; a second user score is refused. 0 with the
 * node's name (*replaced = 1 when a shadow label was replaced), -1 when no recent
 * completed request has this id, -EALREADY when its label may not be replaced. */
static int label(struct gw_server *s, const char *id, double score, int kind, char *node,
                 size_t cap, int *replaced)
{
    struct recent *r = NULL;
    for (int i = 0; i < RECENT_N; i++)
        if (s->recent[i].id[0] && !strcmp(s->recent[i].id, id)) r = &s->recent[i];
    if (!r) return -1;
    if (r->labelled == LABEL_USER || (kind == LABEL_SHADOW && r->labelled != LABEL_NONE))
        return -EALREADY;
    const char *nm = s->nodes.node[r->node].name;
    struct gw_node_rt *rt = &s->nodes.rt[r->node];
    int bi = s->pred ? pred_find(s->pred, nm) : -1;
    int repl = r->labelled == LABEL_SHADOW;
    if (repl) {
        if (bi >= 0) pred_unlabel(s->pred, &r->shadow_site);
        if (r->shadow_err >= 0 && rt->q_err_n > 0) {
            rt->q_abs_err_sum -= r->shadow_err;
            if (rt->q_abs_err_sum < 0) rt->q_abs_err_sum = 0;
            rt->q_err_n--;
        }
        pred_site_free(&r->shadow_site);
        r->shadow_err = -1;
    }
    if (bi >= 0) {
        /* the bank's own model (shared + the node's model block), as decisions see it */
        double err = fabs(pred_quality(s->pred, bi, &r->f, &r->plan, NULL) - score);
        rt->q_abs_err_sum += err;
        rt->q_err_n++;
        if (kind == LABEL_SHADOW) {
            /* empty when out of memory: learned all the same, but then not replaceable */
            pred_label(s->pred, bi, &r->f, &r->plan, score, &r->shadow_site);
            r->shadow_err = err;
        } else {
            pred_label(s->pred, bi, &r->f, &r->plan, score, NULL);
        }
    }
    if (s->store && gw_store_set_quality(s->store, r->id, score) == 1)
        pending_quality(s, r->id, score);
    s->m.feedback++;
    snprintf(node, cap, "%s", nm);
    r->labelled = kind;
    if (replaced) *replaced = repl;
    return 0;
}

/* User feedback for a recent request (POST /v1/feedback, and gw/share for feedback
 * another replica received): label() above; -1 for any refusal. */
int gw_server_feedback(struct gw_server *s, const char *id, double score, char *node,
                       size_t cap)
{
    return label(s, id, score, LABEL_USER, node, cap, NULL) ? -1 : 0;
}

/* gw/shadow's label: a shadow label, until user feedback replaces it. */
static int shadow_label(void *arg, const char *id, double score)
{
    char nm[FY_NAME_MAX];
    return label(arg, id, score, LABEL_SHADOW, nm, sizeof nm, NULL);
}

static void on_feedback(struct gw_server *s, struct gw_hconn *req, struct gw_hreq *hr)
{
    size_t len = hr->body_len;
    if (len > FEEDBACK_MAX) {
        send_error(s, req, 413, NULL, "body", NULL, "feedback body larger than 4096 bytes");
        return;
    }
    cJSON *root = cJSON_ParseWithLength(hr->body ? hr->body : "", len);
    cJSON *id = cJSON_GetObjectItemCaseSensitive(root, "request_id");
    cJSON *sc = cJSON_GetObjectItemCaseSensitive(root, "score");
    if (!cJSON_IsObject(root)) {
        send_error(s, req, 400, NULL, "body", NULL, "feedback body is not a JSON object");
        goto done;
    }
    if (!cJSON_IsString(id)) {
        send_error(s, req, 400, NULL, "request_id", NULL, "request_id must be a string");
        goto done;
    }
    if (!cJSON_IsNumber(sc) || !(sc->valuedouble >= 0 && sc->valuedouble <= 1)) {
        send_error(s, req, 400, NULL, "score", NULL, "score must be a number in [0, 1]");
        goto done;
    }
    char nm[FY_NAME_MAX], txt[200];
    int replaced = 0;
    int rc = label(s, id->valuestring, sc->valuedouble, LABEL_USER, nm, sizeof nm, &replaced);
    if (rc == -EALREADY) {
        send_error(s, req, 404, NULL, "request_id", "already_scored",
                   "this request has user feedback already (one score per request)");
    } else if (rc == 0) {
        cJSON *ok = cJSON_CreateObject();      /* cJSON escapes the node's name */
        cJSON_AddTrueToObject(ok, "ok");
        cJSON_AddStringToObject(ok, "request_id", id->valuestring);
        cJSON_AddStringToObject(ok, "node", nm);
        if (replaced) cJSON_AddStringToObject(ok, "replaced", "shadow");
        char *js = cJSON_PrintUnformatted(ok);
        cJSON_Delete(ok);
        send_json(req, 200, NULL, js ? js : "{\"ok\":true}");
        free(js);
    } else if (gw_share_forward_feedback(s->nodes.share, id->valuestring,
                                         sc->valuedouble) == 0) {
        /* another live replica served it ([share]): queued for that replica */
        snprintf(txt, sizeof txt, "{\"ok\":true,\"request_id\":\"%s\",\"forwarded\":true}",
                 id->valuestring);
        send_json(req, 202, NULL, txt);
    } else {
        send_error(s, req, 404, NULL, "request_id", "unknown_request",
                   "no recent completed request has this id");
    }
done:
    cJSON_Delete(root);
}

/* A read-only endpoint: GET or HEAD, else 405 with Allow. 1 when the request may go on. */
static int only_get(struct gw_server *s, struct gw_hconn *c, const struct gw_hreq *r)
{
    if (r->method == GW_HTTP_GET || r->method == GW_HTTP_HEAD) return 1;
    char msg[128];
    snprintf(msg, sizeof msg, "method %s not allowed: use GET for %.60s", r->method_name,
             r->path);
    send_error(s, c, 405, "Allow: GET, HEAD\r\n", NULL, NULL, msg);
    return 0;
}

/* POST only, else 405 with Allow. */
static int only_post(struct gw_server *s, struct gw_hconn *c, const struct gw_hreq *r)
{
    if (r->method == GW_HTTP_POST) return 1;
    char msg[128];
    snprintf(msg, sizeof msg, "method %s not allowed: use POST for %.60s", r->method_name,
             r->path);
    send_error(s, c, 405, "Allow: POST\r\n", NULL, NULL, msg);
    return 0;
}

enum endpoint { EP_NONE, EP_HEALTH, EP_METRICS, EP_CHAT, EP_MODELS, EP_FEEDBACK, EP_NODES };

/* The endpoint r goes to once its method and client key passed; EP_NONE after answering
 * r with the error itself: 501 for a method the server does not know at all (methods
 * are case-sensitive: "post" is one; RFC 9110 15.6.2), 405 with the Allow header RFC
 * 9110 15.5.6 requires for a known one the path does not serve, 401, 404. Runs on the
 * head of a request with a body (on_head: a refused client uploads nothing) and on
 * every whole request. */
static enum endpoint route(struct gw_server *s, struct gw_hconn *c, const struct gw_hreq *r)
{
    const char *path = r->path;
    if (r->method == GW_HTTP_OTHER) {
        char msg[128];
        snprintf(msg, sizeof msg, "method '%.32s' is not implemented: use GET, HEAD or POST",
                 r->method_name);
        send_error(s, c, 501, NULL, NULL, NULL, msg);
        return EP_NONE;
    }
    if (!strcmp(path, "/health")) return only_get(s, c, r) ? EP_HEALTH : EP_NONE;
    if (!strcmp(path, "/metrics")) return only_get(s, c, r) ? EP_METRICS : EP_NONE;
    if (!strncmp(path, "/v1/", 4) && !authorized(s, r)) {
        send_error(s, c, 401, "WWW-Authenticate: Bearer\r\n", NULL, "invalid_api_key",
                   "missing or invalid API key: send 'Authorization: Bearer KEY'");
        return EP_NONE;
    }
    if (!strcmp(path, "/v1/chat/completions")) return only_post(s, c, r) ? EP_CHAT : EP_NONE;
    if (!strcmp(path, "/v1/models")) return only_get(s, c, r) ? EP_MODELS : EP_NONE;
    if (!strcmp(path, "/v1/feedback")) return only_post(s, c, r) ? EP_FEEDBACK : EP_NONE;
    if (!strcmp(path, "/v1/ferry/nodes")) return only_get(s, c, r) ? EP_NODES : EP_NONE;
    char shown[256], msg[400];     /* bytes past ASCII %-encoded: the JSON stays UTF-8 */
    size_t k = 0;
    for (const unsigned char *p = (const unsigned char *)path; *p && k + 4 < sizeof shown; p++)
        if (*p >= 0x80) k += (size_t)snprintf(shown + k, sizeof shown - k, "%%%02X", *p);
        else shown[k++] = (char)*p;
    shown[k] = 0;
    snprintf(msg, sizeof msg, "no such endpoint: %s (paths are matched as sent, without "
             "%%-decoding)", shown);
    send_error(s, c, 404, NULL, NULL, "unknown_url", msg);
    return EP_NONE;
}

/* The head of a request with a body (gw_http_on_head): what can be refused without the
 * body is refused before it is read, so a client without a key, on a wrong path or over
 * the feedback limit uploads nothing (with Expect: 100-continue it is not even asked to)
 * and holds no body memory in the gateway. */
static void on_head(void *arg, struct gw_hconn *c, struct gw_hreq *r)
{
    struct gw_server *s = arg;
    enum endpoint e = route(s, c, r);
    if (e == EP_FEEDBACK && r->content_length > FEEDBACK_MAX) {
        char msg[128];
        snprintf(msg, sizeof msg, "feedback body of %lld bytes is larger than %d bytes",
                 r->content_length, FEEDBACK_MAX);
        send_error(s, c, 413, NULL, "body", NULL, msg);
    } else if (e == EP_CHAT && s->draining) {
        send_error(s, c, 503, NULL, NULL, "shutting_down", "the gateway is shutting down");
    }
}

static void on_request(void *arg, struct gw_hconn *c, struct gw_hreq *r)
{
    struct gw_server *s = arg;
    switch (route(s, c, r)) {
    case EP_HEALTH: on_health(s, c); break;
    case EP_METRICS: on_metrics(s, c); break;
    case EP_CHAT: on_chat(s, c, r); break;
    case EP_MODELS: on_models(s, c); break;
    case EP_FEEDBACK: on_feedback(s, c, r); break;
    case EP_NODES: on_nodes(s, c); break;
    case EP_NONE: break;
    }
}

/* ---- lifecycle ------------------------------------------------------------------ */

int gw_server_save(struct gw_server *s, char *err, size_t errlen)
{
    int rc = 0;
    if (s->store && gw_store_flush(s->store)) {
        snprintf(err, errlen, "%s: cannot commit the trace", s->cfg.trace_db);
        rc = -1;
    }
    if (s->pred && s->cfg.state_file[0]) {
        char tmp[GW_PATH_MAX + 8];
        snprintf(tmp, sizeof tmp, "%s.tmp", s->cfg.state_file);
        if (pred_save(s->pred, tmp, err, errlen) || rename(tmp, s->cfg.state_file)) {
            if (!rc && !err[0]) snprintf(err, errlen, "%s: cannot save", s->cfg.state_file);
            rc = -1;
        }
    }
    s->last_save_ms = clock_now_ms();
    return rc;
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    struct gw_server *s = arg;
    if (s->store) gw_store_flush(s->store);
    double now = clock_now_ms();
    if (now - s->last_save_ms >= s->cfg.save_interval_s * 1e3) {
        char err[256] = "";
        if (gw_server_save(s, err, sizeof err)) log_warn("gw", "saving state: %s", err);
    }
    if (s->draining && (s->open == 0 || now >= s->drain_deadline_ms)) {
        if (s->open) log_warn("gw", "drain timeout: %d request(s) still open", s->open);
        event_base_loopexit(s->base, NULL);
    }
}

void gw_server_drain(struct gw_server *s)
{
    if (s->draining) return;
    s->draining = 1;
    s->drain_deadline_ms = clock_now_ms() + s->cfg.drain_timeout_s * 1e3;
    gw_http_stop_accepting(s->http);
    log_info("gw", "draining %d open request(s)", s->open);
}

/* A state_file that does not exist yet will be written at the first save: its folder
 * must exist and be writable now, or the learned state would be lost without a word
 * (the save only logs). 0, or -1 with err naming the key and the folder. */
static int state_dir_check(const char *path, char *err, size_t errlen)
{
    char dir[1024];
    const char *slash = strrchr(path, '/');
    if (!slash) snprintf(dir, sizeof dir, ".");
    else if (slash == path) snprintf(dir, sizeof dir, "/");
    else snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    if (access(dir, W_OK | X_OK) == 0) return 0;
    snprintf(err, errlen, "[server] state_file %s: folder %s: %s (the learned state could not "
             "be saved; a relative path is read from the working directory)", path, dir,
             strerror(errno));
    return -1;
}

int gw_server_port(const struct gw_server *s) { return s->port; }
int gw_server_inflight(const struct gw_server *s) { return s->open; }

struct gw_server *gw_server_new(struct event_base *base, const struct gw_config *cfg,
                                char *err, size_t errlen)
{
    struct gw_server *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    signal(SIGPIPE, SIG_IGN);
    s->cfg = *cfg;
    s->base = base;
    s->t0_ms = clock_now_ms();
    s->last_save_ms = s->t0_ms;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t seed = (uint64_t)ts.tv_sec * 1000000007ull ^ (uint64_t)ts.tv_nsec ^
                    ((uint64_t)getpid() << 32);
    rng_seed(&s->rng, seed);
    snprintf(s->id_prefix, sizeof s->id_prefix, "fy%08llx",
             (unsigned long long)(rng_u64(&s->rng) & 0xffffffffull));
    req_limits_default(&s->lim);
    if (cfg->max_body_bytes) s->lim.max_body_bytes = cfg->max_body_bytes;
    s->lim.max_images = cfg->max_images;   /* 0 is a limit too: no images */
    if (cfg->max_pixels) s->lim.max_pixels = cfg->max_pixels;
    s->recent = calloc(RECENT_N, sizeof *s->recent);
    s->up = gw_up_new(base);
    s->pool = gw_pool_new(base, cfg->workers);
    if (!s->recent || !s->up || !s->pool) {
        snprintf(err, errlen, "cannot create the upstream engine or worker pool");
        goto fail;
    }
    if (gw_nodes_init(&s->nodes, &s->cfg, base, s->up, err, errlen)) goto fail;
    for (int i = 0; i < s->nodes.n; i++)
        for (int k = 0; k < 2; k++) {
            struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
            h = curl_slist_append(h, "Expect:");   /* no 100-continue round trip */
            if (k) h = curl_slist_append(h, "Accept: text/event-stream");
            if (cfg->nodes[i].api_key[0]) {
                char a[GW_KEY_MAX + 32];
                snprintf(a, sizeof a, "Authorization: Bearer %s", cfg->nodes[i].api_key);
                h = curl_slist_append(h, a);
            }
            s->hdrs[i][k] = h;
            /* the same lines for gw/hclient (Host and Content-Length are its own) */
            struct buf *hb = &s->hh[i][k];
            buf_init(hb);
            buf_puts(hb, "Content-Type: application/json\r\n");
            if (k) buf_puts(hb, "Accept: text/event-stream\r\n");
            if (cfg->nodes[i].api_key[0])
                buf_printf(hb, "Authorization: Bearer %s\r\n", cfg->nodes[i].api_key);
        }
    /* plain http:// nodes go through gw/hclient; anything else (https) through libcurl */
    s->hc = gw_hc_new(base);
    if (!s->hc) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    for (int i = 0; i < s->nodes.n; i++) {
        if (strncasecmp(cfg->nodes[i].url, "http://", 7)) continue;
        char e[512];
        struct gw_hc_target *t = calloc(1, sizeof *t);
        if (t && gw_hc_target_init(t, cfg->nodes[i].url, e, sizeof e) == 0) {
            s->hct[i] = t;
        } else {
            if (t) log_warn("gw", "node '%s': %s; using libcurl for it", cfg->nodes[i].name, e);
            free(t);
        }
    }
    s->pol = pol_find(cfg->policy);
    if (!s->pol) {
        struct buf names;
        buf_init(&names);
        for (const struct fy_policy *const *p = pol_all(); *p; p++)
            buf_printf(&names, "%s%s", names.len ? ", " : "", (*p)->name);
        snprintf(err, errlen, "%s: [policy] name = '%s': no such policy (known: %s)", cfg->path,
                 cfg->policy, names.data ? names.data : "none");
        buf_fini(&names);
        goto fail;
    }
    if (!strcmp(s->pol->name, "oracle")) {
        snprintf(err, errlen, "%s: [policy] name = oracle: the oracle needs the simulator's "
                 "ground truth; it cannot serve real requests", cfg->path);
        goto fail;
    }
    if (s->pol->init) {
        char e[256] = "";
        if (s->pol->init(&s->pol_state, cfg->policy_params[0] ? cfg->policy_params : NULL, e,
                         sizeof e)) {
            snprintf(err, errlen, "%s: [policy] params: %s", cfg->path, e);
            s->pol_state = NULL;
            goto fail;
        }
    }
    if (cfg->state_file[0] && access(cfg->state_file, R_OK) == 0) {
        char e[256] = "";
        s->pred = pred_load(cfg->state_file, s->nodes.node, s->nodes.n, e, sizeof e);
        if (!s->pred) {
            snprintf(err, errlen, "state_file %s: %s", cfg->state_file, e);
            goto fail;
        }
        log_info("gw", "learned state loaded from %s", cfg->state_file);
    } else {
        if (cfg->state_file[0] && state_dir_check(cfg->state_file, err, errlen) < 0) goto fail;
        s->pred = pred_new(s->nodes.node, s->nodes.n);
    }
    if (!s->pred) {
        snprintf(err, errlen, "cannot create the predictor bank");
        goto fail;
    }
    if (cfg->trace_db[0]) {
        char e2[400];
        s->store = gw_store_open(cfg->trace_db, e2, sizeof e2);
        if (!s->store) {   /* name the key: "PATH: sqlite: unable to open" said neither */
            snprintf(err, errlen, "[server] trace_db: %s", e2);
            goto fail;
        }
    }
    gw_metrics_init(&s->m, s->nodes.n, cfg->policy);
    struct gw_shadow_env se = {
        .base = base, .up = s->up, .cfg = &s->cfg, .nodes = &s->nodes, .label = shadow_label,
        .arg = s, .seed = cfg->shadow_rate > 0 ? rng_u64(&s->rng) : 0,
    };
    s->shadow = gw_shadow_new(&se, err, errlen);
    if (!s->shadow && err[0]) goto fail;
    struct gw_http_opts ho = {
        .max_body = s->lim.max_body_bytes,
        .timeout_ms = cfg->send_timeout_ms,
        .header_timeout_ms = cfg->header_timeout_ms, .body_timeout_ms = cfg->body_timeout_ms,
        .min_body_rate = (size_t)cfg->min_body_rate,
        .keepalive_timeout_ms = cfg->keepalive_timeout_ms, .max_connections = cfg->max_connections,
    };
    s->http = gw_http_new(base, cfg->listen_host, cfg->listen_port, &ho, on_request,
                          on_http_reject, s, err, errlen);
    if (!s->http) goto fail;
    gw_http_on_head(s->http, on_head);
    s->port = gw_http_port(s->http);
    s->tick = event_new(base, -1, EV_PERSIST, on_tick, s);
    struct timeval tv = {0, STORE_FLUSH_MS * 1000};
    if (!s->tick || event_add(s->tick, &tv)) {
        snprintf(err, errlen, "cannot create the server timer");
        goto fail;
    }
    return s;
fail:
    gw_server_free(s);
    return NULL;
}

void gw_server_free(struct gw_server *s)
{
    if (!s) return;
    char err[256] = "";
    s->closing = 1;
    gw_pool_free(s->pool);               /* finished jobs' callbacks see closing */
    while (s->reqs) {                    /* requests still open are dropped */
        struct gw_req *q = s->reqs;
        q->conn = NULL;
        req_free_obj(q);
    }
    if (s->pred && gw_server_save(s, err, sizeof err)) log_warn("gw", "saving state: %s", err);
    for (int i = 0; i < s->neasy; i++) curl_easy_cleanup(s->easy_pool[i]);
    while (s->req_pool) {
        struct gw_req *q = s->req_pool;
        s->req_pool = q->next;
        free(q);
    }
    if (s->tick) event_free(s->tick);
    gw_http_free(s->http);               /* drops open client connections */
    gw_hc_free(s->hc);                   /* and idle backend connections */
    for (int i = 0; i < FY_MAX_NODES; i++) {
        free(s->hct[i]);
        for (int k = 0; k < 2; k++) buf_fini(&s->hh[i][k]);
    }
    gw_shadow_free(s->shadow);           /* cancels reference requests in flight */
    gw_nodes_fini(&s->nodes);
    gw_up_free(s->up);
    for (int i = 0; i < FY_MAX_NODES; i++)
        for (int k = 0; k < 2; k++) curl_slist_free_all(s->hdrs[i][k]);
    gw_store_close(s->store);
    if (s->pol && s->pol->free && s->pol_state) s->pol->free(s->pol_state);
    pred_free(s->pred);
    for (int i = 0; s->recent && i < RECENT_N; i++) pred_site_free(&s->recent[i].shadow_site);
    free(s->recent);
    free(s);
}

/* hooks for cmd_serve's --model and [share] (gw/share.h) */
struct pred *gw_server_pred(struct gw_server *s) { return s->pred; }
struct gw_nodes *gw_server_nodes(struct gw_server *s) { return &s->nodes; }
const char *gw_server_id_prefix(const struct gw_server *s) { return s->id_prefix; }
void gw_server_set_pred(struct gw_server *s, struct pred *p)
{
    if (p == s->pred) return;
    pred_free(s->pred);
    s->pred = p;
}
