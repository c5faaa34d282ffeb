/*
 * bounce.c - delivery status notifications (RFC 3464) for bounced
 * recipients, delivered straight into the INBOX of the local user who
 * submitted the message (store_msg_new/store_commit): a human-readable
 * part, a message/delivery-status part (Reporting-MTA, Arrival-Date, and
 * per recipient Final-Recipient, Action: failed, Status, Diagnostic-Code
 * when the relay answered) and the original message's headers
 * (text/rfc822-headers).  Runs in relayq's parent, which owns the
 * database.  A bounce is never bounced: a message with the null sender
 * is dropped with a log line.
 *
 * One DSN per bounce event, as soon as recipients bounce: it covers the
 * bounced recipients not yet marked notified in the envelope, which the
 * caller marks after it is stored.  A crash in between must not give a
 * second DSN, so its Message-ID is derived from the entry (queue id and
 * how many recipients were notified before) and recorded with it in the
 * same commit (store_msg_note_sent, the sentids table); a retry that finds
 * it there only reports it stored.  The record lasts DB_SENTID_TTL.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mailcore/conf.h"
#include "mailcore/db.h"
#include "mailcore/log.h"
#include "mailcore/service.h"
#include "mailcore/store.h"
#include "relayq.h"

#define HEADERS_MAX (64 * 1024)

struct find_inbox {
    const char *user;
    const char *msgid; /* the DSN's */
    uint32_t id;
    int stored; /* the DSN is in it already */
};

static int tx_inbox(struct db_txn *txn, void *arg)
{
    struct find_inbox *f = arg;
    struct db_mailbox mb;
    uint32_t mbox, uid;
    int r = db_mailbox_get(txn, f->user, "INBOX", &mb);

    if (r != 0)
        return r;
    f->id = mb.id;
    r = db_sentid_get(txn, f->user, f->msgid, (uint64_t)time(NULL), &mbox, &uid);
    f->stored = r == 0 && mbox == mb.id;
    return r == DB_NOTFOUND ? 0 : r;
}

static int to_notify(const struct queue_rcpt *r)
{
    return r->state == QUEUE_BOUNCED && !r->notified;
}

/* The original's header section (up to the blank line), at most
 * HEADERS_MAX bytes; malloc'ed, NUL-terminated. */
static char *original_headers(const char *queue_dir, const char *id, size_t *len)
{
    char path[1024], *buf = malloc(HEADERS_MAX + 1), *end;
    ssize_t n = 0;
    int fd;

    *len = 0;
    if (buf == NULL)
        return NULL;
    snprintf(path, sizeof path, "%s/msg/%s", queue_dir, id);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        n = pread(fd, buf, HEADERS_MAX, 0);
        close(fd);
    }
    if (n < 0)
        n = 0;
    buf[n] = '\0';
    if ((end = strstr(buf, "\r\n\r\n")) != NULL)
        end[2] = '\0';
    else if ((end = strstr(buf, "\n\n")) != NULL)
        end[1] = '\0';
    *len = strlen(buf);
    return buf;
}

static void rfc5322_date(long long when, char *buf, size_t len)
{
    time_t t = (time_t)when;
    struct tm tm;

    localtime_r(&t, &tm);
    strftime(buf, len, "%a, %d %b %Y %H:%M:%S %z", &tm);
}

/* Write with a growing buffer; returns -1 once anything failed. */
struct out {
    char *buf;
    size_t len, cap;
    int failed;
};

__attribute__((format(printf, 2, 3))) static void put(struct out *o, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (o->failed)
        return;
    for (;;) {
        va_start(ap, fmt);
        n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            o->failed = 1;
            return;
        }
        if ((size_t)n < o->cap - o->len) {
            o->len += (size_t)n;
            return;
        }
        size_t cap = (o->cap + (size_t)n + 1) * 2;
        char *b = realloc(o->buf, cap);
        if (b == NULL) {
            o->failed = 1;
            return;
        }
        o->buf = b;
        o->cap = cap;
    }
}

int relayq_bounce(struct relayq *q, const struct queue_env *e)
{
    struct conf *c = q->svc->conf;
    const char *host = conf_str(c, "myhostname"), *domain = conf_str(c, "email_domain");
    struct find_inbox f = {.user = e->user};
    struct out o = {0};
    struct store_msg *m;
    char err[1024] = "", nqid[LOG_QUEUE_ID_LEN + 1], date[64], arrival[64], *hdrs;
    char msgid[DB_MSGID_MAX + 1];
    size_t hlen, before = 0;
    long long now = (long long)time(NULL);
    int r;

    if (e->sender[0] == '\0') {
        log_info("%s: not bouncing a bounce (null sender): dropped", e->id);
        return 0;
    }
    for (size_t i = 0; i < e->nrcpts; i++)
        before += e->rcpts[i].notified;
    snprintf(msgid, sizeof msgid, "<dsn.%zu.%s@%s>", before, e->id, host);
    f.msgid = msgid;
    r = db_read(q->svc->db, tx_inbox, &f, err, sizeof err);
    if (r == DB_NOTFOUND) {
        log_warn("%s: sender non-delivery notification: user %s or its INBOX is gone: "
                 "dropped",
                 e->id, e->user);
        return 0;
    }
    if (r != 0) {
        log_error("%s: sender non-delivery notification: %s", e->id, err);
        return -1;
    }
    if (f.stored) {
        log_info("%s: sender non-delivery notification %s: stored before", e->id, msgid);
        return 0;
    }
    log_queue_id(nqid);
    rfc5322_date(now, date, sizeof date);
    rfc5322_date(e->created, arrival, sizeof arrival);
    hdrs = original_headers(q->queue_dir, e->id, &hlen);
    put(&o,
        "Return-Path: <>\r\n"
        "From: Mail Delivery System <MAILER-DAEMON@%s>\r\n"
        "To: <%s>\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        "Date: %s\r\n"
        "Message-ID: %s\r\n"
        "Auto-Submitted: auto-replied\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: multipart/report; report-type=delivery-status;\r\n"
        "\tboundary=\"%s/%s\"\r\n"
        "\r\n"
        "This is a MIME-encapsulated message.\r\n"
        "\r\n"
        "--%s/%s\r\n"
        "Content-Description: Notification\r\n"
        "Content-Type: text/plain; charset=us-ascii\r\n"
        "\r\n"
        "This is the mail system at host %s.\r\n"
        "\r\n"
        "I'm sorry to have to inform you that your message could not\r\n"
        "be delivered to one or more recipients. It's attached below.\r\n"
        "\r\n"
        "The mail system\r\n"
        "\r\n",
        domain, e->sender, date, msgid, nqid, host, nqid, host, host);
    for (size_t i = 0; i < e->nrcpts; i++)
        if (to_notify(&e->rcpts[i]))
            put(&o, "<%s>: %s\r\n\r\n", e->rcpts[i].addr,
                e->rcpts[i].why[0] ? e->rcpts[i].why : "delivery failed");
    put(&o,
        "--%s/%s\r\n"
        "Content-Description: Delivery report\r\n"
        "Content-Type: message/delivery-status\r\n"
        "\r\n"
        "Reporting-MTA: dns; %s\r\n"
        "X-Mailcore-Queue-ID: %s\r\n"
        "X-Mailcore-Sender: rfc822; %s\r\n"
        "Arrival-Date: %s\r\n",
        nqid, host, host, e->id, e->sender, arrival);
    for (size_t i = 0; i < e->nrcpts; i++) {
        const struct queue_rcpt *rc = &e->rcpts[i];
        if (!to_notify(rc))
            continue;
        put(&o,
            "\r\nFinal-Recipient: rfc822; %s\r\n"
            "Original-Recipient: rfc822; %s\r\n"
            "Action: failed\r\n"
            "Status: %s\r\n",
            rc->addr, rc->addr, rc->status[0] ? rc->status : "5.0.0");
        if (q->cfg.host[0])
            put(&o, "Remote-MTA: dns; %s\r\n", q->cfg.host);
        if (rc->diag[0])
            put(&o, "Diagnostic-Code: smtp; %s\r\n", rc->diag);
        else if (rc->why[0])
            put(&o, "Diagnostic-Code: X-mailcore; %s\r\n", rc->why);
    }
    put(&o,
        "\r\n--%s/%s\r\n"
        "Content-Description: Undelivered Message Headers\r\n"
        "Content-Type: text/rfc822-headers\r\n"
        "\r\n"
        "%s"
        "\r\n--%s/%s--\r\n",
        nqid, host, hdrs ? hdrs : "", nqid, host);
    free(hdrs);
    if (o.failed) {
        free(o.buf);
        log_error("%s: sender non-delivery notification: out of memory", e->id);
        return -1;
    }
    m = store_msg_new(q->svc->store, err, sizeof err);
    if (m)
        store_msg_note_sent(m, e->user, msgid, f.id);
    if (m == NULL || store_msg_write(m, o.buf, o.len) < 0 || store_msg_add_rcpt(m, f.id, 0) < 0 ||
        (store_msg_set_internaldate(m, (time_t)now),
         store_commit(q->svc->store, &m, 1, err, sizeof err) < 0)) {
        if (err[0] == '\0')
            snprintf(err, sizeof err, "%s", strerror(errno));
        log_error("%s: sender non-delivery notification: %s", e->id, err);
        if (m)
            store_msg_free(m);
        free(o.buf);
        return -1;
    }
    store_msg_free(m);
    free(o.buf);
    log_info("%s: sender non-delivery notification: %s", e->id, nqid);
    return 0;
}
