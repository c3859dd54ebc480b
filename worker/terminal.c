/*
 * WebSocket terminals: the upgrade, the attach to the session's shell,
 * the periodic checks (takeover, session end, pings, flow control) and
 * every way a terminal ends. Output and input live in term_output.c and
 * term_input.c.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "reply.h"
#include "request.h"
#include "sessions.h"
#include "terminal.h"
#include "worker.h"

#define ATTACH_TIMEOUT 10000 /* ms */
#define TICK_MS 250
#define PAUSED_TICK_MS 5    /* while a close waits for the messages before it */
#define CLOSE_GRACE_MS 2000 /* after our close frame, how long the browser has to answer it */
#define INIT_TIMEOUT 30000  /* ms for a session's init commands */

static void on_tick(sbx_timer_t *timer);

bool
term_buf_append(char **buf, size_t *len, size_t *cap, const char *data, size_t n, size_t min_cap)
{
    if (n == 0) /* nothing to add, and *buf may not exist yet: memcpy to NULL is undefined even for 0 bytes */
        return true;
    if (*len + n > *cap) {
        size_t c = *cap ? *cap : min_cap;
        while (c < *len + n)
            c *= 2;
        char *p = realloc(*buf, c);
        if (p == NULL)
            return false;
        *buf = p, *cap = c;
    }
    memcpy(*buf + *len, data, n);
    *len += n;
    return true;
}

static void
term_destroy(sbx_timer_t *timer)
{
    sbx_terminal_t *t = (sbx_terminal_t *)((char *)timer - offsetof(sbx_terminal_t, reaper));
    sbx_session_t *s = sbx_sessions_slot(sbx_worker.shm, t->slot);

    sbx_timer_stop(&t->tick);
    sbx_timer_stop(&t->flush);
    sbx_docker_cancel(t->attach);
    if (t->resizing)
        sbx_docker_cancel(t->resize_call);
    if (t->docker != NULL)
        h2o_socket_close(t->docker);
    if (t->ws != NULL)
        h2o_websocket_close(t->ws);
    sbx_shm_lock(sbx_worker.shm);
    if (strcmp(s->id, t->id) == 0 && s->terminal_gen == t->gen)
        s->terminal_pid = 0;
    sbx_shm_unlock(sbx_worker.shm);
    sbx_log_info("terminal closed", "session=%s", t->rid);
    free(t->inbuf);
    free(t->writing);
    free(t->outbuf);
    free(t->held);
    sbx_worker.terminals--;
    sbx_shm_add(sbx_worker.shm, ws_open, -1);
    free(t);
}

/* Frees the terminal on the next loop turn, outside whatever callback we are in. */
static void
term_schedule_destroy(sbx_terminal_t *t)
{
    t->destroying = true;
    t->state = TERM_CLOSING;
    sbx_timer_stop(&t->tick);
    sbx_timer_stop(&t->flush);
    if (t->docker != NULL)
        h2o_socket_read_stop(t->docker);
    sbx_timer_start(&t->reaper, 0, term_destroy);
}

void
term_flush(sbx_terminal_t *t)
{
    /* The socket is there once the 101 has been sent; before that, h2o flushes on its own. */
    if (t->ws->sock == NULL || t->in_callback)
        return;
    if (!t->untracked) {
        /* A terminal sits idle between keystrokes: a draining worker must not take it for an idle HTTP connection. */
        sbx_worker_untrack(t->ws->sock);
        t->untracked = true;
    }
    h2o_websocket_proceed(t->ws);
}

void
term_send_json(sbx_terminal_t *t, json_t *msg)
{
    char *text = json_dumps(msg, JSON_COMPACT);
    struct wslay_event_msg m;

    json_decref(msg);
    if (text == NULL)
        return;
    m.opcode = WSLAY_TEXT_FRAME;
    m.msg = (const uint8_t *)text;
    m.msg_length = strlen(text);
    wslay_event_queue_msg(t->ws->ws_ctx, &m); /* wslay copies the message */
    free(text);
    term_flush(t);
}

/*
 * wslay sends control frames ahead of queued data and drops data once a
 * close is out, so the close waits until the messages before it (the error
 * that explains it, the last output) have left the queue.
 */
static void
queue_close_when_sent(sbx_terminal_t *t)
{
    /* The shell's last words (still buffered here) go out before the close, too. */
    if (t->close_code == 0 || wslay_event_get_queued_msg_count(t->ws->ws_ctx) > 0 || t->outlen > 0)
        return;
    wslay_event_queue_close(t->ws->ws_ctx, t->close_code, (const uint8_t *)t->close_reason, strlen(t->close_reason));
    t->close_code = 0;
    term_flush(t);
}

void
term_close(sbx_terminal_t *t, uint16_t code, const char *reason, const char *error)
{
    if (t->state == TERM_CLOSING)
        return;
    if (error != NULL)
        term_send_json(t, json_pack("{s:s, s:s}", "type", "error", "message", error));
    t->state = TERM_CLOSING;
    if (t->docker != NULL)
        h2o_socket_read_stop(t->docker);
    t->close_code = code;
    t->close_reason = reason;
    t->force_close_at = sbx_time_mono_ms() + CLOSE_GRACE_MS;
    queue_close_when_sent(t);
    sbx_timer_start(&t->tick, PAUSED_TICK_MS, on_tick);
}

/* True while this terminal is the session's current one and the session is alive. */
bool
term_current(sbx_terminal_t *t)
{
    sbx_session_t *s = sbx_sessions_slot(sbx_worker.shm, t->slot);

    return __atomic_load_n(&s->terminal_gen, __ATOMIC_RELAXED) == t->gen && s->state == SBX_SESSION_RUNNING &&
           memcmp(s->id, t->id, SBX_TOKEN_LEN) == 0;
}

void
term_init_finished(sbx_terminal_t *t, bool success)
{
    if (t->state != TERM_INIT && t->state != TERM_ATTACHING)
        return;
    t->state = TERM_READY;
    term_send_json(t, json_pack("{s:s, s:b}", "type", "initComplete", "success", success));
    if (t->nheld > 0) {
        term_write(t, t->held, t->nheld);
        free(t->held);
        t->held = NULL, t->nheld = t->heldcap = 0;
    }
}

static void
on_tick(sbx_timer_t *timer)
{
    sbx_terminal_t *t = (sbx_terminal_t *)((char *)timer - offsetof(sbx_terminal_t, tick));
    sbx_session_t *s = sbx_sessions_slot(sbx_worker.shm, t->slot);
    uint64_t now = sbx_time_mono_ms(), ping = sbx_worker.conf->ws_ping_interval;

    if (t->state == TERM_CLOSING) {
        if (now >= t->force_close_at) {
            term_schedule_destroy(t);
            return;
        }
        queue_close_when_sent(t);
        sbx_timer_start(timer, t->close_code != 0 ? PAUSED_TICK_MS : TICK_MS, on_tick);
        return;
    }
    if (!term_current(t)) {
        bool taken = memcmp(s->id, t->id, SBX_TOKEN_LEN) == 0 && s->state == SBX_SESSION_RUNNING;
        term_close(t, 1000, taken ? "Session opened in another terminal" : "Session ended",
                   taken ? "This session was opened in another terminal" : "The session has ended");
        return;
    }
    if (sbx_worker.draining && now >= sbx_worker.drain_deadline) {
        term_close(t, 1001, "Server restarting", NULL);
        return;
    }
    if (now - t->last_rx > 3 * ping) {
        sbx_log_info("terminal client vanished", "session=%s", t->rid);
        term_close(t, 1001, "Ping timeout", NULL);
        return;
    }
    if (now - t->last_ping >= ping) {
        struct wslay_event_msg m = {WSLAY_PING, NULL, 0};
        t->last_ping = now;
        wslay_event_queue_msg(t->ws->ws_ctx, &m);
        term_flush(t);
    }
    if (t->state == TERM_INIT && now >= t->init_deadline) {
        sbx_log_warn("init commands timed out", "session=%s", t->rid);
        term_init_finished(t, false);
        term_output_resume(t);
    }
    sbx_timer_start(timer, TICK_MS, on_tick);
}

/* Runs when the WebSocket is gone: the peer closed, answered our close, or the socket failed. */
void
term_on_ws_closed(sbx_terminal_t *t)
{
    if (!t->destroying)
        term_schedule_destroy(t);
}

static void
on_attached(void *data, h2o_socket_t *sock, const char *error)
{
    sbx_terminal_t *t = data;
    sbx_session_t *s = sbx_sessions_slot(sbx_worker.shm, t->slot);
    char init[sizeof(s->init)];
    bool run_init = false;

    t->attach = NULL;
    if (error != NULL) {
        sbx_log_error("terminal attach failed", "session=%s error=%s", t->rid, error);
        term_close(t, 1011, "Attach failed", "Could not attach to the sandbox");
        return;
    }
    t->docker = sock;
    sock->data = t;
    if (t->state == TERM_CLOSING)
        return;
    term_resize(t, t->rows, t->cols);
    sbx_shm_lock(sbx_worker.shm);
    if (term_current(t) && !s->init_done) {
        /*
         * The shell printed its first prompt before anyone attached, and that output is gone. Running the
         * hidden init step even with no commands (":") makes it print a fresh prompt for the user.
         */
        s->init_done = 1;
        snprintf(init, sizeof(init), "%s", s->init[0] != '\0' ? s->init : ":\n");
        run_init = true;
    }
    sbx_shm_unlock(sbx_worker.shm);
    term_replay(t);
    if (run_init)
        term_init_run(t, init, INIT_TIMEOUT);
    else
        term_init_finished(t, true);
    term_output_start(t);
}

static int
refuse(h2o_req_t *req, int status, const char *error, const char *message)
{
    return sbx_reply_error(req, status, error, message, 0);
}

static unsigned
clamp_query(h2o_req_t *req, const char *name, unsigned lo, unsigned hi, unsigned dflt)
{
    char v[16];
    unsigned long n;

    if (!sbx_request_query(req, name, v, sizeof(v)))
        return dflt;
    n = strtoul(v, NULL, 10);
    return n < lo ? lo : n > hi ? hi : (unsigned)n;
}

int
sbx_terminal_open(h2o_req_t *req, const char *id)
{
    const char *client_key;
    char origin[512], key[300], path[160];
    sbx_session_t *s;
    sbx_terminal_t *t;
    uint64_t now = sbx_time_wall_ms();
    int slot;
    bool live = false;

    if (h2o_is_websocket_handshake(req, &client_key) != 0 || client_key == NULL)
        return refuse(req, 400, "BadRequest", "Expected a WebSocket upgrade");
    /* A browser always sends Origin on a WebSocket; a page on another origin must be allowed. */
    if (sbx_request_header(req, "origin", origin, sizeof(origin)) && !sbx_origin_allowed(origin, strlen(origin)))
        return refuse(req, 403, "Forbidden", "Origin not allowed");
    /* A browser cannot set headers on a WebSocket: the key may come in the query. */
    if (!sbx_request_authorized(req, sbx_request_query(req, "api_key", key, sizeof(key)) ? key : NULL))
        return refuse(req, 401, "Unauthorized", "Missing or invalid API key");
    if ((t = calloc(1, sizeof(*t))) == NULL)
        return refuse(req, 503, "ServiceUnavailable", "Out of resources");

    sbx_shm_lock(sbx_worker.shm);
    if ((slot = sbx_sessions_find_locked(sbx_worker.shm, id)) >= 0) {
        s = sbx_sessions_slot(sbx_worker.shm, slot);
        live = s->state == SBX_SESSION_RUNNING && now < s->expires && now - s->last_active < sbx_worker.conf->idle_timeout;
        if (live) {
            t->gen = ++s->terminal_gen; /* the terminal before this one, if any, closes on its next tick */
            s->terminal_pid = (int32_t)getpid();
            s->last_active = now;
            memcpy(t->container, s->container, sizeof(t->container));
        }
    }
    sbx_shm_unlock(sbx_worker.shm);
    if (!live) {
        free(t);
        return refuse(req, 404, slot >= 0 ? "Expired" : "NotFound", slot >= 0 ? "Session has expired" : "Session not found");
    }

    t->slot = slot;
    memcpy(t->id, id, sizeof(t->id));
    sbx_token_redact(id, t->rid, sizeof(t->rid));
    t->rows = clamp_query(req, "rows", 2, 300, 24);
    t->cols = clamp_query(req, "cols", 2, 1000, 80);
    t->last_rx = t->last_ping = sbx_time_mono_ms();
    t->state = TERM_ATTACHING;
    t->ws = h2o_upgrade_to_websocket(req, client_key, t, term_on_message);
    term_install_frame_check(t);
    sbx_worker.terminals++;
    sbx_shm_count(sbx_worker.shm, ws_opened);
    sbx_shm_add(sbx_worker.shm, ws_open, 1);
    term_send_json(t, json_pack("{s:s, s:s}", "type", "connected", "sessionId", id));
    snprintf(path, sizeof(path), SBX_DOCKER_API "/containers/%s/attach?stream=1&stdin=1&stdout=1&stderr=1", t->container);
    if ((t->attach = sbx_docker_hijack(path, ATTACH_TIMEOUT, on_attached, t)) == NULL)
        term_close(t, 1011, "Out of resources", "Could not attach to the sandbox");
    sbx_timer_start(&t->tick, TICK_MS, on_tick);
    sbx_log_info("terminal opened", "session=%s rows=%u cols=%u", t->rid, t->rows, t->cols);
    return 0;
}
