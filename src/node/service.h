/* service — the service model of one model server (node), as an object driven by
 * explicit time. ONE implementation shared by the discrete-event simulator (`ferry sim`,
 * which calls it from its event queue) and the real-time emulator (`ferry emulate`,
 * which calls it from libevent timers with scaled wall-clock ms). docs/simulator.md
 * "Service model" states the model; in short:
 *
 *  - continuous batching: at most prof.max_seqs sequences are admitted at once; further
 *    requests wait in a FIFO queue;
 *  - an admitted sequence first needs its prefill work, in device-ms at full speed:
 *        W = image_tokens * vision_ms_per_token + 1000 * (prompt + image tokens) / prefill_tps
 *    (DESIGN.md "Latency model", T_prefill). Prefills run one at a time in admission
 *    order (chunked prefill): while sequences are decoding, the prefill at the head
 *    proceeds at `prefill_share` of full speed and decoding at (1 - prefill_share) of
 *    its speed; with nothing decoding the prefill gets the whole device;
 *  - the prefill produces the first output token; the sequence then decodes its other
 *    out_tokens - 1 tokens. With d sequences decoding together each advances at
 *        1 / tpot(d) tokens per ms,  tpot(d) = (1000 / decode_tps) * (1 + tpot_slope * (d - 1))
 *  - rates are constant between events, so the model advances in segments and computes
 *    the next first-token / completion time analytically (never one event per token):
 *    O(log n) per request event in the sequences in service.
 *
 * Times are ms on the caller's clock; they must never go backwards. */
#ifndef FERRY_NODE_SERVICE_H
#define FERRY_NODE_SERVICE_H
#include <stdint.h>

#include "ferry.h"

struct node_svc;

struct node_svc_opts {
    double prefill_share;   /* (0, 1]: device share of a pending prefill while others
                             * decode; 1 = decode pauses during prefills. Default 0.5 */
    double ewma_alpha;      /* weight of the newest sample in st.ewma_*; default 0.1 */
    int max_queue;          /* waiting requests refused beyond this; 0 = unbounded */
};

void node_svc_opts_default(struct node_svc_opts *o);

/* Events reported by node_svc_advance. A callback must ignore kinds it does not use. */
enum node_ev {
    NODE_EV_START = 1,       /* admitted: prefill (and vision encoding) starts */
    NODE_EV_FIRST_TOKEN = 2, /* prefill finished, first output token produced */
    NODE_EV_DONE = 4         /* last output token produced; the id is forgotten */
};

typedef void (*node_svc_cb)(void *arg, uint64_t id, int ev, double t_ms);

/* o may be NULL (defaults). NULL on ENOMEM or an unusable profile (rates <= 0). The
 * profile is copied. */
struct node_svc *node_svc_new(const struct fy_node_profile *p, const struct node_svc_opts *o);
void node_svc_free(struct node_svc *s);
/* A deep copy with the same state (the simulator's oracle runs copies forward). */
struct node_svc *node_svc_clone(const struct node_svc *s);

/* Enqueues a request that has fully arrived at now_ms (upload done). The caller must
 * have called node_svc_advance(s, now_ms, ...) first. out_tokens >= 1 (0 is treated
 * as 1), tokens >= 0. Returns 0; -EINVAL (bad args, time went backwards, or events
 * before now_ms not yet processed), -ENOSPC (queue full), -ENOMEM. The id must not
 * be in service already (-EEXIST). */
int node_svc_submit(struct node_svc *s, double now_ms, uint64_t id, int prompt_tokens,
                    int image_tokens, int out_tokens);

/* ms of the next internal event (start, first token or completion); INFINITY when idle. */
double node_svc_next_time(const struct node_svc *s);

/* Processes every event up to and including now_ms, calling cb (may be NULL) for each
 * in time order (ties: FIFO). Returns the number of events, or -EINVAL if now_ms is
 * earlier than the last time the object saw. */
int node_svc_advance(struct node_svc *s, double now_ms, node_svc_cb cb, void *arg);

/* Output tokens the request has produced by now_ms (>= the last advance time), for
 * streaming at the modelled pace: 0 before its first token; -ENOENT if unknown. */
int node_svc_tokens_at(const struct node_svc *s, uint64_t id, double now_ms);

/* Removes a request wherever it is (queue, prefill, decode); 0 or -ENOENT. Call
 * node_svc_advance(s, now_ms, ...) first. */
int node_svc_cancel(struct node_svc *s, double now_ms, uint64_t id);

/* Live state for policies: running (admitted), queued (waiting), queued_tokens
 * (remaining prefill tokens + remaining output tokens of everything in the node),
 * EWMA of TTFT (submit -> first token, ms) and TPOT (ms per output token after the
 * first) over completed requests; healthy = 1. */
void node_svc_state(const struct node_svc *s, struct fy_node_state *st);

/* Cumulative device busy time in ms up to the last advance (for utilisation). */
double node_svc_busy_ms(const struct node_svc *s);

#endif
