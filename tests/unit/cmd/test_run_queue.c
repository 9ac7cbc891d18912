/* tests/unit/cmd/test_run_queue.c: the partitions' queues of `segstream
 * run` (cmd/run.c) across assignment changes. cmd/run.c is compiled in
 * here with Redis mode (ckpt.c) stubbed out: no consumer, no loop, only
 * the state that run_assign() and enqueue() keep. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include "../../../cmd/run.c"

/* Redis mode is never on here (r->ck stays NULL) */
int ck_start(run_t *r, char *err, size_t errlen)
{
    (void)r, (void)err, (void)errlen;
    return 0;
}
int ck_prefetch(run_t *r, const strm_msg_t *ms, int n)
{
    (void)r, (void)ms, (void)n;
    return 0;
}
int ck_blocked(run_t *r)
{
    (void)r;
    return 0;
}
int ck_rebalancing(run_t *r)
{
    (void)r;
    return 0;
}
int ck_usable(run_t *r, const seg_customer_t *c)
{
    (void)r, (void)c;
    return 1;
}
void ck_dirty(run_t *r, const seg_customer_t *c)
{
    (void)r, (void)c;
}
int ck_outbox(run_t *r, const seg_customer_t *c, const void *p, size_t len)
{
    (void)r, (void)c, (void)p, (void)len;
    return 0;
}
void ck_tick(run_t *r)
{
    (void)r;
}
void ck_units_done(run_t *r)
{
    (void)r;
}
int ck_rebalance(run_t *r, int assigned, strm_tp_t *tps, int n)
{
    (void)r, (void)assigned, (void)tps, (void)n;
    return 0;
}
void ck_stop(run_t *r)
{
    (void)r;
}
void ck_advance(run_t *r)
{
    (void)r;
}
int ck_metrics(run_t *r, strm_buf_t *b)
{
    (void)r, (void)b;
    return 0;
}
void ck_health(run_t *r, strm_buf_t *out)
{
    (void)r, (void)out;
}
void ck_free(run_t *r)
{
    (void)r;
}

/* A run with partition 0 of `events` owned, three records (offsets 10..12)
 * taken and waiting in its queue. */
static run_t *with_three_waiting(void)
{
    run_t *r = calloc(1, sizeof(*r));
    cr_assert_not_null(r);
    r->last_part = -1;
    cli_log_level = LOG_ERROR + 1; /* quiet */
    strm_tp_t tp = {"events", 0, 10};
    cr_assert_eq(run_assign(r, &tp, 1, 1), 0);
    int k = find_part(r, "events", 0, 0);
    cr_assert_geq(k, 0);
    cr_assert(r->parts[k].owned);
    for (int64_t off = 10; off < 13; off++) {
        strm_msg_t m = {
            .topic = "events", .partition = 0, .offset = off, .payload = "{}", .len = 2};
        cr_assert_eq(enqueue(r, &m, 0), 0);
    }
    cr_assert_eq(r->parts[k].q_n, 3);
    cr_assert_eq(r->buffered, 3);
    return r;
}

static void free_run(run_t *r)
{
    for (int i = 0; i < r->n_parts; i++) q_clear(r, i);
    parts_free(r);
    free(r);
}

/* librdkafka 2.0's cooperative rejoin may hand out again a partition this
 * process still owns; the consumer leaves it out (it goes on fetching after
 * the records it handed out), so the records waiting in its queue are the
 * only copy this process will get: they must stay and be applied. */
Test(run_queue, an_assignment_naming_an_owned_partition_keeps_its_waiting_records)
{
    run_t *r = with_three_waiting();
    int k = find_part(r, "events", 0, 0);
    strm_tp_t again = {"events", 0, -1};
    cr_assert_eq(run_assign(r, &again, 1, 1), 0);
    cr_assert(r->parts[k].owned);
    cr_assert_eq(r->parts[k].q_n, 3, "the records taken and not applied are dropped");
    cr_assert_eq(r->buffered, 3);
    cr_assert_eq(r->parts[k].q[r->parts[k].q_head].m.offset, 10);
    cr_assert_eq(r->parts[k].taken_next, 13, "what was taken is still taken");
    free_run(r);
}

/* A revoke drops them (the next owner reads them from the stored offset),
 * and an assignment after it starts with nothing taken. */
Test(run_queue, a_revoke_drops_the_waiting_records_and_a_new_assignment_starts_empty)
{
    run_t *r = with_three_waiting();
    int k = find_part(r, "events", 0, 0);
    strm_tp_t tp = {"events", 0, -1};
    cr_assert_eq(run_assign(r, &tp, 1, 0), 0);
    cr_assert_not(r->parts[k].owned);
    cr_assert_eq(r->parts[k].q_n, 0);
    cr_assert_eq(r->buffered, 0);
    strm_msg_t late = {.topic = "events", .partition = 0, .offset = 13, .payload = "{}", .len = 2};
    cr_assert_eq(enqueue(r, &late, 0), 0);
    cr_assert_eq(r->parts[k].q_n, 0, "fetched before the revoke: its new owner has it");
    tp.offset = 10;
    cr_assert_eq(run_assign(r, &tp, 1, 1), 0);
    cr_assert(r->parts[k].owned);
    cr_assert_eq(r->parts[k].q_n, 0);
    cr_assert_eq(r->parts[k].taken_next, -1);
    free_run(r);
}

/* A queue that grows while it wraps (its head moved on, then it filled)
 * keeps its records in offset order. */
Test(run_queue, a_queue_that_grows_while_it_wraps_keeps_its_order)
{
    run_t *r = with_three_waiting();
    int k = find_part(r, "events", 0, 0);
    r->batch = calloc(BATCH_MAX, sizeof(*r->batch));
    r->batch_part = calloc(BATCH_MAX, sizeof(*r->batch_part));
    cr_assert(r->batch && r->batch_part);
    int64_t off = 13;
    for (; off < 10 + 20 + 64 + 1; off++) { /* one more than 64 waiting */
        strm_msg_t m = {
            .topic = "events", .partition = 0, .offset = off, .payload = "{}", .len = 2};
        cr_assert_eq(enqueue(r, &m, 0), 0);
        if (off == 40) { /* the head moves on by 20 */
            cr_assert_eq(merge(r, 20), 20);
            merged(r, 20);
        }
    }
    cr_assert_gt(r->parts[k].q_cap, 64, "grown");
    cr_assert_gt(r->parts[k].q_head, 0, "from a head that had moved on");
    int n = merge(r, BATCH_MAX);
    cr_assert_eq(n, (int)(off - 30));
    for (int i = 0; i < n; i++) cr_assert_eq(r->batch[i].offset, 30 + i, "record %d", i);
    merged(r, n);
    cr_assert_eq(r->buffered, 0);
    free(r->batch);
    free(r->batch_part);
    free(r->m_cur);
    free(r->m_wait);
    free_run(r);
}
