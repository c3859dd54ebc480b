/*
 * Housekeeping: whichever worker holds the lease in the shared zone reaps
 * expired sessions, retries failed removals, removes orphaned containers
 * (labelled for this host, with no session in the zone) and keeps the
 * Docker status that /health and /status report. If the holder dies or
 * drains, another worker takes the lease within LEASE_MS.
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "docker.h"
#include "log.h"
#include "registry.h"
#include "sandbox.h"
#include "sessions.h"
#include "timer.h"
#include "token.h"
#include "worker.h"

#define TICK_MS 1000
#define LEASE_MS 3000
#define SCAN_EVERY_MS 5000    /* orphan and vanished-container scan */
#define INFO_EVERY_MS 30000   /* docker info, for the runtime check */
#define ORPHAN_GRACE_MS 10000 /* a container this young may belong to a create in flight */
#define DELETE_RETRY_MS 15000 /* a DELETING slot untouched this long is retried */
#define EXECUTE_MAX_MS 600000 /* an execute container older than this is an orphan whatever its label says */
#define MAX_REMOVALS 16       /* removals in flight at once */

typedef struct {
    int slot;
    char id[SBX_TOKEN_LEN + 1];
    char ip[48];
} reap_t;

static sbx_timer_t tick;
static uint64_t last_scan, last_info;
static bool scanning, info_pending, stopped;
static unsigned removals;

static bool
pid_dead(int32_t pid)
{
    return pid <= 0 || (kill(pid, 0) == -1 && errno == ESRCH);
}

static bool
hold_lease(void)
{
    sbx_shm_t *shm = sbx_worker.shm;
    int32_t me = (int32_t)getpid();
    uint64_t now = sbx_time_mono_ms();
    bool held = false;

    sbx_shm_lock(shm);
    if (shm->lease.pid == me || shm->lease.until < now || pid_dead(shm->lease.pid)) {
        if (shm->lease.pid != me)
            sbx_log_info("took the housekeeping lease", NULL);
        shm->lease.pid = me;
        shm->lease.until = now + LEASE_MS;
        held = true;
    }
    sbx_shm_unlock(shm);
    return held;
}

static void
set_docker_status(bool ok, const char *error)
{
    sbx_shm_t *shm = sbx_worker.shm;

    sbx_shm_lock(shm);
    if (shm->docker.ok != ok || shm->docker.checked == 0)
        sbx_log(ok ? SBX_LOG_NOTICE : SBX_LOG_ERROR, ok ? "docker is reachable" : "docker is failing", "error=%s", error);
    shm->docker.ok = ok;
    shm->docker.checked = sbx_time_wall_ms();
    snprintf(shm->docker.error, sizeof(shm->docker.error), "%s", ok ? "" : error);
    sbx_shm_unlock(shm);
}

static void
on_reaped(void *data, bool ok, const char *error)
{
    reap_t *r = data;
    sbx_session_t *s = sbx_sessions_slot(sbx_worker.shm, r->slot);

    (void)error;
    removals--;
    if (ok) {
        sbx_shm_lock(sbx_worker.shm);
        if (s->state == SBX_SESSION_DELETING && strcmp(s->id, r->id) == 0)
            sbx_sessions_release_locked(sbx_worker.shm, r->slot);
        sbx_shm_unlock(sbx_worker.shm);
        sbx_registry_end(r->id, r->ip);
    }
    free(r);
}

static void
remove_session(int slot, const sbx_session_t *s, const char *why)
{
    reap_t *r = calloc(1, sizeof(*r));
    char rid[16];

    sbx_token_redact(s->id, rid, sizeof(rid));
    sbx_log_info("reaping session", "session=%s reason=%s container=%.12s", rid, why, s->container);
    if (r == NULL)
        return;
    r->slot = slot;
    memcpy(r->id, s->id, sizeof(r->id));
    memcpy(r->ip, s->ip, sizeof(r->ip));
    removals++;
    if (sbx_sandbox_remove(s->container, on_reaped, r) != SBX_OK) {
        removals--;
        free(r);
    }
}

/* Marks a slot DELETING for this worker and hands back a copy to remove (lock held). */
static void
claim_locked(sbx_session_t *s, uint64_t now, sbx_session_t *copy)
{
    s->state = SBX_SESSION_DELETING;
    s->state_since = now;
    s->owner = (int32_t)getpid();
    *copy = *s;
}

static void
reap_sessions(void)
{
    sbx_shm_t *shm = sbx_worker.shm;
    uint64_t now = sbx_time_wall_ms(), idle = sbx_worker.conf->idle_timeout;
    struct {
        int slot;
        const char *why;
        sbx_session_t s;
    } todo[MAX_REMOVALS];
    size_t n = 0;

    sbx_shm_lock(shm);
    for (uint32_t i = 0; i < shm->capacity && removals + n < MAX_REMOVALS; i++) {
        sbx_session_t *s = sbx_sessions_slot(shm, (int)i);
        const char *why = NULL;
        if (s->state == SBX_SESSION_RUNNING && now >= s->expires)
            why = "max lifetime";
        else if (s->state == SBX_SESSION_RUNNING && now - s->last_active >= idle)
            why = "idle";
        else if (s->state == SBX_SESSION_DELETING && (pid_dead(s->owner) || now - s->state_since >= DELETE_RETRY_MS))
            why = "delete retry";
        else if (s->state == SBX_SESSION_CREATING && pid_dead(s->owner)) {
            /* Its creator died mid-create: free the slot; the container, if any, is reaped as an orphan. */
            sbx_sessions_release_locked(shm, (int)i);
            continue;
        }
        if (why == NULL)
            continue;
        if (s->container[0] == '\0') {
            sbx_sessions_release_locked(shm, (int)i);
            continue;
        }
        todo[n].slot = (int)i;
        todo[n].why = why;
        claim_locked(s, now, &todo[n].s);
        n++;
    }
    sbx_shm_unlock(shm);
    for (size_t i = 0; i < n; i++)
        remove_session(todo[i].slot, &todo[i].s, todo[i].why);
}

static void
on_orphan_removed(void *data, bool ok, const char *error)
{
    (void)data, (void)ok, (void)error;
    removals--;
}

static void
remove_orphan(const char *cid, const char *state, uint64_t age)
{
    sbx_log_notice("removing orphaned container", "container=%.12s state=%s age_ms=%llu", cid, state, (unsigned long long)age);
    removals++;
    if (sbx_sandbox_remove(cid, on_orphan_removed, NULL) != SBX_OK)
        removals--;
}

/* A container of this host that the registry is asked about: one that no slot here holds. */
typedef struct {
    char cid[72];
    char state[16];
    uint64_t age;
} pending_t;

typedef struct {
    size_t n;
    pending_t *containers; /* parallel to the ids looked up after the zone's own sessions */
    size_t nzone;          /* the first nzone ids are this zone's running sessions */
} lookup_ctx_t;

/*
 * Looks at one container of this host. A session whose shell died is reaped. One that no slot here
 * holds goes to the registry (adopt it after a restart, or remove it as an orphan); without Redis
 * nobody can tell an orphan from a session to adopt, so only the very old are removed then.
 * Returns true when the container needs the registry's word.
 */
static bool
check_container(json_t *c, uint64_t now, pending_t *out, char *sid_out)
{
    json_t *labels = json_object_get(c, "Labels");
    const char *cid = json_string_value(json_object_get(c, "Id")), *state = json_string_value(json_object_get(c, "State"));
    const char *sid = json_string_value(json_object_get(labels, "sandboxd.session"));
    const char *kind = json_string_value(json_object_get(labels, "sandboxd.kind"));
    const char *created_s = json_string_value(json_object_get(labels, "sandboxd.created"));
    uint64_t created = created_s != NULL ? strtoull(created_s, NULL, 10) : 0, age = now > created ? now - created : 0;
    sbx_session_t copy;
    int slot = -1;
    bool dead = false;

    if (cid == NULL || removals >= MAX_REMOVALS)
        return false;
    if (kind != NULL && strcmp(kind, "execute") == 0) {
        /* Execute runs remove their own containers; only a leftover of a crash lands here. */
        if (age >= EXECUTE_MAX_MS)
            remove_orphan(cid, state, age);
        return false;
    }
    if (sid != NULL) {
        sbx_shm_lock(sbx_worker.shm);
        slot = sbx_sessions_find_locked(sbx_worker.shm, sid);
        if (slot >= 0) {
            sbx_session_t *s = sbx_sessions_slot(sbx_worker.shm, slot);
            /* The shell exited, or Docker restarted and did not bring it back: the session is over. */
            dead =
                s->state == SBX_SESSION_RUNNING && strcmp(s->container, cid) == 0 && state != NULL && strcmp(state, "running") != 0;
            if (dead)
                claim_locked(s, now, &copy);
        }
        sbx_shm_unlock(sbx_worker.shm);
        if (dead)
            remove_session(slot, &copy, "container stopped");
        if (slot >= 0 || age < ORPHAN_GRACE_MS)
            return false;
    } else if (age >= ORPHAN_GRACE_MS) {
        remove_orphan(cid, state, age);
        return false;
    }
    if (sid == NULL)
        return false;
    if (!sbx_registry_ready()) {
        if (age >= sbx_worker.conf->max_lifetime + ORPHAN_GRACE_MS)
            remove_orphan(cid, state, age);
        return false;
    }
    snprintf(out->cid, sizeof(out->cid), "%s", cid);
    snprintf(out->state, sizeof(out->state), "%s", state ? state : "");
    out->age = age;
    snprintf(sid_out, SBX_SESSION_ID_LEN + 1, "%s", sid);
    return true;
}

static void
on_registry(void *data, size_t n, char (*ids)[SBX_SESSION_ID_LEN + 1], const sbx_session_t *found, bool ok)
{
    lookup_ctx_t *ctx = data;
    sbx_shm_t *shm = sbx_worker.shm;
    uint64_t now = sbx_time_wall_ms(), up = sbx_registry_up_since();

    for (size_t i = 0; ok && !stopped && i < n; i++) {
        if (i < ctx->nzone) {
            /* A session of this zone: is it still in the registry? */
            if (found[i].state != SBX_SESSION_FREE)
                continue;
            sbx_session_t copy;
            int slot, act = 0;
            sbx_shm_lock(shm);
            if ((slot = sbx_sessions_find_locked(shm, ids[i])) >= 0) {
                sbx_session_t *s = sbx_sessions_slot(shm, slot);
                if (s->state == SBX_SESSION_RUNNING) {
                    /*
                     * Written since this connection came up and now gone: someone deleted it, or it idled
                     * out. Never written in this Redis's life: Redis lost it (a restart), so write it again.
                     */
                    act = up != 0 && s->redis_written >= up ? 1 : 2;
                    if (act == 1)
                        claim_locked(s, now, &copy);
                    else
                        copy = *s;
                }
            }
            sbx_shm_unlock(shm);
            if (act == 1)
                remove_session(slot, &copy, "gone from the registry");
            else if (act == 2)
                sbx_registry_resync(&copy, slot);
            continue;
        }
        pending_t *c = &ctx->containers[i - ctx->nzone];
        if (found[i].state == SBX_SESSION_RUNNING && strcmp(found[i].container, c->cid) == 0 && strcmp(c->state, "running") == 0 &&
            now < found[i].expires) {
            int slot;
            sbx_session_t adopt = found[i];
            adopt.last_active = now;
            adopt.state_since = now;
            adopt.init_done = 1;
            adopt.redis_written = now;
            sbx_shm_lock(shm);
            slot = sbx_sessions_find_locked(shm, adopt.id) >= 0 ? -2 : sbx_sessions_adopt_locked(shm, &adopt);
            sbx_shm_unlock(shm);
            if (slot >= 0)
                sbx_log_notice("adopted a live session after a restart", "session=%.6s container=%.12s", adopt.id, c->cid);
            continue;
        }
        if (found[i].state == SBX_SESSION_DELETING)
            continue; /* another host's, by its label and the registry: leave it alone */
        remove_orphan(c->cid, c->state, c->age);
    }
    free(ctx->containers);
    free(ctx);
}

/* Sessions whose container is not in Docker's list at all have lost it (a Docker wipe): end them. */
static void
reap_vanished(json_t *list, uint64_t now)
{
    sbx_shm_t *shm = sbx_worker.shm;

    sbx_shm_lock(shm);
    for (uint32_t i = 0; i < shm->capacity; i++) {
        sbx_session_t *s = sbx_sessions_slot(shm, (int)i);
        bool found = false;
        size_t k;
        json_t *c;
        if (s->state != SBX_SESSION_RUNNING || now - s->state_since < ORPHAN_GRACE_MS)
            continue;
        json_array_foreach(list, k, c)
        {
            const char *cid = json_string_value(json_object_get(c, "Id"));
            found = found || (cid != NULL && strcmp(cid, s->container) == 0);
        }
        if (!found) {
            char rid[16];
            sbx_token_redact(s->id, rid, sizeof(rid));
            sbx_log_warn("session's container vanished; ending it", "session=%s container=%.12s", rid, s->container);
            sbx_registry_end(s->id, s->ip);
            sbx_sessions_release_locked(shm, (int)i);
        }
    }
    sbx_shm_unlock(shm);
}

static void
on_list(void *data, const sbx_docker_result_t *res)
{
    json_t *list, *c;
    size_t i, n = 0, nzone = 0;
    char msg[200];
    uint64_t now = sbx_time_wall_ms();
    sbx_shm_t *shm = sbx_worker.shm;

    (void)data;
    scanning = false;
    if (stopped)
        return;
    if (res->status != 200 || (list = json_loadb(res->body, res->len, 0, NULL)) == NULL || !json_is_array(list)) {
        set_docker_status(false, sbx_docker_message(res, msg, sizeof(msg)));
        return;
    }
    set_docker_status(true, NULL);
    reap_vanished(list, now);

    /* Ask the registry about this zone's running sessions and about containers no slot holds. */
    size_t cap = shm->capacity + json_array_size(list) + 1;
    char(*ids)[SBX_SESSION_ID_LEN + 1] = calloc(cap, sizeof(*ids));
    lookup_ctx_t *ctx = calloc(1, sizeof(*ctx));
    pending_t *pend = calloc(json_array_size(list) + 1, sizeof(*pend));
    if (ids == NULL || ctx == NULL || pend == NULL)
        goto done;
    if (sbx_registry_ready()) {
        sbx_shm_lock(shm);
        for (uint32_t k = 0; k < shm->capacity; k++) {
            sbx_session_t *s = sbx_sessions_slot(shm, (int)k);
            /* Its hash exists from admission on, so no grace is needed (unlike a container no slot holds). */
            if (s->state == SBX_SESSION_RUNNING)
                memcpy(ids[nzone++], s->id, sizeof(ids[0]));
        }
        sbx_shm_unlock(shm);
    }
    n = nzone;
    json_array_foreach(list, i, c)
    {
        if (check_container(c, now, &pend[n - nzone], ids[n]))
            n++;
    }
    if (n > 0) {
        ctx->nzone = nzone;
        ctx->containers = pend;
        if (sbx_registry_lookup(ids, n, on_registry, ctx) == SBX_OK)
            ctx = NULL, pend = NULL;
    }

done:
    free(ids);
    free(ctx);
    free(pend);
    json_decref(list);
}

static void
scan(void)
{
    char path[1024], filter[256], enc[600];
    size_t o = 0;

    snprintf(filter, sizeof(filter), "{\"label\":[\"sandboxd.host=%s\"]}", sbx_worker.conf->host_id);
    for (const unsigned char *p = (const unsigned char *)filter; *p && o + 4 < sizeof(enc); p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' || *p == '_')
            enc[o++] = (char)*p;
        else
            o += (size_t)snprintf(enc + o, sizeof(enc) - o, "%%%02X", *p);
    }
    enc[o] = '\0';
    snprintf(path, sizeof(path), SBX_DOCKER_API "/containers/json?all=1&filters=%s", enc);
    if (sbx_docker_request("GET", path, NULL, 10000, on_list, NULL) != NULL)
        scanning = true;
}

static void
on_info(void *data, const sbx_docker_result_t *res)
{
    json_t *info;
    bool ok;

    (void)data;
    info_pending = false;
    if (stopped || res->status != 200 || (info = json_loadb(res->body, res->len, 0, NULL)) == NULL)
        return;
    ok = json_object_get(json_object_get(info, "Runtimes"), sbx_worker.conf->docker_runtime) != NULL;
    json_decref(info);
    sbx_shm_lock(sbx_worker.shm);
    if (sbx_worker.shm->docker.runtime_ok != ok && !ok)
        sbx_log_error("the configured runtime is not registered in Docker", "runtime=%s", sbx_worker.conf->docker_runtime);
    sbx_worker.shm->docker.runtime_ok = ok;
    sbx_shm_unlock(sbx_worker.shm);
}

static void
on_tick(sbx_timer_t *timer)
{
    uint64_t now = sbx_time_mono_ms();

    if (!sbx_worker.draining && hold_lease()) {
        reap_sessions();
        if (!scanning && now - last_scan >= SCAN_EVERY_MS) {
            last_scan = now;
            scan();
        }
        if (!info_pending && now - last_info >= INFO_EVERY_MS) {
            last_info = now;
            if (sbx_docker_request("GET", SBX_DOCKER_API "/info", NULL, 10000, on_info, NULL) != NULL)
                info_pending = true;
        }
    }
    sbx_timer_start(timer, TICK_MS, on_tick);
}

void
sbx_housekeeping_start(void)
{
    /* The first scan soon after start: orphans of a crash should not wait a full interval. */
    last_scan = sbx_time_mono_ms() - SCAN_EVERY_MS + 500;
    last_info = 0;
    sbx_timer_start(&tick, 200, on_tick);
}

void
sbx_housekeeping_stop(void)
{
    sbx_shm_t *shm = sbx_worker.shm;

    stopped = true;
    sbx_timer_stop(&tick);
    sbx_shm_lock(shm);
    if (shm->lease.pid == (int32_t)getpid())
        shm->lease.pid = 0; /* hand over at once rather than after LEASE_MS */
    sbx_shm_unlock(shm);
}
