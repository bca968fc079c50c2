/* fuzz-trace.c — libFuzzer target for the trace line parser (trace_parse_line). Every
 * accepted line must survive write -> parse with the same record (round trip), so the
 * writer never emits what the reader refuses. Seeds: fuzz/corpus/fuzz-trace/. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pred/trace.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct trace_record a, b;
    char err[256];
    if (size > TRACE_MAX_LINE) return 0;
    if (trace_parse_line((const char *)data, size, &a, err, sizeof err) != 0) return 0;
    char *buf = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&buf, &len);
    if (!fp) return 0;
    trace_write(fp, &a);
    fclose(fp);
    if (trace_parse_line(buf, len, &b, err, sizeof err) != 0) abort();
    if (strcmp(a.id, b.id) || a.nout != b.nout || a.f.nimages != b.f.nimages ||
        a.f.task != b.f.task)
        abort();
    for (int i = 0; i < a.nout; i++)
        if (strcmp(a.out[i].node, b.out[i].node) || a.out[i].o.failed != b.out[i].o.failed)
            abort();
    free(buf);
    return 0;
}
