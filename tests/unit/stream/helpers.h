/* tests/unit/stream/helpers.h: shared by the stream tests. A JSON -> msgpack
 * converter (so every mapping case runs through both decoders) and the
 * table of mapping cases with the reason each must give. Test-only. */
#ifndef STRM_TEST_HELPERS_H
#define STRM_TEST_HELPERS_H

#define JSMN_STATIC
#include <jsmn.h>
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>
#include "stream/codec.h"
#include "stream/codec_int.h"

static inline int th_write(void *data, const char *buf, size_t len)
{
    return strm_buf_append(data, buf, len);
}

/* Packs token i and returns the index after its subtree. */
static inline int th_pack(msgpack_packer *pk, const char *js, const jsmntok_t *t, int i)
{
    const jsmntok_t *k = &t[i];
    const char *s = js + k->start;
    int n = k->end - k->start;
    switch (k->type) {
    case JSMN_OBJECT:
    case JSMN_ARRAY: {
        int size = k->size, j = i + 1;
        if (k->type == JSMN_OBJECT)
            msgpack_pack_map(pk, (size_t)size);
        else
            msgpack_pack_array(pk, (size_t)size);
        for (int e = 0; e < size * (k->type == JSMN_OBJECT ? 2 : 1); e++) j = th_pack(pk, js, t, j);
        return j;
    }
    case JSMN_STRING: {
        char *buf = malloc((size_t)n + 1);
        long r = strm__json_unescape(s, (size_t)n, buf, (size_t)n + 1, NULL);
        msgpack_pack_str_with_body(pk, buf, r < 0 ? 0 : (size_t)r);
        free(buf);
        return i + 1;
    }
    default:
        if (s[0] == 't')
            msgpack_pack_true(pk);
        else if (s[0] == 'f')
            msgpack_pack_false(pk);
        else if (s[0] == 'n')
            msgpack_pack_nil(pk);
        else {
            char tmp[512];
            memcpy(tmp, s, (size_t)n);
            tmp[n] = 0;
            if (strpbrk(tmp, ".eE"))
                msgpack_pack_double(pk, strtod(tmp, NULL));
            else if (tmp[0] == '-')
                msgpack_pack_int64(pk, strtoll(tmp, NULL, 10));
            else
                msgpack_pack_uint64(pk, strtoull(tmp, NULL, 10));
        }
        return i + 1;
    }
}

/* JSON text -> msgpack bytes appended to out. 0 or -1 (not JSON). */
static inline int json_to_mp(const char *json, strm_buf_t *out)
{
    jsmn_parser p;
    jsmntok_t *t = malloc(sizeof *t * 4096);
    jsmn_init(&p);
    int n = jsmn_parse(&p, json, strlen(json), t, 4096);
    if (n < 1) {
        free(t);
        return -1;
    }
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, th_write);
    th_pack(&pk, json, t, 0);
    free(t);
    return 0;
}

/* Mapping cases valid JSON can express: same reason from both decoders. */
typedef struct map_case {
    const char *json;
    const char *reason; /* NULL: accepted */
} map_case_t;

#define OK_BASE "\"customer_id\":\"c1\",\"type\":\"page_view\",\"ts\":1700000000000"
static const map_case_t map_cases[] = {
    {"{" OK_BASE "}", NULL},
    {"{\"type\":\"page_view\",\"ts\":1}", "missing_customer_id"},
    {"{\"customer_id\":null,\"type\":\"page_view\",\"ts\":1}", "missing_customer_id"},
    {"{\"customer_id\":\"\",\"type\":\"page_view\",\"ts\":1}", "bad_customer_id"},
    {"{\"customer_id\":true,\"type\":\"page_view\",\"ts\":1}", "bad_customer_id"},
    {"{\"customer_id\":1.5,\"type\":\"page_view\",\"ts\":1}", "bad_customer_id"},
    {"{\"customer_id\":{\"a\":1},\"type\":\"page_view\",\"ts\":1}", "bad_customer_id"},
    {"{\"customer_id\":\"a\\u0000b\",\"type\":\"page_view\",\"ts\":1}", "bad_customer_id"},
    {"{\"customer_id\":\"c1\",\"ts\":1}", "missing_type"},
    {"{\"customer_id\":\"c1\",\"type\":7,\"ts\":1}", "bad_type"},
    {"{\"customer_id\":\"c1\",\"type\":\"page_view\"}", "missing_ts"},
    {"{\"customer_id\":\"c1\",\"type\":\"page_view\",\"ts\":1.5}", "bad_ts"},
    {"{\"customer_id\":\"c1\",\"type\":\"page_view\",\"ts\":-1}", "bad_ts"},
    {"{\"customer_id\":\"c1\",\"type\":\"page_view\",\"ts\":\"yesterday\"}", "bad_ts"},
    {"{\"customer_id\":\"c1\",\"type\":\"page_view\",\"ts\":\"2024-02-30T00:00:00Z\"}", "bad_ts"},
    {"{\"customer_id\":\"c1\",\"type\":\"page_view\",\"ts\":[1]}", "bad_ts"},
    {"{" OK_BASE ",\"amount\":-0.01}", "negative_amount"},
    {"{" OK_BASE ",\"amount\":\"12\"}", "bad_amount"},
    {"{" OK_BASE ",\"amount\":false}", "bad_amount"},
    {"{\"customer_id\":\"c1\",\"type\":\"purchase\",\"ts\":1}", "missing_amount"},
    {"{\"customer_id\":\"c1\",\"type\":\"purchase\",\"ts\":1,\"amount\":null}", "missing_amount"},
    {"{\"customer_id\":\"c1\",\"type\":\"purchase\",\"ts\":1,\"amount\":0}", NULL},
    {"{" OK_BASE ",\"channel\":\"fax\"}", "bad_channel"},
    {"{" OK_BASE ",\"channel\":\"WEB\"}", "bad_channel"},
    {"{" OK_BASE ",\"channel\":1}", "bad_channel"},
    {"{" OK_BASE ",\"discount\":\"yes\"}", "bad_discount"},
    {"{" OK_BASE ",\"discount\":-1}", "bad_discount"},
    {"{" OK_BASE ",\"category\":12}", "bad_category"},
    /* over 64 bytes: kept as a digest (test_codec_map checks it), not dead */
    {"{" OK_BASE ",\"event_id\":\"0123456789012345678901234567890123456789012345678901234567890123"
     "4\"}",
     NULL},
    {"{" OK_BASE ",\"event_id\":\"bad\\u0000nul\"}", "bad_event_id"},
    {"{" OK_BASE ",\"event_id\":[]}", "bad_event_id"},
    {"{" OK_BASE ",\"traits\":\"gold\"}", "bad_traits"},
    {"{" OK_BASE ",\"traits\":{\"a\":{\"b\":1}}}", "bad_traits"},
    {"{" OK_BASE ",\"traits\":{\"a\":true}}", "bad_traits"},
    {"{" OK_BASE ",\"traits\":{\"\":\"x\"}}", "bad_traits"},
    {"{" OK_BASE ",\"traits\":{\"key_that_is_48_bytes_long_far_too_long_for_a_nam\":\"x\"}}",
     "bad_traits"},
    {"{" OK_BASE ",\"traits\":{\"preferred_communication_channel\":\"sms\"}}", NULL},
    {"{" OK_BASE
     ",\"traits\":{\"a\":\"1\",\"b\":\"2\",\"c\":\"3\",\"d\":\"4\",\"e\":\"5\",\"f\":\"6\","
     "\"g\":\"7\",\"h\":\"8\",\"i\":\"9\",\"j\":\"10\",\"k\":\"11\",\"l\":\"12\",\"m\":\"13\","
     "\"n\":\"14\",\"o\":\"15\",\"p\":\"16\"}}",
     NULL},
    {"{" OK_BASE
     ",\"traits\":{\"a\":\"1\",\"b\":\"2\",\"c\":\"3\",\"d\":\"4\",\"e\":\"5\",\"f\":\"6\","
     "\"g\":\"7\",\"h\":\"8\",\"i\":\"9\",\"j\":\"10\",\"k\":\"11\",\"l\":\"12\",\"m\":\"13\","
     "\"n\":\"14\",\"o\":\"15\",\"p\":\"16\",\"q\":\"17\"}}",
     "bad_traits"},
    /* a value over 47 bytes is cut, as CSV's are (test_codec_json checks where) */
    {"{" OK_BASE ",\"traits\":{\"k\":\"value that is forty-eight bytes long, just over!\"}}", NULL},
    {"{" OK_BASE ",\"traits\":{\"a\":\"1\",\"b\":\"2\",\"c\":\"3\",\"d\":\"4\",\"e\":\"5\",\"f\":"
     "\"6\",\"g\":\"7\",\"h\":\"8\",\"a\":\"9\"}}",
     NULL},
    {"{" OK_BASE ",\"unknown\":{\"deep\":[1,2,{\"x\":null}]},\"other\":[]}", NULL},
    {"{" OK_BASE ",\"category\":null,\"channel\":null,\"traits\":null}", NULL},
    {"{\"customer_id\":\"c1\",\"type\":\"page_view\",\"ts\":253402300800000}", "bad_ts"},
    {"{" OK_BASE ",\"amount\":1e400}", "bad_amount"},
    /* up to 10^15 (SEG_AMOUNT_MAX): beyond, totals could reach infinity */
    {"{" OK_BASE ",\"amount\":1e15}", NULL},
    {"{" OK_BASE ",\"amount\":1000000000000000}", NULL},
    {"{" OK_BASE ",\"amount\":1.0000000001e15}", "amount_too_large"},
    {"{" OK_BASE ",\"amount\":1000000000000001}", "amount_too_large"},
    {"{" OK_BASE ",\"amount\":1e308}", "amount_too_large"},
};
#define N_MAP_CASES (sizeof map_cases / sizeof map_cases[0])

#endif
