/*
 * db.c - the LMDB environment, transactions, the record codec and the
 * schema.  See db.h for the interface.
 *
 * This file owns: opening the environment (files, ownership, schema check),
 * db_read()/db_write() with map growth, the codec and the LMDB wrappers in
 * db_internal.h.  db_user.c owns users, addresses and groups; db_mailbox.c
 * owns mailboxes, messages and files.
 *
 * THE SCHEMA (version 3; version 2 lacked the quotas database, version 1
 * also the IMAP fields and databases).  A version-2 environment is upgraded
 * in place when it is opened (db_open): the quotas database is created and
 * the version set to 3, in one write transaction; nothing else changed.
 * One environment in the data directory: data.mdb and lock.mdb.  Every record value in the databases below meta starts with
 * a version byte (1); integers in values are little-endian and fixed width;
 * "str" is a 16-bit little-endian length and that many bytes, no NUL.
 * Integers in keys are big-endian so that cursor order is numeric order.
 * Names (users, groups) are db_valid_name()s, so they never hold a NUL and a
 * NUL can separate two of them in a key.
 *
 *   meta       key: ASCII name                 value: u32, no version byte
 *                "version"           schema version, 2
 *                "next_user_id"      next user id to give (ids start at 1)
 *                "next_mailbox_id"   next mailbox id to give (never reused)
 *                "last_uidvalidity"  last UIDVALIDITY given (they only rise)
 *   users      key: name
 *              value: v1 u32 id, u64 created, str primary address, str hash
 *   addresses  key: normalized (lower-case) address
 *              value: v1 u8 primary (1 primary, 0 alias), str user name
 *   domains    key: lower-case domain of some address
 *              value: v1 u32 number of addresses in it (deleted at 0)
 *   groups     key: group name                 value: v1
 *   members    key: group NUL user             value: v1
 *   mailboxes  key: user NUL mailbox name ("INBOX" always spelt so)
 *              value: v1 u32 id, u32 uidvalidity, u32 uidnext,
 *                     u64 highestmodseq, u32 special, u32 subscribed,
 *                     u32 messages, u32 unseen, u64 size,
 *                     u32 recent_uid (uids from here are \Recent to the
 *                     next session that SELECTs the mailbox)
 *   mboxids    key: be32 mailbox id            value: user NUL mailbox name
 *              (the mailboxes key, so that a mailbox id finds its record)
 *   messages   key: be32 mailbox id, be32 uid
 *              value: v1 u32 flags, u64 file id, u64 size, i64 internaldate,
 *                     u64 modseq, u64 keywords (bit i: keyword i below)
 *   files      key: be64 file id
 *              value: v1 u32 reference count (index entries), u64 size
 *   keywords   key: be32 mailbox id, u8 index (0..63)
 *              value: v1 str keyword (IMAP flag keyword, case kept; matched
 *                     case-insensitively)
 *   subscriptions key: user NUL mailbox name    value: v1
 *              (IMAP SUBSCRIBE; may name a mailbox that does not exist)
 *   authfail   key: client address (text)
 *              value: v1 u32 failed logins, u64 unix time of the last one
 *              (shared by every smtpd/submitd/imapd process; see
 *              db_authfail_note)
 *   sentids    key: user NUL Message-ID (as in the header, <...> included)
 *              value: v1 u32 mailbox id, u32 uid, u64 unix time
 *              (the Sent copies submitd filed lately, so that imapd can
 *              answer a client's APPEND of the same message to Sent
 *              without a second copy; pruned after DB_SENTID_TTL)
 *   quotas     key: user name (schema 3)
 *              value: v1 u64 storage limit in bytes, 0 for unlimited
 *              (the user's own limit from `mailctl user quota`; no record:
 *              the user_quota default applies.  The usage is not stored:
 *              it is the sum of the size fields of the user's mailboxes
 *              records, kept by every add and expunge)
 *   cache      key: be64 file id
 *              value: v1 then three blobs, each u32 length and bytes: the
 *                     IMAP ENVELOPE, BODYSTRUCTURE and BODY of the file
 *                     (parsed once, at delivery or first FETCH)
 *
 * A file's reference count is the number of messages records naming it; a
 * committed files record always has at least one (db_user_del deletes it at
 * zero).  A record that does not decode exactly (wrong version, a length
 * past the end, trailing bytes) is reported as corrupt, never trusted.
 * Changing any layout means a new record version or schema version here.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "db_internal.h"

#define DB_SCHEMA_VERSION 3
#define DB_SCHEMA_UPGRADABLE 2  /* an older version db_open upgrades in place */
#define DB_MAPSIZE_DEFAULT ((size_t)64 << 20)
#define DB_MAPSIZE_MIN ((size_t)128 << 10)
/* Growth stops here: a mail index past this is a problem to look at. */
#if SIZE_MAX > 0xffffffffu
#define DB_MAPSIZE_LIMIT ((size_t)16 << 30)
#else
#define DB_MAPSIZE_LIMIT ((size_t)1 << 30)
#endif
#define DB_ATTEMPTS 64 /* bound on retries of one transaction */

static const struct {
    const char *name;
    unsigned flags;
    uint32_t since;             /* schema version that added it (0: 2 or older) */
} dbx_table[DBX_COUNT] = {
    [DBX_META] = {"meta", 0, 0},           [DBX_USERS] = {"users", 0, 0},
    [DBX_ADDRESSES] = {"addresses", 0, 0}, [DBX_DOMAINS] = {"domains", 0, 0},
    [DBX_GROUPS] = {"groups", 0, 0},       [DBX_MEMBERS] = {"members", 0, 0},
    [DBX_MAILBOXES] = {"mailboxes", 0, 0}, [DBX_MBOXIDS] = {"mboxids", 0, 0},
    [DBX_MESSAGES] = {"messages", 0, 0},   [DBX_FILES] = {"files", 0, 0},
    [DBX_KEYWORDS] = {"keywords", 0, 0},   [DBX_SUBSCRIPTIONS] = {"subscriptions", 0, 0},
    [DBX_CACHE] = {"cache", 0, 0},         [DBX_AUTHFAIL] = {"authfail", 0, 0},
    [DBX_SENTIDS] = {"sentids", 0, 0},     [DBX_QUOTAS] = {"quotas", 0, 3},
};

static size_t initial_mapsize;

void db_set_initial_mapsize(size_t size)
{
    initial_mapsize = size;
}

static size_t mapsize_wanted(void)
{
    size_t size = initial_mapsize;
    const char *env;

    if (size == 0 && (env = getenv("MAILCORE_DB_INITIAL_MAPSIZE")) != NULL) {
        char *end;
        unsigned long long v;

        errno = 0;
        v = strtoull(env, &end, 10);
        if (errno == 0 && end != env && *end == '\0' && v <= SIZE_MAX)
            size = (size_t)v;
    }
    if (size == 0)
        size = DB_MAPSIZE_DEFAULT;
    if (size < DB_MAPSIZE_MIN)
        size = DB_MAPSIZE_MIN;
    if (size > DB_MAPSIZE_LIMIT)
        size = DB_MAPSIZE_LIMIT;
    return size;
}

/* ---- errors ---- */

int db_txn_fail(struct db_txn *txn, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(txn->err, sizeof txn->err, fmt, ap);
    va_end(ap);
    return -1;
}

int dbx_note(struct db_txn *txn, int rc, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(txn->err, sizeof txn->err, fmt, ap);
    va_end(ap);
    return rc;
}

int dbx_corrupt(struct db_txn *txn, const char *what)
{
    return db_txn_fail(txn, "corrupt %s record in %s/data.mdb", what, txn->db->dir);
}

const char *db_txn_error(const struct db_txn *txn)
{
    return txn->err;
}

/* An LMDB error in txn: remember MAP_FULL for db_write, set the message. */
static int lmdb_fail(struct db_txn *txn, int rc, const char *op, int dbi)
{
    if (rc == MDB_MAP_FULL)
        txn->map_full = 1;
    return db_txn_fail(txn, "lmdb %s in %s: %s", op, dbx_table[dbi].name, mdb_strerror(rc));
}

/* ---- LMDB wrappers ---- */

int dbx_get(struct db_txn *txn, int dbi, const void *key, size_t klen, MDB_val *v)
{
    MDB_val k = {klen, (void *)key};
    int rc = mdb_get(txn->txn, txn->db->dbi[dbi], &k, v);

    if (rc == MDB_NOTFOUND)
        return DB_NOTFOUND;
    if (rc != 0)
        return lmdb_fail(txn, rc, "get", dbi);
    return 0;
}

int dbx_put(struct db_txn *txn, int dbi, const void *key, size_t klen, const void *val, size_t vlen,
            unsigned flags)
{
    MDB_val k = {klen, (void *)key}, v = {vlen, (void *)val};
    int rc = mdb_put(txn->txn, txn->db->dbi[dbi], &k, &v, flags);

    if (rc == MDB_KEYEXIST)
        return DB_EXISTS;
    if (rc != 0)
        return lmdb_fail(txn, rc, "put", dbi);
    return 0;
}

int dbx_del(struct db_txn *txn, int dbi, const void *key, size_t klen)
{
    MDB_val k = {klen, (void *)key};
    int rc = mdb_del(txn->txn, txn->db->dbi[dbi], &k, NULL);

    if (rc == MDB_NOTFOUND)
        return DB_NOTFOUND;
    if (rc != 0)
        return lmdb_fail(txn, rc, "del", dbi);
    return 0;
}

int dbx_scan(struct db_txn *txn, int dbi, const void *prefix, size_t plen, dbx_scan_fn *fn,
             void *arg)
{
    MDB_cursor *c;
    MDB_val k = {plen, (void *)prefix}, v;
    MDB_cursor_op op = plen ? MDB_SET_RANGE : MDB_FIRST;
    int rc, ret = 0;

    if ((rc = mdb_cursor_open(txn->txn, txn->db->dbi[dbi], &c)) != 0)
        return lmdb_fail(txn, rc, "cursor", dbi);
    for (;;) {
        int del = 0;

        rc = mdb_cursor_get(c, &k, &v, op);
        op = MDB_NEXT;
        if (rc == MDB_NOTFOUND)
            break;
        if (rc != 0) {
            ret = lmdb_fail(txn, rc, "cursor get", dbi);
            break;
        }
        if (plen && (k.mv_size < plen || memcmp(k.mv_data, prefix, plen) != 0))
            break;
        if ((ret = fn(txn, &k, &v, &del, arg)) != 0)
            break;
        /* After a delete the cursor stands on the next entry, and LMDB's
         * MDB_NEXT returns that one rather than skipping it. */
        if (del && (rc = mdb_cursor_del(c, 0)) != 0) {
            ret = lmdb_fail(txn, rc, "cursor del", dbi);
            break;
        }
    }
    mdb_cursor_close(c);
    return ret;
}

/* ---- meta ---- */

static int meta_get(struct db_txn *txn, const char *name, uint32_t *out)
{
    MDB_val v;
    const unsigned char *p;
    int rc = dbx_get(txn, DBX_META, name, strlen(name), &v);

    if (rc != 0)
        return rc;
    if (v.mv_size != 4)
        return dbx_corrupt(txn, "meta");
    p = v.mv_data;
    *out = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    return 0;
}

static int meta_put(struct db_txn *txn, const char *name, uint32_t value)
{
    unsigned char b[4] = {value & 0xff, (value >> 8) & 0xff, (value >> 16) & 0xff,
                          (value >> 24) & 0xff};

    return dbx_put(txn, DBX_META, name, strlen(name), b, sizeof b, 0);
}

int dbx_counter_next(struct db_txn *txn, const char *name, uint32_t *out)
{
    uint32_t next;
    int rc = meta_get(txn, name, &next);

    if (rc == DB_NOTFOUND)
        next = 1;
    else if (rc != 0)
        return rc;
    if (next == 0 || next == UINT32_MAX)
        return db_txn_fail(txn, "counter %s exhausted", name);
    *out = next;
    return meta_put(txn, name, next + 1);
}

int dbx_uidvalidity_next(struct db_txn *txn, uint32_t *out)
{
    uint32_t last = 0, now = (uint32_t)time(NULL), v;
    int rc = meta_get(txn, "last_uidvalidity", &last);

    if (rc != 0 && rc != DB_NOTFOUND)
        return rc;
    v = now > last ? now : last + 1;
    if (v == 0)
        return db_txn_fail(txn, "uidvalidity exhausted");
    *out = v;
    return meta_put(txn, "last_uidvalidity", v);
}

/* ---- codec ---- */

static void enc_bytes(struct dbx_enc *e, const void *p, size_t n)
{
    if (e->overflow || n > sizeof e->buf - e->len) {
        e->overflow = 1;
        return;
    }
    memcpy(e->buf + e->len, p, n);
    e->len += n;
}

void dbx_enc_init(struct dbx_enc *e, uint8_t version)
{
    e->len = 0;
    e->overflow = 0;
    dbx_enc_u8(e, version);
}

void dbx_enc_u8(struct dbx_enc *e, uint8_t v)
{
    enc_bytes(e, &v, 1);
}

void dbx_enc_u32(struct dbx_enc *e, uint32_t v)
{
    unsigned char b[4];

    for (int i = 0; i < 4; i++)
        b[i] = (unsigned char)(v >> (8 * i));
    enc_bytes(e, b, sizeof b);
}

void dbx_enc_u64(struct dbx_enc *e, uint64_t v)
{
    unsigned char b[8];

    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)(v >> (8 * i));
    enc_bytes(e, b, sizeof b);
}

void dbx_enc_str(struct dbx_enc *e, const char *s)
{
    size_t n = strlen(s);
    unsigned char b[2];

    if (n > 0xffff) {
        e->overflow = 1;
        return;
    }
    b[0] = n & 0xff;
    b[1] = (n >> 8) & 0xff;
    enc_bytes(e, b, sizeof b);
    enc_bytes(e, s, n);
}

static const unsigned char *dec_take(struct dbx_dec *d, size_t n)
{
    const unsigned char *p;

    if (d->bad || n > d->left) {
        d->bad = 1;
        return NULL;
    }
    p = d->p;
    d->p += n;
    d->left -= n;
    return p;
}

void dbx_dec_init(struct dbx_dec *d, const MDB_val *v, uint8_t want)
{
    d->p = v->mv_data;
    d->left = v->mv_size;
    d->bad = 0;
    if (dbx_dec_u8(d) != want)
        d->bad = 1;
}

uint8_t dbx_dec_u8(struct dbx_dec *d)
{
    const unsigned char *p = dec_take(d, 1);

    return p ? p[0] : 0;
}

uint32_t dbx_dec_u32(struct dbx_dec *d)
{
    const unsigned char *p = dec_take(d, 4);
    uint32_t v = 0;

    if (p)
        for (int i = 3; i >= 0; i--)
            v = v << 8 | p[i];
    return v;
}

uint64_t dbx_dec_u64(struct dbx_dec *d)
{
    const unsigned char *p = dec_take(d, 8);
    uint64_t v = 0;

    if (p)
        for (int i = 7; i >= 0; i--)
            v = v << 8 | p[i];
    return v;
}

void dbx_dec_str(struct dbx_dec *d, char *out, size_t outlen)
{
    const unsigned char *p = dec_take(d, 2);
    size_t n;

    out[0] = '\0';
    if (p == NULL)
        return;
    n = (size_t)p[0] | (size_t)p[1] << 8;
    if (n >= outlen) {
        d->bad = 1;
        return;
    }
    if ((p = dec_take(d, n)) == NULL)
        return;
    if (memchr(p, '\0', n) != NULL) {
        d->bad = 1;
        return;
    }
    memcpy(out, p, n);
    out[n] = '\0';
}

int dbx_dec_done(const struct dbx_dec *d)
{
    return d->bad || d->left != 0 ? -1 : 0;
}

void dbx_be32(unsigned char out[4], uint32_t v)
{
    for (int i = 0; i < 4; i++)
        out[i] = (unsigned char)(v >> (8 * (3 - i)));
}

void dbx_be64(unsigned char out[8], uint64_t v)
{
    for (int i = 0; i < 8; i++)
        out[i] = (unsigned char)(v >> (8 * (7 - i)));
}

uint32_t dbx_get_be32(const unsigned char in[4])
{
    return (uint32_t)in[0] << 24 | (uint32_t)in[1] << 16 | (uint32_t)in[2] << 8 | in[3];
}

uint64_t dbx_get_be64(const unsigned char in[8])
{
    return (uint64_t)dbx_get_be32(in) << 32 | dbx_get_be32(in + 4);
}

size_t dbx_key2(char *out, size_t outlen, const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);

    if (la + 1 + lb > outlen)
        return 0;
    memcpy(out, a, la);
    out[la] = '\0';
    memcpy(out + la + 1, b, lb);
    return la + 1 + lb;
}

int dbx_key_str(const MDB_val *k, size_t off, size_t len, char *out, size_t outlen)
{
    if (off > k->mv_size || len > k->mv_size - off || len >= outlen)
        return -1;
    if (memchr((const char *)k->mv_data + off, '\0', len) != NULL)
        return -1;
    memcpy(out, (const char *)k->mv_data + off, len);
    out[len] = '\0';
    return 0;
}

/* ---- transactions ---- */

/* Double the map (up to the limit).  Only with no transaction open. */
static int db_grow(struct db *db, char *err, size_t errlen)
{
    MDB_envinfo info;
    size_t next;
    int rc;

    if ((rc = mdb_env_info(db->env, &info)) != 0) {
        snprintf(err, errlen, "%s: lmdb env info: %s", db->dir, mdb_strerror(rc));
        return -1;
    }
    if (info.me_mapsize >= DB_MAPSIZE_LIMIT) {
        snprintf(err, errlen, "%s/data.mdb: database full at its limit of %zu MiB", db->dir,
                 (size_t)(DB_MAPSIZE_LIMIT >> 20));
        return -1;
    }
    next = info.me_mapsize > DB_MAPSIZE_LIMIT / 2 ? DB_MAPSIZE_LIMIT : info.me_mapsize * 2;
    if ((rc = mdb_env_set_mapsize(db->env, next)) != 0) {
        snprintf(err, errlen, "%s: cannot grow the map to %zu bytes: %s", db->dir, next,
                 mdb_strerror(rc));
        return -1;
    }
    db->resizes++;
    return 0;
}

/* Begin a transaction, adopting a map grown by another process. */
static int txn_begin(struct db *db, unsigned flags, MDB_txn **t, char *err, size_t errlen)
{
    int rc;

    for (int i = 0; i < DB_ATTEMPTS; i++) {
        rc = mdb_txn_begin(db->env, NULL, flags, t);
        if (rc == MDB_MAP_RESIZED) {
            if ((rc = mdb_env_set_mapsize(db->env, 0)) != 0)
                break;
            continue;
        }
        if (rc == 0)
            return 0;
        break;
    }
    snprintf(err, errlen, "%s: cannot begin a transaction: %s", db->dir, mdb_strerror(rc));
    return -1;
}

static int txn_result(int r, const struct db_txn *txn, char *err, size_t errlen)
{
    if (txn->err[0] != '\0')
        snprintf(err, errlen, "%s", txn->err);
    else if (r == DB_NOTFOUND)
        snprintf(err, errlen, "not found");
    else if (r == DB_EXISTS)
        snprintf(err, errlen, "already exists");
    else
        snprintf(err, errlen, "transaction failed");
    return r;
}

int db_read(struct db *db, db_txn_fn *fn, void *arg, char *err, size_t errlen)
{
    struct db_txn txn = {.db = db};
    int r, rc;

    if (txn_begin(db, MDB_RDONLY, &txn.txn, err, errlen) != 0)
        return -1;
    r = fn(&txn, arg);
    if (r != 0) {
        mdb_txn_abort(txn.txn);
        return txn_result(r, &txn, err, errlen);
    }
    /* Committing a read transaction keeps the dbi handles it opened. */
    if ((rc = mdb_txn_commit(txn.txn)) != 0) {
        snprintf(err, errlen, "%s: lmdb commit: %s", db->dir, mdb_strerror(rc));
        return -1;
    }
    return 0;
}

/* Commit without the fsync when lazy: the env's MDB_NOSYNC is set just for
 * this commit (the process is single-threaded around its environment). */
static int commit(struct db *db, MDB_txn *txn, int lazy)
{
    int rc;

    if (lazy)
        mdb_env_set_flags(db->env, MDB_NOSYNC, 1);
    rc = mdb_txn_commit(txn);
    if (lazy) {
        mdb_env_set_flags(db->env, MDB_NOSYNC, 0);
        db->unsynced = 1;
    }
    return rc;
}

static int write_txn(struct db *db, db_txn_fn *fn, void *arg, int lazy, char *err,
                     size_t errlen)
{
    for (int attempt = 0; attempt < DB_ATTEMPTS; attempt++) {
        struct db_txn txn = {.db = db};
        int r, rc;

        if (txn_begin(db, 0, &txn.txn, err, errlen) != 0)
            return -1;
        r = fn(&txn, arg);
        if (r != 0 || txn.map_full) {
            mdb_txn_abort(txn.txn);
            if (txn.map_full) {
                if (db_grow(db, err, errlen) != 0)
                    return -1;
                continue;
            }
            return txn_result(r, &txn, err, errlen);
        }
        rc = commit(db, txn.txn, lazy); /* frees the txn, also on failure */
        if (rc == MDB_MAP_FULL) {
            if (db_grow(db, err, errlen) != 0)
                return -1;
            continue;
        }
        if (rc != 0) {
            snprintf(err, errlen, "%s/data.mdb: lmdb commit: %s", db->dir, mdb_strerror(rc));
            return -1;
        }
        if (!lazy)
            db->unsynced = 0;           /* a synced commit flushes what came before */
        return 0;
    }
    snprintf(err, errlen, "%s: transaction still failing after %d attempts", db->dir, DB_ATTEMPTS);
    return -1;
}

int db_write(struct db *db, db_txn_fn *fn, void *arg, char *err, size_t errlen)
{
    return write_txn(db, fn, arg, 0, err, errlen);
}

int db_write_lazy(struct db *db, db_txn_fn *fn, void *arg, char *err, size_t errlen)
{
    return write_txn(db, fn, arg, 1, err, errlen);
}

int db_sync(struct db *db)
{
    if (!db->unsynced)
        return 0;
    if (mdb_env_sync(db->env, 1) != 0)
        return -1;
    db->unsynced = 0;
    return 0;
}

unsigned db_upgraded_from(const struct db *db)
{
    return db->upgraded_from;
}

unsigned db_resize_count(const struct db *db)
{
    return db->resizes;
}

size_t db_map_size(const struct db *db)
{
    MDB_envinfo info;

    if (mdb_env_info(db->env, &info) != 0)
        return 0;
    return info.me_mapsize;
}

/* ---- open ---- */

struct init_arg {
    int create;
    int upgrade;                /* a write transaction that may upgrade */
    int want_upgrade;           /* set by a read: the schema is older */
    uint32_t upgraded_from;
};

/* Bring a version-2 environment to this version: the databases added
 * since are created (the loop in db_init_txn did), then the version. */
static int db_upgrade(struct db_txn *txn, struct init_arg *ia, uint32_t version)
{
    ia->upgraded_from = version;
    return meta_put(txn, "version", DB_SCHEMA_VERSION);
}

static int db_init_txn(struct db_txn *txn, void *arg)
{
    struct init_arg *ia = arg;
    uint32_t version;
    int rc;

    ia->upgraded_from = 0;
    for (int i = 0; i < DBX_COUNT; i++) {
        unsigned flags = dbx_table[i].flags;

        if (ia->create || (ia->upgrade && dbx_table[i].since > DB_SCHEMA_UPGRADABLE))
            flags |= MDB_CREATE;
        rc = mdb_dbi_open(txn->txn, dbx_table[i].name, flags, &txn->db->dbi[i]);
        if (rc == MDB_NOTFOUND && dbx_table[i].since > DB_SCHEMA_UPGRADABLE) {
            /* Missing in an older schema: the version check decides. */
            txn->db->dbi[i] = 0;
            continue;
        }
        if (rc == MDB_NOTFOUND)
            return db_txn_fail(txn, "%s/data.mdb: no %s database: not a mailcore database",
                               txn->db->dir, dbx_table[i].name);
        if (rc != 0)
            return lmdb_fail(txn, rc, "open", i);
    }
    rc = meta_get(txn, "version", &version);
    if (rc == DB_NOTFOUND && ia->create)
        return meta_put(txn, "version", DB_SCHEMA_VERSION);
    if (rc == DB_NOTFOUND)
        return db_txn_fail(txn, "%s/data.mdb: no schema version: not a mailcore database",
                           txn->db->dir);
    if (rc != 0)
        return rc;
    if (version == DB_SCHEMA_UPGRADABLE && (ia->create || ia->upgrade))
        return db_upgrade(txn, ia, version);
    if (version == DB_SCHEMA_UPGRADABLE) {
        ia->want_upgrade = 1;
        return db_txn_fail(txn, "%s/data.mdb: schema version %u needs an upgrade, which "
                           "master makes when it starts", txn->db->dir, version);
    }
    if (version != DB_SCHEMA_VERSION)
        return db_txn_fail(txn, "%s/data.mdb: schema version %u, this program knows %u",
                           txn->db->dir, version, DB_SCHEMA_VERSION);
    for (int i = 0; i < DBX_COUNT; i++)
        if (dbx_table[i].since > DB_SCHEMA_UPGRADABLE && txn->db->dbi[i] == 0)
            return db_txn_fail(txn, "%s/data.mdb: no %s database: not a mailcore database",
                               txn->db->dir, dbx_table[i].name);
    return 0;
}

/* After EACCES/EPERM: say which file is not ours to open, and why. */
static void explain_access(const char *dir, int rc, char *err, size_t errlen)
{
    static const char *const names[] = {"data.mdb", "lock.mdb", ""};
    char path[4096];
    struct stat st;

    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        int n = snprintf(path, sizeof path, "%s%s%s", dir, names[i][0] ? "/" : "", names[i]);

        if (n < 0 || (size_t)n >= sizeof path)
            break;
        if (stat(path, &st) != 0)
            continue;
        if (faccessat(AT_FDCWD, path, (names[i][0] ? R_OK | W_OK : W_OK | X_OK), AT_EACCESS) == 0)
            continue;
        snprintf(err, errlen,
                 "%s: permission denied: owned by uid %u gid %u mode %04o, this process "
                 "runs as uid %u gid %u; wrong ownership: it must belong to the user the "
                 "mail daemons run as",
                 path, (unsigned)st.st_uid, (unsigned)st.st_gid, (unsigned)(st.st_mode & 07777),
                 (unsigned)geteuid(), (unsigned)getegid());
        return;
    }
    snprintf(err, errlen, "%s: cannot open the database: %s", dir, mdb_strerror(rc));
}

static int chown_path(const char *path, uid_t uid, gid_t gid, char *err, size_t errlen)
{
    struct stat st;

    if (lstat(path, &st) != 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    if (st.st_uid == uid && (gid == (gid_t)-1 || st.st_gid == gid))
        return 0;
    if (lchown(path, uid, gid) != 0) {
        snprintf(err, errlen, "%s: chown to %u: %s", path, (unsigned)uid, strerror(errno));
        return -1;
    }
    return 0;
}

static int fix_ownership(const struct db *db, int made_dir, uid_t uid, gid_t gid, char *err,
                         size_t errlen)
{
    char path[4096];

    if (uid == (uid_t)-1 || geteuid() != 0)
        return 0;
    if (made_dir && chown_path(db->dir, uid, gid, err, errlen) != 0)
        return -1;
    for (int i = 0; i < 2; i++) {
        int n = snprintf(path, sizeof path, "%s/%s", db->dir, i == 0 ? "data.mdb" : "lock.mdb");

        if (n < 0 || (size_t)n >= sizeof path) {
            snprintf(err, errlen, "%s: path too long", db->dir);
            return -1;
        }
        if (chown_path(path, uid, gid, err, errlen) != 0)
            return -1;
    }
    return 0;
}

static int prepare_dir(const char *dir, int create, int *made_dir, char *err, size_t errlen)
{
    struct stat st;
    char path[4096];
    int n;

    *made_dir = 0;
    if (stat(dir, &st) != 0) {
        if (errno != ENOENT || !create) {
            snprintf(err, errlen, "%s: %s", dir, strerror(errno));
            return -1;
        }
        if (mkdir(dir, 0700) != 0) {
            snprintf(err, errlen, "%s: mkdir: %s", dir, strerror(errno));
            return -1;
        }
        *made_dir = 1;
        return 0;
    }
    if (!S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "%s: not a directory", dir);
        return -1;
    }
    n = snprintf(path, sizeof path, "%s/data.mdb", dir);
    if (n < 0 || (size_t)n >= sizeof path) {
        snprintf(err, errlen, "%s: path too long", dir);
        return -1;
    }
    if (!create && stat(path, &st) != 0) {
        snprintf(err, errlen, "%s: %s%s", path, strerror(errno),
                 errno == ENOENT ? " (no database yet: mailctl creates it)" : "");
        return -1;
    }
    return 0;
}

/* mdb_env_open()'s flags.  Read-only without lock.mdb: no process has the
 * environment open (each one makes lock.mdb), so it is read without locks
 * rather than have a lock file made (see db_open_readonly). */
static unsigned env_flags(const char *dir, int readonly)
{
    char path[4096];

    if (!readonly)
        return MDB_NOTLS;
    snprintf(path, sizeof path, "%s/lock.mdb", dir);
    return MDB_NOTLS | MDB_RDONLY | (access(path, F_OK) == 0 ? 0u : MDB_NOLOCK);
}

static struct db *open_env(const char *dir, int create, int readonly, uid_t owner_uid,
                           gid_t owner_gid, char *err, size_t errlen)
{
    struct db *db;
    struct init_arg ia = {.create = create};
    size_t want = mapsize_wanted();
    int made_dir, rc, dead;

    if (strlen(dir) > 4000) {
        snprintf(err, errlen, "%s: path too long", dir);
        return NULL;
    }
    if (prepare_dir(dir, create, &made_dir, err, errlen) != 0)
        return NULL;
    if ((db = calloc(1, sizeof *db + strlen(dir) + 1)) == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    memcpy(db->dir, dir, strlen(dir) + 1);
    if ((rc = mdb_env_create(&db->env)) != 0) {
        snprintf(err, errlen, "lmdb: %s", mdb_strerror(rc));
        free(db);
        return NULL;
    }
    if ((rc = mdb_env_set_maxdbs(db->env, DBX_COUNT + 4)) != 0 ||
        (rc = mdb_env_set_maxreaders(db->env, 512)) != 0 ||
        (rc = mdb_env_set_mapsize(db->env, want)) != 0) {
        snprintf(err, errlen, "lmdb: %s", mdb_strerror(rc));
        goto fail;
    }
    rc = mdb_env_open(db->env, dir, env_flags(dir, readonly), 0600);
    if (rc == EACCES || rc == EPERM) {
        explain_access(dir, rc, err, errlen);
        goto fail;
    }
    if (rc != 0) {
        snprintf(err, errlen, "%s: cannot open the database: %s", dir, mdb_strerror(rc));
        goto fail;
    }
    if (fix_ownership(db, made_dir, owner_uid, owner_gid, err, errlen) != 0)
        goto fail;
    /* Open took our size over the file's; take the largest map any process
     * has used (it is in the meta page), but no less than we asked for. */
    if ((rc = mdb_env_set_mapsize(db->env, 0)) != 0 ||
        (db_map_size(db) < want && (rc = mdb_env_set_mapsize(db->env, want)) != 0)) {
        snprintf(err, errlen, "%s: lmdb set mapsize: %s", dir, mdb_strerror(rc));
        goto fail;
    }
    /* Reader slots of processes that died (kill -9) would pin old pages. */
    if ((rc = mdb_reader_check(db->env, &dead)) != 0) {
        snprintf(err, errlen, "%s: lmdb reader check: %s", dir, mdb_strerror(rc));
        goto fail;
    }
    rc = create ? db_write(db, db_init_txn, &ia, err, errlen)
                : db_read(db, db_init_txn, &ia, err, errlen);
    if (rc != 0 && ia.want_upgrade && !readonly) {
        ia.upgrade = 1;
        rc = db_write(db, db_init_txn, &ia, err, errlen);
    }
    if (rc != 0)
        goto fail;
    if (ia.upgraded_from)
        db->upgraded_from = ia.upgraded_from;
    return db;
fail:
    mdb_env_close(db->env);
    free(db);
    return NULL;
}

struct db *db_open(const char *dir, int create, uid_t owner_uid, gid_t owner_gid, char *err,
                   size_t errlen)
{
    return open_env(dir, create, 0, owner_uid, owner_gid, err, errlen);
}

struct db *db_open_readonly(const char *dir, char *err, size_t errlen)
{
    return open_env(dir, 0, 1, (uid_t)-1, (gid_t)-1, err, errlen);
}

void db_close(struct db *db)
{
    if (db == NULL)
        return;
    db_sync(db);                        /* lazy commits reach the disk */
    mdb_env_close(db->env);
    free(db);
}
