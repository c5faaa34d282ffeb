/*
 * quota - per-user storage quota: what a user may store, what is used, and
 * whether a new message fits.
 *
 * The limit is the user's own (mailctl user quota, the quotas database) or
 * else the user_quota default; 0 means unlimited.  The usage is the sum of
 * the sizes of all of the user's mailboxes (the mailboxes records keep it
 * as messages come and go, so an expunge frees quota at once).
 *
 * Enforcement, everywhere a message is added to a user's mailbox:
 *	- imapd APPEND and COPY: refused when the user would go over the limit
 *	  (NO [OVERQUOTA]); MOVE between the user's own mailboxes changes no
 *	  usage and is never refused, so that a user over quota can still move
 *	  mail to Trash and expunge it;
 *	- smtpd/submitd RCPT: 452 4.2.2 when the user is over (usage >= limit),
 *	  or when the SIZE= the client declared would take the user over;
 *	- end of data: the commit (store.c) refuses the message with 452 4.2.2
 *	  only when every recipient would go over; otherwise every recipient
 *	  accepted at RCPT gets it (see store_msg_add_rcpt_quota), since a 250
 *	  cannot be given to some recipients of one SMTP transaction only;
 *	- the Sent copy of submitd is left out when it would take the sender
 *	  over: the mail is still sent.
 * The checks that matter run inside the write transaction that adds the
 * message, so two deliveries racing cannot both slip under the limit.
 */
#ifndef MAILCORE_QUOTA_H
#define MAILCORE_QUOTA_H

#include <stdint.h>

struct db_txn;

/* What a transaction function returns when a message does not fit: not 0,
 * DB_NOTFOUND or DB_EXISTS, so that it passes through db_write(). */
#define QUOTA_OVER 3

struct quota {
    uint64_t limit; /* bytes; 0: unlimited */
    uint64_t usage; /* bytes */
    int own;        /* 1: the user's own limit, 0: the user_quota default */
};

/* The user's limit and usage; 0 or a db error (db.h). */
int quota_get(struct db_txn *txn, const char *user, uint64_t default_limit, struct quota *q);
/* 1 when limited and usage >= limit: nothing more may come in. */
int quota_is_over(const struct quota *q);
/* 1 when limited and usage + add > limit (no overflow). */
int quota_would_exceed(const struct quota *q, uint64_t add);
/* In a write transaction: 0 when add more bytes fit for user, QUOTA_OVER
 * when not, or a db error. */
int quota_check_add(struct db_txn *txn, const char *user, uint64_t default_limit, uint64_t add);

/* RFC 9208 STORAGE figures, in units of 1024 octets: usage rounded up (a
 * non-empty mailbox never shows 0), the limit rounded down. */
uint64_t quota_kib_usage(const struct quota *q);
uint64_t quota_kib_limit(const struct quota *q);

/*
 * mailctl user quota's argument: "default" (*own 0), "unlimited" (limit 0,
 * *own 1) or a size with k, m, g suffixes as in the config, 1 byte at
 * least (*own 1).  0, or -1 for anything else.
 */
int quota_parse_setting(const char *s, uint64_t *limit, int *own);

#endif
