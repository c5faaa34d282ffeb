/*
 * smtp_reply.c - the one table of SMTP server replies.  See smtp_reply.h.
 */
#include <stddef.h>

#include "mailcore/smtp_reply.h"

static const struct smtp_reply replies[SMTP_R_COUNT] = {
    [SMTP_R_NONE] = {0, "", ""},
    [SMTP_R_GREETING] = {220, "", "%s ESMTP mailcore"},
    [SMTP_R_HELO] = {250, "", "%s"},
    [SMTP_R_OK] = {250, "2.0.0", "Ok"},
    [SMTP_R_SENDER_OK] = {250, "2.1.0", "Ok"},
    [SMTP_R_RCPT_OK] = {250, "2.1.5", "Ok"},
    [SMTP_R_QUEUED] = {250, "2.0.0", "Ok: queued as %s"},
    [SMTP_R_CHUNK_OK] = {250, "2.0.0", "Ok: %llu octets received"},
    [SMTP_R_DATA_GO] = {354, "", "End data with <CR><LF>.<CR><LF>"},
    [SMTP_R_BYE] = {221, "2.0.0", "Bye"},
    [SMTP_R_STARTTLS_GO] = {220, "2.0.0", "Ready to start TLS"},
    [SMTP_R_HELP] = {214, "2.0.0", "See RFC 5321; commands: EHLO MAIL RCPT DATA BDAT RSET NOOP QUIT"},
    [SMTP_R_VRFY_DISABLED] = {252, "2.5.0",
                              "VRFY is disabled; send some mail and we will try to deliver it"},
    [SMTP_R_TOO_MANY_CONN] = {421, "4.7.0", "%s Error: too many connections"},
    [SMTP_R_TOO_MANY_CONN_IP] = {421, "4.7.0", "%s Error: too many connections from %s"},
    [SMTP_R_TOO_MANY_ERRORS] = {421, "4.7.0", "%s Error: too many errors"},
    [SMTP_R_TIMEOUT] = {421, "4.4.2", "%s Error: timeout exceeded"},
    [SMTP_R_SHUTDOWN] = {421, "4.3.2", "%s Service shutting down, closing transmission channel"},
    [SMTP_R_TEMP_LOOKUP] = {451, "4.3.0", "<%s>: Temporary lookup failure"},
    [SMTP_R_WRITE_ERROR] = {451, "4.3.0", "Error: queue file write error"},
    [SMTP_R_TOO_MANY_RCPTS] = {452, "4.5.3", "Error: too many recipients"},
    [SMTP_R_LINE_TOO_LONG] = {500, "5.5.2", "Error: line too long"},
    [SMTP_R_BAD_SYNTAX] = {500, "5.5.2", "Error: bad syntax"},
    [SMTP_R_SYNTAX_ARG] = {501, "5.5.4", "Syntax: %s"},
    [SMTP_R_BAD_SENDER_SYNTAX] = {501, "5.1.7", "Bad sender address syntax"},
    [SMTP_R_BAD_RCPT_SYNTAX] = {501, "5.1.3", "Bad recipient address syntax"},
    [SMTP_R_PATH_TOO_LONG] = {501, "5.5.4", "Error: address too long"},
    [SMTP_R_HELO_SYNTAX] = {501, "5.5.4", "Syntax: %s hostname"},
    [SMTP_R_UNKNOWN_COMMAND] = {502, "5.5.2", "Error: command not recognized"},
    [SMTP_R_NOT_IMPLEMENTED] = {502, "5.5.1", "Error: command not implemented"},
    [SMTP_R_NEED_HELO] = {503, "5.5.1", "Error: send HELO/EHLO first"},
    [SMTP_R_NESTED_MAIL] = {503, "5.5.1", "Error: nested MAIL command"},
    [SMTP_R_NEED_MAIL] = {503, "5.5.1", "Error: need MAIL command"},
    [SMTP_R_NEED_RCPT] = {503, "5.5.1", "Error: need RCPT command"},
    [SMTP_R_DATA_AFTER_BDAT] = {503, "5.5.1", "Error: DATA after BDAT"},
    [SMTP_R_TLS_ACTIVE] = {554, "5.5.1", "Error: TLS already active"},
    [SMTP_R_AUTH_NOT_ENABLED] = {503, "5.5.1", "Error: authentication not enabled"},
    [SMTP_R_USER_UNKNOWN] = {550, "5.1.1",
                             "<%s>: Recipient address rejected: User unknown in local recipient table"},
    [SMTP_R_RELAY_DENIED] = {550, "5.7.1", "<%s>: Relay access denied"},
    [SMTP_R_SIZE_EXCEEDED] = {552, "5.3.4", "Message size exceeds fixed limit"},
    [SMTP_R_BAD_PARAM] = {555, "5.5.4", "Unsupported option: %s"},
    [SMTP_R_BARE_NEWLINE] = {550, "5.6.11",
                             "Message refused: bare <CR> or <LF> in message; lines must end "
                             "with <CR><LF> (RFC 5321 2.3.8)"},
    [SMTP_R_NUL_IN_DATA] = {550, "5.6.0", "Message refused: NUL byte in message"},
    [SMTP_R_SMTPUTF8_REQUIRED] = {553, "5.6.7", "<%s>: SMTPUTF8 is required for this address"},
    [SMTP_R_AUTH_CHALLENGE] = {334, "", "%s"},
    [SMTP_R_AUTH_OK] = {235, "2.7.0", "Authentication successful"},
    [SMTP_R_AUTH_REQUIRED] = {530, "5.7.0", "Authentication required"},
    [SMTP_R_AUTH_FAILED] = {535, "5.7.8", "Error: authentication failed"},
    [SMTP_R_AUTH_NEEDS_TLS] = {538, "5.7.11",
                               "Encryption required for requested authentication mechanism"},
    [SMTP_R_AUTH_MECH] = {504, "5.5.4", "Unrecognized authentication type"},
    [SMTP_R_AUTH_ALREADY] = {503, "5.5.1", "Error: already authenticated"},
    [SMTP_R_AUTH_ABORTED] = {501, "5.7.0", "Authentication aborted"},
    [SMTP_R_AUTH_SYNTAX] = {501, "5.5.2", "Cannot decode response"},
    [SMTP_R_SENDER_NOT_OWNED] = {553, "5.7.1",
                                 "<%s>: Sender address rejected: not owned by user %s"},
    [SMTP_R_FROM_NOT_OWNED] = {553, "5.7.1",
                               "From: <%s> is not an address of user %s; message refused"},
    [SMTP_R_FROM_NO_ADDRESS] = {553, "5.6.0", "Message refused: its From: header has no address"},
    [SMTP_R_MAY_NOT_SEND] = {550, "5.7.1",
                             "User %s may not send mail: not a member of group %s (relay_acl)"},
    [SMTP_R_ATTACHMENT_REFUSED] = {550, "5.7.1",
                                   "Message refused: attachments of type %s are not allowed"},
    /* Storage quota (quota.h): temporary, as Postfix and Dovecot's LMTP
     * answer, so the sender retries once the user has made room. */
    [SMTP_R_MAILBOX_FULL] = {452, "4.2.2", "<%s>: Recipient address rejected: Mailbox full"},
    [SMTP_R_MAILBOX_FULL_DATA] = {452, "4.2.2",
                                  "Mailbox full: the message does not fit in the quota of "
                                  "any recipient"},
};

const struct smtp_reply *smtp_reply_get(enum smtp_reply_id id)
{
    if ((int)id <= 0 || id >= SMTP_R_COUNT)
        id = SMTP_R_NONE;
    return &replies[id];
}
