/* Session and per-IP admission tables of the shared zone. */
#include "config.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "sessions.h"

#define HOUR 3600 /* s */

size_t
sbx_sessions_size(uint32_t capacity, uint32_t replay, uint32_t *ip_capacity)
{
    /* IPs are remembered for an hour after their sessions end, so keep room for many more IPs than sessions. */
    uint32_t ips = capacity * 16 < 1024 ? 1024 : capacity * 16;

    if (ip_capacity != NULL)
        *ip_capacity = ips;
    return (size_t)capacity * sizeof(sbx_session_t) + (size_t)ips * sizeof(sbx_ipent_t) + (size_t)capacity * replay;
}

static sbx_session_t *
sessions(sbx_shm_t *shm)
{
    return (sbx_session_t *)(shm + 1);
}

static sbx_ipent_t *
ips(sbx_shm_t *shm)
{
    return (sbx_ipent_t *)(sessions(shm) + shm->capacity);
}

char *
sbx_sessions_replay(sbx_shm_t *shm, int index)
{
    return (char *)(ips(shm) + shm->ip_capacity) + (size_t)index * shm->replay_size;
}

sbx_session_t *
sbx_sessions_slot(sbx_shm_t *shm, int index)
{
    return &sessions(shm)[index];
}

static uint32_t
zone_secs(sbx_shm_t *shm, uint64_t now)
{
    return (uint32_t)((now - shm->started_wall_ms) / 1000);
}

/* Drops creation stamps older than an hour from the front of the ring. */
static void
expire_stamps(sbx_ipent_t *e, uint32_t now_s)
{
    while (e->count > 0) {
        uint32_t oldest = e->stamps[(e->head + SBX_HOURLY_MAX - e->count) % SBX_HOURLY_MAX];
        if (now_s - oldest < HOUR)
            break;
        e->count--;
    }
}

static sbx_ipent_t *
ip_entry(sbx_shm_t *shm, const char *ip, uint32_t now_s, bool create)
{
    sbx_ipent_t *t = ips(shm), *spare = NULL;
    uint32_t n = shm->ip_capacity;

    for (uint32_t i = 0; i < n; i++) {
        if (strcmp(t[i].ip, ip) == 0)
            return &t[i];
        if (!create || t[i].active > 0)
            continue;
        /* Prefer an unused entry, else the one idle longest: forgetting it loses only old history. */
        expire_stamps(&t[i], now_s);
        if (spare == NULL || t[i].ip[0] == '\0' || (spare->ip[0] != '\0' && t[i].count < spare->count))
            spare = &t[i];
    }
    if (spare != NULL) {
        memset(spare, 0, sizeof(*spare));
        snprintf(spare->ip, sizeof(spare->ip), "%s", ip);
    }
    return spare;
}

int
sbx_sessions_admit_locked(sbx_shm_t *shm, const sbx_limits_t *lim, const char *ip, uint64_t now, unsigned *retry_after)
{
    uint32_t now_s = zone_secs(shm, now), capacity = lim->capacity < shm->capacity ? lim->capacity : shm->capacity;
    unsigned per_hour = lim->per_ip_per_hour < SBX_HOURLY_MAX ? lim->per_ip_per_hour : SBX_HOURLY_MAX;
    sbx_ipent_t *e;
    int free_slot = -1;
    uint32_t used = 0;

    *retry_after = 0;
    for (uint32_t i = 0; i < shm->capacity; i++) {
        if (sessions(shm)[i].state != SBX_SESSION_FREE)
            used++;
        else if (free_slot == -1)
            free_slot = (int)i;
    }
    if ((e = ip_entry(shm, ip, now_s, true)) == NULL || used >= capacity || free_slot == -1) {
        *retry_after = 30;
        return SBX_DENY_CAPACITY;
    }
    if (e->active >= lim->max_per_ip) {
        *retry_after = 60; /* until one of its sessions ends; we cannot know when */
        return SBX_DENY_CONCURRENT;
    }
    expire_stamps(e, now_s);
    if (e->count >= per_hour) {
        uint32_t oldest = e->stamps[(e->head + SBX_HOURLY_MAX - e->count) % SBX_HOURLY_MAX];
        *retry_after = HOUR - (now_s - oldest);
        if (*retry_after == 0)
            *retry_after = 1;
        return SBX_DENY_HOURLY;
    }
    e->stamps[e->head] = now_s;
    e->head = (e->head + 1) % SBX_HOURLY_MAX;
    e->count++;
    e->active++;

    sbx_session_t *s = &sessions(shm)[free_slot];
    memset(s, 0, sizeof(*s));
    s->state = SBX_SESSION_CREATING;
    snprintf(s->ip, sizeof(s->ip), "%s", ip);
    s->created = s->last_active = s->state_since = now;
    return free_slot;
}

int
sbx_sessions_exec_admit_locked(sbx_shm_t *shm, const char *ip, unsigned per_minute, unsigned concurrency, uint64_t now,
                               unsigned *retry_after)
{
    sbx_ipent_t *e = ip_entry(shm, ip, zone_secs(shm, now), true);

    *retry_after = 0;
    if (e == NULL || shm->exec_running >= concurrency) {
        *retry_after = 5;
        return SBX_DENY_CAPACITY;
    }
    if (e->exec_refill == 0) {
        e->exec_tokens = per_minute;
    } else {
        e->exec_tokens += (double)(now - e->exec_refill) * per_minute / 60000.0;
        if (e->exec_tokens > per_minute)
            e->exec_tokens = per_minute;
    }
    e->exec_refill = now;
    if (e->exec_tokens < 1) {
        *retry_after = (unsigned)((1 - e->exec_tokens) * 60.0 / per_minute) + 1;
        return SBX_DENY_CONCURRENT;
    }
    e->exec_tokens -= 1;
    shm->exec_running++;
    return SBX_OK;
}

void
sbx_sessions_exec_done_locked(sbx_shm_t *shm)
{
    if (shm->exec_running > 0)
        shm->exec_running--;
}

void
sbx_sessions_set_running_locked(sbx_shm_t *shm, int index, const char *container, uint64_t now)
{
    sbx_session_t *s = &sessions(shm)[index];

    snprintf(s->container, sizeof(s->container), "%s", container);
    s->state = SBX_SESSION_RUNNING;
    s->state_since = now;
    s->owner = 0;
    shm->live_sessions++;
}

void
sbx_sessions_refund_locked(sbx_shm_t *shm, int index)
{
    sbx_session_t *s = &sessions(shm)[index];
    sbx_ipent_t *e = ip_entry(shm, s->ip, zone_secs(shm, s->created), false);
    uint32_t stamp = zone_secs(shm, s->created);

    if (e == NULL || e->count == 0)
        return;
    /* Drop the newest stamp equal to this creation's (stamps are in time order; it is near the head). */
    for (uint32_t k = 1; k <= e->count; k++) {
        uint32_t at = (e->head + SBX_HOURLY_MAX - k) % SBX_HOURLY_MAX;
        if (e->stamps[at] == stamp) {
            for (uint32_t m = k; m > 1; m--) /* close the gap toward the head */
                e->stamps[(e->head + SBX_HOURLY_MAX - m) % SBX_HOURLY_MAX] =
                    e->stamps[(e->head + SBX_HOURLY_MAX - m + 1) % SBX_HOURLY_MAX];
            e->head = (e->head + SBX_HOURLY_MAX - 1) % SBX_HOURLY_MAX;
            e->count--;
            return;
        }
    }
}

int
sbx_sessions_adopt_locked(sbx_shm_t *shm, const sbx_session_t *from)
{
    sbx_ipent_t *e;

    for (uint32_t i = 0; i < shm->capacity; i++) {
        sbx_session_t *s = &sessions(shm)[i];
        if (s->state != SBX_SESSION_FREE)
            continue;
        *s = *from;
        s->state = SBX_SESSION_RUNNING;
        s->owner = 0;
        s->terminal_gen = 0;
        s->terminal_pid = 0;
        s->replay_head = s->replay_len = 0;
        shm->live_sessions++;
        if ((e = ip_entry(shm, s->ip, zone_secs(shm, sbx_time_wall_ms()), true)) != NULL)
            e->active++;
        return (int)i;
    }
    return -1;
}

void
sbx_sessions_release_locked(sbx_shm_t *shm, int index)
{
    sbx_session_t *s = &sessions(shm)[index];
    sbx_ipent_t *e;

    if (s->state == SBX_SESSION_FREE)
        return;
    if (s->container[0] != '\0' && shm->live_sessions > 0)
        shm->live_sessions--;
    if ((e = ip_entry(shm, s->ip, zone_secs(shm, s->created), false)) != NULL && e->active > 0)
        e->active--;
    memset(s, 0, sizeof(*s));
}

int
sbx_sessions_find_locked(sbx_shm_t *shm, const char *id)
{
    if (strlen(id) != SBX_SESSION_ID_LEN)
        return -1;
    for (uint32_t i = 0; i < shm->capacity; i++)
        if (sessions(shm)[i].state != SBX_SESSION_FREE && memcmp(sessions(shm)[i].id, id, SBX_SESSION_ID_LEN) == 0)
            return (int)i;
    return -1;
}

unsigned
sbx_sessions_count_locked(sbx_shm_t *shm)
{
    unsigned n = 0;

    for (uint32_t i = 0; i < shm->capacity; i++)
        n += sessions(shm)[i].state != SBX_SESSION_FREE;
    return n;
}

int
sbx_sessions_find(sbx_shm_t *shm, const char *id, sbx_session_t *copy)
{
    int i;

    sbx_shm_lock(shm);
    if ((i = sbx_sessions_find_locked(shm, id)) >= 0 && copy != NULL)
        *copy = sessions(shm)[i];
    sbx_shm_unlock(shm);
    return i;
}

void
sbx_sessions_touch(sbx_shm_t *shm, int index, uint64_t now)
{
    __atomic_store_n(&sessions(shm)[index].last_active, now, __ATOMIC_RELAXED);
}
