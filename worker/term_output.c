/*
 * Container -> browser: terminal output as WebSocket frames that never
 * split a UTF-8 sequence (the toolkata client decodes each frame on its
 * own), a copy into the session's replay ring for repaint on reconnect,
 * hidden output while init commands run, and flow control: when the
 * browser falls behind (TERM_HIGH_WATER waiting) we stop reading the
 * container, so memory stays bounded and the container's writes block.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "log.h"
#include "registry.h"
#include "sessions.h"
#include "terminal.h"
#include "utf8.h"
#include "worker.h"

/* Queues up to len bytes of buf as one frame that ends on a UTF-8 boundary; returns the bytes taken. */
static size_t
queue_frame(sbx_terminal_t *t, const unsigned char *buf, size_t len)
{
    size_t n = sbx_utf8_whole_prefix(buf, len < TERM_FRAME_MAX ? len : TERM_FRAME_MAX);

    if (n == 0 && len >= 4)
        n = len < TERM_FRAME_MAX ? len : TERM_FRAME_MAX; /* not UTF-8 at all: send it as it is */
    if (n == 0)
        return 0;
    /* Text frames carry valid UTF-8 only; other bytes go as binary, whole sequences still kept together. */
    struct wslay_event_msg m = {sbx_utf8_valid(buf, n) ? WSLAY_TEXT_FRAME : WSLAY_BINARY_FRAME, buf, n};
    wslay_event_queue_msg(t->ws->ws_ctx, &m); /* wslay copies it */
    return n;
}

static void
on_flush(sbx_timer_t *timer)
{
    term_output_push((sbx_terminal_t *)((char *)timer - offsetof(sbx_terminal_t, flush)));
}

/* Moves buffered output into a frame when wslay has none waiting, and reads the container again when there is room. */
void
term_output_push(sbx_terminal_t *t)
{
    size_t n;

    if (t->state == TERM_CLOSING && t->close_code == 0)
        return;
    if (t->outlen > 0 && wslay_event_get_queued_msg_count(t->ws->ws_ctx) == 0 &&
        (n = queue_frame(t, (unsigned char *)t->outbuf, t->outlen)) > 0) {
        memmove(t->outbuf, t->outbuf + n, t->outlen - n);
        t->outlen -= n;
        term_flush(t);
    }
    term_output_resume(t);
    /* Output still waits: look again soon, not on the next read (there may be none while paused). */
    if (t->outlen > 0 && !h2o_timeout_is_linked(&t->flush.entry) && !t->destroying)
        sbx_timer_start(&t->flush, TERM_FLUSH_MS, on_flush);
}

/* Adds bytes for the browser; a frame goes out at once when the way is clear. */
static void
emit(sbx_terminal_t *t, const char *data, size_t len)
{
    if (term_buf_append(&t->outbuf, &t->outlen, &t->outcap, data, len, 16384))
        term_output_push(t);
}

static void
ring_append(sbx_terminal_t *t, const char *data, size_t len)
{
    sbx_session_t *s = sbx_sessions_slot(sbx_worker.shm, t->slot);
    char *ring = sbx_sessions_replay(sbx_worker.shm, t->slot);
    uint32_t size = sbx_worker.shm->replay_size, head = s->replay_head, held = s->replay_len;

    if (len >= size) {
        data += len - size;
        len = size;
    }
    size_t first = size - head < len ? size - head : len;
    memcpy(ring + head, data, first);
    memcpy(ring, data + first, len - first);
    head = (uint32_t)((head + len) % size);
    held = held + len > size ? size : (uint32_t)(held + len);
    __atomic_store_n(&s->replay_head, head, __ATOMIC_RELEASE);
    __atomic_store_n(&s->replay_len, held, __ATOMIC_RELEASE);
}

static void
forward(sbx_terminal_t *t, const char *data, size_t len)
{
    ring_append(t, data, len);
    sbx_shm_add(sbx_worker.shm, ws_bytes_out, len);
    emit(t, data, len);
}

void
term_replay(sbx_terminal_t *t)
{
    static const char clear[] = "\x1b[H\x1b[2J\x1b[3J"; /* home, clear screen and scrollback: repaint from scratch */
    sbx_session_t *s = sbx_sessions_slot(sbx_worker.shm, t->slot);
    const char *ring = sbx_sessions_replay(sbx_worker.shm, t->slot);
    uint32_t size = sbx_worker.shm->replay_size, head = __atomic_load_n(&s->replay_head, __ATOMIC_ACQUIRE),
             held = __atomic_load_n(&s->replay_len, __ATOMIC_ACQUIRE);
    char *copy;
    size_t start = 0;

    if (held == 0 || (copy = malloc(held)) == NULL)
        return;
    uint32_t from = (head + size - held) % size, first = size - from < held ? size - from : held;
    memcpy(copy, ring + from, first);
    memcpy(copy + first, ring, held - first);
    if (held == size) {
        /* The ring wrapped: start at a line so no escape sequence or character is cut in half. */
        const char *nl = memchr(copy, '\n', held);
        start = nl != NULL ? (size_t)(nl - copy) + 1 : 0;
    }
    emit(t, clear, sizeof(clear) - 1);
    emit(t, copy + start, held - start);
    free(copy);
}

void
term_init_run(sbx_terminal_t *t, const char *commands, uint64_t timeout_ms)
{
    unsigned char r[6];
    char token[16], *line;
    size_t len = strlen(commands) + 256;

    if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r) || (line = malloc(len)) == NULL) {
        term_init_finished(t, false);
        return;
    }
    snprintf(token, sizeof(token), "%02x%02x%02x%02x%02x%02x", r[0], r[1], r[2], r[3], r[4], r[5]);
    /*
     * Output is hidden until the marker. printf builds it from octal escapes, so the shell's echo of
     * the typed line never contains the marker itself, only the command's output does.
     */
    snprintf(t->marker, sizeof(t->marker), "__sbxinit_%s_", token);
    /* The leading space keeps the line out of bash's history (HISTCONTROL=ignorespace, see container.c). */
    int n =
        snprintf(line, len, " { %s} >/dev/null 2>&1 </dev/null; printf '\\n\\137\\137sbxinit_%%s_%%d\\n' %s $?\n", commands, token);
    t->state = TERM_INIT;
    t->nscan = 0;
    t->init_deadline = sbx_time_mono_ms() + timeout_ms;
    term_write(t, line, (size_t)n);
    free(line);
}

/* While init runs: looks for the marker line; everything before it stays hidden. */
static void
scan_init(sbx_terminal_t *t, const char *data, size_t len)
{
    size_t mlen = strlen(t->marker), keep;
    char *buf = malloc(t->nscan + len + 1), *hit, *eol;

    if (buf == NULL)
        return;
    memcpy(buf, t->scan, t->nscan);
    memcpy(buf + t->nscan, data, len);
    buf[t->nscan + len] = '\0';
    if ((hit = memmem(buf, t->nscan + len, t->marker, mlen)) != NULL &&
        (eol = memchr(hit, '\n', (size_t)(buf + t->nscan + len - hit))) != NULL) {
        int status = atoi(hit + mlen);
        size_t after = (size_t)(eol + 1 - buf);
        if (status != 0)
            sbx_log_info("init commands failed", "session=%s status=%d", t->rid, status);
        term_init_finished(t, status == 0);
        forward(t, buf + after, t->nscan + len - after);
        t->nscan = 0;
        free(buf);
        return;
    }
    /* Keep enough of the tail to find a marker that a later read completes. */
    keep = t->nscan + len < sizeof(t->scan) ? t->nscan + len : sizeof(t->scan);
    memmove(t->scan, buf + t->nscan + len - keep, keep);
    t->nscan = keep;
    free(buf);
}

static void
on_docker_read(h2o_socket_t *sock, const char *err)
{
    sbx_terminal_t *t = sock->data;
    size_t len = sock->input->size;

    if (err != NULL) {
        h2o_socket_read_stop(sock);
        if (t->state != TERM_CLOSING) {
            sbx_log_info("shell exited", "session=%s", t->rid);
            term_close(t, 1000, "Container process exited", NULL);
        }
        return;
    }
    if (t->state == TERM_CLOSING || !term_current(t)) {
        h2o_buffer_consume(&sock->input, len); /* the tick closes us; never write another's ring */
        return;
    }
    if (t->state == TERM_INIT)
        scan_init(t, sock->input->bytes, len);
    else
        forward(t, sock->input->bytes, len);
    h2o_buffer_consume(&sock->input, len);
    sbx_registry_activity(t->slot);
    if (t->outlen > TERM_HIGH_WATER) {
        t->paused = true;
        h2o_socket_read_stop(sock);
    }
}

void
term_output_start(sbx_terminal_t *t)
{
    h2o_socket_read_start(t->docker, on_docker_read);
    if (t->docker->input->size > 0) /* bytes that came with the attach answer */
        on_docker_read(t->docker, NULL);
}

void
term_output_resume(sbx_terminal_t *t)
{
    if (!t->paused || t->docker == NULL || t->state == TERM_CLOSING)
        return;
    if (t->outlen < TERM_LOW_WATER) {
        t->paused = false;
        h2o_socket_read_start(t->docker, on_docker_read);
    }
}
