/* gw/cascade — cascade plans executed over HTTP (docs/gateway.md "Cascades").
 *
 * A cascade plan (fy_plan.escalate_below > 0) answers on plan.node first and escalates
 * to plan.escalate_node when that answer is not confident enough:
 *   stage 1  a non-streaming request to plan.node with "logprobs": true added
 *            ("stream" and "stream_options" removed); its answer is buffered, never
 *            relayed as it arrives (at most GW_CASC_ANSWER_MAX bytes);
 *   judge    confidence = exp(mean token logprob) over choices[0].logprobs.content[]
 *            (the geometric-mean token probability; docs/emulator.md "Logprobs and
 *            confidence"). Then
 *              accepted   confidence >= escalate_below: stage 1's answer is the answer;
 *              unknown    the answer has no logprobs (the backend does not support
 *                         them): accepted as well, and counted — a backend without
 *                         logprobs must not double every request;
 *              escalated  confidence < escalate_below, or stage 1 failed before an
 *                         answer (refused, timeout, any non-200 status, a body that is
 *                         not a chat completion): stage 1 is discarded and the request
 *                         goes to escalate_node as a plain relay (streamed when the
 *                         client streams), every image kept.
 *   deliver  an accepted answer goes to the client as JSON (logprobs removed unless the
 *            client asked for them) or, when the client asked for a stream, converted
 *            to OpenAI SSE (gw_casc_client_body).
 * The client sees only the final answer. Privacy edge-only requests are never escalated
 * to a cloud node (gw_casc_sanitize removes such a cascade whatever the policy said).
 *
 * This module holds the stage-1 transfer and every pure step (bodies, confidence,
 * conversion); the server (gw/server.c, section "cascades") wires it to a request. */
#ifndef FERRY_GW_CASCADE_H
#define FERRY_GW_CASCADE_H
#include <stddef.h>

#include <curl/curl.h>

#include "ferry.h"
#include "gw/upstream.h"
#include "util/buf.h"

#define GW_CASC_ANSWER_MAX (4u << 20)   /* bytes of a stage-1 answer kept; more = failed */

enum gw_casc_result { GW_CASC_ACCEPTED = 0, GW_CASC_ESCALATED, GW_CASC_UNKNOWN, GW_CASC__N };

/* "accepted", "escalated", "unknown" (metric label and X-Ferry-Cascade value). */
const char *gw_casc_result_name(enum gw_casc_result r);

/* 1 when p is a cascade plan. */
static inline int gw_casc_is(const struct fy_plan *p)
{
    return p->escalate_below > 0 && p->escalate_node >= 0;
}

/* Makes a decided plan safe to execute: a cascade whose escalation node is out of range,
 * is plan.node itself, is excluded (excluded[i] != 0; may be NULL), or is not an edge
 * node while edge_only is set, loses its cascade (escalate_below = 0, escalate_node =
 * -1); escalate_below is clamped to at most 1; a remaining cascade keeps every image
 * (both stages get the request as the client sent it). Returns 1 when it removed a
 * cascade, else 0. */
int gw_casc_sanitize(struct fy_plan *p, const struct fy_node *nodes, int n,
                     const unsigned char *excluded, int edge_only);

/* ---- pure steps (unit-tested and fuzzed) --------------------------------------------- */

/* Running sum of token logprobs. */
struct gw_casc_conf {
    double sum;                 /* of logprobs, each floored at -9999 */
    long n;                     /* tokens seen */
};

/* Adds the tokens of choices[0].logprobs.content[] of one parsed answer or chunk object
 * (cJSON *). Returns the number of tokens added (0 when it has none). */
int gw_casc_conf_add(struct gw_casc_conf *c, const void *cjson_obj);
/* exp(sum / n), or -1 when no token was seen. */
double gw_casc_conf_value(const struct gw_casc_conf *c);

/* Confidence of a non-streamed chat.completion in json[0..len): 0 with *conf set, 1 when
 * it is an answer without logprobs, -1 when it is not a chat completion. */
int gw_casc_confidence_json(const char *json, size_t len, double *conf);
/* Adds one SSE event's data payload (a chat.completion.chunk; "[DONE]" and non-JSON
 * are ignored) to c. Returns the tokens added. */
int gw_casc_confidence_event(struct gw_casc_conf *c, const char *data, size_t len);

/* The verdict for a stage-1 answer of confidence conf (< 0 = unknown) under threshold
 * below. */
enum gw_casc_result gw_casc_judge(double conf, double below);

/* Stage 1's body: r's JSON with "model" = model, "logprobs": true, "stream": false and
 * no "stream_options" (the client's own "top_logprobs" stays). r->json is restored
 * before returning. malloc'd, or NULL. */
char *gw_casc_stage1_body(struct fy_request *r, const char *model, size_t *len);

/* What the client gets from an accepted stage-1 answer json[0..len):
 *   stream = 0: the chat.completion, with every choice's "logprobs" set to null unless
 *               keep_logprobs;
 *   stream = 1: OpenAI SSE — per choice a chunk with delta {"role":"assistant",
 *               "content":""}, a chunk with the rest of the message as delta (content,
 *               and tool_calls etc. when present; with keep_logprobs its logprobs), a
 *               chunk with finish_reason; then, with include_usage, a chunk with empty
 *               choices and the usage (the others carry "usage": null); then
 *               "data: [DONE]". Every chunk is a chat.completion.chunk with the
 *               answer's id, created and model.
 * malloc'd (NUL-terminated), or NULL when json is not a chat completion. */
char *gw_casc_client_body(const char *json, size_t len, int keep_logprobs, int stream,
                          int include_usage, size_t *outlen);

/* X-Ferry-Plan of a cascade: "cascade:EDGE>CLOUD@0.60;" followed by rest (the plain
 * plan string, gw_route_plan_str). */
void gw_casc_plan_str(const struct fy_plan *p, const struct fy_node *nodes, const char *rest,
                      char *out, size_t cap);

/* ---- the stage-1 transfer ---------------------------------------------------------- */

struct gw_casc;
typedef void (*gw_casc_cb)(struct gw_casc *c, void *arg);

struct gw_casc {
    struct gw_xfer x;           /* stage-1 transfer (first member) */
    struct gw_up *up;
    gw_casc_cb done;
    void *arg;
    struct fy_plan plan;        /* the cascade plan as decided */
    struct fy_node *snap;       /* nodes at stage-1 dispatch (malloc'd; may be taken) */
    char *body;                 /* stage-1 request body */
    struct buf resp;            /* stage-1 answer */
    int live;                   /* transfer running */
    long status;                /* HTTP status of stage 1; 0 = none */
    CURLcode rc;                /* curl's result of stage 1 */
    int answered;               /* stage 1 gave a 200 chat completion */
    double t_dispatch, t_end;   /* stage 1, ms on the caller's clock */
    enum gw_casc_result result; /* valid once done was called */
    double confidence;          /* of stage 1's answer; < 0 = unknown / none */
    int escalating;             /* stage 2 underway */
    struct fy_outcome o1;       /* stage 1's own outcome (set by the caller) */
};

/* Allocates the cascade state for plan p (copied). NULL on allocation failure. */
struct gw_casc *gw_casc_new(const struct fy_plan *p);
/* Starts stage 1: POST body (taken over, also on failure) to url with headers hdrs
 * (not copied: must outlive the transfer), connect and total timeouts in ms. done(c,
 * arg) is called once, from the loop, when it ended, with status, rc, answered, result
 * and confidence set (the caller keeps the times). 0, or -1 (done is not called). */
int gw_casc_start(struct gw_casc *c, struct gw_up *up, const char *url,
                  struct curl_slist *hdrs, char *body, size_t len, long connect_ms,
                  long total_ms, gw_casc_cb done, void *arg);
/* Stops a running stage 1 (done is not called). */
void gw_casc_cancel(struct gw_casc *c);
/* Cancels and frees. NULL is a no-op. */
void gw_casc_free(struct gw_casc *c);

#endif
