/* tests/integration/test_realdata.c: replays real purchase histories (CDNOW,
 * ../shared/data/cdnow, see its PROVENANCE.md) and checks the result against
 * an independent, straightforward reading of CONTRACT §2 written here: each
 * customer's final lifecycle stage, and that every purchase is counted once
 * (orders, revenue). Column mapping: customer_id -> "cd<id>", date YYYYMMDD
 * at 00:00 UTC -> ts, dollar_value -> amount, type purchase. Skips, saying
 * why, where ../shared/data is absent. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "harness.h"

#define DAY 86400000LL

typedef struct {
    int cust;
    int line;
    int64_t ts;
    double amount;
} buy_t;

static int cmp_time(const void *a, const void *b)
{
    const buy_t *x = a, *y = b;
    if (x->ts != y->ts) return x->ts < y->ts ? -1 : 1;
    return x->line - y->line;
}
static int cmp_cust(const void *a, const void *b)
{
    const buy_t *x = a, *y = b;
    if (x->cust != y->cust) return x->cust - y->cust;
    if (x->ts != y->ts) return x->ts < y->ts ? -1 : 1;
    return x->line - y->line;
}

static int64_t day_ms(int ymd)
{
    struct tm tm = {0};
    tm.tm_year = ymd / 10000 - 1900;
    tm.tm_mon = ymd / 100 % 100 - 1;
    tm.tm_mday = ymd % 100;
    return (int64_t)timegm(&tm) * 1000;
}

Test(realdata, cdnow_final_lifecycle_and_totals_match_an_independent_reading, .timeout = 600)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/cdnow/CDNOW_master.txt", SEG_DATA_DIR);
    FILE *f = fopen(path, "r");
    if (!f)
        cr_skip_test("real data not found at %s (../shared/data is absent in a plain clone)", path);
    size_t cap = 80000, n = 0;
    buy_t *b = malloc(cap * sizeof(*b));
    char line[256];
    int lineno = 0;
    while (fgets(line, sizeof(line), f)) {
        int id, ymd, cds;
        double usd;
        lineno++;
        if (sscanf(line, "%d %d %d %lf", &id, &ymd, &cds, &usd) != 4) continue; /* header */
        if (n == cap) b = realloc(b, (cap *= 2) * sizeof(*b));
        b[n++] = (buy_t){id, lineno, day_ms(ymd), usd};
    }
    fclose(f);
    cr_assert_gt(n, 60000);

    /* the file is grouped by customer: a stream carries it in time order */
    const char *dir = h_tmpdir();
    qsort(b, n, sizeof(*b), cmp_time);
    snprintf(path, sizeof(path), "%s/cdnow.jsonl", dir);
    FILE *out = fopen(path, "w");
    for (size_t i = 0; i < n; i++)
        fprintf(out,
                "{\"customer_id\":\"cd%d\",\"type\":\"purchase\",\"ts\":%lld,\"amount\":%.2f,"
                "\"event_id\":\"cdnow-%d\"}\n",
                b[i].cust, (long long)b[i].ts, b[i].amount, b[i].line);
    fclose(out);
    int64_t W = b[n - 1].ts;
    cr_assert_eq(h_run("%s replay -q --input %s/cdnow.jsonl --out %s/changes.jsonl --snapshot "
                       "%s/snap.csv",
                       SEG_BIN, dir, dir, dir),
                 0);

    /* independent reading, one customer at a time */
    qsort(b, n, sizeof(*b), cmp_cust);
    int max_id = b[n - 1].cust;
    char(*want)[16] = calloc((size_t)max_id + 1, 16);
    long *orders = calloc((size_t)max_id + 1, sizeof(long));
    double *revenue = calloc((size_t)max_id + 1, sizeof(double));
    for (size_t i = 0; i < n;) {
        size_t j = i;
        int64_t fs = b[i].ts, la = b[i].ts, ra = INT64_MIN;
        for (; j < n && b[j].cust == b[i].cust; j++) {
            if (j > i && b[j].ts - la > 60 * DAY) ra = b[j].ts; /* back after a lapse */
            if (b[j].ts > la) la = b[j].ts;
            orders[b[i].cust]++;
            revenue[b[i].cust] += b[j].amount;
        }
        const char *st = fs >= W - 30 * DAY                      ? "new"
                         : ra != INT64_MIN && ra >= W - 30 * DAY ? "reactivated"
                         : la >= W - 30 * DAY                    ? "active"
                         : la >= W - 60 * DAY                    ? "at_risk"
                                                                 : "lapsed";
        snprintf(want[b[i].cust], 16, "%s", st);
        i = j;
    }

    snprintf(path, sizeof(path), "%s/snap.csv", dir);
    FILE *sf = fopen(path, "r");
    cr_assert_not_null(sf);
    cr_assert_not_null(fgets(line, sizeof(line), sf));
    int customers = 0, mismatched = 0, counts[5] = {0};
    const char *names[5] = {"new", "active", "at_risk", "lapsed", "reactivated"};
    while (fgets(line, sizeof(line), sf)) {
        int id;
        char stage[32], rest[200];
        long ev, ord;
        double rev;
        cr_assert_eq(sscanf(line, "cd%d,%31[^,],%*d,%199[^\n]", &id, stage, rest), 3, "%s", line);
        /* events,orders,revenue follow the label and rules columns */
        char *p = line;
        for (int comma = 0; comma < 5 && p; comma++) p = strchr(p + 1, ',');
        cr_assert_not_null(p);
        cr_assert_eq(sscanf(p + 1, "%ld,%ld,%lf", &ev, &ord, &rev), 3, "%s", line);
        customers++;
        if (strcmp(stage, want[id]) != 0) {
            if (mismatched++ < 5)
                fprintf(stderr, "cd%d: replay says %s, the contract says %s\n", id, stage,
                        want[id]);
        }
        for (int k = 0; k < 5; k++) counts[k] += strcmp(stage, names[k]) == 0;
        cr_expect_eq(ord, orders[id], "cd%d orders %ld != %ld", id, ord, orders[id]);
        cr_expect(fabs(rev - revenue[id]) < 0.01, "cd%d revenue %.2f != %.2f", id, rev,
                  revenue[id]);
    }
    fclose(sf);
    fprintf(stderr,
            "cdnow: %d customers at W=1998-06-30: new %d, active %d, at_risk %d, lapsed %d, "
            "reactivated %d\n",
            customers, counts[0], counts[1], counts[2], counts[3], counts[4]);
    cr_assert_eq(customers, 23570);
    cr_assert_eq(mismatched, 0, "%d customers in another stage than the contract's", mismatched);
    free(want);
    free(orders);
    free(revenue);
    free(b);
    h_run("rm -rf '%s'", dir);
}
