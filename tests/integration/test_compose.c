/* tests/integration/test_compose.c: docker-compose.yml as `docker-compose
 * config` resolves it (no Docker daemon needed). Every SEGSTREAM_* variable
 * it sets is one that config/config.c accepts; the input topics, the changes
 * and dead-letter topics and the published metrics port are the project's
 * defaults (read from config/config.c, not repeated here); Kafka is a KRaft
 * node reachable as kafka:9092 that gets those topics; Redis keeps an
 * append-only file; the image builds with the project's own scripts, and
 * scripts/build-pgo.sh runs its steps in a directory with a space. */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>
#include "config/config.h"
#include "harness.h"

extern char **environ;

/* ---------- the resolved file, flattened ---------- */

/* path = scalar, with maps as a.b and sequences as a[0]. */
typedef struct entry {
    char path[256];
    char *val;
} entry_t;

#define MAX_ENTRIES 4096
static entry_t ents[MAX_ENTRIES];
static int n_ents;

static void flatten(yaml_document_t *d, yaml_node_t *n, const char *path)
{
    char p[256];
    cr_assert_not_null(n);
    switch (n->type) {
    case YAML_SCALAR_NODE:
        cr_assert_lt(n_ents, MAX_ENTRIES);
        snprintf(ents[n_ents].path, sizeof ents[n_ents].path, "%s", path);
        ents[n_ents++].val = strndup((const char *)n->data.scalar.value, n->data.scalar.length);
        break;
    case YAML_SEQUENCE_NODE: {
        int i = 0;
        for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
             it++, i++) {
            snprintf(p, sizeof p, "%s[%d]", path, i);
            flatten(d, yaml_document_get_node(d, *it), p);
        }
        break;
    }
    case YAML_MAPPING_NODE:
        for (yaml_node_pair_t *pr = n->data.mapping.pairs.start; pr < n->data.mapping.pairs.top;
             pr++) {
            yaml_node_t *k = yaml_document_get_node(d, pr->key);
            cr_assert(k && k->type == YAML_SCALAR_NODE);
            snprintf(p, sizeof p, "%s%s%.*s", path, *path ? "." : "", (int)k->data.scalar.length,
                     (const char *)k->data.scalar.value);
            flatten(d, yaml_document_get_node(d, pr->value), p);
        }
        break;
    default:
        break;
    }
}

static void load_yaml(const char *file)
{
    FILE *f = fopen(file, "rb");
    cr_assert_not_null(f, "%s", file);
    yaml_parser_t parser;
    yaml_document_t doc;
    cr_assert(yaml_parser_initialize(&parser));
    yaml_parser_set_input_file(&parser, f);
    cr_assert(yaml_parser_load(&parser, &doc), "%s: %s", file, parser.problem);
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    cr_assert_not_null(root, "%s is empty", file);
    flatten(&doc, root, "");
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    fclose(f);
}

/* The scalar at a path (printf-style), or NULL. */
static const char *get(const char *fmt, ...)
{
    char path[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(path, sizeof path, fmt, ap);
    va_end(ap);
    for (int i = 0; i < n_ents; i++)
        if (strcmp(ents[i].path, path) == 0) return ents[i].val;
    return NULL;
}

/* The sequence at path, its items joined by single spaces ("" if absent). */
static const char *joined(const char *path)
{
    static char out[4096];
    out[0] = 0;
    for (int i = 0;; i++) {
        const char *v = get("%s[%d]", path, i);
        if (!v) break;
        size_t n = strlen(out);
        snprintf(out + n, sizeof out - n, "%s%s", n ? " " : "", v);
    }
    return out;
}

/* 1 when the words `a b` follow each other in s (spaces and ';' separate). */
static int has_words(const char *s, const char *a, const char *b)
{
    char want[512];
    snprintf(want, sizeof want, "%s %s", a, b);
    size_t n = strlen(want);
    for (const char *p = s; (p = strstr(p, want)); p++) {
        int start = p == s || p[-1] == ' ' || p[-1] == ';';
        int end = p[n] == 0 || p[n] == ' ' || p[n] == ';';
        if (start && end) return 1;
    }
    return 0;
}

/* ---------- fixtures ---------- */

static const char *dir;

static void clear_segstream_env(void)
{
    for (;;) {
        char name[256] = "";
        for (char **e = environ; e && *e; e++)
            if (strncmp(*e, "SEGSTREAM_", 10) == 0) {
                snprintf(name, sizeof name, "%.*s", (int)strcspn(*e, "="), *e);
                break;
            }
        if (!name[0]) return;
        unsetenv(name);
    }
}

static void setup(void)
{
    dir = h_tmpdir();
    cr_assert_not_null(dir);
    clear_segstream_env(); /* each test runs in its own process */
}
static void teardown(void)
{
    h_run("rm -rf '%s'", dir);
}
TestSuite(compose, .init = setup, .fini = teardown, .timeout = 300);

/* Runs `docker-compose config` and flattens its output. */
static void resolve_compose(void)
{
    if (h_run("command -v docker-compose >/dev/null 2>&1") != 0)
        cr_skip_test("docker-compose is not on PATH (scripts/install-deps.sh installs it)");
    int rc = h_run("cd '%s' && docker-compose -f '%s/docker-compose.yml' config > config.yml "
                   "2> config.err",
                   dir, SEG_SOURCE_DIR);
    char path[600];
    snprintf(path, sizeof path, "%s/config.err", dir);
    char *err = h_slurp(path, NULL);
    cr_assert_eq(rc, 0, "docker-compose config exited %d: %s", rc, err ? err : "");
    free(err);
    snprintf(path, sizeof path, "%s/config.yml", dir);
    load_yaml(path);
}

/* ---------- tests ---------- */

Test(compose, segstream_settings_are_known_and_the_project_defaults)
{
    cfg_t def, c;
    char err[512], host[256], dhost[256];
    int port, dport;
    cr_assert_eq(cfg_load(&def, NULL, err, sizeof err), 0, "defaults: %s", err);
    cr_assert_eq(cfg_split_hostport(def.http_listen, dhost, sizeof dhost, &dport, NULL, 0), 0);
    resolve_compose();

    /* Every SEGSTREAM_* of the service, set as the container would see it:
     * config/config.c refuses unknown ones. */
    int n_vars = 0;
    for (int i = 0; i < n_ents; i++) {
        const char *pre = "services.segstream.environment.";
        if (strncmp(ents[i].path, pre, strlen(pre))) continue;
        const char *name = ents[i].path + strlen(pre);
        cr_assert(strncmp(name, "SEGSTREAM_", 10) == 0, "unexpected variable %s", name);
        cr_assert_eq(setenv(name, ents[i].val, 1), 0);
        n_vars++;
    }
    cr_assert_geq(n_vars, 6, "brokers, topics, changes, DLQ, redis, http");
    cr_assert_eq(cfg_load(&c, NULL, err, sizeof err), 0, "the compose environment: %s", err);

    cr_assert_eq(c.n_topics, def.n_topics, "kafka.topics");
    for (int i = 0; i < c.n_topics; i++)
        cr_assert_str_eq(c.topics[i], def.topics[i], "kafka.topics: %s, default %s", c.topics[i],
                         def.topics[i]);
    cr_assert_str_eq(c.changes_topic, def.changes_topic, "kafka.changes_topic: %s, default %s",
                     c.changes_topic, def.changes_topic);
    cr_assert_str_eq(c.dlq_topic, def.dlq_topic, "kafka.dlq_topic: %s, default %s", c.dlq_topic,
                     def.dlq_topic);
    cr_assert_str_eq(c.brokers, "kafka:9092");
    cr_assert_str_eq(c.redis_url, "redis://redis:6379");
    cr_assert_eq(cfg_split_hostport(c.http_listen, host, sizeof host, &port, NULL, 0), 0);
    cr_assert_str_eq(host, "0.0.0.0", "reachable from outside the container");
    cr_assert_eq(port, dport, "the default metrics port %d", dport);

    /* The metrics port is published as itself: [HOST_IP:]PORT:PORT/tcp. */
    char same[64];
    snprintf(same, sizeof same, "%d:%d/tcp", dport, dport);
    int found = 0;
    for (int i = 0; get("services.segstream.ports[%d]", i); i++) {
        const char *p = get("services.segstream.ports[%d]", i);
        size_t n = strlen(p), w = strlen(same);
        found |= n >= w && strcmp(p + n - w, same) == 0 && (n == w || p[n - w - 1] == ':');
    }
    cr_assert(found, "port %d published (ports: %s)", dport, joined("services.segstream.ports"));

    cr_assert(has_words(joined("services.segstream.command"), "segstream", "run"));
    cr_assert_str_eq(get("services.segstream.depends_on.kafka-init.condition"),
                     "service_completed_successfully");
    cr_assert_str_eq(get("services.segstream.depends_on.redis.condition"), "service_healthy");

    /* gen writes to the first input topic of the same broker. */
    const char *gen = joined("services.gen.command");
    char out[300];
    snprintf(out, sizeof out, "kafka:%s", def.topics[0]);
    cr_assert(has_words(gen, "segstream", "gen"), "%s", gen);
    cr_assert(has_words(gen, "--out", out), "%s", gen);
    cr_assert(has_words(gen, "--brokers", c.brokers), "%s", gen);
    cr_assert(has_words(gen, "--customers", "5000") && has_words(gen, "--events", "200000") &&
                  has_words(gen, "--seed", "1"),
              "%s", gen);
    cr_assert_str_eq(get("services.gen.image"), get("services.segstream.image"));

    /* kafka-init creates every topic segstream reads or writes. */
    const char *init = joined("services.kafka-init.command");
    for (int i = 0; i < def.n_topics; i++)
        cr_assert(has_words(init, "--topic", def.topics[i]), "%s", init);
    cr_assert(has_words(init, "--topic", def.changes_topic), "%s", init);
    cr_assert(has_words(init, "--topic", def.dlq_topic), "%s", init);

    cfg_free(&c);
    cfg_free(&def);
}

Test(compose, kafka_is_one_kraft_node_at_kafka_9092_and_redis_appends)
{
    resolve_compose();
    const char *roles = get("services.kafka.environment.KAFKA_PROCESS_ROLES");
    cr_assert_not_null(roles);
    cr_assert(strstr(roles, "broker") && strstr(roles, "controller"), "KRaft combined: %s", roles);
    cr_assert_not_null(get("services.kafka.environment.KAFKA_CONTROLLER_QUORUM_VOTERS"));
    const char *adv = get("services.kafka.environment.KAFKA_ADVERTISED_LISTENERS");
    cr_assert(adv && strstr(adv, "://kafka:9092"), "advertised: %s", adv ? adv : "(none)");
    cr_assert_str_eq(get("services.kafka.environment.KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"), "1",
                     "one node: consumer groups need offsets with one replica");
    cr_assert_eq(strncmp(get("services.kafka.image"), "apache/kafka:", 13), 0);

    cr_assert_eq(strncmp(get("services.redis.image"), "redis:7", 7), 0);
    const char *redis = joined("services.redis.command");
    cr_assert(has_words(redis, "--appendonly", "yes"), "redis command: %s", redis);
}

Test(compose, image_builds_with_the_project_scripts)
{
    char path[600];
    snprintf(path, sizeof path, "%s/Dockerfile", SEG_SOURCE_DIR);
    char *df = h_slurp(path, NULL);
    cr_assert_not_null(df, "%s", path);
    cr_assert(strstr(df, "FROM debian:bookworm"));
    cr_assert(strstr(df, "scripts/install-deps.sh"));
    cr_assert(strstr(df, "scripts/build-pgo.sh"), "the image is the profile-guided build");
    free(df);
    snprintf(path, sizeof path, "%s/.dockerignore", SEG_SOURCE_DIR);
    char *ign = h_slurp(path, NULL);
    cr_assert_not_null(ign, "%s", path);
    cr_assert(strstr(ign, "\nbuild\n") && strstr(ign, "\nbuild-*\n"),
              "build trees stay out of the context");
    free(ign);
}

/* scripts/build-pgo.sh's own steps (configure, build, train, rebuild) in a
 * build directory whose path has a space, with a stand-in cmake that
 * "builds" a segstream writing a profile on replay: the script, not gcc,
 * is under test. */
Test(compose, build_pgo_script_takes_a_directory_with_a_space)
{
    cr_assert_eq(h_run("mkdir -p '%s/stub'", dir), 0);
    cr_assert_eq(
        h_writef(dir, "stub/cmake",
                 "#!/usr/bin/env bash\n"
                 "if [ \"$1\" = --build ]; then\n"
                 "  d=$2; mkdir -p \"$d/cmd\"; prof=$(cat \"$d/.prof\")\n"
                 "  { echo '#!/usr/bin/env bash'\n"
                 "    echo 'case $1 in gen) for a; do [ \"$o\" = 1 ] && : > \"$a\"; "
                 "o=0; [ \"$a\" = --out ] && o=1; done;;'\n"
                 "    echo \"replay) mkdir -p '$prof' && : > '$prof/x.gcda';; esac; exit 0\"\n"
                 "  } > \"$d/cmd/segstream\"\n"
                 "  chmod +x \"$d/cmd/segstream\"; echo \"$*\" >> \"$d/.builds\"; exit 0\n"
                 "fi\n"
                 "for a; do case $a in -DSEGSTREAM_PGO_DIR=*) p=${a#*=};; esac; done\n"
                 "while [ $# -gt 0 ]; do [ \"$1\" = -B ] && d=$2; shift; done\n"
                 "mkdir -p \"$d\"; echo \"$p\" > \"$d/.prof\"\n"),
        0);
    cr_assert_eq(h_run("chmod +x '%s/stub/cmake'", dir), 0);
    int rc = h_run("PATH='%s/stub':$PATH '%s/scripts/build-pgo.sh' '%s/pgo build' > '%s/pgo.log' "
                   "2>&1",
                   dir, SEG_SOURCE_DIR, dir, dir);
    char *log = h_slurp(h_join(dir, "pgo.log"), NULL);
    cr_assert_eq(rc, 0, "build-pgo.sh exited %d: %s", rc, log ? log : "");
    cr_expect(log && strstr(log, "3/3 build with the profile"), "%s", log ? log : "");
    free(log);
    cr_expect_eq(h_run("test -f '%s/pgo build/pgo-profile/x.gcda' && "
                       "test -f '%s/pgo build/pgo-train/t.msgpack'",
                       dir, dir),
                 0);
}
