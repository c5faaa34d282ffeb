/*
 * db_imap.c - what IMAP needs beyond delivery: flag and keyword updates,
 * expunge, mailbox rename and delete, \Recent bookkeeping, subscriptions
 * and the parsed-structure cache.  Record layouts are at the top of db.c.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "db_internal.h"

#define MBOX_KEY_MAX (DB_NAME_MAX + 1 + DB_MBOX_NAME_MAX)

static void count_seen(struct db_mailbox *mb, uint32_t old_flags, uint32_t new_flags)
{
    int was = (old_flags & DB_FLAG_SEEN) != 0, is = (new_flags & DB_FLAG_SEEN) != 0;

    if (was && !is)
        mb->unseen++;
    else if (!was && is && mb->unseen > 0)
        mb->unseen--;
}

int db_message_update(struct db_txn *txn, uint32_t mailbox_id, uint32_t uid, uint32_t flags,
                      uint64_t keywords, uint64_t *modseq)
{
    struct db_mailbox mb;
    struct db_message m;
    int rc;

    if ((rc = db_mailbox_by_id(txn, mailbox_id, &mb)) != 0 ||
        (rc = db_message_get(txn, mailbox_id, uid, &m)) != 0)
        return rc;
    count_seen(&mb, m.flags, flags);
    m.flags = flags;
    m.keywords = keywords;
    m.modseq = ++mb.highestmodseq;
    if ((rc = dbx_message_put(txn, mailbox_id, &m, 0)) != 0 ||
        (rc = dbx_mailbox_put(txn, &mb, 0)) != 0)
        return rc;
    if (modseq)
        *modseq = m.modseq;
    return 0;
}

int db_message_expunge(struct db_txn *txn, uint32_t mailbox_id, uint32_t uid,
                       void (*file_dead)(uint64_t file_id, void *arg), void *arg)
{
    struct db_mailbox mb;
    struct db_message m;
    unsigned char key[8];
    int rc;

    if ((rc = db_mailbox_by_id(txn, mailbox_id, &mb)) != 0 ||
        (rc = db_message_get(txn, mailbox_id, uid, &m)) != 0)
        return rc;
    dbx_be32(key, mailbox_id);
    dbx_be32(key + 4, uid);
    if ((rc = dbx_del(txn, DBX_MESSAGES, key, sizeof key)) != 0)
        return rc;
    if (mb.messages > 0)
        mb.messages--;
    if (!(m.flags & DB_FLAG_SEEN) && mb.unseen > 0)
        mb.unseen--;
    mb.size = mb.size >= m.size ? mb.size - m.size : 0;
    mb.highestmodseq++;
    if ((rc = dbx_mailbox_put(txn, &mb, 0)) != 0)
        return rc;
    return dbx_file_unref(txn, m.file_id, file_dead, arg);
}

struct from_each {
    uint32_t first;
    int (*cb)(const struct db_message *m, void *arg);
    void *arg;
};

static int from_fn(const struct db_message *m, void *arg)
{
    struct from_each *f = arg;

    return m->uid < f->first ? 0 : f->cb(m, f->arg);
}

int db_message_foreach_from(struct db_txn *txn, uint32_t mailbox_id, uint32_t first_uid,
                            int (*cb)(const struct db_message *m, void *arg), void *arg)
{
    struct from_each f = {first_uid, cb, arg};

    /* A full scan that skips early uids: the uids below first_uid are what
     * a session already has, usually a short stretch to decode. */
    return db_message_foreach(txn, mailbox_id, from_fn, &f);
}

int db_mailbox_set_recent(struct db_txn *txn, uint32_t mailbox_id, uint32_t recent_uid)
{
    struct db_mailbox mb;
    int rc = db_mailbox_by_id(txn, mailbox_id, &mb);

    if (rc != 0)
        return rc;
    mb.recent_uid = recent_uid;
    return dbx_mailbox_put(txn, &mb, 0);
}

int db_mailbox_delete(struct db_txn *txn, const char *user, const char *name,
                      void (*file_dead)(uint64_t file_id, void *arg), void *arg)
{
    struct db_mailbox mb;
    char key[MBOX_KEY_MAX];
    size_t klen;
    int rc;

    if ((rc = db_mailbox_get(txn, user, name, &mb)) != 0)
        return rc;
    if ((rc = dbx_mailbox_purge(txn, mb.id, file_dead, arg)) != 0)
        return rc;
    if (dbx_mailbox_key(key, sizeof key, mb.user, mb.name, &klen) != 0)
        return db_txn_fail(txn, "mailbox name too long");
    return dbx_del(txn, DBX_MAILBOXES, key, klen);
}

int db_mailbox_rename(struct db_txn *txn, const char *user, const char *from, const char *to)
{
    struct db_mailbox mb, other;
    char key[MBOX_KEY_MAX];
    unsigned char idkey[4];
    size_t klen;
    int rc;

    if ((rc = db_mailbox_get(txn, user, from, &mb)) != 0)
        return rc;
    rc = db_mailbox_get(txn, user, to, &other);
    if (rc == 0)
        return dbx_note(txn, DB_EXISTS, "mailbox %s exists", to);
    if (rc != DB_NOTFOUND)
        return rc;
    if (dbx_mailbox_key(key, sizeof key, mb.user, mb.name, &klen) != 0 ||
        (rc = dbx_del(txn, DBX_MAILBOXES, key, klen)) != 0)
        return rc ? rc : db_txn_fail(txn, "mailbox name too long");
    if (dbx_mailbox_name_canon(to, mb.name) != 0 ||
        dbx_mailbox_key(key, sizeof key, mb.user, mb.name, &klen) != 0)
        return db_txn_fail(txn, "invalid mailbox name");
    if ((rc = dbx_mailbox_put(txn, &mb, MDB_NOOVERWRITE)) != 0)
        return rc;
    dbx_be32(idkey, mb.id);
    return dbx_put(txn, DBX_MBOXIDS, idkey, sizeof idkey, key, klen, 0);
}

/* Keywords. */

struct kw_find {
    const char *name;
    int found;
    unsigned index;
    uint64_t used;
};

static int kw_fn(struct db_txn *txn, const MDB_val *k, const MDB_val *v, int *del, void *arg)
{
    struct kw_find *f = arg;
    char name[DB_KEYWORD_LEN + 1];
    struct dbx_dec d;
    unsigned idx;

    (void)del;
    if (k->mv_size != 5)
        return dbx_corrupt(txn, "keywords");
    idx = ((const unsigned char *)k->mv_data)[4];
    dbx_dec_init(&d, v, DBX_RECORD_V1);
    dbx_dec_str(&d, name, sizeof name);
    if (dbx_dec_done(&d) != 0 || idx >= DB_KEYWORDS_MAX)
        return dbx_corrupt(txn, "keywords");
    f->used |= 1ull << idx;
    if (!f->found && strcasecmp(name, f->name) == 0) {
        f->found = 1;
        f->index = idx;
    }
    return 0;
}

int db_keyword_index(struct db_txn *txn, uint32_t mailbox_id, const char *name, int create,
                     unsigned *index)
{
    struct kw_find f = {.name = name};
    unsigned char key[5];
    struct dbx_enc e;
    int rc;

    if (name[0] == '\0' || strlen(name) > DB_KEYWORD_LEN)
        return db_txn_fail(txn, "invalid keyword");
    dbx_be32(key, mailbox_id);
    if ((rc = dbx_scan(txn, DBX_KEYWORDS, key, 4, kw_fn, &f)) != 0)
        return rc;
    if (f.found) {
        *index = f.index;
        return 0;
    }
    if (!create)
        return DB_NOTFOUND;
    for (unsigned i = 0; i < DB_KEYWORDS_MAX; i++)
        if (!(f.used & (1ull << i))) {
            key[4] = (unsigned char)i;
            dbx_enc_init(&e, DBX_RECORD_V1);
            dbx_enc_str(&e, name);
            if ((rc = dbx_put(txn, DBX_KEYWORDS, key, sizeof key, e.buf, e.len, 0)) != 0)
                return rc;
            *index = i;
            return 0;
        }
    return db_txn_fail(txn, "mailbox has %d keywords already", DB_KEYWORDS_MAX);
}

struct kw_each {
    int (*cb)(unsigned index, const char *name, void *arg);
    void *arg;
};

static int kw_each_fn(struct db_txn *txn, const MDB_val *k, const MDB_val *v, int *del, void *arg)
{
    struct kw_each *e = arg;
    char name[DB_KEYWORD_LEN + 1];
    struct dbx_dec d;

    (void)del;
    if (k->mv_size != 5)
        return dbx_corrupt(txn, "keywords");
    dbx_dec_init(&d, v, DBX_RECORD_V1);
    dbx_dec_str(&d, name, sizeof name);
    if (dbx_dec_done(&d) != 0)
        return dbx_corrupt(txn, "keywords");
    return e->cb(((const unsigned char *)k->mv_data)[4], name, e->arg);
}

int db_keyword_foreach(struct db_txn *txn, uint32_t mailbox_id,
                       int (*cb)(unsigned index, const char *name, void *arg), void *arg)
{
    struct kw_each e = {cb, arg};
    unsigned char key[4];

    dbx_be32(key, mailbox_id);
    return dbx_scan(txn, DBX_KEYWORDS, key, sizeof key, kw_each_fn, &e);
}

/* Subscriptions. */

int db_subscription_set(struct db_txn *txn, const char *user, const char *name, int on)
{
    char key[MBOX_KEY_MAX], canon[DB_MBOX_NAME_MAX + 1];
    unsigned char v1 = DBX_RECORD_V1;
    size_t klen;
    int rc;

    if (dbx_mailbox_name_canon(name, canon) != 0 ||
        dbx_mailbox_key(key, sizeof key, user, canon, &klen) != 0)
        return db_txn_fail(txn, "invalid mailbox name");
    if (on)
        return dbx_put(txn, DBX_SUBSCRIPTIONS, key, klen, &v1, 1, 0);
    rc = dbx_del(txn, DBX_SUBSCRIPTIONS, key, klen);
    return rc == DB_NOTFOUND ? 0 : rc;
}

struct sub_each {
    size_t plen;
    int (*cb)(const char *name, void *arg);
    void *arg;
};

static int sub_fn(struct db_txn *txn, const MDB_val *k, const MDB_val *v, int *del, void *arg)
{
    struct sub_each *e = arg;
    char name[DB_MBOX_NAME_MAX + 1];

    (void)v, (void)del;
    if (dbx_key_str(k, e->plen, k->mv_size - e->plen, name, sizeof name) != 0)
        return dbx_corrupt(txn, "subscriptions");
    return e->cb(name, e->arg);
}

int db_subscription_foreach(struct db_txn *txn, const char *user,
                            int (*cb)(const char *name, void *arg), void *arg)
{
    char prefix[DB_NAME_MAX + 1];
    size_t n = strlen(user);
    struct sub_each e = {n + 1, cb, arg};

    if (n == 0 || n > DB_NAME_MAX)
        return 0;
    memcpy(prefix, user, n + 1);
    return dbx_scan(txn, DBX_SUBSCRIPTIONS, prefix, n + 1, sub_fn, &e);
}

/* The structure cache: v1, then three u32-length blobs. */

int db_cache_put(struct db_txn *txn, uint64_t file_id, const struct db_cache *c)
{
    size_t len = 1 + 12 + c->envelope_len + c->bodystructure_len + c->body_len;
    unsigned char key[8], *buf = malloc(len), *p;
    const char *parts[3] = {c->envelope, c->bodystructure, c->body};
    size_t lens[3] = {c->envelope_len, c->bodystructure_len, c->body_len};
    int rc;

    if (buf == NULL)
        return db_txn_fail(txn, "out of memory");
    p = buf;
    *p++ = DBX_RECORD_V1;
    for (int i = 0; i < 3; i++) {
        uint32_t l = (uint32_t)lens[i];
        memcpy(p, &l, 4);       /* little-endian hosts only, as the rest of the codec */
        p += 4;
        memcpy(p, parts[i], lens[i]);
        p += lens[i];
    }
    dbx_be64(key, file_id);
    rc = dbx_put(txn, DBX_CACHE, key, sizeof key, buf, len, 0);
    free(buf);
    return rc;
}

int db_cache_get(struct db_txn *txn, uint64_t file_id, struct db_cache *out)
{
    unsigned char key[8];
    const unsigned char *p, *end;
    const char **ptrs[3] = {&out->envelope, &out->bodystructure, &out->body};
    size_t *lens[3] = {&out->envelope_len, &out->bodystructure_len, &out->body_len};
    MDB_val v;
    int rc;

    dbx_be64(key, file_id);
    if ((rc = dbx_get(txn, DBX_CACHE, key, sizeof key, &v)) != 0)
        return rc;
    p = v.mv_data;
    end = p + v.mv_size;
    if (v.mv_size < 1 || *p++ != DBX_RECORD_V1)
        return dbx_corrupt(txn, "cache");
    for (int i = 0; i < 3; i++) {
        uint32_t l;
        if (end - p < 4)
            return dbx_corrupt(txn, "cache");
        memcpy(&l, p, 4);
        p += 4;
        if ((size_t)(end - p) < l)
            return dbx_corrupt(txn, "cache");
        *ptrs[i] = (const char *)p;
        *lens[i] = l;
        p += l;
    }
    return p == end ? 0 : dbx_corrupt(txn, "cache");
}

struct uid_list {
    uint32_t *uids;
    size_t n, cap;
};

static int collect_uid(const struct db_message *m, void *arg)
{
    struct uid_list *l = arg;

    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        uint32_t *p = realloc(l->uids, cap * sizeof *p);
        if (p == NULL)
            return -1;
        l->uids = p;
        l->cap = cap;
    }
    l->uids[l->n++] = m->uid;
    return 0;
}

/* Failed logins. */

#define AUTHFAIL_ADDR_MAX 64
#define AUTHFAIL_PRUNE 8        /* expired entries removed per noted failure */

#define AUTHFAIL_VISIT 64        /* entries looked at per noted failure */
#define PRUNE_STOP 1000

struct prune {
    uint64_t now, ttl;
    unsigned left, visits;
};

static int prune_fn(struct db_txn *txn, const MDB_val *k, const MDB_val *v, int *del, void *arg)
{
    struct prune *p = arg;
    struct dbx_dec d;
    uint64_t last;

    (void)txn, (void)k;
    if (p->left == 0 || ++p->visits > AUTHFAIL_VISIT)
        return PRUNE_STOP;
    dbx_dec_init(&d, v, DBX_RECORD_V1);
    (void)dbx_dec_u32(&d);
    last = dbx_dec_u64(&d);
    if (dbx_dec_done(&d) != 0 || last + p->ttl < p->now) {
        *del = 1;
        p->left--;
    }
    return 0;
}

static int authfail_read(struct db_txn *txn, const char *addr, uint32_t *count, uint64_t *last)
{
    size_t len = strlen(addr);
    struct dbx_dec d;
    MDB_val v;
    int rc;

    if (len == 0 || len > AUTHFAIL_ADDR_MAX)
        return DB_NOTFOUND;
    if ((rc = dbx_get(txn, DBX_AUTHFAIL, addr, len, &v)) != 0)
        return rc;
    dbx_dec_init(&d, &v, DBX_RECORD_V1);
    *count = dbx_dec_u32(&d);
    *last = dbx_dec_u64(&d);
    return dbx_dec_done(&d) == 0 ? 0 : dbx_corrupt(txn, "authfail");
}

int db_authfail_get(struct db_txn *txn, const char *addr, uint32_t *count)
{
    uint64_t last;

    return authfail_read(txn, addr, count, &last);
}

int db_authfail_note(struct db_txn *txn, const char *addr, uint64_t now, uint64_t ttl,
                     uint32_t *count)
{
    struct prune p = {now, ttl, AUTHFAIL_PRUNE, 0};
    uint64_t last = 0;
    struct dbx_enc e;
    uint32_t n = 0;
    size_t len = strlen(addr);
    int rc;

    if (len == 0 || len > AUTHFAIL_ADDR_MAX)
        return db_txn_fail(txn, "client address too long");
    rc = authfail_read(txn, addr, &n, &last);
    if (rc != 0 && rc != DB_NOTFOUND)
        return rc;
    if (rc == DB_NOTFOUND || last + ttl < now)
        n = 0;
    if (n < UINT32_MAX)
        n++;
    /* Make room first: old entries of other addresses go. */
    rc = dbx_scan(txn, DBX_AUTHFAIL, "", 0, prune_fn, &p);
    if (rc != 0 && rc != PRUNE_STOP)
        return rc;
    dbx_enc_init(&e, DBX_RECORD_V1);
    dbx_enc_u32(&e, n);
    dbx_enc_u64(&e, now);
    if ((rc = dbx_put(txn, DBX_AUTHFAIL, addr, len, e.buf, e.len, 0)) != 0)
        return rc;
    *count = n;
    return 0;
}

int db_authfail_clear(struct db_txn *txn, const char *addr)
{
    size_t len = strlen(addr);

    if (len == 0 || len > AUTHFAIL_ADDR_MAX)
        return DB_NOTFOUND;
    return dbx_del(txn, DBX_AUTHFAIL, addr, len);
}

int db_mailbox_set_noselect(struct db_txn *txn, const char *user, const char *name, int on,
                            void (*file_dead)(uint64_t file_id, void *arg), void *arg)
{
    struct db_mailbox mb;
    struct uid_list l = {0};
    int rc = db_mailbox_get(txn, user, name, &mb);

    if (rc != 0)
        return rc;
    if (on) {
        /* Its messages go; the name stays for its children (RFC 3501 6.3.4). */
        if ((rc = db_message_foreach(txn, mb.id, collect_uid, &l)) != 0) {
            free(l.uids);
            return rc < 0 ? db_txn_fail(txn, "out of memory") : rc;
        }
        for (size_t i = 0; i < l.n && rc == 0; i++)
            rc = db_message_expunge(txn, mb.id, l.uids[i], file_dead, arg);
        free(l.uids);
        if (rc != 0 || (rc = db_mailbox_by_id(txn, mb.id, &mb)) != 0)
            return rc;
        mb.special |= DB_SPECIAL_NOSELECT;
    } else {
        mb.special &= ~(uint32_t)DB_SPECIAL_NOSELECT;
    }
    return dbx_mailbox_put(txn, &mb, 0);
}

/* Sent copies by Message-ID. */

static size_t sentid_key(char *key, size_t max, const char *user, const char *msgid)
{
    size_t u = strlen(user), m = strlen(msgid);

    if (u == 0 || u > DB_NAME_MAX || m == 0 || m > DB_MSGID_MAX || u + 1 + m > max)
        return 0;
    memcpy(key, user, u);
    key[u] = '\0';
    memcpy(key + u + 1, msgid, m);
    return u + 1 + m;
}

struct sent_prune {
    uint64_t now;
    unsigned visits;
};

static int sent_prune_fn(struct db_txn *txn, const MDB_val *k, const MDB_val *v, int *del,
                         void *arg)
{
    struct sent_prune *p = arg;
    struct dbx_dec d;
    uint64_t when;

    (void)txn, (void)k;
    if (++p->visits > AUTHFAIL_VISIT)
        return PRUNE_STOP;
    dbx_dec_init(&d, v, DBX_RECORD_V1);
    (void)dbx_dec_u32(&d);
    (void)dbx_dec_u32(&d);
    when = dbx_dec_u64(&d);
    if (dbx_dec_done(&d) != 0 || when + DB_SENTID_TTL < p->now)
        *del = 1;
    return 0;
}

int db_sentid_put(struct db_txn *txn, const char *user, const char *msgid, uint32_t mailbox_id,
                  uint32_t uid, uint64_t now)
{
    char key[DB_NAME_MAX + 2 + DB_MSGID_MAX];
    size_t klen = sentid_key(key, sizeof key, user, msgid);
    struct sent_prune p = {now, 0};
    struct dbx_enc e;
    int rc;

    if (klen == 0)
        return 0;                       /* no usable Message-ID: nothing to remember */
    rc = dbx_scan(txn, DBX_SENTIDS, "", 0, sent_prune_fn, &p);
    if (rc != 0 && rc != PRUNE_STOP)
        return rc;
    dbx_enc_init(&e, DBX_RECORD_V1);
    dbx_enc_u32(&e, mailbox_id);
    dbx_enc_u32(&e, uid);
    dbx_enc_u64(&e, now);
    return dbx_put(txn, DBX_SENTIDS, key, klen, e.buf, e.len, 0);
}

int db_sentid_get(struct db_txn *txn, const char *user, const char *msgid, uint64_t now,
                  uint32_t *mailbox_id, uint32_t *uid)
{
    char key[DB_NAME_MAX + 2 + DB_MSGID_MAX];
    size_t klen = sentid_key(key, sizeof key, user, msgid);
    struct dbx_dec d;
    uint64_t when;
    MDB_val v;
    int rc;

    if (klen == 0)
        return DB_NOTFOUND;
    if ((rc = dbx_get(txn, DBX_SENTIDS, key, klen, &v)) != 0)
        return rc;
    dbx_dec_init(&d, &v, DBX_RECORD_V1);
    *mailbox_id = dbx_dec_u32(&d);
    *uid = dbx_dec_u32(&d);
    when = dbx_dec_u64(&d);
    if (dbx_dec_done(&d) != 0)
        return dbx_corrupt(txn, "sentids");
    return when + DB_SENTID_TTL < now ? DB_NOTFOUND : 0;
}
