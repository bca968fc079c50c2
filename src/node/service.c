/* service — continuous-batching service model of one node (contract in service.h). */
#include "node/service.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util/grow.h"
#include "util/heap.h"

enum { SEQ_FREE = 0, SEQ_WAIT, SEQ_PREFILL, SEQ_DECODE };

struct seq {
    uint64_t id;
    int state;
    uint32_t gen;               /* bumped when the slot is reused: stale heap entries */
    int next;                   /* FIFO link (wait / prefill queue) or free list; -1 = end */
    int prompt_tokens, image_tokens, out_tokens;
    double submit_ms, start_ms, first_ms;
    double prefill_total;       /* device-ms at full speed */
    double prefill_left;        /* remaining, only exact for the prefill head */
    double v_join, v_end;       /* decode: progress counter at join / at completion */
};

struct fifo { int head, tail; };

struct node_svc {
    struct fy_node_profile prof;
    struct node_svc_opts opt;
    double tpot1_ms;            /* ms per output token at batch 1 */
    double t;                   /* last time seen, ms */
    double v;                   /* decode progress: tokens each decoding sequence made */
    struct seq *seqs;
    int nseqs;
    size_t capseqs;
    int free_head;
    struct fifo wait, prefill;
    int nwait, nprefill, ndecode;
    struct heap dec;            /* key v_end, val slot | gen << 32 */
    double wait_tokens;         /* prompt + image + out tokens of waiting requests */
    double prefill_tokens;      /* prompt + image tokens of the prefill queue (whole) */
    double prefill_out_tokens;  /* out tokens of the prefill queue */
    double sum_v_end;           /* sum of v_end over decoding sequences */
    double busy_ms;
    struct fy_node_state st;
};

void node_svc_opts_default(struct node_svc_opts *o)
{
    o->prefill_share = 0.5;
    o->ewma_alpha = 0.1;
    o->max_queue = 0;
}

struct node_svc *node_svc_new(const struct fy_node_profile *p, const struct node_svc_opts *o)
{
    if (!p || !(p->prefill_tps > 0) || !(p->decode_tps > 0) || p->max_seqs < 1 ||
        !(p->tpot_slope >= 0) || !(p->vision_ms_per_token >= 0))
        return NULL;
    struct node_svc *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->prof = *p;
    if (o) s->opt = *o;
    else node_svc_opts_default(&s->opt);
    if (!(s->opt.prefill_share > 0 && s->opt.prefill_share <= 1)) s->opt.prefill_share = 0.5;
    if (!(s->opt.ewma_alpha > 0 && s->opt.ewma_alpha <= 1)) s->opt.ewma_alpha = 0.1;
    s->tpot1_ms = 1000.0 / p->decode_tps;
    s->free_head = -1;
    s->wait.head = s->wait.tail = -1;
    s->prefill.head = s->prefill.tail = -1;
    heap_init(&s->dec);
    s->st.healthy = 1;
    return s;
}

void node_svc_free(struct node_svc *s)
{
    if (!s) return;
    heap_fini(&s->dec);
    free(s->seqs);
    free(s);
}

struct node_svc *node_svc_clone(const struct node_svc *s)
{
    struct node_svc *c = malloc(sizeof *c);
    if (!c) return NULL;
    *c = *s;
    c->seqs = NULL;
    c->dec.items = NULL;
    if (s->capseqs) {
        c->seqs = malloc(s->capseqs * sizeof *c->seqs);
        if (!c->seqs) goto fail;
        memcpy(c->seqs, s->seqs, (size_t)s->nseqs * sizeof *c->seqs);
    }
    if (s->dec.cap) {
        c->dec.items = malloc(s->dec.cap * sizeof *c->dec.items);
        if (!c->dec.items) goto fail;
        memcpy(c->dec.items, s->dec.items, s->dec.len * sizeof *c->dec.items);
    }
    return c;
fail:
    free(c->seqs);
    free(c->dec.items);
    free(c);
    return NULL;
}

/* ==== queues and slots ============================================================ */

static void fifo_push(struct node_svc *s, struct fifo *q, int i)
{
    s->seqs[i].next = -1;
    if (q->tail < 0) q->head = i;
    else s->seqs[q->tail].next = i;
    q->tail = i;
}

static int fifo_pop(struct node_svc *s, struct fifo *q)
{
    int i = q->head;
    if (i < 0) return -1;
    q->head = s->seqs[i].next;
    if (q->head < 0) q->tail = -1;
    return i;
}

/* Unlinks slot i from q (O(length)); only used by cancel. */
static void fifo_remove(struct node_svc *s, struct fifo *q, int i)
{
    int prev = -1;
    for (int j = q->head; j >= 0; prev = j, j = s->seqs[j].next) {
        if (j != i) continue;
        if (prev < 0) q->head = s->seqs[j].next;
        else s->seqs[prev].next = s->seqs[j].next;
        if (q->tail == j) q->tail = prev;
        return;
    }
}

static int slot_alloc(struct node_svc *s)
{
    if (s->free_head >= 0) {
        int i = s->free_head;
        s->free_head = s->seqs[i].next;
        return i;
    }
    struct seq *n = util_grow(s->seqs, &s->capseqs, (size_t)s->nseqs, sizeof *n, 16);
    if (!n) return -1;
    s->seqs = n;
    memset(&s->seqs[s->nseqs], 0, sizeof s->seqs[0]);
    return s->nseqs++;
}

static void slot_release(struct node_svc *s, int i)
{
    s->seqs[i].state = SEQ_FREE;
    s->seqs[i].gen++;
    s->seqs[i].next = s->free_head;
    s->free_head = i;
}

static int find_slot(const struct node_svc *s, uint64_t id)
{
    for (int i = 0; i < s->nseqs; i++)
        if (s->seqs[i].state != SEQ_FREE && s->seqs[i].id == id) return i;
    return -1;
}

static int heap_entry_live(const struct node_svc *s, const struct heap_item *it)
{
    int i = (int)(it->val & 0xffffffffu);
    uint32_t gen = (uint32_t)(it->val >> 32);
    return i < s->nseqs && s->seqs[i].state == SEQ_DECODE && s->seqs[i].gen == gen;
}

/* Keeps the invariant: the top of the decode heap is never a cancelled entry. */
static void purge_stale(struct node_svc *s)
{
    const struct heap_item *top;
    struct heap_item it;
    while ((top = heap_peek(&s->dec)) && !heap_entry_live(s, top)) heap_pop(&s->dec, &it);
}

/* ==== rates ======================================================================== */

/* ms per output token with d sequences decoding together. */
static double tpot_ms(const struct node_svc *s, int d)
{
    return s->tpot1_ms * (1.0 + s->prof.tpot_slope * (d > 1 ? d - 1 : 0));
}

/* Device-ms of prefill work done per ms for the prefill head. */
static double prefill_rate(const struct node_svc *s)
{
    if (s->prefill.head < 0) return 0;
    return s->ndecode > 0 ? s->opt.prefill_share : 1.0;
}

/* Tokens per ms each decoding sequence makes. */
static double decode_rate(const struct node_svc *s)
{
    if (s->ndecode == 0) return 0;
    double share = s->prefill.head >= 0 ? 1.0 - s->opt.prefill_share : 1.0;
    return share / tpot_ms(s, s->ndecode);
}

/* Moves the state to time t (>= s->t) with the current (constant) rates. */
static void progress(struct node_svc *s, double t)
{
    double dt = t - s->t;
    if (dt <= 0) return;
    if (s->ndecode > 0) s->v += decode_rate(s) * dt;
    if (s->prefill.head >= 0) s->seqs[s->prefill.head].prefill_left -= prefill_rate(s) * dt;
    if (s->ndecode > 0 || s->prefill.head >= 0) s->busy_ms += dt;
    s->t = t;
}

static double next_prefill_time(const struct node_svc *s)
{
    if (s->prefill.head < 0) return INFINITY;
    double left = s->seqs[s->prefill.head].prefill_left;
    return s->t + (left > 0 ? left / prefill_rate(s) : 0);
}

static double next_decode_time(const struct node_svc *s)
{
    const struct heap_item *top = heap_peek(&s->dec);
    double r = decode_rate(s);
    if (!top || !(r > 0)) return INFINITY;
    double left = top->key - s->v;
    return s->t + (left > 0 ? left / r : 0);
}

static int can_admit(const struct node_svc *s)
{
    return s->wait.head >= 0 && s->nprefill + s->ndecode < s->prof.max_seqs;
}

double node_svc_next_time(const struct node_svc *s)
{
    if (can_admit(s)) return s->t;
    double a = next_prefill_time(s), b = next_decode_time(s);
    return a < b ? a : b;
}

/* ==== submit / advance ============================================================= */

int node_svc_submit(struct node_svc *s, double now_ms, uint64_t id, int prompt_tokens,
                    int image_tokens, int out_tokens)
{
    if (!s || !(now_ms >= s->t) || prompt_tokens < 0 || image_tokens < 0 || out_tokens < 0)
        return -EINVAL;
    if (node_svc_next_time(s) < now_ms) return -EINVAL; /* advance first */
    if (s->opt.max_queue > 0 && s->nwait >= s->opt.max_queue) return -ENOSPC;
    if (find_slot(s, id) >= 0) return -EEXIST;
    int i = slot_alloc(s);
    if (i < 0) return -ENOMEM;
    progress(s, now_ms);
    struct seq *q = &s->seqs[i];
    uint32_t gen = q->gen;
    memset(q, 0, sizeof *q);
    q->gen = gen;
    q->id = id;
    q->state = SEQ_WAIT;
    q->prompt_tokens = prompt_tokens;
    q->image_tokens = image_tokens;
    q->out_tokens = out_tokens > 0 ? out_tokens : 1;
    q->submit_ms = now_ms;
    q->prefill_total = image_tokens * s->prof.vision_ms_per_token +
                       1000.0 * (prompt_tokens + image_tokens) / s->prof.prefill_tps;
    q->prefill_left = q->prefill_total;
    fifo_push(s, &s->wait, i);
    s->nwait++;
    s->wait_tokens += prompt_tokens + image_tokens + q->out_tokens;
    return 0;
}

static void ewma(double *acc, double x, double alpha)
{
    *acc = *acc > 0 ? (1 - alpha) * *acc + alpha * x : x;
}

static void finish(struct node_svc *s, int i, double t)
{
    struct seq *q = &s->seqs[i];
    if (q->out_tokens > 1) ewma(&s->st.ewma_tpot_ms, (t - q->first_ms) / (q->out_tokens - 1),
                                s->opt.ewma_alpha);
    slot_release(s, i);
}

int node_svc_advance(struct node_svc *s, double now_ms, node_svc_cb cb, void *arg)
{
    if (!s || !(now_ms >= s->t)) return -EINVAL;
    int nev = 0;
    for (;;) {
        while (can_admit(s)) {
            int i = fifo_pop(s, &s->wait);
            struct seq *q = &s->seqs[i];
            s->nwait--;
            s->wait_tokens -= q->prompt_tokens + q->image_tokens + q->out_tokens;
            q->state = SEQ_PREFILL;
            q->start_ms = s->t;
            fifo_push(s, &s->prefill, i);
            s->nprefill++;
            s->prefill_tokens += q->prompt_tokens + q->image_tokens;
            s->prefill_out_tokens += q->out_tokens;
            nev++;
            if (cb) cb(arg, q->id, NODE_EV_START, s->t);
        }
        double tp = next_prefill_time(s), td = next_decode_time(s);
        double te = tp < td ? tp : td;
        if (te > now_ms) break;
        if (te < s->t) te = s->t;
        progress(s, te);
        if (tp <= td) {
            int i = fifo_pop(s, &s->prefill);
            struct seq *q = &s->seqs[i];
            s->nprefill--;
            s->prefill_tokens -= q->prompt_tokens + q->image_tokens;
            s->prefill_out_tokens -= q->out_tokens;
            q->prefill_left = 0;
            q->first_ms = te;
            ewma(&s->st.ewma_ttft_ms, te - q->submit_ms, s->opt.ewma_alpha);
            nev++;
            if (cb) cb(arg, q->id, NODE_EV_FIRST_TOKEN, te);
            if (q->out_tokens <= 1) {
                uint64_t id = q->id;
                finish(s, i, te);
                nev++;
                if (cb) cb(arg, id, NODE_EV_DONE, te);
            } else {
                q->state = SEQ_DECODE;
                q->v_join = s->v;
                q->v_end = s->v + (q->out_tokens - 1);
                if (heap_push(&s->dec, q->v_end, (uint64_t)i | ((uint64_t)q->gen << 32)) < 0) {
                    /* Out of memory: finish it now rather than lose it. */
                    uint64_t id = q->id;
                    finish(s, i, te);
                    if (cb) cb(arg, id, NODE_EV_DONE, te);
                    continue;
                }
                s->ndecode++;
                s->sum_v_end += q->v_end;
            }
        } else {
            struct heap_item it;
            heap_pop(&s->dec, &it);
            int i = (int)(it.val & 0xffffffffu);
            struct seq *q = &s->seqs[i];
            if (s->v < q->v_end) s->v = q->v_end; /* absorb rounding */
            s->ndecode--;
            s->sum_v_end -= q->v_end;
            if (s->ndecode == 0) s->sum_v_end = 0;
            uint64_t id = q->id;
            finish(s, i, te);
            purge_stale(s);
            nev++;
            if (cb) cb(arg, id, NODE_EV_DONE, te);
        }
    }
    progress(s, now_ms);
    return nev;
}

/* ==== queries ====================================================================== */

int node_svc_tokens_at(const struct node_svc *s, uint64_t id, double now_ms)
{
    int i = find_slot(s, id);
    if (i < 0) return -ENOENT;
    const struct seq *q = &s->seqs[i];
    if (q->state != SEQ_DECODE) return 0;
    double dt = now_ms > s->t ? now_ms - s->t : 0;
    double v = s->v + decode_rate(s) * dt;
    double made = floor(v - q->v_join + 1e-9);
    int n = 1 + (made > 0 ? (int)fmin(made, (double)q->out_tokens) : 0);
    return n < q->out_tokens ? n : q->out_tokens;
}

int node_svc_cancel(struct node_svc *s, double now_ms, uint64_t id)
{
    (void)now_ms;
    int i = find_slot(s, id);
    if (i < 0) return -ENOENT;
    struct seq *q = &s->seqs[i];
    switch (q->state) {
    case SEQ_WAIT:
        fifo_remove(s, &s->wait, i);
        s->nwait--;
        s->wait_tokens -= q->prompt_tokens + q->image_tokens + q->out_tokens;
        break;
    case SEQ_PREFILL:
        fifo_remove(s, &s->prefill, i);
        s->nprefill--;
        s->prefill_tokens -= q->prompt_tokens + q->image_tokens;
        s->prefill_out_tokens -= q->out_tokens;
        break;
    case SEQ_DECODE:
        s->ndecode--;
        s->sum_v_end -= q->v_end;
        if (s->ndecode == 0) s->sum_v_end = 0;
        break;
    default:
        return -ENOENT;
    }
    slot_release(s, i);
    purge_stale(s);
    return 0;
}

void node_svc_state(const struct node_svc *s, struct fy_node_state *st)
{
    *st = s->st;
    st->running = s->nprefill + s->ndecode;
    st->queued = s->nwait;
    double pre = s->prefill_tokens;
    if (s->prefill.head >= 0) {
        /* the head's done share of its prefill is no longer ahead of anyone */
        const struct seq *h = &s->seqs[s->prefill.head];
        if (h->prefill_total > 0)
            pre -= (h->prompt_tokens + h->image_tokens) *
                   (1.0 - fmax(0.0, h->prefill_left) / h->prefill_total);
    }
    double dec = s->sum_v_end - s->ndecode * s->v;
    st->queued_tokens = s->wait_tokens + pre + s->prefill_out_tokens + (dec > 0 ? dec : 0);
    st->healthy = 1;
}

double node_svc_busy_ms(const struct node_svc *s) { return s->busy_ms; }
