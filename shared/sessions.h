/*
 * The session and per-IP tables in the shared zone (see shm.h for the lock
 * discipline: every *_locked function expects sbx_shm_lock() held). They
 * hold this host's live sessions and the per-IP admission state, so that
 * any worker can serve any session and limits are exact across workers.
 */
#ifndef SBX_SESSIONS_H
#define SBX_SESSIONS_H

#include <stdint.h>

#include "shm.h"

#define SBX_SESSION_ID_LEN 22 /* 128 random bits, base64url without padding */
#define SBX_HOURLY_MAX 128    /* most creations per IP per hour a zone can count exactly */

enum { SBX_SESSION_FREE = 0, SBX_SESSION_CREATING, SBX_SESSION_RUNNING, SBX_SESSION_DELETING };

typedef struct sbx_session_s {
    uint8_t state;
    char id[SBX_SESSION_ID_LEN + 1];
    char container[72];
    char ip[48];
    char environment[48];
    char tool_pair[64];
    uint64_t created;     /* ms, wall clock */
    uint64_t expires;     /* ms, wall clock: created + lifetime; never extended */
    uint64_t last_active; /* ms, wall clock; written without the lock (aligned 64-bit store) */
    uint64_t state_since; /* ms, wall clock */
    int32_t owner;        /* pid of the worker creating or deleting it */
    char init[2048];      /* init commands, one per line, run silently before the first prompt */
    uint8_t init_done;    /* the init commands have run (on the first terminal) */
    /* Terminal state, written only by the terminal holding terminal_gen (no lock; see terminal.h). */
    uint32_t terminal_gen;  /* bumped by each new terminal: the one before sees it and closes */
    int32_t terminal_pid;   /* the worker holding the terminal; 0: none */
    uint32_t replay_head;   /* next write offset in the session's replay ring */
    uint32_t replay_len;    /* bytes held, at most the ring's size */
    uint64_t redis_written; /* ms, wall: the registry hash was last written (create, refresh, resync) */
    uint64_t redis_touched; /* ms, wall: the last refresh sent: activity refreshes Redis at most once a second */
    double cmd_tokens;      /* commands-per-minute bucket */
    uint64_t cmd_refill;    /* ms, monotonic, of the bucket's last refill */
} sbx_session_t;

typedef struct sbx_ipent_s {
    char ip[48]; /* "" = unused */
    uint32_t active;
    uint32_t head, count;            /* ring of creation times */
    uint32_t stamps[SBX_HOURLY_MAX]; /* seconds since the zone's epoch */
    double exec_tokens;              /* execute runs left in its per-minute bucket */
    uint64_t exec_refill;            /* ms, wall clock, of the bucket's last refill; 0: full */
} sbx_ipent_t;

typedef struct sbx_limits_s {
    unsigned capacity;
    unsigned max_per_ip;
    unsigned per_ip_per_hour;
} sbx_limits_t;

/* Admission refusals (negative, beside the slot index that success returns). */
#define SBX_DENY_CONCURRENT -10
#define SBX_DENY_HOURLY -11
#define SBX_DENY_CAPACITY -12

/* Bytes of tables a zone of capacity sessions (replay rings of replay bytes each) needs, after its header. */
size_t sbx_sessions_size(uint32_t capacity, uint32_t replay, uint32_t *ip_capacity);
/* The replay ring of slot index: shm->replay_size bytes of recent terminal output. */
char *sbx_sessions_replay(sbx_shm_t *shm, int index);

sbx_session_t *sbx_sessions_slot(sbx_shm_t *shm, int index);

/*
 * Admits a new session for ip at now (ms, wall) under lim: on success
 * reserves a slot in state CREATING (id, environment and tool pair still
 * to be filled by the caller), counts it against ip, and returns its index.
 * Otherwise returns an SBX_DENY_* code and sets *retry_after (seconds).
 */
int sbx_sessions_admit_locked(sbx_shm_t *shm, const sbx_limits_t *lim, const char *ip, uint64_t now, unsigned *retry_after);
/* Records the container of a CREATING slot and makes it RUNNING (a live sandbox). */
void sbx_sessions_set_running_locked(sbx_shm_t *shm, int index, const char *container, uint64_t now);
/*
 * Admits one execute run for ip at now (ms, wall): at most per_minute per IP
 * (a token bucket) and concurrency at once on this host. On success counts
 * the run in shm->exec_running (sbx_sessions_exec_done gives it back).
 */
int sbx_sessions_exec_admit_locked(sbx_shm_t *shm, const char *ip, unsigned per_minute, unsigned concurrency, uint64_t now,
                                   unsigned *retry_after);
void sbx_sessions_exec_done_locked(sbx_shm_t *shm);

/* Takes back the hourly stamp of a creation that failed: a Docker failure must not cost the user. */
void sbx_sessions_refund_locked(sbx_shm_t *shm, int index);
/*
 * Takes a session found in the registry after a restart into a free slot,
 * RUNNING, counted against its IP. Returns the slot, or -1 when full.
 */
int sbx_sessions_adopt_locked(sbx_shm_t *shm, const sbx_session_t *from);

/* Frees slot index and gives its IP's concurrency back. */
void sbx_sessions_release_locked(sbx_shm_t *shm, int index);
/* Index of the live slot with this id, or -1. */
int sbx_sessions_find_locked(sbx_shm_t *shm, const char *id);
/* Sessions in any state but FREE. */
unsigned sbx_sessions_count_locked(sbx_shm_t *shm);

/* Convenience wrappers that take and release the lock. */
int sbx_sessions_find(sbx_shm_t *shm, const char *id, sbx_session_t *copy);
void sbx_sessions_touch(sbx_shm_t *shm, int index, uint64_t now);

#endif
