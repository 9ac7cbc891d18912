/* tests/unit/segmenter/test_centroids.c: k-means++ seeding, online updates,
 * hysteresis, dying-cluster split with a new stable id, labels. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include "helpers.h"
#include "segmenter/internal.h"

/* Three well separated blobs in normalised space. */
static void blobs(double (*pts)[SEG_DIM], int n, uint64_t seed)
{
    srand((unsigned)seed);
    for (int i = 0; i < n; i++) {
        int b = i % 3;
        for (int d = 0; d < SEG_DIM; d++) {
            double noise = ((double)rand() / RAND_MAX - 0.5) * 0.4;
            pts[i][d] = (d == b ? 4.0 : 0.0) + noise;
        }
    }
}

Test(centroids, seeding_finds_separated_blobs)
{
    seg_model_t m;
    cr_assert_eq(seg_model_init(&m, 3, 300, 7), 0);
    double(*pts)[SEG_DIM] = calloc(300, sizeof(*pts));
    blobs(pts, 300, 1);
    seg_model_seed(&m, (const double(*)[SEG_DIM])pts, 300);
    cr_assert(m.ready);
    cr_assert_eq(m.version, 1);
    int seen[3] = {0};
    for (int j = 0; j < 3; j++) {
        int hi = 0;
        for (int d = 1; d < SEG_DIM; d++)
            if (m.cl[j].c[d] > m.cl[j].c[hi]) hi = d;
        cr_assert_lt(hi, 3);
        cr_assert_float_eq(m.cl[j].c[hi], 4.0, 0.2);
        seen[hi]++;
        cr_assert_eq(m.cl[j].id, j);
    }
    cr_assert(seen[0] == 1 && seen[1] == 1 && seen[2] == 1);
    free(pts);
    seg_model_clear(&m);
}

Test(centroids, update_moves_nearest_toward_point_with_floor)
{
    seg_model_t m;
    seg_model_init(&m, 2, 10, 1);
    double pts[2][SEG_DIM] = {{0}, {0}};
    pts[1][0] = 10;
    seg_model_seed(&m, (const double(*)[SEG_DIM])pts, 2);
    int j0 = seg_model_nearest(&m, pts[0], NULL);
    double before = m.cl[j0].c[0];
    double x[SEG_DIM] = {1.0};
    int j = seg_model_update(&m, x, 0.0);
    cr_assert_eq(j, j0);
    /* n was 1 from seeding, so rate 1/2 */
    cr_assert_float_eq(m.cl[j].c[0], before + 0.5 * (1.0 - before), 1e-12);
    for (int i = 0; i < 10000; i++) seg_model_update(&m, x, 0.01);
    cr_assert_float_eq(m.cl[j].c[0], 1.0, 1e-6);
    seg_model_clear(&m);
}

Test(centroids, dying_cluster_is_split_from_largest_with_new_id)
{
    seg_model_t m;
    seg_model_init(&m, 3, 300, 3);
    m.recent_rate = 0.5;
    double(*pts)[SEG_DIM] = calloc(300, sizeof(*pts));
    blobs(pts, 300, 2);
    seg_model_seed(&m, (const double(*)[SEG_DIM])pts, 300);
    /* all new points come from blob 0: the other two starve */
    for (int i = 0; i < 5000; i++) seg_model_update(&m, pts[(i * 3) % 300], 0.001);
    uint64_t v = m.version;
    int n = seg_model_split_dying(&m, 0.05, 1000);
    cr_assert_geq(n, 1);
    cr_assert_gt(m.version, v);
    int max_id = 0;
    for (int j = 0; j < 3; j++) max_id = m.cl[j].id > max_id ? m.cl[j].id : max_id;
    cr_assert_geq(max_id, 3, "a new id, never a reused one");
    seg_model_clear(&m);
    free(pts);
}

Test(centroids, labels_describe_centroids_and_are_unique)
{
    seg_model_t m;
    seg_model_init(&m, 3, 10, 1);
    m.k = 3;
    memset(m.cl, 0, sizeof(m.cl));
    m.cl[0].c[2] = 2.0; /* high spend */
    m.cl[0].c[0] = 1.0; /* frequent */
    m.cl[0].c[7] = 0.8; /* evening */
    m.cl[1].c[4] = 1.5; /* deal seeker */
    m.cl[2].c[4] = 1.5; /* same: must be told apart */
    m.cl[2].id = 2;
    seg_model_label(&m);
    cr_assert_str_eq(m.cl[0].label, "high-spend \xC2\xB7 frequent \xC2\xB7 evening");
    cr_assert_str_eq(m.cl[1].label, "deal-seeker");
    cr_assert_str_eq(m.cl[2].label, "deal-seeker #2");
    seg_model_clear(&m);
}

/* 64 customers of two kinds, buyers (odd) and browsers (even), each with one
 * event at T0 + i under s. */
static void two_kinds(seg_t *s, seg_customer_t cs[64])
{
    char id[16];
    for (int i = 0; i < 64; i++) {
        snprintf(id, sizeof(id), "w%d", i);
        seg_customer_init(&cs[i], id, strlen(id), (uint64_t)i);
        seg_event_t ev = mkev(id, i % 2 ? SEG_EV_PURCHASE : SEG_EV_PAGE_VIEW, T0 + i);
        ev.amount = 200;
        seg_apply(s, &cs[i], &ev, T0 + i, NULL, NULL);
    }
}

Test(centroids, hysteresis_keeps_a_border_customer)
{
    seg_params_t p;
    char err[128];
    seg_params_default(&p);
    p.k = 2;
    p.warmup = 8;
    p.hysteresis = 0.3;
    p.min_events = 1;
    seg_t *s = seg_new(&p, err, sizeof(err));
    cr_assert_not_null(s);
    /* warm up on two kinds of customers: buyers and browsers */
    seg_customer_t cs[64];
    two_kinds(s, cs);
    cr_assert(seg_model(s)->ready);
    uint64_t *pend;
    int n = seg_take_pending(s, &pend);
    cr_assert_gt(n, 0);
    for (int i = 0; i < n; i++) seg_refresh_cluster(s, &cs[pend[i]], T0 + 100, NULL, NULL);
    free(pend);
    for (int i = 0; i < 64; i++) cr_assert_geq(cs[i].cluster, 0, "customer %d unassigned", i);
    cr_assert_neq(cs[0].cluster, cs[1].cluster);
    for (int i = 0; i < 64; i++) seg_customer_clear(&cs[i]);
    seg_free(s);
}

Test(centroids, a_frozen_model_assigns_but_never_moves)
{
    seg_params_t p;
    char err[128];
    seg_params_default(&p);
    p.k = 2;
    p.warmup = 8;
    p.min_events = 1;
    p.frozen = 1;
    seg_t *s = seg_new(&p, err, sizeof(err));
    cr_assert_not_null(s);
    seg_customer_t cs[64];
    /* no model: nobody is assigned and nothing is learned, however many events */
    two_kinds(s, cs);
    for (int i = 0; i < 64; i++) cr_assert_eq(cs[i].cluster, -1);
    seg_model_t *m = seg_model(s);
    cr_assert_not(m->ready);
    cr_assert_eq(m->n_sample, 0);
    uint64_t *pend;
    cr_assert_eq(seg_take_pending(s, &pend), 0);
    /* a given model (as --model loads one): customers are assigned to it, and
     * its centroids, counts and version stay exactly as they were */
    double pts[2][SEG_DIM] = {{0}, {0}};
    pts[1][5] = 5;
    seg_model_seed(m, (const double(*)[SEG_DIM])pts, 2);
    seg_model_label(m);
    seg_cluster_t before[2];
    memcpy(before, m->cl, sizeof(before));
    uint64_t version = m->version, updates = m->updates;
    rec_t rec = {0};
    for (int r = 0; r < 20; r++)
        for (int i = 0; i < 64; i++) {
            seg_event_t ev =
                mkev(cs[i].id, i % 2 ? SEG_EV_PURCHASE : SEG_EV_PAGE_VIEW, T0 + 1000 * (r + 1) + i);
            ev.amount = 200;
            seg_apply(s, &cs[i], &ev, ev.ts, rec_fn, &rec);
        }
    for (int i = 0; i < 64; i++) cr_assert_geq(cs[i].cluster, 0, "customer %d unassigned", i);
    cr_assert_gt(rec_find(&rec, SEG_DIM_CLUSTER, 0), -1);
    cr_assert_eq(memcmp(before, m->cl, sizeof(before)), 0, "a frozen model moved");
    cr_assert_eq(m->version, version);
    cr_assert_eq(m->updates, updates);
    for (int i = 0; i < 64; i++) seg_customer_clear(&cs[i]);
    seg_free(s);
}

/* The nearest-centroid scan (two centroids per vector operation) and the
 * vector updates give exactly what plain scalar loops give: the same slot,
 * the same squared distance bits, the same centroids after add and remove,
 * for every K from 1 to 9, with ties and NaN among the points. */
static double plain_dist2(const double *a, const double *b)
{
    double s = 0;
    for (int d = 0; d < SEG_DIM; d++) s += (a[d] - b[d]) * (a[d] - b[d]);
    return s;
}

Test(centroids, vector_scan_and_updates_match_scalar_loops)
{
    uint64_t st = 5;
    for (int k = 1; k <= 9; k++) {
        seg_model_t m;
        cr_assert_eq(seg_model_init(&m, k, 64, 1), 0);
        for (int j = 0; j < k; j++) {
            m.cl[j].n = j % 2 ? 10 : 5000; /* a learning rate of 1/n, and the floor */
            for (int d = 0; d < SEG_DIM; d++) m.cl[j].c[d] = (double)((j * 7 + d * 3) % 5) - 2;
        }
        if (k > 2) memcpy(m.cl[2].c, m.cl[1].c, sizeof(m.cl[1].c)); /* a tie */
        for (int i = 0; i < 3000; i++) {
            double x[SEG_DIM];
            for (int d = 0; d < SEG_DIM; d++) {
                st = st * 6364136223846793005ULL + 1442695040888963407ULL;
                x[d] = (double)(int64_t)(st >> 40) / (1 << 21) - 4;
            }
            if (i % 5 == 0) memcpy(x, m.cl[i % k].c, sizeof(x)); /* on a centroid */
            if (i % 97 == 0) x[3] = NAN;
            int cur = i % 3 == 0 ? -1 : i % k;
            /* what a plain scan decides */
            int want = cur >= 0 ? cur : 0;
            double wd = plain_dist2(x, m.cl[want].c), wcur = wd;
            if (isnan(wd)) wd = INFINITY, want = 0;
            for (int j = 0; j < k; j++) {
                double s = plain_dist2(x, m.cl[j].c);
                if (j == want && wd != INFINITY) continue;
                if (s < wd || (s == wd && j < want)) wd = s, want = j;
            }
            double got_d, got_cur = 0;
            int got = seg__model_nearest_from(&m, x, cur, &got_d, &got_cur);
            cr_assert_eq(got, want, "k %d point %d", k, i);
            cr_assert(memcmp(&got_d, &wd, sizeof wd) == 0, "k %d point %d: %a vs %a", k, i, got_d,
                      wd);
            if (cur >= 0 && !isnan(wcur)) cr_assert(memcmp(&got_cur, &wcur, sizeof wcur) == 0);
            if (isnan(x[3])) continue;
            /* add then remove, against the scalar formulas */
            seg_cluster_t before = m.cl[got], want_cl = before;
            want_cl.n += 1;
            double eta = 1.0 / want_cl.n;
            if (eta < 0.0005) eta = 0.0005;
            for (int d = 0; d < SEG_DIM; d++) {
                double t = x[d] - want_cl.c[d];
                want_cl.c[d] += eta * t;
                want_cl.var[d] += eta * (t * t - want_cl.var[d]);
            }
            seg_model_add(&m, got, x, 0.0005);
            cr_assert(memcmp(m.cl[got].c, want_cl.c, sizeof want_cl.c) == 0);
            cr_assert(memcmp(m.cl[got].var, want_cl.var, sizeof want_cl.var) == 0);
            double n1 = want_cl.n - 1;
            for (int d = 0; d < SEG_DIM; d++) want_cl.c[d] -= (x[d] - want_cl.c[d]) / n1;
            seg_model_remove(&m, got, x);
            cr_assert(memcmp(m.cl[got].c, want_cl.c, sizeof want_cl.c) == 0);
        }
        seg_model_clear(&m);
    }
}

/* Seeding as plainly as it can be written: k-means++ drawing from the same
 * generator, then Lloyd with a full scan of every point each pass (ties to
 * the lowest slot) until no point moves or 30 passes; the best of 5 runs. */
static double plain_kmeans(const double (*pts)[SEG_DIM], int n, int k, uint64_t *rng,
                           double (*best_c)[SEG_DIM])
{
    double best = NAN;
    double *dmin = calloc((size_t)n, sizeof(double));
    int *asg = calloc((size_t)n, sizeof(int));
    for (int r = 0; r < 5; r++) {
        double c[SEG_K_MAX][SEG_DIM];
        int first = (int)(seg__rand(rng) % (uint64_t)n);
        memcpy(c[0], pts[first], sizeof(c[0]));
        for (int i = 0; i < n; i++) dmin[i] = plain_dist2(pts[i], c[0]);
        for (int j = 1; j < k; j++) {
            double tot = 0;
            for (int i = 0; i < n; i++) tot += dmin[i];
            int pick = (int)(seg__rand(rng) % (uint64_t)n);
            if (tot > 0) {
                double u = seg__rand01(rng) * tot;
                for (int i = 0; i < n; i++)
                    if ((u -= dmin[i]) < 0) {
                        pick = i;
                        break;
                    }
            }
            memcpy(c[j], pts[pick], sizeof(c[j]));
            for (int i = 0; i < n; i++) {
                double s = plain_dist2(pts[i], c[j]);
                if (s < dmin[i]) dmin[i] = s;
            }
        }
        double inertia = 0;
        for (int it = 0; it < 30; it++) {
            double sum[SEG_K_MAX][SEG_DIM] = {{0}}, cnt[SEG_K_MAX] = {0};
            int moved = 0;
            for (int i = 0; i < n; i++) {
                int b = 0;
                for (int j = 1; j < k; j++)
                    if (plain_dist2(pts[i], c[j]) < plain_dist2(pts[i], c[b])) b = j;
                moved += it == 0 || asg[i] != b;
                asg[i] = b;
                cnt[b] += 1;
                for (int d = 0; d < SEG_DIM; d++) sum[b][d] += pts[i][d];
            }
            if (!moved || it == 29) {
                inertia = 0;
                for (int i = 0; i < n; i++) inertia += plain_dist2(pts[i], c[asg[i]]);
            }
            if (!moved) break;
            for (int j = 0; j < k; j++)
                if (cnt[j] > 0)
                    for (int d = 0; d < SEG_DIM; d++) c[j][d] = sum[j][d] / cnt[j];
        }
        if (isnan(best) || inertia < best) {
            best = inertia;
            memcpy(best_c, c, sizeof(c));
        }
    }
    free(dmin);
    free(asg);
    return best;
}

/* The seeding's Lloyd passes skip points by bounds (Hamerly) and scan the
 * rest two centroids per vector: the centroids must be exactly the plain
 * passes' ones, on blobs that overlap so that points do change sides. */
Test(centroids, seeding_equals_plain_lloyd)
{
    uint64_t st = 11;
    for (int k = 1; k <= 9; k++) {
        int n = 600;
        double(*pts)[SEG_DIM] = calloc((size_t)n, sizeof(*pts));
        for (int i = 0; i < n; i++)
            for (int d = 0; d < SEG_DIM; d++) {
                st = st * 6364136223846793005ULL + 1442695040888963407ULL;
                double noise = (double)(int64_t)(st >> 40) / (1 << 23) - 1;
                pts[i][d] = (d == i % 4 ? 1.5 : 0.0) + noise;
            }
        seg_model_t m;
        cr_assert_eq(seg_model_init(&m, k, n, 42 + (uint64_t)k), 0);
        uint64_t rng = m.rng;
        double want[SEG_K_MAX][SEG_DIM];
        plain_kmeans((const double(*)[SEG_DIM])pts, n, k, &rng, want);
        seg_model_seed(&m, (const double(*)[SEG_DIM])pts, n);
        for (int j = 0; j < k; j++)
            cr_assert(memcmp(m.cl[j].c, want[j], sizeof(want[j])) == 0, "k %d slot %d", k, j);
        free(pts);
        seg_model_clear(&m);
    }
}

/* The customer sample keeps the cap_res smallest id hashes seen, each with
 * its latest vector, however its table is probed: checked against a plain
 * list over ids that differ only in their last characters (the hashes of
 * such ids once piled into long runs of the table) and random keys, with
 * repeats and evictions. */
static int key_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

Test(centroids, customer_sample_keeps_smallest_keys_with_latest_vectors)
{
    enum { N = 6000 };
    static uint64_t keys[N], sorted[N];
    static double last[N];
    seg_model_t m;
    cr_assert_eq(seg_model_init(&m, 3, 300, 7), 0); /* cap_res 300 */
    uint64_t r = 12345;
    for (int i = 0; i < N; i++) {
        char id[16];
        int len = snprintf(id, sizeof(id), "c%06d", i);
        keys[i] = i % 2 ? seg__hash(id, (size_t)len) : seg__rand(&r);
        last[i] = NAN;
    }
    for (int round = 0; round < 3; round++)
        for (int t = 0; t < N; t++) {
            int i = (int)(seg__rand(&r) % N);
            double x[SEG_DIM] = {0};
            x[0] = round * N + t;
            seg_model_observe(&m, keys[i], x);
            last[i] = x[0];
        }
    int seen = 0;
    for (int i = 0; i < N; i++)
        if (!isnan(last[i])) sorted[seen++] = keys[i];
    qsort(sorted, (size_t)seen, sizeof(sorted[0]), key_cmp);
    cr_assert_eq(m.n_res, m.cap_res);
    cr_assert_lt(m.cap_res, seen);
    for (int s = 0; s < m.n_res; s++)
        for (int t = 0; t < s; t++)
            cr_assert_neq(m.res_key[s], m.res_key[t], "a key twice in the sample");
    for (int s = 0; s < m.n_res; s++) {
        /* in the sample exactly when among the cap_res smallest */
        uint64_t *at = bsearch(&m.res_key[s], sorted, (size_t)seen, sizeof(sorted[0]), key_cmp);
        cr_assert_not_null(at);
        cr_assert_lt(at - sorted, m.cap_res, "slot %d holds a key ranked %td", s, at - sorted);
        int i = 0;
        while (keys[i] != m.res_key[s]) i++;
        cr_assert_eq(m.res[s][0], last[i], "slot %d has an old vector", s);
    }
    seg_model_clear(&m);
}
