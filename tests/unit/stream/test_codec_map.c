/* tests/unit/stream/test_codec_map.c: the shared field mapping (codec_map.c)
 * for the foreign shapes, Segment `track`/`page` and GA4 export rows, run
 * through both decoders; event ids too long to keep whole; the RFC 3339
 * parser; format sniffing. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "helpers.h"

static seg_event_t ev;

/* Decodes json as JSON and (converted) as msgpack; both must agree on the
 * outcome. Leaves the msgpack result in ev. */
static const char *dec2(const char *json)
{
    const char *rj = NULL, *rm = NULL;
    int a = strm_decode(json, strlen(json), 0, &ev, &rj);
    seg_event_t ej = ev;
    strm_buf_t b;
    strm_buf_init(&b);
    cr_assert_eq(json_to_mp(json, &b), 0);
    int c = strm_decode(b.p, b.len, 0, &ev, &rm);
    strm_buf_free(&b);
    cr_assert_eq(a, c, "json %s / msgpack %s: %s", a ? rj : "ok", c ? rm : "ok", json);
    if (a) {
        cr_assert_str_eq(rj, rm, "%s", json);
        return rj;
    }
    cr_assert_str_eq(ej.customer_id, ev.customer_id);
    cr_assert_eq(ej.type, ev.type);
    cr_assert_eq(ej.ts, ev.ts);
    cr_assert_eq(ej.amount, ev.amount);
    cr_assert_eq(ej.has_amount, ev.has_amount);
    cr_assert_str_eq(ej.category, ev.category);
    cr_assert_eq(ej.channel, ev.channel);
    cr_assert_eq(ej.discount, ev.discount);
    cr_assert_str_eq(ej.event_id, ev.event_id);
    cr_assert_eq(ej.n_traits, ev.n_traits);
    for (int i = 0; i < ev.n_traits; i++) {
        cr_assert_str_eq(ej.traits[i].key, ev.traits[i].key);
        cr_assert_str_eq(ej.traits[i].val, ev.traits[i].val);
    }
    return NULL;
}

static int64_t rfc(const char *s)
{
    int64_t ms = -42;
    cr_assert_eq(strm_parse_rfc3339(s, strlen(s), &ms), 0, "%s", s);
    return ms;
}

static int rfc_bad(const char *s)
{
    int64_t ms;
    return strm_parse_rfc3339(s, strlen(s), &ms) == -1;
}

Test(codec_map, rfc3339)
{
    cr_assert_eq(rfc("1970-01-01T00:00:00Z"), 0);
    cr_assert_eq(rfc("2023-11-14T22:13:20Z"), 1700000000000LL);
    cr_assert_eq(rfc("2023-11-14t22:13:20z"), 1700000000000LL);
    cr_assert_eq(rfc("2023-11-14 22:13:20Z"), 1700000000000LL);
    cr_assert_eq(rfc("2024-01-02T03:04:05.678Z"), 1704164645678LL);
    cr_assert_eq(rfc("2024-01-02T03:04:05.6Z"), 1704164645600LL);
    cr_assert_eq(rfc("2024-01-02T03:04:05.123456789Z"), 1704164645123LL);
    cr_assert_eq(rfc("2024-01-02T05:04:05+02:00"), 1704164645000LL);
    cr_assert_eq(rfc("2024-01-01T22:34:05-04:30"), 1704164645000LL);
    cr_assert_eq(rfc("2024-01-02T03:04:05-00:00"), 1704164645000LL);
    cr_assert_eq(rfc("2024-02-29T00:00:00Z"), 1709164800000LL);
    cr_assert_eq(rfc("2000-02-29T12:00:00Z"), 951825600000LL);
    cr_assert_eq(rfc("1969-12-31T23:59:59Z"), -1000);
    cr_assert_eq(rfc("9999-12-31T23:59:59.999Z"), 253402300799999LL);
    cr_assert(rfc_bad("2023-02-29T00:00:00Z"));
    cr_assert(rfc_bad("1900-02-29T00:00:00Z"));
    cr_assert(rfc_bad("2024-13-01T00:00:00Z"));
    cr_assert(rfc_bad("2024-00-01T00:00:00Z"));
    cr_assert(rfc_bad("2024-04-31T00:00:00Z"));
    cr_assert(rfc_bad("2024-01-01T24:00:00Z"));
    cr_assert(rfc_bad("2024-01-01T00:60:00Z"));
    cr_assert(rfc_bad("2024-01-01T00:00:00"));
    cr_assert(rfc_bad("2024-01-01T00:00:00.Z"));
    cr_assert(rfc_bad("2024-01-01T00:00:00+0100"));
    cr_assert(rfc_bad("2024-01-01T00:00:00+24:00"));
    cr_assert(rfc_bad("2024-01-01T00:00:00Zjunk"));
    cr_assert(rfc_bad("2024-1-01T00:00:00Z"));
    cr_assert(rfc_bad("2024-01-01"));
    cr_assert(rfc_bad(""));
}

Test(codec_map, segment_track_order_completed)
{
    const char *seg =
        "{\"type\":\"track\",\"event\":\"Order Completed\",\"userId\":\"u-19\","
        "\"anonymousId\":\"anon-7\",\"messageId\":\"ajs-abc123\","
        "\"timestamp\":\"2024-03-05T10:00:00.250+01:00\",\"channel\":\"browser\","
        "\"properties\":{\"order_id\":\"o1\",\"total\":30,\"revenue\":25.5,\"coupon\":\"SPRING\","
        "\"category\":\"Shoes\",\"products\":[{\"sku\":\"s\"}]},"
        "\"context\":{\"ip\":\"1.2.3.4\",\"traits\":{\"country\":\"DE\",\"email\":\"a@b.c\","
        "\"address\":{\"city\":\"Berlin\"}}},"
        "\"traits\":{\"plan\":\"pro\",\"country\":\"AT\"}}";
    cr_assert_null(dec2(seg));
    cr_assert_str_eq(ev.customer_id, "u-19");
    cr_assert_eq(ev.type, SEG_EV_PURCHASE);
    cr_assert_eq(ev.ts, rfc("2024-03-05T09:00:00.250Z"));
    cr_assert_eq(ev.amount, 25.5); /* revenue preferred over total */
    cr_assert_eq(ev.has_amount, 1);
    cr_assert_str_eq(ev.category, "Shoes");
    cr_assert_eq(ev.discount, 1);
    cr_assert_eq(ev.channel, SEG_CH_WEB);
    cr_assert_str_eq(ev.event_id, "ajs-abc123");
    cr_assert_eq(ev.n_traits, 3);
    cr_assert_str_eq(ev.traits[0].key, "country");
    cr_assert_str_eq(ev.traits[0].val, "AT"); /* top-level traits win */
    cr_assert_str_eq(ev.traits[1].key, "email");
    cr_assert_str_eq(ev.traits[2].key, "plan");
}

/* An event_id longer than SEG_EVID_MAX (a Segment messageId can be) keeps
 * the event: its first 40 bytes, '~' and a 64-bit hash of the whole, the
 * same for the same id however it is written, different for another. */
static void long_id(char *out, const char *id)
{
    char *json = malloc(strlen(id) + 200);
    sprintf(json, "{\"customer_id\":\"c1\",\"type\":\"page_view\",\"ts\":1,\"event_id\":\"%s\"}",
            id);
    cr_assert_null(dec2(json), "%s", json);
    strcpy(out, ev.event_id);
    free(json);
}

Test(codec_map, long_event_ids_kept_as_digests)
{
    char id[5000], a[SEG_EVID_MAX + 1], b[SEG_EVID_MAX + 1], c[SEG_EVID_MAX + 1];
    memset(id, 'x', 80);
    id[80] = 0;
    long_id(a, id);
    cr_assert_eq(strlen(a), 40 + 1 + 16, "%s", a);
    cr_assert_eq(strncmp(a, id, 40), 0);
    cr_assert_eq(a[40], '~');
    long_id(b, id);
    cr_assert_str_eq(a, b, "the same id, the same digest");
    id[79] = 'y';
    long_id(c, id);
    cr_assert_str_neq(a, c, "one byte apart, another digest");
    cr_assert_eq(strncmp(a, c, 41), 0);
    /* written with an escape, the same id */
    char esc[200];
    memset(esc, 'x', 79);
    strcpy(esc + 79, "\\u0079");
    long_id(b, esc);
    cr_assert_str_eq(b, c);
    /* the head is cut at a character boundary: 39 bytes, then a 2-byte é */
    memset(id, 'x', 39);
    strcpy(id + 39, "\xc3\xa9");
    memset(id + 41, 'z', 40);
    id[81] = 0;
    long_id(a, id);
    cr_assert_eq(a[39], '~', "%s", a);
    /* a Segment messageId of 80 bytes: the order is applied, not dead */
    const char *seg = "{\"type\":\"track\",\"event\":\"Order Completed\",\"userId\":\"u1\","
                      "\"messageId\":\"ajs-next-1700000000000-6f5c5d2a-0c3e-4f8b-9d1a-2b7e4c9f0a11-"
                      "replayed-by-server-42\",\"timestamp\":\"2024-03-05T10:00:00Z\","
                      "\"properties\":{\"revenue\":25.5}}";
    cr_assert_null(dec2(seg));
    cr_assert_eq(ev.type, SEG_EV_PURCHASE);
    cr_assert_eq(ev.event_id_len, 57);
    /* past 4096 bytes it is dead after all, with its reason */
    memset(id, 'x', 4097);
    id[4097] = 0;
    char *json = malloc(5000);
    sprintf(json, "{\"customer_id\":\"c1\",\"type\":\"page_view\",\"ts\":1,\"event_id\":\"%s\"}",
            id);
    const char *why = dec2(json);
    cr_assert(why && strcmp(why, "bad_event_id") == 0, "%s", why ? why : "ok");
    free(json);
}

Test(codec_map, segment_event_names)
{
    static const struct {
        const char *name;
        int type;
    } m[] = {
        {"Product Viewed", SEG_EV_PRODUCT_VIEW},
        {"Product Added", SEG_EV_ADD_TO_CART},
        {"Product Removed", SEG_EV_REMOVE_FROM_CART},
        {"Checkout Started", SEG_EV_CHECKOUT},
        {"Products Searched", SEG_EV_SEARCH},
        {"Email Opened", SEG_EV_EMAIL_OPEN},
        {"Email Link Clicked", SEG_EV_EMAIL_CLICK},
        {"Page Viewed", SEG_EV_PAGE_VIEW},
        {"Page", SEG_EV_PAGE_VIEW},
        {"Signed Up", SEG_EV_OTHER},
    };
    char buf[512];
    for (size_t i = 0; i < sizeof m / sizeof m[0]; i++) {
        snprintf(buf, sizeof buf,
                 "{\"event\":\"%s\",\"anonymousId\":\"a1\",\"userId\":null,"
                 "\"timestamp\":\"2024-01-01T00:00:00Z\",\"properties\":{\"discount\":0}}",
                 m[i].name);
        cr_assert_null(dec2(buf), "%s", buf);
        cr_assert_eq(ev.type, m[i].type, "%s", m[i].name);
        cr_assert_str_eq(ev.customer_id, "a1"); /* anonymousId fallback */
        cr_assert_eq(ev.discount, 0);
        cr_assert_eq(ev.channel, SEG_CH_NONE);
    }
}

Test(codec_map, segment_rules)
{
    /* page call without an event */
    cr_assert_null(dec2("{\"type\":\"page\",\"userId\":42,\"name\":\"Home\","
                        "\"timestamp\":\"2024-01-01T00:00:00Z\"}"));
    cr_assert_eq(ev.type, SEG_EV_PAGE_VIEW);
    cr_assert_str_eq(ev.customer_id, "42");
    /* total when no revenue; properties.discount > 0 */
    cr_assert_null(dec2("{\"event\":\"Order Completed\",\"userId\":\"u\",\"timestamp\":"
                        "\"2024-01-01T00:00:00Z\",\"properties\":{\"total\":\"12.5\","
                        "\"discount\":3,\"coupon\":\"\"}}"));
    cr_assert_eq(ev.amount, 12.5);
    cr_assert_eq(ev.discount, 1);
    /* rejections */
    cr_assert_str_eq(dec2("{\"event\":\"Order Completed\",\"userId\":\"u\",\"timestamp\":"
                          "\"2024-01-01T00:00:00Z\",\"properties\":{}}"),
                     "missing_amount");
    cr_assert_str_eq(dec2("{\"event\":\"Order Completed\",\"userId\":\"u\",\"timestamp\":"
                          "\"2024-01-01T00:00:00Z\",\"properties\":{\"revenue\":-3}}"),
                     "negative_amount");
    cr_assert_str_eq(dec2("{\"event\":\"Product Viewed\",\"userId\":\"u\"}"), "missing_ts");
    cr_assert_str_eq(dec2("{\"event\":\"Product Viewed\",\"userId\":\"u\",\"timestamp\":\"now\"}"),
                     "bad_ts");
    cr_assert_null(dec2("{\"event\":\"Product Viewed\",\"userId\":\"u\",\"timestamp\":7}"));
    cr_assert_eq(ev.ts, 7); /* integer ms accepted too */
    cr_assert_str_eq(dec2("{\"event\":5,\"userId\":\"u\",\"timestamp\":\"2024-01-01T00:00:00Z\"}"),
                     "bad_type");
    cr_assert_str_eq(
        dec2("{\"event\":\"X\",\"userId\":\"\",\"timestamp\":\"2024-01-01T00:00:00Z\"}"),
        "missing_customer_id");
    /* Segment calls that are not behaviour say so, not "no customer id" */
    for (int i = 0; i < 3; i++) {
        char b[200];
        snprintf(b, sizeof b,
                 "{\"type\":\"%s\",\"userId\":\"u\",\"traits\":{\"country\":\"FR\"},"
                 "\"timestamp\":\"2024-01-01T00:00:00Z\"}",
                 (const char *[]){"identify", "group", "alias"}[i]);
        cr_assert_str_eq(dec2(b), "unsupported_segment_call");
    }
    /* lenient on optional fields */
    cr_assert_null(dec2("{\"event\":\"X\",\"userId\":\"u\",\"timestamp\":\"2024-01-01T00:00:00Z\","
                        "\"properties\":{\"category\":7,\"coupon\":1},\"traits\":\"x\","
                        "\"context\":{\"traits\":{\"a\":{\"b\":1},\"n\":5}}}"));
    cr_assert_eq(ev.category_len, 0);
    cr_assert_eq(ev.discount, 0);
    cr_assert_eq(ev.n_traits, 0);
    /* originalTimestamp when no timestamp */
    cr_assert_null(dec2("{\"event\":\"X\",\"userId\":\"u\",\"originalTimestamp\":"
                        "\"2024-01-01T00:00:01Z\"}"));
    cr_assert_eq(ev.ts, 1704067201000LL);
}

Test(codec_map, ga4_purchase)
{
    const char *ga =
        "{\"event_date\":\"20240305\",\"event_timestamp\":\"1709632800123456\","
        "\"event_name\":\"purchase\",\"event_params\":[{\"key\":\"ga_session_id\","
        "\"value\":{\"int_value\":\"1709632700\"}}],\"user_id\":null,"
        "\"user_pseudo_id\":\"1234.5678\",\"device\":{\"category\":\"mobile\"},"
        "\"geo\":{\"country\":\"France\",\"city\":\"(not set)\"},"
        "\"traffic_source\":{\"medium\":\"email\",\"source\":\"newsletter\"},"
        "\"platform\":\"IOS\",\"ecommerce\":{\"purchase_revenue\":59.9,\"transaction_id\":\"T1\"},"
        "\"items\":[{\"item_id\":\"i1\",\"item_category\":\"Apparel\"},"
        "{\"item_category\":\"Other\"}]}";
    cr_assert_null(dec2(ga));
    cr_assert_str_eq(ev.customer_id, "1234.5678");
    cr_assert_eq(ev.type, SEG_EV_PURCHASE);
    cr_assert_eq(ev.ts, 1709632800123LL);
    cr_assert_eq(ev.amount, 59.9);
    cr_assert_str_eq(ev.category, "Apparel");
    cr_assert_eq(ev.channel, SEG_CH_EMAIL);
    cr_assert_eq(ev.n_traits, 1);
    cr_assert_str_eq(ev.traits[0].key, "country");
    cr_assert_str_eq(ev.traits[0].val, "France");
}

Test(codec_map, ga4_names_and_rules)
{
    static const struct {
        const char *name;
        int type;
    } m[] = {
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
        {"first_visit", SEG_EV_OTHER},
    };
    char buf[512];
    for (size_t i = 0; i < sizeof m / sizeof m[0]; i++) {
        snprintf(buf, sizeof buf,
                 "{\"event_name\":\"%s\",\"event_timestamp\":1709632800999999,\"user_id\":\"U1\","
                 "\"user_pseudo_id\":\"p\",\"platform\":\"WEB\",\"geo\":{\"city\":\"Lyon\"}}",
                 m[i].name);
        if (m[i].type == SEG_EV_PURCHASE) {
            /* a purchase without revenue: missing_amount, as in the other
             * shapes (CONTRACT §1: amount is required for a purchase) */
            cr_assert_str_eq(dec2(buf), "missing_amount");
            continue;
        }
        cr_assert_null(dec2(buf), "%s", buf);
        cr_assert_eq(ev.type, m[i].type, "%s", m[i].name);
        cr_assert_str_eq(ev.customer_id, "U1");
        cr_assert_eq(ev.ts, 1709632800999LL);
        cr_assert_eq(ev.channel, SEG_CH_WEB);
        cr_assert_eq(ev.has_amount, 0);
        cr_assert_str_eq(ev.traits[0].key, "city");
    }
    cr_assert_null(dec2("{\"event_name\":\"x\",\"event_timestamp\":1,\"user_pseudo_id\":\"p\","
                        "\"platform\":\"ANDROID\",\"traffic_source\":{\"medium\":\"cpc\"}}"));
    cr_assert_eq(ev.channel, SEG_CH_APP);
    cr_assert_eq(ev.ts, 0);
    cr_assert_str_eq(dec2("{\"event_name\":\"x\",\"event_timestamp\":1}"), "missing_customer_id");
    cr_assert_str_eq(dec2("{\"event_name\":\"x\",\"user_pseudo_id\":\"p\"}"), "missing_ts");
    cr_assert_str_eq(dec2("{\"event_name\":\"x\",\"user_pseudo_id\":\"p\",\"event_timestamp\":"
                          "\"17e5\"}"),
                     "bad_ts");
    cr_assert_str_eq(dec2("{\"event_name\":1,\"user_pseudo_id\":\"p\",\"event_timestamp\":1}"),
                     "bad_type");
    cr_assert_str_eq(dec2("{\"event_name\":\"purchase\",\"user_pseudo_id\":\"p\","
                          "\"event_timestamp\":1,\"ecommerce\":{\"purchase_revenue\":-1}}"),
                     "negative_amount");
    cr_assert_str_eq(dec2("{\"event_name\":\"purchase\",\"user_pseudo_id\":\"p\","
                          "\"event_timestamp\":1,\"ecommerce\":{\"purchase_revenue\":null}}"),
                     "missing_amount");
    cr_assert_null(dec2("{\"event_name\":\"purchase\",\"user_pseudo_id\":\"p\","
                        "\"event_timestamp\":1,\"ecommerce\":{\"purchase_revenue\":0}}"));
    cr_assert_eq(ev.has_amount, 1);
}

Test(codec_map, sniffing)
{
    const char *r = NULL;
    cr_assert_eq(strm_decode("\x01", 1, 0, &ev, &r), -1);
    cr_assert_str_eq(r, "not_json_or_msgpack");
    cr_assert_eq(strm_decode("\x90", 1, 0, &ev, &r), -1);
    cr_assert_str_eq(r, "not_json_or_msgpack");
    cr_assert_eq(strm_decode("\x80", 1, 0, &ev, &r), -1);
    cr_assert_str_eq(r, "missing_customer_id"); /* an empty map */
    cr_assert_eq(strm_decode("\xde\x00\x00", 3, 0, &ev, &r), -1);
    cr_assert_str_eq(r, "missing_customer_id");
    cr_assert_eq(strm_decode("\xdf\x00\x00\x00\x00", 5, 0, &ev, &r), -1);
    cr_assert_str_eq(r, "missing_customer_id");
    cr_assert_eq(strm_decode("{}", 2, 0, &ev, &r), -1);
    cr_assert_str_eq(r, "missing_customer_id");
    cr_assert_eq(strm_decode("{", 1, 0, &ev, &r), -1);
    cr_assert_str_eq(r, "bad_json");
}
