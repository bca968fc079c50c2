/* report — `ferry sim` output: the table on stdout, CSV, plots (gnuplot) (docs/simulator.md
 * "Output"). Results are indexed [sweep value][policy][seed]. Everything printed is a
 * pure function of the results except the decision time, which is wall-clock: it goes
 * on its own lines (table) or its own column (CSV) and is left out with timing = 0. */
#ifndef FERRY_SIM_REPORT_H
#define FERRY_SIM_REPORT_H
#include <stdio.h>

#include "sim/engine.h"
#include "sim/experiment.h"

struct sim_report {
    const struct sim_setup *setup;   /* of the first sweep value (names, nodes) */
    int nsweep;                      /* >= 1 (1 = no sweep) */
    const char *sweep_key;           /* NULL without a sweep */
    char (*sweep_val)[64];
    int npol, nseeds;
    const char *const *pol_names;
    struct sim_result **res;         /* res[(k * npol + p) * nseeds + s] */
    int timing;                      /* print decision times */
    int png;                         /* plots as PNG instead of SVG */
};

static inline const struct sim_result *sim_report_get(const struct sim_report *r, int k, int p, int s)
{
    return r->res[((size_t)k * r->npol + p) * r->nseeds + s];
}

/* Metric names (the CSV column names) for [experiment] metrics. */
int sim_report_metric_known(const char *name);
const char *sim_report_metric_names(void);   /* "e2e_mean_ms, e2e_p50_ms, ..." */

void sim_report_table(const struct sim_report *r, FILE *out);
int sim_report_csv(const struct sim_report *r, const char *path, char *err, size_t errlen);
/* Writes data files and a gnuplot script into dir and runs gnuplot: latency-cdf-K.svg,
 * latency-vs-completion.svg and, with a sweep, sweep-*.svg (.png with r->png). */
int sim_report_plots(const struct sim_report *r, const char *dir, char *err, size_t errlen);

#endif
