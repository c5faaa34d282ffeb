/*
 * db_quota.c - the quotas database: each user's own storage limit, and the
 * usage (the sum of the user's mailboxes' sizes).  See db.h for the
 * interface and db.c for the record layout (schema 3); the policy that
 * combines the limit with the user_quota default is quota.c's.
 */
#include <string.h>

#include "db_internal.h"

int db_quota_set(struct db_txn *txn, const char *user, uint64_t limit)
{
    struct db_user u;
    struct dbx_enc e;
    int rc;

    if ((rc = db_user_get(txn, user, &u)) != 0)
        return rc;
    dbx_enc_init(&e, DBX_RECORD_V1);
    dbx_enc_u64(&e, limit);
    return dbx_put(txn, DBX_QUOTAS, u.name, strlen(u.name), e.buf, e.len, 0);
}

int db_quota_clear(struct db_txn *txn, const char *user)
{
    struct db_user u;
    int rc;

    if ((rc = db_user_get(txn, user, &u)) != 0)
        return rc;
    rc = dbx_del(txn, DBX_QUOTAS, u.name, strlen(u.name));
    return rc == DB_NOTFOUND ? 0 : rc;
}

int db_quota_get(struct db_txn *txn, const char *user, uint64_t *limit)
{
    struct dbx_dec d;
    MDB_val v;
    int rc = dbx_get(txn, DBX_QUOTAS, user, strlen(user), &v);

    if (rc != 0)
        return rc;
    dbx_dec_init(&d, &v, DBX_RECORD_V1);
    *limit = dbx_dec_u64(&d);
    if (dbx_dec_done(&d) != 0)
        return dbx_corrupt(txn, "quotas");
    return 0;
}

static int add_size(const struct db_mailbox *m, void *arg)
{
    uint64_t *sum = arg;

    *sum += m->size;
    return 0;
}

int db_quota_usage(struct db_txn *txn, const char *user, uint64_t *bytes)
{
    *bytes = 0;
    return db_mailbox_foreach(txn, user, add_size, bytes);
}

/* db_user_del's part: the user's own limit goes with the user. */
int dbx_quota_del_user(struct db_txn *txn, const char *user)
{
    int rc = dbx_del(txn, DBX_QUOTAS, user, strlen(user));

    return rc == DB_NOTFOUND ? 0 : rc;
}
