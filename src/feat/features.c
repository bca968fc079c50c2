/* features — request → struct fy_features (contract in features.h). */
#include "feat/features.h"

#include <stdio.h>
#include <string.h>

#include "req/request.h"

void feat_request_text(const struct fy_request *r, const struct feat_text_params *tp,
                       struct fy_features *out)
{
    memset(out, 0, sizeof *out);
    int last = req_last_user(r);
    if (last < 0) last = r->nmessages - 1;
    struct feat_text_stats sum = {0};
    char task_buf[FEAT_TASK_SCAN];
    size_t task_len = 0;

    for (int m = 0; m < r->nmessages; m++) {
        const struct fy_message *msg = &r->messages[m];
        if (m < last && msg->role == FY_MSG_USER) out->turn++;
        for (int k = 0; k < msg->nparts; k++) {
            const struct fy_part *p = &r->parts[msg->first_part + k];
            if (p->kind != FY_PART_TEXT) {
                if (m < last) out->history_images++;
                continue;
            }
            if (m != last) {
                int t = feat_text_tokens(p->text, p->text_len);
                out->text_tokens += t;
                if (m < last) out->history_tokens += t;
                continue;
            }
            /* the current prompt: one pass gives its tokens and the rest */
            struct feat_text_stats st;
            feat_text_analyze(p->text, p->text_len, tp, &st, out->ngram);
            out->text_tokens += st.tokens;
            sum.tokens += st.tokens;
            sum.words += st.words;
            sum.sentences += st.sentences;
            sum.entities += st.entities;
            /* the task rules see the parts joined by line breaks */
            size_t room = sizeof task_buf - task_len;
            if (room > 1) {
                if (task_len) task_buf[task_len++] = '\n', room--;
                size_t c = p->text_len < room ? p->text_len : room;
                memcpy(task_buf + task_len, p->text, c);
                task_len += c;
            }
        }
    }
    feat_text_scores(&sum, tp);
    out->last_text_tokens = sum.tokens;
    out->sentences = sum.sentences;
    out->c_L = sum.c_L;
    out->c_ner = sum.c_ner;
    out->c_text = sum.c_text;
    out->task = feat_text_task(task_buf, task_len);
    feat_text_ngrams_normalize(out->ngram);
    out->max_out_tokens = r->max_tokens;

    out->nimages = r->nimages < FY_MAX_IMAGES ? r->nimages : FY_MAX_IMAGES;
    for (int i = 0; i < out->nimages; i++) {
        const struct fy_image_ref *im = &r->images[i];
        out->img[i].format = im->format;
        out->img[i].width = im->width;
        out->img[i].height = im->height;
        out->img[i].bytes = im->nbytes;
    }
}

int feat_request_ex(const struct fy_request *r, const struct feat_image_opts *o,
                    const struct feat_text_params *tp, struct fy_features *out, char *err,
                    size_t errlen)
{
    feat_request_text(r, tp, out);
    for (int i = 0; i < out->nimages; i++) {
        const struct fy_image_ref *im = &r->images[i];
        if (!im->is_data || !im->bytes) continue;
        char e[200];
        if (feat_image_analyze(im->bytes, im->nbytes, o, &out->img[i], e, sizeof e) < 0) {
            /* the JSON path of the image, as the request parser names its errors */
            const struct fy_message *msg = &r->messages[im->message];
            int k = 0;
            while (k < msg->nparts && r->parts[msg->first_part + k].image != i) k++;
            snprintf(err, errlen, "messages[%d].content[%d].image_url.url: %s", im->message, k,
                     e);
            return -1;
        }
    }
    return 0;
}

int feat_request(const struct fy_request *r, const struct feat_image_opts *o,
                 struct fy_features *out, char *err, size_t errlen)
{
    return feat_request_ex(r, o, NULL, out, err, errlen);
}
