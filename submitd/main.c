/*
 * submitd - authenticated submission from mail clients.
 *
 * SYNOPSIS
 *	submitd -c FILE     (started by master with its listening sockets)
 *
 * DESCRIPTION
 *	Ports: submission_port (plain, STARTTLS) and submission_ssl_port
 *	(implicit TLS).  The protocol is libmailcore's smtp_server with the
 *	submission policy (smtp_submit.c): AUTH PLAIN or LOGIN before MAIL
 *	(only over TLS unless from loopback or submission_allow_plaintext_auth),
 *	the sender's own addresses only, relay_acl, allowed_attachment_types,
 *	Message-ID and Date added when missing, a copy in the sender's Sent
 *	folder, local recipients delivered at once and the others queued for
 *	relayq -- all durable before the 250.
 */
#include "mailcore/log.h"
#include "mailcore/service.h"
#include "mailcore/smtp_server.h"

static const struct smtp_policy submitd_policy = {
    .proto = "ESMTP",
    .local_recipients_only = 0,
    .submission = 1,
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

    service_init(&svc, "submitd", argc, argv, SERVICE_DB);
    srv = smtp_server_new(&svc, &submitd_policy);
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
