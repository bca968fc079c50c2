/* dataset — labelled JSONL datasets and their requests (dataset.h). */
#include "emu/dataset.h"

#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "feat/image.h"
#include "pred/trace.h"
#include "util/b64.h"
#include "util/buf.h"
#include "util/file.h"
#include "util/grow.h"


void emu_item_fini(struct emu_item *it)
{
    free(it->prompt);
    for (int i = 0; i < it->nrefs; i++) free(it->refs[i]);
    for (int i = 0; i < it->nchoices; i++) free(it->choices[i]);
    for (int i = 0; i < it->nimages; i++) free(it->images[i]);
    memset(it, 0, sizeof *it);
}

static int file_exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* Resolves an image path: as is when absolute, else against the dataset's folder, then
 * against base. Returns a malloc'd path or NULL when the file exists nowhere. */
static char *resolve_image(const char *p, const char *dsdir, const char *base)
{
    char buf[4096];
    if (p[0] == '/') return file_exists(p) ? strdup(p) : NULL;
    snprintf(buf, sizeof buf, "%s/%s", dsdir, p);
    if (file_exists(buf)) return strdup(buf);
    snprintf(buf, sizeof buf, "%s/%s", base, p);
    if (file_exists(buf)) return strdup(buf);
    return NULL;
}

/* Reads an array of strings (or one string) into dst; -1 with err. */
static int get_strings(const cJSON *o, const char *key, char **dst, int *n, const char *where,
                       char *err, size_t errlen)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    *n = 0;
    if (!v) return 0;
    if (cJSON_IsString(v)) {
        dst[(*n)++] = strdup(v->valuestring);
        return dst[0] ? 0 : -1;
    }
    if (!cJSON_IsArray(v)) {
        snprintf(err, errlen, "%s: \"%s\": expected a string or an array of strings", where, key);
        return -1;
    }
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, v) {
        if (!cJSON_IsString(e)) {
            snprintf(err, errlen, "%s: \"%s\"[%d]: expected a string", where, key, i);
            return -1;
        }
        if (*n >= EMU_MAX_REFS) {
            snprintf(err, errlen, "%s: \"%s\": more than %d entries", where, key, EMU_MAX_REFS);
            return -1;
        }
        if (!(dst[(*n)++] = strdup(e->valuestring))) return -1;
        i++;
    }
    return 0;
}

int emu_item_parse(const char *line, size_t len, const char *where, const char *dsdir,
                      const char *base, struct emu_item *it, char *err, size_t errlen)
{
    memset(it, 0, sizeof *it);
    it->difficulty = -1;
    it->max_tokens = EMU_DEFAULT_MAX_TOKENS;
    cJSON *o = cJSON_ParseWithLength(line, len);
    if (!cJSON_IsObject(o)) {
        snprintf(err, errlen, "%s: not a JSON object", where);
        cJSON_Delete(o);
        return -1;
    }
    int rc = -1;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "id");
    if (!cJSON_IsString(v) || !v->valuestring[0] || strlen(v->valuestring) >= sizeof it->id) {
        snprintf(err, errlen, "%s: \"id\": expected a non-empty string of < %zu bytes", where,
                 sizeof it->id);
        goto out;
    }
    snprintf(it->id, sizeof it->id, "%s", v->valuestring);
    v = cJSON_GetObjectItemCaseSensitive(o, "dataset");
    if (cJSON_IsString(v)) snprintf(it->dataset, sizeof it->dataset, "%s", v->valuestring);
    v = cJSON_GetObjectItemCaseSensitive(o, "skill");
    if (cJSON_IsString(v)) snprintf(it->skill, sizeof it->skill, "%s", v->valuestring);
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(o, "question");
    if (!cJSON_IsString(q) || !q->valuestring[0]) {
        snprintf(err, errlen, "%s: \"question\": expected a non-empty string", where);
        goto out;
    }
    if (get_strings(o, "answers", it->refs, &it->nrefs, where, err, errlen) < 0) goto out;
    if (!it->nrefs && get_strings(o, "answer", it->refs, &it->nrefs, where, err, errlen) < 0)
        goto out;
    if (!it->nrefs) {
        snprintf(err, errlen, "%s: \"answers\": at least one reference answer is required", where);
        goto out;
    }
    if (get_strings(o, "choices", it->choices, &it->nchoices, where, err, errlen) < 0) goto out;
    if (it->nchoices > 8) {
        snprintf(err, errlen, "%s: \"choices\": at most 8 (letters A..H)", where);
        goto out;
    }
    v = cJSON_GetObjectItemCaseSensitive(o, "kind");
    if (v) {
        int k = cJSON_IsString(v) ? emu_score_kind_parse(v->valuestring) : -1;
        if (k < 0) {
            snprintf(err, errlen, "%s: \"kind\": expected vqa, mcq, exact or contains", where);
            goto out;
        }
        it->kind = (enum emu_score_kind)k;
    } else {
        it->kind = it->nchoices ? EMU_SCORE_MCQ : it->nrefs >= 3 ? EMU_SCORE_VQA
                                                                 : EMU_SCORE_CONTAINS;
    }
    v = cJSON_GetObjectItemCaseSensitive(o, "task");
    it->task = it->kind == EMU_SCORE_MCQ ? FY_TASK_MCQ : FY_TASK_CHAT;
    if (v && (!cJSON_IsString(v) || trace_task_parse(v->valuestring, &it->task) < 0)) {
        snprintf(err, errlen, "%s: \"task\": unknown task name", where);
        goto out;
    }
    it->task_given = v != NULL || it->kind == EMU_SCORE_MCQ;
    v = cJSON_GetObjectItemCaseSensitive(o, "difficulty");
    if (v) {
        if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0 && v->valuedouble <= 1)) {
            snprintf(err, errlen, "%s: \"difficulty\": expected a number in [0, 1]", where);
            goto out;
        }
        it->difficulty = v->valuedouble;
    }
    v = cJSON_GetObjectItemCaseSensitive(o, "max_tokens");
    if (v) {
        if (!cJSON_IsNumber(v) || v->valuedouble < 1 || v->valuedouble > 32768) {
            snprintf(err, errlen, "%s: \"max_tokens\": expected an integer in 1..32768", where);
            goto out;
        }
        it->max_tokens = (int)v->valuedouble;
    }
    v = cJSON_GetObjectItemCaseSensitive(o, "images");
    if (v) {
        if (!cJSON_IsArray(v)) {
            snprintf(err, errlen, "%s: \"images\": expected an array of paths", where);
            goto out;
        }
        const cJSON *e;
        cJSON_ArrayForEach(e, v) {
            if (!cJSON_IsString(e)) {
                snprintf(err, errlen, "%s: \"images\"[%d]: expected a path", where, it->nimages);
                goto out;
            }
            if (it->nimages >= FY_MAX_IMAGES) {
                snprintf(err, errlen, "%s: \"images\": more than %d", where, FY_MAX_IMAGES);
                goto out;
            }
            char *p = resolve_image(e->valuestring, dsdir, base);
            if (!p) {
                snprintf(err, errlen, "%s: \"images\"[%d]: %s: not found (looked in %s and %s)",
                         where, it->nimages, e->valuestring, dsdir, base);
                goto out;
            }
            it->images[it->nimages++] = p;
        }
    }
    /* the prompt: the question, then the choices one per line */
    struct buf b;
    buf_init(&b);
    buf_puts(&b, q->valuestring);
    if (it->nchoices) {
        for (int i = 0; i < it->nchoices; i++) {
            const char *c = it->choices[i];
            int labelled = isalpha((unsigned char)c[0]) && (c[1] == '.' || c[1] == ')');
            if (labelled) buf_printf(&b, "\n%s", c);
            else buf_printf(&b, "\n%c. %s", 'A' + i, c);
        }
        buf_puts(&b, "\nAnswer with the option's letter.");
    }
    it->prompt = buf_steal(&b);
    rc = 0;
out:
    cJSON_Delete(o);
    if (rc < 0) emu_item_fini(it);
    return rc;
}

/* Reads the whole dataset; -1 with "path:line: what". */
int emu_dataset_load(const char *path, const char *base, struct emu_item **out, int *n,
                        char *err, size_t errlen)
{
    FILE *fp = fopen(path, "r");
    if (!fp) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    char dsdir[2048];
    snprintf(dsdir, sizeof dsdir, "%s", path);
    char *slash = strrchr(dsdir, '/');
    if (slash) *slash = 0;
    else snprintf(dsdir, sizeof dsdir, ".");
    struct emu_item *items = NULL;
    int cnt = 0, rc = -1, lineno = 0;
    size_t cap = 0;
    char *line = malloc(EMU_DATASET_MAX_LINE + 2);
    if (!line) goto out;
    while (fgets(line, EMU_DATASET_MAX_LINE + 2, fp)) {
        lineno++;
        size_t len = strlen(line);
        char where[2200];
        snprintf(where, sizeof where, "%s:%d", path, lineno);
        if (len > EMU_DATASET_MAX_LINE) {
            snprintf(err, errlen, "%s: line longer than %u bytes", where, EMU_DATASET_MAX_LINE);
            goto out;
        }
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
        size_t k = 0;
        while (k < len && isspace((unsigned char)line[k])) k++;
        if (k == len || line[k] == '#') continue;
        if (cnt >= EMU_DATASET_MAX_ITEMS) {
            snprintf(err, errlen, "%s: more than %d items", path, EMU_DATASET_MAX_ITEMS);
            goto out;
        }
        struct emu_item *ni = util_grow(items, &cap, (size_t)cnt, sizeof *ni, 64);
        if (!ni) {
            snprintf(err, errlen, "out of memory");
            goto out;
        }
        items = ni;
        if (emu_item_parse(line + k, len - k, where, dsdir, base, &items[cnt], err, errlen) < 0)
            goto out;
        for (int i = 0; i < cnt; i++)
            if (!strcmp(items[i].id, items[cnt].id)) {
                snprintf(err, errlen, "%s: duplicate id \"%s\"", where, items[cnt].id);
                emu_item_fini(&items[cnt]);
                goto out;
            }
        cnt++;
    }
    if (ferror(fp)) {
        snprintf(err, errlen, "%s: read error", path);
        goto out;
    }
    rc = 0;
out:
    free(line);
    fclose(fp);
    if (rc < 0) {
        for (int i = 0; i < cnt; i++) emu_item_fini(&items[i]);
        free(items);
        return -1;
    }
    *out = items;
    *n = cnt;
    return 0;
}

/* ==== requests ======================================================================== */

const char *emu_mime_of(enum fy_img_format f)
{
    return f == FY_FMT_JPEG ? "image/jpeg" : f == FY_FMT_PNG ? "image/png"
         : f == FY_FMT_WEBP ? "image/webp" : "application/octet-stream";
}

int emu_item_image_urls(const struct emu_item *it, char ***urls, int *sides, size_t *bytes,
                        char *err, size_t errlen)
{
    char **u = calloc((size_t)it->nimages + 1, sizeof *u);
    *urls = NULL;
    *bytes = 0;
    if (!u) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (int i = 0; i < it->nimages; i++) {
        uint8_t *data = NULL;
        size_t n = 0;
        enum fy_img_format fmt;
        int w, h;
        char ierr[256];
        if (util_read_file(it->images[i], EMU_MAX_IMAGE_BYTES, &data, &n, ierr, sizeof ierr) < 0 ||
            feat_image_probe(data, n, &fmt, &w, &h, ierr, sizeof ierr) < 0) {
            snprintf(err, errlen, "item %s: %s: %s", it->id, it->images[i], ierr);
            free(data);
            emu_item_urls_free(u, i);
            return -1;
        }
        if (sides) sides[i] = w > h ? w : h;
        const char *mime = emu_mime_of(fmt);
        size_t need = strlen("data:;base64,") + strlen(mime) + b64_encoded_len(n, 1) + 1;
        u[i] = malloc(need);
        if (!u[i]) {
            free(data);
            emu_item_urls_free(u, i);
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        int k = snprintf(u[i], need, "data:%s;base64,", mime);
        b64_encode(data, n, B64_STD, 1, u[i] + k);
        *bytes += n;
        free(data);
    }
    *urls = u;
    return 0;
}

void emu_item_urls_free(char **urls, int n)
{
    if (!urls) return;
    for (int i = 0; i < n; i++) free(urls[i]);
    free(urls);
}

void emu_dataset_free(struct emu_item *items, int n)
{
    for (int i = 0; i < n; i++) emu_item_fini(&items[i]);
    free(items);
}

cJSON *emu_user_message(char *const *urls, int nurls, const char *text)
{
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "role", "user");
    cJSON *content = cJSON_AddArrayToObject(m, "content");
    for (int i = 0; i < nurls; i++) {
        cJSON *part = cJSON_CreateObject();
        cJSON_AddStringToObject(part, "type", "image_url");
        cJSON_AddStringToObject(cJSON_AddObjectToObject(part, "image_url"), "url", urls[i]);
        cJSON_AddItemToArray(content, part);
    }
    cJSON *tp = cJSON_CreateObject();
    cJSON_AddStringToObject(tp, "type", "text");
    cJSON_AddStringToObject(tp, "text", text);
    cJSON_AddItemToArray(content, tp);
    return m;
}

void emu_metadata_images(cJSON *md, const int *sides, int n)
{
    cJSON_AddNumberToObject(md, "images", n);
    if (sides && n) {
        cJSON *arr = cJSON_AddArrayToObject(md, "image_sides");
        for (int i = 0; i < n; i++) cJSON_AddItemToArray(arr, cJSON_CreateNumber(sides[i]));
    }
}

char *emu_item_body(const struct emu_item *it, char *const *urls, int nurls, const int *sides,
                    const char *model, int send_metadata)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "model", model);
    cJSON_AddBoolToObject(root, "stream", 1);
    cJSON_AddBoolToObject(cJSON_AddObjectToObject(root, "stream_options"), "include_usage", 1);
    cJSON_AddNumberToObject(root, "max_tokens", it->max_tokens);
    cJSON_AddNumberToObject(root, "temperature", 0);
    cJSON *msgs = cJSON_AddArrayToObject(root, "messages");
    cJSON_AddItemToArray(msgs, emu_user_message(urls, nurls, it->prompt));
    if (send_metadata) {
        cJSON *md = cJSON_AddObjectToObject(root, "metadata");
        cJSON_AddStringToObject(md, "answer", it->refs[0]);
        if (it->difficulty >= 0) cJSON_AddNumberToObject(md, "difficulty", it->difficulty);
        if (it->skill[0]) cJSON_AddStringToObject(md, "skill", it->skill);
        emu_metadata_images(md, sides, it->nimages);
    }
    char *txt = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return txt;
}

