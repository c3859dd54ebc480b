/*
 * A worker's life: set up h2o on the inherited listeners, run the event
 * loop, and on SIGQUIT stop accepting and drain before exiting.
 */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "log.h"
#include "worker.h"

#define MAX_LISTENERS 64
#define ACCEPT_BATCH 16 /* connections taken per readiness event, so one busy listener cannot starve the loop */
#define MAX_REQUEST_BODY (1 << 20) /* bytes h2o buffers; routes apply their own, smaller limits */

sbx_worker_t sbx_worker;

static volatile sig_atomic_t sig_quit, sig_terminate, sig_reopen;
static h2o_socket_t *listeners[MAX_LISTENERS];
static size_t nlisteners;

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
on_accept(h2o_socket_t *listener, const char *err)
{
    h2o_socket_t *sock;

    if (err != NULL)
        return;
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        /* Another worker may have taken the connection first: NULL is normal. */
        if ((sock = h2o_evloop_socket_accept(listener)) == NULL)
            return;
        h2o_accept(&sbx_worker.accept_ctx, sock);
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
    return h2o_linklist_is_empty(&sbx_worker.ctx.http1._conns);
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
    path = h2o_config_register_path(host, "/", 0);
    if ((handler = h2o_create_handler(path, sizeof(*handler))) == NULL)
        return SBX_ERROR;
    handler->on_req = sbx_router_on_req;

    sbx_worker.loop = h2o_evloop_create();
    h2o_context_init(&sbx_worker.ctx, sbx_worker.loop, hc);
    sbx_worker.accept_ctx.ctx = &sbx_worker.ctx;
    sbx_worker.accept_ctx.hosts = hc->hosts;
    if (nfds > MAX_LISTENERS)
        return SBX_ERROR;
    for (size_t i = 0; i < nfds; i++) {
        listeners[i] = h2o_evloop_socket_create(sbx_worker.loop, fds[i], H2O_SOCKET_FLAG_DONT_READ);
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
    /* Idle keep-alive connections close now; busy ones after their response. */
    h2o_context_request_shutdown(&sbx_worker.ctx);
    sbx_log_info("worker draining", "generation=%u", sbx_worker.generation);
}

int
sbx_worker_main(const sbx_conf_t *conf, const int *fds, size_t nfds, sbx_shm_t *shm, unsigned slot, unsigned generation,
                const sigset_t *unblock)
{
    sbx_worker.conf = conf;
    sbx_worker.shm = shm;
    sbx_worker.slot = slot;
    sbx_worker.generation = generation;
    install_signals(unblock);
    if (getppid() == 1) /* the master died between fork() and prctl() */
        return 0;
    if (setup_h2o(fds, nfds) != SBX_OK) {
        sbx_log_error("worker cannot start", "slot=%u", slot);
        return 2;
    }

    for (;;) {
        /* A bounded wait, so flags set by a signal between checks are seen within 1 s at worst. */
        h2o_evloop_run(sbx_worker.loop, 1000);
        if (sig_terminate)
            break;
        if (sig_reopen) {
            sig_reopen = 0;
            sbx_log_reopen();
        }
        if (sig_quit && !sbx_worker.draining)
            begin_drain();
        if (sbx_worker.draining) {
            if (drained())
                break;
            if (sbx_time_mono_ms() >= sbx_worker.drain_deadline) {
                sbx_log_warn("drain timeout: closing what is left", NULL);
                break;
            }
        }
    }
    sbx_log_info("worker stopped", "generation=%u", generation);
    return 0;
}
