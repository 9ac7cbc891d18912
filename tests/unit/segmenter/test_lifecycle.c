/* tests/unit/segmenter/test_lifecycle.c: CONTRACT §2 lifecycle, edge cases:
 * bounds are inclusive, silent changes carry ts = the boundary, a jump of W
 * over several thresholds gives every change in order. */
#include <criterion/criterion.h>
#include "helpers.h"

static seg_t *s;
static seg_customer_t c;
static rec_t r;

static void setup(void)
{
    s = mkseg();
    cr_assert_not_null(s);
    seg_customer_init(&c, "c42", 3, 0);
    memset(&r, 0, sizeof(r));
}
static void teardown(void)
{
    seg_customer_clear(&c);
    seg_free(s);
}
TestSuite(lifecycle, .init = setup, .fini = teardown);

static void apply(seg_evtype_t t, int64_t ts, int64_t W)
{
    seg_event_t ev = mkev("c42", t, ts);
    cr_assert_eq(seg_apply(s, &c, &ev, W, rec_fn, &r), 0);
}
static void step_to(int64_t W)
{
    while (seg_step_due(s, &c, W, rec_fn, &r)) {
    }
}
static void expect(int k, const char *from, const char *to, int64_t ts)
{
    int i = rec_find(&r, SEG_DIM_LIFECYCLE, k);
    cr_assert_geq(i, 0, "lifecycle change %d missing", k);
    cr_expect_str_eq(r.from[i], from, "change %d from", k);
    cr_expect_str_eq(r.to[i], to, "change %d to", k);
    cr_expect_eq(r.ts[i], ts, "change %d ts %lld != %lld", k, (long long)r.ts[i], (long long)ts);
}
static int n_lifecycle(void)
{
    int n = 0;
    for (int i = 0; i < r.n; i++) n += r.dim[i] == SEG_DIM_LIFECYCLE;
    return n;
}

Test(lifecycle, one_event_customer)
{
    apply(SEG_EV_PAGE_VIEW, T0, T0);
    expect(0, "(null)", "new", T0);
    cr_assert_eq(c.due, T0 + 30 * DAY);
    step_to(T0 + 30 * DAY); /* boundary equal to W has not passed */
    cr_assert_eq(n_lifecycle(), 1);
    step_to(T0 + 30 * DAY + 1);
    expect(1, "new", "at_risk", T0 + 30 * DAY);
    cr_assert_eq(c.due, T0 + 60 * DAY);
    step_to(T0 + 400 * DAY);
    expect(2, "at_risk", "lapsed", T0 + 60 * DAY);
    cr_assert_eq(n_lifecycle(), 3);
    cr_assert_eq(c.due, SEG_NEVER);
}

Test(lifecycle, watermark_jump_across_both_thresholds_emits_both_in_order)
{
    apply(SEG_EV_PAGE_VIEW, T0, T0);
    apply(SEG_EV_PAGE_VIEW, T0 + 40 * DAY, T0 + 40 * DAY); /* new -> active via the new window */
    int base = n_lifecycle();
    step_to(T0 + 200 * DAY);
    cr_assert_eq(n_lifecycle(), base + 2);
    expect(base, "active", "at_risk", T0 + 70 * DAY);
    expect(base + 1, "at_risk", "lapsed", T0 + 100 * DAY);
    cr_assert_eq(c.lifecycle, SEG_LC_LAPSED);
}

Test(lifecycle, gap_of_exactly_30_days_keeps_active)
{
    apply(SEG_EV_PAGE_VIEW, T0, T0);
    step_to(T0 + 31 * DAY);
    expect(1, "new", "at_risk", T0 + 30 * DAY); /* one event only: no `active` yet */
    apply(SEG_EV_PAGE_VIEW, T0 + 31 * DAY, T0 + 31 * DAY);
    expect(2, "at_risk", "active", T0 + 31 * DAY);
    int64_t la = T0 + 31 * DAY;
    /* an event at exactly last_activity + 30 d: W = boundary, not passed */
    apply(SEG_EV_PAGE_VIEW, la + 30 * DAY, la + 30 * DAY);
    cr_assert_eq(c.lifecycle, SEG_LC_ACTIVE);
    cr_assert_eq(n_lifecycle(), 3, "no at_risk in between");
    cr_assert_eq(c.due, la + 60 * DAY);
}

Test(lifecycle, one_ms_past_the_boundary_is_at_risk_first)
{
    apply(SEG_EV_PAGE_VIEW, T0, T0);
    apply(SEG_EV_PAGE_VIEW, T0 + 31 * DAY, T0 + 31 * DAY);
    int64_t la = T0 + 31 * DAY;
    apply(SEG_EV_PAGE_VIEW, la + 30 * DAY + 1, la + 30 * DAY + 1);
    int n = n_lifecycle();
    expect(n - 2, "active", "at_risk", la + 30 * DAY);
    expect(n - 1, "at_risk", "active", la + 30 * DAY + 1);
}

Test(lifecycle, reactivation_after_lapse_and_its_window)
{
    apply(SEG_EV_PURCHASE, T0, T0);
    step_to(T0 + 90 * DAY);
    cr_assert_eq(c.lifecycle, SEG_LC_LAPSED);
    int64_t back = T0 + 90 * DAY;
    apply(SEG_EV_PAGE_VIEW, back, back);
    int n = n_lifecycle();
    expect(n - 1, "lapsed", "reactivated", back);
    cr_assert_eq(c.reactivated_at, back);
    /* stays reactivated for 30 d, then active while activity continues */
    apply(SEG_EV_PAGE_VIEW, back + 20 * DAY, back + 20 * DAY);
    cr_assert_eq(c.lifecycle, SEG_LC_REACTIVATED);
    step_to(back + 30 * DAY + 1);
    expect(n, "reactivated", "active", back + 30 * DAY);
    step_to(back + 50 * DAY + 1);
    expect(n + 1, "active", "at_risk", back + 50 * DAY);
}

Test(lifecycle, reactivated_then_silent_goes_at_risk_directly)
{
    apply(SEG_EV_PAGE_VIEW, T0, T0);
    step_to(T0 + 100 * DAY);
    int64_t back = T0 + 100 * DAY;
    apply(SEG_EV_PAGE_VIEW, back, back);
    step_to(back + 31 * DAY);
    int n = n_lifecycle();
    expect(n - 1, "reactivated", "at_risk", back + 30 * DAY);
}

Test(lifecycle, at_risk_customer_returning_is_active_not_reactivated)
{
    apply(SEG_EV_PAGE_VIEW, T0, T0);
    apply(SEG_EV_PAGE_VIEW, T0 + 35 * DAY, T0 + 35 * DAY);
    step_to(T0 + 70 * DAY);
    cr_assert_eq(c.lifecycle, SEG_LC_AT_RISK);
    apply(SEG_EV_PAGE_VIEW, T0 + 70 * DAY, T0 + 70 * DAY);
    cr_assert_eq(c.lifecycle, SEG_LC_ACTIVE);
    cr_assert_eq(c.reactivated_at, SEG_NO_TIME);
}

Test(lifecycle, late_first_event_steps_through_every_stage)
{
    int64_t W = T0 + 100 * DAY;
    apply(SEG_EV_PAGE_VIEW, T0, W);
    expect(0, "(null)", "new", T0);
    expect(1, "new", "at_risk", T0 + 30 * DAY);
    expect(2, "at_risk", "lapsed", T0 + 60 * DAY);
}

Test(lifecycle, stage_function_and_next_due_are_consistent)
{
    const seg_params_t *p = seg_params(s);
    apply(SEG_EV_PAGE_VIEW, T0, T0);
    apply(SEG_EV_PAGE_VIEW, T0 + 10 * DAY, T0 + 10 * DAY);
    int64_t W = T0 + 10 * DAY;
    for (int i = 0; i < 5; i++) {
        int64_t nx = seg_lifecycle_next(p, &c, W);
        if (nx == SEG_NEVER) break;
        cr_assert_eq(seg_lifecycle_at(p, &c, nx), seg_lifecycle_at(p, &c, W));
        cr_assert_neq(seg_lifecycle_at(p, &c, nx + 1), seg_lifecycle_at(p, &c, W));
        W = nx + 1;
    }
}

Test(lifecycle, only_configured_types_count_as_activity)
{
    seg_free(s);
    seg_params_t p;
    char err[128];
    seg_params_default(&p);
    p.activity_mask = 1u << SEG_EV_PURCHASE;
    s = seg_new(&p, err, sizeof(err));
    cr_assert_not_null(s);
    apply(SEG_EV_PURCHASE, T0, T0);
    apply(SEG_EV_PAGE_VIEW, T0 + 50 * DAY, T0 + 50 * DAY); /* not activity */
    cr_assert_eq(c.last_activity, T0);
    cr_assert_eq(c.lifecycle, SEG_LC_AT_RISK);
    cr_assert_eq(c.last_seen, T0 + 50 * DAY);
}

Test(lifecycle, change_ids_are_deterministic_and_sequenced)
{
    apply(SEG_EV_PAGE_VIEW, T0, T0);
    step_to(T0 + 100 * DAY);
    cr_assert_str_eq(r.id[0], "c42:lifecycle:1");
    cr_assert_str_eq(r.id[1], "c42:lifecycle:2");
    cr_assert_str_eq(r.id[2], "c42:lifecycle:3");
}

Test(lifecycle, sizes_follow_changes)
{
    apply(SEG_EV_PAGE_VIEW, T0, T0);
    const seg_sizes_t *sz = seg_sizes(s);
    cr_assert_eq(sz->customers, 1);
    cr_assert_eq(sz->lifecycle[SEG_LC_NEW], 1);
    step_to(T0 + 100 * DAY);
    cr_assert_eq(sz->lifecycle[SEG_LC_NEW], 0);
    cr_assert_eq(sz->lifecycle[SEG_LC_AT_RISK], 0);
    cr_assert_eq(sz->lifecycle[SEG_LC_LAPSED], 1);
}

static char reasons[8][96];
static int n_reasons;
static void reason_fn(void *ud, const seg_change_t *ch)
{
    (void)ud;
    if (ch->dim == SEG_DIM_LIFECYCLE && n_reasons < 8)
        snprintf(reasons[n_reasons++], sizeof reasons[0], "%s", ch->reason);
}

/* Thresholds under a day are said in their own unit, not "5.78704e-05 days". */
Test(lifecycle, reasons_name_thresholds_in_a_readable_unit)
{
    seg_params_t p;
    char err[256];
    seg_free(s);
    seg_params_default(&p);
    p.new_ms = 3000;
    p.at_risk_ms = 5000;
    p.lapsed_ms = 36 * 3600000LL;
    p.reactivated_ms = 60000;
    s = seg_new(&p, err, sizeof(err));
    cr_assert_not_null(s, "%s", err);
    n_reasons = 0;
    seg_event_t ev = mkev("c42", SEG_EV_PAGE_VIEW, T0);
    cr_assert_eq(seg_apply(s, &c, &ev, T0, reason_fn, NULL), 0);
    ev = mkev("c42", SEG_EV_PAGE_VIEW, T0 + 1000);
    cr_assert_eq(seg_apply(s, &c, &ev, T0 + 1000, reason_fn, NULL), 0);
    while (seg_step_due(s, &c, T0 + 3 * DAY, reason_fn, NULL)) {
    }
    ev = mkev("c42", SEG_EV_PAGE_VIEW, T0 + 3 * DAY);
    cr_assert_eq(seg_apply(s, &c, &ev, T0 + 3 * DAY, reason_fn, NULL), 0);
    ev = mkev("c42", SEG_EV_PAGE_VIEW, T0 + 3 * DAY + 57000); /* active at the window's end */
    cr_assert_eq(seg_apply(s, &c, &ev, T0 + 3 * DAY + 57000, reason_fn, NULL), 0);
    while (seg_step_due(s, &c, T0 + 3 * DAY + 61000, reason_fn, NULL)) {
    }
    const char *want[] = {"first event",
                          "3 seconds since first seen",
                          "no activity for 5 seconds",
                          "no activity for 36 hours",
                          "activity after lapse",
                          "1 minute since return"};
    int n = (int)(sizeof want / sizeof want[0]);
    cr_assert_geq(n_reasons, n, "%d lifecycle changes", n_reasons);
    for (int i = 0; i < n; i++)
        cr_expect_str_eq(reasons[i], want[i], "change %d: %s", i, reasons[i]);

    /* the defaults read as before */
    seg_free(s);
    s = mkseg();
    n_reasons = 0;
    seg_customer_clear(&c);
    seg_customer_init(&c, "c42", 3, 0);
    ev = mkev("c42", SEG_EV_PAGE_VIEW, T0);
    cr_assert_eq(seg_apply(s, &c, &ev, T0, reason_fn, NULL), 0);
    while (seg_step_due(s, &c, T0 + 100 * DAY, reason_fn, NULL)) {
    }
    cr_assert_eq(n_reasons, 3);
    cr_expect_str_eq(reasons[1], "no activity for 30 days");
    cr_expect_str_eq(reasons[2], "no activity for 60 days");
}
