/*
 * ev.c - the epoll event loop: fds, a timer heap, signals via signalfd,
 * and end-of-turn hooks.  See ev.h for the interface.
 *
 * fd watchers live in an array indexed by fd (grown on demand), so lookup
 * from an epoll event is O(1) and a watcher removed during a turn is simply
 * marked gone: a stale event for it in the same epoll_wait() batch is
 * skipped by checking the generation stored in the event data.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "mailcore/ev.h"

#define EV_BATCH 128

struct ev_watch {
    ev_fd_cb *cb;
    void *arg;
    uint32_t gen;   /* bumped on every add/del, matched against the event */
    int active;
};

struct ev_timer {
    uint64_t when;
    uint64_t seq;       /* ties broken by insertion order */
    size_t slot;        /* index in the heap */
    ev_timer_cb *cb;
    void *arg;
};

struct ev_hook {
    ev_hook_cb *cb;
    void *arg;
};

struct ev_sig {
    int signo;
    ev_signal_cb *cb;
    void *arg;
};

struct ev_loop {
    int epfd;
    int running;
    uint64_t now;
    struct ev_watch *w;
    size_t nw;
    struct ev_timer **heap;
    size_t nheap, capheap;
    uint64_t timer_seq;
    struct ev_hook *hooks;
    size_t nhooks, caphooks;
    int sigfd;
    sigset_t sigmask;
    struct ev_sig sigs[16];
    size_t nsigs;
};

uint64_t ev_clock_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

struct ev_loop *ev_new(void)
{
    struct ev_loop *ev = calloc(1, sizeof *ev);

    if (ev == NULL)
        return NULL;
    ev->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (ev->epfd < 0) {
        free(ev);
        return NULL;
    }
    ev->sigfd = -1;
    sigemptyset(&ev->sigmask);
    ev->now = ev_clock_ms();
    return ev;
}

void ev_free(struct ev_loop *ev)
{
    if (ev == NULL)
        return;
    for (size_t i = 0; i < ev->nheap; i++)
        free(ev->heap[i]);
    /* The signals stay blocked: a SIGTERM that arrives while the process
     * is finishing must not kill it half-way (master exits 0 on SIGTERM). */
    if (ev->sigfd >= 0)
        close(ev->sigfd);
    close(ev->epfd);
    free(ev->heap);
    free(ev->hooks);
    free(ev->w);
    free(ev);
}

static int watch_grow(struct ev_loop *ev, int fd)
{
    size_t n = ev->nw ? ev->nw : 64;
    struct ev_watch *w;

    if ((size_t)fd < ev->nw)
        return 0;
    while (n <= (size_t)fd)
        n *= 2;
    w = realloc(ev->w, n * sizeof *w);
    if (w == NULL)
        return -1;
    memset(w + ev->nw, 0, (n - ev->nw) * sizeof *w);
    ev->w = w;
    ev->nw = n;
    return 0;
}

static uint32_t epoll_bits(int events)
{
    uint32_t e = 0;

    if (events & EV_READ)
        e |= EPOLLIN | EPOLLRDHUP;
    if (events & EV_WRITE)
        e |= EPOLLOUT;
    if (events & EV_EXCLUSIVE)
        e = (e & ~(uint32_t)EPOLLRDHUP) | EPOLLEXCLUSIVE;   /* the only flags it allows */
    return e;
}

static uint64_t event_data(int fd, uint32_t gen)
{
    return (uint64_t)(uint32_t)fd | (uint64_t)gen << 32;
}

int ev_fd_add(struct ev_loop *ev, int fd, int events, ev_fd_cb *cb, void *arg)
{
    struct epoll_event e = {0};
    struct ev_watch *w;

    if (fd < 0 || watch_grow(ev, fd) < 0)
        return -1;
    w = &ev->w[fd];
    if (w->active) {
        errno = EEXIST;
        return -1;
    }
    w->gen++;
    e.events = epoll_bits(events);
    e.data.u64 = event_data(fd, w->gen);
    if (epoll_ctl(ev->epfd, EPOLL_CTL_ADD, fd, &e) < 0)
        return -1;
    w->cb = cb;
    w->arg = arg;
    w->active = 1;
    return 0;
}

int ev_fd_mod(struct ev_loop *ev, int fd, int events)
{
    struct epoll_event e = {0};

    if (fd < 0 || (size_t)fd >= ev->nw || !ev->w[fd].active) {
        errno = ENOENT;
        return -1;
    }
    e.events = epoll_bits(events & ~EV_EXCLUSIVE);
    e.data.u64 = event_data(fd, ev->w[fd].gen);
    return epoll_ctl(ev->epfd, EPOLL_CTL_MOD, fd, &e);
}

void ev_fd_del(struct ev_loop *ev, int fd)
{
    if (fd < 0 || (size_t)fd >= ev->nw || !ev->w[fd].active)
        return;
    epoll_ctl(ev->epfd, EPOLL_CTL_DEL, fd, NULL);
    ev->w[fd].active = 0;
    ev->w[fd].gen++;
}

/* Timer heap: a binary min-heap on (when, seq). */

static int timer_less(const struct ev_timer *a, const struct ev_timer *b)
{
    return a->when < b->when || (a->when == b->when && a->seq < b->seq);
}

static void heap_set(struct ev_loop *ev, size_t i, struct ev_timer *t)
{
    ev->heap[i] = t;
    t->slot = i;
}

static void heap_up(struct ev_loop *ev, size_t i)
{
    struct ev_timer *t = ev->heap[i];

    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!timer_less(t, ev->heap[parent]))
            break;
        heap_set(ev, i, ev->heap[parent]);
        i = parent;
    }
    heap_set(ev, i, t);
}

static void heap_down(struct ev_loop *ev, size_t i)
{
    struct ev_timer *t = ev->heap[i];

    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= ev->nheap)
            break;
        if (child + 1 < ev->nheap && timer_less(ev->heap[child + 1], ev->heap[child]))
            child++;
        if (!timer_less(ev->heap[child], t))
            break;
        heap_set(ev, i, ev->heap[child]);
        i = child;
    }
    heap_set(ev, i, t);
}

static void heap_remove(struct ev_loop *ev, struct ev_timer *t)
{
    size_t i = t->slot;
    struct ev_timer *last = ev->heap[--ev->nheap];

    if (last == t)
        return;
    heap_set(ev, i, last);
    heap_up(ev, i);
    heap_down(ev, last->slot);
}

struct ev_timer *ev_timer_add(struct ev_loop *ev, uint64_t ms, ev_timer_cb *cb, void *arg)
{
    struct ev_timer *t;

    if (ev->nheap == ev->capheap) {
        size_t n = ev->capheap ? ev->capheap * 2 : 64;
        struct ev_timer **h = realloc(ev->heap, n * sizeof *h);
        if (h == NULL)
            return NULL;
        ev->heap = h;
        ev->capheap = n;
    }
    t = calloc(1, sizeof *t);
    if (t == NULL)
        return NULL;
    t->when = ev_clock_ms() + ms;
    t->seq = ev->timer_seq++;
    t->cb = cb;
    t->arg = arg;
    ev->heap[ev->nheap++] = t;
    heap_up(ev, ev->nheap - 1);
    return t;
}

void ev_timer_cancel(struct ev_loop *ev, struct ev_timer *t)
{
    if (t == NULL)
        return;
    heap_remove(ev, t);
    free(t);
}

static void run_timers(struct ev_loop *ev)
{
    /* Timers added by a callback with 0 ms wait for the next turn. */
    uint64_t limit = ev->timer_seq;

    while (ev->nheap > 0 && ev->heap[0]->when <= ev->now && ev->heap[0]->seq < limit) {
        struct ev_timer *t = ev->heap[0];
        ev_timer_cb *cb = t->cb;
        void *arg = t->arg;

        heap_remove(ev, t);
        free(t);
        cb(ev, arg);
    }
}

static int next_timeout(struct ev_loop *ev)
{
    uint64_t now;

    if (ev->nhooks > 0)
        return 0;
    if (ev->nheap == 0)
        return -1;
    now = ev_clock_ms();
    if (ev->heap[0]->when <= now)
        return 0;
    if (ev->heap[0]->when - now > 60000)
        return 60000;
    return (int)(ev->heap[0]->when - now);
}

/* Signals. */

static void on_signalfd(struct ev_loop *ev, int fd, int events, void *arg)
{
    struct signalfd_siginfo si;

    (void)events;
    (void)arg;
    while (read(fd, &si, sizeof si) == (ssize_t)sizeof si) {
        for (size_t i = 0; i < ev->nsigs; i++)
            if (ev->sigs[i].signo == (int)si.ssi_signo)
                ev->sigs[i].cb(ev, (int)si.ssi_signo, ev->sigs[i].arg);
    }
}

int ev_signal_add(struct ev_loop *ev, int signo, ev_signal_cb *cb, void *arg)
{
    int fd;

    if (ev->nsigs == sizeof ev->sigs / sizeof ev->sigs[0]) {
        errno = ENOSPC;
        return -1;
    }
    sigaddset(&ev->sigmask, signo);
    if (sigprocmask(SIG_BLOCK, &ev->sigmask, NULL) < 0)
        return -1;
    fd = signalfd(ev->sigfd, &ev->sigmask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (fd < 0)
        return -1;
    if (ev->sigfd < 0) {
        ev->sigfd = fd;
        if (ev_fd_add(ev, fd, EV_READ, on_signalfd, NULL) < 0)
            return -1;
    }
    ev->sigs[ev->nsigs++] = (struct ev_sig){signo, cb, arg};
    return 0;
}

int ev_turn_hook(struct ev_loop *ev, ev_hook_cb *cb, void *arg)
{
    if (ev->nhooks == ev->caphooks) {
        size_t n = ev->caphooks ? ev->caphooks * 2 : 16;
        struct ev_hook *h = realloc(ev->hooks, n * sizeof *h);
        if (h == NULL)
            return -1;
        ev->hooks = h;
        ev->caphooks = n;
    }
    ev->hooks[ev->nhooks++] = (struct ev_hook){cb, arg};
    return 0;
}

static void run_hooks(struct ev_loop *ev)
{
    /* Hooks added by a hook run in the next turn. */
    size_t n = ev->nhooks;
    struct ev_hook batch[64];

    while (n > 0) {
        size_t take = n < 64 ? n : 64;

        memcpy(batch, ev->hooks, take * sizeof batch[0]);
        memmove(ev->hooks, ev->hooks + take, (ev->nhooks - take) * sizeof batch[0]);
        ev->nhooks -= take;
        n -= take;
        for (size_t i = 0; i < take; i++)
            batch[i].cb(ev, batch[i].arg);
    }
}

static void dispatch(struct ev_loop *ev, const struct epoll_event *e)
{
    int fd = (int)(uint32_t)e->data.u64;
    uint32_t gen = (uint32_t)(e->data.u64 >> 32);
    struct ev_watch *w;
    int events = 0;

    if ((size_t)fd >= ev->nw)
        return;
    w = &ev->w[fd];
    if (!w->active || w->gen != gen)
        return;
    if (e->events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        events |= EV_READ;
    if (e->events & (EPOLLOUT | EPOLLHUP | EPOLLERR))
        events |= EV_WRITE;
    w->cb(ev, fd, events, w->arg);
}

int ev_run(struct ev_loop *ev)
{
    struct epoll_event events[EV_BATCH];

    ev->running = 1;
    while (ev->running) {
        int n = epoll_wait(ev->epfd, events, EV_BATCH, next_timeout(ev));

        if (n < 0 && errno != EINTR)
            return -1;
        ev->now = ev_clock_ms();
        for (int i = 0; i < n; i++)
            dispatch(ev, &events[i]);
        run_timers(ev);
        run_hooks(ev);
    }
    return 0;
}

void ev_stop(struct ev_loop *ev)
{
    ev->running = 0;
}

uint64_t ev_now_ms(struct ev_loop *ev)
{
    return ev->now;
}
