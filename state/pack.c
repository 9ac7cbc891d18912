/* state/pack.c: customers and the model at rest. Owns the msgpack layout of
 * a customer's `state` field and of `seg:model` (CONTRACT §4), the readable
 * hash fields, and a bounded msgpack reader: every count and length is
 * checked against the bytes left before anything is read or allocated, and
 * nesting is skipped with a counter, never recursion (msgpack-c's unpacker
 * would allocate whatever a header claims). Never does I/O, never keeps a
 * pointer into its input after returning.
 *
 * Customer state map (format "v": 1; times in ms since epoch):
 *   lc  lifecycle name (nil: none)     as  assigned (bool)
 *   cl  cluster id (-1: none)          te  model epoch it taught (0: none)
 *   fs ls la dt  first_seen, last_seen, last_activity, decay_ts
 *   ra ct  reactivated_at, last_change_ts (nil: never)
 *   due next silent change (nil: none) ev or sq  events, orders, change seq
 *   rev revenue                        ru rs  rule names held / evaluated
 *   dd  dedup hashes [8]               dp  dedup ring position
 *   ddt the event time of each of dd in minutes [8] (absent: written
 *       before they were kept; taken as ls)
 *   dx  ids beyond the ring, [cap, h, ts, h, ts, ...] by hash
 *       (absent: none); cap is the table's size, kept so that the
 *       table goes on exactly as the writer's would have
 *   tv  the normalised vector it taught the model (only when te is not 0)
 *   tr  traits {key: value}            tt  the event time of each, in tr's order
 *   f   features, decayed as of dt: activity visits views email weekend
 *       carts purchases monetary discounted, hour {night morning afternoon
 *       evening}, channel {none web app email store}, cat [[name, weight]]
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "state/mpw.h"
#include "state/pack.h"
#include "segmenter/decimal.h"
#include "segmenter/internal.h" /* seg__category_intern: categories re-interned by name */

/* ------------------------------------------------------------------ */
/* bounded reader                                                      */

typedef enum { V_NIL, V_BOOL, V_INT, V_FLOAT, V_STR, V_BIN, V_EXT, V_ARR, V_MAP } vtype_t;

typedef struct val {
    vtype_t t;
    int neg;    /* V_INT: the value is negative (i holds it) */
    int64_t i;  /* V_INT when neg, V_BOOL */
    uint64_t u; /* V_INT when !neg */
    double d;   /* V_FLOAT */
    const char *s;
    size_t n; /* V_STR/V_BIN/V_EXT bytes; V_ARR items; V_MAP pairs */
} val_t;

typedef struct rd {
    const uint8_t *p;
    size_t len, pos;
} rd_t;

static inline uint64_t be(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++) v = v << 8 | p[i];
    return v;
}

/* One value header; str/bin/ext bodies are consumed, map and array bodies
 * are not (n is their count, at most what the bytes left can hold). */
static int rd_next(rd_t *r, val_t *v)
{
    if (r->pos >= r->len) return -1;
    const uint8_t *q = r->p + r->pos + 1;
    size_t left = r->len - r->pos - 1;
    uint8_t c = r->p[r->pos];
    size_t hdr = 0;
    uint64_t body = 0;
    memset(v, 0, sizeof(*v));
    if (c <= 0x7f) {
        v->t = V_INT, v->u = c;
    } else if (c <= 0x8f) {
        v->t = V_MAP, v->n = c & 0x0f;
    } else if (c <= 0x9f) {
        v->t = V_ARR, v->n = c & 0x0f;
    } else if (c <= 0xbf) {
        v->t = V_STR, body = c & 0x1f;
    } else if (c >= 0xe0) {
        v->t = V_INT, v->neg = 1, v->i = (int8_t)c;
    } else {
        switch (c) {
        case 0xc0:
            v->t = V_NIL;
            break;
        case 0xc2:
        case 0xc3:
            v->t = V_BOOL, v->i = c == 0xc3;
            break;
        case 0xc4:
        case 0xc5:
        case 0xc6:
            hdr = (size_t)1 << (c - 0xc4);
            v->t = V_BIN;
            break;
        case 0xc7:
        case 0xc8:
        case 0xc9:
            hdr = ((size_t)1 << (c - 0xc7)) + 1; /* length, then the type byte */
            v->t = V_EXT;
            break;
        case 0xca:
        case 0xcb:
            hdr = c == 0xca ? 4 : 8;
            if (left < hdr) return -1;
            v->t = V_FLOAT;
            if (c == 0xca) {
                uint32_t b = (uint32_t)be(q, 4);
                float f;
                memcpy(&f, &b, 4);
                v->d = f;
            } else {
                uint64_t b = be(q, 8);
                memcpy(&v->d, &b, 8);
            }
            break;
        case 0xcc:
        case 0xcd:
        case 0xce:
        case 0xcf:
            hdr = (size_t)1 << (c - 0xcc);
            if (left < hdr) return -1;
            v->t = V_INT, v->u = be(q, (int)hdr);
            break;
        case 0xd0:
        case 0xd1:
        case 0xd2:
        case 0xd3: {
            hdr = (size_t)1 << (c - 0xd0);
            if (left < hdr) return -1;
            uint64_t b = be(q, (int)hdr);
            int bits = (int)hdr * 8;
            if (bits < 64 && (b >> (bits - 1)) & 1) b |= ~0ULL << bits; /* sign-extend */
            v->t = V_INT;
            v->i = (int64_t)b;
            if (v->i < 0)
                v->neg = 1;
            else
                v->u = (uint64_t)v->i, v->i = 0;
            break;
        }
        case 0xd4:
        case 0xd5:
        case 0xd6:
        case 0xd7:
        case 0xd8:
            v->t = V_EXT, hdr = 1, body = (uint64_t)1 << (c - 0xd4);
            break;
        case 0xd9:
        case 0xda:
        case 0xdb:
            hdr = (size_t)1 << (c - 0xd9);
            v->t = V_STR;
            break;
        case 0xdc:
        case 0xdd:
        case 0xde:
        case 0xdf:
            hdr = c == 0xdc || c == 0xde ? 2 : 4;
            if (left < hdr) return -1;
            v->t = c <= 0xdd ? V_ARR : V_MAP;
            v->n = (size_t)be(q, (int)hdr);
            break;
        default: /* 0xc1: never used */
            return -1;
        }
    }
    if (left < hdr) return -1;
    if (v->t == V_STR || v->t == V_BIN || v->t == V_EXT) {
        if (c >= 0xc4 && c <= 0xdb && !(c >= 0xd4 && c <= 0xd8))
            body = be(q, v->t == V_EXT ? (int)hdr - 1 : (int)hdr);
        if (body > left - hdr) return -1;
        v->s = (const char *)q + hdr;
        v->n = (size_t)body;
        r->pos += 1 + hdr + (size_t)body;
        return 0;
    }
    if (v->t == V_ARR && v->n > left - hdr) return -1;
    if (v->t == V_MAP && v->n > (left - hdr) / 2) return -1;
    r->pos += 1 + hdr;
    return 0;
}

/* Skips one complete value, nesting included, with a counter of pending
 * items (bounded by the bytes left, so it cannot overflow). */
static int rd_skip(rd_t *r)
{
    size_t pending = 1;
    while (pending) {
        val_t v;
        if (rd_next(r, &v) < 0) return -1;
        pending--;
        if (v.t == V_ARR) pending += v.n;
        if (v.t == V_MAP) pending += 2 * v.n;
    }
    return 0;
}

int st_msgpack_check(const void *data, size_t len, size_t *used)
{
    rd_t r = {data, len, 0};
    if (!data || rd_skip(&r) < 0) return -1;
    if (used) *used = r.pos;
    return 0;
}

/* ------------------------------------------------------------------ */
/* typed reads with a reason                                           */

typedef struct ctx {
    rd_t r;
    char *err;
    size_t errlen;
    const char *what; /* "state" or "model" */
} ctx_t;

#define FAIL(x, ...)                                                                               \
    do {                                                                                           \
        snprintf((x)->err, (x)->errlen, __VA_ARGS__);                                              \
        return -1;                                                                                 \
    } while (0)

static int bad(ctx_t *x, const char *key, const char *expected)
{
    if (x->r.pos >= x->r.len) FAIL(x, "%s: %s: truncated", x->what, key);
    FAIL(x, "%s: %s: expected %s", x->what, key, expected);
}

static int get(ctx_t *x, const char *key, val_t *v)
{
    if (rd_next(&x->r, v) < 0) {
        if (x->r.pos >= x->r.len) FAIL(x, "%s: %s: truncated", x->what, key);
        FAIL(x, "%s: %s: malformed msgpack at byte %zu", x->what, key, x->r.pos);
    }
    return 0;
}

static int get_i64(ctx_t *x, const char *key, int64_t *out)
{
    val_t v;
    if (get(x, key, &v) < 0) return -1;
    if (v.t != V_INT || (!v.neg && v.u > INT64_MAX)) return bad(x, key, "an integer");
    *out = v.neg ? v.i : (int64_t)v.u;
    return 0;
}

/* An integer, or nil for `none`. */
static int get_time(ctx_t *x, const char *key, int64_t *out, int64_t none)
{
    size_t at = x->r.pos;
    val_t v;
    if (get(x, key, &v) < 0) return -1;
    if (v.t == V_NIL) return *out = none, 0;
    x->r.pos = at;
    return get_i64(x, key, out);
}

static int get_u64(ctx_t *x, const char *key, uint64_t *out, uint64_t max)
{
    val_t v;
    if (get(x, key, &v) < 0) return -1;
    if (v.t != V_INT || v.neg) return bad(x, key, "an unsigned integer");
    if (v.u > max) FAIL(x, "%s: %s: %llu is out of range", x->what, key, (unsigned long long)v.u);
    *out = v.u;
    return 0;
}

static int get_f64(ctx_t *x, const char *key, double *out)
{
    val_t v;
    if (get(x, key, &v) < 0) return -1;
    if (v.t == V_FLOAT)
        *out = v.d;
    else if (v.t == V_INT)
        *out = v.neg ? (double)v.i : (double)v.u;
    else
        return bad(x, key, "a number");
    if (!isfinite(*out)) FAIL(x, "%s: %s: not a finite number", x->what, key);
    return 0;
}

static int get_bool(ctx_t *x, const char *key, int *out)
{
    val_t v;
    if (get(x, key, &v) < 0) return -1;
    if (v.t == V_BOOL)
        *out = (int)v.i;
    else if (v.t == V_INT && !v.neg && v.u <= 1)
        *out = (int)v.u;
    else
        return bad(x, key, "a boolean");
    return 0;
}

static int get_str(ctx_t *x, const char *key, const char **s, size_t *n)
{
    val_t v;
    if (get(x, key, &v) < 0) return -1;
    if (v.t != V_STR) return bad(x, key, "a string");
    *s = v.s, *n = v.n;
    return 0;
}

static int get_container(ctx_t *x, const char *key, vtype_t t, size_t *n)
{
    val_t v;
    if (get(x, key, &v) < 0) return -1;
    if (v.t != t) return bad(x, key, t == V_MAP ? "a map" : "an array");
    *n = v.n;
    return 0;
}

/* An array of exactly n numbers. */
static int get_vec(ctx_t *x, const char *key, double *out, size_t n)
{
    size_t m;
    if (get_container(x, key, V_ARR, &m) < 0) return -1;
    if (m != n) FAIL(x, "%s: %s: expected %zu numbers, got %zu", x->what, key, n, m);
    for (size_t i = 0; i < n; i++)
        if (get_f64(x, key, &out[i]) < 0) return -1;
    return 0;
}

/* A map key: a string, copied NUL-terminated into k (longer keys cannot be
 * ours and become ""). */
static int get_key(ctx_t *x, char *k, size_t klen)
{
    const char *s;
    size_t n;
    if (get_str(x, "key", &s, &n) < 0) return -1;
    if (n >= klen || memchr(s, 0, n)) n = 0;
    memcpy(k, s, n);
    k[n] = 0;
    return 0;
}

static int skip(ctx_t *x, const char *key)
{
    if (rd_skip(&x->r) < 0) {
        if (x->r.pos >= x->r.len) FAIL(x, "%s: %s: truncated", x->what, key);
        FAIL(x, "%s: %s: malformed msgpack", x->what, key);
    }
    return 0;
}

static int keq(const char *k, const char *name)
{
    return strcmp(k, name) == 0;
}

/* ------------------------------------------------------------------ */
/* packing helpers                                                     */

/* key-value pairs; keys are literals */
#define PK_KF(w, k, v)                                                                             \
    do {                                                                                           \
        MPW_LIT(w, k);                                                                             \
        mpw_f64(w, v);                                                                             \
    } while (0)
#define PK_KI(w, k, v)                                                                             \
    do {                                                                                           \
        MPW_LIT(w, k);                                                                             \
        mpw_i64(w, v);                                                                             \
    } while (0)
#define PK_KU(w, k, v)                                                                             \
    do {                                                                                           \
        MPW_LIT(w, k);                                                                             \
        mpw_u64(w, v);                                                                             \
    } while (0)

static void pk_time(mpw_t *w, const char *k, size_t klen, int64_t v, int64_t none)
{
    mpw_str(w, k, klen);
    if (v == none)
        mpw_nil(w);
    else
        mpw_i64(w, v);
}
#define PK_TIME(w, k, v, none) pk_time(w, k, sizeof(k) - 1, v, none)

static void pk_vec(mpw_t *w, const double *v, int n)
{
    mpw_array(w, (size_t)n);
    for (int i = 0; i < n; i++) mpw_f64(w, v[i]);
}

/* ------------------------------------------------------------------ */
/* customers                                                           */

static const char *const hour_names[SEG_HOUR__COUNT] = {"night", "morning", "afternoon", "evening"};
static const char *const chan_names[SEG_CH__COUNT] = {"none", "web", "app", "email", "store"};

static void pack_rules(mpw_t *w, const seg_t *s, const char *key, uint64_t bits)
{
    const seg_ruleset_t *rs = seg_params(s)->rules;
    int n = seg_rules_count(rs), cnt = 0;
    for (int i = 0; i < n && i < SEG_RULES_MAX; i++) cnt += (bits >> i) & 1;
    mpw_cstr(w, key);
    mpw_array(w, (size_t)cnt);
    for (int i = 0; i < n && i < SEG_RULES_MAX; i++)
        if ((bits >> i) & 1) mpw_cstr(w, seg_rule_name(rs, i));
}

static void pack_features(mpw_t *w, const seg_t *s, const seg_features_t *f)
{
    int ncat = 0;
    for (int i = 0; i < SEG_TOPCAT; i++) ncat += f->cat_id[i] && seg_category_name(s, f->cat_id[i]);
    MPW_LIT(w, "f");
    mpw_map(w, 12);
    PK_KF(w, "activity", f->activity);
    PK_KF(w, "visits", f->visits);
    PK_KF(w, "views", f->views);
    PK_KF(w, "email", f->email);
    MPW_LIT(w, "hour");
    mpw_map(w, SEG_HOUR__COUNT);
    for (int i = 0; i < SEG_HOUR__COUNT; i++) {
        mpw_cstr(w, hour_names[i]);
        mpw_f64(w, f->hour[i]);
    }
    PK_KF(w, "weekend", f->weekend);
    MPW_LIT(w, "channel");
    mpw_map(w, SEG_CH__COUNT);
    for (int i = 0; i < SEG_CH__COUNT; i++) {
        mpw_cstr(w, chan_names[i]);
        mpw_f64(w, f->channel[i]);
    }
    PK_KF(w, "carts", f->carts);
    PK_KF(w, "purchases", f->purchases);
    PK_KF(w, "monetary", f->monetary);
    PK_KF(w, "discounted", f->discounted);
    MPW_LIT(w, "cat");
    mpw_array(w, (size_t)ncat);
    for (int i = 0; i < SEG_TOPCAT; i++) {
        const char *name = f->cat_id[i] ? seg_category_name(s, f->cat_id[i]) : NULL;
        if (!name) continue;
        mpw_array(w, 2);
        mpw_cstr(w, name);
        mpw_f64(w, f->cat_w[i]);
    }
}

static int by_hash(const void *pa, const void *pb)
{
    const struct seg_dedup_id *a = pa, *b = pb;
    return a->h > b->h ? 1 : a->h < b->h ? -1 : 0;
}

int st_pack_customer(const seg_t *s, const seg_customer_t *c, msgpack_sbuffer *out)
{
    mpw_t w = {out, 0};
    int ntr = 0;
    if (c->traits)
        for (const char *p = c->traits; *p; ntr++) p += strlen(p) + 1, p += strlen(p) + 1;

    int taught = c->taught_epoch != 0;
    int dx = c->dedup_tab && c->dedup_n;
    mpw_map(&w, 26 + (size_t)taught + (size_t)dx);
    PK_KI(&w, "v", ST_PACK_VERSION);
    MPW_LIT(&w, "lc");
    if (c->lifecycle > SEG_LC_NONE && c->lifecycle < SEG_LC__COUNT)
        mpw_cstr(&w, seg_lifecycle_names[c->lifecycle]);
    else
        mpw_nil(&w);
    MPW_LIT(&w, "as");
    mpw_bool(&w, c->assigned);
    PK_KI(&w, "cl", c->cluster);
    PK_KI(&w, "fs", c->first_seen);
    PK_KI(&w, "ls", c->last_seen);
    PK_KI(&w, "la", c->last_activity);
    PK_KI(&w, "dt", c->decay_ts);
    PK_TIME(&w, "ra", c->reactivated_at, SEG_NO_TIME);
    PK_TIME(&w, "ct", c->last_change_ts, SEG_NO_TIME);
    PK_TIME(&w, "due", c->due, SEG_NEVER);
    PK_KU(&w, "ev", c->events);
    PK_KU(&w, "or", c->orders);
    PK_KU(&w, "sq", c->seq);
    PK_KU(&w, "sqc", c->seq_cluster);
    PK_KU(&w, "sqr", c->seq_rule);
    PK_KF(&w, "rev", c->revenue);
    pack_rules(&w, s, "ru", c->rules);
    pack_rules(&w, s, "rs", c->rules_seen);
    pack_features(&w, s, &c->f);
    MPW_LIT(&w, "dd");
    mpw_array(&w, SEG_DEDUP_N);
    for (int i = 0; i < SEG_DEDUP_N; i++) mpw_u64(&w, c->dedup[i]);
    PK_KU(&w, "dp", c->dedup_pos);
    MPW_LIT(&w, "ddt");
    mpw_array(&w, SEG_DEDUP_N);
    for (int i = 0; i < SEG_DEDUP_N; i++) mpw_u64(&w, c->dedup_min[i]);
    if (dx) {
        /* by hash: the same ids give the same bytes, whatever the order
         * they came in (a table read back is laid out by its reading) */
        struct seg_dedup_id *e = malloc((size_t)c->dedup_n * sizeof(*e));
        if (!e) return -1;
        uint32_t n = 0;
        for (uint32_t i = 0; i < c->dedup_cap; i++)
            if (c->dedup_tab[i].h) e[n++] = c->dedup_tab[i];
        qsort(e, n, sizeof(*e), by_hash);
        MPW_LIT(&w, "dx");
        mpw_array(&w, 1 + 2 * (size_t)n);
        mpw_u64(&w, c->dedup_cap);
        for (uint32_t i = 0; i < n; i++) mpw_u64(&w, e[i].h), mpw_i64(&w, e[i].ts);
        free(e);
    }
    PK_KU(&w, "te", c->taught_epoch);
    if (taught) {
        MPW_LIT(&w, "tv");
        pk_vec(&w, c->taught, SEG_DIM);
    }
    MPW_LIT(&w, "tr");
    mpw_map(&w, (size_t)ntr);
    if (c->traits)
        for (const char *p = c->traits; *p;) {
            const char *v = p + strlen(p) + 1;
            mpw_cstr(&w, p);
            mpw_cstr(&w, v);
            p = v + strlen(v) + 1;
        }
    MPW_LIT(&w, "tt");
    mpw_array(&w, (size_t)ntr);
    for (int i = 0; i < ntr; i++) mpw_i64(&w, c->traits_ts[i]);
    return w.err ? -1 : 0;
}

static int unpack_rules(ctx_t *x, const seg_t *s, const char *key, uint64_t *bits)
{
    const seg_ruleset_t *rs = seg_params(s)->rules;
    int nr = seg_rules_count(rs);
    size_t n;
    if (get_container(x, key, V_ARR, &n) < 0) return -1;
    *bits = 0;
    for (size_t i = 0; i < n; i++) {
        const char *name;
        size_t len;
        if (get_str(x, key, &name, &len) < 0) return -1;
        for (int r = 0; r < nr && r < SEG_RULES_MAX; r++) {
            const char *rn = seg_rule_name(rs, r);
            if (strlen(rn) == len && memcmp(rn, name, len) == 0) *bits |= 1ULL << r;
        }
    }
    return 0;
}

/* A map of named numbers into out[] by names[]; unknown names are skipped. */
static int unpack_named(ctx_t *x, const char *key, const char *const *names, int n, double *out)
{
    size_t m;
    if (get_container(x, key, V_MAP, &m) < 0) return -1;
    for (size_t i = 0; i < m; i++) {
        char k[32];
        if (get_key(x, k, sizeof(k)) < 0) return -1;
        int j = 0;
        while (j < n && !keq(k, names[j])) j++;
        if (j < n) {
            if (get_f64(x, key, &out[j]) < 0) return -1;
        } else if (skip(x, key) < 0) {
            return -1;
        }
    }
    return 0;
}

static int unpack_categories(ctx_t *x, seg_t *s, seg_features_t *f)
{
    size_t n;
    if (get_container(x, "f.cat", V_ARR, &n) < 0) return -1;
    if (n > SEG_TOPCAT) FAIL(x, "%s: f.cat: more than %d categories", x->what, SEG_TOPCAT);
    memset(f->cat_id, 0, sizeof(f->cat_id));
    memset(f->cat_w, 0, sizeof(f->cat_w));
    int slot = 0;
    for (size_t i = 0; i < n; i++) {
        size_t two;
        const char *name;
        size_t len;
        double w;
        if (get_container(x, "f.cat", V_ARR, &two) < 0) return -1;
        if (two != 2) FAIL(x, "%s: f.cat: expected [name, weight] pairs", x->what);
        if (get_str(x, "f.cat", &name, &len) < 0 || get_f64(x, "f.cat", &w) < 0) return -1;
        if (len == 0 || len > SEG_CATEGORY_MAX || memchr(name, 0, len))
            FAIL(x, "%s: f.cat: bad category name", x->what);
        uint32_t id = seg__category_intern(s, name, len);
        if (!id) continue; /* dictionary full: as if it had never been seen */
        for (int j = 0; j < slot; j++)
            if (f->cat_id[j] == id) FAIL(x, "%s: f.cat: category repeated", x->what);
        f->cat_id[slot] = id;
        f->cat_w[slot++] = w;
    }
    return 0;
}

static int unpack_features(ctx_t *x, seg_t *s, seg_features_t *f)
{
    size_t n;
    if (get_container(x, "f", V_MAP, &n) < 0) return -1;
    static const char *const scalar[] = {"activity",  "visits",   "views",
                                         "email",     "weekend",  "carts",
                                         "purchases", "monetary", "discounted"};
    double *dst[] = {&f->activity, &f->visits,    &f->views,    &f->email,     &f->weekend,
                     &f->carts,    &f->purchases, &f->monetary, &f->discounted};
    for (size_t i = 0; i < n; i++) {
        char k[32];
        if (get_key(x, k, sizeof(k)) < 0) return -1;
        size_t j = 0;
        while (j < sizeof(scalar) / sizeof(scalar[0]) && !keq(k, scalar[j])) j++;
        int rc;
        if (j < sizeof(scalar) / sizeof(scalar[0]))
            rc = get_f64(x, scalar[j], dst[j]);
        else if (keq(k, "hour"))
            rc = unpack_named(x, "f.hour", hour_names, SEG_HOUR__COUNT, f->hour);
        else if (keq(k, "channel"))
            rc = unpack_named(x, "f.channel", chan_names, SEG_CH__COUNT, f->channel);
        else if (keq(k, "cat"))
            rc = unpack_categories(x, s, f);
        else
            rc = skip(x, "f");
        if (rc < 0) return -1;
    }
    return 0;
}

/* What tr and tt held, until the whole state is read: the customer's
 * traits change only when it all is good. */
typedef struct {
    int has_tr, has_tt;
    char *blob; /* tr as "k\0v\0...\0" (NULL: none) */
    size_t n_tr;
    int64_t *tt;
    size_t n_tt;
} traits_tmp_t;

/* Traits map -> "k\0v\0...\0" blob. The blob is no larger than the map's
 * encoding (every string has at least a one-byte header). */
static int unpack_traits(ctx_t *x, traits_tmp_t *t)
{
    size_t n;
    if (get_container(x, "tr", V_MAP, &n) < 0) return -1;
    size_t start = x->r.pos;
    rd_t probe = x->r;
    for (size_t i = 0; i < 2 * n; i++)
        if (rd_skip(&probe) < 0) return bad(x, "tr", "a map of strings");
    free(t->blob);
    t->blob = n ? malloc(probe.pos - start + 1) : NULL;
    t->has_tr = 1;
    t->n_tr = n;
    char *w = t->blob;
    if (n && !w) FAIL(x, "%s: tr: out of memory", x->what);
    for (size_t i = 0; i < n; i++) {
        const char *k, *v;
        size_t kl, vl;
        if (get_str(x, "tr", &k, &kl) < 0 || get_str(x, "tr", &v, &vl) < 0) return -1;
        if (kl == 0 || memchr(k, 0, kl) || memchr(v, 0, vl))
            FAIL(x, "%s: tr: empty key or NUL byte in a trait", x->what);
        memcpy(w, k, kl), w[kl] = 0, w += kl + 1;
        memcpy(w, v, vl), w[vl] = 0, w += vl + 1;
    }
    if (w) *w = 0;
    return 0;
}

static int unpack_trait_times(ctx_t *x, traits_tmp_t *t)
{
    size_t n;
    if (get_container(x, "tt", V_ARR, &n) < 0) return -1;
    if (n > x->r.len - x->r.pos) return bad(x, "tt", "an array of times");
    free(t->tt);
    t->tt = n ? malloc(n * sizeof(int64_t)) : NULL;
    t->has_tt = 1;
    t->n_tt = n;
    if (n && !t->tt) FAIL(x, "%s: tt: out of memory", x->what);
    for (size_t i = 0; i < n; i++)
        if (get_i64(x, "tt", &t->tt[i]) < 0) return -1;
    return 0;
}

static int unpack_customer(seg_t *s, const void *data, size_t len, seg_customer_t *c, char *err,
                           size_t errlen, traits_tmp_t *t);

int st_unpack_customer(seg_t *s, const void *data, size_t len, seg_customer_t *c, char *err,
                       size_t errlen)
{
    traits_tmp_t t = {0};
    int rc = unpack_customer(s, data, len, c, err, errlen, &t);
    if (rc == 0 && t.has_tr) {
        /* a state without tt was written before times were kept: not known */
        if (seg_customer_set_traits(c, t.blob, t.has_tt ? t.tt : NULL) < 0) {
            snprintf(err, errlen, "state: tr: out of memory");
            rc = -1;
        }
    }
    free(t.blob);
    free(t.tt);
    return rc;
}

/* event times the codecs take: up to 9999-12-31T23:59:59.999Z */
#define DD_TS_MAX 253402300799999LL

/* dx: [cap, h, ts, ...]. Kept only as the config keeps ids
 * (seg_dedup_restore: a window of 0 keeps none). */
static int unpack_dedup_tab(ctx_t *x, seg_t *s, seg_customer_t *c)
{
    size_t m;
    if (get_container(x, "dx", V_ARR, &m) < 0) return -1;
    uint64_t cap;
    if (m < 1 || m % 2 != 1) FAIL(x, "state: dx: not [cap, h, ts, ...]");
    if (get_u64(x, "dx", &cap, 1u << 24) < 0) return -1;
    /* the writer's table is at most 4 times what its ids need (a sweep in
     * place keeps it up to that), so never above max(64, 16 ids): a larger
     * one is not a state segstream wrote, and is not allocated */
    size_t ids = (m - 1) / 2;
    if (cap < 8 || (cap & (cap - 1)) || ids * 4 > cap * 3 || cap > (ids * 16 > 64 ? ids * 16 : 64))
        FAIL(x, "state: dx: %zu ids in a table of %llu", ids, (unsigned long long)cap);
    seg_dedup_drop(c); /* dx given twice: the last */
    for (size_t j = 0; j < (m - 1) / 2; j++) {
        uint64_t h;
        int64_t ts;
        if (get_u64(x, "dx", &h, UINT64_MAX) < 0 || get_i64(x, "dx", &ts) < 0) return -1;
        if (!h) FAIL(x, "state: dx: a hash of 0");
        if (ts < 0 || ts > DD_TS_MAX) FAIL(x, "state: dx: a time out of range");
        if (seg_dedup_restore(seg_params(s), c, h, ts, (uint32_t)cap) < 0)
            FAIL(x, "state: dx: out of memory");
    }
    return 0;
}

static int unpack_customer(seg_t *s, const void *data, size_t len, seg_customer_t *c, char *err,
                           size_t errlen, traits_tmp_t *tr)
{
    ctx_t x = {{data, data ? len : 0, 0}, err, errlen, "state"};
    seg_model_t *m = seg_model(s);
    size_t n;
    int version = 0, has_tv = 0, has_ddt = 0;
    if (get_container(&x, "root", V_MAP, &n) < 0) return -1;
    for (size_t i = 0; i < n; i++) {
        char k[16];
        int rc = 0;
        uint64_t u;
        if (get_key(&x, k, sizeof(k)) < 0) return -1;
        if (keq(k, "v")) {
            rc = get_u64(&x, k, &u, UINT32_MAX);
            if (rc == 0 && (u < 1 || u > ST_PACK_VERSION))
                FAIL(&x, "state: format version %llu is not supported (this build reads %d)",
                     (unsigned long long)u, ST_PACK_VERSION);
            version = (int)u;
        } else if (keq(k, "lc")) {
            val_t v;
            rc = get(&x, k, &v);
            if (rc == 0 && v.t == V_NIL) {
                c->lifecycle = SEG_LC_NONE;
            } else if (rc == 0) {
                if (v.t != V_STR) return bad(&x, k, "a lifecycle name");
                int lc = SEG_LC_NONE + 1;
                while (lc < SEG_LC__COUNT && !(strlen(seg_lifecycle_names[lc]) == v.n &&
                                               memcmp(seg_lifecycle_names[lc], v.s, v.n) == 0))
                    lc++;
                if (lc == SEG_LC__COUNT) FAIL(&x, "state: lc: unknown lifecycle stage");
                c->lifecycle = (uint8_t)lc;
            }
        } else if (keq(k, "as")) {
            int b;
            rc = get_bool(&x, k, &b);
            c->assigned = (uint8_t)b;
        } else if (keq(k, "cl")) {
            int64_t v;
            rc = get_i64(&x, k, &v);
            if (rc == 0 && (v < -1 || v > INT32_MAX)) FAIL(&x, "state: cl: out of range");
            c->cluster = (int32_t)v;
        } else if (keq(k, "fs")) {
            rc = get_i64(&x, k, &c->first_seen);
        } else if (keq(k, "ls")) {
            rc = get_i64(&x, k, &c->last_seen);
        } else if (keq(k, "la")) {
            rc = get_i64(&x, k, &c->last_activity);
        } else if (keq(k, "dt")) {
            rc = get_i64(&x, k, &c->decay_ts);
        } else if (keq(k, "ra")) {
            rc = get_time(&x, k, &c->reactivated_at, SEG_NO_TIME);
        } else if (keq(k, "ct")) {
            rc = get_time(&x, k, &c->last_change_ts, SEG_NO_TIME);
        } else if (keq(k, "due")) {
            rc = get_time(&x, k, &c->due, SEG_NEVER);
        } else if (keq(k, "ev")) {
            rc = get_u64(&x, k, &c->events, UINT64_MAX);
        } else if (keq(k, "or")) {
            rc = get_u64(&x, k, &c->orders, UINT64_MAX);
        } else if (keq(k, "sq")) {
            rc = get_u64(&x, k, &c->seq, UINT64_MAX);
        } else if (keq(k, "sqc")) {
            rc = get_u64(&x, k, &c->seq_cluster, UINT64_MAX);
        } else if (keq(k, "sqr")) {
            rc = get_u64(&x, k, &c->seq_rule, UINT64_MAX);
        } else if (keq(k, "rev")) {
            rc = get_f64(&x, k, &c->revenue);
        } else if (keq(k, "ru")) {
            rc = unpack_rules(&x, s, k, &c->rules);
        } else if (keq(k, "rs")) {
            rc = unpack_rules(&x, s, k, &c->rules_seen);
        } else if (keq(k, "f")) {
            rc = unpack_features(&x, s, &c->f);
        } else if (keq(k, "dd")) {
            size_t m_;
            rc = get_container(&x, k, V_ARR, &m_);
            if (rc == 0 && m_ > SEG_DEDUP_N)
                FAIL(&x, "state: dd: more than %d hashes", SEG_DEDUP_N);
            memset(c->dedup, 0, sizeof(c->dedup));
            for (size_t j = 0; rc == 0 && j < m_; j++)
                rc = get_u64(&x, k, &c->dedup[j], UINT64_MAX);
        } else if (keq(k, "dp")) {
            rc = get_u64(&x, k, &u, SEG_DEDUP_N - 1);
            c->dedup_pos = (uint8_t)u;
        } else if (keq(k, "ddt")) {
            size_t m_;
            rc = get_container(&x, k, V_ARR, &m_);
            if (rc == 0 && m_ != SEG_DEDUP_N) FAIL(&x, "state: ddt: not %d times", SEG_DEDUP_N);
            for (size_t j = 0; rc == 0 && j < m_; j++) {
                rc = get_u64(&x, k, &u, DD_TS_MAX / 60000);
                c->dedup_min[j] = (uint32_t)u;
            }
            has_ddt = 1;
        } else if (keq(k, "dx")) {
            rc = unpack_dedup_tab(&x, s, c);
        } else if (keq(k, "te")) {
            rc = get_u64(&x, k, &u, UINT32_MAX);
            c->taught_epoch = (uint32_t)u;
        } else if (keq(k, "tv")) {
            rc = get_vec(&x, k, c->taught, SEG_DIM);
            has_tv = 1;
        } else if (keq(k, "tr")) {
            rc = unpack_traits(&x, tr);
        } else if (keq(k, "tt")) {
            rc = unpack_trait_times(&x, tr);
        } else {
            rc = skip(&x, k[0] ? k : "(key)");
        }
        if (rc < 0) return -1;
    }
    if (x.r.pos != x.r.len) FAIL(&x, "state: %zu trailing bytes", x.r.len - x.r.pos);
    if (!version) FAIL(&x, "state: no format version (v)");
    if (tr->has_tt && (!tr->has_tr || tr->n_tt != tr->n_tr))
        FAIL(&x, "state: tt: %zu times for %zu traits", tr->n_tt, tr->n_tr);
    if (c->rules & ~c->rules_seen) FAIL(&x, "state: ru: a rule held but never evaluated");
    /* times beyond +-2^53 ms (285,000 years) would overflow the core's arithmetic */
    const int64_t lim = (int64_t)1 << 53;
    const int64_t t[] = {c->first_seen, c->last_seen,      c->last_activity,
                         c->decay_ts,   c->reactivated_at, c->last_change_ts,
                         c->due};
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
        if (t[i] != SEG_NO_TIME && t[i] != SEG_NEVER && (t[i] > lim || t[i] < -lim))
            FAIL(&x, "state: a time is out of range");
    /* a cluster the model does not know (not loaded, or from another model):
     * assigned afresh at the next event, not counted in the model */
    if (c->cluster >= m->next_id || (c->cluster >= 0 && !m->ready)) {
        c->cluster = -1;
        c->taught_epoch = 0;
    }
    if (!has_tv) c->taught_epoch = 0; /* nothing to take back out of the model */
    if (!has_ddt)
        for (int j = 0; j < SEG_DEDUP_N; j++)
            c->dedup_min[j] = c->last_seen > 0 ? (uint32_t)(c->last_seen / 60000) : 0;
    return 0;
}

/* ------------------------------------------------------------------ */
/* the model                                                           */

int st_pack_model(const seg_t *s, msgpack_sbuffer *out)
{
    /* seg_model() has no const form; the model is only read here */
    const seg_model_t *m = seg_model((seg_t *)s);
    mpw_t w = {out, 0};
    mpw_map(&w, 18);
    PK_KI(&w, "v", ST_PACK_VERSION);
    PK_KU(&w, "version", m->version);
    PK_KI(&w, "k", m->k);
    MPW_LIT(&w, "ready");
    mpw_bool(&w, m->ready);
    PK_KU(&w, "epoch", m->epoch);
    PK_KI(&w, "next_id", m->next_id);
    MPW_LIT(&w, "mean");
    pk_vec(&w, m->mean, SEG_DIM);
    MPW_LIT(&w, "scale");
    pk_vec(&w, m->scale, SEG_DIM);
    MPW_LIT(&w, "clusters");
    mpw_array(&w, (size_t)m->k);
    for (int j = 0; j < m->k; j++) {
        const seg_cluster_t *cl = &m->cl[j];
        mpw_map(&w, 6);
        PK_KI(&w, "id", cl->id);
        MPW_LIT(&w, "c");
        pk_vec(&w, cl->c, SEG_DIM);
        PK_KF(&w, "n", cl->n);
        PK_KF(&w, "recent", cl->recent);
        MPW_LIT(&w, "var");
        pk_vec(&w, cl->var, SEG_DIM);
        MPW_LIT(&w, "label");
        mpw_cstr(&w, cl->label);
    }
    PK_KU(&w, "updates", m->updates);
    PK_KU(&w, "updates_since_split", m->updates_since_split);
    PK_KU(&w, "updates_since_refresh", m->updates_since_refresh);
    MPW_LIT(&w, "since");
    mpw_array(&w, (size_t)m->k);
    for (int j = 0; j < m->k; j++) mpw_u64(&w, m->since[j]);
    PK_KU(&w, "since_n", m->since_n);
    PK_KU(&w, "rng", m->rng);
    PK_KU(&w, "seen_sample", m->seen_sample);
    int ns = m->ready ? 0 : m->n_sample; /* seeding normalises the sample in place */
    MPW_LIT(&w, "sample");
    mpw_array(&w, (size_t)ns);
    for (int i = 0; i < ns; i++) pk_vec(&w, m->sample[i], SEG_DIM);
    int nr = m->res ? m->n_res : 0;
    MPW_LIT(&w, "res");
    mpw_array(&w, (size_t)nr);
    for (int i = 0; i < nr; i++) { /* slot order: refreshes depend on it */
        mpw_array(&w, 2);
        mpw_u64(&w, m->res_key[i]);
        pk_vec(&w, m->res[i], SEG_DIM);
    }
    return w.err ? -1 : 0;
}

typedef struct model_in {
    uint64_t version, epoch, updates, since_split, since_refresh, since_n, rng, seen;
    int64_t k, next_id;
    int ready, has[32];
    double mean[SEG_DIM], scale[SEG_DIM];
    seg_cluster_t cl[SEG_K_MAX];
    int has_label[SEG_K_MAX], has_id[SEG_K_MAX];
    size_t n_cl, n_since;
    uint32_t since[SEG_K_MAX];
    size_t sample_at, n_sample, res_at, n_res; /* positions of the arrays, validated */
} model_in_t;

static int unpack_cluster(ctx_t *x, model_in_t *in, size_t j)
{
    seg_cluster_t *cl = &in->cl[j];
    size_t n;
    if (get_container(x, "clusters", V_MAP, &n) < 0) return -1;
    for (size_t i = 0; i < n; i++) {
        char k[16];
        int rc;
        if (get_key(x, k, sizeof(k)) < 0) return -1;
        if (keq(k, "id")) {
            uint64_t u;
            rc = get_u64(x, "clusters.id", &u, INT32_MAX);
            cl->id = (int32_t)u;
            in->has_id[j] = 1;
        } else if (keq(k, "c")) {
            rc = get_vec(x, "clusters.c", cl->c, SEG_DIM);
        } else if (keq(k, "n")) {
            rc = get_f64(x, "clusters.n", &cl->n);
        } else if (keq(k, "recent")) {
            rc = get_f64(x, "clusters.recent", &cl->recent);
        } else if (keq(k, "var")) {
            rc = get_vec(x, "clusters.var", cl->var, SEG_DIM);
        } else if (keq(k, "label")) {
            const char *s;
            size_t len;
            rc = get_str(x, "clusters.label", &s, &len);
            if (rc == 0 && (len >= sizeof(cl->label) || memchr(s, 0, len)))
                FAIL(x, "model: clusters.label: longer than %zu bytes or has NUL",
                     sizeof(cl->label) - 1);
            if (rc == 0) memcpy(cl->label, s, len), cl->label[len] = 0, in->has_label[j] = 1;
        } else {
            rc = skip(x, "clusters");
        }
        if (rc < 0) return -1;
    }
    if (!in->has_id[j]) FAIL(x, "model: clusters: a cluster has no id");
    return 0;
}

/* An array of vectors (or [key, vector] pairs): validated now, copied once
 * everything else is known good. */
static int check_rows(ctx_t *x, const char *key, int keyed, size_t *at, size_t *count)
{
    if (get_container(x, key, V_ARR, count) < 0) return -1;
    *at = x->r.pos;
    for (size_t i = 0; i < *count; i++) {
        double row[SEG_DIM];
        uint64_t kk;
        size_t two;
        if (keyed) {
            if (get_container(x, key, V_ARR, &two) < 0) return -1;
            if (two != 2) FAIL(x, "model: %s: expected [key, vector] pairs", key);
            if (get_u64(x, key, &kk, UINT64_MAX) < 0) return -1;
        }
        if (get_vec(x, key, row, SEG_DIM) < 0) return -1;
    }
    return 0;
}

int st_unpack_model(seg_t *s, const void *data, size_t len, char *err, size_t errlen)
{
    seg_model_t *m = seg_model(s);
    ctx_t x = {{data, data ? len : 0, 0}, err, errlen, "model"};
    model_in_t *in = calloc(1, sizeof(*in));
    if (!in) FAIL(&x, "model: out of memory");
    int rc = -1;
    size_t n;
    enum { H_V, H_K, H_READY, H_NEXT, H_MEAN, H_SCALE, H_CL };
    if (get_container(&x, "root", V_MAP, &n) < 0) goto out;
    for (size_t i = 0; i < n; i++) {
        char k[32];
        int r;
        uint64_t u;
        if (get_key(&x, k, sizeof(k)) < 0) goto out;
        if (keq(k, "v")) {
            r = get_u64(&x, k, &u, UINT32_MAX);
            if (r == 0 && (u < 1 || u > ST_PACK_VERSION)) {
                snprintf(err, errlen,
                         "model: format version %llu is not supported (this build "
                         "reads %d)",
                         (unsigned long long)u, ST_PACK_VERSION);
                goto out;
            }
            in->has[H_V] = 1;
        } else if (keq(k, "version")) {
            r = get_u64(&x, k, &in->version, UINT64_MAX);
        } else if (keq(k, "k")) {
            r = get_i64(&x, k, &in->k);
            in->has[H_K] = 1;
        } else if (keq(k, "ready")) {
            r = get_bool(&x, k, &in->ready);
            in->has[H_READY] = 1;
        } else if (keq(k, "epoch")) {
            r = get_u64(&x, k, &in->epoch, UINT32_MAX);
        } else if (keq(k, "next_id")) {
            r = get_i64(&x, k, &in->next_id);
            in->has[H_NEXT] = 1;
        } else if (keq(k, "mean")) {
            r = get_vec(&x, k, in->mean, SEG_DIM);
            in->has[H_MEAN] = 1;
        } else if (keq(k, "scale")) {
            r = get_vec(&x, k, in->scale, SEG_DIM);
            in->has[H_SCALE] = 1;
        } else if (keq(k, "clusters")) {
            r = get_container(&x, k, V_ARR, &in->n_cl);
            if (r == 0 && in->n_cl > SEG_K_MAX) {
                snprintf(err, errlen, "model: clusters: more than %d", SEG_K_MAX);
                goto out;
            }
            memset(in->has_id, 0, sizeof(in->has_id));
            memset(in->has_label, 0, sizeof(in->has_label));
            memset(in->cl, 0, sizeof(in->cl));
            for (size_t j = 0; r == 0 && j < in->n_cl; j++) r = unpack_cluster(&x, in, j);
            in->has[H_CL] = 1;
        } else if (keq(k, "updates")) {
            r = get_u64(&x, k, &in->updates, UINT64_MAX);
        } else if (keq(k, "updates_since_split")) {
            r = get_u64(&x, k, &in->since_split, UINT64_MAX);
        } else if (keq(k, "updates_since_refresh")) {
            r = get_u64(&x, k, &in->since_refresh, UINT64_MAX);
        } else if (keq(k, "since")) {
            r = get_container(&x, k, V_ARR, &in->n_since);
            if (r == 0 && in->n_since > SEG_K_MAX) {
                snprintf(err, errlen, "model: since: more than %d", SEG_K_MAX);
                goto out;
            }
            for (size_t j = 0; r == 0 && j < in->n_since; j++) {
                r = get_u64(&x, k, &u, UINT32_MAX);
                in->since[j] = (uint32_t)u;
            }
        } else if (keq(k, "since_n")) {
            r = get_u64(&x, k, &in->since_n, 1023);
        } else if (keq(k, "rng")) {
            r = get_u64(&x, k, &in->rng, UINT64_MAX);
        } else if (keq(k, "seen_sample")) {
            r = get_u64(&x, k, &in->seen, UINT64_MAX);
        } else if (keq(k, "sample")) {
            r = check_rows(&x, k, 0, &in->sample_at, &in->n_sample);
        } else if (keq(k, "res")) {
            r = check_rows(&x, k, 1, &in->res_at, &in->n_res);
        } else {
            r = skip(&x, k[0] ? k : "(key)");
        }
        if (r < 0) goto out;
    }
    if (x.r.pos != x.r.len) {
        snprintf(err, errlen, "model: %zu trailing bytes", x.r.len - x.r.pos);
        goto out;
    }
    static const char *const need[] = {"v", "k", "ready", "next_id", "mean", "scale", "clusters"};
    for (int i = 0; i <= H_CL; i++)
        if (!in->has[i]) {
            snprintf(err, errlen, "model: %s: missing", need[i]);
            goto out;
        }
    if (in->k != m->k) {
        snprintf(err, errlen, "model: k is %lld but clusters.k is %d", (long long)in->k, m->k);
        goto out;
    }
    if ((int64_t)in->n_cl != in->k || (in->n_since && (int64_t)in->n_since != in->k)) {
        snprintf(err, errlen, "model: clusters/since: expected %d entries", m->k);
        goto out;
    }
    if (in->next_id < (in->ready ? in->k : 0) || in->next_id > INT32_MAX - SEG_K_MAX) {
        snprintf(err, errlen, "model: next_id: out of range");
        goto out;
    }
    for (int j = 0; in->ready && j < m->k; j++) { /* ids are given at seeding */
        if (in->cl[j].id >= in->next_id) {
            snprintf(err, errlen, "model: clusters.id: %d is not below next_id", in->cl[j].id);
            goto out;
        }
        for (int i = 0; i < j; i++)
            if (in->cl[i].id == in->cl[j].id) {
                snprintf(err, errlen, "model: clusters.id: %d repeated", in->cl[j].id);
                goto out;
            }
    }
    for (int d = 0; d < SEG_DIM; d++)
        if (!(in->scale[d] > 0)) {
            snprintf(err, errlen, "model: scale: must be positive");
            goto out;
        }
    if (!in->ready && in->n_sample > (size_t)m->cap_sample) {
        snprintf(err, errlen, "model: sample: more than clusters.warmup (%d) vectors",
                 m->cap_sample);
        goto out;
    }

    /* everything checked: commit */
    m->version = in->version;
    m->ready = in->ready;
    m->epoch = (uint32_t)in->epoch;
    m->next_id = (int32_t)in->next_id;
    memcpy(m->mean, in->mean, sizeof(m->mean));
    memcpy(m->scale, in->scale, sizeof(m->scale));
    int relabel = 0;
    for (int j = 0; j < m->k; j++) {
        m->cl[j] = in->cl[j];
        relabel |= !in->has_label[j];
    }
    if (relabel && m->ready) seg_model_label(m);
    m->updates = in->updates;
    m->updates_since_split = in->since_split;
    m->updates_since_refresh = in->since_refresh;
    memset(m->since, 0, sizeof(m->since));
    memcpy(m->since, in->since, in->n_since * sizeof(uint32_t));
    m->since_n = (uint32_t)in->since_n;
    m->rng = in->rng ? in->rng : 1;
    m->seen_sample = in->seen;
    m->n_sample = 0;
    x.r.pos = in->sample_at;
    for (size_t i = 0; !in->ready && i < in->n_sample; i++)
        get_vec(&x, "sample", m->sample[m->n_sample++], SEG_DIM); /* validated above */
    free(m->res), free(m->res_key), free(m->res_heap), free(m->res_tab);
    m->res = NULL, m->res_key = NULL, m->res_heap = NULL, m->res_tab = NULL;
    m->n_res = m->cap_res = m->tab_cap = m->tab_used = 0;
    x.r.pos = in->res_at;
    for (size_t i = 0; i < in->n_res; i++) {
        double row[SEG_DIM];
        uint64_t key;
        size_t two;
        get_container(&x, "res", V_ARR, &two);
        get_u64(&x, "res", &key, UINT64_MAX);
        get_vec(&x, "res", row, SEG_DIM);
        seg_model_observe(m, key, row); /* in slot order: the same slots again */
    }
    rc = 0;
out:
    free(in);
    return rc;
}

/* ------------------------------------------------------------------ */
/* readable hash fields                                                */

/* Decimal digits of v at o, NUL-terminated; returns their count. */
static size_t fmt_u64(char *o, uint64_t v)
{
    char *e = seg_dec_u64(o, v);
    *e = 0;
    return (size_t)(e - o);
}

static size_t fmt_i64(char *o, int64_t v)
{
    char *e = seg_dec_i64(o, v);
    *e = 0;
    return (size_t)(e - o);
}

/* Shortest "%.Ng" (N = 15..17) that reads back as the same double. Most
 * revenues are whole cents: when v is the double nearest to C/100 for an
 * integer C below 10^15, "%.15g" prints that decimal (it has at most 15
 * significant digits, DBL_DIG) in fixed form with trailing zeros dropped,
 * and it reads back as v, so it is written directly (no snprintf/strtod). */
static size_t fmt_double(char *buf, size_t len, double v)
{
    if (v >= 0 && v < 1e13 && !signbit(v)) {
        double r = nearbyint(v * 100.0);
        uint64_t ci = (uint64_t)r;
        if ((double)ci / 100.0 == v) {
            size_t n = fmt_u64(buf, ci / 100);
            unsigned cents = (unsigned)(ci % 100);
            if (cents) {
                buf[n++] = '.';
                buf[n++] = (char)('0' + cents / 10);
                if (cents % 10) buf[n++] = (char)('0' + cents % 10);
                buf[n] = 0;
            }
            return n;
        }
    }
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, len, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) break;
    }
    return strlen(buf);
}

/* s, cut to what fits (the field's bound; labels and names are far
 * shorter) */
static size_t fmt_str(char *o, const char *s)
{
    size_t n = strnlen(s, ST_FIELD_VALUE_MAX - 1);
    memcpy(o, s, n);
    o[n] = 0;
    return n;
}

int st_customer_fields(const seg_t *s, const seg_customer_t *c, int64_t updated_ms,
                       st_field_t out[ST_FIELDS])
{
    /* written directly, not with snprintf: this runs for every customer in
     * every checkpoint, on the loop */
    int n = 0;
#define FIELD(nm, fmt)                                                                             \
    do {                                                                                           \
        char *o = out[n].value;                                                                    \
        out[n].name = nm;                                                                          \
        out[n++].len = fmt;                                                                        \
    } while (0)
    FIELD("lifecycle", fmt_str(o, c->lifecycle > SEG_LC_NONE && c->lifecycle < SEG_LC__COUNT
                                      ? seg_lifecycle_names[c->lifecycle]
                                      : ""));
    FIELD("cluster", fmt_i64(o, c->cluster));
    const char *label = c->cluster >= 0 ? seg_cluster_label(s, c->cluster) : NULL;
    FIELD("cluster_label", fmt_str(o, label ? label : ""));
    out[n].name = "rules";
    size_t at = 0;
    const seg_ruleset_t *rs = seg_params(s)->rules;
    out[n].value[0] = 0;
    for (int i = 0; i < seg_rules_count(rs) && i < SEG_RULES_MAX; i++)
        if ((c->rules >> i) & 1) {
            /* at most 64 names of at most 63 bytes and 63 commas: always fits */
            const char *name = seg_rule_name(rs, i);
            size_t nl = strlen(name);
            if (at + (at > 0) + nl >= ST_FIELD_VALUE_MAX) break;
            if (at) out[n].value[at++] = ',';
            memcpy(out[n].value + at, name, nl + 1);
            at += nl;
        }
    out[n++].len = at;
    FIELD("first_seen", fmt_i64(o, c->first_seen));
    FIELD("last_seen", fmt_i64(o, c->last_seen));
    FIELD("events", fmt_u64(o, c->events));
    FIELD("orders", fmt_u64(o, c->orders));
    FIELD("revenue", fmt_double(o, ST_FIELD_VALUE_MAX, c->revenue));
    FIELD("updated", fmt_i64(o, updated_ms));
#undef FIELD
    return n;
}
