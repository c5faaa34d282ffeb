/*
 * store.c - message files and durable delivery (group commit), recovery
 * after a crash, and removal of a user's files.  See store.h.
 *
 * Layout under data_directory:
 *	tmp/<16 hex>		a message being written (O_EXCL, 0600)
 *	msg/XX/<16 hex>		a message file; XX is the id's top byte in hex
 * The msg/XX directories are made when first needed.  All index knowledge
 * is db.c's: this file only calls db.h.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mailcore/db.h"
#include "mailcore/mime.h"
#include "mailcore/quota.h"
#include "mailcore/store.h"

#define ID_HEX 16
#define ID_NAME_MAX (2 + 1 + ID_HEX + 1) /* "XX/" id NUL */
#define ID_TRIES 16

void (*store_test_hook)(const char *point);

static unsigned long fsyncs;

unsigned long store_fsync_count(void)
{
    return fsyncs;
}

struct store {
    struct db *db;
    int dirfd, tmpfd, msgfd;
    int chown; /* we are root: give what we make to the data dir's owner */
    uid_t uid;
    gid_t gid;
    uint64_t quota_default; /* user_quota: bytes, 0 unlimited */
    char dir[];
};

enum msg_state {
    MSG_OPEN,  /* in tmp/, being written */
    MSG_TMP,   /* in tmp/, closed: no longer committable */
    MSG_FINAL, /* in msg/, not yet indexed */
    MSG_DONE,  /* committed */
    MSG_GONE,  /* failed, nothing left on disk */
};

struct rcpt {
    uint32_t mailbox_id;
    uint32_t flags;
    uint32_t uid;
    int quota;      /* enum store_quota */
    int overquota;  /* left out at the last commit: it would not fit */
};

struct store_msg {
    struct store *s;
    enum msg_state state;
    int fd;
    int write_errno; /* a failed write: the message cannot be committed */
    int delivered;   /* recipients that got it in the last commit attempt */
    uint64_t file_id;
    uint64_t size;
    time_t internaldate;
    int overquota;   /* refused at the last commit: no copy fitted (quota.h) */
    char tmpname[ID_HEX + 1];
    struct rcpt *rcpts;
    size_t nrcpt, cap;
    struct mime_buf cache[3];   /* IMAP ENVELOPE, BODYSTRUCTURE, BODY of the file */
    char sent_user[DB_NAME_MAX + 1];
    char sent_msgid[DB_MSGID_MAX + 1];
    uint32_t sent_mailbox;
};

static void id_hex(char out[ID_HEX + 1], uint64_t id)
{
    snprintf(out, ID_HEX + 1, "%016" PRIx64, id);
}

/* "XX/<id>" relative to msg/. */
static void id_relpath(char out[ID_NAME_MAX], uint64_t id)
{
    snprintf(out, ID_NAME_MAX, "%02x/%016" PRIx64, (unsigned)(id >> 56), id);
}

static int random_id(uint64_t *id)
{
    do {
        ssize_t n = getrandom(id, sizeof *id, 0);

        if (n < 0 && errno == EINTR)
            continue;
        if (n != (ssize_t)sizeof *id)
            return -1;
    } while (*id == 0);
    return 0;
}

static int give(const struct store *s, int dirfd, const char *name)
{
    if (!s->chown)
        return 0;
    return fchownat(dirfd, name, s->uid, s->gid, AT_SYMLINK_NOFOLLOW);
}

static int do_fsync(int fd)
{
    fsyncs++;
    return fsync(fd);
}

/* mkdirat that accepts an existing directory; 1 when it made one. */
static int make_dir(const struct store *s, int dirfd, const char *name)
{
    if (mkdirat(dirfd, name, 0700) != 0)
        return errno == EEXIST ? 0 : -1;
    if (give(s, dirfd, name) != 0)
        return -1;
    return 1;
}

/* ---- open ---- */

struct store *store_open(struct db *db, const char *data_dir, char *err, size_t errlen)
{
    struct store *s;
    struct stat st;
    int made = 0, r;

    if ((s = calloc(1, sizeof *s + strlen(data_dir) + 1)) == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    memcpy(s->dir, data_dir, strlen(data_dir) + 1);
    s->db = db;
    s->tmpfd = s->msgfd = -1;
    if ((s->dirfd = open(data_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 ||
        fstat(s->dirfd, &st) != 0) {
        snprintf(err, errlen, "%s: %s", data_dir, strerror(errno));
        goto fail;
    }
    s->chown = geteuid() == 0;
    s->uid = st.st_uid;
    s->gid = st.st_gid;
    for (int i = 0; i < 2; i++) {
        const char *name = i == 0 ? "tmp" : "msg";

        if ((r = make_dir(s, s->dirfd, name)) < 0) {
            snprintf(err, errlen, "%s/%s: %s", data_dir, name, strerror(errno));
            goto fail;
        }
        made |= r;
    }
    if (made && do_fsync(s->dirfd) != 0) {
        snprintf(err, errlen, "%s: fsync: %s", data_dir, strerror(errno));
        goto fail;
    }
    if ((s->tmpfd = openat(s->dirfd, "tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 ||
        (s->msgfd = openat(s->dirfd, "msg", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
        snprintf(err, errlen, "%s/%s: %s", data_dir, s->tmpfd < 0 ? "tmp" : "msg", strerror(errno));
        goto fail;
    }
    return s;
fail:
    store_close(s);
    return NULL;
}

void store_close(struct store *s)
{
    if (s == NULL)
        return;
    if (s->dirfd >= 0)
        close(s->dirfd);
    if (s->tmpfd >= 0)
        close(s->tmpfd);
    if (s->msgfd >= 0)
        close(s->msgfd);
    free(s);
}

struct db *store_db(struct store *s)
{
    return s->db;
}

int store_file_path(const struct store *s, uint64_t file_id, char *buf, size_t len)
{
    char rel[ID_NAME_MAX];
    int n;

    id_relpath(rel, file_id);
    n = snprintf(buf, len, "%s/msg/%s", s->dir, rel);
    if (n < 0 || (size_t)n >= len) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return 0;
}

int store_file_open(const struct store *s, uint64_t file_id)
{
    char rel[ID_NAME_MAX];

    id_relpath(rel, file_id);
    return openat(s->msgfd, rel, O_RDONLY | O_CLOEXEC);
}

/* ---- messages ---- */

struct store_msg *store_msg_new(struct store *s, char *err, size_t errlen)
{
    struct store_msg *m;

    if ((m = calloc(1, sizeof *m)) == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    m->s = s;
    m->fd = -1;
    m->internaldate = time(NULL);
    for (int i = 0; i < ID_TRIES && m->fd < 0; i++) {
        if (random_id(&m->file_id) != 0) {
            snprintf(err, errlen, "getrandom: %s", strerror(errno));
            break;
        }
        id_hex(m->tmpname, m->file_id);
        m->fd = openat(s->tmpfd, m->tmpname, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (m->fd < 0 && errno != EEXIST) {
            snprintf(err, errlen, "%s/tmp/%s: %s", s->dir, m->tmpname, strerror(errno));
            break;
        }
    }
    if (m->fd < 0) {
        if (errno == EEXIST)
            snprintf(err, errlen, "%s/tmp: no free file id", s->dir);
        free(m);
        return NULL;
    }
    if (s->chown && fchown(m->fd, s->uid, s->gid) != 0) {
        snprintf(err, errlen, "%s/tmp/%s: chown: %s", s->dir, m->tmpname, strerror(errno));
        close(m->fd);
        unlinkat(s->tmpfd, m->tmpname, 0);
        free(m);
        return NULL;
    }
    m->state = MSG_OPEN;
    return m;
}

int store_msg_write(struct store_msg *m, const void *buf, size_t len)
{
    const char *p = buf;

    if (m->state != MSG_OPEN || m->write_errno) {
        errno = m->write_errno ? m->write_errno : EBADF;
        return -1;
    }
    while (len > 0) {
        ssize_t n = write(m->fd, p, len);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            m->write_errno = n < 0 ? errno : EIO;
            errno = m->write_errno;
            return -1;
        }
        p += n;
        len -= (size_t)n;
        m->size += (uint64_t)n;
    }
    return 0;
}

uint64_t store_msg_size(const struct store_msg *m)
{
    return m->size;
}

void store_msg_note_sent(struct store_msg *m, const char *user, const char *msgid,
                         uint32_t mailbox_id)
{
    snprintf(m->sent_user, sizeof m->sent_user, "%s", user);
    snprintf(m->sent_msgid, sizeof m->sent_msgid, "%s", msgid);
    m->sent_mailbox = mailbox_id;
}

int store_msg_fd(const struct store_msg *m)
{
    return m->state == MSG_OPEN && !m->write_errno ? m->fd : -1;
}

void store_msg_set_internaldate(struct store_msg *m, time_t when)
{
    m->internaldate = when;
}

int store_msg_add_rcpt(struct store_msg *m, uint32_t mailbox_id, uint32_t flags)
{
    return store_msg_add_rcpt_quota(m, mailbox_id, flags, STORE_QUOTA_NONE);
}

int store_msg_add_rcpt_quota(struct store_msg *m, uint32_t mailbox_id, uint32_t flags,
                             enum store_quota quota)
{
    for (size_t i = 0; i < m->nrcpt; i++)
        if (m->rcpts[i].mailbox_id == mailbox_id)
            return 0;
    if (m->nrcpt >= STORE_RCPT_MAX) {
        errno = E2BIG;
        return -1;
    }
    if (m->nrcpt == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 4;
        struct rcpt *r = realloc(m->rcpts, cap * sizeof *r);

        if (r == NULL)
            return -1;
        m->rcpts = r;
        m->cap = cap;
    }
    m->rcpts[m->nrcpt++] = (struct rcpt){mailbox_id, flags, 0, (int)quota, 0};
    return 0;
}

size_t store_msg_nrcpt(const struct store_msg *m)
{
    return m->nrcpt;
}

uint32_t store_msg_uid(const struct store_msg *m, size_t i)
{
    if (m->state != MSG_DONE || i >= m->nrcpt)
        return 0;
    return m->rcpts[i].uid;
}

uint32_t store_msg_uid_in(const struct store_msg *m, uint32_t mailbox_id)
{
    for (size_t i = 0; i < m->nrcpt; i++)
        if (m->rcpts[i].mailbox_id == mailbox_id)
            return m->state == MSG_DONE ? m->rcpts[i].uid : 0;
    return 0;
}

int store_msg_overquota(const struct store_msg *m)
{
    return m->state == MSG_DONE && m->overquota;
}

int store_msg_overquota_in(const struct store_msg *m, uint32_t mailbox_id)
{
    if (m->state != MSG_DONE)
        return 0;
    for (size_t i = 0; i < m->nrcpt; i++)
        if (m->rcpts[i].mailbox_id == mailbox_id)
            return m->rcpts[i].overquota;
    return 0;
}

void store_set_quota_default(struct store *s, uint64_t bytes)
{
    s->quota_default = bytes;
}

uint64_t store_msg_file_id(const struct store_msg *m)
{
    return m->file_id;
}

void store_msg_free(struct store_msg *m)
{
    if (m == NULL)
        return;
    if (m->fd >= 0)
        close(m->fd); /* the file is being thrown away */
    if (m->state == MSG_OPEN || m->state == MSG_TMP)
        unlinkat(m->s->tmpfd, m->tmpname, 0);
    for (int i = 0; i < 3; i++)
        mime_buf_free(&m->cache[i]);
    free(m->rcpts);
    free(m);
}

/* ---- commit ---- */

/* Move m from tmp/ into msg/XX/ without replacing anything; a new id on a
 * collision.  Marks dirs[XX] for fsync and *msg_dirty when XX was made. */
static int rename_final(struct store *s, struct store_msg *m, unsigned char dirs[256],
                        int *msg_dirty)
{
    char rel[ID_NAME_MAX], xx[3];
    int made = 0;

    for (int tries = 0; tries < ID_TRIES;) {
        int r;

        id_relpath(rel, m->file_id);
        r = renameat2(s->tmpfd, m->tmpname, s->msgfd, rel, RENAME_NOREPLACE);
        if (r != 0 && (errno == EINVAL || errno == ENOSYS)) {
            /* No RENAME_NOREPLACE here: link() also refuses to replace. */
            r = linkat(s->tmpfd, m->tmpname, s->msgfd, rel, 0);
            if (r == 0 && unlinkat(s->tmpfd, m->tmpname, 0) != 0) {
                int e = errno;

                unlinkat(s->msgfd, rel, 0);
                errno = e;
                return -1;
            }
        }
        if (r == 0) {
            dirs[m->file_id >> 56] = 1;
            return 0;
        }
        if (errno == ENOENT && !made) {
            snprintf(xx, sizeof xx, "%02x", (unsigned)(m->file_id >> 56));
            if ((r = make_dir(s, s->msgfd, xx)) < 0)
                return -1;
            *msg_dirty |= r;
            made = 1;
            continue;
        }
        if (errno != EEXIST)
            return -1;
        if (random_id(&m->file_id) != 0)
            return -1;
        made = 0;
        tries++;
    }
    errno = EEXIST;
    return -1;
}

static int sync_dirs(struct store *s, const unsigned char dirs[256], int msg_dirty, char *err,
                     size_t errlen)
{
    if (msg_dirty && do_fsync(s->msgfd) != 0) {
        snprintf(err, errlen, "%s/msg: fsync: %s", s->dir, strerror(errno));
        return -1;
    }
    for (unsigned i = 0; i < 256; i++) {
        char xx[3];
        int fd, r, e;

        if (!dirs[i])
            continue;
        snprintf(xx, sizeof xx, "%02x", i);
        if ((fd = openat(s->msgfd, xx, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
            snprintf(err, errlen, "%s/msg/%s: %s", s->dir, xx, strerror(errno));
            return -1;
        }
        r = do_fsync(fd);
        e = errno;
        if (close(fd) != 0 && r == 0) {
            r = -1;
            e = errno;
        }
        if (r != 0) {
            snprintf(err, errlen, "%s/msg/%s: fsync: %s", s->dir, xx, strerror(e));
            return -1;
        }
    }
    return 0;
}

/* Close a message's temp file, keeping the first error. */
static int close_tmp(struct store *s, struct store_msg *m, int synced, char *err, size_t errlen)
{
    int r = 0, e = 0;

    if (!synced) {
        fsyncs++;
        r = fdatasync(m->fd);
        e = errno;
    }
    if (close(m->fd) != 0 && r == 0) {
        r = -1;
        e = errno;
    }
    m->fd = -1;
    m->state = MSG_TMP;
    if (r != 0)
        snprintf(err, errlen, "%s/tmp/%s: %s", s->dir, m->tmpname, strerror(e));
    return r;
}

static int rename_all(struct store *s, struct store_msg **msgs, size_t n, unsigned char dirs[256],
                      int *msg_dirty, char *err, size_t errlen)
{
    for (size_t i = 0; i < n; i++) {
        if (rename_final(s, msgs[i], dirs, msg_dirty) != 0) {
            snprintf(err, errlen, "%s/tmp/%s: rename into msg/: %s", s->dir, msgs[i]->tmpname,
                     strerror(errno));
            return -1;
        }
        msgs[i]->state = MSG_FINAL;
    }
    return 0;
}

/* One message: fdatasync it, rename it, fsync the directories touched. */
static int sync_each(struct store *s, struct store_msg **msgs, size_t n, unsigned char dirs[256],
                     int *msg_dirty, char *err, size_t errlen)
{
    for (size_t i = 0; i < n; i++)
        if (close_tmp(s, msgs[i], 0, err, errlen) != 0)
            return -1;
    if (rename_all(s, msgs, n, dirs, msg_dirty, err, errlen) != 0)
        return -1;
    return sync_dirs(s, dirs, *msg_dirty, err, errlen);
}

/*
 * Several messages (the group commit under load): rename them all first,
 * then one syncfs() makes every file's data and every directory entry
 * durable at once -- one sync for the batch instead of one per file and
 * one per directory.  Renaming before the data is durable is safe: until
 * the index transaction commits, no one can see the files, and a crash
 * leaves them to store_recover().  syncfs() reports writeback errors
 * (Linux 5.8 and later).
 */
static int sync_batch(struct store *s, struct store_msg **msgs, size_t n, char *err,
                      size_t errlen)
{
    unsigned char dirs[256] = {0};
    int msg_dirty = 0;

    for (size_t i = 0; i < n; i++)
        if (close_tmp(s, msgs[i], 1, err, errlen) != 0)
            return -1;
    if (rename_all(s, msgs, n, dirs, &msg_dirty, err, errlen) != 0)
        return -1;
    fsyncs++;
    if (syncfs(s->dirfd) != 0) {
        snprintf(err, errlen, "%s: syncfs: %s", s->dir, strerror(errno));
        return -1;
    }
    return 0;
}

struct commit {
    struct store_msg **msgs;
    size_t n;
};

/*
 * Parse the message once, now, and keep what IMAP FETCH asks for most
 * (ENVELOPE, BODYSTRUCTURE, BODY), so that a client listing a large
 * mailbox never makes imapd read every file.  A failure only leaves the
 * cache to be filled at the first FETCH.
 */
static void cache_structure(struct store_msg *m)
{
    struct mime_msg *mime;
    void *map;

    if (m->fd < 0 || m->size == 0)
        return;
    map = mmap(NULL, (size_t)m->size, PROT_READ, MAP_PRIVATE, m->fd, 0);
    if (map == MAP_FAILED)
        return;
    for (int i = 0; i < 3; i++)
        mime_buf_init(&m->cache[i], 0);
    if ((mime = mime_parse(map, (size_t)m->size)) != NULL) {
        mime_imap_envelope(mime->root, &m->cache[0]);
        mime_imap_bodystructure(mime, MIME_IMAP_EXTENDED, &m->cache[1]);
        mime_imap_bodystructure(mime, 0, &m->cache[2]);
        mime_free(mime);
    }
    munmap(map, (size_t)m->size);
}

/*
 * Quota (quota.h), decided in the commit's transaction so that racing
 * deliveries cannot both slip under a limit: a STORE_QUOTA_SKIP copy that
 * would take its user over is left out; the whole message is refused
 * (m->overquota) when its copies are all STORE_QUOTA_KEEP and every one
 * would go over.  A mailbox that has gone is left to commit_txn.
 */
static int quota_decide(struct db_txn *txn, struct store_msg *m)
{
    size_t keep = 0, keep_over = 0, other = 0;
    struct db_mailbox mb;
    int rc;

    m->overquota = 0;
    for (size_t j = 0; j < m->nrcpt; j++) {
        struct rcpt *r = &m->rcpts[j];

        r->overquota = 0;
        if (r->quota == STORE_QUOTA_NONE) {
            other++;
            continue;
        }
        if ((rc = db_mailbox_by_id(txn, r->mailbox_id, &mb)) == DB_NOTFOUND)
            continue;
        if (rc != 0)
            return rc;
        rc = quota_check_add(txn, mb.user, m->s->quota_default, m->size);
        if (rc != 0 && rc != QUOTA_OVER)
            return rc;
        if (r->quota == STORE_QUOTA_SKIP) {
            r->overquota = rc == QUOTA_OVER;
            continue;
        }
        keep++;
        keep_over += rc == QUOTA_OVER;
    }
    if (keep > 0 && keep_over == keep && other == 0) {
        m->overquota = 1;
        for (size_t j = 0; j < m->nrcpt; j++)
            m->rcpts[j].overquota = m->rcpts[j].quota != STORE_QUOTA_NONE;
    }
    return 0;
}

static int commit_txn(struct db_txn *txn, void *arg)
{
    struct commit *c = arg;
    int rc;

    for (size_t i = 0; i < c->n; i++) {
        struct store_msg *m = c->msgs[i];
        struct db_mailbox mb;

        /* A mailbox can go between RCPT and commit (user deleted): skip it
         * rather than fail everyone else's delivery. */
        m->delivered = 0;
        if ((rc = quota_decide(txn, m)) != 0)
            return rc;
        for (size_t j = 0; j < m->nrcpt; j++) {
            m->rcpts[j].uid = 0;
            if (m->rcpts[j].overquota)
                continue;
            rc = db_mailbox_by_id(txn, m->rcpts[j].mailbox_id, &mb);
            if (rc == 0)
                m->delivered++;
            else if (rc != DB_NOTFOUND)
                return rc;
        }
        if (m->delivered == 0)
            continue;
        if ((rc = db_file_add(txn, m->file_id, m->size)) != 0)
            return rc;
        if (!m->cache[0].failed && m->cache[0].len && !m->cache[1].failed &&
            !m->cache[2].failed) {
            struct db_cache dc = {m->cache[0].p, m->cache[1].p, m->cache[2].p,
                                  m->cache[0].len, m->cache[1].len, m->cache[2].len};
            if ((rc = db_cache_put(txn, m->file_id, &dc)) != 0)
                return rc;
        }
        for (size_t j = 0; j < m->nrcpt; j++) {
            struct db_message dm = {.flags = m->rcpts[j].flags,
                                    .file_id = m->file_id,
                                    .internaldate = (int64_t)m->internaldate};

            if (m->rcpts[j].overquota)
                continue;
            rc = db_message_add(txn, m->rcpts[j].mailbox_id, &dm);
            if (rc == DB_NOTFOUND)
                continue;
            if (rc != 0)
                return rc;
            m->rcpts[j].uid = dm.uid;
            if (m->sent_mailbox == m->rcpts[j].mailbox_id && m->sent_msgid[0] &&
                (rc = db_sentid_put(txn, m->sent_user, m->sent_msgid, m->sent_mailbox, dm.uid,
                                    (uint64_t)time(NULL))) != 0)
                return rc;
        }
    }
    return 0;
}

/* Undo a failed commit: renamed files go (they were never visible), the
 * others stay in tmp/ for store_msg_free().  Appends problems to err. */
static void commit_undo(struct store *s, struct store_msg **msgs, size_t n, char *err,
                        size_t errlen)
{
    for (size_t i = 0; i < n; i++) {
        struct store_msg *m = msgs[i];
        char rel[ID_NAME_MAX];

        if (m->fd >= 0) {
            close(m->fd); /* failing anyway; its data is not wanted */
            m->fd = -1;
        }
        if (m->state == MSG_OPEN)
            m->state = MSG_TMP;
        if (m->state != MSG_FINAL)
            continue;
        id_relpath(rel, m->file_id);
        if (unlinkat(s->msgfd, rel, 0) != 0 && errno != ENOENT) {
            size_t len = strlen(err);

            snprintf(err + len, errlen - len, "; cannot remove %s/msg/%s: %s (store_recover will)",
                     s->dir, rel, strerror(errno));
        }
        m->state = MSG_GONE;
    }
}

static int commit_check(const struct store *s, struct store_msg **msgs, size_t n, char *err,
                        size_t errlen)
{
    for (size_t i = 0; i < n; i++) {
        const struct store_msg *m = msgs[i];

        if (m->s != s || m->state != MSG_OPEN) {
            snprintf(err, errlen, "message %zu of the batch cannot be committed", i);
            return -1;
        }
        if (m->write_errno) {
            snprintf(err, errlen, "%s/tmp/%s: write failed: %s", s->dir, m->tmpname,
                     strerror(m->write_errno));
            return -1;
        }
        if (m->nrcpt == 0) {
            snprintf(err, errlen, "message %zu of the batch has no recipient", i);
            return -1;
        }
        for (size_t j = 0; j < i; j++)
            if (msgs[j] == m) {
                snprintf(err, errlen, "message %zu is twice in the batch", i);
                return -1;
            }
    }
    return 0;
}

static int commit(struct store *s, struct store_msg **msgs, size_t n, int whole_fs, char *err,
                  size_t errlen)
{
    struct commit c = {msgs, n};
    unsigned char dirs[256] = {0};
    int msg_dirty = 0;

    if (n == 0)
        return 0;
    if (commit_check(s, msgs, n, err, errlen) != 0)
        return -1;
    for (size_t i = 0; i < n; i++)
        cache_structure(msgs[i]);

    if (n == 1 && !whole_fs) {
        if (sync_each(s, msgs, n, dirs, &msg_dirty, err, errlen) != 0)
            goto fail;
    } else if (sync_batch(s, msgs, n, err, errlen) != 0) {
        goto fail;
    }
    if (store_test_hook)
        store_test_hook("renamed");

    /* 3 and 4. One transaction for every files record and index entry. */
    if (db_write(s->db, commit_txn, &c, err, errlen) != 0)
        goto fail;
    fsyncs += 2;
    if (store_test_hook)
        store_test_hook("committed");

    for (size_t i = 0; i < n; i++) {
        struct store_msg *m = msgs[i];

        if (m->delivered == 0) {
            /* Every mailbox had gone: the file is no one's.  A failed
             * unlink only leaves work for store_recover(). */
            char rel[ID_NAME_MAX];

            id_relpath(rel, m->file_id);
            unlinkat(s->msgfd, rel, 0);
        }
        m->state = MSG_DONE;
    }
    return 0;
fail:
    commit_undo(s, msgs, n, err, errlen);
    return -1;
}

int store_commit(struct store *s, struct store_msg **msgs, size_t n, char *err, size_t errlen)
{
    return commit(s, msgs, n, 0, err, errlen);
}

int store_commit_fs(struct store *s, struct store_msg **msgs, size_t n, char *err, size_t errlen)
{
    return commit(s, msgs, n, 1, err, errlen);
}

/* ---- recovery ---- */

static int is_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return s[n] == '\0';
}

/* Open dirfd's directory for reading without giving up dirfd. */
static DIR *dir_read(int dirfd, const char *name)
{
    int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d;

    if (fd < 0)
        return NULL;
    if ((d = fdopendir(fd)) == NULL)
        close(fd);
    return d;
}

static int old_enough(int dirfd, const char *name, time_t now, unsigned min_age)
{
    struct stat st;

    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode))
        return 0;
    return st.st_mtime <= now && (uint64_t)(now - st.st_mtime) >= min_age;
}

static int recover_tmp(struct store *s, time_t now, unsigned min_age, char *err, size_t errlen)
{
    DIR *d = dir_read(s->dirfd, "tmp");
    struct dirent *de;
    int removed = 0;

    if (d == NULL) {
        snprintf(err, errlen, "%s/tmp: %s", s->dir, strerror(errno));
        return -1;
    }
    while ((errno = 0, de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.' || !old_enough(dirfd(d), de->d_name, now, min_age))
            continue;
        if (unlinkat(dirfd(d), de->d_name, 0) == 0)
            removed++;
        else if (errno != ENOENT)
            break;
    }
    if (errno != 0) {
        snprintf(err, errlen, "%s/tmp: %s", s->dir, strerror(errno));
        removed = -1;
    }
    closedir(d);
    return removed;
}

struct candidates {
    uint64_t *ids;
    unsigned char *referenced;
    size_t n, cap;
};

static int refs_txn(struct db_txn *txn, void *arg)
{
    struct candidates *c = arg;

    for (size_t i = 0; i < c->n; i++) {
        uint32_t refs;
        int rc = db_file_refs(txn, c->ids[i], &refs);

        if (rc != 0 && rc != DB_NOTFOUND)
            return rc;
        c->referenced[i] = rc == 0;
    }
    return 0;
}

/* One msg/XX directory: collect the old files, ask the index about them
 * in one read transaction, unlink those it does not know. */
static int recover_subdir(struct store *s, const char *xx, time_t now, unsigned min_age, char *err,
                          size_t errlen)
{
    struct candidates c = {0};
    DIR *d = dir_read(s->msgfd, xx);
    struct dirent *de;
    int removed = 0;

    if (d == NULL) {
        snprintf(err, errlen, "%s/msg/%s: %s", s->dir, xx, strerror(errno));
        return -1;
    }
    while ((errno = 0, de = readdir(d)) != NULL) {
        const char *name = de->d_name;

        if (name[0] == '.' || !old_enough(dirfd(d), name, now, min_age))
            continue;
        if (strlen(name) != ID_HEX || !is_hex(name, ID_HEX) || strncmp(name, xx, 2) != 0) {
            /* Not an id of this directory: no record can refer to it. */
            if (unlinkat(dirfd(d), name, 0) == 0)
                removed++;
            else if (errno != ENOENT)
                break;
            continue;
        }
        if (c.n == c.cap) {
            size_t cap = c.cap ? c.cap * 2 : 64;
            uint64_t *ids = realloc(c.ids, cap * sizeof *ids);

            if (ids == NULL)
                break;
            c.ids = ids;
            c.cap = cap;
        }
        c.ids[c.n++] = strtoull(name, NULL, 16);
    }
    if (errno != 0) {
        snprintf(err, errlen, "%s/msg/%s: %s", s->dir, xx, strerror(errno));
        removed = -1;
        goto out;
    }
    if (c.n == 0)
        goto out;
    if ((c.referenced = calloc(c.n, 1)) == NULL) {
        snprintf(err, errlen, "out of memory");
        removed = -1;
        goto out;
    }
    if (db_read(s->db, refs_txn, &c, err, errlen) != 0) {
        removed = -1;
        goto out;
    }
    for (size_t i = 0; i < c.n; i++) {
        char rel[ID_NAME_MAX];

        if (c.referenced[i])
            continue;
        id_relpath(rel, c.ids[i]);
        if (unlinkat(s->msgfd, rel, 0) == 0) {
            removed++;
        } else if (errno != ENOENT) {
            snprintf(err, errlen, "%s/msg/%s: %s", s->dir, rel, strerror(errno));
            removed = -1;
            break;
        }
    }
out:
    free(c.ids);
    free(c.referenced);
    closedir(d);
    return removed;
}

int store_recover(struct store *s, unsigned min_age, char *err, size_t errlen)
{
    time_t now = time(NULL);
    DIR *d;
    struct dirent *de;
    int total, r;

    if ((total = recover_tmp(s, now, min_age, err, errlen)) < 0)
        return -1;
    if ((d = dir_read(s->dirfd, "msg")) == NULL) {
        snprintf(err, errlen, "%s/msg: %s", s->dir, strerror(errno));
        return -1;
    }
    while ((errno = 0, de = readdir(d)) != NULL) {
        if (strlen(de->d_name) != 2 || !is_hex(de->d_name, 2))
            continue;
        if ((r = recover_subdir(s, de->d_name, now, min_age, err, errlen)) < 0) {
            closedir(d);
            return -1;
        }
        total += r;
    }
    if (errno != 0) {
        snprintf(err, errlen, "%s/msg: %s", s->dir, strerror(errno));
        total = -1;
    }
    closedir(d);
    return total;
}

/* ---- files that lost their last reference ---- */

void store_dead_add(uint64_t file_id, void *arg)
{
    struct store_dead *d = arg;

    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 64;
        uint64_t *ids = realloc(d->ids, cap * sizeof *ids);

        if (ids == NULL) {
            d->nomem = 1;
            return;
        }
        d->ids = ids;
        d->cap = cap;
    }
    d->ids[d->n++] = file_id;
}

void store_dead_reset(struct store_dead *d)
{
    d->n = 0;
    d->nomem = 0;
}

int store_dead_unlink(struct store *s, struct store_dead *d, char *err, size_t errlen)
{
    size_t failed = 0;
    int first_errno = 0;

    for (size_t i = 0; i < d->n; i++) {
        char rel[ID_NAME_MAX];

        id_relpath(rel, d->ids[i]);
        if (unlinkat(s->msgfd, rel, 0) != 0 && errno != ENOENT && failed++ == 0)
            first_errno = errno;
    }
    free(d->ids);
    memset(d, 0, sizeof *d);
    if (failed) {
        snprintf(err, errlen, "%zu message files in %s/msg could not be removed (%s); "
                 "store_recover() will remove them", failed, s->dir, strerror(first_errno));
        return -1;
    }
    return 0;
}

/* ---- deleting a user ---- */

struct user_del {
    const char *name;
    struct store_dead dead;
};

static int user_del_txn(struct db_txn *txn, void *arg)
{
    struct user_del *u = arg;
    int rc;

    store_dead_reset(&u->dead); /* the function runs again after a map resize */
    if ((rc = db_user_del(txn, u->name, store_dead_add, &u->dead)) != 0)
        return rc;
    if (u->dead.nomem)
        return db_txn_fail(txn, "out of memory");
    return 0;
}

int store_user_del(struct store *s, const char *name, char *err, size_t errlen)
{
    struct user_del u = {.name = name};
    int rc;

    if ((rc = db_write(s->db, user_del_txn, &u, err, errlen)) != 0) {
        free(u.dead.ids);
        return rc;
    }
    return store_dead_unlink(s, &u.dead, err, errlen);
}
