/*
 * What a sandbox container is: the Engine API create body with every
 * hardening setting (DESIGN.md section 6), built from the config and the
 * session's environment. Pure: no I/O, so it is unit-tested directly.
 */
#ifndef SBX_CONTAINER_H
#define SBX_CONTAINER_H

#include <stdbool.h>
#include <jansson.h>

#include "conf.h"

/*
 * Returns a new create body (the caller owns it) for a container of
 * environment env labelled for session id, created at created_ms (wall).
 * kind is "session" or "execute" (the label that says what it serves).
 */
json_t *sbx_container_spec(const sbx_conf_t *conf, const sbx_environment_t *env, const char *id, const char *kind,
                           uint64_t created_ms);

/*
 * Returns a new create body for a one-shot run of code (NUL-terminated;
 * the caller has checked it against execute.max_code) in language lang,
 * with input as its stdin, labelled kind "execute" for run id.
 */
json_t *sbx_container_execute_spec(const sbx_conf_t *conf, const sbx_language_t *lang, const char *code, const char *input,
                                   const char *id, uint64_t created_ms);

/* The runtime a container of env (NULL: a one-shot run) runs under. */
const char *sbx_container_runtime(const sbx_conf_t *conf, const sbx_environment_t *env);

/* True for gVisor runtimes (runsc, runsc-debug, ...). */
bool sbx_container_is_gvisor(const char *runtime);

/*
 * The host PidsLimit that lets `pids` processes run inside a sandbox of
 * runtime: under gVisor the host cgroup also counts the sandbox kernel's
 * own threads (NOTES.md), so the limit must include them.
 */
long sbx_container_host_pids(const char *runtime, unsigned pids);

#endif
