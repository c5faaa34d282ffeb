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
#include "mailcore/smtp_server.h"

static const struct smtp_policy submitd_policy = {
    .proto = "ESMTP",
    .local_recipients_only = 0,
    .submission = 1,
};

int main(int argc, char **argv)
{
    return smtp_server_main("submitd", &submitd_policy, argc, argv);
}
