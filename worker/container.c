/* The create body of a sandbox container: every isolation setting in one place. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "container.h"

#define SANDBOX_UID "1000"
#define SANDBOX_HOME "/home/sandbox"

const char *
sbx_container_runtime(const sbx_conf_t *conf, const sbx_environment_t *env)
{
    return env != NULL && env->runtime != NULL ? env->runtime : conf->docker_runtime;
}

bool
sbx_container_is_gvisor(const char *runtime)
{
    return strncmp(runtime, "runsc", 5) == 0;
}

long
sbx_container_host_pids(const char *runtime, unsigned pids)
{
    long n = pids;

    /*
     * Under runc the host cgroup counts the sandbox's processes, plus room for docker exec.
     *
     * Under gVisor (ptrace platform, cgroup v1) it counts the sandbox kernel's host threads:
     * about 50 + 8 per idle process, but each busy process adds a stub with a thread per
     * sentry thread that ran it, and the stubs are never given back; a fork bomb held to
     * `pids` processes by RLIMIT_NPROC peaked at 1.4-1.8 x pids^2 host threads (measured
     * here, see the commit). The host limit is only a backstop above that: hitting it
     * crashes the sandbox (runsc exits 2), it does not hang. The memory limit usually trips
     * first (about 37 KB of it per host thread), which ends the sandbox the same way.
     */
    if (!sbx_container_is_gvisor(runtime))
        return n + 10;
    n = 2 * n * n + 20 * n + 200;
    return n < 1000 ? 1000 : n;
}

static json_t *
ulimit(const char *name, json_int_t value)
{
    return json_pack("{s:s, s:I, s:I}", "Name", name, "Soft", value, "Hard", value);
}

/* The HostConfig every sandbox shares, sessions and runs alike: one place for the isolation. */
static json_t *
host_config(const sbx_conf_t *conf, const char *runtime, bool exec_tmp, bool home)
{
    char tmpfs[128], homefs[160];
    json_t *ulimits = json_array(), *mounts;

    snprintf(tmpfs, sizeof(tmpfs), "rw,%s,nosuid,nodev,size=%llu", exec_tmp ? "exec" : "noexec",
             (unsigned long long)conf->container_tmpfs);
    /* The home directory is owned by the sandbox user: a fresh tmpfs is root's and would be read-only to it. */
    snprintf(homefs, sizeof(homefs), "rw,exec,nosuid,nodev,size=%llu,mode=0755,uid=" SANDBOX_UID ",gid=" SANDBOX_UID,
             (unsigned long long)conf->container_tmpfs);
    mounts = json_pack("{s:s}", "/tmp", tmpfs);
    if (home)
        json_object_set_new(mounts, SANDBOX_HOME, json_string(homefs));

    json_array_append_new(ulimits, ulimit("nofile", conf->container_nofile));
    json_array_append_new(ulimits, ulimit("fsize", (json_int_t)conf->container_fsize));
    /*
     * gVisor counts RLIMIT_NPROC per user inside the sandbox: it is what makes a fork bomb fail with
     * EAGAIN there. runc's kernel counts it per uid across the whole host, so every uid-1000
     * container would share one count: under runc the pids cgroup alone does the job.
     */
    if (sbx_container_is_gvisor(runtime))
        json_array_append_new(ulimits, ulimit("nproc", conf->container_pids));

    return json_pack("{s:s, s:s, s:b, s:[s], s:[s], s:I, s:I, s:I, s:I, s:o, s:o, s:{s:s}, s:{s:s}, s:I, s:b}", "Runtime", runtime,
                     "NetworkMode", "none", "ReadonlyRootfs", 1, "CapDrop", "ALL", "SecurityOpt", "no-new-privileges", "Memory",
                     (json_int_t)conf->container_memory, "MemorySwap", (json_int_t)conf->container_memory, "NanoCpus",
                     (json_int_t)(conf->container_cpus * 1e9), "PidsLimit",
                     (json_int_t)sbx_container_host_pids(runtime, conf->container_pids), "Ulimits", ulimits, "Tmpfs", mounts,
                     "RestartPolicy", "Name", "no",
                     /* Output goes to the client, never to disk: a `yes` flood must not fill the host's logs. */
                     "LogConfig", "Type", "none", "OomScoreAdj", (json_int_t)500, "Init", 0);
}

static json_t *
labels(const sbx_conf_t *conf, const char *id, const char *kind, const char *what, uint64_t created_ms)
{
    char created[24];

    snprintf(created, sizeof(created), "%llu", (unsigned long long)created_ms);
    return json_pack("{s:s, s:s, s:s, s:s, s:s}", "sandboxd.session", id, "sandboxd.host", conf->host_id, "sandboxd.created",
                     created, "sandboxd.environment", what, "sandboxd.kind", kind);
}

json_t *
sbx_container_spec(const sbx_conf_t *conf, const sbx_environment_t *env, const char *id, const char *kind, uint64_t created_ms)
{
    const char *runtime = sbx_container_runtime(conf, env);
    json_t *envv = json_array();

    json_array_append_new(envv, json_string("TERM=xterm-256color"));
    json_array_append_new(envv, json_string("HOME=" SANDBOX_HOME));
    /* Lines the terminal types on the user's behalf start with a space: keep them out of history. */
    json_array_append_new(envv, json_string("HISTCONTROL=ignorespace"));
    for (size_t i = 0; i < env->nenv; i++)
        json_array_append_new(envv, json_string(env->env[i]));

    /* A session's /tmp allows exec: a shell user builds and runs things there. */
    return json_pack("{s:s, s:s, s:s, s:b, s:b, s:b, s:b, s:b, s:b, s:b, s:o, s:o, s:o}", "Image", env->image, "User",
                     env->user != NULL ? env->user : SANDBOX_UID ":" SANDBOX_UID, "WorkingDir",
                     env->workdir != NULL ? env->workdir : SANDBOX_HOME, "Tty", 1, "OpenStdin", 1, "StdinOnce", 0, "AttachStdin", 1,
                     "AttachStdout", 1, "AttachStderr", 1, "NetworkDisabled", 1, "Env", envv, "Labels",
                     labels(conf, id, kind, env->name, created_ms), "HostConfig", host_config(conf, runtime, true, true));
}

json_t *
sbx_container_execute_spec(const sbx_conf_t *conf, const sbx_language_t *lang, const char *code, const char *input, const char *id,
                           uint64_t created_ms)
{
    /*
     * The snippet and its stdin travel in the environment (an argument or variable may be 128 KiB;
     * max_code is at most 100 KiB): the read-only root and a tmpfs that exists only once the
     * container runs leave no other way in. The wrapper writes the file, drops the variables, and
     * pipes stdin in, so the program sees a plain file and a stdin that ends.
     */
    static const char wrapper[] = "printf %s \"$SANDBOX_CODE\" > \"/tmp/$SANDBOX_FILE\" && unset SANDBOX_CODE && "
                                  "printf %s \"$SANDBOX_STDIN\" | { unset SANDBOX_STDIN; exec \"$@\" \"/tmp/$SANDBOX_FILE\"; }";
    const char *image = lang->image ? lang->image : conf->execute_image ? conf->execute_image : conf->docker_image;
    json_t *cmd = json_pack("[s, s, s, s]", "sh", "-c", wrapper, "sandbox-run"), *envv;
    size_t clen = strlen(code) + 16, ilen = strlen(input) + 16;
    char *cv = malloc(clen), *iv = malloc(ilen), file[96];

    for (size_t i = 0; i < lang->ncommand; i++)
        json_array_append_new(cmd, json_string(lang->command[i]));
    snprintf(cv, clen, "SANDBOX_CODE=%s", code);
    snprintf(iv, ilen, "SANDBOX_STDIN=%s", input);
    snprintf(file, sizeof(file), "SANDBOX_FILE=%s", lang->file);
    envv = json_pack("[s, s, s, s, s]", "HOME=/tmp", "LANG=C.UTF-8", file, cv, iv);
    free(cv);
    free(iv);
    return json_pack("{s:s, s:s, s:s, s:o, s:b, s:b, s:b, s:b, s:b, s:o, s:o, s:o}", "Image", image, "User",
                     SANDBOX_UID ":" SANDBOX_UID, "WorkingDir", "/tmp", "Cmd", cmd, "Tty", 0, "OpenStdin", 0, "AttachStdout", 1,
                     "AttachStderr", 1, "NetworkDisabled", 1, "Env", envv, "Labels",
                     labels(conf, id, "execute", lang->name, created_ms), "HostConfig",
                     host_config(conf, sbx_container_runtime(conf, NULL), lang->exec_tmp, false));
}
