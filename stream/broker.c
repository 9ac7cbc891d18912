/* stream/broker.c: the embedded broker (see broker.h). Owns one rd_kafka_t
 * handle whose only job is to host the mock cluster; never produces or
 * consumes itself. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include "stream/broker.h"

struct strm_broker {
    rd_kafka_t *rk;
    rd_kafka_mock_cluster_t *mc;
};

strm_broker_t *strm_broker_new(int brokers, char *err, size_t errlen)
{
    strm_broker_t *b = calloc(1, sizeof(*b));
    if (!b) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    /* the host handle never connects anywhere; keep it quiet */
    rd_kafka_conf_set(conf, "log_level", "3", NULL, 0);
    b->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, errlen);
    if (!b->rk) {
        rd_kafka_conf_destroy(conf);
        free(b);
        return NULL;
    }
    b->mc = rd_kafka_mock_cluster_new(b->rk, brokers < 1 ? 1 : brokers);
    if (!b->mc) {
        snprintf(err, errlen, "cannot start the mock cluster");
        rd_kafka_destroy(b->rk);
        free(b);
        return NULL;
    }
    return b;
}

const char *strm_broker_bootstrap(const strm_broker_t *b)
{
    return rd_kafka_mock_cluster_bootstraps(b->mc);
}

int strm_broker_topic(strm_broker_t *b, const char *topic, int partitions, char *err, size_t errlen)
{
    rd_kafka_resp_err_t e = rd_kafka_mock_topic_create(b->mc, topic, partitions, 1);
    if (e) {
        snprintf(err, errlen, "topic %s: %s", topic, rd_kafka_err2str(e));
        return -1;
    }
    return 0;
}

void *strm_broker_mock(strm_broker_t *b)
{
    return b->mc;
}

void strm_broker_free(strm_broker_t *b)
{
    if (!b) return;
    rd_kafka_mock_cluster_destroy(b->mc);
    rd_kafka_destroy(b->rk);
    free(b);
}
