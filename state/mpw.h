/* state/mpw.h: a msgpack writer that appends to a msgpack_sbuffer, writing
 * byte for byte what msgpack-c's packer writes (the smallest integer form,
 * doubles as float 64, str8 from 32 bytes, fix/16/32 map and array heads),
 * without msgpack-c's call through a function pointer per value: a
 * customer's packed state is some ninety values, and packing it that way
 * was most of a checkpoint's time on the loop. Errors (out of memory) are
 * sticky in `err`: writers carry on as no-ops, and the caller checks once. */
#ifndef ST_MPW_H
#define ST_MPW_H

#include <msgpack.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct mpw {
    msgpack_sbuffer *b;
    int err;
} mpw_t;

/* Room for n more bytes at the end of the buffer, or NULL (err set). */
static inline uint8_t *mpw_room(mpw_t *w, size_t n)
{
    msgpack_sbuffer *b = w->b;
    if (b->alloc - b->size < n) {
        size_t na = b->alloc ? b->alloc : 1024;
        while (na - b->size < n) na *= 2;
        char *d = realloc(b->data, na);
        if (!d) {
            w->err = 1;
            return NULL;
        }
        b->data = d;
        b->alloc = na;
    }
    return (uint8_t *)b->data + b->size;
}

static inline void mpw_be(uint8_t *o, uint64_t v, int n)
{
    /* n is a constant wherever this is inlined: one store */
    if (n == 8) {
        uint64_t b = __builtin_bswap64(v);
        memcpy(o, &b, 8);
    } else if (n == 4) {
        uint32_t b = __builtin_bswap32((uint32_t)v);
        memcpy(o, &b, 4);
    } else if (n == 2) {
        uint16_t b = __builtin_bswap16((uint16_t)v);
        memcpy(o, &b, 2);
    } else if (n == 1) {
        o[0] = (uint8_t)v;
    }
}

/* A head byte then n big-endian bytes of v. */
static inline void mpw_head(mpw_t *w, uint8_t head, uint64_t v, int n)
{
    uint8_t *o = mpw_room(w, 9);
    if (!o) return;
    o[0] = head;
    mpw_be(o + 1, v, n);
    w->b->size += (size_t)n + 1;
}

static inline void mpw_byte(mpw_t *w, uint8_t v)
{
    uint8_t *o = mpw_room(w, 1);
    if (!o) return;
    o[0] = v;
    w->b->size++;
}

static inline void mpw_nil(mpw_t *w)
{
    mpw_byte(w, 0xc0);
}

static inline void mpw_bool(mpw_t *w, int v)
{
    mpw_byte(w, v ? 0xc3 : 0xc2);
}

static inline void mpw_u64(mpw_t *w, uint64_t v)
{
    if (v < 128)
        mpw_byte(w, (uint8_t)v);
    else if (v < 1u << 8)
        mpw_head(w, 0xcc, v, 1);
    else if (v < 1u << 16)
        mpw_head(w, 0xcd, v, 2);
    else if (v < 1ull << 32)
        mpw_head(w, 0xce, v, 4);
    else
        mpw_head(w, 0xcf, v, 8);
}

static inline void mpw_i64(mpw_t *w, int64_t v)
{
    if (v >= 0)
        mpw_u64(w, (uint64_t)v);
    else if (v >= -32)
        mpw_byte(w, (uint8_t)v);
    else if (v >= -128)
        mpw_head(w, 0xd0, (uint64_t)v, 1);
    else if (v >= -32768)
        mpw_head(w, 0xd1, (uint64_t)v, 2);
    else if (v >= -2147483647 - 1)
        mpw_head(w, 0xd2, (uint64_t)v, 4);
    else
        mpw_head(w, 0xd3, (uint64_t)v, 8);
}

static inline void mpw_f64(mpw_t *w, double v)
{
    uint64_t bits;
    memcpy(&bits, &v, 8);
    mpw_head(w, 0xcb, bits, 8);
}

/* A map or array head: fix form under 16, then 16 or 32 bits. */
static inline void mpw_count(mpw_t *w, uint8_t fix, uint8_t h16, size_t n)
{
    if (n < 16)
        mpw_byte(w, (uint8_t)(fix | n));
    else if (n < 65536)
        mpw_head(w, h16, n, 2);
    else
        mpw_head(w, (uint8_t)(h16 + 1), n, 4);
}

static inline void mpw_map(mpw_t *w, size_t n)
{
    mpw_count(w, 0x80, 0xde, n);
}

static inline void mpw_array(mpw_t *w, size_t n)
{
    mpw_count(w, 0x90, 0xdc, n);
}

static inline void mpw_str(mpw_t *w, const char *s, size_t n)
{
    uint8_t *o = mpw_room(w, n + 5);
    if (!o) return;
    size_t h = n < 32 ? 1 : n < 256 ? 2 : n < 65536 ? 3 : 5;
    o[0] = n < 32 ? (uint8_t)(0xa0 | n) : n < 256 ? 0xd9 : n < 65536 ? 0xda : 0xdb;
    mpw_be(o + 1, n, (int)h - 1);
    memcpy(o + h, s, n);
    w->b->size += h + n;
}

/* A string literal: its length is known when compiling. */
#define MPW_LIT(w, lit) mpw_str((w), "" lit, sizeof(lit) - 1)

static inline void mpw_cstr(mpw_t *w, const char *s)
{
    mpw_str(w, s, strlen(s));
}

#endif
