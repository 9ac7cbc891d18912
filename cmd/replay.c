/* cmd/replay.c: `segstream replay`: re-runs events through the core into a
 * namespace of its own. A file (JSON lines, a msgpack stream, or CSV
 * through a column mapping) is applied in its own order (CSV: by time with
 * --sort); a topic (replay_kafka.c) is read over a range of event
 * time and merged by event time. W rises with the input and stays at the
 * last event time at the end. Output depends only on the input, the config
 * and the starting model: emitted_at is the watermark, not the clock. Owns
 * the command line, the guard that keeps a replay out of the live
 * namespaces, file outputs, the model flags and the summary. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <msgpack.h>
#include "cmd/cli.h"
#include "cmd/replay.h"
#include "state/pack.h"
#include "stream/csv.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: segstream replay --input FILE|kafka:TOPIC --out FILE|kafka:TOPIC [options]\n"
               "  -i, --input IN        events: a file of JSON lines or a msgpack stream ('-' =\n"
               "                        stdin), or kafka:TOPIC (every partition up to its end\n"
               "                        offset at start, merged by event time)\n"
               "      --input-format F  json, msgpack or csv (default: csv for *.csv or with a\n"
               "                        CSV mapping; JSON and msgpack are told by the first byte)\n"
               "      --csv-map MAP     CSV column mapping: key=value,... or a file of entries\n"
               "                        (customer_id=COL,type=COL|'const',ts=COL,ts_format=...,\n"
               "                        amount=COL or price=COL,quantity=COL,...; see README)\n"
               "      --csv-preset P    a built-in mapping: cdnow, online-retail, rees46, taobao,\n"
               "                        olist (--csv-map entries then override it)\n"
               "      --sort            CSV: replay rows ordered by (time, line), not file order\n"
               "  -o, --out OUT         change events: a file, one per line ('-' = stdout), or\n"
               "                        kafka:TOPIC (keyed by customer id)\n"
               "      --brokers B       bootstrap servers for kafka: (default kafka.brokers)\n"
               "      --state S         where the final state goes: memory (default: nowhere) or\n"
               "                        redis://[user[:pass]@]HOST[:PORT][/DB] (port 6379)\n"
               "      --prefix P        Redis key prefix for --state (not the live redis.prefix);\n"
               "                        default seg-replay: (from redis.prefix seg:), replaced\n"
               "                        by each replay without --prefix\n"
               "      --replace         --state: delete the keys under --prefix first\n"
               "  -c, --config FILE     YAML configuration (defaults otherwise)\n"
               "      --from T          skip events before T (event time: ms, RFC 3339, or a\n"
               "                        date for its midnight UTC)\n"
               "      --to T            skip events at or after T\n"
               "      --dlq D           dead letters: FILE (JSON lines; default OUT.dlq),\n"
               "                        '-' (stdout) or kafka:TOPIC (default for a kafka:\n"
               "                        OUT: TOPIC.dlq); with none (--out -, /dev/null, a\n"
               "                        pipe) they go to stderr, -q or not\n"
               "      --allow-live      allow writing to the live change/dead-letter topics\n"
               "                        or the live Redis prefix of the config\n"
               "      --model M         start from a saved model: a file (--save-model) or\n"
               "                        redis://HOST[:PORT][/DB|/PREFIX] (PREFIX model; default\n"
               "                        the live redis.prefix); default: learn afresh\n"
               "      --freeze-model    assign customers to the model's centroids, never move\n"
               "                        them (needs --model)\n"
               "      --save-model FILE write the final model (msgpack, as seg:model; '-' =\n"
               "                        stdout)\n"
               "      --dump FILE       kafka: input: write the records applied, in the order\n"
               "                        applied (replaying FILE gives the same changes; '-' =\n"
               "                        stdout)\n"
               "      --seek-by-time    kafka: input: record timestamps are never earlier than\n"
               "                        event time (gen's are equal): start each partition at\n"
               "                        offsets-for-times(--from - input.max_future_skew)\n"
               "                        instead of its beginning\n"
               "      --watermarks T    kafka: input: the live run's wall-clock advances of W\n"
               "                        (default watermark.control_topic; 'none': event time\n"
               "                        only), applied where they happened live\n"
               "      --snapshot FILE   final segments, one CSV line per customer ('-' = stdout)\n"
               "      --format F        change format: json (default) or msgpack\n"
               "  -q, --quiet           no progress and no summary\n"
               "Exit status: 0 done; 1 a failure while running (reading the input or\n"
               "a --model, writing an output, Redis, a --prefix that is not empty\n"
               "without --replace); 2 a bad invocation or config, before anything is\n"
               "read or written. The reason is on stderr either way.\n");
}

/* ---------------- files ---------------- */

static int write_change(void *ud, const seg_change_t *ch, const void *p, size_t len)
{
    replay_t *rp = ud;
    (void)ch;
    if (fwrite(p, 1, len, rp->out) != len) return -1;
    /* JSON lines; msgpack is a plain stream of maps, which a newline would break */
    return rp->pl.change_msgpack || putc('\n', rp->out) != EOF ? 0 : -1;
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
    replay_t *rp = ud;
    if (!rp->dlq) return 0;
    fprintf(rp->dlq, "{\"error\":\"%s\",\"topic\":", reason);
    json_str(rp->dlq, topic, strlen(topic));
    fprintf(rp->dlq, ",\"partition\":%d,\"offset\":%" PRId64 ",\"payload\":", partition, offset);
    json_str(rp->dlq, p, len);
    return fputs("}\n", rp->dlq) == EOF ? -1 : 0;
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

#define EARLY_DEAD 10000 /* records before a file that applies none is said to */

/* What to try when a file's records apply none, by how it was framed. */
static const char *framing_hint(const replay_t *rp)
{
    return rp->framing < 0 ? "if it is a msgpack stream or JSON lines that begins with a stray "
                             "byte, give --input-format msgpack|json"
           : rp->framing   ? "it was read as --input-format msgpack: is it a msgpack stream?"
                           : "it was read as --input-format json: is it JSON lines?";
}

int rp_input_file(replay_t *rp)
{
    pl_t *pl = &rp->pl;
    char err[512];
    strm_file_t *in = NULL;
    if (!rp->csv && !(in = strm_file_open(rp->input, err, sizeof(err)))) {
        fprintf(stderr, "segstream replay: %s\n", err);
        return -1;
    }
    if (in) strm_file_framing(in, rp->framing);
    batch_t batch = {0}; /* 8 KiB of record slots, and the bytes they point into */
    int rc = -1;
    double last = rp->t0;
    const char *rec, *reason;
    size_t len;
    uint64_t line = 0;
    int r, warned = 0;
    for (;;) {
        /* a framing error may leave nothing to point at: never the previous
         * record's bytes, which the next read may have freed */
        rec = NULL;
        len = 0;
        r = rp->csv ? strm_csvsrc_next(rp->csv, &rec, &len, &reason, &line)
                    : strm_file_next(in, &rec, &len, &reason);
        int64_t recno = (int64_t)(rp->csv ? line : strm_file_recno(in));
        if (r > 0 && batch_add(&batch, rec, len, recno) < 0) {
            fprintf(stderr, "segstream replay: out of memory\n");
            goto done;
        }
        if (r > 0 && batch.n < BATCH_RECORDS && batch.used < BATCH_BYTES) continue;
        /* a full batch, a bad record (in order: after the records before
         * it) or the end */
        if (batch_flush(pl, &batch, rp->input) < 0) {
            fprintf(stderr, "segstream replay: writing output failed\n");
            goto done;
        }
        if (r == 0) break;
        /* a file read in the wrong format is all dead letters (JSON lines
         * read as msgpack give one per few bytes): said early, not only
         * after the whole file has been turned into them */
        if (!warned && !rp->csv && pl->st.records >= EARLY_DEAD && !pl->st.applied &&
            !pl->st.duplicates) {
            warned = 1;
            fprintf(stderr,
                    "%ssegstream replay: warning: none of the first %" PRIu64
                    " records of %s could be applied; %s\n",
                    rp->progress ? "\n" : "", pl->st.records, rp->input, framing_hint(rp));
        }
        /* the input itself failed (EIO, a directory): not a record, and
         * what is left unread must not pass for the whole input */
        if (r < 0 && (strcmp(reason, "read_error") == 0 || strcmp(reason, "out_of_memory") == 0)) {
            int e = strcmp(reason, "out_of_memory") == 0 ? ENOMEM
                    : in && strm_file_errno(in)          ? strm_file_errno(in)
                                                         : EIO;
            fprintf(stderr, "segstream replay: %s: reading failed after record %" PRId64 ": %s\n",
                    rp->input, recno, strerror(e));
            goto done;
        }
        /* a bad record is a dead letter (in a msgpack file, the bytes up to
         * where a record can start again, and reading goes on there) */
        if (r < 0) {
            pl->st.records++; /* counted like a record that does not decode */
            if (pl_dead(pl, rec ? rec : "", len, reason, rp->input, 0, recno) < 0) goto done;
        }
        if (rp->progress) {
            double now = cli_monotonic_s();
            if (now - last >= 0.5) {
                double done;
                if (rp->csv) {
                    done = strm_csvsrc_progress(rp->csv);
                } else {
                    uint64_t size = strm_file_size(in), off = strm_file_offset(in);
                    done = size ? (double)off / (double)size : 0;
                }
                double rate = pl->st.records / (now - rp->t0);
                double eta = done > 0 ? (now - rp->t0) * (1 / done - 1) : 0;
                char at[32] = "-"; /* where in event time */
                if (pl->has_W) cli_fmt_time(pl->W, at, sizeof(at));
                fprintf(stderr, "\r%" PRIu64 " events  %.0f/s  at %s  %.1f%%  eta %.0fs   ",
                        pl->st.records, rate, at, 100.0 * done, eta);
                last = now;
            }
        }
    }
    rc = 0;
done:
    if (rp->progress) fprintf(stderr, "\r%*s\r", 60, "");
    if (in) strm_file_close(in);
    free(batch.data);
    return rc;
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

/* Says that output file (given by flag, or OUT.dlq for auto_dlq) is the
 * file other names. */
static void refuse_same(const char *flag, const char *file, int auto_dlq, const char *other)
{
    if (auto_dlq)
        fprintf(stderr,
                "segstream replay: dead letters of --out would go to %s (OUT.dlq), the file %s "
                "names: give --dlq\n",
                file, other);
    else
        fprintf(stderr, "segstream replay: %s %s is the file %s names too\n", flag, file, other);
}

/* ---------------- the model ---------------- */

const char *rp_model_where(const replay_t *rp, const char *err, char *buf, size_t len)
{
    /* the model's refusals that name a config key (clusters.k, clusters.warmup):
     * say which configuration that value came from */
    const char *keys[][2] = {{"clusters.k ", "SEGSTREAM_CLUSTERS_K"},
                             {"clusters.warmup ", "SEGSTREAM_CLUSTERS_WARMUP"}};
    buf[0] = 0;
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        if (!strstr(err, keys[i][0])) continue;
        if (getenv(keys[i][1]))
            snprintf(buf, len, " (%.*s from env %s)", (int)strlen(keys[i][0]) - 1, keys[i][0],
                     keys[i][1]);
        else if (rp->cfg.source && strcmp(rp->cfg.source, "(defaults)") != 0)
            snprintf(buf, len, " (config %s)", rp->cfg.source);
        else
            snprintf(buf, len, " (the default config; give -c FILE)");
        break;
    }
    return buf;
}

static int model_load_file(replay_t *rp, const char *path)
{
    FILE *f = fopen(path, "rb");
    char *data = NULL;
    long size = -1;
    if (f && fseek(f, 0, SEEK_END) == 0) size = ftell(f);
    if (!f || size < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fprintf(stderr, "segstream replay: --model %s: cannot read\n", path);
        if (f) fclose(f);
        return -1;
    }
    data = malloc(size ? (size_t)size : 1);
    int ok = data && fread(data, 1, (size_t)size, f) == (size_t)size;
    fclose(f);
    char err[256];
    if (!ok || st_unpack_model(rp->pl.seg, data, (size_t)size, err, sizeof(err)) < 0) {
        char where[1100] = "";
        if (ok) rp_model_where(rp, err, where, sizeof(where));
        fprintf(stderr, "segstream replay: --model %s: %s%s\n", path, ok ? err : "cannot read",
                where);
        free(data);
        return -1;
    }
    free(data);
    return 0;
}

static int model_save_file(replay_t *rp, const char *path)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    int rc = -1;
    FILE *f = NULL;
    if (st_pack_model(rp->pl.seg, &sb) == 0 && (f = cli_open_out(path)) != NULL &&
        fwrite(sb.data, 1, sb.size, f) == sb.size)
        rc = 0;
    if (f && cli_close_out(f) != 0) rc = -1;
    if (rc < 0) fprintf(stderr, "segstream replay: --save-model %s: cannot write\n", path);
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

/* --model redis://HOST:PORT[/DB|/PREFIX]: a path of digits is the
 * database (as in redis.url), anything else the key prefix. base gets the
 * URL without a prefix; *prefix the prefix, or NULL for the default. */
static void model_redis_split(const char *url, char *base, size_t len, const char **prefix)
{
    const char *slash = strchr(url + strlen("redis://"), '/');
    snprintf(base, len, "%s", url);
    *prefix = NULL;
    if (slash && slash[1] && strspn(slash + 1, "0123456789") != strlen(slash + 1)) {
        if ((size_t)(slash - url) < len) base[slash - url] = 0;
        *prefix = slash + 1;
    }
}

static int model_load_redis(replay_t *rp, const char *url)
{
    char base[1024];
    const char *prefix;
    model_redis_split(url, base, sizeof base, &prefix);
    if (!prefix) prefix = rp->cfg.redis_prefix ? rp->cfg.redis_prefix : "seg:";
    return rp_redis_model(rp, base, prefix);
}

/* ---------------- the command ---------------- */

static int is_topic(const char *s)
{
    return s && strncmp(s, "kafka:", 6) == 0;
}

/* A replay writes into a namespace of its own; the live one (the config's
 * change and dead-letter topics, its input topics, its Redis prefix) only
 * with --allow-live. */
static int guard_topic(const replay_t *rp, const char *flag, const char *topic, int allow_live)
{
    const cfg_t *c = &rp->cfg;
    const char *live = NULL;
    if (strcmp(topic, c->changes_topic) == 0) live = "kafka.changes_topic";
    if (strcmp(topic, c->dlq_topic) == 0) live = "kafka.dlq_topic";
    for (int i = 0; i < c->n_topics; i++)
        if (strcmp(topic, c->topics[i]) == 0) live = "kafka.topics";
    if (is_topic(rp->input) && strcmp(topic, rp->input + 6) == 0) {
        fprintf(stderr, "segstream replay: %s kafka:%s is the input topic\n", flag, topic);
        return -1;
    }
    if (live && !allow_live) {
        fprintf(stderr,
                "segstream replay: %s kafka:%s is the live namespace (%s in %s); a replay "
                "writes there only with --allow-live\n",
                flag, topic, live, c->source);
        return -1;
    }
    return 0;
}

int cmd_replay(int argc, char **argv)
{
    enum {
        O_STATE = 256,
        O_FROM,
        O_TO,
        O_DLQ,
        O_SNAPSHOT,
        O_FORMAT,
        O_BROKERS,
        O_PREFIX,
        O_REPLACE,
        O_ALLOW_LIVE,
        O_MODEL,
        O_SAVE_MODEL,
        O_FREEZE,
        O_DUMP,
        O_SEEK,
        O_WATERMARKS,
        O_INPUT_FORMAT,
        O_CSV_MAP,
        O_CSV_PRESET,
        O_SORT
    };
    static const struct option opts[] = {{"input", required_argument, 0, 'i'},
                                         {"out", required_argument, 0, 'o'},
                                         {"config", required_argument, 0, 'c'},
                                         {"quiet", no_argument, 0, 'q'},
                                         {"help", no_argument, 0, 'h'},
                                         {"state", required_argument, 0, O_STATE},
                                         {"from", required_argument, 0, O_FROM},
                                         {"to", required_argument, 0, O_TO},
                                         {"dlq", required_argument, 0, O_DLQ},
                                         {"snapshot", required_argument, 0, O_SNAPSHOT},
                                         {"format", required_argument, 0, O_FORMAT},
                                         {"brokers", required_argument, 0, O_BROKERS},
                                         {"prefix", required_argument, 0, O_PREFIX},
                                         {"replace", no_argument, 0, O_REPLACE},
                                         {"allow-live", no_argument, 0, O_ALLOW_LIVE},
                                         {"model", required_argument, 0, O_MODEL},
                                         {"save-model", required_argument, 0, O_SAVE_MODEL},
                                         {"freeze-model", no_argument, 0, O_FREEZE},
                                         {"dump", required_argument, 0, O_DUMP},
                                         {"seek-by-time", no_argument, 0, O_SEEK},
                                         {"watermarks", required_argument, 0, O_WATERMARKS},
                                         {"input-format", required_argument, 0, O_INPUT_FORMAT},
                                         {"csv-map", required_argument, 0, O_CSV_MAP},
                                         {"csv-preset", required_argument, 0, O_CSV_PRESET},
                                         {"sort", no_argument, 0, O_SORT},
                                         {0, 0, 0, 0}};
    static replay_t R; /* large (the pipeline); one replay per process */
    replay_t *rp = &R;
    memset(rp, 0, sizeof(*rp));
    const char *out = NULL, *state = "memory", *config = NULL, *dlq = NULL, *snapshot = NULL;
    const char *format = NULL, *prefix = NULL, *model = NULL, *save_model = NULL;
    int64_t from = INT64_MIN, to = INT64_MAX;
    const char *in_format = NULL, *csv_map = NULL, *csv_preset = NULL;
    int replace = 0, allow_live = 0, freeze = 0, sort = 0, opt;
    strm_csvmap_t *map = NULL;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "i:o:c:qh", opts, NULL)) != -1) {
        switch (opt) {
        case 'i':
            rp->input = optarg;
            break;
        case 'o':
            out = optarg;
            break;
        case 'c':
            config = optarg;
            break;
        case 'q':
            rp->quiet = 1;
            break;
        case O_STATE:
            state = optarg;
            break;
        case O_DLQ:
            dlq = optarg;
            break;
        case O_SNAPSHOT:
            snapshot = optarg;
            break;
        case O_FORMAT:
            format = optarg;
            break;
        case O_BROKERS:
            rp->brokers = optarg;
            break;
        case O_PREFIX:
            prefix = optarg;
            break;
        case O_REPLACE:
            replace = 1;
            break;
        case O_ALLOW_LIVE:
            allow_live = 1;
            break;
        case O_MODEL:
            model = optarg;
            break;
        case O_SAVE_MODEL:
            save_model = optarg;
            break;
        case O_FREEZE:
            freeze = 1;
            break;
        case O_DUMP:
            rp->dump = optarg;
            break;
        case O_SEEK:
            rp->seek_by_time = 1;
            break;
        case O_WATERMARKS:
            rp->watermarks = optarg;
            break;
        case O_INPUT_FORMAT:
            in_format = optarg;
            break;
        case O_CSV_MAP:
            csv_map = optarg;
            break;
        case O_CSV_PRESET:
            csv_preset = optarg;
            break;
        case O_SORT:
            sort = 1;
            break;
        case O_FROM:
        case O_TO:
            if (cli_parse_time(optarg, opt == O_FROM ? &from : &to) < 0) {
                fprintf(stderr, "segstream replay: --%s: not a time: %s\n",
                        opt == O_FROM ? "from" : "to", optarg);
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
    const char *files[][2] = {{"--input", rp->input},
                              {"--out", out},
                              {"--dlq", dlq},
                              {"--snapshot", snapshot},
                              {"--save-model", save_model},
                              {"--model", model},
                              {"--dump", rp->dump},
                              {"--csv-map", csv_map},
                              {"--config", config}};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        if (cli_file_arg("replay", files[i][0], files[i][1]) < 0) return 2;
    if (optind < argc) {
        fprintf(stderr, "segstream replay: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (!rp->input || !out) {
        fprintf(stderr, "segstream replay: --input and --out are required\n");
        usage(stderr);
        return 2;
    }
    const char *redis_state = NULL;
    if (strncmp(state, "redis://", 8) == 0) {
        redis_state = state;
    } else if (strcmp(state, "memory") != 0) {
        fprintf(stderr, "segstream replay: --state: memory or redis://HOST:PORT, not %s\n", state);
        return 2;
    }
    /* a URL that cannot name a server is a bad invocation, said before
     * anything is opened */
    char why[256], base[1024];
    cfg_redis_url_t u;
    if (redis_state && cfg_parse_redis_url(redis_state, &u, why, sizeof why) < 0) {
        fprintf(stderr, "segstream replay: --state %s: %s\n", redis_state, why);
        return 2;
    }
    const char *model_prefix;
    if (model && strncmp(model, "redis://", 8) == 0) {
        model_redis_split(model, base, sizeof base, &model_prefix);
        if (cfg_parse_redis_url(base, &u, why, sizeof why) < 0 ||
            (model_prefix && cfg_check_prefix(model_prefix, why, sizeof why) < 0)) {
            fprintf(stderr, "segstream replay: --model %s: %s\n", model, why);
            return 2;
        }
    }
    if ((prefix || replace) && !redis_state) {
        fprintf(stderr, "segstream replay: --prefix and --replace go with --state redis://\n");
        return 2;
    }
    if (prefix && cfg_check_prefix(prefix, why, sizeof why) < 0) {
        fprintf(stderr, "segstream replay: --prefix: %s\n", why);
        return 2;
    }
    if (format && strcmp(format, "json") != 0 && strcmp(format, "msgpack") != 0) {
        fprintf(stderr, "segstream replay: --format: json or msgpack, not %s\n", format);
        return 2;
    }
    if (freeze && !model) {
        fprintf(stderr, "segstream replay: --freeze-model needs --model (a model to keep)\n");
        return 2;
    }
    if ((rp->dump || rp->seek_by_time || rp->watermarks) && !is_topic(rp->input)) {
        fprintf(
            stderr,
            "segstream replay: --dump, --seek-by-time and --watermarks are for a kafka: input\n");
        return 2;
    }
    if (from >= to) {
        fprintf(stderr, "segstream replay: --from must be before --to\n");
        return 2;
    }
    if (in_format && strcmp(in_format, "json") != 0 && strcmp(in_format, "msgpack") != 0 &&
        strcmp(in_format, "csv") != 0) {
        fprintf(stderr, "segstream replay: --input-format: json, msgpack or csv, not %s\n",
                in_format);
        return 2;
    }
    rp->framing = !in_format || strcmp(in_format, "csv") == 0 ? -1
                  : strcmp(in_format, "msgpack") == 0         ? 1
                                                              : 0;
    size_t ilen = strlen(rp->input);
    int csv = in_format ? strcmp(in_format, "csv") == 0
                        : (csv_map || csv_preset ||
                           (ilen > 4 && strcasecmp(rp->input + ilen - 4, ".csv") == 0));
    if (csv && is_topic(rp->input)) {
        fprintf(stderr, "segstream replay: CSV input is for files, not kafka: topics\n");
        return 2;
    }
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
    /* '-' is stdout for every file a replay writes; only one may have it */
    {
        const char *to_stdout[][2] = {{"--out", out},
                                      {"--dlq", dlq},
                                      {"--snapshot", snapshot},
                                      {"--save-model", save_model},
                                      {"--dump", rp->dump}};
        const char *first = NULL;
        for (size_t i = 0; i < sizeof to_stdout / sizeof to_stdout[0]; i++) {
            if (!to_stdout[i][1] || strcmp(to_stdout[i][1], "-") != 0) continue;
            if (first) {
                fprintf(stderr,
                        "segstream replay: %s - and %s - would share stdout: give one a "
                        "file%s\n",
                        first, to_stdout[i][0],
                        i == 1 ? " (or leave --dlq out: dead letters then go to stderr)" : "");
                return 2;
            }
            first = to_stdout[i][0];
        }
    }
    const char *topics[] = {rp->input, out, dlq};
    const char *topic_flags[] = {"--input", "--out", "--dlq"};
    for (int i = 0; i < 3; i++) {
        if (is_topic(topics[i]) && !topics[i][6]) {
            fprintf(stderr, "segstream replay: %s: kafka:TOPIC needs a topic name\n", topics[i]);
            return 2;
        }
        /* a name Kafka refuses would only show as a metadata wait or a
         * failed delivery */
        if (is_topic(topics[i]) && cfg_check_topic(topics[i] + 6, why, sizeof why) < 0) {
            fprintf(stderr, "segstream replay: %s %s: %s\n", topic_flags[i], topics[i], why);
            return 2;
        }
    }
    if (rp->watermarks && strcmp(rp->watermarks, "none") != 0 &&
        cfg_check_topic(rp->watermarks, why, sizeof why) < 0) {
        fprintf(stderr, "segstream replay: --watermarks %s: %s\n", rp->watermarks, why);
        return 2;
    }
    /* --brokers as kafka.brokers takes it: one librdkafka cannot use would
     * only show as a metadata wait */
    if (rp->brokers && cfg_check_brokers(rp->brokers, why, sizeof why) < 0) {
        fprintf(stderr, "segstream replay: --brokers: %s\n", why);
        return 2;
    }
    /* every file a replay writes, against the files it reads and against
     * each other: one opened over another empties it (an input before a
     * record is read, an output written before or after it), whatever the
     * order they are opened in. The dead letters' default file (OUT.dlq
     * beside a regular --out) counts too, and so do the config and a
     * --csv-map file: read before any output is opened, but lost to it. */
    char auto_dlq[4096] = "";
    struct stat so;
    if (!dlq && !is_topic(out) && strcmp(out, "-") != 0 &&
        (stat(out, &so) != 0 || S_ISREG(so.st_mode)))
        snprintf(auto_dlq, sizeof auto_dlq, "%s.dlq", out);
    /* --csv-map is a file when it has no '=' and one is there (load_map) */
    const char *map_file =
        csv && csv_map && !strchr(csv_map, '=') && stat(csv_map, &so) == 0 ? csv_map : NULL;
    enum {
        F_INPUT,
        F_MODEL,
        F_CONFIG,
        F_CSV_MAP,
        F_OUT, /* the outputs from here on */
        F_DLQ,
        F_SNAPSHOT,
        F_SAVE_MODEL,
        F_DUMP,
        F_AUTO_DLQ,
        F_N
    };
    const char *flag[F_N] = {"--input", "--model",    "--config",     "--csv-map", "--out",
                             "--dlq",   "--snapshot", "--save-model", "--dump",    "--out"};
    const char *file[F_N] = {rp->input, model && strncmp(model, "redis://", 8) != 0 ? model : NULL,
                             config,    map_file,
                             out,       dlq,
                             snapshot,  save_model,
                             rp->dump,  *auto_dlq ? auto_dlq : NULL};
    for (int i = F_OUT; i < F_N; i++)
        for (int j = 0; j < i; j++) {
            /* the model is read whole before anything is written: saving
             * over it updates it */
            if ((i == F_SAVE_MODEL && j == F_MODEL) || !cli_same_file(file[i], file[j])) continue;
            refuse_same(flag[i], file[i], i == F_AUTO_DLQ, flag[j]);
            return 2;
        }

    char err[512];
    cfg_t *cfg = &rp->cfg;
    if (cfg_load(cfg, config, err, sizeof(err)) < 0) {
        fprintf(stderr, "segstream replay: config: %s\n", err);
        cfg_free(cfg);
        return 2;
    }
    if (cfg->log_level) cli_set_log_level(cfg->log_level);
    if (rp->quiet && cli_log_level < LOG_WARN) cli_log_level = LOG_WARN;
    if (format) {
        free(cfg->change_format);
        cfg->change_format = strdup(format);
    }
    if (!rp->brokers) rp->brokers = cfg->brokers;

    /* no --prefix: the replays' own namespace beside the live one ("seg:"
     * -> "seg-replay:"; a live prefix without a ':' at its end, "shop" ->
     * "replay-shop:", as "shop-replay:" would lie inside "shop"), which each
     * such replay replaces, so that running the same replay again works and
     * gives the same state */
    char default_prefix[256];
    int defaulted = redis_state && !prefix;
    if (defaulted) {
        const char *live = cfg->redis_prefix ? cfg->redis_prefix : "seg:";
        size_t n = strlen(live);
        int colon = n > 1 && live[n - 1] == ':';
        int w = (int)(n < 200 ? n : 200) - colon;
        if (colon)
            snprintf(default_prefix, sizeof default_prefix, "%.*s-replay:", w, live);
        else
            snprintf(default_prefix, sizeof default_prefix, "replay-%.*s:", w, live);
        prefix = default_prefix;
        replace = 1;
        if (cfg_check_prefix(prefix, why, sizeof why) < 0) {
            fprintf(stderr,
                    "segstream replay: no --prefix, and the default %s: %s; give --prefix\n",
                    prefix, why);
            cfg_free(cfg);
            return 2;
        }
        if (!rp->quiet)
            fprintf(stderr,
                    "segstream replay: no --prefix: state goes under %s, replacing what an "
                    "earlier replay left there\n",
                    prefix);
    }

    /* the namespaces: nothing is opened before they are checked */
    char dlq_topic[512];
    rp->out_topic = is_topic(out) ? out + 6 : NULL;
    if (is_topic(dlq)) {
        rp->dlq_topic = dlq + 6;
    } else if (!dlq && rp->out_topic) {
        snprintf(dlq_topic, sizeof(dlq_topic), "%s.dlq", rp->out_topic);
        rp->dlq_topic = dlq_topic;
    }
    int rc = 2;
    if ((rp->out_topic && guard_topic(rp, "--out", rp->out_topic, allow_live) < 0) ||
        (rp->dlq_topic && guard_topic(rp, "--dlq", rp->dlq_topic, allow_live) < 0))
        goto out_cfg;
    /* one namespace inside the other counts too: a replay under seg:c: would
     * write what `run` reads as customers, and --replace under "se" would
     * delete the live state */
    const char *live = cfg->redis_prefix;
    if (redis_state && !allow_live &&
        (strncmp(prefix, live, strlen(live)) == 0 || strncmp(live, prefix, strlen(prefix)) == 0)) {
        fprintf(stderr,
                "segstream replay: %s %s %s the live namespace %s (redis.prefix in %s); a "
                "replay writes there only with --allow-live%s\n",
                defaulted ? "no --prefix, and the default" : "--prefix", *prefix ? prefix : "\"\"",
                strcmp(prefix, live) == 0 ? "is" : "overlaps", *live ? live : "\"\"", cfg->source,
                defaulted ? " (or give --prefix)" : "");
        goto out_cfg;
    }
    /* kafka.properties are passed through as strings: what librdkafka
     * refuses is a bad config, said before anything is read or written, as
     * `run` does (only when a client will be made: a file replay to files
     * hands librdkafka nothing) */
    if ((is_topic(rp->input) || rp->out_topic || rp->dlq_topic) && rp_kafka_check(rp) < 0)
        goto out_cfg;

    if (csv) {
        if (!(map = strm_csvmap_new())) {
            fprintf(stderr, "segstream replay: out of memory\n");
            goto out_cfg;
        }
        if (csv_preset && strm_csvmap_preset(map, csv_preset, err, sizeof(err)) < 0) {
            fprintf(stderr, "segstream replay: --csv-preset: %s\n", err);
            goto out_cfg;
        }
        if (csv_map && load_map(map, csv_map, err, sizeof(err)) < 0) {
            fprintf(stderr, "segstream replay: --csv-map: %s\n", err);
            goto out_cfg;
        }
        /* a joined file is an input too (known only now, from the mapping):
         * refused under any output before anything is opened */
        char jp[4096], jflag[600];
        const char *jname;
        for (int j = 0; (jname = strm_csvmap_join(map, j, rp->input, jp, sizeof jp)); j++)
            for (int i = F_OUT; i < F_N; i++)
                if (cli_same_file(file[i], jp)) {
                    snprintf(jflag, sizeof jflag, "join=%s of the CSV mapping", jname);
                    refuse_same(flag[i], file[i], i == F_AUTO_DLQ, jflag);
                    goto out_cfg;
                }
        if (!(rp->csv = strm_csvsrc_open(rp->input, map, sort, err, sizeof(err)))) {
            fprintf(stderr, "segstream replay: %s\n", err);
            rc = 1; /* reading the input failed, as for any other input */
            goto out_cfg;
        }
        /* Rows sorted by time cannot arrive ahead of their stream: a jump of
         * W is a real gap in the data (a shop closed over Christmas, a
         * sparse sample), not a producer's bad clock. */
        if (strm_csvsrc_sorted(rp->csv)) cfg->max_future_skew_ms = 0; /* no check */
    }

    cfg->seg.frozen = freeze;
    if (pl_init(&rp->pl, cfg, err, sizeof(err)) < 0) {
        fprintf(stderr, "segstream replay: config: %s\n", err);
        goto out_cfg;
    }
    rc = 1;
    pl_t *pl = &rp->pl;
    /* files this run creates: removed again if it fails before reading a
     * record (an input that cannot be opened leaves nothing behind) */
    const char *made[2] = {NULL, NULL};
    if (model && (strncmp(model, "redis://", 8) == 0 ? model_load_redis(rp, model)
                                                     : model_load_file(rp, model)) < 0)
        goto done;
    if (redis_state && rp_redis_state_check(redis_state, prefix, replace) < 0) goto done;

    char dlq_path[4096];
    struct stat st;
    if (!rp->out_topic) {
        if (strcmp(out, "-") != 0 && stat(out, &st) != 0) made[0] = out;
        rp->out = cli_open_out(out);
        if (!rp->out) {
            fprintf(stderr, "segstream replay: %s: cannot write\n", out);
            goto done;
        }
    }
    /* OUT.dlq beside a regular file only: not /dev/null.dlq, not a pipe's.
     * Without one, dead letters go to stderr: never dropped (-q or not). */
    if (!dlq && !rp->out_topic && strcmp(out, "-") != 0 && fstat(fileno(rp->out), &st) == 0 &&
        S_ISREG(st.st_mode)) {
        snprintf(dlq_path, sizeof(dlq_path), "%s.dlq", out);
        dlq = dlq_path;
    }
    if (rp->dlq_topic) {
        rp->dlq_name = rp->dlq_topic;
    } else if (!dlq || strcmp(dlq, "-") == 0) {
        rp->dlq = dlq ? stdout : stderr;
        rp->dlq_name = dlq ? "stdout" : "stderr";
    } else {
        if (stat(dlq, &st) != 0) made[1] = dlq;
        if (!(rp->dlq = fopen(dlq, "wb"))) {
            fprintf(stderr, "segstream replay: %s: cannot write\n", dlq);
            goto done;
        }
        rp->dlq_name = dlq;
    }
    if ((rp->out_topic || rp->dlq_topic) && rp_kout_open(rp) < 0) goto done;
    pl->on_change = rp->out_topic ? rp_kout_change : write_change;
    pl->change_ud = rp;
    pl->on_dead = rp->dlq_topic ? rp_kout_dead : write_dead;
    pl->dead_ud = rp;
    pl->from = from;
    pl->to = to;

    rp->progress = !rp->quiet && isatty(2);
    rp->t0 = cli_monotonic_s();
    if ((is_topic(rp->input) ? rp_input_kafka(rp, rp->input + 6) : rp_input_file(rp)) < 0 ||
        pl_part_end(pl, &pl->file) < 0)
        goto done;
    if ((rp->out && fflush(rp->out) != 0) || (rp->dlq && fflush(rp->dlq) != 0)) {
        fprintf(stderr, "segstream replay: writing output failed\n");
        goto done;
    }
    if (rp->kout && rp_kout_close(rp, 120000) < 0) goto done;
    if (snapshot) {
        FILE *sf = cli_open_out(snapshot);
        if (!sf || pl_snapshot_csv(pl, sf) < 0 || cli_close_out(sf) != 0) {
            fprintf(stderr, "segstream replay: %s: cannot write snapshot\n", snapshot);
            goto done;
        }
    }
    if (save_model && model_save_file(rp, save_model) < 0) goto done;
    if (redis_state && rp_redis_state(rp, redis_state, prefix, replace) < 0) goto done;
    /* every record a dead letter: most often a file framed the wrong way
     * by its first byte (a stray byte before a msgpack stream), which
     * --input-format settles; said even with -q */
    if (pl->st.dead && !pl->st.applied && !pl->st.duplicates && !rp->csv && !is_topic(rp->input))
        fprintf(stderr, "segstream replay: no record of %s could be applied; %s\n", rp->input,
                framing_hint(rp));
    if (!rp->quiet) {
        pl_summary(pl, stderr, cli_monotonic_s() - rp->t0);
        if (pl->st.skipped)
            fprintf(stderr, "skipped outside [from, to): %" PRIu64 "\n", pl->st.skipped);
        if (pl->st.dead) fprintf(stderr, "dead letters written to %s\n", rp->dlq_name);
        if (redis_state) fprintf(stderr, "state written to %s under %s\n", redis_state, prefix);
        if (rp->csv)
            fprintf(stderr,
                    "csv: %" PRIu64 " rows read, %" PRIu64 " merged into another row's event\n",
                    strm_csvsrc_rows(rp->csv), strm_csvsrc_merged(rp->csv));
    }
    rc = 0;
done:
    if (rp->kout) rp_kout_close(rp, 5000); /* a failed replay: not waiting long */
    if (rp->out && rp->out != stdout) fclose(rp->out);
    if (rp->dlq && rp->dlq != stdout && rp->dlq != stderr) fclose(rp->dlq);
    for (int i = 0; i < 2 && rc != 0 && pl->st.records == 0 && pl->st.skipped == 0; i++)
        if (made[i]) unlink(made[i]);
    pl_free(pl);
out_cfg:
    strm_csvsrc_close(rp->csv);
    strm_csvmap_free(map);
    cfg_free(cfg);
    return rc;
}
