/*
 * Where a request goes. One h2o handler receives every request and picks
 * the route by method and path; each route lives in its own file.
 */
#include "config.h"

#include <string.h>

#include "reply.h"
#include "worker.h"

static bool
is(h2o_iovec_t v, const char *s)
{
    return v.len == strlen(s) && memcmp(v.base, s, v.len) == 0;
}

int
sbx_router_on_req(h2o_handler_t *self, h2o_req_t *req)
{
    h2o_iovec_t path = req->path_normalized;

    (void)self;
    sbx_shm_count(sbx_worker.shm, requests);
    if (is(req->method, "OPTIONS"))
        return sbx_reply_preflight(req);
    if (is(path, "/health")) {
        if (is(req->method, "GET") || is(req->method, "HEAD"))
            return sbx_health_get(req);
        return sbx_reply_error(req, 405, "method_not_allowed", "use GET", 0);
    }
    return sbx_reply_error(req, 404, "not_found", "no such route", 0);
}
