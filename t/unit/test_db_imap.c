/* test_db_imap.c - the IMAP side of the index: flags and keywords, expunge
 * with file references, rename, delete, \Recent, subscriptions, cache. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "check.h"
#include "mailcore/db.h"
#include "mailcore/store.h"

static char err[512];
static char dir[64];

struct fixture {
    struct db *db;
    struct store *s;
    uint32_t inbox, other;
};

static int setup_fn(struct db_txn *txn, void *arg)
{
    struct fixture *f = arg;
    struct db_user u = {0};
    struct db_mailbox mb;
    int rc;

    snprintf(u.name, sizeof u.name, "alice");
    snprintf(u.address, sizeof u.address, "alice@example.test");
    snprintf(u.hash, sizeof u.hash, "x");
    if ((rc = db_user_add(txn, &u)) != 0 || (rc = db_mailbox_get(txn, "alice", "INBOX", &mb)) != 0)
        return rc;
    f->inbox = mb.id;
    if ((rc = db_mailbox_create(txn, "alice", "Work", 0, &mb)) != 0)
        return rc;
    f->other = mb.id;
    return 0;
}

static void deliver(struct fixture *f, const char *text, uint32_t mbox, uint32_t flags)
{
    struct store_msg *m = store_msg_new(f->s, err, sizeof err);

    CHECK(m != NULL);
    store_msg_write(m, text, strlen(text));
    store_msg_add_rcpt(m, mbox, flags);
    CHECK_INT(store_commit(f->s, &m, 1, err, sizeof err), 0);
    store_msg_free(m);
}

static void setup(struct fixture *f)
{
    snprintf(dir, sizeof dir, "/tmp/mailcore-dbimap-XXXXXX");
    CHECK(mkdtemp(dir) != NULL);
    f->db = db_open(dir, 1, (uid_t)-1, (gid_t)-1, err, sizeof err);
    CHECK(f->db != NULL);
    f->s = store_open(f->db, dir, err, sizeof err);
    CHECK(f->s != NULL);
    CHECK_INT(db_write(f->db, setup_fn, f, err, sizeof err), 0);
}

static void teardown(struct fixture *f)
{
    char cmd[128];

    store_close(f->s);
    db_close(f->db);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK_INT(system(cmd), 0);
}

struct op {
    struct fixture *f;
    uint32_t uid;
    unsigned idx;
    struct store_dead dead;
    struct db_mailbox mb;
    struct db_message m;
    int rc;
};

static int update_fn(struct db_txn *txn, void *arg)
{
    struct op *o = arg;
    int rc;

    if ((rc = db_keyword_index(txn, o->f->inbox, "$Label1", 1, &o->idx)) != 0)
        return rc;
    if ((rc = db_message_update(txn, o->f->inbox, o->uid, DB_FLAG_SEEN | DB_FLAG_FLAGGED,
                                1ull << o->idx, NULL)) != 0)
        return rc;
    return db_mailbox_by_id(txn, o->f->inbox, &o->mb);
}

static int read_msg_fn(struct db_txn *txn, void *arg)
{
    struct op *o = arg;
    unsigned idx = 99;

    o->rc = db_keyword_index(txn, o->f->inbox, "$LABEL1", 0, &idx);
    CHECK_INT(idx, o->idx);
    return db_message_get(txn, o->f->inbox, o->uid, &o->m);
}

static void test_db_imap_flags_and_keywords_persist_and_bump_modseq(void)
{
    struct fixture f;
    struct op o = {.f = &f, .uid = 1};

    setup(&f);
    deliver(&f, "Subject: a\r\n\r\nx\r\n", f.inbox, 0);
    CHECK_INT(db_write(f.db, update_fn, &o, err, sizeof err), 0);
    CHECK_INT(o.mb.unseen, 0);
    CHECK_INT(o.mb.highestmodseq, 3);
    CHECK_INT(db_read(f.db, read_msg_fn, &o, err, sizeof err), 0);
    CHECK_INT(o.rc, 0);
    CHECK_INT(o.m.flags, DB_FLAG_SEEN | DB_FLAG_FLAGGED);
    CHECK_INT(o.m.keywords, 1ull << o.idx);
    CHECK_INT(o.m.modseq, 3);
    teardown(&f);
}

static int copy_fn(struct db_txn *txn, void *arg)
{
    struct op *o = arg;
    struct db_message m;
    int rc = db_message_get(txn, o->f->inbox, 1, &m);

    return rc ? rc : db_message_add(txn, o->f->other, &m);
}

static int expunge_fn(struct db_txn *txn, void *arg)
{
    struct op *o = arg;

    store_dead_reset(&o->dead);
    return db_message_expunge(txn, o->uid == 1 ? o->f->inbox : o->f->other, 1, store_dead_add,
                              &o->dead);
}

static void test_db_imap_expunge_frees_file_after_last_copy(void)
{
    struct fixture f;
    struct op o = {.f = &f, .uid = 1};
    char path[512];

    setup(&f);
    deliver(&f, "Subject: a\r\n\r\nx\r\n", f.inbox, 0);
    CHECK_INT(db_write(f.db, copy_fn, &o, err, sizeof err), 0);      /* COPY: 2 refs */
    CHECK_INT(db_write(f.db, expunge_fn, &o, err, sizeof err), 0);
    CHECK_INT(o.dead.n, 0);                                          /* still in Work */
    o.uid = 2;
    CHECK_INT(db_write(f.db, expunge_fn, &o, err, sizeof err), 0);
    CHECK_INT(o.dead.n, 1);
    store_file_path(f.s, o.dead.ids[0], path, sizeof path);
    CHECK_INT(access(path, F_OK), 0);
    CHECK_INT(store_dead_unlink(f.s, &o.dead, err, sizeof err), 0);
    CHECK(access(path, F_OK) != 0);
    teardown(&f);
}

static int rename_fn(struct db_txn *txn, void *arg)
{
    struct op *o = arg;
    int rc = db_mailbox_rename(txn, "alice", "Work", "Projects");

    if (rc)
        return rc;
    o->rc = db_mailbox_rename(txn, "alice", "Projects", "INBOX");
    return db_mailbox_get(txn, "alice", "Projects", &o->mb);
}

static int delete_fn(struct db_txn *txn, void *arg)
{
    struct op *o = arg;

    store_dead_reset(&o->dead);
    return db_mailbox_delete(txn, "alice", "Projects", store_dead_add, &o->dead);
}

static void test_db_imap_rename_keeps_id_and_delete_removes_messages(void)
{
    struct fixture f;
    struct op o = {.f = &f};

    setup(&f);
    deliver(&f, "Subject: w\r\n\r\nx\r\n", f.other, 0);
    CHECK_INT(db_write(f.db, rename_fn, &o, err, sizeof err), 0);
    CHECK_INT(o.rc, DB_EXISTS);
    CHECK_INT(o.mb.id, f.other);
    CHECK_INT(o.mb.messages, 1);
    CHECK_INT(db_write(f.db, delete_fn, &o, err, sizeof err), 0);
    CHECK_INT(o.dead.n, 1);
    CHECK_INT(store_dead_unlink(f.s, &o.dead, err, sizeof err), 0);
    CHECK_INT(db_write(f.db, delete_fn, &o, err, sizeof err), DB_NOTFOUND);
    teardown(&f);
}

static int count_sub(const char *name, void *arg)
{
    (void)name;
    ++*(int *)arg;
    return 0;
}

static int subs_fn(struct db_txn *txn, void *arg)
{
    int *n = arg, rc;

    if ((rc = db_subscription_set(txn, "alice", "Lists/x", 1)) != 0 ||
        (rc = db_subscription_set(txn, "alice", "inbox", 1)) != 0 ||
        (rc = db_subscription_set(txn, "alice", "INBOX", 1)) != 0 ||
        (rc = db_subscription_set(txn, "alice", "Gone", 0)) != 0)
        return rc;
    *n = 0;
    return db_subscription_foreach(txn, "alice", count_sub, n);
}

static int cache_fn(struct db_txn *txn, void *arg)
{
    struct db_cache c = {"(env)", "(bs)", "(b)", 5, 4, 3}, out;
    int rc;

    (void)arg;
    if ((rc = db_cache_put(txn, 42, &c)) != 0 || (rc = db_cache_get(txn, 42, &out)) != 0)
        return rc;
    CHECK(out.envelope_len == 5 && memcmp(out.envelope, "(env)", 5) == 0);
    CHECK(out.body_len == 3 && memcmp(out.body, "(b)", 3) == 0);
    return db_cache_get(txn, 43, &out) == DB_NOTFOUND ? 0 : -1;
}

static int recent_fn(struct db_txn *txn, void *arg)
{
    struct op *o = arg;
    int rc = db_mailbox_set_recent(txn, o->f->inbox, 7);

    return rc ? rc : db_mailbox_by_id(txn, o->f->inbox, &o->mb);
}

static int read_recent_fn(struct db_txn *txn, void *arg)
{
    struct op *o = arg;

    return db_mailbox_by_id(txn, o->f->inbox, &o->mb);
}

static void test_db_imap_subscriptions_cache_and_recent(void)
{
    struct fixture f;
    struct op o = {.f = &f};
    int n = 0;

    setup(&f);
    CHECK_INT(db_write(f.db, subs_fn, &n, err, sizeof err), 0);
    CHECK_INT(n, 6);    /* the five standard mailboxes are subscribed, and Lists/x */
    CHECK_INT(db_write(f.db, cache_fn, NULL, err, sizeof err), 0);
    CHECK_INT(db_write(f.db, recent_fn, &o, err, sizeof err), 0);
    CHECK_INT(o.mb.recent_uid, 7);
    teardown(&f);
}

struct fail {
    uint64_t now;
    uint32_t count;
    int rc;
};

static int fail_fn(struct db_txn *txn, void *arg)
{
    struct fail *f = arg;

    return db_authfail_note(txn, "192.0.2.7", f->now, 900, &f->count);
}

static int clear_fn(struct db_txn *txn, void *arg)
{
    struct fail *f = arg;

    f->rc = db_authfail_clear(txn, "192.0.2.7");
    return db_authfail_get(txn, "192.0.2.7", &f->count) == DB_NOTFOUND ? 0 : -1;
}

static void test_db_authfail_counts_expire_and_clear(void)
{
    struct fixture f;
    struct fail a = {.now = 1000};

    setup(&f);
    CHECK_INT(db_write(f.db, fail_fn, &a, err, sizeof err), 0);
    CHECK_INT(a.count, 1);
    a.now = 1100;
    CHECK_INT(db_write(f.db, fail_fn, &a, err, sizeof err), 0);
    CHECK_INT(a.count, 2);
    a.now = 1100 + 901;                 /* past the ttl: counting starts again */
    CHECK_INT(db_write(f.db, fail_fn, &a, err, sizeof err), 0);
    CHECK_INT(a.count, 1);
    CHECK_INT(db_write(f.db, clear_fn, &a, err, sizeof err), 0);
    CHECK_INT(a.rc, 0);
    teardown(&f);
}

static void test_db_lazy_write_is_visible_and_syncs(void)
{
    struct fixture f;
    struct op o = {.f = &f};

    setup(&f);
    CHECK_INT(db_write_lazy(f.db, recent_fn, &o, err, sizeof err), 0);
    CHECK_INT(o.mb.recent_uid, 7);
    o.mb.recent_uid = 0;
    CHECK_INT(db_read(f.db, read_recent_fn, &o, err, sizeof err), 0);
    CHECK_INT(o.mb.recent_uid, 7);
    CHECK_INT(db_sync(f.db), 0);
    CHECK_INT(db_sync(f.db), 0);        /* nothing left: no work */
    teardown(&f);
}

int main(void)
{
    RUN(test_db_lazy_write_is_visible_and_syncs);
    RUN(test_db_authfail_counts_expire_and_clear);
    RUN(test_db_imap_flags_and_keywords_persist_and_bump_modseq);
    RUN(test_db_imap_expunge_frees_file_after_last_copy);
    RUN(test_db_imap_rename_keeps_id_and_delete_removes_messages);
    RUN(test_db_imap_subscriptions_cache_and_recent);
    return check_done();
}
