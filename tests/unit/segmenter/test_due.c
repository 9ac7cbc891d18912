/* tests/unit/segmenter/test_due.c: the due-time index orders by time, then
 * handle, across its calendar's parts, and survives growth. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include "segmenter/segmenter.h"

Test(due, pops_in_time_then_handle_order)
{
    seg_due_t d;
    seg_due_init(&d);
    srand(3);
    for (uint64_t i = 0; i < 5000; i++) seg_due_push(&d, rand() % 1000, i);
    seg_due_push(&d, SEG_NEVER, 99999); /* never due: not stored */
    cr_assert_eq(d.n, 5000);
    seg_due_entry_t prev = {-1, 0}, e;
    size_t n = 0;
    while (seg_due_peek(&d, &e)) {
        cr_assert(e.due > prev.due || (e.due == prev.due && e.handle > prev.handle));
        prev = e;
        seg_due_pop(&d);
        n++;
    }
    cr_assert_eq(n, 5000);
    seg_due_clear(&d);
}

/* Pushes and pops interleaved, with many equal times, against a plain
 * scan for the smallest: every heap size, full and partial nodes. */
Test(due, interleaved_pushes_and_pops_match_a_scan)
{
    seg_due_t d;
    seg_due_init(&d);
    enum { CAP = 4096 };
    static seg_due_entry_t ref[CAP];
    size_t n = 0;
    uint64_t st = 11, handle = 0;
    for (int step = 0; step < 200000; step++) {
        st = st * 6364136223846793005ULL + 1442695040888963407ULL;
        int push = n == 0 || (n < CAP && (st >> 60) < 9);
        if (push) {
            int64_t due = (int64_t)((st >> 20) % 50);
            ref[n++] = (seg_due_entry_t){due, handle};
            cr_assert_eq(seg_due_push(&d, due, handle), 0);
            handle++;
            continue;
        }
        size_t m = 0;
        for (size_t i = 1; i < n; i++)
            if (ref[i].due < ref[m].due ||
                (ref[i].due == ref[m].due && ref[i].handle < ref[m].handle))
                m = i;
        seg_due_entry_t e;
        cr_assert(seg_due_peek(&d, &e));
        cr_assert(e.due == ref[m].due && e.handle == ref[m].handle, "step %d: got (%ld, %lu)", step,
                  (long)e.due, (unsigned long)e.handle);
        seg_due_pop(&d);
        ref[m] = ref[--n];
    }
    cr_assert_eq(d.n, n);
    seg_due_clear(&d);
}

/* The smallest of a reference list, by a scan. */
static size_t ref_min(const seg_due_entry_t *ref, size_t n)
{
    size_t m = 0;
    for (size_t i = 1; i < n; i++)
        if (ref[i].due < ref[m].due || (ref[i].due == ref[m].due && ref[i].handle < ref[m].handle))
            m = i;
    return m;
}

/* The same against a scan, with times spread over every part of the
 * calendar: the current bucket, the ring of buckets ahead, beyond it, far
 * behind the front (a late push), negative times, and jumps of years that
 * leave the ring empty. "now" moves forward as a watermark does, and what
 * is due before it is popped, as the pipeline does, besides single pops. */
Test(due, calendar_parts_match_a_scan)
{
    seg_due_t d;
    seg_due_init(&d);
    enum { CAP = 2048 };
    static seg_due_entry_t ref[CAP];
    size_t n = 0, drained = 0;
    uint64_t st = 5, handle = 0;
    int64_t now = -((int64_t)1 << 36);
    const int64_t day = 86400000;
    for (int step = 0; step < 300000; step++) {
        st = st * 6364136223846793005ULL + 1442695040888963407ULL;
        unsigned r = (unsigned)(st >> 56);
        if (r < 2)
            now += (int64_t)(st >> 20) % (800 * day); /* a jump */
        else
            now += (int64_t)((st >> 24) % 60000);
        unsigned what = (unsigned)(st >> 60);
        if (n == 0 || (n < CAP && what < 9)) {
            int64_t off;
            switch ((st >> 8) % 6) {
            case 0:
                off = (int64_t)((st >> 16) % 1000000);
                break; /* this bucket */
            case 1:
                off = (int64_t)((st >> 16) % (90 * day));
                break; /* the ring */
            case 2:
                off = (int64_t)((st >> 16) % (400 * day));
                break; /* beyond it */
            case 3:
                off = -(int64_t)((st >> 16) % (30 * day));
                break; /* behind */
            case 4:    /* a bucket's edges (2^24 ms), either side */
                off = ((now >> 24) + (int64_t)((st >> 16) % 1000)) * ((int64_t)1 << 24) - now +
                      (int64_t)((st >> 12) % 3) - 1;
                break;
            default:
                off = 0;
            }
            ref[n++] = (seg_due_entry_t){now + off, handle};
            cr_assert_eq(seg_due_push(&d, now + off, handle), 0);
            handle = (handle * 7 + 3) % 1000; /* repeats: ties on time and handle */
            continue;
        }
        seg_due_entry_t e;
        for (;;) { /* one pop, or (what == 15) all due before now */
            if (n == 0) {
                cr_assert_eq(seg_due_peek(&d, &e), 0);
                break;
            }
            size_t m = ref_min(ref, n);
            cr_assert_eq(seg_due_peek(&d, &e), 1);
            cr_assert(e.due == ref[m].due && e.handle == ref[m].handle,
                      "step %d: got (%lld, %llu), expected (%lld, %llu)", step, (long long)e.due,
                      (unsigned long long)e.handle, (long long)ref[m].due,
                      (unsigned long long)ref[m].handle);
            if (what == 15 && e.due >= now) break;
            seg_due_pop(&d);
            ref[m] = ref[--n];
            if (what != 15) break;
            drained++;
        }
    }
    cr_assert_gt(drained, 10000);
    cr_assert_eq(d.n, n);
    seg_due_entry_t e;
    while (n) { /* the rest in order too */
        size_t m = ref_min(ref, n);
        cr_assert_eq(seg_due_peek(&d, &e), 1);
        cr_assert(e.due == ref[m].due && e.handle == ref[m].handle);
        seg_due_pop(&d);
        ref[m] = ref[--n];
    }
    cr_assert_eq(seg_due_peek(&d, &e), 0);
    seg_due_clear(&d);
}

/* Times at the ends of int64 (buckets far apart, negative ones), popped in
 * order; the index is used again after a clear. */
Test(due, extreme_times_and_reuse_after_clear)
{
    const int64_t t[] = {INT64_MAX - 1,
                         INT64_MIN + 1,
                         0,
                         -1,
                         1,
                         INT64_MAX - 2,
                         INT64_MIN + 2,
                         (int64_t)1 << 40,
                         -((int64_t)1 << 40),
                         ((int64_t)1 << 24) - 1,
                         (int64_t)1 << 24};
    enum { N = sizeof t / sizeof t[0] };
    seg_due_t d;
    seg_due_init(&d);
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < N; i++) cr_assert_eq(seg_due_push(&d, t[i], (uint64_t)i), 0);
        seg_due_entry_t e, prev = {INT64_MIN, 0};
        int n = 0;
        while (seg_due_peek(&d, &e) == 1) {
            cr_assert(n == 0 || e.due > prev.due, "round %d: %lld after %lld", round,
                      (long long)e.due, (long long)prev.due);
            cr_assert_eq(t[e.handle], e.due);
            prev = e;
            seg_due_pop(&d);
            n++;
        }
        cr_assert_eq(n, N);
        seg_due_clear(&d);
        seg_due_init(&d);
    }
    seg_due_clear(&d);
}
