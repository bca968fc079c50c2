/* heap — binary min-heap keyed by (key, seq): equal keys pop in insertion order, so a
 * simulation driven by it is deterministic. Push and pop are O(log n); peek O(1). */
#ifndef FERRY_UTIL_HEAP_H
#define FERRY_UTIL_HEAP_H
#include <stddef.h>
#include <stdint.h>

struct heap_item {
    double key;     /* e.g. event time in ms */
    uint64_t seq;   /* insertion counter: FIFO tie-break */
    uint64_t val;   /* payload: an index, id or pointer cast to uintptr_t */
};

struct heap {
    struct heap_item *items; /* owned */
    size_t len, cap;
    uint64_t next_seq;
};

void heap_init(struct heap *h);
void heap_fini(struct heap *h);
int heap_push(struct heap *h, double key, uint64_t val); /* 0 or -1 (ENOMEM) */
int heap_pop(struct heap *h, struct heap_item *out);     /* 0, or -1 when empty */
static inline const struct heap_item *heap_peek(const struct heap *h)
{
    return h->len ? &h->items[0] : NULL;
}
static inline size_t heap_len(const struct heap *h) { return h->len; }

#endif
