/* Unit tests of the shared-zone admission tables and of session tokens. */
#include "config.h"

#include <stdlib.h>

#include "sessions.h"
#include "tap.h"
#include "token.h"

static int
admit(sbx_shm_t *shm, const sbx_limits_t *lim, const char *ip, uint64_t now, unsigned *retry)
{
    int slot;

    sbx_shm_lock(shm);
    slot = sbx_sessions_admit_locked(shm, lim, ip, now, retry);
    sbx_shm_unlock(shm);
    return slot;
}

static void
test_admission(void)
{
    sbx_shm_t *shm = sbx_shm_create(8, 1024);
    sbx_limits_t lim = {.capacity = 8, .max_per_ip = 2, .per_ip_per_hour = 3};
    uint64_t t0 = shm->started_wall_ms;
    unsigned retry;
    int a, b, c;

    a = admit(shm, &lim, "10.0.0.1", t0, &retry);
    b = admit(shm, &lim, "10.0.0.1", t0 + 1000, &retry);
    ok(a >= 0 && b >= 0 && a != b, "two sessions for one IP");
    ok(sbx_sessions_slot(shm, a)->state == SBX_SESSION_CREATING, "an admitted slot is CREATING");
    c = admit(shm, &lim, "10.0.0.1", t0 + 2000, &retry);
    ok(c == SBX_DENY_CONCURRENT && retry > 0, "a third concurrent one is refused, with a retry time");
    ok(admit(shm, &lim, "10.0.0.2", t0 + 2000, &retry) >= 0, "another IP is not affected");

    sbx_shm_lock(shm);
    sbx_sessions_release_locked(shm, a);
    sbx_shm_unlock(shm);
    c = admit(shm, &lim, "10.0.0.1", t0 + 3000, &retry);
    ok(c >= 0, "releasing one gives its concurrency back");
    sbx_shm_lock(shm);
    sbx_sessions_release_locked(shm, b);
    sbx_sessions_release_locked(shm, c);
    sbx_shm_unlock(shm);
    c = admit(shm, &lim, "10.0.0.1", t0 + 10000, &retry);
    ok(c == SBX_DENY_HOURLY, "the fourth creation within an hour is refused");
    ok(retry == 3590, "retry after: when the oldest creation leaves the window (%u s)", retry);
    c = admit(shm, &lim, "10.0.0.1", t0 + 3600 * 1000 + 500, &retry);
    ok(c >= 0, "an hour after the first creation, one more is allowed");
    ok(admit(shm, &lim, "10.0.0.1", t0 + 3600 * 1000 + 600, &retry) == SBX_DENY_HOURLY && retry == 1,
       "the window slides one creation at a time (retry %u s)", retry);

    sbx_shm_destroy(shm);
}

static void
test_capacity_and_find(void)
{
    sbx_shm_t *shm = sbx_shm_create(4, 1024);
    sbx_limits_t lim = {.capacity = 2, .max_per_ip = 10, .per_ip_per_hour = 100};
    uint64_t now = shm->started_wall_ms;
    unsigned retry;
    char ip[32];
    int s0, s1;

    s0 = admit(shm, &lim, "1.1.1.1", now, &retry);
    s1 = admit(shm, &lim, "1.1.1.2", now, &retry);
    ok(admit(shm, &lim, "1.1.1.3", now, &retry) == SBX_DENY_CAPACITY, "the configured capacity (below the zone's) holds");
    lim.capacity = 100;
    ok(admit(shm, &lim, "1.1.1.3", now, &retry) >= 0 && admit(shm, &lim, "1.1.1.4", now, &retry) >= 0 &&
           admit(shm, &lim, "1.1.1.5", now, &retry) == SBX_DENY_CAPACITY,
       "and the zone's own size caps a larger configured one");

    sbx_session_t *s = sbx_sessions_slot(shm, s1);
    memcpy(s->id, "abcdefghijklmnopqrstuv", 23);
    ok(sbx_sessions_find(shm, "abcdefghijklmnopqrstuv", NULL) == s1, "find by id");
    ok(sbx_sessions_find(shm, "abcdefghijklmnopqrstuX", NULL) == -1, "a near miss is not found");
    ok(sbx_sessions_find(shm, "abc", NULL) == -1, "a short id is not found");
    sbx_shm_lock(shm);
    sbx_sessions_set_running_locked(shm, s1, "c0ffee", now);
    ok(shm->live_sessions == 1 && s->state == SBX_SESSION_RUNNING, "set running counts a live sandbox");
    sbx_sessions_release_locked(shm, s1);
    sbx_sessions_release_locked(shm, s0);
    ok(shm->live_sessions == 0 && sbx_sessions_count_locked(shm) == 2, "release uncounts it and frees the slot");
    sbx_shm_unlock(shm);

    /* The IP table evicts idle entries when full rather than refusing. */
    lim.capacity = 4;
    bool all = true;
    sbx_shm_lock(shm);
    sbx_sessions_release_locked(shm, 0), sbx_sessions_release_locked(shm, 1), sbx_sessions_release_locked(shm, 2),
        sbx_sessions_release_locked(shm, 3);
    sbx_shm_unlock(shm);
    for (unsigned i = 0; i < shm->ip_capacity + 10; i++) {
        snprintf(ip, sizeof(ip), "10.%u.%u.%u", i >> 16 & 255, i >> 8 & 255, i & 255);
        int slot = admit(shm, &lim, ip, now, &retry);
        all = all && slot >= 0;
        sbx_shm_lock(shm);
        sbx_sessions_release_locked(shm, slot);
        sbx_shm_unlock(shm);
    }
    ok(all, "more distinct IPs than the table holds are still admitted");
    sbx_shm_destroy(shm);
}

static void
test_tokens(void)
{
    char a[SBX_TOKEN_LEN + 1], b[SBX_TOKEN_LEN + 1], r[16];
    int same = 0, bad = 0;

    for (int i = 0; i < 1000; i++) {
        sbx_token_new(a);
        sbx_token_new(b);
        same += strcmp(a, b) == 0;
        bad += !sbx_token_valid(a, strlen(a));
    }
    ok(strlen(a) == 22, "an id is 22 characters");
    ok(bad == 0, "every id has the base64url shape");
    ok(same == 0, "ids do not repeat");
    ok(!sbx_token_valid("abcdefghijklmnopqrstu/", 22), "'/' is not in the alphabet");
    ok(!sbx_token_valid("abc", 3), "a short id is invalid");
    sbx_token_redact(a, r, sizeof(r));
    ok(strlen(r) == 9 && strncmp(r, a, 6) == 0 && strcmp(r + 6, "...") == 0, "the redacted form keeps 6 characters");
    /* 16 random bytes: the last character carries 2 bits, so it is one of A, Q, g, w. */
    ok(strchr("AQgw", a[21]) != NULL, "the last character carries the final 2 bits only");
}

int
main(void)
{
    test_admission();
    test_capacity_and_find();
    test_tokens();
    return done_testing();
}
