/* profile — INI profiles of devices, models, links and nodes (format in profile.h and
 * docs/simulator.md "Profiles"). */
#include "node/profile.h"

#include <errno.h>
#include <ini.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util/file.h"
#include "util/grow.h"
#include "util/num.h"

/* ==== INI reading with line numbers =============================================== */

static unsigned ini_key_hash(const char *sk)
{
    unsigned h = 2166136261u; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)sk; *p; p++) h = (h ^ *p) * 16777619u;
    return h;
}

static struct node_ini_key *ini_key_slot(struct node_ini_key *slot, size_t cap, unsigned h,
                                         const char *sk)
{
    for (size_t i = h & (cap - 1);; i = (i + 1) & (cap - 1))
        if (!slot[i].sk[0] || (slot[i].hash == h && !strcmp(slot[i].sk, sk))) return &slot[i];
}

int node_ini_keys_add(struct node_ini_keys *k, const char *section, const char *key, int line)
{
    char sk[sizeof k->slot[0].sk];
    snprintf(sk, sizeof sk, "%.50s]%.50s", section, key); /* ']' ends no section name */
    unsigned h = ini_key_hash(sk);
    if (2 * (k->n + 1) > k->cap) { /* at most half full: probes stay short */
        size_t cap = k->cap ? 2 * k->cap : 64;
        struct node_ini_key *ns = calloc(cap, sizeof *ns);
        if (!ns) return -ENOMEM;
        for (size_t i = 0; i < k->cap; i++)
            if (k->slot[i].sk[0]) *ini_key_slot(ns, cap, k->slot[i].hash, k->slot[i].sk) = k->slot[i];
        free(k->slot);
        k->slot = ns;
        k->cap = cap;
    }
    struct node_ini_key *e = ini_key_slot(k->slot, k->cap, h, sk);
    if (e->sk[0]) return e->line;
    e->hash = h;
    e->line = line;
    memcpy(e->sk, sk, sizeof sk);
    k->n++;
    return 0;
}

void node_ini_keys_fini(struct node_ini_keys *k)
{
    free(k->slot);
    memset(k, 0, sizeof *k);
}

struct ini_ctx {
    FILE *fp;
    int line;
    int too_long;   /* > 0: a line was longer than this many characters */
    node_ini_cb cb;
    void *arg;
    char *err;
    size_t errlen;
    int failed;     /* line at which the callback reported an error (message in err), or 0 */
    struct node_ini_keys seen;
};

/* inih reader: one line per call, counted, so the handler knows where it is. */
static char *ini_reader_counting(char *str, int num, void *stream)
{
    struct ini_ctx *c = stream;
    if (!fgets(str, num, c->fp)) return NULL;
    c->line++;
    size_t n = strlen(str);
    if (n > 0 && str[n - 1] != '\n' && !feof(c->fp)) {
        const char *p = str + strspn(str, " \t");
        if (*p == ';' || *p == '#') { /* a long comment: drop its tail, it says nothing */
            int ch;
            while ((ch = fgetc(c->fp)) != EOF && ch != '\n') {}
            return str;
        }
        c->too_long = num > 2 ? num - 2 : 1; /* characters a line may have before its break */
        return NULL;
    }
    return str;
}

static int ini_handler_cb(void *user, const char *section, const char *name, const char *value)
{
    struct ini_ctx *c = user;
    if (c->failed) return 0; /* inih reads on after an error: keep the first one's message */
    int first = node_ini_keys_add(&c->seen, section, name, c->line);
    if (first != 0) {
        if (first < 0) snprintf(c->err, c->errlen, "out of memory");
        else
            snprintf(c->err, c->errlen, "[%s] %s: set again (first at line %d; one value per "
                     "key and file — an indented line continues the key above it)", section,
                     name, first);
        c->failed = c->line;
        return 0;
    }
    if (c->cb(c->arg, section, name, value, c->line, c->err, c->errlen) < 0) {
        c->failed = c->line;
        return 0;
    }
    return 1;
}

int node_ini_read(const char *path, node_ini_cb cb, void *arg, char *err, size_t errlen)
{
    struct stat stt;
    if (stat(path, &stt) < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    if (S_ISDIR(stt.st_mode)) {
        snprintf(err, errlen, "%s: is a directory", path);
        return -1;
    }
    if ((unsigned long long)stt.st_size > NODE_INI_MAX_BYTES) {
        snprintf(err, errlen, "%s: larger than %u bytes", path, NODE_INI_MAX_BYTES);
        return -1;
    }
    FILE *fp = fopen(path, "r");
    if (!fp) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    char msg[512] = "";
    struct ini_ctx c = {.fp = fp, .cb = cb, .arg = arg, .err = msg, .errlen = sizeof msg};
    int rc = ini_parse_stream(ini_reader_counting, &c, ini_handler_cb, &c);
    node_ini_keys_fini(&c.seen);
    fclose(fp);
    if (c.too_long) {
        snprintf(err, errlen, "%s:%d: line longer than %d characters", path, c.line,
                 c.too_long);
        return -1;
    }
    if (c.failed && (rc <= 0 || rc == c.failed)) { /* else a syntax error came first */
        snprintf(err, errlen, "%s:%d: %s", path, c.failed, msg);
        return -1;
    }
    if (rc != 0) {
        snprintf(err, errlen, "%s:%d: syntax error (expected [section] or key = value)", path,
                 rc > 0 ? rc : c.line);
        return -1;
    }
    return 0;
}

/* ==== value parsing ================================================================ */

/* A number in [lo, hi]. The upper bounds are far above any real device, model or link
 * (they catch a unit slip such as 1e300 or 1e-300, which the simulator would otherwise
 * turn into 1e62 ms latencies). */
static int num_key(const char *key, const char *v, double lo, double hi, double *out,
                   char *err, size_t errlen)
{
    if (util_parse_double(v, lo, hi, out) < 0) {
        snprintf(err, errlen, "%s = %s: expected a number in [%g, %g]", key, v, lo, hi);
        return -1;
    }
    return 0;
}

/* A rate or size: 0 (not given, derived or unknown) or a number in [min, hi]. */
static int rate_key(const char *key, const char *v, double min, double hi, double *out,
                    char *err, size_t errlen)
{
    double d;
    if (util_parse_double(v, 0, hi, &d) < 0 || !(d == 0 || d >= min)) {
        snprintf(err, errlen, "%s = %s: expected 0 or a number in [%g, %g]", key, v, min, hi);
        return -1;
    }
    *out = d;
    return 0;
}

static int int_key(const char *key, const char *v, int lo, int hi, int *out, char *err,
                   size_t errlen)
{
    double d;
    if (util_parse_double(v, lo, hi, &d) < 0 || d != floor(d)) {
        snprintf(err, errlen, "%s = %s: expected an integer in [%d, %d]", key, v, lo, hi);
        return -1;
    }
    *out = (int)d;
    return 0;
}

static int name_key(const char *key, const char *v, char *out, size_t cap, char *err, size_t errlen)
{
    size_t n = strlen(v);
    if (n == 0 || n >= cap) {
        snprintf(err, errlen, "%s: expected a name of 1..%zu characters", key, cap - 1);
        return -1;
    }
    memcpy(out, v, n + 1);
    return 0;
}

int node_parse_role(const char *s, enum fy_role *out)
{
    if (!strcmp(s, "edge")) *out = FY_ROLE_EDGE;
    else if (!strcmp(s, "cloud")) *out = FY_ROLE_CLOUD;
    else return -1;
    return 0;
}

int node_parse_vt_family(const char *s, enum fy_vt_family *out)
{
    if (!strcmp(s, "qwen2vl")) *out = FY_VT_QWEN2VL;
    else if (!strcmp(s, "llava")) *out = FY_VT_LLAVA;
    else if (!strcmp(s, "generic")) *out = FY_VT_GENERIC;
    else return -1;
    return 0;
}

/* ==== library ====================================================================== */

void node_lib_init(struct node_lib *lib) { memset(lib, 0, sizeof *lib); }

void node_lib_fini(struct node_lib *lib)
{
    free(lib->dev);
    free(lib->mod);
    free(lib->lnk);
    free(lib->lnk_at);
    free(lib->node);
    memset(lib, 0, sizeof *lib);
}

const struct node_device *node_lib_find_device(const struct node_lib *lib, const char *name)
{
    for (int i = 0; i < lib->ndev; i++)
        if (!strcmp(lib->dev[i].name, name)) return &lib->dev[i];
    return NULL;
}

const struct node_model *node_lib_find_model(const struct node_lib *lib, const char *name)
{
    for (int i = 0; i < lib->nmod; i++)
        if (!strcmp(lib->mod[i].name, name)) return &lib->mod[i];
    return NULL;
}

const struct link_spec *node_lib_find_link(const struct node_lib *lib, const char *name)
{
    for (int i = 0; i < lib->nlnk; i++)
        if (!strcmp(lib->lnk[i].name, name)) return &lib->lnk[i];
    return NULL;
}

const struct node_def *node_lib_find_node(const struct node_lib *lib, const char *name)
{
    for (int i = 0; i < lib->nnode; i++)
        if (!strcmp(lib->node[i].name, name)) return &lib->node[i];
    return NULL;
}

static void copy_file(char *dst, size_t cap, const char *file)
{
    snprintf(dst, cap, "%s", file ? file : "");
}

static int feed_device(struct node_lib *lib, const char *file, const char *name, const char *key,
                       const char *v, int line, char *err, size_t errlen)
{
    struct node_device *d = (struct node_device *)node_lib_find_device(lib, name);
    if (!d) {
        struct node_device *grown =
            util_grow(lib->dev, &lib->capdev, (size_t)lib->ndev, sizeof *grown, 8);
        if (!grown) goto oom;
        lib->dev = grown;
        d = &lib->dev[lib->ndev++];
        memset(d, 0, sizeof *d);
        snprintf(d->name, sizeof d->name, "%s", name);
        d->eff_decode = 0.6;
        d->eff_prefill = 0.4;
        d->line = line;
        copy_file(d->file, sizeof d->file, file);
    }
    if (!strcmp(key, "mem_bw_gbs")) return rate_key(key, v, 1e-3, 1e6, &d->mem_bw_gbs, err, errlen);
    if (!strcmp(key, "tflops")) return rate_key(key, v, 1e-3, 1e6, &d->tflops, err, errlen);
    if (!strcmp(key, "mem_gb")) return num_key(key, v, 0, 1e6, &d->mem_gb, err, errlen);
    if (!strcmp(key, "eff_decode") || !strcmp(key, "eff_prefill")) {
        double x; /* a share of the peak: below 0.001 is a unit slip, not a device */
        if (num_key(key, v, 1e-3, 1, &x, err, errlen) < 0) return -1;
        if (key[4] == 'd') d->eff_decode = x;
        else d->eff_prefill = x;
        return 0;
    }
    if (!strcmp(key, "description")) return 0;
    snprintf(err, errlen, "[device %s]: unknown key '%s' (mem_bw_gbs, tflops, mem_gb, "
             "eff_decode, eff_prefill, description)", name, key);
    return -1;
oom:
    snprintf(err, errlen, "out of memory");
    return -1;
}

/* Names of enum fy_task in its order (feat_task_name's; the node area reads profiles
 * without the feature extractor). */
static const char *const g_task_names[] = {"chat", "caption", "count", "ocr",
                                           "yesno", "mcq", "reason"};
_Static_assert(sizeof g_task_names / sizeof g_task_names[0] == FY_TASK__N,
               "one name per enum fy_task");

static int task_index(const char *s)
{
    for (int t = 0; t < FY_TASK__N; t++)
        if (!strcmp(s, g_task_names[t])) return t;
    return -1;
}

static int feed_model(struct node_lib *lib, const char *file, const char *name, const char *key,
                      const char *v, int line, char *err, size_t errlen)
{
    struct node_model *m = (struct node_model *)node_lib_find_model(lib, name);
    if (!m) {
        struct node_model *grown =
            util_grow(lib->mod, &lib->capmod, (size_t)lib->nmod, sizeof *grown, 8);
        if (!grown) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        lib->mod = grown;
        m = &lib->mod[lib->nmod++];
        memset(m, 0, sizeof *m);
        snprintf(m->name, sizeof m->name, "%s", name);
        m->bytes_per_param = 2;
        m->patches_per_token = 1;
        m->vt_family = FY_VT_GENERIC;
        m->line = line;
        copy_file(m->file, sizeof m->file, file);
    }
    if (!strcmp(key, "params_b")) return rate_key(key, v, 1e-4, 1e5, &m->params_b, err, errlen);
    if (!strcmp(key, "vision_params_b"))
        return num_key(key, v, 0, 1e5, &m->vision_params_b, err, errlen);
    if (!strcmp(key, "bytes_per_param"))
        return rate_key(key, v, 0.01, 16, &m->bytes_per_param, err, errlen);
    if (!strcmp(key, "patches_per_token"))
        return num_key(key, v, 1, 1e4, &m->patches_per_token, err, errlen);
    if (!strcmp(key, "context_limit"))
        return int_key(key, v, 1, 1000000000, &m->context_limit, err, errlen);
    if (!strcmp(key, "vt_family")) {
        if (node_parse_vt_family(v, &m->vt_family) < 0) {
            snprintf(err, errlen, "vt_family = %s: expected qwen2vl, llava or generic", v);
            return -1;
        }
        return 0;
    }
    if (!strcmp(key, "cap")) return num_key(key, v, -1e6, 1e6, &m->cap_default, err, errlen);
    if (!strncmp(key, "cap.", 4)) {
        const char *skill = key + 4;
        if (!*skill || strlen(skill) >= sizeof m->skill[0]) {
            snprintf(err, errlen, "%s: skill name must have 1..%zu characters", key,
                     sizeof m->skill[0] - 1);
            return -1;
        }
        int i;
        for (i = 0; i < m->nskills; i++)
            if (!strcmp(m->skill[i], skill)) break;
        if (i == m->nskills) {
            if (m->nskills == NODE_MAX_SKILLS) {
                snprintf(err, errlen, "%s: more than %d skills", key, NODE_MAX_SKILLS);
                return -1;
            }
            snprintf(m->skill[i], sizeof m->skill[i], "%s", skill);
            m->nskills++;
        }
        return num_key(key, v, -1e6, 1e6, &m->cap[i], err, errlen);
    }
    if (!strncmp(key, "prior.", 6)) {
        int t = task_index(key + 6);
        if (t < 0) {
            snprintf(err, errlen, "%s: unknown task '%s' (chat, caption, count, ocr, yesno, "
                     "mcq, reason)", key, key + 6);
            return -1;
        }
        double q;
        if (util_parse_double(v, 0, 1, &q) < 0 || q == 0 || q == 1) {
            snprintf(err, errlen, "%s = %s: expected an accuracy in (0, 1)", key, v);
            return -1;
        }
        m->prior[t] = q;
        return 0;
    }
    if (!strcmp(key, "description")) return 0;
    snprintf(err, errlen, "[model %s]: unknown key '%s' (params_b, vision_params_b, "
             "bytes_per_param, patches_per_token, vt_family, context_limit, cap, cap.SKILL, "
             "prior.TASK, description)", name, key);
    return -1;
}

static int parse_list(const char *key, const char *v, double *out, int max, int *n, char *err,
                      size_t errlen)
{
    const char *p = v;
    *n = 0;
    while (*p == ' ' || *p == '\t') p++;
    if (!*p) {
        snprintf(err, errlen, "%s: expected 1 to %d comma-separated numbers", key, max);
        return -1;
    }
    for (;;) {
        if (*n == max) {
            snprintf(err, errlen, "%s: more than %d values", key, max);
            return -1;
        }
        /* one item: up to the comma, without the white space around it (util/num) */
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        while (len && (p[len - 1] == ' ' || p[len - 1] == '\t')) len--;
        char item[64];
        double d = 0;
        int ok = len < sizeof item;
        if (ok) {
            memcpy(item, p, len);
            item[len] = '\0';
            ok = util_parse_double(item, 0, 1e6, &d) == 0;
        }
        if (!ok) {
            snprintf(err, errlen, "%s = %s: value %d is not a number in [0, 1e+06]", key, v,
                     *n + 1);
            return -1;
        }
        out[(*n)++] = d;
        if (!end) break;
        p = end + 1;
        while (*p == ' ' || *p == '\t') p++;
    }
    return 0;
}

static int feed_link(struct node_lib *lib, const char *file, const char *name, const char *key,
                     const char *v, int line, char *err, size_t errlen)
{
    struct link_spec *l = (struct link_spec *)node_lib_find_link(lib, name);
    if (!l) {
        /* lnk and lnk_at grow together: one capacity for both */
        size_t cap = lib->caplnk;
        struct node_link_at *nl = util_grow(lib->lnk_at, &cap, (size_t)lib->nlnk, sizeof *nl, 8);
        if (!nl) goto oom;
        lib->lnk_at = nl;
        cap = lib->caplnk;
        struct link_spec *grown =
            util_grow(lib->lnk, &cap, (size_t)lib->nlnk, sizeof *grown, 8);
        if (!grown) goto oom;
        lib->lnk = grown;
        lib->caplnk = cap;
        memset(&lib->lnk_at[lib->nlnk], 0, sizeof lib->lnk_at[0]);
        lib->lnk_at[lib->nlnk].sec.line = line;
        copy_file(lib->lnk_at[lib->nlnk].sec.file, sizeof lib->lnk_at[0].sec.file, file);
        l = &lib->lnk[lib->nlnk++];
        memset(l, 0, sizeof *l);
        snprintf(l->name, sizeof l->name, "%s", name);
        l->kind = LINK_CONST;
    }
    struct node_link_at *at = &lib->lnk_at[l - lib->lnk];
    if (!strcmp(key, "kind") || !strcmp(key, "series")) {
        struct node_origin *o = key[0] == 'k' ? &at->kind : &at->series;
        o->line = line;
        copy_file(o->file, sizeof o->file, file);
    }
    if (!strcmp(key, "kind")) {
        if (!strcmp(v, "const")) l->kind = LINK_CONST;
        else if (!strcmp(v, "series")) l->kind = LINK_SERIES;
        else if (!strcmp(v, "markov")) l->kind = LINK_MARKOV;
        else if (!strcmp(v, "views")) l->kind = LINK_VIEWS;
        else {
            snprintf(err, errlen, "kind = %s: expected const, series, markov or views", v);
            return -1;
        }
        return 0;
    }
    /* a link's upload rate and Markov sojourns are > 0 when given (left out: a series or
     * views link does without them; node_lib_check_link asks for them otherwise) */
    if (!strcmp(key, "up_mbps")) return num_key(key, v, 1e-3, 1e7, &l->base.up_mbps, err, errlen);
    if (!strcmp(key, "down_mbps"))
        return rate_key(key, v, 1e-3, 1e7, &l->base.down_mbps, err, errlen);
    if (!strcmp(key, "rtt_ms")) return num_key(key, v, 0, 1e6, &l->base.rtt_ms, err, errlen);
    if (!strcmp(key, "jitter_ms")) return num_key(key, v, 0, 1e6, &l->base.jitter_ms, err, errlen);
    if (!strcmp(key, "bad_mbps")) return num_key(key, v, 1e-3, 1e7, &l->bad_mbps, err, errlen);
    if (!strcmp(key, "good_s")) return num_key(key, v, 1e-3, 1e9, &l->good_s, err, errlen);
    if (!strcmp(key, "bad_s")) return num_key(key, v, 1e-3, 1e9, &l->bad_s, err, errlen);
    if (!strcmp(key, "view_s"))
        return parse_list(key, v, l->view_s, LINK_MAX_VIEWS, &l->nviews, err, errlen);
    if (!strcmp(key, "series")) {
        /* relative to the file that names it */
        const char *slash = file ? strrchr(file, '/') : NULL;
        int n;
        if (v[0] == '/' || !slash)
            n = snprintf(l->series_path, sizeof l->series_path, "%s", v);
        else
            n = snprintf(l->series_path, sizeof l->series_path, "%.*s/%s",
                         (int)(slash - file), file, v);
        if (n < 0 || (size_t)n >= sizeof l->series_path) {
            snprintf(err, errlen, "series = %s: path too long", v);
            return -1;
        }
        return 0;
    }
    if (!strcmp(key, "description")) return 0;
    snprintf(err, errlen, "[link %s]: unknown key '%s' (kind, up_mbps, down_mbps, rtt_ms, "
             "jitter_ms, series, bad_mbps, good_s, bad_s, view_s, description)", name, key);
    return -1;
oom:
    snprintf(err, errlen, "out of memory");
    return -1;
}

int node_lib_check_link(const struct node_lib *lib, const char *name, char *err, size_t errlen)
{
    const struct link_spec *l = node_lib_find_link(lib, name);
    if (!l) {
        snprintf(err, errlen, "link '%s' is not defined (no [link %s] section)", name, name);
        return -1;
    }
    char msg[600];
    struct link *built = link_new(l, 1, msg, sizeof msg);
    if (!built) {
        /* a series file's error at the series key; a missing key at the kind that asks
         * for it; else (kind const by default) at the section */
        static const char *const kinds[] = {"const", "series", "markov", "views"};
        const struct node_link_at *at = &lib->lnk_at[l - lib->lnk];
        const struct node_origin *o = &at->sec;
        const char *key = NULL, *val = NULL;
        if (l->kind == LINK_SERIES && l->series_path[0] && at->series.file[0]) {
            o = &at->series;
            key = "series";
            val = l->series_path;
        } else if (at->kind.file[0]) {
            o = &at->kind;
            key = "kind";
            val = (unsigned)l->kind < 4 ? kinds[l->kind] : "?";
        }
        if (o->line > 0) snprintf(err, errlen, "%s:%d: %s", o->file, o->line, msg);
        else if (key) /* --set or a sweep value: the assignment, as the experiment names it */
            snprintf(err, errlen, "%s link.%s.%s=%s: %s", o->file, l->name, key, val, msg);
        else snprintf(err, errlen, "%s: %s", o->file, msg);
        return -1;
    }
    link_free(built);
    return 0;
}

static int feed_node(struct node_lib *lib, const char *file, const char *name, const char *key,
                     const char *v, int line, char *err, size_t errlen)
{
    struct node_def *n = (struct node_def *)node_lib_find_node(lib, name);
    if (!n) {
        struct node_def *grown =
            util_grow(lib->node, &lib->capnode, (size_t)lib->nnode, sizeof *grown, 8);
        if (!grown) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        lib->node = grown;
        n = &lib->node[lib->nnode++];
        memset(n, 0, sizeof *n);
        snprintf(n->name, sizeof n->name, "%s", name);
        n->role = FY_ROLE_EDGE;
        n->tpot_slope = -1;     /* max_seqs 0, tpot_slope < 0: the role's default (derive) */
        n->line = line;
        copy_file(n->file, sizeof n->file, file);
    }
    struct node_origin *at = !strcmp(key, "device") ? &n->at_device
                           : !strcmp(key, "model") ? &n->at_model
                           : !strcmp(key, "link") ? &n->at_link : NULL;
    if (at) {
        char *dst = at == &n->at_device ? n->device : at == &n->at_model ? n->model : n->link;
        if (name_key(key, v, dst, FY_NAME_MAX, err, errlen) < 0) return -1;
        at->line = line;
        copy_file(at->file, sizeof at->file, file);
        return 0;
    }
    if (!strcmp(key, "role")) {
        if (node_parse_role(v, &n->role) < 0) {
            snprintf(err, errlen, "role = %s: expected edge or cloud", v);
            return -1;
        }
        return 0;
    }
    if (!strcmp(key, "max_seqs")) return int_key(key, v, 1, 1000000, &n->max_seqs, err, errlen);
    if (!strcmp(key, "max_queue"))
        return int_key(key, v, 0, 1000000000, &n->max_queue, err, errlen);
    if (!strcmp(key, "tpot_slope")) return num_key(key, v, 0, 100, &n->tpot_slope, err, errlen);
    if (!strcmp(key, "usd_per_mtok_in"))
        return num_key(key, v, 0, 1e6, &n->usd_per_mtok_in, err, errlen);
    if (!strcmp(key, "usd_per_mtok_out"))
        return num_key(key, v, 0, 1e6, &n->usd_per_mtok_out, err, errlen);
    if (!strcmp(key, "usd_per_hour")) return num_key(key, v, 0, 1e6, &n->usd_per_hour, err, errlen);
    if (!strcmp(key, "cache_saving")) return num_key(key, v, 0, 1, &n->cache_saving, err, errlen);
    if (!strcmp(key, "prefill_tps"))
        return rate_key(key, v, NODE_MIN_TPS, 1e9, &n->prefill_tps, err, errlen);
    if (!strcmp(key, "decode_tps"))
        return rate_key(key, v, NODE_MIN_TPS, 1e9, &n->decode_tps, err, errlen);
    if (!strcmp(key, "vision_ms_per_token"))
        return num_key(key, v, 0, NODE_MAX_VISION_MS, &n->vision_ms_per_token, err, errlen);
    if (!strcmp(key, "description")) return 0;
    snprintf(err, errlen, "[node %s]: unknown key '%s' (device, model, role, link, max_seqs, "
             "tpot_slope, usd_per_mtok_in, usd_per_mtok_out, usd_per_hour, cache_saving, max_queue, "
             "prefill_tps, decode_tps, vision_ms_per_token, description)", name, key);
    return -1;
}

int node_lib_feed(struct node_lib *lib, const char *file, const char *section, const char *key,
                  const char *value, int line, char *err, size_t errlen)
{
    static const struct {
        const char *kind;
        int (*feed)(struct node_lib *, const char *, const char *, const char *, const char *,
                    int, char *, size_t);
    } kinds[] = {
        {"device", feed_device}, {"model", feed_model}, {"link", feed_link}, {"node", feed_node},
    };
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        size_t kl = strlen(kinds[k].kind);
        if (strncmp(section, kinds[k].kind, kl) != 0 || section[kl] != ' ') continue;
        const char *name = section + kl + 1;
        while (*name == ' ') name++;
        if (!*name || strlen(name) >= FY_NAME_MAX || strchr(name, ' ')) {
            snprintf(err, errlen, "[%s]: expected [%s NAME] with a name of 1..%d characters "
                     "without spaces", section, kinds[k].kind, FY_NAME_MAX - 1);
            return -1;
        }
        return kinds[k].feed(lib, file, name, key, value, line, err, errlen) < 0 ? -1 : 1;
    }
    return 0;
}

struct load_ctx { struct node_lib *lib; const char *path; };

static int load_cb(void *arg, const char *section, const char *key, const char *value, int line,
                   char *err, size_t errlen)
{
    struct load_ctx *c = arg;
    int rc = node_lib_feed(c->lib, c->path, section, key, value, line, err, errlen);
    if (rc == 0) {
        snprintf(err, errlen, "[%s]: unknown section (expected [device X], [model X], "
                 "[link X] or [node X])", section);
        return -1;
    }
    return rc < 0 ? -1 : 0;
}

int node_lib_load(struct node_lib *lib, const char *path, char *err, size_t errlen)
{
    struct load_ctx c = {lib, path};
    return node_ini_read(path, load_cb, &c, err, errlen);
}

int node_lib_load_dir(struct node_lib *lib, const char *dir, char *err, size_t errlen)
{
    static const char *const exts[] = {".ini", NULL};
    char **files;
    int n = util_list_dir(dir, exts, &files, err, errlen), rc = n < 0 ? -1 : 0;
    for (int i = 0; i < n && rc == 0; i++) rc = node_lib_load(lib, files[i], err, errlen);
    if (n > 0) util_free_list(files, n);
    return rc;
}

/* ==== built-in defaults ============================================================= */

/* The default edge/cloud pair of data/profiles, section by section (profile.h,
 * node_profile_default). Keep in step with the files: tests/test-node.c compares. */
static const struct builtin {
    struct node_device dev;
    struct node_model mod;
    struct node_def node;
    struct fy_link link;
} g_builtin[2] = {
    [FY_ROLE_EDGE] = {
        /* devices.ini [device rtx3090]: 936 GB/s, ~71 dense fp16 TFLOP/s, 24 GB */
        .dev = {.name = "rtx3090", .mem_bw_gbs = 936, .tflops = 71, .mem_gb = 24,
                .eff_decode = 0.6, .eff_prefill = 0.4},
        /* models.ini [model qwen2-vl-2b]: 1.5 B LM + 675 M ViT, bf16, 2x2 patches a token */
        .mod = {.name = "qwen2-vl-2b", .params_b = 1.5, .vision_params_b = 0.675,
                .bytes_per_param = 2, .patches_per_token = 4, .vt_family = FY_VT_QWEN2VL,
                .context_limit = 32768},
        /* nodes.ini [node edge-3090]: owned GPU, no price */
        .node = {.name = "edge-3090", .device = "rtx3090", .model = "qwen2-vl-2b",
                 .link = "lan", .role = FY_ROLE_EDGE, .max_seqs = 16, .tpot_slope = 0.02},
        /* links.ini [link lan]: 1000 / 1000 Mbit/s, 1 ms RTT, 0.2 ms jitter */
        .link = {.up_mbps = 1000, .down_mbps = 1000, .rtt_ms = 1, .jitter_ms = 0.2},
    },
    [FY_ROLE_CLOUD] = {
        /* devices.ini [device a100-40gb]: 1555 GB/s, 312 dense fp16 TFLOP/s, 40 GB */
        .dev = {.name = "a100-40gb", .mem_bw_gbs = 1555, .tflops = 312, .mem_gb = 40,
                .eff_decode = 0.6, .eff_prefill = 0.4},
        /* models.ini [model qwen2.5-vl-7b]: 7.6 B LM + 675 M ViT, bf16 */
        .mod = {.name = "qwen2.5-vl-7b", .params_b = 7.6, .vision_params_b = 0.675,
                .bytes_per_param = 2, .patches_per_token = 4, .vt_family = FY_VT_QWEN2VL,
                .context_limit = 32768},
        /* nodes.ini [node cloud-a100]: rented at 1.5 USD/h (ferry's assumption) */
        .node = {.name = "cloud-a100", .device = "a100-40gb", .model = "qwen2.5-vl-7b",
                 .link = "wan-300", .role = FY_ROLE_CLOUD, .max_seqs = 32, .tpot_slope = 0.02,
                 .usd_per_hour = 1.5},
        /* links.ini [link wan-300]: 300 / 300 Mbit/s, 30 ms RTT, 2 ms jitter */
        .link = {.up_mbps = 300, .down_mbps = 300, .rtt_ms = 30, .jitter_ms = 2},
    },
};

static const struct builtin *builtin_of(enum fy_role role)
{
    return &g_builtin[role == FY_ROLE_CLOUD ? FY_ROLE_CLOUD : FY_ROLE_EDGE];
}

/* The profile of node n on device d with model m: roofline rates (profile.h) unless n
 * gives measured ones (0 when they cannot be derived), n's batching and prices, m's
 * context and visual tokens; keys n or m left out take the defaults of n's role. */
static void derive(const struct node_device *d, const struct node_model *m,
                   const struct node_def *n, struct fy_node_profile *p)
{
    const struct builtin *b = builtin_of(n->role);
    memset(p, 0, sizeof *p);
    snprintf(p->model, sizeof p->model, "%s", m->name);
    /* Roofline (profile.h): decode memory-bound, prefill and vision compute-bound. */
    double weight_bytes = m->params_b * 1e9 * m->bytes_per_param;
    double flops = d->tflops * 1e12;
    p->decode_tps = n->decode_tps > 0 ? n->decode_tps
                    : weight_bytes > 0 ? d->eff_decode * d->mem_bw_gbs * 1e9 / weight_bytes : 0;
    p->prefill_tps = n->prefill_tps > 0 ? n->prefill_tps
                     : m->params_b > 0 ? d->eff_prefill * flops / (2.0 * m->params_b * 1e9) : 0;
    p->vision_ms_per_token =
        n->vision_ms_per_token > 0 ? n->vision_ms_per_token
        : flops > 0 ? 1000.0 * 2.0 * m->vision_params_b * 1e9 * m->patches_per_token /
                          (d->eff_prefill * flops)
                    : 0;
    p->tpot_slope = n->tpot_slope >= 0 ? n->tpot_slope : b->node.tpot_slope;
    p->max_seqs = n->max_seqs > 0 ? n->max_seqs : b->node.max_seqs;
    p->context_limit = m->context_limit > 0 ? m->context_limit : b->mod.context_limit;
    p->vt_family = m->vt_family;
    p->usd_per_mtok_in = n->usd_per_mtok_in;
    p->usd_per_mtok_out = n->usd_per_mtok_out;
    p->usd_per_hour = n->usd_per_hour;
}

void node_profile_default(struct fy_node_profile *p, enum fy_role role)
{
    const struct builtin *b = builtin_of(role);
    derive(&b->dev, &b->mod, &b->node, p);
}

void node_link_default(struct fy_link *l, enum fy_role role) { *l = builtin_of(role)->link; }

/* ==== quality prior ================================================================ */

double node_cap_accuracy(double cap)
{
    /* trapezoid rule over z in [-8, 8] against the standard normal density */
    enum { K = 161 };
    double num = 0, den = 0;
    for (int i = 0; i < K; i++) {
        double z = -8.0 + 16.0 * i / (K - 1), w = exp(-0.5 * z * z);
        if (i == 0 || i == K - 1) w *= 0.5;
        double x = cap - (NODE_PRIOR_D_MEAN + NODE_PRIOR_D_SD * z);
        num += w * (x >= 0 ? 1 / (1 + exp(-x)) : exp(x) / (1 + exp(x)));
        den += w;
    }
    return num / den;
}

void node_model_task_priors(const struct node_model *m, double *q)
{
    for (int t = 0; t < FY_TASK__N; t++) {
        q[t] = 0;
        if (m->prior[t] > 0 && m->prior[t] < 1) {
            q[t] = m->prior[t];
            continue;
        }
        for (int i = 0; i < m->nskills; i++)
            if (!strcmp(m->skill[i], g_task_names[t])) q[t] = node_cap_accuracy(m->cap[i]);
    }
}

int node_lib_load_path(struct node_lib *lib, const char *path, char *err, size_t errlen)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode) ? node_lib_load_dir(lib, path, err, errlen)
                                                      : node_lib_load(lib, path, err, errlen);
}

/* ==== resolution =================================================================== */

double node_model_cap(const struct node_model *m, const char *skill)
{
    if (skill)
        for (int i = 0; i < m->nskills; i++)
            if (!strcmp(m->skill[i], skill)) return m->cap[i];
    return m->cap_default;
}

/* "FILE:LINE: [node N]: what 'name' is not defined" at the line that named it (at; NULL
 * or never set: the node's section), "--set: ..." for a command-line entry (line 0). */
static void undefined(char *err, size_t errlen, const struct node_def *n,
                      const struct node_origin *at, const char *what, const char *name)
{
    const char *file = at && at->file[0] ? at->file : n->file;
    int line = at && at->file[0] ? at->line : n->line;
    if (line > 0)
        snprintf(err, errlen, "%s:%d: [node %s]: %s '%s' is not defined", file, line, n->name,
                 what, name);
    else
        snprintf(err, errlen, "%s: [node %s]: %s '%s' is not defined", file, n->name, what, name);
}

int node_lib_resolve(const struct node_lib *lib, const char *node_name, struct fy_node *out,
                     char *err, size_t errlen)
{
    const struct node_def *n = node_lib_find_node(lib, node_name);
    if (!n) {
        snprintf(err, errlen, "node '%s' is not defined (no [node %s] section)", node_name,
                 node_name);
        return -1;
    }
    const struct node_device *d = node_lib_find_device(lib, n->device);
    const struct node_model *m = node_lib_find_model(lib, n->model);
    if (!n->device[0] || !d) {
        undefined(err, errlen, n, n->device[0] ? &n->at_device : NULL, "device", n->device);
        return -1;
    }
    if (!n->model[0] || !m) {
        undefined(err, errlen, n, n->model[0] ? &n->at_model : NULL, "model", n->model);
        return -1;
    }
    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "%s", n->name);
    out->role = n->role;
    struct fy_node_profile *p = &out->prof;
    derive(d, m, n, p);
    node_model_task_priors(m, p->q_prior);
    if (!(p->decode_tps > 0) || !(p->prefill_tps > 0)) {
        snprintf(err, errlen, "%s:%d: [node %s]: cannot derive service rates (device %s needs "
                 "mem_bw_gbs and tflops > 0, model %s params_b > 0, or give decode_tps and "
                 "prefill_tps)", n->file, n->line, n->name, d->name, m->name);
        return -1;
    }
    /* each key in range can still combine into a rate no node has (a 1e5 B model on a
     * 0.001 GB/s device): the derived rates get the bounds of the measured ones */
    if (p->decode_tps < NODE_MIN_TPS || p->prefill_tps < NODE_MIN_TPS ||
        !(p->vision_ms_per_token <= NODE_MAX_VISION_MS)) {
        snprintf(err, errlen, "%s:%d: [node %s]: device %s with model %s derives decode %g "
                 "tok/s, prefill %g tok/s, vision %g ms/token (rates at least %g, vision at "
                 "most %g: check their keys, or give decode_tps, prefill_tps, "
                 "vision_ms_per_token)", n->file, n->line, n->name, d->name, m->name,
                 p->decode_tps, p->prefill_tps, p->vision_ms_per_token, NODE_MIN_TPS,
                 NODE_MAX_VISION_MS);
        return -1;
    }
    /* the weights (language model + vision encoder) must fit the device's memory */
    double all_bytes = (m->params_b + m->vision_params_b) * 1e9 * m->bytes_per_param;
    if (d->mem_gb > 0 && all_bytes > d->mem_gb * 1e9) {
        snprintf(err, errlen, "%s:%d: [node %s]: model %s needs %.1f GB of weights, device %s "
                 "has %.1f GB (use a larger device, fewer bytes_per_param, or mem_gb = 0 for "
                 "unknown)", n->file, n->line, n->name, m->name, all_bytes / 1e9, d->name,
                 d->mem_gb);
        return -1;
    }
    if (n->link[0]) {
        const struct link_spec *l = node_lib_find_link(lib, n->link);
        if (!l) {
            undefined(err, errlen, n, &n->at_link, "link", n->link);
            return -1;
        }
        out->link = l->base;
    }
    out->st.healthy = 1;
    return 0;
}
