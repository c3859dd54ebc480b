/* Creation and locking of the shared-memory zone; the tables live in their own files. */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "log.h"
#include "sessions.h"
#include "shm.h"

sbx_shm_t *
sbx_shm_create(uint32_t capacity, uint32_t replay_size)
{
    uint32_t ip_capacity;
    size_t size = sizeof(sbx_shm_t) + sbx_sessions_size(capacity, replay_size, &ip_capacity);
    pthread_mutexattr_t attr;
    sbx_shm_t *shm;
    int rc;

    shm = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (shm == MAP_FAILED) {
        sbx_log_error("cannot map the shared zone", "bytes=%zu error=%s", size, strerror(errno));
        return NULL;
    }
    shm->magic = SBX_SHM_MAGIC;
    shm->capacity = capacity;
    shm->ip_capacity = ip_capacity;
    shm->replay_size = replay_size;
    shm->size = size;
    shm->started_wall_ms = sbx_time_wall_ms();
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    rc = pthread_mutex_init(&shm->lock, &attr);
    pthread_mutexattr_destroy(&attr);
    if (rc != 0) {
        sbx_log_error("cannot initialise the shared zone lock", "error=%s", strerror(rc));
        munmap(shm, size);
        return NULL;
    }
    return shm;
}

void
sbx_shm_destroy(sbx_shm_t *shm)
{
    if (shm != NULL)
        munmap(shm, shm->size);
}

void
sbx_shm_lock(sbx_shm_t *shm)
{
    int rc = pthread_mutex_lock(&shm->lock);

    if (rc == EOWNERDEAD) {
        /* The holder died mid-update: the records are fixed-size, so carry on. */
        sbx_log_warn("shared zone lock holder died; recovering the lock", NULL);
        pthread_mutex_consistent(&shm->lock);
    }
}

void
sbx_shm_unlock(sbx_shm_t *shm)
{
    pthread_mutex_unlock(&shm->lock);
}

void
sbx_hist_observe(sbx_hist_t *hist, uint64_t us)
{
    static const double bounds[] = SBX_HIST_BOUNDS;
    size_t i = 0;

    while (i < SBX_HIST_N && (double)us / 1e6 > bounds[i])
        i++;
    __atomic_add_fetch(&hist->buckets[i], 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&hist->count, 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&hist->sum_us, us, __ATOMIC_RELAXED);
}
