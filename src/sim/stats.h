/* stats — bounded-memory latency histograms and confidence intervals for `ferry sim`.
 * The histogram has SIM_HIST_BINS log-spaced bins from 0.01 ms to 1e8 ms (ratio
 * 10^(10/4096) ≈ 1.0056 between bin edges), so a percentile is exact to 0.6 % and
 * memory does not grow with the number of requests. */
#ifndef FERRY_SIM_STATS_H
#define FERRY_SIM_STATS_H
#include <stdint.h>

#define SIM_HIST_BINS 4096
#define SIM_HIST_LO_MS 0.01
#define SIM_HIST_DECADES 10.0

struct sim_hist {
    uint64_t n;
    uint64_t bins[SIM_HIST_BINS];
};

void sim_hist_add(struct sim_hist *h, double ms);
/* q in [0,1]; the geometric middle of the bin holding the q-quantile; 0 when empty. */
double sim_hist_quantile(const struct sim_hist *h, double q);
/* Lower edge of bin i, ms. */
double sim_hist_edge(int i);

/* Mean and half-width of the 95 % confidence interval (Student t) of n samples;
 * half-width 0 for n < 2. */
void sim_mean_ci95(const double *x, int n, double *mean, double *half);

#endif
