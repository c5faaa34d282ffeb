/*
 * cmd_daemon.c - mailctl status|reload|stop: requests to the running master
 * over run_directory/master.sock.
 */
#include <stdio.h>
#include <string.h>

#include "mailcore/conf.h"
#include "mailcore/ipc.h"
#include "mailctl.h"

#define CTL_TIMEOUT_MS 15000

static int ask_master(struct ctl *ctl, const char *req, char *reply, size_t len)
{
    char path[4096], err[1024];

    ctl_load_conf(ctl);
    snprintf(path, sizeof path, "%s/master.sock", conf_str(ctl->conf, "run_directory"));
    if (ipc_request(path, req, reply, len, CTL_TIMEOUT_MS, err, sizeof err) < 0)
        return ctl_fail("master is not running (%s)", err);
    return 0;
}

int cmd_status(struct ctl *ctl, int argc, char **argv)
{
    char reply[16384], *line, *save = NULL;

    (void)argv;
    if (argc != 0)
        return ctl_usage("status", "no arguments expected");
    if (ask_master(ctl, "status", reply, sizeof reply) != 0)
        return EXIT_FAIL;
    for (line = strtok_r(reply, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char name[64], state[32], uptime[32];
        long pid;
        int n = sscanf(line, "%63s %ld %31s %31s", name, &pid, state, uptime);
        if (n == 2)
            printf("%-8s pid %-8ld running\n", name, pid);
        else if (n == 4)
            printf("%-8s pid %-8ld %-8s up %s\n", name, pid, state, uptime);
    }
    return EXIT_OK;
}

static int simple(struct ctl *ctl, const char *req, const char *done)
{
    char reply[4096];

    if (ask_master(ctl, req, reply, sizeof reply) != 0)
        return EXIT_FAIL;
    if (strncmp(reply, "ok", 2) != 0) {
        reply[strcspn(reply, "\n")] = '\0';
        return ctl_fail("%s", strncmp(reply, "error: ", 7) == 0 ? reply + 7 : reply);
    }
    printf("%s\n", done);
    return EXIT_OK;
}

int cmd_reload(struct ctl *ctl, int argc, char **argv)
{
    (void)argv;
    if (argc != 0)
        return ctl_usage("reload", "no arguments expected");
    return simple(ctl, "reload", "master reloaded the configuration");
}

int cmd_stop(struct ctl *ctl, int argc, char **argv)
{
    (void)argv;
    if (argc != 0)
        return ctl_usage("stop", "no arguments expected");
    return simple(ctl, "stop", "master is stopping");
}
