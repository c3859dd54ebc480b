/* Listening sockets: opened by the master, inherited by every worker. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "master.h"

static int
open_one(const sbx_listen_t *addr)
{
    int fd, on = 1;

    /*
     * No SO_REUSEPORT: every worker polls the one shared socket, so a
     * connection queued in the backlog is served by whichever worker is
     * alive, even while old workers drain away during a reload.
     */
    if ((fd = socket(addr->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) == -1)
        goto fail;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) == -1)
        goto fail;
    if (addr->addr.ss_family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on)) == -1)
        goto fail;
    if (bind(fd, (const struct sockaddr *)&addr->addr, addr->addrlen) == -1)
        goto fail;
    if (listen(fd, 4096) == -1)
        goto fail;
    return fd;

fail:
    sbx_log_error("cannot listen", "address=%s error=%s", addr->name, strerror(errno));
    if (fd != -1)
        close(fd);
    return -1;
}

int
sbx_listen_open(const sbx_conf_t *conf, sbx_listener_t *old, size_t nold, sbx_listener_t *out)
{
    size_t i, j;

    for (i = 0; i < conf->nlisten; i++) {
        out[i].addr = conf->listen[i];
        out[i].fd = -1;
        for (j = 0; j < nold; j++) {
            if (old[j].fd >= 0 && strcmp(old[j].addr.name, conf->listen[i].name) == 0) {
                out[i].fd = old[j].fd;
                break;
            }
        }
        if (out[i].fd == -1 && (out[i].fd = open_one(&conf->listen[i])) == -1)
            goto fail;
    }
    /* Only now that nothing can fail, take the reused fds out of old. */
    for (i = 0; i < conf->nlisten; i++)
        for (j = 0; j < nold; j++)
            if (old[j].fd == out[i].fd)
                old[j].fd = -1;
    return SBX_OK;

fail:
    /* Close only what this call opened; reused fds still belong to old. */
    while (i-- > 0) {
        bool reused = false;
        for (j = 0; j < nold; j++)
            reused = reused || old[j].fd == out[i].fd;
        if (!reused)
            close(out[i].fd);
    }
    return SBX_ERROR;
}

void
sbx_listen_close(sbx_listener_t *ls, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (ls[i].fd >= 0)
            close(ls[i].fd);
        ls[i].fd = -1;
    }
}
