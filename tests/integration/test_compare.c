/* tests/integration/test_compare.c: `segstream compare A B` as a data team
 * runs it. A small case computed by hand (two snapshots of six customers
 * each, in JSON and CSV, and the same A as change events); then gen, two
 * replays with K=6 and K=8 and the report on them; a Redis namespace; and
 * inputs that cannot be read. */
#include <criterion/criterion.h>
#include <signal.h>
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
TestSuite(compare, .init = setup, .fini = teardown, .timeout = 600);

static void write_file(const char *name, const char *text)
{
    char path[600];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "%s", path);
    fputs(text, f);
    cr_assert_eq(fclose(f), 0);
}

static char *slurp(const char *name)
{
    char path[600];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    char *s = h_slurp(path, NULL);
    cr_assert_not_null(s, "%s unreadable", path);
    return s;
}

#define HAS(text, needle)                                                                          \
    cr_assert_not_null(strstr(text, needle), "missing: %s\nin:\n%s", needle, text)

/* The snapshot header replay writes, and 10 vector columns of zeros. */
#define SNAP_HEADER                                                                                \
    "customer_id,lifecycle,cluster,cluster_label,rules,events,orders,revenue,first_seen,"          \
    "last_seen,log_visits,log_purchases,log_monetary,log_aov,discount_share,cart_abandonment,"     \
    "email_event_share,evening_share,weekend_share,app_share\n"
#define VEC ",0,0,0,0,0,0,0,0,0,0\n"

/* A: six customers; B: five of them (c6 is gone) and a new one (c7).
 *
 *        A                                          B
 *  c1    active       0 big · spender  loyal,vip     active       0 big · spender  loyal,vip
 *        4 orders 200.00                             5 orders 260.00
 *  c2    lapsed       0 big · spender                lapsed       2 deal, seeker
 *        1 order 50.00                               1 order 50.00
 *  c3    new          1 browser                      active       1 browser
 *        0 orders 0.00                               1 order 15.00
 *  c4    at_risk      1 browser        vip           lapsed       2 deal, seeker
 *        2 orders 30.00                              3 orders 45.00
 *  c5    reactivated  1 browser                      reactivated  1 browser
 *        0 orders 0.00                               0 orders 0.00
 *  c6    lapsed       (unassigned)                   -
 *  c7    -                                           new          0 big · spender
 *                                                    0 orders 0.00
 */
static const char snap_a[] =
    SNAP_HEADER "c1,active,0,big · spender,\"loyal,vip\",10,4,200.00,1,2" VEC
                "c2,lapsed,0,big · spender,,3,1,50.00,1,2" VEC "c3,new,1,browser,,1,0,0.00,1,2" VEC
                "c4,at_risk,1,browser,vip,5,2,30.00,1,2" VEC
                "c5,reactivated,1,browser,,2,0,0.00,1,2" VEC "c6,lapsed,-1,,,1,0,0.00,1,2" VEC;
static const char snap_b[] = SNAP_HEADER
    "c2,lapsed,2,\"deal, seeker\",,3,1,50.00,1,2" VEC
    "c1,active,0,big · spender,\"loyal,vip\",12,5,260.00,1,2" VEC
    "c3,active,1,browser,,2,1,15.00,1,2" VEC "c4,lapsed,2,\"deal, seeker\",,6,3,45.00,1,2" VEC
    "c5,reactivated,1,browser,,2,0,0.00,1,2" VEC "c7,new,0,big · spender,,1,0,0.00,1,2" VEC;

/* A again, as the change events a replay writes: each customer's last `to`
 * per dimension is what counts (c2 went to cluster 1 before 0; c3 entered
 * and left vip), labels with JSON escapes, other fields as replay has them. */
static const char changes_a[] =
    "{\"event_id\":\"c1:lifecycle:1\",\"customer_id\":\"c1\",\"dimension\":\"lifecycle\","
    "\"from\":null,\"to\":\"new\",\"ts\":1,\"emitted_at\":1,\"reason\":\"first event\","
    "\"model_version\":0,\"features\":{\"recency_days\":0.0,\"orders\":0,\"monetary\":0.0}}\n"
    "{\"customer_id\":\"c1\",\"dimension\":\"lifecycle\",\"from\":\"new\",\"to\":\"active\"}\n"
    "{\"customer_id\":\"c1\",\"dimension\":\"cluster\",\"from\":null,\"to\":\"big \\u00b7 "
    "spender\",\"from_id\":null,\"to_id\":0,\"features\":{\"orders\":4}}\n"
    "{\"customer_id\":\"c1\",\"dimension\":\"rule:loyal\",\"from\":null,\"to\":\"in\"}\n"
    "{\"customer_id\":\"c1\",\"dimension\":\"rule:vip\",\"from\":null,\"to\":\"in\"}\n"
    "\n"
    "{\"customer_id\":\"c2\",\"dimension\":\"lifecycle\",\"from\":null,\"to\":\"new\"}\n"
    "{\"customer_id\":\"c2\",\"dimension\":\"cluster\",\"from\":null,\"to\":\"browser\","
    "\"from_id\":null,\"to_id\":1}\n"
    "{\"customer_id\":\"c2\",\"dimension\":\"cluster\",\"from\":\"browser\",\"to\":\"big · "
    "spender\",\"from_id\":1,\"to_id\":0}\n"
    "{\"customer_id\":\"c2\",\"dimension\":\"lifecycle\",\"from\":\"new\",\"to\":\"lapsed\"}\n"
    "{\"customer_id\":\"c3\",\"dimension\":\"lifecycle\",\"from\":null,\"to\":\"new\"}\n"
    "{\"customer_id\":\"c3\",\"dimension\":\"rule:vip\",\"from\":null,\"to\":\"in\"}\n"
    "{\"customer_id\":\"c3\",\"dimension\":\"cluster\",\"from\":null,\"to\":\"browser\","
    "\"from_id\":null,\"to_id\":1}\n"
    "{\"customer_id\":\"c3\",\"dimension\":\"rule:vip\",\"from\":\"in\",\"to\":\"out\"}\n"
    "{\"customer_id\":\"c4\",\"dimension\":\"lifecycle\",\"from\":\"active\",\"to\":\"at_risk\"}\n"
    "{\"customer_id\":\"c4\",\"dimension\":\"cluster\",\"from\":null,\"to\":\"browser\","
    "\"from_id\":null,\"to_id\":1}\n"
    "{\"customer_id\":\"c4\",\"dimension\":\"rule:vip\",\"from\":null,\"to\":\"in\"}\n"
    "{\"customer_id\":\"c5\",\"dimension\":\"lifecycle\",\"from\":\"lapsed\",\"to\":"
    "\"reactivated\"}\n"
    "{\"customer_id\":\"c5\",\"dimension\":\"cluster\",\"from\":null,\"to\":\"browser\","
    "\"from_id\":null,\"to_id\":1}\n"
    "{\"customer_id\":\"c6\",\"dimension\":\"lifecycle\",\"from\":\"at_risk\",\"to\":\"lapsed\"}\n";

/* The text from `from` up to (not including) `to`, in a static buffer. */
static const char *between(const char *s, const char *from, const char *to)
{
    static char buf[65536];
    const char *a = strstr(s, from);
    cr_assert_not_null(a, "no %s", from);
    const char *b = to ? strstr(a, to) : NULL;
    size_t n = b ? (size_t)(b - a) : strlen(a);
    cr_assert_lt(n, sizeof(buf));
    memcpy(buf, a, n);
    buf[n] = 0;
    return buf;
}

Test(compare, hand_computed_small_case_json)
{
    write_file("a.csv", snap_a);
    write_file("b.csv", snap_b);
    cr_assert_eq(
        h_run("cd %s && %s compare a.csv b.csv --format json > out.json 2> err.txt", dir, SEG_BIN),
        0);
    cr_assert_eq(h_run("/usr/bin/python3 -m json.tool %s/out.json > /dev/null", dir), 0,
                 "not valid JSON");
    char *out = slurp("out.json");

    HAS(out, "{\"dimension\":\"cluster\",");
    /* A: 6 customers. 0 big · spender = c1 c2: revenue 200 + 50 = 250.00, orders
     * 4 + 1 = 5, AOV 250 / 5 = 50.00, both bought (conversion 1), c1 active
     * (retention 1/2), c2 lapsed (churn 1/2). 1 browser = c3 c4 c5: 30.00 over
     * 2 orders = 15.00, one buyer of three, new + reactivated retained (2/3),
     * c4 at_risk neither. (unassigned) = c6, lapsed: churn 1, AOV null. */
    const char *a = between(out, "\"a\":", "\"b\":");
    HAS(a, "\"input\":\"a.csv\",\"kind\":\"snapshot\",\"customers\":6,\"totals\":true");
    HAS(a, "{\"segment\":\"0 big · spender\",\"key\":\"0\",\"cluster_id\":0,\"label\":\"big · "
           "spender\",\"customers\":2,\"share\":0.333333,\"revenue\":250.00,\"orders\":5,"
           "\"aov\":50.00,\"buyers\":2,\"conversion\":1.000000,\"retained\":1,\"retention\":"
           "0.500000,\"churned\":1,\"churn\":0.500000}");
    HAS(a, "{\"segment\":\"1 browser\",\"key\":\"1\",\"cluster_id\":1,\"label\":\"browser\","
           "\"customers\":3,\"share\":0.500000,\"revenue\":30.00,\"orders\":2,\"aov\":15.00,"
           "\"buyers\":1,\"conversion\":0.333333,\"retained\":2,\"retention\":0.666667,"
           "\"churned\":0,\"churn\":0.000000}");
    HAS(a, "{\"segment\":\"(unassigned)\",\"key\":\"(unassigned)\",\"customers\":1,\"share\":"
           "0.166667,\"revenue\":0.00,\"orders\":0,\"aov\":null,\"buyers\":0,\"conversion\":"
           "0.000000,\"retained\":0,\"retention\":0.000000,\"churned\":1,\"churn\":1.000000}");
    /* all of A: 280.00 over 7 orders = 40.00; buyers c1 c2 c4 = 1/2;
     * retained c1 c3 c5 = 1/2; churned c2 c6 = 1/3 */
    HAS(a, "\"total\":{\"customers\":6,\"share\":1.000000,\"revenue\":280.00,\"orders\":7,"
           "\"aov\":40.00,\"buyers\":3,\"conversion\":0.500000,\"retained\":3,\"retention\":"
           "0.500000,\"churned\":2,\"churn\":0.333333}");
    /* B: 0 = c1 c7: 260.00 / 5 = 52.00, one buyer of two, both retained.
     * 1 = c3 c5: 15.00 / 1. 2 deal, seeker = c2 c4: 95.00 / 4 = 23.75, both
     * lapsed. All: 370.00 / 10 = 37.00, buyers c1 c2 c3 c4 = 4/6. */
    const char *b = between(out, "\"b\":", "\"summary\":");
    HAS(b, "\"customers\":2,\"share\":0.333333,\"revenue\":260.00,\"orders\":5,\"aov\":52.00,"
           "\"buyers\":1,\"conversion\":0.500000,\"retained\":2,\"retention\":1.000000,"
           "\"churned\":0,\"churn\":0.000000}");
    HAS(b, "{\"segment\":\"1 browser\",\"key\":\"1\",\"cluster_id\":1,\"label\":\"browser\","
           "\"customers\":2,\"share\":0.333333,\"revenue\":15.00,\"orders\":1,\"aov\":15.00,"
           "\"buyers\":1,\"conversion\":0.500000,\"retained\":2,\"retention\":1.000000,"
           "\"churned\":0,\"churn\":0.000000}");
    HAS(b, "{\"segment\":\"2 deal, seeker\",\"key\":\"2\",\"cluster_id\":2,\"label\":\"deal, "
           "seeker\",\"customers\":2,\"share\":0.333333,\"revenue\":95.00,\"orders\":4,\"aov\":"
           "23.75,\"buyers\":2,\"conversion\":1.000000,\"retained\":0,\"retention\":0.000000,"
           "\"churned\":2,\"churn\":1.000000}");
    HAS(b, "\"total\":{\"customers\":6,\"share\":1.000000,\"revenue\":370.00,\"orders\":10,"
           "\"aov\":37.00,\"buyers\":4,\"conversion\":0.666667,\"retained\":4,\"retention\":"
           "0.666667,\"churned\":2,\"churn\":0.333333}");
    /* c1..c5 in both, c6 only in A, c7 only in B; c2 0 -> 2 and c4 1 -> 2
     * moved (and changed label), c1 c3 c5 stayed */
    HAS(out, "\"summary\":{\"in_both\":5,\"only_a\":1,\"only_b\":1,\"moved\":2,\"stayed\":3,"
             "\"relabeled\":2}");
    /* rows 0, 1, (unassigned), (absent); columns 0, 1, 2, (absent):
     * c1 0->0, c2 0->2 | c3 1->1, c4 1->2, c5 1->1 | c6 -> absent | c7 absent -> 0.
     * The cells add up to 7 customers, those in A or B. */
    HAS(out, "\"rows\":[\"0 big · spender\",\"1 browser\",\"(unassigned)\",\"(absent)\"],"
             "\"columns\":[\"0 big · spender\",\"1 browser\",\"2 deal, seeker\",\"(absent)\"],"
             "\"counts\":[\n  [1,0,1,0],\n  [0,2,1,0],\n  [0,0,0,1],\n  [1,0,0,0]]}");
    HAS(out, "\"moved\":[\n  {\"customer_id\":\"c2\",\"a\":\"0 big · spender\",\"b\":\"2 deal, "
             "seeker\"},\n  {\"customer_id\":\"c4\",\"a\":\"1 browser\",\"b\":\"2 deal, "
             "seeker\"}],\n\"moved_listed\":2}");
    free(out);

    /* one rule: vip holds c1 c4 in A, only c1 in B: c4 left it */
    cr_assert_eq(h_run("cd %s && %s compare a.csv b.csv -d rule:vip --format json --moved 0 > "
                       "vip.json",
                       dir, SEG_BIN),
                 0);
    out = slurp("vip.json");
    HAS(out, "\"summary\":{\"in_both\":5,\"only_a\":1,\"only_b\":1,\"moved\":1,\"stayed\":4}");
    HAS(out, "\"rows\":[\"in\",\"out\",\"(absent)\"],\"columns\":[\"in\",\"out\",\"(absent)\"],"
             "\"counts\":[\n  [1,1,0],\n  [0,3,1],\n  [0,1,0]]}");
    HAS(out, "\"moved\":[],\n\"moved_listed\":0}");
    free(out);

    /* lifecycle: c3 new -> active, c4 at_risk -> lapsed; rows in stage order */
    cr_assert_eq(
        h_run("cd %s && %s compare a.csv b.csv -d lifecycle --format json > lc.json", dir, SEG_BIN),
        0);
    out = slurp("lc.json");
    HAS(out, "\"moved\":2,");
    HAS(out, "\"rows\":[\"new\",\"active\",\"at_risk\",\"lapsed\",\"reactivated\",\"(absent)\"]");
    /* new: c3 -> active; active: c1 -> active; at_risk: c4 -> lapsed;
     * lapsed: c2 -> lapsed, c6 absent; reactivated: c5; (absent): c7 new */
    HAS(out, "\"counts\":[\n  [0,1,0,0,0],\n  [0,1,0,0,0],\n  [0,0,1,0,0],\n  [0,0,1,0,1],\n"
             "  [0,0,0,1,0],\n  [1,0,0,0,0]]}");
    free(out);
}

Test(compare, hand_computed_small_case_csv)
{
    write_file("a.csv", snap_a);
    write_file("b.csv", snap_b);
    /* --out with .csv picks the format */
    cr_assert_eq(h_run("cd %s && %s compare a.csv b.csv --out out.csv", dir, SEG_BIN), 0);
    char *out = slurp("out.csv");
    HAS(out, "section,side,segment,segment_b,customer_id,customers,share,revenue,orders,aov,"
             "buyers,conversion,retained,retention,churned,churn\n"
             "summary,,in_both,,,5,,,,,,,,,,\nsummary,,only_a,,,1,,,,,,,,,,\n"
             "summary,,only_b,,,1,,,,,,,,,,\nsummary,,moved,,,2,,,,,,,,,,\n"
             "summary,,stayed,,,3,,,,,,,,,,\nsummary,,relabeled,,,2,,,,,,,,,,\n");
    HAS(out, "\nsegment,A,0 big · spender,,,2,0.333333,250.00,5,50.00,2,1.000000,1,0.500000,1,"
             "0.500000\n"
             "segment,A,1 browser,,,3,0.500000,30.00,2,15.00,1,0.333333,2,0.666667,0,0.000000\n"
             "segment,A,(unassigned),,,1,0.166667,0.00,0,,0,0.000000,0,0.000000,1,1.000000\n"
             "total,A,(all),,,6,1.000000,280.00,7,40.00,3,0.500000,3,0.500000,2,0.333333\n");
    HAS(out, "\nsegment,B,\"2 deal, seeker\",,,2,0.333333,95.00,4,23.75,2,1.000000,0,0.000000,2,"
             "1.000000\n"
             "total,B,(all),,,6,1.000000,370.00,10,37.00,4,0.666667,4,0.666667,2,0.333333\n");
    HAS(out, "\ntransition,,0 big · spender,0 big · spender,,1,,,,,,,,,,\n"
             "transition,,0 big · spender,1 browser,,0,,,,,,,,,,\n"
             "transition,,0 big · spender,\"2 deal, seeker\",,1,,,,,,,,,,\n");
    HAS(out, "\ntransition,,(unassigned),(absent),,1,,,,,,,,,,\n"
             "transition,,(absent),0 big · spender,,1,,,,,,,,,,\n");
    HAS(out, "\nmoved,,0 big · spender,\"2 deal, seeker\",c2,,,,,,,,,,,\n"
             "moved,,1 browser,\"2 deal, seeker\",c4,,,,,,,,,,,\n");
    /* header + 6 summary + 3 + 1 + 3 + 1 segment and total rows + 4 x 4 - 1
     * transitions + 2 moved */
    char path[600];
    snprintf(path, sizeof(path), "%s/out.csv", dir);
    cr_assert_eq(h_count_lines(path), 1 + 6 + 8 + 15 + 2);
    free(out);

    /* the table has the same numbers, readable */
    cr_assert_eq(h_run("cd %s && %s compare a.csv b.csv > out.txt", dir, SEG_BIN), 0);
    out = slurp("out.txt");
    HAS(out, "customers: 5 in both, 1 only in A, 1 only in B\n");
    HAS(out, "moved: 2 of the 5 in both (40.0%) are in another segment in B\n");
    HAS(out, "  0 big · spender          2    33.3%        250.00         5      50.00      "
             "100.0%      50.0%    50.0%\n");
    HAS(out, "  A \\ B                0      1      2  (absent)  total  mostly to\n"
             "  0 big · spender      1      0      1         0      2  0 big · spender (50.0%)\n"
             "  1 browser            0      2      1         0      3  1 browser (66.7%)\n"
             "  (unassigned)         0      0      0         1      1\n"
             "  (absent)             1      0      0         -      1\n"
             "  total                2      2      2         1      7\n");
    HAS(out, "  c4           1 browser        ->  2 deal, seeker\n");
    free(out);
}

/* A side without customers (a snapshot of its header only, a file of no
 * change events): compared like any other, exit 0. Under UBSan the sort of
 * that side's segments stopped the command (memcpy from NULL). */
Test(compare, a_side_without_customers)
{
    write_file("a.csv", snap_a);
    write_file("none.csv", SNAP_HEADER);
    write_file("none.jsonl", "");
    cr_assert_eq(h_run("cd %s && %s compare none.csv a.csv > out.txt", dir, SEG_BIN), 0);
    char *out = slurp("out.txt");
    HAS(out, "customers: 0 in both, 0 only in A, 6 only in B\n");
    free(out);
    /* in every dimension: an empty file lacks no dimension (it once said
     * "no lifecycle column" for lifecycle only) */
    const char *dims[] = {"cluster", "lifecycle", "rules", "rule:vip"};
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(
            h_run("cd %s && %s compare a.csv none.jsonl -d %s > out.txt", dir, SEG_BIN, dims[i]), 0,
            "-d %s", dims[i]);
        out = slurp("out.txt");
        HAS(out, "customers: 0 in both, 6 only in A, 0 only in B\n");
        free(out);
    }
    /* ratios over no customers are n/a (empty in CSV), not -nan */
    cr_assert_eq(h_run("cd %s && %s compare none.csv none.jsonl -d lifecycle -f csv > out.csv", dir,
                       SEG_BIN),
                 0);
    out = slurp("out.csv");
    HAS(out, "total,A,(all),,,0,0.000000,0.00,0,,0,,0,,0,\n");
    cr_assert(!strstr(out, "nan"), "%s", out);
    free(out);
}

Test(compare, change_events_give_the_same_assignments_without_totals)
{
    write_file("a.jsonl", changes_a);
    write_file("a.csv", snap_a);
    write_file("b.csv", snap_b);
    const char *dims[] = {"cluster", "lifecycle", "rules", "rule:vip"};
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(h_run("cd %s && %s compare a.jsonl b.csv -d %s -f json > c.json && %s compare "
                           "a.csv b.csv -d %s -f json > s.json",
                           dir, SEG_BIN, dims[i], SEG_BIN, dims[i]),
                     0);
        char *c = slurp("c.json"), *s = slurp("s.json");
        /* same summary, transitions and moved customers */
        char *cs = strdup(between(c, "\"summary\":", NULL));
        cr_assert_str_eq(cs, between(s, "\"summary\":", NULL), "dimension %s", dims[i]);
        free(cs);
        HAS(c, "\"kind\":\"changes\",\"customers\":6,\"totals\":false,\"lifecycle\":true");
        if (i == 0)
            HAS(c, "{\"segment\":\"0 big · spender\",\"key\":\"0\",\"cluster_id\":0,\"label\":"
                   "\"big · spender\",\"customers\":2,\"share\":0.333333,\"revenue\":null,"
                   "\"orders\":null,\"aov\":null,\"buyers\":null,\"conversion\":null,"
                   "\"retained\":1,\"retention\":0.500000,\"churned\":1,\"churn\":0.500000}");
        free(c);
        free(s);
    }
}

/* The number that ends the line at `line`. */
static long last_number(const char *line)
{
    const char *end = line + strcspn(line, "\n");
    const char *p = end;
    while (p > line && p[-1] >= '0' && p[-1] <= '9') p--;
    cr_assert_lt(p, end, "no number at the end of: %.*s", (int)(end - line), line);
    return strtol(p, NULL, 10);
}

Test(compare, k6_against_k8_end_to_end)
{
    cr_assert_eq(
        h_run("%s gen --customers 3000 --events 60000 --seed 7 --out %s/ev.jsonl", SEG_BIN, dir),
        0);
    write_file("k6.yaml", "clusters:\n  k: 6\n");
    write_file("k8.yaml", "clusters:\n  k: 8\n");
    for (int k = 6; k <= 8; k += 2)
        cr_assert_eq(h_run("cd %s && %s replay -q -c k%d.yaml --input ev.jsonl --out ch%d.jsonl "
                           "--snapshot s%d.csv",
                           dir, SEG_BIN, k, k, k),
                     0);
    char path[600];
    snprintf(path, sizeof(path), "%s/s6.csv", dir);
    long customers = h_count_lines(path) - 1;
    cr_assert_eq(customers, 3000);

    cr_assert_eq(h_run("cd %s && %s compare s6.csv s8.csv > report.txt", dir, SEG_BIN), 0);
    char *out = slurp("report.txt");
    fprintf(stderr, "%s", out);
    HAS(out, "segstream compare: cluster\n  A  s6.csv  (snapshot, 3000 customers)\n"
             "  B  s8.csv  (snapshot, 3000 customers)\n");
    HAS(out, "customers: 3000 in both, 0 only in A, 0 only in B\n");
    HAS(out, "\nsegments in A (s6.csv)\n  segment ");
    HAS(out, "\nsegments in B (s8.csv)\n  segment ");
    HAS(out, "  customers    share       revenue    orders        aov  conversion  retention    "
             "churn\n");
    HAS(out, "\ntransitions: customers by segment in A (rows) and in B (columns, by cluster id)\n");
    HAS(out, "\nmoved customers (");
    /* the matrix's total row ends with the grand total: every customer once */
    const char *m = strstr(out, "\ntransitions:");
    const char *tot = strstr(m, "\n  total ");
    cr_assert_not_null(tot);
    cr_assert_eq(last_number(tot + 1), customers);
    /* A has 6 clusters and B 8 (each row of the segment tables: "  ID label") */
    int rows_a = 0, rows_b = 0;
    const char *sa = strstr(out, "\nsegments in A"), *sb = strstr(out, "\nsegments in B");
    for (int id = 0; id < 10; id++) {
        char needle[16];
        snprintf(needle, sizeof(needle), "\n  %d ", id);
        const char *p = strstr(sa, needle);
        rows_a += p && p < sb;
        p = strstr(sb, needle);
        rows_b += p && p < m;
    }
    cr_assert_eq(rows_a, 6, "clusters in A: %d", rows_a);
    cr_assert_eq(rows_b, 8, "clusters in B: %d", rows_b);
    free(out);

    /* CSV: the transition cells add up to the customers, and each A row to
     * its segment's size */
    cr_assert_eq(
        h_run("cd %s && %s compare s6.csv s8.csv --format csv --moved all > r.csv", dir, SEG_BIN),
        0);
    cr_assert_eq(
        h_run("cd %s && /usr/bin/python3 -c \"\nimport csv,collections,sys\n"
              "r=list(csv.DictReader(open('r.csv')))\n"
              "t=[x for x in r if x['section']=='transition']\n"
              "assert sum(int(x['customers']) for x in t)==3000\n"
              "rows=collections.Counter()\n"
              "for x in t: rows[x['segment']]+=int(x['customers'])\n"
              "for x in r:\n"
              " if x['section']=='segment' and x['side']=='A':\n"
              "  assert rows[x['segment']]==int(x['customers']),x\n"
              "moved=[x for x in r if x['section']=='moved']\n"
              "s={x['segment']:int(x['customers']) for x in r if x['section']=='summary'}\n"
              "assert len(moved)==s['moved'] and s['in_both']==3000,s\n"
              "\"",
              dir),
        0);

    /* a replay against itself, and its change events against its snapshot:
     * nobody moved */
    cr_assert_eq(h_run("cd %s && %s compare s8.csv s8.csv -f json > same.json && %s compare "
                       "ch8.jsonl s8.csv -f json > ch.json && %s compare ch8.jsonl s8.csv -d "
                       "lifecycle -f json > lc.json",
                       dir, SEG_BIN, SEG_BIN, SEG_BIN),
                 0);
    const char *files[] = {"same.json", "ch.json", "lc.json"};
    for (int i = 0; i < 3; i++) {
        out = slurp(files[i]);
        HAS(out, "\"summary\":{\"in_both\":3000,\"only_a\":0,\"only_b\":0,\"moved\":0,"
                 "\"stayed\":3000");
        free(out);
    }
}

Test(compare, redis_namespaces)
{
    if (h_run("command -v redis-server >/dev/null && command -v redis-cli >/dev/null") != 0)
        cr_skip_test("redis-server missing: apt-get install redis-server redis-tools "
                     "(scripts/install-deps.sh)");
    int port = h_free_port();
    pid_t redis = h_redis(dir, port, 0);
    cr_assert_gt(redis, 0);
    /* the hashes as the daemon writes them (CONTRACT §4), under two prefixes;
     * other keys under the prefixes are not customers */
    int rc = h_run(
        "redis-cli -p %d HSET 'x:c:c1' lifecycle active cluster 0 cluster_label big rules "
        "loyal orders 2 revenue 10.5 > /dev/null && "
        "redis-cli -p %d HSET 'x:c:c2' lifecycle lapsed cluster 1 cluster_label small rules '' "
        "orders 0 revenue 0 > /dev/null && "
        "redis-cli -p %d HSET 'y:c:c1' lifecycle active cluster 1 cluster_label small rules '' "
        "orders 3 revenue 12.25 > /dev/null && "
        "redis-cli -p %d HSET 'y:c:c3' lifecycle new cluster -1 cluster_label '' rules '' "
        "orders 0 revenue 0 > /dev/null && "
        "redis-cli -p %d SET x:model m > /dev/null && redis-cli -p %d HSET x:sizes customers 2 "
        "> /dev/null",
        port, port, port, port, port, port);
    if (rc == 0)
        rc = h_run("cd %s && %s compare redis:x: redis:y: --redis redis://127.0.0.1:%d -f json > "
                   "r.json 2> err.txt",
                   dir, SEG_BIN, port);
    /* the colon forgotten: an empty namespace, said on stderr */
    int rc2 = rc == 0 ? h_run("cd %s && %s compare redis:x redis:y: --redis "
                              "redis://127.0.0.1:%d > r2.txt 2> err2.txt",
                              dir, SEG_BIN, port)
                      : -1;
    h_stop(redis, SIGTERM, 10);
    cr_assert_eq(rc, 0);
    cr_assert_eq(rc2, 0);
    char *err = slurp("err.txt");
    cr_assert_eq(strstr(err, "warning"), NULL, "%s", err);
    free(err);
    err = slurp("err2.txt");
    HAS(err, "segstream compare: warning: redis:x: no customers (no keys xc:* at "
             "redis://127.0.0.1:");
    HAS(err, "; prefixes end in ':'");
    free(err);
    char *out = slurp("r.json");
    HAS(out, "\"input\":\"redis:x:\",\"kind\":\"redis\",\"customers\":2");
    /* c1: 0 -> 1; c2 only in x; c3 only in y. y's c1: 12.25 / 3 = 4.08.
     * rows 0 big, 1 small, (absent); columns 1 small, (unassigned), (absent) */
    HAS(out, "\"summary\":{\"in_both\":1,\"only_a\":1,\"only_b\":1,\"moved\":1,\"stayed\":0,"
             "\"relabeled\":1}");
    HAS(out, "{\"segment\":\"1 small\",\"key\":\"1\",\"cluster_id\":1,\"label\":\"small\","
             "\"customers\":1,\"share\":0.500000,\"revenue\":12.25,\"orders\":3,\"aov\":4.08,");
    HAS(out, "\"counts\":[\n  [1,0,0],\n  [0,0,1],\n  [0,1,0]]}");
    free(out);
}

Test(compare, inputs_that_cannot_be_read_exit_2_naming_the_file)
{
    write_file("b.csv", snap_b);
    cr_assert_eq(h_run("cd %s && %s compare missing.csv b.csv > out.txt 2> err.txt", dir, SEG_BIN),
                 2);
    char *err = slurp("err.txt");
    HAS(err, "segstream compare: missing.csv: No such file or directory");
    free(err);

    /* a line with a field too few */
    write_file("short.csv",
               SNAP_HEADER "c1,active,0,big,,1,1,2.00,1,2" VEC "c2,active,0,big,1,1,2.00,1,2" VEC);
    cr_assert_eq(h_run("cd %s && %s compare b.csv short.csv 2> err.txt", dir, SEG_BIN), 2);
    err = slurp("err.txt");
    HAS(err, "segstream compare: short.csv:3: 19 fields where the header has 20");
    free(err);

    /* an unterminated quote, a number that is not one, a repeated customer */
    write_file("quote.csv", SNAP_HEADER "c1,active,0,\"big,,1,1,2.00,1,2" VEC);
    write_file("num.csv", SNAP_HEADER "c1,active,0,big,,1,many,2.00,1,2" VEC);
    write_file("dup.csv",
               SNAP_HEADER "c1,active,0,big,,1,1,2.00,1,2" VEC "c1,active,0,big,,1,1,2.00,1,2" VEC);
    write_file("other.csv", "name,score\nx,1\n");
    write_file("bad.jsonl", "{\"customer_id\":\"c1\",\"dimension\":\"cluster\",\"to\":\"a\","
                            "\"to_id\":0}\n{\"customer_id\":\"c1\",\"dimension\":\n");
    const struct {
        const char *file, *msg;
    } bad[] = {
        {"quote.csv", "segstream compare: quote.csv:2: malformed CSV (quotes)"},
        {"num.csv", "segstream compare: num.csv:2: orders is not a whole number >= 0: \"many\""},
        {"dup.csv", "segstream compare: dup.csv:3: customer c1 appears twice"},
        {"other.csv", "segstream compare: other.csv: neither a snapshot CSV"},
        {"bad.jsonl", "segstream compare: bad.jsonl:2: malformed JSON"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cr_assert_eq(
            h_run("cd %s && %s compare %s b.csv > out.txt 2> err.txt", dir, SEG_BIN, bad[i].file),
            2, "%s", bad[i].file);
        err = slurp("err.txt");
        HAS(err, bad[i].msg);
        free(err);
        char path[600];
        snprintf(path, sizeof(path), "%s/out.txt", dir);
        cr_assert_eq(h_count_lines(path), 0, "%s: nothing on stdout", bad[i].file);
    }

    /* usage errors */
    cr_assert_eq(h_run("cd %s && %s compare b.csv 2> /dev/null", dir, SEG_BIN), 2);
    cr_assert_eq(h_run("cd %s && %s compare b.csv b.csv -d colour 2> /dev/null", dir, SEG_BIN), 2);
    cr_assert_eq(h_run("cd %s && %s compare b.csv b.csv -f xml 2> /dev/null", dir, SEG_BIN), 2);
    /* a report over an input: refused, the input intact */
    write_file("a.csv", snap_b);
    const char *over[] = {"a.csv b.csv --out a.csv", "a.csv b.csv --out ./b.csv"};
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(h_run("cd %s && %s compare %s 2> err.txt", dir, SEG_BIN, over[i]), 2, "%s",
                     over[i]);
        err = slurp("err.txt");
        HAS(err,
            i ? "--out ./b.csv is the file B names too" : "--out a.csv is the file A names too");
        free(err);
    }
    err = slurp("a.csv");
    cr_assert_str_eq(err, snap_b, "the input was written over");
    free(err);
    cr_assert_eq(h_run("%s compare --help | grep -q 'churn        customers whose lifecycle is "
                       "lapsed'",
                       SEG_BIN),
                 0);
}
