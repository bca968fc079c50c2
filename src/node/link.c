/* link — piecewise-constant upload bandwidth and upload-time integration (link.h). */
#include "node/link.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/file.h"
#include "util/grow.h"
#include "util/num.h"
#include "util/rng.h"

struct seg { double t0_ms, mbps; };  /* bandwidth from t0 until the next segment */

struct link {
    struct link_spec spec;
    struct seg *segs;    /* ascending t0; segs[0].t0_ms = 0 */
    size_t nsegs, cap;
    double horizon_ms;   /* markov: segments are generated up to here */
    int markov_bad;      /* markov: state of the last segment */
    struct rng rng;
};

static int seg_push(struct link *l, double t0, double mbps)
{
    struct seg *n = util_grow(l->segs, &l->cap, l->nsegs, sizeof *n, 16);
    if (!n) return -1;
    l->segs = n;
    l->segs[l->nsegs++] = (struct seg){t0, mbps};
    return 0;
}

/* A series file: "t_s,mbps" lines (a "t_s..." header, '#' comments and blank lines
 * skipped), times from 0 and increasing. Read whole (at most LINK_SERIES_MAX_BYTES), so a
 * comment line of any length is one line and line numbers stay exact. */
#define LINK_SERIES_MAX_BYTES ((size_t)LINK_MAX_POINTS * 64)
#define LINK_SERIES_MAX_S 1e9 /* a point's time: the simulator's span (SIM_MAX_SPAN_S) */

static int load_series(struct link *l, const char *path, char *err, size_t errlen)
{
    uint8_t *text;
    size_t n;
    char rerr[600];
    if (util_read_file(path, LINK_SERIES_MAX_BYTES, &text, &n, rerr, sizeof rerr) < 0) {
        snprintf(err, errlen, "link %s: series file %s", l->spec.name, rerr);
        return -1;
    }
    int lineno = 0, rc = 0;
    double last_t = -1;
    char *next = (char *)text;
    while (rc == 0 && next < (char *)text + n) {
        char *line = next, *nl = memchr(line, '\n', (size_t)((char *)text + n - line));
        if (nl) *nl = '\0';
        next = nl ? nl + 1 : (char *)text + n;
        lineno++;
        if (strlen(line) != (size_t)(next - line) - (nl ? 1 : 0)) {
            snprintf(err, errlen, "%s:%d: NUL byte in the line", path, lineno);
            rc = -1;
            break;
        }
        char *p = line;
        while (*p == ' ' || *p == '\t') p++;
        if (*p == '#' || *p == '\r' || !*p) continue;
        if (!strncmp(p, "t_s", 3)) continue; /* header */
        /* "t_s,mbps", each field a util/num number (white space around it allowed) */
        char *comma = strchr(p, ','), *q = comma ? comma + 1 : NULL;
        double t = 0, mbps = 0;
        if (comma) {
            char *e1 = comma;
            while (e1 > p && (e1[-1] == ' ' || e1[-1] == '\t')) e1--;
            *e1 = '\0';
            while (*q == ' ' || *q == '\t') q++;
            size_t ql = strlen(q);
            while (ql && (q[ql - 1] == ' ' || q[ql - 1] == '\t' || q[ql - 1] == '\r')) q[--ql] = '\0';
        }
        if (!comma || util_parse_double(p, 0, LINK_SERIES_MAX_S, &t) < 0 ||
            util_parse_double(q, 1e-3, 1e7, &mbps) < 0) {
            snprintf(err, errlen, "%s:%d: expected \"t_s,mbps\" with t_s in [0, %g] and mbps "
                     "in [0.001, 1e+07]", path, lineno, LINK_SERIES_MAX_S);
            rc = -1;
            break;
        }
        if (l->nsegs == 0 && t != 0) {
            snprintf(err, errlen, "%s:%d: the first point must be at t_s = 0", path, lineno);
            rc = -1;
            break;
        }
        if (t <= last_t) {
            snprintf(err, errlen, "%s:%d: times must increase (%g after %g)", path, lineno, t,
                     last_t);
            rc = -1;
            break;
        }
        if (l->nsegs >= LINK_MAX_POINTS) {
            snprintf(err, errlen, "%s:%d: more than %d points", path, lineno, LINK_MAX_POINTS);
            rc = -1;
            break;
        }
        if (seg_push(l, t * 1000.0, mbps) < 0) {
            snprintf(err, errlen, "%s: out of memory", path);
            rc = -1;
            break;
        }
        last_t = t;
    }
    if (rc == 0 && l->nsegs == 0) {
        snprintf(err, errlen, "%s: no points", path);
        rc = -1;
    }
    free(text);
    return rc;
}

struct link *link_new(const struct link_spec *s, uint64_t seed, char *err, size_t errlen)
{
    struct link *l = calloc(1, sizeof *l);
    if (!l) {
        snprintf(err, errlen, "link: out of memory");
        return NULL;
    }
    l->spec = *s;
    rng_seed(&l->rng, seed);
    if (!(s->base.rtt_ms >= 0) || !(s->base.jitter_ms >= 0)) {
        snprintf(err, errlen, "link %s: rtt_ms and jitter_ms must be >= 0", s->name);
        goto fail;
    }
    switch (s->kind) {
    case LINK_CONST:
        if (!(s->base.up_mbps > 0)) {
            snprintf(err, errlen, "link %s: kind = const needs up_mbps > 0 (Mbit/s)", s->name);
            goto fail;
        }
        if (seg_push(l, 0, s->base.up_mbps) < 0) goto oom;
        break;
    case LINK_SERIES:
        if (!s->series_path[0]) {
            snprintf(err, errlen, "link %s: kind = series needs series = FILE", s->name);
            goto fail;
        }
        if (load_series(l, s->series_path, err, errlen) < 0) goto fail;
        break;
    case LINK_MARKOV:
        if (!(s->base.up_mbps > 0) || !(s->bad_mbps > 0) || !(s->good_s > 0) || !(s->bad_s > 0)) {
            snprintf(err, errlen,
                     "link %s: kind = markov needs up_mbps, bad_mbps, good_s, bad_s all > 0",
                     s->name);
            goto fail;
        }
        if (seg_push(l, 0, s->base.up_mbps) < 0) goto oom;
        l->horizon_ms = 0;
        l->markov_bad = 0;
        break;
    case LINK_VIEWS:
        if (s->nviews < 1) {
            snprintf(err, errlen, "link %s: kind = views needs view_s = t0,t1,...", s->name);
            goto fail;
        }
        if (seg_push(l, 0, s->base.up_mbps > 0 ? s->base.up_mbps : 1) < 0) goto oom;
        break;
    default:
        snprintf(err, errlen, "link %s: unknown kind", s->name);
        goto fail;
    }
    return l;
oom:
    snprintf(err, errlen, "link %s: out of memory", s->name);
fail:
    free(l->segs);
    free(l);
    return NULL;
}

void link_free(struct link *l)
{
    if (!l) return;
    free(l->segs);
    free(l);
}

/* Markov: extend the generated trajectory until it covers t_ms. The chain's sojourn
 * draws come from the link's own stream in time order, so the trajectory does not
 * depend on the order or times of queries. */
static void markov_extend(struct link *l, double t_ms)
{
    while (l->horizon_ms <= t_ms) {
        double mean_s = l->markov_bad ? l->spec.bad_s : l->spec.good_s;
        double dur = rng_exponential(&l->rng, 1.0 / (mean_s * 1000.0));
        l->horizon_ms += dur;
        l->markov_bad = !l->markov_bad;
        if (seg_push(l, l->horizon_ms, l->markov_bad ? l->spec.bad_mbps : l->spec.base.up_mbps) < 0) {
            l->horizon_ms = INFINITY; /* out of memory: the last state holds forever */
            return;
        }
    }
}

/* Index of the segment holding t_ms (binary search). */
static size_t seg_at(struct link *l, double t_ms)
{
    if (l->spec.kind == LINK_MARKOV) markov_extend(l, t_ms);
    size_t lo = 0, hi = l->nsegs;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (l->segs[mid].t0_ms <= t_ms) lo = mid;
        else hi = mid;
    }
    return lo;
}

double link_up_mbps_at(struct link *l, double t_ms)
{
    if (t_ms < 0) t_ms = 0;
    size_t i = seg_at(l, t_ms); /* may grow (move) segs: index after the call */
    return l->segs[i].mbps;
}

double link_upload_end(struct link *l, double t0_ms, double bytes, int views, double jitter_ms)
{
    double delay = l->spec.base.rtt_ms / 2 + jitter_ms;
    if (delay < 0) delay = 0;
    if (l->spec.kind == LINK_VIEWS) {
        int k = views < 0 ? 0 : views;
        if (k >= l->spec.nviews) k = l->spec.nviews - 1;
        return t0_ms + delay + l->spec.view_s[k] * 1000.0;
    }
    /* Integrate bits over the piecewise-constant bandwidth curve. 1 Mbps = 1000 bits/ms. */
    double bits = bytes * 8.0, t = t0_ms < 0 ? 0 : t0_ms;
    size_t i = seg_at(l, t);
    while (bits > 0) {
        if (l->spec.kind == LINK_MARKOV && i + 1 >= l->nsegs) markov_extend(l, l->horizon_ms);
        double rate = l->segs[i].mbps * 1000.0; /* bits per ms */
        double seg_end = i + 1 < l->nsegs ? l->segs[i + 1].t0_ms : INFINITY;
        double can = (seg_end - t) * rate;
        if (can >= bits) {
            t += bits / rate;
            bits = 0;
        } else {
            bits -= can;
            t = seg_end;
            i++;
        }
    }
    return t + delay;
}

double link_down_ms(const struct link *l) { return l->spec.base.rtt_ms / 2; }

void link_state(struct link *l, double t_ms, struct fy_link *out)
{
    *out = l->spec.base;
    if (l->spec.kind != LINK_VIEWS) out->up_mbps = link_up_mbps_at(l, t_ms);
}
