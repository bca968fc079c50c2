/* cmd_collect — `ferry bench collect` (docs/collect.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "cli.h"
#include "emu/collect.h"
#include "util/num.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: ferry bench collect DATASET.jsonl -c ferry.ini [options]\n"
            "\n"
            "Sends every labelled item of DATASET to every listed node (with each listed\n"
            "plan), measures TTFT, end-to-end latency and tokens, scores the answers, and\n"
            "appends one trace line per item (the format `ferry train` / `ferry eval`\n"
            "read). docs/collect.md.\n"
            "\n"
            "  -c, --config FILE    gateway config with the [node NAME] sections (required)\n"
            "  --nodes a,b          nodes to run (default: all of the config)\n"
            "  --plans LIST         plans each item runs with on each node, from keep,\n"
            "                       downscale, drop; keep required (default keep).\n"
            "                       downscale: only items with an image larger than\n"
            "                       --downscale-px; drop: only items with images\n"
            "  --downscale-px N     longer side of downscaled images, 28..16384 (default 448)\n"
            "  -o, --out FILE       trace JSONL, appended; items already in it are skipped\n"
            "                       (default: stdout, no resume)\n"
            "  --concurrency N      requests at once (default 4)\n"
            "  --base DIR           folder for relative image paths after the dataset's own\n"
            "                       (default $FERRY_SHARED, else ../shared)\n"
            "  --limit N            run at most N new items this time\n"
            "  --timeout-ms MS      per request (default 300000)\n"
            "  --no-metadata        do not send metadata (answer, difficulty, skill, images,\n"
            "                       image_sides: only emulated nodes use them; some APIs\n"
            "                       reject metadata)\n"
            "  -q, --quiet          no progress line\n"
            "  -h, --help           this text\n"
            "\n"
            "Exit status: 0, 1 when the run could not start or some request failed, 2 on a\n"
            "usage error.\n");
}

static int num_arg(const char *opt, const char *v, long lo, long hi, long *out)
{
    int rc = util_parse_long(v, lo, hi, out);
    if (rc < 0)
        fprintf(stderr, "ferry bench collect: %s '%s': expected an integer in %ld..%ld\n", opt,
                v ? v : "", lo, hi);
    return rc;
}

int cmd_bench_collect(int argc, char **argv)
{
    struct emu_collect_opts o;
    emu_collect_opts_default(&o);
    o.progress = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        long n;
        static const char *const with_value[] = {"-c", "--config", "--nodes", "-o", "--out",
                                                 "--base", "--concurrency", "--limit",
                                                 "--timeout-ms", "--plans", "--downscale-px"};
        for (size_t k = 0; k < sizeof with_value / sizeof with_value[0]; k++)
            if (!strcmp(a, with_value[k]) && !v) {
                fprintf(stderr, "ferry bench collect: %s needs a value (try --help)\n", a);
                return 2;
            }
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
            o.progress = 0;
        } else if (!strcmp(a, "--no-metadata")) {
            o.send_metadata = 0;
        } else if (!strcmp(a, "-c") || !strcmp(a, "--config")) {
            o.config = v;
            i++;
        } else if (!strcmp(a, "--nodes")) {
            o.nodes = v;
            i++;
        } else if (!strcmp(a, "-o") || !strcmp(a, "--out")) {
            o.out = v;
            i++;
        } else if (!strcmp(a, "--plans")) {
            char perr[200];
            if (emu_collect_parse_plans(v, &o.plans, perr, sizeof perr) < 0) {
                fprintf(stderr, "ferry bench collect: %s (try --help)\n", perr);
                return 2;
            }
            i++;
        } else if (!strcmp(a, "--downscale-px")) {
            if (num_arg(a, v, 28, 16384, &n) < 0) return 2;
            o.downscale_px = (int)n;
            i++;
        } else if (!strcmp(a, "--base")) {
            o.base = v;
            i++;
        } else if (!strcmp(a, "--concurrency")) {
            if (num_arg(a, v, 1, 1024, &n) < 0) return 2;
            o.concurrency = (int)n;
            i++;
        } else if (!strcmp(a, "--limit")) {
            if (num_arg(a, v, 1, 100000000, &n) < 0) return 2;
            o.limit = (int)n;
            i++;
        } else if (!strcmp(a, "--timeout-ms")) {
            if (num_arg(a, v, 1, 86400000, &n) < 0) return 2;
            o.timeout_ms = n;
            i++;
        } else if (a[0] == '-') {
            fprintf(stderr, "ferry bench collect: unknown option %s (try --help)\n", a);
            return 2;
        } else if (!o.dataset) {
            o.dataset = a;
        } else {
            fprintf(stderr, "ferry bench collect: one DATASET only ('%s')\n", a);
            return 2;
        }
    }
    if (!o.dataset || !o.config) {
        fprintf(stderr, "ferry bench collect: DATASET.jsonl and -c ferry.ini are required "
                        "(try --help)\n");
        return 2;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    struct emu_collect_stats st;
    char err[1024];
    int rc = emu_collect_run(&o, &st, err, sizeof err);
    curl_global_cleanup();
    if (rc < 0) {
        fprintf(stderr, "ferry bench collect: %s\n", err);
        return 1;
    }
    int ok = st.runs - st.failed;
    fprintf(stderr, "collect: %d items written, %d skipped (already in %s), %d runs, "
                    "%d failed, mean score %.3f\n",
            st.done, st.skipped, o.out ? o.out : "the output", st.runs, st.failed,
            ok > 0 ? st.score_sum / ok : 0.0);
    if (o.plans & ~EMU_PLAN_KEEP)
        fprintf(stderr, "collect: runs by plan: %d keep, %d downscale (%d px), %d drop\n",
                st.plan_runs[0], st.plan_runs[1], o.downscale_px, st.plan_runs[2]);
    if (st.failed) fprintf(stderr, "collect: the first failed run: %s\n", st.first_error);
    return st.failed ? 1 : 0;
}
