/* bench-trace — time to write one trace record (pred/trace.h): the hand-formatting
 * writer trace_write against the former stdio/printf writer trace__write_printf (the
 * reference, same output byte for byte) in the same run, on one core. Records look like
 * the gateway's: 1 image, 2 outcomes (one a cascade stage), 12 hashed n-grams, every
 * timing a full-precision double. Output goes to /dev/null through a fully buffered
 * FILE (what the gateway's trace worker does, minus the disk). Prints per writer the
 * median and p95 µs per record over batches of 100 records, and the speed-up. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry.h"
#include "pred/trace.h"
#include "util/clock.h"
#include "util/rng.h"

#define NREC 64
#define BATCH 100
#define NBATCH 300

static void mk_rec(struct trace_record *t, struct rng *r, int i)
{
    memset(t, 0, sizeof *t);
    snprintf(t->id, sizeof t->id, "req-%d", i);
    snprintf(t->dataset, sizeof t->dataset, "mmbench");
    snprintf(t->session, sizeof t->session, "dlg-%d", i / 3);
    t->t_ms = 1e6 * rng_uniform(r);
    t->f.turn = i % 3;
    t->f.text_tokens = t->f.last_text_tokens = 10 + (int)rng_below(r, 200);
    t->f.sentences = 1 + (int)rng_below(r, 4);
    t->f.c_L = rng_uniform(r);
    t->f.c_ner = rng_uniform(r);
    t->f.c_text = rng_uniform(r);
    t->f.task = (enum fy_task)rng_below(r, FY_TASK__N);
    t->f.max_out_tokens = 256;
    t->f.nimages = 1;
    struct fy_image_features *im = &t->f.img[0];
    im->format = FY_FMT_JPEG;
    im->width = 640 + (int)rng_below(r, 1000);
    im->height = 480 + (int)rng_below(r, 600);
    im->bytes = 100000 + (long)rng_below(r, 300000);
    im->sobel_mean = 40 * rng_uniform(r);
    im->entropy = 8 * rng_uniform(r);
    im->laplacian_var = 3000 * rng_uniform(r);
    im->c_res = rng_uniform(r);
    im->c_edge = rng_uniform(r);
    im->c_ent = rng_uniform(r);
    im->c_lap = rng_uniform(r);
    im->c_img = rng_uniform(r);
    for (int k = 0; k < FY_VT__N; k++) im->tokens[k] = 200 + (int)rng_below(r, 2000);
    for (int k = 0; k < 12; k++) t->f.ngram[rng_below(r, FY_HASH_DIM)] = 0.2887f;
    t->nout = 2;
    for (int k = 0; k < 2; k++) {
        struct trace_outcome *o = &t->out[k];
        snprintf(o->node, sizeof o->node, "%s", k ? "cloud-a100" : "edge-3090");
        snprintf(o->model, sizeof o->model, "%s", k ? "qwen2.5-vl-7b" : "qwen2-vl-2b");
        o->role = k ? FY_ROLE_CLOUD : FY_ROLE_EDGE;
        o->link.up_mbps = k ? 300 : 1000;
        o->link.down_mbps = o->link.up_mbps;
        o->link.rtt_ms = k ? 30 : 2;
        o->state.running = (int)rng_below(r, 8);
        o->state.queued_tokens = (int)rng_below(r, 5000);
        o->state.ewma_ttft_ms = 500 * rng_uniform(r);
        o->state.ewma_tpot_ms = 30 * rng_uniform(r);
        o->bytes_up = im->bytes + 400;
        o->image_tokens = im->tokens[0];
        o->chosen = 1;
        o->stage = k + 1;
        o->o.plan.node = k;
        o->o.plan.aux_node = -1;
        o->o.quality = 1;
        o->o.confidence = rng_uniform(r);
        o->o.escalated = 1;
        o->o.ttft_ms = 300 * rng_uniform(r);
        o->o.t_up_ms = 20 * rng_uniform(r);
        o->o.t_queue_ms = 50 * rng_uniform(r);
        o->o.t_vision_ms = 80 * rng_uniform(r);
        o->o.t_prefill_ms = 100 * rng_uniform(r);
        o->o.t_decode_ms = 2000 * rng_uniform(r);
        o->o.t_down_ms = 5 * rng_uniform(r);
        o->o.e2e_ms = o->o.t_up_ms + o->o.t_queue_ms + o->o.t_vision_ms + o->o.t_prefill_ms +
                      o->o.t_decode_ms + o->o.t_down_ms;
        o->o.in_tokens = t->f.text_tokens + o->image_tokens;
        o->o.out_tokens = 20 + (int)rng_below(r, 200);
        o->o.cost_usd = k ? 1e-6 * (0.2 * o->o.in_tokens + 0.6 * o->o.out_tokens) : 0;
    }
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(void)
{
    static struct trace_record recs[NREC];
    struct rng r;
    rng_seed(&r, 42);
    for (int i = 0; i < NREC; i++) mk_rec(&recs[i], &r, i);
    FILE *fp = fopen("/dev/null", "w");
    if (!fp) {
        fprintf(stderr, "bench-trace: cannot open /dev/null\n");
        return 1;
    }
    setvbuf(fp, NULL, _IOFBF, 1 << 16);
    int (*const fn[2])(FILE *, const struct trace_record *) = {trace__write_printf, trace_write};
    const char *name[2] = {"printf (former)", "trace_write"};
    static double t[2][NBATCH];
    for (int b = 0; b < NBATCH; b++)
        for (int w = 0; w < 2; w++) { /* interleaved: both see the same machine state */
            uint64_t t0 = clock_now_ns();
            for (int k = 0; k < BATCH; k++) fn[w](fp, &recs[(b * BATCH + k) % NREC]);
            t[w][b] = (double)(clock_now_ns() - t0) / BATCH / 1e3;
        }
    fclose(fp);
    char line[1 << 15];
    FILE *mf = fmemopen(line, sizeof line, "w");
    long bytes = 0;
    if (mf) {
        trace_write(mf, &recs[0]);
        bytes = ftell(mf);
        fclose(mf);
    }
    printf("trace writing, %d records (1 image, 2 outcomes, 12 n-grams, ~%ld bytes a line), "
           "%d batches of %d, to /dev/null\n", NREC, bytes, NBATCH, BATCH);
    printf("%-18s %12s %12s %10s\n", "writer", "median us", "p95 us", "speed-up");
    double med[2];
    for (int w = 0; w < 2; w++) {
        qsort(t[w], NBATCH, sizeof t[w][0], cmp_d);
        med[w] = t[w][NBATCH / 2];
    }
    for (int w = 0; w < 2; w++)
        printf("%-18s %12.3f %12.3f %9.1fx\n", name[w], med[w], t[w][NBATCH * 95 / 100],
               med[0] / med[w]);
    return 0;
}
