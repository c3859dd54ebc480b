/* Preloaded into sandboxd/sandbox via /etc/ld.so.preload.
 *
 * Debian 12's runsc (gVisor 20221219) rejects statx() flags other than
 * AT_EMPTY_PATH|AT_SYMLINK_NOFOLLOW|AT_STATX_SYNC_TYPE with EINVAL, and
 * coreutils 9.1 (ls -l, stat) always passes AT_NO_AUTOMOUNT, so `ls -l`
 * printed "cannot access ...: Invalid argument" for every file.
 * AT_NO_AUTOMOUNT only matters for autofs, which a sandbox never has: drop it.
 * Build: gcc -shared -fPIC -O2 -o statx-fix.so statx-fix.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <sys/stat.h>

int statx(int dirfd, const char *path, int flags, unsigned int mask, struct statx *buf)
{
    static int (*real)(int, const char *, int, unsigned int, struct statx *);
    if (!real)
        real = (int (*)(int, const char *, int, unsigned int, struct statx *))dlsym(RTLD_NEXT, "statx");
    return real(dirfd, path, flags & ~AT_NO_AUTOMOUNT, mask, buf);
}
