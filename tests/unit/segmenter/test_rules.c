/* tests/unit/segmenter/test_rules.c: rule compilation errors and evaluation
 * over features, traits and the top category; rule change events. */
#include <criterion/criterion.h>
#include <math.h>
#include "helpers.h"

static seg_t *build(const char *name, int any, const char **conds, int n)
{
    seg_params_t p;
    char err[256];
    seg_params_default(&p);
    cr_assert_eq(seg_params_add_rule(&p, name, any, conds, n, err, sizeof(err)), 0, "%s", err);
    seg_t *s = seg_new(&p, err, sizeof(err));
    cr_assert_not_null(s);
    return s;
}

static void expect_error(const char *cond, const char *needle)
{
    seg_params_t p;
    char err[256] = "";
    seg_params_default(&p);
    const char *conds[] = {cond};
    cr_assert_eq(seg_params_add_rule(&p, "r", 0, conds, 1, err, sizeof(err)), -1, "%s", cond);
    cr_assert(strstr(err, needle) != NULL, "error '%s' lacks '%s'", err, needle);
    seg_params_clear(&p);
}

Test(rules, compile_errors_name_the_problem)
{
    expect_error("monetery > 100", "unknown feature 'monetery'");
    expect_error("monetary >> 100", "is not a number");
    expect_error("monetary 100", "expected an operator");
    expect_error("monetary > abc", "'abc' is not a number");
    expect_error("country in GB", "expected [a, b, ...]");
    expect_error("country in []", "empty list");
    expect_error("monetary in [1, 2]", "'in' takes a trait");
    expect_error("", "expected a feature or trait name");
    /* a slip for a feature is not taken as a trait of that name */
    expect_error("ordrs != 1", "unknown feature 'ordrs' (did you mean orders?");
    expect_error("monetery == 0", "did you mean monetary?");
    expect_error("top_categry in [books]", "did you mean top_category?");
}

Test(rules, short_or_distant_names_stay_traits)
{
    /* a trait near a feature's name compared with text, a short one with a
     * number, or one spelt traits.NAME */
    const char *conds[] = {"age == 30",      "country == GB",     "traits.ordrs != 1",
                           "tier in [gold]", "offers == gold",    "app_store == yes",
                           "visitor != no",  "reviews in [a, b]", "evening_shar in [1]"};
    for (int i = 0; i < 9; i++) {
        seg_t *s = build("t", 0, &conds[i], 1);
        seg_free(s);
    }
}

Test(rules, bad_names_and_duplicates)
{
    seg_params_t p;
    char err[256];
    const char *conds[] = {"orders >= 1"};
    seg_params_default(&p);
    cr_assert_eq(seg_params_add_rule(&p, "Big Spender", 0, conds, 1, err, sizeof(err)), -1);
    cr_assert(strstr(err, "a-z") != NULL);
    cr_assert_eq(seg_params_add_rule(&p, "big", 0, conds, 1, err, sizeof(err)), 0);
    cr_assert_eq(seg_params_add_rule(&p, "big", 0, conds, 1, err, sizeof(err)), -1);
    cr_assert(strstr(err, "twice") != NULL);
    cr_assert_eq(seg_params_add_rule(&p, "none", 0, conds, 0, err, sizeof(err)), -1);
    /* "c:rule:lifecycle:1" would be both c's rule change and customer
     * "c:rule"'s lifecycle change */
    cr_assert_eq(seg_params_add_rule(&p, "lifecycle", 0, conds, 1, err, sizeof(err)), -1);
    cr_assert(strstr(err, "reserved") != NULL);
    cr_assert_eq(seg_params_add_rule(&p, "lifecycles", 0, conds, 1, err, sizeof(err)), 0);
    seg_params_clear(&p);
}

Test(rules, all_of_features_enters_and_leaves_with_changes)
{
    const char *conds[] = {"monetary > 100", "orders >= 2"};
    seg_t *s = build("big_spender", 0, conds, 2);
    seg_customer_t c;
    rec_t r = {0};
    seg_customer_init(&c, "c7", 2, 0);
    seg_event_t ev = mkev("c7", SEG_EV_PURCHASE, T0);
    ev.amount = 80;
    seg_apply(s, &c, &ev, T0, rec_fn, &r);
    cr_assert_eq(rec_find(&r, SEG_DIM_RULE, 0), -1, "not in yet: no event");
    ev.ts = T0 + DAY;
    seg_apply(s, &c, &ev, ev.ts, rec_fn, &r);
    int i = rec_find(&r, SEG_DIM_RULE, 0);
    cr_assert_geq(i, 0);
    cr_assert_str_eq(r.from[i], "(null)");
    cr_assert_str_eq(r.to[i], "in");
    cr_assert_str_eq(r.id[i], "c7:rule:big_spender:1"); /* rules have their own sequence */
    cr_assert_eq(seg_sizes(s)->rule[0], 1);
    /* decay: 160 * 2^(-t/90d) <= 100 after ~61 days; the next event re-evaluates */
    ev = mkev("c7", SEG_EV_PAGE_VIEW, T0 + 80 * DAY);
    seg_apply(s, &c, &ev, ev.ts, rec_fn, &r);
    i = rec_find(&r, SEG_DIM_RULE, 1);
    cr_assert_geq(i, 0);
    cr_assert_str_eq(r.from[i], "in");
    cr_assert_str_eq(r.to[i], "out");
    cr_assert_eq(seg_sizes(s)->rule[0], 0);
    seg_customer_clear(&c);
    seg_free(s);
}

Test(rules, any_of_traits_and_category)
{
    const char *conds[] = {"country in [GB, IE]", "top_category == books"};
    seg_t *s = build("uk_or_books", 1, conds, 2);
    seg_customer_t a, b, d;
    seg_customer_init(&a, "a", 1, 0);
    seg_customer_init(&b, "b", 1, 1);
    seg_customer_init(&d, "d", 1, 2);
    seg_event_t ev = mkev("a", SEG_EV_PAGE_VIEW, T0);
    ev.n_traits = 1;
    snprintf(ev.traits[0].key, SEG_TRAIT_KEY, "country");
    snprintf(ev.traits[0].val, SEG_TRAIT_VAL, "IE");
    seg_apply(s, &a, &ev, T0, NULL, NULL);
    ev = mkev("b", SEG_EV_PRODUCT_VIEW, T0);
    ev.category_len = (uint8_t)snprintf(ev.category, sizeof(ev.category), "books");
    seg_apply(s, &b, &ev, T0, NULL, NULL);
    ev = mkev("d", SEG_EV_PRODUCT_VIEW, T0);
    ev.category_len = (uint8_t)snprintf(ev.category, sizeof(ev.category), "toys");
    seg_apply(s, &d, &ev, T0, NULL, NULL);
    cr_assert_eq(a.rules, 1);
    cr_assert_eq(b.rules, 1);
    cr_assert_eq(d.rules, 0);
    seg_customer_clear(&a);
    seg_customer_clear(&b);
    seg_customer_clear(&d);
    seg_free(s);
}

Test(rules, numeric_trait_and_not_in)
{
    const char *conds[] = {"traits.age >= 30", "country not in [US]"};
    seg_t *s = build("older_non_us", 0, conds, 2);
    seg_customer_t c;
    seg_customer_init(&c, "c", 1, 0);
    seg_event_t ev = mkev("c", SEG_EV_PAGE_VIEW, T0);
    ev.n_traits = 2;
    snprintf(ev.traits[0].key, SEG_TRAIT_KEY, "age");
    snprintf(ev.traits[0].val, SEG_TRAIT_VAL, "41");
    snprintf(ev.traits[1].key, SEG_TRAIT_KEY, "country");
    snprintf(ev.traits[1].val, SEG_TRAIT_VAL, "FR");
    seg_apply(s, &c, &ev, T0, NULL, NULL);
    cr_assert_eq(c.rules, 1);
    ev.ts += 1000;
    ev.n_traits = 1;
    snprintf(ev.traits[0].val, SEG_TRAIT_VAL, "abc"); /* not a number: the rule does not hold */
    seg_apply(s, &c, &ev, ev.ts, NULL, NULL);
    cr_assert_eq(c.rules, 0);
    seg_customer_clear(&c);
    seg_free(s);
}

Test(rules, recency_uses_the_watermark)
{
    const char *conds[] = {"recency_days > 10"};
    seg_t *s = build("quiet", 0, conds, 1);
    seg_customer_t c;
    seg_customer_init(&c, "c", 1, 0);
    seg_event_t ev = mkev("c", SEG_EV_PAGE_VIEW, T0);
    seg_apply(s, &c, &ev, T0, NULL, NULL);
    cr_assert_float_eq(seg_feature(s, &c, "recency_days", T0 + 11 * DAY), 11.0, 1e-9);
    cr_assert_eq(c.rules, 0);
    seg_customer_clear(&c);
    seg_free(s);
}

/* ---- silent rule changes: closed-form crossing times in the due index ---- */

/* One purchase of `amount` at T0 for a fresh customer under rule `cond`. */
static seg_t *one_purchase(const char *cond, double amount, seg_customer_t *c, rec_t *r)
{
    const char *conds[] = {cond};
    seg_t *s = build("r", 0, conds, 1);
    seg_customer_init(c, "c", 1, 0);
    seg_event_t ev = mkev("c", SEG_EV_PURCHASE, T0);
    ev.amount = amount;
    seg_apply(s, c, &ev, T0, rec_fn, r);
    return s;
}

/* Performs every silent change due before W; returns the index in r of
 * the first rule change among them (or -1). */
static int step_to(seg_t *s, seg_customer_t *c, int64_t W, rec_t *r)
{
    int n = r->n;
    while (seg_step_due(s, c, W, rec_fn, r)) {
    }
    for (int i = n; i < r->n; i++)
        if (r->dim[i] == SEG_DIM_RULE) return i;
    return -1;
}

Test(rules, decayed_rule_leaves_at_the_exact_millisecond)
{
    /* 200 halves to exactly 100 after one 90-day half-life: `> 100` stops
     * holding at that very millisecond */
    seg_customer_t c;
    rec_t r = {0};
    seg_t *s = one_purchase("monetary > 100", 200, &c, &r);
    cr_assert_eq(c.rules, 1);
    int64_t T = T0 + 90 * DAY;
    cr_assert_eq(step_to(s, &c, T - 1, &r), -1, "still in while W is before T");
    cr_assert_eq(c.due, T - 1, "due %lld, want %lld", (long long)c.due, (long long)(T - 1));
    int i = step_to(s, &c, T, &r);
    cr_assert_geq(i, 0);
    cr_assert_str_eq(r.to[i], "out");
    cr_assert_eq(r.ts[i], T);
    cr_assert_str_eq(r.id[i], "c:rule:r:2");
    cr_assert_eq(c.rules, 0);
    cr_assert_eq(seg_sizes(s)->rule[0], 0);
    seg_customer_clear(&c);
    seg_free(s);

    /* `>= 100` still holds there and leaves one millisecond later */
    rec_t r2 = {0};
    s = one_purchase("monetary >= 100", 200, &c, &r2);
    cr_assert_eq(step_to(s, &c, T, &r2), -1);
    i = step_to(s, &c, T + 1, &r2);
    cr_assert_geq(i, 0);
    cr_assert_eq(r2.ts[i], T + 1);
    seg_customer_clear(&c);
    seg_free(s);
}

Test(rules, decayed_crossing_between_milliseconds_is_rounded_up)
{
    /* 160 * 2^(-t/90d) = 100 at t = 90d * log2(1.6), not a whole ms */
    seg_customer_t c;
    rec_t r = {0};
    seg_t *s = one_purchase("monetary > 100", 160, &c, &r);
    int i = step_to(s, &c, T0 + 365 * DAY, &r);
    cr_assert_geq(i, 0);
    int64_t T = r.ts[i];
    double exact = (double)T0 + 90.0 * DAY * log2(1.6);
    cr_assert(T >= exact && T < exact + 1, "T %lld, crossing at %.3f", (long long)T, exact);
    cr_assert_gt(seg_feature(s, &c, "monetary", T - 1), 100.0);
    cr_assert_leq(seg_feature(s, &c, "monetary", T), 100.0);
    seg_customer_clear(&c);
    seg_free(s);
}

Test(rules, linear_features_cross_at_whole_days)
{
    seg_customer_t c;
    rec_t r = {0};
    /* recency 14 days is not yet "> 14": the rule holds from 14 d + 1 ms */
    seg_t *s = one_purchase("recency_days > 14", 10, &c, &r);
    cr_assert_eq(c.rules, 0);
    cr_assert_eq(step_to(s, &c, T0 + 14 * DAY, &r), -1);
    int i = step_to(s, &c, T0 + 14 * DAY + 1, &r);
    cr_assert_geq(i, 0);
    cr_assert_eq(r.ts[i], T0 + 14 * DAY + 1);
    cr_assert_str_eq(r.from[i], "(null)");
    cr_assert_str_eq(r.to[i], "in");
    seg_customer_clear(&c);
    seg_free(s);

    rec_t r2 = {0};
    s = one_purchase("tenure_days >= 45", 10, &c, &r2);
    cr_assert_eq(step_to(s, &c, T0 + 45 * DAY - 1, &r2), -1);
    i = step_to(s, &c, T0 + 45 * DAY, &r2);
    cr_assert_geq(i, 0);
    cr_assert_eq(r2.ts[i], T0 + 45 * DAY, "holds from exactly 45 days");
    seg_customer_clear(&c);
    seg_free(s);
}

Test(rules, a_flip_that_changes_no_rule_is_not_due)
{
    /* any[monetary > 100, orders >= 1]: monetary falls below 100 but the
     * rule goes on holding on orders; the only due change is lifecycle's */
    const char *conds[] = {"monetary > 100", "orders >= 1"};
    seg_t *s = build("r", 1, conds, 2);
    seg_customer_t c;
    seg_customer_init(&c, "c", 1, 0);
    seg_event_t ev = mkev("c", SEG_EV_PURCHASE, T0);
    ev.amount = 200;
    seg_apply(s, &c, &ev, T0, NULL, NULL);
    cr_assert_eq(c.rules, 1);
    cr_assert_eq(c.due, seg_lifecycle_next(seg_params(s), &c, T0));
    seg_customer_clear(&c);
    seg_free(s);
}

Test(rules, rule_and_lifecycle_changes_interleave_in_ts_order)
{
    /* one purchase of 400: monetary > 100 holds for two half-lives (180 d);
     * recency > 45 from 45 d + 1 ms; lifecycle at 30 d (at_risk) and 60 d
     * (lapsed). W jumps a year at once. */
    seg_params_t p;
    char err[256];
    seg_params_default(&p);
    const char *a[] = {"monetary > 100"}, *b[] = {"recency_days > 45"};
    cr_assert_eq(seg_params_add_rule(&p, "big", 0, a, 1, err, sizeof err), 0);
    cr_assert_eq(seg_params_add_rule(&p, "gone", 0, b, 1, err, sizeof err), 0);
    seg_t *s = seg_new(&p, err, sizeof err);
    seg_customer_t c;
    rec_t r = {0};
    seg_customer_init(&c, "c", 1, 0);
    seg_event_t ev = mkev("c", SEG_EV_PURCHASE, T0);
    ev.amount = 400;
    seg_apply(s, &c, &ev, T0, rec_fn, &r);
    int n0 = r.n;
    while (seg_step_due(s, &c, T0 + 365 * DAY, rec_fn, &r)) {
    }
    const char *want_to[] = {"at_risk", "in", "lapsed", "out"};
    int64_t want_ts[] = {T0 + 30 * DAY, T0 + 45 * DAY + 1, T0 + 60 * DAY, T0 + 180 * DAY};
    cr_assert_eq(r.n - n0, 4);
    for (int i = 0; i < 4; i++) {
        cr_assert_str_eq(r.to[n0 + i], want_to[i], "change %d", i);
        cr_assert_eq(r.ts[n0 + i], want_ts[i], "change %d ts %lld", i, (long long)r.ts[n0 + i]);
    }
    cr_assert_eq(c.due, SEG_NEVER);
    seg_customer_clear(&c);
    seg_free(s);
}

Test(rules, a_rule_settled_by_its_fixed_conditions_is_not_due)
{
    /* `abroad_and_quiet` cannot hold for a customer from FR whatever its
     * recency does (its recency condition flips at +10 d without effect),
     * `ordered` holds whatever W does, `buyer_or_quiet` is taken over by
     * recency at +10 d before monetary lets go; `buyer` depends on monetary
     * alone, which leaves `> 100` at +90 d: the only rule change */
    seg_params_t p;
    char err[256];
    seg_params_default(&p);
    const char *a[] = {"country in [GB, IE]", "recency_days > 10"};
    const char *b[] = {"orders >= 1", "monetary > 100"};
    cr_assert_eq(seg_params_add_rule(&p, "abroad_and_quiet", 0, a, 2, err, sizeof(err)), 0);
    cr_assert_eq(seg_params_add_rule(&p, "buyer", 0, b, 2, err, sizeof(err)), 0);
    const char *c3[] = {"orders >= 1"}; /* fixed conditions only, all true */
    cr_assert_eq(seg_params_add_rule(&p, "ordered", 0, c3, 1, err, sizeof(err)), 0);
    const char *d[] = {"recency_days > 10", "monetary > 100"}; /* holds throughout */
    cr_assert_eq(seg_params_add_rule(&p, "buyer_or_quiet", 1, d, 2, err, sizeof(err)), 0);
    seg_t *s = seg_new(&p, err, sizeof(err));
    cr_assert_not_null(s);
    seg_customer_t c;
    seg_customer_init(&c, "c", 1, 0);
    seg_event_t ev = mkev("c", SEG_EV_PURCHASE, T0);
    ev.amount = 200;
    ev.n_traits = 1;
    snprintf(ev.traits[0].key, SEG_TRAIT_KEY, "country");
    snprintf(ev.traits[0].val, SEG_TRAIT_VAL, "FR");
    rec_t r = {0};
    seg_apply(s, &c, &ev, T0, rec_fn, &r);
    cr_assert_eq(c.rules, 14, "all but abroad_and_quiet");
    int64_t T = T0 + 90 * DAY;
    int64_t lc = seg_lifecycle_next(seg_params(s), &c, T0);
    cr_assert_eq(c.due, lc < T - 1 ? lc : T - 1, "due %lld", (long long)c.due);
    int i = step_to(s, &c, T, &r);
    cr_assert_geq(i, 0);
    cr_assert(strstr(r.id[i], ":rule:buyer:"), "%s", r.id[i]);
    cr_assert_eq(r.ts[i], T);
    for (int j = 0; j < r.n; j++)
        cr_assert(!strstr(r.id[j], ":rule:abroad_and_quiet:"), "the settled rule never changes");
    seg_customer_clear(&c);
    seg_free(s);
}
