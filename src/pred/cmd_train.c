/* cmd_train — `ferry train TRACE... -o model.fy`: fits MGQP and MILP of every node seen
 * in the traces by replaying their outcomes in order through the online learners
 * (pred_observe_trace), on the training side of the deterministic split
 * (trace_split_key >= holdout), and writes a model file (model.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "pred/pred.h"
#include "pred/trace.h"
#include "util/num.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: ferry train TRACE.jsonl... -o MODEL.fy [options]\n"
            "\n"
            "Fits the quality (MGQP) and latency (MILP) predictors of every node in the\n"
            "traces (`ferry sim --trace`, `ferry bench collect`, `ferry bench export`) and\n"
            "writes a model file for `ferry eval` and `ferry serve --model`.\n"
            "docs/predictors.md.\n"
            "\n"
            "  -o FILE          the model file to write (required)\n"
            "  --holdout F      hold out the records whose split key (by dialogue) is\n"
            "                   below F for `ferry eval` (default 0.2; 0 = train on all)\n"
            "  --epochs N       passes over the training records (default 1, at most 1000)\n"
            "  --profiles PATH  profile file or folder (e.g. data/profiles): a trace node\n"
            "                   of the same name, role and model as a [node] there is\n"
            "                   learned with its profile (service rates, max_seqs, prices),\n"
            "                   as `ferry sim` and `ferry serve` see it; nodes whose model\n"
            "                   is defined there start from its prior accuracy per task\n"
            "                   (docs/predictors.md \"Prior\"); others from the role\n"
            "                   default\n"
            "  -h, --help       this text\n"
            "\n"
            "Exit status: 0, 1 when a trace could not be read or the model written, 2 on a\n"
            "usage error.\n");
}

/* Counts outcome plan `pl` of a request with features f into *down / *drop when it
 * downscales / drops one of the request's images (at most one of each per outcome). */
static void image_plan_count(const struct fy_features *f, const struct fy_plan *pl, long *down,
                             long *drop)
{
    int dn = 0, dr = 0;
    for (int j = 0; j < f->nimages && j < FY_MAX_IMAGES; j++) {
        dn |= pl->img[j] == FY_IMG_DOWNSCALE;
        dr |= pl->img[j] == FY_IMG_DROP;
    }
    *down += dn;
    *drop += dr;
}

int cmd_train(int argc, char **argv)
{
    const char *out = NULL, *profiles = NULL;
    double holdout = 0.2;
    int epochs = 1, ntraces = 0, rc = 1;
    const char *traces[256];
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "-o") && i + 1 < argc) {
            out = argv[++i];
        } else if (!strcmp(argv[i], "--holdout") && i + 1 < argc) {
            if (util_parse_double(argv[++i], 0, 1, &holdout) < 0 || holdout == 1) {
                fprintf(stderr, "ferry train: --holdout %s: expected a number in [0, 1)\n", argv[i]);
                return 2;
            }
        } else if (!strcmp(argv[i], "--epochs") && i + 1 < argc) {
            if (util_parse_int(argv[++i], 1, 1000, &epochs) < 0) {
                fprintf(stderr, "ferry train: --epochs '%s': expected an integer in [1, 1000]\n", argv[i]);
                return 2;
            }
        } else if (!strcmp(argv[i], "--profiles") && i + 1 < argc) {
            profiles = argv[++i];
        } else if (!strcmp(argv[i], "-o") || !strcmp(argv[i], "--holdout") ||
                   !strcmp(argv[i], "--epochs") || !strcmp(argv[i], "--profiles")) {
            fprintf(stderr, "ferry train: %s needs a value (try --help)\n", argv[i]);
            return 2;
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "ferry train: unknown option %s (try --help)\n", argv[i]);
            return 2;
        } else if (ntraces < (int)(sizeof traces / sizeof traces[0])) {
            traces[ntraces++] = argv[i];
        } else {
            fprintf(stderr, "ferry train: more than %zu trace files\n",
                    sizeof traces / sizeof traces[0]);
            return 2;
        }
    }
    if (!out || ntraces == 0) {
        fprintf(stderr, "ferry train: %s (try --help)\n",
                !out ? "-o MODEL is missing" : "no trace file given");
        return 2;
    }
    struct pred *p = pred_new(NULL, 0);
    if (!p) {
        fprintf(stderr, "ferry train: out of memory\n");
        return 1;
    }
    long used = 0, held = 0, outcomes = 0, n_down = 0, n_drop = 0;
    char err[512];
    if (profiles && pred_set_profile_priors(p, profiles, err, sizeof err) < 0) {
        fprintf(stderr, "ferry train: --profiles: %s\n", err);
        goto cleanup;
    }
    for (int e = 0; e < epochs; e++) {
        for (int t = 0; t < ntraces; t++) {
            struct trace_record *recs = NULL;
            size_t n = 0;
            if (trace_read_file(traces[t], 0, &recs, &n, err, sizeof err) < 0) {
                fprintf(stderr, "ferry train: %s\n", err);
                goto cleanup;
            }
            for (size_t i = 0; i < n; i++) {
                if (trace_split_key(&recs[i]) < holdout) {
                    if (e == 0) held++;
                    continue;
                }
                if (e == 0) used++;
                for (int k = 0; k < recs[i].nout; k++) {
                    pred_observe_trace(p, &recs[i].f, &recs[i].out[k]);
                    if (e > 0) continue;
                    outcomes++;
                    image_plan_count(&recs[i].f, &recs[i].out[k].o.plan, &n_down, &n_drop);
                }
            }
            free(recs);
        }
    }
    if (used == 0) {
        fprintf(stderr, "ferry train: no training records (all %ld held out or traces empty)\n",
                held);
        goto cleanup;
    }
    if (pred_save(p, out, err, sizeof err) < 0) {
        fprintf(stderr, "ferry train: %s\n", err);
        goto cleanup;
    }
    printf("trained on %ld records (%ld outcomes, %d epoch%s), %ld held out; %d node%s -> %s\n",
           used, outcomes, epochs, epochs > 1 ? "s" : "", held, p->n, p->n == 1 ? "" : "s", out);
    /* what the ferry policy needs before it downscales or drops a user's image (min_obs) */
    printf("  outcomes with images downscaled %ld, dropped %ld\n", n_down, n_drop);
    /* quality labels count per model (nodes running one model learn together) */
    for (int i = 0; i < p->n; i++)
        printf("  %-16s %-24s %-5s quality labels %ld, latency samples %ld\n", p->node[i].name,
               p->node[i].model, p->node[i].role == FY_ROLE_CLOUD ? "cloud" : "edge",
               p->node[pred_quality_owner(p, i)].mgqp.n, p->node[i].milp.part[MILP_PREFILL].n);
    rc = 0;
cleanup:
    pred_free(p);
    return rc;
}
