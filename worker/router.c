/*
 * Where a request goes. One h2o handler receives every request and picks
 * the route by method and path; each route lives in its own file:
 *
 *   GET  /health                         health.c
 *   GET  /metrics, /api/v1/status        metrics.c
 *   GET  /api/v1/environments            api_sessions.c
 *   POST /api/v1/sessions                api_sessions.c
 *   GET  /api/v1/sessions/:id            api_sessions.c
 *   DELETE /api/v1/sessions/:id          api_sessions.c
 *   POST /api/v1/sessions/:id/destroy    api_sessions.c (navigator.sendBeacon)
 *   GET  /api/v1/sessions/:id/ws         terminal.c (WebSocket; term_input.c, term_output.c)
 *   POST /api/v1/execute (and /execute)  execute.c
 *   OPTIONS *                            reply.c (CORS preflight)
 */
#include "config.h"

#include <string.h>

#include "reply.h"
#include "token.h"
#include "worker.h"

#define API "/api/v1"

static bool
is(h2o_iovec_t v, const char *s)
{
    return v.len == strlen(s) && memcmp(v.base, s, v.len) == 0;
}

static int
wrong_method(h2o_req_t *req, const char *allowed)
{
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("allow"), 0, NULL, allowed, strlen(allowed));
    return sbx_reply_error(req, 405, "MethodNotAllowed", "Method not allowed on this route", 0);
}

/* Routes /api/v1/sessions/<id>[/<action>]; rest is what follows "/sessions/". */
static int
session_route(h2o_req_t *req, const char *rest, size_t len)
{
    char id[SBX_TOKEN_LEN + 1];
    const char *slash = memchr(rest, '/', len);
    size_t idlen = slash ? (size_t)(slash - rest) : len;
    h2o_iovec_t action = slash ? h2o_iovec_init(slash, len - idlen) : h2o_iovec_init("", 0);

    /* An id of the wrong shape cannot exist: 404 without touching any table. */
    if (idlen != SBX_TOKEN_LEN || !sbx_token_valid(rest, idlen))
        return sbx_reply_error(req, 404, "NotFound", "Session not found", 0);
    memcpy(id, rest, idlen);
    id[idlen] = '\0';
    if (action.len == 0) {
        if (is(req->method, "GET"))
            return sbx_api_sessions_get(req, id);
        if (is(req->method, "DELETE"))
            return sbx_api_sessions_delete(req, id, false);
        return wrong_method(req, "GET, DELETE");
    }
    if (is(action, "/ws")) {
        if (is(req->method, "GET"))
            return sbx_terminal_open(req, id);
        return wrong_method(req, "GET");
    }
    if (is(action, "/destroy")) {
        if (is(req->method, "POST"))
            return sbx_api_sessions_delete(req, id, true);
        return wrong_method(req, "POST");
    }
    return sbx_reply_error(req, 404, "NotFound", "No such route", 0);
}

int
sbx_router_on_req(h2o_handler_t *self, h2o_req_t *req)
{
    h2o_iovec_t path = req->path_normalized;
    static const char sessions_prefix[] = API "/sessions/";

    (void)self;
    sbx_shm_count(sbx_worker.shm, requests);
    if (is(req->method, "OPTIONS"))
        return sbx_reply_preflight(req);
    if (is(path, "/health")) {
        if (is(req->method, "GET") || is(req->method, "HEAD"))
            return sbx_health_get(req);
        return wrong_method(req, "GET");
    }
    if (is(path, "/metrics") || is(path, API "/status")) {
        if (is(req->method, "GET") || is(req->method, "HEAD"))
            return path.len == sizeof("/metrics") - 1 ? sbx_metrics_get(req) : sbx_status_get(req);
        return wrong_method(req, "GET");
    }
    if (is(path, API "/sessions")) {
        if (is(req->method, "POST"))
            return sbx_api_sessions_create(req);
        return wrong_method(req, "POST");
    }
    if (path.len > sizeof(sessions_prefix) - 1 && memcmp(path.base, sessions_prefix, sizeof(sessions_prefix) - 1) == 0)
        return session_route(req, path.base + sizeof(sessions_prefix) - 1, path.len - (sizeof(sessions_prefix) - 1));
    /* /execute without the prefix: the Bun sandbox's route, for clients written against it. */
    if (is(path, API "/execute") || is(path, "/execute")) {
        if (is(req->method, "POST"))
            return sbx_api_execute(req);
        return wrong_method(req, "POST");
    }
    if (is(path, API "/environments")) {
        if (is(req->method, "GET"))
            return sbx_api_environments(req);
        return wrong_method(req, "GET");
    }
    return sbx_reply_error(req, 404, "NotFound", "No such route", 0);
}
