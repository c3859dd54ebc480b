/*
 * Private to shared/conf*.c: the parse context and the helpers that the
 * key setters share. Nothing outside the config loader includes this.
 */
#ifndef SBX_CONF_INTERNAL_H
#define SBX_CONF_INTERNAL_H

#include <stdbool.h>
#include <yaml.h>

#include "conf.h"

/* Every allocation of a configuration is linked here and freed together. */
typedef struct sbx_arena_s {
    struct block *head;
} sbx_arena_t;

struct block {
    struct block *next;
    max_align_t data[];
};

typedef struct {
    yaml_document_t *doc;
    sbx_conf_t *conf;
    const char *file;
    char *err;
    size_t errlen, errpos;
    int nerr;
    char seen[64][64]; /* paths already set, to refuse a duplicate key */
    size_t nseen;
} ctx_t;

typedef struct conf_key_s conf_key_t;
typedef int (*setter_t)(ctx_t *c, yaml_node_t *node, const conf_key_t *k);

struct conf_key_s {
    const char *path;
    setter_t set;
    size_t offset;
    uint64_t min, max;
};

#define FIELD(c, k, type) ((type *)((char *)(c)->conf + (k)->offset))

/* libyaml marks are 0-based; editors and compilers count from 1. */
#define node_error(c, node, ...) conf_add_error(c, (node)->start_mark.line + 1, (node)->start_mark.column + 1, __VA_ARGS__)

/* Allocations live as long as the configuration; NULL when out of memory. */
void *conf_arena_alloc(sbx_conf_t *conf, size_t size);
char *conf_arena_strdup(sbx_conf_t *conf, const char *s);
/* Appends "FILE:LINE:COLUMN: message" (line 0: "FILE: message") to the error text. */
void conf_add_error(ctx_t *c, size_t line, size_t col, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* The scalar's text, or NULL after reporting that the node is not a scalar. */
const char *conf_scalar(ctx_t *c, yaml_node_t *node, const conf_key_t *k);
bool conf_is_null(yaml_node_t *node);
/* A sequence of scalars (a lone scalar is a list of one; null is empty) as an arena array. */
char **conf_scalar_list(ctx_t *c, yaml_node_t *node, const conf_key_t *k, size_t *count, size_t max);

/* Calls fn(c, item, key, value, keynode) for each key of the mapping map; a key that is not a plain name is an error. */
typedef void (*conf_field_fn)(ctx_t *c, void *item, const char *key, yaml_node_t *value, yaml_node_t *keynode);
void conf_each_field(ctx_t *c, yaml_node_t *map, conf_field_fn fn, void *item);

/* conf_env.c */
int conf_set_environments(ctx_t *c, yaml_node_t *node, const conf_key_t *k);
int conf_set_languages(ctx_t *c, yaml_node_t *node, const conf_key_t *k);
void conf_default_languages(sbx_conf_t *conf);
void conf_apply_env(ctx_t *c, char *const *env);

#endif
