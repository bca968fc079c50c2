/* cmd_bench — `ferry bench SUB ...`: one subcommand with sub-subcommands, one line each
 * in g_subs (m4a1: pred; collect, load: emu; export: gw). */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "pred/m4a1.h"

struct sub {
    const char *name;
    int (*run)(int argc, char **argv); /* argv[0] = the sub-subcommand name */
    const char *summary;
};

static const struct sub g_subs[] = {
    {"m4a1", m4a1_main, "replay the M4A1 dialogues in LCIO's environment: local, cloud,\n"
                        "           random, lcio (RC-A2C), lcio-tab, ferry"},
    {"collect", cmd_bench_collect, "run a labelled dataset on every node of a gateway config:\n"
                                   "           trace JSONL for train/eval"},
    {"load", cmd_bench_load, "drive a mixed chat workload through an endpoint: completion,\n"
                             "           latency, cost, share per node"},
    {"export", cmd_bench_export, "write the gateway's SQLite trace as trace JSONL for train/eval"},
    {NULL, NULL, NULL},
};

static void usage(FILE *out)
{
    fprintf(out, "usage: ferry bench <sub> [options]\n\n");
    for (const struct sub *s = g_subs; s->name; s++) fprintf(out, "  %-8s %s\n", s->name, s->summary);
    fprintf(out, "\n  ferry bench <sub> --help   options of one sub-command\n");
}

int cmd_bench(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(stdout);
        return 0;
    }
    for (const struct sub *s = g_subs; s->name; s++)
        if (!strcmp(argv[1], s->name)) return s->run(argc - 1, argv + 1);
    fprintf(stderr, "ferry bench: unknown sub-command '%s' (try ferry bench --help)\n", argv[1]);
    return 2;
}
