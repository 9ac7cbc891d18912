/* stream/codec_json.c: JSON payload -> seg_event_t. Tokenizes with jsmn into
 * a fixed token array on the stack, then checks the whole text against the
 * JSON grammar itself (jsmn alone accepts missing commas, trailing commas and
 * any primitive), and hands the top-level object to the shared field mapping
 * (codec_map.c) through the visitor in codec_int.h. Compact JSON without
 * escapes (what producers send) first goes through a fast path that gives
 * the same tokens in one pass, a word at a time; it declines, never rejects. Owns string unescaping
 * (\uXXXX with surrogate pairs -> UTF-8). Allocates only for an event of
 * more tokens than the stack array holds (a GA4 export row with its
 * parameters and items), up to JSON_TOKENS_MAX; never keeps a pointer into
 * the payload after returning.
 *
 * What is checked: structure, separators, every primitive (true/false/null
 * and the number grammar), a single top-level object with only whitespace
 * around it. Strings are checked (escapes, raw control bytes, UTF-8) only
 * when a field is kept; other strings are skipped as jsmn framed them. */
#define JSMN_STATIC
#define JSMN_STRICT
#define JSMN_PARENT_LINKS
#include <jsmn.h>

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include "stream/codec_int.h"

#define JSON_TOKENS     256   /* on the stack; more are allocated */
#define JSON_TOKENS_MAX 65535 /* more: "too_complex" (next[] holds uint16_t) */
#define JSON_KEY_MAX    64    /* escaped keys decoded up to this length */
#define JSON_DEPTH_MAX  512   /* deeper: "too_complex" (jsmn closes in O(depth)) */

typedef struct json_src {
    strm__src_t base;
    const char *js;
    const jsmntok_t *tok;
    const uint16_t *next; /* container token -> index of the token after it */
} json_src_t;

static inline int is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* The general case of gap_ok below. */
static int gap_slow(const char *js, int from, int to, char sep)
{
    if (to < from) return 0;
    int seen = 0;
    for (int k = from; k < to; k++) {
        char c = js[k];
        if (is_ws(c)) continue;
        if (c != sep || !sep || seen) return 0;
        seen = 1;
    }
    return seen || !sep;
}

/* Bytes [from, to) are whitespace around exactly one `sep` (none if 0).
 * Compact JSON has gaps of 0 or 1 byte: decided inline. */
static inline int gap_ok(const char *js, int from, int to, char sep)
{
    if (to == from) return !sep;
    if (to == from + 1) return sep ? js[from] == sep : is_ws(js[from]);
    return gap_slow(js, from, to, sep);
}

static int number_ok(const char *s, int n)
{
    int k = 0;
    if (k < n && s[k] == '-') k++;
    if (k >= n) return 0;
    if (s[k] == '0') {
        k++;
    } else if (s[k] >= '1' && s[k] <= '9') {
        while (k < n && s[k] >= '0' && s[k] <= '9') k++;
    } else {
        return 0;
    }
    if (k < n && s[k] == '.') {
        k++;
        int d = k;
        while (k < n && s[k] >= '0' && s[k] <= '9') k++;
        if (k == d) return 0;
    }
    if (k < n && (s[k] == 'e' || s[k] == 'E')) {
        k++;
        if (k < n && (s[k] == '+' || s[k] == '-')) k++;
        int d = k;
        while (k < n && s[k] >= '0' && s[k] <= '9') k++;
        if (k == d) return 0;
    }
    return k == n;
}

static int primitive_ok(const char *s, int n)
{
    switch (s[0]) {
    case 't':
        return n == 4 && memcmp(s, "true", 4) == 0;
    case 'f':
        return n == 5 && memcmp(s, "false", 5) == 0;
    case 'n':
        return n == 4 && memcmp(s, "null", 4) == 0;
    default:
        return number_ok(s, n);
    }
}

/* Checks the token stream against the JSON grammar (the text between
 * consecutive tokens must be exactly the right separator) and records, for
 * every container, the index of the token after its subtree. The container
 * being walked lives in locals; enclosing ones on a small stack. */
/* An open container while validating (json_validate). */
struct frame {
    int tok, left, obj;
};

/* st: room for ntok frames (nesting never goes deeper than the tokens). */
static int json_validate(const char *js, int len, const jsmntok_t *tok, int ntok, uint16_t *next,
                         struct frame *st)
{
    int sp = 0, i = 1, pos, cur = 0, left, obj = 1, first = 1;

    if (ntok < 1 || tok[0].type != JSMN_OBJECT || tok[0].end < 0) return -1;
    if (!gap_ok(js, 0, tok[0].start, 0)) return -1;
    left = tok[0].size;
    pos = tok[0].start + 1;
    for (;;) {
        if (left == 0) { /* close the current container */
            int end = tok[cur].end;
            if (end < 1 || !gap_ok(js, pos, end - 1, 0)) return -1;
            pos = end;
            next[cur] = (uint16_t)i;
            if (sp == 0) break;
            sp--;
            cur = st[sp].tok;
            left = st[sp].left - 1;
            obj = st[sp].obj;
            first = 0;
            continue;
        }
        if (i >= ntok) return -1;
        const jsmntok_t *t = &tok[i];
        char sep;
        if (obj) { /* a key, then its value */
            if (t->type != JSMN_STRING || t->size != 1) return -1;
            if (!gap_ok(js, pos, t->start - 1, first ? 0 : ',')) return -1;
            pos = t->end + 1;
            if (++i >= ntok) return -1;
            t++;
            sep = ':';
        } else {
            sep = first ? 0 : ',';
        }
        first = 0;
        switch (t->type) {
        case JSMN_STRING:
            if (t->size != 0 || !gap_ok(js, pos, t->start - 1, sep)) return -1;
            pos = t->end + 1;
            left--;
            break;
        case JSMN_PRIMITIVE:
            if (t->size != 0 || t->start < 0 || !gap_ok(js, pos, t->start, sep) ||
                !primitive_ok(js + t->start, t->end - t->start))
                return -1;
            pos = t->end;
            left--;
            break;
        case JSMN_OBJECT:
        case JSMN_ARRAY:
            if (t->end < 0 || t->start < 0 || !gap_ok(js, pos, t->start, sep)) return -1;
            st[sp++] = (struct frame){cur, left, obj};
            cur = i;
            left = t->size;
            obj = t->type == JSMN_OBJECT;
            first = 1;
            pos = t->start + 1;
            break;
        default:
            return -1;
        }
        i++;
    }
    if (i != ntok) return -1; /* a second top-level value */
    return gap_ok(js, pos, len, 0) ? 0 : -1;
}

/* ---------- the fast path: compact JSON ---------- */

/* Bytes of the 8 at s equal to a, b or c, as the high bit of each byte;
 * the lowest flag is exact (a borrow only sets flags above a match). */
static inline uint64_t word_match3(const char *s, char a, char b, char c)
{
    const uint64_t ones = 0x0101010101010101ULL, high = 0x8080808080808080ULL;
    uint64_t w, x, y, z;
    memcpy(&w, s, 8);
    x = w ^ (ones * (unsigned char)a);
    y = w ^ (ones * (unsigned char)b);
    z = w ^ (ones * (unsigned char)c);
    return (((x - ones) & ~x) | ((y - ones) & ~y) | ((z - ones) & ~z)) & high;
}

/* First k' >= k with js[k'] one of a, b, c, or len: a word at a time. */
static inline int find3(const char *js, int k, int len, char a, char b, char c)
{
    for (; k + 8 <= len; k += 8) {
        uint64_t m = word_match3(js + k, a, b, c);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        if (m) return k + (__builtin_ctzll(m) >> 3);
#else
        if (m) break;
#endif
    }
    while (k < len && js[k] != a && js[k] != b && js[k] != c) k++;
    return k;
}

static inline jsmntok_t *fast_tok(jsmntok_t *tok, int *n, jsmntype_t type, int start, int parent)
{
    jsmntok_t *t = &tok[(*n)++];
    t->type = type;
    t->start = start;
    t->end = -1;
    t->size = 0;
    t->parent = parent;
    return t;
}

/* Tokenizes compact JSON (no whitespace, no backslashes, no NUL, at most
 * JSON_TOKENS tokens: what producers write) into exactly the tokens jsmn
 * gives, and next[] as json_validate fills it, checking the grammar on the
 * way; it never rejects: anything else returns -1 and takes the general
 * path (jsmn, then json_validate), which also names the reason. Strings are
 * found a word at a time, where jsmn looks at every byte. Returns the
 * number of tokens. */
static int json_fast(const char *js, int len, jsmntok_t *tok, uint16_t *next)
{
    int n = 0, pos = 1, sp = 0;
    int st[JSON_TOKENS]; /* open containers */
    int cur, super, obj; /* innermost container, the token a value attaches to */
    if (len < 2 || js[0] != '{') return -1;
    fast_tok(tok, &n, JSMN_OBJECT, 0, -1);
    cur = super = 0;
    obj = 1;
    if (js[pos] == '}') goto close;
    for (;;) {
        if (obj) { /* a key, then ':' */
            if (pos >= len || js[pos] != '"' || n == JSON_TOKENS) return -1;
            int k = find3(js, pos + 1, len, '"', '\\', 0);
            if (k >= len || js[k] != '"') return -1;
            tok[cur].size++;
            jsmntok_t *t = fast_tok(tok, &n, JSMN_STRING, pos + 1, cur);
            t->end = k;
            super = n - 1;
            pos = k + 1;
            if (pos >= len || js[pos] != ':') return -1;
            pos++;
        }
        /* a value, attached to super (the key, or the array) */
        if (pos >= len || n == JSON_TOKENS) return -1;
        char c = js[pos];
        if (c == '"') {
            int k = find3(js, pos + 1, len, '"', '\\', 0);
            if (k >= len || js[k] != '"') return -1;
            tok[super].size++;
            fast_tok(tok, &n, JSMN_STRING, pos + 1, super)->end = k;
            pos = k + 1;
        } else if (c == '{' || c == '[') {
            tok[super].size++;
            st[sp++] = cur;
            cur = n;
            fast_tok(tok, &n, c == '{' ? JSMN_OBJECT : JSMN_ARRAY, pos, super);
            obj = c == '{';
            super = cur;
            pos++;
            if (pos < len && js[pos] == (obj ? '}' : ']')) goto close;
            continue;
        } else {
            int k = find3(js, pos, len, ',', '}', ']');
            if (k >= len || !primitive_ok(js + pos, k - pos)) return -1;
            tok[super].size++;
            fast_tok(tok, &n, JSMN_PRIMITIVE, pos, super)->end = k;
            pos = k;
        }
        /* after a value: ',' and the next one, or the container closes */
        if (pos >= len) return -1;
        if (js[pos] == ',') {
            pos++;
            if (!obj) super = cur;
            continue;
        }
    close:
        if (js[pos] != (obj ? '}' : ']')) return -1;
        tok[cur].end = ++pos;
        next[cur] = (uint16_t)n;
        if (sp == 0) break;
        cur = st[--sp];
        obj = tok[cur].type == JSMN_OBJECT;
        super = cur;
        if (pos >= len) return -1;
        if (js[pos] == ',') {
            pos++;
            continue;
        }
        goto close;
    }
    return pos == len ? n : -1;
}

int strm__json_fast_agrees(const char *js, size_t len)
{
    jsmntok_t a[JSON_TOKENS], b[JSON_TOKENS];
    uint16_t na[JSON_TOKENS], nb[JSON_TOKENS];
    struct frame st[JSON_TOKENS];
    jsmn_parser p;
    if (len > INT_MAX / 2) return 1;
    int n = json_fast(js, (int)len, a, na);
    if (n < 0) return 1;
    jsmn_init(&p);
    if (jsmn_parse(&p, js, len, b, JSON_TOKENS) != n) return 0;
    if (json_validate(js, (int)len, b, n, nb, st) < 0) return 0;
    for (int i = 0; i < n; i++) {
        if (a[i].type != b[i].type || a[i].start != b[i].start || a[i].end != b[i].end ||
            a[i].size != b[i].size || a[i].parent != b[i].parent)
            return 0;
        if ((a[i].type == JSMN_OBJECT || a[i].type == JSMN_ARRAY) && na[i] != nb[i]) return 0;
    }
    return 1;
}

static void json_val(const json_src_t *j, int i, strm__val_t *v)
{
    const jsmntok_t *t = &j->tok[i];
    const char *s = j->js + t->start;
    v->esc = 0;
    switch (t->type) {
    case JSMN_STRING:
        v->t = STRM_V_STR;
        v->esc = 1;
        v->s = s;
        v->len = (size_t)(t->end - t->start);
        break;
    case JSMN_PRIMITIVE:
        if (s[0] == 'n') {
            v->t = STRM_V_NULL;
        } else if (s[0] == 't' || s[0] == 'f') {
            v->t = STRM_V_BOOL;
            v->num.b = s[0] == 't';
        } else {
            v->t = STRM_V_NUMTEXT;
            v->s = s;
            v->len = (size_t)(t->end - t->start);
        }
        break;
    case JSMN_OBJECT:
    case JSMN_ARRAY:
        v->t = t->type == JSMN_OBJECT ? STRM_V_MAP : STRM_V_ARR;
        v->n = (uint32_t)t->size;
        v->ref = (size_t)i;
        break;
    default:
        v->t = STRM_V_OTHER;
        break;
    }
}

static inline int json_skip(const json_src_t *j, int i)
{
    jsmntype_t ty = j->tok[i].type;
    return (ty == JSMN_OBJECT || ty == JSMN_ARRAY) ? j->next[i] : i + 1;
}

static int json_each(strm__src_t *src, const strm__val_t *map, strm__entry_fn fn, void *ud)
{
    const json_src_t *j = (const json_src_t *)src;
    int i = (int)map->ref + 1;
    char kbuf[JSON_KEY_MAX];
    for (uint32_t k = 0; k < map->n; k++) {
        const jsmntok_t *kt = &j->tok[i];
        const char *key = j->js + kt->start;
        size_t klen = (size_t)(kt->end - kt->start);
        if (strm__needs_care(key, klen) && memchr(key, '\\', klen)) {
            long r = strm__json_unescape(key, klen, kbuf, sizeof kbuf, NULL);
            if (r == -1) {
                src->reason = "bad_json";
                return -1;
            }
            if (r >= 0) {
                key = kbuf;
                klen = (size_t)r;
            }
        }
        strm__val_t v;
        json_val(j, i + 1, &v);
        if (fn(ud, key, klen, &v)) return 0;
        i = json_skip(j, i + 1);
    }
    return 0;
}

static int json_at(strm__src_t *src, const strm__val_t *arr, uint32_t idx, strm__val_t *out)
{
    const json_src_t *j = (const json_src_t *)src;
    if (arr->t != STRM_V_ARR || idx >= arr->n) return -1;
    int i = (int)arr->ref + 1;
    for (uint32_t k = 0; k < idx; k++) i = json_skip(j, i);
    json_val(j, i, out);
    return 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static long hex4(const char *s)
{
    long v = 0;
    for (int k = 0; k < 4; k++) {
        int h = hexval(s[k]);
        if (h < 0) return -1;
        v = v * 16 + h;
    }
    return v;
}

long strm__json_unescape(const char *s, size_t len, char *dst, size_t cap, size_t *wrote)
{
    size_t o = 0;
    for (size_t k = 0; k < len;) {
        unsigned char c = (unsigned char)s[k];
        if (c != '\\') {
            if (c < 0x20) return -1;
            if (o >= cap) goto full;
            dst[o++] = (char)c;
            k++;
            continue;
        }
        if (k + 1 >= len) return -1;
        char e = s[k + 1];
        k += 2;
        char out;
        switch (e) {
        case '"':
            out = '"';
            break;
        case '\\':
            out = '\\';
            break;
        case '/':
            out = '/';
            break;
        case 'b':
            out = '\b';
            break;
        case 'f':
            out = '\f';
            break;
        case 'n':
            out = '\n';
            break;
        case 'r':
            out = '\r';
            break;
        case 't':
            out = '\t';
            break;
        case 'u': {
            if (k + 4 > len) return -1;
            long cp = hex4(s + k);
            if (cp < 0) return -1;
            k += 4;
            if (cp >= 0xDC00 && cp <= 0xDFFF) return -1; /* lone low surrogate */
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                if (k + 6 > len || s[k] != '\\' || s[k + 1] != 'u') return -1;
                long lo = hex4(s + k + 2);
                if (lo < 0xDC00 || lo > 0xDFFF) return -1;
                k += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            unsigned char u[4];
            size_t n;
            if (cp < 0x80) {
                u[0] = (unsigned char)cp;
                n = 1;
            } else if (cp < 0x800) {
                u[0] = (unsigned char)(0xC0 | (cp >> 6));
                u[1] = (unsigned char)(0x80 | (cp & 0x3F));
                n = 2;
            } else if (cp < 0x10000) {
                u[0] = (unsigned char)(0xE0 | (cp >> 12));
                u[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
                u[2] = (unsigned char)(0x80 | (cp & 0x3F));
                n = 3;
            } else {
                u[0] = (unsigned char)(0xF0 | (cp >> 18));
                u[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
                u[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
                u[3] = (unsigned char)(0x80 | (cp & 0x3F));
                n = 4;
            }
            if (cap - o < n) goto full;
            memcpy(dst + o, u, n);
            o += n;
            continue;
        }
        default:
            return -1;
        }
        if (o >= cap) goto full;
        dst[o++] = out;
    }
    return (long)o;
full:
    if (wrote) *wrote = o;
    return -2;
}

/* The event the validated tokens of buf hold, through the shared mapping. */
static int map_tokens(const char *buf, const jsmntok_t *tok, const uint16_t *next, seg_event_t *ev,
                      const char **reason)
{
    json_src_t j = {{json_each, json_at, NULL}, buf, tok, next};
    strm__val_t root = {.t = STRM_V_MAP, .n = (uint32_t)tok[0].size, .ref = 0};
    return strm__map_event(&j.base, &root, ev, reason);
}

/* Nesting never deeper than max, counted outside strings. jsmn (with parent
 * links) finds the container a bracket closes by walking up from the last
 * token, so n nested containers cost O(n^2): 30 000 of them, 60 KB, took
 * 2 s to tokenize. No event nests anywhere near max. */
static int json_depth_ok(const char *js, size_t len, int max)
{
    int d = 0, in_str = 0;
    for (size_t k = 0; k < len; k++) {
        char c = js[k];
        if (in_str) {
            if (c == '\\')
                k++;
            else if (c == '"')
                in_str = 0;
        } else if (c == '"') {
            in_str = 1;
        } else if (c == '[' || c == '{') {
            if (++d > max) return 0;
        } else if (c == ']' || c == '}') {
            d--;
        }
    }
    return 1;
}

/* The slow path for an event of more than JSON_TOKENS tokens: jsmn counts
 * them first, then tokens, next[] and the validation stack are allocated
 * for exactly that many. */
static int decode_big(const char *buf, size_t len, seg_event_t *ev, const char **reason)
{
    jsmn_parser p;
    jsmn_init(&p);
    int n = jsmn_parse(&p, buf, len, NULL, 0);
    if (n < 0) {
        *reason = "bad_json";
        return -1;
    }
    if (n > JSON_TOKENS_MAX || !json_depth_ok(buf, len, JSON_DEPTH_MAX)) {
        *reason = "too_complex";
        return -1;
    }
    size_t un = (size_t)(n > 0 ? n : 1);
    jsmntok_t *tok = malloc(un * sizeof *tok);
    uint16_t *next = malloc(un * sizeof *next);
    struct frame *st = malloc(un * sizeof *st);
    int rc = -1;
    if (!tok || !next || !st) {
        *reason = "out_of_memory";
        goto out;
    }
    jsmn_init(&p);
    if (jsmn_parse(&p, buf, len, tok, (unsigned)n) != n ||
        json_validate(buf, (int)len, tok, n, next, st) < 0) {
        *reason = "bad_json";
        goto out;
    }
    rc = map_tokens(buf, tok, next, ev, reason);
out:
    free(tok);
    free(next);
    free(st);
    return rc;
}

int strm_decode_json(const char *buf, size_t len, seg_event_t *ev, const char **reason)
{
    jsmntok_t tok[JSON_TOKENS];
    uint16_t next[JSON_TOKENS];
    struct frame st[JSON_TOKENS];
    jsmn_parser p;

    seg_event_reset(ev);
    if (len == 0) {
        *reason = "empty";
        return -1;
    }
    if (len > INT_MAX / 2) {
        *reason = "oversized";
        return -1;
    }
    if (json_fast(buf, (int)len, tok, next) < 0) {
        jsmn_init(&p);
        int n = jsmn_parse(&p, buf, len, tok, JSON_TOKENS);
        if (n == JSMN_ERROR_NOMEM) return decode_big(buf, len, ev, reason);
        if (n < 0) {
            *reason = "bad_json";
            return -1;
        }
        if (json_validate(buf, (int)len, tok, n, next, st) < 0) {
            *reason = "bad_json";
            return -1;
        }
    }
    return map_tokens(buf, tok, next, ev, reason);
}
