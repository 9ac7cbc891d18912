/* stream/codec_int.h: what the codec files share and nobody else sees. The
 * "field visitor" that lets one mapping (codec_map.c) serve both decoders: a
 * decoder describes each value as a strm__val_t that points into the payload,
 * and walks maps and arrays on request through strm__src_t. Also the
 * bounds-checked msgpack cursor (used by the decoder and by file framing) and
 * the deterministic number formatting shared by the encoders. */
#ifndef STRM_CODEC_INT_H
#define STRM_CODEC_INT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include "stream/codec.h"

typedef enum {
    STRM_V_NULL = 1,
    STRM_V_BOOL,
    STRM_V_INT,     /* msgpack signed integer: num.i */
    STRM_V_UINT,    /* msgpack unsigned integer: num.u */
    STRM_V_FLOAT,   /* msgpack float32/64: num.f */
    STRM_V_NUMTEXT, /* JSON number: s/len, grammar already checked */
    STRM_V_STR,     /* s/len; esc: JSON escapes still to decode */
    STRM_V_MAP,     /* n entries at ref */
    STRM_V_ARR,     /* n elements at ref */
    STRM_V_TIME,    /* msgpack timestamp extension: num.i in ms */
    STRM_V_OTHER    /* bin, other ext: never usable as a field */
} strm__vtype_t;

/* One value inside a payload. Points into the payload; never owns anything. */
typedef struct strm__val {
    uint8_t t;   /* strm__vtype_t; 0: absent */
    uint8_t esc; /* STR from JSON containing backslashes */
    uint32_t n;  /* MAP/ARR entries */
    size_t ref;  /* MAP/ARR: JSON token index or msgpack byte offset */
    const char *s;
    size_t len;
    union {
        int64_t i;
        uint64_t u;
        double f;
        int b;
    } num;
} strm__val_t;

/* Called for each entry of a map; key is already unescaped (a JSON key that
 * does not fit in 64 bytes is passed raw, with its raw length). Returning
 * non-zero stops the walk. */
typedef int (*strm__entry_fn)(void *ud, const char *key, size_t klen, const strm__val_t *v);

typedef struct strm__src strm__src_t;
struct strm__src {
    /* Visits map's entries in order. Returns 0, or -1 (reason set) when the
     * payload turns out to be malformed. */
    int (*each)(strm__src_t *src, const strm__val_t *map, strm__entry_fn fn, void *ud);
    /* Element i of arr into *out; -1 when out of range or malformed. */
    int (*at)(strm__src_t *src, const strm__val_t *arr, uint32_t i, strm__val_t *out);
    const char *reason; /* set by each/at on failure */
};

#define TS_MAX 253402300799999LL /* 9999-12-31T23:59:59.999Z */

/* Event type and channel of a name (SEG_EV_OTHER / -1 when unknown). */
uint8_t strm__type_of(const char *s, size_t n);
int strm__channel_of(const char *s, size_t n);

/* Test hook: 1 when the msgpack decoder's fast path for plain contract
 * events either declines buf or decodes it exactly as the general path. */
int strm__msgpack_fast_agrees(const void *buf, size_t len);

/* Maps a decoded top-level map onto ev (contract, Segment or GA4 shape).
 * Returns 0, or -1 with *reason set. */
int strm__map_event(strm__src_t *src, const strm__val_t *root, seg_event_t *ev,
                    const char **reason);

/* JSON string body (between the quotes) -> UTF-8 in dst. Returns the decoded
 * length, -1 on a bad escape / lone surrogate / raw control byte, -2 when it
 * does not fit in cap (then *wrote, if not NULL, is the length of the whole
 * characters that did fit; the rest is not looked at). */
long strm__json_unescape(const char *s, size_t len, char *dst, size_t cap, size_t *wrote);

/* Test hook: 1 when the JSON decoder's fast path for compact JSON either
 * declines js or gives exactly the tokens jsmn and the grammar check give. */
int strm__json_fast_agrees(const char *js, size_t len);

/* 1 when s[0..n) holds a byte that is a control character, non-ASCII, or a
 * backslash: such strings take the careful path. Eight bytes at a time. */
static inline int strm__needs_care(const char *s, size_t n)
{
    const uint64_t ones = 0x0101010101010101ULL, high = 0x8080808080808080ULL;
    uint64_t acc = 0;
    size_t k = 0;
    for (; k + 8 <= n; k += 8) {
        uint64_t w, b;
        memcpy(&w, s + k, 8);
        b = w ^ (ones * '\\');
        acc |= w | ((w - ones * 0x20) & ~w) | ((b - ones) & ~b);
    }
    if (k < n && n >= 8) { /* the last 8 bytes, overlapping what was seen */
        uint64_t w, b;
        memcpy(&w, s + n - 8, 8);
        b = w ^ (ones * '\\');
        acc |= w | ((w - ones * 0x20) & ~w) | ((b - ones) & ~b);
    } else if (n >= 4) { /* 4..7 bytes: two overlapping words */
        uint32_t lo, hi;
        memcpy(&lo, s, 4);
        memcpy(&hi, s + n - 4, 4);
        uint64_t w = (uint64_t)lo | (uint64_t)hi << 32, b = w ^ (ones * '\\');
        acc |= w | ((w - ones * 0x20) & ~w) | ((b - ones) & ~b);
    } else {
        for (; k < n; k++) {
            unsigned char c = (unsigned char)s[k];
            if (c < 0x20 || c >= 0x80 || c == '\\') return 1;
        }
    }
    return (acc & high) != 0;
}

/* ---------- msgpack cursor ---------- */
/* Walks one complete msgpack object at p[0..len) without recursion, checking
 * every length and count against the bytes left. Returns 0 with *used set,
 * 1 when more bytes are needed (truncated), -1 on a byte that is never valid
 * (0xc1). */
int strm__mp_skip(const uint8_t *p, size_t len, size_t *used);

/* ---------- formatting shared by the encoders ---------- */
/* Shortest "%.Ng" (N = 15..17) that reads back as exactly x. Finite x only.
 * Returns the length written (buf holds at least 32 bytes). */
int strm__fmt_double(char *buf, double x);
/* x rounded to 1e-6 (stable across runs), for derived features. */
double strm__round6(double x);
/* Appends s as a JSON string (quotes included): control bytes escaped, bytes
 * that are not valid UTF-8 replaced by U+FFFD so the output is always valid
 * JSON. Returns 0 or -1 (no memory). */
int strm__json_str(strm_buf_t *b, const char *s, size_t len);
/* 1 when s[0..len) is valid UTF-8 (no overlongs, no surrogates). */
int strm__utf8_valid(const char *s, size_t len);
/* Length of the valid UTF-8 sequence (2..4 bytes) at s[0..n), or 0. */
size_t strm__utf8_seq(const unsigned char *s, size_t n);

#endif
