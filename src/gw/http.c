/* gw/http — the client-facing HTTP/1.1 server (see http.h for the contract).
 *
 * Connection states:
 *   C_HEAD   waiting for / reading a request head (idle keep-alive included)
 *   C_BODY   reading a Content-Length or chunked body
 *   C_BUSY   request handed to the server, its response is open (input is still read
 *            into the buffer, up to its capacity, to notice a client that goes away)
 *   C_CLOSE  the response ended and the connection closes once its output is written
 *   C_LINGER an error answer was written: write side shut, input read and dropped for
 *            LINGER_MS so that the client can read the answer before the close
 * Deadlines (http.h "Slow and abusive clients") run on one timer event per connection
 * (tev; T_HEAD, T_BODY or T_IDLE), re-armed only when the state changes: a keep-alive
 * request that arrives whole costs one add (idle, at the end of the previous response)
 * and one delete (at dispatch), both O(1) on libevent's common-timeout queues, and no
 * system call. The body deadline is extended lazily: when it fires, the bytes received
 * since it was armed buy bytes / min_body_rate more, and only a client that fell behind
 * gets the 408.
 * Input: one buffer (in/in_off/in_len), at most GW_HTTP_HEAD_MAX + IN_SLACK bytes; the
 * head of the current request is copied out (c->head) before parsing so the buffer can
 * be moved while the request is open. Output: written at once with writev; what the
 * socket does not take is queued in c->out and written on EV_WRITE. */
#define _GNU_SOURCE /* accept4, memmem */
#include "gw/http.h"

#include <errno.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "util/log.h"

#define IN_FIRST   4096                    /* first input buffer of a connection */
#define IN_SLACK   4096
#define LINGER_MS  2000
#define CHUNK_LINE_MAX 4096                /* a chunk-size line (with extensions) */
#define ACCEPT_RETRY_MS 100                /* listener paused after EMFILE and friends */

/* ---- parsing -------------------------------------------------------------------- */

static int is_tchar(unsigned char ch)
{
    if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9'))
        return 1;
    return ch && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

size_t gw_http_head_end(const char *buf, size_t len)
{
    size_t i = 0;
    while (i < len && (buf[i] == '\r' || buf[i] == '\n')) i++;   /* leading empty lines */
    for (;;) {
        const char *nl = memchr(buf + i, '\n', len - i);
        if (!nl) return 0;
        i = (size_t)(nl - buf) + 1;
        if (i < len && buf[i] == '\n') return i + 1;
        if (i + 1 < len && buf[i] == '\r' && buf[i + 1] == '\n') return i + 2;
        if (i >= len || (i + 1 >= len && buf[i] == '\r')) return 0;
    }
}

static int ieq(const char *a, const char *b) { return strcasecmp(a, b) == 0; }

/* Does the comma-separated list v contain token t (case-insensitive)? */
static int has_token(const char *v, const char *t)
{
    size_t tl = strlen(t);
    while (*v) {
        while (*v == ' ' || *v == '\t' || *v == ',') v++;
        const char *e = v;
        while (*e && *e != ',') e++;
        const char *te = e;
        while (te > v && (te[-1] == ' ' || te[-1] == '\t')) te--;
        if ((size_t)(te - v) == tl && !strncasecmp(v, t, tl)) return 1;
        v = e;
    }
    return 0;
}

static enum gw_http_method method_of(const char *m)
{
    static const char *names[] = {"", "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"};
    for (int i = 1; i < (int)(sizeof names / sizeof *names); i++)
        if (!strcmp(m, names[i])) return (enum gw_http_method)i;
    return GW_HTTP_OTHER;
}

/* Puts the reason of a refusal in r->err (printf-style, cut to fit) and yields -status. */
static int head_err(struct gw_hreq *r, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->err, sizeof r->err, fmt, ap);
    va_end(ap);
    return -status;
}

/* The first n bytes of s, for a message: at most 40, bytes other than printable ASCII
 * as '?' (the message goes into a JSON string: it must stay valid UTF-8). */
static const char *quote(char *out, size_t cap, const char *s, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n && k + 1 < cap && i < 40; i++) {
        unsigned char ch = (unsigned char)s[i];
        out[k++] = ch < 0x20 || ch >= 0x7f ? '?' : (char)ch;
    }
    out[k] = 0;
    return out;
}

/* One byte for a message: 'x' when printable ASCII, else 0xNN. */
static const char *byte_desc(char out[8], unsigned char ch)
{
    if (ch > 0x20 && ch < 0x7f) snprintf(out, 8, "'%c'", ch);
    else snprintf(out, 8, "0x%02x", ch);
    return out;
}

int gw_http_parse_head(char *buf, size_t len, struct gw_hreq *r)
{
    memset(r, 0, offsetof(struct gw_hreq, hdr));
    r->content_length = -1;
    r->body = NULL;
    r->body_len = 0;
    size_t hl = gw_http_head_end(buf, len < GW_HTTP_HEAD_MAX ? len : GW_HTTP_HEAD_MAX);
    if (!hl) {
        if (len < GW_HTTP_HEAD_MAX) return 0;
        size_t lead = 0;
        while (lead < len && (buf[lead] == '\r' || buf[lead] == '\n')) lead++;
        if (!memchr(buf + lead, '\n', GW_HTTP_HEAD_MAX - lead))
            return head_err(r, 414, "request line longer than %d bytes", GW_HTTP_HEAD_MAX);
        return head_err(r, 431, "request line and header fields longer than %d bytes",
                        GW_HTTP_HEAD_MAX);
    }
    char *p = buf, *end = buf + hl;
    char qb[48], cb[8];
    while (p < end && (*p == '\r' || *p == '\n')) p++;
    int line_no = 0, conn_close = 0, conn_ka = 0, te_seen = 0;
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl) return head_err(r, 400, "malformed head");   /* cannot happen: hl ends with \n */
        char *le = nl;
        if (le > p && le[-1] == '\r') le--;
        *le = 0;
        if (le == p) break;                         /* the empty line: end of head */
        for (char *q = p; q < le; q++) {            /* no CR, NUL or other controls */
            unsigned char ch = (unsigned char)*q;
            if ((ch < 0x20 && ch != '\t') || ch == 0x7f) {
                if (!line_no) return head_err(r, 400, "control character 0x%02x in the "
                                              "request line at byte %d", ch, (int)(q - p));
                return head_err(r, 400, "control character 0x%02x in header line %d at byte "
                                "%d", ch, line_no, (int)(q - p));
            }
        }
        if (line_no++ == 0) {
            /* request-line = method SP request-target SP HTTP-version */
            static const char form[] = "request line '%s': expected METHOD /path HTTP/1.1";
            char *sp1 = memchr(p, ' ', (size_t)(le - p));
            if (!sp1 || sp1 == p)
                return head_err(r, 400, form, quote(qb, sizeof qb, p, (size_t)(le - p)));
            if (sp1 - p > 16)
                return head_err(r, 501, "method '%s...' is not implemented",
                                quote(qb, sizeof qb, p, 16));
            for (char *q = p; q < sp1; q++)
                if (!is_tchar((unsigned char)*q))
                    return head_err(r, 400, "request line: invalid character %s in the "
                                    "method", byte_desc(cb, (unsigned char)*q));
            *sp1 = 0;
            char *tgt = sp1 + 1;
            char *sp2 = memchr(tgt, ' ', (size_t)(le - tgt));
            if (!sp2 || sp2 == tgt) {
                *sp1 = ' ';
                return head_err(r, 400, form, quote(qb, sizeof qb, p, (size_t)(le - p)));
            }
            *sp2 = 0;
            const char *ver = sp2 + 1;
            if (strlen(ver) != 8 || strncmp(ver, "HTTP/", 5) || ver[6] != '.' ||
                ver[5] < '0' || ver[5] > '9' || ver[7] < '0' || ver[7] > '9')
                return head_err(r, 400, "request line: '%s' is not an HTTP version "
                                "(HTTP/1.1; a space in the path must be sent as %%20)",
                                quote(qb, sizeof qb, ver, strlen(ver)));
            if (ver[5] != '1' || (ver[7] != '0' && ver[7] != '1'))
                return head_err(r, 505, "unsupported HTTP version %s (HTTP/1.0 and HTTP/1.1 "
                                "are served)", ver);
            r->minor = ver[7] - '0';
            r->method_name = p;
            r->method = method_of(p);
            if (sp2 - tgt > GW_HTTP_TARGET_MAX)
                return head_err(r, 414, "request target of %d bytes is longer than %d",
                                (int)(sp2 - tgt), GW_HTTP_TARGET_MAX);
            if (tgt[0] == '/') {
                r->path = tgt;
            } else if (!strncasecmp(tgt, "http://", 7) || !strncasecmp(tgt, "https://", 8)) {
                char *s = strchr(tgt + (tgt[4] == ':' ? 7 : 8), '/');
                r->path = s ? s : "/";
            } else if (!strcmp(tgt, "*")) {
                r->path = tgt;
            } else {
                return head_err(r, 400, "request target '%s' must start with '/'",
                                quote(qb, sizeof qb, tgt, strlen(tgt)));
            }
            r->target = tgt;
            char *qm = strchr(r->path, '?');
            if (qm) {
                *qm = 0;
                r->query = qm + 1;
            } else {
                r->query = "";
            }
        } else {
            int ln = line_no - 1;                   /* header lines count from 1 */
            if (*p == ' ' || *p == '\t')
                return head_err(r, 400, "header line %d starts with a blank (obsolete line "
                                "folding is not accepted)", ln);
            char *colon = memchr(p, ':', (size_t)(le - p));
            if (!colon || colon == p)
                return head_err(r, 400, "header line %d '%s': expected Name: value", ln,
                                quote(qb, sizeof qb, p, (size_t)(le - p)));
            for (char *q = p; q < colon; q++)
                if (!is_tchar((unsigned char)*q))
                    return head_err(r, 400, "header line %d: invalid character %s in the "
                                    "field name '%s'", ln, byte_desc(cb, (unsigned char)*q),
                                    quote(qb, sizeof qb, p, (size_t)(colon - p)));
            *colon = 0;
            char *v = colon + 1;
            while (*v == ' ' || *v == '\t') v++;
            char *ve = le;
            while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t')) ve--;
            *ve = 0;
            if (r->nhdr >= GW_HTTP_MAX_HEADERS)
                return head_err(r, 431, "more than %d header fields", GW_HTTP_MAX_HEADERS);
            r->hdr[r->nhdr].name = p;
            r->hdr[r->nhdr].value = v;
            r->nhdr++;
            if (ieq(p, "Content-Length")) {
                long long n = 0;
                int d = 0;
                for (const char *q = v; *q; q++, d++) {
                    if (*q < '0' || *q > '9' || d >= 18)
                        return head_err(r, 400, "Content-Length '%s' is not a decimal number "
                                        "of at most 18 digits",
                                        quote(qb, sizeof qb, v, strlen(v)));
                    n = n * 10 + (*q - '0');
                }
                if (!d) return head_err(r, 400, "Content-Length is empty");
                if (r->content_length >= 0 && r->content_length != n)
                    return head_err(r, 400, "two different Content-Length values (%lld and "
                                    "%lld)", r->content_length, n);
                r->content_length = n;
            } else if (ieq(p, "Transfer-Encoding")) {
                if (r->minor == 0)
                    return head_err(r, 400, "Transfer-Encoding in an HTTP/1.0 request");
                if (te_seen++) return head_err(r, 400, "Transfer-Encoding given twice");
                if (!ieq(v, "chunked"))
                    return head_err(r, 501, "Transfer-Encoding '%s' is not supported (only "
                                    "chunked)", quote(qb, sizeof qb, v, strlen(v)));
                r->chunked = 1;
            } else if (ieq(p, "Connection")) {
                conn_close |= has_token(v, "close");
                conn_ka |= has_token(v, "keep-alive");
            } else if (ieq(p, "Expect")) {
                if (!ieq(v, "100-continue"))
                    return head_err(r, 417, "Expect '%s' is not supported (only 100-continue)",
                                    quote(qb, sizeof qb, v, strlen(v)));
                r->expect_continue = r->minor == 1;
            }
        }
        p = nl + 1;
    }
    if (!line_no) return head_err(r, 400, "empty head");
    if (r->chunked && r->content_length >= 0)   /* ambiguous framing (request smuggling) */
        return head_err(r, 400, "both Content-Length and Transfer-Encoding: chunked");
    r->keep_alive = r->minor == 1 ? !conn_close : conn_ka && !conn_close;
    return (int)hl;
}

const char *gw_http_header(const struct gw_hreq *r, const char *name)
{
    for (int i = 0; i < r->nhdr; i++)
        if (ieq(r->hdr[i].name, name)) return r->hdr[i].value;
    return NULL;
}

enum { CH_SIZE, CH_EXT, CH_SIZE_LF, CH_DATA, CH_DATA_CR, CH_DATA_LF, CH_TRAILER_START,
       CH_TRAILER, CH_FINAL_LF, CH_DONE };

static int hexval(unsigned char ch)
{
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

int gw_http_chunked(struct gw_chunked *st, const char *in, size_t n, struct buf *out,
                    size_t max, size_t *used)
{
    size_t i = 0;
    int rc = 0;
    while (i < n && st->state != CH_DONE) {
        unsigned char ch = (unsigned char)in[i];
        switch (st->state) {
        case CH_SIZE: {
            int h = hexval(ch);
            if (h >= 0) {
                if (st->digits >= 15) { rc = -413; goto out; }
                st->left = st->left * 16 + (unsigned)h;
                st->digits++;
            } else if (!st->digits) {
                rc = -400;
                goto out;
            } else if (ch == ';' || ch == ' ' || ch == '\t') {
                st->state = CH_EXT;
            } else if (ch == '\r') {
                st->state = CH_SIZE_LF;
            } else if (ch == '\n') {
                goto size_done;
            } else {
                rc = -400;
                goto out;
            }
            if (++st->line > CHUNK_LINE_MAX) { rc = -400; goto out; }
            i++;
            break;
        }
        case CH_EXT:                         /* chunk extensions are ignored */
            if (++st->line > CHUNK_LINE_MAX) { rc = -400; goto out; }
            i++;
            if (ch == '\r') st->state = CH_SIZE_LF;
            else if (ch == '\n') { i--; goto size_done; }
            else if (ch < 0x20 && ch != '\t') { rc = -400; goto out; }
            break;
        case CH_SIZE_LF:
            if (ch != '\n') { rc = -400; goto out; }
        size_done:
            i++;
            st->line = 0;
            st->digits = 0;
            if (st->left == 0) {
                st->state = CH_TRAILER_START;
            } else {
                if (st->left > max || out->len + st->left > max) { rc = -413; goto out; }
                st->state = CH_DATA;
            }
            break;
        case CH_DATA: {
            size_t k = n - i;
            if (k > st->left) k = (size_t)st->left;
            if (buf_append(out, in + i, k)) { rc = -413; goto out; }
            i += k;
            st->left -= k;
            if (!st->left) st->state = CH_DATA_CR;
            break;
        }
        case CH_DATA_CR:
            i++;
            if (ch == '\r') st->state = CH_DATA_LF;
            else if (ch == '\n') st->state = CH_SIZE;
            else { rc = -400; goto out; }
            break;
        case CH_DATA_LF:
            i++;
            if (ch != '\n') { rc = -400; goto out; }
            st->state = CH_SIZE;
            break;
        case CH_TRAILER_START:
            i++;
            if (ch == '\r') st->state = CH_FINAL_LF;
            else if (ch == '\n') st->state = CH_DONE;
            else {
                if (++st->trailers > GW_HTTP_MAX_HEADERS) { rc = -431; goto out; }
                st->line = 1;
                st->state = CH_TRAILER;
            }
            break;
        case CH_TRAILER:                     /* trailer fields are read and dropped */
            i++;
            if (ch == '\n') st->state = CH_TRAILER_START;
            else if (++st->line > GW_HTTP_HEAD_MAX) { rc = -431; goto out; }
            break;
        case CH_FINAL_LF:
            i++;
            if (ch != '\n') { rc = -400; goto out; }
            st->state = CH_DONE;
            break;
        default:
            rc = -400;
            goto out;
        }
    }
    if (st->state == CH_DONE) rc = 1;
out:
    *used = i;
    return rc;
}

const char *gw_http_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 417: return "Expectation Failed";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
    }
}

/* ---- connections ---------------------------------------------------------------- */

enum { C_HEAD, C_BODY, C_BUSY, C_CLOSE, C_LINGER };
enum { T_NONE, T_HEAD, T_BODY, T_IDLE };                  /* what tev times */
enum { REJ_CONNS, REJ_HEADER, REJ_BODY, REJ__N };       /* ferry_http_rejected_total */

struct gw_http {
    struct event_base *base;
    int lfd;
    struct event lev;
    int listening;
    int port;
    int draining;
    struct gw_http_opts o;
    gw_http_request_cb on_request;
    gw_http_reject_cb on_reject;
    gw_http_head_cb on_head;
    void *arg;
    struct gw_hconn *conns;
    int nconns;                   /* open connections (lingering ones included) */
    struct event retry;           /* re-enables the listener after an accept failure */
    int accept_paused;
    long long warned_at;          /* s: last warning about a failing accept */
    const struct timeval *tv_head, *tv_body, *tv_idle;  /* common timeouts of the base */
    unsigned long long rejected[REJ__N];
};

struct gw_hconn {
    struct gw_http *h;
    struct gw_hconn *prev, *next;
    int fd;
    struct event rev, wev, dev;   /* read (persistent), write (while output pends), deferred */
    struct event tev;             /* the head / body / idle deadline */
    int state;
    int tmode;                    /* T_*: what tev is armed for */
    size_t body_mark;             /* body bytes received when the body deadline was armed */
    int reading;                  /* rev added */
    int broken;                   /* a write failed: close at the next deferred turn */
    char *in;
    size_t in_off, in_len, in_cap;
    char *head;
    size_t head_cap;
    struct gw_hreq req;
    char *body;                   /* Content-Length body being read / handed over */
    size_t body_len, body_want;
    struct buf cbody;             /* chunked body */
    struct gw_chunked ch;
    struct buf out;
    size_t out_off;
    int resp_open, streaming, chunked_out, close_after, is_head;
    int in_cb;
    int early;                    /* in the head callback: an answer now closes */
    void (*gone)(void *);
    void (*drained)(void *);
    void *warg;
};

static void conn_process(struct gw_hconn *c);

static void conn_close(struct gw_hconn *c, int notify)
{
    struct gw_http *h = c->h;
    if (notify && c->resp_open && c->gone) {
        void (*g)(void *) = c->gone;
        c->gone = NULL;
        c->resp_open = 0;
        g(c->warg);
    }
    event_del(&c->rev);
    event_del(&c->wev);
    event_del(&c->dev);
    event_del(&c->tev);
    if (c->fd >= 0) close(c->fd);
    if (c->prev) c->prev->next = c->next;
    else h->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    h->nconns--;
    if (h->accept_paused && h->listening) {   /* a descriptor is free again */
        event_del(&h->retry);
        if (event_add(&h->lev, NULL) == 0) h->accept_paused = 0;
    }
    free(c->in);
    free(c->head);
    free(c->body);
    buf_fini(&c->cbody);
    buf_fini(&c->out);
    free(c);
}

static void defer(struct gw_hconn *c)
{
    if (!c->in_cb) event_active(&c->dev, EV_TIMEOUT, 1);
}

static struct timeval ms_tv(int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    return tv;
}

/* Arms tev for mode m: tv is one of the common timeouts, or a computed one. */
static void set_timer(struct gw_hconn *c, int m, const struct timeval *tv)
{
    c->tmode = m;
    event_add(&c->tev, tv);
}

static void clear_timer(struct gw_hconn *c)
{
    if (c->tmode == T_NONE) return;
    c->tmode = T_NONE;
    event_del(&c->tev);
}

/* The read event has no timeout of its own (deadlines are on tev), except while an
 * error answer lingers. */
static void set_reading(struct gw_hconn *c, int on)
{
    if (on && !c->reading) {
        if (event_add(&c->rev, NULL) == 0) c->reading = 1;
    } else if (!on && c->reading) {
        event_del(&c->rev);
        c->reading = 0;
    }
}

static size_t out_pending(const struct gw_hconn *c) { return c->out.len - c->out_off; }

/* Writes iov (all of it, in order, after anything queued). 0 or -1 (broken). */
static int send_iov(struct gw_hconn *c, struct iovec *iov, int cnt)
{
    if (c->broken) return -1;
    size_t total = 0;
    for (int i = 0; i < cnt; i++) total += iov[i].iov_len;
    size_t done = 0;
    if (!out_pending(c)) {
        ssize_t n;
        do n = writev(c->fd, iov, cnt); while (n < 0 && errno == EINTR);
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
            c->broken = 1;
            event_active(&c->dev, EV_TIMEOUT, 1);
            return -1;
        }
        done = n > 0 ? (size_t)n : 0;
        if (done == total) return 0;
    }
    /* queue what the socket did not take */
    for (int i = 0; i < cnt; i++) {
        size_t l = iov[i].iov_len;
        if (done >= l) {
            done -= l;
            continue;
        }
        if (buf_append(&c->out, (const char *)iov[i].iov_base + done, l - done)) {
            c->broken = 1;
            event_active(&c->dev, EV_TIMEOUT, 1);
            return -1;
        }
        done = 0;
    }
    struct timeval tv = ms_tv(c->h->o.timeout_ms);
    event_add(&c->wev, &tv);
    return 0;
}

/* The status line. */
static size_t fmt_status(char *b, size_t cap, int status)
{
    int n = snprintf(b, cap, "HTTP/1.1 %d %s\r\n", status, gw_http_reason(status));
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

/* Keep the connection after this response? */
static int keep(struct gw_hconn *c)
{
    return c->req.keep_alive && !c->h->draining && !c->broken && !c->early;
}

static void end_response(struct gw_hconn *c)
{
    c->resp_open = 0;
    c->gone = NULL;
    c->drained = NULL;
    free(c->body);
    c->body = NULL;
    c->body_len = c->body_want = 0;
    buf_reset(&c->cbody);
    c->state = c->close_after ? C_CLOSE : C_HEAD;
    c->streaming = c->chunked_out = 0;
    if (c->state == C_HEAD) set_timer(c, T_IDLE, c->h->tv_idle);
    defer(c);
}

static const char *conn_hdr(struct gw_hconn *c, int closing)
{
    if (closing) return "Connection: close\r\n";
    return c->req.minor == 0 ? "Connection: keep-alive\r\n" : "";
}

int gw_http_reply(struct gw_hconn *c, int status, const char *hdrs, size_t hlen,
                  const void *body, size_t len)
{
    if (!c->resp_open) return -1;
    char st[96], tail[96];
    size_t sl = fmt_status(st, sizeof st, status);
    c->close_after = !keep(c);
    int tl = snprintf(tail, sizeof tail, "Content-Length: %zu\r\n%s\r\n", len,
                      conn_hdr(c, c->close_after));
    struct iovec iov[4] = {
        {st, sl}, {(void *)(hdrs ? hdrs : ""), hdrs ? hlen : 0}, {tail, (size_t)tl},
        {(void *)body, c->is_head ? 0 : len},
    };
    int rc = send_iov(c, iov, body && len && !c->is_head ? 4 : 3);
    end_response(c);
    return rc;
}

int gw_http_stream_start(struct gw_hconn *c, int status, const char *hdrs, size_t hlen)
{
    if (!c->resp_open || c->streaming) return -1;
    char st[96], tail[96];
    size_t sl = fmt_status(st, sizeof st, status);
    c->streaming = 1;
    c->chunked_out = c->req.minor == 1;
    c->close_after = !keep(c) || !c->chunked_out;
    int tl = snprintf(tail, sizeof tail, "%s%s\r\n",
                      c->chunked_out ? "Transfer-Encoding: chunked\r\n" : "",
                      conn_hdr(c, c->close_after));
    struct iovec iov[3] = {
        {st, sl}, {(void *)(hdrs ? hdrs : ""), hdrs ? hlen : 0}, {tail, (size_t)tl},
    };
    return send_iov(c, iov, 3);
}

int gw_http_stream_write(struct gw_hconn *c, const void *p, size_t n)
{
    if (!c->resp_open || !c->streaming) return -1;
    if (!n || c->is_head) return 0;
    if (!c->chunked_out) {
        struct iovec iov[1] = {{(void *)p, n}};
        return send_iov(c, iov, 1);
    }
    char hx[24];
    int hl = snprintf(hx, sizeof hx, "%zx\r\n", n);
    struct iovec iov[3] = {{hx, (size_t)hl}, {(void *)p, n}, {"\r\n", 2}};
    return send_iov(c, iov, 3);
}

int gw_http_stream_end(struct gw_hconn *c)
{
    if (!c->resp_open || !c->streaming) return -1;
    int rc = 0;
    if (c->chunked_out && !c->is_head) {
        struct iovec iov[1] = {{"0\r\n\r\n", 5}};
        rc = send_iov(c, iov, 1);
    }
    end_response(c);
    return rc;
}

void gw_http_abort(struct gw_hconn *c)
{
    if (!c->resp_open) return;
    c->close_after = 1;
    c->broken = 1;              /* nothing more is written: close at once */
    end_response(c);
    event_active(&c->dev, EV_TIMEOUT, 1);
}

void gw_http_watch(struct gw_hconn *c, void (*gone)(void *arg), void (*drained)(void *arg),
                   void *arg)
{
    c->gone = gone;
    c->drained = drained;
    c->warg = arg;
}

char *gw_http_take_body(struct gw_hconn *c, size_t *len)
{
    char *b = c->req.body;
    *len = c->req.body_len;
    if (!b) {
        b = malloc(1);
        if (b) b[0] = 0;
        *len = 0;
    }
    c->req.body = NULL;
    c->req.body_len = 0;
    c->body = NULL;
    return b;
}

size_t gw_http_backlog(const struct gw_hconn *c) { return out_pending(c); }
int gw_http_fd(const struct gw_hconn *c) { return c->fd; }

/* An answer was written (or queued) and the input is not read any further: the write
 * side is shut once the answer left, and what the client still sends is read and dropped
 * for LINGER_MS so that the close does not destroy the answer with a reset. */
static void linger(struct gw_hconn *c)
{
    clear_timer(c);
    c->state = C_LINGER;
    c->in_off = c->in_len = 0;
    if (!out_pending(c) && !c->broken) {
        shutdown(c->fd, SHUT_WR);
        set_reading(c, 0);
        struct timeval tv = ms_tv(LINGER_MS);
        if (event_add(&c->rev, &tv) == 0) c->reading = 1;
    }
}

/* An error the server answers itself; the connection then lingers and closes. msg NULL =
 * the status's standard message. */
static void reject_msg(struct gw_hconn *c, int status, const char *msg)
{
    struct gw_http *h = c->h;
    if (!msg) switch (status) {
    case 413: msg = "request body exceeds the gateway's limit"; break;
    case 431: msg = "request head too large or too many header fields"; break;
    case 417: msg = "unsupported Expect header (only 100-continue)"; break;
    case 501: msg = "unsupported method or transfer coding"; break;
    case 505: msg = "unsupported HTTP version (HTTP/1.0 and HTTP/1.1 are served)"; break;
    default: msg = "malformed HTTP request"; break;
    }
    if (h->on_reject) h->on_reject(h->arg, status);
    clear_timer(c);
    char esc[400], body[560], hdr[256];
    size_t k = 0;                                 /* JSON string escaping of msg */
    for (const char *m = msg; *m && k + 7 < sizeof esc; m++) {
        unsigned char ch = (unsigned char)*m;
        if (ch == '"' || ch == '\\') { esc[k++] = '\\'; esc[k++] = (char)ch; }
        else if (ch < 0x20) k += (size_t)snprintf(esc + k, sizeof esc - k, "\\u%04x", ch);
        else esc[k++] = (char)ch;
    }
    esc[k] = 0;
    int bl = snprintf(body, sizeof body,
                      "{\"error\":{\"message\":\"%s\",\"type\":\"invalid_request_error\","
                      "\"param\":null,\"code\":null}}", esc);
    int hl = snprintf(hdr, sizeof hdr, "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
                      "Content-Length: %d\r\nConnection: close\r\n\r\n", status,
                      gw_http_reason(status), bl);
    struct iovec iov[2] = {{hdr, (size_t)hl}, {body, (size_t)bl}};
    free(c->body);
    c->body = NULL;
    buf_reset(&c->cbody);
    c->resp_open = 0;
    c->close_after = 1;
    send_iov(c, iov, 2);
    linger(c);
}

static void reject(struct gw_hconn *c, int status) { reject_msg(c, status, NULL); }

/* Offers a request with a body to the head callback. 1 when it answered (the connection
 * now lingers and closes, the body unread), 0 to read the body. */
static int early_answer(struct gw_hconn *c)
{
    struct gw_http *h = c->h;
    if (!h->on_head) return 0;
    c->resp_open = 1;
    c->early = 1;
    c->is_head = c->req.method == GW_HTTP_HEAD;
    c->gone = c->drained = NULL;
    c->in_cb = 1;
    h->on_head(h->arg, c, &c->req);
    c->in_cb = 0;
    c->early = 0;
    if (c->resp_open) {
        c->resp_open = 0;
        return 0;
    }
    linger(c);
    return 1;
}

static void dispatch(struct gw_hconn *c)
{
    struct gw_http *h = c->h;
    clear_timer(c);
    c->state = C_BUSY;
    c->resp_open = 1;
    c->is_head = c->req.method == GW_HTTP_HEAD;
    c->close_after = 0;
    c->gone = c->drained = NULL;
    if (c->req.chunked) {
        c->req.body_len = c->cbody.len;
        c->req.body = buf_steal(&c->cbody);
    } else {
        c->req.body = c->body;
        c->req.body_len = c->body_len;
    }
    c->body = c->req.body;       /* freed at the end of the response unless taken */
    c->in_cb = 1;
    h->on_request(h->arg, c, &c->req);
    c->in_cb = 0;
}

static void send_continue(struct gw_hconn *c)
{
    if (!c->req.expect_continue) return;
    c->req.expect_continue = 0;
    struct iovec iov[1] = {{"HTTP/1.1 100 Continue\r\n\r\n", 25}};
    send_iov(c, iov, 1);
}

/* Body bytes received so far (decoded ones for a chunked body). */
static size_t body_received(const struct gw_hconn *c)
{
    return c->req.chunked ? c->cbody.len : c->body_len;
}

/* The body is incomplete: its deadline starts now (once per body; the bytes already
 * here do not extend it). */
static void body_wait(struct gw_hconn *c)
{
    if (c->tmode == T_BODY) return;
    c->body_mark = body_received(c);
    set_timer(c, T_BODY, c->h->tv_body);
}

/* Parses and dispatches what the input buffer holds, request after request. */
static void conn_process(struct gw_hconn *c)
{
    struct gw_http *h = c->h;
    for (;;) {
        if (c->broken) return;
        char *in = c->in + c->in_off;
        size_t avail = c->in_len - c->in_off;
        if (c->state == C_HEAD) {
            if (!avail) return;
            /* a pipelined request waits until the previous answer left: a client that
             * sends requests and reads no answer must not make the server queue them
             * (small requests, large answers: memory without bound). on_write resumes. */
            if (out_pending(c)) return;
            size_t lim = avail < GW_HTTP_HEAD_MAX ? avail : GW_HTTP_HEAD_MAX;
            size_t hl = gw_http_head_end(in, lim);
            if (!hl) {
                if (avail >= GW_HTTP_HEAD_MAX) {    /* 414 or 431, with the reason */
                    int rc = gw_http_parse_head(in, avail, &c->req);
                    reject_msg(c, rc < 0 ? -rc : 431, c->req.err[0] ? c->req.err : NULL);
                } else if (c->tmode != T_HEAD) {
                    set_timer(c, T_HEAD, h->tv_head);
                }
                return;
            }
            if (hl + 1 > c->head_cap) {
                char *nh = realloc(c->head, hl + 1);
                if (!nh) { reject(c, 431); return; }
                c->head = nh;
                c->head_cap = hl + 1;
            }
            memcpy(c->head, in, hl);
            c->head[hl] = 0;
            int rc = gw_http_parse_head(c->head, hl, &c->req);
            if (rc <= 0) {
                reject_msg(c, rc < 0 ? -rc : 400, c->req.err[0] ? c->req.err : NULL);
                return;
            }
            c->in_off += hl;
            avail -= hl;
            in += hl;
            c->body = NULL;
            c->body_len = c->body_want = 0;
            if ((c->req.chunked || c->req.content_length > 0) && early_answer(c)) return;
            if (c->req.chunked) {
                memset(&c->ch, 0, sizeof c->ch);
                buf_reset(&c->cbody);
                c->state = C_BODY;
            } else if (c->req.content_length > 0) {
                if ((unsigned long long)c->req.content_length > h->o.max_body) {
                    char msg[160];
                    snprintf(msg, sizeof msg, "request body of %lld bytes exceeds the "
                             "gateway's limit of %zu bytes (max_body_bytes)",
                             c->req.content_length, h->o.max_body);
                    reject_msg(c, 413, msg);
                    return;
                }
                c->body_want = (size_t)c->req.content_length;
                c->body = malloc(c->body_want + 1);
                if (!c->body) { reject(c, 413); return; }
                c->state = C_BODY;
            } else {
                dispatch(c);
                continue;
            }
            if (!avail) send_continue(c);
            continue;
        }
        if (c->state == C_BODY) {
            if (c->req.chunked) {
                size_t used = 0;
                int rc = gw_http_chunked(&c->ch, in, avail, &c->cbody, h->o.max_body, &used);
                c->in_off += used;
                if (rc < 0) {
                    char msg[200];
                    if (rc == -413)
                        snprintf(msg, sizeof msg, "chunked request body exceeds the gateway's "
                                 "limit of %zu bytes (max_body_bytes)", h->o.max_body);
                    else if (rc == -431)
                        snprintf(msg, sizeof msg, "chunked request body: more than %d trailer "
                                 "fields or one longer than %d bytes", GW_HTTP_MAX_HEADERS,
                                 GW_HTTP_HEAD_MAX);
                    else
                        snprintf(msg, sizeof msg, "malformed chunked request body after %zu "
                                 "decoded bytes: a chunk size is hex digits ending in CRLF, "
                                 "a chunk's data ends with CRLF", c->cbody.len);
                    reject_msg(c, -rc, msg);
                    return;
                }
                if (rc == 0) {
                    if (c->in_off == c->in_len) c->in_off = c->in_len = 0;
                    body_wait(c);
                    return;
                }
                dispatch(c);
                continue;
            }
            size_t k = c->body_want - c->body_len;
            if (k > avail) k = avail;
            memcpy(c->body + c->body_len, in, k);
            c->body_len += k;
            c->in_off += k;
            if (c->body_len < c->body_want) {
                body_wait(c);
                return;
            }
            c->body[c->body_len] = 0;
            dispatch(c);
            continue;
        }
        if (c->state == C_CLOSE) {
            if (!out_pending(c)) conn_close(c, 0);
            return;
        }
        return;   /* C_BUSY, C_LINGER */
    }
}

static void on_defer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    struct gw_hconn *c = arg;
    if (c->broken) {
        conn_close(c, 1);
        return;
    }
    if (c->state == C_HEAD && c->h->draining && c->in_off == c->in_len && !out_pending(c)) {
        conn_close(c, 0);       /* draining: an idle keep-alive connection goes */
        return;
    }
    if (c->state != C_BUSY && c->state != C_LINGER) set_reading(c, 1);
    conn_process(c);
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
    struct gw_hconn *c = arg;
    if (what & EV_TIMEOUT) {
        if (c->state == C_BUSY) return;           /* the response has its own timers */
        conn_close(c, 1);                         /* the lingering time is over */
        return;
    }
    if (c->state == C_LINGER) {
        char sink[4096];
        ssize_t n = read(fd, sink, sizeof sink);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) conn_close(c, 0);
        return;
    }
    ssize_t n;
    if (c->state == C_BODY && !c->req.chunked && c->in_off == c->in_len) {
        /* a Content-Length body goes straight to its buffer */
        do n = read(fd, c->body + c->body_len, c->body_want - c->body_len);
        while (n < 0 && errno == EINTR);
        if (n > 0) {
            c->body_len += (size_t)n;
            if (c->body_len == c->body_want) {
                c->body[c->body_len] = 0;
                c->in_off = c->in_len = 0;
                dispatch(c);
                conn_process(c);
            }
            return;
        }
    } else {
        if (c->in_off && c->in_off == c->in_len) c->in_off = c->in_len = 0;
        if (c->in_len == c->in_cap) {
            if (c->in_off) {                      /* compact */
                memmove(c->in, c->in + c->in_off, c->in_len - c->in_off);
                c->in_len -= c->in_off;
                c->in_off = 0;
            }
            if (c->in_len == c->in_cap) {
                size_t ncap = c->in_cap ? c->in_cap * 2 : IN_FIRST;
                if (ncap > GW_HTTP_HEAD_MAX + IN_SLACK) ncap = GW_HTTP_HEAD_MAX + IN_SLACK;
                if (ncap == c->in_cap) {
                    /* full: a pipelining client waits until the current answer ended
                     * and was written out (C_CLOSE: only its output is left to do) */
                    if (c->state == C_HEAD && !out_pending(c)) conn_process(c);
                    else set_reading(c, 0);
                    return;
                }
                char *ni = realloc(c->in, ncap);
                if (!ni) { conn_close(c, 1); return; }
                c->in = ni;
                c->in_cap = ncap;
            }
        }
        do n = read(fd, c->in + c->in_len, c->in_cap - c->in_len);
        while (n < 0 && errno == EINTR);
        if (n > 0) {
            c->in_len += (size_t)n;
            if (c->state != C_BUSY) conn_process(c);
            return;
        }
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    conn_close(c, 1);   /* EOF or error: the client is gone */
}

/* A deadline of tev passed. */
static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    struct gw_hconn *c = arg;
    struct gw_http *h = c->h;
    char msg[160];
    int m = c->tmode;
    c->tmode = T_NONE;
    if (m == T_IDLE && c->state == C_HEAD) {
        if (out_pending(c)) {                     /* still writing the last answer: not */
            set_timer(c, T_IDLE, h->tv_idle);     /* idle (a stall is on_write's timeout) */
            return;
        }
        conn_close(c, 0);                         /* idle keep-alive: silently */
    } else if (m == T_HEAD && c->state == C_HEAD) {
        if (c->in_len == c->in_off) {             /* not a byte: nobody waits for an answer */
            conn_close(c, 0);
            return;
        }
        h->rejected[REJ_HEADER]++;
        snprintf(msg, sizeof msg, "request head not received within the gateway's "
                 "header timeout (%d ms)", h->o.header_timeout_ms);
        reject_msg(c, 408, msg);
    } else if (m == T_BODY && c->state == C_BODY) {
        /* the bytes that came since the deadline was armed buy bytes / rate more time */
        size_t got = body_received(c);
        unsigned long long more = (unsigned long long)(got - c->body_mark) * 1000 /
                                  h->o.min_body_rate;
        if (more > 0) {
            c->body_mark = got;
            struct timeval tv = {(time_t)(more / 1000), (suseconds_t)(more % 1000) * 1000};
            set_timer(c, T_BODY, &tv);
            return;
        }
        h->rejected[REJ_BODY]++;
        snprintf(msg, sizeof msg, "request body not received in time (%d ms plus 1 s "
                 "per %zu bytes)", h->o.body_timeout_ms, h->o.min_body_rate);
        reject_msg(c, 408, msg);
    }
}

static void on_write(evutil_socket_t fd, short what, void *arg)
{
    struct gw_hconn *c = arg;
    if (what & EV_TIMEOUT) {                      /* no progress: a dead client */
        conn_close(c, 1);
        return;
    }
    ssize_t n;
    do n = write(fd, c->out.data + c->out_off, out_pending(c));
    while (n < 0 && errno == EINTR);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) return;
        conn_close(c, 1);
        return;
    }
    c->out_off += (size_t)n;
    if (out_pending(c)) return;                   /* the persistent event stays */
    event_del(&c->wev);
    buf_reset(&c->out);
    c->out_off = 0;
    if (c->state == C_LINGER) {
        shutdown(fd, SHUT_WR);
        set_reading(c, 0);
        struct timeval tv = ms_tv(LINGER_MS);
        if (event_add(&c->rev, &tv) == 0) c->reading = 1;
        return;
    }
    if (c->state == C_CLOSE) {
        conn_close(c, 0);
        return;
    }
    if (c->state == C_HEAD) {                     /* a pipelined request may wait */
        defer(c);
        return;
    }
    if (c->resp_open && c->drained) c->drained(c->warg);
}

/* Over max_connections: a 503 on the fresh socket, then close. What the client already
 * sent is read first (one read, best effort) so that the close sends a FIN, not a RST
 * that could destroy the answer in the client's receive buffer. */
static void refuse_conn(struct gw_http *h, int fd)
{
    h->rejected[REJ_CONNS]++;
    if (h->on_reject) h->on_reject(h->arg, 503);
    char body[256], hdr[256];
    int bl = snprintf(body, sizeof body,
                      "{\"error\":{\"message\":\"the gateway has its maximum of %d client "
                      "connections open; retry later\",\"type\":\"server_error\","
                      "\"param\":null,\"code\":null}}", h->o.max_connections);
    int hl = snprintf(hdr, sizeof hdr, "HTTP/1.1 503 Service Unavailable\r\n"
                      "Content-Type: application/json\r\nRetry-After: 1\r\n"
                      "Content-Length: %d\r\nConnection: close\r\n\r\n", bl);
    struct iovec iov[2] = {{hdr, (size_t)hl}, {body, (size_t)bl}};
    ssize_t n = writev(fd, iov, 2);
    (void)n;                                      /* best effort: the socket is fresh */
    char sink[4096];
    n = read(fd, sink, sizeof sink);
    close(fd);
}

static void on_accept_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    struct gw_http *h = arg;
    if (h->accept_paused && h->listening && event_add(&h->lev, NULL) == 0)
        h->accept_paused = 0;
}

static void on_accept(evutil_socket_t lfd, short what, void *arg)
{
    (void)what;
    struct gw_http *h = arg;
    for (int i = 0; i < 64; i++) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* the pending connection stays in the backlog and the listener stays
                 * readable: pause it instead of spinning, until a connection closes */
                if (!h->accept_paused) {
                    struct timeval now;
                    event_base_gettimeofday_cached(h->base, &now);
                    if (!h->warned_at || now.tv_sec - h->warned_at >= 60) {  /* once a minute */
                        h->warned_at = now.tv_sec;
                        log_warn("gw", "accept: %s; pausing new connections (%d open)",
                                 strerror(errno), h->nconns);
                    }
                    event_del(&h->lev);
                    struct timeval tv = ms_tv(ACCEPT_RETRY_MS);
                    evtimer_add(&h->retry, &tv);
                    h->accept_paused = 1;
                }
            }
            return;   /* EAGAIN, ECONNABORTED, ...: the next event */
        }
        if (h->nconns >= h->o.max_connections) {
            refuse_conn(h, fd);
            continue;
        }
        struct gw_hconn *c = calloc(1, sizeof *c);
        if (!c) {
            close(fd);
            continue;
        }
        c->h = h;
        c->fd = fd;
        c->state = C_HEAD;
        buf_init(&c->cbody);
        buf_init(&c->out);
        event_assign(&c->rev, h->base, fd, EV_READ | EV_PERSIST, on_read, c);
        event_assign(&c->wev, h->base, fd, EV_WRITE | EV_PERSIST, on_write, c);
        event_assign(&c->dev, h->base, -1, 0, on_defer, c);
        event_assign(&c->tev, h->base, -1, 0, on_timer, c);
        c->next = h->conns;
        if (h->conns) h->conns->prev = c;
        h->conns = c;
        h->nconns++;
        set_timer(c, T_HEAD, h->tv_head);
        set_reading(c, 1);
    }
}

/* Lowers *max_conns to what RLIMIT_NOFILE allows after raising its soft limit as far as
 * the hard one permits. Process-wide: the server owns the process. */
static void fit_fd_limit(int *max_conns)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl)) return;
    rlim_t need = (rlim_t)*max_conns * GW_HTTP_FDS_PER_CONN + GW_HTTP_FD_RESERVE;
    if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= need) return;
    struct rlimit nl = rl;
    nl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= need ? need : rl.rlim_max;
    if (nl.rlim_cur > rl.rlim_cur && setrlimit(RLIMIT_NOFILE, &nl) == 0) rl = nl;
    if (rl.rlim_cur >= need) return;
    long fit = rl.rlim_cur > GW_HTTP_FD_RESERVE + GW_HTTP_FDS_PER_CONN
                   ? (long)((rl.rlim_cur - GW_HTTP_FD_RESERVE) / GW_HTTP_FDS_PER_CONN) : 1;
    log_warn("gw", "max_connections = %d needs %llu file descriptors (%d per connection + %d) "
             "but RLIMIT_NOFILE is %llu (hard %llu): serving at most %ld connections; raise "
             "the limit (ulimit -n, systemd LimitNOFILE=) to allow more",
             *max_conns, (unsigned long long)need, GW_HTTP_FDS_PER_CONN, GW_HTTP_FD_RESERVE,
             (unsigned long long)rl.rlim_cur, (unsigned long long)rl.rlim_max, fit);
    *max_conns = (int)fit;
}

struct gw_http *gw_http_new(struct event_base *base, const char *host, int port,
                            const struct gw_http_opts *o, gw_http_request_cb on_request,
                            gw_http_reject_cb on_reject, void *arg, char *err, size_t errlen)
{
    struct gw_http *h = calloc(1, sizeof *h);
    if (!h) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    h->base = base;
    h->o = *o;
    if (h->o.timeout_ms <= 0) h->o.timeout_ms = GW_HTTP_DEF_SEND_MS;
    if (h->o.header_timeout_ms <= 0) h->o.header_timeout_ms = GW_HTTP_DEF_HEADER_MS;
    if (h->o.body_timeout_ms <= 0) h->o.body_timeout_ms = GW_HTTP_DEF_BODY_MS;
    if (!h->o.min_body_rate) h->o.min_body_rate = GW_HTTP_DEF_BODY_RATE;
    if (h->o.keepalive_timeout_ms <= 0) h->o.keepalive_timeout_ms = GW_HTTP_DEF_KEEPALIVE_MS;
    if (h->o.max_connections <= 0) h->o.max_connections = GW_HTTP_DEF_MAX_CONNS;
    fit_fd_limit(&h->o.max_connections);
    /* every connection waits with one of three durations: libevent's common-timeout
     * queues make arming and disarming them O(1) instead of a heap operation */
    struct timeval th = ms_tv(h->o.header_timeout_ms), tb = ms_tv(h->o.body_timeout_ms),
                   ti = ms_tv(h->o.keepalive_timeout_ms);
    h->tv_head = event_base_init_common_timeout(base, &th);
    h->tv_body = event_base_init_common_timeout(base, &tb);
    h->tv_idle = event_base_init_common_timeout(base, &ti);
    if (!h->tv_head || !h->tv_body || !h->tv_idle) {
        snprintf(err, errlen, "cannot set up the connection timers");
        free(h);
        return NULL;
    }
    event_assign(&h->retry, base, -1, 0, on_accept_retry, h);
    h->on_request = on_request;
    h->on_reject = on_reject;
    h->arg = arg;
    h->lfd = -1;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    int gr = getaddrinfo(host && *host ? host : NULL, ps, &hints, &ai);
    if (gr) {
        snprintf(err, errlen, "cannot listen on %s:%d: %s", host, port, gai_strerror(gr));
        free(h);
        return NULL;
    }
    int e = 0;
    for (struct addrinfo *a = ai; a && h->lfd < 0; a = a->ai_next) {
        int fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) { e = errno; continue; }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        /* accepted sockets inherit TCP_NODELAY (Linux): a response's last small write
         * (a chunk or the terminator) must not wait for the previous one's ACK */
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (bind(fd, a->ai_addr, a->ai_addrlen) || listen(fd, 1024)) {
            e = errno;
            close(fd);
            continue;
        }
        h->lfd = fd;
    }
    freeaddrinfo(ai);
    if (h->lfd < 0) {
        snprintf(err, errlen, "cannot listen on %s:%d: %s", host, port, strerror(e));
        free(h);
        return NULL;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getsockname(h->lfd, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET) h->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        else if (ss.ss_family == AF_INET6)
            h->port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    }
    event_assign(&h->lev, base, h->lfd, EV_READ | EV_PERSIST, on_accept, h);
    if (event_add(&h->lev, NULL)) {
        snprintf(err, errlen, "cannot watch the listening socket");
        close(h->lfd);
        free(h);
        return NULL;
    }
    h->listening = 1;
    return h;
}

void gw_http_on_head(struct gw_http *h, gw_http_head_cb cb) { h->on_head = cb; }
int gw_http_port(const struct gw_http *h) { return h->port; }
int gw_http_max_connections(const struct gw_http *h) { return h->o.max_connections; }
int gw_http_connections(const struct gw_http *h) { return h->nconns; }

void gw_http_render(const struct gw_http *h, struct buf *out)
{
    if (!h) return;
    buf_printf(out,
               "# HELP ferry_http_connections Open client connections (max_connections: %d).\n"
               "# TYPE ferry_http_connections gauge\nferry_http_connections %d\n"
               "# HELP ferry_http_rejected_total Client connections refused (connections: over "
               "max_connections, 503) or cut (header_timeout, body_timeout: 408).\n"
               "# TYPE ferry_http_rejected_total counter\n"
               "ferry_http_rejected_total{reason=\"connections\"} %llu\n"
               "ferry_http_rejected_total{reason=\"header_timeout\"} %llu\n"
               "ferry_http_rejected_total{reason=\"body_timeout\"} %llu\n",
               h->o.max_connections, h->nconns, h->rejected[REJ_CONNS],
               h->rejected[REJ_HEADER], h->rejected[REJ_BODY]);
}

void gw_http_stop_accepting(struct gw_http *h)
{
    if (!h || h->draining) return;
    h->draining = 1;
    event_del(&h->retry);
    if (h->listening) {
        event_del(&h->lev);
        close(h->lfd);
        h->lfd = -1;
        h->listening = 0;
    }
    /* idle keep-alive connections go now; busy ones after their response */
    for (struct gw_hconn *c = h->conns; c; c = c->next)
        if (c->state == C_HEAD) event_active(&c->dev, EV_TIMEOUT, 1);
}

void gw_http_free(struct gw_http *h)
{
    if (!h) return;
    while (h->conns) conn_close(h->conns, 0);
    event_del(&h->retry);
    if (h->listening) {
        event_del(&h->lev);
        close(h->lfd);
    }
    free(h);
}
