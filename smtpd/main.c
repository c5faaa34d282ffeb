/*
 * smtpd - inbound SMTP: mail from the upstream relay (or anyone) for local
 * users, filed into their INBOX.
 *
 * SYNOPSIS
 *	smtpd -c FILE       (started by master with its listening socket)
 *
 * DESCRIPTION
 *	smtpd accepts mail for local recipients only: the exact address, an
 *	alias, then plus-addressing (user+tag@domain); unknown local users get
 *	550 5.1.1 at RCPT, and any other domain 550 5.7.1: it never relays.
 *	Each message is written once, for all its recipients, and answered 250
 *	only after it is durable in every recipient's INBOX (group commit).
 *	The protocol is libmailcore's smtp_server; this file is its policy.
 *
 *	Configuration: smtpd_port, message_size_limit, smtpd_recipient_limit,
 *	smtpd_hard_error_limit, smtpd_timeout, smtpd_session_timeout,
 *	smtpd_client_connection_limit, smtpd_connection_limit, myhostname,
 *	email_domain, tls_cert_file and tls_key_file (STARTTLS).
 */
#include <unistd.h>

#include "mailcore/log.h"
#include "mailcore/service.h"
#include "mailcore/smtp_server.h"

static const struct smtp_policy smtpd_policy = {
    .proto = "ESMTP",
    .local_recipients_only = 1,
};

static void on_accept(struct service *svc, const struct service_listener *l, int fd,
                      const char *addr, void *arg)
{
    (void)svc;
    smtp_server_accept(arg, fd, addr, l->implicit_tls);
}

static void on_stop(struct service *svc, void *arg)
{
    (void)svc;
    smtp_server_stop(arg);
}

int main(int argc, char **argv)
{
    struct service svc;
    struct smtp_server *srv;
    int status;

    service_init(&svc, "smtpd", argc, argv, SERVICE_DB);
    srv = smtp_server_new(&svc, &smtpd_policy);
    if (srv == NULL)
        log_fatal("out of memory");
    svc.on_accept = on_accept;
    svc.on_stop = on_stop;
    svc.arg = srv;
    status = service_run(&svc);
    smtp_server_free(srv);
    service_free(&svc);
    return status;
}
