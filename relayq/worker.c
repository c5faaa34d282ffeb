/*
 * worker.c - a delivery worker: a process forked by relayq with a batch of
 * queue entries.  It opens one SMTP session with the relay (smtp_client),
 * sends the entries one after another, and after each message rewrites
 * that entry's envelope (queue_env_write: atomic and durable) with every
 * recipient's new state -- sent right after the relay's 250 to the final
 * dot, bounced on a 5xx, else deferred with exponential back-off.  An entry
 * whose recipients were all sent is removed here instead, durably
 * (queue_delete), which records the same in one fsync; one with bounced
 * recipients is left to the parent, which owns the database and makes the
 * DSN.  The worker holds each entry's queue_lock()
 * while it works on it, and exits when the batch is done.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mailcore/log.h"
#include "relayq.h"

long long relayq_backoff(unsigned attempts)
{
    long long base = RELAYQ_RETRY_MIN;
    unsigned r = 0;

    for (unsigned i = 1; i < attempts && base < RELAYQ_RETRY_MAX; i++)
        base *= 2;
    if (base > RELAYQ_RETRY_MAX)
        base = RELAYQ_RETRY_MAX;
    if (getrandom(&r, sizeof r, GRND_NONBLOCK) != sizeof r)
        r = (unsigned)rand();
    /* +-20% jitter, so that deferred entries do not come back in step. */
    return base * 80 / 100 + (long long)(r % (unsigned)(base * 40 / 100 + 1));
}

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

struct session {
    struct relayq *q;
    struct smtp_client *c;
    struct smtp_client_error open_err;
    char open_peer[300];  /* "host[addr]:port" reached before it failed, or "" */
    int open_failed;
    double conn_time; /* seconds spent setting up the session */
};

/* A live session, or NULL with s->open_err (and s->open_peer when the
 * relay was reached: a TLS or AUTH failure is logged with relay=host[addr]:port,
 * as Postfix does once connected). */
static struct smtp_client *session(struct session *s)
{
    double t0;

    if (s->c && smtp_client_alive(s->c))
        return s->c;
    if (s->open_failed)
        return NULL;
    smtp_client_close(s->c);
    t0 = now_s();
    s->c = smtp_client_probe(&s->q->cfg, &s->open_err);
    s->conn_time = now_s() - t0;
    if (s->c != NULL && !smtp_client_alive(s->c)) {
        snprintf(s->open_peer, sizeof s->open_peer, "%s", smtp_client_peer(s->c));
        smtp_client_close(s->c);
        s->c = NULL;
    }
    if (s->c == NULL)
        s->open_failed = 1;
    return s->c;
}

/* Send one entry (locked by the caller) and write back its new state. */
static void deliver(struct session *s, const char *id, int fd)
{
    struct relayq *q = s->q;
    struct queue_env e;
    struct smtp_client_error *rerr = NULL, err;
    const char **rcpts = NULL;
    size_t *idx = NULL, n = 0, bounced = 0;
    char errbuf[1024], relay[300];
    double t0 = now_s(), tconn = 0, tsend;
    struct stat st;
    struct smtp_client *c;

    if (queue_env_read(q->queue_dir, id, &e, errbuf, sizeof errbuf) != 0)
        return;
    if (e.hold || queue_env_pending(&e) == 0 || fstat(fd, &st) < 0)
        goto out;
    rcpts = calloc(e.nrcpts, sizeof *rcpts);
    idx = calloc(e.nrcpts, sizeof *idx);
    rerr = calloc(e.nrcpts, sizeof *rerr);
    if (rcpts == NULL || idx == NULL || rerr == NULL) {
        log_error("%s: out of memory", id);
        goto out;
    }
    for (size_t i = 0; i < e.nrcpts; i++)
        if (e.rcpts[i].state == QUEUE_PENDING) {
            idx[n] = i;
            rcpts[n++] = e.rcpts[i].addr;
        }
    if (s->c == NULL || !smtp_client_alive(s->c))
        tconn = -1;
    c = session(s);
    if (tconn < 0)
        tconn = s->conn_time;
    if (c == NULL) {
        err = s->open_err;
        for (size_t i = 0; i < n; i++)
            rerr[i] = s->open_err;
        snprintf(relay, sizeof relay, "%s", s->open_peer[0] ? s->open_peer : "none");
    } else {
        smtp_client_send(c, e.sender, rcpts, n, fd, (size_t)st.st_size, rerr, &err);
        snprintf(relay, sizeof relay, "%s", smtp_client_peer(c));
    }
    tsend = now_s() - t0 - tconn;
    if (tsend < 0)
        tsend = 0;
    for (size_t k = 0; k < n; k++) {
        struct queue_rcpt *r = &e.rcpts[idx[k]];
        const struct smtp_client_error *x = &rerr[k];
        double delay = now_s() - (double)e.created;
        double before = t0 - (double)e.created;
        const char *what;

        if (before < 0)
            before = 0;
        snprintf(r->status, sizeof r->status, "%s",
                 x->enhanced[0]                  ? x->enhanced
                 : x->status == SMTP_CLIENT_PERM ? "5.0.0"
                                                 : "4.0.0");
        queue_text_set(r->diag, sizeof r->diag, x->reply);
        r->attempts++;
        if (x->status == SMTP_CLIENT_OK) {
            r->state = QUEUE_SENT;
            r->why[0] = '\0';
            what = "sent";
        } else {
            queue_text_set(r->why, sizeof r->why, x->text);
            queue_text_set(e.reason, sizeof e.reason, x->text);
            if (x->status == SMTP_CLIENT_PERM) {
                r->state = QUEUE_BOUNCED;
                bounced++;
                what = "bounced";
            } else if ((long long)time(NULL) >= e.created + (long long)q->lifetime) {
                r->state = QUEUE_BOUNCED;
                snprintf(r->status, sizeof r->status, "4.4.7");
                bounced++;
                what = "bounced";
            } else {
                r->next = (long long)time(NULL) + relayq_backoff(r->attempts);
                what = "deferred";
            }
        }
        log_info("%s: to=<%s>, relay=%s, delay=%.1f, delays=%.1f/0/%.1f/%.1f, dsn=%s, "
                 "status=%s (%s)",
                 id, r->addr, relay, delay, before, tconn, tsend, r->status, what,
                 x->status == SMTP_CLIENT_OK ? x->reply : x->text);
    }
    for (size_t i = 0; i < e.nrcpts; i++)
        bounced += e.rcpts[i].state == QUEUE_BOUNCED;
    if (queue_env_pending(&e) == 0 && bounced == 0 && n > 0) {
        /* Every recipient sent: the durable removal of the envelope is the
         * state update (one fsync of env/); were it written first, a crash
         * before the removal would be no safer and cost two more. */
        if (queue_delete(q->queue_dir, id, errbuf, sizeof errbuf) < 0)
            log_error("%s: %s", id, errbuf);
        else
            log_info("%s: removed", id);
    } else if (queue_env_write(q->queue_dir, &e, errbuf, sizeof errbuf) < 0) {
        log_error("%s: %s", id, errbuf);
    }
out:
    free(rcpts);
    free(idx);
    free(rerr);
    queue_env_free(&e);
}

void relayq_worker_run(struct relayq *q, struct relayq_worker *w)
{
    struct session s = {.q = q};
    sigset_t all;

    /* The parent's loop blocks signals for its signalfd: undo that. */
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    signal(SIGCHLD, SIG_DFL);
    if (q->sock >= 0)
        close(q->sock);
    for (size_t i = 0; i < w->n; i++) {
        int lock = queue_lock(q->queue_dir, w->ids[i], 0);
        if (lock < 0)
            continue; /* another process has it, or it is gone */
        deliver(&s, w->ids[i], lock);
        close(lock);
    }
    smtp_client_close(s.c);
    /* _exit: the parent's LMDB handle and loop are not ours to tear down. */
    _exit(0);
}
