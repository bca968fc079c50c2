/* clock — monotonic time. */
#ifndef FERRY_UTIL_CLOCK_H
#define FERRY_UTIL_CLOCK_H
#include <stdint.h>

uint64_t clock_now_ns(void); /* CLOCK_MONOTONIC, nanoseconds */
double clock_now_ms(void);   /* CLOCK_MONOTONIC, milliseconds */

#endif
