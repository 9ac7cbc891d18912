/* segmenter/due.c: the due-time index, a 4-ary min-heap of (due, handle).
 * Finds every customer due at or before W without scanning everyone. Stale
 * entries are allowed (lazy deletion): the caller compares with the
 * customer's current due. Ties break on handle so order is deterministic.
 *
 * Four children per node, the four in one 64-byte line: a pop walks half
 * the levels of a binary heap and touches one line per level. With one
 * entry per customer the heap outgrows the L2 cache, and a pop was a chain
 * of dependent misses (10 % of the hot path's samples as a binary heap). */
#include <stdlib.h>
#include <string.h>
#include "segmenter/segmenter.h"

#define LINE 64
/* entries before h[0] in the block, so that h[1], and every h[4i + 1], is
 * at the start of a line */
#define PAD (LINE / sizeof(seg_due_entry_t) - 1)

void seg_due_init(seg_due_t *d)
{
    d->h = NULL;
    d->n = d->cap = 0;
}

void seg_due_clear(seg_due_t *d)
{
    if (d->h) free(d->h - PAD);
    seg_due_init(d);
}

/* Bitwise, not short-circuit: which child is smallest is a coin toss, and
 * a mispredicted branch per comparison cost more than the comparison. */
static inline int less(const seg_due_entry_t *a, const seg_due_entry_t *b)
{
    return (a->due < b->due) | ((a->due == b->due) & (a->handle < b->handle));
}

static void sift_up(seg_due_entry_t *h, size_t i, seg_due_entry_t e)
{
    while (i > 0) {
        size_t parent = (i - 1) / 4;
        if (!less(&e, &h[parent])) break;
        h[i] = h[parent];
        i = parent;
    }
    h[i] = e;
}

int seg_due_push(seg_due_t *d, int64_t due, uint64_t handle)
{
    if (due == SEG_NEVER) return 0;
    if (d->n == d->cap) {
        size_t nc = d->cap ? d->cap * 2 : 1024;
        size_t bytes = (nc + PAD) * sizeof(seg_due_entry_t);
        seg_due_entry_t *blk = aligned_alloc(LINE, (bytes + LINE - 1) / LINE * LINE);
        if (!blk) return -1;
        if (d->h) {
            memcpy(blk + PAD, d->h, d->n * sizeof(*blk));
            free(d->h - PAD);
        }
        d->h = blk + PAD;
        d->cap = nc;
    }
    sift_up(d->h, d->n++, (seg_due_entry_t){due, handle});
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
    seg_due_entry_t *h = d->h, e = h[--d->n];
    size_t i = 0, n = d->n;
    if (n == 0) return;
    /* bottom-up: the hole goes down to a leaf along the smallest children,
     * then the last entry, which belongs near the bottom anyway, rises from
     * there */
    for (size_t c; (c = 4 * i + 1) < n; i = c) {
        /* the next level's line is one of these four: asked for all of
         * them while this one is compared, so the chain of misses halves */
        if (16 * i + 5 < n)
            for (size_t k = 0; k < 4; k++) __builtin_prefetch(&h[4 * (c + k) + 1]);
        if (c + 4 <= n) { /* a full node: a tournament, no branch */
            size_t a = c + (size_t)less(&h[c + 1], &h[c]);
            size_t b = c + 2 + (size_t)less(&h[c + 3], &h[c + 2]);
            c = less(&h[b], &h[a]) ? b : a;
        } else {
            for (size_t k = c + 1; k < n; k++)
                if (less(&h[k], &h[c])) c = k;
        }
        h[i] = h[c];
    }
    sift_up(h, i, e);
}
