/* segmenter/due.c: the due-time index. Finds every customer due at or
 * before W without scanning everyone, in (due, handle) order. Stale entries
 * are allowed (lazy deletion): the caller compares with the customer's
 * current due.
 *
 * A calendar queue: time is cut into buckets of 2^SEG_DUE_SHIFT ms. The
 * current bucket's entries are in `front`, a small heap; each of the next
 * RING buckets is an unsorted array in a ring; entries further ahead wait
 * in `far`, a heap. A push is an append to its bucket, a pop takes the
 * front's top, and a bucket is heaped only when time reaches it. With one
 * entry per customer a single heap over all of them outgrew the L2 cache,
 * and every pop walked a chain of lines the customers' traffic had evicted
 * (≈ 276 cycles a pop over 50 000 customers). Buckets of hours rather
 * than minutes keep the ring's headers (16 KiB) in cache; the front then
 * holds a few hundred entries, still a heap of four levels.
 *
 * Invariant: front holds the entries whose bucket is <= cur, the ring those
 * in (cur, cur + RING), far the rest. An empty front is refilled from the
 * next bucket that holds anything when it is next looked at. */
#include <stdlib.h>
#include <string.h>
#include "segmenter/segmenter.h"

#define SEG_DUE_SHIFT 24   /* buckets of 2^24 ms, ≈ 4.7 hours */
#define RING          1024 /* ≈ 199 days of buckets: lifecycle's thresholds fit */
#define LINE          64
/* entries before h[0] in the block, so that h[1], and every h[4i + 1], is
 * at the start of a line */
#define PAD (LINE / sizeof(seg_due_entry_t) - 1)

static int64_t bucket_of(int64_t due)
{
    return due >> SEG_DUE_SHIFT; /* floor, negative times included */
}

/* ---- a 4-ary min-heap, its four children in one 64-byte line ---- */

static void heap_free(seg_due_heap_t *hp)
{
    if (hp->h) free(hp->h - PAD);
    hp->h = NULL;
    hp->n = hp->cap = 0;
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

static int heap_push(seg_due_heap_t *hp, seg_due_entry_t e)
{
    if (hp->n == hp->cap) {
        size_t nc = hp->cap ? hp->cap * 2 : 64;
        size_t bytes = (nc + PAD) * sizeof(seg_due_entry_t);
        seg_due_entry_t *blk = aligned_alloc(LINE, (bytes + LINE - 1) / LINE * LINE);
        if (!blk) return -1;
        if (hp->h) {
            memcpy(blk + PAD, hp->h, hp->n * sizeof(*blk));
            free(hp->h - PAD);
        }
        hp->h = blk + PAD;
        hp->cap = nc;
    }
    sift_up(hp->h, hp->n++, e);
    return 0;
}

static void heap_pop(seg_due_heap_t *hp)
{
    if (hp->n == 0) return;
    seg_due_entry_t *h = hp->h, e = h[--hp->n];
    size_t i = 0, n = hp->n;
    if (n == 0) return;
    /* bottom-up: the hole goes down to a leaf along the smallest children,
     * then the last entry, which belongs near the bottom anyway, rises from
     * there */
    for (size_t c; (c = 4 * i + 1) < n; i = c) {
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

/* ---- the calendar ---- */

void seg_due_init(seg_due_t *d)
{
    memset(d, 0, sizeof(*d));
}

void seg_due_clear(seg_due_t *d)
{
    heap_free(&d->front);
    heap_free(&d->far);
    if (d->ring)
        for (size_t i = 0; i < RING; i++) free(d->ring[i].v);
    free(d->ring);
    seg_due_init(d);
}

static int ring_add(seg_due_t *d, int64_t b, seg_due_entry_t e)
{
    seg_due_bucket_t *k = &d->ring[(uint64_t)b & (RING - 1)];
    if (k->n == k->cap) {
        uint32_t nc = k->cap ? k->cap * 2 : 8;
        seg_due_entry_t *v = realloc(k->v, nc * sizeof(*v));
        if (!v) return -1;
        k->v = v;
        k->cap = nc;
    }
    k->v[k->n++] = e;
    d->ring_n++;
    return 0;
}

/* Where an entry goes when the front's bucket is cur. */
static int place(seg_due_t *d, seg_due_entry_t e)
{
    int64_t b = bucket_of(e.due);
    if (b <= d->cur) return heap_push(&d->front, e);
    /* b - cur, not b < cur + RING: no overflow near INT64_MAX */
    if ((uint64_t)b - (uint64_t)d->cur < RING) return ring_add(d, b, e);
    return heap_push(&d->far, e);
}

/* The front ran dry: the next bucket that holds anything becomes the
 * front, and the far entries that come within the ring's reach move in. */
static int refill(seg_due_t *d)
{
    if (d->ring_n == 0) {
        d->cur = bucket_of(d->far.h[0].due);
    } else {
        seg_due_bucket_t *k;
        while ((k = &d->ring[(uint64_t)++d->cur & (RING - 1)])->n == 0) {
        }
        for (uint32_t i = 0; i < k->n; i++)
            if (heap_push(&d->front, k->v[i]) < 0) return -1;
        d->ring_n -= k->n;
        k->n = 0;
    }
    while (d->far.n && (uint64_t)bucket_of(d->far.h[0].due) - (uint64_t)d->cur < RING) {
        seg_due_entry_t e = d->far.h[0];
        heap_pop(&d->far);
        if (place(d, e) < 0) return -1;
    }
    return 0;
}

int seg_due_push(seg_due_t *d, int64_t due, uint64_t handle)
{
    if (due == SEG_NEVER) return 0;
    if (!d->ring) {
        d->ring = calloc(RING, sizeof(*d->ring));
        if (!d->ring) return -1;
    }
    if (d->failed) return -1;
    if (d->n == 0) d->cur = bucket_of(due); /* empty: time starts here */
    if (place(d, (seg_due_entry_t){due, handle}) < 0) return d->failed = 1, -1;
    d->n++;
    return 0;
}

/* The front's top is the smallest of all: every other entry is in a later
 * bucket. An empty front with entries elsewhere is refilled here, so that
 * a pop never allocates. */
int seg_due_peek(seg_due_t *d, seg_due_entry_t *out)
{
    if (d->failed) return -1;
    if (d->front.n == 0) {
        if (d->n == 0) return 0;
        /* out of memory half way through a refill: entries may be in two
         * places or none, so every later peek fails too and the caller
         * stops (a restart rebuilds the index from the customers) */
        if (refill(d) < 0) return d->failed = 1, -1;
    }
    *out = d->front.h[0];
    return 1;
}

void seg_due_pop(seg_due_t *d)
{
    if (d->front.n == 0) return;
    heap_pop(&d->front);
    d->n--;
}
