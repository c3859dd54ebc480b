/*
 * A Redis client on a worker's h2o evloop: one long-lived connection per
 * worker, kept up on its own. hiredis 0.14.1 does the protocol; this file
 * is its event-loop adapter (hiredis ships none for h2o) plus reconnection,
 * AUTH and SELECT. Never blocks: hosts must be numeric IPs or "localhost",
 * so no DNS lookup ever runs in a worker.
 *
 * Ownership: the caller owns the client and frees it with sbx_redis_free.
 * The client owns its hiredis context, the socket h2o watches and every
 * command in flight. Replies and error strings handed to callbacks belong
 * to the client and are valid only during the callback: copy what you keep.
 *
 * Callbacks run from the loop (never from inside sbx_redis_command or
 * sbx_redis_connect); from inside one, sbx_redis_command and sbx_redis_free
 * may be called.
 */
#ifndef SBX_REDIS_H
#define SBX_REDIS_H

#include <stdbool.h>

#include <h2o.h>
#include <hiredis/hiredis.h>

#define SBX_REDIS_BACKOFF_MIN 100      /* ms before the first reconnect; doubles on each failure */
#define SBX_REDIS_BACKOFF_MAX 5000     /* ms: the longest wait between two attempts */
#define SBX_REDIS_CONNECT_TIMEOUT 5000 /* ms for connect + AUTH + SELECT before the attempt counts as failed */

typedef struct sbx_redis_s sbx_redis_t;

/*
 * The answer to one command. reply is NULL when there is none (Redis
 * unavailable, connection lost with the command in flight, client freed);
 * error then says why. For an error reply from Redis, reply->type is
 * REDIS_REPLY_ERROR and error is reply->str. Otherwise error is NULL.
 */
typedef void (*sbx_redis_reply_cb)(void *data, redisReply *reply, const char *error);
typedef void (*sbx_redis_state_cb)(void *data, bool up, const char *error);

/*
 * Parses url and connects (asynchronously: the first attempt starts on the
 * next loop turn) on loop:
 *   redis://[[user]:password@]host[:port][/db]     host: IPv4, [IPv6] or localhost (= 127.0.0.1); port 6379
 *   unix:///path/to.sock[?db=N][&password=P]       also unix:/path/to.sock
 * user and password may be %-encoded. After each (re)connect AUTH (when a
 * password is given) and SELECT (when db is not 0) are sent before
 * anything else; the client is ready once they succeed. Whenever the
 * connection drops or cannot be made, the client reconnects on its own
 * after SBX_REDIS_BACKOFF_MIN ms, doubling up to SBX_REDIS_BACKOFF_MAX.
 *
 * Returns the client, or NULL with *error set to a static message when the
 * url is malformed or memory runs out. loop must outlive the client. The
 * timeout queues registered with loop stay for the loop's life (shared by
 * its clients, never disposed); h2o_evloop_destroy asserts that a loop has
 * none, so a worker exits rather than destroying its loop.
 */
sbx_redis_t *sbx_redis_connect(h2o_loop_t *loop, const char *url, const char **error);

/* True while connected, with AUTH and SELECT done. */
bool sbx_redis_ready(sbx_redis_t *r);

/*
 * Why the client is not ready (for 503 reasons and logs): the last
 * connection error, e.g. "Connection refused" or "AUTH failed: WRONGPASS
 * ..."; "" while ready and before the first attempt ends. Owned by the
 * client, which rewrites it when the state changes: copy what you keep.
 */
const char *sbx_redis_error(sbx_redis_t *r);

/*
 * Sends a command, formatted as by redisFormatCommand (fmt) or from
 * argc/argv/argvlen. cb is called exactly once for each command accepted
 * with SBX_OK: with the reply; with NULL and "redis connection lost: ..."
 * when the connection drops with it in flight; with NULL and
 * "redis unavailable: <why>" on a later loop turn (about 1 ms later) when
 * the client is not ready; with NULL and "redis client closed" from
 * sbx_redis_free. Commands are answered in the order sent.
 *
 * Returns SBX_ERROR (and cb is never called) when memory runs out, fmt is
 * invalid, the client is being freed, or the command would break the
 * one-reply-per-command exchange or the connection's state that every
 * caller shares: (P|S)SUBSCRIBE, (P|S)UNSUBSCRIBE, MONITOR, SELECT, QUIT,
 * RESET. A MULTI ... EXEC block must be sent by consecutive calls within
 * one callback, so that no other caller's command falls inside it.
 */
int sbx_redis_command(sbx_redis_t *r, sbx_redis_reply_cb cb, void *data, const char *fmt, ...);
int sbx_redis_command_argv(sbx_redis_t *r, sbx_redis_reply_cb cb, void *data, int argc, const char **argv, const size_t *argvlen);

/*
 * Sets the callback told of state changes, for logging and /status: up
 * when a connection is ready (error ""), down once per outage (when a ready
 * connection is lost, or when the first attempt after start fails) with
 * the reason. The client logs these changes itself as well.
 */
void sbx_redis_on_state(sbx_redis_t *r, sbx_redis_state_cb cb, void *data);

/*
 * Disconnects and frees the client. Commands still waiting are answered
 * before it returns (or, when called from a callback, before that callback's
 * caller returns to the loop) with reply NULL and "redis client closed".
 * r must not be used afterwards, except by those callbacks, where
 * sbx_redis_command returns SBX_ERROR. NULL is a no-op.
 */
void sbx_redis_free(sbx_redis_t *r);

#endif
