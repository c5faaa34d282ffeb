/*
 * notify - "mailbox N changed" datagrams from writers (smtpd, submitd,
 * imapd) to every imapd process, so that IDLE sessions hear of new mail
 * within a moment.
 *
 * Each imapd process binds a datagram socket in run_directory/private/
 * notify/ (notify_listen); a writer, after its commit, sends one datagram
 * per changed mailbox to every socket there (notify_send).  A datagram may
 * be lost (full receiver): imapd re-checks on a slow timer anyway.  A
 * socket whose process is gone is removed by the next sender.
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
/* Send "mailbox ID" for each of ids to every listener; never blocks. */
void notify_send(const char *run_dir, const uint32_t *ids, size_t n);
/* Parse a received datagram: 0 with *id, -1 if it is not one of ours. */
int notify_parse(const char *msg, size_t len, uint32_t *id);

#endif
