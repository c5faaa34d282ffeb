/*
 * cmd_relay.c - mailctl relay test [ADDRESS]: talk to the relay with
 * exactly the settings relayq uses (smtp_client_probe) and show what
 * happened: the transcript (credentials hidden by the client), the TLS
 * outcome, the certificate chain and its verification, whether AUTH
 * worked; with ADDRESS, a short test message from postmaster@email_domain.
 * Ends with "diagnosis: ..." naming the setting to change.  Exit 0 only
 * when everything worked.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "mailcore/conf.h"
#include "mailcore/log.h"
#include "mailcore/smtp_client.h"
#include "mailctl.h"

static void trace(void *arg, const char *dir, const char *line)
{
    (void)arg;
    printf("  %s %s\n", dir, line);
}

static void chain_line(void *arg, const char *line)
{
    (*(int *)arg)++;
    printf("  %s\n", line);
}

/* What to change for err, as one sentence. */
static void advice(const struct smtp_client_error *err, const char *verify, char *buf, size_t len)
{
    const char *s = err->setting;

    if (s == NULL)
        snprintf(buf, len, "check the relay (mailserver_host) and its logs");
    else if (strcmp(s, "relay_ca_file") == 0)
        snprintf(buf, len,
                 "%s: set relay_ca_file to the CA that issued it, or "
                 "disable_starttls = yes on a trusted network",
                 strstr(verify, "issuer") || strstr(verify, "self-signed") ||
                         strstr(verify, "self signed")
                     ? "the relay's certificate is signed by an unknown CA"
                     : "the relay's certificate could not be verified");
    else if (strcmp(s, "mailserver_host") == 0)
        snprintf(buf, len,
                 "set mailserver_host to the relay's name (as in its certificate) "
                 "and check that it is reachable");
    else if (strcmp(s, "mailserver_port") == 0)
        snprintf(buf, len,
                 "check mailserver_port (25 or 587 for STARTTLS, 465 with "
                 "force_ssl = yes)");
    else if (strcmp(s, "force_ssl") == 0)
        snprintf(buf, len,
                 "the relay may expect implicit TLS: try force_ssl = yes (port 465), "
                 "or the STARTTLS port with force_ssl = no");
    else if (strcmp(s, "disable_starttls") == 0)
        snprintf(buf, len,
                 "the relay wants AUTH without offering STARTTLS: use its TLS port, "
                 "or disable_starttls = yes only on a trusted network");
    else
        snprintf(buf, len, "change %s", s);
}

/* The password as relayq reads it (mailctl runs as root). */
static int read_password(struct ctl *ctl, char *buf, size_t len)
{
    const char *path = conf_str(ctl->conf, "mailserver_password_file");
    ssize_t n;
    int fd;

    snprintf(buf, len, "%s", conf_str(ctl->conf, "mailserver_password"));
    if (path[0] == '\0')
        return 0;
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return ctl_fail("mailserver_password_file %s: %s", path, strerror(errno));
    n = read(fd, buf, len - 1);
    close(fd);
    if (n < 0)
        return ctl_fail("mailserver_password_file %s: %s", path, strerror(errno));
    buf[n] = '\0';
    buf[strcspn(buf, "\r\n")] = '\0';
    return 0;
}

/* A short test message in a memfd; fd or -1. */
static int test_message(const char *from, const char *to, const char *host, size_t *size)
{
    char buf[2048], date[64], id[LOG_QUEUE_ID_LEN + 1];
    time_t now = time(NULL);
    struct tm tm;
    int fd, n;

    localtime_r(&now, &tm);
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S %z", &tm);
    log_queue_id(id);
    n = snprintf(buf, sizeof buf,
                 "From: <%s>\r\nTo: <%s>\r\nSubject: mailcore relay test %s\r\nDate: %s\r\n"
                 "Message-ID: <%s.relaytest@%s>\r\nMIME-Version: 1.0\r\n"
                 "Content-Type: text/plain; charset=us-ascii\r\n\r\n"
                 "This is a test message sent by `mailctl relay test` on %s.\r\n",
                 from, to, id, date, id, host, host);
    fd = memfd_create("relaytest", MFD_CLOEXEC);
    if (fd < 0 || write(fd, buf, (size_t)n) != n) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    *size = (size_t)n;
    return fd;
}

int cmd_relay_test(struct ctl *ctl, int argc, char **argv)
{
    struct smtp_client_cfg cfg = {0};
    struct smtp_client_error err, rerr[1];
    struct smtp_client *c;
    char password[SMTP_CLIENT_CRED_MAX + 1], from[600], fix[512];
    const char *address = NULL, *verify;
    int ok = 1, certs = 0;

    if (argc > 1)
        return ctl_usage("relay test", "expected at most one ADDRESS");
    if (argc == 1)
        address = argv[0];
    ctl_load_conf(ctl);
    cfg.host = conf_str(ctl->conf, "mailserver_host");
    if (cfg.host[0] == '\0') {
        printf("diagnosis: no relay configured: set mailserver_host\n");
        return EXIT_FAIL;
    }
    if (read_password(ctl, password, sizeof password) != 0)
        return EXIT_FAIL;
    cfg.port = conf_port(ctl->conf, "mailserver_port");
    cfg.implicit_tls = conf_bool(ctl->conf, "force_ssl");
    cfg.disable_starttls = conf_bool(ctl->conf, "disable_starttls");
    cfg.ca_file = conf_str(ctl->conf, "relay_ca_file");
    cfg.user = conf_str(ctl->conf, "mailserver_user");
    cfg.password = password;
    cfg.helo = conf_str(ctl->conf, "myhostname");
    cfg.timeout_ms = 20000;
    cfg.data_timeout_ms = 60000;
    cfg.trace = trace;
    printf("relay: %s:%d (%s, relay_ca_file: %s, AUTH: %s)\n", cfg.host, cfg.port,
           cfg.implicit_tls       ? "implicit TLS (force_ssl = yes)"
           : cfg.disable_starttls ? "no TLS (disable_starttls = yes)"
                                  : "STARTTLS when offered, verified",
           cfg.ca_file[0] ? cfg.ca_file : "(system store)",
           cfg.user[0] ? cfg.user : "(none: mailserver_user is empty)");
    printf("transcript:\n");
    fflush(stdout);
    c = smtp_client_probe(&cfg, &err);
    explicit_bzero(password, sizeof password);
    if (c == NULL)
        return ctl_fail("out of memory");
    printf("peer: %s\n", smtp_client_peer(c)[0] ? smtp_client_peer(c) : "(none)");
    printf("tls: %s\n", smtp_client_tls(c) ? smtp_client_tls_summary(c) : "none");
    printf("certificate chain:\n");
    smtp_client_chain(c, chain_line, &certs);
    if (certs == 0)
        printf("  (none)\n");
    verify = smtp_client_verify_result(c);
    printf("verify: %s\n", verify[0] ? verify : "(no TLS handshake)");
    if (cfg.user[0] == '\0')
        printf("auth: not configured (mailserver_user is empty)\n");
    else if (smtp_client_auth_mech(c))
        printf("auth: ok (%s as %s)\n", smtp_client_auth_mech(c), cfg.user);
    else
        printf("auth: %s\n", err.step == SMTP_CLIENT_STEP_AUTH ? "failed" : "not attempted");
    if (err.status != SMTP_CLIENT_OK) {
        advice(&err, verify, fix, sizeof fix);
        printf("result: %s\n", err.text);
        printf("diagnosis: %s: %s\n", err.text, fix);
        smtp_client_close(c);
        return EXIT_FAIL;
    }
    if (address != NULL) {
        size_t size = 0;
        int fd;
        const char *rcpts[1] = {address};

        snprintf(from, sizeof from, "postmaster@%s", conf_str(ctl->conf, "email_domain"));
        fd = test_message(from, address, cfg.helo[0] ? cfg.helo : "localhost", &size);
        if (fd < 0) {
            smtp_client_close(c);
            return ctl_fail("cannot make the test message: %s", strerror(errno));
        }
        if (smtp_client_send(c, from, rcpts, 1, fd, size, rerr, &err) < 0) {
            ok = 0;
            advice(&err, verify, fix, sizeof fix);
            printf("test message: not accepted: %s\n", rerr[0].text);
            printf("diagnosis: the relay refused the test message to %s: %s%s%s\n", address,
                   rerr[0].text, err.setting ? "; " : "", err.setting ? fix : "");
        } else {
            printf("test message: accepted for %s (%s)\n", address, rerr[0].reply);
        }
        close(fd);
    }
    smtp_client_close(c);
    if (ok)
        printf("diagnosis: ok: the relay accepts mail with these settings%s\n",
               address ? " (test message sent)" : "");
    return ok ? EXIT_OK : EXIT_FAIL;
}
