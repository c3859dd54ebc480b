/*
 * The two config inputs that are not plain table keys: the `environments`
 * list, and the environment variables the toolkata server reads, which
 * override the file so that a toolkata deployment's settings carry over.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf_internal.h"

static const char *const categories[] = {"shell", "runtime", "vcs"};

static int
env_string(ctx_t *c, yaml_node_t *v, const char *path, char **out)
{
    const conf_key_t k = {.path = path};
    const char *s = conf_scalar(c, v, &k);

    if (s == NULL)
        return SBX_ERROR;
    *out = conf_arena_strdup(c->conf, s);
    return SBX_OK;
}

static int
env_field(ctx_t *c, sbx_environment_t *e, const char *name, yaml_node_t *v, yaml_node_t *kn)
{
    char path[96];
    const conf_key_t k = {.path = path};

    snprintf(path, sizeof(path), "environments[%s].%s", e->name ? e->name : "?", name);
    if (strcmp(name, "name") == 0)
        return env_string(c, v, path, &e->name);
    if (strcmp(name, "image") == 0)
        return env_string(c, v, path, &e->image);
    if (strcmp(name, "description") == 0)
        return env_string(c, v, path, &e->description);
    if (strcmp(name, "runtime") == 0)
        return env_string(c, v, path, &e->runtime);
    if (strcmp(name, "user") == 0)
        return env_string(c, v, path, &e->user);
    if (strcmp(name, "workdir") == 0)
        return env_string(c, v, path, &e->workdir);
    if (strcmp(name, "category") == 0) {
        if (env_string(c, v, path, &e->category) != SBX_OK)
            return SBX_ERROR;
        for (size_t i = 0; i < sbx_nelems(categories); i++)
            if (strcmp(e->category, categories[i]) == 0)
                return SBX_OK;
        node_error(c, v, "%s: expected shell, runtime or vcs, got \"%s\"", path, e->category);
        return SBX_ERROR;
    }
    if (strcmp(name, "defaultTimeout") == 0) {
        /* toolkata writes it in milliseconds; a unit ("10m") is accepted too. */
        const char *s = conf_scalar(c, v, &k);
        char *end;
        uint64_t ms;
        if (s == NULL)
            return SBX_ERROR;
        ms = strtoull(s, &end, 10);
        if ((*end != '\0' || end == s) && (end == s || sbx_parse_duration(s, &ms) != SBX_OK)) {
            node_error(c, v, "%s: expected milliseconds or a duration, got \"%s\"", path, s);
            return SBX_ERROR;
        }
        if (ms < 1000 || ms > 7 * 86400000ULL) {
            node_error(c, v, "%s: %s is out of range (1000..604800000 ms)", path, s);
            return SBX_ERROR;
        }
        e->default_timeout = ms;
        return SBX_OK;
    }
    if (strcmp(name, "defaultInitCommands") == 0)
        return (e->init = conf_scalar_list(c, v, &k, &e->ninit, 64)) != NULL ? SBX_OK : SBX_ERROR;
    if (strcmp(name, "env") == 0) {
        if ((e->env = conf_scalar_list(c, v, &k, &e->nenv, 64)) == NULL)
            return SBX_ERROR;
        for (size_t i = 0; i < e->nenv; i++) {
            if (strchr(e->env[i], '=') == NULL || e->env[i][0] == '=') {
                node_error(c, v, "%s: \"%s\" is not NAME=value", path, e->env[i]);
                return SBX_ERROR;
            }
        }
        return SBX_OK;
    }
    node_error(c, kn, "unknown key \"environments.%s\"", name);
    return SBX_ERROR;
}

static void
env_field_cb(ctx_t *c, void *item, const char *name, yaml_node_t *v, yaml_node_t *kn)
{
    env_field(c, item, name, v, kn); /* it reports its own errors */
}

int
conf_set_environments(ctx_t *c, yaml_node_t *node, const conf_key_t *k)
{
    yaml_node_item_t *item;
    size_t n = 0, len;

    if (node->type != YAML_SEQUENCE_NODE) {
        node_error(c, node, "%s: expected a list of environments", k->path);
        return SBX_ERROR;
    }
    len = (size_t)(node->data.sequence.items.top - node->data.sequence.items.start);
    if (len == 0 || len > 64) {
        node_error(c, node, "%s: expected 1..64 environments", k->path);
        return SBX_ERROR;
    }
    c->conf->environments = conf_arena_alloc(c->conf, len * sizeof(sbx_environment_t));
    for (item = node->data.sequence.items.start; item < node->data.sequence.items.top; item++) {
        yaml_node_t *en = yaml_document_get_node(c->doc, *item);
        sbx_environment_t *e = &c->conf->environments[n];

        if (en->type != YAML_MAPPING_NODE) {
            node_error(c, en, "%s: each environment is a mapping with at least a name", k->path);
            return SBX_ERROR;
        }
        conf_each_field(c, en, env_field_cb, e);
        if (e->name == NULL || e->name[0] == '\0') {
            node_error(c, en, "%s: an environment needs a name", k->path);
            return SBX_ERROR;
        }
        for (size_t j = 0; j < n; j++) {
            if (strcmp(c->conf->environments[j].name, e->name) == 0) {
                node_error(c, en, "%s: environment \"%s\" is defined twice", k->path, e->name);
                return SBX_ERROR;
            }
        }
        if (e->category == NULL)
            e->category = conf_arena_strdup(c->conf, "shell");
        if (e->description == NULL)
            e->description = e->name;
        n++;
    }
    c->conf->nenvironments = n;
    return SBX_OK;
}

static const char *
getenv_in(char *const *env, const char *name)
{
    size_t n = strlen(name);

    for (; env != NULL && *env != NULL; env++)
        if (strncmp(*env, name, n) == 0 && (*env)[n] == '=')
            return *env + n + 1;
    return NULL;
}

/* Errors about a variable read "$NAME: message" rather than pointing into the file. */
#define env_error(c, name, ...)                                                                                                    \
    do {                                                                                                                           \
        const char *file_ = (c)->file;                                                                                             \
        (c)->file = "$" name;                                                                                                      \
        conf_add_error(c, 0, 0, __VA_ARGS__);                                                                                      \
        (c)->file = file_;                                                                                                         \
    } while (0)

static void
apply_listen(ctx_t *c, const char *host, const char *port)
{
    char text[96], cur_host[64] = "127.0.0.1", cur_port[8] = "3001";
    const char *name = c->conf->listen[0].name, *colon = strrchr(name, ':');
    sbx_listen_t *l;

    /* Keep the half of the first listener that the variables do not set. */
    if (colon != NULL && (size_t)(colon - name) < sizeof(cur_host)) {
        memcpy(cur_host, name, (size_t)(colon - name));
        cur_host[colon - name] = '\0';
        snprintf(cur_port, sizeof(cur_port), "%s", colon + 1);
    }
    if (host != NULL && strchr(host, ':') != NULL && host[0] != '[')
        snprintf(text, sizeof(text), "[%s]:%s", host, port ? port : cur_port);
    else
        snprintf(text, sizeof(text), "%s:%s", host ? host : cur_host, port ? port : cur_port);
    if ((l = conf_arena_alloc(c->conf, sizeof(*l))) == NULL || sbx_parse_listen(text, l) != SBX_OK) {
        env_error(c, "HOST", "HOST/PORT give \"%s\", which is not a numeric address and a port 1..65535", text);
        return;
    }
    c->conf->listen = l;
    c->conf->nlisten = 1;
}

static void
apply_origins(ctx_t *c, const char *list)
{
    size_t n = 1, i = 0;
    char *copy = conf_arena_strdup(c->conf, list), *tok, *save = NULL;

    for (const char *p = list; *p; p++)
        n += *p == ',';
    c->conf->allowed_origins = conf_arena_alloc(c->conf, (n + 1) * sizeof(char *));
    for (tok = strtok_r(copy, ", ", &save); tok != NULL; tok = strtok_r(NULL, ", ", &save))
        c->conf->allowed_origins[i++] = tok;
    c->conf->norigins = i;
}

void
conf_apply_env(ctx_t *c, char *const *env)
{
    const char *v, *host = getenv_in(env, "HOST"), *port = getenv_in(env, "PORT");
    sbx_conf_t *conf = c->conf;
    uint64_t size;
    bool b;

    if (host != NULL || port != NULL)
        apply_listen(c, host, port);
    if ((v = getenv_in(env, "SANDBOX_API_KEY")) != NULL)
        conf->api_key = conf_arena_strdup(conf, v);
    if ((v = getenv_in(env, "SANDBOX_ALLOWED_ORIGINS")) != NULL)
        apply_origins(c, v);
    if ((v = getenv_in(env, "SANDBOX_GVISOR_RUNTIME")) != NULL) {
        if (v[0] == '\0' || strlen(v) > 64)
            env_error(c, "SANDBOX_GVISOR_RUNTIME", "expected a runtime name");
        else
            conf->docker_runtime = conf_arena_strdup(conf, v);
    }
    if ((v = getenv_in(env, "SANDBOX_USE_GVISOR")) != NULL) {
        if (sbx_parse_bool(v, &b) != SBX_OK)
            env_error(c, "SANDBOX_USE_GVISOR", "expected true or false, got \"%s\"", v);
        else if (!b)
            conf->docker_runtime = conf_arena_strdup(conf, "runc");
        else if (strcmp(conf->docker_runtime, "runc") == 0)
            conf->docker_runtime = conf_arena_strdup(conf, "runsc");
    }
    if ((v = getenv_in(env, "SANDBOX_MAX_WS_MESSAGE_SIZE")) != NULL) {
        if (sbx_parse_size(v, &size) != SBX_OK || size < 16 || size > 16 << 20)
            env_error(c, "SANDBOX_MAX_WS_MESSAGE_SIZE", "expected a size of 16 bytes to 16m, got \"%s\"", v);
        else
            conf->ws_max_message = size;
    }
    if ((v = getenv_in(env, "REDIS_URL")) != NULL)
        conf->redis_url = conf_arena_strdup(conf, v);
    if ((v = getenv_in(env, "DOCKER_HOST")) != NULL) {
        if (strncmp(v, "unix://", 7) != 0 || v[7] != '/' || strlen(v + 7) > 107)
            env_error(c, "DOCKER_HOST", "only unix:///path/to/docker.sock is supported, got \"%s\"", v);
        else
            conf->docker_socket = conf_arena_strdup(conf, v + 7);
    }
}
