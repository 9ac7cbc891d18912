/* tests/integration/test_inspect.c: `segstream inspect` against a real
 * redis-server (Debian's, started here on a free loopback port). The
 * customer hash is written the way the daemon writes it (st_customer_fields
 * plus `state` from st_pack_customer, for a customer built with the
 * segmenter API); the table and the JSON must show its segments, totals and
 * features; a missing customer exits 1, an unreachable Redis exits 2. */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include "harness.h"
#include "state/pack.h"

#define T0  1700000000000LL /* 2023-11-14T22:13:20Z */
#define DAY SEG_DAY_MS

static const char *dir;
static pid_t redis = -1;
static int port;

/* A free port on 127.0.0.1: bound to port 0, then released. */
static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int p = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        p = ntohs(a.sin_port);
    if (fd >= 0) close(fd);
    return p;
}

static redisContext *connect_redis(const char *pass)
{
    struct timeval tv = {1, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    if (!c || c->err) {
        if (c) redisFree(c);
        return NULL;
    }
    if (pass) {
        redisReply *r = redisCommand(c, "AUTH %s", pass);
        int ok = r && r->type != REDIS_REPLY_ERROR;
        if (r) freeReplyObject(r);
        if (!ok) {
            redisFree(c);
            return NULL;
        }
    }
    return c;
}

/* Starts redis-server (with a password when pass is not NULL) and waits
 * until it answers. */
static void start_redis(const char *pass)
{
    if (h_run("command -v redis-server >/dev/null") != 0)
        cr_skip_test("redis-server missing: apt-get install redis-server "
                     "(scripts/install-deps.sh)");
    port = free_port();
    cr_assert_gt(port, 0);
    char log[600];
    snprintf(log, sizeof(log), "%s/redis.log", dir);
    redis = h_spawn(log, log,
                    "redis-server --bind 127.0.0.1 --port %d --dir %s --save '' "
                    "--appendonly no --daemonize no%s%s",
                    port, dir, pass ? " --requirepass " : "", pass ? pass : "");
    cr_assert_gt(redis, 0);
    for (int i = 0; i < 200; i++) {
        redisContext *c = connect_redis(pass);
        if (c) {
            redisReply *r = redisCommand(c, "PING");
            int ok = r && r->type == REDIS_REPLY_STATUS;
            if (r) freeReplyObject(r);
            redisFree(c);
            if (ok) return;
        }
        h_sleep(0.05);
    }
    cr_assert_fail("redis-server did not answer on port %d", port);
}

static void setup(void)
{
    dir = h_tmpdir();
    cr_assert_not_null(dir);
}

static void teardown(void)
{
    if (redis > 0) h_stop(redis, SIGTERM, 10);
    redis = -1;
    h_stop_spawned(); /* what a failed test left running */
    if (!getenv("SEG_TEST_KEEP")) h_run("rm -rf '%s'", dir);
}

TestSuite(inspect, .init = setup, .fini = teardown, .timeout = 120);

/* ---------- a customer, built with the engine ---------- */

static seg_event_t mkev(const char *cid, seg_evtype_t type, int64_t ts)
{
    seg_event_t ev;
    memset(&ev, 0, sizeof(ev));
    seg_event_reset(&ev);
    ev.id_len = (uint8_t)snprintf(ev.customer_id, sizeof(ev.customer_id), "%s", cid);
    ev.type = (uint8_t)type;
    ev.ts = ts;
    return ev;
}

static seg_t *mkseg(void)
{
    seg_params_t p;
    char err[256];
    seg_params_default(&p);
    const char *big[] = {"revenue >= 60"};
    const char *books[] = {"top_category == books"};
    cr_assert_eq(seg_params_add_rule(&p, "big_spender", 0, big, 1, err, sizeof(err)), 0);
    cr_assert_eq(seg_params_add_rule(&p, "bookworm", 0, books, 1, err, sizeof(err)), 0);
    seg_t *s = seg_new(&p, err, sizeof(err));
    cr_assert_not_null(s, "%s", err);
    return s;
}

/* Three purchases (10.5 + 20 + 30), book views, a trait: `new`, both
 * rules hold. */
static void build_customer(seg_t *s, seg_customer_t *c, const char *id)
{
    seg_customer_init(c, id, strlen(id), 0);
    static const double amounts[] = {10.5, 20, 30};
    int64_t W = 0;
    for (int i = 0; i < 6; i++) {
        seg_event_t ev = mkev(id, i % 2 ? SEG_EV_PURCHASE : SEG_EV_PRODUCT_VIEW, T0 + i * DAY);
        ev.channel = SEG_CH_WEB;
        ev.category_len = (uint8_t)snprintf(ev.category, sizeof(ev.category), "books");
        if (i % 2) ev.amount = amounts[i / 2], ev.has_amount = 1;
        ev.event_id_len = (uint8_t)snprintf(ev.event_id, sizeof(ev.event_id), "e%d", i);
        if (i == 0) {
            ev.n_traits = 1;
            snprintf(ev.traits[0].key, SEG_TRAIT_KEY, "country");
            snprintf(ev.traits[0].val, SEG_TRAIT_VAL, "GB");
        }
        W = ev.ts > W ? ev.ts : W;
        cr_assert_eq(seg_apply(s, c, &ev, W, NULL, NULL), 0);
    }
    cr_assert_eq(c->lifecycle, SEG_LC_NEW);
    cr_assert_eq(c->orders, 3);
    cr_assert_eq(c->rules, 3);
}

/* HSET key field value ... state <packed>, as the daemon writes it. */
static void write_customer(redisContext *rc, const char *prefix, seg_t *s, const seg_customer_t *c,
                           int64_t updated)
{
    st_field_t f[ST_FIELDS];
    int n = st_customer_fields(s, c, updated, f);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    cr_assert_eq(st_pack_customer(s, c, &sb), 0);
    char key[256];
    snprintf(key, sizeof(key), "%sc:%s", prefix, c->id);
    const char *argv[2 + 2 * (ST_FIELDS + 1)];
    size_t lens[2 + 2 * (ST_FIELDS + 1)];
    int argc = 0;
    argv[argc] = "HSET", lens[argc++] = 4;
    argv[argc] = key, lens[argc++] = strlen(key);
    for (int i = 0; i < n; i++) {
        argv[argc] = f[i].name, lens[argc++] = strlen(f[i].name);
        argv[argc] = f[i].value, lens[argc++] = strlen(f[i].value);
    }
    argv[argc] = "state", lens[argc++] = 5;
    argv[argc] = sb.data, lens[argc++] = sb.size;
    redisReply *r = redisCommandArgv(rc, argc, argv, lens);
    cr_assert(r && r->type == REDIS_REPLY_INTEGER, "HSET: %s", r ? r->str : rc->errstr);
    freeReplyObject(r);
    msgpack_sbuffer_destroy(&sb);
}

/* Runs `segstream inspect ARGS` (env first, for variables); returns the
 * exit status with stdout and stderr in *out and *err (malloc'd). */
static int inspect(char **out, char **err, const char *env, const char *args)
{
    char o[600], e[600];
    snprintf(o, sizeof(o), "%s/out", dir);
    snprintf(e, sizeof(e), "%s/err", dir);
    int rc = h_run("env -u SEGSTREAM_REDIS_URL -u SEGSTREAM_REDIS_PREFIX %s %s inspect %s "
                   ">'%s' 2>'%s'",
                   env ? env : "", SEG_BIN, args, o, e);
    *out = h_slurp(o, NULL);
    *err = h_slurp(e, NULL);
    cr_assert(*out && *err);
    return rc;
}

/* The table line "  label   value..." holds value. */
static int has_row(const char *text, const char *label, const char *value)
{
    for (const char *p = text; (p = strstr(p, label)); p++) {
        if (p == text || p[-1] != ' ' || p[strlen(label)] != ' ') continue;
        const char *eol = strchr(p, '\n');
        const char *v = p + strlen(label);
        while (*v == ' ') v++;
        if (strncmp(v, value, strlen(value)) == 0 && (!eol || v + strlen(value) <= eol)) return 1;
    }
    return 0;
}

Test(inspect, table_and_json_show_what_the_daemon_wrote)
{
    start_redis(NULL);
    seg_t *s = mkseg();
    seg_customer_t c;
    build_customer(s, &c, "cust-42");
    redisContext *rc = connect_redis(NULL);
    cr_assert_not_null(rc);
    int64_t updated = T0 + 6 * DAY;
    write_customer(rc, "t:", s, &c, updated);

    char *out, *err, args[512];
    snprintf(args, sizeof(args), "cust-42 --redis redis://127.0.0.1:%d --prefix t:", port);
    cr_assert_eq(inspect(&out, &err, NULL, args), 0, "%s", err);
    cr_assert(strstr(out, "customer cust-42  (t:c:cust-42)"), "%s", out);
    cr_assert(has_row(out, "lifecycle", "new"), "%s", out);
    cr_assert(has_row(out, "rules", "big_spender, bookworm"), "%s", out);
    cr_assert(has_row(out, "events", "6"), "%s", out);
    cr_assert(has_row(out, "orders", "3"), "%s", out);
    cr_assert(has_row(out, "revenue", "60.5"), "%s", out);
    cr_assert(has_row(out, "first seen", "2023-11-14T22:13:20.000Z"), "%s", out);
    cr_assert(has_row(out, "last seen", "2023-11-19T22:13:20.000Z"), "%s", out);
    cr_assert(has_row(out, "updated", "2023-11-20T22:13:20.000Z"), "%s", out);
    char want[64];
    snprintf(want, sizeof(want), "%.6g", c.f.monetary);
    cr_assert(has_row(out, "monetary", want), "monetary %s in\n%s", want, out);
    snprintf(want, sizeof(want), "%.6g", c.f.purchases);
    cr_assert(has_row(out, "purchases", want), "%s", out);
    snprintf(want, sizeof(want), "%.6g", c.f.channel[SEG_CH_WEB]);
    cr_assert(has_row(out, "channel.web", want), "%s", out);
    cr_assert(has_row(out, "top categories", "books "), "%s", out);
    cr_assert(has_row(out, "country", "GB"), "%s", out);
    cr_assert(strstr(out, "features (decayed, as of 2023-11-19T22:13:20.000Z)"), "%s", out);
    free(out), free(err);

    /* --json: one object, valid JSON, typed totals, the decoded state */
    snprintf(args, sizeof(args), "--json cust-42 --redis redis://127.0.0.1:%d --prefix t:", port);
    cr_assert_eq(inspect(&out, &err, NULL, args), 0, "%s", err);
    cr_assert(strstr(out, "\"customer_id\":\"cust-42\""), "%s", out);
    cr_assert(strstr(out, "\"lifecycle\":\"new\""), "%s", out);
    cr_assert(strstr(out, "\"orders\":3"), "%s", out);
    cr_assert(strstr(out, "\"revenue\":60.5"), "%s", out);
    cr_assert(strstr(out, "\"rules\":\"big_spender,bookworm\""), "%s", out);
    cr_assert(strstr(out, "\"cat\":[[\"books\","), "%s", out);
    cr_assert(strstr(out, "\"tr\":{\"country\":\"GB\"}"), "%s", out);
    cr_assert_eq(strchr(out, '\n'), out + strlen(out) - 1, "one line");
    if (h_run("command -v python3 >/dev/null") == 0) {
        char o[600];
        snprintf(o, sizeof(o), "%s/out", dir);
        cr_assert_eq(h_run("python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); "
                           "assert d[\"events\"] == 6; assert d[\"state\"][\"f\"][\"purchases\"] "
                           "== %.17g; assert d[\"state\"][\"lc\"] == \"new\"; "
                           /* the dedup hashes: exact, as strings beyond 2^53 */
                           "dd = [int(x) for x in d[\"state\"][\"dd\"] if x]; assert len(dd) == 6; "
                           "assert all(isinstance(x, str) for x in d[\"state\"][\"dd\"] "
                           "if not isinstance(x, int) or x > 2**53)' '%s'",
                           c.f.purchases, o),
                     0, "%s", out);
    }
    free(out), free(err);

    /* the URL from the environment, as the config reads it */
    snprintf(args, sizeof(args), "SEGSTREAM_REDIS_URL=redis://127.0.0.1:%d", port);
    cr_assert_eq(inspect(&out, &err, args, "cust-42 --prefix t:"), 0, "%s", err);
    cr_assert(has_row(out, "orders", "3"), "%s", out);
    free(out), free(err);

    /* not found: exit 1, naming the customer and the prefix */
    snprintf(args, sizeof(args), "nobody --redis redis://127.0.0.1:%d --prefix t:", port);
    cr_assert_eq(inspect(&out, &err, NULL, args), 1, "%s", err);
    cr_assert(strstr(err, "customer nobody not found under prefix t:"), "%s", err);
    cr_assert_eq(out[0], 0);
    free(out), free(err);
    /* the default prefix is seg: */
    snprintf(args, sizeof(args), "cust-42 --redis redis://127.0.0.1:%d", port);
    cr_assert_eq(inspect(&out, &err, NULL, args), 1, "%s", err);
    cr_assert(strstr(err, "under prefix seg:"), "%s", err);
    free(out), free(err);

    redisFree(rc);
    seg_customer_clear(&c);
    seg_free(s);
}

Test(inspect, auth_database_and_config_file)
{
    start_redis("s3cret");
    seg_t *s = mkseg();
    seg_customer_t c;
    build_customer(s, &c, "c7");
    redisContext *rc = connect_redis("s3cret");
    cr_assert_not_null(rc);
    redisReply *r = redisCommand(rc, "SELECT 3");
    cr_assert(r && r->type == REDIS_REPLY_STATUS);
    freeReplyObject(r);
    write_customer(rc, "seg:", s, &c, T0);

    char cfgpath[600], *out, *err, args[700];
    snprintf(cfgpath, sizeof(cfgpath), "%s/segstream.yaml", dir);
    FILE *f = fopen(cfgpath, "w");
    cr_assert_not_null(f);
    fprintf(f, "redis:\n  url: redis://default:s3cret@127.0.0.1:%d/3\n", port);
    fclose(f);
    snprintf(args, sizeof(args), "c7 -c '%s'", cfgpath);
    cr_assert_eq(inspect(&out, &err, NULL, args), 0, "%s", err);
    cr_assert(has_row(out, "revenue", "60.5"), "%s", out);
    free(out), free(err);

    /* password only (AUTH pass) */
    snprintf(args, sizeof(args), "c7 --json --redis redis://:s3cret@127.0.0.1:%d/3", port);
    cr_assert_eq(inspect(&out, &err, NULL, args), 0, "%s", err);
    cr_assert(strstr(out, "\"orders\":3"), "%s", out);
    free(out), free(err);

    /* a wrong password or the wrong database */
    snprintf(args, sizeof(args), "c7 --redis redis://:badpw9@127.0.0.1:%d/3", port);
    cr_assert_eq(inspect(&out, &err, NULL, args), 2, "%s", err);
    cr_assert(strstr(err, "AUTH"), "%s", err);
    cr_assert_null(strstr(err, "badpw9"), "the password is never shown: %s", err);
    free(out), free(err);
    snprintf(args, sizeof(args), "c7 --redis redis://:s3cret@127.0.0.1:%d/4", port);
    cr_assert_eq(inspect(&out, &err, NULL, args), 1, "%s", err);
    free(out), free(err);

    redisFree(rc);
    seg_customer_clear(&c);
    seg_free(s);
}

Test(inspect, usage_and_connection_errors_exit_2)
{
    char *out, *err, args[256];
    /* no Redis configured anywhere */
    cr_assert_eq(inspect(&out, &err, NULL, "c1"), 2);
    cr_assert(strstr(err, "no Redis: set redis.url or --redis"), "%s", err);
    free(out), free(err);
    /* nothing listens there: refused at once */
    int p = free_port();
    snprintf(args, sizeof(args), "c1 --redis redis://127.0.0.1:%d", p);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    cr_assert_eq(inspect(&out, &err, NULL, args), 2);
    clock_gettime(CLOCK_MONOTONIC, &b);
    double took = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
    cr_assert_lt(took, 3.0, "took %.1f s", took);
    char want[64];
    snprintf(want, sizeof(want), "redis://127.0.0.1:%d", p);
    cr_assert(strstr(err, want), "%s", err);
    free(out), free(err);
    /* a malformed URL, a missing id, an unknown option */
    cr_assert_eq(inspect(&out, &err, NULL, "c1 --redis http://x"), 2);
    cr_assert(strstr(err, "http://x"), "%s", err);
    free(out), free(err);
    cr_assert_eq(inspect(&out, &err, NULL, "--redis redis://127.0.0.1:1"), 2);
    cr_assert(strstr(err, "usage"), "%s", err);
    free(out), free(err);
    cr_assert_eq(inspect(&out, &err, NULL, "c1 --bogus"), 2);
    free(out), free(err);
    cr_assert_eq(inspect(&out, &err, NULL, "--help"), 0);
    cr_assert(strstr(out, "usage: segstream inspect"), "%s", out);
    free(out), free(err);
}
