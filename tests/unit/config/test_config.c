/* tests/unit/config/test_config.c: config/config.c: defaults, every section,
 * durations, environment overrides, exact error messages, the dump round
 * trip and the example file. Criterion runs each test in its own process, so
 * setenv() does not leak between tests. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "config/config.h"

extern char **environ;

#define DAY SEG_DAY_MS

/* Tests must not see SEGSTREAM_* variables of whoever runs them. */
static void clean_env(void)
{
    for (int again = 1; again;) {
        again = 0;
        for (char **e = environ; *e; e++)
            if (!strncmp(*e, "SEGSTREAM_", 10)) {
                char name[256];
                size_t n = strcspn(*e, "=");
                snprintf(name, sizeof name, "%.*s", (int)n, *e);
                unsetenv(name);
                again = 1;
                break;
            }
    }
}

TestSuite(config, .init = clean_env);

static cfg_t c;
static char err[1024];

static int load(const char *yaml)
{
    return cfg_load_string(&c, yaml, strlen(yaml), "t.yaml", err, sizeof err);
}

/* Loads yaml, expects failure with exactly `want`, and frees. */
static void expect_err(const char *yaml, const char *want)
{
    int rc = load(yaml);
    cr_expect_eq(rc, -1, "loaded although it should fail with: %s", want);
    cr_expect_str_eq(err, want);
    cfg_free(&c);
}

static void expect_ok(const char *yaml)
{
    int rc = load(yaml);
    cr_assert_eq(rc, 0, "%s", err);
}

/* ---------- defaults ---------- */

static void check_defaults(const cfg_t *x)
{
    cr_expect_str_eq(x->brokers, "127.0.0.1:9092");
    cr_assert_eq(x->n_topics, 1);
    cr_expect_str_eq(x->topics[0], "events");
    cr_expect_str_eq(x->group_id, "segstream");
    cr_expect_str_eq(x->changes_topic, "segment-changes");
    cr_expect_str_eq(x->dlq_topic, "segstream.dlq");
    cr_expect_str_eq(x->change_format, "json");
    cr_expect_eq(x->n_kafka_props, 0);
    cr_expect_eq(x->max_event_bytes, 65536);
    cr_expect_eq(x->max_future_skew_ms, 7 * 86400000LL);
    cr_expect_eq(x->allowed_lateness_ms, 0);
    cr_expect_eq(x->idle_timeout_ms, 30000);
    cr_expect_eq(x->idle_advance, 1);
    cr_expect_str_eq(x->redis_url, "");
    cr_expect_str_eq(x->redis_prefix, "seg:");
    cr_expect_str_eq(x->http_listen, "127.0.0.1:9464");
    cr_expect_str_eq(x->log_level, "info");
    seg_params_t d;
    seg_params_default(&d);
    cr_expect_eq(x->seg.half_life_activity_days, d.half_life_activity_days);
    cr_expect_eq(x->seg.half_life_purchase_days, d.half_life_purchase_days);
    cr_expect_eq(x->seg.half_life_affinity_days, d.half_life_affinity_days);
    cr_expect_eq(x->seg.session_gap_ms, d.session_gap_ms);
    cr_expect_eq(x->seg.new_ms, d.new_ms);
    cr_expect_eq(x->seg.at_risk_ms, d.at_risk_ms);
    cr_expect_eq(x->seg.lapsed_ms, d.lapsed_ms);
    cr_expect_eq(x->seg.reactivated_ms, d.reactivated_ms);
    cr_expect_eq(x->seg.activity_mask, d.activity_mask);
    cr_expect_eq(x->seg.k, d.k);
    cr_expect_eq(x->seg.warmup, d.warmup);
    cr_expect_eq(x->seg.min_events, d.min_events);
    cr_expect_eq(x->seg.hysteresis, d.hysteresis);
    cr_expect_eq(x->seg.lr_floor, d.lr_floor);
    cr_expect_eq(x->seg.dying_share, d.dying_share);
    cr_expect_eq(x->seg.dying_window, d.dying_window);
    cr_expect_eq(x->seg.seed, d.seed);
    cr_expect_str_eq(x->timezone, "UTC");
    cr_expect_eq(x->seg.tz_n, 0, "UTC: no offset table");
    cr_expect_null(x->seg.rules);
    cr_expect_eq(x->n_rules, 0);
}

Test(config, defaults_without_a_file)
{
    cr_assert_eq(cfg_load(&c, NULL, err, sizeof err), 0, "%s", err);
    cr_expect_str_eq(c.source, "(defaults)");
    cr_expect_str_eq(err, "");
    check_defaults(&c);
    /* the contract's defaults, spelled out */
    cr_expect_eq(c.seg.half_life_activity_days, 30.0);
    cr_expect_eq(c.seg.at_risk_ms, 30 * DAY);
    cr_expect_eq(c.seg.lapsed_ms, 60 * DAY);
    cr_expect_eq(c.seg.k, 6);
    cfg_free(&c);
}

Test(config, empty_and_null_documents_are_defaults)
{
    const char *docs[] = {"", "\n# only a comment\n", "---\n", "~\n",
                          "kafka:\ninput: ~\nfeatures:\n  half_life:\nrules:\n"};
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
        expect_ok(docs[i]);
        cr_expect_str_eq(c.source, "t.yaml");
        check_defaults(&c);
        cfg_free(&c);
    }
}

/* ---------- each section ---------- */

Test(config, kafka_section)
{
    expect_ok("kafka:\n"
              "  brokers: \"b1:9092,b2:9093\"\n"
              "  topics: [clickstream, purchases, \"^ga4-.*\"]\n"
              "  group_id: seg-eu\n"
              "  changes_topic: changes\n"
              "  dlq_topic: dead.letters\n"
              "  change_format: MsgPack\n"
              "  properties:\n"
              "    queued.min.messages: 1000000\n"
              "    enable.idempotence: true\n"
              "    client.id: \"seg 1\"\n"
              "    ssl.key.password: ''\n");
    cr_expect_str_eq(c.brokers, "b1:9092,b2:9093");
    cr_assert_eq(c.n_topics, 3);
    cr_expect_str_eq(c.topics[0], "clickstream");
    cr_expect_str_eq(c.topics[1], "purchases");
    cr_expect_str_eq(c.topics[2], "^ga4-.*");
    cr_expect_str_eq(c.group_id, "seg-eu");
    cr_expect_str_eq(c.changes_topic, "changes");
    cr_expect_str_eq(c.dlq_topic, "dead.letters");
    cr_expect_str_eq(c.change_format, "msgpack"); /* canonical case */
    cr_assert_eq(c.n_kafka_props, 4);
    cr_expect_str_eq(c.kafka_props[0].key, "queued.min.messages");
    cr_expect_str_eq(c.kafka_props[0].val, "1000000"); /* numbers become strings */
    cr_expect_str_eq(c.kafka_props[1].key, "enable.idempotence");
    cr_expect_str_eq(c.kafka_props[1].val, "true");
    cr_expect_str_eq(c.kafka_props[2].val, "seg 1");
    cr_expect_str_eq(c.kafka_props[3].val, "");
    cfg_free(&c);
}

Test(config, topics_as_a_comma_string)
{
    expect_ok("kafka: {topics: \"a, b,c\"}\n");
    cr_assert_eq(c.n_topics, 3);
    cr_expect_str_eq(c.topics[0], "a");
    cr_expect_str_eq(c.topics[1], "b");
    cr_expect_str_eq(c.topics[2], "c");
    cfg_free(&c);
    expect_ok("kafka: {topics: events}\n");
    cr_assert_eq(c.n_topics, 1);
    cfg_free(&c);
}

Test(config, input_watermark_redis_http_log)
{
    expect_ok("input:\n"
              "  max_event_bytes: 1048576\n"
              "  max_future_skew: 90m\n"
              "watermark:\n"
              "  allowed_lateness: 5s\n"
              "  idle_timeout: 2m\n"
              "  idle_advance: off\n"
              "redis:\n"
              "  url: redis://user:secret@cache.local:6380/2\n"
              "  prefix: \"\"\n"
              "http:\n"
              "  listen: \"[::1]:0\"\n"
              "log:\n"
              "  level: DEBUG\n");
    cr_expect_eq(c.max_event_bytes, 1048576);
    cr_expect_eq(c.max_future_skew_ms, 90 * 60000);
    cr_expect_eq(c.allowed_lateness_ms, 5000);
    cr_expect_eq(c.idle_timeout_ms, 120000);
    cr_expect_eq(c.idle_advance, 0);
    cr_expect_str_eq(c.redis_url, "redis://user:secret@cache.local:6380/2");
    cr_expect_str_eq(c.redis_prefix, "");
    cr_expect_str_eq(c.http_listen, "[::1]:0");
    cr_expect_str_eq(c.log_level, "debug");
    cfg_free(&c);
}

Test(config, features_lifecycle_clusters)
{
    expect_ok("features:\n"
              "  half_life: {activity: 7d, purchase: 1.5d, affinity: 36h}\n"
              "  session_gap: 45m\n"
              "lifecycle:\n"
              "  new: 14d\n"
              "  at_risk: 21d\n"
              "  lapsed: 90d\n"
              "  reactivated: 10d\n"
              "  activity_types: [page_view, purchase, session_start, other]\n"
              "clusters:\n"
              "  k: 32\n"
              "  warmup: 1000\n"
              "  min_events: 3\n"
              "  hysteresis: 0\n"
              "  learning_rate_floor: 1\n"
              "  dying_share: 0.01\n"
              "  dying_window: 5000\n"
              "  seed: 18446744073709551615\n");
    cr_expect_eq(c.seg.half_life_activity_days, 7.0);
    cr_expect_eq(c.seg.half_life_purchase_days, 1.5);
    cr_expect_eq(c.seg.half_life_affinity_days, 1.5);
    cr_expect_eq(c.seg.session_gap_ms, 45 * 60000);
    cr_expect_eq(c.seg.new_ms, 14 * DAY);
    cr_expect_eq(c.seg.at_risk_ms, 21 * DAY);
    cr_expect_eq(c.seg.lapsed_ms, 90 * DAY);
    cr_expect_eq(c.seg.reactivated_ms, 10 * DAY);
    cr_expect_eq(c.seg.activity_mask, (1u << SEG_EV_PAGE_VIEW) | (1u << SEG_EV_PURCHASE) |
                                          (1u << SEG_EV_SESSION_START) | (1u << SEG_EV_OTHER));
    cr_expect_eq(c.seg.k, 32);
    cr_expect_eq(c.seg.warmup, 1000);
    cr_expect_eq(c.seg.min_events, 3);
    cr_expect_eq(c.seg.hysteresis, 0.0);
    cr_expect_eq(c.seg.lr_floor, 1.0);
    cr_expect_eq(c.seg.dying_share, 0.01);
    cr_expect_eq(c.seg.dying_window, 5000);
    cr_expect_eq(c.seg.seed, UINT64_MAX);
    cfg_free(&c);
}

/* The offset in force at t (UTC seconds), read from the table as the core
 * reads it. */
static int32_t tz_at(const seg_params_t *p, int64_t t)
{
    int32_t off = 0;
    for (int i = 0; i < p->tz_n; i++)
        if (p->tz[i].from_ms <= t * 1000) off = p->tz[i].off_s;
    return off;
}

Test(config, timezone_offsets_and_names)
{
    static const struct {
        const char *v;
        int32_t off;
    } fixed[] = {{"+08:00", 8 * 3600}, {"-0300", -3 * 3600},  {"+05:30", 19800},
                 {"-09", -9 * 3600},   {"+14:00", 14 * 3600}, {"-00:00", 0}};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
        char y[64];
        snprintf(y, sizeof y, "features:\n  timezone: \"%s\"\n", fixed[i].v);
        expect_ok(y);
        cr_expect_eq(c.seg.tz_n, 1, "%s", fixed[i].v);
        cr_expect_eq(c.seg.tz[0].from_ms, INT64_MIN);
        cr_expect_eq(c.seg.tz[0].off_s, fixed[i].off, "%s: %d", fixed[i].v, c.seg.tz[0].off_s);
        cfg_free(&c);
    }
    expect_ok("features:\n  timezone: Europe/Berlin\n");
    cr_expect_gt(c.seg.tz_n, 200, "two changes a year: %d", c.seg.tz_n);
    cr_expect_eq(tz_at(&c.seg, 1704067200), 3600, "2024-01-01: CET");
    cr_expect_eq(tz_at(&c.seg, 1719792000), 7200, "2024-07-01: CEST");
    /* summer time began at 2024-03-31T01:00:00Z, to the second */
    cr_expect_eq(tz_at(&c.seg, 1711846799), 3600);
    cr_expect_eq(tz_at(&c.seg, 1711846800), 7200);
    cr_expect_eq(tz_at(&c.seg, 4086547200), 7200, "2099-07-01: the table runs to 2100");
    cfg_free(&c);
    expect_ok("features:\n  timezone: Asia/Shanghai\n");
    cr_expect_eq(tz_at(&c.seg, 1700000000), 8 * 3600);
    cfg_free(&c);
    /* the environment, and TZ left as it was */
    setenv("TZ", "America/New_York", 1);
    setenv("SEGSTREAM_FEATURES_TIMEZONE", "Asia/Kolkata", 1);
    expect_ok("");
    cr_expect_str_eq(c.timezone, "Asia/Kolkata");
    cr_expect_eq(tz_at(&c.seg, 1700000000), 19800);
    cr_expect_str_eq(getenv("TZ"), "America/New_York");
    unsetenv("TZ");
    cfg_free(&c);
}

/* A relative TZDIR is read from the working directory, as the name was
 * checked; glibc would take a relative TZ file under TZDIR again, miss it
 * and fall back to UTC without a word. */
Test(config, timezone_under_a_relative_tzdir)
{
    char cwd[4096];
    cr_assert_not_null(getcwd(cwd, sizeof cwd));
    cr_assert_eq(chdir("/usr/share"), 0);
    setenv("TZDIR", "zoneinfo", 1);
    expect_ok("features:\n  timezone: Asia/Shanghai\n");
    cr_expect_eq(tz_at(&c.seg, 1700000000), 8 * 3600, "%d", tz_at(&c.seg, 1700000000));
    cfg_free(&c);
    unsetenv("TZDIR");
    cr_assert_eq(chdir(cwd), 0);
}

Test(config, timezone_errors_name_the_key)
{
    unsetenv("TZDIR"); /* the messages name the default database */
    expect_err("features:\n  timezone: Mars/Olympus_Mons\n",
               "t.yaml:2: features.timezone: unknown time zone 'Mars/Olympus_Mons': not in "
               "/usr/share/zoneinfo; write UTC, an offset such as +08:00, or a tz database "
               "name such as Asia/Shanghai");
    expect_err("features:\n  timezone: \"+15:00\"\n",
               "t.yaml:2: features.timezone: '+15:00' is not an offset from -14:00 to +14:00 "
               "such as +08:00");
    expect_err("features:\n  timezone: \"+8\"\n",
               "t.yaml:2: features.timezone: '+8' is not an offset from -14:00 to +14:00 such "
               "as +08:00");
    expect_err("features:\n  timezone: ../../etc/passwd\n",
               "t.yaml:2: features.timezone: unknown time zone '../../etc/passwd': not in "
               "/usr/share/zoneinfo; write UTC, an offset such as +08:00, or a tz database "
               "name such as Asia/Shanghai");
    expect_err("features:\n  timezone: \"\"\n", "t.yaml:2: features.timezone: must not be empty");
    /* right/ zones count leap seconds in time_t, which event times do not,
     * and Debian's stop at their leap-second file's expiry (2026: right/Europe/
     * Berlin would keep summer time from 2026-03-29 on) */
    expect_err("features:\n  timezone: right/Europe/Berlin\n",
               "t.yaml:2: features.timezone: 'right/Europe/Berlin' counts leap seconds, which "
               "event times do not: write Europe/Berlin");
}

Test(config, empty_activity_types_means_all)
{
    expect_ok("lifecycle: {activity_types: [purchase]}\n");
    cr_expect_eq(c.seg.activity_mask, 1u << SEG_EV_PURCHASE);
    cfg_free(&c);
    expect_ok("lifecycle: {activity_types: []}\n");
    cr_expect_eq(c.seg.activity_mask, (1u << SEG_EV__COUNT) - 1);
    cfg_free(&c);
}

Test(config, rules_section)
{
    expect_ok("rules:\n"
              "  - name: big_spender\n"
              "    all: [\"monetary > 100\", \"orders >= 3\"]\n"
              "  - name: uk-ie\n"
              "    any:\n"
              "      - country in [GB, IE]\n"
              "      - top_category == books\n");
    cr_assert_eq(c.n_rules, 2);
    cr_expect_str_eq(c.rules[0].name, "big_spender");
    cr_expect_eq(c.rules[0].any, 0);
    cr_assert_eq(c.rules[0].n_conds, 2);
    cr_expect_str_eq(c.rules[0].conds[1], "orders >= 3");
    cr_expect_eq(c.rules[0].line, 2);
    cr_expect_str_eq(c.rules[1].name, "uk-ie");
    cr_expect_eq(c.rules[1].any, 1);
    cr_expect_str_eq(c.rules[1].conds[0], "country in [GB, IE]");
    cr_assert_eq(seg_rules_count(c.seg.rules), 2);
    cr_expect_str_eq(seg_rule_name(c.seg.rules, 0), "big_spender");
    cr_expect_str_eq(seg_rule_name(c.seg.rules, 1), "uk-ie");
    cfg_free(&c);
}

Test(config, aliases_resolve)
{
    expect_ok("lifecycle:\n"
              "  new: &month 30d\n"
              "  at_risk: *month\n"
              "  lapsed: 61d\n"
              "rules:\n"
              "  - name: a\n"
              "    all: &conds [\"orders >= 1\"]\n"
              "  - name: b\n"
              "    any: *conds\n");
    cr_expect_eq(c.seg.at_risk_ms, 30 * DAY);
    cr_expect_eq(c.n_rules, 2);
    cfg_free(&c);
}

/* ---------- durations ---------- */

Test(config, parse_duration)
{
    const struct {
        const char *s;
        int64_t ms;
    } ok[] = {
        {"0", 0},
        {"250", 250},
        {"250ms", 250},
        {"30s", 30000},
        {"5m", 300000},
        {"2h", 7200000},
        {"30d", 30 * DAY},
        {"1.5d", DAY * 3 / 2},
        {"0.5s", 500},
        {"1.0005s", 1001},
        {"0.0004s", 0},
        {"0s", 0},
        {"1.25h", 4500000},
        {"007m", 7 * 60000},
        {"0.1ms", 0},
        {"0.6ms", 1},
        {"9223372036854775807", INT64_MAX},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        int64_t v = -7;
        cr_expect_eq(cfg_parse_duration(ok[i].s, &v), 0, "%s", ok[i].s);
        cr_expect_eq(v, ok[i].ms, "%s -> %lld, not %lld", ok[i].s, (long long)v,
                     (long long)ok[i].ms);
    }
    const char *bad[] = {"",
                         "-1s",
                         "-5",
                         "+5",
                         "1.5",
                         "s",
                         "1x",
                         "1 s",
                         " 1s",
                         "1s ",
                         "1S",
                         "1.s",
                         ".5s",
                         "1e3",
                         "0x10",
                         "nan",
                         "1w",
                         "1sm",
                         "1..5d",
                         "9223372036854775808",
                         "9223372036854775807d",
                         "106751991167301d"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t v = -7;
        cr_expect_eq(cfg_parse_duration(bad[i], &v), -1, "'%s' should not parse", bad[i]);
        cr_expect_eq(v, -7);
    }
    int64_t v;
    cr_expect_eq(cfg_parse_duration(NULL, &v), -1);
}

Test(config, format_duration)
{
    const struct {
        int64_t ms;
        const char *s;
    } t[] = {{0, "0s"},        {1, "1ms"},        {250, "250ms"},
             {1000, "1s"},     {90000, "90s"},    {5400000, "90m"},
             {7200000, "2h"},  {30 * DAY, "30d"}, {DAY * 3 / 2, "36h"},
             {1001, "1001ms"}, {-5, "-5ms"}};
    char b[32];
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        cfg_format_duration(t[i].ms, b, sizeof b);
        cr_expect_str_eq(b, t[i].s);
        int64_t back;
        if (t[i].ms >= 0) {
            cr_expect_eq(cfg_parse_duration(b, &back), 0);
            cr_expect_eq(back, t[i].ms);
        }
    }
}

Test(config, bare_integer_durations_are_ms)
{
    expect_ok("watermark: {idle_timeout: 1500}\nfeatures: {session_gap: 60000}\n");
    cr_expect_eq(c.idle_timeout_ms, 1500);
    cr_expect_eq(c.seg.session_gap_ms, 60000);
    cfg_free(&c);
}

/* ---------- environment ---------- */

Test(config, env_overrides_file)
{
    setenv("SEGSTREAM_KAFKA_BROKERS", "k1:1,k2:2", 1);
    setenv("SEGSTREAM_KAFKA_TOPICS", " clickstream , purchases ", 1);
    setenv("SEGSTREAM_REDIS_URL", "redis://127.0.0.1:6379", 1);
    setenv("SEGSTREAM_REDIS_PREFIX", "t1:", 1);
    setenv("SEGSTREAM_HTTP_LISTEN", "0.0.0.0:9000", 1);
    setenv("SEGSTREAM_CLUSTERS_K", "8", 1);
    setenv("SEGSTREAM_LIFECYCLE_AT_RISK", "14d", 1);
    setenv("SEGSTREAM_FEATURES_HALF_LIFE_ACTIVITY", "12h", 1);
    setenv("SEGSTREAM_LOG_LEVEL", "warn", 1);
    setenv("SEGSTREAM_INPUT_MAX_EVENT_BYTES", "1024", 1);
    setenv("SEGSTREAM_CLUSTERS_HYSTERESIS", "0.3", 1);
    setenv("SEGSTREAM_CLUSTERS_SEED", "42", 1);
    setenv("SEGSTREAM_LIFECYCLE_ACTIVITY_TYPES", "purchase,email_click", 1);
    expect_ok("kafka: {brokers: \"file:1\", topics: [x]}\nclusters: {k: 4}\nlog: {level: error}\n");
    cr_expect_str_eq(c.brokers, "k1:1,k2:2");
    cr_assert_eq(c.n_topics, 2);
    cr_expect_str_eq(c.topics[0], "clickstream");
    cr_expect_str_eq(c.topics[1], "purchases");
    cr_expect_str_eq(c.redis_url, "redis://127.0.0.1:6379");
    cr_expect_str_eq(c.redis_prefix, "t1:");
    cr_expect_str_eq(c.http_listen, "0.0.0.0:9000");
    cr_expect_eq(c.seg.k, 8);
    cr_expect_eq(c.seg.at_risk_ms, 14 * DAY);
    cr_expect_eq(c.seg.half_life_activity_days, 0.5);
    cr_expect_str_eq(c.log_level, "warn");
    cr_expect_eq(c.max_event_bytes, 1024);
    cr_expect_eq(c.seg.hysteresis, 0.3);
    cr_expect_eq(c.seg.seed, 42);
    cr_expect_eq(c.seg.activity_mask, (1u << SEG_EV_PURCHASE) | (1u << SEG_EV_EMAIL_CLICK));
    cfg_free(&c);
}

Test(config, env_without_a_file)
{
    setenv("SEGSTREAM_CLUSTERS_K", "3", 1);
    cr_assert_eq(cfg_load(&c, NULL, err, sizeof err), 0, "%s", err);
    cr_expect_eq(c.seg.k, 3);
    cfg_free(&c);
}

Test(config, env_booleans)
{
    const struct {
        const char *v;
        int want;
    } t[] = {{"true", 1}, {"false", 0}, {"1", 1},   {"0", 0},    {"yes", 1},
             {"no", 0},   {"on", 1},    {"off", 0}, {"TRUE", 1}, {"No", 0}};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        setenv("SEGSTREAM_WATERMARK_IDLE_ADVANCE", t[i].v, 1);
        expect_ok(t[i].want ? "watermark: {idle_advance: false}\n"
                            : "watermark: {idle_advance: true}\n");
        cr_expect_eq(c.idle_advance, t[i].want, "%s", t[i].v);
        cfg_free(&c);
    }
    setenv("SEGSTREAM_WATERMARK_IDLE_ADVANCE", "maybe", 1);
    expect_err("", "env SEGSTREAM_WATERMARK_IDLE_ADVANCE: must be true or false");
}

Test(config, env_kafka_properties)
{
    setenv("SEGSTREAM_KAFKA_PROPERTIES_QUEUED_MIN_MESSAGES", "1000000", 1);
    setenv("SEGSTREAM_KAFKA_PROPERTIES_COMPRESSION_TYPE", "zstd", 1);
    expect_ok("kafka:\n  properties:\n    compression.type: lz4\n    linger.ms: 5\n");
    cr_assert_eq(c.n_kafka_props, 3);
    const char *want[][2] = {
        {"compression.type", "zstd"}, {"linger.ms", "5"}, {"queued.min.messages", "1000000"}};
    for (int i = 0; i < 3; i++) {
        int found = 0;
        for (int j = 0; j < c.n_kafka_props; j++)
            if (!strcmp(c.kafka_props[j].key, want[i][0])) {
                cr_expect_str_eq(c.kafka_props[j].val, want[i][1]);
                if (i == 0) /* named as the other environment errors name theirs */
                    cr_expect_str_eq(c.kafka_props[j].origin,
                                     "env SEGSTREAM_KAFKA_PROPERTIES_COMPRESSION_TYPE");
                found = 1;
            }
        cr_expect(found, "%s missing", want[i][0]);
    }
    cfg_free(&c);
}

/* Kubernetes gives every pod of a namespace variables for each Service
 * there (enableServiceLinks, on by default): a Service named `segstream`,
 * the obvious name for the daemon's /metrics, or `segstream-redis`, puts
 * SEGSTREAM_SERVICE_HOST, SEGSTREAM_PORT_9464_TCP_ADDR, ... in segstream's
 * own environment. They are no setting of ours and must not stop it. */
Test(config, env_kubernetes_service_links_are_not_settings)
{
    const char *links[] = {
        "SEGSTREAM_SERVICE_HOST=10.0.0.11",
        "SEGSTREAM_SERVICE_PORT=9464",
        "SEGSTREAM_SERVICE_PORT_METRICS=9464",
        "SEGSTREAM_PORT=tcp://10.0.0.11:9464",
        "SEGSTREAM_PORT_9464_TCP=tcp://10.0.0.11:9464",
        "SEGSTREAM_PORT_9464_TCP_PROTO=tcp",
        "SEGSTREAM_PORT_9464_TCP_PORT=9464",
        "SEGSTREAM_PORT_9464_TCP_ADDR=10.0.0.11",
        "SEGSTREAM_REDIS_SERVICE_HOST=10.0.0.12",
        "SEGSTREAM_REDIS_PORT_6379_TCP_ADDR=10.0.0.12",
        "SEGSTREAM_REDIS_PORT=tcp://10.0.0.12:6379",
    };
    for (size_t i = 0; i < sizeof links / sizeof links[0]; i++)
        cr_assert_eq(putenv((char *)links[i]), 0);
    setenv("SEGSTREAM_CLUSTERS_K", "8", 1);
    expect_ok("");
    cr_expect_eq(c.seg.k, 8);
    cfg_free(&c);
    /* a slip is still one, also one that ends in _PORT without an address */
    setenv("SEGSTREAM_REDIS_PORTS", "x", 1);
    cr_expect_eq(load(""), -1);
    cr_expect(!strncmp(err, "env SEGSTREAM_REDIS_PORTS: unknown setting", 42), "%s", err);
    cfg_free(&c);
    unsetenv("SEGSTREAM_REDIS_PORTS");
    setenv("SEGSTREAM_HTTP_PORT", "9000", 1);
    cr_expect_eq(load(""), -1);
    cr_expect(!strncmp(err, "env SEGSTREAM_HTTP_PORT: unknown setting", 40), "%s", err);
    cfg_free(&c);
}

Test(config, env_errors)
{
    setenv("SEGSTREAM_CLUSTERS_K", "40", 1);
    expect_err("", "env SEGSTREAM_CLUSTERS_K: must be an integer between 1 and 32");
    setenv("SEGSTREAM_CLUSTERS_K", "", 1);
    expect_err("", "env SEGSTREAM_CLUSTERS_K: must be an integer between 1 and 32");
    unsetenv("SEGSTREAM_CLUSTERS_K");

    setenv("SEGSTREAM_REDIS_ULR", "redis://x:1", 1);
    expect_err("", "env SEGSTREAM_REDIS_ULR: unknown setting (did you mean SEGSTREAM_REDIS_URL?)");
    unsetenv("SEGSTREAM_REDIS_ULR");

    setenv("SEGSTREAM_RULES", "x", 1);
    expect_err("", "env SEGSTREAM_RULES: rules can only be set in the configuration file");
    unsetenv("SEGSTREAM_RULES");

    setenv("SEGSTREAM_KAFKA_PROPERTIES_", "x", 1);
    expect_err("", "env SEGSTREAM_KAFKA_PROPERTIES_: missing property name");
    unsetenv("SEGSTREAM_KAFKA_PROPERTIES_");

    setenv("SEGSTREAM_LIFECYCLE_AT_RISK", "3 weeks", 1);
    expect_err("", "env SEGSTREAM_LIFECYCLE_AT_RISK: must be a duration between 1ms and 36500d "
                   "(e.g. 250ms, 30s, 5m, 2h, 30d)");
    unsetenv("SEGSTREAM_LIFECYCLE_AT_RISK");

    setenv("SEGSTREAM_KAFKA_TOPICS", "a,,b", 1);
    expect_err("", "env SEGSTREAM_KAFKA_TOPICS: invalid topic name ''");
    setenv("SEGSTREAM_KAFKA_TOPICS", "", 1);
    expect_err("", "env SEGSTREAM_KAFKA_TOPICS: must list at least one topic");
    unsetenv("SEGSTREAM_KAFKA_TOPICS");

    /* a cross-key check names the variable that set the key */
    setenv("SEGSTREAM_LIFECYCLE_LAPSED", "30d", 1);
    expect_err("", "env SEGSTREAM_LIFECYCLE_LAPSED: must be longer than lifecycle.at_risk "
                   "(30d > 30d is false)");
    unsetenv("SEGSTREAM_LIFECYCLE_LAPSED");
    setenv("SEGSTREAM_CLUSTERS_WARMUP", "3", 1);
    expect_err("", "env SEGSTREAM_CLUSTERS_WARMUP: must be between clusters.k and 1000000");
    unsetenv("SEGSTREAM_CLUSTERS_WARMUP");

    /* every stored string must be writable as YAML */
    setenv("SEGSTREAM_REDIS_PREFIX", "a\xff", 1);
    expect_err("", "env SEGSTREAM_REDIS_PREFIX: not valid UTF-8");
    unsetenv("SEGSTREAM_REDIS_PREFIX");
    setenv("SEGSTREAM_KAFKA_PROPERTIES_X", "\xc0\x80", 1); /* overlong NUL */
    expect_err("", "env SEGSTREAM_KAFKA_PROPERTIES_X: not valid UTF-8");
}

/* ---------- errors ---------- */

Test(config, error_unknown_keys)
{
    expect_err("kafka:\n  brokers: x:1\n  brokerz: y\n",
               "t.yaml:3: kafka.brokerz: unknown key (did you mean 'brokers'?)");
    expect_err("log:\n  level: info\nclsuters:\n  k: 3\n",
               "t.yaml:3: clsuters: unknown key (did you mean 'clusters'?)");
    expect_err("features:\n  half_life:\n    activty: 3d\n",
               "t.yaml:3: features.half_life.activty: unknown key (did you mean 'activity'?)");
    expect_err("clusters:\n  zzz: 1\n", "t.yaml:2: clusters.zzz: unknown key");
    /* periods of days given without a unit: 30 would be 30 ms (every
     * customer at_risk within a second); other durations take bare ms */
    expect_err("lifecycle:\n  at_risk: 30\n",
               "t.yaml:2: lifecycle.at_risk: needs a unit, e.g. 30d or 30h (a bare number is ms)");
    expect_err("features:\n  half_life: {purchase: 90}\n",
               "t.yaml:2: features.half_life.purchase: needs a unit, e.g. 90d or 90h (a bare "
               "number is ms)");
    setenv("SEGSTREAM_LIFECYCLE_LAPSED", "60", 1);
    expect_err("", "env SEGSTREAM_LIFECYCLE_LAPSED: needs a unit, e.g. 60d or 60h (a bare number "
                   "is ms)");
    unsetenv("SEGSTREAM_LIFECYCLE_LAPSED");
    expect_ok("lifecycle: {at_risk: 30d, lapsed: 1440h}\nwatermark: {idle_timeout: 1500}\n");
    cfg_free(&c);
    expect_err("base: &b {k: 1}\n", "t.yaml:1: base: unknown key");
    expect_err("clusters:\n  <<: {k: 3}\n", "t.yaml:2: clusters.<<: merge keys are not supported");
    expect_err("rules:\n  - name: a\n    al: [\"orders > 1\"]\n",
               "t.yaml:3: rules[0].al: unknown key (did you mean 'all'?)");
}

Test(config, error_types)
{
    expect_err("clusters:\n  k: [1, 2]\n",
               "t.yaml:2: clusters.k: expected a single value, found a list");
    expect_err("kafka: [a, b]\n", "t.yaml:1: kafka: must be a mapping, found a list");
    expect_err("kafka:\n  brokers: {a: b}\n",
               "t.yaml:2: kafka.brokers: expected a single value, found a mapping");
    expect_err("- a\n- b\n", "t.yaml:1: the configuration must be a mapping, found a list");
    expect_err("clusters:\n  k: six\n",
               "t.yaml:2: clusters.k: must be an integer between 1 and 32");
    expect_err("clusters:\n  k: 3.0\n",
               "t.yaml:2: clusters.k: must be an integer between 1 and 32");
    expect_err("clusters:\n  k:\n", "t.yaml:2: clusters.k: must be an integer between 1 and 32");
    expect_err("clusters:\n  hysteresis: .nan\n",
               "t.yaml:2: clusters.hysteresis: must be a number >= 0 and < 1");
    expect_err("watermark:\n  idle_advance: maybe\n",
               "t.yaml:2: watermark.idle_advance: must be true or false");
    expect_err("kafka:\n  change_format: avro\n",
               "t.yaml:2: kafka.change_format: must be one of json, msgpack");
    expect_err("log:\n  level: verbose\n",
               "t.yaml:2: log.level: must be one of debug, info, warn, error");
    expect_err("kafka:\n  properties: [a]\n",
               "t.yaml:2: kafka.properties: must be a mapping of librdkafka properties, found a "
               "list");
    expect_err("kafka:\n  properties:\n    linger.ms: {a: 1}\n",
               "t.yaml:3: kafka.properties.linger.ms: expected a single value, found a mapping");
    {
        char y[600] = "kafka:\n  properties:\n    ";
        memset(y + strlen(y), 'x', 256);
        strcat(y, ": 1\n");
        expect_err(y, "t.yaml:3: kafka.properties: property name longer than 255 bytes");
    }
    expect_err("kafka:\n  brokers: \"a\\0b\"\n",
               "t.yaml:2: kafka.brokers: must not contain NUL characters");
}

Test(config, error_ranges)
{
    expect_err("\n\n\n\n\n\nclusters:\n  k: 33\n",
               "t.yaml:8: clusters.k: must be an integer between 1 and 32");
    expect_err("clusters:\n  k: 0\n", "t.yaml:2: clusters.k: must be an integer between 1 and 32");
    expect_err("clusters:\n  k: 99999999999999999999999999\n",
               "t.yaml:2: clusters.k: must be an integer between 1 and 32");
    expect_err("input:\n  max_event_bytes: 63\n",
               "t.yaml:2: input.max_event_bytes: must be an integer between 64 and 16777216");
    expect_err("clusters:\n  hysteresis: 1\n",
               "t.yaml:2: clusters.hysteresis: must be a number >= 0 and < 1");
    expect_err("clusters:\n  learning_rate_floor: 1.5\n",
               "t.yaml:2: clusters.learning_rate_floor: must be a number >= 0 and <= 1");
    expect_err("clusters:\n  seed: -1\n",
               "t.yaml:2: clusters.seed: must be an integer between 0 and 18446744073709551615");
    expect_err("clusters:\n  dying_window: 10\n",
               "t.yaml:2: clusters.dying_window: must be an integer between 100 and "
               "1000000000000");
    expect_err("features:\n  session_gap: 0s\n",
               "t.yaml:2: features.session_gap: must be a duration between 1ms and 36500d (e.g. "
               "250ms, 30s, 5m, 2h, 30d)");
    expect_err("features:\n  half_life: {activity: -3d}\n",
               "t.yaml:2: features.half_life.activity: must be a duration between 1ms and 36500d "
               "(e.g. 250ms, 30s, 5m, 2h, 30d)");
    expect_err("input:\n  max_future_skew: 36501d\n",
               "t.yaml:2: input.max_future_skew: must be a duration between 0s and 36500d (e.g. "
               "250ms, 30s, 5m, 2h, 30d)");
    expect_err("lifecycle:\n  at_risk: 30d\n  lapsed: 20d\n",
               "t.yaml:3: lifecycle.lapsed: must be longer than lifecycle.at_risk (20d > 30d is "
               "false)");
    expect_err("lifecycle:\n  at_risk: 90d\n",
               "t.yaml:2: lifecycle.at_risk: must be shorter than lifecycle.lapsed (90d < 60d is "
               "false)");
    expect_err("clusters:\n  k: 10\n  warmup: 5\n",
               "t.yaml:3: clusters.warmup: must be between clusters.k and 1000000");
    expect_err("clusters:\n  k: 32\n  dying_share: 0.05\n",
               "t.yaml:3: clusters.dying_share: must be in [0, 1/k)");
    expect_err("lifecycle:\n  activity_types: [page_view, pageview]\n",
               "t.yaml:2: lifecycle.activity_types[1]: unknown event type 'pageview' (one of "
               "page_view, product_view, search, add_to_cart, remove_from_cart, checkout, "
               "purchase, email_open, email_click, session_start, other)");
}

/* kafka.brokers as librdkafka reads it, and regex topics compiled at load:
 * neither fails later at connect or subscribe without naming the key */
Test(config, brokers_and_topic_regexes_are_checked_at_load)
{
    expect_ok("kafka:\n  brokers: \"b1:9092, b2:9093,[::1]:9094,SSL://b3:9095\"\n  topics: "
              "[\"^ev(ents|s)[.].*\", plain]\n");
    cfg_free(&c);
    /* what librdkafka accepts loads, as replay of files reads the config too:
     * no port (9092), empty entries, blanks as separators, a URL's path */
    static const char *const ok[] = {
        "kafka",           "kafka:9092,",       ",kafka:9092,,b2",       "PLAINTEXT://kafka:9092/",
        "SSL://kafka/x/y", "a:1 b:2\tc",        "[fe80::1%eth0]",        "my_host-1.example.com",
        "[::1]/",          " kafka:9092 , b2 ", "sasl_ssl://[::1]:9093", "kafka:65535",
    };
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        setenv("SEGSTREAM_KAFKA_BROKERS", ok[i], 1);
        expect_ok("");
        cr_expect_str_eq(c.brokers, ok[i]);
        cfg_free(&c);
    }
    unsetenv("SEGSTREAM_KAFKA_BROKERS");
    expect_err("kafka:\n  brokers: \"not a broker list!!\"\n",
               "t.yaml:2: kafka.brokers: 'list!!' in 'not a broker list!!': invalid character '!' "
               "in host (letters, digits, '.', '-', '_', or [IPv6 address]) "
               "([PROTOCOL://]host[:port][,...])");
    expect_err("kafka:\n  brokers: \"b1:9092,b2:x\"\n",
               "t.yaml:2: kafka.brokers: 'b2:x' in 'b1:9092,b2:x': port 'x' is not a number "
               "between 1 and 65535 ([PROTOCOL://]host[:port][,...])");
    expect_err("kafka:\n  brokers: \"b1:0\"\n",
               "t.yaml:2: kafka.brokers: 'b1:0': port '0' is not a number between 1 and 65535 "
               "([PROTOCOL://]host[:port][,...])");
    expect_err("kafka:\n  brokers: \"b1:65536\"\n",
               "t.yaml:2: kafka.brokers: 'b1:65536': port '65536' is not a number between 1 and "
               "65535 ([PROTOCOL://]host[:port][,...])");
    expect_err("kafka:\n  brokers: \"b1:\"\n",
               "t.yaml:2: kafka.brokers: 'b1:': port '' is not a number between 1 and 65535 "
               "([PROTOCOL://]host[:port][,...])");
    expect_err("kafka:\n  brokers: \" , ,\"\n",
               "t.yaml:2: kafka.brokers: no broker in ' , ,' ([PROTOCOL://]host[:port][,...])");
    expect_err("kafka:\n  brokers: \":9092\"\n",
               "t.yaml:2: kafka.brokers: ':9092': missing host ([PROTOCOL://]host[:port][,...])");
    expect_err("kafka:\n  brokers: \"fe80::1\"\n",
               "t.yaml:2: kafka.brokers: 'fe80::1': more than one ':' (write IPv6 as "
               "[address]:port) ([PROTOCOL://]host[:port][,...])");
    expect_err("kafka:\n  brokers: \"[::1:9092\"\n",
               "t.yaml:2: kafka.brokers: '[::1:9092': missing ']' after an IPv6 address "
               "([PROTOCOL://]host[:port][,...])");
    expect_err("kafka:\n  brokers: \"://b1:1\"\n",
               "t.yaml:2: kafka.brokers: '://b1:1': missing protocol before '://' "
               "([PROTOCOL://]host[:port][,...])");
    expect_err("kafka:\n  brokers: \"user@b1:1\"\n",
               "t.yaml:2: kafka.brokers: 'user@b1:1': invalid character '@' in host (letters, "
               "digits, '.', '-', '_', or [IPv6 address]) ([PROTOCOL://]host[:port][,...])");
    expect_err("kafka:\n  topics:\n    - events\n    - \"^ev[ents\"\n",
               "t.yaml:4: kafka.topics[1]: invalid regular expression '^ev[ents': Unmatched [, "
               "[^, [:, [., or [=");
    setenv("SEGSTREAM_KAFKA_BROKERS", "kafka:x", 1);
    expect_err("", "env SEGSTREAM_KAFKA_BROKERS: 'kafka:x': port 'x' is not a number between 1 "
                   "and 65535 ([PROTOCOL://]host[:port][,...])");
    unsetenv("SEGSTREAM_KAFKA_BROKERS");
    setenv("SEGSTREAM_KAFKA_TOPICS", "events,^a(b", 1);
    expect_err("", "env SEGSTREAM_KAFKA_TOPICS: invalid regular expression '^a(b': Unmatched ( "
                   "or \\(");
}

Test(config, error_strings)
{
    expect_err("kafka:\n  brokers: \"\"\n", "t.yaml:2: kafka.brokers: must not be empty");
    expect_err("kafka:\n  topics: []\n", "t.yaml:2: kafka.topics: must list at least one topic");
    expect_err("kafka:\n  topics:\n    - ok\n    - \"bad topic\"\n",
               "t.yaml:4: kafka.topics[1]: invalid topic name 'bad topic' (letters, digits, '.', "
               "'_' and '-' only)");
    expect_err("kafka:\n  topics: [[a]]\n",
               "t.yaml:2: kafka.topics[0]: expected a single value, found a list");
    expect_err("kafka:\n  dlq_topic: \"^dlq\"\n",
               "t.yaml:2: kafka.dlq_topic: invalid topic name '^dlq' (letters, digits, '.', '_' "
               "and '-' only)");
    expect_err("redis:\n  url: http://localhost:6379\n",
               "t.yaml:2: redis.url: must be \"\" (in-memory store) or "
               "redis://[user:pass@]host[:port][/db]");
    expect_err("redis:\n  url: redis://localhost:0\n",
               "t.yaml:2: redis.url: port '0' is not a number between 1 and 65535 "
               "(redis://[user:pass@]host[:port][/db])");
    expect_err("redis:\n  url: redis://\n", "t.yaml:2: redis.url: missing host in host:port "
                                            "(redis://[user:pass@]host[:port][/db])");
    expect_err("redis:\n  url: redis://localhost:6379/x\n",
               "t.yaml:2: redis.url: database 'x' is not a number >= 0");
    expect_err("http:\n  listen: \"127.0.0.1:65536\"\n",
               "t.yaml:2: http.listen: port '65536' is not a number between 0 and 65535");
    expect_err("http:\n  listen: \":9464\"\n", "t.yaml:2: http.listen: missing host in host:port");
    expect_err("http:\n  listen: localhost\n", "t.yaml:2: http.listen: expected host:port");
}

Test(config, error_duplicates)
{
    expect_err("clusters:\n  k: 3\n  k: 4\n",
               "t.yaml:3: clusters.k: duplicate key (first at line 2)");
    expect_err("clusters: {k: 3}\nclusters: {k: 4}\n",
               "t.yaml:2: clusters: duplicate key (first at line 1)");
    expect_err("kafka:\n  properties:\n    a.b: 1\n    a.b: 2\n",
               "t.yaml:4: kafka.properties.a.b: duplicate key");
}

Test(config, error_rules)
{
    expect_err("rules:\n"
               "  - name: ok\n"
               "    all: [\"orders >= 1\"]\n"
               "  - name: typo\n"
               "    all:\n"
               "      - orders > 1\n"
               "      - monetery > 100\n",
               "t.yaml:7: rules[1].all[1]: unknown feature 'monetery' (traits compare with ==, != "
               "or in; traits.monetery for numbers)");
    expect_err("rules:\n  - name: a\n    any: [\"orders >>= 1\"]\n",
               "t.yaml:3: rules[0].any[0]: '>= 1' is not a number in 'orders >>= 1'");
    expect_err("rules:\n  - name: Big\n    all: [\"orders > 1\"]\n",
               "t.yaml:2: rules[0].name: 'Big' is not a valid rule name (1 to 63 of a-z, 0-9, "
               "'_', '-')");
    expect_err("rules:\n  - name: a\n    all: [\"orders > 1\"]\n  - name: a\n    all: [\"orders > "
               "2\"]\n",
               "t.yaml:4: rules[1].name: duplicate rule name 'a' (first at line 2)");
    expect_err("rules:\n  - all: [\"orders > 1\"]\n", "t.yaml:2: rules[0]: missing `name`");
    expect_err("rules:\n  - name: lifecycle\n    all: [\"orders > 1\"]\n",
               "t.yaml:2: rules[0].name: 'lifecycle' is reserved (its change ids could be "
               "another customer's lifecycle change ids)");
    expect_err("rules:\n  - name: a\n", "t.yaml:2: rules[0]: needs `all` or `any` (a list of "
                                        "conditions)");
    expect_err("rules:\n  - name: a\n    all: [\"orders > 1\"]\n    any: [\"orders > 2\"]\n",
               "t.yaml:4: rules[0].any: a rule has exactly one of `all` and `any`");
    expect_err("rules:\n  - name: a\n    all: []\n",
               "t.yaml:3: rules[0].all: must list at least one condition");
    expect_err("rules:\n  - name: a\n    all: \"orders > 1\"\n",
               "t.yaml:3: rules[0].all: must be a list of conditions, found a value");
    expect_err("rules:\n  - name: a\n    all:\n", "t.yaml:3: rules[0].all: must be a list of "
                                                  "conditions, found nothing");
    expect_err("rules:\n  - name: a\n    all: [\"\"]\n", "t.yaml:3: rules[0].all[0]: empty "
                                                         "condition");
    expect_err("rules: {name: a}\n", "t.yaml:1: rules: must be a list of rules, found a mapping");
    expect_err("rules:\n  - just a string\n",
               "t.yaml:2: rules[0]: must be a mapping with `name` and `all` or `any`, found a "
               "value");
}

Test(config, error_too_many_rules)
{
    char y[16384] = "rules:\n";
    for (int i = 0; i <= SEG_RULES_MAX; i++)
        snprintf(y + strlen(y), sizeof y - strlen(y), "  - {name: r%d, all: [\"orders > %d\"]}\n",
                 i, i);
    expect_err(y, "t.yaml:2: rules: at most 64 rules");
}

Test(config, error_yaml_syntax)
{
    expect_err("kafka:\n  brokers: [a\n",
               "t.yaml:3: did not find expected ',' or ']' (while parsing a flow sequence at line "
               "2)");
    expect_err("kafka:\n  brokers: a\n bad: b\n",
               "t.yaml:3: did not find expected key (while parsing a block mapping at line 1)");
    expect_err("kafka: brokers: x\n", "t.yaml:1: mapping values are not allowed in this context");
    expect_err("a: *nope\n", "t.yaml:1: found undefined alias");
    expect_err("kafka: {}\n---\nlog: {}\n", "t.yaml:2: only one YAML document is allowed");
    expect_err("log:\n  level: \"\xff\"\n", "t.yaml:2: invalid leading UTF-8 octet");
    expect_err("\tkafka: {}\n",
               "t.yaml:1: found character that cannot start any token (a tab: YAML indents with "
               "spaces) (while scanning for the next token)");
    expect_err("clusters:\n\tk: 6\n",
               "t.yaml:2: found character that cannot start any token (a tab: YAML indents with "
               "spaces) (while scanning for the next token)");
    /* another character that cannot start a token gets no such hint */
    expect_err("clusters:\n  @k: 6\n",
               "t.yaml:2: found character that cannot start any token (while scanning for the "
               "next token)");
    /* libyaml's mark counts characters: multi-byte ones before the tab (a
     * comment in French, a dash, a BOM, CRLF, U+2028 and U+0085 line
     * breaks, a name in a rule) do not hide it */
    const char *const tab[][2] = {
        {"# caf\xc3\xa9 \xe2\x80\x94\nkafka:\n\tbrokers: a:1\n", "3"},
        {"\xef\xbb\xbf# \xc3\xa9\xc3\xa9\r\nkafka:\r\n  \tbrokers: a:1\r\n", "3"},
        {"# a\xe2\x80\xa8# b\xc2\x85# \xc3\xa9\r# d\nkafka:\n\tbrokers: a:1\n", "6"},
        {"rules:\n  - name: \"\xc3\xa9\xc3\xa9\xc3\xa9\"\n    \twhen: x\n", "3"},
    };
    for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++) {
        char want[200];
        snprintf(want, sizeof want,
                 "t.yaml:%s: found character that cannot start any token (a tab: YAML indents "
                 "with spaces) (while scanning for the next token)",
                 tab[i][1]);
        expect_err(tab[i][0], want);
    }
    expect_err("# \xc3\xa9\xc3\xa9\nclusters:\n  @k: 6\n",
               "t.yaml:3: found character that cannot start any token (while scanning for the "
               "next token)");
}

Test(config, error_missing_file)
{
    cr_expect_eq(cfg_load(&c, "/nonexistent/seg.yaml", err, sizeof err), -1);
    cr_expect_str_eq(err, "/nonexistent/seg.yaml: cannot open: No such file or directory");
    cfg_free(&c);
    cr_expect_eq(cfg_load(&c, "/", err, sizeof err), -1);
    cr_expect_str_eq(err, "/: cannot read: Is a directory");
    cfg_free(&c);
}

Test(config, error_in_a_file_names_it)
{
    char path[] = "/tmp/segcfg-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    const char *y = "kafka:\n  group_id: g\nclusters:\n  k: 64\n";
    cr_assert_eq(write(fd, y, strlen(y)), (ssize_t)strlen(y));
    close(fd);
    cr_expect_eq(cfg_load(&c, path, err, sizeof err), -1);
    char want[256];
    snprintf(want, sizeof want, "%s:4: clusters.k: must be an integer between 1 and 32", path);
    cr_expect_str_eq(err, want);
    cfg_free(&c);
    unlink(path);
}

Test(config, small_or_no_error_buffer)
{
    char small[12];
    cr_expect_eq(cfg_load_string(&c, "clusters: {k: 99}", 17, "t.yaml", small, sizeof small), -1);
    cr_expect_str_eq(small, "t.yaml:1: c");
    cfg_free(&c);
    cr_expect_eq(cfg_load_string(&c, "clusters: {k: 99}", 17, "t.yaml", NULL, 0), -1);
    cfg_free(&c);
}

Test(config, free_is_safe_after_failure_and_twice)
{
    cr_expect_eq(load("kafka: {topics: [a, b]}\nrules:\n  - name: a\n    all: [\"x >\"]\n"), -1);
    cfg_free(&c);
    cfg_free(&c);
    cfg_t z;
    memset(&z, 0, sizeof z);
    cfg_free(&z);
    cfg_free(NULL);
}

/* ---------- helpers ---------- */

Test(config, hostport_and_redis_url)
{
    char host[64], why[128];
    int port;
    cr_expect_eq(cfg_split_hostport("127.0.0.1:9464", host, sizeof host, &port, why, sizeof why),
                 0);
    cr_expect_str_eq(host, "127.0.0.1");
    cr_expect_eq(port, 9464);
    cr_expect_eq(cfg_split_hostport("[::1]:80", host, sizeof host, &port, why, sizeof why), 0);
    cr_expect_str_eq(host, "::1");
    cr_expect_eq(port, 80);
    cr_expect_eq(cfg_split_hostport("::1:80", host, sizeof host, &port, why, sizeof why), -1);
    cr_expect_str_eq(why, "expected host:port (write IPv6 as [addr]:port)");
    cr_expect_eq(cfg_split_hostport("h:", host, sizeof host, &port, NULL, 0), -1);

    cfg_redis_url_t u;
    cr_expect_eq(cfg_parse_redis_url("redis://u:p@h:6380/3", &u, why, sizeof why), 0);
    cr_expect_str_eq(u.user, "u");
    cr_expect_str_eq(u.pass, "p");
    cr_expect_str_eq(u.host, "h");
    cr_expect_eq(u.port, 6380);
    cr_expect_eq(u.db, 3);
    cr_expect_eq(cfg_parse_redis_url("redis://:secret@[::1]:6379", &u, why, sizeof why), 0);
    cr_expect_str_eq(u.user, "");
    cr_expect_str_eq(u.pass, "secret");
    cr_expect_str_eq(u.host, "::1");
    cr_expect_eq(u.db, 0);
    cr_expect_eq(cfg_parse_redis_url("redis://h:1/", &u, why, sizeof why), 0);
    cr_expect_eq(cfg_parse_redis_url("rediss://h:1", &u, why, sizeof why), -1);
}

/* A password with '/' (an Azure Cache key or any base64 secret) or '@' can
 * only be written percent-encoded, as URLs write userinfo (RFC 3986) and as
 * Redis clients read redis:// URLs; an invalid escape is kept as written. */
Test(config, redis_url_userinfo_is_percent_decoded)
{
    char why[256];
    cfg_redis_url_t u;
    cr_assert_eq(
        cfg_parse_redis_url("redis://app%40eu:a%2Fb%2B%3D%25@h:6379/2", &u, why, sizeof why), 0,
        "%s", why);
    cr_expect_str_eq(u.user, "app@eu");
    cr_expect_str_eq(u.pass, "a/b+=%");
    cr_expect_str_eq(u.host, "h");
    cr_expect_eq(u.db, 2);
    cr_assert_eq(cfg_parse_redis_url("redis://:100%zz%4@h:1", &u, why, sizeof why), 0, "%s", why);
    cr_expect_str_eq(u.pass, "100%zz%4");
}

/* A URL without a port names Redis's own, as redis-cli -u takes it. */
Test(config, redis_url_port_defaults_to_6379)
{
    char why[256];
    cfg_redis_url_t u;
    static const struct {
        const char *url, *host;
        int port, db;
    } ok[] = {{"redis://localhost", "localhost", 6379, 0},
              {"redis://:pw@cache.local/3", "cache.local", 6379, 3},
              {"redis://[::1]", "::1", 6379, 0},
              {"redis://[::1]:7000/1", "::1", 7000, 1}};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        cr_assert_eq(cfg_parse_redis_url(ok[i].url, &u, why, sizeof why), 0, "%s: %s", ok[i].url,
                     why);
        cr_expect_str_eq(u.host, ok[i].host, "%s", ok[i].url);
        cr_expect_eq(u.port, ok[i].port, "%s", ok[i].url);
        cr_expect_eq(u.db, ok[i].db, "%s", ok[i].url);
    }
    cr_expect_eq(cfg_parse_redis_url("redis://localhost:", &u, why, sizeof why), -1);
    cr_expect_eq(cfg_parse_redis_url("redis://[::1", &u, why, sizeof why), -1);
}

/* ---------- dump ---------- */

static const char *full_yaml =
    "kafka:\n"
    "  brokers: \"b1:9092\"\n"
    "  topics: [clickstream, \"^ga4-.*\"]\n"
    "  group_id: \"weird \\\"group\\\" \\\\ \\t name\"\n"
    "  change_format: msgpack\n"
    "  properties: {queued.min.messages: 1000000, \"client.id\": \"a: b # c\"}\n"
    "input: {max_event_bytes: 100000, max_future_skew: 1500ms}\n"
    "watermark: {allowed_lateness: 2m, idle_timeout: 1h, idle_advance: no}\n"
    "redis: {url: \"redis://h:1/2\", prefix: \"t'1:\"}\n"
    "http: {listen: \"[::1]:0\"}\n"
    "log: {level: error}\n"
    "features: {half_life: {activity: 1.5d, purchase: 0.1d, affinity: 1234567ms}, session_gap: "
    "20m}\n"
    "lifecycle: {new: 1d, at_risk: 10d, lapsed: 11d, reactivated: 1h, activity_types: [purchase, "
    "other]}\n"
    "clusters: {k: 3, warmup: 300, min_events: 2, hysteresis: 0.1, learning_rate_floor: "
    "0.333333333333, "
    "dying_share: 0.1, dying_window: 12345, seed: 18446744073709551615}\n"
    "rules:\n"
    "  - {name: a, all: [\"country in [GB, IE]\", \"monetary > 200\"]}\n"
    "  - {name: b-2, any: [\"orders >= 5\", 'traits.age == \"18-24\"']}\n";

static void expect_same(const cfg_t *a, const cfg_t *b)
{
    cr_expect_str_eq(a->brokers, b->brokers);
    cr_assert_eq(a->n_topics, b->n_topics);
    for (int i = 0; i < a->n_topics; i++) cr_expect_str_eq(a->topics[i], b->topics[i]);
    cr_expect_str_eq(a->group_id, b->group_id);
    cr_expect_str_eq(a->changes_topic, b->changes_topic);
    cr_expect_str_eq(a->dlq_topic, b->dlq_topic);
    cr_expect_str_eq(a->change_format, b->change_format);
    cr_assert_eq(a->n_kafka_props, b->n_kafka_props);
    for (int i = 0; i < a->n_kafka_props; i++) {
        cr_expect_str_eq(a->kafka_props[i].key, b->kafka_props[i].key);
        cr_expect_str_eq(a->kafka_props[i].val, b->kafka_props[i].val);
    }
    cr_expect_eq(a->max_event_bytes, b->max_event_bytes);
    cr_expect_eq(a->max_future_skew_ms, b->max_future_skew_ms);
    cr_expect_eq(a->allowed_lateness_ms, b->allowed_lateness_ms);
    cr_expect_eq(a->idle_timeout_ms, b->idle_timeout_ms);
    cr_expect_eq(a->idle_advance, b->idle_advance);
    cr_expect_str_eq(a->redis_url, b->redis_url);
    cr_expect_str_eq(a->redis_prefix, b->redis_prefix);
    cr_expect_str_eq(a->http_listen, b->http_listen);
    cr_expect_str_eq(a->log_level, b->log_level);
    cr_expect_eq(a->seg.half_life_activity_days, b->seg.half_life_activity_days);
    cr_expect_eq(a->seg.half_life_purchase_days, b->seg.half_life_purchase_days);
    cr_expect_eq(a->seg.half_life_affinity_days, b->seg.half_life_affinity_days);
    cr_expect_eq(a->seg.session_gap_ms, b->seg.session_gap_ms);
    cr_expect_eq(a->seg.new_ms, b->seg.new_ms);
    cr_expect_eq(a->seg.at_risk_ms, b->seg.at_risk_ms);
    cr_expect_eq(a->seg.lapsed_ms, b->seg.lapsed_ms);
    cr_expect_eq(a->seg.reactivated_ms, b->seg.reactivated_ms);
    cr_expect_eq(a->seg.activity_mask, b->seg.activity_mask);
    cr_expect_eq(a->seg.k, b->seg.k);
    cr_expect_eq(a->seg.warmup, b->seg.warmup);
    cr_expect_eq(a->seg.min_events, b->seg.min_events);
    cr_expect_eq(a->seg.hysteresis, b->seg.hysteresis);
    cr_expect_eq(a->seg.lr_floor, b->seg.lr_floor);
    cr_expect_eq(a->seg.dying_share, b->seg.dying_share);
    cr_expect_eq(a->seg.dying_window, b->seg.dying_window);
    cr_expect_eq(a->seg.seed, b->seg.seed);
    cr_assert_eq(a->n_rules, b->n_rules);
    cr_expect_eq(seg_rules_count(a->seg.rules), seg_rules_count(b->seg.rules));
    for (int i = 0; i < a->n_rules; i++) {
        cr_expect_str_eq(a->rules[i].name, b->rules[i].name);
        cr_expect_eq(a->rules[i].any, b->rules[i].any);
        cr_assert_eq(a->rules[i].n_conds, b->rules[i].n_conds);
        for (int j = 0; j < a->rules[i].n_conds; j++)
            cr_expect_str_eq(a->rules[i].conds[j], b->rules[i].conds[j]);
    }
}

static void round_trip(const char *yaml)
{
    static char buf[65536], buf2[65536];
    cfg_t d;
    expect_ok(yaml);
    int n = cfg_dump(&c, buf, sizeof buf);
    cr_assert(n > 0 && n < (int)sizeof buf);
    cr_assert_eq((size_t)n, strlen(buf));
    cr_assert_eq(cfg_load_string(&d, buf, (size_t)n, "dump", err, sizeof err), 0, "%s\n%s", err,
                 buf);
    expect_same(&c, &d);
    /* and the dump of the dump is the same text, but for the source line */
    int n2 = cfg_dump(&d, buf2, sizeof buf2);
    cr_assert(n2 > 0 && n2 < (int)sizeof buf2);
    cr_expect_str_eq(strchr(buf, '\n'), strchr(buf2, '\n'));
    cfg_free(&d);
    cfg_free(&c);
}

Test(config, dump_round_trip)
{
    round_trip("");
    round_trip(full_yaml);
}

Test(config, dump_round_trip_with_env)
{
    /* C0 and C1 controls, NEL, a BOM, U+FFFF and a 4-byte character */
    setenv("SEGSTREAM_KAFKA_PROPERTIES_SASL_PASSWORD",
           "p\"w\\d\x01\x7f\xc2\x81\xc2\x85\xef\xbb\xbf\xef\xbf\xbf\xf0\x9f\x98\x80", 1);
    setenv("SEGSTREAM_REDIS_PREFIX", "#x: [y]", 1);
    round_trip(full_yaml);
}

Test(config, dump_escapes_what_yaml_cannot_hold_raw)
{
    round_trip("kafka: {group_id: \"a\\x81\\u0085\\uFEFF\\uFFFE\\t\\x7f\\U0001F600 \\\\\", "
               "properties: {\"p\\u2028q\\u2029\": \"\\L\\P\\N\"}}\n");
    expect_ok("kafka: {group_id: \"a\\x81\\u0085\\t\"}\n");
    cr_expect_str_eq(c.group_id, "a\xc2\x81\xc2\x85\t");
    static char buf[65536];
    cfg_dump(&c, buf, sizeof buf);
    cr_expect(strstr(buf, "group_id: \"a\\x81\\x85\\x09\""), "%s", buf);
    cfg_free(&c);
}

Test(config, dump_text)
{
    static char buf[65536];
    expect_ok(
        "kafka: {properties: {linger.ms: 5}}\nrules:\n  - {name: a, any: [\"orders > 1\"]}\n");
    cfg_dump(&c, buf, sizeof buf);
    cr_expect(strstr(buf, "\nkafka:\n  brokers: \"127.0.0.1:9092\"  # "));
    cr_expect(strstr(buf, "\n  properties:  # librdkafka properties, passed through as strings\n"
                          "    \"linger.ms\": \"5\"\n"));
    cr_expect(strstr(buf, "\nfeatures:\n  half_life:\n    activity: 30d  # "));
    cr_expect(strstr(buf, "\n  activity_types: []  # "));
    cr_expect(
        strstr(buf, "\nrules:  # rule segments\n  - name: \"a\"\n    any: [\"orders > 1\"]\n"),
        "%s", buf);
    cfg_free(&c);
}

Test(config, dump_truncates_like_snprintf)
{
    static char full[65536];
    char small[64];
    cr_assert_eq(cfg_load(&c, NULL, err, sizeof err), 0);
    int n = cfg_dump(&c, full, sizeof full);
    cr_expect_eq(cfg_dump(&c, small, sizeof small), n);
    cr_expect_eq(strlen(small), sizeof small - 1);
    cr_expect_eq(strncmp(small, full, sizeof small - 1), 0);
    cr_expect_eq(cfg_dump(&c, NULL, 0), n);
    cfg_free(&c);
}

/* ---------- the example file ---------- */

Test(config, example_file_loads_and_holds_the_defaults)
{
    const char *path = SEG_SOURCE_DIR "/config/segstream.example.yaml";
    cr_assert_eq(cfg_load(&c, path, err, sizeof err), 0, "%s", err);
    cr_expect_str_eq(c.source, path);
    cr_assert_eq(c.n_rules, 4);
    cr_expect_eq(seg_rules_count(c.seg.rules), 4);
    cr_expect_str_eq(c.rules[0].conds[0], "country in [GB, IE]");
    cr_expect_str_eq(c.rules[1].conds[0], "cart_abandonment > 0.5");
    cr_expect_str_eq(c.rules[2].conds[0], "orders >= 5");
    cr_expect_str_eq(c.rules[3].conds[0], "monetary > 200");
    /* everything but the rules is the default */
    seg_params_clear(&c.seg);
    c.n_rules = 0; /* the rules array is freed below */
    cfg_rule_t *rules = c.rules;
    int n_rules = 4;
    c.rules = NULL;
    check_defaults(&c);
    c.rules = rules, c.n_rules = n_rules;
    cfg_free(&c);
}

Test(config, example_file_names_every_key)
{
    /* Every key the dump writes appears in the example file, so it stays
     * complete when a key is added. */
    static char buf[65536], ex[65536];
    FILE *f = fopen(SEG_SOURCE_DIR "/config/segstream.example.yaml", "r");
    cr_assert(f);
    size_t n = fread(ex, 1, sizeof ex - 1, f);
    ex[n] = 0;
    fclose(f);
    cr_assert_eq(cfg_load(&c, NULL, err, sizeof err), 0);
    cfg_dump(&c, buf, sizeof buf);
    for (char *line = strchr(buf, '\n'); line && line[1]; line = strchr(line + 1, '\n')) {
        char key[128];
        if (sscanf(line + 1, " %127[a-z_]:", key) != 1) continue;
        char pat[160];
        snprintf(pat, sizeof pat, " %s:", key);
        char pat0[160];
        snprintf(pat0, sizeof pat0, "\n%s:", key);
        cr_expect(strstr(ex, pat) || strstr(ex, pat0), "example file lacks '%s'", key);
    }
    cfg_free(&c);
}

/* An output topic that is an input would feed the daemon its own output;
 * two outputs on one topic would mix what each carries. */
Test(config, output_topics_are_not_inputs_nor_each_other)
{
    expect_err("kafka:\n  topics: [events, b]\n  changes_topic: b\n",
               "t.yaml:3: kafka.changes_topic: 'b' is also an input topic (kafka.topics 'b'): "
               "segstream would read its own output");
    /* the key the user wrote is the one named */
    expect_err("kafka:\n  topics: [segment-changes]\n",
               "t.yaml:2: kafka.topics: 'segment-changes' takes kafka.changes_topic "
               "'segment-changes' as input: segstream would read its own output");
    expect_err("kafka:\n  topics: [\"^seg.*\"]\n",
               "t.yaml:2: kafka.topics: '^seg.*' takes kafka.changes_topic 'segment-changes' as "
               "input: segstream would read its own output");
    expect_ok("kafka:\n  topics: [\"^ev.*\"]\n");
    cfg_free(&c);
    expect_err("kafka:\n  dlq_topic: segment-changes\n",
               "t.yaml:2: kafka.dlq_topic: 'segment-changes' is also kafka.changes_topic");
    expect_err("kafka:\n  changes_topic: segstream.dlq\n",
               "t.yaml:2: kafka.changes_topic: 'segstream.dlq' is also kafka.dlq_topic");
    expect_err("watermark:\n  control_topic: segstream.dlq\n",
               "t.yaml:2: watermark.control_topic: 'segstream.dlq' is also kafka.dlq_topic");
    setenv("SEGSTREAM_KAFKA_DLQ_TOPIC", "events", 1);
    expect_err("", "env SEGSTREAM_KAFKA_DLQ_TOPIC: 'events' is also an input topic (kafka.topics "
                   "'events'): segstream would read its own output");
    unsetenv("SEGSTREAM_KAFKA_DLQ_TOPIC");
    expect_ok("watermark:\n  control_topic: \"\"\nkafka:\n  changes_topic: out\n");
    cfg_free(&c);
}

/* redis.prefix fits the daemon's key buffers (prefix, a topic of up to 249
 * bytes, a partition): a longer one is refused at load, not cut in keys */
Test(config, a_redis_prefix_over_100_bytes_is_refused)
{
    char a[CFG_PREFIX_MAX + 2], y[300];
    memset(a, 'a', sizeof a - 1);
    a[sizeof a - 1] = 0;
    snprintf(y, sizeof y, "redis:\n  prefix: \"%.*s\"\n", CFG_PREFIX_MAX, a);
    expect_ok(y);
    cr_expect_eq(strlen(c.redis_prefix), (size_t)CFG_PREFIX_MAX);
    cfg_free(&c);
    snprintf(y, sizeof y, "redis:\n  prefix: \"%.*s\"\n", CFG_PREFIX_MAX + 1, a);
    expect_err(y, "t.yaml:2: redis.prefix: 101 bytes, over the 100 a prefix may have");
}
