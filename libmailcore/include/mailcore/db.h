/*
 * db - the LMDB environment: users, addresses, groups, mailboxes, messages.
 *
 * All knowledge of the schema lives in db.c; nothing else touches LMDB.
 * Named databases (keys and values are described at the top of db.c):
 *	meta       schema version, id counters
 *	users      name -> user record (id, primary address, password hash)
 *	addresses  lower-cased address -> user name, primary or alias
 *	domains    lower-cased domain -> number of addresses in it
 *	groups     group name -> (nothing)
 *	members    group NUL user -> (nothing)
 *	mailboxes  user NUL mailbox name -> mailbox record
 *	mboxids    mailbox id (big-endian) -> user NUL mailbox name
 *	messages   mailbox id, uid (big-endian) -> message record
 *	files      file id (big-endian) -> reference count, size
 *	quotas     user name -> the user's own storage limit (db_quota.c)
 *
 * Transactions are run through db_read()/db_write(), which take a function:
 * on MDB_MAP_FULL the write is aborted, the map grown (doubled, like
 * Postfix's slmdb) and the function run again, so it must only change LMDB.
 * A map grown by another process (MDB_MAP_RESIZED) is picked up the same way.
 * Read transactions are short: never hold one across a wait.
 *
 * The functions below that take a txn return 0, DB_NOTFOUND, DB_EXISTS, or
 * -1 with a message in db_txn_error(txn) (DB_NOTFOUND and DB_EXISTS usually
 * come with one too); a db_write() fn that returns non-zero aborts the
 * transaction and db_write() returns that value, with the message in err.
 * The foreach functions stop at the first non-zero return of cb and return
 * it; otherwise 0.
 *
 * Names are stored as given (db_valid_name() admits only lower case);
 * addresses are stored lower-cased, local part included (see
 * db_address_normalize()).  Addresses are ASCII only for now: no SMTPUTF8.
 */
#ifndef MAILCORE_DB_H
#define MAILCORE_DB_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define DB_NAME_MAX 64       /* user and group names: [a-z0-9._-], first a letter or digit */
#define DB_ADDR_MAX 254      /* RFC 5321 path limit */
#define DB_HASH_MAX 255
#define DB_MBOX_NAME_MAX 255 /* bytes of an IMAP mailbox name (modified UTF-7 or UTF-8) */

enum { DB_NOTFOUND = 1, DB_EXISTS = 2 };

/* Special-use of a mailbox (RFC 6154). */
enum db_special {
    DB_SPECIAL_NONE = 0,
    DB_SPECIAL_SENT = 1 << 0,
    DB_SPECIAL_DRAFTS = 1 << 1,
    DB_SPECIAL_TRASH = 1 << 2,
    DB_SPECIAL_JUNK = 1 << 3,
    DB_SPECIAL_ARCHIVE = 1 << 4,
    DB_SPECIAL_NOSELECT = 1 << 8,   /* deleted while it had children: a name only */
};

/* System flags of a message. */
enum db_flag {
    DB_FLAG_SEEN = 1 << 0,
    DB_FLAG_ANSWERED = 1 << 1,
    DB_FLAG_FLAGGED = 1 << 2,
    DB_FLAG_DELETED = 1 << 3,
    DB_FLAG_DRAFT = 1 << 4,
};

struct db;
struct db_txn;

struct db_user {
    uint32_t id;
    uint64_t created;                 /* unix time */
    char name[DB_NAME_MAX + 1];
    char address[DB_ADDR_MAX + 1];    /* primary address */
    char hash[DB_HASH_MAX + 1];       /* crypt(3) hash */
};

struct db_mailbox {
    uint32_t id;                      /* unique in the environment, never reused */
    uint32_t uidvalidity;
    uint32_t uidnext;
    uint64_t highestmodseq;
    uint32_t special;                 /* enum db_special bits */
    uint32_t subscribed;
    uint32_t messages;                /* count */
    uint32_t unseen;
    uint64_t size;                    /* sum of message sizes */
    uint32_t recent_uid;              /* first uid still \Recent */
    char user[DB_NAME_MAX + 1];
    char name[DB_MBOX_NAME_MAX + 1];
};

struct db_message {
    uint32_t uid;
    uint32_t flags;                   /* enum db_flag bits */
    uint64_t file_id;
    uint64_t size;
    int64_t internaldate;             /* unix time */
    uint64_t modseq;
    uint64_t keywords;                /* bit i: the mailbox's keyword i */
};

/*
 * Open (and with create, make) the environment in dir.  When owner_uid is
 * not (uid_t)-1, files created here (data.mdb, lock.mdb) are chowned to it,
 * so that root's mailctl never leaves a file the daemons cannot open.
 * NULL with err on failure.  Never open before fork(): open in the child.
 */
struct db *db_open(const char *dir, int create, uid_t owner_uid, gid_t owner_gid,
                   char *err, size_t errlen);
/*
 * Open an existing environment for reading only (mailctl check): nothing is
 * created, chowned or upgraded, and db_write() fails.  Without lock.mdb it
 * is read without locks instead of making one.  An older schema is an error
 * (naming the upgrade that master makes at start).  NULL with err.
 */
struct db *db_open_readonly(const char *dir, char *err, size_t errlen);
void db_close(struct db *db);

typedef int db_txn_fn(struct db_txn *txn, void *arg);
int db_read(struct db *db, db_txn_fn *fn, void *arg, char *err, size_t errlen);
int db_write(struct db *db, db_txn_fn *fn, void *arg, char *err, size_t errlen);
/*
 * A write whose loss in a power failure is harmless (IMAP flags, \Recent,
 * subscriptions, caches): committed without the fsync, made durable by
 * the next db_write() of this process or by db_sync(), which a daemon
 * calls every few seconds.  Never for mail itself: deliveries use
 * db_write() and answer only after it.
 */
int db_write_lazy(struct db *db, db_txn_fn *fn, void *arg, char *err, size_t errlen);
int db_sync(struct db *db);   /* fsync lazy commits, if any; 0 or -1 */
const char *db_txn_error(const struct db_txn *txn);
/* Record an error message for the caller; returns -1. */
int db_txn_fail(struct db_txn *txn, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The schema version db_open() found and upgraded in place (2), or 0 when
 * the environment was already current. */
unsigned db_upgraded_from(const struct db *db);
/* Number of map resizes done by this handle (for tests). */
unsigned db_resize_count(const struct db *db);
size_t db_map_size(const struct db *db);
/* The map size db_open() starts a new environment with (default 64 MiB,
 * or MAILCORE_DB_INITIAL_MAPSIZE bytes from the environment); it grows by
 * doubling up to 16 GiB.  Process-wide, for tests and benchmarks: a tiny
 * map makes growth happen early.  0 restores the default. */
void db_set_initial_mapsize(size_t size);

/* Syntax checks shared with mailctl (1 valid, 0 not).  A name is 1-64 of
 * [a-z0-9._-], starting with a letter or digit.  An address is at most
 * DB_ADDR_MAX bytes of local@domain: a dot-atom local part of at most 64
 * bytes (RFC 5322 atext except '%' and '!'; no quotes, no routes, ASCII
 * only) and a host name (labels of letters, digits and '-', not starting or
 * ending with '-'; no address literals). */
int db_valid_name(const char *name);
int db_valid_address(const char *addr);     /* local@domain, no quotes, routes or % */
/* Lower-case the domain part (and the local part: mailcore's local parts
 * are case-insensitive as users expect) into out.  0, or -1 if invalid. */
int db_address_normalize(const char *addr, char *out, size_t outlen);

/* Users.  user_add creates the primary address and the five standard
 * mailboxes: INBOX, Sent, Drafts, Trash, Junk (with special-use), all
 * subscribed.  The name must be valid and new, the address valid and not
 * anyone's address yet (else DB_EXISTS).  It fills id (from 1, never
 * reused) and created, and rewrites address in normalized form. */
int db_user_add(struct db_txn *txn, struct db_user *u);   /* fills id, created */
int db_user_get(struct db_txn *txn, const char *name, struct db_user *u);
/* By name or any of the user's addresses (primary or alias, not
 * plus-addressed), case-insensitively.  DB_NOTFOUND for malformed logins. */
int db_user_by_login(struct db_txn *txn, const char *login, struct db_user *u);
int db_user_set_hash(struct db_txn *txn, const char *name, const char *hash);
/* Removes the user, its addresses, aliases, memberships, mailboxes and
 * messages.  file_dead is called for each file id whose last reference
 * went (its files record is deleted); the caller unlinks those files after
 * the commit (store_user_del() does).  When db_write() runs the function
 * again after growing the map, the calls come again: collect afresh at the
 * start of the function.  file_dead may be NULL. */
int db_user_del(struct db_txn *txn, const char *name,
                void (*file_dead)(uint64_t file_id, void *arg), void *arg);
int db_user_foreach(struct db_txn *txn, int (*cb)(const struct db_user *u, void *arg), void *arg);

/* Addresses: exact address, then alias, then plus-addressing
 * (user+tag@domain -> user@domain).  user gets the owner's name.
 * DB_NOTFOUND also for a malformed address.  alias_add: -1 for an invalid
 * address, DB_NOTFOUND for an unknown user, DB_EXISTS for a taken address.
 * alias_del refuses (-1) a user's primary address. */
int db_address_resolve(struct db_txn *txn, const char *addr, char user[DB_NAME_MAX + 1]);
int db_alias_add(struct db_txn *txn, const char *addr, const char *user);
int db_alias_del(struct db_txn *txn, const char *addr);
/* cb gets address, user name and whether it is the user's primary address. */
int db_address_foreach(struct db_txn *txn,
                       int (*cb)(const char *addr, const char *user, int primary, void *arg),
                       void *arg);
/* 1 when domain (lower case) is a local domain: one that some address has. */
int db_domain_is_local(struct db_txn *txn, const char *domain);

/* Groups.  Group names follow db_valid_name().  member_add needs the
 * group and the user (DB_NOTFOUND) and is DB_EXISTS for a member already;
 * group_del removes the memberships too. */
int db_group_add(struct db_txn *txn, const char *group);
int db_group_exists(struct db_txn *txn, const char *group);   /* 0 or DB_NOTFOUND */
int db_group_del(struct db_txn *txn, const char *group);
int db_group_member_add(struct db_txn *txn, const char *group, const char *user);
int db_group_member_del(struct db_txn *txn, const char *group, const char *user);
int db_group_is_member(struct db_txn *txn, const char *group, const char *user); /* 1, 0, -1 */
/* cb once per group with member NULL, then once per member. */
int db_group_foreach(struct db_txn *txn,
                     int (*cb)(const char *group, const char *member, void *arg), void *arg);

/* Mailboxes.  A name is 1-DB_MBOX_NAME_MAX bytes without control
 * characters; "INBOX" is case-insensitive and always stored as INBOX.  A
 * new mailbox gets a new id, a UIDVALIDITY above every earlier one, uidnext
 * 1, highestmodseq 1, and is subscribed. */
int db_mailbox_create(struct db_txn *txn, const char *user, const char *name,
                      uint32_t special, struct db_mailbox *out);
int db_mailbox_get(struct db_txn *txn, const char *user, const char *name, struct db_mailbox *out);
int db_mailbox_by_id(struct db_txn *txn, uint32_t id, struct db_mailbox *out);
int db_mailbox_foreach(struct db_txn *txn, const char *user,
                       int (*cb)(const struct db_mailbox *m, void *arg), void *arg);

/* Messages.  message_add assigns uid (the mailbox's uidnext) and modseq,
 * sets size from the files record, takes a reference on file_id (which must
 * exist in files: -1 otherwise) and updates the mailbox's counters
 * (messages, unseen, size, uidnext, highestmodseq); DB_NOTFOUND for an
 * unknown mailbox.  flags and internaldate are the caller's.
 * file_add makes a record with no references (DB_EXISTS if the id is
 * taken); the same transaction must add a message for it. */
int db_file_add(struct db_txn *txn, uint64_t file_id, uint64_t size);
int db_file_refs(struct db_txn *txn, uint64_t file_id, uint32_t *refs); /* DB_NOTFOUND if none */
int db_message_add(struct db_txn *txn, uint32_t mailbox_id, struct db_message *m);
int db_message_get(struct db_txn *txn, uint32_t mailbox_id, uint32_t uid, struct db_message *m);
int db_message_foreach(struct db_txn *txn, uint32_t mailbox_id,
                       int (*cb)(const struct db_message *m, void *arg), void *arg);

/* --- IMAP (db_imap.c) --------------------------------------------- */

#define DB_KEYWORDS_MAX 64
#define DB_KEYWORD_LEN 64

/* New flags and keywords of a message: modseq bumped (returned in *modseq
 * when not NULL), unseen counter kept.  DB_NOTFOUND if the uid is gone. */
int db_message_update(struct db_txn *txn, uint32_t mailbox_id, uint32_t uid, uint32_t flags,
                      uint64_t keywords, uint64_t *modseq);
/* Remove a message; its file loses a reference (file_dead at zero). */
int db_message_expunge(struct db_txn *txn, uint32_t mailbox_id, uint32_t uid,
                       void (*file_dead)(uint64_t file_id, void *arg), void *arg);
/* Messages with uid >= first_uid, in uid order. */
int db_message_foreach_from(struct db_txn *txn, uint32_t mailbox_id, uint32_t first_uid,
                            int (*cb)(const struct db_message *m, void *arg), void *arg);
int db_mailbox_set_recent(struct db_txn *txn, uint32_t mailbox_id, uint32_t recent_uid);
/* Delete a mailbox and its messages.  DB_NOTFOUND if there is none. */
int db_mailbox_delete(struct db_txn *txn, const char *user, const char *name,
                      void (*file_dead)(uint64_t file_id, void *arg), void *arg);
/* Rename one mailbox (its id, uidvalidity and messages stay).  DB_NOTFOUND,
 * DB_EXISTS (the new name is taken). */
int db_mailbox_rename(struct db_txn *txn, const char *user, const char *from, const char *to);
/* Set or clear DB_SPECIAL_NOSELECT: the mailbox's messages go when set. */
int db_mailbox_set_noselect(struct db_txn *txn, const char *user, const char *name, int on,
                            void (*file_dead)(uint64_t file_id, void *arg), void *arg);

/* Keyword name -> bit index in the mailbox; with create, a new keyword takes
 * the next free index.  0 (index in *index), DB_NOTFOUND, or -1 (all
 * DB_KEYWORDS_MAX in use, or an invalid name). */
int db_keyword_index(struct db_txn *txn, uint32_t mailbox_id, const char *name, int create,
                     unsigned *index);
int db_keyword_foreach(struct db_txn *txn, uint32_t mailbox_id,
                       int (*cb)(unsigned index, const char *name, void *arg), void *arg);

int db_subscription_set(struct db_txn *txn, const char *user, const char *name, int on);
int db_subscription_foreach(struct db_txn *txn, const char *user,
                            int (*cb)(const char *name, void *arg), void *arg);

/*
 * Failed logins per client address, shared by every process: note one
 * (the count restarts when the last failure is older than ttl seconds) and
 * get the count in *count; clear the address after a successful login
 * (DB_NOTFOUND when there was nothing to clear, so a caller can look with
 * a read transaction first).  Expired entries are pruned as failures are
 * noted, a few at a time, so the table stays small.
 */
int db_authfail_note(struct db_txn *txn, const char *addr, uint64_t now, uint64_t ttl,
                     uint32_t *count);
int db_authfail_get(struct db_txn *txn, const char *addr, uint32_t *count);
int db_authfail_clear(struct db_txn *txn, const char *addr);

/*
 * Storage quota (db_quota.c; policy and arithmetic in quota.h).  A user's
 * own limit overrides the user_quota default: quota_set stores it (bytes,
 * 0 for unlimited), quota_clear returns the user to the default (0 also
 * when there was nothing to clear), both DB_NOTFOUND for an unknown user.
 * quota_get: 0 with the user's own limit, DB_NOTFOUND when the default
 * applies.  usage: the sum of the sizes of all of the user's mailboxes
 * (0 for an unknown user).
 */
int db_quota_set(struct db_txn *txn, const char *user, uint64_t limit);
int db_quota_clear(struct db_txn *txn, const char *user);
int db_quota_get(struct db_txn *txn, const char *user, uint64_t *limit);
int db_quota_usage(struct db_txn *txn, const char *user, uint64_t *bytes);

/* Sent copies filed by submitd, by Message-ID (see sentids in db.c). */
#define DB_SENTID_TTL 900
#define DB_MSGID_MAX 255
int db_sentid_put(struct db_txn *txn, const char *user, const char *msgid, uint32_t mailbox_id,
                  uint32_t uid, uint64_t now);
/* DB_NOTFOUND unless filed within DB_SENTID_TTL seconds of now. */
int db_sentid_get(struct db_txn *txn, const char *user, const char *msgid, uint64_t now,
                  uint32_t *mailbox_id, uint32_t *uid);

/* Parsed-structure cache of a message file, for FETCH. */
struct db_cache {
    const char *envelope, *bodystructure, *body;   /* into LMDB: valid in the txn */
    size_t envelope_len, bodystructure_len, body_len;
};
int db_cache_put(struct db_txn *txn, uint64_t file_id, const struct db_cache *c);
int db_cache_get(struct db_txn *txn, uint64_t file_id, struct db_cache *out);

#endif
