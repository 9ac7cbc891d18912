/* benchmarks/bench_json.c: why the JSON decoder is jsmn. Parses the same
 * typical ~160-byte contract event N times (default 2,000,000) with our
 * decoder end to end (strm_decode_json: tokenize, grammar check, mapping,
 * copies), raw jsmn tokenizing alone, and the tree parsers Debian ships
 * (cJSON with malloc and with an arena via cJSON_InitHooks, jansson, json-c
 * with a reused tokener, yajl tree), each followed by fetching the fields a
 * decoder needs; then our msgpack decoder and msgpack-c's unpacker on the
 * same event. Prints events/s, best of 3 runs. Benchmark-only: the other
 * parsers are linked here and nowhere else (HAVE_* set by CMake when found).
 *
 *   bench_json [N] */
#define JSMN_STATIC
#define JSMN_STRICT
#define JSMN_PARENT_LINKS
#include <jsmn.h>

#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "stream/codec.h"

#ifdef HAVE_CJSON
#include <cjson/cJSON.h>
#endif
#ifdef HAVE_JSONC
#include <json-c/json.h>
#endif
#ifdef HAVE_YAJL
#include <yajl/yajl_tree.h>
#endif

static const char EVENT[] =
    "{\"customer_id\":\"c0012345\",\"type\":\"purchase\",\"ts\":1700000000123,\"amount\":49.95,"
    "\"category\":\"books\",\"channel\":\"web\",\"event_id\":\"e-0012345-77\","
    "\"traits\":{\"country\":\"GB\"}}";
#define EVENT_LEN (sizeof EVENT - 1)

static volatile uint64_t sink;
static long n_iter = 2000000;

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

typedef void (*bench_fn)(const char *buf, size_t len);

static void run(const char *name, bench_fn fn, const char *buf, size_t len)
{
    double best = 1e30;
    for (long i = 0; i < n_iter / 20; i++) fn(buf, len); /* warm up */
    for (int r = 0; r < 3; r++) {
        double t0 = now();
        for (long i = 0; i < n_iter; i++) fn(buf, len);
        double dt = now() - t0;
        if (dt < best) best = dt;
    }
    printf("%-34s %8.2f M events/s %8.1f ns/event\n", name, (double)n_iter / best / 1e6,
           best / (double)n_iter * 1e9);
    fflush(stdout);
}

static void b_strm_json(const char *buf, size_t len)
{
    seg_event_t ev;
    const char *why;
    if (strm_decode_json(buf, len, &ev, &why) != 0) abort();
    sink += (uint64_t)ev.ts + ev.id_len;
}

static void b_strm_decode(const char *buf, size_t len)
{
    seg_event_t ev;
    const char *why;
    if (strm_decode(buf, len, 0, &ev, &why) != 0) abort();
    sink += (uint64_t)ev.ts + ev.id_len;
}

static void b_jsmn(const char *buf, size_t len)
{
    jsmntok_t tok[256];
    jsmn_parser p;
    jsmn_init(&p);
    int n = jsmn_parse(&p, buf, len, tok, 256);
    if (n < 0) abort();
    sink += (uint64_t)n;
}

static void b_strm_msgpack(const char *buf, size_t len)
{
    seg_event_t ev;
    const char *why;
    if (strm_decode_msgpack(buf, len, &ev, &why) != 0) abort();
    sink += (uint64_t)ev.ts + ev.id_len;
}

static msgpack_zone mp_zone;
static void b_msgpackc(const char *buf, size_t len)
{
    msgpack_object o;
    size_t off = 0;
    msgpack_zone_clear(&mp_zone);
    if (msgpack_unpack(buf, len, &off, &mp_zone, &o) != MSGPACK_UNPACK_SUCCESS) abort();
    sink += o.via.map.size;
}

#ifdef HAVE_CJSON
static void b_cjson(const char *buf, size_t len)
{
    cJSON *j = cJSON_ParseWithLength(buf, len);
    if (!j) abort();
    cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "customer_id");
    cJSON *ts = cJSON_GetObjectItemCaseSensitive(j, "ts");
    cJSON *ty = cJSON_GetObjectItemCaseSensitive(j, "type");
    cJSON *am = cJSON_GetObjectItemCaseSensitive(j, "amount");
    sink += strlen(id->valuestring) + (uint64_t)ts->valuedouble + strlen(ty->valuestring) +
            (uint64_t)am->valuedouble;
    cJSON_Delete(j);
}

static char arena[1 << 16];
static size_t arena_used;
static void *arena_malloc(size_t n)
{
    n = (n + 15) & ~(size_t)15;
    if (arena_used + n > sizeof arena) return NULL;
    void *p = arena + arena_used;
    arena_used += n;
    return p;
}
static void arena_free(void *p)
{
    (void)p;
}
static void b_cjson_arena(const char *buf, size_t len)
{
    arena_used = 0;
    b_cjson(buf, len);
}
#endif

#ifdef HAVE_JANSSON
uint64_t bench_jansson(const char *buf, size_t len); /* parsers/jansson.c */
static void b_jansson(const char *buf, size_t len)
{
    sink += bench_jansson(buf, len);
}
#endif

#ifdef HAVE_JSONC
static struct json_tokener *jc_tok;
static void b_jsonc(const char *buf, size_t len)
{
    json_tokener_reset(jc_tok);
    struct json_object *j = json_tokener_parse_ex(jc_tok, buf, (int)len);
    if (!j) abort();
    struct json_object *id, *ts, *ty, *am;
    json_object_object_get_ex(j, "customer_id", &id);
    json_object_object_get_ex(j, "ts", &ts);
    json_object_object_get_ex(j, "type", &ty);
    json_object_object_get_ex(j, "amount", &am);
    sink += strlen(json_object_get_string(id)) + (uint64_t)json_object_get_int64(ts) +
            strlen(json_object_get_string(ty)) + (uint64_t)json_object_get_double(am);
    json_object_put(j);
}
#endif

#ifdef HAVE_YAJL
static void b_yajl(const char *buf, size_t len)
{
    (void)len; /* yajl_tree_parse needs a NUL-terminated string: EVENT is one */
    char err[128];
    yajl_val j = yajl_tree_parse(buf, err, sizeof err);
    if (!j) abort();
    static const char *p_id[] = {"customer_id", NULL}, *p_ts[] = {"ts", NULL},
                      *p_ty[] = {"type", NULL}, *p_am[] = {"amount", NULL};
    yajl_val id = yajl_tree_get(j, p_id, yajl_t_string), ty = yajl_tree_get(j, p_ty, yajl_t_string);
    if (!YAJL_IS_STRING(id) || !YAJL_IS_STRING(ty)) abort();
    sink += strlen(id->u.string) +
            (uint64_t)YAJL_GET_INTEGER(yajl_tree_get(j, p_ts, yajl_t_number)) +
            strlen(ty->u.string) + (uint64_t)YAJL_GET_DOUBLE(yajl_tree_get(j, p_am, yajl_t_number));
    yajl_tree_free(j);
}
#endif

int main(int argc, char **argv)
{
    if (argc > 1) n_iter = atol(argv[1]);
    if (n_iter < 20) n_iter = 20;
    printf("event: %zu bytes JSON, %ld iterations, best of 3\n", EVENT_LEN, n_iter);

    run("strm_decode_json (jsmn, end to end)", b_strm_json, EVENT, EVENT_LEN);
    run("strm_decode (sniff + JSON)", b_strm_decode, EVENT, EVENT_LEN);
    run("jsmn tokenize only", b_jsmn, EVENT, EVENT_LEN);
#ifdef HAVE_CJSON
    run("cJSON parse+get (malloc)", b_cjson, EVENT, EVENT_LEN);
    cJSON_Hooks hooks = {arena_malloc, arena_free};
    cJSON_InitHooks(&hooks);
    run("cJSON parse+get (arena hooks)", b_cjson_arena, EVENT, EVENT_LEN);
    cJSON_InitHooks(NULL);
#endif
#ifdef HAVE_JANSSON
    run("jansson parse+get", b_jansson, EVENT, EVENT_LEN);
#endif
#ifdef HAVE_JSONC
    jc_tok = json_tokener_new();
    run("json-c parse+get (reused tokener)", b_jsonc, EVENT, EVENT_LEN);
    json_tokener_free(jc_tok);
#endif
#ifdef HAVE_YAJL
    run("yajl tree parse+get", b_yajl, EVENT, EVENT_LEN);
#endif

    /* the same event as msgpack */
    seg_event_t ev;
    const char *why;
    strm_buf_t mp;
    strm_buf_init(&mp);
    if (strm_decode_json(EVENT, EVENT_LEN, &ev, &why) != 0 || strm_event_msgpack(&ev, &mp) != 0)
        return 1;
    printf("event: %zu bytes msgpack\n", mp.len);
    run("strm_decode_msgpack (end to end)", b_strm_msgpack, mp.p, mp.len);
    msgpack_zone_init(&mp_zone, 2048);
    run("msgpack-c unpack (zone, no mapping)", b_msgpackc, mp.p, mp.len);
    msgpack_zone_destroy(&mp_zone);
    strm_buf_free(&mp);
    return sink == 42 ? 1 : 0;
}
