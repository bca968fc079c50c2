/* gw/upstream — libcurl's multi interface driven by the gateway's libevent loop.
 *
 * curl tells us which sockets to watch (CURLMOPT_SOCKETFUNCTION) and when to wake up
 * (CURLMOPT_TIMERFUNCTION); each watched socket gets one libevent event (event_assign
 * into a small per-socket record) and the timer is one evtimer. No thread, no poll loop:
 * every transfer progresses from libevent callbacks, so thousands of upstream streams
 * share the loop that serves the clients.
 *
 * A transfer is a CURL easy handle whose CURLOPT_PRIVATE points to a struct gw_xfer
 * (usually embedded in a larger per-request object). When curl reports it finished,
 * gw_xfer.done is called once, from the loop; the callee removes the handle
 * (gw_up_remove) and may free everything. */
#ifndef FERRY_GW_UPSTREAM_H
#define FERRY_GW_UPSTREAM_H
#include <curl/curl.h>

struct event_base;
struct gw_up;

struct gw_xfer {
    CURL *easy;
    /* called once when the transfer ended; rc = CURLE_OK or the curl error */
    void (*done)(struct gw_xfer *x, CURLcode rc);
};

/* A multi handle on base. NULL on allocation failure. */
struct gw_up *gw_up_new(struct event_base *base);
/* Removes and cleans up nothing it does not own: call after every transfer ended or was
 * removed. NULL is a no-op. */
void gw_up_free(struct gw_up *u);
/* Starts x->easy (CURLOPT_PRIVATE is set to x). 0 or -1. */
int gw_up_add(struct gw_up *u, struct gw_xfer *x);
/* Stops a transfer before it finished (client gone, timeout): done is NOT called.
 * Safe to call from any callback except curl's own write/header callbacks. */
void gw_up_remove(struct gw_up *u, struct gw_xfer *x);
/* Transfers currently added. */
int gw_up_active(const struct gw_up *u);
/* Lets curl make progress now (after curl_easy_pause(CURLPAUSE_CONT)). */
void gw_up_kick(struct gw_up *u);

#endif
