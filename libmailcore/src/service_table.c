/*
 * service_table.c - the daemons of mailcore, their listeners, and which of
 * them a configuration enables.  master runs them; mailctl check checks
 * their binaries.
 *
 * A network service is enabled when one of its ports is not 0.  relayq has
 * no port: it runs when submission is enabled, since only submitd queues
 * mail for the relay.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "mailcore/conf.h"
#include "mailcore/service.h"

const struct service_def service_defs[] = {
    {"smtpd", {"smtpd_port", NULL}, {"smtp", NULL}, 1},
    {"submitd", {"submission_port", "submission_ssl_port"}, {"submission", "submissions"}, 1},
    {"imapd", {"imap_port", "imaps_port"}, {"imap", "imaps"}, 1},
    {"relayq", {NULL, NULL}, {NULL, NULL}, 0},
};

const size_t service_ndefs = sizeof service_defs / sizeof service_defs[0];

int service_enabled(const struct conf *c, size_t i)
{
    const struct service_def *d = &service_defs[i];

    if (strcmp(d->name, "relayq") == 0)
        return conf_port(c, "submission_port") != 0 || conf_port(c, "submission_ssl_port") != 0;
    for (size_t p = 0; p < 2; p++)
        if (d->port_keys[p] && conf_port(c, d->port_keys[p]) != 0)
            return 1;
    return 0;
}

int service_check_binaries(const struct conf *c, char *err, size_t errlen)
{
    const char *dir = conf_str(c, "daemon_directory");
    char path[4096];

    for (size_t i = 0; i < service_ndefs; i++) {
        const struct service_def *d = &service_defs[i];
        if (!service_enabled(c, i))
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, d->name);
        if (access(path, X_OK) == 0)
            continue;
        snprintf(err, errlen, "daemon_directory %s: %s: %s: install it, or disable it with %s",
                 dir, d->name, strerror(errno),
                 d->port_keys[0] == NULL ? "submission_port = 0 and submission_ssl_port = 0"
                 : d->port_keys[1] ? (strcmp(d->name, "imapd") == 0
                                          ? "imap_port = 0 and imaps_port = 0"
                                          : "submission_port = 0 and submission_ssl_port = 0")
                                   : "smtpd_port = 0");
        return -1;
    }
    return 0;
}
