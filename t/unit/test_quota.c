/*
 * test_quota.c - storage quota: the arithmetic (quota.h), the quotas
 * database (db_quota.c), the commit's decisions (store.c: KEEP refuses when
 * nothing fits, SKIP leaves a copy out, expunge frees at once), and the
 * in-place upgrade of a schema-2 environment.
 */
#include <lmdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "mailcore/db.h"
#include "mailcore/quota.h"
#include "mailcore/store.h"

static char err[512];

/* ---- arithmetic ---- */

static void test_quota_would_exceed_table(void)
{
    static const struct {
        uint64_t limit, usage, add;
        int over, exceed;
    } cases[] = {
        {0, 0, 0, 0, 0}, /* unlimited */
        {0, UINT64_MAX, UINT64_MAX, 0, 0},
        {100, 0, 100, 0, 0}, /* exactly full fits */
        {100, 0, 101, 0, 1},
        {100, 99, 1, 0, 0},
        {100, 99, 2, 0, 1},
        {100, 100, 0, 1, 0}, /* full: nothing more */
        {100, 100, 1, 1, 1},
        {100, 150, 0, 1, 1},         /* already over */
        {100, 50, UINT64_MAX, 0, 1}, /* no overflow */
        {UINT64_MAX, UINT64_MAX - 1, 1, 0, 0},
    };

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct quota q = {cases[i].limit, cases[i].usage, 0};

        CHECK_INT(quota_is_over(&q), cases[i].over);
        CHECK_INT(quota_would_exceed(&q, cases[i].add), cases[i].exceed);
    }
}

static void test_quota_kib_rounding(void)
{
    struct quota q = {1024 * 100 + 1023, 0, 1};

    CHECK_INT(quota_kib_usage(&q), 0);
    CHECK_INT(quota_kib_limit(&q), 100); /* limit rounds down */
    q.usage = 1;
    CHECK_INT(quota_kib_usage(&q), 1); /* usage rounds up */
    q.usage = 2048;
    CHECK_INT(quota_kib_usage(&q), 2);
    q.usage = 2049;
    CHECK_INT(quota_kib_usage(&q), 3);
}

static void test_quota_parse_setting_table(void)
{
    static const struct {
        const char *in;
        int rc;
        uint64_t limit;
        int own;
    } cases[] = {
        {"default", 0, 0, 0},
        {"unlimited", 0, 0, 1},
        {"500M", 0, 500ull << 20, 1},
        {"2g", 0, 2ull << 30, 1},
        {"10k", 0, 10240, 1},
        {"4096", 0, 4096, 1},
        {"0", -1, 0, 0},
        {"", -1, 0, 0},
        {"12x", -1, 0, 0},
        {"-1", -1, 0, 0},
        {"10 M", -1, 0, 0},
        {"Default", -1, 0, 0},
        {"99999999999999999999", -1, 0, 0},
    };

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint64_t limit = 12345;
        int own = -1;
        int rc = quota_parse_setting(cases[i].in, &limit, &own);

        CHECK_INT(rc, cases[i].rc);
        if (rc == 0 && cases[i].rc == 0) {
            CHECK_INT(limit, cases[i].limit);
            CHECK_INT(own, cases[i].own);
        }
    }
}

/* ---- database and store ---- */

struct env {
    char dir[64];
    struct db *db;
    struct store *s;
};

static int env_new(struct env *e)
{
    snprintf(e->dir, sizeof e->dir, "/tmp/mc-test-quota-XXXXXX");
    if (mkdtemp(e->dir) == NULL)
        return -1;
    e->db = db_open(e->dir, 1, (uid_t)-1, (gid_t)-1, err, sizeof err);
    if (e->db == NULL) {
        fprintf(stderr, "db_open: %s\n", err);
        return -1;
    }
    e->s = store_open(e->db, e->dir, err, sizeof err);
    return e->s ? 0 : -1;
}

static void env_free(struct env *e)
{
    char cmd[128];

    store_close(e->s);
    db_close(e->db);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", e->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", e->dir);
}

static int add_user_fn(struct db_txn *txn, void *arg)
{
    struct db_user u = {0};

    snprintf(u.name, sizeof u.name, "%s", (const char *)arg);
    snprintf(u.address, sizeof u.address, "%s@example.test", (const char *)arg);
    return db_user_add(txn, &u);
}

struct qarg {
    const char *user, *mailbox;
    uint64_t limit, def;
    int set; /* 1 set, 0 clear */
    struct quota q;
    struct db_mailbox mb;
};

static int set_fn(struct db_txn *txn, void *arg)
{
    struct qarg *a = arg;

    return a->set ? db_quota_set(txn, a->user, a->limit) : db_quota_clear(txn, a->user);
}

static int get_fn(struct db_txn *txn, void *arg)
{
    struct qarg *a = arg;
    int rc = quota_get(txn, a->user, a->def, &a->q);

    if (rc == 0 && a->mailbox)
        rc = db_mailbox_get(txn, a->user, a->mailbox, &a->mb);
    return rc;
}

static struct quota get(struct env *e, const char *user, uint64_t def)
{
    struct qarg a = {.user = user, .def = def};

    CHECK_INT(db_read(e->db, get_fn, &a, err, sizeof err), 0);
    return a.q;
}

static uint32_t mailbox_id(struct env *e, const char *user, const char *name)
{
    struct qarg a = {.user = user, .mailbox = name};

    CHECK_INT(db_read(e->db, get_fn, &a, err, sizeof err), 0);
    return a.mb.id;
}

static void set(struct env *e, const char *user, int on, uint64_t limit)
{
    struct qarg a = {.user = user, .limit = limit, .set = on};

    CHECK_INT(db_write(e->db, set_fn, &a, err, sizeof err), 0);
}

struct expunge {
    uint32_t mb, uid;
    struct store_dead *dead;
};

static int expunge_fn(struct db_txn *txn, void *arg)
{
    struct expunge *x = arg;

    store_dead_reset(x->dead);
    return db_message_expunge(txn, x->mb, x->uid, store_dead_add, x->dead);
}

/* A message of size bytes to the given mailboxes: the commit's result. */
static struct store_msg *deliver(struct env *e, size_t size, const uint32_t *mb,
                                 const enum store_quota *mode, size_t n)
{
    struct store_msg *m = store_msg_new(e->s, err, sizeof err);
    char *buf = malloc(size);

    memset(buf, 'x', size);
    CHECK_INT(store_msg_write(m, buf, size), 0);
    free(buf);
    for (size_t i = 0; i < n; i++)
        store_msg_add_rcpt_quota(m, mb[i], 0, mode[i]);
    CHECK_INT(store_commit(e->s, &m, 1, err, sizeof err), 0);
    return m;
}

static void test_db_quota_set_clear_and_unknown_user(void)
{
    struct env e;
    struct qarg a = {.user = "nobody", .limit = 5, .set = 1};

    if (env_new(&e) != 0) {
        CHECK(0);
        return;
    }
    CHECK_INT(db_write(e.db, add_user_fn, "alice", err, sizeof err), 0);
    CHECK_INT(get(&e, "alice", 777).limit, 777); /* the default */
    CHECK_INT(get(&e, "alice", 777).own, 0);
    set(&e, "alice", 1, 5000);
    CHECK_INT(get(&e, "alice", 777).limit, 5000);
    CHECK_INT(get(&e, "alice", 777).own, 1);
    set(&e, "alice", 1, 0); /* unlimited */
    CHECK_INT(get(&e, "alice", 777).limit, 0);
    set(&e, "alice", 0, 0); /* default again */
    CHECK_INT(get(&e, "alice", 777).limit, 777);
    set(&e, "alice", 0, 0); /* nothing to clear */
    CHECK_INT(db_write(e.db, set_fn, &a, err, sizeof err), DB_NOTFOUND);
    a.set = 0;
    CHECK_INT(db_write(e.db, set_fn, &a, err, sizeof err), DB_NOTFOUND);
    env_free(&e);
}

static void test_store_keep_refuses_only_when_nothing_fits(void)
{
    struct env e;
    uint32_t mb[2];
    enum store_quota keep[2] = {STORE_QUOTA_KEEP, STORE_QUOTA_KEEP};
    struct store_msg *m;

    if (env_new(&e) != 0) {
        CHECK(0);
        return;
    }
    store_set_quota_default(e.s, 10000);
    CHECK_INT(db_write(e.db, add_user_fn, "alice", err, sizeof err), 0);
    CHECK_INT(db_write(e.db, add_user_fn, "bob", err, sizeof err), 0);
    mb[0] = mailbox_id(&e, "alice", "INBOX");
    mb[1] = mailbox_id(&e, "bob", "INBOX");
    set(&e, "bob", 1, 100000);

    m = deliver(&e, 8000, mb, keep, 1); /* fits alice */
    CHECK_INT(store_msg_overquota(m), 0);
    CHECK(store_msg_uid(m, 0) != 0);
    store_msg_free(m);
    CHECK_INT(get(&e, "alice", 10000).usage, 8000);

    m = deliver(&e, 3000, mb, keep, 1); /* would exceed */
    CHECK_INT(store_msg_overquota(m), 1);
    CHECK_INT(store_msg_uid(m, 0), 0);
    store_msg_free(m);
    CHECK_INT(get(&e, "alice", 10000).usage, 8000); /* nothing stored */

    m = deliver(&e, 3000, mb, keep, 2); /* fits bob: both get it */
    CHECK_INT(store_msg_overquota(m), 0);
    CHECK(store_msg_uid(m, 0) != 0 && store_msg_uid(m, 1) != 0);
    store_msg_free(m);
    CHECK_INT(get(&e, "alice", 10000).usage, 11000);
    CHECK_INT(quota_is_over(&(struct quota){10000, 11000, 0}), 1);
    env_free(&e);
}

static void test_store_skip_leaves_copy_out_and_expunge_frees(void)
{
    struct env e;
    uint32_t mb[2];
    enum store_quota mode[2] = {STORE_QUOTA_NONE, STORE_QUOTA_SKIP};
    struct store_msg *m;
    struct store_dead dead = {0};

    if (env_new(&e) != 0) {
        CHECK(0);
        return;
    }
    CHECK_INT(db_write(e.db, add_user_fn, "alice", err, sizeof err), 0);
    CHECK_INT(db_write(e.db, add_user_fn, "bob", err, sizeof err), 0);
    mb[0] = mailbox_id(&e, "bob", "INBOX");
    mb[1] = mailbox_id(&e, "alice", "Sent");
    set(&e, "alice", 1, 1000);

    m = deliver(&e, 2000, mb, mode, 2);
    CHECK_INT(store_msg_overquota(m), 0); /* the mail goes */
    CHECK(store_msg_uid(m, 0) != 0);
    CHECK_INT(store_msg_overquota_in(m, mb[1]), 1); /* no Sent copy */
    CHECK_INT(store_msg_uid(m, 1), 0);
    store_msg_free(m);
    CHECK_INT(get(&e, "alice", 0).usage, 0);
    CHECK_INT(get(&e, "bob", 0).usage, 2000);

    set(&e, "alice", 0, 0); /* unlimited default */
    m = deliver(&e, 2000, mb, mode, 2);
    CHECK_INT(store_msg_overquota_in(m, mb[1]), 0);
    CHECK(store_msg_uid(m, 1) != 0);
    CHECK_INT(get(&e, "alice", 0).usage, 2000);
    {
        struct expunge x = {mb[1], store_msg_uid(m, 1), &dead};

        CHECK_INT(db_write(e.db, expunge_fn, &x, err, sizeof err), 0);
    }
    CHECK_INT(get(&e, "alice", 0).usage, 0); /* freed at once */
    CHECK_INT(get(&e, "bob", 0).usage, 4000);
    free(dead.ids);
    store_msg_free(m);
    env_free(&e);
}

/* Make e's environment what schema 2 made: no quotas database, version 2. */
static int downgrade(const char *dir)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi meta, quotas;
    unsigned char two[4] = {2, 0, 0, 0};
    MDB_val k = {7, "version"}, v = {sizeof two, two};
    int rc;

    if ((rc = mdb_env_create(&env)) != 0)
        return rc;
    if ((rc = mdb_env_set_maxdbs(env, 64)) == 0 &&
        (rc = mdb_env_open(env, dir, MDB_NOTLS, 0600)) == 0 &&
        (rc = mdb_txn_begin(env, NULL, 0, &txn)) == 0) {
        if ((rc = mdb_dbi_open(txn, "meta", 0, &meta)) != 0 ||
            (rc = mdb_dbi_open(txn, "quotas", 0, &quotas)) != 0 ||
            (rc = mdb_drop(txn, quotas, 1)) != 0 || (rc = mdb_put(txn, meta, &k, &v, 0)) != 0)
            mdb_txn_abort(txn);
        else
            rc = mdb_txn_commit(txn);
    }
    mdb_env_close(env);
    return rc;
}

static void test_db_upgrades_schema_2_in_place(void)
{
    struct env e;
    uint32_t mb;
    enum store_quota keep = STORE_QUOTA_KEEP;
    struct store_msg *m;

    if (env_new(&e) != 0) {
        CHECK(0);
        return;
    }
    CHECK_INT(db_write(e.db, add_user_fn, "alice", err, sizeof err), 0);
    mb = mailbox_id(&e, "alice", "INBOX");
    store_msg_free(deliver(&e, 1500, &mb, &keep, 1));
    store_close(e.s);
    db_close(e.db);
    CHECK_INT(downgrade(e.dir), 0);

    /* Opened without create (a read first), as with create: upgraded. */
    e.db = db_open(e.dir, 0, (uid_t)-1, (gid_t)-1, err, sizeof err);
    CHECK(e.db != NULL);
    if (e.db == NULL) {
        fprintf(stderr, "db_open: %s\n", err);
        return;
    }
    CHECK_INT(db_upgraded_from(e.db), 2);
    e.s = store_open(e.db, e.dir, err, sizeof err);
    CHECK_INT(get(&e, "alice", 0).usage, 1500); /* old data kept */
    set(&e, "alice", 1, 2000);                  /* quotas exists now */
    m = deliver(&e, 1000, &mb, &keep, 1);
    CHECK_INT(store_msg_overquota(m), 1);
    store_msg_free(m);
    store_close(e.s);
    db_close(e.db);

    /* Open again: current now, nothing to upgrade, the limit kept. */
    e.db = db_open(e.dir, 1, (uid_t)-1, (gid_t)-1, err, sizeof err);
    CHECK(e.db != NULL);
    if (e.db == NULL)
        return;
    CHECK_INT(db_upgraded_from(e.db), 0);
    e.s = store_open(e.db, e.dir, err, sizeof err);
    CHECK_INT(get(&e, "alice", 0).limit, 2000);
    env_free(&e);
}

int main(void)
{
    RUN(test_quota_would_exceed_table);
    RUN(test_quota_kib_rounding);
    RUN(test_quota_parse_setting_table);
    RUN(test_db_quota_set_clear_and_unknown_user);
    RUN(test_store_keep_refuses_only_when_nothing_fits);
    RUN(test_store_skip_leaves_copy_out_and_expunge_frees);
    RUN(test_db_upgrades_schema_2_in_place);
    return check_done();
}
