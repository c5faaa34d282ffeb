/*
 * quota.c - the storage quota policy and its arithmetic.  See quota.h.
 */
#include <string.h>

#include "mailcore/conf.h"
#include "mailcore/db.h"
#include "mailcore/quota.h"

int quota_get(struct db_txn *txn, const char *user, uint64_t default_limit, struct quota *q)
{
    int rc = db_quota_get(txn, user, &q->limit);

    q->own = rc == 0;
    if (rc == DB_NOTFOUND)
        q->limit = default_limit;
    else if (rc != 0)
        return rc;
    return db_quota_usage(txn, user, &q->usage);
}

int quota_is_over(const struct quota *q)
{
    return q->limit != 0 && q->usage >= q->limit;
}

int quota_would_exceed(const struct quota *q, uint64_t add)
{
    if (q->limit == 0)
        return 0;
    if (q->usage >= q->limit)
        return add > 0 || q->usage > q->limit;
    return add > q->limit - q->usage;
}

int quota_check_add(struct db_txn *txn, const char *user, uint64_t default_limit, uint64_t add)
{
    struct quota q = {.limit = default_limit};
    int rc;

    if (add == 0)
        return 0;
    rc = db_quota_get(txn, user, &q.limit);
    if (rc != 0 && rc != DB_NOTFOUND)
        return rc;
    if (q.limit == 0)
        return 0; /* unlimited: no need to add up the usage */
    if ((rc = db_quota_usage(txn, user, &q.usage)) != 0)
        return rc;
    return quota_would_exceed(&q, add) ? QUOTA_OVER : 0;
}

uint64_t quota_kib_usage(const struct quota *q)
{
    return q->usage / 1024 + (q->usage % 1024 != 0);
}

uint64_t quota_kib_limit(const struct quota *q)
{
    return q->limit / 1024;
}

int quota_parse_setting(const char *s, uint64_t *limit, int *own)
{
    if (strcmp(s, "default") == 0) {
        *limit = 0;
        *own = 0;
        return 0;
    }
    *own = 1;
    if (strcmp(s, "unlimited") == 0) {
        *limit = 0;
        return 0;
    }
    if (conf_parse_size(s, limit) != 0 || *limit == 0)
        return -1;
    return 0;
}
