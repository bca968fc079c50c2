/* buf — growable byte buffer. Always NUL-terminated after any append (data[len] == 0),
 * so text can be used as a C string; binary content may contain NULs. */
#ifndef FERRY_UTIL_BUF_H
#define FERRY_UTIL_BUF_H
#include <stdarg.h>
#include <stddef.h>

struct buf {
    char *data;   /* owned; NULL until the first append */
    size_t len;   /* bytes used, excluding the trailing NUL */
    size_t cap;   /* bytes allocated */
};

void buf_init(struct buf *b);              /* empty buffer, no allocation */
void buf_fini(struct buf *b);              /* frees data; b is empty again */
void buf_reset(struct buf *b);             /* len = 0, keeps the allocation */
int buf_reserve(struct buf *b, size_t extra); /* room for len + extra + NUL; 0 or -1 (ENOMEM / overflow) */
int buf_append(struct buf *b, const void *p, size_t n);
int buf_puts(struct buf *b, const char *s);
int buf_putc(struct buf *b, char c);
int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int buf_vprintf(struct buf *b, const char *fmt, va_list ap);
/* Hands the data to the caller (free() it) and leaves b empty. Never NULL: "" when empty. */
char *buf_steal(struct buf *b);

#endif
