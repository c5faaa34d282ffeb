/*
 * smtp_deliver.c - from the end of DATA/BDAT to "250": trace headers, the
 * content checks, and the group commit.
 *
 * Every message gets Return-Path: and Received: ahead of its content in
 * the store's temp file.  When the content is complete the session waits
 * (input paused) in the server's batch; at the end of the loop turn one
 * store_commit() makes every message of the batch durable, each in the
 * INBOX of each of its recipients, and only then do the sessions answer
 * 250 (or 451 when the commit failed) and read on.  Submission's queue
 * entries (staged by smtp_submit.c) join that commit: the store's one
 * syncfs() covers their files too (commit_batch).
 *
 * Storage quota (quota.h): recipients over quota were refused at RCPT.
 * At the commit a message whose recipients are all local is refused with
 * 452 4.2.2 when it fits in no recipient's quota; when it fits for one of
 * them (or some recipients are remote, or queued already) every recipient
 * accepted at RCPT gets it, even if that takes one over its limit by this
 * message: one 250 covers them all, and acknowledged mail is never lost.
 * The next message for that user is refused at RCPT.  submitd's Sent copy
 * is simply left out when it does not fit: the mail is still sent.
 *
 * Log lines follow Postfix's, so that pflogsumm counts them:
 *	QID: from=<a@x>, size=N, nrcpt=M (queue active)
 *	QID: to=<b@y>, relay=local, delay=0.01, delays=0.01/0/0/0, dsn=2.0.0, status=sent (...)
 *	QID: removed
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mailcore/conn.h"
#include "mailcore/conf.h"
#include "mailcore/ev.h"
#include "mailcore/notify.h"
#include "mailcore/queue.h"
#include "mailcore/service.h"
#include "mailcore/store.h"
#include "smtp_internal.h"

#define HEADER_MAX 2048

static size_t rfc5322_date(char *buf, size_t len, time_t when)
{
    struct tm tm;

    localtime_r(&when, &tm);
    return strftime(buf, len, "%a, %d %b %Y %H:%M:%S %z (%Z)", &tm);
}

int smtp_received(struct smtp_session *s, int with_for, char *buf, size_t len)
{
    char date[64], tls[160] = "", tlsline[200] = "", forline[SMTP_PATH_MAX + 16] = "";
    int n;

    rfc5322_date(date, sizeof date, time(NULL));
    if (conn_is_tls(s->conn) && conn_tls_summary(s->conn, tls, sizeof tls)[0])
        snprintf(tlsline, sizeof tlsline, "\t(using %s)\r\n", tls);
    if (with_for && s->nrcpts == 1)
        snprintf(forline, sizeof forline, "\r\n\tfor <%s>", s->rcpts[0].addr);
    n = snprintf(buf, len,
                 "Received: from %s (unknown [%s])\r\n"
                 "%s"
                 "\tby %s (mailcore) with %s id %s%s;\r\n"
                 "\t%s\r\n",
                 s->helo[0] ? s->helo : "unknown", s->addr, tlsline, s->srv->hostname,
                 smtp_proto(s), s->qid, forline, date);
    return n < 0 || (size_t)n >= len ? -1 : n;
}

static int trace_headers(struct smtp_session *s, char *buf, size_t len)
{
    int n = snprintf(buf, len, "Return-Path: <%s>\r\n", s->from.addr), r;

    if (n < 0 || (size_t)n >= len || (r = smtp_received(s, 1, buf + n, len - (size_t)n)) < 0)
        return -1;
    return n + r;
}

int smtp_deliver_begin(struct smtp_session *s)
{
    char err[256], hdr[HEADER_MAX];
    int n;

    s->msg = store_msg_new(s->srv->svc->store, err, sizeof err);
    if (s->msg == NULL) {
        log_error("%s: cannot create message file: %s", s->qid, err);
        return -1;
    }
    s->size = 0;
    s->toolarge = 0;
    if (s->srv->policy.submission)
        return 0;                       /* smtp_submit_finish() writes the headers */
    n = trace_headers(s, hdr, sizeof hdr);
    if (n < 0 || (size_t)n >= sizeof hdr || store_msg_write(s->msg, hdr, (size_t)n) < 0) {
        log_error("%s: cannot write message file", s->qid);
        store_msg_free(s->msg);
        s->msg = NULL;
        return -1;
    }
    s->size = 0;
    s->toolarge = 0;
    return 0;
}

/* Content bytes: counted always, stored while within the size limit. */
int smtp_deliver_write(struct smtp_session *s, const char *buf, size_t len)
{
    s->size += len;
    if (s->size > s->srv->size_limit)
        s->toolarge = 1;
    if (s->toolarge || s->msg == NULL)
        return 0;
    if (store_msg_write(s->msg, buf, len) < 0) {
        log_error("%s: write to message file failed", s->qid);
        store_msg_free(s->msg);
        s->msg = NULL;
        return -1;
    }
    return 0;
}

/* The reply's text with up to two string arguments, for the log. */
static void log_refusal(struct smtp_session *s, enum smtp_reply_id id, const char *a1,
                        const char *a2)
{
    const struct smtp_reply *r = smtp_reply_get(id);
    char text[512];

    snprintf(text, sizeof text, r->text, a1, a2);
    log_info("%s: reject: END-OF-MESSAGE from unknown[%s]: %d %s %s; from=<%s> proto=%s "
             "helo=<%s>%s%s", s->qid, s->addr, r->code, r->status, text, s->from.addr,
             smtp_proto(s), s->helo, s->user[0] ? " sasl_username=" : "", s->user);
}

static void on_commit(struct ev_loop *ev, void *arg);
static void log_delivered(struct smtp_session *s, uint64_t now);

/* Does the message go to any mailbox here (Sent, local recipients)? */
static int has_local(const struct smtp_session *s)
{
    if (s->sent_mailbox)
        return 1;
    for (size_t i = 0; i < s->nrcpts; i++)
        if (s->rcpts[i].mailbox)
            return 1;
    return 0;
}

/* Make the staged queue entries of a batch durable entries (the store's
 * syncfs covered their files when synced_dir is data_directory); -1 (err)
 * when it failed for all of them. */
static int publish_queued(struct smtp_server *srv, struct smtp_session **batch, size_t n,
                          const char *synced_dir, char *err, size_t errlen)
{
    const char **qids = calloc(n ? n : 1, sizeof *qids);
    size_t nq = 0;
    int r;

    if (qids == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        if (batch[i]->queued)
            qids[nq++] = batch[i]->qid;
    r = queue_publish(conf_str(srv->svc->conf, "queue_directory"), synced_dir, qids, nq, err,
                      errlen);
    free(qids);
    if (r == 0)
        for (size_t i = 0; i < n; i++)
            batch[i]->queued = 0;       /* published: no longer ours to remove */
    return r;
}

static void queue_only(struct smtp_session *s)
{
    char err[512];

    if (publish_queued(s->srv, &s, 1, NULL, err, sizeof err) != 0) {
        log_error("%s: queue: %s", s->qid, err);
        smtp_reply(s, SMTP_R_WRITE_ERROR);
        smtp_session_reset(s);
        return;
    }
    log_delivered(s, ev_now_ms(s->srv->svc->ev));
    smtp_submit_wake_relayq(s->srv);
    s->errors = 0;
    smtp_reply(s, SMTP_R_QUEUED, s->qid);
    smtp_session_reset(s);
}

void smtp_deliver_finish(struct smtp_session *s)
{
    struct smtp_server *srv = s->srv;
    unsigned flags = s->bdat_active ? s->content.flags : s->data.flags;
    enum smtp_reply_id refuse = SMTP_R_NONE;

    if (flags & (SMTP_BARE_LF | SMTP_BARE_CR))
        refuse = SMTP_R_BARE_NEWLINE;
    else if (flags & SMTP_NUL)
        refuse = SMTP_R_NUL_IN_DATA;
    else if (s->toolarge)
        refuse = SMTP_R_SIZE_EXCEEDED;
    else if (s->msg == NULL)
        refuse = SMTP_R_WRITE_ERROR;
    if (refuse != SMTP_R_NONE) {
        log_refusal(s, refuse, "", "");
        smtp_reply(s, refuse);
        smtp_session_reset(s);
        return;
    }
    if (srv->policy.submission) {
        const char *what;
        refuse = smtp_submit_finish(s, &what);
        if (refuse != SMTP_R_NONE) {
            log_refusal(s, refuse, what, s->user);
            smtp_reply(s, refuse, what, s->user);
            smtp_session_reset(s);
            return;
        }
        if (!has_local(s)) {
            /* Remote recipients only and no Sent folder: nothing for the
             * store, the queue entry alone is made durable. */
            queue_only(s);
            return;
        }
    }
    if (srv->nbatch == srv->capbatch) {
        size_t n = srv->capbatch ? srv->capbatch * 2 : 16;
        struct smtp_session **b = realloc(srv->batch, n * sizeof *b);
        if (b == NULL) {
            smtp_reply(s, SMTP_R_WRITE_ERROR);
            smtp_session_reset(s);
            return;
        }
        srv->batch = b;
        srv->capbatch = n;
    }
    srv->batch[srv->nbatch++] = s;
    s->state = S_COMMIT;
    conn_pause(s->conn);
    if (!srv->commit_armed) {
        srv->commit_armed = 1;
        ev_turn_hook(srv->svc->ev, on_commit, srv);
    }
}

static void log_delivered(struct smtp_session *s, uint64_t now)
{
    double total = (double)(now - s->mail_ms) / 1000.0;

    log_info("%s: from=<%s>, size=%llu, nrcpt=%zu (queue active)", s->qid, s->from.addr,
             (unsigned long long)store_msg_size(s->msg), s->nrcpts);
    for (size_t i = 0; i < s->nrcpts; i++) {
        if (s->rcpts[i].mailbox == 0)
            continue;
        if (store_msg_uid_in(s->msg, s->rcpts[i].mailbox) == 0)
            /* The user was deleted between RCPT and the commit. */
            log_info("%s: to=<%s>, relay=local, delay=%.2g, dsn=5.1.1, status=discarded "
                     "(user %s no longer exists)", s->qid, s->rcpts[i].addr, total,
                     s->rcpts[i].user);
        else
            log_info("%s: to=<%s>, relay=local, delay=%.2g, delays=%.2g/0/0/0, dsn=2.0.0, "
                     "status=sent (delivered to %s's INBOX)", s->qid, s->rcpts[i].addr, total,
                     total, s->rcpts[i].user);
    }
    if (s->sent_mailbox && store_msg_overquota_in(s->msg, s->sent_mailbox))
        log_warn("%s: no copy in %s's Sent: it would take the user over quota", s->qid,
                 s->user);
    else if (s->sent_mailbox)
        log_info("%s: to=<%s>, relay=local, delay=%.2g, delays=%.2g/0/0/0, dsn=2.0.0, "
                 "status=sent (copy in %s's Sent)", s->qid, s->from.addr, total, total,
                 s->user);
    log_info("%s: removed", s->qid);
}

/* Tell imapd which mailboxes got mail (each once). */
static void notify_batch(struct smtp_server *srv, struct smtp_session **batch, size_t n)
{
    uint32_t ids[256];
    size_t nids = 0;

    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j <= batch[i]->nrcpts; j++) {
            uint32_t id = j < batch[i]->nrcpts ? batch[i]->rcpts[j].mailbox
                                               : batch[i]->sent_mailbox;
            size_t k = 0;
            if (id == 0)
                continue;
            while (k < nids && ids[k] != id)
                k++;
            if (k == nids && nids < sizeof ids / sizeof ids[0])
                ids[nids++] = id;
        }
    notify_send(srv->notify, ids, nids);
}

/*
 * The store's commit, and for submission the queue entries with it: one
 * syncfs() makes the message files and the staged queue files durable,
 * LMDB commits the index, and then the envelopes go into env/ (one
 * fsync), so relayq never sees an entry whose message the index refused.
 * Publishing fails only on a disk error; the batch is then answered 451
 * although its index entries are committed: a retry duplicates copies in
 * Sent and INBOXes, but nothing is lost.
 */
static int commit_batch(struct smtp_server *srv, struct store_msg **msgs,
                        struct smtp_session **batch, size_t n, char *err, size_t errlen)
{
    if (!srv->policy.submission)
        return store_commit(srv->svc->store, msgs, n, err, errlen);
    if (store_commit_fs(srv->svc->store, msgs, n, err, errlen) != 0)
        return -1;
    return publish_queued(srv, batch, n, conf_str(srv->svc->conf, "data_directory"), err, errlen);
}

/* The group commit: every message finished in this loop turn at once. */
static void on_commit(struct ev_loop *ev, void *arg)
{
    struct smtp_server *srv = arg;
    /* Take the batch: sessions resumed below may finish new messages,
     * which start the next batch. */
    struct smtp_session **batch = srv->batch;
    size_t n = srv->nbatch;
    struct store_msg **msgs = calloc(n ? n : 1, sizeof *msgs);
    char err[512] = "out of memory";
    int r = -1;

    srv->batch = NULL;
    srv->nbatch = srv->capbatch = 0;
    srv->commit_armed = 0;
    if (msgs != NULL) {
        for (size_t i = 0; i < n; i++) {
            struct smtp_session *s = batch[i];
            msgs[i] = s->msg;
            enum store_quota q = STORE_QUOTA_KEEP;

            store_msg_set_internaldate(s->msg, time(NULL));
            for (size_t j = 0; j < s->nrcpts; j++)
                if (s->rcpts[j].mailbox == 0)
                    q = STORE_QUOTA_NONE;   /* queued for the relay already */
            for (size_t j = 0; j < s->nrcpts; j++)
                if (s->rcpts[j].mailbox)
                    store_msg_add_rcpt_quota(s->msg, s->rcpts[j].mailbox, 0, q);
            if (s->sent_mailbox)
                store_msg_add_rcpt_quota(s->msg, s->sent_mailbox, DB_FLAG_SEEN,
                                         STORE_QUOTA_SKIP);
        }
        r = commit_batch(srv, msgs, batch, n, err, sizeof err);
    }
    if (r < 0) {
        log_error("commit of %zu messages failed: %s", n, err);
    } else {
        notify_batch(srv, batch, n);
        if (srv->policy.submission)
            smtp_submit_wake_relayq(srv);
    }
    for (size_t i = 0; i < n; i++) {
        struct smtp_session *s = batch[i];
        if (r == 0 && store_msg_overquota(s->msg)) {
            log_refusal(s, SMTP_R_MAILBOX_FULL_DATA, "", "");
            if (srv->policy.submission)
                queue_remove(conf_str(srv->svc->conf, "queue_directory"), s->qid);
            smtp_reply(s, SMTP_R_MAILBOX_FULL_DATA);
        } else if (r == 0) {
            log_delivered(s, ev_now_ms(ev));
            /* As Postfix: the error limit counts errors without delivery. */
            s->errors = 0;
            smtp_reply(s, SMTP_R_QUEUED, s->qid);
        } else {
            /* Not accepted: smtp_session_reset() removes its queue entry. */
            smtp_reply(s, SMTP_R_WRITE_ERROR);
        }
        smtp_session_reset(s);
        smtp_session_resume(s);
    }
    free(batch);
    free(msgs);
}
