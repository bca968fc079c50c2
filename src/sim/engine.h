/* engine — the discrete-event simulation of one (setup, policy, seed): arrivals,
 * uploads over the links, the node service models (node/service.h), policy decisions
 * and outcomes (docs/simulator.md "Engine"). Events live in one util/heap queue keyed
 * by time with FIFO ties, so a run is a pure function of (setup, policy, seed). Memory
 * is bounded by the requests in flight (metrics go to fixed-size histograms). */
#ifndef FERRY_SIM_ENGINE_H
#define FERRY_SIM_ENGINE_H
#include <stdint.h>
#include <stdio.h>

#include "ferry.h"
#include "sim/experiment.h"
#include "sim/stats.h"

struct fy_policy;

struct sim_run_opts {
    const struct fy_policy *pol;
    const char *params;          /* policy parameters or NULL */
    uint64_t seed;
    FILE *trace;                 /* JSONL trace (pred/trace.h) or NULL */
    int counterfactual;          /* trace: 1 = also the keep outcome on every other node;
                                  * 2 = also downscale (448 px) and drop on every node */
    const char *trace_tag;       /* prefix of trace ids ("least-loaded/s1/"), may be NULL */
    int use_pred;                /* -1 = auto (when the policy has observe), 0 no, 1 yes */
};

struct sim_node_result {
    long requests;               /* answered here (main node) */
    long aux_requests;           /* image descriptions done here (split plans) */
    double busy_ms;              /* device busy time */
};

struct sim_result {
    long requests;               /* finished (answered or failed) */
    long failed;                 /* no node / context overflow / refused */
    long correct;                /* answers that were right */
    long completed;              /* right and within the SLO when one is set */
    double sum_p;                /* sum of true P(correct) of the chosen plans */
    double sum_e2e_ms, sum_ttft_ms;
    double sum_up_ms, sum_queue_ms, sum_vision_ms, sum_prefill_ms, sum_decode_ms;
    double sum_cost_usd, sum_bytes_up;
    long plans_split, plans_downscale, plans_drop;
    long privacy_violations;     /* edge-only requests whose data reached a cloud node
                                  * (or whose cascade plan could escalate to one) */
    long plans_cascade;          /* requests dispatched with a cascade plan */
    long escalated;              /* of those, escalated to their second node */
    long dialogues;              /* finished dialogues (multi-turn workloads) */
    long dialogues_in_budget;    /* no failed turn, total latency and cost within budgets */
    long dialogue_turns, dialogue_turns_correct;
    double sum_dialogue_ms;      /* sum over dialogues of their turns' e2e latency */
    double sum_dialogue_usd;
    double makespan_ms;          /* last completion */
    double decide_ns;            /* wall-clock time in policy decide (not deterministic) */
    int nnodes;
    struct sim_node_result node[FY_MAX_NODES];
    struct sim_hist e2e, ttft;
};

/* Runs one simulation. *res is fully written (it is large: allocate it). 0, or -1 with
 * a message (policy init failed, out of memory, a node profile the service model
 * refuses). */
int sim_run(const struct sim_setup *s, const struct sim_run_opts *o, struct sim_result *res,
            char *err, size_t errlen);

#endif
