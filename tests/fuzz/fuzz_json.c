/* tests/fuzz/fuzz_json.c: fuzzes the JSON decoder (codec_json.c) and the
 * shared mapping. Any input is either rejected with a reason or gives an
 * event that passes the invariants and round-trips exactly through both
 * encoders, and the fast path for compact JSON gives jsmn's tokens or
 * declines. Also feeds the bytes to the RFC 3339 parser. Built with
 * -DSEG_LIBFUZZER for libFuzzer; otherwise fuzz_common.h's main replays the
 * corpus directory argv[1]. */
#include "fuzz_common.h"
#include "stream/codec_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    seg_event_t ev;
    const char *why = NULL;
    if (strm_decode_json((const char *)data, size, &ev, &why) == 0)
        fuzz_roundtrip(&ev);
    else
        FUZZ_CHECK(why && why[0]);
    why = NULL;
    if (strm_decode(data, size, 0, &ev, &why) == 0)
        fuzz_roundtrip(&ev);
    else
        FUZZ_CHECK(why && why[0]);
    /* the fast path for compact JSON gives jsmn's tokens or declines */
    FUZZ_CHECK(strm__json_fast_agrees((const char *)data, size));
    int64_t ms;
    if (strm_parse_rfc3339((const char *)data, size, &ms) == 0)
        FUZZ_CHECK(ms >= -62167219200000LL && ms <= 253402387199999LL);
    return 0;
}
