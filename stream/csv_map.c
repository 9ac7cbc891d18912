/* stream/csv_map.c: CSV rows to contract events. Owns the column mapping
 * (parsed from `key=value,...`, see README "CSV input"), the built-in
 * presets, the joined files held in memory, and the source that reads a
 * CSV file through a mapping and hands out each event as contract JSON
 * (so that strm_decode validates it like any other input) or each row that
 * cannot be mapped with a reason naming its column. Never applies an event
 * and never reads a clock.
 *
 * Decisions:
 *  - Values are trimmed of blanks; a value equal to an `na` string is
 *    empty. An empty optional field is absent; an empty required one
 *    (customer_id, type, ts, the amount of a purchase) is a dead letter
 *    `missing_<field>:<column>`; one that does not parse is
 *    `bad_<field>:<column>`; a row too short to hold the column is
 *    `short_row:<column>`.
 *  - The amount is read only on rows whose (mapped) type is purchase: the
 *    contract uses it for nothing else, so a view with an empty price is
 *    fine. A negative amount is `negative_amount:<column>`, unless
 *    refund_type is set: then the row becomes an event of that type
 *    without an amount (a cancellation is activity, not revenue).
 *  - price*quantity is rounded to 1e-6 (2.55 x 6 is 15.3, not
 *    15.299999999999999).
 *  - Without event_id, a row's id is `<file name>:<line>`: a row read again
 *    carries the same id, so the core can drop it as a repeat.
 *  - group=COL merges rows with equal (customer, COL, type) into one event:
 *    consecutive rows in file order; any rows when sorting (at the earliest
 *    row's time). Amounts add up; discount holds if any row has it; the
 *    other fields and the event id are the first row's.
 *  - A column read from a joined file: amount, price and quantity are
 *    summed over its matching rows, discount holds if any matching row has
 *    it, every other field takes the first matching row. No matching row:
 *    the field is empty, and a required one is `no_join_match:<key>`.
 *  - Trait values are cut to 47 bytes (at a character boundary); a
 *    customer_id over 128 bytes or an event_id over 64, or either with a
 *    NUL byte or bytes that are not UTF-8, is a dead letter. Other strings
 *    that are not UTF-8 (a Latin-1 category) keep U+FFFD for those bytes;
 *    with a NUL byte they are bad_<field>:<column>.
 *  - Sorting holds every mapped row in memory (about 70 bytes plus its
 *    strings); rows that cannot be mapped come out first, in file order. */
#include <ctype.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "stream/codec_int.h"
#include "stream/csv.h"

#define MAX_JOINS    4
#define MAX_TYPEMAP  64
#define MAX_NA       8
#define MAX_TSFMT    4
#define STR_CAP      1024 /* longest category, type or group value kept */
#define TRAIT_VALMAX (SEG_TRAIT_VAL - 1)

/* ---------- the mapping ---------- */

enum {
    F_CUSTOMER,
    F_TYPE,
    F_TS,
    F_AMOUNT,
    F_PRICE,
    F_QUANTITY,
    F_CATEGORY,
    F_CHANNEL,
    F_DISCOUNT,
    F_EVENT_ID,
    F_GROUP,
    F_TRAIT0,
    F__COUNT = F_TRAIT0 + SEG_TRAITS_MAX
};

static const char *const field_keys[F_TRAIT0] = {"customer_id", "type",     "ts",       "amount",
                                                 "price",       "quantity", "category", "channel",
                                                 "discount",    "event_id", "group"};

enum { REF_NONE = 0, REF_COL, REF_CONST };

typedef struct ref {
    int kind;
    char *text; /* the column's name ("$3" as written) or the constant */
    /* reasons, built when the entry is set */
    char *why_missing, *why_bad, *why_short, *why_negative, *why_large;
} ref_t;

struct strm_csvmap {
    int delim;
    int header;
    char **columns;
    size_t ncolumns;
    ref_t f[F__COUNT];
    char trait_key[SEG_TRAITS_MAX][SEG_TRAIT_KEY];
    strm_ts_format_t ts_fmt[MAX_TSFMT];
    int n_ts_fmt;
    int tz_min;
    char *type_from[MAX_TYPEMAP], *type_to[MAX_TYPEMAP];
    int ntypemap;
    char *discount_value;
    char *refund_type;
    char *na[MAX_NA];
    int nna;
    char *join_file[MAX_JOINS], *join_main[MAX_JOINS], *join_key[MAX_JOINS];
    char *join_why[MAX_JOINS];
    int njoin;
    int sort;
};

const char *const strm_csvmap_presets[] = {"cdnow",  "online-retail", "rees46",
                                           "taobao", "olist",         NULL};

static const char *const preset_specs[] = {
    /* cdnow: CDNOW_master.txt, whitespace-separated, one purchase per row,
     * grouped by customer */
    "delimiter=whitespace, customer_id=customer_id, type='purchase', ts=date,"
    " ts_format=yyyymmdd, amount=dollar_value, sort=yes",
    /* online-retail: UCI invoice lines; one purchase per invoice, a
     * cancellation (negative quantity) is activity without revenue; UK
     * local time read as UTC */
    "customer_id=CustomerID, type='purchase', ts=InvoiceDate, ts_format=dmy|iso,"
    " price=UnitPrice, quantity=Quantity, group=InvoiceNo, refund_type=cancellation,"
    " traits.country=Country, na=NA, sort=yes",
    /* rees46: 2019-Oct.csv, in time order, UTC */
    "customer_id=user_id, type=event_type, type.view=product_view, type.cart=add_to_cart,"
    " type.remove_from_cart=remove_from_cart, type.purchase=purchase, ts=event_time,"
    " ts_format=iso, amount=price, category=category_code",
    /* taobao: UserBehavior.csv, no header, Unix seconds, no prices, grouped
     * by user */
    "header=no, columns=user_id item_id category_id behavior_type timestamp,"
    " customer_id=user_id, type=behavior_type, type.pv=product_view, type.cart=add_to_cart,"
    " type.fav=add_to_wishlist, type.buy=purchase, ts=timestamp, ts_format=s, amount='0',"
    " category=category_id, sort=yes",
    /* olist: olist_orders_dataset.csv joined with its customers (the person
     * is customer_unique_id) and payments; Brazil local time as UTC-3 */
    "join=olist_customers_dataset.csv:customer_id, join=olist_order_payments_dataset.csv:order_id,"
    " customer_id=customer_unique_id, type=order_status, type.canceled=order_canceled,"
    " type.unavailable=order_unavailable, type.*=purchase, ts=order_purchase_timestamp,"
    " ts_format=iso, tz=-03:00, amount=payment_value, discount=payment_type,"
    " discount_value=voucher, event_id=order_id, traits.state=customer_state,"
    " traits.city=customer_city, sort=yes",
};

/* Puts setting `key` at its default (a new map's, and what `key=` restores);
 * 0 when key is not one of these settings. */
static int set_default(strm_csvmap_t *m, const char *key)
{
    if (!strcmp(key, "delimiter")) return m->delim = ',', 1;
    if (!strcmp(key, "header")) return m->header = 1, 1;
    if (!strcmp(key, "sort")) return m->sort = 0, 1;
    if (!strcmp(key, "ts_format")) {
        m->ts_fmt[0] = STRM_TS_MS;
        m->ts_fmt[1] = STRM_TS_ISO;
        m->n_ts_fmt = 2;
        return 1;
    }
    return 0;
}

strm_csvmap_t *strm_csvmap_new(void)
{
    strm_csvmap_t *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    static const char *const settings[] = {"delimiter", "header", "sort", "ts_format"};
    for (size_t i = 0; i < sizeof settings / sizeof settings[0]; i++) set_default(m, settings[i]);
    return m;
}

static void ref_clear(ref_t *r)
{
    free(r->text);
    free(r->why_missing);
    free(r->why_bad);
    free(r->why_short);
    free(r->why_negative);
    free(r->why_large);
    memset(r, 0, sizeof *r);
}

static void free_list(char **v, int n)
{
    for (int i = 0; i < n; i++) free(v[i]);
}

static void clear_columns(strm_csvmap_t *m)
{
    for (size_t i = 0; i < m->ncolumns; i++) free(m->columns[i]);
    free(m->columns);
    m->columns = NULL;
    m->ncolumns = 0;
}

static void clear_joins(strm_csvmap_t *m)
{
    free_list(m->join_file, m->njoin);
    free_list(m->join_main, m->njoin);
    free_list(m->join_key, m->njoin);
    free_list(m->join_why, m->njoin);
    m->njoin = 0;
}

void strm_csvmap_free(strm_csvmap_t *m)
{
    if (!m) return;
    for (int i = 0; i < F__COUNT; i++) ref_clear(&m->f[i]);
    clear_columns(m);
    free_list(m->type_from, m->ntypemap);
    free_list(m->type_to, m->ntypemap);
    free(m->discount_value);
    free(m->refund_type);
    free_list(m->na, m->nna);
    clear_joins(m);
    free(m);
}

int strm_csvmap_sort(const strm_csvmap_t *m)
{
    return m->sort;
}

const char *strm_csvmap_preset_spec(const char *name)
{
    for (int i = 0; strm_csvmap_presets[i]; i++)
        if (strcmp(strm_csvmap_presets[i], name) == 0) return preset_specs[i];
    return NULL;
}

int strm_csvmap_preset(strm_csvmap_t *m, const char *name, char *err, size_t errlen)
{
    const char *spec = strm_csvmap_preset_spec(name);
    if (!spec) {
        snprintf(err, errlen, "no CSV preset '%s' (cdnow, online-retail, rees46, taobao, olist)",
                 name);
        return -1;
    }
    return strm_csvmap_parse(m, spec, err, errlen);
}

static char *dupn(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (!p) return NULL;
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

/* "what:column" with the column's bytes made safe for a metrics label and
 * a JSON string (anything but [A-Za-z0-9_.$-] becomes '_'). */
static char *reason(const char *what, const char *col)
{
    size_t a = strlen(what), b = strlen(col);
    if (b > 64) b = 64;
    char *p = malloc(a + 1 + b + 1);
    if (!p) return NULL;
    memcpy(p, what, a);
    p[a] = ':';
    for (size_t i = 0; i < b; i++) {
        unsigned char c = (unsigned char)col[i];
        p[a + 1 + i] = isalnum(c) || c == '_' || c == '.' || c == '$' || c == '-' ? (char)c : '_';
    }
    p[a + 1 + b] = 0;
    return p;
}

static int is_yes(const char *v, int *out)
{
    if (!strcmp(v, "yes") || !strcmp(v, "true") || !strcmp(v, "1") || !strcmp(v, "on"))
        return *out = 1, 0;
    if (!strcmp(v, "no") || !strcmp(v, "false") || !strcmp(v, "0") || !strcmp(v, "off"))
        return *out = 0, 0;
    return -1;
}

/* The field's contract name in reasons (price and quantity make amount). */
static const char *field_name(int k)
{
    return k == F_PRICE || k == F_QUANTITY ? "amount" : k >= F_TRAIT0 ? "traits" : field_keys[k];
}

static int set_ref(ref_t *r, int k, const char *v, int quoted)
{
    ref_clear(r);
    if (!*v && !quoted) return 0; /* `key=` unsets */
    r->kind = quoted ? REF_CONST : REF_COL;
    r->text = strdup(v);
    const char *col = quoted ? "const" : v;
    char what[40];
    snprintf(what, sizeof what, "missing_%s", field_name(k));
    r->why_missing = reason(what, col);
    snprintf(what, sizeof what, "bad_%s", field_name(k));
    r->why_bad = reason(what, col);
    r->why_short = reason("short_row", col);
    r->why_negative = reason("negative_amount", col);
    r->why_large = reason("amount_too_large", col);
    if (!r->text || !r->why_missing || !r->why_bad || !r->why_short || !r->why_negative ||
        !r->why_large)
        return -1;
    return 0;
}

static int parse_tz(const char *v, int *out)
{
    if (!strcmp(v, "UTC") || !strcmp(v, "Z") || !strcmp(v, "utc") || !strcmp(v, "GMT"))
        return *out = 0, 0;
    int64_t t;
    char buf[48];
    /* reuse the time parser's zone grammar on a fixed date */
    if (strlen(v) > 8) return -1;
    int n = snprintf(buf, sizeof buf, "1970-01-02 00:00%s", v);
    if (strm_csv_parse_time(buf, (size_t)n, STRM_TS_ISO, 0, &t) < 0) return -1;
    *out = (int)((86400000LL - t) / 60000);
    return 0;
}

static int split_list(const char *v, char sep, char **out, int max, int *n)
{
    *n = 0;
    while (*v) {
        const char *e = strchr(v, sep);
        size_t len = e ? (size_t)(e - v) : strlen(v);
        while (len && isspace((unsigned char)*v)) v++, len--;
        while (len && isspace((unsigned char)v[len - 1])) len--;
        if (len) {
            if (*n == max) return -1;
            if (!(out[(*n)++] = dupn(v, len))) return -1;
        }
        if (!e) break;
        v = e + 1;
    }
    return 0;
}

#define FAIL(...) return snprintf(err, errlen, __VA_ARGS__), -1

/* One `key=value` entry; value already trimmed and unquoted. */
static int set_entry(strm_csvmap_t *m, const char *key, const char *v, int quoted, char *err,
                     size_t errlen)
{
    for (int k = 0; k < F_TRAIT0; k++)
        if (!strcmp(key, field_keys[k])) {
            if (set_ref(&m->f[k], k, v, quoted) < 0) FAIL("out of memory");
            return 0;
        }
    if (!strncmp(key, "traits.", 7)) {
        const char *name = key + 7;
        size_t n = strlen(name);
        if (n < 1 || n >= SEG_TRAIT_KEY)
            FAIL("%s: a trait name has 1 to %d bytes", key, SEG_TRAIT_KEY - 1);
        for (size_t i = 0; i < n; i++)
            if (!isalnum((unsigned char)name[i]) && name[i] != '_')
                FAIL("%s: a trait name is letters, digits and _", key);
        int slot = -1;
        for (int i = 0; i < SEG_TRAITS_MAX; i++)
            if (m->f[F_TRAIT0 + i].kind && !strcmp(m->trait_key[i], name)) slot = i;
        for (int i = 0; i < SEG_TRAITS_MAX && slot < 0; i++)
            if (!m->f[F_TRAIT0 + i].kind) slot = i;
        if (slot < 0) FAIL("%s: at most %d traits", key, SEG_TRAITS_MAX);
        memcpy(m->trait_key[slot], name, n + 1);
        if (set_ref(&m->f[F_TRAIT0 + slot], F_TRAIT0 + slot, v, quoted) < 0) FAIL("out of memory");
        return 0;
    }
    if (!strncmp(key, "type.", 5)) {
        const char *from = key + 5;
        if (!*from) FAIL("%s: type.VALUE=TYPE, with a value", key);
        int i;
        for (i = 0; i < m->ntypemap; i++)
            if (!strcmp(m->type_from[i], from)) break;
        if (i < m->ntypemap && !*v) { /* `type.X=` removes X */
            free(m->type_from[i]);
            free(m->type_to[i]);
            m->ntypemap--;
            memmove(m->type_from + i, m->type_from + i + 1,
                    (size_t)(m->ntypemap - i) * sizeof *m->type_from);
            memmove(m->type_to + i, m->type_to + i + 1,
                    (size_t)(m->ntypemap - i) * sizeof *m->type_to);
            return 0;
        }
        if (i == m->ntypemap) {
            if (!*v) return 0;
            if (i == MAX_TYPEMAP) FAIL("%s: at most %d type values", key, MAX_TYPEMAP);
            if (!(m->type_from[i] = strdup(from))) FAIL("out of memory");
            m->type_to[i] = NULL;
            m->ntypemap++;
        }
        free(m->type_to[i]);
        if (!(m->type_to[i] = strdup(v))) FAIL("out of memory");
        return 0;
    }
    /* `key=` removes an entry (README): a setting goes back to its default */
    if (!*v && set_default(m, key)) return 0;
    if (!strcmp(key, "delimiter")) {
        static const struct {
            const char *name;
            int d;
        } names[] = {{"comma", ','},
                     {"tab", '\t'},
                     {"semicolon", ';'},
                     {"pipe", '|'},
                     {"space", STRM_CSV_WHITESPACE},
                     {"whitespace", STRM_CSV_WHITESPACE}};
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
            if (!strcmp(v, names[i].name)) return m->delim = names[i].d, 0;
        if (strlen(v) == 1 && *v != '"' && *v != '\n' && *v != '\r' && *v != ',') {
            m->delim = (unsigned char)*v;
            return 0;
        }
        FAIL("delimiter=%s: comma, tab, semicolon, pipe, whitespace or one character", v);
    }
    if (!strcmp(key, "header")) {
        if (is_yes(v, &m->header) < 0) FAIL("header=%s: yes or no", v);
        return 0;
    }
    if (!strcmp(key, "sort")) {
        if (is_yes(v, &m->sort) < 0) FAIL("sort=%s: yes or no", v);
        return 0;
    }
    if (!strcmp(key, "columns")) {
        clear_columns(m);
        const char *p = v;
        while (*p) {
            while (*p && isspace((unsigned char)*p)) p++;
            const char *e = p;
            while (*e && !isspace((unsigned char)*e)) e++;
            if (e == p) break;
            char **c = realloc(m->columns, (m->ncolumns + 1) * sizeof *c);
            if (!c) FAIL("out of memory");
            m->columns = c;
            if (!(c[m->ncolumns] = dupn(p, (size_t)(e - p)))) FAIL("out of memory");
            m->ncolumns++;
            p = e;
        }
        return 0;
    }
    if (!strcmp(key, "ts_format")) {
        const char *p = v;
        int n = 0;
        while (*p) {
            const char *e = strchr(p, '|');
            size_t len = e ? (size_t)(e - p) : strlen(p);
            if (n == MAX_TSFMT || strm_csv_ts_format(p, len, &m->ts_fmt[n]) < 0)
                FAIL("ts_format=%s: up to %d of ms, s, us, iso, dmy, mdy, yyyymmdd joined by |", v,
                     MAX_TSFMT);
            n++;
            if (!e) break;
            p = e + 1;
        }
        if (!n) FAIL("ts_format: empty");
        m->n_ts_fmt = n;
        return 0;
    }
    if (!strcmp(key, "tz")) {
        if (parse_tz(v, &m->tz_min) < 0) FAIL("tz=%s: UTC or an offset such as +08:00", v);
        return 0;
    }
    if (!strcmp(key, "discount_value") || !strcmp(key, "refund_type")) {
        char **dst = key[0] == 'd' ? &m->discount_value : &m->refund_type;
        free(*dst);
        *dst = *v ? strdup(v) : NULL;
        if (*v && !*dst) FAIL("out of memory");
        return 0;
    }
    if (!strcmp(key, "na")) {
        free_list(m->na, m->nna);
        if (split_list(v, '|', m->na, MAX_NA, &m->nna) < 0)
            FAIL("na=%s: at most %d values joined by |", v, MAX_NA);
        return 0;
    }
    if (!strcmp(key, "join")) {
        if (!*v) {
            clear_joins(m);
            return 0;
        }
        const char *colon = strrchr(v, ':');
        if (!colon || colon == v || !colon[1]) FAIL("join=%s: FILE:COLUMN", v);
        if (m->njoin == MAX_JOINS) FAIL("join=%s: at most %d joins", v, MAX_JOINS);
        const char *keys = colon + 1, *eq = strchr(keys, '=');
        int j = m->njoin;
        m->join_file[j] = dupn(v, (size_t)(colon - v));
        m->join_main[j] = eq ? dupn(keys, (size_t)(eq - keys)) : strdup(keys);
        m->join_key[j] = strdup(eq ? eq + 1 : keys);
        m->join_why[j] = reason("no_join_match", m->join_main[j] ? m->join_main[j] : "");
        m->njoin++;
        if (!m->join_file[j] || !m->join_main[j] || !m->join_key[j] || !m->join_why[j])
            FAIL("out of memory");
        if (!*m->join_main[j] || !*m->join_key[j]) FAIL("join=%s: FILE:COLUMN", v);
        return 0;
    }
    FAIL("unknown key '%s'", key);
}

int strm_csvmap_parse(strm_csvmap_t *m, const char *spec, char *err, size_t errlen)
{
    const char *p = spec;
    while (*p) {
        /* one entry: up to a comma or newline outside quotes */
        const char *e = p;
        char q = 0;
        for (; *e; e++) {
            if (q) {
                if (*e == q) q = 0;
            } else if (*e == '"' || *e == '\'') {
                q = *e;
            } else if (*e == ',' || *e == '\n') {
                break;
            }
        }
        const char *next = *e ? e + 1 : e;
        while (p < e && isspace((unsigned char)*p)) p++;
        while (e > p && isspace((unsigned char)e[-1])) e--;
        if (p == e || *p == '#') {
            if (*p == '#') { /* a comment runs to the end of its line */
                const char *nl = strchr(p, '\n');
                next = nl ? nl + 1 : p + strlen(p);
            }
            p = next;
            continue;
        }
        const char *eq = memchr(p, '=', (size_t)(e - p));
        if (!eq) eq = memchr(p, ':', (size_t)(e - p));
        if (!eq) {
            snprintf(err, errlen, "'%.*s': key=value", (int)(e - p), p);
            return -1;
        }
        const char *ke = eq, *vs = eq + 1;
        while (ke > p && isspace((unsigned char)ke[-1])) ke--;
        while (vs < e && isspace((unsigned char)*vs)) vs++;
        char key[64];
        if ((size_t)(ke - p) >= sizeof key || ke == p) {
            snprintf(err, errlen, "'%.*s': bad key", (int)(e - p), p);
            return -1;
        }
        memcpy(key, p, (size_t)(ke - p));
        key[ke - p] = 0;
        size_t vl = (size_t)(e - vs);
        int quoted = vl >= 2 && (*vs == '"' || *vs == '\'') && vs[vl - 1] == *vs;
        if (!quoted && vl && (*vs == '"' || *vs == '\'')) {
            snprintf(err, errlen, "%s: unbalanced quote", key);
            return -1;
        }
        char *val = quoted ? dupn(vs + 1, vl - 2) : dupn(vs, vl);
        if (!val) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        int rc = set_entry(m, key, val, quoted, err, errlen);
        free(val);
        if (rc < 0) return -1;
        p = next;
    }
    return 0;
}

/* ---------- joined files ---------- */

typedef struct table {
    const char *name; /* the file name as the mapping gives it */
    char **cols;      /* header */
    size_t ncols;
    size_t key_col;  /* the key's column here */
    size_t main_col; /* the key's column in the main file */
    char *text;      /* every field's bytes */
    size_t text_len, text_cap;
    uint32_t *foff, *flen; /* every field, row after row */
    size_t nf, fcap;
    size_t *row0; /* first field of each row; row0[nrows] = nf */
    size_t nrows, rcap;
    uint32_t *bucket, *next; /* hash of the key -> rows (1-based; 0 ends) */
    size_t nbucket;
} table_t;

static void table_free(table_t *t)
{
    for (size_t i = 0; i < t->ncols; i++) free(t->cols[i]);
    free(t->cols);
    free(t->text);
    free(t->foff);
    free(t->flen);
    free(t->row0);
    free(t->bucket);
    free(t->next);
}

static uint64_t hash_bytes(uint64_t h, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 0x100000001b3ULL;
    return h;
}
#define HASH0 0xcbf29ce484222325ULL

static inline int is_sp(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

static void trim(const char **s, size_t *n)
{
    while (*n && is_sp((*s)[0])) (*s)++, (*n)--;
    while (*n && is_sp((*s)[*n - 1])) (*n)--;
}

static int table_add_field(table_t *t, const char *s, size_t n)
{
    if (t->nf == t->fcap) {
        size_t cap = t->fcap ? t->fcap * 2 : 256;
        uint32_t *o = realloc(t->foff, cap * sizeof *o);
        if (!o) return -1;
        t->foff = o;
        uint32_t *l = realloc(t->flen, cap * sizeof *l);
        if (!l) return -1;
        t->flen = l;
        t->fcap = cap;
    }
    if (t->text_cap - t->text_len < n) {
        size_t cap = t->text_cap ? t->text_cap : 4096;
        while (cap - t->text_len < n) cap *= 2;
        if (cap > UINT32_MAX) return -1;
        char *p = realloc(t->text, cap);
        if (!p) return -1;
        t->text = p;
        t->text_cap = cap;
    }
    if (n) memcpy(t->text + t->text_len, s, n);
    t->foff[t->nf] = (uint32_t)t->text_len;
    t->flen[t->nf] = (uint32_t)n;
    t->text_len += n;
    t->nf++;
    return 0;
}

static void table_field(const table_t *t, uint32_t row, size_t col, const char **s, size_t *n)
{
    size_t f = t->row0[row] + col;
    if (f >= t->row0[row + 1]) {
        *s = "";
        *n = 0;
        return;
    }
    *s = t->text + t->foff[f];
    *n = t->flen[f];
}

static int find_col(char *const *cols, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(cols[i], name)) return (int)i;
    for (size_t i = 0; i < n; i++)
        if (!strcasecmp(cols[i], name)) return (int)i;
    return -1;
}

static void list_cols(char *buf, size_t len, char *const *cols, size_t n)
{
    size_t o = 0;
    buf[0] = 0;
    for (size_t i = 0; i < n && o < len; i++)
        o += (size_t)snprintf(buf + o, len - o, "%s%s", i ? ", " : "", cols[i]);
}

/* Header fields (trimmed) into a list of names. */
static char **header_names(const strm_csv_field_t *f, size_t n)
{
    char **cols = calloc(n ? n : 1, sizeof *cols);
    if (!cols) return NULL;
    for (size_t i = 0; i < n; i++) {
        const char *s = f[i].s;
        size_t len = f[i].len;
        trim(&s, &len);
        if (!(cols[i] = dupn(s, len))) {
            for (size_t k = 0; k < i; k++) free(cols[k]);
            free(cols);
            return NULL;
        }
    }
    return cols;
}

static int table_load(table_t *t, const char *path, int delim, char *err, size_t errlen)
{
    strm_csv_t *r = strm_csv_open(path, delim, err, errlen);
    if (!r) return -1;
    const strm_csv_field_t *f;
    size_t n;
    const char *why;
    int rc = strm_csv_next(r, &f, &n, &why);
    if (rc <= 0) {
        snprintf(err, errlen, "%s: %s", path,
                 rc == 0 ? "empty (a joined file needs a header)" : why);
        goto fail;
    }
    if (!(t->cols = header_names(f, n))) goto nomem;
    t->ncols = n;
    t->rcap = 1024;
    if (!(t->row0 = malloc(t->rcap * sizeof *t->row0))) goto nomem;
    while ((rc = strm_csv_next(r, &f, &n, &why)) != 0) {
        if (rc < 0) {
            snprintf(err, errlen, "%s line %" PRIu64 ": %s", path, strm_csv_line(r), why);
            goto fail;
        }
        if (t->nrows + 2 > t->rcap) {
            size_t *p = realloc(t->row0, (t->rcap *= 2) * sizeof *p);
            if (!p) goto nomem;
            t->row0 = p;
        }
        t->row0[t->nrows++] = t->nf;
        for (size_t i = 0; i < n; i++) {
            const char *s = f[i].s;
            size_t len = f[i].len;
            trim(&s, &len);
            if (table_add_field(t, s, len) < 0) goto nomem;
        }
        if (t->nrows >= UINT32_MAX - 1) {
            snprintf(err, errlen, "%s: too many rows for a joined file", path);
            goto fail;
        }
    }
    t->row0[t->nrows] = t->nf;
    strm_csv_close(r);
    return 0;
nomem:
    snprintf(err, errlen, "%s: out of memory", path);
fail:
    strm_csv_close(r);
    return -1;
}

static int table_index(table_t *t)
{
    size_t nb = 16;
    while (nb < t->nrows * 2) nb *= 2;
    t->nbucket = nb;
    t->bucket = calloc(nb, sizeof *t->bucket);
    t->next = calloc(t->nrows ? t->nrows : 1, sizeof *t->next);
    if (!t->bucket || !t->next) return -1;
    for (size_t r = t->nrows; r-- > 0;) { /* backwards: chains come out in file order */
        const char *s;
        size_t n;
        table_field(t, (uint32_t)r, t->key_col, &s, &n);
        uint64_t h = hash_bytes(HASH0, s, n) & (nb - 1);
        t->next[r] = t->bucket[h];
        t->bucket[h] = (uint32_t)r + 1;
    }
    return 0;
}

/* ---------- the source ---------- */

enum {
    S_CUSTOMER,
    S_TYPE,
    S_CATEGORY,
    S_CHANNEL,
    S_EVENT_ID,
    S_GROUP,
    S_TRAIT0,
    S__COUNT = S_TRAIT0 + SEG_TRAITS_MAX
};

typedef struct mrow {
    int64_t ts;
    uint64_t line;
    double amount;
    size_t off; /* its strings, one after the other in S_ order, in the arena */
    uint16_t len[S__COUNT];
    uint8_t has_amount;
    int8_t discount; /* -1: not given */
    uint8_t dead;    /* merged into another row */
} mrow_t;

struct strm_csvsrc {
    strm_csvmap_t *m;
    strm_csv_t *csv;
    char *base; /* file name, for generated event ids */
    size_t base_len;
    char **cols;
    size_t ncols;
    int table[F__COUNT]; /* 0: the main file, 1 + j: join j */
    size_t col[F__COUNT];
    table_t join[MAX_JOINS];
    int njoin;
    uint32_t jfirst[MAX_JOINS]; /* first matching row + 1 (0: none) */
    int jdone[MAX_JOINS];
    const strm_csv_field_t *fields;
    size_t nf;
    char tval[SEG_TRAITS_MAX][SEG_TRAIT_VAL]; /* trait values made to fit */
    int sort, loaded, group;
    char *arena;
    size_t alen, acap;
    mrow_t *rows;
    size_t nrows, rcap, emit;
    mrow_t pending;
    int has_pending, eof;
    strm_buf_t out;
    uint64_t rows_read, merged;
};

static void free_names(char **cols, size_t n)
{
    if (!cols) return;
    for (size_t i = 0; i < n; i++) free(cols[i]);
    free(cols);
}

void strm_csvsrc_close(strm_csvsrc_t *s)
{
    if (!s) return;
    strm_csv_close(s->csv);
    free(s->base);
    free_names(s->cols, s->ncols);
    for (int j = 0; j < s->njoin; j++) table_free(&s->join[j]);
    free(s->arena);
    free(s->rows);
    strm_buf_free(&s->out);
    free(s);
}

/* Resolves field k's column: the main file first, then each joined file. */
static int resolve(strm_csvsrc_t *s, int k, const char *path, char *err, size_t errlen)
{
    const ref_t *r = &s->m->f[k];
    if (r->kind != REF_COL) return 0;
    const char *name = r->text;
    char what[64];
    if (k >= F_TRAIT0)
        snprintf(what, sizeof what, "traits.%s", s->m->trait_key[k - F_TRAIT0]);
    else
        snprintf(what, sizeof what, "%s", field_keys[k]);
    if (name[0] == '$') {
        char *end;
        long v = strtol(name + 1, &end, 10);
        if (*end || v < 1 || v > 100000) FAIL("%s=%s: $N counts columns from 1", what, name);
        s->table[k] = 0;
        s->col[k] = (size_t)v - 1;
        return 0;
    }
    int c = find_col(s->cols, s->ncols, name);
    if (c >= 0) {
        s->table[k] = 0;
        s->col[k] = (size_t)c;
        return 0;
    }
    for (int j = 0; j < s->njoin; j++) {
        c = find_col(s->join[j].cols, s->join[j].ncols, name);
        if (c >= 0) {
            s->table[k] = 1 + j;
            s->col[k] = (size_t)c;
            return 0;
        }
    }
    char list[512];
    list_cols(list, sizeof list, s->cols, s->ncols);
    if (!s->ncols)
        FAIL("%s=%s: the file has no header: name columns with columns=... or use $N", what, name);
    FAIL("%s=%s: no such column in %s (columns: %s)", what, name, path, list);
}

const char *strm_csvmap_join(const strm_csvmap_t *m, int j, const char *path, char *buf, size_t len)
{
    if (j < 0 || j >= m->njoin) return NULL;
    const char *slash = strrchr(path, '/');
    if (m->join_file[j][0] == '/' || !slash)
        snprintf(buf, len, "%s", m->join_file[j]);
    else
        snprintf(buf, len, "%.*s/%s", (int)(slash - path), path, m->join_file[j]);
    return m->join_file[j];
}

strm_csvsrc_t *strm_csvsrc_open(const char *path, strm_csvmap_t *m, int sort, char *err,
                                size_t errlen)
{
    strm_csvsrc_t *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->m = m;
    s->sort = sort || m->sort;
    s->group = m->f[F_GROUP].kind != REF_NONE;
    strm_buf_init(&s->out);
    const char *slash = strrchr(path, '/');
    s->base = strdup(slash ? slash + 1 : path);
    if (!s->base) goto nomem;
    s->base_len = strlen(s->base);
    if (!m->f[F_CUSTOMER].kind) {
        snprintf(err, errlen, "the CSV mapping has no customer_id");
        goto fail;
    }
    if (!m->f[F_TYPE].kind) {
        snprintf(err, errlen,
                 "the CSV mapping has no type (a column, or a constant such as "
                 "type='purchase')");
        goto fail;
    }
    if (!m->f[F_TS].kind) {
        snprintf(err, errlen, "the CSV mapping has no ts");
        goto fail;
    }
    if (!(s->csv = strm_csv_open(path, m->delim, err, errlen))) goto fail;
    if (m->header) {
        const strm_csv_field_t *f;
        size_t n;
        const char *why;
        int rc = strm_csv_next(s->csv, &f, &n, &why);
        if (rc <= 0) {
            if (rc == 0)
                snprintf(err, errlen, "%s: empty (no header)", path);
            else
                snprintf(err, errlen, "%s line %" PRIu64 ": header: %s", path,
                         strm_csv_line(s->csv), why);
            goto fail;
        }
        if (!(s->cols = header_names(f, n))) goto nomem;
        s->ncols = n;
    }
    if (m->ncolumns) { /* names given: they replace the header's */
        free_names(s->cols, s->ncols);
        s->cols = calloc(m->ncolumns, sizeof *s->cols);
        if (!s->cols) goto nomem;
        s->ncols = m->ncolumns;
        for (size_t i = 0; i < m->ncolumns; i++)
            if (!(s->cols[i] = strdup(m->columns[i]))) goto nomem;
    }
    for (int j = 0; j < m->njoin; j++) {
        table_t *t = &s->join[j];
        char jp[4096];
        strm_csvmap_join(m, j, path, jp, sizeof jp);
        t->name = m->join_file[j];
        s->njoin = j + 1;
        if (table_load(t, jp, m->delim, err, errlen) < 0) goto fail;
        int kc = find_col(t->cols, t->ncols, m->join_key[j]);
        int mc = find_col(s->cols, s->ncols, m->join_main[j]);
        if (kc < 0) {
            snprintf(err, errlen, "join=%s: no column %s in %s", m->join_file[j], m->join_key[j],
                     jp);
            goto fail;
        }
        if (mc < 0) {
            snprintf(err, errlen, "join=%s: no column %s in %s", m->join_file[j], m->join_main[j],
                     path);
            goto fail;
        }
        t->key_col = (size_t)kc;
        t->main_col = (size_t)mc;
        if (table_index(t) < 0) goto nomem;
    }
    for (int k = 0; k < F__COUNT; k++)
        if (resolve(s, k, path, err, errlen) < 0) goto fail;
    return s;
nomem:
    snprintf(err, errlen, "out of memory");
fail:
    strm_csvsrc_close(s);
    return NULL;
}

/* ---------- one row ---------- */

static uint32_t join_first(strm_csvsrc_t *s, int j)
{
    if (s->jdone[j]) return s->jfirst[j];
    table_t *t = &s->join[j];
    s->jdone[j] = 1;
    s->jfirst[j] = 0;
    if (t->main_col >= s->nf) return 0;
    const char *k = s->fields[t->main_col].s;
    size_t kn = s->fields[t->main_col].len;
    trim(&k, &kn);
    uint64_t h = hash_bytes(HASH0, k, kn) & (t->nbucket - 1);
    for (uint32_t r = t->bucket[h]; r; r = t->next[r - 1]) {
        const char *v;
        size_t vn;
        table_field(t, r - 1, t->key_col, &v, &vn);
        if (vn == kn && !memcmp(v, k, kn)) return s->jfirst[j] = r;
    }
    return 0;
}

/* The matching row after r (1-based), or 0. */
static uint32_t join_next(strm_csvsrc_t *s, int j, uint32_t r)
{
    table_t *t = &s->join[j];
    const char *k, *v;
    size_t kn, vn;
    table_field(t, r - 1, t->key_col, &k, &kn);
    for (r = t->next[r - 1]; r; r = t->next[r - 1]) {
        table_field(t, r - 1, t->key_col, &v, &vn);
        if (vn == kn && !memcmp(v, k, kn)) return r;
    }
    return 0;
}

static int is_na(const strm_csvmap_t *m, const char *s, size_t n)
{
    for (int i = 0; i < m->nna; i++)
        if (strlen(m->na[i]) == n && !memcmp(m->na[i], s, n)) return 1;
    return 0;
}

/* Field k's value in the current row (for a joined column, in matching
 * row jr, 0 = the first). NULL with v/n (n == 0: empty), or a reason:
 * short_row, or no_join_match when the joined file has no such row. */
static const char *get_at(strm_csvsrc_t *s, int k, uint32_t jr, const char **v, size_t *n)
{
    const ref_t *r = &s->m->f[k];
    *v = "";
    *n = 0;
    if (r->kind == REF_CONST) {
        *v = r->text;
        *n = strlen(r->text);
        return NULL;
    }
    if (r->kind == REF_NONE) return NULL;
    int t = s->table[k];
    if (t == 0) {
        if (s->col[k] >= s->nf) return r->why_short;
        *v = s->fields[s->col[k]].s;
        *n = s->fields[s->col[k]].len;
        trim(v, n);
    } else {
        uint32_t row = jr ? jr : join_first(s, t - 1);
        if (!row) return s->m->join_why[t - 1];
        table_field(&s->join[t - 1], row - 1, s->col[k], v, n);
    }
    if (*n && is_na(s->m, *v, *n)) *n = 0;
    return NULL;
}

static const char *get(strm_csvsrc_t *s, int k, const char **v, size_t *n)
{
    return get_at(s, k, 0, v, n);
}

/* An optional field: a joined file without a matching row leaves it empty;
 * a row too short to hold its column is still a reason. */
static const char *get_opt(strm_csvsrc_t *s, int k, const char **v, size_t *n)
{
    const char *why = get_at(s, k, 0, v, n);
    if (why && why != s->m->f[k].why_short) why = NULL, *n = 0;
    return why;
}

/* The next matching row of field k's joined file after jr (0: none, and
 * always none for the main file or a constant). */
static uint32_t next_row(strm_csvsrc_t *s, int k, uint32_t jr)
{
    int t = s->table[k];
    if (s->m->f[k].kind != REF_COL || t == 0) return 0;
    if (!jr) jr = join_first(s, t - 1);
    return jr ? join_next(s, t - 1, jr) : 0;
}

/* A decimal number: [+-]digits[.digits][e[+-]digits]. */
static int parse_num(const char *s, size_t n, double *out)
{
    char buf[64];
    size_t i = 0, d = 0;
    if (n == 0 || n >= sizeof buf) return -1;
    if (s[i] == '+' || s[i] == '-') i++;
    for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) d++;
    if (i < n && s[i] == '.')
        for (i++; i < n && s[i] >= '0' && s[i] <= '9'; i++) d++;
    if (!d) return -1;
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        size_t e0 = ++i;
        if (i < n && (s[i] == '+' || s[i] == '-')) e0 = ++i;
        for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
        }
        if (i == e0) return -1;
    }
    if (i != n) return -1;
    /* Most values are short decimals: digits < 2^53 over a power of ten up
     * to 1e22 are exact doubles, and one division rounds correctly. */
    static const double p10[] = {1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11};
    if (d <= 15 && !memchr(s, 'e', n) && !memchr(s, 'E', n)) {
        uint64_t v = 0;
        int frac = -1, neg = s[0] == '-';
        for (size_t k = 0; k < n; k++) {
            if (s[k] == '.') {
                frac = 0;
            } else if (s[k] >= '0' && s[k] <= '9') {
                v = v * 10 + (uint64_t)(s[k] - '0');
                if (frac >= 0) frac++;
            }
        }
        if (frac <= 11) {
            double x = (double)v / p10[frac < 0 ? 0 : frac];
            *out = x == 0 ? 0 : neg ? -x : x;
            return 0;
        }
    }
    memcpy(buf, s, n);
    buf[n] = 0;
    double x = strtod(buf, NULL);
    if (!isfinite(x)) return -1;
    *out = x == 0 ? 0 : x;
    return 0;
}

/* Field k as a number, summed over the matching rows of a joined file. */
static const char *number(strm_csvsrc_t *s, int k, double *out)
{
    const char *v, *why;
    size_t n;
    double sum = 0, x;
    int any = 0;
    uint32_t jr = 0;
    do {
        if ((why = get_at(s, k, jr, &v, &n))) return why;
        if (n) {
            if (parse_num(v, n, &x) < 0) return s->m->f[k].why_bad;
            sum += x;
            any = 1;
        }
    } while ((jr = next_row(s, k, jr)));
    if (!any) return s->m->f[k].why_missing;
    *out = sum;
    return NULL;
}

static int parse_bool(const char *s, size_t n, int *out)
{
    static const char *const t[] = {"true", "yes", "y", "t"}, *const f[] = {"false", "no", "n",
                                                                            "f"};
    for (int i = 0; i < 4; i++) {
        if (strlen(t[i]) == n && !strncasecmp(s, t[i], n)) return *out = 1, 0;
        if (strlen(f[i]) == n && !strncasecmp(s, f[i], n)) return *out = 0, 0;
    }
    double x;
    if (parse_num(s, n, &x) < 0 || x < 0) return -1;
    *out = x > 0;
    return 0;
}

/* Longest prefix of at most max bytes that does not cut a character. */
static size_t cut_utf8(const char *s, size_t n, size_t max)
{
    if (n <= max) return n;
    n = max;
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80) n--;
    return n;
}

static int arena_put(strm_csvsrc_t *s, const char *p, size_t n)
{
    if (s->acap - s->alen < n) {
        size_t cap = s->acap ? s->acap : 4096;
        while (cap - s->alen < n) cap *= 2;
        char *a = realloc(s->arena, cap);
        if (!a) return -1;
        s->arena = a;
        s->acap = cap;
    }
    if (n) memcpy(s->arena + s->alen, p, n);
    s->alen += n;
    return 0;
}

static const char *const channel_names[] = {"web", "app", "email", "store"};

/* s[0..n) into dst as UTF-8 of at most cap bytes: bytes that are not
 * UTF-8 become U+FFFD (as the JSON encoder would write them), and the text
 * is cut before a character that does not fit. Returns the length. */
static size_t utf8_fit(const char *str, size_t n, char *dst, size_t cap)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t o = 0;
    for (size_t k = 0; k < n;) {
        size_t w = s[k] < 0x80 ? 1 : strm__utf8_seq(s + k, n - k);
        const char *src = w ? str + k : "\xEF\xBF\xBD";
        size_t len = w ? w : 3;
        if (o + len > cap) break;
        memcpy(dst + o, src, len);
        o += len;
        k += w ? w : 1;
    }
    return o;
}

/* An id must be valid UTF-8 without NUL bytes: the JSON encoder would
 * replace what is not, and two ids in another encoding could become one. */
static int plain_id(const char *s, size_t n)
{
    return !memchr(s, 0, n) && strm__utf8_valid(s, n);
}

/* Maps the current row into o (its strings appended to the arena), or
 * returns why it cannot be. */
static const char *map_row(strm_csvsrc_t *s, mrow_t *o)
{
    const strm_csvmap_t *m = s->m;
    const char *sv[S__COUNT] = {0}, *v, *why;
    size_t sl[S__COUNT] = {0}, n;
    memset(o, 0, sizeof *o);
    o->discount = -1;
    memset(s->jdone, 0, sizeof s->jdone);

    if ((why = get(s, F_CUSTOMER, &v, &n))) return why;
    if (!n) return m->f[F_CUSTOMER].why_missing;
    if (n > SEG_ID_MAX || !plain_id(v, n)) return m->f[F_CUSTOMER].why_bad;
    sv[S_CUSTOMER] = v, sl[S_CUSTOMER] = n;

    if ((why = get(s, F_TYPE, &v, &n))) return why;
    if (!n) return m->f[F_TYPE].why_missing;
    const char *star = NULL;
    int mapped = 0;
    for (int i = 0; i < m->ntypemap && !mapped; i++) {
        if (!strcmp(m->type_from[i], "*")) star = m->type_to[i];
        if (strlen(m->type_from[i]) == n && !memcmp(m->type_from[i], v, n)) {
            v = m->type_to[i];
            n = strlen(v);
            mapped = 1;
        }
    }
    if (!mapped && star) v = star, n = strlen(star);
    if (memchr(v, 0, n)) return m->f[F_TYPE].why_bad;
    sv[S_TYPE] = v, sl[S_TYPE] = cut_utf8(v, n, 64);

    if ((why = get(s, F_TS, &v, &n))) return why;
    if (!n) return m->f[F_TS].why_missing;
    int ok = 0;
    for (int i = 0; i < m->n_ts_fmt && !ok; i++)
        ok = strm_csv_parse_time(v, n, m->ts_fmt[i], m->tz_min, &o->ts) == 0;
    if (!ok) return m->f[F_TS].why_bad;

    if (sl[S_TYPE] == 8 && !memcmp(sv[S_TYPE], "purchase", 8)) {
        double amount = 0;
        const char *neg = NULL, *large = NULL;
        int given = 1;
        if (m->f[F_AMOUNT].kind) {
            if ((why = number(s, F_AMOUNT, &amount))) return why;
            neg = m->f[F_AMOUNT].why_negative;
            large = m->f[F_AMOUNT].why_large;
        } else if (m->f[F_PRICE].kind && m->f[F_QUANTITY].kind) {
            double p, q;
            if ((why = number(s, F_PRICE, &p)) || (why = number(s, F_QUANTITY, &q))) return why;
            amount = strm__round6(p * q);
            neg = m->f[q < 0 ? F_QUANTITY : F_PRICE].why_negative;
            large = m->f[fabs(q) > fabs(p) ? F_QUANTITY : F_PRICE].why_large;
        } else {
            given = 0; /* the decoder says missing_amount */
        }
        if (given && !(amount <= SEG_AMOUNT_MAX)) return large; /* or p * q was, or NaN */
        if (given && amount < 0) {
            if (!m->refund_type) return neg;
            sv[S_TYPE] = m->refund_type;
            sl[S_TYPE] = cut_utf8(m->refund_type, strlen(m->refund_type), 64);
        } else if (given) {
            o->amount = amount;
            o->has_amount = 1;
        }
    }

    if ((why = get_opt(s, F_CATEGORY, &v, &n))) return why;
    if (memchr(v, 0, n)) return m->f[F_CATEGORY].why_bad;
    sv[S_CATEGORY] = v, sl[S_CATEGORY] = cut_utf8(v, n, STR_CAP);

    if (m->f[F_CHANNEL].kind) {
        if ((why = get_opt(s, F_CHANNEL, &v, &n))) return why;
        if (n) {
            int c = -1;
            for (int i = 0; i < 4 && c < 0; i++)
                if (strlen(channel_names[i]) == n && !strncasecmp(channel_names[i], v, n)) c = i;
            if (c < 0) return m->f[F_CHANNEL].why_bad;
            sv[S_CHANNEL] = channel_names[c], sl[S_CHANNEL] = strlen(channel_names[c]);
        }
    }

    if (m->f[F_DISCOUNT].kind) {
        int any = 0, given = 0;
        uint32_t jr = 0;
        do {
            if ((why = get_at(s, F_DISCOUNT, jr, &v, &n))) {
                if (why == m->f[F_DISCOUNT].why_short) return why;
                break; /* no joined row: not given */
            }
            if (!n) continue;
            given = 1;
            int b;
            if (m->discount_value) {
                b = strlen(m->discount_value) == n && !memcmp(m->discount_value, v, n);
            } else if (parse_bool(v, n, &b) < 0) {
                return m->f[F_DISCOUNT].why_bad;
            }
            any |= b;
        } while ((jr = next_row(s, F_DISCOUNT, jr)));
        if (given) o->discount = (int8_t)any;
    }

    if (m->f[F_EVENT_ID].kind) {
        if ((why = get_opt(s, F_EVENT_ID, &v, &n))) return why;
        if (n > SEG_EVID_MAX || !plain_id(v, n)) return m->f[F_EVENT_ID].why_bad;
        sv[S_EVENT_ID] = v, sl[S_EVENT_ID] = n;
    }
    if (s->group) {
        if ((why = get_opt(s, F_GROUP, &v, &n))) return why;
        sv[S_GROUP] = v, sl[S_GROUP] = cut_utf8(v, n, STR_CAP);
    }
    for (int i = 0; i < SEG_TRAITS_MAX; i++) {
        if (!m->f[F_TRAIT0 + i].kind) continue;
        if ((why = get_opt(s, F_TRAIT0 + i, &v, &n))) return why;
        if (memchr(v, 0, n)) return m->f[F_TRAIT0 + i].why_bad;
        sv[S_TRAIT0 + i] = s->tval[i];
        sl[S_TRAIT0 + i] = utf8_fit(v, n, s->tval[i], TRAIT_VALMAX);
    }

    o->off = s->alen;
    for (int i = 0; i < S__COUNT; i++) {
        if (arena_put(s, sv[i], sl[i]) < 0) return "out_of_memory";
        o->len[i] = (uint16_t)sl[i];
    }
    return NULL;
}

/* ---------- events out ---------- */

static inline const char *str_at(const strm_csvsrc_t *s, const mrow_t *r, int i, size_t *n)
{
    size_t off = r->off;
    for (int k = 0; k < i; k++) off += r->len[k];
    *n = r->len[i];
    return s->arena + off;
}

#define PUT(lit) (strm_buf_append(b, lit, sizeof lit - 1) < 0)

/* v in decimal at buf (room for 20 digits); returns the length. */
static int put_u64(char *buf, uint64_t v)
{
    char tmp[20];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (int i = 0; i < n; i++) buf[i] = tmp[n - 1 - i];
    return n;
}

/* x (already rounded to 1e-6) as the shortest decimal that reads back as
 * x: for |x| < 1e9 that is its integer part and up to six decimals (both
 * the text and x are the double nearest to N / 1e6); else %.17g's way. */
static int put_amount(char *buf, double x)
{
    if (!(fabs(x) < 1e9)) return strm__fmt_double(buf, x);
    int64_t n = llround(x * 1e6);
    int len = 0;
    if (n < 0) buf[len++] = '-', n = -n;
    len += put_u64(buf + len, (uint64_t)(n / 1000000));
    int frac = (int)(n % 1000000);
    if (frac) {
        int digits = 6;
        while (frac % 10 == 0) frac /= 10, digits--;
        buf[len++] = '.';
        for (int i = digits - 1; i >= 0; i--, frac /= 10) buf[len + i] = (char)('0' + frac % 10);
        len += digits;
    }
    return len;
}

static int encode(strm_csvsrc_t *s, const mrow_t *r)
{
    strm_buf_t *b = &s->out;
    const char *v;
    size_t n, total = 0;
    char num[48];
    const char *sp[S__COUNT]; /* each string of the row */
    for (int i = 0; i < S__COUNT; i++) {
        sp[i] = s->arena + r->off + total;
        total += r->len[i];
    }
    b->len = 0;
    /* worst case: every byte escaped as \u00XX, plus keys (trait names
     * escaped too) and numbers */
    if (strm_buf_reserve(b, 6 * total + 512 + SEG_TRAITS_MAX * (6 * SEG_TRAIT_KEY + 8)) < 0)
        return -1;
    if (PUT("{\"customer_id\":")) return -1;
    v = sp[S_CUSTOMER], n = r->len[S_CUSTOMER];
    if (strm__json_str(b, v, n) < 0 || PUT(",\"type\":")) return -1;
    v = sp[S_TYPE], n = r->len[S_TYPE];
    if (strm__json_str(b, v, n) < 0) return -1;
    if (PUT(",\"ts\":")) return -1;
    int k = put_u64(num, (uint64_t)r->ts); /* ts >= 0: the parser checks */
    if (strm_buf_append(b, num, (size_t)k) < 0) return -1;
    if (r->has_amount) {
        if (PUT(",\"amount\":")) return -1;
        k = put_amount(num, strm__round6(r->amount));
        if (strm_buf_append(b, num, (size_t)k) < 0) return -1;
    }
    v = sp[S_CATEGORY], n = r->len[S_CATEGORY];
    if (n && (PUT(",\"category\":") || strm__json_str(b, v, n) < 0)) return -1;
    v = sp[S_CHANNEL], n = r->len[S_CHANNEL];
    if (n && (PUT(",\"channel\":") || strm__json_str(b, v, n) < 0)) return -1;
    if (r->discount >= 0 && (r->discount ? PUT(",\"discount\":true") : PUT(",\"discount\":false")))
        return -1;
    if (PUT(",\"event_id\":")) return -1;
    v = sp[S_EVENT_ID], n = r->len[S_EVENT_ID];
    if (!n) { /* <file name>:<line>, the name cut to fit 64 bytes */
        char id[SEG_EVID_MAX + 1], line[24];
        int ln = put_u64(line, r->line);
        size_t room = SEG_EVID_MAX - 1 - (size_t)ln;
        size_t bl = utf8_fit(s->base, s->base_len, id, room); /* a file name may not be UTF-8 */
        id[bl] = ':';
        memcpy(id + bl + 1, line, (size_t)ln);
        if (strm__json_str(b, id, bl + 1 + (size_t)ln) < 0) return -1;
    } else if (strm__json_str(b, v, n) < 0) {
        return -1;
    }
    int first = 1;
    for (int i = 0; i < SEG_TRAITS_MAX; i++) {
        v = sp[S_TRAIT0 + i], n = r->len[S_TRAIT0 + i];
        if (!n) continue;
        if (first ? PUT(",\"traits\":{") : PUT(",")) return -1;
        first = 0;
        const char *key = s->m->trait_key[i];
        if (strm__json_str(b, key, strlen(key)) < 0 || PUT(":") || strm__json_str(b, v, n) < 0)
            return -1;
    }
    if (!first && PUT("}")) return -1;
    return PUT("}") ? -1 : 0;
}

/* Same customer, group value and type: one event. */
static int same_key(const strm_csvsrc_t *s, const mrow_t *a, const mrow_t *b)
{
    static const int parts[] = {S_CUSTOMER, S_GROUP, S_TYPE};
    for (int i = 0; i < 3; i++) {
        size_t na, nb;
        const char *x = str_at(s, a, parts[i], &na), *y = str_at(s, b, parts[i], &nb);
        if (na != nb || memcmp(x, y, na)) return 0;
    }
    return 1;
}

/* Why a merged event cannot be used: its rows' amounts, each within
 * SEG_AMOUNT_MAX, add up past it (the amount or price column named, the
 * merged event as the dead letter's bytes); NULL when it can. */
static const char *merged_too_large(const strm_csvsrc_t *s, const mrow_t *e)
{
    if (!e->has_amount || e->amount <= SEG_AMOUNT_MAX) return NULL;
    return s->m->f[s->m->f[F_AMOUNT].kind ? F_AMOUNT : F_PRICE].why_large;
}

static void merge(strm_csvsrc_t *s, mrow_t *into, const mrow_t *r)
{
    if (r->has_amount) {
        into->amount += r->amount;
        into->has_amount = 1;
    }
    if (r->discount > into->discount) into->discount = r->discount;
    if (r->ts < into->ts) into->ts = r->ts;
    s->merged++;
}

/* Reads and maps the next row: 1 (o filled), 0 at the end, -1 with the
 * row's bytes and why it cannot be used (rec NULL: nothing more can be
 * read). */
static int read_row(strm_csvsrc_t *s, mrow_t *o, const char **rec, size_t *len, const char **reason,
                    uint64_t *line)
{
    const strm_csv_field_t *f;
    size_t n;
    const char *why;
    if (s->eof) return 0;
    int r = strm_csv_next(s->csv, &f, &n, &why);
    if (r == 0) {
        s->eof = 1;
        return 0;
    }
    strm_csv_raw(s->csv, rec, len);
    *line = strm_csv_line(s->csv);
    s->rows_read++; /* a row that cannot be read is a row read, as a dead letter */
    if (r < 0) {
        *reason = why;
        if (!*rec) s->eof = 1;
        return -1;
    }
    s->fields = f;
    s->nf = n;
    size_t mark = s->alen;
    if ((why = map_row(s, o))) {
        s->alen = mark;
        *reason = why;
        return -1;
    }
    o->line = *line;
    return 1;
}

static int cmp_rows(const void *pa, const void *pb)
{
    const mrow_t *a = pa, *b = pb;
    if (a->ts != b->ts) return a->ts < b->ts ? -1 : 1;
    return a->line < b->line ? -1 : a->line > b->line;
}

/* All rows read: merge the groups, then order by (ts, line). */
static int finish_load(strm_csvsrc_t *s)
{
    if (s->group && s->nrows) {
        size_t cap = 16;
        while (cap < s->nrows * 2) cap *= 2;
        uint32_t *tab = calloc(cap, sizeof *tab);
        if (!tab) return -1;
        for (size_t i = 0; i < s->nrows; i++) {
            mrow_t *r = &s->rows[i];
            uint64_t h = HASH0;
            static const int parts[] = {S_CUSTOMER, S_GROUP, S_TYPE};
            for (int p = 0; p < 3; p++) {
                size_t n;
                const char *v = str_at(s, r, parts[p], &n);
                h = hash_bytes(h, v, n) * 31 + 1;
            }
            size_t slot = h & (cap - 1);
            for (;;) {
                if (!tab[slot]) {
                    tab[slot] = (uint32_t)i + 1;
                    break;
                }
                mrow_t *into = &s->rows[tab[slot] - 1];
                if (same_key(s, into, r)) {
                    merge(s, into, r);
                    r->dead = 1;
                    break;
                }
                slot = (slot + 1) & (cap - 1);
            }
        }
        free(tab);
    }
    qsort(s->rows, s->nrows, sizeof *s->rows, cmp_rows);
    s->loaded = 1;
    return 0;
}

int strm_csvsrc_next(strm_csvsrc_t *s, const char **rec, size_t *len, const char **reason,
                     uint64_t *line)
{
    mrow_t row;
    int r;
    if (s->sort) {
        while (!s->loaded) {
            if (s->nrows == s->rcap) {
                size_t cap = s->rcap ? s->rcap * 2 : 4096;
                if (cap > UINT32_MAX) return *reason = "out_of_memory", *rec = NULL, *len = 0, -1;
                mrow_t *p = realloc(s->rows, cap * sizeof *p);
                if (!p) return *reason = "out_of_memory", *rec = NULL, *len = 0, -1;
                s->rows = p;
                s->rcap = cap;
            }
            r = read_row(s, &s->rows[s->nrows], rec, len, reason, line);
            if (r < 0) return -1;
            if (r > 0) {
                s->nrows++;
                continue;
            }
            if (finish_load(s) < 0) return *reason = "out_of_memory", *rec = NULL, *len = 0, -1;
        }
        while (s->emit < s->nrows && s->rows[s->emit].dead) s->emit++;
        if (s->emit == s->nrows) return 0;
        const mrow_t *e = &s->rows[s->emit++];
        if (encode(s, e) < 0) return *reason = "out_of_memory", *rec = NULL, *len = 0, -1;
        *rec = s->out.p;
        *len = s->out.len;
        *line = e->line;
        return (*reason = merged_too_large(s, e)) ? -1 : 1;
    }
    for (;;) {
        if (!s->has_pending) s->alen = 0;
        r = read_row(s, &row, rec, len, reason, line);
        if (r < 0) return -1;
        if (r == 0 && !s->has_pending) return 0;
        if (r > 0 && !s->group) {
            if (encode(s, &row) < 0) return *reason = "out_of_memory", *rec = NULL, *len = 0, -1;
            break;
        }
        if (r > 0 && !s->has_pending) {
            s->pending = row;
            s->has_pending = 1;
            continue;
        }
        if (r > 0 && same_key(s, &s->pending, &row)) {
            merge(s, &s->pending, &row);
            s->alen = row.off; /* its strings are the pending row's */
            continue;
        }
        /* the pending event is complete */
        if (encode(s, &s->pending) < 0) return *reason = "out_of_memory", *rec = NULL, *len = 0, -1;
        *line = s->pending.line;
        const char *large = merged_too_large(s, &s->pending);
        if (r > 0) {
            size_t n = s->alen - row.off;
            memmove(s->arena, s->arena + row.off, n);
            row.off = 0;
            s->alen = n;
            s->pending = row;
        } else {
            s->has_pending = 0;
        }
        *rec = s->out.p;
        *len = s->out.len;
        return large ? (*reason = large, -1) : 1;
    }
    *rec = s->out.p;
    *len = s->out.len;
    return 1;
}

double strm_csvsrc_progress(const strm_csvsrc_t *s)
{
    uint64_t size = strm_csv_size(s->csv), off = strm_csv_offset(s->csv);
    double rd = size ? (double)off / (double)size : 0;
    if (rd > 1) rd = 1;
    if (!s->sort) return rd;
    /* sorting: reading and mapping take about as long as the replay after */
    if (!s->loaded) return 0.5 * rd;
    return 0.5 + 0.5 * (s->nrows ? (double)s->emit / (double)s->nrows : 1);
}

int strm_csvsrc_sorted(const strm_csvsrc_t *s)
{
    return s->sort;
}

uint64_t strm_csvsrc_rows(const strm_csvsrc_t *s)
{
    return s->rows_read;
}

uint64_t strm_csvsrc_merged(const strm_csvsrc_t *s)
{
    return s->merged;
}
