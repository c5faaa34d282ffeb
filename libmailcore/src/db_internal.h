/*
 * db_internal.h - what db.c, db_user.c and db_mailbox.c share: the handle
 * and transaction structs, the named-database table, the record codec and
 * small LMDB wrappers that turn LMDB's codes into db.h's (0, DB_NOTFOUND,
 * DB_EXISTS, -1 with a message) and note MDB_MAP_FULL for db_write().
 *
 * Not a public header: nothing outside the db*.c files includes it.  The
 * schema itself (keys, values, versions) is described at the top of db.c.
 */
#ifndef MAILCORE_DB_INTERNAL_H
#define MAILCORE_DB_INTERNAL_H

#include <lmdb.h>
#include <stdint.h>

#include "mailcore/db.h"

/* The named databases; names and flags are in db.c's table. */
enum dbx_dbi {
    DBX_META,
    DBX_USERS,
    DBX_ADDRESSES,
    DBX_DOMAINS,
    DBX_GROUPS,
    DBX_MEMBERS,
    DBX_MAILBOXES,
    DBX_MBOXIDS,
    DBX_MESSAGES,
    DBX_FILES,
    DBX_KEYWORDS,
    DBX_SUBSCRIPTIONS,
    DBX_CACHE,
    DBX_AUTHFAIL,
    DBX_SENTIDS,
    DBX_QUOTAS,
    DBX_COUNT
};

/* Version byte that starts every record value in users .. files. */
#define DBX_RECORD_V1 1

struct db {
    MDB_env *env;
    MDB_dbi dbi[DBX_COUNT];
    unsigned resizes;
    unsigned upgraded_from; /* schema version db_open upgraded, or 0 */
    int unsynced;          /* lazy commits not yet fsync'd */
    char dir[];
};

struct db_txn {
    struct db *db;
    MDB_txn *txn;
    int map_full; /* an LMDB call said MDB_MAP_FULL: db_write grows and retries */
    char err[256];
};

/* Set txn's message (like db_txn_fail) and return rc. */
int dbx_note(struct db_txn *txn, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* -1 with "corrupt <what> record". */
int dbx_corrupt(struct db_txn *txn, const char *what);

/* get: 0 (v points into the map until the next write), DB_NOTFOUND, -1.
 * put: 0, DB_EXISTS (only with MDB_NOOVERWRITE), -1.  del: 0, DB_NOTFOUND, -1. */
int dbx_get(struct db_txn *txn, int dbi, const void *key, size_t klen, MDB_val *v);
int dbx_put(struct db_txn *txn, int dbi, const void *key, size_t klen, const void *val, size_t vlen,
            unsigned flags);
int dbx_del(struct db_txn *txn, int dbi, const void *key, size_t klen);

/*
 * Walk the keys of dbi that start with prefix (all keys when plen is 0), in
 * key order.  fn returns 0 to go on (setting *del to delete the entry it was
 * given, which it must not touch afterwards) or non-zero to stop, which
 * dbx_scan returns.  fn must not write to dbi itself; other databases are fine.
 */
typedef int dbx_scan_fn(struct db_txn *txn, const MDB_val *key, const MDB_val *val, int *del,
                        void *arg);
int dbx_scan(struct db_txn *txn, int dbi, const void *prefix, size_t plen, dbx_scan_fn *fn,
             void *arg);

/* db_user_del's part in db_mailbox.c: every mailbox of user, its messages
 * and their file references (file_dead for each that reaches zero). */
/* db_mailbox.c, for db_imap.c */
int dbx_mailbox_put(struct db_txn *txn, const struct db_mailbox *m, unsigned flags);
int dbx_message_put(struct db_txn *txn, uint32_t mailbox_id, const struct db_message *m,
                    unsigned flags);
int dbx_file_unref(struct db_txn *txn, uint64_t id,
                   void (*file_dead)(uint64_t file_id, void *arg), void *arg);
int dbx_mailbox_key(char *key, size_t keymax, const char *user, const char *name, size_t *klen);
int dbx_mailbox_name_canon(const char *name, char out[DB_MBOX_NAME_MAX + 1]);
int dbx_mailbox_purge(struct db_txn *txn, uint32_t id,
                      void (*file_dead)(uint64_t file_id, void *arg), void *arg);

/* db_user_del's part in db_quota.c: the user's own limit, if any. */
int dbx_quota_del_user(struct db_txn *txn, const char *user);
int dbx_mailboxes_del_user(struct db_txn *txn, const char *user,
                           void (*file_dead)(uint64_t file_id, void *arg), void *arg);

/* The next value of a meta counter (first 1), which is then advanced. */
int dbx_counter_next(struct db_txn *txn, const char *name, uint32_t *out);
/* A UIDVALIDITY: the time, but always above the last one handed out. */
int dbx_uidvalidity_next(struct db_txn *txn, uint32_t *out);

/*
 * The record codec.  Integers are little-endian and fixed width; a string is
 * a 16-bit length and its bytes (no NUL).  The encoder has a fixed buffer
 * (records are small) and notes overflow; the decoder never reads past the
 * value and notes any inconsistency, which callers report as corruption.
 */
struct dbx_enc {
    unsigned char buf[1024];
    size_t len;
    int overflow;
};
struct dbx_dec {
    const unsigned char *p;
    size_t left;
    int bad;
};

void dbx_enc_init(struct dbx_enc *e, uint8_t version);
void dbx_enc_u8(struct dbx_enc *e, uint8_t v);
void dbx_enc_u32(struct dbx_enc *e, uint32_t v);
void dbx_enc_u64(struct dbx_enc *e, uint64_t v);
void dbx_enc_str(struct dbx_enc *e, const char *s);

/* Starts the decoder and checks the version byte (bad when it is not want). */
void dbx_dec_init(struct dbx_dec *d, const MDB_val *v, uint8_t want);
uint8_t dbx_dec_u8(struct dbx_dec *d);
uint32_t dbx_dec_u32(struct dbx_dec *d);
uint64_t dbx_dec_u64(struct dbx_dec *d);
/* Copies a string into out (size outlen, NUL-terminated); too long, or
 * containing NUL, is bad. */
void dbx_dec_str(struct dbx_dec *d, char *out, size_t outlen);
/* 0 when every field was good and the whole value was consumed. */
int dbx_dec_done(const struct dbx_dec *d);

/* Big-endian key helpers: cursor order is numeric order. */
void dbx_be32(unsigned char out[4], uint32_t v);
void dbx_be64(unsigned char out[8], uint64_t v);
uint32_t dbx_get_be32(const unsigned char in[4]);
uint64_t dbx_get_be64(const unsigned char in[8]);

/* A key of "a NUL b" in out; its length, or 0 when it does not fit. */
size_t dbx_key2(char *out, size_t outlen, const char *a, const char *b);

/* Copy a key's bytes into a C string; -1 when too long or holding a NUL. */
int dbx_key_str(const MDB_val *k, size_t off, size_t len, char *out, size_t outlen);

#endif
