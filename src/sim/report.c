/* report — table, CSV and plots of simulation results (report.h). */
#include "sim/report.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "util/num.h"

/* ==== metrics ====================================================================== */

static double safe_div(double a, double b) { return b > 0 ? a / b : 0; }
static long answered(const struct sim_result *x) { return x->requests - x->failed; }

static double m_e2e(const struct sim_result *x) { return safe_div(x->sum_e2e_ms, answered(x)); }
static double m_p50(const struct sim_result *x) { return sim_hist_quantile(&x->e2e, 0.50); }
static double m_p95(const struct sim_result *x) { return sim_hist_quantile(&x->e2e, 0.95); }
static double m_p99(const struct sim_result *x) { return sim_hist_quantile(&x->e2e, 0.99); }
static double m_ttft(const struct sim_result *x) { return safe_div(x->sum_ttft_ms, answered(x)); }
static double m_ttft95(const struct sim_result *x) { return sim_hist_quantile(&x->ttft, 0.95); }
static double m_compl(const struct sim_result *x) { return 100 * safe_div(x->completed, x->requests); }
static double m_acc(const struct sim_result *x) { return 100 * safe_div(x->correct, x->requests); }
static double m_meanp(const struct sim_result *x) { return safe_div(x->sum_p, x->requests); }
static double m_cost(const struct sim_result *x) { return 1000 * safe_div(x->sum_cost_usd, x->requests); }
static double m_mb(const struct sim_result *x) { return safe_div(x->sum_bytes_up, answered(x)) / 1e6; }
static double m_fail(const struct sim_result *x) { return 100 * safe_div(x->failed, x->requests); }
static double m_up(const struct sim_result *x) { return safe_div(x->sum_up_ms, answered(x)); }
static double m_queue(const struct sim_result *x) { return safe_div(x->sum_queue_ms, answered(x)); }
static double m_vision(const struct sim_result *x) { return safe_div(x->sum_vision_ms, answered(x)); }
static double m_prefill(const struct sim_result *x) { return safe_div(x->sum_prefill_ms, answered(x)); }
static double m_decode(const struct sim_result *x) { return safe_div(x->sum_decode_ms, answered(x)); }
static double m_dlg_budget(const struct sim_result *x) { return 100 * safe_div(x->dialogues_in_budget, x->dialogues); }
static double m_dlg_s(const struct sim_result *x) { return safe_div(x->sum_dialogue_ms, x->dialogues) / 1000; }
static double m_dlg_usd(const struct sim_result *x) { return safe_div(x->sum_dialogue_usd, x->dialogues); }
static double m_dlg_score(const struct sim_result *x) { return safe_div(x->dialogue_turns_correct, x->dialogue_turns); }
static double m_dec_us(const struct sim_result *x) { return safe_div(x->decide_ns, x->requests) / 1000; }

struct metric {
    const char *head;   /* table header */
    const char *csv;    /* CSV column */
    const char *fmt;    /* printf format of a value */
    double (*get)(const struct sim_result *);
    int in_table;
};

static const struct metric g_metrics[] = {
    {"e2e ms", "e2e_mean_ms", "%.1f", m_e2e, 1},
    {"p50", "e2e_p50_ms", "%.0f", m_p50, 1},
    {"p95", "e2e_p95_ms", "%.0f", m_p95, 1},
    {"p99", "e2e_p99_ms", "%.0f", m_p99, 1},
    {"ttft ms", "ttft_mean_ms", "%.1f", m_ttft, 1},
    {"ttft p95", "ttft_p95_ms", "%.0f", m_ttft95, 1},
    {"compl %", "completion_pct", "%.2f", m_compl, 1},
    {"acc %", "accuracy_pct", "%.2f", m_acc, 1},
    {"$/1k", "cost_usd_per_1k", "%.3f", m_cost, 1},
    {"MB/req", "mb_up_per_req", "%.3f", m_mb, 1},
    {"fail %", "failed_pct", "%.2f", m_fail, 1},
    {"", "mean_p_correct", "%.4f", m_meanp, 0},
    {"", "up_ms", "%.2f", m_up, 0},
    {"", "queue_ms", "%.2f", m_queue, 0},
    {"", "vision_ms", "%.2f", m_vision, 0},
    {"", "prefill_ms", "%.2f", m_prefill, 0},
    {"", "decode_ms", "%.2f", m_decode, 0},
    {"", "dialogues_in_budget_pct", "%.2f", m_dlg_budget, 0},
    {"", "dialogue_latency_s", "%.3f", m_dlg_s, 0},
    {"", "dialogue_cost_usd", "%.5f", m_dlg_usd, 0},
    {"", "dialogue_turn_accuracy", "%.4f", m_dlg_score, 0},
};
#define NMETRICS (sizeof g_metrics / sizeof g_metrics[0])

int sim_report_metric_known(const char *name)
{
    for (size_t m = 0; m < NMETRICS; m++)
        if (!strcmp(g_metrics[m].csv, name)) return 1;
    return 0;
}

const char *sim_report_metric_names(void)
{
    static char names[1024];
    if (!names[0]) {
        size_t n = 0;
        for (size_t m = 0; m < NMETRICS && n < sizeof names; m++)
            n += (size_t)snprintf(names + n, sizeof names - n, "%s%s", m ? ", " : "", g_metrics[m].csv);
    }
    return names;
}

/* Is metric m a column of the table? The experiment's list, else the defaults. */
static int in_table(const struct sim_report *r, size_t m)
{
    const char *list = r->setup->exp.metrics;
    if (!list[0]) return g_metrics[m].in_table;
    size_t len = strlen(g_metrics[m].csv);
    for (const char *p = list; (p = strstr(p, g_metrics[m].csv)); p += len) {
        int start = p == list || p[-1] == ',' || p[-1] == ' ';
        int end = p[len] == '\0' || p[len] == ',' || p[len] == ' ';
        if (start && end) return 1;
    }
    return 0;
}

static const char *head_of(size_t m)
{
    return g_metrics[m].head[0] ? g_metrics[m].head : g_metrics[m].csv;
}

/* mean and CI of a metric over seeds */
static void agg(const struct sim_report *r, int k, int p, double (*get)(const struct sim_result *),
                double *mean, double *half)
{
    double v[4096];
    int n = r->nseeds < 4096 ? r->nseeds : 4096;
    for (int s = 0; s < n; s++) v[s] = get(sim_report_get(r, k, p, s));
    sim_mean_ci95(v, n, mean, half);
}

/* ==== table ======================================================================== */

static void cell(FILE *out, const char *fmt, double mean, double half, int with_ci, int width)
{
    char a[64], b[64], c[160];
    snprintf(a, sizeof a, fmt, mean);
    if (with_ci) {
        snprintf(b, sizeof b, fmt, half);
        snprintf(c, sizeof c, "%s±%s", a, b);
    } else {
        snprintf(c, sizeof c, "%s", a);
    }
    fprintf(out, " %*s", width, c);
}

void sim_report_table(const struct sim_report *r, FILE *out)
{
    const struct sim_setup *s = r->setup;
    int ci = r->nseeds > 1;
    int w = ci ? 15 : 9;
    char amount[96];
    if (s->exp.requests > 0) snprintf(amount, sizeof amount, "%ld requests", s->exp.requests);
    else snprintf(amount, sizeof amount, "arrivals for %g s", s->exp.duration_s);
    fprintf(out, "experiment %s: workload %s, %s per run, %d seed%s (from %llu)%s\n",
            s->exp.name, s->wl.name, amount, r->nseeds, r->nseeds > 1 ? "s" : "",
            (unsigned long long)s->exp.seed, ci ? "; mean ± 95 % CI over seeds" : "");
    fprintf(out, "nodes:");
    for (int i = 0; i < s->nnodes; i++)
        fprintf(out, " %s (%s, %s, %s)", s->nodes[i].name,
                s->nodes[i].role == FY_ROLE_CLOUD ? "cloud" : "edge", s->nodes[i].prof.model,
                s->links[i].name);
    fprintf(out, "\n");
    for (int k = 0; k < r->nsweep; k++) {
        if (r->sweep_key) fprintf(out, "\n[%s = %s]\n", r->sweep_key, r->sweep_val[k]);
        else fprintf(out, "\n");
        fprintf(out, "%-14s %7s", "policy", "n");
        for (size_t m = 0; m < NMETRICS; m++)
            if (in_table(r, m)) fprintf(out, " %*s", w, head_of(m));
        fprintf(out, "\n");
        for (int p = 0; p < r->npol; p++) {
            double nmean, nh;
            double v[4096];
            int n = r->nseeds < 4096 ? r->nseeds : 4096;
            for (int si = 0; si < n; si++) v[si] = (double)sim_report_get(r, k, p, si)->requests;
            sim_mean_ci95(v, n, &nmean, &nh);
            fprintf(out, "%-14s %7.0f", r->pol_names[p], nmean);
            for (size_t m = 0; m < NMETRICS; m++) {
                if (!in_table(r, m)) continue;
                double mean, half;
                agg(r, k, p, g_metrics[m].get, &mean, &half);
                cell(out, g_metrics[m].fmt, mean, half, ci, w);
            }
            fprintf(out, "\n");
        }
        /* per node: share of requests answered, utilisation */
        fprintf(out, "%-14s", "share % / util %");
        for (int i = 0; i < s->nnodes; i++) fprintf(out, " %17s", s->nodes[i].name);
        fprintf(out, "\n");
        for (int p = 0; p < r->npol; p++) {
            fprintf(out, "%-14s", r->pol_names[p]);
            for (int i = 0; i < s->nnodes; i++) {
                double sh = 0, ut = 0;
                for (int si = 0; si < r->nseeds; si++) {
                    const struct sim_result *x = sim_report_get(r, k, p, si);
                    sh += 100 * safe_div(x->node[i].requests, x->requests);
                    ut += 100 * safe_div(x->node[i].busy_ms, x->makespan_ms);
                }
                char c[40];
                snprintf(c, sizeof c, "%.1f / %.1f", sh / r->nseeds, ut / r->nseeds);
                fprintf(out, " %17s", c);
            }
            fprintf(out, "\n");
        }
    }
    if (s->wl.turns_max > 1) {
        for (int k = 0; k < r->nsweep; k++) {
            fprintf(out, "\ndialogues%s%s%s: within budget %% (", r->sweep_key ? " [" : "",
                    r->sweep_key ? r->sweep_val[k] : "", r->sweep_key ? "]" : "");
            if (s->exp.dialogue_budget_ms > 0) fprintf(out, "latency <= %g s", s->exp.dialogue_budget_ms / 1000);
            if (s->exp.dialogue_budget_ms > 0 && s->exp.dialogue_budget_usd > 0) fprintf(out, ", ");
            if (s->exp.dialogue_budget_usd > 0) fprintf(out, "cost <= %g USD", s->exp.dialogue_budget_usd);
            if (!(s->exp.dialogue_budget_ms > 0) && !(s->exp.dialogue_budget_usd > 0)) fprintf(out, "no budget");
            fprintf(out, "), latency s, cost USD and turn accuracy per dialogue\n");
            for (int p = 0; p < r->npol; p++) {
                double a, ha, b, hb, c, hc, d, hd;
                agg(r, k, p, m_dlg_budget, &a, &ha);
                agg(r, k, p, m_dlg_s, &b, &hb);
                agg(r, k, p, m_dlg_usd, &c, &hc);
                agg(r, k, p, m_dlg_score, &d, &hd);
                fprintf(out, "%-14s %8.2f %% %9.2f s %10.4f USD %8.3f\n", r->pol_names[p], a, b, c, d);
            }
        }
    }
    if (s->exp.privacy_edge_share > 0) {
        fprintf(out, "\nprivacy violations (edge-only requests sent to a cloud node), per run:");
        for (int p = 0; p < r->npol; p++) {
            double tot = 0;
            for (int k = 0; k < r->nsweep; k++)
                for (int si = 0; si < r->nseeds; si++)
                    tot += (double)sim_report_get(r, k, p, si)->privacy_violations;
            fprintf(out, " %s %.1f%s", r->pol_names[p], tot / (r->nsweep * r->nseeds),
                    p + 1 < r->npol ? "," : "\n");
        }
    }
    double ncas = 0;
    for (int k = 0; k < r->nsweep; k++)
        for (int p = 0; p < r->npol; p++)
            for (int si = 0; si < r->nseeds; si++) ncas += sim_report_get(r, k, p, si)->plans_cascade;
    if (ncas > 0) { /* only when some policy used cascades: other reports stay as they were */
        fprintf(out, "\ncascades (%% of requests with a cascade plan / %% of requests escalated):");
        for (int p = 0; p < r->npol; p++) {
            double pc = 0, pe = 0;
            for (int k = 0; k < r->nsweep; k++)
                for (int si = 0; si < r->nseeds; si++) {
                    const struct sim_result *x = sim_report_get(r, k, p, si);
                    pc += 100 * safe_div(x->plans_cascade, x->requests);
                    pe += 100 * safe_div(x->escalated, x->requests);
                }
            fprintf(out, " %s %.1f / %.1f%s", r->pol_names[p], pc / (r->nsweep * r->nseeds),
                    pe / (r->nsweep * r->nseeds), p + 1 < r->npol ? "," : "\n");
        }
    }
    if (r->timing) {
        fprintf(out, "\ndecision time, µs per request (wall clock; varies between runs):");
        for (int p = 0; p < r->npol; p++) {
            double tot = 0;
            for (int k = 0; k < r->nsweep; k++)
                for (int si = 0; si < r->nseeds; si++) tot += m_dec_us(sim_report_get(r, k, p, si));
            fprintf(out, " %s %.2f%s", r->pol_names[p], tot / (r->nsweep * r->nseeds),
                    p + 1 < r->npol ? "," : "\n");
        }
    }
}

/* ==== CSV ========================================================================== */

int sim_report_csv(const struct sim_report *r, const char *path, char *err, size_t errlen)
{
    FILE *fp = fopen(path, "w");
    if (!fp) {
        snprintf(err, errlen, "--csv %s: %s", path, strerror(errno));
        return -1;
    }
    const struct sim_setup *s = r->setup;
    fprintf(fp, "experiment,sweep_key,sweep_value,policy,seed,requests");
    for (size_t m = 0; m < NMETRICS; m++) fprintf(fp, ",%s", g_metrics[m].csv);
    fprintf(fp, ",split_plans,downscale_plans,drop_plans,privacy_violations");
    for (int i = 0; i < s->nnodes; i++)
        fprintf(fp, ",share_%s,util_%s,aux_%s", s->nodes[i].name, s->nodes[i].name, s->nodes[i].name);
    if (r->timing) fprintf(fp, ",decide_us");
    fprintf(fp, ",cascade_plans,escalated\n"); /* appended last: parsers by name or position keep working */
    for (int k = 0; k < r->nsweep; k++)
        for (int p = 0; p < r->npol; p++)
            for (int si = 0; si < r->nseeds; si++) {
                const struct sim_result *x = sim_report_get(r, k, p, si);
                fprintf(fp, "%s,%s,%s,%s,%llu,%ld", s->exp.name, r->sweep_key ? r->sweep_key : "",
                        r->sweep_key ? r->sweep_val[k] : "", r->pol_names[p],
                        (unsigned long long)(s->exp.seed + (uint64_t)si), x->requests);
                for (size_t m = 0; m < NMETRICS; m++) {
                    fputc(',', fp);
                    fprintf(fp, g_metrics[m].fmt, g_metrics[m].get(x));
                }
                fprintf(fp, ",%ld,%ld,%ld,%ld", x->plans_split, x->plans_downscale, x->plans_drop,
                        x->privacy_violations);
                for (int i = 0; i < s->nnodes; i++)
                    fprintf(fp, ",%.4f,%.4f,%ld", safe_div(x->node[i].requests, x->requests),
                            safe_div(x->node[i].busy_ms, x->makespan_ms), x->node[i].aux_requests);
                if (r->timing) fprintf(fp, ",%.3f", m_dec_us(x));
                fprintf(fp, ",%ld,%ld\n", x->plans_cascade, x->escalated);
            }
    if (fclose(fp) != 0) {
        snprintf(err, errlen, "--csv %s: write failed", path);
        return -1;
    }
    return 0;
}

/* ==== plots ======================================================================== */

static FILE *open_in(const char *dir, const char *name, char *err, size_t errlen)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *fp = fopen(path, "w");
    if (!fp) snprintf(err, errlen, "--plot: %s: %s", path, strerror(errno));
    return fp;
}

/* gnuplot strings: policy names contain only [a-z0-9-], but quote defensively */
static void gp_str(FILE *fp, const char *s)
{
    fputc('"', fp);
    for (; *s; s++)
        if (*s != '"' && *s != '\\') fputc(*s, fp);
    fputc('"', fp);
}

int sim_report_plots(const struct sim_report *r, const char *dir, char *err, size_t errlen)
{
    if (mkdir(dir, 0777) < 0 && errno != EEXIST) {
        snprintf(err, errlen, "--plot %s: %s", dir, strerror(errno));
        return -1;
    }
    FILE *gp = open_in(dir, "plots.gp", err, errlen);
    if (!gp) return -1;
    const char *ext = r->png ? "png" : "svg";
    fprintf(gp, "# written by ferry sim; run: gnuplot plots.gp\n%s\n"
                "set termoption noenhanced\nset grid\nset key bottom right\n",
            r->png ? "set terminal pngcairo size 800,500" : "set terminal svg size 800,500 dynamic");
    /* latency CDF per sweep value: data from the seed-merged histograms */
    for (int k = 0; k < r->nsweep; k++) {
        char name[64];
        snprintf(name, sizeof name, "cdf-%d.dat", k);
        FILE *fp = open_in(dir, name, err, errlen);
        if (!fp) { fclose(gp); return -1; }
        for (int p = 0; p < r->npol; p++) {
            fprintf(fp, "# %s\n", r->pol_names[p]);
            uint64_t tot = 0, c = 0;
            for (int si = 0; si < r->nseeds; si++) tot += sim_report_get(r, k, p, si)->e2e.n;
            for (int b = 0; b < SIM_HIST_BINS && tot; b++) {
                uint64_t add = 0;
                for (int si = 0; si < r->nseeds; si++) add += sim_report_get(r, k, p, si)->e2e.bins[b];
                if (!add) continue;
                c += add;
                fprintf(fp, "%.3f %.6f\n", sim_hist_edge(b + 1), (double)c / tot);
            }
            fprintf(fp, "\n\n");
        }
        fclose(fp);
        fprintf(gp, "set output 'latency-cdf-%d.%s'\nset logscale x\n", k, ext);
        fprintf(gp, "set xlabel 'end-to-end latency (ms)'\nset ylabel 'CDF'\nset title ");
        char title[256];
        if (r->sweep_key) snprintf(title, sizeof title, "%s: %s = %s", r->setup->exp.name,
                                   r->sweep_key, r->sweep_val[k]);
        else snprintf(title, sizeof title, "%s", r->setup->exp.name);
        gp_str(gp, title);
        fprintf(gp, "\nplot ");
        for (int p = 0; p < r->npol; p++) {
            fprintf(gp, "'%s' index %d with steps lw 2 title ", name, p);
            gp_str(gp, r->pol_names[p]);
            fprintf(gp, p + 1 < r->npol ? ", \\\n     " : "\n");
        }
        fprintf(gp, "unset logscale x\n");
    }
    /* latency vs completion (last sweep value; with a sweep, every value) */
    FILE *sc = open_in(dir, "scatter.dat", err, errlen);
    if (!sc) { fclose(gp); return -1; }
    for (int p = 0; p < r->npol; p++) {
        fprintf(sc, "# %s\n", r->pol_names[p]);
        for (int k = 0; k < r->nsweep; k++) {
            double e2e, h1, comp, h2;
            agg(r, k, p, m_e2e, &e2e, &h1);
            agg(r, k, p, m_compl, &comp, &h2);
            fprintf(sc, "%.3f %.3f\n", e2e, comp);
        }
        fprintf(sc, "\n\n");
    }
    fclose(sc);
    fprintf(gp, "set output 'latency-vs-completion.%s'\nset xlabel 'mean end-to-end latency (ms)'\n"
                "set ylabel 'completion rate (%%)'\nset title 'latency vs completion'\nplot ", ext);
    for (int p = 0; p < r->npol; p++) {
        fprintf(gp, "'scatter.dat' index %d with linespoints pt 7 ps 1.5 title ", p);
        gp_str(gp, r->pol_names[p]);
        fprintf(gp, p + 1 < r->npol ? ", \\\n     " : "\n");
    }
    /* sweep: latency and completion against the swept value */
    if (r->sweep_key) {
        FILE *sw = open_in(dir, "sweep.dat", err, errlen);
        if (!sw) { fclose(gp); return -1; }
        for (int p = 0; p < r->npol; p++) {
            fprintf(sw, "# %s: value e2e_ms e2e_ci p95_ms completion_pct completion_ci\n",
                    r->pol_names[p]);
            for (int k = 0; k < r->nsweep; k++) {
                double e2e, h1, p95, h3, comp, h2;
                agg(r, k, p, m_e2e, &e2e, &h1);
                agg(r, k, p, m_p95, &p95, &h3);
                agg(r, k, p, m_compl, &comp, &h2);
                fprintf(sw, "%s %.3f %.3f %.3f %.3f %.3f\n", r->sweep_val[k], e2e, h1, p95, comp, h2);
            }
            fprintf(sw, "\n\n");
        }
        fclose(sw);
        /* numeric sweep values on a numeric axis, others (link names) as categories */
        int numeric = 1;
        for (int k = 0; k < r->nsweep; k++) {
            double x;
            if (util_parse_double(r->sweep_val[k], -DBL_MAX, DBL_MAX, &x) < 0) numeric = 0;
        }
        for (int which = 0; which < 2; which++) {
            fprintf(gp, "set output 'sweep-%s.%s'\nset xlabel ", which ? "completion" : "latency", ext);
            gp_str(gp, r->sweep_key);
            fprintf(gp, "\nset ylabel '%s'\nset title 'sweep'\nset offsets %s\nplot ",
                    which ? "completion rate (%)" : "mean end-to-end latency (ms)",
                    numeric ? "0, 0, 0, 0" : "0.3, 0.3, 0, 0");
            for (int p = 0; p < r->npol; p++) {
                fprintf(gp, "'sweep.dat' index %d using %s:%d:%d%s with yerrorlines title ", p,
                        numeric ? "1" : "0", which ? 5 : 2, which ? 6 : 3,
                        numeric ? "" : ":xtic(1)");
                gp_str(gp, r->pol_names[p]);
                fprintf(gp, p + 1 < r->npol ? ", \\\n     " : "\n");
            }
        }
    }
    fclose(gp);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "cd '%s' && gnuplot plots.gp 2>&1", dir);
    if (strchr(dir, '\'')) {
        snprintf(err, errlen, "--plot %s: folder names with quotes are not supported", dir);
        return -1;
    }
    int st = system(cmd);
    if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        snprintf(err, errlen, "--plot %s: gnuplot failed (is gnuplot installed? the data and "
                 "plots.gp are in the folder)", dir);
        return -1;
    }
    return 0;
}
