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
