/*
 * notify - "mailbox N changed" datagrams from writers (smtpd, submitd,
 * imapd) to every imapd process, so that IDLE sessions hear of new mail
 * within a moment.
 *
 * Each imapd process binds a datagram socket in run_directory/private/
 * notify/ (notify_listen); a writer, after its commit, sends one datagram
 * per changed mailbox to every socket there (notify_send, from one socket
 * it keeps, to the listeners it read when the directory last changed).  A
 * datagram may be lost (full receiver): imapd re-checks on a slow timer
 * anyway.  A socket whose process is gone is removed by the next sender.
 */
#ifndef MAILCORE_NOTIFY_H
#define MAILCORE_NOTIFY_H

#include <stddef.h>
#include <stdint.h>

#define NOTIFY_SUBDIR "private/notify"

/* Bind run_dir/private/notify/NAME.PID; fd (non-blocking) or -1 (err).
 * path gets the socket's path, for unlinking at exit. */
int notify_listen(const char *run_dir, const char *name, char *path, size_t pathlen, char *err,
                  size_t errlen);
/* A writer's sender: its socket and the listeners it last saw (re-read
 * only when the directory changes).  NULL: out of memory (then
 * notify_send(NULL, ...) does nothing; imapd's re-check still runs). */
#define NOTIFY_PATH_MAX 108             /* sun_path */
#define NOTIFY_LISTENERS_MAX 4096
struct notify_sender;
struct notify_sender *notify_sender_new(const char *run_dir);
void notify_sender_free(struct notify_sender *ns);
/* Send "mailbox ID" for each of ids to every listener; never blocks. */
void notify_send(struct notify_sender *ns, const uint32_t *ids, size_t n);
/* Parse a received datagram: 0 with *id, -1 if it is not one of ours. */
int notify_parse(const char *msg, size_t len, uint32_t *id);

#endif
