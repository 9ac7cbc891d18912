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
    free(m->sample);
    free(m->pending);
    m->sample = NULL;
    m->pending = NULL;
}

static double dist2(const double *a, const double *b)
{
    double s = 0;
    for (int d = 0; d < SEG_DIM; d++) {
        double t = a[d] - b[d];
        s += t * t;
    }
    return s;
}

int seg_model_nearest(const seg_model_t *m, const double x[SEG_DIM], double *d2)
{
    int best = 0;
    double bd = INFINITY;
    for (int j = 0; j < m->k; j++) {
        double s = dist2(x, m->cl[j].c);
        if (s < bd) bd = s, best = j;
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

void seg_model_seed(seg_model_t *m, const double (*pts)[SEG_DIM], int n)
{
    int k = m->k;
    double *dmin = malloc((size_t)(n > 0 ? n : 1) * sizeof(double));
    int *asg = malloc((size_t)(n > 0 ? n : 1) * sizeof(int));
    if (!dmin || !asg || n == 0) {
        /* degenerate: centroids at the origin of normalised space */
        for (int j = 0; j < k; j++) memset(m->cl[j].c, 0, sizeof(m->cl[j].c));
        goto ids;
    }
    /* k-means++: first centre uniform, then proportional to D^2 */
    int first = (int)(seg__rand(&m->rng) % (uint64_t)n);
    memcpy(m->cl[0].c, pts[first], sizeof(m->cl[0].c));
    for (int i = 0; i < n; i++) dmin[i] = dist2(pts[i], m->cl[0].c);
    for (int j = 1; j < k; j++) {
        double tot = 0;
        for (int i = 0; i < n; i++) tot += dmin[i];
        int pick = n - 1;
        if (tot > 0) {
            double r = seg__rand01(&m->rng) * tot;
            for (int i = 0; i < n; i++) {
                r -= dmin[i];
                if (r < 0) {
                    pick = i;
                    break;
                }
            }
        } else {
            pick = (int)(seg__rand(&m->rng) % (uint64_t)n);
        }
        memcpy(m->cl[j].c, pts[pick], sizeof(m->cl[j].c));
        for (int i = 0; i < n; i++) {
            double s = dist2(pts[i], m->cl[j].c);
            if (s < dmin[i]) dmin[i] = s;
        }
    }
    /* Lloyd passes on the sample */
    for (int it = 0; it < 20; it++) {
        double sum[SEG_K_MAX][SEG_DIM];
        double cnt[SEG_K_MAX];
        memset(sum, 0, sizeof(sum));
        memset(cnt, 0, sizeof(cnt));
        int moved = 0;
        for (int i = 0; i < n; i++) {
            int j = seg_model_nearest(m, pts[i], NULL);
            if (it == 0 || asg[i] != j) moved++;
            asg[i] = j;
            cnt[j] += 1;
            for (int d = 0; d < SEG_DIM; d++) sum[j][d] += pts[i][d];
        }
        for (int j = 0; j < k; j++)
            if (cnt[j] > 0)
                for (int d = 0; d < SEG_DIM; d++) m->cl[j].c[d] = sum[j][d] / cnt[j];
        if (!moved) break;
    }
    for (int j = 0; j < k; j++) {
        m->cl[j].n = 0;
        memset(m->cl[j].var, 0, sizeof(m->cl[j].var));
    }
    for (int i = 0; i < n; i++) {
        seg_cluster_t *cl = &m->cl[asg[i]];
        cl->n += 1;
        for (int d = 0; d < SEG_DIM; d++) {
            double t = pts[i][d] - cl->c[d];
            cl->var[d] += t * t;
        }
    }
    for (int j = 0; j < k; j++) {
        seg_cluster_t *cl = &m->cl[j];
        for (int d = 0; d < SEG_DIM; d++) cl->var[d] = cl->n > 0 ? cl->var[d] / cl->n : 0;
        cl->recent = cl->n / n;
    }
ids:
    for (int j = 0; j < k; j++) m->cl[j].id = j;
    m->next_id = k;
    m->ready = 1;
    m->version++;
    seg_model_label(m);
    free(dmin);
    free(asg);
}

int seg_model_update(seg_model_t *m, const double x[SEG_DIM], double lr_floor)
{
    int j = seg_model_nearest(m, x, NULL);
    seg_cluster_t *cl = &m->cl[j];
    cl->n += 1;
    double eta = 1.0 / cl->n;
    if (eta < lr_floor) eta = lr_floor;
    for (int d = 0; d < SEG_DIM; d++) {
        double t = x[d] - cl->c[d];
        cl->c[d] += eta * t;
        cl->var[d] += eta * (t * t - cl->var[d]);
    }
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
        m->version++;
        seg_model_label(m);
    }
    return split;
}

/* Words for a centroid that stands out on one dimension (in z units). */
static const char *const word_hi[SEG_DIM] = {"frequent",       "repeat-buyer",  "high-spend",
                                             "big-basket",     "deal-seeker",   "cart-abandoner",
                                             "email-engaged",  "evening",       "weekend",
                                             "app"};
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
