/*
 * queue - the outbound queue in queue_directory: one message file and one
 * envelope file per queued message, written durably by submitd and owned
 * by relayq afterwards.
 *
 *	queue_directory/msg/QID     the message, exactly as it is to be relayed;
 *	                            never rewritten, so it may be a hard link to
 *	                            the same bytes elsewhere (submitd's Sent copy)
 *	queue_directory/env/QID     the envelope, text:
 *	    mailcore-queue 1
 *	    id QID
 *	    created UNIXTIME
 *	    sender ADDRESS          (empty for <>)
 *	    user NAME               (who submitted it)
 *	    rcpt STATE ATTEMPTS NEXT ADDRESS     one per recipient; STATE is
 *	                            pending, sent or bounced; NEXT is the unix
 *	                            time of the next attempt
 *	    reason TEXT             (optional, last failure, for mailctl queue)
 *	    hold                    (optional: mailctl queue hold; relayq skips it)
 *	  after a rcpt line, optional lines about that recipient (relayq):
 *	    status X.Y.Z            RFC 3463 status of its last attempt
 *	    diag TEXT               the relay's reply, for a DSN's Diagnostic-Code
 *	    why TEXT                its last failure, for a person
 *	    notified                (bounced) its DSN is in the sender's INBOX
 * The message file is durable before the envelope is renamed into env/, so
 * an envelope always has its message; a message without an envelope, and a
 * staged envelope never renamed, are debris of a crash: queue_sweep()
 * removes them at relayq's start-up.  submitd writes an entry
 * in two steps so that a whole group commit needs one sync: queue_stage()
 * writes msg/QID and env/.QID.tmp unsynced, the caller syncs the
 * filesystem (the store's syncfs() in the same group commit), and
 * queue_publish() renames the envelopes into env/ and fsyncs env/ once.
 * Names starting with "." are never entries.
 *
 * Envelopes are rewritten atomically (queue_env_write: temp file, fsync,
 * rename, fsync of env/).  Whoever changes an entry after submitd (a relayq
 * worker, relayq itself, mailctl queue) first takes queue_lock(): an
 * exclusive flock on msg/QID, a file that is never rewritten, so the lock
 * outlives every rename of the envelope and no entry is worked on by two
 * processes -- not even by the workers of a relayq that was killed and the
 * new one.
 */
#ifndef MAILCORE_QUEUE_H
#define MAILCORE_QUEUE_H

#include <stddef.h>

#define QUEUE_RCPT_MAX 1000
#define QUEUE_ID_MAX 32         /* queue ids are [0-9A-Za-z], at most this long */
#define QUEUE_ADDR_MAX 256
#define QUEUE_TEXT_MAX 512      /* reason, diag, why */

enum queue_state { QUEUE_PENDING, QUEUE_SENT, QUEUE_BOUNCED };

struct queue_rcpt {
    enum queue_state state;
    unsigned attempts;
    long long next;                     /* unix time of the next attempt */
    char addr[QUEUE_ADDR_MAX + 1];
    char status[16];                    /* "" or X.Y.Z */
    char diag[QUEUE_TEXT_MAX];          /* "" or the relay's reply */
    char why[QUEUE_TEXT_MAX];           /* "" or the last failure */
    int notified;                       /* bounced, and its DSN is stored */
};

struct queue_env {
    char id[QUEUE_ID_MAX + 1];
    long long created;
    char sender[QUEUE_ADDR_MAX + 1];    /* "" for <> */
    char user[QUEUE_ADDR_MAX + 1];
    int hold;
    char reason[QUEUE_TEXT_MAX];
    struct queue_rcpt *rcpts;           /* malloc'ed */
    size_t nrcpts;
};

/*
 * Stage an entry: the bytes of fd (from offset 0, size bytes) into msg/QID
 * and the envelope as env/.QID.tmp, neither synced nor yet visible to
 * relayq.  When fd's file is exactly those bytes, msg/QID becomes a hard
 * link to it instead of a copy: nobody may write to it afterwards.  0, or
 * -1 with err (nothing left behind).
 */
int queue_stage(const char *queue_dir, const char *qid, const char *sender, const char *user,
                const char *const *rcpts, size_t nrcpts, int fd, size_t size, char *err,
                size_t errlen);

/*
 * Make staged entries queue entries, durably: their files must be durable
 * first -- synced_dir names a directory whose filesystem the caller has
 * synced (syncfs) since staging; when it is NULL or on another filesystem
 * than queue_dir, the queue's filesystem is synced here.  Then every
 * envelope is renamed into env/ and env/ is fsync'd once.  0, or -1 with
 * err (queue_remove() each entry then).
 */
int queue_publish(const char *queue_dir, const char *synced_dir, const char *const *qids, size_t n,
                  char *err, size_t errlen);

/* Take back an entry queue_stage() or queue_publish() made (its message
 * was not accepted after all): envelope first, so no envelope is left
 * without its message. */
void queue_remove(const char *queue_dir, const char *qid);

/* Make msg/ and env/ in queue_dir if missing.  0 or -1 (err). */
int queue_init(const char *queue_dir, char *err, size_t errlen);

/* 1 when qid is a plausible queue id (safe as a file name). */
int queue_valid_id(const char *qid);

/* Read and parse env/QID into e (queue_env_free() it after a 0).  0,
 * 1 when there is no such entry, -1 (err) when it is unreadable or bad. */
int queue_env_read(const char *queue_dir, const char *qid, struct queue_env *e, char *err,
                   size_t errlen);
/* Replace env/<e->id> atomically and durably (see above).  0 or -1 (err). */
int queue_env_write(const char *queue_dir, const struct queue_env *e, char *err, size_t errlen);
void queue_env_free(struct queue_env *e);
/* Recipients still pending; 0 means the entry is finished. */
size_t queue_env_pending(const struct queue_env *e);
/* Set a one-line text field (control characters become spaces). */
void queue_text_set(char *dst, size_t len, const char *src);

/*
 * The entry's lock (see above): an fd holding an exclusive flock on
 * msg/QID, to close() when done.  wait_ms 0: do not wait.  -1 with errno:
 * EWOULDBLOCK when someone else holds it, ENOENT when there is no entry.
 */
int queue_lock(const char *queue_dir, const char *qid, unsigned wait_ms);

/* Remove a finished entry durably: env/QID (and fsync env/), then msg/QID. */
int queue_delete(const char *queue_dir, const char *qid, char *err, size_t errlen);

/* Call cb for every envelope in env/ (temp files skipped), in no order;
 * stops at cb's first non-zero return and returns it.  -1 (err) when env/
 * cannot be read. */
/* Remove crash debris older than min_age seconds: env/.QID.tmp, and
 * msg/QID without an envelope (queue_sweep.c).  The number removed. */
size_t queue_sweep(const char *queue_dir, unsigned min_age);

int queue_foreach(const char *queue_dir, int (*cb)(const char *qid, void *arg), void *arg,
                  char *err, size_t errlen);

#endif
