/* reply — incremental reader of chat-completions responses (reply.h). */
#include "emu/reply.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "util/clock.h"

void emu_reply_init(struct emu_reply *r)
{
    memset(r, 0, sizeof *r);
    buf_init(&r->raw);
    buf_init(&r->content);
}

void emu_reply_fini(struct emu_reply *r)
{
    buf_fini(&r->raw);
    buf_fini(&r->content);
}

/* Takes content, finish_reason and usage from one chunk or completion object. */
static void take(struct emu_reply *r, const cJSON *j, const char *msg_key)
{
    const cJSON *ch = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "choices"), 0);
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(ch, msg_key);
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(d, "content");
    if (cJSON_IsString(c) && c->valuestring[0]) {
        if (r->t_first <= 0) r->t_first = clock_now_ms();
        buf_puts(&r->content, c->valuestring);
    }
    const cJSON *fr = cJSON_GetObjectItemCaseSensitive(ch, "finish_reason");
    if (cJSON_IsString(fr)) {
        strncpy(r->finish, fr->valuestring, sizeof r->finish - 1);
        r->finish[sizeof r->finish - 1] = 0;
    }
    const cJSON *u = cJSON_GetObjectItemCaseSensitive(j, "usage");
    if (cJSON_IsObject(u)) {
        const cJSON *pt = cJSON_GetObjectItemCaseSensitive(u, "prompt_tokens");
        const cJSON *ct = cJSON_GetObjectItemCaseSensitive(u, "completion_tokens");
        if (cJSON_IsNumber(pt)) r->prompt_tokens = pt->valueint;
        if (cJSON_IsNumber(ct)) r->completion_tokens = ct->valueint;
        r->usage = 1;
    }
}

int emu_reply_feed(struct emu_reply *r, const char *p, size_t n)
{
    if (r->raw.len + n > EMU_REPLY_MAX) {
        r->too_big = 1;
        return -1;
    }
    if (buf_append(&r->raw, p, n) < 0) return -1;
    for (;;) {
        const char *start = r->raw.data + r->parsed;
        const char *nl = memchr(start, '\n', r->raw.len - r->parsed);
        if (!nl) return 0;
        size_t len = (size_t)(nl - start);
        r->parsed += len + 1;
        if (len && start[len - 1] == '\r') len--;
        if (len < 5 || strncmp(start, "data:", 5)) continue;
        r->sse = 1;
        const char *q = start + 5;
        size_t m = len - 5;
        while (m && *q == ' ') { q++; m--; }
        if (m == 6 && !strncmp(q, "[DONE]", 6)) {
            r->done = 1;
            continue;
        }
        cJSON *j = cJSON_ParseWithLength(q, m);
        if (j) take(r, j, "delta");
        cJSON_Delete(j);
    }
}

void emu_reply_end(struct emu_reply *r)
{
    if (r->sse || !r->raw.len) return;
    cJSON *j = cJSON_ParseWithLength(r->raw.data, r->raw.len);
    if (j) {
        take(r, j, "message");
        r->done = cJSON_GetObjectItemCaseSensitive(j, "choices") != NULL;
    }
    cJSON_Delete(j);
}

static size_t post_on_body(char *p, size_t sz, size_t n, void *arg)
{
    return emu_reply_feed(arg, p, sz * n) < 0 ? 0 : sz * n;
}

int emu_post_init(struct emu_post *p, const char *url, char *body, long timeout_ms, void *priv)
{
    memset(p, 0, sizeof *p);
    emu_reply_init(&p->rep);
    p->body = body;
    p->e = curl_easy_init();
    p->hdr = curl_slist_append(NULL, "Content-Type: application/json");
    if (!body || !p->e || !p->hdr) return -1;
    curl_easy_setopt(p->e, CURLOPT_URL, url);
    curl_easy_setopt(p->e, CURLOPT_HTTPHEADER, p->hdr);
    curl_easy_setopt(p->e, CURLOPT_POSTFIELDS, p->body);
    curl_easy_setopt(p->e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(p->body));
    curl_easy_setopt(p->e, CURLOPT_WRITEFUNCTION, post_on_body);
    curl_easy_setopt(p->e, CURLOPT_WRITEDATA, &p->rep);
    curl_easy_setopt(p->e, CURLOPT_PRIVATE, priv);
    curl_easy_setopt(p->e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(p->e, CURLOPT_TIMEOUT_MS, timeout_ms);
    return 0;
}

int emu_post_done(struct emu_post *p, CURLcode cc, char *why, size_t cap)
{
    long status = 0;
    curl_easy_getinfo(p->e, CURLINFO_RESPONSE_CODE, &status);
    emu_reply_end(&p->rep);
    if (cc != CURLE_OK) snprintf(why, cap, "%s", curl_easy_strerror(cc));
    else if (status != 200) snprintf(why, cap, "HTTP %ld", status);
    else if (!p->rep.done) snprintf(why, cap, "a reply without an answer (or a stream without [DONE])");
    else return 1;
    return 0;
}

void emu_post_fini(struct emu_post *p)
{
    if (p->e) curl_easy_cleanup(p->e);
    curl_slist_free_all(p->hdr);
    free(p->body);
    emu_reply_fini(&p->rep);
    memset(p, 0, sizeof *p);
}

void *emu_post_next_done(CURLM *multi, CURLcode *cc)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(multi, &left))) {
        if (msg->msg != CURLMSG_DONE) continue;
        void *priv = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&priv);
        *cc = msg->data.result;
        curl_multi_remove_handle(multi, msg->easy_handle);
        return priv;
    }
    return NULL;
}
