/*
 * A worker process: one h2o evloop serving HTTP (and, later, WebSocket
 * terminals) on the listening sockets inherited from the master. It never
 * blocks: every Docker and Redis call is asynchronous on this loop.
 */
#ifndef SBX_WORKER_H
#define SBX_WORKER_H

#include <signal.h>
#include <stdbool.h>
#include <h2o.h>

#include "conf.h"
#include "shm.h"

typedef struct sbx_worker_s {
    const sbx_conf_t *conf; /* inherited from the master; read-only */
    sbx_shm_t *shm;
    h2o_evloop_t *loop;
    h2o_globalconf_t h2o_conf;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx;
    unsigned slot, generation;
    int chan; /* control channel to the master (control.h) */
    bool draining;
    unsigned inflight;       /* asynchronous operations (Docker calls for a request) still running */
    unsigned terminals;      /* live WebSocket terminals */
    uint64_t drain_deadline; /* ms, monotonic */
} sbx_worker_t;

/* The one worker of this process (valid after sbx_worker_main starts). */
extern sbx_worker_t sbx_worker;

/*
 * Runs a worker until it is told to stop. fds are the listening sockets
 * (shared with the master and the other workers; this process closes its
 * copies when it drains). Returns the exit code: 0 after a clean stop, 2
 * when the worker could not start (the master then backs off). chan is
 * this worker's end of its control channel to the master (-1: none).
 */
int sbx_worker_main(const sbx_conf_t *conf, const int *fds, size_t nfds, sbx_shm_t *shm, unsigned slot, unsigned generation,
                    int chan, const sigset_t *unblock);

/* Tells the drain logic that sock is no longer an HTTP connection (it was upgraded to a WebSocket). */
void sbx_worker_untrack(h2o_socket_t *sock);

/* router.c: the one h2o handler; dispatches on method and path. */
int sbx_router_on_req(h2o_handler_t *self, h2o_req_t *req);

/* health.c: GET /health. */
int sbx_health_get(h2o_req_t *req);

/* api_sessions.c: the toolkata session API under /api/v1. */
int sbx_api_sessions_create(h2o_req_t *req);
int sbx_api_sessions_get(h2o_req_t *req, const char *id);
int sbx_api_sessions_delete(h2o_req_t *req, const char *id, bool from_beacon);
int sbx_api_environments(h2o_req_t *req);

/* metrics.c: GET /metrics (Prometheus) and GET /api/v1/status. */
int sbx_metrics_get(h2o_req_t *req);
int sbx_status_get(h2o_req_t *req);

/* execute.c: POST /api/v1/execute, one-shot runs. */
int sbx_api_execute(h2o_req_t *req);

/* terminal.c: GET /api/v1/sessions/:id/ws, the WebSocket terminal. */
int sbx_terminal_open(h2o_req_t *req, const char *id);

/* housekeeping.c: reaping under the shared lease; started once per worker. */
void sbx_housekeeping_start(void);
void sbx_housekeeping_stop(void);

#endif
