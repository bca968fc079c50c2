/* stats — log histograms and confidence intervals (stats.h). */
#include "sim/stats.h"

#include <math.h>

static const double g_bins_per_decade = SIM_HIST_BINS / SIM_HIST_DECADES;

void sim_hist_add(struct sim_hist *h, double ms)
{
    int i = 0;
    if (ms > SIM_HIST_LO_MS) {
        double b = log10(ms / SIM_HIST_LO_MS) * g_bins_per_decade;
        i = b >= SIM_HIST_BINS - 1 ? SIM_HIST_BINS - 1 : (int)b;
    }
    h->bins[i]++;
    h->n++;
}

double sim_hist_edge(int i) { return SIM_HIST_LO_MS * pow(10.0, i / g_bins_per_decade); }

double sim_hist_quantile(const struct sim_hist *h, double q)
{
    if (h->n == 0) return 0;
    if (q < 0) q = 0;
    if (q > 1) q = 1;
    /* the smallest bin whose cumulative count reaches ceil(q n) (at least 1) */
    uint64_t target = (uint64_t)ceil(q * (double)h->n);
    if (target < 1) target = 1;
    uint64_t c = 0;
    for (int i = 0; i < SIM_HIST_BINS; i++) {
        c += h->bins[i];
        if (c >= target) return sqrt(sim_hist_edge(i) * sim_hist_edge(i + 1));
    }
    return sim_hist_edge(SIM_HIST_BINS);
}

/* Two-sided 95 % Student t quantiles for 1..30 degrees of freedom. */
static const double g_t95[31] = {
    0, 12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
    2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060,
    2.056, 2.052, 2.048, 2.045, 2.042,
};

void sim_mean_ci95(const double *x, int n, double *mean, double *half)
{
    double s = 0;
    for (int i = 0; i < n; i++) s += x[i];
    *mean = n ? s / n : 0;
    *half = 0;
    if (n < 2) return;
    double v = 0;
    for (int i = 0; i < n; i++) v += (x[i] - *mean) * (x[i] - *mean);
    v /= n - 1;
    double t = n - 1 <= 30 ? g_t95[n - 1] : 1.96;
    *half = t * sqrt(v / n);
}
