/*
 * One-shot timers of any duration on the worker's loop. h2o 2.2.5's
 * h2o_timeout_t is a queue of entries that all share one duration; this
 * keeps one queue per distinct duration, created on first use.
 */
#ifndef SBX_TIMER_H
#define SBX_TIMER_H

#include <h2o.h>

typedef struct sbx_timer_s sbx_timer_t;
typedef void (*sbx_timer_cb)(sbx_timer_t *timer);

struct sbx_timer_s {
    h2o_timeout_entry_t entry; /* first member: the trampoline casts back */
    sbx_timer_cb cb;
};

/* (Re)arms timer to call cb after ms milliseconds (0: on the next loop turn). The caller owns timer. */
void sbx_timer_start(sbx_timer_t *timer, uint64_t ms, sbx_timer_cb cb);
/* Disarms timer; safe on a timer that is not armed. Must be called before timer's memory is freed. */
void sbx_timer_stop(sbx_timer_t *timer);

#endif
