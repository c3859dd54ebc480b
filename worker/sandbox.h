/*
 * Getting and giving back sandbox containers. sbx_sandbox_acquire is the
 * one place a ready container comes from: today it creates and starts
 * one; the warm pool will turn it into a claim of an already-started one.
 */
#ifndef SBX_SANDBOX_H
#define SBX_SANDBOX_H

#include "conf.h"

typedef struct sbx_sandbox_result_s {
    const char *container; /* the container id, or NULL on failure */
    const char *error;     /* why it failed, for the log and the 503 */
    uint64_t create_ms, start_ms;
} sbx_sandbox_result_t;

typedef void (*sbx_sandbox_cb)(void *data, const sbx_sandbox_result_t *res);
typedef void (*sbx_sandbox_removed_cb)(void *data, bool ok, const char *error);

/*
 * Produces a started container of env, labelled for session id (created at
 * created_ms) with kind "session" or "execute". cb runs exactly once, later,
 * never inside this call; a container that could not be started is removed
 * before cb reports the failure. Returns SBX_ERROR only when out of memory.
 */
int sbx_sandbox_acquire(const sbx_environment_t *env, const char *id, const char *kind, uint64_t created_ms, sbx_sandbox_cb cb,
                        void *data);
/* Kills and removes container (gone already counts as removed). cb may be NULL. */
int sbx_sandbox_remove(const char *container, sbx_sandbox_removed_cb cb, void *data);

#endif
