/*
 * The toolkata session API: POST /sessions, GET and DELETE /sessions/:id,
 * POST /sessions/:id/destroy, GET /environments. Admission is decided in
 * the shared zone (exact across workers) before any Docker call is made.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "reply.h"
#include "request.h"
#include "sandbox.h"
#include "registry.h"
#include "sessions.h"
#include "token.h"
#include "worker.h"

#define MAX_BODY (16 << 10) /* bytes of a POST /sessions body */
#define MAX_TIMEOUT 1800000 /* ms a session may ask for (toolkata's bound) */

typedef struct create_op_s create_op_t;

/* Lives in the request's pool; tells the operation when the request is gone. */
typedef struct {
    create_op_t *op;
} req_ref_t;

struct create_op_s {
    h2o_req_t *req; /* NULL once the client went away */
    req_ref_t *ref;
    int slot;
    char id[SBX_TOKEN_LEN + 1];
    char ip[SBX_IP_LEN];
    const sbx_environment_t *env;
    bool registered; /* Redis admitted it: its quota entries must be given back or ended */
};

static const char *
status_name(int state)
{
    switch (state) {
    case SBX_SESSION_CREATING:
        return "STARTING";
    case SBX_SESSION_RUNNING:
        return "RUNNING";
    default:
        return "DESTROYING";
    }
}

static void
on_req_dispose(void *p)
{
    req_ref_t *ref = p;

    if (ref->op != NULL)
        ref->op->req = NULL;
}

static int
unauthorized(h2o_req_t *req)
{
    sbx_shm_count(sbx_worker.shm, rejected_auth);
    return sbx_reply_error(req, 401, "Unauthorized", "Missing or invalid API key", 0);
}

/* Parses the body as a JSON object; on failure answers the request and returns NULL. */
static json_t *
parse_body(h2o_req_t *req, size_t max, bool required)
{
    json_error_t jerr;
    json_t *body;
    char msg[256];

    if (req->entity.len > max) {
        snprintf(msg, sizeof(msg), "Request body is larger than %zu bytes", max);
        sbx_reply_error(req, 413, "PayloadTooLarge", msg, 0);
        return NULL;
    }
    if (req->entity.base == NULL || req->entity.len == 0) {
        if (!required)
            return json_object();
        sbx_reply_error(req, 400, "BadRequest", "A JSON body is required", 0);
        return NULL;
    }
    if ((body = json_loadb(req->entity.base, req->entity.len, JSON_REJECT_DUPLICATES, &jerr)) == NULL) {
        snprintf(msg, sizeof(msg), "Invalid JSON body: %s at line %d column %d", jerr.text, jerr.line, jerr.column);
        sbx_reply_error(req, 400, "BadRequest", msg, 0);
        return NULL;
    }
    if (!json_is_object(body)) {
        json_decref(body);
        sbx_reply_error(req, 400, "BadRequest", "The JSON body must be an object", 0);
        return NULL;
    }
    return body;
}

static bool
printable(const char *s, size_t max)
{
    size_t n = strlen(s);

    if (n == 0 || n > max)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return false;
    return true;
}

/* Joins the environment's and the request's init commands, one per line, into out; false if invalid or too long. */
static bool
join_init(const sbx_environment_t *env, json_t *init, char *out, size_t len, const char **why)
{
    size_t o = 0, i;
    json_t *v;

    out[0] = '\0';
    for (i = 0; i < env->ninit + json_array_size(init); i++) {
        const char *cmd;
        if (i < env->ninit) {
            cmd = env->init[i];
        } else {
            v = json_array_get(init, i - env->ninit);
            if ((cmd = json_string_value(v)) == NULL) {
                *why = "Invalid init: must be an array of strings";
                return false;
            }
        }
        size_t n = strlen(cmd);
        if (memchr(cmd, '\n', n) != NULL || memchr(cmd, '\r', n) != NULL || o + n + 2 > len) {
            *why = "Invalid init: commands must be single lines, 2 KiB in all";
            return false;
        }
        memcpy(out + o, cmd, n);
        o += n;
        out[o++] = '\n';
        out[o] = '\0';
    }
    return true;
}

/* Gives the slot back; a creation that failed (refund) costs the user nothing against the hourly quota. */
static void
release_slot(create_op_t *op, bool refund)
{
    sbx_session_t copy;

    sbx_shm_lock(sbx_worker.shm);
    copy = *sbx_sessions_slot(sbx_worker.shm, op->slot);
    if (refund)
        sbx_sessions_refund_locked(sbx_worker.shm, op->slot);
    sbx_sessions_release_locked(sbx_worker.shm, op->slot);
    sbx_shm_unlock(sbx_worker.shm);
    if (op->registered) {
        if (refund)
            sbx_registry_refund(&copy);
        else
            sbx_registry_end(copy.id, copy.ip);
    }
}

static void
op_free(create_op_t *op)
{
    if (op->ref != NULL)
        op->ref->op = NULL;
    sbx_worker.inflight--;
    free(op);
}

static void
on_orphan_removed(void *data, bool ok, const char *error)
{
    create_op_t *op = data;

    (void)ok, (void)error;
    release_slot(op, false);
    op_free(op);
}

static void
respond_created(create_op_t *op, const sbx_session_t *s)
{
    h2o_req_t *req = op->req;
    char created[32], expires[32], url[512];

    sbx_time_iso8601(s->created, created);
    sbx_time_iso8601(s->expires, expires);
    snprintf(url, sizeof(url), "%s://%.*s/api/v1/sessions/%s/ws", strcmp(sbx_request_scheme(req), "https") == 0 ? "wss" : "ws",
             (int)(req->authority.len < 256 ? req->authority.len : 0), req->authority.base, op->id);
    sbx_reply_json(req, 201,
                   json_pack("{s:s, s:s, s:s, s:s, s:s}", "sessionId", op->id, "wsUrl", url, "status", "RUNNING", "createdAt",
                             created, "expiresAt", expires));
}

static void
on_sandbox(void *data, const sbx_sandbox_result_t *res)
{
    create_op_t *op = data;
    sbx_session_t *s = sbx_sessions_slot(sbx_worker.shm, op->slot), copy;
    char rid[16];
    bool wanted;

    sbx_token_redact(op->id, rid, sizeof(rid));
    if (res->container == NULL) {
        sbx_shm_count(sbx_worker.shm, rejected_docker);
        release_slot(op, true);
        if (op->req != NULL)
            sbx_reply_error(op->req, 503, "ServiceUnavailable", res->error, 10);
        op_free(op);
        return;
    }
    sbx_shm_lock(sbx_worker.shm);
    /* A DELETE may have come while we were creating; and the client may have hung up. */
    wanted = s->state == SBX_SESSION_CREATING && strcmp(s->id, op->id) == 0 && op->req != NULL;
    if (wanted) {
        sbx_sessions_set_running_locked(sbx_worker.shm, op->slot, res->container, sbx_time_wall_ms());
        copy = *s;
    }
    sbx_shm_unlock(sbx_worker.shm);
    if (wanted && op->registered)
        sbx_registry_running(&copy, op->slot);
    if (!wanted) {
        sbx_log_info("session abandoned during create; removing its container", "session=%s", rid);
        if (sbx_sandbox_remove(res->container, on_orphan_removed, op) != SBX_OK)
            on_orphan_removed(op, false, NULL);
        return;
    }
    sbx_log_info("session created", "session=%s ip=%s environment=%s container=%.12s create_ms=%llu start_ms=%llu", rid, op->ip,
                 op->env->name, res->container, (unsigned long long)res->create_ms, (unsigned long long)res->start_ms);
    sbx_shm_count(sbx_worker.shm, sessions_created);
    respond_created(op, &copy);
    op_free(op);
}

static int
deny(h2o_req_t *req, int code, unsigned retry_after, const char *ip)
{
    char msg[160];

    sbx_shm_count(sbx_worker.shm, rejected_rate);
    switch (code) {
    case SBX_DENY_CONCURRENT:
        snprintf(msg, sizeof(msg), "Too many active sessions from your address (at most %u at a time)",
                 sbx_worker.conf->max_per_ip);
        break;
    case SBX_DENY_HOURLY:
        snprintf(msg, sizeof(msg), "Too many sessions created from your address (at most %u per hour)",
                 sbx_worker.conf->per_ip_per_hour);
        break;
    default:
        __atomic_sub_fetch(&sbx_worker.shm->stats.rejected_rate, 1, __ATOMIC_RELAXED); /* counted as capacity instead */
        sbx_shm_count(sbx_worker.shm, rejected_capacity);
        sbx_log_warn("session refused: capacity full", "ip=%s", ip);
        return sbx_reply_error(req, 503, "ServiceUnavailable", "The sandbox service is at capacity; try again shortly",
                               retry_after);
    }
    sbx_log_info("session refused: rate limit", "ip=%s reason=%s", ip, code == SBX_DENY_HOURLY ? "hourly" : "concurrent");
    return sbx_reply_error(req, 429, "TooManySessions", msg, retry_after);
}

static void
start_sandbox(create_op_t *op)
{
    if (sbx_sandbox_acquire(op->env, op->id, "session", sbx_sessions_slot(sbx_worker.shm, op->slot)->created, on_sandbox, op) !=
        SBX_OK) {
        release_slot(op, true);
        if (op->req != NULL)
            sbx_reply_error(op->req, 503, "ServiceUnavailable", "Out of resources", 5);
        op_free(op);
    }
}

static void
on_admitted(void *data, int verdict, unsigned retry_after, const char *error)
{
    create_op_t *op = data;
    char msg[256];

    if (verdict == SBX_OK) {
        op->registered = true;
        start_sandbox(op);
        return;
    }
    release_slot(op, true);
    if (op->req != NULL) {
        if (verdict == SBX_ERROR) {
            sbx_shm_count(sbx_worker.shm, rejected_redis);
            snprintf(msg, sizeof(msg), "Redis is unavailable: %s", error ? error : "no answer");
            sbx_reply_error(op->req, 503, "ServiceUnavailable", msg, 5);
        } else {
            deny(op->req, verdict, retry_after, op->ip);
        }
    }
    op_free(op);
}

int
sbx_api_sessions_create(h2o_req_t *req)
{
    const sbx_conf_t *conf = sbx_worker.conf;
    json_t *body, *jenv, *jinit, *jtimeout, *jtool;
    const sbx_environment_t *env;
    char init[sizeof(((sbx_session_t *)0)->init)], ip[SBX_IP_LEN];
    const char *why = NULL;
    uint64_t now = sbx_time_wall_ms(), lifetime;
    unsigned retry_after;
    create_op_t *op;
    int slot;

    if (!sbx_request_authorized(req, NULL))
        return unauthorized(req);
    if ((body = parse_body(req, MAX_BODY, true)) == NULL)
        return 0;
    jtool = json_object_get(body, "toolPair");
    jenv = json_object_get(body, "environment");
    jinit = json_object_get(body, "init");
    jtimeout = json_object_get(body, "timeout");
    if (!json_is_string(jtool) || !printable(json_string_value(jtool), 63))
        why = "Missing or invalid toolPair in request body";
    else if (jenv != NULL && !json_is_null(jenv) && !json_is_string(jenv))
        why = "Invalid environment: must be a string";
    else if ((env = sbx_conf_environment(conf, json_string_value(jenv))) == NULL)
        why = "Unknown environment";
    else if (jinit != NULL && !json_is_null(jinit) && !json_is_array(jinit))
        why = "Invalid init: must be an array of strings";
    else if (jtimeout != NULL && !json_is_null(jtimeout) &&
             (!json_is_number(jtimeout) || json_number_value(jtimeout) < 1 || json_number_value(jtimeout) > MAX_TIMEOUT))
        why = "Invalid timeout: must be a number between 1 and 1800000 (30 minutes)";
    if (why == NULL)
        join_init(env, jinit, init, sizeof(init), &why);
    if (why != NULL) {
        json_decref(body);
        return sbx_reply_error(req, 400, "BadRequest", why, 0);
    }
    lifetime = json_is_number(jtimeout)    ? (uint64_t)json_number_value(jtimeout)
               : env->default_timeout != 0 ? env->default_timeout
                                           : conf->max_lifetime;
    if (lifetime > conf->max_lifetime)
        lifetime = conf->max_lifetime;

    sbx_request_client_ip(req, ip);
    /*
     * Redis decides the per-IP quotas (exact across workers and hosts); the shared zone then only
     * holds this host's capacity. Without Redis, redis.on_failure says: refuse (closed), or fall back
     * to this host's own limits (open).
     */
    bool use_redis = sbx_registry_ready();
    if (!use_redis && !conf->redis_fail_open) {
        char msg[256];
        json_decref(body);
        snprintf(msg, sizeof(msg), "Redis is unavailable: %s", sbx_registry_error());
        sbx_shm_count(sbx_worker.shm, rejected_redis);
        return sbx_reply_error(req, 503, "ServiceUnavailable", msg, 5);
    }
    if (!use_redis)
        sbx_log_warn("redis down: admitting with this host's own limits (redis.on_failure: open)", "ip=%s error=%s", ip,
                     sbx_registry_error());
    if ((op = calloc(1, sizeof(*op))) == NULL || sbx_token_new(op->id) != SBX_OK) {
        free(op);
        json_decref(body);
        return sbx_reply_error(req, 503, "ServiceUnavailable", "Out of resources", 5);
    }
    sbx_limits_t lim = {conf->capacity, use_redis ? UINT32_MAX : conf->max_per_ip, use_redis ? UINT32_MAX : conf->per_ip_per_hour};
    sbx_shm_lock(sbx_worker.shm);
    slot = sbx_sessions_admit_locked(sbx_worker.shm, &lim, ip, now, &retry_after);
    if (slot >= 0) {
        sbx_session_t *s = sbx_sessions_slot(sbx_worker.shm, slot);
        memcpy(s->id, op->id, sizeof(s->id));
        snprintf(s->environment, sizeof(s->environment), "%s", env->name);
        snprintf(s->tool_pair, sizeof(s->tool_pair), "%s", json_string_value(jtool));
        memcpy(s->init, init, sizeof(s->init));
        s->expires = now + lifetime;
        s->owner = (int32_t)getpid();
    }
    sbx_shm_unlock(sbx_worker.shm);
    json_decref(body);
    if (slot < 0) {
        free(op);
        return deny(req, slot, retry_after, ip);
    }

    op->req = req;
    op->slot = slot;
    op->env = env;
    memcpy(op->ip, ip, sizeof(op->ip));
    op->ref = h2o_mem_alloc_shared(&req->pool, sizeof(req_ref_t), on_req_dispose);
    op->ref->op = op;
    sbx_worker.inflight++;
    if (!use_redis) {
        start_sandbox(op);
        return 0;
    }
    sbx_session_t copy;
    sbx_shm_lock(sbx_worker.shm);
    copy = *sbx_sessions_slot(sbx_worker.shm, slot);
    sbx_shm_unlock(sbx_worker.shm);
    if (sbx_registry_admit(&copy, on_admitted, op) != SBX_OK)
        on_admitted(op, SBX_ERROR, 0, "out of memory");
    return 0;
}

/* Looks the session up for a client; answers 404 itself (and returns -1) when it is unknown or expired. */
static int
lookup(h2o_req_t *req, const char *id, sbx_session_t *copy)
{
    uint64_t now = sbx_time_wall_ms();
    int i;

    /* A session being deleted is gone to its client, even while its container's removal is still pending. */
    if (!sbx_token_valid(id, strlen(id)) || (i = sbx_sessions_find(sbx_worker.shm, id, copy)) < 0 ||
        copy->state == SBX_SESSION_DELETING) {
        sbx_reply_error(req, 404, "NotFound", "Session not found", 0);
        return -1;
    }
    if (now >= copy->expires || now - copy->last_active >= sbx_worker.conf->idle_timeout) {
        sbx_reply_error(req, 404, "Expired", "Session has expired", 0);
        return -1;
    }
    return i;
}

int
sbx_api_sessions_get(h2o_req_t *req, const char *id)
{
    sbx_session_t s;
    char created[32], expires[32];
    int i;

    if (!sbx_request_authorized(req, NULL))
        return unauthorized(req);
    if ((i = lookup(req, id, &s)) < 0)
        return 0;
    sbx_registry_activity(i);
    sbx_time_iso8601(s.created, created);
    sbx_time_iso8601(s.expires, expires);
    return sbx_reply_json(req, 200,
                          json_pack("{s:s, s:s, s:s, s:s, s:s}", "sessionId", s.id, "status", status_name(s.state), "createdAt",
                                    created, "expiresAt", expires, "toolPair", s.tool_pair));
}

typedef struct {
    h2o_req_t *req;
    req_ref_t *ref;
    int slot;
    char id[SBX_TOKEN_LEN + 1];
} delete_op_t;

static void
on_delete_dispose(void *p)
{
    delete_op_t **ref = p;

    if (*ref != NULL)
        (*ref)->req = NULL;
}

static void
on_session_removed(void *data, bool ok, const char *error)
{
    delete_op_t *op = data;
    sbx_session_t *s = sbx_sessions_slot(sbx_worker.shm, op->slot);
    char rid[16];

    (void)error;
    sbx_token_redact(op->id, rid, sizeof(rid));
    if (ok) {
        char ip[sizeof(s->ip)] = "";
        sbx_shm_lock(sbx_worker.shm);
        if (s->state == SBX_SESSION_DELETING && strcmp(s->id, op->id) == 0) {
            memcpy(ip, s->ip, sizeof(ip));
            sbx_sessions_release_locked(sbx_worker.shm, op->slot);
        }
        sbx_shm_unlock(sbx_worker.shm);
        sbx_registry_end(op->id, ip);
        sbx_log_info("session deleted", "session=%s", rid);
    }
    /* Not ok: the slot stays DELETING and housekeeping retries; to the client the session is gone either way. */
    if (op->req != NULL) {
        *(delete_op_t **)op->ref = NULL;
        sbx_reply_json(op->req, 200, json_pack("{s:b}", "success", 1));
    }
    sbx_worker.inflight--;
    free(op);
}

int
sbx_api_sessions_delete(h2o_req_t *req, const char *id, bool from_beacon)
{
    json_t *body = NULL;
    const char *key = NULL;
    char container[72];
    delete_op_t *op;
    int i = -1;
    bool running = false;

    if (from_beacon) {
        /* navigator.sendBeacon cannot set headers: the key may come as {"apiKey": "..."}. */
        if ((body = parse_body(req, MAX_BODY, false)) == NULL)
            return 0;
        key = json_string_value(json_object_get(body, "apiKey"));
    }
    bool ok = sbx_request_authorized(req, key);
    json_decref(body);
    if (!ok)
        return unauthorized(req);
    if (sbx_token_valid(id, strlen(id))) {
        sbx_shm_lock(sbx_worker.shm);
        if ((i = sbx_sessions_find_locked(sbx_worker.shm, id)) >= 0) {
            sbx_session_t *s = sbx_sessions_slot(sbx_worker.shm, i);
            /* CREATING: the creator sees DELETING when Docker answers and removes the container itself. */
            running = s->state == SBX_SESSION_RUNNING;
            if (s->state != SBX_SESSION_DELETING) {
                s->state = SBX_SESSION_DELETING;
                s->state_since = sbx_time_wall_ms();
                s->owner = (int32_t)getpid();
            }
            memcpy(container, s->container, sizeof(container));
        }
        sbx_shm_unlock(sbx_worker.shm);
    }
    if (!running) {
        /* Not running here: it may be another host's; ending its registry entry ends it there (its reaper sees). */
        if (i < 0 && sbx_token_valid(id, strlen(id)))
            sbx_registry_end(id, NULL);
        return sbx_reply_json(req, 200, json_pack("{s:b}", "success", 1));
    }
    if ((op = calloc(1, sizeof(*op))) == NULL)
        return sbx_reply_json(req, 200, json_pack("{s:b}", "success", 1)); /* housekeeping will finish it */
    op->req = req;
    op->slot = i;
    memcpy(op->id, id, sizeof(op->id));
    op->ref = h2o_mem_alloc_shared(&req->pool, sizeof(delete_op_t *), on_delete_dispose);
    *(delete_op_t **)op->ref = op;
    sbx_worker.inflight++;
    if (sbx_sandbox_remove(container, on_session_removed, op) != SBX_OK) {
        sbx_worker.inflight--;
        *(delete_op_t **)op->ref = NULL;
        free(op);
        return sbx_reply_json(req, 200, json_pack("{s:b}", "success", 1));
    }
    return 0;
}

int
sbx_api_environments(h2o_req_t *req)
{
    const sbx_conf_t *conf = sbx_worker.conf;
    json_t *list = json_array();

    for (size_t i = 0; i < conf->nenvironments; i++) {
        const sbx_environment_t *e = &conf->environments[i];
        json_array_append_new(list, json_pack("{s:s, s:s, s:s, s:I}", "name", e->name, "description", e->description, "category",
                                              e->category, "defaultTimeout",
                                              (json_int_t)(e->default_timeout ? e->default_timeout : conf->max_lifetime)));
    }
    return sbx_reply_json(req, 200, json_pack("{s:o}", "environments", list));
}
