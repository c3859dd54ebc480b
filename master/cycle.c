/*
 * The master's process cycle, after nginx's ngx_master_process_cycle():
 * signal handlers only set flags; the loop sleeps in ppoll() with signals
 * unblocked only there (as sigsuspend() would, but it also wakes for the
 * workers' control messages) and acts on them: reaps and respawns
 * workers, reloads, stops.
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "control.h"
#include "log.h"
#include "master.h"
#include "worker.h"

#define MAX_PROCS 1024
#define RESPAWN_MAX_DELAY 30000 /* ms: a worker that keeps failing is retried at most this often */
#define FAST_STOP_GRACE 5000    /* ms a worker gets after SIGTERM before SIGKILL */

extern char **environ;

static volatile sig_atomic_t sig_reload, sig_quit, sig_terminate, sig_reopen, sig_child, sig_alarm;

enum { PROC_FREE, PROC_RUNNING, PROC_RETIRING, PROC_WAITING };

typedef struct {
    int state;
    int chan; /* the master's end of this worker's control channel, or -1 */
    bool ready;
    unsigned generation;
    pid_t pid;
    unsigned slot;
    uint64_t started;    /* ms, monotonic */
    uint64_t respawn_at; /* ms, monotonic, for PROC_WAITING */
    uint64_t delay;      /* ms, the back-off used for the last respawn */
} proc_t;

typedef struct {
    const char *conf_file;
    sbx_conf_t *conf;
    sbx_listener_t *listeners;
    size_t nlisteners;
    sbx_shm_t *shm;
    unsigned generation;
    proc_t procs[MAX_PROCS];
    uint64_t stop_deadline; /* ms, monotonic; 0 while running */
    unsigned announced;     /* generation + 1 whose workers all said ready */
} master_t;

static void
on_signal(int signo)
{
    int saved = errno;

    switch (signo) {
    case SIGHUP:
        sig_reload = 1;
        break;
    case SIGQUIT:
        sig_quit = 1;
        break;
    case SIGTERM:
    case SIGINT:
        sig_terminate = 1;
        break;
    case SIGUSR1:
        sig_reopen = 1;
        break;
    case SIGCHLD:
        sig_child = 1;
        break;
    case SIGALRM:
        sig_alarm = 1;
        break;
    }
    errno = saved;
}

static void
install_signals(sigset_t *blocked)
{
    static const int sigs[] = {SIGHUP, SIGQUIT, SIGTERM, SIGINT, SIGUSR1, SIGCHLD, SIGALRM};
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigemptyset(blocked);
    for (size_t i = 0; i < sbx_nelems(sigs); i++) {
        sigaction(sigs[i], &sa, NULL);
        sigaddset(blocked, sigs[i]);
    }
    signal(SIGPIPE, SIG_IGN);
    /* Signals wait while we work and are delivered inside sigsuspend(), so no flag is missed. */
    sigprocmask(SIG_BLOCK, blocked, NULL);
}

static int
listen_fds(master_t *m, int *fds)
{
    for (size_t i = 0; i < m->nlisteners; i++)
        fds[i] = m->listeners[i].fd;
    return (int)m->nlisteners;
}

static void
spawn(master_t *m, proc_t *p, unsigned slot)
{
    int fds[64], chan[2] = {-1, -1};
    int n = listen_fds(m, fds);
    pid_t pid;

    /* One packet per message, so a message is never split or merged with the next. */
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, chan) == -1)
        sbx_log_warn("cannot make a control channel; the worker runs without one", "error=%s", strerror(errno));
    pid = fork();
    if (pid == -1) {
        sbx_log_error("fork failed; will retry", "error=%s", strerror(errno));
        p->state = PROC_WAITING;
        p->slot = slot;
        p->respawn_at = sbx_time_mono_ms() + 1000;
        return;
    }
    if (pid == 0) {
        sigset_t none;
        sigemptyset(&none);
        sbx_log_set_role("worker");
        /* The other workers' channels are the master's business. */
        for (size_t i = 0; i < MAX_PROCS; i++)
            if (m->procs[i].state != PROC_FREE && m->procs[i].chan >= 0 && &m->procs[i] != p)
                close(m->procs[i].chan);
        if (chan[0] >= 0)
            close(chan[0]);
        /* The worker installs its own handlers before unblocking. */
        _exit(sbx_worker_main(m->conf, fds, (size_t)n, m->shm, slot, m->generation, chan[1], &none));
    }
    if (chan[1] >= 0)
        close(chan[1]);
    p->chan = chan[0];
    p->ready = false;
    p->generation = m->generation;
    p->state = PROC_RUNNING;
    p->pid = pid;
    p->slot = slot;
    p->started = sbx_time_mono_ms();
    sbx_log_info("worker started", "worker=%d slot=%u generation=%u", (int)pid, slot, m->generation);
}

static proc_t *
free_proc(master_t *m)
{
    for (size_t i = 0; i < MAX_PROCS; i++)
        if (m->procs[i].state == PROC_FREE)
            return &m->procs[i];
    return NULL;
}

static void
spawn_generation(master_t *m)
{
    for (unsigned slot = 0; slot < m->conf->workers; slot++) {
        proc_t *p = free_proc(m);
        if (p == NULL) {
            sbx_log_error("too many worker processes", "max=%d", MAX_PROCS);
            return;
        }
        memset(p, 0, sizeof(*p));
        p->chan = -1;
        spawn(m, p, slot);
    }
}

static void
signal_workers(master_t *m, int signo, int only_state)
{
    for (size_t i = 0; i < MAX_PROCS; i++) {
        proc_t *p = &m->procs[i];
        if ((p->state == PROC_RUNNING || p->state == PROC_RETIRING) && (only_state == 0 || p->state == only_state))
            kill(p->pid, signo);
    }
}

static size_t
live_workers(master_t *m)
{
    size_t n = 0;

    for (size_t i = 0; i < MAX_PROCS; i++)
        n += m->procs[i].state == PROC_RUNNING || m->procs[i].state == PROC_RETIRING;
    return n;
}

static void
reap(master_t *m, bool stopping)
{
    int status;
    pid_t pid;

    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        proc_t *p = NULL;
        for (size_t i = 0; i < MAX_PROCS && p == NULL; i++)
            if (m->procs[i].pid == pid && (m->procs[i].state == PROC_RUNNING || m->procs[i].state == PROC_RETIRING))
                p = &m->procs[i];
        if (p == NULL)
            continue;
        int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1, sig = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
        if (p->chan >= 0)
            close(p->chan);
        p->chan = -1;
        p->ready = false;
        if (p->state == PROC_RETIRING || stopping) {
            sbx_log_info("worker exited", "worker=%d status=%d signal=%d", (int)pid, code, sig);
            p->state = PROC_FREE;
            continue;
        }
        /* A worker of the current generation died on its own: respawn it, backing off if it keeps dying. */
        uint64_t now = sbx_time_mono_ms(), lived = now - p->started;
        p->delay = (code == 2 || lived < 1000) ? (p->delay ? p->delay * 2 : 250) : 0;
        if (p->delay > RESPAWN_MAX_DELAY)
            p->delay = RESPAWN_MAX_DELAY;
        sbx_log_error("worker died; respawning", "worker=%d status=%d signal=%d lived_ms=%llu respawn_in_ms=%llu", (int)pid, code,
                      sig, (unsigned long long)lived, (unsigned long long)p->delay);
        sbx_shm_count(m->shm, worker_restarts);
        p->state = PROC_WAITING;
        p->respawn_at = now + p->delay;
    }
}

/* Reads the workers' control messages; logs once when a whole generation serves. */
static void
read_channels(master_t *m)
{
    char buf[SBX_CONTROL_MAX];
    sbx_control_t msg;
    ssize_t n;

    for (size_t i = 0; i < MAX_PROCS; i++) {
        proc_t *p = &m->procs[i];
        if (p->chan < 0 || p->state == PROC_FREE)
            continue;
        while ((n = recv(p->chan, buf, sizeof(buf), MSG_DONTWAIT)) > 0) {
            if (sbx_control_decode(buf, (size_t)n, &msg) != SBX_OK) {
                sbx_log_warn("bad control message from a worker", "worker=%d bytes=%zd", (int)p->pid, n);
                continue;
            }
            if (msg.type == SBX_CONTROL_READY)
                p->ready = true;
        }
        if (n == 0) { /* the worker is gone; reap() will say why */
            close(p->chan);
            p->chan = -1;
        }
    }
    if (m->announced != m->generation + 1) {
        size_t ready = 0, want = 0;
        for (size_t i = 0; i < MAX_PROCS; i++) {
            proc_t *p = &m->procs[i];
            if (p->state == PROC_RUNNING && p->generation == m->generation)
                want++, ready += p->ready;
        }
        if (want > 0 && ready == want && want == m->conf->workers) {
            m->announced = m->generation + 1;
            sbx_log_notice("all workers serving", "generation=%u workers=%zu", m->generation, want);
            sbx_notify("READY=1\nSTATUS=serving");
        }
    }
}

/* Sleeps until a signal or a control message; signals are unblocked only inside ppoll, as in sigsuspend. */
static void
wait_events(master_t *m, const sigset_t *none)
{
    struct pollfd pfd[MAX_PROCS];
    nfds_t n = 0;

    for (size_t i = 0; i < MAX_PROCS; i++)
        if (m->procs[i].chan >= 0 && m->procs[i].state != PROC_FREE)
            pfd[n].fd = m->procs[i].chan, pfd[n].events = POLLIN, pfd[n++].revents = 0;
    ppoll(pfd, n, NULL, none);
}

static void
respawn_due(master_t *m)
{
    uint64_t now = sbx_time_mono_ms();

    for (size_t i = 0; i < MAX_PROCS; i++) {
        proc_t *p = &m->procs[i];
        if (p->state == PROC_WAITING && p->respawn_at <= now)
            spawn(m, p, p->slot);
    }
}

static void
log_errors(const char *msg, const char *errors)
{
    char line[1024];
    const char *p = errors;

    while (*p != '\0') {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        snprintf(line, sizeof(line), "%.*s", (int)n, p);
        sbx_log_error(msg, "error=%s", line);
        p += n + (nl != NULL);
    }
}

static void
apply_log_settings(const sbx_conf_t *conf)
{
    sbx_log_set_level(conf->log_level);
    if (sbx_log_open(conf->log_file) != SBX_OK)
        sbx_log_error("cannot open the log file; logging to the previous target", "file=%s error=%s", conf->log_file,
                      strerror(errno));
}

static void
reload(master_t *m)
{
    char err[8192];
    sbx_conf_t *conf = sbx_conf_load(m->conf_file, environ, err, sizeof(err));
    sbx_listener_t *ls;

    sbx_log_notice("reloading", "file=%s", m->conf_file);
    sbx_notify_reloading();
    if (conf == NULL) {
        log_errors("reload failed; the old configuration keeps serving", err);
        sbx_notify("READY=1\nSTATUS=reload failed; the old configuration serves");
        return;
    }
    if ((ls = calloc(conf->nlisten, sizeof(*ls))) == NULL || sbx_listen_open(conf, m->listeners, m->nlisteners, ls) != SBX_OK) {
        sbx_log_error("reload failed; the old configuration keeps serving", "error=%s", "cannot open the listeners");
        sbx_notify("READY=1\nSTATUS=reload failed; the old configuration serves");
        free(ls);
        sbx_conf_free(conf);
        return;
    }
    if (conf->capacity != m->shm->capacity)
        sbx_log_warn("sessions.capacity changes only at restart; keeping the current zone", "capacity=%u requested=%u",
                     m->shm->capacity, conf->capacity);
    /* Listeners no longer configured: the old workers keep their own copies until they drain. */
    sbx_listen_close(m->listeners, m->nlisteners);
    free(m->listeners);
    m->listeners = ls;
    m->nlisteners = conf->nlisten;
    sbx_conf_free(m->conf);
    m->conf = conf;
    apply_log_settings(conf);

    /* Old generation: stop accepting and drain. New generation: start now, on the same sockets. */
    for (size_t i = 0; i < MAX_PROCS; i++) {
        proc_t *p = &m->procs[i];
        if (p->state == PROC_RUNNING) {
            p->state = PROC_RETIRING;
            kill(p->pid, SIGQUIT);
        } else if (p->state == PROC_WAITING) {
            p->state = PROC_FREE;
        }
    }
    m->generation++;
    spawn_generation(m);
    sbx_shm_count(m->shm, reloads);
    sbx_log_notice("reloaded", "generation=%u workers=%u", m->generation, conf->workers);
}

static void
arm_timer(master_t *m)
{
    struct itimerval it = {{0, 0}, {0, 0}};
    bool pending = m->stop_deadline != 0;

    for (size_t i = 0; i < MAX_PROCS && !pending; i++)
        pending = m->procs[i].state == PROC_WAITING;
    if (pending)
        it.it_value.tv_usec = 100000; /* 100 ms ticks while something is due */
    setitimer(ITIMER_REAL, &it, NULL);
}

static int
write_pid_file(const char *path)
{
    char buf[32];
    FILE *fp;

    if ((fp = fopen(path, "w")) == NULL) {
        sbx_log_error("cannot write the pid file", "file=%s error=%s", path, strerror(errno));
        return SBX_ERROR;
    }
    snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
    fputs(buf, fp);
    fclose(fp);
    return SBX_OK;
}

int
sbx_master_run(const char *conf_file, sbx_conf_t *conf)
{
    static master_t m; /* static: procs[] is large */
    sigset_t blocked, none;
    bool quitting = false, terminating = false;
    int code = 0;

    m.conf_file = conf_file;
    m.conf = conf;
    for (size_t i = 0; i < MAX_PROCS; i++)
        m.procs[i].chan = -1; /* 0 would be stdin */
    apply_log_settings(conf);
    install_signals(&blocked);
    sigemptyset(&none);
    if ((m.listeners = calloc(conf->nlisten, sizeof(*m.listeners))) == NULL ||
        sbx_listen_open(conf, NULL, 0, m.listeners) != SBX_OK)
        return 1;
    m.nlisteners = conf->nlisten;
    if ((m.shm = sbx_shm_create(conf->capacity, (uint32_t)conf->ws_replay)) == NULL)
        return 1;
    if (write_pid_file(conf->pid_file) != SBX_OK)
        return 1;
    sbx_log_notice("sandboxd started", "version=%s workers=%u listen=%s", SBX_VERSION, conf->workers, conf->listen[0].name);
    spawn_generation(&m);

    for (;;) {
        arm_timer(&m);
        if (!(sig_reload || sig_quit || sig_terminate || sig_reopen || sig_child || sig_alarm))
            wait_events(&m, &none);
        read_channels(&m);
        /* Take every flag at once: a flag left set would keep sigsuspend() from sleeping. */
        bool got_child = sig_child, got_term = sig_terminate, got_quit = sig_quit, got_reload = sig_reload, got_reopen = sig_reopen;
        sig_alarm = sig_child = sig_terminate = sig_quit = sig_reload = sig_reopen = 0;
        if (got_child)
            reap(&m, quitting || terminating);
        if (got_term && !terminating) {
            terminating = true;
            sbx_notify("STOPPING=1");
            sbx_log_notice("fast stop", NULL);
            signal_workers(&m, SIGTERM, 0);
            m.stop_deadline = sbx_time_mono_ms() + FAST_STOP_GRACE;
        } else if (got_quit && !quitting && !terminating) {
            quitting = true;
            sbx_notify("STOPPING=1");
            sbx_log_notice("graceful stop: draining workers", "drain_timeout_ms=%llu", (unsigned long long)m.conf->drain_timeout);
            signal_workers(&m, SIGQUIT, 0);
            m.stop_deadline = sbx_time_mono_ms() + m.conf->drain_timeout + FAST_STOP_GRACE;
        }
        if (quitting || terminating) {
            if (live_workers(&m) == 0)
                break;
            if (sbx_time_mono_ms() >= m.stop_deadline) {
                sbx_log_error("workers did not stop in time; killing them", NULL);
                signal_workers(&m, SIGKILL, 0);
                m.stop_deadline = sbx_time_mono_ms() + 1000;
                code = 1;
            }
            continue;
        }
        if (got_reload)
            reload(&m);
        if (got_reopen) {
            sbx_log_reopen();
            signal_workers(&m, SIGUSR1, 0);
            sbx_log_notice("log reopened", NULL);
        }
        respawn_due(&m);
    }
    unlink(m.conf->pid_file);
    sbx_listen_close(m.listeners, m.nlisteners);
    free(m.listeners);
    sbx_log_notice("sandboxd stopped", "code=%d", code);
    sbx_shm_destroy(m.shm);
    sbx_conf_free(m.conf);
    return code;
}
