/* tests/integration/test_replay.c: `segstream gen` then `segstream replay`
 * as a user runs them: planted segments are recovered (ARI against the
 * truth file), outputs are byte-identical across runs and formats, and bad
 * records go to the dead-letter file while good ones are applied. */
#include <criterion/criterion.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "harness.h"

static const char *dir;

static void setup(void)
{
    dir = h_tmpdir();
    cr_assert_not_null(dir);
}
static void teardown(void)
{
    h_run("rm -rf '%s'", dir);
}
TestSuite(replay, .init = setup, .fini = teardown, .timeout = 600);

static const char *h_path(const char *name)
{
    return h_join(dir, name);
}

/* Looks up `id` in parallel arrays (ids sorted as written by gen: c000000..). */
static int persona_index(const char *name, char names[][32], int *n)
{
    for (int i = 0; i < *n; i++)
        if (strcmp(names[i], name) == 0) return i;
    snprintf(names[*n], 32, "%.31s", name);
    return (*n)++;
}

Test(replay, recovers_planted_segments_on_20000_customers)
{
    cr_assert_eq(h_run("%s gen --customers 20000 --events 1000000 --seed 11 --out %s/ev.jsonl "
                       "--truth %s/truth.csv",
                       SEG_BIN, dir, dir),
                 0);
    cr_assert_eq(h_run("%s replay --input %s/ev.jsonl --out %s/changes.jsonl --snapshot "
                       "%s/snap.csv 2> %s/summary.txt",
                       SEG_BIN, dir, dir, dir, dir),
                 0);
    char path[600];
    snprintf(path, sizeof(path), "%s/truth.csv", dir);
    FILE *tf = fopen(path, "r");
    snprintf(path, sizeof(path), "%s/snap.csv", dir);
    FILE *sf = fopen(path, "r");
    cr_assert(tf && sf);
    enum { N = 20000 };
    static int truth[N], got[N];
    static char names[16][32];
    int nnames = 0;
    char line[1024];
    for (int i = 0; i < N; i++) truth[i] = got[i] = -1;
    cr_assert_not_null(fgets(line, sizeof(line), tf)); /* header */
    while (fgets(line, sizeof(line), tf)) {
        int idx;
        char persona[64];
        cr_assert_eq(sscanf(line, "c%d,%63[^\n]", &idx, persona), 2);
        truth[idx] = persona_index(persona, names, &nnames);
    }
    cr_assert_not_null(fgets(line, sizeof(line), sf));
    int assigned = 0;
    while (fgets(line, sizeof(line), sf)) {
        int idx, cl;
        char lc[32];
        cr_assert_eq(sscanf(line, "c%d,%31[^,],%d,", &idx, lc, &cl), 3, "line: %s", line);
        got[idx] = cl;
        assigned += cl >= 0;
    }
    fclose(tf);
    fclose(sf);
    cr_assert_eq(assigned, N, "every customer has a cluster (%d of %d)", assigned, N);
    double ari = h_ari(truth, got, N);
    fprintf(stderr, "replay: ARI against planted personas = %.4f (%d personas)\n", ari, nnames);
    cr_assert_geq(ari, 0.8, "ARI %.4f below 0.8", ari);
}

Test(replay, same_file_twice_gives_identical_bytes_and_msgpack_matches_json)
{
    cr_assert_eq(
        h_run("%s gen --customers 2000 --events 60000 --seed 5 --out %s/ev.jsonl", SEG_BIN, dir),
        0);
    cr_assert_eq(h_run("%s gen --customers 2000 --events 60000 --seed 5 --format msgpack "
                       "--out %s/ev.msgpack",
                       SEG_BIN, dir),
                 0);
    for (int i = 0; i < 2; i++)
        cr_assert_eq(
            h_run("%s replay -q --input %s/ev.jsonl --out %s/out%d.jsonl", SEG_BIN, dir, dir, i),
            0);
    cr_assert_eq(
        h_run("%s replay -q --input %s/ev.msgpack --out %s/outmp.jsonl", SEG_BIN, dir, dir), 0);
    char a[600], b[600], c[600];
    snprintf(a, sizeof(a), "%s/out0.jsonl", dir);
    snprintf(b, sizeof(b), "%s/out1.jsonl", dir);
    snprintf(c, sizeof(c), "%s/outmp.jsonl", dir);
    long n = h_count_lines(a);
    cr_assert_gt(n, 2000, "changes: %ld", n);
    cr_assert(h_same_file(a, b), "two replays differ");
    cr_assert(h_same_file(a, c), "msgpack input gives other changes than JSON");

    /* --format msgpack: a plain msgpack stream (msgpack-c's own unpacker
     * reads it), one map per change, carrying the JSON output's event_ids
     * in the same order */
    cr_assert_eq(h_run("%s replay -q --input %s/ev.jsonl --format msgpack --out %s/out.mp", SEG_BIN,
                       dir, dir),
                 0);
    snprintf(c, sizeof(c), "%s/out.mp", dir);
    size_t len;
    char *mp = h_slurp(c, &len), *js = h_slurp(a, NULL);
    cr_assert(mp && js);
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    long maps = 0;
    const char *line = js;
    msgpack_unpack_return ret;
    while ((ret = msgpack_unpack_next(&u, mp, len, &off)) == MSGPACK_UNPACK_SUCCESS) {
        cr_assert_eq(u.data.type, MSGPACK_OBJECT_MAP, "record %ld is not a map", maps);
        const msgpack_object_kv *kv = u.data.via.map.ptr;
        size_t i = 0;
        while (i < u.data.via.map.size &&
               !(kv[i].key.type == MSGPACK_OBJECT_STR && kv[i].key.via.str.size == 8 &&
                 memcmp(kv[i].key.via.str.ptr, "event_id", 8) == 0))
            i++;
        cr_assert_lt(i, u.data.via.map.size, "record %ld has no event_id", maps);
        char want[300];
        snprintf(want, sizeof(want), "{\"event_id\":\"%.*s\"", (int)kv[i].val.via.str.size,
                 kv[i].val.via.str.ptr);
        cr_assert_eq(strncmp(line, want, strlen(want)), 0, "record %ld: %s", maps, want);
        line = strchr(line, '\n') + 1;
        maps++;
    }
    cr_assert_eq(ret, MSGPACK_UNPACK_CONTINUE, "a byte that is no msgpack at offset %zu", off);
    cr_assert_eq(off, len);
    cr_assert_eq(maps, n, "%ld maps for %ld changes", maps, n);
    msgpack_unpacked_destroy(&u);
    free(mp);
    free(js);
}

Test(replay, bad_records_go_to_the_dead_letter_file_and_processing_goes_on)
{
    char path[600];
    snprintf(path, sizeof(path), "%s/mixed.jsonl", dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fprintf(f, "{\"customer_id\":\"a\",\"type\":\"page_view\",\"ts\":1700000000000}\n");
    fprintf(f, "this is not json\n");
    fprintf(f, "{\"type\":\"page_view\",\"ts\":1700000000001}\n");
    fprintf(f,
            "{\"customer_id\":\"b\",\"type\":\"purchase\",\"ts\":1700000000002,\"amount\":-5}\n");
    fprintf(f, "{\"customer_id\":\"b\",\"type\":7,\"ts\":1700000000003}\n");
    /* a line longer than the file framing takes (16 MiB): skipped as one dead
     * letter, and the records after it are read */
    fputs("{\"customer_id\":\"b\",\"pad\":\"", f);
    for (int i = 0; i < (17 << 20) / 64; i++)
        fputs("0123456789012345678901234567890123456789012345678901234567890123", f);
    fputs("\"}\n", f);
    fprintf(f,
            "{\"customer_id\":\"b\",\"type\":\"purchase\",\"ts\":1700000000004,\"amount\":12.5}\n");
    fprintf(f, "{\"customer_id\":\"c\",\"type\":\"page_view\",\"ts\":1800000000000}\n");
    fclose(f);
    cr_assert_eq(h_run("%s replay --input %s/mixed.jsonl --out %s/out.jsonl --snapshot %s/s.csv "
                       "2>%s/log",
                       SEG_BIN, dir, dir, dir, dir),
                 0);
    snprintf(path, sizeof(path), "%s/out.jsonl.dlq", dir);
    char *dlq = h_slurp(path, NULL);
    cr_assert_not_null(dlq);
    cr_assert(strstr(dlq, "\"error\":\"not_json_or_msgpack\""), "%s", dlq);
    cr_assert(strstr(dlq, "\"error\":\"missing_customer_id\""));
    cr_assert(strstr(dlq, "\"error\":\"negative_amount\""));
    cr_assert(strstr(dlq, "\"error\":\"bad_type\""));
    cr_assert(strstr(dlq, "\"error\":\"future_ts\""));
    cr_assert(strstr(dlq, "\"error\":\"oversized\""));
    cr_assert(strstr(dlq, "this is not json"), "original bytes are kept");
    free(dlq);
    /* the line the framing refused counts among the records too */
    snprintf(path, sizeof(path), "%s/log", dir);
    char *log = h_slurp(path, NULL);
    cr_assert(log && strstr(log, "records 8  applied 2  duplicates 0  dead-lettered 6"), "%s",
              log ? log : "");
    free(log);
    snprintf(path, sizeof(path), "%s/out.jsonl.dlq", dir);
    cr_assert_eq(h_count_lines(path), 6);
    snprintf(path, sizeof(path), "%s/s.csv", dir);
    char *snap = h_slurp(path, NULL);
    cr_assert(strstr(snap, "\na,new,"), "%s", snap);
    cr_assert(strstr(snap, "\nb,new,-1,,,1,1,12.50,"), "%s", snap);
    free(snap);
}

/* input.max_future_skew (7 d by default) against a stream with a quiet gap
 * and one with a producer's bad clock: an event far ahead is kept until the
 * next one decides. After a gap longer than the skew the stream goes on
 * near it, and every event is applied (the first one after a gap used to be
 * dead-lettered); a lone outlier, followed by events near the stream again
 * or by the end of the input, is refused. */
Test(replay, a_quiet_gap_loses_no_event_and_a_lone_future_outlier_is_refused)
{
    const long long T = 1700000000000LL, D = 86400000LL;
    char path[600];
    snprintf(path, sizeof(path), "%s/gap.jsonl", dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    const char *ids[] = {"a", "b", "x", "c", "d", "e", "z"};
    long long ts[] = {T, T + 7 * D, T + 45 * D, T + 8 * D, T + 16 * D, T + 16 * D + 5, T + 400 * D};
    for (int i = 0; i < 7; i++)
        fprintf(f, "{\"customer_id\":\"%s\",\"type\":\"page_view\",\"ts\":%lld}\n", ids[i], ts[i]);
    fclose(f);
    cr_assert_eq(h_run("%s replay -q --input %s/gap.jsonl --out %s/gap.out --snapshot %s/s.csv",
                       SEG_BIN, dir, dir, dir),
                 0);
    /* x: 38 days ahead, then c back near the stream; z: 384 days ahead at
     * the end; d: 8 days after c (a gap), then e near it */
    snprintf(path, sizeof(path), "%s/gap.out.dlq", dir);
    char *dlq = h_slurp(path, NULL);
    cr_assert_not_null(dlq);
    cr_assert_eq(h_count_lines(path), 2, "%s", dlq);
    cr_assert(strstr(dlq, "\"offset\":3,"), "x, line 3: %s", dlq);
    cr_assert(strstr(dlq, "\"offset\":7,"), "z, line 7: %s", dlq);
    cr_assert(strstr(dlq, "\"error\":\"future_ts\""), "%s", dlq);
    free(dlq);
    snprintf(path, sizeof(path), "%s/s.csv", dir);
    char *snap = h_slurp(path, NULL);
    cr_assert_not_null(snap);
    for (int i = 0; i < 7; i++) {
        char needle[16];
        snprintf(needle, sizeof(needle), "\n%s,", ids[i]);
        int refused = ids[i][0] == 'x' || ids[i][0] == 'z';
        cr_assert_eq(strstr(snap, needle) != NULL, !refused, "%s %s: %s", ids[i],
                     refused ? "applied" : "missing", snap);
    }
    free(snap);
}

/* A purchase of 1e308 is a JSON number >= 0; eleven of them made their
 * customer's revenue infinite, and once the model learned that customer a
 * whole cluster's centroid went with it (a 2 000-customer replay lost its
 * high-spend cluster). Over 10^15 an amount is a dead letter, so the file
 * with them replays as the file without them. */
Test(replay, absurd_amounts_are_dead_letters_and_do_not_reach_the_model)
{
    cr_assert_eq(h_run("cd %s && %s gen --customers 2000 --events 60000 --seed 2 --out clean.jsonl",
                       dir, SEG_BIN),
                 0);
    /* eleven purchases of customer evil in the middle, at that line's time */
    FILE *in = fopen(h_path("clean.jsonl"), "r"), *out = fopen(h_path("poison.jsonl"), "w");
    cr_assert(in && out);
    char line[4096];
    for (int n = 1; fgets(line, sizeof line, in); n++) {
        const char *ts = strstr(line, "\"ts\":");
        if (n == 30000 && ts)
            for (int k = 0; k < 11; k++)
                fprintf(out,
                        "{\"customer_id\":\"evil\",\"type\":\"purchase\",\"ts\":%lld,"
                        "\"amount\":1.7e308,\"event_id\":\"x%d\"}\n",
                        strtoll(ts + 5, NULL, 10), k);
        fputs(line, out);
    }
    fclose(in);
    cr_assert_eq(fclose(out), 0);
    cr_assert_eq(h_run("cd %s && test $(grep -c evil poison.jsonl) = 11", dir), 0);
    for (int i = 0; i < 2; i++)
        cr_assert_eq(h_run("cd %s && %s replay -q --input %s.jsonl --out %s.out --snapshot %s.csv",
                           dir, SEG_BIN, i ? "poison" : "clean", i ? "poison" : "clean",
                           i ? "poison" : "clean"),
                     0);
    cr_assert_eq(h_run("cd %s && cmp clean.csv poison.csv && cmp clean.out poison.out", dir), 0,
                 "the absurd amounts changed the segments");
    char *dlq = h_slurp(h_path("poison.out.dlq"), NULL);
    cr_assert_not_null(dlq);
    cr_assert_eq(h_count_lines(h_path("poison.out.dlq")), 11, "%s", dlq);
    cr_assert(strstr(dlq, "\"error\":\"amount_too_large\""), "%s", dlq);
    free(dlq);
}

/* The first record of a file has nothing to be checked against: a bad
 * clock there used to set W to 2099 and step every later customer to
 * lapsed. It now waits for the next record like any far-ahead one. */
Test(replay, a_bad_clock_on_the_first_record_lapses_no_one)
{
    const long long T = 1700000000000LL, D = 86400000LL;
    char path[600];
    snprintf(path, sizeof(path), "%s/first.jsonl", dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fprintf(f, "{\"customer_id\":\"fut\",\"type\":\"page_view\",\"ts\":4070908800000}\n");
    const char *ids[] = {"n1", "n2", "g1", "g2"};
    long long ts[] = {T, T + 1000, T + 200 * D, T + 200 * D + 5}; /* g1, g2: after a quiet gap */
    for (int i = 0; i < 4; i++)
        fprintf(f, "{\"customer_id\":\"%s\",\"type\":\"page_view\",\"ts\":%lld}\n", ids[i], ts[i]);
    fclose(f);
    cr_assert_eq(h_run("%s replay -q --input %s/first.jsonl --out %s/first.out --snapshot %s/s.csv",
                       SEG_BIN, dir, dir, dir),
                 0);
    snprintf(path, sizeof(path), "%s/first.out.dlq", dir);
    char *dlq = h_slurp(path, NULL);
    cr_assert_not_null(dlq);
    cr_assert_eq(h_count_lines(path), 1, "%s", dlq);
    cr_assert(strstr(dlq, "\"error\":\"future_ts\"") && strstr(dlq, "\"offset\":1,"), "%s", dlq);
    free(dlq);
    snprintf(path, sizeof(path), "%s/first.out", dir);
    char *out = h_slurp(path, NULL);
    cr_assert_not_null(out);
    /* n1 and n2 go new -> active -> at_risk -> lapsed over 200 days, at
     * the thresholds, not at once on a 2099 watermark */
    cr_assert(strstr(out, "\"customer_id\":\"n1\",\"dimension\":\"lifecycle\",\"from\":\"at_risk\","
                          "\"to\":\"lapsed\",\"ts\":1705184000000"),
              "%s", out);
    cr_assert_null(strstr(out, "2099"), "%s", out);
    cr_assert_null(strstr(out, "4070908800000"), "%s", out);
    free(out);
    snprintf(path, sizeof(path), "%s/s.csv", dir);
    char *snap = h_slurp(path, NULL);
    cr_assert_not_null(snap);
    for (int i = 0; i < 4; i++) {
        char needle[16];
        snprintf(needle, sizeof(needle), "\n%s,", ids[i]);
        cr_assert(strstr(snap, needle), "%s missing: %s", ids[i], snap);
    }
    cr_assert_null(strstr(snap, "\nfut,"), "%s", snap);
    free(snap);
}

/* Dead letters with nowhere beside --out to go (stdout, /dev/null, a pipe)
 * go to stderr, -q or not; --dlq - is stdout. */
Test(replay, dead_letters_without_a_file_go_to_stderr)
{
    char path[600];
    snprintf(path, sizeof(path), "%s/neg.jsonl", dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fprintf(f,
            "{\"customer_id\":\"a\",\"type\":\"purchase\",\"ts\":1700000000000,\"amount\":-1}\n");
    fprintf(f, "{\"customer_id\":\"a\",\"type\":\"page_view\",\"ts\":1700000000001}\n");
    fclose(f);
    cr_assert_eq(
        h_run("%s replay -q --input %s/neg.jsonl --out - >%s/o1 2>%s/e1", SEG_BIN, dir, dir, dir),
        0);
    snprintf(path, sizeof(path), "%s/e1", dir);
    char *e1 = h_slurp(path, NULL);
    cr_assert(e1 && strstr(e1, "\"error\":\"negative_amount\""), "%s", e1 ? e1 : "");
    free(e1);
    cr_assert_eq(
        h_run("%s replay -q --input %s/neg.jsonl --out /dev/null --dlq - >%s/o2 2>/dev/null",
              SEG_BIN, dir, dir),
        0);
    snprintf(path, sizeof(path), "%s/o2", dir);
    char *o2 = h_slurp(path, NULL);
    cr_assert(o2 && strstr(o2, "\"error\":\"negative_amount\""), "%s", o2 ? o2 : "");
    free(o2);
    cr_assert_eq(
        h_run("%s replay -q --input %s/neg.jsonl --out - --dlq - >/dev/null 2>&1", SEG_BIN, dir), 2,
        "both on stdout: refused");
}

Test(replay, bad_command_lines_fail_with_a_message)
{
    cr_assert_eq(h_run("%s replay --out x 2>/dev/null", SEG_BIN), 2);
    cr_assert_eq(h_run("%s replay --input /nonexistent --out %s/o 2>%s/err", SEG_BIN, dir, dir), 1);
    cr_assert_neq(h_run("test -e %s/o || test -e %s/o.dlq", dir, dir), 0,
                  "an input that cannot be read leaves no output behind");
    /* the exit statuses --help gives: an input or a model that cannot be
     * read is a failure while running (1), whatever its format; a CSV input
     * without a mapping is a bad invocation (2) */
    cr_assert_eq(h_run("%s replay --input /nonexistent.csv --csv-preset cdnow --out %s/o 2>%s/err",
                       SEG_BIN, dir, dir),
                 1);
    cr_assert_eq(h_run("%s replay --input /nonexistent.csv --out %s/o 2>%s/err", SEG_BIN, dir, dir),
                 2);
    cr_assert_eq(h_run("%s replay --input /dev/null --model /nonexistent --out %s/o 2>%s/err",
                       SEG_BIN, dir, dir),
                 1);
    char path[600];
    snprintf(path, sizeof(path), "%s/cfg.yaml", dir);
    FILE *f = fopen(path, "w");
    fprintf(f, "clusters:\n  k: 99\n");
    fclose(f);
    cr_assert_eq(
        h_run("%s replay --input /dev/null --out %s/o -c %s 2>%s/err", SEG_BIN, dir, path, dir), 2);
    snprintf(path, sizeof(path), "%s/err", dir);
    char *err = h_slurp(path, NULL);
    cr_assert(strstr(err, "clusters.k"), "error names the key: %s", err);
    cr_assert(strstr(err, "cfg.yaml"), "error names the file: %s", err);
    free(err);
    /* --events 0 is refused like --customers 0, not taken for "unset"
     * (which writes 20 events per customer) */
    cr_assert_eq(h_run("%s gen --customers 10 --events 0 --out %s/g0 2>%s/err", SEG_BIN, dir, dir),
                 2);
    err = h_slurp(path, NULL);
    cr_assert(strstr(err, "--events"), "error names the flag: %s", err);
    free(err);
    cr_assert_neq(h_run("test -e %s/g0", dir), 0, "nothing written");
}

/* Every command answers --help with exit 0 on stdout; the version is there
 * as a command and as --version; bad topic lists are refused. */
Test(replay, every_command_has_help_and_the_version_is_there)
{
    const char *cmds[] = {"run", "broker", "gen", "replay", "inspect", "compare", "version"};
    for (int i = 0; i < 7; i++)
        cr_assert_eq(h_run("%s %s --help >%s/help.txt 2>&1 && grep -q usage %s/help.txt", SEG_BIN,
                           cmds[i], dir, dir),
                     0, "%s --help", cmds[i]);
    cr_assert_eq(h_run("%s --version | grep -q '^segstream [0-9]'", SEG_BIN), 0);
    cr_assert_eq(h_run("%s version | grep -q '^segstream [0-9]'", SEG_BIN), 0);
    cr_assert_eq(h_run("%s --help >/dev/null", SEG_BIN), 0);
    cr_assert_eq(h_run("%s nosuch 2>/dev/null", SEG_BIN), 2);
    /* an option a command does not have is named with the command, as its
     * other errors are */
    for (int i = 0; i < 6; i++) /* version takes no options */
        cr_assert_eq(h_run("%s %s --bogus 2>%s/err.txt; test $? -eq 2 && grep -q '^segstream %s: "
                           "unrecognized option' %s/err.txt",
                           SEG_BIN, cmds[i], dir, cmds[i], dir),
                     0, "%s --bogus", cmds[i]);
    cr_assert_eq(h_run("%s broker --topics a,,b 2>/dev/null", SEG_BIN), 2);
    cr_assert_eq(h_run("%s broker --topics '' 2>/dev/null", SEG_BIN), 2);
    /* names kafka.topics refuses, by the config's check (a broker that
     * took them would run until stopped: timeout ends it) */
    cr_assert_eq(h_run("timeout 10 %s broker --topics 'events,bad topic' >/dev/null 2>%s/err.txt",
                       SEG_BIN, dir),
                 2);
    cr_assert_eq(
        h_run("grep -q \"invalid topic name 'bad topic' (letters, digits\" %s/err.txt", dir), 0);
    cr_assert_eq(h_run("timeout 10 %s broker --topics a,.. >/dev/null 2>&1", SEG_BIN), 2);
}

/* Each --help's usage line names what CONTRACT §5 gives scripts: the
 * commands' required flags and the forms their values take. */
Test(replay, usage_lines_carry_the_contracts_command_lines)
{
    const char *usage[][2] = {
        {"run", "usage: segstream run [-c FILE]"},
        {"broker", "usage: segstream broker [--partitions P] [--topics a,b,...]"},
        {"gen", "usage: segstream gen --customers N --events M --seed S --out FILE|kafka:TOPIC"},
        {"replay", "usage: segstream replay --input FILE|kafka:TOPIC --out FILE|kafka:TOPIC"},
        {"inspect", "usage: segstream inspect CUSTOMER_ID [--json]"},
    };
    for (size_t i = 0; i < sizeof usage / sizeof usage[0]; i++)
        cr_expect_eq(
            h_run("%s %s --help | head -1 | grep -qF -- '%s'", SEG_BIN, usage[i][0], usage[i][1]),
            0, "%s --help: %s", usage[i][0], usage[i][1]);
    /* and gen's names the optional flags the contract lists */
    const char *gen_flags[] = {"--brokers B", "--format F", "--truth FILE"};
    for (size_t i = 0; i < sizeof gen_flags / sizeof gen_flags[0]; i++)
        cr_expect_eq(h_run("%s gen --help | grep -qF -- '%s'", SEG_BIN, gen_flags[i]), 0, "%s",
                     gen_flags[i]);
}

/* A file replay's inputs and outputs as users get them wrong: a stray
 * first byte (--input-format frames the file anyway, and without it the
 * replay says so), an --out or --dlq over the input or over each other
 * (refused, the input intact), an input that cannot be read (exit 1, not a
 * dead letter), and a late first event keeps emitted_at at W. */
Test(replay, file_inputs_and_outputs_users_get_wrong)
{
    cr_assert_eq(h_run("%s gen --customers 300 --events 5000 --seed 4 --format msgpack --out "
                       "%s/g.mp",
                       SEG_BIN, dir),
                 0);
    cr_assert_eq(h_run("cd %s && { printf '\\301'; cat g.mp; } > cut.mp", dir), 0);
    cr_assert_eq(h_run("cd %s && %s replay -q --input g.mp --out clean.jsonl", dir, SEG_BIN), 0);
    cr_assert_eq(h_run("cd %s && %s replay -q --input cut.mp --input-format msgpack --out "
                       "forced.jsonl",
                       dir, SEG_BIN),
                 0);
    cr_assert(h_same_file(h_path("clean.jsonl"), h_path("forced.jsonl")),
              "a stray first byte changed the changes of a forced msgpack replay");
    cr_assert_eq(h_count_lines(h_path("forced.jsonl.dlq")), 1, "the stray byte: one dead letter");
    cr_assert_eq(h_run("cd %s && %s replay -q --input cut.mp --out sniffed.jsonl 2> sniffed.err",
                       dir, SEG_BIN),
                 0);
    char *err = h_slurp(h_path("sniffed.err"), NULL);
    cr_assert(err && strstr(err, "--input-format"), "no hint: %s", err ? err : "");
    free(err);
    /* JSON lines whose first line starts with a msgpack map's byte */
    cr_assert_eq(h_run("cd %s && printf '\\205\\n{\"customer_id\":\"c1\",\"type\":\"page_view\","
                       "\"ts\":1700000000000}\\n{\"customer_id\":\"c2\",\"type\":\"page_view\","
                       "\"ts\":1700000001000}\\n' > j.jsonl && %s replay -q --input j.jsonl "
                       "--input-format json --out j.out",
                       dir, SEG_BIN),
                 0);
    cr_assert_eq(h_run("grep -c '\"to\":\"new\"' %s/j.out | grep -qx 2", dir), 0);
    cr_assert_eq(h_count_lines(h_path("j.out.dlq")), 1);

    /* JSON lines forced as msgpack: every few bytes a dead letter, said
     * once early (before the end) and at the end, naming the flag */
    cr_assert_eq(
        h_run("%s gen --customers 300 --events 5000 --seed 4 --out %s/g.jsonl", SEG_BIN, dir), 0);
    cr_assert_eq(h_run("cd %s && %s replay -q --input g.jsonl --input-format msgpack --out "
                       "wrong.out --dlq wrong.dlq 2> wrong.err",
                       dir, SEG_BIN),
                 0);
    err = h_slurp(h_path("wrong.err"), NULL);
    cr_assert(err && strstr(err, "warning: none of the first ") &&
                  strstr(err, " records of g.jsonl could be applied; it was read as "
                              "--input-format msgpack: is it a msgpack stream?"),
              "%s", err ? err : "");
    cr_assert(strstr(err, "no record of g.jsonl could be applied; it was read as --input-format "
                          "msgpack"),
              "%s", err);
    free(err);

    /* outputs over the input or each other: exit 2, nothing touched */
    cr_assert_eq(h_run("cd %s && cp j.jsonl keep.jsonl && ln -s keep.jsonl link.jsonl", dir), 0);
    const char *bad[] = {"--out keep.jsonl", "--out link.jsonl", "--out o.jsonl --dlq keep.jsonl",
                         "--out o.jsonl --dlq o.jsonl"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_eq(
            h_run("cd %s && %s replay -q --input keep.jsonl %s 2>/dev/null", dir, SEG_BIN, bad[i]),
            2, "%s", bad[i]);
    cr_assert(h_same_file(h_path("keep.jsonl"), h_path("j.jsonl")), "the input was written over");
    /* an input that cannot be read on: a failure, not a dead letter */
    cr_assert_eq(h_run("cd %s && %s replay -q --input %s --out d.out 2> d.err", dir, SEG_BIN, dir),
                 1);
    cr_assert_eq(h_run("test ! -e %s/d.out.dlq && grep -q 'reading failed' %s/d.err", dir, dir), 0,
                 "a read error went to the dead letters, or was not said");

    /* a new customer whose first event is behind W: its change is made at
     * W, and emitted_at says so (never going back in the output) */
    cr_assert_eq(h_run("cd %s && printf '%%s\\n' "
                       "'{\"customer_id\":\"z\",\"type\":\"page_view\",\"ts\":1700000000000}' "
                       "'{\"customer_id\":\"a\",\"type\":\"page_view\",\"ts\":1700432000000}' "
                       "'{\"customer_id\":\"b\",\"type\":\"page_view\",\"ts\":1700086400000}' "
                       "> late.jsonl && %s replay -q --input late.jsonl --out late.out",
                       dir, SEG_BIN),
                 0);
    char *out = h_slurp(h_path("late.out"), NULL);
    cr_assert_not_null(out);
    const char *b = strstr(out, "{\"event_id\":\"b:lifecycle:1\"");
    cr_assert_not_null(b, "%s", out);
    cr_assert(strstr(b, "\"ts\":1700086400000,\"emitted_at\":1700432000000,"), "%s", b);
    free(out);
}

/* Every file a replay writes (--out, --dlq, OUT.dlq, --snapshot,
 * --save-model, --dump) against what it reads (--input, a --model file, the
 * config, a --csv-map file, a joined CSV file) and against each other, and gen's --truth against
 * its --out: refused with exit 2 naming both flags, before anything is opened. */
Test(replay, no_output_is_written_over_an_input_or_another_output)
{
    cr_assert_eq(h_run("cd %s && %s gen --customers 10 --events 40 --out in.jsonl && cp in.jsonl "
                       "keep.jsonl && %s replay -q --input in.jsonl --out o.out --save-model m.mp "
                       "&& cp m.mp keep.mp",
                       dir, SEG_BIN, SEG_BIN),
                 0);
    const struct {
        const char *args, *msg;
    } bad[] = {
        {"--out o.out --snapshot in.jsonl", "--snapshot in.jsonl is the file --input names too"},
        {"--out o.out --save-model ./in.jsonl",
         "--save-model ./in.jsonl is the file --input names too"},
        {"--out o.out --snapshot o.out", "--snapshot o.out is the file --out names too"},
        {"--out o.out --dlq d.out --save-model d.out",
         "--save-model d.out is the file --dlq names too"},
        {"--out o.out --snapshot s.csv --save-model s.csv",
         "--save-model s.csv is the file --snapshot names too"},
        {"--out new.out --snapshot new.out.dlq",
         "dead letters of --out would go to new.out.dlq (OUT.dlq), the file --snapshot names"},
        {"--out m.mp --model m.mp", "--out m.mp is the file --model names too"},
        {"--out o.out --model m.mp --snapshot m.mp",
         "--snapshot m.mp is the file --model names too"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(
            h_run("cd %s && %s replay -q --input in.jsonl %s 2>err.txt", dir, SEG_BIN, bad[i].args),
            2, "%s", bad[i].args);
        char *err = h_slurp(h_path("err.txt"), NULL);
        cr_assert(err && strstr(err, bad[i].msg), "%s: %s", bad[i].args, err ? err : "");
        free(err);
    }
    /* the config, a --csv-map file and a joined CSV file are inputs too
     * (an inline --csv-map is no file) */
    cr_assert_eq(h_run("cd %s && printf 'log:\\n  level: info\\n' > seg.yaml && cp seg.yaml "
                       "keep.yaml && printf 'oid,type,ts\\nk1,page_view,1700000000000\\n' > "
                       "orders.csv && printf 'oid,customer_id\\nk1,c1\\n' > cust.csv && cp "
                       "cust.csv keep.csv && printf "
                       "'join=cust.csv:oid\\ncustomer_id=customer_id\\ntype=type\\nts=ts\\n' > "
                       "map.txt && cp map.txt keep.txt",
                       dir),
                 0);
    const struct {
        const char *args, *msg;
    } in[] = {
        {"-c seg.yaml --input in.jsonl --out o2.json --snapshot seg.yaml",
         "--snapshot seg.yaml is the file --config names too"},
        {"--config ./seg.yaml --input in.jsonl --out seg.yaml",
         "--out seg.yaml is the file --config names too"},
        {"--input orders.csv --csv-map map.txt --out map.txt",
         "--out map.txt is the file --csv-map names too"},
        {"--input orders.csv --csv-map map.txt --out o3.json --dlq ./map.txt",
         "--dlq ./map.txt is the file --csv-map names too"},
        {"--input orders.csv --csv-map join=cust.csv:oid,customer_id=customer_id,type=type,ts=ts "
         "--out o4.json --snapshot cust.csv",
         "--snapshot cust.csv is the file join=cust.csv of the CSV mapping names too"},
    };
    for (size_t i = 0; i < sizeof in / sizeof in[0]; i++) {
        cr_assert_eq(h_run("cd %s && %s replay -q %s 2>err.txt", dir, SEG_BIN, in[i].args), 2, "%s",
                     in[i].args);
        char *err = h_slurp(h_path("err.txt"), NULL);
        cr_assert(err && strstr(err, in[i].msg), "%s: %s", in[i].args, err ? err : "");
        free(err);
    }
    cr_assert(h_same_file(h_path("seg.yaml"), h_path("keep.yaml")), "the config was written over");
    cr_assert(h_same_file(h_path("map.txt"), h_path("keep.txt")), "the map was written over");
    cr_assert(h_same_file(h_path("cust.csv"), h_path("keep.csv")), "the join was written over");
    cr_assert_eq(h_run("cd %s && test ! -e o2.json && test ! -e o3.json && test ! -e o4.json", dir),
                 0, "a refused replay created a file");
    cr_assert_eq(
        h_run("cd %s && %s replay -q --input orders.csv --csv-map map.txt --out o5.json && "
              "%s replay -q --input orders.csv --csv-map "
              "join=cust.csv:oid,customer_id=customer_id,type=type,ts=ts --out o6.json",
              dir, SEG_BIN, SEG_BIN),
        0);

    /* a symlink to an output yet to be made is that output */
    cr_assert_eq(h_run("cd %s && ln -s target.out link.out && %s replay -q --input in.jsonl --out "
                       "target.out --snapshot link.out 2>err.txt",
                       dir, SEG_BIN),
                 2);
    cr_assert_eq(
        h_run("cd %s && grep -q -- '--snapshot link.out is the file --out names too' err.txt && "
              "test ! -e target.out",
              dir),
        0);
    cr_assert(h_same_file(h_path("in.jsonl"), h_path("keep.jsonl")), "the input was written over");
    cr_assert(h_same_file(h_path("m.mp"), h_path("keep.mp")), "the model was written over");
    cr_assert_eq(h_run("test ! -e %s/new.out && test ! -e %s/s.csv", dir, dir), 0,
                 "a refused replay created a file");
    /* a topic's --dump is a file output too (refused before any broker) */
    cr_assert_eq(h_run("cd %s && %s replay -q --input kafka:ev --brokers 127.0.0.1:1 --out o.out "
                       "--dump o.out 2>err.txt",
                       dir, SEG_BIN),
                 2);
    cr_assert_eq(
        h_run("cd %s && grep -q -- '--dump o.out is the file --out names too' err.txt", dir), 0);
    /* a device is no file to lose: /dev/null in and out, or out twice */
    cr_assert_eq(h_run("cd %s && %s replay -q --input /dev/null --out /dev/null --snapshot "
                       "/dev/null --save-model /dev/null",
                       dir, SEG_BIN),
                 0);
    /* saving the model over the one it started from updates it */
    cr_assert_eq(
        h_run("cd %s && %s replay -q --input in.jsonl --out o.out --model m.mp --save-model m.mp",
              dir, SEG_BIN),
        0);
    /* a model that does not fit the config: the refusal says where the
     * config's value came from */
    cr_assert_eq(h_run("cd %s && printf 'clusters:\\n  k: 8\\n' > k8.yaml && %s replay -q -c "
                       "k8.yaml --input in.jsonl --out o.out --model m.mp 2>err.txt; test $? -ne "
                       "0 && grep -qF 'k is 6 but clusters.k is 8 (config k8.yaml)' err.txt",
                       dir, SEG_BIN),
                 0);
    cr_assert_eq(h_run("cd %s && SEGSTREAM_CLUSTERS_K=8 %s replay -q --input in.jsonl --out o.out "
                       "--model m.mp 2>err.txt; test $? -ne 0 && grep -qF 'clusters.k is 8 "
                       "(clusters.k from env SEGSTREAM_CLUSTERS_K)' err.txt",
                       dir, SEG_BIN),
                 0);

    /* gen: the truth over the events */
    cr_assert_eq(h_run("cd %s && %s gen --customers 10 --events 40 --out in.jsonl --truth "
                       "./in.jsonl 2>err.txt",
                       dir, SEG_BIN),
                 2);
    cr_assert_eq(
        h_run("cd %s && grep -q -- '--truth ./in.jsonl is the file --out names too' err.txt", dir),
        0);
    cr_assert(h_same_file(h_path("in.jsonl"), h_path("keep.jsonl")), "gen wrote over its --out");
}

/* gen's outputs on a full disk (/dev/full takes the open and fails the
 * write, often only at the last flush): exit 1, saying which and why. */
Test(replay, gen_says_when_an_output_cannot_be_written)
{
    const struct {
        const char *args, *msg;
    } bad[] = {
        {"--out - > /dev/full", "segstream gen: stdout: No space left on device"},
        {"--out /dev/full", "segstream gen: /dev/full: No space left on device"},
        {"--out /dev/null --truth /dev/full", "segstream gen: /dev/full: No space left on device"},
        {"--out %s/no/such/dir", "No such file or directory"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char args[600];
        snprintf(args, sizeof args, bad[i].args, dir);
        cr_assert_eq(h_run("%s gen --customers 10 --events 20 %s 2>%s/err.txt", SEG_BIN, args, dir),
                     1, "%s", args);
        char *err = h_slurp(h_path("err.txt"), NULL);
        cr_assert(err && strstr(err, bad[i].msg), "%s: %s", args, err ? err : "");
        free(err);
    }
}

/* '-' is stdout for --truth as for --out (it made a file named '-'), and
 * the two cannot share it. */
Test(replay, gen_truth_dash_is_stdout)
{
    cr_assert_eq(
        h_run("cd %s && %s gen -n 3 -m 6 --out ev.jsonl --truth - > truth.txt", dir, SEG_BIN), 0);
    cr_assert_eq(h_run("test ! -e %s/-", dir), 0, "a file named '-' was made");
    char *t = h_slurp(h_path("truth.txt"), NULL);
    cr_assert(t && strncmp(t, "customer_id,segment\nc000000,", 28) == 0, "%s", t ? t : "");
    free(t);
    cr_assert_eq(
        h_run("cd %s && %s gen -n 3 -m 6 --out - --truth - > both.txt 2>err.txt", dir, SEG_BIN), 2);
    char *err = h_slurp(h_path("err.txt"), NULL);
    cr_assert(err && strstr(err, "segstream gen: --out - and --truth - would share stdout"), "%s",
              err ? err : "");
    free(err);
    cr_assert_eq(h_run("test ! -e %s/-", dir), 0, "a file named '-' was made");
}

/* '-' is stdout for replay's --snapshot and --save-model as for --out and
 * --dlq (they made a file named '-'); two of them cannot share it. */
Test(replay, replay_outputs_dash_is_stdout)
{
    cr_assert_eq(h_run("cd %s && %s gen -n 20 -m 200 --out ev.jsonl", dir, SEG_BIN), 0);
    cr_assert_eq(h_run("cd %s && %s replay -q --input ev.jsonl --out o.jsonl --snapshot - > "
                       "snap.txt",
                       dir, SEG_BIN),
                 0);
    cr_assert_eq(h_run("test ! -e %s/-", dir), 0, "a file named '-' was made");
    cr_assert_eq(h_run("cd %s && head -1 snap.txt | grep -q '^customer_id,lifecycle,' && "
                       "test $(wc -l < snap.txt) -eq 21",
                       dir),
                 0);
    cr_assert_eq(h_run("cd %s && %s replay -q --input ev.jsonl --out o.jsonl --save-model m.mp && "
                       "%s replay -q --input ev.jsonl --out o.jsonl --save-model - > m2.mp && "
                       "cmp m.mp m2.mp",
                       dir, SEG_BIN, SEG_BIN),
                 0);
    cr_assert_eq(h_run("test ! -e %s/-", dir), 0, "a file named '-' was made");
    cr_assert_eq(h_run("cd %s && %s replay -q --input ev.jsonl --out - --snapshot - > x.txt "
                       "2>err.txt",
                       dir, SEG_BIN),
                 2);
    char *err = h_slurp(h_path("err.txt"), NULL);
    cr_assert(err && strstr(err, "--out - and --snapshot - would share stdout"), "%s",
              err ? err : "");
    free(err);
}

/* A stray word, or a file flag whose value was forgotten (so the next
 * option became the file name): exit 2, and no file is made. */
Test(replay, stray_arguments_and_options_taken_for_files_are_refused)
{
    const struct {
        const char *cmd, *msg;
    } bad[] = {
        {"gen --customers 5 --out x.jsonl extra", "segstream gen: unexpected argument 'extra'"},
        {"inspect c1 c2", "segstream inspect: unexpected argument 'c2'"},
        {"gen --customers 5 --out --truth t.csv", "--out --truth: that is an option, not a file"},
        {"gen --customers 5 --out x.jsonl --truth --seed 3",
         "--truth --seed: that is an option, not a file"},
        {"replay --input x.jsonl --out o.out --snapshot --dlq",
         "--snapshot --dlq: that is an option, not a file"},
        {"compare a.csv b.csv --out --format", "--out --format: that is an option, not a file"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(h_run("cd %s && %s %s 2>err.txt", dir, SEG_BIN, bad[i].cmd), 2, "%s",
                     bad[i].cmd);
        char *err = h_slurp(h_path("err.txt"), NULL);
        cr_assert(err && strstr(err, bad[i].msg), "%s: %s", bad[i].cmd, err ? err : "");
        free(err);
    }
    cr_assert_eq(h_run("cd %s && test \"$(ls)\" = err.txt", dir), 0, "a file was made");
    /* a file whose name starts with "--" is still there for the asking */
    cr_assert_eq(h_run("cd %s && %s gen --customers 5 --events 5 --out ./--x && test -s ./--x", dir,
                       SEG_BIN),
                 0);
}

/* A kafka.brokers value librdkafka takes (no port, a trailing comma, a
 * URL's path) does not stop a replay of files, which loads the config too;
 * one it cannot take still does. */
Test(replay, a_broker_list_librdkafka_takes_does_not_stop_a_file_replay)
{
    cr_assert_eq(h_run("cd %s && printf '%%s\\n' "
                       "'{\"customer_id\":\"c\",\"type\":\"page_view\",\"ts\":1700000000000}' "
                       "> one.json",
                       dir),
                 0);
    const char *ok[] = {"kafka", "kafka:9092,", "PLAINTEXT://kafka:9092/"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        cr_assert_eq(h_run("cd %s && SEGSTREAM_KAFKA_BROKERS='%s' %s replay -q --input one.json "
                           "--out /dev/null",
                           dir, ok[i], SEG_BIN),
                     0, "%s", ok[i]);
    cr_assert_eq(h_run("cd %s && SEGSTREAM_KAFKA_BROKERS='not a broker list!!' %s replay -q "
                       "--input one.json --out /dev/null 2>err.txt",
                       dir, SEG_BIN),
                 2);
    cr_assert_eq(h_run("cd %s && grep -q \"env SEGSTREAM_KAFKA_BROKERS: "
                       "'list!!' in 'not a broker list!!': invalid character '!'\" err.txt",
                       dir),
                 0);
}

/* replay of in.jsonl with args exits 2 saying msg, before making o.out */
static void replay_refused(const char *args, const char *msg)
{
    cr_assert_eq(h_run("cd %s && %s replay -q --input in.jsonl --out o.out %s 2>err.txt", dir,
                       SEG_BIN, args),
                 2, "%s", args);
    char *err = h_slurp(h_path("err.txt"), NULL);
    cr_assert(err && strstr(err, msg), "%s: %s", args, err ? err : "");
    free(err);
    cr_assert_eq(h_run("test ! -e %s/o.out", dir), 0, "%s: an output was made", args);
}

/* `env segstream args` in dir exits 2, saying msg on stderr. */
static void exits_2_saying(const char *env, const char *args, const char *msg)
{
    cr_assert_eq(h_run("cd %s && %s %s %s 2>err.txt", dir, env, SEG_BIN, args), 2, "%s", args);
    char *err = h_slurp(h_path("err.txt"), NULL);
    cr_expect(err && strstr(err, msg), "%s: %s", args, err ? err : "");
    free(err);
}

/* --state and --model URLs that cannot name a Redis server are a bad
 * invocation (exit 2, as --help says and as inspect does), found before
 * anything is read or written; a server that does not answer is a failure
 * while running (exit 1). */
Test(replay, redis_urls_that_name_no_server_exit_2)
{
    cr_assert_eq(h_run("cd %s && printf '%%s\\n' "
                       "'{\"customer_id\":\"c\",\"type\":\"page_view\",\"ts\":1700000000000}' "
                       "> in.jsonl",
                       dir),
                 0);
    replay_refused("--state redis://127.0.0.1:6379/abc", "database 'abc' is not a number");
    replay_refused("--state redis://127.0.0.1:x", "--state redis://127.0.0.1:x: port 'x'");
    replay_refused("--model redis://:6379", "--model redis://:6379:");
    /* a prefix the daemon's keys could not hold (redis.prefix's limit) */
    char a101[102], args[300];
    memset(a101, 'a', 101);
    a101[101] = 0;
    snprintf(args, sizeof args, "--state redis://127.0.0.1:6379 --prefix %s", a101);
    replay_refused(args, "101 bytes, over the 100 a prefix may have");
    snprintf(args, sizeof args, "--model redis://127.0.0.1:6379/%s", a101);
    replay_refused(args, "101 bytes, over the 100 a prefix may have");
    /* a live prefix of 100 bytes: the replays' default beside it is longer */
    a101[99] = ':', a101[100] = 0;
    setenv("SEGSTREAM_REDIS_PREFIX", a101, 1);
    replay_refused("--state redis://127.0.0.1:6379",
                   "107 bytes, over the 100 a prefix may have; give --prefix");
    unsetenv("SEGSTREAM_REDIS_PREFIX");
    int port = h_free_port();
    cr_assert_eq(h_run("cd %s && %s replay -q --input in.jsonl --out o.out --state "
                       "redis://127.0.0.1:%d 2>/dev/null",
                       dir, SEG_BIN, port),
                 1);
}

/* A replay or gen that talks to Kafka checks what it will hand librdkafka
 * before anything is read or written, as `run` does: a kafka.properties
 * entry librdkafka refuses, a --brokers list it cannot use, or a topic name
 * Kafka refuses is a bad invocation or config (exit 2, as --help says),
 * named once with where it was set, not a failure after a metadata wait
 * (exit 1, the config file named twice). */
Test(replay, kafka_settings_are_checked_before_anything_is_read)
{
    cr_assert_eq(h_run("cd %s && printf '%%s\\n' "
                       "'{\"customer_id\":\"c\",\"type\":\"page_view\",\"ts\":1700000000000}' "
                       "> in.jsonl",
                       dir),
                 0);
    cr_assert_eq(h_writef(dir, "bad.yaml", "kafka:\n  properties:\n    security.protocol: bogus\n"),
                 0);
    const char *with_bad[] = {"--input kafka:events --out o.out", "--input in.jsonl --out kafka:x"};
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(
            h_run("cd %s && rm -f o.out* && %s replay -q -c bad.yaml --brokers 127.0.0.1:1 "
                  "%s 2>err.txt",
                  dir, SEG_BIN, with_bad[i]),
            2, "%s", with_bad[i]);
        char *err = h_slurp(h_path("err.txt"), NULL);
        cr_assert_not_null(err);
        cr_expect(strstr(err, "segstream replay: bad.yaml:3: kafka.properties.security.protocol: "
                              "kafka property security.protocol=bogus"),
                  "%s: %s", with_bad[i], err);
        cr_expect_null(strstr(err, "bad.yaml: bad.yaml"), "the file named once: %s", err);
        free(err);
        cr_assert_eq(h_run("test ! -e %s/o.out", dir), 0, "%s: an output was made", with_bad[i]);
    }
    /* one set in the environment is named by its variable, not "(defaults)" */
    exits_2_saying("SEGSTREAM_KAFKA_PROPERTIES_NO_SUCH=1",
                   "replay -q --input kafka:events --brokers 127.0.0.1:1 --out o.out",
                   "segstream replay: env SEGSTREAM_KAFKA_PROPERTIES_NO_SUCH: kafka property "
                   "no.such=1");
    /* a file replay to a file hands librdkafka nothing: no check */
    cr_assert_eq(
        h_run("cd %s && %s replay -q -c bad.yaml --input in.jsonl --out o.out", dir, SEG_BIN), 0);
    cr_assert_eq(h_run("rm -f %s/o.out %s/o.out.dlq", dir, dir), 0);
    /* --brokers as kafka.brokers takes it */
    replay_refused("--input kafka:events --brokers 'not a broker!!'",
                   "--brokers: 'broker!!' in 'not a broker!!': invalid character '!'");
    replay_refused("--out kafka:x --brokers host:99999", "--brokers: 'host:99999': port '99999'");
    /* topic names as kafka.topics takes them */
    exits_2_saying("", "replay -q --input 'kafka:bad topic' --brokers 127.0.0.1:1 --out o.out",
                   "--input kafka:bad topic: invalid topic name 'bad topic'");
    replay_refused("--dlq 'kafka:x/y' --brokers 127.0.0.1:1",
                   "--dlq kafka:x/y: invalid topic name 'x/y'");
    /* gen likewise, at once rather than after 30 s without a delivery */
    exits_2_saying("", "gen -n 5 -m 5 --out 'kafka:bad topic' --brokers 127.0.0.1:1",
                   "segstream gen: --out kafka:bad topic: invalid topic name");
    exits_2_saying("", "gen -n 5 -m 5 --out kafka:events --brokers host:0",
                   "segstream gen: --brokers: 'host:0'");
    exits_2_saying("SEGSTREAM_KAFKA_BROKERS='a b!'", "gen -n 5 -m 5 --out kafka:events",
                   "segstream gen: env SEGSTREAM_KAFKA_BROKERS: ");
}

/* The summary lists clusters by id: after splits, slots no longer are in
 * id order (this population splits twice, leaving ids 0 6 2 4 7 3 by
 * slot). */
Test(replay, the_summary_lists_clusters_by_id)
{
    cr_assert_eq(h_run("cd %s && %s gen --customers 3000 --events 200000 --seed 5 --churn 0.6 "
                       "--out g.jsonl && %s replay --input g.jsonl --out o.jsonl 2> sum.txt",
                       dir, SEG_BIN, SEG_BIN),
                 0);
    /* the ids, in the order printed, and at least one split among them */
    cr_assert_eq(h_run("cd %s && sed -n '/^clusters (/,$p' sum.txt | sed 1d | awk '{print $1}' > "
                       "ids.txt && test $(wc -l < ids.txt) -ge 2 && sort -n -c ids.txt && "
                       "test $(tail -1 ids.txt) -ge $(wc -l < ids.txt)",
                       dir),
                 0, "%s", h_slurp(h_path("sum.txt"), NULL));
}

/* A producer re-sending a stretch of one customer's events (a retried
 * batch) longer than the 8 ids the ring holds: each is applied once
 * (CONTRACT §1), here 9 purchases then the same 9 again, and a session's
 * 40 clicks twice; with input.dedup_window: 0s only the ring remains, and
 * the repeats that left it count again. */
Test(replay, a_resent_stretch_of_one_customers_events_is_applied_once)
{
    FILE *f = fopen(h_path("twice.jsonl"), "w");
    cr_assert_not_null(f);
    for (int r = 0; r < 2; r++) {
        for (int i = 0; i < 9; i++)
            fprintf(f,
                    "{\"customer_id\":\"buyer\",\"type\":\"purchase\",\"amount\":10,\"ts\":%lld,"
                    "\"event_id\":\"o%d\"}\n",
                    1700000000000LL + i * 60000, i);
        for (int i = 0; i < 40; i++)
            fprintf(f,
                    "{\"customer_id\":\"clicker\",\"type\":\"page_view\",\"ts\":%lld,"
                    "\"event_id\":\"v%d\"}\n",
                    1700000000000LL + i * 1000, i);
    }
    cr_assert_eq(fclose(f), 0);
    cr_assert_eq(h_run("cd %s && %s replay --input twice.jsonl --out o.jsonl --snapshot s.csv 2> "
                       "sum.txt && grep -q 'applied 49  duplicates 49 ' sum.txt && grep -q "
                       "'^buyer,.*,9,9,90.00,' s.csv && grep -q '^clicker,.*,40,0,0.00,' s.csv",
                       dir, SEG_BIN),
                 0, "%s", h_slurp(h_path("sum.txt"), NULL));
    cr_assert_eq(h_run("cd %s && printf 'input:\\n  dedup_window: 0s\\n' > ring.yaml && %s replay "
                       "-c ring.yaml --input twice.jsonl --out o2.jsonl --snapshot s2.csv 2> "
                       "sum2.txt && grep -q '^buyer,.*,18,18,180.00,' s2.csv",
                       dir, SEG_BIN),
                 0, "%s", h_slurp(h_path("sum2.txt"), NULL));
}

/* The value of column `col` in the first customer row of snapshot `path`. */
static double snapshot_value(const char *path, const char *col)
{
    char *snap = h_slurp(path, NULL);
    cr_assert_not_null(snap, "%s", path);
    char *row = strchr(snap, '\n');
    cr_assert_not_null(row, "%s", snap);
    *row++ = 0;
    int want = -1, i = 0;
    for (char *h = strtok(snap, ","); h; h = strtok(NULL, ","), i++)
        if (!strcmp(h, col)) want = i;
    cr_assert_geq(want, 0, "no column %s", col);
    char *v = row;
    for (i = 0; i < want; i++) v = strchr(v, ',') + 1;
    double x = strtod(v, NULL);
    free(snap);
    return x;
}

/* Time-of-day and weekday shares are read in features.timezone: two views
 * on Friday 2023-11-17 at 12:00 and 12:30 UTC are an afternoon there, a
 * Friday evening in Shanghai (UTC+8), a Saturday morning on Kiritimati
 * (UTC+14). */
Test(replay, time_of_day_and_weekdays_follow_the_configured_time_zone)
{
    cr_assert_eq(h_writef(dir, "fri.jsonl",
                          "{\"customer_id\":\"f\",\"type\":\"page_view\",\"ts\":1700222400000}\n"
                          "{\"customer_id\":\"f\",\"type\":\"page_view\",\"ts\":1700224200000}\n"),
                 0);
    cr_assert_eq(h_writef(dir, "kiri.yaml", "features:\n  timezone: Pacific/Kiritimati\n"), 0);
    const char *how[] = {"", "SEGSTREAM_FEATURES_TIMEZONE=Asia/Shanghai", "-c kiri.yaml"};
    const double evening[] = {0, 1, 0}, weekend[] = {0, 0, 1};
    for (int i = 0; i < 3; i++) {
        int env = !strncmp(how[i], "SEGSTREAM", 9);
        cr_assert_eq(h_run("cd %s && %s %s replay -q --input fri.jsonl --out fri.out --snapshot "
                           "fri.csv %s",
                           dir, env ? how[i] : "", SEG_BIN, env ? "" : how[i]),
                     0, "%s", how[i]);
        char path[600];
        snprintf(path, sizeof path, "%s/fri.csv", dir);
        cr_expect_float_eq(snapshot_value(path, "evening_share"), evening[i], 1e-4, "%s", how[i]);
        cr_expect_float_eq(snapshot_value(path, "weekend_share"), weekend[i], 1e-4, "%s", how[i]);
    }
    exits_2_saying("SEGSTREAM_FEATURES_TIMEZONE=Asia/Shangai",
                   "replay -q --input fri.jsonl --out fri2.out",
                   "env SEGSTREAM_FEATURES_TIMEZONE: unknown time zone 'Asia/Shangai'");
}
