/* learned — helpers of the learned policies (learned.h). */
#include "policy/learned.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pred/pred.h"
#include "util/num.h"

struct pred *pol__bank(struct pred **own, const struct pol_ctx *c)
{
    if (c->pred) return c->pred;
    if (!*own) *own = pred_new(c->nodes, c->nnodes);
    return *own;
}

void pol__bank_observe(struct pred *own, const struct pol_ctx *c, const struct fy_outcome *o)
{
    if (own && !c->pred) pred_observe(own, c->f, c->nodes, o);
}

int pol__allowed(const struct pol_ctx *c, int i)
{
    if (i < 0 || i >= c->nnodes || !c->nodes[i].st.healthy) return 0;
    if (c->prefs && c->prefs->privacy == FY_PRIV_EDGE_ONLY && c->nodes[i].role != FY_ROLE_EDGE)
        return 0;
    return 1;
}

int pol__plans(const struct pol_ctx *c, int i, int downscale_px, int aux, struct fy_plan *out)
{
    const struct fy_features *f = c->f;
    int n = 0, nimg = f->nimages < FY_MAX_IMAGES ? f->nimages : FY_MAX_IMAGES;
    pol_plan_keep(&out[n++], i);
    if (nimg == 0) return n;
    int larger = 0;
    for (int k = 0; k < nimg; k++) {
        int side = f->img[k].width > f->img[k].height ? f->img[k].width : f->img[k].height;
        if (side > downscale_px) larger = 1;
    }
    if (larger && downscale_px > 0) {
        pol_plan_keep(&out[n], i);
        out[n].downscale_px = downscale_px;
        for (int k = 0; k < nimg; k++) out[n].img[k] = FY_IMG_DOWNSCALE;
        n++;
    }
    pol_plan_keep(&out[n], i);
    for (int k = 0; k < nimg; k++) out[n].img[k] = FY_IMG_DROP;
    n++;
    if (aux >= 0 && aux != i && pol__allowed(c, aux)) {
        pol_plan_keep(&out[n], i);
        out[n].aux_node = aux;
        for (int k = 0; k < nimg; k++) out[n].img[k] = FY_IMG_SPLIT;
        n++;
    }
    return n;
}

static uint64_t fnv(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return h ? h : 1;
}

struct pol__sess *pol__session(struct pol__sessions *t, const char *id)
{
    if (!id || !*id) return NULL;
    uint64_t k = fnv(id);
    size_t h = (size_t)(k % POL_SESS_CAP), oldest = h;
    t->clock++;
    for (size_t probe = 0; probe < 16; probe++) {
        struct pol__sess *s = &t->s[(h + probe) % POL_SESS_CAP];
        if (s->key == k) {
            s->stamp = t->clock;
            return s;
        }
        if (s->key == 0) {
            memset(s, 0, sizeof *s);
            s->key = k;
            s->stamp = t->clock;
            s->last_node = s->last_action = -1;
            return s;
        }
        if (s->stamp < t->s[oldest].stamp) oldest = (h + probe) % POL_SESS_CAP;
    }
    struct pol__sess *s = &t->s[oldest];
    memset(s, 0, sizeof *s);
    s->key = k;
    s->stamp = t->clock;
    s->last_node = s->last_action = -1;
    return s;
}

int pol__num(const char *pol, const char *k, const char *v, double lo, double hi, double *out,
             char *err, size_t errlen)
{
    if (util_parse_double(v, lo, hi, out) < 0) {
        snprintf(err, errlen, "%s: %s=%s: expected a number in [%g, %g]", pol, k, v, lo, hi);
        return -1;
    }
    return 0;
}

int pol__int(const char *pol, const char *k, const char *v, double lo, double hi, double *out,
             char *err, size_t errlen)
{
    if (pol__num(pol, k, v, lo, hi, out, err, errlen) < 0) return -1;
    if (*out != floor(*out)) {
        snprintf(err, errlen, "%s: %s=%s: expected an integer in [%g, %g]", pol, k, v, lo, hi);
        return -1;
    }
    return 0;
}
