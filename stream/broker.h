/* stream/broker.h: the embedded Kafka-protocol broker, built on librdkafka's
 * mock cluster. For development, demos and tests only: it keeps at most
 * 5 MiB (and 100 000 batches) per partition, dropping the oldest, and holds
 * everything in memory. */
#ifndef STRM_BROKER_H
#define STRM_BROKER_H

#include <stddef.h>

typedef struct strm_broker strm_broker_t;

/* Starts a cluster of `brokers` (>= 1) brokers on loopback. NULL on error. */
strm_broker_t *strm_broker_new(int brokers, char *err, size_t errlen);
/* "HOST:PORT[,HOST:PORT...]"; owned by the broker. */
const char *strm_broker_bootstrap(const strm_broker_t *b);
/* Creates a topic with `partitions` partitions (topics not created here are
 * auto-created with 4 on first use). Returns 0 or -1. */
int strm_broker_topic(strm_broker_t *b, const char *topic, int partitions, char *err,
                      size_t errlen);
/* The underlying rd_kafka_mock_cluster_t, for fault injection in tests. */
void *strm_broker_mock(strm_broker_t *b);
void strm_broker_free(strm_broker_t *b);

#endif
