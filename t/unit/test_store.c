/*
 * test_store.c - message files and durable delivery: sharing, group commit,
 * crashes between file and index, recovery, and deleting a user's files.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "mailcore/db.h"
#include "mailcore/store.h"

static char err[512];

/* ---- fixtures ---- */

struct env {
    char dir[64];
    struct db *db;
    struct store *s;
};

static void rm_rf(const char *dir)
{
    char cmd[512];

    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", dir);
}

static int env_open(struct env *e)
{
    e->db = db_open(e->dir, 0, (uid_t)-1, (gid_t)-1, err, sizeof err);
    if (e->db == NULL) {
        fprintf(stderr, "db_open: %s\n", err);
        return -1;
    }
    e->s = store_open(e->db, e->dir, err, sizeof err);
    if (e->s == NULL) {
        fprintf(stderr, "store_open: %s\n", err);
        db_close(e->db);
        return -1;
    }
    return 0;
}

static void env_close(struct env *e)
{
    store_close(e->s);
    db_close(e->db);
    e->s = NULL;
    e->db = NULL;
}

static int add_user_fn(struct db_txn *txn, void *arg)
{
    const char *name = arg;
    struct db_user u = {0};

    snprintf(u.name, sizeof u.name, "%s", name);
    snprintf(u.address, sizeof u.address, "%s@example.test", name);
    return db_user_add(txn, &u);
}

/* A fresh data directory with users alice and bob, db and store open. */
static int env_new(struct env *e)
{
    struct db *db;

    memset(e, 0, sizeof *e);
    snprintf(e->dir, sizeof e->dir, "/tmp/mc-test-store-XXXXXX");
    if (mkdtemp(e->dir) == NULL)
        return -1;
    if ((db = db_open(e->dir, 1, (uid_t)-1, (gid_t)-1, err, sizeof err)) == NULL)
        return -1;
    if (db_write(db, add_user_fn, "alice", err, sizeof err) != 0 ||
        db_write(db, add_user_fn, "bob", err, sizeof err) != 0) {
        db_close(db);
        return -1;
    }
    db_close(db);
    return env_open(e);
}

static void env_free(struct env *e)
{
    env_close(e);
    rm_rf(e->dir);
}

struct mbox_arg {
    const char *user, *name;
    struct db_mailbox mb;
};

static int mbox_get_fn(struct db_txn *txn, void *arg)
{
    struct mbox_arg *ma = arg;

    return db_mailbox_get(txn, ma->user, ma->name, &ma->mb);
}

static struct db_mailbox mailbox(struct env *e, const char *user, const char *name)
{
    struct mbox_arg ma = {user, name, {0}};

    if (db_read(e->db, mbox_get_fn, &ma, err, sizeof err) != 0)
        memset(&ma.mb, 0, sizeof ma.mb);
    return ma.mb;
}

struct msg_arg {
    uint32_t mailbox, uid;
    struct db_message m;
};

static int msg_get_fn(struct db_txn *txn, void *arg)
{
    struct msg_arg *ma = arg;

    return db_message_get(txn, ma->mailbox, ma->uid, &ma->m);
}

static int message(struct env *e, uint32_t mailbox_id, uint32_t uid, struct db_message *m)
{
    struct msg_arg ma = {mailbox_id, uid, {0}};
    int rc = db_read(e->db, msg_get_fn, &ma, err, sizeof err);

    if (m)
        *m = ma.m;
    return rc;
}

struct refs_arg {
    uint64_t id;
    uint32_t refs;
};

static int refs_fn(struct db_txn *txn, void *arg)
{
    struct refs_arg *ra = arg;

    return db_file_refs(txn, ra->id, &ra->refs);
}

/* The file's reference count, or -1 when it has no files record. */
static long file_refs(struct env *e, uint64_t id)
{
    struct refs_arg ra = {id, 0};

    return db_read(e->db, refs_fn, &ra, err, sizeof err) == 0 ? (long)ra.refs : -1;
}

static struct store_msg *new_msg(struct env *e, const char *text, uint32_t mbox1, uint32_t mbox2)
{
    struct store_msg *m = store_msg_new(e->s, err, sizeof err);

    if (m == NULL)
        return NULL;
    if (store_msg_write(m, text, strlen(text)) != 0 ||
        (mbox1 && store_msg_add_rcpt(m, mbox1, 0) != 0) ||
        (mbox2 && store_msg_add_rcpt(m, mbox2, DB_FLAG_SEEN) != 0)) {
        store_msg_free(m);
        return NULL;
    }
    return m;
}

/* The whole file as a string (or "" when it cannot be read). */
static const char *file_text(struct env *e, uint64_t id)
{
    static char buf[4096];
    int fd = store_file_open(e->s, id);
    ssize_t n = 0;

    buf[0] = '\0';
    if (fd >= 0) {
        n = read(fd, buf, sizeof buf - 1);
        close(fd);
    }
    buf[n > 0 ? n : 0] = '\0';
    return buf;
}

/* Regular files under dir/sub (one level of subdirectories for msg). */
static int count_files(const struct env *e, const char *sub)
{
    char path[1024];
    DIR *d;
    struct dirent *de;
    int n = 0;

    snprintf(path, sizeof path, "%s/%s", e->dir, sub);
    if ((d = opendir(path)) == NULL)
        return -1;
    while ((de = readdir(d)) != NULL) {
        char p[512];
        struct stat st;

        if (de->d_name[0] == '.')
            continue;
        snprintf(p, sizeof p, "%s/%s", sub, de->d_name);
        snprintf(path, sizeof path, "%s/%s", e->dir, p);
        if (stat(path, &st) != 0)
            continue;
        if (S_ISDIR(st.st_mode))
            n += count_files(e, p);
        else
            n++;
    }
    closedir(d);
    return n;
}

static int file_exists(const struct env *e, uint64_t id)
{
    char path[256];
    struct stat st;

    if (store_file_path(e->s, id, path, sizeof path) != 0)
        return 0;
    return stat(path, &st) == 0;
}

/* ---- tests ---- */

static void test_store_open_makes_tmp_and_msg(void)
{
    struct env e;
    char path[128];
    struct stat st;

    CHECK_INT(env_new(&e), 0);
    if (!e.s)
        return;
    snprintf(path, sizeof path, "%s/tmp", e.dir);
    CHECK(stat(path, &st) == 0 && S_ISDIR(st.st_mode) && (st.st_mode & 0777) == 0700);
    snprintf(path, sizeof path, "%s/msg", e.dir);
    CHECK(stat(path, &st) == 0 && S_ISDIR(st.st_mode));
    CHECK(store_db(e.s) == e.db);
    CHECK(store_open(e.db, "/nonexistent/mc-store", err, sizeof err) == NULL);
    CHECK_HAS(err, "/nonexistent/mc-store");
    env_free(&e);
}

static void test_store_two_mailboxes_share_one_file_with_exact_bytes(void)
{
    struct env e;
    struct store_msg *m;
    struct db_mailbox a, b;
    struct db_message dm;
    char path[256];
    struct stat st;
    static const char text[] = "Subject: hi\r\n\r\nbody\r\n.with dot\r\n\0after nul";
    size_t len = sizeof text - 1;

    CHECK_INT(env_new(&e), 0);
    if (!e.s)
        return;
    a = mailbox(&e, "alice", "INBOX");
    b = mailbox(&e, "bob", "INBOX");
    m = store_msg_new(e.s, err, sizeof err);
    CHECK(m != NULL);
    if (!m) {
        env_free(&e);
        return;
    }
    CHECK_INT(store_msg_write(m, text, 20), 0);
    CHECK_INT(store_msg_write(m, text + 20, len - 20), 0);
    CHECK_INT(store_msg_size(m), len);
    store_msg_set_internaldate(m, 1234567890);
    CHECK_INT(store_msg_add_rcpt(m, a.id, 0), 0);
    CHECK_INT(store_msg_add_rcpt(m, b.id, DB_FLAG_SEEN), 0);
    CHECK_INT(store_msg_nrcpt(m), 2);
    CHECK_INT(count_files(&e, "tmp"), 1);
    CHECK_INT(store_commit(e.s, &m, 1, err, sizeof err), 0);
    CHECK_INT(count_files(&e, "tmp"), 0);
    CHECK_INT(count_files(&e, "msg"), 1);
    CHECK_INT(store_msg_uid(m, 0), 1);
    CHECK_INT(store_msg_uid(m, 1), 1);
    CHECK_INT(file_refs(&e, store_msg_file_id(m)), 2);

    /* The bytes, NUL and all, and a 0600 file at the documented path. */
    {
        char buf[128];
        int fd = store_file_open(e.s, store_msg_file_id(m));
        ssize_t n;

        CHECK(fd >= 0);
        n = fd >= 0 ? read(fd, buf, sizeof buf) : -1;
        CHECK_INT(n, len);
        CHECK(n == (ssize_t)len && memcmp(buf, text, len) == 0);
        if (fd >= 0)
            close(fd);
    }
    CHECK_INT(store_file_path(e.s, store_msg_file_id(m), path, sizeof path), 0);
    CHECK(strncmp(path, e.dir, strlen(e.dir)) == 0);
    CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);
    CHECK_INT(strlen(strrchr(path, '/') + 1), 16);
    CHECK(strncmp(strrchr(path, '/') - 2, strrchr(path, '/') + 1, 2) == 0); /* msg/XX/XX... */
    CHECK_INT(store_file_path(e.s, 1, path, 10), -1);

    CHECK_INT(message(&e, a.id, 1, &dm), 0);
    CHECK_INT(dm.file_id, store_msg_file_id(m));
    CHECK_INT(dm.size, len);
    CHECK_INT(dm.internaldate, 1234567890);
    CHECK_INT(dm.flags, 0);
    CHECK_INT(message(&e, b.id, 1, &dm), 0);
    CHECK_INT(dm.flags, DB_FLAG_SEEN);
    a = mailbox(&e, "alice", "INBOX");
    b = mailbox(&e, "bob", "INBOX");
    CHECK_INT(a.messages, 1);
    CHECK_INT(a.unseen, 1);
    CHECK_INT(a.size, len);
    CHECK_INT(b.unseen, 0);
    store_msg_free(m);
    CHECK_INT(count_files(&e, "msg"), 1); /* freeing a committed message keeps it */
    env_free(&e);
}

static void test_store_same_mailbox_twice_gets_one_copy(void)
{
    struct env e;
    struct store_msg *m;
    uint32_t inbox;

    CHECK_INT(env_new(&e), 0);
    if (!e.s)
        return;
    inbox = mailbox(&e, "alice", "INBOX").id;
    m = new_msg(&e, "x", inbox, inbox);
    CHECK(m != NULL);
    CHECK_INT(store_msg_nrcpt(m), 1);
    CHECK_INT(store_commit(e.s, &m, 1, err, sizeof err), 0);
    CHECK_INT(mailbox(&e, "alice", "INBOX").messages, 1);
    CHECK_INT(file_refs(&e, store_msg_file_id(m)), 1);
    store_msg_free(m);
    env_free(&e);
}

static void test_store_group_commit_of_several_messages_costs_three_syncs(void)
{
    struct env e;
    struct store_msg *m[8];
    char text[8][32];
    uint32_t a, b;
    unsigned long before, syncs;

    CHECK_INT(env_new(&e), 0);
    if (!e.s)
        return;
    a = mailbox(&e, "alice", "INBOX").id;
    b = mailbox(&e, "bob", "Junk").id;
    for (int i = 0; i < 8; i++) {
        snprintf(text[i], sizeof text[i], "message %d\r\n", i);
        m[i] = new_msg(&e, text[i], a, i % 2 ? b : 0);
        CHECK(m[i] != NULL);
    }
    before = store_fsync_count();
    CHECK_INT(store_commit(e.s, m, 8, err, sizeof err), 0);
    syncs = store_fsync_count() - before;
    /* Group commit: one syncfs for all 8 files and their directories, 2 for
     * LMDB -- not one per file and per directory. */
    CHECK_INT(syncs, 1 + 2);
    for (int i = 0; i < 8; i++) {
        CHECK_INT(store_msg_uid(m[i], 0), i + 1);
        if (i % 2)
            CHECK_INT(store_msg_uid(m[i], 1), i / 2 + 1);
        CHECK_STR(file_text(&e, store_msg_file_id(m[i])), text[i]);
        for (int j = 0; j < i; j++)
            CHECK(store_msg_file_id(m[i]) != store_msg_file_id(m[j]));
    }
    CHECK_INT(mailbox(&e, "alice", "INBOX").messages, 8);
    CHECK_INT(mailbox(&e, "bob", "Junk").messages, 4);
    CHECK_INT(count_files(&e, "msg"), 8);
    CHECK_INT(store_commit(e.s, m, 1, err, sizeof err), -1); /* not twice */
    for (int i = 0; i < 8; i++)
        store_msg_free(m[i]);
    CHECK_INT(count_files(&e, "msg"), 8);
    CHECK_INT(store_commit(e.s, NULL, 0, err, sizeof err), 0);
    env_free(&e);
}

static void test_store_group_commit_survives_map_growth(void)
{
    struct env e;
    struct store_msg *m[200];
    uint32_t a;
    size_t before;
    int n = 0;

    db_set_initial_mapsize(128 << 10);
    CHECK_INT(env_new(&e), 0);
    db_set_initial_mapsize(0);
    if (!e.s)
        return;
    a = mailbox(&e, "alice", "INBOX").id;
    before = db_map_size(e.db);
    for (int i = 0; i < 200; i++, n++)
        if ((m[i] = new_msg(&e, "grow", a, mailbox(&e, "bob", "INBOX").id)) == NULL)
            break;
    CHECK_INT(n, 200);
    CHECK_INT(store_commit(e.s, m, (size_t)n, err, sizeof err), 0);
    CHECK(db_map_size(e.db) > before);
    for (int i = 0; i < n; i++) {
        CHECK_INT(store_msg_uid(m[i], 0), i + 1);
        store_msg_free(m[i]);
    }
    CHECK_INT(mailbox(&e, "alice", "INBOX").messages, 200);
    CHECK_INT(mailbox(&e, "alice", "INBOX").uidnext, 201);
    env_free(&e);
}

static int crash_at_point;
static const char *crash_point;

static void crash_hook(const char *point)
{
    if (strcmp(point, crash_point) == 0)
        _exit(crash_at_point);
}

/* In a child with its own handles: write a message to alice's INBOX and
 * die at point.  Returns the child's exit status; *id gets the file id. */
static int deliver_and_crash(struct env *e, const char *point, const char *text, uint64_t *id)
{
    int fds[2], status;
    pid_t pid;

    if (pipe(fds) != 0)
        return -1;
    fflush(stderr);
    if ((pid = fork()) == 0) {
        struct env c = *e;
        struct store_msg *m;
        uint64_t fid;

        close(fds[0]);
        if (env_open(&c) != 0)
            _exit(2);
        if ((m = new_msg(&c, text, mailbox(&c, "alice", "INBOX").id, 0)) == NULL)
            _exit(3);
        crash_point = point;
        crash_at_point = 77;
        store_test_hook = crash_hook;
        /* (The id would change only on a collision of 64 random bits.) */
        fid = store_msg_file_id(m);
        if (write(fds[1], &fid, sizeof fid) != (ssize_t)sizeof fid)
            _exit(4);
        store_commit(c.s, &m, 1, err, sizeof err);
        _exit(5); /* the hook should have ended us */
    }
    close(fds[1]);
    if (read(fds[0], id, sizeof *id) != (ssize_t)sizeof *id)
        *id = 0;
    close(fds[0]);
    if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
        return -1;
    return WEXITSTATUS(status);
}

static void test_store_crash_between_file_and_index_leaves_nothing_visible(void)
{
    struct env e;
    uint64_t id = 0;
    struct db_mailbox inbox;

    CHECK_INT(env_new(&e), 0);
    if (!e.s)
        return;
    CHECK_INT(deliver_and_crash(&e, "renamed", "lost in the crash\r\n", &id), 77);
    /* The file is on disk, but no index entry or files record refers to it. */
    CHECK_INT(count_files(&e, "msg"), 1);
    CHECK_INT(count_files(&e, "tmp"), 0);
    CHECK(file_exists(&e, id));
    CHECK_INT(file_refs(&e, id), -1);
    inbox = mailbox(&e, "alice", "INBOX");
    CHECK_INT(inbox.messages, 0);
    CHECK_INT(inbox.uidnext, 1);
    CHECK_INT(message(&e, inbox.id, 1, NULL), DB_NOTFOUND);
    /* Recovery at start-up removes the orphan. */
    CHECK_INT(store_recover(e.s, 0, err, sizeof err), 1);
    CHECK_INT(count_files(&e, "msg"), 0);
    CHECK(!file_exists(&e, id));
    env_free(&e);
}

static void test_store_crash_after_commit_keeps_message_intact(void)
{
    struct env e;
    uint64_t id = 0;
    struct db_message dm;
    struct db_mailbox inbox;

    CHECK_INT(env_new(&e), 0);
    if (!e.s)
        return;
    CHECK_INT(deliver_and_crash(&e, "committed", "kept\r\n", &id), 77);
    inbox = mailbox(&e, "alice", "INBOX");
    CHECK_INT(inbox.messages, 1);
    CHECK_INT(message(&e, inbox.id, 1, &dm), 0);
    CHECK_INT(dm.file_id, id);
    CHECK_INT(file_refs(&e, id), 1);
    CHECK_STR(file_text(&e, id), "kept\r\n");
    CHECK_INT(store_recover(e.s, 0, err, sizeof err), 0);
    CHECK_STR(file_text(&e, id), "kept\r\n");
    env_free(&e);
}

static void age_file(const char *path, time_t secs)
{
    struct timespec ts[2];

    clock_gettime(CLOCK_REALTIME, &ts[0]);
    ts[0].tv_sec -= secs;
    ts[1] = ts[0];
    if (utimensat(AT_FDCWD, path, ts, 0) != 0)
        perror(path);
}

static void test_store_recover_removes_stale_tmp_files_but_not_young_ones(void)
{
    struct env e;
    struct store_msg *young, *old;
    char path[256];

    CHECK_INT(env_new(&e), 0);
    if (!e.s)
        return;
    young = new_msg(&e, "young", 1, 0);
    old = new_msg(&e, "old", 1, 0);
    CHECK(young && old);
    if (!young || !old)
        return;
    snprintf(path, sizeof path, "%s/tmp/%016llx", e.dir,
             (unsigned long long)store_msg_file_id(old));
    age_file(path, 7200);
    CHECK_INT(count_files(&e, "tmp"), 2);
    CHECK_INT(store_recover(e.s, 3600, err, sizeof err), 1);
    CHECK_INT(count_files(&e, "tmp"), 1);
    /* The young one is still a good message. */
    CHECK_INT(store_commit(e.s, &young, 1, err, sizeof err), 0);
    CHECK_STR(file_text(&e, store_msg_file_id(young)), "young");
    /* At start-up (min_age 0) every temp file goes. */
    store_msg_free(old); /* its file is already gone: no complaint */
    {
        struct store_msg *m = new_msg(&e, "fresh", 1, 0);

        CHECK_INT(store_recover(e.s, 0, err, sizeof err), 1);
        CHECK_INT(count_files(&e, "tmp"), 0);
        store_msg_free(m);
    }
    CHECK_STR(file_text(&e, store_msg_file_id(young)), "young");
    store_msg_free(young);
    env_free(&e);
}

static void test_store_recover_keeps_referenced_files_and_removes_orphans(void)
{
    struct env e;
    struct store_msg *m;
    char path[256];
    int fd;

    CHECK_INT(env_new(&e), 0);
    if (!e.s)
        return;
    m = new_msg(&e, "referenced", mailbox(&e, "bob", "INBOX").id, 0);
    CHECK(m != NULL);
    CHECK_INT(store_commit(e.s, &m, 1, err, sizeof err), 0);
    /* An orphan with a proper name, one with a foreign name, one in the
     * wrong directory. */
    snprintf(path, sizeof path, "%s/msg/ab", e.dir);
    mkdir(path, 0700);
    snprintf(path, sizeof path, "%s/msg/ab/ab00000000000001", e.dir);
    CHECK((fd = open(path, O_CREAT | O_WRONLY, 0600)) >= 0);
    close(fd);
    snprintf(path, sizeof path, "%s/msg/ab/junk", e.dir);
    CHECK((fd = open(path, O_CREAT | O_WRONLY, 0600)) >= 0);
    close(fd);
    snprintf(path, sizeof path, "%s/msg/ab/cd00000000000001", e.dir);
    CHECK((fd = open(path, O_CREAT | O_WRONLY, 0600)) >= 0);
    close(fd);
    CHECK_INT(count_files(&e, "msg"), 4);
    CHECK_INT(store_recover(e.s, 3600, err, sizeof err), 0); /* all young */
    CHECK_INT(store_recover(e.s, 0, err, sizeof err), 3);
    CHECK_INT(count_files(&e, "msg"), 1);
    CHECK_STR(file_text(&e, store_msg_file_id(m)), "referenced");
    store_msg_free(m);
    env_free(&e);
}

static void test_store_user_del_unlinks_files_that_lost_their_last_reference(void)
{
    struct env e;
    struct store_msg *shared, *own;
    uint64_t shared_id, own_id;

    CHECK_INT(env_new(&e), 0);
    if (!e.s)
        return;
    shared =
        new_msg(&e, "to both", mailbox(&e, "alice", "INBOX").id, mailbox(&e, "bob", "INBOX").id);
    own = new_msg(&e, "alice only", mailbox(&e, "alice", "INBOX").id,
                  mailbox(&e, "alice", "Trash").id);
    CHECK(shared && own);
    if (!shared || !own)
        return;
    {
        struct store_msg *batch[2] = {shared, own};

        CHECK_INT(store_commit(e.s, batch, 2, err, sizeof err), 0);
    }
    shared_id = store_msg_file_id(shared);
    own_id = store_msg_file_id(own);
    store_msg_free(shared);
    store_msg_free(own);

    CHECK_INT(store_user_del(e.s, "alice", err, sizeof err), 0);
    CHECK(!file_exists(&e, own_id));
    CHECK(file_exists(&e, shared_id));
    CHECK_INT(file_refs(&e, own_id), -1);
    CHECK_INT(file_refs(&e, shared_id), 1);
    CHECK_INT(store_user_del(e.s, "alice", err, sizeof err), DB_NOTFOUND);
    CHECK_INT(store_user_del(e.s, "bob", err, sizeof err), 0);
    CHECK(!file_exists(&e, shared_id));
    CHECK_INT(count_files(&e, "msg"), 0);
    env_free(&e);
}

static void test_store_free_without_commit_removes_temp_file(void)
{
    struct env e;
    struct store_msg *m;

    CHECK_INT(env_new(&e), 0);
    if (!e.s)
        return;
    m = new_msg(&e, "never sent", 1, 0);
    CHECK(m != NULL);
    CHECK_INT(count_files(&e, "tmp"), 1);
    store_msg_free(m);
    CHECK_INT(count_files(&e, "tmp"), 0);
    CHECK_INT(count_files(&e, "msg"), 0);
    store_msg_free(NULL);
    env_free(&e);
}

static int steal_id_fn(struct db_txn *txn, void *arg)
{
    return db_file_add(txn, *(uint64_t *)arg, 1);
}

static void test_store_failed_index_transaction_leaves_no_file(void)
{
    struct env e;
    struct store_msg *m[2];
    uint64_t id;

    CHECK_INT(env_new(&e), 0);
    if (!e.s)
        return;
    m[0] = new_msg(&e, "one", mailbox(&e, "alice", "INBOX").id, 0);
    m[1] = new_msg(&e, "two", mailbox(&e, "bob", "INBOX").id, 0);
    CHECK(m[0] && m[1]);
    if (!m[0] || !m[1])
        return;
    /* A files record already holding the second id makes step 3 fail. */
    id = store_msg_file_id(m[1]);
    CHECK_INT(db_write(e.db, steal_id_fn, &id, err, sizeof err), 0);
    CHECK_INT(store_commit(e.s, m, 2, err, sizeof err), -1);
    CHECK_HAS(err, "exists");
    CHECK_INT(count_files(&e, "msg"), 0);
    CHECK_INT(mailbox(&e, "alice", "INBOX").messages, 0);
    CHECK_INT(mailbox(&e, "alice", "INBOX").uidnext, 1);
    CHECK_INT(store_msg_uid(m[0], 0), 0);
    CHECK_INT(store_commit(e.s, m, 1, err, sizeof err), -1); /* spent */
    store_msg_free(m[0]);
    store_msg_free(m[1]);
    CHECK_INT(count_files(&e, "tmp"), 0);
    env_free(&e);
}

static int del_bob_fn(struct db_txn *txn, void *arg)
{
    (void)arg;
    return db_user_del(txn, "bob", NULL, NULL);
}

static void test_store_recipient_mailbox_gone_is_skipped_not_fatal(void)
{
    struct env e;
    struct store_msg *m[2];
    uint32_t alice, bob;

    CHECK_INT(env_new(&e), 0);
    if (!e.s)
        return;
    alice = mailbox(&e, "alice", "INBOX").id;
    bob = mailbox(&e, "bob", "INBOX").id;
    m[0] = new_msg(&e, "both", bob, alice);
    m[1] = new_msg(&e, "bob only", bob, 0);
    CHECK(m[0] && m[1]);
    if (!m[0] || !m[1])
        return;
    CHECK_INT(db_write(e.db, del_bob_fn, NULL, err, sizeof err), 0);
    CHECK_INT(store_commit(e.s, m, 2, err, sizeof err), 0);
    CHECK_INT(store_msg_uid(m[0], 0), 0);
    CHECK_INT(store_msg_uid(m[0], 1), 1);
    CHECK_INT(store_msg_uid(m[1], 0), 0);
    CHECK_INT(file_refs(&e, store_msg_file_id(m[0])), 1);
    CHECK_INT(file_refs(&e, store_msg_file_id(m[1])), -1);
    CHECK(!file_exists(&e, store_msg_file_id(m[1])));
    CHECK_INT(count_files(&e, "msg"), 1);
    store_msg_free(m[0]);
    store_msg_free(m[1]);
    env_free(&e);
}

static void test_store_rejects_message_without_recipient_and_too_many(void)
{
    struct env e;
    struct store_msg *m;

    CHECK_INT(env_new(&e), 0);
    if (!e.s)
        return;
    m = new_msg(&e, "nobody", 0, 0);
    CHECK(m != NULL);
    CHECK_INT(store_commit(e.s, &m, 1, err, sizeof err), -1);
    CHECK_HAS(err, "no recipient");
    for (uint32_t i = 1; i <= STORE_RCPT_MAX; i++)
        CHECK_INT(store_msg_add_rcpt(m, i, 0), 0);
    CHECK_INT(store_msg_add_rcpt(m, 5, 0), 0); /* a duplicate is not one more */
    CHECK_INT(store_msg_add_rcpt(m, STORE_RCPT_MAX + 1, 0), -1);
    CHECK_INT(store_msg_nrcpt(m), STORE_RCPT_MAX);
    store_msg_free(m);
    env_free(&e);
}

static void test_store_large_message_is_byte_exact(void)
{
    struct env e;
    struct store_msg *m;
    size_t len = 3 << 20, got = 0;
    unsigned char *data = malloc(len), *back = malloc(len);
    uint32_t x = 12345;
    int fd;

    CHECK_INT(env_new(&e), 0);
    if (!e.s || !data || !back)
        goto out;
    for (size_t i = 0; i < len; i++) {
        x = x * 1103515245 + 12345;
        data[i] = (unsigned char)(x >> 16);
    }
    m = store_msg_new(e.s, err, sizeof err);
    CHECK(m != NULL);
    for (size_t off = 0; off < len; off += 65000)
        CHECK_INT(store_msg_write(m, data + off, len - off < 65000 ? len - off : 65000), 0);
    CHECK_INT(store_msg_add_rcpt(m, mailbox(&e, "alice", "INBOX").id, 0), 0);
    CHECK_INT(store_commit(e.s, &m, 1, err, sizeof err), 0);
    fd = store_file_open(e.s, store_msg_file_id(m));
    CHECK(fd >= 0);
    while (fd >= 0 && got < len) {
        ssize_t n = read(fd, back + got, len - got);

        if (n <= 0)
            break;
        got += (size_t)n;
    }
    if (fd >= 0)
        close(fd);
    CHECK_INT(got, len);
    CHECK(memcmp(data, back, len) == 0);
    CHECK_INT(mailbox(&e, "alice", "INBOX").size, len);
    store_msg_free(m);
    CHECK_INT(store_file_open(e.s, 42), -1);
out:
    free(data);
    free(back);
    env_free(&e);
}

int main(void)
{
    RUN(test_store_open_makes_tmp_and_msg);
    RUN(test_store_two_mailboxes_share_one_file_with_exact_bytes);
    RUN(test_store_same_mailbox_twice_gets_one_copy);
    RUN(test_store_group_commit_of_several_messages_costs_three_syncs);
    RUN(test_store_group_commit_survives_map_growth);
    RUN(test_store_crash_between_file_and_index_leaves_nothing_visible);
    RUN(test_store_crash_after_commit_keeps_message_intact);
    RUN(test_store_recover_removes_stale_tmp_files_but_not_young_ones);
    RUN(test_store_recover_keeps_referenced_files_and_removes_orphans);
    RUN(test_store_user_del_unlinks_files_that_lost_their_last_reference);
    RUN(test_store_free_without_commit_removes_temp_file);
    RUN(test_store_failed_index_transaction_leaves_no_file);
    RUN(test_store_recipient_mailbox_gone_is_skipped_not_fatal);
    RUN(test_store_rejects_message_without_recipient_and_too_many);
    RUN(test_store_large_message_is_byte_exact);
    return check_done();
}
