/* gw/workers — a small thread pool for the CPU work of a request (JSON parsing of large
 * bodies, image decoding, complexity features, downscaling) so the event loop never
 * blocks for milliseconds. A job runs work(arg) on a worker thread, then done(arg) on
 * the loop thread (the pool wakes the loop through a pipe). Jobs run in FIFO order. */
#ifndef FERRY_GW_WORKERS_H
#define FERRY_GW_WORKERS_H

struct event_base;
struct gw_pool;

typedef void (*gw_job_fn)(void *arg);

/* nthreads >= 1. NULL on failure. */
struct gw_pool *gw_pool_new(struct event_base *base, int nthreads);
/* 0, or -1 (out of memory / pool stopping). done runs on the loop, always, once. */
int gw_pool_submit(struct gw_pool *p, gw_job_fn work, gw_job_fn done, void *arg);
/* Jobs queued or running (loop thread). */
int gw_pool_pending(const struct gw_pool *p);
/* Joins the threads after finishing queued jobs; done callbacks of jobs that finished
 * after the loop stopped are run here. NULL is a no-op. */
void gw_pool_free(struct gw_pool *p);

#endif
