/* gw/upstream — curl multi on libevent (see upstream.h). The socket/timer glue follows
 * curl's documented multi_socket protocol: curl_multi_socket_action() is called from
 * libevent callbacks only, never from inside curl's own callbacks. */
#include "gw/upstream.h"

#include <event2/event.h>
#include <event2/event_struct.h>
#include <stdlib.h>

#include "util/log.h"

struct sockrec {
    struct event ev;            /* assigned with event_assign; watched while in use */
    int added;
    short kind;                 /* EV_READ/EV_WRITE it is added with */
};

struct gw_up {
    struct event_base *base;
    CURLM *multi;
    struct event *timer;        /* curl's single timeout */
    int active;                 /* easy handles added */
};

static void check_done(struct gw_up *u)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(u->multi, &left))) {
        if (m->msg != CURLMSG_DONE) continue;
        CURL *e = m->easy_handle;
        CURLcode rc = m->data.result;
        struct gw_xfer *x = NULL;
        curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&x);
        if (x && x->done) x->done(x, rc);   /* the callee removes the handle */
        else {
            curl_multi_remove_handle(u->multi, e);
            u->active--;
        }
    }
}

static void on_sock(evutil_socket_t fd, short what, void *arg)
{
    struct gw_up *u = arg;
    int action = ((what & EV_READ) ? CURL_CSELECT_IN : 0) |
                 ((what & EV_WRITE) ? CURL_CSELECT_OUT : 0);
    int running = 0;
    curl_multi_socket_action(u->multi, fd, action, &running);
    check_done(u);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    struct gw_up *u = arg;
    int running = 0;
    curl_multi_socket_action(u->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(u);
}

/* CURLMOPT_SOCKETFUNCTION: watch or forget one socket. */
static int sock_cb(CURL *e, curl_socket_t s, int what, void *userp, void *socketp)
{
    (void)e;
    struct gw_up *u = userp;
    struct sockrec *r = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (r) {
            if (r->added) event_del(&r->ev);
            free(r);
            curl_multi_assign(u->multi, s, NULL);
        }
        return 0;
    }
    short kind = EV_PERSIST | ((what & CURL_POLL_IN) ? EV_READ : 0) |
                 ((what & CURL_POLL_OUT) ? EV_WRITE : 0);
    if (!r) {
        r = calloc(1, sizeof *r);
        if (!r) return -1;
        curl_multi_assign(u->multi, s, r);
    } else if (r->added) {
        if (r->kind == kind) return 0;       /* nothing changes: no epoll_ctl */
        event_del(&r->ev);
        r->added = 0;
    }
    event_assign(&r->ev, u->base, s, kind, on_sock, u);
    if (event_add(&r->ev, NULL) == 0) {
        r->added = 1;
        r->kind = kind;
    }
    return 0;
}

/* CURLMOPT_TIMERFUNCTION: (re)arm the one timer; -1 deletes it. */
static int timer_cb(CURLM *m, long timeout_ms, void *userp)
{
    (void)m;
    struct gw_up *u = userp;
    if (timeout_ms < 0) {
        evtimer_del(u->timer);
        return 0;
    }
    if (timeout_ms == 0) {
        /* "now": run in this loop turn instead of one more epoll_wait round trip */
        evtimer_del(u->timer);
        event_active(u->timer, EV_TIMEOUT, 1);
        return 0;
    }
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    evtimer_add(u->timer, &tv);
    return 0;
}

struct gw_up *gw_up_new(struct event_base *base)
{
    struct gw_up *u = calloc(1, sizeof *u);
    if (!u) return NULL;
    u->base = base;
    u->multi = curl_multi_init();
    u->timer = evtimer_new(base, on_timer, u);
    if (!u->multi || !u->timer) goto fail;
    curl_multi_setopt(u->multi, CURLMOPT_SOCKETFUNCTION, sock_cb);
    curl_multi_setopt(u->multi, CURLMOPT_SOCKETDATA, u);
    curl_multi_setopt(u->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(u->multi, CURLMOPT_TIMERDATA, u);
    curl_multi_setopt(u->multi, CURLMOPT_MAXCONNECTS, 256L);
    return u;
fail:
    gw_up_free(u);
    return NULL;
}

void gw_up_free(struct gw_up *u)
{
    if (!u) return;
    if (u->timer) event_free(u->timer);
    if (u->multi) curl_multi_cleanup(u->multi);
    free(u);
}

int gw_up_add(struct gw_up *u, struct gw_xfer *x)
{
    curl_easy_setopt(x->easy, CURLOPT_PRIVATE, (char *)x);
    if (curl_multi_add_handle(u->multi, x->easy) != CURLM_OK) return -1;
    u->active++;
    return 0;
}

void gw_up_remove(struct gw_up *u, struct gw_xfer *x)
{
    if (!x->easy) return;
    if (curl_multi_remove_handle(u->multi, x->easy) == CURLM_OK) u->active--;
}

int gw_up_active(const struct gw_up *u) { return u->active; }

void gw_up_kick(struct gw_up *u)
{
    struct timeval tv = {0, 0};
    evtimer_add(u->timer, &tv);
}
