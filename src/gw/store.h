/* gw/store — the gateway's SQLite trace: one row per routed request with its decision
 * and outcome, stored as the trace JSONL line of src/pred/trace.h (so `ferry bench
 * export` writes exactly the format `ferry train` / `ferry eval` read), plus columns for
 * lookups. Feedback scores arriving later update the row's quality. Writes are batched
 * in one transaction that gw_store_flush() commits (the server calls it every 200 ms and
 * at shutdown), so a request costs one prepared INSERT, not one fsync.
 *
 * Schema (version 1):
 *   requests(id TEXT PRIMARY KEY, t_unix_ms REAL, policy TEXT, node TEXT,
 *            quality REAL  -- feedback score, NULL until given
 *            , record TEXT -- one trace JSONL line without the newline)
 */
#ifndef FERRY_GW_STORE_H
#define FERRY_GW_STORE_H
#include <stddef.h>
#include <stdio.h>

#include "pred/trace.h"

struct gw_store;

struct gw_store *gw_store_open(const char *path, char *err, size_t errlen);
void gw_store_close(struct gw_store *s);      /* flushes; NULL is a no-op */
/* Inserts (or replaces) the record of one request. 0 or -1. */
int gw_store_put(struct gw_store *s, const struct trace_record *r, const char *policy,
                 const char *node);
/* The two halves of gw_store_put, so that the formatting (printf of a few hundred
 * numbers: tens of microseconds) can run on a worker thread. gw_store_format touches
 * no store and is thread-safe: r's trace line without the newline, malloc'd, or NULL. */
char *gw_store_format(const struct trace_record *r, size_t *len);
int gw_store_put_line(struct gw_store *s, const char *id, const char *policy,
                      const char *node, const char *line, size_t len);
/* Feedback: 0, 1 when no row has that id, -1 on a database error. */
int gw_store_set_quality(struct gw_store *s, const char *id, double q);
/* Commits the open batch. 0 or -1. */
int gw_store_flush(struct gw_store *s);
/* Rows stored (committed or not). */
long gw_store_count(struct gw_store *s);
/* Writes every row of the database at db_path as trace JSONL to out, the chosen
 * outcome's quality replaced by the feedback score when there is one. Returns the
 * number of records, or -1 with err. */
long gw_store_export(const char *db_path, FILE *out, char *err, size_t errlen);

#endif
