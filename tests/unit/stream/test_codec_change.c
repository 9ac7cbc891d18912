/* tests/unit/stream/test_codec_change.c: the encoders (codec_change.c):
 * change events byte for byte in JSON and field by field in msgpack (and
 * byte for byte against msgpack-c's packer), JSON
 * string escaping of any bytes, number formatting, and input events
 * round-tripping encode -> strm_decode exactly in both formats. */
#include <criterion/criterion.h>
#include <msgpack.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "helpers.h"
#include "segmenter/internal.h"

static seg_customer_t cust;

static seg_change_t lifecycle_change(void)
{
    memset(&cust, 0, sizeof cust);
    strcpy(cust.id, "c42");
    cust.id_len = 3;
    seg_change_t ch;
    memset(&ch, 0, sizeof ch);
    ch.cust = &cust;
    ch.dim = SEG_DIM_LIFECYCLE;
    ch.from = "active";
    ch.to = "at_risk";
    ch.from_id = ch.to_id = -1;
    ch.ts = 1700000000000LL;
    ch.seq = 7;
    ch.reason = "no activity for 30 days";
    ch.model_version = 7;
    ch.recency_days = 30.0;
    ch.orders = 3;
    ch.monetary = 120.5;
    return ch;
}

static char *as_str(strm_buf_t *b)
{
    cr_assert_eq(strm_buf_append(b, "", 1), 0);
    return b->p;
}

Test(codec_change, lifecycle_json_exact)
{
    seg_change_t ch = lifecycle_change();
    strm_buf_t b;
    strm_buf_init(&b);
    cr_assert_eq(strm_change_json(&ch, 1700000012345LL, &b), 0);
    cr_assert_str_eq(as_str(&b),
                     "{\"event_id\":\"c42:lifecycle:7\",\"customer_id\":\"c42\","
                     "\"dimension\":\"lifecycle\",\"from\":\"active\",\"to\":\"at_risk\","
                     "\"ts\":1700000000000,\"emitted_at\":1700000012345,"
                     "\"reason\":\"no activity for 30 days\",\"model_version\":7,"
                     "\"features\":{\"recency_days\":30.0,\"orders\":3,\"monetary\":120.5}}");
    strm_buf_free(&b);
}

Test(codec_change, cluster_first_assignment_json_exact)
{
    seg_change_t ch = lifecycle_change();
    ch.dim = SEG_DIM_CLUSTER;
    ch.from = NULL;
    ch.to = "high-spend \xC2\xB7 frequent";
    ch.to_id = 4;
    ch.seq = 1;
    ch.reason = NULL;
    ch.recency_days = 0.1 + 0.2; /* rounds to 0.3 */
    ch.monetary = 2.0 / 3.0;     /* rounds to 0.666667 */
    strm_buf_t b;
    strm_buf_init(&b);
    cr_assert_eq(strm_buf_append(&b, "prefix|", 7), 0); /* appends */
    cr_assert_eq(strm_change_json(&ch, 5, &b), 0);
    cr_assert_str_eq(
        as_str(&b),
        "prefix|{\"event_id\":\"c42:cluster:1:>4@1700000000000\",\"customer_id\":\"c42\","
        "\"dimension\":\"cluster\",\"from\":null,\"to\":\"high-spend \xC2\xB7 "
        "frequent\",\"from_id\":null,\"to_id\":4,\"ts\":1700000000000,"
        "\"emitted_at\":5,\"reason\":null,\"model_version\":7,"
        "\"features\":{\"recency_days\":0.3,\"orders\":3,\"monetary\":0.666667}}");
    strm_buf_free(&b);
}

Test(codec_change, rule_dimension_and_odd_numbers)
{
    seg_change_t ch = lifecycle_change();
    ch.dim = SEG_DIM_RULE;
    ch.rule_name = "vip";
    ch.from = "out";
    ch.to = "in";
    ch.recency_days = NAN;
    ch.monetary = -1e20;
    strm_buf_t b;
    strm_buf_init(&b);
    cr_assert_eq(strm_change_json(&ch, 0, &b), 0);
    char *s = as_str(&b);
    cr_assert(strstr(s, "\"event_id\":\"c42:rule:vip:7\""), "%s", s);
    cr_assert(strstr(s, "\"dimension\":\"rule:vip\""), "%s", s);
    cr_assert(strstr(s, "\"recency_days\":null"), "%s", s);
    cr_assert(strstr(s, "\"monetary\":-1e+20"), "%s", s);
    cr_assert_null(strstr(s, "from_id"));
    strm_buf_free(&b);
}

Test(codec_change, json_escaping_any_bytes)
{
    static const char raw[] = "a\"b\\c\n\t\x01\x1f\x7f\xC3\xA9\xFF\xC3 \xED\xA0\x80z";
    seg_change_t ch = lifecycle_change();
    memcpy(cust.id, raw, sizeof raw);
    cust.id_len = (uint8_t)(sizeof raw - 1);
    strm_buf_t b;
    strm_buf_init(&b);
    cr_assert_eq(strm__json_str(&b, raw, sizeof raw - 1), 0);
    cr_assert_str_eq(as_str(&b), "\"a\\\"b\\\\c\\n\\t\\u0001\\u001f\x7f\xC3\xA9\\ufffd\\ufffd "
                                 "\\ufffd\\ufffd\\ufffdz\"");
    b.len = 0;
    /* the whole change event still parses as JSON (through our own decoder's
     * grammar check: wrap it as a field of a contract event) */
    cr_assert_eq(strm_buf_append(&b, "{\"customer_id\":\"x\",\"type\":\"y\",\"ts\":1,\"c\":", 41),
                 0);
    cr_assert_eq(strm_change_json(&ch, 1, &b), 0);
    cr_assert_eq(strm_buf_append(&b, "}", 1), 0);
    seg_event_t ev;
    const char *r = NULL;
    cr_assert_eq(strm_decode(b.p, b.len, 0, &ev, &r), 0, "%s", r);
    strm_buf_free(&b);
}

/* The escaper copies plain runs a word at a time: compare it with a plain
 * byte-by-byte reading on random strings of every length around a word. */
static size_t ref_escape(const unsigned char *s, size_t len, char *o)
{
    size_t n = 0;
    o[n++] = '"';
    for (size_t k = 0; k < len;) {
        unsigned c = s[k];
        size_t u;
        if (c >= 0x80) {
            u = strm__utf8_seq(s + k, len - k);
            if (u) {
                memcpy(o + n, s + k, u), n += u, k += u;
            } else {
                memcpy(o + n, "\\ufffd", 6), n += 6, k++;
            }
            continue;
        }
        static const char pairs[] = "\"\"\\\\\nn\rr\tt\bb\ff"; /* byte, then its letter */
        const char *e = c ? strchr(pairs, (int)c) : NULL;
        if (e && (e - pairs) % 2 == 0)
            o[n++] = '\\', o[n++] = e[1];
        else if (c < 0x20)
            n += (size_t)sprintf(o + n, "\\u%04x", c);
        else
            o[n++] = (char)c;
        k++;
    }
    o[n++] = '"';
    return n;
}

Test(codec_change, json_escaping_matches_a_bytewise_reading)
{
    static const unsigned char pool[] =
        "abcXYZ019 :-\"\\\n\x01\x1f\x7f\xC3\xA9\xE2\x82\xAC\xFF\xC2";
    uint64_t rng = 7;
    strm_buf_t b;
    strm_buf_init(&b);
    for (int iter = 0; iter < 20000; iter++) {
        unsigned char s[40];
        char want[40 * 6 + 2];
        size_t len = (size_t)(iter % 40);
        for (size_t i = 0; i < len; i++) {
            rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
            /* mostly plain letters, so long plain runs and words occur */
            unsigned r = (unsigned)(rng >> 33);
            s[i] = r % 4 ? (unsigned char)('a' + r % 26) : pool[(r >> 8) % (sizeof pool - 1)];
        }
        b.len = 0;
        cr_assert_eq(strm__json_str(&b, (const char *)s, len), 0);
        size_t n = ref_escape(s, len, want);
        cr_assert_eq(b.len, n, "iteration %d", iter);
        cr_assert_eq(memcmp(b.p, want, n), 0, "iteration %d", iter);
    }
    strm_buf_free(&b);
}

Test(codec_change, json_numbers_at_every_digit_count)
{
    seg_change_t ch = lifecycle_change();
    strm_buf_t b;
    strm_buf_init(&b);
    uint64_t v = 1;
    for (int d = 0; d < 20; d++, v *= 10) {
        uint64_t cases[] = {v - 1, v, v + 1, v * 9 + (v - 1)};
        for (int i = 0; i < 4; i++) {
            if (d == 19 && i == 3) cases[i] = UINT64_MAX;
            char want[64];
            ch.seq = ch.orders = ch.model_version = cases[i];
            ch.ts = (int64_t)(cases[i] >> 1) * (i & 1 ? -1 : 1);
            b.len = 0;
            cr_assert_eq(strm_change_json(&ch, INT64_MIN, &b), 0);
            char *s = as_str(&b);
            snprintf(want, sizeof want, ":lifecycle:%llu\"", (unsigned long long)cases[i]);
            cr_assert(strstr(s, want), "%s", s);
            snprintf(want, sizeof want, "\"orders\":%llu,", (unsigned long long)cases[i]);
            cr_assert(strstr(s, want), "%s", s);
            snprintf(want, sizeof want, "\"ts\":%lld,", (long long)ch.ts);
            cr_assert(strstr(s, want), "%s", s);
            cr_assert(strstr(s, "\"emitted_at\":-9223372036854775808,"), "%s", s);
        }
    }
    /* and any digits in between, at every length (numbers are cut into
     * groups of digits in the lanes of a word) */
    uint64_t rng = 3;
    for (int i = 0; i < 20000; i++) {
        rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
        uint64_t x = rng ^ rng >> 29;
        x >>= (rng >> 58); /* 0..63 bits: every digit count */
        char want[64];
        ch.seq = ch.orders = ch.model_version = x;
        ch.ts = (int64_t)(x >> 1);
        b.len = 0;
        cr_assert_eq(strm_change_json(&ch, INT64_MIN, &b), 0);
        char *s = as_str(&b);
        snprintf(want, sizeof want, ":lifecycle:%llu\"", (unsigned long long)x);
        cr_assert(strstr(s, want), "%s", s);
        snprintf(want, sizeof want, "\"model_version\":%llu,", (unsigned long long)x);
        cr_assert(strstr(s, want), "%s", s);
        snprintf(want, sizeof want, "\"ts\":%lld,", (long long)ch.ts);
        cr_assert(strstr(s, want), "%s", s);
    }
    strm_buf_free(&b);
}

Test(codec_change, msgpack_fields)
{
    seg_change_t ch = lifecycle_change();
    ch.dim = SEG_DIM_CLUSTER;
    ch.from = "a";
    ch.from_id = 2;
    ch.to = "b";
    ch.to_id = 3;
    ch.monetary = 0.1234567;
    strm_buf_t b;
    strm_buf_init(&b);
    cr_assert_eq(strm_change_msgpack(&ch, 99, &b), 0);
    size_t used = 0;
    cr_assert_eq(strm__mp_skip((const uint8_t *)b.p, b.len, &used), 0);
    cr_assert_eq(used, b.len);
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    cr_assert_eq(msgpack_unpack_next(&u, b.p, b.len, NULL), MSGPACK_UNPACK_SUCCESS);
    msgpack_object o = u.data;
    cr_assert_eq(o.type, MSGPACK_OBJECT_MAP);
    cr_assert_eq(o.via.map.size, 12);
    static const char *const keys[] = {"event_id",   "customer_id", "dimension",     "from",
                                       "to",         "from_id",     "to_id",         "ts",
                                       "emitted_at", "reason",      "model_version", "features"};
    for (uint32_t i = 0; i < 12; i++) {
        msgpack_object_kv *kv = &o.via.map.ptr[i];
        cr_assert_eq(kv->key.type, MSGPACK_OBJECT_STR);
        cr_assert_eq(kv->key.via.str.size, strlen(keys[i]));
        cr_assert_eq(memcmp(kv->key.via.str.ptr, keys[i], strlen(keys[i])), 0, "key %u", i);
    }
    msgpack_object *v = &o.via.map.ptr[0].val;
    /* a cluster id ends with its source, target and time */
    cr_assert_eq(v->via.str.size, 31);
    cr_assert_eq(memcmp(v->via.str.ptr, "c42:cluster:7:2>3@1700000000000", 31), 0);
    cr_assert_eq(o.via.map.ptr[5].val.via.u64, 2);
    cr_assert_eq(o.via.map.ptr[6].val.via.u64, 3);
    cr_assert_eq(o.via.map.ptr[7].val.via.u64, 1700000000000ULL);
    cr_assert_eq(o.via.map.ptr[8].val.via.u64, 99);
    msgpack_object *f = &o.via.map.ptr[11].val;
    cr_assert_eq(f->type, MSGPACK_OBJECT_MAP);
    cr_assert_eq(f->via.map.size, 3);
    cr_assert_eq(f->via.map.ptr[0].val.via.f64, 30.0);
    cr_assert_eq(f->via.map.ptr[1].val.via.u64, 3);
    cr_assert_eq(f->via.map.ptr[2].val.via.f64, 0.123457);
    msgpack_unpacked_destroy(&u);

    /* lifecycle: 10 entries, from nil on a first assignment */
    ch = lifecycle_change();
    ch.from = NULL;
    b.len = 0;
    cr_assert_eq(strm_change_msgpack(&ch, 99, &b), 0);
    msgpack_unpacked_init(&u);
    cr_assert_eq(msgpack_unpack_next(&u, b.p, b.len, NULL), MSGPACK_UNPACK_SUCCESS);
    cr_assert_eq(u.data.via.map.size, 10);
    cr_assert_eq(u.data.via.map.ptr[3].val.type, MSGPACK_OBJECT_NIL);
    msgpack_unpacked_destroy(&u);
    strm_buf_free(&b);
}

/* What strm_change_msgpack wrote through msgpack-c's packer before it
 * wrote directly: the reference its bytes are held to. */
static int ref_write(void *data, const char *buf, size_t len)
{
    return strm_buf_append(data, buf, len);
}

static void ref_cstr(msgpack_packer *pk, const char *s)
{
    if (s)
        msgpack_pack_str_with_body(pk, s, strlen(s));
    else
        msgpack_pack_nil(pk);
}

static void ref_feature(msgpack_packer *pk, double x)
{
    double r = strm__round6(x);
    if (isfinite(r))
        msgpack_pack_double(pk, r);
    else
        msgpack_pack_nil(pk);
}

static void ref_change_msgpack(const seg_change_t *ch, int64_t emitted_at, strm_buf_t *out)
{
    char id[2048], dim[2048];
    seg_change_id(ch, id, sizeof id);
    seg_change_dimension(ch, dim, sizeof dim);
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, ref_write);
    int cluster = ch->dim == SEG_DIM_CLUSTER;
    msgpack_pack_map(&pk, cluster ? 12 : 10);
    ref_cstr(&pk, "event_id"), ref_cstr(&pk, id);
    ref_cstr(&pk, "customer_id");
    msgpack_pack_str_with_body(&pk, ch->cust->id, ch->cust->id_len);
    ref_cstr(&pk, "dimension"), ref_cstr(&pk, dim);
    ref_cstr(&pk, "from"), ref_cstr(&pk, ch->from);
    ref_cstr(&pk, "to"), ref_cstr(&pk, ch->to);
    if (cluster) {
        ref_cstr(&pk, "from_id");
        if (ch->from_id < 0)
            msgpack_pack_nil(&pk);
        else
            msgpack_pack_int32(&pk, ch->from_id);
        ref_cstr(&pk, "to_id");
        if (ch->to_id < 0)
            msgpack_pack_nil(&pk);
        else
            msgpack_pack_int32(&pk, ch->to_id);
    }
    ref_cstr(&pk, "ts"), msgpack_pack_int64(&pk, ch->ts);
    ref_cstr(&pk, "emitted_at"), msgpack_pack_int64(&pk, emitted_at);
    ref_cstr(&pk, "reason"), ref_cstr(&pk, ch->reason);
    ref_cstr(&pk, "model_version"), msgpack_pack_uint64(&pk, ch->model_version);
    ref_cstr(&pk, "features"), msgpack_pack_map(&pk, 3);
    ref_cstr(&pk, "recency_days"), ref_feature(&pk, ch->recency_days);
    ref_cstr(&pk, "orders"), msgpack_pack_uint64(&pk, ch->orders);
    ref_cstr(&pk, "monetary"), ref_feature(&pk, ch->monetary);
}

static size_t pick(uint64_t *r, size_t n)
{
    *r = *r * 6364136223846793005ULL + 1442695040888963407ULL;
    return (size_t)((*r >> 33) % n);
}

/* Every integer at and around each of msgpack's size limits, strings at the
 * fixstr/str8/str16 limits, non-ASCII bytes, nil, and the feature values
 * that round or are not finite: the same bytes as the packer's. */
Test(codec_change, msgpack_bytes_match_msgpack_c)
{
    static const int64_t ints[] = {INT64_MIN,
                                   -(1LL << 31) - 1,
                                   -(1LL << 31),
                                   -(1LL << 15) - 1,
                                   -(1LL << 15),
                                   -129,
                                   -128,
                                   -33,
                                   -32,
                                   -1,
                                   0,
                                   1,
                                   127,
                                   128,
                                   255,
                                   256,
                                   65535,
                                   65536,
                                   (1LL << 32) - 1,
                                   1LL << 32,
                                   1700000000000LL,
                                   INT64_MAX};
    static const uint64_t uints[] = {0,
                                     7,
                                     127,
                                     128,
                                     255,
                                     256,
                                     65535,
                                     65536,
                                     4294967295ULL,
                                     4294967296ULL,
                                     (uint64_t)INT64_MAX + 1,
                                     UINT64_MAX};
    static const int32_t ids[] = {-1, 0, 5, 127, 128, 255, 256, 65535, 65536, INT32_MAX};
    static const double feats[] = {0.0, -0.0, 1.0 / 7, 30.0, -5.5, 1e20, NAN, INFINITY, 1e-9};
    static const size_t lens[] = {0, 1, 31, 32, 255, 256, 300};
    static const size_t id_lens[] = {1, 3, 26, 27, 31, 32, 128};
    char text[301], rule[301];
    for (size_t i = 0; i < 300; i++) {
        text[i] = (char)(i % 7 == 3 ? 0xc3 : 'a' + i % 26); /* bytes are copied as they are */
        rule[i] = (char)('A' + i % 26);
    }
    text[300] = rule[300] = 0;
    strm_buf_t got, want;
    strm_buf_init(&got);
    strm_buf_init(&want);
    uint64_t r = 12345;
    for (int n = 0; n < 20000; n++) {
        seg_change_t ch = lifecycle_change();
#define PICK(a) (a[pick(&r, sizeof a / sizeof a[0])])
        size_t il = PICK(id_lens);
        for (size_t i = 0; i < il; i++) cust.id[i] = (char)(i % 5 == 4 ? 0xe2 : 'c' + i % 20);
        cust.id[il] = 0;
        cust.id_len = (uint8_t)il;
        ch.dim = (seg_dim_t)(n % 3);
        char name[301];
        size_t rl = PICK(lens);
        if (rl == 0) rl = 1;
        memcpy(name, rule, rl);
        name[rl] = 0;
        ch.rule_name = name;
        char from[301], to[301];
        size_t fl = PICK(lens), tl = PICK(lens);
        memcpy(from, text, fl), from[fl] = 0;
        memcpy(to, text + 1, tl), to[tl] = 0;
        ch.from = PICK(ids) < 0 ? NULL : from;
        ch.to = to;
        ch.reason = PICK(ids) == 0 ? NULL : text + 300 - PICK(lens);
        ch.from_id = PICK(ids);
        ch.to_id = PICK(ids);
        ch.ts = PICK(ints);
        int64_t emitted = PICK(ints);
        ch.seq = PICK(uints);
        ch.model_version = PICK(uints);
        ch.orders = PICK(uints);
        ch.recency_days = PICK(feats);
        ch.monetary = PICK(feats);
#undef PICK
        got.len = want.len = 0;
        cr_assert_eq(strm_change_msgpack(&ch, emitted, &got), 0, "case %d", n);
        ref_change_msgpack(&ch, emitted, &want);
        cr_assert_eq(got.len, want.len, "case %d: %zu bytes, msgpack-c %zu", n, got.len, want.len);
        cr_assert_eq(memcmp(got.p, want.p, got.len), 0, "case %d differs", n);
    }
    strm_buf_free(&got);
    strm_buf_free(&want);
}

/* seg_change_t.plain lets the writer copy from, to and reason unescaped:
 * for every string seg__json_plain accepts, the bytes are those of the
 * escaping path; and it accepts the labels' middle dot but nothing that
 * would be escaped or replaced. */
Test(codec_change, plain_strings_copy_as_escaping_would)
{
    cr_assert(seg__json_plain("high-spend \xC2\xB7 frequent \xC2\xB7 evening #7"));
    cr_assert(seg__json_plain("no activity for 30 days"));
    cr_assert(seg__json_plain(""));
    cr_assert(seg__json_plain("del \x7f ok"));
    static const char *const not_plain[] = {
        "say \"hi\"",        "back\\slash",       "tab\t",   "nl\n", "lone \xC2", "cut \xC2 x",
        "euro \xE2\x82\xAC", "overlong \xC0\xAF", "bad \xFF"};
    for (size_t i = 0; i < sizeof not_plain / sizeof not_plain[0]; i++)
        cr_assert_not(seg__json_plain(not_plain[i]), "%s", not_plain[i]);

    /* mostly what passes, sometimes what does not */
    static const char *const good[] = {"a", " ", "#", "7", "\x7f", "\xC2\xB7", "\xDF\xBF"};
    static const char *const bad[] = {"\"",   "\\",       "\n",   "\xC2", "\xE2\x82\xAC",
                                      "\x80", "\xC1\xBF", "\xFF", "\xB7"};
    strm_buf_t a, b;
    strm_buf_init(&a);
    strm_buf_init(&b);
    uint64_t r = 99;
    int plain_seen = 0;
    for (int n = 0; n < 20000; n++) {
        char str[3][64];
        for (int k = 0; k < 3; k++) {
            size_t len = pick(&r, 16);
            str[k][0] = 0;
            for (size_t i = 0; i < len; i++)
                strcat(str[k], pick(&r, 40) ? good[pick(&r, sizeof good / sizeof good[0])]
                                            : bad[pick(&r, sizeof bad / sizeof bad[0])]);
        }
        seg_change_t ch = lifecycle_change();
        ch.dim = (seg_dim_t)(n % 3);
        ch.rule_name = "r";
        ch.from = n % 5 ? str[0] : NULL;
        ch.to = str[1];
        ch.reason = str[2];
        int plain = (!ch.from || seg__json_plain(ch.from)) && seg__json_plain(ch.to) &&
                    seg__json_plain(ch.reason);
        a.len = b.len = 0;
        ch.plain = 0;
        cr_assert_eq(strm_change_json(&ch, 5, &a), 0);
        if (!plain) continue;
        plain_seen++;
        ch.plain = 1;
        cr_assert_eq(strm_change_json(&ch, 5, &b), 0);
        cr_assert(a.len == b.len && memcmp(a.p, b.p, a.len) == 0, "case %d", n);
    }
    cr_assert_gt(plain_seen, 1000, "the cases reach the plain path");
    strm_buf_free(&a);
    strm_buf_free(&b);
}

Test(codec_change, deterministic_bytes)
{
    seg_change_t ch = lifecycle_change();
    ch.monetary = 1.0 / 7.0;
    strm_buf_t a, c;
    strm_buf_init(&a);
    strm_buf_init(&c);
    for (int i = 0; i < 3; i++) {
        a.len = c.len = 0;
        cr_assert_eq(strm_change_json(&ch, 1, &a), 0);
        cr_assert_eq(strm_change_json(&ch, 1, &c), 0);
        cr_assert_eq(a.len, c.len);
        cr_assert_eq(memcmp(a.p, c.p, a.len), 0);
    }
    cr_assert(strstr(as_str(&a), "\"monetary\":0.142857}"));
    strm_buf_free(&a);
    strm_buf_free(&c);
}

static void full_event(seg_event_t *ev)
{
    seg_event_reset(ev);
    strcpy(ev->customer_id, "c\"\xC3\xA9\\1");
    ev->id_len = (uint8_t)strlen(ev->customer_id);
    ev->type = SEG_EV_PURCHASE;
    ev->ts = 1700000000123LL;
    ev->amount = 0.1 + 0.2;
    ev->has_amount = 1;
    strcpy(ev->category, "books\tand more");
    ev->category_len = (uint8_t)strlen(ev->category);
    ev->channel = SEG_CH_EMAIL;
    ev->discount = 1;
    strcpy(ev->event_id, "evt-9");
    ev->event_id_len = 5;
    ev->n_traits = 2;
    strcpy(ev->traits[0].key, "country");
    strcpy(ev->traits[0].val, "GB");
    strcpy(ev->traits[1].key, "age_band");
    strcpy(ev->traits[1].val, "25-34");
}

static void assert_same(const seg_event_t *a, const seg_event_t *b)
{
    cr_assert_eq(a->id_len, b->id_len);
    cr_assert_eq(memcmp(a->customer_id, b->customer_id, a->id_len), 0);
    cr_assert_eq(a->type, b->type);
    cr_assert_eq(a->ts, b->ts);
    cr_assert_eq(a->has_amount, b->has_amount);
    cr_assert_eq(memcmp(&a->amount, &b->amount, sizeof a->amount), 0, "%.17g vs %.17g", a->amount,
                 b->amount);
    cr_assert_eq(a->category_len, b->category_len);
    cr_assert_str_eq(a->category, b->category);
    cr_assert_eq(a->channel, b->channel);
    cr_assert_eq(a->discount, b->discount);
    cr_assert_eq(a->event_id_len, b->event_id_len);
    cr_assert_str_eq(a->event_id, b->event_id);
    cr_assert_eq(a->n_traits, b->n_traits);
    for (int i = 0; i < a->n_traits; i++) {
        cr_assert_str_eq(a->traits[i].key, b->traits[i].key);
        cr_assert_str_eq(a->traits[i].val, b->traits[i].val);
    }
}

static void roundtrip(const seg_event_t *in)
{
    for (int fmt = 0; fmt < 2; fmt++) {
        strm_buf_t b;
        strm_buf_init(&b);
        cr_assert_eq(fmt ? strm_event_msgpack(in, &b) : strm_event_json(in, &b), 0);
        seg_event_t out;
        const char *r = NULL;
        cr_assert_eq(strm_decode(b.p, b.len, 0, &out, &r), 0, "%s: %s", fmt ? "msgpack" : "json",
                     r);
        assert_same(in, &out);
        strm_buf_free(&b);
    }
}

Test(codec_change, event_json_exact)
{
    seg_event_t ev;
    full_event(&ev);
    strm_buf_t b;
    strm_buf_init(&b);
    cr_assert_eq(strm_event_json(&ev, &b), 0);
    cr_assert_str_eq(as_str(&b), "{\"customer_id\":\"c\\\"\xC3\xA9\\\\1\",\"type\":\"purchase\","
                                 "\"ts\":1700000000123,\"amount\":0.30000000000000004,"
                                 "\"category\":\"books\\tand more\",\"channel\":\"email\","
                                 "\"discount\":true,\"event_id\":\"evt-9\","
                                 "\"traits\":{\"country\":\"GB\",\"age_band\":\"25-34\"}}");
    seg_event_t min;
    seg_event_reset(&min);
    strcpy(min.customer_id, "m");
    min.id_len = 1;
    min.type = SEG_EV_PAGE_VIEW;
    min.ts = 0;
    b.len = 0;
    cr_assert_eq(strm_event_json(&min, &b), 0);
    cr_assert_str_eq(as_str(&b), "{\"customer_id\":\"m\",\"type\":\"page_view\",\"ts\":0}");
    strm_buf_free(&b);
}

Test(codec_change, event_roundtrip)
{
    seg_event_t ev;
    full_event(&ev);
    roundtrip(&ev);
    /* every type, awkward amounts, no optional fields */
    static const double amounts[] = {
        0, 1, 120.5, 1e-7, 123456789.123456789, SEG_AMOUNT_MAX, 5e-324, 0.1, 99.99, 1.0 / 3.0};
    for (int t = 0; t < SEG_EV__COUNT; t++) {
        for (size_t a = 0; a < sizeof amounts / sizeof amounts[0]; a++) {
            seg_event_reset(&ev);
            snprintf(ev.customer_id, sizeof ev.customer_id, "cust-%d", t);
            ev.id_len = (uint8_t)strlen(ev.customer_id);
            ev.type = (uint8_t)t;
            ev.ts = 1700000000000LL + t;
            ev.amount = amounts[a];
            ev.has_amount = 1;
            ev.channel = (uint8_t)(t % SEG_CH__COUNT);
            roundtrip(&ev);
        }
    }
    /* the longest id and category, eight traits with the longest keys/values */
    seg_event_reset(&ev);
    memset(ev.customer_id, 'i', SEG_ID_MAX);
    ev.customer_id[SEG_ID_MAX] = 0;
    ev.id_len = SEG_ID_MAX;
    ev.type = SEG_EV_SEARCH;
    ev.ts = 253402300799999LL;
    memset(ev.category, 'k', SEG_CATEGORY_MAX);
    ev.category[SEG_CATEGORY_MAX] = 0;
    ev.category_len = SEG_CATEGORY_MAX;
    memset(ev.event_id, 'e', SEG_EVID_MAX);
    ev.event_id[SEG_EVID_MAX] = 0;
    ev.event_id_len = SEG_EVID_MAX;
    ev.n_traits = SEG_TRAITS_MAX;
    for (int i = 0; i < SEG_TRAITS_MAX; i++) {
        memset(ev.traits[i].key, 'a' + i, SEG_TRAIT_KEY - 1);
        ev.traits[i].key[SEG_TRAIT_KEY - 1] = 0;
        memset(ev.traits[i].val, 'v', SEG_TRAIT_VAL - 1);
        ev.traits[i].val[SEG_TRAIT_VAL - 1] = 0;
    }
    roundtrip(&ev);
}

Test(codec_change, fmt_double)
{
    char buf[40];
    cr_assert_eq(strm__fmt_double(buf, 0.1), 3);
    cr_assert_str_eq(buf, "0.1");
    strm__fmt_double(buf, 0.1 + 0.2);
    cr_assert_str_eq(buf, "0.30000000000000004");
    strm__fmt_double(buf, 100);
    cr_assert_str_eq(buf, "100");
    strm__fmt_double(buf, 1e21);
    cr_assert_str_eq(buf, "1e+21");
    cr_assert_eq(strm__round6(0.1234565), 0.123457);
    cr_assert_eq(strm__round6(-0.0000001), 0);
    cr_assert(!signbit(strm__round6(-0.0000001)));
}

/* A cluster change's id names its source, target and time: the JSON
 * writer's event_id is seg_change_id()'s at every sign and length of the
 * time, and two decisions that differ only in time have different ids (a
 * model deciding again after a crash must not reuse the first one's). */
Test(codec_change, cluster_ids_carry_the_time)
{
    seg_change_t ch = lifecycle_change();
    ch.dim = SEG_DIM_CLUSTER;
    ch.to = "x";
    strm_buf_t b;
    strm_buf_init(&b);
    const int64_t times[] = {0, 1, -1, 1700000000000LL, -1700000000000LL, INT64_MAX, INT64_MIN};
    const int32_t from[] = {-1, 0, 7, INT32_MAX};
    static char seen[7 * 4][256];
    int n_seen = 0;
    for (size_t t = 0; t < sizeof times / sizeof times[0]; t++)
        for (size_t f = 0; f < sizeof from / sizeof from[0]; f++) {
            ch.ts = times[t];
            ch.from_id = from[f];
            ch.to_id = 3;
            char id[256], want[300];
            seg_change_id(&ch, id, sizeof id);
            snprintf(want, sizeof want, "{\"event_id\":\"%s\",", id);
            b.len = 0;
            cr_assert_eq(strm_change_json(&ch, 0, &b), 0);
            cr_assert_eq(strncmp(as_str(&b), want, strlen(want)), 0, "%s vs %s", as_str(&b), want);
            snprintf(want, sizeof want, "@%lld", (long long)ch.ts);
            cr_assert(strlen(id) > strlen(want) &&
                          strcmp(id + strlen(id) - strlen(want), want) == 0,
                      "%s", id);
            for (int k = 0; k < n_seen; k++) cr_assert_str_neq(id, seen[k]);
            memcpy(seen[n_seen++], id, sizeof seen[0]);
        }
    strm_buf_free(&b);
}
