/* tests/integration/test_csvreplay.c: `segstream replay --csv-preset` on
 * every data set in ../shared/data (SEG_DATA_DIR), end to end, checked
 * against a plain reading of the same files written here, independently of
 * stream/csv*.c: the customers (distinct ids, each customer's events,
 * orders and revenue from the snapshot), the watermark in the summary (the
 * largest event time, so times and zones were read right), and the dead
 * letters, which must be exactly the rows the data set's PROVENANCE.md
 * describes as unusable, with the reason naming the column. Each test
 * skips, saying why, where the data is absent. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
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
TestSuite(csvreplay, .init = setup, .fini = teardown, .timeout = 300);

/* ---------- a plain reading ---------- */

/* Splits one line of comma-separated values with "quoted" fields (""
 * inside quotes is a quote) in place; returns the number of fields. */
static int split(char *line, char **f, int max)
{
    int n = 0;
    char *p = line;
    line[strcspn(line, "\r\n")] = 0;
    while (n < max) {
        if (*p == '"') {
            char *w = ++p;
            f[n++] = w;
            while (*p && !(*p == '"' && p[1] != '"')) {
                if (*p == '"') p++;
                *w++ = *p++;
            }
            if (*p == '"') p++;
            *w = 0;
            if (*p != ',') break;
            p++;
        } else {
            f[n++] = p;
            char *c = strchr(p, ',');
            if (!c) break;
            *c = 0;
            p = c + 1;
        }
    }
    return n;
}

static FILE *open_data(const char *rel)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", SEG_DATA_DIR, rel);
    FILE *f = fopen(path, "r");
    if (!f)
        cr_skip_test("real data not found at %s (../shared/data is absent in a plain clone)", path);
    return f;
}

static int64_t utc_ms(int y, int mo, int d, int h, int mi, int s)
{
    struct tm tm = {0};
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = s;
    return (int64_t)timegm(&tm) * 1000;
}

/* One customer's totals, as counted here or as the snapshot says. */
typedef struct {
    char id[64];
    long events, orders;
    double revenue;
} cust_t;

typedef struct {
    cust_t *c;
    size_t n, cap;
} custs_t;

/* Adds one event of customer id (an order of `amount` when order). */
static void count(custs_t *cs, const char *id, int order, double amount)
{
    if (cs->n == cs->cap) {
        cs->cap = cs->cap ? cs->cap * 2 : 1024;
        cs->c = realloc(cs->c, cs->cap * sizeof *cs->c);
    }
    cust_t *c = &cs->c[cs->n++];
    snprintf(c->id, sizeof c->id, "%s", id);
    c->events = 1;
    c->orders = order;
    c->revenue = order ? amount : 0;
}

static int by_id(const void *a, const void *b)
{
    return strcmp(((const cust_t *)a)->id, ((const cust_t *)b)->id);
}

/* Sorts and adds up the events of each customer. */
static void total(custs_t *cs)
{
    qsort(cs->c, cs->n, sizeof *cs->c, by_id);
    size_t o = 0;
    for (size_t i = 0; i < cs->n; i++) {
        if (o && strcmp(cs->c[o - 1].id, cs->c[i].id) == 0) {
            cs->c[o - 1].events += cs->c[i].events;
            cs->c[o - 1].orders += cs->c[i].orders;
            cs->c[o - 1].revenue += cs->c[i].revenue;
        } else {
            cs->c[o++] = cs->c[i];
        }
    }
    cs->n = o;
}

/* ---------- what the replay says ---------- */

typedef struct {
    custs_t snap;
    char summary[8192];
    long dead;
    char reasons[512]; /* "reason=count ..." in first-seen order */
} got_t;

/* Replays data file `rel` with `preset` (and extra args), reads the
 * snapshot, the summary and the dead letters. */
static void replay(const char *rel, const char *preset, const char *extra, got_t *g)
{
    memset(g, 0, sizeof *g);
    cr_assert_eq(h_run("%s replay --input '%s/%s' --csv-preset %s %s --out %s/changes.jsonl "
                       "--snapshot %s/snap.csv 2> %s/summary.txt",
                       SEG_BIN, SEG_DATA_DIR, rel, preset, extra, dir, dir, dir),
                 0, "replay of %s failed", rel);
    char path[600], line[4096];
    snprintf(path, sizeof(path), "%s/summary.txt", dir);
    char *sum = h_slurp(path, NULL);
    cr_assert_not_null(sum);
    snprintf(g->summary, sizeof g->summary, "%s", sum);
    free(sum);
    cr_assert(strstr(g->summary, "== segstream summary =="), "no summary:\n%s", g->summary);
    cr_assert_null(strchr(g->summary, '\r'), "progress written without a terminal");
    fprintf(stderr, "--- %s (%s)\n%s", rel, preset, g->summary);

    snprintf(path, sizeof(path), "%s/snap.csv", dir);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f);
    cr_assert_not_null(fgets(line, sizeof line, f));
    while (fgets(line, sizeof line, f)) {
        char *fl[64];
        int n = split(line, fl, 64);
        cr_assert_geq(n, 8, "%s", line);
        custs_t *cs = &g->snap;
        count(cs, fl[0], 0, 0);
        cust_t *c = &cs->c[cs->n - 1];
        c->events = atol(fl[5]);
        c->orders = atol(fl[6]);
        c->revenue = atof(fl[7]);
    }
    fclose(f);
    qsort(g->snap.c, g->snap.n, sizeof *g->snap.c, by_id);

    snprintf(path, sizeof(path), "%s/changes.jsonl.dlq", dir);
    f = fopen(path, "r");
    cr_assert_not_null(f);
    char names[8][96];
    long counts[8];
    int nr = 0;
    while (fgets(line, sizeof line, f)) {
        char why[96];
        cr_assert_eq(sscanf(line, "{\"error\":\"%95[^\"]\"", why), 1, "%s", line);
        g->dead++;
        int i;
        for (i = 0; i < nr && strcmp(names[i], why); i++) {
        }
        if (i == nr) {
            cr_assert_lt(nr, 8, "too many dead-letter reasons");
            snprintf(names[nr], sizeof names[nr], "%s", why);
            counts[nr++] = 0;
        }
        counts[i]++;
    }
    fclose(f);
    size_t o = 0;
    for (int i = 0; i < nr; i++)
        o += (size_t)snprintf(g->reasons + o, sizeof g->reasons - o, "%s%s=%ld", i ? " " : "",
                              names[i], counts[i]);
}

/* The snapshot holds exactly the customers counted here, each with the
 * same events, orders and revenue (to the cent). Frees both lists' rows
 * (g->snap.n stays). */
static void same_customers(got_t *g, custs_t *want, const char *what)
{
    total(want);
    long ev = 0, ord = 0;
    double rev = 0;
    for (size_t i = 0; i < want->n; i++)
        ev += want->c[i].events, ord += want->c[i].orders, rev += want->c[i].revenue;
    fprintf(stderr, "%s: counted here: %zu customers, %ld events, %ld orders, revenue %.2f\n", what,
            want->n, ev, ord, rev);
    cr_assert_eq(g->snap.n, want->n, "%s: %zu customers in the snapshot, %zu counted", what,
                 g->snap.n, want->n);
    int bad = 0;
    for (size_t i = 0; i < want->n; i++) {
        const cust_t *a = &g->snap.c[i], *b = &want->c[i];
        int ok = strcmp(a->id, b->id) == 0 && a->events == b->events && a->orders == b->orders &&
                 fabs(a->revenue - b->revenue) < 0.01;
        if (!ok && bad++ < 5)
            fprintf(stderr,
                    "%s: snapshot %s events %ld orders %ld revenue %.2f; counted %s %ld %ld "
                    "%.2f\n",
                    what, a->id, a->events, a->orders, a->revenue, b->id, b->events, b->orders,
                    b->revenue);
    }
    cr_assert_eq(bad, 0, "%s: %d customers differ", what, bad);
    free(want->c);
    free(g->snap.c);
    g->snap.c = NULL;
}

static void watermark_is(const got_t *g, int64_t ms)
{
    char want[64];
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    strftime(want, sizeof want, "watermark %Y-%m-%dT%H:%M:%SZ", &tm);
    cr_assert(strstr(g->summary, want), "summary lacks '%s'", want);
}

/* ---------- the data sets ---------- */

Test(csvreplay, cdnow_master_every_purchase_once)
{
    FILE *f = open_data("cdnow/CDNOW_master.txt");
    custs_t want = {0};
    char line[256];
    int64_t W = 0;
    long rows = 0;
    double rev = 0;
    while (fgets(line, sizeof line, f)) {
        char id[16];
        int ymd, cds;
        double usd;
        if (sscanf(line, "%15s %d %d %lf", id, &ymd, &cds, &usd) != 4) continue; /* header */
        int64_t t = utc_ms(ymd / 10000, ymd / 100 % 100, ymd % 100, 0, 0, 0);
        if (t > W) W = t;
        count(&want, id, 1, usd);
        rows++;
        rev += usd;
    }
    fclose(f);
    cr_assert_eq(rows, 69659); /* PROVENANCE: 69,659 purchases, $2,500,315.63 */
    cr_assert(fabs(rev - 2500315.63) < 0.01, "%.2f", rev);
    got_t g;
    replay("cdnow/CDNOW_master.txt", "cdnow", "", &g);
    same_customers(&g, &want, "cdnow");
    cr_assert_eq(g.snap.n, 23570);
    watermark_is(&g, W); /* 1998-06-30 */
    cr_assert_eq(g.dead, 0, "dead letters: %s", g.reasons);
}

typedef struct {
    char key[48];
    char cust[16];
    int cancel;
    double amount;
} inv_t;

static int by_key(const void *a, const void *b)
{
    return strcmp(((const inv_t *)a)->key, ((const inv_t *)b)->key);
}

/* UCI Online Retail, either sample: one purchase per (customer, invoice),
 * lines adding up; a line with a negative amount (InvoiceNo C...) belongs
 * to a cancellation event without revenue; lines without a CustomerID
 * (empty, or NA in the second file) are dead letters, and nothing else. */
static void online_retail(const char *rel, int dmy)
{
    FILE *f = open_data(rel);
    char line[2048], *fl[16];
    cr_assert_not_null(fgets(line, sizeof line, f));
    size_t n = 0, cap = 1 << 16;
    inv_t *inv = malloc(cap * sizeof *inv);
    long nocust = 0;
    int64_t W = 0;
    while (fgets(line, sizeof line, f)) {
        cr_assert_eq(split(line, fl, 16), 8, "%s", line);
        const char *cust = fl[6];
        if (!*cust || strcmp(cust, "NA") == 0) {
            nocust++;
            continue;
        }
        int a, b, y, h, mi, s = 0;
        int64_t t;
        if (dmy) {
            cr_assert_eq(sscanf(fl[4], "%d/%d/%d %d:%d", &a, &b, &y, &h, &mi), 5, "%s", fl[4]);
            t = utc_ms(y, b, a, h, mi, 0);
        } else {
            cr_assert_eq(sscanf(fl[4], "%d-%d-%d %d:%d:%d", &y, &a, &b, &h, &mi, &s), 6);
            t = utc_ms(y, a, b, h, mi, s);
        }
        if (t > W) W = t;
        double amount = atof(fl[3]) * atof(fl[5]);
        if (n == cap) inv = realloc(inv, (cap *= 2) * sizeof *inv);
        inv_t *v = &inv[n++];
        v->cancel = amount < 0;
        snprintf(v->key, sizeof v->key, "%s %s %d", cust, fl[0], v->cancel);
        snprintf(v->cust, sizeof v->cust, "%s", cust);
        v->amount = amount;
    }
    fclose(f);
    /* one event per (customer, invoice, cancellation or not) */
    qsort(inv, n, sizeof *inv, by_key);
    custs_t want = {0};
    for (size_t i = 0, j; i < n; i = j) {
        double sum = 0;
        for (j = i; j < n && strcmp(inv[j].key, inv[i].key) == 0; j++) sum += inv[j].amount;
        count(&want, inv[i].cust, !inv[i].cancel, sum);
    }
    free(inv);
    got_t g;
    replay(rel, "online-retail", "", &g);
    same_customers(&g, &want, rel);
    watermark_is(&g, W);
    char reasons[128];
    snprintf(reasons, sizeof reasons, "missing_customer_id:CustomerID=%ld", nocust);
    cr_assert_str_eq(g.reasons, reasons);
    fprintf(stderr, "%s: %ld lines without a customer, dead-lettered\n", rel, nocust);
}

Test(csvreplay, online_retail_head_invoices_cancellations_and_lines_without_a_customer)
{
    online_retail("online-retail-uci/online_retail_head_2010-12-01_to_2010-12-20.csv", 1);
}

Test(csvreplay, online_retail_random_sample_quoted_iso_times_and_na)
{
    online_retail("online-retail-uci/online_retail_random20k_2010-12_to_2011-12.csv", 0);
}

Test(csvreplay, rees46_views_carts_and_purchases_in_utc)
{
    FILE *f = open_data("rees46-multicategory/2019-Oct_head_2019-10-01T0000-0250Z.csv");
    char line[2048], *fl[16];
    cr_assert_not_null(fgets(line, sizeof line, f));
    custs_t want = {0};
    int64_t W = 0;
    long buys = 0;
    double rev = 0;
    while (fgets(line, sizeof line, f)) {
        cr_assert_eq(split(line, fl, 16), 9, "%s", line);
        int y, mo, d, h, mi, s;
        cr_assert_eq(sscanf(fl[0], "%d-%d-%d %d:%d:%d UTC", &y, &mo, &d, &h, &mi, &s), 6);
        int64_t t = utc_ms(y, mo, d, h, mi, s);
        if (t > W) W = t;
        int buy = strcmp(fl[1], "purchase") == 0;
        count(&want, fl[7], buy, atof(fl[6]));
        buys += buy;
        rev += buy ? atof(fl[6]) : 0;
    }
    fclose(f);
    cr_assert_eq(buys, 214); /* PROVENANCE: 214 purchases, revenue 59,442.63 */
    cr_assert(fabs(rev - 59442.63) < 0.01, "%.2f", rev);
    got_t g;
    replay("rees46-multicategory/2019-Oct_head_2019-10-01T0000-0250Z.csv", "rees46", "", &g);
    same_customers(&g, &want, "rees46");
    cr_assert_eq(g.snap.n, 4504);
    watermark_is(&g, W);
    cr_assert_eq(g.dead, 0, "dead letters: %s", g.reasons);
}

Test(csvreplay, taobao_no_header_unix_seconds_merged_by_time)
{
    FILE *f = open_data("taobao-userbehavior/UserBehavior_head_814users.csv");
    char line[256];
    custs_t want = {0};
    int64_t W = 0;
    long rows = 0;
    while (fgets(line, sizeof line, f)) {
        char user[16], behavior[8];
        long item, cat, secs;
        cr_assert_eq(sscanf(line, "%15[^,],%ld,%ld,%7[^,],%ld", user, &item, &cat, behavior, &secs),
                     5, "%s", line);
        if (secs * 1000 > W) W = secs * 1000;
        count(&want, user, strcmp(behavior, "buy") == 0, 0); /* no prices */
        rows++;
    }
    fclose(f);
    cr_assert_eq(rows, 84287);
    got_t g;
    replay("taobao-userbehavior/UserBehavior_head_814users.csv", "taobao", "", &g);
    same_customers(&g, &want, "taobao");
    cr_assert_eq(g.snap.n, 814);
    watermark_is(&g, W);
    /* the 35 rows outside the 9-day window are early, not bad: applied */
    cr_assert_eq(g.dead, 0, "dead letters: %s", g.reasons);
}

typedef struct {
    char key[40], val[40];
    double amount;
} kv_t;

static int kv_cmp(const void *a, const void *b)
{
    return strcmp(((const kv_t *)a)->key, ((const kv_t *)b)->key);
}

/* Olist: orders joined with customers (the person is customer_unique_id)
 * and payments (summed; a voucher is a discount). Canceled and unavailable
 * orders are activity without revenue. Times are Brazil local, read as
 * UTC-3. An order without a payment row cannot be a purchase: dead. */
Test(csvreplay, olist_orders_joined_with_customers_and_payments)
{
    FILE *cf = open_data("olist-brazilian-ecommerce/olist_customers_dataset.csv");
    char line[2048], *fl[16];
    kv_t *cust = calloc(10000, sizeof *cust), *pay = calloc(10000, sizeof *pay);
    size_t nc = 0, np = 0;
    cr_assert_not_null(fgets(line, sizeof line, cf));
    while (fgets(line, sizeof line, cf)) {
        cr_assert_eq(split(line, fl, 16), 5);
        snprintf(cust[nc].key, 40, "%s", fl[0]);
        snprintf(cust[nc++].val, 40, "%s", fl[1]);
    }
    fclose(cf);
    FILE *pf = open_data("olist-brazilian-ecommerce/olist_order_payments_dataset.csv");
    cr_assert_not_null(fgets(line, sizeof line, pf));
    while (fgets(line, sizeof line, pf)) {
        cr_assert_eq(split(line, fl, 16), 5);
        snprintf(pay[np].key, 40, "%s", fl[0]);
        pay[np++].amount = atof(fl[4]);
    }
    fclose(pf);
    qsort(cust, nc, sizeof *cust, kv_cmp);
    qsort(pay, np, sizeof *pay, kv_cmp);
    FILE *of = open_data("olist-brazilian-ecommerce/olist_orders_dataset.csv");
    cr_assert_not_null(fgets(line, sizeof line, of));
    custs_t want = {0};
    int64_t W = 0;
    long unpaid = 0, orders = 0;
    while (fgets(line, sizeof line, of)) {
        cr_assert_eq(split(line, fl, 16), 8);
        orders++;
        kv_t k;
        snprintf(k.key, sizeof k.key, "%s", fl[1]);
        const kv_t *c = bsearch(&k, cust, nc, sizeof *cust, kv_cmp);
        cr_assert_not_null(c, "order %s: no customer", fl[0]);
        const char *person = c->val;
        snprintf(k.key, sizeof k.key, "%s", fl[0]);
        const kv_t *p = bsearch(&k, pay, np, sizeof *pay, kv_cmp);
        while (p && p > pay && strcmp(p[-1].key, k.key) == 0) p--;
        double paid = 0;
        int payments = 0;
        for (; p && p < pay + np && strcmp(p->key, k.key) == 0; p++) paid += p->amount, payments++;
        int buy = strcmp(fl[2], "canceled") != 0 && strcmp(fl[2], "unavailable") != 0;
        if (buy && !payments) {
            unpaid++;
            continue;
        }
        int y, mo, d, h, mi, s;
        cr_assert_eq(sscanf(fl[3], "%d-%d-%d %d:%d:%d", &y, &mo, &d, &h, &mi, &s), 6);
        int64_t t = utc_ms(y, mo, d, h, mi, s) + 3 * 3600000LL;
        if (t > W) W = t;
        count(&want, person, buy, paid);
    }
    fclose(of);
    free(cust);
    free(pay);
    cr_assert_eq(orders, 8000);
    got_t g;
    replay("olist-brazilian-ecommerce/olist_orders_dataset.csv", "olist", "", &g);
    same_customers(&g, &want, "olist");
    watermark_is(&g, W);
    /* PROVENANCE says every order has its payments; one (bfbd0f9b..., the
     * first order of 2016-09-15) has none in these files */
    char reasons[128];
    snprintf(reasons, sizeof reasons, "no_join_match:order_id=%ld", unpaid);
    cr_assert_str_eq(g.reasons, unpaid ? reasons : "");
    fprintf(stderr, "olist: %ld orders without a payment row, dead-lettered\n", unpaid);
}

/* The same CSV replayed twice gives the same bytes. */
Test(csvreplay, output_is_identical_across_runs)
{
    FILE *f = open_data("rees46-multicategory/2019-Oct_head_2019-10-01T0000-0250Z.csv");
    fclose(f);
    for (int i = 0; i < 2; i++)
        cr_assert_eq(h_run("%s replay -q --input '%s/rees46-multicategory/"
                           "2019-Oct_head_2019-10-01T0000-0250Z.csv' --csv-preset rees46 --sort "
                           "--out %s/c%d.jsonl --snapshot %s/s%d.csv",
                           SEG_BIN, SEG_DATA_DIR, dir, i, dir, i),
                     0);
    char a[600], b[600];
    snprintf(a, sizeof a, "%s/c0.jsonl", dir);
    snprintf(b, sizeof b, "%s/c1.jsonl", dir);
    cr_assert(h_same_file(a, b));
    cr_assert_geq(h_count_lines(a), 4504); /* at least every customer's first stage */
    snprintf(a, sizeof a, "%s/s0.csv", dir);
    snprintf(b, sizeof b, "%s/s1.csv", dir);
    cr_assert(h_same_file(a, b));
}
