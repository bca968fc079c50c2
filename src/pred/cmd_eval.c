/* cmd_eval — `ferry eval TRACE --model model.fy`: scores the predictors on the held-out
 * side of the split (trace_split_key < holdout): latency MAE and MAPE of the end-to-end
 * latency, TTFT MAE, and the share of outcomes inside the predicted 90 % interval
 * (mean ± 1.645 e2e_std_ms: is the reported uncertainty honest?), overall and per node; quality AUC (label: score >= 0.5), Brier score and a
 * 10-bin calibration table. The node priors (a fresh bank, no training) are scored on
 * the same records as the reference. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "pred/pred.h"
#include "pred/trace.h"
#include "util/grow.h"
#include "util/num.h"

struct lat_stat {
    double ae, ape;      /* end-to-end absolute and relative errors */
    double ttft_ae;      /* TTFT absolute error (samples with a measured TTFT) */
    long n, nttft;
    long covered;        /* e2e within the predicted 90 % interval (±1.645 sd) */
};

struct scores {
    struct lat_stat node[FY_MAX_NODES], all;
    struct pred__qpair *q;
    size_t nq, capq;
    double brier;
};

static int add_q(struct scores *s, double p, double y)
{
    struct pred__qpair *t = util_grow(s->q, &s->capq, s->nq, sizeof *t, 1024);
    if (!t) return -1;
    s->q = t;
    s->q[s->nq++] = (struct pred__qpair){p, y};
    s->brier += (p - y) * (p - y);
    return 0;
}

static void score(struct pred *p, const struct trace_record *r, struct scores *s)
{
    for (int k = 0; k < r->nout; k++) {
        const struct trace_outcome *t = &r->out[k];
        struct fy_estimate e;
        int rc = pred_estimate_trace(p, &r->f, t, &e);
        if (rc < 0) continue;
        int bi = pred_find(p, t->node);
        if (rc == 0 && !t->o.failed && t->o.e2e_ms > 0 && bi >= 0 && bi < FY_MAX_NODES) {
            double ae = fabs(e.e2e_ms - t->o.e2e_ms);
            int cov = ae <= 1.645 * e.e2e_std_ms;
            struct lat_stat *st[2] = {&s->node[bi], &s->all};
            for (int j = 0; j < 2; j++) {
                st[j]->ae += ae;
                st[j]->ape += ae / t->o.e2e_ms;
                st[j]->n++;
                st[j]->covered += cov;
                if (t->o.ttft_ms > 0) {
                    st[j]->ttft_ae += fabs(e.ttft_ms - t->o.ttft_ms);
                    st[j]->nttft++;
                }
            }
        }
        if (t->o.quality >= 0) add_q(s, e.q_mean, t->o.quality);
    }
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: ferry eval TRACE.jsonl... --model MODEL.fy [options]\n"
            "\n"
            "Scores a model from `ferry train` on trace records: latency MAE and MAPE\n"
            "overall and per node, quality AUC, Brier score and a calibration table; the\n"
            "untrained priors are scored on the same records for reference.\n"
            "docs/predictors.md.\n"
            "\n"
            "  --model FILE     the model file (required)\n"
            "  --holdout F      score the held-out records: split key below F (default 0.2,\n"
            "                   the same split as `ferry train`)\n"
            "  --all            score every record instead\n"
            "  --profiles PATH  profile file or folder (give what `ferry train` was\n"
            "                   given): a trace node of the same name, role and model as\n"
            "                   a [node] there is scored with its profile (service rates,\n"
            "                   max_seqs) and its prior columns start from it; nodes whose\n"
            "                   model is defined there start from its prior accuracy per\n"
            "                   task; others from the role default\n"
            "  -h, --help       this text\n"
            "\n"
            "Exit status: 0, 1 when a trace or the model could not be read, 2 on a usage\n"
            "error.\n");
}

int cmd_eval(int argc, char **argv)
{
    const char *model = NULL, *profiles = NULL;
    const char *traces[256];
    int ntraces = 0, rc = 1;
    double holdout = 0.2;
    int all = 0, split_given = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--model") && i + 1 < argc) {
            model = argv[++i];
        } else if (!strcmp(argv[i], "--all")) {
            all = 1;
            holdout = 1.0 + 1e-9;
        } else if (!strcmp(argv[i], "--holdout") && i + 1 < argc) {
            split_given = 1;
            if (util_parse_double(argv[++i], 0, 1, &holdout) < 0 || holdout == 0) {
                fprintf(stderr, "ferry eval: --holdout %s: expected a number in (0, 1]\n", argv[i]);
                return 2;
            }
        } else if (!strcmp(argv[i], "--profiles") && i + 1 < argc) {
            profiles = argv[++i];
        } else if (!strcmp(argv[i], "--model") || !strcmp(argv[i], "--holdout") ||
                   !strcmp(argv[i], "--profiles")) {
            fprintf(stderr, "ferry eval: %s needs a value (try --help)\n", argv[i]);
            return 2;
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "ferry eval: unknown option %s (try --help)\n", argv[i]);
            return 2;
        } else if (ntraces < (int)(sizeof traces / sizeof traces[0])) {
            traces[ntraces++] = argv[i];
        } else {
            fprintf(stderr, "ferry eval: more than %zu trace files\n",
                    sizeof traces / sizeof traces[0]);
            return 2;
        }
    }
    if (all && split_given) {
        fprintf(stderr, "ferry eval: --all and --holdout exclude each other (try --help)\n");
        return 2;
    }
    if (!model || ntraces == 0) {
        fprintf(stderr, "ferry eval: %s (try --help)\n",
                !model ? "--model MODEL is missing" : "no trace file given");
        return 2;
    }
    char err[512];
    struct pred *p = pred_load(model, NULL, 0, err, sizeof err);
    struct pred *prior = NULL;
    struct scores *sm = calloc(1, sizeof *sm), *sp = calloc(1, sizeof *sp);
    if (!p) {
        fprintf(stderr, "ferry eval: %s\n", err);
        goto cleanup;
    }
    prior = pred_new(NULL, 0);
    if (!prior || !sm || !sp) {
        fprintf(stderr, "ferry eval: out of memory\n");
        goto cleanup;
    }
    /* both banks see the profiled nodes of the trace with their profiles (the queue
     * test needs max_seqs; the prior its service rates), as the simulator and gateway do */
    if (profiles && (pred_set_profile_priors(prior, profiles, err, sizeof err) < 0 ||
                     pred_set_profile_priors(p, profiles, err, sizeof err) < 0)) {
        fprintf(stderr, "ferry eval: --profiles: %s\n", err);
        goto cleanup;
    }
    /* the reference bank has the same nodes in the same order, with their priors: per
     * task from the profiles, else the file's q0 (the role default unless the bank was
     * given another, pred_set_quality_prior) */
    for (int i = 0; i < p->n; i++) {
        struct fy_node n;
        memset(&n, 0, sizeof n);
        snprintf(n.name, sizeof n.name, "%s", p->node[i].name);
        snprintf(n.prof.model, sizeof n.prof.model, "%s", p->node[i].model);
        n.role = p->node[i].role;
        pred_node_profile(prior, n.name, n.role, n.prof.model, &n.prof);
        pred_add_node(prior, &n);
        if (p->node[i].mgqp.q0 != prior->node[i].mgqp.q0)
            pred_set_quality_prior(prior, i, p->node[i].mgqp.q0);
    }
    long nrec = 0;
    for (int t = 0; t < ntraces; t++) {
        struct trace_record *recs = NULL;
        size_t n = 0;
        if (trace_read_file(traces[t], 0, &recs, &n, err, sizeof err) < 0) {
            fprintf(stderr, "ferry eval: %s\n", err);
            goto cleanup;
        }
        for (size_t i = 0; i < n; i++) {
            if (trace_split_key(&recs[i]) >= holdout) continue;
            nrec++;
            score(p, &recs[i], sm);
            score(prior, &recs[i], sp);
        }
        free(recs);
    }
    if (nrec == 0) {
        fprintf(stderr, "ferry eval: no held-out records (try --all or a larger --holdout)\n");
        goto cleanup;
    }
    printf("evaluated %ld %srecords (%ld latency samples, %zu quality labels); model %s\n\n",
           nrec, all ? "" : "held-out ", sm->all.n, sm->nq, model);
    printf("latency (end-to-end)   %12s %10s %12s %10s %12s %10s %8s\n", "MAE ms", "MAPE %",
           "prior MAE", "prior %", "TTFT MAE", "90%PI %", "n");
    for (int i = 0; i <= p->n; i++) {
        const struct lat_stat *a = i < p->n ? &sm->node[i] : &sm->all;
        const struct lat_stat *b = i < p->n ? &sp->node[i] : &sp->all;
        if (!a->n) continue;
        printf("  %-20s %12.1f %10.2f %12.1f %10.2f %12.1f %10.1f %8ld\n",
               i < p->n ? p->node[i].name : "all", a->ae / a->n, 100 * a->ape / a->n,
               b->n ? b->ae / b->n : 0, b->n ? 100 * b->ape / b->n : 0,
               a->nttft ? a->ttft_ae / a->nttft : 0, 100.0 * a->covered / a->n, a->n);
    }
    if (sm->nq) {
        double brier = sm->brier / sm->nq, brier0 = sp->brier / sp->nq;
        /* calibration before AUC (pred__auc sorts) */
        double bs[10] = {0}, by[10] = {0};
        long bc[10] = {0};
        for (size_t i = 0; i < sm->nq; i++) {
            int k = (int)(sm->q[i].s * 10);
            if (k > 9) k = 9;
            if (k < 0) k = 0;
            bs[k] += sm->q[i].s;
            by[k] += sm->q[i].y;
            bc[k]++;
        }
        double auc = pred__auc(sm->q, sm->nq), auc0 = pred__auc(sp->q, sp->nq);
        printf("\nquality: AUC %.3f (prior %.3f), Brier %.4f (prior %.4f)\n", auc, auc0, brier,
               brier0);
        printf("calibration   %10s %10s %8s\n", "predicted", "observed", "n");
        double ece = 0;
        for (int k = 0; k < 10; k++) {
            if (!bc[k]) continue;
            printf("  [%.1f, %.1f)  %10.3f %10.3f %8ld\n", k / 10.0, (k + 1) / 10.0,
                   bs[k] / bc[k], by[k] / bc[k], bc[k]);
            ece += fabs(bs[k] - by[k]);
        }
        printf("expected calibration error %.4f\n", ece / sm->nq);
    }
    rc = 0;
cleanup:
    if (sm) free(sm->q);
    if (sp) free(sp->q);
    free(sm);
    free(sp);
    pred_free(prior);
    pred_free(p);
    return rc;
}
