/* The session registry and quotas in Redis: Lua scripts and their callers. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "redis.h"
#include "registry.h"
#include "worker.h"

#define HOUR_MS 3600000

/*
 * Admission, atomically: prune ids whose hash is gone (ended or idle-expired)
 * from the IP's and the host's sets, check the three quotas, then record the
 * session. Returns {0, 0} or {reason, retry-after seconds}: 1 concurrent,
 * 2 hourly, 3 host capacity.
 * KEYS: ip active set, ip created zset, host set, session hash.
 * ARGV: now ms, max_per_ip, per_hour, capacity, id, ttl ms, field, value, ...
 */
static const char admit_lua[] =
    "local now = tonumber(ARGV[1])\n"
    "local function prune(set)\n"
    "  for _, sid in ipairs(redis.call('SMEMBERS', set)) do\n"
    "    if redis.call('EXISTS', 'sandboxd:session:' .. sid) == 0 then redis.call('SREM', set, sid) end\n"
    "  end\n"
    "end\n"
    "prune(KEYS[1])\n"
    "if redis.call('SCARD', KEYS[1]) >= tonumber(ARGV[2]) then return {1, 60} end\n"
    "redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - 3600000)\n"
    "if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[3]) then\n"
    "  local oldest = tonumber(redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')[2])\n"
    "  return {2, math.max(1, math.ceil((oldest + 3600000 - now) / 1000))}\n"
    "end\n"
    "prune(KEYS[3])\n"
    "if redis.call('SCARD', KEYS[3]) >= tonumber(ARGV[4]) then return {3, 30} end\n"
    "redis.call('SADD', KEYS[1], ARGV[5])\n"
    "redis.call('ZADD', KEYS[2], now, ARGV[5])\n"
    "redis.call('PEXPIRE', KEYS[2], 3600000)\n"
    "redis.call('SADD', KEYS[3], ARGV[5])\n"
    "redis.call('HSET', KEYS[4], unpack(ARGV, 7))\n"
    "redis.call('PEXPIRE', KEYS[4], tonumber(ARGV[6]))\n"
    "return {0, 0}\n";

/*
 * Updates a hash only while it exists: activity must never bring back a
 * session that someone deleted (or that expired). Returns 1 or 0.
 * KEYS: session hash. ARGV: ttl ms, field, value, ...
 */
static const char update_lua[] = "if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end\n"
                                 "redis.call('HSET', KEYS[1], unpack(ARGV, 2))\n"
                                 "redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[1]))\n"
                                 "return 1\n";

/* The fields a lookup returns, in order. */
#define LOOKUP_FIELDS "host", "state", "container", "ip", "created", "expires", "environment", "toolPair", "init"
static const char lookup_lua[] = "local out = {}\n"
                                 "for i, k in ipairs(KEYS) do\n"
                                 "  out[i] = redis.call('HMGET', k, 'host', 'state', 'container', 'ip', 'created', 'expires',"
                                 " 'environment', 'toolPair', 'init')\n"
                                 "end\n"
                                 "return out\n";

static sbx_redis_t *redis;
static uint64_t up_since;

static void
on_state(void *data, bool up, const char *error)
{
    (void)data;
    up_since = up ? sbx_time_wall_ms() : 0;
    if (up)
        sbx_log_notice("redis is reachable", "url=%s", sbx_worker.conf->redis_url);
    else
        sbx_log_error("redis is unreachable", "error=%s", error);
}

void
sbx_registry_start(void)
{
    const char *error = NULL;

    if ((redis = sbx_redis_connect(sbx_worker.loop, sbx_worker.conf->redis_url, &error)) == NULL) {
        sbx_log_error("bad redis.url; sessions need Redis", "error=%s", error);
        return;
    }
    sbx_redis_on_state(redis, on_state, NULL);
}

bool
sbx_registry_ready(void)
{
    return redis != NULL && sbx_redis_ready(redis);
}

const char *
sbx_registry_error(void)
{
    return redis == NULL ? "bad redis.url" : sbx_redis_error(redis)[0] ? sbx_redis_error(redis) : "not connected yet";
}

uint64_t
sbx_registry_up_since(void)
{
    return sbx_registry_ready() ? up_since : 0;
}

/* An argv under construction: the strings are copied into one arena freed after sending. */
typedef struct {
    const char *argv[64];
    size_t len[64];
    int argc;
    char buf[8192];
    size_t used;
} args_t;

static void
add(args_t *a, const char *s)
{
    size_t n = strlen(s);

    if (a->argc == 64 || a->used + n + 1 > sizeof(a->buf))
        return; /* sized for our fixed commands; a truncated command fails in Redis, loudly */
    memcpy(a->buf + a->used, s, n + 1);
    a->argv[a->argc] = a->buf + a->used;
    a->len[a->argc++] = n;
    a->used += n + 1;
}

static void
addf(args_t *a, const char *fmt, const char *s)
{
    char tmp[256];

    snprintf(tmp, sizeof(tmp), fmt, s);
    add(a, tmp);
}

static void
addu(args_t *a, uint64_t v)
{
    char tmp[24];

    snprintf(tmp, sizeof(tmp), "%llu", (unsigned long long)v);
    add(a, tmp);
}

static int
rsend(args_t *a, sbx_redis_reply_cb cb, void *data)
{
    if (redis == NULL)
        return SBX_ERROR;
    return sbx_redis_command_argv(redis, cb, data, a->argc, a->argv, a->len);
}

static void
add_fields(args_t *a, const sbx_session_t *s, const char *state)
{
    add(a, "ip"), add(a, s->ip);
    add(a, "host"), add(a, sbx_worker.conf->host_id);
    add(a, "environment"), add(a, s->environment);
    add(a, "toolPair"), add(a, s->tool_pair);
    add(a, "created"), addu(a, s->created);
    add(a, "expires"), addu(a, s->expires);
    add(a, "last_active"), addu(a, s->last_active);
    add(a, "state"), add(a, state);
    add(a, "container"), add(a, s->container);
    add(a, "init"), add(a, s->init);
}

typedef struct {
    sbx_registry_admit_cb cb;
    void *data;
} admit_t;

static void
on_admit(void *data, redisReply *reply, const char *error)
{
    admit_t *op = data;
    int verdict = SBX_ERROR;
    unsigned retry = 0;

    if (reply != NULL && reply->type == REDIS_REPLY_ARRAY && reply->elements == 2) {
        long long code = reply->element[0]->integer;
        retry = (unsigned)reply->element[1]->integer;
        verdict = code == 0 ? SBX_OK : code == 1 ? SBX_DENY_CONCURRENT : code == 2 ? SBX_DENY_HOURLY : SBX_DENY_CAPACITY;
    } else {
        sbx_shm_count(sbx_worker.shm, redis_errors);
    }
    if (reply != NULL && reply->type == REDIS_REPLY_ERROR) {
        sbx_log_error("redis admission script failed", "error=%s", reply->str);
        error = "the admission script failed";
    }
    op->cb(op->data, verdict, retry, error);
    free(op);
}

int
sbx_registry_admit(const sbx_session_t *s, sbx_registry_admit_cb cb, void *data)
{
    const sbx_conf_t *conf = sbx_worker.conf;
    admit_t *op = malloc(sizeof(*op));
    args_t *a = calloc(1, sizeof(*a));
    int rc = SBX_ERROR;

    if (op == NULL || a == NULL)
        goto fail;
    op->cb = cb, op->data = data;
    add(a, "EVAL"), add(a, admit_lua), add(a, "4");
    addf(a, "sandboxd:ip:%s:active", s->ip);
    addf(a, "sandboxd:ip:%s:created", s->ip);
    addf(a, "sandboxd:host:%s:sessions", conf->host_id);
    addf(a, "sandboxd:session:%s", s->id);
    addu(a, s->created);
    addu(a, conf->max_per_ip);
    addu(a, conf->per_ip_per_hour);
    addu(a, conf->capacity);
    add(a, s->id);
    addu(a, conf->idle_timeout);
    add_fields(a, s, "creating");
    if ((rc = rsend(a, on_admit, op)) != SBX_OK)
        goto fail;
    free(a);
    return SBX_OK;

fail:
    free(op);
    free(a);
    return SBX_ERROR;
}

static void
on_done(void *data, redisReply *reply, const char *error)
{
    const char *what = data;

    if (reply == NULL || reply->type == REDIS_REPLY_ERROR)
        sbx_shm_count(sbx_worker.shm, redis_errors);
    if (reply == NULL || reply->type == REDIS_REPLY_ERROR)
        sbx_log_warn("redis registry update failed", "what=%s error=%s", what, reply ? reply->str : error);
}

/* Marks slot's registry copy as written now, when the guarded update found the hash. */
static void
on_written(void *data, redisReply *reply, const char *error)
{
    int slot = (int)(intptr_t)data;

    if (reply != NULL && reply->type == REDIS_REPLY_INTEGER && reply->integer == 1)
        __atomic_store_n(&sbx_sessions_slot(sbx_worker.shm, slot)->redis_written, sbx_time_wall_ms(), __ATOMIC_RELAXED);
    else if (reply == NULL || reply->type == REDIS_REPLY_ERROR)
        on_done("update", reply, error);
}

static void
update(const sbx_session_t *s, int slot, args_t *a)
{
    args_t *head = calloc(1, sizeof(*head));

    if (head == NULL)
        return;
    add(head, "EVAL"), add(head, update_lua), add(head, "1");
    addf(head, "sandboxd:session:%s", s->id);
    addu(head, sbx_worker.conf->idle_timeout);
    for (int i = 0; i < a->argc; i++)
        add(head, a->argv[i]);
    rsend(head, on_written, (void *)(intptr_t)slot);
    free(head);
}

void
sbx_registry_running(const sbx_session_t *s, int slot)
{
    args_t a = {0};

    add(&a, "state"), add(&a, "running");
    add(&a, "container"), add(&a, s->container);
    update(s, slot, &a);
}

void
sbx_registry_touch(int slot, uint64_t now)
{
    sbx_session_t *s = sbx_sessions_slot(sbx_worker.shm, slot);
    uint64_t last = __atomic_load_n(&s->redis_touched, __ATOMIC_RELAXED);
    args_t a = {0};

    /* The keystroke path: at most one Redis call a second per session, never one per key. */
    if (now - last < 1000 || !__atomic_compare_exchange_n(&s->redis_touched, &last, now, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
        return;
    add(&a, "last_active"), addu(&a, now);
    update(s, slot, &a);
}

void
sbx_registry_activity(int slot)
{
    uint64_t now = sbx_time_wall_ms();

    sbx_sessions_touch(sbx_worker.shm, slot, now);
    sbx_registry_touch(slot, now);
}

/* A transaction: its commands go out as MULTI ... EXEC in consecutive calls, so no other falls inside (redis.h). */
typedef struct {
    args_t cmd[6];
    int n;
} batch_t;

static args_t *
next(batch_t *b)
{
    return &b->cmd[b->n++];
}

static void
batch_send(batch_t *b, const char *what)
{
    args_t edge = {0};

    add(&edge, "MULTI");
    rsend(&edge, on_done, (void *)what);
    for (int i = 0; i < b->n; i++)
        rsend(&b->cmd[i], on_done, (void *)what);
    edge.argc = 0, edge.used = 0;
    add(&edge, "EXEC");
    rsend(&edge, on_done, (void *)what);
    free(b);
}

void
sbx_registry_refund(const sbx_session_t *s)
{
    batch_t *b = calloc(1, sizeof(*b));
    args_t *a;

    if (b == NULL)
        return;
    a = next(b), add(a, "DEL"), addf(a, "sandboxd:session:%s", s->id);
    a = next(b), add(a, "SREM"), addf(a, "sandboxd:ip:%s:active", s->ip), add(a, s->id);
    a = next(b), add(a, "ZREM"), addf(a, "sandboxd:ip:%s:created", s->ip), add(a, s->id);
    a = next(b), add(a, "SREM"), addf(a, "sandboxd:host:%s:sessions", sbx_worker.conf->host_id), add(a, s->id);
    batch_send(b, "refund");
}

void
sbx_registry_end(const char *id, const char *ip)
{
    batch_t *b = calloc(1, sizeof(*b));
    args_t *a;

    if (b == NULL)
        return;
    a = next(b), add(a, "DEL"), addf(a, "sandboxd:session:%s", id);
    /* An unknown ip (a session of another host) is left to admission, which prunes ended ids. */
    if (ip != NULL && ip[0] != '\0')
        a = next(b), add(a, "SREM"), addf(a, "sandboxd:ip:%s:active", ip), add(a, id);
    a = next(b), add(a, "SREM"), addf(a, "sandboxd:host:%s:sessions", sbx_worker.conf->host_id), add(a, id);
    batch_send(b, "end");
}

void
sbx_registry_resync(const sbx_session_t *s, int slot)
{
    batch_t *b = calloc(1, sizeof(*b));
    args_t *a;

    if (b == NULL)
        return;
    a = next(b), add(a, "HSET"), addf(a, "sandboxd:session:%s", s->id), add_fields(a, s, "running");
    a = next(b), add(a, "PEXPIRE"), addf(a, "sandboxd:session:%s", s->id), addu(a, sbx_worker.conf->idle_timeout);
    a = next(b), add(a, "SADD"), addf(a, "sandboxd:ip:%s:active", s->ip), add(a, s->id);
    a = next(b), add(a, "SADD"), addf(a, "sandboxd:host:%s:sessions", sbx_worker.conf->host_id), add(a, s->id);
    batch_send(b, "resync");
    __atomic_store_n(&sbx_sessions_slot(sbx_worker.shm, slot)->redis_written, sbx_time_wall_ms(), __ATOMIC_RELAXED);
}

typedef struct {
    sbx_registry_lookup_cb cb;
    void *data;
    size_t n;
    char (*ids)[SBX_SESSION_ID_LEN + 1];
} lookup_t;

static void
copy_field(char *dst, size_t len, redisReply *r)
{
    dst[0] = '\0';
    if (r != NULL && r->type == REDIS_REPLY_STRING)
        snprintf(dst, len, "%.*s", (int)r->len, r->str);
}

static void
on_lookup(void *data, redisReply *reply, const char *error)
{
    lookup_t *op = data;
    sbx_session_t *found = calloc(op->n ? op->n : 1, sizeof(*found));
    bool ok = reply != NULL && reply->type == REDIS_REPLY_ARRAY && reply->elements == op->n && found != NULL;
    char num[24], host[64], state[16];

    (void)error;
    for (size_t i = 0; ok && i < op->n; i++) {
        redisReply *f = reply->element[i];
        sbx_session_t *s = &found[i];
        if (f->type != REDIS_REPLY_ARRAY || f->elements != 9)
            continue;
        copy_field(host, sizeof(host), f->element[0]);
        copy_field(state, sizeof(state), f->element[1]);
        if (state[0] == '\0')
            continue; /* no hash: FREE */
        memcpy(s->id, op->ids[i], sizeof(s->id));
        s->state = strcmp(state, "running") == 0 ? SBX_SESSION_RUNNING : SBX_SESSION_CREATING;
        copy_field(s->container, sizeof(s->container), f->element[2]);
        copy_field(s->ip, sizeof(s->ip), f->element[3]);
        copy_field(num, sizeof(num), f->element[4]);
        s->created = strtoull(num, NULL, 10);
        copy_field(num, sizeof(num), f->element[5]);
        s->expires = strtoull(num, NULL, 10);
        copy_field(s->environment, sizeof(s->environment), f->element[6]);
        copy_field(s->tool_pair, sizeof(s->tool_pair), f->element[7]);
        copy_field(s->init, sizeof(s->init), f->element[8]);
        /* Another host's session is none of ours to adopt. */
        if (strcmp(host, sbx_worker.conf->host_id) != 0)
            s->state = SBX_SESSION_DELETING;
    }
    op->cb(op->data, op->n, op->ids, found, ok);
    free(found);
    free(op->ids);
    free(op);
}

int
sbx_registry_lookup(char (*ids)[SBX_SESSION_ID_LEN + 1], size_t n, sbx_registry_lookup_cb cb, void *data)
{
    lookup_t *op = calloc(1, sizeof(*op));
    const char **argv = calloc(n + 3, sizeof(char *));
    size_t *lens = calloc(n + 3, sizeof(size_t));
    char(*keys)[SBX_SESSION_ID_LEN + 32] = calloc(n ? n : 1, sizeof(*keys));
    char count[24];
    int rc = SBX_ERROR;

    if (op == NULL || argv == NULL || lens == NULL || keys == NULL || (op->ids = calloc(n ? n : 1, sizeof(*ids))) == NULL)
        goto done;
    op->cb = cb, op->data = data, op->n = n;
    memcpy(op->ids, ids, n * sizeof(*ids));
    snprintf(count, sizeof(count), "%zu", n);
    argv[0] = "EVAL", argv[1] = lookup_lua, argv[2] = count;
    for (size_t i = 0; i < n; i++) {
        snprintf(keys[i], sizeof(keys[i]), "sandboxd:session:%s", ids[i]);
        argv[i + 3] = keys[i];
    }
    for (size_t i = 0; i < n + 3; i++)
        lens[i] = strlen(argv[i]);
    if (redis != NULL && (rc = sbx_redis_command_argv(redis, on_lookup, op, (int)n + 3, argv, lens)) == SBX_OK)
        op = NULL;

done:
    if (op != NULL) {
        free(op->ids);
        free(op);
    }
    free(argv);
    free(lens);
    free(keys);
    return rc;
}
