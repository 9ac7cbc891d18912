/* state/store_mem.h: the in-memory customer store. Customers live in slabs
 * (stable pointers), found by id through an open-addressing table and by
 * handle (dense, 0..n-1, in order of first appearance). Synchronous; the
 * asynchronous store interface that also fronts Redis wraps it. */
#ifndef ST_STORE_MEM_H
#define ST_STORE_MEM_H

#include <stddef.h>
#include <stdint.h>
#include "segmenter/segmenter.h"

typedef struct st_mem st_mem_t;

st_mem_t *st_mem_new(void);
/* Frees every customer (seg_customer_clear) and the store. */
void st_mem_free(st_mem_t *m);
/* The customer with this id; with create, a fresh one is made when absent
 * (*created set to 1). NULL when absent (or out of memory). */
seg_customer_t *st_mem_get(st_mem_t *m, const char *id, size_t len, int create, int *created);
seg_customer_t *st_mem_by_handle(st_mem_t *m, uint64_t handle);
/* Look-ahead for batches: the hash st_mem_get computes for an id, the same
 * lookup given that hash, and two hints for a record still to come: the
 * table slot of its hash, then (once that line has arrived) the customer the
 * slot points to. Hints change nothing; a wrong guess costs one wasted
 * prefetch. */
uint64_t st_mem_hash(const char *id, size_t len);
seg_customer_t *st_mem_get_hashed(st_mem_t *m, const char *id, size_t len, uint64_t hash,
                                  int create, int *created);
void st_mem_prefetch_slot(const st_mem_t *m, uint64_t hash);
void st_mem_prefetch_customer(const st_mem_t *m, uint64_t hash);
/* The same hint for the customer with this handle. */
void st_mem_prefetch_handle(const st_mem_t *m, uint64_t handle);
uint64_t st_mem_count(const st_mem_t *m);

#endif
