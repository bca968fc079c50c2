/* grow — the growable-array step shared by the arrays of util, node, feat, emu, pred
 * and sim. */
#ifndef FERRY_UTIL_GROW_H
#define FERRY_UTIL_GROW_H
#include <stddef.h>

/* Room for one more element in arr (n used of *cap elements of elem bytes). Returns arr
 * itself while n < *cap; else reallocates to twice *cap (first when *cap is 0), stores
 * the new capacity in *cap and returns the new pointer. NULL on out of memory or size
 * overflow, with arr still valid and *cap unchanged. Amortised O(1) per element.
 * Use: p = util_grow(a->v, &a->cap, a->n, sizeof *p, 16); if (!p) fail; a->v = p; */
void *util_grow(void *arr, size_t *cap, size_t n, size_t elem, size_t first);

#endif
