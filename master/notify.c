/*
 * systemd's sd_notify protocol, without libsystemd: one datagram of
 * "KEY=VALUE" lines to the socket named in $NOTIFY_SOCKET (a path, or an
 * abstract name starting with '@'). Nothing happens when it is not set.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "master.h"

int
sbx_notify(const char *state)
{
    const char *path = getenv("NOTIFY_SOCKET");
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    size_t n;
    int fd, rc = SBX_OK;

    if (path == NULL || path[0] == '\0')
        return SBX_OK;
    if ((path[0] != '/' && path[0] != '@') || (n = strlen(path)) >= sizeof(sun.sun_path))
        return SBX_ERROR;
    memcpy(sun.sun_path, path, n);
    if (path[0] == '@')
        sun.sun_path[0] = '\0'; /* the abstract namespace */
    if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) == -1)
        return SBX_ERROR;
    if (sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sun,
               (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n)) == -1) {
        sbx_log_warn("sd_notify failed", "socket=%s error=%s", path, strerror(errno));
        rc = SBX_ERROR;
    }
    close(fd);
    return rc;
}

int
sbx_notify_reloading(void)
{
    struct timespec ts;
    char msg[96];

    /* systemd 253+ wants the monotonic time of the reload; older ones ignore it. */
    clock_gettime(CLOCK_MONOTONIC, &ts);
    snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%llu",
             (unsigned long long)ts.tv_sec * 1000000 + (unsigned long long)ts.tv_nsec / 1000);
    return sbx_notify(msg);
}
