/*
 * An asynchronous Docker Engine API client: HTTP/1.1 over the unix socket
 * docker.socket, on the worker's loop. One connection per call ("Connection:
 * close"), so a slow call never holds up another. Never blocks.
 */
#ifndef SBX_DOCKER_H
#define SBX_DOCKER_H

#include <h2o.h>
#include <jansson.h>

/* API version pinned in every path: Debian's docker.io 20.10 speaks 1.41. */
#define SBX_DOCKER_API "/v1.41"

typedef struct sbx_docker_call_s sbx_docker_call_t;

typedef struct sbx_docker_result_s {
    int status;        /* HTTP status; 0 when no response arrived */
    const char *error; /* why there is no response (status 0), else NULL */
    const char *body;  /* the body, de-chunked; valid only inside the callback */
    size_t len;
    uint64_t elapsed_ms;
} sbx_docker_result_t;

typedef void (*sbx_docker_cb)(void *data, const sbx_docker_result_t *res);
/* On success sock is the hijacked stream (the caller now owns it); on failure sock is NULL and error says why. */
typedef void (*sbx_docker_hijack_cb)(void *data, h2o_socket_t *sock, const char *error);

/*
 * Sends method path (path already starts with SBX_DOCKER_API) with an
 * optional JSON body (copied). cb is called exactly once, never from
 * inside this call, unless the call is cancelled first. Returns the call
 * (for sbx_docker_cancel), or NULL if out of memory.
 */
sbx_docker_call_t *sbx_docker_request(const char *method, const char *path, json_t *body, uint64_t timeout_ms, sbx_docker_cb cb,
                                      void *data);
/* Like sbx_docker_request for a JSON body that is already text (a NUL-terminated string). */
sbx_docker_call_t *sbx_docker_request_text(const char *method, const char *path, const char *body, uint64_t timeout_ms,
                                           sbx_docker_cb cb, void *data);
/*
 * POSTs path with "Upgrade: tcp" and, on "101 UPGRADED", hands the raw
 * stream's socket to cb (bytes already read past the headers are left in
 * sock->input). Used for attach.
 */
sbx_docker_call_t *sbx_docker_hijack(const char *path, uint64_t timeout_ms, sbx_docker_hijack_cb cb, void *data);
/* Abandons a call in flight: its callback will not run. */
void sbx_docker_cancel(sbx_docker_call_t *call);

/* The "message" of a Docker error body, copied into buf (which is returned); "" when there is none. */
const char *sbx_docker_message(const sbx_docker_result_t *res, char *buf, size_t len);

#endif
