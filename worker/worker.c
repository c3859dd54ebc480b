/*
 * A worker's life: set up h2o on the inherited listeners, run the event
 * loop, and on SIGQUIT stop accepting and drain before exiting.
 */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "control.h"
#include "log.h"
#include "registry.h"
#include "worker.h"

#define MAX_LISTENERS 64
#define ACCEPT_BATCH 16            /* connections taken per readiness event, so one busy listener cannot starve the loop */
#define IDLE_CLOSE_MS 300          /* a draining worker closes keep-alive connections idle this long */
#define MAX_REQUEST_BODY (1 << 20) /* bytes h2o buffers; routes apply their own, smaller limits */

sbx_worker_t sbx_worker;

static volatile sig_atomic_t sig_quit, sig_terminate, sig_reopen;
static h2o_socket_t *listeners[MAX_LISTENERS];
static int listener_fds[MAX_LISTENERS];
static size_t nlisteners;

/*
 * Accepted connections by fd, so that a draining worker can find its idle
 * keep-alive connections: h2o 2.2.5 leaves them open until their 10 s
 * timeout, which would hold every reload and stop for that long.
 */
typedef struct {
    h2o_socket_t *sock;
    size_t bytes_read;   /* at the previous drain check */
    uint64_t idle_since; /* ms, monotonic; 0 while busy */
} tracked_t;

static tracked_t *tracked;
static int ntracked; /* size of tracked[], indexed by fd */

static void
on_signal(int signo)
{
    int saved = errno;

    if (signo == SIGQUIT)
        sig_quit = 1;
    else if (signo == SIGUSR1)
        sig_reopen = 1;
    else
        sig_terminate = 1;
    errno = saved;
}

static void
install_signals(const sigset_t *unblock)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGQUIT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGHUP, &sa, NULL);
    sigaction(SIGPIPE, &sa, NULL);
    sa.sa_handler = SIG_DFL;
    sigaction(SIGCHLD, &sa, NULL);
    sigaction(SIGALRM, &sa, NULL);
    sigprocmask(SIG_SETMASK, unblock, NULL);
    /* If the master dies (even by SIGKILL), drain and exit rather than serve unsupervised. */
    prctl(PR_SET_PDEATHSIG, SIGQUIT);
}

static void
on_conn_close(void *data)
{
    int fd = (int)(intptr_t)data;

    if (fd < ntracked)
        tracked[fd].sock = NULL;
}

static void
on_accept(h2o_socket_t *listener, const char *err)
{
    int lfd = listener_fds[(size_t)listener->data], fd;
    h2o_socket_t *sock;

    if (err != NULL)
        return;
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        /* Another worker may have taken the connection first: EAGAIN is normal. */
        if ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) == -1) {
            if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                sbx_log_warn("accept failed", "error=%s", strerror(errno));
            return;
        }
        int on = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
        sock = h2o_evloop_socket_create(sbx_worker.loop, fd, 0);
        if (fd < ntracked) {
            tracked[fd] = (tracked_t){.sock = sock};
            sock->on_close.cb = on_conn_close;
            sock->on_close.data = (void *)(intptr_t)fd;
        }
        h2o_accept(&sbx_worker.accept_ctx, sock);
    }
}

void
sbx_worker_untrack(h2o_socket_t *sock)
{
    int fd = (int)(intptr_t)sock->on_close.data;

    if (sock->on_close.cb == on_conn_close && fd < ntracked && tracked[fd].sock == sock)
        tracked[fd].sock = NULL;
}

/*
 * Half-closes connections that have sat idle between requests for
 * IDLE_CLOSE_MS: h2o then reads EOF and closes them through its own path.
 * A connection in the middle of a request (reading a body, writing a
 * response) shows progress or pending I/O and is left to finish.
 */
static void
close_idle_connections(void)
{
    uint64_t now = sbx_time_mono_ms();

    for (int fd = 0; fd < ntracked; fd++) {
        tracked_t *t = &tracked[fd];
        if (t->sock == NULL)
            continue;
        bool idle = h2o_socket_is_reading(t->sock) && !h2o_socket_is_writing(t->sock) && t->sock->input->size == 0 &&
                    t->sock->bytes_read == t->bytes_read;
        t->bytes_read = t->sock->bytes_read;
        if (!idle)
            t->idle_since = 0;
        else if (t->idle_since == 0)
            t->idle_since = now;
        else if (now - t->idle_since >= IDLE_CLOSE_MS)
            shutdown(fd, SHUT_RD);
    }
}

static void
stop_accepting(void)
{
    for (size_t i = 0; i < nlisteners; i++) {
        h2o_socket_read_stop(listeners[i]);
        h2o_socket_close(listeners[i]); /* closes this worker's copy; the socket lives on in the others */
    }
    nlisteners = 0;
}

static bool
drained(void)
{
    return h2o_linklist_is_empty(&sbx_worker.ctx.http1._conns) && sbx_worker.inflight == 0 && sbx_worker.terminals == 0;
}

static int
setup_h2o(const int *fds, size_t nfds)
{
    h2o_globalconf_t *hc = &sbx_worker.h2o_conf;
    h2o_hostconf_t *host;
    h2o_pathconf_t *path;
    h2o_handler_t *handler;

    h2o_config_init(hc);
    hc->server_name = h2o_iovec_init(H2O_STRLIT("sandboxd"));
    hc->max_request_entity_size = MAX_REQUEST_BODY;
    host = h2o_config_register_host(hc, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    /*
     * The API and the endpoints go to our router; everything else is the terminal page's files
     * (h2o's file handler), or the router's 404 when the page is switched off.
     */
    static const char *const routed[] = {"/api", "/health", "/metrics", "/execute"};
    for (size_t i = 0; i < sbx_nelems(routed) + 1; i++) {
        bool root = i == sbx_nelems(routed);
        path = h2o_config_register_path(host, root ? "/" : routed[i], 0);
        if (root && sbx_worker.conf->page_enabled) {
            static const char *index_files[] = {"index.html", NULL};
            h2o_file_register(path, sbx_worker.conf->page_dir, index_files, NULL, 0);
            continue;
        }
        if ((handler = h2o_create_handler(path, sizeof(*handler))) == NULL)
            return SBX_ERROR;
        handler->on_req = sbx_router_on_req;
    }

    sbx_worker.loop = h2o_evloop_create();
    h2o_context_init(&sbx_worker.ctx, sbx_worker.loop, hc);
    sbx_worker.accept_ctx.ctx = &sbx_worker.ctx;
    sbx_worker.accept_ctx.hosts = hc->hosts;
    if (nfds > MAX_LISTENERS)
        return SBX_ERROR;
    struct rlimit rl;
    ntracked = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 1 << 20 ? (int)rl.rlim_cur : 1 << 20;
    if ((tracked = calloc((size_t)ntracked, sizeof(*tracked))) == NULL)
        return SBX_ERROR;
    for (size_t i = 0; i < nfds; i++) {
        listener_fds[i] = fds[i];
        listeners[i] = h2o_evloop_socket_create(sbx_worker.loop, fds[i], H2O_SOCKET_FLAG_DONT_READ);
        listeners[i]->data = (void *)i;
        h2o_socket_read_start(listeners[i], on_accept);
    }
    nlisteners = nfds;
    return SBX_OK;
}

static void
begin_drain(void)
{
    sbx_worker.draining = true;
    sbx_worker.drain_deadline = sbx_time_mono_ms() + sbx_worker.conf->drain_timeout;
    stop_accepting();
    sbx_housekeeping_stop();
    /* Idle keep-alive connections close now; busy ones after their response. */
    h2o_context_request_shutdown(&sbx_worker.ctx);
    sbx_log_info("worker draining", "generation=%u", sbx_worker.generation);
    sbx_control_send(sbx_worker.chan, &(sbx_control_t){SBX_CONTROL_DRAINING, getpid(), sbx_worker.slot, sbx_worker.generation});
}

int
sbx_worker_main(const sbx_conf_t *conf, const int *fds, size_t nfds, sbx_shm_t *shm, unsigned slot, unsigned generation, int chan,
                const sigset_t *unblock)
{
    sbx_worker.conf = conf;
    sbx_worker.shm = shm;
    sbx_worker.slot = slot;
    sbx_worker.generation = generation;
    sbx_worker.chan = chan;
    install_signals(unblock);
    if (getppid() == 1) /* the master died between fork() and prctl() */
        return 0;
    if (setup_h2o(fds, nfds) != SBX_OK) {
        sbx_log_error("worker cannot start", "slot=%u", slot);
        return 2;
    }
    sbx_registry_start();
    sbx_housekeeping_start();
    sbx_log_info("worker serving", "slot=%u generation=%u listeners=%zu", slot, generation, nfds);
    sbx_control_send(chan, &(sbx_control_t){SBX_CONTROL_READY, getpid(), slot, generation});

    for (;;) {
        /* A bounded wait, so flags set by a signal between checks are seen within 1 s at worst (100 ms while draining). */
        h2o_evloop_run(sbx_worker.loop, sbx_worker.draining ? 100 : 1000);
        if (sig_terminate)
            break;
        if (sig_reopen) {
            sig_reopen = 0;
            sbx_log_reopen();
        }
        if (sig_quit && !sbx_worker.draining)
            begin_drain();
        if (sbx_worker.draining) {
            close_idle_connections();
            if (drained())
                break;
            /* Past the deadline terminals close themselves (1001); give their close frames a moment. */
            if (sbx_time_mono_ms() >= sbx_worker.drain_deadline + 3000) {
                sbx_log_warn("drain timeout: closing what is left", "terminals=%u", sbx_worker.terminals);
                break;
            }
        }
    }
    sbx_log_info("worker stopped", "generation=%u", generation);
    return 0;
}
