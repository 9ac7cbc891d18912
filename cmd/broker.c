/* cmd/broker.c: `segstream broker`: an embedded Kafka-protocol broker for
 * development and tests (librdkafka's mock cluster, see stream/broker.h).
 * Prints `bootstrap=HOST:PORT[,...]` as its first stdout line and runs until
 * SIGTERM or SIGINT. Not for production: it keeps only the newest 5 MiB of
 * each partition, in memory. */
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include "cmd/cli.h"
#include "config/config.h"
#include "stream/broker.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: segstream broker [--partitions P] [--topics a,b,...] [--nodes N]\n"
               "  -p, --partitions P   partitions per topic (default 8)\n"
               "  -t, --topics LIST    topics to create (default events,segment-changes,"
               "segstream.dlq,segstream.watermarks)\n"
               "  -n, --nodes N        brokers in the cluster (default 1)\n"
               "Prints bootstrap=HOST:PORT first; runs until SIGTERM/SIGINT.\n"
               "Limits: in memory only; each partition keeps its newest 5 MiB (oldest\n"
               "batches are dropped), so produce compressed (gen does, with lz4) or\n"
               "spread large data over more partitions. Topics not listed are created\n"
               "on first use with 4 partitions. For development and tests, not production.\n");
}

int cmd_broker(int argc, char **argv)
{
    static const struct option opts[] = {{"partitions", required_argument, 0, 'p'},
                                         {"topics", required_argument, 0, 't'},
                                         {"nodes", required_argument, 0, 'n'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    uint64_t partitions = 8, nodes = 1;
    const char *topics = "events,segment-changes,segstream.dlq,segstream.watermarks";
    int o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "p:t:n:h", opts, NULL)) != -1) {
        switch (o) {
        case 'p':
            if (cli_parse_u64(optarg, &partitions) < 0 || partitions < 1 || partitions > 10000) {
                fprintf(stderr, "segstream broker: --partitions: expected 1..10000, got '%s'\n",
                        optarg);
                return 2;
            }
            break;
        case 't': {
            /* every comma-separated name one that kafka.topics takes */
            size_t n = strlen(optarg);
            if (!n || optarg[0] == ',' || optarg[n - 1] == ',' || strstr(optarg, ",,")) {
                fprintf(stderr, "segstream broker: --topics: an empty topic name in '%s'\n",
                        optarg);
                return 2;
            }
            char why[512];
            for (const char *t = optarg; *t;) {
                size_t len = strcspn(t, ",");
                char name[256]; /* a longer name is cut, still too long */
                snprintf(name, sizeof name, "%.*s", (int)(len < 255 ? len : 255), t);
                if (cfg_check_topic(name, why, sizeof why) < 0) {
                    fprintf(stderr, "segstream broker: --topics: %s\n", why);
                    return 2;
                }
                t += len + (t[len] == ',');
            }
            topics = optarg;
            break;
        }
        case 'n':
            if (cli_parse_u64(optarg, &nodes) < 0 || nodes < 1 || nodes > 16) {
                fprintf(stderr, "segstream broker: --nodes: expected 1..16, got '%s'\n", optarg);
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
    if (optind < argc) {
        fprintf(stderr, "segstream broker: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    /* Block the signals before librdkafka starts its threads, so that they
     * inherit the mask and only sigwait below sees them. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    char err[512];
    strm_broker_t *b = strm_broker_new((int)nodes, err, sizeof(err));
    if (!b) {
        fprintf(stderr, "segstream broker: %s\n", err);
        return 1;
    }
    char *list = strdup(topics), *save = NULL;
    int rc = 0;
    for (char *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (!*t) continue;
        if (strm_broker_topic(b, t, (int)partitions, err, sizeof(err)) < 0) {
            fprintf(stderr, "segstream broker: %s\n", err);
            rc = 1;
            break;
        }
    }
    free(list);
    if (rc == 0) {
        printf("bootstrap=%s\n", strm_broker_bootstrap(b));
        fflush(stdout);
        cli_log(LOG_INFO, "broker up: %s, topics %s with %d partitions each",
                strm_broker_bootstrap(b), topics, (int)partitions);
        int sig = 0;
        sigwait(&set, &sig);
        cli_log(LOG_INFO, "broker: %s, stopping", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    }
    strm_broker_free(b);
    return rc;
}
