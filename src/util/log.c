#include "util/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static int g_level = -1; /* -1: not read from the environment yet */

static const char *const g_names[] = {"debug", "info", "warn", "error", "off"};

int log_parse_level(const char *s)
{
    for (int i = 0; i <= LOG_OFF; i++)
        if (s && strcasecmp(s, g_names[i]) == 0) return i;
    return -1;
}

enum log_level log_get_level(void)
{
    if (g_level < 0) {
        const char *env = getenv("FERRY_LOG");
        int lv = log_parse_level(env);
        if (lv < 0 && env && *env) /* a typo must not silently hide the debug output */
            fprintf(stderr, "ferry: FERRY_LOG=%.32s is not a level (debug, info, warn, error, "
                            "off); using warn\n", env);
        g_level = lv < 0 ? LOG_WARN : lv;
    }
    return (enum log_level)g_level;
}

void log_msg(enum log_level lv, const char *area, const char *fmt, ...)
{
    if (lv < log_get_level()) return;
    char line[1024];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "%02d:%02d:%02d.%03ld %-5s %s: ", tm.tm_hour, tm.tm_min,
                     tm.tm_sec, ts.tv_nsec / 1000000L, g_names[lv], area ? area : "ferry");
    va_list ap;
    va_start(ap, fmt);
    if (n > 0 && (size_t)n < sizeof line) vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s\n", line);
}
