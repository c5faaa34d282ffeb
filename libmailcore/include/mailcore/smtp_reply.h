/*
 * smtp_reply - every reply the SMTP server sends, in one table: code,
 * enhanced status code (RFC 3463) and text.  Texts follow Postfix where log
 * tools (fail2ban's postfix filter, pflogsumm) match on them.
 *
 * A text may hold printf conversions; the caller passes the arguments.
 */
#ifndef MAILCORE_SMTP_REPLY_H
#define MAILCORE_SMTP_REPLY_H

enum smtp_reply_id {
    SMTP_R_NONE = 0,
    SMTP_R_GREETING,            /* 220 host ESMTP mailcore */
    SMTP_R_HELO,                /* 250 host */
    SMTP_R_OK,                  /* 250 2.0.0 Ok */
    SMTP_R_SENDER_OK,           /* 250 2.1.0 Ok */
    SMTP_R_RCPT_OK,             /* 250 2.1.5 Ok */
    SMTP_R_QUEUED,              /* 250 2.0.0 Ok: queued as %s */
    SMTP_R_CHUNK_OK,            /* 250 2.0.0 Ok: %llu octets received */
    SMTP_R_DATA_GO,             /* 354 End data with <CR><LF>.<CR><LF> */
    SMTP_R_BYE,                 /* 221 2.0.0 Bye */
    SMTP_R_STARTTLS_GO,         /* 220 2.0.0 Ready to start TLS */
    SMTP_R_HELP,                /* 214 2.0.0 ... */
    SMTP_R_VRFY_DISABLED,       /* 252 2.5.0 */
    SMTP_R_TOO_MANY_CONN,       /* 421 4.7.0 */
    SMTP_R_TOO_MANY_CONN_IP,    /* 421 4.7.0 */
    SMTP_R_TOO_MANY_ERRORS,     /* 421 4.7.0 */
    SMTP_R_TIMEOUT,             /* 421 4.4.2 */
    SMTP_R_SHUTDOWN,            /* 421 4.3.2 */
    SMTP_R_TEMP_LOOKUP,         /* 451 4.3.0 lookup failure */
    SMTP_R_WRITE_ERROR,         /* 451 4.3.0 queue file write error */
    SMTP_R_TOO_MANY_RCPTS,      /* 452 4.5.3 */
    SMTP_R_LINE_TOO_LONG,       /* 500 5.5.2 */
    SMTP_R_BAD_SYNTAX,          /* 500 5.5.2 */
    SMTP_R_SYNTAX_ARG,          /* 501 5.5.4 Syntax: %s */
    SMTP_R_BAD_SENDER_SYNTAX,   /* 501 5.1.7 */
    SMTP_R_BAD_RCPT_SYNTAX,     /* 501 5.1.3 */
    SMTP_R_PATH_TOO_LONG,       /* 501 5.5.4 */
    SMTP_R_HELO_SYNTAX,         /* 501 5.5.4 */
    SMTP_R_UNKNOWN_COMMAND,     /* 502 5.5.2 */
    SMTP_R_NOT_IMPLEMENTED,     /* 502 5.5.1 */
    SMTP_R_NEED_HELO,           /* 503 5.5.1 */
    SMTP_R_NESTED_MAIL,         /* 503 5.5.1 */
    SMTP_R_NEED_MAIL,           /* 503 5.5.1 */
    SMTP_R_NEED_RCPT,           /* 503 5.5.1 */
    SMTP_R_DATA_AFTER_BDAT,     /* 503 5.5.1 */
    SMTP_R_TLS_ACTIVE,          /* 554 5.5.1 */
    SMTP_R_AUTH_NOT_ENABLED,    /* 503 5.5.1 */
    SMTP_R_USER_UNKNOWN,        /* 550 5.1.1 <%s>: ... User unknown in local recipient table */
    SMTP_R_RELAY_DENIED,        /* 550 5.7.1 <%s>: Relay access denied */
    SMTP_R_SIZE_EXCEEDED,       /* 552 5.3.4 */
    SMTP_R_BAD_PARAM,           /* 555 5.5.4 */
    SMTP_R_BARE_NEWLINE,        /* 550 5.6.11 */
    SMTP_R_NUL_IN_DATA,         /* 550 5.6.0 */
    SMTP_R_SMTPUTF8_REQUIRED,   /* 553 5.6.7 */
    SMTP_R_AUTH_CHALLENGE,      /* 334 %s */
    SMTP_R_AUTH_OK,             /* 235 2.7.0 */
    SMTP_R_AUTH_REQUIRED,       /* 530 5.7.0 */
    SMTP_R_AUTH_FAILED,         /* 535 5.7.8 */
    SMTP_R_AUTH_NEEDS_TLS,      /* 538 5.7.11 */
    SMTP_R_AUTH_MECH,           /* 504 5.5.4 */
    SMTP_R_AUTH_ALREADY,        /* 503 5.5.1 */
    SMTP_R_AUTH_ABORTED,        /* 501 5.7.0 */
    SMTP_R_AUTH_SYNTAX,         /* 501 5.5.2 */
    SMTP_R_SENDER_NOT_OWNED,    /* 553 5.7.1 <%s> ... %s */
    SMTP_R_FROM_NOT_OWNED,      /* 553 5.7.1 From: <%s> ... %s */
    SMTP_R_FROM_NO_ADDRESS,     /* 553 5.6.0 */
    SMTP_R_MAY_NOT_SEND,        /* 550 5.7.1 %s ... %s */
    SMTP_R_ATTACHMENT_REFUSED,  /* 550 5.7.1 %s */
    SMTP_R_MAILBOX_FULL,        /* 452 4.2.2 <%s>: ... Mailbox full (RCPT; quota.h) */
    SMTP_R_MAILBOX_FULL_DATA,   /* 452 4.2.2 Mailbox full (end of data: every recipient) */
    SMTP_R_COUNT
};

struct smtp_reply {
    int code;
    const char *status;         /* enhanced status, "" for greeting-style replies */
    const char *text;           /* printf format */
};

const struct smtp_reply *smtp_reply_get(enum smtp_reply_id id);

#endif
