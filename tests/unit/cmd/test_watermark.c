/* tests/unit/cmd/test_watermark.c: what W may be after an assignment
 * (cmd/watermark.c): a partition taken over that lags brings W back, one
 * with a later floor does not, kept partitions (an incremental assignment,
 * as a cooperative-sticky group makes) keep W where it is, and one with
 * no evidence is marked for its first record. */
#include <criterion/criterion.h>
#include <string.h>
#include "cmd/watermark.h"

#define DAY 86400000LL

static part_t mk(int32_t partition, int owned, int64_t hi, int64_t w_floor)
{
    part_t p;
    memset(&p, 0, sizeof(p));
    p.topic = "events";
    p.partition = partition;
    p.owned = owned;
    pl_part_init(&p.pp);
    p.pp.hi = hi;
    p.w_floor = w_floor;
    return p;
}

static strm_tp_t tp(int32_t partition)
{
    return (strm_tp_t){.topic = "events", .partition = partition, .offset = 0};
}

Test(watermark, a_partition_allows_its_newest_time_less_lateness_or_its_floor)
{
    part_t p = mk(0, 1, 100 * DAY, INT64_MIN);
    cr_assert_eq(wm_part_allows(&p, DAY), 99 * DAY);
    p.w_floor = 120 * DAY; /* its previous owner had it idle and moved on */
    cr_assert_eq(wm_part_allows(&p, DAY), 120 * DAY);
    p = mk(0, 1, INT64_MIN, INT64_MIN);
    cr_assert_eq(wm_part_allows(&p, DAY), INT64_MIN, "no evidence");
    p.w_floor = 5 * DAY;
    cr_assert_eq(wm_part_allows(&p, DAY), 5 * DAY);
}

Test(watermark, a_partition_taken_over_that_lags_brings_w_back)
{
    /* eager: the whole assignment is new; partition 1 was read to day 70
     * by its stopped owner (which had stepped it to day 69), this process's
     * W is at day 100 */
    part_t parts[] = {mk(0, 1, 101 * DAY, 100 * DAY), mk(1, 1, 70 * DAY, 69 * DAY)};
    strm_tp_t tps[] = {tp(0), tp(1)};
    cr_assert_eq(wm_assigned(parts, 2, tps, 2, 100 * DAY, 0), 70 * DAY);
    cr_assert_eq(parts[0].w_floor, 100 * DAY, "an assigned partition's floor is its own");
    cr_assert_eq(parts[1].w_floor, 69 * DAY);
    cr_assert_not(parts[0].no_evidence || parts[1].no_evidence);
}

Test(watermark, no_partition_behind_leaves_w)
{
    part_t parts[] = {mk(0, 1, 101 * DAY, INT64_MIN), mk(1, 1, 50 * DAY, 100 * DAY),
                      mk(2, 0, 10 * DAY, INT64_MIN)}; /* 2: not owned, does not count */
    strm_tp_t tps[] = {tp(0), tp(1)};
    cr_assert_eq(wm_assigned(parts, 3, tps, 2, 100 * DAY, 0), 100 * DAY);
}

Test(watermark, partitions_kept_through_an_incremental_assignment_keep_w)
{
    /* cooperative: 0 and 1 were idle and W moved past their newest times
     * with the wall clock; the assignment only adds 2, which is current */
    part_t parts[] = {mk(0, 1, 90 * DAY, INT64_MIN), mk(1, 1, 95 * DAY, INT64_MIN),
                      mk(2, 1, 101 * DAY, 100 * DAY)};
    strm_tp_t added[] = {tp(2)};
    cr_assert_eq(wm_assigned(parts, 3, added, 1, 100 * DAY, 0), 100 * DAY);
    cr_assert_eq(parts[0].w_floor, 100 * DAY, "kept: its customers are stepped to W");
    cr_assert_eq(parts[1].w_floor, 100 * DAY);
    /* an empty incremental assignment (librdkafka makes them) changes nothing */
    cr_assert_eq(wm_assigned(parts, 3, NULL, 0, 100 * DAY, 0), 100 * DAY);
    /* but an added partition that lags still brings W back */
    parts[2].pp.hi = 60 * DAY, parts[2].w_floor = 59 * DAY;
    cr_assert_eq(wm_assigned(parts, 3, added, 1, 100 * DAY, 0), 60 * DAY);
}

Test(watermark, a_partition_without_evidence_is_marked_and_leaves_w)
{
    part_t parts[] = {mk(0, 1, 101 * DAY, 100 * DAY), mk(1, 1, INT64_MIN, INT64_MIN)};
    strm_tp_t tps[] = {tp(0), tp(1)};
    cr_assert_eq(wm_assigned(parts, 2, tps, 2, 100 * DAY, 0), 100 * DAY);
    cr_assert(parts[1].no_evidence, "its first record decides");
    cr_assert_not(parts[0].no_evidence);
}
