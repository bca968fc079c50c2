/* gw/cmd_export — `ferry bench export`: the gateway's SQLite trace as trace JSONL
 * (src/pred/trace.h), so `ferry train` / `ferry eval` learn from production traffic. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "gw/config.h"
#include "gw/store.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: ferry bench export (--db TRACE.db | -c ferry.ini) [-o OUT.jsonl]\n"
            "\n"
            "Writes every request the gateway recorded (decision, features, observed latency,\n"
            "tokens, feedback score as quality) as one trace JSON line (docs/predictors.md).\n"
            "  --db FILE          the SQLite trace ([server] trace_db of the gateway)\n"
            "  -c, --config FILE  take trace_db from this gateway configuration\n"
            "  -o FILE            output, replaced only when the export succeeds (default\n"
            "                     stdout)\n"
            "  -h, --help         this text\n"
            "\n"
            "Exit status: 0, 1 when the trace or the configuration could not be read or the\n"
            "output written, 2 on a usage error.\n");
}

int cmd_bench_export(int argc, char **argv)
{
    const char *db = NULL, *cfgp = NULL, *outp = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--db") && i + 1 < argc) db = argv[++i];
        else if ((!strcmp(argv[i], "-c") || !strcmp(argv[i], "--config")) && i + 1 < argc) cfgp = argv[++i];
        else if (!strcmp(argv[i], "-o") && i + 1 < argc) outp = argv[++i];
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--db") || !strcmp(argv[i], "-c") ||
                   !strcmp(argv[i], "--config") || !strcmp(argv[i], "-o")) {
            fprintf(stderr, "ferry bench export: %s needs a value (try --help)\n", argv[i]);
            return 2;
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "ferry bench export: unknown option %s (try --help)\n", argv[i]);
            return 2;
        } else {
            fprintf(stderr, "ferry bench export: unexpected argument '%s' (the trace goes with "
                            "--db; try --help)\n", argv[i]);
            return 2;
        }
    }
    char err[512];
    static struct gw_config cfg;
    if (!db && cfgp) {
        if (gw_config_load_flags(cfgp, &cfg, GW_CONFIG_NO_KEYS, err, sizeof err)) {
            fprintf(stderr, "ferry bench export: %s\n", err);
            return 1;
        }
        if (!cfg.trace_db[0]) {
            fprintf(stderr, "ferry bench export: %s: [server] trace_db is not set\n", cfgp);
            return 1;
        }
        db = cfg.trace_db;
    }
    if (!db) {
        fprintf(stderr, "ferry bench export: --db FILE (or -c CONFIG with [server] trace_db) "
                "is missing (try --help)\n");
        return 2;
    }
    /* sqlite would say "unable to open database file": name the file, the reason and
     * where the path came from */
    struct stat st;
    if (stat(db, &st) != 0) {
        if (cfgp)
            fprintf(stderr, "ferry bench export: %s: %s ([server] trace_db of %s; a relative "
                            "path is read from the working directory)\n", db, strerror(errno),
                    cfgp);
        else
            fprintf(stderr, "ferry bench export: --db %s: %s\n", db, strerror(errno));
        return 1;
    }
    /* -o: written to OUT.tmp and renamed when complete, so a failed export (a wrong
     * --db, a full disk) leaves an existing OUT as it was */
    char tmp[4096];
    if (outp && snprintf(tmp, sizeof tmp, "%s.tmp", outp) >= (int)sizeof tmp) {
        fprintf(stderr, "ferry bench export: -o: path too long\n");
        return 2;
    }
    FILE *out = outp ? fopen(tmp, "w") : stdout;
    if (!out) {
        fprintf(stderr, "ferry bench export: %s: cannot write: %s\n", tmp, strerror(errno));
        return 1;
    }
    long n = gw_store_export(db, out, err, sizeof err);
    if (outp && fclose(out) && n >= 0) {
        snprintf(err, sizeof err, "%.400s: write error: %s", tmp, strerror(errno));
        n = -1;
    }
    if (outp && n >= 0 && rename(tmp, outp) != 0) {
        snprintf(err, sizeof err, "%.400s: %s", outp, strerror(errno));
        n = -1;
    }
    if (n < 0) {
        if (outp) remove(tmp);
        fprintf(stderr, "ferry bench export: %s\n", err);
        return 1;
    }
    fprintf(stderr, "ferry bench export: %ld record(s) from %s\n", n, db);
    return 0;
}
