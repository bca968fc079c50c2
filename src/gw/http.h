/* gw/http — the gateway's client-facing HTTP/1.1 server on a libevent loop.
 *
 * A purpose-built replacement for evhttp on the proxy's hot path: raw fd events (one
 * persistent read event per connection, a write event only while output is pending),
 * one read() per readable event, responses written with one writev where the socket
 * takes them, no per-header allocation. Requests are parsed by bounded parsers of
 * untrusted bytes (gw_http_parse_head, gw_http_chunked; fuzzed by fuzz/fuzz-http.c):
 *   - request line + headers: at most GW_HTTP_HEAD_MAX bytes and GW_HTTP_MAX_HEADERS
 *     headers, else 431; a request target over GW_HTTP_TARGET_MAX (or a request line
 *     that does not end within GW_HTTP_HEAD_MAX) -> 414; malformed -> 400; a version
 *     other than HTTP/1.0 or 1.1 -> 505. Every refusal's JSON message says what and where
 *   - bodies: Content-Length or Transfer-Encoding: chunked (both -> 400, another
 *     transfer coding -> 501); longer than the body limit -> 413 (the connection is then
 *     closed after a short lingering read so that the client sees the answer)
 *   - keep-alive (HTTP/1.1 default, HTTP/1.0 with "Connection: keep-alive"),
 *     "Connection: close"; pipelined requests are answered one at a time, in order
 *     (later ones wait in the input buffer; when it is full the connection stops
 *     reading until the current response ended). The next request is parsed only once
 *     the previous answer was written to the socket: a client that pipelines and does
 *     not read costs at most one answer and the input buffer, not one answer each
 *   - "Expect: 100-continue": the interim 100 is sent when the body is awaited; a body
 *     announced over the limit gets the 413 instead, a request the head callback refuses
 *     its answer (gw_http_on_head); other expectations -> 417
 * Slow and abusive clients (deadlines, not progress timers: a client that trickles
 * bytes cannot hold a connection by making progress):
 *   - head: request line + headers complete within header_timeout_ms, counted from the
 *     accept (a new connection) or from the first byte of a later request on a kept-alive
 *     connection (from the end of the previous response for a pipelined one); else 408
 *     and close (a connection that sent nothing at all is closed without an answer)
 *   - body: the body must arrive by  start + body_timeout_ms + received / min_body_rate,
 *     i.e. after a grace of body_timeout_ms the client must average min_body_rate bytes/s
 *     (Apache mod_reqtimeout's "body=N,MinRate=R" rule); else 408 and close
 *   - idle keep-alive: no byte of a next request within keepalive_timeout_ms (counted
 *     once the previous answer is written out) -> closed silently
 *   - output: pending output that makes no progress for timeout_ms -> closed (the
 *     client stopped reading; its upstream is cancelled through the gone callback)
 *   - connections: at most max_connections open (lingering ones count); one more is
 *     answered 503 with Retry-After and closed at once. When accept() fails for lack of
 *     descriptors the listener is paused (not spun on) until a connection closes or
 *     100 ms passed. gw_http_new raises RLIMIT_NOFILE's soft limit to what
 *     max_connections needs (GW_HTTP_FDS_PER_CONN each + GW_HTTP_FD_RESERVE) and, when
 *     the hard limit is lower, lowers max_connections to fit, with a warning.
 * While a response is open the connection keeps reading, so a client that goes
 * away is noticed at once (gone callback) and its upstream can be cancelled.
 *
 * Threading: everything runs on the loop's thread. Calls into this module never call
 * back synchronously; closing and the next pipelined request are deferred to the loop. */
#ifndef FERRY_GW_HTTP_H
#define FERRY_GW_HTTP_H
#include <stddef.h>

#include "util/buf.h"

#define GW_HTTP_HEAD_MAX    (64 * 1024)  /* request line + headers, bytes */
#define GW_HTTP_MAX_HEADERS 100
#define GW_HTTP_TARGET_MAX  8192         /* request target (path + query), bytes; else 414 */

/* Defaults of struct gw_http_opts (used for fields left 0); docs/gateway.md [server]. */
#define GW_HTTP_DEF_HEADER_MS    10000
#define GW_HTTP_DEF_BODY_MS      30000
#define GW_HTTP_DEF_BODY_RATE    (32 * 1024)   /* bytes/s */
#define GW_HTTP_DEF_SEND_MS      60000         /* output without progress (nginx send_timeout) */
#define GW_HTTP_DEF_KEEPALIVE_MS 15000
#define GW_HTTP_DEF_MAX_CONNS    1024
#define GW_HTTP_FDS_PER_CONN     2      /* the client's socket + one backend connection */
#define GW_HTTP_FD_RESERVE       64     /* listener, epoll, curl, SQLite, logs, ... */

struct event_base;
struct gw_http;
struct gw_hconn;

enum gw_http_method {
    GW_HTTP_OTHER = 0, GW_HTTP_GET, GW_HTTP_HEAD, GW_HTTP_POST, GW_HTTP_PUT,
    GW_HTTP_DELETE, GW_HTTP_OPTIONS, GW_HTTP_PATCH
};

struct gw_hhdr {
    const char *name, *value;    /* NUL-terminated, value without surrounding blanks */
};

/* One parsed request. The strings point into the connection's copy of the head and stay
 * valid until the response to this request ended (gw_http_reply/_end/_abort). */
struct gw_hreq {
    enum gw_http_method method;
    const char *method_name;
    const char *target;          /* as sent (origin-form or absolute-form) */
    const char *path;            /* target's path, without query; "/" at least */
    const char *query;           /* after '?', or "" */
    int minor;                   /* HTTP/1.<minor>: 0 or 1 */
    int keep_alive;              /* the connection stays open after the response */
    int expect_continue;
    int chunked;                 /* Transfer-Encoding: chunked */
    long long content_length;    /* -1 = none */
    char err[128];               /* why gw_http_parse_head refused the head ("" otherwise) */
    int nhdr;
    struct gw_hhdr hdr[GW_HTTP_MAX_HEADERS];
    char *body;                  /* NUL-terminated; owned by the connection unless taken */
    size_t body_len;
};

/* ---- bounded parsers (pure functions; the fuzz target and the unit tests call them) -- */

/* Parses a request head from buf[0..len). The head is edited in place (names/values
 * NUL-terminated), so buf must be writable and stay alive while r is used.
 * Returns the head's length in bytes (> 0) when complete, 0 when more bytes are needed
 * (len < GW_HTTP_HEAD_MAX), or -status (400, 414, 417, 431, 501, 505) on error, with the
 * reason in r->err (what and where: "header line 3: invalid character 0x20 in the field
 * name 'Bad Name'"; client bytes quoted at most 40, other than printable ASCII as '?'). */
int gw_http_parse_head(char *buf, size_t len, struct gw_hreq *r);

/* Incremental chunked-body decoder. Zero-initialise, then feed bytes in any split. */
struct gw_chunked {
    int state;
    unsigned long long left;     /* bytes left in the current chunk */
    size_t line;                 /* bytes of the current size/trailer line seen */
    int digits, trailers;
};
/* Consumes in[0..n), appends decoded data to out (which must stay <= max bytes).
 * *used = bytes consumed. Returns 1 when the body (and its trailers) ended, 0 when more
 * input is needed, -400 on malformed input, -413 when the body exceeds max. */
int gw_http_chunked(struct gw_chunked *st, const char *in, size_t n, struct buf *out,
                    size_t max, size_t *used);

/* Length of a head (leading empty lines, lines, the empty line; LF or CRLF) at the start
 * of buf[0..len), or 0 when it has not ended within len. */
size_t gw_http_head_end(const char *buf, size_t len);
/* Value of header name (case-insensitive) or NULL. */
const char *gw_http_header(const struct gw_hreq *r, const char *name);
/* Reason phrase of a status ("OK", "Not Found", ...; "Unknown" for others). */
const char *gw_http_reason(int status);

/* ---- the server ------------------------------------------------------------------ */

/* Called for each complete request. The handler answers now or later with exactly one of
 * gw_http_reply / gw_http_stream_start..end / gw_http_abort. */
typedef void (*gw_http_request_cb)(void *arg, struct gw_hconn *c, struct gw_hreq *r);
/* Called for a request the server refused itself (status 400/408/413/417/431/501/505),
 * and with 503 for a connection refused over max_connections. */
typedef void (*gw_http_reject_cb)(void *arg, int status);

/* Called for a request with a body (Content-Length > 0 or chunked) once its head is
 * parsed, before any body byte is read or a 100 Continue is sent (r->body is NULL). It
 * may refuse the request now with gw_http_reply (401, 404, 405, ...): the body is then
 * not read (a client waiting for 100 Continue never sends it), the answer carries
 * "Connection: close" and the connection lingers and closes, as after a 413. Returning
 * without an answer reads the body and calls the request callback as usual. */
typedef void (*gw_http_head_cb)(void *arg, struct gw_hconn *c, struct gw_hreq *r);

/* Fields left 0 take the GW_HTTP_DEF_* defaults. */
struct gw_http_opts {
    size_t max_body;             /* bytes; larger bodies get 413 */
    int timeout_ms;              /* write progress timeout (output not taken); 0 =
                                  * GW_HTTP_DEF_SEND_MS */
    int header_timeout_ms;       /* deadline of request line + headers */
    int body_timeout_ms;         /* grace of the body deadline */
    size_t min_body_rate;        /* bytes/s the body must average after the grace */
    int keepalive_timeout_ms;    /* idle time between requests on a kept-alive connection */
    int max_connections;         /* open client connections (may be lowered to RLIMIT_NOFILE) */
};

/* Listens on host:port (port 0 = the kernel picks). NULL with err. */
struct gw_http *gw_http_new(struct event_base *base, const char *host, int port,
                            const struct gw_http_opts *o, gw_http_request_cb on_request,
                            gw_http_reject_cb on_reject, void *arg, char *err, size_t errlen);
/* Sets (or clears, NULL) the head callback; it gets gw_http_new's arg. */
void gw_http_on_head(struct gw_http *h, gw_http_head_cb cb);
int gw_http_port(const struct gw_http *h);
/* The connection limit in force (after the RLIMIT_NOFILE check) and the open count. */
int gw_http_max_connections(const struct gw_http *h);
int gw_http_connections(const struct gw_http *h);
/* Appends ferry_http_connections (gauge) and ferry_http_rejected_total{reason=
 * "connections|header_timeout|body_timeout"} in Prometheus text. NULL is a no-op. */
void gw_http_render(const struct gw_http *h, struct buf *out);
/* Stops accepting (drain); open connections go on; keep-alive ones close after their
 * next response. */
void gw_http_stop_accepting(struct gw_http *h);
/* Closes every connection (no callbacks) and the listener. NULL is a no-op. */
void gw_http_free(struct gw_http *h);

/* Per-request callbacks while its response is open: gone when the client went away (the
 * request is over: do not call any gw_http_* function on c afterwards); drained when
 * the queued output fell to 0 after having been above 0. Cleared when the response ends. */
void gw_http_watch(struct gw_hconn *c, void (*gone)(void *arg), void (*drained)(void *arg),
                   void *arg);
/* Takes the request body (malloc'd, NUL-terminated): the caller frees it. */
char *gw_http_take_body(struct gw_hconn *c, size_t *len);
/* Bytes of response queued for the client but not yet accepted by its socket. */
size_t gw_http_backlog(const struct gw_hconn *c);
/* The socket (for socket options). */
int gw_http_fd(const struct gw_hconn *c);

/* A complete response: status line, hdrs (lines "Name: value\r\n", may be NULL/0),
 * Content-Length and body, in one writev when the socket takes it. 0 or -1 (the
 * connection broke; it is closed by the loop). */
int gw_http_reply(struct gw_hconn *c, int status, const char *hdrs, size_t hlen,
                  const void *body, size_t len);
/* A streamed response: chunked transfer coding for HTTP/1.1, raw bytes + close for 1.0. */
int gw_http_stream_start(struct gw_hconn *c, int status, const char *hdrs, size_t hlen);
int gw_http_stream_write(struct gw_hconn *c, const void *p, size_t n);
/* Ends the stream (the last chunk). */
int gw_http_stream_end(struct gw_hconn *c);
/* Ends the response by closing the connection: a client sees a cut (or no) response. */
void gw_http_abort(struct gw_hconn *c);

#endif
