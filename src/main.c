/* ferry — command dispatch. Each subcommand lives in its area (src/<area>/cmd_*.c). */
#include <stdio.h>
#include <string.h>

#include "ferry.h"
#include "cli.h"
#include "util/log.h"

struct command {
    const char *name;
    int (*run)(int argc, char **argv); /* argv[0] is the subcommand name */
    const char *summary;
};

static const struct command g_commands[] = {
    /* one line per subcommand; keep in this order: features, calibrate, sim, train,
     * eval, bench, serve, emulate */
    {"features", cmd_features, "print complexity features of images and request JSON files"},
    {"calibrate", cmd_calibrate, "compute a MoA-Off image calibration file from images"},
    {"sim", cmd_sim, "simulate a cloud-edge MLLM cluster and compare offloading policies"},
    {"train", cmd_train, "fit the quality (MGQP) and latency (MILP) predictors from traces"},
    {"eval", cmd_eval, "score a predictor model on held-out trace records (MAE, MAPE, AUC, Brier)"},
    {"bench", cmd_bench, "benchmarks on data: m4a1 (LCIO replay), collect, load, export"},
    {"serve", cmd_serve, "run the OpenAI-compatible offloading gateway (-c ferry.ini)"},
    {"emulate", cmd_emulate, "run an emulated OpenAI-compatible MLLM node (tests, demos)"},
    {NULL, NULL, NULL},
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: ferry <command> [options]\n"
            "\n"
            "ferry decides, for every multimodal LLM request, where it runs (edge or cloud)\n"
            "and with which of its images. Commands:\n\n");
    for (const struct command *c = g_commands; c->name; c++)
        fprintf(out, "  %-10s %s\n", c->name, c->summary);
    fprintf(out,
            "\n"
            "  ferry <command> --help   options of one command (also: ferry help <command>)\n"
            "  ferry --version          version\n"
            "\n"
            "Start with `make demo` and README.md; every command has a page in docs/.\n"
            "\n"
            "Exit status: 0 success, 1 an input or a run failed, 2 a usage error.\n"
            "\n"
            "Environment:\n"
            "  FERRY_LOG       debug|info|warn|error|off (default warn)\n"
            "  FERRY_DATA      sim: the data folder with profiles/ and workloads/ (default\n"
            "                  the folder above the experiment file's)\n"
            "  FERRY_PROFILES  emulate: where --profile NAME is looked up (default\n"
            "                  data/profiles)\n"
            "  FERRY_SHARED    bench collect, load: the shared folder with images/ and\n"
            "                  datasets/ (default ../shared)\n");
}

/* Output that could not be written (a full disk, /dev/full, a closed pipe) is an error:
 * stdio buffers it, so a command would otherwise exit 0 with its output lost. */
static int check_stdout(const char *cmd, int rc)
{
    int bad = ferror(stdout);
    if (fflush(stdout) != 0) bad = 1;
    if (!bad) return rc;
    fprintf(stderr, "ferry%s%s: cannot write to standard output\n", cmd ? " " : "",
            cmd ? cmd : "");
    return rc ? rc : 1;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    (void)log_get_level(); /* FERRY_LOG read (and a bad value reported) before any thread */
    if (!strcmp(cmd, "help") && argc > 2) { /* ferry help <command> [<sub>] */
        for (const struct command *c = g_commands; c->name; c++) {
            if (strcmp(argv[2], c->name)) continue;
            char *hargv[8];
            int n = 0;
            for (int i = 2; i < argc && n < 6; i++) hargv[n++] = argv[i];
            hargv[n++] = (char *)"--help";
            hargv[n] = NULL;
            return check_stdout(c->name, c->run(n, hargv));
        }
        fprintf(stderr, "ferry: no help for unknown command '%s' (try 'ferry --help')\n",
                argv[2]);
        return 2;
    }
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        usage(stdout);
        return check_stdout(NULL, 0);
    }
    if (!strcmp(cmd, "--version") || !strcmp(cmd, "-V")) {
        printf("ferry %s\n", FY_VERSION);
        return check_stdout(NULL, 0);
    }
    for (const struct command *c = g_commands; c->name; c++)
        if (!strcmp(cmd, c->name)) return check_stdout(c->name, c->run(argc - 1, argv + 1));
    fprintf(stderr, "ferry: unknown command '%s' (try 'ferry --help')\n", cmd);
    return 2;
}
