/* cmd/inspect.c: `segstream inspect CUSTOMER_ID`: one customer's segments,
 * totals and decayed features, read from Redis (CONTRACT §4) with hiredis's
 * synchronous API (a one-shot CLI). The packed `state` field is decoded
 * generically (no engine needed), after state/pack's bounds check. Prints a
 * table, or one JSON object with --json. Never writes to Redis. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <hiredis/hiredis.h>
#include <msgpack.h>
#include "cmd/cli.h"
#include "config/config.h"
#include "state/pack.h"
#include "state/redis.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: segstream inspect CUSTOMER_ID [--json] [-c FILE] [--redis URL] [--prefix P]\n"
            "\n"
            "Reads one customer's hash (<prefix>c:<id>) from Redis and shows its segments\n"
            "(lifecycle, cluster, rules), totals and decayed features.\n"
            "\n"
            "  --json          one JSON object: the hash fields and the decoded state\n"
            "  -c, --config F  configuration file (redis.url, redis.prefix)\n"
            "  --redis URL     redis://[user[:pass]@]host[:port][/db]; default: redis.url,\n"
            "                  then SEGSTREAM_REDIS_URL\n"
            "  --prefix P      key prefix; default: redis.prefix (\"seg:\")\n"
            "\n"
            "exit status: 0 found, 1 no such customer, 2 usage or connection error\n");
}

/* ---------- small formatting helpers ---------- */

static void fmt_time(char *buf, size_t len, int64_t ms)
{
    int64_t sec = ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000);
    int msec = (int)(ms - sec * 1000);
    time_t t = (time_t)sec;
    struct tm tm;
    if (!gmtime_r(&t, &tm) || tm.tm_year + 1900 > 9999 || tm.tm_year + 1900 < 0) {
        snprintf(buf, len, "%" PRId64 " ms", ms);
        return;
    }
    char s[32];
    strftime(s, sizeof(s), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, len, "%s.%03dZ", s, msec);
}

/* A number in JSON's grammar (so it can be written unquoted). */
static int is_json_number(const char *s)
{
    const char *p = s;
    if (*p == '-') p++;
    if (*p == '0')
        p++;
    else if (*p >= '1' && *p <= '9')
        while (*p >= '0' && *p <= '9') p++;
    else
        return 0;
    if (*p == '.') {
        p++;
        if (!(*p >= '0' && *p <= '9')) return 0;
        while (*p >= '0' && *p <= '9') p++;
    }
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-') p++;
        if (!(*p >= '0' && *p <= '9')) return 0;
        while (*p >= '0' && *p <= '9') p++;
    }
    return *p == 0;
}

static void json_double(FILE *f, double v)
{
    if (!isfinite(v)) {
        fputs("null", f);
        return;
    }
    char buf[40];
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, sizeof(buf), "%.*g", prec, v);
        if (strtod(buf, NULL) == v) break;
    }
    fputs(buf, f);
}

/* A decoded msgpack value as JSON (nesting is bounded by msgpack-c's
 * unpacker, 32 levels). Map keys that are not strings are written as JSON
 * text inside a string. */
static void json_obj(FILE *f, const msgpack_object *o)
{
    switch (o->type) {
    case MSGPACK_OBJECT_NIL:
        fputs("null", f);
        break;
    case MSGPACK_OBJECT_BOOLEAN:
        fputs(o->via.boolean ? "true" : "false", f);
        break;
    /* beyond 2^53 (the dedup hashes) a JSON reader's double would round
     * them: written as strings, exact */
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        if (o->via.u64 > (1ULL << 53))
            fprintf(f, "\"%" PRIu64 "\"", o->via.u64);
        else
            fprintf(f, "%" PRIu64, o->via.u64);
        break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        if (o->via.i64 < -(1LL << 53))
            fprintf(f, "\"%" PRId64 "\"", o->via.i64);
        else
            fprintf(f, "%" PRId64, o->via.i64);
        break;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        json_double(f, o->via.f64);
        break;
    case MSGPACK_OBJECT_STR:
        cli_json_str(f, o->via.str.ptr, o->via.str.size);
        break;
    case MSGPACK_OBJECT_ARRAY:
        fputc('[', f);
        for (uint32_t i = 0; i < o->via.array.size; i++) {
            if (i) fputc(',', f);
            json_obj(f, &o->via.array.ptr[i]);
        }
        fputc(']', f);
        break;
    case MSGPACK_OBJECT_MAP:
        fputc('{', f);
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            const msgpack_object_kv *kv = &o->via.map.ptr[i];
            if (i) fputc(',', f);
            if (kv->key.type == MSGPACK_OBJECT_STR) {
                cli_json_str(f, kv->key.via.str.ptr, kv->key.via.str.size);
            } else {
                char buf[64];
                if (kv->key.type == MSGPACK_OBJECT_POSITIVE_INTEGER)
                    snprintf(buf, sizeof(buf), "%" PRIu64, kv->key.via.u64);
                else if (kv->key.type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
                    snprintf(buf, sizeof(buf), "%" PRId64, kv->key.via.i64);
                else
                    snprintf(buf, sizeof(buf), "(key)");
                cli_json_str(f, buf, strlen(buf));
            }
            fputc(':', f);
            json_obj(f, &kv->val);
        }
        fputc('}', f);
        break;
    default: /* bin, ext: not ours */
        fputs("null", f);
        break;
    }
}

/* ---------- the decoded state ---------- */

static const msgpack_object *map_get(const msgpack_object *m, const char *key)
{
    if (!m || m->type != MSGPACK_OBJECT_MAP) return NULL;
    size_t n = strlen(key);
    for (uint32_t i = 0; i < m->via.map.size; i++) {
        const msgpack_object *k = &m->via.map.ptr[i].key;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == n &&
            memcmp(k->via.str.ptr, key, n) == 0)
            return &m->via.map.ptr[i].val;
    }
    return NULL;
}

static int obj_num(const msgpack_object *o, double *v)
{
    if (!o) return -1;
    switch (o->type) {
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        *v = (double)o->via.u64;
        return 0;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        *v = (double)o->via.i64;
        return 0;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        *v = o->via.f64;
        return 0;
    default:
        return -1;
    }
}

static int obj_time(const msgpack_object *o, int64_t *v)
{
    if (!o) return -1;
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 <= INT64_MAX)
        return *v = (int64_t)o->via.u64, 0;
    if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) return *v = o->via.i64, 0;
    return -1;
}

/* One line of the table: a label and a msgpack value in plain text. */
static void row_obj(const char *label, const msgpack_object *o)
{
    printf("  %-20s ", label);
    double v;
    if (o->type == MSGPACK_OBJECT_STR)
        printf("%.*s", (int)o->via.str.size, o->via.str.ptr);
    else if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        printf("%" PRIu64, o->via.u64);
    else if (obj_num(o, &v) == 0)
        printf("%.6g", v);
    else
        json_obj(stdout, o);
    putchar('\n');
}

static void row_time(const char *label, const msgpack_object *o, const char *none)
{
    int64_t t;
    char buf[64];
    if (!o) return;
    if (o->type == MSGPACK_OBJECT_NIL) {
        printf("  %-20s %s\n", label, none);
    } else if (obj_time(o, &t) == 0) {
        fmt_time(buf, sizeof(buf), t);
        printf("  %-20s %s\n", label, buf);
    } else {
        row_obj(label, o);
    }
}

/* The features map: scalars by name, nested maps as name.key, the top
 * categories as "name weight" pairs. */
static void print_features(const msgpack_object *f)
{
    for (uint32_t i = 0; i < f->via.map.size; i++) {
        const msgpack_object_kv *kv = &f->via.map.ptr[i];
        char name[64];
        if (kv->key.type != MSGPACK_OBJECT_STR) continue;
        snprintf(name, sizeof(name), "%.*s", (int)kv->key.via.str.size, kv->key.via.str.ptr);
        if (strcmp(name, "cat") == 0 && kv->val.type == MSGPACK_OBJECT_ARRAY) {
            printf("  %-20s ", "top categories");
            if (!kv->val.via.array.size) printf("-");
            for (uint32_t j = 0; j < kv->val.via.array.size; j++) {
                const msgpack_object *p = &kv->val.via.array.ptr[j];
                double w;
                if (p->type == MSGPACK_OBJECT_ARRAY && p->via.array.size == 2 &&
                    p->via.array.ptr[0].type == MSGPACK_OBJECT_STR &&
                    obj_num(&p->via.array.ptr[1], &w) == 0)
                    printf("%s%.*s %.4g", j ? ", " : "", (int)p->via.array.ptr[0].via.str.size,
                           p->via.array.ptr[0].via.str.ptr, w);
            }
            putchar('\n');
        } else if (kv->val.type == MSGPACK_OBJECT_MAP) {
            for (uint32_t j = 0; j < kv->val.via.map.size; j++) {
                const msgpack_object_kv *s = &kv->val.via.map.ptr[j];
                char sub[128];
                if (s->key.type != MSGPACK_OBJECT_STR) continue;
                snprintf(sub, sizeof(sub), "%s.%.*s", name, (int)s->key.via.str.size,
                         s->key.via.str.ptr);
                row_obj(sub, &s->val);
            }
        } else {
            row_obj(name, &kv->val);
        }
    }
}

/* ---------- the hash ---------- */

typedef struct hash {
    redisReply *r; /* HGETALL's array: name, value, name, value, ... */
} hash_t;

static const char *hget(const hash_t *h, const char *name, size_t *len)
{
    for (size_t i = 0; i + 1 < h->r->elements; i += 2) {
        const redisReply *k = h->r->element[i], *v = h->r->element[i + 1];
        if (k->type == REDIS_REPLY_STRING && v->type == REDIS_REPLY_STRING &&
            strcmp(k->str, name) == 0 && (size_t)k->len == strlen(name)) {
            if (len) *len = (size_t)v->len;
            return v->str;
        }
    }
    return NULL;
}

static const char *field_or(const hash_t *h, const char *name, const char *dflt)
{
    const char *v = hget(h, name, NULL);
    return v && *v ? v : dflt;
}

static void row_field_time(const hash_t *h, const char *label, const char *name)
{
    const char *v = hget(h, name, NULL);
    int64_t t;
    char buf[64];
    if (!v) return;
    if (cli_parse_i64(v, &t) == 0)
        fmt_time(buf, sizeof(buf), t);
    else
        snprintf(buf, sizeof(buf), "%s", v);
    printf("  %-20s %s\n", label, buf);
}

static void print_table(const char *id, const char *key, const hash_t *h, const msgpack_object *st,
                        const char *state_err)
{
    printf("customer %s  (%s)\n\nsegments\n", id, key);
    printf("  %-20s %s\n", "lifecycle", field_or(h, "lifecycle", "-"));
    const char *cl = field_or(h, "cluster", "-"), *label = field_or(h, "cluster_label", "");
    if (strcmp(cl, "-1") == 0) cl = "-";
    printf("  %-20s %s%s%s\n", "cluster", cl, *label ? "  " : "", label);
    const char *rules = field_or(h, "rules", "-");
    printf("  %-20s ", "rules");
    for (const char *p = rules; *p; p++) /* "a,b" -> "a, b" */
        if (*p == ',')
            fputs(", ", stdout);
        else
            putchar(*p);
    printf("\n\ntotals\n");
    printf("  %-20s %s\n", "events", field_or(h, "events", "-"));
    printf("  %-20s %s\n", "orders", field_or(h, "orders", "-"));
    printf("  %-20s %s\n", "revenue", field_or(h, "revenue", "-"));
    row_field_time(h, "first seen", "first_seen");
    row_field_time(h, "last seen", "last_seen");
    if (st) {
        row_time("last activity", map_get(st, "la"), "-");
        row_time("reactivated", map_get(st, "ra"), "never");
        row_time("next silent change", map_get(st, "due"), "none");
        row_time("last change", map_get(st, "ct"), "never");
    }
    row_field_time(h, "updated", "updated");

    /* any other readable fields a newer daemon writes */
    static const char *const known[] = {"lifecycle",  "cluster",   "cluster_label", "rules",
                                        "first_seen", "last_seen", "events",        "orders",
                                        "revenue",    "updated",   "state",         NULL};
    int other = 0;
    for (size_t i = 0; i + 1 < h->r->elements; i += 2) {
        const redisReply *k = h->r->element[i], *v = h->r->element[i + 1];
        int j = 0;
        while (known[j] && strcmp(known[j], k->str) != 0) j++;
        if (known[j] || v->type != REDIS_REPLY_STRING) continue;
        if (!other++) printf("\nother fields\n");
        printf("  %-20s %.*s\n", k->str, (int)v->len, v->str);
    }

    if (!st) {
        printf("\nstate: %s\n", state_err);
        return;
    }
    const msgpack_object *f = map_get(st, "f");
    if (f && f->type == MSGPACK_OBJECT_MAP) {
        int64_t dt;
        char buf[64] = "?";
        if (obj_time(map_get(st, "dt"), &dt) == 0) fmt_time(buf, sizeof(buf), dt);
        printf("\nfeatures (decayed, as of %s)\n", buf);
        print_features(f);
    }
    const msgpack_object *tr = map_get(st, "tr");
    if (tr && tr->type == MSGPACK_OBJECT_MAP && tr->via.map.size) {
        printf("\ntraits\n");
        for (uint32_t i = 0; i < tr->via.map.size; i++) {
            const msgpack_object_kv *kv = &tr->via.map.ptr[i];
            if (kv->key.type != MSGPACK_OBJECT_STR) continue;
            char name[128];
            snprintf(name, sizeof(name), "%.*s", (int)kv->key.via.str.size, kv->key.via.str.ptr);
            row_obj(name, &kv->val);
        }
    }
    printf("\nstate\n");
    const msgpack_object *o;
    if ((o = map_get(st, "sq"))) row_obj("lifecycle changes", o);
    if ((o = map_get(st, "sqc"))) row_obj("cluster changes", o);
    if ((o = map_get(st, "sqr"))) row_obj("rule changes", o);
    if ((o = map_get(st, "te"))) row_obj("model epoch taught", o);
    if ((o = map_get(st, "v"))) row_obj("format", o);
}

static void print_json(const char *id, const char *prefix, const hash_t *h,
                       const msgpack_object *st, const char *state_err)
{
    static const char *const numeric[] = {"cluster", "first_seen", "last_seen", "events",
                                          "orders",  "revenue",    "updated",   NULL};
    FILE *f = stdout;
    fputs("{\"customer_id\":", f);
    cli_json_str(f, id, strlen(id));
    fputs(",\"prefix\":", f);
    cli_json_str(f, prefix, strlen(prefix));
    for (size_t i = 0; i + 1 < h->r->elements; i += 2) {
        const redisReply *k = h->r->element[i], *v = h->r->element[i + 1];
        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING) continue;
        if (strcmp(k->str, "state") == 0) continue;
        fputc(',', f);
        cli_json_str(f, k->str, (size_t)k->len);
        fputc(':', f);
        int num = 0;
        for (int j = 0; numeric[j]; j++) num |= strcmp(numeric[j], k->str) == 0;
        if (num && is_json_number(v->str))
            fputs(v->str, f);
        else
            cli_json_str(f, v->str, (size_t)v->len);
    }
    fputs(",\"state\":", f);
    if (st)
        json_obj(f, st);
    else
        fputs("null", f);
    if (state_err) {
        fputs(",\"state_error\":", f);
        cli_json_str(f, state_err, strlen(state_err));
    }
    fputs("}\n", f);
}

/* ---------- the command ---------- */

static redisReply *command(redisContext *c, const char *what, const char *url, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    if (!r) {
        fprintf(stderr, "segstream inspect: %s on %s: %s\n", what, url,
                c->errstr[0] ? c->errstr : "no reply");
        return NULL;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        fprintf(stderr, "segstream inspect: %s on %s: %s\n", what, url, r->str);
        freeReplyObject(r);
        return NULL;
    }
    return r;
}

int cmd_inspect(int argc, char **argv)
{
    static const struct option opts[] = {
        {"json", no_argument, 0, 'j'},        {"config", required_argument, 0, 'c'},
        {"redis", required_argument, 0, 'r'}, {"prefix", required_argument, 0, 'p'},
        {"help", no_argument, 0, 'h'},        {0, 0, 0, 0}};
    const char *config = NULL, *redis_opt = NULL, *prefix_opt = NULL;
    int json = 0, opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (opt) {
        case 'j':
            json = 1;
            break;
        case 'c':
            config = optarg;
            break;
        case 'r':
            redis_opt = optarg;
            break;
        case 'p':
            prefix_opt = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (argc - optind > 1) { /* as the other commands say it */
        fprintf(stderr, "segstream inspect: unexpected argument '%s'\n", argv[optind + 1]);
        return 2;
    }
    if (argc - optind != 1 || !*argv[optind]) {
        fprintf(stderr, "segstream inspect: expected one CUSTOMER_ID\n");
        usage(stderr);
        return 2;
    }
    const char *id = argv[optind];
    if (strlen(id) > SEG_ID_MAX) {
        fprintf(stderr, "segstream inspect: customer id longer than %d bytes\n", SEG_ID_MAX);
        return 2;
    }

    char err[512];
    cfg_t cfg;
    if (cfg_load(&cfg, config, err, sizeof(err)) < 0) {
        fprintf(stderr, "segstream inspect: config: %s\n", err);
        cfg_free(&cfg);
        return 2;
    }
    int rc = 2;
    redisContext *c = NULL;
    redisReply *r = NULL;
    char *key = NULL;
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);

    const char *url = redis_opt ? redis_opt : cfg.redis_url ? cfg.redis_url : "";
    const char *prefix = prefix_opt ? prefix_opt : cfg.redis_prefix ? cfg.redis_prefix : "seg:";
    if (!*url) {
        fprintf(stderr, "segstream inspect: no Redis: set redis.url or --redis\n");
        goto done;
    }
    cfg_redis_url_t u;
    char why[256];
    if (cfg_parse_redis_url(url, &u, why, sizeof(why)) < 0) {
        fprintf(stderr, "segstream inspect: redis URL %s: %s\n", url, why);
        goto done;
    }
    /* the URL as shown in messages: never the password */
    char shown[700];
    snprintf(shown, sizeof(shown), "redis://%s%s%s:%d/%d", u.user, u.user[0] ? "@" : "", u.host,
             u.port, u.db);
    st_redis_addr_t a = {u.host, u.port, u.user, u.pass, u.db};
    c = st_redis_connect_sync(&a, 2000, why, sizeof(why));
    if (!c) {
        fprintf(stderr, "segstream inspect: cannot connect to Redis at %s: %s\n", shown, why);
        goto done;
    }
    struct timeval cmd_tv = {5, 0};
    redisSetTimeout(c, cmd_tv);
    size_t klen = strlen(prefix) + 2 + strlen(id);
    key = malloc(klen + 1);
    if (!key) goto done;
    snprintf(key, klen + 1, "%sc:%s", prefix, id);
    if (!(r = command(c, "HGETALL", shown, "HGETALL %b", key, klen))) goto done;
    if (r->type != REDIS_REPLY_ARRAY) {
        fprintf(stderr, "segstream inspect: HGETALL %s on %s: unexpected reply\n", key, shown);
        goto done;
    }
    if (r->elements == 0) {
        fprintf(stderr, "segstream inspect: customer %s not found under prefix %s\n", id, prefix);
        rc = 1;
        goto done;
    }
    for (size_t i = 0; i < r->elements; i++)
        if (r->element[i]->type != REDIS_REPLY_STRING) {
            fprintf(stderr, "segstream inspect: HGETALL %s on %s: unexpected reply\n", key, shown);
            goto done;
        }

    hash_t h = {r};
    size_t slen = 0, used = 0;
    const char *state = hget(&h, "state", &slen);
    const msgpack_object *st = NULL;
    const char *state_err = NULL;
    size_t off = 0;
    if (!state)
        state_err = "no state field";
    else if (st_msgpack_check(state, slen, &used) < 0 || used != slen)
        state_err = "not a valid msgpack value";
    else if (msgpack_unpack_next(&up, state, slen, &off) != MSGPACK_UNPACK_SUCCESS)
        state_err = "too deeply nested";
    else if (up.data.type != MSGPACK_OBJECT_MAP)
        state_err = "not a map";
    else
        st = &up.data;
    if (json)
        print_json(id, prefix, &h, st, state_err);
    else
        print_table(id, key, &h, st, state_err);
    rc = fflush(stdout) == 0 ? 0 : 2;
done:
    msgpack_unpacked_destroy(&up);
    if (r) freeReplyObject(r);
    if (c) redisFree(c);
    free(key);
    cfg_free(&cfg);
    return rc;
}
