/* benchmarks/bench_centroids.c: the centroid step alone, on the vectors the
 * core really sees. Replays FILE through the pipeline, keeps each applied
 * event's customer vector (normalised with the model the replay learned),
 * writes them to OUT.f64 (n x SEG_DIM doubles, for scikit-learn), then times
 * one pass of seg_model_update() over them after k-means++ seeding on the
 * first points, and prints the final inertia over all points.
 *   bench_centroids FILE OUT.f64 [--k K] [--floor F] */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cmd/cli.h"
#include "cmd/pipeline.h"

typedef struct {
    double (*v)[SEG_DIM];
    size_t n, cap;
    const seg_params_t *p;
} vecs_t;

static void keep(void *ud, const seg_customer_t *c)
{
    vecs_t *vs = ud;
    if (vs->n == vs->cap) {
        vs->cap = vs->cap ? vs->cap * 2 : 1 << 20;
        vs->v = realloc(vs->v, vs->cap * sizeof(*vs->v));
        if (!vs->v) exit(1);
    }
    seg_vector(vs->p, c, vs->v[vs->n++]);
}

static double inertia(const seg_model_t *m, const double (*v)[SEG_DIM], size_t n)
{
    double s = 0, d2;
    for (size_t i = 0; i < n; i++) {
        seg_model_nearest(m, v[i], &d2);
        s += d2;
    }
    return s;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: bench_centroids FILE OUT.f64 [--k K] [--floor F]\n");
        return 2;
    }
    int k = 6;
    double floor_ = 0.0005;
    for (int i = 3; i + 1 < argc; i++) {
        if (strcmp(argv[i], "--k") == 0)
            k = atoi(argv[++i]);
        else if (strcmp(argv[i], "--floor") == 0)
            floor_ = atof(argv[++i]);
    }
    cfg_t cfg;
    char err[256];
    if (cfg_load(&cfg, NULL, err, sizeof(err)) < 0) return fprintf(stderr, "%s\n", err), 1;
    cfg.max_future_skew_ms = INT64_MAX / 4;
    pl_t pl;
    if (pl_init(&pl, &cfg, err, sizeof(err)) < 0) return fprintf(stderr, "%s\n", err), 1;
    vecs_t vs = {.p = seg_params(pl.seg)};
    pl.on_applied = keep;
    pl.applied_ud = &vs;
    strm_file_t *f = strm_file_open(argv[1], err, sizeof(err));
    if (!f) return fprintf(stderr, "%s\n", err), 1;
    const char *rec, *why;
    size_t len;
    while (strm_file_next(f, &rec, &len, &why) > 0) pl_record(&pl, rec, len, "bench", 0, 0);
    strm_file_close(f);
    seg_model_t *learned = seg_model(pl.seg);
    for (size_t i = 0; i < vs.n; i++)
        for (int d = 0; d < SEG_DIM; d++)
            vs.v[i][d] = (vs.v[i][d] - learned->mean[d]) / learned->scale[d];
    FILE *out = fopen(argv[2], "wb");
    if (!out || fwrite(vs.v, sizeof(*vs.v), vs.n, out) != vs.n || fclose(out) != 0) {
        fprintf(stderr, "%s: cannot write\n", argv[2]);
        return 1;
    }

    seg_model_t m;
    int seed_n = vs.n < 16384 ? (int)vs.n : 16384;
    seg_model_init(&m, k, seed_n, 1);
    seg_model_seed(&m, (const double(*)[SEG_DIM])vs.v, seed_n);
    /* 1: the bare online step; 2: as the engine runs it, with a uniform
     * sample of points and a refresh every 100 000 updates */
    seg_model_t start = m;
    for (int mode = 1; mode <= 2; mode++) {
        seg_model_t w;
        seg_model_init(&w, k, seed_n, 1);
        double *sample = (double *)w.sample;
        w = start;
        w.sample = (double(*)[SEG_DIM])sample;
        w.pending = NULL;
        int refreshes = 0;
        double t0 = cli_monotonic_s();
        for (size_t i = 0; i < vs.n; i++) {
            seg_model_update(&w, vs.v[i], floor_);
            if (mode == 2) {
                uint64_t key = (uint64_t)i * 0x9E3779B97F4A7C15ULL;
                seg_model_observe(&w, key ^ (key >> 29), vs.v[i]);
                if (++w.updates_since_refresh >= 100000)
                    refreshes += seg_model_refresh(&w, 2, 0.05);
            }
        }
        double dt = cli_monotonic_s() - t0;
        double in = inertia(&w, (const double(*)[SEG_DIM])vs.v, vs.n);
        printf("%s: points %zu dim %d k %d floor %g: %.3f s = %.2f M points/s; inertia %.1f "
               "(%.4f per point), %d refreshes adopted\n",
               mode == 1 ? "online step alone" : "online step + sample refresh", vs.n, SEG_DIM, k,
               floor_, dt, vs.n / dt / 1e6, in, in / vs.n, refreshes);
        seg_model_clear(&w);
    }
    free(m.sample);
    pl_free(&pl);
    cfg_free(&cfg);
    free(vs.v);
    return 0;
}
