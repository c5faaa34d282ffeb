/*
 * relayq.h - what relayq's files share: the daemon's state (the parent's
 * view of the queue and of its delivery workers) and the entry points of
 * the scheduler (sched.c), the delivery worker (worker.c) and the bounce
 * maker (bounce.c).
 */
#ifndef RELAYQ_H
#define RELAYQ_H

#include <stddef.h>
#include <sys/types.h>

#include "mailcore/queue.h"
#include "mailcore/smtp_client.h"

#define RELAYQ_WORKERS 4       /* delivery processes at once */
#define RELAYQ_BATCH 20        /* queue entries per worker (one SMTP session) */
#define RELAYQ_SCAN_SECONDS 60 /* periodic scan of env/ */
#define RELAYQ_RETRY_MIN 60    /* first back-off, seconds; doubles */
#define RELAYQ_RETRY_MAX 3600
#define RELAYQ_YOUNG 5 /* seconds an unannounced new entry is left alone */
#define RELAYQ_SWEEP_AGE 600 /* crash debris older than this goes at start-up */
#define RELAYQ_NO_RELAY "no relay configured: set mailserver_host"

struct service;
struct ev_timer;

struct relayq_worker {
    pid_t pid;            /* 0: the slot is free (unless busy_until) */
    long long busy_until; /* after a crash: keep its entries until then */
    size_t n;
    char ids[RELAYQ_BATCH][QUEUE_ID_MAX + 1];
};

struct relayq {
    struct service *svc;
    const char *queue_dir;
    char sock_path[600];
    int sock;               /* wake-ups, or -1 */
    struct ev_timer *timer; /* the next scan */
    int flush;              /* next scan: every deferred entry is due */
    int woken;              /* next scan was asked for by a datagram */
    int stopping;
    unsigned long long lifetime; /* max_queue_lifetime, seconds */
    struct smtp_client_cfg cfg;  /* the relay, from the configuration */
    struct relayq_worker workers[RELAYQ_WORKERS];
};

/* sched.c (the parent, never blocking on the network) */
void relayq_scan(struct relayq *q);
void relayq_scan_soon(struct relayq *q, unsigned ms);
void relayq_reap(struct relayq *q);
void relayq_bind(struct relayq *q);

/* worker.c (a forked delivery process; never returns) */
void relayq_worker_run(struct relayq *q, struct relayq_worker *w) __attribute__((noreturn));
long long relayq_backoff(unsigned attempts);

/* bounce.c: the DSN for e's bounced recipients not yet notified into its
 * user's INBOX; the caller then marks them notified.  0 (also when nothing
 * is to be sent: null sender, user gone -- logged; and when this DSN was
 * stored before, found by its Message-ID), -1 when it could not be stored
 * (try again later). */
int relayq_bounce(struct relayq *q, const struct queue_env *e);

#endif
