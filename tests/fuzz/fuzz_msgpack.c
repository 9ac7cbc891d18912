/* tests/fuzz/fuzz_msgpack.c: fuzzes the msgpack decoder (codec_msgpack.c),
 * the shared mapping and the framing cursor. Any input is either rejected
 * with a reason or gives an event that passes the invariants and round-trips
 * exactly, and the fast path for plain contract events decodes it as the
 * general path does (or declines); whatever strm__mp_skip frames, msgpack-c
 * (given only counts we have checked against the bytes) must parse to the
 * same length, or reject for nesting deeper than its fixed stack. Built with
 * -DSEG_LIBFUZZER for libFuzzer; otherwise fuzz_common.h's main replays the
 * corpus directory. */
#include <msgpack.h>
#include "fuzz_common.h"
#include "stream/codec_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    seg_event_t ev;
    const char *why = NULL;
    if (strm_decode_msgpack(data, size, &ev, &why) == 0)
        fuzz_roundtrip(&ev);
    else
        FUZZ_CHECK(why && why[0]);
    why = NULL;
    if (strm_decode(data, size, 0, &ev, &why) == 0)
        fuzz_roundtrip(&ev);
    else
        FUZZ_CHECK(why && why[0]);
    /* the fast path for plain contract events decodes as the general one */
    FUZZ_CHECK(strm__msgpack_fast_agrees(data, size));

    size_t used = 0;
    int r = strm__mp_skip(data, size, &used);
    if (r == 0) {
        FUZZ_CHECK(used >= 1 && used <= size);
        msgpack_unpacked u;
        msgpack_unpacked_init(&u);
        size_t off = 0;
        msgpack_unpack_return ur = msgpack_unpack_next(&u, (const char *)data, used, &off);
        FUZZ_CHECK(ur == MSGPACK_UNPACK_SUCCESS || ur == MSGPACK_UNPACK_PARSE_ERROR ||
                   ur == MSGPACK_UNPACK_NOMEM_ERROR);
        if (ur == MSGPACK_UNPACK_SUCCESS) FUZZ_CHECK(off == used);
        msgpack_unpacked_destroy(&u);
    }
    return 0;
}
