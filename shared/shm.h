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

/* Process-wide counters shown by /health and /metrics. */
typedef struct sbx_shm_stats_s {
    uint64_t requests;
    uint64_t worker_restarts;
    uint64_t reloads;
} sbx_shm_stats_t;

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
#define sbx_shm_read(shm, field) __atomic_load_n(&(shm)->stats.field, __ATOMIC_RELAXED)

#endif
