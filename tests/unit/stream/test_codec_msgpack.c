/* tests/unit/stream/test_codec_msgpack.c: the msgpack decoder
 * (codec_msgpack.c): the shared mapping cases through msgpack, every
 * integer/float/string width, timestamps, and malicious headers (counts and
 * lengths far beyond the bytes present, deep nesting, invalid bytes). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include "helpers.h"

static seg_event_t ev;

static const char *dec_bytes(const void *p, size_t n)
{
    const char *r = NULL;
    return strm_decode(p, n, 0, &ev, &r) == 0 ? NULL : r;
}

/* The JSON text converted to msgpack, then decoded. */
static const char *dec_json(const char *json)
{
    strm_buf_t b;
    strm_buf_init(&b);
    cr_assert_eq(json_to_mp(json, &b), 0, "%s", json);
    const char *r = dec_bytes(b.p, b.len);
    strm_buf_free(&b);
    return r;
}

static int wr(void *data, const char *buf, size_t len)
{
    return strm_buf_append(data, buf, len);
}

static void key(msgpack_packer *pk, const char *k)
{
    msgpack_pack_str_with_body(pk, k, strlen(k));
}

Test(codec_msgpack, shared_mapping_cases)
{
    for (size_t i = 0; i < N_MAP_CASES; i++) {
        const char *r = dec_json(map_cases[i].json);
        if (map_cases[i].reason) {
            cr_assert_not_null(r, "accepted: %s", map_cases[i].json);
            cr_assert_str_eq(r, map_cases[i].reason, "%s", map_cases[i].json);
        } else {
            cr_assert_null(r, "rejected (%s): %s", r, map_cases[i].json);
        }
    }
}

Test(codec_msgpack, full_event_native_types)
{
    strm_buf_t b;
    strm_buf_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, wr);
    msgpack_pack_map(&pk, 10);
    key(&pk, "customer_id");
    msgpack_pack_uint64(&pk, UINT64_MAX);
    key(&pk, "type");
    key(&pk, "purchase");
    key(&pk, "ts");
    msgpack_pack_uint64(&pk, 1700000000000ULL);
    key(&pk, "amount");
    msgpack_pack_float(&pk, 19.5f);
    key(&pk, "category");
    key(&pk, "garden");
    key(&pk, "channel");
    key(&pk, "store");
    key(&pk, "discount");
    msgpack_pack_int8(&pk, 1);
    key(&pk, "event_id");
    msgpack_pack_int64(&pk, -5);
    key(&pk, "traits");
    msgpack_pack_map(&pk, 2);
    key(&pk, "city");
    key(&pk, "Leeds");
    key(&pk, "n");
    msgpack_pack_double(&pk, 2.5);
    msgpack_pack_int(&pk, 7); /* a non-string key: ignored */
    msgpack_pack_nil(&pk);
    cr_assert_null(dec_bytes(b.p, b.len));
    cr_assert_str_eq(ev.customer_id, "18446744073709551615");
    cr_assert_eq(ev.id_len, 20);
    cr_assert_eq(ev.type, SEG_EV_PURCHASE);
    cr_assert_eq(ev.ts, 1700000000000LL);
    cr_assert_eq(ev.amount, 19.5);
    cr_assert_str_eq(ev.category, "garden");
    cr_assert_eq(ev.channel, SEG_CH_STORE);
    cr_assert_eq(ev.discount, 1);
    cr_assert_str_eq(ev.event_id, "-5");
    cr_assert_eq(ev.n_traits, 2);
    cr_assert_str_eq(ev.traits[0].val, "Leeds");
    cr_assert_str_eq(ev.traits[1].val, "2.5");
    strm_buf_free(&b);
}

Test(codec_msgpack, integer_widths)
{
    /* customer_id as int8, int16, int32, int64, uint8..uint64, negative fixint */
    static const struct {
        unsigned char bytes[10];
        size_t n;
        const char *want;
    } ids[] = {
        {{0x05}, 1, "5"},
        {{0xff}, 1, "-1"},
        {{0xcc, 0xc8}, 2, "200"},
        {{0xcd, 0x01, 0x00}, 3, "256"},
        {{0xce, 0x00, 0x01, 0x00, 0x00}, 5, "65536"},
        {{0xcf, 0, 0, 0, 1, 0, 0, 0, 0}, 9, "4294967296"},
        {{0xd0, 0x80}, 2, "-128"},
        {{0xd1, 0x80, 0x00}, 3, "-32768"},
        {{0xd2, 0x80, 0, 0, 0}, 5, "-2147483648"},
        {{0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0}, 9, "-9223372036854775808"},
    };
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        unsigned char m[64];
        size_t n = 0;
        m[n++] = 0x83;
        m[n++] = 0xab;
        memcpy(m + n, "customer_id", 11);
        n += 11;
        memcpy(m + n, ids[i].bytes, ids[i].n);
        n += ids[i].n;
        memcpy(m + n, "\xa4type\xa1x\xa2ts\x01", 11);
        n += 11;
        cr_assert_null(dec_bytes(m, n), "case %zu", i);
        cr_assert_str_eq(ev.customer_id, ids[i].want);
    }
}

Test(codec_msgpack, str_widths_and_bin)
{
    /* customer_id as str8 / str16 / str32 */
    unsigned char m[] = "\x83\xa4type\xa1x\xa2ts\x01\xab"
                        "customer_id"
                        "\xd9\x02id";
    cr_assert_null(dec_bytes(m, sizeof m - 1));
    cr_assert_str_eq(ev.customer_id, "id");
    unsigned char m16[] = "\x83\xa4type\xa1x\xa2ts\x01\xab"
                          "customer_id"
                          "\xda\x00\x02id";
    cr_assert_null(dec_bytes(m16, sizeof m16 - 1));
    unsigned char m32[] = "\x83\xa4type\xa1x\xa2ts\x01\xab"
                          "customer_id"
                          "\xdb\x00\x00\x00\x02id";
    cr_assert_null(dec_bytes(m32, sizeof m32 - 1));
    cr_assert_str_eq(ev.customer_id, "id");
    unsigned char bin[] = "\x83\xa4type\xa1x\xa2ts\x01\xab"
                          "customer_id"
                          "\xc4\x02id";
    cr_assert_str_eq(dec_bytes(bin, sizeof bin - 1), "bad_customer_id");
    unsigned char badutf[] = "\x83\xa4type\xa1x\xa2ts\x01\xab"
                             "customer_id"
                             "\xa2\xc3\x28";
    cr_assert_str_eq(dec_bytes(badutf, sizeof badutf - 1), "bad_customer_id");
}

Test(codec_msgpack, timestamp_ext_and_floats)
{
    /* ts as timestamp32 ext (-1): 1700000000 s */
    unsigned char t32[] = "\x83\xa1x\xc0\xa2ts\xd6\xff\x65\x53\xf1\x00\xa4type\xa1x";
    size_t n = sizeof t32 - 1;
    const char *r = dec_bytes(t32, n);
    cr_assert_str_eq(r, "missing_customer_id"); /* mapped fine, just no id */
    unsigned char full[] = "\x83\xab"
                           "customer_id"
                           "\xa1"
                           "c\xa2ts\xd6\xff\x65\x53\xf1\x00\xa4type\xa1x";
    cr_assert_null(dec_bytes(full, sizeof full - 1));
    cr_assert_eq(ev.ts, 1700000000000LL);
    /* timestamp64: nsec 500000000 << 2 | sec high bits, sec = 1700000000 */
    uint64_t v = ((uint64_t)500000000 << 34) | 1700000000ULL;
    unsigned char t64[40] = "\x83\xab"
                            "customer_id"
                            "\xa1"
                            "c\xa4type\xa1x\xa2ts\xd7\xff";
    size_t k = strlen((const char *)t64);
    for (int i = 0; i < 8; i++) t64[k++] = (unsigned char)(v >> (56 - 8 * i));
    cr_assert_null(dec_bytes(t64, k));
    cr_assert_eq(ev.ts, 1700000000500LL);
    /* a float ts is bad, NaN and infinite amounts are bad */
    cr_assert_str_eq(dec_json("{\"customer_id\":\"c\",\"type\":\"x\",\"ts\":1.0}"), "bad_ts");
    unsigned char nan[] = "\x84\xab"
                          "customer_id"
                          "\xa1"
                          "c\xa4type\xa1x\xa2ts\x01\xa6"
                          "amount\xcb\x7f\xf8\x00\x00\x00\x00\x00\x00";
    cr_assert_str_eq(dec_bytes(nan, sizeof nan - 1), "bad_amount");
}

Test(codec_msgpack, malicious_headers)
{
    /* map32 claiming 2^32-1 entries with nothing behind it */
    static const unsigned char map32[] = {0xdf, 0xff, 0xff, 0xff, 0xff};
    cr_assert_str_eq(dec_bytes(map32, sizeof map32), "truncated_msgpack");
    /* map32 claiming 2^32-1 entries with a few bytes behind it */
    static const unsigned char map32b[] = {0xdf, 0xff, 0xff, 0xff, 0xff, 0xa1, 'a', 0x01};
    cr_assert_str_eq(dec_bytes(map32b, sizeof map32b), "truncated_msgpack");
    /* str32 claiming 4 GiB as a key and as a value */
    static const unsigned char str32k[] = {0x81, 0xdb, 0xff, 0xff, 0xff, 0xff, 'a'};
    cr_assert_str_eq(dec_bytes(str32k, sizeof str32k), "truncated_msgpack");
    static const unsigned char str32v[] = {0x81, 0xa1, 'a', 0xdb, 0xff, 0xff, 0xff, 0xff, 'b'};
    cr_assert_str_eq(dec_bytes(str32v, sizeof str32v), "truncated_msgpack");
    /* array32, bin32, ext32 claiming 4 GiB */
    static const unsigned char arr32[] = {0x81, 0xa1, 'a', 0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0};
    cr_assert_str_eq(dec_bytes(arr32, sizeof arr32), "truncated_msgpack");
    static const unsigned char bin32[] = {0x81, 0xa1, 'a', 0xc6, 0xff, 0xff, 0xff, 0xff};
    cr_assert_str_eq(dec_bytes(bin32, sizeof bin32), "truncated_msgpack");
    static const unsigned char ext32[] = {0x81, 0xa1, 'a', 0xc9, 0xff, 0xff, 0xff, 0xff, 0x01};
    cr_assert_str_eq(dec_bytes(ext32, sizeof ext32), "truncated_msgpack");
    /* nested map16 counts that multiply */
    static const unsigned char nest[] = {0x81, 0xa1, 'a', 0xde, 0xff, 0xff, 0xde, 0xff, 0xff};
    cr_assert_str_eq(dec_bytes(nest, sizeof nest), "truncated_msgpack");
    /* headers cut short */
    static const unsigned char cut[] = {0x81, 0xa1, 'a', 0xcb, 0x40};
    cr_assert_str_eq(dec_bytes(cut, sizeof cut), "truncated_msgpack");
    static const unsigned char cut2[] = {0xde, 0x00};
    cr_assert_str_eq(dec_bytes(cut2, sizeof cut2), "truncated_msgpack");
    /* never-used byte */
    static const unsigned char c1[] = {0x81, 0xa1, 'a', 0xc1};
    cr_assert_str_eq(dec_bytes(c1, sizeof c1), "bad_msgpack");
    /* bytes after the map */
    unsigned char trail[] = "\x83\xab"
                            "customer_id"
                            "\xa1"
                            "c\xa4type\xa1x\xa2ts\x01\xc0";
    cr_assert_str_eq(dec_bytes(trail, sizeof trail - 1), "bad_msgpack");
    /* a top-level array is neither */
    static const unsigned char arr[] = {0x91, 0x01};
    cr_assert_str_eq(dec_bytes(arr, sizeof arr), "not_json_or_msgpack");
    const char *r = NULL;
    cr_assert_eq(strm_decode_msgpack(arr, sizeof arr, &ev, &r), -1);
    cr_assert_str_eq(r, "not_json_or_msgpack");
}

Test(codec_msgpack, deep_nesting_no_recursion)
{
    size_t depth = 1000000;
    unsigned char *m = malloc(depth + 64);
    size_t n = 0;
    m[n++] = 0x84;
    memcpy(m + n,
           "\xab"
           "customer_id"
           "\xa1"
           "c\xa4type\xa1x\xa2ts\x01",
           25);
    n += 25;
    m[n++] = 0xa1;
    m[n++] = 'z';
    for (size_t i = 0; i < depth; i++) m[n++] = 0x91;
    m[n++] = 0xc0;
    const char *r = NULL;
    cr_assert_eq(strm_decode_msgpack(m, n, &ev, &r), 0, "%s", r);
    cr_assert_str_eq(ev.customer_id, "c");
    cr_assert_str_eq(dec_bytes(m, n - 1), "oversized"); /* strm_decode's default limit */
    cr_assert_eq(strm_decode_msgpack(m, n - 1, &ev, &r), -1);
    cr_assert_str_eq(r, "truncated_msgpack");
    free(m);
}

Test(codec_msgpack, every_truncation_of_a_valid_event)
{
    strm_buf_t b;
    strm_buf_init(&b);
    cr_assert_eq(json_to_mp("{\"customer_id\":\"c42\",\"type\":\"purchase\",\"ts\":1700000000000,"
                            "\"amount\":120.5,\"category\":\"books\",\"traits\":{\"k\":\"v\"},"
                            "\"x\":[1,{\"y\":null}]}",
                            &b),
                 0);
    cr_assert_null(dec_bytes(b.p, b.len));
    for (size_t n = 1; n < b.len; n++) {
        const char *r = dec_bytes(b.p, n);
        cr_assert_not_null(r, "prefix %zu accepted", n);
        cr_assert_str_eq(r, "truncated_msgpack", "prefix %zu", n);
    }
    strm_buf_free(&b);
}

Test(codec_msgpack, mp_skip_frames_exactly)
{
    static const unsigned char two[] = {0x82, 0xa1, 'a', 0x01, 0xa1, 'b', 0x92, 0xc2, 0xc3, 0x80};
    size_t used = 0;
    cr_assert_eq(strm__mp_skip(two, sizeof two, &used), 0);
    cr_assert_eq(used, 9);
    cr_assert_eq(strm__mp_skip(two, 8, &used), 1);
    cr_assert_eq(strm__mp_skip(two + 9, 1, &used), 0);
    cr_assert_eq(used, 1);
    static const unsigned char bad[] = {0x92, 0xc1, 0x01};
    cr_assert_eq(strm__mp_skip(bad, sizeof bad, &used), -1);
}

/* The fast path for plain contract events must decode exactly as the
 * general path, or decline: every shared mapping case, an event with every
 * field, and each of them with every byte replaced by a boundary value,
 * deleted, or cut off. */
static void fast_agrees(const char *what, const void *p, size_t n)
{
    cr_assert(strm__msgpack_fast_agrees(p, n), "fast path disagrees (%s, %zu bytes)", what, n);
}

static void fast_agrees_mutated(const char *what, const unsigned char *p, size_t n)
{
    static const unsigned char subst[] = {0x00, 0x01, 0x05, 0x7f, 0x80, 0x81, 0x8f, 0x90, 0xa0,
                                          0xa1, 0xa8, 0xbf, 0xc0, 0xc1, 0xc2, 0xc3, 0xca, 0xcb,
                                          0xcc, 0xcd, 0xce, 0xcf, 0xd0, 0xd3, 0xd9, 0xda, 0xde,
                                          0xdf, 0xe0, 0xff, '"',  '\\', 'a',  'z'};
    unsigned char m[512];
    cr_assert_lt(n, sizeof m);
    fast_agrees(what, p, n);
    for (size_t at = 0; at < n; at++) {
        for (size_t c = 0; c < sizeof subst; c++) {
            memcpy(m, p, n);
            m[at] = subst[c];
            fast_agrees(what, m, n);
        }
        memcpy(m, p, at);
        memcpy(m + at, p + at + 1, n - at - 1);
        fast_agrees(what, m, n - 1);
        fast_agrees(what, p, at);
    }
}

Test(codec_msgpack, fast_path_decodes_as_the_general_path_or_declines)
{
    strm_buf_t b;
    strm_buf_init(&b);
    for (size_t i = 0; i < N_MAP_CASES; i++) {
        b.len = 0;
        cr_assert_eq(json_to_mp(map_cases[i].json, &b), 0);
        fast_agrees_mutated(map_cases[i].json, (const unsigned char *)b.p, b.len);
    }
    static const char *const more[] = {
        "{\"customer_id\":\"c1\",\"type\":\"purchase\",\"ts\":1700000000000,\"amount\":12.5,"
        "\"category\":\"books\",\"channel\":\"web\",\"discount\":true,\"event_id\":\"e-1\","
        "\"traits\":{\"country\":\"GB\",\"age_band\":\"25-34\",\"tier\":\"gold\"}}",
        "{\"customer_id\":\"c1\",\"type\":\"purchase\",\"ts\":5,\"amount\":0,\"discount\":false}",
        "{\"customer_id\":\"c1\",\"type\":\"page_view\",\"ts\":0,\"traits\":{}}",
        "{\"customer_id\":\"c1\",\"type\":\"x\",\"ts\":1,\"traits\":{\"a\":\"1\",\"a\":\"2\"}}",
        "{\"customer_id\":\"c1\",\"type\":\"x\",\"ts\":1,\"ts\":2}",
    };
    for (size_t i = 0; i < sizeof more / sizeof more[0]; i++) {
        b.len = 0;
        cr_assert_eq(json_to_mp(more[i], &b), 0);
        fast_agrees_mutated(more[i], (const unsigned char *)b.p, b.len);
    }
    /* and as the generator writes them: float64 amounts, wide integers */
    seg_event_t e;
    seg_event_reset(&e);
    strcpy(e.customer_id, "c000123");
    e.id_len = 7;
    e.type = SEG_EV_PURCHASE;
    e.ts = 1704078343741LL;
    e.amount = 19.99;
    e.has_amount = 1;
    strcpy(e.category, "electronics");
    e.category_len = 11;
    e.channel = SEG_CH_APP;
    e.discount = 1;
    strcpy(e.event_id, "e123-45");
    e.event_id_len = 7;
    e.n_traits = 1;
    strcpy(e.traits[0].key, "country");
    strcpy(e.traits[0].val, "NL");
    b.len = 0;
    cr_assert_eq(strm_event_msgpack(&e, &b), 0);
    fast_agrees_mutated("generated purchase", (const unsigned char *)b.p, b.len);
    cr_assert_null(dec_bytes(b.p, b.len));
    cr_assert_eq(ev.ts, e.ts);
    cr_assert_eq(ev.amount, e.amount);
    cr_assert_str_eq(ev.traits[0].val, "NL");
    strm_buf_free(&b);
}
