/* tests/integration/test_redis.c: `segstream run` with its state in a real
 * redis-server (Debian's, started here on a free port; no mocks), fed by
 * kcat through `segstream broker`. Exactly-once state: a run SIGKILLed at
 * random moments while consuming, at least ten times, ends with the same
 * customers (lifecycle, rules, counts, revenue, times) and segment sizes as
 * a run without crashes, and repeats change events only with their
 * event_id; a Redis outage in the middle of a run changes nothing either,
 * and a checkpoint that reaches Redis late (after a takeover, or from a
 * connection given up) is aborted, not applied over newer state. */
#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <math.h>
#include <msgpack.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "harness.h"

#define PY "/usr/bin/python3 " SEG_SOURCE_DIR "/tests/integration/kafka_peer.py"

static const char *dir;
static char B[256];
static pid_t broker = -1, redis = -1;
static int rport;

/* Consumer properties added to every config written (the assignment
 * strategy of the cooperative test); reset at each test's start. */
static const char *props = "";
/* watermark.idle_timeout and idle_advance of every config written; reset
 * at each test's start */
static const char *idle = "1s", *idle_adv = "false";
/* a kafka.topics line of every config written ("" : the default topic);
 * reset at each test's start */
static const char *topics = "";

static void setup(void)
{
    dir = h_tmpdir();
    cr_assert_not_null(dir);
    props = "";
    idle = "1s";
    idle_adv = "false";
    topics = "";
}

static void teardown(void)
{
    if (broker > 0) h_stop(broker, SIGTERM, 10);
    if (redis > 0) h_stop(redis, SIGTERM, 10);
    broker = redis = -1;
    h_stop_spawned(); /* what a failed test left running */
    if (!getenv("SEG_TEST_KEEP")) h_run("rm -rf '%s'", dir);
}

TestSuite(redis, .init = setup, .fini = teardown, .timeout = 1200);

static void need_tools(void)
{
    if (h_run("command -v redis-server >/dev/null && command -v kcat >/dev/null && "
              "/usr/bin/python3 -c 'import kafka, lz4' 2>/dev/null") != 0)
        cr_skip_test("redis-server, kcat or python3-kafka missing: run scripts/install-deps.sh");
}

static void start(int partitions, int appendonly)
{
    broker =
        h_broker(dir, partitions, "events,changes-clean,changes-crash,segstream.dlq", B, sizeof(B));
    cr_assert_gt(broker, 0);
    rport = h_free_port();
    redis = h_redis(dir, rport, appendonly);
    cr_assert_gt(redis, 0, "redis-server did not start");
}

static void write_cfg(const char *name, const char *group, const char *prefix, const char *changes)
{
    char path[600];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fprintf(f,
            "kafka:\n  brokers: \"%s\"\n  group_id: %s\n  changes_topic: %s\n%s"
            "  properties:\n    session.timeout.ms: \"6000\"\n%s"
            "redis:\n  url: \"redis://127.0.0.1:%d\"\n  prefix: \"%s\"\n"
            "watermark:\n  idle_timeout: %s\n  idle_advance: %s\n"
            "http:\n  listen: \"127.0.0.1:0\"\n" H_EXAMPLE_RULES,
            B, group, changes, topics, props, rport, prefix, idle, idle_adv);
    fclose(f);
}

/* Lines [from, to) of ev.jsonl, keyed for kcat, to the events topic; lz4,
 * so that the embedded broker, which keeps each partition's newest 5 MiB,
 * still has all of them when the clean run reads them later. */
static int64_t produce_lines(long from, long to)
{
    cr_assert_eq(h_run("sed -n '%ld,%ldp' %s/ev.jsonl | sed 's/^{\"customer_id\":\"\\([^\"]*\\)\"/"
                       "\\1\\t&/' > %s/slice.keyed && kcat -P -X enable.idempotence=true -z lz4 "
                       "-b %s -t events -K '\\t' -l %s/slice.keyed",
                       from + 1, to, dir, dir, B, dir),
                 0);
    return 0;
}

static pid_t start_run(const char *cfg, const char *log, int *port)
{
    char lp[600];
    snprintf(lp, sizeof(lp), "%s/%s", dir, log);
    h_run("rm -f %s", lp);
    pid_t pid = h_spawn(NULL, lp, "%s run -c %s/%s", SEG_BIN, dir, cfg);
    cr_assert_gt(pid, 0);
    *port = h_daemon_port(lp, 20);
    cr_assert_gt(*port, 0, "segstream run did not start (see %s)", lp);
    return pid;
}

static double metric(int port, const char *series)
{
    char *b = h_http_get(port, "/metrics", NULL);
    if (!b) return NAN;
    double v = h_metric(b, series);
    free(b);
    return v;
}

static redisContext *rc_connect(void)
{
    redisContext *c = redisConnect("127.0.0.1", rport);
    cr_assert(c && !c->err, "cannot reach redis-server");
    return c;
}

/* Sum of the next offsets a prefix's checkpoints hold. */
static long offsets_sum(const char *prefix)
{
    redisContext *c = redisConnect("127.0.0.1", rport);
    if (!c || c->err) {
        if (c) redisFree(c);
        return -1;
    }
    redisReply *r = redisCommand(c, "HGETALL %soffsets", prefix);
    long sum = 0; /* TOPIC:PARTITION fields; TOPIC:PARTITION:hi and :w are event times */
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements; i += 2) {
        const char *f = r->element[i]->str;
        size_t fl = strlen(f);
        if ((fl > 3 && strcmp(f + fl - 3, ":hi") == 0) || (fl > 2 && strcmp(f + fl - 2, ":w") == 0))
            continue;
        sum += strtol(r->element[i + 1]->str, NULL, 10);
    }
    if (r) freeReplyObject(r);
    redisFree(c);
    return sum;
}

/* Waits (at most 60 s) until the customers a process saw before the model
 * was seeded have their cluster, when there is a seeded model: a process
 * assigns those it did not see itself (another process's, or its own before
 * a restart) by sweeping Redis's unassigned sets every 2 s, so a run that
 * stops as soon as its records are checkpointed can stop before the sweep. */
static void wait_assigned(const char *prefix)
{
    redisContext *c = rc_connect();
    for (int i = 0; i < 300; i++) {
        redisReply *v = redisCommand(c, "GET %smodel:version", prefix);
        int seeded = v && v->type == REDIS_REPLY_STRING && strtoll(v->str, NULL, 10) > 0;
        if (v) freeReplyObject(v);
        if (!seeded) break;
        long left = 0;
        char cursor[32] = "0";
        do {
            redisReply *r =
                redisCommand(c, "SCAN %s MATCH %sunassigned:* COUNT 1000", cursor, prefix);
            cr_assert(r && r->type == REDIS_REPLY_ARRAY && r->elements == 2);
            snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
            for (size_t j = 0; j < r->element[1]->elements; j++) {
                redisReply *n = redisCommand(c, "SCARD %s", r->element[1]->element[j]->str);
                if (n && n->type == REDIS_REPLY_INTEGER) left += n->integer;
                if (n) freeReplyObject(n);
            }
            freeReplyObject(r);
        } while (strcmp(cursor, "0") != 0);
        if (left == 0) break;
        h_sleep(0.2);
    }
    redisFree(c);
}

/* Waits until the checkpoints under prefix hold n records. */
static void wait_checkpointed(const char *prefix, long n)
{
    long got = -1;
    for (int i = 0; i < 900 && got != n; i++) {
        got = offsets_sum(prefix);
        if (got != n) h_sleep(0.2);
    }
    if (got != n) { /* what the processes said, kept in the test's output */
        fprintf(stderr, "%s checkpoints hold %ld of %ld records; the broker is %s\n", prefix, got,
                n, broker > 0 && h_alive(broker) ? "alive" : "gone");
        h_run("for f in %s/broker.err %s/*.log; do echo \"== $f\"; tail -n 15 \"$f\"; done >&2",
              dir, dir);
    }
    cr_assert_eq(got, n, "%s checkpoints hold %ld of %ld records", prefix, got, n);
}

/* Waits until a run holds every record in a checkpoint and W reached the
 * last event; then SIGTERM, which must end in exit 0. */
static void finish(pid_t pid, int port, const char *prefix, long n, int64_t max_ts)
{
    wait_checkpointed(prefix, n);
    wait_assigned(prefix);
    double w = h_wait_metric(port, "segstream_watermark_ms", (double)max_ts, 0, 60);
    cr_assert_eq(w, (double)max_ts);
    cr_assert_eq(h_wait_metric(port, "segstream_producer_queue", 0, 0, 60), 0);
    cr_assert_eq(h_stop(pid, SIGTERM, 60), 0, "SIGTERM writes the last checkpoint and exits 0");
}

static const char *h_path(const char *name)
{
    return h_join(dir, name);
}

/* The run's log `name` says `needle`. */
static void log_says(const char *name, const char *needle)
{
    char *log = h_slurp(h_path(name), NULL);
    cr_assert(log && strstr(log, needle), "%s has no \"%s\": %s", name, needle, log ? log : "");
    free(log);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The state a personalization engine reads, one sorted line per customer
 * (cluster ids may differ between runs: partitions interleave differently
 * and the model learns in that order; every customer must have one), and
 * the segment sizes but the cluster ones, whose total must equal. */
/* every customer hash under prefix: each(key after the prefix, the HMGET
 * reply of fields, ud) */
static void scan_customers(redisContext *c, const char *prefix, const char *fields,
                           void (*each)(const char *key, const redisReply *h, void *ud), void *ud)
{
    /* HMGET key field...: the fields as arguments of their own */
    char fl[256], *argv[16] = {"HMGET", NULL};
    int argc = 2;
    snprintf(fl, sizeof(fl), "%s", fields);
    for (char *t = strtok(fl, " "); t && argc < 16; t = strtok(NULL, " ")) argv[argc++] = t;
    char cursor[32] = "0";
    do {
        redisReply *r = redisCommand(c, "SCAN %s MATCH %sc:* COUNT 1000", cursor, prefix);
        cr_assert(r && r->type == REDIS_REPLY_ARRAY && r->elements == 2);
        snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
        redisReply *keys = r->element[1];
        for (size_t i = 0; i < keys->elements; i++) {
            argv[1] = keys->element[i]->str;
            redisAppendCommandArgv(c, argc, (const char **)argv, NULL);
        }
        for (size_t i = 0; i < keys->elements; i++) {
            redisReply *h;
            cr_assert_eq(redisGetReply(c, (void **)&h), REDIS_OK);
            cr_assert(h->type == REDIS_REPLY_ARRAY);
            each(keys->element[i]->str + strlen(prefix), h, ud);
            freeReplyObject(h);
        }
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0);
}

typedef struct {
    char **lines;
    size_t n, cap;
} lines_t;

static void dump_line(const char *key, const redisReply *h, void *ud)
{
    lines_t *l = ud;
    char line[1024];
    int len = snprintf(line, sizeof(line), "%s", key);
    for (size_t j = 0; j < h->elements; j++) {
        const char *v = h->element[j]->type == REDIS_REPLY_STRING ? h->element[j]->str : "-";
        if (j == 7) v = atoi(v) >= 0 && *v != '-' ? "clustered" : "unclustered";
        len += snprintf(line + len, sizeof(line) - (size_t)len, " %s", v);
    }
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 1 << 14;
        l->lines = realloc(l->lines, l->cap * sizeof(*l->lines));
    }
    l->lines[l->n++] = strdup(line);
}

static void dump(const char *prefix, const char *out)
{
    redisContext *c = rc_connect();
    char path[600];
    snprintf(path, sizeof(path), "%s/%s", dir, out);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    lines_t l = {0};
    scan_customers(c, prefix, "lifecycle rules events orders revenue first_seen last_seen cluster",
                   dump_line, &l);
    char **lines = l.lines;
    size_t n = l.n;
    qsort(lines, n, sizeof(*lines), cmp_str);
    for (size_t i = 0; i < n; i++) {
        fprintf(f, "%s\n", lines[i]);
        free(lines[i]);
    }
    free(lines);
    redisReply *r = redisCommand(c, "HGETALL %ssizes", prefix);
    cr_assert(r && r->type == REDIS_REPLY_ARRAY);
    long clusters = 0;
    char **sz = calloc(r->elements / 2 + 1, sizeof(*sz));
    size_t ns = 0;
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        if (strncmp(r->element[i]->str, "cluster:", 8) == 0) {
            clusters += strtol(r->element[i + 1]->str, NULL, 10);
            continue;
        }
        char line[256];
        snprintf(line, sizeof(line), "size %s %s", r->element[i]->str, r->element[i + 1]->str);
        sz[ns++] = strdup(line);
    }
    qsort(sz, ns, sizeof(*sz), cmp_str);
    for (size_t i = 0; i < ns; i++) {
        fprintf(f, "%s\n", sz[i]);
        free(sz[i]);
    }
    free(sz);
    fprintf(f, "size clusters-total %ld\n", clusters);
    freeReplyObject(r);
    fclose(f);
    redisFree(c);
}

/* Every lifecycle and rule change of the clean run is in the other run's
 * output, and a repeated event_id always carries the same change. */
static void compare_changes(long *repeats)
{
    cr_assert_eq(h_run(PY " consume --brokers %s --topic changes-clean --out %s/clean.dump "
                          "--idle 8 > /dev/null",
                       B, dir),
                 0);
    cr_assert_eq(h_run(PY " consume --brokers %s --topic changes-crash --out %s/crash.dump "
                          "--idle 8 > /dev/null",
                       B, dir),
                 0);
    cr_assert_eq(h_run(PY " exactly %s/clean.dump %s/crash.dump > %s/exactly.txt", dir, dir, dir),
                 0);
    char path[600];
    snprintf(path, sizeof(path), "%s/exactly.txt", dir);
    char *r = h_slurp(path, NULL);
    cr_assert_not_null(r);
    fprintf(stderr, "changes: %s", r);
    cr_expect_gt(h_field(r, "clean"), 1000);
    cr_expect_eq(h_field(r, "missing"), 0, "lifecycle/rule changes of the clean run missing: %s",
                 r);
    cr_expect_eq(h_field(r, "conflicting_ids"), 0, "an event_id repeated with another change: %s",
                 r);
    *repeats = h_field(r, "repeats");
    free(r);
}

/* A consumer of the crash run's changes that drops repeated event_ids and
 * keeps each customer's latest lifecycle and cluster ends where Redis does
 * (compare_changes() consumed them): lifecycle changes are decided again
 * the same way after a crash; a cluster change is published only once the
 * checkpoint that holds it has landed (its outbox), so none that a crash
 * undid is out (1 or 2 of 10 000 customers were, before). */
static void latest_line(const char *key, const redisReply *h, void *ud)
{
    cr_assert(h->elements == 2 && h->element[0]->type == REDIS_REPLY_STRING &&
              h->element[1]->type == REDIS_REPLY_STRING);
    fprintf(ud, "%s %s %s\n", key + 2, h->element[0]->str, h->element[1]->str); /* after "c:" */
}

static void latest_changes_match_redis(const char *prefix)
{
    redisContext *c = rc_connect();
    char path[600];
    snprintf(path, sizeof(path), "%s/latest.state", dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    scan_customers(c, prefix, "lifecycle cluster", latest_line, f);
    fclose(f);
    redisFree(c);
    cr_assert_eq(h_run(PY " latest %s/crash.dump %s/latest.state > %s/latest.txt", dir, dir, dir),
                 0);
    snprintf(path, sizeof(path), "%s/latest.txt", dir);
    char *r = h_slurp(path, NULL);
    cr_assert_not_null(r);
    fprintf(stderr, "latest changes against Redis: %s", r);
    cr_expect_gt(h_field(r, "customers"), 1000);
    cr_expect_eq(h_field(r, "lifecycle_mismatch"), 0, "%s", r);
    cr_expect_eq(h_field(r, "cluster_mismatch"), 0, "%s", r);
    free(r);
}

/* A clean stop of the only process publishes its outbox, and trims it
 * once delivered: no PREFIX outbox:* list is left. */
static void no_outbox(const char *prefix)
{
    redisContext *c = rc_connect();
    redisReply *r = redisCommand(c, "KEYS %soutbox:*", prefix);
    cr_assert(r && r->type == REDIS_REPLY_ARRAY);
    cr_expect_eq(r->elements, 0, "%zu %soutbox:* lists left after a clean stop, %s first",
                 r->elements, prefix, r->elements ? r->element[0]->str : "");
    freeReplyObject(r);
    redisFree(c);
}

static void clean_run(long n, int64_t max_ts)
{
    write_cfg("clean.yaml", "g-clean", "clean:", "changes-clean");
    int port;
    pid_t pid = start_run("clean.yaml", "clean.log", &port);
    finish(pid, port, "clean:", n, max_ts);
    dump("clean:", "clean.state");
}

static void same_state(void)
{
    char a[600], b[600];
    snprintf(a, sizeof(a), "%s/clean.state", dir);
    snprintf(b, sizeof(b), "%s/crash.state", dir);
    long lines = h_count_lines(a);
    cr_assert_gt(lines, 1000);
    if (!h_same_file(a, b)) h_run("diff %s %s | head -20 >&2", a, b);
    cr_assert(h_same_file(a, b), "the final Redis state differs from the clean run's (%ld lines)",
              lines);
}

/* The crash run's state (prefix crash:) is the state of a clean run over
 * the same n records (max_ts: the newest event time). */
static void same_as_clean_run(long n, int64_t max_ts)
{
    dump("crash:", "crash.state");
    clean_run(n, max_ts);
    same_state();
}

/* name: crash.yaml for a process whose Redis is at port via (a relay); the
 * other processes and the checks use Redis directly. */
static void write_cfg_via(const char *name, int via)
{
    int real = rport;
    rport = via;
    write_cfg(name, "g-crash", "crash:", "changes-crash");
    rport = real;
}

static int64_t gen_events(int customers, int events, int seed)
{
    cr_assert_eq(h_run("%s gen --customers %d --events %d --seed %d --out %s/ev.jsonl", SEG_BIN,
                       customers, events, seed, dir),
                 0);
    char path[600];
    snprintf(path, sizeof(path), "%s/ev.jsonl", dir);
    size_t len;
    char *all = h_slurp(path, &len);
    cr_assert_not_null(all);
    int64_t max_ts = 0; /* gen writes in time order; take the largest anyway */
    /* a byte scan, not strstr from each match on: ASan's strstr measures the
     * whole rest of the text at every call, hours for 200 000 events */
    for (size_t i = 0; i + 5 <= len; i++) {
        if (all[i] != '"' || memcmp(all + i, "\"ts\":", 5) != 0) continue;
        int64_t t = strtoll(all + i + 5, NULL, 10);
        if (t > max_ts) max_ts = t;
    }
    free(all);
    cr_assert_gt(max_ts, 0);
    return max_ts;
}

/* The usual start: the broker (partitions each topic) and Redis, the
 * events generated, crash.yaml written. Returns the newest event time. */
static int64_t crash_setup(int partitions, int customers, int events, int seed)
{
    need_tools();
    start(partitions, 0);
    int64_t max_ts = gen_events(customers, events, seed);
    write_cfg("crash.yaml", "g-crash", "crash:", "changes-crash");
    return max_ts;
}

/* A script that produces lines [$1, $2) of ev.jsonl in chunks of 500
 * records, one kcat each, so that a run consumes them over a while ($3:
 * seconds to sleep between chunks, to make it longer; $4: a file whose
 * existence the last chunk waits for, so that records still come at every
 * step a slow machine takes before the test lets them end). */
static const char *producer_script(void)
{
    const char *script = h_path("produce.sh");
    FILE *sf = fopen(script, "w");
    cr_assert_not_null(sf);
    fprintf(sf,
            "s=$1; while [ $s -lt $2 ]; do e=$((s + 500)); [ $e -gt $2 ] && e=$2;\n"
            "  [ -n \"$4\" ] && [ $e -eq $2 ] && while [ ! -e \"$4\" ]; do sleep 0.1; done\n"
            "  sed -n \"$((s + 1)),${e}p\" %s/ev.jsonl |\n"
            "  sed 's/^{\"customer_id\":\"\\([^\"]*\\)\"/\\1\\t&/' |\n"
            "  kcat -P -X enable.idempotence=true -b %s -t events -K '\\t' || exit 1; s=$e;\n"
            "  [ -n \"$3\" ] && sleep $3; done; exit 0\n",
            dir, B);
    fclose(sf);
    return script;
}

Test(redis, sigkill_ten_times_while_consuming_changes_nothing)
{
    enum { CUSTOMERS = 10000, EVENTS = 200000, SLICES = 12 };
    int64_t max_ts = crash_setup(8, CUSTOMERS, EVENTS, 31);
    /* kills land while a run consumes its slice */
    const char *script = producer_script();
    srand(7);
    int mid = 0;
    for (int i = 0; i < SLICES; i++) {
        long from = (long)EVENTS * i / SLICES, to = (long)EVENTS * (i + 1) / SLICES;
        int port;
        pid_t pid = start_run("crash.yaml", "crash.log", &port);
        cr_assert_eq(h_wait_metric(port, "segstream_partitions_owned", 8, 0, 60), 8);
        pid_t prod = h_spawn(NULL, NULL, "sh %s %ld %ld", script, from, to);
        /* consuming, not joining: wait for its first records */
        double in = h_wait_metric(port, "segstream_events_in_total{topic=\"events\"}", 1, 1, 60);
        cr_assert_geq(in, 1, "run %d never consumed", i);
        h_sleep(0.2 + (double)(rand() % 1800) / 1000.0);
        double at = metric(port, "segstream_events_in_total{topic=\"events\"}");
        cr_assert_eq(h_stop(pid, SIGKILL, 10), 128 + SIGKILL);
        long held = offsets_sum("crash:");
        cr_assert_eq(h_stop(prod, 0, 120), 0, "producing slice %d failed", i);
        mid += held < to;
        fprintf(stderr,
                "kill %d: %.0f records applied by this process, checkpoints hold %ld of %ld "
                "produced so far\n",
                i + 1, at, held, to);
    }
    cr_expect_geq(mid, SLICES / 2, "most kills land while records wait (%d of %d)", mid, SLICES);
    int port;
    pid_t pid = start_run("crash.yaml", "crash.log", &port);
    finish(pid, port, "crash:", EVENTS, max_ts);
    no_outbox("crash:");
    same_as_clean_run(EVENTS, max_ts);
    no_outbox("clean:");
    long repeats;
    compare_changes(&repeats);
    latest_changes_match_redis("crash:");
    fprintf(stderr,
            "%d kills, %d before their slice was checkpointed; %ld change events repeated "
            "(same event_id)\n",
            SLICES, mid, repeats);
}

/* The entries of the outbox lists crash:outbox:events:0..partitions-1, as
 * kafka_peer.py holds' lines (event_id, key, instance) appended to
 * dir/name; returns how many. */
static long outbox_want(int partitions, const char *name)
{
    redisContext *c = rc_connect();
    FILE *f = fopen(h_path(name), "a");
    cr_assert_not_null(f);
    long n = 0;
    for (int p = 0; p < partitions; p++) {
        redisReply *r = redisCommand(c, "LRANGE crash:outbox:events:%d 0 -1", p);
        cr_assert(r && r->type == REDIS_REPLY_ARRAY);
        for (size_t i = 0; i < r->elements; i++, n++) {
            msgpack_unpacked u;
            msgpack_unpacked_init(&u);
            cr_assert_eq(msgpack_unpack_next(&u, r->element[i]->str, r->element[i]->len, NULL),
                         MSGPACK_UNPACK_SUCCESS);
            const msgpack_object *o = &u.data;
            cr_assert(o->type == MSGPACK_OBJECT_ARRAY && o->via.array.size == 4,
                      "an outbox entry is [key, instance, payload, cluster sequence]");
            const msgpack_object *e = o->via.array.ptr;
            cr_assert(e[0].type == MSGPACK_OBJECT_STR && e[1].type == MSGPACK_OBJECT_STR &&
                      e[2].type == MSGPACK_OBJECT_BIN &&
                      e[3].type == MSGPACK_OBJECT_POSITIVE_INTEGER && e[3].via.u64 > 0);
            char *v = strndup(e[2].via.bin.ptr, e[2].via.bin.size);
            const char *id = strstr(v, "\"event_id\":\"");
            cr_assert_not_null(id, "%s", v);
            id += 12;
            fprintf(f, "%.*s\t%.*s\t%.*s\n", (int)strcspn(id, "\""), id, (int)e[0].via.str.size,
                    e[0].via.str.ptr, (int)e[1].via.str.size, e[1].via.str.ptr);
            free(v);
            msgpack_unpacked_destroy(&u);
        }
        freeReplyObject(r);
    }
    fclose(f);
    redisFree(c);
    return n;
}

/* How many of the lists crash:outbox:events:0..partitions-1 exist (hold
 * entries), in one command: a checkpoint pushes to all of them at once. */
static long outbox_lists(redisContext *c, int partitions)
{
    char keys[16][64];
    const char *argv[17] = {"EXISTS"};
    cr_assert_leq(partitions, 16);
    for (int p = 0; p < partitions; p++) {
        snprintf(keys[p], sizeof(keys[p]), "crash:outbox:events:%d", p);
        argv[p + 1] = keys[p];
    }
    redisReply *r = redisCommandArgv(c, partitions + 1, argv, NULL);
    cr_assert(r && r->type == REDIS_REPLY_INTEGER);
    long n = r->integer;
    freeReplyObject(r);
    return n;
}

/* Appends to `list` an outbox entry as a checkpoint of an earlier version
 * wrote it: the msgpack array [key, instance, payload], without the
 * customer's cluster sequence (read as 0: before the customer's others). */
static void plant_entry(redisContext *c, const char *list, const char *key, const void *payload,
                        size_t len)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 3);
    msgpack_pack_str_with_body(&pk, key, strlen(key));
    msgpack_pack_str_with_body(&pk, "test:1", 6);
    msgpack_pack_bin_with_body(&pk, payload, len);
    redisReply *rr = redisCommand(c, "RPUSH %s %b", list, sb.data, sb.size);
    cr_assert(rr && rr->type == REDIS_REPLY_INTEGER);
    freeReplyObject(rr);
    msgpack_sbuffer_destroy(&sb);
}

/* A process killed right after a checkpoint that pushed cluster changes to
 * its outbox lists (it may have produced them or not, and has not trimmed
 * them): the next process publishes every entry, with its key and its
 * instance header, before its own changes, trims the lists, and a clean
 * stop leaves them empty; a consumer ends where Redis does. An entry put
 * there by hand is published byte for byte. */
Test(redis, a_new_owner_publishes_and_trims_the_outbox_a_killed_owner_left)
{
    enum { P = 4, CUSTOMERS = 5000, EVENTS = 100000 };
    int64_t max_ts = crash_setup(P, CUSTOMERS, EVENTS, 34);
    const char *script = producer_script();
    int port;
    pid_t pid = start_run("crash.yaml", "crash.log", &port);
    cr_assert_eq(h_wait_metric(port, "segstream_partitions_owned", P, 0, 60), P);
    pid_t prod = h_spawn(NULL, NULL, "sh %s 0 %d 0.05", script, (int)EVENTS);
    /* a list exists from the checkpoint that pushes entries until a later
     * one trims them (about a second) */
    redisContext *c = rc_connect();
    long lists = 0;
    for (int i = 0; i < 120000 && lists == 0 && h_alive(prod); i++) {
        lists = outbox_lists(c, P);
        if (!lists) h_sleep(0.001);
    }
    cr_assert_gt(lists, 0, "no checkpoint pushed a cluster change while the records came");
    cr_assert_eq(h_stop(pid, SIGKILL, 10), 128 + SIGKILL);
    long left = outbox_want(P, "want.txt");
    /* and one entry by hand, on a list of its own or behind the others */
    static const char planted[] =
        "{\"event_id\":\"planted:cluster:1:>0@1\",\"customer_id\":\"planted\","
        "\"dimension\":\"cluster\",\"from\":null,\"to\":\"planted\",\"from_id\":-1,"
        "\"to_id\":0,\"ts\":1,\"emitted_at\":1,\"reason\":\"planted by the test\","
        "\"model_version\":1,\"features\":{}}";
    plant_entry(c, "crash:outbox:events:1", "planted", planted, sizeof(planted) - 1);
    FILE *f = fopen(h_path("want.txt"), "a");
    cr_assert_not_null(f);
    fprintf(f, "planted:cluster:1:>0@1\tplanted\ttest:1\t%s\n", planted);
    fclose(f);
    fprintf(stderr, "killed with %ld entries on %ld outbox lists, and one planted\n", left, lists);
    /* the next owner */
    pid = start_run("crash.yaml", "crash2.log", &port);
    cr_assert_eq(h_wait_metric(port, "segstream_outbox_taken_over_total", (double)left + 1, 0, 60),
                 (double)left + 1);
    log_says("crash2.log", "by its previous owner: published");
    cr_assert_eq(h_stop(prod, 0, 300), 0, "producing the records failed");
    redisFree(c);
    finish(pid, port, "crash:", EVENTS, max_ts);
    no_outbox("crash:");
    cr_assert_eq(h_run(PY " consume --brokers %s --topic changes-crash --out %s/crash.dump "
                          "--idle 8 > /dev/null",
                       B, dir),
                 0);
    cr_assert_eq(h_run(PY " holds %s/crash.dump %s/want.txt > %s/holds.txt", dir, dir, dir), 0);
    char *r = h_slurp(h_path("holds.txt"), NULL);
    cr_assert_not_null(r);
    fprintf(stderr, "outbox entries on the change topic: %s", r);
    cr_expect_eq(h_field(r, "found"), left + 1, "%s", r);
    free(r);
    latest_changes_match_redis("crash:");
}

/* An entry a previous owner left that cannot be produced (over the
 * producer's message.max.bytes): the next owner stops with exit 1, sending
 * no checkpoint, and leaves the entry for another try. It used to go on
 * with the state it had just freed (a crash, or worse). */
Test(redis, an_outbox_entry_that_cannot_be_produced_stops_the_run_cleanly)
{
    crash_setup(1, 100, 200, 35);
    redisContext *c = rc_connect();
    size_t big = 2u << 20;
    char *payload = malloc(big);
    cr_assert_not_null(payload);
    memset(payload, 'x', big);
    plant_entry(c, "crash:outbox:events:0", "big", payload, big);
    free(payload);
    int port;
    pid_t pid = start_run("crash.yaml", "crash.log", &port);
    int rc = h_stop(pid, 0, 60); /* it stops by itself */
    cr_assert_eq(rc, 1, "exit %d (139: the crash)", rc);
    log_says("crash.log", "cannot publish the cluster changes a previous owner left");
    redisReply *rr = redisCommand(c, "LLEN crash:outbox:events:0");
    cr_assert(rr && rr->type == REDIS_REPLY_INTEGER && rr->integer == 1,
              "the entry is left for the next owner");
    freeReplyObject(rr);
    redisFree(c);
}

Test(redis, an_outage_of_redis_mid_run_changes_nothing)
{
    need_tools();
    start(8, 1);
    enum { CUSTOMERS = 5000, EVENTS = 100000 };
    int64_t max_ts = gen_events(CUSTOMERS, EVENTS, 32);
    write_cfg("crash.yaml", "g-crash", "crash:", "changes-crash");
    produce_lines(0, EVENTS / 4);
    int port;
    pid_t pid = start_run("crash.yaml", "crash.log", &port);
    cr_assert_eq(
        h_wait_metric(port, "segstream_events_in_total{topic=\"events\"}", EVENTS / 4, 0, 120),
        EVENTS / 4);
    /* Redis goes away for several seconds while records keep coming */
    cr_assert_eq(h_stop(redis, SIGTERM, 20), 0);
    produce_lines(EVENTS / 4, EVENTS / 2);
    h_sleep(4);
    cr_expect_eq(metric(port, "segstream_redis_up"), 0);
    cr_assert(h_alive(pid), "the daemon waits for Redis, it does not die");
    /* /healthz tells an orchestrator the daemon cannot work now, and why */
    int st;
    char *h = h_http_get(port, "/healthz", &st);
    cr_assert_eq(st, 503, "/healthz during the outage: %d %s", st, h ? h : "");
    cr_assert(h && strstr(h, "redis") && strstr(h, "down"), "%s", h ? h : "");
    free(h);
    redis = h_redis(dir, rport, 1); /* same port and files: the AOF is read back */
    cr_assert_gt(redis, 0);
    for (int i = 0; i < 150 && st != 200; i++) {
        h_sleep(0.2);
        free(h_http_get(port, "/healthz", &st));
    }
    cr_assert_eq(st, 200, "/healthz once Redis is back");
    produce_lines(EVENTS / 2, EVENTS);
    finish(pid, port, "crash:", EVENTS, max_ts);
    same_as_clean_run(EVENTS, max_ts);
    long repeats;
    compare_changes(&repeats);
    cr_expect_eq(repeats, 0, "an outage alone repeats nothing");

    /* inspect shows what a replay of the same events decides for a customer */
    char path[600];
    snprintf(path, sizeof(path), "%s/replay.yaml", dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(H_EXAMPLE_RULES, f);
    fclose(f);
    cr_assert_eq(h_run("%s replay --input %s/ev.jsonl --out %s/replay.jsonl --snapshot %s/snap.csv "
                       "-q -c %s/replay.yaml",
                       SEG_BIN, dir, dir, dir, dir),
                 0);
    for (int i = 0; i < 3; i++) {
        const char *id = (const char *[]){"c000042", "c001234", "c004999"}[i];
        cr_assert_eq(h_run("%s inspect %s --json --redis redis://127.0.0.1:%d --prefix crash: > "
                           "%s/inspect.json",
                           SEG_BIN, id, rport, dir),
                     0, "inspect %s", id);
        cr_assert_eq(
            h_run("/usr/bin/python3 -c '\n"
                  "import csv, json, sys\n"
                  "j = json.load(open(sys.argv[1]))\n"
                  "row = [r for r in csv.DictReader(open(sys.argv[2])) if r[\"customer_id\"] "
                  "== sys.argv[3]][0]\n"
                  "ok = (j[\"lifecycle\"] == row[\"lifecycle\"] and j[\"events\"] == "
                  "int(row[\"events\"]) and j[\"orders\"] == int(row[\"orders\"]) and "
                  "abs(j[\"revenue\"] - float(row[\"revenue\"])) < 0.006 and "
                  "j[\"rules\"] == row[\"rules\"] and j[\"first_seen\"] == "
                  "int(row[\"first_seen\"]) and j[\"last_seen\"] == int(row[\"last_seen\"]))\n"
                  "print(sys.argv[3], \"inspect\", {k: j[k] for k in (\"lifecycle\", "
                  "\"events\", \"orders\", \"revenue\", \"rules\")}, \"replay\", "
                  "{k: row[k] for k in (\"lifecycle\", \"events\", \"orders\", "
                  "\"revenue\", \"rules\")}, file=sys.stderr)\n"
                  "sys.exit(0 if ok else 1)' %s/inspect.json %s/snap.csv %s",
                  dir, dir, id),
            0, "inspect %s differs from the replay of its events", id);
    }
}

/* One record per partition at ts, so that every process's W reaches it
 * whichever partitions it owns. */
static void sentinels(int partitions, int64_t ts)
{
    for (int p = 0; p < partitions; p++)
        cr_assert_eq(h_run("echo '{\"customer_id\":\"sentinel-%d\",\"type\":\"page_view\","
                           "\"ts\":%" PRId64 "}' | kcat -P -X enable.idempotence=true -b %s -t "
                           "events -p %d -k sentinel-%d",
                           p, ts, B, p, p),
                     0);
}

/* The end of the rebalance tests: a sentinel per partition produced after
 * the events, until the checkpoints hold them all and W at each process
 * (ports) reached the sentinels. */
static void all_consumed(int events, int64_t max_ts, const int *ports, int n)
{
    sentinels(8, max_ts + 1);
    wait_checkpointed("crash:", events + 8);
    wait_assigned("crash:");
    for (int i = 0; i < n; i++)
        cr_assert_eq(h_wait_metric(ports[i], "segstream_watermark_ms", (double)(max_ts + 1), 0, 60),
                     (double)(max_ts + 1));
}

/* all_consumed() after the second half of the events. */
static void rest_consumed(int events, int64_t max_ts, const int *ports, int n)
{
    produce_lines(events / 2, events);
    all_consumed(events, max_ts, ports, n);
}

Test(redis, two_processes_in_one_group_share_the_state)
{
    enum { CUSTOMERS = 5000, EVENTS = 100000 };
    int64_t max_ts = crash_setup(8, CUSTOMERS, EVENTS, 33);
    int pa, pb;
    pid_t a = start_run("crash.yaml", "a.log", &pa);
    cr_assert_eq(h_wait_metric(pa, "segstream_partitions_owned", 8, 0, 60), 8);
    produce_lines(0, EVENTS / 2);
    cr_assert_gt(h_wait_metric(pa, "segstream_events_in_total{topic=\"events\"}", 1, 1, 60), 0);
    /* B joins while A consumes: A checkpoints and releases half, B resumes
     * them from Redis's offsets */
    pid_t b = start_run("crash.yaml", "b.log", &pb);
    cr_assert_eq(h_wait_metric(pb, "segstream_partitions_owned", 4, 0, 60), 4);
    cr_assert_eq(h_wait_metric(pa, "segstream_partitions_owned", 4, 0, 60), 4);
    rest_consumed(EVENTS, max_ts, (int[]){pa, pb}, 2);
    double ra = metric(pa, "segstream_rebalances_total"),
           rb = metric(pb, "segstream_rebalances_total");
    cr_assert_eq(h_stop(b, SIGTERM, 60), 0);
    cr_assert_eq(h_stop(a, SIGTERM, 60), 0);
    same_as_clean_run(EVENTS + 8, max_ts + 1); /* the same topic, sentinels included */
    long repeats;
    compare_changes(&repeats);
    fprintf(stderr, "two processes: rebalances seen %.0f and %.0f, %ld repeated change events\n",
            ra, rb, repeats);
}

/* More processes than partitions: the one given none stands by, and takes
 * the partition over when its owner dies (it used to ask Redis for the
 * offsets of no partition, get an error, ask again forever, and never
 * complete its assignment: librdkafka then never handed it anything). */
Test(redis, a_standby_process_takes_over_when_the_owner_dies)
{
    enum { CUSTOMERS = 3000, EVENTS = 40000 };
    int64_t max_ts = crash_setup(1, CUSTOMERS, EVENTS, 34);
    int port[2];
    pid_t pid[2];
    pid[0] = start_run("crash.yaml", "a.log", &port[0]);
    cr_assert_eq(h_wait_metric(port[0], "segstream_partitions_owned", 1, 0, 60), 1);
    pid[1] = start_run("crash.yaml", "b.log", &port[1]);
    /* the group gives the partition to either: the other stands by */
    int standby = -1;
    for (int i = 0; i < 600 && standby < 0; i++) {
        for (int j = 0; j < 2 && standby < 0; j++)
            if (h_wait_line(h_path(j ? "b.log" : "a.log"), "standing by", 0)) standby = j;
        if (standby < 0) h_sleep(0.1);
    }
    cr_assert_geq(standby, 0, "no process completed its (empty) assignment");
    int owner = 1 - standby;
    cr_assert_eq(h_wait_metric(port[owner], "segstream_partitions_owned", 1, 0, 60), 1);
    cr_assert_eq(metric(port[standby], "segstream_partitions_owned"), 0);
    produce_lines(0, EVENTS / 2);
    wait_checkpointed("crash:", EVENTS / 2);
    cr_assert_eq(h_stop(pid[owner], SIGKILL, 10), 128 + SIGKILL);
    produce_lines(EVENTS / 2, EVENTS);
    /* the group notices after session.timeout.ms (6 s) */
    cr_assert_eq(h_wait_metric(port[standby], "segstream_partitions_owned", 1, 0, 90), 1,
                 "the standby never took the dead owner's partition over");
    finish(pid[standby], port[standby], "crash:", EVENTS, max_ts);
    same_as_clean_run(EVENTS, max_ts);
}

enum { GROUP_EVENTS = 100000 };

/* The start of the group tests: 8 partitions, GROUP_EVENTS events of 5 000
 * customers (seed), process A (pid[0], port[0]) holding all 8, and a
 * producer taking about 30 s (returned) whose records A has begun to
 * consume; its last chunk waits for group_end(). */
static pid_t group_begin(int seed, int64_t *max_ts, pid_t *pid, int *port)
{
    *max_ts = crash_setup(8, 5000, GROUP_EVENTS, seed);
    const char *script = producer_script();
    pid[0] = start_run("crash.yaml", "a.log", &port[0]);
    cr_assert_eq(h_wait_metric(port[0], "segstream_partitions_owned", 8, 0, 60), 8);
    pid_t prod = h_spawn(NULL, NULL, "sh %s 0 %d 0.1 %s", script, GROUP_EVENTS, h_path("go"));
    cr_assert_gt(h_wait_metric(port[0], "segstream_events_in_total{topic=\"events\"}", 1, 1, 60),
                 0);
    return prod;
}

/* group_begin(), then process B (pid[1], port[1]) joins: 4 partitions each. */
static pid_t group_begin_two(int seed, int64_t *max_ts, pid_t *pid, int *port)
{
    pid_t prod = group_begin(seed, max_ts, pid, port);
    pid[1] = start_run("crash.yaml", "b.log", &port[1]);
    for (int i = 0; i < 2; i++)
        cr_assert_eq(h_wait_metric(port[i], "segstream_partitions_owned", 4, 0, 60), 4);
    return prod;
}

/* The end of the group tests: the producer done, everything consumed by
 * the n processes left, stopped, and the state and changes those of a clean
 * run. logs: every process's log, for how often W came back. */
static void group_end(const char *name, pid_t prod, int64_t max_ts, const pid_t *pid,
                      const int *port, int n, const char *const *logs, int n_logs)
{
    cr_assert_eq(h_run("touch %s", h_path("go")), 0); /* the last chunk */
    cr_assert_eq(h_stop(prod, 0, 300), 0, "producing failed");
    all_consumed(GROUP_EVENTS, max_ts, port, n);
    for (int i = 0; i < n; i++) cr_assert_eq(h_stop(pid[i], SIGTERM, 60), 0);
    same_as_clean_run(GROUP_EVENTS + 8, max_ts + 1);
    long repeats;
    compare_changes(&repeats);
    long back = 0;
    for (int i = 0; i < n_logs; i++) {
        char *t = h_slurp(h_path(logs[i]), NULL);
        for (const char *q = t ? strstr(t, "W back from") : NULL; q; q = strstr(q + 1, "W back"))
            back++;
        free(t);
    }
    fprintf(stderr, "%s: %ld repeated change events; W came back %ld times\n", name, repeats, back);
}

/* A rolling restart (a deploy): each of two processes is stopped with
 * SIGTERM and started again, one after the other, while records keep
 * coming. Each stop hands its partitions over through a revoke's
 * checkpoint, and each start takes some back from the other process. */
Test(redis, a_rolling_restart_while_consuming_changes_nothing)
{
    int port[2];
    pid_t pid[2];
    int64_t max_ts;
    pid_t prod = group_begin_two(35, &max_ts, pid, port);
    for (int i = 0; i < 2; i++) {
        h_sleep(1);
        cr_assert(h_alive(prod), "records still come at restart %d", i + 1);
        cr_assert_eq(h_stop(pid[i], SIGTERM, 60), 0, "SIGTERM hands over and exits 0");
        pid[i] = start_run("crash.yaml", i ? "b2.log" : "a2.log", &port[i]);
        for (int j = 0; j < 2; j++)
            cr_assert_eq(h_wait_metric(port[j], "segstream_partitions_owned", 4, 0, 60), 4);
    }
    group_end("rolling restart", prod, max_ts, pid, port, 2,
              (const char *[]){"a.log", "b.log", "a2.log", "b2.log"}, 4);
}

/* The group grows from one process to three and shrinks back to one while
 * records keep coming: every step moves partitions between processes whose
 * watermarks differ. cooperative: with the cooperative-sticky assignor. */
static void grow_and_shrink(int seed, const char *name, int cooperative)
{
    if (cooperative) props = "    partition.assignment.strategy: \"cooperative-sticky\"\n";
    int port[3];
    pid_t pid[3];
    int64_t max_ts;
    pid_t prod = group_begin(seed, &max_ts, pid, port);
    pid[1] = start_run("crash.yaml", "b.log", &port[1]);
    cr_assert_eq(h_wait_metric(port[1], "segstream_partitions_owned", 4, 0, 60), 4);
    pid[2] = start_run("crash.yaml", "c.log", &port[2]);
    cr_assert_geq(h_wait_metric(port[2], "segstream_partitions_owned", 2, 1, 60), 2);
    for (int i = 1; i < 3; i++) {
        h_sleep(0.5);
        cr_assert(h_alive(prod), "records still come when process %d stops", i + 1);
        cr_assert_eq(h_stop(pid[i], SIGTERM, 60), 0, "SIGTERM hands over and exits 0");
    }
    cr_assert_eq(h_wait_metric(port[0], "segstream_partitions_owned", 8, 0, 60), 8);
    if (cooperative) /* A kept 4 when B joined: only the others moved */
        log_says("a.log", "revoked 4 partitions (4 owned): events[");
    group_end(name, prod, max_ts, pid, port, 1, (const char *[]){"a.log", "b.log", "c.log"}, 3);
}

Test(redis, a_group_that_grows_and_shrinks_while_consuming_changes_nothing)
{
    grow_and_shrink(36, "grow and shrink", 0);
}

/* The same with the cooperative-sticky assignor, which production groups
 * often use: a rebalance moves only the partitions that change owner, in two
 * steps (the old owner lets them go, then the new one is given them), and the
 * partitions a process keeps go on being consumed throughout; their W must
 * stay where it is (wm_assigned). */
Test(redis, a_cooperative_group_that_grows_and_shrinks_while_consuming_changes_nothing)
{
    grow_and_shrink(41, "cooperative grow and shrink", 1);
}

/* Failover: one of two processes is SIGKILLed while records come; after
 * session.timeout.ms the other takes its partitions over from their last
 * checkpoints (the events after them are applied again, their change
 * events repeated with the same event_id). */
Test(redis, a_sigkill_of_one_of_two_processes_fails_over_to_the_other)
{
    int port[2];
    pid_t pid[2];
    int64_t max_ts;
    pid_t prod = group_begin_two(37, &max_ts, pid, port);
    h_sleep(1);
    cr_assert(h_alive(prod), "records still come at the kill");
    cr_assert_eq(h_stop(pid[0], SIGKILL, 10), 128 + SIGKILL);
    cr_assert_eq(h_wait_metric(port[1], "segstream_partitions_owned", 8, 0, 90), 8,
                 "the survivor never took the dead process's partitions over");
    group_end("failover", prod, max_ts, pid + 1, port + 1, 1, (const char *[]){"a.log", "b.log"},
              2);
}

/* Issue 6's restart: changes fall due while no process holds the customers.
 * Partition 1 stops at a cut while partition 0 is complete, so W waits at the
 * cut and partition 0's customers have changes due after it; the daemon is
 * SIGKILLed, partition 1's rest is produced, and a new process (whose cache
 * is empty) must find them through Redis's due index and publish each. */
Test(redis, changes_due_while_nobody_holds_the_customers_are_published)
{
    need_tools();
    start(2, 0);
    enum { CUSTOMERS = 2000, EVENTS = 40000 };
    int64_t max_ts = gen_events(CUSTOMERS, EVENTS, 35);
    int64_t cut = max_ts - 40LL * 86400000; /* 40 days before the end */
    cr_assert_eq(h_run("cd %s && sed 's/^{\"customer_id\":\"\\([^\"]*\\)\"/\\1\\t&/' ev.jsonl | "
                       "awk -F'\\t' -v cut=%" PRId64 " '{ match($2, /\"ts\":[0-9]+/); "
                       "t = substr($2, RSTART + 5, RLENGTH - 5) + 0; "
                       "if (substr($1, 2) %% 2 == 0) print > \"p0.keyed\"; "
                       "else if (t <= cut) print > \"p1a.keyed\"; else print > \"p1b.keyed\" }'",
                       dir, cut),
                 0);
    cr_assert_eq(
        h_run("cd %s && kcat -P -X enable.idempotence=true -b %s -t events -p 0 -K '\\t' -l "
              "p0.keyed && kcat -P -X enable.idempotence=true -b %s -t events -p 1 -K '\\t' "
              "-l p1a.keyed",
              dir, B, B),
        0);
    long n0 = h_count_lines(h_path("p0.keyed")), n1a = h_count_lines(h_path("p1a.keyed"));
    long n1b = h_count_lines(h_path("p1b.keyed"));
    cr_assert(n0 > 0 && n1a > 0 && n1b > 0);
    write_cfg("crash.yaml", "g-crash", "crash:", "changes-crash");
    /* first process: partitions are never idle for it, so W stays at the cut */
    char lp[600];
    snprintf(lp, sizeof(lp), "%s/first.log", dir);
    pid_t pid = h_spawn(NULL, lp, "env SEGSTREAM_WATERMARK_IDLE_TIMEOUT=1h %s run -c %s/crash.yaml",
                        SEG_BIN, dir);
    int port = h_daemon_port(lp, 20);
    cr_assert_gt(port, 0);
    long got = -1;
    for (int i = 0; i < 600 && got != n0 + n1a; i++) {
        got = offsets_sum("crash:");
        if (got != n0 + n1a) h_sleep(0.2);
    }
    cr_assert_eq(got, n0 + n1a);
    double w = metric(port, "segstream_watermark_ms");
    cr_assert_leq(w, (double)cut, "W waits for partition 1");
    cr_assert_eq(h_stop(pid, SIGKILL, 10), 128 + SIGKILL);
    cr_assert_eq(h_run("cd %s && kcat -P -X enable.idempotence=true -b %s -t events -p 1 -K '\\t' "
                       "-l p1b.keyed",
                       dir, B),
                 0);
    pid = start_run("crash.yaml", "crash.log", &port);
    finish(pid, port, "crash:", EVENTS, max_ts);
    double loaded = 0;
    fprintf(stderr, "W was %.0f at the kill, %.1f days before the end\n", w,
            ((double)max_ts - w) / 86400000.0);
    (void)loaded;
    same_as_clean_run(EVENTS, max_ts);
    long repeats;
    compare_changes(&repeats);
}

/* redis_cut.py in front of the test's Redis, on *port, logging to
 * cut.log: losing the reply to its cut_at-th EXEC (0: none), passing
 * nothing once the file hole exists, keeping a client's bytes from its
 * next MULTI on while the file hold exists, and every command while the
 * file pause exists (NULL: never). */
static pid_t relay(int cut_at, const char *hole, const char *hold, const char *pause, int *port)
{
    *port = h_free_port();
    pid_t pid = h_spawn(NULL, NULL,
                        "/usr/bin/python3 %s/tests/integration/redis_cut.py %d %d %s %d %s %s %s",
                        SEG_SOURCE_DIR, *port, rport, h_path("cut.log"), cut_at, hole ? hole : "-",
                        hold ? hold : "-", pause ? pause : "-");
    cr_assert_gt(pid, 0);
    for (int i = 0; i < 100 && h_count_lines(h_path("cut.log")) < 1; i++) h_sleep(0.1);
    return pid;
}

/* A checkpoint that lands while its reply is lost (a relay passes the
 * second EXEC to Redis, lets it run, and closes the connection before the
 * reply) is asked about when Redis is back, not sent again: its plain writes
 * could otherwise go over a newer owner's. Every EXEC that reached Redis is
 * a checkpoint the process counts, and the state is the clean run's. */
Test(redis, a_checkpoint_whose_reply_is_lost_is_not_sent_again)
{
    enum { CUSTOMERS = 1000, EVENTS = 20000 };
    int64_t max_ts = crash_setup(2, CUSTOMERS, EVENTS, 36);
    int via;
    pid_t cut = relay(2, NULL, NULL, NULL, &via);
    write_cfg_via("crash.yaml", via); /* the daemon goes through the relay */
    produce_lines(0, EVENTS / 2);
    int port;
    pid_t pid = start_run("crash.yaml", "crash.log", &port);
    cr_assert_eq(
        h_wait_metric(port, "segstream_events_in_total{topic=\"events\"}", EVENTS / 2, 0, 120),
        EVENTS / 2);
    produce_lines(EVENTS / 2, EVENTS);
    cr_assert_geq(h_wait_metric(port, "segstream_checkpoint_retries_total", 1, 1, 60), 1,
                  "the relay cut a checkpoint's reply");
    finish(pid, port, "crash:", EVENTS, max_ts);
    h_stop(cut, SIGTERM, 10);
    char *log = h_slurp(h_path("cut.log"), NULL), *run = h_slurp(h_path("crash.log"), NULL);
    cr_assert(log && run);
    cr_assert(strstr(log, "CUT"), "%s", log);
    long execs = 0;
    for (const char *p = strstr(log, "EXEC"); p; p = strstr(p + 4, "EXEC")) execs++;
    const char *fin = strstr(run, "final checkpoint written (");
    cr_assert_not_null(fin, "%s", run);
    long counted = strtol(fin + strlen("final checkpoint written ("), NULL, 10);
    cr_assert_eq(execs, counted, "EXECs that reached Redis %ld, checkpoints counted %ld", execs,
                 counted);
    free(log);
    free(run);
    same_as_clean_run(EVENTS, max_ts);
}

/* The relay holds the next transaction from its MULTI on; lines [from, to)
 * are produced so that a checkpoint follows (none: what it means if not). */
static void hold_next(long from, long to, const char *none)
{
    cr_assert_eq(h_run("touch %s", h_path("hold")), 0);
    produce_lines(from, to);
    cr_assert_not_null(h_wait_line(h_path("cut.log"), "HELD TRANSACTION", 60), "%s", none);
}

/* Lets the relay pass the transaction it holds, then checks that the
 * offsets still hold `want` records: Redis aborted it. late: what its
 * landing would mean. (A process left stopped is killed at teardown.) */
static void release_held(long want, const char *late)
{
    cr_assert_eq(h_run("rm %s", h_path("hold")), 0);
    cr_assert_not_null(h_wait_line(h_path("cut.log"), "RELEASED", 30));
    long held = offsets_sum("crash:");
    cr_assert_eq(held, want, "%s: the offsets hold %ld of %ld records", late, held, want);
}

/* A checkpoint Redis refuses (here the sizes hash of the prefix holds a
 * string, so the script's HINCRBY fails) stops the run with exit 1 and
 * Redis's reason, rather than carrying on with state it cannot keep. */
/* One partition, 2 000 events of 200 customers, bad.yaml (prefix bad:). */
static void bad_setup(void)
{
    need_tools();
    start(1, 0);
    gen_events(200, 2000, 5);
    write_cfg("bad.yaml", "g-bad", "bad:", "changes-crash");
}

/* Runs one command on the test's Redis; its reply must be of `type`. */
static void rc_command(int type, const char *fmt, ...)
{
    redisContext *c = rc_connect();
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    cr_assert(r && r->type == type, "%s", fmt);
    freeReplyObject(r);
    redisFree(c);
}

Test(redis, a_checkpoint_redis_refuses_stops_the_run_with_its_reason)
{
    bad_setup();
    rc_command(REDIS_REPLY_STATUS, "SET bad:sizes not-a-hash");
    produce_lines(0, 2000);
    int port;
    pid_t pid = start_run("bad.yaml", "bad.log", &port);
    cr_assert_eq(h_stop(pid, 0, 60), 1, "the run stops by itself, with exit 1");
    log_says("bad.log", "checkpoint refused by Redis");
    log_says("bad.log", "WRONGTYPE");
}

/* A Redis that refuses the handshake (a wrong password): it answered, so the
 * log gives its reason at each try, retried with backoff from 100 ms, and
 * never says "connect timed out"; /healthz says Redis is down. Each try used
 * to wait out the 5 s connect timeout and then log that as the reason. */
Test(redis, a_refused_handshake_is_retried_with_its_reason)
{
    need_tools();
    rport = h_free_port();
    redis = h_spawn(NULL, NULL,
                    "redis-server --bind 127.0.0.1 --port %d --dir %s --save '' --appendonly no "
                    "--requirepass right",
                    rport, dir);
    cr_assert_gt(redis, 0);
    cr_assert_eq(h_run("for i in $(seq 100); do redis-cli -p %d -a right ping 2>/dev/null | "
                       "grep -q PONG && exit 0; sleep 0.1; done; exit 1",
                       rport),
                 0, "redis-server did not start");
    cr_assert_eq(h_writef(dir, "auth.yaml",
                          "kafka:\n  brokers: \"127.0.0.1:1\"\n"
                          "redis:\n  url: \"redis://:wrong@127.0.0.1:%d\"\n"
                          "http:\n  listen: \"127.0.0.1:0\"\n",
                          rport),
                 0);
    int port;
    pid_t pid = start_run("auth.yaml", "auth.log", &port);
    h_sleep(3);
    int status;
    char *body = h_http_get(port, "/healthz", &status);
    cr_expect_eq(status, 503);
    cr_expect(body && strstr(body, "redis"), "%s", body ? body : "");
    free(body);
    cr_assert_eq(h_stop(pid, SIGTERM, 20), 0);
    char *log = h_slurp(h_path("auth.log"), NULL);
    cr_assert_not_null(log);
    int tries = 0;
    for (const char *p = log; (p = strstr(p, "handshake refused: WRONGPASS")); p++) tries++;
    cr_expect_geq(tries, 3, "%d tries in 3 s: %s", tries, log);
    cr_expect_null(strstr(log, "timed out"), "%s", log);
    free(log);
}

/* A customer whose state in Redis cannot be read (written by hand, or by
 * something else than segstream): the run stops by itself with exit 1 and
 * says which customer. It used to go on with the checkpoint state that the
 * stop had just freed (139), and to print the id without its end. */
Test(redis, a_customer_redis_cannot_read_stops_the_run_naming_it)
{
    bad_setup();
    char *ev = h_slurp(h_path("ev.jsonl"), NULL), id[64];
    cr_assert_not_null(ev);
    cr_assert_eq(sscanf(ev, "{\"customer_id\":\"%63[^\"]\"", id), 1); /* the first record's */
    free(ev);
    rc_command(REDIS_REPLY_INTEGER, "HSET bad:c:%s state not-msgpack", id);
    produce_lines(0, 2000);
    int port;
    pid_t pid = start_run("bad.yaml", "bad.log", &port);
    int rc = h_stop(pid, 0, 60);
    cr_assert_eq(rc, 1, "exit %d: the run stops by itself, with exit 1 (139: the crash)", rc);
    char want[128];
    snprintf(want, sizeof(want), "customer %s in Redis cannot be read: ", id);
    log_says("bad.log", want);
}

/* A revoke whose checkpoint cannot be written: A reaches Redis through a
 * relay that goes silent (nothing A sends arrives, nothing comes back) just
 * before B joins. After 30 s A stops with exit 1 and sends nothing more,
 * since a checkpoint written later could land over B's state. B resumes
 * from Redis, and the state is the clean run's. (A Redis that is stopped
 * instead would run A's last transaction when it resumes, before or after
 * B claimed the partitions: a test of the revoke's timeout, not of the
 * fence, which a_checkpoint_that_arrives_after_a_takeover_is_fenced
 * tests.) */
Test(redis, a_revoke_that_cannot_checkpoint_stops_the_old_owner)
{
    enum { CUSTOMERS = 2000, EVENTS = 40000 };
    int64_t max_ts = crash_setup(8, CUSTOMERS, EVENTS, 37);
    int via;
    pid_t cut = relay(0, h_path("hole"), NULL, NULL, &via);
    write_cfg_via("a.yaml", via);
    int pa, pb;
    pid_t a = start_run("a.yaml", "a.log", &pa);
    cr_assert_eq(h_wait_metric(pa, "segstream_partitions_owned", 8, 0, 60), 8);
    produce_lines(0, EVENTS / 2);
    cr_assert_eq(
        h_wait_metric(pa, "segstream_events_in_total{topic=\"events\"}", EVENTS / 2, 0, 120),
        EVENTS / 2);
    cr_assert_eq(h_run("touch %s", h_path("hole")), 0);
    pid_t b = start_run("crash.yaml", "b.log", &pb);
    cr_assert_eq(h_stop(a, 0, 120), 1, "the old owner stops with exit 1");
    log_says("a.log", "revoke: no checkpoint within 30 s");
    h_stop(cut, SIGTERM, 10);
    cr_assert_eq(h_wait_metric(pb, "segstream_partitions_owned", 8, 0, 120), 8);
    rest_consumed(EVENTS, max_ts, (int[]){pb}, 1);
    cr_assert_eq(h_stop(b, SIGTERM, 60), 0);
    same_as_clean_run(EVENTS + 8, max_ts + 1);
}

enum { RELAYED_EVENTS = 40000 };

/* The start of the tests whose first process, A, reaches Redis through a
 * relay that can hold a transaction (cut): 8 partitions, RELAYED_EVENTS
 * events of 2 000 customers (seed), A (port *pa) owning all 8. */
static pid_t relayed_owner(int seed, int64_t *max_ts, pid_t *cut, int *pa)
{
    *max_ts = crash_setup(8, 2000, RELAYED_EVENTS, seed);
    int via;
    *cut = relay(0, NULL, h_path("hold"), NULL, &via);
    write_cfg_via("a.yaml", via);
    pid_t a = start_run("a.yaml", "a.log", pa);
    cr_assert_eq(h_wait_metric(*pa, "segstream_partitions_owned", 8, 0, 60), 8);
    return a;
}

/* A checkpoint that reaches Redis only after another process took its
 * partitions over. The relay keeps A's transaction from its MULTI on; A is
 * then stopped (SIGSTOP) until the group gives its partitions to B, which
 * resumes from Redis and checkpoints everything; then the relay lets A's
 * transaction through. Redis must abort it (B's claim of the partitions
 * broke A's watch on their owner keys) rather than put A's older customers
 * and offsets over B's. A, continued, stops with exit 1 and writes nothing
 * more, and the state is the clean run's. */
Test(redis, a_checkpoint_that_arrives_after_a_takeover_is_fenced)
{
    enum { EVENTS = RELAYED_EVENTS };
    int64_t max_ts;
    pid_t cut;
    int pa, pb;
    pid_t a = relayed_owner(38, &max_ts, &cut, &pa);
    produce_lines(0, EVENTS / 4);
    wait_checkpointed("crash:", EVENTS / 4);
    hold_next(EVENTS / 4, EVENTS / 2, "A sent no checkpoint after the first quarter");
    cr_assert_eq(kill(a, SIGSTOP), 0); /* before its reply timer gives up on it */
    pid_t b = start_run("crash.yaml", "b.log", &pb);
    cr_assert_eq(h_wait_metric(pb, "segstream_partitions_owned", 8, 0, 60), 8);
    rest_consumed(EVENTS, max_ts, (int[]){pb}, 1);
    release_held(EVENTS + 8, "A's late checkpoint landed over B's");
    cr_assert_eq(kill(a, SIGCONT), 0);
    cr_assert_eq(h_stop(a, 0, 60), 1, "the old owner stops with exit 1");
    log_says("a.log", "taken over");
    h_stop(cut, SIGTERM, 10);
    /* A came back to the group before it stopped: B may have lent it
     * partitions for a moment */
    cr_assert_eq(h_wait_metric(pb, "segstream_partitions_owned", 8, 0, 120), 8);
    wait_checkpointed("crash:", EVENTS + 8);
    cr_assert_eq(h_stop(b, SIGTERM, 60), 0);
    same_as_clean_run(EVENTS + 8, max_ts + 1);
}

/* A checkpoint left on a connection that was given up while it was still
 * on its way. The relay keeps it from its MULTI on; A hears nothing for 5 s,
 * drops the connection, finds on a new one that it did not land, sends it
 * again and goes on with later checkpoints; then the relay lets the old
 * transaction through. Redis must abort it: A touched its owner keys on the
 * new connection before it asked whether the checkpoint landed, which broke
 * the old connection's watch. Otherwise it would put older customers and
 * offsets over the newer ones. The state is the clean run's. */
Test(redis, a_checkpoint_on_a_dropped_connection_never_lands_late)
{
    enum { CUSTOMERS = 1000, EVENTS = 20000 };
    int64_t max_ts = crash_setup(2, CUSTOMERS, EVENTS, 39);
    int via;
    pid_t cut = relay(0, NULL, h_path("hold"), NULL, &via);
    write_cfg_via("crash.yaml", via); /* the daemon goes through the relay */
    produce_lines(0, EVENTS / 2);
    int port;
    pid_t pid = start_run("crash.yaml", "crash.log", &port);
    wait_checkpointed("crash:", EVENTS / 2);
    hold_next(EVENTS / 2, 3 * EVENTS / 4, "no checkpoint after the first half");
    cr_assert_geq(h_wait_metric(port, "segstream_checkpoint_retries_total", 1, 1, 60), 1,
                  "the daemon gave the connection up");
    /* checkpoints newer than the one held */
    produce_lines(3 * EVENTS / 4, EVENTS);
    wait_checkpointed("crash:", EVENTS);
    release_held(EVENTS, "the old connection's checkpoint landed after newer ones");
    finish(pid, port, "crash:", EVENTS, max_ts);
    h_stop(cut, SIGTERM, 10);
    same_as_clean_run(EVENTS, max_ts);
}

/* An owner that dies before its first checkpoint. A reaches Redis through
 * a relay that keeps A's first checkpoint (its first transaction after the
 * group split the partitions) from reaching Redis, and A is SIGKILLed as soon
 * as it sent it; B consumes the other four partitions to their end and
 * checkpoints them, so B's W is at the end of the data. B then takes over
 * partitions Redis knows nothing of: no offset, no newest event time, no W.
 * Their first records are far behind B's W; applied at that W, their
 * customers would look silent and be stepped to lapsed on their first
 * event. W must come back to each such partition's first record, and the
 * state and changes be the clean run's. */
Test(redis, a_takeover_from_an_owner_that_never_checkpointed_brings_w_back)
{
    enum { EVENTS = RELAYED_EVENTS };
    int64_t max_ts;
    pid_t cut;
    int pa, pb;
    pid_t a = relayed_owner(40, &max_ts, &cut, &pa);
    pid_t b = start_run("crash.yaml", "b.log", &pb);
    cr_assert_eq(h_wait_metric(pb, "segstream_partitions_owned", 4, 0, 60), 4);
    cr_assert_eq(h_wait_metric(pa, "segstream_partitions_owned", 4, 0, 60), 4);
    hold_next(0, EVENTS, "A sent no checkpoint");
    cr_assert_eq(h_stop(a, SIGKILL, 10), 128 + SIGKILL); /* before it gives the held one up */
    h_stop(cut, SIGTERM, 10);                            /* what it holds never reaches Redis */
    cr_assert_eq(h_wait_metric(pb, "segstream_partitions_owned", 8, 0, 90), 8,
                 "B never took the dead process's partitions over");
    all_consumed(EVENTS, max_ts, (int[]){pb}, 1);
    cr_assert_eq(h_stop(b, SIGTERM, 60), 0);
    same_as_clean_run(EVENTS + 8, max_ts + 1);
    long repeats;
    compare_changes(&repeats);
    log_says("b.log", "the first record of a partition taken over is behind");
}

/* One record of customer id at ts to partition p of events. */
static void produce_to(int p, const char *id, int64_t ts)
{
    cr_assert_eq(h_run("echo '{\"customer_id\":\"%s\",\"type\":\"page_view\",\"ts\":%" PRId64
                       "}' | kcat -P -X enable.idempotence=true -b %s -t events -p %d -k %s",
                       id, ts, B, p, id),
                 0);
}

static void produce_one(const char *id, int64_t ts)
{
    produce_to(0, id, ts);
}

/* Customer id's `events` in Redis under crash: ("" when absent). */
static void events_of(const char *id, const char *want)
{
    redisContext *c = rc_connect();
    redisReply *r = redisCommand(c, "HGET crash:c:%s events", id);
    const char *got = r && r->type == REDIS_REPLY_STRING ? r->str : "";
    cr_assert_str_eq(got, want, "customer %s: events %s, want %s", id, got, want);
    freeReplyObject(r);
    redisFree(c);
}

/* No dead letter on segstream.dlq. */
static void no_dead_letters(void)
{
    cr_assert_eq(h_run("kcat -C -b %s -t segstream.dlq -e -q -o beginning -f '%%s\\n' > %s", B,
                       h_path("dlq.txt")),
                 0);
    cr_assert_eq(h_count_lines(h_path("dlq.txt")), 0, "dead letters written");
}

/* A record far ahead of its partition (a quiet gap, or a bad clock) is kept
 * until the partition's next record decides, and its offset is not
 * checkpointed before then: a run stopped while it holds one (here the
 * partition's last record) must leave it to be read again, not lose it.
 * After the restart a record near it comes, and both are applied; nothing
 * is dead-lettered. */
Test(redis, a_record_held_as_far_ahead_when_the_run_stops_is_read_again)
{
    need_tools();
    start(1, 0);
    idle = "10m"; /* an idle partition would decide sooner: a bad clock */
    write_cfg("crash.yaml", "g-crash", "crash:", "changes-crash");
    const int64_t T = 1700000000000LL, D = 86400000LL;
    produce_one("a", T);
    produce_one("b", T + 10 * D); /* 10 days after a: more than max_future_skew (7 d) */
    int port;
    pid_t pid = start_run("crash.yaml", "a.log", &port);
    cr_assert_eq(h_wait_metric(port, "segstream_events_in_total{topic=\"events\"}", 2, 0, 60), 2);
    wait_checkpointed("crash:", 1); /* a's; b's offset (1) waits for the next record */
    cr_assert_eq(h_stop(pid, SIGTERM, 60), 0);
    cr_assert_eq(offsets_sum("crash:"), 1, "the held record's offset was checkpointed");
    pid = start_run("crash.yaml", "b.log", &port);
    produce_one("c", T + 10 * D + 1000);
    wait_checkpointed("crash:", 3);
    cr_assert_eq(h_stop(pid, SIGTERM, 60), 0);
    for (int i = 0; i < 3; i++) events_of((const char *[]){"a", "b", "c"}[i], "1");
    no_dead_letters();
}

/* A record held as far ahead on a partition that then goes idle, while
 * another partition catches up with it: by the time the idle partition
 * decides, the record is in line with the stream, and it is applied (its
 * customer loaded from Redis with its batch), not dead-lettered. */
Test(redis, a_held_record_the_stream_catches_up_with_is_applied)
{
    need_tools();
    start(2, 0);
    idle = "5s";
    write_cfg("crash.yaml", "g-crash", "crash:", "changes-crash");
    const int64_t T = 1700000000000LL, D = 86400000LL;
    produce_to(0, "a", T);
    produce_to(0, "x", T + 10 * D); /* 10 days ahead of everything: held */
    int port;
    pid_t pid = start_run("crash.yaml", "a.log", &port);
    cr_assert_eq(h_wait_metric(port, "segstream_events_in_total{topic=\"events\"}", 2, 0, 60), 2);
    cr_assert_eq(h_wait_metric(port, "segstream_records_held", 1, 0, 10), 1);
    /* before partition 0 is idle (5 s): partition 1 reaches x's time in
     * steps within the skew (7 d), each in line with the stream */
    cr_assert_eq(h_run("printf 'b\\t{\"customer_id\":\"b\",\"type\":\"page_view\",\"ts\":%" PRId64
                       "}\\nb\\t{\"customer_id\":\"b\",\"type\":\"page_view\",\"ts\":%" PRId64
                       "}\\n' | kcat -P -b %s -t events -p 1 -K '\\t'",
                       T + 5 * D, T + 10 * D - 1000, B),
                 0);
    cr_assert_eq(h_wait_metric(port, "segstream_events_in_total{topic=\"events\"}", 4, 0, 60), 4);
    cr_assert_eq(h_wait_metric(port, "segstream_records_held", 0, 0, 60), 0);
    wait_checkpointed("crash:", 4);
    cr_assert_eq(h_stop(pid, SIGTERM, 60), 0);
    for (int i = 0; i < 3; i++) events_of((const char *[]){"a", "x", "b"}[i], i == 2 ? "2" : "1");
    no_dead_letters();
}

/* n customers' first (day 0) or second (day 1) record, keyed, at once. */
static void produce_new(int n, int day)
{
    const int64_t T = 1700000000000LL, D = 86400000LL;
    FILE *f = fopen(h_path("new.keyed"), "w");
    cr_assert_not_null(f);
    for (int i = 0; i < n; i++)
        fprintf(f, "n%04d\t{\"customer_id\":\"n%04d\",\"type\":\"page_view\",\"ts\":%" PRId64 "}\n",
                i, i, T + day * D + i * 1000);
    fclose(f);
    cr_assert_eq(h_run("kcat -P -X enable.idempotence=true -b %s -t events -K '\\t' -l %s", B,
                       h_path("new.keyed")),
                 0);
}

/* How many of produce_new()'s n customers do not have field = want in
 * Redis (the first few said on stderr). */
static int new_customers_without(int n, const char *field, const char *want)
{
    redisContext *c = rc_connect();
    int wrong = 0;
    for (int i = 0; i < n; i++) {
        redisReply *r = redisCommand(c, "HGET crash:c:n%04d %s", i, field);
        const char *got = r && r->type == REDIS_REPLY_STRING ? r->str : "";
        if (strcmp(got, want) != 0 && wrong++ < 5)
            fprintf(stderr, "customer n%04d: %s %s, want %s\n", i, field, got, want);
        freeReplyObject(r);
    }
    redisFree(c);
    return wrong;
}

/* A revoke while a process waits for Redis's answer about customers it has
 * just read records of: the answers come (these customers are new), then
 * the records are dropped with their partitions. The copies those answers
 * made are nobody's: when the partitions come back, their customers must
 * be asked for again, or the process applies their next records to a new
 * customer and puts it over the one their new owner kept in Redis (their
 * earlier events lost, the customer counted twice; and due changes not
 * made, since a copy it holds is not asked for when due either). A reaches
 * Redis through a relay that keeps its commands while B joins. */
Test(redis, customers_asked_for_records_a_revoke_took_away_are_asked_for_again)
{
    enum { N = 400 };
    need_tools();
    start(8, 0);
    props = "    heartbeat.interval.ms: \"100\"\n"; /* A hears of B's join at once */
    write_cfg("crash.yaml", "g-crash", "crash:", "changes-crash");
    int via, pa, pb;
    pid_t cut = relay(0, NULL, NULL, h_path("pause"), &via);
    write_cfg_via("a.yaml", via);
    pid_t a = start_run("a.yaml", "a.log", &pa);
    cr_assert_eq(h_wait_metric(pa, "segstream_partitions_owned", 8, 0, 60), 8);
    double rebalances = metric(pa, "segstream_rebalances_total");
    cr_assert_eq(h_run("touch %s", h_path("pause")), 0);
    produce_new(N, 0);
    cr_assert_not_null(h_wait_line(h_path("cut.log"), "KEPT HMGET", 10),
                       "A asked Redis for no customer");
    pid_t b = start_run("crash.yaml", "b.log", &pb);
    /* within Redis's reply timeout (5 s), after which A would drop the
     * connection and its questions with it */
    cr_assert_gt(h_wait_metric(pa, "segstream_rebalances_total", rebalances + 1, 1, 4), rebalances,
                 "A's revoke did not come while its questions were kept");
    cr_assert_eq(h_run("rm %s", h_path("pause")), 0);
    for (int i = 0; i < 2; i++)
        cr_assert_eq(h_wait_metric(i ? pb : pa, "segstream_partitions_owned", 4, 0, 60), 4);
    wait_checkpointed("crash:", N);
    cr_assert_eq(h_stop(b, SIGTERM, 60), 0);
    cr_assert_eq(h_wait_metric(pa, "segstream_partitions_owned", 8, 0, 60), 8);
    produce_new(N, 1);
    wait_checkpointed("crash:", 2 * N);
    cr_assert_eq(h_stop(a, SIGTERM, 60), 0);
    h_stop(cut, SIGTERM, 10);
    char *log = h_slurp(h_path("a.log"), NULL);
    cr_assert(log && !strstr(log, "no reply within the timeout"),
              "A gave its connection up while paused: nothing tested");
    free(log);
    int wrong = new_customers_without(N, "events", "2");
    redisContext *c = rc_connect();
    redisReply *r = redisCommand(c, "HGET crash:sizes customers");
    cr_assert(r && r->type == REDIS_REPLY_STRING);
    long customers = strtol(r->str, NULL, 10);
    freeReplyObject(r);
    redisFree(c);
    cr_assert_eq(wrong, 0, "%d of %d customers lost their first event", wrong, N);
    cr_assert_eq(customers, N, "customers counted %ld, not %d", customers, N);
}

/* A process stopped just after its W passed the changes due of customers
 * it has never read (a partition taken over: they are in Redis only, and
 * come by the due sets, 2 000 at a time): the stop makes those changes
 * and checkpoints them before it exits, since its final checkpoint says
 * the partition's customers are stepped to W. */
Test(redis, a_stop_makes_the_changes_due_before_it_exits)
{
    enum { N = 10000 };
    const int64_t T = 1700000000000LL, D = 86400000LL;
    need_tools();
    start(1, 0);
    write_cfg("crash.yaml", "g-crash", "crash:", "changes-crash");
    produce_new(N, 0);
    int pa, pb;
    pid_t b = start_run("crash.yaml", "b.log", &pb);
    wait_checkpointed("crash:", N);
    cr_assert_eq(h_stop(b, SIGTERM, 60), 0);
    pid_t a = start_run("crash.yaml", "a.log", &pa);
    cr_assert_eq(h_wait_metric(pa, "segstream_partitions_owned", 1, 0, 60), 1);
    /* 36 days on, in steps within max_future_skew: every customer at risk */
    for (int i = 1; i <= 6; i++) produce_one("z", T + i * 6 * D);
    cr_assert_eq(h_wait_metric(pa, "segstream_watermark_ms", (double)(T + 36 * D), 0, 60),
                 (double)(T + 36 * D));
    cr_assert_eq(h_stop(a, SIGTERM, 60), 0);
    int wrong = new_customers_without(N, "lifecycle", "at_risk");
    cr_assert_eq(wrong, 0, "%d of %d customers not stepped to at_risk", wrong, N);
}

/* With every partition idle, W moves with the wall clock. A process that
 * joins the group and leaves again must not stop the one that was there
 * (its revoke waited for a checkpoint of work the moving W kept making,
 * and gave up after 30 s), and a restart continues W from the idle advance
 * stored in Redis, not from the newest event time again. */
Test(redis, an_idle_group_rebalances_and_a_restart_keeps_the_idle_advance)
{
    const int64_t T = 1700000000000LL;
    need_tools();
    start(2, 0);
    idle_adv = "true";
    write_cfg("crash.yaml", "g-crash", "crash:", "changes-crash");
    produce_one("q1", T); /* partition 0 only: partition 1 never has a record */
    int pa, pb;
    pid_t a = start_run("crash.yaml", "a.log", &pa);
    cr_assert_eq(h_wait_metric(pa, "segstream_partitions_owned", 2, 0, 60), 2);
    cr_assert_geq(h_wait_metric(pa, "segstream_watermark_ms", (double)T + 3000, 1, 60),
                  (double)T + 3000, "W does not move with the wall clock while idle");
    pid_t b = start_run("crash.yaml", "b.log", &pb);
    cr_assert_eq(h_wait_metric(pb, "segstream_partitions_owned", 1, 0, 60), 1,
                 "the joining process never got a partition");
    cr_assert_eq(h_wait_metric(pa, "segstream_partitions_owned", 1, 0, 60), 1);
    h_sleep(3); /* both idle, W moving in both */
    cr_assert_eq(h_stop(b, SIGTERM, 60), 0);
    cr_assert_eq(h_wait_metric(pa, "segstream_partitions_owned", 2, 0, 60), 2,
                 "the first process did not take both partitions back (see a.log)");
    cr_assert_geq(metric(pa, "segstream_rebalances_total"), 2);
    double w_stop = metric(pa, "segstream_watermark_ms");
    cr_assert_gt(w_stop, (double)T + 3000);
    cr_assert_eq(h_stop(a, SIGTERM, 60), 0, "the first process did not stop cleanly");
    /* the restart continues from there: W never comes back to the event time */
    a = start_run("crash.yaml", "a2.log", &pa);
    cr_assert_eq(h_wait_metric(pa, "segstream_partitions_owned", 2, 0, 60), 2);
    double w_first = 0;
    for (int i = 0; i < 200 && !(w_first > 0); i++) {
        w_first = metric(pa, "segstream_watermark_ms");
        if (!(w_first > 0)) h_sleep(0.05);
    }
    cr_assert_geq(w_first, w_stop, "W came back from %.0f to %.0f after a restart", w_stop,
                  w_first);
    char *log = h_slurp(h_path("a2.log"), NULL);
    cr_assert_not_null(log);
    const char *at = strstr(log, "W moves with the wall clock from W=");
    cr_assert_not_null(at, "the restart never went idle");
    double from = strtod(at + strlen("W moves with the wall clock from W="), NULL);
    cr_assert_geq(from, w_stop, "the idle advance restarted from %.0f, before %.0f", from, w_stop);
    free(log);
    cr_assert_eq(h_stop(a, SIGTERM, 60), 0);
}

/* Creates topic `name` on the embedded broker (it makes a topic a producer
 * names) with one record, which the daemon takes as a dead letter. */
static void create_topic(const char *name)
{
    cr_assert_eq(h_run("echo not-an-event | kcat -P -b %s -t %s", B, name), 0);
}

/* create_topic(name), then the run at port sees a rebalance (its count
 * reaches want): `what` names the decision expected */
static void new_topic_rebalances(const char *name, int port, double want, const char *what)
{
    create_topic(name);
    cr_assert_geq(h_wait_metric(port, "segstream_rebalances_total", want, 1, 30), want,
                  "no %s when %s appeared", what, name);
}

/* An assignment that comes while a revoke still waits for its checkpoint.
 * With the eager protocol librdkafka rejoins without waiting for the
 * application's answer to a revoke when the subscribed topics change
 * meanwhile (a topic created, partitions added), and hands out a new
 * assignment. A owns every partition of events (a pattern subscription)
 * and reaches Redis through a relay that keeps A's next transaction, with
 * cluster changes in it, from Redis, then goes silent. late1 appears: A
 * is asked to revoke everything and waits for a checkpoint; late2
 * appears: A is assigned events again (and the new topics) before its
 * revoke is done. Then Redis comes back. The revoke must still be finished
 * first (its checkpoint, its outbox delivered and trimmed, its copies
 * forgotten), or the cluster changes that waited for it are lost, the ones
 * it pushed stay in the lists for every later owner to publish again, and
 * the partitions kept resume from offsets older than the state written
 * (their records counted twice). */
Test(redis, an_assignment_that_replaces_a_pending_revoke_waits_for_it)
{
    enum { CUSTOMERS = 2000, EVENTS = 40000 };
    topics = "  topics: \"^(events|late.)$\"\n"; /* by pattern: nothing made by asking */
    props = "    topic.metadata.refresh.interval.ms: \"1000\"\n";
    int64_t max_ts = crash_setup(4, CUSTOMERS, EVENTS, 43);
    int via, pa;
    pid_t cut = relay(0, h_path("hole"), h_path("hold"), NULL, &via);
    write_cfg_via("a.yaml", via);
    pid_t a = start_run("a.yaml", "a.log", &pa);
    cr_assert_eq(h_wait_metric(pa, "segstream_partitions_owned", 4, 0, 60), 4);
    produce_lines(0, EVENTS / 2);
    wait_checkpointed("crash:", EVENTS / 2);
    hold_next(EVENTS / 2, 3 * EVENTS / 4, "A sent no checkpoint after the first half");
    cr_assert_eq(h_run("touch %s", h_path("hole")), 0); /* and nothing more arrives */
    cr_assert_geq(h_wait_metric(pa, "segstream_outbox_waiting", 1, 1, 10), 1,
                  "no cluster change waits for the checkpoint held");
    double rb = metric(pa, "segstream_rebalances_total");
    new_topic_rebalances("late1", pa, rb + 1, "revoke");
    new_topic_rebalances("late2", pa, rb + 2, "assignment");
    char *log = h_slurp(h_path("a.log"), NULL);
    cr_assert(log && !strstr(log, "revoked"), "the revoke was done before the assignment came");
    free(log);
    cr_assert_eq(h_run("rm %s", h_path("hole")), 0);
    produce_lines(3 * EVENTS / 4, EVENTS);
    finish(a, pa, "crash:", EVENTS + 2, max_ts);
    h_stop(cut, SIGTERM, 10);
    no_outbox("crash:");
    cr_assert_eq(h_run(PY " consume --brokers %s --topic changes-crash --out %s/crash.dump "
                          "--idle 8 > /dev/null",
                       B, dir),
                 0);
    latest_changes_match_redis("crash:");
    same_as_clean_run(EVENTS + 2, max_ts);
}

/* An incremental assignment that comes while another one is still being
 * read from Redis, with the cooperative-sticky assignor. librdkafka rejoins
 * on every change of the subscribed topics without waiting for the
 * application's answer, and its next assignment holds only what was added
 * since the last one (the pending one already counts as this member's). A
 * owns events (a pattern subscription) and reaches Redis through a relay
 * that passes nothing from the moment late1 appears, so that late1's
 * partitions cannot be claimed and read; late2 appears too, and then
 * Redis comes back. Both must be taken: the group counts late1's
 * partitions as A's, and nobody else consumes them. */
Test(redis, a_cooperative_assignment_that_comes_while_one_is_read_is_taken_with_it)
{
    enum { CUSTOMERS = 2000, EVENTS = 20000 };
    topics = "  topics: \"^(events|late.)$\"\n";
    props = "    topic.metadata.refresh.interval.ms: \"1000\"\n"
            "    partition.assignment.strategy: \"cooperative-sticky\"\n";
    int64_t max_ts = crash_setup(4, CUSTOMERS, EVENTS, 44);
    int via, pa;
    pid_t cut = relay(0, h_path("hole"), NULL, NULL, &via);
    write_cfg_via("a.yaml", via);
    pid_t a = start_run("a.yaml", "a.log", &pa);
    cr_assert_eq(h_wait_metric(pa, "segstream_partitions_owned", 4, 0, 60), 4);
    produce_lines(0, EVENTS / 2);
    wait_checkpointed("crash:", EVENTS / 2);
    cr_assert_eq(h_run("touch %s", h_path("hole")), 0);
    double rb = metric(pa, "segstream_rebalances_total");
    new_topic_rebalances("late1", pa, rb + 1, "assignment");
    new_topic_rebalances("late2", pa, rb + 2, "assignment");
    cr_assert_eq(metric(pa, "segstream_partitions_owned"), 4,
                 "an assignment was taken without Redis");
    cr_assert_eq(h_run("rm %s", h_path("hole")), 0);
    cr_assert_eq(h_wait_metric(pa, "segstream_partitions_owned", 12, 0, 60), 12,
                 "late1's partitions, assigned first, were never taken");
    produce_lines(EVENTS / 2, EVENTS);
    finish(a, pa, "crash:", EVENTS + 2, max_ts);
    h_stop(cut, SIGTERM, 10);
    no_outbox("crash:");
    same_as_clean_run(EVENTS + 2, max_ts);
}

/* Two input topics (CONTRACT §1), Redis state, SIGKILLs while their
 * backlog is applied merged by event time: the state equals a clean run's,
 * and the latest change a consumer sees of each customer is Redis's. A
 * customer's cluster changes then wait in the outbox lists of two
 * partitions; published list after list, 37 of 4 000 customers ended on an
 * older cluster than Redis held. */
Test(redis, two_input_topics_through_kills_end_where_redis_does)
{
    need_tools();
    broker = h_broker(dir, 3, "clickstream,purchases,changes-clean,changes-crash,segstream.dlq", B,
                      sizeof(B));
    cr_assert_gt(broker, 0);
    rport = h_free_port();
    redis = h_redis(dir, rport, 0);
    cr_assert_gt(redis, 0);
    int64_t max_ts = gen_events(4000, 60000, 5);
    cr_assert_eq(h_run("cd %s && sed 's/^{\"customer_id\":\"\\([^\"]*\\)\"/\\1\\t&/' ev.jsonl > "
                       "ev.keyed && grep '\"type\":\"purchase\"' ev.keyed > purch.keyed && "
                       "grep -v '\"type\":\"purchase\"' ev.keyed > click.keyed && "
                       "kcat -P -X enable.idempotence=true -z lz4 -b %s -t purchases -K '\\t' -l "
                       "purch.keyed && kcat -P -X enable.idempotence=true -z lz4 -b %s -t "
                       "clickstream -K '\\t' -l click.keyed",
                       dir, B, B),
                 0);
    topics = "  topics: [clickstream, purchases]\n";
    write_cfg("crash.yaml", "g-crash", "crash:", "changes-crash");
    srand(11);
    for (int i = 0; i < 6; i++) {
        int port;
        pid_t pid = start_run("crash.yaml", "crash.log", &port);
        h_wait_metric(port, "segstream_partitions_owned", 6, 0, 60);
        h_sleep(0.3 + (double)(rand() % 1500) / 1000.0);
        double at = metric(port, "segstream_events_applied_total");
        double waits = metric(port, "segstream_merge_waits_total");
        cr_assert_eq(h_stop(pid, SIGKILL, 10), 128 + SIGKILL);
        fprintf(stderr, "kill %d: applied %.0f, merge waits %.0f, checkpoints hold %ld\n", i, at,
                waits, offsets_sum("crash:"));
        h_run("cp %s/crash.log %s/crash%d.log", dir, dir, i);
    }
    int port;
    pid_t pid = start_run("crash.yaml", "crash.log", &port);
    finish(pid, port, "crash:", 60000, max_ts);
    same_as_clean_run(60000, max_ts);
    long repeats;
    compare_changes(&repeats);
    latest_changes_match_redis("crash:");
}
