/*
 * smtp_server - the ESMTP server engine that smtpd and submitd share.
 *
 * One struct smtp_server per daemon process serves many sessions on the
 * process's event loop.  A session is a state machine (see the states in
 * smtp_server.c): one handler per command, one place that formats replies
 * (smtp_reply.h holds every text), DATA and BDAT streamed into the store's
 * temp file as they arrive (never buffered whole), and the end of every
 * message handed to a group commit: all messages finished in the same loop
 * turn are made durable together by store_commit(), and only then does each
 * session answer 250.
 *
 * Extensions: PIPELINING, SIZE, 8BITMIME, ENHANCEDSTATUSCODES, STARTTLS,
 * SMTPUTF8, CHUNKING.  What differs between services is the policy: smtpd
 * accepts local recipients only and delivers into their INBOX.
 *
 * Limits (config keys): message_size_limit, smtpd_recipient_limit,
 * smtpd_hard_error_limit, smtpd_timeout, smtpd_session_timeout,
 * smtpd_client_connection_limit, smtpd_connection_limit; command lines are
 * bounded by RFC 5321 (smtp_parse.h).
 */
#ifndef MAILCORE_SMTP_SERVER_H
#define MAILCORE_SMTP_SERVER_H

#include <stddef.h>

struct service;
struct smtp_server;

struct smtp_policy {
    const char *proto;          /* for Received: and logs, e.g. "ESMTP" */
    int local_recipients_only;  /* anything else is a relay attempt: 550 5.7.1 */
    /*
     * Submission (submitd, smtp_submit.c): AUTH PLAIN/LOGIN required before
     * MAIL; the envelope sender and From: must be the user's own addresses;
     * relay_acl and allowed_attachment_types apply; Message-ID and Date are
     * added when missing; a copy goes to the sender's Sent folder, local
     * recipients get it in their INBOX and the others are queued for relayq.
     */
    int submission;
};

/* A whole SMTP daemon (smtpd, submitd): the service skeleton with this
 * policy, run until stopped.  Returns main()'s exit status. */
int smtp_server_main(const char *name, const struct smtp_policy *policy, int argc, char **argv);

struct smtp_server *smtp_server_new(struct service *svc, const struct smtp_policy *policy);
void smtp_server_free(struct smtp_server *srv);

/* A new connection from master's listener (service_accept_cb shape). */
void smtp_server_accept(struct smtp_server *srv, int fd, const char *addr, int implicit_tls);

/* Graceful stop: idle sessions get 421 and close; busy ones finish their
 * current command, then close. */
void smtp_server_stop(struct smtp_server *srv);

#endif
