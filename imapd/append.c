/*
 * append.c - APPEND (with APPENDLIMIT, UIDPLUS's APPENDUID): the message
 * literal is streamed into the store's temp file as it arrives, then made
 * durable like a delivery (store_commit) before the tagged OK.
 *
 * The session hands over when the parser stops at APPEND's last literal
 * (append_begin); the rest of the command line (its CRLF) then completes the
 * command and cmd_append commits.
 *
 * The message may come as a literal8, ~{n} (RFC 3516 BINARY, RFC 9051):
 * 8-bit text is stored as it is, as from a plain literal.  A NUL byte is
 * refused either way -- SMTP refuses it too, and a BODY[] holding one
 * could not be sent to a client that did not ask for BINARY: NO
 * [UNKNOWN-CTE] for a literal8 (RFC 3516 4.4: this mailbox cannot store
 * binary content), BAD for a plain literal (RFC 3501's literal has no NUL).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <time.h>

#include "imapd.h"
#include "mailcore/conf.h"
#include "mailcore/conn.h"
#include "mailcore/service.h"
#include "mailcore/store.h"

struct append_job {
    struct store_msg *msg;
    struct db_mailbox mb;
    struct imap_flags flags;
    time_t date;
    uint64_t left;
    int failed;
    int binary;                         /* sent as a literal8 */
    int nul;                            /* a NUL byte was seen */
};

void append_job_free(struct append_job *job)
{
    if (job == NULL)
        return;
    if (job->msg)
        store_msg_free(job->msg);
    free(job);
}

struct mb_get {
    const char *user;
    const char *name;
    struct db_mailbox *mb;
};

static int tx_mb(struct db_txn *txn, void *arg)
{
    struct mb_get *g = arg;

    return db_mailbox_get(txn, g->user, g->name, g->mb);
}

int append_begin(struct imap_session *s)
{
    size_t nargs;
    const struct imap_arg *args = imap_parser_args(s->parser, &nargs);
    uint64_t size = imap_parser_literal_size(s->parser);
    struct append_job *j;
    char name[DB_MBOX_NAME_MAX + 1], err[256];
    struct mb_get g;
    size_t i = 1;

    if (imap_parser_depth(s->parser) != 0 || nargs < 1)
        return -1;                      /* not the message: a literal mailbox name etc. */
    if ((j = calloc(1, sizeof *j)) == NULL)
        return -1;
    j->date = time(NULL);
    if (imap_mailbox_arg(s, &args[0], name, sizeof name) < 0) {
        free(j);
        imap_refuse_literal(s, "NO", "[CANNOT] Invalid mailbox name");
        return 0;
    }
    if (i < nargs && args[i].type == IMAP_ARG_LIST) {
        if (imap_flags_parse(&args[i], &j->flags) < 0) {
            free(j);
            imap_refuse_literal(s, "BAD", "Invalid flags");
            return 0;
        }
        i++;
    }
    if (i < nargs) {
        if ((args[i].type != IMAP_ARG_STRING && args[i].type != IMAP_ARG_ATOM) ||
            imap_datetime_parse(args[i].s, args[i].len, &j->date) < 0) {
            free(j);
            imap_refuse_literal(s, "BAD", "Invalid date-time");
            return 0;
        }
        i++;
    }
    if (size > conf_uint(s->srv->svc->conf, "message_size_limit")) {
        free(j);
        imap_refuse_literal(s, "NO", "[TOOBIG] Message is larger than APPENDLIMIT");
        return 0;
    }
    g = (struct mb_get){s->user, name, &j->mb};
    if (db_read(s->srv->svc->db, tx_mb, &g, err, sizeof err) != 0 ||
        (j->mb.special & DB_SPECIAL_NOSELECT)) {
        free(j);
        imap_refuse_literal(s, "NO", "[TRYCREATE] Mailbox doesn't exist");
        return 0;
    }
    if (!imap_quota_fits(s, size)) {     /* before the client sends it all */
        free(j);
        imap_refuse_literal(s, "NO", imap_quota_refusal);
        return 0;
    }
    j->msg = store_msg_new(s->srv->svc->store, err, sizeof err);
    if (j->msg == NULL) {
        free(j);
        log_error("APPEND: %s", err);
        imap_refuse_literal(s, "NO", "[SERVERBUG] Cannot store the message");
        return 0;
    }
    j->left = size;
    j->binary = imap_parser_literal_binary(s->parser);
    s->append = j;
    if (imap_parser_literal_sync(s->parser))
        conn_printf(s->conn, "+ Ready for literal data\r\n");
    imap_parser_literal_external(s->parser);
    s->input = IN_APPEND;
    return 0;
}

void append_literal(struct imap_session *s)
{
    struct append_job *j = s->append;
    const char *data;
    size_t len;

    while (j->left > 0) {
        if (conn_read_bytes(s->conn, j->left > 65536 ? 65536 : (size_t)j->left, &data, &len) !=
            CONN_OK)
            return;
        if (!j->nul && memchr(data, '\0', len) != NULL)
            j->nul = 1;
        if (!j->failed && !j->nul && store_msg_write(j->msg, data, len) < 0)
            j->failed = 1;
        j->left -= len;
    }
    s->input = IN_LINE;                 /* the command line goes on */
}

struct kw_set {
    struct append_job *j;
    uint32_t uid;
};

static int tx_keywords(struct db_txn *txn, void *arg)
{
    struct kw_set *k = arg;
    struct db_message m;
    uint64_t bits = 0;
    int rc;

    for (size_t i = 0; i < k->j->flags.nkeywords; i++) {
        unsigned b;
        if ((rc = db_keyword_index(txn, k->j->mb.id, k->j->flags.keywords[i], 1, &b)) != 0)
            return rc;
        bits |= 1ull << b;
    }
    if ((rc = db_message_get(txn, k->j->mb.id, k->uid, &m)) != 0)
        return rc;
    return db_message_update(txn, k->j->mb.id, k->uid, m.flags, bits, NULL);
}

struct sent_lookup {
    const char *user;
    char msgid[DB_MSGID_MAX + 1];
    uint32_t mailbox, uid;
    int found;
};

static int tx_sent(struct db_txn *txn, void *arg)
{
    struct sent_lookup *l = arg;
    struct db_message m;
    int rc = db_sentid_get(txn, l->user, l->msgid, (uint64_t)time(NULL), &l->mailbox, &l->uid);

    if (rc == DB_NOTFOUND)
        return 0;
    if (rc != 0)
        return rc;
    l->found = db_message_get(txn, l->mailbox, l->uid, &m) == 0;
    return 0;
}

/*
 * Mail clients APPEND their own copy of a sent message to Sent, which
 * submitd filed already: when the Message-ID matches a copy filed in this
 * mailbox within DB_SENTID_TTL, answer with that copy's UID instead of
 * storing a second one.  0 when answered so.
 */
static int already_filed(struct imap_session *s, struct append_job *j)
{
    struct sent_lookup l = {.user = s->user};
    size_t size = (size_t)store_msg_size(j->msg);
    int fd = store_msg_fd(j->msg);
    struct mime_header h;
    struct mime_msg *mime;
    const char *lt, *gt;
    char err[256];
    void *map;

    if (!(j->mb.special & DB_SPECIAL_SENT) || fd < 0 || size == 0 ||
        (map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0)) == MAP_FAILED)
        return -1;
    mime = mime_parse(map, size);
    if (mime && mime_header_find(mime->root, "Message-ID", &h) && h.value &&
        (lt = memchr(h.value, '<', h.value_len)) != NULL &&
        (gt = memchr(lt, '>', h.value_len - (size_t)(lt - h.value))) != NULL &&
        (size_t)(gt - lt + 1) < sizeof l.msgid)
        snprintf(l.msgid, sizeof l.msgid, "%.*s", (int)(gt - lt + 1), lt);
    mime_free(mime);
    munmap(map, size);
    if (l.msgid[0] == '\0' || db_read(s->srv->svc->db, tx_sent, &l, err, sizeof err) != 0 ||
        !l.found || l.mailbox != j->mb.id)
        return -1;
    log_info("APPEND of %s to %s/%s: already filed by submission as uid %u", l.msgid, s->user,
             j->mb.name, l.uid);
    imap_tagged(s, "OK", "[APPENDUID %u %u] Append completed (the copy submission filed)",
                j->mb.uidvalidity, l.uid);
    return 0;
}

void cmd_append(struct imap_session *s, int uid, const struct imap_arg *args, size_t nargs)
{
    struct append_job *j = s->append;
    char err[256];

    (void)uid, (void)args, (void)nargs;
    s->append = NULL;
    if (j == NULL) {
        imap_tagged(s, "BAD", "Syntax: APPEND mailbox [(flags)] [date-time] literal");
        imap_command_done(s);
        return;
    }
    if (j->nul) {
        if (j->binary)
            imap_tagged(s, "NO", "[UNKNOWN-CTE] Messages with NUL bytes are not stored");
        else
            imap_tagged(s, "BAD", "NUL byte in the message literal");
        append_job_free(j);
        imap_command_done(s);
        return;
    }
    if (!j->failed && already_filed(s, j) == 0) {
        append_job_free(j);
        imap_command_done(s);
        return;
    }
    store_msg_set_internaldate(j->msg, j->date);
    store_msg_add_rcpt_quota(j->msg, j->mb.id, view_db_flags(j->flags.system),
                             STORE_QUOTA_KEEP);
    if (j->failed || store_commit(s->srv->svc->store, &j->msg, 1, err, sizeof err) != 0) {
        log_error("APPEND to %s/%s: %s", s->user, j->mb.name, j->failed ? "write failed" : err);
        imap_tagged(s, "NO", "[SERVERBUG] Cannot store the message");
    } else if (store_msg_overquota(j->msg)) {
        imap_tagged(s, "NO", "%s", imap_quota_refusal);
    } else {
        uint32_t new_uid = store_msg_uid(j->msg, 0);
        if (j->flags.nkeywords) {
            struct kw_set k = {j, new_uid};
            db_write(s->srv->svc->db, tx_keywords, &k, err, sizeof err);
        }
        notify_mailbox(s->srv, j->mb.id);
        if (s->view && s->view->mailbox_id == j->mb.id && view_sync(s, 0) < 0) {
            append_job_free(j);
            return;
        }
        imap_tagged(s, "OK", "[APPENDUID %u %u] Append completed", j->mb.uidvalidity, new_uid);
    }
    append_job_free(j);
    imap_command_done(s);
}
