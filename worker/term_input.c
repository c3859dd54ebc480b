/*
 * Browser -> container: the toolkata client's messages, the size limit of
 * an input frame, the commands-per-minute limit, and the writer that feeds
 * the attach socket one buffer at a time.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "registry.h"
#include "sessions.h"
#include "terminal.h"
#include "worker.h"

#define MAX_VIOLATIONS 10        /* refused inputs before a flooding client is cut off (1008) */
#define WSLAY_BACKSTOP (1 << 20) /* wslay's own message limit: far above ours, so our check speaks first */

static void write_next(sbx_terminal_t *t);

static void
on_written(h2o_socket_t *sock, const char *err)
{
    sbx_terminal_t *t = sock->data;

    free(t->writing);
    t->writing = NULL;
    if (err != NULL) {
        term_close(t, 1011, "Container stream failed", "Lost the connection to the sandbox");
        return;
    }
    write_next(t);
}

static void
write_next(sbx_terminal_t *t)
{
    h2o_iovec_t buf;

    if (t->writing != NULL || t->inlen == 0 || t->docker == NULL || t->state == TERM_CLOSING)
        return;
    /* Hand the whole buffer to the socket and start a fresh one for what comes next. */
    t->writing = t->inbuf;
    buf = h2o_iovec_init(t->inbuf, t->inlen);
    t->inbuf = NULL;
    t->inlen = t->incap = 0;
    h2o_socket_write(t->docker, &buf, 1, on_written);
}

void
term_write(sbx_terminal_t *t, const char *data, size_t len)
{
    if (t->inlen + len > TERM_INPUT_MAX) {
        term_close(t, 1008, "Input flood", "Input is arriving faster than the sandbox reads it");
        return;
    }
    if (term_buf_append(&t->inbuf, &t->inlen, &t->incap, data, len, 1024))
        write_next(t);
}

/* Enter presses in data: "\r", "\n" and "\r\n" each count once. */
static unsigned
count_commands(const char *data, size_t len)
{
    unsigned n = 0;

    for (size_t i = 0; i < len; i++)
        if (data[i] == '\r' || (data[i] == '\n' && (i == 0 || data[i - 1] != '\r')))
            n++;
    return n;
}

/* Takes n commands from the session's bucket; false when it holds too few. */
static bool
take_commands(sbx_terminal_t *t, unsigned n)
{
    sbx_session_t *s = sbx_sessions_slot(sbx_worker.shm, t->slot);
    double per_min = sbx_worker.conf->commands_per_minute;
    uint64_t now = sbx_time_mono_ms();

    if (s->cmd_refill == 0) {
        s->cmd_tokens = per_min;
    } else {
        s->cmd_tokens += (double)(now - s->cmd_refill) * per_min / 60000.0;
        if (s->cmd_tokens > per_min)
            s->cmd_tokens = per_min;
    }
    s->cmd_refill = now;
    if (s->cmd_tokens < n)
        return false;
    s->cmd_tokens -= n;
    return true;
}

static void
input(sbx_terminal_t *t, const char *data, size_t len)
{
    unsigned n = count_commands(data, len);
    char msg[128];

    if (n > 0 && !take_commands(t, n)) {
        snprintf(msg, sizeof(msg), "Too many commands: at most %u per minute. This input was not sent.",
                 sbx_worker.conf->commands_per_minute);
        if (++t->violations >= MAX_VIOLATIONS)
            term_close(t, 1008, "Rate limit", msg);
        else
            term_send_json(t, json_pack("{s:s, s:s}", "type", "error", "message", msg));
        return;
    }
    sbx_registry_activity(t->slot);
    sbx_shm_add(sbx_worker.shm, ws_bytes_in, len);
    if (t->state == TERM_ATTACHING || t->state == TERM_INIT) {
        /* Typed too early: it would run before the init commands and its echo would be hidden with theirs. */
        if (t->nheld + len > TERM_INPUT_MAX || !term_buf_append(&t->held, &t->nheld, &t->heldcap, data, len, 1024))
            term_close(t, 1008, "Input flood", "Input is arriving faster than the sandbox reads it");
        return;
    }
    term_write(t, data, len);
}

void term_resize(sbx_terminal_t *t, unsigned rows, unsigned cols);

static void
on_resized(void *data, const sbx_docker_result_t *res)
{
    sbx_terminal_t *t = data;
    char msg[200];

    t->resizing = false;
    if (res->status != 200 && res->status != 201)
        sbx_log_warn("terminal resize failed", "session=%s error=%s", t->rid, sbx_docker_message(res, msg, sizeof(msg)));
    if (t->want_rows != 0 && !t->destroying)
        term_resize(t, t->want_rows, t->want_cols);
}

void
term_resize(sbx_terminal_t *t, unsigned rows, unsigned cols)
{
    char path[200];

    /* One call at a time; while one is out, only the newest size is remembered. */
    if (t->resizing) {
        t->want_rows = rows, t->want_cols = cols;
        return;
    }
    t->want_rows = t->want_cols = 0;
    t->rows = rows, t->cols = cols;
    snprintf(path, sizeof(path), SBX_DOCKER_API "/containers/%s/resize?h=%u&w=%u", t->container, rows, cols);
    /* The terminal may be freed before Docker answers: the reply must not outlive it (see term_destroy). */
    if ((t->resize_call = sbx_docker_request("POST", path, NULL, 5000, on_resized, t)) != NULL)
        t->resizing = true;
}

static bool
number_in(json_t *v, double lo, double hi, unsigned *out)
{
    if (!json_is_number(v) || json_number_value(v) < lo || json_number_value(v) > hi)
        return false;
    *out = (unsigned)json_number_value(v);
    return true;
}

/* A text frame: a JSON message of a known type, or raw input. */
static void
on_text(sbx_terminal_t *t, const char *data, size_t len)
{
    json_t *msg, *v;
    const char *type;
    unsigned rows, cols;

    if (len == 0 || data[0] != '{' || (msg = json_loadb(data, len, 0, NULL)) == NULL) {
        input(t, data, len);
        return;
    }
    type = json_string_value(json_object_get(msg, "type"));
    if (type != NULL && strcmp(type, "input") == 0 && json_is_string(v = json_object_get(msg, "data"))) {
        input(t, json_string_value(v), json_string_length(v));
    } else if (type != NULL && strcmp(type, "resize") == 0) {
        if (number_in(json_object_get(msg, "rows"), 1, 300, &rows) && number_in(json_object_get(msg, "cols"), 1, 1000, &cols))
            term_resize(t, rows, cols);
        else
            term_send_json(
                t, json_pack("{s:s, s:s}", "type", "error", "message", "Invalid resize: rows must be 1..300 and cols 1..1000"));
    } else if (type != NULL && strcmp(type, "init") == 0 && json_is_array(v = json_object_get(msg, "commands"))) {
        char lines[2048];
        size_t o = 0, i;
        json_t *c;
        unsigned timeout = 30000;
        bool ok = t->state == TERM_READY;
        number_in(json_object_get(msg, "timeout"), 1, 300000, &timeout);
        json_array_foreach(v, i, c)
        {
            const char *cmd = json_string_value(c);
            size_t n = cmd ? strlen(cmd) : 0;
            ok = ok && cmd != NULL && memchr(cmd, '\n', n) == NULL && o + n + 2 < sizeof(lines);
            if (ok) {
                memcpy(lines + o, cmd, n);
                o += n;
                lines[o++] = '\n';
            }
        }
        lines[o] = '\0';
        if (!ok)
            term_send_json(t, json_pack("{s:s, s:b}", "type", "initComplete", "success", 0));
        else if (o == 0)
            term_send_json(t, json_pack("{s:s, s:b}", "type", "initComplete", "success", 1));
        else
            term_init_run(t, lines, timeout);
    } else {
        input(t, data, len); /* JSON of no known type is raw input, as the toolkata server treats it */
    }
    json_decref(msg);
}

void
term_on_message(h2o_websocket_conn_t *ws, const struct wslay_event_on_msg_recv_arg *arg)
{
    sbx_terminal_t *t = ws->data;

    if (arg == NULL) {
        term_on_ws_closed(t);
        return;
    }
    t->last_rx = sbx_time_mono_ms();
    if (t->state == TERM_CLOSING)
        return;
    t->in_callback = true;
    if (arg->opcode == WSLAY_TEXT_FRAME)
        on_text(t, (const char *)arg->msg, arg->msg_length);
    else if (arg->opcode == WSLAY_BINARY_FRAME)
        input(t, (const char *)arg->msg, arg->msg_length);
    t->in_callback = false;
}

/* Sees each frame's header before its payload: an oversized message is refused with our own words. */
static void
on_frame_start(wslay_event_context_ptr ctx, const struct wslay_event_on_frame_recv_start_arg *arg, void *user_data)
{
    h2o_websocket_conn_t *ws = user_data;
    sbx_terminal_t *t = ws->data;
    uint64_t max = sbx_worker.conf->ws_max_message;
    char msg[96];

    (void)ctx;
    if (arg->opcode >= 0x8) /* control frames: ping, pong, close */
        return;
    t->frame_total = arg->opcode == 0x0 ? t->frame_total + arg->payload_length : arg->payload_length;
    if (t->frame_total > max && t->state != TERM_CLOSING) {
        snprintf(msg, sizeof(msg), "Message too large: at most %llu bytes", (unsigned long long)max);
        t->in_callback = true;
        term_close(t, 1009, "Message too big", msg);
        t->in_callback = false;
    }
}

void
term_install_frame_check(sbx_terminal_t *t)
{
    struct wslay_event_callbacks cbs = t->ws->ws_callbacks;

    cbs.on_frame_recv_start_callback = on_frame_start;
    wslay_event_config_set_callbacks(t->ws->ws_ctx, &cbs);
    wslay_event_config_set_max_recv_msg_length(t->ws->ws_ctx, WSLAY_BACKSTOP);
}
