/*
 * imap_sort.h - SORT and THREAD (RFC 5256), SORT=DISPLAY (RFC 5957) and
 * ESORT (RFC 5267): the parts that are pure functions of their input, so
 * that cmd_sort.c and the unit tests share them.
 *
 *	imap_basesubject.c  the base subject of RFC 5256 2.1
 *	imap_msginfo.c      what SORT, THREAD and SEARCH read of a message: the
 *	                    ENVELOPE text (as the cache holds it) back into
 *	                    fields, RFC 5322 dates, message ids
 *	imap_thread.c       THREAD=ORDEREDSUBJECT and THREAD=REFERENCES
 *	cmd_sort.c          the SORT and THREAD commands (and UID variants)
 *
 * Comparison is i;ascii-casemap (RFC 4790): strings that are compared are
 * kept folded (a-z to A-Z), so byte order is the collation.  Strings a sort
 * or thread keeps per message are cut to IMAP_SORT_KEY_MAX bytes, so a
 * mailbox of n messages costs n small records whatever their headers hold.
 */
#ifndef IMAP_SORT_H
#define IMAP_SORT_H

#include <stddef.h>
#include <stdint.h>

#include "mailcore/mime.h"

#define IMAP_SORT_KEY_MAX 1024   /* bytes of one folded sort key */
#define IMAP_THREAD_REFS_MAX 256 /* References ids used per message (the last ones) */

/* i;ascii-casemap in place: a-z to A-Z. */
void imap_casemap(char *s, size_t len);

/*
 * RFC 5256 2.1: the base subject of a Subject value (raw, as in ENVELOPE:
 * RFC 2047 words are decoded here, to UTF-8), folded with i;ascii-casemap,
 * into out (NUL-terminated, out->len without the NUL).  *reply (may be
 * NULL) is 1 when extraction removed a subj-refwd ("Re:", "Fwd:"), a
 * "(fwd)" trailer or a "[fwd: ...]" wrapper: the message is a reply or
 * forward (RFC 5256 section 4, REFERENCES step 5).  0, or -1 when out is
 * full or memory ran out.
 */
int imap_base_subject(const char *raw, size_t len, struct mime_buf *out, int *reply);

/*
 * An RFC 5322 date-time (obsolete forms too: two-digit years, named zones,
 * comments, no seconds) as seconds since the epoch, UTC.  RFC 5256 2.2: a
 * zone that cannot be read counts as UTC, a time that cannot be read as
 * 00:00:00.  -1 when there is no date (day month year) to read: the caller
 * then uses the internal date.
 */
int imap_rfc5322_date(const char *s, size_t len, int64_t *out);

/*
 * The next msg-id "<left@right>" of s from *pos on, normalised (RFC 5256
 * section 4: quoting removed, so <"a b"@x> and <a b@x> are one id;
 * whitespace, folding and comments between tokens dropped) into out, with
 * its angle brackets.  1 with an id, 0 when there are no more.  Text that
 * is no msg-id (no '@', no closing '>') is skipped.
 */
int imap_msgid_next(const char *s, size_t len, size_t *pos, struct mime_buf *out);

/* The fields of an ENVELOPE that SORT and THREAD use; NIL reads as empty.
 * An address is the first entry of its list, a group start too (then
 * mailbox is the group's name and host is empty), as in ENVELOPE and as
 * Dovecot sorts: "To: undisclosed-recipients:;" sorts by that name. */
struct imap_env_addr {
    struct mime_buf name, mailbox, host;
    int present;
};
struct imap_env {
    struct mime_buf date, subject, in_reply_to, message_id;
    struct imap_env_addr from, to, cc;
};
void imap_env_init(struct imap_env *e);
void imap_env_free(struct imap_env *e);
/* Parse "(date subject from sender reply-to to cc bcc in-reply-to
 * message-id)" as mime_imap_envelope() writes it.  0 or -1 (malformed). */
int imap_env_parse(const char *text, size_t len, struct imap_env *e);

/* A top-level field of an ENVELOPE as text, for SEARCH: a string field's
 * value (nothing for NIL), an address field as "name <mailbox@host>, ..."
 * (a group's start as "name:"), into out.  0 or -1 (malformed). */
enum imap_env_field {
    IMAP_ENV_DATE, IMAP_ENV_SUBJECT, IMAP_ENV_FROM, IMAP_ENV_SENDER, IMAP_ENV_REPLY_TO,
    IMAP_ENV_TO, IMAP_ENV_CC, IMAP_ENV_BCC, IMAP_ENV_IN_REPLY_TO, IMAP_ENV_MESSAGE_ID
};
int imap_env_field_text(const char *text, size_t len, enum imap_env_field f,
                        struct mime_buf *out);

/* Sort keys from an envelope, folded, cut to IMAP_SORT_KEY_MAX, into out
 * (NUL-terminated).  FROM, TO, CC: the addr-mailbox (RFC 5256);
 * DISPLAYFROM, DISPLAYTO: the decoded display name, or mailbox@host when
 * there is none (RFC 5957), a group's name alone.  0 or -1 (memory). */
int imap_sort_addr_key(const struct imap_env_addr *a, int display, struct mime_buf *out);

/* --- threads ------------------------------------------------------------ */

enum imap_thread_alg { IMAP_THREAD_ORDEREDSUBJECT, IMAP_THREAD_REFERENCES };

struct imap_thread;
struct imap_thread *imap_thread_new(enum imap_thread_alg alg);
void imap_thread_free(struct imap_thread *t);
/*
 * Add the next message, in ascending sequence order (ties of the sent date
 * go to the one added first).  id: what the answer shows (sequence number
 * or UID); date: its sent date (RFC 5256 2.2); subject: the raw Subject
 * (base subject taken here); msgid, references, in_reply_to: raw header
 * values (NULL or empty when absent), read only by REFERENCES.  0 or -1
 * (memory).
 */
int imap_thread_add(struct imap_thread *t, uint32_t id, int64_t date, const char *subject,
                    size_t subject_len, const char *msgid, size_t msgid_len, const char *references,
                    size_t references_len, const char *in_reply_to, size_t in_reply_to_len);
/* The threads as RFC 5256 thread-list text ("(1 2)(3 (4)(5))"; nothing
 * for no messages) appended to out.  0 or -1 (memory, out full). */
int imap_thread_result(struct imap_thread *t, struct mime_buf *out);

#endif
