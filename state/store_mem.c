/* state/store_mem.c: the in-memory customer store (see store_mem.h). Owns
 * every customer it creates; never talks to the network. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include "segmenter/internal.h" /* seg__same, seg__hash_fast */
#include "state/store_mem.h"

/* Every event touches a customer at random among millions: each one starts
 * on a cache line (fewer lines per customer), and slabs are whole 2 MiB
 * pages where the kernel gives them (transparent huge pages on madvise):
 * one TLB entry per 3 200 customers instead of per 6, and a page fault per
 * 2 MiB when customers are made. */
typedef union slot {
    seg_customer_t c;
    char lines[(sizeof(seg_customer_t) + 63) / 64 * 64];
} slot_t;

#define SLAB_BITS  14
#define SLAB_SIZE  (1u << SLAB_BITS)
#define SLAB_BYTES ((size_t)SLAB_SIZE * sizeof(slot_t)) /* a multiple of 1 MiB */
#define HUGE_PAGE  ((size_t)2 << 20)

/* SLAB_BYTES of zeroed memory starting on a 2 MiB boundary, or NULL. */
static slot_t *slab_alloc(void)
{
    size_t len = SLAB_BYTES + HUGE_PAGE;
    char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return NULL;
    char *a = (char *)(((uintptr_t)p + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1));
    if (a > p) munmap(p, (size_t)(a - p));
    if (p + len > a + SLAB_BYTES) munmap(a + SLAB_BYTES, (size_t)(p + len - (a + SLAB_BYTES)));
#ifdef MADV_HUGEPAGE
    madvise(a, SLAB_BYTES, MADV_HUGEPAGE); /* a hint: without THP, small pages */
#endif
    return (slot_t *)a;
}

struct st_mem {
    slot_t **slabs;
    size_t n_slabs, cap_slabs;
    uint64_t n;
    uint64_t *tab; /* tag | (handle + 1), see TAG_BITS; 0 = empty */
    uint64_t tab_cap;
};

/* Every event looks its customer up: the core's lookup hash, eight bytes
 * per multiply. Only table positions depend on it (handles come in creation
 * order). */
uint64_t st_mem_hash(const char *s, size_t len)
{
    return seg__hash_fast(s, len);
}

/* A table entry carries, above the handle, the top bits of the id's hash:
 * a probe that meets another customer's entry almost never has to read that
 * customer (a cache miss) to tell. Handles stay below 2^40. */
#define TAG_BITS   24
#define SLOT_MASK  ((UINT64_C(1) << (64 - TAG_BITS)) - 1)
#define TAG(h)     ((h) & ~SLOT_MASK)
#define HANDLE_MAX (SLOT_MASK - 1)

st_mem_t *st_mem_new(void)
{
    st_mem_t *m = calloc(1, sizeof(*m));
    if (!m) return NULL;
    m->tab_cap = 1024;
    m->tab = calloc(m->tab_cap, sizeof(uint64_t));
    if (!m->tab) {
        free(m);
        return NULL;
    }
    return m;
}

void st_mem_free(st_mem_t *m)
{
    if (!m) return;
    for (uint64_t h = 0; h < m->n; h++) seg_customer_clear(st_mem_by_handle(m, h));
    for (size_t i = 0; i < m->n_slabs; i++) munmap(m->slabs[i], SLAB_BYTES);
    free(m->slabs);
    free(m->tab);
    free(m);
}

static slot_t *slot_at(const st_mem_t *m, uint64_t handle)
{
    return &m->slabs[handle >> SLAB_BITS][handle & (SLAB_SIZE - 1)];
}

seg_customer_t *st_mem_by_handle(st_mem_t *m, uint64_t handle)
{
    return handle < m->n ? &slot_at(m, handle)->c : NULL;
}

uint64_t st_mem_count(const st_mem_t *m)
{
    return m->n;
}

static int grow_table(st_mem_t *m)
{
    uint64_t nc = m->tab_cap * 2;
    uint64_t *nt = calloc(nc, sizeof(uint64_t));
    if (!nt) return -1;
    for (uint64_t h = 0; h < m->n; h++) {
        seg_customer_t *c = st_mem_by_handle(m, h);
        uint64_t hash = st_mem_hash(c->id, c->id_len), i = hash & (nc - 1);
        while (nt[i]) i = (i + 1) & (nc - 1);
        nt[i] = TAG(hash) | (h + 1);
    }
    free(m->tab);
    m->tab = nt;
    m->tab_cap = nc;
    return 0;
}

void st_mem_prefetch_slot(const st_mem_t *m, uint64_t hash)
{
    __builtin_prefetch(&m->tab[hash & (m->tab_cap - 1)]);
}

void st_mem_prefetch_handle(const st_mem_t *m, uint64_t h)
{
    if (h >= m->n) return;
    const char *c = slot_at(m, h)->lines;
    /* every line of it, unrolled */
#pragma GCC unroll 16
    for (size_t off = 0; off < sizeof(slot_t); off += 64) __builtin_prefetch(c + off);
}

void st_mem_prefetch_customer(const st_mem_t *m, uint64_t hash)
{
    uint64_t mask = m->tab_cap - 1, e;
    for (uint64_t i = hash & mask; (e = m->tab[i]) != 0; i = (i + 1) & mask) {
        if (TAG(e) != TAG(hash)) continue;
        st_mem_prefetch_handle(m, (e & SLOT_MASK) - 1);
        return; /* the first tag that matches: almost always the customer */
    }
}

seg_customer_t *st_mem_get(st_mem_t *m, const char *id, size_t len, int create, int *created)
{
    return st_mem_get_hashed(m, id, len, st_mem_hash(id, len), create, created);
}

seg_customer_t *st_mem_get_hashed(st_mem_t *m, const char *id, size_t len, uint64_t hash,
                                  int create, int *created)
{
    if (created) *created = 0;
    uint64_t mask = m->tab_cap - 1;
    uint64_t i = hash & mask, e;
    for (; (e = m->tab[i]) != 0; i = (i + 1) & mask) {
        if (TAG(e) != TAG(hash)) continue;
        seg_customer_t *c = st_mem_by_handle(m, (e & SLOT_MASK) - 1);
        if (c->id_len == len && seg__same(c->id, id, len)) return c;
    }
    if (!create || m->n > HANDLE_MAX) return NULL;
    if ((m->n + 1) * 10 > m->tab_cap * 7) {
        if (grow_table(m) < 0) return NULL;
        mask = m->tab_cap - 1;
        for (i = hash & mask; m->tab[i]; i = (i + 1) & mask) {
        }
    }
    if ((m->n >> SLAB_BITS) >= m->n_slabs) {
        if (m->n_slabs == m->cap_slabs) {
            size_t nc = m->cap_slabs ? m->cap_slabs * 2 : 16;
            slot_t **ns = realloc(m->slabs, nc * sizeof(*ns));
            if (!ns) return NULL;
            m->slabs = ns;
            m->cap_slabs = nc;
        }
        m->slabs[m->n_slabs] = slab_alloc();
        if (!m->slabs[m->n_slabs]) return NULL;
        m->n_slabs++;
    }
    uint64_t h = m->n++;
    seg_customer_t *c = st_mem_by_handle(m, h);
    seg_customer_init(c, id, len, h);
    m->tab[i] = TAG(hash) | (h + 1);
    if (created) *created = 1;
    return c;
}
