/* sandboxd entry point: command line, config test, signalling a running master. */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "master.h"

extern char **environ;

static void
usage(FILE *fp)
{
    fprintf(fp,
            "usage: sandboxd [-c FILE] [-t] [-s reload|quit|stop|reopen] [-v]\n"
            "  -c FILE  configuration file (default %s/sandboxd.yaml)\n"
            "  -t       test the configuration and exit (0 valid, 1 invalid)\n"
            "  -s SIG   signal the running master (through its pid file) and exit\n"
            "  -v       print the version and exit\n",
            SBX_SYSCONFDIR);
}

static int
send_signal(const sbx_conf_t *conf, const char *name)
{
    static const struct {
        const char *name;
        int signo;
    } sigs[] = {{"reload", SIGHUP}, {"quit", SIGQUIT}, {"stop", SIGTERM}, {"reopen", SIGUSR1}};
    FILE *fp;
    long pid = 0;
    int signo = 0;

    for (size_t i = 0; i < sbx_nelems(sigs); i++)
        if (strcmp(name, sigs[i].name) == 0)
            signo = sigs[i].signo;
    if (signo == 0) {
        fprintf(stderr, "sandboxd: unknown signal \"%s\" (reload, quit, stop, reopen)\n", name);
        return 1;
    }
    if ((fp = fopen(conf->pid_file, "r")) == NULL) {
        fprintf(stderr, "sandboxd: cannot read %s: %s (is sandboxd running?)\n", conf->pid_file, strerror(errno));
        return 1;
    }
    if (fscanf(fp, "%ld", &pid) != 1 || pid <= 1) {
        fclose(fp);
        fprintf(stderr, "sandboxd: %s holds no valid pid\n", conf->pid_file);
        return 1;
    }
    fclose(fp);
    if (kill((pid_t)pid, signo) == -1) {
        fprintf(stderr, "sandboxd: cannot signal %ld: %s\n", pid, strerror(errno));
        return 1;
    }
    return 0;
}

int
main(int argc, char **argv)
{
    const char *file = SBX_SYSCONFDIR "/sandboxd.yaml", *sig = NULL;
    bool test = false;
    char err[16384];
    sbx_conf_t *conf;
    int opt;

    while ((opt = getopt(argc, argv, "c:ts:vh")) != -1) {
        switch (opt) {
        case 'c':
            file = optarg;
            break;
        case 't':
            test = true;
            break;
        case 's':
            sig = optarg;
            break;
        case 'v':
            printf("sandboxd %s\n", SBX_VERSION);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 1;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 1;
    }
    if ((conf = sbx_conf_load(file, environ, err, sizeof(err))) == NULL) {
        fputs(err, stderr);
        if (test)
            fprintf(stderr, "sandboxd: configuration file %s test failed\n", file);
        return 1;
    }
    if (test) {
        fprintf(stderr, "sandboxd: configuration file %s test is successful\n", file);
        sbx_conf_free(conf);
        return 0;
    }
    if (sig != NULL) {
        int rc = send_signal(conf, sig);
        sbx_conf_free(conf);
        return rc;
    }
    return sbx_master_run(file, conf);
}
