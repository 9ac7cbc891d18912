/* tests/unit/segmenter/test_decimal.c: seg_dec_* write what printf writes,
 * at every digit count's edges and over a sweep of values. */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdio.h>
#include "segmenter/decimal.h"

static void same_u64(uint64_t v)
{
    char want[32], got[32];
    snprintf(want, sizeof want, "%" PRIu64, v);
    char *e = seg_dec_u64(got, v);
    *e = 0;
    cr_assert_str_eq(got, want);
    cr_assert_eq(seg_dec_digits(v), (int)strlen(want), "digits of %s", want);
}

static void same_i64(int64_t v)
{
    char want[32], got[32];
    snprintf(want, sizeof want, "%" PRId64, v);
    *seg_dec_i64(got, v) = 0;
    cr_assert_str_eq(got, want);
}

Test(decimal, every_digit_count_at_its_edges)
{
    uint64_t p = 1;
    for (int d = 0; d < 20; d++, p *= 10) {
        same_u64(p - 1);
        same_u64(p);
        same_u64(p + 1);
    }
    same_u64(UINT64_MAX);
    same_u64(UINT64_MAX - 1);
    same_u64(100000000ULL * 100000000ULL - 1); /* two 10^8 chunks, all nines */
}

Test(decimal, a_sweep_of_values)
{
    uint64_t x = 88172645463325252ULL; /* xorshift64: every magnitude, every digit */
    for (int i = 0; i < 100000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        same_u64(x >> (i % 64));
        same_u64((uint64_t)i);
    }
}

Test(decimal, signed_values)
{
    int64_t v[] = {0,         -1,           1, -9, -10, 1700000000000, -1700000000000, INT64_MAX,
                   INT64_MIN, INT64_MIN + 1};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) same_i64(v[i]);
}
