/* Container create/start/remove through the Docker Engine API. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "container.h"
#include "docker.h"
#include "log.h"
#include "sandbox.h"
#include "worker.h"

#define CREATE_TIMEOUT 30000 /* ms: a create can wait on a busy image store */
#define START_TIMEOUT 30000  /* ms: runsc boots its sandbox kernel here */
#define REMOVE_TIMEOUT 30000 /* ms */

typedef struct {
    sbx_sandbox_cb cb;
    void *data;
    char container[72];
    char error[256];
    uint64_t create_ms, start_ms;
} acquire_t;

typedef struct {
    sbx_sandbox_removed_cb cb;
    void *data;
} remove_t;

static void
acquire_done(acquire_t *op, bool ok)
{
    sbx_sandbox_result_t res = {ok ? op->container : NULL, ok ? NULL : op->error, op->create_ms, op->start_ms};

    op->cb(op->data, &res);
    free(op);
}

static void
on_failed_start_removed(void *data, bool ok, const char *error)
{
    (void)ok, (void)error;
    acquire_done(data, false);
}

static void
on_started(void *data, const sbx_docker_result_t *res)
{
    acquire_t *op = data;
    char msg[200];

    op->start_ms = res->elapsed_ms;
    if (res->status == 204 || res->status == 304) {
        sbx_hist_observe(&sbx_worker.shm->stats.container_start, (op->create_ms + op->start_ms) * 1000);
        acquire_done(op, true);
        return;
    }
    snprintf(op->error, sizeof(op->error), "docker could not start the container: %s", sbx_docker_message(res, msg, sizeof(msg)));
    sbx_log_error("container start failed", "container=%.12s error=%s", op->container, op->error);
    /* Never leave a created-but-dead container behind. */
    if (sbx_sandbox_remove(op->container, on_failed_start_removed, op) != SBX_OK)
        acquire_done(op, false);
}

static void
on_created(void *data, const sbx_docker_result_t *res)
{
    acquire_t *op = data;
    char path[160], msg[200];
    json_t *j;
    const char *id;

    op->create_ms = res->elapsed_ms;
    if (res->status != 201) {
        snprintf(op->error, sizeof(op->error), "docker could not create the container: %s",
                 sbx_docker_message(res, msg, sizeof(msg)));
        sbx_log_error("container create failed", "status=%d error=%s", res->status, op->error);
        acquire_done(op, false);
        return;
    }
    j = json_loadb(res->body, res->len, 0, NULL);
    id = json_string_value(json_object_get(j, "Id"));
    if (id == NULL || strlen(id) >= sizeof(op->container)) {
        json_decref(j);
        snprintf(op->error, sizeof(op->error), "docker's create answer has no container id");
        acquire_done(op, false);
        return;
    }
    snprintf(op->container, sizeof(op->container), "%s", id);
    json_decref(j);
    snprintf(path, sizeof(path), SBX_DOCKER_API "/containers/%s/start", op->container);
    if (sbx_docker_request("POST", path, NULL, START_TIMEOUT, on_started, op) == NULL) {
        snprintf(op->error, sizeof(op->error), "out of memory");
        if (sbx_sandbox_remove(op->container, on_failed_start_removed, op) != SBX_OK)
            acquire_done(op, false);
    }
}

int
sbx_sandbox_acquire(const sbx_environment_t *env, const char *id, const char *kind, uint64_t created_ms, sbx_sandbox_cb cb,
                    void *data)
{
    acquire_t *op = calloc(1, sizeof(*op));
    json_t *spec;

    if (op == NULL)
        return SBX_ERROR;
    op->cb = cb;
    op->data = data;
    if ((spec = sbx_container_spec(sbx_worker.conf, env, id, kind, created_ms)) == NULL ||
        sbx_docker_request("POST", SBX_DOCKER_API "/containers/create", spec, CREATE_TIMEOUT, on_created, op) == NULL) {
        json_decref(spec);
        free(op);
        return SBX_ERROR;
    }
    json_decref(spec);
    return SBX_OK;
}

static void
on_removed(void *data, const sbx_docker_result_t *res)
{
    remove_t *op = data;
    char msg[200];
    bool ok = res->status == 204 || res->status == 404; /* 404: already gone, which is what we wanted */

    /* 409 "removal already in progress": another call of ours is on it; not a failure worth a warning. */
    if (!ok)
        sbx_log(res->status == 409 ? SBX_LOG_INFO : SBX_LOG_WARN, "container remove failed", "status=%d error=%s", res->status,
                sbx_docker_message(res, msg, sizeof(msg)));
    if (op->cb != NULL)
        op->cb(op->data, ok, ok ? NULL : sbx_docker_message(res, msg, sizeof(msg)));
    free(op);
}

int
sbx_sandbox_remove(const char *container, sbx_sandbox_removed_cb cb, void *data)
{
    remove_t *op = calloc(1, sizeof(*op));
    char path[160];

    if (op == NULL)
        return SBX_ERROR;
    op->cb = cb;
    op->data = data;
    /* force=1 kills a running container first; v=1 drops its anonymous volumes. */
    snprintf(path, sizeof(path), SBX_DOCKER_API "/containers/%s?force=1&v=1", container);
    if (sbx_docker_request("DELETE", path, NULL, REMOVE_TIMEOUT, on_removed, op) == NULL) {
        free(op);
        return SBX_ERROR;
    }
    return SBX_OK;
}
