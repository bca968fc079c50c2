/* gw/hclient — plain-HTTP/1.1 keep-alive client on the loop (see hclient.h).
 *
 * A connection (struct hconn) carries one transfer at a time. Its read event stays armed
 * from creation to close (idle included: no epoll_ctl per request); a write event is
 * added only while connecting or while the request does not fit the socket. */
#define _GNU_SOURCE
#include "gw/hclient.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/uio.h>
#include <unistd.h>

#include "gw/http.h"
#include "util/buf.h"

#define IN_FIRST 16384

/* ---- response head parser ------------------------------------------------------- */

static int lieq(const char *p, size_t n, const char *lit)
{
    return strlen(lit) == n && !strncasecmp(p, lit, n);
}

/* Does the comma-separated list v[0..n) hold token t? */
static int has_tok(const char *v, size_t n, const char *t)
{
    size_t i = 0, tl = strlen(t);
    while (i < n) {
        while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ',')) i++;
        size_t b = i;
        while (i < n && v[i] != ',') i++;
        size_t e = i;
        while (e > b && (v[e - 1] == ' ' || v[e - 1] == '\t')) e--;
        if (e - b == tl && !strncasecmp(v + b, t, tl)) return 1;
    }
    return 0;
}

int gw_hc_parse_head(const char *buf, size_t len, struct gw_hc_resp *r)
{
    memset(r, 0, sizeof *r);
    r->content_length = -1;
    size_t hl = gw_http_head_end(buf, len < GW_HC_HEAD_MAX ? len : GW_HC_HEAD_MAX);
    if (!hl) return len >= GW_HC_HEAD_MAX ? -1 : 0;
    const char *p = buf, *end = buf + hl;
    while (p < end && (*p == '\r' || *p == '\n')) p++;
    int line = 0, ka = 0, te = 0;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl) return -1;
        const char *le = nl;
        if (le > p && le[-1] == '\r') le--;
        size_t n = (size_t)(le - p);
        if (!n) break;
        for (size_t i = 0; i < n; i++) {
            unsigned char ch = (unsigned char)p[i];
            if ((ch < 0x20 && ch != '\t') || ch == 0x7f) return -1;
        }
        if (line++ == 0) {
            /* HTTP/1.x SP 3DIGIT [SP reason] */
            if (n < 12 || strncmp(p, "HTTP/1.", 7) || (p[7] != '0' && p[7] != '1') ||
                p[8] != ' ')
                return -1;
            for (int i = 9; i < 12; i++)
                if (p[i] < '0' || p[i] > '9') return -1;
            if (n > 12 && p[12] != ' ') return -1;
            r->minor = p[7] - '0';
            r->status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
            if (r->status < 100) return -1;
        } else {
            if (*p == ' ' || *p == '\t') return -1;      /* obsolete line folding */
            const char *colon = memchr(p, ':', n);
            if (!colon || colon == p) return -1;
            if (line - 1 > GW_HC_MAX_HEADERS) return -1;
            size_t kl = (size_t)(colon - p);
            for (size_t i = 0; i < kl; i++)
                if (p[i] == ' ' || p[i] == '\t') return -1;
            const char *v = colon + 1;
            while (v < le && (*v == ' ' || *v == '\t')) v++;
            const char *ve = le;
            while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t')) ve--;
            size_t vl = (size_t)(ve - v);
            if (lieq(p, kl, "Content-Length")) {
                long long x = 0;
                if (!vl || vl > 18) return -1;
                for (size_t i = 0; i < vl; i++) {
                    if (v[i] < '0' || v[i] > '9') return -1;
                    x = x * 10 + (v[i] - '0');
                }
                if (r->content_length >= 0 && r->content_length != x) return -1;
                r->content_length = x;
            } else if (lieq(p, kl, "Transfer-Encoding")) {
                if (te++ || !lieq(v, vl, "chunked")) return -1;
                r->chunked = 1;
            } else if (lieq(p, kl, "Connection")) {
                if (has_tok(v, vl, "close")) r->close = 1;
                if (has_tok(v, vl, "keep-alive")) ka = 1;
            } else if (lieq(p, kl, "Content-Type")) {
                size_t k = vl < sizeof r->ctype - 1 ? vl : sizeof r->ctype - 1;
                memcpy(r->ctype, v, k);
                r->ctype[k] = 0;
            }
        }
        p = nl + 1;
    }
    if (!line) return -1;
    if (r->chunked) r->content_length = -1;   /* chunked framing wins (RFC 9112 6.3) */
    if (r->minor == 0 && !ka) r->close = 1;
    return (int)hl;
}

/* ---- connections and transfers ---------------------------------------------------- */

enum { X_SEND, X_HEAD, X_BODY };

struct hconn {
    struct gw_hc *h;
    struct gw_hc_target *t;
    struct hconn *next_idle;
    struct hconn *prev, *next;      /* h->conns */
    int fd;
    struct event rev, wev;
    int rev_on, wev_on;
    int connecting, reused;
    struct gw_hc_xfer *x;           /* NULL when idle */
    char *in;
    size_t in_off, in_len, in_cap;
};

struct gw_hc_xfer {
    struct gw_hc *h;
    struct gw_hc_target *t;
    struct hconn *c;
    struct gw_hc_cb cb;
    void *arg;
    char *head;                     /* request head (owned) */
    size_t head_len;
    const char *body;
    size_t blen, sent;
    int connect_ms, total_ms;
    struct event tmo, dev;
    int phase, paused, got, retried, body_done, until_close, err_pending;
    struct gw_hc_resp resp;
    long long left;
    struct gw_chunked ch;
    struct buf pend;                /* decoded chunked bytes not taken yet */
};

struct gw_hc {
    struct event_base *base;
    struct hconn *conns;
    int active;
};

static void on_rev(evutil_socket_t fd, short what, void *arg);
static void xfer_drop(struct gw_hc_xfer *x);
static void on_wev(evutil_socket_t fd, short what, void *arg);
static void process(struct gw_hc_xfer *x);

static void idle_remove(struct hconn *c)
{
    struct gw_hc_target *t = c->t;
    for (struct hconn **pp = (struct hconn **)&t->idle; *pp; pp = &(*pp)->next_idle)
        if (*pp == c) {
            *pp = c->next_idle;
            t->nidle--;
            return;
        }
}

static void conn_close(struct hconn *c)
{
    struct gw_hc *h = c->h;
    if (!c->x) idle_remove(c);
    else c->x->c = NULL;
    if (c->rev_on) event_del(&c->rev);
    if (c->wev_on) event_del(&c->wev);
    if (c->fd >= 0) close(c->fd);
    if (c->prev) c->prev->next = c->next;
    else h->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    free(c->in);
    free(c);
}

static struct hconn *conn_new(struct gw_hc *h, struct gw_hc_target *t, int *err)
{
    int fd = socket(t->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        *err = GW_HC_ECONNECT;
        return NULL;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    int connecting = 0;
    if (connect(fd, (const struct sockaddr *)&t->addr, t->alen)) {
        if (errno != EINPROGRESS) {
            close(fd);
            *err = GW_HC_ECONNECT;
            return NULL;
        }
        connecting = 1;
    }
    struct hconn *c = calloc(1, sizeof *c);
    if (!c) {
        close(fd);
        *err = GW_HC_ECONNECT;
        return NULL;
    }
    c->h = h;
    c->t = t;
    c->fd = fd;
    c->connecting = connecting;
    event_assign(&c->rev, h->base, fd, EV_READ | EV_PERSIST, on_rev, c);
    event_assign(&c->wev, h->base, fd, EV_WRITE | EV_PERSIST, on_wev, c);
    if (event_add(&c->rev, NULL) == 0) c->rev_on = 1;
    c->next = h->conns;
    if (h->conns) h->conns->prev = c;
    h->conns = c;
    return c;
}

/* Ends x: its connection goes back to the idle list (ok and reusable) or is closed;
 * then end() is called, x already freed. */
static void finish(struct gw_hc_xfer *x, int err)
{
    struct hconn *c = x->c;
    if (c) {
        c->x = NULL;
        x->c = NULL;
        size_t left = c->in_len - c->in_off;
        struct gw_hc_target *t = c->t;
        if (err == GW_HC_OK && !x->resp.close && !x->until_close && !left && !x->paused &&
            t->nidle < GW_HC_IDLE_MAX) {
            c->in_off = c->in_len = 0;
            c->reused = 1;
            c->next_idle = t->idle;
            t->idle = c;
            t->nidle++;
            if (!c->rev_on && event_add(&c->rev, NULL) == 0) c->rev_on = 1;
        } else {
            conn_close(c);
        }
    }
    struct gw_hc_cb cb = x->cb;
    void *arg = x->arg;
    xfer_drop(x);
    cb.end(arg, err);
}

/* Writes what is left of the request. 0 (all sent or waiting for EV_WRITE) or -1. */
static int send_more(struct gw_hc_xfer *x)
{
    struct hconn *c = x->c;
    for (;;) {
        struct iovec iov[2];
        int cnt = 0;
        if (x->sent < x->head_len) {
            iov[cnt].iov_base = x->head + x->sent;
            iov[cnt++].iov_len = x->head_len - x->sent;
            if (x->blen) {
                iov[cnt].iov_base = (void *)x->body;
                iov[cnt++].iov_len = x->blen;
            }
        } else if (x->sent < x->head_len + x->blen) {
            iov[cnt].iov_base = (void *)(x->body + (x->sent - x->head_len));
            iov[cnt++].iov_len = x->head_len + x->blen - x->sent;
        } else {
            if (c->wev_on) {
                event_del(&c->wev);
                c->wev_on = 0;
            }
            x->phase = X_HEAD;
            return 0;
        }
        ssize_t n = writev(c->fd, iov, cnt);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                if (!c->wev_on && event_add(&c->wev, NULL) == 0) c->wev_on = 1;
                return 0;
            }
            return -1;
        }
        x->sent += (size_t)n;
    }
}

static void fail_or_retry(struct gw_hc_xfer *x, int err);

/* Puts x on a connection (an idle one, else a new one) and starts sending. */
static int attach(struct gw_hc_xfer *x, int *err)
{
    struct gw_hc_target *t = x->t;
    struct hconn *c = x->retried ? NULL : t->idle;   /* a retry takes a new connection */
    if (c) {
        t->idle = c->next_idle;
        t->nidle--;
        c->next_idle = NULL;
    } else {
        c = conn_new(x->h, t, err);
        if (!c) return -1;
    }
    c->x = x;
    x->c = c;
    x->phase = X_SEND;
    x->sent = 0;
    if (c->connecting) {
        struct timeval tv = {x->connect_ms / 1000, (x->connect_ms % 1000) * 1000};
        if (event_add(&c->wev, x->connect_ms > 0 ? &tv : NULL) == 0) c->wev_on = 1;
        return 0;
    }
    if (send_more(x)) {
        *err = c->reused ? GW_HC_ERECV : GW_HC_ESEND;
        return -1;
    }
    return 0;
}

static void on_dev(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    struct gw_hc_xfer *x = arg;
    if (x->err_pending) {
        finish(x, x->err_pending);
        return;
    }
    if (x->c && x->phase != X_SEND) process(x);
}

static void on_tmo(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    finish(arg, GW_HC_ETIMEOUT);
}

/* A failure before any response byte on a reused connection: once more on a new one. */
static void fail_or_retry(struct gw_hc_xfer *x, int err)
{
    struct hconn *c = x->c;
    int reused = c && c->reused;
    if (!x->got && reused && !x->retried && err != GW_HC_ETIMEOUT) {
        x->retried = 1;
        conn_close(c);
        memset(&x->resp, 0, sizeof x->resp);
        int e2 = 0;
        if (attach(x, &e2) == 0) return;
        err = e2;
    }
    finish(x, err);
}

static void pause_reading(struct gw_hc_xfer *x)
{
    x->paused = 1;
    if (x->c && x->c->rev_on) {
        event_del(&x->c->rev);
        x->c->rev_on = 0;
    }
}

/* Hands body bytes to data(). 1 taken, 0 paused (not taken), -1 aborted (x is gone). */
static int deliver(struct gw_hc_xfer *x, const char *p, size_t n)
{
    size_t r = x->cb.data(x->arg, p, n);
    if (r == GW_HC_PAUSE) {
        pause_reading(x);
        return 0;
    }
    if (r == 0) {
        finish(x, GW_HC_EABORT);
        return -1;
    }
    return 1;
}

static void process(struct gw_hc_xfer *x)
{
    struct hconn *c = x->c;
    for (;;) {
        size_t avail = c->in_len - c->in_off;
        const char *in = c->in + c->in_off;
        if (x->phase == X_HEAD) {
            if (!avail) return;
            int hl = gw_hc_parse_head(in, avail, &x->resp);
            if (hl == 0) return;
            if (hl < 0) {
                finish(x, GW_HC_EPROTO);
                return;
            }
            c->in_off += (size_t)hl;
            int st = x->resp.status;
            if (st >= 100 && st < 200) {
                if (st == 101) {
                    finish(x, GW_HC_EPROTO);
                    return;
                }
                continue;                            /* interim: the real one follows */
            }
            x->cb.head(x->arg, st, x->resp.ctype);
            x->phase = X_BODY;
            x->body_done = 0;
            if (st == 204 || st == 304) {
                x->body_done = 1;
            } else if (x->resp.chunked) {
                memset(&x->ch, 0, sizeof x->ch);
            } else if (x->resp.content_length >= 0) {
                x->left = x->resp.content_length;
                if (!x->left) x->body_done = 1;
            } else {
                x->until_close = 1;
            }
            continue;
        }
        if (x->phase != X_BODY) return;
        if (x->pend.len) {
            int d = deliver(x, x->pend.data, x->pend.len);
            if (d <= 0) return;
            buf_reset(&x->pend);
        }
        if (x->body_done) {
            finish(x, GW_HC_OK);
            return;
        }
        if (!avail) {
            c->in_off = c->in_len = 0;
            return;
        }
        if (x->resp.chunked) {
            size_t used = 0;
            int rc = gw_http_chunked(&x->ch, in, avail, &x->pend, SIZE_MAX / 2, &used);
            c->in_off += used;
            if (rc < 0) {
                finish(x, GW_HC_EPROTO);
                return;
            }
            if (rc == 1) x->body_done = 1;
            continue;
        }
        size_t k = avail;
        if (!x->until_close && (long long)k > x->left) k = (size_t)x->left;
        int d = deliver(x, in, k);
        if (d <= 0) return;
        c->in_off += k;
        if (!x->until_close) {
            x->left -= (long long)k;
            if (!x->left) x->body_done = 1;
        }
    }
}

static void on_rev(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct hconn *c = arg;
    struct gw_hc_xfer *x = c->x;
    if (!x) {                       /* idle: the backend closed it (or misbehaves) */
        conn_close(c);
        return;
    }
    if (c->connecting) return;      /* on_wev reports the connect result */
    if (c->in_off == c->in_len) c->in_off = c->in_len = 0;
    if (c->in_len == c->in_cap) {
        if (c->in_off) {
            memmove(c->in, c->in + c->in_off, c->in_len - c->in_off);
            c->in_len -= c->in_off;
            c->in_off = 0;
        }
        if (c->in_len == c->in_cap) {
            size_t ncap = c->in_cap ? c->in_cap * 2 : IN_FIRST;
            if (ncap > GW_HC_HEAD_MAX + IN_FIRST) {
                finish(x, GW_HC_EPROTO);    /* a head that does not end */
                return;
            }
            char *ni = realloc(c->in, ncap);
            if (!ni) {
                finish(x, GW_HC_ERECV);
                return;
            }
            c->in = ni;
            c->in_cap = ncap;
        }
    }
    ssize_t n;
    do n = read(fd, c->in + c->in_len, c->in_cap - c->in_len);
    while (n < 0 && errno == EINTR);
    if (n > 0) {
        c->in_len += (size_t)n;
        x->got = 1;
        if (x->phase == X_SEND) return;   /* an early answer waits until we sent */
        process(x);
        return;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (n == 0 && x->phase == X_BODY && x->until_close) {
        x->body_done = 1;               /* the close ends a body without framing */
        x->resp.close = 1;
        process(x);
        return;
    }
    fail_or_retry(x, x->phase == X_SEND && !x->got && !c->reused ? GW_HC_ESEND : GW_HC_ERECV);
}

static void on_wev(evutil_socket_t fd, short what, void *arg)
{
    struct hconn *c = arg;
    struct gw_hc_xfer *x = c->x;
    if (!x) {
        event_del(&c->wev);
        c->wev_on = 0;
        return;
    }
    if (c->connecting) {
        int e = 0;
        socklen_t el = sizeof e;
        if ((what & EV_TIMEOUT) || getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el) || e) {
            finish(x, GW_HC_ECONNECT);
            return;
        }
        c->connecting = 0;
        event_del(&c->wev);             /* re-added without the connect timeout if needed */
        c->wev_on = 0;
    }
    if (send_more(x)) {
        fail_or_retry(x, c->reused ? GW_HC_ERECV : GW_HC_ESEND);
        return;
    }
    if (x->phase == X_HEAD && c->in_len > c->in_off) process(x);
}

int gw_hc_target_init(struct gw_hc_target *t, const char *url, char *err, size_t errlen)
{
    memset(t, 0, sizeof *t);
    if (strncasecmp(url, "http://", 7)) {
        snprintf(err, errlen, "%s: not a plain http:// URL", url);
        return -1;
    }
    const char *h = url + 7;
    const char *slash = strchr(h, '/');
    size_t hpl = slash ? (size_t)(slash - h) : strlen(h);
    const char *at = strchr(h, '@');
    if (!hpl || hpl >= sizeof t->hostport || (at && (!slash || at < slash))) {
        snprintf(err, errlen, "%s: unsupported host part", url);
        return -1;
    }
    memcpy(t->hostport, h, hpl);
    t->hostport[hpl] = 0;
    const char *pre = slash ? slash : "";
    size_t pl = strlen(pre);
    while (pl && pre[pl - 1] == '/') pl--;
    if (pl >= sizeof t->prefix || memchr(pre, '?', pl) || memchr(pre, '#', pl)) {
        snprintf(err, errlen, "%s: unsupported path", url);
        return -1;
    }
    memcpy(t->prefix, pre, pl);
    t->prefix[pl] = 0;
    char host[300], port[16] = "80";
    if (t->hostport[0] == '[') {                 /* [v6]:port */
        const char *rb = strchr(t->hostport, ']');
        if (!rb) {
            snprintf(err, errlen, "%s: bad IPv6 address", url);
            return -1;
        }
        snprintf(host, sizeof host, "%.*s", (int)(rb - t->hostport - 1), t->hostport + 1);
        if (rb[1] == ':') snprintf(port, sizeof port, "%s", rb + 2);
    } else {
        const char *colon = strrchr(t->hostport, ':');
        if (colon) {
            snprintf(host, sizeof host, "%.*s", (int)(colon - t->hostport), t->hostport);
            snprintf(port, sizeof port, "%s", colon + 1);
        } else {
            snprintf(host, sizeof host, "%s", t->hostport);
        }
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    int gr = getaddrinfo(host, port, &hints, &ai);
    if (gr || !ai) {
        snprintf(err, errlen, "%s: cannot resolve '%s' port '%s': %s", url, host, port,
                 gr ? gai_strerror(gr) : "no address");
        return -1;
    }
    memcpy(&t->addr, ai->ai_addr, ai->ai_addrlen);
    t->alen = ai->ai_addrlen;
    freeaddrinfo(ai);
    return 0;
}

struct gw_hc *gw_hc_new(struct event_base *base)
{
    struct gw_hc *h = calloc(1, sizeof *h);
    if (h) h->base = base;
    return h;
}

void gw_hc_target_close(struct gw_hc *h, struct gw_hc_target *t)
{
    (void)h;
    while (t->idle) conn_close(t->idle);
}

static void xfer_drop(struct gw_hc_xfer *x)
{
    event_del(&x->tmo);
    event_del(&x->dev);
    free(x->head);
    buf_fini(&x->pend);
    x->h->active--;
    free(x);
}

void gw_hc_free(struct gw_hc *h)
{
    if (!h) return;
    for (struct hconn *c = h->conns; c; c = c->next) {   /* idle lists go as a whole */
        c->t->idle = NULL;
        c->t->nidle = 0;
    }
    while (h->conns) {
        struct hconn *c = h->conns;
        if (c->x) {                     /* a transfer still open: dropped, no callback */
            xfer_drop(c->x);
            c->x = NULL;
        }
        conn_close(c);
    }
    free(h);
}

struct gw_hc_xfer *gw_hc_post(struct gw_hc *h, struct gw_hc_target *t, const char *path,
                              const char *hdrs, size_t hlen, const char *body, size_t blen,
                              int connect_ms, int total_ms, const struct gw_hc_cb *cb,
                              void *arg)
{
    struct gw_hc_xfer *x = calloc(1, sizeof *x);
    if (!x) return NULL;
    x->h = h;
    x->t = t;
    x->cb = *cb;
    x->arg = arg;
    x->body = body;
    x->blen = blen;
    x->connect_ms = connect_ms;
    x->total_ms = total_ms;
    buf_init(&x->pend);
    struct buf hd;
    buf_init(&hd);
    buf_printf(&hd, "POST %s%s HTTP/1.1\r\nHost: %s\r\nContent-Length: %zu\r\n", t->prefix,
               path, t->hostport, blen);
    if (hlen) buf_append(&hd, hdrs, hlen);
    if (buf_puts(&hd, "\r\n")) {
        buf_fini(&hd);
        free(x);
        return NULL;
    }
    x->head_len = hd.len;
    x->head = buf_steal(&hd);
    event_assign(&x->tmo, h->base, -1, 0, on_tmo, x);
    event_assign(&x->dev, h->base, -1, 0, on_dev, x);
    h->active++;
    if (total_ms > 0) {
        struct timeval tv = {total_ms / 1000, (total_ms % 1000) * 1000};
        event_add(&x->tmo, &tv);
    }
    int err = 0;
    if (attach(x, &err)) {
        /* report from the loop, never from inside this call */
        if (x->c && x->c->reused && !x->retried) {
            x->retried = 1;
            conn_close(x->c);
            if (attach(x, &err) == 0) return x;
        }
        if (x->c) conn_close(x->c);
        x->err_pending = err ? err : GW_HC_ECONNECT;
        event_active(&x->dev, EV_TIMEOUT, 1);
    }
    return x;
}

void gw_hc_cancel(struct gw_hc_xfer *x)
{
    if (!x) return;
    if (x->c) {                         /* mid-transfer: the connection cannot be reused */
        struct hconn *c = x->c;
        c->x = NULL;
        x->c = NULL;
        conn_close(c);
    }
    xfer_drop(x);
}

void gw_hc_resume(struct gw_hc_xfer *x)
{
    if (!x->paused) return;
    x->paused = 0;
    if (x->c && !x->c->rev_on && event_add(&x->c->rev, NULL) == 0) x->c->rev_on = 1;
    event_active(&x->dev, EV_TIMEOUT, 1);
}

int gw_hc_active(const struct gw_hc *h) { return h->active; }
