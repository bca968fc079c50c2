/* log — leveled logging to stderr. Level from FERRY_LOG (debug, info, warn, error, off;
 * any case), default warn, and a one-line notice when FERRY_LOG holds something else;
 * read once at the first call. Thread-safe (one fprintf per line). */
#ifndef FERRY_UTIL_LOG_H
#define FERRY_UTIL_LOG_H

enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR, LOG_OFF };

enum log_level log_get_level(void);
/* Parses "debug" .. "off", any case; returns -1 for anything else. */
int log_parse_level(const char *s);
void log_msg(enum log_level lv, const char *area, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_debug(area, ...) do { if (log_get_level() <= LOG_DEBUG) log_msg(LOG_DEBUG, area, __VA_ARGS__); } while (0)
#define log_info(area, ...)  do { if (log_get_level() <= LOG_INFO)  log_msg(LOG_INFO,  area, __VA_ARGS__); } while (0)
#define log_warn(area, ...)  log_msg(LOG_WARN, area, __VA_ARGS__)
#define log_error(area, ...) log_msg(LOG_ERROR, area, __VA_ARGS__)

#endif
