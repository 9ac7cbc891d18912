/* tests/unit/stream/test_buf.c: the growable output buffer (buf.c). */
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>
#include "stream/codec.h"

Test(buf, append_grows_and_keeps_content)
{
    strm_buf_t b;
    strm_buf_init(&b);
    cr_assert_null(b.p);
    cr_assert_eq(b.len, 0);
    cr_assert_eq(strm_buf_append(&b, "", 0), 0);
    cr_assert_eq(b.len, 0);
    for (int i = 0; i < 10000; i++) cr_assert_eq(strm_buf_append(&b, "abc", 3), 0);
    cr_assert_eq(b.len, 30000);
    cr_assert_geq(b.cap, b.len);
    for (int i = 0; i < 10000; i++) cr_assert_eq(memcmp(b.p + 3 * i, "abc", 3), 0);
    strm_buf_free(&b);
    cr_assert_null(b.p);
    cr_assert_eq(b.cap, 0);
}

Test(buf, reserve)
{
    strm_buf_t b;
    strm_buf_init(&b);
    cr_assert_eq(strm_buf_reserve(&b, 1000), 0);
    cr_assert_geq(b.cap, 1000);
    size_t cap = b.cap;
    cr_assert_eq(strm_buf_reserve(&b, 10), 0);
    cr_assert_eq(b.cap, cap, "no growth when room is left");
    cr_assert_eq(strm_buf_reserve(&b, SIZE_MAX), -1);
    cr_assert_eq(strm_buf_reserve(&b, SIZE_MAX / 2), -1);
    cr_assert_eq(b.cap, cap, "a failed reserve leaves the buffer alone");
    strm_buf_free(&b);
}
