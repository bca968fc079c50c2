/* server — `ferry emulate`: the emulated OpenAI-compatible MLLM node (server.h). */
#include "emu/server.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "emu/answers.h"
#include "emu/logprobs.h"
#include "feat/image.h"
#include "feat/text.h"
#include "feat/tokens.h"
#include "node/link.h"
#include "node/service.h"
#include "req/request.h"
#include "sim/quality.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/num.h"
#include "util/rng.h"

#define PROMPT_TOKENS_PER_MESSAGE 4 /* chat-template overhead per message (role markers) */

/* ==== metrics ========================================================================= */

#define HIST_MAX 24

struct hist {
    int n;
    const double *le;   /* upper bounds, seconds */
    uint64_t cnt[HIST_MAX + 1]; /* per bucket (not cumulative); last = +Inf */
    double sum;
    uint64_t count;
};

/* Bucket bounds in seconds, chosen to resolve both an instant emulator and a slow edge
 * device (tens of ms to minutes). */
static const double g_ttft_le[] = {0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25,
                                   0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80};
static const double g_tpot_le[] = {0.001, 0.005, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04,
                                   0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 2.5};
static const double g_e2e_le[] = {0.01, 0.05, 0.1, 0.3, 0.5, 0.8, 1, 1.5, 2, 2.5, 5, 10,
                                  15, 20, 30, 40, 50, 60, 120, 240};
#define NLE(a) ((int)(sizeof a / sizeof a[0]))

static void hist_init(struct hist *h, const double *le, int n)
{
    memset(h, 0, sizeof *h);
    h->le = le;
    h->n = n;
}

static void hist_add(struct hist *h, double v)
{
    int i = 0;
    while (i < h->n && v > h->le[i]) i++;
    h->cnt[i]++;
    h->sum += v;
    h->count++;
}

/* ==== state =========================================================================== */

struct emu_req {
    struct emu_server *s;
    struct evhttp_request *req;     /* NULL once the connection is gone */
    struct evhttp_connection *evcon;
    uint64_t id;
    int stream, include_usage;
    int prompt_tokens, image_tokens;
    struct emu_answer ans;
    double confidence;              /* exp(mean token logprob) of the answer */
    int logprobs, top_logprobs;     /* the request asked for logprobs (and alternatives) */
    double *lp;                     /* per answer token, when logprobs; else NULL */
    struct emu_fault_draw fd;
    int in_svc;                     /* submitted to the service model */
    int first, done;                /* model events seen */
    int sent_tokens;                /* content tokens written to the client */
    size_t sent_bytes;              /* bytes of ans.text written */
    size_t ans_len;                 /* strlen(ans.text) */
    int role_sent, mid_fired, finished;
    int gone;                       /* the client's connection closed (req detached) */
    double t_arrive, t_first;       /* wall ms; t_first = first content sent */
    double t_first_tok;             /* wall ms the model produced the first token; 0 = not yet */
    double hold_until, pause_until; /* wall ms; fault stalls */
    /* the service model's own times (modelled ms on its clock, before time scaling),
     * reported in the X-Emu-Modelled-* headers of a non-streamed reply */
    double m_submit, m_first, m_done; /* < 0 = not (yet) reported by the model */
    double m_upload;                /* modelled upload over the link, ms; < 0 = none */
    int m_batch;                    /* most sequences in the model's batch (running:
                                     * prefilling or decoding) while r was in it */
    char cid[40];
    long long created;
    struct emu_req *next;
};

struct emu_server {
    struct event_base *base;
    struct evhttp *http;
    struct evhttp_bound_socket *bound;
    struct emu_opts o;
    struct node_svc *svc;
    struct link *link;  /* NULL = no network modelled */
    struct rng rng;
    struct req_limits lim;
    struct event *timer;
    struct event *down_timer;   /* --fault-down: toggles the listening socket */
    int down;                   /* 1 while refusing connections */
    double t0;          /* wall ms at start */
    double vclock;      /* modelled ms when time_scale == 0 */
    double last_model;  /* last time given to the service model */
    int port;
    uint64_t next_id;
    struct emu_req *head;
    int pumping;
    /* metrics */
    struct hist ttft, tpot, e2e;
    uint64_t prompt_total, gen_total, ok_stop, ok_length, aborted, bad_requests;
    uint64_t faults[EMU_FAULT__N];
};

void emu_opts_default(struct emu_opts *o)
{
    memset(o, 0, sizeof *o);
    snprintf(o->host, sizeof o->host, "127.0.0.1");
    snprintf(o->name, sizeof o->name, "emu");
    node_profile_default(&o->prof, FY_ROLE_EDGE); /* edge-3090's rates (node/profile.h) */
    snprintf(o->prof.model, sizeof o->prof.model, "emulated");
    o->capability = 1.0;
    struct sim_quality q;
    sim_quality_default(&q);
    o->confidence_sep = q.confidence_sep;
    o->confidence_noise = q.confidence_noise;
    o->time_scale = 1.0;
    o->seed = 1;
    emu_faults_init(&o->faults);
    o->max_body_bytes = 32u << 20;
    o->tick_ms = 5;
}

static double model_now(struct emu_server *s, double wall)
{
    if (s->o.time_scale <= 0) return s->vclock;
    double t = (wall - s->t0) / s->o.time_scale;
    return t > s->last_model ? t : s->last_model;
}

static double to_wall(const struct emu_server *s, double model_ms)
{
    return s->t0 + model_ms * s->o.time_scale;
}

static void arm(struct emu_server *s, double delay_ms)
{
    if (!(delay_ms >= 0)) delay_ms = 0;
    if (delay_ms > 1e12) delay_ms = 1e12; /* ~32 years: (time_t) of more is undefined */
    struct timeval tv;
    tv.tv_sec = (time_t)(delay_ms / 1000);
    tv.tv_usec = (suseconds_t)((delay_ms - (double)tv.tv_sec * 1000) * 1000);
    if (tv.tv_usec >= 1000000) tv.tv_usec = 999999;
    evtimer_add(s->timer, &tv);
}

static struct emu_req *find_req(struct emu_server *s, uint64_t id)
{
    for (struct emu_req *r = s->head; r; r = r->next)
        if (r->id == id) return r;
    return NULL;
}

/* ==== responses ======================================================================= */

/* Appends s[0..n) as the inside of a JSON string. */
static int json_str(struct evbuffer *b, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        int rc;
        if (c == '"' || c == '\\') rc = evbuffer_add_printf(b, "\\%c", c);
        else if (c == '\n') rc = evbuffer_add(b, "\\n", 2);
        else if (c < 0x20) rc = evbuffer_add_printf(b, "\\u%04x", c);
        else rc = evbuffer_add(b, &s[i], 1);
        if (rc < 0) return -1;
    }
    return 0;
}

static void send_json(struct evhttp_request *req, int status, const char *reason,
                      const char *body)
{
    struct evbuffer *b = evbuffer_new();
    if (!b) {
        evhttp_send_error(req, 500, "out of memory");
        return;
    }
    evbuffer_add(b, body, strlen(body));
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      "application/json");
    evhttp_send_reply(req, status, reason, b);
    evbuffer_free(b);
}

/* The OpenAI error object {"error":{"message","type","param","code"}}. */
static void send_error(struct evhttp_request *req, int status, const char *type,
                       const char *param, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void send_error(struct evhttp_request *req, int status, const char *type,
                       const char *param, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cJSON *root = cJSON_CreateObject(), *e = cJSON_AddObjectToObject(root, "error");
    cJSON_AddStringToObject(e, "message", msg);
    cJSON_AddStringToObject(e, "type", type);
    if (param && *param) cJSON_AddStringToObject(e, "param", param);
    else cJSON_AddNullToObject(e, "param");
    cJSON_AddNullToObject(e, "code");
    char *txt = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    const char *reason = status == 400 ? "Bad Request" : status == 404 ? "Not Found"
                       : status == 413 ? "Payload Too Large"
                       : status == 415 ? "Unsupported Media Type"
                       : status == 503 ? "Service Unavailable" : "Internal Server Error";
    send_json(req, status, reason, txt ? txt : "{}");
    free(txt);
}

static void add_usage(struct evbuffer *b, const struct emu_req *r)
{
    int p = r->prompt_tokens + r->image_tokens;
    evbuffer_add_printf(b,
                        "{\"prompt_tokens\":%d,\"completion_tokens\":%d,\"total_tokens\":%d}",
                        p, r->ans.tokens, p + r->ans.tokens);
}

/* The logprobs object {"content":[items],"refusal":null} of the answer's tokens
 * [tok0, tok0 + ntok) starting at byte off of the answer text (logprobs.h). */
static void add_logprobs(struct evbuffer *b, const struct emu_req *r, int tok0, int ntok,
                         size_t off)
{
    struct buf lb;
    buf_init(&lb);
    int rc = buf_puts(&lb, "{\"content\":[");
    for (int i = 0; i < ntok && rc == 0 && off < r->ans_len; i++) {
        size_t len = emu_token_len(r->ans.text + off, r->ans_len - off);
        if (i) rc = buf_putc(&lb, ',');
        if (rc == 0) rc = emu_logprobs_item(&lb, r->ans.text + off, len, r->lp[tok0 + i],
                                            r->top_logprobs);
        off += len;
    }
    if (rc == 0) rc = buf_puts(&lb, "],\"refusal\":null}");
    if (rc == 0) evbuffer_add(b, lb.data, lb.len);
    else evbuffer_add(b, "null", 4);
    buf_fini(&lb);
}

/* One chat.completion.chunk: delta content (NULL = none), role on the first, finish;
 * with logprobs requested, a content chunk carries its token's (token index tok). */
static void add_chunk(struct evbuffer *b, const struct emu_req *r, int with_role,
                      const char *content, size_t n, const char *finish, int tok)
{
    evbuffer_add_printf(b,
                        "data: {\"id\":\"%s\",\"object\":\"chat.completion.chunk\","
                        "\"created\":%lld,\"model\":\"",
                        r->cid, r->created);
    json_str(b, r->s->o.prof.model, strlen(r->s->o.prof.model));
    evbuffer_add_printf(b, "\",\"choices\":[{\"index\":0,\"delta\":{");
    if (with_role) evbuffer_add_printf(b, "\"role\":\"assistant\"%s", content ? "," : "");
    if (content) {
        evbuffer_add(b, "\"content\":\"", 11);
        json_str(b, content, n);
        evbuffer_add(b, "\"", 1);
    }
    evbuffer_add_printf(b, "},\"logprobs\":");
    if (r->lp && content && n > 0)
        add_logprobs(b, r, tok, 1, (size_t)(content - r->ans.text));
    else
        evbuffer_add(b, "null", 4);
    evbuffer_add_printf(b, ",\"finish_reason\":");
    if (finish) evbuffer_add_printf(b, "\"%s\"}]", finish);
    else evbuffer_add_printf(b, "null}]");
    if (r->include_usage) evbuffer_add_printf(b, ",\"usage\":null");
    evbuffer_add(b, "}\n\n", 3);
}

static void send_full(struct emu_req *r)
{
    struct evbuffer *b = evbuffer_new();
    if (!b) return;
    evbuffer_add_printf(b,
                        "{\"id\":\"%s\",\"object\":\"chat.completion\",\"created\":%lld,"
                        "\"model\":\"",
                        r->cid, r->created);
    json_str(b, r->s->o.prof.model, strlen(r->s->o.prof.model));
    evbuffer_add_printf(b, "\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
                           "\"content\":\"");
    json_str(b, r->ans.text, strlen(r->ans.text));
    evbuffer_add_printf(b, "\"},\"logprobs\":");
    if (r->lp) add_logprobs(b, r, 0, r->ans.tokens, 0);
    else evbuffer_add(b, "null", 4);
    evbuffer_add_printf(b, ",\"finish_reason\":\"%s\"}],\"usage\":", r->ans.finish);
    add_usage(b, r);
    evbuffer_add(b, "}", 1);
    struct evkeyvalq *h = evhttp_request_get_output_headers(r->req);
    evhttp_add_header(h, "Content-Type", "application/json");
    if (r->m_submit >= 0 && r->m_done >= r->m_submit) {
        /* the service model's times for this request, in modelled ms (time scale not
         * applied; TTFT and E2E count from the submit, after the upload and any stall):
         * deterministic, so tests can compare them with the model's closed form
         * (docs/emulator.md "Modelled times") */
        char v[48];
        snprintf(v, sizeof v, "%.6f", r->m_submit);
        evhttp_add_header(h, "X-Emu-Modelled-Submit-Ms", v);
        snprintf(v, sizeof v, "%.6f", r->m_first - r->m_submit);
        evhttp_add_header(h, "X-Emu-Modelled-TTFT-Ms", v);
        snprintf(v, sizeof v, "%.6f", r->m_done - r->m_submit);
        evhttp_add_header(h, "X-Emu-Modelled-E2E-Ms", v);
        snprintf(v, sizeof v, "%d", r->m_batch);
        evhttp_add_header(h, "X-Emu-Modelled-Batch", v);
        if (r->m_upload >= 0) {
            snprintf(v, sizeof v, "%.6f", r->m_upload);
            evhttp_add_header(h, "X-Emu-Modelled-Upload-Ms", v);
        }
    }
    evhttp_send_reply(r->req, 200, "OK", b);
    evbuffer_free(b);
}

/* ==== request life cycle ============================================================== */

static void on_conn_close(struct evhttp_connection *evcon, void *arg)
{
    struct emu_req *r = arg;
    (void)evcon;
    /* libevent has detached the unfinished request from the dying connection and left
     * it to us (http.c, evhttp_connection_incoming_fail): freed when reaped */
    r->gone = 1;
    r->evcon = NULL;
    /* reaped by the next pump; run it soon */
    arm(r->s, 0);
}

/* Detaches r from its connection (so our close callback no longer points at it). */
static void detach(struct emu_req *r)
{
    if (r->evcon) evhttp_connection_set_closecb(r->evcon, NULL, NULL);
    r->evcon = NULL;
}

/* Closes r's connection abruptly: RST when rst is set, else FIN mid-response. */
static void drop_connection(struct emu_req *r, int rst)
{
    struct evhttp_connection *evcon = r->evcon;
    detach(r);
    r->req = NULL;
    if (!evcon) return;
    struct bufferevent *bev = evhttp_connection_get_bufferevent(evcon);
    evutil_socket_t fd = bev ? bufferevent_getfd(bev) : -1;
    if (rst) {
        struct linger lg = {1, 0};
        if (fd >= 0) setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    } else if (fd >= 0) {
        /* mid-stream: what was already sent must reach the client before the FIN
         * (non-blocking; a few kB at most are pending here) */
        struct evbuffer *out = bufferevent_get_output(bev);
        /* a socket bufferevent keeps the front of its output frozen (only it drains
         * it); thaw it for this last direct write */
        evbuffer_unfreeze(out, 1);
        evbuffer_write(out, fd);
        evbuffer_freeze(out, 1);
    }
    evhttp_connection_free(evcon);
}

/* Counts r as completed (vllm:request_success_total, token totals, histograms). Called
 * before the answer's last bytes are queued, so that whoever has seen an answer end (a
 * gateway, a test) finds it counted in a later GET /metrics. */
static void record_done(struct emu_server *s, struct emu_req *r, double wall)
{
    s->prompt_total += (uint64_t)(r->prompt_tokens + r->image_tokens);
    s->gen_total += (uint64_t)r->ans.tokens;
    if (!strcmp(r->ans.finish, "length")) s->ok_length++;
    else s->ok_stop++;
    /* like vLLM, TTFT is the engine's first token (streamed or not) */
    double first = r->t_first_tok > 0 ? r->t_first_tok : r->t_first > 0 ? r->t_first : wall;
    hist_add(&s->ttft, (first - r->t_arrive) / 1000);
    hist_add(&s->e2e, (wall - r->t_arrive) / 1000);
    if (r->ans.tokens > 1) hist_add(&s->tpot, (wall - first) / 1000 / (r->ans.tokens - 1));
}

static void req_free_one(struct emu_req *r)
{
    detach(r);
    if (r->gone && r->req) evhttp_request_free(r->req);
    emu_answer_fini(&r->ans);
    free(r->lp);
    free(r);
}

/* Model callback: marks first token / done on the request. */
static void on_model_event(void *arg, uint64_t id, int ev, double t_ms)
{
    struct emu_server *s = arg;
    struct emu_req *r = find_req(s, id);
    if (ev == NODE_EV_START) {
        /* the batch only grows at an admission: the peak each request saw is the
         * running count at some START during its stay (its own included) */
        struct fy_node_state st;
        node_svc_state(s->svc, &st);
        for (struct emu_req *o = s->head; o; o = o->next)
            if (o->in_svc && o->m_done < 0 && o->m_batch < st.running) o->m_batch = st.running;
    }
    if (!r) return;
    if (ev == NODE_EV_FIRST_TOKEN && r->m_first < 0) r->m_first = t_ms;
    if (ev == NODE_EV_DONE) {
        if (r->m_first < 0) r->m_first = t_ms;
        r->m_done = t_ms;
    }
    if ((ev == NODE_EV_FIRST_TOKEN || ev == NODE_EV_DONE) && r->t_first_tok <= 0)
        r->t_first_tok = s->o.time_scale > 0 ? to_wall(s, t_ms) : clock_now_ms();
    if (ev == NODE_EV_FIRST_TOKEN) r->first = 1;
    if (ev == NODE_EV_DONE) r->first = r->done = 1;
}

static void advance_model(struct emu_server *s, double wall)
{
    if (s->o.time_scale > 0) {
        double t = model_now(s, wall);
        node_svc_advance(s->svc, t, on_model_event, s);
        s->last_model = t;
        return;
    }
    /* instant mode: run the model to idle on a virtual clock */
    for (;;) {
        double t = node_svc_next_time(s->svc);
        if (!isfinite(t)) break;
        if (t > s->vclock) s->vclock = t;
        node_svc_advance(s->svc, s->vclock, on_model_event, s);
    }
    s->last_model = s->vclock;
}

static void submit(struct emu_server *s, struct emu_req *r, double wall)
{
    double t = model_now(s, wall);
    node_svc_advance(s->svc, t, on_model_event, s);
    s->last_model = t;
    int rc = node_svc_submit(s->svc, t, r->id, r->prompt_tokens, r->image_tokens,
                             r->ans.tokens > 0 ? r->ans.tokens : 1);
    if (rc < 0) {
        log_warn("emu", "service model refused request %llu: %s",
                 (unsigned long long)r->id, strerror(-rc));
        /* answer as if the model had finished instantly rather than hang the client */
        r->first = r->done = 1;
    } else {
        r->m_submit = t;
    }
    r->in_svc = 1;
}

/* Tokens of r the model has produced by now. */
static int tokens_ready(struct emu_server *s, struct emu_req *r)
{
    if (r->done) return r->ans.tokens;
    if (!r->first) return 0;
    int n = node_svc_tokens_at(s->svc, r->id, s->last_model);
    if (n < 0) return 0;
    return n < r->ans.tokens ? n : r->ans.tokens;
}

/* Writes what r may send now. Returns 1 when r is finished (reply complete or dropped). */
static int flush(struct emu_server *s, struct emu_req *r, double wall)
{
    if (!r->req || r->gone) return 1;
    if (r->fd.refuse) {
        drop_connection(r, 1);
        return 1;
    }
    if (!r->in_svc) return 0;
    int ntok = r->ans.tokens;
    int half = ntok / 2 > 1 ? ntok / 2 : 1;
    if (!r->stream) {
        if (!r->done) return 0;
        if (r->fd.disconnect_mid) {
            s->faults[EMU_FAULT_DISCONNECT_MID]++;
            drop_connection(r, 0);
            return 1;
        }
        if (r->fd.stall_mid_ms > 0 && !r->mid_fired) {
            r->mid_fired = 1;
            s->faults[EMU_FAULT_STALL_MID]++;
            r->pause_until = wall + r->fd.stall_mid_ms;
        }
        if (wall < r->pause_until) return 0;
        r->t_first = wall;
        detach(r);
        r->finished = 1;
        record_done(s, r, wall);    /* before the answer: see record_done */
        send_full(r);
        return 1;
    }
    if (wall < r->pause_until) return 0;
    int avail = tokens_ready(s, r);
    struct evbuffer *b = evbuffer_new();
    if (!b) return 0;
    for (;;) {
        if (r->sent_tokens >= half && !r->mid_fired && (r->fd.stall_mid_ms > 0 ||
                                                        r->fd.disconnect_mid)) {
            r->mid_fired = 1;
            if (r->fd.disconnect_mid) {
                s->faults[EMU_FAULT_DISCONNECT_MID]++;
                if (evbuffer_get_length(b)) evhttp_send_reply_chunk(r->req, b);
                evbuffer_free(b);
                drop_connection(r, 0);
                return 1;
            }
            s->faults[EMU_FAULT_STALL_MID]++;
            r->pause_until = wall + r->fd.stall_mid_ms;
            break;
        }
        if (r->sent_tokens >= avail) break;
        size_t len = emu_token_len(r->ans.text + r->sent_bytes, r->ans_len - r->sent_bytes);
        if (!r->role_sent) {
            add_chunk(b, r, 1, "", 0, NULL, 0);
            r->role_sent = 1;
            r->t_first = wall;
        }
        add_chunk(b, r, 0, r->ans.text + r->sent_bytes, len, NULL, r->sent_tokens);
        r->sent_bytes += len;
        r->sent_tokens++;
    }
    int finished = 0;
    if (r->done && r->sent_tokens >= ntok && wall >= r->pause_until) {
        if (!r->role_sent) {
            add_chunk(b, r, 1, "", 0, NULL, 0);
            r->role_sent = 1;
            r->t_first = wall;
        }
        add_chunk(b, r, 0, NULL, 0, r->ans.finish, 0);
        if (r->include_usage) {
            evbuffer_add_printf(b, "data: {\"id\":\"%s\",\"object\":\"chat.completion.chunk\","
                                   "\"created\":%lld,\"model\":\"",
                                r->cid, r->created);
            json_str(b, s->o.prof.model, strlen(s->o.prof.model));
            evbuffer_add_printf(b, "\",\"choices\":[],\"usage\":");
            add_usage(b, r);
            evbuffer_add(b, "}\n\n", 3);
        }
        evbuffer_add_printf(b, "data: [DONE]\n\n");
        finished = 1;
        r->finished = 1;
        record_done(s, r, wall);    /* before the last events: see record_done */
    }
    if (evbuffer_get_length(b)) evhttp_send_reply_chunk(r->req, b);
    evbuffer_free(b);
    if (finished) {
        struct evhttp_request *req = r->req;
        detach(r);
        r->req = NULL;
        evhttp_send_reply_end(req);
    }
    return finished;
}

/* Runs everything that is due and re-arms the timer for the next due thing. */
static void pump(struct emu_server *s)
{
    double wall = clock_now_ms();
    s->pumping = 1;
    for (struct emu_req *r = s->head; r; r = r->next)
        if (!r->in_svc && r->req && !r->gone && !r->fd.refuse && wall >= r->hold_until)
            submit(s, r, wall);
    advance_model(s, wall);
    struct emu_req **pp = &s->head;
    while (*pp) {
        struct emu_req *r = *pp;
        if (flush(s, r, wall)) {
            /* client gone or dropped before completion: free its model capacity */
            if (!r->done && r->in_svc) node_svc_cancel(s->svc, s->last_model, r->id);
            if (!r->finished) s->aborted++;
            *pp = r->next;
            req_free_one(r);
            continue;
        }
        pp = &r->next;
    }
    /* next wake-up */
    double next = INFINITY;
    if (s->o.time_scale > 0) {
        double t = node_svc_next_time(s->svc);
        if (isfinite(t)) next = to_wall(s, t);
    }
    for (struct emu_req *r = s->head; r; r = r->next) {
        if (!r->in_svc) {
            if (r->hold_until < next) next = r->hold_until;
            continue;
        }
        if (r->pause_until > wall && r->pause_until < next) next = r->pause_until;
        else if (r->stream && r->first && !r->done && wall + s->o.tick_ms < next)
            next = wall + s->o.tick_ms;
    }
    s->pumping = 0;
    if (isfinite(next)) arm(s, next - wall);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    pump(arg);
}

/* ==== handlers ======================================================================== */

static int slow_starting(struct emu_server *s)
{
    const struct emu_fault *f = &s->o.faults.f[EMU_FAULT_SLOW_START];
    return f->ms > 0 && clock_now_ms() - s->t0 < f->ms;
}

/* metadata.KEY of the request body as a number, or def. */
static double meta_num(const struct fy_request *fr, const char *key, double def)
{
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(fr->json, "metadata");
    const cJSON *v = cJSON_IsObject(m) ? cJSON_GetObjectItemCaseSensitive(m, key) : NULL;
    if (cJSON_IsNumber(v) && isfinite(v->valuedouble)) return v->valuedouble;
    if (cJSON_IsString(v) && v->valuestring) {
        double d;
        if (util_parse_double(v->valuestring, -DBL_MAX, DBL_MAX, &d) == 0) return d;
    }
    return def;
}

/* Quality model (DESIGN.md "Quality model", the simulator's): P(correct) =
 * sigmoid(capability - difficulty) in logits, with the model's capability for the
 * item's skill from its profile (node_model_cap). The request carries the difficulty
 * in [0,1] (docs/request.md); it maps to logits as ln(d / (1 - d)), clamped to +-12,
 * so 0.5 is a neutral item, 0 is always answered correctly and 1 never. No
 * difficulty: a neutral item. */
double emu_difficulty_logit(double difficulty)
{
    if (difficulty < 0) return 0;
    if (difficulty <= 6e-6) return -12;
    if (difficulty >= 1 - 6e-6) return 12;
    return log(difficulty / (1 - difficulty));
}

double emu_p_correct(double capability, double difficulty)
{
    if (difficulty == 0) return 1;
    if (difficulty == 1) return 0;
    return 1.0 / (1.0 + exp(-(capability - emu_difficulty_logit(difficulty))));
}

static double capability(const struct emu_server *s, const char *skill)
{
    return s->o.has_model ? node_model_cap(&s->o.model, skill ? skill : "") : s->o.capability;
}

/* metadata.KEY of the request body as a string, or NULL. */
static const char *meta_str(const struct fy_request *fr, const char *key)
{
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(fr->json, "metadata");
    const cJSON *v = cJSON_IsObject(m) ? cJSON_GetObjectItemCaseSensitive(m, key) : NULL;
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* P(correct) of this request on this node: the simulator's quality model
 * (sim_quality_p) with the plan the request went through, as far as it can be seen
 * from here (docs/emulator.md "Answers"): metadata.images = images the client sent,
 * metadata.image_sides = their longer sides in px; fewer images arriving = dropped,
 * except those replaced by a gateway "[Image description: ...]" text part (split); a
 * smaller longer side = downscaled. metadata.image_need (default 1 with images) and
 * metadata.visual_share (default 0.5) play the workload class's parts. */
static double answer_p(const struct emu_server *s, const struct fy_request *fr)
{
    double d = fr->difficulty;
    if (d == 0) return 1;
    if (d == 1) return 0;
    double cap = capability(s, meta_str(fr, "skill"));
    int k_recv = fr->nimages < FY_MAX_IMAGES ? fr->nimages : FY_MAX_IMAGES;
    int k_orig = (int)meta_num(fr, "images", k_recv);
    if (k_orig < k_recv) k_orig = k_recv;
    if (k_orig > FY_MAX_IMAGES) k_orig = FY_MAX_IMAGES;
    int nsplit = 0;
    for (int i = 0; i < fr->nparts; i++)
        if (fr->parts[i].kind == FY_PART_TEXT && fr->parts[i].text_len >= 19 &&
            !strncmp(fr->parts[i].text, "[Image description:", 19))
            nsplit++;
    const cJSON *md = cJSON_GetObjectItemCaseSensitive(fr->json, "metadata");
    const cJSON *sides = cJSON_IsObject(md) ? cJSON_GetObjectItemCaseSensitive(md, "image_sides")
                                            : NULL;
    struct sim_class cls;
    memset(&cls, 0, sizeof cls);
    cls.image_need = meta_num(fr, "image_need", k_orig > 0 ? 1 : 0);
    cls.visual_share = meta_num(fr, "visual_share", 0.5);
    struct sim_latent lat;
    memset(&lat, 0, sizeof lat);
    lat.difficulty = emu_difficulty_logit(d);
    struct fy_features f; /* ~3 kB; local: emulators on several threads share this code */
    memset(&f, 0, sizeof f);
    f.nimages = k_orig;
    struct fy_plan plan;
    memset(&plan, 0, sizeof plan);
    plan.aux_node = -1;
    for (int i = 0; i < k_orig; i++) {
        if (i >= k_recv) {
            plan.img[i] = nsplit-- > 0 ? FY_IMG_SPLIT : FY_IMG_DROP;
            continue;
        }
        const struct fy_image_ref *im = &fr->images[i];
        int side = im->width > im->height ? im->width : im->height;
        const cJSON *o = cJSON_GetArrayItem(sides, i);
        int orig = cJSON_IsNumber(o) ? (int)o->valuedouble : side;
        f.img[i].width = f.img[i].height = orig;
        if (side > 0 && orig > side + 1) {
            /* downscaled: its penalty grows with the image's complexity (decode once) */
            plan.img[i] = FY_IMG_DOWNSCALE;
            if (!plan.downscale_px || side < plan.downscale_px) plan.downscale_px = side;
            struct fy_image_features ff;
            char err[128];
            f.img[i].c_img = im->bytes && feat_image_analyze(im->bytes, im->nbytes, NULL, &ff,
                                                             err, sizeof err) == 0
                                 ? ff.c_img : 0.5;
        }
    }
    struct sim_quality q;
    sim_quality_default(&q);
    return sim_quality_p(&q, &cls, &lat, &f, &plan, cap, cap);
}

/* The item a request asks about, as a 64-bit key: FNV-1a over its text parts (without
 * the gateway's "[Image description: ...]" parts of a split plan) and its "metadata",
 * mixed with seed. Images, "model" and every other field are left out: the same
 * question sent to another node, with its images downscaled or dropped, with or without
 * streaming or logprobs, is the same item. */
static uint64_t item_key(const struct fy_request *fr, uint64_t seed)
{
    uint64_t h = 1469598103934665603ull;
    for (int i = 0; i < fr->nparts; i++) {
        const struct fy_part *pt = &fr->parts[i];
        if (pt->kind != FY_PART_TEXT ||
            (pt->text_len >= 19 && !strncmp(pt->text, "[Image description:", 19)))
            continue;
        for (size_t k = 0; k < pt->text_len; k++)
            h = (h ^ (uint8_t)pt->text[k]) * 1099511628211ull;
        h = (h ^ 0xffu) * 1099511628211ull;     /* part boundary */
    }
    const cJSON *md = cJSON_GetObjectItemCaseSensitive(fr->json, "metadata");
    char *m = md ? cJSON_PrintUnformatted(md) : NULL;
    for (const char *p = m; p && *p; p++) h = (h ^ (uint8_t)*p) * 1099511628211ull;
    free(m);
    return h ^ (seed * 0x9e3779b97f4a7c15ull);
}

/* The request's "logprobs" (boolean) and "top_logprobs" (integer 0..20, only with
 * logprobs) as OpenAI checks them. 0, or -1 with the offending field in param and a
 * message in msg. */
static int logprob_fields(const struct fy_request *fr, int *want, int *top, const char **param,
                          char *msg, size_t cap)
{
    const cJSON *lp = cJSON_GetObjectItemCaseSensitive(fr->json, "logprobs");
    const cJSON *tl = cJSON_GetObjectItemCaseSensitive(fr->json, "top_logprobs");
    *want = 0;
    *top = 0;
    if (lp && !cJSON_IsNull(lp)) {
        if (!cJSON_IsBool(lp)) {
            *param = "logprobs";
            snprintf(msg, cap, "logprobs: expected a boolean");
            return -1;
        }
        *want = cJSON_IsTrue(lp);
    }
    if (tl && !cJSON_IsNull(tl)) {
        double v = cJSON_IsNumber(tl) ? tl->valuedouble : -1;
        *param = "top_logprobs";
        if (!cJSON_IsNumber(tl) || v != floor(v) || v < 0 || v > EMU_TOP_LOGPROBS_MAX) {
            snprintf(msg, cap, "top_logprobs: expected an integer from 0 to %d",
                     EMU_TOP_LOGPROBS_MAX);
            return -1;
        }
        if (v > 0 && !*want) {
            snprintf(msg, cap, "top_logprobs: logprobs must be true when top_logprobs is used");
            return -1;
        }
        *top = (int)v;
    }
    return 0;
}

static void handle_chat(struct emu_server *s, struct evhttp_request *req)
{
    if (evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
        send_error(req, 405, "invalid_request_error", NULL,
                   "/v1/chat/completions accepts POST only");
        return;
    }
    if (slow_starting(s)) {
        s->faults[EMU_FAULT_SLOW_START]++;
        send_error(req, 503, "unavailable_error", NULL, "Loading model");
        return;
    }
    struct emu_fault_draw fd;
    emu_faults_draw(&s->o.faults, &s->rng, &fd);
    if (fd.refuse) {
        /* RST before any response byte; done by the pump, outside libevent's read path
         * of this connection */
        s->faults[EMU_FAULT_REFUSE]++;
        struct emu_req *r = calloc(1, sizeof *r);
        if (!r) {
            send_error(req, 500, "server_error", NULL, "out of memory");
            return;
        }
        r->s = s;
        r->req = req;
        r->evcon = evhttp_request_get_connection(req);
        r->fd = fd;
        r->ans.finish = "stop";
        evhttp_connection_set_closecb(r->evcon, on_conn_close, r);
        r->next = s->head;
        s->head = r;
        arm(s, 0);
        return;
    }
    if (fd.error) {
        s->faults[EMU_FAULT_ERROR]++;
        send_error(req, 500, "server_error", NULL, "injected fault: internal error");
        return;
    }
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    const char *body = (const char *)evbuffer_pullup(in, -1);
    struct req_error rerr;
    memset(&rerr, 0, sizeof rerr);
    struct fy_request *fr = req_parse(body ? body : "", body ? len : 0, &s->lim, &rerr);
    if (!fr) {
        s->bad_requests++;
        send_error(req, rerr.status ? rerr.status : 400, "invalid_request_error", rerr.path,
                   "%s%s%s", rerr.path, rerr.path[0] ? ": " : "", rerr.msg);
        return;
    }
    if (fr->nmessages < 1) {
        s->bad_requests++;
        send_error(req, 400, "invalid_request_error", "messages", "messages: empty");
        req_free(fr);
        return;
    }
    int want_lp = 0, top_lp = 0;
    const char *lp_param = NULL;
    char lp_msg[160];
    if (logprob_fields(fr, &want_lp, &top_lp, &lp_param, lp_msg, sizeof lp_msg) < 0) {
        s->bad_requests++;
        send_error(req, 400, "invalid_request_error", lp_param, "%s", lp_msg);
        req_free(fr);
        return;
    }
    struct emu_req *r = calloc(1, sizeof *r);
    if (!r) {
        req_free(fr);
        send_error(req, 500, "server_error", NULL, "out of memory");
        return;
    }
    r->s = s;
    r->logprobs = want_lp;
    r->top_logprobs = top_lp;
    r->req = req;
    r->evcon = evhttp_request_get_connection(req);
    r->id = ++s->next_id;
    r->stream = fr->stream;
    r->include_usage = fr->include_usage;
    r->fd = fd;
    r->t_arrive = clock_now_ms();
    r->m_submit = r->m_first = r->m_done = r->m_upload = -1;
    r->hold_until = r->t_arrive + fd.stall_first_ms;
    if (fd.stall_first_ms > 0) s->faults[EMU_FAULT_STALL_FIRST]++;
    r->created = (long long)time(NULL);
    snprintf(r->cid, sizeof r->cid, "chatcmpl-emu%016llx%04llx",
             (unsigned long long)s->o.seed, (unsigned long long)r->id);
    /* prompt tokens: ferry's BPE-like estimate of every text part (feat/text.h) +
     * template overhead per message; images by the profile's visual-token rule from
     * the header size */
    int pt = PROMPT_TOKENS_PER_MESSAGE * fr->nmessages, it = 0;
    for (int i = 0; i < fr->nparts; i++)
        if (fr->parts[i].kind == FY_PART_TEXT)
            pt += feat_text_tokens(fr->parts[i].text, fr->parts[i].text_len);
    for (int i = 0; i < fr->nimages; i++) {
        const struct fy_image_ref *im = &fr->images[i];
        int w = im->width > 0 ? im->width : 448, h = im->height > 0 ? im->height : 448;
        int t = feat_visual_tokens(s->o.prof.vt_family, w, h);
        it += t > 0 ? t : 0;
    }
    r->prompt_tokens = pt;
    r->image_tokens = it;
    if (s->link && s->o.time_scale > 0) {
        /* the body crosses the profile's link first (DESIGN.md T_up = RTT/2 + bytes /
         * bandwidth): the model sees the request when the upload has ended */
        double m0 = model_now(s, r->t_arrive);
        double up_end = link_upload_end(s->link, m0, (double)len, fr->nimages, 0);
        r->m_upload = up_end - m0;
        double w = to_wall(s, up_end);
        if (w > r->hold_until) r->hold_until = w;
    }
    struct emu_answer_in ai = {
        .answer = fr->answer[0] ? fr->answer : NULL,
        .p_correct = answer_p(s, fr),
        .max_tokens = fr->max_tokens,
        .out_tokens = (int)meta_num(fr, "out_tokens", 0),
    };
    /* answers draw from a stream keyed by the body: the same request gets the same
     * answer and length (as at temperature 0), so policies compared on one workload
     * see the same node behaviour; faults stay on the server's sequential stream */
    uint64_t hsh = 1469598103934665603ull; /* FNV-1a 64 */
    for (size_t i = 0; i < len; i++) hsh = (hsh ^ (uint8_t)body[i]) * 1099511628211ull;
    struct rng arng;
    rng_seed(&arng, s->o.seed ^ hsh);
    /* right or wrong is decided by one uniform per item, shared by every node and plan
     * that answers it (as the simulator's one u per request): a node or plan with a
     * higher P(correct) is right whenever a lower one is (docs/emulator.md "Answers") */
    struct rng irng;
    rng_seed(&irng, item_key(fr, s->o.item_seed));
    ai.has_u = 1;
    ai.u = rng_uniform(&irng);
    int arc = emu_answer_make(&ai, &arng, &r->ans);
    req_free(fr); /* ai.answer pointed into it */
    if (arc == 0) {
        /* the answer's confidence (sim_quality_confidence, docs/emulator.md "Logprobs
         * and confidence") on a stream of its own, also keyed by the body: the answers
         * stay those of an emulator without logprobs. Without ground truth the answer
         * is right or wrong only latently: the item's u against the model's prior P. */
        struct rng crng;
        rng_seed(&crng, (s->o.seed ^ hsh) + 0x9e3779b97f4a7c15ull);
        int correct = r->ans.correct >= 0 ? r->ans.correct : ai.u < ai.p_correct;
        double z = rng_normal(&crng, 0, 1);
        struct sim_quality q;
        sim_quality_default(&q);
        q.confidence_sep = s->o.confidence_sep;
        q.confidence_noise = s->o.confidence_noise;
        r->confidence = sim_quality_confidence(&q, ai.p_correct, correct, z);
        if (r->logprobs && r->ans.tokens > 0) {
            r->lp = malloc((size_t)r->ans.tokens * sizeof *r->lp);
            if (!r->lp) arc = -1;
            else emu_logprobs_make(r->confidence, r->ans.tokens, &crng, r->lp);
        }
    }
    if (arc < 0) {
        emu_answer_fini(&r->ans);
        free(r);
        send_error(req, 500, "server_error", NULL, "out of memory");
        return;
    }
    r->ans_len = strlen(r->ans.text);
    evhttp_connection_set_closecb(r->evcon, on_conn_close, r);
    if (r->stream) {
        struct evkeyvalq *h = evhttp_request_get_output_headers(req);
        evhttp_add_header(h, "Content-Type", "text/event-stream");
        evhttp_add_header(h, "Cache-Control", "no-cache");
        evhttp_send_reply_start(req, 200, "OK");
    }
    r->next = s->head;
    s->head = r;
    if (s->o.time_scale <= 0 && r->hold_until <= r->t_arrive && r->fd.stall_mid_ms <= 0 &&
        !r->fd.disconnect_mid) {
        /* instant mode without faults: answer from this callback, saving a loop turn
         * (the gateway benchmark measures against this path) */
        double wall = clock_now_ms();
        submit(s, r, wall);
        advance_model(s, wall);
        if (flush(s, r, wall)) {
            s->head = r->next;
            req_free_one(r);
        }
        if (s->head) arm(s, 0); /* others the model finished meanwhile */
        return;
    }
    arm(s, 0);
}

static void handle_models(struct emu_server *s, struct evhttp_request *req)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "object", "list");
    cJSON *data = cJSON_AddArrayToObject(root, "data");
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "id", s->o.prof.model);
    cJSON_AddStringToObject(m, "object", "model");
    cJSON_AddNumberToObject(m, "created", (double)(long long)time(NULL));
    cJSON_AddStringToObject(m, "owned_by", "ferry-emulate");
    cJSON_AddNumberToObject(m, "max_model_len", s->o.prof.context_limit);
    cJSON_AddItemToArray(data, m);
    char *txt = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    send_json(req, 200, "OK", txt ? txt : "{}");
    free(txt);
}

static void handle_health(struct emu_server *s, struct evhttp_request *req)
{
    if (slow_starting(s)) {
        send_error(req, 503, "unavailable_error", NULL, "Loading model");
        return;
    }
    send_json(req, 200, "OK", "{\"status\":\"ok\"}");
}

static void hist_print(struct buf *b, const char *name, const char *help,
                       const struct hist *h, const char *model)
{
    buf_printf(b, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    uint64_t cum = 0;
    for (int i = 0; i < h->n; i++) {
        cum += h->cnt[i];
        buf_printf(b, "%s_bucket{model_name=\"%s\",le=\"%g\"} %llu\n", name, model, h->le[i],
                   (unsigned long long)cum);
    }
    cum += h->cnt[h->n];
    buf_printf(b, "%s_bucket{model_name=\"%s\",le=\"+Inf\"} %llu\n", name, model,
               (unsigned long long)cum);
    buf_printf(b, "%s_sum{model_name=\"%s\"} %.9g\n", name, model, h->sum);
    buf_printf(b, "%s_count{model_name=\"%s\"} %llu\n", name, model,
               (unsigned long long)h->count);
}

static void handle_metrics(struct emu_server *s, struct evhttp_request *req)
{
    pump(s);
    struct fy_node_state st;
    node_svc_state(s->svc, &st);
    int held = 0;
    for (struct emu_req *r = s->head; r; r = r->next) held += !r->in_svc;
    /* model names are profile-controlled: keep them label-safe */
    char model[FY_NAME_MAX];
    size_t k = 0;
    for (const char *p = s->o.prof.model; *p && k + 1 < sizeof model; p++)
        model[k++] = (*p == '"' || *p == '\\' || *p == '\n') ? '_' : *p;
    model[k] = 0;
    struct buf b;
    buf_init(&b);
    buf_printf(&b, "# HELP vllm:num_requests_running Number of requests in model execution batches.\n"
                   "# TYPE vllm:num_requests_running gauge\n"
                   "vllm:num_requests_running{model_name=\"%s\"} %d\n", model, st.running);
    buf_printf(&b, "# HELP vllm:num_requests_waiting Number of requests waiting to be processed.\n"
                   "# TYPE vllm:num_requests_waiting gauge\n"
                   "vllm:num_requests_waiting{model_name=\"%s\"} %d\n", model, st.queued + held);
    buf_printf(&b, "# HELP vllm:gpu_cache_usage_perc Fraction of batch slots in use (emulated KV-cache usage).\n"
                   "# TYPE vllm:gpu_cache_usage_perc gauge\n"
                   "vllm:gpu_cache_usage_perc{model_name=\"%s\"} %.6f\n", model,
               s->o.prof.max_seqs > 0 ? (double)st.running / s->o.prof.max_seqs : 0.0);
    buf_printf(&b, "# HELP vllm:prompt_tokens_total Number of prefill tokens processed.\n"
                   "# TYPE vllm:prompt_tokens_total counter\n"
                   "vllm:prompt_tokens_total{model_name=\"%s\"} %llu\n", model,
               (unsigned long long)s->prompt_total);
    buf_printf(&b, "# HELP vllm:generation_tokens_total Number of generation tokens processed.\n"
                   "# TYPE vllm:generation_tokens_total counter\n"
                   "vllm:generation_tokens_total{model_name=\"%s\"} %llu\n", model,
               (unsigned long long)s->gen_total);
    buf_printf(&b, "# HELP vllm:request_success_total Count of successfully processed requests.\n"
                   "# TYPE vllm:request_success_total counter\n"
                   "vllm:request_success_total{model_name=\"%s\",finished_reason=\"stop\"} %llu\n"
                   "vllm:request_success_total{model_name=\"%s\",finished_reason=\"length\"} %llu\n",
               model, (unsigned long long)s->ok_stop, model, (unsigned long long)s->ok_length);
    hist_print(&b, "vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.",
               &s->ttft, model);
    hist_print(&b, "vllm:time_per_output_token_seconds", "Histogram of time per output token in seconds.",
               &s->tpot, model);
    hist_print(&b, "vllm:e2e_request_latency_seconds", "Histogram of end to end request latency in seconds.",
               &s->e2e, model);
    buf_printf(&b, "# HELP ferry_emu_requests_aborted_total Requests whose client went away or whose connection a fault dropped.\n"
                   "# TYPE ferry_emu_requests_aborted_total counter\n"
                   "ferry_emu_requests_aborted_total %llu\n", (unsigned long long)s->aborted);
    buf_printf(&b, "# HELP ferry_emu_bad_requests_total Requests answered with a 4xx error.\n"
                   "# TYPE ferry_emu_bad_requests_total counter\n"
                   "ferry_emu_bad_requests_total %llu\n", (unsigned long long)s->bad_requests);
    buf_printf(&b, "# HELP ferry_emu_faults_injected_total Faults injected, by kind.\n"
                   "# TYPE ferry_emu_faults_injected_total counter\n");
    for (int i = 0; i < EMU_FAULT__N; i++)
        buf_printf(&b, "ferry_emu_faults_injected_total{fault=\"%s\"} %llu\n",
                   emu_fault_name((enum emu_fault_kind)i), (unsigned long long)s->faults[i]);
    struct evbuffer *out = evbuffer_new();
    if (out) {
        evbuffer_add(out, b.data ? b.data : "", b.len);
        evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                          "text/plain; version=0.0.4");
        evhttp_send_reply(req, 200, "OK", out);
        evbuffer_free(out);
    }
    buf_fini(&b);
}

static void handle_slots(struct emu_server *s, struct evhttp_request *req)
{
    struct fy_node_state st;
    pump(s);
    node_svc_state(s->svc, &st);
    cJSON *arr = cJSON_CreateArray();
    int n = s->o.prof.max_seqs > 0 ? s->o.prof.max_seqs : 1;
    for (int i = 0; i < n; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "id", i);
        cJSON_AddNumberToObject(o, "n_ctx", s->o.prof.context_limit);
        cJSON_AddBoolToObject(o, "is_processing", i < st.running);
        cJSON_AddItemToArray(arr, o);
    }
    char *txt = cJSON_PrintUnformatted(arr);
    cJSON_Delete(arr);
    send_json(req, 200, "OK", txt ? txt : "[]");
    free(txt);
}

static void on_request(struct evhttp_request *req, void *arg)
{
    struct emu_server *s = arg;
    const char *uri = evhttp_request_get_uri(req);
    char path[256];
    size_t n = strcspn(uri, "?");
    if (n >= sizeof path) n = sizeof path - 1;
    memcpy(path, uri, n);
    path[n] = 0;
    int get = evhttp_request_get_command(req) == EVHTTP_REQ_GET;
    if (!strcmp(path, "/v1/chat/completions")) handle_chat(s, req);
    else if (get && !strcmp(path, "/v1/models")) handle_models(s, req);
    else if (get && !strcmp(path, "/health")) handle_health(s, req);
    else if (get && !strcmp(path, "/metrics")) handle_metrics(s, req);
    else if (get && !strcmp(path, "/slots")) handle_slots(s, req);
    else send_error(req, 404, "invalid_request_error", NULL, "no route %s", path);
}

/* ==== life cycle ====================================================================== */

/* --fault-down: closing the listening socket makes the kernel refuse connections
 * (ECONNREFUSED); re-binding the same port reopens it. Connections already accepted
 * are not touched. */
static void on_down_timer(evutil_socket_t fd, short what, void *arg)
{
    struct emu_server *s = arg;
    const struct emu_fault *f = &s->o.faults.f[EMU_FAULT_DOWN];
    (void)fd;
    (void)what;
    double next_ms;
    if (!s->down) {
        if (s->bound) evhttp_del_accept_socket(s->http, s->bound);
        s->bound = NULL;
        s->down = 1;
        s->faults[EMU_FAULT_DOWN]++;
        next_ms = f->ms2;
    } else {
        s->bound = evhttp_bind_socket_with_handle(s->http, s->o.host, (ev_uint16_t)s->port);
        if (!s->bound) log_warn("emu", "--fault-down: re-binding %s:%d failed: %s", s->o.host,
                                s->port, strerror(errno));
        s->down = !s->bound;
        next_ms = s->bound ? f->ms : 100; /* retry soon when the port was taken */
    }
    struct timeval tv = {(time_t)(next_ms / 1000), (suseconds_t)(fmod(next_ms, 1000) * 1000)};
    evtimer_add(s->down_timer, &tv);
}

struct emu_server *emu_server_new(struct event_base *base, const struct emu_opts *o,
                                  char *err, size_t errlen)
{
    struct emu_server *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->base = base;
    s->o = *o;
    if (s->o.tick_ms <= 0) s->o.tick_ms = 5;
    rng_seed(&s->rng, o->seed);
    req_limits_default(&s->lim);
    if (o->max_body_bytes) s->lim.max_body_bytes = o->max_body_bytes;
    hist_init(&s->ttft, g_ttft_le, NLE(g_ttft_le));
    hist_init(&s->tpot, g_tpot_le, NLE(g_tpot_le));
    hist_init(&s->e2e, g_e2e_le, NLE(g_e2e_le));
    if (o->has_link && !(s->link = link_new(&o->link, o->seed, err, errlen))) goto fail;
    s->svc = node_svc_new(&o->prof, NULL);
    if (!s->svc) {
        snprintf(err, errlen, "profile of model '%s': unusable service rates "
                 "(prefill_tps %g, decode_tps %g)", o->prof.model, o->prof.prefill_tps,
                 o->prof.decode_tps);
        goto fail;
    }
    s->timer = evtimer_new(base, on_timer, s);
    s->http = evhttp_new(base);
    if (!s->timer || !s->http) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    evhttp_set_max_body_size(s->http, (ev_ssize_t)s->lim.max_body_bytes);
    evhttp_set_allowed_methods(s->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD);
    evhttp_set_gencb(s->http, on_request, s);
    s->bound = evhttp_bind_socket_with_handle(s->http, o->host, (ev_uint16_t)o->port);
    if (!s->bound) {
        snprintf(err, errlen, "bind %s:%d: %s", o->host, o->port, strerror(errno));
        goto fail;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getsockname(evhttp_bound_socket_get_fd(s->bound), (struct sockaddr *)&ss, &sl) < 0) {
        snprintf(err, errlen, "getsockname: %s", strerror(errno));
        goto fail;
    }
    s->port = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                        : ntohs(((struct sockaddr_in *)&ss)->sin_port);
    s->t0 = clock_now_ms();
    if (o->faults.f[EMU_FAULT_DOWN].rate > 0) {
        s->down_timer = evtimer_new(base, on_down_timer, s);
        if (!s->down_timer) {
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
        double up = o->faults.f[EMU_FAULT_DOWN].ms;
        struct timeval tv = {(time_t)(up / 1000), (suseconds_t)(fmod(up, 1000) * 1000)};
        evtimer_add(s->down_timer, &tv);
    }
    return s;
fail:
    emu_server_free(s);
    return NULL;
}

int emu_server_port(const struct emu_server *s)
{
    return s->port;
}

void emu_server_free(struct emu_server *s)
{
    if (!s) return;
    struct emu_req *r = s->head;
    while (r) {
        struct emu_req *nx = r->next;
        req_free_one(r);
        r = nx;
    }
    s->head = NULL;
    if (s->http) evhttp_free(s->http);
    if (s->timer) event_free(s->timer);
    if (s->down_timer) event_free(s->down_timer);
    node_svc_free(s->svc);
    link_free(s->link);
    free(s);
}
