/*
 * store - message files and durable delivery.
 *
 * A message is written once into data_directory/tmp, then made durable and
 * visible in one step by store_commit():
 *	1-2. the file's data and its name in data_directory/msg/XX/<file id>
 *	   on disk: for one message fdatasync, rename, fsync of the
 *	   directory; for a batch, every rename and then one syncfs(),
 *	3. one LMDB write transaction: a files record (with reference count)
 *	   per message and an index entry in every recipient mailbox,
 *	4. the commit (LMDB fsyncs it).
 * Only then may a daemon answer 250.  Several messages finished in the same
 * loop turn share every step (group commit): a batch of n messages costs
 * three syncs, not 2n + 2.  Files are immutable and shared
 * by all the mailboxes they were delivered to.
 *
 * A crash before step 4 leaves a file that no index entry references; such
 * files and stale temp files are removed by store_recover(), which master
 * runs before any daemon starts.
 *
 * File ids are 64-bit random numbers (getrandom), unique without any
 * coordination between processes: a temp file is made with O_EXCL and the
 * rename into msg/ refuses to replace (RENAME_NOREPLACE), picking a new id
 * on the rare collision.  Files are mode 0600 and directories 0700; when
 * running as root, everything the store creates is given to the owner of
 * data_directory, so that root's mailctl never leaves a file the daemons
 * cannot use.
 */
#ifndef MAILCORE_STORE_H
#define MAILCORE_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct db;
struct store;
struct store_msg;

#define STORE_RCPT_MAX 1000   /* mailboxes per message */

/* data_dir must exist; tmp/ and msg/ are created in it when missing. */
struct store *store_open(struct db *db, const char *data_dir, char *err, size_t errlen);
void store_close(struct store *s);
struct db *store_db(struct store *s);

/* A new message: an open temp file.  NULL with err on failure. */
struct store_msg *store_msg_new(struct store *s, char *err, size_t errlen);
int store_msg_write(struct store_msg *m, const void *buf, size_t len);   /* 0 or -1 (errno) */
uint64_t store_msg_size(const struct store_msg *m);
/* The open temp file, for reading back what was written (pread, mmap,
 * copy_file_range); -1 after a write error or the commit. */
int store_msg_fd(const struct store_msg *m);
void store_msg_set_internaldate(struct store_msg *m, time_t when);
/* Deliver into mailbox_id with these initial flags; the same mailbox named
 * twice gets one copy.  0, or -1 past STORE_RCPT_MAX. */
int store_msg_add_rcpt(struct store_msg *m, uint32_t mailbox_id, uint32_t flags);
size_t store_msg_nrcpt(const struct store_msg *m);
/*
 * Storage quota at commit (quota.h), per recipient mailbox:
 *	NONE  never checked (store_msg_add_rcpt);
 *	KEEP  counted: the message is refused (store_msg_overquota) when all
 *	      its recipients are KEEP and each would go over its user's limit;
 *	      otherwise every KEEP recipient gets it, over or not (a delivery
 *	      accepted at RCPT, or with other recipients, is never lost);
 *	SKIP  left out alone when it would go over (submitd's Sent copy).
 * The limit is the user's own or store_set_quota_default()'s.  A refused
 * message or a left-out copy is not an error: store_commit() returns 0.
 */
enum store_quota { STORE_QUOTA_NONE, STORE_QUOTA_KEEP, STORE_QUOTA_SKIP };
int store_msg_add_rcpt_quota(struct store_msg *m, uint32_t mailbox_id, uint32_t flags,
                             enum store_quota quota);
void store_set_quota_default(struct store *s, uint64_t bytes);   /* user_quota; 0 unlimited */
/* After a commit: 1 when the message was refused for quota (no copy was
 * filed anywhere); 1 when the copy for mailbox_id was left out for quota. */
int store_msg_overquota(const struct store_msg *m);
int store_msg_overquota_in(const struct store_msg *m, uint32_t mailbox_id);
/* Remember, in the commit, that the copy in mailbox_id (the user's Sent)
 * has this Message-ID (db_sentid_put), for imapd's APPEND to Sent. */
void store_msg_note_sent(struct store_msg *m, const char *user, const char *msgid,
                         uint32_t mailbox_id);
/* After a successful commit: the uid given in the i-th recipient mailbox
 * (in the order added), or 0 when that mailbox no longer existed at commit
 * time (its user was deleted), so the message was not delivered there. */
uint32_t store_msg_uid(const struct store_msg *m, size_t i);
/* The uid given in mailbox_id, 0 when none (the mailbox was gone). */
uint32_t store_msg_uid_in(const struct store_msg *m, uint32_t mailbox_id);
uint64_t store_msg_file_id(const struct store_msg *m);
/* Frees m; a message not committed has its temp file removed. */
void store_msg_free(struct store_msg *m);

/* Make every message in msgs durable and visible, as one group.  0 when all
 * are committed; -1 when none is (err set; the messages can be freed, and
 * cannot be committed again).  Each message needs at least one recipient
 * and no failed write.  A recipient mailbox that has gone is skipped (uid 0)
 * rather than failing the group; a message left with no mailbox at all is
 * dropped. */
int store_commit(struct store *s, struct store_msg **msgs, size_t n, char *err, size_t errlen);
/* store_commit() that always makes the files durable with one syncfs() of
 * data_directory's filesystem, also for one message: whatever else the
 * caller wrote on that filesystem before the call is durable too once it
 * returns 0 (submitd's staged queue entries, queue.h). */
int store_commit_fs(struct store *s, struct store_msg **msgs, size_t n, char *err, size_t errlen);

/* Remove temp files and message files without a files record whose
 * mtime is at least min_age seconds old (0 at start-up, when nothing else
 * writes; larger when run beside live daemons).  Returns the number
 * removed, or -1 (err). */
int store_recover(struct store *s, unsigned min_age, char *err, size_t errlen);

/* Delete a user with db_user_del() in one transaction, then unlink the
 * message files that lost their last reference.  0, DB_NOTFOUND or -1
 * (also when the user is gone but a file could not be unlinked: err says
 * so, and store_recover() removes it later). */
int store_user_del(struct store *s, const char *name, char *err, size_t errlen);

/*
 * Files that lose their last reference in a transaction (expunge, mailbox
 * or user deletion): pass store_dead_add and a struct store_dead as the
 * file_dead callback of db.h, call store_dead_reset() at the start of the
 * transaction function (it may run again after a map resize), and
 * store_dead_unlink() after the commit.  A crash in between only leaves
 * the files to store_recover().
 */
struct store_dead {
    uint64_t *ids;
    size_t n, cap;
    int nomem;                  /* an id could not be kept: fail the txn */
};
void store_dead_add(uint64_t file_id, void *dead);
void store_dead_reset(struct store_dead *d);
/* Unlink and free; 0, or -1 (err) when some file could not be removed. */
int store_dead_unlink(struct store *s, struct store_dead *d, char *err, size_t errlen);

int store_file_path(const struct store *s, uint64_t file_id, char *buf, size_t len);
int store_file_open(const struct store *s, uint64_t file_id);   /* fd, O_RDONLY, or -1 */

/* fsync/fdatasync calls made by store_commit() in this process, counting
 * each LMDB commit as two (LMDB syncs the data pages, then the meta page):
 * for benchmarks' fsyncs per message. */
unsigned long store_fsync_count(void);

/* For crash tests only: when set, called with a point name ("renamed" after
 * step 2, "committed" after step 4) during store_commit(). */
extern void (*store_test_hook)(const char *point);

#endif
