/* benchmarks/parsers/jansson.c: bench_json's jansson case, in its own
 * translation unit because jansson.h and json-c's headers both declare
 * json_object and json_object_get (the libraries' symbols are versioned, so
 * linking both is fine). Benchmark-only. */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

uint64_t bench_jansson(const char *buf, size_t len);
uint64_t bench_jansson(const char *buf, size_t len)
{
    json_error_t err;
    json_t *j = json_loadb(buf, len, 0, &err);
    if (!j) abort();
    uint64_t s = strlen(json_string_value(json_object_get(j, "customer_id"))) +
                 (uint64_t)json_integer_value(json_object_get(j, "ts")) +
                 strlen(json_string_value(json_object_get(j, "type"))) +
                 (uint64_t)json_real_value(json_object_get(j, "amount"));
    json_decref(j);
    return s;
}
