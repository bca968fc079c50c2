/* cmd_load — `ferry bench load` (load.h, docs/emulator.md "Load driver"). */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "emu/load.h"
#include "util/num.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: ferry bench load --url URL [options]\n"
            "\n"
            "Drives a mixed chat workload (image questions, short and long text, M4A1\n"
            "dialogues, some streamed) through an OpenAI-compatible endpoint, sends the\n"
            "answer scores as feedback, and prints one summary row: completion rate,\n"
            "latency percentiles, cost and share per node. Same seed, same requests.\n"
            "\n"
            "  --url URL            endpoint base, e.g. http://127.0.0.1:8080 (required)\n"
            "  -c, --config FILE    gateway config: node prices for the cost column\n"
            "  --requests N         requests in all (default 60)\n"
            "  --concurrency N      requests at once (default 4)\n"
            "  --seed N             workload seed (default 1)\n"
            "  --stream-share P     share of streamed requests (default 0.3)\n"
            "  --dataset FILE       labelled items for image questions\n"
            "                       (default data/collect/mini.jsonl)\n"
            "  --m4a1 FILE          M4A1 dialogues (default <base>/datasets/m4a1/M4A1.json)\n"
            "  --base DIR           shared folder (default $FERRY_SHARED, else ../shared)\n"
            "  --model NAME         request model (default ferry: the gateway decides)\n"
            "  --label TEXT         first column of the row (default the model)\n"
            "  --header             print the table header first\n"
            "  --no-feedback        do not POST /v1/feedback\n"
            "  -h, --help           this text\n"
            "\n"
            "Exit status: 0, 1 when the run could not start or every request failed, 2 on a\n"
            "usage error.\n");
}

/* 1 for the options that take a value: an unknown option is then reported as
 * unknown, not as one missing its value. */
static int takes_value(const char *a)
{
    static const char *const with_value[] = {
        "--url", "-c", "--config", "--dataset", "--m4a1", "--base", "--model", "--label",
        "--requests", "--concurrency", "--seed", "--stream-share"};
    for (size_t k = 0; k < sizeof with_value / sizeof with_value[0]; k++)
        if (!strcmp(a, with_value[k])) return 1;
    return 0;
}

/* --url is checked before the workload starts (a malformed one used to fail every
 * request, one by one): http(s)://HOST[:PORT][/PATH]. 0, or -1 with the reason in why. */
static int check_url(const char *v, char *why, size_t cap)
{
    if (strncmp(v, "http://", 7) && strncmp(v, "https://", 8)) {
        snprintf(why, cap, "expected http://HOST[:PORT] or https://HOST[:PORT]");
        return -1;
    }
    CURLU *u = curl_url();
    char *host = NULL;
    int rc = -1;
    CURLUcode c = u ? curl_url_set(u, CURLUPART_URL, v, 0) : CURLUE_OUT_OF_MEMORY;
    if (c) snprintf(why, cap, "%s", curl_url_strerror(c));
    else if (curl_url_get(u, CURLUPART_HOST, &host, 0) || !host || !*host)
        snprintf(why, cap, "no host");
    else rc = 0;
    curl_free(host);
    curl_url_cleanup(u);
    return rc;
}

int cmd_bench_load(int argc, char **argv)
{
    struct emu_load_opts o;
    emu_load_opts_default(&o);
    const char *label = NULL;
    int header = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL, *want = "";
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--header")) { header = 1; continue; }
        if (!strcmp(a, "--no-feedback")) { o.feedback = 0; continue; }
        if (!takes_value(a)) {
            fprintf(stderr, "ferry bench load: unknown option %s (try --help)\n", a);
            return 2;
        }
        if (!v) {
            fprintf(stderr, "ferry bench load: %s needs a value (try --help)\n", a);
            return 2;
        }
        i++;
        if (!strcmp(a, "--url")) {
            char why[200];
            if (check_url(v, why, sizeof why) < 0) {
                fprintf(stderr, "ferry bench load: --url '%s': %s\n", v, why);
                return 2;
            }
            o.url = v;
        }
        else if (!strcmp(a, "-c") || !strcmp(a, "--config")) o.config = v;
        else if (!strcmp(a, "--dataset")) o.dataset = v;
        else if (!strcmp(a, "--m4a1")) o.m4a1 = v;
        else if (!strcmp(a, "--base")) o.base = v;
        else if (!strcmp(a, "--model")) o.model = v;
        else if (!strcmp(a, "--label")) label = v;
        else if (!strcmp(a, "--requests")) {
            want = "an integer in [1, 1000000]";
            if (util_parse_int(v, 1, 1000000, &o.requests) < 0) goto bad;
        } else if (!strcmp(a, "--concurrency")) {
            want = "an integer in [1, 1024]";
            if (util_parse_int(v, 1, 1024, &o.concurrency) < 0) goto bad;
        } else if (!strcmp(a, "--seed")) {
            want = "a non-negative integer";
            if (util_parse_ull(v, 0, ULLONG_MAX, &o.seed) < 0) goto bad;
        } else { /* --stream-share, the last of takes_value */
            want = "a number in [0, 1]";
            if (util_parse_double(v, 0, 1, &o.stream_share) < 0) goto bad;
        }
        continue;
    bad:
        fprintf(stderr, "ferry bench load: %s '%s': expected %s (try --help)\n", a, v, want);
        return 2;
    }
    if (!o.url) {
        fprintf(stderr, "ferry bench load: --url is required (try --help)\n");
        return 2;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    struct emu_load_summary s;
    char err[1024];
    int rc = emu_load_run(&o, &s, err, sizeof err);
    curl_global_cleanup();
    if (rc < 0) {
        fprintf(stderr, "ferry bench load: %s\n", err);
        return 1;
    }
    if (header) emu_load_print(stdout, NULL, NULL);
    emu_load_print(stdout, label ? label : o.model, &s);
    fflush(stdout);
    if (s.ok < s.n)
        fprintf(stderr, "ferry bench load: %d of %d requests failed; the first: %s (%s)\n",
                s.n - s.ok, s.n, s.first_error, o.url);
    return s.ok ? 0 : 1;
}
