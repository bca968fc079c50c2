/* gw/hclient — a plain-HTTP/1.1 keep-alive client for http:// backends on the gateway's
 * libevent loop (https:// and anything else stay on libcurl, gw/upstream.h).
 *
 * One request at a time per connection; idle connections are kept per target (at most
 * GW_HC_IDLE_MAX) with their read event left armed, so a backend that closes an idle
 * connection is noticed by the loop, not by a liveness poll before each reuse. A request
 * that fails on a reused connection before any response byte arrived is sent once more
 * on a new connection (the backend closed it while it was idle).
 *
 * Responses are read by bounded parsers of untrusted bytes (fuzz/fuzz-hclient.c):
 * status line and headers (GW_HC_HEAD_MAX bytes, GW_HC_MAX_HEADERS fields; 1xx interim
 * responses skipped), then a Content-Length, chunked (gw_http_chunked) or
 * read-until-close body, handed to the caller as it arrives (no buffering of bodies).
 *
 * Callbacks run on the loop; after end() (or gw_hc_cancel) the transfer is gone. */
#ifndef FERRY_GW_HCLIENT_H
#define FERRY_GW_HCLIENT_H
#include <stddef.h>
#include <sys/socket.h>

#define GW_HC_HEAD_MAX    (64 * 1024)
#define GW_HC_MAX_HEADERS 100
#define GW_HC_IDLE_MAX    64
#define GW_HC_PAUSE       ((size_t)-1)   /* data(): bytes not taken; resend after resume */

struct event_base;
struct gw_hc;
struct gw_hc_xfer;

enum gw_hc_err {
    GW_HC_OK = 0,
    GW_HC_ECONNECT,    /* connection refused / unreachable / connect timeout */
    GW_HC_ESEND,       /* the request could not be written */
    GW_HC_ERECV,       /* the connection failed or closed before the response ended */
    GW_HC_EPROTO,      /* a malformed response */
    GW_HC_ETIMEOUT,    /* total time exceeded */
    GW_HC_EABORT       /* data() returned 0 */
};

/* A backend address, parsed once (gw_hc_target). */
struct gw_hc_target {
    char hostport[300];             /* Host header value */
    char prefix[256];               /* URL path before the request path ("" or "/base") */
    struct sockaddr_storage addr;
    socklen_t alen;
    void *idle;                     /* the pool's idle connections (private) */
    int nidle;
};

struct gw_hc_cb {
    /* the final status line and headers arrived; ctype = Content-Type or "" */
    void (*head)(void *arg, int status, const char *ctype);
    /* body bytes as they arrive: n (taken), 0 (abort: end(GW_HC_EABORT)) or GW_HC_PAUSE */
    size_t (*data)(void *arg, const char *p, size_t n);
    /* the transfer ended (GW_HC_OK when the whole response arrived) */
    void (*end)(void *arg, int err);
};

/* Parses "http://host[:port][/prefix]" and resolves host (blocking: call at start-up).
 * 0, or -1 with err (not plain http, bad URL, unknown host). */
int gw_hc_target_init(struct gw_hc_target *t, const char *url, char *err, size_t errlen);

struct gw_hc *gw_hc_new(struct event_base *base);
/* Closes idle connections of every target it served and frees the client; transfers must
 * have ended or been cancelled. Targets stay valid (their idle lists are emptied). */
void gw_hc_free(struct gw_hc *h);
/* Closes the idle connections of t (before t goes away). */
void gw_hc_target_close(struct gw_hc *h, struct gw_hc_target *t);

/* Starts "POST prefix+path" with hdrs (lines "Name: value\r\n"; Host, Content-Length
 * are added) and body (must stay valid until the transfer ended). connect_ms bounds the
 * connection set-up, total_ms the whole transfer (0 = no bound). NULL on failure to
 * start (no callback then). */
struct gw_hc_xfer *gw_hc_post(struct gw_hc *h, struct gw_hc_target *t, const char *path,
                              const char *hdrs, size_t hlen, const char *body, size_t blen,
                              int connect_ms, int total_ms, const struct gw_hc_cb *cb,
                              void *arg);
/* Stops a transfer: no callback afterwards; its connection is closed. */
void gw_hc_cancel(struct gw_hc_xfer *x);
/* Continues a transfer whose data() returned GW_HC_PAUSE (deferred to the loop). */
void gw_hc_resume(struct gw_hc_xfer *x);
/* Transfers open. */
int gw_hc_active(const struct gw_hc *h);

/* ---- the response parser (pure; the fuzz target and the tests call it) ------------ */
struct gw_hc_resp {
    int status;
    int minor;
    int close;                      /* Connection: close, or HTTP/1.0 without keep-alive */
    int chunked;
    long long content_length;       /* -1 = none */
    char ctype[128];
};
/* Parses a response head in buf[0..len) (not modified). Returns its length (> 0),
 * 0 when more bytes are needed, or -1 when malformed or over the limits. */
int gw_hc_parse_head(const char *buf, size_t len, struct gw_hc_resp *r);

#endif
