/* What a request says about its client: IP, scheme, credentials, query. No I/O. */
#ifndef SBX_REQUEST_H
#define SBX_REQUEST_H

#include <stdbool.h>
#include <h2o.h>

#define SBX_IP_LEN 48

/*
 * Writes the client's IP (normalised text; v4-mapped v6 shown as v4) into
 * out. It is the peer's address unless the peer is in trusted_proxies:
 * then X-Forwarded-For is walked from the right, past trusted hops, and
 * the first untrusted hop is the client. A client cannot forge its way
 * past a proxy that appends what it saw.
 */
void sbx_request_client_ip(h2o_req_t *req, char *out);
/* "https" when a trusted proxy says X-Forwarded-Proto: https, else "http". */
const char *sbx_request_scheme(h2o_req_t *req);
/*
 * True when no api_key is configured, or the request presents it in
 * X-API-Key, "Authorization: Bearer", or body_key (sendBeacon cannot set
 * headers, so it sends {"apiKey"} in the body). Compared in constant time.
 */
bool sbx_request_authorized(h2o_req_t *req, const char *body_key);
/* Copies the URL-decoded query parameter name into out; false when absent or too long. */
bool sbx_request_query(h2o_req_t *req, const char *name, char *out, size_t len);
/* Copies the first value of header name (lower case) into out; false when absent or too long. */
bool sbx_request_header(h2o_req_t *req, const char *name, char *out, size_t len);

#endif
