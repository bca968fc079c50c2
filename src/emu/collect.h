/* collect — `ferry bench collect`: build a MIOBench-style trace on real (or emulated)
 * model servers (docs/collect.md). Every item of a labelled JSONL dataset is sent to
 * every listed node of a gateway config (ferry.ini, gw/config.h) as a streamed OpenAI
 * chat request over HTTP (libcurl multi, bounded concurrency); TTFT, end-to-end
 * latency and tokens are measured, the answer is scored (score.h), and one trace line
 * per item (pred/trace.h) holds the outcomes on all nodes. With plans beyond keep, each
 * item also runs on each node with its images downscaled (feat_image_downscale_jpeg,
 * the gateway's downscaler) and/or dropped, and the line holds every (node, plan)
 * outcome, each with its plan, bytes and visual tokens as sent: the trace `ferry sim
 * --counterfactual-plans` writes, measured. Resumable: ids already in the output are
 * skipped and new lines are appended (a line is written when all its runs ended).
 *
 * Dataset line (one JSON object; docs/collect.md "Dataset format"):
 *   {"id":"cat-1", "question":"What animal is this?", "images":["images/x.png"],
 *    "answers":["cat","cat","kitten"], "kind":"vqa", "choices":["A. ...", ...],
 *    "task":"caption", "dataset":"mini", "difficulty":0.3, "skill":"vqa",
 *    "max_tokens":32}
 * Required: id, question, answers (or "answer"). Images are file paths, resolved
 * against the dataset's folder, then against the base folder (--base, default
 * $FERRY_SHARED, else ../shared). */
#ifndef FERRY_EMU_COLLECT_H
#define FERRY_EMU_COLLECT_H
#include <stddef.h>

/* Plans an item runs with (emu_collect_opts.plans bits), in the order of a record's
 * outcomes on each node. */
#define EMU_PLAN_KEEP      1u  /* images as they are */
#define EMU_PLAN_DOWNSCALE 2u  /* every image larger than downscale_px downscaled to it;
                                * only for items with such an image */
#define EMU_PLAN_DROP      4u  /* image parts removed; only for items with images */
#define EMU_COLLECT_DOWNSCALE_PX 448  /* the gateway's and the simulator's plan size */

struct emu_collect_opts {
    const char *dataset;     /* JSONL path */
    const char *config;      /* gateway INI with the [node NAME] sections */
    const char *nodes;       /* "a,b" (names as in the config); NULL = all nodes */
    const char *out;         /* trace JSONL (appended); NULL = stdout, not resumable */
    const char *base;        /* folder for relative image paths; NULL = default */
    int concurrency;         /* transfers at once; default 4 */
    int send_metadata;       /* 1: send metadata.answer/difficulty/skill (emulators) */
    int progress;            /* 1: progress line on stderr */
    long timeout_ms;         /* per transfer; default 300000 */
    int limit;               /* items to run this time; 0 = all */
    unsigned plans;          /* EMU_PLAN_* bits, KEEP among them; default KEEP */
    int downscale_px;        /* longer side of downscaled images, px, 28..16384; 448 */
};

struct emu_collect_stats {
    int items, skipped, done;  /* dataset items, already in the output, written now */
    int runs, failed;          /* (item, node, plan) requests made, of which failed */
    int plan_runs[3];          /* runs with keep, downscale, drop */
    double score_sum;          /* over non-failed runs */
    char first_error[200];     /* "node NAME: why" of the first failed run; "" = none */
};

void emu_collect_opts_default(struct emu_collect_opts *o);

/* Parses a comma-separated list of plan names (keep, downscale, drop; each at most once,
 * keep required) into EMU_PLAN_* bits. 0, or -1 with the problem, naming the bad word,
 * in err. */
int emu_collect_parse_plans(const char *list, unsigned *plans, char *err, size_t errlen);

/* Runs the collection. 0 when every item was written (some runs may have failed: see
 * stats), -1 with "what: where" in err on a bad dataset, config or output file. */
int emu_collect_run(const struct emu_collect_opts *o, struct emu_collect_stats *st,
                    char *err, size_t errlen);

/* `ferry bench collect` (src/emu/cmd_collect.c), called by the `ferry bench`
 * dispatcher with argv[0] = "collect". */
int cmd_bench_collect(int argc, char **argv);

#endif
