/* state/store_mem.c: the in-memory customer store (see store_mem.h). Owns
 * every customer it creates; never talks to the network. */
#include <stdlib.h>
#include <string.h>
#include "state/store_mem.h"

#define SLAB_BITS 12
#define SLAB_SIZE (1u << SLAB_BITS)

struct st_mem {
    seg_customer_t **slabs;
    size_t n_slabs, cap_slabs;
    uint64_t n;
    uint64_t *tab; /* handle + 1; 0 = empty */
    uint64_t tab_cap;
};

static uint64_t hash_id(const char *s, size_t len)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < len; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    return h ^ (h >> 29);
}

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
    for (size_t i = 0; i < m->n_slabs; i++) free(m->slabs[i]);
    free(m->slabs);
    free(m->tab);
    free(m);
}

seg_customer_t *st_mem_by_handle(st_mem_t *m, uint64_t handle)
{
    if (handle >= m->n) return NULL;
    return &m->slabs[handle >> SLAB_BITS][handle & (SLAB_SIZE - 1)];
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
        uint64_t i = hash_id(c->id, c->id_len) & (nc - 1);
        while (nt[i]) i = (i + 1) & (nc - 1);
        nt[i] = h + 1;
    }
    free(m->tab);
    m->tab = nt;
    m->tab_cap = nc;
    return 0;
}

seg_customer_t *st_mem_get(st_mem_t *m, const char *id, size_t len, int create, int *created)
{
    if (created) *created = 0;
    uint64_t mask = m->tab_cap - 1;
    uint64_t i = hash_id(id, len) & mask;
    for (; m->tab[i]; i = (i + 1) & mask) {
        seg_customer_t *c = st_mem_by_handle(m, m->tab[i] - 1);
        if (c->id_len == len && memcmp(c->id, id, len) == 0) return c;
    }
    if (!create) return NULL;
    if ((m->n + 1) * 10 > m->tab_cap * 7) {
        if (grow_table(m) < 0) return NULL;
        mask = m->tab_cap - 1;
        for (i = hash_id(id, len) & mask; m->tab[i]; i = (i + 1) & mask) {
        }
    }
    if ((m->n >> SLAB_BITS) >= m->n_slabs) {
        if (m->n_slabs == m->cap_slabs) {
            size_t nc = m->cap_slabs ? m->cap_slabs * 2 : 16;
            seg_customer_t **ns = realloc(m->slabs, nc * sizeof(*ns));
            if (!ns) return NULL;
            m->slabs = ns;
            m->cap_slabs = nc;
        }
        m->slabs[m->n_slabs] = malloc(SLAB_SIZE * sizeof(seg_customer_t));
        if (!m->slabs[m->n_slabs]) return NULL;
        m->n_slabs++;
    }
    uint64_t h = m->n++;
    seg_customer_t *c = st_mem_by_handle(m, h);
    seg_customer_init(c, id, len, h);
    m->tab[i] = h + 1;
    if (created) *created = 1;
    return c;
}
