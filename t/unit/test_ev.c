/* test_ev.c - the event loop: fds, timer order, cancel, signals, hooks. */
#include <signal.h>
#include <unistd.h>

#include "check.h"
#include "mailcore/ev.h"

static char order[32];
static size_t norder;

static void mark(struct ev_loop *ev, void *arg)
{
    (void)ev;
    order[norder++] = *(const char *)arg;
}

static void stop_cb(struct ev_loop *ev, void *arg)
{
    (void)arg;
    ev_stop(ev);
}

static void test_ev_timers_fire_in_deadline_order(void)
{
    struct ev_loop *ev = ev_new();
    static const char a = 'a', b = 'b', c = 'c', d = 'd';

    norder = 0;
    ev_timer_add(ev, 30, mark, (void *)&c);
    ev_timer_add(ev, 10, mark, (void *)&a);
    struct ev_timer *t = ev_timer_add(ev, 20, mark, (void *)&d);
    ev_timer_add(ev, 20, mark, (void *)&b);
    ev_timer_cancel(ev, t);
    ev_timer_add(ev, 50, stop_cb, NULL);
    CHECK_INT(ev_run(ev), 0);
    CHECK_INT(norder, 3);
    CHECK(memcmp(order, "abc", 3) == 0);
    ev_free(ev);
}

static int reads;

static void on_readable(struct ev_loop *ev, int fd, int events, void *arg)
{
    char buf[16];

    (void)arg;
    CHECK(events & EV_READ);
    CHECK_INT(read(fd, buf, sizeof buf), 3);
    reads++;
    ev_fd_del(ev, fd);
    ev_stop(ev);
}

static void test_ev_fd_readable_runs_callback(void)
{
    struct ev_loop *ev = ev_new();
    int p[2];

    CHECK_INT(pipe(p), 0);
    CHECK_INT(ev_fd_add(ev, p[0], EV_READ, on_readable, NULL), 0);
    CHECK_INT(write(p[1], "abc", 3), 3);
    ev_timer_add(ev, 2000, stop_cb, NULL);
    ev_run(ev);
    CHECK_INT(reads, 1);
    close(p[0]);
    close(p[1]);
    ev_free(ev);
}

static int got_signal;

static void on_sig(struct ev_loop *ev, int signo, void *arg)
{
    (void)arg;
    got_signal = signo;
    ev_stop(ev);
}

static void test_ev_signal_delivered_through_loop(void)
{
    struct ev_loop *ev = ev_new();

    CHECK_INT(ev_signal_add(ev, SIGUSR1, on_sig, NULL), 0);
    kill(getpid(), SIGUSR1);
    ev_timer_add(ev, 2000, stop_cb, NULL);
    ev_run(ev);
    CHECK_INT(got_signal, SIGUSR1);
    ev_free(ev);
}

static int hook_runs;

static void hook(struct ev_loop *ev, void *arg)
{
    (void)arg;
    hook_runs++;
    ev_stop(ev);
}

static void test_ev_turn_hook_runs_once(void)
{
    struct ev_loop *ev = ev_new();

    ev_turn_hook(ev, hook, NULL);
    ev_run(ev);
    CHECK_INT(hook_runs, 1);
    ev_free(ev);
}

int main(void)
{
    RUN(test_ev_timers_fire_in_deadline_order);
    RUN(test_ev_fd_readable_runs_callback);
    RUN(test_ev_signal_delivered_through_loop);
    RUN(test_ev_turn_hook_runs_once);
    return check_done();
}
