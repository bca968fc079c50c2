/* test-feat-text — text and dialogue features: the token heuristic against real BPE
 * counts (data/oracle/text_tokens.csv, from gpt-tokenizer), sentences and entities, the
 * MoA-Off text scores, the task rules, n-gram hashing, and feat_request on requests. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "feat/features.h"
#include "feat/image.h"
#include "feat/text.h"
#include "req/request.h"
#include "test.h"
#include "util/b64.h"
#include "util/buf.h"
#include "util/file.h"

/* The whole file, NUL-terminated, or NULL. */
static char *slurp(const char *path, size_t *n)
{
    uint8_t *p;
    char err[600];
    return util_read_file(path, 0, &p, n, err, sizeof err) < 0 ? NULL : (char *)p;
}

/* Standard base64 of p[0..n) as a C string (malloc'd). */
static char *b64_string(const uint8_t *p, size_t n)
{
    char *s = malloc(b64_encoded_len(n, 1) + 1);
    if (s) b64_encode(p, n, B64_STD, 1, s);
    return s;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* ==== token estimate vs the BPE oracle ================================================ */

/* Every CSV row whose text is present and unchanged (FNV-1a hash) is estimated. Bounds
 * (o200k_base): mean absolute relative error <= 6 %, 95th percentile <= 20 %, total
 * within ±5 %; and the heuristic must beat the common bytes/4 rule on the mean error. */
TEST(tokens_vs_gpt_tokenizer_csv)
{
    size_t n;
    char *csv = slurp("data/oracle/text_tokens.csv", &n);
    CHECK(csv);
    char mpath[512];
    snprintf(mpath, sizeof mpath, "%s/datasets/m4a1/M4A1.json", test_shared_dir());
    size_t mn = 0;
    char *mtext = slurp(mpath, &mn);
    cJSON *m4 = mtext ? cJSON_ParseWithLength(mtext, mn) : NULL;
    free(mtext);

    static double err200[2000], err100[2000], errq[2000];
    int rows = 0, skipped = 0;
    double sum_est = 0, sum_ref = 0;
    char cur_lic[64] = "";
    char *lic = NULL;
    size_t lic_n = 0;
    char *line = strchr(csv, '\n') + 1; /* skip header */
    while (line && *line && rows < 2000) {
        char *next = strchr(line, '\n');
        if (next) *next++ = '\0';
        char src[96];
        unsigned long off, len, fnv;
        int t200, t100;
        if (sscanf(line, "%95[^,],%lu,%lu,%lu,%d,%d", src, &off, &len, &fnv, &t200, &t100) != 6) {
            test_fail(__FILE__, __LINE__, "bad CSV line: %s", line);
            break;
        }
        line = next;
        const char *text = NULL;
        if (!strncmp(src, "license:", 8)) {
            if (strcmp(cur_lic, src + 8)) {
                free(lic);
                char p[256];
                snprintf(p, sizeof p, "/usr/share/common-licenses/%s", src + 8);
                lic = slurp(p, &lic_n);
                snprintf(cur_lic, sizeof cur_lic, "%.63s", src + 8);
            }
            if (lic && off + len <= lic_n) text = lic + off;
        } else if (m4) {
            int d, t;
            char field[16];
            if (sscanf(src, "m4a1:%d.%d.%15s", &d, &t, field) == 3) {
                cJSON *it = cJSON_GetArrayItem(
                    cJSON_GetObjectItem(cJSON_GetArrayItem(m4, d), "interactions"), t);
                cJSON *s = cJSON_GetObjectItem(it, field);
                if (cJSON_IsString(s) && strlen(s->valuestring) == len) text = s->valuestring;
            }
        }
        if (!text || feat_fnv1a32(text, len, FEAT_FNV_BASIS) != fnv) {
            skipped++;
            continue;
        }
        int est = feat_text_tokens(text, len);
        err200[rows] = fabs((double)(est - t200)) / t200;
        err100[rows] = fabs((double)(est - t100)) / t100;
        errq[rows] = fabs(len / 4.0 - t200) / t200;
        sum_est += est;
        sum_ref += t200;
        rows++;
    }
    free(lic);
    cJSON_Delete(m4);
    free(csv);
    if (rows < 100) {
        test_fail(__FILE__, __LINE__, "only %d CSV rows usable (%d skipped)", rows, skipped);
        return;
    }
    double m200 = 0, m100 = 0, mq = 0;
    for (int i = 0; i < rows; i++) m200 += err200[i], m100 += err100[i], mq += errq[i];
    m200 /= rows, m100 /= rows, mq /= rows;
    qsort(err200, (size_t)rows, sizeof err200[0], cmp_double);
    double p95 = err200[(int)(0.95 * (rows - 1))];
    if (getenv("TEST_VERBOSE"))
        fprintf(stderr, "  tokens: %d rows (%d skipped), mean |err| o200k %.4f cl100k %.4f "
                        "(bytes/4: %.4f), p95 %.4f, total ratio %.4f\n",
                rows, skipped, m200, m100, mq, p95, sum_est / sum_ref);
    CHECK(m200 <= 0.06);
    CHECK(m100 <= 0.06);
    CHECK(p95 <= 0.20);
    CHECK_NEAR(sum_est / sum_ref, 1.0, 0.05);
    CHECK(m200 < mq);
}

TEST(tokens_rules)
{
    CHECK_EQ_INT(feat_text_tokens("", 0), 0);
    CHECK_EQ_INT(feat_text_tokens("hello", 5), 1);
    CHECK_EQ_INT(feat_text_tokens("hello world", 11), 2);
    CHECK_EQ_INT(feat_text_tokens("1234567", 7), 3);              /* 123 456 7 */
    CHECK_EQ_INT(feat_text_tokens("don't", 5), 2);                /* don 't */
    CHECK_EQ_INT(feat_text_tokens("a,b", 3), 3);
    CHECK_EQ_INT(feat_text_tokens("\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e", 9), 3); /* 3 CJK */
    CHECK_EQ_INT(feat_text_tokens("x\n\ny", 4), 3);
    /* a 40-letter string: 1 + (40-12)/4 = 8 */
    CHECK_EQ_INT(feat_text_tokens("abcdefghijabcdefghijabcdefghijabcdefghij", 40), 8);
}

/* Long runs of blanks or marks: o200k_base (gpt-tokenizer 4.0.0) counts 63 tokens for
 * 1000 line breaks, 63 for 1000 tabs, 9 for 1000 spaces, 63 for 1000 '!', 16 for 1000
 * '-' or '=' and 17 for 999 '.'. Each run used to be 1 token (blanks: 4 MiB of line
 * breaks, the text limit, gave 1 token for ~260000) or 1 + 0.2 per mark (201 for 1000
 * '-', 12x). Estimates within a factor 1.5 of the tokenizer for the blanks and 2.5 for
 * the marks (one rate for all marks; the tokenizer merges some more than others). */
TEST(tokens_long_runs_of_blanks_and_marks)
{
    static const struct { char ch; int ref; double factor; } runs[] = {
        {'\n', 63, 1.5}, {'\t', 63, 1.5}, {' ', 9, 1.5},
        {'!', 63, 2.5},   {'-', 16, 2.5},   {'=', 16, 2.5}, {'.', 17, 2.5},
    };
    static char buf[1000];
    for (size_t k = 0; k < sizeof runs / sizeof runs[0]; k++) {
        memset(buf, runs[k].ch, sizeof buf);
        int est = feat_text_tokens(buf, sizeof buf);
        if (!(est >= runs[k].ref / runs[k].factor && est <= runs[k].ref * runs[k].factor))
            test_fail(__FILE__, __LINE__, "1000 x 0x%02x: %d tokens, o200k %d", runs[k].ch,
                      est, runs[k].ref);
    }
    /* short runs keep their rules: two line breaks, four spaces, "?!" are 1 token each */
    CHECK_EQ_INT(feat_text_tokens("a\n\nb", 4), 3);
    CHECK_EQ_INT(feat_text_tokens("a    b", 6), 3);
    CHECK_EQ_INT(feat_text_tokens("a?! b", 5), 3);
}

/* ==== sentences, entities, scores ===================================================== */

TEST(stats_sentences_entities)
{
    const char *s = "Dr. Smith went to New York on 3 May 2024. He met NASA staff!";
    struct feat_text_stats st;
    feat_text_stats(s, strlen(s), NULL, &st);
    CHECK_EQ_INT(st.sentences, 2);
    /* Smith, New York, 3, May, 2024, NASA */
    CHECK_EQ_INT(st.entities, 6);
    CHECK_EQ_INT(st.words, 14);
    CHECK_NEAR(st.c_ner, 1.0, 1e-12);                 /* (6/2)/2 capped at 1 */
    CHECK_NEAR(st.c_L, st.tokens / 128.0, 1e-12);
    CHECK_NEAR(st.c_text, 0.5 * st.c_L + 0.5 * st.c_ner, 1e-12);

    const char *plain = "what is the cat doing on the sofa";
    feat_text_stats(plain, strlen(plain), NULL, &st);
    CHECK_EQ_INT(st.sentences, 1);
    CHECK_EQ_INT(st.entities, 0);
    CHECK_NEAR(st.c_ner, 0.0, 0);

    const char *nums = "Version 3.5 costs $1,200 (e.g. at 10:30 on 2024-05-01). I agree.";
    feat_text_stats(nums, strlen(nums), NULL, &st);
    CHECK_EQ_INT(st.sentences, 2);   /* "e.g." does not end a sentence */
    CHECK_EQ_INT(st.entities, 4);    /* 3.5, 1,200, 10:30, 2024-05-01; "I" is not one */

    const char *list = "Shopping list\n- eggs\n- milk";
    feat_text_stats(list, strlen(list), NULL, &st);
    CHECK_EQ_INT(st.sentences, 3);
    feat_text_stats("", 0, NULL, &st);
    CHECK_EQ_INT(st.sentences, 0);
    CHECK_NEAR(st.c_text, 0.0, 0);

    struct feat_text_params p = {.L0 = 10, .gamma = 4, .beta_L = 0.25, .beta_ner = 0.75};
    feat_text_stats(s, strlen(s), &p, &st);
    CHECK_NEAR(st.c_L, st.tokens >= 10 ? 1.0 : st.tokens / 10.0, 1e-12);
    CHECK_NEAR(st.c_ner, (6.0 / 2) / 4, 1e-12);
    CHECK_NEAR(st.c_text, 0.25 * st.c_L + 0.75 * 0.75, 1e-12);
}

/* ==== task rules ====================================================================== */

TEST(task_rules)
{
    static const struct { const char *q; enum fy_task t; } cases[] = {
        {"Describe this image in detail.", FY_TASK_CAPTION},
        {"What's in the picture?", FY_TASK_CAPTION},
        {"How many people are in the boat?", FY_TASK_COUNT},
        {"Count the apples on the table.", FY_TASK_COUNT},
        {"What does the sign say?", FY_TASK_OCR},
        {"Read the text on the label.", FY_TASK_OCR},
        {"Is the man wearing a hat?", FY_TASK_YESNO},
        {"Are there any clouds in the sky? Answer yes or no.", FY_TASK_YESNO},
        {"Is the car red or blue?", FY_TASK_CHAT},
        {"Which animal is shown?\nA. cat\nB. dog\nC. horse\nAnswer with the option's letter "
         "from the given choices directly.", FY_TASK_MCQ},
        {"Which of the following is a mammal? (A) shark (B) whale", FY_TASK_MCQ},
        {"Why is the sky blue?", FY_TASK_REASON},
        {"Explain step by step how the circuit works.", FY_TASK_REASON},
        {"Please send a message to my home that I'm stuck in traffic.", FY_TASK_CHAT},
        {"What color is the bus?", FY_TASK_CHAT},
        {"", FY_TASK_CHAT},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        enum fy_task t = feat_text_task(cases[i].q, strlen(cases[i].q));
        if (t != cases[i].t)
            test_fail(__FILE__, __LINE__, "\"%s\": %s, want %s", cases[i].q, feat_task_name(t),
                      feat_task_name(cases[i].t));
    }
    CHECK_STR(feat_task_name(FY_TASK_OCR), "ocr");
    CHECK_STR(feat_task_name(FY_TASK__N), "?");
}

/* ==== n-gram hashing ================================================================== */

static double dot(const float *a, const float *b)
{
    double s = 0;
    for (int i = 0; i < FY_HASH_DIM; i++) s += (double)a[i] * b[i];
    return s;
}

TEST(ngram_hashing)
{
    /* FNV-1a 32 reference vectors (the FNV authors' test suite) */
    CHECK_EQ_INT(feat_fnv1a32("", 0, FEAT_FNV_BASIS), 0x811c9dc5u);
    CHECK_EQ_INT(feat_fnv1a32("a", 1, FEAT_FNV_BASIS), 0xe40c292cu);
    CHECK_EQ_INT(feat_fnv1a32("foobar", 6, FEAT_FNV_BASIS), 0xbf9cf968u);

    float a[FY_HASH_DIM] = {0}, b[FY_HASH_DIM] = {0}, c[FY_HASH_DIM] = {0};
    /* one word: exactly one non-zero entry, at h mod DIM, signed by bit 31 */
    feat_text_ngrams_add(a, "foobar", 6);
    unsigned h = 0xbf9cf968u;
    int nz = 0;
    for (int i = 0; i < FY_HASH_DIM; i++) nz += a[i] != 0;
    CHECK_EQ_INT(nz, 1);
    CHECK_NEAR(a[h % FY_HASH_DIM], (h >> 31) ? -1.0 : 1.0, 0);

    /* case-insensitive, punctuation-insensitive; unit norm */
    memset(a, 0, sizeof a);
    feat_text_ngrams_add(a, "The red car, parked.", 20);
    feat_text_ngrams_normalize(a);
    feat_text_ngrams_add(b, "the RED car parked", 18);
    feat_text_ngrams_normalize(b);
    CHECK_NEAR(dot(a, a), 1.0, 1e-6);
    CHECK_NEAR(dot(a, b), 1.0, 1e-6);
    /* word order changes the bigrams only: similar but not equal */
    feat_text_ngrams_add(c, "parked car red the", 18);
    feat_text_ngrams_normalize(c);
    double sim = dot(a, c);
    CHECK(sim > 0.3 && sim < 0.99);
    /* an empty text stays the zero vector */
    float z[FY_HASH_DIM] = {0};
    feat_text_ngrams_add(z, " ,.; ", 5);
    feat_text_ngrams_normalize(z);
    CHECK_NEAR(dot(z, z), 0.0, 0);
}

/* ==== feat_request: dialogue and images ============================================== */

TEST(request_dialogue_features)
{
    const char *body =
        "{\"max_tokens\":77,\"messages\":["
        "{\"role\":\"system\",\"content\":\"You are a helpful assistant.\"},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"Describe the kitchen.\"},"
        "{\"type\":\"image_url\",\"image_url\":{\"url\":\"https://x.test/k.jpg\"}}]},"
        "{\"role\":\"assistant\",\"content\":\"A small kitchen with a stove.\"},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"How many chairs are there?\"},"
        "{\"type\":\"image_url\",\"image_url\":{\"url\":\"https://x.test/c.jpg\"}}]}]}";
    struct req_error e;
    struct fy_request *r = req_parse(body, strlen(body), NULL, &e);
    CHECK(r);
    struct fy_features f;
    char err[256];
    CHECK_EQ_INT(feat_request(r, NULL, &f, err, sizeof err), 0);
    CHECK_EQ_INT(f.turn, 1);
    CHECK_EQ_INT(f.history_images, 1);
    CHECK_EQ_INT(f.nimages, 2);
    CHECK_EQ_INT(f.max_out_tokens, 77);
    CHECK_EQ_INT(f.task, FY_TASK_COUNT);
    int t_sys = feat_text_tokens("You are a helpful assistant.", 28);
    int t_u1 = feat_text_tokens("Describe the kitchen.", 21);
    int t_a = feat_text_tokens("A small kitchen with a stove.", 29);
    int t_u2 = feat_text_tokens("How many chairs are there?", 26);
    CHECK_EQ_INT(f.history_tokens, t_sys + t_u1 + t_a);
    CHECK_EQ_INT(f.last_text_tokens, t_u2);
    CHECK_EQ_INT(f.text_tokens, t_sys + t_u1 + t_a + t_u2);
    CHECK_EQ_INT(f.sentences, 1);
    CHECK_NEAR(f.c_L, t_u2 / 128.0, 1e-12);
    CHECK_NEAR(dot(f.ngram, f.ngram), 1.0, 1e-6);
    CHECK_EQ_INT(f.img[0].format, FY_FMT_UNKNOWN); /* references are not fetched */
    req_free(r);
}

/* A data: URL image is analysed exactly as feat_image_analyze does on the file. */
TEST(request_image_features_match_file)
{
    char path[512];
    size_t n;
    snprintf(path, sizeof path, "%s/images/photo-robin-small.png", test_shared_dir());
    uint8_t *img = (uint8_t *)slurp(path, &n);
    CHECK(img);
    struct buf b;
    buf_init(&b);
    char *enc = b64_string(img, n);
    buf_printf(&b, "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\","
                   "\"image_url\":{\"url\":\"data:image/png;base64,%s\"}},{\"type\":\"text\","
                   "\"text\":\"What is this bird?\"}]}]}", enc);
    free(enc);
    struct req_error e;
    struct fy_request *r = req_parse(b.data, b.len, NULL, &e);
    buf_fini(&b);
    CHECK(r);
    struct fy_features f;
    struct fy_image_features ref;
    char err[256];
    CHECK_EQ_INT(feat_request(r, NULL, &f, err, sizeof err), 0);
    CHECK_EQ_INT(feat_image_analyze(img, n, NULL, &ref, err, sizeof err), 0);
    CHECK_EQ_INT(f.nimages, 1);
    CHECK_EQ_INT(f.turn, 0);
    CHECK_EQ_INT(f.history_images, 0);
    CHECK_EQ_INT(f.img[0].width, ref.width);
    CHECK_EQ_INT(f.img[0].height, ref.height);
    CHECK_NEAR(f.img[0].c_img, ref.c_img, 0);
    CHECK_NEAR(f.img[0].sobel_mean, ref.sobel_mean, 0);
    CHECK_EQ_INT(f.img[0].tokens[FY_VT_QWEN2VL], ref.tokens[FY_VT_QWEN2VL]);
    CHECK_EQ_INT(f.task, FY_TASK_CAPTION); /* "what is this" */
    req_free(r);
    free(img);
}

/* An image the parser accepts (header fine) but the decoder refuses (its frame header
 * claims 4x the rows of the scan) is named by its JSON path, like the parser's errors:
 * the second image of the second user message is messages[2].content[2]. */
TEST(request_image_error_names_the_json_path)
{
    char path[512];
    size_t n;
    snprintf(path, sizeof path, "%s/images/tiny-thumb-chelsea.jpg", test_shared_dir());
    uint8_t *img = (uint8_t *)slurp(path, &n);
    CHECK(img);
    char *good = b64_string(img, n);
    size_t i = 2;
    while (i + 9 < n && !(img[i] == 0xff && img[i + 1] == 0xc0)) i++;
    CHECK(i + 9 < n);
    img[i + 6] = (uint8_t)(4 * img[i + 6]); /* height 43 -> 172 */
    char *bad = b64_string(img, n);
    struct buf b;
    buf_init(&b);
    buf_printf(&b, "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\","
                   "\"image_url\":{\"url\":\"data:image/jpeg;base64,%s\"}}]},"
                   "{\"role\":\"assistant\",\"content\":\"A cat.\"},"
                   "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"And these?\"},"
                   "{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:image/jpeg;base64,%s\"}},"
                   "{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:image/jpeg;base64,%s\"}}"
                   "]}]}", good, good, bad);
    free(good);
    free(bad);
    free(img);
    struct req_error e;
    struct fy_request *r = req_parse(b.data, b.len, NULL, &e);
    buf_fini(&b);
    CHECK(r);
    static struct fy_features f;
    char err[256] = "";
    int rc = feat_request(r, NULL, &f, err, sizeof err);
    req_free(r);
    CHECK_EQ_INT(rc, -1);
    CHECK_STR(err, "messages[2].content[2].image_url.url: jpeg: truncated data (Corrupt JPEG "
                   "data: premature end of data segment)");
}

/* ==== the CLI ========================================================================= */

/* `ferry features --json` over good and bad inputs: one JSON object per good input with
 * the documented fields, one stderr line per bad input naming it, exit status 1. The
 * option stands between the inputs: it applies to all of them. */
TEST(cli_features_json_and_errors)
{
    const char *bin = test_ferry_bin();
    if (access(bin, X_OK) != 0) {
        test_fail(__FILE__, __LINE__, "%s is not built (set FERRY_BIN)", bin);
        return;
    }
    char junk[512];
    snprintf(junk, sizeof junk, "%s", test_tmp_path("junk.bin")); /* static buffer */
    CHECK(test_write_file(junk, "GIF89a not supported") == 0);
    char errpath[512], cmd[2048];
    snprintf(errpath, sizeof errpath, "%s", test_tmp_path("stderr.txt"));
    snprintf(cmd, sizeof cmd,
             "'%s' features '%s/images/photo-rocket.jpg' --json data/examples/dialogue.json "
             "/nonexistent/x.png '%s' 2>'%s'", bin, test_shared_dir(), junk, errpath);
    FILE *p = popen(cmd, "r");
    CHECK(p);
    char line[8192];
    int objs = 0;
    while (fgets(line, sizeof line, p)) {
        cJSON *j = cJSON_Parse(line);
        CHECK(j);
        const char *kind = cJSON_GetStringValue(cJSON_GetObjectItem(j, "kind"));
        CHECK(kind);
        if (!strcmp(kind, "image")) {
            static const char *keys[] = {"file", "format", "width", "height", "sobel_mean",
                                         "entropy", "laplacian_var", "c_res", "c_edge",
                                         "c_ent", "c_lap", "c_img", "image_tokens", NULL};
            for (int k = 0; keys[k]; k++)
                if (!cJSON_GetObjectItem(j, keys[k])) CHECK_STR(keys[k], "(missing)");
            CHECK_EQ_INT(cJSON_GetObjectItem(j, "width")->valueint, 640);
        } else {
            CHECK_STR(kind, "request");
            CHECK_EQ_INT(cJSON_GetObjectItem(j, "turn")->valueint, 1);
            CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(j, "task")), "yesno");
            CHECK(cJSON_GetObjectItem(j, "text_tokens")->valueint > 0);
            CHECK(cJSON_IsNumber(cJSON_GetObjectItem(j, "c_text")));
            CHECK_EQ_INT(cJSON_GetArraySize(cJSON_GetObjectItem(j, "images")), 1);
        }
        cJSON_Delete(j);
        objs++;
    }
    int st = pclose(p);
    CHECK_EQ_INT(objs, 2);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 1);
    size_t n;
    char *err = slurp(errpath, &n);
    CHECK(err);
    int lines = 0;
    for (char *c = err; *c; c++) lines += *c == '\n';
    CHECK_EQ_INT(lines, 2);
    CHECK(strstr(err, "ferry features: /nonexistent/x.png: No such file or directory\n"));
    CHECK(strstr(err, "junk.bin: neither a JPEG, PNG or WebP image nor a JSON request\n"));
    free(err);
}

/* `ferry features` on inputs a newcomer gives it: an empty directory is an error that
 * says so (it printed nothing and exited 0), a request saved with a UTF-8 byte order
 * mark is read, a JSON array is a request the parser refuses with its reason. */
TEST(cli_features_empty_directory_bom_and_array)
{
    char dir[512], bom[512], arr[512], args[1200], msg[512];
    snprintf(dir, sizeof dir, "%s", test_tmp_path("empty-dir"));
    snprintf(bom, sizeof bom, "%s", test_tmp_path("bom.json"));
    snprintf(arr, sizeof arr, "%s", test_tmp_path("array.json"));
    CHECK_EQ_INT(mkdir(dir, 0700), 0);
    CHECK(test_write_file(bom, "\xef\xbb\xbf{\"messages\":[{\"role\":\"user\","
                               "\"content\":\"How many cats?\"}]}") == 0);
    CHECK(test_write_file(arr, "[{\"messages\":[]}]") == 0);
    snprintf(args, sizeof args, "features '%s'", dir);
    CHECK_CLI(args, 1, "empty-dir: no .jpg .jpeg .png .webp or .json file in this directory");
    snprintf(args, sizeof args, "features --json '%s'", bom);
    CHECK_EQ_INT(test_ferry_cli(args, msg, sizeof msg), 0);
    CHECK_STR(msg, "");
    snprintf(args, sizeof args, "features '%s'", arr);
    CHECK_CLI(args, 1, "array.json: body: expected a JSON object (HTTP 400)");
}

/* `ferry help <command> [<sub>]` prints what `ferry <command> [<sub>] --help` prints
 * (it printed the general usage); an unknown command is a usage error (status 2). */
TEST(cli_help_command_prints_the_command_help)
{
    const char *bin = test_ferry_bin();
    static const char *const pairs[][2] = {{"help features", "features --help"},
                                           {"help bench load", "bench load --help"}};
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        char *out[2];
        for (int k = 0; k < 2; k++) {
            char cmd[1024];
            snprintf(cmd, sizeof cmd, "'%s' %s 2>&1", bin, pairs[i][k]);
            FILE *p = popen(cmd, "r");
            CHECK(p);
            struct buf b;
            buf_init(&b);
            char chunk[4096];
            size_t n;
            while ((n = fread(chunk, 1, sizeof chunk, p)) > 0) buf_append(&b, chunk, n);
            CHECK_EQ_INT(pclose(p), 0);
            out[k] = buf_steal(&b);
        }
        int same = !strcmp(out[0], out[1]), usage = !strncmp(out[0], "usage: ferry ", 13);
        free(out[0]);
        free(out[1]);
        CHECK(usage);
        CHECK(same);
    }
    char msg[256];
    CHECK_EQ_INT(test_ferry_cli("help nosuch", msg, sizeof msg), 2);
    CHECK_STR(msg, "ferry: no help for unknown command 'nosuch' (try 'ferry --help')\n");
}

/* Every command's CLI speaks one way: an unknown option is named on one line with
 * "(try --help)" and exit status 2 (train, eval, serve, bench export printed the whole
 * usage after it; features and serve quoted the option; calibrate could not tell an
 * unknown option from a missing value), and --help ends with the exit statuses. */
TEST(cli_every_command_names_an_unknown_option_and_states_its_exit_status)
{
    static const char *const cmds[] = {"features", "calibrate",  "train",
                                       "eval",     "serve",      "emulate",
                                       "bench m4a1", "bench collect", "bench load",
                                       "bench export"};
    const char *bin = test_ferry_bin();
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        char args[128], want[160];
        snprintf(args, sizeof args, "%s --bogus", cmds[i]);
        snprintf(want, sizeof want, "ferry %s: unknown option --bogus (try --help)", cmds[i]);
        CHECK_CLI(args, 2, want);

        char cmd[1024];
        snprintf(cmd, sizeof cmd, "'%s' %s --help 2>/dev/null", bin, cmds[i]);
        FILE *p = popen(cmd, "r");
        CHECK(p);
        struct buf b;
        buf_init(&b);
        char chunk[4096];
        size_t n;
        while ((n = fread(chunk, 1, sizeof chunk, p)) > 0) buf_append(&b, chunk, n);
        int st = pclose(p);
        char *out = buf_steal(&b);
        snprintf(want, sizeof want, "usage: ferry %s ", cmds[i]);
        int usage = out && !strncmp(out, want, strlen(want));
        int help = out && strstr(out, "-h, --help") != NULL;
        int status = out && strstr(out, "\nExit status: 0") != NULL;
        if (!usage || !help || !status)
            test_fail(__FILE__, __LINE__, "ferry %s --help: usage line %d, -h line %d, exit "
                      "status %d", cmds[i], usage, help, status);
        free(out);
        CHECK_EQ_INT(st, 0);
    }
    /* an argument where none is taken, a second input, a value left out */
    CHECK_CLI("serve ferry.ini", 2, "unexpected argument 'ferry.ini'", "-c");
    CHECK_CLI("bench export t.db", 2, "unexpected argument 't.db'", "--db");
    CHECK_CLI("bench m4a1 a.json b.json", 2, "one M4A1.json at a time");
    CHECK_CLI("calibrate --ref", 2, "ferry calibrate: --ref needs a value");
    CHECK_CLI("bench nosuch", 2, "unknown sub-command 'nosuch'");
}

/* Output that cannot be written (here /dev/full: "no space left") is an error with a
 * message; ferry features exited 0 with its rows lost. main checks it for every command. */
TEST(cli_unwritable_output_is_an_error)
{
    const char *bin = test_ferry_bin();
    if (access("/dev/full", W_OK) != 0) {
        test_fail(__FILE__, __LINE__, "/dev/full is needed for this test");
        return;
    }
    static const char *const cmds[] = {"features data/examples/text-only.json", "--version"};
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        char cmd[512], msg[256] = "";
        snprintf(cmd, sizeof cmd, "'%s' %s 2>&1 >/dev/full", bin, cmds[i]);
        FILE *p = popen(cmd, "r");
        CHECK(p);
        if (!fgets(msg, sizeof msg, p)) msg[0] = '\0';
        int st = pclose(p);
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 1);
        CHECK(strstr(msg, ": cannot write to standard output\n") != NULL);
    }
}

/* The table cuts long names from the left; a name of 40 'é' (80 bytes) was cut inside a
 * character, printing invalid UTF-8. */
TEST(cli_features_table_cuts_names_at_characters)
{
    const char *bin = test_ferry_bin();
    char name[128] = "", path[700], cmd[1600], line[512];
    for (int i = 0; i < 40; i++) strcat(name, "\xc3\xa9");
    strcat(name, ".json");
    snprintf(path, sizeof path, "%s", test_tmp_path(name));
    CHECK(test_write_file(path, "{\"messages\":[{\"role\":\"user\","
                                "\"content\":\"hi\"}]}") == 0);
    snprintf(cmd, sizeof cmd, "'%s' features '%s'", bin, path);
    FILE *p = popen(cmd, "r");
    CHECK(p);
    int rows = 0, bad = 0;
    while (fgets(line, sizeof line, p)) {
        rows++;
        if (req_utf8_invalid_at(line, strlen(line)) >= 0) bad++;
    }
    CHECK_EQ_INT(pclose(p), 0);
    CHECK_EQ_INT(rows, 2); /* header and the request */
    CHECK_EQ_INT(bad, 0);
}
