/* gwtest.h — plumbing shared by the gateway tests (tests/test-gw*.c): the processes they
 * start (`ferry serve`, `ferry emulate`, an emulated node on a thread of the test), a
 * small blocking HTTP client, and readers of /metrics and /v1/ferry/nodes.
 *
 * Everything talks to 127.0.0.1 over real sockets, on ports the kernel chose. Waits are
 * bounded (at most 20 s each) so that a broken gateway fails a test instead of hanging
 * the run; none of them is a timing assertion. Linked into the test-gw* binaries
 * (src/gw/area.mk) and test-emu (src/emu/area.mk, for gwt_emu). Its constructor runs
 * evthread_use_pthreads(), curl_global_init() and ignores SIGPIPE (a test writing to a
 * closed socket gets EPIPE, not killed). */
#ifndef FERRY_GWTEST_H
#define FERRY_GWTEST_H
#include <pthread.h>
#include <stddef.h>
#include <sys/types.h>

#include "emu/faults.h"
#include "emu/server.h"
#include "util/buf.h"

/* ==== processes ==================================================================== */

/* The ferry binary to run: $FERRY_BIN, else ../ferry beside this test binary's folder
 * (BUILD/tests/test-gw -> BUILD/ferry). Sets $FERRY_BIN to it so that test_ferry_cli()
 * runs the same binary. */
const char *gwt_ferry_bin(void);

/* fork + execvp(argv[0], argv); quiet: its stdout and stderr go to /dev/null. The child's
 * pid, or -1 when fork failed (an exec failure is exit status 127). */
pid_t gwt_spawn(const char *const argv[], int quiet);
/* Call first in every child a test forks: the child is killed when the test process
 * ends, so a test that fails (CHECK returns) before stopping what it started leaves no
 * gateway or emulator behind holding ports and the runner's output pipe. */
void gwt_child_init(void);

/* Sends sig to *pid, waits for it without bound and sets *pid = 0; no-op when *pid <= 0.
 * For processes that cannot ignore sig (SIGKILL) or quit on it by contract. */
void gwt_kill(pid_t *pid, int sig);

/* `ferry emulate --profile PROFILE --time-scale 0.01 --port-file PORTFILE [OPT VAL]`,
 * quiet. Waits (at most 5 s) until the emulator wrote its port to PORTFILE: *port, or 0
 * when it did not. opt (with val) NULL: no extra option. Returns the pid (stop it with
 * gwt_kill(&pid, SIGTERM)). */
pid_t gwt_emulate(const char *profile, const char *portfile, int *port, const char *opt,
                  const char *val);

/* A `ferry serve` process. */
struct gwt_gw {
    pid_t pid;
    int port;               /* where it listens (from its "listening on" line) */
    char cfg_path[512];     /* the config file it was started with */
};

/* Writes cfg to test_tmp_path(name) and starts `ferry serve -c FILE [OPT VAL]` with its
 * stdout on a pipe; waits (at most 20 s without output) for the line naming
 * http://127.0.0.1:PORT. 0, or -1 with the line it got on stderr and the process killed.
 * opt (with val) NULL: no extra option (e.g. "--model", path). */
int gwt_gw_start(struct gwt_gw *g, const char *name, const char *cfg, const char *opt,
                 const char *val);

/* SIGTERM (the gateway drains and saves) and waits up to 20 s, then SIGKILL. The exit
 * status, or -1 when it had to be killed, died of a signal or was not running. */
int gwt_gw_stop(struct gwt_gw *g);

/* ==== servers inside the test process ============================================= */

/* pthread start routine: event_base_loop(base, EVLOOP_NO_EXIT_ON_EMPTY) until
 * event_base_loopexit; for a test's own server on its own thread. */
void *gwt_loop(void *base);
/* The local port of a bound socket (one bound to port 0 got it from the kernel), or -1. */
int gwt_sock_port(int fd);


/* An emulated node: emu_server (src/emu/server.h) on its own event loop thread, port chosen by the kernel. */
struct gwt_emu {
    struct event_base *base;    /* NULL: not running */
    struct emu_server *s;
    pthread_t th;
    int port;
    int held;                   /* gwt_emu_pause'd: no loop thread */
};

/* emu_opts_default(o), then the model name served, time_scale (0: answers at once) and
 * capability (logits of the quality model). */
void gwt_emu_opts(struct emu_opts *o, const char *model, double time_scale, double capability);
/* Adds the fault `kind` with its command-line value to o; 0, or -1 with the reason on
 * stderr. */
int gwt_emu_fault(struct emu_opts *o, enum emu_fault_kind kind, const char *value);
/* Starts serving o; 0, or -1 with the reason on stderr (e->base is then NULL). */
int gwt_emu_start(struct gwt_emu *e, const struct emu_opts *o);
/* Stops the loop, joins the thread, frees the server; no-op when not running. */
void gwt_emu_stop(struct gwt_emu *e);
/* Holds the emulator: its loop thread exits and is joined, so nothing it has not done
 * yet happens (a connection still gets through: the kernel accepts it into the listen
 * backlog; requests wait there, unread) until gwt_emu_resume runs the same loop again.
 * For a test that needs "A happens before B" without betting on a delay. 0, or -1 when
 * not running or already held. */
int gwt_emu_pause(struct gwt_emu *e);
/* Runs a held emulator's loop again (on a new thread); 0, or -1 when it was not held. */
int gwt_emu_resume(struct gwt_emu *e);

/* ==== HTTP client (libcurl easy, blocking) ========================================= */

/* A response. body and hdrs are NUL-terminated and never NULL after gwt_http*: "" when
 * nothing came. hdrs holds every header line as received, CRLFs included. */
struct gwt_resp {
    long status;        /* HTTP status; 0 when no status line came */
    struct buf body, hdrs;
};

/* What varies between requests; a NULL pointer or zero field means the default. */
struct gwt_http_opts {
    const char *method;     /* default GET, or POST when a body is given */
    const char *header;     /* one more header line ("Authorization: Bearer k") */
    long timeout_ms;        /* the whole transfer; default 30000 */
};

/* http://127.0.0.1:PORT PATH with "Content-Type: application/json"; body NULL = no body.
 * r is initialised (free it with gwt_resp_fini even on failure). Returns 0 when the
 * transfer completed, -1 when it did not (refused, reset, timed out); r->status is what
 * came before that. */
int gwt_http_opts(int port, const char *path, const char *body, const struct gwt_http_opts *o,
                  struct gwt_resp *r);
/* gwt_http_opts with the defaults. */
int gwt_http(int port, const char *path, const char *body, struct gwt_resp *r);
/* The status of a completed transfer, 0 otherwise; the body and header lines are appended
 * to out / hdrs when those are not NULL. */
long gwt_http_status(int port, const char *path, const char *body, struct buf *out,
                     struct buf *hdrs);
void gwt_resp_fini(struct gwt_resp *r);

/* The value of header `name` (case-insensitive) in a block of header lines, copied into
 * out (cap bytes, truncated); "" when absent. Returns out. */
const char *gwt_hdr_in(const char *hdrs, const char *name, char *out, size_t cap);
/* The same in a response's headers. */
const char *gwt_hdr(const struct gwt_resp *r, const char *name, char *out, size_t cap);

/* ==== raw sockets (for what curl will not do: slow readers, half-sent requests) ==== */

/* A blocking TCP connection to 127.0.0.1:port; rcvbuf > 0 sets SO_RCVBUF first (a slow
 * reader). The fd, or -1. */
int gwt_connect(int port, int rcvbuf);
/* Writes all of text; 0, or -1 when the peer is gone. */
int gwt_send_all(int fd, const char *text);
/* Reads into out until `want` occurs in it, the peer closes or 5 s pass without data.
 * 1 when want was found (want NULL: when the peer closed), else 0. *eof (if not NULL):
 * 1 when the peer closed. */
int gwt_read_until(int fd, struct buf *out, const char *want, int *eof);
/* Writes a POST /v1/chat/completions with body on fd (with "Connection: close" when
 * close_after); 0 or -1. */
int gwt_raw_post(int fd, const char *body, int close_after);

/* ==== /metrics and /v1/ferry/nodes ================================================= */

/* The value of the sample `sample` (name with its labels, exactly as rendered; a
 * trailing space is allowed) in a Prometheus text page; -1 when there is no such line.
 * O(length of the page). */
double gwt_metric_in(const char *text, const char *sample);
/* The same from GET /metrics of the server on port; -1 when absent or no answer. */
double gwt_metric(int port, const char *sample);
/* A number of node `node` in GET /v1/ferry/nodes: key at the node, else in its
 * "predictor" object; "predictor.KEY" looks only there. -1 when absent. */
double gwt_node_num(int port, const char *node, const char *key);
/* Polls f(port, name) every 50 ms until it equals want, at most 200 times; the last
 * value. */
double gwt_wait_for(double (*f)(int port, const char *name), int port, const char *name,
                    double want);
/* `promtool check metrics` on the text (written to test_tmp_path(file)): its exit
 * status (0: a valid exposition), or -1 when it could not run. */
int gwt_promtool(const char *text, size_t len, const char *file);

#endif
