/* stream/codec_map.c: the field mapping both decoders share. Takes the
 * top-level map of a payload through the visitor in codec_int.h, decides its
 * shape (the contract's own, a Segment `track`/`page` call, or a GA4 export
 * row) and fills a seg_event_t, or names the first reason it cannot be used.
 * Also strm_decode (format sniffing) and the RFC 3339 parser. Never
 * allocates, never reads a clock, never keeps a pointer into the payload.
 *
 * Decisions (CONTRACT §1 leaves them open):
 *  - Duplicate keys: the last one wins, at every level.
 *  - null is the same as an absent field (a required one is then missing_*).
 *  - Kept strings must be valid UTF-8 without NUL bytes; otherwise the
 *    field's bad_* reason. category is cut to SEG_CATEGORY_MAX bytes at a
 *    character boundary.
 *  - ts must lie in [1970, 9999]; integers only (a float is bad_ts).
 *  - event_id and customer_id may be integers (written in decimal). An
 *    event_id over SEG_EVID_MAX bytes is kept as a digest (long_event_id).
 *  - Contract shape is strict: a wrong-typed optional field rejects the
 *    event. Segment and GA4 shapes are lenient on optional fields (a
 *    wrong-typed category, coupon, geo... is ignored) but strict on who,
 *    what, when, a negative amount and an event_id over 4 096 bytes.
 *  - Segment: userId, else anonymousId; `type` "page"/"screen" without an
 *    `event` is a page view; Order Completed needs properties.revenue or
 *    properties.total (else missing_amount); top-level channel "browser" ->
 *    web, "mobile" -> app; traits from context.traits then traits (later
 *    wins), short strings only, extra ones ignored.
 *  - GA4: a purchase without ecommerce.purchase_revenue is a dead letter
 *    missing_amount, as the other shapes' are. traffic_source.medium "email" -> email
 *    channel; otherwise platform WEB -> web, IOS/ANDROID -> app; otherwise
 *    none. geo.country/geo.city become traits (except "(not set)"). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "segmenter/internal.h" /* seg__hash: a long event_id's digest */
#include "stream/codec_int.h"

/* ---------- UTF-8 ---------- */

int strm__utf8_valid(const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t k = 0;
    while (k < len) {
        if (len - k >= 8) {
            uint64_t w;
            memcpy(&w, s + k, 8);
            if (!(w & 0x8080808080808080ULL)) {
                k += 8;
                continue;
            }
        }
        unsigned c = s[k];
        if (c < 0x80) {
            k++;
            continue;
        }
        size_t n = strm__utf8_seq(s + k, len - k);
        if (!n) return 0;
        k += n;
    }
    return 1;
}

size_t strm__utf8_seq(const unsigned char *s, size_t n)
{
    unsigned c = s[0], lo = 0x80, hi = 0xBF;
    size_t len;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else {
        return 0;
    }
    if (n < len || s[1] < lo || s[1] > hi) return 0;
    for (size_t j = 2; j < len; j++)
        if ((s[j] & 0xC0) != 0x80) return 0;
    return len;
}

/* Length of the longest prefix of s[0..n) that does not end inside a
 * multi-byte character. */
static size_t utf8_cut(const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t k = n, back = 0;
    while (k > 0 && back < 4 && (s[k - 1] & 0xC0) == 0x80) {
        k--;
        back++;
    }
    if (k == 0) return n;
    unsigned c = s[k - 1];
    size_t want = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
    return (k - 1) + want > n ? k - 1 : n;
}

/* a[0..n) == b[0..n), with a few wide loads for short keys */
static inline int key_eq(const char *a, const char *b, size_t n)
{
    if (n >= 8 && n <= 16) {
        uint64_t x, y, z, w;
        memcpy(&x, a, 8);
        memcpy(&y, b, 8);
        memcpy(&z, a + n - 8, 8);
        memcpy(&w, b + n - 8, 8);
        return x == y && z == w;
    }
    if (n >= 4 && n < 8) {
        uint32_t x, y, z, w;
        memcpy(&x, a, 4);
        memcpy(&y, b, 4);
        memcpy(&z, a + n - 4, 4);
        memcpy(&w, b + n - 4, 4);
        return x == y && z == w;
    }
    return memcmp(a, b, n) == 0;
}

/* ---------- values ---------- */

/* memcpy for the short strings events are made of: two overlapping loads
 * and stores instead of a call. */
static inline void copy_short(char *dst, const char *src, size_t n)
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
}

/* String value into dst (NUL-terminated, at most cap-1 bytes). trunc: cut a
 * longer string instead of failing. Returns the length, -1 when not a usable
 * string (wrong type, bad escape, invalid UTF-8, NUL byte), -2 when too long. */
static long get_str(const strm__val_t *v, char *dst, size_t cap, int trunc)
{
    size_t n;
    if (v->t != STRM_V_STR) return -1;
    cap--;
    if (v->len <= cap && !strm__needs_care(v->s, v->len)) {
        copy_short(dst, v->s, v->len); /* printable ASCII: nothing to check */
        dst[v->len] = 0;
        return (long)v->len;
    }
    if (v->esc) {
        size_t wrote = 0;
        long r = strm__json_unescape(v->s, v->len, dst, cap, &wrote);
        if (r == -1) return -1;
        if (r == -2) {
            if (!trunc) return -2;
            n = utf8_cut(dst, wrote);
        } else {
            n = (size_t)r;
        }
    } else if (v->len > cap) {
        if (!trunc) return -2;
        n = utf8_cut(v->s, cap);
        memcpy(dst, v->s, n);
    } else {
        n = v->len;
        memcpy(dst, v->s, n);
    }
    dst[n] = 0;
    if (memchr(dst, 0, n) || !strm__utf8_valid(dst, n)) return -1;
    return (long)n;
}

/* The string v holds: its own bytes when nothing in them is escaped, else
 * unescaped into buf (cap bytes; trunc: cut there, else a string that does
 * not fit is -1, as one that is not a usable string: the values read this
 * way are short names and times). */
static int str_view(const strm__val_t *v, char *buf, size_t cap, int trunc, const char **s,
                    size_t *n)
{
    if (v->t != STRM_V_STR) return -1;
    if (!v->esc || !memchr(v->s, '\\', v->len)) {
        *s = v->s;
        *n = v->len;
        return 0;
    }
    long r = get_str(v, buf, cap, trunc);
    if (r < 0) return -1;
    *s = buf;
    *n = (size_t)r;
    return 0;
}

/* Compares a string value, unescaped, with a literal. */
static int str_is(const strm__val_t *v, const char *lit)
{
    char buf[64];
    const char *s;
    size_t n, k = strlen(lit);
    return str_view(v, buf, sizeof buf, 0, &s, &n) == 0 && n == k && memcmp(s, lit, k) == 0;
}

static int parse_i64(const char *s, size_t n, int64_t *out)
{
    size_t k = 0;
    int neg = 0;
    if (k < n && s[k] == '-') {
        neg = 1;
        k++;
    }
    if (k == n || n - k > 19) return -1;
    uint64_t u = 0;
    for (; k < n; k++) {
        if (s[k] < '0' || s[k] > '9') return -1;
        u = u * 10 + (uint64_t)(s[k] - '0');
    }
    if (neg ? u > (uint64_t)INT64_MAX + 1 : u > (uint64_t)INT64_MAX) return -1;
    *out = neg ? (int64_t)(0 - u) : (int64_t)u;
    return 0;
}

/* Integer value (INT, UINT <= INT64_MAX, or a JSON integer literal). */
static int get_int(const strm__val_t *v, int64_t *out)
{
    switch (v->t) {
    case STRM_V_INT:
        *out = v->num.i;
        return 0;
    case STRM_V_UINT:
        if (v->num.u > INT64_MAX) return -1;
        *out = (int64_t)v->num.u;
        return 0;
    case STRM_V_NUMTEXT:
        return parse_i64(v->s, v->len, out);
    default:
        return -1;
    }
}

static const double pow10_tab[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                     1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                     1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* Number text (grammar already checked, or checked here) -> double.
 * Exact fast path when the mantissa fits in 53 bits and |exp10| <= 22;
 * strtod otherwise (assumes the "C" LC_NUMERIC, which segstream never
 * changes). */
static int parse_num(const char *s, size_t n, double *out)
{
    size_t k = 0;
    int neg = 0, digits = 0, ok = 1;
    uint64_t m = 0;
    int e10 = 0;
    if (k < n && s[k] == '-') {
        neg = 1;
        k++;
    }
    size_t d0 = k;
    for (; k < n && s[k] >= '0' && s[k] <= '9'; k++) {
        if (digits < 19)
            m = m * 10 + (uint64_t)(s[k] - '0');
        else
            ok = 0;
        if (m) digits++;
    }
    if (k == d0) return -1;
    if (k < n && s[k] == '.') {
        size_t f0 = ++k;
        for (; k < n && s[k] >= '0' && s[k] <= '9'; k++) {
            if (digits < 19) {
                m = m * 10 + (uint64_t)(s[k] - '0');
                e10--;
                if (m) digits++;
            } else {
                ok = 0;
            }
        }
        if (k == f0) return -1;
    }
    if (k < n && (s[k] == 'e' || s[k] == 'E')) {
        k++;
        int eneg = 0, ev = 0;
        if (k < n && (s[k] == '+' || s[k] == '-')) eneg = s[k++] == '-';
        size_t x0 = k;
        for (; k < n && s[k] >= '0' && s[k] <= '9'; k++)
            if (ev < 100000) ev = ev * 10 + (s[k] - '0');
        if (k == x0) return -1;
        e10 += eneg ? -ev : ev;
    }
    if (k != n) return -1;
    if (ok && m <= (1ULL << 53) && e10 >= -22 && e10 <= 22) {
        double d = (double)m;
        d = e10 < 0 ? d / pow10_tab[-e10] : d * pow10_tab[e10];
        *out = neg ? -d : d;
        return 0;
    }
    char tmp[400];
    if (n >= sizeof tmp) return -1;
    memcpy(tmp, s, n);
    tmp[n] = 0;
    *out = strtod(tmp, NULL);
    return 0;
}

/* Finite number value. str_ok: a string holding a JSON number is accepted. */
static int get_num(const strm__val_t *v, double *out, int str_ok)
{
    double d;
    switch (v->t) {
    case STRM_V_INT:
        d = (double)v->num.i;
        break;
    case STRM_V_UINT:
        d = (double)v->num.u;
        break;
    case STRM_V_FLOAT:
        d = v->num.f;
        break;
    case STRM_V_NUMTEXT:
        if (parse_num(v->s, v->len, &d) < 0) return -1;
        break;
    case STRM_V_STR:
        if (!str_ok || parse_num(v->s, v->len, &d) < 0) return -1;
        break;
    default:
        return -1;
    }
    if (!isfinite(d)) return -1;
    *out = d;
    return 0;
}

static size_t u64_dec(char *buf, uint64_t u)
{
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    for (size_t k = 0; k < n; k++) buf[k] = tmp[n - 1 - k];
    buf[n] = 0;
    return n;
}

/* An integer value as decimal text into dst (cap >= 24). */
static long int_dec(const strm__val_t *v, char *dst, size_t cap)
{
    switch (v->t) {
    case STRM_V_UINT:
        return (long)u64_dec(dst, v->num.u);
    case STRM_V_INT:
        if (v->num.i < 0) {
            dst[0] = '-';
            return 1 + (long)u64_dec(dst + 1, 0 - (uint64_t)v->num.i);
        }
        return (long)u64_dec(dst, (uint64_t)v->num.i);
    case STRM_V_NUMTEXT:
        for (size_t k = 0; k < v->len; k++)
            if (v->s[k] == '.' || v->s[k] == 'e' || v->s[k] == 'E') return -1;
        /* JSON's -0 is the integer 0 (the only integer with two spellings:
         * the grammar allows no leading zeros or '+'), so customer 0 */
        if (v->len == 2 && v->s[0] == '-' && v->s[1] == '0') return (long)u64_dec(dst, 0);
        if (v->len >= cap) return -2;
        memcpy(dst, v->s, v->len);
        dst[v->len] = 0;
        return (long)v->len;
    default:
        return -1;
    }
}

/* A string or integer id into dst (1..cap-1 bytes). */
static long get_id(const strm__val_t *v, char *dst, size_t cap)
{
    long n = v->t == STRM_V_STR ? get_str(v, dst, cap, 0) : int_dec(v, dst, cap);
    return n == 0 ? -1 : n;
}

/* A number as trait text: integers in decimal, others in the shortest form
 * that reads back exactly. */
static long num_text(const strm__val_t *v, char *dst, size_t cap)
{
    long n = int_dec(v, dst, cap);
    if (n >= 0 || v->t == STRM_V_STR) return n;
    double d;
    if (get_num(v, &d, 0) < 0) return -1;
    char tmp[40];
    int k = strm__fmt_double(tmp, d);
    if ((size_t)k >= cap) return -2;
    memcpy(dst, tmp, (size_t)k + 1);
    return k;
}

int strm_parse_rfc3339(const char *s, size_t len, int64_t *ms)
{
#define DIG(i)  (s[i] >= '0' && s[i] <= '9')
#define NUM2(i) ((s[i] - '0') * 10 + (s[(i) + 1] - '0'))
    if (len < 20) return -1;
    for (int i = 0; i < 19; i++) {
        if (i == 4 || i == 7) {
            if (s[i] != '-') return -1;
        } else if (i == 10) {
            if (s[i] != 'T' && s[i] != 't' && s[i] != ' ') return -1;
        } else if (i == 13 || i == 16) {
            if (s[i] != ':') return -1;
        } else if (!DIG(i)) {
            return -1;
        }
    }
    int y = NUM2(0) * 100 + NUM2(2), mo = NUM2(5), d = NUM2(8);
    int h = NUM2(11), mi = NUM2(14), sec = NUM2(17);
    static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (mo < 1 || mo > 12 || d < 1) return -1;
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (d > mdays[mo - 1] + (mo == 2 && leap)) return -1;
    if (h > 23 || mi > 59 || sec > 60) return -1;
    size_t k = 19;
    int frac = 0;
    if (s[k] == '.') {
        k++;
        size_t f0 = k;
        for (; k < len && DIG(k); k++)
            if (k - f0 < 3) frac = frac * 10 + (s[k] - '0');
        if (k == f0) return -1;
        for (size_t f = k - f0; f < 3; f++) frac *= 10;
    }
    if (k >= len) return -1;
    int off = 0;
    if (s[k] == 'Z' || s[k] == 'z') {
        k++;
    } else if (s[k] == '+' || s[k] == '-') {
        if (len - k < 6 || !DIG(k + 1) || !DIG(k + 2) || s[k + 3] != ':' || !DIG(k + 4) ||
            !DIG(k + 5))
            return -1;
        int oh = NUM2(k + 1), om = NUM2(k + 4);
        if (oh > 23 || om > 59) return -1;
        off = (oh * 60 + om) * (s[k] == '-' ? -1 : 1);
        k += 6;
    } else {
        return -1;
    }
    if (k != len) return -1;
    /* days from civil (proleptic Gregorian) */
    int64_t yy = y - (mo <= 2);
    int64_t era = (yy >= 0 ? yy : yy - 399) / 400;
    int64_t yoe = yy - era * 400;
    int64_t doy = (153 * (mo + (mo > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    int64_t days = era * 146097 + doe - 719468;
    int64_t secs = days * 86400 + h * 3600 + mi * 60 + sec - (int64_t)off * 60;
    *ms = secs * 1000 + frac;
    return 0;
#undef DIG
#undef NUM2
}

/* ts: integer ms, RFC 3339 string, or a msgpack timestamp. */
static int get_ts(const strm__val_t *v, int64_t *ms)
{
    int64_t t;
    if (v->t == STRM_V_STR) {
        char buf[64];
        const char *s;
        size_t n;
        if (str_view(v, buf, sizeof buf, 0, &s, &n) < 0 || strm_parse_rfc3339(s, n, &t) < 0)
            return -1;
    } else if (v->t == STRM_V_TIME) {
        t = v->num.i;
    } else if (get_int(v, &t) < 0) {
        return -1;
    }
    if (t < 0 || t > TS_MAX) return -1;
    *ms = t;
    return 0;
}

/* ---------- picking named entries out of a map ---------- */

typedef struct pick {
    const char *const *names;
    int n;
    strm__val_t *out; /* out[i].t == 0 when names[i] is absent */
} pick_t;

static int pick_cb(void *ud, const char *key, size_t klen, const strm__val_t *v)
{
    pick_t *p = ud;
    for (int i = 0; i < p->n; i++)
        if (strlen(p->names[i]) == klen && memcmp(p->names[i], key, klen) == 0) {
            p->out[i] = *v;
            break;
        }
    return 0;
}

/* Entries of map v named names[0..n) into out (absent, null or not a map:
 * all absent). Returns -1 only when the payload is malformed. */
static int pick(strm__src_t *src, const strm__val_t *v, const char *const *names, int n,
                strm__val_t *out)
{
    for (int i = 0; i < n; i++) out[i].t = 0;
    if (v->t != STRM_V_MAP) return 0;
    pick_t p = {names, n, out};
    if (src->each(src, v, pick_cb, &p) < 0) return -1;
    for (int i = 0; i < n; i++)
        if (out[i].t == STRM_V_NULL) out[i].t = 0;
    return 0;
}

/* ---------- traits ---------- */

static int add_trait(seg_event_t *ev, const char *k, size_t kl, const char *val, size_t vl)
{
    int i;
    for (i = 0; i < ev->n_traits; i++)
        if (strlen(ev->traits[i].key) == kl && memcmp(ev->traits[i].key, k, kl) == 0) break;
    if (i == ev->n_traits) {
        if (i >= SEG_TRAITS_MAX) return -1;
        ev->n_traits++;
        memcpy(ev->traits[i].key, k, kl);
        ev->traits[i].key[kl] = 0;
    }
    memcpy(ev->traits[i].val, val, vl);
    ev->traits[i].val[vl] = 0;
    return 0;
}

typedef struct traits_ud {
    seg_event_t *ev;
    int strict; /* contract: anything unusable rejects; else it is skipped */
    int bad;
} traits_ud_t;

static int traits_cb(void *ud, const char *key, size_t klen, const strm__val_t *v)
{
    traits_ud_t *t = ud;
    char val[SEG_TRAIT_VAL];
    long vl;
    if (v->t == STRM_V_NULL) return 0;
    int key_ok =
        klen >= 1 && klen < SEG_TRAIT_KEY &&
        (!strm__needs_care(key, klen) || (!memchr(key, 0, klen) && strm__utf8_valid(key, klen)));
    if (v->t == STRM_V_STR)
        vl = get_str(v, val, sizeof val, 1); /* a long city name: cut, as CSV does */
    else if (t->strict)
        vl = num_text(v, val, sizeof val);
    else
        vl = -1;
    if (!key_ok || vl < 0 || add_trait(t->ev, key, klen, val, (size_t)vl) < 0) {
        if (!t->strict) return 0;
        t->bad = 1;
        return 1;
    }
    return 0;
}

static const char *get_traits(strm__src_t *src, const strm__val_t *v, seg_event_t *ev, int strict)
{
    if (v->t != STRM_V_MAP) return strict ? "bad_traits" : NULL;
    traits_ud_t t = {ev, strict, 0};
    if (src->each(src, v, traits_cb, &t) < 0) return src->reason;
    return t.bad ? "bad_traits" : NULL;
}

/* ---------- the top level ---------- */

enum {
    K_CUSTOMER_ID,
    K_TYPE,
    K_TS,
    K_AMOUNT,
    K_CATEGORY,
    K_CHANNEL,
    K_DISCOUNT,
    K_EVENT_ID,
    K_TRAITS,
    /* Segment */
    K_USERID,
    K_ANONYMOUSID,
    K_EVENT,
    K_TIMESTAMP,
    K_ORIGINALTIMESTAMP,
    K_PROPERTIES,
    K_CONTEXT,
    K_MESSAGEID,
    /* GA4 */
    K_EVENT_NAME,
    K_EVENT_TIMESTAMP,
    K_USER_ID,
    K_USER_PSEUDO_ID,
    K_ECOMMERCE,
    K_ITEMS,
    K_TRAFFIC_SOURCE,
    K_GEO,
    K_PLATFORM,
    K__COUNT
};

typedef struct top {
    uint32_t present; /* bit per K_*; null values are not present */
    strm__val_t v[K__COUNT];
} top_t;

#define KEY(lit, id)                                                                               \
    if (key_eq(key, lit, sizeof lit - 1)) return id
static int top_key(const char *key, size_t klen)
{
    switch (klen) {
    case 2:
        KEY("ts", K_TS);
        break;
    case 3:
        KEY("geo", K_GEO);
        break;
    case 4:
        KEY("type", K_TYPE);
        break;
    case 5:
        KEY("event", K_EVENT);
        KEY("items", K_ITEMS);
        break;
    case 6:
        KEY("amount", K_AMOUNT);
        KEY("traits", K_TRAITS);
        KEY("userId", K_USERID);
        break;
    case 7:
        KEY("channel", K_CHANNEL);
        KEY("context", K_CONTEXT);
        KEY("user_id", K_USER_ID);
        break;
    case 8:
        KEY("category", K_CATEGORY);
        KEY("discount", K_DISCOUNT);
        KEY("event_id", K_EVENT_ID);
        KEY("platform", K_PLATFORM);
        break;
    case 9:
        KEY("timestamp", K_TIMESTAMP);
        KEY("messageId", K_MESSAGEID);
        KEY("ecommerce", K_ECOMMERCE);
        break;
    case 10:
        KEY("properties", K_PROPERTIES);
        KEY("event_name", K_EVENT_NAME);
        break;
    case 11:
        KEY("customer_id", K_CUSTOMER_ID);
        KEY("anonymousId", K_ANONYMOUSID);
        break;
    case 14:
        KEY("user_pseudo_id", K_USER_PSEUDO_ID);
        KEY("traffic_source", K_TRAFFIC_SOURCE);
        break;
    case 15:
        KEY("event_timestamp", K_EVENT_TIMESTAMP);
        break;
    case 17:
        KEY("originalTimestamp", K_ORIGINALTIMESTAMP);
        break;
    }
    return -1;
}
#undef KEY

static int top_cb(void *ud, const char *key, size_t klen, const strm__val_t *v)
{
    top_t *t = ud;
    int k = top_key(key, klen);
    if (k < 0) return 0;
    if (v->t == STRM_V_NULL) {
        t->present &= ~(1u << k);
    } else {
        t->present |= 1u << k;
        t->v[k] = *v;
    }
    return 0;
}

#define HAS(k) (t->present & (1u << (k)))

static const char *set_customer(seg_event_t *ev, const strm__val_t *v)
{
    long n = get_id(v, ev->customer_id, sizeof ev->customer_id);
    if (n < 0) return "bad_customer_id";
    ev->id_len = (uint8_t)n;
    return NULL;
}

/* An id longer than ev->event_id holds (a Segment messageId can be):
 * its first EVID_HEAD bytes, cut at a character boundary, then '~' and 16
 * hex digits of a 64-bit hash of all of it. Only dedupe reads the id, and
 * the same id always gives the same digest; an event is not lost for the
 * length of its id. */
#define EVID_HEAD 40
#define EVID_LONG 4096 /* longer still (after unescaping): bad_event_id */
_Static_assert(EVID_HEAD + 1 + 16 <= SEG_EVID_MAX, "a digest fits in event_id");

static long long_event_id(const strm__val_t *v, char *dst)
{
    char buf[EVID_LONG + 1];
    long n = get_str(v, buf, sizeof buf, 0);
    if (n < 0) return -1;
    size_t head = utf8_cut(buf, EVID_HEAD);
    uint64_t h = seg__hash(buf, (size_t)n);
    memcpy(dst, buf, head);
    dst[head] = '~';
    for (int i = 0; i < 16; i++) dst[head + 1 + i] = "0123456789abcdef"[(h >> (60 - 4 * i)) & 15];
    dst[head + 17] = 0;
    return (long)head + 17;
}

static const char *set_event_id(seg_event_t *ev, const strm__val_t *v)
{
    long n = v->t == STRM_V_STR ? get_str(v, ev->event_id, sizeof ev->event_id, 0)
                                : int_dec(v, ev->event_id, sizeof ev->event_id);
    if (n == -2 && v->t == STRM_V_STR) n = long_event_id(v, ev->event_id);
    if (n < 0) {
        ev->event_id[0] = 0;
        return "bad_event_id";
    }
    ev->event_id_len = (uint8_t)n;
    return NULL;
}

static void set_category(seg_event_t *ev, const strm__val_t *v, const char **bad)
{
    long n = get_str(v, ev->category, sizeof ev->category, 1);
    if (n < 0) {
        ev->category[0] = 0;
        if (bad) *bad = "bad_category";
        return;
    }
    ev->category_len = (uint8_t)n;
}

static const char *set_amount(seg_event_t *ev, const strm__val_t *v, int str_ok)
{
    double d;
    if (get_num(v, &d, str_ok) < 0) return "bad_amount";
    if (d < 0) return "negative_amount";
    if (d > SEG_AMOUNT_MAX) return "amount_too_large";
    ev->amount = d == 0 ? 0 : d; /* no -0 */
    ev->has_amount = 1;
    return NULL;
}

/* seg_evtype_parse / seg_channel_parse as a switch on the length and one
 * wide comparison (every event names its type: this runs per event). */
#define NAME(lit, id)                                                                              \
    if (key_eq(s, lit, sizeof lit - 1)) return id
uint8_t strm__type_of(const char *s, size_t n)
{
    switch (n) {
    case 6:
        NAME("search", SEG_EV_SEARCH);
        break;
    case 8:
        NAME("checkout", SEG_EV_CHECKOUT);
        NAME("purchase", SEG_EV_PURCHASE);
        break;
    case 9:
        NAME("page_view", SEG_EV_PAGE_VIEW);
        break;
    case 10:
        NAME("email_open", SEG_EV_EMAIL_OPEN);
        break;
    case 11:
        NAME("add_to_cart", SEG_EV_ADD_TO_CART);
        NAME("email_click", SEG_EV_EMAIL_CLICK);
        break;
    case 12:
        NAME("product_view", SEG_EV_PRODUCT_VIEW);
        break;
    case 13:
        NAME("session_start", SEG_EV_SESSION_START);
        break;
    case 16:
        NAME("remove_from_cart", SEG_EV_REMOVE_FROM_CART);
        break;
    }
    return SEG_EV_OTHER;
}

int strm__channel_of(const char *s, size_t n)
{
    switch (n) {
    case 3:
        NAME("web", SEG_CH_WEB);
        NAME("app", SEG_CH_APP);
        break;
    case 5:
        NAME("email", SEG_CH_EMAIL);
        NAME("store", SEG_CH_STORE);
        break;
    }
    return -1;
}
#undef NAME

static const char *map_contract(strm__src_t *src, const top_t *t, seg_event_t *ev)
{
    const char *r;
    char buf[32];
    if (!HAS(K_CUSTOMER_ID)) return "missing_customer_id";
    if ((r = set_customer(ev, &t->v[K_CUSTOMER_ID]))) return r;
    if (!HAS(K_TYPE)) return "missing_type";
    const char *ts;
    size_t tn;
    if (str_view(&t->v[K_TYPE], buf, sizeof buf, 1, &ts, &tn) < 0) return "bad_type";
    ev->type = strm__type_of(ts, tn);
    if (!HAS(K_TS)) return "missing_ts";
    if (get_ts(&t->v[K_TS], &ev->ts) < 0) return "bad_ts";
    if (HAS(K_AMOUNT) && (r = set_amount(ev, &t->v[K_AMOUNT], 0))) return r;
    if (ev->type == SEG_EV_PURCHASE && !ev->has_amount) return "missing_amount";
    if (HAS(K_CATEGORY)) {
        r = NULL;
        set_category(ev, &t->v[K_CATEGORY], &r);
        if (r) return r;
    }
    if (HAS(K_CHANNEL)) {
        char cb[16];
        const char *cs;
        size_t cn;
        int ch = str_view(&t->v[K_CHANNEL], cb, sizeof cb, 0, &cs, &cn) == 0
                     ? strm__channel_of(cs, cn)
                     : -1;
        if (ch < 0) return "bad_channel";
        ev->channel = (uint8_t)ch;
    }
    if (HAS(K_DISCOUNT)) {
        const strm__val_t *d = &t->v[K_DISCOUNT];
        double x;
        if (d->t == STRM_V_BOOL)
            ev->discount = (uint8_t)d->num.b;
        else if (get_num(d, &x, 0) == 0 && x >= 0)
            ev->discount = x > 0;
        else
            return "bad_discount";
    }
    if (HAS(K_EVENT_ID) && (r = set_event_id(ev, &t->v[K_EVENT_ID]))) return r;
    if (HAS(K_TRAITS) && (r = get_traits(src, &t->v[K_TRAITS], ev, 1))) return r;
    return NULL;
}

typedef struct name_type {
    const char *name;
    uint8_t type;
} name_type_t;

static const name_type_t segment_events[] = {
    {"Product Viewed", SEG_EV_PRODUCT_VIEW},
    {"Product Added", SEG_EV_ADD_TO_CART},
    {"Product Removed", SEG_EV_REMOVE_FROM_CART},
    {"Checkout Started", SEG_EV_CHECKOUT},
    {"Order Completed", SEG_EV_PURCHASE},
    {"Products Searched", SEG_EV_SEARCH},
    {"Email Opened", SEG_EV_EMAIL_OPEN},
    {"Email Link Clicked", SEG_EV_EMAIL_CLICK},
    {"Page Viewed", SEG_EV_PAGE_VIEW},
    {"Page", SEG_EV_PAGE_VIEW},
};

static const name_type_t ga4_events[] = {
    {"page_view", SEG_EV_PAGE_VIEW},
    {"view_item", SEG_EV_PRODUCT_VIEW},
    {"view_item_list", SEG_EV_PAGE_VIEW},
    {"search", SEG_EV_SEARCH},
    {"view_search_results", SEG_EV_SEARCH},
    {"add_to_cart", SEG_EV_ADD_TO_CART},
    {"remove_from_cart", SEG_EV_REMOVE_FROM_CART},
    {"begin_checkout", SEG_EV_CHECKOUT},
    {"purchase", SEG_EV_PURCHASE},
    {"session_start", SEG_EV_SESSION_START},
};

static uint8_t lookup_type(const name_type_t *tab, size_t n, const char *s, size_t len)
{
    for (size_t i = 0; i < n; i++)
        if (strlen(tab[i].name) == len && memcmp(tab[i].name, s, len) == 0) return tab[i].type;
    return SEG_EV_OTHER;
}

/* An id field that may be null or empty (then the fallback is used). */
static int id_given(const strm__val_t *v)
{
    return v->t && v->t != STRM_V_NULL && !(v->t == STRM_V_STR && v->len == 0);
}

static const char *map_segment(strm__src_t *src, const top_t *t, seg_event_t *ev)
{
    const char *r;
    char buf[64];
    const strm__val_t *who = HAS(K_USERID) && id_given(&t->v[K_USERID]) ? &t->v[K_USERID]
                             : HAS(K_ANONYMOUSID)                       ? &t->v[K_ANONYMOUSID]
                                                                        : NULL;
    if (!who) return "missing_customer_id";
    if ((r = set_customer(ev, who))) return r;
    if (HAS(K_EVENT)) {
        long n = get_str(&t->v[K_EVENT], buf, sizeof buf, 1);
        if (n < 0) return "bad_type";
        ev->type = lookup_type(segment_events, sizeof segment_events / sizeof segment_events[0],
                               buf, (size_t)n);
    } else {
        ev->type = SEG_EV_PAGE_VIEW; /* a page or screen call */
    }
    const strm__val_t *when = HAS(K_TIMESTAMP)           ? &t->v[K_TIMESTAMP]
                              : HAS(K_ORIGINALTIMESTAMP) ? &t->v[K_ORIGINALTIMESTAMP]
                                                         : NULL;
    if (!when) return "missing_ts";
    if (get_ts(when, &ev->ts) < 0) return "bad_ts";

    static const char *const props[] = {"revenue", "total", "category", "coupon", "discount"};
    strm__val_t p[5];
    if (pick(src, HAS(K_PROPERTIES) ? &t->v[K_PROPERTIES] : &(strm__val_t){0}, props, 5, p) < 0)
        return src->reason;
    const strm__val_t *amt = p[0].t ? &p[0] : p[1].t ? &p[1] : NULL;
    if (amt && (r = set_amount(ev, amt, 1))) return r;
    if (ev->type == SEG_EV_PURCHASE && !ev->has_amount) return "missing_amount";
    if (p[2].t) set_category(ev, &p[2], NULL);
    double x;
    if ((p[3].t == STRM_V_STR && p[3].len > 0) || (get_num(&p[4], &x, 1) == 0 && x > 0))
        ev->discount = 1;
    if (HAS(K_CHANNEL)) {
        if (str_is(&t->v[K_CHANNEL], "browser"))
            ev->channel = SEG_CH_WEB;
        else if (str_is(&t->v[K_CHANNEL], "mobile"))
            ev->channel = SEG_CH_APP;
    }
    if (HAS(K_MESSAGEID) && (r = set_event_id(ev, &t->v[K_MESSAGEID]))) return r;
    if (HAS(K_CONTEXT)) {
        static const char *const ctx[] = {"traits"};
        strm__val_t c;
        if (pick(src, &t->v[K_CONTEXT], ctx, 1, &c) < 0) return src->reason;
        if (c.t && (r = get_traits(src, &c, ev, 0))) return r;
    }
    if (HAS(K_TRAITS) && (r = get_traits(src, &t->v[K_TRAITS], ev, 0))) return r;
    return NULL;
}

/* GA4 event_timestamp: microseconds, integer or decimal string. */
static int ga4_ts(const strm__val_t *v, int64_t *ms)
{
    int64_t us;
    if (v->t == STRM_V_STR) {
        if (parse_i64(v->s, v->len, &us) < 0) return -1;
    } else if (get_int(v, &us) < 0) {
        return -1;
    }
    int64_t q = us / 1000;
    if (us % 1000 < 0) q--;
    if (q < 0 || q > TS_MAX) return -1;
    *ms = q;
    return 0;
}

static void ga4_trait(seg_event_t *ev, const char *key, const strm__val_t *v)
{
    char val[SEG_TRAIT_VAL];
    long n = get_str(v, val, sizeof val, 1);
    if (n <= 0 || strcmp(val, "(not set)") == 0) return;
    add_trait(ev, key, strlen(key), val, (size_t)n);
}

static const char *map_ga4(strm__src_t *src, const top_t *t, seg_event_t *ev)
{
    const char *r;
    char buf[64];
    const strm__val_t *who = HAS(K_USER_ID) && id_given(&t->v[K_USER_ID]) ? &t->v[K_USER_ID]
                             : HAS(K_USER_PSEUDO_ID)                      ? &t->v[K_USER_PSEUDO_ID]
                                                                          : NULL;
    if (!who) return "missing_customer_id";
    if ((r = set_customer(ev, who))) return r;
    long n = get_str(&t->v[K_EVENT_NAME], buf, sizeof buf, 1);
    if (n < 0) return "bad_type";
    ev->type = lookup_type(ga4_events, sizeof ga4_events / sizeof ga4_events[0], buf, (size_t)n);
    if (!HAS(K_EVENT_TIMESTAMP)) return "missing_ts";
    if (ga4_ts(&t->v[K_EVENT_TIMESTAMP], &ev->ts) < 0) return "bad_ts";

    strm__val_t v[2];
    static const char *const ecom[] = {"purchase_revenue"};
    if (HAS(K_ECOMMERCE)) {
        if (pick(src, &t->v[K_ECOMMERCE], ecom, 1, v) < 0) return src->reason;
        if (v[0].t && (r = set_amount(ev, &v[0], 1))) return r;
    }
    /* as for the contract's own events and Segment's Order Completed: a
     * GA4 purchase exported without a revenue is a dead letter (a tag to
     * mend), not an order of 0 */
    if (ev->type == SEG_EV_PURCHASE && !ev->has_amount) return "missing_amount";
    if (HAS(K_ITEMS) && t->v[K_ITEMS].t == STRM_V_ARR && t->v[K_ITEMS].n > 0) {
        static const char *const item[] = {"item_category"};
        strm__val_t first;
        if (src->at(src, &t->v[K_ITEMS], 0, &first) < 0) return src->reason;
        if (pick(src, &first, item, 1, v) < 0) return src->reason;
        if (v[0].t) set_category(ev, &v[0], NULL);
    }
    if (HAS(K_TRAFFIC_SOURCE)) {
        static const char *const ts[] = {"medium"};
        if (pick(src, &t->v[K_TRAFFIC_SOURCE], ts, 1, v) < 0) return src->reason;
        if (str_is(&v[0], "email")) ev->channel = SEG_CH_EMAIL;
    }
    if (ev->channel == SEG_CH_NONE && HAS(K_PLATFORM)) {
        const strm__val_t *p = &t->v[K_PLATFORM];
        if (str_is(p, "WEB"))
            ev->channel = SEG_CH_WEB;
        else if (str_is(p, "IOS") || str_is(p, "ANDROID"))
            ev->channel = SEG_CH_APP;
    }
    if (HAS(K_GEO)) {
        static const char *const geo[] = {"country", "city"};
        if (pick(src, &t->v[K_GEO], geo, 2, v) < 0) return src->reason;
        if (v[0].t) ga4_trait(ev, "country", &v[0]);
        if (v[1].t) ga4_trait(ev, "city", &v[1]);
    }
    return NULL;
}

int strm__map_event(strm__src_t *src, const strm__val_t *root, seg_event_t *ev, const char **reason)
{
    top_t t;
    t.present = 0;
    if (src->each(src, root, top_cb, &t) < 0) {
        *reason = src->reason;
        return -1;
    }
    const top_t *tp = &t;
    const char *r;
#define THAS(k) (tp->present & (1u << (k)))
    if (THAS(K_CUSTOMER_ID)) {
        r = map_contract(src, tp, ev);
    } else if ((THAS(K_USERID) || THAS(K_ANONYMOUSID)) &&
               (THAS(K_EVENT) || (THAS(K_TYPE) && (str_is(&tp->v[K_TYPE], "page") ||
                                                   str_is(&tp->v[K_TYPE], "screen"))))) {
        r = map_segment(src, tp, ev);
    } else if (THAS(K_EVENT_NAME)) {
        r = map_ga4(src, tp, ev);
    } else if ((THAS(K_USERID) || THAS(K_ANONYMOUSID)) && THAS(K_TYPE) &&
               (str_is(&tp->v[K_TYPE], "identify") || str_is(&tp->v[K_TYPE], "group") ||
                str_is(&tp->v[K_TYPE], "alias"))) {
        r = "unsupported_segment_call"; /* not behaviour: only track, page and screen are */
    } else {
        r = map_contract(src, tp, ev);
    }
#undef THAS
    if (r) {
        *reason = r;
        return -1;
    }
    return 0;
}

int strm_decode(const void *buf, size_t len, size_t max_bytes, seg_event_t *ev, const char **reason)
{
    const unsigned char *p = buf;
    if (max_bytes == 0) max_bytes = STRM_MAX_EVENT_BYTES_DEFAULT;
    if (len == 0) {
        seg_event_reset(ev);
        *reason = "empty";
        return -1;
    }
    if (len > max_bytes) {
        seg_event_reset(ev);
        *reason = "oversized";
        return -1;
    }
    size_t k = 0;
    while (k < len && (p[k] == ' ' || p[k] == '\t' || p[k] == '\n' || p[k] == '\r')) k++;
    if (k < len && p[k] == '{') return strm_decode_json(buf, len, ev, reason);
    if ((p[0] >= 0x80 && p[0] <= 0x8f) || p[0] == 0xde || p[0] == 0xdf)
        return strm_decode_msgpack(buf, len, ev, reason);
    seg_event_reset(ev);
    *reason = k == len ? "empty" : "not_json_or_msgpack";
    return -1;
}
