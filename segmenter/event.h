/* segmenter/event.h: the decoded input event, as every codec produces it and
 * the core consumes it. Plain data, no pointers into foreign buffers: a codec
 * copies what it keeps, so an event outlives the Kafka message it came from. */
#ifndef SEG_EVENT_H
#define SEG_EVENT_H

#include <stdint.h>
#include <stddef.h>

#define SEG_ID_MAX       128 /* customer_id bytes (CONTRACT §1) */
#define SEG_EVID_MAX     64  /* producer event_id bytes kept */
#define SEG_CATEGORY_MAX 48  /* category bytes kept (longer ones are truncated) */
#define SEG_TRAITS_MAX   16  /* traits kept per event */
/* Traits kept per customer: the most recently set, by event time (a
 * producer that puts ids or dates in trait keys would otherwise grow a
 * customer's state, and each merge, without end). */
#define SEG_CUSTOMER_TRAITS_MAX 64
#define SEG_TRAIT_KEY           48
#define SEG_TRAIT_VAL           48
/* The largest amount an event may carry: no order is worth 10^15 in any
 * currency, and beyond it totals can overflow to infinity (a producer's
 * 1e308 made a customer's revenue inf and took a cluster's centroid with
 * it). */
#define SEG_AMOUNT_MAX 1e15

typedef enum {
    SEG_EV_PAGE_VIEW = 0,
    SEG_EV_PRODUCT_VIEW,
    SEG_EV_SEARCH,
    SEG_EV_ADD_TO_CART,
    SEG_EV_REMOVE_FROM_CART,
    SEG_EV_CHECKOUT,
    SEG_EV_PURCHASE,
    SEG_EV_EMAIL_OPEN,
    SEG_EV_EMAIL_CLICK,
    SEG_EV_SESSION_START,
    SEG_EV_OTHER, /* any other type string: generic activity */
    SEG_EV__COUNT
} seg_evtype_t;

typedef enum {
    SEG_CH_NONE = 0,
    SEG_CH_WEB,
    SEG_CH_APP,
    SEG_CH_EMAIL,
    SEG_CH_STORE,
    SEG_CH__COUNT
} seg_channel_t;

typedef struct {
    char key[SEG_TRAIT_KEY];
    char val[SEG_TRAIT_VAL];
} seg_trait_t;

typedef struct seg_event {
    char customer_id[SEG_ID_MAX + 1];
    uint8_t id_len;
    uint8_t type;     /* seg_evtype_t */
    uint8_t channel;  /* seg_channel_t */
    uint8_t discount; /* 1 when a discount or voucher was used */
    int64_t ts;       /* event time, ms since epoch */
    double amount;    /* order value; 0 unless given */
    uint8_t has_amount;
    uint8_t category_len; /* 0: no category */
    uint8_t event_id_len; /* 0: no producer event_id */
    uint8_t n_traits;
    char category[SEG_CATEGORY_MAX + 1];
    char event_id[SEG_EVID_MAX + 1];
    seg_trait_t traits[SEG_TRAITS_MAX];
} seg_event_t;

/* Canonical names, indexed by seg_evtype_t / seg_channel_t. */
extern const char *const seg_evtype_names[SEG_EV__COUNT];
extern const char *const seg_channel_names[SEG_CH__COUNT];

/* Maps a type string to its enum; unknown strings are SEG_EV_OTHER. */
seg_evtype_t seg_evtype_parse(const char *s, size_t len);
/* Maps a channel string; returns -1 for an unknown channel. */
int seg_channel_parse(const char *s, size_t len);

/* Resets the fields a codec fills, cheaply (does not clear the big buffers). */
void seg_event_reset(seg_event_t *ev);

#endif
