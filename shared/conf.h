/*
 * sandboxd configuration: the parsed form of conf/sandboxd.yaml.
 *
 * The master loads a configuration at start and on SIGHUP; workers inherit
 * it across fork() and treat it as read-only. A configuration owns every
 * string and array it points to (one arena, freed by sbx_conf_free).
 * Durations are held in milliseconds, sizes in bytes.
 */
#ifndef SBX_CONF_H
#define SBX_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "sbx.h"

typedef struct sbx_listen_s {
    char name[80]; /* as written, normalised: "127.0.0.1:3001", "[::1]:3001" */
    struct sockaddr_storage addr;
    socklen_t addrlen;
} sbx_listen_t;

typedef struct sbx_cidr_s {
    int family; /* AF_INET or AF_INET6 */
    uint8_t addr[16];
    unsigned prefix;
} sbx_cidr_t;

typedef struct sbx_environment_s {
    char *name;
    char *image;
    char *description;
    char *category;           /* shell, runtime, vcs */
    char *runtime;            /* NULL: docker.runtime */
    char *user;               /* NULL: the image's user */
    char *workdir;            /* NULL: the image's working dir */
    uint64_t default_timeout; /* ms; 0: sessions.max_lifetime */
    char **init;              /* defaultInitCommands */
    size_t ninit;
    char **env; /* "NAME=value" */
    size_t nenv;
} sbx_environment_t;

typedef struct sbx_language_s {
    char *name;
    char *file;     /* the code's file name in /tmp */
    char **command; /* the interpreter's argv; the file's path is appended */
    size_t ncommand;
    char *image;   /* NULL: execute.image */
    bool exec_tmp; /* /tmp must allow exec (compiled languages); default noexec */
} sbx_language_t;

typedef struct sbx_conf_s {
    char *file; /* the file it was read from, for messages */

    sbx_listen_t *listen;
    size_t nlisten;
    unsigned workers; /* "auto" is resolved to the CPU count at load */
    char *pid_file;
    char *host_id; /* names this host in labels and Redis; default: hostname */
    uint64_t drain_timeout;

    int log_level;
    char *log_file; /* NULL: stderr */

    char *api_key; /* NULL or "": no key required */
    char **allowed_origins;
    size_t norigins;
    sbx_cidr_t *trusted_proxies;
    size_t nproxies;

    char *redis_url;
    bool redis_fail_open; /* redis.on_failure: open */

    char *docker_socket;
    char *docker_runtime;
    char *docker_image;

    uint64_t idle_timeout;
    uint64_t max_lifetime;
    unsigned max_per_ip;
    unsigned per_ip_per_hour;
    unsigned commands_per_minute;
    unsigned capacity;

    uint64_t ws_max_message; /* bytes */
    uint64_t ws_ping_interval;
    uint64_t ws_replay; /* bytes of output kept per session for repaint on reconnect */

    uint64_t container_memory; /* bytes */
    double container_cpus;
    unsigned container_pids;
    uint64_t container_tmpfs; /* bytes, each of /tmp and the home directory */
    unsigned container_nofile;
    uint64_t container_fsize; /* bytes */

    unsigned pool_size;

    bool page_enabled;
    char *page_dir;                 /* absolute: a relative one is resolved against the config file's folder */
    unsigned status_memory_percent; /* /api/v1/status says open above this much host memory in use */

    bool execute_enabled;
    unsigned execute_per_ip_per_minute;
    unsigned execute_concurrency; /* runs at once on this host */
    uint64_t execute_timeout;     /* ms, when the request names none */
    uint64_t execute_max_timeout; /* ms */
    uint64_t execute_output;      /* bytes kept of each of stdout and stderr */
    uint64_t execute_max_code;    /* bytes */
    char *execute_image;          /* NULL: docker.image */
    sbx_language_t *languages;
    size_t nlanguages;

    sbx_environment_t *environments;
    size_t nenvironments;

    struct sbx_arena_s *arena;
} sbx_conf_t;

/*
 * Reads file (or only defaults when file is NULL), then applies the
 * toolkata environment variables (PORT, HOST, SANDBOX_*, REDIS_URL,
 * DOCKER_HOST) from env, a NULL-terminated "NAME=value" array (environ).
 * On success returns a configuration the caller owns. On failure returns
 * NULL and writes every error, one per line as "FILE:LINE:COLUMN: message",
 * into err (truncated to errlen). Never blocks on anything but the file.
 */
sbx_conf_t *sbx_conf_load(const char *file, char *const *env, char *err, size_t errlen);
void sbx_conf_free(sbx_conf_t *conf);

/* Returns the language named name, or the first when name is NULL; NULL if none matches. */
const sbx_language_t *sbx_conf_language(const sbx_conf_t *conf, const char *name);

/* Returns the environment named name, or the first when name is NULL; NULL if none matches. */
const sbx_environment_t *sbx_conf_environment(const sbx_conf_t *conf, const char *name);

/* Pure value parsers, shared with the environment overrides and the unit tests. */
int sbx_parse_duration(const char *s, uint64_t *ms);  /* "300" (s), "30s", "5m", "1h", "250ms" */
int sbx_parse_size(const char *s, uint64_t *bytes);   /* "1024", "64k", "128m", "1g" */
int sbx_parse_bool(const char *s, bool *v);           /* true/false/yes/no/on/off/1/0 */
int sbx_parse_listen(const char *s, sbx_listen_t *l); /* "host:port", "[v6]:port", "port" */
int sbx_parse_cidr(const char *s, sbx_cidr_t *c);     /* "10.0.0.0/8", "::1", "127.0.0.1" */
/* True when the address (AF_INET/AF_INET6 sockaddr, v4-mapped v6 included) lies in cidr. */
bool sbx_cidr_match(const sbx_cidr_t *cidr, const struct sockaddr *sa);

#endif
