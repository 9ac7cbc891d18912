/* benchmarks/bench_core.c: the hot path on one core, with no I/O: every
 * record of a generated file is loaded into memory first, then timed through
 * exactly what the binary runs (pl_records in batches of 256, as replay's
 * file loop: decode, watermark, due changes, store lookup, seg_apply, change
 * encoding). Change events are encoded but discarded. `--single` times
 * pl_record one record at a time instead (run's loop), `--decode-only` the
 * codec alone.
 * -c CONFIG applies its rules too (the default config has none).
 *   bench_core FILE [--decode-only | --single] [--limit N] [-c CONFIG]
 * Under callgrind, collect only bench_loop:
 *   valgrind --tool=callgrind --toggle-collect=bench_loop bench_core FILE */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cmd/cli.h"
#include "cmd/pipeline.h"

typedef struct {
    char *data;
    size_t *off, *len;
    size_t n, cap, used, dcap;
} recs_t;

static int load(const char *path, recs_t *r, size_t limit)
{
    char err[256];
    strm_file_t *f = strm_file_open(path, err, sizeof(err));
    if (!f) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    const char *rec, *why;
    size_t len;
    int rc;
    while (r->n < limit && (rc = strm_file_next(f, &rec, &len, &why)) > 0) {
        if (r->n == r->cap) {
            r->cap = r->cap ? r->cap * 2 : 1 << 16;
            r->off = realloc(r->off, r->cap * sizeof(size_t));
            r->len = realloc(r->len, r->cap * sizeof(size_t));
        }
        while (r->used + len > r->dcap) {
            r->dcap = r->dcap ? r->dcap * 2 : 1 << 24;
            r->data = realloc(r->data, r->dcap);
        }
        memcpy(r->data + r->used, rec, len);
        r->off[r->n] = r->used;
        r->len[r->n++] = len;
        r->used += len;
    }
    strm_file_close(f);
    return 0;
}

static uint64_t changes;
static int count_change(void *ud, const seg_change_t *ch, const void *p, size_t len)
{
    (void)ud, (void)ch, (void)p, (void)len;
    changes++;
    return 0;
}

#define BATCH 256 /* records per pl_records call, as replay's file loop */

/* mode 0: decode only; 1: pl_records in batches (what replay runs);
 * 2: pl_record one at a time (what run's loop runs) */
__attribute__((noinline)) uint64_t bench_loop(pl_t *pl, const recs_t *r, int mode)
{
    uint64_t ok = 0;
    seg_event_t ev;
    const char *why;
    pl_rec_t batch[BATCH];
    for (size_t i = 0; i < r->n; i++) {
        const char *p = r->data + r->off[i];
        if (mode == 0) {
            ok += strm_decode(p, r->len[i], 0, &ev, &why) == 0;
        } else if (mode == 2) {
            ok += pl_record(pl, p, r->len[i], "bench", 0, (int64_t)i) == 0;
        } else {
            size_t n = 0;
            for (; n < BATCH && i + n < r->n; n++)
                batch[n] = (pl_rec_t){r->data + r->off[i + n], r->len[i + n], (int64_t)(i + n)};
            ok += pl_records(pl, batch, n, "bench", 0) == 0 ? n : 0;
            i += n - 1;
        }
    }
    return ok;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr,
                "usage: bench_core FILE [--decode-only | --single] [--limit N] [-c CONFIG]\n");
        return 2;
    }
    int mode = 1;
    size_t limit = SIZE_MAX;
    const char *config = NULL; /* default: no rules */
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--decode-only") == 0) mode = 0;
        if (strcmp(argv[i], "--single") == 0) mode = 2;
        if (strcmp(argv[i], "--limit") == 0 && i + 1 < argc) limit = strtoull(argv[++i], 0, 10);
        if (strcmp(argv[i], "-c") == 0 && i + 1 < argc) config = argv[++i];
    }
    recs_t r = {0};
    if (load(argv[1], &r, limit) < 0) return 1;
    cfg_t cfg;
    char err[256];
    if (cfg_load(&cfg, config, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    pl_t pl;
    if (pl_init(&pl, &cfg, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    pl.on_change = count_change;
    double t0 = cli_monotonic_s();
    uint64_t ok = bench_loop(&pl, &r, mode);
    double dt = cli_monotonic_s() - t0;
    printf("%s %s: %zu records, %llu ok, %llu changes, %.3f s, %.0f events/s, %.1f ns/event, "
           "avg %.0f bytes\n",
           argv[1],
           mode == 0   ? "decode"
           : mode == 1 ? "decode+apply"
                       : "decode+apply (single)",
           r.n, (unsigned long long)ok, (unsigned long long)changes, dt, r.n / dt, dt * 1e9 / r.n,
           (double)r.used / r.n);
    pl_free(&pl);
    cfg_free(&cfg);
    free(r.data);
    free(r.off);
    free(r.len);
    return 0;
}
