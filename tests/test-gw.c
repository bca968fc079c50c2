/* test-gw — `ferry serve` over real sockets on 127.0.0.1 (ports from the kernel).
 * The gateway runs as a real `ferry serve` process (FERRY_BIN, else ../ferry next to this
 * test binary); backends are small in-test libevent servers whose behaviour each test
 * chooses (normal, HTTP 500, hang, drop mid-stream, slow stream, big stream), plus the
 * in-process emulator (emu/server.h) for byte-identical relay of a real node's stream. */
#include "test.h"
#include "gwtest.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/thread.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "emu/server.h"
#include "gw/config.h"
#include "gw/nodes.h"
#include "gw/route.h"
#include "feat/image.h"
#include "pred/trace.h"
#include "req/request.h"
#include "util/b64.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/file.h"

/* ==== in-test backend ============================================================== */

enum be_mode { BE_OK = 0, BE_500, BE_HANG, BE_DROP_MID, BE_SLOW, BE_BIG };

#define BE_EVENTS 40
#define BIG_TOTAL ((size_t)48 << 20)   /* bytes of SSE the BIG mode streams */

struct backend {
    struct event_base *base;
    struct evhttp *http;
    struct evhttp_bound_socket *sock;
    struct event *stop_ev;
    pthread_t th;
    int port;
    char name[32];
    _Atomic int mode;             /* shared with the test thread */
    pthread_mutex_t mu;
    char last_body[1 << 20];
    int nreq;
    _Atomic int closed_early;     /* a streaming client went away before the end */
    _Atomic size_t big_sent;
    _Atomic int big_done;
    /* BIG streams whose client went away: no callback frees them (be_big_more returns on
     * them, if it is called at all), so be_stop does; backend thread, then be_stop */
    struct be_stream *gone_big[16];
    int ngone_big;
};

struct be_stream {
    struct backend *be;
    struct evhttp_request *req;
    struct evhttp_connection *evcon;
    struct event *tick;
    int i, n, gone;
};

static void sse_event(struct evbuffer *b, int i)
{
    evbuffer_add_printf(b,
                        "data: {\"id\":\"chatcmpl-t\",\"object\":\"chat.completion.chunk\","
                        "\"choices\":[{\"index\":0,\"delta\":{\"content\":\"tok%d \"}}]}\n\n", i);
}

static void be_stream_free(struct be_stream *st)
{
    if (st->tick) event_free(st->tick);
    free(st);
}

static void be_stream_close(struct evhttp_connection *c, void *arg)
{
    (void)c;
    struct be_stream *st = arg;
    st->be->closed_early = 1;
    st->gone = 1;
    if (st->req && !evhttp_request_get_connection(st->req)) evhttp_request_free(st->req);
    st->req = NULL;
    struct backend *be = st->be;
    if (!st->tick && be->ngone_big < (int)(sizeof be->gone_big / sizeof be->gone_big[0]))
        be->gone_big[be->ngone_big++] = st; /* BIG: freed by be_stop */
}

static void be_slow_tick(evutil_socket_t fd, short w, void *arg)
{
    (void)fd; (void)w;
    struct be_stream *st = arg;
    if (st->gone) {
        be_stream_free(st);
        return;
    }
    struct evbuffer *b = evbuffer_new();
    sse_event(b, st->i++);
    evhttp_send_reply_chunk(st->req, b);
    evbuffer_free(b);
    if (st->i >= st->n) {
        evhttp_connection_set_closecb(st->evcon, NULL, NULL);
        b = evbuffer_new();
        evbuffer_add_printf(b, "data: [DONE]\n\n");
        evhttp_send_reply_chunk(st->req, b);
        evbuffer_free(b);
        evhttp_send_reply_end(st->req);
        be_stream_free(st);
        return;
    }
    struct timeval tv = {0, 10000};
    evtimer_add(st->tick, &tv);
}

/* BIG: write whenever our own output buffer is below 256 KiB (a well-behaved server). */
static void be_big_more(struct evhttp_connection *c, void *arg)
{
    (void)c;
    struct be_stream *st = arg;
    struct backend *be = st->be;
    if (st->gone) return;
    if (be->big_sent >= BIG_TOTAL) {
        if (!be->big_done) {
            be->big_done = 1;
            evhttp_connection_set_closecb(st->evcon, NULL, NULL);
            evhttp_send_reply_end(st->req);
            be_stream_free(st);
        }
        return;
    }
    struct evbuffer *b = evbuffer_new();
    char line[1024];
    memset(line, 'x', sizeof line);
    for (int k = 0; k < 64 && be->big_sent < BIG_TOTAL; k++) {
        evbuffer_add_printf(b, "data: {\"choices\":[{\"delta\":{\"content\":\"%.*s\"}}]}\n\n", 960, line);
        be->big_sent += 1000;  /* approximate; only the bound matters */
    }
    evhttp_send_reply_chunk_with_cb(st->req, b, be_big_more, st);
    evbuffer_free(b);
}

/* HANG: free the never-answered request when its client goes away. */
static void be_hang_close(struct evhttp_connection *c, void *arg)
{
    (void)c;
    if (!evhttp_request_get_connection(arg)) evhttp_request_free(arg);
}

static void be_drop_after_write(struct evhttp_connection *c, void *arg)
{
    (void)arg;
    shutdown(bufferevent_getfd(evhttp_connection_get_bufferevent(c)), SHUT_RDWR);
}

static void *be_loop(void *arg)
{
    event_base_dispatch(arg);
    return NULL;
}

static void be_handle(struct evhttp_request *req, void *arg)
{
    struct backend *be = arg;
    const char *uri = evhttp_request_get_uri(req);
    struct evbuffer *out = evbuffer_new();
    if (!strcmp(uri, "/health")) {
        evbuffer_add_printf(out, "{\"status\":\"ok\"}");
        evhttp_send_reply(req, be->mode == BE_500 ? 500 : 200, NULL, out);
        evbuffer_free(out);
        return;
    }
    if (!strcmp(uri, "/metrics")) {
        evbuffer_add_printf(out, "# TYPE vllm:num_requests_running gauge\n"
                                 "vllm:num_requests_running{model_name=\"m\"} 3\n"
                                 "vllm:num_requests_waiting{model_name=\"m\"} 2\n");
        evhttp_send_reply(req, 200, NULL, out);
        evbuffer_free(out);
        return;
    }
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    pthread_mutex_lock(&be->mu);
    size_t k = len < sizeof be->last_body - 1 ? len : sizeof be->last_body - 1;
    evbuffer_copyout(in, be->last_body, k);
    be->last_body[k] = 0;
    be->nreq++;
    int stream = strstr(be->last_body, "\"stream\":true") != NULL;
    pthread_mutex_unlock(&be->mu);
    struct evkeyvalq *oh = evhttp_request_get_output_headers(req);
    switch (atomic_load(&be->mode)) {
    case BE_500:
        evbuffer_add_printf(out, "{\"error\":{\"message\":\"boom\"}}");
        evhttp_add_header(oh, "Content-Type", "application/json");
        evhttp_send_reply(req, 500, NULL, out);
        break;
    case BE_HANG:   /* never answers */
        evhttp_connection_set_closecb(evhttp_request_get_connection(req), be_hang_close, req);
        break;
    case BE_SLOW:
    case BE_BIG: {
        struct be_stream *st = calloc(1, sizeof *st);
        st->be = be;
        st->req = req;
        st->evcon = evhttp_request_get_connection(req);
        st->n = 300;
        evhttp_connection_set_closecb(st->evcon, be_stream_close, st);
        evhttp_add_header(oh, "Content-Type", "text/event-stream");
        evhttp_send_reply_start(req, 200, "OK");
        if (be->mode == BE_SLOW) {
            st->tick = evtimer_new(be->base, be_slow_tick, st);
            struct timeval tv = {0, 10000};
            evtimer_add(st->tick, &tv);
        } else {
            be_big_more(NULL, st);
        }
        break;
    }
    default:
        if (stream) {
            evhttp_add_header(oh, "Content-Type", "text/event-stream");
            evhttp_send_reply_start(req, 200, "OK");
            int n = be->mode == BE_DROP_MID ? BE_EVENTS / 2 : BE_EVENTS;
            for (int i = 0; i < n - 1; i++) {
                sse_event(out, i);
                evhttp_send_reply_chunk(req, out);   /* one chunk per event */
            }
            sse_event(out, n - 1);
            if (be->mode == BE_DROP_MID) {
                /* once written, drop the connection without the terminating chunk */
                evhttp_connection_set_closecb(evhttp_request_get_connection(req), be_hang_close, req);
                evhttp_send_reply_chunk_with_cb(req, out, be_drop_after_write, NULL);
                break;
            }
            evhttp_send_reply_chunk(req, out);
            evbuffer_add_printf(out, "data: {\"id\":\"chatcmpl-t\",\"choices\":[],\"usage\":"
                                     "{\"prompt_tokens\":7,\"completion_tokens\":%d}}\n\n"
                                     "data: [DONE]\n\n", n);
            evhttp_send_reply_chunk(req, out);
            evhttp_send_reply_end(req);
        } else if (be->mode == BE_DROP_MID) {   /* half a JSON answer, then the line drops */
            evhttp_add_header(oh, "Content-Type", "application/json");
            evhttp_send_reply_start(req, 200, "OK");
            evbuffer_add_printf(out, "{\"id\":\"chatcmpl-t\",\"object\":\"chat.completion\",\"choi");
            evhttp_connection_set_closecb(evhttp_request_get_connection(req), be_hang_close, req);
            evhttp_send_reply_chunk_with_cb(req, out, be_drop_after_write, NULL);
        } else {
            evbuffer_add_printf(out,
                                "{\"id\":\"chatcmpl-t\",\"object\":\"chat.completion\","
                                "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
                                "\"content\":\"hello from %s\"},\"finish_reason\":\"stop\"}],"
                                "\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":3,"
                                "\"total_tokens\":10}}", be->name);
            evhttp_add_header(oh, "Content-Type", "application/json");
            evhttp_send_reply(req, 200, NULL, out);
        }
    }
    evbuffer_free(out);
}

/* A copy of the last request body the backend received (free it). */
static char *be_last(struct backend *be)
{
    pthread_mutex_lock(&be->mu);
    char *c = strdup(be->last_body);
    pthread_mutex_unlock(&be->mu);
    return c;
}

static int be_nreq(struct backend *be)
{
    pthread_mutex_lock(&be->mu);
    int n = be->nreq;
    pthread_mutex_unlock(&be->mu);
    return n;
}

static void *be_main(void *arg)
{
    struct backend *be = arg;
    event_base_dispatch(be->base);
    return NULL;
}

static void be_stop_cb(evutil_socket_t fd, short w, void *arg)
{
    (void)fd; (void)w;
    event_base_loopbreak(arg);
}

static struct backend *be_start(const char *name, enum be_mode mode)
{
    struct backend *be = calloc(1, sizeof *be);
    snprintf(be->name, sizeof be->name, "%s", name);
    be->mode = mode;
    pthread_mutex_init(&be->mu, NULL);
    be->base = event_base_new();
    be->http = evhttp_new(be->base);
    evhttp_set_gencb(be->http, be_handle, be);
    be->sock = evhttp_bind_socket_with_handle(be->http, "127.0.0.1", 0);
    be->port = gwt_sock_port(evhttp_bound_socket_get_fd(be->sock));
    be->stop_ev = event_new(be->base, -1, 0, be_stop_cb, be->base);
    pthread_create(&be->th, NULL, be_main, be);
    return be;
}

static void be_stop(struct backend *be)
{
    if (!be) return;
    event_active(be->stop_ev, EV_TIMEOUT, 0);
    pthread_join(be->th, NULL);
    evhttp_free(be->http);
    event_free(be->stop_ev);
    event_base_free(be->base);
    for (int i = 0; i < be->ngone_big; i++) be_stream_free(be->gone_big[i]);
    pthread_mutex_destroy(&be->mu);
    free(be);
}

/* ==== the gateway process ========================================================== */

/* ==== HTTP client ================================================================== */

static const char *k_chat = "{\"model\":\"%s\",\"stream\":%s,\"messages\":[{\"role\":\"user\","
                            "\"content\":\"What is in the picture?\"}]%s}";

static char *chat_body(const char *model, int stream, const char *extra)
{
    static char b[2048];
    snprintf(b, sizeof b, k_chat, model, stream ? "true" : "false", extra ? extra : "");
    return b;
}

static void cfg_nodes(char *out, size_t cap, const char *head, struct backend **bes, int n,
                      const char *roles[])
{
    size_t k = (size_t)snprintf(out, cap, "%s", head);
    for (int i = 0; i < n; i++)
        k += (size_t)snprintf(out + k, cap - k,
                              "[node %s]\nrole = %s\nurl = http://127.0.0.1:%d\nmodel = m-%s\n\n",
                              bes[i]->name, roles[i], bes[i]->port, bes[i]->name);
}

/* Starts a gateway (config file `name`) on an edge node and, when cloud is not NULL, a
 * cloud node: a [server] section that listens on a port the kernel chooses, then `extra`
 * (more of [server], more sections; NULL: none), then the nodes' [node] sections.
 * gwt_gw_start's result. */
static int gw_start_on(struct gwt_gw *g, const char *name, struct backend *edge,
                       struct backend *cloud, const char *extra)
{
    struct backend *bes[2] = {edge, cloud};
    const char *roles[] = {"edge", "cloud"};
    char head[1024], cfg[2048];
    snprintf(head, sizeof head, "[server]\nlisten = 127.0.0.1:0\n%s", extra ? extra : "");
    cfg_nodes(cfg, sizeof cfg, head, bes, cloud ? 2 : 1, roles);
    return gwt_gw_start(g, name, cfg, NULL, NULL);
}

/* ==== config ======================================================================= */

TEST(gw_config_errors_name_the_line)
{
    struct gw_config *c = malloc(sizeof *c);
    char err[512];
    const char *bad = "[server]\nlisten = 127.0.0.1:8080\n\n[node e]\nrole = fog\nurl = http://x\n";
    CHECK(gw_config_load_string(bad, "t.ini", c, err, sizeof err) < 0);
    CHECK(strstr(err, "t.ini:5:") != NULL);
    CHECK(strstr(err, "role") != NULL);
    CHECK(gw_config_load_string("[server]\nworkers = lots\n[node a]\nurl=http://x\n", "u.ini",
                                c, err, sizeof err) < 0);
    CHECK(strstr(err, "u.ini:2:") && strstr(err, "workers"));
    CHECK(gw_config_load_string("[server]\nlisten = :1\n", "v.ini", c, err, sizeof err) < 0);
    CHECK(gw_config_load_string("[server]\n", "w.ini", c, err, sizeof err) < 0);
    CHECK(strstr(err, "at least one backend") != NULL);
    unsetenv("FERRY_TEST_NOKEY");
    CHECK(gw_config_load_string("[node a]\nurl=http://x\napi_key_env = FERRY_TEST_NOKEY\n",
                                "k.ini", c, err, sizeof err) < 0);
    CHECK(strstr(err, "k.ini:3:") && strstr(err, "FERRY_TEST_NOKEY"));
    setenv("FERRY_TEST_KEY", "sk-secret", 1);
    CHECK_EQ_INT(gw_config_load_string("[policy]\nname = edge-only\n[node a]\nurl=http://x/\n"
                                       "api_key_env = FERRY_TEST_KEY\nrole = cloud\n",
                                       "ok.ini", c, err, sizeof err), 0);
    CHECK_STR(c->nodes[0].api_key, "sk-secret");
    CHECK_STR(c->nodes[0].url, "http://x");
    CHECK_STR(c->nodes[0].model, "a");
    CHECK_EQ_INT(c->nodes[0].role, FY_ROLE_CLOUD);
    CHECK_EQ_INT(gw_config_find_node(c, "a"), 0);
    CHECK_EQ_INT(gw_config_load_string("[server]\nlisten = [::1]:9090\n[node a]\nurl=http://x\n",
                                       "v6.ini", c, err, sizeof err), 0);
    CHECK_STR(c->listen_host, "::1");
    CHECK_EQ_INT(c->listen_port, 9090);
    free(c);
}

TEST(gw_check_validates_the_shipped_example)
{
    setenv("OPENAI_API_KEY", "sk-test-not-real", 1);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "'%s' serve --check -c data/ferry.ini >/dev/null 2>&1",
             gwt_ferry_bin());
    CHECK_EQ_INT(system(cmd), 0);
    const char *p = test_tmp_path("bad-policy.ini");
    FILE *f = fopen(p, "w");
    fputs("[policy]\nname = no-such-policy\n[node a]\nurl = http://127.0.0.1:1\n", f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "'%s' serve --check -c %s >/dev/null 2>&1", gwt_ferry_bin(), p);
    CHECK(system(cmd) != 0);
}

/* A node with a model profile starts MGQP from its model's prior per task; one without
 * from the role default (docs/predictors.md "Prior"); --check says which. */
TEST(gw_check_shows_each_nodes_quality_prior)
{
    const char *p = test_tmp_path("priors.ini");
    CHECK(test_write_file(p, "[node edge0]\nrole = edge\nurl = http://127.0.0.1:1\n"
                             "profile = data/profiles\nprofile_node = edge-3090\n"
                             "[node big]\nrole = cloud\nurl = http://127.0.0.1:2\n"
                             "model = some-72b\n") == 0);
    char cmd[1024], line[512];
    snprintf(cmd, sizeof cmd, "'%s' serve --check -c %s 2>&1", gwt_ferry_bin(), p);
    FILE *out = popen(cmd, "r");
    CHECK(out);
    int edge_ocr = 0, cloud_default = 0, n = 0;
    while (fgets(line, sizeof line, out)) {
        if (!strstr(line, "quality prior:")) continue;
        n++;
        if (n == 1 && strstr(line, "ocr 0.535") && strstr(line, "chat 0.638") &&
            strstr(line, "other tasks 0.62 (role default)"))
            edge_ocr = 1;
        if (n == 2 && strstr(line, "0.77 for every task (role default"))
            cloud_default = 1;
    }
    CHECK_EQ_INT(pclose(out), 0);
    CHECK_EQ_INT(n, 2);
    CHECK(edge_ocr);
    CHECK(cloud_default);
}

TEST(gw_metrics_parser_reads_vllm_and_llamacpp)
{
    const char *v = "# HELP x\nvllm:num_requests_running{model_name=\"a\"} 2\n"
                    "vllm:num_requests_running{model_name=\"b\"} 1\nvllm:num_requests_waiting 4\n";
    double r = -1, w = -1;
    CHECK_EQ_INT(gw_nodes_parse_metrics(v, strlen(v), &r, &w), GW_METRICS_VLLM);
    CHECK_NEAR(r, 3, 0);
    CHECK_NEAR(w, 4, 0);
    const char *l = "llamacpp:requests_processing 1\nllamacpp:requests_deferred 5\n";
    CHECK_EQ_INT(gw_nodes_parse_metrics(l, strlen(l), &r, &w), GW_METRICS_LLAMACPP);
    CHECK_NEAR(w, 5, 0);
    CHECK_EQ_INT(gw_nodes_parse_metrics("up 1\n", 5, &r, &w), GW_METRICS_NONE);
}

/* ==== modality plans on real images ================================================ */

static char *image_request(const char *file, int n)
{
    char path[512];
    snprintf(path, sizeof path, "%s/images/%s", test_shared_dir(), file);
    uint8_t *img = NULL;
    size_t len = 0;
    char err[256];
    if (util_read_file(path, 0, &img, &len, err, sizeof err)) return NULL;
    char *b64 = malloc(b64_encoded_len(len, 1) + 1);
    b64_encode(img, len, B64_STD, 1, b64);
    free(img);
    struct buf b;
    buf_init(&b);
    buf_puts(&b, "{\"model\":\"ferry\",\"custom\":{\"keep\":[1,2]},\"messages\":[{\"role\":\"user\","
                 "\"content\":[{\"type\":\"text\",\"text\":\"Describe.\"}");
    for (int i = 0; i < n; i++)
        buf_printf(&b, ",{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:image/jpeg;base64,%s\"}}", b64);
    buf_puts(&b, "]}]}");
    free(b64);
    return buf_steal(&b);
}

static const char *first_jpeg(void)
{
    static char name[256];
    char cmd[600];
    snprintf(cmd, sizeof cmd, "ls '%s/images' | grep -i '\\.jpe\\?g$' | head -n 1", test_shared_dir());
    FILE *p = popen(cmd, "r");
    name[0] = 0;
    if (p) {
        if (!fgets(name, sizeof name, p)) name[0] = 0;
        pclose(p);
    }
    name[strcspn(name, "\n")] = 0;
    return name;
}

TEST(gw_plan_downscale_reencodes_a_smaller_jpeg)
{
    char *body = image_request(first_jpeg(), 1);
    CHECK(body != NULL);
    struct req_error e;
    struct fy_request *r = req_parse(body, strlen(body), NULL, &e);
    free(body);
    CHECK(r != NULL);
    CHECK_EQ_INT(r->nimages, 1);
    int w0 = r->images[0].width, h0 = r->images[0].height;
    struct fy_plan p;
    pol_plan_keep(&p, 0);
    p.img[0] = FY_IMG_DOWNSCALE;
    p.downscale_px = 224;
    char err[256];
    CHECK_EQ_INT(gw_route_downscale(r, &p, 80, err, sizeof err), 0);
    const char *url = r->images[0].url;
    CHECK(!strncmp(url, "data:image/jpeg;base64,", 23));
    size_t ul = strlen(url + 23);
    uint8_t *dec = malloc(b64_decoded_max(ul));
    size_t dl = 0;
    CHECK_EQ_INT(b64_decode(url + 23, ul, B64_STD, dec, b64_decoded_max(ul), &dl), 0);
    enum fy_img_format fmt;
    int w, h;
    CHECK_EQ_INT(feat_image_probe(dec, dl, &fmt, &w, &h, err, sizeof err), 0);
    free(dec);
    CHECK_EQ_INT(fmt, FY_FMT_JPEG);
    CHECK((w > h ? w : h) <= 224);
    CHECK((w0 > h0) == (w > h) || w0 == h0);
    size_t len = 0;
    char *out = gw_route_body(r, "backend-m", &len);
    CHECK(strstr(out, "\"model\":\"backend-m\"") && strstr(out, "\"custom\":{\"keep\":[1,2]}"));
    free(out);
    req_free(r);
}

TEST(gw_plan_drop_and_split_rewrite_the_content)
{
    char *body = image_request(first_jpeg(), 2);
    CHECK(body != NULL);
    struct req_error e;
    struct fy_request *r = req_parse(body, strlen(body), NULL, &e);
    free(body);
    CHECK(r != NULL);
    struct fy_plan p;
    pol_plan_keep(&p, 0);
    p.aux_node = 1;
    p.img[0] = FY_IMG_SPLIT;
    p.img[1] = FY_IMG_DROP;
    size_t len = 0;
    char *aux = gw_route_split_body(r, &p, "cloud-m", 64, &len);
    CHECK(aux && strstr(aux, "\"model\":\"cloud-m\"") && strstr(aux, "data:image/jpeg"));
    CHECK(strstr(aux, "\"max_tokens\":64") != NULL);
    free(aux);
    CHECK_EQ_INT(gw_route_apply_text(r, &p, "a red bus on a street"), 0);
    char *out = gw_route_body(r, "edge-m", &len);
    CHECK(out != NULL);
    CHECK(strstr(out, "data:image") == NULL);
    CHECK(strstr(out, "[Image description: a red bus on a street]") != NULL);
    CHECK(strstr(out, "Describe.") != NULL);
    free(out);
    req_free(r);
}

/* ==== relay ======================================================================== */

TEST(gw_relays_the_emulator_stream)
{
    struct event_base *eb = event_base_new();
    struct emu_opts eo;
    emu_opts_default(&eo);
    snprintf(eo.name, sizeof eo.name, "emu0");
    snprintf(eo.prof.model, sizeof eo.prof.model, "emu-model");
    eo.prof.prefill_tps = 5000;
    eo.prof.decode_tps = 2000;
    eo.prof.max_seqs = 8;
    eo.prof.context_limit = 32768;
    eo.time_scale = 0;
    eo.seed = 7;
    char err[256];
    struct emu_server *es = emu_server_new(eb, &eo, err, sizeof err);
    CHECK(es != NULL);
    int eport = emu_server_port(es);
    pthread_t th;
    pthread_create(&th, NULL, be_loop, eb);
    char cfg[1024];
    snprintf(cfg, sizeof cfg, "[server]\nlisten = 127.0.0.1:0\n[policy]\nname = least-loaded\n"
             "[node emu0]\nrole = edge\nurl = http://127.0.0.1:%d\nmodel = emu-model\n", eport);
    struct gwt_gw g;
    int ok = gwt_gw_start(&g, "relay.ini", cfg, NULL, NULL) == 0;
    struct gwt_resp direct, via;
    memset(&direct, 0, sizeof direct);
    memset(&via, 0, sizeof via);
    const char *b = "{\"model\":\"%s\",\"stream\":true,\"max_tokens\":24,\"seed\":3,"
                    "\"messages\":[{\"role\":\"user\",\"content\":\"Count to five.\"}]}";
    char b1[512], b2[512];
    snprintf(b1, sizeof b1, b, "emu-model");
    snprintf(b2, sizeof b2, b, "ferry");
    if (ok) {
        gwt_http(eport, "/v1/chat/completions", b1, &direct);
        gwt_http(g.port, "/v1/chat/completions", b2, &via);
        gwt_gw_stop(&g);
    }
    event_base_loopbreak(eb);
    pthread_join(th, NULL);
    emu_server_free(es);
    event_base_free(eb);
    CHECK(ok);
    CHECK_EQ_INT(via.status, 200);
    char v[128];
    CHECK_STR(gwt_hdr(&via, "X-Ferry-Node", v, sizeof v), "emu0");
    CHECK(strstr(gwt_hdr(&via, "Content-Type", v, sizeof v), "text/event-stream") != NULL);
    /* the emulator draws each answer anew: byte identity is tested with the fixed
     * backend below; here the real node's stream must come through whole */
    CHECK(strstr(via.body.data, "data: [DONE]") != NULL);
    CHECK(strstr(direct.body.data, "data: [DONE]") != NULL);
    CHECK(strstr(via.body.data, "chat.completion.chunk") != NULL);
    gwt_resp_fini(&direct);
    gwt_resp_fini(&via);
}

TEST(gw_stream_relay_is_byte_identical)
{
    struct backend *be = be_start("e0", BE_OK);
    struct gwt_gw g;
    CHECK(gw_start_on(&g, "relay2.ini", be, NULL, NULL) == 0);
    struct gwt_resp direct, via, plain;
    gwt_http(be->port, "/v1/chat/completions", chat_body("m-e0", 1, NULL), &direct);
    gwt_http(g.port, "/v1/chat/completions",
             chat_body("ferry", 1, ",\"my_field\":{\"x\":[1,\"two\"]},\"temperature\":0.25"), &via);
    static char fwd[sizeof be->last_body];
    pthread_mutex_lock(&be->mu);
    memcpy(fwd, be->last_body, sizeof fwd);
    pthread_mutex_unlock(&be->mu);
    gwt_http(g.port, "/v1/chat/completions", chat_body("e0", 0, NULL), &plain);
    gwt_gw_stop(&g);
    be_stop(be);
    CHECK_EQ_INT(via.status, 200);
    CHECK_EQ_INT(via.body.len, direct.body.len);
    CHECK(memcmp(via.body.data, direct.body.data, direct.body.len) == 0);
    /* unknown fields forwarded untouched, model rewritten for the backend */
    CHECK(strstr(fwd, "\"my_field\":{\"x\":[1,\"two\"]}") != NULL);
    CHECK(strstr(fwd, "\"temperature\":0.25") != NULL);
    CHECK(strstr(fwd, "\"model\":\"m-e0\"") != NULL);
    char v[128];
    CHECK_STR(gwt_hdr(&via, "X-Ferry-Node", v, sizeof v), "e0");
    CHECK_STR(gwt_hdr(&via, "X-Ferry-Policy", v, sizeof v), "least-loaded");
    CHECK(strncmp(gwt_hdr(&via, "X-Ferry-Plan", v, sizeof v), "node=e0", 7) == 0);
    CHECK(gwt_hdr(&via, "X-Ferry-Request-Id", v, sizeof v)[0] != 0);
    CHECK(atof(gwt_hdr(&via, "X-Ferry-Predicted-Latency-Ms", v, sizeof v)) > 0);
    double q = atof(gwt_hdr(&via, "X-Ferry-Predicted-Quality", v, sizeof v));
    CHECK(q > 0 && q < 1);
    CHECK_EQ_INT(plain.status, 200);
    CHECK(strstr(plain.body.data, "hello from e0") != NULL);
    CHECK_STR(gwt_hdr(&plain, "X-Ferry-Policy", v, sizeof v), "pinned");
    gwt_resp_fini(&direct);
    gwt_resp_fini(&via);
    gwt_resp_fini(&plain);
}

/* ==== failover ===================================================================== */

static void failover_case(enum be_mode bad_mode, const char *kind)
{
    struct backend *bad = be_start("bad", bad_mode), *good = be_start("good", BE_OK);
    struct backend *bes[2] = {bad, good};
    const char *roles[] = {"edge", "cloud"};
    char cfg[2048];
    /* edge-only prefers the failing edge node; health probes are slowed down so the
     * request itself meets the failure */
    cfg_nodes(cfg, sizeof cfg,
              "[server]\nlisten = 127.0.0.1:0\n[policy]\nname = edge-only\n"
              "[timeouts]\nfirst_byte_ms = 400\nconnect_ms = 300\nmax_retries = 2\n"
              "[health]\ninterval_ms = 600000\n",
              bes, 2, roles);
    if (bad_mode == BE_OK) {   /* refused: point the edge node at a closed port */
        char *p = strstr(cfg, "url = http://127.0.0.1:");
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        bind(fd, (struct sockaddr *)&sa, sizeof sa);
        socklen_t sl = sizeof sa;
        getsockname(fd, (struct sockaddr *)&sa, &sl);
        close(fd);   /* nobody listens there now */
        char tail[1024];
        const char *eol = strchr(p, '\n');
        snprintf(tail, sizeof tail, "%.1000s", eol);
        sprintf(p, "url = http://127.0.0.1:%d%s", ntohs(sa.sin_port), tail);
    }
    struct gwt_gw g;
    int ok = gwt_gw_start(&g, "failover.ini", cfg, NULL, NULL) == 0;
    struct gwt_resp r;
    memset(&r, 0, sizeof r);
    double fo = -1, errs = -1;
    char sample[128];
    snprintf(sample, sizeof sample, "ferry_upstream_errors_total{node=\"bad\",kind=\"%s\"} ", kind);
    if (ok) {
        gwt_http(g.port, "/v1/chat/completions", chat_body("ferry", 1, NULL), &r);
        fo = gwt_metric(g.port, "ferry_failovers_total ");
        errs = gwt_metric(g.port, sample);
        gwt_gw_stop(&g);
    }
    be_stop(bad);
    be_stop(good);
    if (!ok) { test_fail(__FILE__, __LINE__, "gateway did not start"); return; }
    char v[64];
    if (r.status != 200 || strcmp(gwt_hdr(&r, "X-Ferry-Node", v, sizeof v), "good"))
        test_fail(__FILE__, __LINE__, "%s: status %ld node '%s'", kind, r.status, v);
    if (!strstr(r.body.data, "data: [DONE]")) test_fail(__FILE__, __LINE__, "%s: no stream", kind);
    if (fo != 1) test_fail(__FILE__, __LINE__, "%s: failovers %g != 1", kind, fo);
    if (errs != 1) test_fail(__FILE__, __LINE__, "%s: upstream errors %g != 1", kind, errs);
    gwt_resp_fini(&r);
}

TEST(gw_failover_on_5xx) { failover_case(BE_500, "http_5xx"); }
TEST(gw_failover_on_refused_connection) { failover_case(BE_OK, "connect"); }
TEST(gw_failover_on_first_byte_timeout) { failover_case(BE_HANG, "timeout"); }

TEST(gw_privacy_edge_only_holds_for_every_path)
{
    struct backend *e = be_start("e0", BE_OK), *c = be_start("c0", BE_OK);
    struct gwt_gw g;
    CHECK(gw_start_on(&g, "priv.ini", e, c, "[policy]\nname = cloud-only\n") == 0);
    struct gwt_resp a, b, d;
    gwt_http(g.port, "/v1/chat/completions", chat_body("ferry", 0, NULL), &a);
    gwt_http_opts(g.port, "/v1/chat/completions", chat_body("ferry", 0, NULL),
                  &(struct gwt_http_opts){.header = "X-Ferry-Privacy: edge-only"}, &b);
    gwt_http_opts(g.port, "/v1/chat/completions", chat_body("c0", 0, NULL),
                  &(struct gwt_http_opts){.header = "X-Ferry-Privacy: edge-only"}, &d);
    gwt_gw_stop(&g);
    be_stop(e);
    be_stop(c);
    char v[64];
    CHECK_STR(gwt_hdr(&a, "X-Ferry-Node", v, sizeof v), "c0");   /* the policy's choice */
    CHECK_EQ_INT(b.status, 200);
    CHECK_STR(gwt_hdr(&b, "X-Ferry-Node", v, sizeof v), "e0");   /* overruled: edge-only */
    CHECK_EQ_INT(d.status, 400);
    CHECK(strstr(d.body.data, "privacy") != NULL);
    gwt_resp_fini(&a); gwt_resp_fini(&b); gwt_resp_fini(&d);
}

TEST(gw_pinned_node_failure_is_a_502_error_object)
{
    struct backend *bad = be_start("bad", BE_500), *good = be_start("good", BE_OK);
    struct gwt_gw g;
    CHECK(gw_start_on(&g, "pinned.ini", bad, good, NULL) == 0);
    struct gwt_resp r;
    gwt_http(g.port, "/v1/chat/completions", chat_body("bad", 0, NULL), &r);
    gwt_gw_stop(&g);
    be_stop(bad);
    be_stop(good);
    CHECK_EQ_INT(r.status, 502);
    cJSON *j = cJSON_Parse(r.body.data);
    cJSON *e = cJSON_GetObjectItem(j, "error");
    CHECK(cJSON_IsString(cJSON_GetObjectItem(e, "message")));
    CHECK(strstr(cJSON_GetObjectItem(e, "message")->valuestring, "bad") != NULL);
    cJSON_Delete(j);
    gwt_resp_fini(&r);
}

TEST(gw_midstream_failure_ends_with_an_error_event)
{
    struct backend *be = be_start("e0", BE_DROP_MID);
    struct gwt_gw g;
    CHECK(gw_start_on(&g, "mid.ini", be, NULL, NULL) == 0);
    struct gwt_resp r;
    gwt_http(g.port, "/v1/chat/completions", chat_body("ferry", 1, NULL), &r);
    double mid = gwt_metric(g.port, "ferry_upstream_errors_total{node=\"e0\",kind=\"midstream\"} ");
    gwt_gw_stop(&g);
    be_stop(be);
    CHECK_EQ_INT(r.status, 200);
    CHECK(strstr(r.body.data, "tok0 ") != NULL);
    CHECK(strstr(r.body.data, "\"code\":\"upstream_failed\"") != NULL);
    CHECK(strstr(r.body.data, "[DONE]") == NULL);
    CHECK_NEAR(mid, 1, 0);
    gwt_resp_fini(&r);
}

/* The error event is JSON whatever the node is called (a quote in the name broke it). */
TEST(gw_midstream_error_event_is_json_for_any_node_name)
{
    struct backend *be = be_start("q\"1\\", BE_DROP_MID);
    struct gwt_gw g;
    CHECK(gw_start_on(&g, "midname.ini", be, NULL, NULL) == 0);
    struct gwt_resp r;
    gwt_http(g.port, "/v1/chat/completions", chat_body("ferry", 1, NULL), &r);
    gwt_gw_stop(&g);
    be_stop(be);
    const char *ev = r.body.data ? strstr(r.body.data, "data: {\"error\"") : NULL;
    char line[1024] = "";
    if (ev) {
        const char *nl = strchr(ev, '\n');
        size_t n = nl ? (size_t)(nl - ev) : strlen(ev);
        snprintf(line, sizeof line, "%.*s", (int)n, ev + 6);
    }
    cJSON *j = cJSON_Parse(line);
    const char *m = cJSON_GetStringValue(
        cJSON_GetObjectItem(cJSON_GetObjectItem(j, "error"), "message"));
    int ok = m && strstr(m, "upstream node 'q\"1\\' failed mid-stream") != NULL;
    cJSON_Delete(j);
    if (!ok) fprintf(stderr, "  event: %s\n", line);
    gwt_resp_fini(&r);
    CHECK(ev != NULL);
    CHECK(ok);
}

/* The feedback answer names the node in valid JSON whatever it is called. */
TEST(gw_feedback_answer_is_json_for_any_node_name)
{
    struct backend *be = be_start("q\"1\\", BE_OK);
    struct gwt_gw g;
    CHECK(gw_start_on(&g, "fbname.ini", be, NULL, NULL) == 0);
    struct gwt_resp r, f;
    gwt_http(g.port, "/v1/chat/completions", chat_body("ferry", 0, NULL), &r);
    char id[64] = "", fb[160];
    gwt_hdr(&r, "X-Ferry-Request-Id", id, sizeof id);
    snprintf(fb, sizeof fb, "{\"request_id\":\"%s\",\"score\":1}", id);
    gwt_http(g.port, "/v1/feedback", fb, &f);
    gwt_gw_stop(&g);
    be_stop(be);
    cJSON *j = cJSON_Parse(f.body.data);
    const char *node = cJSON_GetStringValue(cJSON_GetObjectItem(j, "node"));
    int ok = f.status == 200 && node && !strcmp(node, "q\"1\\");
    if (!ok) fprintf(stderr, "  feedback answer: %ld %s\n", f.status, f.body.data);
    cJSON_Delete(j);
    gwt_resp_fini(&r);
    gwt_resp_fini(&f);
    CHECK(id[0] != 0);
    CHECK(ok);
}

/* A JSON answer is held whole (up to max_client_buffer) before it is sent: when the
 * backend drops it halfway, nothing reached the client yet, and it gets a 502 error
 * object naming the node (it got a bare close, no status, no message). */
TEST(gw_midstream_failure_of_a_held_json_answer_is_a_502_error_object)
{
    struct backend *be = be_start("e0", BE_DROP_MID);
    struct gwt_gw g;
    CHECK(gw_start_on(&g, "mid2.ini", be, NULL, NULL) == 0);
    struct gwt_resp r;
    int rc = gwt_http(g.port, "/v1/chat/completions", chat_body("ferry", 0, NULL), &r);
    double mid = gwt_metric(g.port, "ferry_upstream_errors_total{node=\"e0\",kind=\"midstream\"} ");
    double err = gwt_metric(g.port, "ferry_requests_total{node=\"e0\",policy=\"least-loaded\","
                                    "outcome=\"upstream_error\"} ");
    long health = gwt_http_status(g.port, "/health", NULL, NULL, NULL);
    gwt_gw_stop(&g);
    be_stop(be);
    /* never a complete-looking answer: an error object with a status */
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_INT(r.status, 502);
    CHECK(strstr(r.body.data, "\"choices\"") == NULL);
    cJSON *j = cJSON_Parse(r.body.data);
    cJSON *e = cJSON_GetObjectItem(j, "error");
    cJSON *m = cJSON_GetObjectItem(e, "message");
    CHECK(cJSON_IsString(m) && strstr(m->valuestring, "'e0'") &&
          strstr(m->valuestring, "middle of its answer"));
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(e, "code")), "upstream_failed");
    cJSON_Delete(j);
    CHECK_NEAR(mid, 1, 0);
    CHECK_NEAR(err, 1, 0);
    CHECK(health == 200 || health == 503);   /* still serving (the node may be out) */
    gwt_resp_fini(&r);
}

/* A backend that answers every request (health checks too) with bytes that are not
 * HTTP, then closes. */
struct garbage_be {
    int lfd, port;
    atomic_int stop, served;
    pthread_t th;
};

static void *garbage_main(void *arg)
{
    struct garbage_be *g = arg;
    while (!atomic_load(&g->stop)) {
        struct pollfd p = {g->lfd, POLLIN, 0};
        if (poll(&p, 1, 50) <= 0) continue;
        int fd = accept(g->lfd, NULL, NULL);
        if (fd < 0) continue;
        char b[4096];
        struct pollfd q = {fd, POLLIN, 0};
        if (poll(&q, 1, 2000) > 0 && read(fd, b, sizeof b) > 0) {
            static const char junk[] = "HELLO THERE, NOT HTTP\r\n\r\n";
            ssize_t n = write(fd, junk, sizeof junk - 1);
            (void)n;
            atomic_fetch_add(&g->served, 1);
        }
        close(fd);
    }
    return NULL;
}

/* A backend that answers garbage instead of HTTP: a 502 naming the node and "malformed
 * HTTP response" (it said "upstream node 'e0' Weird server reply", curl's words), and the
 * gateway goes on serving. */
TEST(gw_backend_answering_garbage_is_a_502_naming_it)
{
    struct garbage_be gb = {.lfd = -1};
    gb.lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK(bind(gb.lfd, (struct sockaddr *)&a, sizeof a) == 0 && listen(gb.lfd, 16) == 0);
    gb.port = gwt_sock_port(gb.lfd);
    pthread_create(&gb.th, NULL, garbage_main, &gb);
    char cfg[512];
    snprintf(cfg, sizeof cfg, "[server]\nlisten = 127.0.0.1:0\n[timeouts]\nmax_retries = 0\n"
             "[node e0]\nrole = edge\nurl = http://127.0.0.1:%d\nmetrics = none\n", gb.port);
    struct gwt_gw g;
    int started = gwt_gw_start(&g, "garbage.ini", cfg, NULL, NULL) == 0;
    struct gwt_resp r, r2;
    memset(&r, 0, sizeof r);
    memset(&r2, 0, sizeof r2);
    if (started) {
        gwt_http(g.port, "/v1/chat/completions", chat_body("ferry", 0, NULL), &r);
        gwt_http(g.port, "/v1/chat/completions", chat_body("e0", 1, NULL), &r2);
    }
    long health = started ? gwt_http_status(g.port, "/v1/models", NULL, NULL, NULL) : -1;
    if (started) gwt_gw_stop(&g);
    atomic_store(&gb.stop, 1);
    pthread_join(gb.th, NULL);
    close(gb.lfd);
    CHECK(started);
    CHECK_EQ_INT(r.status, 502);
    CHECK_EQ_INT(r2.status, 502);
    cJSON *j = cJSON_Parse(r.body.data);
    const char *m = cJSON_GetStringValue(
        cJSON_GetObjectItem(cJSON_GetObjectItem(j, "error"), "message"));
    CHECK(m && strstr(m, "upstream node 'e0' failed: malformed HTTP response"));
    cJSON_Delete(j);
    CHECK(strstr(r2.body.data, "malformed HTTP response") != NULL);
    CHECK(atomic_load(&gb.served) >= 2);
    CHECK_EQ_INT(health, 200);
    gwt_resp_fini(&r);
    gwt_resp_fini(&r2);
}

/* ==== client side ================================================================== */

TEST(gw_client_disconnect_cancels_the_upstream)
{
    struct backend *be = be_start("e0", BE_SLOW);
    struct gwt_gw g;
    CHECK(gw_start_on(&g, "disc.ini", be, NULL, NULL) == 0);
    int fd = gwt_connect(g.port, 0);
    gwt_raw_post(fd, chat_body("ferry", 1, NULL), 1);
    char buf[4096];
    ssize_t got = 0;
    while (got < 600) {            /* wait for a few events to arrive */
        ssize_t r = read(fd, buf, sizeof buf);
        if (r <= 0) break;
        got += r;
    }
    /* while it streams, the node carries this request's remaining work */
    struct gwt_resp nd;
    gwt_http(g.port, "/v1/ferry/nodes", NULL, &nd);
    cJSON *nj = cJSON_Parse(nd.body.data);
    cJSON *n0 = cJSON_GetArrayItem(cJSON_GetObjectItem(nj, "nodes"), 0);
    double ahead = cJSON_GetNumberValue(cJSON_GetObjectItem(n0, "queued_tokens"));
    double infl = cJSON_GetNumberValue(cJSON_GetObjectItem(n0, "inflight"));
    cJSON_Delete(nj);
    gwt_resp_fini(&nd);
    close(fd);
    /* the slow stream lasts 3 s; the backend must see its client go long before */
    double t0 = clock_now_ms();
    while (!be->closed_early && clock_now_ms() - t0 < 5000) usleep(10000);
    double gone = -1;
    for (int i = 0; i < 100 && gone < 1; i++) {
        gone = gwt_metric(g.port, "ferry_requests_total{node=\"e0\",policy=\"least-loaded\",outcome=\"client_gone\"} ");
        usleep(10000);
    }
    double inflight = gwt_metric(g.port, "ferry_inflight_requests{node=\"e0\"} ");
    gwt_http(g.port, "/v1/ferry/nodes", NULL, &nd);
    int ahead_after_zero = strstr(nd.body.data, "\"queued_tokens\":0,") != NULL;
    gwt_resp_fini(&nd);
    int closed_early = be->closed_early;
    gwt_gw_stop(&g);
    be_stop(be);
    CHECK(got >= 600);
    CHECK_EQ_INT(closed_early, 1);
    CHECK_NEAR(gone, 1, 0);
    CHECK_NEAR(inflight, 0, 0);
    CHECK_NEAR(infl, 1, 0);
    CHECK(ahead > 0);
    CHECK(ahead_after_zero);
}

TEST(gw_slow_client_back_pressures_the_upstream)
{
    struct backend *be = be_start("e0", BE_BIG);
    struct gwt_gw g;
    CHECK(gw_start_on(&g, "bp.ini", be, NULL, "[limits]\nmax_client_buffer = 65536\n") == 0);
    int fd = gwt_connect(g.port, 16384);
    gwt_raw_post(fd, chat_body("ferry", 1, NULL), 1);
    /* do not read: wait until the backend stops making progress */
    size_t last = 0;
    int still = 0;
    double t0 = clock_now_ms();
    while (still < 30 && clock_now_ms() - t0 < 15000) {
        usleep(10000);
        size_t now = be->big_sent;
        still = now == last ? still + 1 : 0;
        last = now;
    }
    size_t stalled_at = be->big_sent;
    /* now read everything: the stream must complete */
    size_t total = 0;
    char buf[65536];
    ssize_t r;
    struct pollfd p = {fd, POLLIN, 0};
    while (poll(&p, 1, 5000) > 0 && (r = read(fd, buf, sizeof buf)) > 0) total += (size_t)r;
    close(fd);
    gwt_gw_stop(&g);
    be_stop(be);
    /* bounded buffering: the backend was held far below the full stream */
    CHECK(stalled_at < BIG_TOTAL / 2);
    CHECK(total > BIG_TOTAL);
}

/* A client that stops reading its answer: after send_timeout_ms without progress the
 * gateway closes the connection and cancels the backend (it held both for total_ms, ten
 * minutes by default). */
TEST(gw_client_that_stops_reading_is_closed_after_send_timeout)
{
    struct backend *be = be_start("e0", BE_BIG);
    struct gwt_gw g;
    CHECK(gw_start_on(&g, "st.ini", be, NULL,
                      "send_timeout_ms = 300\n[limits]\nmax_client_buffer = 65536\n") == 0);
    int fd = gwt_connect(g.port, 16384);
    gwt_raw_post(fd, chat_body("ferry", 1, NULL), 1);
    double t0 = clock_now_ms(), gone = 0;
    while (gone < 1 && clock_now_ms() - t0 < 10000) { /* do not read */
        usleep(50000);
        gone = gwt_metric(g.port, "ferry_requests_total{node=\"e0\",policy=\"least-loaded\","
                                  "outcome=\"client_gone\"} ");
    }
    double waited = clock_now_ms() - t0;
    /* what was sent before the close is still readable, then the end */
    size_t total = 0;
    char buf[65536];
    ssize_t r = 0;
    struct pollfd p = {fd, POLLIN, 0};
    while (poll(&p, 1, 3000) > 0 && (r = read(fd, buf, sizeof buf)) > 0) total += (size_t)r;
    int eof = r <= 0;
    close(fd);
    double inflight = gwt_metric(g.port, "ferry_inflight_requests{node=\"e0\"} ");
    gwt_gw_stop(&g);
    be_stop(be);
    CHECK_NEAR(gone, 1, 0);
    CHECK(waited < 5000);
    CHECK(eof);
    CHECK(total < BIG_TOTAL / 2);
    CHECK_NEAR(inflight, 0, 0);
}

/* ==== errors, auth ================================================================= */

static void expect_error(int port, const char *body, long status, const char *needle)
{
    struct gwt_resp r;
    gwt_http(port, "/v1/chat/completions", body, &r);
    cJSON *j = cJSON_Parse(r.body.data);
    cJSON *e = cJSON_GetObjectItem(j, "error");
    cJSON *m = cJSON_GetObjectItem(e, "message");
    if (r.status != status || !cJSON_IsString(m) || !cJSON_GetObjectItem(e, "type"))
        test_fail(__FILE__, __LINE__, "body %.60s: status %ld (want %ld), reply %.200s", body,
                  r.status, status, r.body.data);
    else if (needle && !strstr(r.body.data, needle))
        test_fail(__FILE__, __LINE__, "reply %.200s lacks '%s'", r.body.data, needle);
    cJSON_Delete(j);
    gwt_resp_fini(&r);
}

TEST(gw_bad_requests_get_openai_error_objects)
{
    struct backend *be = be_start("e0", BE_OK);
    struct gwt_gw g;
    CHECK(gw_start_on(&g, "bad.ini", be, NULL, "[limits]\nmax_body_bytes = 100000\n") == 0);
    expect_error(g.port, "", 400, "request body is empty");   /* it said only "empty" */
    expect_error(g.port, "{not json", 400, NULL);
    expect_error(g.port, "[1,2]", 400, NULL);
    expect_error(g.port, "{\"model\":\"ferry\"}", 400, "messages");
    expect_error(g.port, "{\"model\":\"ferry\",\"messages\":[{\"role\":\"user\",\"content\":["
                         "{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:image/png;base64,!!!\"}}]}]}",
                 400, "messages[0].content[0]");
    expect_error(g.port, "{\"model\":\"gpt-nope\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
                 404, "model_not_found");
    char *big = malloc(200001);
    memset(big, ' ', 200000);
    big[200000] = 0;
    memcpy(big, "{\"model\":\"ferry\",\"messages\":[]", 30);
    struct gwt_resp r;
    gwt_http(g.port, "/v1/chat/completions", big, &r);
    CHECK_EQ_INT(r.status, 413);
    gwt_resp_fini(&r);
    free(big);
    gwt_http(g.port, "/v1/chat/completions", NULL, &r);
    CHECK_EQ_INT(r.status, 405);
    gwt_resp_fini(&r);
    gwt_http(g.port, "/v1/nothing", NULL, &r);
    CHECK_EQ_INT(r.status, 404);
    gwt_resp_fini(&r);
    struct gwt_resp bad_hdr;
    gwt_http_opts(g.port, "/v1/chat/completions", chat_body("ferry", 0, NULL),
                  &(struct gwt_http_opts){.header = "X-Ferry-Tradeoff: very"}, &bad_hdr);
    CHECK_EQ_INT(bad_hdr.status, 400);
    gwt_resp_fini(&bad_hdr);
    /* a value that is not UTF-8 is quoted in the message: the JSON must stay UTF-8 */
    gwt_http_opts(g.port, "/v1/chat/completions", chat_body("ferry", 0, NULL),
                  &(struct gwt_http_opts){.header = "X-Ferry-Tradeoff: \xff\xfe"}, &bad_hdr);
    int not_utf8_400 = bad_hdr.status == 400 && bad_hdr.body.data &&
                       req_utf8_invalid_at(bad_hdr.body.data, bad_hdr.body.len) < 0 &&
                       strstr(bad_hdr.body.data, "'?" "?' is not a number") != NULL;
    if (!not_utf8_400) fprintf(stderr, "  reply: %.200s\n", bad_hdr.body.data);
    gwt_resp_fini(&bad_hdr);
    int nreq = be_nreq(be);
    gwt_gw_stop(&g);
    be_stop(be);
    CHECK_EQ_INT(nreq, 0);   /* nothing bad reached the backend */
    CHECK(not_utf8_400);
}

/* One request on a fresh connection ("Connection: close" in req); the raw answer. */
static void raw_exchange(int port, const char *req, struct buf *o)
{
    buf_reset(o);
    int fd = gwt_connect(port, 0);
    gwt_send_all(fd, req);
    int eof = 0;
    gwt_read_until(fd, o, NULL, &eof);
    close(fd);
}

/* Methods: a known method a path does not serve is 405 with the Allow header RFC 9110
 * requires (there was none; POST /health was answered as a GET), a method the server
 * does not know (methods are case-sensitive) is 501 (was 405), both as OpenAI error
 * objects. */
TEST(gw_methods_get_405_with_allow_or_501)
{
    struct backend *be = be_start("e0", BE_OK);
    struct gwt_gw g;
    CHECK(gw_start_on(&g, "methods.ini", be, NULL, NULL) == 0);
    struct buf a, b, c, d, e;
    buf_init(&a); buf_init(&b); buf_init(&c); buf_init(&d); buf_init(&e);
    raw_exchange(g.port, "GET /v1/chat/completions HTTP/1.1\r\nConnection: close\r\n\r\n", &a);
    raw_exchange(g.port, "PUT /v1/models HTTP/1.1\r\nContent-Length: 0\r\n"
                         "Connection: close\r\n\r\n", &b);
    raw_exchange(g.port, "OPTIONS /v1/chat/completions HTTP/1.1\r\nConnection: close\r\n\r\n",
                 &c);
    raw_exchange(g.port, "post /v1/chat/completions HTTP/1.1\r\nConnection: close\r\n\r\n", &d);
    raw_exchange(g.port, "BREW /v1/models HTTP/1.1\r\nConnection: close\r\n\r\n", &e);
    /* a path with bytes that are not UTF-8: the 404's JSON must stay valid (it copied them) */
    struct buf u;
    buf_init(&u);
    raw_exchange(g.port, "GET /v1/\xff\xfe HTTP/1.1\r\nConnection: close\r\n\r\n", &u);
    const char *ub = u.data ? strstr(u.data, "\r\n\r\n") : NULL;
    cJSON *uj = ub ? cJSON_Parse(ub + 4) : NULL;
    const char *um = cJSON_GetStringValue(
        cJSON_GetObjectItem(cJSON_GetObjectItem(uj, "error"), "message"));
    int u404 = u.data && !strncmp(u.data, "HTTP/1.1 404 ", 13) && um &&
               strstr(um, "no such endpoint: /v1/%FF%FE ") != NULL;
    cJSON_Delete(uj);
    buf_fini(&u);
    /* read-only endpoints answered POST as if it were GET */
    struct buf f;
    buf_init(&f);
    raw_exchange(g.port, "POST /health HTTP/1.1\r\nContent-Length: 2\r\nConnection: close\r\n"
                         "\r\n{}", &f);
    int post_health = f.data && !strncmp(f.data, "HTTP/1.1 405 ", 13) &&
                      strstr(f.data, "\r\nAllow: GET, HEAD\r\n");
    buf_fini(&f);
    long health = gwt_http_status(g.port, "/health", NULL, NULL, NULL);
    gwt_gw_stop(&g);
    be_stop(be);
    const char *sa = a.data ? a.data : "", *sb = b.data ? b.data : "", *sc = c.data ? c.data : "";
    const char *sd = d.data ? d.data : "", *se = e.data ? e.data : "";
    CHECK(!strncmp(sa, "HTTP/1.1 405 ", 13) && strstr(sa, "\r\nAllow: POST\r\n"));
    CHECK(!strncmp(sb, "HTTP/1.1 405 ", 13) && strstr(sb, "\r\nAllow: GET, HEAD\r\n"));
    CHECK(strstr(sb, "method PUT not allowed: use GET for /v1/models") != NULL);
    CHECK(!strncmp(sc, "HTTP/1.1 405 ", 13) && strstr(sc, "\r\nAllow: "));
    CHECK(!strncmp(sd, "HTTP/1.1 501 ", 13) && strstr(sd, "method 'post' is not implemented"));
    CHECK(strstr(sd, "\"type\":\"invalid_request_error\"") != NULL);
    CHECK(!strncmp(se, "HTTP/1.1 501 ", 13) && strstr(se, "'BREW'"));
    CHECK(post_health);
    CHECK(u404);
    CHECK_EQ_INT(health, 200);
    buf_fini(&a); buf_fini(&b); buf_fini(&c); buf_fini(&d); buf_fini(&e);
}

TEST(gw_client_api_keys)
{
    struct backend *be = be_start("e0", BE_OK);
    struct gwt_gw g;
    CHECK(gw_start_on(&g, "auth.ini", be, NULL, "api_key = sk-one\napi_key = sk-two\n") == 0);
    struct gwt_resp a, b, c, d, h;
    gwt_http(g.port, "/v1/chat/completions", chat_body("ferry", 0, NULL), &a);
    gwt_http_opts(g.port, "/v1/chat/completions", chat_body("ferry", 0, NULL),
                  &(struct gwt_http_opts){.header = "Authorization: Bearer sk-on"}, &b);
    gwt_http_opts(g.port, "/v1/chat/completions", chat_body("ferry", 0, NULL),
                  &(struct gwt_http_opts){.header = "Authorization: Bearer sk-two"}, &c);
    gwt_http(g.port, "/v1/models", NULL, &d);
    gwt_http(g.port, "/health", NULL, &h);
    gwt_gw_stop(&g);
    be_stop(be);
    CHECK_EQ_INT(a.status, 401);
    CHECK(strstr(a.body.data, "invalid_api_key") != NULL);
    CHECK_EQ_INT(b.status, 401);
    CHECK_EQ_INT(c.status, 200);
    CHECK_EQ_INT(d.status, 401);
    CHECK_EQ_INT(h.status, 200);
    gwt_resp_fini(&a); gwt_resp_fini(&b); gwt_resp_fini(&c); gwt_resp_fini(&d); gwt_resp_fini(&h);
}

/* What can be refused from the head is refused before the body is read: a client
 * without a key, on a wrong path or over the feedback limit uploads nothing (it was sent
 * 100 Continue and its whole body was read, up to max_body_bytes, before the 401). */
TEST(gw_refusals_come_before_the_body_is_read)
{
    struct backend *be = be_start("e0", BE_OK);
    struct gwt_gw g;
    CHECK(gw_start_on(&g, "early.ini", be, NULL, "api_key = sk-one\n") == 0);
    struct buf a, b, c, d;
    buf_init(&a); buf_init(&b); buf_init(&c); buf_init(&d);
    /* heads only: a body would follow, but the answer must come without it */
    raw_exchange(g.port, "POST /v1/chat/completions HTTP/1.1\r\nAuthorization: Bearer sk-no\r\n"
                         "Content-Length: 10000000\r\nExpect: 100-continue\r\n\r\n", &a);
    raw_exchange(g.port, "POST /v1/nothing HTTP/1.1\r\nAuthorization: Bearer sk-one\r\n"
                         "Transfer-Encoding: chunked\r\n\r\n", &b);
    raw_exchange(g.port, "POST /v1/feedback HTTP/1.1\r\nAuthorization: Bearer sk-one\r\n"
                         "Content-Length: 100000\r\n\r\n", &c);
    /* with the key: 100 Continue, then the answer */
    int fd = gwt_connect(g.port, 0);
    const char *body = chat_body("ferry", 0, NULL);
    char head[256];
    snprintf(head, sizeof head, "POST /v1/chat/completions HTTP/1.1\r\nAuthorization: Bearer "
             "sk-one\r\nContent-Length: %zu\r\nExpect: 100-continue\r\nConnection: close\r\n"
             "\r\n", strlen(body));
    gwt_send_all(fd, head);
    int cont = gwt_read_until(fd, &d, "HTTP/1.1 100 Continue\r\n\r\n", NULL);
    gwt_send_all(fd, body);
    int answered = gwt_read_until(fd, &d, "hello from e0", NULL);
    close(fd);
    long models = gwt_http_status(g.port, "/health", NULL, NULL, NULL);
    int nreq = be_nreq(be);
    gwt_gw_stop(&g);
    be_stop(be);
    const char *sa = a.data ? a.data : "", *sb = b.data ? b.data : "", *sc = c.data ? c.data : "";
    CHECK(!strncmp(sa, "HTTP/1.1 401 ", 13) && strstr(sa, "invalid_api_key"));
    CHECK(strstr(sa, "100 Continue") == NULL);
    CHECK(strstr(sa, "Connection: close\r\n") != NULL);
    CHECK(!strncmp(sb, "HTTP/1.1 404 ", 13) && strstr(sb, "/v1/nothing"));
    CHECK(!strncmp(sc, "HTTP/1.1 413 ", 13) && strstr(sc, "100000 bytes"));
    CHECK(cont);
    CHECK(answered);
    CHECK_EQ_INT(models, 200);
    CHECK_EQ_INT(nreq, 1);
    buf_fini(&a); buf_fini(&b); buf_fini(&c); buf_fini(&d);
}

/* ==== endpoints, learning, state ==================================================== */

TEST(gw_models_health_nodes_and_promtool_metrics)
{
    struct backend *e = be_start("e0", BE_OK), *c = be_start("c0", BE_OK);
    struct gwt_gw g;
    CHECK(gw_start_on(&g, "ep.ini", e, c, "[health]\nscrape_interval_ms = 50\n") == 0);
    struct gwt_resp m, h, n, x, chat;
    gwt_http(g.port, "/v1/chat/completions", chat_body("ferry", 1, NULL), &chat);
    gwt_http(g.port, "/v1/models", NULL, &m);
    gwt_http(g.port, "/health", NULL, &h);
    /* wait for a scrape of the backends' vLLM metrics (3 running, 2 waiting) */
    double t0 = clock_now_ms();
    for (;;) {
        gwt_http(g.port, "/v1/ferry/nodes", NULL, &n);
        if (strstr(n.body.data, "\"backend_waiting\":2") || clock_now_ms() - t0 > 5000) break;
        gwt_resp_fini(&n);
        usleep(20000);
    }
    gwt_http(g.port, "/metrics", NULL, &x);
    gwt_gw_stop(&g);
    be_stop(e);
    be_stop(c);
    CHECK_EQ_INT(chat.status, 200);
    CHECK(strstr(m.body.data, "\"id\":\"ferry\"") && strstr(m.body.data, "\"id\":\"c0\""));
    CHECK_EQ_INT(h.status, 200);
    CHECK(strstr(n.body.data, "\"backend_waiting\":2") != NULL);
    CHECK(strstr(n.body.data, "\"metrics\":\"vllm\"") != NULL);
    CHECK(strstr(x.body.data, "ferry_requests_total{node=\"e0\",policy=\"least-loaded\",outcome=\"ok\"} 1") ||
          strstr(x.body.data, "ferry_requests_total{node=\"c0\",policy=\"least-loaded\",outcome=\"ok\"} 1"));
    CHECK(strstr(x.body.data, "ferry_decision_duration_seconds_count 1") != NULL);
    CHECK_EQ_INT(gwt_promtool(x.body.data, x.body.len, "metrics.txt"), 0);
    gwt_resp_fini(&m); gwt_resp_fini(&h); gwt_resp_fini(&n);
    gwt_resp_fini(&x); gwt_resp_fini(&chat);
}

static double predicted_quality(int port, const char *model, char *id, size_t idcap)
{
    struct gwt_resp r;
    char v[64];
    gwt_http(port, "/v1/chat/completions", chat_body(model, 0, NULL), &r);
    double q = atof(gwt_hdr(&r, "X-Ferry-Predicted-Quality", v, sizeof v));
    if (id) gwt_hdr(&r, "X-Ferry-Request-Id", id, idcap);
    gwt_resp_fini(&r);
    return q;
}

TEST(gw_feedback_teaches_mgqp_and_state_survives_restart)
{
    struct backend *be = be_start("e0", BE_OK);
    const char *roles[] = {"edge"};
    char head[1200], cfg[2400], state[512], db[512];
    snprintf(state, sizeof state, "%s", test_tmp_path("state.bin"));   /* static buffer */
    snprintf(db, sizeof db, "%s", test_tmp_path("trace.db"));
    snprintf(head, sizeof head, "[server]\nlisten = 127.0.0.1:0\nstate_file = %s\ntrace_db = %s\n",
             state, db);
    cfg_nodes(cfg, sizeof cfg, head, &be, 1, roles);
    struct gwt_gw g;
    CHECK(gwt_gw_start(&g, "fb.ini", cfg, NULL, NULL) == 0);
    char id[64];
    double q0 = predicted_quality(g.port, "e0", id, sizeof id);
    for (int i = 0; i < 6; i++) {
        predicted_quality(g.port, "e0", id, sizeof id);
        char fb[160];
        snprintf(fb, sizeof fb, "{\"request_id\":\"%s\",\"score\":0}", id);
        struct gwt_resp r;
        gwt_http(g.port, "/v1/feedback", fb, &r);
        if (r.status != 200) test_fail(__FILE__, __LINE__, "feedback: %ld %s", r.status, r.body.data);
        gwt_resp_fini(&r);
    }
    double q1 = predicted_quality(g.port, "e0", NULL, 0);
    struct gwt_resp unk, bad;
    gwt_http(g.port, "/v1/feedback", "{\"request_id\":\"nope\",\"score\":1}", &unk);
    gwt_http(g.port, "/v1/feedback", "{\"request_id\":\"x\",\"score\":7}", &bad);
    CHECK_EQ_INT(gwt_gw_stop(&g), 0);
    struct stat st;
    CHECK(stat(state, &st) == 0 && st.st_size > 0);
    /* restart: the learned quality is back */
    CHECK(gwt_gw_start(&g, "fb.ini", cfg, NULL, NULL) == 0);
    double q2 = predicted_quality(g.port, "e0", NULL, 0);
    gwt_gw_stop(&g);
    be_stop(be);
    CHECK(q1 < q0 - 0.02);
    CHECK_NEAR(q2, q1, 0.02);
    CHECK_EQ_INT(unk.status, 404);
    CHECK_EQ_INT(bad.status, 400);
    gwt_resp_fini(&unk);
    gwt_resp_fini(&bad);
    /* the trace exports as JSONL with the feedback scores */
    char cmd[1200];
    char jsonl[512];
    snprintf(jsonl, sizeof jsonl, "%s", test_tmp_path("trace.jsonl"));
    snprintf(cmd, sizeof cmd, "'%s' bench export --db %s -o %s 2>/dev/null", gwt_ferry_bin(),
             db, jsonl);
    CHECK_EQ_INT(system(cmd), 0);
    struct trace_record *recs = NULL;
    size_t n = 0;
    char err[256];
    CHECK_EQ_INT(trace_read_file(jsonl, 0, &recs, &n, err, sizeof err), 0);
    CHECK_EQ_INT(n, 9);
    int zeros = 0;
    for (size_t i = 0; i < n; i++) {
        CHECK_STR(recs[i].out[0].node, "e0");
        CHECK_EQ_INT(recs[i].out[0].o.out_tokens, 3);   /* the backend's usage counts */
        CHECK_EQ_INT(recs[i].out[0].o.in_tokens, 7);
        CHECK(recs[i].out[0].o.e2e_ms > 0);
        if (recs[i].out[0].o.quality == 0) zeros++;
    }
    free(recs);
    CHECK_EQ_INT(zeros, 6);
}

TEST(gw_sigterm_drains_open_requests)
{
    struct backend *be = be_start("e0", BE_SLOW);
    struct gwt_gw g;
    CHECK(gw_start_on(&g, "drain.ini", be, NULL, NULL) == 0);
    int fd = gwt_connect(g.port, 0);
    gwt_raw_post(fd, chat_body("ferry", 1, NULL), 1);
    char buf[65536];
    ssize_t r = read(fd, buf, sizeof buf);   /* the stream has begun */
    kill(g.pid, SIGTERM);
    size_t total = r > 0 ? (size_t)r : 0;
    struct pollfd p = {fd, POLLIN, 0};
    while (poll(&p, 1, 15000) > 0 && (r = read(fd, buf, sizeof buf)) > 0) {
        total += (size_t)r;
        if (total < sizeof buf) buf[total < sizeof buf ? total : 0] = 0;
    }
    close(fd);
    int st = 0;
    double t0 = clock_now_ms();
    while (waitpid(g.pid, &st, WNOHANG) == 0 && clock_now_ms() - t0 < 15000) usleep(10000);
    int closed_early = be->closed_early;
    be_stop(be);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    CHECK(total > 300 * 60);             /* all 300 events arrived */
    CHECK_EQ_INT(closed_early, 0);
}

TEST(gw_openai_npm_client)
{
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "FERRY_BIN='%s' tests/test-openai.sh", gwt_ferry_bin());
    int rc = system(cmd);
    CHECK_EQ_INT(WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, 0);
}

/* ==== every policy through the gateway, against emulated MoA-Off nodes ============== */

TEST(gw_every_policy_serves_text_and_images)
{
    char pe[512], pc[512];
    snprintf(pe, sizeof pe, "%s", test_tmp_path("edge.port"));
    snprintf(pc, sizeof pc, "%s", test_tmp_path("cloud.port"));
    int eport = 0, cport = 0;
    pid_t ep = gwt_emulate("edge-3090", pe, &eport, NULL, NULL);
    pid_t cp = gwt_emulate("cloud-a100", pc, &cport, NULL, NULL);
    char *img1 = image_request(first_jpeg(), 1), *img2 = image_request(first_jpeg(), 2);
    int bad = 0, runs = 0;
    char plans[4096] = "";
    for (const struct fy_policy *const *p = pol_all(); eport > 0 && cport > 0 && *p; p++) {
        if (!strcmp((*p)->name, "oracle")) continue;   /* needs the simulator's ground truth */
        char cfg[1500];
        snprintf(cfg, sizeof cfg,
                 "[server]\nlisten = 127.0.0.1:0\n[policy]\nname = %s\n"
                 "[node edge]\nrole = edge\nurl = http://127.0.0.1:%d\nprofile = data/profiles\n"
                 "profile_node = edge-3090\n"
                 "[node cloud]\nrole = cloud\nurl = http://127.0.0.1:%d\nprofile = data/profiles\n"
                 "profile_node = cloud-a100\nup_mbps = 20\nrtt_ms = 40\n",
                 (*p)->name, eport, cport);
        struct gwt_gw g;
        if (gwt_gw_start(&g, "policy.ini", cfg, NULL, NULL)) {
            test_fail(__FILE__, __LINE__, "policy %s: gateway did not start", (*p)->name);
            bad++;
            continue;
        }
        const char *bodies[3] = {chat_body("ferry", 1, NULL), img1, img2};
        for (int k = 0; k < 3; k++) {
            struct gwt_resp r;
            char v[256];
            gwt_http(g.port, "/v1/chat/completions", bodies[k], &r);
            runs++;
            int ok = r.status == 200 && (k ? strstr(r.body.data, "\"choices\"") != NULL
                                           : strstr(r.body.data, "data: [DONE]") != NULL);
            if (!ok) {
                bad++;
                test_fail(__FILE__, __LINE__, "policy %s request %d: status %ld: %.200s",
                          (*p)->name, k, r.status, r.body.data);
            }
            if (k) {
                size_t l = strlen(plans);
                snprintf(plans + l, sizeof plans - l, " %s:%s", (*p)->name,
                         gwt_hdr(&r, "X-Ferry-Plan", v, sizeof v));
            }
            gwt_resp_fini(&r);
        }
        gwt_gw_stop(&g);
    }
    if (getenv("TEST_VERBOSE")) fprintf(stderr, "  plans:%s\n", plans);
    free(img1);
    free(img2);
    kill(ep, SIGTERM);
    kill(cp, SIGTERM);
    waitpid(ep, NULL, 0);
    waitpid(cp, NULL, 0);
    CHECK(eport > 0 && cport > 0);
    CHECK(runs >= 27);
    CHECK_EQ_INT(bad, 0);
}

/* ==== the emulator's fault modes =================================================== */

/* One faulty edge emulator and one good cloud emulator behind an edge-only policy. */
static void emu_fault_case(const char *opt, const char *val, const char *kind, int expect_failover)
{
    char pe[512], pc[512];
    snprintf(pe, sizeof pe, "%s", test_tmp_path("fe.port"));
    snprintf(pc, sizeof pc, "%s", test_tmp_path("fc.port"));
    int eport = 0, cport = 0;
    pid_t ep = gwt_emulate("edge-3090", pe, &eport, opt, val);
    pid_t cp = gwt_emulate("cloud-a100", pc, &cport, "--seed", "3");
    char cfg[1500];
    snprintf(cfg, sizeof cfg,
             "[server]\nlisten = 127.0.0.1:0\n[policy]\nname = edge-only\n"
             "[timeouts]\nfirst_byte_ms = 1500\nidle_ms = 1000\n[health]\ninterval_ms = 600000\n"
             "[node edge]\nrole = edge\nurl = http://127.0.0.1:%d\nprofile = data/profiles\n"
             "profile_node = edge-3090\n"
             "[node cloud]\nrole = cloud\nurl = http://127.0.0.1:%d\nprofile = data/profiles\n"
             "profile_node = cloud-a100\n", eport, cport);
    struct gwt_gw g;
    int ok = eport > 0 && cport > 0 && gwt_gw_start(&g, "fault.ini", cfg, NULL, NULL) == 0;
    struct gwt_resp r;
    memset(&r, 0, sizeof r);
    buf_init(&r.body);
    buf_init(&r.hdrs);
    double fo = -1, errs = -1;
    char sample[160];
    snprintf(sample, sizeof sample, "ferry_upstream_errors_total{node=\"edge\",kind=\"%s\"} ", kind);
    if (ok) {
        gwt_resp_fini(&r);
        gwt_http(g.port, "/v1/chat/completions", chat_body("ferry", 1, ",\"max_tokens\":40"), &r);
        fo = gwt_metric(g.port, "ferry_failovers_total ");
        errs = gwt_metric(g.port, sample);
        gwt_gw_stop(&g);
    }
    kill(ep, SIGTERM);
    kill(cp, SIGTERM);
    waitpid(ep, NULL, 0);
    waitpid(cp, NULL, 0);
    if (!ok) {
        test_fail(__FILE__, __LINE__, "%s: emulators or gateway did not start", opt);
        gwt_resp_fini(&r);
        return;
    }
    char v[64];
    gwt_hdr(&r, "X-Ferry-Node", v, sizeof v);
    if (expect_failover) {
        if (r.status != 200 || strcmp(v, "cloud") || !strstr(r.body.data, "[DONE]"))
            test_fail(__FILE__, __LINE__, "%s: status %ld node '%s'", opt, r.status, v);
        if (fo != 1) test_fail(__FILE__, __LINE__, "%s: failovers %g != 1", opt, fo);
    } else {   /* after the first byte: the stream ends with an error event */
        if (r.status != 200 || strcmp(v, "edge") || !strstr(r.body.data, "upstream_failed"))
            test_fail(__FILE__, __LINE__, "%s: status %ld node '%s' body %.200s", opt, r.status,
                      v, r.body.data);
    }
    if (errs != 1) test_fail(__FILE__, __LINE__, "%s: %s errors %g != 1", opt, kind, errs);
    gwt_resp_fini(&r);
}

TEST(gw_emulator_fault_error_fails_over) { emu_fault_case("--fault-error", "1", "http_5xx", 1); }
TEST(gw_emulator_fault_refuse_fails_over) { emu_fault_case("--fault-refuse", "1", "connect", 1); }
TEST(gw_emulator_fault_slow_start_fails_over)
{
    emu_fault_case("--fault-slow-start", "600000", "http_5xx", 1);
}
TEST(gw_emulator_fault_stall_first_fails_over)
{
    emu_fault_case("--fault-stall-first", "5000", "timeout", 1);
}
TEST(gw_emulator_fault_disconnect_mid_is_an_error_event)
{
    emu_fault_case("--fault-disconnect-mid", "1", "midstream", 0);
}
TEST(gw_emulator_fault_stall_mid_is_an_error_event)
{
    emu_fault_case("--fault-stall-mid", "5000", "midstream", 0);
}

TEST(gw_failing_node_is_taken_out_and_probed_back_in)
{
    struct backend *e = be_start("e0", BE_500), *c = be_start("c0", BE_OK);
    struct gwt_gw g;
    CHECK(gw_start_on(&g, "health.ini", e, c, "[policy]\nname = edge-only\n"
                      "[health]\ninterval_ms = 50\nbackoff_max_ms = 200\n") == 0);
    double h = -1, t0 = clock_now_ms();
    while (h != 0 && clock_now_ms() - t0 < 5000) {      /* /health answers 500: out */
        h = gwt_metric(g.port, "ferry_node_healthy{node=\"e0\"} ");
        usleep(20000);
    }
    struct gwt_resp r1, r2;
    gwt_http(g.port, "/v1/chat/completions", chat_body("ferry", 0, NULL), &r1);
    e->mode = BE_OK;                                     /* the node recovers */
    double back = -1;
    t0 = clock_now_ms();
    while (back != 1 && clock_now_ms() - t0 < 5000) {
        back = gwt_metric(g.port, "ferry_node_healthy{node=\"e0\"} ");
        usleep(20000);
    }
    gwt_http(g.port, "/v1/chat/completions", chat_body("ferry", 0, NULL), &r2);
    gwt_gw_stop(&g);
    be_stop(e);
    be_stop(c);
    char v[64];
    CHECK_NEAR(h, 0, 0);
    CHECK_EQ_INT(r1.status, 200);
    CHECK_STR(gwt_hdr(&r1, "X-Ferry-Node", v, sizeof v), "c0");   /* edge-only, but edge is out */
    CHECK_NEAR(back, 1, 0);
    CHECK_STR(gwt_hdr(&r2, "X-Ferry-Node", v, sizeof v), "e0");
    gwt_resp_fini(&r1);
    gwt_resp_fini(&r2);
}

TEST(gw_split_plan_describes_on_the_cloud_and_answers_on_the_edge)
{
    struct backend *e = be_start("e0", BE_OK), *c = be_start("c0", BE_OK);
    char cfg[2048];
    /* MoA-Off with the image always "complex" and the text always "simple": split */
    snprintf(cfg, sizeof cfg,
             "[server]\nlisten = 127.0.0.1:0\n[policy]\nname = moa-off\nparams = tau_img=0,tau_text=1\n"
             "[node e0]\nrole = edge\nurl = http://127.0.0.1:%d\nmodel = m-e0\n"
             "[node c0]\nrole = cloud\nurl = http://127.0.0.1:%d\nmodel = m-c0\n", e->port, c->port);
    struct gwt_gw g;
    CHECK(gwt_gw_start(&g, "split.ini", cfg, NULL, NULL) == 0);
    char *body = image_request(first_jpeg(), 1);
    struct gwt_resp r;
    gwt_http(g.port, "/v1/chat/completions", body, &r);
    free(body);
    gwt_gw_stop(&g);
    char *eb = be_last(e), *cb = be_last(c);
    be_stop(e);
    be_stop(c);
    char v[256];
    CHECK_EQ_INT(r.status, 200);
    CHECK_STR(gwt_hdr(&r, "X-Ferry-Plan", v, sizeof v), "node=e0;img=split;aux=c0");
    CHECK(strstr(r.body.data, "hello from e0") != NULL);
    /* the cloud node was asked to describe the image ... */
    CHECK(strstr(cb, "\"model\":\"m-c0\"") && strstr(cb, "data:image/jpeg;base64,"));
    CHECK(strstr(cb, "Describe the image") != NULL);
    /* ... and the edge node got the text with that description instead of the image */
    CHECK(strstr(eb, "\"model\":\"m-e0\"") != NULL);
    CHECK(strstr(eb, "data:image") == NULL);
    CHECK(strstr(eb, "[Image description: hello from c0]") != NULL);
    CHECK(strstr(eb, "\"custom\":{\"keep\":[1,2]}") != NULL);
    free(eb);
    free(cb);
    gwt_resp_fini(&r);
}

/* Whatever image plan the ferry policy picks for a large photo behind a slow uplink, the
 * backend receives exactly that: a JPEG no larger than the plan's size, or no image. */
TEST(gw_image_plan_in_the_header_is_what_the_backend_gets)
{
    struct backend *e = be_start("e0", BE_OK), *c = be_start("c0", BE_OK);
    char cfg[2048];
    snprintf(cfg, sizeof cfg,
             "[server]\nlisten = 127.0.0.1:0\n[policy]\nname = ferry\nparams = split=0\n"
             "[node e0]\nrole = edge\nurl = http://127.0.0.1:%d\nmodel = m-e0\nprofile = data/profiles\n"
             "profile_node = edge-3090\nup_mbps = 0.5\n"
             "[node c0]\nrole = cloud\nurl = http://127.0.0.1:%d\nmodel = m-c0\nprofile = data/profiles\n"
             "profile_node = cloud-a100\nup_mbps = 0.5\n", e->port, c->port);
    struct gwt_gw g;
    CHECK(gwt_gw_start(&g, "plan.ini", cfg, NULL, NULL) == 0);
    char *body = image_request("photo-ladybird.jpg", 1);
    size_t sent = strlen(body);
    int plans_checked = 0;
    const char *hdrs[2] = {NULL, "X-Ferry-Tradeoff: 1"};
    for (int k = 0; k < 2; k++) {
        struct gwt_resp r;
        gwt_http_opts(g.port, "/v1/chat/completions", body,
                      &(struct gwt_http_opts){.header = hdrs[k]}, &r);
        char v[256];
        gwt_hdr(&r, "X-Ferry-Plan", v, sizeof v);
        struct backend *be = !strncmp(v, "node=e0", 7) ? e : c;
        char *got = be_last(be);
        const char *url = strstr(got, "data:image/jpeg;base64,");
        if (getenv("TEST_VERBOSE")) fprintf(stderr, "  plan %s: %zu -> %zu bytes\n", v, sent, strlen(got));
        if (r.status != 200) test_fail(__FILE__, __LINE__, "status %ld", r.status);
        if (strstr(v, "img=drop")) {
            if (url) test_fail(__FILE__, __LINE__, "plan %s but the image was sent", v);
            if (!strstr(got, "Describe.")) test_fail(__FILE__, __LINE__, "text lost");
        } else if (strstr(v, "img=downscale:")) {
            int px = atoi(strstr(v, "img=downscale:") + 14);
            const char *b = url ? url + 23 : "";
            size_t bl = strcspn(b, "\"");
            uint8_t *dec = malloc(b64_decoded_max(bl) + 1);
            size_t dl = 0;
            enum fy_img_format fmt;
            int w = 0, h = 0;
            char err[200];
            if (!url || b64_decode(b, bl, B64_STD, dec, b64_decoded_max(bl), &dl) ||
                feat_image_probe(dec, dl, &fmt, &w, &h, err, sizeof err) || (w > px || h > px) ||
                (w < px && h < px))
                test_fail(__FILE__, __LINE__, "plan %s: backend got a %dx%d image", v, w, h);
            free(dec);
        } else if (strstr(v, "img=keep")) {
            if (!url || strlen(got) < sent - 64) test_fail(__FILE__, __LINE__, "plan %s: image changed", v);
        }
        plans_checked++;
        free(got);
        gwt_resp_fini(&r);
    }
    free(body);
    gwt_gw_stop(&g);
    be_stop(e);
    be_stop(c);
    CHECK_EQ_INT(plans_checked, 2);
}

TEST(gw_max_image_side_downscales_on_a_worker)
{
    struct backend *e = be_start("e0", BE_OK);
    struct gwt_gw g;
    CHECK(gw_start_on(&g, "cap.ini", e, NULL, "[limits]\nmax_image_side = 320\n") == 0);
    char *body = image_request("photo-ladybird.jpg", 2);
    struct gwt_resp r;
    gwt_http(g.port, "/v1/chat/completions", body, &r);
    free(body);
    gwt_gw_stop(&g);
    char *got = be_last(e);
    be_stop(e);
    char v[256];
    CHECK_EQ_INT(r.status, 200);
    CHECK_STR(gwt_hdr(&r, "X-Ferry-Plan", v, sizeof v), "node=e0;img=downscale:320,downscale:320");
    int images = 0;
    for (const char *u = got; (u = strstr(u, "data:image/jpeg;base64,")); u += 23) {
        const char *b = u + 23;
        size_t bl = strcspn(b, "\"");
        uint8_t *dec = malloc(b64_decoded_max(bl) + 1);
        size_t dl = 0;
        enum fy_img_format fmt;
        int w = 0, h = 0;
        char err[200];
        CHECK_EQ_INT(b64_decode(b, bl, B64_STD, dec, b64_decoded_max(bl), &dl), 0);
        CHECK_EQ_INT(feat_image_probe(dec, dl, &fmt, &w, &h, err, sizeof err), 0);
        free(dec);
        CHECK_EQ_INT(w > h ? w : h, 320);   /* 2560x1600 -> 320x200 */
        images++;
    }
    CHECK_EQ_INT(images, 2);
    CHECK(strstr(got, "\"custom\":{\"keep\":[1,2]}") != NULL);
    free(got);
    gwt_resp_fini(&r);
}

/* [limits] max_images = 0 used to mean "the default, 16": a gateway meant to take text
 * only forwarded images. 0 now refuses every image part (413), as any other value
 * refuses one image more than it. */
TEST(gw_max_images_zero_refuses_every_image)
{
    struct backend *e = be_start("e0", BE_OK);
    struct gwt_gw g;
    CHECK(gw_start_on(&g, "noimg.ini", e, NULL, "[limits]\nmax_images = 0\n") == 0);
    char *body = image_request("photo-ladybird.jpg", 1);
    expect_error(g.port, body, 413, "more than 0 images");
    free(body);
    struct gwt_resp r;
    gwt_http(g.port, "/v1/chat/completions",
             "{\"model\":\"ferry\",\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]}", &r);
    CHECK_EQ_INT(r.status, 200);
    gwt_resp_fini(&r);
    int nreq = be_nreq(e);
    gwt_gw_stop(&g);
    be_stop(e);
    CHECK_EQ_INT(nreq, 1);   /* the text request only */
}

/* ==== command line and configuration files (findings of the error review) ========== */

TEST(gw_serve_cli_names_a_missing_value_and_a_bad_port)
{
    CHECK_CLI("serve -c", 2, "-c needs a value");
    CHECK_CLI("serve --check -c data/ferry.ini --listen", 2, "--listen needs a value");
    /* a port out of range or with garbage used to pass as 99999 or 0 (any free port) */
    CHECK_CLI("serve --check -c data/ferry.ini --listen 127.0.0.1:99999", 2,
              "'99999' is not a port", "0..65535");
    CHECK_CLI("serve --check -c data/ferry.ini --listen 127.0.0.1:abc", 2,
              "'abc' is not a port");
    CHECK_CLI("serve --check -c data/ferry.ini --listen 127.0.0.1:80x", 2,
              "'80x' is not a port");
}

TEST(gw_config_file_that_is_a_directory_says_so)
{
    const char *dir = test_tmp_path("cfg-dir");
    CHECK_EQ_INT(mkdir(dir, 0700), 0);
    struct gw_config *c = malloc(sizeof *c);
    char err[512], args[600];
    CHECK_EQ_INT(gw_config_load(dir, c, err, sizeof err), -1);
    free(c);
    CHECK(strstr(err, dir) && strstr(err, "is a directory"));
    snprintf(args, sizeof args, "serve --check -c '%s'", dir);
    CHECK_CLI(args, 1, "is a directory");   /* was "no [node NAME] section" */
}

/* A profile that cannot be read was reported as "data/profiles: No such file or
 * directory", naming neither the node nor the key, and a relative path is read from
 * the working directory, not from the config's folder. */
TEST(gw_config_unreadable_profile_names_the_node_and_key)
{
    const char *p = test_tmp_path("noprof.ini");
    CHECK(test_write_file(p, "[node edge0]\nurl = http://127.0.0.1:1\n"
                             "profile = no-such-profiles\n") == 0);
    char args[600];
    snprintf(args, sizeof args, "serve --check -c '%s'", p);
    CHECK_CLI(args, 1, "node 'edge0': profile = 'no-such-profiles'", "No such file",
              "working directory");
}

/* "serve -c CONFIG" for a one-node config whose [server] section has `line` too (its
 * text in a temp file); NULL when it could not be written. */
static const char *serve_with_server_line(const char *line)
{
    static char args[700];
    char text[512];
    snprintf(text, sizeof text, "[server]\nlisten = 127.0.0.1:0\n%s\n"
             "[node e]\nurl = http://127.0.0.1:1\n", line);
    const char *p = test_tmp_path("bad-server.ini");
    if (test_write_file(p, text) != 0) return NULL;
    snprintf(args, sizeof args, "serve -c '%s'", p);
    return args;
}

/* Files the gateway writes are checked at start, naming their key: a trace database that
 * cannot be created stopped it with "PATH: sqlite: unable to open database file"; a
 * state_file in a folder that does not exist was accepted, every save only logged a
 * warning and the learned state was never kept. */
TEST(gw_unwritable_trace_db_and_state_file_name_their_key)
{
    const char *a = serve_with_server_line("trace_db = /nonexistent-ferry-dir/t.db");
    CHECK(a);
    CHECK_CLI(a, 1, "[server] trace_db: /nonexistent-ferry-dir/t.db");
    a = serve_with_server_line("state_file = /nonexistent-ferry-dir/state.fy");
    CHECK(a);
    CHECK_CLI(a, 1, "[server] state_file /nonexistent-ferry-dir/state.fy",
              "folder /nonexistent-ferry-dir");
}

/* A bad model file is named with where it came from: --model, or [pred] model with the
 * config's file and line */
TEST(gw_bad_model_file_names_its_origin)
{
    char bad[512], p1[512], p2[512], text[1024], args[1800]; /* test_tmp_path: one buffer */
    snprintf(bad, sizeof bad, "%s", test_tmp_path("bad.fy"));
    snprintf(p1, sizeof p1, "%s", test_tmp_path("model-key.ini"));
    snprintf(p2, sizeof p2, "%s", test_tmp_path("model-opt.ini"));
    CHECK(test_write_file(bad, "garbage\n") == 0);
    snprintf(text, sizeof text, "[server]\nlisten = 127.0.0.1:0\n[pred]\nmodel = %s\n"
             "[node e]\nurl = http://127.0.0.1:1\n", bad);
    CHECK(test_write_file(p1, text) == 0);
    CHECK(test_write_file(p2, "[server]\nlisten = 127.0.0.1:0\n"
                              "[node e]\nurl = http://127.0.0.1:1\n") == 0);
    snprintf(args, sizeof args, "serve -c '%s'", p1);
    CHECK_CLI(args, 1, "model-key.ini:4: [pred] model: ", bad);
    snprintf(args, sizeof args, "serve -c '%s' --check", p1);
    CHECK_CLI(args, 1, "model-key.ini:4: [pred] model: ", bad);
    snprintf(args, sizeof args, "serve -c '%s' --model '%s'", p2, bad);
    CHECK_CLI(args, 1, "ferry serve: --model: ", bad);
    /* an empty --model was taken as no model at all, silently */
    snprintf(args, sizeof args, "serve -c '%s' --check --model ''", p2);
    CHECK_CLI(args, 2, "ferry serve: --model '': expected a model file");
}

/* inih reads 200-byte lines: a longer comment was cut in two and its tail parsed as a
 * line, a longer value silently cut or misread. */
TEST(gw_config_long_comment_is_skipped_and_long_value_refused_with_its_line)
{
    char *text = malloc(2048);
    char err[512];
    struct gw_config *c = malloc(sizeof *c);
    int k = snprintf(text, 2048, "; ");
    memset(text + k, 'x', 400);
    snprintf(text + k + 400, 2048 - (size_t)k - 400,
             "\n[server]\nlisten = 127.0.0.1:8090\n[node a]\nurl = http://x\n");
    const char *path = test_tmp_path("long-comment.ini");
    CHECK(test_write_file(path, text) == 0);
    CHECK_EQ_INT(gw_config_load(path, c, err, sizeof err), 0);
    CHECK_EQ_INT(c->listen_port, 8090);
    CHECK_EQ_INT(gw_config_load_string(text, "s.ini", c, err, sizeof err), 0);
    /* a 400-byte value on line 4 */
    k = snprintf(text, 2048, "[server]\nlisten = 127.0.0.1:8090\n[node a]\nurl = http://x/");
    memset(text + k, 'y', 400);
    snprintf(text + k + 400, 2048 - (size_t)k - 400, "\nrole = edge\n");
    CHECK(test_write_file(path, text) == 0);
    CHECK_EQ_INT(gw_config_load(path, c, err, sizeof err), -1);
    CHECK(strstr(err, ":4: line longer than") != NULL);
    CHECK_EQ_INT(gw_config_load_string(text, "s.ini", c, err, sizeof err), -1);
    CHECK(strstr(err, "s.ini:4: line longer than") != NULL);
    free(c);
    free(text);
}

/* The limit itself (docs/gateway.md "Configuration reference"): with Debian's libinih
 * (INI_MAX_LINE 200) a line may have 198 characters before its line break, CR included;
 * the error names the file, the line, the limit and the line's length, also through
 * `ferry serve --check`. */
TEST(gw_config_line_of_198_characters_is_read_199_refused)
{
    char text[1024], err[512], args[800];
    struct gw_config *c = malloc(sizeof *c);
    CHECK(c != NULL);
    for (int len = 198; len <= 199; len++) {
        for (int crlf = 0; crlf <= 1; crlf++) {
            /* line 4: "url = http://x/yyy...", len characters (a CR among them) */
            int k = snprintf(text, sizeof text, "[server]\nlisten = 127.0.0.1:8090\n[node a]\n"
                             "url = http://x/");
            int start = (int)strlen("[server]\nlisten = 127.0.0.1:8090\n[node a]\n");
            int fill = len - (k - start) - crlf;
            memset(text + k, 'y', (size_t)fill);
            snprintf(text + k + fill, sizeof text - (size_t)(k + fill), "%s\nrole = edge\n",
                     crlf ? "\r" : "");
            int rc = gw_config_load_string(text, "len.ini", c, err, sizeof err);
            if (len == 198) {
                CHECK_EQ_INT(rc, 0);
                CHECK_EQ_INT((int)strlen(c->nodes[0].url), 198 - 6 - crlf);
            } else {
                char want[160];
                snprintf(want, sizeof want, "len.ini:4: line longer than 198 characters (199%s)",
                         crlf ? " with its CR" : "");
                CHECK_EQ_INT(rc, -1);
                CHECK(strstr(err, want) != NULL);
            }
        }
    }
    /* the same through the command line, from a file */
    const char *path = test_tmp_path("len.ini");
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    fputs(text, f);   /* the last one: 199 characters with CR LF */
    fclose(f);
    snprintf(args, sizeof args, "serve --check -c '%s'", path);
    CHECK_EQ_INT(test_ferry_cli(args, err, sizeof err), 1);
    char want[700];
    snprintf(want, sizeof want, "%s:4: line longer than 198 characters", path);
    CHECK(strstr(err, want) != NULL);
    free(c);
}

/* An image that passes the parser's header probe but fails to decode is answered 400
 * invalid_image with the image's JSON path as "param" (it was "messages"). */
TEST(gw_invalid_image_names_the_image_by_its_json_path)
{
    char path[512], err[256];
    snprintf(path, sizeof path, "%s/images/photo-ladybird.jpg", test_shared_dir());
    uint8_t *img = NULL;
    size_t len = 0;
    CHECK_EQ_INT(util_read_file(path, 0, &img, &len, err, sizeof err), 0);
    len /= 2;   /* headers intact, the scan cut: "jpeg: truncated data" on decoding */
    char *b64 = malloc(b64_encoded_len(len, 1) + 1);
    b64_encode(img, len, B64_STD, 1, b64);
    free(img);
    struct buf b;
    buf_init(&b);
    buf_printf(&b, "{\"model\":\"ferry\",\"messages\":[{\"role\":\"system\",\"content\":\"Be brief.\"},"
                   "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"What is it?\"},"
                   "{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:image/jpeg;base64,%s\"}}]}]}",
               b64);
    free(b64);
    char *body = buf_steal(&b);
    /* downscaling names it the same way (it said "image 0: downscale: ...") */
    struct req_error re;
    struct fy_request *r = req_parse(body, strlen(body), NULL, &re);
    CHECK(r != NULL);
    struct fy_plan p;
    pol_plan_keep(&p, 0);
    p.img[0] = FY_IMG_DOWNSCALE;
    p.downscale_px = 64;
    int drc = gw_route_downscale(r, &p, 80, err, sizeof err);
    req_free(r);
    CHECK_EQ_INT(drc, -1);
    const char *want = "messages[1].content[1].image_url.url: downscale: ";
    CHECK(!strncmp(err, want, strlen(want)));
    struct backend *be = be_start("e0", BE_OK);
    struct gwt_gw g;
    CHECK(gw_start_on(&g, "badimg.ini", be, NULL, NULL) == 0);
    expect_error(g.port, body, 400, "\"param\":\"messages[1].content[1].image_url.url\"");
    expect_error(g.port, body, 400, "invalid_image");
    free(body);
    int nreq = be_nreq(be);
    gwt_gw_stop(&g);
    be_stop(be);
    CHECK_EQ_INT(nreq, 0);
}

TEST(gw_bench_export_names_a_missing_value_and_needs_no_node_key)
{
    /* was "unknown option '--db'" */
    CHECK_CLI("bench export --db", 2, "--db needs a value");
    CHECK_CLI("bench export -o x.jsonl", 2, "--db FILE", "is missing");

    /* -c reads only trace_db: a cloud node's key variable need not be set (export
     * refused the config with "api_key_env: environment variable ... is not set") */
    char cfg[2048], args[1400], db[600];
    snprintf(db, sizeof db, "%s", test_tmp_path("no-such-trace.db"));
    snprintf(cfg, sizeof cfg,
             "[server]\ntrace_db = %s\n[node cloud0]\nrole = cloud\n"
             "url = https://api.example.com\nmodel = m\n"
             "api_key_env = FERRY_TEST_KEY_THAT_IS_NOT_SET\n", db);
    CHECK_EQ_INT(test_write_file(test_tmp_path("keyed.ini"), cfg), 0);
    snprintf(args, sizeof args, "bench export -c %s", test_tmp_path("keyed.ini"));
    /* a missing database was "sqlite: unable to open database file", naming neither
     * the key it came from nor where a relative path is looked up */
    CHECK_CLI(args, 1, "no-such-trace.db: No such file", "[server] trace_db of",
              "keyed.ini");
    snprintf(args, sizeof args, "serve --check -c %s", test_tmp_path("keyed.ini"));
    CHECK_CLI(args, 1, "FERRY_TEST_KEY_THAT_IS_NOT_SET' is not set"); /* serve still needs it */

    /* a failed export leaves -o's file as it was (it was truncated before the database
     * was opened) */
    char outp[600];
    snprintf(outp, sizeof outp, "%s", test_tmp_path("earlier.jsonl"));
    CHECK_EQ_INT(test_write_file(outp, "{\"earlier\":1}\n"), 0);
    snprintf(args, sizeof args, "bench export --db %s -o %s", db, outp);
    CHECK_CLI(args, 1, "--db", "no-such-trace.db: No such file");
    char kept[64] = "";
    FILE *f = fopen(outp, "r");
    CHECK(f != NULL);
    size_t got = fread(kept, 1, sizeof kept - 1, f);
    fclose(f);
    kept[got] = 0;
    CHECK_STR(kept, "{\"earlier\":1}\n");
}
