/* tests/unit/state/test_store_mem.c: the in-memory customer store
 * (store_mem.c): customers found by id and by handle across several slabs
 * and table growths, pointers that stay put, every customer on its own
 * cache lines, and a fresh customer that starts initialised. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include "state/store_mem.h"

#define N 40000 /* more than two slabs of 16 384, several table growths */

static size_t id_of(char *buf, size_t cap, int i)
{
    return (size_t)snprintf(buf, cap, "customer-%d", i);
}

Test(store_mem, finds_every_customer_by_id_and_handle_across_slabs)
{
    st_mem_t *m = st_mem_new();
    cr_assert_not_null(m);
    static seg_customer_t *made[N];
    char id[64];
    for (int i = 0; i < N; i++) {
        size_t len = id_of(id, sizeof id, i);
        int created = 0;
        made[i] = st_mem_get(m, id, len, 1, &created);
        cr_assert_not_null(made[i], "customer %d", i);
        cr_assert_eq(created, 1, "customer %d made afresh", i);
        cr_assert_eq(made[i]->handle, (uint64_t)i, "handles are dense, in order of creation");
        cr_assert_eq(made[i]->id_len, len);
        cr_assert_str_eq(made[i]->id, id);
        cr_assert_eq(made[i]->events, 0);
        cr_assert_eq(made[i]->cluster, -1, "a fresh customer has no cluster");
        cr_assert_eq((uintptr_t)made[i] % 64, 0, "customer %d starts on a cache line", i);
        made[i]->events = (uint64_t)i + 1; /* written to every customer, read back below */
    }
    cr_assert_eq(st_mem_count(m), N);
    for (int i = 0; i < N; i++) {
        size_t len = id_of(id, sizeof id, i);
        int created = 1;
        seg_customer_t *c = st_mem_get(m, id, len, 1, &created);
        cr_assert_eq(c, made[i], "customer %d did not move when the store grew", i);
        cr_assert_eq(created, 0);
        cr_assert_eq(st_mem_by_handle(m, (uint64_t)i), made[i]);
        cr_assert_eq(c->events, (uint64_t)i + 1, "customer %d kept what was written", i);
        cr_assert_eq(st_mem_get_hashed(m, id, len, st_mem_hash(id, len), 0, NULL), made[i]);
        if (i > 0) /* customers do not overlap */
            cr_assert_geq((uintptr_t)made[i] - (uintptr_t)made[i - 1], sizeof(seg_customer_t));
    }
    cr_assert_null(st_mem_get(m, "nobody", 6, 0, NULL), "no create: absent stays absent");
    cr_assert_null(st_mem_by_handle(m, N), "a handle past the end");
    cr_assert_eq(st_mem_count(m), N);
    st_mem_free(m);
}

Test(store_mem, hints_for_absent_or_far_customers_change_nothing)
{
    st_mem_t *m = st_mem_new();
    char id[64];
    for (int i = 0; i < 100; i++) {
        size_t len = id_of(id, sizeof id, i);
        cr_assert_not_null(st_mem_get(m, id, len, 1, NULL));
    }
    st_mem_prefetch_slot(m, st_mem_hash("absent", 6));
    st_mem_prefetch_customer(m, st_mem_hash("absent", 6));
    st_mem_prefetch_handle(m, 99);
    st_mem_prefetch_handle(m, 1u << 30); /* beyond the store: ignored */
    cr_assert_eq(st_mem_count(m), 100);
    cr_assert_null(st_mem_get(m, "absent", 6, 0, NULL));
    st_mem_free(m);
}
