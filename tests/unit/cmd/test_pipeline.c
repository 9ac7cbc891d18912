/* tests/unit/cmd/test_pipeline.c: records far ahead of their stream
 * (cmd/pipeline.c, input.max_future_skew = 7 d): held until the next record
 * or the end decides; a quiet gap applies them, a bad clock dead-letters
 * them, a stream that caught up meanwhile applies them; the offset to commit
 * stays at a held record; a held record's key is its own. Runs under
 * ASan+UBSan in CI, for the held copies. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include "cmd/pipeline.h"

#define T 1700000000000LL
#define D 86400000LL

static cfg_t cfg;
static pl_t pl;
static char dead[16][64]; /* customer ids of the dead letters, in order */
static int n_dead;

static int on_dead(void *ud, const void *payload, size_t len, const char *reason, const char *topic,
                   int32_t partition, int64_t offset)
{
    (void)ud, (void)topic, (void)partition, (void)offset;
    cr_assert_str_eq(reason, "future_ts");
    char buf[256];
    snprintf(buf, sizeof buf, "%.*s", (int)len, (const char *)payload);
    const char *id = strstr(buf, "\"customer_id\":\"");
    cr_assert_not_null(id);
    snprintf(dead[n_dead++], sizeof dead[0], "%.*s", (int)strcspn(id + 15, "\""), id + 15);
    return 0;
}

static void setup(void)
{
    char err[256];
    cr_assert_eq(cfg_load_string(&cfg, "", 0, "test", err, sizeof err), 0, "%s", err);
    cr_assert_eq(pl_init(&pl, &cfg, err, sizeof err), 0, "%s", err);
    pl.on_dead = on_dead;
    n_dead = 0;
}

static void teardown(void)
{
    pl_free(&pl);
    cfg_free(&cfg);
}

TestSuite(pipeline, .init = setup, .fini = teardown);

static char rec[256];

static const char *ev(const char *id, int64_t ts)
{
    snprintf(rec, sizeof rec, "{\"customer_id\":\"%s\",\"type\":\"page_view\",\"ts\":%lld}", id,
             (long long)ts);
    return rec;
}

static void feed(pl_part_t *part, int32_t partition, int64_t offset, const char *id, int64_t ts)
{
    const char *r = ev(id, ts);
    cr_assert_eq(pl_record_part(&pl, part, r, strlen(r), "events", partition, offset), 0);
}

static int known(const char *id)
{
    int created = 0;
    return st_mem_get(pl.store, id, strlen(id), 0, &created) != NULL;
}

Test(pipeline, a_quiet_gap_is_applied_and_a_bad_clock_is_dead_lettered)
{
    feed(&pl.file, 0, 1, "a", T);
    feed(&pl.file, 0, 2, "b", T + 7 * D); /* exactly the skew ahead: applied */
    cr_assert_null(pl.file.held);
    feed(&pl.file, 0, 3, "x", T + 45 * D); /* held */
    cr_assert_not_null(pl.file.held);
    cr_assert_eq(pl_part_commit(&pl.file, 4), 3, "not committed past the held record");
    feed(&pl.file, 0, 4, "c", T + 8 * D); /* back near the stream: x was a bad clock */
    cr_assert_null(pl.file.held);
    cr_assert_eq(pl_part_commit(&pl.file, 5), 5);
    feed(&pl.file, 0, 5, "d", T + 16 * D); /* 8 days after c: held */
    cr_assert_not_null(pl.file.held);
    feed(&pl.file, 0, 6, "e", T + 16 * D + 5); /* near it: a quiet gap */
    feed(&pl.file, 0, 7, "z", T + 400 * D);
    cr_assert_eq(pl_part_end(&pl, &pl.file), 0); /* nothing after z: a bad clock */
    cr_assert_eq(n_dead, 2);
    cr_assert_str_eq(dead[0], "x");
    cr_assert_str_eq(dead[1], "z");
    const char *ids[] = {"a", "b", "x", "c", "d", "e", "z"};
    for (int i = 0; i < 7; i++)
        cr_assert_eq(known(ids[i]), ids[i][0] != 'x' && ids[i][0] != 'z', "%s", ids[i]);
    cr_assert_eq(pl.W, T + 16 * D + 5);
}

Test(pipeline, run_refers_to_every_partition_and_applies_what_the_stream_caught_up_with)
{
    pl.ext_W = 1; /* run: W is the caller's; each partition its own pl_part_t */
    pl_part_t p0, p1;
    pl_part_init(&p0);
    pl_part_init(&p1);
    feed(&p0, 0, 0, "a", T);
    feed(&p0, 0, 1, "x", T + 10 * D);
    cr_assert_not_null(p0.held);
    pl_part_hold_key(&p0, 0, 1, "kx", 2);
    pl_part_hold_key(&p0, 0, 0, "ka", 2); /* a's offset: not the held record, not kept */
    pl_part_hold_key(&p0, 1, 1, "kb", 2); /* another partition's offset 1: neither */
    size_t kl = 0;
    const char *k = pl_part_key_of(&p0, 0, 1, &kl);
    cr_assert(k && kl == 2 && memcmp(k, "kx", 2) == 0);
    cr_assert_null(pl_part_key_of(&p0, 1, 1, &kl), "another partition's offset 1");
    /* partition 1 reaches x's time in steps within the skew */
    feed(&p1, 1, 0, "b", T + 5 * D);
    feed(&p1, 1, 1, "b", T + 10 * D - 1000);
    cr_assert_null(p1.held);
    /* partition 0 idle: x is in line with the stream now */
    cr_assert_eq(pl_part_end(&pl, &p0), 0);
    cr_assert_eq(n_dead, 0);
    cr_assert(known("x"));
    /* a partition quiet for 8 days is not "future" while the others move */
    feed(&p1, 1, 2, "b", T + 16 * D);
    cr_assert_null(p1.held);
    feed(&p0, 0, 2, "q", T + 18 * D + 1);
    cr_assert_null(p0.held);
    cr_assert(known("q"));
    pl_part_drop(&p0);
    pl_part_drop(&p1);
}

Test(pipeline, a_fresh_states_first_record_waits_for_the_next)
{
    feed(&pl.file, 0, 1, "fut", T + 40000 * D); /* a bad clock, and nothing to hold it against */
    cr_assert_not_null(pl.file.held);
    cr_assert_eq(pl.has_W, 0, "W not set by a record still held");
    cr_assert_eq(pl_part_commit(&pl.file, 2), 1);
    feed(&pl.file, 0, 2, "a", T); /* far back: fut was the bad clock */
    cr_assert_eq(n_dead, 1);
    cr_assert_str_eq(dead[0], "fut");
    /* a is held in turn (still nothing applied): b near it vouches */
    feed(&pl.file, 0, 3, "b", T + 1000);
    cr_assert_null(pl.file.held);
    cr_assert(known("a") && known("b") && !known("fut"));
    cr_assert_eq(pl.W, T + 1000);
}

Test(pipeline, one_bad_clock_does_not_vouch_for_another_and_a_lone_first_record_is_kept)
{
    feed(&pl.file, 0, 1, "a", T);
    cr_assert_eq(pl_part_end(&pl, &pl.file), 0); /* the only record: nothing says it is wrong */
    cr_assert(known("a"));
    feed(&pl.file, 0, 2, "b", T + 1000);
    feed(&pl.file, 0, 3, "x", T + 40000 * D); /* held */
    feed(&pl.file, 0, 4, "y", T + 50000 * D); /* further still: x is not vouched for; y held */
    cr_assert_not_null(pl.file.held);
    feed(&pl.file, 0, 5, "c", T + 2000); /* back: y was a bad clock too */
    cr_assert_eq(n_dead, 2);
    cr_assert_str_eq(dead[0], "x");
    cr_assert_str_eq(dead[1], "y");
    cr_assert(known("c") && !known("x") && !known("y"));
    cr_assert_eq(pl.W, T + 2000);
}

/* run: before any event, the wall clock is the reference, so a fresh
 * state's plausible first record is applied at once (not held for want of a
 * second) and a far-future one is held, and dead-lettered when its
 * partition goes idle, even alone. */
Test(pipeline, run_checks_a_fresh_states_first_records_against_the_wall_clock)
{
    pl.ext_W = 1;
    pl.live = 1;
    pl_part_t p0, p1;
    pl_part_init(&p0);
    pl_part_init(&p1);
    feed(&p0, 0, 0, "fut", T + 40000 * D); /* 2133: after any wall clock this test meets */
    cr_assert_not_null(p0.held);
    cr_assert_eq(pl_part_end(&pl, &p0), 0); /* idle, alone: still a bad clock */
    cr_assert_eq(n_dead, 1);
    cr_assert_str_eq(dead[0], "fut");
    feed(&p1, 1, 0, "a", T); /* 2023: applied at once */
    cr_assert_null(p1.held);
    cr_assert(known("a") && !known("fut"));
    pl_part_drop(&p0);
    pl_part_drop(&p1);
}

Test(pipeline, a_skew_of_zero_turns_the_check_off)
{
    pl_free(&pl);
    cfg_free(&cfg);
    char err[256];
    const char *y = "input:\n  max_future_skew: 0\n";
    cr_assert_eq(cfg_load_string(&cfg, y, strlen(y), "test", err, sizeof err), 0, "%s", err);
    cr_assert_eq(pl_init(&pl, &cfg, err, sizeof err), 0, "%s", err);
    pl.on_dead = on_dead;
    feed(&pl.file, 0, 1, "a", T);
    cr_assert_null(pl.file.held);
    feed(&pl.file, 0, 2, "b", T + 4000 * D);
    cr_assert_null(pl.file.held);
    cr_assert_eq(n_dead, 0);
    cr_assert_eq(pl.W, T + 4000 * D);
}

Test(pipeline, run_dead_letters_a_bad_first_record_once_other_partitions_speak)
{
    pl.ext_W = 1;
    pl_part_t p0, p1;
    pl_part_init(&p0);
    pl_part_init(&p1);
    feed(&p0, 0, 0, "fut", T + 40000 * D); /* held: nothing anywhere yet */
    feed(&p1, 1, 0, "a", T);               /* held too */
    feed(&p1, 1, 1, "b", T + 1000);        /* vouches for a */
    cr_assert(known("a") && known("b"));
    cr_assert_eq(pl_part_end(&pl, &p0), 0); /* partition 0 idle: fut is not in line */
    cr_assert_eq(n_dead, 1);
    cr_assert_str_eq(dead[0], "fut");
    pl_part_drop(&p0);
    pl_part_drop(&p1);
}
