/*
 * imapd.h - what imapd's files share: the server, the session, the view of
 * a selected mailbox, and the command table.
 *
 *	session.c     connection, input (lines, literals, IDLE), replies, dispatch
 *	cmd_any.c     CAPABILITY NOOP LOGOUT STARTTLS LOGIN AUTHENTICATE ENABLE ID
 *	cmd_mailbox.c SELECT EXAMINE CREATE DELETE RENAME (UN)SUBSCRIBE LIST LSUB
 *	              NAMESPACE STATUS
 *	cmd_message.c STORE COPY MOVE EXPUNGE CLOSE UNSELECT CHECK SEARCH
 *	cmd_sort.c    SORT THREAD (RFC 5256, 5957, 5267), over SEARCH's selection
 *	fetch.c       FETCH, streamed so that a large message never sits in memory
 *	msgfile.c     a message file's bytes: read into a reused buffer, or mmapped
 *	append.c      APPEND, its literal streamed into the store
 *	view.c        the selected mailbox: sequence numbers, flags, sync with LMDB
 *	notify.c      mailbox-change datagrams between processes; IDLE
 *	condstore.c   CONDSTORE and QRESYNC (RFC 7162): ENABLE, SELECT's resync, VANISHED
 */
#ifndef IMAPD_H
#define IMAPD_H

#include <stddef.h>
#include <stdint.h>

#include "imap_parse.h"
#include "mailcore/anvil.h"
#include "mailcore/db.h"
#include "mailcore/log.h"
#include "mailcore/mime.h"
#include "mailcore/notify.h"

struct conn;
struct ev_timer;
struct service;
struct store_msg;

#define IMAP_LINE_MAX 65536
#define IMAP_TAG_MAX 64

/* One message as the session sees it: sequence number = index + 1. */
struct view_msg {
    uint32_t uid;
    uint32_t flags;             /* DB_FLAG_* */
    uint32_t recent;            /* \Recent in this session (RFC 3501 2.3.2) */
    uint64_t keywords;
    uint64_t modseq;
};

struct view {
    uint32_t mailbox_id;
    char name[DB_MBOX_NAME_MAX + 1];
    uint32_t uidvalidity, uidnext;
    uint64_t highestmodseq;
    int readonly;
    int rev2;                   /* IMAP4rev2 enabled: no \Recent, no RECENT */
    struct view_msg *msgs;      /* NULL while asleep */
    size_t n, cap;
    char (*keywords)[DB_KEYWORD_LEN + 1];  /* DB_KEYWORDS_MAX; NULL while asleep */
    uint64_t keywords_used;     /* bit i: keywords[i] is defined */
    size_t announced_keywords;  /* to re-send FLAGS when a keyword appears */
    /* Asleep (an IDLE session): the uids and the \Recent uids as ranges. */
    int asleep;
    struct uid_range *sleep_uids, *sleep_recent;
    size_t sleep_nuids, sleep_nrecent;
    struct uid_range *saved;    /* RFC 5182's "$" (searchres.c), ascending */
    size_t nsaved;
};

struct uid_range {
    uint32_t lo, hi;
};

enum imap_state { IS_NOTAUTH, IS_AUTH, IS_SELECTED, IS_LOGOUT };

enum imap_input {
    IN_LINE,            /* command lines */
    IN_LITERAL,         /* a literal for the parser */
    IN_SKIP,            /* a failed command's LITERAL+ bytes, dropped */
    IN_SKIP_LINE,       /* the rest of that command's line */
    IN_APPEND,          /* APPEND's message literal, into the store */
    IN_IDLE,            /* waiting for DONE */
    IN_AUTH,            /* AUTHENTICATE continuation */
    IN_BUSY,            /* a command is running (FETCH streaming, login delay) */
    IN_CLOSING,
};

struct fetch_job;
struct append_job;

/* A message file's bytes (msgfile.c); buf is kept from one load to the next. */
struct msgfile {
    const char *p;
    size_t len;
    char *buf;
    size_t cap;
    void *map;
    size_t maplen;
};

struct store;
/* Load a file (header_only: its header section at least); 0 or -1. */
int msgfile_load(struct msgfile *f, struct store *st, uint64_t file_id, int header_only);
size_t msgfile_header_len(const struct msgfile *f); /* the header section */
void msgfile_release(struct msgfile *f);        /* done with the bytes */
void msgfile_free(struct msgfile *f);           /* and the buffer */

struct imap_session {
    struct imap_server *srv;
    struct conn *conn;
    struct imap_session *prev, *next;
    char addr[64];
    enum imap_state state;
    enum imap_input input;
    struct imap_parser *parser;
    char tag[IMAP_TAG_MAX + 1];         /* of the running command */
    char user[DB_NAME_MAX + 1];
    int tls_required_hint;
    int rev2, utf8, condstore;          /* ENABLEd (condstore: or used, RFC 7162 3.1) */
    int qresync;                        /* ENABLEd: VANISHED instead of EXPUNGE */
    struct view *view;
    struct fetch_job *fetch;
    struct append_job *append;
    const char *pending_no;             /* a refused command: its answer, once it is read */
    const char *pending_status;         /* "NO" or "BAD" */
    uint64_t skip_left;                 /* IN_SKIP */
    char idle_tag[IMAP_TAG_MAX + 1];
    struct ev_timer *delay;             /* failed-login delay */
    struct ev_timer *stall;             /* output not draining: drop the client */
    int counted;
    struct anvil_key ipkey, userkey;
    int user_counted;
    int dead;
};

struct imap_server {
    struct service *svc;
    struct imap_session *sessions;
    size_t nsessions;
    struct imap_limits limits;
    size_t ip_limit, user_limit;
    int notify_fd;
    char notify_dir[512];
    struct notify_sender *notify;       /* our own changes, to the other imapds */
    struct ev_timer *recheck;
    int stopping;
};

/* session.c */
void imap_tagged(struct imap_session *s, const char *status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void imap_untagged(struct imap_session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void imap_write(struct imap_session *s, const void *buf, size_t len);
/* A string: quoted or literal (quoted UTF-8 for an IMAP4rev2 session). */
void imap_string(struct imap_session *s, const char *str, size_t len);
void imap_command_done(struct imap_session *s);  /* back to reading commands */
void imap_session_close(struct imap_session *s, const char *bye);
/* Output is waiting for the client: drop it unless the output drains within
 * IMAP_STALL_MS (a client that stops reading cannot hold a session). */
void imap_stall_arm(struct imap_session *s);
#define IMAP_STALL_MS (5 * 60 * 1000)
int imap_plaintext_ok(const struct imap_session *s);
void imap_server_accept(struct imap_server *srv, int fd, const char *addr, int implicit_tls);
struct imap_server *imap_server_new(struct service *svc);
void imap_server_stop(struct imap_server *srv);
void imap_server_free(struct imap_server *srv);

/* The command table. */
typedef void imap_cmd_fn(struct imap_session *s, int uid, const struct imap_arg *args,
                         size_t nargs);
struct imap_command {
    const char *name;
    imap_cmd_fn *fn;
    unsigned states;            /* 1 << IS_* where it is allowed */
    int uid_ok;                 /* may follow UID */
    int no_args;                /* takes none: anything more is BAD */
};
const struct imap_command *imap_command_find(const char *name);
const char *imap_capabilities(const struct imap_session *s);

/* cmd_any.c, cmd_mailbox.c, cmd_message.c, fetch.c, append.c */
imap_cmd_fn cmd_capability, cmd_noop, cmd_logout, cmd_starttls, cmd_login, cmd_authenticate,
    cmd_enable, cmd_id, cmd_idle;
imap_cmd_fn cmd_select, cmd_examine, cmd_create, cmd_delete, cmd_rename, cmd_subscribe,
    cmd_unsubscribe, cmd_list, cmd_lsub, cmd_namespace, cmd_status;
imap_cmd_fn cmd_store, cmd_copy, cmd_move, cmd_expunge, cmd_close, cmd_unselect, cmd_check,
    cmd_search;
imap_cmd_fn cmd_fetch, cmd_append;
imap_cmd_fn cmd_sort, cmd_thread;
/* cmd_quota.c: RFC 9208; the NO text for what does not fit, and the
 * user_quota default (quota.h) */
imap_cmd_fn cmd_getquotaroot, cmd_getquota, cmd_setquota;
extern const char imap_quota_refusal[];
uint64_t imap_quota_default(const struct imap_session *s);
int imap_quota_fits(struct imap_session *s, uint64_t add);  /* 1, or 0: over quota */
imap_cmd_fn cmd_compress; /* cmd_compress.c */
/* cmd_search.c, for cmd_sort.c: RETURN's options (RFC 4731, RFC 5267,
 * RFC 5182) as SEARCH_RET_* bits, -1 for one that is unknown; the view
 * indexes of the messages root matches, ascending, count in *n (NULL: out
 * of memory); and the answer SEARCH or SORT gives ("* word n n n" or, when
 * esearch, ESEARCH: ret 0 is ALL; SAVE alone gives no ESEARCH; MIN and MAX
 * are hits[0] and hits[n - 1]; modseq not 0: RFC 7162's MODSEQ of the
 * hits, when there are any). */
enum {
    SEARCH_RET_MIN = 1, SEARCH_RET_MAX = 2, SEARCH_RET_COUNT = 4, SEARCH_RET_ALL = 8,
    SEARCH_RET_SAVE = 16
};
int search_return_options(const struct imap_arg *list, unsigned *ret);
size_t *search_run(struct imap_session *s, const struct imap_search_key *root, size_t *n);
void search_report(struct imap_session *s, const char *word, int uid, const uint32_t *hits,
                   size_t n, unsigned ret, int esearch, uint64_t modseq);
/* searchres.c: "$".  Save what SEARCH or SORT found (nums: uids when uid,
 * else sequence numbers, in the order reported; only the MIN/MAX ones when
 * ret asks for them); -1 out of memory, and the result is then empty. */
int searchres_save(struct view *v, const uint32_t *nums, size_t n, int uid, unsigned ret);
void searchres_clear(struct view *v);
int searchres_has(const struct view *v, uint32_t uid);
/* A parsed "$" set turned into the saved messages' uids (uid) or sequence
 * numbers; any other set is left alone.  0, or -1 out of memory. */
int searchres_expand(const struct view *v, struct imap_seqset *set, int uid);
void imap_auth_line(struct imap_session *s, const char *line, size_t len);
void fetch_continue(struct imap_session *s);       /* after output drained */
void fetch_job_free(struct fetch_job *job);
void append_literal(struct imap_session *s);       /* bytes for IN_APPEND */
void append_job_free(struct append_job *job);
int append_begin(struct imap_session *s);          /* the parser stopped at APPEND's literal */
/* Refuse the pending literal's command with NO text: at once when the
 * client waits for "+", else after its bytes (swallowed by the parser). */
void imap_refuse_literal(struct imap_session *s, const char *status, const char *text);

/* Mailbox names are stored in modified UTF-7; an IMAP4rev2 session sends
 * and sees them in UTF-8 (RFC 9051 5.1).  imap_mailbox_arg: the argument
 * as the stored name, a C string (NUL-free, canonical INBOX, no trailing
 * "/"); -1 when it is not a valid name.  imap_mailbox_shown: a stored name
 * as the session sees it (buf: IMAP_MAILBOX_UTF8_MAX + 1 bytes, used for
 * IMAP4rev2; a stored name that is not modified UTF-7 is shown as it is).
 * imap_mailbox_send: writes it as a string (LIST, STATUS, QUOTAROOT).
 * imap_no_mailbox: the tagged NO [code] for a name that does not exist. */
int imap_mailbox_arg(struct imap_session *s, const struct imap_arg *a, char *out, size_t outsz);
const char *imap_mailbox_shown(const struct imap_session *s, const char *name, char *buf,
                               size_t bufsz);
void imap_mailbox_send(struct imap_session *s, const char *name);
void imap_no_mailbox(struct imap_session *s, const char *code, const char *name);
/* A string-ish argument (atom, quoted, literal) into out; -1 if not one. */
int imap_astring(const struct imap_arg *a, char *out, size_t outsz);

/* view.c */
struct view *view_open(struct imap_session *s, const char *name, int readonly, char *err,
                       size_t errlen);
void view_free(struct view *v);
/* Bring the view up to date and announce what changed: new messages
 * (EXISTS, RECENT), flag changes (FETCH), and -- only when allow_expunge --
 * expunges (EXPUNGE).  0, or -1 when the mailbox is gone (BYE). */
int view_sync(struct imap_session *s, int allow_expunge);
/* An IDLE session's view keeps only its uids, as ranges (view_sleep); a
 * view_sync that finds changes expands it, announces, and puts it back to
 * sleep.  view_wake brings it back for commands (and announces what changed
 * meanwhile); 0, or -1 when the mailbox is gone (BYE). */
void view_sleep(struct view *v);
int view_wake(struct imap_session *s);
uint32_t view_seq_of_uid(const struct view *v, uint32_t uid);       /* 0: none */
/* The index of the first message with a uid >= uid (v->n: none). */
size_t view_first_at(const struct view *v, uint32_t uid);
/* A sequence set (not UIDs) names only messages that exist ('*' aside). */
int view_seqset_valid(const struct view *v, const struct imap_seqset *set);
/* Every message a set names (seq or uid), in ascending order: indexes. */
size_t *view_resolve(const struct view *v, const struct imap_seqset *set, int uid, size_t *n);
void view_flags_text(const struct view *v, const struct view_msg *m, char *out, size_t outsz);
int view_is_recent(const struct view *v, const struct view_msg *m);
/* IMAP_FLAG_* system flags as DB_FLAG_* bits. */
uint32_t view_db_flags(unsigned imap_flags);
/* The FLAGS / PERMANENTFLAGS lines (keywords included). */
void view_announce_flags(struct imap_session *s);

/* condstore.c (RFC 7162).  condstore_enable: ENABLE of name, the word for
 * ENABLED when it was newly enabled, else NULL. */
struct imap_select_params;
const char *condstore_enable(struct imap_session *s, const char *name);
/* SELECT's parameter list (arg NULL: none) into *p; -1 after a BAD reply. */
int condstore_select_params(struct imap_session *s, const struct imap_arg *arg,
                            struct imap_select_params *p);
/* After SELECT's untagged responses: QRESYNC's VANISHED (EARLIER) and
 * FETCHes; frees *p. */
void condstore_select_done(struct imap_session *s, struct imap_select_params *p);
/* "* VANISHED (EARLIER)" with the uids of the set below UIDNEXT that no
 * message of the view has (nothing when none). */
void condstore_vanished_earlier(struct imap_session *s, const struct imap_seqset *uids);
/* "* VANISHED" with the uids of old (uid order) that now lacks. */
void condstore_vanished(struct imap_session *s, const struct view_msg *old, size_t nold,
                        const struct view_msg *now, size_t nnow);
/* "* seq FETCH (UID u [FLAGS (..)] MODSEQ (m))". */
void condstore_fetch_line(struct imap_session *s, size_t seq, const struct view_msg *m,
                          int flags);
/* STORE's tagged OK, with [MODIFIED failed] (seqs or uids, ascending) if n. */
void condstore_store_done(struct imap_session *s, const uint32_t *failed, size_t n);
/* SEARCH with a MODSEQ key: the highest modseq of the hits (view indexes),
 * and CONDSTORE is on; 0 without a MODSEQ key. */
uint64_t condstore_search_modseq(struct imap_session *s, const struct imap_search_key *root,
                                 const size_t *idx, size_t n);

/* notify.c */
int notify_open(struct imap_server *srv);
void notify_close(struct imap_server *srv);
/* Tell every imapd process (this one included) that a mailbox changed. */
void notify_mailbox(struct imap_server *srv, uint32_t mailbox_id);
void idle_wake(struct imap_session *s);

#endif
