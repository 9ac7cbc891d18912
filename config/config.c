/* config/config.c: segstream's configuration. Owns cfg_t: the defaults, the
 * YAML file (libyaml's document API, so that every key has a line), the
 * SEGSTREAM_* environment overrides, validation, and the YAML dump. One table
 * of keys (keys[] below) drives all four; only kafka.properties and rules
 * have code of their own. Never exits, never prints, never touches Kafka,
 * Redis or the network (it reads the system's time zone database for
 * features.timezone): every error goes to the caller's buffer as
 * "FILE:LINE: KEY: REASON" or "env VAR: REASON". */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <yaml.h>
#include "config/config.h"

extern char **environ;

#define ENV_PREFIX       "SEGSTREAM_"
#define ENV_PROPS_PREFIX "SEGSTREAM_KAFKA_PROPERTIES_"
#define DUR_MAX_MS       (36500LL * SEG_DAY_MS) /* 100 years: the largest duration of any key */
#define FILE_MAX_BYTES   (16u << 20)
#define PROPS_MAX        1024
#define PROP_NAME_MAX    255 /* well under YAML's 1024-character simple keys */
#define RULE_CONDS_MAX   32
#define RULE_NAME_MAX    63
#define PATH_MAX_LEN     128
#define REASON_LEN       512
#define ALL_EVENT_TYPES  ((uint32_t)((1u << SEG_EV__COUNT) - 1))

/* ---------- the table of keys ---------- */

typedef enum {
    K_STR,    /* char *; optional check() */
    K_ENUM,   /* char *, one of choices (stored in canonical case) */
    K_INT,    /* int in [lo, hi] */
    K_I64,    /* int64_t in [lo, hi] */
    K_U64,    /* uint64_t */
    K_SIZE,   /* size_t in [lo, hi] */
    K_DBL,    /* double in [dlo, dhi] (or [dlo, dhi) with hi_open) */
    K_BOOL,   /* int 0/1 */
    K_DUR,    /* int64_t ms, a duration in [lo, hi] ms */
    K_DAYS,   /* double days, a duration in [lo, hi] ms */
    K_TOPICS, /* cfg_t.topics and n_topics: a list, or a comma string */
    K_EVMASK, /* uint32_t: a list of event type names (empty: all), or a comma string */
    K_PROPS,  /* kafka.properties: a map of strings */
    K_RULES,  /* rules: a list of rule mappings (file only) */
} kind_t;

typedef int (*check_fn)(const char *s, char *why, size_t whylen);

typedef struct keydef {
    const char *path; /* dotted, as in the YAML file */
    kind_t kind;
    size_t off;      /* of the field in cfg_t */
    const char *def; /* default, parsed like any value; NULL: seg_params_default()'s */
    int64_t lo, hi;
    double dlo, dhi;
    int hi_open;
    int nonempty;
    int needs_unit; /* K_DUR, K_DAYS: a bare number is refused, not read as ms */
    const char *const *choices;
    check_fn check;
    const char *help; /* one line, written by cfg_dump */
} keydef_t;

static int check_listen(const char *s, char *why, size_t whylen);
static int check_redis_url(const char *s, char *why, size_t whylen);
static int check_topic_or_empty(const char *s, char *why, size_t whylen);
static int check_timezone(const char *s, char *why, size_t whylen);

static const char *const formats[] = {"json", "msgpack", NULL};
static const char *const levels[] = {"debug", "info", "warn", "error", NULL};

#define OFF(f) offsetof(cfg_t, f)
#define STR(p, f, d, ne, chk, h)                                                                   \
    {                                                                                              \
        .path = p, .kind = K_STR, .off = OFF(f), .def = d, .nonempty = ne, .check = chk, .help = h \
    }
#define ENUM(p, f, d, ch, h)                                                                       \
    {                                                                                              \
        .path = p, .kind = K_ENUM, .off = OFF(f), .def = d, .choices = ch, .help = h               \
    }
#define NUM(p, k, f, d, l, u, h)                                                                   \
    {                                                                                              \
        .path = p, .kind = k, .off = OFF(f), .def = d, .lo = l, .hi = u, .help = h                 \
    }
/* a period of days (lifecycle thresholds, half-lives): given without its
 * unit, a bare number read as ms would lapse every customer within a
 * second, so it is refused */
#define DAYS(p, k, f, h)                                                                           \
    {                                                                                              \
        .path = p, .kind = k, .off = OFF(f), .lo = 1, .hi = DUR_MAX_MS, .needs_unit = 1, .help = h \
    }
#define DBL(p, f, l, u, open, h)                                                                   \
    {                                                                                              \
        .path = p, .kind = K_DBL, .off = OFF(f), .dlo = l, .dhi = u, .hi_open = open, .help = h    \
    }

static const keydef_t keys[] = {
    STR("kafka.brokers", brokers, "127.0.0.1:9092", 1, cfg_check_brokers,
        "bootstrap servers, host:port[,host:port...]"),
    {.path = "kafka.topics",
     .kind = K_TOPICS,
     .off = OFF(topics),
     .def = "events",
     .help = "input topics (a list; a comma-separated string in the environment)"},
    STR("kafka.group_id", group_id, "segstream", 1, NULL, "consumer group"),
    STR("kafka.changes_topic", changes_topic, "segment-changes", 1, cfg_check_topic,
        "where segment-change events go"),
    STR("kafka.dlq_topic", dlq_topic, "segstream.dlq", 1, cfg_check_topic,
        "dead-letter topic for unusable events"),
    ENUM("kafka.change_format", change_format, "json", formats,
         "format of change events: json or msgpack"),
    {.path = "kafka.properties",
     .kind = K_PROPS,
     .help = "librdkafka properties, passed through as strings"},
    NUM("input.max_event_bytes", K_SIZE, max_event_bytes, "65536", 64, 16777216,
        "larger events go to the DLQ (64..16777216)"),
    NUM("input.max_future_skew", K_DUR, max_future_skew_ms, "7d", 0, DUR_MAX_MS,
        "events further ahead of the watermark go to the DLQ"),
    NUM("input.dedup_window", K_DUR, seg.dedup_window_ms, NULL, 0, DUR_MAX_MS,
        "a repeated event_id within this of the customer's newest event is applied once (0s: "
        "among its last 8 ids only)"),
    NUM("input.dedup_max", K_INT, seg.dedup_max, NULL, 0, 1000000,
        "at most this many ids per customer beyond its last 8 (the newest)"),
    NUM("watermark.allowed_lateness", K_DUR, allowed_lateness_ms, "0s", 0, DUR_MAX_MS,
        "the watermark trails the slowest partition by this much"),
    NUM("watermark.idle_timeout", K_DUR, idle_timeout_ms, "30s", 1, DUR_MAX_MS,
        "a partition silent this long stops holding the watermark back"),
    {.path = "watermark.idle_advance",
     .kind = K_BOOL,
     .off = OFF(idle_advance),
     .def = "true",
     .help = "when every partition is idle, advance with the wall clock"},
    STR("watermark.control_topic", control_topic, "segstream.watermarks", 0, check_topic_or_empty,
        "where run records each wall-clock advance of W, so replay reproduces it (\"\": off)"),
    STR("redis.url", redis_url, "", 0, check_redis_url,
        "\"\": in-memory store; else redis://[user:pass@]host[:port][/db]"),
    STR("redis.prefix", redis_prefix, "seg:", 0, cfg_check_prefix,
        "prefix of every Redis key (at most 100 bytes)"),
    STR("http.listen", http_listen, "127.0.0.1:9464", 1, check_listen,
        "host:port of /metrics and /healthz (port 0: any free port)"),
    ENUM("log.level", log_level, "info", levels, "debug, info, warn or error"),
    DAYS("features.half_life.activity", K_DAYS, seg.half_life_activity_days,
         "visits, views, email, time of day, channels"),
    DAYS("features.half_life.purchase", K_DAYS, seg.half_life_purchase_days,
         "carts, purchases, monetary, discounts"),
    DAYS("features.half_life.affinity", K_DAYS, seg.half_life_affinity_days, "category affinity"),
    NUM("features.session_gap", K_DUR, seg.session_gap_ms, NULL, 1, DUR_MAX_MS,
        "a silence this long starts a new visit"),
    STR("features.timezone", timezone, "UTC", 1, check_timezone,
        "local time of the time-of-day and weekday features: UTC, an offset (+08:00) or a "
        "tz database name (Asia/Shanghai)"),
    DAYS("lifecycle.new", K_DUR, seg.new_ms, "`new` while first seen within this"),
    DAYS("lifecycle.at_risk", K_DUR, seg.at_risk_ms, "`at_risk` after this long without activity"),
    DAYS("lifecycle.lapsed", K_DUR, seg.lapsed_ms,
         "`lapsed` after this long without activity (> at_risk)"),
    DAYS("lifecycle.reactivated", K_DUR, seg.reactivated_ms,
         "`reactivated` for this long after a lapsed customer returns"),
    {.path = "lifecycle.activity_types",
     .kind = K_EVMASK,
     .off = OFF(seg.activity_mask),
     .help = "event types that count as activity ([]: all)"},
    NUM("clusters.k", K_INT, seg.k, NULL, 1, SEG_K_MAX, "number of clusters"),
    NUM("clusters.warmup", K_INT, seg.warmup, NULL, 1, 1000000,
        "vectors kept to seed the centroids, seeded after 4x this many events (k..1000000)"),
    NUM("clusters.min_events", K_INT, seg.min_events, NULL, 1, 1000000,
        "a customer's events before it teaches the model"),
    DBL("clusters.hysteresis", seg.hysteresis, 0, 1, 1,
        "relative distance margin before a customer changes cluster"),
    DBL("clusters.learning_rate_floor", seg.lr_floor, 0, 1, 0,
        "floor of the centroid learning rate"),
    DBL("clusters.dying_share", seg.dying_share, 0, 1, 1,
        "a cluster with a smaller recent share is split away (< 1/k)"),
    NUM("clusters.dying_window", K_I64, seg.dying_window, NULL, 100, 1000000000000LL,
        "updates over which the recent share is measured"),
    {.path = "clusters.seed", .kind = K_U64, .off = OFF(seg.seed), .help = "random seed"},
    {.path = "rules", .kind = K_RULES, .help = "rule segments"},
};
#define N_KEYS ((int)(sizeof keys / sizeof keys[0]))

/* ---------- the loader's context ---------- */

typedef struct origin {
    int line;        /* > 0: set in the file at this line */
    const char *env; /* not NULL: set by this "NAME=value" entry of the environment */
} origin_t;

typedef struct ld {
    cfg_t *c;
    const char *name; /* the file, for messages */
    char *err;
    size_t errlen;
    const char *input; /* the YAML text, to find the line of a reader error */
    size_t input_len;
    yaml_document_t *doc;
    origin_t org[N_KEYS];
} ld_t;

static int vfail(ld_t *L, origin_t o, const char *key, const char *fmt, va_list ap)
{
    char reason[REASON_LEN];
    vsnprintf(reason, sizeof reason, fmt, ap);
    if (!L->err || !L->errlen) return -1;
    if (o.env)
        snprintf(L->err, L->errlen, "env %.*s: %s", (int)strcspn(o.env, "="), o.env, reason);
    else if (o.line > 0 && key)
        snprintf(L->err, L->errlen, "%s:%d: %s: %s", L->name, o.line, key, reason);
    else if (o.line > 0)
        snprintf(L->err, L->errlen, "%s:%d: %s", L->name, o.line, reason);
    else if (key)
        snprintf(L->err, L->errlen, "%s: %s: %s", L->name, key, reason);
    else
        snprintf(L->err, L->errlen, "%s: %s", L->name, reason);
    return -1;
}

#if defined(__GNUC__)
#define PRINTF_LIKE(a, b) __attribute__((format(printf, a, b)))
#else
#define PRINTF_LIKE(a, b)
#endif

static int fail(ld_t *L, origin_t o, const char *key, const char *fmt, ...) PRINTF_LIKE(4, 5);
static int fail(ld_t *L, origin_t o, const char *key, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(L, o, key, fmt, ap);
    va_end(ap);
    return -1;
}

static origin_t at_line(int line)
{
    origin_t o = {line, NULL};
    return o;
}

static void *field(cfg_t *c, size_t off)
{
    return (char *)c + off;
}

static const void *cfield(const cfg_t *c, size_t off)
{
    return (const char *)c + off;
}

/* ---------- scalar parsing ---------- */

static int parse_i64(const char *s, int64_t *out)
{
    const char *p = s;
    int neg = 0;
    uint64_t v = 0;
    if (*p == '-') neg = 1, p++;
    if (*p < '0' || *p > '9') return -1;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (v > (UINT64_MAX - (uint64_t)(*p - '0')) / 10) return -1;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    if (*p) return -1;
    if (neg ? v > (uint64_t)INT64_MAX + 1 : v > (uint64_t)INT64_MAX) return -1;
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return 0;
}

static int parse_u64(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    if (*s < '0' || *s > '9') return -1;
    for (; *s >= '0' && *s <= '9'; s++) {
        if (v > (UINT64_MAX - (uint64_t)(*s - '0')) / 10) return -1;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    if (*s) return -1;
    *out = v;
    return 0;
}

/* A plain decimal number: digits, an optional fraction and exponent. No hex,
 * inf or nan (which strtod would take). */
static int parse_double(const char *s, double *out)
{
    const char *p = s;
    int digits = 0;
    if (*p == '-' || *p == '+') p++;
    for (; *p >= '0' && *p <= '9'; p++) digits++;
    if (*p == '.')
        for (p++; *p >= '0' && *p <= '9'; p++) digits++;
    if (!digits) return -1;
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '-' || *p == '+') p++;
        if (*p < '0' || *p > '9') return -1;
        while (*p >= '0' && *p <= '9') p++;
    }
    if (*p) return -1;
    char *end;
    double v = strtod(s, &end);
    if (*end || !isfinite(v)) return -1;
    *out = v;
    return 0;
}

static int parse_bool(const char *s, int *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        if (!strcasecmp(s, yes[i])) return *out = 1, 0;
        if (!strcasecmp(s, no[i])) return *out = 0, 0;
    }
    return -1;
}

int cfg_parse_duration(const char *s, int64_t *ms)
{
    static const struct {
        const char *name;
        int64_t ms;
    } units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", SEG_DAY_MS}};
    if (!s || *s < '0' || *s > '9') return -1;
    int64_t ip = 0, fnum = 0, fden = 1;
    const char *p = s;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (ip > (INT64_MAX - (*p - '0')) / 10) return -1;
        ip = ip * 10 + (*p - '0');
    }
    int has_frac = 0;
    if (*p == '.') {
        p++;
        if (*p < '0' || *p > '9') return -1;
        has_frac = 1;
        for (; *p >= '0' && *p <= '9'; p++)
            if (fden < 1000000000) fnum = fnum * 10 + (*p - '0'), fden *= 10;
    }
    if (!*p) { /* bare integer: ms */
        if (has_frac) return -1;
        *ms = ip;
        return 0;
    }
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (strcmp(p, units[i].name)) continue;
        int64_t u = units[i].ms;
        if (ip > INT64_MAX / u) return -1;
        int64_t v = ip * u;
        int64_t f = (fnum * u + fden / 2) / fden; /* fnum < 1e9, u <= 8.64e7: fits */
        if (v > INT64_MAX - f) return -1;
        *ms = v + f;
        return 0;
    }
    return -1;
}

int cfg_format_duration(int64_t ms, char *buf, size_t len)
{
    static const struct {
        const char *name;
        int64_t ms;
    } units[] = {{"d", SEG_DAY_MS}, {"h", 3600000}, {"m", 60000}, {"s", 1000}};
    if (ms == 0) return snprintf(buf, len, "0s");
    if (ms > 0)
        for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
            if (ms % units[i].ms == 0)
                return snprintf(buf, len, "%lld%s", (long long)(ms / units[i].ms), units[i].name);
    return snprintf(buf, len, "%lldms", (long long)ms);
}

/* ---------- string checks ---------- */

static int why_set(char *why, size_t whylen, const char *fmt, ...) PRINTF_LIKE(3, 4);
static int why_set(char *why, size_t whylen, const char *fmt, ...)
{
    if (why && whylen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, whylen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

int cfg_check_topic(const char *s, char *why, size_t whylen)
{
    size_t n = strlen(s);
    if (n == 0 || n > 249 || !strcmp(s, ".") || !strcmp(s, ".."))
        return why_set(why, whylen, "invalid topic name '%s'", s);
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '.' || *p == '_' || *p == '-'))
            return why_set(why, whylen,
                           "invalid topic name '%s' (letters, digits, '.', '_' and '-' only)", s);
    return 0;
}

int cfg_check_prefix(const char *s, char *why, size_t whylen)
{
    size_t n = strlen(s);
    if (n > CFG_PREFIX_MAX)
        return why_set(why, whylen, "%zu bytes, over the %d a prefix may have", n, CFG_PREFIX_MAX);
    return 0;
}

static int parse_port(const char *s, size_t n, int lo, int *port)
{
    if (n == 0 || n > 5) return -1;
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (v < lo || v > 65535) return -1;
    *port = v;
    return 0;
}

/* host:port or [v6]:port, within s[0..n); port >= lo. */
static int split_hostport(const char *s, size_t n, int lo, char *host, size_t hostlen, int *port,
                          char *why, size_t whylen)
{
    const char *hs, *colon;
    size_t hn;
    if (n && s[0] == '[') {
        const char *rb = memchr(s, ']', n);
        if (!rb || rb + 1 == s + n || rb[1] != ':')
            return why_set(why, whylen, "expected [address]:port");
        hs = s + 1, hn = (size_t)(rb - hs), colon = rb + 1;
    } else {
        colon = NULL;
        for (size_t i = 0; i < n; i++)
            if (s[i] == ':') {
                if (colon)
                    return why_set(why, whylen, "expected host:port (write IPv6 as [addr]:port)");
                colon = s + i;
            }
        if (!colon) return why_set(why, whylen, "expected host:port");
        hs = s, hn = (size_t)(colon - s);
    }
    if (hn == 0) return why_set(why, whylen, "missing host in host:port");
    for (size_t i = 0; i < hn; i++)
        if (hs[i] == '/' || hs[i] == '@' || hs[i] == ' ' || hs[i] == '[' || hs[i] == ']')
            return why_set(why, whylen, "invalid host '%.*s'", (int)hn, hs);
    if (hn >= hostlen) return why_set(why, whylen, "host is too long");
    size_t pn = (size_t)(s + n - (colon + 1));
    if (parse_port(colon + 1, pn, lo, port) < 0)
        return why_set(why, whylen, "port '%.*s' is not a number between %d and 65535", (int)pn,
                       colon + 1, lo);
    memcpy(host, hs, hn);
    host[hn] = 0;
    return 0;
}

int cfg_split_hostport(const char *s, char *host, size_t hostlen, int *port, char *why,
                       size_t whylen)
{
    return split_hostport(s, strlen(s), 0, host, hostlen, port, why, whylen);
}

static int is_host_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '-' || c == '_';
}

/* One kafka.brokers entry, p[0..n): [PROTO://]host[:port][/...], host a name
 * or [v6]. librdkafka takes the port as 9092 when left out and ignores a
 * URL's path. */
static int check_broker(const char *p, size_t n, char *why, size_t whylen)
{
    const char *e = p + n, *h = p, *q;
    const char *sep = memchr(p, ':', n);
    if (sep && e - sep >= 3 && sep[1] == '/' && sep[2] == '/') {
        if (sep == p) return why_set(why, whylen, "missing protocol before '://'");
        for (q = p; q < sep; q++)
            if (!is_host_char(*q) || *q == '.' || *q == '-')
                return why_set(why, whylen, "invalid protocol '%.*s'", (int)(sep - p), p);
        h = sep + 3;
    }
    if ((q = memchr(h, '/', (size_t)(e - h)))) e = q;
    const char *hs = h, *he;
    if (h < e && *h == '[') {
        const char *rb = memchr(h, ']', (size_t)(e - h));
        if (!rb) return why_set(why, whylen, "missing ']' after an IPv6 address");
        hs = h + 1, he = rb;
        for (q = hs; q < he; q++)
            if (!is_host_char(*q) && *q != ':' && *q != '%')
                return why_set(why, whylen, "invalid IPv6 address '%.*s'", (int)(he - hs), hs);
        q = rb + 1;
        if (q < e && *q != ':') return why_set(why, whylen, "expected ':port' after ']'");
    } else {
        for (he = h; he < e && *he != ':'; he++)
            if (!is_host_char(*he))
                return why_set(why, whylen,
                               "invalid character '%c' in host (letters, digits, '.', '-', "
                               "'_', or [IPv6 address])",
                               *he);
        q = he;
    }
    if (hs == he) return why_set(why, whylen, "missing host");
    if (q < e) {
        int port;
        size_t pn = (size_t)(e - q - 1);
        if (memchr(q + 1, ':', pn))
            return why_set(why, whylen, "more than one ':' (write IPv6 as [address]:port)");
        if (parse_port(q + 1, pn, 1, &port) < 0)
            return why_set(why, whylen, "port '%.*s' is not a number between 1 and 65535", (int)pn,
                           q + 1);
    }
    return 0;
}

/* kafka.brokers as librdkafka reads it: entries between commas and blanks,
 * empty ones skipped. A list it cannot use would otherwise only show as
 * endless reconnects; one it can use must load, as replay of files reads
 * the config too. */
int cfg_check_brokers(const char *s, char *why, size_t whylen)
{
    static const char blank[] = ", \t\r\n\f\v";
    char r[200];
    int any = 0;
    for (const char *p = s + strspn(s, blank); *p; p += strspn(p, blank)) {
        size_t n = strcspn(p, blank);
        if (check_broker(p, n, r, sizeof r) < 0) {
            if (n == strlen(s))
                return why_set(why, whylen, "'%s': %s ([PROTOCOL://]host[:port][,...])", s, r);
            return why_set(why, whylen, "'%.*s' in '%s': %s ([PROTOCOL://]host[:port][,...])",
                           (int)n, p, s, r);
        }
        any = 1;
        p += n;
    }
    if (!any) return why_set(why, whylen, "no broker in '%s' ([PROTOCOL://]host[:port][,...])", s);
    return 0;
}

/* ---------- features.timezone ---------- */

#define TZ_DIR_DEFAULT "/usr/share/zoneinfo"

/* "+08:00", "-0300", "+05": seconds east of UTC; -1 when s is not one. */
static int tz_offset(const char *s, int32_t *off)
{
    if ((s[0] != '+' && s[0] != '-') || !(s[1] >= '0' && s[1] <= '9') ||
        !(s[2] >= '0' && s[2] <= '9'))
        return -1;
    int h = (s[1] - '0') * 10 + (s[2] - '0'), m = 0;
    const char *r = s + 3;
    if (*r == ':') r++;
    if (*r) {
        if (!(r[0] >= '0' && r[0] <= '9') || !(r[1] >= '0' && r[1] <= '9') || r[2]) return -1;
        m = (r[0] - '0') * 10 + (r[1] - '0');
    } else if (r != s + 3) {
        return -1; /* "+08:" */
    }
    if (h > 14 || m > 59 || (h == 14 && m > 0)) return -1;
    *off = (int32_t)((h * 60 + m) * 60) * (s[0] == '-' ? -1 : 1);
    return 0;
}

/* The file of tz database zone `name`, checked to be one (glibc reads an
 * unknown name as UTC without a word, so it is looked for first). */
static int tz_file(const char *name, char *path, size_t len, char *why, size_t whylen)
{
    const char *dir = getenv("TZDIR");
    if (!dir || !*dir) dir = TZ_DIR_DEFAULT;
    /* their time_t counts leap seconds, and they end at the leap second
     * file's expiry (the last offset then holds for ever) */
    if (!strncmp(name, "right/", 6))
        return why_set(why, whylen, "'%s' counts leap seconds, which event times do not: write %s",
                       name, name + 6);
    int ok = name[0] != '/' && strlen(name) < 128 && !strstr(name, "..");
    for (const char *p = name; ok && *p; p++)
        ok = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
             *p == '/' || *p == '_' || *p == '-' || *p == '+';
    char magic[4] = {0};
    if (ok) {
        snprintf(path, len, "%s/%s", dir, name);
        FILE *f = fopen(path, "rb");
        ok = f && fread(magic, 1, 4, f) == 4 && memcmp(magic, "TZif", 4) == 0;
        if (f) fclose(f);
    }
    if (!ok)
        return why_set(why, whylen,
                       "unknown time zone '%s': not in %s; write UTC, an offset such as +08:00, "
                       "or a tz database name such as Asia/Shanghai",
                       name, dir);
    return 0;
}

enum { TZ_UTC, TZ_OFFSET, TZ_NAME };

/* What features.timezone value s is: TZ_UTC, TZ_OFFSET (*off) or TZ_NAME
 * (its file in path); -1 with the reason in why. */
static int tz_parse(const char *s, int32_t *off, char *path, size_t len, char *why, size_t whylen)
{
    if (!strcmp(s, "UTC") || !strcmp(s, "Z")) return TZ_UTC;
    if (tz_offset(s, off) == 0) return TZ_OFFSET;
    if (s[0] == '+' || s[0] == '-')
        return why_set(why, whylen, "'%s' is not an offset from -14:00 to +14:00 such as +08:00",
                       s);
    return tz_file(s, path, len, why, whylen) < 0 ? -1 : TZ_NAME;
}

static int check_timezone(const char *s, char *why, size_t whylen)
{
    int32_t off;
    char path[PATH_MAX];
    return tz_parse(s, &off, path, sizeof path, why, whylen) < 0 ? -1 : 0;
}

static long gmtoff_at(time_t t)
{
    struct tm tm;
    return localtime_r(&t, &tm) ? tm.tm_gmtoff : 0;
}

/* p->tz from zone s: none for UTC, one span for an offset, and for a
 * zone name every change of its UTC offset from 1970 to 2100, as the C
 * library's reading of the tz database gives them (found by day, then to
 * the second; a change is never less than a day from the next). Before
 * 1970 the 1970 offset holds, after 2100 the 2100 one. TZ is set while it
 * reads and put back after: done at start, before any thread. */
static int tz_fill(const char *s, seg_params_t *p, char *why, size_t whylen)
{
    int32_t off;
    char path[PATH_MAX + 1];
    p->tz_n = 0;
    path[0] = ':';
    int kind = tz_parse(s, &off, path + 1, sizeof path - 1, why, whylen);
    if (kind != TZ_NAME) {
        if (kind == TZ_OFFSET) p->tz[p->tz_n++] = (seg_tz_span_t){INT64_MIN, off};
        return kind < 0 ? -1 : 0;
    }
    /* glibc reads a relative TZ file under TZDIR again: give it the file
     * checked, or it misses it and takes UTC without a word */
    char abs[PATH_MAX];
    if (path[1] != '/') {
        if (!realpath(path + 1, abs))
            return why_set(why, whylen, "time zone '%s': cannot resolve %s", s, path + 1);
        memcpy(path + 1, abs, strlen(abs) + 1);
    }
    const char *was = getenv("TZ");
    char *saved = was ? strdup(was) : NULL;
    if (was && !saved) return why_set(why, whylen, "out of memory");
    int rc = 0;
    setenv("TZ", path, 1);
    tzset();
    const time_t from = 0, to = 4102444800; /* 2100-01-01 */
    long cur = gmtoff_at(from);
    p->tz[p->tz_n++] = (seg_tz_span_t){INT64_MIN, (int32_t)cur};
    for (time_t t = from + 86400; t <= to && rc == 0; t += 86400) {
        long o = gmtoff_at(t);
        if (o == cur) continue;
        time_t lo = t - 86400, hi = t; /* cur at lo, o at hi */
        while (hi - lo > 1) {
            time_t mid = lo + (hi - lo) / 2;
            if (gmtoff_at(mid) == cur)
                lo = mid;
            else
                hi = mid;
        }
        if (p->tz_n == SEG_TZ_MAX) /* a bad offset: seg_params_validate says so */
            rc =
                why_set(why, whylen, "time zone '%s': more offset changes than segstream keeps", s);
        else
            p->tz[p->tz_n++] = (seg_tz_span_t){(int64_t)hi * 1000, (int32_t)o};
        cur = o;
    }
    if (saved)
        setenv("TZ", saved, 1);
    else
        unsetenv("TZ");
    tzset();
    free(saved);
    if (rc < 0) p->tz_n = 0;
    return rc;
}

static int check_listen(const char *s, char *why, size_t whylen)
{
    char host[256];
    int port;
    return cfg_split_hostport(s, host, sizeof host, &port, why, whylen);
}

static int hexval(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* Copies the n bytes of a URL's user or password into dst, %HH decoded as
 * URLs write userinfo (RFC 3986), so that '/', '@' or ':' can be written; an
 * invalid escape, or %00, is kept as written. -1 when it does not fit. */
static int copy_userinfo(char *dst, size_t dstlen, const char *s, size_t n)
{
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        int hi = i + 2 < n ? hexval(s[i + 1]) : -1, lo = i + 2 < n ? hexval(s[i + 2]) : -1;
        char ch = s[i];
        if (ch == '%' && hi >= 0 && lo >= 0 && (hi | lo) != 0) ch = (char)(hi * 16 + lo), i += 2;
        if (j + 1 >= dstlen) return -1;
        dst[j++] = ch;
    }
    dst[j] = 0;
    return 0;
}

int cfg_parse_redis_url(const char *url, cfg_redis_url_t *out, char *why, size_t whylen)
{
    static const char scheme[] = "redis://";
    memset(out, 0, sizeof *out);
    if (strncmp(url, scheme, sizeof scheme - 1))
        return why_set(why, whylen,
                       "must be \"\" (in-memory store) or "
                       "redis://[user:pass@]host[:port][/db]");
    const char *a = url + sizeof scheme - 1;
    const char *slash = strchr(a, '/');
    const char *end = slash ? slash : a + strlen(a);
    const char *at = NULL;
    for (const char *p = a; p < end; p++)
        if (*p == '@') at = p;
    if (at) {
        const char *colon = memchr(a, ':', (size_t)(at - a));
        const char *ue = colon ? colon : at;
        if (copy_userinfo(out->user, sizeof out->user, a, (size_t)(ue - a)) < 0)
            return why_set(why, whylen, "user is too long");
        if (colon &&
            copy_userinfo(out->pass, sizeof out->pass, colon + 1, (size_t)(at - colon - 1)) < 0)
            return why_set(why, whylen, "password is too long");
        a = at + 1;
    }
    /* no port: Redis's own, 6379, as redis-cli -u and client libraries take it */
    char hp[300], r[200];
    size_t hn = (size_t)(end - a);
    int bare = hn == 0 || (a[0] == '[' ? a[hn - 1] == ']' : !memchr(a, ':', hn));
    if (bare && hn + 6 < sizeof hp) {
        snprintf(hp, sizeof hp, "%.*s:6379", (int)hn, a);
        a = hp, hn += 5;
    }
    if (split_hostport(a, hn, 1, out->host, sizeof out->host, &out->port, r, sizeof r) < 0)
        return why_set(why, whylen, "%s (redis://[user:pass@]host[:port][/db])", r);
    if (slash && slash[1]) {
        int64_t db;
        if (parse_i64(slash + 1, &db) < 0 || db < 0 || db > INT_MAX)
            return why_set(why, whylen, "database '%s' is not a number >= 0", slash + 1);
        out->db = (int)db;
    }
    return 0;
}

static int check_topic_or_empty(const char *s, char *why, size_t whylen)
{
    return *s ? cfg_check_topic(s, why, whylen) : 0;
}

static int check_redis_url(const char *s, char *why, size_t whylen)
{
    cfg_redis_url_t u;
    if (!*s) return 0;
    return cfg_parse_redis_url(s, &u, why, whylen);
}

/* ---------- setting one key ---------- */

/* Decodes one UTF-8 sequence at p: its length, or -1 when malformed
 * (overlong, surrogate, beyond U+10FFFF, truncated). */
static int utf8_next(const unsigned char *p, uint32_t *cp)
{
    if (p[0] < 0x80) return *cp = p[0], 1;
    int n = p[0] >= 0xf0 ? 4 : p[0] >= 0xe0 ? 3 : p[0] >= 0xc0 ? 2 : 0;
    if (!n || p[0] > 0xf4) return -1;
    uint32_t v = p[0] & (0x7f >> n);
    for (int i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80) return -1; /* also stops at the NUL */
        v = v << 6 | (p[i] & 0x3f);
    }
    static const uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};
    if (v < min[n] || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) return -1;
    *cp = v;
    return n;
}

static int valid_utf8(const char *s)
{
    uint32_t cp;
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        int n = utf8_next(p, &cp);
        if (n < 0) return 0;
        p += n;
    }
    return 1;
}

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

static void fmt_dur(int64_t ms, char *buf, size_t len)
{
    cfg_format_duration(ms, buf, len);
}

static int range_reason(const keydef_t *k, char *why, size_t whylen)
{
    char a[32], b[32];
    switch (k->kind) {
    case K_INT:
    case K_I64:
    case K_SIZE:
        return why_set(why, whylen, "must be an integer between %lld and %lld", (long long)k->lo,
                       (long long)k->hi);
    case K_U64:
        return why_set(why, whylen, "must be an integer between 0 and %llu",
                       (unsigned long long)UINT64_MAX);
    case K_DBL:
        return why_set(why, whylen, "must be a number >= %g and %s %g", k->dlo,
                       k->hi_open ? "<" : "<=", k->dhi);
    case K_DUR:
    case K_DAYS:
        fmt_dur(k->lo, a, sizeof a), fmt_dur(k->hi, b, sizeof b);
        return why_set(why, whylen,
                       "must be a duration between %s and %s (e.g. 250ms, 30s, "
                       "5m, 2h, 30d)",
                       a, b);
    case K_BOOL:
        return why_set(why, whylen, "must be true or false");
    default:
        return why_set(why, whylen, "invalid value");
    }
}

/* Sets a scalar key from text (a default, a YAML scalar or a variable). */
static int set_scalar(cfg_t *c, const keydef_t *k, const char *s, char *why, size_t whylen)
{
    void *f = field(c, k->off);
    int64_t i;
    uint64_t u;
    double d;
    int b;
    switch (k->kind) {
    case K_STR: {
        if (k->nonempty && !*s) return why_set(why, whylen, "must not be empty");
        if (k->check && *s && k->check(s, why, whylen) < 0) return -1;
        char *v = dup_str(s);
        if (!v) return why_set(why, whylen, "out of memory");
        free(*(char **)f);
        *(char **)f = v;
        return 0;
    }
    case K_ENUM:
        for (int j = 0; k->choices[j]; j++)
            if (!strcasecmp(s, k->choices[j])) {
                char *v = dup_str(k->choices[j]);
                if (!v) return why_set(why, whylen, "out of memory");
                free(*(char **)f);
                *(char **)f = v;
                return 0;
            }
        {
            char list[128] = "";
            for (int j = 0; k->choices[j]; j++)
                snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", j ? ", " : "",
                         k->choices[j]);
            return why_set(why, whylen, "must be one of %s", list);
        }
    case K_INT:
        if (parse_i64(s, &i) < 0 || i < k->lo || i > k->hi) return range_reason(k, why, whylen);
        *(int *)f = (int)i;
        return 0;
    case K_I64:
        if (parse_i64(s, &i) < 0 || i < k->lo || i > k->hi) return range_reason(k, why, whylen);
        *(int64_t *)f = i;
        return 0;
    case K_SIZE:
        if (parse_i64(s, &i) < 0 || i < k->lo || i > k->hi) return range_reason(k, why, whylen);
        *(size_t *)f = (size_t)i;
        return 0;
    case K_U64:
        if (parse_u64(s, &u) < 0) return range_reason(k, why, whylen);
        *(uint64_t *)f = u;
        return 0;
    case K_DBL:
        if (parse_double(s, &d) < 0 || d < k->dlo || d > k->dhi || (k->hi_open && d >= k->dhi))
            return range_reason(k, why, whylen);
        *(double *)f = d;
        return 0;
    case K_BOOL:
        if (parse_bool(s, &b) < 0) return range_reason(k, why, whylen);
        *(int *)f = b;
        return 0;
    case K_DUR:
    case K_DAYS:
        if (k->needs_unit && *s && strspn(s, "0123456789") == strlen(s))
            return why_set(why, whylen, "needs a unit, e.g. %sd or %sh (a bare number is ms)", s,
                           s);
        if (cfg_parse_duration(s, &i) < 0 || i < k->lo || i > k->hi)
            return range_reason(k, why, whylen);
        if (k->kind == K_DUR)
            *(int64_t *)f = i;
        else
            *(double *)f = (double)i / (double)SEG_DAY_MS;
        return 0;
    default:
        return why_set(why, whylen, "internal error: not a scalar key");
    }
}

static void free_topics(cfg_t *c)
{
    for (int i = 0; i < c->n_topics; i++) free(c->topics[i]);
    free(c->topics);
    c->topics = NULL;
    c->n_topics = 0;
}

/* A "^regex" subscription compiled as librdkafka will (POSIX-like
 * extended syntax): a bad one fails here, naming the item, instead of at
 * subscribe with "Local: Invalid argument or configuration". */
static int check_topic_regex(const char *s, char *why, size_t whylen)
{
    regex_t re;
    int rc = regcomp(&re, s, REG_EXTENDED | REG_NOSUB);
    if (rc == 0) {
        regfree(&re);
        return 0;
    }
    char msg[128];
    regerror(rc, &re, msg, sizeof msg);
    return why_set(why, whylen, "invalid regular expression '%s': %s", s, msg);
}

/* Sets a list key from n items. On error *bad is the item at fault (-1: the
 * list as a whole). */
static int set_list(cfg_t *c, const keydef_t *k, const char *const *items, int n, int *bad,
                    char *why, size_t whylen)
{
    *bad = -1;
    if (k->kind == K_TOPICS) {
        if (n <= 0) return why_set(why, whylen, "must list at least one topic");
        for (int i = 0; i < n; i++) /* "^regex": a pattern subscription */
            if ((items[i][0] == '^' && items[i][1] ? check_topic_regex(items[i], why, whylen)
                                                   : cfg_check_topic(items[i], why, whylen)) < 0)
                return *bad = i, -1;
        char **t = calloc((size_t)n, sizeof *t);
        if (!t) return why_set(why, whylen, "out of memory");
        for (int i = 0; i < n; i++)
            if (!(t[i] = dup_str(items[i]))) {
                for (int j = 0; j < i; j++) free(t[j]);
                free(t);
                return why_set(why, whylen, "out of memory");
            }
        free_topics(c);
        c->topics = t;
        c->n_topics = n;
        return 0;
    }
    /* K_EVMASK */
    uint32_t mask = 0;
    for (int i = 0; i < n; i++) {
        int t = -1;
        for (int j = 0; j < SEG_EV__COUNT; j++)
            if (!strcmp(items[i], seg_evtype_names[j])) t = j;
        if (t < 0) {
            char list[256] = "";
            for (int j = 0; j < SEG_EV__COUNT; j++)
                snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", j ? ", " : "",
                         seg_evtype_names[j]);
            *bad = i;
            return why_set(why, whylen, "unknown event type '%s' (one of %s)", items[i], list);
        }
        mask |= 1u << t;
    }
    *(uint32_t *)field(c, k->off) = n ? mask : ALL_EVENT_TYPES;
    return 0;
}

/* Splits a comma-separated string into trimmed items (an empty or blank
 * string is no items). Returns the count, or -1 when out of memory. */
static int split_commas(const char *s, char ***out)
{
    *out = NULL;
    const char *p = s;
    while (*p == ' ' || *p == '\t') p++;
    if (!*p) return 0;
    int n = 1;
    for (const char *q = s; *q; q++) n += *q == ',';
    char **v = calloc((size_t)n, sizeof *v);
    if (!v) return -1;
    int i = 0;
    for (const char *a = s;; i++) {
        const char *e = strchr(a, ',');
        if (!e) e = a + strlen(a);
        const char *b = e;
        while (a < b && (*a == ' ' || *a == '\t')) a++;
        while (b > a && (b[-1] == ' ' || b[-1] == '\t')) b--;
        if (!(v[i] = malloc((size_t)(b - a) + 1))) {
            for (int j = 0; j < i; j++) free(v[j]);
            free(v);
            return -1;
        }
        memcpy(v[i], a, (size_t)(b - a));
        v[i][b - a] = 0;
        if (!*e) break;
        a = e + 1;
    }
    *out = v;
    return n;
}

static void free_items(char **v, int n)
{
    for (int i = 0; i < n; i++) free(v[i]);
    free(v);
}

/* Sets any table key (not props or rules) from text: lists are split on commas. */
static int set_text(cfg_t *c, const keydef_t *k, const char *s, char *why, size_t whylen)
{
    if (k->kind != K_TOPICS && k->kind != K_EVMASK) return set_scalar(c, k, s, why, whylen);
    char **v;
    int n = split_commas(s, &v), bad;
    if (n < 0) return why_set(why, whylen, "out of memory");
    int rc = set_list(c, k, (const char *const *)v, n, &bad, why, whylen);
    free_items(v, n);
    return rc;
}

static int set_prop(cfg_t *c, const char *key, const char *val, const char *origin)
{
    for (int i = 0; i < c->n_kafka_props; i++)
        if (!strcmp(c->kafka_props[i].key, key)) {
            char *v = dup_str(val), *o = dup_str(origin);
            if (!v || !o) {
                free(v);
                free(o);
                return -1;
            }
            free(c->kafka_props[i].val);
            free(c->kafka_props[i].origin);
            c->kafka_props[i].val = v;
            c->kafka_props[i].origin = o;
            return 0;
        }
    cfg_kv_t *p = realloc(c->kafka_props, (size_t)(c->n_kafka_props + 1) * sizeof *p);
    if (!p) return -1;
    c->kafka_props = p;
    char *kk = dup_str(key), *vv = dup_str(val), *oo = dup_str(origin);
    if (!kk || !vv || !oo) {
        free(kk);
        free(vv);
        free(oo);
        return -1;
    }
    p[c->n_kafka_props].key = kk;
    p[c->n_kafka_props].val = vv;
    p[c->n_kafka_props].origin = oo;
    c->n_kafka_props++;
    return 0;
}

/* ---------- the YAML file ---------- */

static yaml_node_t *node(ld_t *L, int i)
{
    return yaml_document_get_node(L->doc, i);
}

static int line_of(const yaml_node_t *n)
{
    return (int)n->start_mark.line + 1;
}

static const char *kind_name(const yaml_node_t *n)
{
    return n->type == YAML_MAPPING_NODE    ? "a mapping"
           : n->type == YAML_SEQUENCE_NODE ? "a list"
                                           : "a value";
}

static int is_null(const yaml_node_t *n)
{
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) return 0;
    const char *s = (const char *)n->data.scalar.value;
    return !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") || !strcmp(s, "NULL");
}

/* The text of a scalar node, or NULL (with an error) when it is not one or
 * holds a NUL byte. A null scalar is "" when null_empty. */
static const char *scalar(ld_t *L, const yaml_node_t *n, const char *key, int null_empty)
{
    if (n->type != YAML_SCALAR_NODE) {
        fail(L, at_line(line_of(n)), key, "expected a single value, found %s", kind_name(n));
        return NULL;
    }
    const char *s = (const char *)n->data.scalar.value;
    if (strlen(s) != n->data.scalar.length) {
        fail(L, at_line(line_of(n)), key, "must not contain NUL characters");
        return NULL;
    }
    return null_empty && is_null(n) ? "" : s;
}

static int set_from_node(ld_t *L, const keydef_t *k, const yaml_node_t *v, const char *path);

/* The table key at path, or NULL. */
static const keydef_t *find_key(const char *path)
{
    for (int i = 0; i < N_KEYS; i++)
        if (!strcmp(keys[i].path, path)) return &keys[i];
    return NULL;
}

/* 1 when path names a section (a proper prefix of some key's path). */
static int is_section(const char *path)
{
    size_t n = strlen(path);
    for (int i = 0; i < N_KEYS; i++)
        if (!strncmp(keys[i].path, path, n) && keys[i].path[n] == '.') return 1;
    return 0;
}

/* " (did you mean 'x'?)" for the closest known name under prefix, or "". */
static void suggest(const char *prefix, const char *name, char *out, size_t outlen)
{
    size_t pn = strlen(prefix), best = 3;
    char cand[PATH_MAX_LEN];
    out[0] = 0;
    for (int i = 0; i < N_KEYS; i++) {
        const char *p = keys[i].path;
        if (pn && (strncmp(p, prefix, pn) || p[pn] != '.')) continue;
        p += pn ? pn + 1 : 0;
        size_t n = strcspn(p, ".");
        if (n >= sizeof cand) continue;
        memcpy(cand, p, n);
        cand[n] = 0;
        size_t d = seg_edit_distance(name, cand);
        if (d < best && d < strlen(cand)) {
            best = d;
            snprintf(out, outlen, " (did you mean '%s'?)", cand);
        }
    }
}

static int walk_map(ld_t *L, const yaml_node_t *m, const char *prefix)
{
    for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
        const yaml_node_t *kn = node(L, p->key), *vn = node(L, p->value);
        int line = line_of(kn);
        const char *name = scalar(L, kn, *prefix ? prefix : NULL, 0);
        if (!name) return -1;
        char path[PATH_MAX_LEN];
        int pl = snprintf(path, sizeof path, "%s%s%s", prefix, *prefix ? "." : "", name);
        const keydef_t *k = pl < (int)sizeof path ? find_key(path) : NULL;
        if (!k && (pl >= (int)sizeof path || !is_section(path))) {
            char hint[PATH_MAX_LEN + 32];
            if (!strcmp(name, "<<"))
                return fail(L, at_line(line), NULL, "%s%s<<: merge keys are not supported", prefix,
                            *prefix ? "." : "");
            suggest(prefix, name, hint, sizeof hint);
            return fail(L, at_line(line), NULL, "%s%s%.*s: unknown key%s", prefix,
                        *prefix ? "." : "", PATH_MAX_LEN, name, hint);
        }
        /* Earlier keys are all known, so this scan is short. */
        for (yaml_node_pair_t *q = m->data.mapping.pairs.start; q < p; q++)
            if (!strcmp((const char *)node(L, q->key)->data.scalar.value, name))
                return fail(L, at_line(line), path, "duplicate key (first at line %d)",
                            line_of(node(L, q->key)));
        if (k) {
            if (set_from_node(L, k, vn, path) < 0) return -1;
            L->org[k - keys] = at_line(line_of(vn));
        } else if (is_null(vn)) {
            continue; /* an empty section */
        } else if (vn->type != YAML_MAPPING_NODE) {
            return fail(L, at_line(line_of(vn)), path, "must be a mapping, found %s",
                        kind_name(vn));
        } else if (walk_map(L, vn, path) < 0) {
            return -1;
        }
    }
    return 0;
}

static int set_props_node(ld_t *L, const yaml_node_t *v, const char *path)
{
    if (is_null(v)) return 0;
    if (v->type != YAML_MAPPING_NODE)
        return fail(L, at_line(line_of(v)), path,
                    "must be a mapping of librdkafka properties, found %s", kind_name(v));
    cfg_t *c = L->c;
    int n = 0;
    for (yaml_node_pair_t *p = v->data.mapping.pairs.start; p < v->data.mapping.pairs.top;
         p++, n++) {
        const yaml_node_t *kn = node(L, p->key), *vn = node(L, p->value);
        const char *key = scalar(L, kn, path, 0);
        if (!key) return -1;
        if (n >= PROPS_MAX)
            return fail(L, at_line(line_of(kn)), path, "too many properties (at most %d)",
                        PROPS_MAX);
        if (!*key || is_null(kn)) return fail(L, at_line(line_of(kn)), path, "empty property name");
        if (strlen(key) > PROP_NAME_MAX)
            return fail(L, at_line(line_of(kn)), path, "property name longer than %d bytes",
                        PROP_NAME_MAX);
        char kp[PATH_MAX_LEN + PROP_NAME_MAX + 2];
        snprintf(kp, sizeof kp, "%s.%s", path, key);
        for (int i = 0; i < c->n_kafka_props; i++)
            if (!strcmp(c->kafka_props[i].key, key))
                return fail(L, at_line(line_of(kn)), kp, "duplicate key");
        const char *val = scalar(L, vn, kp, 1);
        if (!val) return -1;
        char at[PATH_MAX_LEN + PROP_NAME_MAX + 4200];
        snprintf(at, sizeof at, "%s:%d: %s", L->name, line_of(kn), kp);
        if (set_prop(c, key, val, at) < 0)
            return fail(L, at_line(line_of(kn)), kp, "out of memory");
    }
    return 0;
}

static int valid_rule_name(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++)
        if (!((s[n] >= 'a' && s[n] <= 'z') || (s[n] >= '0' && s[n] <= '9') || s[n] == '_' ||
              s[n] == '-'))
            return 0;
    return n > 0 && n <= RULE_NAME_MAX;
}

/* Compiles rule r (index ri) into c->seg; on error names the condition at
 * fault, found by compiling each condition alone. */
static int compile_rule(ld_t *L, const cfg_rule_t *r, int ri, const yaml_node_t *list,
                        const char *kw)
{
    char e[REASON_LEN], e1[REASON_LEN], key[64];
    if (seg_params_add_rule(&L->c->seg, r->name, r->any, (const char *const *)r->conds, r->n_conds,
                            e, sizeof e) == 0)
        return 0;
    for (int j = 0; j < r->n_conds; j++) {
        seg_params_t tmp;
        seg_params_default(&tmp);
        int bad = seg_params_add_rule(&tmp, r->name, r->any, (const char *const *)&r->conds[j], 1,
                                      e1, sizeof e1) < 0;
        seg_params_clear(&tmp);
        if (bad) {
            snprintf(key, sizeof key, "rules[%d].%s[%d]", ri, kw, j);
            const yaml_node_t *cn = node(L, list->data.sequence.items.start[j]);
            return fail(L, at_line(line_of(cn)), key, "%s", e1);
        }
    }
    snprintf(key, sizeof key, "rules[%d]", ri);
    return fail(L, at_line(r->line), key, "%s", e);
}

static int set_rule_node(ld_t *L, const yaml_node_t *m, int ri)
{
    cfg_t *c = L->c;
    char key[96];
    snprintf(key, sizeof key, "rules[%d]", ri);
    if (m->type != YAML_MAPPING_NODE)
        return fail(L, at_line(line_of(m)), key,
                    "must be a mapping with `name` and `all` or `any`, found %s", kind_name(m));
    const yaml_node_t *name = NULL, *list = NULL;
    const char *kw = NULL;
    for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
        const yaml_node_t *kn = node(L, p->key), *vn = node(L, p->value);
        const char *k = scalar(L, kn, key, 0);
        if (!k) return -1;
        snprintf(key, sizeof key, "rules[%d].%.40s", ri, k);
        if (!strcmp(k, "name")) {
            if (name) return fail(L, at_line(line_of(kn)), key, "duplicate key");
            name = vn;
        } else if (!strcmp(k, "all") || !strcmp(k, "any")) {
            if (list)
                return fail(L, at_line(line_of(kn)), key,
                            "a rule has exactly one of `all` and `any`");
            list = vn, kw = !strcmp(k, "all") ? "all" : "any";
        } else {
            static const char *const known[] = {"name", "all", "any"};
            char hint[64] = "";
            size_t best = 3;
            for (int i = 0; i < 3; i++) {
                size_t d = seg_edit_distance(k, known[i]);
                if (d < best && d < strlen(known[i]))
                    best = d, snprintf(hint, sizeof hint, " (did you mean '%s'?)", known[i]);
            }
            return fail(L, at_line(line_of(kn)), key, "unknown key%s", hint);
        }
        snprintf(key, sizeof key, "rules[%d]", ri);
    }
    if (!name) return fail(L, at_line(line_of(m)), key, "missing `name`");
    snprintf(key, sizeof key, "rules[%d].name", ri);
    const char *nm = scalar(L, name, key, 1);
    if (!nm) return -1;
    if (!valid_rule_name(nm))
        return fail(L, at_line(line_of(name)), key,
                    "'%.64s' is not a valid rule name (1 to %d of a-z, 0-9, '_', '-')", nm,
                    RULE_NAME_MAX);
    /* "CUSTOMER:rule:lifecycle:N" would also be the id of customer
     * "CUSTOMER:rule"'s lifecycle change N (the only name that can collide) */
    if (!strcmp(nm, "lifecycle"))
        return fail(L, at_line(line_of(name)), key,
                    "'lifecycle' is reserved (its change ids could be another customer's "
                    "lifecycle change ids)");
    for (int i = 0; i < c->n_rules; i++)
        if (!strcmp(c->rules[i].name, nm))
            return fail(L, at_line(line_of(name)), key,
                        "duplicate rule name '%s' (first at line %d)", nm, c->rules[i].line);
    snprintf(key, sizeof key, "rules[%d]", ri);
    if (!list)
        return fail(L, at_line(line_of(m)), key, "needs `all` or `any` (a list of conditions)");
    snprintf(key, sizeof key, "rules[%d].%s", ri, kw);
    if (list->type != YAML_SEQUENCE_NODE)
        return fail(L, at_line(line_of(list)), key, "must be a list of conditions, found %s",
                    is_null(list) ? "nothing" : kind_name(list));
    int n = (int)(list->data.sequence.items.top - list->data.sequence.items.start);
    if (n == 0) return fail(L, at_line(line_of(list)), key, "must list at least one condition");
    if (n > RULE_CONDS_MAX)
        return fail(L, at_line(line_of(list)), key, "at most %d conditions", RULE_CONDS_MAX);

    cfg_rule_t *rs = realloc(c->rules, (size_t)(c->n_rules + 1) * sizeof *rs);
    if (!rs) return fail(L, at_line(line_of(m)), key, "out of memory");
    c->rules = rs;
    cfg_rule_t *r = &rs[c->n_rules];
    memset(r, 0, sizeof *r);
    r->any = kw[1] == 'n';
    r->line = line_of(m);
    c->n_rules++; /* owned by c from here on, so cfg_free frees what follows */
    if (!(r->name = dup_str(nm)) || !(r->conds = calloc((size_t)n, sizeof *r->conds)))
        return fail(L, at_line(line_of(m)), key, "out of memory");
    for (int j = 0; j < n; j++) {
        const yaml_node_t *cn = node(L, list->data.sequence.items.start[j]);
        char ck[112];
        snprintf(ck, sizeof ck, "%s[%d]", key, j);
        const char *s = scalar(L, cn, ck, 1);
        if (!s) return -1;
        if (!*s) return fail(L, at_line(line_of(cn)), ck, "empty condition");
        if (!(r->conds[j] = dup_str(s))) return fail(L, at_line(line_of(cn)), ck, "out of memory");
        r->n_conds++;
    }
    return compile_rule(L, r, ri, list, kw);
}

static int set_rules_node(ld_t *L, const yaml_node_t *v, const char *path)
{
    if (is_null(v)) return 0;
    if (v->type != YAML_SEQUENCE_NODE)
        return fail(L, at_line(line_of(v)), path, "must be a list of rules, found %s",
                    kind_name(v));
    int n = (int)(v->data.sequence.items.top - v->data.sequence.items.start);
    if (n > SEG_RULES_MAX)
        return fail(L, at_line(line_of(v)), path, "at most %d rules", SEG_RULES_MAX);
    for (int i = 0; i < n; i++)
        if (set_rule_node(L, node(L, v->data.sequence.items.start[i]), i) < 0) return -1;
    return 0;
}

static int set_from_node(ld_t *L, const keydef_t *k, const yaml_node_t *v, const char *path)
{
    char why[REASON_LEN];
    if (k->kind == K_PROPS) return set_props_node(L, v, path);
    if (k->kind == K_RULES) return set_rules_node(L, v, path);
    if ((k->kind == K_TOPICS || k->kind == K_EVMASK) && v->type == YAML_SEQUENCE_NODE) {
        int n = (int)(v->data.sequence.items.top - v->data.sequence.items.start);
        if (n > 4096) return fail(L, at_line(line_of(v)), path, "too many items");
        const char **items = calloc((size_t)n + 1, sizeof *items);
        if (!items) return fail(L, at_line(line_of(v)), path, "out of memory");
        for (int i = 0; i < n; i++) {
            const yaml_node_t *it = node(L, v->data.sequence.items.start[i]);
            char ik[PATH_MAX_LEN + 16];
            snprintf(ik, sizeof ik, "%s[%d]", path, i);
            if (!(items[i] = scalar(L, it, ik, 1))) {
                free(items);
                return -1;
            }
        }
        int bad, rc = set_list(L->c, k, items, n, &bad, why, sizeof why);
        free(items);
        if (rc == 0) return 0;
        if (bad < 0) return fail(L, at_line(line_of(v)), path, "%s", why);
        char ik[PATH_MAX_LEN + 16];
        snprintf(ik, sizeof ik, "%s[%d]", path, bad);
        return fail(L, at_line(line_of(node(L, v->data.sequence.items.start[bad]))), ik, "%s", why);
    }
    const char *s =
        scalar(L, v, path, k->kind == K_STR || k->kind == K_TOPICS || k->kind == K_EVMASK);
    if (!s) return -1;
    if (set_text(L->c, k, s, why, sizeof why) < 0)
        return fail(L, at_line(line_of(v)), path, "%s", why);
    return 0;
}

/* The line of a reader error, which libyaml gives as a byte offset. */
static int offset_line(const ld_t *L, size_t off)
{
    int line = 1;
    for (size_t i = 0; i < off && i < L->input_len; i++) line += L->input[i] == '\n';
    return line;
}

/* Bytes of the line break at s[0..n), as libyaml counts lines (\r\n, \r,
 * \n, U+0085, U+2028, U+2029); 0 when none. */
static size_t break_len(const unsigned char *s, size_t n)
{
    if (s[0] == '\r') return n > 1 && s[1] == '\n' ? 2 : 1;
    if (s[0] == '\n') return 1;
    if (n > 1 && s[0] == 0xc2 && s[1] == 0x85) return 2;
    if (n > 2 && s[0] == 0xe2 && s[1] == 0x80 && (s[2] == 0xa8 || s[2] == 0xa9)) return 3;
    return 0;
}

/* The byte offset of a scanner mark, or input_len when past the end. The
 * mark's index counts characters, not bytes (a multi-byte character before
 * it would shift it), so the offset is found from its line and column
 * (characters); an initial BOM is not in libyaml's count. */
static size_t mark_offset(const ld_t *L, const yaml_mark_t *m)
{
    const unsigned char *s = (const unsigned char *)L->input;
    size_t n = L->input_len, i = 0, br;
    if (n >= 3 && s[0] == 0xef && s[1] == 0xbb && s[2] == 0xbf) i = 3;
    for (size_t line = 0; line < m->line && i < n;)
        if ((br = break_len(s + i, n - i)))
            line++, i += br;
        else
            i++;
    for (size_t col = 0; i < n; i++)
        if ((s[i] & 0xc0) != 0x80 && col++ == m->column) break; /* not a continuation byte */
    return i;
}

static int yaml_fail(ld_t *L, const yaml_parser_t *p)
{
    if (p->error == YAML_MEMORY_ERROR) return fail(L, at_line(0), NULL, "out of memory");
    int line = p->error == YAML_READER_ERROR ? offset_line(L, p->problem_offset)
                                             : (int)p->problem_mark.line + 1;
    char problem[256];
    snprintf(problem, sizeof problem, "%s", p->problem ? p->problem : "invalid YAML");
    /* libyaml does not say what the character was; a tab is the usual one */
    size_t at = L->input ? mark_offset(L, &p->problem_mark) : 0;
    if (p->error == YAML_SCANNER_ERROR && L->input && at < L->input_len && L->input[at] == '\t')
        snprintf(problem + strlen(problem), sizeof problem - strlen(problem),
                 " (a tab: YAML indents with spaces)");
    int cline = (int)p->context_mark.line + 1;
    if (p->context && cline != line)
        return fail(L, at_line(line), NULL, "%s (%s at line %d)", problem, p->context, cline);
    if (p->context) return fail(L, at_line(line), NULL, "%s (%s)", problem, p->context);
    return fail(L, at_line(line), NULL, "%s", problem);
}

static int load_yaml(ld_t *L, const char *yaml, size_t len)
{
    yaml_parser_t p;
    yaml_document_t doc, extra;
    int rc = -1;
    L->input = yaml, L->input_len = len;
    if (!yaml_parser_initialize(&p)) return fail(L, at_line(0), NULL, "out of memory");
    yaml_parser_set_input_string(&p, (const unsigned char *)yaml, len);
    if (!yaml_parser_load(&p, &doc)) {
        yaml_fail(L, &p);
        yaml_parser_delete(&p);
        return -1;
    }
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (root) { /* a second document is a mistake (a stray `---`) */
        if (!yaml_parser_load(&p, &extra)) {
            yaml_fail(L, &p);
            goto out;
        }
        yaml_node_t *r2 = yaml_document_get_root_node(&extra);
        int l2 = r2 ? (int)extra.start_mark.line + 1 : 0;
        yaml_document_delete(&extra);
        if (r2) {
            fail(L, at_line(l2), NULL, "only one YAML document is allowed");
            goto out;
        }
    }
    L->doc = &doc;
    if (!root || is_null(root))
        rc = 0;
    else if (root->type != YAML_MAPPING_NODE)
        rc = fail(L, at_line(line_of(root)), NULL, "the configuration must be a mapping, found %s",
                  kind_name(root));
    else
        rc = walk_map(L, root, "");
    L->doc = NULL;
out:
    yaml_document_delete(&doc);
    yaml_parser_delete(&p);
    return rc;
}

/* ---------- the environment ---------- */

static void env_name(const keydef_t *k, char *buf, size_t len)
{
    size_t n = (size_t)snprintf(buf, len, ENV_PREFIX);
    for (const char *p = k->path; *p && n + 1 < len; p++, n++)
        buf[n] = *p == '.' ? '_' : (*p >= 'a' && *p <= 'z') ? (char)(*p - 'a' + 'A') : *p;
    buf[n < len ? n : len - 1] = 0;
}

/* 1 for the names Kubernetes gives a Service's address in every pod of its
 * namespace (enableServiceLinks, on by default): for a Service `segstream`
 * (or `segstream-redis`, ...) SEGSTREAM_SERVICE_HOST, SEGSTREAM_SERVICE_PORT
 * and SEGSTREAM_SERVICE_PORT_NAME, SEGSTREAM_PORT, SEGSTREAM_PORT_9464_TCP
 * and its _PROTO, _PORT and _ADDR. No key of ours is named so. A name
 * ending in _PORT only with a value such as tcp://10.0.0.11:9464, so that
 * a slip like SEGSTREAM_HTTP_PORT=9000 is still reported. */
static int service_link(const char *name, const char *val)
{
    if (strstr(name, "_SERVICE_HOST") || strstr(name, "_SERVICE_PORT")) return 1;
    size_t n = strlen(name);
    if (n >= 5 && !strcmp(name + n - 5, "_PORT") &&
        (!strncmp(val, "tcp://", 6) || !strncmp(val, "udp://", 6) || !strncmp(val, "sctp://", 7)))
        return 1;
    for (const char *p = strstr(name, "_PORT_"); p; p = strstr(p + 1, "_PORT_")) {
        const char *d = p + 6;
        if (*d < '0' || *d > '9') continue;
        while (*d >= '0' && *d <= '9') d++;
        if (!strncmp(d, "_TCP", 4) || !strncmp(d, "_UDP", 4) || !strncmp(d, "_SCTP", 5)) return 1;
    }
    return 0;
}

static int apply_env_var(ld_t *L, const char *var)
{
    const char *eq = strchr(var, '=');
    if (!eq) return 0;
    size_t nl = (size_t)(eq - var);
    const char *val = eq + 1;
    char name[PATH_MAX_LEN + 16], why[REASON_LEN];
    origin_t o = {0, var}; /* the environment outlives the load */
    if (nl >= sizeof name) return fail(L, o, NULL, "unknown setting");
    memcpy(name, var, nl);
    name[nl] = 0;

    if (!valid_utf8(var)) return fail(L, o, NULL, "not valid UTF-8");
    size_t pp = sizeof ENV_PROPS_PREFIX - 1;
    if (!strncmp(name, ENV_PROPS_PREFIX, pp)) {
        if (nl == pp) return fail(L, o, NULL, "missing property name");
        char prop[PATH_MAX_LEN + 16];
        size_t j = 0;
        for (const char *p = name + pp; *p; p++)
            prop[j++] = *p == '_' ? '.' : (*p >= 'A' && *p <= 'Z') ? (char)(*p - 'A' + 'a') : *p;
        prop[j] = 0;
        char from[sizeof name + 4]; /* named as the other environment errors name theirs */
        snprintf(from, sizeof from, "env %s", name);
        if (set_prop(L->c, prop, val, from) < 0) return fail(L, o, NULL, "out of memory");
        return 0;
    }
    for (int i = 0; i < N_KEYS; i++) {
        char en[PATH_MAX_LEN + 16];
        env_name(&keys[i], en, sizeof en);
        if (strcmp(en, name)) continue;
        if (keys[i].kind == K_RULES)
            return fail(L, o, NULL, "rules can only be set in the configuration file");
        if (keys[i].kind == K_PROPS)
            return fail(L, o, NULL, "set each property as %s<NAME> (dots as underscores)",
                        ENV_PROPS_PREFIX);
        if (set_text(L->c, &keys[i], val, why, sizeof why) < 0) return fail(L, o, NULL, "%s", why);
        L->org[i] = o;
        return 0;
    }
    /* A Service's address from Kubernetes: not meant for us. */
    if (service_link(name, val)) return 0;
    /* Unknown: suggest the closest known variable. */
    size_t best = 4;
    char hint[PATH_MAX_LEN + 40] = "";
    for (int i = 0; i < N_KEYS; i++) {
        char en[PATH_MAX_LEN + 16];
        env_name(&keys[i], en, sizeof en);
        size_t d = seg_edit_distance(name, en);
        if (d < best) best = d, snprintf(hint, sizeof hint, " (did you mean %s?)", en);
    }
    return fail(L, o, NULL, "unknown setting%s", hint);
}

static int apply_env(ld_t *L)
{
    for (char **e = environ; e && *e; e++) {
        if (strncmp(*e, ENV_PREFIX, sizeof ENV_PREFIX - 1)) continue;
        if (apply_env_var(L, *e) < 0) return -1;
    }
    return 0;
}

/* ---------- validation across keys ---------- */

static int key_index(const char *path)
{
    const keydef_t *k = find_key(path);
    return k ? (int)(k - keys) : -1;
}

/* 1 when key k was set by the user (the file or the environment), not by
 * its default: the key a cross-key error should name. */
static int user_set(const ld_t *L, int k)
{
    return L->org[k].line || L->org[k].env;
}

static int validate(ld_t *L)
{
    cfg_t *c = L->c;
    int ia = key_index("lifecycle.at_risk"), il = key_index("lifecycle.lapsed");
    if (c->seg.lapsed_ms <= c->seg.at_risk_ms) {
        char a[32], b[32];
        fmt_dur(c->seg.at_risk_ms, a, sizeof a), fmt_dur(c->seg.lapsed_ms, b, sizeof b);
        if (user_set(L, il) || !user_set(L, ia))
            return fail(L, L->org[il], keys[il].path,
                        "must be longer than lifecycle.at_risk (%s > %s is false)", b, a);
        return fail(L, L->org[ia], keys[ia].path,
                    "must be shorter than lifecycle.lapsed (%s < %s is false)", a, b);
    }
    /* Outputs on an input topic (or one a "^regex" subscription matches)
     * feed the daemon its own output; two outputs on one topic mix change
     * events, dead letters and W records. The key blamed is one the user
     * set: the output's, else kafka.topics or the other output. */
    const char *out_key[] = {"kafka.changes_topic", "kafka.dlq_topic", "watermark.control_topic"};
    const char *out_val[] = {c->changes_topic, c->dlq_topic, c->control_topic};
    int it = key_index("kafka.topics");
    for (int i = 0; i < 3; i++) {
        if (!out_val[i] || !out_val[i][0]) continue;
        int ki = key_index(out_key[i]);
        int set_i = user_set(L, ki);
        for (int t = 0; t < c->n_topics; t++) {
            const char *in = c->topics[t];
            int hit = strcmp(out_val[i], in) == 0;
            if (!hit && in[0] == '^') {
                regex_t re;
                if (regcomp(&re, in, REG_EXTENDED | REG_NOSUB) == 0) {
                    hit = regexec(&re, out_val[i], 0, NULL, 0) == 0;
                    regfree(&re);
                }
            }
            if (!hit) continue;
            if (set_i || !user_set(L, it))
                return fail(L, L->org[ki], keys[ki].path,
                            "'%s' is also an input topic (kafka.topics '%s'): segstream would "
                            "read its own output",
                            out_val[i], in);
            return fail(L, L->org[it], keys[it].path,
                        "'%s' takes %s '%s' as input: segstream would read its own output", in,
                        out_key[i], out_val[i]);
        }
        for (int j = 0; j < i; j++) {
            if (!out_val[j] || strcmp(out_val[i], out_val[j]) != 0) continue;
            int kj = key_index(out_key[j]);
            int blame = set_i || !user_set(L, kj) ? ki : kj;
            return fail(L, L->org[blame], keys[blame].path, "'%s' is also %s", out_val[i],
                        out_key[blame == ki ? j : i]);
        }
    }
    char e[REASON_LEN];
    int tzk = key_index("features.timezone");
    if (tz_fill(c->timezone, &c->seg, e, sizeof e) < 0)
        return fail(L, L->org[tzk], keys[tzk].path, "%s", e);
    if (seg_params_validate(&c->seg, e, sizeof e) < 0) {
        /* The core names its own field; point at the key that set it when
         * the message starts with a known path or field. */
        for (int i = 0; i < N_KEYS; i++) {
            size_t n = strlen(keys[i].path);
            if (!strncmp(e, keys[i].path, n) && e[n] == ':')
                return fail(L, L->org[i], NULL, "%s", L->org[i].env ? e + n + 2 : e);
        }
        return fail(L, at_line(0), NULL, "%s", e);
    }
    return 0;
}

/* ---------- load, free ---------- */

static int init(ld_t *L, cfg_t *c, const char *name, char *err, size_t errlen)
{
    memset(c, 0, sizeof *c);
    memset(L, 0, sizeof *L);
    L->c = c, L->name = name ? name : "(defaults)", L->err = err, L->errlen = errlen;
    if (err && errlen) err[0] = 0;
    seg_params_default(&c->seg);
    if (!(c->source = dup_str(name ? name : "(defaults)")))
        return fail(L, at_line(0), NULL, "out of memory");
    char why[REASON_LEN];
    for (int i = 0; i < N_KEYS; i++)
        if (keys[i].def && set_text(c, &keys[i], keys[i].def, why, sizeof why) < 0)
            return fail(L, at_line(0), keys[i].path, "bad default: %s", why);
    return 0;
}

static int finish(ld_t *L)
{
    if (apply_env(L) < 0) return -1;
    return validate(L);
}

int cfg_load_string(cfg_t *c, const char *yaml, size_t len, const char *name, char *err,
                    size_t errlen)
{
    ld_t L;
    if (init(&L, c, name, err, errlen) < 0) return -1;
    if (yaml && load_yaml(&L, yaml, len) < 0) return -1;
    return finish(&L);
}

int cfg_load(cfg_t *c, const char *path, char *err, size_t errlen)
{
    ld_t L;
    if (init(&L, c, path, err, errlen) < 0) return -1;
    if (!path) return finish(&L);
    FILE *f = fopen(path, "rb");
    if (!f) return fail(&L, at_line(0), NULL, "cannot open: %s", strerror(errno));
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    int rc = -1;
    if (!buf) {
        fail(&L, at_line(0), NULL, "out of memory");
        goto out;
    }
    for (;;) {
        if (n == cap) {
            if (cap >= FILE_MAX_BYTES) {
                fail(&L, at_line(0), NULL, "larger than %u bytes", FILE_MAX_BYTES);
                goto out;
            }
            char *nb = realloc(buf, cap *= 2);
            if (!nb) {
                fail(&L, at_line(0), NULL, "out of memory");
                goto out;
            }
            buf = nb;
        }
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (r == 0) {
            if (ferror(f)) {
                fail(&L, at_line(0), NULL, "cannot read: %s", strerror(errno));
                goto out;
            }
            break;
        }
    }
    if (load_yaml(&L, buf, n) == 0) rc = finish(&L);
out:
    free(buf);
    fclose(f);
    return rc;
}

void cfg_free(cfg_t *c)
{
    if (!c) return;
    free(c->source);
    for (int i = 0; i < N_KEYS; i++)
        if (keys[i].kind == K_STR || keys[i].kind == K_ENUM) free(*(char **)field(c, keys[i].off));
    free_topics(c);
    for (int i = 0; i < c->n_kafka_props; i++) {
        free(c->kafka_props[i].key);
        free(c->kafka_props[i].val);
        free(c->kafka_props[i].origin);
    }
    free(c->kafka_props);
    for (int i = 0; i < c->n_rules; i++) {
        free(c->rules[i].name);
        for (int j = 0; j < c->rules[i].n_conds; j++) free(c->rules[i].conds[j]);
        free(c->rules[i].conds);
    }
    free(c->rules);
    seg_params_clear(&c->seg);
    memset(c, 0, sizeof *c);
}

/* ---------- dump ---------- */

typedef struct out {
    char *buf;
    size_t len, pos;
} out_t;

static void put(out_t *o, const char *fmt, ...) PRINTF_LIKE(2, 3);
static void put(out_t *o, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    size_t room = o->pos < o->len ? o->len - o->pos : 0;
    int n = vsnprintf(room ? o->buf + o->pos : NULL, room, fmt, ap);
    va_end(ap);
    if (n > 0) o->pos += (size_t)n;
}

/* A double-quoted YAML string. Code points YAML does not allow raw (C0 and
 * C1 controls, DEL, the line breaks NEL, U+2028 and U+2029, the BOM,
 * U+FFFE/U+FFFF) are escaped. Every stored
 * string is valid UTF-8 (libyaml checks the file, the loader the
 * environment). */
static void put_str(out_t *o, const char *s)
{
    put(o, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        uint32_t cp;
        int n = utf8_next(p, &cp);
        if (n <= 0) { /* cannot happen (see above); keep the output loadable */
            put(o, "\\uFFFD");
            p++;
            continue;
        }
        if (cp == '"' || cp == '\\')
            put(o, "\\%c", (char)cp);
        else if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f))
            put(o, "\\x%02x", (unsigned)cp);
        else if (cp == 0x2028 || cp == 0x2029 || cp == 0xfeff || cp == 0xfffe || cp == 0xffff)
            put(o, "\\u%04X", (unsigned)cp);
        else
            put(o, "%.*s", n, (const char *)p);
        p += n;
    }
    put(o, "\"");
}

static void put_double(out_t *o, double v)
{
    char b[40];
    double back;
    snprintf(b, sizeof b, "%.15g", v);
    if (parse_double(b, &back) < 0 || back != v) snprintf(b, sizeof b, "%.17g", v);
    put(o, "%s", b);
}

static void put_value(out_t *o, const cfg_t *c, const keydef_t *k, int depth)
{
    const void *f = cfield(c, k->off);
    char b[40];
    switch (k->kind) {
    case K_STR:
    case K_ENUM:
        put_str(o, *(char *const *)f ? *(char *const *)f : "");
        break;
    case K_INT:
        put(o, "%d", *(const int *)f);
        break;
    case K_I64:
        put(o, "%lld", (long long)*(const int64_t *)f);
        break;
    case K_U64:
        put(o, "%llu", (unsigned long long)*(const uint64_t *)f);
        break;
    case K_SIZE:
        put(o, "%zu", *(const size_t *)f);
        break;
    case K_DBL:
        put_double(o, *(const double *)f);
        break;
    case K_BOOL:
        put(o, "%s", *(const int *)f ? "true" : "false");
        break;
    case K_DUR:
        fmt_dur(*(const int64_t *)f, b, sizeof b);
        put(o, "%s", b);
        break;
    case K_DAYS:
        fmt_dur((int64_t)llround(*(const double *)f * (double)SEG_DAY_MS), b, sizeof b);
        put(o, "%s", b);
        break;
    case K_TOPICS:
        put(o, "[");
        for (int i = 0; i < c->n_topics; i++) {
            put(o, i ? ", " : "");
            put_str(o, c->topics[i]);
        }
        put(o, "]");
        break;
    case K_EVMASK: {
        uint32_t m = *(const uint32_t *)f & ALL_EVENT_TYPES;
        int first = 1;
        put(o, "[");
        if (m != ALL_EVENT_TYPES)
            for (int i = 0; i < SEG_EV__COUNT; i++)
                if (m & (1u << i))
                    put(o, "%s%s", first ? "" : ", ", seg_evtype_names[i]), first = 0;
        put(o, "]");
        break;
    }
    case K_PROPS:
        if (!c->n_kafka_props) {
            put(o, "{}");
            break;
        }
        for (int i = 0; i < c->n_kafka_props; i++) {
            put(o, "\n%*s", 2 * (depth + 1), "");
            put_str(o, c->kafka_props[i].key);
            put(o, ": ");
            put_str(o, c->kafka_props[i].val);
        }
        break;
    case K_RULES:
        if (!c->n_rules) {
            put(o, "[]");
            break;
        }
        for (int i = 0; i < c->n_rules; i++) {
            const cfg_rule_t *r = &c->rules[i];
            put(o, "\n%*s- name: ", 2 * (depth + 1), "");
            put_str(o, r->name);
            put(o, "\n%*s  %s: [", 2 * (depth + 1), "", r->any ? "any" : "all");
            for (int j = 0; j < r->n_conds; j++) {
                put(o, j ? ", " : "");
                put_str(o, r->conds[j]);
            }
            put(o, "]");
        }
        break;
    }
}

int cfg_dump(const cfg_t *c, char *buf, size_t len)
{
    out_t o = {buf, len, 0};
    const char *prev = "";
    if (len) buf[0] = 0;
    put(&o, "# segstream configuration (from ");
    for (const char *s = c->source ? c->source : "(defaults)"; *s; s++)
        put(&o, "%c", *s >= 0x20 && *s < 0x7f ? *s : '?'); /* ASCII only: a comment */
    put(&o, ")\n");
    for (int i = 0; i < N_KEYS; i++) {
        const keydef_t *k = &keys[i];
        /* Open the sections this key's path does not share with the previous one. */
        int depth = 0;
        const char *p = k->path, *q = prev;
        for (;;) {
            size_t n = strcspn(p, ".");
            if (!p[n]) break; /* the leaf */
            if (!(q && !strncmp(p, q, n) && (q[n] == '.'))) {
                put(&o, "%*s%.*s:\n", 2 * depth, "", (int)n, p);
                q = NULL;
            } else {
                q += n + 1;
            }
            p += n + 1;
            depth++;
        }
        put(&o, "%*s%s:", 2 * depth, "", p);
        int nested = (k->kind == K_PROPS && c->n_kafka_props) || (k->kind == K_RULES && c->n_rules);
        if (nested) {
            put(&o, "  # %s", k->help);
            put_value(&o, c, k, depth);
            put(&o, "\n");
        } else {
            put(&o, " ");
            put_value(&o, c, k, depth);
            put(&o, "  # %s\n", k->help);
        }
        prev = k->path;
    }
    if (o.pos > INT_MAX) return -1;
    if (len && o.pos >= len) buf[len - 1] = 0;
    return (int)o.pos;
}
