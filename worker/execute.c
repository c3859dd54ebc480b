/*
 * POST /api/v1/execute: a snippet runs once in a fresh container (same
 * hardening as a session) and its output comes back as JSON. The steps:
 * create, attach (before start, so no output is lost), start, read the
 * multiplexed stdout/stderr stream until it ends or a cap or the timeout
 * stops it, wait for the exit code, answer, remove the container.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "container.h"
#include "docker.h"
#include "log.h"
#include "reply.h"
#include "request.h"
#include "sandbox.h"
#include "sessions.h"
#include "timer.h"
#include "token.h"
#include "utf8.h"
#include "worker.h"

#define MAX_BODY (512 << 10) /* bytes of JSON: code and stdin, escaped */
#define MAX_STDIN (64 << 10) /* bytes */
#define STEP_TIMEOUT 30000   /* ms for each Docker call */

typedef struct run_s run_t;

typedef struct {
    run_t *run;
} run_ref_t;

typedef struct {
    char *buf;
    size_t len, cap;
} outbuf_t;

struct run_s {
    h2o_req_t *req; /* NULL once the client has gone */
    run_ref_t *ref;
    const sbx_language_t *lang;
    char id[SBX_TOKEN_LEN + 1];
    char container[72];
    h2o_socket_t *stream;
    outbuf_t out[2]; /* stdout, stderr */
    unsigned char hdr[8];
    size_t nhdr, frame_left;
    int frame_stream;
    uint64_t timeout_ms, started, ended;                     /* ms, monotonic */
    uint64_t t0, t_created, t_attached, t_started, t_waited; /* ms, monotonic: where the time goes, for the log */
    bool timed_out, truncated, killed;
    int exit_code;
    sbx_timer_t timer;
};

static void finish(run_t *run, int status, const char *error);

static void
on_dispose(void *p)
{
    run_ref_t *ref = p;

    if (ref->run != NULL)
        ref->run->req = NULL;
}

static void
on_removed(void *data, bool ok, const char *error)
{
    (void)data, (void)ok, (void)error;
    sbx_worker.inflight--;
}

/* Frees the run and removes its container, whatever state it is in. */
static void
run_free(run_t *run)
{
    sbx_timer_stop(&run->timer);
    if (run->stream != NULL)
        h2o_socket_close(run->stream);
    if (run->container[0] != '\0') {
        sbx_worker.inflight++;
        if (sbx_sandbox_remove(run->container, on_removed, NULL) != SBX_OK)
            sbx_worker.inflight--;
    }
    if (run->ref != NULL)
        run->ref->run = NULL;
    sbx_shm_lock(sbx_worker.shm);
    sbx_sessions_exec_done_locked(sbx_worker.shm);
    sbx_shm_unlock(sbx_worker.shm);
    free(run->out[0].buf);
    free(run->out[1].buf);
    sbx_worker.inflight--;
    free(run);
}

static json_t *
text(const outbuf_t *o)
{
    char *clean = malloc(o->len * 3 + 1);
    json_t *s;

    if (clean == NULL)
        return json_string("");
    s = json_stringn(clean, sbx_utf8_sanitize((const unsigned char *)o->buf, o->len, clean));
    free(clean);
    return s != NULL ? s : json_string("");
}

static void
finish(run_t *run, int status, const char *error)
{
    if (run->req != NULL) {
        if (status != 200)
            sbx_reply_error(run->req, status, "ServiceUnavailable", error, 5);
        else
            sbx_reply_json(run->req, 200,
                           json_pack("{s:o, s:o, s:i, s:I, s:b, s:b, s:s}", "stdout", text(&run->out[0]), "stderr",
                                     text(&run->out[1]), "exitCode", run->exit_code, "durationMs",
                                     (json_int_t)(run->ended - run->started), "timedOut", run->timed_out, "truncated",
                                     run->truncated, "language", run->lang->name));
    }
#define SPAN(a, b) (unsigned long long)((b) >= (a) && (a) ? (b) - (a) : 0)
    uint64_t now = sbx_time_mono_ms();
    sbx_log_info("execute finished",
                 "run=%.6s language=%s status=%d exit=%d timed_out=%d truncated=%d total_ms=%llu create_ms=%llu attach_ms=%llu "
                 "start_ms=%llu run_ms=%llu wait_ms=%llu",
                 run->id, run->lang->name, status, run->exit_code, run->timed_out, run->truncated, SPAN(run->t0, now),
                 SPAN(run->t0, run->t_created), SPAN(run->t_created, run->t_attached), SPAN(run->t_attached, run->t_started),
                 SPAN(run->t_started, run->ended), SPAN(run->ended, run->t_waited));
#undef SPAN
    run_free(run);
}

static void
fail(run_t *run, const char *what, const sbx_docker_result_t *res)
{
    char msg[200], why[300];

    snprintf(why, sizeof(why), "%s: %s", what, sbx_docker_message(res, msg, sizeof(msg)));
    sbx_log_error("execute failed", "run=%.6s error=%s", run->id, why);
    finish(run, 503, why);
}

static void
on_waited(void *data, const sbx_docker_result_t *res)
{
    run_t *run = data;
    json_t *j;

    if (res->status != 200 || (j = json_loadb(res->body, res->len, 0, NULL)) == NULL) {
        fail(run, "cannot read the exit code", res);
        return;
    }
    run->exit_code = (int)json_integer_value(json_object_get(j, "StatusCode"));
    run->t_waited = sbx_time_mono_ms();
    json_decref(j);
    finish(run, 200, NULL);
}

static void
wait_exit(run_t *run)
{
    char path[160];

    run->ended = sbx_time_mono_ms();
    sbx_timer_stop(&run->timer);
    if (run->stream != NULL) {
        h2o_socket_close(run->stream);
        run->stream = NULL;
    }
    snprintf(path, sizeof(path), SBX_DOCKER_API "/containers/%s/wait", run->container);
    if (sbx_docker_request("POST", path, NULL, STEP_TIMEOUT, on_waited, run) == NULL)
        finish(run, 503, "out of memory");
}

static void
on_killed(void *data, const sbx_docker_result_t *res)
{
    (void)data, (void)res; /* the stream's end (or the wait) tells the rest */
}

static void
kill_run(run_t *run)
{
    char path[160];

    if (run->killed)
        return;
    run->killed = true;
    snprintf(path, sizeof(path), SBX_DOCKER_API "/containers/%s/kill", run->container);
    sbx_docker_request("POST", path, NULL, STEP_TIMEOUT, on_killed, run);
}

static void
on_timeout(sbx_timer_t *timer)
{
    run_t *run = (run_t *)((char *)timer - offsetof(run_t, timer));

    run->timed_out = true;
    kill_run(run);
    /* If the stream is already gone (or never ends), go straight to the exit code. */
    if (run->stream == NULL)
        wait_exit(run);
    else
        sbx_timer_start(&run->timer, 5000, on_timeout);
}

/* Keeps what fits under the cap of one stream; past it, the run is over. */
static void
keep(run_t *run, int which, const char *data, size_t len)
{
    outbuf_t *o = &run->out[which];
    size_t cap = sbx_worker.conf->execute_output, room = cap > o->len ? cap - o->len : 0;

    if (len > room) {
        run->truncated = true;
        len = room;
    }
    if (o->len + len > o->cap) {
        size_t ncap = o->cap ? o->cap : 4096;
        while (ncap < o->len + len)
            ncap *= 2;
        char *p = realloc(o->buf, ncap);
        if (p == NULL)
            return;
        o->buf = p, o->cap = ncap;
    }
    memcpy(o->buf + o->len, data, len);
    o->len += len;
}

/* Docker's multiplexed stream: 8-byte headers [stream, 0, 0, 0, size (big-endian)] before each chunk. */
static void
demux(run_t *run, const char *p, size_t len)
{
    while (len > 0) {
        if (run->frame_left == 0) {
            size_t take = 8 - run->nhdr < len ? 8 - run->nhdr : len;
            memcpy(run->hdr + run->nhdr, p, take);
            run->nhdr += take, p += take, len -= take;
            if (run->nhdr < 8)
                return;
            run->nhdr = 0;
            run->frame_stream = run->hdr[0] == 2 ? 1 : 0;
            run->frame_left = (size_t)run->hdr[4] << 24 | run->hdr[5] << 16 | run->hdr[6] << 8 | run->hdr[7];
            continue;
        }
        size_t take = run->frame_left < len ? run->frame_left : len;
        keep(run, run->frame_stream, p, take);
        run->frame_left -= take, p += take, len -= take;
    }
}

static void
on_stream(h2o_socket_t *sock, const char *err)
{
    run_t *run = sock->data;

    if (err != NULL) { /* the program exited (or was killed): the stream ends */
        wait_exit(run);
        return;
    }
    demux(run, sock->input->bytes, sock->input->size);
    h2o_buffer_consume(&sock->input, sock->input->size);
    if (run->truncated && !run->killed) {
        /* An endless printer: stop it now rather than read and drop output until the timeout. */
        kill_run(run);
    }
}

static void
on_started(void *data, const sbx_docker_result_t *res)
{
    run_t *run = data;

    if (res->status != 204 && res->status != 304) {
        fail(run, "cannot start the sandbox", res);
        return;
    }
    run->started = run->t_started = sbx_time_mono_ms();
    sbx_timer_start(&run->timer, run->timeout_ms, on_timeout);
    h2o_socket_read_start(run->stream, on_stream);
    if (run->stream->input->size > 0)
        on_stream(run->stream, NULL);
}

static void
on_attached(void *data, h2o_socket_t *sock, const char *error)
{
    run_t *run = data;
    char path[160];

    if (error != NULL) {
        sbx_docker_result_t res = {0, error, "", 0, 0};
        fail(run, "cannot attach to the sandbox", &res);
        return;
    }
    run->stream = sock;
    sock->data = run;
    run->t_attached = sbx_time_mono_ms();
    snprintf(path, sizeof(path), SBX_DOCKER_API "/containers/%s/start", run->container);
    if (sbx_docker_request("POST", path, NULL, STEP_TIMEOUT, on_started, run) == NULL)
        finish(run, 503, "out of memory");
}

static void
on_created(void *data, const sbx_docker_result_t *res)
{
    run_t *run = data;
    const char *id;
    char path[200];
    json_t *j;

    if (res->status != 201 || (j = json_loadb(res->body, res->len, 0, NULL)) == NULL) {
        fail(run, "cannot create the sandbox", res);
        return;
    }
    if ((id = json_string_value(json_object_get(j, "Id"))) != NULL)
        snprintf(run->container, sizeof(run->container), "%s", id);
    run->t_created = sbx_time_mono_ms();
    json_decref(j);
    snprintf(path, sizeof(path), SBX_DOCKER_API "/containers/%s/attach?stream=1&stdout=1&stderr=1", run->container);
    if (sbx_docker_hijack(path, STEP_TIMEOUT, on_attached, run) == NULL)
        finish(run, 503, "out of memory");
}

int
sbx_api_execute(h2o_req_t *req)
{
    const sbx_conf_t *conf = sbx_worker.conf;
    json_t *body, *jcode, *jlang, *jstdin, *jtimeout;
    const sbx_language_t *lang = NULL;
    const char *why = NULL;
    char ip[SBX_IP_LEN], msg[256];
    unsigned retry;
    json_error_t jerr;
    run_t *run;
    int rc;

    if (!conf->execute_enabled)
        return sbx_reply_error(req, 404, "NotFound", "Code execution is switched off on this server", 0);
    if (!sbx_request_authorized(req, NULL))
        return sbx_reply_error(req, 401, "Unauthorized", "Missing or invalid API key", 0);
    if (req->entity.len > MAX_BODY)
        return sbx_reply_error(req, 413, "PayloadTooLarge", "Request body is too large", 0);
    if (req->entity.len == 0 || (body = json_loadb(req->entity.base, req->entity.len, 0, &jerr)) == NULL) {
        snprintf(msg, sizeof(msg), "Invalid JSON body: %s", req->entity.len == 0 ? "empty" : jerr.text);
        return sbx_reply_error(req, 400, "BadRequest", msg, 0);
    }
    jcode = json_object_get(body, "code");
    jlang = json_object_get(body, "language");
    jstdin = json_object_get(body, "stdin");
    jtimeout = json_object_get(body, "timeoutMs");
    if (!json_is_object(body) || !json_is_string(jcode) || json_string_length(jcode) == 0)
        why = "Missing or invalid code: a non-empty string is required";
    else if (jlang != NULL && !json_is_null(jlang) && !json_is_string(jlang))
        why = "Invalid language: must be a string";
    else if ((lang = sbx_conf_language(conf, json_string_value(jlang))) == NULL)
        why = "Unknown language";
    else if (jstdin != NULL && !json_is_null(jstdin) && (!json_is_string(jstdin) || json_string_length(jstdin) > MAX_STDIN))
        why = "Invalid stdin: a string of at most 64 KiB";
    else if (jtimeout != NULL && !json_is_null(jtimeout) &&
             (!json_is_number(jtimeout) || json_number_value(jtimeout) < 1 ||
              json_number_value(jtimeout) > (double)conf->execute_max_timeout))
        why = "Invalid timeoutMs: out of range";
    else if (strlen(json_string_value(jcode)) != json_string_length(jcode) ||
             (json_is_string(jstdin) && strlen(json_string_value(jstdin)) != json_string_length(jstdin)))
        why = "code and stdin cannot contain NUL characters";
    if (why == NULL && json_string_length(jcode) > conf->execute_max_code) {
        json_decref(body);
        snprintf(msg, sizeof(msg), "Code is larger than %llu bytes", (unsigned long long)conf->execute_max_code);
        return sbx_reply_error(req, 413, "PayloadTooLarge", msg, 0);
    }
    if (why != NULL) {
        json_decref(body);
        return sbx_reply_error(req, 400, "BadRequest", why, 0);
    }

    sbx_request_client_ip(req, ip);
    sbx_shm_lock(sbx_worker.shm);
    rc = sbx_sessions_exec_admit_locked(sbx_worker.shm, ip, conf->execute_per_ip_per_minute, conf->execute_concurrency,
                                        sbx_time_wall_ms(), &retry);
    sbx_shm_unlock(sbx_worker.shm);
    if (rc != SBX_OK) {
        json_decref(body);
        if (rc == SBX_DENY_CAPACITY)
            return sbx_reply_error(req, 503, "ServiceUnavailable", "Too many runs at once; try again shortly", retry);
        snprintf(msg, sizeof(msg), "Too many runs from your address (at most %u per minute)", conf->execute_per_ip_per_minute);
        return sbx_reply_error(req, 429, "TooManyRequests", msg, retry);
    }

    if ((run = calloc(1, sizeof(*run))) == NULL || sbx_token_new(run->id) != SBX_OK) {
        free(run);
        json_decref(body);
        sbx_shm_lock(sbx_worker.shm);
        sbx_sessions_exec_done_locked(sbx_worker.shm);
        sbx_shm_unlock(sbx_worker.shm);
        return sbx_reply_error(req, 503, "ServiceUnavailable", "Out of resources", 5);
    }
    run->req = req;
    run->lang = lang;
    run->t0 = sbx_time_mono_ms();
    sbx_shm_count(sbx_worker.shm, executes);
    run->timeout_ms = json_is_number(jtimeout) ? (uint64_t)json_number_value(jtimeout) : conf->execute_timeout;
    run->ref = h2o_mem_alloc_shared(&req->pool, sizeof(run_ref_t), on_dispose);
    run->ref->run = run;
    sbx_worker.inflight++;
    json_t *spec = sbx_container_execute_spec(conf, lang, json_string_value(jcode),
                                              json_is_string(jstdin) ? json_string_value(jstdin) : "", run->id, sbx_time_wall_ms());
    json_decref(body);
    if (spec == NULL ||
        sbx_docker_request("POST", SBX_DOCKER_API "/containers/create", spec, STEP_TIMEOUT, on_created, run) == NULL)
        finish(run, 503, "out of memory");
    json_decref(spec);
    return 0;
}
