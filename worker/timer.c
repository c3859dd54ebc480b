/* Timers of arbitrary duration over h2o's fixed-duration timeout queues. */
#include "config.h"

#include <stdlib.h>

#include "log.h"
#include "timer.h"
#include "worker.h"

#define MAX_DURATIONS 64

static struct {
    uint64_t ms;
    h2o_timeout_t *queue;
} queues[MAX_DURATIONS];
static size_t nqueues;

static void
trampoline(h2o_timeout_entry_t *entry)
{
    sbx_timer_t *timer = (sbx_timer_t *)entry;

    timer->cb(timer);
}

static h2o_timeout_t *
queue_for(uint64_t ms)
{
    size_t i;

    for (i = 0; i < nqueues; i++)
        if (queues[i].ms == ms)
            return queues[i].queue;
    if (nqueues == MAX_DURATIONS) {
        /* So many distinct durations is a bug; round up to the longest queue we have rather than fail. */
        size_t best = 0;
        for (i = 1; i < nqueues; i++)
            if (queues[i].ms >= ms && (queues[best].ms < ms || queues[i].ms < queues[best].ms))
                best = i;
        return queues[best].queue;
    }
    queues[nqueues].ms = ms;
    queues[nqueues].queue = malloc(sizeof(h2o_timeout_t));
    if (queues[nqueues].queue == NULL)
        abort(); /* a few bytes at start-up: nothing sensible to do without them */
    h2o_timeout_init(sbx_worker.loop, queues[nqueues].queue, ms);
    return queues[nqueues++].queue;
}

void
sbx_timer_start(sbx_timer_t *timer, uint64_t ms, sbx_timer_cb cb)
{
    sbx_timer_stop(timer);
    timer->cb = cb;
    timer->entry.cb = trampoline;
    h2o_timeout_link(sbx_worker.loop, queue_for(ms), &timer->entry);
}

void
sbx_timer_stop(sbx_timer_t *timer)
{
    if (h2o_timeout_is_linked(&timer->entry))
        h2o_timeout_unlink(&timer->entry);
}
