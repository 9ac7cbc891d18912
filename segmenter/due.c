/* segmenter/due.c: the due-time index, a binary min-heap of (due, handle).
 * Finds every customer due at or before W without scanning everyone. Stale
 * entries are allowed (lazy deletion): the caller compares with the
 * customer's current due. Ties break on handle so order is deterministic. */
#include <stdlib.h>
#include "segmenter/segmenter.h"

void seg_due_init(seg_due_t *d)
{
    d->h = NULL;
    d->n = d->cap = 0;
}

void seg_due_clear(seg_due_t *d)
{
    free(d->h);
    seg_due_init(d);
}

static int less(const seg_due_entry_t *a, const seg_due_entry_t *b)
{
    return a->due < b->due || (a->due == b->due && a->handle < b->handle);
}

int seg_due_push(seg_due_t *d, int64_t due, uint64_t handle)
{
    if (due == SEG_NEVER) return 0;
    if (d->n == d->cap) {
        size_t nc = d->cap ? d->cap * 2 : 1024;
        seg_due_entry_t *nh = realloc(d->h, nc * sizeof(*nh));
        if (!nh) return -1;
        d->h = nh;
        d->cap = nc;
    }
    size_t i = d->n++;
    seg_due_entry_t e = {due, handle};
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!less(&e, &d->h[parent])) break;
        d->h[i] = d->h[parent];
        i = parent;
    }
    d->h[i] = e;
    return 0;
}

int seg_due_peek(const seg_due_t *d, seg_due_entry_t *out)
{
    if (d->n == 0) return 0;
    *out = d->h[0];
    return 1;
}

void seg_due_pop(seg_due_t *d)
{
    if (d->n == 0) return;
    seg_due_entry_t e = d->h[--d->n];
    size_t i = 0, n = d->n;
    if (n == 0) return;
    /* bottom-up: the hole goes down to a leaf along the smaller children (one
     * comparison a level), then the last entry, which belongs near the
     * bottom anyway, rises from there */
    for (size_t l; (l = 2 * i + 1) < n; i = l) {
        if (l + 1 < n && less(&d->h[l + 1], &d->h[l])) l++;
        d->h[i] = d->h[l];
    }
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!less(&e, &d->h[parent])) break;
        d->h[i] = d->h[parent];
        i = parent;
    }
    d->h[i] = e;
}
