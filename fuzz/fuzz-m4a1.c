/* fuzz-m4a1.c — libFuzzer target for the M4A1 dataset reader (m4a1_parse, the parser
 * behind `ferry bench m4a1 FILE`): the input is the JSON file. What parses must hold
 * what the replay indexes with and computes from, per turn: task and action in range,
 * a finite score in [0, 10], the association term of every action in [0, 1], and the
 * MGQP features of the turn (with and without the question text) through one
 * observe + predict, which must give a probability. The replay itself is not run (about
 * a second per input). Any crash, leak or UB is a bug. Seeds: fuzz/corpus/fuzz-m4a1/
 * (small hand-written files in the dataset's format). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ferry.h"
#include "pred/m4a1.h"
#include "pred/mgqp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_TURNS_CHECKED 256 /* bounds the MGQP work of one input */

static void turn_plan(int a, struct fy_plan *p)
{
    memset(p, 0, sizeof *p);
    p->node = m4a1_action_cloud(a);
    p->aux_node = -1;
    p->escalate_node = -1;
    unsigned v = m4a1_action_views(a);
    for (int k = 0; k < 3; k++) p->img[k] = (v >> k & 1) ? FY_IMG_KEEP : FY_IMG_DROP;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct mgqp q; /* ~10 KB: kept off the stack */
    struct m4a1 m;
    char err[512];
    if (m4a1_parse("fuzz", data, size, &m, err, sizeof err) != 0) {
        if (!err[0]) abort(); /* a refusal says why */
        return 0;
    }
    if (m.n < 1) abort();
    mgqp_init(&q, 0.5);
    int checked = 0;
    for (int i = 0; i < m.n; i++) {
        const struct m4a1_dialogue *d = &m.d[i];
        if (d->nturns < 1 || d->nturns > M4A1_MAX_TURNS) abort();
        for (int t = 0; t < d->nturns; t++) {
            const struct m4a1_turn *tu = &d->turn[t];
            if (tu->task < 0 || tu->task >= M4A1_NTASK) abort();
            if (tu->action < 0 || tu->action >= M4A1_NACT || !tu->question) abort();
            if (!(tu->score >= 0 && tu->score <= 10)) abort();
            if (tu->refusal && tu->score != 0) abort();
            for (int a = 0; a < M4A1_NACT; a++) {
                double v = m4a1_norm_assoc(tu, a);
                if (!(v >= 0 && v <= 1)) abort();
            }
            if (checked >= MAX_TURNS_CHECKED) continue;
            checked++;
            struct fy_features f;
            struct fy_plan plan;
            turn_plan(tu->action, &plan);
            for (int with_text = 0; with_text < 2; with_text++) {
                m4a1_turn_features(d, t, with_text, &f);
                mgqp_observe(&q, &f, &plan, tu->score > 1);
                double sd, p = mgqp_predict(&q, &f, &plan, &sd);
                if (!(p >= 0 && p <= 1) || !isfinite(sd)) abort();
            }
        }
    }
    m4a1_fini(&m);
    return 0;
}
