/* bench-text.c — text-feature time in µs per KB of real text, beside a plain reference
 * pass measured in the same run: strlen + a word-count loop over the same bytes (the
 * least any text feature must do). Also the request parse (req_parse + feat_request_text)
 * per request for the example bodies, beside cJSON_Parse + cJSON_Delete alone.
 * Inputs: the files given (text files and request JSON files). Medians over repetitions
 * of the thread's CPU time (CLOCK_THREAD_CPUTIME_ID), so that other processes on a
 * shared machine do not inflate one side of a ratio.
 * An image file after "--" (.jpg .png .webp) is sent as a one-image request with a
 * data: URL built in memory (the gateway's large-body case).
 *   bench-text [-r REPS] TEXT... [-- REQUEST.json|IMAGE...] */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "feat/features.h"
#include "feat/text.h"
#include "req/request.h"
#include "util/b64.h"
#include "util/buf.h"

static char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    struct buf b;
    buf_init(&b);
    char tmp[65536];
    size_t k;
    while ((k = fread(tmp, 1, sizeof tmp, f)) > 0) buf_append(&b, tmp, k);
    fclose(f);
    *n = b.len;
    return buf_steal(&b);
}

/* CPU time of this thread, ns. */
static uint64_t cpu_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static volatile long g_sink;

/* The reference: strlen, then count words (transitions into non-space). */
static long plain_pass(const char *s)
{
    size_t n = strlen(s);
    long words = 0;
    int in = 0;
    for (size_t i = 0; i < n; i++) {
        int sp = s[i] == ' ' || s[i] == '\n' || s[i] == '\t' || s[i] == '\r';
        words += !sp && !in;
        in = !sp;
    }
    return words;
}

/* Everything the gateway computes on one prompt's text. */
static long text_pass(const char *s, size_t n)
{
    struct feat_text_stats st;
    float v[FY_HASH_DIM] = {0};
    feat_text_analyze(s, n, NULL, &st, v);
    enum fy_task t = feat_text_task(s, n);
    feat_text_ngrams_normalize(v);
    return st.tokens + (long)t + (long)(v[0] * 1000);
}

int main(int argc, char **argv)
{
    int reps = 31, i = 1;
    if (argc > 2 && !strcmp(argv[1], "-r")) {
        reps = atoi(argv[2]);
        i = 3;
    }
    if (reps < 1 || reps > 1000) reps = 31;
    double *tf = calloc((size_t)reps, sizeof *tf), *tp = calloc((size_t)reps, sizeof *tp);
    size_t total = 0;
    int ntext = 0;
    char **texts = calloc((size_t)argc, sizeof *texts);
    size_t *lens = calloc((size_t)argc, sizeof *lens);
    for (; i < argc && strcmp(argv[i], "--"); i++) {
        texts[ntext] = slurp(argv[i], &lens[ntext]);
        if (!texts[ntext]) { fprintf(stderr, "bench-text: cannot read %s\n", argv[i]); return 1; }
        total += lens[ntext++];
    }
    if (!ntext) { fprintf(stderr, "usage: bench-text [-r REPS] TEXT... [-- REQUEST.json...]\n"); return 2; }
    for (int r = 0; r < reps; r++) {
        uint64_t t0 = cpu_ns();
        for (int k = 0; k < ntext; k++) g_sink += text_pass(texts[k], lens[k]);
        uint64_t t1 = cpu_ns();
        for (int k = 0; k < ntext; k++) g_sink += plain_pass(texts[k]);
        uint64_t t2 = cpu_ns();
        tf[r] = (double)(t1 - t0) / 1e3 / (total / 1024.0);
        tp[r] = (double)(t2 - t1) / 1e3 / (total / 1024.0);
    }
    double mf = median(tf, reps), mp = median(tp, reps);
    printf("text features: %d texts, %.1f KB, %d repetitions (median thread CPU time)\n", ntext,
           total / 1024.0, reps);
    printf("  %-44s %10s %8s\n", "", "us/KB", "ratio");
    printf("  %-44s %10.3f %8.2f\n", "ferry text features (stats+task+n-grams)", mf, mf / mp);
    printf("  %-44s %10.3f %8.2f\n", "reference: strlen + word count", mp, 1.0);
    printf("  target < 5 us/KB: %s\n", mf < 5 ? "met" : "NOT met");

    if (i < argc) {
        printf("\nrequest parse, per request (median of %d)\n", reps);
        printf("  %-28s %8s %12s %12s %8s\n", "request", "KB", "ferry us", "cJSON us", "ratio");
        printf("  (ferry = req_parse with base64 decoding and header probe + text features)\n");
        for (i++; i < argc; i++) {
            size_t n;
            char *body = slurp(argv[i], &n);
            if (!body) { fprintf(stderr, "bench-text: cannot read %s\n", argv[i]); return 1; }
            const char *dot = strrchr(argv[i], '.');
            if (dot && (!strcmp(dot, ".jpg") || !strcmp(dot, ".png") || !strcmp(dot, ".webp"))) {
                const char *mime = dot[1] == 'j' ? "jpeg" : dot + 1;
                struct buf b;
                buf_init(&b);
                buf_printf(&b, "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":"
                               "\"text\",\"text\":\"What is this?\"},{\"type\":\"image_url\","
                               "\"image_url\":{\"url\":\"data:image/%s;base64,", mime);
                buf_reserve(&b, b64_encoded_len(n, 1) + 16);
                b.len += b64_encode((const uint8_t *)body, n, B64_STD, 1, b.data + b.len);
                buf_puts(&b, "\"}}]}]}");
                free(body);
                n = b.len;
                body = buf_steal(&b);
            }
            for (int r = 0; r < reps; r++) {
                uint64_t t0 = cpu_ns();
                struct req_error e;
                struct fy_request *q = req_parse(body, n, NULL, &e);
                static struct fy_features f;
                if (q) feat_request_text(q, NULL, &f);
                g_sink += q ? f.text_tokens : e.status;
                req_free(q);
                uint64_t t1 = cpu_ns();
                cJSON *j = cJSON_ParseWithLength(body, n);
                g_sink += j != NULL;
                cJSON_Delete(j);
                uint64_t t2 = cpu_ns();
                tf[r] = (double)(t1 - t0) / 1e3;
                tp[r] = (double)(t2 - t1) / 1e3;
            }
            double a = median(tf, reps), b = median(tp, reps);
            const char *base = strrchr(argv[i], '/');
            printf("  %-28s %8.1f %12.2f %12.2f %8.2f\n", base ? base + 1 : argv[i], n / 1024.0,
                   a, b, a / b);
            free(body);
        }
    }
    for (int k = 0; k < ntext; k++) free(texts[k]);
    free(texts);
    free(lens);
    free(tf);
    free(tp);
    return 0;
}
