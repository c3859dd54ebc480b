/*
 * Docker Engine API over the unix socket, one short-lived HTTP/1.1
 * connection per call. Responses are parsed with the picohttpparser that
 * libh2o exports (it ships no header: the two prototypes are below).
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "docker.h"
#include "log.h"
#include "timer.h"
#include "worker.h"

#define MAX_RESPONSE (8 << 20) /* bytes: a container list of a full host fits easily */

struct phr_header {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};
struct phr_chunked_decoder {
    size_t bytes_left_in_chunk;
    char consume_trailer;
    char _hex_count;
    char _state;
};
int phr_parse_response(const char *buf, size_t len, int *minor_version, int *status, const char **msg, size_t *msg_len,
                       struct phr_header *headers, size_t *num_headers, size_t last_len);
ssize_t phr_decode_chunked(struct phr_chunked_decoder *decoder, char *buf, size_t *bufsz);

struct sbx_docker_call_s {
    h2o_socket_t *sock;
    sbx_timer_t timer;
    char *request; /* the whole request text, owned */
    size_t request_len;
    sbx_docker_cb cb;
    sbx_docker_hijack_cb hijack_cb;
    void *data;
    uint64_t timeout_ms;
    uint64_t started; /* ms, monotonic */
    const char *deferred_error;
    char errbuf[160];
};

static void
destroy(sbx_docker_call_t *call)
{
    sbx_timer_stop(&call->timer);
    if (call->sock != NULL)
        h2o_socket_close(call->sock);
    free(call->request);
    free(call);
}

static void
finish(sbx_docker_call_t *call, int status, const char *error, const char *body, size_t len)
{
    sbx_docker_result_t res = {status, error, body != NULL ? body : "", len, sbx_time_mono_ms() - call->started};

    sbx_hist_observe(&sbx_worker.shm->stats.docker_call, res.elapsed_ms * 1000);

    if (call->hijack_cb != NULL)
        call->hijack_cb(call->data, NULL, error != NULL ? error : "unexpected answer to an attach");
    else
        call->cb(call->data, &res);
    destroy(call);
}

static void
fail(sbx_docker_call_t *call, const char *fmt, const char *detail)
{
    snprintf(call->errbuf, sizeof(call->errbuf), fmt, detail);
    finish(call, 0, call->errbuf, NULL, 0);
}

static void
on_timeout(sbx_timer_t *timer)
{
    sbx_docker_call_t *call = (sbx_docker_call_t *)((char *)timer - offsetof(sbx_docker_call_t, timer));
    char ms[24];

    snprintf(ms, sizeof(ms), "%llu", (unsigned long long)call->timeout_ms);
    fail(call, "docker did not answer within %s ms", ms);
}

static void
on_deferred_error(sbx_timer_t *timer)
{
    sbx_docker_call_t *call = (sbx_docker_call_t *)((char *)timer - offsetof(sbx_docker_call_t, timer));

    /* The text is already in errbuf: fail() would snprintf errbuf into itself. */
    finish(call, 0, call->deferred_error, NULL, 0);
}

/* Tries to complete a plain (non-hijack) response; returns true when the call is finished. */
static bool
try_complete(sbx_docker_call_t *call, bool eof)
{
    h2o_buffer_t *in = call->sock->input;
    struct phr_header headers[64];
    size_t nheaders = sbx_nelems(headers), clen = SIZE_MAX;
    int minor, status, hlen;
    const char *msg;
    size_t msg_len;
    bool chunked = false;

    hlen = phr_parse_response(in->bytes, in->size, &minor, &status, &msg, &msg_len, headers, &nheaders, 0);
    if (hlen == -2 && !eof)
        return false;
    if (hlen < 0) {
        fail(call, "%s", "docker sent a malformed response");
        return true;
    }
    for (size_t i = 0; i < nheaders; i++) {
        if (headers[i].name_len == 14 && strncasecmp(headers[i].name, "content-length", 14) == 0)
            clen = strtoull(headers[i].value, NULL, 10);
        else if (headers[i].name_len == 17 && strncasecmp(headers[i].name, "transfer-encoding", 17) == 0 &&
                 headers[i].value_len >= 7 && strncasecmp(headers[i].value, "chunked", 7) == 0)
            chunked = true;
    }
    char *body = in->bytes + hlen;
    size_t blen = in->size - (size_t)hlen;
    if (status == 204 || status == 304)
        blen = 0;
    else if (chunked) {
        if (!eof)
            return false; /* "Connection: close": the end of the stream ends the body */
        struct phr_chunked_decoder dec = {0};
        if (phr_decode_chunked(&dec, body, &blen) < 0) {
            fail(call, "%s", "docker sent a malformed chunked body");
            return true;
        }
    } else if (clen != SIZE_MAX) {
        if (blen < clen) {
            if (eof) {
                fail(call, "%s", "docker closed the connection mid-response");
                return true;
            }
            return false;
        }
        blen = clen;
    } else if (!eof) {
        return false;
    }
    finish(call, status, NULL, body, blen);
    return true;
}

static void
hijack_complete(sbx_docker_call_t *call)
{
    h2o_buffer_t *in = call->sock->input;
    struct phr_header headers[64];
    size_t nheaders = sbx_nelems(headers), msg_len;
    int minor, status, hlen;
    const char *msg;

    hlen = phr_parse_response(in->bytes, in->size, &minor, &status, &msg, &msg_len, headers, &nheaders, 0);
    if (hlen == -2)
        return;
    if (hlen < 0 || status != 101) {
        char detail[128];
        snprintf(detail, sizeof(detail), "status %d", hlen < 0 ? 0 : status);
        if (hlen > 0 && (size_t)hlen < in->size) {
            json_t *j = json_loadb(in->bytes + hlen, in->size - (size_t)hlen, 0, NULL);
            const char *m = json_string_value(json_object_get(j, "message"));
            if (m != NULL)
                snprintf(detail, sizeof(detail), "status %d: %s", status, m);
            json_decref(j);
        }
        fail(call, "docker refused the attach (%s)", detail);
        return;
    }
    h2o_buffer_consume(&call->sock->input, (size_t)hlen);
    h2o_socket_read_stop(call->sock);
    h2o_socket_t *sock = call->sock;
    call->sock = NULL;
    sock->data = NULL;
    call->hijack_cb(call->data, sock, NULL);
    destroy(call);
}

static void
on_read(h2o_socket_t *sock, const char *err)
{
    sbx_docker_call_t *call = sock->data;
    bool eof = err != NULL;

    if (err != NULL && err != h2o_socket_error_closed) {
        fail(call, "docker connection failed: %s", err);
        return;
    }
    if (sock->input->size > MAX_RESPONSE) {
        fail(call, "%s", "docker's response is too large");
        return;
    }
    if (call->hijack_cb != NULL) {
        if (eof) {
            fail(call, "%s", "docker closed the attach connection");
            return;
        }
        hijack_complete(call);
        return;
    }
    try_complete(call, eof);
}

static void
on_written(h2o_socket_t *sock, const char *err)
{
    sbx_docker_call_t *call = sock->data;

    if (err != NULL)
        fail(call, "cannot send to docker: %s", err);
}

static void
on_connect(h2o_socket_t *sock, const char *err)
{
    sbx_docker_call_t *call = sock->data;
    h2o_iovec_t buf = h2o_iovec_init(call->request, call->request_len);

    if (err != NULL) {
        fail(call, "cannot connect to the docker socket: %s", err);
        return;
    }
    h2o_socket_write(sock, &buf, 1, on_written);
    h2o_socket_read_start(sock, on_read);
}

static sbx_docker_call_t *
start(const char *method, const char *path, const char *body, size_t blen, const char *extra_headers, uint64_t timeout_ms)
{
    const char *socket_path = sbx_worker.conf->docker_socket;
    sbx_docker_call_t *call = calloc(1, sizeof(*call));
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    size_t cap = strlen(method) + strlen(path) + blen + 256 + strlen(extra_headers);
    int n;

    if (call == NULL || (call->request = malloc(cap)) == NULL) {
        free(call);
        return NULL;
    }
    n = snprintf(call->request, cap,
                 "%s %s HTTP/1.1\r\nHost: docker\r\nUser-Agent: sandboxd/" SBX_VERSION "\r\n%s"
                 "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
                 method, path, extra_headers, blen);
    memcpy(call->request + n, body, blen);
    call->request_len = (size_t)n + blen;
    call->timeout_ms = timeout_ms;
    call->started = sbx_time_mono_ms();
    snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", socket_path);
    if ((call->sock = h2o_socket_connect(sbx_worker.loop, (struct sockaddr *)&sun, sizeof(sun), on_connect)) == NULL) {
        /* Report asynchronously: callers must never see their callback run inside the call. */
        snprintf(call->errbuf, sizeof(call->errbuf), "cannot connect to %s: %s", socket_path, strerror(errno));
        call->deferred_error = call->errbuf;
        sbx_timer_start(&call->timer, 0, on_deferred_error);
        return call;
    }
    call->sock->data = call;
    sbx_timer_start(&call->timer, timeout_ms, on_timeout);
    return call;
}

sbx_docker_call_t *
sbx_docker_request_text(const char *method, const char *path, const char *body, uint64_t timeout_ms, sbx_docker_cb cb, void *data)
{
    sbx_docker_call_t *call = start(method, path, body ? body : "", body ? strlen(body) : 0, "Connection: close\r\n", timeout_ms);

    if (call != NULL)
        call->cb = cb, call->data = data;
    return call;
}

sbx_docker_call_t *
sbx_docker_request(const char *method, const char *path, json_t *body, uint64_t timeout_ms, sbx_docker_cb cb, void *data)
{
    char *text = body != NULL ? json_dumps(body, JSON_COMPACT) : NULL;
    sbx_docker_call_t *call;

    if (body != NULL && text == NULL)
        return NULL;
    call = sbx_docker_request_text(method, path, text, timeout_ms, cb, data);
    free(text);
    return call;
}

sbx_docker_call_t *
sbx_docker_hijack(const char *path, uint64_t timeout_ms, sbx_docker_hijack_cb cb, void *data)
{
    sbx_docker_call_t *call = start("POST", path, "", 0, "Connection: Upgrade\r\nUpgrade: tcp\r\n", timeout_ms);

    if (call != NULL)
        call->hijack_cb = cb, call->data = data;
    return call;
}

void
sbx_docker_cancel(sbx_docker_call_t *call)
{
    if (call != NULL)
        destroy(call);
}

const char *
sbx_docker_message(const sbx_docker_result_t *res, char *buf, size_t len)
{
    json_t *j;
    const char *m;

    buf[0] = '\0';
    if (res->error != NULL) {
        snprintf(buf, len, "%s", res->error);
        return buf;
    }
    if ((j = json_loadb(res->body, res->len, 0, NULL)) != NULL) {
        if ((m = json_string_value(json_object_get(j, "message"))) != NULL)
            snprintf(buf, len, "%s", m);
        json_decref(j);
    }
    if (buf[0] == '\0')
        snprintf(buf, len, "docker answered %d", res->status);
    return buf;
}
