/* tests/unit/stream/test_codec_json.c: the JSON decoder (codec_json.c) and
 * the contract-shape mapping through it: every field, every rejection
 * reason, escapes, grammar checks jsmn alone would miss, token limits. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include "helpers.h"

static seg_event_t ev;

/* NULL when accepted, else the reason. */
static const char *dec(const char *s)
{
    const char *r = "unset";
    int rc = strm_decode(s, strlen(s), 0, &ev, &r);
    if (rc == 0) cr_assert_str_eq(r, "unset", "reason written on success");
    return rc == 0 ? NULL : r;
}

#define ACCEPT(s)                                                                                  \
    do {                                                                                           \
        const char *r_ = dec(s);                                                                   \
        cr_assert_null(r_, "rejected (%s): %s", r_, s);                                            \
    } while (0)
#define REJECT(s, why)                                                                             \
    do {                                                                                           \
        const char *r_ = dec(s);                                                                   \
        cr_assert_not_null(r_, "accepted: %s", s);                                                 \
        cr_assert_str_eq(r_, why, "%s", s);                                                        \
    } while (0)

Test(codec_json, full_contract_event)
{
    ACCEPT("{\"customer_id\":\"c42\",\"type\":\"purchase\",\"ts\":1700000000000,"
           "\"amount\":120.5,\"category\":\"books\",\"channel\":\"app\",\"discount\":true,"
           "\"event_id\":\"e-1\",\"traits\":{\"country\":\"GB\",\"age\":34,\"score\":1.25}}");
    cr_assert_str_eq(ev.customer_id, "c42");
    cr_assert_eq(ev.id_len, 3);
    cr_assert_eq(ev.type, SEG_EV_PURCHASE);
    cr_assert_eq(ev.ts, 1700000000000LL);
    cr_assert_eq(ev.has_amount, 1);
    cr_assert_float_eq(ev.amount, 120.5, 0);
    cr_assert_str_eq(ev.category, "books");
    cr_assert_eq(ev.category_len, 5);
    cr_assert_eq(ev.channel, SEG_CH_APP);
    cr_assert_eq(ev.discount, 1);
    cr_assert_str_eq(ev.event_id, "e-1");
    cr_assert_eq(ev.event_id_len, 3);
    cr_assert_eq(ev.n_traits, 3);
    cr_assert_str_eq(ev.traits[0].key, "country");
    cr_assert_str_eq(ev.traits[0].val, "GB");
    cr_assert_str_eq(ev.traits[1].key, "age");
    cr_assert_str_eq(ev.traits[1].val, "34");
    cr_assert_str_eq(ev.traits[2].val, "1.25");
}

Test(codec_json, minimal_event_defaults)
{
    ACCEPT("  \n{\"customer_id\":\"x\",\"type\":\"email_click\",\"ts\":5}\r\n");
    cr_assert_eq(ev.type, SEG_EV_EMAIL_CLICK);
    cr_assert_eq(ev.ts, 5);
    cr_assert_eq(ev.has_amount, 0);
    cr_assert_eq(ev.channel, SEG_CH_NONE);
    cr_assert_eq(ev.discount, 0);
    cr_assert_eq(ev.category_len, 0);
    cr_assert_eq(ev.event_id_len, 0);
    cr_assert_eq(ev.n_traits, 0);
}

Test(codec_json, every_type_and_channel)
{
    char buf[256];
    for (int t = 0; t < SEG_EV__COUNT; t++) {
        snprintf(buf, sizeof buf, "{\"customer_id\":\"c\",\"type\":\"%s\",\"ts\":1,\"amount\":1}",
                 seg_evtype_names[t]);
        ACCEPT(buf);
        cr_assert_eq(ev.type, t, "%s", buf);
    }
    ACCEPT("{\"customer_id\":\"c\",\"type\":\"wishlist_add\",\"ts\":1}");
    cr_assert_eq(ev.type, SEG_EV_OTHER);
    /* a name one byte off anywhere, one byte longer or shorter, is generic
     * activity (the lookup picks a candidate by length and end bytes) */
    for (int t = 0; t < SEG_EV_OTHER; t++) {
        const char *nm = seg_evtype_names[t];
        size_t n = strlen(nm);
        for (size_t i = 0; i <= n + 1; i++) {
            char name[32];
            memcpy(name, nm, n + 1);
            if (i < n)
                name[i] = name[i] == 'x' ? 'y' : 'x'; /* one byte changed */
            else if (i == n)
                name[n - 1] = 0; /* one shorter */
            else
                name[n] = 's', name[n + 1] = 0; /* one longer */
            snprintf(buf, sizeof buf, "{\"customer_id\":\"c\",\"type\":\"%s\",\"ts\":1}", name);
            ACCEPT(buf);
            cr_assert_eq(ev.type, SEG_EV_OTHER, "%s", buf);
        }
    }
    for (int c = 1; c < SEG_CH__COUNT; c++) {
        snprintf(buf, sizeof buf,
                 "{\"customer_id\":\"c\",\"type\":\"x\",\"ts\":1,\"channel\":\"%s\"}",
                 seg_channel_names[c]);
        ACCEPT(buf);
        cr_assert_eq(ev.channel, c);
    }
}

Test(codec_json, integer_customer_ids)
{
    ACCEPT("{\"customer_id\":1234567890123,\"type\":\"x\",\"ts\":1}");
    cr_assert_str_eq(ev.customer_id, "1234567890123");
    cr_assert_eq(ev.id_len, 13);
    ACCEPT("{\"customer_id\":-17,\"type\":\"x\",\"ts\":1}");
    cr_assert_str_eq(ev.customer_id, "-17");
    ACCEPT("{\"customer_id\":0,\"type\":\"x\",\"ts\":1}");
    cr_assert_str_eq(ev.customer_id, "0");
    /* -0 is the same integer as 0, so the same customer (msgpack has no -0) */
    ACCEPT("{\"customer_id\":-0,\"type\":\"x\",\"ts\":1}");
    cr_assert_str_eq(ev.customer_id, "0");
    cr_assert_eq(ev.id_len, 1);
    REJECT("{\"customer_id\":1e3,\"type\":\"x\",\"ts\":1}", "bad_customer_id");
}

Test(codec_json, customer_id_length_limits)
{
    char id[200], buf[400];
    memset(id, 'a', 128);
    id[128] = 0;
    snprintf(buf, sizeof buf, "{\"customer_id\":\"%s\",\"type\":\"x\",\"ts\":1}", id);
    ACCEPT(buf);
    cr_assert_eq(ev.id_len, 128);
    cr_assert_eq(strlen(ev.customer_id), 128);
    id[128] = 'a';
    id[129] = 0;
    snprintf(buf, sizeof buf, "{\"customer_id\":\"%s\",\"type\":\"x\",\"ts\":1}", id);
    REJECT(buf, "bad_customer_id");
}

Test(codec_json, shared_mapping_cases)
{
    for (size_t i = 0; i < N_MAP_CASES; i++) {
        const char *r = dec(map_cases[i].json);
        if (map_cases[i].reason) {
            cr_assert_not_null(r, "accepted: %s", map_cases[i].json);
            cr_assert_str_eq(r, map_cases[i].reason, "%s", map_cases[i].json);
        } else {
            cr_assert_null(r, "rejected (%s): %s", r, map_cases[i].json);
        }
    }
}

Test(codec_json, rfc3339_ts)
{
    ACCEPT("{\"customer_id\":\"c\",\"type\":\"x\",\"ts\":\"2023-11-14T22:13:20Z\"}");
    cr_assert_eq(ev.ts, 1700000000000LL);
    ACCEPT("{\"customer_id\":\"c\",\"type\":\"x\",\"ts\":\"2023-11-14T23:13:20.123456+01:00\"}");
    cr_assert_eq(ev.ts, 1700000000123LL);
    ACCEPT("{\"customer_id\":\"c\",\"type\":\"x\",\"ts\":\"2023-11-14T17:43:20.5-04:30\"}");
    cr_assert_eq(ev.ts, 1700000000500LL);
}

Test(codec_json, amounts_and_discounts)
{
    ACCEPT("{" OK_BASE ",\"amount\":0.1}");
    cr_assert_eq(ev.amount, 0.1);
    ACCEPT("{" OK_BASE ",\"amount\":1.5e2}");
    cr_assert_eq(ev.amount, 150.0);
    ACCEPT("{" OK_BASE ",\"amount\":-0}");
    cr_assert_eq(ev.amount, 0.0);
    cr_assert_eq(ev.has_amount, 1);
    ACCEPT("{" OK_BASE ",\"amount\":123456789012345.678901234567890}"); /* many digits */
    cr_assert_float_eq(ev.amount, 123456789012345.678901234567890, 0.1);
    ACCEPT("{" OK_BASE ",\"amount\":0.30000000000000004}");
    cr_assert_eq(ev.amount, 0.30000000000000004);
    ACCEPT("{" OK_BASE ",\"discount\":0}");
    cr_assert_eq(ev.discount, 0);
    ACCEPT("{" OK_BASE ",\"discount\":2.5}");
    cr_assert_eq(ev.discount, 1);
    ACCEPT("{" OK_BASE ",\"discount\":false}");
    cr_assert_eq(ev.discount, 0);
}

Test(codec_json, category_truncation)
{
    /* 47 ASCII bytes then "é" (2 bytes): the cut falls inside it */
    ACCEPT("{" OK_BASE
           ",\"category\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\\u00e9tail\"}");
    cr_assert_eq(ev.category_len, 47);
    cr_assert_eq(strlen(ev.category), 47);
    ACCEPT("{" OK_BASE
           ",\"category\":\"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\"}");
    cr_assert_eq(ev.category_len, SEG_CATEGORY_MAX);
    ACCEPT("{" OK_BASE ",\"category\":\"\"}");
    cr_assert_eq(ev.category_len, 0);
}

Test(codec_json, unicode_escapes)
{
    ACCEPT("{\"customer_id\":\"caf\\u00e9\\ud83d\\ude00\\n\\\"\\/\",\"type\":\"x\",\"ts\":1}");
    cr_assert_str_eq(ev.customer_id, "caf\xC3\xA9\xF0\x9F\x98\x80\n\"/");
    cr_assert_eq(ev.id_len, 12);
    ACCEPT("{\"customer_id\":\"\\u20AC\",\"type\":\"x\",\"ts\":1}");
    cr_assert_str_eq(ev.customer_id, "\xE2\x82\xAC");
    /* raw UTF-8 passes through */
    ACCEPT("{\"customer_id\":\"\xE2\x82\xAC\",\"type\":\"x\",\"ts\":1}");
    cr_assert_eq(ev.id_len, 3);
    /* escaped key names match */
    ACCEPT("{\"customer\\u005fid\":\"k\",\"type\":\"x\",\"ts\":1}");
    cr_assert_str_eq(ev.customer_id, "k");
    REJECT("{\"customer_id\":\"\\ud83d\",\"type\":\"x\",\"ts\":1}", "bad_customer_id");
    REJECT("{\"customer_id\":\"\\ude00x\",\"type\":\"x\",\"ts\":1}", "bad_customer_id");
    REJECT("{\"customer_id\":\"\\ud83d\\u0041\",\"type\":\"x\",\"ts\":1}", "bad_customer_id");
    REJECT("{\"customer_id\":\"\xC3\x28\",\"type\":\"x\",\"ts\":1}", "bad_customer_id");
    REJECT("{\"customer_id\":\"\xED\xA0\x80\",\"type\":\"x\",\"ts\":1}", "bad_customer_id");
    REJECT("{\"customer_id\":\"a\tb\",\"type\":\"x\",\"ts\":1}", "bad_customer_id");
    ACCEPT("{\"customer_id\":\"c\",\"type\":\"pur\\u0063hase\",\"ts\":1,\"amount\":2}");
    cr_assert_eq(ev.type, SEG_EV_PURCHASE);
    /* the names and times a field is compared with, escaped as JSON allows */
    ACCEPT("{" OK_BASE ",\"channel\":\"w\\u0065b\"}");
    cr_assert_eq(ev.channel, SEG_CH_WEB);
    ACCEPT("{\"customer_id\":\"c\",\"type\":\"x\",\"ts\":\"2023-11-14T22:13:20\\u005a\"}");
    cr_assert_eq(ev.ts, 1700000000000LL);
    REJECT("{" OK_BASE ",\"channel\":\"w\\u0065bb\"}", "bad_channel");
    ACCEPT("{\"type\":\"tr\\u0061ck\",\"event\":\"Product Viewed\",\"userId\":\"u\","
           "\"timestamp\":\"2023-11-14T22:13:20Z\",\"channel\":\"m\\u006fbile\"}");
    cr_assert_eq(ev.channel, SEG_CH_APP);
    ACCEPT("{" OK_BASE ",\"traits\":{\"c\\u00e9\":\"\\u00e9t\\u00e9\"}}");
    cr_assert_str_eq(ev.traits[0].key, "c\xC3\xA9");
    cr_assert_str_eq(ev.traits[0].val, "\xC3\xA9t\xC3\xA9");
    /* a value over 47 bytes is cut there, before a character that would not
     * fit (46 x's and a 2-byte é: 46 bytes kept), escaped or not */
    ACCEPT("{" OK_BASE
           ",\"traits\":{\"city\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\xC3\xA9"
           "yy\"}}");
    cr_assert_eq(strlen(ev.traits[0].val), 46);
    ACCEPT("{" OK_BASE
           ",\"traits\":{\"city\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\\u00e9"
           "yy\"}}");
    cr_assert_str_eq(ev.traits[0].val, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\xC3\xA9");
}

Test(codec_json, duplicate_keys_last_wins)
{
    ACCEPT("{\"customer_id\":\"a\",\"type\":\"x\",\"ts\":1,\"customer_id\":\"b\",\"ts\":2}");
    cr_assert_str_eq(ev.customer_id, "b");
    cr_assert_eq(ev.ts, 2);
    ACCEPT("{" OK_BASE ",\"traits\":{\"k\":\"1\",\"k\":\"2\"}}");
    cr_assert_eq(ev.n_traits, 1);
    cr_assert_str_eq(ev.traits[0].val, "2");
    /* a later null removes an earlier value */
    REJECT("{\"customer_id\":\"a\",\"type\":\"x\",\"ts\":1,\"customer_id\":null}",
           "missing_customer_id");
}

Test(codec_json, grammar)
{
    REJECT("{\"customer_id\":\"c\" \"type\":\"x\",\"ts\":1}", "bad_json");
    REJECT("{\"customer_id\":\"c\",\"type\":\"x\",\"ts\":1,}", "bad_json");
    REJECT("{\"customer_id\" \"c\",\"type\":\"x\",\"ts\":1}", "bad_json");
    REJECT("{\"customer_id\"::\"c\",\"type\":\"x\",\"ts\":1}", "bad_json");
    REJECT("{,\"customer_id\":\"c\",\"type\":\"x\",\"ts\":1}", "bad_json");
    REJECT("{" OK_BASE ",\"a\":tru}", "bad_json");
    REJECT("{" OK_BASE ",\"a\":nul}", "bad_json");
    REJECT("{" OK_BASE ",\"a\":01}", "bad_json");
    REJECT("{" OK_BASE ",\"a\":1.}", "bad_json");
    REJECT("{" OK_BASE ",\"a\":-}", "bad_json");
    REJECT("{" OK_BASE ",\"a\":1e}", "bad_json");
    REJECT("{" OK_BASE ",\"a\":+1}", "bad_json");
    REJECT("{" OK_BASE ",\"a\":NaN}", "bad_json");
    REJECT("{" OK_BASE ",\"a\":[1,,2]}", "bad_json");
    REJECT("{" OK_BASE ",\"a\":[1 2]}", "bad_json");
    REJECT("{" OK_BASE ",\"a\":[1,]}", "bad_json");
    REJECT("{" OK_BASE ",\"a\":\"\\x\"}", "bad_json");
    REJECT("{" OK_BASE ",\"a\":'s'}", "bad_json");
    REJECT("{" OK_BASE "}x", "bad_json");
    REJECT("{" OK_BASE "}{}", "bad_json");
    REJECT("{" OK_BASE "}]", "bad_json");
    REJECT("{" OK_BASE, "bad_json");
    REJECT("{\"customer_id\":\"c", "bad_json");
    REJECT("{\"a\":1:2}", "bad_json");
    REJECT("{\"a\":{\"b\"}}", "bad_json");
    REJECT("{\"a\":[}", "bad_json");
    ACCEPT("{ \"customer_id\" : \"c\" ,\n\t\"type\" : \"x\" , \"ts\" : 1 , \"a\" : [ ] , \"b\" : "
           "{ } , \"c\" : [ 1 , -2.5e-3 , true , false , null , \"s\" ] }");
}

Test(codec_json, embedded_nul_and_sizes)
{
    static const char with_nul[] = "{\"customer_id\":\"c\",\"type\":\"x\",\"ts\":1}\0junk";
    const char *r = NULL;
    cr_assert_eq(strm_decode(with_nul, sizeof with_nul - 1, 0, &ev, &r), -1);
    cr_assert_str_eq(r, "bad_json");
    static const char nul_in_str[] = "{\"customer_id\":\"c\0\",\"type\":\"x\",\"ts\":1}";
    cr_assert_eq(strm_decode(nul_in_str, sizeof nul_in_str - 1, 0, &ev, &r), -1);
    cr_assert_str_eq(r, "bad_json");
    cr_assert_eq(strm_decode("", 0, 0, &ev, &r), -1);
    cr_assert_str_eq(r, "empty");
    cr_assert_eq(strm_decode("   ", 3, 0, &ev, &r), -1);
    cr_assert_str_eq(r, "empty");
    cr_assert_eq(strm_decode("[1]", 3, 0, &ev, &r), -1);
    cr_assert_str_eq(r, "not_json_or_msgpack");
    cr_assert_eq(strm_decode("hello", 5, 0, &ev, &r), -1);
    cr_assert_str_eq(r, "not_json_or_msgpack");
    const char *ok = "{\"customer_id\":\"c\",\"type\":\"x\",\"ts\":1}";
    cr_assert_eq(strm_decode(ok, strlen(ok), 10, &ev, &r), -1);
    cr_assert_str_eq(r, "oversized");
    cr_assert_eq(strm_decode(ok, strlen(ok), strlen(ok), &ev, &r), 0);
    /* the default limit is 64 KiB */
    size_t big = STRM_MAX_EVENT_BYTES_DEFAULT + 1;
    char *b = malloc(big);
    memset(b, ' ', big);
    memcpy(b, ok, strlen(ok));
    cr_assert_eq(strm_decode(b, big, 0, &ev, &r), -1);
    cr_assert_str_eq(r, "oversized");
    cr_assert_eq(strm_decode(b, big - 1, 0, &ev, &r), 0);
    free(b);
}

Test(codec_json, too_complex_and_deep)
{
    /* more tokens than the stack array (a GA4 row with its parameters and
     * items has ~400): decoded all the same, the fields kept */
    char buf[8192];
    int n = snprintf(buf, sizeof buf, "{\"a\":[");
    for (int i = 0; i < 300; i++)
        n += snprintf(buf + n, sizeof buf - (size_t)n, "%s{\"k\":%d}", i ? "," : "", i);
    snprintf(buf + n, sizeof buf - (size_t)n, "]," OK_BASE ",\"channel\":\"app\"}");
    ACCEPT(buf);
    cr_assert_eq(ev.channel, SEG_CH_APP);
    cr_assert_eq(ev.id_len, strlen(ev.customer_id));
    buf[strlen(buf) - 1] = ','; /* and still checked against the grammar */
    REJECT(buf, "bad_json");

    /* up to 65 535 tokens (9 + 65 526 here); more is too complex */
    size_t cap = 4 * 70000 + 256, m = 0;
    char *wide = malloc(cap);
    m += (size_t)sprintf(wide, "{" OK_BASE ",\"a\":[");
    for (int i = 0; i < 65526; i++) m += (size_t)sprintf(wide + m, "%s1", i ? "," : "");
    m += (size_t)sprintf(wide + m, "]}");
    const char *why = NULL;
    cr_assert_eq(strm_decode_json(wide, m, &ev, &why), 0, "%s", why ? why : "");
    m -= 2;
    m += (size_t)sprintf(wide + m, ",1]}");
    cr_assert_eq(strm_decode_json(wide, m, &ev, &why), -1);
    cr_assert_str_eq(why, "too_complex");
    free(wide);

    /* 240 nested arrays fit in the token budget and are accepted */
    n = snprintf(buf, sizeof buf, "{" OK_BASE ",\"a\":");
    for (int i = 0; i < 240; i++) buf[n++] = '[';
    for (int i = 0; i < 240; i++) buf[n++] = ']';
    buf[n++] = '}';
    buf[n] = 0;
    ACCEPT(buf);

    /* very deep nesting: rejected, no stack growth */
    size_t deep = 200000;
    char *d = malloc(6 * deep + 64);
    size_t k = (size_t)sprintf(d, "{\"a\":");
    for (size_t i = 0; i < deep; i++) d[k++] = '[';
    for (size_t i = 0; i < deep; i++) d[k++] = ']';
    d[k++] = '}';
    const char *r = NULL;
    cr_assert_eq(strm_decode_json(d, k, &ev, &r), -1);
    cr_assert_str_eq(r, "too_complex");
    k = 0;
    for (size_t i = 0; i < deep; i++) k += (size_t)sprintf(d + k, "{\"a\":");
    cr_assert_eq(strm_decode_json(d, k, &ev, &r), -1);
    cr_assert(strcmp(r, "too_complex") == 0 || strcmp(r, "bad_json") == 0, "%s", r);
    free(d);
}

Test(codec_json, nesting_deeper_than_512_is_too_complex_within_the_token_budget)
{
    /* 30 000 nested arrays: 60 KB, under the default 64 KiB and the token
     * budget, and jsmn tokenizes them in O(depth^2) (2 s a record); also
     * inside a trait, and in brackets inside strings, which do not count */
    size_t cap = 8 * 30000 + 256;
    char *d = malloc(cap);
    const char *shapes[][2] = {{"[", "]"}, {"{\"a\":", "}"}};
    for (int s = 0; s < 2; s++) {
        for (int depth = 500; depth <= 30000; depth += 30000 - 500) {
            size_t k = (size_t)sprintf(d, "{" OK_BASE ",\"z\":");
            for (int i = 0; i < depth; i++) k += (size_t)sprintf(d + k, "%s", shapes[s][0]);
            k += (size_t)sprintf(d + k, "1");
            for (int i = 0; i < depth; i++) k += (size_t)sprintf(d + k, "%s", shapes[s][1]);
            k += (size_t)sprintf(d + k, "}");
            const char *r = NULL;
            int rc = strm_decode_json(d, k, &ev, &r);
            if (depth == 500)
                cr_assert_eq(rc, 0, "depth 500 (%s): %s", shapes[s][0], r ? r : "");
            else
                cr_assert(rc == -1 && r && strcmp(r, "too_complex") == 0, "depth %d: %s", depth,
                          r ? r : "accepted");
        }
    }
    /* brackets in a string are not nesting */
    size_t k = (size_t)sprintf(d, "{" OK_BASE ",\"category\":\"");
    for (int i = 0; i < 2000; i++) d[k++] = '[';
    k += (size_t)sprintf(d + k, "\\\"[\",\"z\":[");
    for (int i = 0; i < 300; i++) k += (size_t)sprintf(d + k, "%s1", i ? "," : "");
    k += (size_t)sprintf(d + k, "]}");
    const char *r = NULL;
    cr_assert_eq(strm_decode_json(d, k, &ev, &r), 0, "%s", r ? r : "");
    free(d);
}

Test(codec_json, reuse_clears_previous_event)
{
    ACCEPT("{\"customer_id\":\"c\",\"type\":\"purchase\",\"ts\":1,\"amount\":3,\"category\":\"a\","
           "\"channel\":\"web\",\"discount\":1,\"event_id\":\"e\",\"traits\":{\"a\":\"b\"}}");
    ACCEPT("{\"customer_id\":\"d\",\"type\":\"search\",\"ts\":2}");
    cr_assert_eq(ev.has_amount, 0);
    cr_assert_eq(ev.amount, 0);
    cr_assert_eq(ev.category_len, 0);
    cr_assert_eq(ev.channel, 0);
    cr_assert_eq(ev.discount, 0);
    cr_assert_eq(ev.event_id_len, 0);
    cr_assert_eq(ev.n_traits, 0);
}

/* The fast path for compact JSON must give jsmn's tokens exactly, or
 * decline: checked on the fuzz corpus and on mutations of compact events
 * (each byte replaced by a structural character, deleted, or doubled). */
static void fast_agrees(const char *s, size_t n)
{
    cr_assert(strm__json_fast_agrees(s, n), "fast path disagrees with jsmn on: %.*s", (int)n, s);
}

Test(codec_json, fast_path_gives_jsmn_tokens_or_declines)
{
    static const char *const seeds[] = {
        "{\"customer_id\":\"c040425\",\"type\":\"session_start\",\"ts\":1704078343741,"
        "\"channel\":\"app\",\"event_id\":\"e40425-0\",\"traits\":{\"country\":\"NL\","
        "\"age_band\":\"35-44\"}}",
        "{\"customer_id\":1,\"type\":\"purchase\",\"ts\":-0.5e+3,\"amount\":12.5,\"discount\":true,"
        "\"x\":[1,[],{},[{\"a\":null}],\"s\"],\"y\":{},\"z\":false}",
        "{}",
        "{\"a\":\"\xC3\xA9\\u00e9\\\"\"}",
        "{\"userId\":\"u\",\"event\":\"Order Completed\",\"properties\":{\"revenue\":5,"
        "\"items\":[{\"category\":\"books\"}]}}",
    };
    static const char subst[] = "{}[]:,\"\\ 0-.e\x01";
    char buf[512], mut[1024];
    for (size_t i = 0; i < sizeof seeds / sizeof seeds[0]; i++) {
        size_t n = strlen(seeds[i]);
        memcpy(buf, seeds[i], n);
        fast_agrees(buf, n);
        for (size_t at = 0; at < n; at++) {
            for (size_t c = 0; c < sizeof subst - 1; c++) {
                memcpy(mut, buf, n);
                mut[at] = subst[c];
                fast_agrees(mut, n);
            }
            memcpy(mut, buf, at);
            memcpy(mut + at, buf + at + 1, n - at - 1);
            fast_agrees(mut, n - 1);
            memcpy(mut, buf, at + 1);
            memcpy(mut + at + 1, buf + at, n - at);
            fast_agrees(mut, n + 1);
            fast_agrees(buf, at); /* every prefix */
        }
    }
    /* more tokens than the fast path keeps: declined, and the slow path
     * decodes it (no customer here) */
    size_t n = 0;
    n += (size_t)sprintf(mut + n, "{\"a\":[");
    for (int i = 0; i < 300; i++) n += (size_t)sprintf(mut + n, "%s1", i ? "," : "");
    n += (size_t)sprintf(mut + n, "]}");
    fast_agrees(mut, n);
    REJECT(mut, "missing_customer_id");
}

Test(codec_json, fast_path_agrees_on_the_fuzz_corpus)
{
    static const char *const names[] = {
        "bad_number.json",     "control_char.json",    "deep_arrays.json",
        "deep_objects.json",   "dup_keys.json",        "empty.json",
        "escapes.json",        "ga4_purchase.json",    "ga4_purchase_no_revenue.json",
        "ga4_view.json",       "huge_numbers.json",    "int_id_rfc3339.json",
        "lone_surrogate.json", "many_tokens.json",     "missing_comma.json",
        "mixed_types.json",    "negative_amount.json", "not_json.txt",
        "nul_after.json",      "segment_order.json",   "segment_page.json",
        "trailing_comma.json", "traits_overflow.json", "truncated.json",
        "valid_full.json",     "valid_min.json",       "whitespace.json",
    };
    static char data[1 << 20];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/tests/fuzz/corpus/json/%s", SEG_SOURCE_DIR, names[i]);
        FILE *f = fopen(path, "rb");
        cr_assert_not_null(f, "%s", path);
        size_t n = fread(data, 1, sizeof data, f);
        fclose(f);
        fast_agrees(data, n);
        /* and each line on its own, without the newline */
        for (size_t a = 0, b; a < n; a = b + 1) {
            for (b = a; b < n && data[b] != '\n'; b++) {
            }
            fast_agrees(data + a, b - a);
        }
    }
}
