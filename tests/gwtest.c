/* gwtest.c — the gateway tests' shared plumbing; contracts in gwtest.h. */
#include "gwtest.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test.h"
#include "util/clock.h"

#define GWT_WAIT_MS 20000   /* the longest any helper waits for a process */

__attribute__((constructor)) static void gwt_init(void)
{
    evthread_use_pthreads();
    curl_global_init(CURL_GLOBAL_DEFAULT);
    signal(SIGPIPE, SIG_IGN);
}

/* ==== processes ==================================================================== */

const char *gwt_ferry_bin(void)
{
    static char path[1024];
    const char *e = getenv("FERRY_BIN");
    if (e && *e) return e;
    ssize_t n = readlink("/proc/self/exe", path, sizeof path - 16);
    if (n <= 0) return "ferry";
    path[n] = 0;
    char *slash = strrchr(path, '/');      /* .../BUILD/tests/test-gw */
    if (slash) *slash = 0;
    slash = strrchr(path, '/');
    if (slash) strcpy(slash, "/ferry");
    setenv("FERRY_BIN", path, 1);
    return path;
}

void gwt_child_init(void)
{
    pid_t parent = getppid();
    /* the parent may have gone between these two calls: then go too */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent) _exit(127);
}

pid_t gwt_spawn(const char *const argv[], int quiet)
{
    pid_t pid = fork();
    if (pid == 0) {
        gwt_child_init();
        if (quiet) {
            int dn = open("/dev/null", O_WRONLY);
            dup2(dn, 1);
            dup2(dn, 2);
        }
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    return pid;
}

void gwt_kill(pid_t *pid, int sig)
{
    if (*pid <= 0) return;
    kill(*pid, sig);
    waitpid(*pid, NULL, 0);
    *pid = 0;
}

pid_t gwt_emulate(const char *profile, const char *portfile, int *port, const char *opt,
                  const char *val)
{
    unlink(portfile);
    const char *argv[] = {gwt_ferry_bin(), "emulate", "--profile", profile, "--time-scale",
                          "0.01", "--port-file", portfile, opt, val, NULL};
    pid_t pid = gwt_spawn(argv, 1);
    *port = 0;
    for (int i = 0; i < 500 && *port <= 0; i++) {
        FILE *f = fopen(portfile, "r");
        if (f) {
            if (fscanf(f, "%d", port) != 1) *port = 0;
            fclose(f);
        }
        if (*port <= 0) usleep(10000);
    }
    return pid;
}

int gwt_gw_start(struct gwt_gw *g, const char *name, const char *cfg, const char *opt,
                 const char *val)
{
    g->pid = 0;
    g->port = 0;
    snprintf(g->cfg_path, sizeof g->cfg_path, "%s", test_tmp_path(name));
    FILE *f = fopen(g->cfg_path, "w");
    if (!f) return -1;
    fputs(cfg, f);
    fclose(f);
    int pfd[2];
    if (pipe(pfd)) return -1;
    g->pid = fork();
    if (g->pid == 0) {
        gwt_child_init();
        dup2(pfd[1], 1);
        close(pfd[0]);
        close(pfd[1]);
        execl(gwt_ferry_bin(), "ferry", "serve", "-c", g->cfg_path, opt, val, (char *)NULL);
        _exit(127);
    }
    close(pfd[1]);
    /* the first line of its stdout, bounded in bytes and in idle time */
    char line[512];
    size_t k = 0;
    for (int idle = 0; idle < GWT_WAIT_MS / 100 && k < sizeof line - 1;) {
        struct pollfd p = {pfd[0], POLLIN, 0};
        if (poll(&p, 1, 100) <= 0) {
            idle++;
            continue;
        }
        if (read(pfd[0], line + k, 1) <= 0 || line[k] == '\n') break;
        k++;
    }
    line[k] = 0;
    close(pfd[0]);
    const char *p = strstr(line, "http://127.0.0.1:");
    g->port = p ? atoi(p + 17) : 0;
    if (g->port <= 0) {
        fprintf(stderr, "  gateway did not start: '%s'\n", line);
        gwt_kill(&g->pid, SIGKILL);
        return -1;
    }
    return 0;
}

int gwt_gw_stop(struct gwt_gw *g)
{
    if (g->pid <= 0) return -1;
    kill(g->pid, SIGTERM);
    int st = 0;
    double t0 = clock_now_ms();
    while (waitpid(g->pid, &st, WNOHANG) == 0) {
        if (clock_now_ms() - t0 > GWT_WAIT_MS) {
            fprintf(stderr, "  gateway did not stop within %d ms of SIGTERM\n", GWT_WAIT_MS);
            gwt_kill(&g->pid, SIGKILL);
            return -1;
        }
        usleep(10000);
    }
    g->pid = 0;
    int rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    /* a gateway stopped by SIGTERM drains and exits 0; anything else is a bug of its own
     * (under ASan, a leak found at exit: LeakSanitizer's exit status) */
    if (rc != 0)
        test_fail(__FILE__, __LINE__, "gateway %s exited with status %d after SIGTERM",
                  g->cfg_path, WIFEXITED(st) ? rc : -WTERMSIG(st));
    return rc;
}

/* ==== servers inside the test process ============================================= */

void *gwt_loop(void *base)
{
    event_base_loop(base, EVLOOP_NO_EXIT_ON_EMPTY);
    return NULL;
}

int gwt_sock_port(int fd)
{
    struct sockaddr_in sa;
    socklen_t sl = sizeof sa;
    if (getsockname(fd, (struct sockaddr *)&sa, &sl) || sa.sin_family != AF_INET) return -1;
    return ntohs(sa.sin_port);
}

void gwt_emu_opts(struct emu_opts *o, const char *model, double time_scale, double capability)
{
    emu_opts_default(o);
    snprintf(o->prof.model, sizeof o->prof.model, "%s", model);
    o->time_scale = time_scale;
    o->capability = capability;
}

int gwt_emu_fault(struct emu_opts *o, enum emu_fault_kind kind, const char *value)
{
    char err[256];
    if (emu_fault_parse(kind, value, &o->faults, err, sizeof err) == 0) return 0;
    fprintf(stderr, "  fault: %s\n", err);
    return -1;
}

int gwt_emu_start(struct gwt_emu *e, const struct emu_opts *o)
{
    char err[256] = "no event base";
    memset(e, 0, sizeof *e);
    e->base = event_base_new();
    e->s = e->base ? emu_server_new(e->base, o, err, sizeof err) : NULL;
    if (!e->s) {
        fprintf(stderr, "  emulator: %s\n", err);
        goto fail;
    }
    e->port = emu_server_port(e->s);
    if (pthread_create(&e->th, NULL, gwt_loop, e->base)) {
        fprintf(stderr, "  emulator: no thread\n");
        goto fail;
    }
    return 0;
fail:
    emu_server_free(e->s);
    if (e->base) event_base_free(e->base);
    memset(e, 0, sizeof *e);
    return -1;
}

void gwt_emu_stop(struct gwt_emu *e)
{
    if (!e->base) return;
    if (!e->held) {
        event_base_loopexit(e->base, NULL);
        pthread_join(e->th, NULL);
    }
    emu_server_free(e->s);
    event_base_free(e->base);
    e->base = NULL;
}

int gwt_emu_pause(struct gwt_emu *e)
{
    if (!e->base || e->held) return -1;
    event_base_loopexit(e->base, NULL);
    pthread_join(e->th, NULL);
    e->held = 1;
    return 0;
}

int gwt_emu_resume(struct gwt_emu *e)
{
    if (!e->base || !e->held) return -1;
    if (pthread_create(&e->th, NULL, gwt_loop, e->base)) {
        fprintf(stderr, "  emulator: no thread to resume it on\n");
        return -1;
    }
    e->held = 0;
    return 0;
}

/* ==== HTTP client ================================================================== */

static size_t gwt_append(char *p, size_t s, size_t n, void *a)
{
    return buf_append(a, p, s * n) == 0 ? s * n : 0;
}

int gwt_http_opts(int port, const char *path, const char *body, const struct gwt_http_opts *o,
                  struct gwt_resp *r)
{
    memset(r, 0, sizeof *r);
    buf_init(&r->body);
    buf_init(&r->hdrs);
    CURLcode rc = CURLE_FAILED_INIT;
    CURL *e = curl_easy_init();
    if (e) {
        char url[256];
        snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
        struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
        if (o && o->header) h = curl_slist_append(h, o->header);
        curl_easy_setopt(e, CURLOPT_URL, url);
        if (o && o->method) curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, o->method);
        if (body) curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, gwt_append);
        curl_easy_setopt(e, CURLOPT_WRITEDATA, &r->body);
        curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, gwt_append);
        curl_easy_setopt(e, CURLOPT_HEADERDATA, &r->hdrs);
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, o && o->timeout_ms > 0 ? o->timeout_ms : 30000L);
        rc = curl_easy_perform(e);
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &r->status);
        curl_slist_free_all(h);
        curl_easy_cleanup(e);
    }
    if (!r->body.data) buf_puts(&r->body, "");
    if (!r->hdrs.data) buf_puts(&r->hdrs, "");
    return rc == CURLE_OK ? 0 : -1;
}

int gwt_http(int port, const char *path, const char *body, struct gwt_resp *r)
{
    return gwt_http_opts(port, path, body, NULL, r);
}

long gwt_http_status(int port, const char *path, const char *body, struct buf *out,
                     struct buf *hdrs)
{
    struct gwt_resp r;
    long status = gwt_http(port, path, body, &r) == 0 ? r.status : 0;
    if (out) buf_append(out, r.body.data, r.body.len);
    if (hdrs) buf_append(hdrs, r.hdrs.data, r.hdrs.len);
    gwt_resp_fini(&r);
    return status;
}

void gwt_resp_fini(struct gwt_resp *r)
{
    buf_fini(&r->body);
    buf_fini(&r->hdrs);
}

const char *gwt_hdr_in(const char *hdrs, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    out[0] = 0;
    for (const char *p = hdrs; p && *p;) {
        const char *eol = strchr(p, '\n');
        if (!strncasecmp(p, name, nl) && p[nl] == ':') {
            const char *v = p + nl + 1;
            while (*v == ' ') v++;
            size_t k = strcspn(v, "\r\n");
            if (k >= cap) k = cap - 1;
            memcpy(out, v, k);
            out[k] = 0;
            return out;
        }
        if (!eol) break;
        p = eol + 1;
    }
    return out;
}

const char *gwt_hdr(const struct gwt_resp *r, const char *name, char *out, size_t cap)
{
    return gwt_hdr_in(r->hdrs.data, name, out, cap);
}

/* ==== raw sockets ================================================================== */

int gwt_connect(int port, int rcvbuf)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    if (rcvbuf > 0) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa)) {
        close(fd);
        return -1;
    }
    return fd;
}

int gwt_send_all(int fd, const char *text)
{
    size_t n = strlen(text);
    while (n) {
        ssize_t w = write(fd, text, n);
        if (w <= 0) return -1;
        text += w;
        n -= (size_t)w;
    }
    return 0;
}

int gwt_read_until(int fd, struct buf *out, const char *want, int *eof)
{
    if (eof) *eof = 0;
    for (;;) {
        if (want && out->data && strstr(out->data, want)) return 1;
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 5000) <= 0) return 0;
        char b[4096];
        ssize_t n = read(fd, b, sizeof b);
        if (n <= 0) {
            if (eof) *eof = 1;
            return want ? (out->data && strstr(out->data, want) != NULL) : 1;
        }
        buf_append(out, b, (size_t)n);
    }
}

int gwt_raw_post(int fd, const char *body, int close_after)
{
    char head[512];
    snprintf(head, sizeof head,
             "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: "
             "application/json\r\n%sContent-Length: %zu\r\n\r\n",
             close_after ? "Connection: close\r\n" : "", strlen(body));
    return gwt_send_all(fd, head) || gwt_send_all(fd, body) ? -1 : 0;
}

/* ==== /metrics and /v1/ferry/nodes ================================================= */

double gwt_metric_in(const char *text, const char *sample)
{
    size_t sl = strlen(sample);
    while (sl && sample[sl - 1] == ' ') sl--;      /* "name{labels} " names the same line */
    if (!sl) return -1;
    for (const char *p = text; p && *p; p++) {
        if (!strncmp(p, sample, sl) && p[sl] == ' ') return strtod(p + sl + 1, NULL);
        p = strchr(p, '\n');
        if (!p) break;
    }
    return -1;
}

double gwt_metric(int port, const char *sample)
{
    struct gwt_resp r;
    double v = gwt_http(port, "/metrics", NULL, &r) == 0 ? gwt_metric_in(r.body.data, sample) : -1;
    gwt_resp_fini(&r);
    return v;
}

double gwt_node_num(int port, const char *node, const char *key)
{
    struct gwt_resp r;
    double v = -1;
    if (gwt_http(port, "/v1/ferry/nodes", NULL, &r) == 0 && r.status == 200) {
        cJSON *root = cJSON_Parse(r.body.data);
        int pred_only = !strncmp(key, "predictor.", 10);
        const char *k = pred_only ? key + 10 : key;
        cJSON *n;
        cJSON_ArrayForEach(n, cJSON_GetObjectItem(root, "nodes"))
        {
            cJSON *nm = cJSON_GetObjectItem(n, "name");
            if (!cJSON_IsString(nm) || strcmp(nm->valuestring, node)) continue;
            cJSON *x = pred_only ? NULL : cJSON_GetObjectItem(n, k);
            if (!x) x = cJSON_GetObjectItem(cJSON_GetObjectItem(n, "predictor"), k);
            if (cJSON_IsNumber(x)) v = x->valuedouble;
        }
        cJSON_Delete(root);
    }
    gwt_resp_fini(&r);
    return v;
}

double gwt_wait_for(double (*f)(int port, const char *name), int port, const char *name,
                    double want)
{
    double v = -1;
    for (int i = 0; i < 200; i++) {
        v = f(port, name);
        if (v == want) break;
        usleep(50000);
    }
    return v;
}

int gwt_promtool(const char *text, size_t len, const char *file)
{
    const char *path = test_tmp_path(file);
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    fwrite(text, 1, len, f);
    fclose(f);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "promtool check metrics < '%s'", path);
    int st = system(cmd);
    return st != -1 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}
