/* stream/codec_change.c: everything segstream writes on the wire. Change
 * events (CONTRACT §3) and input events in the contract's own shape (what
 * `gen` writes), each as JSON or msgpack (change events written directly,
 * input events through msgpack-c's packer, both into a strm_buf_t). Output
 * is deterministic: the same values give the same bytes on every run
 * (doubles go through one formatter; features are rounded to 1e-6 first).
 * Appends to the caller's buffer and, on failure, leaves it as it was.
 * Never reads a clock (emitted_at is the caller's). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <msgpack.h>
#include "segmenter/decimal.h"
#include "stream/codec_int.h"

/* ---------- shared formatting ---------- */

int strm__fmt_double(char *buf, double x)
{
    int n = 0;
    for (int prec = 15; prec <= 17; prec++) {
        n = snprintf(buf, 32, "%.*g", prec, x);
        if (prec == 17 || strtod(buf, NULL) == x) break;
    }
    return n;
}

double strm__round6(double x)
{
    if (!isfinite(x) || fabs(x) >= 1e15) return x;
    double r = round(x * 1e6) / 1e6;
    return r == 0 ? 0 : r;
}

/* 1 when none of the 8 bytes at s needs escaping (control, non-ASCII, '"'
 * or backslash): such words are copied whole. */
static inline int word_plain(const unsigned char *s)
{
    const uint64_t ones = 0x0101010101010101ULL, high = 0x8080808080808080ULL;
    uint64_t w, q, b;
    memcpy(&w, s, 8);
    q = w ^ (ones * '"');
    b = w ^ (ones * '\\');
    return ((w | ((w - ones * 0x20) & ~w) | ((q - ones) & ~q) | ((b - ones) & ~b)) & high) == 0;
}

/* 1 for the bytes a JSON string cannot hold as they are. */
static const unsigned char json_care[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
};
/* Writes s escaped, without quotes, at o (room for len * 6 bytes); returns
 * the end. */
static char *json_body_at(char *o, const char *str, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)str;
    if (len >= 4 && len < 8) {
        /* short ids and names: two overlapping words, one check */
        uint32_t lo, hi;
        memcpy(&lo, s, 4);
        memcpy(&hi, s + len - 4, 4);
        unsigned char w[8];
        memcpy(w, &lo, 4);
        memcpy(w + 4, &hi, 4);
        if (word_plain(w)) {
            memcpy(o, &lo, 4);
            memcpy(o + len - 4, &hi, 4);
            return o + len;
        }
    }
    for (size_t k = 0; k < len;) {
        /* plain ASCII runs, a word at a time: ids and labels are mostly that */
        while (k + 8 <= len && word_plain(s + k)) {
            memcpy(o, s + k, 8);
            o += 8;
            k += 8;
        }
        if (k == len) break;
        if (len >= 8 && k + 8 > len && word_plain(s + len - 8)) {
            /* the last word, overlapping bytes already copied as they are */
            memcpy(o - (k - (len - 8)), s + len - 8, 8);
            o += len - k;
            break;
        }
        /* a short run byte by byte (a libc memcpy per run cost more) */
        while (k < len && !json_care[s[k]]) *o++ = (char)s[k++];
        if (k == len) break;
        unsigned c = s[k];
        if (c >= 0xC2 && c <= 0xDF && k + 1 < len && (s[k + 1] & 0xC0) == 0x80) {
            o[0] = (char)c; /* two-byte characters (the labels' middle dot) inline */
            o[1] = (char)s[k + 1];
            o += 2;
            k += 2;
            continue;
        }
        if (c >= 0x80) {
            size_t n = strm__utf8_seq(s + k, len - k);
            if (n) {
                for (size_t j = 0; j < n; j++) *o++ = (char)s[k++];
            } else {
                memcpy(o, "\\ufffd", 6);
                o += 6;
                k++;
            }
            continue;
        }
        *o++ = '\\';
        switch (c) {
        case '"':
            *o++ = '"';
            break;
        case '\\':
            *o++ = '\\';
            break;
        case '\n':
            *o++ = 'n';
            break;
        case '\r':
            *o++ = 'r';
            break;
        case '\t':
            *o++ = 't';
            break;
        case '\b':
            *o++ = 'b';
            break;
        case '\f':
            *o++ = 'f';
            break;
        default:
            memcpy(o, "u00", 3);
            o[3] = hex[c >> 4];
            o[4] = hex[c & 15];
            o += 5;
        }
        k++;
    }
    return o;
}

/* s escaped, with its quotes (room for len * 6 + 2 bytes). */
static char *json_str_at(char *o, const char *s, size_t len)
{
    *o++ = '"';
    o = json_body_at(o, s, len);
    *o++ = '"';
    return o;
}

int strm__json_str(strm_buf_t *b, const char *str, size_t len)
{
    if (len > (SIZE_MAX - 2) / 6 || strm_buf_reserve(b, len * 6 + 2) < 0) return -1;
    b->len = (size_t)(json_str_at(b->p + b->len, str, len) - b->p);
    return 0;
}

/* ---------- JSON writer helpers (errors accumulate in w->err) ---------- */

typedef struct jw {
    strm_buf_t *b;
    int err;
} jw_t;

static void jw_raw(jw_t *w, const char *s, size_t n)
{
    if (!w->err && strm_buf_append(w->b, s, n) < 0) w->err = 1;
}
#define JW_LIT(w, lit) jw_raw(w, lit, sizeof lit - 1)

static void jw_str(jw_t *w, const char *s, size_t n)
{
    if (!w->err && strm__json_str(w->b, s, n) < 0) w->err = 1;
}

static void jw_cstr(jw_t *w, const char *s)
{
    if (s)
        jw_str(w, s, strlen(s));
    else
        JW_LIT(w, "null");
}

/* Decimal digits of v, right-aligned ending at end; returns the start.
 * (snprintf was a third of the hot path's instructions.) */
static char *utoa_rev(uint64_t v, char *end)
{
    do {
        *--end = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return end;
}

static void jw_i64(jw_t *w, int64_t v)
{
    char buf[24], *e = buf + sizeof buf;
    char *p = utoa_rev(v < 0 ? 0 - (uint64_t)v : (uint64_t)v, e);
    if (v < 0) *--p = '-';
    jw_raw(w, p, (size_t)(e - p));
}

/* A double exactly (shortest form that reads back). */
static void jw_double(jw_t *w, double x)
{
    char buf[40];
    if (!isfinite(x)) {
        JW_LIT(w, "null");
        return;
    }
    jw_raw(w, buf, (size_t)strm__fmt_double(buf, x));
}

/* ---------- change events ---------- */

/* Change events are a third of the hot path's instructions (one per three
 * events): they are written with one reserve for the worst case and then
 * plain stores, no per-field bounds checks. */

#define ID_BUF  1024 /* longest event_id or dimension accepted */
#define NUM_MAX 40   /* room for any number written below */

#define PUT_LIT(o, lit) (memcpy(o, lit, sizeof lit - 1), (o) + sizeof lit - 1)

static char *put_cstr(char *o, const char *s, size_t len)
{
    return s ? json_str_at(o, s, len) : PUT_LIT(o, "null");
}

/* put_cstr of a string known to need no escaping (seg_change_t.plain) */
static char *put_plain(char *o, const char *s, size_t len)
{
    if (!s) return PUT_LIT(o, "null");
    *o++ = '"';
    memcpy(o, s, len);
    o[len] = '"';
    return o + len + 1;
}

/* A derived feature: rounded to 1e-6, integral values as "30.0". */
static char *put_feature(char *o, double x)
{
    if (x == 0) return PUT_LIT(o, "0.0"); /* the common case: no orders, just active */
    double r = strm__round6(x);
    if (!isfinite(r)) return PUT_LIT(o, "null");
    if (fabs(r) < 1e12) {
        /* fixed point with at most 6 decimals, trailing zeros cut, ".0" kept */
        int64_t v = llround(r * 1e6);
        uint64_t a = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
        uint64_t frac = a % 1000000;
        int digits = 6;
        while (digits > 1 && frac % 10 == 0) frac /= 10, digits--;
        if (v < 0) *o++ = '-';
        o = seg_dec_u64(o, a / 1000000);
        *o++ = '.';
        for (int d = digits - 1; d >= 0; d--, frac /= 10) o[d] = (char)('0' + frac % 10);
        return o + digits;
    }
    char buf[NUM_MAX];
    int n = fabs(r) < 1e15 && r == floor(r) ? snprintf(buf, sizeof buf, "%.1f", r)
                                            : strm__fmt_double(buf, r);
    memcpy(o, buf, (size_t)n);
    return o + n;
}

static size_t dim_len(const seg_change_t *ch)
{
    return ch->dim == SEG_DIM_RULE ? 5 + strlen(ch->rule_name) : ch->dim == SEG_DIM_CLUSTER ? 7 : 9;
}

/* The dimension ("lifecycle", "cluster", "rule:<name>"), unquoted, the
 * rule's name JSON-escaped or (msgpack) as it is. "rule:" is ASCII, so
 * escaping the name alone gives the same bytes as escaping the whole. */
static char *put_dim(char *o, const seg_change_t *ch, size_t dlen, int escape)
{
    switch (ch->dim) {
    case SEG_DIM_LIFECYCLE:
        return PUT_LIT(o, "lifecycle");
    case SEG_DIM_CLUSTER:
        return PUT_LIT(o, "cluster");
    case SEG_DIM_RULE:
        break;
    }
    o = PUT_LIT(o, "rule:");
    if (escape) return json_body_at(o, ch->rule_name, dlen - 5);
    memcpy(o, ch->rule_name, dlen - 5);
    return o + dlen - 5;
}

/* The event_id after the customer: ":<dimension>:<seq>", and for a cluster
 * ":FROM>TO@TS" (see seg_change_id()); the rule's name escaped or not as
 * put_dim. */
static char *put_id_tail(char *o, const seg_change_t *ch, size_t dlen, int escape)
{
    *o++ = ':';
    o = put_dim(o, ch, dlen, escape);
    *o++ = ':';
    o = seg_dec_u64(o, ch->seq);
    if (ch->dim == SEG_DIM_CLUSTER) {
        *o++ = ':';
        if (ch->from_id >= 0) o = seg_dec_u64(o, (uint64_t)ch->from_id);
        *o++ = '>';
        o = seg_dec_u64(o, ch->to_id < 0 ? 0 : (uint64_t)ch->to_id);
        *o++ = '@';
        o = seg_dec_i64(o, ch->ts);
    }
    return o;
}

/* put_id_tail's length, unescaped (the msgpack writer's string header) */
static size_t id_tail_len(const seg_change_t *ch, size_t dlen)
{
    size_t n = 1 + dlen + 1 + (size_t)seg_dec_digits(ch->seq);
    if (ch->dim == SEG_DIM_CLUSTER)
        n += 2 + (ch->from_id >= 0 ? (size_t)seg_dec_digits((uint64_t)ch->from_id) : 0) +
             (size_t)seg_dec_digits(ch->to_id < 0 ? 0 : (uint64_t)ch->to_id) + 1 +
             (size_t)seg_dec_digits(ch->ts < 0 ? 0 - (uint64_t)ch->ts : (uint64_t)ch->ts) +
             (ch->ts < 0);
    return n;
}

int strm_change_json(const seg_change_t *ch, int64_t emitted_at, strm_buf_t *out)
{
    const seg_customer_t *c = ch->cust;
    size_t dlen = dim_len(ch), seq_len = (size_t)seg_dec_digits(ch->seq);
    size_t flen = ch->from ? strlen(ch->from) : 0, tlen = ch->to ? strlen(ch->to) : 0;
    size_t wlen = ch->reason ? strlen(ch->reason) : 0;
    if (c->id_len + dlen + seq_len + 72 >= ID_BUF || dlen >= ID_BUF) return -1;
    if ((flen | tlen | wlen) >= STRM_BUF_MAX / 8) return -1;
    /* worst case: every string byte escaped to 6, every number at its longest */
    size_t need = 256 + 9 * NUM_MAX + 6 * (2 * ((size_t)c->id_len + dlen) + flen + tlen + wlen);
    if (strm_buf_reserve(out, need) < 0) return -1;
    char *o = out->p + out->len;
    /* event_id is "<customer>:<dimension>:<seq>"; ':' cannot join a UTF-8
     * sequence, so escaping the parts one by one gives the same bytes as
     * escaping the whole */
    o = PUT_LIT(o, "{\"event_id\":\"");
    char *id = o; /* escaped once, copied again for customer_id */
    o = json_body_at(o, c->id, c->id_len);
    size_t id_len = (size_t)(o - id);
    o = put_id_tail(o, ch, dlen, 1);
    o = PUT_LIT(o, "\",\"customer_id\":\"");
    memcpy(o, id, id_len);
    o += id_len;
    *o++ = '"';
    o = PUT_LIT(o, ",\"dimension\":\"");
    o = put_dim(o, ch, dlen, 1);
    char *(*put_s)(char *, const char *, size_t) = ch->plain ? put_plain : put_cstr;
    o = PUT_LIT(o, "\",\"from\":");
    o = put_s(o, ch->from, flen);
    o = PUT_LIT(o, ",\"to\":");
    o = put_s(o, ch->to, tlen);
    if (ch->dim == SEG_DIM_CLUSTER) {
        o = PUT_LIT(o, ",\"from_id\":");
        o = ch->from_id < 0 ? PUT_LIT(o, "null") : seg_dec_i64(o, ch->from_id);
        o = PUT_LIT(o, ",\"to_id\":");
        o = ch->to_id < 0 ? PUT_LIT(o, "null") : seg_dec_i64(o, ch->to_id);
    }
    o = PUT_LIT(o, ",\"ts\":");
    char *ts = o;
    o = seg_dec_i64(o, ch->ts);
    size_t ts_len = (size_t)(o - ts);
    o = PUT_LIT(o, ",\"emitted_at\":");
    if (emitted_at == ch->ts) { /* replay's usual case: the same digits again */
        memmove(o, ts, ts_len);
        o += ts_len;
    } else {
        o = seg_dec_i64(o, emitted_at);
    }
    o = PUT_LIT(o, ",\"reason\":");
    o = put_s(o, ch->reason, wlen);
    o = PUT_LIT(o, ",\"model_version\":");
    o = seg_dec_u64(o, ch->model_version);
    o = PUT_LIT(o, ",\"features\":{\"recency_days\":");
    o = put_feature(o, ch->recency_days);
    o = PUT_LIT(o, ",\"orders\":");
    o = seg_dec_u64(o, ch->orders);
    o = PUT_LIT(o, ",\"monetary\":");
    o = put_feature(o, ch->monetary);
    o = PUT_LIT(o, "}}");
    out->len = (size_t)(o - out->p);
    return 0;
}

/* msgpack written directly with one reserve, in the bytes msgpack-c's packer
 * gives for the same calls (smallest integer form, str8 from 32 bytes, maps
 * and strings as below; the unit test compares with the packer): through
 * the packer's callback per item it cost more than the JSON writer. */

static uint8_t *mp_be(uint8_t *o, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--, v >>= 8) o[i] = (uint8_t)v;
    return o + n;
}

/* msgpack_pack_int64's choice of form (int32's and uint64's agree with it
 * over their ranges). */
static uint8_t *mp_int(uint8_t *o, int64_t v)
{
    if (v < -(1LL << 5)) {
        if (v < -(1LL << 15)) {
            if (v < -(1LL << 31)) return *o = 0xd3, mp_be(o + 1, (uint64_t)v, 8);
            return *o = 0xd2, mp_be(o + 1, (uint64_t)v, 4);
        }
        if (v < -(1 << 7)) return *o = 0xd1, mp_be(o + 1, (uint64_t)v, 2);
        return *o = 0xd0, mp_be(o + 1, (uint64_t)v, 1);
    }
    if (v < (1 << 7)) return *o = (uint8_t)v, o + 1;
    if (v < (1LL << 16)) {
        if (v < (1 << 8)) return *o = 0xcc, mp_be(o + 1, (uint64_t)v, 1);
        return *o = 0xcd, mp_be(o + 1, (uint64_t)v, 2);
    }
    if (v < (1LL << 32)) return *o = 0xce, mp_be(o + 1, (uint64_t)v, 4);
    return *o = 0xcf, mp_be(o + 1, (uint64_t)v, 8);
}

static uint8_t *mp_uint(uint8_t *o, uint64_t v)
{
    return v > INT64_MAX ? (*o = 0xcf, mp_be(o + 1, v, 8)) : mp_int(o, (int64_t)v);
}

/* The header of a string of n bytes (n < 2^32). */
static uint8_t *mp_str_head(uint8_t *o, size_t n)
{
    if (n < 32) return *o = (uint8_t)(0xa0 | n), o + 1;
    if (n < 256) return *o = 0xd9, mp_be(o + 1, n, 1);
    if (n < 65536) return *o = 0xda, mp_be(o + 1, n, 2);
    return *o = 0xdb, mp_be(o + 1, n, 4);
}

static uint8_t *mp_str(uint8_t *o, const char *s, size_t n)
{
    o = mp_str_head(o, n);
    memcpy(o, s, n);
    return o + n;
}

static uint8_t *mp_cstr(uint8_t *o, const char *s, size_t n)
{
    return s ? mp_str(o, s, n) : (*o = 0xc0, o + 1);
}

#define MP_KEY(o, lit) mp_str(o, lit, sizeof lit - 1)

static uint8_t *mp_feature(uint8_t *o, double x)
{
    double r = strm__round6(x);
    if (!isfinite(r)) return *o = 0xc0, o + 1;
    uint64_t bits;
    memcpy(&bits, &r, 8);
    *o = 0xcb;
    return mp_be(o + 1, bits, 8);
}

int strm_change_msgpack(const seg_change_t *ch, int64_t emitted_at, strm_buf_t *out)
{
    const seg_customer_t *c = ch->cust;
    int cluster = ch->dim == SEG_DIM_CLUSTER;
    size_t dlen = dim_len(ch), idlen = (size_t)c->id_len + id_tail_len(ch, dlen);
    if (idlen >= ID_BUF || dlen >= ID_BUF) return -1; /* as the JSON writer */
    size_t flen = ch->from ? strlen(ch->from) : 0, tlen = ch->to ? strlen(ch->to) : 0;
    size_t wlen = ch->reason ? strlen(ch->reason) : 0;
    if ((flen | tlen | wlen) >= STRM_BUF_MAX / 8) return -1;
    /* keys and fixed-size values, then every string with a 5-byte header */
    size_t need = 256 + 5 * 6 + idlen + c->id_len + dlen + flen + tlen + wlen;
    if (strm_buf_reserve(out, need) < 0) return -1;
    uint8_t *o = (uint8_t *)out->p + out->len;
    *o++ = (uint8_t)(0x80 | (cluster ? 12 : 10));
    o = MP_KEY(o, "event_id");
    o = mp_str_head(o, idlen);
    memcpy(o, c->id, c->id_len);
    o = (uint8_t *)put_id_tail((char *)o + c->id_len, ch, dlen, 0);
    o = MP_KEY(o, "customer_id");
    o = mp_str(o, c->id, c->id_len);
    o = MP_KEY(o, "dimension");
    o = mp_str_head(o, dlen);
    o = (uint8_t *)put_dim((char *)o, ch, dlen, 0);
    o = MP_KEY(o, "from");
    o = mp_cstr(o, ch->from, flen);
    o = MP_KEY(o, "to");
    o = mp_cstr(o, ch->to, tlen);
    if (cluster) {
        o = MP_KEY(o, "from_id");
        o = ch->from_id < 0 ? (*o = 0xc0, o + 1) : mp_int(o, ch->from_id);
        o = MP_KEY(o, "to_id");
        o = ch->to_id < 0 ? (*o = 0xc0, o + 1) : mp_int(o, ch->to_id);
    }
    o = MP_KEY(o, "ts");
    o = mp_int(o, ch->ts);
    o = MP_KEY(o, "emitted_at");
    o = mp_int(o, emitted_at);
    o = MP_KEY(o, "reason");
    o = mp_cstr(o, ch->reason, wlen);
    o = MP_KEY(o, "model_version");
    o = mp_uint(o, ch->model_version);
    o = MP_KEY(o, "features");
    *o++ = 0x83;
    o = MP_KEY(o, "recency_days");
    o = mp_feature(o, ch->recency_days);
    o = MP_KEY(o, "orders");
    o = mp_uint(o, ch->orders);
    o = MP_KEY(o, "monetary");
    o = mp_feature(o, ch->monetary);
    out->len = (size_t)((char *)o - out->p);
    return 0;
}

/* The input-event writer below (gen's, not per change) keeps msgpack-c's
 * packer. */
static int buf_write(void *data, const char *buf, size_t len)
{
    return strm_buf_append(data, buf, len);
}

static int pk_cstr(msgpack_packer *pk, const char *s)
{
    return s ? msgpack_pack_str_with_body(pk, s, strlen(s)) : msgpack_pack_nil(pk);
}

static int pk_key(msgpack_packer *pk, const char *s)
{
    return msgpack_pack_str_with_body(pk, s, strlen(s));
}

/* ---------- input events (the contract's shape) ---------- */

static const char *type_name(const seg_event_t *ev)
{
    return ev->type < SEG_EV__COUNT ? seg_evtype_names[ev->type] : "other";
}

int strm_event_json(const seg_event_t *ev, strm_buf_t *out)
{
    size_t mark = out->len;
    jw_t w = {out, 0};
    if (ev->has_amount && !isfinite(ev->amount)) return -1;
    JW_LIT(&w, "{\"customer_id\":");
    jw_str(&w, ev->customer_id, ev->id_len);
    JW_LIT(&w, ",\"type\":");
    jw_cstr(&w, type_name(ev));
    JW_LIT(&w, ",\"ts\":");
    jw_i64(&w, ev->ts);
    if (ev->has_amount) {
        JW_LIT(&w, ",\"amount\":");
        jw_double(&w, ev->amount);
    }
    if (ev->category_len) {
        JW_LIT(&w, ",\"category\":");
        jw_str(&w, ev->category, ev->category_len);
    }
    if (ev->channel > SEG_CH_NONE && ev->channel < SEG_CH__COUNT) {
        JW_LIT(&w, ",\"channel\":");
        jw_cstr(&w, seg_channel_names[ev->channel]);
    }
    if (ev->discount) JW_LIT(&w, ",\"discount\":true");
    if (ev->event_id_len) {
        JW_LIT(&w, ",\"event_id\":");
        jw_str(&w, ev->event_id, ev->event_id_len);
    }
    if (ev->n_traits) {
        JW_LIT(&w, ",\"traits\":{");
        for (int i = 0; i < ev->n_traits && i < SEG_TRAITS_MAX; i++) {
            if (i) JW_LIT(&w, ",");
            jw_cstr(&w, ev->traits[i].key);
            JW_LIT(&w, ":");
            jw_cstr(&w, ev->traits[i].val);
        }
        JW_LIT(&w, "}");
    }
    JW_LIT(&w, "}");
    if (w.err) {
        out->len = mark;
        return -1;
    }
    return 0;
}

int strm_event_msgpack(const seg_event_t *ev, strm_buf_t *out)
{
    size_t mark = out->len;
    msgpack_packer pk;
    int e = 0;
    if (ev->has_amount && !isfinite(ev->amount)) return -1;
    int has_ch = ev->channel > SEG_CH_NONE && ev->channel < SEG_CH__COUNT;
    int nt = ev->n_traits < SEG_TRAITS_MAX ? ev->n_traits : SEG_TRAITS_MAX;
    size_t n = 3 + !!ev->has_amount + !!ev->category_len + !!has_ch + !!ev->discount +
               !!ev->event_id_len + !!nt;
    msgpack_packer_init(&pk, out, buf_write);
    e |= msgpack_pack_map(&pk, n);
    e |= pk_key(&pk, "customer_id");
    e |= msgpack_pack_str_with_body(&pk, ev->customer_id, ev->id_len);
    e |= pk_key(&pk, "type");
    e |= pk_cstr(&pk, type_name(ev));
    e |= pk_key(&pk, "ts");
    e |= msgpack_pack_int64(&pk, ev->ts);
    if (ev->has_amount) {
        e |= pk_key(&pk, "amount");
        e |= msgpack_pack_double(&pk, ev->amount);
    }
    if (ev->category_len) {
        e |= pk_key(&pk, "category");
        e |= msgpack_pack_str_with_body(&pk, ev->category, ev->category_len);
    }
    if (has_ch) {
        e |= pk_key(&pk, "channel");
        e |= pk_cstr(&pk, seg_channel_names[ev->channel]);
    }
    if (ev->discount) {
        e |= pk_key(&pk, "discount");
        e |= msgpack_pack_true(&pk);
    }
    if (ev->event_id_len) {
        e |= pk_key(&pk, "event_id");
        e |= msgpack_pack_str_with_body(&pk, ev->event_id, ev->event_id_len);
    }
    if (nt) {
        e |= pk_key(&pk, "traits");
        e |= msgpack_pack_map(&pk, (size_t)nt);
        for (int i = 0; i < nt; i++) {
            e |= pk_cstr(&pk, ev->traits[i].key);
            e |= pk_cstr(&pk, ev->traits[i].val);
        }
    }
    if (e) {
        out->len = mark;
        return -1;
    }
    return 0;
}
