/* The execute.languages table: how each language's snippet is run. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "conf_internal.h"

/* What ships: the interpreters the sandbox image has (docker/Dockerfile). */
static const struct {
    const char *name, *file, *cmd;
} defaults[] = {
    {"sh", "main.sh", "sh"},
    {"bash", "main.sh", "bash"},
    {"python3", "main.py", "python3"},
};

void
conf_default_languages(sbx_conf_t *conf)
{
    conf->languages = conf_arena_alloc(conf, sizeof(defaults) / sizeof(defaults[0]) * sizeof(sbx_language_t));
    if (conf->languages == NULL)
        return;
    for (size_t i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++) {
        sbx_language_t *l = &conf->languages[i];
        l->name = conf_arena_strdup(conf, defaults[i].name);
        l->file = conf_arena_strdup(conf, defaults[i].file);
        l->command = conf_arena_alloc(conf, sizeof(char *));
        l->command[0] = conf_arena_strdup(conf, defaults[i].cmd);
        l->ncommand = 1;
    }
    conf->nlanguages = sizeof(defaults) / sizeof(defaults[0]);
}

/* A file name inside /tmp: no path, nothing the wrapper's shell would read as syntax. */
static bool
plain_file_name(const char *s)
{
    if (s[0] == '\0' || s[0] == '.' || strlen(s) > 64)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '.' || *s == '_' ||
              *s == '-'))
            return false;
    return true;
}

static void
lang_field(ctx_t *c, void *item, const char *key, yaml_node_t *v, yaml_node_t *kn)
{
    sbx_language_t *l = item;
    char path[96];
    const conf_key_t k = {.path = path};
    const char *s;
    bool b;

    snprintf(path, sizeof(path), "execute.languages[%s].%s", l->name ? l->name : "?", key);
    if (strcmp(key, "command") == 0) {
        if ((l->command = conf_scalar_list(c, v, &k, &l->ncommand, 16)) != NULL && l->ncommand == 0)
            node_error(c, v, "%s: must name a program", path);
        return;
    }
    if (strcmp(key, "exec_tmp") == 0) {
        if ((s = conf_scalar(c, v, &k)) != NULL && sbx_parse_bool(s, &b) != SBX_OK)
            node_error(c, v, "%s: expected true or false", path);
        else if (s != NULL)
            l->exec_tmp = b;
        return;
    }
    if ((s = conf_scalar(c, v, &k)) == NULL)
        return;
    if (strcmp(key, "name") == 0)
        l->name = conf_arena_strdup(c->conf, s);
    else if (strcmp(key, "image") == 0)
        l->image = conf_arena_strdup(c->conf, s);
    else if (strcmp(key, "file") == 0 && plain_file_name(s))
        l->file = conf_arena_strdup(c->conf, s);
    else if (strcmp(key, "file") == 0)
        node_error(c, v, "%s: \"%s\" must be a plain file name (letters, digits, . _ -)", path, s);
    else
        node_error(c, kn, "unknown key \"execute.languages.%s\"", key);
}

int
conf_set_languages(ctx_t *c, yaml_node_t *node, const conf_key_t *k)
{
    yaml_node_item_t *item;
    size_t n = 0, len;

    if (node->type != YAML_SEQUENCE_NODE ||
        (len = (size_t)(node->data.sequence.items.top - node->data.sequence.items.start)) == 0 || len > 64) {
        node_error(c, node, "%s: expected a list of 1..64 languages", k->path);
        return SBX_ERROR;
    }
    c->conf->languages = conf_arena_alloc(c->conf, len * sizeof(sbx_language_t));
    for (item = node->data.sequence.items.start; item < node->data.sequence.items.top; item++, n++) {
        yaml_node_t *ln = yaml_document_get_node(c->doc, *item);
        sbx_language_t *l = &c->conf->languages[n];

        if (ln->type != YAML_MAPPING_NODE) {
            node_error(c, ln, "%s: each language is a mapping with name, file and command", k->path);
            return SBX_ERROR;
        }
        conf_each_field(c, ln, lang_field, l);
        if (l->name == NULL || l->file == NULL || l->command == NULL) {
            node_error(c, ln, "%s: a language needs name, file and command", k->path);
            return SBX_ERROR;
        }
        for (size_t j = 0; j < n; j++) {
            if (strcmp(c->conf->languages[j].name, l->name) == 0) {
                node_error(c, ln, "%s: language \"%s\" is defined twice", k->path, l->name);
                return SBX_ERROR;
            }
        }
    }
    c->conf->nlanguages = n;
    return SBX_OK;
}
