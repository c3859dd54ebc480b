/* Unit tests of the config loader: values, every error path's FILE:LINE:COLUMN, env overrides. */
#include "config.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <unistd.h>

#include "conf.h"
#include "tap.h"

static char path[] = "/tmp/sbx-conf-XXXXXX";
static char err[8192];
static char *no_env[] = {NULL};

/* Writes text to the temp file and loads it with env; returns the config or NULL (errors in err). */
static sbx_conf_t *
load(const char *text, char **env)
{
    FILE *fp = fopen(path, "w");

    fputs(text, fp);
    fclose(fp);
    return sbx_conf_load(path, env != NULL ? env : no_env, err, sizeof(err));
}

/* Expects text to fail with exactly one error, "PATH:want". */
static void
fails(const char *text, const char *want, const char *what)
{
    char expect[1024];
    sbx_conf_t *conf = load(text, NULL);

    snprintf(expect, sizeof(expect), "%s:%s\n", path, want);
    ok(conf == NULL, "%s: refused", what);
    is_str(err, expect, "%s: error text", what);
    sbx_conf_free(conf);
}

static void
test_values(void)
{
    uint64_t v;
    bool b;
    sbx_listen_t l;
    sbx_cidr_t c;
    struct sockaddr_in in4 = {.sin_family = AF_INET};
    struct sockaddr_in6 in6 = {.sin6_family = AF_INET6};

    ok(sbx_parse_duration("300", &v) == SBX_OK && v == 300000, "duration: bare number is seconds");
    ok(sbx_parse_duration("30s", &v) == SBX_OK && v == 30000, "duration: 30s");
    ok(sbx_parse_duration("5m", &v) == SBX_OK && v == 300000, "duration: 5m");
    ok(sbx_parse_duration("250ms", &v) == SBX_OK && v == 250, "duration: 250ms");
    ok(sbx_parse_duration("1h", &v) == SBX_OK && v == 3600000, "duration: 1h");
    ok(sbx_parse_duration("5x", &v) == SBX_ERROR, "duration: unknown unit refused");
    ok(sbx_parse_duration("-5s", &v) == SBX_ERROR, "duration: negative refused");
    ok(sbx_parse_duration("99999999999999999999", &v) == SBX_ERROR, "duration: overflow refused");
    ok(sbx_parse_size("128m", &v) == SBX_OK && v == 128u << 20, "size: 128m");
    ok(sbx_parse_size("64k", &v) == SBX_OK && v == 64u << 10, "size: 64k");
    ok(sbx_parse_size("1G", &v) == SBX_OK && v == 1u << 30, "size: 1G");
    ok(sbx_parse_size("m", &v) == SBX_ERROR, "size: unit alone refused");
    ok(sbx_parse_size("18446744073709551615g", &v) == SBX_ERROR, "size: overflow refused");
    ok(sbx_parse_bool("yes", &b) == SBX_OK && b, "bool: yes");
    ok(sbx_parse_bool("off", &b) == SBX_OK && !b, "bool: off");
    ok(sbx_parse_bool("maybe", &b) == SBX_ERROR, "bool: junk refused");
    ok(sbx_parse_listen("127.0.0.1:3001", &l) == SBX_OK && strcmp(l.name, "127.0.0.1:3001") == 0, "listen: v4");
    ok(sbx_parse_listen("[::1]:80", &l) == SBX_OK && strcmp(l.name, "[::1]:80") == 0, "listen: v6");
    ok(sbx_parse_listen("8080", &l) == SBX_OK && strcmp(l.name, "0.0.0.0:8080") == 0, "listen: port only");
    ok(sbx_parse_listen("localhost:1", &l) == SBX_OK && strcmp(l.name, "127.0.0.1:1") == 0, "listen: localhost");
    ok(sbx_parse_listen("example.com:80", &l) == SBX_ERROR, "listen: names are not resolved");
    ok(sbx_parse_listen("1.2.3.4:0", &l) == SBX_ERROR, "listen: port 0 refused");
    ok(sbx_parse_listen("::1:80", &l) == SBX_ERROR, "listen: bare v6 refused");
    ok(sbx_parse_cidr("10.0.0.0/8", &c) == SBX_OK && c.prefix == 8, "cidr: v4 block");
    inet_pton(AF_INET, "10.200.3.4", &in4.sin_addr);
    ok(sbx_cidr_match(&c, (struct sockaddr *)&in4), "cidr: 10.200.3.4 in 10/8");
    inet_pton(AF_INET, "11.0.0.1", &in4.sin_addr);
    ok(!sbx_cidr_match(&c, (struct sockaddr *)&in4), "cidr: 11.0.0.1 not in 10/8");
    inet_pton(AF_INET6, "::ffff:10.1.1.1", &in6.sin6_addr);
    ok(sbx_cidr_match(&c, (struct sockaddr *)&in6), "cidr: v4-mapped v6 peer matches a v4 block");
    ok(sbx_parse_cidr("127.0.0.1", &c) == SBX_OK && c.prefix == 32, "cidr: lone address is /32");
    ok(sbx_parse_cidr("fd00::/7", &c) == SBX_OK && c.family == AF_INET6 && c.prefix == 7, "cidr: v6 block");
    inet_pton(AF_INET6, "fc00::1", &in6.sin6_addr);
    ok(sbx_cidr_match(&c, (struct sockaddr *)&in6), "cidr: fc00::1 in fd00::/7");
    ok(sbx_parse_cidr("10.0.0.0/33", &c) == SBX_ERROR, "cidr: prefix too long refused");
    ok(sbx_parse_cidr("nope", &c) == SBX_ERROR, "cidr: junk refused");
}

static void
test_defaults_and_file(void)
{
    sbx_conf_t *conf = sbx_conf_load(NULL, no_env, err, sizeof(err));

    ok(conf != NULL, "defaults load");
    ok(conf->nlisten == 1 && strcmp(conf->listen[0].name, "127.0.0.1:3001") == 0, "default listen 127.0.0.1:3001");
    ok(conf->idle_timeout == 300000 && conf->max_lifetime == 1800000, "default lifetimes 5m / 30m");
    ok(conf->max_per_ip == 2 && conf->per_ip_per_hour == 10 && conf->commands_per_minute == 60, "default per-IP limits");
    ok(conf->ws_max_message == 1024, "default terminal message size 1024");
    is_str(conf->docker_runtime, "runsc", "default runtime runsc");
    ok(conf->nenvironments == 1 && strcmp(conf->environments[0].name, "bash") == 0 &&
           strcmp(conf->environments[0].image, conf->docker_image) == 0,
       "default environment bash on docker.image");
    sbx_conf_free(conf);

    conf = load("listen: [127.0.0.1:1, '[::1]:2']\n"
                "workers: 3\n"
                "pid_file: /tmp/x.pid\n"
                "log: {level: debug, file: /tmp/x.log}\n"
                "api_key: secret\n"
                "allowed_origins: [https://a.example, https://b.example]\n"
                "trusted_proxies: 127.0.0.1\n"
                "redis: {url: 'unix:///run/redis.sock', on_failure: open}\n"
                "sessions: {idle_timeout: 30s, max_lifetime: 1h, capacity: 7}\n"
                "container: {memory: 256m, cpus: 1.5, pids: 100}\n"
                "environments:\n"
                "  - name: node\n"
                "    image: img/node\n"
                "    category: runtime\n"
                "    defaultTimeout: 600000\n"
                "    defaultInitCommands: [echo hi]\n"
                "    env: [A=1]\n"
                "  - {name: git, category: vcs, defaultTimeout: 10m}\n",
                NULL);
    ok(conf != NULL, "a full file loads");
    if (conf == NULL) {
        printf("# %s", err);
        return;
    }
    ok(conf->nlisten == 2 && strcmp(conf->listen[1].name, "[::1]:2") == 0, "listen list");
    ok(conf->workers == 3, "workers");
    ok(conf->log_level == 0 && strcmp(conf->log_file, "/tmp/x.log") == 0, "log section (flow mapping)");
    is_str(conf->api_key, "secret", "api_key");
    ok(conf->norigins == 2 && strcmp(conf->allowed_origins[1], "https://b.example") == 0, "origins");
    ok(conf->nproxies == 1 && conf->trusted_proxies[0].prefix == 32, "a lone scalar is a list of one");
    ok(conf->redis_fail_open, "redis.on_failure open");
    ok(conf->idle_timeout == 30000 && conf->max_lifetime == 3600000 && conf->capacity == 7, "sessions section");
    ok(conf->container_memory == 256u << 20 && conf->container_cpus == 1.5 && conf->container_pids == 100, "container section");
    ok(conf->nenvironments == 2, "two environments");
    ok(strcmp(conf->environments[0].image, "img/node") == 0 && conf->environments[0].default_timeout == 600000 &&
           conf->environments[0].ninit == 1 && conf->environments[0].nenv == 1,
       "environment fields");
    ok(conf->environments[1].default_timeout == 600000 && strcmp(conf->environments[1].image, conf->docker_image) == 0,
       "defaultTimeout with a unit; image defaults to docker.image");
    ok(sbx_conf_environment(conf, "git") == &conf->environments[1] && sbx_conf_environment(conf, NULL) == &conf->environments[0] &&
           sbx_conf_environment(conf, "nope") == NULL,
       "environment lookup");
    sbx_conf_free(conf);

    conf = load("", NULL);
    ok(conf != NULL, "an empty file is all defaults");
    sbx_conf_free(conf);
}

static void
test_errors(void)
{
    fails("workers: 2\n  bad: indent\n", "2:6: mapping values are not allowed in this context", "YAML syntax error");
    fails("listen: [127.0.0.1:1\n", "2:1: did not find expected ',' or ']' while parsing a flow sequence", "unclosed flow list");
    fails("- a\n- b\n", "1:1: the top level must be a mapping of keys", "top level is a list");
    fails("workerz: 2\n", "1:1: unknown key \"workerz\"", "unknown top-level key");
    fails("log:\n  level: info\n  colour: red\n", "3:3: unknown key \"log.colour\"", "unknown nested key");
    fails("workers: 2\nworkers: 3\n", "2:1: duplicate key \"workers\"", "duplicate key");
    fails("workers: [1]\n", "1:10: workers: expected a scalar value", "list where a scalar belongs");
    fails("workers: two\n", "1:10: workers: expected a whole number, got \"two\"", "not a number");
    fails("workers: 0\n", "1:10: workers: 0 is out of range (1..256)", "below range");
    fails("sessions:\n  max_per_ip: -1\n", "2:15: sessions.max_per_ip: expected a whole number, got \"-1\"", "negative number");
    fails("sessions:\n  capacity: 99999999999\n", "2:13: sessions.capacity: 99999999999 is out of range (1..1000000)",
          "above range");
    fails("sessions:\n  idle_timeout: 5 minutes\n",
          "2:17: sessions.idle_timeout: expected a duration (300, 30s, 5m, 1h, 250ms), got \"5 minutes\"", "bad duration");
    fails("sessions:\n  idle_timeout: 10ms\n", "2:17: sessions.idle_timeout: 10ms is out of range (1000..86400000)",
          "duration below range");
    fails("container:\n  memory: lots\n", "2:11: container.memory: expected a size (1024, 64k, 128m, 1g), got \"lots\"",
          "bad size");
    fails("container:\n  memory: 1m\n", "2:11: container.memory: 1m is out of range (6291456..68719476736)", "size below range");
    fails("container:\n  cpus: 0\n", "2:9: container.cpus: expected a number of CPUs between 0.01 and 64, got \"0\"", "cpus");
    fails("listen:\n  - 127.0.0.1:1\n  - 1.2.3.4:99999\n",
          "3:5: listen: \"1.2.3.4:99999\" is not host:port with a numeric IPv4/IPv6 host and a port 1..65535", "bad listen entry");
    fails("listen: [1.2.3.4:5, 1.2.3.4:5]\n", "1:21: listen: \"1.2.3.4:5\" is listed twice", "listen twice");
    fails("listen: []\n", "1:9: listen: at least one address is required", "empty listen");
    fails("trusted_proxies: [10.0.0.0/8, bogus]\n", "1:31: trusted_proxies: \"bogus\" is not an IP address or CIDR block",
          "bad proxy");
    fails("allowed_origins: {a: b}\n", "1:18: allowed_origins: expected a list", "origins as mapping");
    fails("log:\n  level: loud\n", "2:10: log.level: expected debug, info, notice, warn or error, got \"loud\"", "bad level");
    fails("redis:\n  on_failure: maybe\n", "2:15: redis.on_failure: expected open or closed, got \"maybe\"", "bad on_failure");
    fails("redis: localhost\n", "1:8: redis: expected a mapping of keys", "section given a scalar");
    fails("pid_file: run/x.pid\n", " pid_file must be an absolute path", "relative pid file");
    fails("environments: bash\n", "1:15: environments: expected a list of environments", "environments not a list");
    fails("environments:\n  - image: x\n", "2:5: environments: an environment needs a name", "environment without name");
    fails("environments:\n  - {name: a}\n  - {name: a}\n", "3:5: environments: environment \"a\" is defined twice",
          "duplicate environment");
    fails("environments:\n  - {name: a, category: games}\n",
          "2:25: environments[a].category: expected shell, runtime or vcs, got \"games\"", "bad category");
    fails("environments:\n  - {name: a, colour: red}\n", "2:15: unknown key \"environments.colour\"", "unknown environment key");
    fails("environments:\n  - {name: a, env: [NOEQUALS]}\n", "2:20: environments[a].env: \"NOEQUALS\" is not NAME=value",
          "bad env entry");
    fails("environments:\n  - {name: a, defaultTimeout: 5}\n",
          "2:31: environments[a].defaultTimeout: 5 is out of range (1000..604800000 ms)", "defaultTimeout too small");

    fails("execute:\n  languages:\n    - {[x]: 1, name: a, file: a.sh, command: [sh]}\n", "3:8: keys must be plain names",
          "a language key that is not a name");
    fails("environments:\n  - {[x]: 1, name: a}\n", "2:6: keys must be plain names", "an environment key that is not a name");
    sbx_conf_t *bad = load("execute:\n  languages:\n    - {name: a, file: ../x, command: [sh]}\n", NULL);
    ok(bad == NULL && strstr(err, ":3:23: execute.languages[a].file: \"../x\" must be a plain file name") != NULL,
       "a language file with a path is refused at its position");

    sbx_conf_t *conf = load("workers: 0\nbogus: 1\nlog: {level: x}\n", NULL);
    char want[1024];
    snprintf(want, sizeof(want),
             "%s:1:10: workers: 0 is out of range (1..256)\n%s:2:1: unknown key \"bogus\"\n"
             "%s:3:14: log.level: expected debug, info, notice, warn or error, got \"x\"\n",
             path, path, path);
    ok(conf == NULL, "several errors: refused");
    is_str(err, want, "several errors: every one reported, in file order");

    conf = sbx_conf_load("/nonexistent/sbx.yaml", no_env, err, sizeof(err));
    ok(conf == NULL && strstr(err, "/nonexistent/sbx.yaml: cannot open: No such file") == err, "missing file");
}

static void
test_env(void)
{
    char *env[] = {"PORT=4000",
                   "HOST=0.0.0.0",
                   "SANDBOX_API_KEY=k",
                   "SANDBOX_ALLOWED_ORIGINS=https://a.example, https://b.example",
                   "SANDBOX_USE_GVISOR=false",
                   "SANDBOX_MAX_WS_MESSAGE_SIZE=2048",
                   "REDIS_URL=redis://r:6379/1",
                   "DOCKER_HOST=unix:///tmp/d.sock",
                   "UNRELATED=1",
                   NULL};
    sbx_conf_t *conf = load("listen: [127.0.0.1:1, 127.0.0.1:2]\napi_key: file\n", env);

    ok(conf != NULL, "env overrides load");
    if (conf == NULL)
        return;
    ok(conf->nlisten == 1 && strcmp(conf->listen[0].name, "0.0.0.0:4000") == 0, "HOST and PORT replace listen");
    is_str(conf->api_key, "k", "SANDBOX_API_KEY overrides the file");
    ok(conf->norigins == 2 && strcmp(conf->allowed_origins[1], "https://b.example") == 0, "SANDBOX_ALLOWED_ORIGINS split");
    is_str(conf->docker_runtime, "runc", "SANDBOX_USE_GVISOR=false selects runc");
    ok(conf->ws_max_message == 2048, "SANDBOX_MAX_WS_MESSAGE_SIZE");
    is_str(conf->redis_url, "redis://r:6379/1", "REDIS_URL");
    is_str(conf->docker_socket, "/tmp/d.sock", "DOCKER_HOST unix://");
    sbx_conf_free(conf);

    char *env2[] = {"PORT=5000", "SANDBOX_GVISOR_RUNTIME=runsc-debug", NULL};
    conf = load("listen: ['[::1]:1']\n", env2);
    ok(conf != NULL && strcmp(conf->listen[0].name, "[::1]:5000") == 0, "PORT alone keeps the host");
    ok(conf != NULL && strcmp(conf->docker_runtime, "runsc-debug") == 0, "SANDBOX_GVISOR_RUNTIME names the runtime");
    sbx_conf_free(conf);

    char *bad[] = {"PORT=http", "SANDBOX_USE_GVISOR=perhaps", "SANDBOX_MAX_WS_MESSAGE_SIZE=1", "DOCKER_HOST=tcp://1.2.3.4:2375",
                   NULL};
    conf = load("", bad);
    ok(conf == NULL, "bad environment values refused");
    ok(strstr(err, "$HOST: HOST/PORT give \"127.0.0.1:http\"") != NULL, "bad PORT named");
    ok(strstr(err, "$SANDBOX_USE_GVISOR: expected true or false, got \"perhaps\"") != NULL, "bad SANDBOX_USE_GVISOR named");
    ok(strstr(err, "$SANDBOX_MAX_WS_MESSAGE_SIZE: expected a size") != NULL, "bad SANDBOX_MAX_WS_MESSAGE_SIZE named");
    ok(strstr(err, "$DOCKER_HOST: only unix:///path/to/docker.sock is supported") != NULL, "tcp DOCKER_HOST refused");
}

int
main(void)
{
    int fd = mkstemp(path);

    close(fd);
    test_values();
    test_defaults_and_file();
    test_errors();
    test_env();
    unlink(path);
    return done_testing();
}
