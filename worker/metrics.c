/*
 * GET /metrics (Prometheus text format 0.0.4) and GET /api/v1/status (the
 * toolkata frontend's "should I try now?"). Both read the shared zone, so
 * every worker answers for the whole server, not for itself.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "registry.h"
#include "reply.h"
#include "sessions.h"
#include "worker.h"

typedef struct {
    char *buf;
    size_t len, cap;
} text_t;

static void out(text_t *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
out(text_t *t, const char *fmt, ...)
{
    va_list ap;
    int n;

    for (;;) {
        va_start(ap, fmt);
        n = vsnprintf(t->buf + t->len, t->cap - t->len, fmt, ap);
        va_end(ap);
        if (n < 0)
            return;
        if ((size_t)n < t->cap - t->len) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = t->cap * 2 + (size_t)n;
        char *p = realloc(t->buf, cap);
        if (p == NULL)
            return;
        t->buf = p, t->cap = cap;
    }
}

static uint64_t
rd(const uint64_t *v)
{
    return __atomic_load_n(v, __ATOMIC_RELAXED);
}

static void
counter(text_t *t, const char *name, const char *help, uint64_t v)
{
    out(t, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", name, help, name, name, (unsigned long long)v);
}

static void
gauge(text_t *t, const char *name, const char *help, double v)
{
    out(t, "# HELP %s %s\n# TYPE %s gauge\n%s %g\n", name, help, name, name, v);
}

static void
histogram(text_t *t, const char *name, const char *help, const sbx_hist_t *h)
{
    static const double bounds[] = SBX_HIST_BOUNDS;
    uint64_t cum = 0;

    out(t, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    for (size_t i = 0; i < SBX_HIST_N; i++) {
        cum += rd(&h->buckets[i]);
        out(t, "%s_bucket{le=\"%g\"} %llu\n", name, bounds[i], (unsigned long long)cum);
    }
    cum += rd(&h->buckets[SBX_HIST_N]);
    out(t, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %g\n%s_count %llu\n", name, (unsigned long long)cum, name,
        (double)rd(&h->sum_us) / 1e6, name, (unsigned long long)cum);
}

int
sbx_metrics_get(h2o_req_t *req)
{
    sbx_shm_t *shm = sbx_worker.shm;
    sbx_shm_stats_t *st = &shm->stats;
    text_t t = {malloc(8192), 0, 8192};

    if (t.buf == NULL)
        return sbx_reply_error(req, 503, "ServiceUnavailable", "Out of memory", 1);
    out(&t,
        "# HELP sandboxd_build_info Version of the running server.\n# TYPE sandboxd_build_info gauge\n"
        "sandboxd_build_info{version=\"%s\"} 1\n",
        SBX_VERSION);
    gauge(&t, "sandboxd_sessions_live", "Sessions with a running container on this host.",
          __atomic_load_n(&shm->live_sessions, __ATOMIC_RELAXED));
    gauge(&t, "sandboxd_sessions_capacity", "The most live sessions this host takes.", sbx_worker.conf->capacity);
    counter(&t, "sandboxd_sessions_created_total", "Sessions created.", rd(&st->sessions_created));
    out(&t, "# HELP sandboxd_sessions_rejected_total Session creations refused, by reason.\n"
            "# TYPE sandboxd_sessions_rejected_total counter\n");
    static const char *const reasons[] = {"rate", "capacity", "auth", "docker", "redis"};
    const uint64_t *vals[] = {&st->rejected_rate, &st->rejected_capacity, &st->rejected_auth, &st->rejected_docker,
                              &st->rejected_redis};
    for (size_t i = 0; i < sbx_nelems(reasons); i++)
        out(&t, "sandboxd_sessions_rejected_total{reason=\"%s\"} %llu\n", reasons[i], (unsigned long long)rd(vals[i]));
    gauge(&t, "sandboxd_websocket_connections", "Live WebSocket terminals.",
          (double)__atomic_load_n(&st->ws_open, __ATOMIC_RELAXED));
    counter(&t, "sandboxd_websocket_connections_total", "WebSocket terminals opened.", rd(&st->ws_opened));
    counter(&t, "sandboxd_terminal_received_bytes_total", "Bytes of terminal input from browsers.", rd(&st->ws_bytes_in));
    counter(&t, "sandboxd_terminal_sent_bytes_total", "Bytes of terminal output to browsers.", rd(&st->ws_bytes_out));
    counter(&t, "sandboxd_executions_total", "One-shot runs started (POST /execute).", rd(&st->executes));
    counter(&t, "sandboxd_http_requests_total", "HTTP requests routed to the API.", rd(&st->requests));
    counter(&t, "sandboxd_redis_errors_total", "Redis commands that failed or got no answer.", rd(&st->redis_errors));
    counter(&t, "sandboxd_worker_restarts_total", "Workers that died and were started again.", rd(&st->worker_restarts));
    counter(&t, "sandboxd_reloads_total", "Configuration reloads (SIGHUP).", rd(&st->reloads));
    gauge(&t, "sandboxd_docker_up", "1 when the last Docker call got an answer.",
          __atomic_load_n(&shm->docker.ok, __ATOMIC_RELAXED));
    gauge(&t, "sandboxd_redis_up", "1 when this worker's Redis connection is up.", sbx_registry_ready());
    histogram(&t, "sandboxd_container_start_seconds", "Time to create and start a sandbox container.", &st->container_start);
    histogram(&t, "sandboxd_docker_request_seconds", "Docker Engine API call latency.", &st->docker_call);

    req->res.status = 200;
    req->res.reason = "OK";
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT("text/plain; version=0.0.4"));
    char *body = h2o_mem_alloc_pool(&req->pool, t.len);
    memcpy(body, t.buf, t.len);
    free(t.buf);
    req->res.content_length = t.len;
    h2o_send_inline(req, body, t.len);
    return 0;
}

/* Host memory in use, in percent (MemTotal - MemAvailable), or -1. */
static double
memory_percent(void)
{
    FILE *fp = fopen("/proc/meminfo", "r");
    char line[128];
    double total = 0, avail = -1;

    if (fp == NULL)
        return -1;
    while (fgets(line, sizeof(line), fp) != NULL) {
        sscanf(line, "MemTotal: %lf", &total);
        sscanf(line, "MemAvailable: %lf", &avail);
    }
    fclose(fp);
    return total > 0 && avail >= 0 ? 100.0 * (total - avail) / total : -1;
}

int
sbx_status_get(h2o_req_t *req)
{
    sbx_shm_t *shm = sbx_worker.shm;
    const sbx_conf_t *conf = sbx_worker.conf;
    unsigned live = __atomic_load_n(&shm->live_sessions, __ATOMIC_RELAXED);
    double mem = memory_percent();
    bool docker_ok = __atomic_load_n(&shm->docker.ok, __ATOMIC_RELAXED) || shm->docker.checked == 0;
    const char *reason = NULL;
    char why[256];

    /* "Open" as in a circuit breaker: the frontend should not try now. */
    if (!docker_ok) {
        sbx_shm_lock(shm);
        snprintf(why, sizeof(why), "Docker is unavailable: %s", shm->docker.error);
        sbx_shm_unlock(shm);
        reason = why;
    } else if (!sbx_registry_ready() && !conf->redis_fail_open) {
        snprintf(why, sizeof(why), "Redis is unavailable: %s", sbx_registry_error());
        reason = why;
    } else if (live >= conf->capacity) {
        reason = "At capacity: every sandbox is in use";
    } else if (mem > conf->status_memory_percent) {
        snprintf(why, sizeof(why), "Host memory is %.0f%% used (limit %u%%)", mem, conf->status_memory_percent);
        reason = why;
    }
    json_t *metrics =
        json_pack("{s:I, s:I, s:f, s:b, s:b, s:I}", "activeSessions", (json_int_t)live, "capacity", (json_int_t)conf->capacity,
                  "memoryPercent", mem, "dockerOk", docker_ok, "redisOk", sbx_registry_ready(), "websockets",
                  (json_int_t)__atomic_load_n(&shm->stats.ws_open, __ATOMIC_RELAXED));
    return sbx_reply_json(req, 200, json_pack("{s:b, s:s?, s:o}", "isOpen", reason != NULL, "reason", reason, "metrics", metrics));
}
