/* tests/unit/segmenter/test_due.c: the due-time heap orders by time, then
 * handle, and survives growth. */
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
