/* gw/workers — pthread pool with a pipe back to the event loop (see workers.h). */
#include "gw/workers.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

struct job {
    gw_job_fn work, done;
    void *arg;
    struct job *next;
};

struct gw_pool {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct job *todo_head, *todo_tail;   /* waiting for a worker */
    struct job *done_head, *done_tail;   /* finished, waiting for the loop */
    int stopping;
    int nthreads;
    pthread_t *th;
    int pipefd[2];                       /* worker -> loop wake-up */
    struct event *ev;
    int pending;                         /* loop thread only */
};

static void push(struct job **h, struct job **t, struct job *j)
{
    j->next = NULL;
    if (*t) (*t)->next = j;
    else *h = j;
    *t = j;
}

static void *worker_main(void *arg)
{
    struct gw_pool *p = arg;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        while (!p->todo_head && !p->stopping) pthread_cond_wait(&p->cv, &p->mu);
        struct job *j = p->todo_head;
        if (!j) {
            pthread_mutex_unlock(&p->mu);
            return NULL;
        }
        p->todo_head = j->next;
        if (!p->todo_head) p->todo_tail = NULL;
        pthread_mutex_unlock(&p->mu);

        j->work(j->arg);

        pthread_mutex_lock(&p->mu);
        push(&p->done_head, &p->done_tail, j);
        pthread_mutex_unlock(&p->mu);
        char c = 1;
        ssize_t w;
        do w = write(p->pipefd[1], &c, 1);
        while (w < 0 && errno == EINTR); /* EAGAIN: the pipe is already full of wake-ups */
    }
}

static void run_done(struct gw_pool *p)
{
    pthread_mutex_lock(&p->mu);
    struct job *j = p->done_head;
    p->done_head = p->done_tail = NULL;
    pthread_mutex_unlock(&p->mu);
    while (j) {
        struct job *next = j->next;
        p->pending--;
        if (j->done) j->done(j->arg);
        free(j);
        j = next;
    }
}

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    char buf[256];
    while (read(fd, buf, sizeof buf) > 0) {}
    run_done(arg);
}

struct gw_pool *gw_pool_new(struct event_base *base, int nthreads)
{
    struct gw_pool *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->pipefd[0] = p->pipefd[1] = -1;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    if (pipe(p->pipefd)) goto fail;
    for (int i = 0; i < 2; i++) {
        fcntl(p->pipefd[i], F_SETFL, fcntl(p->pipefd[i], F_GETFL) | O_NONBLOCK);
        fcntl(p->pipefd[i], F_SETFD, FD_CLOEXEC);
    }
    p->ev = event_new(base, p->pipefd[0], EV_READ | EV_PERSIST, on_wake, p);
    if (!p->ev || event_add(p->ev, NULL)) goto fail;
    p->th = calloc((size_t)nthreads, sizeof *p->th);
    if (!p->th) goto fail;
    for (int i = 0; i < nthreads; i++) {
        if (pthread_create(&p->th[i], NULL, worker_main, p)) break;
        p->nthreads++;
    }
    if (p->nthreads == 0) goto fail;
    return p;
fail:
    gw_pool_free(p);
    return NULL;
}

int gw_pool_submit(struct gw_pool *p, gw_job_fn work, gw_job_fn done, void *arg)
{
    struct job *j = malloc(sizeof *j);
    if (!j) return -1;
    j->work = work;
    j->done = done;
    j->arg = arg;
    pthread_mutex_lock(&p->mu);
    if (p->stopping) {
        pthread_mutex_unlock(&p->mu);
        free(j);
        return -1;
    }
    push(&p->todo_head, &p->todo_tail, j);
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    p->pending++;
    return 0;
}

int gw_pool_pending(const struct gw_pool *p) { return p->pending; }

void gw_pool_free(struct gw_pool *p)
{
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->stopping = 1;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->nthreads; i++) pthread_join(p->th[i], NULL);
    run_done(p);
    free(p->th);
    if (p->ev) event_free(p->ev);
    for (int i = 0; i < 2; i++)
        if (p->pipefd[i] >= 0) close(p->pipefd[i]);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p);
}
