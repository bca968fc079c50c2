/* test-pred — trace format, MILP/MGQP predictors, model files, M4A1 replay. */
#include <stdlib.h>
#include <string.h>

#include "test.h"
#include "ferry.h"
#include "pred/trace.h"

/* ==== trace ======================================================================== */

static void fill_record(struct trace_record *r)
{
    memset(r, 0, sizeof *r);
    strcpy(r->id, "r\"1\"");
    strcpy(r->dataset, "vqav2");
    strcpy(r->session, "d7");
    r->t_ms = 1250.5;
    r->f.turn = 2;
    r->f.text_tokens = 40;
    r->f.last_text_tokens = 12;
    r->f.c_text = 0.25;
    r->f.task = FY_TASK_COUNT;
    r->f.nimages = 2;
    r->f.img[0].format = FY_FMT_JPEG;
    r->f.img[0].width = 640;
    r->f.img[0].height = 480;
    r->f.img[0].bytes = 81234;
    r->f.img[0].c_img = 0.625;
    r->f.img[0].tokens[FY_VT_QWEN2VL] = 391;
    r->f.img[1].format = FY_FMT_PNG;
    r->f.ngram[3] = 0.5f;
    r->f.ngram[200] = -0.25f;
    r->nout = 2;
    strcpy(r->out[0].node, "edge0");
    r->out[0].role = FY_ROLE_EDGE;
    r->out[0].state.running = 3;
    r->out[0].link.up_mbps = 300;
    r->out[0].chosen = 1;
    r->out[0].o.quality = 1;
    r->out[0].o.e2e_ms = 812.25;
    r->out[0].o.plan.aux_node = 1;
    r->out[0].o.plan.img[1] = FY_IMG_SPLIT;
    r->out[0].o.out_tokens = 17;
    strcpy(r->out[1].node, "cloud0");
    r->out[1].role = FY_ROLE_CLOUD;
    r->out[1].o.quality = -1;
    r->out[1].o.plan.aux_node = -1;
    r->out[1].o.cost_usd = 0.00125;
    r->out[1].o.failed = 1;
}

TEST(trace_roundtrip)
{
    struct trace_record *r = malloc(sizeof *r), *back = NULL;
    fill_record(r);
    const char *path = test_tmp_path("t.jsonl");
    FILE *fp = fopen(path, "w");
    CHECK(fp);
    CHECK_EQ_INT(trace_write(fp, r), 0);
    fputs("\n", fp); /* empty lines are skipped */
    CHECK_EQ_INT(trace_write(fp, r), 0);
    fclose(fp);
    size_t n = 0;
    char err[256];
    int rc = trace_read_file(path, 0, &back, &n, err, sizeof err);
    if (rc) fprintf(stderr, "%s\n", err);
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_INT(n, 2);
    CHECK_STR(back[1].id, "r\"1\"");
    CHECK_STR(back[1].session, "d7");
    CHECK_EQ_INT(back[1].f.task, FY_TASK_COUNT);
    CHECK_EQ_INT(back[1].f.nimages, 2);
    CHECK_EQ_INT(back[1].f.img[0].bytes, 81234);
    CHECK_EQ_INT(back[1].f.img[0].tokens[FY_VT_QWEN2VL], 391);
    CHECK_EQ_INT(back[1].f.img[1].format, FY_FMT_PNG);
    CHECK_NEAR(back[1].f.ngram[200], -0.25, 1e-9);
    CHECK_NEAR(back[1].f.ngram[4], 0, 0);
    CHECK_EQ_INT(back[1].nout, 2);
    CHECK_EQ_INT(back[1].out[0].state.running, 3);
    CHECK_EQ_INT(back[1].out[0].o.plan.img[1], FY_IMG_SPLIT);
    CHECK_EQ_INT(back[1].out[0].o.plan.aux_node, 1);
    CHECK_EQ_INT(back[1].out[0].chosen, 1);
    CHECK_NEAR(back[1].out[0].o.e2e_ms, 812.25, 1e-9);
    CHECK_EQ_INT(back[1].out[1].role, FY_ROLE_CLOUD);
    CHECK_NEAR(back[1].out[1].o.quality, -1, 0);
    CHECK_EQ_INT(back[1].out[1].o.failed, 1);
    CHECK_NEAR(back[1].out[1].o.cost_usd, 0.00125, 1e-12);
    free(back);
    free(r);
}

TEST(trace_rejects_bad_lines)
{
    struct trace_record *r = malloc(sizeof *r);
    char err[256];
    const char *bad[] = {
        "[1,2]",
        "{\"v\":2,\"features\":{},\"outcomes\":[]}",
        "{\"v\":1,\"outcomes\":[]}",
        "{\"v\":1,\"features\":{\"task\":\"poetry\"},\"outcomes\":[]}",
        "{\"v\":1,\"features\":{\"ngram\":[[999,1]]},\"outcomes\":[]}",
        "{\"v\":1,\"features\":{},\"outcomes\":[{\"role\":\"edge\"}]}",
        "{\"v\":1,\"features\":{},\"outcomes\":[{\"node\":\"a\",\"quality\":3}]}",
        "{\"v\":1,\"features\":{\"turn\":\"x\"},\"outcomes\":[]}",
    };
    const char *want[] = {"object", "version", "features", "task", "ngram", "node",
                          "quality", "turn"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = 0;
        CHECK_EQ_INT(trace_parse_line(bad[i], strlen(bad[i]), r, err, sizeof err), -1);
        if (!strstr(err, want[i])) fprintf(stderr, "case %zu: %s\n", i, err);
        CHECK(strstr(err, want[i]) != NULL);
    }
    free(r);
}
