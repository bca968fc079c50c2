/* collect — `ferry bench collect`: build a MIOBench-style trace on real (or emulated)
 * model servers (docs/collect.md). Every item of a labelled JSONL dataset is sent to
 * every listed node of a gateway config (ferry.ini, gw/config.h) as a streamed OpenAI
 * chat request over HTTP (libcurl multi, bounded concurrency); TTFT, end-to-end
 * latency and tokens are measured, the answer is scored (score.h), and one trace line
 * per item (pred/trace.h) holds the outcomes on all nodes. Resumable: ids already in
 * the output are skipped and new lines are appended.
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
};

struct emu_collect_stats {
    int items, skipped, done;  /* dataset items, already in the output, written now */
    int runs, failed;          /* (item, node) requests made, of which failed */
    double score_sum;          /* over non-failed runs */
    char first_error[200];     /* "node NAME: why" of the first failed run; "" = none */
};

void emu_collect_opts_default(struct emu_collect_opts *o);

/* Runs the collection. 0 when every item was written (some runs may have failed: see
 * stats), -1 with "what: where" in err on a bad dataset, config or output file. */
int emu_collect_run(const struct emu_collect_opts *o, struct emu_collect_stats *st,
                    char *err, size_t errlen);

/* `ferry bench collect` (src/emu/cmd_collect.c), called by the `ferry bench`
 * dispatcher with argv[0] = "collect". */
int cmd_bench_collect(int argc, char **argv);

#endif
