/*
 * test_db.c - the LMDB schema: names and addresses, users, aliases, groups,
 * mailboxes, messages, map growth, ownership and sharing between processes.
 */
#include <errno.h>
#include <lmdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "mailcore/db.h"

static char err[512];

/* ---- fixtures ---- */

static void rm_rf(const char *dir)
{
    char cmd[512];

    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", dir);
}

static void make_tmpdir(char buf[64])
{
    snprintf(buf, 64, "/tmp/mc-test-db-XXXXXX");
    if (mkdtemp(buf) == NULL) {
        perror("mkdtemp");
        exit(1);
    }
}

static struct db *open_new(char dir[64])
{
    struct db *db;

    make_tmpdir(dir);
    db = db_open(dir, 1, (uid_t)-1, (gid_t)-1, err, sizeof err);
    if (db == NULL)
        fprintf(stderr, "db_open: %s\n", err);
    return db;
}

struct user_arg {
    const char *name, *address;
    struct db_user u;
};

static int add_user_fn(struct db_txn *txn, void *arg)
{
    struct user_arg *ua = arg;

    memset(&ua->u, 0, sizeof ua->u);
    snprintf(ua->u.name, sizeof ua->u.name, "%s", ua->name);
    snprintf(ua->u.address, sizeof ua->u.address, "%s", ua->address);
    snprintf(ua->u.hash, sizeof ua->u.hash, "$y$fakehash");
    return db_user_add(txn, &ua->u);
}

static int add_user(struct db *db, const char *name, const char *address)
{
    struct user_arg ua = {.name = name, .address = address};

    return db_write(db, add_user_fn, &ua, err, sizeof err);
}

/* A generic "call this with these strings" transaction. */
struct op {
    int (*fn)(struct op *op, struct db_txn *txn);
    const char *a, *b;
    struct db_user u;
    struct db_mailbox mb;
    struct db_message msg;
    char user[DB_NAME_MAX + 1];
    uint32_t id, refs;
    uint64_t file_id;
    int result;
};

static int op_fn(struct db_txn *txn, void *arg)
{
    struct op *op = arg;

    op->result = op->fn(op, txn);
    return op->result == 1 ? 0 : op->result; /* is_member/domain_is_local's 1 */
}

static int run_read(struct db *db, struct op *op)
{
    int rc = db_read(db, op_fn, op, err, sizeof err);

    return rc ? rc : op->result;
}

static int run_write(struct db *db, struct op *op)
{
    int rc = db_write(db, op_fn, op, err, sizeof err);

    return rc ? rc : op->result;
}

static int f_user_get(struct op *op, struct db_txn *txn)
{
    return db_user_get(txn, op->a, &op->u);
}
static int f_by_login(struct op *op, struct db_txn *txn)
{
    return db_user_by_login(txn, op->a, &op->u);
}
static int f_resolve(struct op *op, struct db_txn *txn)
{
    return db_address_resolve(txn, op->a, op->user);
}
static int f_alias_add(struct op *op, struct db_txn *txn)
{
    return db_alias_add(txn, op->a, op->b);
}
static int f_alias_del(struct op *op, struct db_txn *txn)
{
    return db_alias_del(txn, op->a);
}
static int f_domain_local(struct op *op, struct db_txn *txn)
{
    return db_domain_is_local(txn, op->a);
}
static int f_group_add(struct op *op, struct db_txn *txn)
{
    return db_group_add(txn, op->a);
}
static int f_group_del(struct op *op, struct db_txn *txn)
{
    return db_group_del(txn, op->a);
}
static int f_member_add(struct op *op, struct db_txn *txn)
{
    return db_group_member_add(txn, op->a, op->b);
}
static int f_member_del(struct op *op, struct db_txn *txn)
{
    return db_group_member_del(txn, op->a, op->b);
}
static int f_is_member(struct op *op, struct db_txn *txn)
{
    return db_group_is_member(txn, op->a, op->b);
}
static int f_mbox_get(struct op *op, struct db_txn *txn)
{
    return db_mailbox_get(txn, op->a, op->b, &op->mb);
}
static int f_mbox_create(struct op *op, struct db_txn *txn)
{
    return db_mailbox_create(txn, op->a, op->b, DB_SPECIAL_ARCHIVE, &op->mb);
}
static int f_mbox_by_id(struct op *op, struct db_txn *txn)
{
    return db_mailbox_by_id(txn, op->id, &op->mb);
}
static int f_set_hash(struct op *op, struct db_txn *txn)
{
    return db_user_set_hash(txn, op->a, op->b);
}
static int f_file_refs(struct op *op, struct db_txn *txn)
{
    return db_file_refs(txn, op->file_id, &op->refs);
}
static int f_msg_get(struct op *op, struct db_txn *txn)
{
    return db_message_get(txn, op->id, op->refs, &op->msg);
}

static int call(struct db *db, int write, int (*fn)(struct op *, struct db_txn *), const char *a,
                const char *b)
{
    struct op op = {.fn = fn, .a = a, .b = b};

    return write ? run_write(db, &op) : run_read(db, &op);
}

static uint32_t mailbox_id(struct db *db, const char *user, const char *name)
{
    struct op op = {.fn = f_mbox_get, .a = user, .b = name};

    return run_read(db, &op) == 0 ? op.mb.id : 0;
}

/* Add a file record and deliver it to each mailbox id (0-terminated). */
struct deliver {
    uint64_t file_id, size;
    const uint32_t *mboxes;
    uint32_t flags;
    uint32_t uids[8];
};

static int deliver_fn(struct db_txn *txn, void *arg)
{
    struct deliver *d = arg;
    int rc;

    if ((rc = db_file_add(txn, d->file_id, d->size)) != 0)
        return rc;
    for (int i = 0; d->mboxes[i]; i++) {
        struct db_message m = {.flags = d->flags, .file_id = d->file_id, .internaldate = 1000};

        if ((rc = db_message_add(txn, d->mboxes[i], &m)) != 0)
            return rc;
        d->uids[i] = m.uid;
    }
    return 0;
}

static int deliver(struct db *db, uint64_t file_id, uint64_t size, const uint32_t *mboxes,
                   uint32_t flags, uint32_t *uids)
{
    struct deliver d = {file_id, size, mboxes, flags, {0}};
    int rc = db_write(db, deliver_fn, &d, err, sizeof err);

    if (uids)
        memcpy(uids, d.uids, sizeof d.uids);
    return rc;
}

/* ---- syntax ---- */

static void test_db_valid_names_table(void)
{
    static const struct {
        const char *name;
        int ok;
    } t[] = {
        {"alice", 1}, {"a", 1},   {"0day", 1},     {"a.b-c_d", 1}, {"x9", 1},  {"", 0},
        {"Alice", 0}, {".a", 0},  {"-a", 0},       {"_a", 0},      {"a b", 0}, {"a@b", 0},
        {"a/b", 0},   {"a+b", 0}, {"\xc3\xa9", 0}, {"a\tb", 0},
    };
    char longname[DB_NAME_MAX + 2];

    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        if (db_valid_name(t[i].name) != t[i].ok)
            fprintf(stderr, "  name \"%s\"\n", t[i].name);
        CHECK_INT(db_valid_name(t[i].name), t[i].ok);
    }
    memset(longname, 'a', sizeof longname);
    longname[DB_NAME_MAX] = '\0';
    CHECK_INT(db_valid_name(longname), 1);
    longname[DB_NAME_MAX] = 'a';
    longname[DB_NAME_MAX + 1] = '\0';
    CHECK_INT(db_valid_name(longname), 0);
    CHECK_INT(db_valid_name(NULL), 0);
}

static void test_db_valid_addresses_table(void)
{
    static const struct {
        const char *addr;
        int ok;
    } t[] = {
        {"alice@example.test", 1},
        {"Alice.Smith@Example.TEST", 1},
        {"a+tag@x", 1},
        {"o'brien@x.org", 1},
        {"a_b-c=d@sub.example-host.org", 1},
        {"a@c", 1},
        {"a@1.2.3.4", 1}, /* a host name of digits is a host name */
        {"a%b@c", 0},
        {"a!b@c", 0},
        {"@x", 0},
        {"a@", 0},
        {"\"q\"@x", 0},
        {"a@-x.com", 0},
        {"a@x-.com", 0},
        {"a@x..com", 0},
        {"a@.x.com", 0},
        {"a@x.com.", 0},
        {"<a@b>", 0},
        {"a", 0},
        {"", 0},
        {"a@b@c", 0},
        {"@a@b", 0},
        {"a b@c", 0},
        {".a@c", 0},
        {"a.@c", 0},
        {"a..b@c", 0},
        {"a@[1.2.3.4]", 0},
        {"a@x_y.com", 0},
        {"\xc3\xa9@x.com", 0},
        {"a@\xc3\xa9.com", 0},
        {"a\x01@x", 0},
        {"a@x\x7f", 0},
        {"a,b@x", 0},
        {"a:b@x", 0},
    };
    char buf[300], labels[64];

    memset(labels, 'b', sizeof labels - 1);
    labels[sizeof labels - 1] = '\0';
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        if (db_valid_address(t[i].addr) != t[i].ok)
            fprintf(stderr, "  address \"%s\"\n", t[i].addr);
        CHECK_INT(db_valid_address(t[i].addr), t[i].ok);
    }
    /* Lengths: 64-byte local part, 63-byte label, 254 in all. */
    memset(buf, 'a', 64);
    snprintf(buf + 64, sizeof buf - 64, "@x.org");
    CHECK_INT(db_valid_address(buf), 1);
    memset(buf, 'a', 65);
    snprintf(buf + 65, sizeof buf - 65, "@x.org");
    CHECK_INT(db_valid_address(buf), 0);
    snprintf(buf, sizeof buf, "a@");
    memset(buf + 2, 'b', 64);
    snprintf(buf + 66, sizeof buf - 66, ".org");
    CHECK_INT(db_valid_address(buf), 0);
    /* 255 characters: one too many; 254 is the limit. */
    snprintf(buf, sizeof buf, "a@%.63s.%.63s.%.63s.%.61s", labels, labels, labels, labels);
    CHECK_INT((int)strlen(buf), 255);
    CHECK_INT(db_valid_address(buf), 0);
    buf[254] = '\0';
    CHECK_INT(db_valid_address(buf), 1);
    CHECK_INT(db_valid_address(NULL), 0);
}

static void test_db_address_normalize_lowercases_everything(void)
{
    char out[DB_ADDR_MAX + 1], small[8];

    CHECK_INT(db_address_normalize("Alice.Smith@Example.TEST", out, sizeof out), 0);
    CHECK_STR(out, "alice.smith@example.test");
    CHECK_INT(db_address_normalize("a%b@c", out, sizeof out), -1);
    CHECK_INT(db_address_normalize("alice@example.test", small, sizeof small), -1);
}

/* ---- users ---- */

struct mbox_list {
    int n;
    char names[8][DB_MBOX_NAME_MAX + 1];
    uint32_t special[8], ids[8], subscribed[8], uidnext[8];
    uint64_t modseq[8];
};

static int mbox_list_cb(const struct db_mailbox *m, void *arg)
{
    struct mbox_list *l = arg;

    if (l->n < 8) {
        snprintf(l->names[l->n], sizeof l->names[0], "%s", m->name);
        l->special[l->n] = m->special;
        l->ids[l->n] = m->id;
        l->subscribed[l->n] = m->subscribed;
        l->uidnext[l->n] = m->uidnext;
        l->modseq[l->n] = m->highestmodseq;
    }
    l->n++;
    return 0;
}

static int list_mboxes_fn(struct db_txn *txn, void *arg)
{
    struct op *op = arg;

    return db_mailbox_foreach(txn, op->a, mbox_list_cb, (void *)op->b);
}

static void list_mboxes(struct db *db, const char *user, struct mbox_list *l)
{
    struct op op = {.a = user, .b = (const char *)l};

    memset(l, 0, sizeof *l);
    CHECK_INT(db_read(db, list_mboxes_fn, &op, err, sizeof err), 0);
}

static uint32_t special_of(const struct mbox_list *l, const char *name)
{
    for (int i = 0; i < l->n && i < 8; i++)
        if (strcmp(l->names[i], name) == 0)
            return l->special[i];
    return 0xffffffff;
}

static void test_db_user_add_creates_address_and_five_special_mailboxes(void)
{
    char dir[64];
    struct db *db = open_new(dir);
    struct user_arg ua = {.name = "alice", .address = "Alice@Example.TEST"};
    struct mbox_list l;
    struct op op = {.fn = f_user_get, .a = "alice"};

    CHECK(db != NULL);
    if (!db)
        return;
    CHECK_INT(db_write(db, add_user_fn, &ua, err, sizeof err), 0);
    CHECK_INT(ua.u.id, 1);
    CHECK(ua.u.created > 1600000000);
    CHECK_STR(ua.u.address, "alice@example.test");

    CHECK_INT(run_read(db, &op), 0);
    CHECK_STR(op.u.name, "alice");
    CHECK_STR(op.u.address, "alice@example.test");
    CHECK_STR(op.u.hash, "$y$fakehash");
    CHECK_INT(op.u.id, 1);
    CHECK_INT(op.u.created, ua.u.created);

    list_mboxes(db, "alice", &l);
    CHECK_INT(l.n, 5);
    CHECK_INT(special_of(&l, "INBOX"), DB_SPECIAL_NONE);
    CHECK_INT(special_of(&l, "Sent"), DB_SPECIAL_SENT);
    CHECK_INT(special_of(&l, "Drafts"), DB_SPECIAL_DRAFTS);
    CHECK_INT(special_of(&l, "Trash"), DB_SPECIAL_TRASH);
    CHECK_INT(special_of(&l, "Junk"), DB_SPECIAL_JUNK);
    for (int i = 0; i < 5; i++) {
        CHECK_INT(l.subscribed[i], 1);
        CHECK_INT(l.uidnext[i], 1);
        CHECK_INT(l.modseq[i], 1);
        for (int j = 0; j < i; j++)
            CHECK(l.ids[i] != l.ids[j]);
    }

    CHECK_INT(add_user(db, "bob", "bob@example.test"), 0);
    op.a = "bob";
    CHECK_INT(run_read(db, &op), 0);
    CHECK_INT(op.u.id, 2);
    CHECK_INT(call(db, 1, f_set_hash, "bob", "$6$new"), 0);
    CHECK_INT(run_read(db, &op), 0);
    CHECK_STR(op.u.hash, "$6$new");
    CHECK_INT(call(db, 1, f_set_hash, "nobody", "$6$new"), DB_NOTFOUND);
    db_close(db);
    rm_rf(dir);
}

static void test_db_user_login_by_name_primary_or_alias_any_case(void)
{
    char dir[64];
    struct db *db = open_new(dir);
    static const char *logins[] = {
        "alice",         "ALICE",        "alice@example.test", "Alice@EXAMPLE.test",
        "al@other.test", "AL@Other.Test"};

    CHECK(db != NULL);
    if (!db)
        return;
    CHECK_INT(add_user(db, "alice", "alice@example.test"), 0);
    CHECK_INT(call(db, 1, f_alias_add, "al@other.test", "alice"), 0);
    for (size_t i = 0; i < sizeof logins / sizeof logins[0]; i++) {
        struct op op = {.fn = f_by_login, .a = logins[i]};

        CHECK_INT(run_read(db, &op), 0);
        CHECK_STR(op.u.name, "alice");
    }
    CHECK_INT(call(db, 0, f_by_login, "bob", NULL), DB_NOTFOUND);
    CHECK_INT(call(db, 0, f_by_login, "alice+tag@example.test", NULL), DB_NOTFOUND);
    CHECK_INT(call(db, 0, f_by_login, "", NULL), DB_NOTFOUND);
    CHECK_INT(call(db, 0, f_by_login, "a%b@c", NULL), DB_NOTFOUND);
    CHECK_INT(call(db, 0, f_by_login, "\"alice\"@example.test", NULL), DB_NOTFOUND);
    db_close(db);
    rm_rf(dir);
}

static void test_db_duplicate_user_or_address_is_exists(void)
{
    char dir[64];
    struct db *db = open_new(dir);

    CHECK(db != NULL);
    if (!db)
        return;
    CHECK_INT(add_user(db, "alice", "alice@example.test"), 0);
    CHECK_INT(add_user(db, "alice", "alice2@example.test"), DB_EXISTS);
    CHECK_HAS(err, "alice");
    CHECK_INT(add_user(db, "bob", "ALICE@example.test"), DB_EXISTS);
    CHECK_HAS(err, "alice@example.test");
    CHECK_INT(call(db, 1, f_alias_add, "alias@example.test", "alice"), 0);
    CHECK_INT(add_user(db, "carol", "Alias@example.test"), DB_EXISTS);
    CHECK_INT(call(db, 1, f_alias_add, "alias@example.test", "alice"), DB_EXISTS);
    CHECK_INT(call(db, 1, f_alias_add, "alice@example.test", "alice"), DB_EXISTS);
    /* Nothing of the refused users was written. */
    CHECK_INT(call(db, 0, f_user_get, "bob", NULL), DB_NOTFOUND);
    CHECK_INT(call(db, 0, f_user_get, "carol", NULL), DB_NOTFOUND);
    CHECK_INT(mailbox_id(db, "bob", "INBOX"), 0);
    db_close(db);
    rm_rf(dir);
}

static void test_db_user_add_rejects_invalid_name_or_address(void)
{
    char dir[64];
    struct db *db = open_new(dir);
    static const char *bad_addrs[] = {"a%b@c", "@x", "a@", "\"q\"@x", "a@-x.com", "<a@b>", ""};

    CHECK(db != NULL);
    if (!db)
        return;
    CHECK_INT(add_user(db, "Alice", "alice@example.test"), -1);
    CHECK_HAS(err, "invalid user name");
    CHECK_INT(add_user(db, ".x", "x@example.test"), -1);
    for (size_t i = 0; i < sizeof bad_addrs / sizeof bad_addrs[0]; i++) {
        CHECK_INT(add_user(db, "x", bad_addrs[i]), -1);
        CHECK_HAS(err, "invalid address");
    }
    CHECK_INT(call(db, 1, f_alias_add, "a%b@c", "x"), -1);
    CHECK_INT(call(db, 0, f_user_get, "x", NULL), DB_NOTFOUND);
    db_close(db);
    rm_rf(dir);
}

static void test_db_alias_add_resolve_and_del(void)
{
    char dir[64];
    struct db *db = open_new(dir);
    struct op op = {.fn = f_resolve};

    CHECK(db != NULL);
    if (!db)
        return;
    CHECK_INT(add_user(db, "alice", "alice@example.test"), 0);
    CHECK_INT(call(db, 1, f_alias_add, "Postmaster@Example.test", "alice"), 0);
    CHECK_INT(call(db, 1, f_alias_add, "x@example.test", "nobody"), DB_NOTFOUND);
    op.a = "postmaster@EXAMPLE.TEST";
    CHECK_INT(run_read(db, &op), 0);
    CHECK_STR(op.user, "alice");
    op.a = "alice@example.test";
    CHECK_INT(run_read(db, &op), 0);
    CHECK_STR(op.user, "alice");
    op.a = "nobody@example.test";
    CHECK_INT(run_read(db, &op), DB_NOTFOUND);
    op.a = "not an address";
    CHECK_INT(run_read(db, &op), DB_NOTFOUND);

    CHECK_INT(call(db, 1, f_alias_del, "alice@example.test", NULL), -1);
    CHECK_HAS(err, "primary");
    CHECK_INT(call(db, 1, f_alias_del, "POSTMASTER@example.test", NULL), 0);
    CHECK_INT(call(db, 1, f_alias_del, "postmaster@example.test", NULL), DB_NOTFOUND);
    op.a = "postmaster@example.test";
    CHECK_INT(run_read(db, &op), DB_NOTFOUND);
    db_close(db);
    rm_rf(dir);
}

static void test_db_plus_addressing_resolves_to_user(void)
{
    char dir[64];
    struct db *db = open_new(dir);
    static const struct {
        const char *addr, *user;
    } t[] = {
        {"alice+news@example.test", "alice"},
        {"Alice+A+B@Example.Test", "alice"},
        {"sales+x@example.test", "alice"}, /* alias, then plus */
        {"alice+@example.test", "alice"},
        {"bob+x@example.test", "bobx"}, /* an exact address wins */
        {"+x@example.test", NULL},
        {"carol+x@example.test", NULL},
        {"alice+x@other.test", NULL},
    };

    CHECK(db != NULL);
    if (!db)
        return;
    CHECK_INT(add_user(db, "alice", "alice@example.test"), 0);
    CHECK_INT(add_user(db, "bob", "bob@example.test"), 0);
    CHECK_INT(add_user(db, "bobx", "bob+x@example.test"), 0);
    CHECK_INT(call(db, 1, f_alias_add, "sales@example.test", "alice"), 0);
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        struct op op = {.fn = f_resolve, .a = t[i].addr};
        int rc = run_read(db, &op);

        if (t[i].user == NULL) {
            CHECK_INT(rc, DB_NOTFOUND);
        } else {
            CHECK_INT(rc, 0);
            CHECK_STR(op.user, t[i].user);
        }
    }
    db_close(db);
    rm_rf(dir);
}

static void test_db_domain_is_local_follows_addresses(void)
{
    char dir[64];
    struct db *db = open_new(dir);

    CHECK(db != NULL);
    if (!db)
        return;
    CHECK_INT(call(db, 0, f_domain_local, "example.test", NULL), 0);
    CHECK_INT(add_user(db, "alice", "alice@example.test"), 0);
    CHECK_INT(call(db, 1, f_alias_add, "a@other.test", "alice"), 0);
    CHECK_INT(call(db, 0, f_domain_local, "example.test", NULL), 1);
    CHECK_INT(call(db, 0, f_domain_local, "EXAMPLE.Test", NULL), 1);
    CHECK_INT(call(db, 0, f_domain_local, "other.test", NULL), 1);
    CHECK_INT(call(db, 0, f_domain_local, "third.test", NULL), 0);
    CHECK_INT(call(db, 1, f_alias_del, "a@other.test", NULL), 0);
    CHECK_INT(call(db, 0, f_domain_local, "other.test", NULL), 0);
    db_close(db);
    rm_rf(dir);
}

struct collect {
    char text[1024];
    int users;
};

static void append(struct collect *c, const char *s)
{
    size_t n = strlen(c->text);

    snprintf(c->text + n, sizeof c->text - n, "%s", s);
}

static int addr_cb(const char *addr, const char *user, int primary, void *arg)
{
    struct collect *c = arg;
    size_t n = strlen(c->text);

    snprintf(c->text + n, sizeof c->text - n, "%s=%s%s;", addr, user, primary ? "*" : "");
    return 0;
}

static int group_cb(const char *group, const char *member, void *arg)
{
    struct collect *c = arg;
    size_t n = strlen(c->text);

    snprintf(c->text + n, sizeof c->text - n, "%s:%s;", group, member ? member : "");
    return 0;
}

static int user_cb(const struct db_user *u, void *arg)
{
    struct collect *c = arg;
    size_t n = strlen(c->text);

    snprintf(c->text + n, sizeof c->text - n, "%s;", u->name);
    c->users++;
    return 0;
}

static int stop_cb(const struct db_user *u, void *arg)
{
    (void)u, (void)arg;
    return 7;
}

static int foreach_fn(struct db_txn *txn, void *arg)
{
    struct collect *c = arg;
    int rc;

    append(c, "A:");
    if ((rc = db_address_foreach(txn, addr_cb, c)) != 0)
        return rc;
    append(c, "G:");
    if ((rc = db_group_foreach(txn, group_cb, c)) != 0)
        return rc;
    append(c, "U:");
    if ((rc = db_user_foreach(txn, user_cb, c)) != 0)
        return rc;
    /* A non-zero return of cb stops the walk and comes back. */
    rc = db_user_foreach(txn, stop_cb, c);
    return rc == (c->users ? 7 : 0) ? 0 : -1;
}

static void dump(struct db *db, struct collect *c)
{
    memset(c, 0, sizeof *c);
    CHECK_INT(db_read(db, foreach_fn, c, err, sizeof err), 0);
}

static void test_db_groups_and_membership(void)
{
    char dir[64];
    struct db *db = open_new(dir);
    struct collect c;

    CHECK(db != NULL);
    if (!db)
        return;
    CHECK_INT(add_user(db, "alice", "alice@example.test"), 0);
    CHECK_INT(add_user(db, "bob", "bob@example.test"), 0);
    CHECK_INT(call(db, 1, f_group_add, "staff", NULL), 0);
    CHECK_INT(call(db, 1, f_group_add, "staff", NULL), DB_EXISTS);
    CHECK_INT(call(db, 1, f_group_add, "Bad Name", NULL), -1);
    CHECK_INT(call(db, 1, f_group_add, "admins", NULL), 0);
    CHECK_INT(call(db, 1, f_member_add, "staff", "alice"), 0);
    CHECK_INT(call(db, 1, f_member_add, "staff", "bob"), 0);
    CHECK_INT(call(db, 1, f_member_add, "staff", "bob"), DB_EXISTS);
    CHECK_INT(call(db, 1, f_member_add, "admins", "alice"), 0);
    CHECK_INT(call(db, 1, f_member_add, "nogroup", "alice"), DB_NOTFOUND);
    CHECK_INT(call(db, 1, f_member_add, "staff", "nobody"), DB_NOTFOUND);
    CHECK_INT(call(db, 0, f_is_member, "staff", "bob"), 1);
    CHECK_INT(call(db, 0, f_is_member, "admins", "bob"), 0);
    CHECK_INT(call(db, 0, f_is_member, "nogroup", "bob"), 0);

    dump(db, &c);
    CHECK_STR(c.text, "A:alice@example.test=alice*;bob@example.test=bob*;"
                      "G:admins:;admins:alice;staff:;staff:alice;staff:bob;U:alice;bob;");

    CHECK_INT(call(db, 1, f_member_del, "staff", "bob"), 0);
    CHECK_INT(call(db, 1, f_member_del, "staff", "bob"), DB_NOTFOUND);
    CHECK_INT(call(db, 0, f_is_member, "staff", "bob"), 0);
    CHECK_INT(call(db, 1, f_group_del, "staff", NULL), 0);
    CHECK_INT(call(db, 1, f_group_del, "staff", NULL), DB_NOTFOUND);
    CHECK_INT(call(db, 0, f_is_member, "staff", "alice"), 0);
    /* A new group of the same name starts empty. */
    CHECK_INT(call(db, 1, f_group_add, "staff", NULL), 0);
    dump(db, &c);
    CHECK_HAS(c.text, "G:admins:;admins:alice;staff:;U:");
    db_close(db);
    rm_rf(dir);
}

struct dead {
    uint64_t ids[16];
    int n;
};

static void dead_cb(uint64_t id, void *arg)
{
    struct dead *d = arg;

    if (d->n < 16)
        d->ids[d->n] = id;
    d->n++;
}

struct del_arg {
    const char *name;
    struct dead dead;
};

static int del_fn(struct db_txn *txn, void *arg)
{
    struct del_arg *da = arg;

    memset(&da->dead, 0, sizeof da->dead);
    return db_user_del(txn, da->name, dead_cb, &da->dead);
}

static void test_db_user_del_cleans_everything_and_reports_dead_files(void)
{
    char dir[64];
    struct db *db = open_new(dir);
    struct del_arg da = {.name = "alice"};
    struct collect c;
    uint32_t a_inbox, a_trash, b_inbox, refs;
    struct op op = {.fn = f_file_refs};

    CHECK(db != NULL);
    if (!db)
        return;
    CHECK_INT(add_user(db, "alice", "alice@example.test"), 0);
    CHECK_INT(add_user(db, "bob", "bob@example.test"), 0);
    CHECK_INT(call(db, 1, f_alias_add, "al@other.test", "alice"), 0);
    CHECK_INT(call(db, 1, f_group_add, "staff", NULL), 0);
    CHECK_INT(call(db, 1, f_member_add, "staff", "alice"), 0);
    CHECK_INT(call(db, 1, f_member_add, "staff", "bob"), 0);
    a_inbox = mailbox_id(db, "alice", "INBOX");
    a_trash = mailbox_id(db, "alice", "Trash");
    b_inbox = mailbox_id(db, "bob", "INBOX");
    /* File 1 only alice's (twice), file 2 shared with bob, file 3 bob's. */
    CHECK_INT(deliver(db, 1, 10, (uint32_t[]){a_inbox, a_trash, 0}, 0, NULL), 0);
    CHECK_INT(deliver(db, 2, 20, (uint32_t[]){a_inbox, b_inbox, 0}, 0, NULL), 0);
    CHECK_INT(deliver(db, 3, 30, (uint32_t[]){b_inbox, 0}, 0, NULL), 0);

    CHECK_INT(db_write(db, del_fn, &da, err, sizeof err), 0);
    CHECK_INT(da.dead.n, 1);
    CHECK_INT(da.dead.ids[0], 1);
    CHECK_INT(db_write(db, del_fn, &da, err, sizeof err), DB_NOTFOUND);

    CHECK_INT(call(db, 0, f_user_get, "alice", NULL), DB_NOTFOUND);
    CHECK_INT(call(db, 0, f_by_login, "al@other.test", NULL), DB_NOTFOUND);
    CHECK_INT(call(db, 0, f_resolve, "alice@example.test", NULL), DB_NOTFOUND);
    CHECK_INT(call(db, 0, f_is_member, "staff", "alice"), 0);
    CHECK_INT(call(db, 0, f_is_member, "staff", "bob"), 1);
    CHECK_INT(call(db, 0, f_domain_local, "other.test", NULL), 0);
    CHECK_INT(call(db, 0, f_domain_local, "example.test", NULL), 1);
    CHECK_INT(mailbox_id(db, "alice", "INBOX"), 0);
    op.fn = f_mbox_by_id;
    op.id = a_inbox;
    CHECK_INT(run_read(db, &op), DB_NOTFOUND);
    op.fn = f_msg_get;
    op.refs = 1; /* uid */
    CHECK_INT(run_read(db, &op), DB_NOTFOUND);
    op.fn = f_file_refs;
    op.file_id = 1;
    CHECK_INT(run_read(db, &op), DB_NOTFOUND);
    op.file_id = 2;
    CHECK_INT(run_read(db, &op), 0);
    refs = op.refs;
    CHECK_INT(refs, 1);
    dump(db, &c);
    CHECK_STR(c.text, "A:bob@example.test=bob*;G:staff:;staff:bob;U:bob;");

    /* Bob's turn: files 2 and 3 die. */
    da.name = "bob";
    CHECK_INT(db_write(db, del_fn, &da, err, sizeof err), 0);
    CHECK_INT(da.dead.n, 2);
    CHECK(da.dead.ids[0] + da.dead.ids[1] == 5);
    dump(db, &c);
    CHECK_STR(c.text, "A:G:staff:;U:");
    db_close(db);
    rm_rf(dir);
}

/* ---- mailboxes and messages ---- */

static void test_db_mailbox_create_get_by_id_and_inbox_any_case(void)
{
    char dir[64];
    struct db *db = open_new(dir);
    struct op op = {.fn = f_mbox_create, .a = "alice", .b = "Archive"};
    struct db_mailbox made;
    uint32_t inbox;

    CHECK(db != NULL);
    if (!db)
        return;
    CHECK_INT(add_user(db, "alice", "alice@example.test"), 0);
    CHECK_INT(run_write(db, &op), 0);
    made = op.mb;
    CHECK_STR(made.name, "Archive");
    CHECK_STR(made.user, "alice");
    CHECK_INT(made.special, DB_SPECIAL_ARCHIVE);
    CHECK_INT(made.uidnext, 1);
    {
        struct op junk = {.fn = f_mbox_get, .a = "alice", .b = "Junk"};

        CHECK_INT(run_read(db, &junk), 0);
        CHECK(made.uidvalidity > junk.mb.uidvalidity); /* they only rise */
        CHECK(made.id > junk.mb.id);
    }
    CHECK_INT(run_write(db, &op), DB_EXISTS);
    op.a = "nobody";
    CHECK_INT(run_write(db, &op), DB_NOTFOUND);
    op.a = "alice";
    op.b = "";
    CHECK_INT(run_write(db, &op), -1);
    op.b = "bad\nname";
    CHECK_INT(run_write(db, &op), -1);
    op.b = "inbox";
    CHECK_INT(run_write(db, &op), DB_EXISTS);

    op.fn = f_mbox_by_id;
    op.id = made.id;
    CHECK_INT(run_read(db, &op), 0);
    CHECK_STR(op.mb.name, "Archive");
    CHECK_STR(op.mb.user, "alice");
    CHECK_INT(op.mb.uidvalidity, made.uidvalidity);
    op.id = 9999;
    CHECK_INT(run_read(db, &op), DB_NOTFOUND);

    inbox = mailbox_id(db, "alice", "INBOX");
    CHECK(inbox != 0);
    CHECK_INT(mailbox_id(db, "alice", "inbox"), inbox);
    CHECK_INT(mailbox_id(db, "alice", "InBoX"), inbox);
    CHECK_INT(mailbox_id(db, "alice", "sent"), 0); /* only INBOX ignores case */
    db_close(db);
    rm_rf(dir);
}

struct msg_list {
    int n;
    uint32_t uids[16];
    uint64_t modseqs[16];
};

static int msg_list_cb(const struct db_message *m, void *arg)
{
    struct msg_list *l = arg;

    if (l->n < 16) {
        l->uids[l->n] = m->uid;
        l->modseqs[l->n] = m->modseq;
    }
    l->n++;
    return 0;
}

static int list_msgs_fn(struct db_txn *txn, void *arg)
{
    struct op *op = arg;

    return db_message_foreach(txn, op->id, msg_list_cb, (void *)op->a);
}

static int missing_file_fn(struct db_txn *txn, void *arg)
{
    struct db_message m = {.file_id = 424242};

    return db_message_add(txn, *(uint32_t *)arg, &m);
}

static void test_db_message_add_uids_ascending_and_counters(void)
{
    char dir[64];
    struct db *db = open_new(dir);
    struct msg_list l = {0};
    struct op op = {.fn = f_mbox_get, .a = "alice", .b = "INBOX"};
    uint32_t inbox, other, uids[8];

    CHECK(db != NULL);
    if (!db)
        return;
    CHECK_INT(add_user(db, "alice", "alice@example.test"), 0);
    inbox = mailbox_id(db, "alice", "INBOX");
    other = mailbox_id(db, "alice", "Sent");
    for (uint64_t f = 1; f <= 5; f++) {
        CHECK_INT(deliver(db, f, 100 * f, (uint32_t[]){inbox, 0}, f == 2 ? DB_FLAG_SEEN : 0, uids),
                  0);
        CHECK_INT(uids[0], f);
    }
    CHECK_INT(deliver(db, 9, 7, (uint32_t[]){other, inbox, 0}, 0, uids), 0);
    CHECK_INT(uids[0], 1);
    CHECK_INT(uids[1], 6);
    CHECK_INT(run_read(db, &op), 0);
    CHECK_INT(op.mb.messages, 6);
    CHECK_INT(op.mb.unseen, 5);
    CHECK_INT(op.mb.size, 100 + 200 + 300 + 400 + 500 + 7);
    CHECK_INT(op.mb.uidnext, 7);
    CHECK_INT(op.mb.highestmodseq, 7);

    op.fn = f_msg_get;
    op.id = inbox;
    op.refs = 2;
    CHECK_INT(run_read(db, &op), 0);
    CHECK_INT(op.msg.uid, 2);
    CHECK_INT(op.msg.flags, DB_FLAG_SEEN);
    CHECK_INT(op.msg.file_id, 2);
    CHECK_INT(op.msg.size, 200);
    CHECK_INT(op.msg.internaldate, 1000);
    CHECK_INT(op.msg.modseq, 3);

    op.a = (const char *)&l;
    CHECK_INT(db_read(db, list_msgs_fn, &op, err, sizeof err), 0);
    CHECK_INT(l.n, 6);
    for (int i = 0; i < 6; i++) {
        CHECK_INT(l.uids[i], i + 1);
        if (i)
            CHECK(l.modseqs[i] > l.modseqs[i - 1]);
    }
    op.fn = f_file_refs;
    op.file_id = 9;
    CHECK_INT(run_read(db, &op), 0);
    CHECK_INT(op.refs, 2);
    CHECK_INT(deliver(db, 9, 7, (uint32_t[]){inbox, 0}, 0, NULL), DB_EXISTS);
    CHECK_INT(deliver(db, 10, 7, (uint32_t[]){12345, 0}, 0, NULL), DB_NOTFOUND);
    CHECK_INT(db_write(db, missing_file_fn, &inbox, err, sizeof err), -1);
    CHECK_HAS(err, "no files record");
    db_close(db);
    rm_rf(dir);
}

static void test_db_ids_and_uidvalidity_never_reused_after_reopen(void)
{
    char dir[64];
    struct db *db = open_new(dir);
    struct del_arg da = {.name = "alice"};
    struct op op = {.fn = f_mbox_get, .a = "alice", .b = "INBOX"};
    uint32_t first_inbox, first_uidvalidity;

    CHECK(db != NULL);
    if (!db)
        return;
    CHECK_INT(add_user(db, "alice", "alice@example.test"), 0);
    CHECK_INT(run_read(db, &op), 0);
    first_inbox = op.mb.id;
    first_uidvalidity = op.mb.uidvalidity;
    CHECK_INT(db_write(db, del_fn, &da, err, sizeof err), 0);
    db_close(db);

    db = db_open(dir, 0, (uid_t)-1, (gid_t)-1, err, sizeof err);
    CHECK(db != NULL);
    if (!db)
        return;
    CHECK_INT(add_user(db, "alice", "alice@example.test"), 0);
    CHECK_INT(run_read(db, &op), 0);
    CHECK(op.mb.id > first_inbox + 4);
    CHECK(op.mb.uidvalidity > first_uidvalidity + 4);
    op.fn = f_user_get;
    CHECK_INT(run_read(db, &op), 0);
    CHECK_INT(op.u.id, 2);
    db_close(db);
    rm_rf(dir);
}

/* ---- transactions and the map ---- */

static int fail_after_add_fn(struct db_txn *txn, void *arg)
{
    struct db_user u = {0};

    (void)arg;
    snprintf(u.name, sizeof u.name, "ghost");
    snprintf(u.address, sizeof u.address, "ghost@example.test");
    if (db_user_add(txn, &u) != 0)
        return -1;
    return db_txn_fail(txn, "changed my mind about %s", "ghost");
}

static void test_db_write_fn_failure_aborts_everything(void)
{
    char dir[64];
    struct db *db = open_new(dir);

    CHECK(db != NULL);
    if (!db)
        return;
    CHECK_INT(db_write(db, fail_after_add_fn, NULL, err, sizeof err), -1);
    CHECK_STR(err, "changed my mind about ghost");
    CHECK_INT(call(db, 0, f_user_get, "ghost", NULL), DB_NOTFOUND);
    CHECK_INT(call(db, 0, f_domain_local, "example.test", NULL), 0);
    db_close(db);
    rm_rf(dir);
}

static void test_db_map_grows_when_full(void)
{
    char dir[64], name[32], addr[64];
    struct db *db;
    size_t before;
    int ok = 1;

    db_set_initial_mapsize(128 << 10);
    db = open_new(dir);
    db_set_initial_mapsize(0);
    CHECK(db != NULL);
    if (!db)
        return;
    before = db_map_size(db);
    CHECK_INT(before, 128 << 10);
    for (int i = 0; i < 600 && ok; i++) {
        snprintf(name, sizeof name, "user%d", i);
        snprintf(addr, sizeof addr, "user%d@example.test", i);
        ok = add_user(db, name, addr) == 0;
    }
    CHECK(ok);
    if (!ok)
        fprintf(stderr, "  %s\n", err);
    CHECK(db_resize_count(db) >= 2);
    CHECK(db_map_size(db) >= before * 4);
    CHECK_INT(call(db, 0, f_user_get, "user0", NULL), 0);
    CHECK_INT(call(db, 0, f_user_get, "user599", NULL), 0);
    CHECK_INT(mailbox_id(db, "user599", "Junk") != 0, 1);
    /* A reopened handle starts with the grown map, not the small one. */
    before = db_map_size(db);
    db_close(db);
    db_set_initial_mapsize(128 << 10);
    db = db_open(dir, 0, (uid_t)-1, (gid_t)-1, err, sizeof err);
    db_set_initial_mapsize(0);
    CHECK(db != NULL);
    if (db) {
        CHECK_INT(db_map_size(db), before);
        CHECK_INT(db_resize_count(db), 0);
        db_close(db);
    }
    rm_rf(dir);
}

struct many {
    int n;
    int runs;
};

static int many_users_fn(struct db_txn *txn, void *arg)
{
    struct many *m = arg;

    m->runs++;
    for (int i = 0; i < m->n; i++) {
        struct db_user u = {0};
        int rc;

        snprintf(u.name, sizeof u.name, "bulk%d", i);
        snprintf(u.address, sizeof u.address, "bulk%d@example.test", i);
        if ((rc = db_user_add(txn, &u)) != 0)
            return rc;
    }
    return 0;
}

static void test_db_one_txn_bigger_than_the_map_is_rerun_after_growth(void)
{
    char dir[64];
    struct many m = {400, 0};
    struct db *db;

    db_set_initial_mapsize(128 << 10);
    db = open_new(dir);
    db_set_initial_mapsize(0);
    CHECK(db != NULL);
    if (!db)
        return;
    CHECK_INT(db_write(db, many_users_fn, &m, err, sizeof err), 0);
    CHECK(m.runs >= 2);
    CHECK_INT(m.runs, (int)db_resize_count(db) + 1);
    CHECK_INT(call(db, 0, f_user_get, "bulk399", NULL), 0);
    /* Ids were not burnt by the aborted runs. */
    {
        struct op op = {.fn = f_user_get, .a = "bulk399"};

        CHECK_INT(run_read(db, &op), 0);
        CHECK_INT(op.u.id, 400);
    }
    db_close(db);
    rm_rf(dir);
}

static void test_db_forked_process_sees_commits_and_grown_map(void)
{
    char dir[64];
    struct db *db;
    pid_t pid;
    int status;

    db_set_initial_mapsize(128 << 10);
    db = open_new(dir);
    CHECK(db != NULL);
    if (!db)
        return;
    CHECK_INT(add_user(db, "parent", "parent@example.test"), 0);
    fflush(stderr);
    pid = fork();
    if (pid == 0) {
        /* A child opens its own handle (never use one across fork). */
        struct db *cdb = db_open(dir, 0, (uid_t)-1, (gid_t)-1, err, sizeof err);
        char name[32], addr[64];

        if (cdb == NULL || call(cdb, 0, f_user_get, "parent", NULL) != 0)
            _exit(2);
        for (int i = 0; i < 300; i++) {
            snprintf(name, sizeof name, "child%d", i);
            snprintf(addr, sizeof addr, "child%d@example.test", i);
            if (add_user(cdb, name, addr) != 0)
                _exit(3);
        }
        if (db_resize_count(cdb) == 0)
            _exit(4);
        db_close(cdb);
        _exit(0);
    }
    CHECK(pid > 0);
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status));
    CHECK_INT(WEXITSTATUS(status), 0);
    /* The child's map outgrew ours: the next transaction adopts its size. */
    CHECK_INT(call(db, 0, f_user_get, "child299", NULL), 0);
    CHECK(db_map_size(db) > (128 << 10));
    CHECK_INT(db_resize_count(db), 0);
    CHECK_INT(add_user(db, "parent2", "parent2@example.test"), 0);
    db_set_initial_mapsize(0);
    db_close(db);
    rm_rf(dir);
}

/* ---- files, ownership, corruption ---- */

static void test_db_open_without_create_needs_an_environment(void)
{
    char dir[64], sub[128];
    struct db *db;

    make_tmpdir(dir);
    db = db_open(dir, 0, (uid_t)-1, (gid_t)-1, err, sizeof err);
    CHECK(db == NULL);
    CHECK_HAS(err, "data.mdb");
    snprintf(sub, sizeof sub, "%s/missing", dir);
    db = db_open(sub, 0, (uid_t)-1, (gid_t)-1, err, sizeof err);
    CHECK(db == NULL);
    CHECK_HAS(err, "missing");
    db = db_open(sub, 1, (uid_t)-1, (gid_t)-1, err, sizeof err);
    CHECK(db != NULL);
    db_close(db);
    rm_rf(dir);
}

static int get_alice_fn(struct db_txn *txn, void *arg)
{
    return db_user_get(txn, "alice", arg);
}

static int exists_in(const char *dir, const char *name)
{
    char path[128];

    snprintf(path, sizeof path, "%s/%s", dir, name);
    return access(path, F_OK) == 0;
}

static void test_db_open_readonly_reads_and_makes_nothing(void)
{
    char dir[64], lock[128];
    struct db_user u;
    struct db *db;

    make_tmpdir(dir);
    snprintf(lock, sizeof lock, "%s/lock.mdb", dir);
    CHECK(db_open_readonly(dir, err, sizeof err) == NULL);
    CHECK_HAS(err, "data.mdb");
    CHECK(!exists_in(dir, "data.mdb") && !exists_in(dir, "lock.mdb"));
    db = db_open(dir, 1, (uid_t)-1, (gid_t)-1, err, sizeof err);
    CHECK(db != NULL && add_user(db, "alice", "alice@example.org") == 0);
    db_close(db);
    for (int pass = 0; pass < 2; pass++) {   /* with lock.mdb, then without */
        db = db_open_readonly(dir, err, sizeof err);
        CHECK(db != NULL);
        if (db == NULL)
            break;
        CHECK_INT(db_read(db, get_alice_fn, &u, err, sizeof err), 0);
        CHECK_STR(u.address, "alice@example.org");
        CHECK(add_user(db, "bob", "bob@example.org") != 0);
        db_close(db);
        CHECK_INT(exists_in(dir, "lock.mdb"), pass == 0);
        unlink(lock);
    }
    rm_rf(dir);
}

/* Write raw bytes with LMDB itself (our handle closed, as LMDB requires). */
static int raw_put(const char *dir, const char *dbname, const void *k, size_t klen, const void *v,
                   size_t vlen)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    MDB_val key = {klen, (void *)k}, val = {vlen, (void *)v};
    int rc;

    if (mdb_env_create(&env) != 0)
        return -1;
    mdb_env_set_maxdbs(env, 32);
    rc = mdb_env_open(env, dir, 0, 0600);
    if (rc == 0)
        rc = mdb_txn_begin(env, NULL, 0, &txn);
    if (rc == 0) {
        rc = mdb_dbi_open(txn, dbname, 0, &dbi);
        if (rc == 0)
            rc = mdb_put(txn, dbi, &key, &val, 0);
        rc = rc ? (mdb_txn_abort(txn), rc) : mdb_txn_commit(txn);
    }
    mdb_env_close(env);
    return rc;
}

static void test_db_corrupt_record_is_an_error_not_an_overflow(void)
{
    char dir[64];
    struct db *db = open_new(dir);
    /* version 1, id, created, then an address length of 60000. */
    static const unsigned char bad_len[] = {1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x60, 0xea};
    static const unsigned char bad_version[] = {9, 1, 0, 0, 0};
    static const unsigned char trailing[] = {1, 0, 3, 0, 'b', 'o', 'b', 'x'};

    CHECK(db != NULL);
    if (!db)
        return;
    db_close(db);
    CHECK_INT(raw_put(dir, "users", "bob", 3, bad_len, sizeof bad_len), 0);
    CHECK_INT(raw_put(dir, "users", "eve", 3, bad_version, sizeof bad_version), 0);
    CHECK_INT(raw_put(dir, "addresses", "x@y", 3, trailing, sizeof trailing), 0);
    db = db_open(dir, 0, (uid_t)-1, (gid_t)-1, err, sizeof err);
    CHECK(db != NULL);
    if (!db)
        return;
    CHECK_INT(call(db, 0, f_user_get, "bob", NULL), -1);
    CHECK_HAS(err, "corrupt users record");
    CHECK_INT(call(db, 0, f_user_get, "eve", NULL), -1);
    CHECK_HAS(err, "corrupt");
    CHECK_INT(call(db, 0, f_resolve, "x@y", NULL), -1);
    CHECK_HAS(err, "corrupt addresses record");
    db_close(db);

    /* A schema version we do not know refuses the whole environment. */
    CHECK_INT(raw_put(dir, "meta", "version", 7, "\x63\0\0\0", 4), 0);
    db = db_open(dir, 0, (uid_t)-1, (gid_t)-1, err, sizeof err);
    CHECK(db == NULL);
    CHECK_HAS(err, "schema version 99");
    db_close(db);
    rm_rf(dir);
}

static int run_as_nobody_open(const char *dir, char *msg, size_t msglen)
{
    int fds[2], status;
    pid_t pid;
    ssize_t n;

    if (pipe(fds) != 0)
        return -1;
    fflush(stderr);
    if ((pid = fork()) == 0) {
        struct db *db;

        close(fds[0]);
        if (setgid(65534) != 0 || setuid(65534) != 0)
            _exit(9);
        db = db_open(dir, 0, (uid_t)-1, (gid_t)-1, err, sizeof err);
        if (db == NULL) {
            if (write(fds[1], err, strlen(err)) < 0)
                _exit(8);
            _exit(1);
        }
        _exit(call(db, 1, f_group_add, "fromchild", NULL) == 0 ? 0 : 3);
    }
    close(fds[1]);
    n = read(fds[0], msg, msglen - 1);
    msg[n > 0 ? n : 0] = '\0';
    close(fds[0]);
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
        return -1;
    return WEXITSTATUS(status);
}

static void test_db_chowns_files_to_owner_and_wrong_owner_is_explained(void)
{
    char dir[64], data[128], path[160], msg[512];
    struct stat st;
    struct db *db;

    if (geteuid() != 0) {
        fprintf(stderr, "  (skipped: needs root)\n");
        return;
    }
    make_tmpdir(dir);
    CHECK_INT(chmod(dir, 0711), 0);
    /* Made by root for uid 65534: the files and the new directory are its. */
    snprintf(data, sizeof data, "%s/owned", dir);
    db = db_open(data, 1, 65534, 65534, err, sizeof err);
    CHECK(db != NULL);
    db_close(db);
    snprintf(path, sizeof path, "%s/data.mdb", data);
    CHECK_INT(stat(path, &st), 0);
    CHECK_INT(st.st_uid, 65534);
    CHECK_INT(st.st_mode & 0777, 0600);
    snprintf(path, sizeof path, "%s/lock.mdb", data);
    CHECK_INT(stat(path, &st), 0);
    CHECK_INT(st.st_uid, 65534);
    CHECK_INT(stat(data, &st), 0);
    CHECK_INT(st.st_uid, 65534);
    CHECK_INT(run_as_nobody_open(data, msg, sizeof msg), 0);

    /* Made by root for root: the unprivileged user is told what is wrong. */
    snprintf(data, sizeof data, "%s/rootowned", dir);
    db = db_open(data, 1, (uid_t)-1, (gid_t)-1, err, sizeof err);
    CHECK(db != NULL);
    db_close(db);
    CHECK_INT(chmod(data, 0755), 0);
    CHECK_INT(run_as_nobody_open(data, msg, sizeof msg), 1);
    CHECK_HAS(msg, ".mdb: permission denied");
    CHECK_HAS(msg, "owned by uid 0");
    CHECK_HAS(msg, "wrong ownership");

    /* Opening with an owner repairs it. */
    db = db_open(data, 0, 65534, 65534, err, sizeof err);
    CHECK(db != NULL);
    db_close(db);
    CHECK_INT(run_as_nobody_open(data, msg, sizeof msg), 0);
    rm_rf(dir);
}

int main(void)
{
    RUN(test_db_valid_names_table);
    RUN(test_db_valid_addresses_table);
    RUN(test_db_address_normalize_lowercases_everything);
    RUN(test_db_user_add_creates_address_and_five_special_mailboxes);
    RUN(test_db_user_login_by_name_primary_or_alias_any_case);
    RUN(test_db_duplicate_user_or_address_is_exists);
    RUN(test_db_user_add_rejects_invalid_name_or_address);
    RUN(test_db_alias_add_resolve_and_del);
    RUN(test_db_plus_addressing_resolves_to_user);
    RUN(test_db_domain_is_local_follows_addresses);
    RUN(test_db_groups_and_membership);
    RUN(test_db_user_del_cleans_everything_and_reports_dead_files);
    RUN(test_db_mailbox_create_get_by_id_and_inbox_any_case);
    RUN(test_db_message_add_uids_ascending_and_counters);
    RUN(test_db_ids_and_uidvalidity_never_reused_after_reopen);
    RUN(test_db_write_fn_failure_aborts_everything);
    RUN(test_db_map_grows_when_full);
    RUN(test_db_one_txn_bigger_than_the_map_is_rerun_after_growth);
    RUN(test_db_forked_process_sees_commits_and_grown_map);
    RUN(test_db_open_without_create_needs_an_environment);
    RUN(test_db_open_readonly_reads_and_makes_nothing);
    RUN(test_db_corrupt_record_is_an_error_not_an_overflow);
    RUN(test_db_chowns_files_to_owner_and_wrong_owner_is_explained);
    return check_done();
}
