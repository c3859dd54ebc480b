/* Unit tests of the container create body: every hardening field, from config and environment. */
#include "config.h"

#include "container.h"
#include "tap.h"

static char *no_env[] = {NULL};

int
main(void)
{
    char err[1024];
    sbx_conf_t *conf = sbx_conf_load(NULL, no_env, err, sizeof(err));
    const sbx_environment_t *env = sbx_conf_environment(conf, NULL);
    json_t *spec = sbx_container_spec(conf, env, "abcdefghijklmnopqrstuv", "session", 1234);
    json_t *host = json_object_get(spec, "HostConfig"), *labels = json_object_get(spec, "Labels");

    ok(spec != NULL && host != NULL, "a spec is built");
    is_str(json_string_value(json_object_get(host, "Runtime")), "runsc", "runtime runsc by default");
    is_str(json_string_value(json_object_get(host, "NetworkMode")), "none", "no network");
    ok(json_is_true(json_object_get(host, "ReadonlyRootfs")), "read-only root");
    is_str(json_string_value(json_array_get(json_object_get(host, "CapDrop"), 0)), "ALL", "all capabilities dropped");
    is_str(json_string_value(json_array_get(json_object_get(host, "SecurityOpt"), 0)), "no-new-privileges", "no new privileges");
    ok(json_integer_value(json_object_get(host, "Memory")) == 128 << 20 &&
           json_integer_value(json_object_get(host, "MemorySwap")) == 128 << 20,
       "Memory = MemorySwap = 128m");
    ok(json_integer_value(json_object_get(host, "NanoCpus")) == 500000000, "half a CPU");
    ok(json_integer_value(json_object_get(host, "PidsLimit")) > 50, "runsc's host pids limit covers its own threads");
    json_t *ul = json_object_get(host, "Ulimits"), *u;
    size_t i;
    int seen = 0;
    json_array_foreach(ul, i, u)
    {
        const char *n = json_string_value(json_object_get(u, "Name"));
        json_int_t soft = json_integer_value(json_object_get(u, "Soft")), hard = json_integer_value(json_object_get(u, "Hard"));
        seen += strcmp(n, "nofile") == 0 && soft == 256 && hard == 256;
        seen += strcmp(n, "fsize") == 0 && soft == 64 << 20;
        seen += strcmp(n, "nproc") == 0 && soft == 50 && hard == 50;
    }
    ok(seen == 3, "ulimits nofile, fsize and nproc (= container.pids)");
    ok(json_string_value(json_object_get(json_object_get(host, "Tmpfs"), "/tmp")) != NULL &&
           strstr(json_string_value(json_object_get(json_object_get(host, "Tmpfs"), "/home/sandbox")), "uid=1000") != NULL,
       "tmpfs /tmp and a home owned by the sandbox user");
    ok(strstr(json_string_value(json_object_get(json_object_get(host, "Tmpfs"), "/tmp")), "nosuid,nodev") != NULL,
       "tmpfs is nosuid,nodev");
    is_str(json_string_value(json_object_get(json_object_get(host, "LogConfig"), "Type")), "none", "no output logged to disk");
    is_str(json_string_value(json_object_get(spec, "User")), "1000:1000", "a non-root user");
    ok(json_is_true(json_object_get(spec, "Tty")) && json_is_true(json_object_get(spec, "OpenStdin")), "a TTY with stdin open");
    is_str(json_string_value(json_object_get(labels, "sandboxd.session")), "abcdefghijklmnopqrstuv", "session label");
    is_str(json_string_value(json_object_get(labels, "sandboxd.host")), conf->host_id, "host label");
    is_str(json_string_value(json_object_get(labels, "sandboxd.created")), "1234", "created label");
    is_str(json_string_value(json_object_get(labels, "sandboxd.kind")), "session", "kind label");
    json_decref(spec);

    ok(sbx_container_host_pids("runc", 50) == 60, "runc: the processes plus room for exec");
    ok(sbx_container_host_pids("runsc", 50) == 6200, "runsc: a backstop above a fork bomb's measured peak (2n^2+20n+200)");
    ok(sbx_container_host_pids("runsc", 5) == 1000, "runsc: never below 1000 host threads");

    sbx_environment_t custom = *env;
    custom.runtime = "runc";
    custom.user = "sandbox";
    custom.workdir = "/work";
    char *envv[] = {"A=1"};
    custom.env = envv;
    custom.nenv = 1;
    spec = sbx_container_spec(conf, &custom, "x", "execute", 1);
    is_str(json_string_value(json_object_get(json_object_get(spec, "HostConfig"), "Runtime")), "runc",
           "an environment's own runtime wins");
    json_t *ul2 = json_object_get(json_object_get(spec, "HostConfig"), "Ulimits");
    bool nproc = false;
    json_array_foreach(ul2, i, u) nproc = nproc || strcmp(json_string_value(json_object_get(u, "Name")), "nproc") == 0;
    ok(!nproc, "no nproc ulimit under runc: the host kernel would share it across containers");
    is_str(json_string_value(json_object_get(spec, "User")), "sandbox", "an environment's user");
    is_str(json_string_value(json_object_get(spec, "WorkingDir")), "/work", "an environment's working dir");
    ok(json_array_size(json_object_get(spec, "Env")) == 4 &&
           strcmp(json_string_value(json_array_get(json_object_get(spec, "Env"), 3)), "A=1") == 0,
       "an environment's variables follow TERM, HOME and HISTCONTROL");
    json_decref(spec);
    sbx_conf_free(conf);
    return done_testing();
}
