/*
 * A WebSocket terminal: the bridge between one browser (xterm.js) and the
 * main process (the shell) of one session's container, attached through
 * the Docker Engine API. Private to terminal*.c; the router calls
 * sbx_terminal_open (worker.h).
 *
 * Ownership: a terminal owns its WebSocket, its attach socket and its
 * timers; it is freed only by term_destroy, always from a timer callback
 * (never inside a wslay or h2o callback, which still use the memory).
 *
 * One live terminal per session: a new one bumps the session's
 * terminal_gen in the shared zone; the older one sees the change on its
 * next check and closes. Only the holder of the current generation writes
 * the session's replay ring and command bucket, so those need no lock.
 */
#ifndef SBX_TERMINAL_H
#define SBX_TERMINAL_H

#include <h2o.h>
#include <h2o/websocket.h>

#include "docker.h"
#include "timer.h"
#include "token.h"

#define TERM_HIGH_WATER (256 << 10) /* bytes waiting for the browser before we stop reading the container */
#define TERM_LOW_WATER (64 << 10)   /* and below which we read again */
#define TERM_FRAME_MAX (128 << 10)  /* bytes of output in one frame */
#define TERM_FLUSH_MS 1             /* while output waits for wslay's queue to empty, look this often */
#define TERM_INPUT_MAX (256 << 10)  /* bytes of input waiting for the container before we give up on the client */

typedef enum { TERM_ATTACHING, TERM_INIT, TERM_READY, TERM_CLOSING } term_state_t;

typedef struct sbx_terminal_s {
    term_state_t state;
    h2o_websocket_conn_t *ws;
    h2o_socket_t *docker; /* the hijacked attach stream */
    sbx_docker_call_t *attach;
    int slot;
    char id[SBX_TOKEN_LEN + 1];
    char rid[16]; /* the id as logs show it */
    char container[72];
    uint32_t gen;
    unsigned rows, cols;

    /* Output: an incomplete UTF-8 sequence held back so that no frame splits one. */
    char carry[4];
    size_t ncarry;
    bool paused; /* not reading the container: the browser is behind */
    /*
     * Output waiting for the browser. h2o hands wslay's frames to the socket one write at a time, so
     * at most one frame waits in wslay and the rest gathers here into the next, larger frame.
     */
    char *outbuf;
    size_t outlen, outcap;
    bool untracked; /* the drain's idle-connection closer has been told to leave this socket alone */

    /* Init commands: output is hidden until the marker line appears. */
    char marker[40];
    char scan[64]; /* the tail of hidden output, so a marker split across reads is found */
    size_t nscan;
    uint64_t init_deadline; /* ms, monotonic */

    /* Input waiting for the attach socket (one write in flight at a time). */
    char *inbuf;
    size_t inlen, incap;
    char *writing; /* the buffer being written */
    char *held;    /* keystrokes typed before the hidden init step ended: sent after it, in order */
    size_t nheld, heldcap;
    size_t frame_total; /* bytes of the message being received, over its fragments */
    unsigned violations;

    /* Resize: one call in flight; a newer size waits. */
    bool resizing;
    sbx_docker_call_t *resize_call;
    unsigned want_rows, want_cols;

    bool in_callback;   /* inside wslay's message callback: h2o flushes when it returns */
    uint64_t last_rx;   /* ms, monotonic: any frame from the browser */
    uint64_t last_ping; /* ms, monotonic */
    uint64_t force_close_at;
    uint16_t close_code;      /* a close waiting for the messages queued before it */
    const char *close_reason; /* static text */
    bool destroying;
    sbx_timer_t tick;   /* takeover, session end, pings */
    sbx_timer_t flush;  /* armed only while output waits: h2o says nothing when a frame has gone */
    sbx_timer_t reaper; /* zero-delay: frees the terminal outside any callback */
} sbx_terminal_t;

/* terminal.c */
/* Appends data to a growable buffer (doubling from min_cap); returns false, buffer unchanged, when out of memory. */
bool term_buf_append(char **buf, size_t *len, size_t *cap, const char *data, size_t n, size_t min_cap);
void term_close(sbx_terminal_t *t, uint16_t code, const char *reason, const char *error);
void term_send_json(sbx_terminal_t *t, json_t *msg);
void term_flush(sbx_terminal_t *t);
void term_init_finished(sbx_terminal_t *t, bool success);
bool term_current(sbx_terminal_t *t);
void term_on_ws_closed(sbx_terminal_t *t);

/* term_output.c: container -> browser */
void term_output_start(sbx_terminal_t *t);
void term_output_resume(sbx_terminal_t *t);
void term_output_push(sbx_terminal_t *t);
void term_replay(sbx_terminal_t *t);
void term_init_run(sbx_terminal_t *t, const char *commands, uint64_t timeout_ms);

/* term_input.c: browser -> container */
void term_on_message(h2o_websocket_conn_t *ws, const struct wslay_event_on_msg_recv_arg *arg);
void term_install_frame_check(sbx_terminal_t *t);
void term_write(sbx_terminal_t *t, const char *data, size_t len);
void term_resize(sbx_terminal_t *t, unsigned rows, unsigned cols);

#endif
