/* stream/codec_msgpack.c: msgpack payload -> seg_event_t, through a
 * bounds-checked cursor over the msgpack format written here (msgpack-c's
 * unpacker allocates whatever a header claims). Plain contract events (the
 * common case) take a fast path that fills the event directly and declines
 * anything the general path would treat specially. Every length and count is
 * checked against the bytes left before anything is read, and nesting is
 * walked with a counter of pending items, never recursion, so neither a
 * 5-byte map32 claiming 2^32 entries nor deep nesting costs memory or stack.
 * Owns strm__mp_skip (also used by file framing). Never allocates, never
 * keeps a pointer into the payload after returning. */
#include <string.h>
#include "stream/codec_int.h"

#define MP_TIME_EXT (-1) /* msgpack timestamp extension type */

typedef struct mp_src {
    strm__src_t base;
    const uint8_t *p;
    size_t len;
    size_t root_ref; /* first byte after the root map header */
    size_t root_end; /* end of the root map, once walked */
} mp_src_t;

static inline uint16_t be16(const uint8_t *p)
{
    return (uint16_t)((unsigned)p[0] << 8 | p[1]);
}
static inline uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline uint64_t be64(const uint8_t *p)
{
    return (uint64_t)be32(p) << 32 | be32(p + 4);
}

/* Timestamp extension body -> ms since epoch (floor). */
static int mp_time(const uint8_t *d, size_t n, int64_t *ms)
{
    int64_t sec;
    uint32_t nsec;
    if (n == 4) {
        sec = be32(d);
        nsec = 0;
    } else if (n == 8) {
        uint64_t v = be64(d);
        nsec = (uint32_t)(v >> 34);
        sec = (int64_t)(v & 0x3FFFFFFFFULL);
    } else if (n == 12) {
        nsec = be32(d);
        sec = (int64_t)be64(d + 4);
    } else {
        return -1;
    }
    if (nsec >= 1000000000u || sec > INT64_MAX / 1000 - 1 || sec < INT64_MIN / 1000 + 1) return -1;
    *ms = sec * 1000 + nsec / 1000000;
    return 0;
}

/* Reads one value header at p[*pos..len). Scalars and strings are complete
 * in *v; for a map or array, v->n is the count and v->ref the first byte of
 * its body (not walked). Returns 0, 1 when truncated, -1 on 0xc1. Every
 * count is checked against the bytes left: an entry takes at least a byte. */
static int mp_head(const uint8_t *p, size_t len, size_t *pos, strm__val_t *v)
{
    size_t at = *pos;
    if (at >= len) return 1;
    size_t left = len - at - 1;
    const uint8_t *q = p + at + 1;
    uint8_t c = p[at];
    size_t hdr = 0;    /* bytes after the type byte before the body */
    uint64_t body = 0; /* str/bin/ext bytes */
    v->esc = 0;

    if (c <= 0x7f) {
        v->t = STRM_V_INT;
        v->num.i = c;
    } else if (c <= 0x8f || (c >= 0x90 && c <= 0x9f)) {
        v->t = c <= 0x8f ? STRM_V_MAP : STRM_V_ARR;
        v->n = c & 0x0f;
    } else if (c <= 0xbf) {
        v->t = STRM_V_STR;
        body = c & 0x1f;
    } else if (c >= 0xe0) {
        v->t = STRM_V_INT;
        v->num.i = (int8_t)c;
    } else {
        switch (c) {
        case 0xc0:
            v->t = STRM_V_NULL;
            break;
        case 0xc1:
            return -1;
        case 0xc2:
        case 0xc3:
            v->t = STRM_V_BOOL;
            v->num.b = c == 0xc3;
            break;
        case 0xc4: /* bin 8/16/32 */
        case 0xc5:
        case 0xc6:
        case 0xd9: /* str 8/16/32 */
        case 0xda:
        case 0xdb:
            hdr = (c == 0xc4 || c == 0xd9) ? 1 : (c == 0xc5 || c == 0xda) ? 2 : 4;
            if (left < hdr) return 1;
            body = hdr == 1 ? q[0] : hdr == 2 ? be16(q) : be32(q);
            v->t = c >= 0xd9 ? STRM_V_STR : STRM_V_OTHER;
            break;
        case 0xc7: /* ext 8/16/32: length, type, data */
        case 0xc8:
        case 0xc9:
        case 0xd4: /* fixext 1/2/4/8/16: type, data */
        case 0xd5:
        case 0xd6:
        case 0xd7:
        case 0xd8: {
            size_t lh = c == 0xc7 ? 1 : c == 0xc8 ? 2 : c == 0xc9 ? 4 : 0;
            if (left < lh + 1) return 1;
            body = lh == 0   ? (uint64_t)1 << (c - 0xd4)
                   : lh == 1 ? q[0]
                   : lh == 2 ? be16(q)
                             : be32(q);
            hdr = lh + 1;
            int8_t type = (int8_t)q[lh];
            v->t = STRM_V_OTHER;
            if (type == MP_TIME_EXT && body <= left - hdr) {
                int64_t ms;
                if (mp_time(q + hdr, (size_t)body, &ms) == 0) {
                    v->t = STRM_V_TIME;
                    v->num.i = ms;
                }
            }
            break;
        }
        case 0xca:
            if (left < 4) return 1;
            {
                uint32_t b = be32(q);
                float f;
                memcpy(&f, &b, 4);
                v->t = STRM_V_FLOAT;
                v->num.f = f;
            }
            hdr = 4;
            break;
        case 0xcb:
            if (left < 8) return 1;
            {
                uint64_t b = be64(q);
                memcpy(&v->num.f, &b, 8);
                v->t = STRM_V_FLOAT;
            }
            hdr = 8;
            break;
        case 0xcc:
        case 0xcd:
        case 0xce:
        case 0xcf:
            hdr = (size_t)1 << (c - 0xcc);
            if (left < hdr) return 1;
            v->t = STRM_V_UINT;
            v->num.u = hdr == 1 ? q[0] : hdr == 2 ? be16(q) : hdr == 4 ? be32(q) : be64(q);
            break;
        case 0xd0:
        case 0xd1:
        case 0xd2:
        case 0xd3:
            hdr = (size_t)1 << (c - 0xd0);
            if (left < hdr) return 1;
            v->t = STRM_V_INT;
            v->num.i = hdr == 1   ? (int8_t)q[0]
                       : hdr == 2 ? (int16_t)be16(q)
                       : hdr == 4 ? (int32_t)be32(q)
                                  : (int64_t)be64(q);
            break;
        case 0xdc:
        case 0xdd:
        case 0xde:
        case 0xdf:
            hdr = (c == 0xdc || c == 0xde) ? 2 : 4;
            if (left < hdr) return 1;
            v->t = c >= 0xde ? STRM_V_MAP : STRM_V_ARR;
            v->n = hdr == 2 ? be16(q) : be32(q);
            break;
        }
    }
    if (body > left - hdr) return 1;
    left -= hdr;
    if (v->t == STRM_V_MAP || v->t == STRM_V_ARR) {
        uint64_t need = v->t == STRM_V_MAP ? 2 * (uint64_t)v->n : v->n;
        if (need > left) return 1;
    } else if (v->t == STRM_V_STR) {
        v->s = (const char *)q + hdr;
        v->len = (size_t)body;
    }
    *pos = at + 1 + hdr + (size_t)body;
    v->ref = *pos;
    return 0;
}

/* Skips `items` complete values starting at *pos. */
static int mp_skip_items(const uint8_t *p, size_t len, size_t *pos, uint64_t items)
{
    strm__val_t v;
    while (items) {
        int r = mp_head(p, len, pos, &v);
        if (r) return r;
        items--;
        if (v.t == STRM_V_MAP)
            items += 2 * (uint64_t)v.n;
        else if (v.t == STRM_V_ARR)
            items += v.n;
        if (items > len - *pos) return 1; /* each pending item needs a byte */
    }
    return 0;
}

int strm__mp_skip(const uint8_t *p, size_t len, size_t *used)
{
    size_t pos = 0;
    int r = mp_skip_items(p, len, &pos, 1);
    if (r == 0) *used = pos;
    return r;
}

static const char *mp_reason(int r)
{
    return r > 0 ? "truncated_msgpack" : "bad_msgpack";
}

static int mp_each(strm__src_t *src, const strm__val_t *map, strm__entry_fn fn, void *ud)
{
    mp_src_t *m = (mp_src_t *)src;
    size_t pos = map->ref;
    strm__val_t k, v;
    int r;
    const uint8_t *p = m->p;
    size_t len = m->len;
    for (uint32_t e = 0; e < map->n; e++) {
        /* fast paths: fixstr keys, fixstr / fixint values */
        if (pos < len && p[pos] >= 0xa0 && p[pos] <= 0xbf && (size_t)(p[pos] & 0x1f) < len - pos) {
            k.t = STRM_V_STR;
            k.s = (const char *)p + pos + 1;
            k.len = p[pos] & 0x1f;
            pos += 1 + k.len;
        } else {
            if ((r = mp_head(p, len, &pos, &k)) != 0) goto fail;
            if ((k.t == STRM_V_MAP || k.t == STRM_V_ARR) &&
                (r = mp_skip_items(p, len, &pos, k.t == STRM_V_MAP ? 2 * (uint64_t)k.n : k.n)))
                goto fail;
        }
        uint8_t c = pos < len ? p[pos] : 0xc1;
        if (c >= 0xa0 && c <= 0xbf && (size_t)(c & 0x1f) < len - pos) {
            v.t = STRM_V_STR;
            v.esc = 0;
            v.s = (const char *)p + pos + 1;
            v.len = c & 0x1f;
            pos += 1 + v.len;
        } else if (c <= 0x7f) {
            v.t = STRM_V_INT;
            v.num.i = c;
            pos++;
        } else {
            if ((r = mp_head(p, len, &pos, &v)) != 0) goto fail;
            if ((v.t == STRM_V_MAP || v.t == STRM_V_ARR) &&
                (r = mp_skip_items(p, len, &pos, v.t == STRM_V_MAP ? 2 * (uint64_t)v.n : v.n)))
                goto fail;
        }
        if (k.t == STRM_V_STR && fn(ud, k.s, k.len, &v)) return 0;
    }
    if (map->ref == m->root_ref) m->root_end = pos;
    return 0;
fail:
    src->reason = mp_reason(r);
    return -1;
}

static int mp_at(strm__src_t *src, const strm__val_t *arr, uint32_t idx, strm__val_t *out)
{
    mp_src_t *m = (mp_src_t *)src;
    if (arr->t != STRM_V_ARR || idx >= arr->n) return -1;
    size_t pos = arr->ref;
    int r = mp_skip_items(m->p, m->len, &pos, idx);
    if (r == 0) r = mp_head(m->p, m->len, &pos, out);
    if (r) {
        src->reason = mp_reason(r);
        return -1;
    }
    return 0;
}

/* ---------- the fast path: plain contract events ---------- */

/* The helpers below run a few times per event: left to itself the compiler
 * kept some of them as calls, with every out-parameter through memory. */
#define FAST_INLINE static inline __attribute__((always_inline))

/* A fixstr or str8 at p[*pos..len); 0 when it is not one or is cut short. */
FAST_INLINE int fast_str(const uint8_t *p, size_t len, size_t *pos, const char **s, size_t *n)
{
    size_t at = *pos, hdr, body;
    if (at >= len) return 0;
    if (p[at] >= 0xa0 && p[at] <= 0xbf) {
        hdr = 1;
        body = p[at] & 0x1f;
    } else if (p[at] == 0xd9 && at + 1 < len) {
        hdr = 2;
        body = p[at + 1];
    } else {
        return 0;
    }
    if (body > len - at - hdr) return 0;
    *s = (const char *)p + at + hdr;
    *n = body;
    *pos = at + hdr + body;
    return 1;
}

/* A string the general path would copy as it is (printable ASCII). */
FAST_INLINE int fast_plain(const uint8_t *p, size_t len, size_t *pos, const char **s, size_t *n,
                           size_t max)
{
    return fast_str(p, len, pos, s, n) && *n <= max && !strm__needs_care(*s, *n);
}

/* A non-negative integer (positive fixint, uint 8..64, int 8..64). */
FAST_INLINE int fast_uint(const uint8_t *p, size_t len, size_t *pos, uint64_t *out)
{
    size_t at = *pos;
    if (at >= len) return 0;
    uint8_t c = p[at];
    if (c <= 0x7f) {
        *out = c;
        *pos = at + 1;
        return 1;
    }
    if (c < 0xcc || c > 0xd3) return 0;
    size_t n = (size_t)1 << ((c - 0xcc) & 3);
    if (n > len - at - 1) return 0;
    const uint8_t *q = p + at + 1;
    uint64_t v = n == 1 ? q[0] : n == 2 ? be16(q) : n == 4 ? be32(q) : be64(q);
    if (c >= 0xd0) { /* signed: only what is not negative */
        if (v >> (8 * n - 1)) return 0;
    }
    *out = v;
    *pos = at + 1 + n;
    return 1;
}

enum {
    F_ID = 1 << 0,
    F_TYPE = 1 << 1,
    F_TS = 1 << 2,
    F_AMOUNT = 1 << 3,
    F_CATEGORY = 1 << 4,
    F_CHANNEL = 1 << 5,
    F_DISCOUNT = 1 << 6,
    F_EVENT_ID = 1 << 7,
    F_TRAITS = 1 << 8,
};

/* k == lit for the fixed key lengths below: wide loads, no memcmp call */
FAST_INLINE int key_is(const char *k, const char *lit, size_t n)
{
    uint64_t a = 0, b = 0, c = 0, d = 0;
    if (n >= 8) {
        memcpy(&a, k, 8), memcpy(&b, lit, 8);
        memcpy(&c, k + n - 8, 8), memcpy(&d, lit + n - 8, 8);
    } else if (n >= 4) {
        uint32_t w, x, y, z;
        memcpy(&w, k, 4), memcpy(&x, lit, 4);
        memcpy(&y, k + n - 4, 4), memcpy(&z, lit + n - 4, 4);
        a = w, b = x, c = y, d = z;
    } else {
        return memcmp(k, lit, n) == 0;
    }
    return a == b && c == d;
}

FAST_INLINE int fast_key(const char *k, size_t n)
{
    switch (n) {
    case 2:
        return k[0] == 't' && k[1] == 's' ? F_TS : 0;
    case 4:
        return key_is(k, "type", 4) ? F_TYPE : 0;
    case 6:
        return key_is(k, "amount", 6) ? F_AMOUNT : key_is(k, "traits", 6) ? F_TRAITS : 0;
    case 7:
        return key_is(k, "channel", 7) ? F_CHANNEL : 0;
    case 8:
        return key_is(k, "category", 8)   ? F_CATEGORY
               : key_is(k, "discount", 8) ? F_DISCOUNT
               : key_is(k, "event_id", 8) ? F_EVENT_ID
                                          : 0;
    case 11:
        return key_is(k, "customer_id", 11) ? F_ID : 0;
    }
    return 0;
}

/* memcpy for the short strings events are made of, without a call. */
FAST_INLINE void copy_str(char *dst, const char *src, size_t n)
{
    if (n >= 8 && n <= 16) {
        uint64_t a, b;
        memcpy(&a, src, 8);
        memcpy(&b, src + n - 8, 8);
        memcpy(dst, &a, 8);
        memcpy(dst + n - 8, &b, 8);
    } else if (n >= 4 && n < 8) {
        uint32_t a, b;
        memcpy(&a, src, 4);
        memcpy(&b, src + n - 4, 4);
        memcpy(dst, &a, 4);
        memcpy(dst + n - 4, &b, 4);
    } else {
        memcpy(dst, src, n);
    }
    dst[n] = 0;
}

/* Decodes a contract event made only of what the mapping takes as it is:
 * known keys once each, printable ASCII strings that fit, non-negative
 * integer ts, numeric amount, boolean discount, a flat traits map of such
 * strings. The same ev as the general path, without the visitor; anything
 * else (nulls, other keys or types, escapes, non-ASCII, over-long strings,
 * timestamps as strings...) returns -1 and takes the general path, which
 * also names every rejection. */
static int fast_contract(const uint8_t *p, size_t len, seg_event_t *ev)
{
    size_t pos, sl;
    const char *s;
    uint32_t n, seen = 0;
    if (len >= 1 && p[0] >= 0x80 && p[0] <= 0x8f) {
        n = p[0] & 0x0f;
        pos = 1;
    } else if (len >= 3 && p[0] == 0xde) {
        n = be16(p + 1);
        pos = 3;
    } else {
        return -1;
    }
    seg_event_reset(ev);
    for (uint32_t e = 0; e < n; e++) {
        /* keys: fixstr only here (a str8 key takes the general path) */
        if (pos >= len) return -1;
        size_t kl = (size_t)p[pos] - 0xa0;
        if (kl > 31 || kl >= len - pos) return -1;
        const char *k = (const char *)p + pos + 1;
        pos += 1 + kl;
        int f = fast_key(k, kl);
        if (!f || (seen & (uint32_t)f)) return -1;
        seen |= (uint32_t)f;
        switch (f) {
        case F_ID:
            if (!fast_plain(p, len, &pos, &s, &sl, SEG_ID_MAX) || sl == 0) return -1;
            copy_str(ev->customer_id, s, sl);
            ev->id_len = (uint8_t)sl;
            break;
        case F_TYPE:
            if (!fast_str(p, len, &pos, &s, &sl)) return -1;
            ev->type = strm__type_of(s, sl);
            break;
        case F_TS: {
            uint64_t t;
            if (!fast_uint(p, len, &pos, &t) || t > (uint64_t)TS_MAX) return -1;
            ev->ts = (int64_t)t;
            break;
        }
        case F_AMOUNT: {
            double d;
            uint64_t u;
            if (pos < len && p[pos] == 0xcb && len - pos > 8) {
                uint64_t b = be64(p + pos + 1);
                memcpy(&d, &b, 8);
                pos += 9;
            } else if (pos < len && p[pos] == 0xca && len - pos > 4) {
                uint32_t b = be32(p + pos + 1);
                float fl;
                memcpy(&fl, &b, 4);
                d = fl;
                pos += 5;
            } else if (fast_uint(p, len, &pos, &u)) {
                d = (double)u;
            } else {
                return -1;
            }
            if (!(d >= 0) || d > SEG_AMOUNT_MAX) return -1; /* NaN, negative, too large */
            ev->amount = d == 0 ? 0 : d;
            ev->has_amount = 1;
            break;
        }
        case F_CATEGORY:
            if (!fast_plain(p, len, &pos, &s, &sl, SEG_CATEGORY_MAX)) return -1;
            copy_str(ev->category, s, sl);
            ev->category_len = (uint8_t)sl;
            break;
        case F_CHANNEL: {
            if (!fast_str(p, len, &pos, &s, &sl)) return -1;
            int ch = strm__channel_of(s, sl);
            if (ch < 0) return -1;
            ev->channel = (uint8_t)ch;
            break;
        }
        case F_DISCOUNT:
            if (pos >= len || (p[pos] != 0xc2 && p[pos] != 0xc3)) return -1;
            ev->discount = p[pos++] == 0xc3;
            break;
        case F_EVENT_ID:
            if (!fast_plain(p, len, &pos, &s, &sl, SEG_EVID_MAX)) return -1;
            copy_str(ev->event_id, s, sl);
            ev->event_id_len = (uint8_t)sl;
            break;
        case F_TRAITS: {
            if (pos >= len || p[pos] < 0x80 || p[pos] > 0x8f) return -1;
            uint32_t m = p[pos++] & 0x0f;
            if (m > SEG_TRAITS_MAX) return -1;
            for (uint32_t i = 0; i < m; i++) {
                const char *v;
                size_t vl;
                if (!fast_plain(p, len, &pos, &k, &kl, SEG_TRAIT_KEY - 1) || kl == 0 ||
                    !fast_plain(p, len, &pos, &v, &vl, SEG_TRAIT_VAL - 1))
                    return -1;
                for (uint32_t j = 0; j < i; j++) /* a repeated key: the general path merges */
                    if (strlen(ev->traits[j].key) == kl && memcmp(ev->traits[j].key, k, kl) == 0)
                        return -1;
                copy_str(ev->traits[i].key, k, kl);
                copy_str(ev->traits[i].val, v, vl);
                ev->n_traits = (uint8_t)(i + 1);
            }
            break;
        }
        }
    }
    if (pos != len || (seen & (F_ID | F_TYPE | F_TS)) != (F_ID | F_TYPE | F_TS)) return -1;
    if (ev->type == SEG_EV_PURCHASE && !ev->has_amount) return -1;
    return 0;
}

static int decode_general(const void *buf, size_t len, seg_event_t *ev, const char **reason);

int strm_decode_msgpack(const void *buf, size_t len, seg_event_t *ev, const char **reason)
{
    if (fast_contract(buf, len, ev) == 0) return 0;
    return decode_general(buf, len, ev, reason);
}

static int same_event(const seg_event_t *a, const seg_event_t *b)
{
    if (a->id_len != b->id_len || memcmp(a->customer_id, b->customer_id, a->id_len + 1u) ||
        a->type != b->type || a->channel != b->channel || a->discount != b->discount ||
        a->ts != b->ts || memcmp(&a->amount, &b->amount, sizeof a->amount) ||
        a->has_amount != b->has_amount || a->category_len != b->category_len ||
        memcmp(a->category, b->category, a->category_len + 1u) ||
        a->event_id_len != b->event_id_len ||
        memcmp(a->event_id, b->event_id, a->event_id_len + 1u) || a->n_traits != b->n_traits)
        return 0;
    for (int i = 0; i < a->n_traits; i++)
        if (strcmp(a->traits[i].key, b->traits[i].key) ||
            strcmp(a->traits[i].val, b->traits[i].val))
            return 0;
    return 1;
}

int strm__msgpack_fast_agrees(const void *buf, size_t len)
{
    seg_event_t a, b;
    const char *r;
    if (fast_contract(buf, len, &a) < 0) return 1;
    return decode_general(buf, len, &b, &r) == 0 && same_event(&a, &b);
}

static int decode_general(const void *buf, size_t len, seg_event_t *ev, const char **reason)
{
    const uint8_t *p = buf;
    seg_event_reset(ev);
    if (len == 0) {
        *reason = "empty";
        return -1;
    }
    size_t pos = 0;
    strm__val_t root;
    int r = mp_head(p, len, &pos, &root);
    if (r) {
        *reason = mp_reason(r);
        return -1;
    }
    if (root.t != STRM_V_MAP) {
        *reason = "not_json_or_msgpack";
        return -1;
    }
    mp_src_t m = {{mp_each, mp_at, NULL}, p, len, root.ref, 0};
    if (strm__map_event(&m.base, &root, ev, reason) < 0) return -1;
    if (m.root_end != len) {
        seg_event_reset(ev);
        *reason = "bad_msgpack"; /* bytes after the map */
        return -1;
    }
    return 0;
}
