/* tests/integration/test_kafka.c: `segstream run` against `segstream broker`
 * with independent clients: kcat produces, Debian's python3-kafka (a second,
 * pure-Python implementation of the protocol) consumes. Checks that the
 * daemon's lifecycle and rule changes equal replay's, that its metrics count
 * what was produced, that bad records reach the dead-letter topic with their
 * headers while the daemon goes on, that a consumer group splits and hands
 * over partitions, and that it survives the mock cluster's injected faults. */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "harness.h"
#include "stream/broker.h"
#include "stream/kafka.h"

/* Kafka protocol API keys (not in librdkafka's public headers) */
enum { API_PRODUCE = 0, API_FETCH = 1, API_OFFSET_COMMIT = 8 };

#define PY "/usr/bin/python3 " SEG_SOURCE_DIR "/tests/integration/kafka_peer.py"

static const char *dir;
static char B[256];
static pid_t broker = -1;

static void need_peers(void)
{
    if (h_run("command -v kcat >/dev/null && /usr/bin/python3 -c 'import kafka, lz4' "
              "2>/dev/null") != 0)
        cr_skip_test("kcat or Debian's python3-kafka/python3-lz4 missing: run "
                     "scripts/install-deps.sh");
}

static void setup(void)
{
    dir = h_tmpdir();
    cr_assert_not_null(dir);
}

static void teardown(void)
{
    if (broker > 0) h_stop(broker, SIGTERM, 10);
    broker = -1;
    h_stop_spawned();                                        /* what a failed test left running */
    if (!getenv("SEG_TEST_KEEP")) h_run("rm -rf '%s'", dir); /* keep to debug a failure */
}

TestSuite(kafka, .init = setup, .fini = teardown, .timeout = 900);

static void start_broker(int partitions)
{
    broker = h_broker(dir, partitions, "events,segment-changes,segstream.dlq", B, sizeof(B));
    cr_assert_gt(broker, 0, "segstream broker did not print its bootstrap line");
}

/* The config every daemon here runs with: short idle timeout, no wall-clock
 * advance (so W depends on event time only, as in replay), any free port,
 * the example rules, and a short session so that a killed member is noticed. */
static void write_cfg(const char *name, const char *brokers, const char *group, const char *idle)
{
    cr_assert_eq(h_writef(dir, name,
                          "kafka:\n  brokers: \"%s\"\n  group_id: %s\n  properties:\n"
                          "    session.timeout.ms: \"6000\"\n    heartbeat.interval.ms: \"500\"\n"
                          "watermark:\n  idle_timeout: %s\n  idle_advance: false\n"
                          "http:\n  listen: \"127.0.0.1:0\"\n" H_EXAMPLE_RULES,
                          brokers, group, idle),
                 0);
}

/* gen writes customer_id first: "key<TAB>line" for kcat -K. Returns the
 * number of records and the largest ts. */
static long keyed_copy(const char *in, const char *out, int64_t *max_ts)
{
    char a[600], b[600];
    snprintf(a, sizeof(a), "%s/%s", dir, in);
    snprintf(b, sizeof(b), "%s/%s", dir, out);
    FILE *fi = fopen(a, "r"), *fo = fopen(b, "w");
    cr_assert(fi && fo);
    static char line[1 << 16];
    long n = 0;
    *max_ts = INT64_MIN;
    while (fgets(line, sizeof(line), fi)) {
        const char *k = strstr(line, "\"customer_id\":\"");
        cr_assert_not_null(k);
        k += strlen("\"customer_id\":\"");
        const char *e = strchr(k, '"');
        const char *t = strstr(line, "\"ts\":");
        cr_assert(e && t);
        int64_t ts = strtoll(t + 5, NULL, 10);
        if (ts > *max_ts) *max_ts = ts;
        fprintf(fo, "%.*s\t%s", (int)(e - k), k, line);
        n++;
    }
    fclose(fi);
    fclose(fo);
    return n;
}

static void kcat_produce(const char *keyed, const char *topic)
{
    cr_assert_eq(h_run("kcat -P -X enable.idempotence=true -b %s -t %s -K '\\t' -l %s/%s", B, topic,
                       dir, keyed),
                 0, "kcat could not produce");
}

static pid_t start_run(const char *cfg, const char *log, int *port)
{
    char lp[600];
    snprintf(lp, sizeof(lp), "%s/%s", dir, log);
    pid_t pid = h_spawn(NULL, lp, "%s run -c %s/%s", SEG_BIN, dir, cfg);
    cr_assert_gt(pid, 0);
    *port = h_daemon_port(lp, 20);
    cr_assert_gt(*port, 0, "segstream run did not start serving HTTP (see %s)", lp);
    return pid;
}

static double metric(int port, const char *series)
{
    char *b = h_http_get(port, "/metrics", NULL);
    cr_assert_not_null(b, "GET /metrics failed");
    double v = h_metric(b, series);
    free(b);
    return isnan(v) ? 0 : v;
}

static double changes_total(int port)
{
    return metric(port, "segstream_changes_total{dimension=\"lifecycle\"}") +
           metric(port, "segstream_changes_total{dimension=\"cluster\"}") +
           metric(port, "segstream_changes_total{dimension=\"rule\"}");
}

/* Waits until the daemon consumed n records, W reached max_ts and every
 * produced record is acknowledged. */
static void wait_done(int port, double n, int64_t max_ts)
{
    double got = h_wait_metric(port, "segstream_events_in_total{topic=\"events\"}", n, 0, 180);
    cr_assert_eq(got, n, "consumed %.0f of %.0f records", got, n);
    if (max_ts != INT64_MIN) {
        double w = h_wait_metric(port, "segstream_watermark_ms", (double)max_ts, 0, 60);
        cr_assert_eq(w, (double)max_ts, "watermark %.0f, want %" PRId64, w, max_ts);
    }
    cr_assert_eq(h_wait_metric(port, "segstream_producer_queue", 0, 0, 60), 0);
    h_sleep(0.3); /* a tick: the last W step's changes are queued, then delivered */
    cr_assert_eq(h_wait_metric(port, "segstream_producer_queue", 0, 0, 60), 0);
}

static long consume(const char *topic, const char *out, long expect)
{
    char res[600];
    snprintf(res, sizeof(res), "%s/%s.res", dir, out);
    cr_assert_eq(h_run(PY " consume --brokers %s --topic %s --out %s/%s --expect %ld --idle 8 "
                          "> %s",
                       B, topic, dir, out, expect, res),
                 0);
    char *r = h_slurp(res, NULL);
    cr_assert_not_null(r);
    long n = -1;
    sscanf(r, "consumed=%ld", &n);
    free(r);
    return n;
}

/* Replays ev.jsonl with run.yaml and compares its lifecycle and rule changes
 * with changes.dump (what run published): the compare line, printed under
 * `what`; the caller asserts on it and frees it. */
static char *vs_replay(const char *what)
{
    cr_assert_eq(h_run("%s replay --input %s/ev.jsonl --out %s/replay.jsonl -q -c %s/run.yaml",
                       SEG_BIN, dir, dir, dir),
                 0);
    cr_assert_eq(h_run(PY " compare %s/replay.jsonl %s/changes.dump > %s/cmp.txt", dir, dir, dir),
                 0);
    char path[600];
    snprintf(path, sizeof(path), "%s/cmp.txt", dir);
    char *cmp = h_slurp(path, NULL);
    cr_assert_not_null(cmp);
    fprintf(stderr, "%s: %s", what, cmp);
    return cmp;
}

Test(kafka, run_matches_replay_with_kcat_in_and_python_kafka_out)
{
    need_peers();
    start_broker(4);
    cr_assert_eq(
        h_run("%s gen --customers 3000 --events 60000 --seed 5 --out %s/ev.jsonl", SEG_BIN, dir),
        0);
    int64_t max_ts;
    long n = keyed_copy("ev.jsonl", "ev.keyed", &max_ts);
    kcat_produce("ev.keyed", "events");
    write_cfg("run.yaml", B, "g-main", "1s");
    int port;
    pid_t run = start_run("run.yaml", "run.log", &port);
    wait_done(port, (double)n, max_ts);

    /* the metrics count what was produced */
    cr_expect_eq(metric(port, "segstream_events_decoded_total"), (double)n);
    cr_expect_eq(metric(port, "segstream_events_applied_total"), (double)n);
    cr_expect_eq(metric(port, "segstream_records_unkeyed_total"), 0);
    cr_expect_eq(metric(port, "segstream_records_key_not_customer_total"), 0, "kcat keyed by id");
    double changes = changes_total(port);
    cr_assert_gt(changes, 0);
    cr_expect_eq(metric(port, "segstream_records_delivered_total"), changes);
    int st;
    char *h = h_http_get(port, "/healthz", &st);
    cr_expect_eq(st, 200);
    free(h);
    cr_assert_eq(h_stop(run, SIGTERM, 60), 0, "SIGTERM must drain and exit 0");
    /* the last log line counts the whole run, its rate too (not the drain's
     * last seconds) */
    cr_expect_eq(
        h_run("tail -n 3 %s/run.log | grep -q 'records %ld ([0-9]*/s over the run)'", dir, n), 0);

    long got = consume("segment-changes", "changes.dump", (long)changes);
    cr_assert_eq(got, (long)changes, "python-kafka read %ld change events, metrics say %.0f", got,
                 changes);
    char *cmp = vs_replay("run vs replay");
    cr_expect_gt(h_field(cmp, "replay"), 1000);
    cr_expect_eq(h_field(cmp, "only_replay"), 0, "lifecycle/rule changes missing from run: %s",
                 cmp);
    cr_expect_eq(h_field(cmp, "only_run"), 0, "lifecycle/rule changes not in replay: %s", cmp);
    cr_expect_eq(h_field(cmp, "customers_clustered_run"), 3000, "every customer gets a cluster");
    free(cmp);

    /* the example campaign consumer lists exactly the silent-customer changes */
    cr_assert_eq(h_run("/usr/bin/python3 %s/examples/we_miss_you.py --brokers %s --from-beginning "
                       "--idle 5 --csv %s/wmy.csv > %s/wmy.txt 2>&1",
                       SEG_SOURCE_DIR, B, dir, dir),
                 0);
    cr_assert_eq(
        h_run("test $(grep -c '\"dimension\":\"lifecycle\".*\"to\":\"\\(at_risk\\|lapsed\\)\"' "
              "%s/replay.jsonl) -eq $(($(wc -l < %s/wmy.csv) - 1))",
              dir, dir),
        0, "we_miss_you.py lists every at_risk and lapsed change once");
}

/* Produces one record with our own producer (binary and oversized payloads
 * that a line-oriented kcat cannot carry). */
static void produce_raw(strm_producer_t *p, const char *key, const void *v, size_t len)
{
    char err[256];
    cr_assert_eq(strm_producer_send(p, "events", key, strlen(key), v, len, -1, NULL, 0, NULL, err,
                                    sizeof(err)),
                 0, "%s", err);
}

Test(kafka, dead_letters_keep_bytes_and_reason_and_the_daemon_goes_on)
{
    need_peers();
    start_broker(4);
    cr_assert_eq(
        h_run("%s gen --customers 300 --events 3000 --seed 8 --out %s/ev.jsonl", SEG_BIN, dir), 0);
    int64_t max_ts;
    long good = keyed_copy("ev.jsonl", "ev.keyed", &max_ts);
    kcat_produce("ev.keyed", "events");

    const char *props[] = {"message.max.bytes", "4000000"};
    strm_kopts_t o = {.brokers = B, .props = props, .n_props = 1};
    char err[256];
    strm_producer_t *p = strm_producer_new(&o, NULL, NULL, err, sizeof(err));
    cr_assert_not_null(p, "%s", err);
    static const unsigned char trunc[] = {0x83, 0xa2, 't', 'y', 0xa9, 'p'};
    const char *bad_json[] = {
        "not json at all",
        "{\"type\":\"page_view\",\"ts\":1719000000000}",
        "{\"customer_id\":\"c000001\",\"type\":7,\"ts\":1719000000000}",
        "{\"customer_id\":\"c000002\",\"type\":\"page_view\",\"ts\":\"yesterday\"}",
        "{\"customer_id\":\"c000003\",\"type\":\"purchase\",\"ts\":1719000000000,\"amount\":-5}",
        "{\"customer_id\":\"c000004\",\"type\":\"page_view\",\"ts\":4102444800000}",
    };
    const char *reasons[] = {
        "not_json_or_msgpack", "missing_customer_id", "bad_type",          "bad_ts",
        "negative_amount",     "future_ts",           "truncated_msgpack", "oversized"};
    for (size_t i = 0; i < 6; i++) produce_raw(p, "bad", bad_json[i], strlen(bad_json[i]));
    produce_raw(p, "bad", trunc, sizeof(trunc));
    size_t big_len = 1 << 20;
    char *big = malloc(big_len);
    cr_assert_not_null(big);
    memset(big, 'x', big_len);
    const char head[] = "{\"customer_id\":\"c000005\",\"type\":\"page_view\",\"pad\":\"";
    memcpy(big, head, sizeof(head) - 1);
    memcpy(big + big_len - 3, "\"}\n", 3);
    produce_raw(p, "bad", big, big_len);
    cr_assert_eq(strm_producer_flush(p, 30000), 0);
    strm_producer_free(p);
    long bad = 8;

    write_cfg("run.yaml", B, "g-dlq", "1s");
    int port;
    pid_t run = start_run("run.yaml", "run.log", &port);
    wait_done(port, (double)(good + bad), INT64_MIN);
    /* the year-2100 record is held until its partition's next record, or
     * the partition going idle (1 s here) with nothing near it, tells a bad
     * clock from a quiet gap: only then is it a dead letter */
    cr_assert_eq(h_wait_metric(port, "segstream_records_held", 0, 0, 60), 0);
    cr_assert_eq(h_wait_metric(port, "segstream_producer_queue", 0, 0, 60), 0);
    cr_assert(h_alive(run), "the daemon must keep running");
    int st;
    char *h = h_http_get(port, "/healthz", &st);
    cr_expect_eq(st, 200);
    free(h);
    cr_expect_eq(metric(port, "segstream_events_decoded_total"), (double)good);
    double dead = 0;
    for (size_t i = 0; i < 8; i++) {
        char series[128];
        snprintf(series, sizeof(series), "segstream_dead_letters_total{reason=\"%s\"}", reasons[i]);
        cr_expect_eq(metric(port, series), 1, "%s", series);
        dead += metric(port, series);
    }
    cr_expect_eq(dead, (double)bad);
    double changes = changes_total(port);
    cr_assert_eq(h_stop(run, SIGTERM, 60), 0);

    cr_assert_eq(consume("segstream.dlq", "dlq.dump", bad), bad);
    cr_assert_eq(consume("segment-changes", "changes.dump", (long)changes), (long)changes,
                 "change events on the topic = segstream_changes_total");
    char path[600];
    snprintf(path, sizeof(path), "%s/dlq.dump", dir);
    char *d = h_slurp(path, NULL);
    cr_assert_not_null(d);
    for (size_t i = 0; i < 8; i++) {
        char want[96];
        snprintf(want, sizeof(want), "\"error\": \"%s\"", reasons[i]);
        cr_expect_not_null(strstr(d, want), "no dead letter with %s", want);
    }
    cr_expect_not_null(strstr(d, "\"value\": \"not json at all\""), "original bytes kept");
    long keyed = 0; /* every bad record was produced with key "bad", the held one too */
    for (const char *q = strstr(d, "\"key\": \"bad\""); q; q = strstr(q + 1, "\"key\": \"bad\""))
        keyed++;
    cr_expect_eq(keyed, bad, "dead letters keeping their record's key: %ld", keyed);
    cr_expect_not_null(strstr(d, "\"topic\": \"events\""));
    cr_expect_not_null(strstr(d, "\"offset\": \""));
    cr_expect_not_null(strstr(d, "\"partition\": \""));
    cr_expect_not_null(strstr(d, "\"truncated_from\": \"1048576\""),
                       "the oversized record is cut, with its size in a header");
    cr_expect_not_null(strstr(d, "\"value\": \"hex:83a27479a970\""), "binary kept exactly");
    free(d);
    free(big);
}

/* The daemon's instance id as its change events carry it. */
static void instance_of(pid_t pid, char *buf, size_t len)
{
    char host[64] = "localhost";
    gethostname(host, sizeof(host) - 1);
    snprintf(buf, len, "%s:%d", host, (int)pid);
}

/* For each customer in a dump of segment-changes: which instances emitted.
 * Returns customers emitted by both a and b; counts per instance in na/nb. */
static long both_instances(const char *dump, const char *a, const char *b, long *na, long *nb,
                           long *b_of_a)
{
    char cmd[1200];
    snprintf(
        cmd, sizeof(cmd),
        "/usr/bin/python3 -c '\n"
        "import json,sys,collections\n"
        "by=collections.defaultdict(set); first={}\n"
        "for l in open(sys.argv[1]):\n"
        "  d=json.loads(l); v=json.loads(d[\"value\"]); i=d[\"headers\"][\"segstream_instance\"]\n"
        "  by[v[\"customer_id\"]].add(i); first.setdefault(v[\"customer_id\"], i)\n"
        "a,b=sys.argv[2],sys.argv[3]\n"
        "both=sum(1 for s in by.values() if a in s and b in s)\n"
        "na=sum(1 for s in by.values() if a in s); nb=sum(1 for s in by.values() if b in s)\n"
        "boa=sum(1 for c,s in by.items() if first[c]==a and b in s)\n"
        "print(both,na,nb,boa)' %s/%s %s %s > %s/inst.txt",
        dir, dump, a, b, dir);
    cr_assert_eq(h_run("%s", cmd), 0);
    char path[600];
    snprintf(path, sizeof(path), "%s/inst.txt", dir);
    char *r = h_slurp(path, NULL);
    cr_assert_not_null(r);
    long both = -1;
    cr_assert_eq(sscanf(r, "%ld %ld %ld %ld", &both, na, nb, b_of_a), 4);
    free(r);
    return both;
}

static long group_behind(const char *group)
{
    char path[600];
    snprintf(path, sizeof(path), "%s/behind.txt", dir);
    if (h_run(PY " committed --brokers %s --group %s --topic events > %s 2>/dev/null", B, group,
              path) != 0)
        return -1;
    char *r = h_slurp(path, NULL);
    long behind = -1;
    if (r) sscanf(r, "behind=%ld", &behind);
    free(r);
    return behind;
}

Test(kafka, a_consumer_group_splits_partitions_and_hands_them_over)
{
    need_peers();
    start_broker(8);
    write_cfg("run.yaml", B, "g-group", "1s");
    int pa, pb;
    pid_t a = start_run("run.yaml", "a.log", &pa);
    cr_assert_eq(h_wait_metric(pa, "segstream_partitions_owned", 8, 0, 30), 8);
    pid_t b = start_run("run.yaml", "b.log", &pb);
    cr_assert_eq(h_wait_metric(pb, "segstream_partitions_owned", 4, 0, 30), 4);
    cr_assert_eq(h_wait_metric(pa, "segstream_partitions_owned", 4, 0, 30), 4,
                 "the group splits 8 partitions 4 and 4");

    cr_assert_eq(
        h_run("%s gen --customers 2000 --events 30000 --seed 12 --out %s/p1.jsonl", SEG_BIN, dir),
        0);
    int64_t max1, max2;
    long n1 = keyed_copy("p1.jsonl", "p1.keyed", &max1);
    kcat_produce("p1.keyed", "events");
    double end = 0;
    for (int i = 0; i < 300 && end < (double)n1; i++) {
        end = metric(pa, "segstream_events_in_total{topic=\"events\"}") +
              metric(pb, "segstream_events_in_total{topic=\"events\"}");
        h_sleep(0.2);
    }
    cr_assert_eq(end, (double)n1, "the two members consumed %.0f of %ld", end, n1);
    double ina = metric(pa, "segstream_events_in_total{topic=\"events\"}");
    double inb = metric(pb, "segstream_events_in_total{topic=\"events\"}");
    cr_expect(ina > 0 && inb > 0, "both members work: %.0f and %.0f", ina, inb);
    cr_assert_eq(h_wait_metric(pa, "segstream_producer_queue", 0, 0, 60), 0);
    cr_assert_eq(h_wait_metric(pb, "segstream_producer_queue", 0, 0, 60), 0);
    for (int i = 0; i < 100 && group_behind("g-group") != 0; i++) h_sleep(0.2);
    cr_assert_eq(group_behind("g-group"), 0, "offsets committed once their effects are done");

    /* A dies without leaving the group: after the session timeout, B owns
     * all 8 partitions and goes on from A's committed offsets. */
    char ia[128], ib[128];
    instance_of(a, ia, sizeof(ia));
    instance_of(b, ib, sizeof(ib));
    cr_assert_eq(h_stop(a, SIGKILL, 10), 128 + SIGKILL);
    cr_assert_eq(h_run("%s gen --customers 2000 --events 20000 --seed 13 --start "
                       "2024-07-15T00:00:00Z --days 30 --out %s/p2.jsonl",
                       SEG_BIN, dir),
                 0);
    long n2 = keyed_copy("p2.jsonl", "p2.keyed", &max2);
    kcat_produce("p2.keyed", "events");
    cr_assert_eq(h_wait_metric(pb, "segstream_partitions_owned", 8, 0, 60), 8,
                 "B takes over A's partitions");
    cr_assert_eq(
        h_wait_metric(pb, "segstream_events_in_total{topic=\"events\"}", inb + (double)n2, 0, 120),
        inb + (double)n2, "B consumes every record of phase 2, and A's are not re-read");
    cr_assert_eq(h_wait_metric(pb, "segstream_producer_queue", 0, 0, 60), 0);
    for (int i = 0; i < 100 && group_behind("g-group") != 0; i++) h_sleep(0.2);
    cr_assert_eq(group_behind("g-group"), 0);
    double changes_b = changes_total(pb);
    cr_assert_eq(h_stop(b, SIGTERM, 60), 0);

    long total = consume("segment-changes", "changes.dump", 0);
    cr_assert_gt(total, (long)changes_b);
    long na, nb, b_of_a;
    long both = both_instances("changes.dump", ia, ib, &na, &nb, &b_of_a);
    fprintf(stderr,
            "group: A consumed %.0f, B %.0f of phase 1; customers with changes from A %ld, "
            "from B %ld, A's customers later served by B %ld\n",
            ina, inb, na, nb, b_of_a);
    cr_expect_gt(na, 0);
    cr_expect_gt(nb, 0);
    cr_expect_gt(b_of_a, 0, "after the kill, B serves A's customers");
    cr_expect_eq(both, b_of_a, "no customer is handled by both, except A's after the handover");
}

/* An embedded broker in this process (its mock cluster is *mc, for
 * outages, when mc is not NULL) with a topic `events` of `partitions`; B is its address. */
static strm_broker_t *mock_events(int partitions, rd_kafka_mock_cluster_t **mc)
{
    char err[256];
    strm_broker_t *br = strm_broker_new(1, err, sizeof(err));
    cr_assert_not_null(br, "%s", err);
    if (mc) *mc = strm_broker_mock(br);
    cr_assert_eq(strm_broker_topic(br, "events", partitions, err, sizeof(err)), 0);
    snprintf(B, sizeof(B), "%s", strm_broker_bootstrap(br));
    return br;
}

Test(kafka, survives_broker_down_and_request_errors_without_losing_anything)
{
    need_peers();
    char err[256];
    rd_kafka_mock_cluster_t *mc;
    strm_broker_t *br = mock_events(4, &mc);
    cr_assert_eq(strm_broker_topic(br, "segment-changes", 4, err, sizeof(err)), 0);
    cr_assert_eq(strm_broker_topic(br, "segstream.dlq", 1, err, sizeof(err)), 0);

    cr_assert_eq(
        h_run("%s gen --customers 2000 --events 40000 --seed 21 --out %s/ev.jsonl", SEG_BIN, dir),
        0);
    /* two halves: the faults fall between and during them */
    cr_assert_eq(h_run("head -n 20000 %s/ev.jsonl > %s/h1.jsonl && tail -n +20001 %s/ev.jsonl > "
                       "%s/h2.jsonl",
                       dir, dir, dir, dir),
                 0);
    int64_t m1, m2;
    long n1 = keyed_copy("h1.jsonl", "h1.keyed", &m1);
    long n2 = keyed_copy("h2.jsonl", "h2.keyed", &m2);
    kcat_produce("h1.keyed", "events");
    /* the transient fetch errors after an outage must not pass for silence */
    write_cfg("run.yaml", B, "g-fault", "3s");
    int port;
    pid_t run = start_run("run.yaml", "run.log", &port);
    cr_assert_eq(
        h_wait_metric(port, "segstream_events_in_total{topic=\"events\"}", (double)n1, 0, 120),
        (double)n1);

    /* the only broker goes away for 3 s */
    rd_kafka_mock_broker_set_down(mc, 1);
    h_sleep(3);
    rd_kafka_mock_broker_set_up(mc, 1);
    /* then retriable errors on produce, fetch and offset commit */
    rd_kafka_mock_push_request_errors(
        mc, API_PRODUCE, 4, RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
        RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT, RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
        RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION);
    rd_kafka_mock_push_request_errors(mc, API_FETCH, 3, RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
                                      RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART,
                                      RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION);
    rd_kafka_mock_push_request_errors(mc, API_OFFSET_COMMIT, 2,
                                      RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE,
                                      RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT);
    kcat_produce("h2.keyed", "events");
    /* and down once more while the second half is being consumed */
    rd_kafka_mock_broker_set_down(mc, 1);
    h_sleep(2);
    rd_kafka_mock_broker_set_up(mc, 1);

    double in = h_wait_metric(port, "segstream_events_in_total{topic=\"events\"}",
                              (double)(n1 + n2), 1, 180);
    cr_assert_geq(in, (double)(n1 + n2), "consumed %.0f of %ld", in, n1 + n2);
    cr_assert_eq(h_wait_metric(port, "segstream_watermark_ms", (double)m2, 0, 60), (double)m2);
    cr_assert_eq(h_wait_metric(port, "segstream_producer_queue", 0, 0, 120), 0);
    h_sleep(0.3);
    cr_assert_eq(h_wait_metric(port, "segstream_producer_queue", 0, 0, 60), 0);
    double changes = changes_total(port);
    cr_assert(h_alive(run));
    cr_assert_eq(h_stop(run, SIGTERM, 60), 0);

    long got = consume("segment-changes", "changes.dump", 0);
    cr_assert_geq(got, (long)changes, "every change event produced is on the topic");
    char *cmp = vs_replay("after faults, run vs replay");
    cr_expect_eq(h_field(cmp, "only_replay"), 0, "nothing lost: %s", cmp);
    cr_expect_eq(h_field(cmp, "only_run"), 0, "nothing counted twice: %s", cmp);
    free(cmp);
    strm_broker_free(br);
}

/* Polls /healthz (at most 30 s) until its status is want; returns the body. */
static char *healthz_until(int port, int want)
{
    int st = 0;
    char *h = NULL;
    for (int i = 0; i < 150; i++) {
        free(h);
        h = h_http_get(port, "/healthz", &st);
        if (st == want) break;
        h_sleep(0.2);
    }
    cr_assert_eq(st, want, "/healthz: %d %s", st, h ? h : "");
    return h;
}

/* /healthz says whether the daemon can work: 503 naming Kafka while no
 * broker answers, 200 again once one does. Then records keyed otherwise
 * than by customer id. */
Test(kafka, healthz_reports_a_broker_outage_and_keys_are_checked)
{
    need_peers();
    rd_kafka_mock_cluster_t *mc;
    strm_broker_t *br = mock_events(1, &mc);
    write_cfg("run.yaml", B, "g-health", "1s");
    int port;
    pid_t run = start_run("run.yaml", "run.log", &port);
    free(healthz_until(port, 200));
    rd_kafka_mock_broker_set_down(mc, 1);
    char *h = healthz_until(port, 503);
    cr_assert(strstr(h, "kafka: no broker answers"), "%s", h);
    free(h);
    rd_kafka_mock_broker_set_up(mc, 1);
    h = healthz_until(port, 200);
    cr_assert_str_eq(h, "ok\n");
    free(h);

    /* records not keyed by their customer id are applied, counted, and the
     * log says once why several processes need the key */
    cr_assert_eq(
        h_run("printf '%%s\\n' '{\"customer_id\":\"u1\",\"type\":\"page_view\",\"ts\":1}' "
              "'{\"customer_id\":\"u2\",\"type\":\"page_view\",\"ts\":2}' | kcat -P -b %s "
              "-t events && printf 'k3\\t%%s\\n' '{\"customer_id\":\"u3\",\"type\":\"page_view\","
              "\"ts\":3}' | kcat -P -b %s -t events -K '\\t' && printf 'u4\\t%%s\\n' "
              "'{\"customer_id\":\"u4\",\"type\":\"page_view\",\"ts\":4}' | kcat -P -b %s -t "
              "events -K '\\t'",
              B, B, B),
        0);
    cr_assert_eq(h_wait_metric(port, "segstream_events_applied_total", 4, 0, 60), 4);
    cr_assert_eq(metric(port, "segstream_records_unkeyed_total"), 2);
    cr_assert_eq(metric(port, "segstream_records_key_not_customer_total"), 1);
    char lp[600];
    snprintf(lp, sizeof(lp), "%s/run.log", dir);
    cr_assert_not_null(h_wait_line(lp, "Key records by customer id", 5));
    cr_assert_eq(h_stop(run, SIGTERM, 60), 0);
    strm_broker_free(br);
}

/* Issue 6's skew: one partition is produced to the end of its history at
 * once while the other trickles in behind it; W follows the slower one, so
 * no customer of the lagging partition looks silent early, and the lifecycle
 * and rule changes equal replay's over the same events in time order. */
Test(kafka, a_partition_far_ahead_does_not_age_the_other)
{
    need_peers();
    start_broker(2);
    cr_assert_eq(
        h_run("%s gen --customers 1000 --events 20000 --seed 41 --out %s/ev.jsonl", SEG_BIN, dir),
        0);
    int64_t max_ts;
    long n = keyed_copy("ev.jsonl", "ev.keyed", &max_ts);
    /* even customer numbers to partition 0, odd ones to partition 1 */
    cr_assert_eq(h_run("cd %s && awk -F'\\t' '{ if (substr($1, 2) %% 2 == 0) print > \"p0.keyed\"; "
                       "else print > \"p1.keyed\" }' ev.keyed",
                       dir),
                 0);
    write_cfg("run.yaml", B, "g-skew", "3s");
    int port;
    pid_t run = start_run("run.yaml", "run.log", &port);
    cr_assert_eq(h_wait_metric(port, "segstream_partitions_owned", 2, 0, 30), 2);
    /* partition 1: 200 records every 0.3 s (never idle for 3 s) */
    pid_t slow = h_spawn(NULL, NULL,
                         "sh -c 'cd %s && split -l 200 p1.keyed p1.part. && for f in p1.part.*; "
                         "do kcat -P -X enable.idempotence=true -b %s -t events -p 1 -K \"\\t\" "
                         "-l $f || exit 1; sleep 0.3; done'",
                         dir, B);
    h_sleep(0.5);
    cr_assert_eq(
        h_run("kcat -P -X enable.idempotence=true -b %s -t events -p 0 -K '\\t' -l %s/p0.keyed", B,
              dir),
        0, "partition 0: its whole history at once");
    cr_assert_eq(h_stop(slow, 0, 300), 0, "the slow producer failed");
    wait_done(port, (double)n, max_ts);
    double changes = changes_total(port);
    cr_assert_eq(h_stop(run, SIGTERM, 60), 0);
    cr_assert_eq(consume("segment-changes", "changes.dump", (long)changes), (long)changes);
    char *cmp = vs_replay("skewed partitions, run vs replay");
    cr_expect_gt(h_field(cmp, "replay"), 1000);
    cr_expect_eq(h_field(cmp, "only_replay"), 0, "%s", cmp);
    cr_expect_eq(h_field(cmp, "only_run"), 0, "%s", cmp);
    free(cmp);
}

/* Issue 6, live: with idle advance on and short thresholds, a customer who
 * sends one event and then nothing goes new -> active -> at_risk -> lapsed
 * as W moves with the wall clock, each change with ts = the boundary, and
 * each published within one second of W crossing that boundary. When W
 * crossed is computed from the daemon's own account of the idle advance
 * (its log line "W moves with the wall clock from W=.. at wall=..": from
 * then on W = W0 + (wall - wall0)); emitted_at is the wall clock when the
 * change was made. */
Test(kafka, a_silent_customer_changes_within_a_second_of_W_crossing)
{
    need_peers();
    start_broker(1);
    cr_assert_eq(h_writef(dir, "live.yaml",
                          "kafka:\n  brokers: \"%s\"\n  group_id: g-live\n"
                          "watermark:\n  idle_timeout: 1s\n  idle_advance: true\n"
                          "lifecycle:\n  new: 2s\n  at_risk: 4s\n  lapsed: 8s\n  reactivated: 2s\n"
                          "http:\n  listen: \"127.0.0.1:0\"\n",
                          B),
                 0);
    int port;
    pid_t run = start_run("live.yaml", "live.log", &port);
    cr_assert_eq(h_wait_metric(port, "segstream_partitions_owned", 1, 0, 30), 1);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int64_t E = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
    cr_assert_eq(h_run("printf 'quiet1\\t{\"customer_id\":\"quiet1\",\"type\":\"purchase\","
                       "\"ts\":%lld,\"amount\":5}\\n' | kcat -P -X enable.idempotence=true -b %s "
                       "-t events -K '\\t'",
                       (long long)E, B),
                 0);
    cr_assert_eq(h_wait_metric(port, "segstream_changes_total{dimension=\"lifecycle\"}", 4, 1, 60),
                 4, "four lifecycle changes within a minute");
    cr_assert_eq(h_stop(run, SIGTERM, 60), 0);
    cr_assert_eq(consume("segment-changes", "live.dump", 4), 4);

    const char *l = h_wait_line(h_join(dir, "live.log"), "W moves with the wall clock", 1);
    cr_assert_not_null(l, "no idle-advance line in the daemon's log");
    long long W0, wall0;
    const char *p = strstr(l, "from W=");
    cr_assert(p && sscanf(p, "from W=%lld at wall=%lld", &W0, &wall0) == 2, "%s", l);
    cr_assert_eq(W0, E, "W left event time at the event's own time");

    char dump[600];
    snprintf(dump, sizeof(dump), "%s/live.dump", dir);
    char *body = h_slurp(dump, NULL);
    cr_assert_not_null(body);
    /* the dump holds each change as an escaped JSON string: unescape */
    char *w = body;
    for (const char *r = body; *r; r++)
        if (*r != '\\') *w++ = *r;
    *w = 0;
    const char *to[] = {"new", "active", "at_risk", "lapsed"};
    int64_t at[] = {E, E + 2000, E + 4000, E + 8000};
    const char *q = body;
    for (int i = 0; i < 4; i++) {
        char want[64];
        snprintf(want, sizeof(want), "\"to\":\"%s\"", to[i]);
        const char *hit = strstr(q, want);
        cr_assert_not_null(hit, "change %d (to %s) missing or out of order", i, to[i]);
        const char *ts = strstr(hit, "\"ts\":"), *em = strstr(hit, "\"emitted_at\":");
        cr_assert(ts && em);
        long long t = atoll(ts + 5), e = atoll(em + 13);
        cr_assert_eq(t, at[i], "change to %s: ts %lld, boundary %lld", to[i], t, (long long)at[i]);
        if (i > 0) { /* silent: W reached t at wall0 + (t - W0) */
            long long delay = e - (wall0 + (t - W0));
            fprintf(stderr, "silent change to %s published %lld ms after W crossed it\n", to[i],
                    delay);
            cr_expect(delay >= 0 && delay <= 1000, "to %s: %lld ms after W crossed", to[i], delay);
        }
        q = hit + 1;
    }
    free(body);
}

Test(kafka, a_bad_kafka_property_fails_at_start_naming_file_and_key)
{
    char path[600];
    snprintf(path, sizeof(path), "%s/bad.yaml", dir);
    cr_assert_eq(h_writef(dir, "bad.yaml",
                          "kafka:\n  properties:\n    no.such.property: \"1\"\n"
                          "http:\n  listen: \"127.0.0.1:0\"\n"),
                 0);
    cr_assert_eq(h_run("%s run -c %s 2> %s/err.txt", SEG_BIN, path, dir), 2);
    snprintf(path, sizeof(path), "%s/err.txt", dir);
    char *e = h_slurp(path, NULL);
    cr_assert_not_null(e);
    cr_expect_not_null(strstr(e, "bad.yaml:3: kafka.properties.no.such.property"), "%s", e);
    free(e);
    /* one set in the environment is named by its variable */
    cr_assert_eq(h_run("SEGSTREAM_KAFKA_PROPERTIES_NO_SUCH=1 SEGSTREAM_HTTP_LISTEN=127.0.0.1:0 %s "
                       "run 2> %s/err.txt",
                       SEG_BIN, dir),
                 2);
    e = h_slurp(path, NULL);
    cr_assert_not_null(e);
    cr_expect_not_null(
        strstr(e, ": env SEGSTREAM_KAFKA_PROPERTIES_NO_SUCH: kafka property no.such=1"), "%s", e);
    free(e);
}

/* gen is a command-line tool: with no broker answering it gives up (30 s a
 * record) and says how many records were not delivered, exit 1, where the
 * daemon's producer retries for ever. */
Test(kafka, gen_gives_up_on_brokers_that_do_not_answer)
{
    cr_assert_eq(h_run("%s gen --customers 5 --events 5 --out kafka:events --brokers 127.0.0.1:1 "
                       "2> %s/gen_err.txt",
                       SEG_BIN, dir),
                 1);
    char path[600];
    snprintf(path, sizeof(path), "%s/gen_err.txt", dir);
    char *e = h_slurp(path, NULL);
    cr_assert_not_null(e);
    cr_expect_not_null(strstr(e, "5 of 5 records not delivered"), "%s", e);
    free(e);
}

/* A fresh state's first record with a bad clock (2099), alone on its
 * partition: checked against the wall clock, it is held and dead-lettered
 * once the partition is idle; it never becomes W, so the next customer
 * (2023) is new, not lapsed. It used to be applied: W 2099, every customer
 * after it stepped to lapsed. */
Test(kafka, a_fresh_states_first_record_with_a_bad_clock_never_becomes_w)
{
    need_peers();
    strm_broker_t *br = mock_events(1, NULL);
    write_cfg("run.yaml", B, "g-first", "1s");
    int port;
    pid_t run = start_run("run.yaml", "run.log", &port);
    cr_assert_eq(h_run("printf 'fut\\t%%s\\n' '{\"customer_id\":\"fut\",\"type\":\"page_view\","
                       "\"ts\":4070908800000}' | kcat -P -b %s -t events -K '\\t'",
                       B),
                 0);
    cr_assert_eq(
        h_wait_metric(port, "segstream_dead_letters_total{reason=\"future_ts\"}", 1, 0, 60), 1);
    cr_assert_eq(h_run("printf 'n1\\t%%s\\n' '{\"customer_id\":\"n1\",\"type\":\"page_view\","
                       "\"ts\":1700000000000}' | kcat -P -b %s -t events -K '\\t'",
                       B),
                 0);
    cr_assert_eq(h_wait_metric(port, "segstream_events_applied_total", 1, 0, 60), 1);
    double w = h_wait_metric(port, "segstream_watermark_ms", 1700000000000.0, 0, 30);
    cr_assert_eq(w, 1700000000000.0, "W %.0f", w);
    cr_assert_eq(metric(port, "segstream_changes_total{dimension=\"lifecycle\"}"), 1,
                 "n1: null -> new, and nothing else");
    cr_assert_eq(h_stop(run, SIGTERM, 60), 0);
    strm_broker_free(br);
}

/* The broker goes away while every partition is idle: the four idle checks
 * hang (librdkafka 2.0, #2588) and take all four of libuv's pool threads, so
 * the health probe never runs; /healthz must still say 503 (it said 200 for
 * as long as the outage lasted), and say 200 again once a broker answers. */
Test(kafka, healthz_reports_a_broker_outage_while_every_partition_is_idle)
{
    need_peers();
    rd_kafka_mock_cluster_t *mc;
    strm_broker_t *br = mock_events(4, &mc);
    /* a long idle_timeout: an idle confirmation used to hold that long */
    cr_assert_eq(h_writef(dir, "run.yaml",
                          "kafka:\n  brokers: \"%s\"\n  group_id: g-idle-down\n"
                          "watermark:\n  idle_timeout: 12s\n  idle_advance: true\n"
                          "http:\n  listen: \"127.0.0.1:0\"\n",
                          B),
                 0);
    int port;
    pid_t run = start_run("run.yaml", "run.log", &port);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int64_t E = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
    cr_assert_eq(h_run("printf 'a\\t%%s\\n' '{\"customer_id\":\"a\",\"type\":\"page_view\","
                       "\"ts\":%lld}' | kcat -P -b %s -t events -K '\\t'",
                       (long long)E, B),
                 0);
    cr_assert_eq(h_wait_metric(port, "segstream_events_applied_total", 1, 0, 60), 1);
    /* every partition idle: W moves with the wall clock */
    cr_assert_not_null(h_wait_line(h_join(dir, "run.log"), "W moves with the wall clock", 40));
    free(healthz_until(port, 200));
    rd_kafka_mock_broker_set_down(mc, 1);
    char *h = healthz_until(port, 503);
    cr_assert(strstr(h, "kafka: no broker answers"), "%s", h);
    free(h);
    /* and no broker answering is not silence: W stands still */
    int st = 0;
    char *m1 = h_http_get(port, "/metrics", &st);
    h_sleep(3);
    char *m2 = h_http_get(port, "/metrics", &st);
    cr_assert(m1 && m2);
    cr_assert_eq(h_metric(m1, "segstream_watermark_ms"), h_metric(m2, "segstream_watermark_ms"),
                 "W moved while no broker answered");
    free(m1);
    free(m2);
    rd_kafka_mock_broker_set_up(mc, 1);
    h = healthz_until(port, 200);
    cr_assert_str_eq(h, "ok\n");
    free(h);
    int rc = h_stop(run, SIGTERM, 45);
    cr_assert(rc == 0 || rc == 1, "exit %d", rc);
    strm_broker_free(br);
}

/* SIGTERM while no broker answers: the daemon drains what it can and exits
 * by itself, even with idle checks (broker queries, which librdkafka 2.0
 * lets run past their timeout while no broker answers) still out. */
Test(kafka, sigterm_exits_while_no_broker_answers)
{
    need_peers();
    rd_kafka_mock_cluster_t *mc;
    strm_broker_t *br = mock_events(2, &mc);
    write_cfg("run.yaml", B, "g-down", "1s");
    int port;
    pid_t run = start_run("run.yaml", "run.log", &port);
    cr_assert_eq(h_run("printf 'a\\t%%s\\n' '{\"customer_id\":\"a\",\"type\":\"page_view\","
                       "\"ts\":1700000000000}' | kcat -P -b %s -t events -K '\\t'",
                       B),
                 0);
    cr_assert_eq(h_wait_metric(port, "segstream_events_applied_total", 1, 0, 60), 1);
    rd_kafka_mock_broker_set_down(mc, 1);
    free(healthz_until(port, 503));
    h_sleep(4); /* both partitions quiet past idle_timeout: their checks go out */
    int rc = h_stop(run, SIGTERM, 45);
    cr_assert(rc == 0 || rc == 1, "exit %d: the daemon did not end by itself after SIGTERM", rc);
    char lp[600];
    snprintf(lp, sizeof(lp), "%s/run.log", dir);
    cr_assert_not_null(h_wait_line(lp, "exit ", 1));
    /* the case this is about: a query was still out when the stop ended */
    cr_assert_not_null(h_wait_line(lp, "still waiting for an answer", 1),
                       "no broker query was left hanging: the test did not reach its case");
    strm_broker_free(br);
}

/* SIGHUP (the terminal or ssh session of a foreground run going away; the
 * JVM's Kafka clients shut down on it too) drains like SIGTERM and exits 0;
 * under nohup (SIGHUP ignored when the daemon starts) it stays ignored. It
 * used to kill the daemon at once: no drain, no final checkpoint, exit 129. */
Test(kafka, sighup_drains_like_sigterm_unless_ignored_at_start)
{
    write_cfg("run.yaml", "127.0.0.1:1", "g-hup", "1s");
    int port;
    pid_t run = start_run("run.yaml", "hup.log", &port);
    cr_assert_eq(h_stop(run, SIGHUP, 30), 0, "SIGHUP must drain and exit 0");
    cr_assert_not_null(h_wait_line(h_join(dir, "hup.log"), "SIGHUP received", 1));

    const char *lp = h_join(dir, "nohup.log");
    run = h_spawn(NULL, lp, "nohup %s run -c %s/run.yaml", SEG_BIN, dir);
    cr_assert_gt(run, 0);
    cr_assert_gt(h_daemon_port(lp, 20), 0, "segstream run did not start serving HTTP");
    kill(run, SIGHUP);
    h_sleep(1);
    cr_assert(h_alive(run), "under nohup, SIGHUP must be ignored");
    cr_assert_eq(h_stop(run, SIGTERM, 30), 0);
}

/* Records of `events` taken by c within timeout_s, counted per partition
 * (two) into seen; returns when want are seen in partition `part`. */
static void consume_until(strm_consumer_t *c, int *seen, int part, int want, double timeout_s)
{
    strm_msg_t msgs[64];
    char err[256];
    for (double t = 0; t < timeout_s && seen[part] < want; t += 0.05) {
        int n;
        while ((n = strm_consumer_batch(c, msgs, 64, err, sizeof(err))) > 0) {
            for (int i = 0; i < n; i++)
                if (!msgs[i].error && msgs[i].partition >= 0 && msgs[i].partition < 2)
                    seen[msgs[i].partition]++;
            strm_msgs_release(msgs, n);
        }
        cr_assert_geq(n, 0, "consumer: %s", err);
        h_sleep(0.05);
    }
}

static int coop_assigned;
static int coop_rebalance(void *ud, int assigned, strm_tp_t *tps, int n)
{
    (void)ud, (void)tps;
    if (assigned) coop_assigned += n;
    return 0; /* applied by strm_consumer itself */
}

/* Cooperative: librdkafka refuses, whole, an incremental assignment naming
 * a partition the consumer has. strm_consumer leaves such partitions out
 * (and names them in the log), so the others are still consumed rather
 * than owned for the group and read by nobody. */
Test(kafka, a_cooperative_assignment_naming_an_owned_partition_takes_the_others)
{
    need_peers();
    start_broker(2);
    for (int p = 0; p < 2; p++)
        cr_assert_eq(h_run("printf 'a\\nb\\nc\\n' | kcat -P -b %s -t events -p %d", B, p), 0);
    const char *props[] = {"partition.assignment.strategy", "cooperative-sticky"};
    strm_kopts_t o = {.brokers = B, .group_id = "coop-owned", .props = props, .n_props = 1};
    const char *topics[] = {"events"};
    char err[256];
    strm_consumer_t *c = strm_consumer_new(&o, topics, 1, coop_rebalance, NULL, err, sizeof(err));
    cr_assert_not_null(c, "%s", err);
    int seen[2] = {0, 0};
    consume_until(c, seen, 0, 3, 60);
    consume_until(c, seen, 1, 3, 60);
    cr_assert_eq(coop_assigned, 2, "the group gave both partitions");
    cr_assert(strm_consumer_cooperative(c));
    cr_assert_eq(seen[0], 3);
    cr_assert_eq(seen[1], 3);

    /* partition 1 given up, then taken again from its start with 0, owned */
    strm_tp_t one = {"events", 1, -1};
    cr_assert_eq(strm_consumer_assign(c, &one, 1, 0), 0);
    strm_tp_t both[] = {{"events", 0, -1}, {"events", 1, STRM_OFFSET_BEGINNING}};
    cr_assert_eq(strm_consumer_assign(c, both, 2, 1), 0);
    seen[0] = seen[1] = 0;
    consume_until(c, seen, 1, 3, 30);
    cr_assert_eq(seen[1], 3, "partition 1 is read again from its start");
    cr_assert_eq(seen[0], 0, "partition 0 goes on where it was");
    strm_consumer_close(c, 5000);
}

/* CONTRACT §1: clickstream and purchases may be separate topics. A
 * customer's events then come on two topics that the consumer drains at
 * their own pace (the small one far ahead); applied merged by event time,
 * the live run gives the lifecycle and rule changes of a replay of the
 * merged file. Taken in arrival order, customers were "new" on the day of
 * their first purchase and went back to "new" after being "active". */
Test(kafka, two_input_topics_are_applied_in_event_time_order)
{
    need_peers();
    broker = h_broker(dir, 3, "clickstream,purchases,segment-changes,segstream.dlq", B, sizeof(B));
    cr_assert_gt(broker, 0, "segstream broker did not print its bootstrap line");
    cr_assert_eq(
        h_run("%s gen --customers 1500 --events 40000 --seed 3 --out %s/ev.jsonl", SEG_BIN, dir),
        0);
    int64_t max_ts;
    long n = keyed_copy("ev.jsonl", "ev.keyed", &max_ts);
    cr_assert_eq(h_run("cd %s && grep '\"type\":\"purchase\"' ev.keyed > purch.keyed && "
                       "grep -v '\"type\":\"purchase\"' ev.keyed > click.keyed",
                       dir),
                 0);
    long np = h_count_lines(h_join(dir, "purch.keyed"));
    cr_assert_gt(np, 100);
    kcat_produce("purch.keyed", "purchases");
    kcat_produce("click.keyed", "clickstream");
    write_cfg("run.yaml", B, "g-topics", "1s");
    cr_assert_eq(h_run("cd %s && sed -i 's/^kafka:$/kafka:\\n  topics: [clickstream, purchases]/' "
                       "run.yaml",
                       dir),
                 0);
    int port;
    pid_t run = start_run("run.yaml", "run.log", &port);
    double got = h_wait_metric(port, "segstream_events_applied_total", (double)n, 0, 180);
    cr_assert_eq(got, (double)n, "applied %.0f of %ld records", got, n);
    double w = h_wait_metric(port, "segstream_watermark_ms", (double)max_ts, 0, 60);
    cr_assert_eq(w, (double)max_ts, "watermark %.0f, want %" PRId64, w, max_ts);
    cr_assert_eq(h_wait_metric(port, "segstream_producer_queue", 0, 0, 60), 0);
    h_sleep(0.3);
    cr_assert_eq(h_wait_metric(port, "segstream_producer_queue", 0, 0, 60), 0);
    double changes = changes_total(port);
    cr_assert_eq(h_stop(run, SIGTERM, 60), 0, "SIGTERM must drain and exit 0");
    long c = consume("segment-changes", "changes.dump", (long)changes);
    cr_assert_eq(c, (long)changes);
    char *cmp = vs_replay("two topics vs replay");
    cr_expect_gt(h_field(cmp, "replay"), 1000);
    cr_expect_eq(h_field(cmp, "only_replay"), 0, "lifecycle/rule changes missing from run: %s",
                 cmp);
    cr_expect_eq(h_field(cmp, "only_run"), 0, "lifecycle/rule changes not in replay: %s", cmp);
    free(cmp);
}

/* librdkafka before 2.3.0 (#4312, fixed by #4381) asserts in rd_kafka_destroy
 * of a cooperative-sticky consumer that has its group's protocol (a JoinGroup
 * answer) but not yet its first assignment: the sticky assignor's state it
 * frees is still NULL. A SIGTERM in that window (a deploy stopping a member
 * that is still joining, which a crash soak hit 4 times in ~30 stops) ended
 * in SIGABRT instead of exit 0. Here the coordinator answers the SyncGroup
 * 15 s late, so the member sits in the window when it is stopped. */
Test(kafka, a_cooperative_member_stopped_before_its_first_assignment_exits_0)
{
    enum { API_SYNC_GROUP = 14 };
    char err[256];
    rd_kafka_mock_cluster_t *mc;
    strm_broker_t *br = mock_events(4, &mc);
    cr_assert_eq(strm_broker_topic(br, "segment-changes", 4, err, sizeof(err)), 0);
    rd_kafka_mock_broker_push_request_error_rtts(mc, 1, API_SYNC_GROUP, 1,
                                                 RD_KAFKA_RESP_ERR_NO_ERROR, 15000);
    cr_assert_eq(h_writef(dir, "coop.yaml",
                          "kafka:\n  brokers: \"%s\"\n  group_id: g-coop\n  properties:\n"
                          "    session.timeout.ms: \"6000\"\n"
                          "    partition.assignment.strategy: \"cooperative-sticky\"\n"
                          "    consumer.debug: cgrp\n"
                          "log:\n  level: debug\n"
                          "http:\n  listen: \"127.0.0.1:0\"\n",
                          B),
                 0);
    int port;
    pid_t run = start_run("coop.yaml", "coop.log", &port);
    const char *lp = h_join(dir, "coop.log");
    cr_assert_not_null(h_wait_line(lp, "JoinGroup response", 30), "the member never joined");
    h_sleep(1); /* its SyncGroup is out, answered 14 s from now */
    cr_assert_null(h_wait_line(lp, "segstream: assigned ", 0), "assigned already: not the case");
    cr_assert_eq(h_stop(run, SIGTERM, 60), 0, "SIGTERM before the first assignment exits 0");
    strm_broker_free(br);
}
