/* cmd/compare.c: `segstream compare A B`: how two assignments of the same
 * customers differ along one dimension (cluster, lifecycle, one rule or the
 * set of rules): per-segment sizes and KPIs on each side, the transition
 * matrix A segment x B segment, and the customers who moved. Each side is a
 * snapshot CSV (`replay --snapshot`), a change-event JSON lines file
 * (`replay --out`: each customer's last value per dimension), or a Redis
 * namespace (`redis:PREFIX`, read once with hiredis's synchronous API).
 * Writes a table, CSV or JSON. A one-shot CLI: owns its memory, reads its
 * inputs whole, never writes to Redis and is never on the event path. */
#define JSMN_STATIC
#define JSMN_STRICT
#define JSMN_PARENT_LINKS
#include <jsmn.h>

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <hiredis/hiredis.h>
#include "cmd/cli.h"
#include "config/config.h"
#include "segmenter/segmenter.h"
#include "state/redis.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: segstream compare A B [--dimension D] [--format table|csv|json] [--out FILE]\n"
            "                             [--moved N|all] [--redis URL] [-c FILE]\n"
            "\n"
            "Compares two assignments of customers to segments, for example two replays of\n"
            "the same events with K=6 and K=8 clusters. A and B are each one of:\n"
            "  a snapshot CSV     `segstream replay --snapshot FILE` (has orders and revenue)\n"
            "  change events      `segstream replay --out FILE` (JSON lines): each customer's\n"
            "                     last `to` per dimension; orders and revenue are not in it,\n"
            "                     so revenue, orders, AOV and conversion show as n/a\n"
            "  redis:PREFIX       a namespace in Redis (the hashes PREFIXc:*, e.g. redis:seg:),\n"
            "                     read from --redis URL, else redis.url of -c FILE, else\n"
            "                     SEGSTREAM_REDIS_URL\n"
            "The kind of a file is told by its content.\n"
            "\n"
            "  -d, --dimension D  cluster (default), lifecycle, rule:NAME (in/out of one rule)\n"
            "                     or rules (the set of rules a customer is in, as one segment)\n"
            "  -f, --format F     table (default), csv (one tidy table: a `section` column\n"
            "                     tells summary/segment/total/transition/moved rows apart) or\n"
            "                     json; without --format, an --out FILE ending in .csv or\n"
            "                     .json picks that format\n"
            "  -o, --out FILE     write there instead of stdout\n"
            "  -m, --moved N      list N moved customers (default 20; `all`; 0: none)\n"
            "      --redis URL    redis://[user[:pass]@]host[:port][/db] for redis: inputs\n"
            "  -c, --config FILE  configuration (redis.url) for redis: inputs\n"
            "\n"
            "Segments: cluster \"ID LABEL\" (matched between A and B by id; customers without\n"
            "a cluster are \"(unassigned)\"), lifecycle stage, \"in\"/\"out\" for rule:NAME,\n"
            "and for rules the rule names joined by commas (\"(none)\": in no rule).\n"
            "\n"
            "Per segment, over the customers in it on that side:\n"
            "  customers    how many; share: customers / all customers of that side\n"
            "  revenue      sum of their revenue (undecayed totals, to the cent)\n"
            "  orders       sum of their orders\n"
            "  aov          average order value: revenue / orders (n/a without orders)\n"
            "  conversion   buyers / customers, buyers: customers with orders > 0\n"
            "  retention    customers whose lifecycle is new, active or reactivated, /\n"
            "               customers (at_risk counts as neither retained nor churned)\n"
            "  churn        customers whose lifecycle is lapsed / customers\n"
            "Transitions: customers by segment in A (rows) and in B (columns); a customer\n"
            "in only one input is in the (absent) row or column, so the cells add up to\n"
            "the customers in A or B, each once. Moved: in both, and in another segment.\n"
            "\n"
            "exit status: 0 compared, 1 the output could not be written, 2 usage or an\n"
            "input that cannot be read (the message names it)\n");
}

/* ---------- errors ---------- */

static char errbuf[1024];

static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errbuf, sizeof(errbuf), fmt, ap);
    va_end(ap);
    return -1;
}

/* ---------- a string -> index map (open addressing; keys not copied) ---------- */

typedef struct map_ent {
    const char *key; /* NULL: empty */
    size_t val;
} map_ent_t;

typedef struct map {
    map_ent_t *e;
    size_t cap, n; /* cap: a power of two */
} map_t;

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static int map_get(const map_t *m, const char *key, size_t *val)
{
    if (!m->cap) return 0;
    for (size_t i = hash_str(key) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        if (!m->e[i].key) return 0;
        if (strcmp(m->e[i].key, key) == 0) {
            *val = m->e[i].val;
            return 1;
        }
    }
}

/* Adds a key that is not there yet; the key must outlive the map. */
static int map_put(map_t *m, const char *key, size_t val)
{
    if (2 * (m->n + 1) > m->cap) {
        size_t cap = m->cap ? 2 * m->cap : 64;
        map_ent_t *e = calloc(cap, sizeof(*e));
        if (!e) return -1;
        for (size_t j = 0; j < m->cap; j++) {
            if (!m->e[j].key) continue;
            size_t i = hash_str(m->e[j].key) & (cap - 1);
            while (e[i].key) i = (i + 1) & (cap - 1);
            e[i] = m->e[j];
        }
        free(m->e);
        m->e = e;
        m->cap = cap;
    }
    size_t i = hash_str(key) & (m->cap - 1);
    while (m->e[i].key) i = (i + 1) & (m->cap - 1);
    m->e[i].key = key;
    m->e[i].val = val;
    m->n++;
    return 0;
}

static void map_free(map_t *m)
{
    free(m->e);
    memset(m, 0, sizeof(*m));
}

/* ---------- one side: customers and their segments ---------- */

typedef struct cust {
    char *id;
    int64_t cluster; /* -1: none */
    int64_t cents;   /* revenue */
    uint64_t orders;
    uint64_t rules; /* bit i: in the side's rule name i */
    int lc;         /* SEG_LC_*, SEG_LC_NONE when unknown */
    size_t seg;     /* index into the side's segments (after side_segments) */
} cust_t;

typedef struct kpi {
    uint64_t customers, buyers, retained, churned, orders;
    int64_t cents;
} kpi_t;

typedef struct segment {
    char *key;  /* identity between A and B, and the matrix's column header */
    char *name; /* what the report shows */
    int rank;   /* sort: rank, then num, then name */
    int64_t num;
    int64_t cluster_id; /* cluster dimension: the id, -1 for (unassigned) */
    const char *label;  /* cluster dimension: the label, or NULL */
    size_t first;       /* place before sorting */
    kpi_t k;
} segment_t;

typedef struct label {
    int64_t id;
    char *label;
} label_t;

typedef struct side {
    const char *input;
    const char *kind; /* "snapshot", "changes", "redis" */
    int totals;       /* orders and revenue are known */
    int has_lc;       /* lifecycle is known */
    int has_cluster;  /* a snapshot with a cluster column, or any other input */
    int has_rules;    /* a snapshot with a rules column, or any other input */
    cust_t *c;
    size_t n, cap;
    map_t ids;
    char *rule[SEG_RULES_MAX];
    int nrule;
    label_t *lab;
    size_t nlab, caplab;
    segment_t *seg;
    size_t nseg;
    kpi_t total;
} side_t;

static void side_free(side_t *s)
{
    for (size_t i = 0; i < s->n; i++) free(s->c[i].id);
    free(s->c);
    map_free(&s->ids);
    for (int i = 0; i < s->nrule; i++) free(s->rule[i]);
    for (size_t i = 0; i < s->nlab; i++) free(s->lab[i].label);
    free(s->lab);
    for (size_t i = 0; i < s->nseg; i++) free(s->seg[i].key), free(s->seg[i].name);
    free(s->seg);
    memset(s, 0, sizeof(*s));
}

/* The customer with this id: *created tells whether it is new. NULL when
 * out of memory. */
static cust_t *side_cust(side_t *s, const char *id, int *created)
{
    size_t i;
    *created = 0;
    if (map_get(&s->ids, id, &i)) return &s->c[i];
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 1024;
        cust_t *c = realloc(s->c, cap * sizeof(*c));
        if (!c) return NULL;
        /* the map points at the ids, not at the array: nothing to redo */
        s->c = c;
        s->cap = cap;
    }
    cust_t *c = &s->c[s->n];
    memset(c, 0, sizeof(*c));
    c->cluster = -1;
    if (!(c->id = strdup(id)) || map_put(&s->ids, c->id, s->n) < 0) {
        free(c->id);
        return NULL;
    }
    s->n++;
    *created = 1;
    return c;
}

static int rule_index(side_t *s, const char *name)
{
    for (int i = 0; i < s->nrule; i++)
        if (strcmp(s->rule[i], name) == 0) return i;
    if (s->nrule == SEG_RULES_MAX) return -1;
    if (!(s->rule[s->nrule] = strdup(name))) return -1;
    return s->nrule++;
}

/* Remembers the label of a cluster id; the last one given wins unless
 * only_new. */
static int side_label(side_t *s, int64_t id, const char *label, int only_new)
{
    if (id < 0 || !label || !*label) return 0;
    for (size_t i = 0; i < s->nlab; i++)
        if (s->lab[i].id == id) {
            if (only_new || strcmp(s->lab[i].label, label) == 0) return 0;
            char *l = strdup(label);
            if (!l) return -1;
            free(s->lab[i].label);
            s->lab[i].label = l;
            return 0;
        }
    if (s->nlab == s->caplab) {
        size_t cap = s->caplab ? 2 * s->caplab : 16;
        label_t *l = realloc(s->lab, cap * sizeof(*l));
        if (!l) return -1;
        s->lab = l;
        s->caplab = cap;
    }
    if (!(s->lab[s->nlab].label = strdup(label))) return -1;
    s->lab[s->nlab++].id = id;
    return 0;
}

static const char *label_of(const side_t *s, int64_t id)
{
    for (size_t i = 0; i < s->nlab; i++)
        if (s->lab[i].id == id) return s->lab[i].label;
    return NULL;
}

static int lifecycle_index(const char *name)
{
    if (!*name) return SEG_LC_NONE;
    for (int i = 1; i < SEG_LC__COUNT; i++)
        if (strcmp(seg_lifecycle_names[i], name) == 0) return i;
    return -1;
}

/* A revenue in cents; -1 unless a finite number >= 0. */
static int parse_cents(const char *s, int64_t *out)
{
    if (!s || !*s || isspace((unsigned char)*s)) return -1;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || !isfinite(v) || v < 0 || v > 9e15) return -1;
    *out = llround(v * 100);
    return 0;
}

/* The fields of one stored customer (a snapshot line or a Redis hash); any
 * field may be NULL when the input has no such column. */
typedef struct row {
    const char *id, *lifecycle, *cluster, *label, *rules, *orders, *revenue;
} row_t;

/* Adds one customer's row; where names it in messages. A repeated id is an
 * error unless allow_repeat (Redis's SCAN may return a key twice). */
static int side_row(side_t *s, const row_t *r, const char *where, int allow_repeat)
{
    if (!r->id || !*r->id) return fail("%s: empty customer_id", where);
    int created;
    cust_t *c = side_cust(s, r->id, &created);
    if (!c) return fail("out of memory");
    if (!created && !allow_repeat) return fail("%s: customer %s appears twice", where, r->id);
    if (r->lifecycle && (c->lc = lifecycle_index(r->lifecycle)) < 0)
        return fail("%s: unknown lifecycle \"%s\"", where, r->lifecycle);
    if (r->cluster) {
        if (cli_parse_i64(r->cluster, &c->cluster) < 0 || c->cluster < -1)
            return fail("%s: cluster is not an integer >= -1: \"%s\"", where, r->cluster);
        if (side_label(s, c->cluster, r->label, 0) < 0) return fail("out of memory");
    }
    c->rules = 0;
    if (r->rules && *r->rules) {
        char buf[4096];
        if (strlen(r->rules) >= sizeof(buf)) return fail("%s: rules field too long", where);
        strcpy(buf, r->rules);
        for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
            int i = rule_index(s, t);
            if (i < 0) return fail("%s: more than %d rule names", where, SEG_RULES_MAX);
            c->rules |= 1ULL << i;
        }
    }
    uint64_t o = 0;
    if (r->orders && cli_parse_u64(r->orders, &o) < 0)
        return fail("%s: orders is not a whole number >= 0: \"%s\"", where, r->orders);
    c->orders = o;
    c->cents = 0;
    if (r->revenue && parse_cents(r->revenue, &c->cents) < 0)
        return fail("%s: revenue is not a number >= 0: \"%s\"", where, r->revenue);
    return 0;
}

/* ---------- snapshot CSV ---------- */

#define CSV_FIELDS_MAX 256

/* Splits one CSV record (RFC 4180; the line break already cut off) in
 * place. Returns the number of fields, or -1 when malformed. */
static int csv_split(char *s, char **field, int max)
{
    int nf = 0;
    char *p = s;
    for (;;) {
        char *start = p, *out = p;
        if (*p == '"') {
            p++;
            for (;;) {
                if (!*p) return -1; /* unterminated */
                if (*p == '"') {
                    if (p[1] != '"') break;
                    p++;
                }
                *out++ = *p++;
            }
            p++;
            if (*p && *p != ',') return -1;
        } else {
            while (*p && *p != ',') {
                if (*p == '"') return -1;
                out++, p++;
            }
        }
        char delim = *p;
        *out = 0;
        if (nf == max) return -1;
        field[nf++] = start;
        if (!delim) return nf;
        p++;
    }
}

/* Reads the next CSV record into *buf (a quoted field may span lines).
 * Returns 1, 0 at end of file, -1 on a read error. */
static int csv_record(FILE *f, char **buf, size_t *cap, long *lineno)
{
    size_t len = 0, quotes = 0;
    char *line = NULL;
    size_t lcap = 0;
    ssize_t n;
    int got = 0;
    while ((n = getline(&line, &lcap, f)) > 0) {
        (*lineno)++;
        got = 1;
        if (len + (size_t)n + 1 > *cap) {
            size_t c = (len + (size_t)n + 1) * 2;
            char *b = realloc(*buf, c);
            if (!b) {
                free(line);
                return -1;
            }
            *buf = b;
            *cap = c;
        }
        memcpy(*buf + len, line, (size_t)n);
        len += (size_t)n;
        for (ssize_t i = 0; i < n; i++) quotes += line[i] == '"';
        if (quotes % 2 == 0) break; /* not inside a quoted field */
    }
    free(line);
    if (ferror(f)) return -1;
    if (!got) return 0;
    while (len && ((*buf)[len - 1] == '\n' || (*buf)[len - 1] == '\r')) len--;
    (*buf)[len] = 0;
    return 1;
}

static int read_snapshot(side_t *s, FILE *f)
{
    char *buf = NULL, *field[CSV_FIELDS_MAX];
    size_t cap = 0;
    long lineno = 0;
    int rc = -1, r;
    s->kind = "snapshot";
    if ((r = csv_record(f, &buf, &cap, &lineno)) <= 0) {
        rc = fail("%s: %s", s->input, r < 0 ? strerror(errno) : "empty");
        goto done;
    }
    char *hdr = buf[0] == '\xef' && buf[1] == '\xbb' && buf[2] == '\xbf' ? buf + 3 : buf;
    int nh = csv_split(hdr, field, CSV_FIELDS_MAX);
    if (nh < 0) {
        rc = fail("%s:1: malformed CSV header", s->input);
        goto done;
    }
    static const char *const cols[] = {"customer_id", "lifecycle", "cluster", "cluster_label",
                                       "rules",       "orders",    "revenue"};
    enum { NCOLS = sizeof(cols) / sizeof(cols[0]) };
    int at[NCOLS];
    for (int j = 0; j < NCOLS; j++) {
        at[j] = -1;
        for (int i = 0; i < nh; i++)
            if (strcmp(field[i], cols[j]) == 0) at[j] = i;
    }
    if (at[0] < 0) {
        rc = fail("%s: neither a snapshot CSV (no customer_id column in its first line) nor "
                  "change events (JSON lines)",
                  s->input);
        goto done;
    }
    s->has_lc = at[1] >= 0;
    s->has_cluster = at[2] >= 0;
    s->has_rules = at[4] >= 0;
    s->totals = at[5] >= 0 && at[6] >= 0;
    char where[4200];
    while ((r = csv_record(f, &buf, &cap, &lineno)) > 0) {
        if (!buf[0]) continue;
        long first = lineno; /* the record's last line; good enough for one-line records */
        int nf = csv_split(buf, field, CSV_FIELDS_MAX);
        snprintf(where, sizeof(where), "%s:%ld", s->input, first);
        if (nf < 0) {
            rc = fail("%s: malformed CSV (quotes)", where);
            goto done;
        }
        if (nf != nh) {
            rc = fail("%s: %d fields where the header has %d", where, nf, nh);
            goto done;
        }
        const char *v[NCOLS];
        for (int j = 0; j < NCOLS; j++) v[j] = at[j] >= 0 ? field[at[j]] : NULL;
        row_t row = {v[0], v[1], v[2], v[3], v[4], v[5], v[6]};
        if (side_row(s, &row, where, 0) < 0) goto done;
    }
    if (r < 0) {
        rc = fail("%s: %s", s->input, strerror(errno));
        goto done;
    }
    rc = 0;
done:
    free(buf);
    return rc;
}

/* ---------- change events (JSON lines) ---------- */

#define JSON_TOKENS 256

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static int hex4(const char *p, unsigned *v)
{
    *v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval(p[i]);
        if (h < 0) return -1;
        *v = *v << 4 | (unsigned)h;
    }
    return 0;
}

/* The JSON string body s[0..len) unescaped into out (room for len + 1:
 * escapes never grow). Returns the length, or -1 when malformed. */
static int json_unescape(const char *s, int len, char *out)
{
    char *o = out;
    for (int i = 0; i < len;) {
        if (s[i] != '\\') {
            *o++ = s[i++];
            continue;
        }
        if (++i >= len) return -1;
        char e = s[i++];
        unsigned cp;
        switch (e) {
        case '"':
        case '\\':
        case '/':
            *o++ = e;
            continue;
        case 'b':
            *o++ = '\b';
            continue;
        case 'f':
            *o++ = '\f';
            continue;
        case 'n':
            *o++ = '\n';
            continue;
        case 'r':
            *o++ = '\r';
            continue;
        case 't':
            *o++ = '\t';
            continue;
        case 'u':
            if (i + 4 > len || hex4(s + i, &cp) < 0) return -1;
            i += 4;
            if (cp >= 0xd800 && cp <= 0xdbff) {
                unsigned lo;
                if (i + 6 > len || s[i] != '\\' || s[i + 1] != 'u' || hex4(s + i + 2, &lo) < 0 ||
                    lo < 0xdc00 || lo > 0xdfff)
                    return -1;
                i += 6;
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            } else if (cp >= 0xdc00 && cp <= 0xdfff) {
                return -1;
            }
            if (cp < 0x80) {
                *o++ = (char)cp;
            } else if (cp < 0x800) {
                *o++ = (char)(0xc0 | cp >> 6);
                *o++ = (char)(0x80 | (cp & 0x3f));
            } else if (cp < 0x10000) {
                *o++ = (char)(0xe0 | cp >> 12);
                *o++ = (char)(0x80 | (cp >> 6 & 0x3f));
                *o++ = (char)(0x80 | (cp & 0x3f));
            } else {
                *o++ = (char)(0xf0 | cp >> 18);
                *o++ = (char)(0x80 | (cp >> 12 & 0x3f));
                *o++ = (char)(0x80 | (cp >> 6 & 0x3f));
                *o++ = (char)(0x80 | (cp & 0x3f));
            }
            continue;
        default:
            return -1;
        }
    }
    *o = 0;
    return (int)(o - out);
}

/* A string value (unescaped into a malloc'd copy), or a primitive's text
 * when prim_ok (ids may be integers). NULL for null or when malformed
 * (*bad set). */
static char *tok_str(const char *js, const jsmntok_t *t, int prim_ok, int *bad)
{
    int len = t->end - t->start;
    const char *p = js + t->start;
    if (t->type == JSMN_PRIMITIVE && len == 4 && memcmp(p, "null", 4) == 0) return NULL;
    if (t->type != JSMN_STRING && !(prim_ok && t->type == JSMN_PRIMITIVE)) {
        *bad = 1;
        return NULL;
    }
    char *out = malloc((size_t)len + 1);
    if (!out) {
        *bad = 1;
        return NULL;
    }
    if (t->type == JSMN_PRIMITIVE) {
        memcpy(out, p, (size_t)len);
        out[len] = 0;
        return out;
    }
    /* an embedded NUL (\u0000) cannot be part of a name */
    int n = json_unescape(p, len, out);
    if (n < 0 || (int)strlen(out) != n) {
        free(out);
        *bad = 1;
        return NULL;
    }
    return out;
}

/* An integer primitive, or -1 for null; *bad when neither. */
static int64_t tok_id(const char *js, const jsmntok_t *t, int *bad)
{
    char buf[32];
    int len = t->end - t->start;
    if (t->type != JSMN_PRIMITIVE || len <= 0 || len >= (int)sizeof(buf)) {
        *bad = 1;
        return -1;
    }
    memcpy(buf, js + t->start, (size_t)len);
    buf[len] = 0;
    if (strcmp(buf, "null") == 0) return -1;
    int64_t v;
    if (cli_parse_i64(buf, &v) < 0 || v < 0) {
        *bad = 1;
        return -1;
    }
    return v;
}

/* Applies one change event: the customer's value of its dimension becomes
 * `to`. Dimensions other than lifecycle, cluster and rule:NAME are kept
 * out (a newer version's, perhaps). */
static int apply_change(side_t *s, const char *js, const jsmntok_t *t, int n, const char *where)
{
    char *id = NULL, *dim = NULL, *to = NULL, *from = NULL;
    int64_t to_id = -1, from_id = -1;
    int bad = 0, has_to = 0, rc = -1;
    if (n < 1 || t[0].type != JSMN_OBJECT) return fail("%s: not a JSON object", where);
    for (int i = 1; i + 1 < n; i++) {
        if (t[i].parent != 0) continue;
        if (t[i].type != JSMN_STRING) return fail("%s: malformed JSON", where);
        const char *k = js + t[i].start;
        int klen = t[i].end - t[i].start;
        const jsmntok_t *v = &t[i + 1];
#define KEY(name) (klen == (int)sizeof(name) - 1 && memcmp(k, name, sizeof(name) - 1) == 0)
        if (KEY("customer_id") && !id)
            id = tok_str(js, v, 1, &bad);
        else if (KEY("dimension") && !dim)
            dim = tok_str(js, v, 0, &bad);
        else if (KEY("to") && !has_to)
            to = tok_str(js, v, 0, &bad), has_to = 1;
        else if (KEY("from") && !from)
            from = tok_str(js, v, 0, &bad);
        else if (KEY("to_id"))
            to_id = tok_id(js, v, &bad);
        else if (KEY("from_id"))
            from_id = tok_id(js, v, &bad);
#undef KEY
        if (bad) {
            fail("%s: a field of the wrong type or a malformed string", where);
            goto done;
        }
    }
    if (!id || !*id || !dim || !has_to) {
        fail("%s: not a change event (customer_id, dimension and to are required)", where);
        goto done;
    }
    int created;
    cust_t *c = side_cust(s, id, &created);
    if (!c) {
        fail("out of memory");
        goto done;
    }
    if (strcmp(dim, "lifecycle") == 0) {
        if ((c->lc = lifecycle_index(to ? to : "")) < 0) {
            fail("%s: unknown lifecycle \"%s\"", where, to);
            goto done;
        }
        s->has_lc = 1;
    } else if (strcmp(dim, "cluster") == 0) {
        c->cluster = to_id;
        if (side_label(s, to_id, to, 0) < 0 || side_label(s, from_id, from, 1) < 0) {
            fail("out of memory");
            goto done;
        }
    } else if (strncmp(dim, "rule:", 5) == 0 && dim[5]) {
        int r = rule_index(s, dim + 5);
        if (r < 0) {
            fail("%s: more than %d rule names", where, SEG_RULES_MAX);
            goto done;
        }
        if (to && strcmp(to, "in") == 0)
            c->rules |= 1ULL << r;
        else
            c->rules &= ~(1ULL << r);
    }
    rc = 0;
done:
    free(id), free(dim), free(to), free(from);
    return rc;
}

static int read_changes(side_t *s, FILE *f)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    long lineno = 0;
    int rc = -1;
    jsmntok_t *tok = malloc(JSON_TOKENS * sizeof(*tok));
    s->kind = "changes";
    s->totals = 0;
    s->has_cluster = s->has_rules = 1;
    if (!tok) return fail("out of memory");
    char where[4200];
    while ((n = getline(&line, &cap, f)) > 0) {
        lineno++;
        while (n && (line[n - 1] == '\n' || line[n - 1] == '\r')) n--;
        size_t b = 0;
        while ((ssize_t)b < n && isspace((unsigned char)line[b])) b++;
        if ((ssize_t)b == n) continue;
        snprintf(where, sizeof(where), "%s:%ld", s->input, lineno);
        jsmn_parser p;
        jsmn_init(&p);
        int nt = jsmn_parse(&p, line, (size_t)n, tok, JSON_TOKENS);
        if (nt < 0) {
            fail("%s: %s", where,
                 nt == JSMN_ERROR_NOMEM ? "too many JSON tokens for a change event"
                                        : "malformed JSON");
            goto done;
        }
        if (apply_change(s, line, tok, nt, where) < 0) goto done;
    }
    if (ferror(f)) {
        fail("%s: %s", s->input, strerror(errno));
        goto done;
    }
    rc = 0;
done:
    free(tok);
    free(line);
    return rc;
}

/* ---------- a Redis namespace ---------- */

/* PREFIX with glob characters escaped, then "c:*". */
static char *scan_pattern(const char *prefix)
{
    char *pat = malloc(2 * strlen(prefix) + 4), *o = pat;
    if (!pat) return NULL;
    for (const char *p = prefix; *p; p++) {
        if (strchr("*?[]\\", *p)) *o++ = '\\';
        *o++ = *p;
    }
    strcpy(o, "c:*");
    return pat;
}

static int read_redis(side_t *s, const char *prefix, const char *url)
{
    cfg_redis_url_t u;
    char why[256];
    int rc = -1;
    s->kind = "redis";
    s->totals = s->has_lc = s->has_cluster = s->has_rules = 1;
    if (!url || !*url)
        return fail("%s: no Redis: give --redis URL (or redis.url, SEGSTREAM_REDIS_URL)", s->input);
    if (cfg_parse_redis_url(url, &u, why, sizeof(why)) < 0)
        return fail("redis URL %s: %s", url, why);
    st_redis_addr_t a = {u.host, u.port, u.user, u.pass, u.db};
    char shown[700];
    snprintf(shown, sizeof(shown), "redis://%s%s%s:%d/%d", u.user, u.user[0] ? "@" : "", u.host,
             u.port, u.db);
    redisContext *c = st_redis_connect_sync(&a, 5000, why, sizeof(why));
    if (!c) return fail("%s: cannot connect to Redis at %s: %s", s->input, shown, why);
    char *pat = scan_pattern(prefix);
    redisReply *sr = NULL;
    size_t plen = strlen(prefix) + 2;
    char cursor[32] = "0";
    if (!pat) {
        fail("out of memory");
        goto done;
    }
    do {
        sr = redisCommand(c, "SCAN %s MATCH %s COUNT 1000", cursor, pat);
        if (!sr || sr->type != REDIS_REPLY_ARRAY || sr->elements != 2 ||
            sr->element[0]->type != REDIS_REPLY_STRING ||
            sr->element[1]->type != REDIS_REPLY_ARRAY) {
            fail("%s: SCAN on %s: %s", s->input, shown,
                 !sr                             ? c->errstr
                 : sr->type == REDIS_REPLY_ERROR ? sr->str
                                                 : "unexpected reply");
            goto done;
        }
        snprintf(cursor, sizeof(cursor), "%s", sr->element[0]->str);
        const redisReply *keys = sr->element[1];
        for (size_t i = 0; i < keys->elements; i++)
            redisAppendCommand(c, "HMGET %b lifecycle cluster cluster_label rules orders revenue",
                               keys->element[i]->str, (size_t)keys->element[i]->len);
        for (size_t i = 0; i < keys->elements; i++) {
            redisReply *h = NULL;
            const char *key = keys->element[i]->str;
            if (redisGetReply(c, (void **)&h) != REDIS_OK || !h) {
                fail("%s: HMGET on %s: %s", s->input, shown, c->errstr);
                goto done;
            }
            if (h->type != REDIS_REPLY_ARRAY || h->elements != 6) {
                fail("%s: %s is not a customer hash (%s)", s->input, key,
                     h->type == REDIS_REPLY_ERROR ? h->str : "unexpected reply");
                freeReplyObject(h);
                goto done;
            }
            const char *v[6];
            for (int j = 0; j < 6; j++)
                v[j] = h->element[j]->type == REDIS_REPLY_STRING ? h->element[j]->str : NULL;
            char where[4200];
            snprintf(where, sizeof(where), "%s: %s", s->input, key);
            /* a key that vanished between SCAN and HMGET: all nil */
            int any = 0;
            for (int j = 0; j < 6; j++) any |= v[j] != NULL;
            row_t row = {key + plen, v[0] ? v[0] : "",  v[1] ? v[1] : "-1", v[2],
                         v[3],       v[4] ? v[4] : "0", v[5] ? v[5] : "0"};
            int r = any && strlen(key) > plen ? side_row(s, &row, where, 1) : 0;
            freeReplyObject(h);
            if (r < 0) goto done;
        }
        freeReplyObject(sr);
        sr = NULL;
    } while (strcmp(cursor, "0") != 0);
    rc = 0;
    /* an empty namespace compares, but is more often a mistyped prefix
     * (redis:seg for redis:seg:) than an intended one */
    if (s->n == 0)
        fprintf(stderr, "segstream compare: warning: %s: no customers (no keys %sc:* at %s)%s\n",
                s->input, prefix, shown,
                *prefix && prefix[strlen(prefix) - 1] != ':' ? "; prefixes end in ':'" : "");
done:
    if (sr) freeReplyObject(sr);
    free(pat);
    redisFree(c);
    return rc;
}

/* ---------- reading an input ---------- */

static int read_input(side_t *s, const char *input, const char *redis_url)
{
    s->input = input;
    if (strncmp(input, "redis:", 6) == 0) return read_redis(s, input + 6, redis_url);
    FILE *f = fopen(input, "rb");
    if (!f) return fail("%s: %s", input, strerror(errno));
    int c;
    while ((c = getc(f)) != EOF && (c == ' ' || c == '\t' || c == '\n' || c == '\r')) {
    }
    int rc;
    if (c == EOF && ferror(f)) {
        rc = fail("%s: %s", input, strerror(errno));
    } else if (c == EOF) { /* a replay that changed nothing: no customer lacks a dimension */
        s->kind = "changes";
        s->has_cluster = s->has_rules = s->has_lc = 1;
        rc = 0;
    } else if ((c >= 0x80 && c <= 0x8f) || c == 0xde || c == 0xdf) {
        rc = fail("%s: msgpack change events: compare reads JSON lines (replay --format json)",
                  input);
    } else {
        rewind(f);
        rc = c == '{' ? read_changes(s, f) : read_snapshot(s, f);
    }
    fclose(f);
    return rc;
}

/* ---------- segments ---------- */

typedef enum { DIM_CLUSTER, DIM_LIFECYCLE, DIM_RULE, DIM_RULES } dim_kind_t;

typedef struct dim {
    dim_kind_t kind;
    const char *rule; /* DIM_RULE */
} dim_t;

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The segment of a customer: its key, name and sort order. */
static int segment_of(const side_t *s, const dim_t *d, const cust_t *c, char *key, char *name,
                      size_t len, int *rank, int64_t *num)
{
    *num = 0;
    *rank = 0;
    switch (d->kind) {
    case DIM_CLUSTER: {
        if (c->cluster < 0) {
            *rank = 1;
            snprintf(key, len, "(unassigned)");
            snprintf(name, len, "(unassigned)");
            break;
        }
        const char *l = label_of(s, c->cluster);
        *num = c->cluster;
        snprintf(key, len, "%" PRId64, c->cluster);
        snprintf(name, len, "%" PRId64 "%s%s", c->cluster, l ? " " : "", l ? l : "");
        break;
    }
    case DIM_LIFECYCLE:
        *num = c->lc ? c->lc : SEG_LC__COUNT;
        snprintf(key, len, "%s", c->lc ? seg_lifecycle_names[c->lc] : "(none)");
        snprintf(name, len, "%s", key);
        break;
    case DIM_RULE: {
        int in = 0;
        for (int i = 0; i < s->nrule; i++)
            if (strcmp(s->rule[i], d->rule) == 0) in = (int)(c->rules >> i & 1);
        *rank = !in;
        snprintf(key, len, "%s", in ? "in" : "out");
        snprintf(name, len, "%s", key);
        break;
    }
    case DIM_RULES: {
        const char *names[SEG_RULES_MAX];
        int k = 0;
        for (int i = 0; i < s->nrule; i++)
            if (c->rules >> i & 1) names[k++] = s->rule[i];
        qsort(names, (size_t)k, sizeof(names[0]), cmp_str);
        size_t at = 0;
        key[0] = 0;
        for (int i = 0; i < k && at < len; i++)
            at += (size_t)snprintf(key + at, len - at, "%s%s", i ? "," : "", names[i]);
        if (at >= len) return -1;
        if (!k) {
            *rank = 1;
            snprintf(key, len, "(none)");
        }
        snprintf(name, len, "%s", key);
        break;
    }
    }
    return 0;
}

static int cmp_segment(const void *pa, const void *pb)
{
    const segment_t *a = pa, *b = pb;
    if (a->rank != b->rank) return a->rank < b->rank ? -1 : 1;
    if (a->num != b->num) return a->num < b->num ? -1 : 1;
    return strcmp(a->name, b->name);
}

static void kpi_add(kpi_t *k, const cust_t *c)
{
    k->customers++;
    k->buyers += c->orders > 0;
    k->retained += c->lc == SEG_LC_NEW || c->lc == SEG_LC_ACTIVE || c->lc == SEG_LC_REACTIVATED;
    k->churned += c->lc == SEG_LC_LAPSED;
    k->orders += c->orders;
    k->cents += c->cents;
}

/* Puts every customer of the side in its segment, and sorts the segments. */
static int side_segments(side_t *s, const dim_t *d)
{
    map_t keys = {0};
    int rc = -1;
    size_t cap = 0;
    char key[8192], name[8192];
    if ((d->kind == DIM_CLUSTER && !s->has_cluster) || (d->kind == DIM_LIFECYCLE && !s->has_lc) ||
        (d->kind >= DIM_RULE && !s->has_rules))
        return fail("%s: no %s %s", s->input,
                    d->kind == DIM_CLUSTER     ? "cluster"
                    : d->kind == DIM_LIFECYCLE ? "lifecycle"
                                               : "rules",
                    strcmp(s->kind, "changes") == 0 ? "change in it" : "column");
    for (size_t i = 0; i < s->n; i++) {
        cust_t *c = &s->c[i];
        int rank;
        int64_t num;
        if (segment_of(s, d, c, key, name, sizeof(key), &rank, &num) < 0) {
            fail("%s: customer %s: segment name too long", s->input, c->id);
            goto done;
        }
        size_t j;
        if (!map_get(&keys, key, &j)) {
            if (s->nseg == cap) {
                cap = cap ? 2 * cap : 16;
                segment_t *g = realloc(s->seg, cap * sizeof(*g));
                if (!g) goto oom;
                s->seg = g;
            }
            j = s->nseg;
            segment_t *g = &s->seg[j];
            memset(g, 0, sizeof(*g));
            g->rank = rank;
            g->first = j;
            g->num = num;
            g->cluster_id = d->kind == DIM_CLUSTER ? c->cluster : -1;
            g->label = d->kind == DIM_CLUSTER ? label_of(s, c->cluster) : NULL;
            if (!(g->key = strdup(key)) || !(g->name = strdup(name))) {
                free(g->key);
                goto oom;
            }
            s->nseg++;
            if (map_put(&keys, g->key, j) < 0) goto oom;
        }
        c->seg = j;
        kpi_add(&s->seg[j].k, c);
        kpi_add(&s->total, c);
    }
    /* sort, then point the customers at the new places */
    size_t *order = malloc((s->nseg + 1) * sizeof(*order));
    segment_t *sorted = malloc((s->nseg + 1) * sizeof(*sorted));
    if (!order || !sorted) {
        free(order), free(sorted);
        goto oom;
    }
    if (s->nseg) { /* none (no customer): s->seg is NULL, which memcpy must not get */
        memcpy(sorted, s->seg, s->nseg * sizeof(*sorted));
        qsort(sorted, s->nseg, sizeof(*sorted), cmp_segment);
        for (size_t j = 0; j < s->nseg; j++) order[sorted[j].first] = j;
        memcpy(s->seg, sorted, s->nseg * sizeof(*sorted));
    }
    for (size_t i = 0; i < s->n; i++) s->c[i].seg = order[s->c[i].seg];
    free(order);
    free(sorted);
    rc = 0;
    goto done;
oom:
    fail("out of memory");
done:
    map_free(&keys);
    return rc;
}

/* ---------- the comparison ---------- */

typedef struct cmp {
    dim_t dim;
    side_t a, b;
    uint64_t *cell; /* (a.nseg + 1) x (b.nseg + 1); the last row and column: (absent) */
    uint64_t both, only_a, only_b, moved;
    uint64_t relabeled; /* cluster: in both, and the labels differ */
    size_t *moved_ix;   /* A's customers who moved, by id */
} cmp_t;

#define CELL(m, i, j) ((m)->cell[(i) * ((m)->b.nseg + 1) + (j)])

static const cmp_t *sort_ctx;
static int cmp_moved(const void *pa, const void *pb)
{
    const cust_t *a = &sort_ctx->a.c[*(const size_t *)pa];
    const cust_t *b = &sort_ctx->a.c[*(const size_t *)pb];
    return strcmp(a->id, b->id);
}

static int compare(cmp_t *m)
{
    size_t rows = m->a.nseg + 1, cols = m->b.nseg + 1;
    m->cell = calloc(rows * cols, sizeof(*m->cell));
    m->moved_ix = malloc((m->a.n + 1) * sizeof(*m->moved_ix));
    if (!m->cell || !m->moved_ix) return fail("out of memory");
    for (size_t i = 0; i < m->a.n; i++) {
        const cust_t *ca = &m->a.c[i];
        size_t jb;
        if (!map_get(&m->b.ids, ca->id, &jb)) {
            m->only_a++;
            CELL(m, ca->seg, m->b.nseg)++;
            continue;
        }
        const cust_t *cb = &m->b.c[jb];
        m->both++;
        CELL(m, ca->seg, cb->seg)++;
        if (strcmp(m->a.seg[ca->seg].key, m->b.seg[cb->seg].key) != 0) m->moved_ix[m->moved++] = i;
        const char *la = m->a.seg[ca->seg].label, *lb = m->b.seg[cb->seg].label;
        m->relabeled += strcmp(la ? la : "", lb ? lb : "") != 0;
    }
    for (size_t j = 0; j < m->b.n; j++) {
        size_t ia;
        if (map_get(&m->a.ids, m->b.c[j].id, &ia)) continue;
        m->only_b++;
        CELL(m, m->a.nseg, m->b.c[j].seg)++;
    }
    sort_ctx = m;
    qsort(m->moved_ix, m->moved, sizeof(*m->moved_ix), cmp_moved);
    return 0;
}

static const char *b_segment_of(const cmp_t *m, const cust_t *ca)
{
    size_t jb;
    return map_get(&m->b.ids, ca->id, &jb) ? m->b.seg[m->b.c[jb].seg].name : "(absent)";
}

/* ---------- output: shared ---------- */

static void put_cents(FILE *f, int64_t cents)
{
    fprintf(f, "%" PRId64 ".%02d", cents / 100, (int)(cents % 100));
}

/* ratio as a plain decimal with 6 places, for CSV and JSON */
/* num/den; nothing (CSV's n/a) when den is 0, as for a side without customers */
static void put_ratio(FILE *f, uint64_t num, uint64_t den)
{
    if (den) fprintf(f, "%.6f", (double)num / (double)den);
}

/* Display width of UTF-8 text (code points; labels hold "·"). */
static int width(const char *s)
{
    int w = 0;
    for (; *s; s++) w += ((unsigned char)*s & 0xc0) != 0x80;
    return w;
}

static void pad(FILE *f, const char *s, int w, int right)
{
    int n = width(s);
    if (right)
        for (int i = n; i < w; i++) fputc(' ', f);
    fputs(s, f);
    if (!right)
        for (int i = n; i < w; i++) fputc(' ', f);
}

/* ---------- output: table ---------- */

static void pct(char *buf, size_t len, uint64_t num, uint64_t den)
{
    if (!den)
        snprintf(buf, len, "n/a");
    else
        snprintf(buf, len, "%.1f%%", 100.0 * (double)num / (double)den);
}

static void table_kpi_row(FILE *f, const side_t *s, const char *name, int wname, const kpi_t *k)
{
    char b[9][64];
    snprintf(b[0], 64, "%" PRIu64, k->customers);
    pct(b[1], 64, k->customers, s->total.customers);
    if (s->totals) {
        snprintf(b[2], 64, "%" PRId64 ".%02d", k->cents / 100, (int)(k->cents % 100));
        snprintf(b[3], 64, "%" PRIu64, k->orders);
        if (k->orders)
            snprintf(b[4], 64, "%.2f", (double)k->cents / 100.0 / (double)k->orders);
        else
            snprintf(b[4], 64, "n/a");
        pct(b[5], 64, k->buyers, k->customers);
    } else {
        for (int i = 2; i <= 5; i++) snprintf(b[i], 64, "n/a");
    }
    if (s->has_lc) {
        pct(b[6], 64, k->retained, k->customers);
        pct(b[7], 64, k->churned, k->customers);
    } else {
        snprintf(b[6], 64, "n/a");
        snprintf(b[7], 64, "n/a");
    }
    static const int w[] = {9, 7, 12, 8, 9, 10, 9, 7};
    fputs("  ", f);
    pad(f, name, wname, 0);
    for (int i = 0; i < 8; i++) {
        fputs("  ", f);
        pad(f, b[i], w[i], 1);
    }
    fputc('\n', f);
}

static void table_side(FILE *f, const char *which, const side_t *s)
{
    int wname = width("segment");
    for (size_t i = 0; i < s->nseg; i++)
        if (width(s->seg[i].name) > wname) wname = width(s->seg[i].name);
    fprintf(f, "\nsegments in %s (%s)\n", which, s->input);
    static const char *const h[] = {"customers", "share",      "revenue",   "orders",
                                    "aov",       "conversion", "retention", "churn"};
    static const int w[] = {9, 7, 12, 8, 9, 10, 9, 7};
    fputs("  ", f);
    pad(f, "segment", wname, 0);
    for (int i = 0; i < 8; i++) {
        fputs("  ", f);
        pad(f, h[i], w[i], 1);
    }
    fputc('\n', f);
    for (size_t i = 0; i < s->nseg; i++) table_kpi_row(f, s, s->seg[i].name, wname, &s->seg[i].k);
    table_kpi_row(f, s, "all", wname, &s->total);
}

static void table_matrix(FILE *f, const cmp_t *m)
{
    size_t rows = m->a.nseg + 1, cols = m->b.nseg + 1;
    int wname = width("A \\ B");
    for (size_t i = 0; i < m->a.nseg; i++)
        if (width(m->a.seg[i].name) > wname) wname = width(m->a.seg[i].name);
    if (wname < width("(absent)")) wname = width("(absent)");
    int *wc = malloc((cols + 1) * sizeof(*wc));
    uint64_t *coltot = calloc(cols, sizeof(*coltot));
    if (!wc || !coltot) {
        free(wc), free(coltot);
        return;
    }
    uint64_t grand = 0;
    for (size_t i = 0; i < rows; i++)
        for (size_t j = 0; j < cols; j++) coltot[j] += CELL(m, i, j), grand += CELL(m, i, j);
    char num[32];
    for (size_t j = 0; j < cols; j++) {
        const char *k = j < m->b.nseg ? m->b.seg[j].key : "(absent)";
        snprintf(num, sizeof(num), "%" PRIu64, coltot[j]);
        wc[j] = width(k) > (int)strlen(num) ? width(k) : (int)strlen(num);
        if (wc[j] < 5) wc[j] = 5;
    }
    snprintf(num, sizeof(num), "%" PRIu64, grand);
    wc[cols] = (int)strlen(num) > 5 ? (int)strlen(num) : 5;

    fprintf(f, "\ntransitions: customers by segment in A (rows) and in B (columns%s)\n",
            m->dim.kind == DIM_CLUSTER ? ", by cluster id" : "");
    fputs("  ", f);
    pad(f, "A \\ B", wname, 0);
    for (size_t j = 0; j < cols; j++) {
        fputs("  ", f);
        pad(f, j < m->b.nseg ? m->b.seg[j].key : "(absent)", wc[j], 1);
    }
    fputs("  ", f);
    pad(f, "total", wc[cols], 1);
    fputs("  mostly to\n", f);
    for (size_t i = 0; i < rows; i++) {
        fputs("  ", f);
        pad(f, i < m->a.nseg ? m->a.seg[i].name : "(absent)", wname, 0);
        uint64_t tot = 0;
        for (size_t j = 0; j < cols; j++) {
            fputs("  ", f);
            if (i == rows - 1 && j == cols - 1) {
                pad(f, "-", wc[j], 1);
                continue;
            }
            snprintf(num, sizeof(num), "%" PRIu64, CELL(m, i, j));
            tot += CELL(m, i, j);
            pad(f, num, wc[j], 1);
        }
        fputs("  ", f);
        snprintf(num, sizeof(num), "%" PRIu64, tot);
        pad(f, num, wc[cols], 1);
        /* where most of the row went: how to read two models side by side */
        size_t best = 0;
        for (size_t j = 1; j < m->b.nseg; j++)
            if (CELL(m, i, j) > CELL(m, i, best)) best = j;
        if (i < m->a.nseg && m->b.nseg && CELL(m, i, best)) {
            char p[32];
            pct(p, sizeof(p), CELL(m, i, best), tot);
            fprintf(f, "  %s (%s)", m->b.seg[best].name, p);
        }
        fputc('\n', f);
    }
    fputs("  ", f);
    pad(f, "total", wname, 0);
    for (size_t j = 0; j <= cols; j++) {
        fputs("  ", f);
        snprintf(num, sizeof(num), "%" PRIu64, j < cols ? coltot[j] : grand);
        pad(f, num, wc[j], 1);
    }
    fputc('\n', f);
    free(wc);
    free(coltot);
}

static void table_moved(FILE *f, const cmp_t *m, uint64_t listed)
{
    if (!m->moved) return;
    if (!listed) {
        fprintf(f, "\nmoved customers: %" PRIu64 " (--moved N or --moved all lists them)\n",
                m->moved);
        return;
    }
    fprintf(f, "\nmoved customers (");
    if (listed < m->moved)
        fprintf(f, "the first %" PRIu64 " of %" PRIu64 " by id; --moved all lists every one)\n",
                listed, m->moved);
    else
        fprintf(f, "all %" PRIu64 ", by id)\n", m->moved);
    int wid = width("customer_id"), wa = width("in A");
    for (uint64_t i = 0; i < listed; i++) {
        const cust_t *c = &m->a.c[m->moved_ix[i]];
        if (width(c->id) > wid) wid = width(c->id);
        if (width(m->a.seg[c->seg].name) > wa) wa = width(m->a.seg[c->seg].name);
    }
    fputs("  ", f);
    pad(f, "customer_id", wid, 0);
    fputs("  ", f);
    pad(f, "in A", wa, 0);
    fputs("      in B\n", f);
    for (uint64_t i = 0; i < listed; i++) {
        const cust_t *c = &m->a.c[m->moved_ix[i]];
        fputs("  ", f);
        pad(f, c->id, wid, 0);
        fputs("  ", f);
        pad(f, m->a.seg[c->seg].name, wa, 0);
        fprintf(f, "  ->  %s\n", b_segment_of(m, c));
    }
}

static const char *dim_name(const dim_t *d, char *buf, size_t len)
{
    static const char *const n[] = {"cluster", "lifecycle", "rule", "rules"};
    if (d->kind == DIM_RULE)
        snprintf(buf, len, "rule:%s", d->rule);
    else
        snprintf(buf, len, "%s", n[d->kind]);
    return buf;
}

static void write_table(FILE *f, const cmp_t *m, uint64_t listed)
{
    char dn[300];
    fprintf(f, "segstream compare: %s\n", dim_name(&m->dim, dn, sizeof(dn)));
    fprintf(f, "  A  %s  (%s, %zu customers)\n", m->a.input, m->a.kind, m->a.n);
    fprintf(f, "  B  %s  (%s, %zu customers)\n", m->b.input, m->b.kind, m->b.n);
    fprintf(f, "\ncustomers: %" PRIu64 " in both, %" PRIu64 " only in A, %" PRIu64 " only in B\n",
            m->both, m->only_a, m->only_b);
    char p[32];
    pct(p, sizeof(p), m->moved, m->both);
    fprintf(f, "moved: %" PRIu64 " of the %" PRIu64 " in both (%s) are in another segment in B\n",
            m->moved, m->both, p);
    if (m->dim.kind == DIM_CLUSTER) {
        pct(p, sizeof(p), m->relabeled, m->both);
        fprintf(f,
                "relabeled: %" PRIu64 " (%s) are in a cluster with another label (ids of two "
                "models need not\n  mean the same: see \"mostly to\" in the transitions)\n",
                m->relabeled, p);
    }
    if (!m->a.totals || !m->b.totals)
        fprintf(f, "(change events hold no orders or revenue: those KPIs are n/a)\n");
    table_side(f, "A", &m->a);
    table_side(f, "B", &m->b);
    table_matrix(f, m);
    table_moved(f, m, listed);
}

/* ---------- output: CSV ---------- */

static void csv_kpis(FILE *f, const side_t *s, const kpi_t *k)
{
    /* customers,share,revenue,orders,aov,buyers,conversion,retained,retention,churned,churn */
    fprintf(f, "%" PRIu64 ",", k->customers);
    put_ratio(f, k->customers, s->total.customers ? s->total.customers : 1);
    fputc(',', f);
    if (s->totals) {
        put_cents(f, k->cents);
        fprintf(f, ",%" PRIu64 ",", k->orders);
        if (k->orders) fprintf(f, "%.2f", (double)k->cents / 100.0 / (double)k->orders);
        fprintf(f, ",%" PRIu64 ",", k->buyers);
        put_ratio(f, k->buyers, k->customers);
    } else {
        fputs(",,,,", f);
    }
    fputc(',', f);
    if (s->has_lc) {
        fprintf(f, "%" PRIu64 ",", k->retained);
        put_ratio(f, k->retained, k->customers);
        fprintf(f, ",%" PRIu64 ",", k->churned);
        put_ratio(f, k->churned, k->customers);
    } else {
        fputs(",,,", f);
    }
}

static void csv_row_start(FILE *f, const char *section, const char *side, const char *seg,
                          const char *seg_b, const char *id)
{
    fprintf(f, "%s,%s,", section, side);
    cli_csv_field(f, seg);
    fputc(',', f);
    cli_csv_field(f, seg_b);
    fputc(',', f);
    cli_csv_field(f, id);
    fputc(',', f);
}

static void write_csv(FILE *f, const cmp_t *m, uint64_t listed)
{
    static const char empty_kpis[] = ",,,,,,,,,,";
    fputs("section,side,segment,segment_b,customer_id,customers,share,revenue,orders,aov,"
          "buyers,conversion,retained,retention,churned,churn\n",
          f);
    const struct {
        const char *name;
        uint64_t v;
    } sum[] = {{"in_both", m->both}, {"only_a", m->only_a},          {"only_b", m->only_b},
               {"moved", m->moved},  {"stayed", m->both - m->moved}, {"relabeled", m->relabeled}};
    size_t nsum = sizeof(sum) / sizeof(sum[0]) - (m->dim.kind != DIM_CLUSTER);
    for (size_t i = 0; i < nsum; i++) {
        csv_row_start(f, "summary", "", sum[i].name, "", "");
        fprintf(f, "%" PRIu64 "%s\n", sum[i].v, empty_kpis);
    }
    const side_t *sides[2] = {&m->a, &m->b};
    for (int w = 0; w < 2; w++) {
        const side_t *s = sides[w];
        for (size_t i = 0; i < s->nseg; i++) {
            csv_row_start(f, "segment", w ? "B" : "A", s->seg[i].name, "", "");
            csv_kpis(f, s, &s->seg[i].k);
            fputc('\n', f);
        }
        csv_row_start(f, "total", w ? "B" : "A", "(all)", "", "");
        csv_kpis(f, s, &s->total);
        fputc('\n', f);
    }
    for (size_t i = 0; i <= m->a.nseg; i++)
        for (size_t j = 0; j <= m->b.nseg; j++) {
            if (i == m->a.nseg && j == m->b.nseg) continue;
            csv_row_start(f, "transition", "", i < m->a.nseg ? m->a.seg[i].name : "(absent)",
                          j < m->b.nseg ? m->b.seg[j].name : "(absent)", "");
            fprintf(f, "%" PRIu64 "%s\n", CELL(m, i, j), empty_kpis);
        }
    for (uint64_t i = 0; i < listed; i++) {
        const cust_t *c = &m->a.c[m->moved_ix[i]];
        csv_row_start(f, "moved", "", m->a.seg[c->seg].name, b_segment_of(m, c), c->id);
        fprintf(f, "%s\n", empty_kpis);
    }
}

/* ---------- output: JSON ---------- */

static void json_s(FILE *f, const char *s)
{
    cli_json_str(f, s, strlen(s));
}

static void json_ratio(FILE *f, const char *name, uint64_t num, uint64_t den)
{
    fprintf(f, ",\"%s\":", name);
    if (den)
        put_ratio(f, num, den);
    else
        fputs("null", f);
}

static void json_kpis(FILE *f, const side_t *s, const kpi_t *k)
{
    fprintf(f, "\"customers\":%" PRIu64, k->customers);
    json_ratio(f, "share", k->customers, s->total.customers);
    if (s->totals) {
        fputs(",\"revenue\":", f);
        put_cents(f, k->cents);
        fprintf(f, ",\"orders\":%" PRIu64 ",\"aov\":", k->orders);
        if (k->orders)
            fprintf(f, "%.2f", (double)k->cents / 100.0 / (double)k->orders);
        else
            fputs("null", f);
        fprintf(f, ",\"buyers\":%" PRIu64, k->buyers);
        json_ratio(f, "conversion", k->buyers, k->customers);
    } else {
        fputs(",\"revenue\":null,\"orders\":null,\"aov\":null,\"buyers\":null,"
              "\"conversion\":null",
              f);
    }
    if (s->has_lc) {
        fprintf(f, ",\"retained\":%" PRIu64, k->retained);
        json_ratio(f, "retention", k->retained, k->customers);
        fprintf(f, ",\"churned\":%" PRIu64, k->churned);
        json_ratio(f, "churn", k->churned, k->customers);
    } else {
        fputs(",\"retained\":null,\"retention\":null,\"churned\":null,\"churn\":null", f);
    }
}

static void json_side(FILE *f, const side_t *s)
{
    fputs("{\"input\":", f);
    json_s(f, s->input);
    fprintf(f, ",\"kind\":\"%s\",\"customers\":%zu,\"totals\":%s,\"lifecycle\":%s,\"segments\":[",
            s->kind, s->n, s->totals ? "true" : "false", s->has_lc ? "true" : "false");
    for (size_t i = 0; i < s->nseg; i++) {
        const segment_t *g = &s->seg[i];
        fputs(i ? ",\n  {\"segment\":" : "\n  {\"segment\":", f);
        json_s(f, g->name);
        fputs(",\"key\":", f);
        json_s(f, g->key);
        if (g->cluster_id >= 0) {
            fprintf(f, ",\"cluster_id\":%" PRId64 ",\"label\":", g->cluster_id);
            if (g->label)
                json_s(f, g->label);
            else
                fputs("null", f);
        }
        fputc(',', f);
        json_kpis(f, s, &g->k);
        fputc('}', f);
    }
    fputs("],\n \"total\":{", f);
    json_kpis(f, s, &s->total);
    fputs("}}", f);
}

static void write_json(FILE *f, const cmp_t *m, uint64_t listed)
{
    char dn[300];
    fputs("{\"dimension\":", f);
    json_s(f, dim_name(&m->dim, dn, sizeof(dn)));
    fputs(",\n\"a\":", f);
    json_side(f, &m->a);
    fputs(",\n\"b\":", f);
    json_side(f, &m->b);
    fprintf(f,
            ",\n\"summary\":{\"in_both\":%" PRIu64 ",\"only_a\":%" PRIu64 ",\"only_b\":%" PRIu64
            ",\"moved\":%" PRIu64 ",\"stayed\":%" PRIu64,
            m->both, m->only_a, m->only_b, m->moved, m->both - m->moved);
    if (m->dim.kind == DIM_CLUSTER) fprintf(f, ",\"relabeled\":%" PRIu64, m->relabeled);
    fputs("},\n", f);
    fputs("\"transitions\":{\"rows\":[", f);
    for (size_t i = 0; i <= m->a.nseg; i++) {
        if (i) fputc(',', f);
        json_s(f, i < m->a.nseg ? m->a.seg[i].name : "(absent)");
    }
    fputs("],\"columns\":[", f);
    for (size_t j = 0; j <= m->b.nseg; j++) {
        if (j) fputc(',', f);
        json_s(f, j < m->b.nseg ? m->b.seg[j].name : "(absent)");
    }
    fputs("],\"counts\":[", f);
    for (size_t i = 0; i <= m->a.nseg; i++) {
        fputs(i ? ",\n  [" : "\n  [", f);
        for (size_t j = 0; j <= m->b.nseg; j++)
            fprintf(f, "%s%" PRIu64, j ? "," : "", CELL(m, i, j));
        fputc(']', f);
    }
    fputs("]},\n\"moved\":[", f);
    for (uint64_t i = 0; i < listed; i++) {
        const cust_t *c = &m->a.c[m->moved_ix[i]];
        fputs(i ? ",\n  {\"customer_id\":" : "\n  {\"customer_id\":", f);
        json_s(f, c->id);
        fputs(",\"a\":", f);
        json_s(f, m->a.seg[c->seg].name);
        fputs(",\"b\":", f);
        json_s(f, b_segment_of(m, c));
        fputc('}', f);
    }
    fprintf(f, "],\n\"moved_listed\":%" PRIu64 "}\n", listed);
}

/* ---------- the command ---------- */

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

int cmd_compare(int argc, char **argv)
{
    static const struct option opts[] = {{"dimension", required_argument, 0, 'd'},
                                         {"format", required_argument, 0, 'f'},
                                         {"out", required_argument, 0, 'o'},
                                         {"moved", required_argument, 0, 'm'},
                                         {"redis", required_argument, 0, 'r'},
                                         {"config", required_argument, 0, 'c'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *dimension = "cluster", *format = NULL, *out = NULL, *redis_opt = NULL;
    const char *config = NULL;
    uint64_t moved_max = 20;
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "d:f:o:m:c:h", opts, NULL)) != -1) {
        switch (opt) {
        case 'd':
            dimension = optarg;
            break;
        case 'f':
            format = optarg;
            break;
        case 'o':
            out = optarg;
            break;
        case 'm':
            if (strcmp(optarg, "all") == 0) {
                moved_max = UINT64_MAX;
            } else if (cli_parse_u64(optarg, &moved_max) < 0) {
                fprintf(stderr, "segstream compare: --moved: a number or all, not %s\n", optarg);
                return 2;
            }
            break;
        case 'r':
            redis_opt = optarg;
            break;
        case 'c':
            config = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (cli_file_arg("compare", "--out", out) < 0) return 2;
    if (argc - optind != 2) {
        fprintf(stderr, "segstream compare: expected two inputs, A and B\n");
        usage(stderr);
        return 2;
    }
    cmp_t m;
    memset(&m, 0, sizeof(m));
    if (strcmp(dimension, "cluster") == 0)
        m.dim.kind = DIM_CLUSTER;
    else if (strcmp(dimension, "lifecycle") == 0)
        m.dim.kind = DIM_LIFECYCLE;
    else if (strcmp(dimension, "rules") == 0)
        m.dim.kind = DIM_RULES;
    else if (strncmp(dimension, "rule:", 5) == 0 && dimension[5])
        m.dim.kind = DIM_RULE, m.dim.rule = dimension + 5;
    else {
        fprintf(stderr,
                "segstream compare: --dimension: cluster, lifecycle, rule:NAME or rules, not %s\n",
                dimension);
        return 2;
    }
    if (!format)
        format = out && ends_with(out, ".csv")    ? "csv"
                 : out && ends_with(out, ".json") ? "json"
                                                  : "table";
    if (strcmp(format, "table") != 0 && strcmp(format, "csv") != 0 && strcmp(format, "json") != 0) {
        fprintf(stderr, "segstream compare: --format: table, csv or json, not %s\n", format);
        return 2;
    }
    const char *in_a = argv[optind], *in_b = argv[optind + 1];
    /* the report would replace an input (read whole first, but then lost) */
    for (int i = 0; i < 2; i++)
        if (out && cli_same_file(out, i ? in_b : in_a)) {
            fprintf(stderr, "segstream compare: --out %s is the file %s names too\n", out,
                    i ? "B" : "A");
            return 2;
        }

    int rc = 2;
    char *redis_url = NULL;
    if (strncmp(in_a, "redis:", 6) == 0 || strncmp(in_b, "redis:", 6) == 0) {
        if (redis_opt) {
            redis_url = strdup(redis_opt);
        } else {
            char err[512];
            cfg_t cfg;
            if (cfg_load(&cfg, config, err, sizeof(err)) < 0) {
                fprintf(stderr, "segstream compare: config: %s\n", err);
                cfg_free(&cfg);
                return 2;
            }
            redis_url = strdup(cfg.redis_url ? cfg.redis_url : "");
            cfg_free(&cfg);
        }
        if (!redis_url) {
            fprintf(stderr, "segstream compare: out of memory\n");
            return 2;
        }
    }
    FILE *f = NULL;
    if (read_input(&m.a, in_a, redis_url) < 0 || read_input(&m.b, in_b, redis_url) < 0 ||
        side_segments(&m.a, &m.dim) < 0 || side_segments(&m.b, &m.dim) < 0 || compare(&m) < 0) {
        fprintf(stderr, "segstream compare: %s\n", errbuf);
        goto done;
    }
    if (m.dim.kind == DIM_RULE) { /* every customer "out": likely a misspelt name */
        int seen = 0;
        for (int i = 0; i < m.a.nrule; i++) seen |= strcmp(m.a.rule[i], m.dim.rule) == 0;
        for (int i = 0; i < m.b.nrule; i++) seen |= strcmp(m.b.rule[i], m.dim.rule) == 0;
        if (!seen)
            fprintf(stderr,
                    "segstream compare: warning: no customer in %s or %s holds rule '%s' "
                    "(misspelt?)\n",
                    in_a, in_b, m.dim.rule);
    }
    rc = 1;
    f = out && strcmp(out, "-") != 0 ? fopen(out, "wb") : stdout;
    if (!f) {
        fprintf(stderr, "segstream compare: %s: %s\n", out, strerror(errno));
        goto done;
    }
    uint64_t listed = m.moved < moved_max ? m.moved : moved_max;
    if (strcmp(format, "csv") == 0)
        write_csv(f, &m, listed);
    else if (strcmp(format, "json") == 0)
        write_json(f, &m, listed);
    else
        write_table(f, &m, listed);
    int bad = ferror(f) != 0;
    bad |= f == stdout ? fflush(f) != 0 : fclose(f) != 0;
    if (bad) {
        fprintf(stderr, "segstream compare: %s: write failed\n", out ? out : "stdout");
        goto done;
    }
    rc = 0;
done:
    side_free(&m.a);
    side_free(&m.b);
    free(m.cell);
    free(m.moved_ix);
    free(redis_url);
    return rc;
}
