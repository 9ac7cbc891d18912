/* stream/codec_change.c: everything segstream writes on the wire. Change
 * events (CONTRACT §3) and input events in the contract's own shape (what
 * `gen` writes), each as JSON or msgpack (msgpack-c's packer writing into a
 * strm_buf_t). Output is deterministic: the same values give the same bytes
 * on every run (doubles go through one formatter; features are rounded to
 * 1e-6 first). Appends to the caller's buffer and, on failure, leaves it as
 * it was. Never reads a clock (emitted_at is the caller's). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <msgpack.h>
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

int strm__json_str(strm_buf_t *b, const char *str, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)str;
    if (len > (SIZE_MAX - 2) / 6 || strm_buf_reserve(b, len * 6 + 2) < 0) return -1;
    char *o = b->p + b->len;
    *o++ = '"';
    for (size_t k = 0; k < len;) {
        /* copy a run of plain ASCII in one go: ids and labels are mostly that */
        size_t run = k;
        while (run < len && s[run] >= 0x20 && s[run] < 0x80 && s[run] != '"' && s[run] != '\\')
            run++;
        if (run > k) {
            memcpy(o, s + k, run - k);
            o += run - k;
            k = run;
            if (k == len) break;
        }
        unsigned c = s[k];
        if (c >= 0x80) {
            size_t n = strm__utf8_seq(s + k, len - k);
            if (n) {
                memcpy(o, s + k, n);
                o += n;
                k += n;
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
    *o++ = '"';
    b->len = (size_t)(o - b->p);
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

static void jw_u64(jw_t *w, uint64_t v)
{
    char buf[24], *e = buf + sizeof buf, *p = utoa_rev(v, e);
    jw_raw(w, p, (size_t)(e - p));
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

/* A derived feature: rounded to 1e-6, integral values as "30.0". */
static void jw_feature(jw_t *w, double x)
{
    char buf[40];
    double r = strm__round6(x);
    if (!isfinite(r)) {
        JW_LIT(w, "null");
        return;
    }
    if (fabs(r) < 1e12) {
        /* fixed point with at most 6 decimals, trailing zeros cut, ".0" kept */
        int64_t v = llround(r * 1e6);
        uint64_t a = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
        char *e = buf + sizeof buf, *p;
        uint64_t frac = a % 1000000;
        int digits = 6;
        while (digits > 1 && frac % 10 == 0) frac /= 10, digits--;
        p = e;
        for (int d = 0; d < digits; d++, frac /= 10) *--p = (char)('0' + frac % 10);
        *--p = '.';
        p = utoa_rev(a / 1000000, p);
        if (v < 0) *--p = '-';
        jw_raw(w, p, (size_t)(e - p));
        return;
    }
    int n = fabs(r) < 1e15 && r == floor(r) ? snprintf(buf, sizeof buf, "%.1f", r)
                                            : strm__fmt_double(buf, r);
    jw_raw(w, buf, (size_t)n);
}

/* ---------- change events ---------- */

#define ID_BUF 1024

static int change_names(const seg_change_t *ch, char *id, char *dim)
{
    /* snprintf-like: the full length is returned even when cut */
    int a = seg_change_id(ch, id, ID_BUF), b = seg_change_dimension(ch, dim, ID_BUF);
    return a < 0 || b < 0 || a >= ID_BUF || b >= ID_BUF ? -1 : 0;
}

int strm_change_json(const seg_change_t *ch, int64_t emitted_at, strm_buf_t *out)
{
    char id[ID_BUF], dim[ID_BUF];
    size_t mark = out->len;
    jw_t w = {out, 0};
    if (change_names(ch, id, dim) < 0) return -1;
    JW_LIT(&w, "{\"event_id\":");
    jw_cstr(&w, id);
    JW_LIT(&w, ",\"customer_id\":");
    jw_str(&w, ch->cust->id, ch->cust->id_len);
    JW_LIT(&w, ",\"dimension\":");
    jw_cstr(&w, dim);
    JW_LIT(&w, ",\"from\":");
    jw_cstr(&w, ch->from);
    JW_LIT(&w, ",\"to\":");
    jw_cstr(&w, ch->to);
    if (ch->dim == SEG_DIM_CLUSTER) {
        JW_LIT(&w, ",\"from_id\":");
        if (ch->from_id < 0)
            JW_LIT(&w, "null");
        else
            jw_i64(&w, ch->from_id);
        JW_LIT(&w, ",\"to_id\":");
        if (ch->to_id < 0)
            JW_LIT(&w, "null");
        else
            jw_i64(&w, ch->to_id);
    }
    JW_LIT(&w, ",\"ts\":");
    jw_i64(&w, ch->ts);
    JW_LIT(&w, ",\"emitted_at\":");
    jw_i64(&w, emitted_at);
    JW_LIT(&w, ",\"reason\":");
    jw_cstr(&w, ch->reason);
    JW_LIT(&w, ",\"model_version\":");
    jw_u64(&w, ch->model_version);
    JW_LIT(&w, ",\"features\":{\"recency_days\":");
    jw_feature(&w, ch->recency_days);
    JW_LIT(&w, ",\"orders\":");
    jw_u64(&w, ch->orders);
    JW_LIT(&w, ",\"monetary\":");
    jw_feature(&w, ch->monetary);
    JW_LIT(&w, "}}");
    if (w.err) {
        out->len = mark;
        return -1;
    }
    return 0;
}

static int buf_write(void *data, const char *buf, size_t len)
{
    return strm_buf_append(data, buf, len);
}

static int mp_cstr(msgpack_packer *pk, const char *s)
{
    return s ? msgpack_pack_str_with_body(pk, s, strlen(s)) : msgpack_pack_nil(pk);
}

static int mp_key(msgpack_packer *pk, const char *s)
{
    return msgpack_pack_str_with_body(pk, s, strlen(s));
}

static int mp_feature(msgpack_packer *pk, double x)
{
    double r = strm__round6(x);
    return isfinite(r) ? msgpack_pack_double(pk, r) : msgpack_pack_nil(pk);
}

int strm_change_msgpack(const seg_change_t *ch, int64_t emitted_at, strm_buf_t *out)
{
    char id[ID_BUF], dim[ID_BUF];
    size_t mark = out->len;
    msgpack_packer pk;
    int e = 0;
    if (change_names(ch, id, dim) < 0) return -1;
    msgpack_packer_init(&pk, out, buf_write);
    int cluster = ch->dim == SEG_DIM_CLUSTER;
    e |= msgpack_pack_map(&pk, cluster ? 12 : 10);
    e |= mp_key(&pk, "event_id");
    e |= mp_cstr(&pk, id);
    e |= mp_key(&pk, "customer_id");
    e |= msgpack_pack_str_with_body(&pk, ch->cust->id, ch->cust->id_len);
    e |= mp_key(&pk, "dimension");
    e |= mp_cstr(&pk, dim);
    e |= mp_key(&pk, "from");
    e |= mp_cstr(&pk, ch->from);
    e |= mp_key(&pk, "to");
    e |= mp_cstr(&pk, ch->to);
    if (cluster) {
        e |= mp_key(&pk, "from_id");
        e |= ch->from_id < 0 ? msgpack_pack_nil(&pk) : msgpack_pack_int32(&pk, ch->from_id);
        e |= mp_key(&pk, "to_id");
        e |= ch->to_id < 0 ? msgpack_pack_nil(&pk) : msgpack_pack_int32(&pk, ch->to_id);
    }
    e |= mp_key(&pk, "ts");
    e |= msgpack_pack_int64(&pk, ch->ts);
    e |= mp_key(&pk, "emitted_at");
    e |= msgpack_pack_int64(&pk, emitted_at);
    e |= mp_key(&pk, "reason");
    e |= mp_cstr(&pk, ch->reason);
    e |= mp_key(&pk, "model_version");
    e |= msgpack_pack_uint64(&pk, ch->model_version);
    e |= mp_key(&pk, "features");
    e |= msgpack_pack_map(&pk, 3);
    e |= mp_key(&pk, "recency_days");
    e |= mp_feature(&pk, ch->recency_days);
    e |= mp_key(&pk, "orders");
    e |= msgpack_pack_uint64(&pk, ch->orders);
    e |= mp_key(&pk, "monetary");
    e |= mp_feature(&pk, ch->monetary);
    if (e) {
        out->len = mark;
        return -1;
    }
    return 0;
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
    e |= mp_key(&pk, "customer_id");
    e |= msgpack_pack_str_with_body(&pk, ev->customer_id, ev->id_len);
    e |= mp_key(&pk, "type");
    e |= mp_cstr(&pk, type_name(ev));
    e |= mp_key(&pk, "ts");
    e |= msgpack_pack_int64(&pk, ev->ts);
    if (ev->has_amount) {
        e |= mp_key(&pk, "amount");
        e |= msgpack_pack_double(&pk, ev->amount);
    }
    if (ev->category_len) {
        e |= mp_key(&pk, "category");
        e |= msgpack_pack_str_with_body(&pk, ev->category, ev->category_len);
    }
    if (has_ch) {
        e |= mp_key(&pk, "channel");
        e |= mp_cstr(&pk, seg_channel_names[ev->channel]);
    }
    if (ev->discount) {
        e |= mp_key(&pk, "discount");
        e |= msgpack_pack_true(&pk);
    }
    if (ev->event_id_len) {
        e |= mp_key(&pk, "event_id");
        e |= msgpack_pack_str_with_body(&pk, ev->event_id, ev->event_id_len);
    }
    if (nt) {
        e |= mp_key(&pk, "traits");
        e |= msgpack_pack_map(&pk, (size_t)nt);
        for (int i = 0; i < nt; i++) {
            e |= mp_cstr(&pk, ev->traits[i].key);
            e |= mp_cstr(&pk, ev->traits[i].val);
        }
    }
    if (e) {
        out->len = mark;
        return -1;
    }
    return 0;
}
