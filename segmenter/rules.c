/* segmenter/rules.c: rule segments. Compiles "feature op value" conditions
 * (and "trait in [a, b]") once at start, evaluates them against a customer at
 * a watermark. Never allocates during evaluation. */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "segmenter/internal.h"

enum { OP_LT, OP_LE, OP_GT, OP_GE, OP_EQ, OP_NE, OP_IN, OP_NOT_IN };
enum { SUBJ_FEATURE, SUBJ_TRAIT, SUBJ_TOP_CATEGORY };

#define VALS_MAX 32

typedef struct {
    int subj; /* SUBJ_* */
    int feat; /* seg_feat_t for SUBJ_FEATURE */
    int op;
    int numeric; /* compare as numbers (traits: value parsed as a number) */
    double num;
    char key[SEG_TRAIT_KEY];
    int n_vals;
    char *vals[VALS_MAX];
} cond_t;

typedef struct {
    char name[64];
    int any;
    int n;
    cond_t *c;
} rule_t;

struct seg_ruleset {
    int n;
    rule_t r[SEG_RULES_MAX];
};

static void cond_free(cond_t *c)
{
    for (int i = 0; i < c->n_vals; i++) free(c->vals[i]);
    c->n_vals = 0;
}

void seg__rules_free(seg_ruleset_t *rs)
{
    if (!rs) return;
    for (int i = 0; i < rs->n; i++) {
        for (int j = 0; j < rs->r[i].n; j++) cond_free(&rs->r[i].c[j]);
        free(rs->r[i].c);
    }
    free(rs);
}

int seg_rules_count(const seg_ruleset_t *rs)
{
    return rs ? rs->n : 0;
}

const char *seg_rule_name(const seg_ruleset_t *rs, int i)
{
    return rs && i >= 0 && i < rs->n ? rs->r[i].name : NULL;
}

static const char *skip_ws(const char *s)
{
    while (*s && isspace((unsigned char)*s)) s++;
    return s;
}

/* Copies one list item or scalar, trimming blanks and optional quotes. */
static char *dup_trim(const char *b, const char *e)
{
    while (b < e && isspace((unsigned char)*b)) b++;
    while (e > b && isspace((unsigned char)e[-1])) e--;
    if (e - b >= 2 && ((*b == '"' && e[-1] == '"') || (*b == '\'' && e[-1] == '\''))) b++, e--;
    char *r = malloc((size_t)(e - b) + 1);
    if (!r) return NULL;
    memcpy(r, b, (size_t)(e - b));
    r[e - b] = 0;
    return r;
}

static int parse_number(const char *s, double *out)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s) return -1;
    end = (char *)skip_ws(end);
    if (*end || !isfinite(v)) return -1;
    *out = v;
    return 0;
}

#define FAIL(...)                                                                                  \
    do {                                                                                           \
        snprintf(err, errlen, __VA_ARGS__);                                                        \
        goto fail;                                                                                 \
    } while (0)

size_t seg_edit_distance(const char *a, const char *b)
{
    enum { MAX = 128 };
    size_t na = strlen(a), nb = strlen(b), row[MAX + 1];
    if (na > MAX || nb > MAX) return SIZE_MAX;
    for (size_t j = 0; j <= nb; j++) row[j] = j;
    for (size_t i = 1; i <= na; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= nb; j++) {
            size_t up = row[j], best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            diag = up;
            row[j] = best;
        }
    }
    return row[nb];
}

/* The feature (or top_category) a bare name is a slip for, or NULL:
 * "ordrs != 1" would otherwise compile as a condition on a trait "ordrs",
 * true for every customer. One edit, or two in a name of six bytes or
 * more. Features are asked only when the value is a number (numeric
 * features are what a number is compared with; traits compare as text, and
 * "offers == gold" or "visitor == yes" stay traits); top_category always. */
static const char *feature_slip(const char *name, int numeric)
{
    static const char *const cat[] = {"top_category", "category", NULL};
    const char *best = NULL;
    size_t bd = strlen(name) >= 6 ? 3 : 2;
    for (int pass = numeric ? 0 : 1; pass < 2; pass++) {
        const char *const *names = pass ? cat : seg_feature_names;
        for (int i = 0; names[i]; i++) {
            size_t d = seg_edit_distance(name, names[i]);
            if (d < bd) bd = d, best = names[i];
        }
    }
    return best;
}

static int cond_compile(cond_t *c, const char *text, char *err, size_t errlen)
{
    memset(c, 0, sizeof(*c));
    const char *s = skip_ws(text);
    const char *b = s;
    while (*s && (isalnum((unsigned char)*s) || *s == '_' || *s == '.' || *s == '-')) s++;
    size_t nlen = (size_t)(s - b);
    if (nlen == 0) FAIL("expected a feature or trait name in '%s'", text);
    char name[64];
    if (nlen >= sizeof(name)) FAIL("name too long in '%s'", text);
    memcpy(name, b, nlen);
    name[nlen] = 0;
    s = skip_ws(s);

    /* operator */
    if (strncmp(s, ">=", 2) == 0)
        c->op = OP_GE, s += 2;
    else if (strncmp(s, "<=", 2) == 0)
        c->op = OP_LE, s += 2;
    else if (strncmp(s, "==", 2) == 0)
        c->op = OP_EQ, s += 2;
    else if (strncmp(s, "!=", 2) == 0)
        c->op = OP_NE, s += 2;
    else if (*s == '>')
        c->op = OP_GT, s += 1;
    else if (*s == '<')
        c->op = OP_LT, s += 1;
    else if (*s == '=')
        c->op = OP_EQ, s += 1;
    else if (strncmp(s, "in", 2) == 0 && (isspace((unsigned char)s[2]) || s[2] == '['))
        c->op = OP_IN, s += 2;
    else if (strncmp(s, "not", 3) == 0 && isspace((unsigned char)s[3])) {
        s = skip_ws(s + 3);
        if (!(strncmp(s, "in", 2) == 0 && (isspace((unsigned char)s[2]) || s[2] == '[')))
            FAIL("expected 'not in' in '%s'", text);
        c->op = OP_NOT_IN, s += 2;
    } else
        FAIL("expected an operator (< <= > >= == != in, not in) after '%s' in '%s'", name, text);
    s = skip_ws(s);
    if (!*s) FAIL("missing value in '%s'", text);

    /* subject */
    int fi = seg__feature_index(name, nlen);
    if (fi >= 0) {
        c->subj = SUBJ_FEATURE;
        c->feat = fi;
        c->numeric = 1;
    } else if (strcmp(name, "top_category") == 0 || strcmp(name, "category") == 0) {
        c->subj = SUBJ_TOP_CATEGORY;
    } else if (strncmp(name, "traits.", 7) == 0 || strncmp(name, "trait.", 6) == 0) {
        const char *k = strchr(name, '.') + 1;
        if (!*k || strlen(k) >= SEG_TRAIT_KEY) FAIL("bad trait name '%s'", name);
        c->subj = SUBJ_TRAIT;
        memcpy(c->key, k, strlen(k) + 1);
    } else if (c->op == OP_EQ || c->op == OP_NE || c->op == OP_IN || c->op == OP_NOT_IN) {
        double num;
        const char *slip =
            feature_slip(name, (c->op == OP_EQ || c->op == OP_NE) && parse_number(s, &num) == 0);
        if (slip)
            FAIL("unknown feature '%s' (did you mean %s? a trait of that name is written "
                 "traits.%s)",
                 name, slip, name);
        if (nlen >= SEG_TRAIT_KEY) FAIL("trait name '%s' too long", name);
        c->subj = SUBJ_TRAIT;
        memcpy(c->key, name, nlen + 1);
    } else {
        FAIL("unknown feature '%s' (traits compare with ==, != or in; traits.%s for numbers)", name,
             name);
    }

    if (c->op == OP_IN || c->op == OP_NOT_IN) {
        if (*s != '[') FAIL("expected [a, b, ...] after 'in' in '%s'", text);
        const char *e = strchr(s, ']');
        if (!e || *skip_ws(e + 1)) FAIL("unterminated or trailing text after list in '%s'", text);
        if (c->subj == SUBJ_FEATURE) FAIL("'in' takes a trait or top_category, not '%s'", name);
        const char *p = s + 1;
        while (p < e) {
            const char *q = p;
            while (q < e && *q != ',') q++;
            if (c->n_vals == VALS_MAX) FAIL("more than %d values in '%s'", VALS_MAX, text);
            char *v = dup_trim(p, q);
            if (!v) FAIL("out of memory");
            if (!*v) {
                free(v);
                FAIL("empty list item in '%s'", text);
            }
            c->vals[c->n_vals++] = v;
            p = q + 1;
        }
        if (c->n_vals == 0) FAIL("empty list in '%s'", text);
        return 0;
    }

    if (c->subj == SUBJ_FEATURE) {
        if (parse_number(s, &c->num) < 0) FAIL("'%s' is not a number in '%s'", s, text);
        return 0;
    }
    /* trait or category with a scalar */
    if (c->op != OP_EQ && c->op != OP_NE) {
        if (parse_number(s, &c->num) < 0) FAIL("'%s' is not a number in '%s'", s, text);
        c->numeric = 1;
        return 0;
    }
    char *v = dup_trim(s, s + strlen(s));
    if (!v) FAIL("out of memory");
    c->vals[0] = v;
    c->n_vals = 1;
    return 0;
fail:
    cond_free(c);
    return -1;
}

int seg_params_add_rule(seg_params_t *p, const char *name, int any, const char *const *conds,
                        int n_conds, char *err, size_t errlen)
{
    if (!name || !*name || strlen(name) >= 64) {
        snprintf(err, errlen, "rule name must be 1..63 characters");
        return -1;
    }
    for (const char *q = name; *q; q++)
        if (!(islower((unsigned char)*q) || isdigit((unsigned char)*q) || *q == '_' || *q == '-')) {
            snprintf(err, errlen, "rule name '%s' may use only a-z, 0-9, '_' and '-'", name);
            return -1;
        }
    /* the tail "rule:lifecycle:N" less its first part is a lifecycle tail,
     * so customer X's rule change and customer "X:rule"'s lifecycle change
     * would share an event_id; no other name can collide */
    if (strcmp(name, "lifecycle") == 0) {
        snprintf(err, errlen, "rule name 'lifecycle' is reserved");
        return -1;
    }
    if (n_conds < 1) {
        snprintf(err, errlen, "rule '%s' has no conditions", name);
        return -1;
    }
    if (!p->rules) {
        p->rules = calloc(1, sizeof(*p->rules));
        if (!p->rules) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
    }
    seg_ruleset_t *rs = p->rules;
    for (int i = 0; i < rs->n; i++)
        if (strcmp(rs->r[i].name, name) == 0) {
            snprintf(err, errlen, "rule '%s' is defined twice", name);
            return -1;
        }
    if (rs->n == SEG_RULES_MAX) {
        snprintf(err, errlen, "at most %d rules", SEG_RULES_MAX);
        return -1;
    }
    rule_t *r = &rs->r[rs->n];
    memset(r, 0, sizeof(*r));
    r->c = calloc((size_t)n_conds, sizeof(cond_t));
    if (!r->c) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    snprintf(r->name, sizeof(r->name), "%s", name);
    r->any = any;
    for (int i = 0; i < n_conds; i++) {
        if (cond_compile(&r->c[i], conds[i] ? conds[i] : "", err, errlen) < 0) {
            for (int j = 0; j < i; j++) cond_free(&r->c[j]);
            free(r->c);
            r->c = NULL;
            return -1;
        }
        r->n = i + 1;
    }
    rs->n++;
    return 0;
}

static inline __attribute__((always_inline)) int cmp_num(int op, double a, double b)
{
    switch (op) {
    case OP_LT:
        return a < b;
    case OP_LE:
        return a <= b;
    case OP_GT:
        return a > b;
    case OP_GE:
        return a >= b;
    case OP_EQ:
        return a == b;
    case OP_NE:
        return a != b;
    }
    return 0;
}

static int cond_eval(const seg_t *s, const seg_params_t *p, const cond_t *c,
                     const seg_customer_t *cu, int64_t W)
{
    const char *str = NULL;
    switch (c->subj) {
    case SUBJ_FEATURE:
        return cmp_num(c->op, seg__feature_at(p, cu, c->feat, W), c->num);
    case SUBJ_TOP_CATEGORY:
        str = cu->f.cat_id[0] ? seg_category_name(s, cu->f.cat_id[0]) : NULL;
        break;
    case SUBJ_TRAIT:
        str = seg_customer_trait(cu, c->key);
        break;
    }
    if (c->numeric) {
        if (!str) return 0;
        char *end;
        double v = strtod(str, &end);
        if (end == str || *end) return 0;
        return cmp_num(c->op, v, c->num);
    }
    int found = 0;
    if (str)
        for (int i = 0; i < c->n_vals && !found; i++) found = strcmp(str, c->vals[i]) == 0;
    switch (c->op) {
    case OP_EQ:
    case OP_IN:
        return found;
    case OP_NE:
    case OP_NOT_IN:
        return !found;
    }
    return 0;
}

static int moving_feature(int f);

/* A condition whose value moves with W between events (see below). */
static inline int cond_moves(const cond_t *k)
{
    return k->subj == SUBJ_FEATURE && moving_feature(k->feat);
}

/* Rule r for cu at W; moving_only: only its moving conditions (the caller
 * knows the others are neutral: all true for `all`, all false for `any`). */
static inline int rule_holds(const seg_t *s, const seg_params_t *p, const rule_t *r,
                             const seg_customer_t *cu, int64_t W, int moving_only)
{
    for (int j = 0; j < r->n; j++) {
        if (moving_only && !cond_moves(&r->c[j])) continue;
        int v = cond_eval(s, p, &r->c[j], cu, W);
        if (r->any && v) return 1;
        if (!r->any && !v) return 0;
    }
    return !r->any;
}

uint64_t seg__rules_eval(const seg_t *s, const seg_ruleset_t *rs, const seg_customer_t *c,
                         int64_t W)
{
    uint64_t bits = 0;
    if (!rs) return 0;
    const seg_params_t *p = seg_params(s);
    for (int i = 0; i < rs->n; i++)
        if (rule_holds(s, p, &rs->r[i], c, W, 0)) bits |= 1ULL << i;
    return bits;
}

/* ---------- silent rule changes ----------
 * Between events a customer's features move only with W: recency and tenure
 * grow linearly, the decayed counters fall as x * 2^(-(W - t0) / H). Every
 * other feature, trait and category is constant. So each condition over a
 * moving feature flips at most once (twice for == and !=) and the instant is
 * closed form: t0 + H * log2(x / v) for decay, a + v days for the linear
 * ones. The estimate is then checked against the very evaluation the events
 * use (cond_eval) on the milliseconds around it, so the change time is the
 * first millisecond at which the rule's value differs, exactly. */

static int moving_feature(int f)
{
    switch (f) {
    case SEG_F_RECENCY_DAYS:
    case SEG_F_TENURE_DAYS:
    case SEG_F_VISITS:
    case SEG_F_VIEWS:
    case SEG_F_PURCHASE_FREQ:
    case SEG_F_MONETARY:
    case SEG_F_EMAIL_ENGAGEMENT:
        return 1;
    }
    return 0;
}

/* The real instant at which feature f of c equals v, or NAN when it never
 * does after `from` (a decayed counter of 0, or a level it never reaches). */
static double crossing_instant(const seg_params_t *p, const seg_customer_t *c, int f, double v)
{
    double day = (double)SEG_DAY_MS, x, h;
    switch (f) {
    case SEG_F_RECENCY_DAYS:
        return (double)c->last_activity + v * day;
    case SEG_F_TENURE_DAYS:
        return (double)c->first_seen + v * day;
    case SEG_F_VISITS:
        x = c->f.visits, h = p->half_life_activity_days;
        break;
    case SEG_F_VIEWS:
        x = c->f.views, h = p->half_life_activity_days;
        break;
    case SEG_F_EMAIL_ENGAGEMENT:
        x = c->f.email, h = p->half_life_activity_days;
        break;
    case SEG_F_PURCHASE_FREQ:
        x = c->f.purchases, h = p->half_life_purchase_days;
        break;
    case SEG_F_MONETARY:
        x = c->f.monetary, h = p->half_life_purchase_days;
        break;
    default:
        return NAN;
    }
    /* a decayed value is flat up to decay_ts, then falls towards 0 without
     * reaching it: it crosses v > 0 once when it starts at or above v */
    if (!(x > 0) || !(v > 0) || x < v) return NAN;
    return (double)c->decay_ts + h * day * log2(x / v);
}

/* First millisecond T > from at which condition k's value differs from its
 * value at `from`, or SEG_NEVER. */
static int64_t cond_next(const seg_t *s, const seg_params_t *p, const cond_t *k,
                         const seg_customer_t *c, int64_t from)
{
    double t = crossing_instant(p, c, k->feat, k->num);
    if (isnan(t) || t >= 9.0e18) return SEG_NEVER;
    int v0 = cond_eval(s, p, k, c, from);
    int64_t est = t <= (double)from ? from : (int64_t)ceil(t);
    int64_t lo = est - 2 > from ? est - 2 : from + 1;
    for (int64_t T = lo; T <= est + 2; T++)
        if (cond_eval(s, p, k, c, T) != v0) return T;
    if (t <= (double)from) return SEG_NEVER; /* crossed already: monotone from here */
    /* The estimate is good to far under a millisecond; should rounding ever
     * say otherwise, bisect for the flip over a wider span. */
    int64_t hi = est + 2 + 86400000;
    if (cond_eval(s, p, k, c, hi) == v0) return SEG_NEVER;
    int64_t a = est + 2; /* value v0 at a, not at hi */
    while (hi - a > 1) {
        int64_t m = a + (hi - a) / 2;
        if (cond_eval(s, p, k, c, m) == v0)
            a = m;
        else
            hi = m;
    }
    return hi;
}

/* Between events only the moving features move: every other condition
 * (traits, the top category, orders, shares...) keeps its value, so a rule
 * is settled by those alone (an `all` with one of them false, an `any` with
 * one true) or depends on its moving conditions only. Worked out once per
 * seg__rules_next, not for every instant it tries. */
typedef struct {
    uint64_t settled_in; /* rules true whatever the moving features do */
    uint64_t depends;    /* rules decided by their moving conditions */
} fixed_t;

static void rules_fix(const seg_t *s, const seg_params_t *p, const seg_ruleset_t *rs,
                      const seg_customer_t *c, int64_t at, fixed_t *fx)
{
    fx->settled_in = fx->depends = 0;
    for (int i = 0; i < rs->n; i++) {
        const rule_t *r = &rs->r[i];
        int settled = 0, moving = 0;
        for (int j = 0; j < r->n && !settled; j++) {
            const cond_t *k = &r->c[j];
            if (cond_moves(k)) {
                moving = 1;
                continue;
            }
            int v = cond_eval(s, p, k, c, at);
            if (r->any ? v : !v) settled = 1; /* any: true; all: false */
        }
        if (settled) {
            if (r->any) fx->settled_in |= 1ULL << i;
        } else if (moving) {
            fx->depends |= 1ULL << i;
        } else if (!r->any) {
            fx->settled_in |= 1ULL << i; /* all, and every condition fixed and true */
        }
    }
}

/* seg__rules_eval(s, rs, c, W) for a W between the same two events as the
 * `at` fx was made at. */
static uint64_t rules_eval_fixed(const seg_t *s, const seg_params_t *p, const seg_ruleset_t *rs,
                                 const seg_customer_t *c, int64_t W, const fixed_t *fx)
{
    uint64_t bits = fx->settled_in;
    for (uint64_t d = fx->depends; d; d &= d - 1) {
        int i = __builtin_ctzll(d);
        if (rule_holds(s, p, &rs->r[i], c, W, 1)) bits |= 1ULL << i;
    }
    return bits;
}

int64_t seg__rules_next(const seg_t *s, const seg_ruleset_t *rs, const seg_customer_t *c,
                        int64_t from, uint64_t base)
{
    if (!rs) return SEG_NEVER;
    const seg_params_t *p = seg_params(s);
    fixed_t fx;
    rules_fix(s, p, rs, c, from, &fx);
    if (!fx.depends) return SEG_NEVER; /* nothing can change before the next event */
    int64_t at = from;
    /* each step passes at least one condition's flip; a flip that leaves
     * every rule as it was is stepped over, not reported */
    for (int guard = 0; guard < 4 * SEG_RULES_MAX * 8; guard++) {
        int64_t T = SEG_NEVER;
        /* only the rules whose value can still change: a settled rule's
         * conditions flip without effect */
        for (uint64_t d = fx.depends; d; d &= d - 1) {
            const rule_t *r = &rs->r[__builtin_ctzll(d)];
            for (int j = 0; j < r->n; j++) {
                const cond_t *k = &r->c[j];
                if (!cond_moves(k)) continue;
                int64_t t = cond_next(s, p, k, c, at);
                if (t < T) T = t;
            }
        }
        if (T == SEG_NEVER) return SEG_NEVER;
        if (rules_eval_fixed(s, p, rs, c, T, &fx) != base) return T;
        at = T;
    }
    return SEG_NEVER;
}
