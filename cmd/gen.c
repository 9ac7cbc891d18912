/* cmd/gen.c: `segstream gen`: a synthetic customer population with planted
 * segments (personas that differ in frequency, spend, discounts, carts,
 * email, time of day, weekdays and channel), some of whom churn. The same
 * seed gives the same bytes. Events are written in event-time order, as a
 * live stream would carry them; --truth writes each customer's persona. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "cmd/cli.h"
#include "config/config.h"
#include "stream/codec.h"
#include "stream/kafka.h"

typedef struct {
    const char *name;
    double weight;      /* share of the population */
    double volume;      /* relative number of events */
    double per_session; /* events per session */
    double p_purchase;  /* sessions that end in a purchase */
    double aov;         /* median order value */
    double p_discount;  /* purchases with a discount */
    double p_cart;      /* non-purchase sessions that add to cart */
    double p_email;     /* sessions that start from an email */
    double hours[4];    /* night, morning, afternoon, evening */
    double p_weekend;   /* sessions on Saturday or Sunday */
    double p_app;       /* sessions in the app (else web) */
    int cats[3];        /* favourite categories */
} persona_t;

static const persona_t personas[] = {
    {"vip", 0.12, 1.5, 4, 0.60, 180, 0.05, 0.2, 0.05, {.02, .45, .45, .08}, 0.20, 0.15, {0, 1, 2}},
    {"bargain_hunter",
     0.20,
     1.0,
     4,
     0.45,
     18,
     0.90,
     0.2,
     0.05,
     {.02, .30, .40, .28},
     0.75,
     0.2,
     {3, 4, 5}},
    {"window_shopper",
     0.20,
     1.2,
     5,
     0.0,
     50,
     0.0,
     0.85,
     0.02,
     {.03, .40, .45, .12},
     0.25,
     0.15,
     {6, 7, 1}},
    {"email_engaged",
     0.14,
     0.8,
     3,
     0.30,
     55,
     0.15,
     0.1,
     0.80,
     {.02, .55, .35, .08},
     0.15,
     0.05,
     {8, 9, 0}},
    {"night_app",
     0.18,
     1.2,
     4,
     0.25,
     45,
     0.20,
     0.2,
     0.02,
     {.05, .03, .07, .85},
     0.30,
     0.95,
     {10, 11, 6}},
    {"occasional",
     0.16,
     0.30,
     3,
     0.70,
     35,
     0.05,
     0.1,
     0.03,
     {.02, .45, .45, .08},
     0.15,
     0.08,
     {2, 5, 9}},
};
#define N_PERSONAS (int)(sizeof(personas) / sizeof(personas[0]))

static const char *const categories[] = {"electronics", "computers", "books",  "apparel",
                                         "shoes",       "home",      "beauty", "toys",
                                         "garden",      "kitchen",   "games",  "music"};
static const char *const countries[] = {"GB", "DE", "FR", "US", "ES", "IT", "NL", "PL"};
static const char *const age_bands[] = {"18-24", "25-34", "35-44", "45-54", "55+"};

typedef struct {
    int64_t ts;
    uint32_t cust;
    uint32_t seq;
    uint8_t type, channel, discount, cat, first;
    float amount;
} gev_t;

typedef struct {
    uint64_t s;
} rng_t;

static uint64_t rnd(rng_t *r)
{
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}
static double rnd01(rng_t *r)
{
    return (double)(rnd(r) >> 11) * (1.0 / 9007199254740992.0);
}
static double rnd_normal(rng_t *r)
{
    double u = rnd01(r), v = rnd01(r);
    return sqrt(-2.0 * log(u > 1e-300 ? u : 1e-300)) * cos(2 * M_PI * v);
}
static int rnd_pick(rng_t *r, const double *w, int n)
{
    double t = 0, x;
    for (int i = 0; i < n; i++) t += w[i];
    x = rnd01(r) * t;
    for (int i = 0; i < n; i++)
        if ((x -= w[i]) < 0) return i;
    return n - 1;
}

static int cmp_gev(const void *a, const void *b)
{
    const gev_t *x = a, *y = b;
    if (x->ts != y->ts) return x->ts < y->ts ? -1 : 1;
    if (x->cust != y->cust) return x->cust < y->cust ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

typedef struct {
    gev_t *v;
    size_t n, cap;
} gvec_t;

static int push(gvec_t *g, gev_t e)
{
    if (g->n == g->cap) {
        size_t nc = g->cap ? g->cap * 2 : 1 << 16;
        gev_t *nv = realloc(g->v, nc * sizeof(gev_t));
        if (!nv) return -1;
        g->v = nv;
        g->cap = nc;
    }
    g->v[g->n++] = e;
    return 0;
}

/* A session's events for customer `cu` of persona `p`, at most `quota`. */
static int session(gvec_t *g, rng_t *r, const persona_t *p, uint32_t cu, uint32_t *seq, int64_t t,
                   int quota, int first)
{
    int n = 0, email = rnd01(r) < p->p_email;
    int buy = rnd01(r) < p->p_purchase;
    uint8_t ch = email ? SEG_CH_EMAIL : rnd01(r) < p->p_app ? SEG_CH_APP : SEG_CH_WEB;
    uint8_t cat = (uint8_t)p->cats[rnd_pick(r, (const double[]){0.6, 0.3, 0.1}, 3)];
    int len = (int)lround(p->per_session * (0.6 + 0.8 * rnd01(r)));
    if (len < 1) len = 1;
    gev_t e = {.cust = cu, .channel = ch, .cat = 255};
#define EMIT(TYPE, CAT)                                                                            \
    do {                                                                                           \
        if (n >= quota) return n;                                                                  \
        e.ts = t;                                                                                  \
        e.seq = (*seq)++;                                                                          \
        e.type = (TYPE);                                                                           \
        e.cat = (CAT);                                                                             \
        e.first = (uint8_t)(first && n == 0);                                                      \
        if (push(g, e) < 0) return -1;                                                             \
        n++;                                                                                       \
        t += 20000 + (int64_t)(rnd01(r) * 100000);                                                 \
    } while (0)
    if (email) {
        EMIT(SEG_EV_EMAIL_OPEN, 255);
        if (rnd01(r) < 0.6) EMIT(SEG_EV_EMAIL_CLICK, 255);
        e.channel = SEG_CH_WEB;
    } else {
        EMIT(SEG_EV_SESSION_START, 255);
    }
    int views = len - 1 - (buy ? 3 : 0);
    for (int i = 0; i < views || (i == 0 && !buy); i++) EMIT(SEG_EV_PRODUCT_VIEW, cat);
    if (buy) {
        EMIT(SEG_EV_ADD_TO_CART, cat);
        EMIT(SEG_EV_CHECKOUT, 255);
        e.amount = (float)(p->aov * exp(0.35 * rnd_normal(r)));
        e.discount = rnd01(r) < p->p_discount;
        EMIT(SEG_EV_PURCHASE, cat);
        e.amount = 0;
        e.discount = 0;
    } else if (rnd01(r) < p->p_cart) {
        EMIT(SEG_EV_ADD_TO_CART, cat);
    }
#undef EMIT
    return n;
}

/* --out kafka:TOPIC: one record per event, keyed by customer id, stamped
 * with the event time so that offsets-for-times finds a time range. */
typedef struct {
    strm_producer_t *p;
    const char *topic;
    uint64_t sent, delivered, failed;
    const char *last_error;
    uint64_t progress; /* delivered + failed when it last moved, at `since` */
    double since;
} kout_t;

static void kout_dr(void *ud, void *opaque, const char *error, const char *topic, const void *key,
                    size_t key_len, const void *payload, size_t len)
{
    kout_t *k = ud;
    if (error) {
        if (!k->failed++)
            fprintf(stderr, "segstream gen: delivery to %s failed: %s\n", topic, error);
    } else {
        k->delivered++;
    }
}

static int kout_open(kout_t *k, const char *brokers, const char *topic)
{
    char err[512];
    strm_kopts_t o = {.brokers = brokers, .client_id = "segstream-gen", .log = cli_kafka_log};
    k->topic = topic;
    k->since = cli_monotonic_s();
    k->p = strm_producer_new(&o, kout_dr, k, err, sizeof(err));
    if (!k->p) fprintf(stderr, "segstream gen: %s\n", err);
    return k->p ? 0 : -1;
}

/* A generator gives up when no record has been delivered for this long
 * while records wait (brokers that do not answer), where the daemon's
 * producer retries for ever. A slow broker that still takes records is
 * waited for. */
#define KOUT_STALL_S 30.0

/* Polls for up to ms; -1, said once, when nothing was delivered for
 * KOUT_STALL_S. */
static int kout_wait(kout_t *k, int ms)
{
    strm_producer_poll(k->p, ms);
    double now = cli_monotonic_s();
    if (k->delivered + k->failed != k->progress) {
        k->progress = k->delivered + k->failed;
        k->since = now;
    } else if (now - k->since >= KOUT_STALL_S) {
        fprintf(stderr, "segstream gen: no record delivered for %.0f s: giving up\n", KOUT_STALL_S);
        return -1;
    }
    return 0;
}

static int kout_send(kout_t *k, const seg_event_t *ev, const void *p, size_t len)
{
    char err[512];
    for (;;) {
        int rc = strm_producer_send(k->p, k->topic, ev->customer_id, ev->id_len, p, len, ev->ts,
                                    NULL, 0, NULL, err, sizeof(err));
        if (rc == 0) break;
        if (rc < 0) {
            fprintf(stderr, "segstream gen: %s\n", err);
            return -1;
        }
        if (kout_wait(k, 100) < 0) return -1; /* queue full: let deliveries drain */
    }
    k->sent++;
    if ((k->sent & 1023) == 0) strm_producer_poll(k->p, 0);
    return k->failed ? -1 : 0;
}

static int kout_close(kout_t *k)
{
    int left;
    while ((left = strm_producer_flush(k->p, 1000)) > 0 && kout_wait(k, 0) == 0) {
    }
    strm_producer_poll(k->p, 0);
    if (left || k->failed) {
        fprintf(stderr, "segstream gen: %" PRIu64 " of %" PRIu64 " records not delivered\n",
                k->sent - k->delivered, k->sent);
        return -1;
    }
    fprintf(stderr, "segstream gen: %" PRIu64 " records delivered to %s\n", k->delivered, k->topic);
    return 0;
}

static void kout_abort(kout_t *k)
{
    strm_producer_free(k->p);
    k->p = NULL;
}

/* Flushes and closes an output (stdout: flushed only); -1 after saying why.
 * A full disk often shows only here, when the last buffer is written. */
static int close_out(FILE *f, const char *name)
{
    int e = ferror(f) ? EIO : 0; /* an earlier error whose errno is gone */
    errno = 0;
    if (fflush(f) != 0) e = errno ? errno : EIO;
    if (f != stdout && fclose(f) != 0 && !e) e = errno ? errno : EIO;
    if (!e) return 0;
    fprintf(stderr, "segstream gen: %s: %s\n", f == stdout ? "stdout" : name, strerror(e));
    return -1;
}

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: segstream gen --customers N --events M --seed S --out FILE|kafka:TOPIC [options]\n"
        "  -n, --customers N   customers (default 10000)\n"
        "  -m, --events M      events in all (default 20 per customer)\n"
        "  -s, --seed S        random seed (default 1)\n"
        "  -o, --out FILE      output ('-' = stdout), or kafka:TOPIC (keyed by\n"
        "                      customer id, record timestamp = event time; exit 1\n"
        "                      when no record is delivered for 30 s)\n"
        "      --brokers B     bootstrap servers for kafka: (default\n"
        "                      $SEGSTREAM_KAFKA_BROKERS, else 127.0.0.1:9092)\n"
        "      --format F      json (default) or msgpack\n"
        "      --truth FILE    write customer_id,segment (the planted persona; '-' =\n"
        "                      stdout)\n"
        "      --start T       first day (default 2024-01-01T00:00:00Z)\n"
        "      --days D        span of event time in days (default 180)\n"
        "      --churn P       share of customers who stop coming (default 0.25)\n");
}

int cmd_gen(int argc, char **argv)
{
    static const struct option opts[] = {{"customers", required_argument, 0, 'n'},
                                         {"events", required_argument, 0, 'm'},
                                         {"seed", required_argument, 0, 's'},
                                         {"out", required_argument, 0, 'o'},
                                         {"format", required_argument, 0, 'f'},
                                         {"truth", required_argument, 0, 't'},
                                         {"start", required_argument, 0, 'S'},
                                         {"days", required_argument, 0, 'D'},
                                         {"churn", required_argument, 0, 'C'},
                                         {"brokers", required_argument, 0, 'b'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    uint64_t customers = 10000, events = 0, seed = 1, days = 180;
    const char *out = NULL, *truth = NULL, *format = "json", *brokers = NULL;
    int64_t start = 1704067200000LL; /* 2024-01-01T00:00:00Z */
    kout_t ko = {0};
    double churn = 0.25;
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "n:m:s:o:h", opts, NULL)) != -1) {
        int bad = 0;
        switch (opt) {
        case 'n':
            bad = cli_parse_u64(optarg, &customers) < 0 || customers == 0;
            break;
        case 'm':
            bad = cli_parse_u64(optarg, &events) < 0 || events == 0; /* unset: 20 each */
            break;
        case 's':
            bad = cli_parse_u64(optarg, &seed) < 0;
            break;
        case 'D':
            bad = cli_parse_u64(optarg, &days) < 0 || days == 0;
            break;
        case 'o':
            out = optarg;
            break;
        case 'f':
            format = optarg;
            break;
        case 't':
            truth = optarg;
            break;
        case 'S':
            bad = cli_parse_time(optarg, &start) < 0;
            break;
        case 'C': {
            char *end;
            churn = strtod(optarg, &end);
            /* a digit first: no blanks or sign, and not "nan", which passes
             * both comparisons */
            bad = !((*optarg >= '0' && *optarg <= '9') || *optarg == '.') || *end || churn < 0 ||
                  churn > 1;
            break;
        }
        case 'b':
            brokers = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
        if (bad) {
            fprintf(stderr, "segstream gen: bad value for --%s: %s\n",
                    opt == 'n'   ? "customers"
                    : opt == 'm' ? "events"
                    : opt == 's' ? "seed"
                    : opt == 'D' ? "days"
                    : opt == 'S' ? "start"
                                 : "churn",
                    optarg);
            return 2;
        }
    }
    if (cli_file_arg("gen", "--out", out) < 0 || cli_file_arg("gen", "--truth", truth) < 0)
        return 2;
    if (optind < argc) {
        fprintf(stderr, "segstream gen: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (!out) {
        fprintf(stderr, "segstream gen: --out is required\n");
        usage(stderr);
        return 2;
    }
    const char *topic = strncmp(out, "kafka:", 6) == 0 ? out + 6 : NULL;
    if (topic && !*topic) {
        fprintf(stderr, "segstream gen: --out kafka:TOPIC needs a topic name\n");
        return 2;
    }
    /* '-' is stdout for both; the truth after the events there would turn
     * the stream into something no replay reads */
    if (truth && strcmp(truth, "-") == 0 && strcmp(out, "-") == 0) {
        fprintf(stderr, "segstream gen: --out - and --truth - would share stdout: give one a "
                        "file\n");
        return 2;
    }
    /* opened one after the other: the truth would replace the events */
    if (truth && cli_same_file(out, truth)) {
        fprintf(stderr, "segstream gen: --truth %s is the file --out names too\n", truth);
        return 2;
    }
    const char *brokers_from = "--brokers";
    if (!brokers) {
        brokers = getenv("SEGSTREAM_KAFKA_BROKERS");
        brokers_from = "env SEGSTREAM_KAFKA_BROKERS";
    }
    if (!brokers || !*brokers) brokers = "127.0.0.1:9092";
    /* a topic name Kafka refuses, or a broker list librdkafka cannot use,
     * would only show after KOUT_STALL_S without a delivery */
    char why[256];
    if (topic && cfg_check_topic(topic, why, sizeof why) < 0) {
        fprintf(stderr, "segstream gen: --out %s: %s\n", out, why);
        return 2;
    }
    if (topic && cfg_check_brokers(brokers, why, sizeof why) < 0) {
        fprintf(stderr, "segstream gen: %s: %s\n", brokers_from, why);
        return 2;
    }
    int msgpack = strcmp(format, "msgpack") == 0;
    if (!msgpack && strcmp(format, "json") != 0) {
        fprintf(stderr, "segstream gen: --format: json or msgpack, not %s\n", format);
        return 2;
    }
    if (customers > 100000000) {
        fprintf(stderr, "segstream gen: --customers: at most 100000000\n");
        return 2;
    }
    if (!events) events = customers * 20;
    if (events < customers) {
        fprintf(stderr, "segstream gen: --events must be at least --customers (one each)\n");
        return 2;
    }

    rng_t r = {seed * 0x2545F4914F6CDD1DULL + 1};
    uint32_t n = (uint32_t)customers;
    uint8_t *who = malloc(n);
    double *w = malloc(n * sizeof(double));
    int64_t *beg = malloc(n * sizeof(int64_t)), *end = malloc(n * sizeof(int64_t));
    gvec_t g = {0};
    int rc = 1;
    FILE *f = NULL;
    if (!who || !w || !beg || !end) goto oom;
    double pw[N_PERSONAS], wsum = 0;
    for (int i = 0; i < N_PERSONAS; i++) pw[i] = personas[i].weight;
    int64_t span = (int64_t)days * SEG_DAY_MS;
    for (uint32_t c = 0; c < n; c++) {
        who[c] = (uint8_t)rnd_pick(&r, pw, N_PERSONAS);
        w[c] = personas[who[c]].volume * exp(0.4 * rnd_normal(&r));
        wsum += w[c];
        beg[c] = start + (int64_t)(rnd01(&r) * 0.5 * (double)span);
        end[c] = start + span;
        if (rnd01(&r) < churn) {
            int64_t stop = beg[c] + 20 * SEG_DAY_MS + (int64_t)(rnd01(&r) * (double)span * 0.5);
            if (stop < end[c]) end[c] = stop;
        }
    }
    /* exactly `events` in all: proportional shares, at least one each */
    uint64_t left = events - customers;
    for (uint32_t c = 0; c < n; c++) {
        uint64_t share = (uint64_t)floor((double)(events - customers) * w[c] / wsum);
        if (share > left) share = left;
        w[c] = (double)(1 + share);
        left -= share;
    }
    for (uint32_t c = 0; left > 0; c = (c + 1) % n, left--) w[c] += 1;

    for (uint32_t c = 0; c < n; c++) {
        const persona_t *p = &personas[who[c]];
        int quota = (int)w[c];
        int sessions = (int)ceil(quota / p->per_session);
        uint32_t seq = 0;
        int64_t days_in = (end[c] - beg[c]) / SEG_DAY_MS + 1;
        int64_t *times = malloc((size_t)sessions * sizeof(int64_t));
        if (!times) goto oom;
        for (int s = 0; s < sessions; s++) {
            int64_t d = s == 0 ? 0 : (int64_t)(rnd01(&r) * (double)days_in);
            int want_weekend = rnd01(&r) < p->p_weekend;
            for (int tries = 0; s > 0 && tries < 7; tries++) {
                int64_t day = (beg[c] / SEG_DAY_MS + d);
                int dow = (int)((day + 4) % 7);
                if ((dow == 0 || dow == 6) == want_weekend) break;
                d = (d + 1) % days_in;
            }
            int hb = rnd_pick(&r, p->hours, 4);
            int64_t tod =
                (int64_t)(hb * 6 + rnd01(&r) * 5.5) * 3600000LL + (int64_t)(rnd01(&r) * 3600000.0);
            times[s] = (beg[c] / SEG_DAY_MS + d) * SEG_DAY_MS + tod;
            if (s == 0 && times[s] < beg[c]) times[s] = beg[c];
        }
        /* sessions in time order so the first one carries the traits */
        for (int i = 1; i < sessions; i++)
            for (int j = i; j > 0 && times[j - 1] > times[j]; j--) {
                int64_t t = times[j];
                times[j] = times[j - 1];
                times[j - 1] = t;
            }
        for (int s = 0; s < sessions && quota > 0; s++) {
            int k =
                session(&g, &r, p, c, &seq, times[s], s == sessions - 1 ? quota : quota, s == 0);
            if (k < 0) {
                free(times);
                goto oom;
            }
            quota -= k;
        }
        while (quota-- > 0) { /* top up the last session with views */
            gev_t e = g.v[g.n - 1];
            e.ts += 30000;
            e.seq = seq++;
            e.type = SEG_EV_PAGE_VIEW;
            e.amount = 0, e.discount = 0, e.first = 0, e.cat = 255;
            if (push(&g, e) < 0) {
                free(times);
                goto oom;
            }
        }
        free(times);
    }
    qsort(g.v, g.n, sizeof(gev_t), cmp_gev);

    if (topic && kout_open(&ko, brokers, topic) < 0) goto done;
    f = topic ? NULL : cli_open_out(out);
    if (!topic && !f) {
        fprintf(stderr, "segstream gen: %s: %s\n", out, strerror(errno));
        goto done;
    }
    strm_buf_t b;
    strm_buf_init(&b);
    seg_event_t ev;
    for (size_t i = 0; i < g.n; i++) {
        const gev_t *e = &g.v[i];
        seg_event_reset(&ev);
        ev.id_len = (uint8_t)snprintf(ev.customer_id, sizeof(ev.customer_id), "c%06u", e->cust);
        ev.type = e->type;
        ev.ts = e->ts;
        ev.channel = e->channel;
        ev.event_id_len =
            (uint8_t)snprintf(ev.event_id, sizeof(ev.event_id), "e%u-%u", e->cust, e->seq);
        if (e->type == SEG_EV_PURCHASE) {
            ev.amount = round(e->amount * 100) / 100;
            ev.has_amount = 1;
            ev.discount = e->discount;
        }
        if (e->cat != 255)
            ev.category_len =
                (uint8_t)snprintf(ev.category, sizeof(ev.category), "%s", categories[e->cat]);
        if (e->first) {
            uint64_t h = e->cust * 0x9E3779B97F4A7C15ULL;
            ev.n_traits = 2;
            snprintf(ev.traits[0].key, sizeof(ev.traits[0].key), "country");
            snprintf(ev.traits[0].val, sizeof(ev.traits[0].val), "%s", countries[(h >> 20) % 8]);
            snprintf(ev.traits[1].key, sizeof(ev.traits[1].key), "age_band");
            snprintf(ev.traits[1].val, sizeof(ev.traits[1].val), "%s", age_bands[(h >> 40) % 5]);
        }
        b.len = 0;
        if ((msgpack ? strm_event_msgpack(&ev, &b) : strm_event_json(&ev, &b)) < 0) goto oom_buf;
        if (!msgpack && strm_buf_append(&b, "\n", 1) < 0) goto oom_buf;
        if (topic) {
            if (kout_send(&ko, &ev, b.p, b.len - !msgpack) < 0) {
                strm_buf_free(&b);
                goto done;
            }
        } else if (fwrite(b.p, 1, b.len, f) != b.len) {
            fprintf(stderr, "segstream gen: %s: %s\n", f == stdout ? "stdout" : out,
                    strerror(errno));
            strm_buf_free(&b);
            goto done;
        }
    }
    strm_buf_free(&b);
    if (topic && kout_close(&ko) < 0) goto done;
    FILE *done_f = f;
    f = NULL; /* closed here, whatever the outcome */
    if (done_f && close_out(done_f, out) < 0) goto done;
    if (truth) {
        FILE *tf = cli_open_out(truth);
        if (!tf) {
            fprintf(stderr, "segstream gen: %s: %s\n", truth, strerror(errno));
            goto done;
        }
        fprintf(tf, "customer_id,segment\n");
        for (uint32_t c = 0; c < n; c++) fprintf(tf, "c%06u,%s\n", c, personas[who[c]].name);
        if (close_out(tf, truth) < 0) goto done;
    }
    rc = 0;
    goto done;
oom_buf:
    strm_buf_free(&b);
oom:
    fprintf(stderr, "segstream gen: out of memory\n");
done:
    kout_abort(&ko);
    if (f && f != stdout) fclose(f); /* a failed run: already said why */
    if (f == stdout) fflush(stdout);
    free(who);
    free(w);
    free(beg);
    free(end);
    free(g.v);
    return rc;
}
