/* JSON responses, the toolkata error shape and CORS headers. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "log.h"
#include "reply.h"
#include "worker.h"

bool
sbx_origin_allowed(const char *origin, size_t len)
{
    const sbx_conf_t *conf = sbx_worker.conf;

    if (conf->norigins == 0)
        return true;
    for (size_t i = 0; i < conf->norigins; i++)
        if (strlen(conf->allowed_origins[i]) == len && memcmp(conf->allowed_origins[i], origin, len) == 0)
            return true;
    return false;
}

void
sbx_reply_cors(h2o_req_t *req)
{
    ssize_t i = h2o_find_header_by_str(&req->headers, H2O_STRLIT("origin"), -1);

    /* The page lives on another origin: echo an allowed Origin back, and say the answer varies by it. */
    if (i == -1)
        return;
    h2o_iovec_t origin = req->headers.entries[i].value;
    if (!sbx_origin_allowed(origin.base, origin.len))
        return;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ACCESS_CONTROL_ALLOW_ORIGIN, NULL, origin.base, origin.len);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_VARY, NULL, H2O_STRLIT("Origin"));
}

static const char *
reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 204:
        return "No Content";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 413:
        return "Payload Too Large";
    case 429:
        return "Too Many Requests";
    case 503:
        return "Service Unavailable";
    default:
        return status < 500 ? "Client Error" : "Server Error";
    }
}

int
sbx_reply_json(h2o_req_t *req, int status, json_t *body)
{
    size_t len = body != NULL ? json_dumpb(body, NULL, 0, JSON_COMPACT) : 0;
    char *buf = NULL;

    if (len > 0) {
        buf = h2o_mem_alloc_pool(&req->pool, len + 1);
        json_dumpb(body, buf, len, JSON_COMPACT);
        buf[len++] = '\n';
    }
    json_decref(body);
    if (body != NULL && len == 0) {
        /* jansson could not encode it (out of memory): say so rather than send an empty 200. */
        status = 500;
        buf = "{\"error\":\"internal\",\"message\":\"cannot encode the response\"}\n";
        len = strlen(buf);
    }
    req->res.status = status;
    req->res.reason = reason(status);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT("application/json"));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-store"));
    sbx_reply_cors(req);
    req->res.content_length = len; /* h2o_send_inline alone would chunk it */
    h2o_send_inline(req, buf, len);
    return 0;
}

int
sbx_reply_error(h2o_req_t *req, int status, const char *error, const char *message, unsigned retry_after)
{
    json_t *body = json_pack("{s:s, s:s}", "error", error, "message", message);

    if (retry_after > 0) {
        char secs[16];
        int n = snprintf(secs, sizeof(secs), "%u", retry_after);
        json_object_set_new(body, "retryAfter", json_integer(retry_after));
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, h2o_strdup(&req->pool, secs, (size_t)n).base,
                       (size_t)n);
    }
    return sbx_reply_json(req, status, body);
}

int
sbx_reply_preflight(h2o_req_t *req)
{
    req->res.status = 204;
    req->res.reason = "No Content";
    sbx_reply_cors(req);
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("access-control-allow-methods"), 0, NULL,
                          H2O_STRLIT("GET, POST, DELETE, OPTIONS"));
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("access-control-allow-headers"), 0, NULL,
                          H2O_STRLIT("Content-Type, X-API-Key, Authorization"));
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("access-control-max-age"), 0, NULL, H2O_STRLIT("600"));
    h2o_send_inline(req, "", 0);
    return 0;
}
