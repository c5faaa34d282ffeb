/*
 * db_mailbox.c - mailboxes, messages and message-file references in the
 * LMDB environment.  See db.h for the interface and the top of db.c for the
 * record layouts (mailboxes, mboxids, messages, files).
 *
 * A mailbox is found by "user NUL name" or, through mboxids, by its id.
 * Message keys are the mailbox id and the uid, both big-endian, so one
 * mailbox's messages are a contiguous range in uid order.
 */
#include <string.h>
#include <strings.h>

#include "db_internal.h"

#define MBOX_KEY_MAX (DB_NAME_MAX + 1 + DB_MBOX_NAME_MAX)

/* A valid mailbox name in canonical form: 1-255 bytes, no control
 * characters; INBOX is case-insensitive (RFC 3501 5.1) and spelt "INBOX". */
int dbx_mailbox_name_canon(const char *name, char out[DB_MBOX_NAME_MAX + 1])
{
    size_t n = strlen(name);

    if (n == 0 || n > DB_MBOX_NAME_MAX)
        return -1;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)name[i] < 0x20 || name[i] == 0x7f)
            return -1;
    if (strcasecmp(name, "INBOX") == 0)
        name = "INBOX";
    memcpy(out, name, strlen(name) + 1);
    return 0;
}

static size_t mbox_key(char key[MBOX_KEY_MAX], const char *user, const char *name)
{
    if (strlen(user) > DB_NAME_MAX || strlen(name) > DB_MBOX_NAME_MAX)
        return 0;
    return dbx_key2(key, MBOX_KEY_MAX, user, name);
}

static int mbox_decode(struct db_txn *txn, const MDB_val *v, struct db_mailbox *m)
{
    struct dbx_dec d;

    dbx_dec_init(&d, v, DBX_RECORD_V1);
    m->id = dbx_dec_u32(&d);
    m->uidvalidity = dbx_dec_u32(&d);
    m->uidnext = dbx_dec_u32(&d);
    m->highestmodseq = dbx_dec_u64(&d);
    m->special = dbx_dec_u32(&d);
    m->subscribed = dbx_dec_u32(&d);
    m->messages = dbx_dec_u32(&d);
    m->unseen = dbx_dec_u32(&d);
    m->size = dbx_dec_u64(&d);
    m->recent_uid = dbx_dec_u32(&d);
    if (dbx_dec_done(&d) != 0)
        return dbx_corrupt(txn, "mailboxes");
    return 0;
}

static int mbox_put(struct db_txn *txn, const struct db_mailbox *m, unsigned flags)
{
    char key[MBOX_KEY_MAX];
    size_t klen = mbox_key(key, m->user, m->name);
    struct dbx_enc e;

    if (klen == 0)
        return db_txn_fail(txn, "mailbox name too long");
    dbx_enc_init(&e, DBX_RECORD_V1);
    dbx_enc_u32(&e, m->id);
    dbx_enc_u32(&e, m->uidvalidity);
    dbx_enc_u32(&e, m->uidnext);
    dbx_enc_u64(&e, m->highestmodseq);
    dbx_enc_u32(&e, m->special);
    dbx_enc_u32(&e, m->subscribed);
    dbx_enc_u32(&e, m->messages);
    dbx_enc_u32(&e, m->unseen);
    dbx_enc_u64(&e, m->size);
    dbx_enc_u32(&e, m->recent_uid);
    return dbx_put(txn, DBX_MAILBOXES, key, klen, e.buf, e.len, flags);
}

int dbx_mailbox_put(struct db_txn *txn, const struct db_mailbox *m, unsigned flags)
{
    return mbox_put(txn, m, flags);
}

int dbx_mailbox_key(char *key, size_t keymax, const char *user, const char *name, size_t *klen)
{
    if (keymax < MBOX_KEY_MAX)
        return -1;
    *klen = mbox_key(key, user, name);
    return *klen == 0 ? -1 : 0;
}

int db_mailbox_create(struct db_txn *txn, const char *user, const char *name, uint32_t special,
                      struct db_mailbox *out)
{
    struct db_mailbox m;
    struct db_user u;
    char key[MBOX_KEY_MAX];
    unsigned char idkey[4];
    size_t klen;
    MDB_val v;
    int rc;

    memset(&m, 0, sizeof m);
    if (dbx_mailbox_name_canon(name, m.name) != 0)
        return db_txn_fail(txn, "invalid mailbox name");
    if ((rc = db_user_get(txn, user, &u)) != 0)
        return rc;
    memcpy(m.user, u.name, sizeof m.user);
    if ((klen = mbox_key(key, m.user, m.name)) == 0)
        return db_txn_fail(txn, "mailbox name too long");
    if ((rc = dbx_get(txn, DBX_MAILBOXES, key, klen, &v)) == 0)
        return dbx_note(txn, DB_EXISTS, "mailbox %s of %s exists", m.name, m.user);
    if (rc != DB_NOTFOUND)
        return rc;
    if ((rc = dbx_counter_next(txn, "next_mailbox_id", &m.id)) != 0 ||
        (rc = dbx_uidvalidity_next(txn, &m.uidvalidity)) != 0)
        return rc;
    m.uidnext = 1;
    m.recent_uid = 1;
    m.highestmodseq = 1;
    m.special = special;
    m.subscribed = 1;
    if ((rc = mbox_put(txn, &m, MDB_NOOVERWRITE)) != 0)
        return rc;
    dbx_be32(idkey, m.id);
    rc = dbx_put(txn, DBX_MBOXIDS, idkey, sizeof idkey, key, klen, MDB_NOOVERWRITE);
    if (rc == DB_EXISTS)
        return dbx_corrupt(txn, "mboxids");
    if (rc != 0)
        return rc;
    if (out)
        *out = m;
    return 0;
}

/* The record under key; user and name are filled from the key. */
static int mbox_get_key(struct db_txn *txn, const void *key, size_t klen, struct db_mailbox *out)
{
    const char *k = key, *nul = memchr(key, '\0', klen);
    MDB_val kv = {klen, (void *)key}, v;
    int rc;

    if (nul == NULL)
        return dbx_corrupt(txn, "mboxids");
    if ((rc = dbx_get(txn, DBX_MAILBOXES, key, klen, &v)) != 0)
        return rc;
    memset(out, 0, sizeof *out);
    if (dbx_key_str(&kv, 0, (size_t)(nul - k), out->user, sizeof out->user) != 0 ||
        dbx_key_str(&kv, (size_t)(nul - k) + 1, klen - (size_t)(nul - k) - 1, out->name,
                    sizeof out->name) != 0)
        return dbx_corrupt(txn, "mailboxes");
    return mbox_decode(txn, &v, out);
}

int db_mailbox_get(struct db_txn *txn, const char *user, const char *name, struct db_mailbox *out)
{
    char canon[DB_MBOX_NAME_MAX + 1], key[MBOX_KEY_MAX];
    size_t klen;
    int rc;

    if (dbx_mailbox_name_canon(name, canon) != 0 || (klen = mbox_key(key, user, canon)) == 0)
        return dbx_note(txn, DB_NOTFOUND, "no such mailbox");
    rc = mbox_get_key(txn, key, klen, out);
    if (rc == DB_NOTFOUND)
        return dbx_note(txn, DB_NOTFOUND, "no mailbox %s of %s", canon, user);
    return rc;
}

int db_mailbox_by_id(struct db_txn *txn, uint32_t id, struct db_mailbox *out)
{
    unsigned char idkey[4];
    char key[MBOX_KEY_MAX];
    MDB_val v;
    int rc;

    dbx_be32(idkey, id);
    rc = dbx_get(txn, DBX_MBOXIDS, idkey, sizeof idkey, &v);
    if (rc == DB_NOTFOUND)
        return dbx_note(txn, DB_NOTFOUND, "no mailbox with id %u", id);
    if (rc != 0)
        return rc;
    if (v.mv_size > sizeof key)
        return dbx_corrupt(txn, "mboxids");
    memcpy(key, v.mv_data, v.mv_size); /* v dies with the next write */
    rc = mbox_get_key(txn, key, v.mv_size, out);
    if (rc == DB_NOTFOUND)
        return dbx_corrupt(txn, "mboxids");
    if (rc == 0 && out->id != id)
        return dbx_corrupt(txn, "mailboxes");
    return rc;
}

struct mbox_each {
    int (*cb)(const struct db_mailbox *m, void *arg);
    void *arg;
    const char *user;
    size_t plen; /* "user NUL" */
    void (*file_dead)(uint64_t file_id, void *arg);
};

static int mbox_each_fn(struct db_txn *txn, const MDB_val *k, const MDB_val *v, int *del, void *arg)
{
    struct mbox_each *me = arg;
    struct db_mailbox m;
    int rc;

    (void)del;
    memset(&m, 0, sizeof m);
    memcpy(m.user, me->user, me->plen);
    if (dbx_key_str(k, me->plen, k->mv_size - me->plen, m.name, sizeof m.name) != 0)
        return dbx_corrupt(txn, "mailboxes");
    if ((rc = mbox_decode(txn, v, &m)) != 0)
        return rc;
    return me->cb(&m, me->arg);
}

int db_mailbox_foreach(struct db_txn *txn, const char *user,
                       int (*cb)(const struct db_mailbox *m, void *arg), void *arg)
{
    struct mbox_each me = {.cb = cb, .arg = arg, .user = user};
    char prefix[DB_NAME_MAX + 1];
    size_t n = strlen(user);

    if (n == 0 || n > DB_NAME_MAX)
        return 0;
    memcpy(prefix, user, n + 1);
    me.plen = n + 1;
    return dbx_scan(txn, DBX_MAILBOXES, prefix, n + 1, mbox_each_fn, &me);
}

/* ---- files ---- */

static int file_get(struct db_txn *txn, uint64_t id, uint32_t *refs, uint64_t *size)
{
    unsigned char key[8];
    struct dbx_dec d;
    MDB_val v;
    int rc;

    dbx_be64(key, id);
    if ((rc = dbx_get(txn, DBX_FILES, key, sizeof key, &v)) != 0)
        return rc;
    dbx_dec_init(&d, &v, DBX_RECORD_V1);
    *refs = dbx_dec_u32(&d);
    *size = dbx_dec_u64(&d);
    if (dbx_dec_done(&d) != 0)
        return dbx_corrupt(txn, "files");
    return 0;
}

static int file_put(struct db_txn *txn, uint64_t id, uint32_t refs, uint64_t size, unsigned flags)
{
    unsigned char key[8];
    struct dbx_enc e;

    dbx_be64(key, id);
    dbx_enc_init(&e, DBX_RECORD_V1);
    dbx_enc_u32(&e, refs);
    dbx_enc_u64(&e, size);
    return dbx_put(txn, DBX_FILES, key, sizeof key, e.buf, e.len, flags);
}

int db_file_add(struct db_txn *txn, uint64_t file_id, uint64_t size)
{
    int rc = file_put(txn, file_id, 0, size, MDB_NOOVERWRITE);

    if (rc == DB_EXISTS)
        return dbx_note(txn, DB_EXISTS, "file %016llx exists", (unsigned long long)file_id);
    return rc;
}

int db_file_refs(struct db_txn *txn, uint64_t file_id, uint32_t *refs)
{
    uint64_t size;
    int rc = file_get(txn, file_id, refs, &size);

    if (rc == DB_NOTFOUND)
        return dbx_note(txn, DB_NOTFOUND, "no file %016llx", (unsigned long long)file_id);
    return rc;
}

/* Drop one reference; at zero the record goes and file_dead is told. */
int dbx_file_unref(struct db_txn *txn, uint64_t id,
                      void (*file_dead)(uint64_t file_id, void *arg), void *arg)
{
    unsigned char key[8];
    uint32_t refs;
    uint64_t size;
    int rc = file_get(txn, id, &refs, &size);

    if (rc == DB_NOTFOUND || (rc == 0 && refs == 0))
        return db_txn_fail(txn, "file %016llx: reference count already zero",
                           (unsigned long long)id);
    if (rc != 0)
        return rc;
    if (refs > 1)
        return file_put(txn, id, refs - 1, size, 0);
    dbx_be64(key, id);
    if ((rc = dbx_del(txn, DBX_FILES, key, sizeof key)) != 0)
        return rc;
    if (file_dead)
        file_dead(id, arg);
    return 0;
}

/* ---- messages ---- */

static void msg_key(unsigned char key[8], uint32_t mailbox_id, uint32_t uid)
{
    dbx_be32(key, mailbox_id);
    dbx_be32(key + 4, uid);
}

static int msg_decode(struct db_txn *txn, const MDB_val *v, struct db_message *m)
{
    struct dbx_dec d;

    dbx_dec_init(&d, v, DBX_RECORD_V1);
    m->flags = dbx_dec_u32(&d);
    m->file_id = dbx_dec_u64(&d);
    m->size = dbx_dec_u64(&d);
    m->internaldate = (int64_t)dbx_dec_u64(&d);
    m->modseq = dbx_dec_u64(&d);
    m->keywords = dbx_dec_u64(&d);
    if (dbx_dec_done(&d) != 0)
        return dbx_corrupt(txn, "messages");
    return 0;
}

int dbx_message_put(struct db_txn *txn, uint32_t mailbox_id, const struct db_message *m,
                    unsigned flags)
{
    unsigned char key[8];
    struct dbx_enc e;

    msg_key(key, mailbox_id, m->uid);
    dbx_enc_init(&e, DBX_RECORD_V1);
    dbx_enc_u32(&e, m->flags);
    dbx_enc_u64(&e, m->file_id);
    dbx_enc_u64(&e, m->size);
    dbx_enc_u64(&e, (uint64_t)m->internaldate);
    dbx_enc_u64(&e, m->modseq);
    dbx_enc_u64(&e, m->keywords);
    return dbx_put(txn, DBX_MESSAGES, key, sizeof key, e.buf, e.len, flags);
}

int db_message_add(struct db_txn *txn, uint32_t mailbox_id, struct db_message *m)
{
    struct db_mailbox mb;
    uint32_t refs;
    uint64_t size;
    int rc;

    if ((rc = db_mailbox_by_id(txn, mailbox_id, &mb)) != 0)
        return rc;
    rc = file_get(txn, m->file_id, &refs, &size);
    if (rc == DB_NOTFOUND)
        return db_txn_fail(txn, "message file %016llx has no files record",
                           (unsigned long long)m->file_id);
    if (rc != 0)
        return rc;
    if (mb.uidnext == 0 || mb.uidnext == UINT32_MAX)
        return db_txn_fail(txn, "mailbox %s of %s: uids exhausted", mb.name, mb.user);

    m->uid = mb.uidnext++;
    m->modseq = ++mb.highestmodseq;
    m->size = size;
    mb.messages++;
    if (!(m->flags & DB_FLAG_SEEN))
        mb.unseen++;
    mb.size += size;

    rc = dbx_message_put(txn, mailbox_id, m, MDB_NOOVERWRITE);
    if (rc == DB_EXISTS)
        return dbx_corrupt(txn, "mailboxes"); /* uidnext behind an existing uid */
    if (rc != 0 || (rc = mbox_put(txn, &mb, 0)) != 0)
        return rc;
    return file_put(txn, m->file_id, refs + 1, size, 0);
}

int db_message_get(struct db_txn *txn, uint32_t mailbox_id, uint32_t uid, struct db_message *m)
{
    unsigned char key[8];
    MDB_val v;
    int rc;

    msg_key(key, mailbox_id, uid);
    rc = dbx_get(txn, DBX_MESSAGES, key, sizeof key, &v);
    if (rc == DB_NOTFOUND)
        return dbx_note(txn, DB_NOTFOUND, "no message %u in mailbox %u", uid, mailbox_id);
    if (rc != 0)
        return rc;
    memset(m, 0, sizeof *m);
    m->uid = uid;
    return msg_decode(txn, &v, m);
}

struct msg_each {
    int (*cb)(const struct db_message *m, void *arg);
    void *arg;
    void (*file_dead)(uint64_t file_id, void *arg);
};

static int msg_each_fn(struct db_txn *txn, const MDB_val *k, const MDB_val *v, int *del, void *arg)
{
    struct msg_each *me = arg;
    struct db_message m;
    int rc;

    (void)del;
    if (k->mv_size != 8)
        return dbx_corrupt(txn, "messages");
    memset(&m, 0, sizeof m);
    m.uid = dbx_get_be32((const unsigned char *)k->mv_data + 4);
    if ((rc = msg_decode(txn, v, &m)) != 0)
        return rc;
    return me->cb(&m, me->arg);
}

int db_message_foreach(struct db_txn *txn, uint32_t mailbox_id,
                       int (*cb)(const struct db_message *m, void *arg), void *arg)
{
    struct msg_each me = {.cb = cb, .arg = arg};
    unsigned char prefix[4];

    dbx_be32(prefix, mailbox_id);
    return dbx_scan(txn, DBX_MESSAGES, prefix, sizeof prefix, msg_each_fn, &me);
}

/* ---- deleting a user's mailboxes ---- */

static int msg_del_fn(struct db_txn *txn, const MDB_val *k, const MDB_val *v, int *del, void *arg)
{
    struct msg_each *me = arg;
    struct db_message m;
    int rc;

    (void)k;
    if ((rc = msg_decode(txn, v, &m)) != 0)
        return rc;
    *del = 1;
    return dbx_file_unref(txn, m.file_id, me->file_dead, me->arg);
}

static int mbox_del_fn(struct db_txn *txn, const MDB_val *k, const MDB_val *v, int *del, void *arg)
{
    struct mbox_each *me = arg;
    struct db_mailbox m;
    int rc;

    (void)k;
    if ((rc = mbox_decode(txn, v, &m)) != 0)
        return rc;
    if ((rc = dbx_mailbox_purge(txn, m.id, me->file_dead, me->arg)) != 0)
        return rc;
    *del = 1;
    return 0;
}

static int del_fn(struct db_txn *txn, const MDB_val *k, const MDB_val *v, int *del, void *arg)
{
    (void)txn, (void)k, (void)v, (void)arg;
    *del = 1;
    return 0;
}

/* A mailbox's messages, keywords and id entry (not its mailboxes record). */
int dbx_mailbox_purge(struct db_txn *txn, uint32_t id,
                      void (*file_dead)(uint64_t file_id, void *arg), void *arg)
{
    struct msg_each msgs = {.arg = arg, .file_dead = file_dead};
    unsigned char idkey[4];
    int rc;

    dbx_be32(idkey, id);
    if ((rc = dbx_scan(txn, DBX_MESSAGES, idkey, sizeof idkey, msg_del_fn, &msgs)) != 0 ||
        (rc = dbx_scan(txn, DBX_KEYWORDS, idkey, sizeof idkey, del_fn, NULL)) != 0)
        return rc;
    rc = dbx_del(txn, DBX_MBOXIDS, idkey, sizeof idkey);
    return rc == DB_NOTFOUND ? dbx_corrupt(txn, "mboxids") : rc;
}

int dbx_mailboxes_del_user(struct db_txn *txn, const char *user,
                           void (*file_dead)(uint64_t file_id, void *arg), void *arg)
{
    struct mbox_each me = {.arg = arg, .user = user, .file_dead = file_dead};
    char prefix[DB_NAME_MAX + 1];
    size_t n = strlen(user);
    int rc;

    if (n == 0 || n > DB_NAME_MAX)
        return 0;
    memcpy(prefix, user, n + 1);
    me.plen = n + 1;
    rc = dbx_scan(txn, DBX_MAILBOXES, prefix, n + 1, mbox_del_fn, &me);
    if (rc == 0)
        rc = dbx_scan(txn, DBX_SUBSCRIPTIONS, prefix, n + 1, del_fn, NULL);
    return rc;
}
