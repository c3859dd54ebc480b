/*
 * The master process: owns the configuration, the listening sockets and
 * the shared zone, and keeps `workers` worker processes alive. It does no
 * network I/O of its own.
 */
#ifndef SBX_MASTER_H
#define SBX_MASTER_H

#include "conf.h"
#include "shm.h"

typedef struct sbx_listener_s {
    sbx_listen_t addr;
    int fd;
} sbx_listener_t;

/*
 * Opens a non-blocking listening socket for each address of conf. A socket
 * in old[] with the same address is reused (its fd moved into out, and set
 * to -1 in old) so that a reload never closes a port that stays
 * configured. On failure closes what it opened, leaves old untouched,
 * logs the reason and returns SBX_ERROR. out must hold conf->nlisten.
 */
int sbx_listen_open(const sbx_conf_t *conf, sbx_listener_t *old, size_t nold, sbx_listener_t *out);
/* Closes every fd >= 0 in ls[0..n). */
void sbx_listen_close(sbx_listener_t *ls, size_t n);

/*
 * Runs the master until a stop signal; conf_file is re-read on SIGHUP.
 * Takes ownership of conf. Returns the process exit code.
 */
int sbx_master_run(const char *conf_file, sbx_conf_t *conf);

/*
 * notify.c: tells systemd (Type=notify) about the master's state through
 * $NOTIFY_SOCKET: "READY=1" once every worker of a generation serves,
 * RELOADING=1 around a SIGHUP, "STOPPING=1". A no-op outside systemd.
 * Never blocks (one datagram). Returns SBX_OK or SBX_ERROR.
 */
int sbx_notify(const char *state);
int sbx_notify_reloading(void);

#endif
