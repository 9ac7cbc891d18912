/* segmenter/event.c: names of event types and channels, and their parsing.
 * Owns nothing else. */
#include <string.h>
#include "segmenter/event.h"

const char *const seg_evtype_names[SEG_EV__COUNT] = {
    "page_view",        "product_view",  "search",   "add_to_cart",
    "remove_from_cart", "checkout",      "purchase", "email_open",
    "email_click",      "session_start", "other",
};

const char *const seg_channel_names[SEG_CH__COUNT] = {"", "web", "app", "email", "store"};

seg_evtype_t seg_evtype_parse(const char *s, size_t len)
{
    for (int i = 0; i < SEG_EV_OTHER; i++)
        if (strlen(seg_evtype_names[i]) == len && memcmp(seg_evtype_names[i], s, len) == 0)
            return (seg_evtype_t)i;
    return SEG_EV_OTHER;
}

int seg_channel_parse(const char *s, size_t len)
{
    for (int i = 1; i < SEG_CH__COUNT; i++)
        if (strlen(seg_channel_names[i]) == len && memcmp(seg_channel_names[i], s, len) == 0)
            return i;
    return -1;
}

void seg_event_reset(seg_event_t *ev)
{
    ev->customer_id[0] = 0;
    ev->id_len = 0;
    ev->type = SEG_EV_OTHER;
    ev->channel = SEG_CH_NONE;
    ev->discount = 0;
    ev->ts = 0;
    ev->amount = 0;
    ev->has_amount = 0;
    ev->category_len = 0;
    ev->category[0] = 0;
    ev->event_id_len = 0;
    ev->event_id[0] = 0;
    ev->n_traits = 0;
}
