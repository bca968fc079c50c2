/* model — predictor model files: pred_save / pred_load (format in model.h). */
#include "pred/model.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pred/pred.h"
#include "util/buf.h"
#include "util/err.h"

static uint64_t fnv1a(const char *p, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= 1099511628211ull;
    }
    return h;
}

static int name_ok(const char *s)
{
    if (!*s) return 0;
    for (; *s; s++)
        if ((unsigned char)*s <= ' ') return 0;
    return 1;
}

/* ==== save ========================================================================= */

int pred_save(const struct pred *p, const char *path, char *err, size_t errlen)
{
    struct buf b;
    buf_init(&b);
    int rc = -1;
    FILE *fp = NULL;
    buf_printf(&b, "%s %d\n", MODEL_MAGIC, MODEL_VERSION);
    buf_printf(&b, "dims hash=%d mgqp=%d rls=%d parts=%d tasks=%d\n", FY_HASH_DIM, MGQP_DIM,
               RLS_MAX, MILP__N, FY_TASK__N);
    buf_printf(&b, "shared %ld\nmu", p->shared.n);
    for (int k = 0; k < MGQP_DIM; k++) buf_printf(&b, " %.17g", p->shared.mu[k]);
    buf_puts(&b, "\nprec");
    for (int k = 0; k < MGQP_DIM; k++) buf_printf(&b, " %.17g", p->shared.prec[k]);
    buf_putc(&b, '\n');
    buf_printf(&b, "nodes %d\n", p->n);
    for (int i = 0; i < p->n; i++) {
        const struct pred_node *pn = &p->node[i];
        if (!name_ok(pn->name)) {
            util_seterr(err, errlen, "node %d: name \"%s\" is empty or has white space",
                        i, pn->name);
            goto cleanup;
        }
        buf_printf(&b, "node %s %s %s\n", pn->name, name_ok(pn->model) ? pn->model : "-",
                   pn->role == FY_ROLE_CLOUD ? "cloud" : "edge");
        for (int k = 0; k < MILP__N; k++) {
            const struct rls *r = &pn->milp.part[k];
            buf_printf(&b, "rls %d %d %.17g %.17g %ld", k, r->d, r->lambda, r->s2, r->n);
            for (int i2 = 0; i2 < r->d; i2++) buf_printf(&b, " %.17g", r->w[i2]);
            for (int i2 = 0; i2 < r->d; i2++)
                for (int j = 0; j < r->d; j++) buf_printf(&b, " %.17g", r->P[i2 * RLS_MAX + j]);
            buf_putc(&b, '\n');
        }
        buf_printf(&b, "cost %.17g %ld %.17g %.17g\n", pn->milp.cost_ratio, pn->milp.nerr,
                   pn->milp.abs_err_sum, pn->milp.ape_sum);
        buf_printf(&b, "mgqp %.17g %ld\nmu", pn->mgqp.q0, pn->mgqp.n);
        for (int k = 0; k < MGQP_DIM; k++) buf_printf(&b, " %.17g", pn->mgqp.mu[k]);
        buf_puts(&b, "\nprec");
        for (int k = 0; k < MGQP_DIM; k++) buf_printf(&b, " %.17g", pn->mgqp.prec[k]);
        buf_puts(&b, "\nend\n");
    }
    if (!b.data) {
        util_seterr(err, errlen, "out of memory");
        goto cleanup;
    }
    uint64_t h = fnv1a(b.data, b.len);
    buf_printf(&b, "checksum %016llx\n", (unsigned long long)h);
    fp = fopen(path, "wb");
    if (!fp) {
        util_seterr(err, errlen, "%s: %s", path, strerror(errno));
        goto cleanup;
    }
    if (fwrite(b.data, 1, b.len, fp) != b.len || fflush(fp) != 0) {
        util_seterr(err, errlen, "%s: write failed: %s", path, strerror(errno));
        goto cleanup;
    }
    rc = 0;
cleanup:
    if (fp && fclose(fp) != 0 && rc == 0) {
        util_seterr(err, errlen, "%s: close failed: %s", path, strerror(errno));
        rc = -1;
    }
    buf_fini(&b);
    return rc;
}

/* ==== load ========================================================================= */

struct lex {
    char *line;        /* current line (NUL-terminated in place) */
    char *save;        /* strtok_r state */
    int lineno;
    const char *path;
    char *err;
    size_t errlen;
};

static const char *tok(struct lex *L)
{
    return strtok_r(NULL, " \t", &L->save);
}

static int num(struct lex *L, double *v, const char *what)
{
    const char *t = tok(L);
    char *end;
    if (!t) {
        util_seterr(L->err, L->errlen, "%s:%d: %s: missing number", L->path, L->lineno, what);
        return -1;
    }
    errno = 0;
    *v = strtod(t, &end);
    /* ERANGE on underflow (a subnormal or a value rounding to 0, which a model may well
     * hold, e.g. a decayed variance) is fine; on overflow it is not */
    int range_ok = errno == ERANGE && isfinite(*v) && fabs(*v) < 1;
    if (*end || end == t || (errno && !range_ok) || !isfinite(*v)) {
        util_seterr(L->err, L->errlen, "%s:%d: %s: \"%.64s\" is not a finite number", L->path,
                    L->lineno, what, t);
        return -1;
    }
    return 0;
}

static int inum(struct lex *L, long *v, long lo, long hi, const char *what)
{
    double d;
    if (num(L, &d, what) < 0) return -1;
    if (d != floor(d) || d < lo || d > hi) {
        util_seterr(L->err, L->errlen, "%s:%d: %s: %g not an integer in [%ld, %ld]", L->path,
                    L->lineno, what, d, lo, hi);
        return -1;
    }
    *v = (long)d;
    return 0;
}

/* Starts the next line; its first word must be `key`. */
static int expect(struct lex *L, char **cursor, const char *key)
{
    if (!*cursor || !**cursor) {
        util_seterr(L->err, L->errlen, "%s:%d: truncated: expected \"%s\"", L->path, L->lineno + 1,
                    key);
        return -1;
    }
    L->line = *cursor;
    char *nl = strchr(L->line, '\n');
    if (nl) {
        *nl = 0;
        *cursor = nl + 1;
    } else {
        *cursor = L->line + strlen(L->line);
    }
    L->lineno++;
    const char *k = strtok_r(L->line, " \t", &L->save);
    if (!k || strcmp(k, key) != 0) {
        util_seterr(L->err, L->errlen, "%s:%d: expected \"%s\", found \"%.20s\"", L->path,
                    L->lineno, key, k ? k : "");
        return -1;
    }
    return 0;
}

static int end_of_line(struct lex *L)
{
    const char *t = tok(L);
    if (t) {
        util_seterr(L->err, L->errlen, "%s:%d: unexpected \"%.20s\" at end of line", L->path,
                    L->lineno, t);
        return -1;
    }
    return 0;
}

/* "mu V..." and "prec V..." lines of an MGQP block. */
static int load_vectors(struct lex *L, char **cur, struct mgqp *m)
{
    char what[48];
    if (expect(L, cur, "mu") < 0) return -1;
    for (int i = 0; i < MGQP_DIM; i++) {
        snprintf(what, sizeof what, "mu[%d]", i);
        if (num(L, &m->mu[i], what) < 0) return -1;
    }
    if (end_of_line(L) < 0 || expect(L, cur, "prec") < 0) return -1;
    for (int i = 0; i < MGQP_DIM; i++) {
        snprintf(what, sizeof what, "prec[%d]", i);
        if (num(L, &m->prec[i], what) < 0) return -1;
        if (!(m->prec[i] > 0)) {
            util_seterr(L->err, L->errlen, "%s:%d: prec[%d] must be > 0", L->path, L->lineno, i);
            return -1;
        }
    }
    if (end_of_line(L) < 0) return -1;
    mgqp_sync(m);
    return 0;
}

static int load_node(struct lex *L, char **cur, struct pred_node *pn)
{
    char what[48];
    for (int k = 0; k < MILP__N; k++) {
        struct rls *r = &pn->milp.part[k];
        long part, d, n;
        if (expect(L, cur, "rls") < 0 || inum(L, &part, k, k, "rls part") < 0 ||
            inum(L, &d, 1, RLS_MAX, "rls dimension") < 0)
            return -1;
        if (d != r->d) {
            util_seterr(L->err, L->errlen, "%s:%d: rls part %d has dimension %ld, this build %d",
                        L->path, L->lineno, k, d, r->d);
            return -1;
        }
        if (num(L, &r->lambda, "rls lambda") < 0 || num(L, &r->s2, "rls s2") < 0 ||
            inum(L, &n, 0, 1L << 62, "rls n") < 0)
            return -1;
        if (!(r->lambda > 0 && r->lambda <= 1) || r->s2 < 0) {
            util_seterr(L->err, L->errlen, "%s:%d: rls lambda must be in (0,1] and s2 >= 0",
                        L->path, L->lineno);
            return -1;
        }
        r->n = n;
        for (int i = 0; i < d; i++) {
            snprintf(what, sizeof what, "rls w[%d]", i);
            if (num(L, &r->w[i], what) < 0) return -1;
        }
        for (int i = 0; i < d * d; i++) {
            snprintf(what, sizeof what, "rls P[%d]", i);
            if (num(L, &r->P[(i / d) * RLS_MAX + i % d], what) < 0) return -1;
        }
        if (end_of_line(L) < 0) return -1;
    }
    long n;
    if (expect(L, cur, "cost") < 0 || num(L, &pn->milp.cost_ratio, "cost ratio") < 0 ||
        inum(L, &n, 0, 1L << 62, "error count") < 0 ||
        num(L, &pn->milp.abs_err_sum, "abs error sum") < 0 ||
        num(L, &pn->milp.ape_sum, "ape sum") < 0 || end_of_line(L) < 0)
        return -1;
    pn->milp.nerr = n;
    if (expect(L, cur, "mgqp") < 0 || num(L, &pn->mgqp.q0, "mgqp q0") < 0 ||
        inum(L, &n, 0, 1L << 62, "mgqp n") < 0 || end_of_line(L) < 0)
        return -1;
    pn->mgqp.n = n;
    if (load_vectors(L, cur, &pn->mgqp) < 0) return -1;
    if (expect(L, cur, "end") < 0 || end_of_line(L) < 0) return -1;
    return 0;
}

static char *slurp(const char *path, size_t *len, char *err, size_t errlen)
{
    FILE *fp = fopen(path, "rb");
    char *data = NULL;
    if (!fp) {
        util_seterr(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    if (fseek(fp, 0, SEEK_END) != 0) goto fail;
    long sz = ftell(fp);
    if (sz < 0) goto fail;
    if ((unsigned long)sz > MODEL_MAX_BYTES) {
        util_seterr(err, errlen, "%s: %ld bytes, more than the %u a model file may have", path, sz,
                    MODEL_MAX_BYTES);
        fclose(fp);
        return NULL;
    }
    rewind(fp);
    data = malloc((size_t)sz + 1);
    if (!data) goto fail;
    if (fread(data, 1, (size_t)sz, fp) != (size_t)sz) goto fail;
    data[sz] = 0;
    *len = (size_t)sz;
    fclose(fp);
    return data;
fail:
    util_seterr(err, errlen, "%s: cannot read: %s", path, strerror(errno));
    free(data);
    fclose(fp);
    return NULL;
}

struct pred *pred_load(const char *path, const struct fy_node *nodes, int nnodes, char *err,
                       size_t errlen)
{
    size_t len = 0;
    char *data = slurp(path, &len, err, errlen);
    struct pred *p = NULL, *ok = NULL;
    if (!data) return NULL;
    struct lex L = {.path = path, .err = err, .errlen = errlen};
    if (memchr(data, 0, len)) {
        util_seterr(err, errlen, "%s: not a ferry model file (binary data)", path);
        goto cleanup;
    }
    if (strncmp(data, MODEL_MAGIC " ", strlen(MODEL_MAGIC) + 1) != 0) {
        util_seterr(err, errlen, "%s:1: not a ferry model file (no \"%s\" header)", path,
                    MODEL_MAGIC);
        goto cleanup;
    }
    long ver = strtol(data + strlen(MODEL_MAGIC) + 1, NULL, 10);
    if (ver != MODEL_VERSION) {
        util_seterr(err, errlen, "%s:1: model format version %ld, this ferry reads version %d",
                    path, ver, MODEL_VERSION);
        goto cleanup;
    }
    /* checksum line: the last line */
    char *cs = NULL;
    for (char *q = data; (q = strstr(q, "\nchecksum ")) != NULL; q++) cs = q + 1;
    if (!cs) {
        util_seterr(err, errlen, "%s: truncated: no checksum line", path);
        goto cleanup;
    }
    unsigned long long want = strtoull(cs + 9, NULL, 16);
    if (fnv1a(data, (size_t)(cs - data)) != want) {
        util_seterr(err, errlen, "%s: checksum mismatch: the file is damaged or was edited", path);
        goto cleanup;
    }
    *cs = 0;
    p = pred_new(nodes, nnodes);
    if (!p) {
        util_seterr(err, errlen, "out of memory");
        goto cleanup;
    }
    char *cur = data;
    long v;
    if (expect(&L, &cur, MODEL_MAGIC) < 0 || inum(&L, &v, 1, 1000, "version") < 0) goto cleanup;
    if (expect(&L, &cur, "dims") < 0) goto cleanup;
    char want_dims[128];
    snprintf(want_dims, sizeof want_dims, "hash=%d mgqp=%d rls=%d parts=%d tasks=%d",
             FY_HASH_DIM, MGQP_DIM, RLS_MAX, MILP__N, FY_TASK__N);
    const char *rest = L.save ? L.save : "";
    if (strcmp(rest, want_dims) != 0) {
        util_seterr(err, errlen, "%s:%d: dimensions \"%s\" do not match this build's \"%s\"", path,
                    L.lineno, rest, want_dims);
        goto cleanup;
    }
    long nn;
    if (expect(&L, &cur, "shared") < 0 || inum(&L, &nn, 0, 1L << 62, "shared n") < 0 ||
        end_of_line(&L) < 0)
        goto cleanup;
    p->shared.n = nn;
    if (load_vectors(&L, &cur, &p->shared) < 0) goto cleanup;
    if (expect(&L, &cur, "nodes") < 0 || inum(&L, &nn, 0, FY_MAX_NODES, "node count") < 0 ||
        end_of_line(&L) < 0)
        goto cleanup;
    for (long i = 0; i < nn; i++) {
        if (expect(&L, &cur, "node") < 0) goto cleanup;
        const char *name = tok(&L), *model = tok(&L), *role = tok(&L);
        if (!name || !model || !role || end_of_line(&L) < 0) {
            util_seterr(err, errlen, "%s:%d: expected \"node NAME MODEL ROLE\"", path, L.lineno);
            goto cleanup;
        }
        if (strlen(name) >= FY_NAME_MAX || strlen(model) >= FY_NAME_MAX) {
            util_seterr(err, errlen, "%s:%d: node or model name longer than %d bytes", path,
                        L.lineno, FY_NAME_MAX - 1);
            goto cleanup;
        }
        if (strcmp(role, "edge") && strcmp(role, "cloud")) {
            util_seterr(err, errlen, "%s:%d: role \"%.20s\" is not edge or cloud", path, L.lineno,
                        role);
            goto cleanup;
        }
        struct fy_node tmp;
        memset(&tmp, 0, sizeof tmp);
        snprintf(tmp.name, sizeof tmp.name, "%s", name);
        snprintf(tmp.prof.model, sizeof tmp.prof.model, "%s", strcmp(model, "-") ? model : "");
        tmp.role = strcmp(role, "cloud") ? FY_ROLE_EDGE : FY_ROLE_CLOUD;
        int bi = pred_find(p, name);
        if (bi >= 0 && strcmp(p->node[bi].model, tmp.prof.model) != 0) {
            util_seterr(err, errlen,
                        "%s:%d: node %s was trained for model \"%s\" but is configured with \"%s\"",
                        path, L.lineno, name, tmp.prof.model, p->node[bi].model);
            goto cleanup;
        }
        if (bi < 0) bi = pred_add_node(p, &tmp);
        if (bi < 0) {
            util_seterr(err, errlen, "%s:%d: more than %d nodes", path, L.lineno, FY_MAX_NODES);
            goto cleanup;
        }
        if (load_node(&L, &cur, &p->node[bi]) < 0) goto cleanup;
    }
    while (*cur == '\n' || *cur == ' ') cur++;
    if (*cur) {
        util_seterr(err, errlen, "%s:%d: unexpected content before the checksum",
                    path, L.lineno + 1);
        goto cleanup;
    }
    ok = p;
    p = NULL;
cleanup:
    pred_free(p);
    free(data);
    return ok;
}
