/*
 * ev - the event loop: file descriptors (epoll), timers and signals
 * (signalfd), plus end-of-turn hooks.
 *
 * One loop per process, single-threaded.  Callbacks run from ev_run(); any
 * callback may add or remove watchers, including its own.
 *
 *	struct ev_loop *ev = ev_new();
 *	ev_fd_add(ev, fd, EV_READ, on_read, arg);
 *	struct ev_timer *t = ev_timer_add(ev, 5000, on_timeout, arg);
 *	ev_signal_add(ev, SIGTERM, on_term, arg);
 *	ev_run(ev);            -- until ev_stop()
 *
 * End-of-turn hooks (ev_turn_hook) run once after all the callbacks of one
 * epoll_wait() round: this is where group commit gathers the deliveries
 * that finished in the same turn.
 */
#ifndef MAILCORE_EV_H
#define MAILCORE_EV_H

#include <stdint.h>

enum { EV_READ = 1, EV_WRITE = 2, EV_EXCLUSIVE = 4 /* EPOLLEXCLUSIVE, for shared listeners */ };

struct ev_loop;
struct ev_timer;

typedef void ev_fd_cb(struct ev_loop *ev, int fd, int events, void *arg);
typedef void ev_timer_cb(struct ev_loop *ev, void *arg);
typedef void ev_signal_cb(struct ev_loop *ev, int signo, void *arg);
typedef void ev_hook_cb(struct ev_loop *ev, void *arg);

struct ev_loop *ev_new(void);
void ev_free(struct ev_loop *ev);

/* Watch fd; events is EV_READ|EV_WRITE (|EV_EXCLUSIVE).  0 or -1 (errno). */
int ev_fd_add(struct ev_loop *ev, int fd, int events, ev_fd_cb *cb, void *arg);
int ev_fd_mod(struct ev_loop *ev, int fd, int events);
void ev_fd_del(struct ev_loop *ev, int fd);

/* One-shot timer in ms from now; ev_timer_cancel() before it fires frees it,
 * after it fired it is already freed (do not cancel). */
struct ev_timer *ev_timer_add(struct ev_loop *ev, uint64_t ms, ev_timer_cb *cb, void *arg);
void ev_timer_cancel(struct ev_loop *ev, struct ev_timer *t);

/* Block signo and deliver it through the loop.  0 or -1. */
int ev_signal_add(struct ev_loop *ev, int signo, ev_signal_cb *cb, void *arg);

/* Run cb after the current (or next) turn; once per registration. */
int ev_turn_hook(struct ev_loop *ev, ev_hook_cb *cb, void *arg);

int ev_run(struct ev_loop *ev);   /* 0 after ev_stop(), -1 on a loop error */
void ev_stop(struct ev_loop *ev);

/* Monotonic milliseconds, read once per turn. */
uint64_t ev_now_ms(struct ev_loop *ev);
uint64_t ev_clock_ms(void);       /* monotonic, read now */

#endif
