/* test-gw-http — the gateway's HTTP/1.1 server (gw/http.h): the bounded head parser and
 * chunked decoder on crafted inputs, then a real server on 127.0.0.1 (port from the
 * kernel, its loop on a thread) driven over raw sockets: keep-alive, pipelining,
 * chunked and 100-continue request bodies, HTTP/1.0, limits (413, 431), streamed
 * (chunked) responses, client disconnect while a response is open, and the defences
 * against slow or abusive clients with tiny deadlines (a head or body trickled byte by
 * byte gets 408 although it makes progress, a body that stops gets 408, idle keep-alive
 * connections close, max_connections answers 503). Waits are bounded (10 s) and nothing
 * asserts a duration. Then the backend
 * client (gw/hclient.h): its response parser, and real transfers against a scripted raw
 * backend (keep-alive reuse, Content-Length / chunked / until-close bodies, a stale idle
 * connection retried once, refused connections, malformed answers, pause and resume). */
#define _GNU_SOURCE /* strcasestr */
#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gw/config.h"
#include "gw/hclient.h"
#include "gw/http.h"
#include "gwtest.h"
#include "test.h"
#include "util/buf.h"

/* ==== parser ======================================================================= */

static int parse(const char *text, struct gw_hreq *r, char *store, size_t cap)
{
    size_t n = strlen(text);
    if (n >= cap) return -9999;
    memcpy(store, text, n + 1);
    return gw_http_parse_head(store, n, r);
}

TEST(http_head_parser_reads_a_request)
{
    static char b[4096];
    static struct gw_hreq r;
    const char *t = "POST /v1/chat/completions?x=1&y=2 HTTP/1.1\r\nHost: a\r\n"
                    "Content-Length:  12 \r\nX-Ferry-Tradeoff:\t0.5\t\r\n\r\nbody follows";
    int rc = parse(t, &r, b, sizeof b);
    CHECK_EQ_INT(rc, (int)(strstr(t, "body") - t));
    CHECK_EQ_INT(r.method, GW_HTTP_POST);
    CHECK_STR(r.path, "/v1/chat/completions");
    CHECK_STR(r.query, "x=1&y=2");
    CHECK_EQ_INT(r.minor, 1);
    CHECK_EQ_INT(r.keep_alive, 1);
    CHECK_EQ_INT(r.content_length, 12);
    CHECK_EQ_INT(r.nhdr, 3);
    CHECK_STR(gw_http_header(&r, "x-ferry-tradeoff"), "0.5");
    CHECK_STR(gw_http_header(&r, "HOST"), "a");
    CHECK(gw_http_header(&r, "Accept") == NULL);
    /* absolute-form, HTTP/1.0, LF-only lines, Connection tokens */
    CHECK(parse("GET http://h:1/health HTTP/1.0\nConnection: foo, Keep-Alive\n\n", &r, b,
                sizeof b) > 0);
    CHECK_STR(r.path, "/health");
    CHECK_EQ_INT(r.minor, 0);
    CHECK_EQ_INT(r.keep_alive, 1);
    CHECK(parse("GET / HTTP/1.0\r\n\r\n", &r, b, sizeof b) > 0);
    CHECK_EQ_INT(r.keep_alive, 0);
    CHECK(parse("GET / HTTP/1.1\r\nConnection: close\r\n\r\n", &r, b, sizeof b) > 0);
    CHECK_EQ_INT(r.keep_alive, 0);
    CHECK(parse("\r\nPUT /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\nExpect: 100-Continue\r\n\r\n",
                &r, b, sizeof b) > 0);
    CHECK_EQ_INT(r.method, GW_HTTP_PUT);
    CHECK_EQ_INT(r.chunked, 1);
    CHECK_EQ_INT(r.expect_continue, 1);
    CHECK_EQ_INT(r.content_length, -1);
}

TEST(http_head_parser_refuses_bad_heads)
{
    static char b[GW_HTTP_HEAD_MAX + 4096];
    static struct gw_hreq r;
    CHECK_EQ_INT(parse("GET / HTTP/1.1\r\nHost: a\r\n", &r, b, sizeof b), 0);   /* incomplete */
    CHECK_EQ_INT(parse("GET / HTTP/1.1\r\nHost: a\r\n\r", &r, b, sizeof b), 0);
    CHECK_EQ_INT(parse("GET / HTTP/2.0\r\n\r\n", &r, b, sizeof b), -505);
    CHECK_EQ_INT(parse("GET / HTTP/1.1 x\r\n\r\n", &r, b, sizeof b), -400);
    CHECK_EQ_INT(parse("GET /a b HTTP/1.1\r\n\r\n", &r, b, sizeof b), -400);
    CHECK_EQ_INT(parse("GET  / HTTP/1.1\r\n\r\n", &r, b, sizeof b), -400);
    CHECK_EQ_INT(parse("GET nopath HTTP/1.1\r\n\r\n", &r, b, sizeof b), -400);
    CHECK_EQ_INT(parse("G(T / HTTP/1.1\r\n\r\n", &r, b, sizeof b), -400);
    CHECK_EQ_INT(parse("GET / HTTP/1.1\r\nBad Name: x\r\n\r\n", &r, b, sizeof b), -400);
    CHECK_EQ_INT(parse("GET / HTTP/1.1\r\nNoColon\r\n\r\n", &r, b, sizeof b), -400);
    CHECK_EQ_INT(parse("GET / HTTP/1.1\r\nA: b\r\n folded\r\n\r\n", &r, b, sizeof b), -400);
    CHECK_EQ_INT(parse("GET / HTTP/1.1\r\nA: b\rc\r\n\r\n", &r, b, sizeof b), -400);
    CHECK_EQ_INT(parse("POST / HTTP/1.1\r\nContent-Length: 1x\r\n\r\n", &r, b, sizeof b), -400);
    CHECK_EQ_INT(parse("POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n", &r,
                       b, sizeof b), -400);
    CHECK_EQ_INT(parse("POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", &r,
                       b, sizeof b), -400);
    CHECK(parse("POST / HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n", &r, b,
                sizeof b) > 0);
    CHECK_EQ_INT(parse("POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
                       &r, b, sizeof b), -400);
    CHECK_EQ_INT(parse("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", &r, b,
                       sizeof b), -501);
    CHECK_EQ_INT(parse("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", &r, b, sizeof b),
                 -400);
    CHECK_EQ_INT(parse("POST / HTTP/1.1\r\nExpect: 200-ok\r\n\r\n", &r, b, sizeof b), -417);
    CHECK_EQ_INT(parse("ABCDEFGHIJKLMNOPQRSTUVWXYZ / HTTP/1.1\r\n\r\n", &r, b, sizeof b), -501);
    /* too many header fields; a head that never ends within the limit */
    struct buf t;
    buf_init(&t);
    buf_puts(&t, "GET / HTTP/1.1\r\n");
    for (int i = 0; i <= GW_HTTP_MAX_HEADERS; i++) buf_printf(&t, "H%d: v\r\n", i);
    buf_puts(&t, "\r\n");
    CHECK_EQ_INT(parse(t.data, &r, b, sizeof b), -431);
    buf_reset(&t);
    buf_puts(&t, "GET / HTTP/1.1\r\nX: ");
    while (t.len < GW_HTTP_HEAD_MAX) buf_putc(&t, 'a');
    CHECK_EQ_INT(parse(t.data, &r, b, sizeof b), -431);
    buf_fini(&t);
}

/* A refusal says what was wrong and where (r.err; it was only a status). */
TEST(http_head_parser_says_what_and_where)
{
    static char b[GW_HTTP_HEAD_MAX + 4096];
    static struct gw_hreq r;
    CHECK_EQ_INT(parse("GET /health\r\n\r\n", &r, b, sizeof b), -400);
    CHECK_STR(r.err, "request line 'GET /health': expected METHOD /path HTTP/1.1");
    CHECK_EQ_INT(parse("GET / HTTP/1.1\r\nHost: a\r\nBad Name: x\r\n\r\n", &r, b, sizeof b),
                 -400);
    CHECK_STR(r.err, "header line 2: invalid character 0x20 in the field name 'Bad Name'");
    /* bytes past ASCII are not copied into the message (it must stay valid UTF-8) */
    CHECK_EQ_INT(parse("GET / HTTP/1.1\r\nN\xc3\xa9: x\r\n\r\n", &r, b, sizeof b), -400);
    CHECK_STR(r.err, "header line 1: invalid character 0xc3 in the field name 'N?" "?'");
    CHECK_EQ_INT(parse("POST / HTTP/1.1\r\nTransfer-Encoding: \xff\r\n\r\n", &r, b, sizeof b),
                 -501);
    CHECK_STR(r.err, "Transfer-Encoding '?' is not supported (only chunked)");
    CHECK_EQ_INT(parse("GET / HTTP/1.1\r\nX-A: a\001b\r\n\r\n", &r, b, sizeof b), -400);
    CHECK_STR(r.err, "control character 0x01 in header line 1 at byte 6");
    CHECK_EQ_INT(parse("POST / HTTP/1.1\r\nContent-Length: 5\r\ncontent-length: 7\r\n\r\n", &r,
                       b, sizeof b), -400);
    CHECK_STR(r.err, "two different Content-Length values (5 and 7)");
    CHECK_EQ_INT(parse("POST / HTTP/1.1\r\nContent-Length: \"5\"\r\n\r\n", &r, b, sizeof b),
                 -400);
    CHECK_STR(r.err, "Content-Length '\"5\"' is not a decimal number of at most 18 digits");
    CHECK_EQ_INT(parse("POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", &r, b, sizeof b),
                 -501);
    CHECK_STR(r.err, "Transfer-Encoding 'gzip' is not supported (only chunked)");
    CHECK_EQ_INT(parse("POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n"
                       "\r\n", &r, b, sizeof b), -400);
    CHECK_STR(r.err, "both Content-Length and Transfer-Encoding: chunked");
    CHECK_EQ_INT(parse("GET / HTTP/3.0\r\n\r\n", &r, b, sizeof b), -505);
    CHECK(strstr(r.err, "HTTP/3.0") != NULL);
    CHECK(parse("GET / HTTP/1.1\r\n\r\n", &r, b, sizeof b) > 0);
    CHECK_STR(r.err, "");
    /* a request target over GW_HTTP_TARGET_MAX, a request line that never ends: 414 */
    struct buf t;
    buf_init(&t);
    buf_puts(&t, "GET /v1/models?");
    while (t.len < GW_HTTP_TARGET_MAX + 10) buf_putc(&t, 'q');
    buf_puts(&t, " HTTP/1.1\r\n\r\n");
    CHECK_EQ_INT(parse(t.data, &r, b, sizeof b), -414);
    CHECK(strstr(r.err, "longer than 8192") != NULL);
    buf_reset(&t);
    buf_puts(&t, "GET /");
    while (t.len < GW_HTTP_HEAD_MAX + 10) buf_putc(&t, 'a');
    CHECK_EQ_INT(parse(t.data, &r, b, sizeof b), -414);
    CHECK_STR(r.err, "request line longer than 65536 bytes");
    /* a long target within GW_HTTP_TARGET_MAX is fine */
    buf_reset(&t);
    buf_puts(&t, "GET /v1/models?");
    while (t.len < GW_HTTP_TARGET_MAX) buf_putc(&t, 'q');
    buf_puts(&t, " HTTP/1.1\r\n\r\n");
    CHECK(parse(t.data, &r, b, sizeof b) > 0);
    buf_fini(&t);
}

/* Decodes in whole and byte by byte; both must agree. Returns rc, body in out. */
static int dechunk(const char *in, size_t max, struct buf *out, size_t *used)
{
    struct gw_chunked st;
    memset(&st, 0, sizeof st);
    int rc = gw_http_chunked(&st, in, strlen(in), out, max, used);
    struct gw_chunked s2;
    memset(&s2, 0, sizeof s2);
    struct buf o2;
    buf_init(&o2);
    size_t u2 = 0;
    int r2 = 0;
    for (size_t i = 0; in[i]; i++) {
        size_t u = 0;
        r2 = gw_http_chunked(&s2, in + i, 1, &o2, max, &u);
        u2 += u;
        if (r2) break;
    }
    int same = r2 == rc && u2 == *used && o2.len == out->len &&
               (!o2.len || !memcmp(o2.data, out->data, o2.len));
    buf_fini(&o2);
    return same ? rc : -9999;
}

TEST(http_chunked_decoder)
{
    struct buf o;
    buf_init(&o);
    size_t used = 0;
    const char *ok = "5\r\nhello\r\n7;ext=\"a b\"\r\n, world\r\n0\r\nX-T: 1\r\n\r\nNEXT";
    CHECK_EQ_INT(dechunk(ok, 1000, &o, &used), 1);
    CHECK_STR(o.data, "hello, world");
    CHECK_EQ_INT(used, strlen(ok) - 4);
    buf_reset(&o);
    CHECK_EQ_INT(dechunk("A\r\n0123456789\r\n0\r\n\r\n", 1000, &o, &used), 1);
    CHECK_EQ_INT(o.len, 10);
    buf_reset(&o);
    CHECK_EQ_INT(dechunk("5\r\nhel", 1000, &o, &used), 0);              /* more needed */
    buf_reset(&o);
    CHECK_EQ_INT(dechunk("zz\r\n", 1000, &o, &used), -400);
    buf_reset(&o);
    CHECK_EQ_INT(dechunk("5\r\nhelloXX\r\n", 1000, &o, &used), -400);     /* no CRLF after data */
    buf_reset(&o);
    CHECK_EQ_INT(dechunk("5\r\nhello\r\n6\r\nworld!\r\n0\r\n\r\n", 10, &o, &used), -413);
    CHECK(o.len <= 10);
    buf_reset(&o);
    CHECK_EQ_INT(dechunk("fffffffffffffffff\r\n", 1000, &o, &used), -413);
    buf_fini(&o);
}

/* ==== a real server ================================================================ */

struct srv {
    struct event_base *base;
    struct gw_http *h;
    pthread_t th;
    int port;
    atomic_int gone, requests;
    struct gw_hconn *held;       /* /hold: the open response */
    struct event *stop;
};

static void on_gone(void *arg)
{
    struct srv *s = arg;
    s->held = NULL;
    atomic_fetch_add(&s->gone, 1);
}

static void handle(void *arg, struct gw_hconn *c, struct gw_hreq *r)
{
    struct srv *s = arg;
    atomic_fetch_add(&s->requests, 1);
    char hdr[256];
    int hl = snprintf(hdr, sizeof hdr, "X-Path: %s\r\nX-Method: %s\r\nX-Query: %s\r\n",
                      r->path, r->method_name, r->query);
    if (!strcmp(r->path, "/stream")) {
        gw_http_stream_start(c, 200, hdr, (size_t)hl);
        gw_http_stream_write(c, "data: one\n\n", 11);
        gw_http_stream_write(c, "data: two\n\n", 11);
        gw_http_stream_end(c);
    } else if (!strcmp(r->path, "/big")) {   /* 16 MiB: more than the socket buffers hold */
        size_t n = (size_t)16 << 20;
        char *b = malloc(n);
        memset(b, 'z', n);
        gw_http_reply(c, 200, hdr, (size_t)hl, b, n);
        free(b);
    } else if (!strcmp(r->path, "/blob")) {  /* 32 KiB */
        static char b[32768];
        memset(b, 'b', sizeof b);
        gw_http_reply(c, 200, NULL, 0, b, sizeof b);
    } else if (!strcmp(r->path, "/metrics")) {
        struct buf b;
        buf_init(&b);
        gw_http_render(s->h, &b);
        gw_http_reply(c, 200, NULL, 0, b.data ? b.data : "", b.len);
        buf_fini(&b);
    } else if (!strcmp(r->path, "/hold")) {
        gw_http_stream_start(c, 200, hdr, (size_t)hl);
        gw_http_stream_write(c, "data: held\n\n", 12);
        s->held = c;
        gw_http_watch(c, on_gone, NULL, s);
    } else {
        gw_http_reply(c, 200, hdr, (size_t)hl, r->body ? r->body : "", r->body_len);
    }
}

static void *loop_main(void *arg)
{
    struct srv *s = arg;
    event_base_dispatch(s->base);
    return NULL;
}

static void on_stop(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    struct srv *s = arg;
    event_base_loopbreak(s->base);
}

static struct srv *srv_start_opts(const struct gw_http_opts *o)
{
    struct srv *s = calloc(1, sizeof *s);
    s->base = event_base_new();
    char err[256];
    s->h = gw_http_new(s->base, "127.0.0.1", 0, o, handle, NULL, s, err, sizeof err);
    if (!s->h) {
        fprintf(stderr, "  gw_http_new: %s\n", err);
        event_base_free(s->base);
        free(s);
        return NULL;
    }
    s->port = gw_http_port(s->h);
    s->stop = event_new(s->base, -1, 0, on_stop, s);
    pthread_create(&s->th, NULL, loop_main, s);
    return s;
}

static struct srv *srv_start(size_t max_body)
{
    struct gw_http_opts o = {.max_body = max_body, .timeout_ms = 10000};
    return srv_start_opts(&o);
}

static void srv_stop(struct srv *s)
{
    if (!s) return;
    event_active(s->stop, EV_TIMEOUT, 1);
    pthread_join(s->th, NULL);
    gw_http_free(s->h);
    event_free(s->stop);
    event_base_free(s->base);
    free(s);
}

static int count(const char *hay, const char *needle)
{
    int k = 0;
    for (const char *p = hay; p && (p = strstr(p, needle)); p += strlen(needle)) k++;
    return k;
}

TEST(http_server_keepalive_pipelining_and_bodies)
{
    struct srv *s = srv_start(1000);
    CHECK(s != NULL);
    int fd = gwt_connect(s->port, 0);
    struct buf o;
    buf_init(&o);
    /* three pipelined requests in one write: answered in order on one connection */
    gwt_send_all(fd, "POST /a?q=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nfirst"
                 "GET /b HTTP/1.1\r\nHost: x\r\n\r\n"
                 "POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "3\r\nthi\r\n2\r\nrd\r\n0\r\n\r\n");
    int ok = gwt_read_until(fd, &o, "third", NULL);
    const char *a = strstr(o.data ? o.data : "", "X-Path: /a");
    const char *b2 = strstr(o.data ? o.data : "", "X-Path: /b");
    const char *c = strstr(o.data ? o.data : "", "X-Path: /c");
    int ordered = a && b2 && c && a < b2 && b2 < c;
    int q1 = strstr(o.data ? o.data : "", "X-Query: q=1") != NULL;
    int first = strstr(o.data ? o.data : "", "\r\n\r\nfirst") != NULL;
    /* the same connection goes on: 100-continue before the body */
    buf_reset(&o);
    gwt_send_all(fd, "POST /d HTTP/1.1\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n");
    int cont = gwt_read_until(fd, &o, "HTTP/1.1 100 Continue\r\n\r\n", NULL);
    gwt_send_all(fd, "body");
    int fourth = gwt_read_until(fd, &o, "\r\n\r\nbody", NULL);
    /* a streamed answer is chunked */
    buf_reset(&o);
    gwt_send_all(fd, "GET /stream HTTP/1.1\r\n\r\n");
    int streamed = gwt_read_until(fd, &o, "0\r\n\r\n", NULL);
    int chunked = o.data && strstr(o.data, "Transfer-Encoding: chunked\r\n") &&
                  strstr(o.data, "b\r\ndata: one\n\n\r\nb\r\ndata: two\n\n\r\n0\r\n\r\n");
    close(fd);
    buf_fini(&o);
    srv_stop(s);
    CHECK(ok);
    CHECK(ordered);
    CHECK(q1);
    CHECK(first);
    CHECK(cont);
    CHECK(fourth);
    CHECK(streamed);
    CHECK(chunked);
}

TEST(http_server_limits_and_connection_close)
{
    struct srv *s = srv_start(1000);
    CHECK(s != NULL);
    struct buf o;
    buf_init(&o);
    int eof = 0;
    /* a body over the limit: 413 and the connection closes (no 100 Continue first) */
    int fd = gwt_connect(s->port, 0);
    gwt_send_all(fd, "POST /big HTTP/1.1\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n");
    gwt_read_until(fd, &o, NULL, &eof);
    int r413 = o.data && !strncmp(o.data, "HTTP/1.1 413 ", 13) && !strstr(o.data, "100 Continue")
               && strstr(o.data, "\"error\"");
    int closed413 = eof;
    close(fd);
    /* a chunked body over the limit */
    buf_reset(&o);
    fd = gwt_connect(s->port, 0);
    gwt_send_all(fd, "POST /big HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n400\r\n");
    char pad[1100];
    memset(pad, 'x', 1024);
    pad[1024] = 0;
    gwt_send_all(fd, pad);
    gwt_send_all(fd, "\r\n");
    gwt_read_until(fd, &o, NULL, &eof);
    int c413 = o.data && !strncmp(o.data, "HTTP/1.1 413 ", 13);
    close(fd);
    /* an oversized head: 431 */
    buf_reset(&o);
    fd = gwt_connect(s->port, 0);
    gwt_send_all(fd, "GET / HTTP/1.1\r\nX-Long: ");
    struct buf big;
    buf_init(&big);
    while (big.len < GW_HTTP_HEAD_MAX + 10) buf_putc(&big, 'a');
    gwt_send_all(fd, big.data);
    buf_fini(&big);
    gwt_read_until(fd, &o, NULL, &eof);
    int r431 = o.data && !strncmp(o.data, "HTTP/1.1 431 ", 13);
    close(fd);
    /* garbage: 400 */
    buf_reset(&o);
    fd = gwt_connect(s->port, 0);
    gwt_send_all(fd, "HELLO\r\n\r\n");
    gwt_read_until(fd, &o, NULL, &eof);
    int r400 = o.data && !strncmp(o.data, "HTTP/1.1 400 ", 13);
    close(fd);
    /* HTTP/1.0 without keep-alive, and Connection: close: answered, then closed */
    buf_reset(&o);
    fd = gwt_connect(s->port, 0);
    gwt_send_all(fd, "GET /x HTTP/1.0\r\n\r\n");
    gwt_read_until(fd, &o, NULL, &eof);
    int h10 = o.data && strstr(o.data, "X-Path: /x") && strstr(o.data, "Connection: close") && eof;
    close(fd);
    buf_reset(&o);
    fd = gwt_connect(s->port, 0);
    gwt_send_all(fd, "GET /y HTTP/1.1\r\nConnection: close\r\n\r\nGET /z HTTP/1.1\r\n\r\n");
    gwt_read_until(fd, &o, NULL, &eof);
    int cc = o.data && strstr(o.data, "X-Path: /y") && !strstr(o.data, "X-Path: /z") && eof;
    close(fd);
    buf_fini(&o);
    srv_stop(s);
    CHECK(r413);
    CHECK(closed413);
    CHECK(c413);
    CHECK(r431);
    CHECK(r400);
    CHECK(h10);
    CHECK(cc);
}

/* The message of a refusal the server answered itself on a fresh connection; NULL when
 * the answer is not status + a JSON error object (free it). */
static char *refusal(int port, const char *req, int status)
{
    struct buf o;
    buf_init(&o);
    int fd = gwt_connect(port, 0);
    gwt_send_all(fd, req);
    int eof = 0;
    gwt_read_until(fd, &o, NULL, &eof);
    close(fd);
    char want[32];
    snprintf(want, sizeof want, "HTTP/1.1 %d ", status);
    const char *body = o.data ? strstr(o.data, "\r\n\r\n") : NULL;
    char *msg = NULL;
    if (body && !strncmp(o.data, want, strlen(want))) {
        cJSON *j = cJSON_Parse(body + 4);
        const char *m = cJSON_GetStringValue(
            cJSON_GetObjectItem(cJSON_GetObjectItem(j, "error"), "message"));
        if (m) msg = strdup(m);
        cJSON_Delete(j);
    }
    if (!msg) fprintf(stderr, "  answer: %.300s\n", o.data ? o.data : "(none)");
    buf_fini(&o);
    return msg;
}

/* Every refusal is a JSON error object saying what was wrong (client bytes quoted and
 * escaped), a long request target is 414 (it was 431 or accepted). */
TEST(http_server_refusals_name_the_problem)
{
    struct srv *s = srv_start(1000);
    CHECK(s != NULL);
    char *cl = refusal(s->port, "POST / HTTP/1.1\r\nContent-Length: \"1\\\r\n\r\n", 400);
    char *big = refusal(s->port, "POST / HTTP/1.1\r\nContent-Length: 5000\r\n\r\n", 413);
    char *chk = refusal(s->port, "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                                 "3\r\nabcX\r\n", 400);
    struct buf t;
    buf_init(&t);
    buf_puts(&t, "GET /x?");
    while (t.len < 9000) buf_putc(&t, 'q');
    buf_puts(&t, " HTTP/1.1\r\n\r\n");
    char *uri = refusal(s->port, t.data, 414);
    buf_fini(&t);
    int nreq = atomic_load(&s->requests);
    srv_stop(s);
    CHECK(cl && !strcmp(cl, "Content-Length '\"1\\' is not a decimal number of at most 18 digits"));
    CHECK(big && strstr(big, "5000 bytes") && strstr(big, "limit of 1000 bytes"));
    CHECK(chk && strstr(chk, "malformed chunked request body after 3 decoded bytes"));
    CHECK(uri && strstr(uri, "request target of 8996 bytes is longer than 8192"));
    CHECK_EQ_INT(nreq, 0);
    free(cl);
    free(big);
    free(chk);
    free(uri);
}

TEST(http_server_notices_a_client_that_goes_away)
{
    struct srv *s = srv_start(1000);
    CHECK(s != NULL);
    int fd = gwt_connect(s->port, 0);
    struct buf o;
    buf_init(&o);
    gwt_send_all(fd, "GET /hold HTTP/1.1\r\n\r\n");
    int started = gwt_read_until(fd, &o, "data: held", NULL);
    int gone_before = atomic_load(&s->gone);
    close(fd);
    for (int i = 0; i < 500 && atomic_load(&s->gone) == 0; i++) usleep(10000);
    int gone_after = atomic_load(&s->gone);
    buf_fini(&o);
    srv_stop(s);
    CHECK(started);
    CHECK_EQ_INT(gone_before, 0);
    CHECK_EQ_INT(gone_after, 1);
}

TEST(http_server_many_requests_on_one_connection)
{
    struct srv *s = srv_start(1 << 20);
    CHECK(s != NULL);
    int fd = gwt_connect(s->port, 0);
    struct buf req, o;
    buf_init(&req);
    buf_init(&o);
    /* 400 pipelined requests (136 kB, more than the input buffer holds): all answered in order */
    for (int i = 0; i < 400; i++)
        buf_printf(&req, "POST /n%d HTTP/1.1\r\nContent-Length: 300\r\n\r\n%0300d", i, i);
    /* write in pieces while reading, so neither side's buffers fill */
    size_t off = 0;
    while (off < req.len) {
        size_t k = req.len - off < 8192 ? req.len - off : 8192;
        ssize_t n = write(fd, req.data + off, k);
        if (n <= 0) break;
        off += (size_t)n;
        struct pollfd p = {fd, POLLIN, 0};
        while (poll(&p, 1, 0) > 0) {
            char b[65536];
            ssize_t r = read(fd, b, sizeof b);
            if (r <= 0) break;
            buf_append(&o, b, (size_t)r);
        }
    }
    gwt_read_until(fd, &o, "X-Path: /n399\r\n", NULL);
    gwt_read_until(fd, &o, "0399", NULL);
    int n200 = count(o.data, "HTTP/1.1 200 OK\r\n");
    const char *p50 = strstr(o.data ? o.data : "", "X-Path: /n50\r\n");
    const char *p51 = strstr(o.data ? o.data : "", "X-Path: /n51\r\n");
    close(fd);
    buf_fini(&req);
    buf_fini(&o);
    int nreq = atomic_load(&s->requests);
    srv_stop(s);
    CHECK_EQ_INT(n200, 400);
    CHECK_EQ_INT(nreq, 400);
    CHECK(p50 && p51 && p50 < p51);
}

/* A client that pipelines requests and never reads: the server must not answer the
 * next request while the previous answer is still queued (each 23-byte request here
 * makes a 32 KiB answer: 1000 of them queued 32 MB in the server, and any number of
 * them grew its memory without bound). Once the client reads, all are answered. */
TEST(http_server_pipelining_client_that_does_not_read_is_not_answered_ahead)
{
    struct srv *s = srv_start(1000);
    CHECK(s != NULL);
    int fd = gwt_connect(s->port, 4096);
    struct buf req;
    buf_init(&req);
    for (int i = 0; i < 1000; i++) buf_puts(&req, "GET /blob HTTP/1.1\r\n\r\n");
    buf_puts(&req, "GET /last HTTP/1.1\r\nConnection: close\r\n\r\n");
    gwt_send_all(fd, req.data);
    buf_fini(&req);
    /* wait until the server stops answering (its socket buffers are full) */
    int last = -1, still = 0;
    for (int i = 0; i < 1000 && still < 30; i++) {
        usleep(10000);
        int now = atomic_load(&s->requests);
        still = now == last ? still + 1 : 0;
        last = now;
    }
    int ahead = atomic_load(&s->requests);
    /* now read everything: every answer comes, in order, then the close */
    size_t total = 0;
    int tail_last = 0;
    char b[65536];
    ssize_t r;
    struct pollfd p = {fd, POLLIN, 0};
    while (poll(&p, 1, 5000) > 0 && (r = read(fd, b, sizeof b)) > 0) {
        total += (size_t)r;
        tail_last = r >= 9 && memmem(b, (size_t)r, "X-Path: /last", 13) != NULL ? 1 : tail_last;
    }
    close(fd);
    int nreq = atomic_load(&s->requests);
    srv_stop(s);
    CHECK(ahead < 500);
    CHECK_EQ_INT(nreq, 1001);
    CHECK(total > (size_t)1000 * 32768);
    CHECK(tail_last);
}

/* ==== slow and abusive clients ===================================================== */

/* Sends p one byte every gap_ms until the server answers or closes (the socket turns
 * readable), p ends or 10 s passed. *sent = the bytes sent. Returns 1 when the server
 * answered while the client was still sending (0: it kept waiting for more). */
static int trickle(int fd, const char *p, int gap_ms, size_t *sent)
{
    size_t i = 0;
    int answered = 0;
    for (int k = 0; k < 10000 / gap_ms && p[i]; k++) {
        struct pollfd q = {fd, POLLIN, 0};
        if (poll(&q, 1, gap_ms) != 0) {
            answered = 1;
            break;
        }
        if (send(fd, p + i, 1, MSG_NOSIGNAL) != 1) break;
        i++;
    }
    *sent = i;
    return answered;
}

/* GET /metrics on a new connection (the test server renders gw_http_render). */
static void fetch_metrics(int port, struct buf *o)
{
    int fd = gwt_connect(port, 0);
    gwt_send_all(fd, "GET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n");
    int eof = 0;
    gwt_read_until(fd, o, NULL, &eof);
    close(fd);
}

TEST(http_server_head_deadline_stops_a_trickle)
{
    struct gw_http_opts opt = {.max_body = 1000, .timeout_ms = 10000, .header_timeout_ms = 200};
    struct srv *s = srv_start_opts(&opt);
    CHECK(s != NULL);
    struct buf o, pad;
    buf_init(&o);
    buf_init(&pad);
    /* one byte every 50 ms: progress all the time, yet the head deadline passes */
    buf_puts(&pad, "GET /slow HTTP/1.1\r\nX-Pad: ");
    while (pad.len < 400) buf_putc(&pad, 'a');
    int fd = gwt_connect(s->port, 0);
    size_t sent = 0;
    int cut = trickle(fd, pad.data, 50, &sent);
    int eof = 0;
    gwt_read_until(fd, &o, NULL, &eof);
    int r408 = o.data && !strncmp(o.data, "HTTP/1.1 408 ", 13) && strstr(o.data, "\"error\"") &&
               strstr(o.data, "header timeout") && strstr(o.data, "Connection: close");
    int closed = eof;
    close(fd);
    /* a connection that sends nothing is closed without an answer */
    buf_reset(&o);
    fd = gwt_connect(s->port, 0);
    gwt_read_until(fd, &o, NULL, &eof);
    int silent = eof && o.len == 0;
    close(fd);
    /* a normal request is still served; the counter saw the trickle */
    buf_reset(&o);
    fetch_metrics(s->port, &o);
    long long hdr_rej =
        gwt_metric_in(o.data ? o.data : "", "ferry_http_rejected_total{reason=\"header_timeout\"}");
    int served = o.data && !strncmp(o.data, "HTTP/1.1 200 ", 13);
    buf_fini(&o);
    buf_fini(&pad);
    srv_stop(s);
    CHECK(cut);                 /* answered while the client was still sending */
    CHECK(sent >= 2);
    CHECK(r408);
    CHECK(closed);
    CHECK(silent);
    CHECK(served);
    CHECK_EQ_INT(hdr_rej, 1);
}

TEST(http_server_body_deadline)
{
    /* grace 200 ms, then 1000 bytes/s on average */
    struct gw_http_opts opt = {.max_body = 100000, .timeout_ms = 10000, .body_timeout_ms = 200,
                               .min_body_rate = 1000};
    struct srv *s = srv_start_opts(&opt);
    CHECK(s != NULL);
    struct buf o, body;
    buf_init(&o);
    buf_init(&body);
    int eof = 0;
    /* a Content-Length body that stops half-way */
    int fd = gwt_connect(s->port, 0);
    gwt_send_all(fd, "POST /stop HTTP/1.1\r\nContent-Length: 1000\r\n\r\n");
    while (body.len < 100) buf_putc(&body, 'b');
    gwt_send_all(fd, body.data);
    gwt_read_until(fd, &o, NULL, &eof);
    int stop408 = o.data && !strncmp(o.data, "HTTP/1.1 408 ", 13) && strstr(o.data, "\"error\"");
    int stop_closed = eof;
    close(fd);
    /* a chunked body that stops after its first chunk */
    buf_reset(&o);
    fd = gwt_connect(s->port, 0);
    gwt_send_all(fd, "POST /stopc HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n");
    gwt_read_until(fd, &o, NULL, &eof);
    int chunk408 = o.data && !strncmp(o.data, "HTTP/1.1 408 ", 13) && eof;
    close(fd);
    /* a body trickled at 20 bytes/s, far below the minimum rate, although it progresses */
    buf_reset(&o);
    buf_reset(&body);
    while (body.len < 600) buf_putc(&body, 't');
    fd = gwt_connect(s->port, 0);
    gwt_send_all(fd, "POST /trickle HTTP/1.1\r\nContent-Length: 600\r\n\r\n");
    size_t sent = 0;
    int cut = trickle(fd, body.data, 50, &sent);
    gwt_read_until(fd, &o, NULL, &eof);
    int trickle408 = o.data && !strncmp(o.data, "HTTP/1.1 408 ", 13) && eof;
    close(fd);
    /* slow but within the rule: 6000 bytes in 100-byte pieces 10 ms apart (>= 600 ms,
     * longer than the grace alone; 10 kB/s, ten times the minimum rate): served */
    buf_reset(&o);
    buf_reset(&body);
    while (body.len < 100) buf_putc(&body, 's');
    fd = gwt_connect(s->port, 0);
    gwt_send_all(fd, "POST /slowok HTTP/1.1\r\nContent-Length: 6000\r\n\r\n");
    for (int i = 0; i < 60; i++) {
        gwt_send_all(fd, body.data);
        usleep(10000);
    }
    int ok = gwt_read_until(fd, &o, "X-Path: /slowok", NULL) &&
             gwt_read_until(fd, &o, "\r\n\r\n", NULL);
    const char *end = o.data ? strstr(o.data, "\r\n\r\n") : NULL;
    while (ok && o.len < (size_t)(end - o.data) + 4 + 6000) {   /* the echoed body */
        struct pollfd q = {fd, POLLIN, 0};
        char b[4096];
        ssize_t n = poll(&q, 1, 5000) > 0 ? read(fd, b, sizeof b) : 0;
        if (n <= 0) break;
        buf_append(&o, b, (size_t)n);
        end = strstr(o.data, "\r\n\r\n");
    }
    int ok200 = ok && !strncmp(o.data, "HTTP/1.1 200 ", 13) &&
                strstr(o.data, "Content-Length: 6000\r\n") && count(end, "s") == 6000;
    close(fd);
    buf_reset(&o);
    fetch_metrics(s->port, &o);
    long long body_rej =
        gwt_metric_in(o.data ? o.data : "", "ferry_http_rejected_total{reason=\"body_timeout\"}");
    buf_fini(&o);
    buf_fini(&body);
    srv_stop(s);
    CHECK(stop408);
    CHECK(stop_closed);
    CHECK(chunk408);
    CHECK(cut && sent >= 2);
    CHECK(trickle408);
    CHECK(ok200);
    CHECK_EQ_INT(body_rej, 3);
}

TEST(http_server_closes_idle_keepalive_connections)
{
    struct gw_http_opts opt = {.max_body = 1000, .timeout_ms = 10000,
                               .keepalive_timeout_ms = 200};
    struct srv *s = srv_start_opts(&opt);
    CHECK(s != NULL);
    struct buf o;
    buf_init(&o);
    int fd = gwt_connect(s->port, 0);
    gwt_send_all(fd, "GET /one HTTP/1.1\r\n\r\n");
    int one = gwt_read_until(fd, &o, "X-Path: /one", NULL) &&
              gwt_read_until(fd, &o, "\r\n\r\n", NULL);
    gwt_send_all(fd, "GET /two HTTP/1.1\r\n\r\n");   /* still kept alive after the first */
    int two = gwt_read_until(fd, &o, "X-Path: /two", NULL);
    gwt_read_until(fd, &o, "\r\n\r\n", NULL);
    size_t before = o.len;
    int eof = 0;
    gwt_read_until(fd, &o, NULL, &eof);               /* then idle: closed, nothing written */
    int closed = eof && o.len == before && !strstr(o.data, "408");
    close(fd);
    /* a long answer read slowly is not idle time: the client pauses for longer than the
     * keep-alive timeout before reading, and still gets every byte */
    buf_reset(&o);
    fd = gwt_connect(s->port, 0);
    gwt_send_all(fd, "GET /big HTTP/1.1\r\n\r\n");
    usleep(600000);
    size_t got = 0, head = 0;
    int big_eof = 0;
    for (;;) {      /* to the end: the idle close comes once everything was read */
        struct pollfd q = {fd, POLLIN, 0};
        char b[65536];
        ssize_t n = poll(&q, 1, 5000) > 0 ? read(fd, b, sizeof b) : -1;
        if (n <= 0) {
            big_eof = n == 0;
            break;
        }
        if (!got) {
            const char *e = memmem(b, (size_t)n, "\r\n\r\n", 4);
            head = e ? (size_t)(e - b) + 4 : 0;
        }
        got += (size_t)n;
    }
    close(fd);
    buf_fini(&o);
    srv_stop(s);
    CHECK(one);
    CHECK(two);
    CHECK(closed);
    CHECK(head > 0);
    CHECK_EQ_INT((long long)(got - head), (long long)16 << 20);
    CHECK(big_eof);
}

/* One GET on fd; 1 when a 200 came. */
static int get_ok(int fd, const char *path)
{
    char req[128];
    snprintf(req, sizeof req, "GET %s HTTP/1.1\r\n\r\n", path);
    gwt_send_all(fd, req);
    struct buf o;
    buf_init(&o);
    char want[128];
    snprintf(want, sizeof want, "X-Path: %s\r\n", path);
    int ok = gwt_read_until(fd, &o, want, NULL) && !strncmp(o.data, "HTTP/1.1 200 ", 13);
    gwt_read_until(fd, &o, "\r\n\r\n", NULL);
    buf_fini(&o);
    return ok;
}

TEST(http_server_connection_limit)
{
    struct gw_http_opts opt = {.max_body = 1000, .timeout_ms = 10000, .max_connections = 2};
    struct srv *s = srv_start_opts(&opt);
    CHECK(s != NULL);
    int a = gwt_connect(s->port, 0), b = gwt_connect(s->port, 0);
    int a1 = get_ok(a, "/a"), b1 = get_ok(b, "/b");
    /* a third connection: 503 with Retry-After, closed at once */
    struct buf o;
    buf_init(&o);
    int c = gwt_connect(s->port, 0);
    gwt_send_all(c, "GET /c HTTP/1.1\r\n\r\n");
    int eof = 0;
    gwt_read_until(c, &o, NULL, &eof);
    int r503 = o.data && !strncmp(o.data, "HTTP/1.1 503 ", 13) && strstr(o.data, "Retry-After: ")
               && strstr(o.data, "\"error\"") && eof;
    close(c);
    /* the first two are still served */
    int a2 = get_ok(a, "/a2"), b2 = get_ok(b, "/b2");
    /* once one closes, a new connection is served (the server may see the close after
     * the next connect: retried, bounded) */
    close(a);
    int later = 0;
    long long conns = -1, rej = -1;
    for (int i = 0; i < 100 && !later; i++) {
        int d = gwt_connect(s->port, 0);
        later = get_ok(d, "/d");
        if (later) {
            buf_reset(&o);
            gwt_send_all(d, "GET /metrics HTTP/1.1\r\n\r\n");
            gwt_read_until(d, &o, "body_timeout", NULL);
            gwt_read_until(d, &o, "\n", NULL);
            conns = gwt_metric_in(o.data ? o.data : "", "ferry_http_connections");
            rej = gwt_metric_in(o.data ? o.data : "",
                                "ferry_http_rejected_total{reason=\"connections\"}");
        }
        close(d);
        if (!later) usleep(100000);
    }
    close(b);
    buf_fini(&o);
    srv_stop(s);
    CHECK(a1 && b1);
    CHECK(r503);
    CHECK(a2 && b2);
    CHECK(later);
    CHECK_EQ_INT(conns, 2);
    CHECK(rej >= 1);
}

/* In a child process (limits are process-wide): with soft/hard RLIMIT_NOFILE, what
 * max_connections does the server end up with when asked for want? -1 on failure. */
static int conns_under_limit(rlim_t soft, rlim_t hard, int want, rlim_t *soft_after)
{
    int pfd[2];
    if (pipe(pfd)) return -1;
    pid_t pid = fork();
    if (pid == 0) {
        gwt_child_init();
        close(pfd[0]);
        struct rlimit rl = {soft, hard};
        long out[2] = {-1, -1};
        if (setrlimit(RLIMIT_NOFILE, &rl) == 0) {
            struct event_base *base = event_base_new();
            struct gw_http_opts o = {.max_body = 1000, .max_connections = want};
            char err[256];
            struct gw_http *h = gw_http_new(base, "127.0.0.1", 0, &o, handle, NULL, NULL, err,
                                            sizeof err);
            if (h) out[0] = gw_http_max_connections(h);
            getrlimit(RLIMIT_NOFILE, &rl);
            out[1] = (long)rl.rlim_cur;
            gw_http_free(h);
            event_base_free(base);
        }
        ssize_t w = write(pfd[1], out, sizeof out);
        _exit(w == (ssize_t)sizeof out ? 0 : 1);
    }
    close(pfd[1]);
    long in[2] = {-1, -1};
    ssize_t r = pid > 0 ? read(pfd[0], in, sizeof in) : -1;
    close(pfd[0]);
    if (pid > 0) waitpid(pid, NULL, 0);
    if (r != (ssize_t)sizeof in) return -1;
    *soft_after = (rlim_t)in[1];
    return (int)in[0];
}

TEST(http_server_fits_max_connections_to_the_descriptor_limit)
{
    rlim_t soft = 0;
    /* the soft limit is raised when the hard one allows it (a child cannot raise the hard
     * limit: stay within this machine's) */
    struct rlimit cur;
    CHECK(getrlimit(RLIMIT_NOFILE, &cur) == 0);
    rlim_t hard = cur.rlim_max == RLIM_INFINITY || cur.rlim_max > 4096 ? 4096 : cur.rlim_max;
    int want = (int)((hard - GW_HTTP_FD_RESERVE) / GW_HTTP_FDS_PER_CONN);
    if (want > 1000) want = 1000;
    CHECK(hard >= 512);
    int n = conns_under_limit(256, hard, want, &soft);
    CHECK_EQ_INT(n, want);
    CHECK_EQ_INT((long long)soft, (long long)want * GW_HTTP_FDS_PER_CONN + GW_HTTP_FD_RESERVE);
    /* otherwise max_connections is lowered to fit (a warning on stderr) */
    n = conns_under_limit(256, 256, 1000, &soft);
    CHECK_EQ_INT(n, (256 - GW_HTTP_FD_RESERVE) / GW_HTTP_FDS_PER_CONN);
    CHECK_EQ_INT((long long)soft, 256);
    /* enough already: nothing changes */
    n = conns_under_limit(256, 256, 10, &soft);
    CHECK_EQ_INT(n, 10);
    CHECK_EQ_INT((long long)soft, 256);
}

TEST(http_server_at_the_descriptor_limit_serves_a_waiting_client_when_one_closes)
{
    /* the server runs in a child whose soft RLIMIT_NOFILE leaves room for exactly two
     * client sockets: a third connection waits in the backlog (accept fails with EMFILE,
     * the listener pauses) and is served once one of the two closes */
    int pfd[2];
    CHECK(pipe(pfd) == 0);
    pid_t pid = fork();
    if (pid == 0) {
        gwt_child_init();
        close(pfd[0]);
        struct srv *cs = calloc(1, sizeof *cs);
        cs->base = event_base_new();
        struct gw_http_opts o = {.max_body = 1000, .max_connections = 100};
        char err[256];
        cs->h = gw_http_new(cs->base, "127.0.0.1", 0, &o, handle, NULL, cs, err, sizeof err);
        int port = cs->h ? gw_http_port(cs->h) : -1;
        int probe = dup(0);                   /* the lowest free descriptor */
        close(probe);
        struct rlimit rl;
        getrlimit(RLIMIT_NOFILE, &rl);
        rl.rlim_cur = (rlim_t)probe + 2;
        if (setrlimit(RLIMIT_NOFILE, &rl)) port = -1;
        ssize_t w = write(pfd[1], &port, sizeof port);
        close(pfd[1]);
        if (w == (ssize_t)sizeof port && port > 0) event_base_dispatch(cs->base);
        _exit(0);
    }
    close(pfd[1]);
    int port = -1;
    ssize_t r = pid > 0 ? read(pfd[0], &port, sizeof port) : -1;
    close(pfd[0]);
    CHECK(r == (ssize_t)sizeof port && port > 0);
    int a = gwt_connect(port, 0), b = gwt_connect(port, 0);
    int a1 = get_ok(a, "/a"), b1 = get_ok(b, "/b");
    int c = gwt_connect(port, 0);                 /* completes in the kernel's backlog */
    gwt_send_all(c, "GET /c HTTP/1.1\r\n\r\n");
    close(a);
    struct buf o;
    buf_init(&o);
    int c1 = gwt_read_until(c, &o, "X-Path: /c\r\n", NULL) && !strncmp(o.data, "HTTP/1.1 200 ", 13);
    int b2 = get_ok(b, "/b2");
    buf_fini(&o);
    close(b);
    close(c);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    CHECK(a1 && b1);
    CHECK(c1);
    CHECK(b2);
}

TEST(http_server_config_keys)
{
    struct gw_config *c = malloc(sizeof *c);
    char err[512];
    /* the defaults are gw/http's */
    CHECK_EQ_INT(gw_config_load_string("[node a]\nurl=http://x\n", "d.ini", c, err, sizeof err), 0);
    CHECK_EQ_INT(c->header_timeout_ms, GW_HTTP_DEF_HEADER_MS);
    CHECK_EQ_INT(c->body_timeout_ms, GW_HTTP_DEF_BODY_MS);
    CHECK_EQ_INT(c->min_body_rate, GW_HTTP_DEF_BODY_RATE);
    CHECK_EQ_INT(c->keepalive_timeout_ms, GW_HTTP_DEF_KEEPALIVE_MS);
    CHECK_EQ_INT(c->max_connections, GW_HTTP_DEF_MAX_CONNS);
    CHECK_EQ_INT(gw_config_load_string("[server]\nheader_timeout_ms = 2500\nbody_timeout_ms = 4000\n"
                                       "min_body_rate = 1000\nkeepalive_timeout_ms = 75000\n"
                                       "[limits]\nmax_connections = 64\n[node a]\nurl=http://x\n",
                                       "k.ini", c, err, sizeof err), 0);
    CHECK_EQ_INT(c->header_timeout_ms, 2500);
    CHECK_EQ_INT(c->body_timeout_ms, 4000);
    CHECK_EQ_INT(c->min_body_rate, 1000);
    CHECK_EQ_INT(c->keepalive_timeout_ms, 75000);
    CHECK_EQ_INT(c->max_connections, 64);
    /* out of range: the file, line and key are named */
    CHECK(gw_config_load_string("[server]\nworkers = 2\nheader_timeout_ms = 0\n[node a]\nurl=http://x\n",
                                "h.ini", c, err, sizeof err) < 0);
    CHECK(strstr(err, "h.ini:3:") && strstr(err, "header_timeout_ms"));
    CHECK(gw_config_load_string("[limits]\nmax_connections = 0\n[node a]\nurl=http://x\n",
                                "m.ini", c, err, sizeof err) < 0);
    CHECK(strstr(err, "m.ini:2:") && strstr(err, "max_connections"));
    CHECK(gw_config_load_string("[server]\nmin_body_rate = fast\n[node a]\nurl=http://x\n",
                                "r.ini", c, err, sizeof err) < 0);
    CHECK(strstr(err, "r.ini:2:") && strstr(err, "min_body_rate"));
    free(c);
}

/* ==== the backend client =========================================================== */

TEST(hclient_response_parser)
{
    struct gw_hc_resp r;
    const char *t = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                    "Content-Length: 7\r\n\r\npayload";
    CHECK_EQ_INT(gw_hc_parse_head(t, strlen(t), &r), (int)(strlen(t) - 7));
    CHECK_EQ_INT(r.status, 200);
    CHECK_EQ_INT(r.content_length, 7);
    CHECK_STR(r.ctype, "text/event-stream");
    CHECK_EQ_INT(r.close, 0);
    t = "HTTP/1.0 503\r\nTransfer-Encoding: chunked\r\n\r\n";
    CHECK(gw_hc_parse_head(t, strlen(t), &r) > 0);
    CHECK_EQ_INT(r.status, 503);
    CHECK_EQ_INT(r.chunked, 1);
    CHECK_EQ_INT(r.close, 1);                 /* HTTP/1.0 without keep-alive */
    t = "HTTP/1.1 200 OK\r\nConnection: Close\r\n\r\n";
    CHECK(gw_hc_parse_head(t, strlen(t), &r) > 0);
    CHECK_EQ_INT(r.close, 1);
    CHECK_EQ_INT(r.content_length, -1);
    t = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n";
    CHECK_EQ_INT(gw_hc_parse_head(t, strlen(t), &r), 0);                     /* more needed */
    const char *bad[] = {
        "HTTP/2 200 OK\r\n\r\n", "HTTP/1.1 20 OK\r\n\r\n", "HTTP/1.1 2000\r\n\r\n",
        "ICY 200 OK\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
        "HTTP/1.1 200 OK\r\n folded\r\n\r\n", "HTTP/1.1 200 OK\r\nA b: c\r\n\r\n",
        "HTTP/1.1 200 OK\r\nX: a\x01b\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        if (gw_hc_parse_head(bad[i], strlen(bad[i]), &r) != -1)
            test_fail(__FILE__, __LINE__, "accepted: %s", bad[i]);
}

/* A scripted backend: accepts connections, reads one request at a time (head +
 * Content-Length body) and answers with the mode's bytes. */
enum { BK_CL, BK_CHUNKED, BK_CLOSE_BODY, BK_ONE_PER_CONN, BK_GARBAGE };

struct bk {
    int lfd, port, mode;
    pthread_t th;
    atomic_int accepts, requests, stop;
};

static int read_request(int fd)
{
    struct buf in;
    buf_init(&in);
    int ok = 0;
    for (;;) {
        char b[4096];
        ssize_t n = read(fd, b, sizeof b);
        if (n <= 0) break;
        buf_append(&in, b, (size_t)n);
        const char *e = strstr(in.data, "\r\n\r\n");
        if (!e) continue;
        const char *cl = strcasestr(in.data, "Content-Length:");
        size_t want = (size_t)(e + 4 - in.data) + (cl ? (size_t)atol(cl + 15) : 0);
        if (in.len >= want) {
            ok = 1;
            break;
        }
    }
    buf_fini(&in);
    return ok;
}

static void *bk_main(void *arg)
{
    struct bk *b = arg;
    while (!atomic_load(&b->stop)) {
        struct pollfd p = {b->lfd, POLLIN, 0};
        if (poll(&p, 1, 50) <= 0) continue;
        int fd = accept(b->lfd, NULL, NULL);
        if (fd < 0) continue;
        atomic_fetch_add(&b->accepts, 1);
        while (read_request(fd)) {
            int n = atomic_fetch_add(&b->requests, 1) + 1;
            char out[512];
            switch (b->mode) {
            case BK_CL:
                snprintf(out, sizeof out, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         "Content-Length: 10\r\n\r\n{\"n\":%04d}", n);
                break;
            case BK_CHUNKED:
                snprintf(out, sizeof out, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n"
                         "Transfer-Encoding: chunked\r\n\r\n6\r\ndata: \r\n5\r\nhello\r\n"
                         "2;x=y\r\n\n\n\r\n0\r\nT: 1\r\n\r\n");
                break;
            case BK_CLOSE_BODY:
                snprintf(out, sizeof out, "HTTP/1.0 200 OK\r\n\r\nuntil the end");
                break;
            case BK_ONE_PER_CONN:   /* keep-alive announced, but closed after one answer */
                snprintf(out, sizeof out, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
                break;
            default:
                snprintf(out, sizeof out, "HTTP/1.1 OK 200\r\n\r\n");
                break;
            }
            gwt_send_all(fd, out);
            if (b->mode == BK_CLOSE_BODY || b->mode == BK_ONE_PER_CONN || b->mode == BK_GARBAGE)
                break;
        }
        close(fd);
    }
    return NULL;
}

static struct bk *bk_start(int mode)
{
    struct bk *b = calloc(1, sizeof *b);
    b->mode = mode;
    b->lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bind(b->lfd, (struct sockaddr *)&sa, sizeof sa);
    listen(b->lfd, 16);
    b->port = gwt_sock_port(b->lfd);
    pthread_create(&b->th, NULL, bk_main, b);
    return b;
}

static void bk_stop(struct bk *b)
{
    atomic_store(&b->stop, 1);
    pthread_join(b->th, NULL);
    close(b->lfd);
    free(b);
}

/* One transfer, run on a private loop until it ends. */
struct run {
    struct event_base *base;
    int status, err, ended, pauses;
    struct buf body;
    struct gw_hc_xfer *x;
    char ctype[128];
};

static void r_head(void *arg, int status, const char *ctype)
{
    struct run *r = arg;
    r->status = status;
    snprintf(r->ctype, sizeof r->ctype, "%s", ctype);
}

static void r_resume(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    struct run *r = arg;
    gw_hc_resume(r->x);
}

static size_t r_data(void *arg, const char *p, size_t n)
{
    struct run *r = arg;
    if (r->pauses > 0) {          /* refuse the bytes, take them after a resume */
        r->pauses--;
        event_base_once(r->base, -1, EV_TIMEOUT, r_resume, r, NULL);
        return GW_HC_PAUSE;
    }
    buf_append(&r->body, p, n);
    return n;
}

static void r_end(void *arg, int err)
{
    struct run *r = arg;
    r->err = err;
    r->ended = 1;
    event_base_loopbreak(r->base);
}

static int run_one(struct gw_hc *h, struct event_base *base, struct gw_hc_target *t,
                   struct run *r, int pauses)
{
    memset(r, 0, sizeof *r);
    buf_init(&r->body);
    r->base = base;
    r->pauses = pauses;
    static const struct gw_hc_cb cb = {r_head, r_data, r_end};
    const char *hdrs = "Content-Type: application/json\r\n";
    r->x = gw_hc_post(h, t, "/v1/x", hdrs, strlen(hdrs), "{\"q\":1}", 7, 2000, 5000, &cb, r);
    if (!r->x) return -1;
    event_base_dispatch(base);
    return r->ended ? 0 : -1;
}

TEST(hclient_transfers_against_a_raw_backend)
{
    struct event_base *base = event_base_new();
    struct gw_hc *h = gw_hc_new(base);
    struct run r;
    char url[64], err[256];
    /* Content-Length answers on one kept-alive connection */
    struct bk *b = bk_start(BK_CL);
    struct gw_hc_target t;
    snprintf(url, sizeof url, "http://127.0.0.1:%d", b->port);
    CHECK(gw_hc_target_init(&t, url, err, sizeof err) == 0);
    CHECK(run_one(h, base, &t, &r, 0) == 0);
    int ok1 = r.err == GW_HC_OK && r.status == 200 && r.body.data && !strcmp(r.body.data, "{\"n\":0001}")
              && !strcmp(r.ctype, "application/json");
    buf_fini(&r.body);
    CHECK(run_one(h, base, &t, &r, 2) == 0);   /* paused twice, then resumed */
    int ok2 = r.err == GW_HC_OK && r.body.data && !strcmp(r.body.data, "{\"n\":0002}");
    buf_fini(&r.body);
    int accepts = atomic_load(&b->accepts);
    gw_hc_target_close(h, &t);
    bk_stop(b);
    CHECK(ok1);
    CHECK(ok2);
    CHECK_EQ_INT(accepts, 1);
    /* chunked (after an interim 100), and a body that ends with the connection */
    b = bk_start(BK_CHUNKED);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/base/", b->port);
    CHECK(gw_hc_target_init(&t, url, err, sizeof err) == 0);
    CHECK_STR(t.prefix, "/base");
    CHECK(run_one(h, base, &t, &r, 1) == 0);
    int okc = r.err == GW_HC_OK && r.status == 200 && r.body.data &&
              !strcmp(r.body.data, "data: hello\n\n");
    buf_fini(&r.body);
    gw_hc_target_close(h, &t);
    bk_stop(b);
    CHECK(okc);
    b = bk_start(BK_CLOSE_BODY);
    snprintf(url, sizeof url, "http://127.0.0.1:%d", b->port);
    CHECK(gw_hc_target_init(&t, url, err, sizeof err) == 0);
    CHECK(run_one(h, base, &t, &r, 0) == 0);
    int oke = r.err == GW_HC_OK && r.body.data && !strcmp(r.body.data, "until the end");
    buf_fini(&r.body);
    gw_hc_target_close(h, &t);
    bk_stop(b);
    CHECK(oke);
    /* a kept connection the backend closed while idle: the next request is sent again on
     * a new connection and succeeds */
    b = bk_start(BK_ONE_PER_CONN);
    snprintf(url, sizeof url, "http://127.0.0.1:%d", b->port);
    CHECK(gw_hc_target_init(&t, url, err, sizeof err) == 0);
    int okr = 1;
    for (int i = 0; i < 3; i++) {
        CHECK(run_one(h, base, &t, &r, 0) == 0);
        okr &= r.err == GW_HC_OK && r.body.data && !strcmp(r.body.data, "ok");
        buf_fini(&r.body);
    }
    gw_hc_target_close(h, &t);
    int acc3 = atomic_load(&b->accepts);
    bk_stop(b);
    CHECK(okr);
    CHECK_EQ_INT(acc3, 3);
    /* a malformed answer; then a refused connection (the listener is gone) */
    b = bk_start(BK_GARBAGE);
    snprintf(url, sizeof url, "http://127.0.0.1:%d", b->port);
    CHECK(gw_hc_target_init(&t, url, err, sizeof err) == 0);
    CHECK(run_one(h, base, &t, &r, 0) == 0);
    int okg = r.err == GW_HC_EPROTO;
    buf_fini(&r.body);
    gw_hc_target_close(h, &t);
    bk_stop(b);
    CHECK(okg);
    CHECK(run_one(h, base, &t, &r, 0) == 0);
    int okx = r.err == GW_HC_ECONNECT;
    buf_fini(&r.body);
    CHECK(okx);
    CHECK_EQ_INT(gw_hc_active(h), 0);
    CHECK(gw_hc_target_init(&t, "https://127.0.0.1:1", err, sizeof err) == -1);
    CHECK(gw_hc_target_init(&t, "http://user@127.0.0.1:1", err, sizeof err) == -1);
    gw_hc_free(h);
    event_base_free(base);
}

