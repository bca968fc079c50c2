/* collect — `ferry bench collect` engine (collect.h). */
#include "emu/collect.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "emu/answers.h"
#include "emu/dataset.h"
#include "emu/reply.h"
#include "emu/score.h"
#include "feat/features.h"
#include "feat/image.h"
#include "feat/tokens.h"
#include "gw/config.h"
#include "policy/policy.h"
#include "pred/trace.h"
#include "req/request.h"
#include "util/b64.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/file.h"

/* ==== requests ======================================================================== */

/* Plan variants, in the order of an item's outcomes on each node (EMU_PLAN_* bit 1 << v). */
enum { V_KEEP, V_DOWN, V_DROP, V__N };
static const char *const variant_name[V__N] = {"keep", "downscale", "drop"};

struct variant {
    int kind;                     /* V_* */
    char *down[FY_MAX_IMAGES];    /* V_DOWN: data: URL of downscaled image i (owned);
                                   * NULL = image i is sent as it is (not larger) */
    int image_tokens;             /* Qwen2-VL visual tokens of the images sent */
};

struct active {                   /* an item being run on its nodes with its plans */
    const struct emu_item *it;
    char **urls;                  /* data: URLs of its images */
    int sides[FY_MAX_IMAGES];     /* their longer sides, px */
    size_t img_bytes;
    int nvar;                     /* variants run: var[0] is keep */
    struct variant var[V__N];
    int njobs, next_job;          /* (node, variant) runs: nodes × nvar, node-major */
    int pending;
    struct trace_record *rec;
};

struct xfer {
    struct emu_post post;
    struct active *a;
    int node;                     /* index into the selected nodes */
    int var;                      /* index into a->var */
    int slot;                     /* index into a->rec->out */
    size_t body_len;
    double t0;
};

/* V_DOWN of an item: every image whose longer side exceeds px re-encoded by the
 * gateway's downscaler (feat_image_downscale_jpeg at the config's downscale_quality,
 * what gw_route_downscale sends) as a data:image/jpeg URL. *made = images changed (0:
 * the variant is the same as keep and is not run). 0, or -1 with err. */
static int make_downscaled(struct active *a, struct variant *v, int px, int quality,
                           int *made, char *err, size_t errlen)
{
    const struct emu_item *it = a->it;
    *made = 0;
    v->image_tokens = 0;
    for (int i = 0; i < it->nimages; i++) {
        const struct fy_image_features *im = &a->rec->f.img[i];
        if (a->sides[i] <= px) {
            v->image_tokens += im->tokens[FY_VT_QWEN2VL];
            continue;
        }
        uint8_t *data = NULL, *jpg = NULL;
        size_t n = 0, jl = 0;
        char e[200];
        enum fy_img_format fmt;
        int w = 0, h = 0;
        if (util_read_file(it->images[i], EMU_MAX_IMAGE_BYTES, &data, &n, e, sizeof e) < 0 ||
            feat_image_downscale_jpeg(data, n, px, quality, &jpg, &jl, e, sizeof e) < 0 ||
            feat_image_probe(jpg, jl, &fmt, &w, &h, e, sizeof e) < 0) {
            snprintf(err, errlen, "item %s: %s: downscale to %d px: %s", it->id, it->images[i],
                     px, e);
            free(data);
            free(jpg);
            return -1;
        }
        free(data);
        static const char prefix[] = "data:image/jpeg;base64,";
        v->down[i] = malloc(sizeof prefix + b64_encoded_len(jl, 1) + 1);
        if (!v->down[i]) {
            free(jpg);
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        memcpy(v->down[i], prefix, sizeof prefix - 1);
        b64_encode(jpg, jl, B64_STD, 1, v->down[i] + sizeof prefix - 1);
        free(jpg);
        int t = feat_visual_tokens(FY_VT_QWEN2VL, w, h);
        v->image_tokens += t > 0 ? t : 0;
        (*made)++;
    }
    return 0;
}

/* Loads the item's images as data: URLs, fills the request features and prepares the
 * plan variants asked for (plans: EMU_PLAN_* bits; px, quality: the downscale). */
static int activate(struct active *a, const struct emu_item *it, double t_ms, unsigned plans,
                    int px, int quality, char *err, size_t errlen)
{
    memset(a, 0, sizeof *a);
    a->it = it;
    a->rec = calloc(1, sizeof *a->rec);
    if (!a->rec) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    struct trace_record *r = a->rec;
    snprintf(r->id, sizeof r->id, "%s", it->id);
    snprintf(r->dataset, sizeof r->dataset, "%s", it->dataset);
    r->t_ms = t_ms;
    struct feat_image_opts fo;
    feat_image_opts_default(&fo);
    if (emu_item_image_urls(it, &a->urls, a->sides, &a->img_bytes, err, errlen) < 0) return -1;
    /* features of the request exactly as sent with its images (feat_request: images and
     * text); the other plans' outcomes refer to them, as in the simulator's trace */
    char *body = emu_item_body(it, a->urls, it->nimages, a->sides, "features", 0);
    if (!body) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    struct req_limits lim;
    req_limits_default(&lim);
    lim.max_body_bytes = strlen(body) + 1;
    struct req_error rerr;
    struct fy_request *fr = req_parse(body, strlen(body), &lim, &rerr);
    free(body);
    if (!fr) {
        snprintf(err, errlen, "item %s: %s: %s", it->id, rerr.path, rerr.msg);
        return -1;
    }
    char ferr[256];
    int frc = feat_request(fr, &fo, &r->f, ferr, sizeof ferr);
    req_free(fr);
    if (frc < 0) {
        snprintf(err, errlen, "item %s: %s", it->id, ferr);
        return -1;
    }
    if (it->task_given) r->f.task = it->task; /* the dataset's label beats the guess */
    struct variant *v = &a->var[a->nvar++];
    v->kind = V_KEEP;
    for (int i = 0; i < it->nimages; i++) v->image_tokens += r->f.img[i].tokens[FY_VT_QWEN2VL];
    if ((plans & EMU_PLAN_DOWNSCALE) && it->nimages > 0) {
        int made;
        v = &a->var[a->nvar];
        v->kind = V_DOWN;
        if (make_downscaled(a, v, px, quality, &made, err, errlen) < 0) {
            a->nvar++; /* freed by deactivate */
            return -1;
        }
        if (made) a->nvar++;
        else memset(v, 0, sizeof *v);
    }
    if ((plans & EMU_PLAN_DROP) && it->nimages > 0) {
        v = &a->var[a->nvar++];
        v->kind = V_DROP;
        v->image_tokens = 0;
    }
    return 0;
}

static void deactivate(struct active *a)
{
    if (a->it) emu_item_urls_free(a->urls, a->it->nimages);
    for (int k = 0; k < V__N; k++)
        for (int i = 0; i < FY_MAX_IMAGES; i++) free(a->var[k].down[i]);
    free(a->rec);
    memset(a, 0, sizeof *a);
}

/* The plan of variant v on node (the trace's "plan"; as the simulator's cf_plan). */
static void variant_plan(const struct variant *v, int nimages, int node, int px,
                         struct fy_plan *p)
{
    pol_plan_keep(p, node);
    if (v->kind == V_KEEP) return;
    for (int i = 0; i < nimages && i < FY_MAX_IMAGES; i++)
        p->img[i] = v->kind == V_DOWN ? FY_IMG_DOWNSCALE : FY_IMG_DROP;
    if (v->kind == V_DOWN) p->downscale_px = px;
}

/* The request body of variant v for model: the images it sends (none when dropped,
 * downscaled ones in place of the originals) and the item's metadata unchanged. */
static char *variant_body(const struct active *a, const struct variant *v, const char *model,
                          int send_metadata)
{
    char *u[FY_MAX_IMAGES];
    int n = v->kind == V_DROP ? 0 : a->it->nimages;
    for (int i = 0; i < n && i < FY_MAX_IMAGES; i++) u[i] = v->down[i] ? v->down[i] : a->urls[i];
    return emu_item_body(a->it, u, n, a->sides, model, send_metadata);
}

/* ==== run ============================================================================= */

static int file_exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* Sorted ids already in the output (resume). */
struct idset { char (*id)[64]; size_t n; };

static int cmp_id(const void *a, const void *b) { return strcmp(a, b); }

/* 0 when record r holds the plans asked for that apply to it (each item is written
 * once: an item collected with fewer plans would never get the others), else -1 with
 * "path: item ID: no PLAN outcome ..." in err. */
static int record_has_plans(const struct trace_record *r, const char *path, unsigned plans,
                            int px, char *err, size_t errlen)
{
    int nimg = r->f.nimages < FY_MAX_IMAGES ? r->f.nimages : FY_MAX_IMAGES, larger = 0;
    for (int i = 0; i < nimg; i++) larger |= r->f.img[i].width > px || r->f.img[i].height > px;
    int has_down = 0, has_drop = 0;
    for (int k = 0; k < r->nout; k++) {
        const struct fy_plan *p = &r->out[k].o.plan;
        if (nimg > 0 && p->img[0] == FY_IMG_DROP) has_drop = 1;
        for (int i = 0; i < nimg; i++)
            if (p->img[i] == FY_IMG_DOWNSCALE && p->downscale_px == px) has_down = 1;
    }
    const char *missing = NULL;
    if ((plans & EMU_PLAN_DOWNSCALE) && larger && !has_down) missing = "downscale";
    else if ((plans & EMU_PLAN_DROP) && nimg > 0 && !has_drop) missing = "drop";
    if (!missing) return 0;
    snprintf(err, errlen, "%s: item %s has no %s outcome%s (collected with other --plans or "
             "--downscale-px; resume would skip it): write to another file", path, r->id,
             missing, !strcmp(missing, "downscale") ? " at that --downscale-px" : "");
    return -1;
}

static int load_done(const char *path, unsigned plans, int px, struct idset *s, char *err,
                     size_t errlen)
{
    memset(s, 0, sizeof *s);
    if (!path || !file_exists(path)) return 0;
    struct trace_record *recs = NULL;
    size_t n = 0;
    if (trace_read_file(path, 0, &recs, &n, err, errlen) < 0) return -1;
    for (size_t i = 0; i < n; i++)
        if (record_has_plans(&recs[i], path, plans, px, err, errlen) < 0) {
            free(recs);
            return -1;
        }
    s->id = calloc(n ? n : 1, sizeof *s->id);
    if (!s->id) {
        free(recs);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < n; i++) memcpy(s->id[i], recs[i].id, sizeof s->id[i]);
    s->n = n;
    free(recs);
    qsort(s->id, s->n, sizeof *s->id, cmp_id);
    return 0;
}

static int is_done(const struct idset *s, const char *id)
{
    return s->n && bsearch(id, s->id, s->n, sizeof *s->id, cmp_id) != NULL;
}

void emu_collect_opts_default(struct emu_collect_opts *o)
{
    memset(o, 0, sizeof *o);
    o->concurrency = 4;
    o->send_metadata = 1;
    o->timeout_ms = 300000;
    o->plans = EMU_PLAN_KEEP;
    o->downscale_px = EMU_COLLECT_DOWNSCALE_PX;
}

int emu_collect_parse_plans(const char *list, unsigned *plans, char *err, size_t errlen)
{
    unsigned m = 0;
    const char *p = list ? list : "";
    for (;;) {
        size_t len = strcspn(p, ",");
        int v = -1;
        for (int k = 0; k < V__N; k++)
            if (len == strlen(variant_name[k]) && !strncmp(p, variant_name[k], len)) v = k;
        if (v < 0) {
            snprintf(err, errlen, "--plans: unknown plan '%.*s' (expected keep, downscale, drop, "
                     "comma-separated)", (int)(len < 64 ? len : 64), p);
            return -1;
        }
        if (m & 1u << v) {
            snprintf(err, errlen, "--plans: plan '%s' given twice", variant_name[v]);
            return -1;
        }
        m |= 1u << v;
        if (!p[len]) break;
        p += len + 1;
    }
    if (!(m & EMU_PLAN_KEEP)) {
        snprintf(err, errlen, "--plans: keep is required (the outcome the other plans are "
                              "compared with)");
        return -1;
    }
    *plans = m;
    return 0;
}

static double nonneg(double v) { return v > 0 ? v : 0; }

/* Fills the outcome of transfer x in its record. */
static void finish_xfer(struct xfer *x, CURLcode cc, const struct gw_node_cfg *nc, int px,
                        struct emu_collect_stats *st)
{
    double t_end = clock_now_ms();
    char why[160];
    int ok = emu_post_done(&x->post, cc, why, sizeof why);
    const struct emu_item *it = x->a->it;
    const struct variant *v = &x->a->var[x->var];
    struct trace_outcome *t = &x->a->rec->out[x->slot];
    memset(t, 0, sizeof *t);
    snprintf(t->node, sizeof t->node, "%s", nc->name);
    t->role = nc->role;
    snprintf(t->model, sizeof t->model, "%s", nc->model[0] ? nc->model : nc->name);
    t->link.up_mbps = nonneg(nc->link.up_mbps);
    t->link.down_mbps = nonneg(nc->link.down_mbps);
    t->link.rtt_ms = nonneg(nc->link.rtt_ms);
    t->link.jitter_ms = nonneg(nc->link.jitter_ms);
    t->state.healthy = 1;
    t->bytes_up = (double)x->body_len;  /* the body as sent: the plan's images */
    t->image_tokens = v->image_tokens;
    struct fy_outcome *o = &t->o;
    variant_plan(v, it->nimages, x->node, px, &o->plan);
    o->failed = !ok;
    o->quality = -1;
    o->e2e_ms = t_end - x->t0;
    o->ttft_ms = x->post.rep.t_first > 0 ? x->post.rep.t_first - x->t0 : o->e2e_ms;
    o->t_prefill_ms = o->ttft_ms;            /* upload + queue + prefill, as seen by a client */
    o->t_decode_ms = o->e2e_ms - o->ttft_ms;
    const char *reply = x->post.rep.content.data ? x->post.rep.content.data : "";
    o->in_tokens = x->post.rep.usage ? x->post.rep.prompt_tokens : 0;
    o->out_tokens = x->post.rep.usage ? x->post.rep.completion_tokens : emu_tokens(reply, strlen(reply));
    if (ok) {
        o->quality = emu_score(it->kind, reply, (const char *const *)it->refs, it->nrefs,
                               (const char *const *)it->choices, it->nchoices);
        st->score_sum += o->quality;
    } else {
        if (!st->failed)
            snprintf(st->first_error, sizeof st->first_error, "node %s%s%s: %s", nc->name,
                     v->kind != V_KEEP ? ", plan " : "", v->kind != V_KEEP ? variant_name[v->kind] : "",
                     why);
        st->failed++;
    }
    o->cost_usd = (o->in_tokens * nonneg(nc->usd_per_mtok_in) +
                   o->out_tokens * nonneg(nc->usd_per_mtok_out)) / 1e6;
    st->runs++;
    st->plan_runs[v->kind]++;
}

static void xfer_free(struct xfer *x)
{
    if (!x) return;
    emu_post_fini(&x->post);
    free(x);
}

int emu_collect_run(const struct emu_collect_opts *o, struct emu_collect_stats *st,
                    char *err, size_t errlen)
{
    memset(st, 0, sizeof *st);
    struct gw_config *cfg = calloc(1, sizeof *cfg);
    struct emu_item *items = NULL;
    int nitems = 0, rc = -1, sel[FY_MAX_NODES], nsel = 0;
    struct idset done = {0};
    FILE *out = NULL;
    CURLM *multi = NULL;
    struct active *act = NULL;
    struct xfer **xs = NULL; /* transfers in flight, conc slots */
    if (!cfg) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    const char *base = o->base;
    if (!base || !*base) base = getenv("FERRY_SHARED");
    if (!base || !*base) base = "../shared";
    gw_config_default(cfg);
    /* keys: only those of the nodes selected are needed (checked below) */
    if (gw_config_load_flags(o->config, cfg, GW_CONFIG_NO_KEYS, err, errlen) < 0) goto out;
    if (o->nodes && *o->nodes) {
        char tmp[1024];
        snprintf(tmp, sizeof tmp, "%s", o->nodes);
        for (char *save = NULL, *tok = strtok_r(tmp, ",", &save); tok;
             tok = strtok_r(NULL, ",", &save)) {
            int k = -1;
            for (int i = 0; i < cfg->nnodes; i++)
                if (!strcmp(cfg->nodes[i].name, tok)) k = i;
            if (k < 0) {
                snprintf(err, errlen, "--nodes: no node '%s' in %s", tok, o->config);
                goto out;
            }
            for (int j = 0; j < nsel; j++)
                if (sel[j] == k) {
                    snprintf(err, errlen, "--nodes: node '%s' given twice", tok);
                    goto out;
                }
            if (nsel < FY_MAX_NODES) sel[nsel++] = k;
        }
    } else {
        for (int i = 0; i < cfg->nnodes; i++) sel[nsel++] = i;
    }
    for (int j = 0; j < nsel; j++) {
        const struct gw_node_cfg *nc = &cfg->nodes[sel[j]];
        if (nc->api_key_env[0] && !nc->api_key[0]) {
            snprintf(err, errlen, "%s: node '%s': api_key_env: environment variable '%s' is "
                     "not set (--nodes can leave the node out)", o->config, nc->name,
                     nc->api_key_env);
            goto out;
        }
    }
    if (nsel < 1) {
        snprintf(err, errlen, "%s: no nodes", o->config);
        goto out;
    }
    unsigned plans = o->plans ? o->plans : EMU_PLAN_KEEP;
    int px = o->downscale_px > 0 ? o->downscale_px : EMU_COLLECT_DOWNSCALE_PX, nplans = 0;
    for (int k = 0; k < V__N; k++) nplans += (plans >> k) & 1;
    if (!(plans & EMU_PLAN_KEEP) || plans >= 1u << V__N || px < 28 || px > 16384) {
        snprintf(err, errlen, "plans: keep is required, downscale_px must be in 28..16384");
        goto out;
    }
    if (nsel * nplans > FY_MAX_NODES) {
        snprintf(err, errlen, "%d nodes x %d plans = %d outcomes per item: a trace record holds "
                 "at most %d (fewer --nodes or --plans)", nsel, nplans, nsel * nplans,
                 FY_MAX_NODES);
        goto out;
    }
    if (emu_dataset_load(o->dataset, base, &items, &nitems, err, errlen) < 0) goto out;
    if (load_done(o->out, plans, px, &done, err, errlen) < 0) goto out;
    out = o->out ? fopen(o->out, "a") : stdout;
    if (!out) {
        snprintf(err, errlen, "%s: %s", o->out, strerror(errno));
        goto out;
    }
    st->items = nitems;
    int conc = o->concurrency > 0 ? o->concurrency : 4;
    /* at most conc items are active at once (each holds its images in memory) */
    act = calloc((size_t)conc, sizeof *act);
    xs = calloc((size_t)conc, sizeof *xs);
    multi = curl_multi_init();
    if (!act || !xs || !multi) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    double t_start = clock_now_ms(), last_progress = 0;
    int next_item = 0, running = 0, limit_left = o->limit > 0 ? o->limit : -1;
    struct active *cur = NULL; /* item whose (node, plan) runs are being dispatched */
    for (;;) {
        /* dispatch while below the concurrency bound */
        while (running < conc) {
            if (!cur) {
                while (next_item < nitems && is_done(&done, items[next_item].id)) {
                    st->skipped++;
                    next_item++;
                }
                if (next_item >= nitems || limit_left == 0) break;
                int slot = -1;
                for (int i = 0; i < conc; i++)
                    if (!act[i].it) { slot = i; break; }
                if (slot < 0) break;
                if (activate(&act[slot], &items[next_item], clock_now_ms() - t_start, plans, px,
                             cfg->downscale_quality, err, errlen) < 0) {
                    deactivate(&act[slot]);
                    goto out;
                }
                cur = &act[slot];
                cur->njobs = cur->rec->nout = nsel * cur->nvar;
                next_item++;
                if (limit_left > 0) limit_left--;
            }
            struct xfer *x = calloc(1, sizeof *x);
            if (!x) {
                snprintf(err, errlen, "out of memory");
                goto out;
            }
            x->a = cur;
            x->slot = cur->next_job;
            x->node = cur->next_job / cur->nvar;
            x->var = cur->next_job % cur->nvar;
            const struct gw_node_cfg *nc = &cfg->nodes[sel[x->node]];
            char url[GW_URL_MAX + 32], auth[GW_KEY_MAX + 32];
            snprintf(url, sizeof url, "%s/v1/chat/completions", nc->url);
            snprintf(auth, sizeof auth, "Authorization: Bearer %s", nc->api_key);
            char *body = variant_body(cur, &cur->var[x->var], nc->model[0] ? nc->model : nc->name,
                                      o->send_metadata);
            if (emu_post_init(&x->post, url, body, o->timeout_ms > 0 ? o->timeout_ms : 300000L,
                              x) < 0 ||
                !curl_slist_append(x->post.hdr, "Accept: text/event-stream") ||
                (nc->api_key[0] && !curl_slist_append(x->post.hdr, auth))) {
                xfer_free(x);
                snprintf(err, errlen, "out of memory");
                goto out;
            }
            x->body_len = strlen(x->post.body);
            x->t0 = clock_now_ms();
            for (int i = 0; i < conc; i++)
                if (!xs[i]) { xs[i] = x; break; }
            curl_multi_add_handle(multi, x->post.e);
            cur->pending++;
            running++;
            if (++cur->next_job >= cur->njobs) cur = NULL;
        }
        if (!running) break;
        int still = 0;
        curl_multi_perform(multi, &still);
        struct xfer *x;
        CURLcode cc;
        while ((x = emu_post_next_done(multi, &cc))) {
            for (int i = 0; i < conc; i++)
                if (xs[i] == x) xs[i] = NULL;
            finish_xfer(x, cc, &cfg->nodes[sel[x->node]], px, st);
            struct active *a = x->a;
            xfer_free(x);
            running--;
            if (--a->pending == 0 && a != cur) {
                if (trace_write(out, a->rec) < 0 || fflush(out) != 0) {
                    snprintf(err, errlen, "%s: write error", o->out ? o->out : "stdout");
                    goto out;
                }
                st->done++;
                deactivate(a);
            }
            double now = clock_now_ms();
            if (o->progress && (now - last_progress > 200 || !running)) {
                last_progress = now;
                fprintf(stderr, "\rcollect: %d/%d items (%d skipped), %d runs, %d failed, "
                                "%d in flight   ", st->done + st->skipped, nitems, st->skipped,
                        st->runs, st->failed, running);
            }
        }
        if (running) curl_multi_poll(multi, NULL, 0, 100, NULL);
    }
    if (o->progress) fprintf(stderr, "\n");
    rc = 0;
out:
    if (multi) {
        /* on error: abandon transfers still running */
        for (int i = 0; xs && i < (o->concurrency > 0 ? o->concurrency : 4); i++)
            if (xs[i]) {
                curl_multi_remove_handle(multi, xs[i]->post.e);
                xfer_free(xs[i]);
            }
        curl_multi_cleanup(multi);
    }
    free(xs);
    if (act)
        for (int i = 0; i < (o->concurrency > 0 ? o->concurrency : 4); i++)
            if (act[i].it) deactivate(&act[i]);
    free(act);
    if (out && out != stdout) fclose(out);
    emu_dataset_free(items, nitems);
    free(done.id);
    free(cfg);
    return rc;
}
