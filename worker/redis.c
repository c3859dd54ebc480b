/*
 * Redis on the worker's loop: hiredis 0.14.1 for the protocol, an adapter
 * that lets h2o's evloop tell it when its socket is readable or writable,
 * and the reconnect / AUTH / SELECT logic on top.
 *
 * The adapter. hiredis reads and writes the fd itself, so h2o must only
 * report readiness: the socket is created with H2O_SOCKET_FLAG_DONT_READ
 * (as listeners are), which makes h2o call the read callback on
 * readability without reading. h2o's notify_write is one-shot while
 * hiredis expects a level-triggered watcher (addWrite ... delWrite), so we
 * re-arm it until hiredis says delWrite.
 *
 * Closing. hiredis closes its fd right after calling ev.cleanup, and
 * h2o_socket_close would close the fd it watches as well. h2o therefore
 * watches a dup() of the fd: each side closes its own descriptor, and the
 * connection ends when both are gone (both happen inside hiredis's free).
 * h2o_socket_export, the other way to take an fd back from h2o, asserts
 * that no write notification is armed, which we cannot guarantee there.
 *
 * Re-entrancy. User callbacks run inside hiredis calls and may free the
 * client. Every entry from the loop (socket and timer callbacks,
 * sbx_redis_free) counts itself in r->depth; the memory is released when
 * the outermost one returns. hiredis itself defers a redisAsyncFree made
 * from inside one of its callbacks until that callback returns.
 */
#include "config.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <hiredis/async.h>

#include "log.h"
#include "redis.h"
#include "sbx.h"

#define DEFER_MS 1 /* "on the next loop turn": 1 ms, so an entry linked while its queue runs waits for the next turn */
#define MAX_LOOPS 8

/*
 * h2o 2.2.5's timeout queues each hold one duration, and the loop walks its
 * list of queues while running them: disposing a queue from inside one of
 * its own callbacks (a user callback that frees the client) would break
 * that walk. So the queues belong to the loop, are made on first use and
 * are never disposed, like worker/timer.c's.
 */
static const uint64_t backoff_ms[] = {100, 200, 400, 800, 1600, 3200, SBX_REDIS_BACKOFF_MAX};

typedef struct {
    h2o_loop_t *loop;
    h2o_timeout_t defer;
    h2o_timeout_t connect;
    h2o_timeout_t backoff[sbx_nelems(backoff_ms)];
} queues_t;

static queues_t *queues[MAX_LOOPS];

struct sbx_redis_s {
    h2o_loop_t *loop;
    queues_t *q;

    /* From the url; password and user are NULL when absent. */
    char *host; /* a numeric IP, or NULL for a unix socket */
    int port;
    char *path;
    char *user, *password;
    int db;
    char target[160]; /* where we connect, without secrets, for logs */

    redisAsyncContext *ac; /* the current connection attempt, NULL between attempts */
    h2o_socket_t *sock;    /* watches a dup of ac's fd */
    bool want_write;       /* hiredis asked for writability (addWrite) and has not withdrawn it */
    unsigned handshake_left;
    bool up;            /* the handshake finished on ac */
    bool ready;         /* up, and ac still takes commands */
    bool why_set;       /* error holds this attempt's reason */
    bool down_reported; /* the current outage has been logged and told */
    unsigned attempt;   /* failed attempts in a row: indexes backoff_ms */
    uint64_t retry_ms;  /* the wait before the next attempt */
    char error[200];

    h2o_timeout_entry_t retry, connect_timer, defer;
    h2o_linklist_t unavailable; /* commands_t to answer "redis unavailable" on the defer turn */

    sbx_redis_state_cb on_state;
    void *on_state_data;

    unsigned depth; /* loop callbacks of ours on the stack */
    bool closing;   /* sbx_redis_free was called; freed when depth drops to 0 */
};

typedef struct {
    h2o_linklist_t link; /* in r->unavailable, while waiting there */
    sbx_redis_t *r;
    sbx_redis_reply_cb cb;
    void *data;
} command_t;

static void start_connect(sbx_redis_t *r);

/* Timeout queues */

static queues_t *
queues_for(h2o_loop_t *loop)
{
    size_t i, j;

    for (i = 0; i < MAX_LOOPS && queues[i] != NULL; i++)
        if (queues[i]->loop == loop)
            return queues[i];
    if (i == MAX_LOOPS || (queues[i] = malloc(sizeof(queues_t))) == NULL)
        return NULL;
    queues[i]->loop = loop;
    h2o_timeout_init(loop, &queues[i]->defer, DEFER_MS);
    h2o_timeout_init(loop, &queues[i]->connect, SBX_REDIS_CONNECT_TIMEOUT);
    for (j = 0; j < sbx_nelems(backoff_ms); j++)
        h2o_timeout_init(loop, &queues[i]->backoff[j], backoff_ms[j]);
    return queues[i];
}

/* Lifetime */

static void
enter(sbx_redis_t *r)
{
    r->depth++;
}

static void
destroy(sbx_redis_t *r)
{
    h2o_timeout_unlink(&r->retry);
    h2o_timeout_unlink(&r->connect_timer);
    h2o_timeout_unlink(&r->defer);
    free(r->host);
    free(r->path);
    free(r->user);
    free(r->password);
    free(r);
}

static void
leave(sbx_redis_t *r)
{
    if (--r->depth == 0 && r->closing)
        destroy(r);
}

/* States */

static void
set_why(sbx_redis_t *r, const char *why)
{
    if (r->why_set)
        return;
    r->why_set = true;
    snprintf(r->error, sizeof(r->error), "%s", why);
}

static void
schedule_retry(sbx_redis_t *r)
{
    size_t i = r->attempt < sbx_nelems(backoff_ms) ? r->attempt : sbx_nelems(backoff_ms) - 1;

    r->attempt++;
    r->retry_ms = backoff_ms[i];
    h2o_timeout_link(r->loop, &r->q->backoff[i], &r->retry);
}

/* Logs and tells the first failure of an outage; later attempts only at debug level. */
static void
report_down(sbx_redis_t *r, bool was_up)
{
    if (r->down_reported) {
        sbx_log_debug("redis connect failed", "target=%s error=%s retry_ms=%llu", r->target, r->error,
                      (unsigned long long)r->retry_ms);
        return;
    }
    r->down_reported = true;
    sbx_log_warn(was_up ? "redis connection lost" : "redis unavailable", "target=%s error=%s retry_ms=%llu", r->target, r->error,
                 (unsigned long long)r->retry_ms);
    if (r->on_state != NULL)
        r->on_state(r->on_state_data, false, r->error);
}

static void
became_ready(sbx_redis_t *r)
{
    h2o_timeout_unlink(&r->connect_timer);
    r->up = r->ready = true;
    r->attempt = 0;
    r->error[0] = '\0';
    r->down_reported = false;
    sbx_log_notice("redis connected", "target=%s", r->target);
    if (r->on_state != NULL)
        r->on_state(r->on_state_data, true, "");
}

/* The adapter: hiredis's event hooks, with ev.data = r */

static void
on_readable(h2o_socket_t *sock, const char *err)
{
    sbx_redis_t *r = sock->data;

    (void)err; /* always NULL with H2O_SOCKET_FLAG_DONT_READ: hiredis's own read() finds errors */
    enter(r);
    redisAsyncHandleRead(r->ac);
    leave(r);
}

static void
on_writable(h2o_socket_t *sock, const char *err)
{
    sbx_redis_t *r = sock->data;

    (void)err;
    if (!r->want_write)
        return; /* withdrawn after this notification was armed */
    enter(r);
    redisAsyncHandleWrite(r->ac);
    /* Level-triggered as hiredis expects: still wanted (e.g. connect in progress) and not re-armed inside, so re-arm. */
    if (r->sock == sock && r->want_write && !h2o_socket_is_writing(sock))
        h2o_socket_notify_write(sock, on_writable);
    leave(r);
}

static void
ev_add_read(void *privdata)
{
    sbx_redis_t *r = privdata;

    if (r->sock != NULL && !h2o_socket_is_reading(r->sock))
        h2o_socket_read_start(r->sock, on_readable);
}

static void
ev_del_read(void *privdata)
{
    sbx_redis_t *r = privdata;

    if (r->sock != NULL && h2o_socket_is_reading(r->sock))
        h2o_socket_read_stop(r->sock);
}

static void
ev_add_write(void *privdata)
{
    sbx_redis_t *r = privdata;

    r->want_write = true;
    /* notify_write asserts that none is armed; an armed one is still pending, or we are inside it and it was cleared */
    if (r->sock != NULL && !h2o_socket_is_writing(r->sock))
        h2o_socket_notify_write(r->sock, on_writable);
}

static void
ev_del_write(void *privdata)
{
    sbx_redis_t *r = privdata;

    r->want_write = false; /* h2o cannot disarm a notification: on_writable ignores it */
}

/*
 * hiredis is freeing the context (after running the pending callbacks with
 * NULL); it closes its fd when this returns. Called once per context.
 */
static void
ev_cleanup(void *privdata)
{
    sbx_redis_t *r = privdata;
    redisAsyncContext *ac = r->ac;
    bool was_up = r->up;

    if (ac == NULL)
        return;
    h2o_socket_close(r->sock); /* closes the dup only; a pending write notification is dropped with it */
    r->sock = NULL;
    r->want_write = false;
    r->ac = NULL;
    r->up = r->ready = false;
    h2o_timeout_unlink(&r->connect_timer);
    if (r->closing)
        return;
    set_why(r, ac->c.err != 0 ? ac->c.errstr : "connection closed");
    schedule_retry(r);
    report_down(r, was_up);
}

/* Connecting */

static void
on_handshake(redisAsyncContext *ac, void *reply_, void *privdata)
{
    sbx_redis_t *r = ac->data;
    redisReply *reply = reply_;
    const char *name = privdata;
    char why[sizeof(r->error)];

    if (reply == NULL || r->ac != ac)
        return; /* the context is going away; ev_cleanup handles it */
    if (reply->type == REDIS_REPLY_ERROR) {
        snprintf(why, sizeof(why), "%s failed: %s", name, reply->str);
        set_why(r, why);
        redisAsyncFree(ac); /* deferred by hiredis until we return; then ev_cleanup schedules the retry */
        return;
    }
    if (--r->handshake_left == 0)
        became_ready(r);
}

static void
send_handshake(redisAsyncContext *ac, sbx_redis_t *r, int argc, const char **argv)
{
    /* On failure (out of memory) the handshake never completes and the connect timeout retries. */
    if (redisAsyncCommandArgv(ac, on_handshake, (void *)argv[0], argc, argv, NULL) == REDIS_OK)
        r->handshake_left++;
}

/*
 * TCP connected (or not). Nothing here may free ac: hiredis goes on using
 * it after this returns.
 */
static void
on_connect(const redisAsyncContext *cac, int status)
{
    redisAsyncContext *ac = (redisAsyncContext *)cac;
    sbx_redis_t *r = ac->data;
    char db[16];

    if (status != REDIS_OK) {
        set_why(r, ac->c.errstr); /* hiredis frees the context next: ev_cleanup */
        return;
    }
    r->handshake_left = 0;
    if (r->password != NULL) {
        const char *auth[] = {"AUTH", r->user != NULL ? r->user : r->password, r->password};
        send_handshake(ac, r, r->user != NULL ? 3 : 2, auth);
    }
    if (r->db != 0) {
        snprintf(db, sizeof(db), "%d", r->db);
        send_handshake(ac, r, 2, (const char *[]){"SELECT", db});
    }
    if (r->password == NULL && r->db == 0)
        send_handshake(ac, r, 1, (const char *[]){"PING"}); /* proves the peer speaks Redis and accepts us */
}

static void
keepalive(int fd)
{
    int on = 1, idle = 15 /* s */, intvl = 5 /* s */, cnt = 3, user_timeout = 30000 /* ms */;

    /* A peer host that vanishes is noticed in about 30 s rather than after TCP's ~15 min of retransmissions. */
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
    setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout, sizeof(user_timeout));
}

static int
attach(sbx_redis_t *r, redisAsyncContext *ac)
{
    int fd = ac->c.fd, watched;

    fcntl(fd, F_SETFD, FD_CLOEXEC);
    if (r->host != NULL)
        keepalive(fd);
    if ((watched = fcntl(fd, F_DUPFD_CLOEXEC, 0)) == -1)
        return SBX_ERROR;
    r->sock = h2o_evloop_socket_create(r->loop, watched, H2O_SOCKET_FLAG_DONT_READ);
    r->sock->data = r;
    r->want_write = false;
    r->ac = ac;
    ac->data = r;
    ac->ev.data = r;
    ac->ev.addRead = ev_add_read;
    ac->ev.delRead = ev_del_read;
    ac->ev.addWrite = ev_add_write;
    ac->ev.delWrite = ev_del_write;
    ac->ev.cleanup = ev_cleanup;
    /* The hooks first: setting the connect callback asks for writability, which is how connect completion shows. */
    redisAsyncSetConnectCallback(ac, on_connect);
    return SBX_OK;
}

static void
start_connect(sbx_redis_t *r)
{
    redisAsyncContext *ac;

    r->why_set = false;
    ac = r->path != NULL ? redisAsyncConnectUnix(r->path) : redisAsyncConnect(r->host, r->port);
    if (ac == NULL) {
        set_why(r, "out of memory");
        goto fail;
    }
    if (ac->err != 0) { /* e.g. a unix socket that does not exist, or a refusal seen at once */
        set_why(r, ac->errstr);
        goto fail_free;
    }
    if (attach(r, ac) != SBX_OK) {
        set_why(r, "cannot duplicate the socket (out of descriptors)");
        goto fail_free;
    }
    h2o_timeout_link(r->loop, &r->q->connect, &r->connect_timer);
    return;

fail_free:
    redisAsyncFree(ac); /* no hooks are set yet: nothing of ours runs */
fail:
    schedule_retry(r);
    report_down(r, false);
}

static void
on_retry(h2o_timeout_entry_t *entry)
{
    sbx_redis_t *r = H2O_STRUCT_FROM_MEMBER(sbx_redis_t, retry, entry);

    enter(r);
    start_connect(r);
    leave(r);
}

static void
on_connect_timeout(h2o_timeout_entry_t *entry)
{
    sbx_redis_t *r = H2O_STRUCT_FROM_MEMBER(sbx_redis_t, connect_timer, entry);
    char why[64];

    snprintf(why, sizeof(why), "no connection (with AUTH and SELECT) within %d ms", SBX_REDIS_CONNECT_TIMEOUT);
    enter(r);
    set_why(r, why);
    redisAsyncFree(r->ac); /* not inside a hiredis callback: frees now, and ev_cleanup schedules the retry */
    leave(r);
}

/* Commands */

static void
on_reply(redisAsyncContext *ac, void *reply_, void *privdata)
{
    command_t *cmd = privdata;
    sbx_redis_t *r = cmd->r;
    redisReply *reply = reply_;
    const char *error = NULL;
    char lost[sizeof(r->error) + 32];

    if (reply == NULL) {
        /* The context is being freed: answer "unavailable" from now on, not into a dying context. */
        r->ready = false;
        if (r->closing) {
            error = "redis client closed";
        } else {
            set_why(r, ac->c.err != 0 ? ac->c.errstr : "connection closed");
            snprintf(lost, sizeof(lost), "redis connection lost: %s", r->error);
            error = lost;
        }
    } else if (reply->type == REDIS_REPLY_ERROR) {
        error = reply->str;
    }
    cmd->cb(cmd->data, reply, error);
    free(cmd);
}

static void
on_defer(h2o_timeout_entry_t *entry)
{
    sbx_redis_t *r = H2O_STRUCT_FROM_MEMBER(sbx_redis_t, defer, entry);
    h2o_linklist_t todo;
    char why[sizeof(r->error) + 32];

    /* Only those queued before this turn: a callback that retries at once waits for the next turn. */
    h2o_linklist_init_anchor(&todo);
    h2o_linklist_insert_list(&todo, &r->unavailable);
    enter(r);
    while (!h2o_linklist_is_empty(&todo)) {
        command_t *cmd = H2O_STRUCT_FROM_MEMBER(command_t, link, todo.next);
        h2o_linklist_unlink(&cmd->link);
        if (r->closing)
            snprintf(why, sizeof(why), "redis client closed");
        else
            snprintf(why, sizeof(why), "redis unavailable: %s", r->error[0] != '\0' ? r->error : "not connected yet");
        cmd->cb(cmd->data, NULL, why);
        free(cmd);
    }
    leave(r);
}

/* Commands that break one reply per command, or change state the next caller would inherit. */
static bool
is_refused(const char *cmd, size_t len)
{
    static const char *refused[] = {"subscribe",    "psubscribe", "ssubscribe", "unsubscribe", "punsubscribe",
                                    "sunsubscribe", "monitor",    "select",     "quit",        "reset"};
    const char *p = memchr(cmd, '$', len), *name;
    size_t n;

    if (p == NULL)
        return true;
    n = strtoul(p + 1, (char **)&name, 10);
    if (name + 2 + n > cmd + len || name[0] != '\r')
        return true;
    name += 2;
    for (size_t i = 0; i < sbx_nelems(refused); i++)
        if (strlen(refused[i]) == n && strncasecmp(name, refused[i], n) == 0)
            return true;
    return false;
}

static int
submit(sbx_redis_t *r, sbx_redis_reply_cb cb, void *data, const char *formatted, int len)
{
    command_t *cmd;

    if (len < 0 || r->closing || is_refused(formatted, (size_t)len))
        return SBX_ERROR;
    if ((cmd = malloc(sizeof(*cmd))) == NULL)
        return SBX_ERROR;
    *cmd = (command_t){.r = r, .cb = cb, .data = data};
    if (r->ready && redisAsyncFormattedCommand(r->ac, on_reply, cmd, formatted, (size_t)len) == REDIS_OK)
        return SBX_OK;
    h2o_linklist_insert(&r->unavailable, &cmd->link);
    if (!h2o_timeout_is_linked(&r->defer))
        h2o_timeout_link(r->loop, &r->q->defer, &r->defer);
    return SBX_OK;
}

int
sbx_redis_command(sbx_redis_t *r, sbx_redis_reply_cb cb, void *data, const char *fmt, ...)
{
    va_list ap;
    char *formatted = NULL;
    int len, rc;

    va_start(ap, fmt);
    len = redisvFormatCommand(&formatted, fmt, ap);
    va_end(ap);
    rc = submit(r, cb, data, formatted, len);
    if (len >= 0)
        redisFreeCommand(formatted);
    return rc;
}

int
sbx_redis_command_argv(sbx_redis_t *r, sbx_redis_reply_cb cb, void *data, int argc, const char **argv, const size_t *argvlen)
{
    char *formatted = NULL;
    int len, rc;

    if (argc < 1)
        return SBX_ERROR;
    len = redisFormatCommandArgv(&formatted, argc, argv, argvlen);
    rc = submit(r, cb, data, formatted, len);
    if (len >= 0)
        redisFreeCommand(formatted);
    return rc;
}

/* The url */

/* A new string of s[0..len) with %XX decoded, or NULL on a bad escape or no memory. */
static char *
decode(const char *s, size_t len)
{
    char *out = malloc(len + 1), *o = out, hex[3] = {0};

    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < len; i++) {
        if (s[i] != '%') {
            *o++ = s[i];
            continue;
        }
        if (i + 2 >= len)
            goto fail;
        memcpy(hex, s + i + 1, 2);
        if (strspn(hex, "0123456789abcdefABCDEF") != 2)
            goto fail;
        if ((*o++ = (char)strtoul(hex, NULL, 16)) == '\0')
            goto fail; /* %00 would cut the string short */
        i += 2;
    }
    *o = '\0';
    return out;

fail:
    free(out);
    return NULL;
}

static const char *
parse_userinfo(sbx_redis_t *r, const char *s, size_t len)
{
    const char *colon = memchr(s, ':', len);

    if (colon == NULL)
        return "redis url: write the password as :password@ (or user:password@)";
    if (colon > s && (r->user = decode(s, (size_t)(colon - s))) == NULL)
        return "redis url: bad %-escape in the user";
    if ((r->password = decode(colon + 1, (size_t)(s + len - colon - 1))) == NULL)
        return "redis url: bad %-escape in the password";
    if (r->password[0] == '\0') {
        free(r->password);
        r->password = NULL;
    }
    return NULL;
}

/* Parses a decimal number of at most max_digits digits, ending at end or at one of stops. */
static const char *
parse_number(const char *s, const char *stops, int max_digits, long *n)
{
    size_t digits = strspn(s, "0123456789");

    if (digits == 0 || digits > (size_t)max_digits || (s[digits] != '\0' && strchr(stops, s[digits]) == NULL))
        return NULL;
    *n = strtol(s, NULL, 10);
    return s + digits;
}

static const char *
parse_tcp(sbx_redis_t *r, const char *s)
{
    const char *at = strrchr(s, '@'), *host, *end, *err; /* the last @: an unencoded one may sit in the password */
    char name[INET6_ADDRSTRLEN];
    unsigned char addr[sizeof(struct in6_addr)];
    size_t len;
    long n;

    if (at != NULL && (err = parse_userinfo(r, s, (size_t)(at - s))) != NULL)
        return err;
    host = at != NULL ? at + 1 : s;
    if (*host == '[') {
        if ((end = strchr(host, ']')) == NULL)
            return "redis url: unclosed [ in the host";
        host++;
        len = (size_t)(end - host);
        end++;
    } else {
        len = strcspn(host, ":/");
        end = host + len;
    }
    if (len == 0 || len >= sizeof(name))
        return "redis url: no host, or a host that is not an IP address";
    memcpy(name, host, len);
    name[len] = '\0';
    if (strcmp(name, "localhost") == 0)
        strcpy(name, "127.0.0.1");
    else if (inet_pton(AF_INET, name, addr) != 1 && inet_pton(AF_INET6, name, addr) != 1)
        return "redis url: the host must be a numeric IP address or localhost (a worker does no DNS lookups)";
    r->port = 6379;
    if (*end == ':') {
        if ((end = parse_number(end + 1, "/", 5, &n)) == NULL || n < 1 || n > 65535)
            return "redis url: the port must be 1-65535";
        r->port = (int)n;
    }
    if (*end == '/' && end[1] != '\0') {
        if (parse_number(end + 1, "", 9, &n) == NULL)
            return "redis url: the path must be /db, a database number";
        r->db = (int)n;
    } else if (*end != '\0' && strcmp(end, "/") != 0) {
        return "redis url: unexpected text after the host";
    }
    if ((r->host = strdup(name)) == NULL)
        return "out of memory";
    snprintf(r->target, sizeof(r->target), strchr(name, ':') != NULL ? "[%s]:%d/%d" : "%s:%d/%d", name, r->port, r->db);
    return NULL;
}

static const char *
parse_unix(sbx_redis_t *r, const char *s)
{
    const char *at, *query, *p, *err;
    size_t len;
    long n;

    if (*s != '/' && (at = strchr(s, '@')) != NULL) {
        if ((err = parse_userinfo(r, s, (size_t)(at - s))) != NULL)
            return err;
        s = at + 1;
    }
    if (*s != '/')
        return "redis url: the unix socket path must be absolute";
    query = strchr(s, '?');
    len = query != NULL ? (size_t)(query - s) : strlen(s);
    if (len >= sizeof(((struct sockaddr_un *)NULL)->sun_path))
        return "redis url: the unix socket path is too long";
    if ((r->path = strndup(s, len)) == NULL)
        return "out of memory";
    for (p = query; p != NULL && *p != '\0'; p = strchr(p, '&')) {
        p++;
        len = strcspn(p, "&");
        if (strncmp(p, "db=", 3) == 0) {
            if (parse_number(p + 3, "&", 9, &n) == NULL)
                return "redis url: db must be a database number";
            r->db = (int)n;
        } else if (strncmp(p, "password=", 9) == 0) {
            free(r->password);
            if ((r->password = decode(p + 9, len - 9)) == NULL)
                return "redis url: bad %-escape in the password";
        } else if (len != 0) {
            return "redis url: unknown parameter (db and password are known)";
        }
    }
    snprintf(r->target, sizeof(r->target), "unix:%s?db=%d", r->path, r->db);
    return NULL;
}

static const char *
parse_url(sbx_redis_t *r, const char *url)
{
    if (strncmp(url, "redis://", 8) == 0)
        return parse_tcp(r, url + 8);
    if (strncmp(url, "unix://", 7) == 0)
        return parse_unix(r, url + 7);
    if (strncmp(url, "unix:", 5) == 0)
        return parse_unix(r, url + 5);
    if (strncmp(url, "rediss://", 9) == 0)
        return "redis url: TLS (rediss://) is not supported";
    return "redis url: must start with redis://, unix:// or unix:";
}

/* The public face */

sbx_redis_t *
sbx_redis_connect(h2o_loop_t *loop, const char *url, const char **error)
{
    sbx_redis_t *r = calloc(1, sizeof(*r));
    const char *err;

    if (r == NULL || (r->q = queues_for(loop)) == NULL) {
        err = "out of memory";
        goto fail;
    }
    r->loop = loop;
    r->retry.cb = on_retry;
    r->connect_timer.cb = on_connect_timeout;
    r->defer.cb = on_defer;
    h2o_linklist_init_anchor(&r->unavailable);
    if ((err = parse_url(r, url)) != NULL)
        goto fail;
    /* The first attempt on the next turn, so that its outcome reaches a state callback set after this returns. */
    h2o_timeout_link(loop, &r->q->defer, &r->retry);
    return r;

fail:
    if (r != NULL)
        destroy(r);
    *error = err;
    return NULL;
}

bool
sbx_redis_ready(sbx_redis_t *r)
{
    return r->ready;
}

const char *
sbx_redis_error(sbx_redis_t *r)
{
    return r->ready ? "" : r->error;
}

void
sbx_redis_on_state(sbx_redis_t *r, sbx_redis_state_cb cb, void *data)
{
    r->on_state = cb;
    r->on_state_data = data;
}

void
sbx_redis_free(sbx_redis_t *r)
{
    if (r == NULL || r->closing)
        return;
    enter(r);
    r->closing = true;
    r->ready = false;
    h2o_timeout_unlink(&r->retry);
    h2o_timeout_unlink(&r->connect_timer);
    if (r->ac != NULL)
        redisAsyncFree(r->ac); /* answers what is in flight; from inside a hiredis callback, once that returns */
    if (!h2o_linklist_is_empty(&r->unavailable)) {
        h2o_timeout_unlink(&r->defer);
        on_defer(&r->defer); /* answers "redis client closed" now */
    }
    leave(r);
}
