/*
 * Loads sandboxd.yaml into an sbx_conf_t.
 *
 * Like nginx's command table, every key is one row of keys[] below: its
 * dotted path, the setter that checks and stores it, where it goes and its
 * bounds. Anything not in the table, of the wrong type or out of range is
 * an error at the node's FILE:LINE:COLUMN. `sandboxd -t`, start-up and
 * SIGHUP all go through sbx_conf_load, so they agree on what is valid.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <yaml.h>

#include "conf.h"
#include "log.h"
#include "conf_internal.h"

void *
conf_arena_alloc(sbx_conf_t *conf, size_t size)
{
    struct block *b = calloc(1, sizeof(*b) + size);

    if (b == NULL)
        return NULL;
    b->next = conf->arena->head;
    conf->arena->head = b;
    return b->data;
}

char *
conf_arena_strdup(sbx_conf_t *conf, const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = conf_arena_alloc(conf, n);

    if (p != NULL)
        memcpy(p, s, n);
    return p;
}

void
conf_add_error(ctx_t *c, size_t line, size_t col, const char *fmt, ...)
{
    va_list ap;
    int n;

    c->nerr++;
    if (c->errpos + 1 >= c->errlen)
        return;
    if (line > 0)
        n = snprintf(c->err + c->errpos, c->errlen - c->errpos, "%s:%zu:%zu: ", c->file, line, col);
    else
        n = snprintf(c->err + c->errpos, c->errlen - c->errpos, "%s: ", c->file);
    if (n > 0 && (size_t)n < c->errlen - c->errpos)
        c->errpos += (size_t)n;
    va_start(ap, fmt);
    n = vsnprintf(c->err + c->errpos, c->errlen - c->errpos, fmt, ap);
    va_end(ap);
    if (n > 0 && (size_t)n < c->errlen - c->errpos - 1) {
        c->errpos += (size_t)n;
        c->err[c->errpos++] = '\n';
        c->err[c->errpos] = '\0';
    } else {
        c->errpos = c->errlen - 1;
    }
}

const char *
conf_scalar(ctx_t *c, yaml_node_t *node, const conf_key_t *k)
{
    if (node->type != YAML_SCALAR_NODE) {
        node_error(c, node, "%s: expected a scalar value", k->path);
        return NULL;
    }
    return (const char *)node->data.scalar.value;
}

bool
conf_is_null(yaml_node_t *node)
{
    const char *v = (const char *)node->data.scalar.value;

    return node->type == YAML_SCALAR_NODE && node->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
           (v[0] == '\0' || strcmp(v, "~") == 0 || strcmp(v, "null") == 0);
}

static int
set_str(ctx_t *c, yaml_node_t *node, const conf_key_t *k)
{
    const char *v;

    if (node->type == YAML_SCALAR_NODE && conf_is_null(node)) {
        *FIELD(c, k, char *) = NULL;
        return SBX_OK;
    }
    if ((v = conf_scalar(c, node, k)) == NULL)
        return SBX_ERROR;
    if (k->max != 0 && strlen(v) > k->max) {
        node_error(c, node, "%s: longer than %llu characters", k->path, (unsigned long long)k->max);
        return SBX_ERROR;
    }
    *FIELD(c, k, char *) = conf_arena_strdup(c->conf, v);
    return SBX_OK;
}

static int
check_range(ctx_t *c, yaml_node_t *node, const conf_key_t *k, uint64_t v, const char *shown)
{
    if (v < k->min || v > k->max) {
        node_error(c, node, "%s: %s is out of range (%llu..%llu)", k->path, shown, (unsigned long long)k->min,
                   (unsigned long long)k->max);
        return SBX_ERROR;
    }
    return SBX_OK;
}

static int
set_uint(ctx_t *c, yaml_node_t *node, const conf_key_t *k)
{
    const char *v;
    char *end;
    unsigned long long n;

    if ((v = conf_scalar(c, node, k)) == NULL)
        return SBX_ERROR;
    errno = 0;
    n = strtoull(v, &end, 10);
    if (v[0] < '0' || v[0] > '9' || *end != '\0' || errno != 0) {
        node_error(c, node, "%s: expected a whole number, got \"%s\"", k->path, v);
        return SBX_ERROR;
    }
    if (check_range(c, node, k, n, v) != SBX_OK)
        return SBX_ERROR;
    *FIELD(c, k, unsigned) = (unsigned)n;
    return SBX_OK;
}

static int
set_workers(ctx_t *c, yaml_node_t *node, const conf_key_t *k)
{
    const char *v = conf_scalar(c, node, k);
    long ncpu;

    if (v != NULL && strcmp(v, "auto") == 0) {
        ncpu = sysconf(_SC_NPROCESSORS_ONLN);
        *FIELD(c, k, unsigned) = ncpu > 0 ? (unsigned)ncpu : 1;
        return SBX_OK;
    }
    return v == NULL ? SBX_ERROR : set_uint(c, node, k);
}

static int
set_duration(ctx_t *c, yaml_node_t *node, const conf_key_t *k)
{
    const char *v;
    uint64_t ms;

    if ((v = conf_scalar(c, node, k)) == NULL)
        return SBX_ERROR;
    if (sbx_parse_duration(v, &ms) != SBX_OK) {
        node_error(c, node, "%s: expected a duration (300, 30s, 5m, 1h, 250ms), got \"%s\"", k->path, v);
        return SBX_ERROR;
    }
    if (check_range(c, node, k, ms, v) != SBX_OK)
        return SBX_ERROR;
    *FIELD(c, k, uint64_t) = ms;
    return SBX_OK;
}

static int
set_size(ctx_t *c, yaml_node_t *node, const conf_key_t *k)
{
    const char *v;
    uint64_t n;

    if ((v = conf_scalar(c, node, k)) == NULL)
        return SBX_ERROR;
    if (sbx_parse_size(v, &n) != SBX_OK) {
        node_error(c, node, "%s: expected a size (1024, 64k, 128m, 1g), got \"%s\"", k->path, v);
        return SBX_ERROR;
    }
    if (check_range(c, node, k, n, v) != SBX_OK)
        return SBX_ERROR;
    *FIELD(c, k, uint64_t) = n;
    return SBX_OK;
}

static int
set_bool(ctx_t *c, yaml_node_t *node, const conf_key_t *k)
{
    const char *v;

    if ((v = conf_scalar(c, node, k)) == NULL)
        return SBX_ERROR;
    if (sbx_parse_bool(v, FIELD(c, k, bool)) != SBX_OK) {
        node_error(c, node, "%s: expected true or false, got \"%s\"", k->path, v);
        return SBX_ERROR;
    }
    return SBX_OK;
}

static int
set_cpus(ctx_t *c, yaml_node_t *node, const conf_key_t *k)
{
    const char *v;
    char *end;
    double d;

    if ((v = conf_scalar(c, node, k)) == NULL)
        return SBX_ERROR;
    d = strtod(v, &end);
    if (end == v || *end != '\0' || !(d >= 0.01 && d <= 64)) {
        node_error(c, node, "%s: expected a number of CPUs between 0.01 and 64, got \"%s\"", k->path, v);
        return SBX_ERROR;
    }
    *FIELD(c, k, double) = d;
    return SBX_OK;
}

static int
set_level(ctx_t *c, yaml_node_t *node, const conf_key_t *k)
{
    const char *v;
    int level;

    if ((v = conf_scalar(c, node, k)) == NULL)
        return SBX_ERROR;
    if ((level = sbx_log_level_parse(v)) < 0) {
        node_error(c, node, "%s: expected debug, info, notice, warn or error, got \"%s\"", k->path, v);
        return SBX_ERROR;
    }
    c->conf->log_level = level;
    return SBX_OK;
}

static int
set_fail_mode(ctx_t *c, yaml_node_t *node, const conf_key_t *k)
{
    const char *v;

    if ((v = conf_scalar(c, node, k)) == NULL)
        return SBX_ERROR;
    if (strcmp(v, "open") != 0 && strcmp(v, "closed") != 0) {
        node_error(c, node, "%s: expected open or closed, got \"%s\"", k->path, v);
        return SBX_ERROR;
    }
    c->conf->redis_fail_open = strcmp(v, "open") == 0;
    return SBX_OK;
}

/* Collects a sequence of scalars (a lone scalar counts as a sequence of one) into a new array. */
char **
conf_scalar_list(ctx_t *c, yaml_node_t *node, const conf_key_t *k, size_t *count, size_t max)
{
    yaml_node_item_t *item;
    char **out;
    size_t n = 0;

    if (node->type == YAML_SCALAR_NODE) {
        if (conf_is_null(node)) {
            *count = 0;
            return conf_arena_alloc(c->conf, sizeof(char *));
        }
        out = conf_arena_alloc(c->conf, sizeof(char *));
        out[0] = conf_arena_strdup(c->conf, (const char *)node->data.scalar.value);
        *count = 1;
        return out;
    }
    if (node->type != YAML_SEQUENCE_NODE) {
        node_error(c, node, "%s: expected a list", k->path);
        return NULL;
    }
    size_t len = (size_t)(node->data.sequence.items.top - node->data.sequence.items.start);
    if (len > max) {
        node_error(c, node, "%s: more than %zu entries", k->path, max);
        return NULL;
    }
    out = conf_arena_alloc(c->conf, (len + 1) * sizeof(char *));
    for (item = node->data.sequence.items.start; item < node->data.sequence.items.top; item++) {
        yaml_node_t *v = yaml_document_get_node(c->doc, *item);
        if (v->type != YAML_SCALAR_NODE) {
            node_error(c, v, "%s: expected a list of strings", k->path);
            return NULL;
        }
        out[n++] = conf_arena_strdup(c->conf, (const char *)v->data.scalar.value);
    }
    *count = n;
    return out;
}

void
conf_each_field(ctx_t *c, yaml_node_t *map, conf_field_fn fn, void *item)
{
    yaml_node_pair_t *pair;

    for (pair = map->data.mapping.pairs.start; pair < map->data.mapping.pairs.top; pair++) {
        yaml_node_t *kn = yaml_document_get_node(c->doc, pair->key);
        if (kn->type != YAML_SCALAR_NODE) {
            node_error(c, kn, "keys must be plain names");
            continue;
        }
        fn(c, item, (const char *)kn->data.scalar.value, yaml_document_get_node(c->doc, pair->value), kn);
    }
}

static int
set_listen(ctx_t *c, yaml_node_t *node, const conf_key_t *k)
{
    size_t n;
    char **items = conf_scalar_list(c, node, k, &n, 64);
    yaml_node_item_t *item = node->type == YAML_SEQUENCE_NODE ? node->data.sequence.items.start : NULL;
    int rc = SBX_OK;

    if (items == NULL)
        return SBX_ERROR;
    if (n == 0) {
        node_error(c, node, "%s: at least one address is required", k->path);
        return SBX_ERROR;
    }
    c->conf->listen = conf_arena_alloc(c->conf, n * sizeof(sbx_listen_t));
    c->conf->nlisten = n;
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *at = item != NULL ? yaml_document_get_node(c->doc, item[i]) : node;
        if (sbx_parse_listen(items[i], &c->conf->listen[i]) != SBX_OK) {
            node_error(c, at, "%s: \"%s\" is not host:port with a numeric IPv4/IPv6 host and a port 1..65535", k->path, items[i]);
            rc = SBX_ERROR;
        }
        for (size_t j = 0; rc == SBX_OK && j < i; j++) {
            if (strcmp(c->conf->listen[j].name, c->conf->listen[i].name) == 0) {
                node_error(c, at, "%s: \"%s\" is listed twice", k->path, items[i]);
                rc = SBX_ERROR;
            }
        }
    }
    return rc;
}

static int
set_origins(ctx_t *c, yaml_node_t *node, const conf_key_t *k)
{
    char **items = conf_scalar_list(c, node, k, &c->conf->norigins, 256);

    if (items == NULL)
        return SBX_ERROR;
    c->conf->allowed_origins = items;
    return SBX_OK;
}

static int
set_proxies(ctx_t *c, yaml_node_t *node, const conf_key_t *k)
{
    size_t n;
    char **items = conf_scalar_list(c, node, k, &n, 256);
    int rc = SBX_OK;

    if (items == NULL)
        return SBX_ERROR;
    c->conf->trusted_proxies = conf_arena_alloc(c->conf, (n + 1) * sizeof(sbx_cidr_t));
    c->conf->nproxies = n;
    for (size_t i = 0; i < n; i++) {
        if (sbx_parse_cidr(items[i], &c->conf->trusted_proxies[i]) != SBX_OK) {
            yaml_node_t *at =
                node->type == YAML_SEQUENCE_NODE ? yaml_document_get_node(c->doc, node->data.sequence.items.start[i]) : node;
            node_error(c, at, "%s: \"%s\" is not an IP address or CIDR block", k->path, items[i]);
            rc = SBX_ERROR;
        }
    }
    return rc;
}

#define OFF(f) offsetof(sbx_conf_t, f)
#define DAY (86400ULL * 1000)

static const conf_key_t keys[] = {
    {"listen", set_listen, 0, 0, 0},
    {"workers", set_workers, OFF(workers), 1, 256},
    {"pid_file", set_str, OFF(pid_file), 0, 4096},
    {"host_id", set_str, OFF(host_id), 0, 64},
    {"drain_timeout", set_duration, OFF(drain_timeout), 0, DAY},
    {"log.level", set_level, 0, 0, 0},
    {"log.file", set_str, OFF(log_file), 0, 4096},
    {"api_key", set_str, OFF(api_key), 0, 256},
    {"allowed_origins", set_origins, 0, 0, 0},
    {"trusted_proxies", set_proxies, 0, 0, 0},
    {"redis.url", set_str, OFF(redis_url), 0, 1024},
    {"redis.on_failure", set_fail_mode, 0, 0, 0},
    {"docker.socket", set_str, OFF(docker_socket), 0, 107 /* sun_path */},
    {"docker.runtime", set_str, OFF(docker_runtime), 0, 64},
    {"docker.image", set_str, OFF(docker_image), 0, 256},
    {"sessions.idle_timeout", set_duration, OFF(idle_timeout), 1000, DAY},
    {"sessions.max_lifetime", set_duration, OFF(max_lifetime), 1000, 7 * DAY},
    {"sessions.max_per_ip", set_uint, OFF(max_per_ip), 1, 100000},
    {"sessions.per_ip_per_hour", set_uint, OFF(per_ip_per_hour), 1, 1000000},
    {"sessions.commands_per_minute", set_uint, OFF(commands_per_minute), 1, 100000},
    {"sessions.capacity", set_uint, OFF(capacity), 1, 1000000},
    {"terminal.max_message_size", set_size, OFF(ws_max_message), 16, 16 << 20},
    {"terminal.ping_interval", set_duration, OFF(ws_ping_interval), 1000, 20000},
    {"terminal.replay_size", set_size, OFF(ws_replay), 1024, 1 << 20},
    {"container.memory", set_size, OFF(container_memory), 6 << 20, 64ULL << 30},
    {"container.cpus", set_cpus, OFF(container_cpus), 0, 0},
    {"container.pids", set_uint, OFF(container_pids), 8, 100000},
    {"container.tmpfs_size", set_size, OFF(container_tmpfs), 1 << 20, 64ULL << 30},
    {"container.nofile", set_uint, OFF(container_nofile), 16, 1 << 20},
    {"container.fsize", set_size, OFF(container_fsize), 1 << 20, 1ULL << 40},
    {"pool.size", set_uint, OFF(pool_size), 0, 10000},
    {"environments", conf_set_environments, 0, 0, 0},
    {"page.enabled", set_bool, OFF(page_enabled), 0, 0},
    {"page.dir", set_str, OFF(page_dir), 0, 4096},
    {"status.memory_percent", set_uint, OFF(status_memory_percent), 1, 100},
    {"execute.enabled", set_bool, OFF(execute_enabled), 0, 0},
    {"execute.per_ip_per_minute", set_uint, OFF(execute_per_ip_per_minute), 1, 100000},
    {"execute.concurrency", set_uint, OFF(execute_concurrency), 1, 10000},
    {"execute.timeout", set_duration, OFF(execute_timeout), 100, 600000},
    {"execute.max_timeout", set_duration, OFF(execute_max_timeout), 100, 600000},
    {"execute.output_limit", set_size, OFF(execute_output), 1024, 64 << 20},
    {"execute.max_code", set_size, OFF(execute_max_code), 1024, 100 << 10},
    {"execute.image", set_str, OFF(execute_image), 0, 256},
    {"execute.languages", conf_set_languages, 0, 0, 0},
};

static const conf_key_t *
find_key(const char *path)
{
    for (size_t i = 0; i < sbx_nelems(keys); i++)
        if (strcmp(keys[i].path, path) == 0)
            return &keys[i];
    return NULL;
}

/* True when path names a section ("log") holding table keys ("log.level"). */
static bool
is_section(const char *path)
{
    size_t n = strlen(path);

    for (size_t i = 0; i < sbx_nelems(keys); i++)
        if (strncmp(keys[i].path, path, n) == 0 && keys[i].path[n] == '.')
            return true;
    return false;
}

static void
walk_mapping(ctx_t *c, yaml_node_t *map, const char *prefix)
{
    yaml_node_pair_t *pair;

    for (pair = map->data.mapping.pairs.start; pair < map->data.mapping.pairs.top; pair++) {
        yaml_node_t *kn = yaml_document_get_node(c->doc, pair->key);
        yaml_node_t *vn = yaml_document_get_node(c->doc, pair->value);
        char path[64];
        const conf_key_t *k;

        if (kn->type != YAML_SCALAR_NODE) {
            node_error(c, kn, "keys must be plain names");
            continue;
        }
        if (snprintf(path, sizeof(path), "%s%s%s", prefix, prefix[0] ? "." : "", (const char *)kn->data.scalar.value) >=
            (int)sizeof(path)) {
            node_error(c, kn, "unknown key \"%s\"", (const char *)kn->data.scalar.value);
            continue;
        }
        bool dup = false;
        for (size_t i = 0; i < c->nseen; i++)
            dup = dup || strcmp(c->seen[i], path) == 0;
        if (dup) {
            node_error(c, kn, "duplicate key \"%s\"", path);
            continue;
        }
        if (c->nseen < sbx_nelems(c->seen))
            strcpy(c->seen[c->nseen++], path);
        if ((k = find_key(path)) != NULL) {
            k->set(c, vn, k);
        } else if (is_section(path)) {
            if (vn->type == YAML_MAPPING_NODE)
                walk_mapping(c, vn, path);
            else if (!conf_is_null(vn))
                node_error(c, vn, "%s: expected a mapping of keys", path);
        } else {
            node_error(c, kn, "unknown key \"%s\"", path);
        }
    }
}

static int
set_defaults(sbx_conf_t *conf)
{
    char host[65] = "localhost";
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

    conf->listen = conf_arena_alloc(conf, sizeof(sbx_listen_t));
    if (conf->listen == NULL || sbx_parse_listen("127.0.0.1:3001", conf->listen) != SBX_OK)
        return SBX_ERROR;
    conf->nlisten = 1;
    conf->workers = ncpu > 0 ? (unsigned)ncpu : 1;
    conf->pid_file = conf_arena_strdup(conf, "/run/sandboxd.pid");
    gethostname(host, sizeof(host) - 1);
    conf->host_id = conf_arena_strdup(conf, host);
    conf->drain_timeout = 60000;
    conf->log_level = SBX_LOG_INFO;
    conf->redis_url = conf_arena_strdup(conf, "redis://127.0.0.1:6379/0");
    conf->docker_socket = conf_arena_strdup(conf, "/var/run/docker.sock");
    conf->docker_runtime = conf_arena_strdup(conf, "runsc");
    conf->docker_image = conf_arena_strdup(conf, "sandboxd/sandbox:bookworm");
    conf->idle_timeout = 5 * 60000;
    conf->max_lifetime = 30 * 60000;
    conf->max_per_ip = 2;
    conf->per_ip_per_hour = 10;
    conf->commands_per_minute = 60;
    conf->capacity = 64;
    conf->ws_max_message = 1024;
    conf->ws_ping_interval = 20000;
    conf->ws_replay = 16 << 10;
    conf->container_memory = 128 << 20;
    conf->container_cpus = 0.5;
    conf->container_pids = 50;
    conf->container_tmpfs = 64 << 20;
    conf->container_nofile = 256;
    conf->container_fsize = 64 << 20;
    conf->pool_size = 0;
    conf->page_enabled = true;
    conf->page_dir = conf_arena_strdup(conf, SBX_DATADIR "/sandboxd/page");
    conf->status_memory_percent = 90;
    conf->execute_enabled = true;
    conf->execute_per_ip_per_minute = 10;
    conf->execute_concurrency = 8;
    conf->execute_timeout = 5000;
    conf->execute_max_timeout = 30000;
    conf->execute_output = 1 << 20;
    conf->execute_max_code = 64 << 10;
    return conf->pid_file && conf->host_id && conf->redis_url && conf->docker_socket && conf->docker_runtime && conf->docker_image
               ? SBX_OK
               : SBX_ERROR;
}

static void
parse_file(ctx_t *c, FILE *fp)
{
    yaml_parser_t parser;
    yaml_document_t doc;
    yaml_node_t *root;

    if (!yaml_parser_initialize(&parser)) {
        conf_add_error(c, 0, 0, "out of memory");
        return;
    }
    yaml_parser_set_input_file(&parser, fp);
    if (!yaml_parser_load(&parser, &doc)) {
        conf_add_error(c, parser.problem_mark.line + 1, parser.problem_mark.column + 1, "%s%s%s",
                       parser.problem ? parser.problem : "syntax error", parser.context ? " " : "",
                       parser.context ? parser.context : "");
        yaml_parser_delete(&parser);
        return;
    }
    c->doc = &doc;
    if ((root = yaml_document_get_root_node(&doc)) != NULL) {
        if (root->type == YAML_MAPPING_NODE)
            walk_mapping(c, root, "");
        else if (!conf_is_null(root))
            node_error(c, root, "the top level must be a mapping of keys");
    }
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
}

static void
check_whole(ctx_t *c)
{
    sbx_conf_t *conf = c->conf;

    if (conf->nenvironments == 0) {
        /* No environments configured: one shell environment on docker.image. */
        conf->environments = conf_arena_alloc(conf, sizeof(sbx_environment_t));
        conf->environments[0].name = conf_arena_strdup(conf, "bash");
        conf->environments[0].description = conf_arena_strdup(conf, "Bash shell");
        conf->environments[0].category = conf_arena_strdup(conf, "shell");
        conf->nenvironments = 1;
    }
    for (size_t i = 0; i < conf->nenvironments; i++)
        if (conf->environments[i].image == NULL)
            conf->environments[i].image = conf->docker_image;
    if (conf->nlanguages == 0)
        conf_default_languages(conf);
    if (conf->page_dir == NULL || conf->page_dir[0] == '\0') {
        conf->page_enabled = false;
    } else if (conf->page_dir[0] != '/') {
        /* Relative to the config file, so the repo's conf/sandboxd.yaml finds conf/page from any cwd. */
        const char *slash = strrchr(conf->file, '/');
        char cwd[4096] = ".", *abs;
        size_t n = slash ? (size_t)(slash - conf->file) : 0;
        if (conf->file[0] != '/' && getcwd(cwd, sizeof(cwd)) == NULL)
            strcpy(cwd, ".");
        if ((abs = conf_arena_alloc(conf, strlen(cwd) + n + strlen(conf->page_dir) + 3)) != NULL) {
            if (conf->file[0] == '/')
                sprintf(abs, "%.*s/%s", (int)n, conf->file, conf->page_dir);
            else if (n > 0)
                sprintf(abs, "%s/%.*s/%s", cwd, (int)n, conf->file, conf->page_dir);
            else
                sprintf(abs, "%s/%s", cwd, conf->page_dir);
            conf->page_dir = abs;
        }
    }
    if (conf->execute_timeout > conf->execute_max_timeout)
        conf_add_error(c, 0, 0, "execute.timeout is longer than execute.max_timeout");
    if (conf->pid_file == NULL || conf->pid_file[0] != '/')
        conf_add_error(c, 0, 0, "pid_file must be an absolute path");
    if (conf->host_id == NULL || conf->host_id[0] == '\0')
        conf_add_error(c, 0, 0, "host_id must not be empty");
    if (conf->docker_socket == NULL || conf->docker_runtime == NULL || conf->docker_image == NULL || conf->redis_url == NULL)
        conf_add_error(c, 0, 0, "redis.url, docker.socket, docker.runtime and docker.image must not be null");
}

sbx_conf_t *
sbx_conf_load(const char *file, char *const *env, char *err, size_t errlen)
{
    ctx_t c = {.file = file != NULL ? file : "(defaults)", .err = err, .errlen = errlen};
    sbx_conf_t *conf = calloc(1, sizeof(*conf));
    FILE *fp;

    if (errlen > 0)
        err[0] = '\0';
    if (conf == NULL || (conf->arena = calloc(1, sizeof(sbx_arena_t))) == NULL) {
        free(conf);
        snprintf(err, errlen, "out of memory\n");
        return NULL;
    }
    c.conf = conf;
    if (set_defaults(conf) != SBX_OK) {
        conf_add_error(&c, 0, 0, "out of memory");
        goto fail;
    }
    conf->file = conf_arena_strdup(conf, c.file);
    if (file != NULL) {
        if ((fp = fopen(file, "r")) == NULL) {
            conf_add_error(&c, 0, 0, "cannot open: %s", strerror(errno));
            goto fail;
        }
        parse_file(&c, fp);
        fclose(fp);
    }
    conf_apply_env(&c, env);
    check_whole(&c);
    if (c.nerr > 0)
        goto fail;
    return conf;

fail:
    sbx_conf_free(conf);
    return NULL;
}

void
sbx_conf_free(sbx_conf_t *conf)
{
    struct block *b, *next;

    if (conf == NULL)
        return;
    for (b = conf->arena->head; b != NULL; b = next) {
        next = b->next;
        free(b);
    }
    free(conf->arena);
    free(conf);
}

const sbx_language_t *
sbx_conf_language(const sbx_conf_t *conf, const char *name)
{
    if (name == NULL)
        return &conf->languages[0];
    for (size_t i = 0; i < conf->nlanguages; i++)
        if (strcmp(conf->languages[i].name, name) == 0)
            return &conf->languages[i];
    return NULL;
}

const sbx_environment_t *
sbx_conf_environment(const sbx_conf_t *conf, const char *name)
{
    if (name == NULL)
        return &conf->environments[0];
    for (size_t i = 0; i < conf->nenvironments; i++)
        if (strcmp(conf->environments[i].name, name) == 0)
            return &conf->environments[i];
    return NULL;
}
