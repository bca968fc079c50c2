/* trace — the MIOBench-equivalent trace: one JSON object per line (JSONL), one line per
 * request, with its features and, for every node that ran it, the measured outcome
 * (docs/predictors.md "Trace format"). Written by `ferry sim --trace`, the gateway and
 * `ferry bench collect`; read by `ferry train` / `ferry eval` / `ferry bench export`.
 *
 * A line looks like (wrapped here; one line in the file):
 *   {"v":1,"id":"r17","dataset":"vqav2","task":"yesno","session":"d3","t_ms":1250.0,
 *    "features":{"turn":0,"text_tokens":14,...,"images":[{"w":640,"h":480,...}],
 *                "ngram":[[12,0.5],[200,0.5],...]},
 *    "outcomes":[{"node":"edge0","role":"edge","model":"qwen2-vl-2b",
 *                 "link":{"up_mbps":300,"down_mbps":300,"rtt_ms":2},
 *                 "state":{"running":1,"queued":0,"queued_tokens":0},
 *                 "plan":{"aux_node":-1,"downscale_px":0,"img":["keep"]},
 *                 "bytes_up":81234,"image_tokens":391,"chosen":true,
 *                 "quality":1,"ttft_ms":..,"e2e_ms":..,"t_up_ms":..,...,"failed":false}]}
 * Cascade plans add "escalate_node"/"escalate_below" to "plan", and "stage",
 * "confidence", "escalated", "first_quality" to the outcome (absent otherwise; the
 * reader defaults them to no cascade).
 * Unknown keys are ignored by the reader (forward compatible); "v" > TRACE_VERSION is
 * refused. */
#ifndef FERRY_PRED_TRACE_H
#define FERRY_PRED_TRACE_H
#include <stddef.h>
#include <stdio.h>

#include "ferry.h"

#define TRACE_VERSION     1
#define TRACE_MAX_LINE    (1u << 20)   /* bytes per JSONL line the reader accepts */
#define TRACE_MAX_RECORDS 10000000u    /* records per file the reader accepts */

/* The outcome of one request on one node, with what the node and link looked like when
 * the request was dispatched (what MILP learns from). */
struct trace_outcome {
    char node[FY_NAME_MAX];      /* node name (matched by name against a predictor bank) */
    enum fy_role role;
    char model[FY_NAME_MAX];
    struct fy_link link;         /* link at dispatch time */
    struct fy_node_state state;  /* node state at dispatch time (before this request) */
    double bytes_up;             /* bytes sent to the node (text + images after the plan) */
    int image_tokens;            /* visual tokens after the plan */
    int chosen;                  /* 1 = the policy's choice; 0 = counterfactual run */
    /* Cascade plans (both outcomes chosen): 1 = the first answer (o.confidence,
     * o.escalated, o.first_quality set; latency and cost of this stage only; for a
     * request that was not escalated this is also the client's answer), 2 = the
     * escalated second answer: a keep plan on the cascade's escalate_node, this stage
     * only, its times from the escalation (the client's e2e is the sum of both stages'
     * e2e). 0 = no cascade. JSON "stage", written when > 0. */
    int stage;
    struct fy_outcome o;         /* plan, quality, latency parts (ms), tokens, cost */
};

struct trace_record {
    char id[64];                 /* request id */
    char dataset[64];            /* dataset or workload mix name; "" = unknown */
    char session[128];           /* dialogue id; "" = none */
    double t_ms;                 /* arrival time (sim time or ms since trace start) */
    struct fy_features f;
    int nout;
    struct trace_outcome out[FY_MAX_NODES];
};

/* Short names used in the JSON ("chat", "caption", ...; "keep", "downscale", ...). */
const char *trace_task_name(enum fy_task t);
int trace_task_parse(const char *s, enum fy_task *t); /* 0 or -1 */
const char *trace_img_action_name(int a);

/* Deterministic split key in [0, 1) of a record: a hash of its session (all turns of a
 * dialogue fall on the same side) or, without a session, of its id. `ferry train` uses
 * records with key >= holdout, `ferry eval` those with key < holdout. */
double trace_split_key(const struct trace_record *r);

/* Writes one record as one line (terminated by '\n'). 0, or -1 on an I/O error.
 * Numbers carry 9 significant digits (n-gram weights, floats, 6): the string printf's
 * %.9g / %.6g would give, formatted by hand (docs/predictors.md "Trace format"). */
int trace_write(FILE *fp, const struct trace_record *r);
/* The former stdio/printf writer, byte for byte the same output: the reference of
 * bench-trace and of the tests. */
int trace__write_printf(FILE *fp, const struct trace_record *r);
/* printf("%.<prec>g", v) by hand (prec 1..17; finite v; "null" otherwise) into out
 * (>= 32 bytes, no NUL written); returns the length. Identical to printf's string
 * except when v·10^k lies within ~2^-64 relative of a rounding tie (x87 extended
 * arithmetic), then off by one unit in the last digit. */
int trace__fmt_g(char *out, double v, int prec);

/* Parses one line (len bytes, no NUL needed) into *r (fully overwritten). 0, or -1
 * with a message naming the offending key in err. */
int trace_parse_line(const char *line, size_t len, struct trace_record *r, char *err,
                     size_t errlen);

/* Reads a whole JSONL file: *out (malloc'd array, free() it) and *n. Empty lines are
 * skipped. Lines longer than TRACE_MAX_LINE, more than max_records records (0 =
 * TRACE_MAX_RECORDS), or a bad line fail the whole read with "path:line: what". */
int trace_read_file(const char *path, size_t max_records, struct trace_record **out,
                    size_t *n, char *err, size_t errlen);

#endif
