/* cmd/replay.c: `segstream replay`: re-runs a file of events (JSON lines or
 * a msgpack stream) through the core, in the file's own order; W rises with
 * it and stays at the last event time at the end. Output depends only on
 * the input and the config: emitted_at is the watermark, not the clock. */
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cmd/cli.h"
#include "cmd/pipeline.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: segstream replay --input FILE --out FILE [options]\n"
               "  -i, --input FILE     events: JSON lines or a msgpack stream ('-' = stdin)\n"
               "  -o, --out FILE       change events, one per line ('-' = stdout)\n"
               "      --state memory   where customer state lives (memory: this process)\n"
               "  -c, --config FILE    YAML configuration (defaults otherwise)\n"
               "      --from T         skip events before T (ms or RFC 3339)\n"
               "      --to T           skip events at or after T\n"
               "      --dlq FILE       dead letters as JSON lines (default OUT.dlq)\n"
               "      --snapshot FILE  final segments, one CSV line per customer\n"
               "      --format F       change format: json (default) or msgpack\n"
               "  -q, --quiet          no progress and no summary\n");
}

typedef struct {
    FILE *out, *dlq;
    uint64_t dlq_n;
} sinks_t;

static int write_change(void *ud, const seg_change_t *ch, const void *p, size_t len)
{
    sinks_t *s = ud;
    (void)ch;
    if (fwrite(p, 1, len, s->out) != len) return -1;
    return putc('\n', s->out) == EOF ? -1 : 0;
}

static void json_str(FILE *f, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    putc('"', f);
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\')
            putc('\\', f), putc(ch, f);
        else if (ch < 0x20 || ch >= 0x7f)
            fprintf(f, "\\u00%c%c", hex[ch >> 4], hex[ch & 15]);
        else
            putc(ch, f);
    }
    putc('"', f);
}

/* Dead letters of a file keep the original bytes: as text when printable,
 * else hex-escaped byte by byte (\u00XX), so nothing is lost. */
static int write_dead(void *ud, const void *p, size_t len, const char *reason, const char *topic,
                      int32_t partition, int64_t offset)
{
    sinks_t *s = ud;
    s->dlq_n++;
    if (!s->dlq) return 0;
    fprintf(s->dlq, "{\"error\":\"%s\",\"topic\":", reason);
    json_str(s->dlq, topic, strlen(topic));
    fprintf(s->dlq, ",\"partition\":%d,\"offset\":%" PRId64 ",\"payload\":", partition, offset);
    json_str(s->dlq, p, len);
    return fputs("}\n", s->dlq) == EOF ? -1 : 0;
}

/* Records go to the pipeline in batches (pl_records decodes ahead within
 * one): copied, since the file's buffer is reused by the next read. */
#define BATCH_RECORDS 256
#define BATCH_BYTES   (1u << 20) /* flushed past this, however few records */

typedef struct batch {
    pl_rec_t rec[BATCH_RECORDS];
    size_t off[BATCH_RECORDS];
    char *data;
    size_t n, used, cap;
} batch_t;

static int batch_add(batch_t *b, const char *rec, size_t len, int64_t recno)
{
    if (b->used + len > b->cap) {
        size_t cap = b->cap ? b->cap : BATCH_BYTES;
        while (cap < b->used + len) cap *= 2;
        char *d = realloc(b->data, cap);
        if (!d) return -1;
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->used, rec, len);
    b->off[b->n] = b->used;
    b->rec[b->n].len = len;
    b->rec[b->n++].offset = recno;
    b->used += len;
    return 0;
}

static int batch_flush(pl_t *pl, batch_t *b, const char *topic)
{
    for (size_t i = 0; i < b->n; i++) b->rec[i].buf = b->data + b->off[i];
    int rc = b->n ? pl_records(pl, b->rec, b->n, topic, 0) : 0;
    b->n = b->used = 0;
    return rc;
}

int cmd_replay(int argc, char **argv)
{
    static const struct option opts[] = {
        {"input", required_argument, 0, 'i'},  {"out", required_argument, 0, 'o'},
        {"state", required_argument, 0, 's'},  {"config", required_argument, 0, 'c'},
        {"from", required_argument, 0, 'F'},   {"to", required_argument, 0, 'T'},
        {"dlq", required_argument, 0, 'd'},    {"snapshot", required_argument, 0, 'S'},
        {"format", required_argument, 0, 'f'}, {"quiet", no_argument, 0, 'q'},
        {"help", no_argument, 0, 'h'},         {0, 0, 0, 0}};
    const char *input = NULL, *out = NULL, *state = "memory", *config = NULL, *dlq = NULL;
    const char *snapshot = NULL, *format = NULL;
    int64_t from = INT64_MIN, to = INT64_MAX;
    int quiet = 0, opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "i:o:c:qh", opts, NULL)) != -1) {
        switch (opt) {
        case 'i':
            input = optarg;
            break;
        case 'o':
            out = optarg;
            break;
        case 's':
            state = optarg;
            break;
        case 'c':
            config = optarg;
            break;
        case 'd':
            dlq = optarg;
            break;
        case 'S':
            snapshot = optarg;
            break;
        case 'f':
            format = optarg;
            break;
        case 'q':
            quiet = 1;
            break;
        case 'F':
            if (cli_parse_time(optarg, &from) < 0) {
                fprintf(stderr, "segstream replay: --from: not a time: %s\n", optarg);
                return 2;
            }
            break;
        case 'T':
            if (cli_parse_time(optarg, &to) < 0) {
                fprintf(stderr, "segstream replay: --to: not a time: %s\n", optarg);
                return 2;
            }
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (!input || !out) {
        fprintf(stderr, "segstream replay: --input and --out are required\n");
        usage(stderr);
        return 2;
    }
    if (strcmp(state, "memory") != 0) {
        fprintf(stderr,
                "segstream replay: --state %s: only 'memory' is available in this "
                "version\n",
                state);
        return 2;
    }
    if (strncmp(input, "kafka:", 6) == 0 || strncmp(out, "kafka:", 6) == 0) {
        fprintf(stderr, "segstream replay: kafka: inputs and outputs are not available in this "
                        "version; use files\n");
        return 2;
    }
    if (format && strcmp(format, "json") != 0 && strcmp(format, "msgpack") != 0) {
        fprintf(stderr, "segstream replay: --format: json or msgpack, not %s\n", format);
        return 2;
    }

    char err[512];
    cfg_t cfg;
    if (cfg_load(&cfg, config, err, sizeof(err)) < 0) {
        fprintf(stderr, "segstream replay: config: %s\n", err);
        cfg_free(&cfg);
        return 2;
    }
    if (cfg.log_level) cli_set_log_level(cfg.log_level);
    if (format) {
        free(cfg.change_format);
        cfg.change_format = strdup(format);
    }

    int rc = 1;
    pl_t pl;
    sinks_t sinks = {0};
    batch_t batch = {0};
    strm_file_t *in = NULL;
    char dlq_path[4096];
    if (pl_init(&pl, &cfg, err, sizeof(err)) < 0) {
        fprintf(stderr, "segstream replay: config: %s\n", err);
        cfg_free(&cfg);
        return 2;
    }
    in = strm_file_open(input, err, sizeof(err));
    if (!in) {
        fprintf(stderr, "segstream replay: %s\n", err);
        goto done;
    }
    sinks.out = strcmp(out, "-") == 0 ? stdout : fopen(out, "wb");
    if (!sinks.out) {
        fprintf(stderr, "segstream replay: %s: cannot write\n", out);
        goto done;
    }
    if (!dlq && strcmp(out, "-") != 0) {
        snprintf(dlq_path, sizeof(dlq_path), "%s.dlq", out);
        dlq = dlq_path;
    }
    if (dlq && !(sinks.dlq = fopen(dlq, "wb"))) {
        fprintf(stderr, "segstream replay: %s: cannot write\n", dlq);
        goto done;
    }
    pl.on_change = write_change;
    pl.change_ud = &sinks;
    pl.on_dead = write_dead;
    pl.dead_ud = &sinks;
    pl.from = from;
    pl.to = to;

    int progress = !quiet && isatty(2);
    double t0 = cli_monotonic_s(), last = t0;
    const char *rec, *reason;
    size_t len;
    int r;
    for (;;) {
        /* a framing error leaves rec as it was: never the previous record's
         * pointer, which the file's next read may have freed */
        rec = NULL;
        len = 0;
        r = strm_file_next(in, &rec, &len, &reason);
        int64_t recno = (int64_t)strm_file_recno(in);
        if (r > 0 && batch_add(&batch, rec, len, recno) < 0) {
            fprintf(stderr, "segstream replay: out of memory\n");
            goto done;
        }
        if (r > 0 && batch.n < BATCH_RECORDS && batch.used < BATCH_BYTES) continue;
        /* a full batch, a framing error (in order: after the records before
         * it) or the end */
        if (batch_flush(&pl, &batch, input) < 0) {
            fprintf(stderr, "segstream replay: writing output failed\n");
            goto done;
        }
        if (r == 0) break;
        if (r < 0) {
            if (pl_dead(&pl, rec, len, reason, input, 0, recno) < 0) goto done;
            if (!rec) break; /* framing lost: the rest cannot be read */
            continue;
        }
        if (progress) {
            double now = cli_monotonic_s();
            if (now - last >= 0.5) {
                uint64_t size = strm_file_size(in), off = strm_file_offset(in);
                double rate = pl.st.records / (now - t0);
                double eta = size && off ? (now - t0) * ((double)size / off - 1) : 0;
                fprintf(stderr, "\r%" PRIu64 " events  %.0f/s  %.1f%%  eta %.0fs   ", pl.st.records,
                        rate, size ? 100.0 * off / size : 0.0, eta);
                last = now;
            }
        }
    }
    if (progress) fprintf(stderr, "\r%*s\r", 60, "");
    if (fflush(sinks.out) != 0 || (sinks.dlq && fflush(sinks.dlq) != 0)) {
        fprintf(stderr, "segstream replay: writing output failed\n");
        goto done;
    }
    if (snapshot) {
        FILE *sf = fopen(snapshot, "wb");
        if (!sf || pl_snapshot_csv(&pl, sf) < 0 || fclose(sf) != 0) {
            fprintf(stderr, "segstream replay: %s: cannot write snapshot\n", snapshot);
            goto done;
        }
    }
    if (!quiet) {
        pl_summary(&pl, stderr, cli_monotonic_s() - t0);
        if (pl.st.skipped)
            fprintf(stderr, "skipped outside [from, to): %" PRIu64 "\n", pl.st.skipped);
        if (pl.st.dead && dlq) fprintf(stderr, "dead letters written to %s\n", dlq);
    }
    rc = 0;
done:
    if (in) strm_file_close(in);
    if (sinks.out && sinks.out != stdout) fclose(sinks.out);
    if (sinks.dlq) fclose(sinks.dlq);
    free(batch.data);
    pl_free(&pl);
    cfg_free(&cfg);
    return rc;
}
