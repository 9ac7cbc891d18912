/* tests/integration/test_kreplay.c: `segstream replay --input kafka:TOPIC`
 * against `segstream broker`, with records from `segstream gen` (record
 * timestamp = event time) and from kcat (wall-clock timestamps) in the same
 * 4-partition topics. Checks that a range replays to the same bytes twice
 * and from a file dump of itself, in the documented merge order (checked
 * here against a merge the test computes from kcat's own reading); that
 * events outside [from, to) change nothing (sentinels on both sides); that
 * partitions end at the end offsets taken at start; that outputs stay out
 * of the live namespaces unless --allow-live; and the model flags. */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "harness.h"

#define PY "/usr/bin/python3 " SEG_SOURCE_DIR "/tests/integration/kafka_peer.py"

static const char *dir;
static char B[256];
static pid_t broker = -1, redis = -1;

static void setup(void)
{
    dir = h_tmpdir();
    cr_assert_not_null(dir);
}

static void teardown(void)
{
    if (broker > 0) h_stop(broker, SIGTERM, 10);
    if (redis > 0) h_stop(redis, SIGTERM, 10);
    broker = redis = -1;
    h_stop_spawned();                                        /* what a failed test left running */
    if (!getenv("SEG_TEST_KEEP")) h_run("rm -rf '%s'", dir); /* keep to debug a failure */
}

TestSuite(kreplay, .init = setup, .fini = teardown, .timeout = 900);

static void need_kcat(void)
{
    if (h_run("command -v kcat >/dev/null") != 0)
        cr_skip_test("kcat missing: run scripts/install-deps.sh");
}

static void start_broker(const char *topics)
{
    broker = h_broker(dir, 4, topics, B, sizeof(B));
    cr_assert_gt(broker, 0, "segstream broker did not print its bootstrap line");
}

static const char *path_of(const char *name)
{
    static char p[4][600];
    static int i;
    i = (i + 1) % 4;
    snprintf(p[i], sizeof(p[i]), "%s/%s", dir, name);
    return p[i];
}

/* The event time of a JSON line (integer ms, or RFC 3339 at second
 * precision as the sentinels here write it), INT64_MIN when it has none. */
static int64_t ts_of(const char *line)
{
    const char *t = strstr(line, "\"ts\":");
    if (!t) return INT64_MIN;
    t += 5;
    if (*t != '"') return strtoll(t, NULL, 10);
    struct tm tm = {0};
    if (sscanf(t + 1, "%d-%d-%dT%d:%d:%d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
               &tm.tm_min, &tm.tm_sec) != 6)
        return INT64_MIN;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (int64_t)timegm(&tm) * 1000;
}

/* Copies the JSON lines of `in` with ts in [from, to) as "key<TAB>line"
 * for kcat -K (the key is the customer id). Returns the count. */
static long keyed_copy(const char *in, const char *out, int64_t from, int64_t to)
{
    FILE *fi = fopen(path_of(in), "r"), *fo = fopen(path_of(out), "w");
    cr_assert(fi && fo);
    static char line[1 << 16];
    long n = 0;
    while (fgets(line, sizeof(line), fi)) {
        int64_t ts = ts_of(line);
        if (ts < from || ts >= to) continue;
        const char *k = strstr(line, "\"customer_id\":\"");
        cr_assert_not_null(k);
        k += strlen("\"customer_id\":\"");
        fprintf(fo, "%.*s\t%s", (int)(strchr(k, '"') - k), k, line);
        n++;
    }
    fclose(fi);
    fclose(fo);
    return n;
}

/* kcat stamps each record with the wall clock (now), not its event time. */
static void kcat_produce(const char *keyed, const char *topic)
{
    cr_assert_eq(h_run("kcat -P -b %s -t %s -K '\\t' -l %s", B, topic, path_of(keyed)), 0,
                 "kcat could not produce");
}

static void gen(const char *out, int customers, int events, int seed, const char *extra)
{
    cr_assert_eq(h_run("%s gen --customers %d --events %d --seed %d --out %s --brokers %s %s "
                       "2>/dev/null",
                       SEG_BIN, customers, events, seed,
                       strncmp(out, "kafka:", 6) == 0 ? out : path_of(out), B, extra),
                 0);
}

/* The merge order replay documents, computed here from kcat's reading of
 * the topic (partition, offset, payload): each partition in offset order,
 * the partitions merged by (event time, partition), a record without an
 * event time first when it heads its partition, records outside [from,
 * to) left out. Written to `out` one payload per line. Returns the count. */
static long reference_merge(const char *topic, int64_t from, int64_t to, const char *out)
{
    const char *tsv = path_of("kcat.tsv");
    cr_assert_eq(h_run("kcat -C -b %s -t %s -e -q -f '%%p\\t%%o\\t%%s\\n' > %s", B, topic, tsv), 0);
    enum { P = 4 };
    static char *lines[P][200000];
    static int64_t key[P][200000];
    static long offs[P][200000];
    int n[P] = {0}, at[P] = {0};
    FILE *f = fopen(tsv, "r");
    cr_assert_not_null(f);
    static char line[1 << 16];
    while (fgets(line, sizeof(line), f)) {
        int p;
        long off;
        int used = 0;
        cr_assert_eq(sscanf(line, "%d\t%ld\t%n", &p, &off, &used), 2, "%s", line);
        cr_assert(p >= 0 && p < P && n[p] < 200000);
        const char *payload = line + used;
        int64_t ts = ts_of(payload);
        if (ts != INT64_MIN && (ts < from || ts >= to)) continue;
        lines[p][n[p]] = strdup(payload);
        key[p][n[p]] = ts;
        offs[p][n[p]++] = off;
    }
    fclose(f);
    for (int p = 0; p < P; p++)
        for (int i = 1; i < n[p]; i++)
            cr_assert_gt(offs[p][i], offs[p][i - 1], "kcat reads a partition in offset order");
    FILE *o = fopen(out, "w");
    long total = 0;
    for (;;) {
        int best = -1;
        for (int p = 0; p < P; p++)
            if (at[p] < n[p] && (best < 0 || key[p][at[p]] < key[best][at[best]])) best = p;
        if (best < 0) break;
        fputs(lines[best][at[best]], o);
        free(lines[best][at[best]++]);
        total++;
    }
    fclose(o);
    return total;
}

static long summary_field(const char *log, const char *name)
{
    char *s = h_slurp(path_of(log), NULL);
    cr_assert_not_null(s);
    const char *p = strstr(s, name);
    cr_assert_not_null(p, "no '%s' in %s: %s", name, log, s);
    long v = strtol(p + strlen(name), NULL, 10);
    free(s);
    return v;
}

/* 2024-02-01T00:00:00Z and 2024-05-01T00:00:00Z: a range inside gen's
 * default half year from 2024-01-01 */
#define FROM     1706745600000LL
#define TO       1714521600000LL
#define FROM_STR "2024-02-01T00:00:00Z"

Test(kreplay, a_range_replays_to_identical_bytes_twice_and_from_its_dump)
{
    need_kcat();
    start_broker("kr");
    /* gen's records carry their event time as Kafka timestamp; kcat's the
     * wall clock of now, long after their event times: a topic whose
     * record timestamps do not order its events (and the same customers
     * in both, so the interleaving matters) */
    gen("kafka:kr", 2000, 30000, 7, "");
    gen("late.jsonl", 800, 10000, 8, "--start 2024-01-20T00:00:00Z");
    long late = keyed_copy("late.jsonl", "late.keyed", INT64_MIN, INT64_MAX);
    cr_assert_gt(late, 9000);
    kcat_produce("late.keyed", "kr");
    /* records that do not decode: dead letters, in the same place each time */
    FILE *f = fopen(path_of("bad.keyed"), "w");
    fprintf(f, "c000001\tnot json at all\nc000002\t{\"customer_id\":\"c000002\",\"type\":7}\n"
               "nokey\t{\"type\":\"page_view\"}\n");
    fclose(f);
    kcat_produce("bad.keyed", "kr");

    /* a small warm-up, so that the model seeds within the range and the
     * cluster changes are part of what must repeat */
    char cfg[600];
    snprintf(cfg, sizeof(cfg), "%s", path_of("kr.yaml"));
    f = fopen(cfg, "w");
    fprintf(f, "clusters:\n  warmup: 300\n" H_EXAMPLE_RULES);
    fclose(f);
    for (int i = 0; i < 2; i++)
        cr_assert_eq(h_run("%s replay -c %s --input kafka:kr --brokers %s --from %s --to %lld "
                           "--out %s/k%d.jsonl --snapshot %s/k%d.csv --dump %s/dump%d.jsonl "
                           "2> %s/k%d.log",
                           SEG_BIN, cfg, B, FROM_STR, TO, dir, i, dir, i, dir, i, dir, i),
                     0, "see %s/k%d.log", dir, i);
    cr_assert(h_same_file(path_of("k0.jsonl"), path_of("k1.jsonl")), "two replays differ");
    cr_assert(h_same_file(path_of("k0.csv"), path_of("k1.csv")), "two snapshots differ");
    cr_assert(h_same_file(path_of("k0.jsonl.dlq"), path_of("k1.jsonl.dlq")));
    cr_assert(h_same_file(path_of("dump0.jsonl"), path_of("dump1.jsonl")));
    long changes = h_count_lines(path_of("k0.jsonl"));
    cr_assert_gt(changes, 3000, "changes: %ld", changes);
    char *out = h_slurp(path_of("k0.jsonl"), NULL);
    cr_assert(strstr(out, "\"dimension\":\"cluster\""), "the model seeded and assigned");
    free(out);
    cr_assert_eq(h_count_lines(path_of("k0.jsonl.dlq")), 3, "three records do not decode");
    char *dlq = h_slurp(path_of("k0.jsonl.dlq"), NULL);
    cr_assert(strstr(dlq, "\"topic\":\"kr\",\"partition\":"), "%s", dlq);
    cr_assert(strstr(dlq, "\"payload\":\"not json at all\""), "%s", dlq);
    free(dlq);

    /* The dump is the range in the merge order: the same records as a
     * merge of kcat's reading by (event time, partition), line for line. */
    long ref = reference_merge("kr", FROM, TO, path_of("ref.jsonl"));
    cr_assert(h_same_file(path_of("dump0.jsonl"), path_of("ref.jsonl")),
              "--dump is not the documented merge of the partitions (%ld records)", ref);
    cr_assert_eq(summary_field("k0.log", "\nrecords "), ref);
    cr_assert_gt(summary_field("k0.log", "skipped outside [from, to): "), 10000);

    /* A file replay applies the file in its own order: the dump, replayed
     * (with or without the range: it holds only the range), gives the
     * same bytes as the Kafka replay. */
    cr_assert_eq(h_run("%s replay -q -c %s --input %s/dump0.jsonl --out %s/f.jsonl --snapshot "
                       "%s/f.csv",
                       SEG_BIN, cfg, dir, dir, dir),
                 0);
    cr_assert(h_same_file(path_of("k0.jsonl"), path_of("f.jsonl")),
              "Kafka replay and file replay of its dump differ");
    cr_assert(h_same_file(path_of("k0.csv"), path_of("f.csv")));
    cr_assert_eq(h_run("%s replay -q -c %s --input %s/ref.jsonl --from %s --to %lld --out "
                       "%s/g.jsonl",
                       SEG_BIN, cfg, dir, FROM_STR, TO, dir),
                 0);
    cr_assert(h_same_file(path_of("k0.jsonl"), path_of("g.jsonl")));

    /* --seek-by-time only ever skips records before the range: here the
     * mock cluster cannot look offsets up by time, and the result is the
     * same as reading every partition from its beginning */
    cr_assert_eq(h_run("%s replay -q -c %s --input kafka:kr --brokers %s --from %s --to %lld "
                       "--seek-by-time --out %s/s.jsonl",
                       SEG_BIN, cfg, B, FROM_STR, TO, dir),
                 0);
    cr_assert(h_same_file(path_of("k0.jsonl"), path_of("s.jsonl")));
}

Test(kreplay, events_outside_the_range_change_nothing)
{
    need_kcat();
    start_broker("with-sentinels,in-range-only");
    gen("ev.jsonl", 1000, 30000, 3, "");
    /* with-sentinels: every event of gen, then sentinels for the same
     * customers (and one otherwise unknown) on both sides of the range: a
     * huge purchase just before `from`, a huge discounted purchase with a
     * new country exactly at `to` (excluded: the range is half-open) and a
     * day after, written as ms and as RFC 3339, all stamped by kcat with
     * the wall clock */
    long all = keyed_copy("ev.jsonl", "ev.keyed", INT64_MIN, INT64_MAX);
    kcat_produce("ev.keyed", "with-sentinels");
    FILE *f = fopen(path_of("sentinels.keyed"), "w");
    cr_assert_not_null(f);
    const char *rfc[] = {NULL, "2024-01-31T23:59:59Z", NULL, "2024-05-01T00:00:00Z", NULL};
    const long long at[] = {FROM - 1, 0, TO, 0, TO + 86400000LL};
    int sentinels = 0;
    for (int c = 0; c < 1000; c += 7)
        for (int w = 0; w < 5; w++) {
            char ts[64];
            if (rfc[w])
                snprintf(ts, sizeof(ts), "\"%s\"", rfc[w]);
            else
                snprintf(ts, sizeof(ts), "%lld", at[w]);
            fprintf(f,
                    "c%06d\t{\"customer_id\":\"c%06d\",\"type\":\"purchase\",\"ts\":%s,"
                    "\"amount\":99999,\"discount\":true,\"category\":\"sentinel\","
                    "\"traits\":{\"country\":\"ZZ\"}}\n",
                    c, c, ts);
            sentinels++;
        }
    fprintf(f, "stranger\t{\"customer_id\":\"stranger\",\"type\":\"page_view\",\"ts\":%lld}\n",
            TO + 1);
    sentinels++;
    fclose(f);
    kcat_produce("sentinels.keyed", "with-sentinels");
    /* in-range-only: only gen's events in [from, to), keyed alike, so each
     * lands in the same partition in the same order */
    long in = keyed_copy("ev.jsonl", "in.keyed", FROM, TO);
    cr_assert(in > 5000 && in < all - 5000, "in range: %ld of %ld", in, all);
    kcat_produce("in.keyed", "in-range-only");

    char cfg[600];
    snprintf(cfg, sizeof(cfg), "%s", path_of("rules.yaml"));
    f = fopen(cfg, "w");
    fprintf(f, H_EXAMPLE_RULES);
    fclose(f);
    cr_assert_eq(h_run("%s replay -c %s --input kafka:with-sentinels --brokers %s --from %s --to "
                       "%lld --out %s/range.jsonl --snapshot %s/range.csv 2> %s/range.log",
                       SEG_BIN, cfg, B, FROM_STR, TO, dir, dir, dir),
                 0);
    cr_assert_eq(h_run("%s replay -q -c %s --input kafka:in-range-only --brokers %s --out "
                       "%s/only.jsonl --snapshot %s/only.csv",
                       SEG_BIN, cfg, B, dir, dir),
                 0);
    cr_assert_gt(h_count_lines(path_of("range.jsonl")), 2000);
    cr_assert(h_same_file(path_of("range.jsonl"), path_of("only.jsonl")),
              "events outside [from, to) changed the output");
    cr_assert(h_same_file(path_of("range.csv"), path_of("only.csv")));
    cr_assert_eq(summary_field("range.log", "\nrecords "), in);
    cr_assert_eq(summary_field("range.log", "skipped outside [from, to): "), all - in + sentinels);
    char *snap = h_slurp(path_of("range.csv"), NULL);
    cr_assert_null(strstr(snap, "stranger"));
    free(snap);

    /* the sentinels would have mattered */
    cr_assert_eq(h_run("%s replay -q -c %s --input kafka:with-sentinels --brokers %s --to %lld "
                       "--out %s/upto.jsonl",
                       SEG_BIN, cfg, B, TO, dir),
                 0);
    char *upto = h_slurp(path_of("upto.jsonl"), NULL);
    cr_assert(strstr(upto, "\"to\":\"in\""), "rules enter");
    cr_assert_not(h_same_file(path_of("range.jsonl"), path_of("upto.jsonl")));
    free(upto);
}

Test(kreplay, partitions_end_at_their_end_offsets_at_start)
{
    need_kcat();
    start_broker("sparse");
    /* one record in partition 2, none elsewhere: empty partitions end at
     * once */
    cr_assert_eq(h_run("echo '{\"customer_id\":\"a\",\"type\":\"page_view\",\"ts\":1710000000000}'"
                       " | kcat -P -b %s -t sparse -p 2",
                       B),
                 0);
    cr_assert_eq(h_run("timeout 30 %s replay --input kafka:sparse --brokers %s --out %s/one.jsonl "
                       "2> %s/one.log",
                       SEG_BIN, B, dir, dir),
                 0);
    cr_assert_eq(summary_field("one.log", "\nrecords "), 1);
    /* a producer that never stops: the replay still ends, at the offsets
     * the partitions had when it started */
    /* timeout: its own process group, which a SIGTERM to it ends whole */
    pid_t prod =
        h_spawn(NULL, NULL,
                "timeout 120 sh -c 'i=0; while :; do i=$((i+1)); echo \"{\\\"customer_id\\\":"
                "\\\"c$((i %% 50))\\\",\\\"type\\\":\\\"page_view\\\",\\\"ts\\\":"
                "$((1710000000000 + i))}\"; sleep 0.001; done | kcat -P -b %s -t sparse'",
                B);
    cr_assert_gt(prod, 0);
    h_sleep(2);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(h_run("timeout 60 %s replay --input kafka:sparse --brokers %s --out "
                           "%s/live%d.jsonl 2> %s/live%d.log",
                           SEG_BIN, B, dir, i, dir, i),
                     0, "a replay of a growing topic must end (see %s/live%d.log)", dir, i);
        h_sleep(0.5);
    }
    h_stop(prod, SIGTERM, 5);
    long a = summary_field("live0.log", "\nrecords "), c = summary_field("live2.log", "\nrecords ");
    cr_assert(a > 1 && c > a, "each replay reads up to where the topic ended at its start: %ld %ld",
              a, c);
}

Test(kreplay, outputs_stay_out_of_the_live_namespaces_and_topics_carry_the_same_changes)
{
    need_kcat();
    if (h_run("/usr/bin/python3 -c 'import kafka, lz4' 2>/dev/null") != 0)
        cr_skip_test("Debian's python3-kafka/python3-lz4 missing: run scripts/install-deps.sh");
    start_broker("ev,segment-changes,segstream.dlq");
    gen("ev.jsonl", 500, 8000, 4, "");
    keyed_copy("ev.jsonl", "ev.keyed", INT64_MIN, INT64_MAX);
    kcat_produce("ev.keyed", "ev");
    FILE *f = fopen(path_of("bad.keyed"), "w");
    fprintf(f, "k1\tnot json\n");
    fclose(f);
    kcat_produce("bad.keyed", "ev");
    const char *in = "--input kafka:ev";

    /* the config's topics are live: refused, with a message naming them */
    const char *refused[] = {"--out kafka:segment-changes", "--out kafka:events",
                             "--out x.jsonl --dlq kafka:segstream.dlq", "--out kafka:ev"};
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(h_run("cd %s && %s replay %s --brokers %s %s 2> %s/refused.txt", dir, SEG_BIN,
                           in, B, refused[i], dir),
                     2, "%s", refused[i]);
        char *why = h_slurp(path_of("refused.txt"), NULL);
        cr_assert(strstr(why, i == 3 ? "is the input topic" : "--allow-live"), "%s", why);
        free(why);
    }

    /* a topic of its own: the same change events as a file, keyed by
     * customer, dead letters to OUT.dlq with their origin */
    cr_assert_eq(h_run("%s replay -q %s --brokers %s --out %s/file.jsonl", SEG_BIN, in, B, dir), 0);
    cr_assert_eq(h_run("%s replay -q %s --brokers %s --out kafka:replay-1", SEG_BIN, in, B), 0);
    long n = h_count_lines(path_of("file.jsonl"));
    cr_assert_gt(n, 500);
    cr_assert_eq(h_run(PY " consume --brokers %s --topic replay-1 --out %s/topic.dump --expect %ld "
                          "--idle 8 >/dev/null",
                       B, dir, n),
                 0);
    cr_assert_eq(h_run("/usr/bin/python3 -c 'import json,sys\n"
                       "recs=[json.loads(l) for l in open(sys.argv[1])]\n"
                       "vals=sorted(r[\"value\"] for r in recs)\n"
                       "assert all(json.loads(r[\"value\"])[\"customer_id\"]==r[\"key\"] "
                       "for r in recs)\n"
                       "assert vals==sorted(l.rstrip(\"\\n\") for l in open(sys.argv[2]))' "
                       "%s/topic.dump %s/file.jsonl",
                       dir, dir),
                 0, "the topic holds the file's change events, keyed by customer id");
    cr_assert_eq(h_run(PY " consume --brokers %s --topic replay-1.dlq --out %s/dlq.dump --expect 1 "
                          "--idle 8 >/dev/null",
                       B, dir),
                 0);
    char *d = h_slurp(path_of("dlq.dump"), NULL);
    cr_assert(strstr(d, "\"error\": \"not_json_or_msgpack\"") && strstr(d, "\"topic\": \"ev\"") &&
                  strstr(d, "\"value\": \"not json\""),
              "%s", d);
    free(d);
    /* asked explicitly: allowed */
    cr_assert_eq(h_run("%s replay -q %s --brokers %s --out kafka:segment-changes --allow-live",
                       SEG_BIN, in, B),
                 0);

    /* Redis: the live prefix needs --allow-live; a prefix of its own is
     * written as `run` writes customers, and not twice without --replace */
    if (h_run("command -v redis-server >/dev/null") != 0) return;
    int port = h_free_port();
    redis = h_redis(dir, port, 0);
    cr_assert_gt(redis, 0);
    cr_assert_eq(h_run("%s replay -q %s --brokers %s --out %s/o.jsonl --state "
                       "redis://127.0.0.1:%d --prefix seg: 2>/dev/null",
                       SEG_BIN, in, B, dir, port),
                 2);
    cr_assert_eq(h_run("redis-cli -p %d dbsize | grep -qx 0", port), 0, "nothing written");
    /* so is one inside it, or around it: seg:c: would write what run reads as
     * customers, and se with --replace would delete the live state */
    for (int i = 0; i < 3; i++)
        cr_assert_eq(h_run("%s replay -q %s --brokers %s --out %s/o.jsonl --state "
                           "redis://127.0.0.1:%d --prefix '%s' --replace 2>/dev/null",
                           SEG_BIN, in, B, dir, port, (const char *[]){"seg:c:", "se", ""}[i]),
                     2, "prefix '%s'", (const char *[]){"seg:c:", "se", ""}[i]);
    cr_assert_eq(h_run("redis-cli -p %d dbsize | grep -qx 0", port), 0, "nothing written");
    const char *st = "--state redis://127.0.0.1:%d --prefix rp1:";
    char state[128];
    snprintf(state, sizeof(state), st, port);
    cr_assert_eq(h_run("%s replay -q %s --brokers %s --out %s/o.jsonl --snapshot %s/o.csv %s "
                       "--save-model %s/m.mp",
                       SEG_BIN, in, B, dir, dir, state, dir),
                 0);
    cr_assert_eq(h_run("%s inspect c000001 --json --redis redis://127.0.0.1:%d --prefix rp1: > "
                       "%s/c1.json",
                       SEG_BIN, port, dir),
                 0);
    char *c1 = h_slurp(path_of("c1.json"), NULL), *snap = h_slurp(path_of("o.csv"), NULL);
    const char *row = strstr(snap, "\nc000001,");
    cr_assert(c1 && row);
    char lc[32] = "";
    sscanf(row + 9, "%31[^,]", lc);
    char want[64];
    snprintf(want, sizeof(want), "\"lifecycle\":\"%s\"", lc);
    cr_assert(strstr(c1, want), "inspect shows the replay's customer: %s vs %s", c1, lc);
    free(c1);
    free(snap);
    cr_assert_eq(h_run("redis-cli -p %d hget rp1:sizes customers | grep -qx 500", port), 0);
    cr_assert_eq(h_run("%s replay -q %s --brokers %s --out %s/o.jsonl %s 2>/dev/null", SEG_BIN, in,
                       B, dir, state),
                 1, "a prefix that holds keys is refused");
    /* --replace deletes its own keys, all of them, and only those, however
     * many other keys share the database (their SCAN takes several pages) */
    cr_assert_eq(h_run("redis-cli -p %d --scan --pattern 'rp1:*' | wc -l > %s/n1.txt && for i in "
                       "$(seq 3000); do echo \"SET other:$i 1\"; done | redis-cli -p %d > "
                       "/dev/null",
                       port, dir, port),
                 0);
    cr_assert_eq(h_run("%s replay -q %s --brokers %s --out %s/o.jsonl %s --replace", SEG_BIN, in, B,
                       dir, state),
                 0);
    cr_assert_eq(
        h_run("redis-cli -p %d --scan --pattern 'rp1:*' | wc -l | cmp -s - %s/n1.txt", port, dir),
        0, "the namespace after --replace holds what the first replay wrote");
    cr_assert_eq(h_run("redis-cli -p %d --scan --pattern 'other:*' | wc -l | grep -qx 3000", port),
                 0, "other keys untouched");
    /* the model it wrote, read back from Redis, is the model file */
    cr_assert_eq(h_run("redis-cli -p %d --no-raw get rp1:model > /dev/null", port), 0);
    cr_assert_eq(h_run("%s replay -q %s --brokers %s --out %s/fr.jsonl --model "
                       "redis://127.0.0.1:%d/rp1: --freeze-model --save-model %s/fr.mp",
                       SEG_BIN, in, B, dir, port, dir),
                 0);
    cr_assert(h_same_file(path_of("m.mp"), path_of("fr.mp")), "the model in Redis is the file's");

    /* no --prefix (CONTRACT §5 has it optional): the replays' own namespace
     * beside the live one, replaced by the next such replay, so the same
     * replay runs again to the same bytes and the same keys */
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(h_run("%s replay -q %s --brokers %s --out %s/np%d.jsonl --state "
                           "redis://127.0.0.1:%d",
                           SEG_BIN, in, B, dir, i, port),
                     0, "replay %d without --prefix", i);
        cr_assert_eq(h_run("redis-cli -p %d --scan --pattern 'seg-replay:*' | wc -l > %s/np%d.txt",
                           port, dir, i),
                     0);
    }
    cr_assert(h_same_file(path_of("np0.jsonl"), path_of("np1.jsonl")));
    cr_assert(h_same_file(path_of("np0.txt"), path_of("np1.txt")));
    cr_assert(h_same_file(path_of("np0.txt"), path_of("n1.txt")), "as many keys as under rp1:");
    cr_assert_eq(h_run("redis-cli -p %d hget seg-replay:sizes customers | grep -qx 500", port), 0);
    cr_assert_eq(h_run("redis-cli -p %d --scan --pattern 'seg:*' | wc -l | grep -qx 0", port), 0,
                 "nothing in the live namespace");
    /* a live prefix without ':' at its end: beside it, not inside it */
    cr_assert_eq(h_run("SEGSTREAM_REDIS_PREFIX=shop %s replay -q %s --brokers %s --out "
                       "%s/np.jsonl --state redis://127.0.0.1:%d",
                       SEG_BIN, in, B, dir, port),
                 0);
    cr_assert_eq(h_run("redis-cli -p %d hget replay-shop:sizes customers | grep -qx 500", port), 0);
}

Test(kreplay, a_saved_model_starts_a_replay_and_a_frozen_one_never_moves)
{
    need_kcat();
    start_broker("hist,later");
    gen("kafka:hist", 3000, 60000, 9, "");
    gen("kafka:later", 600, 12000, 10, "--start 2024-07-01T00:00:00Z --days 60");
    /* learn on the history, save the model */
    cr_assert_eq(h_run("%s replay -q --input kafka:hist --brokers %s --out %s/h.jsonl "
                       "--save-model %s/m.mp",
                       SEG_BIN, B, dir, dir),
                 0);
    /* frozen: the later period assigned to those centroids; the model
     * saved afterwards is the same bytes, and so is the output twice */
    for (int i = 0; i < 2; i++)
        cr_assert_eq(h_run("%s replay -q --input kafka:later --brokers %s --out %s/fz%d.jsonl "
                           "--snapshot %s/fz%d.csv --model %s/m.mp --freeze-model --save-model "
                           "%s/fz%d.mp",
                           SEG_BIN, B, dir, i, dir, i, dir, dir, i),
                     0);
    cr_assert(h_same_file(path_of("m.mp"), path_of("fz0.mp")), "a frozen model moved");
    cr_assert(h_same_file(path_of("fz0.jsonl"), path_of("fz1.jsonl")));
    char *fz = h_slurp(path_of("fz0.jsonl"), NULL);
    cr_assert(strstr(fz, "\"dimension\":\"cluster\""), "customers are assigned at once");
    cr_assert_null(strstr(fz, "\"model_version\":0"), "every change carries the saved model");
    free(fz);
    /* every customer of the later period has a cluster of the saved model */
    FILE *f = fopen(path_of("fz0.csv"), "r");
    char line[4096];
    cr_assert_not_null(fgets(line, sizeof(line), f));
    int rows = 0;
    while (fgets(line, sizeof(line), f)) {
        int cl = -1;
        cr_assert_eq(sscanf(strchr(line, ',') + 1, "%*[^,],%d,", &cl), 1, "%s", line);
        cr_assert_geq(cl, 0, "%s", line);
        rows++;
    }
    fclose(f);
    cr_assert_eq(rows, 600);
    /* not frozen: starts from it and learns on; afresh: the later period
     * alone (600 customers) never fills the warm-up, nobody is clustered */
    cr_assert_eq(h_run("%s replay -q --input kafka:later --brokers %s --out %s/go.jsonl --model "
                       "%s/m.mp --save-model %s/go.mp",
                       SEG_BIN, B, dir, dir, dir),
                 0);
    cr_assert_not(h_same_file(path_of("m.mp"), path_of("go.mp")), "an unfrozen model learns");
    cr_assert_eq(
        h_run("%s replay -q --input kafka:later --brokers %s --out %s/new.jsonl", SEG_BIN, B, dir),
        0);
    char *nw = h_slurp(path_of("new.jsonl"), NULL);
    cr_assert_null(strstr(nw, "\"dimension\":\"cluster\""));
    free(nw);
    cr_assert_eq(h_run("%s replay -q --input kafka:later --brokers %s --out %s/x.jsonl "
                       "--freeze-model 2>/dev/null",
                       SEG_BIN, B, dir),
                 2, "--freeze-model without --model");
}

/* Issue 7, live = replay: `run` on the embedded broker with idle advance on
 * and short thresholds; events come in two bursts with quiet spells after
 * each, in which W moves with the wall clock and silent customers change
 * (the second burst's events are behind the W the first quiet spell
 * reached). A replay of the topic, reading the run's watermark records
 * (watermark.control_topic), makes the same lifecycle and rule changes:
 * same event_id, from, to and ts. Without the records it cannot. */
static void burst(const char *name, int64_t t0, int first, int n, int step_ms)
{
    FILE *f = fopen(path_of(name), "w");
    cr_assert_not_null(f);
    for (int i = 0; i < n; i++) {
        int c = first + i;
        fprintf(f,
                "q%03d\t{\"customer_id\":\"q%03d\",\"type\":\"%s\",\"ts\":%lld,\"amount\":%d,"
                "\"event_id\":\"%s-%d\"}\n",
                c, c, i % 3 == 0 ? "purchase" : "product_view",
                (long long)(t0 + (int64_t)i * step_ms), 10 + i, name, i);
    }
    fclose(f);
    kcat_produce(name, "events");
}

Test(kreplay, a_live_run_with_idle_advance_replays_to_the_same_changes)
{
    need_kcat();
    if (h_run("/usr/bin/python3 -c 'import kafka, lz4' 2>/dev/null") != 0)
        cr_skip_test("Debian's python3-kafka/python3-lz4 missing: run scripts/install-deps.sh");
    start_broker("events,segment-changes,segstream.dlq,segstream.watermarks");
    FILE *f = fopen(path_of("live.yaml"), "w");
    cr_assert_not_null(f);
    fprintf(f,
            "kafka:\n  brokers: \"%s\"\n  group_id: g-live\n"
            "watermark:\n  idle_timeout: 1s\n  idle_advance: true\n"
            "lifecycle:\n  new: 2s\n  at_risk: 3s\n  lapsed: 5s\n  reactivated: 2s\n"
            "rules:\n  - name: quiet\n    all: [\"recency_days > 0.00004\"]\n"
            "  - name: buyer\n    all: [\"orders >= 1\", \"recency_days <= 0.00005\"]\n"
            "http:\n  listen: \"127.0.0.1:0\"\n",
            B);
    fclose(f);
    pid_t run = h_spawn(NULL, path_of("live.log"), "%s run -c %s", SEG_BIN, path_of("live.yaml"));
    cr_assert_gt(run, 0);
    int port = h_daemon_port(path_of("live.log"), 20);
    cr_assert_gt(port, 0);
    cr_assert_eq(h_wait_metric(port, "segstream_partitions_owned", 4, 0, 30), 4);

    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int64_t E = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
    burst("b1.keyed", E, 0, 60, 20); /* 60 customers over 1.2 s */
    cr_assert_eq(h_wait_metric(port, "segstream_events_in_total{topic=\"events\"}", 60, 0, 60), 60);
    h_sleep(7); /* idle: W moves ~6 s with the wall clock, everyone lapses */
    burst("b2.keyed", E + 500, 30, 60, 10); /* 30 returning (late for W), 30 new */
    cr_assert_eq(h_wait_metric(port, "segstream_events_in_total{topic=\"events\"}", 120, 0, 60),
                 120);
    h_sleep(7);
    double lc = h_wait_metric(port, "segstream_changes_total{dimension=\"lifecycle\"}", 0, 1, 5);
    double rl = h_wait_metric(port, "segstream_changes_total{dimension=\"rule\"}", 0, 1, 5);
    double cl = h_wait_metric(port, "segstream_changes_total{dimension=\"cluster\"}", 0, 1, 5);
    cr_assert_eq(h_stop(run, SIGTERM, 60), 0);
    long total = (long)(lc + rl + cl);
    fprintf(stderr, "live: %.0f lifecycle, %.0f rule changes\n", lc, rl);
    cr_assert_gt(lc, 240, "every customer went through new, active, at_risk and lapsed");
    cr_assert_eq(h_run(PY " consume --brokers %s --topic segment-changes --out %s --expect %ld "
                          "--idle 8 > %s",
                       B, path_of("live.dump"), total, path_of("live.res")),
                 0);

    /* the replay reads the run's watermark records by default */
    cr_assert_eq(h_run("%s replay -c %s --input kafka:events --out %s 2> %s", SEG_BIN,
                       path_of("live.yaml"), path_of("replay.jsonl"), path_of("replay.log")),
                 0);
    cr_assert_eq(h_run(PY " compare --ids %s %s > %s", path_of("replay.jsonl"),
                       path_of("live.dump"), path_of("cmp.txt")),
                 0);
    char *cmp = h_slurp(path_of("cmp.txt"), NULL);
    cr_assert_not_null(cmp);
    char *log = h_slurp(path_of("replay.log"), NULL);
    const char *adv = log ? strstr(log, "wall-clock advances of W") : NULL;
    cr_assert_not_null(adv, "replay did not read the watermark records: %s", log ? log : "");
    adv--; /* the count before it: "N wall-clock advances" */
    while (adv > log && adv[-1] >= '0' && adv[-1] <= '9') adv--;
    long n_adv = strtol(adv, NULL, 10);
    fprintf(stderr, "replay read %ld watermark records\n", n_adv);
    cr_assert_gt(n_adv, 2, "two quiet spells of several seconds: records each second");
    free(log);
    fprintf(stderr, "live vs replay with the watermark records: %s", cmp);
    cr_expect_eq(h_field(cmp, "replay"), (long)(lc + rl), "%s", cmp);
    cr_expect_eq(h_field(cmp, "only_replay"), 0, "%s", cmp);
    cr_expect_eq(h_field(cmp, "only_run"), 0, "%s", cmp);
    free(cmp);

    /* without them W is event time only: the quiet spells' lapses cannot be seen */
    cr_assert_eq(h_run("%s replay -q -c %s --input kafka:events --watermarks none --out %s",
                       SEG_BIN, path_of("live.yaml"), path_of("replay0.jsonl")),
                 0);
    cr_assert_eq(h_run(PY " compare --ids %s %s > %s", path_of("replay0.jsonl"),
                       path_of("live.dump"), path_of("cmp0.txt")),
                 0);
    cmp = h_slurp(path_of("cmp0.txt"), NULL);
    cr_assert_not_null(cmp);
    fprintf(stderr, "live vs replay without them: %s", cmp);
    cr_expect_gt(h_field(cmp, "only_run"), 0, "%s", cmp);
    free(cmp);
}
