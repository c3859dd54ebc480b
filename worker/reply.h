/*
 * Writing responses: JSON bodies, the toolkata error shape and CORS.
 * Every function here sends the response (h2o_send_inline) and returns 0,
 * the value an h2o on_req handler returns once it has answered.
 */
#ifndef SBX_REPLY_H
#define SBX_REPLY_H

#include <stdbool.h>
#include <h2o.h>
#include <jansson.h>

/* Sends body (taking ownership of it: it is decref'd) with the given status. */
int sbx_reply_json(h2o_req_t *req, int status, json_t *body);
/*
 * Sends {"error": error, "message": message[, "retryAfter": n]}; a
 * retry_after > 0 also sets the Retry-After header (seconds).
 */
int sbx_reply_error(h2o_req_t *req, int status, const char *error, const char *message, unsigned retry_after);
/* Answers a CORS preflight (OPTIONS) with 204. */
int sbx_reply_preflight(h2o_req_t *req);
/* Adds Access-Control-Allow-Origin when the request's Origin is allowed. */
void sbx_reply_cors(h2o_req_t *req);
/* True when origin (length len) is in allowed_origins, or the list is empty. */
bool sbx_origin_allowed(const char *origin, size_t len);

#endif
