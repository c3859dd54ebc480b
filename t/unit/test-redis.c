/*
 * Unit tests of the Redis client (worker/redis.c) against real
 * redis-servers started here: one on a free loopback port, one with
 * --requirepass, one on a unix socket in a temp dir. The client runs on an
 * h2o evloop driven in bounded loops; every wait ends after WAIT_MS.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "redis.h"
#include "sbx.h"
#include "tap.h"

#define WAIT_MS 10000 /* the bound on every wait */

typedef struct {
    pid_t pid;
    int port;       /* 0 for the unix socket server */
    char sock[108]; /* its path, for the unix socket server */
    const char *password;
} server_t;

static h2o_loop_t *loop;
static char tmpdir[] = "/tmp/sbx-test-redis-XXXXXX";
static bool have_tmpdir;
static server_t *servers[4];

/* Processes and files */

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static void
teardown(void)
{
    for (size_t i = 0; i < sbx_nelems(servers); i++) {
        if (servers[i] != NULL && servers[i]->pid > 0) {
            kill(servers[i]->pid, SIGKILL);
            waitpid(servers[i]->pid, NULL, 0);
            servers[i]->pid = 0;
        }
    }
    if (have_tmpdir)
        nftw(tmpdir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    have_tmpdir = false;
}

static void
bail_out(const char *why)
{
    printf("Bail out! %s\n", why);
    exit(255); /* atexit runs teardown */
}

static int
free_port(void)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sin);
    int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;

    if (fd != -1 && bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0 && getsockname(fd, (struct sockaddr *)&sin, &len) == 0)
        port = ntohs(sin.sin_port);
    close(fd);
    if (port == -1)
        bail_out("no free port");
    return port;
}

/* True when s accepts a connection (one blocking connect: loopback and unix sockets answer at once). */
static bool
accepts(const server_t *s)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(s->port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    int fd = socket(s->port != 0 ? AF_INET : AF_UNIX, SOCK_STREAM, 0), rc;

    snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", s->sock);
    rc = s->port != 0 ? connect(fd, (struct sockaddr *)&sin, sizeof(sin)) : connect(fd, (struct sockaddr *)&sun, sizeof(sun));
    close(fd);
    return rc == 0;
}

static void
start_server(server_t *s)
{
    char port[8];
    const char *argv[24];
    int n = 0;

    snprintf(port, sizeof(port), "%d", s->port);
    argv[n++] = "redis-server";
    argv[n++] = "--port";
    argv[n++] = port;
    argv[n++] = "--bind";
    argv[n++] = "127.0.0.1";
    argv[n++] = "--save";
    argv[n++] = "";
    argv[n++] = "--appendonly";
    argv[n++] = "no";
    argv[n++] = "--dir";
    argv[n++] = tmpdir;
    if (s->password != NULL) {
        argv[n++] = "--requirepass";
        argv[n++] = s->password;
    }
    if (s->port == 0) {
        argv[n++] = "--unixsocket";
        argv[n++] = s->sock;
        argv[n++] = "--unixsocketperm";
        argv[n++] = "700";
    }
    argv[n] = NULL;

    if ((s->pid = fork()) == -1)
        bail_out("fork failed");
    if (s->pid == 0) {
        int null = open("/dev/null", O_RDWR);
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* dies with the test, even when the test crashes */
        dup2(null, 0), dup2(null, 1), dup2(null, 2);
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    for (uint64_t deadline = sbx_time_mono_ms() + WAIT_MS; !accepts(s);) {
        if (sbx_time_mono_ms() > deadline || waitpid(s->pid, NULL, WNOHANG) == s->pid)
            bail_out("redis-server did not start");
        usleep(10000);
    }
}

static void
kill_server(server_t *s)
{
    kill(s->pid, SIGKILL);
    waitpid(s->pid, NULL, 0);
    s->pid = 0;
}

/* The loop */

typedef bool (*cond_fn)(void *arg);

/* Runs the loop until cond holds; false if WAIT_MS passed first. */
static bool
run_until(cond_fn cond, void *arg)
{
    uint64_t deadline = sbx_time_mono_ms() + WAIT_MS;

    while (!cond(arg)) {
        if (sbx_time_mono_ms() > deadline)
            return false;
        h2o_evloop_run(loop, 10);
    }
    return true;
}

static void
run_for(uint64_t ms)
{
    for (uint64_t end = sbx_time_mono_ms() + ms; sbx_time_mono_ms() < end;)
        h2o_evloop_run(loop, 10);
}

static bool
is_ready(void *r)
{
    return sbx_redis_ready(r);
}

static bool
is_down(void *r)
{
    return !sbx_redis_ready(r) && sbx_redis_error(r)[0] != '\0';
}

/* Replies */

typedef struct {
    int calls;
    bool inside; /* called from inside sbx_redis_command: never allowed */
    bool null;
    int type;
    long long integer;
    char str[64];
    char error[256];
    sbx_redis_t *free_me; /* freed from inside the callback, when set */
} result_t;

static bool in_command;

static void
on_result(void *data, redisReply *reply, const char *error)
{
    result_t *res = data;

    res->calls++;
    res->inside |= in_command;
    res->null = reply == NULL;
    if (reply != NULL) {
        res->type = reply->type;
        res->integer = reply->integer;
        if (reply->str != NULL)
            snprintf(res->str, sizeof(res->str), "%s", reply->str);
    }
    snprintf(res->error, sizeof(res->error), "%s", error != NULL ? error : "");
    if (res->free_me != NULL)
        sbx_redis_free(res->free_me);
}

/* Sends a command with on_result, noting that we are inside sbx_redis_command. */
#define CMD(r, res, ...)                                                                                                           \
    ({                                                                                                                             \
        in_command = true;                                                                                                         \
        int rc_ = sbx_redis_command((r), on_result, (res), __VA_ARGS__);                                                           \
        in_command = false;                                                                                                        \
        rc_;                                                                                                                       \
    })

static bool
answered(void *res)
{
    return ((result_t *)res)->calls > 0;
}

/* Sends one command and waits for its answer. */
#define ROUNDTRIP(r, res, ...) (memset((res), 0, sizeof(*(res))), CMD(r, res, __VA_ARGS__) == SBX_OK && run_until(answered, (res)))

static bool
starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

typedef struct {
    int ups, downs;
    char last_error[256];
    sbx_redis_t *free_me; /* freed from inside the callback, when set */
} states_t;

static void
on_state(void *data, bool up, const char *error)
{
    states_t *st = data;

    if (up)
        st->ups++;
    else
        st->downs++;
    snprintf(st->last_error, sizeof(st->last_error), "%s", error);
    if (st->free_me != NULL)
        sbx_redis_free(st->free_me);
    st->free_me = NULL;
}

static bool
heard_down(void *st)
{
    return ((states_t *)st)->downs > 0;
}

static sbx_redis_t *
connect_ready(const char *url)
{
    const char *err = NULL;
    sbx_redis_t *r = sbx_redis_connect(loop, url, &err);

    if (r == NULL || !run_until(is_ready, r))
        printf("# %s: %s\n", url, r == NULL ? err : sbx_redis_error(r));
    return r;
}

/* The tests */

static void
test_urls(void)
{
    static const char *bad[] = {"http://127.0.0.1:6379",      "redis://example.com:6379", "redis://127.0.0.1:99999",
                                "redis://127.0.0.1:6379/x",   "redis://secret@127.0.0.1", "redis://:%zz@127.0.0.1",
                                "redis://[::1:6379",          "unix://relative/path",     "unix:/tmp/x.sock?db=one",
                                "unix:/tmp/x.sock?timeout=1", "rediss://127.0.0.1:6379"};
    const char *err;
    int refused = 0;

    for (size_t i = 0; i < sbx_nelems(bad); i++) {
        err = NULL;
        sbx_redis_t *r = sbx_redis_connect(loop, bad[i], &err);
        if (r == NULL && err != NULL && starts_with(err, "redis url: "))
            refused++;
        else
            printf("# accepted: %s\n", bad[i]);
        sbx_redis_free(r);
    }
    ok(refused == (int)sbx_nelems(bad), "malformed urls, hostnames and TLS are refused with a message");

    static const char *good[] = {"redis://127.0.0.1",         "redis://localhost:6380/",   "redis://[::1]:6380/15",
                                 "redis://u:p%40ss@10.0.0.1", "redis://:pw@127.0.0.1:1/2", "unix:///run/r.sock?db=1&password=x",
                                 "unix://:pw@/run/r.sock"};
    int accepted = 0;
    for (size_t i = 0; i < sbx_nelems(good); i++) {
        sbx_redis_t *r = sbx_redis_connect(loop, good[i], &err);
        if (r != NULL)
            accepted++;
        else
            printf("# refused: %s: %s\n", good[i], err);
        sbx_redis_free(r);
    }
    ok(accepted == (int)sbx_nelems(good), "well-formed urls are accepted (IPv6, %%-encoding, default port, unix query)");
    err = NULL;
    ok(sbx_redis_connect(loop, "redis://example.com", &err) == NULL && strstr(err, "DNS") != NULL,
       "a hostname other than localhost is refused: no DNS in a worker");
}

static void
test_basics(sbx_redis_t *r)
{
    result_t res;

    ok(ROUNDTRIP(r, &res, "SET %s %s", "sbx:greeting", "hello") && strcmp(res.str, "OK") == 0, "SET answers OK");
    ok(ROUNDTRIP(r, &res, "GET %s", "sbx:greeting") && res.type == REDIS_REPLY_STRING && strcmp(res.str, "hello") == 0,
       "GET reads it back");
    ok(!res.inside, "the callback does not run inside sbx_redis_command");
    const char *argv[] = {"GET", "sbx:greeting"};
    memset(&res, 0, sizeof(res));
    ok(sbx_redis_command_argv(r, on_result, &res, 2, argv, NULL) == SBX_OK && run_until(answered, &res) &&
           strcmp(res.str, "hello") == 0,
       "the argv variant works");
    ok(ROUNDTRIP(r, &res, "LPUSH %s x", "sbx:greeting") && res.type == REDIS_REPLY_ERROR && starts_with(res.error, "WRONGTYPE"),
       "an error reply comes with its text as error");
    memset(&res, 0, sizeof(res));
    ok(CMD(r, &res, "SUBSCRIBE x") == SBX_ERROR && CMD(r, &res, "select 1") == SBX_ERROR && CMD(r, &res, "MONITOR") == SBX_ERROR,
       "SUBSCRIBE, SELECT and MONITOR are refused on the shared connection");
    run_for(20);
    ok(res.calls == 0, "a refused command's callback never runs");
}

typedef struct {
    int answered;
    bool in_order;
} incr_t;

static void
on_incr(void *data, redisReply *reply, const char *error)
{
    incr_t *t = data;

    (void)error;
    t->answered++;
    if (reply == NULL || reply->type != REDIS_REPLY_INTEGER || reply->integer != t->answered)
        t->in_order = false;
}

static bool
all_incr(void *t)
{
    return ((incr_t *)t)->answered >= 10000;
}

static void
test_pipeline(sbx_redis_t *r)
{
    incr_t t = {0, true};
    result_t res;
    int sent = 0;

    ROUNDTRIP(r, &res, "DEL sbx:counter");
    for (int i = 0; i < 10000; i++)
        sent += sbx_redis_command(r, on_incr, &t, "INCR sbx:counter") == SBX_OK;
    ok(sent == 10000 && run_until(all_incr, &t), "10,000 pipelined INCRs are all answered");
    ok(t.in_order && t.answered == 10000, "in order, each once (1..10000)");
    ok(ROUNDTRIP(r, &res, "GET sbx:counter") && strcmp(res.str, "10000") == 0, "the counter reads 10000");
}

static void
test_select(server_t *a, sbx_redis_t *db0)
{
    char url[64];
    result_t res;
    sbx_redis_t *r3, *again;

    snprintf(url, sizeof(url), "redis://localhost:%d/3", a->port);
    r3 = connect_ready(url);
    ok(r3 != NULL && sbx_redis_ready(r3), "connects with /3 (and localhost)");
    ok(ROUNDTRIP(r3, &res, "SET sbx:db three") && strcmp(res.str, "OK") == 0, "writes a key through db 3");
    ok(ROUNDTRIP(db0, &res, "GET sbx:db") && res.type == REDIS_REPLY_NIL, "db 0 does not see it");
    again = connect_ready(url);
    ok(ROUNDTRIP(again, &res, "GET sbx:db") && strcmp(res.str, "three") == 0, "a new connection to /3 reads it back");
    sbx_redis_free(again);
    sbx_redis_free(r3);
}

static void
test_auth(server_t *b)
{
    char url[80];
    result_t res;
    states_t st = {0};
    const char *err;
    sbx_redis_t *r, *wrong;

    snprintf(url, sizeof(url), "redis://:%s@127.0.0.1:%d", b->password, b->port);
    r = connect_ready(url);
    ok(r != NULL && sbx_redis_ready(r), "AUTH with the right password: ready");
    ok(ROUNDTRIP(r, &res, "SET sbx:auth yes") && strcmp(res.str, "OK") == 0, "and commands work");
    sbx_redis_free(r);

    snprintf(url, sizeof(url), "redis://:wrong@127.0.0.1:%d", b->port);
    wrong = sbx_redis_connect(loop, url, &err);
    sbx_redis_on_state(wrong, on_state, &st);
    ok(run_until(is_down, wrong) && strstr(sbx_redis_error(wrong), "WRONGPASS") != NULL, "a wrong password is reported");
    printf("# error: %s\n", sbx_redis_error(wrong));
    ok(ROUNDTRIP(wrong, &res, "GET sbx:auth") && res.null && starts_with(res.error, "redis unavailable: AUTH failed: WRONGPASS"),
       "commands get 'redis unavailable: AUTH failed: ...'");
    run_for(400); /* a few retries at 100, 200 ms */
    ok(st.downs == 1 && st.ups == 0 && strstr(st.last_error, "WRONGPASS") != NULL,
       "the state callback hears of the outage once, with the reason");
    sbx_redis_free(wrong);

    snprintf(url, sizeof(url), "redis://127.0.0.1:%d", b->port);
    wrong = sbx_redis_connect(loop, url, &err);
    ok(run_until(is_down, wrong) && strstr(sbx_redis_error(wrong), "NOAUTH") != NULL, "no password where one is needed: NOAUTH");
    sbx_redis_free(wrong);
}

static void
test_unix(server_t *u)
{
    char url[200];
    result_t res;
    sbx_redis_t *r, *r0;

    snprintf(url, sizeof(url), "unix://%s?db=2", u->sock);
    r = connect_ready(url);
    ok(r != NULL && sbx_redis_ready(r), "connects to unix://PATH?db=2");
    ok(ROUNDTRIP(r, &res, "SET sbx:unix %s", "via-socket") && ROUNDTRIP(r, &res, "GET sbx:unix") &&
           strcmp(res.str, "via-socket") == 0,
       "SET/GET over the unix socket");
    snprintf(url, sizeof(url), "unix:%s", u->sock);
    r0 = connect_ready(url);
    ok(ROUNDTRIP(r0, &res, "GET sbx:unix") && res.type == REDIS_REPLY_NIL, "unix:PATH connects too, to db 0");

    /* Freeing the client from inside a callback, with more answers to come. */
    result_t five[5] = {{.free_me = r}};
    for (int i = 0; i < 5; i++)
        CMD(r, &five[i], "GET sbx:unix");
    run_until(answered, &five[4]);
    ok(five[0].calls == 1 && strcmp(five[0].str, "via-socket") == 0, "the first answer arrives and frees the client");
    bool closed = true;
    for (int i = 1; i < 5; i++)
        closed &= five[i].calls == 1 && five[i].null && strcmp(five[i].error, "redis client closed") == 0;
    ok(closed, "the rest are answered 'redis client closed', once each");
    sbx_redis_free(r0);
}

#define INFLIGHT 101

static bool
all_answered(void *results)
{
    for (int i = 0; i < INFLIGHT; i++)
        if (((result_t *)results)[i].calls == 0)
            return false;
    return true;
}

static bool
none_answered(const result_t *results)
{
    for (int i = 0; i < INFLIGHT; i++)
        if (results[i].calls != 0)
            return false;
    return true;
}

static bool
each_once_null(const result_t *results, const char *prefix)
{
    for (int i = 0; i < INFLIGHT; i++) {
        if (results[i].calls != 1 || !results[i].null || !starts_with(results[i].error, prefix)) {
            printf("# command %d: calls %d, error '%s'\n", i, results[i].calls, results[i].error);
            return false;
        }
    }
    return true;
}

/* BLPOP on an empty list holds the connection: everything behind it stays in flight. */
static void
send_blocked(sbx_redis_t *r, result_t *results)
{
    memset(results, 0, sizeof(result_t) * INFLIGHT);
    CMD(r, &results[0], "BLPOP sbx:never 0");
    for (int i = 1; i < INFLIGHT; i++)
        CMD(r, &results[i], "GET sbx:greeting");
    run_for(200);
}

static void
test_outage(server_t *a, sbx_redis_t *r, states_t *st)
{
    static result_t results[INFLIGHT];
    result_t res;
    uint64_t t0, elapsed;

    send_blocked(r, results);
    ok(none_answered(results), "101 commands in flight behind a BLPOP");
    kill_server(a);
    ok(run_until(all_answered, results), "Redis killed: every callback runs");
    run_for(300);
    ok(each_once_null(results, "redis connection lost: "), "each once, with reply NULL and 'redis connection lost: ...'");
    printf("# error: %s\n", results[0].error);
    ok(!sbx_redis_ready(r) && st->downs == 1, "not ready; the state callback heard it");

    memset(&res, 0, sizeof(res));
    ok(CMD(r, &res, "GET sbx:greeting") == SBX_OK && res.calls == 0,
       "a command while down is accepted, not answered inside the call");
    ok(run_until(answered, &res) && res.null && starts_with(res.error, "redis unavailable: "),
       "it is answered on a later turn: 'redis unavailable: ...'");
    printf("# error: %s\n", res.error);

    run_for(2500); /* let the back-off grow (100+200+400+800+1600 ms) */
    start_server(a);
    t0 = sbx_time_mono_ms();
    ok(run_until(is_ready, r), "Redis restarted on the same port: the client reconnects");
    elapsed = sbx_time_mono_ms() - t0;
    ok(elapsed <= SBX_REDIS_BACKOFF_MAX + 500, "within the back-off bound (%llu ms <= %d + 500)", (unsigned long long)elapsed,
       SBX_REDIS_BACKOFF_MAX);
    ok(ROUNDTRIP(r, &res, "SET sbx:back %s", "again") && ROUNDTRIP(r, &res, "GET sbx:back") && strcmp(res.str, "again") == 0,
       "commands work again");
    ok(st->downs == 1 && st->ups == 1 && sbx_redis_error(r)[0] == '\0', "the state callback heard up again; no error shown");
}

static void
test_free(server_t *b)
{
    static result_t results[INFLIGHT];
    char url[80];
    result_t res = {0};
    sbx_redis_t *r;
    const char *err;

    snprintf(url, sizeof(url), "redis://:%s@127.0.0.1:%d", b->password, b->port);
    r = connect_ready(url);
    send_blocked(r, results);
    sbx_redis_free(r);
    ok(each_once_null(results, "redis client closed"),
       "sbx_redis_free answers what is in flight: 'redis client closed', once each");

    snprintf(url, sizeof(url), "redis://127.0.0.1:%d", free_port());
    r = sbx_redis_connect(loop, url, &err);
    CMD(r, &res, "GET x");
    sbx_redis_free(r);
    ok(res.calls == 1 && res.null && strcmp(res.error, "redis client closed") == 0,
       "and what waits for the 'unavailable' turn, before it returns");
    run_for(50);
    ok(res.calls == 1, "only once");

    /* Freed from inside callbacks: valgrind checks that nothing is touched afterwards. */
    result_t first = {0}, second = {0};
    r = sbx_redis_connect(loop, url, &err);
    first.free_me = r;
    CMD(r, &first, "GET x");
    CMD(r, &second, "GET x");
    ok(run_until(answered, &second) && starts_with(first.error, "redis unavailable: ") &&
           strcmp(second.error, "redis client closed") == 0,
       "freed from an 'unavailable' callback: the next one hears 'redis client closed'");
    states_t st = {0};
    r = sbx_redis_connect(loop, url, &err);
    st.free_me = r;
    sbx_redis_on_state(r, on_state, &st);
    ok(run_until(heard_down, &st) && st.downs == 1 && strstr(st.last_error, "refused") != NULL,
       "the state callback hears a refused first attempt, and may free the client");
    run_for(300);
    ok(st.downs == 1, "and nothing runs after that");
}

static void
test_connect_timeout(void)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sin);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    char url[64];
    const char *err;
    uint64_t t0, elapsed;
    sbx_redis_t *r;

    /* Listens but never answers: TCP connects through the backlog, and the handshake's PING waits forever. */
    if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0 || listen(fd, 16) != 0 ||
        getsockname(fd, (struct sockaddr *)&sin, &len) != 0)
        bail_out("cannot listen");
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d", ntohs(sin.sin_port));
    t0 = sbx_time_mono_ms();
    r = sbx_redis_connect(loop, url, &err);
    ok(run_until(is_down, r) && strstr(sbx_redis_error(r), "within 5000 ms") != NULL,
       "a peer that never answers: the attempt fails after the connect timeout");
    elapsed = sbx_time_mono_ms() - t0;
    ok(elapsed >= SBX_REDIS_CONNECT_TIMEOUT && elapsed <= SBX_REDIS_CONNECT_TIMEOUT + 1000, "after %llu ms",
       (unsigned long long)elapsed);
    printf("# error: %s\n", sbx_redis_error(r));
    sbx_redis_free(r);
    close(fd);
}

int
main(void)
{
    static server_t a, b = {.password = "secret"}, u; /* static: the atexit teardown still sees them */
    states_t st = {0};
    sbx_redis_t *r;
    char url[64];

    sbx_log_set_role("test");
    sbx_log_set_level(getenv("SBX_TEST_VERBOSE") != NULL ? SBX_LOG_DEBUG : SBX_LOG_ERROR + 1);
    signal(SIGPIPE, SIG_IGN); /* as in the worker: hiredis write()s to sockets the peer may have closed */
    if (mkdtemp(tmpdir) == NULL)
        bail_out("mkdtemp failed");
    have_tmpdir = true;
    atexit(teardown);
    servers[0] = &a, servers[1] = &b, servers[2] = &u;
    a.port = free_port();
    b.port = free_port();
    snprintf(u.sock, sizeof(u.sock), "%s/redis.sock", tmpdir);
    start_server(&a);
    start_server(&b);
    start_server(&u);
    loop = h2o_evloop_create();

    test_urls();
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d", a.port);
    r = connect_ready(url);
    if (r == NULL || !sbx_redis_ready(r))
        bail_out("cannot connect to the first redis-server");
    sbx_redis_on_state(r, on_state, &st);
    test_basics(r);
    test_pipeline(r);
    test_select(&a, r);
    test_auth(&b);
    test_unix(&u);
    test_outage(&a, r, &st);
    test_free(&b);
    test_connect_timeout();

    sbx_redis_free(r);
    run_for(20); /* h2o frees closed sockets on its next turn */
    teardown();
    return done_testing();
}
