/* segmenter/centroids.c: streaming centroids (online k-means). Seeds with
 * k-means++ and a few Lloyd passes on a warm-up sample, then moves the
 * nearest centroid toward each point with rate max(1/n, floor) so the model
 * keeps following drift; splits the largest cluster to replace one that
 * stops attracting points; labels each cluster from its centroid. Ids are
 * stable: a retired id is never reused. Works in normalised space. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "segmenter/internal.h"

int seg_model_init(seg_model_t *m, int k, int warmup, uint64_t seed)
{
    memset(m, 0, sizeof(*m));
    m->k = k;
    m->cap_sample = warmup;
    m->rng = seed ? seed : 1;
    m->sample = calloc((size_t)warmup, sizeof(*m->sample));
    if (!m->sample) return -1;
    for (int d = 0; d < SEG_DIM; d++) m->scale[d] = 1.0;
    return 0;
}

void seg_model_clear(seg_model_t *m)
{
    free(m->res);
    free(m->res_key);
    free(m->res_heap);
    free(m->res_tab);
    m->res = NULL;
    free(m->sample);
    free(m->pending);
    m->sample = NULL;
    m->pending = NULL;
}

/* Two doubles side by side (GCC and clang vector extensions: SSE2 on
 * x86-64, plain code elsewhere); each lane rounds as scalar code does. */
typedef double v2d __attribute__((vector_size(16)));

/* The model's innermost loop (every event, every k-means pass): unrolled,
 * with one accumulator so sums come out in the same order everywhere. */
static inline double dist2(const double *a, const double *b)
{
    double s = 0;
#pragma GCC unroll 16
    for (int d = 0; d < SEG_DIM; d++) {
        double t = a[d] - b[d];
        s += t * t;
    }
    return s;
}

int seg_model_nearest(const seg_model_t *m, const double x[SEG_DIM], double *d2)
{
    return seg__model_nearest_from(m, x, -1, d2, NULL);
}

/* The squared distance from x to each of k centroids, the first at c0 and
 * the next every `stride` bytes, into s: two centroids at a time in the two
 * lanes of a vector. Each lane sums its dimensions in order, so each sum
 * has the bits dist2 gives, and no centroid waits for an early exit's
 * branch. */
static inline void dist2_all(const double x[SEG_DIM], const void *c0, size_t stride, int k,
                             double *s)
{
    const char *base = c0;
    int j = 0;
    for (; j + 1 < k; j += 2) {
        const double *a = (const double *)(base + (size_t)j * stride);
        const double *b = (const double *)(base + (size_t)(j + 1) * stride);
        v2d acc = {0, 0};
#pragma GCC unroll 16
        for (int d = 0; d < SEG_DIM; d++) {
            v2d t = (v2d){x[d], x[d]} - (v2d){a[d], b[d]};
            acc += t * t;
        }
        s[j] = acc[0], s[j + 1] = acc[1];
    }
    if (j < k) s[j] = dist2(x, (const double *)(base + (size_t)j * stride));
}

int seg__model_nearest_from(const seg_model_t *m, const double x[SEG_DIM], int cur, double *d2,
                            double *dcur)
{
    /* Every distance in full (dist2_all). The choice is a plain scan's: the
     * current slot unless another is strictly nearer, ties to the lowest. */
    double s[SEG_K_MAX];
    int k = m->k, j;
    dist2_all(x, m->cl[0].c, sizeof(m->cl[0]), k, s);
    int best = cur >= 0 ? cur : 0;
    double bd = s[best];
    if (cur >= 0) *dcur = bd;
    if (isnan(bd)) bd = INFINITY, best = 0;
    for (j = 0; j < k; j++) {
        if (j == best && bd != INFINITY) continue;
        if (s[j] < bd || (s[j] == bd && j < best)) bd = s[j], best = j;
    }
    if (d2) *d2 = bd;
    return best;
}

int seg_model_slot(const seg_model_t *m, int32_t id)
{
    for (int j = 0; j < m->k; j++)
        if (m->cl[j].id == id) return j;
    return -1;
}

/* k-means++ then Lloyd over pts into cent; returns the inertia. asg gets
 * each point's slot. ub and lb (n each) are scratch for Hamerly's bounds. */
static double kmeans_once(const double (*pts)[SEG_DIM], int n, int k, double (*cent)[SEG_DIM],
                          int *asg, double *dmin, double *ub, double *lb, uint64_t *rng)
{
    int first = (int)(seg__rand(rng) % (uint64_t)n);
    memcpy(cent[0], pts[first], sizeof(cent[0]));
    for (int i = 0; i < n; i++) dmin[i] = dist2(pts[i], cent[0]);
    for (int j = 1; j < k; j++) {
        double tot = 0;
        for (int i = 0; i < n; i++) tot += dmin[i];
        int pick = (int)(seg__rand(rng) % (uint64_t)n);
        if (tot > 0) {
            double r = seg__rand01(rng) * tot;
            for (int i = 0; i < n; i++)
                if ((r -= dmin[i]) < 0) {
                    pick = i;
                    break;
                }
        }
        memcpy(cent[j], pts[pick], sizeof(cent[j]));
        for (int i = 0; i < n; i++) {
            double s = dist2(pts[i], cent[j]);
            if (s < dmin[i]) dmin[i] = s;
        }
    }
    double inertia = 0;
    /* how far each centroid moved in the last update, and the most any
     * other than j moved (distances, not squares) */
    double mv[SEG_K_MAX] = {0}, mv_other[SEG_K_MAX] = {0};
    for (int it = 0; it < 30; it++) {
        double sum[SEG_K_MAX][SEG_DIM], cnt[SEG_K_MAX];
        memset(sum, 0, sizeof(sum));
        memset(cnt, 0, sizeof(cnt));
        int moved = 0;
        for (int i = 0; i < n; i++) {
            /* from the last assignment, which stays unless another is
             * strictly nearer; ties go to the lowest slot, as in a plain scan */
            int best = it ? asg[i] : 0;
            if (it) {
                /* Hamerly: ub bounds the distance to the point's centroid
                 * from above, lb every other one's from below; both follow
                 * the centroids' moves. Clearly apart (the margin is far
                 * above rounding), no centroid can be as near: the point
                 * stays, as the scan below would decide. */
                ub[i] += mv[best];
                lb[i] -= mv_other[best];
                if (ub[i] + 1e-9 * (ub[i] + fabs(lb[i])) < lb[i]) goto counted;
            }
            /* every distance in full (dist2_all: the bits dist2 gives);
             * the plain scan's choice, and the nearest other one as the
             * lower bound (sqrt is monotonic: one root for the minimum) */
            double s[SEG_K_MAX];
            dist2_all(pts[i], cent[0], sizeof(cent[0]), k, s);
            double bd = s[best];
            if (isnan(bd)) bd = INFINITY, best = 0; /* what a plain scan ends with */
            double lo = INFINITY;                   /* over the others, squared */
            for (int j = 0; j < k; j++) {
                if (j == best) continue;
                if (s[j] < bd || (s[j] == bd && j < best)) {
                    if (bd < lo) lo = bd; /* the one it replaces is now an other */
                    bd = s[j], best = j;
                } else if (s[j] < lo) {
                    lo = s[j];
                }
            }
            lo = sqrt(lo);
            ub[i] = sqrt(bd);
            lb[i] = lo;
            if (it == 0 || asg[i] != best) moved++;
            asg[i] = best;
        counted:
            cnt[best] += 1;
            for (int d = 0; d < SEG_DIM; d++) sum[best][d] += pts[i][d];
        }
        if (!moved || it == 29) {
            /* the inertia of this assignment, summed in point order: each
             * term is the distance the scan would have ended with */
            inertia = 0;
            for (int i = 0; i < n; i++) {
                double d = dist2(pts[i], cent[asg[i]]);
                inertia += isnan(d) ? INFINITY : d;
            }
        }
        if (!moved) break;
        double m1 = 0, m2 = 0; /* the largest move and the second */
        for (int j = 0; j < k; j++) {
            double old[SEG_DIM];
            memcpy(old, cent[j], sizeof(old));
            if (cnt[j] > 0)
                for (int d = 0; d < SEG_DIM; d++) cent[j][d] = sum[j][d] / cnt[j];
            mv[j] = sqrt(dist2(old, cent[j]));
            if (isnan(mv[j])) mv[j] = INFINITY;
            if (mv[j] > m1)
                m2 = m1, m1 = mv[j];
            else if (mv[j] > m2)
                m2 = mv[j];
        }
        for (int j = 0; j < k; j++) mv_other[j] = mv[j] == m1 ? m2 : m1;
    }
    return inertia;
}

/* Best of n_init runs into cent/asg; NAN when out of memory. */
static double kmeans_best(const double (*pts)[SEG_DIM], int n, int k, int n_init,
                          double (*cent)[SEG_DIM], int *asg, uint64_t *rng)
{
    double *dmin = malloc((size_t)n * 3 * sizeof(double));
    int *tmp = malloc((size_t)n * sizeof(int));
    double best = NAN;
    if (dmin && tmp)
        for (int r = 0; r < n_init; r++) {
            double c[SEG_K_MAX][SEG_DIM];
            double in = kmeans_once(pts, n, k, c, tmp, dmin, dmin + n, dmin + 2 * (size_t)n, rng);
            if (isnan(best) || in < best) {
                best = in;
                memcpy(cent, c, (size_t)k * sizeof(c[0]));
                memcpy(asg, tmp, (size_t)n * sizeof(int));
            }
        }
    free(dmin);
    free(tmp);
    return best;
}

/* Counts and spreads of each slot from an assignment of pts. */
static void set_stats(seg_model_t *m, const double (*pts)[SEG_DIM], int n, const int *asg)
{
    for (int j = 0; j < m->k; j++) {
        m->cl[j].n = 0;
        memset(m->cl[j].var, 0, sizeof(m->cl[j].var));
    }
    for (int i = 0; i < n; i++) {
        seg_cluster_t *cl = &m->cl[asg[i]];
        cl->n += 1;
        for (int d = 0; d < SEG_DIM; d++)
            cl->var[d] += (pts[i][d] - cl->c[d]) * (pts[i][d] - cl->c[d]);
    }
    for (int j = 0; j < m->k; j++) {
        seg_cluster_t *cl = &m->cl[j];
        for (int d = 0; d < SEG_DIM; d++) cl->var[d] = cl->n > 0 ? cl->var[d] / cl->n : 0;
        cl->recent = n ? cl->n / n : 0;
    }
}

void seg_model_seed(seg_model_t *m, const double (*pts)[SEG_DIM], int n)
{
    int k = m->k;
    int *asg = malloc((size_t)(n > 0 ? n : 1) * sizeof(int));
    double cent[SEG_K_MAX][SEG_DIM];
    if (n >= k && asg && !isnan(kmeans_best(pts, n, k, 5, cent, asg, &m->rng))) {
        for (int j = 0; j < k; j++) memcpy(m->cl[j].c, cent[j], sizeof(cent[j]));
        set_stats(m, pts, n, asg);
    } else {
        /* too few points: centroids on the points we have, the rest at the origin */
        for (int j = 0; j < k; j++) {
            memset(m->cl[j].c, 0, sizeof(m->cl[j].c));
            if (j < n) memcpy(m->cl[j].c, pts[j], sizeof(m->cl[j].c));
            m->cl[j].n = j < n;
            m->cl[j].recent = 1.0 / k;
        }
    }
    for (int j = 0; j < k; j++) m->cl[j].id = j;
    m->next_id = k;
    m->ready = 1;
    m->epoch++;
    m->version++;
    seg_model_label(m);
    free(asg);
}

static void heap_sift_down(seg_model_t *m, int i)
{
    int n = m->n_res, *h = m->res_heap;
    for (;;) {
        int l = 2 * i + 1, big = i;
        if (l < n && m->res_key[h[l]] > m->res_key[h[big]]) big = l;
        if (l + 1 < n && m->res_key[h[l + 1]] > m->res_key[h[big]]) big = l + 1;
        if (big == i) return;
        int t = h[i];
        h[i] = h[big];
        h[big] = t;
        i = big;
    }
}

static void heap_sift_up(seg_model_t *m, int i)
{
    int *h = m->res_heap;
    while (i > 0 && m->res_key[h[(i - 1) / 2]] < m->res_key[h[i]]) {
        int p = (i - 1) / 2, t = h[i];
        h[i] = h[p];
        h[p] = t;
        i = p;
    }
}

/* A key's first slot. The keys are FNV-1a hashes, whose middle bits hardly
 * change between ids that differ in their last characters (c000001,
 * c000002, ...): taken as they were, they piled a small population's
 * sample into long runs of the table (tens of probes per lookup). A
 * multiply moves every bit of the key into the top bits used here. */
static inline uint32_t tab_home(uint64_t key, uint32_t mask)
{
    return (uint32_t)((key * 0x9E3779B97F4A7C15ULL) >> 32) & mask;
}

static int tab_find(const seg_model_t *m, uint64_t key)
{
    uint32_t mask = (uint32_t)m->tab_cap - 1;
    for (uint32_t i = tab_home(key, mask);; i = (i + 1) & mask) {
        int32_t v = m->res_tab[i];
        if (v == 0) return -1;
        if (v > 0 && m->res_key[v - 1] == key) return v - 1;
    }
}

static void tab_put(seg_model_t *m, uint64_t key, int slot)
{
    uint32_t mask = (uint32_t)m->tab_cap - 1;
    uint32_t i = tab_home(key, mask);
    while (m->res_tab[i] > 0) i = (i + 1) & mask;
    if (m->res_tab[i] == 0) m->tab_used++;
    m->res_tab[i] = slot + 1;
}

static void tab_del(seg_model_t *m, uint64_t key)
{
    uint32_t mask = (uint32_t)m->tab_cap - 1;
    for (uint32_t i = tab_home(key, mask); m->res_tab[i]; i = (i + 1) & mask)
        if (m->res_tab[i] > 0 && m->res_key[m->res_tab[i] - 1] == key) {
            m->res_tab[i] = -1;
            return;
        }
}

static void tab_rebuild(seg_model_t *m)
{
    memset(m->res_tab, 0, (size_t)m->tab_cap * sizeof(int32_t));
    m->tab_used = 0;
    for (int s = 0; s < m->n_res; s++) tab_put(m, m->res_key[s], s);
}

void seg_model_observe(seg_model_t *m, uint64_t key, const double x[SEG_DIM])
{
    if (!m->res) {
        m->cap_res = m->cap_sample < 2048 ? (m->cap_sample > 256 ? m->cap_sample : 256) : 2048;
        m->tab_cap = 1;
        while (m->tab_cap < 4 * m->cap_res) m->tab_cap <<= 1;
        m->res = calloc((size_t)m->cap_res, sizeof(*m->res));
        m->res_key = calloc((size_t)m->cap_res, sizeof(uint64_t));
        m->res_heap = calloc((size_t)m->cap_res, sizeof(int));
        m->res_tab = calloc((size_t)m->tab_cap, sizeof(int32_t));
        if (!m->res || !m->res_key || !m->res_heap || !m->res_tab) {
            free(m->res), free(m->res_key), free(m->res_heap), free(m->res_tab);
            m->res = NULL;
            return;
        }
    }
    /* most customers are not in the sample: one comparison says so */
    if (m->n_res == m->cap_res && key >= m->res_key[m->res_heap[0]]) return;
    int slot = tab_find(m, key);
    if (slot < 0) {
        if (m->n_res < m->cap_res) {
            slot = m->n_res++;
            m->res_key[slot] = key;
            m->res_heap[m->n_res - 1] = slot;
            heap_sift_up(m, m->n_res - 1);
        } else {
            slot = m->res_heap[0]; /* the largest key leaves */
            tab_del(m, m->res_key[slot]);
            m->res_key[slot] = key;
            heap_sift_down(m, 0);
        }
        if (m->tab_used * 2 > m->tab_cap) tab_rebuild(m);
        tab_put(m, key, slot);
    }
    memcpy(m->res[slot], x, sizeof(m->res[0]));
}

/* add and remove run on every event: two dimensions per vector operation
 * (each lane computes what the scalar loop did, so the bits are the same),
 * which halves remove's ten divisions */
_Static_assert(SEG_DIM % 2 == 0, "centroid updates go two dimensions at a time");

void seg_model_add(seg_model_t *m, int j, const double x[SEG_DIM], double lr_floor)
{
    seg_cluster_t *cl = &m->cl[j];
    cl->n += 1;
    /* past 1/lr_floor points (soon), the rate is the floor: the division,
     * the longest step of the update, only where 1/n might still be above
     * it (the margin covers the product's rounding) */
    double eta = cl->n * lr_floor > 1.000001 ? lr_floor : 1.0 / cl->n;
    if (eta < lr_floor) eta = lr_floor;
    v2d e = {eta, eta};
#pragma GCC unroll 8
    for (int d = 0; d < SEG_DIM; d += 2) {
        v2d c, v, xv;
        memcpy(&c, &cl->c[d], sizeof c);
        memcpy(&v, &cl->var[d], sizeof v);
        memcpy(&xv, &x[d], sizeof xv);
        v2d t = xv - c;
        c += e * t;
        v += e * (t * t - v);
        memcpy(&cl->c[d], &c, sizeof c);
        memcpy(&cl->var[d], &v, sizeof v);
    }
}

void seg_model_remove(seg_model_t *m, int j, const double x[SEG_DIM])
{
    seg_cluster_t *cl = &m->cl[j];
    if (cl->n < 2) return; /* a centroid never loses its last point */
    double n1 = cl->n - 1;
    v2d nv = {n1, n1};
#pragma GCC unroll 8
    for (int d = 0; d < SEG_DIM; d += 2) {
        v2d c, xv;
        memcpy(&c, &cl->c[d], sizeof c);
        memcpy(&xv, &x[d], sizeof xv);
        c -= (xv - c) / nv;
        memcpy(&cl->c[d], &c, sizeof c);
    }
    cl->n -= 1;
}

int seg_model_refresh(seg_model_t *m, int n_init, double gain)
{
    int n = m->n_res, k = m->k;
    m->updates_since_refresh = 0;
    if (!m->ready || n < 4 * k) return 0;
    const double(*pts)[SEG_DIM] = (const double(*)[SEG_DIM])m->res;
    /* the current centroids' inertia on the same points */
    double cur = 0;
    for (int i = 0; i < n; i++) {
        double d2;
        seg_model_nearest(m, pts[i], &d2);
        cur += d2;
    }
    int *asg = malloc((size_t)n * sizeof(int));
    double cent[SEG_K_MAX][SEG_DIM];
    double cand = asg ? kmeans_best(pts, n, k, n_init, cent, asg, &m->rng) : NAN;
    if (isnan(cand) || !(cand < (1.0 - gain) * cur)) {
        free(asg);
        return 0;
    }
    /* keep ids: greedily pair the closest old and new centroids */
    int32_t new_id[SEG_K_MAX];
    int old_used[SEG_K_MAX] = {0}, new_used[SEG_K_MAX] = {0};
    for (int j = 0; j < k; j++) new_id[j] = -1;
    for (int round = 0; round < k; round++) {
        int bi = -1, bj = -1;
        double bd = 1.0; /* farther than one unit (z^2): a different cluster */
        for (int i = 0; i < k; i++)
            for (int j = 0; j < k; j++)
                if (!old_used[i] && !new_used[j]) {
                    double d = dist2(m->cl[i].c, cent[j]);
                    if (d < bd) bd = d, bi = i, bj = j;
                }
        if (bi < 0) break;
        old_used[bi] = new_used[bj] = 1;
        new_id[bj] = m->cl[bi].id;
    }
    for (int j = 0; j < k; j++) {
        memcpy(m->cl[j].c, cent[j], sizeof(cent[j]));
        m->cl[j].id = new_id[j] >= 0 ? new_id[j] : m->next_id++;
    }
    set_stats(m, pts, n, asg);
    free(asg);
    m->updates_since_split = 0;
    m->epoch++;
    m->version++;
    seg_model_label(m);
    return 1;
}

void seg_model_tick(seg_model_t *m, int j)
{
    m->updates++;
    m->updates_since_split++;
    m->since[j]++;
    if (++m->since_n == 1024) {
        double a = m->recent_rate > 0 ? m->recent_rate : 0.05;
        for (int i = 0; i < m->k; i++) {
            m->cl[i].recent = (1 - a) * m->cl[i].recent + a * (m->since[i] / 1024.0);
            m->since[i] = 0;
        }
        m->since_n = 0;
    }
}

int seg_model_update(seg_model_t *m, const double x[SEG_DIM], double lr_floor)
{
    int j = seg_model_nearest(m, x, NULL);
    seg_model_add(m, j, x, lr_floor);
    seg_model_tick(m, j);
    return j;
}

/* A cluster whose recent share of assignments fell under dying_share has
 * lost its customers to drift: move it next to the largest cluster, split
 * along that cluster's widest dimension, under a new id. */
int seg_model_split_dying(seg_model_t *m, double dying_share, int64_t window)
{
    if (m->k < 2 || (int64_t)m->updates_since_split < window) return 0;
    int split = 0;
    for (int j = 0; j < m->k; j++) {
        if (m->cl[j].recent >= dying_share) continue;
        int big = j == 0 ? 1 : 0;
        for (int i = 0; i < m->k; i++)
            if (i != j && m->cl[i].recent > m->cl[big].recent) big = i;
        seg_cluster_t *B = &m->cl[big], *D = &m->cl[j];
        int dmax = 0;
        for (int d = 1; d < SEG_DIM; d++)
            if (B->var[d] > B->var[dmax]) dmax = d;
        double delta = 0.5 * sqrt(B->var[dmax] > 0 ? B->var[dmax] : 1e-6);
        memcpy(D->c, B->c, sizeof(D->c));
        memcpy(D->var, B->var, sizeof(D->var));
        D->c[dmax] += delta;
        B->c[dmax] -= delta;
        D->n = B->n = B->n / 2;
        D->recent = B->recent = B->recent / 2;
        D->id = m->next_id++;
        split++;
    }
    if (split) {
        m->updates_since_split = 0;
        m->epoch++;
        m->version++;
        seg_model_label(m);
    }
    return split;
}

/* Words for a centroid that stands out on one dimension (in z units). */
static const char *const word_hi[SEG_DIM] = {
    "frequent",       "repeat-buyer",  "high-spend", "big-basket", "deal-seeker",
    "cart-abandoner", "email-engaged", "evening",    "weekend",    "app"};
static const char *const word_lo[SEG_DIM] = {"occasional", "non-buyer", "low-spend", "small-basket",
                                             "full-price", NULL,        NULL,        "daytime",
                                             "weekday",    "web"};

void seg_model_label(seg_model_t *m)
{
    for (int j = 0; j < m->k; j++) {
        seg_cluster_t *cl = &m->cl[j];
        int used[SEG_DIM] = {0};
        char buf[96] = "";
        size_t len = 0;
        for (int w = 0; w < 3; w++) {
            int best = -1;
            double bz = 0.5; /* only dimensions at least half a std from the mean */
            for (int d = 0; d < SEG_DIM; d++) {
                if (used[d]) continue;
                double z = cl->c[d];
                const char *word = z > 0 ? word_hi[d] : word_lo[d];
                if (word && fabs(z) > bz) bz = fabs(z), best = d;
            }
            if (best < 0) break;
            used[best] = 1;
            const char *word = cl->c[best] > 0 ? word_hi[best] : word_lo[best];
            len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%s%s", len ? " \xC2\xB7 " : "",
                                    word);
            if (len >= sizeof(buf)) break;
        }
        if (!len) snprintf(buf, sizeof(buf), "typical");
        snprintf(cl->label, sizeof(cl->label), "%s", buf);
    }
    /* labels must tell clusters apart */
    for (int j = 0; j < m->k; j++)
        for (int i = 0; i < j; i++)
            if (strcmp(m->cl[i].label, m->cl[j].label) == 0) {
                char tmp[96];
                snprintf(tmp, sizeof(tmp), "%.80s #%d", m->cl[j].label, m->cl[j].id);
                memcpy(m->cl[j].label, tmp, sizeof(tmp));
                break;
            }
}
