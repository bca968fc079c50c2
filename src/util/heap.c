#include "util/heap.h"

#include <stdlib.h>

#include "util/grow.h"

void heap_init(struct heap *h)
{
    h->items = NULL;
    h->len = h->cap = 0;
    h->next_seq = 0;
}

void heap_fini(struct heap *h)
{
    free(h->items);
    heap_init(h);
}

static inline int less(const struct heap_item *a, const struct heap_item *b)
{
    return a->key < b->key || (a->key == b->key && a->seq < b->seq);
}

int heap_push(struct heap *h, double key, uint64_t val)
{
    struct heap_item *p = util_grow(h->items, &h->cap, h->len, sizeof *p, 64);
    if (!p) return -1;
    h->items = p;
    struct heap_item it = {key, h->next_seq++, val};
    size_t i = h->len++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!less(&it, &h->items[parent])) break;
        h->items[i] = h->items[parent];
        i = parent;
    }
    h->items[i] = it;
    return 0;
}

int heap_pop(struct heap *h, struct heap_item *out)
{
    if (!h->len) return -1;
    *out = h->items[0];
    struct heap_item last = h->items[--h->len];
    size_t i = 0, n = h->len;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && less(&h->items[c + 1], &h->items[c])) c++;
        if (!less(&h->items[c], &last)) break;
        h->items[i] = h->items[c];
        i = c;
    }
    if (n) h->items[i] = last;
    return 0;
}
