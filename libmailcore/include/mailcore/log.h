/*
 * log - Postfix-style log lines on stderr.
 *
 * A line looks like Postfix's, so that pflogsumm, fail2ban and friends work:
 *	mailcore/smtpd[4711]: 3F2A1C9B07: from=<a@x.org>, size=1234, nrcpt=1
 *	mailcore/master[4700]: warning: daemon imapd pid 4713 killed by signal 9
 * Under systemd (JOURNAL_STREAM set) journald adds time and host; otherwise
 * each line starts with a syslog-style "Nov 28 00:21:16 host " prefix.
 *
 * log_info() is the normal event line; warning/error/fatal add Postfix's
 * severity prefix.  log_fatal() exits 1.  A line is written with one write(2)
 * so lines from several processes never interleave.
 */
#ifndef MAILCORE_LOG_H
#define MAILCORE_LOG_H

#include <stddef.h>

#define LOG_LINE_MAX 2048
#define LOG_QUEUE_ID_LEN 12 /* hex digits */

void log_init(const char *progname);     /* e.g. "smtpd" */
const char *log_progname(void);
void log_set_verbose(int on);

void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* A new queue id: LOG_QUEUE_ID_LEN upper-case hex digits and a NUL, unique
 * across processes (time, pid and a counter). */
void log_queue_id(char out[LOG_QUEUE_ID_LEN + 1]);

/* Copy at most n bytes of untrusted data into out as printable text
 * (control and 8-bit bytes as \ooo); for logging network input. */
void log_sanitize(char *out, size_t outlen, const char *in, size_t n);

#endif
