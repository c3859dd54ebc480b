/* GET /health: liveness for load balancers and people (toolkata's shape). */
#include "config.h"

#include <string.h>

#include "reply.h"
#include "worker.h"

int
sbx_health_get(h2o_req_t *req)
{
    sbx_shm_t *shm = sbx_worker.shm;
    const char *runtime = sbx_worker.conf->docker_runtime;
    uint64_t now = sbx_time_wall_ms();
    char uptime[32], ts[32];

    sbx_time_uptime((now - shm->started_wall_ms) / 1000, uptime, sizeof(uptime));
    sbx_time_iso8601(now, ts);
    return sbx_reply_json(req, 200,
                          json_pack("{s:s, s:I, s:s, s:s, s:{s:b, s:b, s:s}}", "status", "ok", "containers",
                                    (json_int_t)__atomic_load_n(&shm->live_sessions, __ATOMIC_RELAXED), "uptime", uptime,
                                    "timestamp", ts, "gvisor", "requested", strncmp(runtime, "runsc", 5) == 0, "available",
                                    (int)__atomic_load_n(&shm->docker.runtime_ok, __ATOMIC_RELAXED), "runtime", runtime));
}
