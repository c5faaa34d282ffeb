/*
 * smtp_internal.h - what the SMTP server's files share: the server and
 * session structs.  smtp_session.c runs the protocol, smtp_deliver.c the
 * message headers and the group commit, smtp_rcpt.c recipient policy.
 * Not a public header.
 */
#ifndef MAILCORE_SMTP_INTERNAL_H
#define MAILCORE_SMTP_INTERNAL_H

#include <stdint.h>

#include "mailcore/anvil.h"
#include "mailcore/db.h"
#include "mailcore/log.h"
#include "mailcore/smtp_parse.h"
#include "mailcore/smtp_reply.h"
#include "mailcore/smtp_server.h"

struct conn;
struct ev_timer;
struct store_msg;

/* Session states: what the next input bytes are. */
enum smtp_state {
    S_TLS_HANDSHAKE,    /* implicit TLS or STARTTLS: no input until done */
    S_COMMAND,          /* command lines */
    S_DATA,             /* message content up to <CRLF>.<CRLF> */
    S_BDAT,             /* bdat_left more bytes of a chunk */
    S_COMMIT,           /* waiting for the group commit; input paused */
    S_AUTH,             /* AUTH continuation lines */
    S_AUTH_WAIT,        /* a failed AUTH's delay; input paused */
    S_CLOSING,          /* reply sent, connection ending */
};

struct smtp_rcpt {
    char addr[SMTP_PATH_MAX + 1];   /* as the client wrote it */
    char user[DB_NAME_MAX + 1];
    uint32_t mailbox;               /* INBOX of user; 0 for a remote recipient */
};

struct smtp_session {
    struct smtp_server *srv;
    struct conn *conn;
    struct smtp_session *prev, *next;       /* in srv->sessions */
    struct ev_timer *lifetime;
    struct ev_timer *guard;                 /* stalled output or a close that hangs */
    enum smtp_state state;
    char addr[64];
    char helo[SMTP_DOMAIN_MAX + 1];
    int esmtp;
    int dead;                               /* connection gone while in S_COMMIT */
    int counted;                            /* in the service-wide counts */
    char user[DB_NAME_MAX + 1];             /* AUTH: who is logged in */
    int auth_step;                          /* S_AUTH: what the next line is */
    char auth_login[DB_ADDR_MAX + 1];       /* AUTH LOGIN's user name */
    const char *auth_method;                /* "PLAIN" or "LOGIN", for the log */
    struct ev_timer *auth_delay;
    uint32_t sent_mailbox;                  /* submission: the user's Sent */
    struct anvil_key ipkey;
    unsigned errors;
    unsigned junk;                          /* NOOP, RSET, VRFY, HELP, EXPN */
    int out_blocked;                        /* input paused until replies drain */
    /* Command counts for the disconnect line, in Postfix's order. */
    unsigned n_ehlo, n_helo, n_starttls, n_mail, n_rcpt, n_data, n_bdat, n_rset, n_noop,
        n_quit, n_unknown, n_commands;

    /* The transaction. */
    int has_mail;
    char qid[LOG_QUEUE_ID_LEN + 1];
    uint64_t mail_ms;
    struct smtp_path from;
    struct smtp_mail_params params;
    struct smtp_rcpt *rcpts;
    size_t nrcpts, caprcpts;
    struct store_msg *msg;
    int queued;                             /* submission: a queue entry is staged */
    struct smtp_data data;
    struct smtp_content content;
    uint64_t size;                          /* content bytes received */
    int toolarge;
    int bdat_active;                        /* a BDAT transaction has begun */
    uint64_t bdat_left;
    int bdat_last;
    enum smtp_reply_id bdat_error;          /* chunk read only to discard it */
};

struct smtp_server {
    struct service *svc;
    struct smtp_policy policy;
    const char *hostname;
    uint64_t size_limit;
    size_t rcpt_limit;
    unsigned error_limit;
    unsigned junk_limit;
    uint64_t idle_ms, session_ms;
    size_t conn_limit, ip_limit;
    struct smtp_session *sessions;
    size_t nsessions;
    struct smtp_session **batch;            /* finished messages awaiting commit */
    size_t nbatch, capbatch;
    int commit_armed;
    int stopping;
    uint64_t wake_ms;                       /* submission: last wake-up of relayq */
    struct ev_timer *wake_timer;            /* a wake-up held back (smtp_submit.c) */
    struct notify_sender *notify;           /* mailbox changes to imapd */
};

/* smtp_session.c */
void smtp_reply(struct smtp_session *s, enum smtp_reply_id id, ...);
void smtp_session_reset(struct smtp_session *s);
void smtp_session_close(struct smtp_session *s);
void smtp_session_resume(struct smtp_session *s);
void smtp_session_free(struct smtp_session *s);
const char *smtp_proto(const struct smtp_session *s);

/* smtp_deliver.c */
/* Our Received: field for the message of s ("for <rcpt>" with one
 * recipient when with_for); its length, or -1 when buf is too small. */
int smtp_received(struct smtp_session *s, int with_for, char *buf, size_t len);
int smtp_deliver_begin(struct smtp_session *s);     /* temp file + trace headers; 0 or -1 */
int smtp_deliver_write(struct smtp_session *s, const char *buf, size_t len);
void smtp_deliver_finish(struct smtp_session *s);   /* refuse, or queue for commit */

/* smtp_auth.c */
void smtp_cmd_auth(struct smtp_session *s, const struct smtp_cmd *cmd);
void smtp_auth_line(struct smtp_session *s, const char *line, size_t len);
int smtp_auth_offered(const struct smtp_session *s);

/* smtp_submit.c */
/* At MAIL FROM: relay_acl and the sender's ownership; SMTP_R_NONE if fine. */
enum smtp_reply_id smtp_submit_sender(struct smtp_session *s, const struct smtp_path *from);
/* At the end of data: the content checks and the final message (headers
 * added, queue entry written).  SMTP_R_NONE when it may be committed. */
enum smtp_reply_id smtp_submit_finish(struct smtp_session *s, const char **arg);
/* Tell relayq that entries were published: at once, or when a wake-up was
 * sent less than SMTP_WAKE_GAP_MS ago, once that much time has passed. */
#define SMTP_WAKE_GAP_MS 100
void smtp_submit_wake_relayq(struct smtp_server *srv);
/* Send a held-back wake-up now (the server is going away). */
void smtp_submit_wake_flush(struct smtp_server *srv);

/* smtp_rcpt.c */
enum smtp_reply_id smtp_rcpt_check(struct smtp_session *s, const struct smtp_path *p,
                                   struct smtp_rcpt *r);

#endif
