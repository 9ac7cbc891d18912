/* benchmarks/bench_csv.c: where a CSV replay's time goes. For one file and
 * mapping, each stage timed over whole passes of the file (best of N):
 *   read   CSV reader + mapping + contract JSON out (strm_csvsrc_next)
 *   decode the same, then strm_decode of each event (what pl_record adds
 *          before the core)
 *   replay the same, then pl_record (decode, watermark, core, changes
 *          encoded and dropped): what `segstream replay` runs, minus output
 * so decode - read is the cost of going through JSON instead of filling
 * seg_event_t directly.
 *   bench_csv FILE PRESET [--csv-map MAP] [--passes N] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cmd/cli.h"
#include "cmd/pipeline.h"
#include "stream/csv.h"

static int drop(void *ud, const seg_change_t *ch, const void *p, size_t len)
{
    (void)ud, (void)ch, (void)p, (void)len;
    return 0;
}

static int drop_dead(void *ud, const void *p, size_t len, const char *reason, const char *topic,
                     int32_t partition, int64_t offset)
{
    (void)ud, (void)p, (void)len, (void)reason, (void)topic, (void)partition, (void)offset;
    return 0;
}

/* One pass: 0 read only, 1 + decode, 2 + pl_record. Returns seconds. */
static double pass(const char *path, strm_csvmap_t *m, int stage, uint64_t *events)
{
    char err[512];
    cfg_t cfg;
    pl_t pl;
    if (cfg_load(&cfg, NULL, err, sizeof err) < 0 || pl_init(&pl, &cfg, err, sizeof err) < 0) {
        fprintf(stderr, "%s\n", err);
        exit(1);
    }
    pl.on_change = drop;
    pl.on_dead = drop_dead;
    strm_csvsrc_t *s = strm_csvsrc_open(path, m, 0, err, sizeof err);
    if (!s) {
        fprintf(stderr, "%s\n", err);
        exit(1);
    }
    if (strm_csvsrc_sorted(s)) cfg.max_future_skew_ms = INT64_MAX / 4;
    const char *rec, *why;
    size_t len;
    uint64_t line, n = 0;
    seg_event_t ev;
    int r;
    double t0 = cli_monotonic_s();
    while ((r = strm_csvsrc_next(s, &rec, &len, &why, &line)) != 0) {
        if (r < 0) continue;
        n++;
        if (stage == 1 && strm_decode(rec, len, 0, &ev, &why) < 0) {
            fprintf(stderr, "decode failed (%s): %.*s\n", why, (int)len, rec);
            exit(1);
        }
        if (stage == 2 && pl_record(&pl, rec, len, path, 0, (int64_t)line) < 0) exit(1);
    }
    double t = cli_monotonic_s() - t0;
    strm_csvsrc_close(s);
    pl_free(&pl);
    cfg_free(&cfg);
    *events = n;
    return t;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: bench_csv FILE PRESET [--csv-map MAP] [--passes N]\n");
        return 2;
    }
    char err[512];
    int passes = 5;
    strm_csvmap_t *m = strm_csvmap_new();
    if (strm_csvmap_preset(m, argv[2], err, sizeof err) < 0) {
        fprintf(stderr, "%s\n", err);
        return 2;
    }
    for (int i = 3; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--passes")) {
            passes = atoi(argv[i + 1]);
        } else if (!strcmp(argv[i], "--csv-map")) {
            if (strm_csvmap_parse(m, argv[i + 1], err, sizeof err) < 0) {
                fprintf(stderr, "%s\n", err);
                return 2;
            }
        }
    }
    static const char *const names[] = {"read+map+json", "+ strm_decode", "+ pl_record"};
    double best[3];
    uint64_t n = 0;
    for (int st = 0; st < 3; st++) {
        best[st] = 1e9;
        for (int p = 0; p < passes; p++) {
            double t = pass(argv[1], m, st, &n);
            if (t < best[st]) best[st] = t;
        }
        printf("%-14s %8.0f ns/event  %10.0f events/s  (%llu events, best of %d)\n", names[st],
               1e9 * best[st] / (double)n, (double)n / best[st], (unsigned long long)n, passes);
    }
    printf("JSON decode share of the replay: %.0f %%\n", 100 * (best[1] - best[0]) / best[2]);
    strm_csvmap_free(m);
    return 0;
}
