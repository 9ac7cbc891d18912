/* cmd/replay.c: `segstream replay`: re-runs a file of events (JSON lines, a
 * msgpack stream, or CSV through a column mapping) through the core, in the
 * file's own order (CSV: by time with --sort); W rises with it and stays at
 * the last event time at the end. Output depends only on the input and the
 * config: emitted_at is the watermark, not the clock. */
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include "cmd/cli.h"
#include "cmd/pipeline.h"
#include "stream/csv.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: segstream replay --input FILE --out FILE [options]\n"
               "  -i, --input FILE     events: JSON lines, a msgpack stream or CSV ('-' = stdin)\n"
               "      --input-format F json, msgpack or csv (default: csv for *.csv or with a\n"
               "                       CSV mapping; JSON and msgpack are told by the first byte)\n"
               "      --csv-map MAP    CSV column mapping: key=value,... or a file of entries\n"
               "                       (customer_id=COL,type=COL|'const',ts=COL,ts_format=...,\n"
               "                       amount=COL or price=COL,quantity=COL,...; see README)\n"
               "      --csv-preset P   a built-in mapping: cdnow, online-retail, rees46, taobao,\n"
               "                       olist (--csv-map entries then override it)\n"
               "      --sort           CSV: replay rows ordered by (time, line), not file order\n"
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

/* --csv-map: a file of entries when one exists at that path, else the
 * entries themselves. */
static int load_map(strm_csvmap_t *map, const char *arg, char *err, size_t errlen)
{
    FILE *f = strchr(arg, '=') ? NULL : fopen(arg, "r");
    if (!f) return strm_csvmap_parse(map, arg, err, errlen);
    char *text = NULL;
    size_t cap = 0, len = 0, got;
    char chunk[4096];
    while ((got = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (len + got + 1 > cap) {
            cap = (len + got + 1) * 2;
            char *p = realloc(text, cap);
            if (!p) {
                free(text);
                fclose(f);
                snprintf(err, errlen, "out of memory");
                return -1;
            }
            text = p;
        }
        memcpy(text + len, chunk, got);
        len += got;
    }
    fclose(f);
    if (!text) return 0;
    text[len] = 0;
    char inner[448];
    int rc = strm_csvmap_parse(map, text, inner, sizeof inner);
    if (rc < 0) snprintf(err, errlen, "%s: %s", arg, inner);
    free(text);
    return rc;
}

int cmd_replay(int argc, char **argv)
{
    static const struct option opts[] = {
        {"input", required_argument, 0, 'i'},   {"out", required_argument, 0, 'o'},
        {"state", required_argument, 0, 's'},   {"config", required_argument, 0, 'c'},
        {"from", required_argument, 0, 'F'},    {"to", required_argument, 0, 'T'},
        {"dlq", required_argument, 0, 'd'},     {"snapshot", required_argument, 0, 'S'},
        {"format", required_argument, 0, 'f'},  {"quiet", no_argument, 0, 'q'},
        {"help", no_argument, 0, 'h'},          {"input-format", required_argument, 0, 'I'},
        {"csv-map", required_argument, 0, 'M'}, {"csv-preset", required_argument, 0, 'P'},
        {"sort", no_argument, 0, 'O'},          {0, 0, 0, 0}};
    const char *input = NULL, *out = NULL, *state = "memory", *config = NULL, *dlq = NULL;
    const char *snapshot = NULL, *format = NULL, *in_format = NULL, *csv_map = NULL;
    const char *csv_preset = NULL;
    int64_t from = INT64_MIN, to = INT64_MAX;
    int quiet = 0, sort = 0, opt;
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
        case 'I':
            in_format = optarg;
            break;
        case 'M':
            csv_map = optarg;
            break;
        case 'P':
            csv_preset = optarg;
            break;
        case 'O':
            sort = 1;
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
    if (in_format && strcmp(in_format, "json") != 0 && strcmp(in_format, "msgpack") != 0 &&
        strcmp(in_format, "csv") != 0) {
        fprintf(stderr, "segstream replay: --input-format: json, msgpack or csv, not %s\n",
                in_format);
        return 2;
    }
    size_t ilen = strlen(input);
    int csv = in_format ? strcmp(in_format, "csv") == 0
                        : (csv_map || csv_preset ||
                           (ilen > 4 && strcasecmp(input + ilen - 4, ".csv") == 0));
    if (!csv && (csv_map || csv_preset || sort)) {
        fprintf(stderr, "segstream replay: --csv-map, --csv-preset and --sort apply to CSV "
                        "input (--input-format csv)\n");
        return 2;
    }
    if (csv && !csv_map && !csv_preset) {
        fprintf(stderr, "segstream replay: CSV input needs a column mapping: --csv-map MAP or "
                        "--csv-preset NAME (see --help)\n");
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
    strm_file_t *in = NULL;
    strm_csvmap_t *map = NULL;
    strm_csvsrc_t *csvin = NULL;
    char dlq_path[4096];
    if (pl_init(&pl, &cfg, err, sizeof(err)) < 0) {
        fprintf(stderr, "segstream replay: config: %s\n", err);
        cfg_free(&cfg);
        return 2;
    }
    if (csv) {
        if (!(map = strm_csvmap_new())) {
            fprintf(stderr, "segstream replay: out of memory\n");
            goto done;
        }
        if (csv_preset && strm_csvmap_preset(map, csv_preset, err, sizeof(err)) < 0) {
            fprintf(stderr, "segstream replay: --csv-preset: %s\n", err);
            rc = 2;
            goto done;
        }
        if (csv_map && load_map(map, csv_map, err, sizeof(err)) < 0) {
            fprintf(stderr, "segstream replay: --csv-map: %s\n", err);
            rc = 2;
            goto done;
        }
        if (!(csvin = strm_csvsrc_open(input, map, sort, err, sizeof(err)))) {
            fprintf(stderr, "segstream replay: %s\n", err);
            rc = 2;
            goto done;
        }
        /* Rows sorted by time cannot arrive ahead of their stream: a jump of
         * W is a real gap in the data (a shop closed over Christmas, a
         * sparse sample), not a producer's bad clock. */
        if (strm_csvsrc_sorted(csvin)) cfg.max_future_skew_ms = INT64_MAX / 4;
    } else if (!(in = strm_file_open(input, err, sizeof(err)))) {
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
    uint64_t line = 0;
    int r;
    while ((r = csvin ? strm_csvsrc_next(csvin, &rec, &len, &reason, &line)
                      : strm_file_next(in, &rec, &len, &reason)) != 0) {
        int64_t recno = (int64_t)(csvin ? line : strm_file_recno(in));
        if (r < 0) {
            if (pl_dead(&pl, rec, len, reason, input, 0, recno) < 0) goto done;
            if (!rec) break; /* framing lost: the rest cannot be read */
            continue;
        }
        if (pl_record(&pl, rec, len, input, 0, recno) < 0) {
            fprintf(stderr, "segstream replay: writing output failed\n");
            goto done;
        }
        if (progress && (pl.st.records & 0xfff) == 0) {
            double now = cli_monotonic_s();
            if (now - last >= 0.5) {
                double done;
                if (csvin) {
                    done = strm_csvsrc_progress(csvin);
                } else {
                    uint64_t size = strm_file_size(in), off = strm_file_offset(in);
                    done = size ? (double)off / (double)size : 0;
                }
                double rate = pl.st.records / (now - t0);
                double eta = done > 0 ? (now - t0) * (1 / done - 1) : 0;
                fprintf(stderr, "\r%" PRIu64 " events  %.0f/s  %.1f%%  eta %.0fs   ", pl.st.records,
                        rate, 100.0 * done, eta);
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
        if (csvin)
            fprintf(stderr,
                    "csv: %" PRIu64 " rows read, %" PRIu64 " merged into another row's event\n",
                    strm_csvsrc_rows(csvin), strm_csvsrc_merged(csvin));
        if (pl.st.dead && dlq) fprintf(stderr, "dead letters written to %s\n", dlq);
    }
    rc = 0;
done:
    if (in) strm_file_close(in);
    strm_csvsrc_close(csvin);
    strm_csvmap_free(map);
    if (sinks.out && sinks.out != stdout) fclose(sinks.out);
    if (sinks.dlq) fclose(sinks.dlq);
    pl_free(&pl);
    cfg_free(&cfg);
    return rc;
}
