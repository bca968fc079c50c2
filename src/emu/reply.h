/* reply — incremental reader of an OpenAI chat-completions response, streamed (SSE
 * "data: {chunk}" lines, "data: [DONE]") or not (one chat.completion object): the
 * content, usage counts and the time of the first content byte; and the POST transfer
 * that reads one. Shared by `ferry bench collect` and `ferry bench load`. Bounded: at
 * most EMU_REPLY_MAX bytes are kept. */
#ifndef FERRY_EMU_REPLY_H
#define FERRY_EMU_REPLY_H
#include <stddef.h>

#include <curl/curl.h>

#include "util/buf.h"

#define EMU_REPLY_MAX (4u << 20) /* bytes of one response body */

struct emu_reply {
    struct buf raw;             /* response bytes */
    size_t parsed;              /* raw bytes consumed by the SSE line parser */
    struct buf content;         /* assistant text so far */
    int sse;                    /* saw at least one "data:" line */
    int done;                   /* saw "data: [DONE]" */
    int usage;                  /* usage counts seen */
    int prompt_tokens, completion_tokens;
    double t_first;             /* clock_now_ms() at the first non-empty content; 0 = none */
    char finish[16];            /* finish_reason, "" until seen */
    int too_big;                /* body exceeded EMU_REPLY_MAX */
};

void emu_reply_init(struct emu_reply *r);
void emu_reply_fini(struct emu_reply *r);
/* Feeds bytes as they arrive. 0, or -1 when the body is too big (stop the transfer). */
int emu_reply_feed(struct emu_reply *r, const char *p, size_t n);
/* At the end of the body: parses a non-streamed reply (no-op for SSE). */
void emu_reply_end(struct emu_reply *r);

/* One POST of a JSON body, its response read into rep; an easy handle for a curl multi. */
struct emu_post {
    CURL *e;
    struct curl_slist *hdr;     /* Content-Type: application/json; callers may append
                                 * (the head stays) before the transfer starts */
    char *body;                 /* owned; NUL-terminated */
    struct emu_reply rep;
};

/* Prepares p for url with body (taken over: freed by emu_post_fini, also when this
 * fails; NULL fails), timeout_ms per transfer, priv as the handle's CURLOPT_PRIVATE.
 * 0, or -1 (out of memory) with p to be emu_post_fini'd. */
int emu_post_init(struct emu_post *p, const char *url, char *body, long timeout_ms, void *priv);
/* After the transfer ended with cc: ends the reply (emu_reply_end) and returns 1 when
 * it succeeded (HTTP 200 and a complete answer), else 0 with the reason in why
 * ("Couldn't connect to server", "HTTP 503", ...). */
int emu_post_done(struct emu_post *p, CURLcode cc, char *why, size_t cap);
/* Frees the handle, headers, body and reply (not removing it from a multi). */
void emu_post_fini(struct emu_post *p);
/* The priv (emu_post_init's) of the next transfer on multi that has ended, removed from
 * multi, with its result in *cc; NULL when no other has ended yet. Call after
 * curl_multi_perform until NULL. */
void *emu_post_next_done(CURLM *multi, CURLcode *cc);

#endif
