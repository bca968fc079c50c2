/* cmd_sim — `ferry sim`: run an experiment file for every policy, seed and sweep value
 * and report (docs/simulator.md). Also `ferry sim --image-pool DIR` (measure a folder
 * of images into the workload image-pool CSV) and `ferry sim --list`. */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "feat/image.h"
#include "feat/text.h"
#include "node/profile.h"
#include "policy/policy.h"
#include "pred/pred.h"
#include "sim/engine.h"
#include "sim/experiment.h"
#include "sim/report.h"
#include "util/file.h"
#include "util/num.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: ferry sim EXPERIMENT.ini [options]\n"
            "       ferry sim --image-pool DIR [--out FILE]\n"
            "       ferry sim --list\n"
            "       ferry sim --nodes [PROFILES_DIR]\n"
            "\n"
            "Simulates a cloud-edge MLLM cluster: every policy of the experiment, every seed\n"
            "and sweep value; prints a table (docs/simulator.md explains every column).\n"
            "\n"
            "  --policies a,b       policies to run (default: the experiment's; --list)\n"
            "  --seeds N            seeds per policy: seed, seed+1, ... (default: the\n"
            "                       experiment's [experiment] seeds, else 1)\n"
            "  --requests N         requests per run (default: the experiment's, else 1000)\n"
            "  --set SECTION.KEY=V  override any experiment, profile or workload key\n"
            "                       (e.g. arrivals.rate_rps=20, node.edge.max_seqs=8,\n"
            "                       link.wan-300.up_mbps=50, class.yesno.weight=2); repeatable\n"
            "  --csv FILE           one CSV row per (sweep value, policy, seed)\n"
            "  --trace FILE         one JSON line per request (pred/trace.h format)\n"
            "  --counterfactual     with --trace: also the outcome on every other node\n"
            "  --counterfactual-plans  the same, and on every node also the outcomes with\n"
            "                       the images downscaled to 448 px and dropped\n"
            "  --plot DIR           gnuplot SVGs: latency CDF, latency vs completion, sweep\n"
            "  --png                with --plot: PNG files instead of SVG\n"
            "  --no-timing          leave out the (wall-clock) decision time: output is then\n"
            "                       byte-identical across runs and machines\n"
            "  --image-pool DIR     measure every image of DIR (feat_image_analyze) and print\n"
            "                       the image-pool CSV used by workloads\n"
            "  --out FILE           with --image-pool: write the CSV there (default stdout)\n"
            "  --list               the policies, one line each, and exit\n"
            "  --nodes [DIR]        the nodes of a profiles folder (default $FERRY_DATA/profiles,\n"
            "                       else data/profiles) with their derived service rates, then\n"
            "                       MGQP's prior P(complete) of each node per task\n"
            "  -h, --help           this text\n"
            "\n"
            "Exit status: 0, 1 when the experiment or a run failed, 2 on a usage error.\n");
}

/* ==== --image-pool ================================================================= */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

#define POOL_MAX_FILE (64u << 20) /* bytes of one image file of --image-pool */

static int image_pool(const char *dir, const char *out_path)
{
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "ferry sim: --image-pool %s: %s\n", dir, strerror(errno));
        return 1;
    }
    char *names[SIM_POOL_MAX];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < SIM_POOL_MAX) {
        if (e->d_name[0] == '.') continue;
        names[n] = strdup(e->d_name);
        if (names[n]) n++;
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof names[0], cmp_str);
    FILE *out = out_path ? fopen(out_path, "w") : stdout;
    if (!out) {
        fprintf(stderr, "ferry sim: --out %s: %s\n", out_path, strerror(errno));
        for (int i = 0; i < n; i++) free(names[i]);
        return 1;
    }
    fprintf(out, "name,format,width,height,bytes,sobel_mean,entropy,laplacian_var,c_res,c_edge,"
                 "c_ent,c_lap,c_img,tok_qwen2vl,tok_llava,tok_generic\n");
    struct feat_image_opts o;
    feat_image_opts_default(&o);
    int rows = 0;
    for (int i = 0; i < n; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        struct stat st;
        if (stat(path, &st) < 0 || !S_ISREG(st.st_mode)) continue;
        uint8_t *buf;
        size_t got;
        struct fy_image_features f;
        char err[1200];
        if (util_read_file(path, POOL_MAX_FILE, &buf, &got, err, sizeof err) < 0) {
            fprintf(stderr, "ferry sim: %s (skipped)\n", err);
            continue;
        }
        if (feat_image_sniff(buf, got) == FY_FMT_UNKNOWN) {
            free(buf);
            continue; /* not an image (e.g. SOURCES.md) */
        }
        int rc = feat_image_analyze(buf, got, &o, &f, err, sizeof err);
        free(buf);
        if (rc < 0) {
            fprintf(stderr, "ferry sim: %s: %s (skipped)\n", path, err);
            continue;
        }
        fprintf(out, "%s,%s,%d,%d,%zu,%.4f,%.5f,%.3f,%.4f,%.4f,%.4f,%.4f,%.4f,%d,%d,%d\n", names[i],
                feat_image_format_name(f.format), f.width, f.height, f.bytes, f.sobel_mean,
                f.entropy, f.laplacian_var, f.c_res, f.c_edge,
                f.c_ent, f.c_lap, f.c_img, f.tokens[FY_VT_QWEN2VL], f.tokens[FY_VT_LLAVA],
                f.tokens[FY_VT_GENERIC]);
        rows++;
    }
    for (int i = 0; i < n; i++) free(names[i]);
    if (out != stdout) fclose(out);
    if (rows == 0) {
        fprintf(stderr, "ferry sim: --image-pool %s: no readable images\n", dir);
        return 1;
    }
    return 0;
}

/* ==== --nodes ===================================================================== */

static int list_nodes(const char *dir)
{
    char def[600];
    if (!dir) {
        const char *env = getenv("FERRY_DATA");
        snprintf(def, sizeof def, "%s/profiles", env && *env ? env : "data");
        dir = def;
    }
    struct node_lib lib;
    node_lib_init(&lib);
    char err[768];
    if (node_lib_load_dir(&lib, dir, err, sizeof err) < 0) {
        fprintf(stderr, "ferry sim: %s\n", err);
        node_lib_fini(&lib);
        return 1;
    }
    printf("%-16s %-5s %-16s %-16s %5s %10s %10s %9s %8s %-10s\n", "node", "role", "device",
           "model", "seqs", "prefill/s", "decode/s", "vision ms", "$/hour", "link");
    int bad = 0;
    for (int i = 0; i < lib.nnode; i++) {
        struct fy_node n;
        if (node_lib_resolve(&lib, lib.node[i].name, &n, err, sizeof err) < 0 ||
            (lib.node[i].link[0] && node_lib_check_link(&lib, lib.node[i].link, err,
                                                        sizeof err) < 0)) {
            fprintf(stderr, "ferry sim: %s\n", err); /* a link as an experiment would */
            bad = 1;
            continue;
        }
        printf("%-16s %-5s %-16s %-16s %5d %10.0f %10.1f %9.4f %8.2f %-10s\n", n.name,
               n.role == FY_ROLE_CLOUD ? "cloud" : "edge", lib.node[i].device, n.prof.model,
               n.prof.max_seqs, n.prof.prefill_tps, n.prof.decode_tps, n.prof.vision_ms_per_token,
               n.prof.usd_per_hour, lib.node[i].link);
    }
    /* MGQP's starting point per task (pred.h pred_node_prior): the model's prior.T or
     * cap.T (node_model_task_priors), else the role default, marked '*' */
    printf("\nprior P(complete) per task (model profile; * = role default, edge %.2f, "
           "cloud %.2f)\n", PRED_PRIOR_EDGE, PRED_PRIOR_CLOUD);
    printf("%-16s %-16s", "node", "model");
    for (int t = 0; t < FY_TASK__N; t++)
        printf(" %7s%s", feat_task_name((enum fy_task)t), t + 1 < FY_TASK__N ? " " : "");
    printf("\n");
    for (int i = 0; i < lib.nnode; i++) {
        struct fy_node n;
        if (node_lib_resolve(&lib, lib.node[i].name, &n, err, sizeof err) < 0) continue;
        printf("%-16s %-16s", n.name, n.prof.model);
        for (int t = 0; t < FY_TASK__N; t++) {
            int own = n.prof.q_prior[t] > 0 && n.prof.q_prior[t] < 1;
            printf("  %6.3f%c", pred_node_prior(&n, t), own ? ' ' : '*');
        }
        printf("\n");
    }
    node_lib_fini(&lib);
    return bad;
}

/* ==== main ========================================================================= */

static int need_arg(int i, int argc, const char *opt)
{
    if (i + 1 >= argc) {
        fprintf(stderr, "ferry sim: %s needs a value (try --help)\n", opt);
        return 0;
    }
    return 1;
}

int cmd_sim(int argc, char **argv)
{
    const char *exp_path = NULL, *csv = NULL, *trace = NULL, *plot = NULL, *pool = NULL,
               *pool_out = NULL;
    int counterfactual = 0, timing = 1, png = 0;
    struct sim_entries es = {0};
    struct sim_entries sets = {0};
    char err[1024];
    int status = 1;
    struct sim_setup *setups = NULL;
    struct sim_result **res = NULL;
    size_t nres = 0;
    FILE *tf = NULL;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            status = 0;
            goto done;
        } else if (!strcmp(a, "--nodes")) {
            status = list_nodes(i + 1 < argc && argv[i + 1][0] != '-' ? argv[i + 1] : NULL);
            goto done;
        } else if (!strcmp(a, "--list")) {
            for (const struct fy_policy *const *p = pol_all(); *p; p++)
                printf("%-14s %s\n", (*p)->name, (*p)->summary);
            status = 0;
            goto done;
        } else if (!strcmp(a, "--policies") || !strcmp(a, "--seeds") || !strcmp(a, "--requests")) {
            if (!need_arg(i, argc, a)) { status = 2; goto done; }
            const char *key = a[2] == 'p' ? "policies" : a[2] == 's' ? "seeds" : "requests";
            if (a[2] != 'p') { /* a usage error (2) here, not a bad experiment later */
                const char *v = argv[i + 1];
                double d, lo = a[2] == 's' ? 1 : 0, hi = a[2] == 's' ? 10000 : SIM_MAX_REQUESTS;
                if (util_parse_double(v, lo, hi, &d) < 0 || d != floor(d)) {
                    fprintf(stderr, "ferry sim: %s %s: expected an integer in [%g, %g]\n", a, v,
                            lo, hi);
                    status = 2;
                    goto done;
                }
            }
            if (sim_entries_add(&sets, "experiment", key, argv[++i], a, 0) < 0) {
                fprintf(stderr, "ferry sim: %s: value too long\n", a);
                status = 2;
                goto done;
            }
        } else if (!strcmp(a, "--set")) {
            if (!need_arg(i, argc, a)) { status = 2; goto done; }
            if (sim_entries_add_dotted(&sets, argv[++i], "--set", 0, err, sizeof err) < 0) {
                fprintf(stderr, "ferry sim: --set %s\n", err);
                status = 2;
                goto done;
            }
        } else if (!strcmp(a, "--csv") || !strcmp(a, "--trace") || !strcmp(a, "--plot") ||
                   !strcmp(a, "--image-pool") || !strcmp(a, "--out")) {
            if (!need_arg(i, argc, a)) { status = 2; goto done; }
            const char *v = argv[++i];
            if (!strcmp(a, "--csv")) csv = v;
            else if (!strcmp(a, "--trace")) trace = v;
            else if (!strcmp(a, "--plot")) plot = v;
            else if (!strcmp(a, "--out")) pool_out = v;
            else pool = v;
        } else if (!strcmp(a, "--counterfactual")) {
            if (counterfactual < 1) counterfactual = 1;
        } else if (!strcmp(a, "--counterfactual-plans")) {
            counterfactual = 2;
        } else if (!strcmp(a, "--png")) {
            png = 1;
        } else if (!strcmp(a, "--no-timing")) {
            timing = 0;
        } else if (a[0] == '-') {
            fprintf(stderr, "ferry sim: unknown option %s (try --help)\n", a);
            status = 2;
            goto done;
        } else if (!exp_path) {
            exp_path = a;
        } else {
            fprintf(stderr, "ferry sim: one experiment file at a time (got %s and %s)\n", exp_path, a);
            status = 2;
            goto done;
        }
    }
    if (pool_out && !pool) {
        fprintf(stderr, "ferry sim: --out goes with --image-pool DIR (tables go to stdout, "
                        "rows to --csv FILE)\n");
        status = 2;
        goto done;
    }
    if (pool) {
        status = image_pool(pool, pool_out);
        goto done;
    }
    if (!exp_path) {
        usage(stderr);
        status = 2;
        goto done;
    }
    if (counterfactual && !trace) {
        fprintf(stderr, "ferry sim: --counterfactual%s needs --trace FILE\n",
                counterfactual > 1 ? "-plans" : "");
        status = 2;
        goto done;
    }
    if (png && !plot) {
        fprintf(stderr, "ferry sim: --png needs --plot DIR\n");
        status = 2;
        goto done;
    }
    if (sim_entries_read(&es, exp_path, err, sizeof err) < 0) {
        fprintf(stderr, "ferry sim: %s\n", err);
        goto done;
    }
    for (int i = 0; i < sets.n; i++)
        if (sim_entries_add(&es, sets.e[i].section, sets.e[i].key, sets.e[i].value,
                            sets.e[i].file, sets.e[i].line) < 0) {
            fprintf(stderr, "ferry sim: out of memory\n");
            goto done;
        }

    char sweep_key[128], sweep_val[SIM_MAX_SWEEP][64];
    int nsweep;
    if (sim_sweep_of(&es, sweep_key, sizeof sweep_key, sweep_val, &nsweep, err, sizeof err) < 0) {
        fprintf(stderr, "ferry sim: %s\n", err);
        goto done;
    }
    int has_sweep = nsweep > 0;
    if (!has_sweep) nsweep = 1;
    setups = calloc((size_t)nsweep, sizeof *setups);
    if (!setups) goto oom;
    for (int k = 0; k < nsweep; k++)
        if (sim_setup_build(&setups[k], exp_path, &es, has_sweep ? sweep_val[k] : NULL, err,
                            sizeof err) < 0) {
            fprintf(stderr, "ferry sim: %s\n", err);
            for (int j = 0; j < k; j++) sim_setup_fini(&setups[j]);
            free(setups);
            setups = NULL;
            goto done;
        }
    const struct sim_exp *x0 = &setups[0].exp;
    int npol = x0->npolicies, nseeds = x0->seeds;
    for (int k = 1; k < nsweep; k++)
        if (setups[k].exp.npolicies != npol || setups[k].exp.seeds != nseeds) {
            fprintf(stderr, "ferry sim: the sweep may not change policies or seeds\n");
            goto done;
        }
    if (trace) {
        tf = fopen(trace, "w");
        if (!tf) {
            fprintf(stderr, "ferry sim: --trace %s: %s\n", trace, strerror(errno));
            goto done;
        }
    }
    nres = (size_t)nsweep * npol * nseeds;
    res = calloc(nres, sizeof *res);
    if (!res) goto oom;
    const char *pol_names[SIM_MAX_POLICIES];
    for (int p = 0; p < npol; p++) pol_names[p] = x0->pol[p].name;
    for (int k = 0; k < nsweep; k++)
        for (int p = 0; p < npol; p++)
            for (int s = 0; s < nseeds; s++) {
                size_t idx = ((size_t)k * npol + p) * nseeds + s;
                res[idx] = malloc(sizeof *res[idx]);
                if (!res[idx]) goto oom;
                const struct sim_exp *x = &setups[k].exp;
                char tag[64];
                if (has_sweep) snprintf(tag, sizeof tag, "%s/v%d/s%d/", x->pol[p].name, k, s);
                else snprintf(tag, sizeof tag, "%s/s%d/", x->pol[p].name, s);
                struct sim_run_opts o = {
                    .pol = pol_find(x->pol[p].name),
                    .params = x->pol[p].params[0] ? x->pol[p].params : NULL,
                    .seed = x->seed + (uint64_t)s,
                    .trace = tf,
                    .counterfactual = counterfactual,
                    .trace_tag = tag,
                    .use_pred = -1,
                };
                if (sim_run(&setups[k], &o, res[idx], err, sizeof err) < 0) {
                    fprintf(stderr, "ferry sim: %s\n", err);
                    goto done;
                }
            }
    struct sim_report rep = {
        .setup = &setups[0],
        .nsweep = nsweep,
        .sweep_key = has_sweep ? sweep_key : NULL,
        .sweep_val = sweep_val,
        .npol = npol,
        .nseeds = nseeds,
        .pol_names = pol_names,
        .res = res,
        .timing = timing,
        .png = png,
    };
    sim_report_table(&rep, stdout);
    if (csv && sim_report_csv(&rep, csv, err, sizeof err) < 0) {
        fprintf(stderr, "ferry sim: %s\n", err);
        goto done;
    }
    if (plot && sim_report_plots(&rep, plot, err, sizeof err) < 0) {
        fprintf(stderr, "ferry sim: %s\n", err);
        goto done;
    }
    status = 0;
    goto done;
oom:
    fprintf(stderr, "ferry sim: out of memory\n");
    status = 1;
done:
    if (tf && fclose(tf) != 0 && status == 0) {
        fprintf(stderr, "ferry sim: --trace %s: write failed\n", trace);
        status = 1;
    }
    if (res)
        for (size_t i = 0; i < nres; i++) free(res[i]);
    free(res);
    if (setups) {
        for (int k = 0; k < nsweep; k++) sim_setup_fini(&setups[k]);
        free(setups);
    }
    sim_entries_fini(&es);
    sim_entries_fini(&sets);
    return status;
}
