/* segmenter/decimal.h: integers in decimal for the writers that run per
 * change event, per Redis argument or per customer and so must not call
 * snprintf (change events, checkpoint commands, the customer hash). Header
 * only, so that the hot path inlines it. Owns nothing. */
#ifndef SEGMENTER_DECIMAL_H
#define SEGMENTER_DECIMAL_H

#include <stdint.h>
#include <string.h>

/* Digits of v in decimal (1 for 0). */
static inline int seg_dec_digits(uint64_t v)
{
    /* clang-format off */
    static const uint64_t pow10[20] = {
        1ULL, 10ULL, 100ULL, 1000ULL, 10000ULL, 100000ULL, 1000000ULL, 10000000ULL,
        100000000ULL, 1000000000ULL, 10000000000ULL, 100000000000ULL, 1000000000000ULL,
        10000000000000ULL, 100000000000000ULL, 1000000000000000ULL, 10000000000000000ULL,
        100000000000000000ULL, 1000000000000000000ULL, 10000000000000000000ULL};
    /* clang-format on */
    uint64_t u = v | 1; /* no power of ten above 1 is odd: same count, and 0 has one digit */
    int t = ((64 - __builtin_clzll(u)) * 1233) >> 12; /* floor(bits * log10 2) */
    return t + (u >= pow10[t]);
}

/* v in decimal at o (no NUL); returns the end. Two digits per division, in
 * 32-bit arithmetic below 10^8 (timestamps take one 64-bit division). */
static inline char *seg_dec_u64(char *o, uint64_t v)
{
    static const char digits2[] =
        "00010203040506070809101112131415161718192021222324252627282930313233"
        "34353637383940414243444546474849505152535455565758596061626364656667"
        "6869707172737475767778798081828384858687888990919293949596979899";
    char *e = o + seg_dec_digits(v), *p = e;
    while (v >= 100000000) {
        uint32_t lo = (uint32_t)(v % 100000000);
        v /= 100000000;
        for (int i = 0; i < 4; i++, lo /= 100) {
            p -= 2;
            memcpy(p, digits2 + 2 * (lo % 100), 2);
        }
    }
    uint32_t w = (uint32_t)v;
    while (w >= 100) {
        unsigned r = w % 100;
        w /= 100;
        p -= 2;
        memcpy(p, digits2 + 2 * r, 2);
    }
    if (w >= 10) {
        p -= 2;
        memcpy(p, digits2 + 2 * w, 2);
    } else {
        *--p = (char)('0' + w);
    }
    return e;
}

/* v in decimal at o, with its sign; returns the end. */
static inline char *seg_dec_i64(char *o, int64_t v)
{
    if (v < 0) {
        *o++ = '-';
        return seg_dec_u64(o, 0 - (uint64_t)v);
    }
    return seg_dec_u64(o, (uint64_t)v);
}

#endif
