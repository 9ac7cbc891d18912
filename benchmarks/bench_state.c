/* benchmarks/bench_state.c: what a Redis checkpoint spends per customer on
 * the loop before anything is sent: the readable hash fields
 * (st_customer_fields) and the packed `state` (st_pack_customer). The
 * customers come from replaying a generated file through the pipeline (not
 * timed); then every customer is formatted and packed, best of five passes,
 * and unpacked again (what a process does with each customer it loads).
 *   bench_state FILE [-c CONFIG] */
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cmd/cli.h"
#include "cmd/pipeline.h"
#include "state/pack.h"

static int drop_change(void *ud, const seg_change_t *ch, const void *p, size_t len)
{
    (void)ud, (void)ch, (void)p, (void)len;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_state FILE [-c CONFIG]\n");
        return 2;
    }
    const char *config = argc > 3 && strcmp(argv[2], "-c") == 0 ? argv[3] : NULL;
    cfg_t cfg;
    pl_t pl;
    char err[256];
    if (cfg_load(&cfg, config, err, sizeof(err)) < 0 || pl_init(&pl, &cfg, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    pl.on_change = drop_change;
    strm_file_t *f = strm_file_open(argv[1], err, sizeof(err));
    if (!f) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    const char *rec, *why;
    size_t len;
    int64_t off = 0;
    while (strm_file_next(f, &rec, &len, &why) > 0) pl_record(&pl, rec, len, "bench", 0, off++);
    strm_file_close(f);

    uint64_t n = st_mem_count(pl.store);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    static st_field_t fields[ST_FIELDS];
    double best[4] = {1e9, 1e9, 1e9, 1e9};
    size_t bytes = 0, sink = 0;
    for (int pass = 0; pass < 5; pass++) {
        for (int what = 0; what < 3; what++) {
            double t0 = cli_monotonic_s();
            for (uint64_t h = 0; h < n; h++) {
                const seg_customer_t *c = st_mem_by_handle(pl.store, h);
                if (!c) continue;
                if (what != 1) sink += (size_t)st_customer_fields(pl.seg, c, 1, fields);
                if (what != 0) {
                    sb.size = 0;
                    if (st_pack_customer(pl.seg, c, &sb) < 0) return 1;
                    bytes += sb.size;
                }
            }
            double dt = cli_monotonic_s() - t0;
            if (dt < best[what]) best[what] = dt;
        }
        /* and back: what a process does with each customer it loads */
        double t0 = 0, dt = 0;
        for (uint64_t h = 0; h < n; h++) {
            const seg_customer_t *c = st_mem_by_handle(pl.store, h);
            if (!c) continue;
            sb.size = 0;
            if (st_pack_customer(pl.seg, c, &sb) < 0) return 1;
            seg_customer_t back;
            seg_customer_init(&back, c->id, c->id_len, h);
            t0 = cli_monotonic_s();
            if (st_unpack_customer(pl.seg, sb.data, sb.size, &back, err, sizeof(err)) < 0) {
                fprintf(stderr, "%s\n", err);
                return 1;
            }
            dt += cli_monotonic_s() - t0;
            seg_customer_clear(&back);
        }
        if (dt < best[3]) best[3] = dt;
    }
    printf("%s: %llu customers, packed state %.0f bytes on average; per customer: fields %.0f "
           "ns, packed state %.0f ns, both %.0f ns; unpacking the state %.0f ns (best of 5)\n",
           argv[1], (unsigned long long)n, (double)bytes / (10.0 * (double)n),
           best[0] * 1e9 / (double)n, best[1] * 1e9 / (double)n, best[2] * 1e9 / (double)n,
           best[3] * 1e9 / (double)n);
    msgpack_sbuffer_destroy(&sb);
    pl_free(&pl);
    cfg_free(&cfg);
    return sink == 0;
}
