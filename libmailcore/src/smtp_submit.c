/*
 * smtp_submit.c - the submission policy (SPEC 4) on top of the SMTP engine.
 *
 * At MAIL FROM: the user must be logged in (530 5.7.0), be allowed to send
 * by relay_acl ("published" or membership of the named group, read from
 * LMDB at every MAIL so group changes apply at once; 550 5.7.1), and own
 * the envelope sender (own address, alias or plus-address; 553 5.7.1).
 *
 * At the end of data: every From: address must be the user's (553 5.7.1;
 * a From: without an address 553 5.6.0; none at all gets "From: <envelope
 * sender>"), and no attachment may have a type outside
 * allowed_attachment_types (550 5.7.1 naming the type).  Then the final message is written once:
 * our Received: line, Message-ID and Date when missing, and the client's
 * bytes.  Remote recipients get a queue entry for relayq, staged here and
 * made durable in the group commit (smtp_deliver.c) with the index entries
 * of the sender's Sent folder (\Seen) and local recipients' INBOXes: all
 * before the 250.
 */
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>

#include "mailcore/conf.h"
#include "mailcore/conn.h"
#include "mailcore/ev.h"
#include "mailcore/ipc.h"
#include "mailcore/mime.h"
#include "mailcore/queue.h"
#include "mailcore/service.h"
#include "mailcore/store.h"
#include "smtp_internal.h"

#define HEADER_MAX 2048

struct sender_check {
    const char *user;
    const char *group;          /* relay_acl's; NULL: published */
    char addr[SMTP_PATH_MAX + 1];
    int member;
    int owned;
    uint32_t sent;
};

static int find_sent(const struct db_mailbox *m, void *arg)
{
    struct sender_check *c = arg;

    if ((m->special & DB_SPECIAL_SENT) && c->sent == 0)
        c->sent = m->id;
    return 0;
}

static int tx_sender(struct db_txn *txn, void *arg)
{
    struct sender_check *c = arg;
    char owner[DB_NAME_MAX + 1];
    int rc;

    c->member = c->group == NULL || db_group_is_member(txn, c->group, c->user) == 1;
    rc = c->addr[0] ? db_address_resolve(txn, c->addr, owner) : DB_NOTFOUND;
    if (rc != 0 && rc != DB_NOTFOUND)
        return rc;
    c->owned = rc == 0 && strcmp(owner, c->user) == 0;
    return db_mailbox_foreach(txn, c->user, find_sent, c);
}

static void lower(char *s)
{
    for (; *s; s++)
        if (*s >= 'A' && *s <= 'Z')
            *s = (char)(*s - 'A' + 'a');
}

enum smtp_reply_id smtp_submit_sender(struct smtp_session *s, const struct smtp_path *from)
{
    struct sender_check c = {.user = s->user, .group = conf_relay_acl_group(s->srv->svc->conf)};
    char err[256];

    if (s->user[0] == '\0') {
        smtp_reply(s, SMTP_R_AUTH_REQUIRED);
        return SMTP_R_AUTH_REQUIRED;
    }
    snprintf(c.addr, sizeof c.addr, "%s", from->addr);
    lower(c.addr);
    if (db_read(s->srv->svc->db, tx_sender, &c, err, sizeof err) != 0) {
        log_warn("sender check: %s", err);
        smtp_reply(s, SMTP_R_TEMP_LOOKUP, from->addr);
        return SMTP_R_TEMP_LOOKUP;
    }
    if (!c.member) {
        log_info("NOQUEUE: reject: MAIL from unknown[%s]: 550 5.7.1 user %s is not in group %s "
                 "(relay_acl); sasl_username=%s", s->addr, s->user, c.group, s->user);
        smtp_reply(s, SMTP_R_MAY_NOT_SEND, s->user, c.group);
        return SMTP_R_MAY_NOT_SEND;
    }
    if (!c.owned || from->source_route || from->quoted) {
        log_info("NOQUEUE: reject: MAIL from unknown[%s]: 553 5.7.1 <%s>: Sender address "
                 "rejected: not owned by user %s; sasl_username=%s", s->addr, from->addr,
                 s->user, s->user);
        smtp_reply(s, SMTP_R_SENDER_NOT_OWNED, from->addr, s->user);
        return SMTP_R_SENDER_NOT_OWNED;
    }
    s->sent_mailbox = c.sent;
    return SMTP_R_NONE;
}

/*
 * A header value with its comments removed (RFC 5322 CFWS: nested
 * parentheses, quoted-pairs), quoted strings kept: "(The Boss) a@b" and
 * "a@b (x)" both become plain addresses.
 */
static void strip_comments(const char *in, size_t len, struct mime_buf *out)
{
    int depth = 0, quote = 0;

    for (size_t i = 0; i < len; i++) {
        char c = in[i];
        if (c == '\\' && i + 1 < len && (quote || depth)) {
            if (!depth)
                mime_buf_add(out, in + i, 2);
            i++;
        } else if (depth) {
            depth += c == '(' ? 1 : c == ')' ? -1 : 0;
        } else if (c == '"') {
            quote = !quote;
            mime_buf_addc(out, c);
        } else if (c == '(' && !quote) {
            depth = 1;
            mime_buf_addc(out, ' ');
        } else {
            mime_buf_addc(out, c);
        }
    }
}

/* The next addr-spec of a comment-free address list; 0 at the end. */
static int next_address(const char **pp, const char *end, char *out, size_t outsz)
{
    const char *p = *pp, *start, *lt = NULL, *gt = NULL;
    int quote = 0;

    while (p < end && (*p == ',' || *p == ';' || *p == ' ' || *p == '\t' || *p == '\r' ||
                       *p == '\n'))
        p++;
    if (p >= end)
        return 0;
    start = p;
    for (; p < end; p++) {
        if (quote) {
            if (*p == '\\' && p + 1 < end)
                p++;
            else if (*p == '"')
                quote = 0;
        } else if (*p == '"') {
            quote = 1;
        } else if (*p == '<') {
            lt = p;
        } else if (*p == '>' && lt) {
            gt = p;
        } else if (*p == ',' || *p == ';') {
            break;
        } else if (*p == ':' && !lt) {
            start = p + 1;              /* "group:" display name */
        }
    }
    *pp = p;
    if (lt && gt) {
        start = lt + 1;
        end = gt;
    } else {
        end = p;
    }
    while (start < end && (*start == ' ' || *start == '\t' || *start == '\r' || *start == '\n'))
        start++;
    while (end > start && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r' || end[-1] == '\n'))
        end--;
    snprintf(out, outsz, "%.*s", (int)(end - start), start);
    lower(out);
    return 1;
}

struct from_check {
    const char *user;
    const struct mime_msg *mime;
    char bad[SMTP_PATH_MAX + 1];
    size_t fields;                  /* From: fields */
    size_t seen;                    /* addresses in them */
};

/* Every address of every From: field (all of them, however many). */
static int tx_from(struct db_txn *txn, void *arg)
{
    struct from_check *f = arg;
    struct mime_header h;
    struct mime_buf clean;
    char addr[SMTP_PATH_MAX + 1], owner[DB_NAME_MAX + 1];
    size_t pos = 0;
    int rc = 0;

    f->bad[0] = '\0';
    f->fields = f->seen = 0;
    mime_buf_init(&clean, 1 << 20);
    while (rc == 0 && !f->bad[0] && mime_header_next(f->mime->root, &pos, &h)) {
        const char *p, *end;
        if (h.name_len != 4 || strncasecmp(h.name, "From", 4) != 0 || h.value == NULL)
            continue;
        f->fields++;
        mime_buf_reset(&clean);
        strip_comments(h.value, h.value_len, &clean);
        if (clean.failed) {
            snprintf(f->bad, sizeof f->bad, "(unreadable)");
            break;
        }
        p = clean.p ? clean.p : "";
        end = p + clean.len;
        while (next_address(&p, end, addr, sizeof addr)) {
            if (addr[0] == '\0')
                continue;
            f->seen++;
            rc = db_address_resolve(txn, addr, owner);
            if (rc != 0 && rc != DB_NOTFOUND)
                break;
            if (rc != 0 || strcmp(owner, f->user) != 0) {
                snprintf(f->bad, sizeof f->bad, "%s", addr);
                rc = 0;
                break;
            }
        }
    }
    mime_buf_free(&clean);
    return rc;
}

/*
 * Every From: address belongs to the user: SMTP_R_NONE (*missing set when
 * there is no From: field: submission adds one with the envelope sender,
 * which is the user's, as Postfix's cleanup does), else the refusal with
 * the address in bad.  A From: field without any address is refused.
 */
static enum smtp_reply_id check_from(struct smtp_session *s, const struct mime_msg *mime,
                                     int *missing, char *bad, size_t badsz)
{
    struct from_check f = {.user = s->user, .mime = mime};
    char err[256];

    *missing = 0;
    if (db_read(s->srv->svc->db, tx_from, &f, err, sizeof err) != 0) {
        snprintf(bad, badsz, "(lookup failed)");
        return SMTP_R_FROM_NOT_OWNED;
    }
    if (f.bad[0]) {
        snprintf(bad, badsz, "%s", f.bad);
        return SMTP_R_FROM_NOT_OWNED;
    }
    if (f.fields == 0 && s->from.addr[0]) {
        *missing = 1;
        return SMTP_R_NONE;
    }
    return f.seen ? SMTP_R_NONE : SMTP_R_FROM_NO_ADDRESS;
}

struct attach_check {
    const struct conf *conf;
    char type[128];
};

static int type_allowed(const struct conf *c, const char *type)
{
    for (size_t i = 0; conf_list_item(c, "allowed_attachment_types", i); i++) {
        const char *pat = conf_list_item(c, "allowed_attachment_types", i);
        if (strcmp(pat, "*") == 0 || fnmatch(pat, type, FNM_CASEFOLD) == 0)
            return 1;
    }
    return 0;
}

static int on_part(const struct mime_walk_info *info, void *arg)
{
    struct attach_check *a = arg;
    int attachment = info->attachment || info->disposition == MIME_DISP_ATTACHMENT;

    /* A part whose inside the parser's bounds left unread may hide anything. */
    if ((info->part->flags & MIME_PART_LIMITED) && !type_allowed(a->conf, "*/*")) {
        snprintf(a->type, sizeof a->type, "%s (nested too deep to check)", info->type);
        return 1;
    }
    if (!attachment || type_allowed(a->conf, info->type))
        return 0;
    snprintf(a->type, sizeof a->type, "%s", info->type);
    return 1;
}

/* The Message-ID the final message carries, "<...>", into out. */
static void message_id(struct smtp_session *s, const struct mime_msg *mime, time_t now,
                       char *out, size_t outsz)
{
    struct mime_header h;
    const char *p, *end, *gt;

    if (!mime_header_find(mime->root, "Message-ID", &h) || h.value == NULL) {
        snprintf(out, outsz, "<%s.%lld@%s>", s->qid, (long long)now, s->srv->hostname);
        return;
    }
    p = h.value;
    end = h.value + h.value_len;
    while (p < end && *p != '<')
        p++;
    gt = p < end ? memchr(p, '>', (size_t)(end - p)) : NULL;
    if (gt == NULL || (size_t)(gt - p + 1) >= outsz)
        out[0] = '\0';
    else
        snprintf(out, outsz, "%.*s", (int)(gt - p + 1), p);
}

/* Our Received: and the missing Message-ID / Date, into hdr. */
static int added_headers(struct smtp_session *s, const struct mime_msg *mime, int add_from,
                         const char *msgid, char *hdr, size_t len)
{
    struct mime_header h;
    char date[64];
    time_t now = time(NULL);
    struct tm tm;
    int n = smtp_received(s, 0, hdr, len);

    if (n < 0)
        return -1;
    localtime_r(&now, &tm);
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S %z", &tm);
    if (!mime_header_find(mime->root, "Message-ID", &h))
        n += snprintf(hdr + n, len - (size_t)n, "Message-ID: %s\r\n", msgid);
    if ((size_t)n < len && !mime_header_find(mime->root, "Date", &h))
        n += snprintf(hdr + n, len - (size_t)n, "Date: %s\r\n", date);
    if ((size_t)n < len && add_from)
        n += snprintf(hdr + n, len - (size_t)n, "From: <%s>\r\n", s->from.addr);
    return (size_t)n < len ? n : -1;
}

static int queue_remote(struct smtp_session *s, struct store_msg *msg, char *err, size_t errlen)
{
    const char *rcpts[STORE_RCPT_MAX];
    size_t n = 0;

    for (size_t i = 0; i < s->nrcpts && n < STORE_RCPT_MAX; i++)
        if (s->rcpts[i].mailbox == 0)
            rcpts[n++] = s->rcpts[i].addr;
    if (n == 0)
        return 0;
    if (queue_stage(conf_str(s->srv->svc->conf, "queue_directory"), s->qid, s->from.addr, s->user,
                    rcpts, n, store_msg_fd(msg), (size_t)store_msg_size(msg), err, errlen) != 0)
        return -1;
    s->queued = 1;
    return 0;
}

enum smtp_reply_id smtp_submit_finish(struct smtp_session *s, const char **arg)
{
    static char why[256];
    struct attach_check a = {.conf = s->srv->svc->conf};
    size_t size = (size_t)store_msg_size(s->msg);
    struct store_msg *final;
    struct mime_msg *mime;
    char hdr[HEADER_MAX], err[256], msgid[DB_MSGID_MAX + 1];
    void *map = MAP_FAILED;
    int n, add_from, fd = store_msg_fd(s->msg);
    enum smtp_reply_id refuse;

    *arg = why;
    if (fd < 0 || (size && (map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0)) == MAP_FAILED))
        return SMTP_R_WRITE_ERROR;
    mime = mime_parse_flags(size ? map : "", size, MIME_PARSE_LENIENT);
    if (mime == NULL) {
        munmap(map, size);
        return SMTP_R_WRITE_ERROR;
    }
    if ((refuse = check_from(s, mime, &add_from, why, sizeof why)) != SMTP_R_NONE) {
        mime_free(mime);
        munmap(map, size);
        return refuse;
    }
    if ((mime->flags & (MIME_MSG_DEPTH_LIMIT | MIME_MSG_PARTS_LIMIT)) &&
        !type_allowed(a.conf, "*/*")) {
        snprintf(why, sizeof why, "(message too complex to check: more than %d parts or %d "
                 "levels)", MIME_PARTS_MAX, MIME_DEPTH_MAX);
        mime_free(mime);
        munmap(map, size);
        return SMTP_R_ATTACHMENT_REFUSED;
    }
    if (mime_walk(mime, on_part, &a) != 0) {
        snprintf(why, sizeof why, "%s", a.type);
        mime_free(mime);
        munmap(map, size);
        return SMTP_R_ATTACHMENT_REFUSED;
    }
    message_id(s, mime, time(NULL), msgid, sizeof msgid);
    n = added_headers(s, mime, add_from, msgid, hdr, sizeof hdr);
    mime_free(mime);
    final = n < 0 ? NULL : store_msg_new(s->srv->svc->store, err, sizeof err);
    if (final == NULL || store_msg_write(final, hdr, (size_t)n) < 0 ||
        (size && store_msg_write(final, map, size) < 0)) {
        if (final)
            store_msg_free(final);
        munmap(map, size);
        return SMTP_R_WRITE_ERROR;
    }
    if (size)
        munmap(map, size);
    /* final is complete: the queue may link to its file rather than copy it. */
    if (queue_remote(s, final, err, sizeof err) != 0) {
        log_error("%s: queue: %s", s->qid, err);
        store_msg_free(final);
        return SMTP_R_WRITE_ERROR;
    }
    if (s->sent_mailbox && msgid[0])
        store_msg_note_sent(final, s->user, msgid, s->sent_mailbox);
    store_msg_free(s->msg);
    s->msg = final;
    return SMTP_R_NONE;
}

static void send_wake(struct smtp_server *srv)
{
    char path[600];

    snprintf(path, sizeof path, "%s/private/relayq.sock",
             conf_str(srv->svc->conf, "run_directory"));
    ipc_notify(path, "wake", 4);        /* relayq also scans on its own */
    srv->wake_ms = ev_now_ms(srv->svc->ev);
}

static void on_wake_timer(struct ev_loop *ev, void *arg)
{
    struct smtp_server *srv = arg;

    (void)ev;
    srv->wake_timer = NULL;
    send_wake(srv);
}

/*
 * relayq forks a worker for what is due at each wake-up, and a worker
 * takes up to 20 entries over one SMTP session.  One wake-up per commit
 * would mean a fork and a session per message under load; held back to one
 * per SMTP_WAKE_GAP_MS, the entries of that time share them.
 */
void smtp_submit_wake_relayq(struct smtp_server *srv)
{
    uint64_t now = ev_now_ms(srv->svc->ev);

    if (srv->wake_timer)
        return;                         /* the held-back one covers these entries */
    if (srv->wake_ms == 0 || now - srv->wake_ms >= SMTP_WAKE_GAP_MS) {
        send_wake(srv);
        return;
    }
    srv->wake_timer =
        ev_timer_add(srv->svc->ev, srv->wake_ms + SMTP_WAKE_GAP_MS - now, on_wake_timer, srv);
    if (srv->wake_timer == NULL)
        send_wake(srv);
}

void smtp_submit_wake_flush(struct smtp_server *srv)
{
    if (srv->wake_timer == NULL)
        return;
    ev_timer_cancel(srv->svc->ev, srv->wake_timer);
    srv->wake_timer = NULL;
    send_wake(srv);
}
