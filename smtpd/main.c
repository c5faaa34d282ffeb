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
#include "mailcore/smtp_server.h"

static const struct smtp_policy smtpd_policy = {
    .proto = "ESMTP",
    .local_recipients_only = 1,
};

int main(int argc, char **argv)
{
    return smtp_server_main("smtpd", &smtpd_policy, argc, argv);
}
