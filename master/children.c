/*
 * children.c - starting, reaping and restarting the daemons.
 *
 * Each daemon is fork+exec'd from daemon_directory with "-c FILE", its
 * service's listening sockets as fds 3.. (LISTEN_FDS, LISTEN_PID,
 * LISTEN_FDNAMES) and the configuration text master validated as the next
 * fd (MAILCORE_CONF_FD, a sealed memfd), and the shared connection counts
 * with a region of its own (MAILCORE_ANVIL_FD, MAILCORE_ANVIL_REGION; the
 * region is cleared when the process is gone), and the shared login cache
 * (MAILCORE_AUTHCACHE_FD, auth.h).  A daemon that dies unasked is
 * restarted: at once the first time, then after 200 ms, 400 ms, then every
 * 500 ms (so that it runs again within a second, SPEC 8, exec included)
 * while it keeps dying within 10 s of its start.
 *
 * Reload starts a new generation of every daemon and tells the old one to
 * drain (SIGUSR2): its processes close their listeners, serve the sessions
 * they have until these end, and exit; those still running after
 * shutdown_timeout are asked to stop (SIGTERM), as on master's own stop.
 * A draining or stopping child is never restarted.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mailcore/conf.h"
#include "mailcore/anvil.h"
#include "mailcore/ev.h"
#include "mailcore/log.h"
#include "master.h"

#define QUICK_DEATH_MS 10000
#define BACKOFF_FIRST_MS 200
#define BACKOFF_MAX_MS 500

/* In the child, between fork and exec.  master is single-threaded, so the
 * libc calls here are safe. */
static void exec_daemon(const struct master *m, size_t service, unsigned region,
                        const char *path)
{
    const struct service_def *d = &service_defs[service];
    int fds[MASTER_LISTEN_MAX + 3], n = 0;
    char names[512] = "", count[16], pid[24];
    size_t off = 0;
    sigset_t none;

    for (size_t i = 0; i < m->nlisteners; i++)
        if (m->listeners[i].service == service && n < MASTER_LISTEN_MAX) {
            const char *name = m->listeners[i].fd_name;
            size_t len = strlen(name);
            fds[n++] = m->listeners[i].fd;
            if (off + len + 2 < sizeof names) {
                if (off)
                    names[off++] = ':';
                memcpy(names + off, name, len + 1);
                off += len;
            }
        }
    /* Move the fds above the target range first, so that dup2 into 3..
     * never overwrites one not yet moved. */
    /* After the listeners: the config text, the anvil memory, the login cache. */
    fds[n] = m->conf_fd;
    fds[n + 1] = m->anvil_fd;
    fds[n + 2] = m->authcache_fd;
    for (int i = 0; i <= n + 2; i++)
        if ((fds[i] = fcntl(fds[i], F_DUPFD, 6 + MASTER_LISTEN_MAX)) < 0)
            _exit(126);
    for (int i = 0; i <= n + 2; i++)
        if (dup2(fds[i], 3 + i) < 0)
            _exit(126);
    snprintf(count, sizeof count, "%d", 3 + n);
    setenv("MAILCORE_CONF_FD", count, 1);
    snprintf(count, sizeof count, "%d", 4 + n);
    setenv("MAILCORE_ANVIL_FD", count, 1);
    snprintf(count, sizeof count, "%d", 5 + n);
    setenv("MAILCORE_AUTHCACHE_FD", count, 1);
    snprintf(count, sizeof count, "%u", region);
    setenv("MAILCORE_ANVIL_REGION", count, 1);
    snprintf(count, sizeof count, "%d", n);
    snprintf(pid, sizeof pid, "%ld", (long)getpid());
    if (n > 0) {
        setenv("LISTEN_FDS", count, 1);
        setenv("LISTEN_PID", pid, 1);
        setenv("LISTEN_FDNAMES", names, 1);
    } else {
        unsetenv("LISTEN_FDS");
    }
    unsetenv("NOTIFY_SOCKET");
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    execl(path, d->name, "-c", m->conf_path, (char *)NULL);
    _exit(127);
}

/* A region no live child uses. */
static unsigned free_region(const struct master *m)
{
    unsigned char used[ANVIL_REGIONS] = {0};

    for (size_t i = 0; i < m->nchildren; i++)
        used[m->children[i].region] = 1;
    for (unsigned r = 0; r < ANVIL_REGIONS; r++)
        if (!used[r])
            return r;
    return 0;   /* unreachable: MASTER_CHILD_MAX <= ANVIL_REGIONS */
}

static void start_one(struct master *m, size_t service)
{
    char path[4096];
    unsigned region;
    pid_t pid;

    if (m->nchildren == MASTER_CHILD_MAX) {
        log_error("too many daemon processes; not starting %s", service_defs[service].name);
        return;
    }
    snprintf(path, sizeof path, "%s/%s", conf_str(m->conf, "daemon_directory"),
             service_defs[service].name);
    region = free_region(m);
    anvil_region_assign(m->anvil, region, (unsigned)service + 1);
    pid = fork();
    if (pid < 0) {
        log_error("fork for %s: %s", service_defs[service].name, strerror(errno));
        anvil_region_release(m->anvil, region);
        return;
    }
    if (pid == 0)
        exec_daemon(m, service, region, path);
    m->children[m->nchildren++] = (struct child){
        .pid = pid, .region = region, .service = service, .generation = m->generation,
        .state = CHILD_RUNNING, .started_ms = ev_clock_ms()};
    log_debug("started %s pid %ld", service_defs[service].name, (long)pid);
}

void children_start_all(struct master *m)
{
    for (size_t s = 0; s < service_ndefs; s++)
        if (m->services[s].enabled)
            for (unsigned w = 0; w < m->services[s].workers; w++)
                start_one(m, s);
}

static void stop_child(struct child *c)
{
    c->state = CHILD_STOPPING;
    kill(c->pid, SIGTERM);
}

/* shutdown_timeout after a reload: the old daemons still serving sessions
 * are asked to stop.  The timer was armed after draining_ms was taken, on
 * the same clock, so those of this reload qualify exactly; those of a later
 * reload wait for their own timer. */
static void on_drain_timer(struct ev_loop *ev, void *arg)
{
    struct master *m = arg;
    uint64_t timeout = conf_uint(m->conf, "shutdown_timeout") * 1000, now = ev_clock_ms();

    (void)ev;
    for (size_t i = 0; i < m->nchildren; i++)
        if (m->children[i].state == CHILD_DRAINING &&
            now - m->children[i].draining_ms >= timeout)
            stop_child(&m->children[i]);
}

void children_drain_generation(struct master *m, unsigned generation)
{
    for (size_t i = 0; i < m->nchildren; i++)
        if (m->children[i].generation == generation && m->children[i].state == CHILD_RUNNING) {
            m->children[i].state = CHILD_DRAINING;
            m->children[i].draining_ms = ev_clock_ms();
            kill(m->children[i].pid, SIGUSR2);
        }
    if (ev_timer_add(m->ev, conf_uint(m->conf, "shutdown_timeout") * 1000, on_drain_timer, m) ==
        NULL)
        log_error("cannot time the old daemons' drain: they stop when idle");
}

void children_stop_all(struct master *m)
{
    for (size_t i = 0; i < m->nchildren; i++)
        if (m->children[i].state != CHILD_STOPPING)
            stop_child(&m->children[i]);
}

static unsigned running_workers(const struct master *m, size_t service)
{
    unsigned n = 0;

    for (size_t i = 0; i < m->nchildren; i++)
        if (m->children[i].service == service && m->children[i].state == CHILD_RUNNING)
            n++;
    return n;
}

/* Bring the service back to its number of workers. */
static void on_restart(struct ev_loop *ev, void *arg)
{
    struct service_state *s = arg;
    struct master *m = s->m;

    (void)ev;
    s->restart = NULL;
    if (m->stopping || !s->enabled)
        return;
    for (unsigned n = running_workers(m, s->index); n < s->workers; n++)
        start_one(m, s->index);
}

static void schedule_restart(struct master *m, const struct child *c, uint64_t uptime)
{
    struct service_state *s = &m->services[c->service];
    uint64_t delay = 0;

    if (uptime < QUICK_DEATH_MS)
        s->quick_fails++;
    else
        s->quick_fails = 0;
    if (s->restart != NULL)
        return;                     /* one restart covers every missing worker */
    if (s->quick_fails > 1) {
        unsigned shift = s->quick_fails - 2 > 8 ? 8 : s->quick_fails - 2;
        delay = (uint64_t)BACKOFF_FIRST_MS << shift;
        if (delay > BACKOFF_MAX_MS)
            delay = BACKOFF_MAX_MS;
        log_warn("%s keeps dying; restarting it in %llu ms", service_defs[c->service].name,
                 (unsigned long long)delay);
    }
    s->m = m;
    s->index = c->service;
    s->restart = ev_timer_add(m->ev, delay, on_restart, s);
    if (s->restart == NULL)
        log_error("cannot schedule restart of %s", service_defs[c->service].name);
}

void children_cancel_restarts(struct master *m)
{
    for (size_t i = 0; i < service_ndefs; i++)
        if (m->services[i].restart) {
            ev_timer_cancel(m->ev, m->services[i].restart);
            m->services[i].restart = NULL;
        }
}

static void log_exit(const struct child *c, int status)
{
    const char *name = service_defs[c->service].name;

    if (WIFSIGNALED(status))
        log_warn("process %s pid %ld killed by signal %d", name, (long)c->pid, WTERMSIG(status));
    else if (WEXITSTATUS(status) == 127)
        log_warn("process %s pid %ld: cannot execute it", name, (long)c->pid);
    else if (WEXITSTATUS(status) != 0 || c->state == CHILD_RUNNING)
        log_warn("process %s pid %ld exit status %d", name, (long)c->pid, WEXITSTATUS(status));
}

void children_on_sigchld(struct master *m)
{
    int status;
    pid_t pid;

    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        for (size_t i = 0; i < m->nchildren; i++) {
            struct child c = m->children[i];
            if (c.pid != pid)
                continue;
            m->children[i] = m->children[--m->nchildren];
            anvil_region_release(m->anvil, c.region);
            if (c.state == CHILD_RUNNING || WIFSIGNALED(status) || WEXITSTATUS(status) != 0)
                log_exit(&c, status);
            if (c.state == CHILD_RUNNING && !m->stopping)
                schedule_restart(m, &c, ev_clock_ms() - c.started_ms);
            break;
        }
    }
    if (m->stopping && m->nchildren == 0)
        ev_stop(m->ev);
}

size_t children_status(const struct master *m, char *buf, size_t len)
{
    size_t off = 0;
    uint64_t now = ev_clock_ms();

    for (size_t s = 0; s < service_ndefs; s++) {
        for (size_t i = 0; i < m->nchildren && off < len; i++) {
            const struct child *c = &m->children[i];
            int n;
            if (c->service != s)
                continue;
            n = snprintf(buf + off, len - off, "%s %ld %s %llus\n", service_defs[s].name,
                         (long)c->pid,
                         c->state == CHILD_RUNNING    ? "running"
                         : c->state == CHILD_DRAINING ? "draining"
                                                      : "stopping",
                         (unsigned long long)((now - c->started_ms) / 1000));
            if (n < 0 || (size_t)n >= len - off)
                break;
            off += (size_t)n;
        }
    }
    return off;
}
