/*
 * The shared-memory zone: created by the master before fork(), mapped
 * MAP_SHARED into every worker, and kept across reloads.
 *
 * Lock discipline (read this before touching the zone):
 *  - One robust, process-shared mutex guards every table in the zone.
 *  - Take it with sbx_shm_lock(), release with sbx_shm_unlock(). Functions
 *    named *_locked expect the caller to hold it.
 *  - Hold it only for table arithmetic: never across I/O, a syscall that
 *    can block, or a callback. A worker killed while holding it leaves
 *    the mutex EOWNERDEAD; the next locker marks it consistent and goes on
 *    (the tables hold only fixed-size records, so a half-written record is
 *    at worst one stale slot, reaped by housekeeping).
 *  - Counters under `stats` are updated with atomic builtins, without the lock.
 */
#ifndef SBX_SHM_H
#define SBX_SHM_H

#include <pthread.h>
#include <stdint.h>
#include <sys/types.h>

#include "sbx.h"

#define SBX_SHM_MAGIC 0x73627864u /* "sbxd" */

/* Upper bounds (seconds) of the latency histograms' buckets; one more bucket counts the rest (+Inf). */
#define SBX_HIST_BOUNDS                                                                                                            \
    {                                                                                                                              \
        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10                                                                    \
    }
#define SBX_HIST_N 11

typedef struct sbx_hist_s {
    uint64_t buckets[SBX_HIST_N + 1]; /* not cumulative: /metrics adds them up */
    uint64_t count;
    uint64_t sum_us;
} sbx_hist_t;

/* Server-wide counters shown by /metrics, added to by every worker (atomically, without the lock). */
typedef struct sbx_shm_stats_s {
    uint64_t requests;
    uint64_t worker_restarts;
    uint64_t reloads;
    uint64_t sessions_created;
    uint64_t rejected_rate;
    uint64_t rejected_capacity;
    uint64_t rejected_auth;
    uint64_t rejected_docker;
    uint64_t rejected_redis;
    uint64_t ws_opened;
    int64_t ws_open;
    uint64_t ws_bytes_in;
    uint64_t ws_bytes_out;
    uint64_t redis_errors;
    uint64_t executes;
    sbx_hist_t container_start; /* create + start of a sandbox */
    sbx_hist_t docker_call;     /* every Engine API call */
} sbx_shm_stats_t;

/* Records one observation of seconds (given in microseconds) in hist. */
void sbx_hist_observe(sbx_hist_t *hist, uint64_t us);

typedef struct sbx_shm_s {
    uint32_t magic;
    uint32_t capacity;    /* session slots */
    uint32_t ip_capacity; /* per-IP admission entries */
    uint32_t replay_size; /* bytes of terminal output kept per session for repaint on reconnect */
    size_t size;          /* bytes mapped */
    pthread_mutex_t lock;
    uint64_t started_wall_ms; /* when the first master created the zone */
    uint32_t live_sessions;   /* sessions with a running container on this host */
    uint32_t exec_running;    /* execute runs in flight on this host */
    struct {
        int32_t pid;    /* the worker that runs housekeeping (reaping); 0: nobody */
        uint64_t until; /* ms, monotonic: the lease lapses unless renewed by then */
    } lease;
    struct {
        int32_t ok;         /* the last call to Docker got an answer */
        int32_t runtime_ok; /* the configured runtime is registered in the engine */
        uint64_t checked;   /* ms, wall clock */
        char error[160];    /* why Docker is failing; under the lock */
    } docker;
    sbx_shm_stats_t stats;
    /* The session and per-IP tables follow the header: see sessions.h. */
} sbx_shm_t;

/*
 * Maps a new anonymous shared zone sized for capacity sessions. Called by
 * the master only, before any fork. Returns NULL and logs on failure.
 */
sbx_shm_t *sbx_shm_create(uint32_t capacity, uint32_t replay_size);
/* Unmaps the zone (master at exit; children just exit). */
void sbx_shm_destroy(sbx_shm_t *shm);

/* Never blocks on I/O; see the discipline above. */
void sbx_shm_lock(sbx_shm_t *shm);
void sbx_shm_unlock(sbx_shm_t *shm);

#define sbx_shm_count(shm, field) __atomic_add_fetch(&(shm)->stats.field, 1, __ATOMIC_RELAXED)
#define sbx_shm_add(shm, field, n) __atomic_add_fetch(&(shm)->stats.field, (n), __ATOMIC_RELAXED)
#define sbx_shm_read(shm, field) __atomic_load_n(&(shm)->stats.field, __ATOMIC_RELAXED)

#endif
