/*
 * sched.c - relayq's parent: scans env/, decides what is due, forks the
 * delivery workers and reaps them, and finishes entries that need no
 * network: expiry past max_queue_lifetime, "no relay configured", the DSN
 * for bounced recipients (as soon as they bounce, once: bounce.c) and the
 * removal of finished entries.
 *
 * An entry is owned by at most one worker: the parent never hands out an
 * entry a live worker of its own holds, and every process that changes an
 * entry holds its queue_lock() (which also covers the workers of a relayq
 * that was killed, and mailctl queue).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mailcore/ev.h"
#include "mailcore/log.h"
#include "mailcore/service.h"
#include "relayq.h"

static uint64_t timer_at; /* monotonic ms the scan timer fires at */

static int owned(const struct relayq *q, const char *id, long long now)
{
    for (size_t w = 0; w < RELAYQ_WORKERS; w++) {
        const struct relayq_worker *wk = &q->workers[w];
        if (wk->pid == 0 && wk->busy_until <= now)
            continue;
        for (size_t i = 0; i < wk->n; i++)
            if (strcmp(wk->ids[i], id) == 0)
                return 1;
    }
    return 0;
}

static void on_timer(struct ev_loop *ev, void *arg)
{
    struct relayq *q = arg;

    (void)ev;
    q->timer = NULL;
    relayq_scan(q);
}

void relayq_scan_soon(struct relayq *q, unsigned ms)
{
    uint64_t at = ev_clock_ms() + ms;

    if (q->stopping)
        return;
    if (q->timer) {
        if (timer_at <= at)
            return;
        ev_timer_cancel(q->svc->ev, q->timer);
    }
    q->timer = ev_timer_add(q->svc->ev, ms, on_timer, q);
    if (q->timer == NULL)
        log_fatal("cannot add a timer: %s", strerror(errno));
    timer_at = at;
}

/* Bounced recipients whose DSN is not stored yet. */
static size_t unnotified(const struct queue_env *e)
{
    size_t n = 0;

    for (size_t i = 0; i < e->nrcpts; i++)
        n += e->rcpts[i].state == QUEUE_BOUNCED && !e->rcpts[i].notified;
    return n;
}

/* The DSN for e's newly bounced recipients, recorded in the envelope
 * unless the entry is finished (its removal records it).  0 or -1. */
static int notify(struct relayq *q, struct queue_env *e)
{
    char err[1024];

    if (unnotified(e) == 0)
        return 0;
    if (relayq_bounce(q, e) < 0)
        return -1;
    for (size_t i = 0; i < e->nrcpts; i++)
        e->rcpts[i].notified |= e->rcpts[i].state == QUEUE_BOUNCED;
    if (queue_env_pending(e) > 0 && queue_env_write(q->queue_dir, e, err, sizeof err) < 0) {
        log_error("%s: %s", e->id, err); /* bounce.c finds the DSN stored next time */
        return -1;
    }
    return 0;
}

/* The DSN for recipients that bounced (at once, not when the others are
 * done), then the removal of an entry without pending recipients. */
static void finish(struct relayq *q, const char *id)
{
    struct queue_env e;
    char err[1024];
    int lock = queue_lock(q->queue_dir, id, 0);

    if (lock < 0)
        return; /* busy (mailctl) or gone: later */
    if (queue_env_read(q->queue_dir, id, &e, err, sizeof err) != 0) {
        close(lock);
        return;
    }
    if (notify(q, &e) == 0 && queue_env_pending(&e) == 0) {
        if (queue_delete(q->queue_dir, id, err, sizeof err) < 0)
            log_error("%s: %s", id, err);
        else
            log_info("%s: removed", id);
    }
    queue_env_free(&e);
    close(lock);
}

/* Pending recipients of an entry older than max_queue_lifetime bounce. */
static void expire(struct relayq *q, const char *id, long long now)
{
    struct queue_env e;
    char err[1024];
    int lock = queue_lock(q->queue_dir, id, 0);

    if (lock < 0)
        return;
    if (queue_env_read(q->queue_dir, id, &e, err, sizeof err) != 0) {
        close(lock);
        return;
    }
    for (size_t i = 0; i < e.nrcpts; i++) {
        struct queue_rcpt *r = &e.rcpts[i];
        char why[QUEUE_TEXT_MAX];
        if (r->state != QUEUE_PENDING)
            continue;
        r->state = QUEUE_BOUNCED;
        if (r->status[0] == '\0' || r->status[0] == '4')
            snprintf(r->status, sizeof r->status, "4.4.7");
        snprintf(why, sizeof why, "message expired after %llds in the queue%s%s", now - e.created,
                 r->why[0] || e.reason[0] ? "; last failure: " : "", r->why[0] ? r->why : e.reason);
        queue_text_set(r->why, sizeof r->why, why);
        log_info("%s: to=<%s>, relay=none, delay=%lld, delays=%lld/0/0/0, dsn=%s, "
                 "status=bounced (%s)",
                 id, r->addr, now - e.created, now - e.created, r->status, r->why);
    }
    if (queue_env_write(q->queue_dir, &e, err, sizeof err) < 0)
        log_error("%s: %s", id, err);
    queue_env_free(&e);
    close(lock);
    finish(q, id);
}

/* mailserver_host is empty: say so in the entry, once. */
static void no_relay(struct relayq *q, const char *id, long long now)
{
    struct queue_env e;
    char err[1024];
    int lock = queue_lock(q->queue_dir, id, 0);

    if (lock < 0)
        return;
    if (queue_env_read(q->queue_dir, id, &e, err, sizeof err) == 0) {
        if (strcmp(e.reason, RELAYQ_NO_RELAY) != 0) {
            snprintf(e.reason, sizeof e.reason, "%s", RELAYQ_NO_RELAY);
            for (size_t i = 0; i < e.nrcpts; i++)
                if (e.rcpts[i].state == QUEUE_PENDING) {
                    snprintf(e.rcpts[i].why, sizeof e.rcpts[i].why, "%s", RELAYQ_NO_RELAY);
                    log_info("%s: to=<%s>, relay=none, delay=%lld, delays=%lld/0/0/0, "
                             "dsn=4.3.5, status=deferred (%s)",
                             id, e.rcpts[i].addr, now - e.created, now - e.created,
                             RELAYQ_NO_RELAY);
                }
            if (queue_env_write(q->queue_dir, &e, err, sizeof err) < 0)
                log_error("%s: %s", id, err);
        }
        queue_env_free(&e);
    }
    close(lock);
}

struct scan {
    struct relayq *q;
    long long now;
    long long next; /* earliest future event, unix time */
    char (*due)[QUEUE_ID_MAX + 1];
    size_t ndue, cap;
    int more; /* due entries left for a later round */
};

static void at(struct scan *s, long long when)
{
    if (when < s->next)
        s->next = when;
}

static int scan_one(const char *id, void *arg)
{
    struct scan *s = arg;
    struct relayq *q = s->q;
    struct queue_env e;
    char err[1024];
    long long expires;
    int due = q->flush;

    if (owned(q, id, s->now))
        return 0;
    if (queue_env_read(q->queue_dir, id, &e, err, sizeof err) != 0)
        return 0; /* gone meanwhile, or being written: next scan */
    expires = e.created + (long long)q->lifetime;
    if (queue_env_pending(&e) == 0 || unnotified(&e) > 0) {
        finish(q, id); /* changes no pending recipient: e stays right for them */
        if (queue_env_pending(&e) == 0) {
            queue_env_free(&e);
            return 0;
        }
    }
    if (e.hold) {
        queue_env_free(&e);
        return 0;
    }
    if (s->now >= expires) {
        queue_env_free(&e);
        expire(q, id, s->now);
        return 0;
    }
    at(s, expires);
    /* submitd publishes an entry only after its commit, and wakes us (at
     * most every 100 ms).  A scan that no wake-up started leaves brand-new
     * entries to that wake-up for a moment, so that they go out together in
     * one worker's batch. */
    if (!q->woken && !q->flush && s->now - e.created < RELAYQ_YOUNG) {
        int fresh = 1;
        for (size_t i = 0; i < e.nrcpts; i++)
            fresh &= e.rcpts[i].attempts == 0;
        if (fresh) {
            at(s, e.created + RELAYQ_YOUNG);
            queue_env_free(&e);
            return 0;
        }
    }
    if (q->cfg.host[0] == '\0') {
        queue_env_free(&e);
        no_relay(q, id, s->now);
        return 0;
    }
    for (size_t i = 0; i < e.nrcpts; i++)
        if (e.rcpts[i].state == QUEUE_PENDING) {
            if (e.rcpts[i].next <= s->now)
                due = 1;
            else
                at(s, e.rcpts[i].next);
        }
    queue_env_free(&e);
    if (!due)
        return 0;
    if (s->ndue == s->cap) {
        s->more = 1;
        return 0;
    }
    snprintf(s->due[s->ndue++], QUEUE_ID_MAX + 1, "%s", id);
    return 0;
}

static void spawn(struct relayq *q, struct relayq_worker *w)
{
    pid_t pid = fork();

    if (pid < 0) {
        log_warn("fork: %s", strerror(errno));
        w->n = 0;
        return;
    }
    if (pid == 0)
        relayq_worker_run(q, w);
    w->pid = pid;
    w->busy_until = 0;
    service_session_open(q->svc);
    log_debug("worker pid %ld: %zu entries", (long)pid, w->n);
}

void relayq_scan(struct relayq *q)
{
    char due[RELAYQ_WORKERS * RELAYQ_BATCH][QUEUE_ID_MAX + 1];
    struct scan s = {.q = q, .now = time(NULL), .due = due};
    size_t free_slots = 0, k = 0;
    char err[1024];
    long long wait;

    if (q->stopping)
        return;
    relayq_bind(q);
    s.next = s.now + RELAYQ_SCAN_SECONDS;
    for (size_t w = 0; w < RELAYQ_WORKERS; w++)
        if (q->workers[w].pid == 0 && q->workers[w].busy_until <= s.now)
            free_slots++;
        else if (q->workers[w].pid == 0)
            at(&s, q->workers[w].busy_until);
    s.cap = free_slots * RELAYQ_BATCH;
    if (queue_foreach(q->queue_dir, scan_one, &s, err, sizeof err) < 0)
        log_error("%s", err);
    if (!s.more)
        q->flush = 0; /* else the rest stays due for the next round */
    q->woken = 0;
    for (size_t w = 0; w < RELAYQ_WORKERS && k < s.ndue; w++) {
        struct relayq_worker *wk = &q->workers[w];
        if (wk->pid != 0 || wk->busy_until > s.now)
            continue;
        wk->n = 0;
        /* Spread the due entries over the free workers. */
        size_t share = (s.ndue - k + free_slots - 1) / free_slots;
        free_slots--;
        for (; wk->n < share && wk->n < RELAYQ_BATCH && k < s.ndue; k++)
            memcpy(wk->ids[wk->n++], due[k], QUEUE_ID_MAX + 1);
        spawn(q, wk);
    }
    /* With due entries left over, the next reap scans again. */
    wait = s.next - s.now;
    if (wait < 1)
        wait = 1;
    relayq_scan_soon(q, (unsigned)wait * 1000);
}

void relayq_reap(struct relayq *q)
{
    int status;
    pid_t pid;

    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        for (size_t w = 0; w < RELAYQ_WORKERS; w++) {
            struct relayq_worker *wk = &q->workers[w];
            if (wk->pid != pid)
                continue;
            wk->pid = 0;
            if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
                wk->n = 0;
            } else {
                /* Keep its entries away from new workers for a while, so a
                 * message that crashes workers does not loop. */
                wk->busy_until = (long long)time(NULL) + 30;
                if (WIFSIGNALED(status))
                    log_warn("delivery worker pid %ld killed by signal %d", (long)pid,
                             WTERMSIG(status));
                else
                    log_warn("delivery worker pid %ld exit status %d", (long)pid,
                             WEXITSTATUS(status));
            }
            service_session_close(q->svc);
        }
    }
    relayq_scan_soon(q, 0);
}
