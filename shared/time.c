/* Clocks and time formatting shared by master and workers. */
#include "config.h"

#include <stdio.h>
#include <time.h>

#include "sbx.h"

static uint64_t
clock_ms(clockid_t id)
{
    struct timespec ts;

    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

uint64_t
sbx_time_wall_ms(void)
{
    return clock_ms(CLOCK_REALTIME);
}

uint64_t
sbx_time_mono_ms(void)
{
    return clock_ms(CLOCK_MONOTONIC);
}

void
sbx_time_iso8601(uint64_t wall_ms, char *buf)
{
    time_t secs = (time_t)(wall_ms / 1000);
    struct tm tm;

    gmtime_r(&secs, &tm);
    char date[24];

    /* strftime bounds each field, which keeps the 24-character form provable to the compiler. */
    strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, 25, "%.19s.%03uZ", date, (unsigned)(wall_ms % 1000));
}

void
sbx_time_uptime(uint64_t secs, char *buf, size_t len)
{
    uint64_t h = secs / 3600, m = secs / 60 % 60, s = secs % 60;

    if (h > 0)
        snprintf(buf, len, "%lluh%llum%llus", (unsigned long long)h, (unsigned long long)m, (unsigned long long)s);
    else if (m > 0)
        snprintf(buf, len, "%llum%llus", (unsigned long long)m, (unsigned long long)s);
    else
        snprintf(buf, len, "%llus", (unsigned long long)s);
}
