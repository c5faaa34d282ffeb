/*
 * queue - the outbound queue in queue_directory: one message file and one
 * envelope file per queued message, written durably by submitd and owned
 * by relayq afterwards.
 *
 *	queue_directory/msg/QID     the message, exactly as it is to be relayed
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
 * The message file is durable before the envelope is renamed into env/, so
 * an envelope always has its message; a message without an envelope is
 * debris of a crash and goes at relayq's start-up.
 */
#ifndef MAILCORE_QUEUE_H
#define MAILCORE_QUEUE_H

#include <stddef.h>

#define QUEUE_RCPT_MAX 1000

/*
 * Queue a message: copy the bytes of fd (from offset 0, size bytes) into
 * msg/QID, write env/QID, fsync both and the directories.  0, or -1 with
 * err (nothing left behind).
 */
int queue_put(const char *queue_dir, const char *qid, const char *sender, const char *user,
              const char *const *rcpts, size_t nrcpts, int fd, size_t size, char *err,
              size_t errlen);

/* Take back an entry queue_put() made (its message was not accepted after
 * all): envelope first, so no envelope is left without its message. */
void queue_remove(const char *queue_dir, const char *qid);

/* Make msg/ and env/ in queue_dir if missing.  0 or -1 (err). */
int queue_init(const char *queue_dir, char *err, size_t errlen);

#endif
