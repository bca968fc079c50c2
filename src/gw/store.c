/* gw/store — SQLite trace of decisions and outcomes (see store.h). */
#include "gw/store.h"

#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct gw_store {
    sqlite3 *db;
    sqlite3_stmt *ins, *setq;
    int in_tx;
};

static const char k_schema[] =
    "PRAGMA journal_mode=WAL;"
    "PRAGMA synchronous=NORMAL;"
    "CREATE TABLE IF NOT EXISTS requests("
    " id TEXT PRIMARY KEY, t_unix_ms REAL, policy TEXT, node TEXT,"
    " quality REAL, record TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS meta(k TEXT PRIMARY KEY, v TEXT);"
    "INSERT OR IGNORE INTO meta VALUES('schema','1');";

struct gw_store *gw_store_open(const char *path, char *err, size_t errlen)
{
    struct gw_store *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "%s: out of memory", path);
        return NULL;
    }
    char *msg = NULL;
    if (sqlite3_open(path, &s->db) != SQLITE_OK) goto dberr;
    sqlite3_busy_timeout(s->db, 2000);
    if (sqlite3_exec(s->db, k_schema, NULL, NULL, &msg) != SQLITE_OK) goto dberr;
    if (sqlite3_prepare_v2(s->db,
                           "INSERT OR REPLACE INTO requests(id,t_unix_ms,policy,node,quality,record)"
                           " VALUES(?,?,?,?,NULL,?)", -1, &s->ins, NULL) != SQLITE_OK)
        goto dberr;
    if (sqlite3_prepare_v2(s->db, "UPDATE requests SET quality=? WHERE id=?", -1, &s->setq,
                           NULL) != SQLITE_OK)
        goto dberr;
    return s;
dberr:
    snprintf(err, errlen, "%s: sqlite: %s", path, msg ? msg : sqlite3_errmsg(s->db));
    sqlite3_free(msg);
    gw_store_close(s);
    return NULL;
}

int gw_store_flush(struct gw_store *s)
{
    if (!s || !s->in_tx) return 0;
    s->in_tx = 0;
    return sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK ? 0 : -1;
}

void gw_store_close(struct gw_store *s)
{
    if (!s) return;
    gw_store_flush(s);
    sqlite3_finalize(s->ins);
    sqlite3_finalize(s->setq);
    sqlite3_close(s->db);
    free(s);
}

static int begin(struct gw_store *s)
{
    if (s->in_tx) return 0;
    if (sqlite3_exec(s->db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK) return -1;
    s->in_tx = 1;
    return 0;
}

char *gw_store_format(const struct trace_record *r, size_t *len)
{
    char *line = NULL;
    size_t n = 0;
    FILE *mf = open_memstream(&line, &n);
    if (!mf) return NULL;
    int wrc = trace_write(mf, r);
    fclose(mf);
    if (wrc || n == 0) {
        free(line);
        return NULL;
    }
    if (line[n - 1] == '\n') line[--n] = 0;
    *len = n;
    return line;
}

int gw_store_put_line(struct gw_store *s, const char *id, const char *policy,
                      const char *node, const char *line, size_t len)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (begin(s)) return -1;
    sqlite3_reset(s->ins);
    sqlite3_bind_text(s->ins, 1, id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_double(s->ins, 2, ts.tv_sec * 1e3 + ts.tv_nsec / 1e6);
    sqlite3_bind_text(s->ins, 3, policy, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(s->ins, 4, node, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(s->ins, 5, line, (int)len, SQLITE_TRANSIENT);
    return sqlite3_step(s->ins) == SQLITE_DONE ? 0 : -1;
}

int gw_store_put(struct gw_store *s, const struct trace_record *r, const char *policy,
                 const char *node)
{
    size_t len = 0;
    char *line = gw_store_format(r, &len);
    if (!line) return -1;
    int rc = gw_store_put_line(s, r->id, policy, node, line, len);
    free(line);
    return rc;
}

int gw_store_set_quality(struct gw_store *s, const char *id, double q)
{
    if (begin(s)) return -1;
    sqlite3_reset(s->setq);
    sqlite3_bind_double(s->setq, 1, q);
    sqlite3_bind_text(s->setq, 2, id, -1, SQLITE_TRANSIENT);
    if (sqlite3_step(s->setq) != SQLITE_DONE) return -1;
    return sqlite3_changes(s->db) > 0 ? 0 : 1;
}

long gw_store_count(struct gw_store *s)
{
    sqlite3_stmt *st;
    long n = -1;
    if (sqlite3_prepare_v2(s->db, "SELECT COUNT(*) FROM requests", -1, &st, NULL) != SQLITE_OK)
        return -1;
    if (sqlite3_step(st) == SQLITE_ROW) n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return n;
}

long gw_store_export(const char *db_path, FILE *out, char *err, size_t errlen)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    struct trace_record *r = malloc(sizeof *r);
    long n = -1;
    if (!r) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, "SELECT id, quality, record FROM requests ORDER BY t_unix_ms, id",
                           -1, &st, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "%s: sqlite: %s", db_path, db ? sqlite3_errmsg(db) : "cannot open");
        goto done;
    }
    n = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *line = (const char *)sqlite3_column_text(st, 2);
        int len = sqlite3_column_bytes(st, 2);
        char e[256];
        if (!line || trace_parse_line(line, (size_t)len, r, e, sizeof e)) {
            snprintf(err, errlen, "%s: request %s: %s", db_path,
                     (const char *)sqlite3_column_text(st, 0), line ? e : "no record");
            n = -1;
            goto done;
        }
        if (sqlite3_column_type(st, 1) != SQLITE_NULL) {
            double q = sqlite3_column_double(st, 1);
            for (int i = 0; i < r->nout; i++)
                if (r->out[i].chosen) r->out[i].o.quality = q;
        }
        if (trace_write(out, r)) {
            snprintf(err, errlen, "write error");
            n = -1;
            goto done;
        }
        n++;
    }
    if (rc != SQLITE_DONE) {
        snprintf(err, errlen, "%s: sqlite: %s", db_path, sqlite3_errmsg(db));
        n = -1;
    }
done:
    sqlite3_finalize(st);
    sqlite3_close(db);
    free(r);
    return n;
}
