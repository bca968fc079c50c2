/* gw/shadow — shadow sampling: MGQP learns answer quality without user feedback
 * (DESIGN.md "Quality model"; docs/gateway.md "Shadow sampling").
 *
 * For a fraction ([shadow] rate) of the requests the policy served on a node weaker than
 * the reference, the gateway also asks the reference node the same question after the
 * client's answer completed: a copy of the client's body as it arrived (images as the
 * client sent them, "model" set to the reference's backend model, stream=false) sent
 * with libcurl on the gateway's loop (gw/upstream.h). The two answers'
 * choices[0].message.content are compared (gw_shadow_score) and the score becomes a
 * label for the weaker node's answer, delivered through the env's label callback —
 * the server's feedback path, as POST /v1/feedback would, except that user feedback for
 * the same request replaces it (even later) and a label after user feedback is dropped.
 *
 * Rules:
 *   reference  [shadow] reference = NODE, else the healthy node with the highest prior
 *              quality (MGQP q0); a request is eligible when its answering node is not
 *              the reference and, without a configured reference, has a lower prior
 *   privacy    a request with privacy edge-only is never sent to a cloud reference
 *   skipped    pinned requests, cascades, failed answers; answers longer than
 *              GW_SHADOW_TEXT_MAX bytes of content
 *   budget     max_inflight reference requests at once (more: skipped_busy) and
 *              max_usd_per_hour spent at the reference over the last hour (once reached:
 *              skipped_budget; the request that crosses the cap is still sent)
 * The client's answer is never delayed or changed: everything here happens after it.
 * An open reference request counts in the reference's gw_node_rt.inflight (its load).
 * Counters: ferry_shadow_total{node,reference,outcome} with outcome agree, disagree,
 * failed (the reference answered with an error or not at all), unscored (an answer
 * without comparable content), skipped_budget, skipped_busy. All on the loop thread. */
#ifndef FERRY_GW_SHADOW_H
#define FERRY_GW_SHADOW_H
#include <stddef.h>
#include <stdint.h>

#include "ferry.h"
#include "gw/config.h"
#include "util/buf.h"

struct event_base;
struct gw_up;
struct gw_nodes;
struct pred;

#define GW_SHADOW_TEXT_MAX  (64 * 1024)    /* content bytes of one answer kept for comparing */
#define GW_SHADOW_BODY_MAX  (4u << 20)     /* bytes of a non-streamed answer / reference answer */

enum gw_shadow_cmp {
    GW_SHADOW_AUTO = 0,     /* letter when the reference is a choice letter, contains when
                             * it has at most GW_SHADOW_SHORT_WORDS words, else token F1 */
    GW_SHADOW_EXACT,        /* normalised answers equal (emu/score.h) */
    GW_SHADOW_CONTAINS,     /* either normalised answer contains the other as whole words */
    GW_SHADOW_VQA,          /* VQA accuracy with the reference answer as the one reference */
    GW_SHADOW_LETTER        /* the same multiple-choice letter in both */
};
#define GW_SHADOW_SHORT_WORDS 5

enum gw_shadow_outcome {
    GW_SHADOW_AGREE = 0, GW_SHADOW_DISAGREE, GW_SHADOW_FAILED, GW_SHADOW_UNSCORED,
    GW_SHADOW_SKIPPED_BUDGET, GW_SHADOW_SKIPPED_BUSY, GW_SHADOW__N
};

/* What the module needs from the server. */
struct gw_shadow_env {
    struct event_base *base;
    struct gw_up *up;                    /* the server's curl multi on base */
    const struct gw_config *cfg;         /* [shadow] keys and the nodes' URLs, models, keys */
    struct gw_nodes *nodes;              /* names, roles, health, prices */
    uint64_t seed;                       /* sampling stream */
    /* A label in [0,1] for the answer of request id, as POST /v1/feedback would give it.
     * Returns 0 when it was applied, -1 when the request is no longer known. */
    int (*label)(void *arg, const char *id, double score);
    void *arg;
};

struct gw_shadow;
struct gw_shadow_req;   /* one sampled request: the reference body, the answer's content */

/* "auto", "exact", "contains", "vqa", "letter" -> kind; -1 for anything else. */
int gw_shadow_cmp_parse(const char *s);
const char *gw_shadow_outcome_name(enum gw_shadow_outcome o);

/* Score in [0,1] of answer against the reference answer under kind k, or -1 when they
 * cannot be compared (an empty answer; letter: no choice letter in the reference). */
double gw_shadow_score(enum gw_shadow_cmp k, const char *answer, const char *reference);

/* Content of a non-streamed chat completion (choices[0].message.content), or of the
 * SSE text of a streamed one (the concatenated choices[0].delta.content of its data:
 * events), appended to out, at most GW_SHADOW_TEXT_MAX bytes. 0, or -1 when the bytes
 * hold no such content or it is longer. Bounded: len bytes are read, nothing more. */
int gw_shadow_content(const char *p, size_t len, int stream, struct buf *out);

/* NULL with err on failure; NULL without err ("") when cfg's rate is 0 (off). Every
 * function below accepts a NULL gw_shadow and does nothing. */
struct gw_shadow *gw_shadow_new(const struct gw_shadow_env *env, char *err, size_t errlen);
/* Cancels reference requests in flight (no label). NULL is a no-op. */
void gw_shadow_free(struct gw_shadow *sh);

/* At the routing decision of a request the policy sent to node: the sampling draw and
 * the eligibility rules above. A new gw_shadow_req (holding the body to send to the
 * reference, built now, before any image is changed) when sampled, else NULL.
 * pred supplies the prior qualities (may be NULL: roles decide, cloud over edge). */
struct gw_shadow_req *gw_shadow_pick(struct gw_shadow *sh, const struct pred *pred,
                                     const struct fy_request *fr, int node);
/* Bytes of the answer as the backend sent them (SSE when the request streams). */
void gw_shadow_bytes(struct gw_shadow_req *r, const char *p, size_t n);
/* The request completed at node (which may differ from the picked one after a failover)
 * with in/out tokens there (for the budget's estimate): sends the reference request, or
 * counts why not. Takes r (and frees it when nothing is sent). */
void gw_shadow_submit(struct gw_shadow *sh, struct gw_shadow_req *r, const char *id, int node,
                      int in_tokens, int out_tokens);
/* A sampled request that never completed. NULL is a no-op. */
void gw_shadow_req_free(struct gw_shadow_req *r);
/* Reference requests open now. */
int gw_shadow_inflight(const struct gw_shadow *sh);
/* Appends ferry_shadow_total (Prometheus text; nothing when sh is NULL). */
void gw_shadow_render(const struct gw_shadow *sh, struct buf *out);

#endif
