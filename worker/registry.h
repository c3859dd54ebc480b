/*
 * The session registry and quotas in Redis, shared by every worker and
 * every sandboxd host (DESIGN.md section 3). Keys, readable with redis-cli:
 *
 *   sandboxd:session:<id>           hash: ip, container, host, environment, toolPair,
 *                                   created, expires, last_active, state, init;
 *                                   TTL = sessions.idle_timeout, refreshed on activity
 *   sandboxd:host:<host>:sessions   set of the ids of a host's sessions
 *   sandboxd:ip:<ip>:active         set of the ids of an IP's live sessions
 *   sandboxd:ip:<ip>:created        sorted set of the IP's creations in the last hour (score: ms)
 *
 * Admission is one Lua script, so quotas are exact across workers and
 * hosts. Every call here is asynchronous on the worker's loop.
 */
#ifndef SBX_REGISTRY_H
#define SBX_REGISTRY_H

#include <stdbool.h>

#include "sessions.h"

/* Connects this worker to redis.url (in the background; it reconnects on its own). */
void sbx_registry_start(void);
/* True when Redis answers; otherwise sbx_registry_error says why. */
bool sbx_registry_ready(void);
const char *sbx_registry_error(void);
/* ms, wall: since when this worker's connection has been up (0 while down). */
uint64_t sbx_registry_up_since(void);

/* verdict: SBX_OK, SBX_DENY_CONCURRENT, SBX_DENY_HOURLY, SBX_DENY_CAPACITY, or SBX_ERROR (Redis failed: error says why). */
typedef void (*sbx_registry_admit_cb)(void *data, int verdict, unsigned retry_after, const char *error);
/*
 * Admits session s (id, ip, environment, tool_pair, created, expires, init
 * filled) against the per-IP and host quotas and, if admitted, writes its
 * hash in state "creating". cb runs exactly once, later.
 */
int sbx_registry_admit(const sbx_session_t *s, sbx_registry_admit_cb cb, void *data);
/* The container of slot's session (s, a copy or the slot itself) is running: record it (state "running"). */
void sbx_registry_running(const sbx_session_t *s, int slot);
/* A creation failed: forget it, the hourly stamp included. */
void sbx_registry_refund(const sbx_session_t *s);
/* The session is over: delete its hash and its set memberships. */
void sbx_registry_end(const char *id, const char *ip);
/* Activity on slot: refreshes the hash's TTL and last_active, at most once a second per session. */
void sbx_registry_touch(int slot, uint64_t now);
/* Activity on slot (a request, a keystroke, output): the idle timer here and, at most once a second, in Redis. */
void sbx_registry_activity(int slot);
/* Writes the whole hash of slot's live session (s, a copy of it) again, after Redis lost it in a restart. */
void sbx_registry_resync(const sbx_session_t *s, int slot);

/*
 * Looks up ids (n of them) and reports, per id, the registry's copy in
 * found[i] (state FREE when there is no hash). For the reaper. cb runs
 * once; found is valid only during it.
 */
typedef void (*sbx_registry_lookup_cb)(void *data, size_t n, char (*ids)[SBX_SESSION_ID_LEN + 1], const sbx_session_t *found,
                                       bool ok);
int sbx_registry_lookup(char (*ids)[SBX_SESSION_ID_LEN + 1], size_t n, sbx_registry_lookup_cb cb, void *data);

#endif
